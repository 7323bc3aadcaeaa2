"""``livertumor convert`` into a folder holding symbolic links planted at its outputs' names."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from napari_livertumor.cli import main
from napari_livertumor.io import CTVolume
from napari_livertumor.io.nifti import write_nifti


def nifti_dataset(folder):
    """A NIfTI dataset of one patient with its ground truth: converted into imagesTr/."""
    rng = np.random.default_rng(5)
    ct = CTVolume(rng.integers(-100, 200, (6, 24, 28)).astype(np.int16), (3.0, 1.5, 1.25))
    labels = np.zeros(ct.shape, np.uint8)
    labels[1:5, 4:20, 4:22] = 1
    write_nifti(ct, folder / "imagesTr" / "HCC_001.nii.gz")
    write_nifti(ct.with_array(labels), folder / "labelsTr" / "HCC_001.nii.gz")
    return folder


def test_outputs_linked_to_missing_files_are_replaced_in_the_dataset_not_followed(tmp_path):
    """A dangling imagesTr/HCC_001.nii.gz link was taken for "not converted yet" and followed:
    the CT was written wherever it pointed, outside the dataset, and the link left in it."""
    src = nifti_dataset(tmp_path / "src")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = {}
    for sub in ("imagesTr", "labelsTr"):
        planted[sub] = out / sub / "HCC_001.nii.gz"
        planted[sub].parent.mkdir(parents=True)
        planted[sub].symlink_to(elsewhere / f"{sub}.nii.gz")
    assert main(["convert", str(src), "-o", str(out)]) == 0
    assert list(elsewhere.iterdir()) == []
    for sub, path in planted.items():
        assert not path.is_symlink()
        assert nib.load(path).shape == nib.load(src / sub / "HCC_001.nii.gz").shape


def test_a_link_planted_at_the_records_lock_file_is_refused_not_followed(tmp_path, capsys):
    src = nifti_dataset(tmp_path / "src")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    lock = out / ".convert.json.lock"
    lock.symlink_to(elsewhere / "planted")
    assert main(["convert", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{lock}: is a symbolic link" in err
    assert list(elsewhere.iterdir()) == [] and lock.is_symlink()


@pytest.mark.parametrize("force", [False, True])
def test_one_ct_onto_a_link_to_a_missing_file_never_writes_through_it(tmp_path, force):
    """``-o ct.nii.gz`` a dangling link: refused, and with --force the link is replaced (as
    the refusal says), not followed to make the file it names."""
    src = nifti_dataset(tmp_path / "src") / "imagesTr" / "HCC_001.nii.gz"
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "ct.nii.gz"
    link.symlink_to(tmp_path / "elsewhere" / "planted.nii.gz")
    rc = main(["convert", str(src), "-o", str(link), *(["--force"] if force else [])])
    assert rc == (0 if force else 1)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert link.is_symlink() != force
