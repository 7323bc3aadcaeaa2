"""Several patients read one after another in one napari window, the last ones kept open,
hidden or deleted: each panel works on the patient loaded last, and never changes another
patient's labels unasked (found by a reviewer reading four patients in a row)."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_data import tiny_ct
from scipy import ndimage as ndi

import napari_livertumor._widgets.refine as refine_mod
from napari_livertumor._widgets import _layers
from napari_livertumor._widgets.inspect import InspectWidget
from napari_livertumor._widgets.refine import RefineWidget
from napari_livertumor._widgets.segment import _keep_previous

pytestmark = pytest.mark.gui

#: the second patient's scan: another grid, as two patients' scans are
B_GRID = {"spacing": (3.0, 0.8, 0.8), "origin": (5.0, 5.0, 5.0)}


def load(viewer, pid: str, *, truth: bool = True, shape=(16, 48, 48), **grid):
    """What the Load panel adds: the scan, then the ground truth of its SEG file (the same
    patient's scan loaded again: its series, "… [2]")."""
    vol, labels = tiny_ct(shape=shape, **grid)
    vol.meta.update(patient_id=pid, series_uid=f"1.2.826.0.1.{ord(pid[0])}")
    ct = _layers.add_ct_layer(viewer, vol, name=_layers.unique_name(viewer, f"{pid} CT"))
    if truth:
        name = _layers.unique_name(viewer, f"{pid} ground truth")
        _layers.add_labels_layer(
            viewer, labels, vol, name, role="ground_truth", ct_layer_name=ct.name
        )
    return vol, labels, ct


def segment(viewer, pid: str, vol, labels, ct, name: str | None = None):
    """What the Segment panel adds: the labels made on the scan."""
    return _layers.add_labels_layer(
        viewer, labels.copy(), vol, name or f"{pid} segmentation", ct_layer_name=ct.name
    )


def _grow(ct2d, tumor, liver, spacing, cfg, should_cancel=None, notes=None):
    """A contour that always moves: the tumor a few pixels wider (inside the liver)."""
    out = ndi.binary_dilation(tumor, iterations=2)
    return out if liver is None else out & liver


@pytest.fixture
def refine(make_napari_viewer, monkeypatch):
    viewer = make_napari_viewer()
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine")
    monkeypatch.setattr(refine_mod, "refine_slice", _grow)
    return viewer, widget


def _show_slice(viewer, ct, z: int) -> int:
    """Show ``ct``'s slice ``z``; returns the slider's number of it."""
    viewer.dims.set_point(0, float(ct.data_to_world([z, 0, 0])[0]))
    return int(viewer.dims.current_step[0])


def _apply_slice(qtbot, widget) -> None:
    widget.apply_slice_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)


def _apply_buttons(widget):
    return (widget.apply_slice_button, widget.apply_lesion_button, widget.apply_all_button)


def test_refine_undo_takes_back_only_the_steps_of_the_labels_it_works_on(refine, qtbot):
    """On patient B's segmentation, "Undo (1)" was patient A's Apply to slice: clicking it
    changed A's (already exported) labels, out of sight."""
    viewer, widget = refine
    vol_a, labels_a, ct_a = load(viewer, "A")
    seg_a = segment(viewer, "A", vol_a, labels_a, ct_a)
    _show_slice(viewer, ct_a, 8)
    _apply_slice(qtbot, widget)
    assert widget.undo_button.text() == "Undo (1)"
    refined_a = np.array(seg_a.data)
    assert (refined_a != labels_a).any()

    vol_b, labels_b, ct_b = load(viewer, "B", **B_GRID)
    segment(viewer, "B", vol_b, labels_b, ct_b)
    assert widget.mask_combo.currentText() == "B segmentation"
    assert widget.undo_button.text() == "Undo" and not widget.undo_button.isEnabled()
    widget.undo()  # (as a script or a shortcut would)
    assert widget.status.text() == "Nothing to undo."
    np.testing.assert_array_equal(seg_a.data, refined_a)

    # A's step is kept: with A's labels chosen again, its Undo is there and takes it back
    widget.mask_combo.setCurrentText("A segmentation")
    assert widget.ct_combo.currentText() == "A CT"
    assert widget.undo_button.text() == "Undo (1)"
    widget.undo_button.click()
    np.testing.assert_array_equal(seg_a.data, labels_a)
    assert widget.status.text().startswith("Undid: slice")


def test_refine_follows_a_newly_loaded_scan_and_waits_for_its_labels(refine, qtbot):
    """After patient B's Load, Refine stayed on patient A until Segment ran: Apply to all
    rewrote A's exported labels under B's scan, and A's status and notes stayed up."""
    viewer, widget = refine
    vol_a, labels_a, ct_a = load(viewer, "A")
    seg_a = segment(viewer, "A", vol_a, labels_a, ct_a)
    earlier = segment(viewer, "A", vol_a, labels_a, ct_a, "A segmentation (previous)")
    earlier.visible = False  # a rerun's result moved aside
    widget.mask_combo.setCurrentText("A segmentation")
    _show_slice(viewer, ct_a, 8)
    _apply_slice(qtbot, widget)
    assert widget.status.text().startswith("Applied to slice")
    refined_a = np.array(seg_a.data)

    vol_b, labels_b, ct_b = load(viewer, "B", **B_GRID)
    assert widget.ct_combo.currentText() == "B CT"
    assert widget.mask_combo.currentText() == ""  # no labels of B yet: none chosen
    assert not any(button.isEnabled() for button in _apply_buttons(widget))
    assert not widget.status.text().startswith("Applied")  # A's Apply is not B's news
    qtbot.waitUntil(lambda: "segment it (panel 2)" in widget.status.text(), timeout=20_000)
    assert widget.status.text().startswith("No tumor labels of 'B CT' yet")
    widget.apply_all()  # (called anyway: nothing is written)
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    np.testing.assert_array_equal(seg_a.data, refined_a)

    # the layer list changing meanwhile leaves it so (refilled, the list took A's labels)
    viewer.layers.remove(earlier)
    assert widget.mask_combo.currentText() == ""
    assert widget.ct_combo.currentText() == "B CT"

    # chosen by hand, A's labels are refined as before, on A's scan
    widget.mask_combo.setCurrentText("A segmentation")
    assert widget.ct_combo.currentText() == "A CT"
    assert all(button.isEnabled() for button in _apply_buttons(widget))
    widget.ct_combo.setCurrentText("B CT")  # back to B, then B is segmented
    seg_b = segment(viewer, "B", vol_b, labels_b, ct_b)
    assert widget.mask_combo.currentText() == seg_b.name
    assert widget.ct_combo.currentText() == "B CT"
    assert all(button.isEnabled() for button in _apply_buttons(widget))


def test_refine_takes_up_the_new_patient_after_others_were_hidden_or_deleted(refine, qtbot):
    """One patient kept, the next hidden, the third deleted: at the fourth's Load Refine
    went back to the first patient (three patients earlier)."""
    viewer, widget = refine
    kept = segment(viewer, "A", *load(viewer, "A"))
    vol_b, labels_b, ct_b = load(viewer, "B", **B_GRID)
    hidden = [ct_b, segment(viewer, "B", vol_b, labels_b, ct_b), viewer.layers["B ground truth"]]
    for layer in hidden:
        layer.visible = False
    grid_c = {"spacing": (2.0, 0.7, 0.7), "origin": (-5.0, -5.0, -5.0)}
    vol_c, labels_c, ct_c = load(viewer, "C", **grid_c)
    segment(viewer, "C", vol_c, labels_c, ct_c)
    for name in ("C segmentation", "C ground truth", "C CT"):
        viewer.layers.remove(name)
    vol_d, labels_d, ct_d = load(viewer, "D", spacing=(2.0, 1.0, 1.0), origin=(9.0, 9.0, 9.0))
    assert widget.ct_combo.currentText() == "D CT"
    assert widget.mask_combo.currentText() == ""
    assert kept.visible  # (what the panel went back to)

    # labels on D's grid that name no scan (a file opened beside it) are D's
    viewer.add_labels(labels_d, name="D from a file", scale=ct_d.scale, translate=ct_d.translate)
    vol_e, labels_e, ct_e = load(viewer, "E", truth=False, shape=(16, 48, 48), **B_GRID)
    assert widget.ct_combo.currentText() == "E CT" and widget.mask_combo.currentText() == ""
    viewer.layers.remove(ct_e)
    _layers.add_ct_layer(viewer, vol_d, name="D CT again")
    assert widget.ct_combo.currentText() == "D CT again"
    assert widget.mask_combo.currentText() == "D from a file"


def test_refine_undo_reaches_a_rerun_moved_aside_on_a_scan_loaded_twice(refine, qtbot):
    """The same scan loaded twice ("A CT [2]"): after a rerun of Segment, Undo no longer
    reached the Apply on the result it moved aside ("A CT [2] segmentation (previous)"): the
    name was cut at the CT's own " [2]", and it said "Nothing to undo"."""
    viewer, widget = refine
    load(viewer, "A")
    vol, labels, ct = load(viewer, "A")
    assert ct.name == "A CT [2]"
    seg = segment(viewer, "A", vol, labels, ct, "A CT [2] segmentation")
    assert widget.mask_combo.currentText() == seg.name
    _show_slice(viewer, ct, 8)
    _apply_slice(qtbot, widget)
    assert (np.asarray(seg.data) != labels).any()

    # Segment run again: its last result moved aside, the new one under its name
    assert _keep_previous(viewer, seg.name, ct.name)[0] == "A CT [2] segmentation (previous)"
    segment(viewer, "A", vol, labels, ct, "A CT [2] segmentation")
    assert widget.mask_combo.currentText() == "A CT [2] segmentation"
    assert widget.undo_button.text() == "Undo (1)" and widget.undo_button.isEnabled()
    widget.undo_button.click()
    np.testing.assert_array_equal(seg.data, labels)
    assert "in 'A CT [2] segmentation (previous)' (hidden" in widget.status.text()


def test_closing_a_patient_never_segmented_gives_back_the_last_patients_labels(
    make_napari_viewer, qtbot, monkeypatch
):
    """Patient B loaded, then closed without a segmentation: Refine went back to A's scan
    with no labels chosen, said "No tumor labels of 'A CT' yet: segment it" beside A's
    segmentation and kept Apply off; Inspect took A's segmentation with no ground truth
    (A's open). Likewise with only C's scan closed."""
    viewer = make_napari_viewer()
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine")
    monkeypatch.setattr(refine_mod, "refine_slice", _grow)
    inspect = InspectWidget(viewer)
    vol_a, labels_a, ct_a = load(viewer, "A")
    seg_a = segment(viewer, "A", vol_a, labels_a, ct_a)
    load(viewer, "B", **B_GRID)
    assert widget.mask_combo.currentText() == ""

    def back_on_a():
        assert widget.ct_combo.currentText() == "A CT"
        assert widget.mask_combo.currentText() == "A segmentation"
        assert all(button.isEnabled() for button in _apply_buttons(widget))
        qtbot.wait(400)  # (the preview's hint, were it one, is debounced)
        assert not widget.status.text().startswith("No tumor labels")

    for name in ("B CT", "B ground truth"):  # B closed, never segmented
        viewer.layers.remove(name)
    back_on_a()
    assert inspect.labels_combo.currentText() == "A segmentation"
    assert inspect.truth_combo.currentText() == "A ground truth"

    load(viewer, "C", spacing=(2.0, 0.7, 0.7), origin=(-5.0, -5.0, -5.0))
    assert widget.ct_combo.currentText() == "C CT" and widget.mask_combo.currentText() == ""
    viewer.layers.remove("C CT")  # its scan alone closed
    back_on_a()

    # chosen by hand: A's scan, its labels with it
    load(viewer, "D", truth=False, spacing=(2.0, 1.0, 1.0), origin=(9.0, 9.0, 9.0))
    assert widget.mask_combo.currentText() == ""
    widget.ct_combo.setCurrentText("A CT")
    back_on_a()
    _show_slice(viewer, ct_a, 8)
    _apply_slice(qtbot, widget)
    assert (np.asarray(seg_a.data) != labels_a).any()


def test_refine_takes_up_the_segmentation_of_a_scan_loaded_again(refine, qtbot):
    """A's scan loaded again ("A CT [2]") while B's labels were chosen: Refine moved to the
    copy with no labels and said "No tumor labels of 'A CT [2]' yet: segment it", A's
    segmentation of that very scan open beside it."""
    viewer, widget = refine
    vol_a, labels_a, ct_a = load(viewer, "A")
    segment(viewer, "A", vol_a, labels_a, ct_a)
    vol_b, labels_b, ct_b = load(viewer, "B", **B_GRID)
    segment(viewer, "B", vol_b, labels_b, ct_b)
    assert widget.mask_combo.currentText() == "B segmentation"

    load(viewer, "A")
    assert widget.mask_combo.currentText() == "A segmentation"
    assert widget.ct_combo.currentText() == "A CT"  # (the CT it names: the same scan)
    assert all(button.isEnabled() for button in _apply_buttons(widget))
    qtbot.wait(400)
    assert not widget.status.text().startswith("No tumor labels")


def test_refine_says_a_scan_loaded_again_lies_over_the_labels_it_refines(refine, qtbot):
    """A's scan loaded again ("A CT [2]") while A's labels were chosen: Refine stayed on them
    unsaid, and its outline and Apply landed in 'A segmentation', under the copy the user
    watched. The labels stay chosen (the copy has none of its own), said, and Apply waits
    until they can be seen."""
    viewer, widget = refine
    vol_a, labels_a, ct_a = load(viewer, "A")
    seg_a = segment(viewer, "A", vol_a, labels_a, ct_a)
    _show_slice(viewer, ct_a, 8)
    _apply_slice(qtbot, widget)
    assert widget.status.text().startswith("Applied to slice")
    refined = np.array(seg_a.data)

    copy = load(viewer, "A")[2]
    assert copy.name == "A CT [2]"
    assert widget.mask_combo.currentText() == "A segmentation"
    said = widget.status.text()
    assert said.startswith("'A CT [2]' has no tumor labels of its own yet: Refine works on "
                           "'A segmentation'")  # fmt: skip
    assert "Hide 'A CT [2]'" in said
    qtbot.wait(400)  # the preview that follows leaves it said
    assert widget.status.text() == said

    widget.apply_slice_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    np.testing.assert_array_equal(seg_a.data, refined)  # nothing written under the copy
    assert widget.status.text().startswith("'A segmentation' lies under 'A CT [2]'")
    copy.visible = False  # the copy hidden: the refusal is answered, and Apply writes
    assert widget.status.text() == ""
    _apply_slice(qtbot, widget)
    assert widget.status.text().startswith("Applied to slice")
    assert (np.asarray(seg_a.data) != refined).any()


def test_refine_apply_refuses_labels_another_scan_lies_over(refine, qtbot):
    """Apply refused a hidden labels layer, but wrote into one another scan's CT covered
    (shown, opaque, above it in the layer list): into labels the user could not see."""
    viewer, widget = refine
    vol_a, labels_a, ct_a = load(viewer, "A")
    seg_a = segment(viewer, "A", vol_a, labels_a, ct_a)
    # another patient's scan over A's (an overlapping grid), loaded above A's labels
    vol_b, _, ct_b = load(
        viewer, "B", truth=False, spacing=(2.0, 0.8, 0.8), origin=(-25.0, -35.0, 95.0)
    )
    widget.mask_combo.setCurrentText("A segmentation")  # back to A by hand
    assert widget.ct_combo.currentText() == "A CT"
    _show_slice(viewer, ct_a, 8)
    before = np.array(seg_a.data)
    for apply in (widget.apply_slice_button, widget.apply_all_button):
        apply.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
        np.testing.assert_array_equal(seg_a.data, before)
        assert widget.status.text() == (
            "'A segmentation' lies under 'B CT', which covers it: hide 'B CT' (its eye in the "
            "layer list) or drag 'A segmentation' above it, before applying."
        )
    ct_b.opacity = 0.4  # seen through: applied
    assert widget.status.text() == ""
    _apply_slice(qtbot, widget)
    assert widget.status.text().startswith("Applied to slice")
    ct_b.opacity = 1.0
    viewer.layers.move(viewer.layers.index(seg_a), len(viewer.layers))  # the labels on top
    _apply_slice(qtbot, widget)
    assert widget.status.text().startswith("Applied to slice")


def test_refine_undo_and_reset_under_another_scan_say_so(refine, qtbot):
    """Undo and Reset on labels another scan's CT covers changed voxels nobody saw, said as
    if they could be seen. They are not refused (the user knows what they take back), but
    said, with what to hide."""
    viewer, widget = refine
    vol_a, labels_a, ct_a = load(viewer, "A")
    seg_a = segment(viewer, "A", vol_a, labels_a, ct_a)
    _show_slice(viewer, ct_a, 8)
    _apply_slice(qtbot, widget)
    refined = np.array(seg_a.data)
    load(viewer, "B", truth=False, spacing=(2.0, 0.8, 0.8), origin=(-25.0, -35.0, 95.0))
    here = _layers.slider_index(viewer, seg_a, 8)  # (as the slider counts it with B open)
    widget.mask_combo.setCurrentText("A segmentation")  # back to A by hand
    widget.undo_button.click()
    np.testing.assert_array_equal(seg_a.data, labels_a)
    assert widget.status.text() == (
        f"Undid: slice {here} (under 'B CT': hide it to see the change)."
    )
    seg_a.data[...] = refined  # as if refined again, then reset
    _layers.labels_edited(seg_a)
    widget.reset_button.click()
    np.testing.assert_array_equal(seg_a.data, labels_a)
    assert "(under 'B CT': hide it to see the change). Undo takes" in widget.status.text()
    viewer.layers["B CT"].visible = False  # seen: said as before
    widget.undo_button.click()
    np.testing.assert_array_equal(seg_a.data, refined)
    assert "under" not in widget.status.text()


def test_refine_applies_where_no_ct_covers_what_it_writes(refine, qtbot):
    """A CT above the labels that covers only slices without tumor (a liver-dome series), or
    any CT in napari's grid mode (two phases side by side, each in its cell): Apply to all was
    refused as if the labels lay under it."""
    viewer, widget = refine
    vol_a, labels_a, ct_a = load(viewer, "A")
    segment(viewer, "A", vol_a, labels_a, ct_a)
    tumor_slices = np.flatnonzero((labels_a == 2).any(axis=(1, 2)))
    # four slices at A's top, where A has no tumor, loaded above A's labels, opaque
    _, _, ct_b = load(viewer, "B", truth=False, shape=(4, 48, 48))
    assert tumor_slices.min() > 3
    widget.mask_combo.setCurrentText("A segmentation")
    assert widget.ct_combo.currentText() == "A CT"
    _show_slice(viewer, ct_a, 8)
    widget.apply_all_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert widget.status.text().startswith("Applied to all"), widget.status.text()
    _show_slice(viewer, ct_a, 1)  # a slice it covers: refused there
    widget.apply_slice_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert widget.status.text().startswith("'A segmentation' lies under 'B CT'")
    # a CT over all of A's tumor, in grid mode: side by side, nothing covered
    _, _, ct_c = load(viewer, "C", truth=False)
    widget.mask_combo.setCurrentText("A segmentation")
    _layers.grid_of(viewer).enabled = True
    widget.apply_all_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    # (refined already: nothing more to change, but applied)
    assert widget.status.text().startswith(("Applied to all", "Refining all lesions changed"))
    _layers.grid_of(viewer).enabled = False  # one above the other again: refused
    widget.apply_all_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert widget.status.text().startswith("'A segmentation' lies under 'C CT'")


def test_napari_undo_on_another_patients_labels_is_said_with_their_name(refine, qtbot):
    """Ctrl+Z on patient A's refined labels while B's are chosen: Refine said "napari's Undo
    (Ctrl+Z) took back: slice 8." under B's labels, as if it were B's."""
    viewer, widget = refine
    vol_a, labels_a, ct_a = load(viewer, "A")
    seg_a = segment(viewer, "A", vol_a, labels_a, ct_a)
    _show_slice(viewer, ct_a, 8)
    _apply_slice(qtbot, widget)
    vol_b, labels_b, ct_b = load(viewer, "B", **B_GRID)
    segment(viewer, "B", vol_b, labels_b, ct_b)
    here = _layers.slider_index(viewer, seg_a, 8)  # (as the slider counts it with B open)
    assert widget.mask_combo.currentText() == "B segmentation"
    seg_a.undo()  # napari's Ctrl+Z, A's layer selected
    np.testing.assert_array_equal(seg_a.data, labels_a)
    assert widget.status.text() == (
        f"napari's Undo (Ctrl+Z) took back: slice {here} in 'A segmentation'."
    )
    seg_a.redo()
    assert widget.status.text() == (
        f"napari's Redo (Ctrl+Shift+Z) brought back: slice {here} in 'A segmentation'."
    )


def test_refine_says_slice_numbers_as_the_slider_counts_them(refine, qtbot, monkeypatch):
    """With a scan of another extent open, the notes said "slice 80 (this one)" (the
    slider's number, as Inspect says it) and the status beside them "slice 67" (the scan's
    own index); Undo too."""
    viewer, widget = refine
    vol_a, labels_a, ct_a = load(viewer, "A")
    seg_a = segment(viewer, "A", vol_a, labels_a, ct_a)
    load(viewer, "B", shape=(40, 48, 48), spacing=(2.5, 0.9, 0.9), origin=(0.0, 0.0, -60.0))
    widget.mask_combo.setCurrentText("A segmentation")  # back to A by hand
    assert widget.ct_combo.currentText() == "A CT"
    here = _show_slice(viewer, ct_a, 8)
    assert here != 8  # (the two numberings differ)
    widget.apply_slice_button.click()
    assert widget.status.text() == f"Refining slice {here}…"
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert widget.status.text().startswith(f"Applied to slice {here} of 'A segmentation'")
    # the record Export writes keeps the scan's own index: the slider's is of this session
    assert [e["applied_to"] for e in seg_a.metadata[refine_mod.REFINED_HERE]] == ["slice 8"]
    widget.undo_button.click()
    assert widget.status.text() == f"Undid: slice {here}."

    monkeypatch.setattr(refine_mod, "refine_slice", lambda ct2d, tumor, *_, **__: tumor.copy())
    _apply_slice(qtbot, widget)  # an outline that stays where it is
    assert widget.status.text() == f"Refining slice {here} changed nothing."


def test_inspect_takes_up_the_new_patient_while_the_last_one_stays_open(make_napari_viewer, qtbot):
    """With the last patient's layers kept open, Inspect went on listing that patient's
    volumes after the next patient's Load (with them deleted, it moved to the new one)."""
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    vol_a, labels_a, ct_a = load(viewer, "A", truth=False)
    segment(viewer, "A", vol_a, labels_a, ct_a)
    _layers.add_labels_layer(  # A's own ground truth, opened later: A's figures stay
        viewer, labels_a, vol_a, "A ground truth", role="ground_truth", ct_layer_name="A CT"
    )
    assert widget.labels_combo.currentText() == "A segmentation"
    assert widget.truth_combo.currentText() == "A ground truth"
    widget.measure_button.click()
    qtbot.waitUntil(lambda: widget.stats is not None and not widget.busy, timeout=20_000)
    assert widget.volume_table.rowCount() > 0

    load(viewer, "B", **B_GRID)
    assert widget.labels_combo.currentText() == "B ground truth"
    assert widget.truth_combo.currentText() == "B ground truth"
    assert widget.stats is None and widget.volume_table.rowCount() == 0


def test_inspect_says_a_scan_loaded_without_labels_is_not_the_one_its_figures_are_of(
    make_napari_viewer, qtbot
):
    """A scan loaded with no ground truth beside the last patient's measured labels: the panel
    kept that patient's volumes under the new scan and said nothing."""
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    vol_a, labels_a, ct_a = load(viewer, "A", truth=False)
    segment(viewer, "A", vol_a, labels_a, ct_a)
    widget.measure_button.click()
    qtbot.waitUntil(lambda: widget.stats is not None and not widget.busy, timeout=20_000)

    measured = widget.status.text()
    vol_b, labels_b, ct_b = load(viewer, "B", truth=False, **B_GRID)
    said = widget.status.text()
    assert "No labels of 'B CT' yet: segment it (panel 2)" in said
    assert "still those of 'A segmentation'" in said
    assert widget.volume_table.rowCount() > 0  # A's figures kept, for a comparison
    # B closed again: the note went on naming it; what was said of A's figures is back
    viewer.layers.remove(ct_b)
    assert widget.status.text() == measured
    load(viewer, "C", spacing=(2.0, 0.7, 0.7))  # with its truth: Inspect moves to it
    assert widget.labels_combo.currentText() == "C ground truth"
    load(viewer, "D", truth=False, spacing=(1.0, 0.6, 0.6))
    assert "still those of 'C ground truth'" in widget.status.text()
    # other labels chosen by hand: the note spoke of the ones chosen before
    widget.labels_combo.setCurrentText("A segmentation")
    assert widget.status.text() == "Click Measure for the figures of 'A segmentation'."
    vol_b, labels_b, ct_b = load(viewer, "B", truth=False, **B_GRID)

    segment(viewer, "B", vol_b, labels_b, ct_b)  # B segmented: the note is answered
    assert widget.labels_combo.currentText() == "B segmentation"
    assert "No labels of" not in widget.status.text()

    # the same patient's scan loaded again (its series twice): its labels are its own
    load(viewer, "B", truth=False, **B_GRID)
    assert "No labels of" not in widget.status.text()
