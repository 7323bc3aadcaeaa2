"""A user saves and reopens NIfTI files: nothing changes, odd files get a clear message."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _geometry import stored_as, world_of_voxel

from napari_livertumor.errors import InputError
from napari_livertumor.io import CTVolume, load_ct
from napari_livertumor.io.nifti import read_nifti, write_nifti


def oblique_ct(dtype=np.int16) -> CTVolume:
    rng = np.random.default_rng(2)
    t = np.deg2rad(23)
    direction = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, -1.0]])
    array = rng.integers(-1024, 3000, size=(7, 12, 15)).astype(dtype)
    return CTVolume(array, (3.0, 0.66, 0.74), (10.5, -20.25, 300.0), direction)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_ct_round_trip_is_lossless(tmp_path, suffix):
    ct = oblique_ct()
    path = write_nifti(ct, tmp_path / f"ct{suffix}")
    back = load_ct(path)
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, ct.array)
    np.testing.assert_allclose(back.affine, ct.affine, atol=1e-6)
    assert back.same_grid(ct)
    # and again: read -> write -> read changes nothing
    again = read_nifti(write_nifti(back, tmp_path / f"again{suffix}"))
    np.testing.assert_array_equal(again.array, ct.array)
    np.testing.assert_allclose(again.affine, ct.affine, atol=1e-6)


def test_label_map_takes_the_ct_grid_and_stays_uint8(tmp_path):
    ct = oblique_ct()
    labels = (ct.array > 1000).astype(np.uint8) + (ct.array > 2500)
    write_nifti(labels, tmp_path / "labels.nii.gz", reference=ct)
    img = nib.load(tmp_path / "labels.nii.gz")
    assert img.get_data_dtype() == np.uint8
    np.testing.assert_allclose(img.affine, ct.affine, atol=1e-6)
    back = read_nifti(tmp_path / "labels.nii.gz")
    np.testing.assert_array_equal(back.array, labels)
    assert back.array.dtype == np.uint8


def test_writing_leaves_no_temporary_files(tmp_path):
    write_nifti(oblique_ct(), tmp_path / "ct.nii.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["ct.nii.gz"]


def test_label_map_of_the_wrong_shape_is_refused(tmp_path):
    with pytest.raises(InputError, match="differs from reference"):
        write_nifti(np.zeros((2, 3, 4), np.uint8), tmp_path / "x.nii.gz", reference=oblique_ct())
    assert not (tmp_path / "x.nii.gz").exists()


def test_nans_are_replaced_with_a_warning(tmp_path):
    data = np.full((6, 5, 4), 40.0, dtype=np.float32)
    data[1, 2, 3] = np.nan
    data[0, 0, 0] = -1000
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii.gz")
    ct = read_nifti(tmp_path / "nan.nii.gz")
    assert ct.array.dtype == np.int16
    assert ct.array[3, 2, 1] == -1000
    assert any("NaN" in w for w in ct.meta["warnings"])


def test_plus_infinite_voxels_are_read_as_the_highest_value_not_air(tmp_path):
    """+inf (a saturated bright voxel) was replaced by the minimum, as NaN is: metal became
    air."""
    from napari_livertumor.models.preprocess import signed_hu

    data = np.full((6, 5, 4), 40.0, dtype=np.float32)
    data[0, 0, 0], data[1, 1, 1] = -1000, 3000
    data[1, 2, 3], data[2, 2, 2] = np.inf, np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "inf.nii.gz")
    ct = read_nifti(tmp_path / "inf.nii.gz")
    assert ct.array[3, 2, 1] == 3000 and ct.array[2, 2, 2] == -1000
    assert "1 +infinite voxels replaced by the maximum value 3000" in ct.meta["warnings"]
    assert "1 NaN/infinite voxels replaced by the minimum value -1000" in ct.meta["warnings"]
    hu = signed_hu(data)
    assert hu[1, 2, 3] == 3000 and hu[2, 2, 2] == -1000


def test_an_image_of_only_nans_says_so_not_truncated(tmp_path):
    nib.save(nib.Nifti1Image(np.full((6, 5, 4), np.nan, np.float32), np.eye(4)), tmp_path / "n.nii")
    with pytest.raises(InputError, match="every voxel is NaN") as info:
        read_nifti(tmp_path / "n.nii")
    assert "truncated" not in str(info.value)


@pytest.mark.parametrize("shape", [(10, 12), (5, 6, 7, 2)], ids=["2D", "4D"])
def test_2d_and_4d_images_are_refused(tmp_path, shape):
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), tmp_path / "x.nii.gz")
    with pytest.raises(InputError, match="expected a 3D image") as info:
        read_nifti(tmp_path / "x.nii.gz")
    assert info.value.path == tmp_path / "x.nii.gz"


@pytest.mark.parametrize("extra", [(1,), (1, 1)], ids=["4D", "5D"])
def test_4d_image_with_one_volume_is_read_as_3d(tmp_path, extra):
    stored = (5, 6, 7, *extra)
    nib.save(nib.Nifti1Image(np.ones(stored, np.int16), np.eye(4)), tmp_path / "x.nii.gz")
    vol = read_nifti(tmp_path / "x.nii.gz")
    assert vol.shape == (7, 6, 5)
    # its labels have its shape, as the output contract says
    write_nifti(np.zeros(vol.shape, np.uint8), tmp_path / "labels.nii.gz", reference=vol)
    assert nib.load(tmp_path / "labels.nii.gz").shape == stored
    assert read_nifti(tmp_path / "labels.nii.gz").shape == (7, 6, 5)


def test_a_header_in_meters_is_named_when_its_sizes_are_refused(tmp_path):
    """Sizes read as mm (as nibabel reads them); a header in meters got "check the header's
    units (mm, not m or µm)", which its units were, correctly said."""
    from napari_livertumor.pipeline import check_volume

    img = nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), np.diag([0.0008, 0.0008, 0.005, 1]))
    img.header.set_xyzt_units("meter")
    nib.save(img, tmp_path / "m.nii.gz")
    vol = read_nifti(tmp_path / "m.nii.gz")
    with pytest.raises(InputError, match="gives its sizes in meters"):
        check_volume(vol)


def test_truncated_and_non_nifti_files_are_named(tmp_path):
    write_nifti(oblique_ct(), tmp_path / "ct.nii.gz")
    raw = gzip.decompress((tmp_path / "ct.nii.gz").read_bytes())
    (tmp_path / "cut.nii").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="cut.nii"):
        read_nifti(tmp_path / "cut.nii")
    (tmp_path / "text.nii.gz").write_text("not an image")
    with pytest.raises(InputError, match="text.nii.gz"):
        read_nifti(tmp_path / "text.nii.gz")


#: Storage orders a NIfTI may use for the same axial CT: RAS (nibabel's canonical),
#: feet-first, and axes transposed.
STORAGES = ["RAS", "LPI", "SLP", "PIR"]


@pytest.mark.parametrize("codes", STORAGES)
def test_any_storage_order_turns_back_to_the_standard_one_voxel_for_voxel(codes):
    rng = np.random.default_rng(0)
    std = CTVolume(
        rng.integers(-1000, 1000, (5, 6, 7)).astype(np.int16),
        spacing=(2.5, 0.8, 0.7),
        origin=(10.0, -20.0, 30.0),
        meta={"sop_instance_uids": [f"1.2.{i}" for i in range(5)]},
    )
    other = stored_as(std, codes)
    assert other.shape != std.shape or not np.array_equal(other.array, std.array)
    turned, turn = other.to_standard()
    assert turn.codes == codes and not turn.identity  # where the stored x, y, z axes point
    np.testing.assert_array_equal(turned.array, std.array)
    np.testing.assert_allclose(turned.affine, std.affine, atol=1e-6)
    assert turned.spacing == pytest.approx(std.spacing)
    np.testing.assert_array_equal(turn.undo(turned.array), other.array)
    # a standard-grid index maps back to the stored voxel at the same world position
    for zyx in ((0, 0, 0), (4, 5, 6), (2, 1, 3)):
        back = turn.index_back(zyx, turned.shape)
        assert std.array[zyx] == other.array[tuple(int(round(b)) for b in back)]
        np.testing.assert_allclose(world_of_voxel(other, back), world_of_voxel(std, zyx))
    assert turn.apply_shape(other.shape) == std.shape
    assert turn.apply_spacing(other.spacing) == pytest.approx(std.spacing)


def test_a_standard_volume_is_not_copied_and_slice_references_follow_a_flip():
    std = CTVolume(np.zeros((3, 4, 5), np.int16), meta={"sop_instance_uids": ["a", "b", "c"]})
    same, turn = std.to_standard()
    assert same is std and turn.identity and turn.codes == "LPS"
    feet_first = stored_as(std, ("L", "P", "I"))  # only the slice axis reversed
    feet_first.meta["sop_instance_uids"] = ["c", "b", "a"]
    turned, _ = feet_first.to_standard()
    assert turned.meta["sop_instance_uids"] == ["a", "b", "c"]
    transposed = stored_as(std, ("S", "L", "P"))
    transposed.meta["sop_instance_uids"] = ["x"] * transposed.shape[0]
    assert "sop_instance_uids" not in transposed.to_standard()[0].meta  # slices changed


def test_complex_voxels_are_refused_and_a_header_without_orientation_is_warned_about(tmp_path):
    data = np.zeros((40, 40, 6), np.complex64)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "complex.nii.gz")
    with pytest.raises(InputError, match="complex64 values, not CT numbers"):
        read_nifti(tmp_path / "complex.nii.gz")
    img = nib.Nifti1Image(np.full((40, 40, 6), -1000, np.int16), None)
    img.header.set_sform(None, code=0)
    img.header.set_qform(None, code=0)
    nib.save(img, tmp_path / "bare.nii.gz")
    vol = read_nifti(tmp_path / "bare.nii.gz")
    assert any("no orientation" in w for w in vol.meta["warnings"])


def test_a_gantry_tilted_volume_keeps_its_exact_sform_and_says_how_far_off_a_qform_is(
    tmp_path, caplog
):
    """A sheared (tilted) grid cannot be a qform: nibabel stores the nearest rotation, which ITK
    readers use (they refuse a file whose only geometry is sheared). The sform stays exact and
    the write says how far off the qform places voxels."""
    import logging

    tilt = np.deg2rad(15)
    direction = np.eye(3)
    direction[:, 2] = [0.0, np.sin(tilt), np.cos(tilt)]  # slices step along z and along y
    ct = CTVolume(np.zeros((6, 8, 9), np.int16), (2.5, 0.7, 0.7), (-50.0, 20.0, 100.0), direction)
    with caplog.at_level(logging.WARNING):
        hdr = nib.load(write_nifti(ct, tmp_path / "tilted.nii.gz")).header
    assert int(hdr["qform_code"]) == 1 and int(hdr["sform_code"]) == 1
    np.testing.assert_allclose(hdr.get_sform(), ct.affine, atol=1e-5)
    assert "the grid is sheared" in caplog.text and "mm off" in caplog.text
    back = read_nifti(tmp_path / "tilted.nii.gz")
    np.testing.assert_allclose(back.affine, ct.affine, atol=1e-5)
    # its spacing: the distance between slice planes, so voxel volumes are |det(affine)|
    assert back.spacing[0] == pytest.approx(2.5 * np.cos(tilt))
    assert np.prod(back.spacing) == pytest.approx(abs(np.linalg.det(ct.affine)))
    assert any("sheared by 15.00 degrees" in w for w in back.meta["warnings"])
    # an orthonormal (merely oblique) grid: both equal, nothing said
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        hdr = nib.load(write_nifti(oblique_ct(), tmp_path / "oblique.nii.gz")).header
    np.testing.assert_allclose(hdr.get_qform(), hdr.get_sform(), atol=1e-4)
    assert "sheared" not in caplog.text


def test_a_nifti_named_for_the_other_compression_is_read_by_its_content(tmp_path):
    """A plain NIfTI named .nii.gz failed with "not a gzip file", a gzipped one named .nii with
    "Cannot work out file type"; both are read, with a note."""
    import gzip

    ct = CTVolume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), (2.5, 0.7, 0.7))
    plain = write_nifti(ct, tmp_path / "ct.nii")
    (tmp_path / "plain_named.nii.gz").write_bytes(plain.read_bytes())
    (tmp_path / "gz_named.nii").write_bytes(gzip.compress(plain.read_bytes()))
    for name, note in (("plain_named.nii.gz", "not compressed"), ("gz_named.nii", "gzip")):
        back = read_nifti(tmp_path / name)
        np.testing.assert_array_equal(back.array, ct.array)
        assert any(note in w and "read by its content" in w for w in back.meta["warnings"])


def test_an_image_of_another_format_is_named_not_taken_for_dicom(tmp_path):

    for name in ("brain.mgz", "scan.img", "ct.nrrd"):
        (tmp_path / name).write_bytes(b"\x00" * 64)
        with pytest.raises(InputError, match="format: not read here") as info:
            load_ct(tmp_path / name)
        assert "DICOM file" not in str(info.value)
    # some exports name DICOM slices .img: read as what they are
    from napari_livertumor.io.dicom_write import write_ct_series

    [slice_] = write_ct_series(CTVolume(np.zeros((1, 8, 8), np.int16)), tmp_path / "dcm")
    renamed = slice_.rename(slice_.with_suffix(".img"))
    assert load_ct(renamed).shape == (1, 8, 8)


def test_a_folder_of_pictures_says_what_it_holds(tmp_path):
    """A folder of PNGs said only "no DICOM files found"; one PNG was named as a picture."""
    for i in range(3):
        (tmp_path / f"slice{i}.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n" + b"\\x00" * 32)
    (tmp_path / "notes.txt").write_text("exported")
    with pytest.raises(InputError, match=r"no DICOM files found; it holds 3 PNG picture files"):
        load_ct(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"no DICOM files found: the folder is empty$"):
        load_ct(empty)
    (empty / "report.txt").write_text("no scan")
    with pytest.raises(
        InputError, match=r"it holds 1 other file\(s\) \(report.txt\), none of them"
    ):
        load_ct(empty)


def test_a_series_or_acquisition_asked_of_a_nifti_is_said_not_dropped(tmp_path):
    """`segment CT.nii.gz --series UID` read the file and said nothing of the option."""
    from napari_livertumor.io import CTVolume, load_ct
    from napari_livertumor.io.nifti import write_nifti

    write_nifti(CTVolume(np.zeros((3, 4, 5), np.int16), (2.0, 1.0, 1.0)), tmp_path / "ct.nii.gz")
    assert not load_ct(tmp_path / "ct.nii.gz").meta.get("warnings")
    [note] = load_ct(tmp_path / "ct.nii.gz", "1.2.3", acquisition=2).meta["warnings"]
    assert note.startswith("series 1.2.3 and acquisition 2 asked for, but ct.nii.gz is a NIfTI")


def test_labels_of_a_ct_without_orientation_codes_are_written_without_them(tmp_path):
    """Written with codes 1 and nibabel's made-up affine, ITK-based tools (3D Slicer, ITK-SNAP)
    placed the labels outside the CT they read with an identity grid."""
    img = nib.Nifti1Image(np.full((30, 30, 6), -1000, np.int16), np.diag([0.8, 0.8, 2.5, 1]))
    img.set_sform(None, code=0)
    img.set_qform(None, code=0)
    nib.save(img, tmp_path / "bare.nii.gz")
    vol = read_nifti(tmp_path / "bare.nii.gz")
    assert any("taken as LAS" in w for w in vol.meta["warnings"])
    write_nifti(np.ones(vol.shape, np.uint8), tmp_path / "labels.nii.gz", reference=vol)
    out = nib.load(tmp_path / "labels.nii.gz")
    ct = nib.load(tmp_path / "bare.nii.gz")
    assert (int(out.header["sform_code"]), int(out.header["qform_code"])) == (0, 0)
    assert np.allclose(out.affine, ct.affine)
    assert np.allclose(out.header.get_zooms()[:3], ct.header.get_zooms()[:3])
    # the same grid turned for display is another grid: written with codes and its affine
    shown = vol.displayed()
    assert shown is not vol
    write_nifti(np.ones(shown.shape, np.uint8), tmp_path / "turned.nii.gz", reference=shown)
    turned = nib.load(tmp_path / "turned.nii.gz")
    assert int(turned.header["sform_code"]) == 1 and np.allclose(turned.affine, shown.affine)
    # a CT with codes keeps its sform code (2: aligned to another scan)
    img = nib.Nifti1Image(np.full((30, 30, 6), -1000, np.int16), np.diag([0.8, 0.8, 2.5, 1]))
    img.set_sform(img.affine, code=2)
    nib.save(img, tmp_path / "aligned.nii.gz")
    vol = read_nifti(tmp_path / "aligned.nii.gz")
    write_nifti(np.ones(vol.shape, np.uint8), tmp_path / "labels2.nii.gz", reference=vol)
    assert int(nib.load(tmp_path / "labels2.nii.gz").header["sform_code"]) == 2


@pytest.mark.parametrize("codes", [(2, 2), (1, 2), (2, 0), (1, 0), (0, 1), (0, 2)])
def test_labels_carry_their_cts_own_orientation_codes(tmp_path, codes):
    """A CT aligned to another scan (sform and qform code 2), or placed by its sform alone
    (qform code 0), got labels with qform code 1 (or sform code 1 where it had none): placed
    alike, but tools that pair files by their codes did not take the labels for its own."""
    sitk = pytest.importorskip("SimpleITK")
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    affine[:3, 3] = [100, 120, -300]
    img = nib.Nifti1Image(np.zeros((20, 22, 8), np.int16), affine)
    img.set_sform(affine, code=codes[0])
    img.set_qform(affine, code=codes[1])
    nib.save(img, tmp_path / "ct.nii.gz")
    volume = read_nifti(tmp_path / "ct.nii.gz")
    shown = volume.displayed()  # as the viewer shows it, written back on the file's grid
    array, grid = shown.to_stored(np.ones(shown.shape, np.uint8))
    write_nifti(array, tmp_path / "labels.nii.gz", reference=grid, labels=True)
    out = nib.load(tmp_path / "labels.nii.gz")
    assert (int(out.header["sform_code"]), int(out.header["qform_code"])) == codes
    np.testing.assert_allclose(out.affine, img.affine, atol=1e-4)  # nibabel: the same grid
    ct_itk, labels_itk = (sitk.ReadImage(str(tmp_path / n)) for n in ("ct.nii.gz", "labels.nii.gz"))
    for get in ("GetOrigin", "GetSpacing", "GetDirection"):  # ITK too
        np.testing.assert_allclose(getattr(labels_itk, get)(), getattr(ct_itk, get)(), atol=1e-4)
    # a sheared (gantry-tilted) grid without a qform keeps getting one: ITK-based readers
    # refuse a file whose only transform is sheared
    tilt = affine.copy()
    tilt[1, 2] = 2.5 * np.tan(np.radians(15))
    img = nib.Nifti1Image(np.zeros((20, 22, 8), np.int16), tilt)
    img.set_sform(tilt, code=codes[0] or 1)
    img.set_qform(tilt, code=0)
    nib.save(img, tmp_path / "tilted.nii.gz")
    tilted = read_nifti(tmp_path / "tilted.nii.gz")
    write_nifti(tilted.with_array(np.ones(tilted.shape, np.uint8)), tmp_path / "tl.nii.gz")
    header = nib.load(tmp_path / "tl.nii.gz").header
    assert (int(header["sform_code"]), int(header["qform_code"])) == (codes[0] or 1, 1)
    sitk.ReadImage(str(tmp_path / "tl.nii.gz"))  # (read, not refused)


def test_a_qform_that_disagrees_with_the_sform_is_said_and_kept_for_the_labels(tmp_path):
    """Labels were written with qform = sform: a tool that reads the qform (ITK, Slicer) put
    them 54 mm from the CT it put elsewhere, and nothing said the header disagreed."""
    sitk = pytest.importorskip("SimpleITK")
    sform = np.diag([-0.8, -0.8, 2.5, 1.0])
    sform[:3, 3] = [100, 120, -300]
    qform = sform.copy()
    qform[:3, 3] += [30, -20, 40]
    img = nib.Nifti1Image(np.zeros((20, 22, 8), np.int16), sform)
    img.set_qform(qform, code=1)
    img.set_sform(sform, code=2)
    nib.save(img, tmp_path / "ct.nii.gz")
    volume = read_nifti(tmp_path / "ct.nii.gz")
    np.testing.assert_allclose(volume.affine, sform)  # the sform, as nibabel reads it
    (note,) = volume.meta["warnings"]
    assert "sform and qform disagree: voxels up to 53.9 mm apart" in note
    labels = volume.displayed()  # as the viewer shows it, written back on the file's grid
    array, grid = labels.to_stored(np.ones(labels.shape, np.uint8))
    write_nifti(array, tmp_path / "labels.nii.gz", reference=grid)
    out = nib.load(tmp_path / "labels.nii.gz")
    np.testing.assert_allclose(out.get_qform(), qform, atol=1e-4)
    np.testing.assert_allclose(out.get_sform(), sform, atol=1e-4)
    ct_itk, labels_itk = (sitk.ReadImage(str(tmp_path / n)) for n in ("ct.nii.gz", "labels.nii.gz"))
    np.testing.assert_allclose(labels_itk.GetOrigin(), ct_itk.GetOrigin(), atol=1e-3)
    # a sheared (gantry-tilted) file's own qform is kept for its labels too, with one warning
    tilt = sform.copy()
    tilt[1, 2] = 2.5 * np.tan(np.radians(15))  # each slice shifted in y: a 15° tilt
    img = nib.Nifti1Image(np.zeros((20, 22, 8), np.int16), tilt)
    img.set_sform(tilt, code=1)
    img.set_qform(qform, code=1)
    nib.save(img, tmp_path / "tilt.nii.gz")
    tilted = read_nifti(tmp_path / "tilt.nii.gz")
    assert [w for w in tilted.meta["warnings"] if "sheared" in w or "disagree" in w] == [
        next(w for w in tilted.meta["warnings"] if "sheared" in w)
    ]
    write_nifti(tilted.with_array(np.ones(tilted.shape, np.uint8)), tmp_path / "tl.nii.gz")
    np.testing.assert_allclose(nib.load(tmp_path / "tl.nii.gz").get_qform(), qform, atol=1e-4)
    # labels on another grid get no stale qform
    other = volume.with_array(volume.array)
    other.origin = (0.0, 0.0, 0.0)
    write_nifti(other, tmp_path / "moved.nii.gz")
    moved = nib.load(tmp_path / "moved.nii.gz")
    np.testing.assert_allclose(moved.get_qform(), moved.get_sform(), atol=1e-4)


def test_a_disagreeing_qform_of_an_aligned_ct_keeps_its_code_in_the_labels(tmp_path):
    """A CT aligned to another scan (sform and qform code 2) whose qform disagrees with its
    sform: the labels kept its qform but wrote it with code 1 (scanner), so tools that pair
    files by their codes did not take the labels for this CT's."""
    sform = np.diag([-0.8, -0.8, 2.5, 1.0])
    sform[:3, 3] = [100, 120, -300]
    qform = sform.copy()
    qform[:3, 3] += [30, -20, 40]
    img = nib.Nifti1Image(np.zeros((20, 22, 8), np.int16), sform)
    img.set_qform(qform, code=2)
    img.set_sform(sform, code=2)
    nib.save(img, tmp_path / "ct.nii.gz")
    volume = read_nifti(tmp_path / "ct.nii.gz")
    write_nifti(volume.with_array(np.ones(volume.shape, np.uint8)), tmp_path / "labels.nii.gz")
    out = nib.load(tmp_path / "labels.nii.gz")
    assert (int(out.header["sform_code"]), int(out.header["qform_code"])) == (2, 2)
    np.testing.assert_allclose(out.get_qform(), qform, atol=1e-4)


def test_scaled_integers_are_read_as_rounded_int16_hu(tmp_path):
    """nibabel empties the header's slope and intercept on load: such files were taken as
    unscaled and came back as float64 (4x the memory), not rounded."""
    hu = np.arange(-1024, 1100, dtype=np.int32).reshape(4, 531)[:, :, None].repeat(3, axis=2)
    img = nib.Nifti1Image((hu + 1024).astype(np.uint16), np.eye(4))
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, tmp_path / "offset.nii.gz")
    vol = read_nifti(tmp_path / "offset.nii.gz")
    assert vol.array.dtype == np.int16
    assert vol.array.min() == -1024 and vol.array.max() == hu.max()
    img = nib.Nifti1Image(((hu + 1024) * 2 + 1).astype(np.int16), np.eye(4))
    img.header.set_slope_inter(0.5, -1024.0)
    nib.save(img, tmp_path / "half.nii.gz")
    vol = read_nifti(tmp_path / "half.nii.gz")
    assert vol.array.dtype == np.int16
    assert any("rounded" in w for w in vol.meta["warnings"])


def test_an_uncompressed_file_is_not_kept_open_by_its_volume(tmp_path):
    """A mapped .nii could not be replaced or deleted on Windows while its volume lived."""
    write_nifti(CTVolume(np.zeros((4, 8, 8), np.int16)), tmp_path / "ct.nii")
    vol = read_nifti(tmp_path / "ct.nii")
    base = vol.array
    while base is not None:
        assert not isinstance(base, np.memmap)
        base = getattr(base, "base", None)
        if not isinstance(base, np.ndarray):
            break


def test_a_skewed_grid_counts_its_true_voxel_volume():
    """Spacings multiplied overstated a 20-degree in-plane skew's voxel by 1/cos(20)."""
    from napari_livertumor.stats import compute_stats

    t = np.radians(20)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 1] = [np.sin(t), np.cos(t), 0.0]  # the y axis leans towards x
    labels = np.zeros((4, 10, 10), np.uint8)
    labels[1:3, 2:8, 2:8] = 1
    vol = CTVolume.from_affine(labels, affine)
    assert vol.voxel_volume_ml == pytest.approx(abs(np.linalg.det(affine[:3, :3])) / 1000)
    stats = compute_stats(labels, vol.spacing, affine_lps=vol.affine_lps)
    assert stats["liver_ml"] == pytest.approx(72 * np.cos(t) * 2 / 1000, abs=1e-3)  # not 0.144


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_files_are_converted_a_part_at_a_time_to_the_same_hu(tmp_path, monkeypatch, dtype):
    """A 900-slice float32 scan peaked at 4.9 GB while read (five whole-size copies; 1.9 GB
    now, as measured on it). Converted in parts, the result is as it was in one piece: the
    NaN fill is the smallest value of the whole image (here in the last part), the rounding
    judged over all parts, the voxel order kept."""
    import napari_livertumor.io.nifti as nifti

    monkeypatch.setattr(nifti, "_CHUNK", 7)  # many parts, none aligned with a row
    rng = np.random.default_rng(0)
    hu = rng.integers(-200, 300, size=(9, 8, 5)).astype(dtype)
    hu[0, 0, 0] = np.nan
    hu[-1, -1, -1] = -1024  # the minimum, in the last part
    nib.save(nib.Nifti1Image(hu, np.eye(4)), tmp_path / "f.nii.gz")
    vol = read_nifti(tmp_path / "f.nii.gz")
    assert vol.array.dtype == np.int16
    expected = np.where(np.isnan(hu), -1024, hu).astype(np.int16).transpose(2, 1, 0)
    np.testing.assert_array_equal(vol.array, expected)
    assert vol.array.flags.c_contiguous
    assert any("replaced by the minimum value -1024" in w for w in vol.meta["warnings"])
    assert not any("rounded" in w for w in vol.meta["warnings"])

    hu[4, 3, 2] = 10.4  # one non-integer value, in a middle part: said, and rounded
    nib.save(nib.Nifti1Image(hu, np.eye(4)), tmp_path / "g.nii.gz")
    vol = read_nifti(tmp_path / "g.nii.gz")
    assert vol.array[2, 3, 4] == 10 and any("rounded" in w for w in vol.meta["warnings"])

    prob = rng.random((9, 8, 5)).astype(dtype)  # a probability map: kept as float32
    nib.save(nib.Nifti1Image(prob, np.eye(4)), tmp_path / "p.nii.gz")
    vol = read_nifti(tmp_path / "p.nii.gz")
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, prob.transpose(2, 1, 0), rtol=1e-6)


def test_a_file_too_big_for_the_memory_says_so_and_how_to_shrink_it(tmp_path, monkeypatch):
    import napari_livertumor.io.nifti as nifti

    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), tmp_path / "big.nii")

    def no_memory(*args, **kw):
        raise MemoryError("Unable to allocate 900. MiB")

    monkeypatch.setattr(nifti, "_as_hu", no_memory)  # (numpy fails in it when short)
    with pytest.raises(InputError, match="not enough memory to read it") as info:
        read_nifti(tmp_path / "big.nii")
    assert "big.nii" in str(info.value) and "4 × 5 × 6 voxels are stored as float32" in str(
        info.value
    )
    assert "int16" in str(info.value)


def test_a_nifti_is_read_a_slab_at_a_time_with_progress_and_a_stop(tmp_path, monkeypatch):
    """A 900-slice file was read in one call: the Load panel's bar sat at 0 and Cancel waited
    for the whole read (34 s on a float32 scan)."""
    import napari_livertumor.io.nifti as nifti
    from napari_livertumor.errors import Cancelled
    from napari_livertumor.io import load_ct
    from napari_livertumor.progress import Reporter

    monkeypatch.setattr(nifti, "_SLAB_VOXELS", 6 * 5 * 3)  # three slices a slab
    hu = np.arange(6 * 5 * 10, dtype=np.int16).reshape(6, 5, 10) - 100
    nib.save(nib.Nifti1Image(hu, np.eye(4)), tmp_path / "ct.nii.gz")
    seen = []
    vol = load_ct(tmp_path / "ct.nii.gz", reporter=Reporter(lambda *a: seen.append(a)))
    np.testing.assert_array_equal(vol.array, hu.transpose(2, 1, 0))
    assert seen == [("nifti slices", k, 10) for k in (0, 3, 6, 9, 10)]

    asked = []
    stop = Reporter(lambda *a: asked.append(a), lambda: len(asked) >= 2)
    with pytest.raises(Cancelled):
        read_nifti(tmp_path / "ct.nii.gz", reporter=stop)
    assert len(asked) == 2  # stopped at the next slab, not after the whole file
    # a float file too (and its conversion to HU) is read the same way
    nib.save(nib.Nifti1Image(hu.astype(np.float32), np.eye(4)), tmp_path / "f.nii.gz")
    seen.clear()
    vol = read_nifti(tmp_path / "f.nii.gz", reporter=Reporter(lambda *a: seen.append(a)))
    assert vol.array.dtype == np.int16 and len(seen) == 5
    np.testing.assert_array_equal(vol.array, hu.transpose(2, 1, 0))


def test_an_image_without_voxels_says_so(tmp_path):
    """A (20, 18, 0) float image was "every voxel is NaN or infinite"."""
    nib.save(nib.Nifti1Image(np.zeros((20, 18, 0), np.float32), np.eye(4)), tmp_path / "e.nii")
    with pytest.raises(InputError, match="holds no voxels"):
        read_nifti(tmp_path / "e.nii")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_the_file_is_closed_after_a_stopped_or_failed_read(tmp_path, monkeypatch):
    """Read slab by slab, the file is kept open while it is read; a stopped read left it open
    as long as its exception lived (on Windows it could then not be replaced)."""
    import os

    from napari_livertumor.errors import Cancelled
    from napari_livertumor.progress import Reporter

    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.eye(4)), path)

    def open_here() -> bool:
        return any(os.path.realpath(f"/proc/self/fd/{fd}") == str(path.resolve())
                   for fd in os.listdir("/proc/self/fd"))  # fmt: skip

    import napari_livertumor.io.nifti as nifti

    monkeypatch.setattr(nifti, "_SLAB_VOXELS", 6 * 5)  # a slice a slab
    asked = []
    caught = []
    try:  # stopped after its first slab was read (the file open)
        read_nifti(path, reporter=Reporter(None, lambda: asked.append(1) or len(asked) > 1))
    except Cancelled as exc:
        caught.append(exc)  # kept, as a worker or a logger may keep it
    assert caught and not open_here()
    read_nifti(path)
    assert not open_here()


@pytest.mark.parametrize("sform", [0, 1], ids=["qform-only", "sform"])
@pytest.mark.parametrize("value", [0.0, float("nan")], ids=["zero", "nan"])
def test_a_header_without_a_slice_thickness_is_refused_unless_the_sform_gives_it(
    tmp_path, sform, value
):
    """pixdim[3] = 0 with a qform only was read as 1 mm slices (nibabel sets a 0 to 1 when it
    loads, saying so only in its log): a 2.5 mm CT measured 2.5 times too small, no warning."""
    import struct

    img = nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), np.diag([0.8, 0.8, 2.5, 1.0]))
    img.header.set_sform(img.affine, code=sform)
    img.header.set_qform(img.affine, code=1)
    img.header["vox_offset"] = 352  # where the voxels are (a fresh header says 0)
    raw = bytearray(img.header.binaryblock + b"\0" * 4 + np.zeros((4, 8, 8), np.int16).tobytes())
    raw[88:92] = struct.pack("<f", value)  # pixdim[3], as the file stores it
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    if sform:  # the sform gives the grid: read as it says
        assert read_nifti(path).spacing == pytest.approx((2.5, 0.8, 0.8))
        return
    with pytest.raises(InputError, match=r"no voxel size along z \(pixdim\[3\] = (0|nan)\)"):
        read_nifti(path)


def test_a_header_claiming_more_voxels_than_the_file_holds_is_refused_before_allocating(tmp_path):
    """A 300-byte .nii.gz claiming 2048³ voxels asked for 16 GiB and failed as "out of memory:
    use a bigger machine"; a bare header failed with nibabel's "Whoops, not enough data"."""
    header = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)).header
    header.set_data_shape((2048, 2048, 2048))
    bare = tmp_path / "bare.nii"
    bare.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 1000)
    with pytest.raises(
        InputError, match=r"claims 2048 × 2048 × 2048 voxels of int16 \(16\.0 GiB\)"
    ):
        read_nifti(bare)
    small = tmp_path / "small.nii.gz"
    small.write_bytes(gzip.compress(bare.read_bytes()))
    with pytest.raises(InputError, match=r"bytes compressed file holds at most about .* KiB"):
        read_nifti(small)
    # a real scan of one value compresses about a thousandfold and is read
    flat = CTVolume(np.full((64, 128, 128), -1024, np.int16), (2.5, 0.8, 0.8))
    write_nifti(flat, tmp_path / "flat.nii.gz")
    assert read_nifti(tmp_path / "flat.nii.gz").shape == (64, 128, 128)


def test_wide_integers_that_do_not_fit_are_refused_and_small_floats_are_written(tmp_path):
    """int64 was cast to int32 unchecked (2**40 written as 0); float16 and uint64 ended in
    nibabel's own errors."""
    with pytest.raises(InputError, match="do not fit the 32-bit integers"):
        write_nifti(np.full((3, 4, 5), 2**40, np.int64), tmp_path / "big.nii.gz")
    assert not (tmp_path / "big.nii.gz").exists()
    for dtype in (np.int64, np.uint64, np.float16):
        out = write_nifti(np.full((3, 4, 5), 7, dtype), tmp_path / f"{np.dtype(dtype).name}.nii.gz")
        assert (read_nifti(out).array == 7).all()


def test_a_generic_file_name_takes_its_folders_name(tmp_path):
    """P1/ct.nii.gz and P2/ct.nii.gz were "ct.nii.gz" and "ct.nii.gz [2]" in every panel, and
    Export offered the name "ct" for both."""
    from napari_livertumor._reader import ct_layer_data
    from napari_livertumor._widgets._layers import _volume_name

    vol = CTVolume(np.zeros((3, 4, 5), np.int16), spacing=(2.5, 0.8, 0.8))
    for folder, file, case, shown in (
        ("P1", "ct.nii.gz", "P1", "P1 ct"),
        ("case_00000", "imaging.nii.gz", "case_00000", "case_00000 imaging"),
        ("P2", "HCC_007.nii.gz", "HCC_007", "HCC_007"),
        # past a generic folder to the patient's (P3/images/image.nii: P3)
        ("P3/images", "image.nii", "P3", "P3 image"),
    ):
        path = write_nifti(vol, tmp_path / folder / file)
        read = read_nifti(path)
        assert read.meta["patient_id"] == case and read.meta["display_name"] == shown
        assert _volume_name(read) == shown and ct_layer_data(read)[1]["name"] == shown
    # a label map too: P1/seg.nii.gz and P2/seg.nii.gz were both "seg"
    from napari_livertumor._reader import read_nifti_layers

    for patient in ("P1", "P2"):
        labels = CTVolume(np.ones((3, 4, 5), np.int16), spacing=(2.5, 0.8, 0.8))
        path = write_nifti(labels, tmp_path / patient / "seg.nii.gz")
        [(_, kwargs, kind)] = read_nifti_layers(str(path))
        assert kind == "labels" and kwargs["name"] == f"{patient} seg"


def test_a_label_map_is_declared_one_in_its_header(tmp_path):
    """A label map carried no intent and its CT's description ("LIVER 3 PHASE CAP") as its
    own: viewers that read the intent (NIFTI_INTENT_LABEL) took it for an image."""
    import nibabel as nib

    ct = CTVolume(np.zeros((4, 5, 6), np.int16), (2.5, 1.0, 1.0), meta={"description": "LIVER"})
    write_nifti(np.ones((4, 5, 6), np.uint8), tmp_path / "l.nii.gz", reference=ct, labels=True)
    header = nib.load(tmp_path / "l.nii.gz").header
    assert header.get_intent()[0] == "label" and header["descrip"] == b"label map of LIVER"
    write_nifti(ct, tmp_path / "ct.nii.gz")  # a CT is no label map
    assert nib.load(tmp_path / "ct.nii.gz").header.get_intent()[0] == "none"
    # a uint8 image saved from napari is no label map either; convert's ground truth is one
    from napari_livertumor._writer import write_image_nifti

    [img] = write_image_nifti(str(tmp_path / "u8.nii.gz"), np.ones((4, 5, 6), np.uint8), {})
    assert nib.load(img).header.get_intent()[0] == "none"


def test_a_gzipped_nifti_named_nii_is_checked_before_it_is_decompressed(tmp_path, monkeypatch):
    """A gzipped file named .nii was decompressed whole before its header was checked: 8 MB
    naming 8 GB of voxels took 5.6 GB, where the same file named .nii.gz was refused at once."""
    import gzip

    from napari_livertumor import memory

    ct = CTVolume(np.zeros((64, 128, 128), np.int16), (2.5, 0.7, 0.7))
    plain = write_nifti(ct, tmp_path / "ct.nii")
    misnamed = tmp_path / "gz_named.nii"
    misnamed.write_bytes(gzip.compress(plain.read_bytes()))
    monkeypatch.setattr(memory, "headroom", lambda: memory.Headroom(1 << 20, "machine"))
    decompressed = []
    monkeypatch.setattr(gzip, "decompress", lambda *a, **k: decompressed.append(a))
    with pytest.raises(InputError, match="gz_named.nii.*memory"):
        read_nifti(misnamed)
    assert not decompressed
    monkeypatch.undo()
    back = read_nifti(misnamed)  # read through the stream, slab by slab
    np.testing.assert_array_equal(back.array, ct.array)


def _patched(path: Path, image, at: dict[int, bytes]) -> Path:
    """``image`` saved at ``path`` with bytes of its file replaced (offset: new bytes)."""
    nib.save(image, path)
    raw = bytearray(
        gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    )
    for offset, new in at.items():
        raw[offset : offset + len(new)] = new
    path.write_bytes(gzip.compress(bytes(raw)) if path.suffix == ".gz" else bytes(raw))
    return path


def _body(shape=(20, 18, 8)) -> np.ndarray:
    """An int16 CT in (x, y, z) with an off-centre block, so a mirrored axis shows."""
    data = np.full(shape, -1000, np.int16)
    data[2:9, 3:12, 1:4] = 60
    return data


@pytest.mark.parametrize(
    ("axis", "codes"), [(1, (0, 1)), (3, (1, 1)), (1, (0, 0))], ids=["x-qform", "z-sform", "x-none"]
)
def test_a_negative_voxel_size_is_said_and_its_labels_lie_on_the_ct_in_itk(tmp_path, axis, codes):
    """A negative pixdim was read as its absolute value (as nibabel reads it) without a word;
    ITK mirrors that axis, and the labels, written with positive sizes, lay off the CT there
    (Dice 0 overlaid in SimpleITK)."""
    import struct

    sitk = pytest.importorskip("SimpleITK")
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    affine[:3, 3] = [-10, 20, -300]
    img = nib.Nifti1Image(_body(), affine)
    img.set_sform(affine, code=codes[0])
    img.set_qform(affine, code=codes[1])
    value = struct.pack("<f", -float(affine[axis - 1, axis - 1]))
    ct_path = _patched(tmp_path / "ct.nii.gz", img, {76 + 4 * axis: value})
    volume = read_nifti(ct_path)
    (note,) = [w for w in volume.meta["warnings"] if "negative voxel size" in w]
    assert note.startswith("ct.nii.gz: ") and f"pixdim[{axis}] = -" in note
    assert f"along {'xyz'[axis - 1]}" in note
    labels = volume.displayed()  # as the viewer shows it, written back on the file's grid
    mask = (labels.array > 0).astype(np.uint8)
    array, grid = labels.to_stored(mask)
    write_nifti(array, tmp_path / "labels.nii.gz", reference=grid, labels=True)
    # nibabel reads both alike ...
    out = read_nifti(tmp_path / "labels.nii.gz")
    np.testing.assert_allclose(out.affine, volume.affine, atol=1e-4)
    np.testing.assert_array_equal(out.array, (volume.array > 0).astype(np.uint8))
    # ... and so does ITK: the labels resampled onto the CT lie on its body, voxel for voxel
    ct_itk = sitk.ReadImage(str(ct_path))
    on_ct = sitk.Resample(
        sitk.ReadImage(str(tmp_path / "labels.nii.gz")),
        ct_itk,
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
    )
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(on_ct), (sitk.GetArrayFromImage(ct_itk) > 0).astype(np.uint8)
    )


def test_a_vox_offset_inside_the_header_or_its_extensions_is_refused(tmp_path):
    """vox_offset 0 in a .nii read the header's bytes as voxels (the volume wrapped, liver Dice
    0.27, plausible volumes); extensions flagged but not counted in vox_offset read the voxels
    32 bytes off. Both went unsaid."""
    import struct

    img = nib.Nifti1Image(_body(), np.diag([0.8, 0.9, 2.5, 1.0]))
    nib.save(img, tmp_path / "good.nii")
    raw = (tmp_path / "good.nii").read_bytes()
    (tmp_path / "zero.nii").write_bytes(raw[:108] + struct.pack("<f", 0.0) + raw[112:])
    with pytest.raises(InputError, match=r"zero\.nii: .*voxels start at byte 0 \(vox_offset\)"):
        read_nifti(tmp_path / "zero.nii")
    # the extension flag set, 32 bytes of extension at 352 and the voxels after them, but
    # vox_offset still 352: refused uncompressed and compressed
    extension = struct.pack("<ii", 32, 0) + b"\0" * 24
    flagged = raw[:348] + b"\1\0\0\0" + extension + raw[352:]
    (tmp_path / "ext.nii").write_bytes(flagged)
    (tmp_path / "ext.nii.gz").write_bytes(gzip.compress(flagged))
    for name in ("ext.nii", "ext.nii.gz"):
        with pytest.raises(InputError, match=r"32 bytes of extensions begin there.*byte 384"):
            read_nifti(tmp_path / name)
    # a file longer than its voxels is warned of; ordinary files (a real extension) are not
    (tmp_path / "long.nii").write_bytes(raw + b"\0" * 64)
    (note,) = read_nifti(tmp_path / "long.nii").meta["warnings"]
    assert note.startswith("long.nii: the file holds 64 bytes more")
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment"))
    for name in ("commented.nii", "commented.nii.gz", "plain.nii.gz"):
        nib.save(img, tmp_path / name)
        assert read_nifti(tmp_path / name).meta["warnings"] == []
    nib.save(nib.Nifti2Image(_body(), np.eye(4)), tmp_path / "two.nii")
    assert read_nifti(tmp_path / "two.nii").meta["warnings"] == []


def test_a_header_in_meters_is_warned_of_and_its_labels_are_written_in_meters(tmp_path):
    """Sizes read as mm (the units ignored, as nibabel does) said nothing, and the labels were
    written in mm: ITK converts the CT's meters and put the labels 1000 times smaller, off it."""
    sitk = pytest.importorskip("SimpleITK")
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    affine[:3, 3] = [-10, 20, -300]
    img = nib.Nifti1Image(_body(), affine)
    img.header.set_xyzt_units("meter")
    nib.save(img, tmp_path / "ct.nii.gz")
    volume = read_nifti(tmp_path / "ct.nii.gz")
    (note,) = volume.meta["warnings"]
    assert note.startswith("ct.nii.gz: the header gives its voxel sizes in meters")
    assert "taken as mm" in note
    write_nifti(np.ones(volume.shape, np.uint8), tmp_path / "labels.nii.gz", reference=volume)
    assert nib.load(tmp_path / "labels.nii.gz").header.get_xyzt_units()[0] == "meter"
    ct_itk, labels_itk = (sitk.ReadImage(str(tmp_path / n)) for n in ("ct.nii.gz", "labels.nii.gz"))
    np.testing.assert_allclose(labels_itk.GetSpacing(), ct_itk.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(labels_itk.GetOrigin(), ct_itk.GetOrigin(), rtol=1e-6)


def test_a_file_of_several_volumes_says_how_many_and_how_to_take_one(tmp_path):
    """ "expected a 3D image, got 4D data of shape (96, 96, 32, 2)" gave no way forward."""
    nib.save(nib.Nifti1Image(np.zeros((5, 6, 7, 2), np.int16), np.eye(4)), tmp_path / "x.nii.gz")
    with pytest.raises(InputError, match="holds 2 volumes") as info:
        read_nifti(tmp_path / "x.nii.gz")
    assert "img.slicer[..., i]" in str(info.value) and "fslsplit" in str(info.value)


def test_a_voxel_size_of_0_beside_an_intact_sform_is_named_as_the_cause(tmp_path):
    """pixdim[2] = 0 with an intact sform was said as "sform and qform disagree: voxels up to
    363.4 mm apart", not why (nibabel's qform takes the 0 as 1 mm)."""
    import struct

    affine = np.diag([0.8, 4.0, 2.5, 1.0])
    img = nib.Nifti1Image(_body(), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    path = _patched(tmp_path / "ct.nii.gz", img, {76 + 4 * 2: struct.pack("<f", 0.0)})
    volume = read_nifti(path)
    np.testing.assert_allclose(volume.affine, affine)  # the sform
    (note,) = volume.meta["warnings"]
    assert "pixdim[2] is 0" in note and "read 1 mm along y" in note and "disagree" not in note


def test_a_ct_with_a_voxel_size_of_0_converts_to_the_sforms_geometry_and_its_labels_overlay_it(
    tmp_path,
):
    """pixdim[3] = 0 beside an intact sform (8.56 mm slices): the warning said SimpleITK reads
    the sform, but it reads 1 mm slices; and convert's output was written with pixdim[3] = 1
    and that 1 mm qform while saying "8.56 mm slices": SimpleITK read it at 1 mm. Labels of
    this CT keep its qform: an ITK tool overlays them where it places this CT."""
    import struct

    from napari_livertumor.cli import main

    sitk = pytest.importorskip("SimpleITK")
    affine = np.diag([0.8, 0.9, 8.5, 1.0])
    affine[:3, 3] = [-10, 20, -300]
    img = nib.Nifti1Image(_body(), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    path = _patched(tmp_path / "ct.nii.gz", img, {76 + 4 * 3: struct.pack("<f", 0.0)})
    volume = read_nifti(path)
    (note,) = volume.meta["warnings"]
    assert "SimpleITK" in note and "read 1 mm along z" in note
    assert "current ITK/SimpleITK" not in note  # (it does not read the sform there)
    assert main(["convert", str(path), "-o", str(tmp_path / "converted.nii.gz")]) == 0
    written = nib.load(tmp_path / "converted.nii.gz")
    np.testing.assert_allclose(written.header.get_zooms()[:3], (0.8, 0.9, 8.5), rtol=1e-6)
    np.testing.assert_allclose(written.get_qform(), affine, atol=1e-4)
    np.testing.assert_allclose(written.get_sform(), affine, atol=1e-4)
    np.testing.assert_allclose(
        sitk.ReadImage(str(tmp_path / "converted.nii.gz")).GetSpacing(), (0.8, 0.9, 8.5), rtol=1e-6
    )
    assert read_nifti(tmp_path / "converted.nii.gz").meta["warnings"] == []
    write_nifti(np.ones(volume.shape, np.uint8), tmp_path / "labels.nii.gz", reference=volume,
                labels=True)  # fmt: skip
    labels, ct = (sitk.ReadImage(str(p)) for p in (tmp_path / "labels.nii.gz", path))
    np.testing.assert_allclose(labels.GetSpacing(), ct.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(labels.GetOrigin(), ct.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(nib.load(tmp_path / "labels.nii.gz").get_sform(), affine, atol=1e-4)


@pytest.mark.parametrize("given", ["x.hdr", "x.img"])
def test_a_nifti_pair_is_said_to_be_one_and_how_to_make_it_one_file(tmp_path, given):
    """A NIfTI-1 .hdr/.img pair was refused as "Analyze format", sending its user to look for an
    Analyze converter; genuine Analyze keeps its word."""
    pair = nib.Nifti1Pair(_body(), np.diag([0.8, 0.9, 2.5, 1.0]))
    nib.save(pair, tmp_path / "x.img")
    with pytest.raises(InputError, match="a NIfTI-1 pair") as info:
        load_ct(tmp_path / given)
    assert f"nib.save(nib.load('{given}'), 'x.nii.gz')" in str(info.value)
    nib.save(nib.AnalyzeImage(_body(), np.diag([0.8, 0.9, 2.5, 1.0])), tmp_path / "a.img")
    with pytest.raises(InputError, match="Analyze format: not read here"):
        load_ct(tmp_path / given.replace("x", "a"))


@pytest.mark.parametrize(
    ("written", "given", "said"),
    [
        ("x.img", "x.hdr", "a NIfTI-2 pair"),
        ("x.img", "x.img", "a NIfTI-2 pair"),
        ("X.IMG", "X.IMG", "a NIfTI-1 pair"),  # (upper-case names, as old exports write)
    ],
)
def test_a_nifti_2_or_upper_case_pair_is_said_to_be_one(tmp_path, written, given, said):
    """A NIfTI-2 .hdr/.img pair, and a NIfTI-1 pair named X.HDR/X.IMG, are said to be NIfTI
    pairs, with how to make them one file: refused as "Analyze format", their users would
    look for an Analyze converter they do not need."""
    pair = (nib.Nifti2Pair if "2" in said else nib.Nifti1Pair)(
        _body(), np.diag([0.8, 0.9, 2.5, 1.0])
    )
    nib.save(pair, tmp_path / "x.img")
    if written != "x.img":
        (tmp_path / "x.img").rename(tmp_path / written)
        (tmp_path / "x.hdr").rename(tmp_path / Path(written).with_suffix(".HDR"))
    with pytest.raises(InputError, match=said) as info:
        load_ct(tmp_path / given)
    assert f"nib.save(nib.load('{given}'), " in str(info.value)


def test_a_float_ct_is_rounded_to_the_nearest_hu_not_truncated(tmp_path):
    """A resampled (float) CT is stored as int16 HU; casting without rounding would move
    every voxel toward zero (-999.6 to -999, 120.9 to 120) and bias the whole scan."""
    values = np.array([-999.6, -0.6, 40.7, 59.5, 120.9, 1000.2], np.float32)
    data = np.tile(values, 4).reshape(2, 3, 4)
    nib.save(nib.Nifti1Image(data, np.diag([0.7, 0.7, 2.5, 1])), tmp_path / "ct.nii.gz")
    volume = read_nifti(tmp_path / "ct.nii.gz")
    assert volume.array.dtype == np.int16
    np.testing.assert_array_equal(np.sort(np.unique(volume.array)), [-1000, -1, 41, 60, 121, 1000])


def test_a_ground_truth_with_255_for_ignore_is_not_told_to_make_it_liver():
    """Classes 0-4 with 255 for "ignore" were told "a mask of 0 and 255 … set 255 to 1": done,
    the ignored voxels became liver. Only a map of 0 and 255 alone gets that advice."""
    from napari_livertumor.io.nifti import ground_truth_classes

    classes = np.zeros((4, 8, 8), np.uint8)
    classes[1:3, 2:6, 2:6] = 1
    classes[2, 3:5, 3:5] = 2
    ignore = classes.copy()
    ignore[0] = 255
    with pytest.raises(InputError) as refused:
        ground_truth_classes("gt.nii.gz", CTVolume(ignore, (1.0, 1.0, 1.0)))
    assert "255 is no class here" in str(refused.value) and "set 255 to 1" not in str(refused.value)
    mask = np.where(classes > 0, 255, 0).astype(np.uint8)
    with pytest.raises(InputError, match="a mask of 0 and 255 is no such map"):
        ground_truth_classes("gt.nii.gz", CTVolume(mask, (1.0, 1.0, 1.0)))
    assert ground_truth_classes("gt.nii.gz", CTVolume(classes, (1.0, 1.0, 1.0))).max() == 2


def test_a_ground_truth_whose_only_bad_voxel_is_plus_infinity_is_refused(tmp_path):
    """A float ground truth with one +inf voxel must not load: read as a CT, +inf becomes the
    map's highest value (a saturated bright voxel), here 2, so that voxel would be tumor and
    the map scored as if whole. +inf is no class, as NaN is none."""
    from napari_livertumor.io.nifti import ground_truth_classes

    data = np.zeros((4, 8, 8), np.float32)
    data[1:3, 2:6, 2:6] = 1
    data[2, 3:5, 3:5] = 2
    data[0, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.5, 1.0])), tmp_path / "gt.nii.gz")
    with pytest.raises(InputError, match="1 NaN or infinite voxels in a label map"):
        ground_truth_classes(tmp_path / "gt.nii.gz", read_nifti(tmp_path / "gt.nii.gz"))


def test_a_ground_truth_holding_a_class_5_is_refused():
    """A map of classes 0-5 (another dataset's organ numbers) would load as a ground truth
    without a word and be scored as if its numbers meant this dataset's classes. Classes go
    up to 4 (portal vein 3, aorta 4): a 5 is refused, named."""
    from napari_livertumor.io.nifti import ground_truth_classes

    classes = np.zeros((4, 8, 8), np.uint8)
    for value in range(6):
        classes[0, 0, value] = value
    with pytest.raises(InputError, match="found 5; values above 4 are no class here"):
        ground_truth_classes("gt.nii.gz", CTVolume(classes, (1.0, 1.0, 1.0)))
    classes[0, 0, 5] = 4
    assert ground_truth_classes("gt.nii.gz", CTVolume(classes, (1.0, 1.0, 1.0))).max() == 4


def _with_sform(path: Path, sform: np.ndarray, z_pixdim: float | None = None) -> Path:
    """A small NIfTI whose header holds ``sform`` as stored (code 1; no qform), unchanged by
    nibabel's saving (which remakes a sform from the affine)."""
    affine = np.diag([0.8, 0.8, 5.0, 1.0])
    img = nib.Nifti1Image(np.zeros((8, 9, 4), np.int16), affine)
    header = img.header
    header["sform_code"], header["qform_code"] = 1, 0
    header["srow_x"], header["srow_y"], header["srow_z"] = sform[0], sform[1], sform[2]
    if z_pixdim is not None:
        pixdim = header["pixdim"].copy()
        pixdim[3] = z_pixdim
        header["pixdim"] = pixdim
    img.update_header = lambda: None  # (saved as set)
    nib.save(img, path)
    return path


def test_an_affine_that_cannot_place_the_voxels_names_the_field_the_axis_and_a_fix(tmp_path):
    """A sform with a zero z column said "invalid geometry: affine has a zero-length axis", a
    NaN one "the file has no valid affine": neither which field, which axis, nor what to do."""
    sform = np.diag([0.8, 0.8, 5.0, 1.0])
    zero = sform.copy()
    zero[:3, 2] = 0
    with pytest.raises(InputError) as info:
        read_nifti(_with_sform(tmp_path / "zero.nii.gz", zero, z_pixdim=0))
    said = str(info.value)
    assert "the header's sform (sform_code 1) gives the voxels no length along their third " in said
    assert "axis (k)" in said
    assert "(srow_x[2], srow_y[2], srow_z[2] are 0): voxel sizes 0.8 × 0.8 × 0 mm" in said
    assert "(pixdim says 0.8 × 0.8 × 0 mm)" in said
    assert "img.set_sform(A, code=1); img.set_qform(A, code=1)" in said  # the fix
    nan = sform.copy()
    nan[2] = np.nan
    with pytest.raises(InputError) as info:
        read_nifti(_with_sform(tmp_path / "nan.nii.gz", nan))
    said = str(info.value)
    assert "the header's sform (sform_code 1) holds NaN or infinite values: srow_z" in said
    assert "no valid affine" not in said and "Re-save it with a correct affine" in said
    flat = sform.copy()  # the slice axis in the plane of the rows and columns
    flat[:3, 2] = sform[:3, 0] + sform[:3, 1]
    with pytest.raises(
        InputError, match="third axis .k, slice to slice. in the plane of the other two"
    ):
        read_nifti(_with_sform(tmp_path / "flat.nii.gz", flat))
    both = sform.copy()  # two axes of no length: one bracket (two had stood back to back)
    both[:3, 0] = both[:3, 2] = 0
    with pytest.raises(InputError) as info:
        read_nifti(_with_sform(tmp_path / "both.nii.gz", both, z_pixdim=0))
    assert (
        "no length along their first and third axes (i, k) (srow_x[0], srow_y[0], srow_z[0] "
        "and srow_x[2], srow_y[2], srow_z[2] are 0)"
    ) in str(info.value)
    # the fix said works
    img = nib.load(tmp_path / "zero.nii.gz")
    img.set_sform(sform, code=1)
    img.set_qform(sform, code=1)
    nib.save(img, tmp_path / "fixed.nii.gz")
    assert read_nifti(tmp_path / "fixed.nii.gz").spacing == pytest.approx((5.0, 0.8, 0.8))
