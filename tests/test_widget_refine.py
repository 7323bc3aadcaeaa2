"""The Refine widget: drag a slider, see the outline move; Apply, Undo, Reset; bad layers refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_livertumor._widgets import _layers
from napari_livertumor._widgets.refine import PREVIEW_NAME, UNDER_CURSOR, RefineWidget
from napari_livertumor.io.volume import CTVolume

pytestmark = pytest.mark.gui

SPACING = (2.5, 0.8, 0.8)


def synthetic_case(shape=(12, 96, 96), seed=1):
    """CT with a liver (110 HU) in fat and a hypodense tumor; labels: 1 liver, 2 a too-small tumor."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape).astype(float)
    zm, ym, xm = zz * SPACING[0], yy * SPACING[1], xx * SPACING[2]
    liver = ((zm - 15) / 28) ** 2 + ((ym - 38) / 30) ** 2 + ((xm - 38) / 30) ** 2 < 1
    truth = ((zm - 15) ** 2 + (ym - 38) ** 2 + (xm - 45) ** 2 < 13**2) & liver
    ct = np.full(shape, -100.0)
    ct[liver] = 110
    ct[truth] = 75
    noise = ndi.gaussian_filter(rng.normal(size=shape), (0.5, 1, 1))
    ct += noise * 12 / noise.std()
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndi.generate_binary_structure(2, 1)
    model_tumor = ndi.binary_erosion(truth, st, iterations=3)
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[model_tumor] = 2
    return CTVolume(ct.astype(np.int16), spacing=SPACING), labels, truth, liver


def _two_scans(viewer, first: str, second: str):
    """Two scans on one grid, the second the first turned half round in-plane, each with its
    segmentation (named "<name> segmentation"), shown at slice 6: ``[(ct, labels), ...]``."""
    vol, labels, _, _ = synthetic_case()
    turned = CTVolume(np.ascontiguousarray(vol.array[:, ::-1, ::-1]), spacing=vol.spacing)
    scans = ((first, vol, labels), (second, turned, np.ascontiguousarray(labels[:, ::-1, ::-1])))
    layers = []
    for name, volume, mask in scans:
        ct = _layers.add_ct_layer(viewer, volume, name=name)
        seg = _layers.add_labels_layer(
            viewer, mask, volume, f"{name} segmentation", ct_layer_name=name
        )
        layers.append((ct, seg))
    viewer.dims.set_current_step(0, 6)
    return layers


@pytest.fixture
def refine_setup(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    vol, labels, truth, liver = synthetic_case()
    _layers.add_ct_layer(viewer, vol, name="CT")
    seg = _layers.add_labels_layer(viewer, labels, vol, "CT segmentation", ct_layer_name="CT")
    viewer.dims.set_current_step(0, 6)
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine")
    assert widget.ct_combo.currentText() == "CT"
    assert widget.mask_combo.currentText() == "CT segmentation"
    qtbot.waitUntil(lambda: widget.preview_layer() is not None, timeout=10_000)
    qtbot.waitUntil(lambda: not widget._preview_busy, timeout=10_000)
    return viewer, widget, seg, truth, liver


def _add_truth(viewer, vol, truth, liver):
    """The case's ground truth as a labels layer of the CT named "CT"."""
    labels = np.where(truth, 2, liver.astype(np.uint8))
    return _layers.add_labels_layer(
        viewer, labels, vol, "CT ground truth", role="ground_truth", ct_layer_name="CT"
    )


def _wait(qtbot, widget):
    """An Apply runs in a worker (Apply to slice too): wait for it to be written."""
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)


def _wait_for_new_preview(qtbot, widget, count_before):
    qtbot.waitUntil(
        lambda: widget.preview_count > count_before and not widget._preview_busy, timeout=10_000
    )


def test_moving_a_slider_updates_the_outline_on_the_current_slice(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    preview = widget.preview_layer()
    assert preview.contour == 1  # an outline, not a filled mask
    assert preview.metadata["slice"] == 6
    assert preview.data.shape[0] == 1  # one slice only, placed on slice 6
    assert preview.translate[0] == pytest.approx(6 * SPACING[0])
    shown_first = widget.preview_mask2d()

    count = widget.preview_count
    widget.iterations.value = 0  # the user drags the slider to 0: preview = the mask as it is
    _wait_for_new_preview(qtbot, widget, count)
    np.testing.assert_array_equal(widget.preview_mask2d(), seg.data[6] == 2)
    assert not np.array_equal(widget.preview_mask2d(), shown_first)

    count = widget.preview_count
    widget.iterations.value = 10
    _wait_for_new_preview(qtbot, widget, count)
    grown = widget.preview_mask2d()
    assert grown.sum() > (seg.data[6] == 2).sum()  # the too-small tumor grows towards the truth
    assert not (grown & ~liver[6]).any()

    count = widget.preview_count
    viewer.dims.set_current_step(0, 4)  # the user scrolls: the preview follows
    _wait_for_new_preview(qtbot, widget, count)
    assert preview.metadata["slice"] == 4
    assert preview.translate[0] == pytest.approx(4 * SPACING[0])
    assert viewer.layers[PREVIEW_NAME] is preview


def test_apply_to_slice_changes_tumor_only_inside_the_liver_and_undo_restores(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    before = seg.data.copy()
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    after = seg.data.copy()
    changed = after != before
    assert changed.any() and changed[6].any()
    assert not changed[:6].any() and not changed[7:].any()
    assert not ((after == 2) & ~liver).any()  # tumor only inside the liver
    assert set(np.unique(after[changed])) <= {1, 2}
    dice_before = _dice(before[6] == 2, truth[6])
    assert _dice(after[6] == 2, truth[6]) > dice_before

    # the refinement in effect is on the layer, with its settings, for Export's stats (which
    # said "refine": false, the model run's); undone, it is gone
    [done] = seg.metadata["refined_in_panel"]
    assert done["applied_to"] == "slice 6" and done["method"] == widget.build_config().method
    # and what it did (the record said that it ran, not what it changed)
    gained = int(((after == 2) & (before != 2)).sum())
    lost = int(((before == 2) & (after != 2)).sum())
    assert (done["tumor_voxels_added"], done["tumor_voxels_removed"]) == (gained, lost)
    voxel_ml = float(np.prod(seg.scale)) / 1000
    assert done["tumor_ml_added"] == pytest.approx(gained * voxel_ml, abs=1e-4)
    assert f"+{gained} / −{lost} tumor voxels" in widget.status.text()
    from napari_livertumor._widgets.export import _provenance

    said = _provenance(seg.metadata, {}, np.asarray(seg.data))
    assert said["refined_in_panel"] == [done]

    widget.undo_button.click()
    np.testing.assert_array_equal(seg.data, before)
    assert seg.metadata["refined_in_panel"] == []


def test_apply_all_in_3d_then_undo_and_reset(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    model_output = seg.data.copy()
    assert not widget.reset_button.isEnabled()  # nothing refined yet: nothing to reset
    widget.apply_all_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert widget.reset_button.isEnabled()
    after_all = seg.data.copy()
    assert (after_all != model_output).any()
    assert _dice(after_all == 2, truth) > _dice(model_output == 2, truth)
    assert not ((after_all == 2) & ~liver).any()

    widget.apply_slice_button.click()  # a second step on top
    _wait(qtbot, widget)
    widget.undo_button.click()
    np.testing.assert_array_equal(seg.data, after_all)

    widget.reset_button.click()
    np.testing.assert_array_equal(seg.data, model_output)
    widget.undo_button.click()  # the reset itself can be undone
    np.testing.assert_array_equal(seg.data, after_all)


def test_applying_in_3d_again_says_each_apply_may_move_the_boundary_further(refine_setup, qtbot):
    """max_shift_mm bounds one Apply: five Apply to all walked a lesion 22 mm from the
    model's mask (Dice 0.48 → 0.003), without a word."""
    viewer, widget, seg, truth, liver = refine_setup
    widget.min_contrast.value = 0.0
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    assert "earlier Apply" not in widget.status.text()
    widget.apply_slice_button.click()  # a slice's Apply is not one of them
    _wait(qtbot, widget)
    assert "earlier Apply" not in widget.status.text()
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    text = widget.status.text()
    assert "Applied on top of an earlier Apply: each may move the boundary up to Max " in text
    assert "shift (5 mm) further" in text and widget.status._kind == "warning"
    widget.reset_button.click()
    widget.apply_all_button.click()  # after a Reset: the first again
    _wait(qtbot, widget)
    assert "earlier Apply" not in widget.status.text()
    # a copy of the refined layer (napari's Duplicate Layer: data and record, no step)
    copy = viewer.add_labels(
        np.array(seg.data), name="copy", scale=seg.scale, translate=seg.translate,
        metadata=dict(seg.metadata),
    )  # fmt: skip
    widget.mask_combo.setCurrentText("copy")
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    assert copy.metadata[_layers.REFINED_HERE]
    assert "Applied on top of an earlier Apply" in widget.status.text()


def test_applying_to_another_lesion_is_no_apply_on_top_and_max_shift_0_is_said(refine_setup, qtbot):
    """Lesion 2 refined after lesion 1 was warned of as an Apply on top of an earlier one;
    with Max shift 0 (no limit) the warning was amber without a word."""
    viewer, widget, seg, truth, liver = refine_setup
    widget.min_contrast.value = 0.0
    seg.data[5:8, 20:24, 20:24] = 2  # a second lesion, far from the first
    seg.refresh()
    widget.refresh_lesions()
    widget.lesion_combo.setCurrentIndex(1)
    widget.apply_lesion_button.click()
    _wait(qtbot, widget)
    widget.refresh_lesions()
    widget.lesion_combo.setCurrentIndex(widget.lesion_combo.count() - 1)
    widget.apply_lesion_button.click()
    _wait(qtbot, widget)
    assert "earlier Apply" not in widget.status.text()
    widget.max_shift.value = 0.0
    widget.apply_all_button.click()  # on top of both
    _wait(qtbot, widget)
    assert "Applied on top of an earlier Apply: each may move the boundary any distance " in (
        widget.status.text()
    )


def test_labels_naming_no_ct_take_the_one_ct_on_their_grid(refine_setup, qtbot):
    """A second patient's labels file opened beside the first: the panel took the labels and
    stayed on the first CT, saying "not the same grid" until the CT was chosen by hand."""
    viewer, widget, seg, truth, liver = refine_setup
    vol_b, labels_b, *_ = synthetic_case(shape=(10, 80, 80), seed=2)
    _layers.add_ct_layer(viewer, vol_b, name="CT B")
    viewer.add_labels(
        labels_b, name="B labels", scale=vol_b.napari_scale, translate=vol_b.napari_translate
    )
    # the new scan is taken up (as Segment offers it), then the labels opened on it
    assert widget.ct_combo.currentText() == "CT B"
    assert widget.mask_combo.currentText() == "B labels"
    widget.mask_combo.setCurrentText("CT segmentation")  # linked to its own CT: back to it
    assert widget.ct_combo.currentText() == "CT"
    widget.mask_combo.setCurrentText("B labels")  # naming none: the one CT on its grid
    assert widget.ct_combo.currentText() == "CT B"


def test_at_least_ten_undo_steps_restore_exactly(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    history = [seg.data.copy()]
    for z in range(1, 11):
        viewer.dims.set_current_step(0, z)
        widget.apply_slice()
        _wait(qtbot, widget)
        history.append(seg.data.copy())
    assert len(widget.undo_steps()) >= 10
    for expected in reversed(history[:-1]):
        widget.undo()
        np.testing.assert_array_equal(seg.data, expected)


def test_a_tumor_only_layer_with_the_same_layers_liver_is_refused_not_given_a_liver(
    refine_setup, qtbot
):
    """With no liver (1) in the layer, "Liver from: same layer" confined the contour to the
    tumor itself, and Apply wrote the voxels it took away as liver into a tumor-only mask."""
    from napari_livertumor._widgets.refine import NO_LIVER

    viewer, widget, seg, truth, liver = refine_setup
    widget.apply_all_button.click()  # the segmentation's Apply: its status and notes
    _wait(qtbot, widget)
    assert widget.status.text().startswith(("Applied to all", "Refining all"))
    only = viewer.add_labels(
        np.where(seg.data == 2, 2, 0).astype(np.uint8), name="tumor only", scale=seg.scale
    )
    widget.mask_combo.setCurrentText("tumor only")
    assert widget.status.text() == ""  # the other layer's Apply is not told of this one
    assert not widget.reset_button.isEnabled()
    before = only.data.copy()
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    assert "holds no liver (value 1)" in widget.status.text()
    np.testing.assert_array_equal(only.data, before)
    widget.liver_combo.setCurrentText(NO_LIVER)  # what the message says to do
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    assert set(np.unique(only.data)) <= {0, 2}  # never a liver voxel in it


def test_a_new_layer_under_the_chosen_name_is_another_layer(refine_setup, qtbot):
    """A Segment rerun puts its result under the same name (the old one moved aside): the
    combo's index did not change, and the panel kept the old layer's status and Reset."""
    from napari_livertumor._widgets.segment import _keep_previous

    viewer, widget, seg, truth, liver = refine_setup
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    assert widget.reset_button.isEnabled() and widget.status.text()
    _keep_previous(viewer, "CT segmentation", "CT")
    count = widget.preview_count
    no_tumor = np.where(np.asarray(seg.data) == 2, 1, np.asarray(seg.data)).astype(np.uint8)
    new = _layers.add_labels_layer(
        viewer, no_tumor, _layers.volume_of(seg, viewer.layers), "CT segmentation",
        ct_layer_name="CT",
    )  # fmt: skip
    qtbot.waitUntil(lambda: widget.mask_combo.currentText() == "CT segmentation", timeout=20_000)
    assert widget._layer("CT segmentation") is new
    assert not widget.reset_button.isEnabled()
    # the old layer's Apply line is gone; where its refinement went is said instead
    assert widget.status.text().startswith("A rerun of Segment replaced the labels refined")
    _wait_for_new_preview(qtbot, widget, count)  # the outline is the new layer's: no tumor
    assert not widget.preview_mask2d().any()


def test_mismatched_layers_give_a_message_and_apply_nothing(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    other = viewer.add_labels(np.zeros((12, 90, 96), np.uint8), name="other grid", scale=SPACING)
    other.data[5:7, 30:50, 30:50] = 2
    widget.refresh_layers()
    widget.mask_combo.setCurrentText("other grid")
    before = other.data.copy()
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    widget.apply_all_button.click()
    assert "not the same grid" in widget.status.text()
    assert "Nothing was applied" in widget.status.text()
    np.testing.assert_array_equal(other.data, before)
    assert not widget.busy and len(widget.undo_steps()) == 0

    shifted = viewer.add_labels(seg.data.copy(), name="other scale", scale=(2.5, 1.0, 1.0))
    widget.refresh_layers()
    widget.mask_combo.setCurrentText("other scale")
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    text = widget.status.text()
    assert "voxels of 2.5 × 1 × 1 mm" in text and "np.float64" not in text
    np.testing.assert_array_equal(shifted.data, seg.data)

    moved = viewer.add_labels(seg.data.copy(), name="moved", scale=seg.scale, translate=(0, 0, 30))
    widget.refresh_layers()
    widget.mask_combo.setCurrentText("moved")
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert "lies 30.0 mm away" in widget.status.text()
    assert "Nothing was applied" in widget.status.text()
    np.testing.assert_array_equal(moved.data, seg.data)


def test_out_of_range_settings_are_clamped_with_a_visible_note(refine_setup, qtbot, tmp_path):
    viewer, widget, seg, truth, liver = refine_setup
    from napari_livertumor.refine import RefineConfig

    notes = widget.set_config(RefineConfig(smoothing=9, lambda1=-1.0))
    assert widget.smoothing.value == 4 and widget.lambda1.value == pytest.approx(0.01)
    assert "smoothing" in widget.notes.text() and "lambda1" in widget.notes.text()
    assert len(notes) == 2
    # the notes name the panel's controls, not the JSON keys of --refine-config
    widget.hu_low.value, widget.hu_high.value = 300, 100
    widget._show_notes([])
    assert "HU low 300 above HU high 100; swapped" in widget.notes.text()
    assert "hu_window" not in widget.notes.text()
    widget.hu_low.value, widget.hu_high.value = -100, 250


def test_every_value_the_controls_cannot_show_as_given_is_said(refine_setup):
    """A CLI config's balloon 4 (allowed: -5 to 5) became 3 on a -3..3 slider, and values with
    more digits than a control shows were rounded, both without a word."""
    from napari_livertumor.refine import RefineConfig

    _, widget, *_ = refine_setup
    notes = widget.set_config(
        RefineConfig(method="geodesic", balloon=4, hu_window=(-100.6, 250.0), lambda1=0.333)
    )
    assert widget.balloon.value == 4
    assert widget.build_config().balloon == 4
    assert any(n.startswith("HU low -100.6 is set as -100") for n in notes)
    assert any(n.startswith("lambda1 0.333 is set as 0.33") for n in notes)
    assert len(notes) == 2 and "HU low" in widget.notes.text()
    # a negative limit clamped to 0 turns it off: said so
    notes = widget.set_config(RefineConfig(max_shift_mm=-1, min_contrast=-1))
    assert any("no limit on how far the contour moves" in n for n in notes)
    assert any("no contrast check" in n for n in notes)


def test_an_empty_tumor_mask_previews_nothing_and_says_so(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    seg.data[seg.data == 2] = 1
    seg.refresh()
    count = widget.preview_count
    widget.schedule_preview()
    _wait_for_new_preview(qtbot, widget, count)
    assert not widget.preview_layer().visible  # hidden, not shrunk (that crashed vispy)
    assert not widget.preview_mask2d().any()
    assert widget.notes.text().startswith("no tumor on this slice")  # a fact: no ⚠, no amber
    assert "⚠" not in widget.notes.text() and widget.notes._kind == ""
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert "changed nothing" in widget.status.text()
    assert len(widget.undo_steps()) == 0


def _dice(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_apply_to_one_lesion_leaves_the_other_lesion_alone(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    seg.data[5:8, 20:24, 20:24] = 2  # a second, small lesion inside the liver
    seg.refresh()
    other = np.zeros(seg.data.shape, bool)
    other[5:8, 20:24, 20:24] = True
    before = seg.data.copy()
    widget.refresh_lesions()
    assert widget.lesion_combo.count() == 3  # "under the mouse" + two lesions, largest first
    widget.lesion_combo.setCurrentIndex(1)
    widget.apply_lesion_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    after = seg.data
    assert (after != before).any()
    np.testing.assert_array_equal(after[other], before[other])
    assert not ((after != before) & other).any()
    widget.undo_button.click()
    np.testing.assert_array_equal(seg.data, before)


def test_mouse_away_from_any_lesion_says_where_to_point(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    viewer.cursor.position = (6 * SPACING[0], 1.0, 1.0)  # a corner: no lesion there
    before = seg.data.copy()
    widget.apply_lesion_button.click()
    assert "Put the mouse over a lesion" in widget.status.text()
    np.testing.assert_array_equal(seg.data, before)


def test_cancel_during_apply_all_changes_nothing(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    widget.iterations.value = 60
    before = seg.data.copy()
    widget.apply_all_button.click()
    assert widget.apply_all_button.text() == "Cancel"
    widget.jobs[widget.apply_all_button].started_at -= 1  # (not a double-click's second click)
    widget.apply_all_button.click()  # the user changes their mind at once
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    np.testing.assert_array_equal(seg.data, before)
    assert "Cancelled" in widget.status.text()
    assert len(widget.undo_steps()) == 0


def test_separate_tumor_and_liver_layers_work_too(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    tumor_layer = viewer.add_labels(
        (seg.data == 2).astype(np.uint8),
        name="tumor only",
        scale=seg.scale,
        translate=seg.translate,
    )
    liver_layer = viewer.add_labels(
        liver.astype(np.uint8), name="liver only", scale=seg.scale, translate=seg.translate
    )
    widget.refresh_layers()
    widget.mask_combo.setCurrentText("tumor only")
    widget.liver_combo.setCurrentText("liver only")
    widget.tumor_value.value = 1
    before = tumor_layer.data.copy()
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    after = tumor_layer.data
    assert (after != before).any()
    assert set(np.unique(after)) <= {0, 1}
    assert not (after.astype(bool) & ~liver_layer.data.astype(bool)).any()
    widget.undo_button.click()
    np.testing.assert_array_equal(tumor_layer.data, before)


def test_loading_a_settings_file_with_bad_values_clamps_them_visibly(
    refine_setup, qtbot, tmp_path, monkeypatch
):
    viewer, widget, seg, truth, liver = refine_setup
    path = tmp_path / "refine.json"
    path.write_text('{"iterations": 500, "sigma": -2, "method": "geodesic"}')
    monkeypatch.setattr(
        "napari_livertumor._widgets.refine.QFileDialog.getOpenFileName",
        lambda *a, **k: (str(path), "JSON (*.json)"),
    )
    widget.load_button.click()
    assert widget.method.value == "geodesic"
    assert widget.iterations.value == widget.iterations.max
    assert widget.sigma.value == pytest.approx(0.1)
    assert "iterations" in widget.notes.text() and "sigma" in widget.notes.text()
    assert str(path) in widget.status.text()
    count = widget.preview_count
    _wait_for_new_preview(qtbot, widget, count)  # the notes stay after the preview comes
    assert "iterations" in widget.notes.text() and "sigma" in widget.notes.text()


def test_painting_the_tumor_updates_the_preview(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    count = widget.preview_count
    seg.brush_size = 5
    seg.paint((6, 20, 30), 2)  # the user paints a bit of tumor on the shown slice
    _wait_for_new_preview(qtbot, widget, count)
    assert widget.preview_mask2d()[18:23, 28:33].any()
    # napari's Undo (Ctrl+Z) takes it back: the preview follows (it kept the painted blob)
    count = widget.preview_count
    seg.undo()
    _wait_for_new_preview(qtbot, widget, count)
    assert not widget.preview_mask2d()[18:23, 28:33].any()


def test_apply_to_the_lesion_under_the_mouse(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    z, y, x = (int(round(c)) for c in np.argwhere(seg.data == 2).mean(axis=0))
    viewer.cursor.position = (z * SPACING[0], y * SPACING[1], x * SPACING[2])
    before = seg.data.copy()
    widget.apply_lesion_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert "lesion 1" in widget.status.text()
    assert _dice(seg.data == 2, truth) > _dice(before == 2, truth)


def test_a_lesion_chosen_in_the_list_is_named_by_its_number_in_the_list(refine_setup, qtbot):
    """The list numbers lesions by size (as Inspect and lesions.csv); the status named the
    internal component id: picking "lesion 1" reported "Applied to lesion 2"."""
    viewer, widget, seg, truth, liver = refine_setup
    data = seg.data.copy()
    zs = np.flatnonzero((data == 1).any(axis=(1, 2)))
    y, x = np.argwhere(data[zs[0]] == 1)[0]
    data[zs[0], y : y + 2, x : x + 2] = 2  # a small lesion first in scan order: component 1
    seg.data = data
    widget.refresh_lesions()
    texts = [widget.lesion_combo.itemText(i) for i in range(widget.lesion_combo.count())]
    assert texts[1].startswith("lesion 1:") and texts[2].startswith("lesion 2:")
    # voxels of each lesion, not component ids
    assert all(data[v] == 2 for v in widget.lesion_combo.itemData(1))
    assert (zs[0], y, x) in widget.lesion_combo.itemData(2)  # the small one
    widget.lesion_combo.setCurrentIndex(1)
    widget.apply_lesion_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert "lesion 1" in widget.status.text() and "lesion 2" not in widget.status.text()


def test_the_preview_left_alone_in_the_viewer_does_not_crash(refine_setup, qtbot):
    """Removing the masks and then the CT leaves only the (emptied) preview layer: napari must
    keep drawing (a one-voxel labels layer alone crashed vispy's software GL)."""
    viewer, widget, seg, truth, liver = refine_setup
    viewer.layers.remove(seg)
    qtbot.waitUntil(lambda: not widget._preview_busy, timeout=10_000)
    viewer.layers.remove(widget.ct_combo.currentText())
    qtbot.waitUntil(lambda: not widget._preview_busy, timeout=10_000)
    qtbot.wait(200)
    viewer.window._qt_viewer.canvas.native.repaint()  # draw now, with only the preview left
    qtbot.wait(200)
    assert [ly.name for ly in viewer.layers] == [PREVIEW_NAME]
    assert not widget.preview_layer().visible


def test_the_ground_truth_is_never_the_layer_refine_edits(make_napari_viewer, qtbot):
    """Loaded with its ground truth before any segmentation, Refine offers nothing to edit; the
    segmentation, once it comes, is picked; the ground truth stays untouched."""
    viewer = make_napari_viewer()
    vol, labels, truth, liver = synthetic_case()
    _layers.add_ct_layer(viewer, vol, name="CT")
    gt = _add_truth(viewer, vol, truth, liver)
    gt_before = np.array(gt.data)
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine")
    assert widget.mask_combo.count() == 0
    assert "CT ground truth" not in [
        widget.liver_combo.itemText(i) for i in range(widget.liver_combo.count())
    ]
    seg = _layers.add_labels_layer(
        viewer, labels.copy(), vol, "CT segmentation", ct_layer_name="CT"
    )
    assert widget.mask_combo.currentText() == "CT segmentation"
    viewer.dims.set_current_step(0, 6)
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert not np.array_equal(seg.data[6], labels[6])  # the segmentation was refined
    np.testing.assert_array_equal(gt.data, gt_before)


def test_the_preview_outline_lies_over_the_ground_truths_outline(refine_setup, qtbot):
    """Segment lifts the truth's outline over the segmentation; the preview went just above
    the segmentation, so under the truth: where the two agreed the preview was hidden."""
    viewer, widget, seg, truth, liver = refine_setup
    vol = seg.metadata[_layers.CT_VOLUME]
    gt = _add_truth(viewer, vol, truth, liver)
    viewer.layers.move(viewer.layers.index(gt), viewer.layers.index(seg) + 1)
    count = widget.preview_count
    viewer.dims.set_current_step(0, 7)
    _wait_for_new_preview(qtbot, widget, count)
    names = [ly.name for ly in viewer.layers]
    assert names.index(widget.preview_layer().name) == names.index("CT ground truth") + 1
    count = widget.preview_count
    viewer.dims.set_current_step(0, 6)  # (placed again, it stays there)
    _wait_for_new_preview(qtbot, widget, count)
    assert [ly.name for ly in viewer.layers] == names


def test_with_the_ct_removed_the_hint_asks_for_the_scan_not_a_segmentation(refine_setup, qtbot):
    """'Load a CT and segment it' stood over a segmentation still there."""
    viewer, widget, seg, truth, liver = refine_setup
    viewer.layers.remove("CT")
    qtbot.waitUntil(
        lambda: "No CT open for 'CT segmentation'" in widget.status.text(), timeout=20_000
    )
    assert widget.preview_layer() is None or not widget.preview_layer().visible


def test_apply_all_leaves_no_crumb_the_contour_cut_off_a_lesion(refine_setup, qtbot, monkeypatch):
    """A contour that cuts across a lesion's edge can leave a few-voxel piece; the lesion list and
    count would show it as a lesion of its own. The widget drops it like the pipeline does."""
    import napari_livertumor._widgets.refine as refine_widget

    viewer, widget, seg, truth, liver = refine_setup
    tumor = seg.data == 2
    z, y, x = np.argwhere(tumor)[0]
    cz, cy, cx = np.argwhere(liver & ~ndi.binary_dilation(tumor, iterations=3))[len(tumor) // 2]
    crumb = (cz, cy, slice(cx, cx + 2))
    assert liver[crumb].all()

    def contour_leaving_a_crumb(ct, tumor, liver, spacing, cfg, **kw):
        out = tumor.copy()
        out[crumb] = True  # two voxels split off the lesion's edge
        out[z, y, x] = False
        return out

    monkeypatch.setattr(refine_widget, "refine_all", contour_leaving_a_crumb)
    widget.apply_all_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert (seg.data[crumb] == 1).all()
    assert seg.data[z, y, x] == 1  # the contour's own change is applied
    assert "under 0.1 mL" in widget.notes.text()


def test_a_refused_applys_notes_are_not_shown_and_a_previews_are_marked(
    refine_setup, qtbot, monkeypatch
):
    """An Apply thrown away (its layer removed while it ran) left its "⚠ … dropped" notes up
    as if it had been applied; the live preview's notes (of the slice on view) read as the
    Apply's when shown beside them."""
    import napari_livertumor._widgets.refine as refine_widget

    viewer, widget, seg, truth, liver = refine_setup

    def contour_with_a_note(ct, tumor, liver, spacing, cfg, notes=None, **kw):
        notes.append("a note of the 3D contour")
        return tumor.copy()

    monkeypatch.setattr(refine_widget, "refine_all", contour_with_a_note)
    other = viewer.add_labels(np.array(seg.data), name="other", scale=seg.scale)
    other.metadata.update(seg.metadata)
    widget.mask_combo.setCurrentText(other.name)
    widget.apply_all_button.click()
    viewer.layers.remove(other)  # while the Apply runs
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert "nothing applied" in widget.status.text()
    assert "a note of the 3D contour" not in widget.notes.text()

    widget.mask_combo.setCurrentText(seg.name)
    widget.apply_all_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert "a note of the 3D contour" in widget.notes.text()
    widget._show_notes(["lesion(s) under 4 voxels kept unchanged"])  # a preview's, after it
    text = widget.notes.text()
    assert "a note of the 3D contour" in text
    assert "preview of this slice: lesion(s) under 4 voxels kept unchanged" in text
    # the preview saying what the Apply said (Apply to slice, then that slice's preview): once
    widget._show_notes(["a note of the 3D contour"])
    assert widget.notes.text() == "⚠ a note of the 3D contour"


def test_a_previews_note_of_a_piece_it_empties_offers_no_undo(refine_setup, qtbot, monkeypatch):
    """The preview (nothing written) said of a piece of tumor its contour emptied "Undo brings
    it back", beside an Apply to all's notes; Apply to slice, which writes it, still says so."""
    import napari_livertumor._widgets.refine as refine_mod

    viewer, widget, seg, truth, liver = refine_setup
    emptied = (
        "a tumor piece (centred at y 40, x 30) was emptied by the contour of a box it shares "
        "with another tumor piece; Undo brings it back"
    )

    def contour(ct2d, tumor, liver2d, spacing, cfg, should_cancel=None, notes=None):
        notes.append(emptied)
        return tumor.copy()

    monkeypatch.setattr(refine_mod, "refine_slice", contour)
    count = widget.preview_count
    widget.schedule_preview()
    _wait_for_new_preview(qtbot, widget, count)
    text = widget.notes.text()
    assert "was emptied by the contour" in text and "Undo brings it back" not in text
    widget.apply_slice_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert "another tumor piece; Undo brings it back" in widget.notes.text()


def test_another_layer_chosen_while_applying_keeps_the_applys_status(refine_setup, qtbot):
    """Choosing another labels layer while an Apply ran blanked the status beside the running
    progress bar."""
    viewer, widget, seg, truth, liver = refine_setup
    other = viewer.add_labels(np.array(seg.data), name="other", scale=seg.scale)
    other.metadata.update(seg.metadata)
    widget.refresh_layers()
    widget.iterations.value = 40
    widget.apply_all_button.click()
    busy_text = widget.status.text()
    assert busy_text
    widget.mask_combo.setCurrentText(other.name)
    assert widget.status.text() == busy_text
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert f"of '{seg.name}'" in widget.status.text()


def test_the_setting_inputs_line_up_in_one_column(refine_setup, qtbot):
    """Labels of different lengths ("σ (mm)", "min contrast (CNR)") leave the inputs aligned."""
    viewer, widget = refine_setup[:2]
    viewer.window.show()
    qtbot.waitUntil(widget.lambda1.native.isVisible, timeout=20_000)
    params = widget.params
    rows = [widget.lambda1, widget.sigma, widget.hu_low, widget.margin, widget.min_contrast]
    xs = {w.native.mapTo(params, w.native.rect().topLeft()).x() for w in rows}
    assert len(xs) == 1, xs
    # the other method's rows (label and input) appear and line up too; its own rows go
    widget.method.value = "geodesic"
    qtbot.waitUntil(widget.alpha.native.isVisible, timeout=20_000)
    assert not widget.lambda1.native.isVisible()
    assert not widget._row_labels[id(widget.lambda1)].isVisible()
    assert widget._row_labels[id(widget.alpha)].isVisible()
    x_alpha = widget.alpha.native.mapTo(params, widget.alpha.native.rect().topLeft()).x()
    assert {x_alpha} == xs
    widget.method.value = "chan_vese"


def test_apply_to_a_lesion_on_a_segmentation_without_tumor_says_so(refine_setup, qtbot):
    viewer, widget, seg, *_ = refine_setup
    seg.data = np.where(seg.data > 0, 1, 0).astype(np.uint8)  # the liver stage alone
    seg.metadata["stats"] = {"tumor_ml": None}
    widget.apply_lesion()
    text = widget.status.text()
    assert "has no tumor to refine" in text and "tumor stage was not run" in text


def test_a_hidden_layer_is_never_refined_and_undo_forgets_deleted_layers(refine_setup, qtbot):
    """With the segmentation deleted, Refine fell back to the hidden "(previous)" layer and
    applied there without a word; Undo (n) kept counting steps on the deleted layer."""
    viewer, widget, seg, truth, liver = refine_setup
    vol = seg.metadata[_layers.CT_VOLUME]
    hidden = _layers.add_labels_layer(
        viewer, np.asarray(seg.data).copy(), vol, "CT segmentation (previous)", ct_layer_name="CT"
    )
    hidden.visible = False
    assert widget.mask_combo.currentText() == "CT segmentation (previous)"  # the newest layer
    widget.mask_combo.setCurrentText("CT segmentation")
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert "of 'CT segmentation'" in widget.status.text()  # the status names the layer
    assert widget.undo_button.text() == "Undo (1)"

    viewer.layers.remove(seg)
    assert widget.mask_combo.currentText() == "CT segmentation (previous)"
    assert widget.undo_button.text() != "Undo (1)" and not widget.undo_button.isEnabled()
    before = np.asarray(hidden.data).copy()
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    np.testing.assert_array_equal(hidden.data, before)
    assert "is hidden: show it" in widget.status.text()
    hidden.visible = True
    assert "is hidden" not in widget.status.text()  # answered: the complaint goes
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert (np.asarray(hidden.data) != before).any()


def test_undo_of_a_step_on_a_layer_moved_aside_names_that_layer(refine_setup, qtbot):
    """After a rerun of Segment hid the edited layer as "(previous)", Undo changed that hidden
    layer and said only "Undid: slice 6.": nothing visible happened, nothing named where."""
    viewer, widget, seg, truth, liver = refine_setup
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    before = np.asarray(seg.data).copy()
    seg.name, seg.visible = "CT segmentation (previous)", False  # what a rerun does
    vol = seg.metadata[_layers.CT_VOLUME]
    _layers.add_labels_layer(viewer, np.asarray(truth, np.uint8), vol, "CT segmentation")
    widget.mask_combo.setCurrentText("CT segmentation")
    widget.undo()
    text = widget.status.text()
    assert "in 'CT segmentation (previous)' (hidden: show it to see the change)" in text
    assert (np.asarray(seg.data) != before).any()  # undone where it was done


def test_a_rerun_replacing_the_refined_labels_says_where_the_refinement_went(refine_setup, qtbot):
    """A rerun of Segment moved the refined labels aside: the panel's line of its last Apply
    went blank, nothing saying the refinement now lay in the hidden "(previous)" layer."""
    viewer, widget, seg, truth, liver = refine_setup
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert widget.undo_steps()
    seg.name, seg.visible = "CT segmentation (previous)", False  # what a rerun does
    vol = seg.metadata[_layers.CT_VOLUME]
    _layers.add_labels_layer(viewer, np.asarray(truth, np.uint8), vol, "CT segmentation")
    widget.mask_combo.setCurrentText("CT segmentation")
    text = widget.status.text()
    assert "that refinement is in 'CT segmentation (previous)' (hidden)" in text
    assert "Applies now go into 'CT segmentation'" in text
    # the user goes back to the moved-aside layer itself: nothing of this to say
    widget.mask_combo.setCurrentText("CT segmentation (previous)")
    assert "that refinement" not in widget.status.text()


def test_closing_the_panel_takes_its_preview_outline_away(refine_setup, qtbot):
    """The preview outline stayed on the canvas after the panel was closed, no longer updated:
    it looked like a live preview of nothing."""
    viewer, widget, seg, truth, liver = refine_setup
    count = widget.preview_count
    widget.schedule_preview()
    _wait_for_new_preview(qtbot, widget, count)
    assert widget.preview_layer().visible
    dock = widget.parent()
    widget.setParent(None)  # what napari's close button on the dock does
    assert widget.preview_layer() is None  # no empty layer left in the list either
    assert [ly.name for ly in viewer.layers if ly.name == PREVIEW_NAME] == []
    widget.iterations.value = widget.iterations.value + 5  # no preview while closed
    qtbot.wait(600)
    assert widget.preview_layer() is None
    widget.setParent(dock)  # docked again: the preview comes back
    qtbot.waitUntil(
        lambda: widget.preview_layer() is not None and widget.preview_layer().visible,
        timeout=10_000,
    )


def test_a_layer_hidden_while_applying_to_all_gets_the_result_and_says_so(refine_setup, qtbot):
    """Hiding the overlay to look at the CT emptied the lesion list; and a layer hidden while
    the contour ran lost the result ('nothing applied'): it is written, and the status says the
    layer is hidden."""
    viewer, widget, seg, truth, liver = refine_setup
    widget.refresh_lesions()
    n_lesions = widget.lesion_combo.count()
    seg.visible = False
    widget.refresh_lesions()
    assert widget.lesion_combo.count() == n_lesions > 1  # the list stays while it is hidden
    seg.visible = True

    widget.iterations.value = 40
    before = np.asarray(seg.data).copy()
    widget.apply_all_button.click()
    seg.visible = False  # while the contour runs
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert (np.asarray(seg.data) != before).any()
    assert "It is hidden: show it to see the change" in widget.status.text()
    assert len(widget.undo_steps()) == 1


def test_a_layer_removed_while_applying_to_all_says_so_and_the_message_stays(refine_setup, qtbot):
    """The red "… removed while refining; nothing applied." was replaced at once by the hint
    "Segment the CT (panel 2)…" of the emptied layer list: the user never saw it."""
    viewer, widget, seg, truth, liver = refine_setup
    widget.iterations.value = 40
    widget.apply_all_button.click()
    viewer.layers.remove(seg)  # while the contour runs
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    qtbot.wait(500)  # the layer list's refresh and the preview's timer have run
    assert "was removed while refining; nothing applied" in widget.status.text()


def test_a_liver_layer_renamed_or_removed_while_applying_is_followed_or_said(refine_setup, qtbot):
    """Liver from was remembered by name: renamed while the contour ran, the result was
    thrown away as "the liver … was edited while refining"."""
    viewer, widget, seg, truth, liver = refine_setup
    liver_layer = viewer.add_labels(
        liver.astype(np.uint8), name="Liver", scale=seg.scale, translate=seg.translate
    )
    widget.refresh_layers()
    widget.liver_combo.setCurrentText("Liver")
    widget.iterations.value = 40
    before = np.asarray(seg.data).copy()
    widget.apply_all_button.click()
    liver_layer.name = "Liver (mine)"  # while the contour runs
    _wait(qtbot, widget)
    assert "Applied to" in widget.status.text(), widget.status.text()
    assert (np.asarray(seg.data) != before).any()
    widget.undo_button.click()
    widget.refresh_layers()
    widget.liver_combo.setCurrentText("Liver (mine)")
    widget.apply_all_button.click()
    viewer.layers.remove(liver_layer)
    _wait(qtbot, widget)
    qtbot.wait(300)
    assert "'Liver (mine)', the liver the contour was kept in, was removed" in (
        widget.status.text()
    )
    np.testing.assert_array_equal(seg.data, before)


def test_apply_to_slice_reads_the_neighbour_slices_tumor_by_the_panels_value(
    refine_setup, qtbot, monkeypatch
):
    """The crumb filter looked for value 2 on the slices above and below: with another tumor
    value it saw none there and removed pieces of a lesion going on through them."""
    import napari_livertumor._widgets.refine as refine_mod

    viewer, widget, seg, truth, liver = refine_setup
    tumor_layer = viewer.add_labels(
        np.where(seg.data == 2, 3, 0).astype(np.uint8),
        name="tumor as 3",
        scale=seg.scale,
        translate=seg.translate,
    )
    widget.refresh_layers()
    widget.mask_combo.setCurrentText("tumor as 3")
    widget.liver_combo.setCurrentText("CT segmentation")
    widget.tumor_value.value = 3
    seen = []
    real = refine_mod._without_slice_crumbs

    def spy(near, *args):
        seen.append(near.copy())
        return real(near, *args)

    monkeypatch.setattr(refine_mod, "_without_slice_crumbs", spy)
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    z = int(widget.current_slice(widget._layer("CT")))
    expected = (tumor_layer.data[z - 1] == 3) | (tumor_layer.data[z + 1] == 3)
    assert expected.any() and seen
    np.testing.assert_array_equal(seen[0], expected)


def test_another_tumor_value_starts_the_lesion_list_again(refine_setup, qtbot):
    """The list kept the lesions of the value before: Apply to a listed lesion then said it
    was "no longer in the tumor labels"."""
    viewer, widget, seg, truth, liver = refine_setup
    widget.refresh_lesions()
    assert widget.lesion_combo.count() > 1
    widget.tumor_value.value = 1
    assert widget.lesion_combo.count() == 1
    assert widget.lesion_combo.currentText() == UNDER_CURSOR


def test_settings_saved_to_a_folder_that_cannot_be_written_say_so(
    refine_setup, qtbot, tmp_path, monkeypatch
):
    viewer, widget, seg, truth, liver = refine_setup
    (tmp_path / "a file").write_text("not a folder")
    target = tmp_path / "a file" / "refine.json"
    monkeypatch.setattr(
        "napari_livertumor._widgets.refine.QFileDialog.getSaveFileName",
        lambda *a, **k: (str(target), "JSON (*.json)"),
    )
    widget._save_settings()
    text = widget.status.text()
    assert f"Could not save settings to {target}" in text and ".tmp" not in text
    assert not target.exists()


def test_a_lesion_chosen_before_the_labels_changed_is_the_one_refined(refine_setup, qtbot):
    """The list held component ids, renumbered by any edit: a lesion painted above the chosen
    one took its id and was refined instead; a chosen lesion erased since is said."""
    viewer, widget, seg, truth, liver = refine_setup
    widget.refresh_lesions()
    widget.lesion_combo.setCurrentIndex(1)  # the big lesion
    chosen_text = widget.lesion_combo.currentText()
    painted = np.zeros(seg.data.shape, bool)
    painted[1:3, 20:24, 20:24] = True  # painted by hand on earlier slices: it becomes id 1
    seg.data[painted] = 2
    seg.refresh()
    before = seg.data.copy()
    widget.apply_lesion_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    changed = seg.data != before
    assert changed.any() and not (changed & painted).any()
    assert widget.lesion_combo.currentText().startswith("lesion 1:")  # refreshed, kept
    assert widget.lesion_combo.currentText() != chosen_text or not changed.any()

    # one of the chosen lesion's listed voxels painted over: the lesion is still found
    widget.lesion_combo.setCurrentIndex(1)
    first = widget.lesion_combo.currentData()[0]
    seg.data[first] = 1
    seg.refresh()
    widget.apply_lesion_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert "no longer" not in widget.status.text() and "lesion 1" in widget.status.text()

    widget.lesion_combo.setCurrentIndex(2)  # the painted one, then erased by hand
    seg.data[painted] = 1
    seg.refresh()
    before = seg.data.copy()
    widget.apply_lesion_button.click()
    assert "is no longer in the tumor labels" in widget.status.text()
    np.testing.assert_array_equal(seg.data, before)


def _apply_notes_a_sliver(monkeypatch) -> None:
    """Every Apply notes tumor slivers given back to the liver (a sticky note to watch)."""
    import napari_livertumor._widgets.refine as refine_mod

    real = refine_mod.drop_slivers

    def noting(before, after, spacing, min_ml, notes=None, **kw):
        if notes is not None:  # (the preview's crumb filter passes none: it says nothing)
            notes.append("3 tumor piece(s) under 0.1 mL went back to liver")
        return real(before, after, spacing, min_ml, notes, **kw)

    monkeypatch.setattr(refine_mod, "drop_slivers", noting)


def test_an_applys_notes_stay_after_the_preview_that_follows(refine_setup, qtbot, monkeypatch):
    """The preview scheduled right after an Apply replaced its notes within 0.1 s."""

    viewer, widget, seg, truth, liver = refine_setup
    _apply_notes_a_sliver(monkeypatch)
    widget.apply_all_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    count = widget.preview_count
    _wait_for_new_preview(qtbot, widget, count)
    assert "went back to liver" in widget.notes.text() and not widget.notes_box.isHidden()
    count = widget.preview_count
    widget.iterations.value = widget.iterations.value + 1  # a settings change: they go
    _wait_for_new_preview(qtbot, widget, count)
    assert "went back to liver" not in widget.notes.text()
    widget.apply_all_button.click()  # and an Undo of the Apply takes its notes too
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert "went back to liver" in widget.notes.text()
    widget.undo_button.click()
    assert "went back to liver" not in widget.notes.text()
    count = widget.preview_count
    _wait_for_new_preview(qtbot, widget, count)  # (nor does the preview after it bring them)
    assert "went back to liver" not in widget.notes.text()


def test_the_next_patients_labels_start_a_new_lesion_list_without_the_last_notes(
    refine_setup, qtbot, monkeypatch
):
    """Switched to the next patient's segmentation, the list still held the last patient's
    lesions: Apply refined whichever lesion of the new one lay at the stored voxels, or said
    "they were edited"; the last Apply's notes stayed under the panel."""
    import napari_livertumor._widgets.refine as refine_mod

    viewer, widget, seg, truth, liver = refine_setup
    _apply_notes_a_sliver(monkeypatch)
    widget.refresh_lesions()
    widget.lesion_combo.setCurrentIndex(1)
    widget.apply_lesion_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert "went back to liver" in widget.notes.text()
    assert widget.lesion_combo.currentText().startswith("lesion 1:")
    # the next patient: its own lesion, elsewhere
    other = np.where(seg.data == 2, 1, seg.data).astype(np.uint8)
    other[5:8, 20:26, 20:26] = 2
    vol = seg.metadata[_layers.CT_VOLUME]
    count = widget.preview_count
    _layers.add_labels_layer(viewer, other, vol, "next segmentation", ct_layer_name="CT")
    widget.refresh_layers()
    widget.mask_combo.setCurrentText("next segmentation")
    assert widget.lesion_combo.currentText() == refine_mod.UNDER_CURSOR
    _wait_for_new_preview(qtbot, widget, count)
    assert "went back to liver" not in widget.notes.text()
    widget.refresh_lesions()  # as opening the list does: the new layer's lesion only
    texts = [widget.lesion_combo.itemText(i) for i in range(widget.lesion_combo.count())]
    assert texts[0] == refine_mod.UNDER_CURSOR and len(texts) == 2
    assert all(other[v] == 2 for v in widget.lesion_combo.itemData(1))
    # the same layer chosen again (the list of layers refreshed) keeps the choice
    widget.lesion_combo.setCurrentIndex(1)
    widget.refresh_layers()
    assert widget.lesion_combo.currentIndex() == 1


def test_tumor_given_up_without_liver_confinement_goes_back_to_liver(refine_setup, qtbot):
    """With Liver from "none" (or another layer) voxels the contour gave up were written 0:
    holes in the liver of a segmentation layer."""
    from napari_livertumor._widgets.refine import NO_LIVER

    viewer, widget, seg, truth, liver = refine_setup
    widget.liver_combo.setCurrentText(NO_LIVER)
    before = seg.data.copy()
    tumor = before == 2
    after = tumor.copy()
    after[6] = ndi.binary_erosion(tumor[6], iterations=2)  # what a shrinking contour gives
    widget._commit(seg, tumor, None, after, "slice 6", widget._chosen())
    shrunk = tumor & ~after
    assert shrunk.any() and (seg.data[shrunk] == 1).all()


def test_in_3d_the_preview_pauses_and_apply_to_slice_says_why(refine_setup, qtbot):
    """In 3D the outline became a filled slab inside the liver, recomputed at every slider
    move, and Apply to slice wrote a slice nobody could see."""
    viewer, widget, seg, truth, liver = refine_setup
    before = seg.data.copy()
    viewer.dims.ndisplay = 3
    qtbot.waitUntil(lambda: not widget.preview_layer().visible, timeout=20_000)
    # said as the view turns (it said nothing until Apply to slice was clicked)
    qtbot.waitUntil(lambda: "In 3D no slice is shown" in widget.status.text(), timeout=20_000)
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert "switch to 2D" in widget.status.text()
    np.testing.assert_array_equal(seg.data, before)
    count = widget.preview_count
    viewer.dims.ndisplay = 2
    _wait_for_new_preview(qtbot, widget, count)
    assert widget.preview_layer().visible
    assert "switch to 2D" not in widget.status.text()  # back in 2D, with an outline: gone
    assert "In 3D" not in widget.status.text()


def test_a_view_rolled_to_sagittal_shows_no_axial_outline_and_applies_to_no_hidden_slice(
    refine_setup, qtbot
):
    """Rolled to a sagittal view, the preview and Apply to slice worked on an axial slice the
    user could not see, and wrote it."""
    viewer, widget, seg, truth, liver = refine_setup
    before = seg.data.copy()
    viewer.dims.order = (2, 0, 1)
    qtbot.waitUntil(lambda: not widget.preview_layer().visible, timeout=20_000)
    assert "axial" in widget.status.text()
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert "roll the dimensions back to axial" in widget.status.text()
    np.testing.assert_array_equal(seg.data, before)
    count = widget.preview_count
    viewer.dims.order = (0, 1, 2)
    _wait_for_new_preview(qtbot, widget, count)
    assert widget.preview_layer().visible


def test_a_layer_turned_in_napari_is_refused_alone_and_previewed_turned_with_its_ct(
    refine_setup, qtbot
):
    """napari's transform mode turns a layer by its affine: the preview was drawn unturned,
    off the lesions, and a mask turned alone against its CT was refined without a word."""
    viewer, widget, seg, truth, liver = refine_setup
    ct = viewer.layers["CT"]
    c, s_ = np.cos(np.radians(10)), np.sin(np.radians(10))
    turn = np.array([[1, 0, 0, 0], [0, c, -s_, 0], [0, s_, c, 0], [0, 0, 0, 1]], float)
    before = seg.data.copy()
    seg.affine = turn
    qtbot.waitUntil(lambda: "placed differently in napari" in widget.status.text(), timeout=20_000)
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    assert "placed differently in napari" in widget.status.text()
    assert "Nothing was applied" in widget.status.text()
    np.testing.assert_array_equal(seg.data, before)
    count = widget.preview_count
    ct.affine = turn  # both turned: refined, and the outline turned with them
    widget.schedule_preview()  # (as the next move of the slider does)
    _wait_for_new_preview(qtbot, widget, count)
    np.testing.assert_allclose(widget.preview_layer().affine.affine_matrix, turn)
    assert "placed differently" not in widget.status.text()


def test_grid_mode_is_said_over_the_preview_and_unsaid_when_turned_off(refine_setup, qtbot):
    """napari's grid mode draws each layer in a cell of its own: the outline lay in an empty
    cell away from the mask, unsaid."""
    viewer, widget, seg, truth, liver = refine_setup
    count = widget.preview_count
    _layers.grid_of(viewer).enabled = True
    _wait_for_new_preview(qtbot, widget, count)
    assert widget.status.text().startswith("Grid mode is on: the outline lies in a grid cell")
    count = widget.preview_count
    _layers.grid_of(viewer).enabled = False
    _wait_for_new_preview(qtbot, widget, count)
    assert "Grid mode" not in widget.status.text()


def test_a_transposed_axial_view_still_previews_and_a_rolled_one_keeps_an_applys_result(
    refine_setup, qtbot
):
    """napari's Transpose keeps an axial slice, and was refused as a rolled view; in a rolled
    view the result of Apply to all was replaced a moment later by the "roll back" hint."""
    viewer, widget, seg, truth, liver = refine_setup
    viewer.dims.order = (0, 2, 1)  # Transpose: still axial slice z
    count = widget.preview_count
    _wait_for_new_preview(qtbot, widget, count)
    assert widget.preview_layer().visible
    before = seg.data.copy()
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert "Applied to slice" in widget.status.text() and not np.array_equal(seg.data, before)

    viewer.dims.order = (2, 0, 1)  # sagittal
    qtbot.waitUntil(lambda: "axial" in widget.status.text(), timeout=20_000)
    widget.apply_all_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    said = widget.status.text()
    assert said.startswith(("Applied to all", "Refining all lesions changed nothing"))
    qtbot.wait(600)  # a preview scheduled by the Apply ran meanwhile
    assert widget.status.text() == said


def test_an_empty_viewer_shows_the_load_hint_not_the_rolled_view_one(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine")
    widget.preview_now()
    assert "Load a CT" in widget.status.text()


def test_the_outline_goes_when_another_tab_is_shown(make_napari_viewer, qtbot):
    """Tabbed with Inspect, the preview outline stayed over the mask being measured."""
    viewer = make_napari_viewer(show=True)
    vol, labels, truth, liver = synthetic_case()
    _layers.add_ct_layer(viewer, vol, name="CT")
    _layers.add_labels_layer(viewer, labels, vol, "CT segmentation", ct_layer_name="CT")
    viewer.dims.set_current_step(0, 6)
    refine_dock, widget = viewer.window.add_plugin_dock_widget(
        "napari-livertumor", "3 Refine tumor"
    )
    inspect_dock, _ = viewer.window.add_plugin_dock_widget(
        "napari-livertumor", "4 Inspect", tabify=True
    )
    qtbot.wait(300)
    refine_dock.raise_()
    qtbot.waitUntil(lambda: widget.preview_layer() is not None, timeout=10_000)
    qtbot.waitUntil(lambda: widget.preview_layer().visible, timeout=10_000)
    inspect_dock.raise_()
    qtbot.waitUntil(lambda: not widget.preview_layer().visible, timeout=20_000)
    refine_dock.raise_()
    qtbot.waitUntil(lambda: widget.preview_layer().visible, timeout=10_000)


def test_settings_that_do_nothing_are_greyed_and_tumor_value_1_is_refused(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    widget.method.value = "geodesic"
    widget.auto_threshold.value = False
    widget.balloon.value = 0.0  # the threshold only stops a balloon
    assert not widget.threshold.enabled and not widget.auto_threshold.enabled
    widget.balloon.value = 1.0
    assert widget.threshold.enabled and widget.auto_threshold.enabled
    widget.method.value = "chan_vese"
    widget.tumor_value.value = 1
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert "Tumor value 1 is the liver's value" in widget.status.text()


def _while_apply_all_runs(refine_setup, qtbot, monkeypatch, during):
    """Apply to all held inside its contours while ``during()`` runs, then let go and waited
    for."""
    import threading

    from napari_livertumor._widgets import refine as refine_mod

    viewer, widget, seg, truth, liver = refine_setup
    gate, entered, real = threading.Event(), threading.Event(), refine_mod.refine_all

    def held(*args, **kwargs):
        entered.set()
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(refine_mod, "refine_all", held)
    widget.live.value = False
    widget.apply_all_button.click()
    qtbot.waitUntil(entered.is_set, timeout=10_000)
    try:
        during()
    finally:
        gate.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)


def _edit_while_apply_all_runs(refine_setup, qtbot, monkeypatch, edit):
    """``edit(labels)`` made while Apply to all runs: ``(widget, labels layer, the labels as
    edited)``."""
    viewer, widget, seg, truth, liver = refine_setup
    edited = []

    def during():
        edit(seg.data)
        seg.refresh()
        edited.append(seg.data.copy())

    _while_apply_all_runs(refine_setup, qtbot, monkeypatch, during)
    return widget, seg, edited[0]


def test_liver_erased_while_apply_all_runs_gets_no_tumor_written_over_it(
    refine_setup, qtbot, monkeypatch
):
    """Only the tumor was compared at the end: tumor grew onto liver the user had just erased."""

    def erase_liver(data):  # the user erases the liver, not the tumor
        data[data == 1] = 0

    widget, seg, before = _edit_while_apply_all_runs(refine_setup, qtbot, monkeypatch, erase_liver)
    np.testing.assert_array_equal(seg.data, before)
    assert "the liver in 'CT segmentation' was edited while refining" in widget.status.text()
    assert len(widget.undo_steps()) == 0


def _export_panel_beside(refine_setup, tmp_path):
    """An Export panel set to write the refined labels' NIfTI only: ``(panel, folder)``. The
    contour is set to move here (a change to export)."""
    from napari_livertumor._widgets.export import ExportWidget

    viewer, widget, seg, truth, liver = refine_setup
    widget.min_contrast.value = 0.0
    export = ExportWidget(viewer)
    viewer.window.add_dock_widget(export)
    export.labels_combo.setCurrentText("CT segmentation")
    out = tmp_path / "out"
    export.folder.setText(str(out))
    for box in (export.masks_check, export.seg_check, export.stats_check):
        box.setChecked(False)
    return export, out


def _exported_holds(export, out, seg, qtbot) -> None:
    """Export now: its labels file holds ``seg``'s labels as they are."""
    from napari_livertumor.io.nifti import read_nifti

    export.export_button.click()
    qtbot.waitUntil(lambda: not export.busy, timeout=30_000)
    [written] = out.glob("*_labels.nii.gz")
    np.testing.assert_array_equal(read_nifti(written).array, seg.data)


def test_export_is_refused_while_an_apply_runs_on_its_labels(
    refine_setup, qtbot, monkeypatch, tmp_path
):
    """Export clicked while Apply to all still runs on the layer: its files would hold the
    labels from before the Apply, unsaid; it is refused, said, and nothing is written. Once
    the Apply has written its result, the export holds it."""
    viewer, widget, seg, truth, liver = refine_setup
    export, out = _export_panel_beside(refine_setup, tmp_path)
    before = seg.data.copy()

    def export_now():
        export.export_button.click()
        said = export.status.text()
        assert "Refine is still applying its contours to 'CT segmentation'" in said
        assert not out.exists() or not any(out.iterdir())

    _while_apply_all_runs(refine_setup, qtbot, monkeypatch, export_now)
    assert not np.array_equal(seg.data, before)  # the Apply changed the labels
    _exported_holds(export, out, seg, qtbot)


def test_a_failing_preview_is_one_red_line_not_a_traceback_per_slider_move(
    refine_setup, qtbot, monkeypatch
):
    from napari_livertumor._widgets import refine as refine_mod

    viewer, widget, seg, truth, liver = refine_setup

    def broken(*args, **kwargs):
        raise ValueError("contour blew up")

    monkeypatch.setattr(refine_mod, "refine_slice", broken)
    with qtbot.capture_exceptions() as caught:
        widget.iterations.value = widget.iterations.value + 5
        qtbot.waitUntil(lambda: "Preview failed" in widget.status.text(), timeout=10_000)
        qtbot.wait(200)
    assert "contour blew up" in widget.status.text()
    assert not caught


def test_opened_after_two_segment_runs_it_picks_the_shown_segmentation(make_napari_viewer):
    """It picked the hidden '(previous)' layer a re-run had moved aside, and Apply then said it
    was hidden."""
    viewer = make_napari_viewer()
    vol, labels, truth, liver = synthetic_case()
    _layers.add_ct_layer(viewer, vol, name="CT")
    old = _layers.add_labels_layer(viewer, labels, vol, "CT segmentation (previous)",
                                   ct_layer_name="CT")  # fmt: skip
    old.visible = False
    _layers.add_labels_layer(viewer, labels, vol, "CT segmentation", ct_layer_name="CT")
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine")
    assert widget.mask_combo.currentText() == "CT segmentation"


def test_apply_to_slice_clears_the_crumbs_it_leaves_but_not_a_lesion_going_on_above(
    refine_setup, qtbot, monkeypatch
):
    """Apply to slice left one-voxel tumor pieces that Inspect then counted as lesions (Apply
    to a lesion or to all cleared them)."""
    import napari_livertumor._widgets.refine as refine_mod

    viewer, widget, seg, truth, liver = refine_setup
    z = 6
    inside = np.argwhere(liver[z] & ~ndi.binary_dilation(seg.data[z] == 2, iterations=4))
    lone, joined = (tuple(int(v) for v in p) for p in (inside[0], inside[-1]))
    data = seg.data.copy()
    data[z + 1][joined] = 2  # a small lesion on the next slice up, which the piece continues
    seg.data = data

    def contour(image, tumor, liver_mask, spacing, cfg, should_cancel=None, notes=None):
        out = tumor.copy()
        out[lone] = True  # a crumb on its own
        out[joined] = True  # and one touching tumor on the slice above
        return out

    monkeypatch.setattr(refine_mod, "refine_slice", contour)
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert seg.data[z][lone] == 1 and seg.data[z][joined] == 2
    assert (
        "1 tumor piece(s) of a few voxels left by the contour were dropped" in widget.notes.text()
    )


def test_undo_reset_or_another_apply_wait_for_a_running_apply(refine_setup, qtbot):
    """With Apply to slice in a worker, an Undo (or a second Apply) clicked meanwhile made the
    running Apply's result be dropped as 'edited while refining'."""
    viewer, widget, seg, truth, liver = refine_setup
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    after_first = seg.data.copy()
    widget.apply_all_button.click()
    assert widget.busy
    for button in (widget.undo_button, widget.apply_slice_button, widget.reset_button):
        widget.status.setText("")
        button.click()  # while Apply to all runs
        assert "An Apply is running" in widget.status.text()
    _wait(qtbot, widget)
    assert widget.status.text().startswith(
        ("Applied to all lesions", "Refining all lesions changed")
    )
    assert len(widget.undo_steps()) == 2  # the slice, then all lesions: nothing undone meanwhile
    widget.undo_button.click()
    np.testing.assert_array_equal(seg.data, after_first)


def test_napari_new_labels_layer_does_not_take_the_refine_target(refine_setup, qtbot):
    """napari's New labels layer (empty, no segmentation) became the Tumor labels choice: the
    panel then said 'no tumor on this slice' over the tumor on screen."""
    viewer, widget, seg, truth, liver = refine_setup
    chosen = widget.mask_combo.currentText()
    viewer.add_labels(np.zeros(seg.data.shape, np.uint8), name="Labels", scale=seg.scale)
    widget.refresh_layers()
    assert widget.mask_combo.currentText() == chosen


def test_a_labels_file_opened_mid_refinement_is_said_not_taken_as_the_target(
    refine_setup, qtbot, tmp_path
):
    """Opening an earlier result's labels file (to compare) moved Tumor labels to it without a
    word: the status went blank, Undo greyed, and the next Apply went into the opened file."""
    from napari_livertumor.io.nifti import write_nifti

    viewer, widget, seg, truth, liver = refine_setup
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    assert widget.undo_button.isEnabled()
    vol = seg.metadata[_layers.CT_VOLUME]
    write_nifti(vol, tmp_path / "ct.nii.gz")
    write_nifti(np.asarray(seg.data), tmp_path / "ct_labels.nii.gz", reference=vol)
    [opened] = viewer.open(str(tmp_path / "ct_labels.nii.gz"), plugin="napari-livertumor")
    widget.refresh_layers()
    assert widget.mask_combo.currentText() == seg.name
    offered = [widget.mask_combo.itemText(i) for i in range(widget.mask_combo.count())]
    assert opened.name in offered
    assert f"Opened '{opened.name}'" in widget.status.text()
    assert widget.undo_button.isEnabled()


def test_unticking_live_preview_hides_the_outline_and_runs_no_pending_preview(refine_setup, qtbot):
    """The outline stayed after Live was unticked (over a tumor since erased), and a preview
    queued before the untick still ran and showed."""
    viewer, widget, *_ = refine_setup
    layer = widget.preview_layer()
    assert layer.visible
    count = widget.preview_count
    widget._preview_again = True  # (a preview asked for while one ran)
    widget.live.value = False
    assert not layer.visible and not widget._preview_again
    viewer.dims.set_current_step(0, 7)
    qtbot.wait(300)  # past the debounce
    assert widget.preview_count == count and not layer.visible


def test_an_undo_on_a_hidden_layer_is_caught_up_before_export_and_inspect_read_it(
    refine_setup, qtbot
):
    """napari's Undo on a hidden layer redraws nothing: no set_data, so the panels never heard
    of it and Export wrote "source: model" beside the record of the refinement undone."""
    from napari_livertumor._widgets.export import ExportWidget
    from napari_livertumor._widgets.refine import REFINED_HERE

    viewer, widget, seg, truth, liver = refine_setup
    export = ExportWidget(viewer)
    viewer.window.add_dock_widget(export)
    export.labels_combo.setCurrentText(seg.name)
    model_output = seg.data.copy()
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    assert seg.metadata[REFINED_HERE]
    seg.visible = False
    seg.undo()
    np.testing.assert_array_equal(seg.data, model_output)
    assert seg.metadata[REFINED_HERE]  # nothing told the panels (no redraw)
    export.folder.setText("")
    export.export()  # refused for want of a folder, but the record follows first
    assert "output folder" in export.status.text()
    assert seg.metadata[REFINED_HERE] == []
    assert widget.status.text() == "napari's Undo (Ctrl+Z) took back: all lesions."


def test_the_preview_is_put_back_on_top_when_a_layer_added_since_covers_it(refine_setup, qtbot):
    """A Segment rerun's layer lay above the preview: the outline was drawn under it, unseen.
    It goes back just above its own mask and CT, never over another scan loaded above them."""
    viewer, widget, seg, truth, liver = refine_setup
    widget.schedule_preview()
    qtbot.waitUntil(lambda: widget.preview_layer() is not None, timeout=20_000)
    layers = viewer.layers
    layers.move(layers.index(seg), len(layers))  # (as a rerun's new layer comes on top)
    other = viewer.add_image(np.zeros((2, 4, 4)), name="another CT")  # another scan over all
    assert layers.index(widget.preview_layer()) < layers.index(seg)
    count = widget.preview_count
    widget.schedule_preview()
    qtbot.waitUntil(lambda: widget.preview_count > count, timeout=20_000)
    preview = widget.preview_layer()
    assert layers.index(seg) < layers.index(preview) < layers.index(other)


def test_a_new_preview_is_not_drawn_over_another_scan_loaded_above_its_own(
    make_napari_viewer, qtbot
):
    """Made last, the preview lay over every layer: a first CT's outline was drawn over a
    second CT loaded above it (the fix only ever moved it up)."""
    viewer = make_napari_viewer()
    _two_scans(viewer, "CT1", "CT2")
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine")
    widget.mask_combo.setCurrentText("CT1 segmentation")
    qtbot.waitUntil(lambda: widget.preview_layer() is not None, timeout=10_000)
    qtbot.waitUntil(lambda: not widget._preview_busy, timeout=10_000)
    names = [ly.name for ly in viewer.layers]
    assert names.index(PREVIEW_NAME) == names.index("CT1 segmentation") + 1, names
    widget.mask_combo.setCurrentText("CT2 segmentation")  # and it follows the other scan's
    qtbot.waitUntil(lambda: [ly.name for ly in viewer.layers][-1] == PREVIEW_NAME, timeout=10_000)


def test_a_hidden_patients_outline_is_not_drawn_over_the_patient_gone_back_to(
    make_napari_viewer, qtbot
):
    """Going back to the first patient by hiding the second one's layers (their eyes), the
    cyan outline of the second one's tumor stayed drawn, recomputed at each scroll, over the
    first one's CT with an empty status line: none is drawn while the labels' CT is hidden,
    and the status says why as Apply's refusal does; shown again, it is back. The labels
    hidden alone keep their outline (hiding the overlay to see the CT's edges under it)."""
    viewer = make_napari_viewer()
    (_, seg_a), (ct_b, seg_b) = _two_scans(viewer, "A", "B")
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine")
    assert widget.mask_combo.currentText() == "B segmentation"  # the newest scan's
    qtbot.waitUntil(
        lambda: widget.preview_layer() is not None and widget.preview_layer().visible,
        timeout=10_000,
    )
    qtbot.waitUntil(lambda: not widget._preview_busy, timeout=10_000)
    count = widget.preview_count
    seg_b.visible = False  # the overlay hidden to see B's edges: the outline stays
    _wait_for_new_preview(qtbot, widget, count)
    qtbot.waitUntil(lambda: not widget._preview_busy, timeout=10_000)
    assert widget.preview_layer().visible and widget.preview_mask2d().any()
    assert "is hidden" not in widget.status.text()
    # back to A: B's CT hidden too, A's segmentation selected
    ct_b.visible = False
    viewer.layers.selection.active = seg_a
    said = (
        "'B' is hidden: show it (its eye in the layer list), or choose another CT layer, to "
        "see the outline."
    )
    qtbot.waitUntil(lambda: widget.status.text() == said, timeout=10_000)
    assert not widget.preview_layer().visible
    assert widget.preview_mask2d() is None or not widget.preview_mask2d().any()
    count = widget.preview_count
    viewer.dims.set_current_step(0, 5)  # the user scrolls in A: still none
    qtbot.wait(500)
    assert widget.preview_count == count and not widget.preview_layer().visible
    assert widget.status.text() == said
    # Apply refuses the hidden labels, in the same words
    widget.apply_slice_button.click()
    assert widget.status.text().startswith("'B segmentation' is hidden: show it (its eye in")
    assert widget.status.text().endswith("before applying.")

    seg_b.visible = True  # its labels back, its CT still hidden: no outline
    qtbot.wait(500)
    assert not widget.preview_layer().visible
    ct_b.visible = True  # shown again: the outline is back, the line goes
    _wait_for_new_preview(qtbot, widget, count)
    qtbot.waitUntil(lambda: widget.preview_layer().visible, timeout=10_000)
    assert widget.preview_mask2d().any()
    assert "is hidden" not in widget.status.text()


def test_an_apply_on_labels_whose_ct_is_hidden_says_so(make_napari_viewer, qtbot):
    """B's CT hidden, B's labels shown over A's CT: the outline is refused, but Apply to
    slice and Apply to all changed B's tumor by B's edges saying only "+233 / −1 tumor
    voxels", as if on the scan on view. Not refused: the result says its CT is hidden (amber),
    and the clause goes once that CT is shown again."""
    viewer = make_napari_viewer()
    _, (ct_b, seg_b) = _two_scans(viewer, "A", "B")
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine")
    assert widget.mask_combo.currentText() == "B segmentation"
    ct_b.visible = False
    qtbot.waitUntil(lambda: "is hidden" in widget.status.text(), timeout=10_000)
    clause = (
        " (Its CT 'B' is hidden: the contour followed that scan, not the one on view; show it "
        "to check the change.)"
    )
    before = seg_b.data.copy()
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert (seg_b.data != before).any()  # applied, not refused
    said = widget.status.text()
    assert said.startswith("Applied to slice 6 of 'B segmentation': +"), said
    assert said.endswith(clause), said
    assert widget.status._kind == "warning"
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    said = widget.status.text()
    assert said.startswith("Applied to all lesions of 'B segmentation': +"), said
    assert clause in said
    count = widget.preview_count
    ct_b.visible = True  # shown again: the clause goes, the rest stays said
    qtbot.waitUntil(lambda: clause not in widget.status.text(), timeout=10_000)
    # also once the outline is back (the preview's "is hidden" hint, cleared then, wiped the
    # whole line)
    _wait_for_new_preview(qtbot, widget, count)
    assert widget.status.text() == said.replace(clause, "")
    assert widget.status._kind == ("warning" if "earlier Apply" in said else "")


def test_an_apply_whose_ct_is_hidden_with_no_other_scan_on_view_says_no_other(refine_setup, qtbot):
    """One scan open, its CT hidden: Apply said the contour followed that scan "not the one
    on view", though there was no other one. Said only with another scan under the labels."""
    viewer, widget, seg, _, _ = refine_setup
    viewer.layers["CT"].visible = False
    qtbot.waitUntil(lambda: "is hidden" in widget.status.text(), timeout=10_000)
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    said = widget.status.text()
    assert said.startswith("Applied to slice 6 of 'CT segmentation': +"), said
    assert said.endswith(" (Its CT 'CT' is hidden: show it to check the change.)"), said


def test_an_apply_on_a_hidden_layer_keeps_its_line_over_the_hidden_outlines(refine_setup, qtbot):
    """The outline's "is hidden" line is said when an eye turns, not over what an Apply (or
    napari's Undo) said of the hidden labels since."""
    viewer, widget, seg, truth, liver = refine_setup
    viewer.layers[widget.ct_combo.currentText()].visible = False
    qtbot.waitUntil(lambda: "is hidden" in widget.status.text(), timeout=10_000)
    assert not widget.preview_layer().visible
    widget.status.setText("Applied to all lesions of 'CT segmentation': +1 / −0 tumor voxels.")
    widget.iterations.value = widget.iterations.value + 2  # a preview is asked for
    qtbot.wait(500)
    assert widget.status.text().startswith("Applied to all lesions")
    assert not widget.preview_layer().visible


def test_napari_undo_and_redo_take_an_apply_back_and_forth_exactly(refine_setup, qtbot):
    """Ctrl+Z after an Apply undid the stroke painted before it, on top of the refined mask
    (a mask of no state the user had seen), and the panel still offered to undo the Apply and
    Export still called the labels refined."""
    from napari_livertumor._widgets.refine import REFINED_HERE

    viewer, widget, seg, truth, liver = refine_setup
    model_output = seg.data.copy()
    seg.brush_size = 3
    seg.paint((6, 38, 52), 1)  # a hand trim of the lesion (napari's own history)
    seg.refresh()
    painted = seg.data.copy()
    assert (painted != model_output).any()
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    refined = seg.data.copy()
    assert (refined != painted).any() and len(widget.undo_steps()) == 1
    assert seg.metadata[REFINED_HERE]

    seg.undo()  # napari's Ctrl+Z: the Apply, exactly
    np.testing.assert_array_equal(seg.data, painted)
    assert len(widget.undo_steps()) == 0 and seg.metadata[REFINED_HERE] == []
    assert widget.status.text() == "napari's Undo (Ctrl+Z) took back: all lesions."
    seg.redo()  # Ctrl+Shift+Z: the Apply again
    np.testing.assert_array_equal(seg.data, refined)
    assert len(widget.undo_steps()) == 1 and seg.metadata[REFINED_HERE]
    assert widget.status.text() == "napari's Redo (Ctrl+Shift+Z) brought back: all lesions."
    seg.undo()
    seg.undo()  # and then the stroke before it
    np.testing.assert_array_equal(seg.data, model_output)
    # the stroke's undo moved no panel step: the line no longer tells of the Apply's undo
    assert widget.status.text() == ""
    seg.redo()
    seg.redo()
    np.testing.assert_array_equal(seg.data, refined)

    widget.undo_button.click()  # the panel's Undo is one of napari's steps too
    np.testing.assert_array_equal(seg.data, painted)
    assert len(widget.undo_steps()) == 0 and seg.metadata[REFINED_HERE] == []
    seg.undo()  # Ctrl+Z takes the panel's Undo back: refined again, the panel knows
    np.testing.assert_array_equal(seg.data, refined)
    assert len(widget.undo_steps()) == 1 and seg.metadata[REFINED_HERE]
    assert "took back the panel's Undo of: all lesions" in widget.status.text()
    seg.redo()  # and Ctrl+Shift+Z does that Undo again
    np.testing.assert_array_equal(seg.data, painted)
    assert "Redo (Ctrl+Shift+Z) undid again: all lesions" in widget.status.text()
    seg.undo()
    widget.reset_button.click()  # to the labels before the first Apply
    np.testing.assert_array_equal(seg.data, painted)
    seg.undo()  # and a Reset
    np.testing.assert_array_equal(seg.data, refined)
    assert len(widget.undo_steps()) == 1 and seg.metadata[REFINED_HERE]


def test_napari_undo_and_redo_through_a_long_mixed_sequence_keep_the_panel_in_step(
    refine_setup, qtbot
):
    """The panel judged by the voxels whether napari had undone a step: a stroke of the same
    values, a Reset whose result is an Apply's start, an Undo here then a new Apply, or a step
    on another layer left its Undo count and Export's record of the refinements wrong."""
    from napari_livertumor._widgets.refine import REFINED_HERE

    viewer, widget, seg, truth, liver = refine_setup
    states = []

    def state():
        return (
            seg.data.copy(),
            len(widget.undo_steps()),
            [e["applied_to"] for e in seg.metadata.get(REFINED_HERE) or []],
        )

    def snap():
        assert len(seg._undo_history) == len(states)  # one napari step per action
        states.append(state())

    states.append(state())
    seg.brush_size = 4
    seg.paint((6, 30, 30), 2)
    snap()
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    snap()
    seg.fill((6, 5, 5), 3)
    snap()
    seg.paint((8, 40, 50), 1)
    snap()
    widget.iterations.value = 30
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    snap()
    widget.undo_button.click()  # all lesions
    snap()
    widget.iterations.value = 12
    widget.apply_all_button.click()  # another try after the Undo
    _wait(qtbot, widget)
    snap()
    widget.reset_button.click()
    snap()
    widget.undo_button.click()  # the reset
    snap()
    assert [s[1:] for s in states] == [
        (0, []),
        (0, []),
        (1, ["slice 6"]),
        (1, ["slice 6"]),
        (1, ["slice 6"]),
        (2, ["slice 6", "all lesions"]),
        (1, ["slice 6"]),
        (2, ["slice 6", "all lesions"]),
        (3, []),
        (2, ["slice 6", "all lesions"]),
    ]
    for k in range(len(states) - 2, -1, -1):  # Ctrl+Z back to the start
        seg.undo()
        now = state()
        np.testing.assert_array_equal(now[0], states[k][0])
        assert now[1:] == states[k][1:], (k, now[1:], states[k][1:])
    for k in range(1, len(states)):  # Ctrl+Shift+Z forward to the end
        seg.redo()
        now = state()
        np.testing.assert_array_equal(now[0], states[k][0])
        assert now[1:] == states[k][1:], (k, now[1:], states[k][1:])
    seg.undo()  # the Undo of the reset
    seg.undo()  # the reset: the second Apply to all in effect again
    seg.undo()  # the second Apply to all
    assert len(widget.undo_steps()) == 1
    widget.apply_slice_button.click()  # a new step drops the Redo list: those are gone
    _wait(qtbot, widget)
    assert [e["applied_to"] for e in seg.metadata[REFINED_HERE]] == ["slice 6", "slice 6"]
    assert len(widget.undo_steps()) == 2

    # a stroke writing what an Apply wrote is no undo of it
    grown = np.nonzero(seg.data != states[0][0])
    seg.data_setitem(grown, states[0][0][grown])
    assert len(widget.undo_steps()) == 2


def test_napari_undo_on_a_layer_the_panel_no_longer_shows_is_followed(refine_setup, qtbot):
    from napari_livertumor._widgets.refine import REFINED_HERE

    viewer, widget, seg, truth, liver = refine_setup
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    other = viewer.add_labels(np.asarray(seg.data).copy(), name="copy", scale=seg.scale)
    widget.mask_combo.setCurrentText("copy")
    seg.undo()  # Ctrl+Z on the first layer, while the panel shows the other
    # (the panel's Undo takes back the steps of the layer it shows: none on "copy")
    assert seg.metadata[REFINED_HERE] == [] and widget.undo_steps() == []
    widget.mask_combo.setCurrentText("CT segmentation")
    assert widget.undo_steps() == []  # napari's Undo took it back: nothing left to undo
    widget.mask_combo.setCurrentText("copy")
    seg.redo()
    assert len(seg.metadata[REFINED_HERE]) == 1 and widget.undo_steps() == []
    assert other.metadata.get(REFINED_HERE) in (None, [])
    widget.mask_combo.setCurrentText("CT segmentation")
    assert len(widget.undo_steps()) == 1  # back in effect with napari's Redo


def test_the_slices_an_apply_note_names_are_the_sliders(monkeypatch):
    """With CTs of other extents loaded the layer's own slice 17 was the slider's 32: the
    notes said the layer's, Inspect and Segment the slider's."""
    from napari_livertumor._widgets import refine as refine_mod

    monkeypatch.setattr(refine_mod._layers, "slider_index", lambda viewer, layer, z: z + 15)
    note = "lesion kept unchanged: … (CNR 0.40 < min_contrast 1); it lies on slices 17–20, y 3"
    assert refine_mod._slider_slices(None, None, note).endswith("on slices 32–35, y 3")
    assert refine_mod._slider_slices(None, None, "… it lies on slice 4, centred") == (
        "… it lies on slice 19, centred"
    )


def test_a_closed_panels_steps_still_follow_napari_undo(refine_setup, qtbot):
    """The steps lived on the panel: closed, nothing followed Ctrl+Z on its layer, and Export
    wrote a refinement that was undone."""
    import gc

    from napari_livertumor._widgets.refine import REFINED_HERE

    viewer, widget, seg, truth, liver = refine_setup
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    assert seg.metadata[REFINED_HERE]
    viewer.window.remove_dock_widget(widget)
    widget.deleteLater()
    del widget
    qtbot.wait(50)
    gc.collect()
    seg.undo()
    assert seg.metadata[REFINED_HERE] == []
    seg.redo()
    assert len(seg.metadata[REFINED_HERE]) == 1
    again = RefineWidget(viewer)  # a new panel: undoes the step, and follows napari's Undo
    viewer.window.add_dock_widget(again, name="Refine again")
    assert len(again.undo_steps()) == 1
    again.undo_button.click()
    assert seg.metadata[REFINED_HERE] == []
    seg.undo()  # Ctrl+Z of that Undo
    assert len(seg.metadata[REFINED_HERE]) == 1 and len(again.undo_steps()) == 1


def test_an_undo_that_wrote_nothing_stands_with_the_stroke_that_did_it(refine_setup, qtbot):
    from napari_livertumor._widgets.refine import REFINED_HERE

    viewer, widget, seg, truth, liver = refine_setup
    start = seg.data.copy()
    widget.apply_slice_button.click()
    _wait(qtbot, widget)
    changed = np.nonzero(seg.data != start)
    seg.data_setitem(changed, start[changed])  # every voxel of it painted back by hand
    widget.undo_button.click()  # writes nothing
    assert widget.undo_steps() == [] and seg.metadata[REFINED_HERE] == []
    seg.undo()  # Ctrl+Z of the stroke: the Apply's voxels, and the Apply, are back
    assert (seg.data != start).any()
    assert len(widget.undo_steps()) == 1 and len(seg.metadata[REFINED_HERE]) == 1


def test_an_apply_that_ends_during_a_brush_stroke_waits_for_its_end(refine_setup, qtbot):
    """Written inside the stroke's history, one Ctrl+Z took back both and the panel still
    listed the Apply (Esc wiped it)."""
    from napari_livertumor._widgets.refine import REFINED_HERE

    viewer, widget, seg, truth, liver = refine_setup
    start = seg.data.copy()
    with seg.block_history():  # a drag being drawn
        seg.paint((2, 10, 10), 1)
        widget.apply_all_button.click()
        qtbot.waitUntil(
            lambda: "Waiting for the brush stroke" in widget.status.text(), timeout=30_000
        )
        assert widget.undo_steps() == []
        assert not widget.reset_button.isEnabled()  # nothing applied yet: nothing to reset
        widget.reset_to_model_output()  # (a script's call)
        assert "Finish the brush stroke" in widget.status.text()
    qtbot.waitUntil(lambda: len(widget.undo_steps()) == 1, timeout=20_000)
    refined = seg.data.copy()
    seg.undo()  # the Apply alone
    assert seg.metadata[REFINED_HERE] == [] and widget.undo_steps() == []
    assert (seg.data != refined).any()
    seg.undo()  # then the stroke
    np.testing.assert_array_equal(seg.data, start)


def test_export_is_refused_while_an_apply_waits_for_a_brush_stroke(refine_setup, qtbot, tmp_path):
    """An Apply whose result waits for a stroke to end has not written it yet: Export then
    would write the labels from before it, unsaid. Refused, said; once written, exported."""
    viewer, widget, seg, truth, liver = refine_setup
    export, out = _export_panel_beside(refine_setup, tmp_path)
    before = seg.data.copy()
    with seg.block_history():  # a drag being drawn
        widget.apply_all_button.click()
        qtbot.waitUntil(
            lambda: "Waiting for the brush stroke" in widget.status.text(), timeout=30_000
        )
        export.export_button.click()
        said = export.status.text()
        assert "Refine is still applying its contours to 'CT segmentation'" in said
        assert "when the brush stroke being drawn on them ends" in said
        assert "cancel" not in said  # (the Apply has ended: nothing to cancel)
        assert not out.exists() or not any(out.iterdir())
    qtbot.waitUntil(lambda: len(widget.undo_steps()) == 1, timeout=20_000)
    assert not np.array_equal(seg.data, before)
    _exported_holds(export, out, seg, qtbot)


def test_an_apply_held_for_a_stroke_that_then_fails_is_said_not_a_traceback(
    refine_setup, qtbot, monkeypatch
):
    """The held result is written from a timer, outside the job's own error handling: an
    error there went to napari's traceback dialog and left Export refusing the labels."""
    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets import refine as refine_mod

    viewer, widget, seg, truth, liver = refine_setup
    widget.min_contrast.value = 0.0  # (the contour moves here: a change to write)
    before = seg.data.copy()
    with seg.block_history():  # a drag being drawn
        widget.apply_all_button.click()
        qtbot.waitUntil(
            lambda: "Waiting for the brush stroke" in widget.status.text(), timeout=30_000
        )

        def broken(*args, **kwargs):
            raise ValueError("no room for the tumor")

        monkeypatch.setattr(refine_mod, "write_tumor", broken)
    with qtbot.capture_exceptions() as caught:
        qtbot.waitUntil(lambda: "could not be written" in widget.status.text(), timeout=20_000)
    assert not caught
    assert "no room for the tumor" in widget.status.text()
    np.testing.assert_array_equal(seg.data, before)
    assert not _layers.refining(seg)  # Export goes ahead


def test_steps_beyond_the_panels_reach_still_follow_napari_until_it_drops_them(
    refine_setup, qtbot, monkeypatch
):
    from napari_livertumor._widgets import refine as refine_mod
    from napari_livertumor._widgets.refine import REFINED_HERE

    monkeypatch.setattr(refine_mod, "UNDO_STEPS", 2)
    viewer, widget, seg, truth, liver = refine_setup
    start = seg.data.copy()
    for z in (5, 6, 7):
        viewer.dims.set_current_step(0, z)
        widget.apply_slice()
        _wait(qtbot, widget)
    assert len(widget.undo_steps()) == 2  # the panel's Undo reaches two
    assert len(seg.metadata[REFINED_HERE]) == 3
    for _ in range(3):
        seg.undo()  # napari's reaches all three
    np.testing.assert_array_equal(seg.data, start)
    assert seg.metadata[REFINED_HERE] == [] and widget.undo_steps() == []
    for _ in range(3):
        seg.redo()
    assert len(seg.metadata[REFINED_HERE]) == 3
    for k in range(seg._history_limit + 5):  # strokes until the Applies drop off its list
        seg.data_setitem((np.array([0]), np.array([0]), np.array([0])), 1 + k % 2)
    assert len(seg.metadata[REFINED_HERE]) == 3  # they stand
    own = [st for st in refine_mod._STEPS.steps if st.target is seg]
    assert len(own) == 2  # the first, out of reach of both, let go
    widget.undo_button.click()
    widget.undo_button.click()  # the panel's Undo still takes back the last two
    assert seg.metadata[REFINED_HERE] == [seg.metadata[REFINED_HERE][0]]
    assert seg.metadata[REFINED_HERE][0]["applied_to"] == "slice 5"


def test_an_apply_waiting_for_a_stroke_is_dropped_when_the_panel_closes(refine_setup, qtbot):
    viewer, widget, seg, truth, liver = refine_setup
    start = seg.data.copy()
    with seg.block_history():
        widget.apply_slice_button.click()
        qtbot.waitUntil(
            lambda: "Waiting for the brush stroke" in widget.status.text(), timeout=30_000
        )
        widget.panel_closed()
    qtbot.wait(300)
    np.testing.assert_array_equal(seg.data, start)


def test_a_layers_array_replaced_by_another_shape_drops_its_steps_and_refinements(
    refine_setup, qtbot
):
    """Replaced by another image (another shape), the panel still offered Undo (1) and Export
    wrote the refinement of the array before; napari's Convert datatype (the same values in a
    new array, its history kept) must keep them."""
    from napari_livertumor._widgets.refine import REFINED_HERE

    viewer, widget, seg, truth, liver = refine_setup
    widget.apply_all_button.click()
    _wait(qtbot, widget)
    assert len(widget.undo_steps()) == 1
    seg.data = np.asarray(seg.data).astype(np.int32)  # napari's Convert datatype
    assert len(widget.undo_steps()) == 1 and len(seg.metadata[REFINED_HERE]) == 1
    seg.undo()  # its history kept: Ctrl+Z takes the Apply back, followed
    assert widget.undo_steps() == [] and seg.metadata[REFINED_HERE] == []
    seg.redo()
    assert len(widget.undo_steps()) == 1 and len(seg.metadata[REFINED_HERE]) == 1
    seg.data = np.zeros((4, 8, 8), np.int32)  # another image
    assert widget.undo_steps() == [] and seg.metadata[REFINED_HERE] == []
    assert widget.undo_button.text() == "Undo"


def test_the_preview_shows_what_apply_to_slice_writes_without_its_crumbs(
    refine_setup, qtbot, monkeypatch
):
    """The preview outlined a crumb of a few pixels that Apply to slice then dropped: the
    tooltip says the outline is what Apply to slice writes."""
    import napari_livertumor._widgets.refine as refine_mod

    viewer, widget, seg, truth, liver = refine_setup
    z = 6
    crumb = (int(38 / SPACING[1]), int(15 / SPACING[2]))  # in the liver, 30 mm off the lesion
    assert liver[z][crumb] and not truth[z][crumb]
    real = refine_mod.refine_slice

    def with_a_crumb(ct2d, tumor, liver2d, spacing, cfg, **kw):
        out = real(ct2d, tumor, liver2d, spacing, cfg, **kw).copy()
        out[crumb] = True  # one pixel, touching no tumor here or on the slices around
        return out

    monkeypatch.setattr(refine_mod, "refine_slice", with_a_crumb)
    count = widget.preview_count
    widget.schedule_preview()
    _wait_for_new_preview(qtbot, widget, count)
    layer = widget.preview_layer()
    y0, x0 = layer.metadata["offset"]
    shown = np.zeros(layer.metadata["shape2d"], bool)
    crop = np.asarray(layer.data)[0].astype(bool)
    shown[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    assert not shown[crumb]
    widget.apply_slice()
    _wait(qtbot, widget)
    np.testing.assert_array_equal(np.asarray(seg.data[z]) == 2, shown)


def test_lesions_under_a_tenth_of_a_millilitre_are_listed_by_their_voxels():
    """Three spots of 1, 3 and 6 voxels were all listed as "0.0 mL"."""
    from napari_livertumor._widgets.refine import _size_text

    assert _size_text(1, 0.0016) == "1 voxel"
    assert _size_text(6, 0.0016) == "6 voxels"
    assert _size_text(100, 0.0016) == "0.2 mL"


def test_a_preview_note_of_a_lesion_names_the_slice_on_view():
    """A faint lesion of the live preview was placed "centred at y 132, x 76": pixel
    positions, with no slice a radiologist could go back to."""
    from types import SimpleNamespace

    from napari_livertumor._widgets.refine import _on_this_slice

    viewer = SimpleNamespace(dims=SimpleNamespace(current_step=(43, 0, 0)))
    note = "lesion kept unchanged: too little contrast (CNR 0.55 < min contrast 1); it lies "
    assert _on_this_slice(viewer, note + "centred at y 132, x 76") == (
        note + "on slice 43 (this one), centred at y 132, x 76"
    )
    three_d = note + "on slices 37–48, centred at y 132, x 76"  # an Apply's: its own slices
    assert _on_this_slice(viewer, three_d) == three_d


def test_a_data_box_with_open_slices_has_its_world_box():
    """A step's box can hold open slices (a whole slice's ``slice(None)``): they span the
    layer's extent, not a TypeError from ``None - 1`` in Undo's message."""
    from types import SimpleNamespace

    from napari_livertumor._widgets.refine import _box_world

    layer = SimpleNamespace(data=np.zeros((5, 6, 7)), data_to_world=lambda c: np.asarray(c) * 2)
    box = _box_world(layer, (slice(2, 3), slice(None), slice(None)))
    np.testing.assert_array_equal(box, [[4, 0, 0], [4, 10, 12]])


def test_tumor_erased_while_apply_all_runs_is_not_written_over(refine_setup, qtbot, monkeypatch):
    """An edit of the tumor itself made while Apply to all runs wins: the Apply's result is
    dropped with a word (painting a false lesion back to liver meanwhile must not be undone
    by the contour's result)."""

    def paint_tumor_back(data):  # the user paints the tumor back to liver
        data[data == 2] = 1

    widget, seg, before = _edit_while_apply_all_runs(
        refine_setup, qtbot, monkeypatch, paint_tumor_back
    )
    np.testing.assert_array_equal(seg.data, before)
    assert widget.status.text().startswith("'CT segmentation' was edited while refining")
    assert len(widget.undo_steps()) == 0


def test_tab_from_the_settings_buttons_goes_to_the_named_notes_not_an_empty_stop(
    make_napari_viewer, qtbot
):
    """With Refine's notes shown, Tab after Save settings… stopped on the box they scroll in:
    no name, no focus mark, a press that seemed to do nothing; the notes then had no name for
    a screen reader either (the status line's is "Refine status")."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    vol, labels, truth, liver = synthetic_case()
    labels[labels == 2] = 1  # no tumor: the notes say so
    _layers.add_ct_layer(viewer, vol, name="CT")
    _layers.add_labels_layer(viewer, labels, vol, "CT segmentation", ct_layer_name="CT")
    viewer.dims.set_current_step(0, 6)
    _, widget = viewer.window.add_plugin_dock_widget("napari-livertumor", "3 Refine tumor")
    qtbot.waitUntil(lambda: widget.notes_box.isVisible(), timeout=10_000)
    window = viewer.window._qt_window
    window.raise_()
    window.activateWindow()  # (no window manager under Xvfb: the focus needs an active window)
    QApplication.setActiveWindow(window)
    qtbot.waitUntil(window.isActiveWindow, timeout=20_000)
    widget.save_button.setFocus(Qt.TabFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is widget.save_button, timeout=20_000)
    qtbot.keyClick(widget.save_button, Qt.Key_Tab)
    assert QApplication.focusWidget() is widget.notes
    assert widget.notes.accessibleName() == "Refine notes"


def _held_preview(monkeypatch, calls: list, release):
    """The panel's preview contour held until ``release`` is set or its stop flag is (the
    panel's ``should_cancel``), as a heavy one at 60 iterations on a 512² slice takes
    seconds. ``calls`` gets "started", then "stopped" or "released"."""
    import threading
    import time

    import napari_livertumor._widgets.refine as refine_widget
    from napari_livertumor.errors import Cancelled

    real = refine_widget.refine_slice
    assert isinstance(release, threading.Event)

    def held(ct, tumor, liver, spacing, cfg, should_cancel=None, notes=None):
        calls.append("started")
        end = time.monotonic() + 8
        while not release.is_set() and time.monotonic() < end:
            if should_cancel is not None and should_cancel():
                calls.append("stopped")
                raise Cancelled("stopped")
            time.sleep(0.01)
        calls.append("released")
        return real(ct, tumor, liver, spacing, cfg, should_cancel=should_cancel, notes=notes)

    monkeypatch.setattr(refine_widget, "refine_slice", held)


def test_closing_the_panel_stops_the_preview_computing(refine_setup, qtbot, monkeypatch):
    """The preview ran in a plain worker nothing stopped: closed mid-preview, its contour ran
    to its end (seconds at heavy settings) for nobody."""
    import threading

    viewer, widget, seg, truth, liver = refine_setup
    calls, release = [], threading.Event()
    _held_preview(monkeypatch, calls, release)
    widget.iterations.value = widget.iterations.value + 5
    qtbot.waitUntil(lambda: calls == ["started"], timeout=10_000)
    dock = widget.parent()
    widget.setParent(None)  # what napari's close button on the dock does
    qtbot.waitUntil(lambda: "stopped" in calls, timeout=3_000)
    qtbot.waitUntil(lambda: not widget._preview_busy, timeout=10_000)
    assert "Preview failed" not in widget.status.text()  # a stop is no failure
    release.set()
    widget.setParent(dock)  # docked again: the preview comes back
    qtbot.waitUntil(
        lambda: widget.preview_layer() is not None and widget.preview_layer().visible,
        timeout=10_000,
    )


def test_a_change_during_a_heavy_preview_stops_it_and_computes_the_new_one(
    refine_setup, qtbot, monkeypatch
):
    """A setting changed while a heavy preview computed (seconds at 60 iterations on a 512²
    slice) waited for that one to run to its end, an outline of settings no longer in use,
    before the new one started."""
    import threading

    viewer, widget, seg, truth, liver = refine_setup
    calls, release = [], threading.Event()
    _held_preview(monkeypatch, calls, release)
    count = widget.preview_count
    widget.iterations.value = widget.iterations.value + 5
    qtbot.waitUntil(lambda: calls == ["started"], timeout=10_000)
    widget.iterations.value = widget.iterations.value + 1  # changed again meanwhile
    qtbot.waitUntil(lambda: calls[:3] == ["started", "stopped", "started"], timeout=3_000)
    assert "Preview failed" not in widget.status.text()  # a stop is no failure
    release.set()
    _wait_for_new_preview(qtbot, widget, count)
    assert calls == ["started", "stopped", "started", "released"]
    assert widget.preview_count == count + 1  # the stopped one was never drawn
    assert widget.preview_layer().opacity == 1.0


def test_at_exit_a_computing_preview_is_stopped_and_waited_for(refine_setup, qtbot, monkeypatch):
    """A script that closed napari while a slice preview computed, then exited, aborted
    (exit 134): "wrapped C/C++ object of type WorkerBaseSignals has been deleted". The exit
    hook waited for the panels' jobs only, not for the preview's plain worker."""
    import threading

    from napari_livertumor._widgets import _jobs

    viewer, widget, seg, truth, liver = refine_setup
    calls, release = [], threading.Event()
    _held_preview(monkeypatch, calls, release)
    widget.iterations.value = widget.iterations.value + 5
    qtbot.waitUntil(lambda: calls == ["started"], timeout=10_000)
    _jobs._finish_jobs_at_exit()  # what the interpreter runs on its way out
    assert calls == ["started", "stopped"]  # stopped, and its thread ended, before it returned
    release.set()
    qtbot.waitUntil(lambda: not widget._preview_busy, timeout=10_000)
    assert "Preview failed" not in widget.status.text()
    count = widget.preview_count  # the next preview runs as before
    widget.iterations.value = widget.iterations.value + 1
    _wait_for_new_preview(qtbot, widget, count)


def test_an_outline_being_updated_is_dimmed_and_said(refine_setup, qtbot, monkeypatch):
    """A heavy preview took 7–16 s, and meanwhile the old outline stood beside the new
    settings unmarked while Apply to slice ("Write the preview outline…") wrote the new
    settings' result (549 px for the 272 px shown)."""
    import threading

    viewer, widget, seg, truth, liver = refine_setup
    layer = widget.preview_layer()
    assert layer.opacity == 1.0 and "Updating" not in widget.notes.text()
    tip = widget.apply_slice_button.toolTip()
    assert "with these settings" in tip and "dimmed while" in tip
    calls, release = [], threading.Event()
    _held_preview(monkeypatch, calls, release)
    count = widget.preview_count
    widget.iterations.value = widget.iterations.value + 5
    qtbot.waitUntil(lambda: layer.opacity < 0.5, timeout=10_000)
    assert layer.visible  # still drawn, dimmed
    assert widget.notes.text().startswith(
        "Updating the outline… The dimmed one is from before the last change: Apply to slice "
        "writes the new one."
    )
    assert not widget.notes_box.isHidden()
    release.set()
    _wait_for_new_preview(qtbot, widget, count)
    assert layer.opacity == 1.0 and "Updating" not in widget.notes.text()
    # a quick preview is never marked (no flicker at each step of a slider)
    count = widget.preview_count
    widget.iterations.value = widget.iterations.value - 1
    _wait_for_new_preview(qtbot, widget, count)
    qtbot.wait(400)  # past the mark's delay
    assert layer.opacity == 1.0 and "Updating" not in widget.notes.text()


def test_text_a_number_box_did_not_take_goes_back_to_the_value_in_use(refine_setup, qtbot):
    """λ typed "0" (under its 0.01) stayed shown while the preview and Apply used λ 1; a
    whole-number box kept a lone "-" even after the focus left it."""
    viewer, widget, seg, truth, liver = refine_setup
    lam = widget.lambda1.native
    lam.lineEdit().setText("0")  # typed, not taken
    assert widget.lambda1.value == 1.0
    hu = widget.hu_low.native
    low = widget.hu_low.value
    hu.lineEdit().setText("-")
    hu.editingFinished.emit()  # what Qt sends when the focus leaves the box
    assert hu.lineEdit().text() == str(low)
    hu.lineEdit().setText("--5")  # (its validator takes it; int() does not)
    hu.editingFinished.emit()
    assert hu.lineEdit().text() == str(low)
    # a button clicked without taking the focus (macOS) ends no editing: Apply does it first
    widget.apply_slice_button.click()
    assert lam.lineEdit().text() == lam.textFromValue(1.0) == "1.00"
    _wait(qtbot, widget)


def test_return_on_text_a_number_box_did_not_take_puts_the_value_in_use_back(refine_setup, qtbot):
    """HU low typed "-" and Return: superqt's whole-number box read "-" with int() on the key
    and raised (an error in the terminal, a plain script aborted) before the editing ended, so
    "-" stayed shown beside the -100 in use. Real keys, Return and the keypad's Enter, in every
    whole-number box (a slider's number too) and in float boxes (λ "0" and ".", balloon "-")."""
    from qtpy.QtCore import Qt

    viewer, widget, seg, truth, liver = refine_setup
    whole = [widget.hu_low.native, widget.hu_high.native, widget.tumor_value.native]
    whole.append(widget.iterations._widget._readout_widget)  # (a Slider's number box)
    cases = [(box, text) for box in whole for text in ("-", "--5")]
    cases += [(widget.lambda1.native, text) for text in ("0", ".")]
    cases.append((widget.balloon._widget._readout_widget, "-"))  # (-5 to 5)
    for box, text in cases:
        for key in (Qt.Key_Return, Qt.Key_Enter):
            value = box.value()
            box.lineEdit().selectAll()
            qtbot.keyClicks(box, text)
            assert box.lineEdit().text() == text  # typed, not taken
            target = box if key == Qt.Key_Return else box.lineEdit()  # (as a script sends it)
            qtbot.keyClick(target, key)  # (pytest-qt fails the test on an exception in Qt)
            assert box.value() == value
            shown = box.textFromValue(value) if hasattr(box, "textFromValue") else str(value)
            assert box.lineEdit().text() == shown, (text, key)
    assert widget.hu_low.value == -100 and widget.lambda1.value == 1.0
    qtbot.waitUntil(lambda: not widget._preview_busy, timeout=10_000)


def test_choosing_a_ct_takes_up_its_own_labels_and_old_notes_go(
    make_napari_viewer, qtbot, monkeypatch
):
    """Two patients open, the second one's layers hidden and the first one's CT chosen by hand:
    the second one's labels stayed chosen (a red "not the scan" status), beside the note of the
    second one's preview ("no tumor on this slice")."""
    import napari_livertumor._widgets.refine as refine_widget

    viewer = make_napari_viewer()
    (ct_a, seg_a), (ct_b, seg_b) = _two_scans(viewer, "A", "B")
    real = refine_widget.refine_slice

    def noting(ct, tumor, liver, spacing, cfg, notes=None, **kw):
        notes.append("a note of this preview")
        return real(ct, tumor, liver, spacing, cfg, notes=notes, **kw)

    monkeypatch.setattr(refine_widget, "refine_slice", noting)
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine")
    assert widget.mask_combo.currentText() == "B segmentation"
    qtbot.waitUntil(lambda: "a note of this preview" in widget.notes.text(), timeout=10_000)
    qtbot.waitUntil(lambda: not widget._preview_busy, timeout=10_000)
    ct_b.visible = seg_b.visible = False
    count = widget.preview_count
    widget.ct_combo.setCurrentText("A")  # by hand
    assert widget.mask_combo.currentText() == "A segmentation"
    _wait_for_new_preview(qtbot, widget, count)
    assert widget.preview_layer().visible
    assert widget.status._kind != "error", widget.status.text()
    assert widget.notes.text() == "⚠ a note of this preview"  # (A's outline's)
    # a CT with no labels of its own: the labels stay, refused, and the last outline's notes go
    vol, *_ = synthetic_case(shape=(12, 80, 80))
    viewer.add_image(vol.array, name="C", scale=SPACING)  # (a scan of no patient: not followed)
    widget.ct_combo.setCurrentText("C")
    assert widget.mask_combo.currentText() == "A segmentation"
    qtbot.waitUntil(lambda: widget.status._kind == "error", timeout=10_000)
    assert "not the same grid" in widget.status.text()
    assert widget.notes.text() == ""
