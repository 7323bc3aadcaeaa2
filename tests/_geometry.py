"""Test helpers: one world image stored in other axis orders."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from napari_livertumor.io.volume import CTVolume


def stored_as(volume: CTVolume, codes) -> CTVolume:
    """The same world image with its voxels stored in another axis order (nibabel codes, e.g.
    ``"RAS"``: where the stored x, y, z axes point), the way a NIfTI file could hold it."""
    img = nib.Nifti1Image(np.transpose(volume.array, (2, 1, 0)), volume.affine)
    start = nib.orientations.io_orientation(img.affine)
    turn = nib.orientations.ornt_transform(start, nib.orientations.axcodes2ornt(tuple(codes)))
    out = img.as_reoriented(turn)
    array = np.ascontiguousarray(np.transpose(np.asarray(out.dataobj), (2, 1, 0)))
    return CTVolume.from_affine(array, out.affine, dict(volume.meta))


def world_of_voxel(volume: CTVolume, zyx) -> np.ndarray:
    """RAS world position (mm) of a (possibly fractional) ``(z, y, x)`` voxel index."""
    return (volume.affine @ np.array([zyx[2], zyx[1], zyx[0], 1.0]))[:3]


def rotation(axis: int, degrees: float) -> np.ndarray:
    """A rotation by ``degrees`` about the array axis ``axis`` (a 3×3 direction matrix)."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r
