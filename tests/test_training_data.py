"""Training data: both `--data` layouts, patient-level splits, label mapping per stage."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_livertumor.training.data import (
    find_clinical,
    index_cases,
    load_case,
    make_split,
    read_split,
    stage_labels,
    tables_passed_over,
    tumor_liver_ratio,
)


@pytest.fixture(scope="module")
def tcia_cohort(tmp_path_factory):
    from napari_livertumor.synth import make_cohort

    return make_cohort(tmp_path_factory.mktemp("tcia"), 3, seed=4, layout="tcia", shape="small")


def test_tcia_layout_reads_the_ct_series_the_seg_references(tcia_cohort):
    records = index_cases(tcia_cohort)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_002", "HCC_003"]
    assert all(r.layout == "tcia" and r.series_uid for r in records)
    ct, hcc = load_case(records[0])
    assert hcc.shape == ct.shape and hcc.dtype == np.uint8
    assert set(np.unique(hcc)) <= {0, 1, 2, 3, 4} and (hcc == 1).any()
    assert ct.meta.get("series_uid") == records[0].series_uid
    assert find_clinical(tcia_cohort).name.startswith("HCC-TACE-Seg_clinical")


def test_an_evaluations_or_a_training_runs_output_inside_the_data_is_no_patient(
    tcia_cohort, tmp_path, capsys
):
    """``evaluate -o DATA/eval`` made ``eval`` a patient of DATA ("eval (no DICOM SEG (no
    labels))"), in that run (its lock) and in every later evaluate or ``train --check``; a
    training run's ``--out`` too while it had no model yet (its lock, a stopped run's last/)."""
    from napari_livertumor.cli import main
    from napari_livertumor.training.evaluate import LOCK_FILE, RESUME_FILE
    from napari_livertumor.training.loop import RunLock

    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    done = data / "eval"
    (done / "labels").mkdir(parents=True)
    for name in ("per_case.csv", "summary.json", "lesions.csv"):
        (done / name).write_text("x")
    (data / "cut").mkdir()  # a run stopped over an earlier one: its results set aside
    for name in ("per_case.interrupted.csv", "summary.interrupted.json"):
        (data / "cut" / name).write_text("x")
    for name, mark in (("running", LOCK_FILE), ("stopped", RESUME_FILE)):
        (data / name).mkdir()
        (data / name / mark).write_text("")
    (data / "run" / "liver" / "last").mkdir(parents=True)
    (data / "run" / "liver" / "last" / "metadata.json").write_text("{}")
    (data / "run2" / "tumor").mkdir(parents=True)
    (data / "run2" / "tumor" / RunLock.NAME).write_text("{}")
    skipped: list = []
    records = index_cases(data, skipped)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_002", "HCC_003"]
    assert skipped == []
    assert main(["train", "--data", str(data), "--check"]) == 0
    captured = capsys.readouterr()
    assert "3 patient(s) with ground-truth labels" in captured.out
    for name in ("eval", "cut", "running", "stopped", "run", "run2"):
        assert f"{name} (" not in captured.out + captured.err and f"{name}:" not in captured.out


def test_a_nifti_dataset_without_imagestr_says_it_has_no_ground_truth(
    tcia_cohort, tmp_path, capsys
):
    """``convert`` of patients without a DICOM SEG writes imagesTs/ alone; train and evaluate
    took imagesTs/ for a patient folder ("imagesTs: no DICOM; NIfTI files ... are read from
    imagesTr/ + labelsTr/ only")."""
    from napari_livertumor.cli import main
    from napari_livertumor.errors import InputError

    data = tmp_path / "nsn"
    (data / "imagesTs").mkdir(parents=True)
    (data / "imagesTs" / "HCC_001.nii.gz").write_bytes(b"x")
    (data / "dataset.json").write_text("{}")
    said = r"nsn: holds imagesTs/ but no imagesTr/ \+ labelsTr/: no ground truth to train on"
    with pytest.raises(InputError, match=said) as refused:
        index_cases(data)
    assert "the CTs in imagesTs/ have no labels" in str(refused.value)
    assert "no DICOM" not in str(refused.value)
    assert main(["train", "--data", str(data), "--check"]) == 1
    err = capsys.readouterr().err
    assert "no ground truth to train on or score against" in err and "no DICOM" not in err
    # labels without their CTs: said as that, not as a patient folder without DICOM
    shutil.move(data / "imagesTs", data / "labelsTr")
    with pytest.raises(InputError, match=r"holds labelsTr/ but no imagesTr/"):
        index_cases(data)
    # a DICOM patient beside an imagesTs/ (a dataset converted into the data): the patient
    # is read, imagesTs/ is no patient of it
    shutil.move(data / "labelsTr", data / "imagesTs")
    shutil.copytree(tcia_cohort / "HCC_002", data / "HCC_002")
    skipped: list = []
    assert [r.case_id for r in index_cases(data, skipped)] == ["HCC_002"] and skipped == []


def test_an_nbia_download_given_above_its_collection_folder_finds_every_patient(
    tcia_cohort, tmp_path, caplog
):
    """The NBIA Data Retriever saves <download>/manifest-<id>/HCC-TACE-Seg/HCC_001/…: given
    the download, `train` read one "patient" (HCC-TACE-Seg) and `segment` one case, rc 0."""
    from napari_livertumor.commands.segment import discover_cases
    from napari_livertumor.io.tcia import collection_folder

    download = tmp_path / "download"
    collection = download / "manifest-1700000000" / "HCC-TACE-Seg"
    shutil.copytree(tcia_cohort, collection, ignore=shutil.ignore_patterns("*clinical*"))
    (collection.parent / "metadata.csv").write_text("Series UID,Collection\n")
    shutil.copy(next(tcia_cohort.glob("*clinical*.xlsx")), download)  # saved beside it
    for given in (download, collection.parent, collection):
        with caplog.at_level(logging.INFO):
            records = index_cases(given)
        assert [r.case_id for r in records] == ["HCC_001", "HCC_002", "HCC_003"], given
        assert [c.name for c in discover_cases([given])] == ["HCC_001", "HCC_002", "HCC_003"]
    assert find_clinical(download).parent == download  # never NBIA's metadata.csv
    shutil.move(str(download / next(download.glob("*.xlsx")).name), collection)
    assert find_clinical(download).parent == collection  # none nearer: the collection's
    # a patient's own folder (one study folder in it) is never gone down into
    patient = collection / "HCC_001"
    assert collection_folder(patient) == patient
    # the same table as XLSX and CSV (as TCIA offers it, and synth writes it): not worth a word
    caplog.clear()
    with caplog.at_level(logging.INFO):
        find_clinical(tcia_cohort)
    assert "not read" not in caplog.text and "saved later" not in caplog.text
    # ... unless one was saved later (a CSV edited beside the XLSX, which is the one read)
    import os

    table = tmp_path / "table"
    table.mkdir()
    xlsx = next(tcia_cohort.glob("*.xlsx"))
    shutil.copy(xlsx, table / xlsx.name)
    csv = next(tcia_cohort.glob("*.csv"))
    shutil.copy(csv, table / csv.name)
    os.utime(table / xlsx.name, (1e9, 1e9))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert find_clinical(table).suffix == ".xlsx"
    assert f"{csv.name} beside it was saved later" in caplog.text
    assert f"choose it as the clinical table ({table / csv.name})" in caplog.text
    # said once (the table is looked for twice per run) ...
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        find_clinical(table)
    assert "saved later" not in caplog.text
    # ... and again once the CSV is edited again (a napari session stays open for days)
    os.utime(table / csv.name, (2e9, 2e9))
    with caplog.at_level(logging.WARNING):
        find_clinical(table)
    assert f"{csv.name} beside it was saved later" in caplog.text


def test_a_table_at_the_data_root_without_patient_ids_is_no_clinical_table(tmp_path, caplog):
    """A volumes list or a results CSV at the data root was read as "the clinical table", and
    its lack of a TCIA_ID column stopped the tumor stage."""
    (tmp_path / "volumes.csv").write_text("case,volume_ml\nHCC_001,1500\n")
    with caplog.at_level(logging.INFO):
        assert find_clinical(tmp_path) is None
    assert "volumes.csv: no TCIA_ID column; not taken for the clinical table" in caplog.text
    assert tables_passed_over(tmp_path) == ["volumes.csv"]  # said by the check and training
    (tmp_path / "patients.csv").write_text("TCIA_ID,age,AFP\nHCC_001,60,12\n")
    assert find_clinical(tmp_path).name == "patients.csv"
    (tmp_path / "my_clinical.csv").write_text("case,age\nHCC_001,60\n")  # named so: read,
    assert find_clinical(tmp_path).name == "my_clinical.csv"  # and its problem said then


def test_two_patient_folders_swapped_are_said(tcia_cohort, tmp_path, caplog):
    """Folder HCC_001 holding HCC_002's scan and SEG trained it against HCC_001's clinical
    row without a word (clinical rows are matched by folder name)."""
    swapped = tmp_path / "swapped"
    shutil.copytree(tcia_cohort / "HCC_001", swapped / "HCC_002")
    shutil.copytree(tcia_cohort / "HCC_002", swapped / "HCC_001")
    with caplog.at_level(logging.WARNING):
        records = index_cases(swapped)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_002"]
    assert "patient folder HCC_001 holds the SEG of PatientID HCC_002" in caplog.text
    assert "patient folder HCC_002 holds the SEG of PatientID HCC_001" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        index_cases(tcia_cohort)
    assert "holds the SEG of PatientID" not in caplog.text


def test_another_patients_seg_beside_the_patients_own_is_passed_over(tcia_cohort, tmp_path):
    """The first SEG by name was taken: another patient's, sorted first, made the patient
    "no DICOM SEG" for training and unreadable for `segment` and napari."""
    from napari_livertumor.io.tcia import find_seg_files, load_tcia_case

    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    [own] = find_seg_files(data / "HCC_001")
    [foreign] = find_seg_files(data / "HCC_002")
    shutil.copy(foreign, data / "HCC_001" / "00_foreign_seg.dcm")
    records = index_cases(data)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_002", "HCC_003"]
    assert records[0].labels == own
    ct, labels = load_tcia_case(data / "HCC_001")
    assert ct.meta["seg_path"] == str(own) and (labels == 1).any()


def test_the_index_reads_each_seg_header_once_beyond_the_scan(tcia_cohort, tmp_path, monkeypatch):
    """Indexing a patient read its SEG's header for the series it references, then again for
    its segments (besides the folder's scan, and the PatientID check at the end): once."""
    import pydicom

    from napari_livertumor.io import dicom
    from napari_livertumor.io.tcia import find_seg_files

    data = tmp_path / "data"
    shutil.copytree(tcia_cohort / "HCC_001", data / "HCC_001")
    [seg] = find_seg_files(data / "HCC_001")
    reads = []
    real = pydicom.dcmread

    def counting(fp, *args, **kwargs):
        name = fp if isinstance(fp, str | Path) else getattr(fp, "name", "")  # (a file's)
        if Path(name) == seg and not kwargs.get("specific_tags"):  # (the PatientID check)
            reads.append(name)
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    monkeypatch.setattr(dicom, "_HEADER_CACHE", {})  # (the scan reads it, once)
    [record] = index_cases(data)
    assert record.labels == seg
    assert len(reads) == 2, reads  # (the folder's scan; its series and segments)


def test_the_index_reports_each_patient_and_stops_when_told(tcia_cohort):
    """The Train panel's data check of a folder no longer wanted went on reading it to the end
    in the background: the index now asks between patients and between files."""
    from napari_livertumor.errors import Cancelled
    from napari_livertumor.progress import Reporter

    steps = []
    index_cases(tcia_cohort, reporter=Reporter(lambda *a: steps.append(a)))
    assert [s for s in steps if s[0] == "patients"] == [("patients", i, 3) for i in range(4)]
    assert {s[0] for s in steps} == {"patients"}  # each patient's file scan stays quiet

    # told to stop while the second patient's files are read: nothing more is read
    asked = []

    def should_cancel():  # "stop" on the third question once the second patient has begun
        if ("patients", 1, 3) in steps:
            asked.append(1)
        return len(asked) >= 3

    steps.clear()
    with pytest.raises(Cancelled):
        index_cases(tcia_cohort, reporter=Reporter(lambda *a: steps.append(a), should_cancel))
    assert ("patients", 2, 3) not in steps


def test_a_patient_without_seg_is_skipped_with_a_logged_reason(tcia_cohort, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    for seg in (data / "HCC_002").rglob("*Segmentation*"):
        shutil.rmtree(seg)
    with caplog.at_level(logging.WARNING):
        records = index_cases(data)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_003"]
    assert "HCC_002" in caplog.text and "no DICOM SEG" in caplog.text


def test_patient_folders_of_nifti_files_are_told_the_layout_read(tcia_cohort, tmp_path, caplog):
    """KiTS's case_N/imaging.nii.gz + segmentation.nii.gz beside DICOM patients: it was said to
    have "no DICOM SEG (no labels)", which its NIfTI labels contradict."""
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume

    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    vol = CTVolume(np.zeros((4, 8, 8), np.int16), (2.0, 1.0, 1.0))
    for name in ("imaging", "segmentation"):
        write_nifti(vol, data / "case_00000" / f"{name}.nii.gz")
    with caplog.at_level(logging.WARNING):
        records = index_cases(data)
    assert "case_00000" not in [r.case_id for r in records]
    assert (
        "no DICOM; NIfTI files (imaging.nii.gz, segmentation.nii.gz) are read from imagesTr/ + "
        "labelsTr/ only"
    ) in caplog.text


def test_a_truncated_seg_is_reported_as_unreadable_not_as_missing(tcia_cohort, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    [seg] = [p for p in (data / "HCC_003").rglob("*.dcm") if "Segmentation" in str(p)]
    seg.write_bytes(seg.read_bytes()[:400])
    with caplog.at_level(logging.WARNING):
        records = index_cases(data)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_002"]
    assert "no readable DICOM SEG" in caplog.text and seg.name in caplog.text


def test_splits_are_by_patient_seeded_and_disjoint():
    ids = [f"HCC_{i:03d}" for i in range(1, 41)]
    a = make_split(ids, seed=1)
    assert a == make_split(ids, seed=1)
    assert a != make_split(ids, seed=2)
    assert len(a["test"]) == 8 and len(a["train"]) + len(a["val"]) == 32
    assert not (set(a["train"]) & set(a["test"])) and not (set(a["val"]) & set(a["test"]))
    folds = [make_split(ids, seed=1, folds=5, fold=k)["test"] for k in range(5)]
    assert sorted(sum(folds, [])) == ids  # every patient is tested exactly once over the folds


def test_a_split_file_with_a_patient_in_two_lists_is_refused_by_name(tmp_path, caplog):
    """It was accepted, and evaluate then scored training patients as test patients."""
    import json

    from napari_livertumor.errors import InputError

    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["HCC_001", "HCC_002"], "test": ["HCC_003", "HCC_001"]}))
    with pytest.raises(InputError, match=r"1 patient\(s\) are in both 'train' and 'test': HCC_001"):
        read_split(path)
    path.write_text(json.dumps({"train": ["HCC_001"], "val": ["HCC_005"], "test": ["HCC_005"]}))
    with pytest.raises(InputError, match="both 'val' and 'test': HCC_005"):
        read_split(path)
    path.write_text(json.dumps({"train": ["HCC_001"], "val": ["HCC_002"], "test": ["HCC_003"]}))
    assert read_split(path)["test"] == ["HCC_003"]
    # evaluation reads only 'test': training patients scored on purpose get a warning
    path.write_text(json.dumps({"train": ["HCC_001", "HCC_002"], "test": ["HCC_001"]}))
    with caplog.at_level(logging.WARNING):
        assert read_split(path, require_train=False)["test"] == ["HCC_001"]
    assert "1 patient(s) are in both 'train' and 'test': HCC_001" in caplog.text


def test_label_mapping_per_stage_and_tlvr():
    hcc = np.array([0, 1, 1, 2, 3, 4])
    assert stage_labels(hcc, "liver").tolist() == [0, 1, 1, 1, 1, 0]
    assert stage_labels(hcc, "tumor").tolist() == [0, 1, 1, 2, 1, 0]
    assert tumor_liver_ratio(hcc) == pytest.approx(1 / 4)


def test_training_reads_an_unsigned_or_damaged_ct_as_inference_does(tmp_path):
    """prepare_case took the CT in its stored type: an unsigned one (a NIfTI stored uint16)
    failed on the -1000 HU fill outside the liver, and NaNs reached the patches, where
    inference reads both through the same function (int16 where it fits; NaN as the lowest)."""
    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.training.data import prepare_case, preprocess_params

    zz, yy, xx = np.mgrid[0:20, 0:32, 0:32]
    ball = (zz - 10) ** 2 + (yy - 16) ** 2 + (xx - 16) ** 2 < 7**2
    hcc = ball.astype(np.uint8)
    params = preprocess_params(_plain_tumor_config(tmp_path))
    assert params["mask_outside_liver"] and params["outside_hu"] < 0
    cases = []
    for hu in (np.where(ball, 100, 40).astype(np.uint16), np.where(ball, 100.0, np.nan)):
        case = prepare_case(CTVolume(hu, spacing=(2.0, 2.0, 2.0)), hcc, params, "BALL")
        assert np.isfinite(case.image.astype(np.float32)).all()
        cases.append(case.image)
    np.testing.assert_array_equal(cases[0][cases[0] > 0], cases[1][cases[0] > 0])
    with pytest.raises(ValueError, match="every voxel is NaN or infinite"):
        prepare_case(CTVolume(np.full((4, 8, 8), np.nan), (2.0, 2.0, 2.0)), hcc[:4, :8, :8],
                     params, "BALL")  # fmt: skip


# ---------------------------------------------------------------- mask-growth augmentation
def _liver_ball_case(tmp_path):
    """A tumor-stage case prepared from a ball 'liver' in uniform 40 HU tissue (2 mm voxels)."""
    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.training.data import prepare_case, preprocess_params

    zz, yy, xx = np.mgrid[0:40, 0:64, 0:64]
    ball = (zz - 20) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2 < 12**2
    hu = np.where(ball, 100, 40).astype(np.int16)
    hcc = ball.astype(np.uint8)  # 1 = liver
    ct = CTVolume(hu, spacing=(2.0, 2.0, 2.0))
    cfg = _plain_tumor_config(tmp_path)
    return prepare_case(ct, hcc, preprocess_params(cfg), "BALL"), cfg


def _plain_tumor_config(tmp_path, **overrides):
    """A tumor-stage config on a 2 mm grid with every random intensity/spatial change off."""
    from napari_livertumor.training import make_config

    base = dict(
        data=str(tmp_path),
        target_spacing=(2.0, 2.0, 2.0),
        roi_size=(16, 32, 32),
        roi_margin_mm=20.0,
        aug_intensity=0.0,
        aug_gamma=0.0,
        aug_noise=0.0,
        aug_blur=0.0,
        aug_prob=0.0,
        fg_ratio=1.0,
        tumor_ratio=0.0,
    )
    return make_config("tumor", **{**base, **overrides})


def test_a_masked_tumor_case_keeps_the_unmasked_roi_and_the_distance_to_the_liver(tmp_path):
    from napari_livertumor.training.data import _read_cached, _write_cached

    case, _ = _liver_ball_case(tmp_path)
    liver = case.labels >= 1
    assert case.unmasked is not None and case.outside_mm is not None
    assert case.image[~liver].max() == 0.0  # the masked image, as inference feeds it
    tissue = (40 + 200) / 450  # 40 HU in the (-200, 250) window
    far = case.outside_mm > 4
    assert np.allclose(case.unmasked[far], tissue, atol=2e-3)
    assert case.outside_mm[liver].max() == 0 and case.outside_mm.max() > 10
    path = tmp_path / "c.npz"
    _write_cached(path, case)
    back = _read_cached(path)
    assert np.array_equal(back.unmasked, case.unmasked)
    assert np.array_equal(back.outside_mm, case.outside_mm)
    # as readable as any file written (a cache shared by a group was owner-only, mode 0600,
    # and rebuilt unsaid by everyone else), and no temporary file left
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".c.npz")] == []


def test_mask_growth_shows_tissue_around_the_liver_labelled_background(tmp_path):
    from napari_livertumor.training.patches import sample_patch

    case, cfg = _liver_ball_case(tmp_path)
    tissue = (40 + 200) / 450
    off = cfg.with_updates(aug_mask_dilate_mm=0.0)
    on = cfg.with_updates(aug_mask_dilate_mm=10.0, aug_mask_prob=1.0)
    grown = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        p = sample_patch(case, rng, off, None)
        img, lab = p["image"][0].numpy(), p["label"].numpy()
        assert img[lab == 0].max() == 0.0  # exactly the inference-style mask when off
        q = sample_patch(case, np.random.default_rng(seed), on, None)
        img, lab = q["image"][0].numpy(), q["label"].numpy()
        assert np.array_equal(lab, p["label"].numpy())  # labels never change
        grown += int((np.abs(img[lab == 0] - tissue) < 0.02).sum())
    assert grown > 0  # tissue outside the liver became visible, labelled background


def test_grown_margin_stays_within_its_maximum():
    from napari_livertumor.training.patches import _grow_mask

    dist = np.broadcast_to(np.arange(32, dtype=np.float32), (8, 16, 32)).copy()
    masked = np.zeros_like(dist)
    unmasked = np.ones_like(dist)
    for seed in range(20):
        out = _grow_mask(masked, unmasked, dist, np.random.default_rng(seed), 8.0, (1.0,) * 3)
        assert out.shape == dist.shape
        assert out[dist == 0].min() > 0.5  # the liver itself stays visible
        assert out[dist >= 9].max() == 0.0  # never past max + half a voxel ramp
    bad = dict(aug_mask_dilate_mm=-1.0)
    from napari_livertumor.training import make_config

    with pytest.raises(ValueError, match="aug_mask_dilate_mm"):
        make_config("tumor", **bad)


def test_smooth_field_is_bounded_smooth_seeded_and_sized_in_mm():
    from napari_livertumor.training.patches import smooth_field

    shape, spacing = (16, 48, 48), (2.5, 2.0, 2.0)
    a = smooth_field(np.random.default_rng(3), shape, spacing, 0.05, (20.0, 20.0))
    b = smooth_field(np.random.default_rng(3), shape, spacing, 0.05, (20.0, 20.0))
    c = smooth_field(np.random.default_rng(4), shape, spacing, 0.05, (20.0, 20.0))
    assert a.shape == shape and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a).max() <= 0.05 + 1e-6 and a.std() > 0.005
    # neighbours 2 mm apart differ far less than white noise of the same spread would
    assert np.abs(np.diff(a, axis=2)).mean() < 0.25 * a.std()
    # larger blobs -> smoother
    big = smooth_field(np.random.default_rng(3), shape, spacing, 0.05, (60.0, 60.0))
    assert (
        np.abs(np.diff(big, axis=2)).mean() / big.std()
        < np.abs(np.diff(a, axis=2)).mean() / a.std()
    )


def test_the_field_augmentation_changes_intensities_never_labels(tmp_path):
    from napari_livertumor.training import make_config
    from napari_livertumor.training.patches import sample_patch

    case, cfg = _liver_ball_case(tmp_path)
    on = cfg.with_updates(aug_field_hu=30.0, aug_field_prob=1.0)
    changed = 0
    for seed in range(4):
        p = sample_patch(case, np.random.default_rng(seed), cfg, None)
        q = sample_patch(case, np.random.default_rng(seed), on, None)
        assert np.array_equal(p["label"].numpy(), q["label"].numpy())
        d = q["image"][0].numpy() - p["image"][0].numpy()
        lab = q["label"].numpy()
        assert np.abs(d).max() <= 30.0 / 450 + 1e-5  # at most the amplitude (windowed units)
        outside = (lab == 0) & (p["image"][0].numpy() == 0.0)
        assert np.all(q["image"][0].numpy()[outside] == 0.0)  # the masked outside stays exact
        changed += int(np.abs(d[lab >= 1]).max() > 1e-3)
    assert changed >= 2
    with pytest.raises(ValueError, match="aug_field"):
        make_config("tumor", aug_field_hu=-1.0)
    with pytest.raises(ValueError, match="aug_field"):
        make_config("tumor", aug_field_mm=(30.0, 10.0))


def test_spare_lesions_keeps_each_lesions_contrast_and_the_field_elsewhere():
    from napari_livertumor.training.patches import smooth_field, spare_lesions

    shape, spacing = (16, 48, 48), (2.5, 2.0, 2.0)
    f = smooth_field(np.random.default_rng(0), shape, spacing, 0.1, (15.0, 15.0))
    lesion = np.zeros(shape, bool)
    lesion[4:12, 10:30, 12:28] = True
    g = spare_lesions(f, lesion, spacing)
    assert np.array_equal(g[~lesion], f[~lesion])  # untouched outside the lesion
    # inside, every value is one the field takes just outside the lesion's box
    ring = np.zeros(shape, bool)
    ring[3:13, 9:31, 11:29] = True
    ring &= ~lesion
    assert set(np.unique(g[lesion])) <= set(np.unique(f[ring]))
    # a voxel next to a face carries that face's outside neighbour
    assert g[8, 20, 12] == f[8, 20, 11] and g[8, 10, 20] == f[8, 9, 20]
    assert spare_lesions(f, np.zeros(shape, bool), spacing) is f


def test_the_lesion_sparing_field_never_changes_a_lesions_contrast(tmp_path):
    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.training.data import prepare_case, preprocess_params
    from napari_livertumor.training.patches import sample_patch

    zz, yy, xx = np.mgrid[0:40, 0:64, 0:64]
    ball = (zz - 20) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2 < 14**2
    les = (zz - 20) ** 2 + (yy - 32) ** 2 + (xx - 30) ** 2 < 5**2
    hu = np.where(ball, 100, 40) - np.where(les, 30, 0)
    hcc = ball.astype(np.uint8) + les.astype(np.uint8)  # 1 liver, 2 tumor
    cfg = _plain_tumor_config(
        tmp_path,
        tumor_ratio=1.0,
        aug_field_hu=40.0,
        aug_field_mm=(8.0, 12.0),
        aug_field_prob=1.0,
    )
    case = prepare_case(
        CTVolume(hu.astype(np.int16), spacing=(2.0, 2.0, 2.0)), hcc, preprocess_params(cfg), "LES"
    )
    spare = cfg.with_updates(aug_field_spare_lesions=True)
    worst_plain = worst_spare = 0.0
    for seed in range(6):
        p = sample_patch(case, np.random.default_rng(seed), spare, None)
        q = sample_patch(case, np.random.default_rng(seed), cfg, None)
        lab = p["label"].numpy()
        assert np.array_equal(lab, q["label"].numpy())  # same draws, same labels
        if not (lab == 2).any():
            continue
        for patch, name in ((p, "spare"), (q, "plain")):
            img = patch["image"][0].numpy()
            # at every lesion voxel on a face, the step to the liver voxel beside it (x - 1)
            lz, ly, lx = np.nonzero((lab == 2) & (np.roll(lab, 1, axis=2) == 1))
            step = (img[lz, ly, lx - 1] - img[lz, ly, lx]) * 450  # HU
            dev = float(np.abs(step - 30.0).max())
            if name == "spare":
                worst_spare = max(worst_spare, dev)
            else:
                worst_plain = max(worst_plain, dev)
    # the drawn 30 HU on every face, to the field's step between neighbouring voxels (the
    # nearest liver voxel may be a diagonal one); the plain field moves it by several HU
    assert worst_spare < 1.0
    assert worst_plain > 5.0


def test_hard_negatives_are_liver_that_looks_unlike_liver_and_patches_centre_on_them(tmp_path):
    """A fat-like patch in a noisy liver (not tumor) is found; the tumor and the liver's edge
    are not; with ``hard_ratio`` 1 the liver-centred patches are centred on it."""
    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.training import make_config
    from napari_livertumor.training.data import atypical_liver, prepare_case, preprocess_params
    from napari_livertumor.training.patches import sample_patch

    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[0:40, 0:80, 0:80]
    liver = (zz - 20) ** 2 + ((yy - 40) / 1.5) ** 2 + ((xx - 40) / 1.5) ** 2 < 16**2
    fat = (zz - 20) ** 2 + (yy - 40) ** 2 + (xx - 52) ** 2 < 5**2
    tumor = (zz - 20) ** 2 + (yy - 40) ** 2 + (xx - 26) ** 2 < 5**2
    hu = np.where(liver, 100.0, 40.0) + rng.normal(0, 10, liver.shape)
    hu[fat] = 20.0 + rng.normal(0, 10, int(fat.sum()))
    hu[tumor] = 60.0 + rng.normal(0, 10, int(tumor.sum()))
    hcc = liver.astype(np.uint8)
    hcc[tumor] = 2
    cfg = make_config(
        "tumor",
        data=str(tmp_path),
        target_spacing=(2.0, 2.0, 2.0),
        roi_size=(16, 32, 32),
        fg_ratio=1.0,
        tumor_ratio=0.0,
        hard_ratio=1.0,
        augment=False,
    )
    case = prepare_case(
        CTVolume(hu.astype(np.int16), spacing=(2.0,) * 3), hcc, preprocess_params(cfg), "F"
    )
    found = atypical_liver(case.image, case.labels)
    assert not found[case.labels != 1].any()  # never tumor or outside the liver
    box = tuple(slice(int(a), int(b)) for a, b in case.info["roi"])
    fat_roi = fat[box]
    assert found[fat_roi].mean() > 0.5  # most of the fat patch
    from scipy import ndimage as ndi

    near_fat = ndi.binary_dilation(fat_roi, iterations=2)  # smoothing blurs its border
    assert found[~near_fat].sum() < 0.05 * found.sum()  # and little else (noise, the edge)
    assert abs(len(case.fg["atypical"]) - int(found.sum())) <= 0.01 * found.sum()
    # uniform liver: nothing is atypical
    assert not atypical_liver(
        np.full((20, 20, 20), 0.5, np.float32), np.ones((20, 20, 20), np.uint8)
    ).any()

    # with hard_ratio 1 every liver-centred patch is drawn around the fat, with 0 anywhere
    dark = (20 + 200) / 450 + 0.05  # fat-like intensity in the (-200, 250) window

    def fat_in_patches(config):
        n = 0
        for seed in range(16):
            p = sample_patch(case, np.random.default_rng(seed), config, None)
            img, lab = p["image"][0].numpy(), p["label"].numpy()
            n += int(((img < dark) & (lab == 1)).sum())
        return n

    hard, plain = fat_in_patches(cfg), fat_in_patches(cfg.with_updates(hard_ratio=0.0))
    assert hard > 1.5 * plain


def test_lesion_balanced_sampling_reaches_small_satellites(tmp_path):
    """Drawn voxel by voxel, a satellite beside a large mass is rarely a patch centre; with
    ``lesion_ratio`` 1 every lesion is drawn equally often (also from a cache written before
    lesion sampling existed)."""
    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.training import make_config
    from napari_livertumor.training.data import (
        _read_cached,
        _write_cached,
        lesion_indices,
        prepare_case,
        preprocess_params,
    )
    from napari_livertumor.training.patches import sample_patch

    zz, yy, xx = np.mgrid[0:40, 0:96, 0:96]
    liver = (zz - 20) ** 2 + ((yy - 48) / 2) ** 2 + ((xx - 48) / 2) ** 2 < 18**2
    mass = (zz - 20) ** 2 + (yy - 48) ** 2 + (xx - 30) ** 2 < 12**2
    satellite = (zz - 20) ** 2 + (yy - 48) ** 2 + (xx - 76) ** 2 < 3**2
    speck = (zz == 20) & (yy == 30) & (xx == 48)  # one voxel: left to the voxel-uniform draw
    hu = np.where(liver, 100.0, 40.0)
    hcc = liver.astype(np.uint8)
    for m, value in ((mass, 60.0), (satellite, 160.0), (speck, 60.0)):
        hu[m] = value
        hcc[m] = 2
    bright = (130 + 200) / 450  # between the liver (100 HU) and the satellite (160 HU)
    cfg = make_config(
        "tumor",
        data=str(tmp_path),
        target_spacing=(2.0, 2.0, 2.0),
        roi_size=(8, 16, 16),
        fg_ratio=1.0,
        tumor_ratio=1.0,
        lesion_ratio=1.0,
        augment=False,
    )
    case = prepare_case(
        CTVolume(hu.astype(np.int16), spacing=(2.0,) * 3), hcc, preprocess_params(cfg), "L"
    )
    rows = case.fg["lesion"]
    assert rows.shape == (400, 3)  # two lesions of >= 5 voxels, 200 rows each
    assert (case.labels[tuple(rows.T)] == 2).all()
    assert lesion_indices(np.zeros((4, 4, 4), np.uint8), np.random.default_rng(0)).shape == (0, 3)

    def satellite_share(config, c):
        hits = 0
        for seed in range(200):
            p = sample_patch(c, np.random.default_rng(seed), config, None)
            hits += int((p["image"].numpy() > bright).any())  # the satellite is in view
        return hits / 200

    # the satellite is ~1 % of the tumor voxels: voxel by voxel it is rarely in a patch
    balanced = satellite_share(cfg, case)
    plain = satellite_share(cfg.with_updates(lesion_ratio=0.0), case)
    assert balanced > 0.3 and plain < 0.1

    # a cache entry without lesion rows gets them on reading
    case.fg.pop("lesion")
    path = tmp_path / "c.npz"
    _write_cached(path, case)
    again = _read_cached(path)
    assert len(again.fg["lesion"]) == 400
    assert satellite_share(cfg, again) > 0.3

    with pytest.raises(ValueError, match="lesion_ratio"):
        make_config("tumor", data=str(tmp_path), lesion_ratio=1.5)


def test_a_ras_stored_nifti_case_trains_in_the_standard_orientation(tmp_path):
    """nnU-Net-style folders are often RAS: the case must reach the model as a DICOM one does."""
    from _geometry import stored_as

    from napari_livertumor.io import CTVolume
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.training.data import CaseRecord

    rng = np.random.default_rng(0)
    ct = CTVolume(rng.integers(-100, 200, (4, 6, 8)).astype(np.int16), spacing=(2.5, 0.9, 0.8))
    hcc = rng.integers(0, 5, ct.shape).astype(np.uint8)
    ras_ct = stored_as(ct, "RAS")
    ras_labels = stored_as(ct.with_array(hcc), "RAS")
    assert not np.array_equal(ras_ct.array, ct.array)
    write_nifti(ras_ct, tmp_path / "HCC_001_0000.nii.gz")
    write_nifti(ras_labels, tmp_path / "HCC_001.nii.gz")
    rec = CaseRecord(
        "HCC_001", "nifti", tmp_path / "HCC_001_0000.nii.gz", tmp_path / "HCC_001.nii.gz"
    )
    got_ct, got_hcc = load_case(rec)
    np.testing.assert_array_equal(got_ct.array, ct.array)
    np.testing.assert_array_equal(got_hcc, hcc)
    np.testing.assert_allclose(got_ct.affine, ct.affine, atol=1e-5)


def test_labels_stored_in_another_axis_order_than_their_ct_still_fit(tmp_path):
    from _geometry import stored_as

    from napari_livertumor.io import CTVolume
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.training.data import CaseRecord

    rng = np.random.default_rng(1)
    ct = CTVolume(rng.integers(-100, 200, (4, 6, 8)).astype(np.int16), spacing=(2.5, 0.9, 0.8))
    hcc = rng.integers(0, 5, ct.shape).astype(np.uint8)
    write_nifti(ct, tmp_path / "ct.nii.gz")  # the CT as DICOM-like LPS, its labels as RAS
    write_nifti(stored_as(ct.with_array(hcc), "RAS"), tmp_path / "lab.nii.gz")
    rec = CaseRecord("HCC_001", "nifti", tmp_path / "ct.nii.gz", tmp_path / "lab.nii.gz")
    got_ct, got_hcc = load_case(rec)
    np.testing.assert_array_equal(got_hcc, hcc)

    bad = hcc.astype(np.float32)
    bad[0, 0, :2] = (7, 2.5)
    write_nifti(ct.with_array(bad), tmp_path / "bad.nii.gz")
    with pytest.raises(Exception, match=r"found 2\.5, 7"):
        load_case(CaseRecord("HCC_001", "nifti", tmp_path / "ct.nii.gz", tmp_path / "bad.nii.gz"))


def test_a_file_given_as_the_data_folder_says_it_is_a_file(tmp_path):
    from napari_livertumor.errors import InputError

    f = tmp_path / "cohort.zip"
    f.write_bytes(b"PK")
    with pytest.raises(InputError, match="is a file"):
        index_cases(f)


def test_one_patients_folder_given_as_the_data_is_named_as_such(tcia_cohort, caplog):
    """`--data cohort/HCC_001` trained on the study folder as a 'patient' without a word."""
    with caplog.at_level(logging.WARNING):
        records = index_cases(tcia_cohort / "HCC_001")
    assert len(records) == 1 and records[0].case_id != "HCC_001"
    assert "looks like the folder of one patient (PatientID HCC_001)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        index_cases(tcia_cohort)
    assert "one patient" not in caplog.text


def test_a_folder_above_the_patients_is_not_trained_as_one_patient(tcia_cohort, tmp_path):
    """`--data above/` with the cohort one level down was checked as "1 patient" and trained
    on HCC_001's scan under the cohort folder's name."""
    import shutil

    from napari_livertumor.errors import InputError

    above = tmp_path / "above"
    shutil.copytree(tcia_cohort, above / "cohort")
    with pytest.raises(InputError) as refused:
        index_cases(above)
    text = str(refused.value)
    assert text.startswith(f"{above / 'cohort'}: holds the CT scans and SEGs of 3 patients")
    assert f"give {above / 'cohort'} as the data folder" in text
    # beside real patient folders, it is one more folder left out with that reason
    shutil.copytree(tcia_cohort / "HCC_001", above / "HCC_009")
    skipped: list = []
    records = index_cases(above, skipped=skipped)
    assert [r.case_id for r in records] == ["HCC_009"]
    assert skipped[0][0] == "cohort" and "a folder of patients" in skipped[0][1]
    # the cohort in a folder named like one of its patients: not trained as that patient
    named = tmp_path / "named"
    shutil.copytree(tcia_cohort, named / "hcc_001")
    with pytest.raises(InputError, match="holds the CT scans and SEGs of 3 patients"):
        index_cases(named)
    assert "copied in" not in text  # its sub-folders are named by its patients
    # one patient's folder, named by no PatientID, with another's study copied in: which is
    # its own cannot be told, and the advice says how to tell it
    odd = tmp_path / "odd" / "patient A"
    for pid in ("HCC_001", "HCC_002"):
        for study in (tcia_cohort / pid).iterdir():
            shutil.copytree(study, odd / f"{pid[-1]}-{study.name}")
    with pytest.raises(InputError, match="name the folder by its patient's ID, HCC_001 or HCC_002"):
        index_cases(odd.parent)
    # two cohorts side by side (one per site): said, not "none of the 2 … holds a DICOM SEG"
    sites = tmp_path / "sites"
    for site in ("siteA", "siteB"):
        shutil.copytree(tcia_cohort, sites / site)
    with pytest.raises(InputError, match=r"2 of its 2 folders \(siteA, siteB\) each hold"):
        index_cases(sites)


def test_a_patient_folder_holding_another_patients_study_too_is_still_that_patient(
    tcia_cohort, tmp_path
):
    """A patient's folder with another patient's whole study copied in was refused as "a
    folder of patients" (the check above): it is its own patient's, trained on its own SEG."""
    import shutil

    data = tmp_path / "c3"
    shutil.copytree(tcia_cohort, data)
    for study in (data / "HCC_002").iterdir():
        shutil.copytree(study, data / "HCC_001" / f"{study.name}-of-HCC_002")
    skipped: list = []
    records = {r.case_id: r for r in index_cases(data, skipped=skipped)}
    assert sorted(records) == ["HCC_001", "HCC_002", "HCC_003"], skipped
    import pydicom

    seg = pydicom.dcmread(records["HCC_001"].labels, stop_before_pixels=True)
    assert str(seg.PatientID) == "HCC_001"  # its own SEG, not the copied one
    # its own SEG with a blank PatientID, the copy sorted first: still its own SEG and scan
    blank = tmp_path / "blank"
    shutil.copytree(tcia_cohort, blank)
    for study in (blank / "HCC_002").iterdir():
        shutil.copytree(study, blank / "HCC_001" / f"0 copy {study.name}")
    own_seg = next(
        f for f in (blank / "HCC_001").rglob("*.dcm")
        if "0 copy" not in str(f) and pydicom.dcmread(f, stop_before_pixels=True).Modality == "SEG"
    )  # fmt: skip
    ds = pydicom.dcmread(own_seg)
    ds.PatientID = ""
    ds.save_as(own_seg)
    skipped = []
    found = {r.case_id: r for r in index_cases(blank, skipped=skipped)}
    assert sorted(found) == ["HCC_001", "HCC_002", "HCC_003"], skipped
    assert found["HCC_001"].labels == own_seg
    assert found["HCC_001"].series_uid != found["HCC_002"].series_uid
    # its own SEG gone: skipped with the reason, never given the copied-in patient's SEG
    own_seg.unlink()
    skipped = []
    found = {r.case_id: r for r in index_cases(blank, skipped=skipped)}
    assert sorted(found) == ["HCC_002", "HCC_003"], skipped
    assert any(name == "HCC_001" and "no SEG of its own patient" in why for name, why in skipped)
    # its own SEG's CT missing (a partial download): skipped for that, never trained on the
    # other patient's SEG and scan under its own name (HCC_002 then skipped as "a copy")
    seg_ref = pydicom.dcmread(records["HCC_001"].labels, stop_before_pixels=True)
    ct_uid = str(seg_ref.ReferencedSeriesSequence[0].SeriesInstanceUID)
    for f in (data / "HCC_001").rglob("*.dcm"):
        if "of-HCC_002" in str(f):
            continue
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if str(ds.SeriesInstanceUID) == ct_uid:
            f.unlink()
    skipped = []
    records = {r.case_id: r for r in index_cases(data, skipped=skipped)}
    assert sorted(records) == ["HCC_002", "HCC_003"], skipped
    assert any(name == "HCC_001" and "not in the folder" in why for name, why in skipped)


def test_nifti_case_names_ending_in_digits_pair_with_their_own_labels(tmp_path, caplog):
    """case_0001.nii.gz was taken for channel 1 of a case 'case' and every image was skipped;
    a second image of one case and a label with no image were ignored without a word."""
    import logging

    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume

    vol = CTVolume(np.zeros((4, 8, 8), np.int16))
    lab = CTVolume(np.zeros((4, 8, 8), np.uint8))
    for k, name in enumerate(("case_0001", "case_0002")):  # two patients, not one copied
        write_nifti(
            CTVolume(np.full((4, 8, 8), k, np.int16)), tmp_path / "imagesTr" / f"{name}.nii.gz"
        )
        write_nifti(lab, tmp_path / "labelsTr" / f"{name}.nii.gz")
    write_nifti(vol, tmp_path / "imagesTr" / "HCC_009_0000.nii.gz")  # nnU-Net channel naming
    write_nifti(lab, tmp_path / "labelsTr" / "HCC_009.nii.gz")
    write_nifti(vol, tmp_path / "imagesTr" / "HCC_009.nii")  # a second image of HCC_009
    write_nifti(lab, tmp_path / "labelsTr" / "HCC_077.nii.gz")  # no image
    skipped: list = []
    with caplog.at_level(logging.WARNING):
        records = index_cases(tmp_path, skipped)
    assert [r.case_id for r in records] == ["HCC_009", "case_0001", "case_0002"]
    assert records[0].image.name == "HCC_009.nii"
    assert [c for c, _ in skipped] == ["HCC_009"] and "second image" in skipped[0][1]
    assert "label file(s) with no image" in caplog.text and "HCC_077.nii.gz" in caplog.text


def test_a_training_output_inside_the_data_folder_is_not_a_patient(tcia_cohort, tmp_path):
    """--out inside --data: the next run listed the model folder as a skipped patient."""
    import shutil

    from napari_livertumor.models import make_untrained_model

    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    make_untrained_model(data / "models" / "liver", "liver")
    skipped: list = []
    records = index_cases(data, skipped)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_002", "HCC_003"]
    assert skipped == []


def test_a_written_split_gives_back_the_patients_it_skipped_to_their_lists(tmp_path):
    """A run's split.json names only the patients it used; reused with --split, a patient it
    had skipped (since fixed) was never trained or validated again."""
    import json

    from napari_livertumor.training.data import read_split

    path = tmp_path / "split.json"
    path.write_text(json.dumps({
        "train": ["HCC_001"], "val": [], "test": ["HCC_003"],
        "skipped": [{"case": "HCC_002", "reason": "x", "list": "val"},
                    {"case": "HCC_004", "reason": "no labels"}],
    }))  # fmt: skip
    split = read_split(path)
    assert split["val"] == ["HCC_002"] and split["train"] == ["HCC_001"]


def test_a_patient_folder_copied_beside_itself_is_one_patient(tcia_cohort, tmp_path, caplog):
    """'HCC_001 (1)' (a download unpacked twice) was a patient of its own: the seeded split
    put HCC_002 in train and its copy in test."""
    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    shutil.copytree(data / "HCC_002", data / "HCC_002_copy")
    shutil.copytree(data / "HCC_003", data / "Copy of HCC_003")  # sorts before the original
    with caplog.at_level(logging.WARNING):
        records = index_cases(data)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_002", "HCC_003"]
    assert "HCC_002_copy: a copy of HCC_002 (the same scan)" in caplog.text
    assert "Copy of HCC_003: a copy of HCC_003" in caplog.text


def test_nifti_copies_are_one_patient_and_same_sized_others_are_not(tmp_path, caplog):
    from napari_livertumor.training.toydata import write_toy_cohort

    data = write_toy_cohort(tmp_path / "d", n_cases=3, seed=2)
    for sub in ("imagesTr", "labelsTr"):
        shutil.copy(data / sub / "HCC_001.nii.gz", data / sub / "HCC_009.nii.gz")
    with caplog.at_level(logging.WARNING):
        ids = [r.case_id for r in index_cases(data)]
    assert ids == ["HCC_001", "HCC_002", "HCC_003"]
    assert "HCC_009: a copy of HCC_001" in caplog.text


def test_a_copy_of_any_patient_is_found_among_same_sized_files(tmp_path, caplog):
    """Uncompressed NIfTI files of one shape all have one size: only copies of the first
    patient were found."""
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume

    for k in (1, 2):
        vol = CTVolume(np.full((4, 8, 8), 10 * k, np.int16))
        lab = CTVolume(np.full((4, 8, 8), k, np.uint8))
        for name in (f"HCC_00{k}", *(["HCC_002_copy"] if k == 2 else [])):
            write_nifti(vol, tmp_path / "imagesTr" / f"{name}.nii")
            write_nifti(lab, tmp_path / "labelsTr" / f"{name}.nii")
    with caplog.at_level(logging.WARNING):
        ids = [r.case_id for r in index_cases(tmp_path)]
    assert ids == ["HCC_001", "HCC_002"]
    assert "HCC_002_copy: a copy of HCC_002" in caplog.text


def test_a_patient_written_two_ways_in_two_lists_is_refused(tmp_path):
    """'HCC-1' in train and 'HCC_001' in test passed the two-lists check, then both became
    HCC_001: a test patient trained on."""
    import json

    from napari_livertumor.errors import InputError

    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["HCC-1", "HCC_002"], "test": ["HCC_001"]}))
    with pytest.raises(InputError, match="in both 'train' and 'test': HCC_001"):
        read_split(path)
    path.write_text(json.dumps({"train": ["hcc_2", "HCC-2", "HCC_003"], "test": ["HCC_001"]}))
    assert read_split(path)["train"] == ["HCC_002", "HCC_003"]


def test_copies_are_looked_for_without_reading_every_file_for_every_other(tmp_path, monkeypatch):
    """Same-sized files were compared whole with every earlier one: n² full reads."""
    import napari_livertumor.training.data as data_mod
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume

    rng = np.random.default_rng(0)
    for k in range(8):
        write_nifti(CTVolume(rng.integers(-100, 100, (4, 64, 64)).astype(np.int16)),
                    tmp_path / "imagesTr" / f"HCC_{k:03d}.nii")  # fmt: skip
        write_nifti(CTVolume(rng.integers(0, 3, (4, 64, 64)).astype(np.uint8)),
                    tmp_path / "labelsTr" / f"HCC_{k:03d}.nii")  # fmt: skip
    calls = []
    real = data_mod._file_digest
    monkeypatch.setattr(data_mod, "_file_digest", lambda p: calls.append(p) or real(p))
    assert len(index_cases(tmp_path)) == 8
    assert calls == []  # different first bytes: no whole file read


def test_what_the_ct_reader_made_good_is_said_when_training_reads_it(tcia_cohort, tmp_path, caplog):
    """A patient with a slice missing trained on the interpolated one without a word (convert
    and segment say it); the reader's notes are said per patient and kept with the cache."""
    import logging
    import shutil

    from napari_livertumor.training.data import load_or_prepare

    data = tmp_path / "data"
    shutil.copytree(tcia_cohort / "HCC_001", data / "HCC_001")
    ct_files = sorted(
        f for f in (data / "HCC_001").rglob("*.dcm") if "Segmentation" not in str(f.parent)
    )
    ct_files[len(ct_files) // 2].unlink()
    records = index_cases(data)
    params = {
        "stage": "liver", "target_spacing": (5.0, 4.0, 4.0), "hu_window": (-100.0, 200.0),
        "roi_margin_mm": 10.0, "mask_outside_liver": False, "outside_hu": -100.0,
    }  # fmt: skip
    with caplog.at_level(logging.WARNING):
        [prepared], skipped = load_or_prepare(records, [params], tmp_path / "cache")
    assert skipped == []
    assert "patient HCC_001: " in caplog.text and "missing slice" in caplog.text
    assert any("missing slice" in w for w in prepared["HCC_001"].info["reader_warnings"])


def test_a_patient_memory_cannot_hold_or_a_bug_is_skipped_with_a_reason_in_words(
    tcia_cohort, tmp_path, monkeypatch
):
    """Running out of memory (a large patient under a GPU recipe on a small machine) or an
    error of no expected kind was recorded as its bare type: "skipping patient HCC_002:
    MemoryError"."""
    from napari_livertumor.training import data as data_mod

    records = index_cases(tcia_cohort)
    params = {
        "stage": "liver", "target_spacing": (5.0, 4.0, 4.0), "hu_window": (-100.0, 200.0),
        "roi_margin_mm": 10.0, "mask_outside_liver": False, "outside_hu": -100.0,
    }  # fmt: skip
    real = data_mod.prepare_case

    def failing(ct, hcc, p, case_id):
        if case_id == "HCC_002":
            raise MemoryError()
        if case_id == "HCC_003":
            raise TypeError("'NoneType' object is not subscriptable")
        return real(ct, hcc, p, case_id)

    monkeypatch.setattr(data_mod, "prepare_case", failing)
    [prepared], skipped = data_mod.load_or_prepare(records, [params], tmp_path / "cache")
    reasons = dict(skipped)
    assert sorted(prepared) == ["HCC_001"]
    assert reasons["HCC_002"].startswith("out of memory preparing it (MemoryError): close other")
    assert reasons["HCC_003"] == (
        "unexpected error (TypeError: 'NoneType' object is not subscriptable)"
    )


def test_the_cache_says_where_it_is_what_it_takes_and_warns_of_a_disk_too_small(
    tcia_cohort, tmp_path, caplog, monkeypatch
):
    """Nothing said where the cache went (a hidden OUT/.cache) or what it would take: the GPU
    recipe's is about 58 MB a patient, 5 GB for HCC-TACE-Seg, and a full disk stopped the run
    part-way."""
    import logging
    import shutil
    from collections import namedtuple

    from napari_livertumor.training.data import load_or_prepare

    records = index_cases(tcia_cohort)
    assert len(records) >= 2
    params = {
        "stage": "liver", "target_spacing": (5.0, 4.0, 4.0), "hu_window": (-100.0, 200.0),
        "roi_margin_mm": 10.0, "mask_outside_liver": False, "outside_hu": -100.0,
    }  # fmt: skip
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO):
        load_or_prepare(records, [params], cache)
    used = sum(f.stat().st_size for f in cache.rglob("*.npz"))
    said = caplog.text
    assert f"preprocessing cache {cache}: about" in said and "more for the" in said
    assert f"{len(records)} patient(s)" in said and "WARNING" not in said
    assert used > 0
    # one patient's files gone: the others, cached, are not counted as still to prepare
    for f in cache.rglob(f"{records[0].case_id}-*.npz"):
        f.unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        load_or_prepare(records, [params], cache)
    assert "more for the 0 still to prepare" in caplog.text
    # a disk with almost nothing free: said after the first patient, before the rest
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10, 10))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        load_or_prepare(records, [params], tmp_path / "other")
    assert (
        "and its disk has 0.0 MB free: free space, or put the cache on a larger disk" in caplog.text
    )
    # Cancel while the other patients' cache files are looked for: a stop, not a skipped patient
    from napari_livertumor.errors import Cancelled

    asked = []

    def cancel_on_the_second_look():
        asked.append(1)
        return len(asked) == 2  # (only then: a stop swallowed would go on unnoticed)

    with pytest.raises(Cancelled):
        load_or_prepare(
            records, [params], tmp_path / "third", should_cancel=cancel_on_the_second_look
        )


def test_a_seg_covering_slices_the_ct_lacks_is_said_not_taken_in_silence(
    tcia_cohort, tmp_path, caplog
):
    """CT files lost at one end of the series (not a gap: the scan just reads shorter) left a
    SEG whose frames there fell on no slice: the patient was scored on part of its truth with
    nothing but a log line of the SEG reader's, which nobody passed on."""
    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    [series] = [p for p in (data / "HCC_001").glob("*/*") if "LIVER" in p.name]
    files = sorted(series.glob("*.dcm"))
    for f in files[: len(files) // 3]:
        f.write_bytes(f.read_bytes()[:300])  # damaged beyond reading
    (rec,) = [r for r in index_cases(data) if r.case_id == "HCC_001"]
    with caplog.at_level(logging.WARNING):
        ct, hcc = load_case(rec)
    (note,) = ct.meta["truth_warnings"]
    assert "do not fall on a slice of the CT" in note and rec.labels.name in note
    assert "HCC_001: ground truth" in caplog.text
    ct, hcc = load_case(index_cases(tcia_cohort)[0])  # whole: nothing said
    assert "truth_warnings" not in ct.meta


def test_a_ct_slice_replaced_in_a_patient_folder_is_not_trained_on_from_the_cache(
    tcia_cohort, tmp_path, monkeypatch
):
    """The cache key read the patient folder's own size and time, which do not change when a
    file in a series folder below it does: training went on with the old CT."""
    import os

    from napari_livertumor.training.data import cache_key

    data = tmp_path / "data"
    shutil.copytree(tcia_cohort / "HCC_001", data / "HCC_001")
    [record] = index_cases(data)
    params = {"stage": "liver"}
    before = cache_key(record, params)
    assert cache_key(record, params) == before  # nothing changed: the same key
    folder_time = (data / "HCC_001").stat().st_mtime_ns
    ct_file = next(f for f in (data / "HCC_001").rglob("*.dcm") if "Segment" not in str(f))
    ct_file.write_bytes(ct_file.read_bytes())  # rewritten in place, as an edit would be
    os.utime(ct_file, ns=(folder_time + 10**9, folder_time + 10**9))
    assert (data / "HCC_001").stat().st_mtime_ns == folder_time  # the folder looks the same
    assert cache_key(record, params) != before
    # the same folder named another way (a relative path, the panel's absolute one) and a
    # hidden file dropped in a series folder (which the reader skips): the same key
    after = cache_key(record, params)
    monkeypatch.chdir(tmp_path)
    [relative] = index_cases("data")
    assert cache_key(relative, params) == after
    (ct_file.parent / ".DS_Store").write_bytes(b"finder")
    assert cache_key(record, params) == after


def test_a_patch_carries_its_patients_true_ratio_for_the_weak_term(tmp_path):
    """``weak_anchor`` "patch" measures each patch's own true ratio against its patient's."""
    from napari_livertumor.training.patches import sample_patch

    case, cfg = _liver_ball_case(tmp_path)
    p = sample_patch(case, np.random.default_rng(0), cfg, 0.2)
    assert float(p["weak_tlvr"]) == pytest.approx(case.tlvr)
    assert float(p["weak_target"]) == pytest.approx(0.2)


def test_the_model_cards_split_is_found_outside_a_checkout(tmp_path, monkeypatch):
    """`--split configs/split_synth160.json` (the model cards' commands) failed from any other
    folder, though `--config configs/…` found the shipped recipe."""
    from napari_livertumor.errors import InputError
    from napari_livertumor.training.data import read_split

    monkeypatch.chdir(tmp_path)
    split = read_split("configs/split_synth160.json")
    assert len(split["test"]) == 12 and "HCC_001" in {
        *split["train"],
        *split["val"],
        *split["test"],
    }
    with pytest.raises(InputError, match="split file not found"):
        read_split("configs/no_such_split.json")
    with pytest.raises(InputError, match="split file not found"):
        read_split("elsewhere/split_synth160.json")  # another folder: not swapped
    with pytest.raises(InputError, match="split file not found"):
        read_split("data/configs/split_synth160.json")  # nor one ending in configs/


def test_folders_with_a_seg_but_no_ct_are_said_to_lack_the_ct(tmp_path, tcia_cohort):
    """Folders holding only their SEG were refused with "none of the patient folders holds a
    DICOM SEG with labels": users looked for SEGs that were there."""
    from napari_livertumor.errors import InputError

    data = tmp_path / "segs_only"
    shutil.copytree(tcia_cohort, data)
    for ct in data.glob("HCC_*/*/*LIVER*"):
        shutil.rmtree(ct)
    with pytest.raises(InputError) as err:
        index_cases(data)
    text = str(err.value)
    assert (
        "none of the 3 patient folders can be used: HCC_001, HCC_002, HCC_003: no CT series in the folder"
        in text
    )
    assert "holds a DICOM SEG" not in text


def test_the_check_names_a_patients_other_ct_series_and_the_one_read(tmp_path, tcia_cohort):
    """A patient folder holding a second study (a follow-up, no SEG): nothing said which
    series training reads."""
    import pydicom
    from pydicom.uid import generate_uid

    from napari_livertumor.training.check import summarize_data

    data = tmp_path / "two_studies"
    shutil.copytree(tcia_cohort, data)
    (first,) = list(data.glob("HCC_001/*/*LIVER*"))
    follow = first.parent.parent / "follow-up" / "7.000000-FOLLOW UP-1"
    shutil.copytree(first, follow)
    uid = generate_uid()
    for f in follow.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = uid, 7, "FOLLOW UP"
        ds.StudyInstanceUID = "1.2.3.4"
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(f)
    (rec,) = [r for r in index_cases(data) if r.case_id == "HCC_001"]
    assert rec.other_series == ("#7 'FOLLOW UP'",) and rec.used_series.startswith("#")
    lines = summarize_data(str(data))
    text = "\n".join(lines)
    assert "1 patient(s) with other CT series beside the one their SEG was drawn on" in text
    assert f"  HCC_001: reads {rec.used_series}; not #7 'FOLLOW UP'" in lines


def test_patients_whose_file_names_are_not_utf8_can_be_trained_on(tmp_path):
    """Latin-1 names (a cohort copied from a Windows share): `train --check` passed, then the
    cache key ended the run with UnicodeEncodeError before a step, nothing written."""
    import os

    from napari_livertumor.synth import make_cohort
    from napari_livertumor.training.data import cache_key, case_fingerprint

    cohort = make_cohort(tmp_path / "c", 1, seed=4, layout="nifti", shape="small")
    name = os.fsdecode(b"M\xfcller.nii.gz")
    for sub in ("imagesTr", "labelsTr"):
        [f] = (cohort / sub).glob("*.nii.gz")
        f.rename(cohort / sub / name)
    [record] = index_cases(cohort)
    assert record.case_id == os.fsdecode(b"M\xfcller")
    assert cache_key(record, {"stage": "liver"}) != cache_key(record, {"stage": "tumor"})
    assert case_fingerprint(record)
    ct, hcc = load_case(record)
    assert hcc.shape == ct.shape


def test_a_gzipped_label_files_fingerprint_is_hashed_as_it_inflates(tmp_path, monkeypatch):
    """The fingerprint read a .nii.gz whole into memory (a small gzip bomb: gigabytes);
    hashed 1 MiB at a time, it is the same fingerprint as before (runs' splits keep matching)."""
    import gzip
    import hashlib

    from napari_livertumor.training.data import CaseRecord, _fingerprint, case_fingerprint

    content = np.random.default_rng(0).integers(0, 3, 3 << 20, np.uint8).tobytes()
    path = tmp_path / "HCC_001.nii.gz"
    path.write_bytes(gzip.compress(content))
    reads = []
    real_open = gzip.open

    def watched(*args, **kwargs):
        fh = real_open(*args, **kwargs)
        real_read = fh.read
        fh.read = lambda n=-1: reads.append(n) or real_read(n)
        return fh

    monkeypatch.setattr(gzip, "open", watched)
    _fingerprint.cache_clear()
    record = CaseRecord(case_id="HCC_001", layout="nifti", image=path, labels=path)
    assert case_fingerprint(record) == hashlib.sha1(content).hexdigest()[:16]
    assert reads and all(0 < n <= 1 << 20 for n in reads)  # never the whole file at once


@pytest.mark.parametrize(("shift_mm", "fits"), [(0.05, True), (0.5, False)])
def test_the_load_panel_and_training_agree_on_a_ground_truth_off_its_grid(tmp_path, shift_mm, fits):
    """Three tolerances: a label map 0.05 mm off loaded in napari's Load panel and was refused
    by training (and a 0.1 mm slip in the spacing passed the panel's). One rule now."""
    import nibabel as nib

    from napari_livertumor._widgets.load import _read_truth
    from napari_livertumor.errors import InputError
    from napari_livertumor.io.nifti import read_nifti
    from napari_livertumor.synth import make_cohort

    cohort = make_cohort(tmp_path / "c", 1, seed=4, layout="nifti", shape="small")
    [labels] = (cohort / "labelsTr").glob("*.nii.gz")
    img = nib.load(labels)
    affine = img.affine.copy()
    affine[0, 3] += shift_mm
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), labels)
    [record] = index_cases(cohort)
    ct = read_nifti(record.image)
    if fits:
        assert load_case(record)[1].shape == ct.shape
        assert _read_truth(labels, ct).shape == ct.shape
    else:
        with pytest.raises(InputError, match="grid"):
            load_case(record)
        with pytest.raises(InputError, match="grid"):
            _read_truth(labels, ct)


def test_a_ground_truth_with_nan_voxels_is_refused_by_every_reader_not_read_as_background(
    tmp_path,
):
    """A float ground truth with NaN in every third liver voxel scored liver Dice 0.78 instead
    of 0.96 in evaluate, and loaded in the Load panel and napari's File > Open, without a word:
    its NaN voxels were read as 0, background."""
    import nibabel as nib

    from napari_livertumor import _reader
    from napari_livertumor._widgets.load import _read_truth
    from napari_livertumor.errors import InputError
    from napari_livertumor.io.nifti import read_nifti
    from napari_livertumor.synth import make_cohort

    cohort = make_cohort(tmp_path / "c", 1, seed=4, layout="nifti", shape="small")
    [labels] = (cohort / "labelsTr").glob("*.nii.gz")
    img = nib.load(labels)
    data = np.asarray(img.dataobj).astype(np.float32)
    liver = np.argwhere(data == 1)[::3]
    data[tuple(liver.T)] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), labels)
    said = rf"{labels.name}: {len(liver)} NaN or infinite voxels in a label map"
    [record] = index_cases(cohort)
    with pytest.raises(InputError, match=said):  # evaluate and train
        load_case(record)
    with pytest.raises(InputError, match=said):  # the Load panel
        _read_truth(labels, read_nifti(record.image))
    with pytest.raises(InputError, match=said):  # File > Open
        _reader.read_nifti_layers(str(labels))


def test_a_label_file_whose_ending_is_upper_case_pairs_with_its_image(tmp_path, caplog):
    """labelsTr/HCC_001.NII.GZ beside imagesTr/HCC_001.nii.gz was "no label file" and "a label
    file with no image" (every other command reads upper-case endings); a case name that
    differs in case is another patient still."""
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume

    vol = CTVolume(np.zeros((4, 8, 8), np.int16))
    lab = CTVolume(np.zeros((4, 8, 8), np.uint8))
    write_nifti(vol, tmp_path / "imagesTr" / "HCC_001.nii.gz")
    write_nifti(lab, tmp_path / "labelsTr" / "HCC_001.NII.GZ")
    write_nifti(vol, tmp_path / "imagesTr" / "HCC_002.NII")
    write_nifti(lab, tmp_path / "labelsTr" / "HCC_002.Nii")
    write_nifti(vol, tmp_path / "imagesTr" / "PatA.nii.gz")
    write_nifti(lab, tmp_path / "labelsTr" / "pata.nii.gz")  # (another patient's name)
    skipped: list = []
    with caplog.at_level(logging.WARNING):
        records = index_cases(tmp_path, skipped)
    assert [(r.case_id, r.labels.name) for r in records] == [
        ("HCC_001", "HCC_001.NII.GZ"),
        ("HCC_002", "HCC_002.Nii"),
    ]
    assert [c for c, _ in skipped] == ["PatA"]
    assert "label file(s) with no image" in caplog.text and "pata.nii.gz" in caplog.text


def test_of_two_label_files_for_one_case_the_nii_gz_and_the_lower_case_one_is_taken(tmp_path):
    """labelsTr/ holding HCC_001.nii.gz and HCC_001.nii (a copy unpacked beside its archive)
    trains on the .nii.gz one, as it did before label names were listed; of HCC_002.NII.GZ
    and HCC_002.nii.gz, on the lower-case one. Taken by the names' sort order alone, the
    .nii and the upper-case file would win: a case trained on another file than before,
    unsaid."""
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume

    lab = CTVolume(np.zeros((4, 8, 8), np.uint8))
    for k, case in enumerate(("HCC_001", "HCC_002")):  # (two scans: a copy is skipped)
        vol = CTVolume(np.full((4, 8, 8), k, np.int16))
        write_nifti(vol, tmp_path / "imagesTr" / f"{case}.nii.gz")
    for name in ("HCC_001.nii", "HCC_001.nii.gz", "HCC_002.NII.GZ", "HCC_002.nii.gz"):
        write_nifti(lab, tmp_path / "labelsTr" / name)
    records = index_cases(tmp_path, [])
    assert [(r.case_id, r.labels.name) for r in records] == [
        ("HCC_001", "HCC_001.nii.gz"),
        ("HCC_002", "HCC_002.nii.gz"),
    ]


def test_on_a_file_system_blind_to_case_a_label_spelt_otherwise_still_pairs(tmp_path, monkeypatch):
    """On macOS or Windows imagesTr/hcc_001.nii.gz found labelsTr/HCC_001.nii.gz (the file
    system opens it by either spelling); pairing by the listed names alone lost that."""
    from pathlib import Path

    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume

    write_nifti(CTVolume(np.zeros((4, 8, 8), np.int16)), tmp_path / "imagesTr" / "hcc_001.nii.gz")
    write_nifti(CTVolume(np.zeros((4, 8, 8), np.uint8)), tmp_path / "labelsTr" / "HCC_001.nii.gz")
    real = Path.is_file

    def blind_to_case(path):  # as APFS and NTFS answer
        if path.parent.name == "labelsTr" and not real(path):
            return any(p.name.lower() == path.name.lower() for p in path.parent.iterdir())
        return real(path)

    monkeypatch.setattr(Path, "is_file", blind_to_case)
    records = index_cases(tmp_path, [])
    assert [r.case_id for r in records] == ["hcc_001"]


def test_a_seg_that_is_a_zip_bomb_is_passed_over_never_inflated(
    tcia_cohort, tmp_path, monkeypatch, caplog
):
    """pydicom inflates a deflated file whole before reading even its header (3.4 MB held
    7 GB): indexing the cohort, fingerprinting a test patient's SEG and the one-patient check
    handed such a SEG to it. Passed over now as an unreadable one is, never read by pydicom."""
    from test_io_seg import _dcmread_spy, _zip_bomb

    from napari_livertumor.training.data import _one_patients_folder, case_fingerprint

    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    [seg] = [p for p in (data / "HCC_003").rglob("*.dcm") if "Segmentation" in str(p)]
    [record] = [r for r in index_cases(data) if r.case_id == "HCC_003"]
    _zip_bomb(seg, monkeypatch)
    asked = _dcmread_spy(monkeypatch)
    assert case_fingerprint(record) is None  # (replaced since indexed)
    assert _one_patients_folder(data / "HCC_003", [record]) is None
    with caplog.at_level(logging.WARNING):
        records = index_cases(data)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_002"]
    assert "skipping HCC_003: no readable DICOM SEG" in caplog.text
    assert f"{seg}: deflated DICOM that inflates past 1 GiB" in caplog.text
    assert asked and seg not in asked


def test_liver_bbox_margin_matches_the_pipeline_box_on_anisotropic_spacing():
    """The training crop's margin must be converted to voxels with each axis's own spacing;
    otherwise on thick-slice CT it would differ from the box inference crops."""
    from napari_livertumor.pipeline import _bbox
    from napari_livertumor.training.data import liver_bbox

    liver = np.zeros((40, 60, 60), bool)
    liver[15:25, 20:40, 25:35] = True
    spacing = (5.0, 0.8, 0.8)
    box = liver_bbox(liver, spacing, 10.0)
    assert box == _bbox(liver, 10.0, spacing)
    assert box[0] == slice(13, 27)  # 10 mm at 5 mm slices: 2 slices each side


def test_a_lesion_of_exactly_min_voxels_gets_its_samples():
    """A lesion as large as ``min_voxels`` counts as a lesion; a strict comparison would
    leave it to the voxel-uniform draw and sample only the larger one."""
    from napari_livertumor.training.data import lesion_indices

    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1, 1, 1:6] = 2  # exactly 5 voxels
    labels[6:9, 6:9, 6:9] = 2  # 27 voxels
    rows = lesion_indices(labels, np.random.default_rng(0), per_lesion=7, min_voxels=5)
    assert rows.shape == (14, 3)
    assert (labels[tuple(rows.T)] == 2).all()
    assert (rows[:, 0] == 1).sum() == 7


@pytest.mark.parametrize(
    ("n", "sizes"), [(2, (2, 0, 0)), (3, (2, 0, 1)), (4, (2, 1, 1)), (10, (7, 1, 2))]
)
def test_a_small_cohort_keeps_two_training_patients_before_it_holds_any_out(n, sizes):
    """The seeded split (20 % test, 10 % of the rest for validation, at least one each)
    holds no patient out where that would leave fewer than two to train on."""
    ids = [f"HCC_{i:03d}" for i in range(1, n + 1)]
    split = make_split(ids, 0)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == sizes
    assert sorted(split["train"] + split["val"] + split["test"]) == ids


def test_the_weak_term_is_held_to_liver_centred_patches_only(tmp_path):
    """Only liver-centred patches carry the clinical weak term (``weak_ok``): a patch centred
    on the tumor never does; a liver-centred one with enough liver does."""
    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.training.data import prepare_case, preprocess_params
    from napari_livertumor.training.patches import sample_patch

    zz, yy, xx = np.mgrid[0:40, 0:64, 0:64]
    ball = (zz - 20) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2 < 12**2
    tumor = (zz - 20) ** 2 + (yy - 32) ** 2 + (xx - 36) ** 2 < 4**2
    hcc = np.where(tumor, 2, ball).astype(np.uint8)
    ct = CTVolume(np.where(ball, 100, 40).astype(np.int16), spacing=(2.0, 2.0, 2.0))
    on_tumor = _plain_tumor_config(tmp_path, fg_ratio=1.0, tumor_ratio=1.0)
    case = prepare_case(ct, hcc, preprocess_params(on_tumor), "BALL")
    for seed in range(5):
        p = sample_patch(case, np.random.default_rng(seed), on_tumor, 0.1)
        assert (p["label"] == 2).any() and not bool(p["weak_ok"])
    on_liver = _plain_tumor_config(tmp_path, fg_ratio=1.0, tumor_ratio=0.0)
    p = sample_patch(case, np.random.default_rng(0), on_liver, 0.1)
    assert bool(p["weak_ok"])


def test_a_patient_whose_seg_describes_no_liver_is_left_out_when_indexed(
    tcia_cohort, tmp_path, caplog
):
    """A SEG whose Liver segment is coded and labelled as another organ: Check data counted
    the patient among those with labels, training then skipped it once its scan was read, and
    evaluate called the file "unreadable"."""
    from _seg_edits import liver_made_spleen

    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    liver_made_spleen(next((data / "HCC_002").rglob("1-1.dcm")))
    skipped: list = []
    with caplog.at_level(logging.WARNING):
        records = index_cases(data, skipped)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_003"]
    [(case, why)] = skipped
    assert case == "HCC_002"
    assert why.startswith("its SEG 1-1.dcm describes no liver segment (its segments: Spleen, ")
    assert why.endswith("a patient cannot be trained on or scored without its liver")
    assert "skipping HCC_002: its SEG 1-1.dcm describes no liver segment" in caplog.text


def test_a_table_passed_over_is_said_once_per_check(tmp_path, caplog):
    """`train --check` printed "patients.csv: no TCIA_ID column; not taken for the clinical
    table" twice (find_clinical and tables_passed_over both read the table)."""
    (tmp_path / "patients.csv").write_text("case,volume_ml\nHCC_001,1500\n")
    with caplog.at_level(logging.INFO):
        assert find_clinical(tmp_path) is None
        assert tables_passed_over(tmp_path) == ["patients.csv"]
    assert caplog.text.count("not taken for the clinical table") == 1


def test_the_check_matches_ids_with_hidden_characters_and_shows_those_that_still_differ(
    tmp_path, tcia_cohort
):
    """'HCC_001' + a zero-width space and 'HCC–002' (an en dash) matched no patient, and the
    table's unmatched rows were listed looking the same as the patients' IDs."""
    from napari_livertumor.training.check import summarize_data

    table = tmp_path / "clinical.csv"
    table.write_text(
        "TCIA_ID,age,AFP\nHCC_001\u200b,60,12\nHCC\u2013002,61,13\nHCC_00\u00a03,62,14\n",
        encoding="utf-8",
    )
    text = "\n".join(summarize_data(str(tcia_cohort), clinical=str(table), weak_lambda=0))
    assert "2/3 patients matched" in text
    assert "Without a clinical row: HCC_003" in text
    assert "Rows of the table with no patient here: 'HCC_00\\xa03'" in text
