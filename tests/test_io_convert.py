"""A user converts a DICOM folder to NIfTI from the command line."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_livertumor.cli import main
from napari_livertumor.io import CTVolume
from napari_livertumor.io.dicom_write import write_ct_series
from napari_livertumor.io.nifti import write_nifti


def two_series(tmp_path) -> tuple[CTVolume, CTVolume]:
    rng = np.random.default_rng(0)
    big = CTVolume(rng.integers(-1000, 1000, (6, 12, 14)).astype(np.int16), (2.5, 0.7, 0.7))
    small = CTVolume(np.zeros((3, 12, 14), np.int16), (5.0, 0.7, 0.7))
    write_ct_series(big, tmp_path / "dicom" / "a", series_description="LIVER 3 PHASE")
    write_ct_series(small, tmp_path / "dicom" / "b", series_description="PRE LIVER")
    return big, small


def test_convert_writes_the_largest_ct_series_with_its_geometry(tmp_path, capsys):
    big, _ = two_series(tmp_path)
    out = tmp_path / "CT.nii.gz"
    assert (
        main(
            ["convert", str(tmp_path / "dicom"), "-o", str(out), "--meta", str(tmp_path / "m.json")]
        )
        == 0
    )
    img = nib.load(out)
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), big.array)
    np.testing.assert_allclose(img.affine, big.affine, atol=1e-3)
    assert json.loads((tmp_path / "m.json").read_text())["description"] == "LIVER 3 PHASE"
    # the spacing's parts named, alike in the line written and in --list
    dz, dy, dx = big.spacing
    said = f"{dy:.3g}x{dx:.3g} mm pixels, {dz:.3g} mm slices"
    written = capsys.readouterr().out
    assert f"{big.shape[0]} slices of {big.shape[1]}x{big.shape[2]}, {said}" in written
    assert main(["convert", str(tmp_path / "dicom"), "--list"]) == 0
    assert said in capsys.readouterr().out


def test_convert_acquisition_of_an_ordinary_series_reads_its_only_one(tmp_path, capsys):
    """`convert --acquisition 1` of a series whose slices are all AcquisitionNumber 1 was
    refused as "has no acquisition number 1" (QA rev65): it converts the series; another
    number is refused naming the one it has."""
    big, _ = two_series(tmp_path)
    out = tmp_path / "CT.nii.gz"
    folder = str(tmp_path / "dicom" / "a")
    assert main(["convert", folder, "-o", str(out), "--acquisition", "1"]) == 0
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj).transpose(2, 1, 0), big.array)
    capsys.readouterr()
    assert main(["convert", folder, "-o", str(tmp_path / "no.nii.gz"), "--acquisition", "2"]) == 1
    said = capsys.readouterr().err
    assert "has no acquisition number 2 (its only AcquisitionNumber is 1" in said, said
    assert not (tmp_path / "no.nii.gz").exists()


def test_a_transposed_nifti_is_told_in_axial_slices(tmp_path, capsys):
    """KiTS stores its axes transposed: convert said "32 slices of 32x96, 9.44x3.87 mm pixels"
    where Load and segment see 8 axial slices of 9.44 mm."""
    from _geometry import stored_as

    std = CTVolume(np.zeros((8, 32, 40), np.int16), (9.44, 3.87, 3.5))
    write_nifti(stored_as(std, ("S", "P", "L")), tmp_path / "imaging.nii.gz")
    out = tmp_path / "out.nii.gz"
    assert main(["convert", str(tmp_path / "imaging.nii.gz"), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert (
        "8 slices of 32x40 (stored as 8x32x40: the header's dims), 3.87x3.5 mm pixels, 9.44 mm slices"
        in said
    )


def test_convert_refuses_to_overwrite_without_force(tmp_path, capsys):
    two_series(tmp_path)
    out = tmp_path / "CT.nii.gz"
    out.write_bytes(b"keep me")
    assert main(["convert", str(tmp_path / "dicom"), "-o", str(out)]) == 1
    assert "already exists; use --force" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["convert", str(tmp_path / "dicom"), "-o", str(out), "--force"]) == 0
    assert nib.load(out).shape == (14, 12, 6)


def test_a_meta_file_that_cannot_be_written_is_said_before_the_nifti_is(tmp_path, capsys):
    """The NIfTI was written, then --meta failed naming a temporary file beside it."""
    two_series(tmp_path)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    out = tmp_path / "CT.nii.gz"
    meta = tmp_path / "notes.txt" / "m.json"
    assert main(["convert", str(tmp_path / "dicom"), "-o", str(out), "--meta", str(meta)]) == 1
    err = capsys.readouterr().err
    assert "notes.txt: is a file" in err and ".tmp" not in err
    assert not out.exists()


def test_convert_lists_series_and_picks_one_by_uid(tmp_path, capsys):
    _, small = two_series(tmp_path)
    assert main(["convert", str(tmp_path / "dicom"), "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "PRE LIVER" in lines[1]
    uid = lines[1].rsplit("uid ", 1)[1]
    out = tmp_path / "pre.nii.gz"
    assert main(["convert", str(tmp_path / "dicom"), "-o", str(out), "--series", uid]) == 0
    assert nib.load(out).shape == (14, 12, 3)


def test_convert_list_names_each_rows_patient_and_the_files_it_could_not_read(
    tmp_path, capsys, caplog
):
    """Two patients' series were listed alike with no word; a PNG named .dcm gave only "no
    DICOM series found", and a truncated slice was not mentioned."""
    import logging

    vol = CTVolume(np.zeros((3, 12, 14), np.int16), (5.0, 0.7, 0.7))
    write_ct_series(vol, tmp_path / "two" / "a", patient_id="PAT_A")
    write_ct_series(vol, tmp_path / "two" / "b", patient_id="PAT_B")
    (tmp_path / "two" / "b" / "fake.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(600))
    with caplog.at_level(logging.WARNING):
        assert main(["convert", str(tmp_path / "two"), "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert sorted(line.split(":")[0] for line in lines) == ["PAT_A", "PAT_B"]
    assert "scans of 2 patients (PAT_A, PAT_B)" in caplog.text
    assert "1 unreadable DICOM file(s) skipped" in caplog.text and "fake.dcm" in caplog.text
    (tmp_path / "png").mkdir()
    (tmp_path / "png" / "x.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(600))
    assert main(["convert", str(tmp_path / "png"), "--list"]) == 1
    assert "x.dcm: named like a DICOM file but is not one" in capsys.readouterr().err


def test_convert_without_an_output_is_a_usage_error(tmp_path, capsys):
    """cli.md: a missing required option exits 2 (convert said it with exit 1)."""
    two_series(tmp_path)
    assert main(["convert", str(tmp_path / "dicom")]) == 2
    assert "give the output file with -o" in capsys.readouterr().err
    # a missing input too: the usage is said first (as argparse would), still exit 2
    assert main(["convert", str(tmp_path / "missing")]) == 2
    assert "give the output file with -o" in capsys.readouterr().err


def test_convert_of_an_empty_folder_fails_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["convert", str(tmp_path / "empty"), "-o", str(tmp_path / "x.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "no DICOM files found" in err and "Traceback" not in err
    assert not (tmp_path / "x.nii.gz").exists()


def test_convert_to_a_dataset_folder_says_what_a_folder_without_dicom_holds(tmp_path, capsys):
    """`convert pngs -o ds` (a folder of 3 PNG pictures) said only "no DICOM files found",
    where `segment` names the pictures, and left ds/ behind with convert.json, dataset.json and
    an empty imagesTs/; an empty folder did the same. Refused now as segment says it, with
    nothing made."""
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for i in range(3):
        (pngs / f"a{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (tmp_path / "empty").mkdir()
    for source, said in (
        (pngs, "it holds 3 PNG picture files (not read here"),
        (tmp_path / "empty", "the folder is empty"),
    ):
        out = tmp_path / f"ds_{source.name}"
        assert main(["convert", str(source), "-o", str(out)]) == 1
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err, err
        assert not out.exists()


def test_convert_checks_its_outputs_before_writing_anything(tmp_path, capsys):
    """An output under a file, or --meta naming a folder, is refused with the path, no traceback,
    and no NIfTI left behind half-done."""
    two_series(tmp_path)
    a_file = tmp_path / "notafolder.txt"
    a_file.write_text("x")
    assert main(["convert", str(tmp_path / "dicom"), "-o", str(a_file / "CT.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "notafolder.txt" in err and "Traceback" not in err
    (tmp_path / "emptydir").mkdir()
    out = tmp_path / "CT.nii.gz"
    rc = main(
        ["convert", str(tmp_path / "dicom"), "-o", str(out), "--meta", str(tmp_path / "emptydir")]
    )
    assert rc == 1 and "is a folder" in capsys.readouterr().err
    assert not out.exists()


def test_an_output_name_that_is_a_folder_is_said_even_with_force(tmp_path, capsys):
    """It said "already exists; use --force", and with --force failed on a temporary file."""
    two_series(tmp_path)
    (tmp_path / "ct.nii.gz").mkdir()
    for extra in ([], ["--force"]):
        rc = main(["convert", str(tmp_path / "dicom"), "-o", str(tmp_path / "ct.nii.gz"), *extra])
        err = capsys.readouterr().err
        assert rc == 1 and "ct.nii.gz: is a folder" in err and "use --force" not in err
    (tmp_path / "outdir").mkdir()  # a folder without a NIfTI name: a dataset to write
    assert main(["convert", str(tmp_path / "dicom"), "-o", str(tmp_path / "outdir")]) == 0
    assert list((tmp_path / "outdir" / "imagesTs").glob("*.nii.gz"))


def test_a_folder_of_nifti_files_is_named_so_not_only_no_dicom(tmp_path, capsys):
    from napari_livertumor.io import load_ct
    from napari_livertumor.io.nifti import write_nifti

    big, _ = two_series(tmp_path)
    write_nifti(big, tmp_path / "imagesTr" / "HCC_001.nii.gz")
    assert main(["convert", str(tmp_path / "imagesTr"), "-o", str(tmp_path / "x.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "no DICOM files found; it holds 1 NIfTI file(s) (HCC_001.nii.gz)" in err
    from napari_livertumor.errors import InputError

    with pytest.raises(InputError, match="holds 1 NIfTI file.*give one of them"):
        load_ct(tmp_path / "imagesTr")


# ------------------------------------------------------------------ -o FOLDER: a NIfTI dataset
@pytest.fixture(scope="module")
def tcia_download(tmp_path_factory):
    """Three HCC-TACE-Seg-like patients, a fourth without a DICOM SEG and a fifth unreadable."""
    import shutil

    from napari_livertumor.synth import make_cohort

    root = make_cohort(tmp_path_factory.mktemp("dl"), 3, seed=4, layout="tcia", shape="small")
    rng = np.random.default_rng(1)
    unlabelled = CTVolume(rng.integers(-1000, 400, (5, 20, 24)).astype(np.int16), (3.0, 1.5, 1.5))
    write_ct_series(unlabelled, root / "HCC_900" / "study" / "series", patient_id="HCC_900")
    broken = root / "HCC_901" / "study" / "series"
    shutil.copytree(next((root / "HCC_001").rglob("1-001.dcm")).parent, broken)
    for f in broken.glob("*.dcm"):
        f.write_bytes(b"DICM" + f.read_bytes()[:300])  # cut short: nothing readable
    return root, unlabelled


def test_a_folder_of_patients_becomes_a_dataset_train_reads_as_it_reads_the_download(
    tcia_download, tmp_path, capsys
):
    from napari_livertumor.training.data import index_cases, load_case

    root, unlabelled = tcia_download
    out = tmp_path / "nifti"
    assert main(["convert", str(root), "-o", str(out)]) == 1  # one patient failed
    captured = capsys.readouterr()
    assert "HCC_901 failed" in captured.err and "Traceback" not in captured.err
    assert "3 with ground truth" in captured.out and "1 without (imagesTs/)" in captured.out
    # the ground truth: the same CT and labels, voxel for voxel, as training reads from DICOM
    direct = {r.case_id: r for r in index_cases(root)}
    converted = {r.case_id: r for r in index_cases(out)}
    assert sorted(converted) == sorted(direct) == ["HCC_001", "HCC_002", "HCC_003"]
    for case in direct:
        ct_a, lab_a = load_case(direct[case])
        ct_b, lab_b = load_case(converted[case])
        np.testing.assert_array_equal(ct_b.array, ct_a.array)
        np.testing.assert_array_equal(lab_b, lab_a)
        np.testing.assert_allclose(ct_b.affine, ct_a.affine, atol=1e-3)
        assert {1, 2} <= set(np.unique(lab_b).tolist())
    # a patient without a DICOM SEG: its CT, unlabelled, where segment looks for test images
    img = nib.load(out / "imagesTs" / "HCC_900.nii.gz")
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), unlabelled.array)
    assert not (out / "imagesTr" / "HCC_900.nii.gz").exists()
    assert (out / "HCC-TACE-Seg_clinical_data-V2.xlsx").read_bytes() == (
        root / "HCC-TACE-Seg_clinical_data-V2.xlsx"
    ).read_bytes()
    summary = json.loads((out / "convert.json").read_text())
    rows = {r["case"]: r for r in summary["cases"]}
    assert rows["HCC_001"]["labels"] == "labelsTr/HCC_001.nii.gz"
    assert rows["HCC_001"]["label_voxels"]["liver"] > 0
    # its ground truth declared a label map, not described as the CT it lies on
    header = nib.load(out / "labelsTr" / "HCC_001.nii.gz").header
    assert header.get_intent()[0] == "label" and bytes(header["descrip"]).startswith(b"label map")
    assert rows["HCC_901"]["status"] == "failed" and "HCC_901" in rows["HCC_901"]["error"]
    # the Decathlon's index of it, as MONAI reads one (a failed patient left out)
    from monai.data import load_decathlon_datalist

    index = json.loads((out / "dataset.json").read_text())
    assert index["modality"] == {"0": "CT"} and index["labels"]["2"] == "tumor"
    assert (index["numTraining"], index["numTest"]) == (3, 1)
    # the file passed on with the images names the source folder, not where it lies
    assert root.name in index["description"] and str(root.parent) not in json.dumps(index)
    training = load_decathlon_datalist(out / "dataset.json", data_list_key="training")
    assert [Path(d["image"]).name for d in training] == [f"HCC_00{i}.nii.gz" for i in (1, 2, 3)]
    assert all(Path(d["label"]).is_file() and "labelsTr" in d["label"] for d in training)
    test = load_decathlon_datalist(out / "dataset.json", data_list_key="test")
    assert [Path(d["image"]).name for d in test] == ["HCC_900.nii.gz"]
    # every patient with a ground truth: imagesTs/ made all the same (nnU-Net's converter
    # asserts it)
    labelled = tmp_path / "labelled"  # (a copy: the download is the module's)
    shutil.copytree(root, labelled)
    for p in (labelled / "HCC_900", labelled / "HCC_901"):
        shutil.rmtree(p)
    again = tmp_path / "Task501_HCC"
    assert main(["convert", str(labelled), "-o", str(again)]) == 0
    assert (again / "imagesTs").is_dir() and not any((again / "imagesTs").iterdir())
    assert json.loads((again / "dataset.json").read_text())["numTest"] == 0


def test_a_second_run_keeps_what_is_converted_and_force_writes_it_again(
    tcia_download, tmp_path, capsys
):
    root, _ = tcia_download
    out = tmp_path / "nifti"
    main(["convert", str(root), "-o", str(out)])
    ct = out / "imagesTr" / "HCC_002.nii.gz"
    before = ct.stat().st_mtime_ns
    capsys.readouterr()
    assert main(["convert", str(root), "-o", str(out)]) == 1  # the broken patient still fails
    text = capsys.readouterr().out
    assert "HCC_002: kept imagesTr/HCC_002.nii.gz + labelsTr/HCC_002.nii.gz" in text
    assert ct.stat().st_mtime_ns == before
    rows = {r["case"]: r for r in json.loads((out / "convert.json").read_text())["cases"]}
    assert rows["HCC_002"]["status"] == "kept" and rows["HCC_002"]["series_uid"]  # from before
    # the same table in other bytes (an XLSX saved again carries its write time) is no change
    import pandas as pd

    xlsx = out / "HCC-TACE-Seg_clinical_data-V2.xlsx"
    table = pd.read_excel(xlsx, sheet_name=None)
    with pd.ExcelWriter(xlsx) as writer:
        for name, frame in table.items():
            frame.to_excel(writer, sheet_name=name, index=False)
    main(["convert", str(root), "-o", str(out)])
    assert "differs" not in capsys.readouterr().err
    # a table edited by hand in the dataset is kept (said); --force copies the source's again
    sheet = table["data table"]
    sheet.loc[0, "age"] = 99
    with pd.ExcelWriter(xlsx) as writer:
        sheet.to_excel(writer, sheet_name="data table", index=False)
    edited = xlsx.read_bytes()
    main(["convert", str(root), "-o", str(out)])
    assert "differs" in capsys.readouterr().err
    assert xlsx.read_bytes() == edited
    main(["convert", str(root), "-o", str(out), "--force"])
    assert ct.stat().st_mtime_ns != before
    assert xlsx.read_bytes() == (root / xlsx.name).read_bytes()
    assert [p.read_bytes() for p in out.glob(f"{xlsx.name}.replaced-*")] == [edited]
    # one that cannot be read is replaced, said, and kept aside too
    for p in out.glob(f"{xlsx.name}.replaced-*"):
        p.unlink()
    xlsx.write_bytes(b"damaged by hand")
    main(["convert", str(root), "-o", str(out)])
    assert "the dataset's clinical table cannot be read" in capsys.readouterr().err
    assert xlsx.read_bytes() == (root / xlsx.name).read_bytes()
    assert [p.read_bytes() for p in out.glob(f"{xlsx.name}.replaced-*")] == [b"damaged by hand"]


def test_the_clinical_table_is_read_when_copied_and_replaced_only_when_chosen(
    tcia_download, tmp_path, capsys
):
    import shutil

    import pandas as pd

    root, _ = tcia_download
    source = tmp_path / "download"
    shutil.copytree(root, source, ignore=shutil.ignore_patterns("HCC_90*"))
    name = "HCC-TACE-Seg_clinical_data-V2.xlsx"
    out = tmp_path / "nifti"
    assert main(["convert", str(source), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "clinical table: 3 of 3 patient(s) have a row" in text
    assert f"clinical table copied: {out / name}" in text
    # the source table corrected: the copy is kept, said, until the table is chosen
    first = (out / name).read_bytes()
    fixed = source / name
    frame = pd.read_excel(fixed, sheet_name="data table")
    frame.loc[0, "Pathology"] = "corrected by hand"  # a text column: a change all the same
    with pd.ExcelWriter(fixed) as writer:
        frame.to_excel(writer, sheet_name="data table", index=False)
    assert main(["convert", str(source), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "differs" in err and f"--clinical {fixed} replaces it" in err
    assert (out / name).read_bytes() == first
    assert main(["convert", str(source), "-o", str(out), "--clinical", str(fixed)]) == 0
    assert "clinical table replaced" in capsys.readouterr().out
    assert (out / name).read_bytes() == fixed.read_bytes()
    earlier = list(out.glob(f"{name}.replaced-*"))
    assert len(earlier) == 1 and earlier[0].read_bytes() == first
    # a table of another name chosen: the one train read before is set aside too
    from napari_livertumor.training.data import find_clinical

    other = tmp_path / "alt" / "my_table.csv"
    other.parent.mkdir()
    frame.loc[1, "age"] = 33  # another value: a table of its own
    frame.to_csv(other, index=False)
    (out / "notes.csv").write_text("date,note\n2026-01-01,converted\n")  # no clinical table
    assert main(["convert", str(source), "-o", str(out), "--clinical", str(other)]) == 0
    assert "clinical table replaced" in capsys.readouterr().out
    assert find_clinical(out) == out / "my_table.csv" and not (out / name).exists()
    assert (out / "notes.csv").exists()  # only what train would read first is set aside
    # the same values in another format (18 in the XLSX, 18.0 in its CSV): no change
    assert main(["convert", str(source), "-o", str(out), "--clinical", str(other)]) == 0
    assert "replaced" not in capsys.readouterr().out
    # a chosen table of another cohort (no patient has a row) is not copied
    stranger = tmp_path / "alt" / "clinical_other.csv"
    stranger.write_text("TCIA_ID,age\nHCC_801,50\nHCC_802,60\n")
    assert main(["convert", str(source), "-o", str(out), "--clinical", str(stranger)]) == 0
    assert "has a row for none of the dataset's 3 patient(s)" in capsys.readouterr().err
    assert find_clinical(out) == out / "my_table.csv"
    # a plain run after the choice keeps it without a warning (its advice would undo it), and
    # convert.json names the table train reads
    assert main(["convert", str(source), "-o", str(out)]) == 0
    assert "differs" not in capsys.readouterr().err
    record = json.loads((out / "convert.json").read_text())
    # a copy that fails (a full disk) leaves the table there as it was
    import errno

    from napari_livertumor.commands import convert as convert_cmd

    def full(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    upper = tmp_path / "alt" / "my_table.CSV"  # (the dataset's copy is my_table.csv)
    frame.loc[1, "age"] = 55
    frame.to_csv(upper, index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(convert_cmd.shutil, "copyfile", full)
        assert main(["convert", str(source), "-o", str(out), "--clinical", str(upper)]) == 1
    assert find_clinical(out) == out / "my_table.csv"
    assert pd.read_csv(out / "my_table.csv").loc[1, "age"] == 33
    capsys.readouterr()
    # chosen with an upper-case ending: later plain runs still know the choice
    assert main(["convert", str(source), "-o", str(out), "--clinical", str(upper)]) == 0
    assert main(["convert", str(source), "-o", str(out)]) == 0
    assert "differs" not in capsys.readouterr().err
    assert pd.read_csv(out / "my_table.csv").loc[1, "age"] == 55
    assert record["clinical"] == "my_table.csv" and record["clinical_chosen"] == str(other)
    assert json.loads((out / "convert.json").read_text())["clinical_chosen"] == str(upper)
    # a table train would not find in a dataset (another format, metadata.csv): refused first
    for odd_name in ("table.tsv", "metadata.csv"):
        odd = tmp_path / "alt" / odd_name
        frame.to_csv(odd, index=False, sep="\t" if odd_name.endswith(".tsv") else ",")
        assert main(["convert", str(source), "-o", str(out), "--clinical", str(odd)]) == 1
        assert "train finds a dataset's clinical table as" in capsys.readouterr().err
    assert find_clinical(out) == out / "my_table.csv"
    # a table chosen where it already is, in the dataset: nothing copied, the others set aside
    inside = out / "zz_clinical.csv"
    frame.loc[1, "age"] = 44
    frame.to_csv(inside, index=False)
    assert main(["convert", str(source), "-o", str(out), "--clinical", str(inside)]) == 0
    assert "clinical table chosen" in capsys.readouterr().out
    assert find_clinical(out) == inside and inside.is_file()
    # a chosen table that cannot be read: refused before any CT is converted
    broken = tmp_path / "broken" / "clinical.xlsx"
    broken.parent.mkdir()
    broken.write_bytes(b"%PDF-1.4 not a workbook")
    out2 = tmp_path / "nifti2"
    assert main(["convert", str(source), "-o", str(out2), "--clinical", str(broken)]) == 1
    assert "is not an Excel workbook" in capsys.readouterr().err
    assert not (out2 / "imagesTr").exists()
    assert main(["convert", str(source), "-o", str(out2), "--clinical", str(tmp_path / "no")]) == 1
    # the table beside the patients unreadable: not copied, said; the CTs converted all the same
    (source / name).write_bytes(b"%PDF-1.4 not a workbook")
    capsys.readouterr()
    assert main(["convert", str(source), "-o", str(out2)]) == 0
    err = capsys.readouterr().err
    assert "clinical table not copied" in err and "The dataset has no clinical table" in err
    assert not (out2 / name).exists() and (out2 / "imagesTr").is_dir()
    # one CT converted to a file takes no table
    one = main(["convert", str(source / "HCC_001"), "-o", str(tmp_path / "one.nii.gz"),
                "--clinical", str(other)])  # fmt: skip
    assert one == 1 and "--clinical is for a dataset" in capsys.readouterr().err


def test_a_dataset_written_inside_its_input_is_no_patient_of_it(tcia_download, tmp_path, capsys):
    import shutil

    root, _ = tcia_download
    data = tmp_path / "data"
    shutil.copytree(root / "HCC_001", data / "HCC_001")
    shutil.copytree(root / "HCC_002", data / "HCC_002")
    assert main(["convert", str(data), "-o", str(data / "nifti")]) == 0
    capsys.readouterr()
    assert main(["convert", str(data), "-o", str(data / "nifti")]) == 0
    assert "converting 2 case(s)" in capsys.readouterr().out
    # the input folder itself as -o: said as that (it was "no CT found outside the output
    # folder"), nothing written there
    before = sorted(p.name for p in data.iterdir())
    for out in (data, data / "HCC_001" / ".."):
        assert main(["convert", str(data), "-o", str(out)]) == 1
        err = capsys.readouterr().err
        assert "the output folder is the input folder: give another -o" in err, err
        assert "outside the output folder" not in err
    assert sorted(p.name for p in data.iterdir()) == before


def test_folder_output_refuses_one_series_options_and_meta(tcia_download, tmp_path, capsys):
    root, _ = tcia_download
    out = tmp_path / "nifti"
    assert main(["convert", str(root), "-o", str(out), "--series", "1.2.3"]) == 1
    assert "choose one series" in capsys.readouterr().err
    rc = main(["convert", str(root), "-o", str(out), "--meta", str(tmp_path / "m.json")])
    assert rc == 1 and "convert.json" in capsys.readouterr().err
    assert not out.exists() or not any(out.rglob("*.nii.gz"))
    assert main(["convert", str(root), "-o", str(tmp_path / "ct.mha")]) == 1
    assert "must end in .nii.gz or .nii (one CT), or be a folder" in capsys.readouterr().err
    # one file from a folder of patients: refused (one of them, chosen by the tool, was
    # written with exit 0), saying how to pick one or convert each
    assert main(["convert", str(root), "-o", str(tmp_path / "one.nii.gz")]) == 1
    said = capsys.readouterr().err
    assert "give -o a folder name to convert each patient" in said and "--series" in said
    assert not (tmp_path / "one.nii.gz").exists()


def test_a_nifti_dataset_keeps_its_labels_and_one_study_folder_is_named_by_its_patient(
    tcia_download, tmp_path, capsys
):
    """A NIfTI dataset given lost its labels (all into imagesTs/); one patient's study folder
    was named by its date-and-protocol folder name, which no clinical row matches."""
    from napari_livertumor.training.data import index_cases, load_case

    root, _ = tcia_download
    first = tmp_path / "first"
    assert main(["convert", str(root), "-o", str(first)]) == 1  # (HCC_901 is broken)
    again = tmp_path / "again"
    assert main(["convert", str(first), "-o", f"{again}/"]) == 0  # a trailing / : a folder
    assert sorted(p.name for p in (again / "labelsTr").iterdir()) == [
        "HCC_001.nii.gz", "HCC_002.nii.gz", "HCC_003.nii.gz"
    ]  # fmt: skip
    a = {r.case_id: r for r in index_cases(first)}
    b = {r.case_id: r for r in index_cases(again)}
    np.testing.assert_array_equal(load_case(b["HCC_002"])[1], load_case(a["HCC_002"])[1])
    study = next(p for p in (root / "HCC_003").iterdir() if p.is_dir())
    assert main(["convert", str(study), "-o", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / "imagesTr" / "HCC_003.nii.gz").is_file()
    capsys.readouterr()
    assert main(["convert", str(root), "-o", f"{tmp_path / 'x.nii.gz'}/"]) == 1
    assert "a folder named like a NIfTI file" in capsys.readouterr().err


def test_a_nifti_datasets_labels_stored_in_another_axis_order_are_kept(tmp_path, capsys):
    """A label map re-saved RAS (the same voxels in the world) sent its CT to imagesTs/ as
    "on another grid", though training and evaluate read the pair."""
    from napari_livertumor.training.data import index_cases, load_case

    rng = np.random.default_rng(3)
    ct = CTVolume(rng.integers(-100, 200, (6, 24, 28)).astype(np.int16), (3.0, 1.5, 1.25))
    labels = np.zeros(ct.shape, np.uint8)
    labels[1:5, 4:20, 4:22] = 1
    labels[2:4, 8:14, 3:9] = 2
    src = tmp_path / "src"
    write_nifti(ct, src / "imagesTr" / "HCC_001.nii.gz")
    write_nifti(ct.with_array(labels), src / "labelsTr" / "HCC_001.nii.gz")
    lab = src / "labelsTr" / "HCC_001.nii.gz"
    img = nib.load(lab)
    ras = img.as_reoriented(nib.orientations.io_orientation(img.affine))
    nib.save(nib.Nifti1Image(np.asarray(ras.dataobj), ras.affine), lab)
    assert not np.allclose(nib.load(lab).affine, img.affine)  # stored otherwise now
    out = tmp_path / "out"
    assert main(["convert", str(src), "-o", str(out)]) == 0
    assert "stored in another axis order (RAS against the CT's LPS)" in capsys.readouterr().err
    assert (out / "labelsTr" / "HCC_001.nii.gz").is_file()
    (record,) = index_cases(out)
    np.testing.assert_array_equal(load_case(record)[1], labels)


def test_a_patient_converted_without_ground_truth_is_converted_again_when_a_seg_arrives(
    tmp_path, capsys
):
    """A download finished later (the SEG series after the CT) used to leave the patient in
    imagesTs/ for good unless --force wrote every patient again."""
    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.seg import write_dicom_seg

    rng = np.random.default_rng(2)
    ct = CTVolume(rng.integers(-100, 200, (6, 24, 28)).astype(np.int16), (3.0, 1.5, 1.5))
    root = tmp_path / "dl"
    series = root / "HCC_950" / "study" / "ct"
    write_ct_series(ct, series, patient_id="HCC_950")
    out = tmp_path / "nifti"
    assert main(["convert", str(root), "-o", str(out)]) == 0
    assert (out / "imagesTs" / "HCC_950.nii.gz").exists()
    capsys.readouterr()
    assert main(["convert", str(root), "-o", str(out)]) == 0  # nothing new: kept
    assert "HCC_950: kept imagesTs/HCC_950.nii.gz" in capsys.readouterr().out

    labels = np.zeros(ct.shape, np.uint8)
    labels[1:5, 4:20, 4:22] = 1
    labels[2:4, 8:14, 8:14] = 2
    reference = read_dicom_series(series)
    seg = root / "HCC_950" / "study" / "seg" / "seg.dcm"
    write_dicom_seg(labels, reference, seg, source_folder=series)
    assert main(["convert", str(root), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "HCC_950: imagesTr/HCC_950.nii.gz" in text and "again: new ground truth seg.dcm" in text
    assert not (out / "imagesTs" / "HCC_950.nii.gz").exists()  # not twice in the dataset
    got = np.asarray(nib.load(out / "labelsTr" / "HCC_950.nii.gz").dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(got, labels)
    capsys.readouterr()
    assert main(["convert", str(root), "-o", str(out)]) == 0  # and kept from then on
    assert "HCC_950: kept imagesTr/HCC_950.nii.gz + labelsTr" in capsys.readouterr().out
    # its label map deleted: made again from the SEG (it had been "kept" without its labels,
    # which training then skipped)
    (out / "labelsTr" / "HCC_950.nii.gz").unlink()
    assert main(["convert", str(root), "-o", str(out)]) == 0
    text = capsys.readouterr()
    assert "its label map labelsTr/HCC_950.nii.gz is gone: converted again" in text.out + text.err
    got = np.asarray(nib.load(out / "labelsTr" / "HCC_950.nii.gz").dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(got, labels)


def test_a_seg_of_another_series_is_looked_at_once_not_on_every_rerun(tmp_path, capsys):
    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.seg import write_dicom_seg

    rng = np.random.default_rng(3)
    ct = CTVolume(rng.integers(-100, 200, (6, 24, 28)).astype(np.int16), (3.0, 1.5, 1.5))
    other = CTVolume(rng.integers(-100, 200, (4, 24, 28)).astype(np.int16), (3.0, 1.5, 1.5))
    root = tmp_path / "dl"
    write_ct_series(ct, root / "HCC_951" / "study" / "ct", patient_id="HCC_951")
    out = tmp_path / "nifti"
    assert main(["convert", str(root), "-o", str(out)]) == 0
    # a SEG drawn on a scout series with fewer slices (not the CT converted) arrives later
    write_ct_series(other, tmp_path / "scout", patient_id="HCC_951")
    reference = read_dicom_series(tmp_path / "scout")
    seg = root / "HCC_951" / "study" / "seg" / "seg.dcm"
    write_dicom_seg(
        np.ones(other.shape, np.uint8), reference, seg, source_folder=tmp_path / "scout"
    )
    capsys.readouterr()
    assert main(["convert", str(root), "-o", str(out)]) == 0
    assert "not drawn on this CT, so it stays unlabelled" in capsys.readouterr().out
    assert (out / "imagesTs" / "HCC_951.nii.gz").exists()
    assert main(["convert", str(root), "-o", str(out)]) == 0
    assert "HCC_951: kept imagesTs/HCC_951.nii.gz" in capsys.readouterr().out
    # the download copied elsewhere (new paths, new times): the same SEG is no new one
    import shutil

    shutil.copytree(root, tmp_path / "moved")
    assert main(["convert", str(tmp_path / "moved"), "-o", str(out)]) == 0
    assert "HCC_951: kept imagesTs/HCC_951.nii.gz" in capsys.readouterr().out


def test_one_ct_written_meanwhile_by_another_run_is_not_replaced(tmp_path, monkeypatch, capsys):
    """Two `convert -o ct.nii.gz` at once: each checked, each wrote; the second replaced the
    first unsaid."""
    import nibabel

    ct = CTVolume(np.zeros((4, 8, 8), np.int16), (2.0, 1.0, 1.0))
    write_ct_series(ct, tmp_path / "series")
    out = tmp_path / "ct.nii.gz"
    real = nibabel.save

    def save_while_another_writes(img, filename):
        out.write_bytes(b"the other run's file")
        return real(img, filename)

    monkeypatch.setattr(nibabel, "save", save_while_another_writes)
    assert main(["convert", str(tmp_path / "series"), "-o", str(out)]) == 1
    assert "another run" in capsys.readouterr().err
    assert out.read_bytes() == b"the other run's file"
    assert main(["convert", str(tmp_path / "series"), "-o", str(out), "--force"]) == 0


def test_sigterm_while_one_ct_is_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    import os
    import signal

    import nibabel

    ct = CTVolume(np.zeros((4, 8, 8), np.int16), (2.0, 1.0, 1.0))
    write_ct_series(ct, tmp_path / "series")
    out = tmp_path / "o" / "ct.nii.gz"
    real = nibabel.save

    def killed(img, filename):
        real(img, filename)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(nibabel, "save", killed)
    assert main(["convert", str(tmp_path / "series"), "-o", str(out)]) == 143  # 128 + SIGTERM
    assert list(out.parent.iterdir()) == []


def test_a_dangling_link_as_output_and_a_meta_file_that_fails_are_said(
    tmp_path, monkeypatch, capsys
):
    import napari_livertumor.commands.convert as convert_cmd

    ct = CTVolume(np.zeros((4, 8, 8), np.int16), (2.0, 1.0, 1.0))
    write_ct_series(ct, tmp_path / "series")
    link = tmp_path / "ct.nii.gz"
    link.symlink_to(tmp_path / "gone.nii.gz")
    assert main(["convert", str(tmp_path / "series"), "-o", str(link)]) == 1
    assert "is a link to a missing file" in capsys.readouterr().err

    def full(path, data):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(convert_cmd, "_write_json", full)
    out, meta = tmp_path / "a.nii.gz", tmp_path / "a.json"
    assert main(["convert", str(tmp_path / "series"), "-o", str(out), "--meta", str(meta)]) == 1
    err = capsys.readouterr().err
    assert "a.json" in err and "No space" in err and f"written to {out} (kept)" in err
    assert out.is_file()


def test_a_kept_patient_must_come_from_the_same_unchanged_input(tmp_path, capsys):
    """A new download (or cohort) with the same patient names was 'kept' without a word: its
    old images stayed, and convert.json named the new source beside the old series."""
    import os
    import shutil

    rng = np.random.default_rng(4)
    first, second = tmp_path / "dl1", tmp_path / "dl2"
    for root in (first, second):
        for name in ("HCC_001", "HCC_002"):
            ct = CTVolume(rng.integers(-100, 200, (4, 10, 12)).astype(np.int16), (3.0, 1.5, 1.5))
            write_ct_series(ct, root / name / "study" / "ct", patient_id=name)
    out = tmp_path / "nifti"
    assert main(["convert", str(first), "-o", str(out)]) == 0
    image = out / "imagesTs" / "HCC_001.nii.gz"
    before = image.read_bytes()
    capsys.readouterr()

    assert main(["convert", str(second / "HCC_001"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "HCC_001.nii.gz was converted from another input" in err and str(first) in err
    assert image.read_bytes() == before
    rows = {r["case"]: r for r in json.loads((out / "convert.json").read_text())["cases"]}
    # what is on disk: both patients of the first download, still listed with their source
    assert sorted(rows) == ["HCC_001", "HCC_002"]
    assert rows["HCC_001"]["source_path"] == str((first / "HCC_001").resolve())

    # the same input, one file of it replaced since: converted again, said
    dcm = next((first / "HCC_001").rglob("*.dcm"))
    shutil.copy(next((second / "HCC_001").rglob("*.dcm")), dcm)
    os.utime(dcm, ns=(dcm.stat().st_atime_ns, dcm.stat().st_mtime_ns + 10**9))
    assert main(["convert", str(first), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "HCC_001: imagesTs/HCC_001.nii.gz" in captured.out
    assert "HCC_002: kept" in captured.out
    assert "HCC_001: warning: its source files changed since it was converted" in captured.err
    assert image.read_bytes() != before
    # the same scan copied elsewhere without its file times: converted again, not refused
    moved = tmp_path / "moved"
    shutil.copytree(first / "HCC_002", moved / "HCC_002", copy_function=shutil.copy)
    for f in (moved / "HCC_002").rglob("*.dcm"):
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 5 * 10**9))
    assert main(["convert", str(moved), "-o", str(out)]) == 0
    assert "the same scan by its series UID" in capsys.readouterr().err
    # --force replaces another input's patient
    assert main(["convert", str(second), "-o", str(out), "--force"]) == 0
    rows = {r["case"]: r for r in json.loads((out / "convert.json").read_text())["cases"]}
    assert rows["HCC_002"]["source_path"] == str((second / "HCC_002").resolve())


def test_another_inputs_patient_with_a_seg_is_refused_and_a_dataset_inside_its_patient_is_kept(
    tmp_path, capsys
):
    """A patient of another download whose folder holds a DICOM SEG replaced one converted
    without ground truth ('again: new ground truth'); a dataset written inside the patient's
    own folder made every run convert it again (its files counted as the source's)."""
    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.seg import write_dicom_seg

    rng = np.random.default_rng(5)
    first, second = tmp_path / "dl1", tmp_path / "dl2"
    for root in (first, second):
        ct = CTVolume(rng.integers(-100, 200, (4, 10, 12)).astype(np.int16), (3.0, 1.5, 1.5))
        write_ct_series(ct, root / "HCC_001" / "study" / "ct", patient_id="HCC_001")
    series = second / "HCC_001" / "study" / "ct"
    labels = np.zeros((4, 10, 12), np.uint8)
    labels[1:3, 2:8, 2:9] = 1
    write_dicom_seg(labels, read_dicom_series(series), second / "HCC_001" / "seg" / "s.dcm",
                    algorithm_type="MANUAL", source_folder=series)  # fmt: skip
    out = tmp_path / "nifti"
    assert main(["convert", str(first), "-o", str(out)]) == 0
    before = (out / "imagesTs" / "HCC_001.nii.gz").read_bytes()
    capsys.readouterr()
    assert main(["convert", str(second), "-o", str(out)]) == 1
    assert "was converted from another input" in capsys.readouterr().err
    assert (out / "imagesTs" / "HCC_001.nii.gz").read_bytes() == before
    assert not (out / "imagesTr").exists()

    patient = first / "HCC_001"
    assert main(["convert", str(patient), "-o", str(patient / "nifti")]) == 0
    capsys.readouterr()
    for _ in range(2):
        assert main(["convert", str(patient), "-o", str(patient / "nifti")]) == 0
        assert "0 written, 1 kept" in capsys.readouterr().out


def test_a_flat_folder_of_two_patients_converts_each_into_a_dataset(tmp_path, capsys):
    """The several-patients warning advised '-o a folder name to convert each patient', and
    that converted one of them (exit 0)."""
    cts = {pid: CTVolume(np.full((4, 8, 8), k * 100, np.int16), (2.0, 1.0, 1.0))
           for k, pid in enumerate(("HCC_001", "HCC_002"))}  # fmt: skip
    for pid, ct in cts.items():
        names = [f"{pid}_{k}.dcm" for k in range(4)]
        write_ct_series(ct, tmp_path / "export", patient_id=pid, file_names=names)
    assert main(["convert", str(tmp_path / "export"), "-o", str(tmp_path / "one.nii.gz")]) == 1
    assert "give -o a folder name to convert each patient" in capsys.readouterr().err
    out = tmp_path / "dataset"
    assert main(["convert", str(tmp_path / "export"), "-o", str(out)]) == 0
    assert "2 written" in capsys.readouterr().out
    for pid, ct in cts.items():
        img = nib.load(out / "imagesTs" / f"{pid}.nii.gz")
        np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), ct.array)
    # a dataset where an earlier version wrote the folder as one case: that image is one of the
    # patients, now in twice; said
    record = json.loads((out / "convert.json").read_text())
    old = dict(record["cases"][0], case="export", image="imagesTs/export.nii.gz")
    assert old.pop("patient") == "HCC_001"  # an earlier version's row: no patient
    record["cases"].append(old)
    (out / "convert.json").write_text(json.dumps(record))
    shutil.copy(out / "imagesTs" / "HCC_001.nii.gz", out / "imagesTs" / "export.nii.gz")
    assert main(["convert", str(tmp_path / "export"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "imagesTs/export.nii.gz was converted from" in err and "in the dataset twice" in err


def test_pictures_given_to_convert_are_said_as_segment_says_them(tmp_path, capsys):
    """convert said only 'no DICOM files found' (a folder) or 'not a readable DICOM file'."""
    (tmp_path / "png").mkdir()
    (tmp_path / "png" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(16))
    assert main(["convert", str(tmp_path / "png"), "-o", str(tmp_path / "x.nii.gz")]) == 1
    assert "it holds 1 PNG picture file (not read here" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "png" / "a.png"), "-o", str(tmp_path / "x.nii.gz")]) == 1
    assert "PNG picture format: not read here" in capsys.readouterr().err


def test_a_seg_drawn_on_a_series_not_in_the_folder_is_said_not_dropped(
    tcia_download, tmp_path, capsys
):
    """The patient's SEG references a CT series missing from the folder (another series is
    there): the CT went to imagesTs/ with no warning, and training never heard of it."""
    from napari_livertumor.io.dicom import read_dicom_series

    root, _ = tcia_download
    case = tmp_path / "HCC_001"
    shutil.copytree(root / "HCC_001", case)
    ct_file = next(f for f in case.rglob("*.dcm") if "Segmentation" not in str(f.parent))
    series = ct_file.parent
    ct = read_dicom_series(series)
    shutil.rmtree(series)
    write_ct_series(ct, series, patient_id=ct.meta["patient_id"],
                    series_uid="1.2.826.0.1.3680043.8.498.4242")  # fmt: skip
    assert main(["convert", str(case), "-o", str(tmp_path / "out")]) == 0
    said = json.loads((tmp_path / "out" / "convert.json").read_text())
    [row] = said["cases"]
    text = json.dumps(row)
    assert "drawn on another series than the one read" in text and "imagesTs" in text
    assert (tmp_path / "out" / "imagesTs").is_dir()


def test_a_run_killed_outright_leaves_the_record_of_what_it_converted(
    tcia_download, tmp_path, monkeypatch, capsys
):
    """kill -9 after a case: convert.json was written only at the end, so a rerun kept that
    case forever unchecked (another cohort's patient of the same name too)."""
    from _killed import Killed, dies_on_call

    from napari_livertumor.commands import convert as conv

    root, _ = tcia_download
    out = tmp_path / "out"
    seen = []
    monkeypatch.setattr(conv, "_convert_case", dies_on_call(2, conv._convert_case, seen))
    with pytest.raises(Killed):
        main(["convert", str(root), "-o", str(out)])
    monkeypatch.undo()
    record = json.loads((out / "convert.json").read_text())
    [first] = record["cases"]
    assert first["case"] == seen[0] and first["source_stamp"] and record["interrupted"]
    capsys.readouterr()
    # the rerun keeps it by its record; touched since, it would be converted again
    main(["convert", str(root), "-o", str(out)])
    assert f"{seen[0]}: kept" in capsys.readouterr().out
    # an image there with no record at all (convert.json removed) is not taken on trust
    (out / "convert.json").unlink()
    assert main(["convert", str(root), "-o", str(out)]) == 1
    assert "convert.json has no record of what it was converted from" in capsys.readouterr().err


def test_a_run_killed_between_a_cases_files_and_its_record_is_finished_by_the_next(
    tcia_download, tmp_path, monkeypatch, capsys
):
    """kill -9 after a case's image was put in place, before convert.json told of it: every
    later run refused that image as unrecorded (only --force, converting all again, helped).
    Written whole by the next run, its record kept "a run was stopped while it wrote this
    case" for good."""
    from _killed import Killed

    from napari_livertumor.commands import convert as conv

    root, _ = tcia_download
    out = tmp_path / "out"
    real = conv._write_pair

    def placed_then_killed(*args):
        real(*args)
        raise Killed

    monkeypatch.setattr(conv, "_write_pair", placed_then_killed)
    with pytest.raises(Killed):
        main(["convert", str(root / "HCC_001"), "-o", str(out)])
    monkeypatch.undo()
    [row] = json.loads((out / "convert.json").read_text())["cases"]
    assert row["status"] == "pending" and (out / row["image"]).is_file()
    capsys.readouterr()
    assert main(["convert", str(root / "HCC_001"), "-o", str(out)]) == 0
    said = capsys.readouterr()
    assert "a run was stopped while it wrote this case: converted again" in said.err
    [row] = json.loads((out / "convert.json").read_text())["cases"]
    assert row["status"] == "written" and row["labels"]
    # written whole now: its record no longer tells of a stopped write (said by this run only)
    assert "stopped" not in json.dumps(row)
    # nor, once kept, a record that an earlier version wrote with the note among its warnings
    record = json.loads((out / "convert.json").read_text())
    record["cases"][0]["warnings"] = [conv.STOPPED_NOTE, *row.get("warnings", [])]
    (out / "convert.json").write_text(json.dumps(record))
    assert main(["convert", str(root / "HCC_001"), "-o", str(out)]) == 0
    assert ": kept" in capsys.readouterr().out
    [row] = json.loads((out / "convert.json").read_text())["cases"]
    assert "stopped" not in json.dumps(row)
    # a killed run's temporary copy is removed when the case comes again, kept or written,
    # once it is older than any run's writing (a younger one may be another run's, at work)
    old, young = (
        out / "imagesTr" / ".HCC_001.nii.gz.k1ll3d.nii.gz",
        out / "labelsTr" / ".HCC_001.nii.gz.n0w.nii.gz",
    )
    for tmp in (old, young):
        tmp.write_bytes(b"partial")
    os.utime(old, (time.time() - 2 * conv.STALE_TEMP_S,) * 2)
    assert main(["convert", str(root / "HCC_001"), "-o", str(out)]) == 0
    assert ": kept" in capsys.readouterr().out
    assert not old.exists() and young.exists()


def test_a_run_stopped_while_a_case_moved_to_imagestr_leaves_it_to_the_next_run(
    tcia_download, tmp_path, monkeypatch, capsys
):
    """A SEG downloaded later moves a case from imagesTs/ to imagesTr/: Ctrl-C while it was
    written dropped the case's record, its old image still there, refused by every later run."""
    from napari_livertumor.commands import convert as conv

    root, _ = tcia_download
    src, out = tmp_path / "src", tmp_path / "out"
    shutil.copytree(root / "HCC_002", src / "HCC_002")
    [seg] = [p for p in (src / "HCC_002").glob("*/*") if "Segmentation" in p.name]
    shutil.move(seg, tmp_path / "aside")
    assert main(["convert", str(src), "-o", str(out)]) == 0
    assert (out / "imagesTs" / "HCC_002.nii.gz").is_file()
    shutil.move(tmp_path / "aside", seg)  # the SEG downloaded since

    def stopped(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(conv, "_write_pair", stopped)
    assert main(["convert", str(src), "-o", str(out)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["convert", str(src), "-o", str(out)]) == 0
    assert "no record" not in capsys.readouterr().err
    assert (out / "imagesTr" / "HCC_002.nii.gz").is_file()
    assert not (out / "imagesTs" / "HCC_002.nii.gz").exists()


def test_runs_into_one_folder_at_once_keep_each_others_records(
    tcia_download, tmp_path, monkeypatch, capsys
):
    """Jobs of an array converting a patient each into one folder: each wrote convert.json as
    it had read it at its start, so it lost the records of those that ended meanwhile (2 of 4
    listed), and the next run refused their images as unrecorded."""
    from napari_livertumor.commands import convert as conv

    root, _ = tcia_download
    out = tmp_path / "out"
    real = conv._convert_case
    calls = []

    def another_job_ends_meanwhile(case, *args, **kwargs):
        calls.append(case.name)
        if len(calls) == 1:  # while this run converts its patient, another converts its own
            assert main(["convert", str(root / "HCC_002"), "-o", str(out)]) == 0
        return real(case, *args, **kwargs)

    monkeypatch.setattr(conv, "_convert_case", another_job_ends_meanwhile)
    assert main(["convert", str(root / "HCC_001"), "-o", str(out)]) == 0
    monkeypatch.undo()
    cases = {r["case"] for r in json.loads((out / "convert.json").read_text())["cases"]}
    assert cases == {"HCC_001", "HCC_002"}
    capsys.readouterr()
    assert main(["convert", str(root / "HCC_002"), "-o", str(out)]) == 0
    assert ": kept" in capsys.readouterr().out


def test_another_runs_case_being_written_keeps_its_record_through_this_runs_writes(
    tcia_download, tmp_path, monkeypatch, capsys
):
    """Run B recorded its patient as pending; run A, ending meanwhile, dropped that record
    (no image there yet); B killed after placing its files left an image refused for good."""
    from _killed import Killed

    from napari_livertumor.commands import convert as conv

    root, _ = tcia_download
    out = tmp_path / "out"
    real = conv._write_pair

    def a_ends_then_b_is_killed(*args):
        monkeypatch.setattr(conv, "_write_pair", real)
        assert main(["convert", str(root / "HCC_001"), "-o", str(out)]) == 0  # run A
        real(*args)
        raise Killed

    monkeypatch.setattr(conv, "_write_pair", a_ends_then_b_is_killed)
    with pytest.raises(Killed):
        main(["convert", str(root / "HCC_002"), "-o", str(out)])  # run B
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["convert", str(root / "HCC_002"), "-o", str(out)]) == 0
    assert "a run was stopped while it wrote this case" in capsys.readouterr().err


def test_a_run_stopped_before_placing_its_case_leaves_no_record_of_it(
    tcia_download, tmp_path, monkeypatch, capsys
):
    """Ctrl-C while a case was written: its pending record (no image) stayed in convert.json
    for good, carried along by every later run."""
    from napari_livertumor.commands import convert as conv

    root, _ = tcia_download
    out = tmp_path / "out"

    def stopped(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(conv, "_write_pair", stopped)
    assert main(["convert", str(root / "HCC_002"), "-o", str(out)]) == 130
    monkeypatch.undo()
    assert json.loads((out / "convert.json").read_text())["cases"] == []
    assert main(["convert", str(root / "HCC_001"), "-o", str(out)]) == 0
    cases = json.loads((out / "convert.json").read_text())["cases"]
    assert [r["case"] for r in cases] == ["HCC_001"]


def test_a_failed_reconversion_and_an_unreadable_record_do_not_lock_images_out(
    tcia_download, tmp_path, capsys
):
    """A source changed and then unreadable failed its case, and the record of the image still
    there was dropped: the next run refused that image as unrecorded. An unreadable
    convert.json made every image unrecorded, and was replaced."""
    root, _ = tcia_download
    src = tmp_path / "src"
    shutil.copytree(root / "HCC_001", src / "HCC_001")
    out = tmp_path / "out"
    assert main(["convert", str(src), "-o", str(out)]) == 0
    files = sorted(f for f in (src / "HCC_001").rglob("*.dcm") if "Segmentation" not in str(f))
    saved = {f: f.read_bytes() for f in files}
    for f in files:  # every CT file cut short: the case's read fails now
        f.write_bytes(b"DICM" + saved[f][:200])
    assert main(["convert", str(src), "-o", str(out)]) == 1
    for f in files:  # mended
        f.write_bytes(saved[f])
    capsys.readouterr()
    assert main(["convert", str(src), "-o", str(out)]) == 0
    assert "no record" not in capsys.readouterr().err
    (out / "convert.json").write_text("{ not json")
    assert main(["convert", str(src), "-o", str(out)]) == 1
    assert "convert.json: cannot be read" in capsys.readouterr().err
    assert (out / "convert.json").read_text() == "{ not json"  # not replaced


def test_a_single_image_converted_is_said_not_to_be_a_volume(tmp_path, capsys):
    """A lone scout was written as a 1-slice NIfTI with exit 0 and no word (segment and the
    Load panel refuse it)."""
    import numpy as np

    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    write_ct_series(CTVolume(np.zeros((1, 16, 16), np.int16), (5.0, 1.0, 1.0)), tmp_path / "scout")
    assert main(["convert", str(tmp_path / "scout"), "-o", str(tmp_path / "s.nii.gz")]) == 0
    assert "a single image (a scout or localizer?), not a CT volume" in capsys.readouterr().err


def test_meta_never_writes_over_the_ct_or_the_input_scan(tmp_path, capsys):
    """--meta named as the output wrote its JSON over the NIfTI just written (exit 0, "wrote"),
    and one of the input's DICOM files with --force."""
    ct = CTVolume(np.full((4, 8, 8), 40, np.int16), (2.0, 1.0, 1.0))
    files = write_ct_series(ct, tmp_path / "series")
    before = files[1].read_bytes()
    out = tmp_path / "ct.json.nii.gz"
    for meta, said in (
        (out, "names the CT file this writes"),
        (files[1], "names a file of the input scan"),
        (tmp_path / "meta.nii.gz", "a name ending in .json"),
    ):
        args = ["convert", str(tmp_path / "series"), "-o", str(out), "--meta", str(meta)]
        assert main([*args, "--force"]) == 1
        assert said in capsys.readouterr().err
    assert files[1].read_bytes() == before and not out.exists()


def test_a_nifti_is_never_converted_over_itself(tmp_path, capsys):
    """convert X.nii.gz -o X.nii.gz --force rewrote its own input (a float CT came back
    rounded to int16); a link to it too."""
    ct = write_nifti(
        CTVolume(np.full((4, 8, 8), 40.5, np.float32), (2.0, 1.0, 1.0)), tmp_path / "x.nii.gz"
    )
    before = ct.read_bytes()
    (tmp_path / "link.nii.gz").symlink_to(ct)
    for out in (ct, tmp_path / "link.nii.gz"):
        assert main(["convert", str(ct), "-o", str(out), "--force"]) == 1
        assert "is the input itself" in capsys.readouterr().err
    assert ct.read_bytes() == before


def test_a_label_map_given_as_the_ct_is_said_to_be_one(tmp_path, capsys):
    """A labelsTr file converted as a CT without a word (segment refuses it later)."""
    from napari_livertumor.io.nifti import write_nifti

    labels = np.zeros((4, 8, 8), np.uint8)
    labels[1:3, 2:6, 2:6] = 1
    labels[2, 3:5, 3:5] = 2
    write_nifti(CTVolume(labels, (2.0, 1.0, 1.0)), tmp_path / "HCC_001.nii.gz")
    assert (
        main(["convert", str(tmp_path / "HCC_001.nii.gz"), "-o", str(tmp_path / "o.nii.gz")]) == 0
    )
    assert "holds only the values 0, 1, 2: a label map" in capsys.readouterr().err


def _clinical_copy_fails_disk_full(monkeypatch) -> None:
    """Copying the clinical table (only it) fails as a full disk does."""
    import errno

    real = shutil.copyfile

    def copyfile(src, dst, **kwargs):
        if "clinical" not in os.path.basename(str(dst)):
            return real(src, dst, **kwargs)
        # as shutil's own says a full disk: the source first, the file written second
        raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(dst))

    monkeypatch.setattr(shutil, "copyfile", copyfile)


def test_a_full_disk_while_copying_the_clinical_table_still_says_the_cases_and_counts(
    tcia_download, tmp_path, monkeypatch, capsys
):
    """The copy's error escaped: no "HCC_901 failed" lines, no counts, and the error named a
    hidden temporary file (".HCC-TACE-Seg_clinical_data-V2.xlsx.…")."""
    root, _ = tcia_download
    _clinical_copy_fails_disk_full(monkeypatch)
    out = tmp_path / "nifti"
    assert main(["convert", str(root), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    target = out / "HCC-TACE-Seg_clinical_data-V2.xlsx"
    assert "Traceback" not in captured.err
    assert "livertumor convert: HCC_901 failed" in captured.err
    assert (
        f"livertumor convert: error: clinical table not copied: {target}: No space left on device"
        in captured.err.splitlines()
    )
    assert "3 with ground truth" in captured.out and "1 failed" in captured.out
    assert not target.exists() and not [p for p in out.iterdir() if p.name.startswith(".HCC")]


def test_a_clinical_table_not_copied_fails_the_run_even_when_every_case_was_written(
    tcia_download, tmp_path, monkeypatch, capsys
):
    """Every case converted but the clinical table not copied (a full disk): exit status 1,
    not 0, so a script that trains next does not train without its weak supervision."""
    root, _ = tcia_download
    source = tmp_path / "download"
    shutil.copytree(root, source, ignore=shutil.ignore_patterns("HCC_90*"))  # (no failing case)
    _clinical_copy_fails_disk_full(monkeypatch)
    assert main(["convert", str(source), "-o", str(tmp_path / "nifti")]) == 1
    captured = capsys.readouterr()
    assert "0 failed" in captured.out
    assert "clinical table not copied" in captured.err


# (pydicom: control characters have no place in an LO, and ESC [ is no character set's)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_headers_control_characters_are_printed_escaped(tmp_path, capsys, caplog):
    """ESC sequences and newlines of a SeriesDescription and PatientID were printed raw by
    --list, convert's "wrote" line and its --series error: they cleared the screen, coloured
    it, or forged lines. Each row is one line again, its control characters escaped."""
    import logging

    evil = "\x1b[2J\x1b[31mPV\x07\nlivertumor: all fine"
    shown = "\\x1b[2J\\x1b[31mPV\\x07\\nlivertumor: all fine"
    vol = CTVolume(np.zeros((3, 12, 14), np.int16), (5.0, 0.7, 0.7))
    write_ct_series(vol, tmp_path / "two" / "a", patient_id="PAT\x1b[8m", series_description=evil)
    write_ct_series(vol, tmp_path / "two" / "b", patient_id="PAT_B")
    with caplog.at_level(logging.WARNING):
        assert main(["convert", str(tmp_path / "two"), "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "\x1b" not in "".join(lines) + caplog.text
    assert any(ln.startswith(f"PAT\\x1b[8m: CT #1 '{shown}': 3 slice(s)") for ln in lines)
    assert "(PAT\\x1b[8m, PAT_B)" in caplog.text
    assert main(["convert", str(tmp_path / "two"), "-o", "x.nii.gz", "--series", "1.2.3"]) == 1
    err = capsys.readouterr().err
    assert "no series with UID 1.2.3" in err and f"'{shown}'" in err and "\x1b" not in err
    uid = next(ln for ln in lines if ln.startswith("PAT\\")).rsplit("uid ", 1)[1]
    out = tmp_path / "a.nii.gz"
    assert main(["convert", str(tmp_path / "two"), "-o", str(out), "--series", uid]) == 0
    said = capsys.readouterr()
    assert f"series '{shown}'" in said.out and "\x1b" not in said.out + said.err


# (pydicom: a PatientID of more than 64 characters is no valid LO)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_patient_named_by_a_long_patient_id_is_shortened_not_failed(tmp_path, capsys):
    """One patient's folder whose PatientID has 300 characters: "File name too long", 0
    written, 1 failed. Its case name is shortened (its start, and a hash keeping two such IDs
    apart), found again by a rerun; so are the patients of a folder holding several."""
    vol = CTVolume(np.zeros((4, 8, 8), np.int16), (2.0, 1.0, 1.0))
    long_id = "P" * 300
    write_ct_series(vol, tmp_path / "one" / "study", patient_id=long_id)
    out = tmp_path / "dataset"
    assert main(["convert", str(tmp_path / "one" / "study"), "-o", str(out)]) == 0
    (image,) = (out / "imagesTs").iterdir()
    assert image.name.startswith("P" * 40) and len(image.name) < 70, image.name
    assert "1 written" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "one" / "study"), "-o", str(out)]) == 0
    assert "1 kept" in capsys.readouterr().out
    for k in "12":  # two patients in one folder, named alike up to their last letter
        names = [f"{k}_{i}.dcm" for i in range(4)]
        write_ct_series(vol, tmp_path / "export", patient_id=long_id + k, file_names=names)
    assert main(["convert", str(tmp_path / "export"), "-o", str(tmp_path / "two")]) == 0
    names = sorted(p.name for p in (tmp_path / "two" / "imagesTs").iterdir())
    assert len(names) == 2 and all(len(n) < 70 for n in names), names
    # a long name that could be written keeps it (written so before: a rerun into such a
    # dataset converted the patient a second time under a shortened name)
    write_ct_series(vol, tmp_path / "mid" / "study", patient_id="M" * 240)
    assert main(["convert", str(tmp_path / "mid" / "study"), "-o", str(tmp_path / "m")]) == 0
    assert [p.name for p in (tmp_path / "m" / "imagesTs").iterdir()] == ["M" * 240 + ".nii.gz"]


def test_a_series_whose_rescale_intercept_is_missing_is_converted_with_a_warning(tmp_path, capsys):
    """A series with no RescaleIntercept (every value 1024 too high) was converted without a
    word, to a NIfTI fed to training, where segment and the Load panel say the values do not
    look like HU; in a dataset too."""
    import pydicom

    rng = np.random.default_rng(0)
    ct = CTVolume(rng.integers(-1024, 1500, (4, 16, 16)).astype(np.int16), (2.5, 0.8, 0.8))
    for p in write_ct_series(ct, tmp_path / "in" / "HCC_001" / "ct", patient_id="HCC_001"):
        ds = pydicom.dcmread(p)
        ds.PixelData = (ds.pixel_array.astype(np.int16) - int(ds.RescaleIntercept)).tobytes()
        del ds.RescaleIntercept, ds.RescaleSlope
        ds.save_as(p)
    out = tmp_path / "ct.nii.gz"
    assert main(["convert", str(tmp_path / "in" / "HCC_001"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "the values do not look like Hounsfield units: no air at -1000" in err
    assert "a rescale intercept (-1024) not applied" in err
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "dataset")]) == 0
    assert "HCC_001: warning: the values do not look like Hounsfield units" in (
        capsys.readouterr().err
    )
    row = json.loads((tmp_path / "dataset" / "convert.json").read_text())["cases"][0]
    assert any("do not look like Hounsfield units" in w for w in row["warnings"])


def test_a_seg_without_its_tumor_or_its_liver_segment_is_said_at_conversion(
    tcia_download, tmp_path, capsys
):
    """Two edited SEGs were converted without a word that mattered: one whose Mass segment was
    dropped became a tumor-free ground truth; one whose Liver segment is another organ's went
    to labelsTr/, was counted by train --check, skipped by training and called "unreadable" by
    evaluate."""
    from _seg_edits import drop_segment, liver_made_spleen

    root, _ = tcia_download
    data = tmp_path / "data"
    for case in ("HCC_001", "HCC_002"):
        shutil.copytree(root / case, data / case)
    drop_segment(next((data / "HCC_001").rglob("1-1.dcm")), "Mass")
    liver_made_spleen(next((data / "HCC_002").rglob("1-1.dcm")))

    out = tmp_path / "out"
    assert main(["convert", str(data), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    # the tumor-free one: converted, as a tumor-free ground truth may be, and said
    [said] = [line for line in err.splitlines() if "HCC_001" in line]
    assert "HCC_001: warning: the SEG describes no tumor segment" in said
    assert "taken as tumor-free" in said
    assert (out / "labelsTr" / "HCC_001.nii.gz").is_file()
    # the liver-less one: no ground truth to train on or score against, as one that does not
    # fit its CT
    assert (
        "HCC_002: warning: its DICOM SEG (1-1.dcm) holds no liver (only tumor, portal vein, "
        "aorta): a patient cannot be trained on or scored without its liver; the CT goes to "
        "imagesTs/"
    ) in err
    assert err.count("trained on or scored") == 1  # (the SEG reader's note of it: said once)
    assert (out / "imagesTs" / "HCC_002.nii.gz").is_file()
    assert not (out / "labelsTr" / "HCC_002.nii.gz").exists()
    # train --check counts the patients training would use, of the download and of the dataset
    for folder in (data, out):
        assert (
            main(["train", "--data", str(folder), "--out", str(tmp_path / "run"), "--check"]) == 0
        )
        text = capsys.readouterr().out
        assert "1 patient(s) with ground-truth labels" in text, text
