"""Two patients in one viewer: every widget follows the scan loaded last and never mixes one
patient's layers with another's (found by driving the GUI as a radiologist would)."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_data import tiny_ct

from napari_livertumor._widgets import _layers
from napari_livertumor._widgets._common import set_status
from napari_livertumor._widgets.inspect import InspectWidget
from napari_livertumor._widgets.refine import RefineWidget
from napari_livertumor._widgets.segment import SegmentWidget

pytestmark = pytest.mark.gui


def add_patient(viewer, pid: str, spacing, origin, *, truth: bool = True):
    vol, labels = tiny_ct(spacing=spacing, origin=origin)
    vol.meta["patient_id"] = pid
    ct = _layers.add_ct_layer(viewer, vol, name=f"{pid} CT")
    gt = None
    if truth:
        gt = _layers.add_labels_layer(
            viewer, labels, vol, f"{pid} ground truth", role="ground_truth", ct_layer_name=ct.name
        )
    return vol, labels, ct, gt


def add_segmentation(viewer, pid: str, vol, labels, ct):
    return _layers.add_labels_layer(
        viewer, labels, vol, f"{pid} segmentation", ct_layer_name=ct.name
    )


def test_segment_offers_the_scan_loaded_last(make_napari_viewer):
    """It kept the first patient chosen: Run segmented that patient again, with the same
    numbers, and the user believed the second one was done."""
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    add_patient(viewer, "A", (2.5, 0.9, 0.9), (0.0, 0.0, 0.0))
    assert widget.ct_combo.currentText() == "A CT"
    add_patient(viewer, "B", (3.0, 0.8, 0.8), (5.0, 5.0, 5.0))
    assert widget.ct_combo.currentText() == "B CT"
    widget.ct_combo.setCurrentText("A CT")  # the user's own choice stands until a new scan
    viewer.add_image(np.zeros((4, 4)), name="a 2D picture")
    assert widget.ct_combo.currentText() == "A CT"


def test_inspect_never_scores_one_patient_against_anothers_ground_truth(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    vol_a, lab_a, ct_a, gt_a = add_patient(viewer, "A", (2.5, 0.9, 0.9), (0.0, 0.0, 0.0))
    vol_b, lab_b, ct_b, gt_b = add_patient(viewer, "B", (3.0, 0.8, 0.8), (5.0, 5.0, 5.0))
    seg_b = add_segmentation(viewer, "B", vol_b, lab_b, ct_b)
    # the new segmentation is what Inspect offers, with its own patient's ground truth
    assert widget.labels_combo.currentText() == "B segmentation"
    assert widget.truth_combo.currentText() == "B ground truth"
    widget.measure_button.click()
    qtbot.waitUntil(lambda: widget.stats is not None and not widget.busy, timeout=10_000)
    assert widget.scores["tumor"]["dice"] == pytest.approx(1.0)

    # the other patient's ground truth chosen by hand: refused, and the message stays
    widget.truth_combo.setCurrentText("A ground truth")
    widget.measure_button.click()
    qtbot.wait(200)
    assert "not on the grid of 'B segmentation'" in widget.status.text()

    # figures of one layer are not shown for another
    seg_a = add_segmentation(viewer, "A", vol_a, lab_a, ct_a)
    assert widget.labels_combo.currentText() == "A segmentation"
    assert widget.stats is None and widget.volume_table.rowCount() == 0
    assert widget.truth_combo.currentText() == "A ground truth"
    assert seg_a is not seg_b


def test_inspect_says_its_figures_are_stale_after_refine_changes_the_layer(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    inspect = InspectWidget(viewer)
    vol, labels, ct, _ = add_patient(viewer, "A", (2.5, 0.9, 0.9), (0.0, 0.0, 0.0), truth=False)
    seg = add_segmentation(viewer, "A", vol, labels, ct)
    inspect.measure_button.click()
    qtbot.waitUntil(lambda: inspect.stats is not None and not inspect.busy, timeout=10_000)
    _layers.labels_edited(seg)  # what Refine's Apply / Undo / Reset call after writing
    assert "edited" in inspect.status.text()


def test_refine_follows_the_new_segmentation_and_its_own_ct(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = RefineWidget(viewer)
    assert "Choose a CT" not in widget.status.text()  # an empty viewer is not an error
    vol_a, lab_a, ct_a, _ = add_patient(viewer, "A", (2.5, 0.9, 0.9), (0.0, 0.0, 0.0))
    vol_b, lab_b, ct_b, _ = add_patient(viewer, "B", (3.0, 0.8, 0.8), (5.0, 5.0, 5.0))
    add_segmentation(viewer, "A", vol_a, lab_a, ct_a)  # A segmented after B was loaded
    assert widget.mask_combo.currentText() == "A segmentation"
    assert widget.ct_combo.currentText() == "A CT"


def test_refine_numbers_lesions_by_size_like_inspect_and_the_stats(make_napari_viewer):
    from napari_livertumor.stats import compute_stats

    viewer = make_napari_viewer()
    widget = RefineWidget(viewer)
    vol, labels, ct, _ = add_patient(viewer, "A", (2.5, 0.9, 0.9), (0.0, 0.0, 0.0), truth=False)
    labels = labels.copy()
    labels[labels == 2] = 1
    labels[2:4, 10:13, 10:13] = 2  # a small lesion first in voxel order
    labels[6:10, 20:28, 20:28] = 2  # a larger one after it
    add_segmentation(viewer, "A", vol, labels, ct)
    widget.refresh_lesions()
    items = [widget.lesion_combo.itemText(i) for i in range(1, widget.lesion_combo.count())]
    stats = compute_stats(labels, vol.spacing)
    for item, lesion in zip(items, stats["lesions"], strict=True):
        size = (  # under 0.1 mL: its voxels (three small spots all read "0.0 mL")
            f"{lesion['volume_ml']:.1f} mL"
            if lesion["volume_ml"] >= 0.1
            else f"{int(np.count_nonzero(_component(labels, lesion)))} voxels"
        )
        assert item.startswith(f"lesion {lesion['id']}: {size}"), (item, size)


def _component(labels, lesion):
    """The voxels of ``lesion`` (a stats entry) in ``labels``: its connected tumor part."""
    from scipy import ndimage as ndi

    parts, _ = ndi.label(labels == 2, structure=np.ones((3, 3, 3)))
    z, y, x = (int(round(c)) for c in lesion["centroid_zyx"])
    return parts == parts[z, y, x]


def test_layer_pickers_show_the_whole_chosen_name_in_their_tooltip(make_napari_viewer):
    """A narrow panel cuts long layer names; the tooltip keeps the control's description and
    adds the chosen name in full."""
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    vol, labels, ct, _ = add_patient(
        viewer, "HCC_001 LIVER 3 PHASE CAP", (2.5, 0.9, 0.9), (0, 0, 0)
    )
    add_segmentation(viewer, "HCC_001 LIVER 3 PHASE CAP", vol, labels, ct)
    tip = widget.labels_combo.toolTip()
    assert "Chosen: HCC_001 LIVER 3 PHASE CAP segmentation" in tip
    assert tip.index("Chosen") > 0  # after the description the widget gave it


def test_export_clears_a_name_typed_for_another_patients_labels(make_napari_viewer):
    """A Name typed for patient A stayed when Export moved to patient B's new segmentation:
    B's masks went out as "HCC_001_reviewed_seg.dcm", or offered to replace A's files."""
    from napari_livertumor._widgets.export import ExportWidget

    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)
    vol_a, lab_a, ct_a, _ = add_patient(viewer, "A", (2.5, 0.9, 0.9), (0.0, 0.0, 0.0))
    add_segmentation(viewer, "A", vol_a, lab_a, ct_a)
    assert widget.labels_combo.currentText() == "A segmentation"
    widget.case_name.setText("A_reviewed")
    widget.case_name.textEdited.emit("A_reviewed")  # (typed by the user)
    viewer.layers["A ground truth"].visible = False  # other changes to the layer list: kept
    widget.labels_combo.setCurrentText("A ground truth")  # the same scan's other labels: kept
    widget.labels_combo.setCurrentText("A segmentation")
    assert widget._case() == "A_reviewed"

    vol_b, lab_b, ct_b, _ = add_patient(viewer, "B", (3.0, 0.8, 0.8), (5.0, 5.0, 5.0))
    add_segmentation(viewer, "B", vol_b, lab_b, ct_b)
    assert widget.labels_combo.currentText() == "B segmentation"
    assert widget.case_name.text() == "" and widget._case() == "B"
    assert "'A_reviewed' was typed for another scan's labels" in widget.status.text()
    widget.case_name.setText("B_final")
    widget.case_name.textEdited.emit("B_final")
    widget.labels_combo.setCurrentText("A segmentation")  # back to A: B's name is not A's
    assert widget._case() == "A"


def test_a_name_typed_before_any_labels_is_the_first_scans(make_napari_viewer, qtbot, tmp_path):
    """Typed before segmenting, the Name was tied to no scan and never cleared; and labels
    arriving while the Replace dialog waited ended in "unknown export kind 'A_rev_labels…'"."""
    from napari_livertumor._widgets.export import ExportWidget

    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)
    widget.case_name.setText("A_rev")
    widget.case_name.textEdited.emit("A_rev")
    vol_a, lab_a, ct_a, _ = add_patient(viewer, "A", (2.5, 0.9, 0.9), (0.0, 0.0, 0.0))
    add_segmentation(viewer, "A", vol_a, lab_a, ct_a)
    assert widget._case() == "A_rev"
    widget.folder.setText(str(tmp_path))
    widget.stats_check.setChecked(False)
    (tmp_path / "A_rev_labels.nii.gz").write_bytes(b"an earlier export")

    def ask(existing, **_):  # while the user reads the dialog, patient B's segmentation arrives
        vol_b, lab_b, ct_b, _ = add_patient(viewer, "B", (3.0, 0.8, 0.8), (5.0, 5.0, 5.0))
        add_segmentation(viewer, "B", vol_b, lab_b, ct_b)
        return True

    widget.ask_overwrite = ask
    widget.labels_combo.setCurrentText("A segmentation")
    widget.export()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert "unknown export kind" not in widget.status.text()
    assert (tmp_path / "A_rev_labels.nii.gz").stat().st_size > 100  # A's labels, A's name
    assert widget.case_name.text() == "" and widget._case() == "B"


def test_a_lesion_jump_shows_its_own_patient_not_the_one_drawn_over_it(make_napari_viewer, qtbot):
    """Patient B loaded after A lies over A in world space: a jump to A's lesion ringed it on
    B's CT, which hid A's scan and labels."""
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    vol_a, lab_a, ct_a, _ = add_patient(viewer, "A", (2.5, 0.9, 0.9), (0.0, 0.0, 0.0), truth=False)
    seg_a = add_segmentation(viewer, "A", vol_a, lab_a, ct_a)
    vol_b, lab_b, ct_b, _ = add_patient(viewer, "B", (3.0, 0.8, 0.8), (5.0, 5.0, 5.0), truth=False)
    seg_b = add_segmentation(viewer, "B", vol_b, lab_b, ct_b)
    widget.labels_combo.setCurrentText("A segmentation")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: widget.stats is not None and not widget.busy, timeout=10_000)
    seg_a.visible = False  # hidden meanwhile: shown again by the jump
    widget.go_to_lesion(0)
    assert seg_a.visible and ct_a.visible
    assert not ct_b.visible and not seg_b.visible
    text = widget.status.text()
    assert text.startswith("Lesion 1: slice") and "'B CT', 'B segmentation' hidden" in text, text
    assert "covered 'A segmentation' there" in text

    # a coronal view: the jump would centre the wrong axes (a black canvas); said instead
    ct_b.visible = seg_b.visible = True
    viewer.dims.order = (1, 0, 2)
    widget.go_to_lesion(0)
    assert "roll the dimensions back to axial" in widget.status.text()
    assert ct_b.visible  # nothing moved or hidden
    viewer.dims.order = (0, 1, 2)

    # in 3D (napari's own status code failed on the re-selection there before the mouse moved)
    viewer.dims.ndisplay = 3
    widget.go_to_lesion(0)
    assert widget.status.text().startswith("Lesion 1: slice")
    assert viewer.layers.selection.active is seg_a


def test_refine_refuses_another_scan_on_the_same_grid_and_a_slice_off_its_scan(
    make_napari_viewer, qtbot
):
    """Two scans on one grid (two phases of a study): with the mask's own CT closed, Refine
    took the other one without a word and refined with its HU. And with a longer scan open,
    Apply to slice ran on this scan's end slice, not the one on screen."""
    viewer = make_napari_viewer()
    widget = RefineWidget(viewer)
    vol_a, lab_a, ct_a, _ = add_patient(viewer, "A", (2.5, 0.9, 0.9), (0.0, 0.0, 0.0), truth=False)
    vol_b, lab_b, ct_b, _ = add_patient(viewer, "B", (2.5, 0.9, 0.9), (0.0, 0.0, 0.0), truth=False)
    vol_b.meta["source"] = "/data/B.nii.gz"
    vol_a.meta["source"] = "/data/A.nii.gz"
    seg_a = add_segmentation(viewer, "A", vol_a, lab_a, ct_a)
    widget.mask_combo.setCurrentText("A segmentation")
    widget.ct_combo.setCurrentText("B CT")
    before = np.array(seg_a.data)
    widget.apply_slice_button.click()
    qtbot.wait(100)
    text = widget.status.text()
    assert "'B CT' is not the scan 'A segmentation' was made on ('A CT')" in text, text
    assert "choose 'A CT' as the CT layer" in text
    np.testing.assert_array_equal(seg_a.data, before)

    # the slider beyond A's slices (a longer scan C below them): refused, nothing written
    widget.ct_combo.setCurrentText("A CT")
    add_patient(viewer, "C", (2.5, 0.9, 0.9), (0.0, 0.0, -200.0), truth=False)
    widget.ct_combo.setCurrentText("A CT")
    widget.mask_combo.setCurrentText("A segmentation")
    viewer.dims.set_point(0, -150.0)
    widget.apply_slice_button.click()
    qtbot.wait(100)
    assert "The slice on screen lies outside 'A CT'" in widget.status.text()
    np.testing.assert_array_equal(seg_a.data, before)
    widget.preview_now()  # the live preview there: the Apply's refusal stays said
    assert "The slice on screen lies outside 'A CT'" in widget.status.text()
    set_status(widget.status, "")
    widget.preview_now()  # without one: no outline, and says why
    assert "No outline: the slice on screen lies outside 'A CT'" in widget.status.text()
    assert "(this one)" not in widget.notes.text()
