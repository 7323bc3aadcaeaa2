"""Batch discovery of what a site's tree holds beside its patients' folders: a folder that cannot
be read (mode 000), a macOS zip's ``__MACOSX``, a CD export's ``DICOMDIR`` (QA discover69)."""

from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest
from _batch_data import ct, untrained_models
from _permissions import deny_entering

from napari_livertumor.cli import main
from napari_livertumor.commands.segment import discover_cases
from napari_livertumor.errors import InputError
from napari_livertumor.io import load_ct
from napari_livertumor.io.dicom import read_dicom_series
from napari_livertumor.io.dicom_write import write_ct_series
from napari_livertumor.io.seg import write_dicom_seg


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return untrained_models(tmp_path_factory.mktemp("models"))


def patients(folder, *pids):
    for k, pid in enumerate(pids):
        write_ct_series(ct(k), folder / pid / "study" / "ct", patient_id=pid)
    return folder


def segment(inputs, out, models, *extra):
    args = ["segment", *map(str, inputs), "-o", str(out), "--models", str(models)]
    return main([*args, "--device", "cpu", "--no-refine", *extra])


# ------------------------------------------------------------------ folders that cannot be read


def test_a_folder_that_cannot_be_read_is_a_failed_case_and_the_batch_goes_on(
    tmp_path, models, monkeypatch, caplog, capsys
):
    """A patient folder of mode 000 (or another folder beside the patients) stopped the whole
    batch, `--list` too: "HCC_002/summary.csv: Permission denied" (Path.is_file raises on
    EACCES in Python 3.11)."""
    data = patients(tmp_path / "in", "HCC_001", "HCC_002")
    write_ct_series(ct(5), data / "locked" / "sub", patient_id="X")
    deny_entering(monkeypatch, data / "HCC_002", data / "locked")
    with caplog.at_level("WARNING"):
        cases = discover_cases([data])
    assert [c.name for c in cases] == ["HCC_001", "HCC_002", "locked"]
    for name in ("HCC_002", "locked"):
        said = f"{data / name}: this folder cannot be read (permission denied): a case that fails"
        assert said in caplog.messages
    capsys.readouterr()
    assert segment([data], tmp_path / "out", models, "--list") == 0
    plan = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert plan == [
        ["HCC_001", str(data / "HCC_001"), "segment"],
        ["HCC_002", str(data / "HCC_002"), "fail: this folder cannot be read (permission denied)"],
        ["locked", str(data / "locked"), "fail: this folder cannot be read (permission denied)"],
    ]
    assert segment([data], tmp_path / "out", models) == 1
    with open(tmp_path / "out" / "summary.csv", newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    assert [rows[c]["status"] for c in sorted(rows)] == ["done", "failed", "failed"]
    assert rows["HCC_002"]["error"] == f"{data / 'HCC_002'}: permission denied"
    assert f"HCC_002 failed: {data / 'HCC_002'}: permission denied" in capsys.readouterr().err


def test_a_study_folder_that_cannot_be_read_leaves_its_patient_a_case(tmp_path, monkeypatch):
    """A study folder of mode 000 inside a patient's folder stopped discovery with
    "PermissionError" (the patients' IDs sampled from each study's first file); the patient's
    case fails naming the folder its read could not look into."""
    data = patients(tmp_path / "in", "HCC_001", "HCC_002")
    one = patients(tmp_path / "one", "P1")  # (a folder of one patient, not named for it)
    deny_entering(monkeypatch, data / "HCC_002" / "study", one / "P1" / "study")
    cases = discover_cases([data])
    assert [(c.name, c.path) for c in cases] == [
        ("HCC_001", data / "HCC_001"),
        ("HCC_002", data / "HCC_002"),
    ]
    assert [(c.name, c.path) for c in discover_cases([one])] == [("one", one)]
    with pytest.raises(InputError, match="could not be read") as info:
        read_dicom_series(data / "HCC_002")
    assert f"{data / 'HCC_002' / 'study'} (permission denied)" in str(info.value)


def test_a_ct_folder_that_cannot_be_read_beside_its_seg_is_named_not_said_missing(
    tmp_path, monkeypatch
):
    """It said only "only SEG object(s) … the CT series they were drawn on is not in this
    folder": it is, in a folder that could not be read."""
    write_ct_series(ct(1), tmp_path / "HCC_001" / "ct", patient_id="HCC_001")
    volume = load_ct(tmp_path / "HCC_001" / "ct")
    labels = np.zeros(volume.shape, np.uint8)
    labels[2:6, 8:20, 8:20] = 1
    write_dicom_seg(labels, volume, tmp_path / "HCC_001" / "seg" / "1-1.dcm", [(1, "Liver")])
    deny_entering(monkeypatch, tmp_path / "HCC_001" / "ct")
    with pytest.raises(InputError, match="only SEG object") as info:
        read_dicom_series(tmp_path / "HCC_001")
    assert (
        "1 folder(s) that could not be read, their files not looked at: "
        f"{tmp_path / 'HCC_001' / 'ct'} (permission denied)"
    ) in str(info.value)


# ------------------------------------------------------------------ what the reader passes over


def test_a_macos_zips_folder_is_passed_over_not_a_failed_case(tmp_path, caplog):
    """``__MACOSX`` (a zip made on a Mac, unzipped elsewhere) holds an AppleDouble ``._*`` file
    for each file: it was a case that failed "no DICOM files found: the folder is empty"."""
    data = patients(tmp_path / "in", "HCC_001", "HCC_002")
    debris = data / "__MACOSX"
    for f in sorted((data / "HCC_001").rglob("*.dcm")):
        fork = debris / f.relative_to(data).parent / f"._{f.name}"
        fork.parent.mkdir(parents=True, exist_ok=True)
        fork.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(200))
    (debris / "._HCC_001").write_bytes(b"\x00\x05\x16\x07" + bytes(80))
    # and beside the files themselves (copied to a disk macOS does not format)
    (data / "HCC_002" / "study" / "ct" / "._1.dcm").write_bytes(b"\x00\x05\x16\x07" + bytes(80))
    with caplog.at_level("INFO"):
        cases = discover_cases([data])
    assert [(c.name, c.path) for c in cases] == [
        ("HCC_001", data / "HCC_001"),
        ("HCC_002", data / "HCC_002"),
    ]
    assert any(str(debris) in m and "skipped" in m for m in caplog.messages)
    # one patient beside it: that patient's folder, not a folder of two "patients"
    (data / "HCC_002").rename(tmp_path / "away")
    assert [(c.name, c.path) for c in discover_cases([data])] == [("HCC_001", data / "HCC_001")]
    # nor does the reader look into it (its files hidden ones it passes over)
    moved = data / "HCC_001" / "__MACOSX"
    debris.rename(moved)
    read = read_dicom_series(data / "HCC_001")
    assert read.shape == (8, 32, 32) and not read.meta["warnings"]


def _dicomdir(path):
    """A CD or USB export's index (its records left out: the reader reads the files)."""
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.FileSetID = "EXPORT"
    ds.DirectoryRecordSequence = []
    ds.save_as(path, enforce_file_format=True)


def test_a_dicomdir_beside_the_patients_folders_leaves_them_cases(tmp_path):
    """A DICOMDIR beside the patients' folders was counted a DICOM file of the folder itself
    (the reader passes it over): the folder became one case (per patient, named by PatientID,
    or, of one patient, named after the folder: a finished HCC_001 not recognised)."""
    data = patients(tmp_path / "in", "HCC_001", "HCC_002")
    _dicomdir(data / "DICOMDIR")
    assert [(c.name, c.path, c.patient) for c in discover_cases([data])] == [
        ("HCC_001", data / "HCC_001", None),
        ("HCC_002", data / "HCC_002", None),
    ]
    one = patients(tmp_path / "one", "HCC_001")
    _dicomdir(one / "DICOMDIR")
    assert [(c.name, c.path) for c in discover_cases([one])] == [("HCC_001", one / "HCC_001")]
