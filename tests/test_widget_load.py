"""The Load widget, driven as a user would: pick a source, click, see the CT as a layer."""

from __future__ import annotations

import numpy as np
import pytest
from _permissions import deny_listing
from _widget_data import tiny_ct, write_dicom_case
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHeaderView

from napari_livertumor._widgets import _layers
from napari_livertumor._widgets.load import SOURCES, LoadWidget
from napari_livertumor.io.nifti import write_nifti

pytestmark = pytest.mark.gui

LEFT = Qt.MouseButton.LeftButton  # (PyQt6 takes no plain 1 for it)


@pytest.fixture
def load_widget(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = LoadWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def _wait_idle(qtbot, widget, timeout=20_000):
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def _load_nifti_with_truth(viewer, widget, qtbot, folder):
    """Load folder/ct.nii.gz with folder/gt.nii.gz as a user would; the two layers made."""
    widget.source.setCurrentText(SOURCES[1])
    widget.path.setText(str(folder / "ct.nii.gz"))
    widget.truth_path.setText(str(folder / "gt.nii.gz"))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    (ct,) = _layers.ct_layers(viewer)
    (gt,) = _layers.labels_layers(viewer, role="ground_truth")
    return ct, gt


def test_load_dicom_folder_lists_series_and_adds_ct_in_mm(load_widget, qtbot, tmp_path):
    viewer, widget = load_widget
    case, vol, _ = write_dicom_case(tmp_path)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    qtbot.mouseClick(widget.scan_button, LEFT)
    _wait_idle(qtbot, widget)
    assert widget.series_table.rowCount() == 1
    assert widget.series_table.item(0, 1).text() == str(vol.shape[0])
    assert widget.selected_series_uid() is not None

    qtbot.mouseClick(widget.load_button, LEFT)
    _wait_idle(qtbot, widget)
    (layer,) = _layers.ct_layers(viewer)
    np.testing.assert_array_equal(layer.data, vol.array)
    np.testing.assert_allclose(layer.scale, vol.spacing, atol=1e-4)
    assert tuple(layer.contrast_limits) == (-160.0, 240.0)
    assert layer.metadata["ct_volume"].meta["sop_instance_uids"]
    assert "Loaded" in widget.status.text()
    # the view is put on a whole slice: half-way between two, the slider named one slice
    # and the canvas drew the next
    z = float(layer.world_to_data(viewer.dims.point)[0])
    assert z == round(z) == viewer.dims.current_step[0]
    # the slider is named as the panels name it (napari's default label read "-3")
    assert tuple(viewer.dims.axis_labels) == ("slice", "y", "x")


def test_load_nifti_with_ground_truth_adds_aligned_labels(load_widget, qtbot, tmp_path):
    viewer, widget = load_widget
    vol, labels = tiny_ct()
    write_nifti(vol, tmp_path / "ct.nii.gz")
    write_nifti(labels, tmp_path / "gt.nii.gz", reference=vol)
    ct, gt = _load_nifti_with_truth(viewer, widget, qtbot, tmp_path)
    np.testing.assert_array_equal(gt.data, labels)
    np.testing.assert_allclose(gt.scale, ct.scale)
    np.testing.assert_allclose(gt.translate, ct.translate)


def test_a_mask_of_0_and_255_is_refused_as_a_ground_truth_and_the_scan_opens(
    load_widget, qtbot, tmp_path
):
    """3D-IRCADb's 0/255 liver mask was taken as a ground truth of class 255: Inspect scored the
    model's liver a Dice of 0 without a word."""
    viewer, widget = load_widget
    vol, labels = tiny_ct()
    write_nifti(vol, tmp_path / "ct.nii.gz")
    write_nifti((labels > 0).astype(np.uint8) * 255, tmp_path / "gt.nii.gz", reference=vol)
    widget.source.setCurrentText(SOURCES[1])
    widget.path.setText(str(tmp_path / "ct.nii.gz"))
    widget.truth_path.setText(str(tmp_path / "gt.nii.gz"))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert len(_layers.ct_layers(viewer)) == 1
    assert not _layers.labels_layers(viewer, role="ground_truth")
    text = widget.status.text()
    assert "gt.nii.gz" in text and "holds values from 0 to 255" in text, text
    assert "a mask of 0 and 255 is no such map" in text


def test_the_slider_is_named_again_when_a_result_comes_after_its_ct_was_removed(load_widget):
    """The CT deleted while Segment ran: its y and x names stayed, and the result's slice axis
    came back as napari's "-3"."""
    viewer, widget = load_widget
    vol, labels = tiny_ct()
    ct = _layers.add_ct_layer(viewer, vol)
    assert tuple(viewer.dims.axis_labels) == ("slice", "y", "x")
    viewer.layers.remove(ct)
    _layers.add_labels_layer(viewer, labels, vol, "segmentation")
    assert tuple(viewer.dims.axis_labels) == ("slice", "y", "x")
    viewer.dims.axis_labels = ("depth", "y", "x")  # a user's own names are kept
    _layers.name_axes(viewer)
    assert tuple(viewer.dims.axis_labels) == ("depth", "y", "x")


def test_the_slider_is_named_for_a_scan_opened_by_napari_before_a_panel_or_after(
    make_napari_viewer,
):
    """The sample opened from napari's menu before any panel ran: the slider read "-3"."""
    from napari_livertumor._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    vol, _ = tiny_ct()
    viewer.add_image(vol.array, scale=vol.napari_scale)  # as napari's reader adds a scan
    assert tuple(viewer.dims.axis_labels) != ("slice", "y", "x")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert tuple(viewer.dims.axis_labels) == ("slice", "y", "x")
    viewer.layers.clear()
    viewer.dims.axis_labels = ("-3", "-2", "-1")
    viewer.add_image(vol.array, scale=vol.napari_scale)  # and with the panel docked
    assert tuple(viewer.dims.axis_labels) == ("slice", "y", "x")


def test_a_study_of_another_day_left_unread_names_find_series(load_widget, qtbot, tmp_path):
    """The note on a follow-up left out said "or --series": in this panel the series is
    chosen with Find series."""
    from napari_livertumor.io import CTVolume
    from napari_livertumor.io.dicom_write import write_ct_series

    viewer, widget = load_widget
    rng = np.random.default_rng(0)
    common = {"patient_id": "HCC_001", "series_description": "LIVER"}
    for sub, n, uid, date, number in (
        ("s1", 6, "1.2.826.0.1.3680043.8.498.71", "19980428", 4),
        ("s2", 4, "1.2.826.0.1.3680043.8.498.72", "19980612", 104),
    ):
        vol = CTVolume(rng.integers(-100, 200, (n, 16, 16)).astype(np.int16), (2.5, 1.0, 1.0))
        write_ct_series(vol, tmp_path / "P" / sub, study_uid=uid, study_date=date,
                        series_number=number, **common)  # fmt: skip
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path / "P"))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert len(_layers.ct_layers(viewer)) == 1
    text = widget.status.text()
    assert "another study, 1998-06-12" in text
    assert "Find series in the Load panel" in text


def test_a_nifti_file_given_as_the_dicom_folder_is_read_as_nifti(load_widget, qtbot, tmp_path):
    """The panel opens on "DICOM folder": a pasted .nii.gz was refused as not a DICOM file."""
    viewer, widget = load_widget
    vol, _ = tiny_ct()
    write_nifti(vol, tmp_path / "ct.nii.gz")
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path / "ct.nii.gz"))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    (layer,) = _layers.ct_layers(viewer)
    np.testing.assert_array_equal(layer.data, vol.array)
    assert widget.source.currentText() == SOURCES[1] and "Loaded" in widget.status.text()


def test_window_presets_change_the_ct_contrast(load_widget, qtbot, tmp_path):
    viewer, widget = load_widget
    vol, _ = tiny_ct()
    _layers.add_ct_layer(viewer, vol)
    widget.window_combo.setCurrentText("bone")
    assert tuple(viewer.layers[0].contrast_limits) == (-500.0, 1300.0)
    widget.window_combo.setCurrentText("lung")
    assert tuple(viewer.layers[0].contrast_limits) == (-1350.0, 150.0)


def test_the_ct_contrast_slider_reaches_past_the_abdomen_window(load_widget, tmp_path):
    """napari set the slider's range to the window given: both handles sat at its ends and
    could not be dragged wider (a bone window) without the HU window list."""
    viewer, widget = load_widget
    vol, _ = tiny_ct()
    layer = _layers.add_ct_layer(viewer, vol)
    assert tuple(layer.contrast_limits) == (-160.0, 240.0)  # the abdomen window, as before
    assert tuple(layer.contrast_limits_range) == (-1024.0, 3071.0)
    write_nifti(vol, tmp_path / "ct.nii.gz")  # opened by the reader (File > Open) too
    [opened] = viewer.open(str(tmp_path / "ct.nii.gz"), plugin="napari-livertumor")
    assert tuple(opened.contrast_limits) == (-160.0, 240.0)
    assert tuple(opened.contrast_limits_range) == (-1024.0, 3071.0)


def test_a_missing_file_shows_a_clear_message_and_adds_nothing(load_widget, qtbot, tmp_path):
    viewer, widget = load_widget
    widget.source.setCurrentText(SOURCES[1])
    widget.path.setText(str(tmp_path / "nope.nii.gz"))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert len(viewer.layers) == 0
    assert "nope.nii.gz" in widget.status.text()


def test_the_sample_ct_loads_with_its_ground_truth(load_widget, qtbot):
    pytest.importorskip("napari_livertumor._sample_data")
    viewer, widget = load_widget
    widget.source.setCurrentText(SOURCES[2])
    widget.load_button.click()
    _wait_idle(qtbot, widget, timeout=60_000)
    (ct,) = _layers.ct_layers(viewer)
    (gt,) = _layers.labels_layers(viewer, role="ground_truth")
    assert gt.data.shape == ct.data.shape
    assert {1, 2} <= set(np.unique(gt.data))


def test_samples_of_two_seeds_are_two_scans_not_a_second_copy():
    """Every sample has the same "source" (they are made, not read): the second seed's
    sample was called "a second copy" of the first."""
    from napari_livertumor._widgets.load import _same_scan
    from napari_livertumor.io.volume import CTVolume

    def sample(pid):
        meta = {"source": "napari_livertumor.synth", "patient_id": pid}
        return CTVolume(np.zeros((2, 4, 4), np.int16), spacing=(1, 1, 1), meta=meta)

    assert not _same_scan(sample("SYNTH_7"), sample("SYNTH_8"))
    assert _same_scan(sample("SYNTH_7"), sample("SYNTH_7"))


def test_a_new_path_drops_the_last_scan_and_the_seg_it_filled_in(load_widget, qtbot, tmp_path):
    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.seg import write_dicom_seg

    viewer, widget = load_widget
    case_a, _, labels = write_dicom_case(tmp_path / "a")
    write_dicom_seg(
        labels, read_dicom_series(case_a), case_a / "SEG" / "seg.dcm", [(1, "Liver"), (2, "Mass")]
    )
    case_b, vol_b, _ = write_dicom_case(tmp_path / "b")  # another patient, no SEG
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case_a))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.truth_path.text().endswith("seg.dcm")

    widget.path.setText(str(case_b))  # the user types another folder
    assert widget.series_table.rowCount() == 0 and widget.selected_series_uid() is None
    assert widget.truth_path.text() == ""  # A's SEG is not B's ground truth
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.truth_path.text() == ""
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    (layer,) = _layers.ct_layers(viewer)
    np.testing.assert_array_equal(layer.data, vol_b.array)

    widget.truth_path.setText(str(tmp_path / "mine.nii.gz"))  # typed by the user: kept
    widget.path.setText(str(case_a))
    assert widget.truth_path.text() == str(tmp_path / "mine.nii.gz")


def test_a_ground_truth_seg_without_a_liver_segment_is_said_beside_the_scan(
    load_widget, qtbot, tmp_path
):
    """A patient whose ground-truth SEG lost its Liver segment loaded with "Ground truth:
    1-1.dcm" alone, no word, while one without its Mass segment was said, and convert, train
    --check and evaluate refuse it ("describes no liver segment … cannot be trained on or
    scored"): said in the same words."""
    from _seg_edits import drop_segment

    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.seg import write_dicom_seg
    from napari_livertumor.training.data import NO_LIVER_WHY

    viewer, widget = load_widget
    case, vol, labels = write_dicom_case(tmp_path / "a")
    seg = case / "SEG" / "1-1.dcm"
    segments = [(1, "Liver"), (2, "Mass")]
    write_dicom_seg(labels, read_dicom_series(case), seg, segments, algorithm_type="MANUAL")
    drop_segment(seg, "Liver")
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert _layers.labels_layers(viewer, role="ground_truth")  # loaded all the same
    said = widget.status.text()
    assert "\nGround truth: 1-1.dcm, the DICOM SEG drawn on this series" in said
    assert (
        "⚠ ground truth 1-1.dcm: the SEG describes no liver segment (its segments: Mass): "
        f"{NO_LIVER_WHY}\n"
    ) in said
    # chosen in the Ground truth field after Find series: the same
    viewer.layers.clear()
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.truth_path.text()
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert "describes no liver segment (its segments: Mass)" in widget.status.text()


def test_a_folder_loaded_without_find_series_brings_its_seg_as_file_open_does(
    load_widget, qtbot, tmp_path
):
    """Typed path, Load (no Find series): the CT came alone, and nothing said a ground truth
    lay in the folder; File > Open of the same folder brings it."""
    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.seg import write_dicom_seg

    viewer, widget = load_widget
    case, vol, labels = write_dicom_case(tmp_path / "a")
    write_dicom_seg(
        labels, read_dicom_series(case), case / "SEG" / "seg.dcm", [(1, "Liver"), (2, "Mass")]
    )
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    (gt,) = _layers.labels_layers(viewer, role="ground_truth")
    np.testing.assert_array_equal(gt.data, labels)
    # said as news after the scan's line, not in amber as a doubt about it
    assert "\nGround truth: seg.dcm, the DICOM SEG drawn on this series" in widget.status.text()
    assert "⚠ ground truth:" not in widget.status.text()

    # after Find series, the field decides: emptied by the user, no ground truth comes
    viewer.layers.clear()
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    widget.truth_path.clear()
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert not _layers.labels_layers(viewer, role="ground_truth")


def test_a_ras_nifti_is_shown_as_dicom_would_be_and_exported_in_its_own_order(
    load_widget, qtbot, tmp_path
):
    """Converted NIfTI files are often RAS: napari would show them mirrored, upside down and off
    the same patient's DICOM. They are shown turned; masks go back in the file's order."""
    import nibabel as nib
    from _geometry import stored_as

    from napari_livertumor._widgets.export import write_exports

    viewer, widget = load_widget
    vol, labels = tiny_ct()
    ras_ct = stored_as(vol, "RAS")
    ras_gt = stored_as(vol.with_array(labels), "RAS")
    write_nifti(ras_ct, tmp_path / "ct.nii.gz")
    write_nifti(ras_gt, tmp_path / "gt.nii.gz")
    ct, gt = _load_nifti_with_truth(viewer, widget, qtbot, tmp_path)
    np.testing.assert_array_equal(ct.data, vol.array)  # as the DICOM-like original
    np.testing.assert_array_equal(gt.data, labels)
    np.testing.assert_allclose(ct.translate, vol.napari_translate, atol=1e-4)

    shown = ct.metadata["ct_volume"]
    out = write_exports(np.asarray(gt.data) > 0, shown, {"labels.nii.gz": tmp_path / "out.nii.gz"})
    back, src = nib.load(out[0]), nib.load(tmp_path / "ct.nii.gz")
    assert back.shape == src.shape
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(nib.load(
        tmp_path / "gt.nii.gz").dataobj) > 0)  # fmt: skip


def test_another_patients_seg_in_the_folder_is_not_proposed_and_never_blocks_the_ct(
    load_widget, qtbot, tmp_path
):
    """A folder with one patient's CT and another's SEG: Find series filled in that SEG and Load
    then failed as a whole; a file path made Find series say 'not a folder' while Load read it."""
    import shutil

    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.seg import write_dicom_seg

    viewer, widget = load_widget
    case_a, _, labels = write_dicom_case(tmp_path / "a")
    write_dicom_seg(
        labels, read_dicom_series(case_a), case_a / "SEG" / "seg.dcm", [(1, "Liver"), (2, "Mass")]
    )
    case_b, vol_b, _ = write_dicom_case(tmp_path / "b")  # its own series UIDs
    shutil.copytree(case_a / "SEG", case_b / "SEG")  # A's SEG beside B's CT
    widget.source.setCurrentText(SOURCES[0])
    a_file = next((case_b / "CT").iterdir())
    widget.path.setText(str(a_file))  # a file of the series: its folder is scanned
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.series_table.rowCount() == 1
    assert widget.truth_path.text() == ""
    widget.path.setText(str(case_b))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.truth_path.text() == ""
    assert "drawn on a series that is not here" in widget.status.text()

    # a ground truth that does not fit (typed by hand) never keeps the CT from opening
    widget.truth_path.setText(str(case_b / "SEG" / "seg.dcm"))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    (layer,) = _layers.ct_layers(viewer)
    np.testing.assert_array_equal(layer.data, vol_b.array)
    assert not _layers.labels_layers(viewer, role="ground_truth")
    assert "The ground truth was not loaded" in widget.status.text()


def _load_nifti(widget, qtbot, path):
    widget.source.setCurrentText(SOURCES[1])
    widget.path.setText(str(path))
    widget.truth_path.clear()
    widget.load_button.click()
    _wait_idle(qtbot, widget)


def test_a_scan_no_ct_can_be_is_refused_and_a_doubtful_one_is_flagged(load_widget, qtbot, tmp_path):
    """A km-sized spacing stretched the viewer's slider to 74 698 steps; [0, 1] values and a
    3×3×3 file loaded without a word."""
    from napari_livertumor.io import CTVolume

    viewer, widget = load_widget
    vol, _ = tiny_ct()
    write_nifti(CTVolume(vol.array, spacing=(2500.0, 800.0, 800.0)), tmp_path / "km.nii.gz")
    _load_nifti(widget, qtbot, tmp_path / "km.nii.gz")
    assert len(viewer.layers) == 0 and "implausible voxel spacing" in widget.status.text()
    normalised = CTVolume(((vol.array + 1024) / 4096).astype(np.float32), spacing=vol.spacing)
    write_nifti(normalised, tmp_path / "unit.nii.gz")
    _load_nifti(widget, qtbot, tmp_path / "unit.nii.gz")
    assert len(_layers.ct_layers(viewer)) == 1
    assert widget.status.text().startswith("⚠ the values do not look like Hounsfield units")
    write_nifti(CTVolume(np.zeros((3, 3, 3), np.int16), spacing=(1, 1, 1)), tmp_path / "t.nii.gz")
    _load_nifti(widget, qtbot, tmp_path / "t.nii.gz")
    assert "the models will refuse it: too small" in widget.status.text()


def test_loading_a_second_scan_shows_it_not_the_previous_one(load_widget, qtbot, tmp_path):
    from napari_livertumor.io import CTVolume

    viewer, widget = load_widget
    vol, _ = tiny_ct()
    write_nifti(vol, tmp_path / "a.nii.gz")
    far = CTVolume(vol.array, spacing=vol.spacing, origin=(500.0, 0.0, 0.0))  # 50 cm higher
    write_nifti(far, tmp_path / "b.nii.gz")
    _load_nifti(widget, qtbot, tmp_path / "a.nii.gz")
    _load_nifti(widget, qtbot, tmp_path / "b.nii.gz")
    new = _layers.ct_layers(viewer)[-1]
    z_lo = new.data_to_world([0, 0, 0])[0]
    z_hi = new.data_to_world([new.data.shape[0] - 1, 0, 0])[0]
    assert min(z_lo, z_hi) <= viewer.dims.point[0] <= max(z_lo, z_hi)


def test_a_second_scan_opened_with_file_open_is_shown_too(load_widget, tmp_path):
    """Opened with File > Open (or dropped), the next patient's scan stayed off screen: the
    slice was the last patient's table position, outside the new scan."""
    from napari_livertumor._reader import napari_get_reader
    from napari_livertumor.io import CTVolume

    viewer, widget = load_widget
    vol, _ = tiny_ct()
    write_nifti(vol, tmp_path / "a.nii.gz")
    far = CTVolume(vol.array, spacing=vol.spacing, origin=(500.0, 0.0, 0.0))  # 50 cm higher
    write_nifti(far, tmp_path / "b.nii.gz")
    for name in ("a.nii.gz", "b.nii.gz"):
        path = str(tmp_path / name)
        for data, kwargs, kind in napari_get_reader(path)(path):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
        new = _layers.ct_layers(viewer)[-1]
        lo, hi = np.asarray(new.extent.world)[:, 0]
        assert lo <= viewer.dims.point[0] <= hi, name
    # a slice chosen inside the new scan's stretch is left where it is (a second series of
    # the same patient opened to compare)
    viewer.dims.set_point(0, float(hi) - 5.0)
    again = CTVolume(vol.array, spacing=vol.spacing, origin=(500.0, 0.0, 0.0))
    viewer.add_image(again.array, scale=again.napari_scale, translate=again.napari_translate,
                     metadata={_layers.CT_VOLUME: again, _layers.ROLE: "ct"})  # fmt: skip
    assert viewer.dims.point[0] == pytest.approx(float(hi) - 5.0, abs=2.5)


def test_find_series_in_a_folder_of_segs_only_says_where_their_ct_would_be(
    load_widget, qtbot, tmp_path
):
    """It said only "No DICOM image series found here.", though the folder held a SEG."""
    from napari_livertumor.io import load_ct
    from napari_livertumor.io.seg import write_dicom_seg

    viewer, widget = load_widget
    case, vol, labels = write_dicom_case(tmp_path)
    write_dicom_seg(labels, load_ct(case / "CT"), tmp_path / "SEG" / "1-1.dcm", [(1, "Liver")],
                    algorithm_type="MANUAL")  # fmt: skip
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path / "SEG"))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    said = widget.status.text()
    assert f"No DICOM image series found in {tmp_path / 'SEG'}. It holds 1 DICOM SEG(s)" in said


def test_find_series_names_unreadable_files_and_a_folder_of_nifti_says_what_to_choose(
    load_widget, qtbot, tmp_path
):
    """Find series said "1 image series found" beside a file it could not read (Load warned),
    and "No DICOM image series found here." of a folder holding only a PNG named .dcm; a folder
    of NIfTI files given as the DICOM folder was "no DICOM files found", nothing on what to do."""
    viewer, widget = load_widget
    case, _, _ = write_dicom_case(tmp_path)
    (case / "CT" / "fake.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(600))
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case / "CT"))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    said = widget.status.text()
    assert "1 image series found" in said and "1 unreadable DICOM file(s) skipped" in said
    assert "fake.dcm" in said
    only = tmp_path / "only"
    only.mkdir()
    (only / "fake.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(600))
    widget.path.setText(str(only))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    said = widget.status.text()
    assert f"No DICOM image series found in {only}." in said and "fake.dcm" in said
    vol, _ = tiny_ct()
    write_nifti(vol, tmp_path / "nifti" / "imagesTr" / "A_001.nii.gz")
    widget.path.setText(str(tmp_path / "nifti"))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    said = widget.status.text()
    assert "a folder of NIfTI files (imagesTr/A_001.nii.gz)" in said, said
    assert "choose Source 'NIfTI file'" in said and len(viewer.layers) == 0
    widget.scan_button.click()  # Find series on it says the same
    _wait_idle(qtbot, widget)
    said = widget.status.text()
    assert said.startswith(f"No DICOM image series found in {tmp_path / 'nifti'}. It is a folder")
    assert "choose Source 'NIfTI file'" in said


def test_what_a_load_was_started_with_cannot_change_until_it_ends(load_widget, qtbot, tmp_path):
    """The source switched during a load showed "Sample" beside the DICOM scan it loaded."""
    viewer, widget = load_widget
    case, _, _ = write_dicom_case(tmp_path)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case / "CT"))
    tips = [widget.path.toolTip(), widget.truth_path.toolTip()]
    widget.load_button.click()
    locked = [widget.source, widget.browse, widget.truth_browse, widget.scan_button]
    fields = [widget.path, widget.truth_path]  # read-only: Enter there keeps the focus
    assert not any(w.isEnabled() for w in locked) and all(f.isReadOnly() for f in fields)
    # and shown so (QA gui59: read-only, they looked editable, typing in them doing nothing)
    assert all("color" in f.styleSheet() and "Locked while" in f.toolTip() for f in fields)
    _wait_idle(qtbot, widget)
    qtbot.waitUntil(lambda: widget.source.isEnabled(), timeout=20_000)
    assert all(w.isEnabled() for w in locked) and len(_layers.ct_layers(viewer)) == 1
    assert not any(f.isReadOnly() or f.styleSheet() for f in fields)
    assert [widget.path.toolTip(), widget.truth_path.toolTip()] == tips
    widget.source.setCurrentText(SOURCES[2])  # and as the source has them afterwards
    assert not widget.path.isEnabled() and widget.seed.isEnabled()


def test_the_lock_of_a_load_goes_with_a_closed_panel_and_no_scan_runs_beside_a_load(
    load_widget, qtbot, tmp_path, monkeypatch
):
    """Closed mid-load and docked again, the panel kept its inputs greyed out for good; a Find
    series started before a load ended during it and freed its button: a second scan ran."""
    import time

    import napari_livertumor.io.dicom as dicom_mod

    viewer, widget = load_widget
    case, _, _ = write_dicom_case(tmp_path)
    slow = dicom_mod.read_dicom_series
    monkeypatch.setattr(
        dicom_mod, "read_dicom_series", lambda *a, **k: (time.sleep(2), slow(*a, **k))[1]
    )
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case / "CT"))
    widget.scan_button.click()
    widget.load_button.click()  # the scan runs on, the load waits in its read
    qtbot.waitUntil(lambda: widget.scan_button not in widget.jobs, timeout=15_000)
    assert widget.load_button in widget.jobs and not widget.scan_button.isEnabled()
    widget.scan()  # (as a script would)
    assert widget.scan_button not in widget.jobs and "being loaded" in widget.status.text()
    _wait_idle(qtbot, widget)
    assert widget.scan_button.isEnabled() and widget.source.isEnabled()

    widget.load_button.click()
    assert not widget.source.isEnabled()
    widget.setParent(None)  # what the dock's close button does
    viewer.window.add_dock_widget(widget)
    qtbot.waitUntil(lambda: widget.load_button.isEnabled(), timeout=15_000)
    assert widget.source.isEnabled() and widget.path.isEnabled() and widget.scan_button.isEnabled()
    assert not widget.path.isReadOnly()


def _scan_then_close_the_panel(widget, viewer, tmp_path, monkeypatch, seconds: float):
    """Find series on a DICOM case (its scan made ``seconds`` slow), then the panel closed
    (napari's dock close button) and docked again while that scan is being stopped."""
    import time

    import napari_livertumor.io.dicom as dicom_mod

    case, _, _ = write_dicom_case(tmp_path)
    slow = dicom_mod.discover_series
    monkeypatch.setattr(
        dicom_mod, "discover_series", lambda *a, **k: (time.sleep(seconds), slow(*a, **k))[1]
    )
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case / "CT"))
    widget.scan_button.click()
    widget.setParent(None)
    viewer.window.add_dock_widget(widget)


def test_a_load_since_the_close_keeps_its_own_status_when_the_stopped_scan_ends(
    load_widget, qtbot, tmp_path, monkeypatch
):
    """The stopped scan's "Stopped: … no layer was changed" replaced "Loaded …" of a load
    that had just added a CT."""
    viewer, widget = load_widget
    _scan_then_close_the_panel(widget, viewer, tmp_path, monkeypatch, seconds=3)
    widget.load_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    qtbot.wait(100)
    assert len(_layers.ct_layers(viewer)) == 1
    assert widget.status.text().startswith("Loaded"), widget.status.text()


def test_a_scan_stopped_by_closing_the_panel_keeps_its_button_until_it_ends(
    load_widget, qtbot, tmp_path, monkeypatch
):
    """Unlocking the inputs at the close turned the stopping scan's "Cancelling…" button on."""
    import time

    import napari_livertumor.io.dicom as dicom_mod

    viewer, widget = load_widget
    _scan_then_close_the_panel(widget, viewer, tmp_path, monkeypatch, seconds=2)
    assert not widget.scan_button.isEnabled() and widget.source.isEnabled()
    qtbot.waitUntil(lambda: widget.scan_button.isEnabled(), timeout=15_000)
    assert widget.scan_button.text() == "Find series"
    # stopped by the close again, and a load started while it ends: Find series stays locked
    slow_read = dicom_mod.read_dicom_series
    monkeypatch.setattr(
        dicom_mod, "read_dicom_series", lambda *a, **k: (time.sleep(4), slow_read(*a, **k))[1]
    )
    widget.scan_button.click()
    widget.setParent(None)
    viewer.window.add_dock_widget(widget)
    widget.load_button.click()
    qtbot.waitUntil(lambda: not widget._winding_jobs(), timeout=15_000)
    qtbot.wait(100)
    assert widget._loading() and not widget.scan_button.isEnabled()
    _wait_idle(qtbot, widget)
    qtbot.waitUntil(lambda: widget.scan_button.isEnabled(), timeout=15_000)


def test_find_series_with_no_path_asks_for_one_and_scans_nothing(load_widget, monkeypatch):
    """An empty path scanned the folder napari was started in (a home folder: all of it)."""
    import napari_livertumor.io.dicom as dicom

    viewer, widget = load_widget
    scanned = []
    monkeypatch.setattr(dicom, "discover_series", lambda *a, **k: scanned.append(a) or [])
    widget.source.setCurrentText(SOURCES[0])
    for text in ("", "   "):
        widget.path.setText(text)
        widget.scan_button.click()
        assert "Choose a DICOM folder first" in widget.status.text()
        assert not widget.busy
    assert not scanned


def test_find_series_names_the_patients_when_a_folder_holds_two(load_widget, qtbot, tmp_path):
    from napari_livertumor.io.dicom_write import write_ct_series

    viewer, widget = load_widget
    vol, _ = tiny_ct()
    for pid in ("HCC_001", "HCC_002"):
        write_ct_series(vol, tmp_path / pid, patient_id=pid, series_description="LIVER")
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    rows = [widget.series_table.item(r, 0).text() for r in range(widget.series_table.rowCount())]
    assert sorted(rows) == ["HCC_001: #1 LIVER", "HCC_002: #1 LIVER"]  # numbered as PACS lists
    assert "belong to 2 patients (HCC_001, HCC_002)" in widget.status.text()


def test_the_notification_names_the_file_first_and_its_folder_last(
    load_widget, qtbot, tmp_path, monkeypatch
):
    """A deep path used to fill the toast before the problem was said."""
    import napari.utils.notifications as notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    viewer, widget = load_widget
    deep = tmp_path / "HCC_009" / "02-15-1998-NA-PP CAPLIVER PROTO.-10975" / "103.000000-LIVER"
    deep.mkdir(parents=True)
    (deep / "ct.nii.gz").write_bytes(b"this is not a NIfTI file")
    widget.source.setCurrentText(SOURCES[1])
    widget.path.setText(str(deep / "ct.nii.gz"))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert len(viewer.layers) == 0
    assert str(deep / "ct.nii.gz") in widget.status.text()  # the status keeps the whole path
    (toast,) = shown
    assert toast.startswith("ct.nii.gz: ") and toast.endswith(f"(in {deep})"), toast


def test_find_series_selects_the_series_the_seg_was_drawn_on(load_widget, qtbot, tmp_path):
    """Row 0 (most slices: a derived recon) was selected while the SEG of the contrast series was
    filled in, so Load paired the labels with the wrong series."""
    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.seg import write_dicom_seg
    from napari_livertumor.io.volume import CTVolume

    viewer, widget = load_widget
    case, vol, labels = write_dicom_case(tmp_path)
    ct = read_dicom_series(case / "CT")
    write_dicom_seg(labels, ct, case / "SEG" / "1-1.dcm", [(1, "Liver"), (2, "Mass")])
    recon = CTVolume(np.zeros((40, 48, 48), np.int16), (1.0, 0.9, 0.9), vol.origin)
    write_ct_series(recon, case / "RECON", patient_id="TEST_001", series_description="Recon 2")
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.series_table.item(0, 1).text() == "40"  # listed first: most slices
    assert widget.selected_series_uid() == ct.meta["series_uid"]
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    (layer,) = _layers.ct_layers(viewer)
    assert layer.data.shape == vol.shape
    (gt,) = _layers.labels_layers(viewer, role="ground_truth")
    assert np.count_nonzero(gt.data) == np.count_nonzero(labels)
    # the row was the user's choice: the other series "not read" is no warning of the scan's
    # (Segment showed it, and the exported stats kept it, as the reader's pick)
    notes = layer.metadata[_layers.CT_VOLUME].meta.get("warnings") or []
    assert not any("other series in the folder not read" in w for w in notes), notes


def _held_discovery(monkeypatch):
    import threading

    import napari_livertumor.io.dicom as dicom_mod

    gate, entered, real = threading.Event(), threading.Event(), dicom_mod.discover_series

    def held(folder, *args, **kwargs):
        entered.set()
        gate.wait(20)
        return real(folder, *args, **kwargs)

    monkeypatch.setattr(dicom_mod, "discover_series", held)
    return gate, entered


def test_browsing_another_folder_while_a_scan_runs_scans_the_new_one(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """The second scan was taken for a click on Cancel: the first was cancelled, the new folder
    never scanned, and the panel said 'Cancelled'."""
    from qtpy.QtWidgets import QFileDialog

    viewer = make_napari_viewer()
    a, _, _ = write_dicom_case(tmp_path / "a")
    b, _, _ = write_dicom_case(tmp_path / "b")
    gate, entered = _held_discovery(monkeypatch)
    widget = LoadWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.source.setCurrentText(SOURCES[0])
    for folder in (a, b):
        monkeypatch.setattr(
            QFileDialog, "getExistingDirectory", staticmethod(lambda *_, f=str(folder), **k: f)
        )
        widget.browse.click()
        qtbot.waitUntil(entered.is_set, timeout=10_000)
    gate.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    qtbot.wait(200)
    assert widget.path.text() == str(b)
    assert widget.series_table.rowCount() == 1
    assert "image series found" in widget.status.text()
    assert widget.scan_button.text() == "Find series" and widget.scan_button.isEnabled()


def test_a_scan_of_a_folder_no_longer_named_is_dropped(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """The old folder's series filled the table under the new path (Load would have read the
    new path with the old folder's series UID)."""
    viewer = make_napari_viewer()
    a, _, _ = write_dicom_case(tmp_path / "a")
    gate, entered = _held_discovery(monkeypatch)
    widget = LoadWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(a))
    widget.scan_button.click()
    qtbot.waitUntil(entered.is_set, timeout=10_000)
    widget.path.setText(str(tmp_path / "elsewhere"))  # the user types another folder
    gate.set()
    qtbot.wait(500)
    assert not widget.busy and widget.series_table.rowCount() == 0
    assert widget.scan_button.text() == "Find series" and widget.scan_button.isEnabled()


def test_a_scan_of_another_modality_opens_with_a_warning(load_widget, qtbot, tmp_path):
    """An MR series loaded with only '[MR]' in the list; Segment then refused it."""
    import pydicom

    viewer, widget = load_widget
    case, _, _ = write_dicom_case(tmp_path)
    for f in (case / "CT").iterdir():
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.ContrastBolusAgent = "Gadovist"  # (read as a CT's "contrast" phase)
        ds.ImageComments = "PORTAL VENOUS"
        ds.save_as(f)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    qtbot.mouseClick(widget.scan_button, LEFT)
    _wait_idle(qtbot, widget)
    assert widget.series_table.item(0, 3).text() == "—"  # no CT contrast phase claimed
    qtbot.mouseClick(widget.load_button, LEFT)
    _wait_idle(qtbot, widget)
    assert len(_layers.ct_layers(viewer)) == 1  # it opens, to look at
    assert "the scan is MR, not CT" in widget.status.text()
    assert widget.series_table.item(0, 0).text().startswith("[MR]")  # not cut off at the end
    # its values are no HU: shown by their own spread (the abdomen window was −160…240)
    (layer,) = _layers.ct_layers(viewer)
    assert tuple(layer.contrast_limits) == pytest.approx((-1000, 60))
    own = tuple(layer.contrast_limits)
    widget.window_combo.setCurrentText("liver")  # a HU preset chosen after: not on the MR
    assert tuple(layer.contrast_limits) == pytest.approx(own)
    # Segment says so in its own terms, before any model is loaded
    from napari_livertumor._widgets.segment import SegmentWidget

    segment = SegmentWidget(viewer)
    segment.run_button.click()
    assert "is MR, not CT" in segment.status.text() and not segment.busy


def test_the_chosen_phase_of_a_series_stacking_two_is_the_one_loaded(load_widget, qtbot, tmp_path):
    """Both rows of a series stacking two acquisitions loaded the same phase (the default one):
    the row's acquisition was never passed on. With a SEG drawn on the first phase, that row is
    the one selected."""
    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.seg import write_dicom_seg
    from napari_livertumor.io.volume import CTVolume

    viewer, widget = load_widget
    rng = np.random.default_rng(3)
    arterial = CTVolume(rng.integers(-100, 200, (6, 32, 32)).astype(np.int16), (2.5, 1.0, 1.0))
    venous = CTVolume(rng.integers(-100, 200, (6, 32, 32)).astype(np.int16), (2.5, 1.0, 1.0))
    common = {"series_uid": "1.2.826.0.1.3680043.8.498.11", "patient_id": "P7",
              "study_uid": "1.2.826.0.1.3680043.8.498.12", "series_description": "LIVER"}  # fmt: skip
    folder = tmp_path / "P7"
    write_ct_series(arterial, folder / "ct", acquisition_number=1, contrast_phase="arterial",
                    file_names=[f"a{i}.dcm" for i in range(6)], **common)  # fmt: skip
    write_ct_series(venous, folder / "ct", acquisition_number=2, contrast_phase="portal venous",
                    instance_number_start=7, file_names=[f"v{i}.dcm" for i in range(6)],
                    **common)  # fmt: skip
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(folder))
    for row in (0, 1):
        widget.scan_button.click()
        _wait_idle(qtbot, widget)
        assert widget.series_table.rowCount() == 2
        widget.series_table.selectRow(row)
        expected = arterial if widget.selected_series().acquisition == 1 else venous
        widget.load_button.click()
        _wait_idle(qtbot, widget)
        layer = _layers.ct_layers(viewer)[-1]
        np.testing.assert_array_equal(layer.data, expected.array)
        # which acquisition, in its name (napari's "[2]" was read as "acquisition 2"), last
        n = widget.selected_series().acquisition
        assert layer.name.endswith(f", acq {n})"), layer.name
        assert ("(arterial, " if n == 1 else "(portal venous, ") in layer.name, layer.name
    # a SEG drawn on the arterial phase: its row is the one proposed, and its truth loads
    labels = np.zeros(arterial.shape, np.uint8)
    labels[1:4, 8:20, 8:20] = 1
    first = read_dicom_series(folder, acquisition=1)
    write_dicom_seg(labels, first, folder / "seg" / "1-1.dcm", [(1, "Liver")])
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.selected_series().acquisition == 1
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    np.testing.assert_array_equal(_layers.ct_layers(viewer)[-1].data, arterial.array)
    gt = _layers.labels_layers(viewer, role="ground_truth")[-1]
    assert np.count_nonzero(gt.data) == np.count_nonzero(labels)
    # its pass last, as its CT's ("P7 LIVER (arterial, acq 1) ground truth": napari's layer
    # list, cutting it in the middle, hid the pass); the phase loaded again: "[2]", as its CT
    assert _layers.ct_layers(viewer)[-1].name == "P7 LIVER (arterial, acq 1) [2]"
    assert gt.name == "P7 LIVER ground truth (arterial, acq 1) [2]", gt.name
    # the other phase's row gets no ground truth (the arterial SEG was filled in for it, and
    # its Load failed in red: "the segmented acquisition is missing from the folder")
    widget.series_table.selectRow(1 - widget.series_table.currentRow())
    assert widget.selected_series().acquisition == 2
    assert widget.truth_path.text() == ""
    widget.series_table.selectRow(1 - widget.series_table.currentRow())
    assert widget.truth_path.text().endswith("1-1.dcm")


def test_rows_of_two_reconstructions_name_their_kernels_and_the_smooth_one_is_proposed(
    load_widget, qtbot, tmp_path
):
    """A soft-tissue and a lung kernel of one scan in one series, no AcquisitionNumber: the
    rows read "(pass 1)" and "(pass 2)" and the Load said "passes ... Check the phase by
    looking", though nothing but the kernel tells them apart."""
    import pydicom

    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    viewer, widget = load_widget
    rng = np.random.default_rng(4)
    smooth = rng.integers(-100, 200, (6, 32, 32)).astype(np.int16)
    sharp = (smooth + rng.integers(-300, 300, smooth.shape)).astype(np.int16)
    folder = tmp_path / "P8"
    for k, (array, kernel) in enumerate(((sharp, "B70f"), (smooth, "B30f"))):
        paths = write_ct_series(CTVolume(array, (2.5, 1.0, 1.0)), folder, acquisition_number=1,
                                series_uid="1.2.826.0.1.3680043.8.498.13", series_description="ABD",
                                instance_number_start=1 + 6 * k,
                                file_names=[f"{kernel}_{i}.dcm" for i in range(6)])  # fmt: skip
        for p in paths:
            ds = pydicom.dcmread(p)
            ds.ConvolutionKernel = kernel
            ds.AcquisitionTime = "101500"  # (one moment: reconstructions, not phases)
            ds.save_as(p)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(folder))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    rows = [widget.series_table.item(r, 0).text() for r in range(widget.series_table.rowCount())]
    assert rows == ["#1 ABD (pass 2, kernel B30f)", "#1 ABD (pass 1, kernel B70f)"], rows
    assert widget.selected_series().reconstruction == "kernel B30f"  # the smooth one proposed
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    layer = _layers.ct_layers(viewer)[-1]
    np.testing.assert_array_equal(layer.data, smooth)
    assert "kernel B30f" in layer.name
    status = widget.status.text()
    # (in one line since the reader's whole warning filled the dock after Load, QA rev60: the
    # kernels compared are in the proposed row's tooltip)
    assert "stacks 2 reconstructions of one scan; read pass 2 (kernel B30f)" in status, status
    assert "sharper kernel (B70f)" in status and "check the phase" not in status.lower()


def test_the_row_of_slices_with_no_acquisition_number_loads_them(load_widget, qtbot, tmp_path):
    """Slices with no AcquisitionNumber stacked beside AcquisitionNumber 1: their rows were
    "(acq 1)" and "(pass 1)" for the same slices (or "(acq None)" beside numbered ones at
    other positions, loading the other acquisition). A row "(acq none)" that loads them."""
    import pydicom

    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    viewer, widget = load_widget
    rng = np.random.default_rng(5)
    arrays = [rng.integers(-100, 200, (6, 32, 32)).astype(np.int16) for _ in range(2)]
    folder = tmp_path / "P9"
    for k, array in enumerate(arrays):
        paths = write_ct_series(CTVolume(array, (2.5, 1.0, 1.0)), folder, acquisition_number=1,
                                series_uid="1.2.826.0.1.3680043.8.498.14", series_description="ABD",
                                instance_number_start=1 + 6 * k,
                                file_names=[f"p{k}_{i}.dcm" for i in range(6)])  # fmt: skip
        for p in paths[:] if k else ():
            ds = pydicom.dcmread(p)
            del ds.AcquisitionNumber
            ds.save_as(p)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(folder))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    table = widget.series_table
    rows = {table.item(r, 0).text(): r for r in range(table.rowCount())}
    assert list(rows) == ["#1 ABD (acq 1)", "#1 ABD (acq none)"], rows
    table.selectRow(rows["#1 ABD (acq none)"])
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    (layer,) = _layers.ct_layers(viewer)
    np.testing.assert_array_equal(layer.data, arrays[1])
    assert layer.name.endswith("(acq none)"), layer.name
    assert "None" not in widget.status.text() and " 0 " not in widget.status.text()


def _long_description_passes(tmp_path):
    """A folder of two passes (kernels B30f, B70f) of patient HCC_0042's series #3 with a
    64-character SeriesDescription, and another patient's scan; the description, the folder."""
    import pydicom

    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    desc = "Abdomen 3.0 B30f portal venous phase liver protocol 5mm recon CE"
    assert len(desc) == 64  # DICOM's longest SeriesDescription
    rng = np.random.default_rng(6)
    folder = tmp_path / "P10"
    for k, kernel in enumerate(("B30f", "B70f")):
        paths = write_ct_series(CTVolume(rng.integers(-100, 200, (6, 32, 32)).astype(np.int16),
                                         (2.5, 1.0, 1.0)), folder / "a", patient_id="HCC_0042",
                                series_uid="1.2.826.0.1.3680043.8.498.15", series_number=3,
                                series_description=desc, instance_number_start=1 + 6 * k,
                                file_names=[f"{kernel}_{i}.dcm" for i in range(6)])  # fmt: skip
        for p in paths:
            ds = pydicom.dcmread(p)
            ds.pop("AcquisitionNumber", None)
            ds.ConvolutionKernel, ds.AcquisitionTime = kernel, "101500"
            ds.save_as(p)
    # another patient's scan: the rows start with the patient ID
    write_ct_series(CTVolume(np.zeros((6, 32, 32), np.int16), (2.5, 1.0, 1.0)), folder / "b",
                    patient_id="HCC_0043", series_description="Abdomen")  # fmt: skip
    return desc, folder


def _parts_at_a_seam(folder, arterial: bool) -> None:
    """Series #3 'LIVER 3 PHASE CAP': a chest part (acquisition 1, 20 slices) and an abdomen
    part (acquisition 2) overlapping it by 2 slices at a seam; with ``arterial``, a pass
    (acquisition 3, 8 slices) within the abdomen's stretch."""
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    rng = np.random.default_rng(8)
    parts = [(20, 0, 1, 1), (20, 18, 2, 21)] + [(8, 24, 3, 100)] * arterial
    for n, start, acq, first in parts:
        volume = CTVolume(rng.integers(-100, 200, (n, 16, 16)).astype(np.int16),
                          (2.5, 1.0, 1.0), origin=(0.0, 0.0, 2.5 * start))  # fmt: skip
        write_ct_series(volume, folder, series_uid="1.2.826.0.1.3680043.8.498.64",
                        series_number=3, series_description="LIVER 3 PHASE CAP",
                        acquisition_number=acq, instance_number_start=first,
                        file_names=[f"acq{acq}_{i:02d}.dcm" for i in range(n)])  # fmt: skip


@pytest.mark.parametrize("arterial", [True, False], ids=["beside a pass", "alone"])
def test_the_row_of_parts_joined_at_a_seam_keeps_its_description(
    load_widget, qtbot, tmp_path, arterial
):
    """The row of parts joined at a seam beside an arterial pass read "#3 … (acq 1+2) — +2
    overlapping slice(s) of two part…" in the docked panel: its description cut to "…" for a
    note its label already tells (the pass's row showed its description whole). Said in full
    in the tooltip; a series of parts alone, with no label, ends with it in few words."""
    viewer, widget = load_widget
    _parts_at_a_seam(tmp_path, arterial)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    table = widget.series_table
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Interactive)
    table.setColumnWidth(0, 130)  # the docked panel's column
    widget._fit_rows()
    rows = [table.item(r, 0).text() for r in range(table.rowCount())]
    if arterial:
        assert rows == ["#3 LIVER 3 PHASE CAP (acq 1+2)", "#3 LIVER 3 PHASE CAP (acq 3)"]
    else:
        assert rows == ["#3 LIVER 3 PHASE CAP — +2 seam slice(s) left out"], rows
    assert table.rowHeight(0) >= table.sizeHintForRow(0)  # nothing of it cut
    assert table.item(0, 1).text() == "38"
    tip = table.item(0, 0).toolTip()
    assert "(+2 overlapping slice(s) of two parts of the scan left out)" in tip, tip


@pytest.mark.parametrize("width", [130, 110])  # the docked panel's column; a narrower one
def test_rows_of_passes_behind_a_long_description_show_which_pass(
    load_widget, qtbot, tmp_path, width
):
    """Two passes of a series with a 64-character SeriesDescription: the rows, cut at two
    lines, read "HCC_0042: #3 Abdomen 3.0 B30f portal venous…" both, "(pass 2, kernel B30f)"
    behind the ellipsis; napari's layer list, cutting a name in the middle, showed both
    layers as "HCC_0042 Abd…rtal venous)". The description is shortened for the pass to show
    (whole again in a wide column; in full in the tooltip) and the layer name ends with it."""
    viewer, widget = load_widget
    desc, folder = _long_description_passes(tmp_path)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(folder))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    table = widget.series_table
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Interactive)
    passes = {}
    for wide in (width, 2000, width):  # (narrowed again after a wide column)
        table.setColumnWidth(0, wide)
        widget._fit_rows()
        passes = {table.item(r, 0).text(): r for r in range(table.rowCount()) if "pass" in
                  table.item(r, 0).text()}  # fmt: skip
        assert len(passes) == 2, passes
        assert {t[t.rindex(" (") + 1 :] for t in passes} == {
            "(pass 1, kernel B30f)",
            "(pass 2, kernel B70f)",
        }, passes
        for text, r in passes.items():
            assert text.startswith("HCC_0042: #3 Abdom"), text
            # the row is as tall as its wrapped text: nothing of it cut
            assert table.rowHeight(r) >= table.sizeHintForRow(r), (text, table.rowHeight(r))
            assert desc in table.item(r, 0).toolTip()
            assert (desc in text) == (wide == 2000), text  # shortened only where it must be
    widget.series_table.selectRow(passes[next(t for t in passes if "pass 2" in t)])
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    (layer,) = [ly for ly in _layers.ct_layers(viewer) if "HCC_0042" in ly.name]
    assert "(kernel B70f, " in layer.name and layer.name.endswith(", pass 2)"), layer.name
    # as napari's layer list shows it: cut in the middle, the pass kept
    shown = table.fontMetrics().elidedText(layer.name, Qt.ElideMiddle, 150)
    assert "…" in shown and shown.endswith("pass 2)"), shown


def test_rows_of_passes_follow_a_panel_resized_in_one_step(make_napari_viewer, qtbot, tmp_path):
    """The rows were fitted, as the column's header said it was resized, to the width the
    column had before: the dock narrowed at once from 700 to 330 px left each pass's row
    shortened for 700 px, "HCC_0042: #3 / Abdomen 3.0 …" with its pass hidden below the
    row (35 px tall, its text 137 px), and widened again, shortened for 330 px."""
    viewer = make_napari_viewer(show=True)
    widget = LoadWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="Load")
    window = viewer.window._qt_window
    window.resize(1500, 950)
    window.resizeDocks([dock], [700], Qt.Horizontal)
    desc, folder = _long_description_passes(tmp_path)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(folder))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    table = widget.series_table

    def shown_whole(wide: bool) -> list:
        """What is wrong with the pass rows (nothing: [])."""
        wrong = []
        column = table.columnWidth(0)
        if (column > 400) != wide:
            wrong.append(f"column {column} px")
        for r in range(table.rowCount()):
            text = table.item(r, 0).text()
            if "HCC_0042" not in text:
                continue
            if not text.endswith(("(pass 1, kernel B30f)", "(pass 2, kernel B70f)")):
                wrong.append(f"no pass: {text!r}")
            if table.rowHeight(r) < table.sizeHintForRow(r):  # its last line cut
                wrong.append(f"{text!r}: {table.rowHeight(r)} < {table.sizeHintForRow(r)} px")
            if (desc in text) != wide:  # shortened only where it must be
                wrong.append(f"{'' if wide else 'not '}shortened at {column} px: {text!r}")
        return wrong

    for width in (330, 700, 330):  # as a user's window resize does: at once
        window.resizeDocks([dock], [width], Qt.Horizontal)
        try:
            qtbot.waitUntil(lambda w=width: not shown_whole(w == 700), timeout=20_000)
        except qtbot.TimeoutError:
            raise AssertionError(f"dock at {width} px: {shown_whole(width == 700)}") from None


@pytest.mark.parametrize(
    "case", ["two phases", "three passes", "the earlier phase's lung reconstruction last"]
)
def test_the_row_proposed_is_the_pass_livertumor_segment_reads(load_widget, qtbot, tmp_path, case):
    """A series stacking an arterial and a portal venous phase: Find series proposed the first
    row, the arterial phase, while `livertumor segment` over the same folder read the portal
    venous one; of an arterial B30f, a portal venous B30f and its B70f lung reconstruction,
    the arterial again, where the reader takes the portal venous B30f. A radiologist loading in
    napari and a batch run segmented different phases. The row proposed is the reader's, with
    its reason; another row can still be chosen, and is the one loaded.

    The reason filled the status with the reader's whole warning, about 16 wrapped lines of
    the dock, its CLI flag (`--acquisition 3`) and "(removed by an anonymiser?)"; of an
    arterial B30f, a portal venous B30f and the arterial's B70f it called the arterial B70f
    "later" (QA rev60). The status says it in one line; the row's tooltip holds the reasoning,
    with "choose its row" for the flag."""
    import pydicom

    from napari_livertumor.io import load_ct
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    viewer, widget = load_widget
    rng = np.random.default_rng(5)
    folder = tmp_path / "P9"
    passes = {
        "two phases": [("arterial", None, None), ("portal venous", None, None)],
        "three passes": [(None, "B30f", "101500"), (None, "B30f", "101600"),
                         (None, "B70f", "101600")],
        "the earlier phase's lung reconstruction last": [
            (None, "B30f", "101500"), (None, "B30f", "101600"), (None, "B70f", "101500")],
    }[case]  # fmt: skip
    arrays = []
    for k, (phase, kernel, when) in enumerate(passes):
        arrays.append(rng.integers(-100, 200, (6, 32, 32)).astype(np.int16))
        paths = write_ct_series(CTVolume(arrays[-1], (2.5, 1.0, 1.0)), folder,
                                acquisition_number=k + 1, contrast_phase=phase or "",
                                series_uid="1.2.826.0.1.3680043.8.498.14", series_description="ABD",
                                instance_number_start=1 + 6 * k,
                                file_names=[f"p{k}_{i}.dcm" for i in range(6)])  # fmt: skip
        for p in paths if kernel else ():  # passes without AcquisitionNumber, told by kernel
            ds = pydicom.dcmread(p)
            ds.pop("AcquisitionNumber", None)
            ds.ConvolutionKernel, ds.AcquisitionTime = kernel, when
            ds.save_as(p)
    read = load_ct(folder)  # what `livertumor segment` segments
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(folder))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.series_table.rowCount() == len(passes)
    chosen = widget.selected_series()
    assert chosen.acquisition == read.meta["acquisition_number"] == 2, chosen
    row = widget.series_table.currentRow()
    why = {  # the reader's reasoning, in the row's tooltip
        "two phases": "read AcquisitionNumber 2 (6 slices; most slices, then the latest)",
        "three passes": "read pass 2 (kernel B30f, 6 slices; the latest, in the smoother",
        "the earlier phase's lung reconstruction last": "read pass 2 (kernel B30f, 6 slices; "
        "most slices, then the latest by AcquisitionTime), not 1, 3 (their AcquisitionTime sets "
        "them at 2 moments, contrast phases: passes 1 and 3, reconstructions of one scan",
    }[case]
    brief = {  # the status: one line
        "two phases": "acquisition 2, most slices, then the latest.",
        "three passes": "pass 2 (kernel B30f), the latest phase, in the smoother kernel; pass 3 "
        "is pass 2 in a sharper kernel (B70f).",
        "the earlier phase's lung reconstruction last": "pass 2 (kernel B30f), the latest "
        "phase by its time; pass 3 is pass 1 in a sharper kernel (B70f).",
    }[case]
    status, tip = widget.status.text(), widget.series_table.item(row, 0).toolTip()
    proposed_line = status.splitlines()[-1]
    assert proposed_line.startswith("Proposed, as the command line reads this folder: ")
    assert brief in proposed_line and len(proposed_line) < 200, status
    assert why not in status and "anonymiser" not in status and "is later" not in status
    assert why in tip and "--acquisition" not in tip, tip
    # the reason is the proposed row's alone: another row's tooltip does not claim it
    for other in range(widget.series_table.rowCount()):
        if other != row:
            other_tip = widget.series_table.item(other, 0).toolTip()
            assert "Proposed" not in other_tip and why not in other_tip, other_tip
    if case == "two phases":
        assert widget.series_table.item(row, 3).text() == "portal venous"
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    layer = _layers.ct_layers(viewer)[-1]
    np.testing.assert_array_equal(layer.data, read.array)
    np.testing.assert_array_equal(layer.data, arrays[1])
    number, _, how = chosen.acquisition_label.partition(", ")  # the pass last in the name
    assert how in layer.name and layer.name.endswith(f"{number})"), layer.name
    # after Load too the status says it in one line (it gave the reader's whole warning, its
    # CLI flag and "(removed by an anonymiser?)"); the row's tooltip still holds the reasoning
    status = widget.status.text()
    assert brief[:-1] in status and "the one chosen" not in status, status
    assert why not in status and "--acquisition" not in status and "anonymiser" not in status
    # the row loaded is Find series' proposed one: its tooltip is where the reasoning is
    assert "(why: the proposed row's tooltip)" in status and "(why: Find series" not in status
    # the first pass, chosen by hand, is the one loaded, said as chosen
    widget.series_table.selectRow(
        next(r for r, s in enumerate(widget._series) if s.acquisition == 1)
    )
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    np.testing.assert_array_equal(_layers.ct_layers(viewer)[-1].data, arrays[0])
    status = widget.status.text()
    assert ("read acquisition 1" if case == "two phases" else "read pass 1 (") in status, status
    assert "the one chosen" in status and "--acquisition" not in status


def test_the_proposed_row_of_two_reconstructions_says_choose_its_row(load_widget, qtbot, tmp_path):
    """One scan reconstructed twice in one series (B30f and B70f, numbered 1 and 2, one
    AcquisitionTime): the proposed row's tooltip is worded for the panel ("choose its row"),
    not the command line's `--acquisition 2`, and no other row's tooltip says it is proposed."""
    import pydicom

    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    _, widget = load_widget
    rng = np.random.default_rng(7)
    folder = tmp_path / "P11"
    for k, kernel in enumerate(("B30f", "B70f")):
        array = rng.integers(-100, 200, (6, 32, 32)).astype(np.int16)
        paths = write_ct_series(CTVolume(array, (2.5, 1.0, 1.0)), folder, acquisition_number=k + 1,
                                series_uid="1.2.826.0.1.3680043.8.498.16", series_description="ABD",
                                instance_number_start=1 + 6 * k,
                                file_names=[f"p{k}_{i}.dcm" for i in range(6)])  # fmt: skip
        for p in paths:
            ds = pydicom.dcmread(p)
            ds.ConvolutionKernel, ds.AcquisitionTime = kernel, "101500"
            ds.save_as(p)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(folder))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.series_table.rowCount() == 2
    row = widget.series_table.currentRow()
    assert widget.selected_series().acquisition == 1  # the smoother kernel
    tip = widget.series_table.item(row, 0).toolTip()
    assert "reconstructions of one scan" in tip and "To read another, choose its row" in tip, tip
    assert "--acquisition" not in tip and "in the Load panel" not in tip, tip
    other = widget.series_table.item(1 - row, 0).toolTip()
    assert "Proposed" not in other and "choose its row" not in other, other


def test_load_without_find_series_says_a_stacked_series_in_one_line(load_widget, qtbot, tmp_path):
    """An arterial B30f (10:15), a portal venous B30f (10:16) and the arterial's B70f (10:15)
    stacked in one series, loaded without Find series: the status listed the reader's whole
    warning, its CLI flag (`--acquisition`) and "(removed by an anonymiser?)", where after
    Find series it is one line. Load says the same line, and where the reasoning is."""
    import pydicom

    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    viewer, widget = load_widget
    rng = np.random.default_rng(6)
    folder = tmp_path / "P10"
    arrays = []
    for k, (kernel, when) in enumerate(
        (("B30f", "101500"), ("B30f", "101600"), ("B70f", "101500"))
    ):
        arrays.append(rng.integers(-100, 200, (6, 32, 32)).astype(np.int16))
        paths = write_ct_series(CTVolume(arrays[-1], (2.5, 1.0, 1.0)), folder,
                                series_uid="1.2.826.0.1.3680043.8.498.15", series_description="ABD",
                                instance_number_start=1 + 6 * k,
                                file_names=[f"p{k}_{i}.dcm" for i in range(6)])  # fmt: skip
        for p in paths:
            ds = pydicom.dcmread(p)
            ds.pop("AcquisitionNumber", None)
            ds.ConvolutionKernel, ds.AcquisitionTime = kernel, when
            ds.save_as(p)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(folder))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    np.testing.assert_array_equal(_layers.ct_layers(viewer)[-1].data, arrays[1])
    status = widget.status.text()
    assert (
        "⚠ series #1 'ABD' stacks 3 passes; read pass 2 (kernel B30f), the latest phase by its "
        "time; pass 3 is pass 1 in a sharper kernel (B70f); check the phase by looking at it (why: "
        "Find series, the proposed row's tooltip)"
    ) in status.splitlines(), status
    assert "--acquisition" not in status and "anonymiser" not in status


def test_a_scout_row_does_not_block_the_sample_and_enter_opens_a_nifti_path(
    load_widget, qtbot, tmp_path
):
    """A scout row chosen before switching to Sample refused the sample's Load; Enter on a
    .nii.gz with "DICOM folder" chosen scanned its folder ("No DICOM image series found")."""
    from qtpy.QtCore import Qt

    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    viewer, widget = load_widget
    folder = tmp_path / "scout"
    scout = CTVolume(np.zeros((1, 16, 16), np.int16), (1.0, 1.0, 1.0))
    write_ct_series(scout, folder / "topo", series_description="TOPOGRAM", series_number=1)
    write_ct_series(tiny_ct()[0], folder / "ct", series_description="LIVER", series_number=2)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(folder))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    row = next(r for r, s in enumerate(widget._series) if s.n_slices == 1)
    # one image has no slice spacing (it showed its neighbours'): blank, and pixels only
    assert widget.series_table.item(row, 2).text() == ""
    tip = widget.series_table.item(row, 0).toolTip()
    assert "pixels 1x1 mm" in tip and "spacing" not in tip, tip
    widget.series_table.selectRow(row)
    widget.source.setCurrentText(SOURCES[2])  # the sample
    widget.load_button.click()
    _wait_idle(qtbot, widget, timeout=60_000)
    assert "single image" not in widget.status.text()
    assert len(_layers.ct_layers(viewer)) == 1
    viewer.layers.clear()
    write_nifti(tiny_ct()[0], tmp_path / "ct.nii.gz")
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path / "ct.nii.gz"))
    qtbot.keyClick(widget.path, Qt.Key_Return)
    _wait_idle(qtbot, widget)
    assert "No DICOM image series" not in widget.status.text()
    assert len(_layers.ct_layers(viewer)) == 1


def test_a_series_tooltip_shows_header_text_that_looks_like_html_as_typed(
    load_widget, qtbot, tmp_path
):
    """A SeriesDescription or PatientID looking like HTML ("<img src=...>", "<b>") was drawn
    by the series table's tooltip (Qt shows such text as rich text), not shown as written."""
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QTextDocument

    from napari_livertumor.io.dicom_write import write_ct_series

    viewer, widget = load_widget
    description = '<img src="file:///etc/x.png"><b>PV</b>  A&amp;B'
    write_ct_series(
        tiny_ct()[0], tmp_path / "ct", patient_id="<i>P1</i>", series_description=description
    )
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    for column in range(widget.series_table.columnCount()):
        tip = widget.series_table.item(0, column).toolTip()
        # as QToolTip shows it: rich text when it looks like it, else plain
        shown = QTextDocument()
        if Qt.mightBeRichText(tip):
            shown.setHtml(tip)
        else:
            shown.setPlainText(tip)
        text = shown.toPlainText()
        assert "patient <i>P1</i>: " in text, text
        assert f"'{description}'" in text, text


def test_enter_in_the_path_finds_series_then_loads_and_a_seg_folder_is_a_ground_truth(
    load_widget, qtbot, tmp_path
):
    """Enter in a path field did nothing; a ground truth given as the SEG's own folder (as
    HCC-TACE-Seg stores it) said "file not found"."""
    from qtpy.QtCore import Qt

    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.seg import write_dicom_seg

    viewer, widget = load_widget
    case, vol, labels = write_dicom_case(tmp_path / "a")
    seg_folder = tmp_path / "seg_series"
    write_dicom_seg(
        labels, read_dicom_series(case), seg_folder / "1-1.dcm", [(1, "Liver"), (2, "Mass")]
    )
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case / "CT"))
    qtbot.keyClick(widget.path, Qt.Key_Return)
    _wait_idle(qtbot, widget)
    assert widget.series_table.rowCount() == 1 and not _layers.ct_layers(viewer)
    widget.truth_path.setText(str(seg_folder))
    qtbot.keyClick(widget.truth_path, Qt.Key_Return)
    _wait_idle(qtbot, widget)
    assert len(_layers.ct_layers(viewer)) == 1
    (gt,) = _layers.labels_layers(viewer, role="ground_truth")
    np.testing.assert_array_equal(gt.data, labels)

    empty = tmp_path / "empty"
    empty.mkdir()
    viewer.layers.clear()
    widget.truth_path.setText(str(empty))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert "no DICOM SEG in it: choose the SEG (or NIfTI) file" in widget.status.text()


def test_the_mouse_wheel_over_a_control_scrolls_the_panel_not_the_value(load_widget, qtbot):
    """Scrolling a panel with the pointer over a drop-down changed its value unseen (the
    source, a segmentation's stages, the refinement's HU window)."""
    from qtpy.QtCore import QPoint, QPointF, Qt
    from qtpy.QtGui import QWheelEvent
    from qtpy.QtWidgets import QApplication

    viewer, widget = load_widget
    qtbot.waitUntil(lambda: widget.source.property("lt_wheel_guard") is True, timeout=20_000)
    # a table's own scroll bar keeps scrolling its table (and takes no Tab stop)
    bar = widget.series_table.verticalScrollBar()
    assert bar.property("lt_wheel_guard") is None and bar.focusPolicy() == Qt.NoFocus
    before = widget.source.currentText()

    def wheel(target):
        pos = QPointF(5, 5)
        event = QWheelEvent(
            pos, QPointF(target.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, -120),
            Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False,
        )  # fmt: skip
        QApplication.sendEvent(target, event)

    assert not widget.source.hasFocus()
    wheel(widget.source)
    assert widget.source.currentText() == before
    assert widget.source.focusPolicy() == Qt.StrongFocus  # a wheel gives it no focus
    # clicked first, the wheel is the user's way to change it
    monkey = widget.source.hasFocus
    widget.source.hasFocus = lambda: True
    try:
        wheel(widget.source)
    finally:
        widget.source.hasFocus = monkey
    assert widget.source.currentText() != before


def test_the_ground_truth_filled_in_follows_the_chosen_series(load_widget, qtbot, tmp_path):
    """A folder of two patients: Find series filled in the first one's SEG, and choosing the
    second patient's row kept it; Load then read the CT without its ground truth ("the SEG
    references series …"), though the scan had found that patient's own SEG. A ground truth the
    user typed is kept, and the message no longer says the scan filled one in."""
    from napari_livertumor.io import load_ct
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.seg import write_dicom_seg

    viewer, widget = load_widget
    vol, labels = tiny_ct()
    segs = {}
    for i, pid in enumerate(("HCC_001", "HCC_002")):
        write_ct_series(vol, tmp_path / pid / "ct", patient_id=pid, series_description="LIVER")
        ct = load_ct(tmp_path / pid / "ct")
        truth = labels.copy()
        truth[truth == 2] = 0 if i else 2  # the second patient's truth has no tumor
        segs[pid] = tmp_path / pid / "seg" / "1-1.dcm"
        write_dicom_seg(truth, ct, segs[pid], algorithm_type="MANUAL")
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    rows = {widget.series_table.item(r, 0).text(): r for r in range(2)}
    for pid in ("HCC_002", "HCC_001", "HCC_002"):
        widget.series_table.selectRow(rows[f"{pid}: #1 LIVER"])
        assert widget.truth_path.text() == str(segs[pid])
    assert "the chosen row's is filled in above" in widget.status.text()
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert "not loaded" not in widget.status.text()
    (gt,) = _layers.labels_layers(viewer, role="ground_truth")
    assert gt.data.max() == 1  # the second patient's, not the first one's
    # a ground truth of the user's own is kept whatever the row, and the scan says so
    own = tmp_path / "mine.nii.gz"
    widget.truth_path.setText(str(own))
    widget.series_table.selectRow(rows["HCC_001: #1 LIVER"])
    assert widget.truth_path.text() == str(own)
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.truth_path.text() == str(own)
    assert "the ground truth you chose is kept" in widget.status.text()


def test_find_series_on_a_missing_folder_says_not_found(load_widget, tmp_path):
    _, widget = load_widget
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path / "nope"))
    widget.scan_button.click()
    assert widget.status.text() == f"{tmp_path / 'nope'}: folder not found"


def test_loading_a_scan_already_open_says_so(load_widget, qtbot, tmp_path):
    viewer, widget = load_widget
    case, _, _ = write_dicom_case(tmp_path)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    for _ in range(2):
        widget.load_button.click()
        _wait_idle(qtbot, widget)
    first, second = _layers.ct_layers(viewer)
    assert f"already open as '{first.name}'" in widget.status.text()
    assert second.name != first.name
    vol, _ = tiny_ct()  # another scan: nothing said
    write_nifti(vol, tmp_path / "ct.nii.gz")
    widget.source.setCurrentText(SOURCES[1])
    widget.path.setText(str(tmp_path / "ct.nii.gz"))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert "already open" not in widget.status.text()


def test_a_typed_path_is_made_whole_and_pasted_quotes_are_dropped(tmp_path, monkeypatch):
    """Windows Explorer's "Copy as path" pastes the path in quotes: it became
    <napari's folder>/"C:\\data\\P1", not found."""
    from napari_livertumor._widgets._common import path_text

    class Edit:
        def __init__(self, text):
            self._text = text

        def text(self):
            return self._text

    monkeypatch.chdir(tmp_path)
    assert path_text(Edit(f'  "{tmp_path / "P1"}" ')) == str(tmp_path / "P1")
    assert path_text(Edit("'P1'")) == str(tmp_path / "P1")
    assert path_text(Edit("P1")) == str(tmp_path / "P1")  # relative: napari's folder, said whole
    assert path_text(Edit("   ")) == ""


def test_what_the_seg_reader_says_of_a_ground_truth_is_shown_beside_the_scan(
    load_widget, qtbot, tmp_path
):
    """Another patient's SEG chosen as the ground truth: its warning went to the log only, and
    Inspect would have scored against another patient's labels without a word."""
    import pydicom
    from pydicom.uid import generate_uid

    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.seg import write_dicom_seg

    viewer, widget = load_widget
    case, _, labels = write_dicom_case(tmp_path / "a")
    seg = tmp_path / "other" / "seg.dcm"
    write_dicom_seg(labels, read_dicom_series(case), seg, [(1, "Liver"), (2, "Mass")])
    ds = pydicom.dcmread(seg)
    for group in ds.PerFrameFunctionalGroupsSequence:  # placed by position only
        group.pop("DerivationImageSequence", None)
    ds.FrameOfReferenceUID = generate_uid()
    ds.ReferencedSeriesSequence[0].SeriesInstanceUID = generate_uid()
    ds.PatientID = "HCC_099"
    ds.save_as(seg)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    widget.truth_path.setText(str(seg))
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert _layers.labels_layers(viewer, role="ground_truth")  # opened, and said
    assert "⚠ ground truth seg.dcm:" in widget.status.text()
    assert "patient HCC_099" in widget.status.text()


def test_a_scout_is_marked_in_find_series_and_not_loaded_as_a_volume(load_widget, qtbot, tmp_path):
    """A topogram row loaded as a "volume" of one coronal image: "96 slices", then "the models
    will refuse it: 1 slice"; and a folder of images stripped of their positions was "No DICOM
    image series found here" only."""
    import pydicom

    viewer, widget = load_widget
    case, _, _ = write_dicom_case(tmp_path)
    files = sorted((case / "CT").glob("*.dcm"))
    scout = pydicom.dcmread(files[0])
    scout.SeriesInstanceUID = pydicom.uid.generate_uid()
    scout.SOPInstanceUID = pydicom.uid.generate_uid()
    scout.SeriesNumber, scout.SeriesDescription = 1, "Topogram"
    scout.save_as(case / "scout.dcm")
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    rows = [widget.series_table.item(r, 0).text() for r in range(widget.series_table.rowCount())]
    assert rows[-1] == "#1 Topogram — one image: a scout, not a volume?"
    widget.series_table.selectRow(len(rows) - 1)
    widget.load_button.click()
    assert not widget.busy and not _layers.ct_layers(viewer)
    assert "is a single image (a scout or localizer?), not a CT volume" in widget.status.text()

    for f in files:  # an anonymiser that removed where the images lie
        ds = pydicom.dcmread(f)
        del ds.ImagePositionPatient
        ds.save_as(f)
    (case / "scout.dcm").unlink()
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    text = widget.status.text()
    assert text.startswith(f"No DICOM image series found in {case}.")
    assert "image(s) without a position in the patient (no ImagePositionPatient" in text


def test_find_series_lists_the_slices_load_reads_and_says_a_localizer_is_left_out(
    load_widget, qtbot, tmp_path
):
    """A coronal localizer filed in the CT's series made the Find series row read "17" slices,
    while Load read 16 and left the scout out (the row said nothing of it)."""
    import pydicom

    viewer, widget = load_widget
    case, vol, _ = write_dicom_case(tmp_path)
    scout = pydicom.dcmread(sorted((case / "CT").glob("*.dcm"))[0])
    scout.SOPInstanceUID = pydicom.uid.generate_uid()
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal, 64 × 48 pixels of 4 × 3 mm
    scout.ImagePositionPatient = [-100.0, 0.0, 200.0]
    scout.Rows, scout.Columns, scout.PixelSpacing = 64, 48, [4.0, 3.0]
    scout.PixelData = np.zeros((64, 48), np.int16).tobytes()
    scout.save_as(case / "CT" / "0-scout.dcm")
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    row = [widget.series_table.item(0, c).text() for c in range(3)]
    assert row == ["#1 tiny CT — +1 localizer left out", "16", "2.5"]
    # the note at the row's end is not cut at the dock's width: the row takes a third line
    line = widget.series_table.fontMetrics().lineSpacing()
    header = widget.series_table.horizontalHeader()  # the description's column: narrow
    header.setSectionResizeMode(0, QHeaderView.Interactive)
    widget.series_table.setColumnWidth(0, 60)
    widget._fit_rows()
    assert widget.series_table.rowHeight(0) > 2 * line + 8
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    (layer,) = _layers.ct_layers(viewer)
    assert layer.data.shape == vol.shape


def test_find_series_marks_a_series_load_will_refuse(load_widget, qtbot, tmp_path):
    """A series whose second half was stored at another matrix was listed as any other (its
    slices, spacing and phase), and Load then refused it: the row now says so first, and its
    tooltip why."""
    import pydicom

    viewer, widget = load_widget
    case, _, _ = write_dicom_case(tmp_path)
    for path in sorted((case / "CT").glob("*.dcm"))[::2]:  # every other slice at 2× the matrix
        ds = pydicom.dcmread(path)
        ds.Rows, ds.Columns = 2 * ds.Rows, 2 * ds.Columns
        ds.PixelData = np.zeros((ds.Rows, ds.Columns), np.int16).tobytes()
        ds.save_as(path)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    item = widget.series_table.item(0, 0)
    assert item.text().startswith("[cannot be read] #1 tiny CT")
    assert "Load refuses it: the slices of series #1" in item.toolTip()
    assert "differ in Rows/Columns" in item.toolTip()
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert not _layers.ct_layers(viewer)


def test_find_series_says_a_segmentation_this_tool_made_is_in_the_folder(
    load_widget, qtbot, tmp_path
):
    """`segment --dicom-seg` written into the patient's folder: File > Open showed it, Find
    series left it out of the ground truth (rightly: a model's) without a word."""
    from napari_livertumor.io import load_ct
    from napari_livertumor.io.seg import model_seg_description, write_dicom_seg

    viewer, widget = load_widget
    case, vol, labels = write_dicom_case(tmp_path)
    ct = load_ct(case / "CT")
    write_dicom_seg(  # as segment --dicom-seg writes it
        labels, ct, case / "result" / "TEST_001_seg.dcm",
        series_description=model_seg_description("liver+tumor"),
    )  # fmt: skip
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    qtbot.mouseClick(widget.scan_button, LEFT)
    _wait_idle(qtbot, widget)
    text = widget.status.text()
    assert "A segmentation this tool made lies in the folder (result/TEST_001_seg.dcm)" in text
    assert "unreadable" not in text and not widget.truth_path.text().strip()
    # a folder holding that result alone: said too, beside "no image series"
    widget.path.setText(str(case / "result"))
    qtbot.mouseClick(widget.scan_button, LEFT)
    _wait_idle(qtbot, widget)
    text = widget.status.text()
    assert "No DICOM image series found" in text
    assert "A segmentation this tool made lies in the folder (TEST_001_seg.dcm)" in text


def test_the_datasets_own_seg_is_the_ground_truth_before_a_correction_exported_beside_it(
    load_widget, qtbot, tmp_path
):
    """A radiologist's corrected SEG exported into the study folder ("aaa_reviewed", first by
    path) became the ground truth on the next Find series, unsaid: Inspect scored against it."""
    from napari_livertumor.io import load_ct
    from napari_livertumor.io.seg import model_seg_description, write_dicom_seg
    from napari_livertumor.io.tcia import seg_files_by_kind

    viewer, widget = load_widget
    case, vol, labels = write_dicom_case(tmp_path)
    ct = load_ct(case / "CT")
    reference = case / "zz_reference" / "1-1.dcm"
    # (drawn by hand, MANUAL; written by this tool as the synthetic cohort's are: its maker
    # alone does not make it a correction)
    write_dicom_seg(labels, ct, reference, [(1, "Liver"), (2, "Mass")], algorithm_type="MANUAL")
    edited = labels.copy()
    edited[edited == 2] = 1
    reviewed = case / "aaa_reviewed" / "TEST_001_seg.dcm"
    write_dicom_seg(  # as Export writes an edited segmentation
        edited, ct, reviewed, algorithm_type="SEMIAUTOMATIC",
        series_description=model_seg_description("liver+tumor (edited)"),
    )  # fmt: skip
    assert seg_files_by_kind(case) == ([reference, reviewed], [])
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    qtbot.mouseClick(widget.scan_button, LEFT)
    _wait_idle(qtbot, widget)
    assert widget.truth_path.text() == str(reference)
    text = widget.status.text()
    assert "ground truth: 2 DICOM SEG (the chosen row's is filled in above" in text
    assert "1 corrected with this tool come after the others: Browse to score against one" in text


def test_a_path_inside_a_folder_that_cannot_be_entered_is_said_not_raised(
    load_widget, qtbot, tmp_path, monkeypatch
):
    """Path.is_file() raised PermissionError (Python 3.11+) out of Find series, Load and Enter
    in the path field: a traceback, and nothing said in the panel."""
    from pathlib import Path

    viewer, widget = load_widget
    locked = tmp_path / "locked"
    stat = Path.stat

    def refusing(self, *args, **kwargs):
        if str(self).startswith(str(locked) + "/"):
            raise PermissionError(13, "Permission denied", str(self))
        return stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refusing)
    target = locked / "HCC_001"
    for source in (SOURCES[0], SOURCES[1]):
        widget.source.setCurrentText(source)
        widget.path.setText(str(target))
        for act in (widget.scan, widget.load, widget._path_entered):
            widget.status.setText("")
            act()
            _wait_idle(qtbot, widget)
            assert widget.status.text() == f"{target}: permission denied"
    assert len(viewer.layers) == 0
    # a ground truth there: the scan opens, and why its labels did not is said
    case, _, _ = write_dicom_case(tmp_path)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    widget.truth_path.setText(str(locked / "gt.nii.gz"))
    widget.load()
    _wait_idle(qtbot, widget)
    assert len(_layers.ct_layers(viewer)) == 1
    said = widget.status.text()
    assert f"The ground truth was not loaded: {locked / 'gt.nii.gz'}: permission denied" in said


def test_a_folder_that_cannot_be_read_is_said_so_and_an_unread_sub_folder_is_named(
    load_widget, qtbot, tmp_path, monkeypatch
):
    """Both were "No DICOM image series found" / a list missing a series, without a word."""
    viewer, widget = load_widget
    case, _, _ = write_dicom_case(tmp_path)
    other = case / "CT2"
    write_dicom_case(tmp_path / "x")[0].joinpath("CT").rename(other)
    deny_listing(monkeypatch, case)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    for button in (widget.scan_button, widget.load_button):
        button.click()
        _wait_idle(qtbot, widget)
        said = widget.status.text()
        assert f"{case.name}: permission denied" in said and "No DICOM" not in said, said
    assert len(viewer.layers) == 0
    monkeypatch.undo()
    deny_listing(monkeypatch, other)
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    said = widget.status.text()
    assert widget.series_table.rowCount() == 1
    assert f"1 folder(s) that could not be read, their files not looked at: {other}" in said


def test_the_series_list_shows_the_spacing_and_slices_a_load_gives(load_widget, qtbot, tmp_path):
    """Slices 2.5 mm apart, then 5 mm: listed at 5 mm (the median step), loaded at 2.5. And
    three copies of a series listed as three times its slices, loaded once, the copies said
    as slices "repeated an existing position" named without the folders telling them apart."""
    import shutil

    from napari_livertumor.io.dicom_write import write_ct_series

    viewer, widget = load_widget
    vol, _ = tiny_ct(shape=(21, 16, 16))
    paths = write_ct_series(vol, tmp_path / "mixed" / "c1" / "ct")
    for i in range(8, 21, 2):
        paths[i - 1].unlink()
    for copy in ("c2", "c3"):
        shutil.copytree(tmp_path / "mixed" / "c1", tmp_path / "mixed" / copy)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path / "mixed"))
    widget.scan_button.click()
    _wait_idle(qtbot, widget)
    assert widget.series_table.rowCount() == 1
    assert widget.series_table.item(0, 2).text() == "2.5"  # the step it is stacked at
    assert widget.series_table.item(0, 1).text() == "14"  # its files, each once
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    (layer,) = _layers.ct_layers(viewer)
    volume = layer.metadata[_layers.CT_VOLUME]
    assert volume.spacing[0] == pytest.approx(2.5, abs=1e-4)
    assert len([f for f in volume.meta["files"] if f]) == 14
    said = widget.status.text()
    assert "28 file(s) identical to another (a copy: the same SOPInstanceUID and bytes) " in said
    assert "ignored, e.g. c2/ct/" in said
    assert "repeated an existing position" not in said


def test_a_baseline_and_a_follow_up_are_listed_with_their_dates(load_widget, qtbot, tmp_path):
    """Two studies of one patient listed as '#4 LIVER' and '#104 LIVER': told apart only by
    their slice thickness and phase."""
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    viewer, widget = load_widget
    rng = np.random.default_rng(1)
    for folder, date, number in (("s1", "19980428", 4), ("s2", "19980612", 104)):
        vol = CTVolume(rng.integers(-100, 200, (5, 16, 16)).astype(np.int16), (2.5, 1.0, 1.0))
        write_ct_series(vol, tmp_path / "P" / folder, patient_id="HCC_001", study_date=date,
                        series_number=number, series_description="LIVER")  # fmt: skip
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(tmp_path / "P"))
    qtbot.mouseClick(widget.scan_button, LEFT)
    _wait_idle(qtbot, widget)
    rows = {widget.series_table.item(r, 0).text() for r in range(widget.series_table.rowCount())}
    assert rows == {"1998-04-28 #4 LIVER", "1998-06-12 #104 LIVER"}
    # both loaded: the second layer named with its date, not "[2]"
    for row in (0, 1):
        widget.series_table.selectRow(row)
        widget.load_button.click()
        _wait_idle(qtbot, widget)
    names = [ly.name for ly in _layers.ct_layers(viewer)]
    assert len(names) == 2 and names[0] == "HCC_001 LIVER"
    assert names[1] in ("HCC_001 LIVER 1998-04-28", "HCC_001 LIVER 1998-06-12")


def test_coronal_and_sagittal_views_show_the_head_at_the_top(make_napari_viewer, qtbot):
    """Rolled to coronal or sagittal slices, napari drew the first slice (the feet: z runs to
    the head) at the top: every reformat upside down to a radiologist."""
    viewer = make_napari_viewer(show=True)  # (a hidden canvas draws nothing to look at)
    viewer.window.add_dock_widget(LoadWidget(viewer))
    ct = np.full((20, 30, 30), -1000, np.int16)
    ct[-3:, 10:20, 10:20] = 1000  # bright at the head end
    layer = viewer.add_image(ct, scale=(5.0, 1.0, 1.0), contrast_limits=(-1000, 1000))
    cam = _layers.camera(viewer)

    def vertical() -> str:
        return str(getattr(cam.orientation2d[0], "value", cam.orientation2d[0]))

    assert vertical() == "down"  # axial: anterior at the top, as napari draws it
    viewer.dims.order = (1, 0, 2)  # coronal: z vertical
    assert vertical() == "up"
    viewer.dims.current_step = (0, 15, 0)
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., 0].astype(float)
    rows = np.flatnonzero(shot.max(axis=1) > 128)
    assert rows.size and rows.mean() < shot.shape[0] / 2  # the head end drawn in the upper half
    viewer.dims.order = (0, 2, 1)  # sagittal turned about: z vertical still
    viewer.dims.order = (2, 0, 1)
    assert vertical() == "up"
    viewer.dims.order = (0, 1, 2)  # back to axial: as napari had it
    assert vertical() == "down"
    cam.orientation2d = ("up", "right")  # a user's own choice in axial: kept
    viewer.dims.order = (1, 0, 2)
    viewer.dims.order = (0, 1, 2)
    assert vertical() == "up"
    cam.orientation2d = ("down", "right")
    viewer.dims.order = (1, 0, 2)
    assert vertical() == "up"
    cam.orientation2d = ("up", "left")  # left-right turned in a coronal view (napari's popup)
    viewer.dims.order = (0, 1, 2)  # axial: anterior up again (it came back upside down)
    assert vertical() == "down"
    cam.orientation2d = ("down", "right")
    viewer.dims.order = (1, 0, 2)
    cam.orientation2d = ("down", "right")  # feet up chosen in a coronal view: it stays
    viewer.dims.order = (1, 2, 0)
    viewer.dims.order = (1, 0, 2)
    assert vertical() == "down"
    assert layer in viewer.layers


def _small_canvas(viewer) -> None:
    """A canvas of 300×240: a screenshot of the 3D view took 1.3 s at the test window's size
    (a software renderer's time grows with the pixels), 0.3 s at this one."""
    viewer.window._qt_viewer.canvas.native.setFixedSize(300, 240)


def test_the_3d_view_sees_the_patient_from_the_feet_not_mirrored(make_napari_viewer, qtbot):
    """napari's 3D camera drew the depth axis (z, to the head) towards the viewer while x ran
    right and y down as in the axial slice: a mirror image, the liver on the patient's left
    seen from the front. Seen from the feet, as the axial slice is, the lowest slice is in
    front. A depth the user picks in 3D stays."""
    viewer = make_napari_viewer(show=True)
    viewer.window.add_dock_widget(LoadWidget(viewer))
    _small_canvas(viewer)
    labels = np.zeros((20, 30, 30), np.uint8)
    labels[2:5, 10:20, 10:20] = 1  # near the feet
    labels[15:18, 10:20, 10:20] = 2  # near the head, right behind it along z
    layer = viewer.add_labels(labels)
    viewer.dims.ndisplay = 3
    cam = _layers.camera(viewer)
    cam.angles = (0.0, 0.0, 90.0)  # looking along z
    assert str(getattr(cam.orientation[0], "value", cam.orientation[0])) == "away"
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    centre = shot[shot.shape[0] // 2, shot.shape[1] // 2, :3].astype(int)
    feet = (np.asarray(layer.get_color(1))[:3] * 255).astype(int)
    head = (np.asarray(layer.get_color(2))[:3] * 255).astype(int)
    assert np.abs(centre - feet).sum() < np.abs(centre - head).sum(), (centre, feet, head)
    viewer.dims.ndisplay = 2
    cam.orientation = ("towards", *cam.orientation[1:])  # (in 2D it changes nothing drawn)
    viewer.dims.ndisplay = 3
    assert str(getattr(cam.orientation[0], "value", cam.orientation[0])) == "away"
    cam.orientation = ("towards", *cam.orientation[1:])  # the user's own, in 3D: kept
    viewer.dims.ndisplay = 2
    viewer.dims.ndisplay = 3
    assert str(getattr(cam.orientation[0], "value", cam.orientation[0])) == "towards"


#: the colours of six blocks at the ends of the axes: +z, -z, +y, -y, +x, -x (z to the head,
#: y to the back, x to the patient's left)
_AXIS_END_COLOURS = {1: (1, 0, 0, 1), 2: (0, 1, 0, 1), 3: (0, 0, 1, 1), 4: (1, 1, 0, 1),
                     5: (1, 0, 1, 1), 6: (0, 1, 1, 1)}  # fmt: skip


def _add_axis_end_blocks(viewer):
    """A labels layer with a coloured block near each end of each axis of a 41³ cube."""
    from napari.utils.colormaps import DirectLabelColormap

    _small_canvas(viewer)
    n, c = 41, 20
    data = np.zeros((n, n, n), np.uint8)
    for value, (axis, at) in enumerate([(a, e) for a in range(3) for e in (36, 4)], start=1):
        where = [slice(c - 3, c + 4)] * 3
        where[axis] = slice(at - 3, at + 4)
        data[tuple(where)] = value  # the +end and -end of z, then y, then x
    cmap = DirectLabelColormap(
        color_dict={None: (0, 0, 0, 0), 0: (0, 0, 0, 0), **_AXIS_END_COLOURS}
    )
    return viewer.add_labels(data, colormap=cmap)


def _axis_end_spots(viewer) -> dict:
    """Where each block seen is drawn, as (right, up, 0) on screen, the view reset so that
    the camera looks along the depth axis (the nearer block of that axis hides the other)."""
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    bright = shot.max(-1)
    shade = shot / np.maximum(bright, 1)[..., None]
    spots = {}
    for value, rgba in _AXIS_END_COLOURS.items():
        mask = (bright > 60) & (np.abs(shade - rgba[:3]).sum(-1) < 0.35)
        if mask.sum() > 20:
            rows, cols = np.nonzero(mask)
            spots[value] = np.array([cols.mean(), -rows.mean(), 0.0])
    return spots


def test_the_3d_view_is_not_mirrored_after_a_transposed_order(make_napari_viewer, qtbot):
    """The 3D depth was always turned "away": right for the axial order and the orders
    napari's roll gives, but a transposed one (coronal slices by napari's transpose button)
    then drew the patient mirrored in 3D, left and right swapped, and no turn of the camera
    undoes a mirror image. Up-down or left-right flipped in 3D left the depth as it was: the
    patient mirrored until the order next changed. Six coloured blocks mark the ends of the
    three axes; the screen directions they are drawn in say whether the view is a mirror
    image."""
    from napari.utils.camera_orientations import VerticalAxisOrientation

    viewer = make_napari_viewer(show=True)
    viewer.window.add_dock_widget(LoadWidget(viewer))
    _add_axis_end_blocks(viewer)
    cam = _layers.camera(viewer)

    def depth() -> str:
        return str(getattr(cam.orientation[0], "value", cam.orientation[0]))

    def handedness() -> float:
        """+1 or -1: the sign of the screen frame (right, up, towards the viewer) the data's
        axes are drawn along, looking along the depth axis (its nearer end hides the other)."""
        spots = _axis_end_spots(viewer)
        frame = []
        for plus, minus in ((5, 6), (3, 4), (1, 2)):  # x, y, z
            if plus in spots and minus in spots:
                frame.append(np.sign(np.round((spots[plus] - spots[minus]) / 10)))
            else:  # the depth axis: only its nearer end is seen
                assert (plus in spots) != (minus in spots), sorted(spots)
                frame.append(np.array([0.0, 0.0, 1.0 if plus in spots else -1.0]))
        return float(np.linalg.det(np.stack(frame, 1)))

    viewer.dims.ndisplay = 3
    proper = handedness()
    assert proper == 1.0  # the patient's (left, back, head) frame drawn as a right-handed one
    for order in [(1, 0, 2), (2, 0, 1), (0, 2, 1), (1, 2, 0), (2, 1, 0)]:
        viewer.dims.ndisplay = 2
        viewer.dims.order = order
        viewer.dims.ndisplay = 3
        assert handedness() == proper, order
    viewer.dims.order = (0, 1, 2)  # an order changed while in 3D
    assert handedness() == proper
    viewer.dims.order = (1, 0, 2)
    assert handedness() == proper
    viewer.dims.ndisplay = 2
    viewer.dims.order = (0, 1, 2)
    cam.orientation2d = ("up", "right")  # the user's own anterior-down axial view
    viewer.dims.ndisplay = 3
    assert handedness() == proper
    # up-down and left-right flipped in 3D (napari's camera popup, the console): the depth
    # was left as it was, and the patient was drawn mirrored until the order next changed
    buttons = viewer.window._qt_viewer.viewerButtons
    buttons.open_ndisplay_camera_popup()
    buttons.vertical_combo.setCurrentEnum(VerticalAxisOrientation.DOWN)
    buttons.vertical_combo.window().close()
    assert tuple(str(getattr(o, "value", o)) for o in cam.orientation2d) == ("down", "right")
    assert handedness() == proper
    cam.orientation2d = ("down", "left")
    assert handedness() == proper
    viewer.dims.order = (2, 0, 1)
    cam.orientation2d = ("up", "right")  # both at once
    assert handedness() == proper
    assert tuple(str(getattr(o, "value", o)) for o in cam.orientation2d) == ("up", "right")
    mirrored = "towards" if depth() == "away" else "away"
    cam.orientation = (mirrored, *cam.orientation[1:])  # the user's own depth in 3D: kept
    cam.orientation2d = ("down", "right")
    assert depth() == mirrored


def test_3d_entered_from_a_head_up_coronal_or_sagittal_view_goes_on_showing_it(
    make_napari_viewer, qtbot
):
    """3D entered from the head-up coronal view showed the patient from behind, feet up: the
    head-up turn of the 2D view was undone on the way to 3D. It goes on from the view shown:
    coronal seen from the front (the patient's right on the image left), sagittal from the
    side (the front on the image left), head up both; 3D from the axial view is seen from the
    feet as before, and feet up chosen in the coronal view stays."""
    viewer = make_napari_viewer(show=True)
    viewer.window.add_dock_widget(LoadWidget(viewer))
    _add_axis_end_blocks(viewer)
    cam = _layers.camera(viewer)
    head, feet, back, front, left, right = 1, 2, 3, 4, 5, 6

    def seen() -> dict:
        spots = _axis_end_spots(viewer)
        assert len(spots) == 5, sorted(spots)  # the nearer end of the depth axis alone
        return spots

    viewer.dims.order = (1, 0, 2)  # coronal, turned head up in 2D
    viewer.dims.ndisplay = 3
    spots = seen()
    assert spots[head][1] > spots[feet][1]  # head up
    assert front in spots and back not in spots  # seen from the front
    assert spots[right][0] < spots[left][0]  # the patient's right on the image left
    viewer.dims.ndisplay = 2
    assert str(getattr(cam.orientation2d[0], "value", cam.orientation2d[0])) == "up"
    viewer.dims.order = (2, 0, 1)  # sagittal
    viewer.dims.ndisplay = 3
    spots = seen()
    assert spots[head][1] > spots[feet][1]
    assert spots[front][0] < spots[back][0]  # the front on the image left, as in 2D
    assert left in spots and right not in spots  # seen from the patient's left
    viewer.dims.ndisplay = 2
    viewer.dims.order = (0, 1, 2)  # axial: seen from the feet, the front up, as before
    viewer.dims.ndisplay = 3
    spots = seen()
    assert feet in spots and head not in spots
    assert spots[front][1] > spots[back][1] and spots[right][0] < spots[left][0]
    viewer.dims.ndisplay = 2
    viewer.dims.order = (1, 0, 2)
    cam.orientation2d = ("down", "right")  # feet up chosen in the coronal view: kept in 3D
    viewer.dims.ndisplay = 3
    spots = seen()
    assert spots[head][1] < spots[feet][1]
    # the patient turned about the line of sight, not mirrored: seen from behind, the
    # patient's left on the image left turned to the right
    assert back in spots and spots[right][0] < spots[left][0]


def test_the_load_message_says_when_that_scans_layer_was_deleted(load_widget, qtbot, tmp_path):
    """After a patient's layers were deleted (the next patient's turn), Load still read
    "Loaded 'HCC_001 …': 32 slices …" as if that scan were open; Segment and Export said
    their layer was removed."""
    viewer, widget = load_widget
    vol, labels = tiny_ct()
    write_nifti(vol, tmp_path / "ct.nii.gz")
    write_nifti(labels, tmp_path / "gt.nii.gz", reference=vol)
    ct, gt = _load_nifti_with_truth(viewer, widget, qtbot, tmp_path)
    said = widget.status.text()
    assert said.startswith("Loaded")
    viewer.layers.remove(gt)  # the ground truth alone: the scan the line tells of is open
    assert widget.status.text() == said
    viewer.layers.remove(ct)
    assert widget.status.text() == f"(The layer '{ct.name}' this tells of was removed.)\n{said}"


def test_a_scan_opened_in_a_coronal_view_is_centred_on_screen(make_napari_viewer, qtbot):
    """The camera was given (z, y, x) as its centre in any view: in a coronal one napari read
    (y, x) of it as the axes on screen (z and x), and the next scan lay half off the canvas."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 30, 30), np.int16), scale=(2.5, 1.0, 1.0))
    viewer.dims.order = (1, 0, 2)  # coronal: z and x on screen, y the slider
    other = viewer.add_image(
        np.zeros((20, 30, 30), np.int16), scale=(5.0, 1.0, 1.0), translate=(-300.0, 40.0, 10.0)
    )
    _layers.show_layer_centre(viewer, other)
    centre = other.data_to_world([(n - 1) // 2 for n in other.data.shape])
    cam = _layers.camera(viewer).center
    np.testing.assert_allclose(cam[-2:], [centre[0], centre[2]])  # z and x, as on screen
    assert viewer.dims.point[1] == pytest.approx(centre[1])  # the slice through its middle


def test_an_amber_load_line_stays_amber_when_its_scan_is_deleted(load_widget, qtbot, tmp_path):
    from napari_livertumor._widgets._common import set_status

    viewer, widget = load_widget
    vol, labels = tiny_ct()
    write_nifti(vol, tmp_path / "ct.nii.gz")
    write_nifti(labels, tmp_path / "gt.nii.gz", reference=vol)
    ct, _ = _load_nifti_with_truth(viewer, widget, qtbot, tmp_path)

    set_status(widget.status, "⚠ a doubt about the scan\n" + widget.status.text(), warning=True)
    viewer.layers.remove(ct)
    assert widget.status.text().startswith("(The layer ")
    assert widget.status._kind == "warning"  # (its colour went with the removal)


def test_a_ground_truth_loaded_with_its_scan_is_outlined_in_its_own_colours(
    load_widget, qtbot, tmp_path
):
    """Load's ground truth is drawn as outlines at 0.9 opacity in the palette's ground-truth
    colours, not filled at Load's 0.4 in a segmentation's colours (it read as a second
    segmentation)."""
    viewer, widget = load_widget
    vol, labels = tiny_ct()
    write_nifti(vol, tmp_path / "ct.nii.gz")
    write_nifti(labels, tmp_path / "gt.nii.gz", reference=vol)
    _, gt = _load_nifti_with_truth(viewer, widget, qtbot, tmp_path)
    assert gt.contour == _layers.GROUND_TRUTH_CONTOUR > 0
    assert gt.opacity >= 0.9
    truth_colors = _layers.palette_colors(truth=True)
    np.testing.assert_allclose(
        gt.colormap.map(np.array([1, 2])), [truth_colors[1], truth_colors[2]]
    )


def test_a_ground_truth_with_portal_vein_and_aorta_classes_is_loaded(load_widget, qtbot, tmp_path):
    """HCC-TACE-Seg's classes run to 4 (3 portal vein, 4 aorta): a NIfTI ground truth
    holding them all loads as it is."""
    viewer, widget = load_widget
    vol, labels = tiny_ct()
    labels[0, :2, :2] = 3
    labels[0, -2:, -2:] = 4
    write_nifti(vol, tmp_path / "ct.nii.gz")
    write_nifti(labels, tmp_path / "gt.nii.gz", reference=vol)
    _, gt = _load_nifti_with_truth(viewer, widget, qtbot, tmp_path)
    np.testing.assert_array_equal(gt.data, labels)
    assert set(np.unique(gt.data)) == {0, 1, 2, 3, 4}
    assert "not loaded" not in widget.status.text()


# ---------------------------------------------------------------- the keyboard, in a shown window


@pytest.fixture
def shown_load(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """A shown, active window with the Load panel, a DICOM case typed in its Path field, and
    the DICOM read held until ``gate`` is set (a load that is still running)."""
    import threading

    from qtpy.QtWidgets import QApplication

    import napari_livertumor.io.dicom as dicom_mod

    viewer = make_napari_viewer(show=True)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-livertumor", "1 Load CT")
    case, _, _ = write_dicom_case(tmp_path)
    gate, real = threading.Event(), dicom_mod.read_dicom_series

    def held(*args, **kwargs):
        gate.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(dicom_mod, "read_dicom_series", held)
    _close_toasts()  # (napari's own, at start: closing, it moves the focus to the canvas)
    window = viewer.window._qt_window
    window.raise_()
    window.activateWindow()  # (no window manager under Xvfb: the focus needs an active window)
    QApplication.setActiveWindow(window)
    qtbot.waitUntil(window.isActiveWindow, timeout=20_000)
    widget.source.setCurrentText(SOURCES[0])
    widget.path.setText(str(case))
    yield viewer, widget, gate
    gate.set()
    _wait_idle(qtbot, widget)


def _close_toasts():
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in list(NapariQtNotification._instances):
        toast.close()


def _focus():
    from qtpy.QtWidgets import QApplication

    return QApplication.focusWidget()


def test_a_second_enter_in_the_path_field_does_not_cancel_the_load_it_started(shown_load, qtbot):
    """Enter in the Path field (after Find series) started the load and greyed the field out:
    the focus moved on to the Load button, which now read Cancel, and the next Enter (typed
    to confirm, or just twice) cancelled the load: "Cancelled: nothing was changed"."""
    from qtpy.QtWidgets import QApplication

    viewer, widget, gate = shown_load
    widget.path.setFocus(Qt.TabFocusReason)
    qtbot.waitUntil(lambda: _focus() is widget.path, timeout=20_000)
    qtbot.keyClick(widget.path, Qt.Key_Return)  # Find series
    _wait_idle(qtbot, widget)
    assert widget.series_table.rowCount() == 1
    qtbot.keyClick(widget.path, Qt.Key_Return)  # Load
    assert widget.load_button.text() == "Cancel"
    assert _focus() is widget.path  # the focus stays in the field
    assert widget.path.isReadOnly()  # what the load was started with cannot change
    qtbot.wait(QApplication.doubleClickInterval() + 100)  # (past the double-click guard)
    qtbot.keyClick(_focus(), Qt.Key_Return)
    assert not widget.jobs[widget.load_button].cancel_requested
    gate.set()
    _wait_idle(qtbot, widget)
    assert len(_layers.ct_layers(viewer)) == 1 and "Cancelled" not in widget.status.text()
    assert _focus() is widget.path and not widget.path.isReadOnly()


def _enter(button, at: int):
    """Enter pressed on ``button`` and let go 50 ms later, as the window system times keys
    (``at`` ms): sent through the panel's own handling of Enter on a button."""
    from qtpy.QtCore import QEvent
    from qtpy.QtGui import QKeyEvent
    from qtpy.QtWidgets import QApplication

    for kind, stamp in ((QEvent.KeyPress, at), (QEvent.KeyRelease, at + 50)):
        event = QKeyEvent(kind, Qt.Key_Return, Qt.NoModifier)
        event.setTimestamp(stamp)
        QApplication.sendEvent(button, event)


def _click(button, at: int):
    """The mouse pressed on ``button`` and let go 50 ms later, as the window system times its
    buttons (``at`` ms)."""
    from qtpy.QtCore import QEvent, QPointF
    from qtpy.QtGui import QMouseEvent
    from qtpy.QtWidgets import QApplication

    where = QPointF(button.rect().center())
    for kind, stamp in ((QEvent.MouseButtonPress, at), (QEvent.MouseButtonRelease, at + 50)):
        event = QMouseEvent(kind, where, Qt.LeftButton, Qt.LeftButton, Qt.NoModifier)
        event.setTimestamp(stamp)
        QApplication.sendEvent(button, event)


@pytest.mark.parametrize("press", ["Enter", "mouse"])
def test_a_second_press_on_load_is_timed_as_made_not_as_the_window_got_to_it(
    shown_load, qtbot, press
):
    """Two Enters typed, or a double-click, 150 ms apart on Load: the first one's start held
    the window up, and the second, handled after the 400 ms double-click guard, was taken as
    a click on Cancel and cancelled the load. A second press a second later still cancels
    it. (Timed by the events' own times, the keyboard's and the mouse's alike.)"""
    from qtpy.QtWidgets import QApplication

    viewer, widget, gate = shown_load
    button = widget.load_button
    make = _enter if press == "Enter" else _click
    make(button, 1_000_000)
    assert button.text() == "Cancel"
    qtbot.wait(QApplication.doubleClickInterval() + 200)  # the window busy meanwhile
    make(button, 1_000_150)  # made at once, handled late
    job = widget.jobs[button]
    assert not job.cancel_requested and "double-click's second" in widget.status.text()
    make(button, 1_001_200)  # a second later: meant
    assert job.cancel_requested
    gate.set()
    _wait_idle(qtbot, widget)
    assert "Cancelled" in widget.status.text() and not _layers.ct_layers(viewer)


def test_the_focus_goes_back_to_load_after_a_cancel_by_keyboard(shown_load, qtbot):
    """Cancelling greys the button out ("Cancelling…"), so Qt moved the focus on, to the HU
    window, where a stray arrow key changed the CT's window: after Enter on Cancel (and after
    Esc) the user had to find Load again with Shift+Tab."""
    from qtpy.QtWidgets import QApplication

    viewer, widget, gate = shown_load
    button = widget.load_button
    for key in (Qt.Key_Return, Qt.Key_Escape):
        gate.clear()
        button.setFocus(Qt.TabFocusReason)
        qtbot.waitUntil(lambda: _focus() is button, timeout=20_000)
        qtbot.keyClick(button, Qt.Key_Return)  # Load
        assert button.text() == "Cancel" and _focus() is button
        qtbot.wait(QApplication.doubleClickInterval() + 100)
        qtbot.keyClick(button, key)  # Cancel
        assert button.text() == "Cancelling…" and _focus() is not button
        gate.set()
        _wait_idle(qtbot, widget)
        assert widget.status.text().startswith("Cancelled")
        assert _focus() is button and button.text() == "Load"


@pytest.mark.parametrize("moved", ["canvas clicked", "Tab"])
def test_a_focus_the_user_moved_during_a_cancel_stays_where_they_put_it(shown_load, qtbot, moved):
    """The focus goes back to Load when a cancel ends only if it is still where Qt moved it
    when the button greyed out: a user who had meanwhile clicked the canvas (to scroll the
    slices) or tabbed on to another control had it taken from there when the load ended."""
    from qtpy.QtWidgets import QApplication

    viewer, widget, gate = shown_load
    button = widget.load_button
    button.setFocus(Qt.TabFocusReason)
    qtbot.waitUntil(lambda: _focus() is button, timeout=20_000)
    qtbot.keyClick(button, Qt.Key_Return)  # Load
    qtbot.wait(QApplication.doubleClickInterval() + 100)
    qtbot.keyClick(button, Qt.Key_Return)  # Cancel
    assert button.text() == "Cancelling…" and _focus() is not button
    if moved == "Tab":
        qtbot.keyClick(_focus(), Qt.Key_Tab)
    else:
        canvas = viewer.window._qt_viewer.canvas.native
        qtbot.mouseClick(canvas, Qt.LeftButton, pos=canvas.rect().center())
        assert _focus() is canvas
    chosen = _focus()
    qtbot.waitUntil(lambda: _focus() is chosen, timeout=20_000)
    assert chosen is not None and chosen is not button
    gate.set()
    _wait_idle(qtbot, widget)
    assert widget.status.text().startswith("Cancelled") and button.text() == "Load"
    qtbot.wait(100)
    assert _focus() is chosen


def _a_file_that_fails_to_load(widget, tmp_path, monkeypatch):
    """``widget`` set to load a file that is no NIfTI: the file, and the list napari's error
    toasts are caught in."""
    import napari.utils.notifications as notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    bad = tmp_path / "ct.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file")
    widget.source.setCurrentText(SOURCES[1])
    widget.path.setText(str(bad))
    return bad, shown


def test_a_failed_load_is_said_in_the_panel_and_as_a_toast_only_when_the_panel_is_hidden(
    shown_load, qtbot, tmp_path, monkeypatch
):
    """Every failure was said twice, in the status line and in a napari toast worded
    otherwise; closing itself 4 s later, the toast moved the keyboard focus out of the panel
    to the canvas (napari focuses its window then). A panel behind another's tab still gets
    the toast: the failure is never unheard."""
    viewer, widget, gate = shown_load
    gate.set()
    bad, shown = _a_file_that_fails_to_load(widget, tmp_path, monkeypatch)
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert widget.status._kind == "error" and str(bad) in widget.status.text()
    assert shown == []
    other, _ = viewer.window.add_plugin_dock_widget("napari-livertumor", "4 Inspect", tabify=True)
    other.raise_()
    qtbot.waitUntil(lambda: _dock_of(widget).visibleRegion().isEmpty(), timeout=20_000)
    widget.load_button.click()
    _wait_idle(qtbot, widget)
    assert len(shown) == 1 and "ct.nii.gz" in shown[0]


def _dock_of(widget):
    from qtpy.QtWidgets import QDockWidget

    while widget is not None and not isinstance(widget, QDockWidget):
        widget = widget.parentWidget()
    return widget


def test_a_failed_load_while_napari_is_minimized_is_said_as_a_toast(
    shown_load, qtbot, tmp_path, monkeypatch
):
    """A load that failed while napari's window was minimized (the user at another program
    while a long series read) was said in the panel's status line only, which nobody saw;
    restored, the window gave no sign. The toast is napari's way to say it then."""
    viewer, widget, gate = shown_load
    gate.set()
    bad, shown = _a_file_that_fails_to_load(widget, tmp_path, monkeypatch)
    window = viewer.window._qt_window
    window.showMinimized()
    try:
        qtbot.waitUntil(window.isMinimized, timeout=20_000)
        widget.load_button.click()
        _wait_idle(qtbot, widget)
    finally:
        window.showNormal()
    assert widget.status._kind == "error" and str(bad) in widget.status.text()
    assert len(shown) == 1 and "ct.nii.gz" in shown[0]
