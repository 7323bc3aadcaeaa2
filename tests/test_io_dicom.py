"""A user opens DICOM CT series: what they get matches SimpleITK, voxel for voxel and mm for mm."""

from __future__ import annotations

import random
import re
import shutil
import warnings

import numpy as np
import pydicom
import pytest
from _geometry import rotation
from _permissions import deny_listing

from napari_livertumor.errors import InputError
from napari_livertumor.io import CTVolume, load_ct
from napari_livertumor.io.dicom import discover_series, read_dicom_series
from napari_livertumor.io.dicom_write import write_ct_series
from napari_livertumor.io.nifti import read_nifti, write_nifti

sitk = pytest.importorskip("SimpleITK")


ORIENTATIONS = {
    "axial": np.eye(3),
    "flipped": np.diag([1.0, -1.0, -1.0]),  # rows run posterior->anterior, as explicit_VR-UN.dcm
    "oblique": rotation(2, 17) @ rotation(0, 11),
    "feet-first": np.diag([-1.0, 1.0, -1.0]),
}


def make_ct(shape=(9, 24, 30), spacing=(2.5, 0.71, 0.78), direction=None, seed=0) -> CTVolume:
    rng = np.random.default_rng(seed)
    array = rng.integers(-1024, 2000, size=shape).astype(np.int16)
    return CTVolume(
        array,
        spacing,
        origin=(-120.5, 33.25, -410.0),
        direction=np.eye(3) if direction is None else direction,
    )


def write_shuffled(volume: CTVolume, folder, seed=1, **kw):
    names = [f"IM{i:04d}" for i in range(volume.shape[0])]  # no .dcm suffix, like many exports
    random.Random(seed).shuffle(names)
    return write_ct_series(volume, folder, file_names=names, **kw)


def read_with_simpleitk(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    array = sitk.GetArrayFromImage(image)
    lps = np.eye(4)
    lps[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return array, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def assert_same_as_simpleitk(volume: CTVolume, folder) -> None:
    array, affine = read_with_simpleitk(folder)
    np.testing.assert_array_equal(volume.array, array.astype(volume.array.dtype))
    np.testing.assert_allclose(volume.affine, affine, atol=1e-3)


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
@pytest.mark.parametrize("slice_order", ["head-first", "reversed"])
def test_series_with_shuffled_names_reads_like_simpleitk(tmp_path, orientation, slice_order):
    direction = ORIENTATIONS[orientation].copy()
    if slice_order == "reversed":
        direction[:, 2] *= -1  # files numbered against the slice normal
    source = make_ct(direction=direction)
    write_shuffled(source, tmp_path / "ct")

    volume = read_dicom_series(tmp_path / "ct")

    assert_same_as_simpleitk(volume, tmp_path / "ct")
    expected = source.array if slice_order == "head-first" else source.array[::-1]
    np.testing.assert_array_equal(volume.array, expected)
    assert volume.array.dtype == np.int16
    assert volume.meta["warnings"] == []

    # ... and the NIfTI we convert it to carries the same voxels and affine.
    write_nifti(volume, tmp_path / "ct.nii.gz")
    back = read_nifti(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine, read_with_simpleitk(tmp_path / "ct")[1], atol=1e-3)


def test_metadata_lists_slices_in_array_order(tmp_path):
    source = make_ct()
    paths = write_shuffled(
        source,
        tmp_path / "ct",
        patient_id="HCC_042",
        series_description="LIVER 3 PHASE ART",
        contrast_agent="OMNIPAQUE",
    )
    volume = load_ct(tmp_path / "ct")
    expected_uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]
    assert volume.meta["sop_instance_uids"] == expected_uids
    assert volume.meta["files"] == [str(p) for p in paths]
    assert volume.meta["patient_id"] == "HCC_042"
    assert volume.meta["phase"] == "arterial"
    assert volume.meta["modality"] == "CT"
    assert volume.meta["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.2"


@pytest.mark.parametrize(
    "kw",
    [
        {"transfer_syntax": "rle"},
        {"transfer_syntax": "jpeg2000"},
        {"storage": "uint16"},
    ],
    ids=["rle", "jpeg2000-lossless", "uint16"],
)
def test_compressed_and_unsigned_series_decode_to_the_same_hu(tmp_path, kw):
    source = make_ct(shape=(3, 40, 44))  # JPEG 2000 needs >= 32 px a side
    write_shuffled(source, tmp_path / "ct", **kw)
    volume = read_dicom_series(tmp_path / "ct")
    np.testing.assert_array_equal(volume.array, source.array)
    assert not [w for w in volume.meta["warnings"] if "lossy" in w]  # (lossless JPEG 2000: .90)


def test_pixels_outside_the_scanned_field_read_as_air(tmp_path):
    """Unsigned pixels, intercept -1024, PixelPaddingValue written -2000 (its 16-bit pattern
    63536 in the pixels): the outside of the field read as +32767 HU, and `segment` found
    no liver. A padding value that is a tissue's (0 with intercept 0) is left alone."""
    source = make_ct(shape=(3, 20, 22))
    files = write_shuffled(source, tmp_path / "ct", storage="uint16")
    for f in files:
        ds = pydicom.dcmread(f)
        pixels = ds.pixel_array.copy()
        pixels[:, :4] = 63536  # the corner outside the circle of reconstruction
        ds.PixelData = pixels.tobytes()
        ds.add_new(0x00280120, "SS", -2000)  # PixelPaddingValue, written signed
        ds.save_as(f)
    volume = read_dicom_series(tmp_path / "ct")
    assert (volume.array[:, :, :4] == -1024).all()
    np.testing.assert_array_equal(volume.array[:, :, 4:], source.array[:, :, 4:])
    for f in files:  # 12 bits stored: the padding pattern cut to 12 bits too (2096: +1072 HU)
        ds = pydicom.dcmread(f)
        ds.BitsStored, ds.HighBit = 12, 11
        pixels = ds.pixel_array.copy()
        pixels[10, 10] = 2096  # bone of +1072 HU inside the field: not padding
        ds.PixelData = pixels.tobytes()
        ds.save_as(f)
    twelve = read_dicom_series(tmp_path / "ct")
    assert (twelve.array[:, :, :4] == -1024).all() and (twelve.array[:, 10, 10] == 1072).all()
    expected = source.array.copy()
    expected[:, 10, 10] = 1072
    np.testing.assert_array_equal(twelve.array[:, :, 4:], expected[:, :, 4:])

    signed = write_shuffled(source, tmp_path / "water")
    for f in signed:
        ds = pydicom.dcmread(f)
        ds.RescaleIntercept = 0
        ds.add_new(0x00280120, "SS", 0)
        ds.save_as(f)
    np.testing.assert_array_equal(read_dicom_series(tmp_path / "water").array, source.array + 1024)


def test_a_rescale_slope_multiplies_the_stored_value_before_the_intercept_is_added(tmp_path):
    """HU = stored × RescaleSlope + RescaleIntercept (DICOM PS3.3 C.11.1.1.2): adding the
    intercept before the slope would read a slope-2 series 1024 HU too low throughout."""
    source = make_ct(shape=(3, 12, 14))
    stored = np.random.default_rng(3).integers(0, 2000, size=source.shape).astype(np.uint16)
    files = write_ct_series(source, tmp_path / "ct", storage="uint16")
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.PixelData = stored[k].tobytes()
        ds.RescaleSlope, ds.RescaleIntercept = "2", "-1024"
        ds.save_as(f)
    volume = read_dicom_series(tmp_path / "ct")
    np.testing.assert_array_equal(volume.array, stored.astype(np.int32) * 2 - 1024)


def test_implicit_vr_series_reads_the_same(tmp_path):
    source = make_ct(shape=(4, 16, 18))
    for path in write_shuffled(source, tmp_path / "ct"):
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        ds.save_as(path, implicit_vr=True, little_endian=True)
    volume = read_dicom_series(tmp_path / "ct")
    np.testing.assert_array_equal(volume.array, source.array)
    assert_same_as_simpleitk(volume, tmp_path / "ct")


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "explicit_VR-UN.dcm", "693_J2KI.dcm", "693_J2KR.dcm", "693_UNCI.dcm"]
)
def test_real_ct_files_from_pydicom_data_read_like_simpleitk(tmp_path, name):
    from pydicom.data import get_testdata_file

    src = get_testdata_file(name)
    if src is None:
        pytest.skip(f"{name} not available in pydicom-data")
    folder = tmp_path / "ct"
    folder.mkdir()
    shutil.copy(src, folder / name)
    volume = load_ct(folder / name)
    array, affine = read_with_simpleitk(folder)
    np.testing.assert_array_equal(volume.array, array.astype(np.int16))
    # SimpleITK gives a single slice 1 mm (or SliceThickness) depth; compare in-plane geometry.
    np.testing.assert_allclose(volume.affine[:, [0, 1, 3]], affine[:, [0, 1, 3]], atol=1e-3)


def test_folder_with_several_series_reads_the_largest_ct_unless_asked(tmp_path):
    small = make_ct(shape=(5, 16, 16), seed=3)
    large = make_ct(shape=(12, 16, 16), seed=4)
    write_ct_series(small, tmp_path / "a", series_description="PRE LIVER", series_number=2)
    write_ct_series(large, tmp_path / "b", series_description="PORTAL VENOUS", series_number=3)
    (tmp_path / "notes.txt").write_text("not dicom")

    found = discover_series(tmp_path)
    assert [s.n_slices for s in found] == [12, 5]
    assert [s.phase for s in found] == ["portal venous", "non-contrast"]

    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, large.array)
    assert any("other series" in w for w in volume.meta["warnings"])

    (note,) = [w for w in volume.meta["warnings"] if "other series" in w]
    assert note.startswith("read CT #3 'PORTAL VENOUS' (12 slices: the most slices); 1 other")

    chosen = read_dicom_series(tmp_path, series_uid=found[1].uid)
    np.testing.assert_array_equal(chosen.array, small.array)

    # one file given: its series is read, and said so (it read "the one its DICOM SEG
    # references" with no SEG anywhere)
    both = tmp_path / "both"
    names = [f"a{i}.dcm" for i in range(5)]
    write_ct_series(small, both, series_description="PRE", series_number=2, file_names=names)
    write_ct_series(large, both, series_description="PORTAL VENOUS", series_number=3)
    one = both / names[2]
    by_file = read_dicom_series(one)
    np.testing.assert_array_equal(by_file.array, small.array)
    (note,) = [w for w in by_file.meta["warnings"] if "other series" in w]
    assert f"(5 slices: the one holding {one.name})" in note and "SEG" not in note

    with pytest.raises(InputError, match="no series with UID 1.2.3"):
        read_dicom_series(tmp_path, series_uid="1.2.3")


def test_an_axial_original_series_is_read_before_a_reformat_with_more_slices(tmp_path):
    """A coronal reformat (or a derived recon) beside the axial series was read for having
    more slices, and only the series not read was named."""
    axial = make_ct(shape=(8, 20, 20), seed=3)
    coronal = make_ct(
        shape=(20, 8, 20), seed=4, direction=np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
    )
    write_ct_series(axial, tmp_path / "a", series_description="ABDOMEN", series_number=2)
    write_ct_series(coronal, tmp_path / "c", series_description="COR MPR", series_number=5)
    found = {s.series_number: s for s in discover_series(tmp_path)}
    assert found[2].plane == "axial" and found[5].plane == "coronal"
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, axial.array)
    assert any(
        w.startswith("read CT #2 'ABDOMEN' (8 slices: axial slices, preferred to a reformat")
        for w in volume.meta["warnings"]
    )
    # an original axial series before a derived axial one with more slices
    derived = make_ct(shape=(16, 20, 20), seed=5)
    paths = write_ct_series(derived, tmp_path / "d", series_description="THIN", series_number=7)
    _edit_all(paths, lambda ds: setattr(ds, "ImageType", ["DERIVED", "SECONDARY", "AXIAL"]))
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, axial.array)
    assert any(
        "original images, preferred to a derived series" in w for w in volume.meta["warnings"]
    )
    # asked for by UID, a reformat is read
    chosen = read_dicom_series(tmp_path, series_uid=found[5].uid)
    np.testing.assert_array_equal(chosen.array, coronal.array)


def test_a_scan_is_read_before_masks_stored_as_ct_series_in_folders_named_so(tmp_path):
    """3D-IRCADb: PATIENT_DICOM/ beside MASKS_DICOM/liver/ etc., CT series of as many slices
    with no description; the first found, a mask of 0 and 255, was read as the scan."""
    ct = make_ct(shape=(8, 20, 20), seed=3)
    mask = ct.with_array(np.where(ct.array > 0, 255, 0).astype(np.int16))
    write_ct_series(mask, tmp_path / "MASKS_DICOM" / "liver", series_description="")
    write_ct_series(ct, tmp_path / "PATIENT_DICOM", series_description="")
    # (and its LABELLED_DICOM: every organ's label as a CT series, first in the folder)
    write_ct_series(mask, tmp_path / "LABELLED_DICOM", series_description="")
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, ct.array)
    said = " ".join(volume.meta["warnings"])
    assert f"read CT #1 in {tmp_path.name}/PATIENT_DICOM (8 slices: a scan, preferred" in said
    assert "preferred to series in folders named as masks (" in said
    assert f"(MASKS_DICOM/liver, {tmp_path.name}/LABELLED_DICOM)" in said
    # the series are told apart by their folders where they have no description
    assert "CT #1 '' in MASKS_DICOM/liver: 8 slice(s)" in said


def test_a_monitoring_series_is_never_preferred_to_a_scan(tmp_path):
    """Bolus tracking: 12 images at one table position, original, beside a derived axial
    series of 10 slices. The monitoring series was read (and could not be stacked)."""
    scan = make_ct(shape=(10, 16, 16), seed=7)
    _edit_all(
        write_ct_series(scan, tmp_path / "scan", series_description="LIVER", series_number=4),
        lambda ds: setattr(ds, "ImageType", ["DERIVED", "PRIMARY", "AXIAL"]),
    )
    paths = write_ct_series(make_ct(shape=(12, 16, 16), seed=8), tmp_path / "bolus",
                            series_description="Monitoring", series_number=1)  # fmt: skip
    _edit_all(paths, lambda ds: setattr(ds, "ImagePositionPatient", [-120.5, 33.25, -410.0]))
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, scan.array)
    assert any("preferred to a series of images at under 5 positions" in w
               for w in volume.meta["warnings"])  # fmt: skip


def test_two_phases_stacked_in_one_series_are_split_by_acquisition(tmp_path):
    arterial = make_ct(shape=(6, 16, 16), seed=5)
    venous = make_ct(shape=(6, 16, 16), seed=6)
    common = {
        "series_uid": "1.2.826.0.1.3680043.8.498.1",
        "study_uid": "1.2.826.0.1.3680043.8.498.2",
    }
    write_ct_series(arterial, tmp_path, acquisition_number=1, **common,
                    file_names=[f"a{i}.dcm" for i in range(6)])  # fmt: skip
    write_ct_series(venous, tmp_path, acquisition_number=2, instance_number_start=7, **common,
                    file_names=[f"v{i}.dcm" for i in range(6)])  # fmt: skip
    found = discover_series(tmp_path)
    assert sorted(s.acquisition for s in found) == [1, 2]

    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, venous.array)  # the later phase
    assert any("stacks 2 acquisitions" in w for w in volume.meta["warnings"])
    first = read_dicom_series(tmp_path, acquisition=1)
    np.testing.assert_array_equal(first.array, arterial.array)


@pytest.mark.parametrize(
    ("venous_z_shift", "stacked"),
    [
        (0.6, True),  # the second phase reconstructed 0.6 mm off the first one's positions
        (4 * 2.5, True),  # partly covering each other (2 of 6 positions shared)
        (6 * 2.5, False),  # consecutive chunks of one scan: one volume, nothing to split
    ],
)
def test_acquisitions_imaging_the_same_stretch_are_split_and_chunks_are_not(
    tmp_path, venous_z_shift, stacked
):
    import dataclasses

    arterial = make_ct(shape=(6, 16, 16), seed=5)
    venous = make_ct(shape=(6, 16, 16), seed=6)
    x, y, z = venous.origin
    venous = dataclasses.replace(venous, origin=(x, y, z + venous_z_shift))
    common = {"series_uid": "1.2.826.0.1.3680043.8.498.1"}
    write_ct_series(arterial, tmp_path, acquisition_number=1, **common,
                    file_names=[f"a{i}.dcm" for i in range(6)])  # fmt: skip
    write_ct_series(venous, tmp_path, acquisition_number=2, instance_number_start=7, **common,
                    file_names=[f"v{i}.dcm" for i in range(6)])  # fmt: skip
    volume = read_dicom_series(tmp_path)
    if stacked:
        assert sorted(s.acquisition for s in discover_series(tmp_path)) == [1, 2]
        np.testing.assert_array_equal(volume.array, venous.array)
        assert any("stacks 2 acquisitions" in w for w in volume.meta["warnings"])
    else:
        assert volume.shape == (12, 16, 16)
        np.testing.assert_array_equal(volume.array[:6], arterial.array)
        np.testing.assert_array_equal(volume.array[6:], venous.array)


def _parts_of_a_scan(folder, parts, n_slices=20):
    """Acquisitions 1, 2 ... of one series, each ``n_slices`` slices of 2.5 mm (16 × 16 pixels,
    ``make_ct(seed=40 + k)``), acquisition k starting ``parts[k]`` slices along from the first
    one's start (18 × 2.5 mm after a 20-slice part: 2 slices overlap), InstanceNumbers
    numbered on. Returns their volumes."""
    import dataclasses

    volumes = []
    for k, start in enumerate(parts):
        volume = make_ct(shape=(n_slices, 16, 16), seed=40 + k)
        x, y, z = volume.origin
        volume = dataclasses.replace(volume, origin=(x, y, z + 2.5 * start))
        volumes.append(volume)
        write_ct_series(volume, folder, series_uid="1.2.826.0.1.3680043.8.498.64",
                        acquisition_number=k + 1, instance_number_start=1 + n_slices * k,
                        file_names=[f"part{k + 1}_{i:02d}.dcm" for i in range(n_slices)])  # fmt: skip
    return volumes


@pytest.mark.parametrize(
    ("parts", "seam"),
    [
        ((0, 18), 2),  # a chest and an abdomen part, 2 slices overlapping
        ((0, 19), 1),
        ((0, 17), 3),
        ((0, 18.5), 1),  # the parts' grids not lined up: 1 chest slice within the abdomen's
        ((0, 18, 36), 2),  # chest, abdomen, pelvis
    ],
    ids=["seam of 2", "seam of 1", "seam of 3", "seam off the grid", "three parts"],
)
def test_parts_of_one_scan_overlapping_at_a_seam_are_one_volume(tmp_path, parts, seam):
    """A chest and an abdomen acquisition of one series overlapping by a slice or a few at their
    seam (common on real scanners) were taken for stacked phases, as any overlap over half a
    slice was: "stacks 2 acquisitions over the same stretch", and only one part of the body
    read (the abdomen, or the chest). An overlap that is a small share of the parts either side
    of it is a seam: one volume, the later part's slices read there (the higher
    InstanceNumbers, as of any repeated position) and the earlier one's left out, said; the
    series listed once, with the slices the load stacks."""
    from pathlib import Path

    from napari_livertumor.io.dicom import proposed_series

    volumes = _parts_of_a_scan(tmp_path, parts)
    found = discover_series(tmp_path)
    assert [(s.acquisition, s.acquisition_label) for s in found] == [(None, "")]
    volume = read_dicom_series(tmp_path)
    expected = np.concatenate(
        [v.array[: 20 - seam] for v in volumes[:-1]] + [volumes[-1].array], axis=0
    )
    np.testing.assert_array_equal(volume.array, expected)
    assert found[0].n_slices == volume.shape[0] == 20 * len(parts) - seam * (len(parts) - 1)
    assert (
        f"(+{seam * (len(parts) - 1)} overlapping slice(s) of two parts of the scan left out)"
        in (found[0].summary())
    )
    warnings = " ".join(volume.meta["warnings"])
    assert "stacks" not in warnings, warnings
    assert "overlapping at their seams" in warnings, warnings
    assert f"{seam} of AcquisitionNumber 1, where AcquisitionNumber 2 overlaps it" in warnings
    assert proposed_series(found) == (found[0], "")
    left = {f"part1_{i:02d}.dcm" for i in range(20 - seam, 20)}
    assert left <= {Path(p).name for p in volume.meta["unused_files"]}


def test_step_and_shoot_chunks_of_two_parts_overlapping_at_a_seam_are_one_volume(tmp_path):
    """A chest part in step-and-shoot chunks (acq 1-5, 4 slices each) and an abdomen part
    (acq 6-10) overlapping it by 2 slices (QA adv61b W): the chunks at the seam overlap by half
    of each, and the series was split into 10 acquisitions, one 4-slice chunk read. Measured
    against the parts either side of the seam (20 slices each), it is one: one volume."""
    volumes = _parts_of_a_scan(tmp_path, (0, 18))
    for k, path in enumerate(
        sorted(tmp_path.glob("part1_*.dcm")) + sorted(tmp_path.glob("part2_*.dcm"))
    ):
        _edit_all([path], lambda ds, k=k: setattr(ds, "AcquisitionNumber", 1 + k // 4))
    assert [s.acquisition for s in discover_series(tmp_path)] == [None]
    volume = read_dicom_series(tmp_path)
    expected = np.concatenate([volumes[0].array[:18], volumes[1].array], axis=0)
    np.testing.assert_array_equal(volume.array, expected)
    assert "2 of AcquisitionNumber 5, where AcquisitionNumber 6 overlaps it" in " ".join(
        volume.meta["warnings"]
    )


@pytest.mark.parametrize("asked", [1, 2, "2"], ids=["1", "2", "'2' (the CLI's)"])
def test_an_acquisition_of_parts_joined_at_a_seam_is_read_alone_when_asked(tmp_path, asked):
    """The join of parts at a seam is a heuristic: an acquisition asked for (acquisition=1,
    --acquisition 1) is read alone, its own slices at the seam kept, and said; it was refused
    as "has no acquisition number 1 (it stacks no acquisitions ...)" (QA today64 A)."""
    from napari_livertumor.io.dicom import series_read

    volumes = _parts_of_a_scan(tmp_path, (0, 18))
    number = int(asked)
    volume = read_dicom_series(tmp_path, acquisition=asked)
    np.testing.assert_array_equal(volume.array, volumes[number - 1].array)
    assert volume.meta["acquisition_number"] == number
    warnings = " ".join(volume.meta["warnings"])
    assert f"read AcquisitionNumber {number} alone, as asked" in warnings, warnings
    assert "joins AcquisitionNumbers 1 and 2 into one volume" in warnings
    assert "overlapping at their seams" not in warnings and "stacks" not in warnings
    info = series_read(tmp_path, acquisition=asked)
    assert (info.acquisition, info.n_slices) == (number, 20)
    # one it does not have is still refused, as before
    with pytest.raises(InputError, match="has no acquisition number 3"):
        read_dicom_series(tmp_path, acquisition=3)
    # and unasked, one volume
    assert read_dicom_series(tmp_path).shape[0] == 38


def test_an_acquisition_a_joined_series_lacks_is_refused_naming_its_parts(tmp_path):
    """Of a series joining acquisitions 1 and 2 at a seam (each read alone when asked), a
    number it does not have was refused as "(it stacks no acquisitions: leave the acquisition
    out)", as if none could be chosen (QA rev65): the parts that can be are named."""
    _parts_of_a_scan(tmp_path, (0, 18))
    with pytest.raises(InputError) as refused:
        read_dicom_series(tmp_path, acquisition=3)
    said = refused.value.problem
    assert "has no acquisition number 3" in said, said
    assert "it joins AcquisitionNumbers 1 and 2 into one volume" in said, said
    assert "give one of them to read that part alone" in said
    assert "leave the acquisition out to read it whole" in said
    assert "stacks no acquisitions" not in said


def test_an_ordinary_series_reads_its_only_acquisition_number_when_asked(tmp_path):
    """Every slice AcquisitionNumber 1 (an ordinary series): acquisition=1 (--acquisition 1,
    the number read off its headers) was refused as "has no acquisition number 1" (QA rev65).
    It reads the series whole, as unasked (the same volume: no acquisition of its own in its
    meta, as the Load panel reads it); another number is refused naming the one it has."""
    from napari_livertumor.io.dicom import series_read

    volume = make_ct(shape=(8, 16, 16), seed=3)
    write_ct_series(volume, tmp_path / "s", acquisition_number=1)
    whole = read_dicom_series(tmp_path / "s")
    for asked in (1, "1"):
        read = read_dicom_series(tmp_path / "s", acquisition=asked)
        np.testing.assert_array_equal(read.array, volume.array)
        assert read.meta["acquisition_number"] is None and read.meta["acquisition_label"] == ""
        assert read.meta["warnings"] == whole.meta["warnings"]
        assert series_read(tmp_path / "s", acquisition=asked).n_slices == 8
    with pytest.raises(InputError) as refused:
        read_dicom_series(tmp_path / "s", acquisition=2)
    said = refused.value.problem
    assert "has no acquisition number 2 (its only AcquisitionNumber is 1: give it" in said, said
    assert series_read(tmp_path / "s", acquisition=2) is None
    # slices carrying no AcquisitionNumber: none to choose, as before
    _edit_all((tmp_path / "s").glob("*.dcm"), lambda ds: delattr(ds, "AcquisitionNumber"))
    with pytest.raises(InputError, match=r"has no acquisition number 1 \(it stacks no acq"):
        read_dicom_series(tmp_path / "s", acquisition=1)


def test_parts_naming_different_phases_are_not_joined_at_a_seam(tmp_path):
    """A portal venous abdomen and a delayed pass over a lower stretch, overlapping by 4 of its
    slices, minutes apart, were joined as parts of one scan: one volume labelled portal venous
    (QA today64 B). Phases named and differing keep them apart: stacked acquisitions, the one
    with the most slices read; the same parts naming one phase (or none) are still joined."""
    volumes = _parts_of_a_scan(tmp_path, (0, 16))
    for k, phase in ((1, "PORTAL VENOUS"), (2, "DELAYED")):
        _edit_all(
            tmp_path.glob(f"part{k}_*.dcm"),
            lambda ds, phase=phase: setattr(ds, "ImageComments", f"phase: {phase}"),
        )
    found = discover_series(tmp_path)
    assert sorted((s.acquisition, s.phase) for s in found) == [
        (1, "portal venous"),
        (2, "delayed"),
    ]
    volume = read_dicom_series(tmp_path, acquisition=2)
    np.testing.assert_array_equal(volume.array, volumes[1].array)
    assert volume.meta["phase"] == "delayed"
    _edit_all(tmp_path.glob("part2_*.dcm"), lambda ds: setattr(ds, "ImageComments", "PV"))
    assert [s.acquisition for s in discover_series(tmp_path)] == [None]


@pytest.mark.parametrize(
    ("parts", "n_slices"),
    [
        ((0, 3), (20, 20)),  # a phase shifted by 3 slices
        ((0, 6), (20, 8)),  # an arterial liver-only pass within a portal venous abdomen
        ((0, 14), (20, 20)),  # overlapping by 6 of 20: more than a seam
    ],
    ids=["shifted", "liver-only within", "overlapping by 6 of 20"],
)
def test_phases_over_one_stretch_stay_stacked_beside_seams(tmp_path, parts, n_slices):
    """What a seam is not: a phase shifted by a few slices, a liver-only pass wholly within the
    abdomen's stretch, parts overlapping by 6 of 20 slices: stacked acquisitions, each listed,
    the one with the most slices read (the later where alike), as before."""
    import dataclasses

    volumes = []
    for k, (start, n) in enumerate(zip(parts, n_slices, strict=True)):
        volume = make_ct(shape=(n, 16, 16), seed=50 + k)
        x, y, z = volume.origin
        volume = dataclasses.replace(volume, origin=(x, y, z + 2.5 * start))
        volumes.append(volume)
        write_ct_series(volume, tmp_path, series_uid="1.2.826.0.1.3680043.8.498.65",
                        acquisition_number=k + 1, instance_number_start=1 + 20 * k,
                        file_names=[f"acq{k + 1}_{i:02d}.dcm" for i in range(n)])  # fmt: skip
    assert sorted(s.acquisition for s in discover_series(tmp_path)) == [1, 2]
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[1 if n_slices[1] == 20 else 0].array)
    assert any("stacks 2 acquisitions" in w for w in volume.meta["warnings"])


def test_a_slice_reacquired_beside_parts_joined_at_a_seam_leaves_the_seam_trimmed(tmp_path):
    """A chest and an abdomen part off each other's grid (a seam of 1 slice) and one chest
    slice re-acquired under AcquisitionNumber 3 (QA rev65 A): the split folded the slice into
    the chest part and joined the series, but the seam was trimmed by raw AcquisitionNumber,
    part 3 lay within part 1, nothing was trimmed and both parts' slices alternated at the
    seam (stacked on a grid of half the step, positions filled in). The seam is trimmed as
    without the slice, which is read as any repeated position is (the higher InstanceNumber)."""
    volumes = _parts_of_a_scan(tmp_path, (0, 18.5))
    ds = pydicom.dcmread(tmp_path / "part1_05.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.AcquisitionNumber, ds.InstanceNumber = 3, 500
    redo = ds.pixel_array.copy()
    redo[:] = 1024 + 77  # stored value -> 77 HU
    ds.PixelData = redo.tobytes()
    ds.save_as(tmp_path / "redo.dcm")
    assert [s.acquisition for s in discover_series(tmp_path)] == [None]
    volume = read_dicom_series(tmp_path)
    expected = np.concatenate([volumes[0].array[:19], volumes[1].array], axis=0)
    expected[5] = 77
    np.testing.assert_array_equal(volume.array, expected)
    warnings = " ".join(volume.meta["warnings"])
    assert "1 of AcquisitionNumber 1, where AcquisitionNumber 2 overlaps it" in warnings
    assert "filled" not in warnings, warnings
    assert "repeated an existing position" in warnings
    assert "there the part with the higher InstanceNumbers was read" in warnings


@pytest.mark.parametrize("start", [24, 14], ids=["within the abdomen", "across the seam"])
def test_parts_joined_at_a_seam_beside_a_pass_within_them(tmp_path, start):
    """A chest and an abdomen part overlapping at a seam and an arterial liver pass within
    their stretch (QA rev65 B) were read as "stacks 3 acquisitions over the same stretch", the
    abdomen read and the chest dropped. The parts are joined into one volume, read unasked
    (the whole scan), the pass stacked beside it: listed as its own row, read when asked
    (``acquisition=3``); the joined parts are asked for as "1+2", their row's label, and a
    part alone by its number, as of any parts joined."""
    import dataclasses

    from napari_livertumor.commands import acquisition_arg
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    volumes = _parts_of_a_scan(tmp_path, (0, 18))
    arterial = make_ct(shape=(8, 16, 16), seed=60)
    x, y, z = arterial.origin
    arterial = dataclasses.replace(arterial, origin=(x, y, z + 2.5 * start))
    write_ct_series(arterial, tmp_path, series_uid="1.2.826.0.1.3680043.8.498.64",
                    acquisition_number=3, instance_number_start=100,
                    file_names=[f"art_{i:02d}.dcm" for i in range(8)])  # fmt: skip
    found = discover_series(tmp_path)
    assert [(s.acquisition, s.acquisition_label, s.n_slices) for s in found] == [
        (None, "acq 1+2", 38),
        (3, "acq 3", 8),
    ]
    whole = np.concatenate([volumes[0].array[:18], volumes[1].array], axis=0)
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, whole)
    note = volume.meta["passes_warning"]
    assert "joins AcquisitionNumbers 1 and 2 into one volume" in note, note
    assert "stacks acquisition 3 within their stretch" in note
    assert "over the same stretch" not in note
    # the Load panel's line names the pass too ("stacks 1 within them" read as acquisition 1)
    line = volume.meta["passes_line"]
    assert "joins acquisitions 1 and 2 and stacks acquisition 3 within their stretch" in line
    assert "read AcquisitionNumbers 1 and 2 joined (38 slices; the whole scan" in note
    assert "give --acquisition 3" in note
    assert "overlapping at their seams" in " ".join(volume.meta["warnings"])
    assert proposed_series(found)[0] is found[0]
    assert passes_brief(found[0], found).startswith("acquisitions 1 and 2 joined, the whole")
    asked = read_dicom_series(tmp_path, acquisition=3)
    np.testing.assert_array_equal(asked.array, arterial.array)
    assert (
        "read AcquisitionNumber 3 (8 slices; the one chosen), not 1 and 2 joined"
        in (asked.meta["passes_warning"])
    )
    assert "give --acquisition 1+2" in asked.meta["passes_warning"]
    joined = read_dicom_series(tmp_path, acquisition=acquisition_arg(" 1 + 2 "))
    np.testing.assert_array_equal(joined.array, whole)
    assert joined.meta["acquisition_label"] == "acq 1+2"
    alone = read_dicom_series(tmp_path, acquisition=1)
    np.testing.assert_array_equal(alone.array, volumes[0].array)
    assert "joins AcquisitionNumbers 1 and 2 into one volume" in " ".join(alone.meta["warnings"])
    with pytest.raises(InputError, match=r"no acquisition number 4 \(its stacked acq"):
        read_dicom_series(tmp_path, acquisition=4)
    with pytest.raises(InputError, match="joins no AcquisitionNumbers 1 and 3"):
        read_dicom_series(tmp_path, acquisition="1+3")


def _a_pass(folder, start, n_slices=8, *, acquisition=3, step=2.5, seed=60):
    """A pass of ``n_slices`` slices ``step`` mm apart under ``acquisition`` in the series of
    :func:`_parts_of_a_scan`, starting ``start`` of its 2.5 mm slices along (InstanceNumbers
    from 100, files art_NN.dcm). Returns its volume."""
    import dataclasses

    volume = make_ct(shape=(n_slices, 16, 16), seed=seed, spacing=(step, 0.71, 0.78))
    x, y, z = volume.origin
    volume = dataclasses.replace(volume, origin=(x, y, z + 2.5 * start))
    write_ct_series(volume, folder, series_uid="1.2.826.0.1.3680043.8.498.64",
                    acquisition_number=acquisition, instance_number_start=100,
                    file_names=[f"art_{i:02d}.dcm" for i in range(n_slices)])  # fmt: skip
    return volume


def test_parts_joined_at_a_seam_beside_a_pass_level_with_the_scans_start(tmp_path):
    """A pass starting at the scan's first slice lies within the joined parts' stretch (its
    end level with theirs, within the tolerance): still joined, the pass its own row."""
    volumes = _parts_of_a_scan(tmp_path, (0, 18))
    _a_pass(tmp_path, 0)
    found = discover_series(tmp_path)
    assert [(s.acquisition, s.acquisition_label, s.n_slices) for s in found] == [
        (None, "acq 1+2", 38),
        (3, "acq 3", 8),
    ]
    volume = read_dicom_series(tmp_path)
    whole = np.concatenate([volumes[0].array[:18], volumes[1].array], axis=0)
    np.testing.assert_array_equal(volume.array, whole)


def test_parts_joined_at_a_seam_beside_a_thin_pass_of_more_slices_read_whole(tmp_path):
    """A 1 mm pass of 42 slices within the joined parts' stretch (more slices than their 38):
    the whole scan is still read unasked, not the pass with the most slices."""
    volumes = _parts_of_a_scan(tmp_path, (0, 18))
    _a_pass(tmp_path, 20, 42, step=1.0)
    found = discover_series(tmp_path)
    assert sorted((s.acquisition or 0, s.acquisition_label, s.n_slices) for s in found) == [
        (0, "acq 1+2", 38),
        (3, "acq 3, slice thickness 1 mm", 42),
    ]
    volume = read_dicom_series(tmp_path)
    assert volume.meta["acquisition_label"] == "acq 1+2"
    whole = np.concatenate([volumes[0].array[:18], volumes[1].array], axis=0)
    np.testing.assert_array_equal(volume.array, whole)


@pytest.mark.parametrize(
    ("parts", "phases", "start"),
    [
        ((0, 18), ("ARTERIAL", "PORTAL VENOUS"), 24),
        ((0, 14), (None, None), 20),
    ],
    ids=["parts of different phases", "parts overlapping by 6 of 20"],
)
def test_parts_that_are_no_seam_beside_a_pass_stay_stacked(tmp_path, parts, phases, start):
    """Beside a pass within their stretch, parts naming different phases, or overlapping by 6
    of their 20 slices (no seam), are not joined: three stacked acquisitions, as without it."""
    import dataclasses

    for k, (at, phase) in enumerate(zip(parts, phases, strict=True)):
        volume = make_ct(shape=(20, 16, 16), seed=40 + k)
        x, y, z = volume.origin
        volume = dataclasses.replace(volume, origin=(x, y, z + 2.5 * at))
        write_ct_series(volume, tmp_path, series_uid="1.2.826.0.1.3680043.8.498.64",
                        acquisition_number=k + 1, instance_number_start=1 + 20 * k,
                        contrast_phase=phase,
                        file_names=[f"part{k + 1}_{i:02d}.dcm" for i in range(20)])  # fmt: skip
    _a_pass(tmp_path, start)
    found = discover_series(tmp_path)
    assert sorted((s.acquisition, s.acquisition_label) for s in found) == [
        (1, "acq 1"),
        (2, "acq 2"),
        (3, "acq 3"),
    ]
    volume = read_dicom_series(tmp_path)
    assert volume.shape[0] == 20
    assert "stacks 3 acquisitions over the same stretch" in volume.meta["passes_warning"]


def test_two_slices_reacquired_beside_parts_joined_at_a_seam(tmp_path):
    """Two chest slices re-acquired under AcquisitionNumber 3 (InstanceNumbers 500, 501)
    beside parts joined at a seam off each other's grid: folded into the chest part, one row,
    read as 39 slices, the re-acquired ones read at their positions."""
    volumes = _parts_of_a_scan(tmp_path, (0, 18.5))
    for n, k in enumerate((5, 6)):
        ds = pydicom.dcmread(tmp_path / f"part1_{k:02d}.dcm")
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.AcquisitionNumber, ds.InstanceNumber = 3, 500 + n
        redo = ds.pixel_array.copy()
        redo[:] = 1024 + 70 + n  # stored value -> 70, 71 HU
        ds.PixelData = redo.tobytes()
        ds.save_as(tmp_path / f"redo{k}.dcm")
    found = discover_series(tmp_path)
    assert [(s.acquisition, s.acquisition_label, s.n_slices) for s in found] == [(None, "", 41)]
    volume = read_dicom_series(tmp_path)
    expected = np.concatenate([volumes[0].array[:19], volumes[1].array], axis=0)
    expected[5], expected[6] = 70, 71
    np.testing.assert_array_equal(volume.array, expected)
    warnings = " ".join(volume.meta["warnings"])
    assert "there the part with the higher InstanceNumbers was read" in warnings, warnings
    assert "1 of AcquisitionNumber 1, where AcquisitionNumber 2 overlaps it" in warnings
    assert "2 slice(s) repeated an existing position" in warnings


def test_parts_joined_beside_a_pass_are_read_by_their_label_in_any_order(tmp_path):
    """The joined parts are asked for by their numbers in any order ("2+1") or by their row's
    label ("acq 1+2"); a number the series lacks is refused naming the rows it has, and parts
    it does not join are refused naming the series."""
    volumes = _parts_of_a_scan(tmp_path, (0, 18))
    _a_pass(tmp_path, 24)
    whole = np.concatenate([volumes[0].array[:18], volumes[1].array], axis=0)
    for asked in ("2+1", "acq 1+2"):
        volume = read_dicom_series(tmp_path, acquisition=asked)
        np.testing.assert_array_equal(volume.array, whole)
        assert volume.meta["acquisition_label"] == "acq 1+2"
    with pytest.raises(InputError) as refused:
        read_dicom_series(tmp_path, acquisition=4)
    assert "has no acquisition number 4 (its stacked acquisitions: 3, 1+2)" in (
        refused.value.problem
    )
    with pytest.raises(InputError) as refused:
        read_dicom_series(tmp_path, acquisition="1+2+3")
    assert "series 1.2.826.0.1.3680043.8.498.64 joins no AcquisitionNumbers 1, 2 and 3" in (
        refused.value.problem
    )


def test_a_pass_with_no_acquisition_number_is_not_said_as_acquisition_0(tmp_path):
    """A pass whose slices carry no AcquisitionNumber beside parts 1 and 2 was listed as
    "not 0, 1" (QA mut65 A): said as the slices with no AcquisitionNumber."""
    _parts_of_a_scan(tmp_path, (0, 18))
    _a_pass(tmp_path, 24)
    _edit_all(tmp_path.glob("art_*.dcm"), lambda ds: delattr(ds, "AcquisitionNumber"))
    volume = read_dicom_series(tmp_path)
    note = volume.meta["passes_warning"]
    assert "not 1 or the slices with no AcquisitionNumber" in note, note
    assert "0" not in note.split("not ", 1)[1]


def _unnumbered_beside(folder, passes):
    """:func:`_numbered_passes`, the passes whose AcquisitionNumber is given as None written
    without one (removed from some of a series' slices). Returns the passes' volumes."""
    volumes = _numbered_passes(folder, [(acq or 99, kernel, when) for acq, kernel, when in passes])
    for k, (acq, _, _) in enumerate(passes):
        if acq is None:
            _edit_all(folder.glob(f"a{k}_*.dcm"), lambda ds: delattr(ds, "AcquisitionNumber"))
    return volumes


def test_slices_with_no_acquisition_number_beside_numbered_ones_are_a_row_read_as_none(tmp_path):
    """Slices with no AcquisitionNumber stacked at the positions of AcquisitionNumber 1 were
    split into passes with the numbered slices (acq 1 listed twice, as "acq 1" and "pass 1"),
    and beside numbered ones at other positions listed as "acq None" with no way to read them
    (the Load panel's row read the default). One row, "acq none", read by
    ``acquisition="none"`` (``--acquisition none``); a series without such slices refuses it
    naming what it stacks, and a series none of whose slices has one reads whole."""
    from napari_livertumor.commands import acquisition_arg

    volumes = _unnumbered_beside(tmp_path, [(1, "B30f", ""), (None, "B30f", "")])
    found = discover_series(tmp_path)
    assert sorted((s.acquisition or 0, s.acquisition_label, s.n_slices) for s in found) == [
        (0, "acq none", 6),
        (1, "acq 1", 6),
    ]
    for asked in ("none", " Acq None ", acquisition_arg("none"), acquisition_arg("acq none")):
        volume = read_dicom_series(tmp_path, acquisition=asked)
        np.testing.assert_array_equal(volume.array, volumes[1].array)
        assert volume.meta["acquisition_label"] == "acq none"
        assert volume.meta["acquisition_number"] is None
        assert (
            "read the slices with no AcquisitionNumber (6 slices; the one chosen)"
            in (volume.meta["passes_warning"])
        )
    np.testing.assert_array_equal(read_dicom_series(tmp_path, acquisition=1).array,
                                  volumes[0].array)  # fmt: skip
    numbered = tmp_path / "numbered"
    _numbered_passes(numbered, [(1, "B30f", ""), (2, "B30f", "")])
    with pytest.raises(InputError) as refused:
        read_dicom_series(numbered, acquisition="none")
    assert "has no slices with no AcquisitionNumber to read apart (its stacked acquisitions: " \
        "1, 2)" in refused.value.problem  # fmt: skip
    plain = tmp_path / "plain"
    write_ct_series(make_ct(shape=(6, 16, 16)), plain)
    _edit_all(plain.glob("*.dcm"), lambda ds: delattr(ds, "AcquisitionNumber"))
    assert read_dicom_series(plain, acquisition="none").shape[0] == 6


def test_passes_among_slices_with_no_acquisition_number_beside_a_numbered_one(tmp_path):
    """Two passes with no AcquisitionNumber (B30f, B70f) beside acq 1 at the same positions:
    split with acq 1's slices into passes 1-3 beside "acq 1" (listed twice). Numbered as an
    acquisition holding two reconstructions is, each row its own slices."""
    volumes = _unnumbered_beside(
        tmp_path, [(1, "B30f", ""), (None, "B30f", ""), (None, "B70f", "")]
    )
    found = discover_series(tmp_path)
    assert sorted((s.acquisition, s.acquisition_label) for s in found) == [
        (1, "pass 1, acq 1, kernel B30f"),
        (2, "pass 2, kernel B30f"),
        (3, "pass 3, kernel B70f"),
    ]
    note = read_dicom_series(tmp_path).meta["passes_warning"]
    assert (
        "stacks 3 passes over the same stretch, some of them with no AcquisitionNumber; told "
        "apart by their AcquisitionNumber and, within the slices with no AcquisitionNumber, "
        "their InstanceNumber" in note
    ), note
    for k in (1, 2, 3):
        np.testing.assert_array_equal(
            read_dicom_series(tmp_path, acquisition=k).array, volumes[k - 1].array
        )


def test_reconstruction_differences_name_slices_with_no_acquisition_number_so(tmp_path):
    """Kernels B30f (the slices with no AcquisitionNumber, acq 1) and B70f (acq 2): the
    warning said "kernel B30f (acquisitions 0 and 1)", the Load panel "the smoother kernel's
    acquisitions (0 and 1)"."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    _unnumbered_beside(tmp_path, [(None, "B30f", ""), (1, "B30f", ""), (2, "B70f", "")])
    note = read_dicom_series(tmp_path).meta["passes_warning"]
    assert (
        "kernel B30f (acquisition 1 and the slices with no AcquisitionNumber) vs B70f "
        "(acquisition 2)" in note
    ), note
    assert "the latest of the smoother kernel's acquisitions (1 and the slices with no " in note
    assert not re.search(r"\b(0|None)\b", note), note
    found = discover_series(tmp_path)
    proposed, _ = proposed_series(found)
    assert passes_brief(proposed, found) == (
        "acquisition 1 (kernel B30f), the latest of the smoother kernel's acquisitions (1 and "
        "the slices with no AcquisitionNumber); acquisition 2 is in a sharp kernel (B70f)"
    )


@pytest.mark.parametrize("unnumbered", ["B30f", "B70f"])
def test_a_reconstruction_with_no_acquisition_number_is_not_said_as_none(tmp_path, unnumbered):
    """A B30f and a B70f reconstruction of one scan, one of them with no AcquisitionNumber:
    said as "read AcquisitionNumber None", "not None (kernel B70f)", "--acquisition None",
    "acquisition None is acquisition 1 in a sharper kernel"."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    other = "B70f" if unnumbered == "B30f" else "B30f"
    volumes = _unnumbered_beside(tmp_path, [(1, other, "101500"), (None, unnumbered, "101500")])
    volume = read_dicom_series(tmp_path)
    note = volume.meta["passes_warning"]
    assert "None" not in note and "None" not in volume.meta["passes_line"], note
    found = discover_series(tmp_path)
    brief = passes_brief(proposed_series(found)[0], found)
    if unnumbered == "B30f":  # (read: the smoother kernel)
        np.testing.assert_array_equal(volume.array, volumes[1].array)
        assert "read the slices with no AcquisitionNumber (kernel B30f, 6 slices; the smoother" \
            in note  # fmt: skip
        assert volume.meta["acquisition_label"] == "acq none, kernel B30f"
        assert brief == (
            "the slices with no AcquisitionNumber (kernel B30f), the smoother kernel; "
            "acquisition 1 is the slices with no AcquisitionNumber in a sharper kernel (B70f)"
        )
    else:
        assert "not the slices with no AcquisitionNumber (kernel B70f)" in note, note
        assert note.endswith("or give --acquisition none")
        assert brief.endswith(
            "; the slices with no AcquisitionNumber are acquisition 1 in a sharper kernel (B70f)"
        )
        other = read_dicom_series(tmp_path, acquisition="none")  # (as the warning says)
        np.testing.assert_array_equal(other.array, volumes[1].array)


def test_moments_and_a_later_sharp_kernel_name_slices_with_no_acquisition_number_so(tmp_path):
    """Their times set acq 1 (B70f) and the slices with no AcquisitionNumber (B30f) at one
    moment, acq 2 at a later one: "acquisitions None and 1, reconstructions of one scan";
    a sharp kernel with no AcquisitionNumber scanned later: "though acquisition None is later
    (--acquisition None)"."""
    _unnumbered_beside(
        tmp_path, [(None, "B30f", "101500"), (1, "B70f", "101500"), (2, "B30f", "101600")]
    )
    note = read_dicom_series(tmp_path).meta["passes_warning"]
    assert (
        "contrast phases: acquisition 1 and the slices with no AcquisitionNumber, "
        "reconstructions of one scan that differ in kernel B30f vs B70f; acquisition 2" in note
    ), note
    later = tmp_path / "later"
    _unnumbered_beside(later, [(1, "B30f", "101500"), (None, "B70f", "101600")])
    note = read_dicom_series(later).meta["passes_warning"]
    assert (
        "the smoother kernel, though the slices with no AcquisitionNumber are later "
        "(--acquisition none):" in note
    ), note


def test_segs_on_slices_with_no_acquisition_number_are_not_said_as_acquisition_0(tmp_path):
    """A DICOM SEG on acq 1 and one on the slices with no AcquisitionNumber beside it: "DICOM
    SEGs reference it and acquisition 0 alike", "the acquisitions DICOM SEGs were drawn on
    (0 and 1)"."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series
    from napari_livertumor.io.seg import write_dicom_seg

    _unnumbered_beside(tmp_path, [(None, "B30f", ""), (1, "B30f", "")])
    for asked in ("none", 1):
        drawn_on = read_dicom_series(tmp_path, acquisition=asked)
        labels = np.zeros(drawn_on.shape, np.uint8)
        labels[1:4, 4:10, 4:10] = 1
        write_dicom_seg(labels, drawn_on, tmp_path / f"seg{asked}" / "s.dcm", [(1, "Liver")])
    note = read_dicom_series(tmp_path).meta["passes_warning"]
    assert (
        "read AcquisitionNumber 1 (6 slices; DICOM SEGs reference it and the slices with no "
        "AcquisitionNumber alike; of those" in note
    ), note
    refs: set = set()
    found = discover_series(tmp_path, seg_refs=refs)
    proposed, _ = proposed_series(found, refs)
    assert passes_brief(proposed, found, refs) == (
        "acquisition 1, of the acquisitions DICOM SEGs were drawn on (1 and the slices with no "
        "AcquisitionNumber), most slices, then the latest"
    )


def test_the_load_line_of_parts_joined_beside_two_passes_names_both(tmp_path):
    """The Load panel's line after a load said "stacks 2 within them", a count read as an
    acquisition's number: it names the passes, as the warning does."""
    import dataclasses

    _parts_of_a_scan(tmp_path, (0, 18))
    for acq, start, seed in ((3, 24, 60), (4, 22, 61)):
        arterial = make_ct(shape=(8, 16, 16), seed=seed)
        x, y, z = arterial.origin
        arterial = dataclasses.replace(arterial, origin=(x, y, z + 2.5 * start))
        write_ct_series(arterial, tmp_path, series_uid="1.2.826.0.1.3680043.8.498.64",
                        acquisition_number=acq, instance_number_start=100 * acq,
                        file_names=[f"art{acq}_{i:02d}.dcm" for i in range(8)])  # fmt: skip
    assert [s.acquisition_label for s in discover_series(tmp_path)] == ["acq 1+2", "acq 3", "acq 4"]
    volume = read_dicom_series(tmp_path)
    assert "stacks acquisitions 3 and 4 within their stretch" in volume.meta["passes_warning"]
    line = volume.meta["passes_line"]
    assert "joins acquisitions 1 and 2 and stacks acquisitions 3 and 4 within their stretch" in (
        line
    ), line


@pytest.mark.parametrize("numbers", ["none", "anew"])
def test_the_seam_note_says_the_rule_that_chose_the_part_read(tmp_path, numbers):
    """The seam note said "the part with the higher InstanceNumbers was read" of parts with
    no InstanceNumber (a tie, one kept silently) or numbered from 1 in each acquisition (the
    choice then by count, not by scan order: QA rev65 C). Where their numbers tell no order,
    the part with the later AcquisitionNumber is read at the seam, and said so."""
    volumes = _parts_of_a_scan(tmp_path, (0, 18))
    for k in (1, 2):
        for i, path in enumerate(sorted(tmp_path.glob(f"part{k}_*.dcm"))):
            if numbers == "none":
                _edit_all([path], lambda ds: delattr(ds, "InstanceNumber"))
            else:  # (the earlier part numbered on from a scout: its highest number higher)
                _edit_all(
                    [path], lambda ds, n=i + (5 if k == 1 else 1): setattr(ds, "InstanceNumber", n)
                )
    volume = read_dicom_series(tmp_path)
    expected = np.concatenate([volumes[0].array[:18], volumes[1].array], axis=0)
    np.testing.assert_array_equal(volume.array, expected)
    warnings = " ".join(volume.meta["warnings"])
    assert "higher InstanceNumbers" not in warnings, warnings
    assert "there the part with the later AcquisitionNumber (" in warnings
    said = "no InstanceNumbers are recorded" if numbers == "none" else "InstanceNumbers overlap"
    assert said in warnings
    assert "2 of AcquisitionNumber 1, where AcquisitionNumber 2 overlaps it" in warnings


def test_seams_only_weighs_the_overlap_against_the_parts_either_side():
    """The rule itself: an overlap of at most a fifth of the positions either side of it is a
    seam; one part within another, or a position held by three, is no row of parts."""
    from napari_livertumor.io.dicom import _seams_only

    def part(start, n):
        return [float(start + i) for i in range(n)]

    assert _seams_only([part(0, 20), part(18, 20)])  # 2 of 20
    assert _seams_only([part(18, 20), part(0, 20)])  # (in any order)
    assert _seams_only([part(0, 20), part(16, 20)])  # 4 of 20: a fifth
    assert not _seams_only([part(0, 20), part(15, 20)])  # 5 of 20
    assert not _seams_only([part(0, 6), part(4, 6)])  # 2 of 6 (the test above's "stacked")
    assert not _seams_only([part(0, 40), part(10, 8)])  # within
    assert not _seams_only([part(0, 20), part(0, 10)])  # sharing an end
    assert _seams_only([part(0, 20), part(19, 20), part(38, 20)])
    assert not _seams_only([part(0, 20), part(18, 20), part(19, 20)])  # three at 19
    # a short part at the end of a long one: 2 of its 8 slices are more than a fifth of it
    assert not _seams_only([part(0, 40), part(38, 8)])


def test_repeated_position_keeps_the_higher_instance_number(tmp_path):
    source = make_ct(shape=(6, 16, 16))
    write_ct_series(source, tmp_path)
    ds = pydicom.dcmread(tmp_path / "1-003.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.InstanceNumber = 99
    redo = ds.pixel_array.copy()
    redo[:] = 1024 + 77  # stored value -> 77 HU
    ds.PixelData = redo.tobytes()
    ds.save_as(tmp_path / "1-003-redo.dcm")

    volume = read_dicom_series(tmp_path)
    assert volume.shape == source.shape
    assert (volume.array[2] == 77).all()
    assert any("repeated an existing position" in w for w in volume.meta["warnings"])
    # the copies' pixels differ: said, with the files and image numbers, for a reader to check
    (note,) = [w for w in volume.meta["warnings"] if "different pixels" in w]
    assert note.startswith("1 of the 1 repeated position(s) hold different pixels")
    folder = tmp_path.name  # both named with their folder, as the one read was
    assert f"1-003-redo.dcm, image 99, read, and {folder}/1-003.dcm, image 3, left out" in note
    # identical copies (the same file twice under two names) are no such news
    (tmp_path / "1-003-redo.dcm").unlink()
    ds = pydicom.dcmread(tmp_path / "1-003.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.InstanceNumber = 99
    ds.save_as(tmp_path / "1-003-copy.dcm")
    warnings = read_dicom_series(tmp_path).meta["warnings"]
    assert any("repeated an existing position" in w for w in warnings)
    assert not any("different pixels" in w for w in warnings)


def test_a_slice_reacquired_under_another_acquisition_number_is_a_duplicate_not_a_phase(
    tmp_path,
):
    """The one re-acquired slice made a 'stacked phase' of its own, and the older copy was
    kept: a slice 300 HU off, with a warning about two acquisitions."""
    source = make_ct(shape=(6, 16, 16))
    write_ct_series(source, tmp_path, acquisition_number=1)
    ds = pydicom.dcmread(tmp_path / "1-003.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.InstanceNumber = 99
    ds.AcquisitionNumber = 2
    redo = ds.pixel_array.copy()
    redo[:] = 1024 + 77  # stored value -> 77 HU
    ds.PixelData = redo.tobytes()
    ds.save_as(tmp_path / "1-003-redo.dcm")

    assert len(discover_series(tmp_path)) == 1
    volume = read_dicom_series(tmp_path)
    assert volume.shape == source.shape
    assert (volume.array[2] == 77).all()
    warnings = " ".join(volume.meta["warnings"])
    assert "repeated an existing position" in warnings and "stacks" not in warnings
    assert "copies carry AcquisitionNumbers 1, 2" in warnings


def test_missing_slice_is_reported_and_the_grid_stays_true(tmp_path):
    source = make_ct(shape=(8, 16, 16))
    paths = write_ct_series(source, tmp_path)
    paths[4].unlink()
    volume = read_dicom_series(tmp_path)
    assert volume.shape == source.shape
    assert np.allclose(volume.affine, source.affine, atol=1e-3)
    np.testing.assert_array_equal(
        volume.array[[0, 1, 2, 3, 5, 6, 7]], source.array[[0, 1, 2, 3, 5, 6, 7]]
    )
    assert volume.meta["sop_instance_uids"][4] == ""
    (note,) = [w for w in volume.meta["warnings"] if "missing slice" in w]
    # named by the files and the image numbers a viewer shows, not by a 0-based index
    assert (
        f"1 missing slice(s) detected (1 between {tmp_path.name}/1-004.dcm (image 4) and " in note
    )
    assert "1-006.dcm (image 6))" in note


def test_a_series_missing_more_than_a_tenth_of_its_slices_is_refused(tmp_path):
    """Half a series lost in transfer was filled in by interpolation and its liver and
    lesions reported as figures (642 mL for 1466); a series with as many damaged slices was
    refused. Both now take at most a tenth."""
    source = make_ct(shape=(32, 16, 16))
    paths = write_ct_series(source, tmp_path / "s")
    for p in paths[7:22]:
        p.unlink()
    with pytest.raises(InputError) as info:
        read_dicom_series(tmp_path / "s")
    message = str(info.value)
    assert "15 consecutive slice positions of the series' 32 have no image" in message
    assert "(image 7) and 1-023.dcm (image 23)" in message and "that gap is 40.0 mm wide" in message
    assert "Is the series complete" in message
    # three of 32 in a row are filled in, as before
    paths = write_ct_series(source, tmp_path / "t")
    for p in paths[10:13]:
        p.unlink()
    assert "3 missing slice(s) detected" in " ".join(
        read_dicom_series(tmp_path / "t").meta["warnings"]
    )
    # a series at 2 mm through the middle and 4 mm elsewhere (every other position outside
    # it "missing", 12 of 32 in all, one at a time): read, with the gaps said
    paths = write_ct_series(source, tmp_path / "v")
    for p in [*paths[1:10:2], *paths[23:32:2]]:
        p.unlink()
    volume = read_dicom_series(tmp_path / "v")
    assert volume.shape[0] == 31 and "9 missing slice(s) detected" in " ".join(
        volume.meta["warnings"]
    )  # images lost (their numbers are missing): said as missing, with the files around


def test_a_series_thin_in_the_middle_is_stacked_on_its_thin_step_whichever_steps_are_more(
    tmp_path,
):
    """2.5 mm through the middle, 5 mm elsewhere, with more 5 mm steps than 2.5 mm ones: it
    was stacked at the average step (3.9 mm), slices up to 5 mm from their place and the
    middle's volumes 59 % too large; with more 2.5 mm steps it was exact."""
    source = make_ct(shape=(32, 16, 16))
    paths = write_ct_series(source, tmp_path)
    gone = [*range(1, 12, 2), *range(21, 32, 2)]  # 11 steps of 5 mm, 8 of 2.5 mm
    for i in gone:
        paths[i].unlink()
    kept = [i for i in range(31) if i not in gone]
    for number, i in enumerate(kept, start=1):  # as the scanner numbered them: no image lost
        ds = pydicom.dcmread(paths[i])
        ds.InstanceNumber = number
        ds.save_as(paths[i])
    volume = read_dicom_series(tmp_path)
    assert volume.shape == (31, 16, 16)
    assert volume.spacing[0] == pytest.approx(2.5, abs=1e-4)
    np.testing.assert_allclose(volume.affine, source.affine, atol=1e-3)
    np.testing.assert_array_equal(volume.array[kept], source.array[kept])
    notes = " ".join(volume.meta["warnings"])
    assert "slice spacing changes along the series: 2.5 mm in places, 5 mm elsewhere" in notes
    # where, by the files on either side (the first three of its 11 steps)
    first = f"/{paths[0].name} (image 1) and {paths[2].name} (image 2)"
    assert first in notes and "; and 8 more)" in notes
    assert "non-uniform" not in notes and "missing" not in notes
    # a hole of 20 mm between consecutive image numbers (the series numbered again after images
    # were deleted) is no spacing change: refused as missing images past a tenth
    hole = tmp_path.parent / (tmp_path.name + "_hole")
    paths = write_ct_series(make_ct(shape=(30, 8, 8)), hole)
    for path in paths[10:18]:
        path.unlink()
    for number, path in enumerate([*paths[:10], *paths[18:]], start=1):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = number
        ds.save_as(path)
    with pytest.raises(InputError, match="8 consecutive slice positions"):
        read_dicom_series(hole)
    # one odd short step in a 5 mm series (a join of two ranges) does not double its slices
    odd = tmp_path.parent / (tmp_path.name + "_odd")
    paths = write_ct_series(make_ct(shape=(12, 8, 8), spacing=(5.0, 0.8, 0.8)), odd)
    ds = pydicom.dcmread(paths[-1])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) - 2.5
    ds.save_as(paths[-1])
    volume = read_dicom_series(odd)
    assert volume.shape[0] == 12
    assert "non-uniform slice spacing" in " ".join(volume.meta["warnings"])


def test_two_reconstructions_interleaved_in_one_series_are_warned_of(tmp_path):
    """Thick slices and thin ones of the same SeriesInstanceUID and AcquisitionNumber, offset
    by half a step, were stacked as one volume without a word."""
    source = make_ct(shape=(8, 16, 16), spacing=(5.0, 0.8, 0.8))
    write_ct_series(source, tmp_path, series_uid="1.2.3.9")
    paths = write_ct_series(
        source, tmp_path, series_uid="1.2.3.9", instance_number_start=9,
        file_names=[f"b{i}.dcm" for i in range(8)],
    )  # fmt: skip
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 2.5
        ds.SliceThickness = 2.0
        ds.save_as(path)
    volume = read_dicom_series(tmp_path)
    assert volume.shape[0] == 16
    notes = " ".join(volume.meta["warnings"])
    assert "SliceThickness changes 15 times along the series" in notes
    assert "two reconstructions seem interleaved" in notes
    # thinner through the liver and the pelvis, with transition slices: four changes, no
    # such warning
    thin = tmp_path.parent / (tmp_path.name + "_thin")
    paths = write_ct_series(make_ct(shape=(30, 8, 8)), thin)
    for path, thickness in zip(paths[5:27], [*[1.25] * 8, *[5.0] * 6, *[1.25] * 8], strict=True):
        ds = pydicom.dcmread(path)
        ds.SliceThickness = thickness
        ds.save_as(path)
    assert "interleaved" not in " ".join(read_dicom_series(thin).meta["warnings"])


def test_uneven_spacing_is_reported(tmp_path):
    source = make_ct(shape=(6, 16, 16))
    paths = write_ct_series(source, tmp_path)
    ds = pydicom.dcmread(paths[5])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 0.9
    ds.save_as(paths[5])
    volume = read_dicom_series(tmp_path)
    assert volume.shape == source.shape
    assert any("non-uniform slice spacing" in w for w in volume.meta["warnings"])


def test_uneven_spacing_is_stacked_at_the_average_step_not_the_most_common(tmp_path):
    """Steps alternating 5.6 / 4.4 mm were stacked at 5.6 mm (the commonest): the volume came
    out 12 % too long and every volume measured on it too large."""
    source = make_ct(shape=(9, 16, 16), spacing=(5.0, 0.8, 0.8))
    paths = write_ct_series(source, tmp_path)
    z0 = None
    for i, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        z0 = float(ds.ImagePositionPatient[2]) if z0 is None else z0
        ds.ImagePositionPatient[2] = z0 + 5.0 * i + (0.6 if i % 2 else 0.0)
        ds.save_as(path)
    volume = read_dicom_series(tmp_path)
    assert volume.spacing[0] == pytest.approx(5.0, abs=1e-3)  # (last - first) / 8
    warning = next(w for w in volume.meta["warnings"] if "non-uniform slice spacing" in w)
    assert "average step, 5 mm" in warning and "up to 0.6 mm" in warning

    # steps each within 5 % of the usual (2.5, 2.5, 2.6, ...) but adding up along the scan
    source = make_ct(shape=(30, 8, 8), spacing=(2.5, 0.8, 0.8))
    paths = write_ct_series(source, tmp_path / "drift")
    z = 0.0
    for i, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient[2] = last = z
        ds.save_as(path)
        z += 2.6 if i % 3 == 2 else 2.5
    volume = read_dicom_series(tmp_path / "drift")
    assert volume.spacing[0] == pytest.approx(last / 29, abs=1e-3)
    assert any("add up to" in w for w in volume.meta["warnings"])


def test_gantry_tilt_is_reported_and_kept_in_the_affine(tmp_path):
    tilt = np.deg2rad(12)
    direction = np.eye(3)
    direction[:, 2] = [0.0, np.sin(tilt), np.cos(tilt)]  # slices step sideways: a tilted gantry
    source = make_ct(shape=(6, 16, 16), direction=direction)
    write_ct_series(source, tmp_path)
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, source.array)
    np.testing.assert_allclose(volume.affine, source.affine, atol=1e-3)
    assert any("gantry tilt of 12.00 degrees" in w for w in volume.meta["warnings"])
    # the slice spacing is the distance between the slice planes, not the (longer) step from
    # one slice's corner to the next's: volumes were 1 / cos(tilt) too large
    assert volume.spacing[0] == pytest.approx(source.spacing[0] * np.cos(tilt), abs=1e-3)
    assert np.prod(volume.spacing) == pytest.approx(abs(np.linalg.det(volume.affine)), rel=1e-4)


def test_a_gantry_tilt_of_a_few_tenths_of_a_degree_is_warned_of_and_kept_in_the_affine(tmp_path):
    """A 0.3° tilt taken for a straight stack (a threshold of 0.5°) would give no warning, and
    over 160 slices of 2.5 mm the last slice would lie 2 mm off its ImagePositionPatient (the
    stack stepped along the slice normal instead of from one slice's position to the next)."""
    tilt = np.deg2rad(0.3)
    direction = np.eye(3)
    direction[:, 2] = [0.0, np.sin(tilt), np.cos(tilt)]
    source = CTVolume(
        np.full((160, 8, 8), 40, np.int16), (2.5, 0.8, 0.8), (-50.0, 20.0, -300.0), direction
    )
    files = write_ct_series(source, tmp_path)
    volume = read_dicom_series(tmp_path)
    assert any("gantry tilt of 0.30 degrees" in w for w in volume.meta["warnings"])
    for k in (0, 80, 159):
        written = np.array(pydicom.dcmread(files[k]).ImagePositionPatient, float)
        placed = (volume.affine_lps @ [0.0, 0.0, k, 1.0])[:3]
        np.testing.assert_allclose(placed, written, atol=1e-3)


def test_slices_of_another_size_are_left_out_with_a_warning(tmp_path):
    write_ct_series(make_ct(shape=(6, 16, 16)), tmp_path, series_uid="1.2.3.4")
    odd = make_ct(shape=(1, 20, 16))
    write_ct_series(odd, tmp_path, series_uid="1.2.3.4", file_names=["odd.dcm"])
    volume = read_dicom_series(tmp_path)
    assert volume.shape == (6, 16, 16)
    assert any("different Rows/Columns" in w and "odd.dcm" in w for w in volume.meta["warnings"])


def test_a_series_split_between_two_image_sizes_is_refused_not_half_read(tmp_path):
    """A series whose first 16 slices were 96×96 and last 16 were 128×128 (one pixel spacing,
    one stack) kept the first 16 with a warning: `segment` exited 0 and measured the liver at
    110 mL, not 1386 mL. A tie, or a block of slices, is not left out as an odd slice is."""
    for first, rest in ((8, 8), (12, 4)):  # a tie; a block of 4 (not an odd slice or two)
        folder = tmp_path / f"{first}-{rest}"
        top = make_ct(shape=(first, 16, 16))
        write_ct_series(
            top, folder, series_uid="1.2.3.4", series_number=3, series_description="ABDOMEN"
        )
        below = CTVolume(  # the stack goes on at 20×20 pixels
            make_ct(shape=(rest, 20, 20)).array,
            top.spacing,
            origin=(top.origin[0], top.origin[1], top.origin[2] + first * top.spacing[0]),
        )
        write_ct_series(
            below,
            folder,
            series_uid="1.2.3.4",
            series_number=3,
            series_description="ABDOMEN",
            instance_number_start=first + 1,
            file_names=[f"2-{k:03d}.dcm" for k in range(rest)],
        )
        with pytest.raises(InputError) as info:
            read_dicom_series(folder)
        problem = info.value.problem
        assert "series #3 'ABDOMEN' differ in Rows/Columns" in problem
        assert f"{first} slice(s) of 16×16 pixels" in problem
        assert f"{rest} slice(s) of 20×20 pixels (e.g. {folder.name}/2-000.dcm)" in problem
        assert f"would leave out {rest} of the {first + rest} slices" in problem
        assert ("(as many as it would keep)" in problem) == (first == rest)


def test_two_reconstructions_as_large_at_the_same_positions_are_refused(tmp_path):
    """Two reconstructions of one scan under one SeriesInstanceUID (8 slices at 16×16 pixels
    and 8 at 20×20, at the same positions, their InstanceNumbers interleaved so that no pass
    can be told apart) could be read as either, picked by no rule, with a warning only:
    which is wanted is unsure, so the series is refused, naming both."""
    scan = make_ct(shape=(8, 16, 16))
    small = write_ct_series(scan, tmp_path / "ct", series_uid="1.2.3.7", series_number=4)
    other = CTVolume(make_ct(shape=(8, 20, 20)).array, scan.spacing, origin=scan.origin)
    large = write_ct_series(
        other,
        tmp_path / "ct",
        series_uid="1.2.3.7",
        series_number=4,
        file_names=[f"2-{k:03d}.dcm" for k in range(8)],
    )
    for k, (a, b) in enumerate(zip(small, large, strict=True)):
        for path, number in ((a, 2 * k + 1), (b, 2 * k + 2)):
            ds = pydicom.dcmread(path)
            ds.InstanceNumber = number
            ds.save_as(path)
    with pytest.raises(InputError) as info:
        read_dicom_series(tmp_path / "ct")
    problem = info.value.problem
    assert "series #4 'CT' differ in Rows/Columns" in problem
    assert "8 slice(s) of 16×16 pixels" in problem and "8 slice(s) of 20×20 pixels" in problem
    assert "would leave out 8 of the 16 slices (as many as it would keep)" in problem
    assert "two reconstructions under one SeriesInstanceUID" in problem


def test_three_slices_of_another_size_beyond_the_stack_are_left_out_not_refused(tmp_path):
    """Up to ODD_SLICES (3) stray slices of another size are left out with a warning even
    where the rest have no slice (a test image or two after the scan); a fourth refuses the
    series as a block of the scan (test above). Three must not refuse a readable scan."""
    from napari_livertumor.io._dicom_geometry import ODD_SLICES

    assert ODD_SLICES == 3
    top = make_ct(shape=(12, 16, 16))
    write_ct_series(top, tmp_path / "ct", series_uid="1.2.3.8")
    below = CTVolume(  # 3 slices going on past the stack, at 20×20 pixels
        make_ct(shape=(3, 20, 20)).array,
        top.spacing,
        origin=(top.origin[0], top.origin[1], top.origin[2] + 12 * top.spacing[0]),
    )
    write_ct_series(
        below,
        tmp_path / "ct",
        series_uid="1.2.3.8",
        instance_number_start=13,
        file_names=[f"2-{k:03d}.dcm" for k in range(3)],
    )
    volume = read_dicom_series(tmp_path / "ct")
    np.testing.assert_array_equal(volume.array, top.array)
    assert any(
        w.startswith("3 slice(s) with a different Rows/Columns than the other 12 were left out")
        for w in volume.meta["warnings"]
    ), volume.meta["warnings"]


@pytest.mark.parametrize("corner_mm", [0.0, 12 * 2.5 + 15], ids=["in-the-stack", "above-it"])
def test_reformats_in_the_series_are_left_out_not_refused(tmp_path, corner_mm):
    """Coronal reformats packed into the axial scan's series add nothing to its volume: the
    scan is read without them, said, however many they are (5 of 17 slices refused the whole
    scan as if they were a block of it). Also when their corner (ImagePositionPatient, the
    top of a coronal image) lies above the axial slices: they are no slices the axial volume
    would miss."""
    scan = make_ct(shape=(12, 16, 16))
    files = write_ct_series(scan, tmp_path / "mpr", series_uid="1.2.3.6")
    for k in range(5):  # coronal reformats of the slices' own size and pixels
        ds = pydicom.dcmread(files[k])
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.InstanceNumber = 100 + k
        top = scan.origin[2] + corner_mm
        ds.ImagePositionPatient = [scan.origin[0], scan.origin[1] + 3.0 * k, top]
        ds.save_as(tmp_path / "mpr" / f"3-{k:03d}.dcm")
    volume = read_dicom_series(tmp_path / "mpr")
    assert volume.shape == (12, 16, 16)
    assert any(
        "5 slice(s) with a different ImageOrientationPatient" in w for w in volume.meta["warnings"]
    )


def _localizer(source, target, *, plane: str, shift_mm: float = 0.0) -> None:
    """``source`` saved as a localizer of its series at ``target``: ImageType ...\\LOCALIZER,
    coronal (another size and pixel spacing) or axial (the slices' own), ``shift_mm`` along
    the slice normal."""
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.InstanceNumber = 0
    position = [float(v) for v in ds.ImagePositionPatient]
    if plane == "coronal":
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.Rows, ds.Columns, ds.PixelSpacing = 24, 16, [3.0, 4.8]
        ds.PixelData = np.full((24, 16), 200, np.int16).tobytes()
        position[1] = 0.0
    position[2] += shift_mm
    ds.ImagePositionPatient = position
    ds.save_as(target)


def test_find_series_counts_and_spaces_the_slices_a_load_reads(tmp_path):
    """Find series counted what the load then leaves out: a coronal scout and a slice of
    another size beside 8 axial slices were listed as "10 slice(s), 3x4.8 mm pixels" (the
    scout's), while Load read 8 slices of 0.71×0.78 mm pixels. (The reviewer's series of 32
    was listed as 33 slices 15.4 mm apart, read as 32 slices 8.56 mm apart.)"""
    files = write_ct_series(make_ct(shape=(8, 16, 16)), tmp_path / "a")
    _localizer(files[0], tmp_path / "a" / "0-scout.dcm", plane="coronal")
    odd = make_ct(shape=(1, 20, 16))
    write_ct_series(
        odd,
        tmp_path / "a",
        series_uid=str(pydicom.dcmread(files[0]).SeriesInstanceUID),
        instance_number_start=50,
        file_names=["odd.dcm"],
    )
    (info,) = discover_series(tmp_path / "a")
    volume = read_dicom_series(tmp_path / "a")
    assert volume.shape[0] == info.n_slices == 8
    assert info.spacing == pytest.approx(volume.spacing, abs=1e-3)
    assert (
        "8 slice(s) (+1 localizer, 1 of another size, orientation or pixel spacing left out)"
        in (info.summary())
    )


def test_an_axial_localizer_of_the_slices_size_is_not_stacked_into_the_volume(tmp_path):
    """An axial localizer (ImageType ORIGINAL\\PRIMARY\\LOCALIZER) of the slices' own size,
    3 mm off their grid, was stacked as a 33rd slice: the spacing made non-uniform and the
    liver's volume 2 % off. A series of localizers only is still read."""
    source = make_ct(shape=(8, 16, 16))
    files = write_ct_series(source, tmp_path / "a")
    _localizer(files[3], tmp_path / "a" / "0-scout.dcm", plane="axial", shift_mm=1.0)
    volume = read_dicom_series(tmp_path / "a")
    np.testing.assert_array_equal(volume.array, source.array)
    assert volume.spacing[0] == pytest.approx(2.5)
    warnings = " ".join(volume.meta["warnings"])
    assert "non-uniform" not in warnings
    assert "1 localizer image(s) (ImageType ORIGINAL\\PRIMARY\\LOCALIZER" in warnings
    assert "0-scout.dcm" in warnings
    (info,) = discover_series(tmp_path / "a")
    assert info.n_slices == 8
    # listed at the step a load reads (spaced with the localizer: 2.19 mm, read at 2.5)
    assert info.spacing == pytest.approx(volume.spacing, abs=1e-3)

    scouts = write_ct_series(make_ct(shape=(3, 16, 16)), tmp_path / "b")
    for f in scouts:  # all localizers: nothing else to read, so read
        ds = pydicom.dcmread(f)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.save_as(f)
    volume = read_dicom_series(tmp_path / "b")
    assert volume.shape[0] == 3
    assert not any("left out" in w for w in volume.meta["warnings"])
    # and listed as read: not "(+3 localizers left out)" of a series whose 3 are all read
    (info,) = discover_series(tmp_path / "b")
    assert info.n_slices == 3 and info.left_out_note == ""
    assert "left out" not in info.summary() and "localizer" not in info.summary()


# ------------------------------------------------------------------- bad input: one clear message
def test_empty_folder_says_no_dicom(tmp_path):
    with pytest.raises(InputError, match="no DICOM files found") as info:
        load_ct(tmp_path)
    assert info.value.path == tmp_path


def test_folder_of_non_dicom_files_says_no_dicom(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(InputError, match="no DICOM files found"):
        load_ct(tmp_path)


def test_missing_path_is_named(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_ct(tmp_path / "nowhere")


def _cut_pixels(path, keep_bytes_off=100):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - keep_bytes_off])


def test_a_slice_with_truncated_pixels_is_interpolated_like_a_missing_one_and_named(tmp_path):
    """A file cut inside its pixel data stopped the whole series from loading, while the same
    file cut inside its header was skipped and interpolated over as a gap. Now both load."""
    from napari_livertumor.io.seg import write_dicom_seg

    source = make_ct(shape=(6, 16, 16))
    paths = write_ct_series(source, tmp_path)
    _cut_pixels(paths[2])
    volume = load_ct(tmp_path)
    assert volume.shape == source.shape
    np.testing.assert_allclose(volume.spacing, source.spacing)
    np.testing.assert_allclose(volume.origin, source.origin)
    expected = np.rint((source.array[1].astype(float) + source.array[3]) / 2)
    np.testing.assert_array_equal(volume.array[2], expected)
    for z in (0, 1, 3, 4, 5):
        np.testing.assert_array_equal(volume.array[z], source.array[z])
    warnings = " ".join(volume.meta["warnings"])
    assert "1 slice(s) whose pixel data cannot be read" in warnings
    assert "1-003.dcm (truncated file" in warnings and "interpolation" in warnings
    # its header still places it; it has no usable file, so a SEG leaves its labels out
    assert volume.meta["files"][2] == "" and all(volume.meta["files"][z] for z in (0, 1, 3))
    assert volume.meta["sop_instance_uids"][2]
    labels = np.zeros(volume.shape, np.uint8)
    labels[1:4, 4:8, 4:8] = 1
    notes: list[str] = []
    write_dicom_seg(labels, volume, tmp_path / "seg" / "s.dcm", [(1, "Liver")], notes=notes)
    assert any("slice(s) 2 " in n and "left out of the DICOM SEG" in n for n in notes)
    # read back, that slice's labels come from its neighbours' (it was empty: a stripe)
    from napari_livertumor.io.seg import read_dicom_seg

    said: list[str] = []
    np.testing.assert_array_equal(
        read_dicom_seg(tmp_path / "seg" / "s.dcm", volume, warnings=said), labels
    )
    assert any("their labels were interpolated" in n for n in said)


@pytest.mark.parametrize("signed13", [False, True], ids=["direct-read", "pydicom"])
def test_pixel_data_longer_than_rows_times_columns_is_read_as_one_frame_and_said(
    tmp_path, signed13
):
    """A slice whose pixel data holds a second, undeclared frame (or whose Rows/Columns do not
    fit its data) was read without a word; pydicom's decoder path even refused it."""
    source = make_ct(shape=(5, 16, 16))
    paths = write_ct_series(source, tmp_path)

    def longer(ds):
        if signed13:  # signed, fewer than 16 bits: decoded by pydicom, not read directly
            ds.BitsStored, ds.HighBit = 13, 12
        ds.PixelData = ds.PixelData * 2

    def tail(ds):
        ds.PixelData = ds.PixelData + bytes(100)

    for path, edit in ((paths[1], longer), (paths[3], tail)):
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom's own note on the excess
        volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, source.array)
    (note,) = [w for w in volume.meta["warnings"] if "more pixel data" in w]
    assert note.startswith("2 slice(s) hold more pixel data than Rows × Columns")
    assert "1-002.dcm: 512 bytes beyond it: 1 more frame(s)" in note


def test_a_two_slice_series_with_one_unreadable_says_too_few_remain(tmp_path):
    paths = write_ct_series(make_ct(shape=(2, 8, 8)), tmp_path)
    _cut_pixels(paths[1])
    with pytest.raises(InputError, match="fewer than two readable slices remain"):
        load_ct(tmp_path)


def test_an_unreadable_first_slice_is_left_out_and_the_stack_starts_at_the_next(tmp_path):
    source = make_ct(shape=(6, 16, 16))
    paths = write_ct_series(source, tmp_path)
    _cut_pixels(paths[0])
    volume = load_ct(tmp_path)
    assert volume.shape == (5, 16, 16)
    np.testing.assert_array_equal(volume.array, source.array[1:])
    one_slice_on = (
        np.asarray(source.origin) + source.spacing[0] * np.asarray(source.direction)[:, 2]
    )
    np.testing.assert_allclose(volume.origin, one_slice_on)
    np.testing.assert_allclose(volume.spacing, source.spacing)
    assert len(volume.meta["files"]) == 5 and "1-001.dcm" not in " ".join(volume.meta["files"])
    warnings = " ".join(volume.meta["warnings"])
    assert "the first 1 slice(s) of the stack cannot be read and were left out" in warnings
    assert f"{tmp_path.name}/1-001.dcm (truncated" in warnings  # NBIA's names need the folder
    assert volume.meta["unused_files"] == [str(paths[0])]  # still this series' file


def test_a_seg_frame_on_a_slice_left_out_is_said_to_be_on_one(tmp_path):
    """A ground truth's frame on an unreadable end slice was dropped with a note that named
    no cause."""
    from napari_livertumor.io.seg import read_dicom_seg, write_dicom_seg

    source = make_ct(shape=(20, 8, 8))
    paths = write_ct_series(source, tmp_path / "ct")
    labels = np.zeros(source.shape, np.uint8)
    labels[0:3, 2:6, 2:6] = 1
    seg = write_dicom_seg(labels, load_ct(tmp_path / "ct"), tmp_path / "s.dcm", [(1, "Liver")])
    _cut_pixels(paths[0])
    volume = load_ct(tmp_path / "ct")
    notes: list[str] = []
    back = read_dicom_seg(seg, volume, warnings=notes)
    np.testing.assert_array_equal(back, labels[1:])
    assert any(
        "1 SEG frame(s) do not fall on a slice" in n
        and "left out 1 file(s)" in n
        and "1-001.dcm" in n
        for n in notes
    ), notes


def test_unreadable_slices_at_both_ends_and_inside_beside_a_gap_are_placed_by_position(tmp_path):
    """The interpolation weighed a mended slice by its place among the files read, not on the
    grid: beside a missing file it read half-way between slices two steps and one step off."""
    ramp = make_ct(shape=(32, 8, 8))  # 31 files: three may be mended
    ramp.array[:] = (np.arange(32) * 100 - 1000)[:, None, None].astype(np.int16)
    paths = write_ct_series(ramp, tmp_path)
    paths[16].unlink()  # a gap at z = 16
    for k in (0, 15, 31):  # the first and last unreadable; z = 15 beside the gap
        _cut_pixels(paths[k])
    volume = load_ct(tmp_path)
    assert volume.shape == (30, 8, 8)  # z = 1..30
    np.testing.assert_array_equal(volume.array[:, 0, 0], ramp.array[1:31, 0, 0])
    warnings = volume.meta["warnings"]
    assert any(w.startswith("the first 1 slice(s)") and "1-001.dcm" in w for w in warnings)
    assert any(w.startswith("the last 1 slice(s)") and "1-032.dcm" in w for w in warnings)
    assert any("1 missing slice" in w for w in warnings)
    assert volume.meta["files"][14] == "" and volume.meta["files"][15] == ""  # mended; the gap
    assert volume.meta["sop_instance_uids"][14] and not volume.meta["sop_instance_uids"][15]


def test_an_unreadable_slice_with_a_readable_copy_at_its_position_reads_the_copy(tmp_path):
    """The copy with the higher InstanceNumber was kept even when its pixels could not be read:
    interpolated inside the stack, and the whole series refused at an end."""
    source = make_ct(shape=(6, 16, 16))
    paths = write_ct_series(source, tmp_path)
    for k in (2, 5):
        ds = pydicom.dcmread(paths[k])
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.InstanceNumber = 90 + k
        ds.save_as(tmp_path / f"redo-{k}.dcm")
        _cut_pixels(tmp_path / f"redo-{k}.dcm")  # the kept copy is the damaged one
    volume = load_ct(tmp_path)
    np.testing.assert_array_equal(volume.array, source.array)
    assert all(volume.meta["files"])
    warnings = " ".join(volume.meta["warnings"])
    assert "redo-2.dcm cannot be read (truncated" in warnings
    assert f"its copy at the same position, {tmp_path.name}/1-003.dcm, was read instead" in warnings
    assert "interpolation" not in warnings and "left out (the volume" not in warnings
    assert "repeated an existing position" not in warnings  # the stack was measured again
    assert sorted(volume.meta["unused_files"]) == [
        str(tmp_path / "redo-2.dcm"),
        str(tmp_path / "redo-5.dcm"),
    ]


def test_a_copy_the_stack_left_out_for_its_header_is_not_read_for_an_unreadable_slice(tmp_path):
    """A file at the damaged slice's position but with another PixelSpacing was taken as its
    copy; the stack then left it out again, and the whole series was refused."""
    source = make_ct(shape=(20, 8, 8))
    paths = write_ct_series(source, tmp_path)
    ds = pydicom.dcmread(paths[5])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.InstanceNumber = 95
    ds.PixelSpacing = [0.5, 0.5]
    ds.save_as(tmp_path / "other-5.dcm")
    _cut_pixels(paths[5])
    volume = load_ct(tmp_path)
    assert volume.shape == source.shape and volume.meta["files"][5] == ""
    warnings = " ".join(volume.meta["warnings"])
    assert "different PixelSpacing" in warnings and "filled by linear interpolation" in warnings


def test_one_slice_without_its_decoder_is_refused_not_interpolated(tmp_path, monkeypatch):
    """A missing decoder fails every slice of its transfer syntax: never one slice to mend."""
    paths = write_ct_series(make_ct(shape=(20, 8, 8)), tmp_path, transfer_syntax="rle")
    real = pydicom.Dataset.pixel_array

    def one_needs_a_plugin(self):
        if str(getattr(self, "filename", "")).endswith("1-008.dcm"):
            raise RuntimeError(
                "Unable to decompress 'RLE Lossless' pixel data because all plugins are "
                "missing dependencies:\n\tgdcm - requires gdcm"
            )
        return real.fget(self)

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(one_needs_a_plugin))
    with pytest.raises(InputError, match="install a decoder") as info:
        load_ct(tmp_path)
    assert info.value.path == paths[7]


def test_too_many_unreadable_slices_are_refused_naming_the_first(tmp_path):
    paths = write_ct_series(make_ct(shape=(6, 16, 16)), tmp_path)
    for p in paths[1:3]:
        _cut_pixels(p)
    with pytest.raises(InputError, match=r"truncated.*2 of the series' 6 slices") as info:
        load_ct(tmp_path)
    assert info.value.path == paths[1]


def test_slice_cut_inside_its_header_is_skipped_and_reported(tmp_path):
    source = make_ct(shape=(5, 16, 16))
    paths = write_ct_series(source, tmp_path)
    paths[2].write_bytes(paths[2].read_bytes()[:300])
    volume = load_ct(tmp_path)
    assert volume.shape == source.shape
    warnings = " ".join(volume.meta["warnings"])
    assert "1 unreadable DICOM file(s) skipped" in warnings and "1-003.dcm" in warnings
    assert "1 missing slice" in warnings
    with pytest.raises(InputError, match="not a readable DICOM file: incomplete DICOM header"):
        load_ct(paths[2])  # the file itself given: why it cannot be read


def test_a_slice_cut_inside_its_series_uid_is_named_not_only_its_gap(tmp_path):
    """Cut inside its SeriesInstanceUID, a file read as a 'series' of its own (the UID's start)
    with no image, dropped unnamed: only 'a missing slice' between its neighbours was said."""
    import pydicom

    source = make_ct(shape=(5, 16, 16))
    paths = write_ct_series(source, tmp_path)
    uid = str(pydicom.dcmread(paths[2]).SeriesInstanceUID).encode()
    raw = paths[2].read_bytes()
    paths[2].write_bytes(raw[: raw.index(uid) + len(uid) // 2])
    volume = load_ct(tmp_path)
    warnings = " ".join(volume.meta["warnings"])
    assert "1 missing slice" in warnings
    assert "1 file(s) cut short inside their header, not read: " in warnings
    assert "/1-003.dcm" in warnings
    # a whole series numbered <root>.3 beside <root>.30 is another series, not a cut file
    other = tmp_path.parent / (tmp_path.name + "_two")
    uid = str(pydicom.dcmread(paths[0]).SeriesInstanceUID)
    write_ct_series(make_ct(shape=(6, 16, 16)), other / "long", series_uid=uid + "0")
    write_ct_series(make_ct(shape=(3, 16, 16)), other / "short", series_uid=uid)
    notes = " ".join(load_ct(other).meta["warnings"])
    assert "cut short" not in notes and "1 other series in the folder not read" in notes


def test_a_dcm_file_that_is_not_dicom_is_reported_other_files_are_ignored(tmp_path):
    source = make_ct(shape=(5, 16, 16))
    paths = write_ct_series(source, tmp_path)
    paths[2].write_bytes(b"\x00" * 50 + b"random bytes, no DICOM at all" * 5)
    (tmp_path / "notes.txt").write_text("scanner log")
    volume = load_ct(tmp_path)
    warnings = " ".join(volume.meta["warnings"])
    assert "1 unreadable DICOM file(s) skipped" in warnings and "1-003.dcm" in warnings
    assert "not one" in warnings and "notes.txt" not in warnings
    paths[2].write_bytes(paths[2].read_bytes()[:100])  # cut short: said so, not "not DICOM"
    warnings = " ".join(load_ct(tmp_path).meta["warnings"])
    assert "only 100 bytes long (empty or cut short)" in warnings
    paths[2].write_text("scanner log, v2\n")  # a short note named .dcm: text, not cut short
    warnings = " ".join(load_ct(tmp_path).meta["warnings"])
    assert "only 16 bytes of text (not DICOM)" in warnings and "cut short" not in warnings
    for note in ("\ufeffGröße: 12\u00a0cm\n".encode(), "Größe 12 cm".encode("cp1252")):
        paths[2].write_bytes(note)  # UTF-8 with a BOM and a no-break space; Windows' cp1252
        warnings = " ".join(load_ct(tmp_path).meta["warnings"])
        assert "bytes of text (not DICOM)" in warnings and "cut short" not in warnings, note


def test_slices_without_pixel_data_are_named(tmp_path):
    source = make_ct(shape=(5, 16, 16))
    paths = write_ct_series(source, tmp_path, transfer_syntax="rle")
    for p in (paths[3], paths[1]):
        ds = pydicom.dcmread(p)
        del ds.PixelData
        ds.save_as(p)
        if p == paths[3]:  # one: mended and said
            volume = load_ct(tmp_path)
            assert volume.shape == source.shape
            assert "1-004.dcm (no pixel data in the file" in " ".join(volume.meta["warnings"])
    with pytest.raises(InputError, match="no pixel data in the file") as info:  # two of five
        load_ct(tmp_path)
    assert info.value.path == paths[1]


def test_files_without_preamble_or_file_meta_are_read_and_referenced(tmp_path):
    """Older exports: a bare dataset, no preamble, no file meta. The headers were read but no
    pixel could be decoded ("truncated file or missing decoder"), and a series with file meta
    but no preamble loaded while its DICOM SEG export could not re-read the files."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    from napari_livertumor.io.seg import read_dicom_seg, write_dicom_seg

    source = make_ct(shape=(5, 16, 16))
    for bare in (True, False):
        folder = tmp_path / ("bare" if bare else "no_preamble")
        for p in write_ct_series(source, folder):
            ds = pydicom.dcmread(p)
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
            buf = DicomBytesIO()
            buf.is_little_endian, buf.is_implicit_VR = True, True
            if not bare:
                write_file_meta_info(buf, ds.file_meta, enforce_standard=False)
            write_dataset(buf, ds)
            p.write_bytes(buf.getvalue())
        volume = load_ct(folder)
        np.testing.assert_array_equal(volume.array, source.array)
        labels = np.zeros(volume.shape, np.uint8)
        labels[1:3, 4:8, 4:8] = 1
        write_dicom_seg(labels, volume, tmp_path / f"{folder.name}.dcm", [(1, "Liver")])
        np.testing.assert_array_equal(
            read_dicom_seg(tmp_path / f"{folder.name}.dcm", volume), labels
        )


def test_a_missing_decoder_is_named_with_what_to_install(tmp_path, monkeypatch):
    write_ct_series(make_ct(shape=(4, 16, 16)), tmp_path, transfer_syntax="rle")

    def no_plugins(self, *args, **kwargs):
        raise RuntimeError(
            "Unable to decompress 'RLE Lossless' pixel data because all plugins are missing "
            "dependencies:\n\tgdcm - requires gdcm"
        )

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(no_plugins))
    with pytest.raises(
        InputError,
        match=r"RLE Lossless \(1\.2\.840\.10008\.1\.2\.5\); install a decoder: pip install pylibjpeg",
    ):
        load_ct(tmp_path)


def test_folder_with_only_a_structured_report_says_no_ct(tmp_path):
    from pydicom.data import get_testdata_file

    for name in ("rtstruct.dcm", "test-SR.dcm"):
        src = get_testdata_file(name)
        if src is not None:
            shutil.copy(src, tmp_path / name)
    if not any(tmp_path.iterdir()):
        pytest.skip("no RT/SR files in pydicom-data")
    with pytest.raises(InputError, match="no readable CT image series"):
        load_ct(tmp_path)


def test_enhanced_multiframe_ct_without_frame_positions_is_refused_with_a_hint(tmp_path):
    """Enhanced CT is read (tests/test_io_enhanced_ct.py); one whose frames carry no position
    cannot be placed, and is refused with what it lacks."""
    from pydicom.data import get_testdata_file

    src = get_testdata_file("eCT_Supplemental.dcm")
    if src is None:
        pytest.skip("eCT_Supplemental.dcm not available")
    ect = pydicom.dcmread(src)
    for item in ect.PerFrameFunctionalGroupsSequence:
        del item.PlanePositionSequence
    ect.save_as(tmp_path / "ect.dcm")
    with pytest.raises(InputError, match="other than Enhanced CT with per-frame positions"):
        load_ct(tmp_path)
    # given as the file: what it is, and what it lacks
    with pytest.raises(
        InputError,
        match=r"Enhanced \(multi-frame\) CT object, which is not read here \(no ImagePositionPatient",
    ):
        load_ct(tmp_path / "ect.dcm")
    # listed as what it is, not as a "non-image object" lacking slice tags
    [info] = discover_series(tmp_path)
    assert (
        "multi-frame image(s) (a multi-frame image of 2 frame(s), no ImagePosition"
        in info.summary()
    )
    # beside a classic series of the patient, it is said as passed over (an arterial phase
    # exported as Enhanced CT was never mentioned)
    beside = tmp_path.parent / (tmp_path.name + "_beside")
    paths = write_ct_series(make_ct(shape=(5, 16, 16)), beside)
    ect.PatientID = pydicom.dcmread(paths[0]).PatientID
    ect.save_as(beside / "ect.dcm")
    notes = " ".join(load_ct(beside).meta["warnings"])
    assert "1 other series in the folder not read" in notes and "multi-frame image(s)" in notes


def test_an_object_whose_series_uid_begins_like_the_cts_is_no_file_cut_short(tmp_path):
    """A dose report (a secondary capture) whose SeriesInstanceUID was the CT's minus its last
    digit was named "cut short inside its header": a whole file."""
    paths = write_ct_series(make_ct(shape=(5, 16, 16)), tmp_path)
    ds = pydicom.dcmread(paths[0])
    del ds.ImagePositionPatient, ds.ImageOrientationPatient
    ds.SeriesInstanceUID = str(ds.SeriesInstanceUID)[:-1]
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    ds.SeriesDescription, ds.SeriesNumber = "Dose Report", 999
    ds.save_as(tmp_path / "dose.dcm")
    volume = load_ct(tmp_path)
    assert volume.shape == (5, 16, 16)
    assert "cut short" not in " ".join(volume.meta["warnings"])


def _edit_all(paths, edit):
    for p in paths:
        ds = pydicom.dcmread(p)
        edit(ds)
        ds.save_as(p)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda ds: setattr(ds, "PixelSpacing", [0, 0]), r"PixelSpacing 0\\0 .* not a positive"),
        (
            lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 1, 0, 0]),
            "does not give two independent directions",
        ),
        (
            lambda ds: setattr(ds, "ImagePositionPatient", [0, 0, 0]),
            "6 slices but only 1 distinct position",
        ),
    ],
)
def test_headers_that_cannot_place_the_slices_are_refused_by_name(tmp_path, edit, match):
    """They gave a bare ValueError, a NaN conversion error, or a one-slice 'volume'."""
    _edit_all(write_ct_series(make_ct(shape=(6, 16, 16)), tmp_path), edit)
    with pytest.raises(InputError, match=match) as info:
        read_dicom_series(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_files_without_a_position_say_which_tag_is_missing(tmp_path):
    _edit_all(
        write_ct_series(make_ct(shape=(4, 16, 16)), tmp_path),
        lambda ds: delattr(ds, "ImagePositionPatient"),
    )
    with pytest.raises(InputError, match="no ImagePositionPatient"):
        read_dicom_series(tmp_path)


def test_another_patients_series_in_the_folder_is_named(tmp_path):
    write_ct_series(make_ct(shape=(6, 16, 16)), tmp_path / "a", patient_id="HCC_001")
    write_ct_series(make_ct(shape=(4, 16, 16)), tmp_path / "b", patient_id="HCC_002")
    volume = read_dicom_series(tmp_path)
    assert volume.meta["patient_id"] == "HCC_001"
    notes = volume.meta["warnings"]
    assert any(
        "holds the scans of 2 patients; 'HCC_001' was read, not 'HCC_002': give each "
        "patient's own folder" in w
        for w in notes
    ), notes
    # the other patient's series is said as theirs, not listed as this one's not read
    assert not any("other series in the folder not read" in w for w in notes), notes
    # either patient by PatientID (a batch makes a case of each), and nothing said of the other
    second = read_dicom_series(tmp_path, patient_id="HCC_002")
    assert second.meta["patient_id"] == "HCC_002" and second.shape == (4, 16, 16)
    assert not any("patients" in w for w in second.meta["warnings"])
    with pytest.raises(
        InputError, match="no scan of patient 'HCC_003' here .*'HCC_001', 'HCC_002'"
    ):
        read_dicom_series(tmp_path, patient_id="HCC_003")


def test_another_patients_seg_alone_is_no_scan_of_theirs_left_unread(tmp_path):
    from napari_livertumor.io.seg import write_dicom_seg

    write_ct_series(make_ct(shape=(6, 16, 16)), tmp_path / "a", patient_id="HCC_001")
    write_ct_series(make_ct(shape=(4, 16, 16)), tmp_path / "b", patient_id="HCC_002")
    theirs = read_dicom_series(tmp_path / "b")
    labels = np.zeros(theirs.shape, np.uint8)
    labels[1:3, 4:8, 4:8] = 1
    write_dicom_seg(labels, theirs, tmp_path / "seg.dcm", [(1, "Liver")])
    shutil.rmtree(tmp_path / "b")
    volume = read_dicom_series(tmp_path)
    assert volume.meta["patient_id"] == "HCC_001"
    assert not any("patients" in w for w in volume.meta["warnings"]), volume.meta["warnings"]


def test_headers_are_read_again_only_for_files_changed_since(tmp_path, monkeypatch):
    """A folder of several patients is read once per patient, and Find series before a load
    read every header twice: unchanged files are not parsed again."""
    import os

    import napari_livertumor.io.dicom as dicom_mod

    paths = write_ct_series(make_ct(shape=(6, 16, 16)), tmp_path)
    read_dicom_series(tmp_path)
    parsed = []
    real = dicom_mod._read_header
    monkeypatch.setattr(dicom_mod, "_read_header", lambda p: parsed.append(p) or real(p))
    first = read_dicom_series(tmp_path)
    assert parsed == []
    st = paths[2].stat()
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched (re-sent)
    second = read_dicom_series(tmp_path)
    assert parsed == [paths[2]]
    np.testing.assert_array_equal(first.array, second.array)
    # replaced by a copy that keeps the time (cp -p, rsync -a): read again too
    st = paths[3].stat()
    shutil.copy2(paths[3], tmp_path / "copy.tmp")
    os.replace(tmp_path / "copy.tmp", paths[3])
    os.utime(paths[3], ns=(st.st_atime_ns, st.st_mtime_ns))
    read_dicom_series(tmp_path)
    assert parsed[1:] == [paths[3]]


def test_values_clipped_to_int16_are_reported(tmp_path):
    _edit_all(
        write_ct_series(make_ct(shape=(4, 16, 16)), tmp_path),
        lambda ds: setattr(ds, "RescaleSlope", 1000),
    )
    volume = read_dicom_series(tmp_path)
    assert any(
        "were clipped to -32768" in w and "RescaleSlope 1000" in w for w in volume.meta["warnings"]
    )


def test_a_series_copied_twice_into_the_folder_reads_once_with_a_warning(tmp_path):
    """Two copies of the same files (a re-copied download) are not a collapsed stack."""
    source = make_ct(shape=(6, 16, 16))
    write_ct_series(source, tmp_path / "orig")
    shutil.copytree(tmp_path / "orig", tmp_path / "copy")
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, source.array)
    assert (
        "6 file(s) identical to another (a copy: the same SOPInstanceUID and bytes) ignored, "
        "e.g. orig/1-001.dcm (the same as copy/1-001.dcm)" in volume.meta["warnings"]
    )


def test_a_copy_cut_short_or_altered_is_no_identical_copy(tmp_path):
    """Copies were told by their headers alone: the intact copy of a slice was dropped for one
    cut short (its slice then interpolated), and a copy with other pixels was read without the
    repeated positions' warning, called "identical"."""
    source = make_ct(shape=(6, 16, 16))
    write_ct_series(source, tmp_path / "a_copy")
    shutil.copytree(tmp_path / "a_copy", tmp_path / "b_copy")
    cut = tmp_path / "a_copy" / "1-003.dcm"
    cut.write_bytes(cut.read_bytes()[:-100])  # the first one found, cut short
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, source.array)  # the intact copy read
    assert not any("interpolat" in w for w in volume.meta["warnings"])
    said = " ".join(volume.meta["warnings"])
    assert "5 file(s) identical to another" in said

    shutil.copy(tmp_path / "b_copy" / "1-003.dcm", cut)
    ds = pydicom.dcmread(cut)
    ds.PixelData = (ds.pixel_array + 500).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(cut)
    warnings = read_dicom_series(tmp_path).meta["warnings"]
    assert any("different pixels" in w for w in warnings)  # said, for a reader to check
    assert any("5 file(s) identical to another" in w for w in warnings)


def test_the_same_spacing_or_orientation_written_with_float_noise_is_one_series(tmp_path):
    """0.78125 and 0.781250001 (the same 400 mm / 512) rounded to two values, and every other
    slice was left out: half the series, stacked at twice the slice spacing."""
    source = make_ct(shape=(8, 16, 16))
    files = write_ct_series(source, tmp_path / "a")
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.PixelSpacing = ["0.78125", "0.78125"] if i % 2 else ["0.781250001", "0.781250001"]
        iop = [float(v) for v in ds.ImageOrientationPatient]
        iop[0] += 4e-6 if i % 2 else -4e-6  # 0.9999960 / 1.0000040: both sides of a rounding
        ds.ImageOrientationPatient = [f"{v:.7f}" for v in iop]
        ds.save_as(f)
    volume = read_dicom_series(tmp_path / "a")
    assert volume.shape == source.shape
    assert not any("left out" in w for w in volume.meta.get("warnings", []))


def test_slices_at_odds_with_the_series_are_named_not_silently_used_or_dropped(tmp_path):
    """A slice with another PixelSpacing was stacked at the others' spacing without a word; a
    slice without ImagePositionPatient vanished, its place filled by interpolation, unnamed;
    RescaleSlope 0 was read as 1 without a word."""
    files = write_ct_series(make_ct(shape=(6, 16, 16)), tmp_path / "a")
    ds = pydicom.dcmread(files[2])
    ds.PixelSpacing = [0.5, 0.5]
    ds.save_as(files[2])
    volume = read_dicom_series(tmp_path / "a")
    assert volume.shape == (6, 16, 16)  # its place is filled, and it is named
    assert any(
        "different PixelSpacing" in w and files[2].name in w for w in volume.meta["warnings"]
    )

    for i in (3, 0):  # the file sorting first too: it refused the whole series as an object
        files = write_ct_series(make_ct(shape=(6, 16, 16)), tmp_path / f"b{i}")
        ds = pydicom.dcmread(files[i])
        del ds.ImagePositionPatient
        ds.save_as(files[i])
        warnings = read_dicom_series(tmp_path / f"b{i}").meta["warnings"]
        assert any(
            "left out, not usable as slices" in w
            and files[i].name in w
            and "ImagePositionPatient" in w
            for w in warnings
        )

    files = write_ct_series(make_ct(shape=(6, 16, 16)), tmp_path / "nan")
    ds = pydicom.dcmread(files[3])  # a damaged position is said as such, not as missing
    ds.ImagePositionPatient = ["NaN", 0, 0]
    ds.save_as(files[3])
    warnings = read_dicom_series(tmp_path / "nan").meta["warnings"]
    assert any(
        files[3].name in w and "ImagePositionPatient" in w and "is not 3 finite numbers" in w
        for w in warnings
    )

    source = make_ct(shape=(4, 16, 16))
    files = write_ct_series(source, tmp_path / "c")
    _edit_all(files, lambda ds: setattr(ds, "RescaleSlope", 0))
    volume = read_dicom_series(tmp_path / "c")
    np.testing.assert_array_equal(volume.array, source.array)
    assert any("RescaleSlope '0" in w and "taken as 1" in w for w in volume.meta["warnings"])


def test_an_intercept_that_is_no_number_is_mended_from_the_others_or_refused(tmp_path):
    """RescaleIntercept 'nan' made every voxel 0 HU (convert wrote it, 'success'), or one
    slice water inside the scan, unsaid; '1e20' ended in an OverflowError traceback."""
    source = make_ct(shape=(5, 16, 16))
    files = write_ct_series(source, tmp_path / "one")
    _edit_all(files[2:3], lambda ds: setattr(ds, "RescaleIntercept", "nan"))
    volume = read_dicom_series(tmp_path / "one")
    np.testing.assert_array_equal(volume.array, source.array)  # the others' -1024
    assert any(
        "RescaleIntercept 'nan' in 1 file(s)" in w and files[2].name in w and "-1024" in w
        for w in volume.meta["warnings"]
    )
    for value in ("nan", "1e20", "inf"):
        files = write_ct_series(source, tmp_path / value)
        _edit_all(files, lambda ds, v=value: setattr(ds, "RescaleIntercept", v))
        with pytest.raises(InputError, match="RescaleIntercept .* no usable number"):
            read_dicom_series(tmp_path / value)


def test_a_dicomdir_chosen_as_the_file_reads_the_export_it_indexes(tmp_path):
    """A CD or USB export's DICOMDIR is what a file dialog offers: it was "not a readable
    DICOM file" and convert --list found no series."""
    from pydicom.fileset import FileSet

    source = make_ct(shape=(5, 16, 16))
    files = write_ct_series(source, tmp_path / "scanner")
    fs = FileSet()
    for f in files:
        fs.add(pydicom.dcmread(f))
    fs.write(tmp_path / "export")  # DICOMDIR plus its own copies of the images
    dicomdir = tmp_path / "export" / "DICOMDIR"
    assert dicomdir.is_file()
    volume = read_dicom_series(dicomdir)
    np.testing.assert_array_equal(volume.array, source.array)
    assert not any("DICOMDIR" in w for w in volume.meta["warnings"])
    assert [s.n_slices for s in discover_series(dicomdir)] == [5]


@pytest.mark.parametrize("numbering", ["continued", "restarted"])
def test_two_passes_stacked_without_acquisition_numbers_are_told_apart(tmp_path, numbering):
    """Two contrast phases at the same positions in one series, AcquisitionNumber removed by an
    anonymiser (HCC-TACE-Seg stacks two phases in 21 of 105 series): the series was refused
    (first blaming the geometry, then saying what it was but not reading it)."""
    uid = "1.2.826.0.1.3680043.8.498.515"
    phases = [make_ct(shape=(5, 16, 16), seed=7), make_ct(shape=(5, 16, 16), seed=8)]
    paths = []
    for k, phase in enumerate(phases):
        start = 1 + 5 * k if numbering == "continued" else 1
        paths += write_ct_series(phase, tmp_path / f"pass{k}", series_uid=uid,
                                 instance_number_start=start, acquisition_number=k + 1)  # fmt: skip
    _edit_all(paths, lambda ds: ds.pop("AcquisitionNumber", None))
    found = discover_series(tmp_path)
    assert [(s.acquisition, s.n_slices) for s in found] == [(1, 5), (2, 5)]
    how = "InstanceNumber" if numbering == "continued" else "folder"
    assert {s.passes_by for s in found} == {how}
    assert [s.acquisition_label for s in found] == ["pass 1", "pass 2"]
    volume = read_dicom_series(tmp_path)  # the later pass, as of stacked acquisitions
    np.testing.assert_array_equal(volume.array, phases[1].array)
    said = [w for w in volume.meta["warnings"] if "stacks 2 passes" in w]
    assert said and "no AcquisitionNumber" in said[0] and "read pass 2" in said[0], said
    first = read_dicom_series(tmp_path, acquisition=1)
    np.testing.assert_array_equal(first.array, phases[0].array)
    with pytest.raises(InputError, match=r"its stacked passes: 1, 2"):
        read_dicom_series(tmp_path, acquisition=3)


def test_passes_with_a_slice_missing_a_copied_file_or_one_acquisition_number_are_split(
    tmp_path,
):
    """A pass missing a slice was read as the later pass with the earlier one's slice in its
    gap (a mix of two phases, said only as differing duplicates); one copied file made a
    splittable stack a refusal; the same AcquisitionNumber in every file is no number either."""
    import shutil

    uid = "1.2.826.0.1.3680043.8.498.517"
    phases = [make_ct(shape=(6, 16, 16), seed=3), make_ct(shape=(6, 16, 16), seed=4)]
    paths = []
    for k, phase in enumerate(phases):
        paths += write_ct_series(phase, tmp_path / "s", series_uid=uid, acquisition_number=k + 1,
                                 instance_number_start=1 + 6 * k,
                                 file_names=[f"{k}_{i}.dcm" for i in range(6)])  # fmt: skip
    _edit_all(paths, lambda ds: setattr(ds, "AcquisitionNumber", 1))  # the same everywhere
    shutil.copy(paths[2], tmp_path / "s" / "copy_of_0_2.dcm")  # a file copied beside itself
    (tmp_path / "s" / "1_3.dcm").unlink()  # the second pass misses a slice inside
    found = discover_series(tmp_path)
    assert [(f.acquisition_label, f.n_slices) for f in found] == [("pass 1", 6), ("pass 2", 5)]
    second = read_dicom_series(tmp_path, acquisition=2)
    assert second.array.shape == (6, 16, 16)
    kept = [0, 1, 2, 4, 5]  # its own slices, the gap filled in from its neighbours (said)
    np.testing.assert_array_equal(second.array[kept], phases[1].array[kept])
    assert any("no AcquisitionNumber that tells them apart" in w for w in second.meta["warnings"])
    first = read_dicom_series(tmp_path, acquisition=1)
    np.testing.assert_array_equal(first.array, phases[0].array)


def _two_reconstructions(folder, kernels, times=("", ""), restart=False):
    """A series holding two passes at the same positions, no AcquisitionNumber: a smooth
    volume, then the same plus noise (as a sharp kernel makes it), each with its
    ConvolutionKernel and AcquisitionTime."""
    uid = "1.2.826.0.1.3680043.8.498.519"
    smooth = make_ct(shape=(5, 16, 16), seed=9)
    noise = np.random.default_rng(10).integers(-300, 300, size=smooth.shape)
    sharp = CTVolume((smooth.array + noise).astype(np.int16), smooth.spacing, origin=smooth.origin)
    for k, volume in enumerate((smooth, sharp)):
        paths = write_ct_series(volume, folder, series_uid=uid, acquisition_number=k + 1,
                                instance_number_start=1 if restart else 1 + 5 * k,
                                file_names=[f"r{k}_{i}.dcm" for i in range(5)])  # fmt: skip

        def recon(ds, k=k):
            ds.pop("AcquisitionNumber", None)
            ds.ConvolutionKernel = kernels[k]
            if times[k]:
                ds.AcquisitionTime = times[k]

        _edit_all(paths, recon)
    return smooth, sharp


def test_two_reconstructions_of_one_scan_are_named_so_and_the_smoother_kernel_is_read(tmp_path):
    """A soft-tissue (B30f) and a lung (B70f) reconstruction of one scan stacked in a series
    with no AcquisitionNumber: the noisy lung one was read (the later pass) and the warning
    said "passes ... Check the phase by looking", though they are one moment."""
    smooth, sharp = _two_reconstructions(tmp_path, ("B30f", "B70f"), ("101500.25", "101500.25"))
    found = discover_series(tmp_path)
    assert [s.acquisition_label for s in found] == ["pass 1, kernel B30f", "pass 2, kernel B70f"]
    assert all(s.same_scan for s in found)
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, smooth.array)
    said = [w for w in volume.meta["warnings"] if "stacks 2" in w]
    assert said and "reconstructions of one scan" in said[0], volume.meta["warnings"]
    assert "kernel B30f vs B70f" in said[0] and "the smoother kernel" in said[0]
    assert "read pass 1 (kernel B30f" in said[0] and "--acquisition 2" in said[0]
    assert "Check the phase" not in said[0]
    other = read_dicom_series(tmp_path, acquisition=2)  # the Load panel's row, --acquisition
    np.testing.assert_array_equal(other.array, sharp.array)
    assert other.meta["acquisition_label"] == "pass 2, kernel B70f"


def test_reconstructions_each_numbered_from_one_in_one_folder_are_told_apart_by_kernel(tmp_path):
    """Two kernels' reconstructions, each numbered 1..n, in one folder: refused as passes
    that nothing tells apart, with the advice to copy them apart by ConvolutionKernel."""
    smooth, sharp = _two_reconstructions(
        tmp_path, ("STANDARD", "LUNG"), ("093000", "093000"), restart=True
    )
    found = discover_series(tmp_path)
    assert {s.passes_by for s in found} == {"reconstruction"}
    assert [s.reconstruction for s in found] == ["kernel STANDARD", "kernel LUNG"]
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, smooth.array)
    said = [w for w in volume.meta["warnings"] if "stacks 2" in w]
    assert said and "told apart by how they were reconstructed" in said[0], said


@pytest.mark.parametrize(
    "case",
    [
        "phases reconstructed differently",
        "no times",
        "anonymised times",
        "kernels of no known order",
    ],
)
def test_passes_are_called_phases_or_reconstructions_as_their_headers_say(tmp_path, case):
    """Passes scanned a minute apart are phases even when their kernels differ (the phase
    wording kept, the kernels named); so are passes whose AcquisitionTime is missing or an
    anonymiser's 000000 (QA rev59: called "reconstructions of one scan, not contrast phases"
    on no evidence), the smoother of two ranked kernels read; kernels whose names do not say
    which is smoother (Philips' B and L) are named, and the choice stays most slices, then the
    latest.

    Phases a minute apart in B30f and B70f read the B30f, the earlier phase, said as set
    against the later one (QA adv60: they read the B70f, while the same passes without times
    read the B30f — adding times made the noisier kernel the one segmented; a lung kernel's
    images are far noisier than the soft-tissue ones the models expect, a worse input than the
    other phase in a soft kernel; --acquisition 2 reads the later phase)."""
    kernels, times = {
        "phases reconstructed differently": (("B30f", "B70f"), ("101500", "101610.5")),
        "no times": (("B30f", "B70f"), ("", "")),
        "anonymised times": (("B30f", "B70f"), ("000000", "000000")),
        "kernels of no known order": (("B", "L"), ("101500", "101500")),
    }[case]
    smooth, later = _two_reconstructions(tmp_path, kernels, times)
    volume = read_dicom_series(tmp_path)
    said = [w for w in volume.meta["warnings"] if "stacks 2" in w]
    assert said and f"kernel {kernels[0]} vs {kernels[1]}" in said[0], volume.meta["warnings"]
    if case in ("no times", "anonymised times"):
        # phases or reconstructions, not known: the smoother kernel read all the same (QA
        # rev59b: the lung kernel, the later pass, was read, and its kernel not named)
        np.testing.assert_array_equal(volume.array, smooth.array)
        assert "read pass 1 (kernel B30f, 5 slices; the smoother kernel" in said[0], said[0]
        assert "no AcquisitionTime says whether they are phases" in said[0]
    elif case == "phases reconstructed differently":  # a lung kernel is not read over B30f
        np.testing.assert_array_equal(volume.array, smooth.array)
        assert "the smoother kernel, though pass 2 is later (--acquisition 2)" in said[0]
        assert "no AcquisitionTime says" not in said[0]
    else:
        np.testing.assert_array_equal(volume.array, later.array)  # no kernel preference
        assert "no AcquisitionTime says" not in said[0]
    if case != "kernels of no known order":
        assert "stacks 2 passes" in said[0] and "Check the phase by looking" in said[0]
        assert "reconstructed differently too" in said[0]
    else:
        assert "reconstructions of one scan" in said[0]
        assert "the kernels' names do not say which is smoother" in said[0]
        assert "Check the phase" not in said[0]


def _stacked_passes(folder, kernels, times):
    """A series stacking passes at the same 5 positions, no AcquisitionNumber, numbered on
    from one pass to the next: pass k's voxels ``make_ct(seed=20) + 100 k``, its
    ConvolutionKernel ``kernels[k]`` (None: untagged) and AcquisitionTime ``times[k]`` (one for
    all its slices, or one per slice). Returns the passes' volumes."""
    uid = "1.2.826.0.1.3680043.8.498.521"
    base = make_ct(shape=(5, 16, 16), seed=20)
    volumes = []
    for k, (kernel, when) in enumerate(zip(kernels, times, strict=True)):
        volume = CTVolume((base.array + 100 * k).astype(np.int16), base.spacing, origin=base.origin)
        volumes.append(volume)
        paths = write_ct_series(volume, folder, series_uid=uid, acquisition_number=k + 1,
                                instance_number_start=1 + 5 * k,
                                file_names=[f"p{k}_{i}.dcm" for i in range(5)])  # fmt: skip
        for i, path in enumerate(paths):
            ds = pydicom.dcmread(path)
            ds.pop("AcquisitionNumber", None)
            ds.pop("ConvolutionKernel", None)
            if kernel is not None:
                ds.ConvolutionKernel = kernel
            ds.AcquisitionTime = when[i] if isinstance(when, list) else when
            ds.save_as(path)
    return volumes


def test_a_phase_beside_another_reconstructed_twice_reads_the_later_phase_soft_kernel(tmp_path):
    """An arterial B30f pass (10:15:00), a portal venous B30f pass (10:16:00) and its B70f lung
    reconstruction (10:16:00) in one series without AcquisitionNumber: the lung kernel was
    read ("most slices, then the latest"), the warning "kernel B30f vs B30f vs B70f", as if
    three phases. The two at 10:16 are one moment: its smoother kernel stands for it, and the
    later phase is read; the warning names the phase and the two reconstructions."""
    volumes = _stacked_passes(tmp_path, ("B30f", "B30f", "B70f"), ("101500", "101600", "101600"))
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[1].array)  # portal venous, B30f
    said = [w for w in volume.meta["warnings"] if "stacks 3" in w]
    assert said and "read pass 2 (kernel B30f, 5 slices; the latest, in the smoother" in said[0]
    assert (
        "at 2 moments, contrast phases: pass 1; passes 2 and 3, reconstructions of one "
        in (said[0])
    )
    assert "differ in kernel B30f vs B70f" in said[0] and "B30f vs B30f" not in said[0], said[0]
    assert "Check the phase by looking" in said[0]
    found = discover_series(tmp_path)
    assert [(s.moment, s.sharper) for s in found] == [(1, False), (2, False), (2, True)]
    # with the lung reconstruction first and no AcquisitionTime, the same pass is read
    shutil.rmtree(tmp_path)
    volumes = _stacked_passes(tmp_path, ("B30f", "B70f", "B30f"), ("", "", ""))
    np.testing.assert_array_equal(read_dicom_series(tmp_path).array, volumes[2].array)


@pytest.mark.parametrize(
    "kernels, times, read",
    [
        (("B30f", "B30f"), ("101600", "101500"), 1),
        (("B30f", "B30f"), ("000010", "235950"), 1),  # across midnight: pass 1 the later
        (("B30f", "B30f", "B70f"), ("101600", "101500", "101500"), 1),
        (("B30f", "B30f"), ("", ""), 2),  # no time says: the last pass, as before
    ],
)
def test_the_latest_pass_read_is_the_latest_by_its_time_not_its_number(
    tmp_path, kernels, times, read
):
    """Two B30f phases numbered against their times (pass 1 at 10:16, pass 2 at 10:15) read
    pass 2, the earlier phase, and the warning called it "the latest"; with the arterial's
    B70f beside them, "the latest, in the smoother of its kernels". The rule's "latest" is
    the latest by AcquisitionTime where every slice's time says it (across midnight too),
    the Load panel's proposal the same pass, and said so; without times, the last pass."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    volumes = _stacked_passes(tmp_path, kernels, times)
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[read - 1].array)
    said = [w for w in volume.meta["warnings"] if "stacks" in w]
    found = discover_series(tmp_path)
    proposed, _ = proposed_series(found)
    assert proposed.acquisition == read
    brief = passes_brief(proposed, found)
    if times[0]:
        assert f"read pass {read} (" in said[0] and "latest by AcquisitionTime)" in said[0], said
        assert "the latest, in the smoother" not in said[0]
        assert brief.startswith(f"pass {read}") and "the latest phase by its time" in brief
        assert volume.meta["passes_line"] == (
            f"series #1 'CT' stacks {len(kernels)} passes; read {brief}; check the phase by looking at it"
        )
    else:
        assert "read pass 2 (5 slices; most slices, then the latest), not 1" in said[0], said
        assert brief == "pass 2, most slices, then the latest"
    assert volume.meta["passes_warning"] == said[0]


@pytest.mark.parametrize(
    "case",
    [
        "the earlier phase's lung reconstruction last",
        "the later phase's lung reconstruction first",
        "partly overlapping passes",
    ],
)
def test_a_sharp_pass_is_called_later_only_when_scanned_later(tmp_path, case):
    """An arterial B30f (10:15:00, pass 1), a portal venous B30f (10:16:00, pass 2) and the
    arterial's B70f (10:15:00, pass 3): the portal venous B30f was read, rightly, but said as
    "the smoother kernel, though pass 3 is later (--acquisition 3)", the earlier phase called
    later by its number (its own parenthesis set passes 1 and 3 at one moment); so too where
    the passes cover overlapping stretches. A portal venous B70f numbered before the arterial
    B30f read was not said as the later phase passed over (QA rev60). "Later" is said by
    AcquisitionTime; the Load panel's one line says the same."""
    if case == "partly overlapping passes":  # arterial 0-9, portal venous 4-15, B70f 0-9
        base = make_ct(shape=(16, 16, 16), seed=3)
        volumes, first = [], 1
        for k, (kernel, when, a, b) in enumerate(
            [("B30f", "101500", 0, 10), ("B30f", "101600", 4, 16), ("B70f", "101500", 0, 10)]
        ):
            origin = (base.origin[0] + a * base.spacing[0], *base.origin[1:])
            volumes.append(
                CTVolume((base.array[a:b] + 100 * k).astype(np.int16), base.spacing, origin=origin)
            )
            paths = write_ct_series(volumes[-1], tmp_path, series_uid="1.2.826.0.1.3680043.8.498.77",
                                    instance_number_start=first,
                                    file_names=[f"p{k}_{i}.dcm" for i in range(b - a)])  # fmt: skip
            first += b - a

            def edit(ds, kernel=kernel, when=when):
                ds.pop("AcquisitionNumber", None)
                ds.ConvolutionKernel, ds.AcquisitionTime = kernel, when

            _edit_all(paths, edit)
    else:
        kernels, times = {
            "the earlier phase's lung reconstruction last": (
                ("B30f", "B30f", "B70f"), ("101500", "101600", "101500")),
            "the later phase's lung reconstruction first": (("B70f", "B30f"), ("101600", "101500")),
        }[case]  # fmt: skip
        volumes = _stacked_passes(tmp_path, kernels, times)
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[1].array)  # pass 2, B30f, every case
    said = [w for w in volume.meta["warnings"] if "stacks" in w]
    if case == "the later phase's lung reconstruction first":
        assert (
            "read pass 2 (kernel B30f, 5 slices; the smoother kernel, though pass 1 is later "
            "(--acquisition 1)" in said[0]
        ), said
    else:
        # (the latest by time, said so: "the latest" alone was the last pass's number)
        assert "slices; most slices, then the latest by AcquisitionTime), not 1, 3 (" in said[0]
        assert "is later" not in said[0] and "--acquisition" not in said[0]
    # the Load panel's row says it with "choose its row", its status in one line
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    found = discover_series(tmp_path)
    proposed, note = proposed_series(found)
    _, in_panel = proposed_series(found, panel=True)
    assert note == said[0] and "--acquisition" not in in_panel
    brief = passes_brief(proposed, found)
    if case == "the later phase's lung reconstruction first":
        assert "though pass 1 is later (choose its row)" in in_panel, in_panel
        assert brief == (
            "pass 2 (kernel B30f), the smoother kernel; pass 1, a later phase, is in a sharp "
            "kernel (B70f)"
        )
    else:
        assert brief == (
            "pass 2 (kernel B30f), the latest phase by its time; pass 3 is pass 1 in a sharper "
            "kernel (B70f)"
        )
    # moments are numbered as they were scanned: the portal venous one second
    assert {s.acquisition: s.moment for s in found} == (
        {1: 2, 2: 1}
        if case == "the later phase's lung reconstruction first"
        else {1: 1, 2: 2, 3: 1}
    )


@pytest.mark.parametrize(
    "case",
    ["two phases", "a phase and its lung reconstruction", "three passes", "a SEG on the first"],
)
def test_the_pass_proposed_for_a_folder_is_the_one_read_with_the_same_reason(tmp_path, case):
    """The Load panel proposed the first row of a series stacking passes (the arterial phase)
    while ``read_dicom_series``, what ``livertumor segment`` reads, took the later phase: a
    radiologist in napari and a batch run over the same folder segmented different phases.
    ``proposed_series`` answers with the reader's own choice and warning; loading that pass by
    its number says the same reason (it said "the one chosen"), another pass "the one chosen"."""
    from napari_livertumor.io.dicom import proposed_series
    from napari_livertumor.io.seg import write_dicom_seg

    kernels, times, read = {
        "two phases": (("B30f", "B30f"), ("101500", "101600"), 2),
        "a phase and its lung reconstruction": (("B30f", "B70f"), ("101500", "101500"), 1),
        "three passes": (("B30f", "B30f", "B70f"), ("101500", "101600", "101600"), 2),
        "a SEG on the first": (("B30f", "B30f", "B70f"), ("101500", "101600", "101600"), 1),
    }[case]
    volumes = _stacked_passes(tmp_path, kernels, times)
    if case == "a SEG on the first":
        first = read_dicom_series(tmp_path, acquisition=1)
        labels = np.zeros(first.shape, np.uint8)
        labels[1:4, 4:10, 4:10] = 1
        write_dicom_seg(labels, first, tmp_path / "seg" / "s.dcm", [(1, "Liver")])
    refs: set = set()
    found = discover_series(tmp_path, seg_refs=refs)
    proposed, note = proposed_series(found, refs)
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[read - 1].array)
    assert proposed.acquisition == volume.meta["acquisition_number"] == read
    said = [w for w in volume.meta["warnings"] if "stacks" in w]
    assert note == said[0], (note, said)
    again = read_dicom_series(tmp_path, acquisition=read)  # the Load panel's proposed row
    assert [w for w in again.meta["warnings"] if "stacks" in w] == said
    other = next(s.acquisition for s in found if s.acquisition != read and s.is_image)
    said = [w for w in read_dicom_series(tmp_path, acquisition=other).meta["warnings"]]
    assert any(f"read pass {other} (" in w and "the one chosen" in w for w in said), said


@pytest.mark.parametrize("case", ["across midnight", "a second apart"])
def test_phases_whose_time_spans_touch_are_not_called_reconstructions(tmp_path, case):
    """Two phases (B30f, then B70f) whose per-slice AcquisitionTimes run 23:59:55-00:00:03
    and 00:00:40-48, or 10:15:00-04 and 10:15:05-09 (back to back): their spans were
    compared as wholes (the first across midnight spanned the whole day; the second touched),
    and the warning said "reconstructions of one scan ... not contrast phases ... at the same
    AcquisitionTime", dropping "Check the phase", though every position's two slices lie
    seconds apart."""
    times = {
        "across midnight": (
            ["235955", "235957", "235959", "000001", "000003"],
            [f"0000{40 + 2 * i}" for i in range(5)],
        ),
        "a second apart": ([f"10150{i}" for i in range(5)], [f"10150{5 + i}" for i in range(5)]),
    }[case]
    _stacked_passes(tmp_path, ("B30f", "B70f"), times)
    said = [w for w in read_dicom_series(tmp_path).meta["warnings"] if "stacks 2" in w]
    assert said and "stacks 2 passes" in said[0] and "Check the phase by looking" in said[0]
    assert "reconstructions of one scan" not in said[0], said[0]
    found = discover_series(tmp_path)
    assert not any(s.same_scan for s in found) and all(s.other_moments for s in found)
    assert [s.moment for s in found] == [1, 2]


@pytest.mark.parametrize(
    ("stamps", "one_scan"),
    [
        (("20261206101500.25", "20261206101500.25"), True),
        (("20261206101500", "20261206101610+0100"), False),
    ],
    ids=["one moment", "a minute apart"],
)
def test_passes_timed_by_acquisition_datetime_alone_are_told_apart_by_it(
    tmp_path, stamps, one_scan
):
    """Headers that give the moment as AcquisitionDateTime only (no AcquisitionTime, as some
    exports write them): read with its time cut a digit off, two reconstructions of one scan
    were said as "passes ... no AcquisitionTime says whether they are phases ... Check the
    phase by looking", and phases a minute apart were not told from reconstructions either."""
    _two_reconstructions(tmp_path, ("B30f", "B70f"))
    for k, stamp in enumerate(stamps):
        _edit_all(sorted(tmp_path.glob(f"r{k}_*.dcm")),
                  lambda ds, s=stamp: setattr(ds, "AcquisitionDateTime", s))  # fmt: skip
    found = discover_series(tmp_path)
    assert [(s.same_scan, s.other_moments) for s in found] == [(one_scan, not one_scan)] * 2
    said = [w for w in read_dicom_series(tmp_path).meta["warnings"] if "stacks 2" in w]
    assert said and "no AcquisitionTime says" not in said[0], said
    assert ("reconstructions of one scan" in said[0]) == one_scan, said[0]


def test_passes_of_which_only_one_is_timed_are_not_set_at_two_moments(tmp_path):
    """One pass with AcquisitionTime, the other without (an anonymiser that blanked some
    files): the missing time is no evidence. Taken as midnight, it made the two passes phases
    ten hours apart and dropped the warning's "no AcquisitionTime says whether they are
    phases or reconstructions of one scan"; compared as a time, it stopped the read with a
    TypeError. The smoother kernel is read, the passes said as not known to be either."""
    smooth, _sharp = _two_reconstructions(tmp_path, ("B30f", "B70f"), ("101500", ""))
    found = discover_series(tmp_path)
    assert [(s.same_scan, s.other_moments, s.moment) for s in found] == [(False, False, 0)] * 2
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, smooth.array)
    said = [w for w in volume.meta["warnings"] if "stacks 2" in w]
    assert said and "no AcquisitionTime says whether they are phases" in said[0], said
    assert "read pass 1 (kernel B30f, 5 slices; the smoother kernel" in said[0]


@pytest.mark.parametrize(
    ("times", "one_scan"),
    [(("101500", "101501"), True), (("101501", "101500"), True), (("101610.5", "101500"), False)],
    ids=["a second later", "a second earlier", "the later-numbered scanned first"],
)
def test_passes_are_one_moment_within_two_seconds_either_way(tmp_path, times, one_scan):
    """Two reconstructions of one scan whose slices' AcquisitionTime differ by a second
    (scanners round it per reconstruction) were said as phases to check; and which pass
    is numbered first says nothing of which was scanned first: a phase numbered second but
    scanned a minute before the other is another moment all the same, not a reconstruction
    of the same scan."""
    _two_reconstructions(tmp_path, ("B30f", "B70f"), times)
    found = discover_series(tmp_path)
    assert [(s.same_scan, s.other_moments) for s in found] == [(one_scan, not one_scan)] * 2
    said = [w for w in read_dicom_series(tmp_path).meta["warnings"] if "stacks 2" in w]
    assert said and ("reconstructions of one scan" in said[0]) == one_scan, said
    assert ("Check the phase by looking" in said[0]) != one_scan, said[0]


def test_folders_each_holding_both_reconstructions_are_split_by_kernel(tmp_path):
    """Two reconstructions (B30f, B70f) of one scan, each numbered 1..5, their files spread
    over two folders by something else (each folder holding every position once, of either
    kernel): split by folder, each "pass" was a mix of soft-tissue and lung-kernel slices,
    one such patchwork read as the scan. They are split by kernel and the B30f read."""
    smooth, _sharp = _two_reconstructions(
        tmp_path / "all", ("B30f", "B70f"), ("101500", "101500"), restart=True
    )
    for k in range(5):
        for r in range(2):
            folder = tmp_path / "all" / ("A" if (k < 3) == (r == 0) else "B")
            folder.mkdir(exist_ok=True)
            shutil.move(tmp_path / "all" / f"r{r}_{k}.dcm", folder / f"r{r}_{k}.dcm")
    found = discover_series(tmp_path / "all")
    assert {s.passes_by for s in found} == {"reconstruction"}, found
    assert [s.reconstruction for s in found] == ["kernel B30f", "kernel B70f"]
    np.testing.assert_array_equal(read_dicom_series(tmp_path / "all").array, smooth.array)


@pytest.mark.parametrize(
    "times",
    [("", "", ""), ("101500", ["101600", "101600", "", "101600", "101600"], "101600")],
    ids=["untimed", "one slice untimed"],
)
def test_passes_sharing_a_kernel_are_said_as_sharing_it(tmp_path, times):
    """Passes in B30f, B30f and B70f that no time sets apart (QA adv61 c9: one slice without
    its AcquisitionTime): the warning said "they were reconstructed differently too: kernel
    B30f vs B30f vs B70f", passes 1 and 2 alike, and read pass 2 as "the smoother kernel",
    pass 1's too: it is the latest of the two in it. Said so, here and in the Load panel."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    volumes = _stacked_passes(tmp_path, ("B30f", "B30f", "B70f"), times)
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[1].array)
    said = [w for w in volume.meta["warnings"] if "stacks 3" in w]
    assert said and "B30f vs B30f" not in said[0], said
    assert (
        "reconstructed differently too: kernel B30f (passes 1 and 2) vs B70f (pass 3);" in said[0]
    )
    assert (
        "read pass 2 (kernel B30f, 5 slices; the latest of the smoother kernel's passes (1 and 2):"
        in said[0]
    )
    found = discover_series(tmp_path)
    proposed, note = proposed_series(found)
    assert proposed.acquisition == 2 and note == said[0]
    assert passes_brief(proposed, found) == (
        "pass 2 (kernel B30f), the latest of the smoother kernel's passes (1 and 2); pass 3 is "
        "in a sharp kernel (B70f)"
    )


@pytest.mark.parametrize("times", [("101600", "101500"), ("101500", "101600")])
def test_passes_each_with_a_seg_say_the_rule_chose_between_them(tmp_path, times):
    """Two passes without AcquisitionNumber, a DICOM SEG drawn on each (QA adv61 synq2): the
    later by AcquisitionTime was read, rightly, but said as "the one a DICOM SEG references"
    ("the one its DICOM SEG was drawn on" in the Load panel), as if the SEG had chosen it.
    The SEGs reference both alike: the rule chose, said so. A SEG on one pass only still
    says it chose."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series
    from napari_livertumor.io.seg import write_dicom_seg

    volumes = _stacked_passes(tmp_path, ("B30f", "B30f"), times)
    for k in (1, 2):
        drawn_on = read_dicom_series(tmp_path, acquisition=k)
        labels = np.zeros(drawn_on.shape, np.uint8)
        labels[1:4, 4:10, 4:10] = 1
        write_dicom_seg(labels, drawn_on, tmp_path / f"seg{k}" / "s.dcm", [(1, "Liver")])
    read = 1 if times[0] > times[1] else 2
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[read - 1].array)
    said = [w for w in volume.meta["warnings"] if "stacks 2" in w]
    assert (
        said
        and f"read pass {read} (5 slices; DICOM SEGs reference it and pass {3 - read} "
        "alike; of those, most slices, then the latest by AcquisitionTime), not"
        in said[0]
    ), said
    refs: set = set()
    found = discover_series(tmp_path, seg_refs=refs)
    proposed, note = proposed_series(found, refs)
    assert proposed.acquisition == read and note == said[0]
    assert passes_brief(proposed, found, refs) == (
        f"pass {read}, of the passes DICOM SEGs were drawn on (1 and 2), the latest phase by its "
        "time"
    )
    shutil.rmtree(tmp_path / f"seg{read}")  # a SEG on the other pass only: it chose
    said = [w for w in read_dicom_series(tmp_path).meta["warnings"] if "stacks 2" in w]
    assert f"read pass {3 - read} (5 slices; the one a DICOM SEG references)" in said[0], said


def _numbered_passes(folder, passes):
    """A series stacking passes at the same 6 positions (32 × 32 pixels), each ``(its
    AcquisitionNumber, ConvolutionKernel, AcquisitionTime)``, numbered on from one pass to the
    next: pass k's voxels ``make_ct(seed=21) + 100 k``. Returns the passes' volumes."""
    base = make_ct(shape=(6, 32, 32), seed=21)
    volumes = []
    for k, (acq, kernel, when) in enumerate(passes):
        volume = CTVolume((base.array + 100 * k).astype(np.int16), base.spacing, origin=base.origin)
        volumes.append(volume)
        paths = write_ct_series(volume, folder, series_uid="1.2.826.0.1.3680043.8.498.523",
                                acquisition_number=acq, instance_number_start=1 + 6 * k,
                                file_names=[f"a{k}_{i}.dcm" for i in range(6)])  # fmt: skip

        def edit(ds, kernel=kernel, when=when):
            ds.ConvolutionKernel = kernel
            if when:
                ds.AcquisitionTime = when
            else:  # untimed: the tags removed
                ds.pop("AcquisitionTime", None)
                ds.pop("AcquisitionDateTime", None)

        _edit_all(paths, edit)
    return volumes


@pytest.mark.parametrize(
    "passes, read",
    [
        ([(1, "B30f", "101600"), (2, "B30f", "101500")], 1),  # renumbered by an archive
        ([(1, "B30f", "101500"), (2, "B30f", "101600")], 2),
        ([(1, "B30f", "000010"), (2, "B30f", "235950")], 1),  # across midnight
        ([(1, "B30f", ""), (2, "B30f", "")], 2),  # no time says: the higher number, as before
    ],
)
def test_acquisitions_read_the_latest_by_their_time_not_their_number(tmp_path, passes, read):
    """Two phases each under its AcquisitionNumber, numbered against their times (acq 1
    scanned at 10:16, acq 2 at 10:15, as archives renumber): acq 2, the earlier phase, was
    read as "the latest", while passes without AcquisitionNumber read the latest by
    AcquisitionTime. The Load panel proposes the same acquisition, with the same reason."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    volumes = _numbered_passes(tmp_path, passes)
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[read - 1].array)
    said = [w for w in volume.meta["warnings"] if "stacks 2" in w]
    timed = "then the latest by AcquisitionTime)" if passes[0][2] else "then the latest)"
    assert said and f"read AcquisitionNumber {read} (6 slices; most slices, {timed}" in said[0]
    found = discover_series(tmp_path)
    proposed, note = proposed_series(found)
    assert proposed.acquisition == volume.meta["acquisition_number"] == read
    assert note == said[0] == volume.meta["passes_warning"]
    assert passes_brief(proposed, found).startswith(f"acquisition {read}, ")


@pytest.mark.parametrize("kernels", [("B70f", "B30f"), ("B30f", "B70f")])
def test_two_numbered_reconstructions_of_one_scan_read_the_smoother_kernel(tmp_path, kernels):
    """A soft-tissue and a lung reconstruction of one scan (the same AcquisitionTime), each
    under its AcquisitionNumber: the higher number was read, whichever its kernel, said as
    "most slices, then the latest" with no kernel named, while the same passes without
    AcquisitionNumber read the B30f as the smoother kernel of reconstructions of one scan."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    volumes = _numbered_passes(tmp_path, [(1, kernels[0], "101500"), (2, kernels[1], "101500")])
    smooth = kernels.index("B30f") + 1
    sharp = 3 - smooth
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[smooth - 1].array)
    said = [w for w in volume.meta["warnings"] if "stacks 2" in w]
    assert said and "stacks 2 reconstructions of one scan" in said[0], volume.meta["warnings"]
    assert f"kernel {kernels[0]} vs {kernels[1]}" in said[0]
    assert f"read AcquisitionNumber {smooth} (kernel B30f, 6 slices; the smoother kernel" in said[0]
    assert f"not {sharp} (kernel B70f)" in said[0] and f"--acquisition {sharp}" in said[0]
    found = discover_series(tmp_path)
    assert {s.acquisition: s.acquisition_label for s in found} == {
        smooth: f"acq {smooth}, kernel B30f",
        sharp: f"acq {sharp}, kernel B70f",
    }
    proposed, note = proposed_series(found)
    assert proposed.acquisition == smooth and note == said[0]
    assert passes_brief(proposed, found) == (
        f"acquisition {smooth} (kernel B30f), the smoother kernel; acquisition {sharp} is "
        f"acquisition {smooth} in a sharper kernel (B70f)"
    )
    assert volume.meta["passes_line"].startswith("series #1 'CT' stacks 2 reconstructions of")
    other = read_dicom_series(tmp_path, acquisition=sharp)  # the Load panel's row
    np.testing.assert_array_equal(other.array, volumes[sharp - 1].array)


@pytest.mark.parametrize("order", [("B30f", "B70f"), ("B70f", "B30f")])
def test_an_acquisition_holding_two_reconstructions_is_split_and_its_smoother_kernel_read(
    tmp_path, order
):
    """An arterial acq 1 (B30f, 10:15) and a portal venous acq 2 held in two kernels (B30f and
    B70f, both AcquisitionNumber 2, 10:16): refused as "12 slices at only 6 positions ... no
    AcquisitionNumber to tell them apart". Its two reconstructions are told apart as passes
    without AcquisitionNumber are, the three numbered passes 1-3, and the portal venous B30f
    read, the B70f named as its sharper reconstruction; each row reads its own pass."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    volumes = _numbered_passes(
        tmp_path, [(1, "B30f", "101500"), (2, order[0], "101600"), (2, order[1], "101600")]
    )
    smooth, sharp = (2, 3) if order[0] == "B30f" else (3, 2)
    found = discover_series(tmp_path)
    assert {s.acquisition: s.acquisition_label for s in found} == {
        1: "pass 1, acq 1, kernel B30f",
        smooth: f"pass {smooth}, acq 2, kernel B30f",
        sharp: f"pass {sharp}, acq 2, kernel B70f",
    }
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[smooth - 1].array)
    assert volume.meta["acquisition_label"] == f"pass {smooth}, acq 2, kernel B30f"
    said = [w for w in volume.meta["warnings"] if "stacks 3" in w]
    assert said and "some of them under one AcquisitionNumber" in said[0], said
    assert "removed by an anonymiser" not in said[0]
    assert "told apart by their AcquisitionNumber and, within acquisition 2," in said[0]
    assert (
        f"read pass {smooth} (acq 2, kernel B30f, 6 slices; the latest, in the smoother" in said[0]
    )
    assert f"reconstructions of one scan that differ in kernel {order[0]} vs {order[1]}" in said[0]
    proposed, note = proposed_series(found)
    assert proposed.acquisition == smooth and note == said[0]
    assert passes_brief(proposed, found) == (
        f"pass {smooth} (acq 2, kernel B30f), the latest phase, in the smoother kernel; pass "
        f"{sharp} is pass {smooth} in a sharper kernel (B70f)"
    )
    for k in (1, sharp):  # the Load panel's rows, --acquisition
        np.testing.assert_array_equal(
            read_dicom_series(tmp_path, acquisition=k).array, volumes[k - 1].array
        )


def _chunked_phases(folder, numbering, per_chunk, times):
    """Two phases of a step-and-shoot scan stacked in one series, 16 slices each at the same
    positions (32 × 32 pixels), a new AcquisitionNumber every ``per_chunk`` slices (numbered
    on from one phase to the next, or restarted at 1: ``numbering``), InstanceNumber numbered
    on; slice k of phase p scanned at ``times[p]`` (HHMMSS) + k / 2 s ("": untimed). Phase p's
    voxels ``make_ct(seed=31) + 100 p``. Returns the phases' volumes."""
    base = make_ct(shape=(16, 32, 32), seed=31)
    volumes = []
    for p, when in enumerate(times):
        volume = CTVolume((base.array + 100 * p).astype(np.int16), base.spacing, origin=base.origin)
        volumes.append(volume)
        paths = write_ct_series(volume, folder, series_uid="1.2.826.0.1.3680043.8.498.531",
                                instance_number_start=1 + 16 * p,
                                file_names=[f"p{p}_{k:02d}.dcm" for k in range(16)])  # fmt: skip
        first_number = 1 + (16 // per_chunk) * p if numbering == "continued" else 1
        for k, path in enumerate(paths):
            ds = pydicom.dcmread(path)
            ds.AcquisitionNumber = first_number + k // per_chunk
            if when:
                s = int(when[:2]) * 3600 + int(when[2:4]) * 60 + int(when[4:]) + k / 2
                ds.AcquisitionTime = f"{s // 3600:02.0f}{s % 3600 // 60:02.0f}{s % 60:04.1f}"
            ds.save_as(path)
    return volumes


@pytest.mark.parametrize("times", [("101600", "101500"), ("", "")], ids=["timed", "untimed"])
@pytest.mark.parametrize("per_chunk", [4, 1], ids=["4 slices a chunk", "1 slice a chunk"])
@pytest.mark.parametrize("numbering", ["continued", "restarted"])
def test_a_step_and_shoot_scans_chunks_are_joined_into_its_phases(
    tmp_path, numbering, per_chunk, times
):
    """Two phases of a step-and-shoot scan stacked in one series, a new AcquisitionNumber every
    4 slices (or every slice) numbered on from one phase to the next (QA adv61 c17, c18): each
    chunk was taken for an acquisition of its own, 8 (or 32) "acquisitions" over the same
    stretch, and one chunk read: a quarter of a phase segmented, or one slice refused as "too
    small to hold a liver". The chunks of a phase lie at positions of their own and tile the
    stretch: they are joined into its pass, and the phases told apart as passes are (the
    latest by AcquisitionTime, else the last); numbered restarting at 1 in each phase, as
    before, they are one volume's chunks split by InstanceNumber."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    volumes = _chunked_phases(tmp_path, numbering, per_chunk, times)
    read = 1 if times[0] else 2  # phase 1 scanned at 10:16, after phase 2; untimed the last
    volume = read_dicom_series(tmp_path)
    assert volume.shape == (16, 32, 32)
    np.testing.assert_array_equal(volume.array, volumes[read - 1].array)
    found = discover_series(tmp_path)
    assert [s.n_slices for s in found] == [16, 16]
    said = [w for w in volume.meta["warnings"] if "stacks" in w]
    assert said and "stacks 2 passes over the same stretch" in said[0], said
    proposed, note = proposed_series(found)
    assert proposed.acquisition == volume.meta["acquisition_number"] == read
    assert note == said[0]
    other = read_dicom_series(tmp_path, acquisition=f"pass {3 - read}")  # the panel's row
    np.testing.assert_array_equal(other.array, volumes[2 - read].array)
    if numbering == "restarted":
        return
    n = 16 // per_chunk
    numbers = [f"1–{n}", f"{n + 1}–{2 * n}"]
    assert [s.acquisition_label for s in found] == [
        f"pass {k + 1}, acq {numbers[k]}" for k in (0, 1)
    ]
    assert "removed by an anonymiser" not in said[0]
    assert "each scanned in chunks under AcquisitionNumbers of their own" in said[0], said[0]
    assert (
        f"read pass {read} (acq {numbers[read - 1]}, 16 slices; most slices, then the latest"
        in said[0]
    )
    assert passes_brief(proposed, found).startswith(f"pass {read} (acq {numbers[read - 1]}), ")
    assert volume.meta["acquisition_label"] == f"pass {read}, acq {numbers[read - 1]}"


def test_a_single_step_and_shoot_phase_and_acquisitions_minutes_apart_are_not_joined(tmp_path):
    """One step-and-shoot phase (4 chunks under AcquisitionNumbers 1-4) stays one volume, as
    before; the halves of a stretch scanned two minutes apart, before a whole pass, are no
    chunks of one pass: acquisitions they stay, and the whole pass is read."""
    volumes = _chunked_phases(tmp_path / "one", "continued", 4, ("101500",))
    volume = read_dicom_series(tmp_path / "one")
    np.testing.assert_array_equal(volume.array, volumes[0].array)
    assert not any("stacks" in w for w in volume.meta["warnings"])
    volumes = _chunked_phases(tmp_path / "apart", "continued", 8, ("101500", "101800"))
    later_half = sorted((tmp_path / "apart").glob("p0_*.dcm"))[8:]
    _edit_all(later_half, lambda ds: setattr(ds, "AcquisitionTime", "101700"))
    _edit_all(sorted((tmp_path / "apart").glob("p1_*.dcm")),
              lambda ds: setattr(ds, "AcquisitionNumber", 3))  # fmt: skip
    found = discover_series(tmp_path / "apart")
    assert [(s.acquisition, s.passes_by) for s in found] == [(3, ""), (1, ""), (2, "")]
    np.testing.assert_array_equal(read_dicom_series(tmp_path / "apart").array, volumes[1].array)


def test_uppercase_siemens_kernels_are_ranked_and_other_vendors_names_are_not():
    """ "B30F" and "B70F" (as some archives and anonymisers rewrite Siemens' B30f, B70f) were
    not ranked: the lung kernel, the later pass, was read, "the kernels' names do not say
    which is smoother"; BR40D alike. Canon's FC03 and FL04, Philips' letters stay unranked."""
    from napari_livertumor.io.dicom import kernel_sharpness

    assert kernel_sharpness("B30F") == ("Siemens", 30)
    assert kernel_sharpness("B70F") == ("Siemens", 70)
    assert kernel_sharpness("BR40D") == ("Siemens", 40)
    assert kernel_sharpness("BL57D\\3") == ("Siemens", 57)
    assert kernel_sharpness("Br40d") == ("Siemens", 40)  # (as before)
    assert kernel_sharpness("standard") == ("GE", 2)
    assert kernel_sharpness("b70f") == ("Siemens", 70)  # (lowercased whole)
    for other in ("FC03", "FC52", "FL04", "fc03", "B", "YA", "L", "UB"):
        assert kernel_sharpness(other) is None, other


@pytest.mark.parametrize(
    ("kernel", "sharp"), [("B50f", True), ("B45f", False), ("LUNG", True), ("DETAIL", False)]
)
def test_sharp_kernels_begin_at_b50f_and_ges_lung(kernel, sharp):
    """The line between soft-tissue and sharp (lung, bone) kernels, as ``_SHARP_FROM`` draws
    it: Siemens B50f and up, GE's LUNG and up; B45f and DETAIL are soft-tissue kernels."""
    from napari_livertumor.io.dicom import is_sharp_kernel, kernel_sharpness

    assert is_sharp_kernel(kernel_sharpness(kernel)) == sharp


def test_a_later_phase_in_b50f_is_passed_over_for_the_earlier_b30f(tmp_path):
    """B50f is a sharp kernel: a later phase in it is not read over an earlier B30f one."""
    from napari_livertumor.io.dicom import proposed_series

    _stacked_passes(tmp_path, ("B30f", "B50f"), ("101500", "101600"))
    proposed, _ = proposed_series(discover_series(tmp_path))
    assert proposed.acquisition == 1


def test_untimed_passes_mark_the_sharper_of_two_soft_tissue_kernels(tmp_path):
    """Without AcquisitionTime, passes in B30f and B45f (neither a sharp kernel) are all of
    one unknown moment: the B45f is the sharper reconstruction, the B30f not."""
    _stacked_passes(tmp_path, ("B30f", "B45f"), ("", ""))
    assert [s.sharper for s in discover_series(tmp_path)] == [False, True]


@pytest.mark.parametrize(
    ("kernels", "times", "moments"),
    [
        (("B30f", "B30f"), ([f"10150{i}" for i in range(5)], [f"1015{9 - i:02d}" for i in range(5)]), [1, 2]),
        (("B30f", "B70f"), ("101500", "101502"), [1, 2]),
        (("B30f", "B70f"), ("235959.5", "000000.4"), [1, 1]),
    ],
    ids=["a pass running back up a second after", "two seconds apart", "across midnight"],
)  # fmt: skip
def test_passes_are_one_moment_only_where_every_shared_position_is(
    tmp_path, kernels, times, moments
):
    """Passes are one moment where each position they share holds times under 2 s apart,
    every one of them, and across midnight: a pass running back up the table, starting 1 s
    after the first ended, meets it at one position only (another moment); 2 s apart is
    another moment; 23:59:59.5 and 00:00:00.4 are one (the same scan, reconstructed twice)."""
    _stacked_passes(tmp_path, kernels, times)
    found = discover_series(tmp_path)
    assert [s.moment for s in found] == moments
    assert [s.same_scan for s in found] == [moments == [1, 1]] * 2


def test_the_load_panel_line_of_passes_says_the_moment_and_the_kernels(tmp_path):
    """The Load panel's one line, of a phase and the later phase reconstructed twice; of two
    untimed passes in B30f and B70f; and of one scan reconstructed twice, which is no phase to
    check by looking."""
    from napari_livertumor.io.dicom import passes_brief, proposed_series

    _stacked_passes(tmp_path / "a", ("B30f", "B30f", "B70f"), ("101500", "101600", "101600"))
    found = discover_series(tmp_path / "a")
    assert passes_brief(proposed_series(found)[0], found) == (
        "pass 2 (kernel B30f), the latest phase, in the smoother kernel; pass 3 is pass 2 in a "
        "sharper kernel (B70f)"
    )
    _stacked_passes(tmp_path / "b", ("B30f", "B70f"), ("", ""))
    found = discover_series(tmp_path / "b")
    assert passes_brief(proposed_series(found)[0], found) == (
        "pass 1 (kernel B30f), the smoother kernel; pass 2 is in a sharp kernel (B70f)"
    )
    _stacked_passes(tmp_path / "c", ("B30f", "B70f"), ("101500", "101500"))
    line = read_dicom_series(tmp_path / "c").meta["passes_line"]
    assert line.startswith("series #1 'CT' stacks 2 reconstructions of one scan; read pass 1")
    assert "check the phase" not in line
    # a B45f beside a B30f is sharper, not "a sharp kernel" (a lung or bone one, B50f on)
    _stacked_passes(tmp_path / "d", ("B30f", "B45f"), ("", ""))
    found = discover_series(tmp_path / "d")
    assert passes_brief(proposed_series(found)[0], found) == (
        "pass 1 (kernel B30f), the smoother kernel; pass 2 is in a sharper kernel (B45f)"
    )


def test_uppercase_siemens_reconstructions_read_the_smoother_kernel(tmp_path):
    """B30F and B70F reconstructions of one scan (same AcquisitionTime): the B70F was read."""
    volumes = _stacked_passes(tmp_path, ("B30F", "B70F"), ("101500", "101500"))
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[0].array)
    said = [w for w in volume.meta["warnings"] if "stacks 2" in w]
    assert said and "read pass 1 (kernel B30F, 5 slices; the smoother kernel" in said[0], said


def test_a_pass_without_a_kernel_leaves_the_others_named(tmp_path):
    """One reconstruction lacking ConvolutionKernel beside a B70f one at the same time: no
    kernel was named at all, and the warning said "passes ... Check the phase" with no word of
    the reconstructions. The B70f is named, the other as having no kernel recorded."""
    _stacked_passes(tmp_path, (None, "B70f"), ("101500", "101500"))
    found = discover_series(tmp_path)
    assert [s.acquisition_label for s in found] == [
        "pass 1, no kernel recorded",
        "pass 2, kernel B70f",
    ]
    assert all(s.same_scan for s in found)
    said = [w for w in read_dicom_series(tmp_path).meta["warnings"] if "stacks 2" in w]
    assert said and "reconstructions of one scan" in said[0], said
    assert "kernel (none recorded) vs B70f" in said[0] and "not every pass's kernel" in said[0]


def test_a_short_pass_beside_one_running_the_other_way_is_not_split_wrongly(tmp_path):
    """The first pass missing its last slice, the second running feet to head: the second's
    first slice joined the first pass, a volume of two phases said as nothing. Not split
    now; read as one series, the differing copies at each position are said (a known limit:
    nothing in these headers tells the passes apart)."""
    uid = "1.2.826.0.1.3680043.8.498.518"
    first = make_ct(shape=(6, 16, 16), seed=5)
    second = CTVolume(first.array + 500, first.spacing, origin=first.origin)
    paths = write_ct_series(first, tmp_path, series_uid=uid, acquisition_number=1,
                            file_names=[f"a{i}.dcm" for i in range(6)])  # fmt: skip
    paths += write_ct_series(second, tmp_path, series_uid=uid, acquisition_number=2,
                             instance_number_start=7,
                             file_names=[f"b{i}.dcm" for i in range(6)])  # fmt: skip

    def one_series(ds):
        ds.pop("AcquisitionNumber", None)
        if ds.InstanceNumber >= 7:  # the second pass numbered from its last slice to its first
            ds.InstanceNumber = 7 + 12 - int(ds.InstanceNumber)

    _edit_all(paths, one_series)
    (tmp_path / "a5.dcm").unlink()  # the first pass's last slice is missing
    found = discover_series(tmp_path)
    assert len(found) == 1 and not found[0].passes_by
    read = read_dicom_series(tmp_path)
    assert any("hold different pixels" in w for w in read.meta["warnings"]), read.meta["warnings"]


def test_passes_that_cannot_be_told_apart_are_refused_naming_what_they_look_like(tmp_path):
    """Numbers restarting in one folder: nothing tells the passes apart; refused, said."""
    uid = "1.2.826.0.1.3680043.8.498.516"
    paths = []
    for k in range(2):
        paths += write_ct_series(make_ct(shape=(5, 16, 16), seed=k), tmp_path, series_uid=uid,
                                 acquisition_number=k + 1,  # (own SOP UIDs; removed below)
                                 file_names=[f"p{k}_{i}.dcm" for i in range(5)])  # fmt: skip
    _edit_all(paths, lambda ds: ds.pop("AcquisitionNumber", None))
    with pytest.raises(InputError, match="looks like 2 passes stacked in one series"):
        read_dicom_series(tmp_path)


def test_a_series_read_by_its_uid_still_names_another_patients_scan_in_the_folder(tmp_path):
    """Training reads a patient folder by its SEG's series: a study of another patient filed in
    that folder was never mentioned (segment and convert said it)."""
    vol = CTVolume(np.full((4, 8, 8), 40, np.int16), spacing=(2.0, 1.0, 1.0))
    write_ct_series(vol, tmp_path / "HCC_005" / "ct", patient_id="HCC_005", series_uid="1.2.3.5")
    write_ct_series(vol, tmp_path / "HCC_005" / "stray", patient_id="HCC_006")
    read = read_dicom_series(tmp_path / "HCC_005", series_uid="1.2.3.5")
    assert read.meta["patient_id"] == "HCC_005"
    said = [w for w in read.meta["warnings"] if "another patient" in w]
    assert said and "'HCC_006'" in said[0], read.meta["warnings"]
    assert "wrong patient's folder" in said[0]
    # an export of many patients' series, one of them chosen (Load's Find series): said plainly
    export = tmp_path / "export"
    shutil.copytree(tmp_path / "HCC_005", export)
    read = read_dicom_series(export, series_uid="1.2.3.5")
    said = [w for w in read.meta["warnings"] if "another patient" in w]
    assert said and "wrong patient's folder" not in said[0]
    # the stray study itself, read from the folder named after the other patient
    stray = read_dicom_series(tmp_path / "HCC_005", series_uid=read_uid(tmp_path / "HCC_005"))
    assert stray.meta["patient_id"] == "HCC_006"
    assert any(
        "'HCC_006' was read from the folder of 'HCC_005'" in w for w in stray.meta["warnings"]
    ), stray.meta["warnings"]


def read_uid(folder) -> str:
    """The SeriesInstanceUID of the stray series written under ``folder/stray``."""
    return str(pydicom.dcmread(next((folder / "stray").iterdir())).SeriesInstanceUID)


def test_a_segmentation_this_tool_made_opened_as_a_scan_is_said_to_be_one(tmp_path):
    """It read "not a readable DICOM file": it is a result, not a scan (and not unreadable)."""
    from napari_livertumor.io.seg import model_seg_description, write_dicom_seg

    source = make_ct(shape=(5, 16, 16))
    write_ct_series(source, tmp_path / "ct")
    ct = load_ct(tmp_path / "ct")
    seg = tmp_path / "result" / "x_seg.dcm"
    labels = np.zeros(ct.shape, np.uint8)
    labels[1:4, 4:12, 4:12] = 1
    write_dicom_seg(labels, ct, seg, series_description=model_seg_description("liver+tumor"))
    with pytest.raises(InputError) as info:
        load_ct(seg)
    text = str(info.value)
    assert "a segmentation made by this tool's models (not a CT): open its CT" in text, text
    assert "not a readable" not in text


# ------------------------------------------------------------------- what a listing promises
def test_identical_copies_in_several_folders_are_listed_and_read_once_named_by_their_folder(
    tmp_path,
):
    """Three copies of a series (the same SOP instances in c1/, c2/, c3/) were listed as 18
    slices and loaded as 6, said as "12 slice(s) repeated an existing position" naming files
    without the folder that told them apart."""
    source = make_ct(shape=(6, 16, 16))
    write_ct_series(source, tmp_path / "c1" / "ct")
    for copy in ("c2", "c3"):
        shutil.copytree(tmp_path / "c1", tmp_path / copy)
    (listed,) = discover_series(tmp_path)
    volume = read_dicom_series(tmp_path)
    assert listed.n_slices == volume.shape[0] == 6
    np.testing.assert_array_equal(volume.array, source.array)
    (said,) = volume.meta["warnings"]
    assert said == (
        "12 file(s) identical to another (a copy: the same SOPInstanceUID and bytes) ignored, "
        "e.g. c2/ct/1-001.dcm (the same as c1/ct/1-001.dcm)"
    )
    assert len(volume.meta["unused_files"]) == 12  # (a multi-select of them adds nothing)
    # slices that only share a SOPInstanceUID (an anonymiser's blunder) are no copies
    lone = tmp_path.parent / (tmp_path.name + "_one_uid")
    for path in write_ct_series(source, lone):
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
        ds.save_as(path)
    assert read_dicom_series(lone).shape == source.shape
    assert discover_series(lone)[0].n_slices == 6


def test_the_listed_slice_spacing_is_the_step_the_series_is_stacked_at(tmp_path):
    """A series 2.5 mm apart for 6 steps and 5 mm for 7: listed at 5 mm (its median step)
    while it loaded at 2.5 mm."""
    source = make_ct(shape=(21, 8, 8))
    paths = write_ct_series(source, tmp_path)
    for i in range(8, 21, 2):  # 2.5 mm up to slice 6, then every other slice
        paths[i - 1].unlink()
    (listed,) = discover_series(tmp_path)
    volume = read_dicom_series(tmp_path)
    assert volume.spacing[0] == pytest.approx(2.5, abs=1e-4)
    assert listed.spacing[0] == pytest.approx(volume.spacing[0], abs=1e-4)


def test_an_mr_series_claims_no_contrast_phase(tmp_path):
    """An MR with a contrast agent tag and "PORTAL" in its comments was listed (and loaded)
    as "portal venous", a CT phase."""
    for path in write_ct_series(make_ct(shape=(5, 8, 8)), tmp_path):
        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.ContrastBolusAgent = "Gadovist"
        ds.ImageComments = "PORTAL VENOUS"
        ds.save_as(path)
    (listed,) = discover_series(tmp_path)
    assert listed.modality == "MR" and listed.phase == "unknown"
    volume = read_dicom_series(tmp_path, any_modality=True)
    assert volume.meta["phase"] == "unknown"


# ------------------------------------------------------------------- folders that cannot be read


def test_a_folder_that_cannot_be_read_says_permission_denied_not_no_dicom(tmp_path, monkeypatch):
    """rglob skipped it without a word: "no DICOM files found"."""
    write_ct_series(make_ct(shape=(4, 8, 8)), tmp_path)
    deny_listing(monkeypatch, tmp_path)
    for read in (read_dicom_series, discover_series):
        with pytest.raises(InputError, match="permission denied") as info:
            read(tmp_path)
        assert info.value.path == tmp_path and "no DICOM" not in str(info.value)


def test_a_sub_folder_that_cannot_be_read_is_named_where_its_series_is_missing(
    tmp_path, monkeypatch
):
    write_ct_series(make_ct(shape=(4, 8, 8)), tmp_path / "a")
    write_ct_series(make_ct(shape=(6, 8, 8), seed=3), tmp_path / "b")
    deny_listing(monkeypatch, tmp_path / "b")
    unreadable: list = []
    (listed,) = discover_series(tmp_path, unreadable=unreadable)
    assert listed.n_slices == 4
    assert unreadable == [(tmp_path / "b", "folder not read (permission denied)")]
    volume = read_dicom_series(tmp_path)
    assert (
        f"1 folder(s) that could not be read, their files not looked at: {tmp_path / 'b'} "
        "(permission denied)" in volume.meta["warnings"]
    )
    deny_listing(monkeypatch, tmp_path / "a", tmp_path / "b")
    with pytest.raises(InputError, match="no readable DICOM image; 2 folder") as info:
        read_dicom_series(tmp_path)
    assert info.value.path == tmp_path


def test_a_path_inside_a_folder_that_cannot_be_entered_says_permission_denied(
    tmp_path, monkeypatch
):
    """Path.exists() raised PermissionError (Python 3.11+), past every reader's message."""
    from pathlib import Path

    paths = write_ct_series(make_ct(shape=(4, 8, 8)), tmp_path / "locked")
    stat = Path.stat

    def refusing(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "locked") + "/"):
            raise PermissionError(13, "Permission denied", str(self))
        return stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refusing)
    for read in (read_dicom_series, discover_series):
        with pytest.raises(InputError, match="permission denied") as info:
            read(paths[0])
        assert info.value.path == paths[0]


def test_a_secondary_capture_without_a_position_is_said_to_be_one():
    """A dose page (a screenshot, Secondary Capture) never has a position: it was said to be
    an image whose position an anonymiser had removed."""
    from napari_livertumor.io.dicom import SeriesInfo

    def info(sop_class):
        return SeriesInfo(
            uid="1.2.3", description="Dose Info", modality="OT", n_slices=1, spacing=None,
            phase="unknown", files=[], series_number=999, sop_class_uid=sop_class,
            is_image=False, not_image="no ImagePositionPatient, no ImageOrientationPatient",
        )  # fmt: skip

    capture = info("1.2.840.10008.5.1.4.1.1.7").summary()
    assert "a secondary capture: a screenshot, a dose page" in capture, capture
    assert "anonymiser" not in capture
    assert "removed by an anonymiser?" in info("1.2.840.10008.5.1.4.1.1.2").summary()


def test_a_study_folder_whose_series_are_links_is_read_through_them(tmp_path):
    """A study folder holding a symbolic link to its series (put together from an archive
    without copying) was 'empty' to the reader while segment --list named it a case; a link
    back up the tree must not loop."""
    from napari_livertumor.cli import main

    vol = make_ct()
    write_ct_series(vol, tmp_path / "archive" / "series 3", series_description="PORTAL")
    study = tmp_path / "study"
    study.mkdir()
    (study / "ct").symlink_to(tmp_path / "archive" / "series 3", target_is_directory=True)
    (study / "up").symlink_to(study, target_is_directory=True)  # a loop
    (study / "again").symlink_to(tmp_path / "archive", target_is_directory=True)  # seen twice
    read = load_ct(study)
    np.testing.assert_array_equal(read.array, vol.array)
    assert len(discover_series(study)) == 1  # (the files reached twice are one series)
    assert main(["convert", str(study), "--list"]) == 0
    # a link back to a folder above the one walked (a patient folder's link to its cohort):
    # not the whole cohort again from inside one patient
    (tmp_path / "archive" / "series 3" / "cohort").symlink_to(tmp_path, target_is_directory=True)
    from napari_livertumor.fileio import all_paths

    inside = list(all_paths(tmp_path / "archive"))
    assert not any("study" in p.parts for p in inside)
    assert len(discover_series(tmp_path / "archive")) == 1


def test_a_follow_up_study_beside_the_one_read_is_said_with_its_date(tmp_path):
    """A patient folder holding a baseline and a follow-up: the one not read was "1 other
    series in the folder not read", like a PRE LIVER series of the same study."""
    from napari_livertumor.stats import scan_identity, scan_words

    rng = np.random.default_rng(0)
    common = {"patient_id": "HCC_001", "series_description": "LIVER"}
    base = CTVolume(rng.integers(-100, 200, (6, 16, 16)).astype(np.int16), (2.5, 1.0, 1.0))
    follow = CTVolume(rng.integers(-100, 200, (4, 16, 16)).astype(np.int16), (2.5, 1.0, 1.0))
    write_ct_series(base, tmp_path / "P" / "s1", study_uid="1.2.826.0.1.3680043.8.498.71",
                    study_date="19980428", series_number=4, **common)  # fmt: skip
    write_ct_series(follow, tmp_path / "P" / "s2", study_uid="1.2.826.0.1.3680043.8.498.72",
                    study_date="19980612", series_number=104, **common)  # fmt: skip
    vol = load_ct(tmp_path / "P")
    note = next(w for w in vol.meta["warnings"] if "other series in the folder not read" in w)
    assert (
        "(another study, 1998-06-12: give its folder, or choose it: --series, or Find series in "
        "the Load panel)" in note
    )
    identity = scan_identity(vol.meta)  # what the stats record of the scan read
    assert identity["study_date"] == "1998-04-28" and identity["series_number"] == 4
    assert identity["patient_id"] == "HCC_001" and identity["series_description"] == "LIVER"
    assert scan_words(identity) == "series #4 'LIVER' of 1998-04-28"
    assert scan_identity({})["study_date"] is None and scan_words(scan_identity({})) == ""
    # a NIfTI's meta names its file, no patient or series: all null
    nifti = scan_identity({"patient_id": "ct", "description": "ct.nii.gz", "study_date": ""})
    assert set(nifti.values()) == {None}
    # evaluate keeps the note when it names another study (its ground truth was not scored)
    from napari_livertumor.training.evaluate import _chosen_by_truth

    plain = (
        "read CT #4 'LIVER' (32 slices: the one its DICOM SEG references); 1 other series in "
        "the folder not read: CT #2 'PRE LIVER'"
    )
    assert _chosen_by_truth(plain)
    assert not _chosen_by_truth(
        plain + " (another study, 1998-06-12: give its folder, or choose it: --series, or "
        "Find series in the Load panel)"
    )


def _deflated(path, ds=None):
    """``path`` saved again as Deflated Explicit VR Little Endian (its dataset zipped)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(path) if ds is None else ds
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def test_a_deflated_series_is_read_and_a_deflated_file_inflating_past_the_cap_is_refused_unread(
    tmp_path, monkeypatch
):
    """3.4 MB of a deflated DICOM file holding a 3.5 GB private element of zeros were inflated
    whole by the header pass (7 GB of memory, half a minute a file); refused now before pydicom
    inflates anything of it, the file named, while a real deflated series reads as before."""
    import pydicom.filereader
    from pydicom.uid import generate_uid

    from napari_livertumor.io import dicom

    volume = make_ct(shape=(4, 24, 30))
    files = write_shuffled(volume, tmp_path / "ct")
    for f in files:
        _deflated(f)
    # (a cap of 2 MiB here, for a bomb of 16 MiB quick to make: the same test as at 1 GiB)
    monkeypatch.setattr(dicom, "MAX_INFLATED", 2 << 20)
    bomb = pydicom.dcmread(files[0])
    bomb.SeriesInstanceUID, bomb.SOPInstanceUID = generate_uid(), generate_uid()
    bomb.private_block(0x0009, "ZIP BOMB", create=True).add_new(0x10, "OB", bytes(16 << 20))
    (tmp_path / "bomb").mkdir()
    _deflated(tmp_path / "bomb" / "000.dcm", bomb)
    assert (tmp_path / "bomb" / "000.dcm").stat().st_size < 100_000
    inflated = []
    real = pydicom.filereader.zlib.decompress
    monkeypatch.setattr(
        pydicom.filereader.zlib,
        "decompress",
        lambda data, *a: inflated.append(out := real(data, *a)) or out,
    )
    unreadable: list = []
    (found,) = discover_series(tmp_path, unreadable=unreadable)
    assert found.n_slices == 4
    assert unreadable == [(tmp_path / "bomb" / "000.dcm", dicom.DEFLATE_BOMB)]
    assert "inflates past 1 GiB" in dicom.DEFLATE_BOMB
    assert max(map(len, inflated)) < 1 << 20  # the series' slices only, never the bomb
    np.testing.assert_array_equal(read_dicom_series(tmp_path / "ct").array, volume.array)
    with pytest.raises(InputError, match=r"000\.dcm: not a readable DICOM file: deflated DICOM"):
        read_dicom_series(tmp_path / "bomb" / "000.dcm")
    with pytest.raises(InputError, match="inflates past"):
        dicom.refuse_deflate_bomb(tmp_path / "bomb" / "000.dcm")
    dicom.refuse_deflate_bomb(files[0])  # a real one passes
    assert max(map(len, inflated)) < 1 << 20


# (pydicom: control characters have no place in an LO, and ESC [ is no character set's)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_control_characters_of_a_header_reach_messages_escaped(tmp_path):
    """A SeriesDescription holding ESC sequences, BEL and newlines reached the terminal raw in
    the "other series not read" warning and the "no series with UID" error: it could clear the
    screen or forge a line. Escaped (\\x1b, \\n) where its text becomes a message; the header's
    value itself is kept."""
    evil = "\x1b[2J\x1b[1;31mPV\x07\nlivertumor: all fine\r\t\x7f\x9b"
    write_ct_series(make_ct(seed=1), tmp_path / "a", series_description="LIVER", series_number=2)
    write_ct_series(
        make_ct(shape=(5, 24, 30)), tmp_path / "b", series_description=evil, series_number=6
    )
    other = next(s for s in discover_series(tmp_path) if s.series_number == 6)
    shown = "\\x1b[2J\\x1b[1;31mPV\\x07\\nlivertumor: all fine\\r\\t\\x7f\\x9b"
    assert other.description == evil  # (the header's value, as it is)
    assert other.label == f"#6 '{shown}'" and f"'{shown}'" in other.summary()
    volume = read_dicom_series(tmp_path)
    (note,) = [w for w in volume.meta["warnings"] if "other series" in w]
    assert f"CT #6 '{shown}'" in note

    def raw(text):
        return [c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0]

    assert raw(note) == []
    with pytest.raises(InputError, match="no series with UID") as exc:
        read_dicom_series(tmp_path, "1.2.3")
    assert shown in str(exc.value) and raw(str(exc.value)) == []
    assert read_dicom_series(tmp_path, other.uid).meta["description"] == evil


def test_written_slices_state_the_slice_spacing_as_their_thickness(tmp_path):
    """Each written slice's SliceThickness is the spacing between slices (z); stating the row
    spacing there would tell a viewer 0.7 mm slices for a 2.5 mm scan."""
    volume = CTVolume(np.zeros((3, 8, 10), np.int16), (2.5, 0.7, 0.6))
    files = write_ct_series(volume, tmp_path / "ct")
    assert len(files) == 3
    for f in files:
        assert float(pydicom.dcmread(f, stop_before_pixels=True).SliceThickness) == 2.5


def _with_transfer_syntax(paths, uid: str) -> None:
    """The files' pixel data said to be in transfer syntax ``uid`` (a newer or a vendor's
    private one: what a PACS export may hold), their dataset left as it was."""
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(uid)
        pydicom.dcmwrite(p, ds, implicit_vr=False, little_endian=True, force_encoding=True)


@pytest.mark.parametrize(
    ("uid", "said"),
    [
        ("1.2.840.10008.1.2.4.110", r"JPEG XL Lossless \(1\.2\.840\.10008\.1\.2\.4\.110\)"),
        ("1.2.840.113619.5.2", r"1\.2\.840\.113619\.5\.2 \(a private or unknown one\)"),
    ],
    ids=["jpeg-xl", "vendor-private"],
)
def test_a_transfer_syntax_pydicom_does_not_know_is_refused_naming_it_and_what_to_do(
    tmp_path, capsys, uid, said
):
    """A JPEG XL (or vendor-private) series failed with pydicom's "ValueError: UID is not a
    transfer syntax.": convert called it a bug, and the Load panel showed it alone, naming
    neither the file, nor the transfer syntax, nor what to do."""
    from napari_livertumor.cli import main

    paths = write_ct_series(make_ct(shape=(3, 16, 16)), tmp_path / "ct")
    _with_transfer_syntax(paths, uid)
    todo = r", which is not supported here: convert the series to uncompressed DICOM first, e\.g\."
    with pytest.raises(InputError, match=said + todo + " with `gdcmconv --raw`") as info:
        load_ct(tmp_path / "ct")
    assert info.value.path in paths
    assert main(["convert", str(tmp_path / "ct"), "-o", str(tmp_path / "ct.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "not supported here" in err and "bug" not in err and "Traceback" not in err


def _lossy_j2k(paths, *, tag: str | None, ratio=10) -> None:
    """The files compressed as JPEG 2000 (1.2.840.10008.1.2.4.91) at ``ratio``:1, their
    LossyImageCompression set to ``tag`` (None: not set, as pydicom leaves it)."""
    pytest.importorskip("openjpeg")
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(pydicom.uid.JPEG2000, j2k_cr=[ratio])
        if tag is not None:
            ds.LossyImageCompression = tag
            if tag == "01":
                ds.LossyImageCompressionRatio = ratio
                ds.LossyImageCompressionMethod = "ISO_15444_1"
        ds.save_as(p)


def test_a_lossy_compressed_series_is_read_with_a_warning_naming_its_ratio(tmp_path):
    """A JPEG 2000 series compressed 10:1, tagged LossyImageCompression "01", read and
    segmented without a word: its HU differed by up to 150 in most voxels and its tumor masks
    matched the lossless series' poorly (Dice 0.46)."""
    source = make_ct(shape=(3, 40, 44))  # JPEG 2000 needs >= 32 px a side
    _lossy_j2k(write_shuffled(source, tmp_path / "ct"), tag="01")
    volume = read_dicom_series(tmp_path / "ct")
    assert not np.array_equal(volume.array, source.array)  # (it is lossy)
    said = [w for w in volume.meta["warnings"] if "lossy" in w]
    assert len(said) == 1
    assert said[0].startswith("lossy-compressed pixel data (all 3 slices; e.g. ct/IM")
    assert "LossyImageCompression 01, ratio 10:1, JPEG 2000 (ISO_15444_1)):" in said[0]
    assert "tumor boundaries, small lesions and HU measurements are less reliable" in said[0]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (None, "pixel data in a transfer syntax that allows lossy compression (all 3 slices;"),
        ("00", None),
    ],
    ids=["untagged", "tagged-lossless"],
)
def test_a_jpeg2000_series_untagged_is_said_to_be_possibly_lossy(tmp_path, tag, expected):
    """JPEG 2000 at 20:1 with no LossyImageCompression (pydicom sets none) read without a word;
    one tagged "00" (the syntax used losslessly) is not warned of."""
    _lossy_j2k(write_shuffled(make_ct(shape=(3, 40, 44)), tmp_path / "ct"), tag=tag, ratio=20)
    said = [w for w in read_dicom_series(tmp_path / "ct").meta["warnings"] if "lossy" in w]
    if expected is None:
        assert said == []
    else:
        assert len(said) == 1 and said[0].startswith(expected)
        assert "JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91)" in said[0]
        assert "if it was lossy" in said[0] and "small lesions" in said[0]


@pytest.mark.parametrize(
    ("syntax", "name", "expected"),
    [
        ("50", "JPEG Baseline (Process 1)", "lossy-compressed pixel data (all 3 slices;"),
        ("51", "JPEG Extended (Process 2 and 4)", "lossy-compressed pixel data (all 3 slices;"),
        (
            "81",
            "JPEG-LS Lossy (Near-Lossless) Image Compression",
            "pixel data in a transfer syntax that allows lossy compression (all 3 slices;",
        ),
    ],
    ids=["jpeg-baseline", "jpeg-extended", "jpeg-ls-near-lossless"],
)
def test_a_jpeg_series_with_no_lossy_tag_is_said_to_be_lossy(tmp_path, syntax, name, expected):
    """Most JPEG series carry no LossyImageCompression: a JPEG baseline one (pillow and
    pylibjpeg decode it) is lossy by its syntax alone, a JPEG-LS near-lossless one may be.
    Only JPEG 2000 was tried, so either could have been read without a word. (From the
    headers: no encoder for these here.)"""
    import dataclasses

    from napari_livertumor.io._dicom_pixels import lossy_note
    from napari_livertumor.io.dicom import _read_header

    uid = "1.2.840.10008.1.2.4." + syntax
    headers = [
        dataclasses.replace(_read_header(p)[0], transfer_syntax=uid, lossy_compression=("", "", ""))
        for p in write_ct_series(make_ct(shape=(3, 16, 16)), tmp_path / "ct")
    ]
    said = lossy_note(headers)
    assert said is not None and said.startswith(expected), said
    assert f"transfer syntax {name} ({uid})" in said
    if syntax == "81":  # (near-lossless: lossy unless a "00" said otherwise)
        assert "if it was lossy" in said
    else:
        assert "the values are an approximation of the scanner's HU, so" in said
    assert lossy_note(
        [dataclasses.replace(h, lossy_compression=("00", "", "")) for h in headers]
    ) == (None if syntax == "81" else said)


def test_an_uncompressed_series_decompressed_from_a_lossy_one_is_warned_of(tmp_path):
    """A slice once compressed with loss keeps LossyImageCompression "01" when stored
    uncompressed again (a PACS decompressing for export): its values are still lossy."""
    paths = write_ct_series(make_ct(shape=(4, 16, 16)), tmp_path / "ct")
    ds = pydicom.dcmread(paths[2])
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [8, 2.5]  # compressed twice
    ds.LossyImageCompressionMethod = ["ISO_10918_1", "ISO_15444_1"]
    ds.save_as(paths[2])
    said = [w for w in read_dicom_series(tmp_path / "ct").meta["warnings"] if "lossy" in w]
    assert len(said) == 1
    assert said[0].startswith(
        f"lossy-compressed pixel data (1 of the 4 slices; e.g. ct/{paths[2].name}: "
        "LossyImageCompression 01, ratio 8:1 then 2.5:1, JPEG (ISO_10918_1) then JPEG 2000 "
        "(ISO_15444_1)): the values are an approximation of the scanner's HU"
    )


def test_a_transfer_syntax_no_decoder_exists_for_is_not_said_to_need_one_installed(
    tmp_path, monkeypatch
):
    """A video transfer syntax (HEVC), which pydicom knows but no plugin decodes, was told to
    "install a decoder: pip install pylibjpeg …", which could never help."""
    write_ct_series(make_ct(shape=(4, 16, 16)), tmp_path, transfer_syntax="rle")

    def no_decoder(self, *args, **kwargs):
        raise NotImplementedError(
            "No pixel data decoders have been implemented for 'HEVC/H.265 Main Profile / Level 5.1'"
        )

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(no_decoder))
    with pytest.raises(InputError, match=r"5\); not supported here: convert the series") as info:
        load_ct(tmp_path)
    assert "install a decoder" not in str(info.value)


def _retime(paths, seconds):
    """Each file's AcquisitionTime ``seconds`` later (HHMMSS.F)."""
    for path in paths:
        ds = pydicom.dcmread(path)
        t = str(ds.AcquisitionTime)
        s = int(t[:2]) * 3600 + int(t[2:4]) * 60 + float(t[4:]) + seconds
        ds.AcquisitionTime = f"{s // 3600:02.0f}{s % 3600 // 60:02.0f}{s % 60:04.1f}"
        ds.save_as(path)


def test_a_step_and_shoot_phase_paused_halfway_is_one_pass_not_two_halves(tmp_path):
    """Two step-and-shoot phases (chunks acq 1-4, 5-8), each paused 15 s halfway (a tube
    cooling): each half was taken for a pass, "4 passes over the same stretch" of 8 slices,
    half the body read (QA adv61b D2). A chunk that goes on along the stretch from where the
    pass stopped, within a minute, is of that pass."""
    volumes = _chunked_phases(tmp_path, "continued", 4, ("101500", "101700"))
    for p in (0, 1):
        _retime(sorted(tmp_path.glob(f"p{p}_*.dcm"))[8:], 15)
    found = discover_series(tmp_path)
    assert [(s.n_slices, s.chunks) for s in sorted(found, key=lambda s: s.acquisition)] == [
        (16, (1, 2, 3, 4)),
        (16, (5, 6, 7, 8)),
    ]
    np.testing.assert_array_equal(read_dicom_series(tmp_path).array, volumes[1].array)


def _chunk(acq, positions, start=None, inst=None):
    """A chunk as :func:`_join_chunks` sees it: its AcquisitionNumber and slices (at
    ``positions``, 1 s apart from ``start``, untimed where None; InstanceNumbers ``inst``)."""
    from types import SimpleNamespace

    return acq, [
        SimpleNamespace(
            is_image=True,
            location=float(z),
            n_frames=1,
            acquisition_time=None if start is None else start + k,
            instance_number=(inst[k] if inst else 100 * acq + k),
        )
        for k, z in enumerate(positions)
    ]


def test_chunks_that_make_passes_over_part_of_the_stretch_are_not_joined():
    """Chunks joined into passes each over only part of the positions: one phase's chest
    chunks (acq 1-5) and abdomen chunks (acq 6-10, overlapping by 2 slices) were "2 passes
    over the same stretch", the abdomen read (QA adv61b W); two phases in two volumes each,
    untimed, InstanceNumbers numbered by position, came out acq 1 | 2, 3 | 4, pass 2 the lower
    half of one phase spliced to the upper half of the other (Z3). Declined: acquisitions."""
    from napari_livertumor.io.dicom import _join_chunks

    chest = [_chunk(a, range(4 * (a - 1), 4 * a), 36000 + 5 * a) for a in range(1, 6)]
    abdomen = [_chunk(a, range(4 * (a - 1) - 2, 4 * a - 2), 36030 + 5 * a) for a in range(6, 11)]
    assert _join_chunks(chest + abdomen) is None
    rank = {(z, p): k for k, (z, p) in enumerate(sorted((z, p) for z in range(40) for p in (0, 1)))}
    volumes = [
        _chunk(a, zs, inst=[rank[(z, (a - 1) // 2)] for z in zs])
        for a, zs in ((1, range(20)), (2, range(20, 40)), (3, range(20)), (4, range(20, 40)))
    ]
    assert _join_chunks(volumes) is None


def test_chunks_of_one_moment_at_positions_of_their_own_are_no_reconstructions(tmp_path):
    """A step-and-shoot phase's chunks (acq 1-4) and a partial later phase's (acq 5, 6), not
    joined: each moment's chunks were "reconstructions of one scan" (QA adv61b I)."""
    _chunked_phases(tmp_path, "continued", 4, ("101500", "101600"))
    for path in sorted(tmp_path.glob("p1_*.dcm"))[8:]:
        path.unlink()
    said = [w for w in read_dicom_series(tmp_path).meta["warnings"] if "stacks" in w]
    assert said and "2 moments" in said[0], said
    assert "reconstructions" not in said[0], said[0]
    assert "parts of one scan at positions of their own" in said[0], said[0]


def test_a_number_that_is_one_pass_and_another_acquisition_is_refused(tmp_path):
    """acq 1 in STANDARD and LUNG beside acq 2 (GE): the passes numbered 1-3, and
    --acquisition 2, AcquisitionNumber 2 before, read pass 2, acq 1's LUNG, said nowhere (QA
    adv61b WB). Refused, the passes listed; "pass 2" reads pass 2, a number naming one pass
    only reads it."""
    volumes = _numbered_passes(
        tmp_path, [(1, "STANDARD", "101500"), (1, "LUNG", "101500"), (2, "STANDARD", "101600")]
    )
    with pytest.raises(InputError) as refused:
        read_dicom_series(tmp_path, acquisition=2)
    said = str(refused.value)
    assert "pass 1, acq 1, kernel STANDARD; pass 2, acq 1, kernel LUNG; pass 3, acq 2" in said
    assert "AcquisitionNumber 2 is in pass 3" in said and "'pass 3'" in said, said
    for asked, k in (("pass 2", 2), ("PASS3", 3), (1, 1), (3, 3)):
        read = read_dicom_series(tmp_path, acquisition=asked)
        np.testing.assert_array_equal(read.array, volumes[k - 1].array)


@pytest.mark.parametrize("chunks", [(2, 2), (2, 1)], ids=["2 + 2 chunks", "2 chunks + 1"])
def test_phases_in_as_few_as_three_chunks_are_joined(tmp_path, chunks):
    """Two step-and-shoot phases of two chunks each (acq 1, 2 and 3, 4), or one of two chunks
    beside a phase under one AcquisitionNumber (acq 3), are joined as 8 chunks are (left as
    acquisitions, half a phase would be read, or listed as an acquisition of its own)."""
    volumes = _chunked_phases(tmp_path, "continued", 8, ("101500", "101600"))
    if chunks[1] == 1:
        _edit_all(sorted(tmp_path.glob("p1_*.dcm")),
                  lambda ds: setattr(ds, "AcquisitionNumber", 3))  # fmt: skip
    found = sorted(discover_series(tmp_path), key=lambda s: s.acquisition)
    assert [(s.n_slices, s.chunks) for s in found] == [(16, (1, 2)), (16, (3, 4)[: chunks[1]])]
    np.testing.assert_array_equal(read_dicom_series(tmp_path).array, volumes[1].array)


def test_chunks_timed_000000_are_joined_in_the_order_of_their_instance_number(tmp_path):
    """Chunks whose every AcquisitionTime is 000000 (an anonymiser's) are taken in the order of
    their InstanceNumber, and said so: no time says the order (not "in the order of their
    AcquisitionTime")."""
    _chunked_phases(tmp_path, "continued", 4, ("", ""))
    _edit_all(sorted(tmp_path.glob("*.dcm")), lambda ds: setattr(ds, "AcquisitionTime", "000000"))
    assert [s.passes_by for s in discover_series(tmp_path)] == ["chunks, InstanceNumber"] * 2
    said = [w for w in read_dicom_series(tmp_path).meta["warnings"] if "stacks" in w]
    assert said and "their chunks in the order of their InstanceNumber" in said[0], said


def test_chunks_scanned_across_midnight_are_joined_in_the_order_they_were_scanned():
    """A phase whose chunks run across midnight (23:59:50 to 00:00:05), the next a minute
    later, is joined in the order it was scanned (by the clock from 00:00, its chunks after
    midnight would come first, the phase cut in two and no pass joined)."""
    from napari_livertumor.io.dicom import _join_chunks

    chunks = [
        _chunk(a, range(4 * ((a - 1) % 4), 4 * ((a - 1) % 4) + 4), 86390 + 4 * (a - 1) + 60 * (a > 4))
        for a in range(1, 9)
    ]  # fmt: skip
    for _, part in chunks:
        for h in part:
            h.acquisition_time %= 86400
    joined = _join_chunks(chunks)
    assert joined is not None
    assert [[acq for acq, _ in chain] for chain in joined[1]] == [[1, 2, 3, 4], [5, 6, 7, 8]]


@pytest.mark.parametrize("pause", [15, 45])
@pytest.mark.parametrize("direction", ["head first", "feet first"])
def test_a_pass_paused_up_to_a_minute_either_way_along_the_table_is_one_pass(direction, pause):
    """A step-and-shoot phase paused halfway (a tube cooling, under a minute), run head or feet
    first: the chunk after the pause goes on from where the pass stopped and joins it (else its
    halves would be taken for passes of their own, and none joined)."""
    from napari_livertumor.io.dicom import _join_chunks

    def chunk(p, a):  # chunk a (1-4) of phase p, scanned 2 minutes after phase p - 1
        k = a - 1 if direction == "head first" else 4 - a
        return _chunk(4 * p + a, range(4 * k, 4 * k + 4), 36000 + 120 * p + 4 * a + pause * (a > 2))

    joined = _join_chunks([chunk(p, a) for p in (0, 1) for a in range(1, 5)])
    assert joined is not None
    assert [[acq for acq, _ in chain] for chain in joined[1]] == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_a_phase_a_slice_short_is_joined_still(tmp_path):
    """Two step-and-shoot phases, the later one a slice short (15 of the 16 positions): a pass
    tiles nearly all of the stretch (85%), not all of it: joined into its pass (left as 8
    acquisitions, a 4-slice chunk would be read)."""
    _chunked_phases(tmp_path, "continued", 4, ("101500", "101600"))
    sorted(tmp_path.glob("p1_*.dcm"))[-1].unlink()
    found = sorted(discover_series(tmp_path), key=lambda s: s.acquisition)
    assert [(s.n_slices, s.chunks) for s in found] == [(16, (1, 2, 3, 4)), (15, (5, 6, 7, 8))]
    assert read_dicom_series(tmp_path).shape == (16, 32, 32)


def test_numbers_are_said_with_runs_of_three_or_more_joined():
    """A pass's chunks as its label says them: runs of three or more joined ("1–4"), two in a
    row listed ("5, 6", not "5–6"), in order whatever order they came in."""
    from napari_livertumor.io.dicom import numbers_text

    assert numbers_text([4, 2, 3, 1, 9]) == "1–4, 9"
    assert numbers_text([6, 5]) == "5, 6"
    assert numbers_text([2, 5, 7, 8, 9, 11, 12]) == "2, 5, 7–9, 11, 12"


def test_three_numbered_acquisitions_sharing_a_kernel_are_said_as_acquisitions(tmp_path):
    """Three phases each under its AcquisitionNumber, in B30f, B30f and B70f, untimed: listed
    as acquisitions (not as passes joined from chunks, "pass 1 (acq 1)"), the kernel they share
    said with the acquisitions holding it (not "passes 1 and 2")."""
    volumes = _numbered_passes(tmp_path, [(1, "B30f", ""), (2, "B30f", ""), (3, "B70f", "")])
    assert {s.acquisition: s.acquisition_label for s in discover_series(tmp_path)} == {
        1: "acq 1, kernel B30f",
        2: "acq 2, kernel B30f",
        3: "acq 3, kernel B70f",
    }
    volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, volumes[1].array)
    said = [w for w in volume.meta["warnings"] if "stacks 3" in w]
    assert said and "kernel B30f (acquisitions 1 and 2) vs B70f (acquisition 3)" in said[0], said


def test_a_number_naming_a_chunk_of_one_pass_and_another_pass_is_refused(tmp_path):
    """Two step-and-shoot phases joined into pass 1 (acq 1–4) and pass 2 (acq 5–8): a bare 2,
    chunk acq 2 of pass 1, would read pass 2 unsaid, and 7 (a chunk of pass 2) find no pass 7:
    both refused, the passes and the ways to ask listed; 'pass 9' is said as no pass 9."""
    _chunked_phases(tmp_path, "continued", 4, ("101500", "101600"))
    listing = "(pass 1, acq 1–4; pass 2, acq 5–8)"
    for asked, said in (
        (2, "2 is pass 2, while AcquisitionNumber 2 is in pass 1. Give the pass by its number, "
            "--acquisition 'pass 1' or 'pass 2',"),
        (7, "AcquisitionNumber 7 is in pass 2. Give the pass by its number, --acquisition "
            "'pass 2',"),
        ("pass 9", "has no pass 9 (its stacked passes: 1, 2)"),
    ):  # fmt: skip
        with pytest.raises(InputError) as refused:
            read_dicom_series(tmp_path, acquisition=asked)
        assert said in str(refused.value), str(refused.value)
        assert (listing in str(refused.value)) == (asked != "pass 9")


def test_a_later_chunked_phase_in_a_sharp_kernel_is_named_as_its_pass(tmp_path):
    """Chunked phases in B30f and, later, B70f: the B30f read, the later pass named as
    --acquisition 'pass 2' (a bare 2, chunk acq 2 of pass 1, is refused)."""
    _chunked_phases(tmp_path, "continued", 4, ("101500", "101600"))
    for p, kernel in ((0, "B30f"), (1, "B70f")):
        _edit_all(sorted(tmp_path.glob(f"p{p}_*.dcm")),
                  lambda ds, kernel=kernel: setattr(ds, "ConvolutionKernel", kernel))  # fmt: skip
    said = [w for w in read_dicom_series(tmp_path).meta["warnings"] if "stacks 2" in w]
    assert said and "though pass 2 is later (--acquisition 'pass 2')" in said[0], said


def test_chunks_of_one_moment_sharing_a_kernel_are_not_said_to_differ_in_it(tmp_path):
    """A step-and-shoot phase's chunks in B30f (acq 1-4) beside a partial later phase's in B70f
    (acq 5, 6): each moment's chunks share their kernel, and are said with no difference
    (not "that differ in kernel B30f (acquisitions 1, 2, 3 and 4)")."""
    _chunked_phases(tmp_path, "continued", 4, ("101500", "101600"))
    for path in sorted(tmp_path.glob("p1_*.dcm"))[8:]:
        path.unlink()
    for p, kernel in ((0, "B30f"), (1, "B70f")):
        _edit_all(sorted(tmp_path.glob(f"p{p}_*.dcm")),
                  lambda ds, kernel=kernel: setattr(ds, "ConvolutionKernel", kernel))  # fmt: skip
    said = [w for w in read_dicom_series(tmp_path).meta["warnings"] if "stacks" in w]
    assert said and "differ in" not in said[0], said
    assert "acquisitions 1, 2, 3 and 4, parts of one scan at positions of their own;" in said[0]


def test_passes_a_seg_references_in_part_are_not_referenced_alike():
    """Of two passes, one all of whose slices the DICOM SEGs reference and one only some of
    (a SEG listing the slices it segments): not referenced alike (the SEGs chose the first;
    "DICOM SEGs reference it and pass 2 alike" would say the rule did)."""
    from types import SimpleNamespace

    from napari_livertumor.io.dicom import _referenced_alike

    info = SimpleNamespace(sop_instance_uids={"a1", "a2", "a3"})
    some = SimpleNamespace(sop_instance_uids={"b1", "b2", "b3"})
    every = SimpleNamespace(sop_instance_uids={"c1", "c2", "c3"})
    refs = {"a1", "a2", "a3", "b1", "c1", "c2", "c3"}
    assert _referenced_alike(info, [some, every], refs) == [every]
