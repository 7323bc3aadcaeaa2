"""A user converts a DICOM folder to NIfTI from the command line."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from napari_livertumor.cli import main
from napari_livertumor.io import CTVolume
from napari_livertumor.io.dicom_write import write_ct_series


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
    assert "wrote" in capsys.readouterr().out


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


def test_convert_of_an_empty_folder_fails_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["convert", str(tmp_path / "empty"), "-o", str(tmp_path / "x.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "no DICOM files found" in err and "Traceback" not in err
    assert not (tmp_path / "x.nii.gz").exists()


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
    (tmp_path / "outdir").mkdir()  # a folder without a NIfTI name: said to be a folder too
    assert main(["convert", str(tmp_path / "dicom"), "-o", str(tmp_path / "outdir")]) == 1
    err = capsys.readouterr().err
    assert "outdir: is a folder: -o takes the NIfTI file" in err and "must end in" not in err


def test_a_folder_of_nifti_files_is_named_so_not_only_no_dicom(tmp_path, capsys):
    from napari_livertumor.io import load_ct
    from napari_livertumor.io.nifti import write_nifti

    big, _ = two_series(tmp_path)
    write_nifti(big, tmp_path / "imagesTr" / "HCC_001.nii.gz")
    assert main(["convert", str(tmp_path / "imagesTr"), "-o", str(tmp_path / "x.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "no DICOM files found; it holds 1 NIfTI file(s) (HCC_001.nii.gz)" in err
    import pytest

    from napari_livertumor.errors import InputError

    with pytest.raises(InputError, match="holds 1 NIfTI file.*give one of them"):
        load_ct(tmp_path / "imagesTr")
