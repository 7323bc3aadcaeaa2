"""A user opens a multi-frame Enhanced CT (a modern scanner's or PACS's export): they get the
volume the same slices give stored one file each, voxel for voxel and mm for mm, and a DICOM
SEG drawn on it lands on its frames."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _geometry import rotation
from pydicom.uid import generate_uid

from napari_livertumor.errors import InputError
from napari_livertumor.io import CTVolume, load_ct
from napari_livertumor.io.dicom import discover_series, read_dicom_series
from napari_livertumor.io.dicom_write import write_ct_series
from napari_livertumor.io.seg import read_dicom_seg, write_dicom_seg

hd = pytest.importorskip("highdicom")

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
LEGACY_ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.2"


def to_enhanced(datasets, out: Path, *, series_uid=None, number=1) -> Path:
    """The classic slices ``datasets`` as one Legacy Converted Enhanced CT file, frames in the
    order given."""
    image = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=list(datasets),
        series_instance_uid=series_uid or generate_uid(),
        series_number=int(datasets[0].SeriesNumber),
        sop_instance_uid=generate_uid(),
        instance_number=number,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save_as(out)
    return out


def read_both_ways(slices, tmp_path: Path) -> tuple[CTVolume, CTVolume]:
    """The classic slices ``slices`` read as one file each, and as one Enhanced CT file."""
    classic_dir = tmp_path / "classic"
    classic_dir.mkdir()
    for k, ds in enumerate(slices):
        ds.save_as(classic_dir / f"{k:03d}.dcm")
    classic = read_dicom_series(classic_dir)
    return classic, read_dicom_series(to_enhanced(slices, tmp_path / "ect" / "ect.dcm").parent)


def assert_same_volume(got: CTVolume, want: CTVolume) -> None:
    assert got.array.dtype == np.int16
    np.testing.assert_array_equal(got.array, want.array)
    np.testing.assert_allclose(got.affine_lps, want.affine_lps, atol=1e-3)
    np.testing.assert_allclose(got.spacing, want.spacing, atol=1e-3)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A synthetic HCC-TACE-Seg patient (classic CT series and its ground-truth SEG)."""
    from napari_livertumor.synth.cohort import make_cohort

    root = tmp_path_factory.mktemp("synth")
    make_cohort(root, 1, seed=5, layout="tcia", shape="small")
    series = next(p for p in root.glob("HCC_001/*/*") if "Segmentation" not in p.name)
    seg = next(root.glob("HCC_001/*/*Segmentation*/*.dcm"))
    classic = read_dicom_series(series)
    datasets = [pydicom.dcmread(f) for f in classic.meta["files"]]
    return {"series": series, "seg": seg, "classic": classic, "datasets": datasets}


@pytest.mark.parametrize("order", ["sorted", "reversed", "shuffled"])
def test_an_enhanced_ct_reads_as_its_classic_series(tmp_path, case, order):
    datasets = list(case["datasets"])
    if order == "reversed":
        datasets = datasets[::-1]
    elif order == "shuffled":
        random.Random(3).shuffle(datasets)
    uid = generate_uid()
    path = to_enhanced(datasets, tmp_path / "ect" / "ect.dcm", series_uid=uid)
    classic = case["classic"]
    for volume in (read_dicom_series(path.parent), load_ct(path)):
        assert_same_volume(volume, classic)
        meta = volume.meta
        assert meta["series_uid"] == uid and meta["sop_class_uid"] == LEGACY_ENHANCED_CT
        assert meta["patient_id"] == classic.meta["patient_id"]
        assert meta["phase"] == classic.meta["phase"] != "unknown"
        assert meta["files"] == [str(path)] * classic.shape[0]
        assert len(set(meta["sop_instance_uids"])) == 1
        # per z, the frame lying there: the frame made from that z's classic slice
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        groups = ds.PerFrameFunctionalGroupsSequence
        made_from = [
            str(groups[f - 1].ConversionSourceAttributesSequence[0].ReferencedSOPInstanceUID)
            for f in meta["frame_numbers"]
        ]
        assert made_from == classic.meta["sop_instance_uids"]
        assert not meta["warnings"]
    # listed as a readable CT series: its frames are its slices
    [info] = discover_series(path.parent)
    assert info.is_ct and info.enhanced and info.n_slices == classic.shape[0]
    np.testing.assert_allclose(info.spacing, classic.spacing, rtol=1e-3)
    assert info.phase == classic.meta["phase"]
    assert "Enhanced CT" in info.summary()


@pytest.mark.parametrize(
    "direction",
    [rotation(2, 17) @ rotation(0, 11), np.diag([-1.0, 1.0, -1.0])],
    ids=["oblique", "feet-first"],
)
def test_an_oblique_or_feet_first_enhanced_ct_keeps_its_geometry(tmp_path, direction):
    rng = np.random.default_rng(1)
    source = CTVolume(
        rng.integers(-1024, 2000, (7, 18, 22)).astype(np.int16),
        (2.5, 0.71, 0.78),
        origin=(-120.5, 33.25, -410.0),
        direction=direction,
    )
    paths = write_ct_series(source, tmp_path / "classic", series_description="ART")
    classic = read_dicom_series(tmp_path / "classic")
    path = to_enhanced([pydicom.dcmread(p) for p in paths], tmp_path / "ect" / "ect.dcm")
    volume = read_dicom_series(path)
    assert_same_volume(volume, classic)
    np.testing.assert_allclose(volume.direction, classic.direction, atol=1e-6)
    assert volume.meta["phase"] == "arterial"


HCC_SEGMENTS = [(1, "Liver"), (2, "Mass")]


@pytest.mark.parametrize("kind", ["BINARY", "LABELMAP"])
def test_a_seg_on_an_enhanced_ct_references_its_frames_and_reads_back(tmp_path, case, kind):
    datasets = list(case["datasets"])
    random.Random(5).shuffle(datasets)  # frame order unlike z order
    path = to_enhanced(datasets, tmp_path / "ect" / "ect.dcm")
    volume = read_dicom_series(path)
    truth = read_dicom_seg(case["seg"], case["classic"])  # the synthetic ground truth
    assert truth.any()
    labels = np.where(truth == 2, 2, np.where(truth > 0, 1, 0)).astype(np.uint8)
    out = write_dicom_seg(
        labels, volume, tmp_path / "seg.dcm", HCC_SEGMENTS, segmentation_type=kind
    )
    np.testing.assert_array_equal(read_dicom_seg(out, volume), labels)
    # its frames reference the CT's frames (not its first, nor by file order)
    seg = pydicom.dcmread(out)
    z_of = {f: z for z, f in enumerate(volume.meta["frame_numbers"])}
    ct_uid = volume.meta["sop_instance_uids"][0]
    frames = np.asarray(seg.pixel_array).reshape(int(seg.NumberOfFrames), *labels.shape[1:])
    for item, frame in zip(seg.PerFrameFunctionalGroupsSequence, frames, strict=True):
        [source] = item.DerivationImageSequence[0].SourceImageSequence
        assert source.ReferencedSOPInstanceUID == ct_uid
        z = z_of[int(source.ReferencedFrameNumber)]
        assert labels[z][frame > 0].all()
    # mapped by the referenced frame, not by position: still right without positions
    for item in seg.PerFrameFunctionalGroupsSequence:
        del item.PlanePositionSequence
    seg.save_as(tmp_path / "no_positions.dcm")
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "no_positions.dcm", volume), labels)


def test_a_seg_on_an_enhanced_ct_shown_turned_lands_on_its_frames(tmp_path):
    """A feet-first Enhanced CT is shown turned (its slice axis reversed): the frames each slice
    references follow the turn."""
    rng = np.random.default_rng(2)
    source = CTVolume(
        rng.integers(-100, 200, (6, 16, 18)).astype(np.int16),
        (2.5, 0.8, 0.8),
        direction=np.diag([-1.0, 1.0, -1.0]),
    )
    paths = write_ct_series(source, tmp_path / "classic")
    path = to_enhanced([pydicom.dcmread(p) for p in paths], tmp_path / "ect" / "ect.dcm")
    volume = read_dicom_series(path)
    shown = volume.displayed()
    assert shown is not volume and shown.meta["frame_numbers"] == volume.meta["frame_numbers"][::-1]
    labels = np.zeros(shown.shape, np.uint8)
    labels[1:3, 4:9, 5:12] = 1
    labels[4, 2:5, 2:5] = 2
    out = write_dicom_seg(labels, shown, tmp_path / "seg.dcm", HCC_SEGMENTS)
    np.testing.assert_array_equal(read_dicom_seg(out, shown), labels)
    stored = shown.meta["stored_turn"].undo(labels)  # (slices and columns reversed)
    np.testing.assert_array_equal(read_dicom_seg(out, volume), stored)


def test_a_tcia_like_patient_with_an_enhanced_ct_loads_with_its_ground_truth(tmp_path, case):
    from napari_livertumor.io.tcia import load_tcia_case

    study = tmp_path / "HCC_001" / "study"
    path = to_enhanced(case["datasets"], study / "4.000000-LIVER-1" / "1-1.dcm")
    volume = read_dicom_series(path)
    labels = read_dicom_seg(case["seg"], case["classic"])
    write_dicom_seg(
        labels,
        volume,
        study / "300.000000-Segmentation-1" / "1-1.dcm",
        [(1, "Liver"), (2, "Mass"), (3, "Portal vein"), (4, "Abdominal aorta")],
        algorithm_type="MANUAL",
        reverse_frames=True,
    )
    ct, truth = load_tcia_case(tmp_path / "HCC_001")
    assert_same_volume(ct, case["classic"])
    np.testing.assert_array_equal(truth, labels)
    assert load_ct(tmp_path / "HCC_001").meta["seg_files"]


def test_a_series_split_into_several_enhanced_files_is_stacked(tmp_path, case):
    datasets = case["datasets"]
    uid = generate_uid()
    folder = tmp_path / "ect"
    half = len(datasets) // 2
    to_enhanced(datasets[half:], folder / "b.dcm", series_uid=uid, number=2)
    to_enhanced(datasets[:half], folder / "a.dcm", series_uid=uid, number=1)
    [info] = discover_series(folder)
    assert info.enhanced and info.n_slices == len(datasets) and len(info.files) == 2
    volume = read_dicom_series(folder)
    assert_same_volume(volume, case["classic"])
    assert volume.meta["files"] == [str(folder / "a.dcm")] * half + [str(folder / "b.dcm")] * (
        len(datasets) - half
    )
    # a SEG can reference one multi-frame image only: refused, saying why
    labels = np.zeros(volume.shape, np.uint8)
    labels[half - 1 : half + 1, 30:40, 30:40] = 1
    with pytest.raises(InputError, match="one multi-frame image.*export NIfTI"):
        write_dicom_seg(labels, volume, tmp_path / "seg.dcm", HCC_SEGMENTS)


@pytest.mark.parametrize(
    "first, second, said",
    [
        (slice(0, 20), slice(10, None), r"b\.dcm.*overlap: they cover the same positions"),
        (slice(0, 10), slice(14, None), r"leave a gap of .* mm between them"),
    ],
    ids=["overlap", "gap"],
)
def test_enhanced_files_that_overlap_or_leave_a_gap_are_refused_by_name(
    tmp_path, case, first, second, said
):
    datasets, uid = case["datasets"], generate_uid()
    to_enhanced(datasets[first], tmp_path / "a.dcm", series_uid=uid)
    to_enhanced(datasets[second], tmp_path / "b.dcm", series_uid=uid)
    with pytest.raises(InputError, match=said):
        read_dicom_series(tmp_path)


def test_an_enhanced_ct_whose_frames_are_no_regular_stack_is_refused_by_name(tmp_path, case):
    datasets = list(case["datasets"])
    del datasets[12]  # a missing frame: uneven spacing
    path = to_enhanced(datasets, tmp_path / "ect" / "ect.dcm")
    with pytest.raises(InputError, match=r"ect\.dcm.*do not form one regular stack of slices"):
        read_dicom_series(path.parent)
    # two frames at one position
    datasets = list(case["datasets"])
    twin = pydicom.dcmread(case["classic"].meta["files"][5])
    twin.SOPInstanceUID = generate_uid()
    path = to_enhanced([*datasets, twin], tmp_path / "twin" / "ect.dcm")
    with pytest.raises(InputError, match=r"ect\.dcm.*do not form one regular stack"):
        load_ct(path)


def test_a_compressed_enhanced_ct_reads_as_its_classic_series(tmp_path, case):
    from pydicom.uid import RLELossless

    path = to_enhanced(case["datasets"], tmp_path / "ect" / "ect.dcm")
    ds = pydicom.dcmread(path)
    try:
        ds.compress(RLELossless)
    except Exception as exc:  # no RLE encoder in this pydicom
        pytest.skip(f"cannot write RLE here: {exc}")
    ds.save_as(path)
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == RLELossless
    assert_same_volume(read_dicom_series(path), case["classic"])


def test_a_true_enhanced_ct_is_read(tmp_path):
    """pydicom's Enhanced CT Image Storage sample (2 frames, supplemental palette)."""
    from pydicom.data import get_testdata_file

    src = get_testdata_file("eCT_Supplemental.dcm")
    if src is None:
        pytest.skip("eCT_Supplemental.dcm not available")
    volume = load_ct(src)
    ds = pydicom.dcmread(src)
    assert ds.SOPClassUID == ENHANCED_CT and volume.shape == (2, ds.Rows, ds.Columns)
    assert volume.array.dtype == np.int16
    # HU: the frames' stored values through their rescale, in z order along the normal
    pixels = ds.pixel_array.astype(np.float64)
    for z, frame in enumerate(volume.meta["frame_numbers"]):
        group = ds.PerFrameFunctionalGroupsSequence[frame - 1]
        shared = ds.SharedFunctionalGroupsSequence[0]
        item = (
            group.get("PixelValueTransformationSequence") or shared.PixelValueTransformationSequence
        )[0]
        hu = np.rint(pixels[frame - 1] * float(item.RescaleSlope) + float(item.RescaleIntercept))
        np.testing.assert_array_equal(volume.array[z], hu)
    np.testing.assert_allclose(volume.spacing[1:], [float(v) for v in _spacing(ds)], atol=1e-6)


def _spacing(ds):
    for g in (ds.SharedFunctionalGroupsSequence[0], ds.PerFrameFunctionalGroupsSequence[0]):
        if "PixelMeasuresSequence" in g:
            return g.PixelMeasuresSequence[0].PixelSpacing
    raise AssertionError("no PixelSpacing")


@pytest.mark.gui
def test_the_export_panel_writes_a_dicom_seg_on_an_enhanced_ct(
    tmp_path, case, make_napari_viewer, qtbot
):
    """The GUI path: a CT layer from an Enhanced CT, a segmentation on it, Export → DICOM SEG
    that reads back on the CT (the layer keeps which frame each slice is)."""
    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets.export import ExportWidget

    path = to_enhanced(case["datasets"][::-1], tmp_path / "ect" / "ect.dcm")
    vol = read_dicom_series(path.parent)
    labels = read_dicom_seg(case["seg"], case["classic"])
    labels = np.where(labels == 2, 2, (labels > 0).astype(np.uint8)).astype(np.uint8)
    viewer = make_napari_viewer()
    _layers.add_ct_layer(viewer, vol, name="ECT")
    _layers.add_labels_layer(viewer, labels, vol, "ECT segmentation", ct_layer_name="ECT")
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    out = tmp_path / "out"
    widget.folder.setText(str(out))
    assert widget.seg_check.isEnabled()
    widget.seg_check.setChecked(True)
    widget.export_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    (seg,) = out.glob("*_seg.dcm")
    np.testing.assert_array_equal(read_dicom_seg(seg, vol), labels)
    assert (
        str(pydicom.dcmread(seg).ReferencedSeriesSequence[0].SeriesInstanceUID)
        == (vol.meta["series_uid"])
    )


def _permuted(src: Path, dst: Path, perm) -> Path:
    """The enhanced file ``src`` with its frames stored in the order ``perm`` (highdicom's
    conversion sorts the slices itself, so a list given reversed or shuffled is not)."""
    ds = pydicom.dcmread(src)
    frames = ds.pixel_array
    groups = list(ds.PerFrameFunctionalGroupsSequence)
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([groups[i] for i in perm])
    ds.PixelData = np.ascontiguousarray(frames[list(perm)]).tobytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)
    return dst


def test_truly_shuffled_frames_read_in_place_with_their_slices_image_numbers(tmp_path, case):
    """The image numbers of a lesion (Inspect, stats) are the original slices' InstanceNumbers
    a legacy conversion keeps per frame, not frame numbers (which name images elsewhere)."""
    path = to_enhanced(case["datasets"], tmp_path / "a" / "ect.dcm")
    n = case["classic"].shape[0]
    perm = list(range(n))
    random.Random(5).shuffle(perm)
    shuffled = _permuted(path, tmp_path / "b" / "ect.dcm", perm)
    volume = read_dicom_series(shuffled.parent)
    assert_same_volume(volume, case["classic"])
    assert volume.meta["instance_numbers"] == case["classic"].meta["instance_numbers"]
    assert sorted(volume.meta["frame_numbers"]) == list(range(1, n + 1))


def test_padding_and_bits_above_bits_stored_read_as_in_a_classic_series(tmp_path, case):
    """Unsigned pixels padded with a signed -2000 (63536) outside the field read +32767 HU, and
    an overlay bit above BitsStored made specks of it: the classic reader's rules now apply."""
    import copy

    slices = []
    for ds in case["datasets"]:
        ds = copy.deepcopy(ds)
        hu = ds.pixel_array.astype(np.int32) + int(ds.RescaleIntercept)
        stored = np.clip(hu + 1024, 0, 4095).astype(np.uint16)
        stored[:, :6] = 63536  # outside the scanned field
        stored[40:44, 40:44] |= 0x8000  # an overlay bit above BitsStored 12
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
        ds.PixelPaddingValue = 63536
        ds["PixelPaddingValue"].VR = "US"
        ds.RescaleIntercept = -1024
        ds.PixelData = stored.tobytes()
        slices.append(ds)
    classic, enhanced = read_both_ways(slices, tmp_path)
    np.testing.assert_array_equal(enhanced.array, classic.array)
    assert enhanced.array.max() < 4000 and enhanced.array[0, 0, 0] == -1024


def test_positions_rounded_or_a_wrong_spacing_tag_do_not_refuse_even_frames(tmp_path, case):
    """highdicom held the frames to 1 % and to SpacingBetweenSlices: positions written to a
    tenth of a mm, or a SpacingBetweenSlices that disagrees with them, were refused."""
    import copy

    slices = []
    for k, ds in enumerate(case["datasets"]):
        ds = copy.deepcopy(ds)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + (0.04 if k % 2 else -0.04)]
        slices.append(ds)
    path = to_enhanced(slices, tmp_path / "j" / "ect.dcm")
    ds = pydicom.dcmread(path)
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices = 5.0
    ds.save_as(path)
    volume = read_dicom_series(path.parent)
    np.testing.assert_array_equal(volume.array, case["classic"].array)


def test_a_cut_short_enhanced_ct_is_named_truncated_and_cancel_is_heard(tmp_path, case):
    from napari_livertumor.errors import Cancelled
    from napari_livertumor.progress import Reporter

    path = to_enhanced(case["datasets"], tmp_path / "ect" / "ect.dcm")
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):  # looked at between a few frames, not after the whole file
        read_dicom_series(path.parent, reporter=Reporter(should_cancel=stop))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(InputError, match=r"ect\.dcm.*truncated or corrupt"):
        read_dicom_series(path.parent)


def test_a_one_frame_file_and_classic_slices_beside_enhanced_ones_are_never_lost_unsaid(
    tmp_path, case
):
    """A series split 31 + 1 lost its one-frame file without a word (it was no Enhanced CT to
    the reader); classic slices under the UID of a larger Enhanced file vanished unsaid."""
    datasets, classic = case["datasets"], case["classic"]
    uid = generate_uid()
    folder = tmp_path / "split"
    to_enhanced(datasets[:-1], folder / "a.dcm", series_uid=uid)
    to_enhanced(datasets[-1:], folder / "b.dcm", series_uid=uid, number=2)
    volume = read_dicom_series(folder)
    assert_same_volume(volume, classic)
    # the slices' own numbers, kept by the conversion, run on across the two files
    assert volume.meta["instance_numbers"] == classic.meta["instance_numbers"]
    mixed = tmp_path / "mixed"
    to_enhanced(datasets[:20], mixed / "e.dcm", series_uid=uid)
    import copy

    for k, ds in enumerate(datasets[20:]):
        ds = copy.deepcopy(ds)
        ds.SeriesInstanceUID = uid  # one series, both kinds
        ds.save_as(mixed / f"s{k}.dcm")
    volume = read_dicom_series(mixed)
    assert volume.shape[0] == 20
    assert any("that are no Enhanced CT left out" in w for w in volume.meta["warnings"])
    assert len(volume.meta["unused_files"]) == len(datasets) - 20


def test_signed_pixels_of_twelve_bits_are_sign_extended(tmp_path, case):
    """Signed 12-bit values stored without their sign extended read 0…4095 (air as bone)."""
    import copy

    slices = []
    for ds in case["datasets"]:
        ds = copy.deepcopy(ds)
        hu = ds.pixel_array.astype(np.int32) + int(ds.RescaleIntercept)
        stored = np.clip(hu, -2048, 2047).astype(np.int16).view(np.uint16) & 0x0FFF
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 1, 12, 11
        ds.RescaleIntercept = 0
        ds.PixelData = stored.astype(np.uint16).tobytes()
        slices.append(ds)
    classic, enhanced = read_both_ways(slices, tmp_path)
    np.testing.assert_array_equal(enhanced.array, classic.array)
    assert enhanced.array.min() < -900


def test_a_lone_frame_keeps_its_thickness_and_a_classic_slice_labelled_enhanced_reads(
    tmp_path, case
):
    """A one-frame Enhanced CT alone got 1 mm slices (every mL off by the thickness); classic
    slices carrying the Enhanced CT class without functional groups were refused."""
    import copy

    lone = read_dicom_series(to_enhanced(case["datasets"][5:6], tmp_path / "l" / "e.dcm").parent)
    assert lone.spacing[0] == pytest.approx(float(case["datasets"][5].SliceThickness), abs=1e-3)
    folder = tmp_path / "relabelled"
    folder.mkdir()
    for k, ds in enumerate(case["datasets"]):
        ds = copy.deepcopy(ds)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = ENHANCED_CT
        ds.save_as(folder / f"{k:03d}.dcm")
    assert_same_volume(read_dicom_series(folder), case["classic"])


def test_an_enhanced_cts_frame_with_an_intercept_that_is_no_number_is_mended_as_a_slice_is(
    tmp_path, case
):
    """A frame's RescaleIntercept 'nan' took frame 1's unsaid; on frame 1 it refused the whole
    file, where a classic series takes the other slices' value, said."""
    import copy

    def with_bad(frames: set[int], name: str) -> Path:
        path = to_enhanced(case["datasets"], tmp_path / name / "ect.dcm")
        ds = pydicom.dcmread(path)
        shared = ds.SharedFunctionalGroupsSequence[0]
        pvt = shared.PixelValueTransformationSequence
        del shared.PixelValueTransformationSequence
        for k, group in enumerate(ds.PerFrameFunctionalGroupsSequence, start=1):
            group.PixelValueTransformationSequence = copy.deepcopy(pvt)
            if k in frames:
                group.PixelValueTransformationSequence[0].RescaleIntercept = "nan"
        ds.save_as(path)
        return path.parent

    for frames in ({1}, {3}):
        volume = read_dicom_series(with_bad(frames, f"bad{min(frames)}"))
        assert_same_volume(volume, case["classic"])
        assert any(
            "RescaleIntercept 'nan' of 1 frame(s)" in w and "taken as the other frames'" in w
            for w in volume.meta["warnings"]
        )
    every = set(range(1, len(case["datasets"]) + 1))
    with pytest.raises(InputError, match="RescaleIntercept 'nan' \\(of all"):
        read_dicom_series(with_bad(every, "all"))


def test_an_enhanced_ct_compressed_with_loss_is_read_with_a_warning(tmp_path, case):
    """An Enhanced CT tagged LossyImageCompression "01" read without a word, as a classic
    lossy series did: its HU are the compression's, its small lesions less reliable."""
    path = to_enhanced(case["datasets"], tmp_path / "ect" / "ect.dcm")
    ds = pydicom.dcmread(path)
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = 12
    ds.LossyImageCompressionMethod = "ISO_15444_1"
    ds.save_as(path)
    said = [w for w in read_dicom_series(path).meta["warnings"] if "lossy" in w]
    n = case["classic"].shape[0]
    assert len(said) == 1 and said[0].startswith(
        f"lossy-compressed pixel data (all {n} slices; e.g. ect/ect.dcm: LossyImageCompression "
        "01, ratio 12:1, JPEG 2000 (ISO_15444_1))"
    )


def test_an_enhanced_ct_in_a_transfer_syntax_pydicom_does_not_know_is_refused_naming_it(
    tmp_path, case
):
    """Its pixel data in JPEG XL: "cannot be read as an Enhanced CT (ValueError: UID is not a
    transfer syntax.)", with no word of the syntax or of what to do."""
    path = to_enhanced(case["datasets"], tmp_path / "ect" / "ect.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.UID("1.2.840.10008.1.2.4.110")
    pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=True, force_encoding=True)
    with pytest.raises(
        InputError, match=r"JPEG XL Lossless \(1\.2\.840\.10008\.1\.2\.4\.110\), which is not "
    ) as info:
        load_ct(path)
    assert info.value.path == path
