"""Batch segmentation: many cases, one model load, shards, resume after a kill, failures logged."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _batch_data import ct, untrained_models

import napari_livertumor.io.nifti as nifti_io
from napari_livertumor.cli import main
from napari_livertumor.commands.segment import discover_cases, parse_shard, shard_cases
from napari_livertumor.errors import InputError
from napari_livertumor.io.dicom_write import write_ct_series
from napari_livertumor.io.nifti import write_nifti
from napari_livertumor.io.volume import CTVolume


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return untrained_models(tmp_path_factory.mktemp("models"))


def cohort(folder, n):
    for i in range(n):
        write_nifti(ct(i), folder / f"case{i:02d}.nii.gz")
    return folder


def segment(inputs, out, models, *extra):
    args = ["segment", *map(str, inputs), "-o", str(out), "--models", str(models)]
    return main([*args, "--device", "cpu", "--no-refine", *extra])


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def outputs(out):
    """Labels voxels and stats (without timings) of every case in ``out``."""
    res = {}
    for p in sorted(out.glob("*_labels.nii.gz")):
        case = p.name[: -len("_labels.nii.gz")]
        stats = json.loads((out / f"{case}_stats.json").read_text())
        stats.pop("timings_s")
        stats.pop("stats_digest")  # (of the figures with their timings)
        res[case] = (np.asarray(nib.load(p).dataobj), stats)
    return res


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_shards_cover_every_case_exactly_once(tmp_path, n):
    cases = discover_cases([cohort(tmp_path, 7)])
    parts = [shard_cases(cases, i, n) for i in range(n)]
    flat = [c for part in parts for c in part]
    assert sorted(flat, key=lambda c: c.name) == cases
    assert len(set(flat)) == len(cases) == 7


def test_shard_runs_split_the_work_and_write_their_own_summaries(tmp_path, models):
    data = cohort(tmp_path / "data", 3)
    out = tmp_path / "out"
    assert segment([data], out, models, "--shard", "0/2") == 0
    assert segment([data], out, models, "--shard", "1/2") == 0
    a = read_rows(out / "summary_shard-0-of-2.csv")
    b = read_rows(out / "summary_shard-1-of-2.csv")
    assert sorted(r["case"] for r in a + b) == ["case00", "case01", "case02"]
    assert all(r["status"] == "done" for r in a + b)
    assert len(list(out.glob("*_stats.json"))) == 3
    # a plain run over the same input afterwards skips every case and lists them all in one
    # summary.csv (what cli.md tells job arrays to do)
    assert segment([data], out, models) == 0
    whole = read_rows(out / "summary.csv")
    assert sorted(r["case"] for r in whole) == ["case00", "case01", "case02"]


def test_resume_after_a_kill_gives_the_same_outputs(tmp_path, models, monkeypatch):
    data = cohort(tmp_path / "data", 3)
    assert segment([data], tmp_path / "clean", models) == 0
    reference = outputs(tmp_path / "clean")

    out = tmp_path / "killed"
    real_write = nifti_io.write_nifti

    def killed_while_writing(array, path, reference=None, **kw):
        if "case01" in str(path):
            (path.parent / f".{path.name}.x1y2.nii.gz").write_bytes(b"half a file")
            raise KeyboardInterrupt  # the job runner killed us mid-write
        return real_write(array, path, reference=reference, **kw)

    monkeypatch.setattr(nifti_io, "write_nifti", killed_while_writing)
    assert segment([data], out, models) == 130
    assert not (out / "case01_stats.json").exists() and not (out / "case02_stats.json").exists()
    first_done = (out / "case00_stats.json").stat().st_mtime_ns

    monkeypatch.setattr(nifti_io, "write_nifti", real_write)
    assert segment([data], out, models) == 0
    rows = {r["case"]: r["status"] for r in read_rows(out / "summary.csv")}
    assert rows == {"case00": "skipped (complete)", "case01": "done", "case02": "done"}
    assert (out / "case00_stats.json").stat().st_mtime_ns == first_done
    assert not list(out.glob(".*"))  # the half-written temporary file is gone
    resumed = outputs(out)
    assert resumed.keys() == reference.keys()
    for case, (labels, stats) in reference.items():
        np.testing.assert_array_equal(resumed[case][0], labels)
        assert resumed[case][1] == stats


def test_a_broken_case_is_logged_and_the_batch_goes_on(tmp_path, models, capsys):
    data = cohort(tmp_path / "data", 2)
    (data / "broken.nii.gz").write_bytes(b"not a nifti at all")
    out = tmp_path / "out"
    assert segment([data], out, models) == 1
    rows = {r["case"]: r for r in read_rows(out / "summary.csv")}
    assert rows["broken"]["status"] == "failed"
    assert "broken.nii.gz" in rows["broken"]["error"]
    assert rows["case00"]["status"] == rows["case01"]["status"] == "done"
    assert not (out / "broken_labels.nii.gz").exists()
    assert rows["broken"]["labels"] == rows["broken"]["stats"] == ""  # no file to point at
    assert "broken failed" in capsys.readouterr().err


def test_a_csv_list_names_the_cases(tmp_path, models):
    data = cohort(tmp_path / "data", 2)
    (tmp_path / "list.csv").write_text("path,case\ndata/case00.nii.gz,alpha\ndata/case01.nii.gz,\n")
    cases = discover_cases([tmp_path / "list.csv"])
    assert [(c.name, c.path) for c in cases] == [
        ("alpha", data / "case00.nii.gz"),
        ("case01", data / "case01.nii.gz"),
    ]
    (tmp_path / "bad.csv").write_text("file\nx.nii.gz\n")
    with pytest.raises(Exception, match="bad.csv.*'path' column"):
        discover_cases([tmp_path / "bad.csv"])
    # saved by Excel on Windows (cp1252), or by PowerShell 5 (UTF-16): read as written
    for encoding in ("cp1252", "utf-16"):
        (tmp_path / "list2.csv").write_text("path,case\ndata/case00.nii.gz,Patiënt\n", encoding)
        (case,) = discover_cases([tmp_path / "list2.csv"])
        assert case.name == "Patiënt"


def test_a_csv_lists_case_name_is_kept_though_the_folder_has_the_input_under_another(
    tmp_path, models, caplog
):
    """A list naming a case (``N1``) of an input already segmented into the folder as
    ``case00``: it was renamed back to ``case00`` (said in an INFO line only), the name the
    list gave ignored."""
    data = cohort(tmp_path / "data", 1)
    out = tmp_path / "out"
    assert segment([data / "case00.nii.gz"], out, models) == 0
    (tmp_path / "list.csv").write_text("path,case\ndata/case00.nii.gz,N1\n")
    (case,) = discover_cases([tmp_path / "list.csv"], outdir=out)
    assert case.name == "N1"
    with caplog.at_level("INFO"):
        assert segment([tmp_path / "list.csv"], out, models) == 0
    assert (out / "N1_labels.nii.gz").is_file() and (out / "case00_labels.nii.gz").is_file()
    assert "as its outputs in" not in caplog.text
    # without a name in the list, the name its outputs have is kept (no second segmentation)
    (tmp_path / "plain.csv").write_text("path\ndata/case00.nii.gz\n")
    (case,) = discover_cases([tmp_path / "plain.csv"], outdir=out)
    assert case.name == "case00"


def test_a_folder_of_patient_folders_is_one_case_per_patient(tmp_path):
    for pid in ("HCC_002", "HCC_001"):
        write_ct_series(ct(1), tmp_path / pid / "study" / "ct", patient_id=pid)
    cases = discover_cases([tmp_path])
    assert [c.name for c in cases] == ["HCC_001", "HCC_002"]
    assert cases[0].path == tmp_path / "HCC_001"


def test_a_patients_own_folder_keeps_its_name_before_a_study_misfiled_elsewhere(tmp_path, caplog):
    """HCC_006's scan copied into HCC_005's folder took the name HCC_006 (its folder sorts
    first), and the real HCC_006, with its labels and clinical row, became HCC_006_2."""
    write_ct_series(ct(1), tmp_path / "HCC_006" / "study" / "ct", patient_id="HCC_006")
    write_ct_series(ct(2), tmp_path / "HCC_005" / "study" / "ct", patient_id="HCC_005")
    write_ct_series(ct(3), tmp_path / "HCC_005" / "study" / "stray", patient_id="HCC_006")
    with caplog.at_level("WARNING"):
        cases = {c.name: c for c in discover_cases([tmp_path])}
    assert cases["HCC_006"].path == tmp_path / "HCC_006" and cases["HCC_006"].patient is None
    assert cases["HCC_006_2"].path == tmp_path / "HCC_005"
    # which of the folder's patients (its folder names both)
    assert f"{tmp_path / 'HCC_005'} (PatientID 'HCC_006') is written as HCC_006_2" in caplog.text
    # and so when the patient's own folder holds another's study too (both then split)
    write_ct_series(ct(4), tmp_path / "HCC_006" / "study" / "stray7", patient_id="HCC_007")
    cases = {c.name: c for c in discover_cases([tmp_path])}
    assert cases["HCC_006"].path == tmp_path / "HCC_006"
    assert cases["HCC_006_2"].path == tmp_path / "HCC_005"


def test_two_patients_study_folders_side_by_side_are_a_case_each(tmp_path, caplog):
    """A TCIA-style folder holding two patients' study folders was one case: one patient
    converted or segmented, the other left out with a warning and exit 0."""
    for pid in ("HCC_002", "HCC_001"):
        write_ct_series(ct(1), tmp_path / "in" / "TWO" / f"study_{pid}" / "ct", patient_id=pid)
    with caplog.at_level("WARNING"):
        cases = discover_cases([tmp_path / "in"])
    assert [(c.name, c.patient) for c in cases] == [("HCC_001", "HCC_001"), ("HCC_002", "HCC_002")]
    assert "holds the scans of 2 patients" in caplog.text
    # one patient's two studies (baseline, follow-up) stay one case
    for study in ("baseline", "followup"):
        write_ct_series(ct(2), tmp_path / "one" / "P" / study / "ct", patient_id="P7")
    assert [c.patient for c in discover_cases([tmp_path / "one"])] == [None]


def test_a_folder_of_site_folders_of_patient_folders_names_each_patient_by_its_folder(
    tmp_path, monkeypatch
):
    """QA d69: sites/siteA/PAT_*/study/series/ (a cohort grouped by site): each site folder
    was taken for one folder holding several patients' files, every header in it read (130 s
    against 6 s for the same patients in one folder), its cases named by PatientID, not by
    their folders as when the site folder is given. At any depth, and a folder of one site."""
    import napari_livertumor.commands.segment as seg

    sites = tmp_path / "sites"
    # (PAT_3: named after its PatientID, its series in it without a study folder)
    layout = (("A", "case01"), ("A", "case02"), ("B", "case03"), ("B", "PAT_3"))
    for k, (site, folder) in enumerate(layout):
        for date in ("20190101", "20190601"):
            where = f"ct{date}" if folder == "PAT_3" else os.path.join(f"study{date}", "ct")
            write_ct_series(ct(k), sites / site / folder / where, patient_id=f"PAT_{k}",
                            study_date=date)  # fmt: skip
    read_whole = []
    real = seg._patient_ids
    monkeypatch.setattr(seg, "_patient_ids", lambda f: read_whole.append(f) or real(f))
    site_a = [("case01", sites / "A" / "case01", None), ("case02", sites / "A" / "case02", None)]
    site_b = [("PAT_3", sites / "B" / "PAT_3", None), ("case03", sites / "B" / "case03", None)]
    for given, expected in (
        (sites / "A", site_a),
        (sites, site_a + site_b),
        (tmp_path, site_a + site_b),  # (a folder of one folder of sites)
    ):
        cases = discover_cases([given])
        assert sorted((c.name, c.path, c.patient) for c in cases) == sorted(expected), given
    assert read_whole == []  # (each patient's folder sampled, not its headers read)
    # patient folders holding another patient's study too: that folder split, as given
    write_ct_series(ct(9), sites / "A" / "case02" / "misfiled" / "ct", patient_id="PAT_9")
    for given in (sites / "A", sites):
        names = {c.name: c.patient for c in discover_cases([given])}
        assert {n: p for n, p in names.items() if n in ("PAT_1", "PAT_9")} == {
            "PAT_1": "PAT_1",
            "PAT_9": "PAT_9",
        }, given


def test_a_flat_folder_of_two_patients_scans_is_a_case_per_patient(tmp_path, models, caplog):
    """A PACS export of several studies into one folder: one patient was segmented (named after
    the folder) and the other left with a warning, exit 0."""
    for i, pid in enumerate(("HCC_002", "HCC_001")):
        names = [f"{pid}_{k:03d}.dcm" for k in range(8)]
        write_ct_series(ct(i), tmp_path / "export", patient_id=pid, file_names=names)
    with caplog.at_level("WARNING"):
        cases = discover_cases([tmp_path / "export"])
    assert [(c.name, c.patient) for c in cases] == [("HCC_001", "HCC_001"), ("HCC_002", "HCC_002")]
    assert "holds the scans of 2 patients ('HCC_001', 'HCC_002'): each is a case" in caplog.text
    # --series names one series: the folder is one case, as before
    (whole,) = discover_cases([tmp_path / "export"], per_patient=False)
    assert whole.name == "export" and whole.patient is None
    out = tmp_path / "out"
    assert segment([tmp_path / "export"], out, models, "--stages", "liver") == 0
    rows = read_rows(out / "summary.csv")
    assert [(r["case"], r["status"]) for r in rows] == [("HCC_001", "done"), ("HCC_002", "done")]
    series = set()
    for pid in ("HCC_001", "HCC_002"):
        stats = json.loads((out / f"{pid}_stats.json").read_text())
        assert stats["run_settings"]["patient"] == pid
        assert not any("patients" in w for w in stats["warnings"])
        series.add(stats["series_uid"])
    assert len(series) == 2  # each its own patient's scan
    # run again: both complete, skipped
    caplog.clear()
    with caplog.at_level("INFO"):
        assert segment([tmp_path / "export"], out, models, "--stages", "liver") == 0
    assert caplog.text.count("already complete, skipped") == 2
    # two exports of the same patients (baseline, follow-up): the second's cases are renamed
    # and each still reads its own patient (the rename dropped it: the reader's pick was read)
    import shutil

    shutil.copytree(tmp_path / "export", tmp_path / "followup")
    cases = discover_cases([tmp_path / "export", tmp_path / "followup"])
    assert sorted((c.name, c.patient) for c in cases) == [
        ("HCC_001", "HCC_001"), ("HCC_001_2", "HCC_001"),
        ("HCC_002", "HCC_002"), ("HCC_002_2", "HCC_002"),
    ]  # fmt: skip
    # a case list naming such an export: a case per patient too, after the row's name if any
    (tmp_path / "list.csv").write_text("path,case\nexport,monday\nfollowup,\n")
    cases = discover_cases([tmp_path / "list.csv"])
    assert sorted((c.name, c.patient) for c in cases) == [
        ("HCC_001", "HCC_001"), ("HCC_002", "HCC_002"),
        ("monday_HCC_001", "HCC_001"), ("monday_HCC_002", "HCC_002"),
    ]  # fmt: skip
    (whole,) = discover_cases([tmp_path / "list.csv"], per_patient=False)[:1]
    assert whole.patient is None
    for i, pid in enumerate(("", "HCC_005")):  # one scan without a PatientID
        names = [f"p{i}_{k:03d}.dcm" for k in range(8)]
        write_ct_series(ct(i), tmp_path / "anon", patient_id=pid, file_names=names)
    (tmp_path / "list3.csv").write_text("path,case\nanon,friday\n")
    cases = discover_cases([tmp_path / "list3.csv"])
    assert sorted(c.name for c in cases) == ["friday_HCC_005", "friday_no_patient_id"]
    # such exports in a folder of folders are split too
    batch = tmp_path / "batch"
    shutil.move(tmp_path / "export", batch / "monday")
    for i, pid in enumerate(("HCC_004", "HCC_003")):
        names = [f"{pid}_{k:03d}.dcm" for k in range(8)]
        write_ct_series(ct(i), batch / "tuesday", patient_id=pid, file_names=names)
    cases = discover_cases([batch])
    assert [(c.name, c.patient, c.path.name) for c in cases] == [
        ("HCC_001", "HCC_001", "monday"), ("HCC_002", "HCC_002", "monday"),
        ("HCC_003", "HCC_003", "tuesday"), ("HCC_004", "HCC_004", "tuesday"),
    ]  # fmt: skip


def test_a_few_files_under_another_patient_id_make_no_case_of_their_own(tmp_path):
    """The split counted IDs file by file: two re-sent files under another ID (or another
    patient's SEG) made a case that could only fail, and renamed the real one."""
    import pydicom

    paths = write_ct_series(ct(1), tmp_path / "pat", patient_id="P1")
    for p in paths[:2]:
        ds = pydicom.dcmread(p)
        ds.PatientID = "ANON123"
        ds.save_as(p)
    (case,) = discover_cases([tmp_path / "pat"])
    assert case.name == "pat" and case.patient is None


def test_nifti_files_and_dicom_patient_folders_side_by_side_are_all_cases(tmp_path):
    """A folder of NIfTI files that also holds DICOM patient folders: every scan is a case (the
    DICOM folders were silently left out)."""
    write_nifti(ct(0), tmp_path / "A.nii.gz")
    write_ct_series(ct(1), tmp_path / "D1" / "study" / "ct", patient_id="D1")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no scan here")
    cases = discover_cases([tmp_path])
    assert [c.name for c in cases] == ["A", "D1"]
    assert cases[1].path == tmp_path / "D1"


def test_nifti_scans_below_a_folder_are_cases_as_when_the_folder_is_given(tmp_path, caplog):
    """QA b68: a site folder holding a DICOM patient folder and a NIfTI file, inside a batch
    folder, was read as one DICOM case: the NIfTI file left out without a word, exit 0 (given
    directly, the site folder gave both). So with the NIfTI one folder further down, and with
    two such sites."""
    site = tmp_path / "min1" / "siteA"
    write_ct_series(ct(1), site / "HCC_001" / "study" / "ct", patient_id="HCC_001")
    write_nifti(ct(2), site / "HCC_010.nii.gz")
    expected = [("HCC_001", site / "HCC_001"), ("HCC_010", site / "HCC_010.nii.gz")]
    with caplog.at_level("INFO"):
        for given in (site, tmp_path / "min1"):
            assert [(c.name, c.path) for c in discover_cases([given])] == expected
    assert "no DICOM or NIfTI scan" not in caplog.text
    # two sites, each a DICOM patient and a folder of NIfTI scans
    for k, name in enumerate(("site A", "site B")):
        folder = tmp_path / "dup" / name
        write_ct_series(ct(k), folder / "HCC_001" / "study" / "ct", patient_id=f"HCC_00{k + 1}")
        write_nifti(ct(k + 3), folder / "scans" / "HCC_dup.nii.gz")
    cases = discover_cases([tmp_path / "dup"])
    assert sorted(str(c.path.relative_to(tmp_path / "dup")) for c in cases) == [
        os.path.join("site A", "HCC_001"),
        os.path.join("site A", "scans", "HCC_dup.nii.gz"),
        os.path.join("site B", "HCC_001"),
        os.path.join("site B", "scans", "HCC_dup.nii.gz"),
    ]
    # a patient's folder of one NIfTI scan, a folder further down: that scan, named by it
    write_nifti(ct(5), tmp_path / "deep" / "P1" / "images" / "HCC_020.nii.gz")
    write_nifti(ct(6), tmp_path / "deep" / "P2" / "HCC_021.nii.gz")
    cases = discover_cases([tmp_path / "deep"])
    assert [(c.name, c.path.name) for c in cases] == [
        ("P1", "HCC_020.nii.gz"),
        ("P2", "HCC_021.nii.gz"),
    ]
    # a dataset `convert` wrote inside the DICOM patient folder it converted: a copy, either way
    dataset = tmp_path / "conv" / "HCC_005" / "nifti"
    write_ct_series(ct(7), dataset.parent / "study" / "ct", patient_id="HCC_005")
    write_nifti(ct(7), dataset / "imagesTs" / "HCC_005.nii.gz")
    (dataset / "convert.json").write_text("{}")
    for given in (tmp_path / "conv", dataset.parent):
        assert [c.path for c in discover_cases([given])] == [dataset.parent]


def test_a_patient_folder_of_one_nifti_scan_in_a_generic_subfolder_is_named_by_the_patient(
    tmp_path,
):
    """QA d69: cohort/P1/images/ct.nii.gz given as cohort/P1 was named `images` (the subfolder
    holding it), given as cohort, as P1/images, or as the file, `P1` (as docs/cli.md says). A
    folder of a generic name names no case; a folder of one NIfTI scan found inside another
    still names it."""
    patient = tmp_path / "cohort" / "P1"
    write_nifti(ct(1), patient / "images" / "ct.nii.gz")
    write_nifti(ct(2), tmp_path / "cohort" / "P2" / "ct.nii.gz")
    for given in (patient, patient / "images", patient / "images" / "ct.nii.gz"):
        assert [c.name for c in discover_cases([given])] == ["P1"], given
    assert [c.name for c in discover_cases([tmp_path / "cohort"])] == ["P1", "P2"]
    write_nifti(ct(3), tmp_path / "batch" / "scans" / "liver_7.nii.gz")
    assert [c.name for c in discover_cases([tmp_path / "batch"])] == ["liver_7"]
    write_nifti(ct(4), tmp_path / "batch" / "X" / "liver_8.nii.gz")
    assert [c.name for c in discover_cases([tmp_path / "batch"])] == ["X", "liver_7"]


def test_a_site_folder_of_several_nifti_files_in_a_batch_gives_each_as_a_case(tmp_path):
    """QA b68: `segment min3` failed siteA ("no DICOM files found; it holds 2 NIfTI file(s)
    …: give one of them") while `segment min3/siteA` segmented both."""
    write_nifti(ct(1), tmp_path / "siteA" / "HCC_001.nii.gz")
    write_nifti(ct(2), tmp_path / "siteA" / "HCC_002.nii.gz")
    write_nifti(ct(3), tmp_path / "siteB" / "HCC_003.nii.gz")
    cases = discover_cases([tmp_path])
    assert [(c.name, c.path) for c in cases] == [
        ("HCC_001", tmp_path / "siteA" / "HCC_001.nii.gz"),
        ("HCC_002", tmp_path / "siteA" / "HCC_002.nii.gz"),
        ("siteB", tmp_path / "siteB" / "HCC_003.nii.gz"),
    ]
    # beside NIfTI files too (it was skipped as "no DICOM or NIfTI scan in it")
    write_nifti(ct(4), tmp_path / "HCC_004.nii.gz")
    cases = discover_cases([tmp_path])
    assert [c.name for c in cases] == ["HCC_001", "HCC_002", "HCC_004", "siteB"]


def test_a_patient_folder_of_dicom_and_nifti_reads_its_nifti_however_it_is_given(
    tmp_path, models, caplog, capsys
):
    """QA b68: `segment mix2/P` segmented P's NIfTI file and warned that its DICOM files are
    not read; `segment mix2` read P's DICOM and said nothing of the NIfTI. Either way now: the
    NIfTI file, the DICOM files said in the log and in --list."""
    import logging

    patient = tmp_path / "mix2" / "P"
    names = [f"1-{k:03d}.dcm" for k in range(1, 9)]
    write_ct_series(ct(1), patient, patient_id="P", file_names=names)
    write_nifti(ct(2), patient / "HCC_002.nii.gz")
    write_nifti(ct(3), tmp_path / "mix2" / "HCC_003.nii.gz")
    words = (
        "8 DICOM file(s) beside the NIfTI files are not read (1-001.dcm, ...): put a DICOM "
        "series in a folder of its own, which is then a case"
    )
    for given, named in ((patient, "HCC_002"), (tmp_path / "mix2", "P")):
        passed = []
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="livertumor"):
            cases = discover_cases([given], passed_over=passed)
        assert (named, patient / "HCC_002.nii.gz") in [(c.name, c.path) for c in cases]
        assert not any(c.path == patient for c in cases)
        assert f"{patient}: {words}" in caplog.text
        assert passed == [(patient, words)]
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger="livertumor"):
        assert segment([tmp_path / "mix2"], tmp_path / "out", models, "--list") == 0
    assert (
        "2 case(s) found; DICOM files in 1 folder(s) not read (beside NIfTI files)"
        in caplog.messages
    )
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        ["HCC_003", str(tmp_path / "mix2" / "HCC_003.nii.gz"), "segment"],
        ["P", str(patient / "HCC_002.nii.gz"), "segment"],
        ["", str(patient), words],
    ]


def test_a_folder_holding_only_a_seg_beside_nifti_scans_is_passed_over_not_a_failed_case(
    tmp_path, models, capsys, caplog
):
    """cases/{HCC_001.nii.gz, HCC_002.nii.gz, HCC_001_seg/1-1.dcm}, the SEG of HCC_001 in a
    folder of its own, was a case that failed ("no CT here"): it is passed over now, said in
    the log and by --list, and counted. So is a folder of another object that is no image (a
    report); a folder whose CT files cannot be read is still a case, which fails."""
    import logging

    import pydicom

    from napari_livertumor.io import load_ct
    from napari_livertumor.io.seg import write_dicom_seg

    cases_dir = tmp_path / "cases"
    write_nifti(ct(1), cases_dir / "HCC_001.nii.gz")
    write_nifti(ct(2), cases_dir / "HCC_002.nii.gz")
    write_ct_series(ct(3), tmp_path / "dicom" / "HCC_001", patient_id="HCC_001")
    source = load_ct(tmp_path / "dicom" / "HCC_001")
    labels = np.zeros(source.shape, np.uint8)
    labels[2:6, 8:20, 8:20] = 1
    write_dicom_seg(labels, source, cases_dir / "HCC_001_seg" / "1-1.dcm")
    seg_words = "holds only a DICOM SEG (segmentation), no CT series: passed over, not a case"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="livertumor"):
        passed = []
        found = discover_cases([cases_dir], passed_over=passed)
        assert [c.name for c in found] == ["HCC_001", "HCC_002"]
        assert passed == [(cases_dir / "HCC_001_seg", seg_words)]
        assert f"{cases_dir / 'HCC_001_seg'}: {seg_words}" in caplog.text
        capsys.readouterr()
        assert segment([cases_dir], tmp_path / "out", models, "--list") == 0
    assert [line.split("\t") for line in capsys.readouterr().out.splitlines()][2] == [
        "",
        str(cases_dir / "HCC_001_seg"),
        seg_words,
    ]
    assert (
        "2 case(s) found; 1 folder(s) with no CT series passed over, not cases" in caplog.messages
    )
    # a report alone: the same; a folder of CT files that cannot be read: a failed case
    report = pydicom.dcmread(next((tmp_path / "dicom" / "HCC_001").iterdir()))
    report.Modality = "SR"
    (cases_dir / "HCC_002_report").mkdir()
    report.save_as(cases_dir / "HCC_002_report" / "sr.dcm")
    (cases_dir / "HCC_003").mkdir()
    (cases_dir / "HCC_003" / "1-1.dcm").write_bytes(np.random.default_rng(0).bytes(3000))
    passed = []
    found = discover_cases([cases_dir], passed_over=passed)
    assert [c.name for c in found] == ["HCC_001", "HCC_002", "HCC_003"]
    assert [(p.name, why.split(",")[0]) for p, why in passed] == [
        ("HCC_001_seg", "holds only a DICOM SEG (segmentation)"),
        ("HCC_002_report", "holds only a DICOM SR (structured report)"),
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="livertumor"):
        assert segment([cases_dir], tmp_path / "out", models, "--stages", "liver") == 1
    rows = {r["case"]: r["status"] for r in read_rows(tmp_path / "out" / "summary.csv")}
    assert rows == {"HCC_001": "done", "HCC_002": "done", "HCC_003": "failed"}
    assert (
        "2 folder(s) with no CT series passed over, not segmented (said above; --list shows "
        f"why): {cases_dir / 'HCC_001_seg'}, {cases_dir / 'HCC_002_report'}"
    ) in caplog.messages


def test_a_patient_folder_whose_dicom_cannot_be_read_is_a_case_that_fails(tmp_path, models):
    """It was dropped without a word (and with one good patient left, the whole folder became a
    single case): now it is a failed row in the summary and the exit code says so."""
    write_ct_series(ct(1), tmp_path / "in" / "HCC_001" / "study" / "ct", patient_id="HCC_001")
    bad = tmp_path / "in" / "HCC_009"
    bad.mkdir()
    (bad / "1.dcm").write_bytes(np.random.default_rng(0).bytes(3000))
    cases = discover_cases([tmp_path / "in"])
    assert [c.name for c in cases] == ["HCC_001", "HCC_009"]
    assert segment([tmp_path / "in"], tmp_path / "out", models) == 1
    with open(tmp_path / "out" / "summary.csv") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    assert rows["HCC_001"]["status"] == "done" and rows["HCC_009"]["status"] == "failed"
    stats = json.loads((tmp_path / "out" / "HCC_001_stats.json").read_text())
    assert stats["timings_s"]["load_models"] > 0  # the first case paid for loading, on file


def test_a_nifti_dataset_folder_segments_its_images_not_its_label_maps(tmp_path):
    write_nifti(ct(0), tmp_path / "imagesTr" / "HCC_001.nii.gz")
    write_nifti(ct(1), tmp_path / "imagesTr" / "HCC_002.nii.gz")
    write_nifti(ct(2), tmp_path / "labelsTr" / "HCC_001.nii.gz")
    assert [c.name for c in discover_cases([tmp_path])] == ["HCC_001", "HCC_002"]
    assert all(c.path.parent.name == "imagesTr" for c in discover_cases([tmp_path]))


def test_shard_text_is_parsed_strictly():
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/3", "1/0", "x"):
        with pytest.raises(Exception, match="shard"):
            parse_shard(bad)
    # "--shard 3/3" from a SLURM array numbered 1-3: that shards count from 0 is said
    with pytest.raises(InputError, match=r"numbered from 0 \(with SLURM use --array=0-2 for 3"):
        parse_shard("3/3")


def test_a_patient_folder_with_no_scan_is_a_failed_row_not_a_vanished_one(tmp_path, models):
    for pid in ("HCC_001", "HCC_002"):
        write_ct_series(ct(1), tmp_path / "in" / pid / "study" / "ct", patient_id=pid)
    (tmp_path / "in" / "HCC_003").mkdir()  # empty
    (tmp_path / "in" / "HCC_004").mkdir()
    (tmp_path / "in" / "HCC_004" / "report.txt").write_text("no scan")
    assert segment([tmp_path / "in"], tmp_path / "out", models) == 1
    rows = {r["case"]: r for r in read_rows(tmp_path / "out" / "summary.csv")}
    assert [rows[c]["status"] for c in sorted(rows)] == ["done", "done", "failed", "failed"]
    assert "no DICOM files found: the folder is empty" in rows["HCC_003"]["error"]
    assert "(report.txt), none of them DICOM" in rows["HCC_004"]["error"]
    # the output folder written inside the input folder is not taken for a patient next time
    assert segment([tmp_path / "in"], tmp_path / "in" / "out", models) == 1
    assert "out" not in [c.name for c in discover_cases([tmp_path / "in"])]


def test_an_unexpected_error_in_one_case_fails_that_row_and_the_batch_goes_on(
    tmp_path, models, monkeypatch
):
    import napari_livertumor.commands.segment as seg_cmd

    real = seg_cmd.segment_one

    def flaky(case, *args, **kwargs):
        if case.name == "case01":
            raise OverflowError("Python integer -1000 out of bounds for uint16")
        return real(case, *args, **kwargs)

    monkeypatch.setattr(seg_cmd, "segment_one", flaky)
    assert segment([cohort(tmp_path / "in", 3)], tmp_path / "out", models) == 1
    rows = {r["case"]: r for r in read_rows(tmp_path / "out" / "summary.csv")}
    assert [rows[c]["status"] for c in ("case00", "case01", "case02")] == [
        "done",
        "failed",
        "done",
    ]
    assert "OverflowError" in rows["case01"]["error"] and "case01.nii.gz" in rows["case01"]["error"]


def test_a_case_out_of_memory_says_so_and_the_batch_goes_on(tmp_path, models, monkeypatch):
    """numpy's "Unable to allocate 900. MiB for an array ..." alone did not say it was memory."""
    import napari_livertumor.commands.segment as seg_cmd
    from napari_livertumor._widgets._jobs import error_text

    real = seg_cmd.segment_one
    said = "Unable to allocate 900. MiB for an array with shape (512, 512, 900)"

    def greedy(case, *args, **kwargs):
        if case.name == "case01":
            raise MemoryError(said)
        return real(case, *args, **kwargs)

    monkeypatch.setattr(seg_cmd, "segment_one", greedy)
    assert segment([cohort(tmp_path / "in", 3)], tmp_path / "out", models) == 1
    rows = {r["case"]: r for r in read_rows(tmp_path / "out" / "summary.csv")}
    assert [rows[c]["status"] for c in ("case00", "case01", "case02")] == ["done", "failed", "done"]
    assert rows["case01"]["error"].startswith(f"out of memory ({said})")
    assert error_text(MemoryError(said)).startswith(f"Out of memory ({said})")  # the panels


def test_a_worker_out_of_memory_or_an_empty_message_reads_plainly_in_the_panels():
    """In a panel's worker every error is wrapped (JobFailed): a MemoryError read
    "MemoryError: " there, without the advice the panels give."""
    from napari_livertumor._widgets._jobs import JobFailed, error_text

    def wrapped(exc):
        try:
            raise JobFailed(f"{type(exc).__name__}: {exc}") from exc
        except JobFailed as failed:
            return failed

    assert error_text(wrapped(MemoryError())) == "Out of memory: close other programs or layers"
    said = "Unable to allocate 900. MiB"
    assert error_text(wrapped(MemoryError(said))).startswith(f"Out of memory ({said})")
    assert error_text(wrapped(ValueError())) == "ValueError"
    assert error_text(wrapped(KeyError("spacing"))) == "KeyError: 'spacing'"


def test_a_second_batch_into_the_same_folder_keeps_the_earlier_rows(tmp_path, models):
    for i in range(4):
        write_nifti(ct(i), tmp_path / ("a" if i < 2 else "b") / f"case{i:02d}.nii.gz")
    assert segment([tmp_path / "a"], tmp_path / "out", models) == 0
    assert segment([tmp_path / "b"], tmp_path / "out", models) == 0
    rows = read_rows(tmp_path / "out" / "summary.csv")
    assert [r["case"] for r in rows] == ["case00", "case01", "case02", "case03"]
    assert "warnings" in rows[0]  # each case's warnings, e.g. values that are not HU
    assert "Hounsfield" in rows[0]["warnings"]  # ct() has no air: it is warned about
    # a summary.csv this command did not write is kept; the summary goes beside it
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "summary.csv").write_text("my own notes\n")
    assert segment([tmp_path / "a"], tmp_path / "out2", models) == 0
    assert (tmp_path / "out2" / "summary.csv").read_text() == "my own notes\n"
    assert len(read_rows(tmp_path / "out2" / "summary-1.csv")) == 2
    assert segment([tmp_path / "b"], tmp_path / "out2", models) == 0  # merged there again
    assert len(read_rows(tmp_path / "out2" / "summary-1.csv")) == 4
    assert not (tmp_path / "out2" / "summary-2.csv").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_case_runs(
    tmp_path, models, monkeypatch, capsys
):
    import tempfile

    import napari_livertumor.commands.segment as seg_cmd

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    ran = []
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    monkeypatch.setattr(seg_cmd, "segment_one", lambda *a, **k: ran.append(a))
    assert segment([cohort(tmp_path / "in", 2)], tmp_path / "out", models) != 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'out'}: cannot be written to (Operation not permitted)" in err
    assert ran == []


def test_list_refuses_an_output_folder_that_cannot_be_written_as_the_run_does(
    tmp_path, models, monkeypatch, capsys
):
    """QA b68: --list printed "skip: complete" (exit 0) for a read-only folder of complete
    outputs, while the run stopped at once: "out2: cannot be written to (permissions)"."""
    import tempfile

    data = cohort(tmp_path / "in", 1)
    out = tmp_path / "out2"
    assert segment([data], out, models, "--stages", "liver") == 0
    capsys.readouterr()

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    for extra in ((), ("--list",)):
        assert segment([data], out, models, "--stages", "liver", *extra) == 1
        said = capsys.readouterr()
        assert f"{out}: cannot be written to (Operation not permitted)" in said.err
        assert "skip" not in said.out


def test_a_folder_in_a_place_that_takes_no_files_is_named_as_given(tmp_path, monkeypatch):
    """Export to /proc/forbidden said "/proc: cannot be written to (No such file or
    directory)": another folder, and a reason contradicting itself."""
    import tempfile

    from napari_livertumor.fileio import check_writable_folder

    def no_such(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_such)
    with pytest.raises(InputError) as info:
        check_writable_folder(tmp_path / "forbidden")
    assert str(info.value) == (
        f"{tmp_path / 'forbidden'}: cannot be created: {tmp_path} does not allow it "
        "(it takes no new files)"
    )


def test_a_run_that_writes_nothing_leaves_no_empty_output_folder(tmp_path, models):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no scan")
    assert segment([tmp_path / "empty"], tmp_path / "out", models) == 1
    assert not (tmp_path / "out").exists()
    (tmp_path / "mine").mkdir()  # a folder that was there before stays
    assert segment([tmp_path / "empty"], tmp_path / "mine", models) == 1
    assert (tmp_path / "mine").is_dir()


def test_one_patient_folder_beside_an_empty_one_is_still_a_folder_of_patients(tmp_path, caplog):
    """HCC_001/ (PatientID HCC_001) beside an empty HCC_002/ was read as one case named after
    the parent folder, and HCC_002 vanished without a word."""
    write_ct_series(ct(1), tmp_path / "in" / "HCC_001" / "study" / "ct", patient_id="HCC_001")
    (tmp_path / "in" / "HCC_002").mkdir()
    cases = discover_cases([tmp_path / "in"])
    assert [c.name for c in cases] == ["HCC_001", "HCC_002"]
    assert cases[0].path == tmp_path / "in" / "HCC_001"
    # alone in its folder (a one-patient download) it is still that patient, as convert names
    # it (the case was named after the folder above)
    (tmp_path / "in" / "HCC_002").rmdir()
    assert [(c.name, c.path) for c in discover_cases([tmp_path / "in"])] == [
        ("HCC_001", tmp_path / "in" / "HCC_001")
    ]

    # one study's series folders (not named after the patient) beside an empty folder: one case,
    # and the empty folder is named
    study = tmp_path / "study"
    write_ct_series(ct(1), study / "103.000000-LIVER 3 PHASE", patient_id="HCC_001")
    (study / "300.000000-Segmentation").mkdir()
    with caplog.at_level("WARNING"):
        cases = discover_cases([study])
    assert [c.path for c in cases] == [study]
    assert "no scan in 300.000000-Segmentation" in caplog.text


def test_a_rerun_that_only_adds_a_file_keeps_the_cases_segmentation_time(
    tmp_path, models, monkeypatch
):
    """A rerun into a batch folder that only added a file (--preview asked for afterwards, or
    a preview deleted since) wrote the adding's second into summary.csv's ``seconds``: the
    minutes the case's segmentation took were lost from the summary (its stats kept them)."""
    import napari_livertumor.commands.segment as seg

    data = cohort(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert segment([data], out, models) == 0
    real = seg.add_extras

    def slow_add(case, outdir, stats, *args, **kwargs):
        # the adding made to take longer than the segmentation did: the two times told apart
        time.sleep(stats["timings_s"]["total"] + 0.05)
        return real(case, outdir, stats, *args, **kwargs)

    monkeypatch.setattr(seg, "add_extras", slow_add)

    def check(statuses):
        rows = {r["case"]: r for r in read_rows(out / "summary.csv")}
        assert {c: r["status"] for c, r in rows.items()} == statuses
        for case, row in rows.items():
            stats = json.loads((out / f"{case}_stats.json").read_text())
            # (to 2 decimals, as a case segmented now: a skipped case's showed the stats' 3)
            assert float(row["seconds"]) == round(stats["timings_s"]["total"], 2), (case, row)
            assert len(row["seconds"].partition(".")[2]) <= 2, (case, row)

    assert segment([data], out, models, "--preview") == 0  # a new kind of output asked for
    check(
        {"case00": "done (added case00_preview.png)", "case01": "done (added case01_preview.png)"}
    )
    (out / "case00_preview.png").unlink()
    assert segment([data], out, models, "--preview") == 0  # one deleted since
    check({"case00": "done (added case00_preview.png)", "case01": "skipped (complete)"})


def test_a_single_case_redone_into_a_batch_folder_updates_its_summary_row(tmp_path, models, capsys):
    """One case alone writes no summary, and left an earlier batch's row of that case telling
    the old figures and settings."""
    data = cohort(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert segment([data], out, models) == 0
    before = {r["case"]: r for r in read_rows(out / "summary.csv")}
    rows = read_rows(out / "summary.csv")
    rows[1]["seconds"] = "999.0"  # case01's row, marked to see it replaced
    with open(out / "summary.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert segment([data / "case01.nii.gz"], out, models, "--stages", "liver") == 0
    after = {r["case"]: r for r in read_rows(out / "summary.csv")}
    assert after["case00"] == before["case00"]
    assert after["case01"]["seconds"] not in ("999.0", "") and after["case01"]["status"] == "done"
    # rows made with other settings are told apart in the summary
    assert after["case00"]["settings"].startswith("stages=both; refine=")
    # (a liver-only run: no tumor-stage settings, no raw "None")
    assert after["case01"]["settings"] == f"stages=liver; models={models}"
    # another scan of the same name, refused (its outputs there are case01's): the summary
    # keeps the row telling of the outputs on disk instead of a failure with no files
    write_nifti(ct(7), tmp_path / "other" / "case01.nii.gz")
    kept = {r["case"]: r for r in read_rows(out / "summary.csv")}
    capsys.readouterr()
    assert segment([tmp_path / "other" / "case01.nii.gz", data / "case00.nii.gz"], out, models) == 1
    recap = capsys.readouterr().err  # the batch's recap says refused, not failed
    assert "livertumor segment: case01 refused (earlier outputs kept): " in recap, recap
    now = {r["case"]: r for r in read_rows(out / "summary.csv")}
    assert now["case00"]["status"] == "skipped (complete)"
    # ... and says it was refused (it read "done" while the console said "failed")
    assert now["case01"]["status"] == "refused (earlier outputs kept)"
    assert "made from another input" in now["case01"]["error"]
    # its hint is another folder: --overwrite would replace the other input's outputs
    assert (
        "give this one another output folder (--overwrite would replace the other input's"
        in (now["case01"]["error"])
    )
    assert {k: v for k, v in now["case01"].items() if k not in ("status", "error")} == {
        k: v for k, v in kept["case01"].items() if k not in ("status", "error")
    }
    # outputs of its own input, left incomplete: that failure replaces the row (it named files
    # that are no longer whole)
    (out / "case01_stats.json").unlink()
    assert segment([data / "case01.nii.gz", data / "case00.nii.gz"], out, models) == 1
    now = {r["case"]: r for r in read_rows(out / "summary.csv")}
    assert now["case01"]["status"] == "failed" and "without its stats" in now["case01"]["error"]
    # and with no summary there, one case still writes none
    assert segment([data / "case00.nii.gz"], tmp_path / "alone", models) == 0
    assert not (tmp_path / "alone" / "summary.csv").exists()


def test_segmenting_into_the_input_folder_never_reads_its_own_label_maps_as_cts(tmp_path, models):
    """``-o`` the input folder: the next run found ``case00_labels.nii.gz`` as a CT of its own
    (segmenting a label map), and a DICOM folder's run took its label map for the only case."""
    nifti = cohort(tmp_path / "nifti", 2)
    assert segment([nifti], nifti, models) == 0
    assert segment([nifti], nifti, models) == 0  # the outputs are complete: both skipped
    assert sorted(c.name for c in discover_cases([nifti])) == ["case00", "case01"]
    assert not list(nifti.glob("*_labels_labels.nii.gz"))
    assert {r["case"] for r in read_rows(nifti / "summary.csv")} == {"case00", "case01"}

    dicom = tmp_path / "P01"
    write_ct_series(ct(5), dicom)
    assert segment([dicom], dicom, models) == 0
    assert (dicom / "P01_labels.nii.gz").is_file()
    [case] = discover_cases([dicom])
    assert (case.name, case.path) == ("P01", dicom)
    # killed between its two writes (labels, no stats yet): still ours, beside its input
    (dicom / "P01_stats.json").unlink()
    assert [c.name for c in discover_cases([dicom])] == ["P01"]
    (nifti / "case00_stats.json").unlink()
    assert sorted(c.name for c in discover_cases([nifti])) == ["case00", "case01"]
    # a label map of no input here is no output of ours, but named a label map beside a scan:
    # no case either (alone in its folder it is one, and fails naming what it holds)
    (nifti / "case00.nii.gz").rename(tmp_path / "elsewhere.nii.gz")
    assert {c.name for c in discover_cases([nifti])} == {"case01"}
    (nifti / "case01.nii.gz").unlink()
    assert "case00_labels" in {c.name for c in discover_cases([nifti])}


def test_a_ct_replaced_at_the_same_path_is_redone_not_skipped(tmp_path, models, caplog):
    """Only the path was compared: a new CT copied over the old one kept the old labels,
    which no longer lay on its grid."""
    write_nifti(ct(1), tmp_path / "case.nii.gz")
    out = tmp_path / "out"
    assert segment([tmp_path / "case.nii.gz"], out, models) == 0
    write_nifti(ct(2, shape=(9, 32, 32)), tmp_path / "case.nii.gz")
    assert segment([tmp_path / "case.nii.gz"], out, models) == 0
    assert "the input's files changed" in caplog.text
    assert nib.load(out / "case_labels.nii.gz").shape == (32, 32, 9)


def _two_patients(folder):
    """A folder of two patients' study folders: ``folder.parent`` given is one case per
    patient, each reading it all."""
    for i, pid in enumerate(("HCC_002", "HCC_001")):
        write_ct_series(ct(i), folder / f"study_{pid}" / "ct", patient_id=pid)
    return folder


def _plans(inputs, out, models, capsys, *extra):
    capsys.readouterr()
    assert segment(inputs, out, models, "--stages", "liver", "--list", *extra) == 0
    return {n: plan for n, _, plan in (x.split("\t") for x in capsys.readouterr().out.splitlines())}


def test_files_beside_the_dicom_slices_are_no_change_of_the_input(tmp_path, models, capsys):
    """Every file of a DICOM folder counted in its input stamp: a notes.txt, a screenshot, a
    spreadsheet or a .git object added beside the slices marked the case "segment again: made
    with other settings (the input's files changed)", and a README in one patient's folder
    every patient of the folder. Only the DICOM files the case reads count."""
    folder, out = _two_patients(tmp_path / "in" / "TWO"), tmp_path / "out"
    assert segment([tmp_path / "in"], out, models, "--stages", "liver") == 0
    assert _plans([tmp_path / "in"], out, models, capsys) == dict.fromkeys(
        ("HCC_001", "HCC_002"), "skip: complete"
    )
    (folder / "study_HCC_001" / "README.txt").write_text("follow-up in March\n")
    (folder / "notes.txt").write_text("hi\n")
    (folder / "screenshot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (folder / "volumes.xlsx").write_bytes(b"PK\x03\x04" + bytes(300))
    (folder / ".git" / "objects" / "ab").mkdir(parents=True)
    (folder / ".git" / "objects" / "ab" / "cdef0123").write_bytes(b"x\x01" + bytes(50))
    assert _plans([tmp_path / "in"], out, models, capsys) == dict.fromkeys(
        ("HCC_001", "HCC_002"), "skip: complete"
    )
    # what the case reads is still watched: a slice replaced, a slice added
    changed = "segment again: made with other settings (the input's files changed)"
    slices = sorted((folder / "study_HCC_001" / "ct").iterdir())
    os.utime(slices[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    assert set(_plans([tmp_path / "in"], out, models, capsys).values()) == {changed}
    assert segment([tmp_path / "in"], out, models, "--stages", "liver") == 0
    (slices[0].parent / "IM_extra").write_bytes(slices[1].read_bytes())  # (no .dcm name)
    assert set(_plans([tmp_path / "in"], out, models, capsys).values()) == {changed}


def test_outputs_recorded_when_every_file_counted_are_still_complete(tmp_path, models, capsys):
    """Input stamps recorded before only DICOM files counted ("N files, …", a notes.txt
    among them) are compared with every file's stamp: the new stamp made every earlier
    output "segment again" otherwise."""
    from napari_livertumor.commands.segment import _stats_digest

    folder, out = _two_patients(tmp_path / "in" / "TWO"), tmp_path / "out"
    (folder / "notes.txt").write_text("hi\n")
    assert segment([tmp_path / "in"], out, models, "--stages", "liver") == 0

    def every_file_stamp():
        files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
        st = [p.stat() for p in files]
        return f"{len(st)} files, {sum(s.st_size for s in st)}:{max(s.st_mtime_ns for s in st)}"

    for stats_path in out.glob("*_stats.json"):  # as the earlier version recorded them
        stats = json.loads(stats_path.read_text())
        stats["run_settings"]["input_stamp"] = every_file_stamp()
        stats["stats_digest"] = _stats_digest(stats)
        stats_path.write_text(json.dumps(stats))
    assert _plans([tmp_path / "in"], out, models, capsys) == dict.fromkeys(
        ("HCC_001", "HCC_002"), "skip: complete"
    )
    (folder / "study_HCC_001" / "ct" / "extra.dcm").write_bytes(
        next((folder / "study_HCC_001" / "ct").glob("*.dcm")).read_bytes()
    )
    changed = "segment again: made with other settings (the input's files changed)"
    assert set(_plans([tmp_path / "in"], out, models, capsys).values()) == {changed}


def test_list_looks_at_a_folder_of_several_patients_files_once(
    tmp_path, models, capsys, monkeypatch
):
    """--list stamped the input folder once per case: 120 patients of one folder walked it
    120 times (cases × files, 0.3 s a case)."""
    import napari_livertumor.commands.segment as seg

    folder = _two_patients(tmp_path / "in" / "TWO")  # found as one case per patient of "in"
    write_ct_series(ct(3), folder / "study_HCC_003" / "ct", patient_id="HCC_003")
    walked, real_walk, real_plan = [], seg.all_paths, seg._print_plan

    def planning(*args, **kwargs):
        def counted(root):
            walked.append(Path(root))
            return real_walk(root)

        monkeypatch.setattr(seg, "all_paths", counted)
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(seg, "_print_plan", planning)
    assert len(_plans([tmp_path / "in"], tmp_path / "out", models, capsys)) == 3
    assert walked == [tmp_path / "in"]  # (the three cases' input)


def test_a_second_input_of_a_name_never_takes_another_inputs_name(tmp_path, models):
    """'x' and 'x ' both read as x: the second became x_2, the name of the real x_2.nii.gz,
    and with --overwrite one patient's outputs replaced another's."""
    write_nifti(ct(1), tmp_path / "x.nii.gz")
    write_nifti(ct(2), tmp_path / "x .nii.gz")
    write_nifti(ct(3), tmp_path / "x_2.nii.gz")
    names = [c.name for c in discover_cases([tmp_path])]
    assert sorted(names) == ["x", "x_2", "x_3"]
    out = tmp_path / "out"
    assert segment([tmp_path], out, models, "--stages", "liver") == 0
    rows = read_rows(out / "summary.csv")
    assert sorted(r["case"] for r in rows) == ["x", "x_2", "x_3"]
    assert len({r["input"] for r in rows}) == 3


def test_a_stop_between_labels_and_stats_never_leaves_old_stats_saying_complete(
    tmp_path, models, monkeypatch
):
    """Redoing a case wrote the new labels beside the old stats; a disk full (or a kill)
    before the new stats came left old stats that said complete: the next run skipped it.
    Then the labels went first and a full disk left them without stats: refused by the next
    run (both are now written aside, and put in place together)."""
    import json

    import napari_livertumor.commands.segment as seg_cmd

    write_nifti(ct(1), tmp_path / "case.nii.gz")
    out = tmp_path / "out"
    assert segment([tmp_path / "case.nii.gz"], out, models, "--stages", "liver") == 0
    before = {p.name: p.read_bytes() for p in out.glob("case_*")}
    real = seg_cmd.atomic_write_text

    def full(path, text, **kwargs):
        if "_stats.json" in str(path):
            raise OSError(28, "No space left on device")  # as a write() says it: no file
        return real(path, text, **kwargs)

    monkeypatch.setattr(seg_cmd, "atomic_write_text", full)
    assert segment([tmp_path / "case.nii.gz"], out, models) == 1  # both stages: redone
    monkeypatch.setattr(seg_cmd, "atomic_write_text", real)
    # the old outputs as they were, nothing written aside left
    assert {p.name: p.read_bytes() for p in out.glob("case_*")} == before
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    stages = json.loads((out / "case_stats.json").read_text())["run_settings"]["stages"]
    assert segment([tmp_path / "case.nii.gz"], out, models) == 0  # redone, not refused
    again = json.loads((out / "case_stats.json").read_text())["run_settings"]["stages"]
    assert again != stages


def test_a_full_disk_names_the_file_the_user_asked_for(tmp_path, models, monkeypatch, caplog):
    import napari_livertumor.commands.segment as seg_cmd

    write_nifti(ct(1), tmp_path / "case.nii.gz")
    real = seg_cmd.atomic_write_text

    def full(path, text, **kwargs):
        if "_stats.json" in str(path):
            from napari_livertumor.fileio import atomic_path

            with atomic_path(path, shown_as=kwargs.get("shown_as")):
                raise OSError(28, "No space left on device")
        return real(path, text, **kwargs)

    monkeypatch.setattr(seg_cmd, "atomic_write_text", full)
    assert segment([tmp_path / "case.nii.gz"], tmp_path / "out", models, "--stages", "liver") == 1
    assert f"{tmp_path / 'out' / 'case_stats.json'}: No space left" in caplog.text or (
        str(tmp_path / "out" / "case_stats.json") in caplog.text and "No space" in caplog.text
    )


def test_a_liver_only_rerun_with_other_refinement_settings_is_skipped(tmp_path, models, caplog):
    caplog.set_level("INFO", logger="livertumor")
    write_nifti(ct(1), tmp_path / "case.nii.gz")
    out = tmp_path / "out"
    assert segment([tmp_path / "case.nii.gz"], out, models, "--stages", "liver") == 0
    args = ["segment", str(tmp_path / "case.nii.gz"), "-o", str(out), "--models", str(models)]
    assert main([*args, "--device", "cpu", "--stages", "liver", "--tta", "inplane"]) == 0
    assert "already complete, skipped" in caplog.text and "redoing" not in caplog.text


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_an_interrupted_batch_lists_the_cases_it_finished(tmp_path, models, monkeypatch, stop):
    """Ctrl-C, or a job scheduler's SIGTERM (scancel, a time limit), mid-batch: the summary
    lists the cases finished, and the case stopped left nothing."""
    import os
    import signal

    import napari_livertumor.commands.segment as seg_cmd

    cohort(tmp_path / "in", 3)
    real, calls = seg_cmd.segment_one, []

    def stop_at_the_second(case, *args, **kwargs):
        calls.append(case.name)
        if len(calls) == 2:
            if stop == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            raise KeyboardInterrupt
        return real(case, *args, **kwargs)

    monkeypatch.setattr(seg_cmd, "segment_one", stop_at_the_second)
    out = tmp_path / "out"
    # the exit status a shell gives for each: 128 + SIGINT (2) or 128 + SIGTERM (15)
    assert segment([tmp_path / "in"], out, models) == (143 if stop == "sigterm" else 130)
    rows = read_rows(out / "summary.csv")
    assert [(r["case"], r["status"]) for r in rows] == [("case00", "done")]
    assert not (out / "case01_labels.nii.gz").exists()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("path\n", "has a 'path' column but no cases under it"),
        ("path,case\r\n,\r\n,\r\n", "has a 'path' column but no cases under it"),
        ("path,case\na.nii.gz,a\n,b\n", "line 3: empty path"),
        ("case;path\nA;a.nii.gz\n", "separated by commas"),
        ("Path\na.nii.gz\n", "column names are lower case"),
        ("file\na.nii.gz\n", "columns found: 'file'"),
    ],
)
def test_a_case_list_that_cannot_be_used_says_why(tmp_path, text, said):
    (tmp_path / "list.csv").write_text(text)
    with pytest.raises(InputError, match=said):
        discover_cases([tmp_path / "list.csv"])


def test_rows_of_only_commas_in_a_case_list_are_no_cases(tmp_path):
    """A spreadsheet saves cleared rows as ',': one refused the whole batch ("empty path")."""
    for name in ("a", "b"):
        (tmp_path / f"{name}.nii.gz").write_bytes(b"")
    (tmp_path / "list.csv").write_text("path,case\r\na.nii.gz,A\r\n,\r\nb.nii.gz,B\r\n,\r\n")
    assert [c.name for c in discover_cases([tmp_path / "list.csv"])] == ["A", "B"]


def test_a_model_recalibrated_in_place_is_redone_and_one_copied_anew_is_not(
    tmp_path, models, caplog
):
    """Only model.safetensors' size and time were recorded: a recalibration (metadata.json:
    logit bias, lesion filter) kept the old masks, and the same weights reinstalled (new
    time) redid every case."""
    import shutil
    import time

    from napari_livertumor.training.calibrate import write_lesion_filter

    m = tmp_path / "m"
    shutil.copytree(models, m)
    cohort(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert segment([tmp_path / "in"], out, m) == 0
    for stage in ("liver", "tumor"):  # the same bytes written again
        weights = m / stage / "model.safetensors"
        data = weights.read_bytes()
        time.sleep(0.01)
        weights.write_bytes(data)
    assert segment([tmp_path / "in"], out, m) == 0
    assert {r["status"] for r in read_rows(out / "summary.csv")} == {"skipped (complete)"}
    write_lesion_filter(m / "tumor", [0.0, 5.0, 50.0])  # recalibrated: the masks change
    assert segment([tmp_path / "in"], out, m) == 0
    assert {r["status"] for r in read_rows(out / "summary.csv")} == {"done"}
    # which model and which file (QA compat59: "a model changed" after an upgrade that had
    # changed only the shipped models' metadata.json read as the user's change)
    assert "the tumor model's metadata.json changed (its weights are the same)" in caplog.text


def test_a_changed_model_is_said_by_stage_and_file():
    """The redo's words name the stage, weights or metadata.json, and the shipped model's
    change as an upgrade's (every case of a folder was redone after one, said as "a model
    changed (its weights or metadata.json)"); a redo after --models was dropped names
    --models alone, with no empty setting trailing it."""
    from napari_livertumor.commands.segment import _model_change_words

    made = {"model_stamps": {"liver": "aaaa:1111", "tumor": "bbbb:2222"}}
    shipped = {"liver_model": None, "tumor_model": None}
    assert _model_change_words(
        made, {**shipped, "model_stamps": {"liver": "aaaa:1111", "tumor": "bbbb:3333"}}
    ) == (
        "the shipped tumor model's metadata.json changed (its weights are the same; an upgrade "
        "of livertumor?)"
    )
    assert _model_change_words(
        {"liver_model": "/m/liver", "tumor_model": "/m/tumor", **made},
        {
            "liver_model": "/m/liver",
            "tumor_model": "/m/tumor",
            "model_stamps": {"liver": "cccc:1111", "tumor": "bbbb:3333"},
        },
    ) == (  # fmt: skip
        "the liver model's weights changed; the tumor model's metadata.json changed (its "
        "weights are the same)"
    )
    # --models dropped (QA rev59: "the shipped liver model's metadata.json changed; an
    # upgrade?"): the folder's change is said by --models alone
    given = {"liver_model": "/m/liver", "tumor_model": "/m/tumor", **made}
    stamps = {"liver": "aaaa:9999", "tumor": "bbbb:2222"}
    assert _model_change_words(given, {**shipped, "model_stamps": stamps}) == ""
    from napari_livertumor.commands.segment import _compare_run

    old = {"run_settings": {"input": "/x.nii.gz", **given}}
    relation, what = _compare_run(old, {"input": "/x.nii.gz", **shipped, "model_stamps": stamps})
    # the exact words: the model stamps' empty words left out (a redo said "other settings:
    # --models (liver); --models (tumor); ", an empty setting at its end)
    assert (relation, what) == ("other settings", "--models (liver); --models (tumor)")


def test_ctrl_c_while_a_redone_case_writes_its_labels_leaves_it_to_redo(
    tmp_path, models, monkeypatch
):
    """The old stats went before the new labels were written: a Ctrl-C then left old labels
    without stats, refused by every later run without --overwrite."""
    import napari_livertumor.io.nifti as nifti_mod

    cohort(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert segment([tmp_path / "in"], out, models) == 0
    real = nifti_mod.write_nifti

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nifti_mod, "write_nifti", interrupted)
    assert segment([tmp_path / "in"], out, models, "--tta", "inplane") == 130
    monkeypatch.setattr(nifti_mod, "write_nifti", real)
    assert segment([tmp_path / "in"], out, models, "--tta", "inplane") == 0
    assert not list(out.glob(".*"))  # no temporary file left


def test_liver_only_outputs_of_the_previous_version_are_still_complete():
    """Records written before liver-only runs left the tumor settings out held their values:
    every such case was redone once, 'made with other settings (refine, tta, …)'."""
    from napari_livertumor.commands.segment import _TUMOR_ONLY_SETTINGS, _compare_run

    wanted = {"input": "/x/ct.nii.gz", "series_uid": None, "stages": "liver", "window_growth": 4}
    wanted |= dict.fromkeys(_TUMOR_ONLY_SETTINGS)
    earlier = {"run_settings": {**wanted, "refine": True, "tta": "none", "tumor_model": "/m"}}
    assert _compare_run(earlier, wanted) == ("same", "")
    earlier["run_settings"]["window_growth"] = 1
    assert _compare_run(earlier, wanted) == ("other settings", "--window-growth")


def test_a_changed_flag_says_which_run_had_it():
    """Outputs made with --no-refine, edited, and a run without it: refused with "the run with
    other settings (--no-refine) would replace it", read as this run's flag when it was the
    earlier one's."""
    from napari_livertumor.commands.segment import _compare_run

    wanted = {"input": "/x/ct.nii.gz", "stages": "both", "refine": True, "allow_non_ct": False}
    earlier = {"run_settings": {**wanted, "refine": False}}
    assert _compare_run(earlier, wanted) == (
        "other settings",
        "--no-refine: the outputs were made with it, this run refines",
    )
    earlier = {"run_settings": {**wanted, "allow_non_ct": True}}
    wanted["refine"] = False
    relation, what = _compare_run(earlier, wanted)
    # (each flag's words hold a comma: "; " between flags)
    assert what == (
        "--allow-non-ct: the outputs were made with it, this run leaves it out; "
        "--no-refine: this run asks for it, the outputs were refined"
    )


def test_names_that_differ_only_in_letter_case_never_share_outputs(tmp_path):
    """HCC_001 and hcc_001 are one file on macOS and Windows: with --overwrite one patient's
    labels replaced the other's while the summary said both were done."""
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    write_nifti(ct(1), tmp_path / "A" / "HCC_001.nii.gz")
    write_nifti(ct(2), tmp_path / "B" / "hcc_001.nii.gz")
    write_nifti(ct(3), tmp_path / "B" / "Cafe\u0301.nii.gz")  # é as e + accent (macOS)
    write_nifti(ct(4), tmp_path / "A" / "Caf\u00e9.nii.gz")
    names = [c.name for c in discover_cases([tmp_path / "A", tmp_path / "B"])]
    folded = sorted(n.casefold() for n in names)
    # é written either way is one letter (the accent was a '_': 'Cafe_'), and one name
    assert folded == ["caf\u00e9", "caf\u00e9_2", "hcc_001", "hcc_001_2"], names


def test_files_of_one_generic_name_are_named_by_their_folders(tmp_path, monkeypatch):
    """TotalSegmentator's s0001/ct.nii.gz, KiTS's case_00000/imaging.nii.gz: several such files
    were written as ct, ct_2, ct_3, and a loop giving one at a time found the second's name
    taken; each is its folder's patient, as the panels name it. A file named after its patient
    keeps its own name."""
    for folder in ("s0001", "s0002", "s0003"):
        write_nifti(ct(1), tmp_path / folder / "ct.nii.gz")
    write_nifti(ct(2), tmp_path / "case_00000" / "imaging.nii.gz")
    write_nifti(ct(3), tmp_path / "case_00001" / "imaging.nii.gz")
    write_nifti(ct(2), tmp_path / "A" / "HCC_001.nii.gz")
    write_nifti(ct(2), tmp_path / "B" / "HCC_001.nii.gz")
    files = sorted(tmp_path.glob("*/*.nii.gz"))
    names = [c.name for c in discover_cases(files)]
    assert names == ["HCC_001", "HCC_001_2", "case_00000", "case_00001", "s0001", "s0002", "s0003"]
    assert [c.name for c in discover_cases([tmp_path / "s0002" / "ct.nii.gz"])] == ["s0002"]
    assert [c.name for c in discover_cases([tmp_path / "s0002"])] == ["s0002"]
    # past folders whose names say nothing either (P/images/ct.nii.gz: P)
    write_nifti(ct(3), tmp_path / "x" / "images" / "ct.nii.gz")
    write_nifti(ct(3), tmp_path / "y" / "Images" / "ct.nii.gz")
    names = [c.name for c in discover_cases(sorted(tmp_path.glob("*/*/ct.nii.gz")))]
    assert names == ["x", "y"], names
    # the same name whatever the folder it is given from (a loop run inside each folder)
    monkeypatch.chdir(tmp_path / "s0002")
    assert [c.name for c in discover_cases(["ct.nii.gz"])] == ["s0002"]
    # a folder holding one KiTS case: its scan (it was one failed case, "give one of them")
    write_nifti(ct(4), tmp_path / "kits1" / "case_00007" / "imaging.nii.gz")
    write_nifti(ct(4), tmp_path / "kits1" / "case_00007" / "segmentation.nii.gz")
    [case] = discover_cases([tmp_path / "kits1"])
    assert (case.name, case.path.name) == ("case_00007", "imaging.nii.gz")


def test_an_output_folder_of_generic_names_keeps_them(tmp_path, models):
    """Segmented before such files were named by their folders (ct, ct_2): the same inputs
    were segmented again as s0001, s0002, and summary.csv listed each twice."""
    from napari_livertumor.commands import segment as seg_cmd

    files = []
    for folder in ("s0001", "s0002"):
        write_nifti(ct(1), tmp_path / folder / "ct.nii.gz")
        files.append(tmp_path / folder / "ct.nii.gz")
    out = tmp_path / "out"
    assert segment(files, out, models) == 0
    for old, new in (("ct", "s0001"), ("ct_2", "s0002")):  # as the earlier version named them
        for suffix in ("_labels.nii.gz", "_stats.json"):
            (out / f"{new}{suffix}").rename(out / f"{old}{suffix}")
    names = [c.name for c in seg_cmd.discover_cases(files, outdir=out)]
    assert names == ["ct", "ct_2"], names
    assert segment(files, out, models) == 0
    assert sorted(p.name for p in out.glob("*_stats.json")) == ["ct_2_stats.json", "ct_stats.json"]


def test_label_maps_named_so_beside_their_scans_are_no_cases(tmp_path, caplog):
    """LiTS's volume-N.nii beside segmentation-N.nii, KiTS's case_N/imaging.nii.gz beside
    segmentation.nii.gz: the label maps were segmented as CTs (each a failed case), and a
    KiTS folder was one failed case ("give one of them")."""
    import logging

    lits, kits = tmp_path / "LiTS", tmp_path / "kits"
    for n in range(2):
        write_nifti(ct(n), lits / f"volume-{n}.nii")
        write_nifti(ct(n), lits / f"segmentation-{n}.nii")
        write_nifti(ct(n), kits / f"case_0000{n}" / "imaging.nii.gz")
        write_nifti(ct(n), kits / f"case_0000{n}" / "segmentation.nii.gz")
    with caplog.at_level(logging.INFO):
        assert [c.name for c in discover_cases([lits])] == ["volume-0", "volume-1"]
    assert "2 file(s) named as label maps skipped" in caplog.text
    cases = discover_cases([kits])
    assert [(c.name, c.path.name) for c in cases] == [
        ("case_00000", "imaging.nii.gz"),
        ("case_00001", "imaging.nii.gz"),
    ]
    assert [c.name for c in discover_cases([kits / "case_00001"])] == ["case_00001"]
    # a folder of label maps only: left to fail, named (not an empty run); a file given is read
    only = tmp_path / "only"
    write_nifti(ct(1), only / "liver_mask.nii.gz")
    assert [c.name for c in discover_cases([only])] == ["liver_mask"]
    assert len(discover_cases([lits / "segmentation-1.nii"])) == 1


def test_a_dcm2niix_folder_segments_the_corrected_copy_once(tmp_path, caplog):
    """dcm2niix writes a gantry-tilted series as X.nii.gz (the tilt kept as a shear) and
    X_Tilt_1.nii.gz (resampled), one of uneven slice spacing as X and X_Eq_1, a DICOM overlay
    as X_ROI1: each was segmented as a patient of its own, the one CT twice, and a patient
    folder holding X and X_Tilt_1 was a case that failed (no DICOM in it)."""
    import logging

    flat, patients = tmp_path / "dcm2niix", tmp_path / "patients"
    for k, name in enumerate(
        ("Abd_3", "Abd_3_Tilt_1", "Abd_3_ROI1", "Liver_5", "Liver_5_Eq_1", "Chest_7")
    ):
        write_nifti(ct(k), flat / f"{name}.nii.gz")
    for k, name in enumerate(("P1/CT_2", "P1/CT_2_Tilt_Eq_1", "P2/CT_4", "P3/CT_6")):
        write_nifti(ct(k), patients / f"{name}.nii.gz")
    write_nifti(ct(9), patients / "P3" / "CT_6_Tilt_1.nii.gz")
    (patients / "P3" / "CT_6.json").write_text("{}")  # (dcm2niix's BIDS sidecar)
    with caplog.at_level(logging.INFO):
        cases = discover_cases([flat])
    assert [(c.name, c.path.name) for c in cases] == [
        ("Abd_3_Tilt_1", "Abd_3_Tilt_1.nii.gz"),
        ("Chest_7", "Chest_7.nii.gz"),
        ("Liver_5_Eq_1", "Liver_5_Eq_1.nii.gz"),
    ]
    said = caplog.text
    assert "Abd_3.nii.gz: passed over: dcm2niix's corrected copy of the same series, " in said
    assert "Abd_3_Tilt_1.nii.gz, is segmented instead (its gantry tilt resampled away" in said
    assert "Liver_5_Eq_1.nii.gz, is segmented instead (resampled to even slice spacing" in said
    assert "Abd_3_ROI1.nii.gz: passed over: dcm2niix's mask of a DICOM overlay of Abd_3" in said
    cases = discover_cases([patients])
    assert [(c.name, c.path.name) for c in cases] == [
        ("P1", "CT_2_Tilt_Eq_1.nii.gz"),
        ("P2", "CT_4.nii.gz"),
        ("P3", "CT_6_Tilt_1.nii.gz"),
    ]
    # a file named is segmented as given (said that its copy is beside it)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        (case,) = discover_cases([flat / "Abd_3.nii.gz"])
    assert (case.name, case.path.name) == ("Abd_3", "Abd_3.nii.gz")
    assert "Abd_3.nii.gz: segmented as given; dcm2niix's corrected copy" in caplog.text
    # a name that only ends like a copy, with no series of its stem beside it, is a case
    write_nifti(ct(3), tmp_path / "other" / "Knee_Eq_1.nii.gz")
    write_nifti(ct(4), tmp_path / "other" / "Hip.nii.gz")
    assert [c.name for c in discover_cases([tmp_path / "other"])] == ["Hip", "Knee_Eq_1"]
    # dcm2niix's own spelling only (QA rev59: p1 was passed over for P1_EQ_1, another scan)
    for k, name in enumerate(("p1", "P1_EQ_1", "p2", "p2_tilt_1", "p3", "p3_roi1")):
        write_nifti(ct(k), tmp_path / "cased" / f"{name}.nii.gz")
    assert len(discover_cases([tmp_path / "cased"])) == 6


def test_dcm2niix_copies_of_a_series_whose_original_was_deleted_are_one_case(tmp_path, caplog):
    """QA adv60: with X.nii.gz deleted (the user kept only dcm2niix's corrected copies),
    X_Tilt_1 and X_Tilt_Eq_1 of the one scan were segmented as two patients, and a patient
    folder holding them was no case at all; the less corrected copy is passed over now, as X
    is beside them."""
    import logging

    flat, patients = tmp_path / "dcm2niix", tmp_path / "patients"
    for k, name in enumerate(("Abd_3_Tilt_1", "Abd_3_Tilt_Eq_1", "Abd_3_ROI1", "Chest_7")):
        write_nifti(ct(k), flat / f"{name}.nii.gz")
    for k, name in enumerate(("P1/CT_2_Eq_1", "P1/CT_2_Tilt_Eq_1", "P2/CT_4_Tilt_1")):
        write_nifti(ct(k), patients / f"{name}.nii.gz")
    with caplog.at_level(logging.INFO):
        cases = discover_cases([flat])
    assert [(c.name, c.path.name) for c in cases] == [
        ("Abd_3_Tilt_Eq_1", "Abd_3_Tilt_Eq_1.nii.gz"),
        ("Chest_7", "Chest_7.nii.gz"),
    ]
    assert (
        "Abd_3_Tilt_1.nii.gz: passed over: dcm2niix's corrected copy of the same series, "
        "Abd_3_Tilt_Eq_1.nii.gz, is segmented instead (its gantry tilt and uneven slice "
        "spacing resampled away); give this file by name to segment it"
    ) in caplog.text
    assert "Abd_3_ROI1.nii.gz: passed over: dcm2niix's mask of a DICOM overlay of Abd_3" in (
        caplog.text
    )
    assert [(c.name, c.path.name) for c in discover_cases([patients])] == [
        ("P1", "CT_2_Tilt_Eq_1.nii.gz"),
        ("P2", "CT_4_Tilt_1.nii.gz"),
    ]
    # the less corrected copy named is segmented as given, its better copy said
    caplog.clear()
    with caplog.at_level(logging.INFO):
        (case,) = discover_cases([flat / "Abd_3_Tilt_1.nii.gz"])
    assert case.path.name == "Abd_3_Tilt_1.nii.gz"
    assert (
        "Abd_3_Tilt_1.nii.gz: segmented as given; dcm2niix's corrected copy of the same "
        "series, Abd_3_Tilt_Eq_1.nii.gz, is beside it"
    ) in caplog.text
    # dcm2niix's own spelling only, as with X beside them
    for k, name in enumerate(("q1_Tilt_1", "q1_TILT_EQ_1", "q2_tilt_1", "q2_Eq_1")):
        write_nifti(ct(k), tmp_path / "cased" / f"{name}.nii.gz")
    assert len(discover_cases([tmp_path / "cased"])) == 4


def test_a_roi_named_scan_with_no_series_of_its_stem_beside_it_is_a_case(tmp_path):
    """dcm2niix's overlay masks are X_ROI1 .. X_ROI16 beside the series X they belong to; a
    scan that is merely named so (Liver_ROI1.nii.gz, a region cropped by hand) with no
    Liver series beside it must stay a case, not vanish from the batch as "a mask of a DICOM
    overlay"."""
    for k, name in enumerate(("Hip", "Liver_ROI1")):
        write_nifti(ct(k), tmp_path / f"{name}.nii.gz")
    assert [c.name for c in discover_cases([tmp_path])] == ["Hip", "Liver_ROI1"]


def test_a_patient_subfolder_of_dcm2niix_copies_beside_loose_scans_is_one_case(tmp_path):
    """A folder holding one patient's subfolder of dcm2niix files (P1/CT_2 and its corrected
    copy CT_2_Tilt_1) was itself taken as the case, to be read as DICOM it does not hold: the
    two files of one series counted as two scans that nothing tells apart. It is that
    patient's corrected copy, and stays a case beside a loose scan (Hip.nii.gz)."""
    for k, name in enumerate(("P1/CT_2", "P1/CT_2_Tilt_1")):
        write_nifti(ct(k), tmp_path / "one" / f"{name}.nii.gz")
    assert [c.path.name for c in discover_cases([tmp_path / "one"])] == ["CT_2_Tilt_1.nii.gz"]
    write_nifti(ct(3), tmp_path / "one" / "Hip.nii.gz")
    assert sorted(c.path.name for c in discover_cases([tmp_path / "one"])) == [
        "CT_2_Tilt_1.nii.gz",
        "Hip.nii.gz",
    ]


def test_list_shows_the_dcm2niix_files_a_folder_passes_over_and_why(tmp_path, models, capsys):
    """`--list` on a folder dcm2niix wrote showed Abd_3_Tilt_1 and Liver_5_Eq_1 as cases and
    nothing of Abd_3.nii.gz, Liver_5.nii.gz or the overlay mask Abd_3_ROI1: a user checking
    the plan before a long batch could not see that Abd_3 would not be segmented, nor why
    (said only in the log's warnings, among the others)."""
    data = tmp_path / "dcm2niix"
    for k, name in enumerate(("Abd_3", "Abd_3_Tilt_1", "Abd_3_ROI1", "Liver_5", "Liver_5_Eq_1")):
        write_nifti(ct(k), data / f"{name}.nii.gz")
    capsys.readouterr()
    assert segment([data], tmp_path / "out", models, "--list") == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(n, p, plan) for n, p, plan in lines[:2]] == [
        ("Abd_3_Tilt_1", str(data / "Abd_3_Tilt_1.nii.gz"), "segment"),
        ("Liver_5_Eq_1", str(data / "Liver_5_Eq_1.nii.gz"), "segment"),
    ]
    # after the cases, no case name: each file passed over, in the words of the run's log
    passed = {p: plan for n, p, plan in lines[2:] if n == ""}
    assert len(lines) == 5 and len(passed) == 3
    assert passed[str(data / "Abd_3.nii.gz")] == (
        "passed over: dcm2niix's corrected copy of the same series, Abd_3_Tilt_1.nii.gz, is "
        "segmented instead (its gantry tilt resampled away; this file keeps the tilt as a "
        "sheared grid); give this file by name to segment it"
    )
    assert passed[str(data / "Liver_5.nii.gz")].startswith(
        "passed over: dcm2niix's corrected copy of the same series, Liver_5_Eq_1.nii.gz, is "
        "segmented instead (resampled to even slice spacing"
    )
    assert passed[str(data / "Abd_3_ROI1.nii.gz")] == (
        "passed over: dcm2niix's mask of a DICOM overlay of Abd_3, not a scan"
    )
    # given by name beside its folder, Abd_3 is a case: not said as passed over
    assert segment([data, data / "Abd_3.nii.gz"], tmp_path / "out", models, "--list") == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert ("Abd_3", str(data / "Abd_3.nii.gz"), "segment") in [tuple(x) for x in lines]
    assert sorted(p for n, p, _ in lines if n == "") == [
        str(data / "Abd_3_ROI1.nii.gz"),
        str(data / "Liver_5.nii.gz"),
    ]


def test_a_batch_says_at_its_end_the_dcm2niix_files_it_passed_over(tmp_path, models, caplog):
    """A batch over a folder dcm2niix wrote warned of Abd_3.nii.gz passed over (its corrected
    copy segmented instead) only while finding the cases, hours before its end in a long
    run's log; the end of the batch said nothing of it."""
    import logging

    data = tmp_path / "dcm2niix"
    for k, name in enumerate(("Abd_3", "Abd_3_Tilt_1", "Chest_7")):
        write_nifti(ct(k), data / f"{name}.nii.gz")
    with caplog.at_level(logging.INFO, logger="livertumor"):
        assert segment([data], tmp_path / "out", models, "--stages", "liver") == 0
    said = [r.getMessage() for r in caplog.records]
    assert "2 case(s) found; 1 file(s) passed over, not cases" in said
    last = said.index(next(m for m in said if m.startswith("summary: ")))
    assert said[last + 1] == (
        "1 file(s) passed over, not segmented (said above; --list shows why): Abd_3.nii.gz"
    )
    rows = read_rows(tmp_path / "out" / "summary.csv")  # (one row a case, as before)
    assert sorted(r["case"] for r in rows) == ["Abd_3_Tilt_1", "Chest_7"]


def test_a_folder_given_twice_is_read_once_and_its_passed_over_files_said_once(
    tmp_path, models, capsys, caplog, monkeypatch
):
    """QA adv61: `segment scans ./scans/ $PWD/scans --list` said "6 case(s) found; 12 file(s)
    passed over, not cases": each file passed over listed twice (relative and absolute path),
    its warning said three times, and "listed twice (as D_Eq_1 and D_Eq_1)" twice, of two
    files. The cases were found once; so are the files passed over now, by where they are."""
    import logging

    data = tmp_path / "all" / "scans"
    for k, name in enumerate(("Abd_3", "Abd_3_Tilt_1", "Chest_7")):
        write_nifti(ct(k), data / f"{name}.nii.gz")
    write_nifti(ct(5), tmp_path / "all" / "other" / "Liver_1.nii.gz")
    monkeypatch.chdir(tmp_path)
    given = ["all/scans", "./all/scans/", str(data)]
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger="livertumor"):
        assert segment(given, tmp_path / "out", models, "--list") == 0
    said = [r.getMessage() for r in caplog.records]
    assert "2 case(s) found; 1 file(s) passed over, not cases" in said
    assert sum("Abd_3.nii.gz: passed over" in m for m in said) == 1
    assert not any("listed twice" in m for m in said)
    assert "all/scans: given more than once: read once" in said
    assert f"{data}: given more than once (also as all/scans): read once" in said
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(n, p) for n, p, _ in lines] == [
        ("Abd_3_Tilt_1", os.path.join("all", "scans", "Abd_3_Tilt_1.nii.gz")),
        ("Chest_7", os.path.join("all", "scans", "Chest_7.nii.gz")),
        ("", os.path.join("all", "scans", "Abd_3.nii.gz")),
    ]
    # the batch counts and names it once, at its end too
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="livertumor"):
        assert segment(given, tmp_path / "out", models, "--stages", "liver") == 0
    said = [r.getMessage() for r in caplog.records]
    assert "2 case(s) found; 1 file(s) passed over, not cases" in said
    assert (
        "1 file(s) passed over, not segmented (said above; --list shows why): Abd_3.nii.gz" in said
    )
    # a folder given beside the folder holding it: each file it passes over said once
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="livertumor"):
        assert segment([tmp_path / "all", data], tmp_path / "out", models, "--list") == 0
    said = [r.getMessage() for r in caplog.records]
    assert any(m.endswith(" case(s) found; 1 file(s) passed over, not cases") for m in said)
    assert sum("Abd_3.nii.gz: passed over" in m for m in said) == 1
    # one file listed twice under its own name: the file named, not "as X and X"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="livertumor"):
        found = discover_cases([data / "Chest_7.nii.gz", "all/scans/Chest_7.nii.gz"])
    assert [c.name for c in found] == ["Chest_7"]
    assert "as Chest_7 and Chest_7" not in caplog.text
    assert "Chest_7.nii.gz: listed twice: segmented once" in caplog.text


def test_a_folder_of_patients_exported_without_dicom_preambles_is_each_patient(tmp_path):
    """Old CD or PACS exports (files named IM0001, no 128-byte preamble): the reader took them
    for DICOM but the case search did not, so only the first patient was segmented."""
    import pydicom

    rng = np.random.default_rng(0)
    root = tmp_path / "old"
    for pid in ("HCC_001", "HCC_002"):
        ct = CTVolume(rng.integers(-100, 200, (4, 16, 16)).astype(np.int16), (3.0, 1.0, 1.0))
        write_ct_series(ct, tmp_path / "src" / pid, patient_id=pid)
        (root / pid).mkdir(parents=True)
        for i, f in enumerate(sorted((tmp_path / "src" / pid).glob("*.dcm")), 1):
            ds = pydicom.dcmread(f)
            ds.preamble = None
            ds.file_meta = pydicom.dataset.FileMetaDataset()
            pydicom.dcmwrite(
                root / pid / f"IM{i:04d}",
                ds,
                enforce_file_format=False,
                implicit_vr=True,
                little_endian=True,
            )
    assert (root / "HCC_001" / "IM0001").read_bytes()[128:132] != b"DICM"
    assert sorted(c.name for c in discover_cases([root])) == ["HCC_001", "HCC_002"]


def test_a_case_another_run_is_writing_now_is_left_to_it(tmp_path, models, caplog, monkeypatch):
    """Two runs into one folder each checked the case's outputs, then each wrote them: the
    second replaced the first's files unsaid (or mixed its labels with the other's stats)."""
    from napari_livertumor.commands import segment as cmd
    from napari_livertumor.fileio import file_lock, temp_prefix

    monkeypatch.setattr(cmd, "BUSY_WAIT_S", 0.3)  # (a busy case is waited for at the end)
    write_nifti(ct(1), tmp_path / "case.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    with file_lock(out / f"{temp_prefix(out / 'case')}lock") as held:  # the other run's
        assert held
        assert segment([tmp_path / "case.nii.gz"], out, models, "--stages", "liver") == 1
    assert "another livertumor run is writing this case's outputs" in caplog.text
    assert not (out / "case_labels.nii.gz").exists()
    assert segment([tmp_path / "case.nii.gz"], out, models, "--stages", "liver") == 0


def test_a_case_another_run_is_writing_is_waited_for_after_the_others(
    tmp_path, models, caplog, monkeypatch
):
    """Runs into one folder at once all exited 1 (each named the cases the others wrote),
    though every case ended complete: a scheduler marked every job failed."""
    import logging
    import threading

    from napari_livertumor.commands import segment as cmd
    from napari_livertumor.fileio import file_lock, temp_prefix

    monkeypatch.setattr(cmd, "BUSY_WAIT_S", 60.0)
    data, out = cohort(tmp_path / "in", 3), tmp_path / "out"
    out.mkdir()
    taken, done_others = threading.Event(), threading.Event()
    order: list[str] = []

    def other_run():  # holds case00 until this run has done the other cases
        with file_lock(out / f"{temp_prefix(out / 'case00')}lock") as held:
            assert held
            taken.set()
            done_others.wait(30)

    class Watch(logging.Handler):
        def emit(self, record):
            text = record.getMessage()
            if ": liver" in text:
                order.append(text.split("] ", 1)[-1].split(":")[0])
            if "case02: liver" in text:  # the last of the others is under way
                threading.Timer(0.5, done_others.set).start()

    holder = threading.Thread(target=other_run)
    holder.start()
    taken.wait(5)
    watch = Watch(logging.INFO)
    logging.getLogger("livertumor").addHandler(watch)
    try:
        with caplog.at_level(logging.INFO):
            assert segment([data], out, models, "--stages", "liver") == 0
    finally:
        logging.getLogger("livertumor").removeHandler(watch)
        done_others.set()
        holder.join()
    assert "case00: another run is writing it now: back to it after the others" in caplog.text
    assert list(dict.fromkeys(order)) == ["case01", "case02", "case00"]
    rows = {r["case"]: r["status"] for r in read_rows(out / "summary.csv")}
    assert rows == {"case00": "done", "case01": "done", "case02": "done"}


def test_a_case_another_run_is_writing_keeps_that_run_s_summary_row(tmp_path, models, monkeypatch):
    """Two runs into one folder: the cases the other run wrote were listed as "refused
    (earlier outputs kept)" in the summary, though their outputs were new and complete."""
    from napari_livertumor.commands import segment as cmd
    from napari_livertumor.fileio import file_lock, temp_prefix

    monkeypatch.setattr(cmd, "BUSY_WAIT_S", 0.3)
    data, out = cohort(tmp_path / "in", 2), tmp_path / "out"
    assert segment([data], out, models) == 0  # (the other run's summary row of case00)
    with file_lock(out / f"{temp_prefix(out / 'case00')}lock") as held:
        assert held
        assert segment([data], out, models, "--overwrite") == 1
    rows = {r["case"]: r for r in read_rows(out / "summary.csv")}
    assert rows["case00"]["status"] == "done" and rows["case00"]["labels"]
    assert rows["case01"]["status"] == "done"


def test_a_case_with_a_long_legal_name_is_written(tmp_path, models):
    """Names of 213-255 bytes failed after the whole segmentation, on the temporary name."""
    name = "c" * 225
    write_nifti(ct(1), tmp_path / f"{name}.nii.gz")
    out = tmp_path / "out"
    assert segment([tmp_path / f"{name}.nii.gz"], out, models, "--stages", "liver") == 0
    assert (out / f"{name}_labels.nii.gz").is_file() and (out / f"{name}_stats.json").is_file()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_a_damaged_labels_file_is_segmented_again_not_kept_as_a_hand_edit(tmp_path, models, caplog):
    """A labels file cut short (a full disk, a copy stopped half-way) or emptied differed from
    what the run wrote, so it was kept as 'edited by hand' and the case skipped as complete."""
    data = cohort(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert segment([data], out, models) == 0
    whole = (out / "case00_labels.nii.gz").read_bytes()
    (out / "case00_labels.nii.gz").write_bytes(whole[: len(whole) // 2])
    (out / "case01_labels.nii.gz").write_bytes(b"")
    with caplog.at_level("WARNING"):
        assert segment([data], out, models) == 0
    assert "case00_labels.nii.gz is damaged" in caplog.text
    assert "case01_labels.nii.gz is empty: segmented again" in caplog.text
    rows = {r["case"]: r for r in read_rows(out / "summary.csv")}
    assert rows["case00"]["status"] == rows["case01"]["status"] == "done"
    assert (out / "case00_labels.nii.gz").read_bytes() == whole


def test_a_case_whose_output_name_is_too_long_fails_alone(tmp_path, models):
    """is_dir() of a too-long output name raised 'File name too long' and ended the batch,
    with no summary and the cases after it never run."""
    data = tmp_path / "in"
    write_nifti(ct(0), data / "a_ok.nii.gz")
    write_nifti(ct(1), data / f"{'Q' * 246}.nii.gz")  # legal; its _labels.nii.gz is not
    write_nifti(ct(2), data / "z_ok.nii.gz")
    out = tmp_path / "out"
    assert segment([data], out, models) == 1
    rows = {r["case"][:10]: r for r in read_rows(out / "summary.csv")}
    assert rows["a_ok"]["status"] == rows["z_ok"]["status"] == "done"
    assert rows["Q" * 10]["status"] == "failed" and "too long" in rows["Q" * 10]["error"]


def test_the_summary_tells_rows_with_other_lesion_filters_apart(tmp_path, models):
    data = cohort(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert segment([data], out, models) == 0
    assert segment([data / "case01.nii.gz"], out, models, "--min-tumor-ml", "5") == 0
    rows = {r["case"]: r for r in read_rows(out / "summary.csv")}
    assert "min_tumor_ml" not in rows["case00"]["settings"]
    assert rows["case01"]["settings"].endswith("min_tumor_ml=5.0")


def test_a_batch_killed_outright_leaves_the_summary_of_the_cases_it_finished(
    tmp_path, models, monkeypatch
):
    """kill -9 (or a lost node) in the middle of a batch: the summary was written only at the
    end or on Ctrl-C, so nothing told which cases were done."""
    from _killed import Killed, dies_on_call

    from napari_livertumor.commands import segment as seg

    data = cohort(tmp_path / "in", 3)
    seen = []
    monkeypatch.setattr(seg, "segment_one", dies_on_call(3, seg.segment_one, seen))
    with pytest.raises(Killed):
        segment([data], tmp_path / "out", models)
    rows = read_rows(tmp_path / "out" / "summary.csv")
    assert [r["case"] for r in rows] == seen[:2] and {r["status"] for r in rows} == {"done"}
    # killed while it wrote the summary: its temporary copy goes with the next summary, at
    # once when that run began after it (it stayed a minute, a batch resumed at once kept it);
    # one younger than the run may be another run's, writing it now (where locks do not work)
    left = tmp_path / "out" / ".summary.csv.k1ll3d.tmp"
    young = tmp_path / "out" / ".summary.csv.n0w.tmp"
    left.write_text("case,input\n")
    os.utime(left, (time.time() - 1,) * 2)
    monkeypatch.undo()
    real = seg.segment_one

    def another_run_writing_it(case, *args, **kwargs):
        young.write_text("case,input\n")
        return real(case, *args, **kwargs)

    monkeypatch.setattr(seg, "segment_one", another_run_writing_it)
    assert segment([data], tmp_path / "out", models) == 0
    assert not left.exists() and young.exists()
    assert len(read_rows(tmp_path / "out" / "summary.csv")) == 3


def test_a_damaged_labels_file_of_another_input_is_still_refused(tmp_path, models):
    """A damaged labels file turned every other refusal off: another patient of the same name
    then replaced the first one's outputs."""
    write_nifti(ct(0), tmp_path / "a" / "case00.nii.gz")
    write_nifti(ct(5), tmp_path / "b" / "case00.nii.gz")
    out = tmp_path / "out"
    assert segment([tmp_path / "a" / "case00.nii.gz"], out, models) == 0
    labels = out / "case00_labels.nii.gz"
    labels.write_bytes(labels.read_bytes()[:100])
    assert segment([tmp_path / "b" / "case00.nii.gz"], out, models) == 1
    stats = json.loads((out / "case00_stats.json").read_text())
    assert stats["input"] == str((tmp_path / "a" / "case00.nii.gz").resolve())


def test_a_ctrl_c_while_a_case_s_outputs_are_replaced_leaves_the_new_pair_whole(
    tmp_path, models, monkeypatch
):
    """The old stats were removed before the renames: a stop between them left the old labels
    alone, and the next run refused the case as labels without their stats."""
    import os
    import signal

    from napari_livertumor.commands import segment as seg

    data = cohort(tmp_path / "in", 1)
    out = tmp_path / "out"
    segment([data], out, models)
    real = os.replace

    def stopped_on_the_labels(src, dst):
        if str(dst).endswith("_labels.nii.gz"):
            os.kill(os.getpid(), signal.SIGINT)  # lands between the two renames
        return real(src, dst)

    monkeypatch.setattr(seg.os, "replace", stopped_on_the_labels)
    assert segment([data], out, models, "--overwrite") == 130  # stopped, after the renames
    monkeypatch.undo()
    [stats] = out.glob("*_stats.json")
    assert json.loads(stats.read_text())["case"] == "case00"
    assert [p.name for p in out.glob("*_labels.nii.gz")] == ["case00_labels.nii.gz"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    assert segment([data], out, models) == 0  # the next run takes the pair as complete


def test_a_case_whose_renames_a_stop_waited_for_is_done_in_the_summary(
    tmp_path, models, monkeypatch
):
    """The stop held over a case's renames was raised once they were done, before its row
    was added: the summary left out a case complete on disk."""
    import os
    import signal

    from napari_livertumor.commands import segment as seg

    data = cohort(tmp_path / "in", 2)
    out = tmp_path / "out"
    real = os.replace

    def stopped_on_the_labels(src, dst):
        if str(dst).endswith("case00_labels.nii.gz"):
            os.kill(os.getpid(), signal.SIGINT)  # held until the case's files are in
        return real(src, dst)

    monkeypatch.setattr(seg.os, "replace", stopped_on_the_labels)
    assert segment([data], out, models) == 130
    monkeypatch.undo()
    assert [(r["case"], r["status"]) for r in read_rows(out / "summary.csv")] == [
        ("case00", "done")
    ]


def test_scans_beside_nifti_files_that_are_not_read_are_said(tmp_path, caplog):
    """A DICOM series copied loose beside NIfTI files (or an Analyze pair) vanished from the
    batch: "1 case(s) found", nothing else, even with -v."""
    import logging

    folder = tmp_path / "in"
    write_nifti(ct(0), folder / "case00.nii.gz")
    write_ct_series(ct(1), folder)  # its slices loose in the same folder
    (folder / "old.hdr").write_bytes(b"\0" * 348)
    (folder / "old.img").write_bytes(b"\0" * 16)
    (folder / "notes.img").write_bytes(b"\0" * 16)  # no .hdr: not an Analyze image
    (folder / "case9_seg.dcm").write_bytes(b"\0" * 128 + b"DICM")  # this command's output
    (folder / "CASE8_SEG.DCM").write_bytes(b"\0" * 128 + b"DICM")  # (any case)
    (folder / "series.zip").write_bytes(b"PK")
    with caplog.at_level(logging.WARNING):
        cases = discover_cases([folder])
    assert [c.name for c in cases] == ["case00"]
    assert "DICOM file(s) beside the NIfTI files are not read" in caplog.text
    assert "old.hdr, old.img not read: only NIfTI and DICOM are" in caplog.text
    assert "notes.img" not in caplog.text and "case9_seg.dcm" not in caplog.text
    assert "CASE8_SEG.DCM" not in caplog.text
    assert "series.zip not read: an archive (extract it" in caplog.text


def test_a_summary_that_cannot_be_written_still_leaves_the_cases_said(
    tmp_path, models, monkeypatch, capsys
):
    """A full disk at the summary: the only output was its error; the figures of the cases
    segmented and the failed case's line were lost."""
    from napari_livertumor.commands import segment as seg

    data = cohort(tmp_path / "in", 2)
    (data / "case01.nii.gz").write_bytes(b"not a nifti")

    def no_space(rows, path, **kw):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(seg, "write_summary", no_space)
    assert segment([data], tmp_path / "out", models) == 1
    out, err = capsys.readouterr()
    assert "case00: no liver found" in out  # (random voxels: no liver)
    assert "case01 failed" in err and "No space left on device" in err


def test_an_edited_case_skipped_says_so_in_the_summary(tmp_path, models):
    """The printed line said the figures were the model's, the summary row only 'skipped
    (complete)' beside a labels file the figures no longer describe."""
    import nibabel as nib

    data = cohort(tmp_path / "data", 2)
    out = tmp_path / "out"
    assert segment([data], out, models) == 0
    labels = out / "case00_labels.nii.gz"
    img = nib.load(labels)
    fixed = np.asarray(img.dataobj).copy()
    fixed[0, 0, 0] = 1 if fixed[0, 0, 0] == 0 else 0  # a hand edit
    nib.save(nib.Nifti1Image(fixed, img.affine, img.header), labels)
    assert segment([data], out, models) == 0
    rows = {r["case"]: r["status"] for r in read_rows(out / "summary.csv")}
    assert rows == {
        "case00": "skipped (complete; labels edited since: figures are the model's)",
        "case01": "skipped (complete)",
    }


def test_a_shard_of_the_wrong_form_is_a_usage_error(tmp_path, capsys):
    """cli.md: a value of the wrong form exits 2; one out of range (3/2) exits 1."""
    from napari_livertumor.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["segment", str(tmp_path), "--shard", "x"])
    assert stop.value.code == 2
    assert "livertumor segment: error: argument --shard: must look like i/n" in (
        capsys.readouterr().err
    )
    assert main(["segment", str(tmp_path), "--shard", "3/2"]) == 1


def test_an_input_added_to_a_finished_folder_never_takes_the_finished_cases_names(
    tmp_path, models, caplog
):
    """A rerun of a finished folder with one more input of the same names renamed the finished
    cases (segmented again as x_2) and refused the new input without naming it."""
    write_nifti(ct(1), tmp_path / "b" / "x.nii.gz")
    write_nifti(ct(2), tmp_path / "a" / "x.nii.gz")  # sorts first by path
    out = tmp_path / "out"
    assert segment([tmp_path / "b"], out, models, "--stages", "liver") == 0
    made = (out / "x_labels.nii.gz").read_bytes()
    caplog.clear()
    assert segment([tmp_path / "b", tmp_path / "a"], out, models, "--stages", "liver") == 0
    assert (out / "x_labels.nii.gz").read_bytes() == made  # kept, not redone or replaced
    assert f"{tmp_path / 'a' / 'x.nii.gz'} is written as x_2" in caplog.text
    rows = {r["case"]: r for r in read_rows(out / "summary.csv")}
    assert rows["x"]["input"] == str(tmp_path / "b" / "x.nii.gz")
    assert rows["x"]["status"].startswith("skipped")
    assert rows["x_2"]["input"] == str(tmp_path / "a" / "x.nii.gz")
    assert rows["x_2"]["status"] == "done"
    # a third of the name: each keeps the name its outputs have (x_2's input was redone as
    # x_3, and the new one refused as x_2)
    write_nifti(ct(3), tmp_path / "m" / "x.nii.gz")
    caplog.clear()
    three = [tmp_path / "b", tmp_path / "a", tmp_path / "m"]
    assert segment(three, out, models, "--stages", "liver") == 0
    rows = {r["case"]: r for r in read_rows(out / "summary.csv")}
    assert {k: (r["input"], r["status"].split(" ")[0]) for k, r in rows.items()} == {
        "x": (str(tmp_path / "b" / "x.nii.gz"), "skipped"),
        "x_2": (str(tmp_path / "a" / "x.nii.gz"), "skipped"),
        "x_3": (str(tmp_path / "m" / "x.nii.gz"), "done"),
    }
    assert "3 inputs are named x" in caplog.text


def test_a_batch_says_each_cases_figures_as_it_ends_and_how_far_it_is(
    tmp_path, models, capsys, caplog
):
    """The result lines reached stdout only when the batch ended (none after a kill -9), and the
    progress lines gave no position in the batch."""
    import logging

    cohort(tmp_path / "in", 3)
    said: list[str] = []  # stdout so far, as the progress of the last case begins

    class Snapshot(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("[3/3]") and not said:
                said.append(capsys.readouterr().out)

    snap = Snapshot(logging.INFO)
    logging.getLogger("livertumor").addHandler(snap)
    try:
        with caplog.at_level(logging.INFO):
            assert segment([tmp_path / "in"], tmp_path / "out", models, "--stages", "liver") == 0
    finally:
        logging.getLogger("livertumor").removeHandler(snap)
    assert said and "case00: " in said[0] and "case01: " in said[0]  # before the batch's end
    out = said[0] + capsys.readouterr().out
    for name in ("case00", "case01", "case02"):
        assert out.count(f"{name}: ") == 1, out
    assert "[2/3] case01: liver" in caplog.text


def test_the_summary_drops_rows_of_outputs_deleted_or_inputs_gone_since(tmp_path, models):
    """After a clean rerun (exit 0) the summary still listed a failure of a folder removed
    since, and 'done' cases whose files had been deleted."""
    data, out = cohort(tmp_path / "in", 3), tmp_path / "out"
    (data / "empty.nii.gz").write_bytes(b"")  # fails: not a NIfTI file
    assert segment([data], out, models, "--stages", "liver") == 1
    rows = {r["case"]: r["status"] for r in read_rows(out / "summary.csv")}
    assert rows["empty"] == "failed" and rows["case02"] == "done"
    (data / "empty.nii.gz").unlink()
    for f in out.glob("case02_*"):
        f.unlink()
    assert segment([data / "case00.nii.gz", data / "case01.nii.gz"], out, models,
                   "--stages", "liver") == 0  # fmt: skip
    rows = {r["case"]: r["status"] for r in read_rows(out / "summary.csv")}
    assert rows == {"case00": "skipped (complete)", "case01": "skipped (complete)"}


def test_list_says_what_a_run_would_do_with_each_case_and_writes_nothing(tmp_path, models, capsys):
    """No way to see the cases' names and fate before a long batch (a rename went unseen)."""
    data, out = cohort(tmp_path / "in", 3), tmp_path / "out"
    assert segment([data / "case00.nii.gz"], out, models, "--stages", "liver") == 0
    assert segment([data / "case01.nii.gz"], out, models) == 0
    capsys.readouterr()
    assert segment([data], out, models, "--stages", "liver", "--list") == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(n, p) for n, p, _ in lines] == [
        (f"case0{k}", str(data / f"case0{k}.nii.gz")) for k in range(3)
    ]
    plans = {n: plan for n, _, plan in lines}
    assert plans["case00"] == "skip: complete"
    assert plans["case01"].startswith("segment again: made with other settings")
    assert plans["case02"] == "segment"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"case0{k}_{kind}" for k in range(2) for kind in ("labels.nii.gz", "stats.json")
    )
    assert segment([data], tmp_path / "new", models, "--list") == 0
    assert not (tmp_path / "new").exists()


def test_a_long_summary_is_not_rewritten_after_every_case(tmp_path, models, monkeypatch):
    """The whole summary.csv was rewritten after each case: 0.25 s a case at 20 000 rows, 40
    minutes of a 20 000-case run. A costly write waits (twenty times its cost at most)."""
    from napari_livertumor.commands import segment as seg

    data = cohort(tmp_path / "in", 3)
    writes = []
    real = seg.write_summary

    def slow(rows, path, *, spent=None, writing=True, **kw):
        writes.append(len(rows))
        time.sleep(0.1)  # as a summary of many thousand rows takes (or a wait for its lock)
        written = real(rows, path, spent=spent, **kw)
        if spent is not None:  # (the real writing's own few ms set aside: deterministic)
            spent["seconds"] = 0.1 if writing else 0.0001
        return written

    def quick_cases(cases, outdir, config, *, rows, after_case, **kw):
        for i in range(40):  # forty cases of 20 ms each
            time.sleep(0.02)
            rows.append({"case": f"c{i:02d}", "input": "x", "status": "failed", "error": "e"})
            after_case(rows)

    monkeypatch.setattr(seg, "write_summary", slow)
    monkeypatch.setattr(seg, "run_cases", quick_cases)
    segment([data], tmp_path / "out", models)
    assert 2 <= len(writes) < 10  # the first case's, a few while costly, and the last
    assert writes[-1] == 40 and len(read_rows(tmp_path / "out" / "summary.csv")) == 40
    # a wait for the lock (another run writing it) is no cost of writing: every case's rows
    # still go out at once (counted as one, a wait held them back for 20 minutes)
    writes.clear()
    monkeypatch.setattr(seg, "write_summary", lambda *a, **k: slow(*a, **k, writing=False))
    segment([data], tmp_path / "out2", models)
    assert len(writes) == 41


def test_the_summary_line_comes_after_the_last_cases_line(tmp_path, models, capsys, caplog):
    """The batch said "summary: …/summary.csv" before the last case's result line (a fresh
    install's review): the line read as the end of the run came one line early. What stdout
    held when the summary line was logged (in this process: a command's subprocess spent
    seconds importing MONAI)."""
    import logging

    data = cohort(tmp_path / "data", 2)
    said: list[str] = []  # stdout so far, as the summary line is logged

    class Snapshot(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("summary: "):
                said.append(capsys.readouterr().out)

    snap = Snapshot(logging.INFO)
    logging.getLogger("livertumor").addHandler(snap)
    try:
        with caplog.at_level(logging.INFO):
            assert segment([data], tmp_path / "out", models) == 0
    finally:
        logging.getLogger("livertumor").removeHandler(snap)
    assert len(said) == 1 and "\ncase01: " in said[0], said  # its line
