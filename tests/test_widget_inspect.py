"""The Inspect widget: measure the labels, jump to a lesion, compare with the ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_data import tiny_ct

from napari_livertumor._widgets import _layers
from napari_livertumor._widgets.inspect import InspectWidget, overlap_scores
from napari_livertumor.stats import diameter_shown, volume_shown

pytestmark = pytest.mark.gui
pytest.importorskip("napari_livertumor.stats", reason="stats have not landed yet")


@pytest.fixture
def viewer_with_labels(make_napari_viewer):
    viewer = make_napari_viewer()
    vol, truth = tiny_ct()
    _layers.add_ct_layer(viewer, vol, name="tiny CT")
    _layers.add_labels_layer(viewer, truth, vol, "tiny CT ground truth", role="ground_truth")
    pred = np.where(truth > 0, 1, 0).astype(np.uint8)
    pred[truth == 2] = 2
    pred[2:4, 10:13, 20:23] = 2  # a second, small lesion near the top
    _layers.add_labels_layer(viewer, pred, vol, "tiny CT segmentation", ct_layer_name="tiny CT")
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, vol, pred, truth


def test_cancel_stops_measuring_between_lesions(viewer_with_labels, qtbot, monkeypatch):
    """Cancel only threw the figures away once every lesion (a large scan's: seconds) and the
    Dice were done."""
    import threading

    from napari_livertumor import stats

    viewer, widget, *_ = viewer_with_labels
    started, go_on, calls = threading.Event(), threading.Event(), []
    measure = stats.longest_diameter_mm

    def slow(*args, **kwargs):
        calls.append(1)
        started.set()
        go_on.wait(20)
        return measure(*args, **kwargs)

    monkeypatch.setattr(stats, "longest_diameter_mm", slow)
    widget.measure_button.click()
    qtbot.waitUntil(started.is_set, timeout=20_000)
    widget.jobs[widget.measure_button].started_at -= 1  # a later click, not a double-click's
    widget.measure_button.click()  # "Cancel" now
    go_on.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert calls == [1]  # the second lesion was never measured
    assert widget.stats is None and "Cancelled" in widget.status.text()


def test_measure_shows_volumes_and_lesions(viewer_with_labels, qtbot):
    viewer, widget, vol, pred, _ = viewer_with_labels
    assert widget.labels_combo.currentText() == "tiny CT segmentation"
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)

    liver_ml = round(np.count_nonzero(pred) * vol.voxel_volume_ml, 3)  # as the stats keep it
    # as Segment and the command line say it (one decimal from 1 mL, two below)
    assert widget.volume_table.item(0, 1).text() == volume_shown(liver_ml)
    assert widget.volume_table.item(4, 1).text() == "2"
    # the whole liver, and the liver without its tumor (the SEG's Liver segment): both said
    parenchyma = round(np.count_nonzero(pred == 1) * vol.voxel_volume_ml, 3)
    assert widget.volume_table.item(0, 0).text() == "Liver incl. tumor (mL)"
    assert widget.volume_table.item(1, 1).text() == volume_shown(parenchyma)
    assert "DICOM SEG" in widget.volume_table.item(1, 0).toolTip()
    assert widget.lesion_table.rowCount() == 2
    # the small lesion is listed second, with its slice range and both diameters
    assert widget.lesion_table.item(1, 4).text() == "2–3"
    second = widget.stats["lesions"][1]
    shown = diameter_shown(second["axial_diameter_mm"])
    assert widget.lesion_table.item(1, 3).text() == f"{shown:.1f}"
    # the CT is on the labels' grid: each lesion's attenuation and its contrast to the liver
    assert not widget.lesion_table.isColumnHidden(5) and not widget.lesion_table.isColumnHidden(6)
    first = widget.stats["lesions"][0]
    on_ct = vol.array[pred == 2].mean()  # both lesions
    assert abs(widget.stats["tumor_mean_hu"] - on_ct) < 0.1
    assert widget.lesion_table.item(0, 5).text() == f"{first['mean_hu']:.0f}"
    contrast = first["liver_contrast_hu"]
    assert widget.lesion_table.item(0, 6).text() == ("" if contrast is None else f"{contrast:+.0f}")


def test_the_lesion_list_is_used_from_the_keyboard(viewer_with_labels, qtbot):
    """Jumping to a lesion answered a mouse click only: the arrow keys moved the list's row
    and the view stayed where it was."""
    from qtpy.QtCore import Qt

    viewer, widget, vol, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    start = viewer.dims.point[0]  # filling the list moved nothing
    table = widget.lesion_table
    table.setCurrentCell(0, 0)
    qtbot.keyClick(table, Qt.Key_Down)
    assert table.currentRow() == 1
    second = widget.stats["lesions"][1]
    z_index = round((viewer.dims.point[0] - viewer.layers["tiny CT"].translate[0]) / vol.spacing[0])
    assert z_index == second["slice"] and viewer.dims.point[0] != start
    assert str(viewer.layers["lesion marker"].text.values) == "lesion 2"
    assert "Lesion 2: slice" in widget.status.text()


def test_clicking_a_lesion_jumps_to_its_slice(viewer_with_labels, qtbot):
    viewer, widget, vol, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    widget.lesion_table.cellClicked.emit(1, 0)  # the user clicks the second lesion
    z_world = viewer.dims.point[0]
    z_index = round((z_world - viewer.layers["tiny CT"].translate[0]) / vol.spacing[0])
    assert z_index in (2, 3)
    # ... and the lesion is ringed and numbered there (the view's centre did not say which of
    # two close lesions the row is); the labels stay the layer painted on
    marker = viewer.layers["lesion marker"]
    second = widget.stats["lesions"][1]
    np.testing.assert_allclose(marker.data, [[second["slice"], *second["centroid_zyx"][1:]]])
    assert str(marker.text.values) == "lesion 2" and marker.visible
    assert "ringed in 'lesion marker'" in widget.status.text()
    assert viewer.layers.selection.active is viewer.layers["tiny CT segmentation"]
    widget.lesion_table.cellClicked.emit(0, 0)  # one ring, moved
    assert len(marker.data) == 1 and str(marker.text.values) == "lesion 1"
    assert [ly.name for ly in viewer.layers].count("lesion marker") == 1
    widget.measure_button.click()  # new figures: the ring numbered the old ones
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert not marker.visible
    # the status bar names the class under the cursor, not a bare number
    seg = viewer.layers["tiny CT segmentation"]
    z = round(seg.world_to_data(viewer.dims.point)[0])  # (napari reads the slice shown)
    tumor_voxel = [z, *np.argwhere(seg.data[z] == 2)[0]]
    assert seg._get_properties(tumor_voxel) == ["class: tumor"]


def test_the_lesion_ring_goes_with_its_segmentation_and_with_the_panel(viewer_with_labels, qtbot):
    """The ring stayed in the layer list, hidden, after the segmentation it ringed a lesion
    of was removed, and after the panel was closed: clutter over the next patient."""
    viewer, widget, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    widget.go_to_lesion(0)
    assert "lesion marker" in viewer.layers
    viewer.layers.remove("tiny CT segmentation")
    qtbot.waitUntil(lambda: "lesion marker" not in viewer.layers, timeout=20_000)
    assert widget._marker is None  # let go (the removed ring stayed alive through the panel)
    widget.panel_closed()  # (with no ring there: nothing to do)
    assert "tiny CT" in viewer.layers


def test_the_ring_is_drawn_over_layers_added_since_it_was_made(viewer_with_labels, qtbot):
    """Made while the first scan lay on top, the ring stayed under a second scan's CT (and
    under a rerun's result): the status said 'ringed' round nothing to be seen."""
    viewer, widget, vol, pred, truth = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    widget.go_to_lesion(0)
    viewer.add_image(np.zeros(vol.shape, np.int16), scale=vol.napari_scale, name="other scan")
    assert viewer.layers[-1].name == "other scan"
    widget.go_to_lesion(1)
    assert viewer.layers[-1].name == "lesion marker" and viewer.layers[-1].visible


def test_after_a_rerun_the_figures_of_the_previous_labels_are_not_shown_as_the_new_result(
    viewer_with_labels, qtbot
):
    """A rerun moved the measured labels aside as '(previous)' and its result took their name:
    the picker's text did not change, so the painted labels' figures stayed, not greyed, under
    the new result's name, and Copy took them without a note (a jump then showed the hidden
    '(previous)' again). Edits to the new result went unseen too."""
    viewer, widget, vol, pred, truth = viewer_with_labels
    old = viewer.layers["tiny CT segmentation"]
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    old.paint((8, 24, 24), 2)  # the user paints tumor, and measures again
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.stats is not None
    from napari_livertumor._widgets.segment import _keep_previous

    assert _keep_previous(viewer, old.name, "tiny CT")[0] == "tiny CT segmentation (previous)"
    new = _layers.add_labels_layer(
        viewer, pred.copy(), vol, "tiny CT segmentation", ct_layer_name="tiny CT"
    )
    assert widget.labels_combo.currentText() == new.name  # (the rerun's, under its name)
    assert widget.stats is None and widget.volume_table.rowCount() == 0
    assert widget.status.text() == "Click Measure for the figures of 'tiny CT segmentation'."
    assert widget.copy_results() == ""
    widget.go_to_lesion(0)  # nothing listed: nothing shown
    assert not old.visible and new.visible
    assert viewer.layers.selection.active is new
    # the new result's own figures, and its edits followed
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.status.text() == "Measured 'tiny CT segmentation'."
    new.paint((8, 24, 24), 0)
    assert "The labels were edited" in widget.status.text()


def test_a_jump_in_3d_shows_the_tumor_alone_and_2d_gets_every_label_back(viewer_with_labels, qtbot):
    """In 3D each label is a surface: the liver's hid the tumor from every side, and the jump
    centred the view on nothing to be seen."""
    viewer, widget, *_ = viewer_with_labels
    seg = viewer.layers["tiny CT segmentation"]
    seg.selected_label = 1  # the user's brush label
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    viewer.dims.ndisplay = 3
    widget.go_to_lesion(0)
    assert seg.show_selected_label and seg.selected_label == 2
    assert "shows its tumor only in 3D" in widget.status.text()
    viewer.dims.ndisplay = 2
    assert not seg.show_selected_label and seg.selected_label == 1
    widget.go_to_lesion(0)  # in 2D: nothing turned
    assert not seg.show_selected_label and "tumor only" not in widget.status.text()
    viewer.dims.ndisplay = 3  # a brush label picked while in 3D: every label back in 2D all
    widget.go_to_lesion(0)  # the same (it showed the liver alone, and later jumps nothing)
    seg.selected_label = 1
    viewer.dims.ndisplay = 2
    assert not seg.show_selected_label and seg.selected_label == 1


def test_a_closed_inspect_panel_takes_its_lesion_ring_away(viewer_with_labels, qtbot):
    viewer, widget, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    widget.go_to_lesion(1)
    assert viewer.layers["lesion marker"].visible
    widget.panel_closed()
    assert "lesion marker" not in viewer.layers
    assert "tiny CT segmentation" in viewer.layers  # only its own layer


def test_dice_is_shown_when_a_ground_truth_is_chosen(viewer_with_labels, qtbot):
    viewer, widget, vol, pred, truth = viewer_with_labels
    widget.truth_combo.setCurrentText("tiny CT ground truth")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.score_table.isVisibleTo(widget)
    expected = overlap_scores(pred, truth)
    assert widget.score_table.item(0, 1).text() == f"{expected['liver']['dice']:.3f}"
    assert 0.99 < expected["liver"]["dice"] < 1  # the extra lesion pokes out of the liver
    assert 0 < expected["tumor"]["dice"] < 1
    # the boundary distances beside them, in mm on the layer's grid, as evaluate computes them
    spacing = tuple(float(s) for s in viewer.layers["tiny CT segmentation"].scale)
    assert spacing == tuple(vol.spacing)
    expected = overlap_scores(pred, truth, spacing)
    shown = [widget.score_table.horizontalHeaderItem(c).text() for c in (3, 4)]
    assert shown == ["HD95\n(mm)", "ASSD\n(mm)"]
    for row, cls in enumerate(("liver", "tumor")):
        assert widget.score_table.item(row, 3).text() == f"{expected[cls]['hd95_mm']:.1f}"
        assert widget.score_table.item(row, 4).text() == f"{expected[cls]['assd_mm']:.1f}"
    # the extra lesion, a stray island some way off the true one, sets the tumor's HD95
    assert expected["tumor"]["hd95_mm"] > expected["tumor"]["assd_mm"] > 0
    # the surface Dice beside them (evaluate's nsd, within 2 mm)
    assert widget.score_table.horizontalHeaderItem(5).text() == "NSD\n(2 mm)"
    for row, cls in enumerate(("liver", "tumor")):
        assert widget.score_table.item(row, 5).text() == f"{expected[cls]['nsd']:.3f}"


def test_in_grid_mode_the_jump_hides_nothing_and_says_where_the_ring_is(viewer_with_labels, qtbot):
    """Grid mode draws each layer in a cell of its own: the jump hid another patient's layers
    that covered nothing and said "ringed" round an empty cell."""
    viewer, widget, vol, pred, truth = viewer_with_labels
    other = _layers.add_ct_layer(viewer, vol, name="other CT")  # drawn above, same place
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    _layers.grid_of(viewer).enabled = True
    widget.go_to_lesion(0)
    assert other.visible
    text = widget.status.text()
    assert "ringed in 'lesion marker'" in text and "hidden" not in text
    assert "Grid mode is on: each layer, the ring too, lies in a cell of its own" in text
    _layers.grid_of(viewer).enabled = False  # said no more once turned off (it stayed)
    assert "Grid mode" not in widget.status.text() and "ringed in" in widget.status.text()
    widget.go_to_lesion(0)
    assert not other.visible and "Grid mode" not in widget.status.text()


def test_labels_moved_in_napari_lose_their_hu_columns_and_say_why(viewer_with_labels, qtbot):
    """Moved 20 mm by hand, the labels' mean HU columns vanished with no word (and Export said
    no CT was open, beside the open CT)."""
    viewer, widget, *_ = viewer_with_labels
    seg = viewer.layers["tiny CT segmentation"]
    seg.translate = np.add(seg.translate, (0, 0, 20))
    widget.truth_combo.setCurrentText("(none)")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.lesion_table.isColumnHidden(5)
    assert (
        "No HU columns: 'tiny CT segmentation' was moved or rescaled in napari"
        in widget.status.text()
    )
    assert _layers.why_no_hu(seg, viewer.layers).endswith("its CT 'tiny CT')")


def test_a_false_lesion_is_marked_and_the_lesions_counted_against_the_truth(
    viewer_with_labels, qtbot
):
    """The lesion list said nothing of which lesion the ground truth has no tumor in, nor how
    many true lesions were found (livertumor evaluate's lesions.csv did)."""
    from napari_livertumor.training.metrics import lesion_detection

    viewer, widget, vol, pred, truth = viewer_with_labels
    widget.truth_combo.setCurrentText("(none)")
    widget.measure_button.click()  # no ground truth: plain numbers, no counts
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    numbers = [widget.lesion_table.item(r, 0).text() for r in range(2)]
    assert numbers == ["1", "2"] and not widget.detection_label.isVisibleTo(widget)
    widget.truth_combo.setCurrentText("tiny CT ground truth")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    lesions = widget.stats["lesions"]
    extra = next(k for k, les in enumerate(lesions) if les["slice_range"] == [2, 3])
    assert lesions[extra]["truth_share"] == 0.0 and lesions[1 - extra]["truth_share"] == 1.0
    numbers = [widget.lesion_table.item(r, 0).text() for r in range(2)]
    assert numbers[extra] == f"{extra + 1} false" and numbers[1 - extra] == str(2 - extra)
    tip = widget.lesion_table.item(extra, 0).toolTip()
    assert tip.startswith("0 % of this lesion is tumor in the ground truth: a false lesion")
    counts = lesion_detection(pred == 2, truth == 2, vol.spacing)
    assert counts["lesions_true"] == counts["lesions_found"] == 1
    text = widget.detection_label.text()
    assert widget.detection_label.isVisibleTo(widget)
    assert "or more (as livertumor evaluate counts them): 1 of 1 true lesions found" in text
    assert f"{counts['lesions_false']} of {counts['lesions_pred']} marked lesions false" in text
    # a ground truth of the liver alone (no tumor at all): said, not only "3 of 3 false"
    gt = viewer.layers["tiny CT ground truth"]
    gt.data = np.where(gt.data == 2, 1, gt.data).astype(gt.data.dtype)
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.detection_label.text().startswith("The ground truth marks no tumor")
    widget.truth_combo.setCurrentText("(none)")  # the marks were of that ground truth
    numbers = [widget.lesion_table.item(r, 0).text() for r in range(2)]
    assert numbers == ["1", "2"] and not widget.detection_label.isVisibleTo(widget)
    assert widget.lesion_table.item(extra, 0).toolTip() == ""


def test_no_tumor_in_either_map_has_no_dice_rather_than_a_perfect_one(viewer_with_labels, qtbot):
    viewer, widget, *_ = viewer_with_labels
    for name in ("tiny CT segmentation", "tiny CT ground truth"):
        layer = viewer.layers[name]
        data = np.asarray(layer.data).copy()
        data[data == 2] = 1
        layer.data = data
    widget.truth_combo.setCurrentText("tiny CT ground truth")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    rows = {
        widget.score_table.item(r, 0).text(): widget.score_table.item(r, 1).text()
        for r in range(widget.score_table.rowCount())
    }
    assert rows["tumor"] == "—" and rows["liver"] != "—"
    assert "No tumor in the labels nor in the ground truth" in widget.status.text()


def test_overlay_controls_change_the_labels_layer(viewer_with_labels):
    viewer, widget, *_ = viewer_with_labels
    layer = viewer.layers["tiny CT segmentation"]
    widget.opacity.setValue(80)
    widget.contour_check.setChecked(True)
    widget.set_class_color(2, (0.0, 0.0, 1.0, 1.0))
    assert layer.opacity == pytest.approx(0.8)
    # wider than a ground truth's outline: where they coincide, it still shows inside it
    assert layer.contour == 3 > viewer.layers["tiny CT ground truth"].contour
    np.testing.assert_allclose(layer.colormap.map(np.array([2]))[0], (0, 0, 1, 1))
    # the button's name stays readable on its colour (black on blue could not be read)
    assert "color: white" in widget.color_buttons[2].styleSheet()
    assert "color: black" in widget.color_buttons[1].styleSheet()  # (light green)


def test_a_colour_blind_safe_palette_recolours_every_segmentation_and_truth(
    viewer_with_labels, monkeypatch
):
    """Green liver and red tumor are one olive with red-green colour blindness, the truth's
    magenta tumor and light-blue portal vein both blue; only liver and tumor could be changed."""
    monkeypatch.setattr(_layers, "_palette", ["standard"])  # (a session's choice: restored)
    viewer, widget, vol, pred, truth = viewer_with_labels
    seg, gt = viewer.layers["tiny CT segmentation"], viewer.layers["tiny CT ground truth"]
    widget.palette_combo.setCurrentText("colour-blind safe")
    safe, safe_truth = _layers.PALETTES["colour-blind safe"]
    np.testing.assert_allclose(seg.colormap.map(np.array([1, 2])), [safe[1], safe[2]])
    np.testing.assert_allclose(gt.colormap.map(np.array([2, 3])), [safe_truth[2], safe_truth[3]])
    assert "color: black" in widget.color_buttons[2].styleSheet()  # orange: black text
    # a layer added later takes it too
    later = _layers.add_labels_layer(viewer, pred, vol, "later", ct_layer_name="tiny CT")
    np.testing.assert_allclose(later.colormap.map(np.array([2]))[0], safe[2])
    # the choice outlives the session (read again by the next one)
    monkeypatch.setattr(_layers, "_palette", [None])
    assert _layers.palette() == "colour-blind safe"
    widget.palette_combo.setCurrentText("standard")
    np.testing.assert_allclose(seg.colormap.map(np.array([2]))[0], _layers.CLASS_COLORS[2])
    monkeypatch.setattr(_layers, "_palette", [None])
    assert _layers.palette() == "standard"


def test_deleting_the_labels_layer_leaves_a_clear_message(viewer_with_labels, qtbot):
    viewer, widget, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.volume_table.rowCount() > 0
    viewer.layers.remove("tiny CT segmentation")
    # the figures of the deleted layer go with it (they stayed, under an empty layer picker)
    assert widget.volume_table.rowCount() == 0 and widget.stats is None
    # the ground truth is left to measure
    assert widget.status.text() == "Click Measure for the figures of 'tiny CT ground truth'."
    viewer.layers.remove("tiny CT ground truth")
    assert widget.status.text() == "No labels layer left to inspect."
    widget.measure_button.click()
    assert widget.labels_combo.count() == 0
    assert "No labels layer to measure" in widget.status.text()
    assert len(viewer.layers) == 1  # nothing else was touched


def test_overlap_scores_per_class():
    truth = np.zeros((4, 4, 4), np.uint8)
    truth[0:2] = 1
    truth[0, 0, 0] = 2
    pred = np.zeros_like(truth)
    pred[0:1] = 1
    pred[0, 0, 0] = 2
    scores = overlap_scores(pred, truth)
    assert scores["liver"]["dice"] == pytest.approx(2 * 16 / (16 + 32))
    assert scores["tumor"] == {"dice": 1.0, "iou": 1.0}
    with_spacing = overlap_scores(pred, truth, (2.5, 1.0, 1.0))
    assert with_spacing["tumor"] == {
        "dice": 1.0, "iou": 1.0, "hd95_mm": 0.0, "assd_mm": 0.0, "nsd": 1.0
    }  # fmt: skip
    assert with_spacing["liver"]["hd95_mm"] == pytest.approx(2.5)  # one slice short, 2.5 mm
    # no tumor in either: no score, as evaluate has it (left out of its mean), not a perfect 1
    pred[0, 0, 0] = truth[0, 0, 0] = 1
    assert all(np.isnan(v) for v in overlap_scores(pred, truth)["tumor"].values())


def _hcc_cases():
    """``(labels 0/1/2, HCC ground truth 0..4)``: random, touching the volume's border (a
    portal vein, class 3, alone on the box's edge; an aorta, 4, the whole length), empty."""
    from scipy import ndimage as ndi

    shape = (16, 30, 28)
    rng = np.random.default_rng(5)
    cases = []
    for _ in range(2):
        noise = ndi.gaussian_filter(rng.random((2, *shape)), 1.2)
        truth = np.zeros(shape, np.uint8)
        truth[3:12, 4:24, 5:22] = np.where(noise[0, 3:12, 4:24, 5:22] > 0.5, 1, 0)
        truth[(noise[1] > 0.54) & (truth == 1)] = 2
        truth[2, 10:12, 5:7] = 3  # the portal vein sets the box's first slice
        truth[:, 26:29, 24:27] = 4  # the aorta: in no class, left out of the box
        labels = np.where(np.roll(truth, 1, axis=1) > 0, 1, 0).astype(np.uint8)
        labels[(noise[1] > 0.52) & (labels == 1)] = 2
        cases.append((labels, truth))
    labels = np.zeros(shape, np.uint8)
    labels[:6, :9, 20:] = 1
    labels[0, 0, 27] = 2  # the volume's corner
    truth = np.zeros(shape, np.uint8)
    truth[2:9, 5:30, 18:28] = 3
    truth[4:6, 28:30, 26:28] = 2
    cases += [(labels, truth), (np.zeros(shape, np.uint8), np.zeros(shape, np.uint8))]
    cases.append((labels, np.zeros(shape, np.uint8)))
    return cases


def test_overlap_scores_in_the_box_of_the_classes_are_those_of_the_whole_volume(monkeypatch):
    from napari_livertumor.training import metrics

    spacing = (2.5, 0.7, 0.9)
    whole = [repr(overlap_scores(a, b, spacing, crop=False)) for a, b in _hcc_cases()]
    assert [repr(overlap_scores(a, b, spacing)) for a, b in _hcc_cases()] == whole
    # a box one voxel short (an end or margin off by one) is noticed on every case but the empty
    crop_box = metrics.crop_box

    def short(*masks, margin=1):
        box = crop_box(*masks, margin=margin)
        return tuple(slice(s.start, max(s.start, s.stop - margin - 1)) for s in box)

    monkeypatch.setattr(metrics, "crop_box", short)
    cut = [repr(overlap_scores(a, b, spacing)) for a, b in _hcc_cases()]
    assert [c != w for c, w in zip(cut, whole, strict=True)] == [True, True, True, False, True]


def test_a_layer_renamed_while_measured_is_named_by_its_new_name(viewer_with_labels, qtbot):
    viewer, widget, *_ = viewer_with_labels
    layer = viewer.layers["tiny CT segmentation"]
    widget.measure_button.click()
    layer.name = "HCC_001 reviewed"  # while Measure runs
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.status.text() == "Measured 'HCC_001 reviewed'."
    layer.name = "HCC_001 final"  # and after: the status follows (it kept the old name)
    assert widget.status.text() == "Measured 'HCC_001 final'."
    viewer.layers["tiny CT ground truth"].name = "the truth"  # another layer's: no change
    assert widget.status.text() == "Measured 'HCC_001 final'."


def test_painting_after_measuring_says_the_figures_are_stale(viewer_with_labels, qtbot):
    viewer, widget, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    layer = viewer.layers["tiny CT segmentation"]
    layer.paint((8, 24, 24), 2)  # the user paints tumor with the brush
    assert "click Measure" in widget.status.text()
    # amber, and the old figures greyed (a plain line under them went unseen)
    assert widget.status._kind == "warning"
    tables = (widget.volume_table, widget.lesion_table, widget.score_table)
    assert all("italic" in t.styleSheet() and "rgba(" in t.styleSheet() for t in tables)
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert "click Measure" not in widget.status.text()
    assert not any(t.styleSheet() for t in tables)
    edited = layer.data.copy()
    edited[edited == 2] = 1  # the tumor removed from napari's console (or another plugin)
    layer.data = edited
    assert "click Measure" in widget.status.text()
    # napari's own Undo (Ctrl+Z) emits neither paint nor data: the figures were left as current
    layer.paint((8, 24, 24), 2)
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    viewer.dims.set_current_step(0, 3)  # a slice step redraws too: no edit
    assert "click Measure" not in widget.status.text()
    layer.undo()
    assert "click Measure" in widget.status.text()
    # ... and undone again back to what was measured: the figures are theirs (they stayed
    # "edited" after a paint and its undo)
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    was = layer.data[8, 24, 24]
    layer.paint((8, 24, 24), 0 if was else 2)
    qtbot.wait(50)
    assert "click Measure" in widget.status.text() and widget._stale()
    layer.undo()
    qtbot.waitUntil(lambda: "as they were measured" in widget.status.text(), timeout=20_000)
    assert not widget._stale() and not any(t.styleSheet() for t in tables)
    layer.brush_size = 1
    layer.paint((8, 24, 24), was)  # a stroke of the value there: nothing changed
    qtbot.wait(50)
    assert "click Measure" not in widget.status.text() and not widget._stale()


def test_a_layer_with_values_outside_the_classes_is_not_measured(viewer_with_labels, qtbot):
    viewer, widget, vol, pred, _ = viewer_with_labels
    odd = pred.astype(np.int32) * 300  # a uint8 cast would wrap these to 44 and 88
    viewer.add_labels(odd, name="painted", scale=vol.napari_scale, translate=vol.napari_translate)
    widget.labels_combo.setCurrentText("painted")
    widget.measure_button.click()
    assert not widget.busy
    assert "'painted' holds label values from 0 to 600" in widget.status.text()


def test_the_lesion_jump_lands_on_the_slice_it_names(viewer_with_labels, qtbot):
    viewer, widget, vol, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    for row in range(widget.lesion_table.rowCount()):
        widget.lesion_table.cellClicked.emit(row, 0)
        z_index = round(
            (viewer.dims.point[0] - viewer.layers["tiny CT"].translate[0]) / vol.spacing[0]
        )
        assert f"slice {z_index} " in widget.status.text()


def test_a_ground_truth_loaded_later_is_chosen_for_scoring(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)  # docked first, as the demo does
    vol, truth = tiny_ct()
    _layers.add_ct_layer(viewer, vol, name="tiny CT")
    assert widget.truth_layer() is None
    _layers.add_labels_layer(viewer, truth, vol, "tiny CT ground truth", role="ground_truth")
    assert widget.truth_combo.currentText() == "tiny CT ground truth"
    widget.truth_combo.setCurrentIndex(0)  # the user turns scoring off: it stays off
    _layers.add_labels_layer(viewer, truth > 0, vol, "tiny CT segmentation")
    assert widget.truth_layer() is None


def test_a_liver_only_segmentation_shows_its_tumor_as_not_computed(viewer_with_labels, qtbot):
    """0 mL and a tumor Dice of 0 against the truth read as a missed tumor."""
    viewer, widget, _, pred, _ = viewer_with_labels
    layer = viewer.layers["tiny CT segmentation"]
    layer.data = (pred > 0).astype(np.uint8)
    layer.metadata["stats"] = {"tumor_ml": None}
    widget.truth_combo.setCurrentText("tiny CT ground truth")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.volume_table.item(1, 1).text() == "not computed (liver only)"
    assert widget.volume_table.item(0, 0).text() == "Liver (mL)"  # not "incl. tumor"
    rows = [widget.score_table.item(r, 0).text() for r in range(widget.score_table.rowCount())]
    assert rows == ["liver"]


def test_a_layer_deleted_while_measured_gets_no_figures(viewer_with_labels, qtbot, monkeypatch):
    """The Measure result arrived after the delete and filled the tables under an empty
    picker."""
    import time

    import napari_livertumor.stats as stats_mod

    viewer, widget, *_ = viewer_with_labels
    real = stats_mod.compute_stats

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats_mod, "compute_stats", slow)
    widget.measure_button.click()
    viewer.layers.remove("tiny CT segmentation")  # while Measure runs
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.volume_table.rowCount() == 0 and widget.stats is None
    assert "removed or another layer chosen while it was measured" in widget.status.text()


def test_an_edit_while_measuring_marks_the_figures_as_from_before_it(
    viewer_with_labels, qtbot, monkeypatch
):
    """'Measured' and the old figures were shown as current after the tumor was erased while
    the measure ran (on a first measure the edit was not even noticed)."""
    import threading

    import napari_livertumor.stats as stats_mod

    viewer, widget, *_ = viewer_with_labels
    gate, entered, real = threading.Event(), threading.Event(), stats_mod.compute_stats

    def held(*args, **kwargs):
        entered.set()
        gate.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats_mod, "compute_stats", held)
    widget.measure_button.click()
    qtbot.waitUntil(entered.is_set, timeout=10_000)
    layer = viewer.layers["tiny CT segmentation"]
    layer.paint((8, 24, 24), 0)  # the user erases with the brush meanwhile
    gate.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert "was edited while it was measured" in widget.status.text()
    widget.measure_button.click()  # measured again: current
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.status.text() == "Measured 'tiny CT segmentation'."


def test_small_findings_never_read_as_empty_rows():
    """With 1 decimal for the liver and 2 for the tumor, a liver read smaller than its tumor,
    and a lesion under 0.005 mL read "0.00"; a liver read "1514.35" here, "1514.4" in Segment."""
    from napari_livertumor._widgets.inspect import _ml

    got = [_ml(0.0), _ml(0.003), _ml(0.016), _ml(0.44), _ml(1514.35)]
    assert got == ["0.00", "<0.01", "0.02", "0.44", "1514.3"]  # (1514.35 is 1514.3499…)


def test_a_ground_truth_can_be_measured_on_its_own(viewer_with_labels, qtbot):
    """Its volumes and lesions beside the model's; not scored against itself."""
    viewer, widget, vol, _, truth = viewer_with_labels
    names = [widget.labels_combo.itemText(i) for i in range(widget.labels_combo.count())]
    assert names == ["tiny CT segmentation", "tiny CT ground truth"]  # the truth last
    widget.truth_combo.setCurrentText("tiny CT ground truth")
    widget.labels_combo.setCurrentText("tiny CT ground truth")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)

    liver_ml = round(np.count_nonzero(np.isin(truth, (1, 2, 3))) * vol.voxel_volume_ml, 3)
    assert widget.volume_table.item(0, 1).text() == volume_shown(liver_ml)
    assert widget.volume_table.item(4, 1).text() == "1"  # the truth's one lesion
    assert not widget.score_table.isVisibleTo(widget)  # no Dice of 1 against itself
    assert "ground truth" in widget.status.text() and "portal vein" in widget.status.text()
    # the segmentation is still scored against it
    widget.labels_combo.setCurrentText("tiny CT segmentation")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.score_table.isVisibleTo(widget)
    assert widget.status.text() == "Measured 'tiny CT segmentation'."


def test_a_dicom_scan_shown_turned_lists_its_lesions_dicom_image_numbers(
    make_napari_viewer, qtbot, tmp_path
):
    """napari's slider counts a feet-first series' slices otherwise than its files: the list
    also gives the image numbers a PACS viewer shows, and the exported CSV the same ones."""
    import csv

    from napari_livertumor._reader import ct_layer_data
    from napari_livertumor._widgets.export import write_exports
    from napari_livertumor.io import CTVolume, load_ct
    from napari_livertumor.io.dicom_write import write_ct_series

    rng = np.random.default_rng(0)
    source = CTVolume(
        rng.integers(-100, 200, (8, 24, 24)).astype(np.int16),
        (2.5, 1.0, 1.0),
        (0.0, 0.0, 0.0),
        np.diag([1.0, -1.0, -1.0]),  # slices stored head first: shown turned
    )
    write_ct_series(source, tmp_path / "ct", instance_number_start=201, patient_id="P1")
    ct = load_ct(tmp_path / "ct")
    shown = ct.displayed()
    assert "stored_turn" in shown.meta
    viewer = make_napari_viewer()
    data, kwargs, _ = ct_layer_data(shown)
    viewer.add_image(data, **kwargs)
    labels = np.zeros(ct.shape, np.uint8)  # in the files' order
    labels[:, 2:22, 2:22] = 1
    labels[1:3, 8:12, 8:12] = 2  # the files' slices 1..2
    numbers = sorted(ct.meta["instance_numbers"][1:3])
    _layers.add_labels_layer(viewer, shown.meta["stored_turn"].apply(labels), shown, "seg")
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels_combo.setCurrentText("seg")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert not widget.lesion_table.isColumnHidden(7)
    assert widget.lesion_table.item(0, 4).text() == "5–6"  # napari's slider: the other end
    assert widget.lesion_table.item(0, 7).text() == f"{numbers[0]}–{numbers[1]}"
    widget.lesion_table.cellClicked.emit(0, 0)
    assert f"DICOM image {widget.stats['lesions'][0]['image_number']}" in widget.status.text()
    written = write_exports(
        shown.meta["stored_turn"].apply(labels),
        shown,
        {"lesions.csv": tmp_path / "l.csv"},
        ct=shown.array,
    )
    [row] = list(csv.DictReader(written[0].open()))
    assert (row["first_slice"], row["last_slice"]) == ("1", "2")  # the files' own order
    assert (int(row["first_image"]), int(row["last_image"])) == (numbers[0], numbers[1])
    shown_labels = shown.meta["stored_turn"].apply(labels)
    assert float(row["mean_hu"]) == pytest.approx(shown.array[shown_labels == 2].mean(), abs=0.06)


def test_a_scan_without_dicom_hides_the_image_column(viewer_with_labels, qtbot):
    viewer, widget, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.lesion_table.isColumnHidden(7)


def test_a_second_patient_loaded_with_its_ground_truth_is_the_one_chosen(make_napari_viewer):
    """Five patients loaded one after another, none segmented: Inspect stayed on the first
    patient's ground truth, and Measure showed its figures."""
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    for k in (1, 2):
        vol, truth = tiny_ct()
        _layers.add_ct_layer(viewer, vol, name=f"P{k} CT")
        _layers.add_labels_layer(viewer, truth, vol, f"P{k} ground truth", role="ground_truth")
        widget.refresh_layers()
        assert widget.labels_combo.currentText() == f"P{k} ground truth"
        assert widget.truth_combo.currentText() == f"P{k} ground truth"
    # a segmentation of patient 1 made now is what to look at, as before
    vol, truth = tiny_ct()
    _layers.add_labels_layer(viewer, (truth > 0).astype(np.uint8), vol, "P1 segmentation")
    widget.refresh_layers()
    assert widget.labels_combo.currentText() == "P1 segmentation"


def test_lesion_hu_comes_from_the_ct_layer_not_from_a_labels_files_own_grid(
    make_napari_viewer, qtbot, tmp_path
):
    """A labels NIfTI opened with File > Open carries a grid built from its own label values:
    its lesions measured "Mean HU 2, +1 vs liver" (the label values) with or without the CT."""
    from napari.layers import Labels

    from napari_livertumor.io.nifti import write_nifti

    vol, truth = tiny_ct()
    write_nifti(vol, tmp_path / "ct.nii.gz")
    write_nifti(truth, tmp_path / "ct_labels.nii.gz", reference=vol)
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.open(str(tmp_path / "ct_labels.nii.gz"), plugin="napari-livertumor")
    [layer] = [ly for ly in viewer.layers if isinstance(ly, Labels)]
    widget.labels_combo.setCurrentText(layer.name)

    def measure():
        widget.measure_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
        return widget.stats

    stats = measure()  # no CT open: no attenuation, no columns
    assert "tumor_mean_hu" not in stats and "mean_hu" not in stats["lesions"][0]
    assert widget.lesion_table.isColumnHidden(5) and widget.lesion_table.isColumnHidden(6)
    viewer.open(str(tmp_path / "ct.nii.gz"), plugin="napari-livertumor")
    stats = measure()  # the CT on its grid: its HU (tumor 20, liver 60)
    assert stats["tumor_mean_hu"] == 20.0 and stats["liver_mean_hu"] == 60.0
    assert stats["lesions"][0]["liver_contrast_hu"] == -40.0
    assert widget.lesion_table.item(0, 6).text() == "-40"
    layer.translate = np.asarray(layer.translate) + 3.0  # moved off the CT's grid: none again
    stats = measure()
    assert "tumor_mean_hu" not in stats


def test_the_keyboard_reaches_every_table_and_enter_presses_buttons(viewer_with_labels, qtbot):
    """Tab went round the volume table's cells for ever (the lesion table, whose rows go to
    their slice, was out of the keyboard's reach), and Enter on a focused button did nothing;
    a wide lesion table widened the dock (and narrowed the scan) for good."""
    from qtpy.QtCore import Qt

    from napari_livertumor._widgets.inspect import TABLE_WIDEST

    viewer, widget, *_ = viewer_with_labels
    widget.show()
    widget.measure_button.setFocus()
    qtbot.keyClick(widget.measure_button, Qt.Key_Return)
    qtbot.waitUntil(lambda: widget.lesion_table.rowCount() == 2, timeout=20_000)
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    # a held Enter clicks once, when released (its repeats clicked Run, then its Cancel, and
    # the next answered the dialog the click opened)
    from qtpy.QtGui import QKeyEvent
    from qtpy.QtWidgets import QApplication

    clicks = []
    widget.measure_button.clicked.connect(lambda: clicks.append(1))
    button = widget.measure_button
    for kind, repeat in ((QKeyEvent.KeyPress, False), (QKeyEvent.KeyPress, True),
                         (QKeyEvent.KeyRelease, True), (QKeyEvent.KeyPress, True)):  # fmt: skip
        QApplication.sendEvent(button, QKeyEvent(kind, Qt.Key_Return, Qt.NoModifier, "", repeat))
    assert clicks == [] and button.isDown()  # held: not yet
    QApplication.sendEvent(button, QKeyEvent(QKeyEvent.KeyRelease, Qt.Key_Return, Qt.NoModifier))
    assert clicks == [1] and not button.isDown()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    # a mouse click while Enter is held is the press; Enter's release adds none
    QApplication.sendEvent(button, QKeyEvent(QKeyEvent.KeyPress, Qt.Key_Return, Qt.NoModifier))
    qtbot.mouseClick(button, Qt.LeftButton)
    QApplication.sendEvent(button, QKeyEvent(QKeyEvent.KeyRelease, Qt.Key_Return, Qt.NoModifier))
    assert clicks == [1, 1] and not button.isDown()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    # released with Shift held meanwhile: still one click, the button not left looking pressed
    QApplication.sendEvent(button, QKeyEvent(QKeyEvent.KeyPress, Qt.Key_Return, Qt.NoModifier))
    QApplication.sendEvent(button, QKeyEvent(QKeyEvent.KeyRelease, Qt.Key_Return, Qt.ShiftModifier))
    assert clicks == [1, 1, 1] and not button.isDown()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    for table in (widget.volume_table, widget.lesion_table):  # Tab leaves a table
        assert not table.tabKeyNavigation()
        assert table.minimumWidth() <= TABLE_WIDEST


def test_the_hu_window_is_set_from_inspect_too(viewer_with_labels):
    """The liver window, the one to read lesions with, was only in the Load panel."""
    viewer, widget, *_ = viewer_with_labels
    widget.window_combo.setCurrentText("liver")
    assert tuple(viewer.layers["tiny CT"].contrast_limits) == (-15.0, 135.0)
    widget.window_combo.setCurrentText("abdomen")
    assert tuple(viewer.layers["tiny CT"].contrast_limits) == (-160.0, 240.0)
    # Load CT's chooser and Inspect's follow each other (they disagreed, and choosing the
    # preset shown did nothing)
    from napari_livertumor._widgets.load import LoadWidget

    load = LoadWidget(viewer)
    load.window_combo.setCurrentText("bone")
    assert widget.window_combo.currentText() == "bone"
    widget.window_combo.setCurrentText("liver")
    assert load.window_combo.currentText() == "liver"
    assert InspectWidget(viewer).window_combo.currentText() == "liver"  # a panel opened later
    viewer.layers["tiny CT"].contrast_limits = (0.0, 100.0)  # set by hand in napari
    widget.window_combo.activated.emit(widget.window_combo.currentIndex())  # liver again
    assert tuple(viewer.layers["tiny CT"].contrast_limits) == (-15.0, 135.0)


def test_painting_the_ground_truth_says_the_dice_is_stale(viewer_with_labels, qtbot):
    """Only the measured labels were watched: after the ground truth was painted, a tumor Dice
    of 0.000 stood under "Measured" where 0.223 was due."""
    viewer, widget, *_ = viewer_with_labels
    widget.truth_combo.setCurrentText("tiny CT ground truth")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.status.text().startswith("Measured")
    viewer.layers["tiny CT ground truth"].paint((8, 30, 30), 2)
    assert "ground truth 'tiny CT ground truth' was edited" in widget.status.text()
    assert "click Measure" in widget.status.text()


def test_a_lesion_row_clicked_after_an_edit_keeps_saying_the_list_is_old(viewer_with_labels, qtbot):
    """The row's message replaced "the labels were edited", and ringed a lesion painted away."""
    viewer, widget, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    widget.go_to_lesion(0)
    assert widget.status.text().startswith("Lesion 1:")
    viewer.layers["tiny CT segmentation"].paint((8, 24, 24), 1)
    widget.go_to_lesion(0)
    text = widget.status.text()
    assert text.startswith("The labels were edited since they were measured: where lesion 1 was")
    assert text.endswith("Click Measure to update the list.")


def test_stray_label_values_are_located_and_the_old_figures_cleared(viewer_with_labels, qtbot):
    """A stroke of label 7 was refused without saying where it was, beside the old figures."""
    viewer, widget, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.volume_table.rowCount() > 0
    layer = viewer.layers["tiny CT segmentation"]
    layer.paint((5, 20, 20), 7)
    widget.measure_button.click()
    assert not widget.busy
    text = widget.status.text()
    assert (
        "value(s) 7:" in text
        and "on slice(s) 5" in text
        and "paint them 2 tumor, 1 liver or 0 background" in text
    )
    assert widget.volume_table.rowCount() == 0 and widget.stats is None


def test_choosing_another_ground_truth_hides_the_dice_of_the_last(viewer_with_labels, qtbot):
    """The Dice against a ground truth stayed up with "(none)" chosen, or the truth deleted."""
    viewer, widget, *_ = viewer_with_labels
    widget.truth_combo.setCurrentText("tiny CT ground truth")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.score_table.isVisibleTo(widget)
    widget.truth_combo.setCurrentText("(none)")
    assert not widget.score_table.isVisibleTo(widget) and widget.scores is None
    assert widget.status.text() == "No ground truth chosen: no Dice."
    widget.truth_combo.setCurrentText("tiny CT ground truth")
    assert "Click Measure to score against 'tiny CT ground truth'" in widget.status.text()


def test_hu_columns_round_half_away_from_zero():
    """The stats hold HU to 0.1; Python's round() then took 64.5 to 64 (and 47.5 to 48)."""
    from napari_livertumor._widgets.inspect import _hu

    assert [_hu(64.5), _hu(47.5), _hu(-12.5, signed=True), _hu(-0.4, signed=True)] == [
        "65",
        "48",
        "-13",
        "0",
    ]


def test_the_tables_copy_as_tab_separated_text_with_their_headers(viewer_with_labels, qtbot):
    """Ctrl+C on a table copied one cell (the label): the figures could not be taken to a
    spreadsheet or a report."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication

    viewer, widget, *_ = viewer_with_labels
    assert not widget.copy_button.isEnabled()  # nothing measured yet
    # Ctrl+C in an empty table keeps the clipboard (it put a bare header there)
    QApplication.clipboard().setText("the user's text")
    widget.volume_table.setFocus()
    QTest.keyClick(widget.volume_table, Qt.Key_C, Qt.ControlModifier)
    assert QApplication.clipboard().text() == "the user's text"
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.copy_button.isEnabled()
    clipboard = QApplication.clipboard()
    table = widget.volume_table

    def ctrl_c(table) -> str:
        clipboard.clear()
        table.setFocus()
        QTest.keyClick(table, Qt.Key_C, Qt.ControlModifier)
        return clipboard.text()

    # one row selected (a click): the whole table, its header first
    table.selectRow(0)
    lines = ctrl_c(table).splitlines()
    assert lines[0] == "Measure\tValue"
    assert len(lines) == 1 + table.rowCount()
    assert lines[1] == f"{table.item(0, 0).text()}\t{table.item(0, 1).text()}"
    # the lesions: two-line headers on one line, a hidden column left out
    lesions = widget.lesion_table
    lesions.clearSelection()
    lines = ctrl_c(lesions).splitlines()
    assert lines[0].split("\t")[:3] == ["#", "Volume (mL)", "Ø 3D (mm)"]
    assert "Images" not in lines[0]  # (no DICOM: its column is hidden)
    assert len(lines) == 3 and all(len(ln.split("\t")) == len(lines[0].split("\t")) for ln in lines)
    # several rows selected: those rows
    table.clearSelection()
    for row in (1, 3):
        table.selectionModel().select(
            table.model().index(row, 0),
            table.selectionModel().Select | table.selectionModel().Rows,
        )
    lines = ctrl_c(table).splitlines()
    assert lines == [
        "Measure\tValue",
        *(f"{table.item(r, 0).text()}\t{table.item(r, 1).text()}" for r in (1, 3)),
    ]
    # the Copy button: every table shown (the scores against the truth too), a blank line
    # between them
    clipboard.clear()
    widget.copy_button.click()
    blocks = clipboard.text().split("\n\n")
    assert [b.splitlines()[0].split("\t")[0] for b in blocks] == ["Measure", "#", "Class"]
    assert blocks[2].splitlines()[0].startswith("Class\tDice\tIoU\tHD95 (mm)")
    assert blocks[0] + "\n" == table.text_of()
    # the right-click menu: the row, or the whole table
    from qtpy.QtCore import QPoint
    from qtpy.QtGui import QContextMenuEvent
    from qtpy.QtWidgets import QMenu

    shown: list[list[str]] = []

    def exec_(menu, *_args):
        shown.append([a.text() for a in menu.actions()])
        menu.actions()[0].trigger()

    table.clearSelection()
    table.selectRow(2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(QMenu, "exec_", exec_)
        table.contextMenuEvent(QContextMenuEvent(QContextMenuEvent.Mouse, QPoint(5, 5)))
    assert shown == [["Copy row", "Copy table"]]
    assert clipboard.text().splitlines() == [
        "Measure\tValue",
        f"{table.item(2, 0).text()}\t{table.item(2, 1).text()}",
    ]


def test_greyed_figures_are_copied_under_a_line_that_says_they_are_stale(viewer_with_labels, qtbot):
    """The figures greyed after an edit were copied as if current, with no mark."""
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtGui import QContextMenuEvent
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication, QMenu

    from napari_livertumor._widgets.inspect import STALE_NOTE

    viewer, widget, *_ = viewer_with_labels
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    clipboard = QApplication.clipboard()
    widget.copy_button.click()
    assert clipboard.text().startswith("Measure\t")  # current: no note
    viewer.layers["tiny CT segmentation"].paint((8, 24, 24), 2)
    assert "click Measure" in widget.status.text()
    widget.copy_button.click()
    lines = clipboard.text().splitlines()
    assert lines[0] == STALE_NOTE and lines[1].startswith("Measure\t")
    table = widget.volume_table
    table.setFocus()
    QTest.keyClick(table, Qt.Key_C, Qt.ControlModifier)
    assert clipboard.text().splitlines()[:2] == [STALE_NOTE, "Measure\tValue"]
    table.selectRow(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(QMenu, "exec_", lambda menu, *_: menu.actions()[0].trigger())
        table.contextMenuEvent(QContextMenuEvent(QContextMenuEvent.Mouse, QPoint(5, 5)))
    assert clipboard.text().splitlines()[:2] == [STALE_NOTE, "Measure\tValue"]
    widget.measure_button.click()  # measured anew: current again
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    widget.copy_button.click()
    assert clipboard.text().startswith("Measure\t")


def test_unticking_contours_only_fills_the_labels_again(viewer_with_labels):
    """*Contours only* off draws the labels filled (contour 0), as before it was ticked."""
    viewer, widget, *_ = viewer_with_labels
    layer = viewer.layers["tiny CT segmentation"]
    widget.contour_check.setChecked(True)
    assert layer.contour > 0
    widget.contour_check.setChecked(False)
    assert layer.contour == 0


def _two_studies(shape=(16, 48, 48), follow_up_shape=None):
    """A baseline (2007-12-23) and a follow-up (2008-03-15) of one patient, as Load reads two
    DICOM studies: the same series number and description, their own UIDs and dates."""
    studies = []
    for date, uid, z in (("20071223", "1.2.3.1", shape), ("20080315", "1.2.3.2", follow_up_shape)):
        vol, truth = tiny_ct(shape=z or shape)
        vol.meta.update(
            patient_id="HCC_001",
            description="LIVER 3 PHASE CAP",
            series_number=104,
            study_date=date,
            study_uid=f"{uid}.0",
            series_uid=f"{uid}.1",
        )
        studies.append((vol, truth))
    return studies


def test_a_follow_up_is_not_scored_against_the_baselines_truth_on_its_grid(
    make_napari_viewer, qtbot
):
    """A follow-up study on its baseline's grid: Inspect picked the baseline's ground truth for
    the follow-up's segmentation and gave tumor Dice 0.84 and "1 of 1 true lesions found"
    (0.55 against its own truth) without saying whose truth it was."""
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    (base, base_truth), (follow, _) = _two_studies()
    base_ct = _layers.add_ct_layer(viewer, base)
    _layers.add_labels_layer(
        viewer, base_truth, base, f"{base_ct.name} ground truth", role="ground_truth",
        ct_layer_name=base_ct.name,
    )  # fmt: skip
    follow_ct = _layers.add_ct_layer(viewer, follow)
    assert follow_ct.name.endswith("2008-03-15")
    pred = (base_truth > 0).astype(np.uint8)  # (its own tumor: none, say)
    seg = _layers.add_labels_layer(
        viewer, pred, follow, f"{follow_ct.name} segmentation", ct_layer_name=follow_ct.name
    )
    widget.refresh_layers()
    assert widget.labels_combo.currentText() == seg.name
    assert widget.truth_combo.currentText() == "(none)"
    # the baseline's own segmentation still gets its truth
    base_seg = _layers.add_labels_layer(
        viewer, base_truth.clip(0, 2), base, f"{base_ct.name} segmentation",
        ct_layer_name=base_ct.name,
    )  # fmt: skip
    widget.refresh_layers()
    assert widget.labels_combo.currentText() == base_seg.name
    assert widget.truth_combo.currentText() == f"{base_ct.name} ground truth"
    # chosen by hand for the follow-up: kept, and the Dice said to compare two scans
    widget.labels_combo.setCurrentText(seg.name)
    assert widget.truth_combo.currentText() == "(none)"
    index = widget.truth_combo.findText(f"{base_ct.name} ground truth")
    widget.truth_combo.setCurrentIndex(index)
    widget.truth_combo.activated.emit(index)
    widget.refresh_layers()
    assert widget.truth_combo.currentText() == f"{base_ct.name} ground truth"
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.scores is not None
    said = widget.status.text()
    assert "of another scan" in said and "2007-12-23" in said and "2008-03-15" in said, said
    assert said.index("another scan") < said.index("Measured")
    assert "another scan" in widget.detection_label.text()


def test_a_labels_file_is_shown_over_its_own_studys_ct_on_a_jump(
    make_napari_viewer, qtbot, tmp_path
):
    """The baseline's labels opened from a file, the follow-up loaded after the baseline:
    "Go to lesion" left the follow-up's CT drawn under them, and said only "Lesion 1: slice
    …"."""
    import json

    from napari_livertumor.io.nifti import write_nifti

    (base, base_truth), (follow, _) = _two_studies(follow_up_shape=(14, 48, 48))
    write_nifti(base_truth.clip(0, 2), tmp_path / "HCC_001_labels.nii.gz", reference=base)
    stats = {
        "series_uid": base.meta["series_uid"],
        "study_date": "2007-12-23",
        "series_number": 104,
        "series_description": "LIVER 3 PHASE CAP",
    }  # (segment's stats beside its labels say which series they are of)
    (tmp_path / "HCC_001_stats.json").write_text(json.dumps(stats))
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    base_ct = _layers.add_ct_layer(viewer, base)
    follow_ct = _layers.add_ct_layer(viewer, follow)
    viewer.open(str(tmp_path / "HCC_001_labels.nii.gz"), plugin="napari-livertumor")
    labels = viewer.layers["HCC_001_labels"]
    widget.labels_combo.setCurrentText(labels.name)
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    widget.go_to_lesion(0)
    assert base_ct.visible and not follow_ct.visible
    assert f"'{follow_ct.name}' hidden" in widget.status.text()


def test_a_jump_names_the_ct_shown_under_labels_of_no_known_scan(make_napari_viewer, qtbot):
    """Labels that name no CT (napari's New labels layer, a file without stats) on the grid of
    two studies: the jump showed the top one's CT and said nothing of it."""
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    (base, base_truth), (follow, _) = _two_studies()
    _layers.add_ct_layer(viewer, base)
    follow_ct = _layers.add_ct_layer(viewer, follow)
    viewer.add_labels(
        base_truth.clip(0, 2), name="drawn", scale=base.napari_scale,
        translate=base.napari_translate,
    )  # fmt: skip
    widget.labels_combo.setCurrentText("drawn")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    widget.go_to_lesion(0)
    said = widget.status.text()
    assert f"the CT shown under it is '{follow_ct.name}'" in said, said


def test_a_converted_ct_keeps_its_truth_for_labels_made_on_its_dicom_series(
    make_napari_viewer, qtbot, tmp_path
):
    """A CT converted to NIfTI (known by its file) and `segment`'s labels of its DICOM series
    (known by the series their stats name) were taken for two scans: Inspect picked no ground
    truth for them (liver Dice 0.96 before), and the jump said the CT "may not be its scan"."""
    import json

    from napari_livertumor.io.nifti import read_nifti, write_nifti
    from napari_livertumor.io.volume import CTVolume

    (base, base_truth), _ = _two_studies()
    converted = CTVolume(base.array, base.spacing, base.origin, base.direction)  # (no UIDs)
    write_nifti(converted, tmp_path / "HCC_001.nii.gz")
    write_nifti(base_truth.clip(0, 2), tmp_path / "HCC_001_labels.nii.gz", reference=converted)
    stats = {"series_uid": base.meta["series_uid"], "study_date": "2007-12-23"}
    (tmp_path / "HCC_001_stats.json").write_text(json.dumps(stats))
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    ct_vol = read_nifti(tmp_path / "HCC_001.nii.gz")  # (as Load CT opens it, with its truth)
    ct = _layers.add_ct_layer(viewer, ct_vol, name="HCC_001")
    _layers.add_labels_layer(viewer, base_truth, ct_vol, "HCC_001 ground truth",
                             role="ground_truth", ct_layer_name=ct.name)  # fmt: skip
    viewer.open(str(tmp_path / "HCC_001_labels.nii.gz"), plugin="napari-livertumor")
    widget.refresh_layers()
    widget.labels_combo.setCurrentText("HCC_001_labels")
    assert widget.truth_combo.currentText() == "HCC_001 ground truth"
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.scores is not None and "another scan" not in widget.status.text()
    widget.go_to_lesion(0)
    assert "may not be its scan" not in widget.status.text()


def test_labels_of_no_known_scan_get_no_truth_where_two_studies_truths_lie(
    make_napari_viewer, qtbot
):
    """Labels that name no scan (napari's New labels layer, a file without its stats) on the
    grid of two studies, each with its truth: the follow-up's truth was picked for the
    baseline's labels (tumor Dice 0.24 against 0.40), unsaid."""
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    for vol, truth in _two_studies():
        ct = _layers.add_ct_layer(viewer, vol)
        _layers.add_labels_layer(viewer, truth, vol, f"{ct.name} ground truth",
                                 role="ground_truth", ct_layer_name=ct.name)  # fmt: skip
    viewer.add_labels(
        np.asarray(viewer.layers[1].data).clip(0, 2), name="drawn",
        scale=viewer.layers[0].scale, translate=viewer.layers[0].translate,
    )  # fmt: skip
    widget.refresh_layers()
    widget.labels_combo.setCurrentText("drawn")
    assert widget.truth_combo.currentText() == "(none)"


def test_two_studies_segmentations_read_apart_in_a_narrow_picker(make_napari_viewer, qtbot):
    """The baseline's and the follow-up's segmentations both read "HCC_001 LIVER 3 PH…
    segmentation" in Inspect's (and Export's) picker: the study date, just before the last
    word, was what the box cut off."""
    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    for vol, _ in _two_studies():
        ct = _layers.add_ct_layer(viewer, vol)
        pred = np.zeros(vol.shape, np.uint8)
        _layers.add_labels_layer(
            viewer, pred, vol, f"{ct.name} segmentation", ct_layer_name=ct.name
        )
    combo = widget.labels_combo
    names = [combo.itemText(i) for i in range(combo.count())]
    assert len(names) == 2
    for width, tail in ((300, "2008-03-15 segmentation"), (200, "2008-03-15")):
        combo.setFixedWidth(width)  # (a docked panel's box; a narrower one)
        qtbot.waitExposed(combo)
        shown = []
        for name in names:
            combo.setCurrentText(name)
            shown.append(combo.shown_text())
            assert "…" in shown[-1], shown[-1]
        assert shown[0] != shown[1], shown
        dated = next(s for n, s in zip(names, shown, strict=True) if "2008-03-15" in n)
        assert tail in dated, shown
        combo.grab()  # it paints


def test_a_lesion_that_looks_like_an_enhancing_vessel_is_marked_on_its_row(
    make_napari_viewer, qtbot
):
    """The tumor model calls enhancing portal-vein branches tumor (a review: 24 mL in a
    tumor-free liver), and Inspect listed such a "lesion" like any other. Its row now says
    "vessel?" with why in its tooltip, and the status names it; the round tumor's does not."""
    vol, truth = tiny_ct()
    ct = np.asarray(vol.array).copy()
    ct[ct == 60] = 110  # a contrast-enhanced liver
    labels = truth.copy()
    labels[8, 30:32, 12:27] = 2  # a portal branch 2 voxels (1.8 mm) wide, 13.5 mm long
    ct[8, 30:32, 12:27] = 190
    assert (labels[8, 29, 12:27] == 1).all() and (labels[8, 32, 12:27] == 1).all()
    vol = vol.with_array(ct)
    viewer = make_napari_viewer()
    _layers.add_ct_layer(viewer, vol, name="tiny CT")
    _layers.add_labels_layer(viewer, labels, vol, "tiny CT segmentation", ct_layer_name="tiny CT")
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels_combo.setCurrentText("tiny CT segmentation")
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    rows = {widget.lesion_table.item(r, 0).text(): r for r in range(widget.lesion_table.rowCount())}
    vessel = next(les for les in widget.stats["lesions"] if les["vessel_like"])
    assert set(rows) == {f"{vessel['id']} · vessel?", str(3 - vessel["id"])}
    tip = widget.lesion_table.item(rows[f"{vessel['id']} · vessel?"], 0).toolTip()
    assert "enhancing vessel" in tip and "tube-shaped" in tip
    assert widget.lesion_table.item(rows[str(3 - vessel["id"])], 0).toolTip() == ""
    assert f"lesion {vessel['id']} (" in widget.status.text()


def test_measuring_a_hidden_patients_labels_says_they_are_not_the_ones_on_view(
    make_napari_viewer, qtbot
):
    """Going back to patient A by hiding patient B's layers (their eyes), Measure measured B's
    segmentation, still chosen, and said only "Measured 'B CT segmentation'." while the user
    looked at A: the choice stands, and the line says it is hidden, naming the one on view."""
    from _widget_data import back_to_the_first_patient

    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    seg_a, seg_b = back_to_the_first_patient(viewer, widget.labels_combo)
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    said = widget.status.text()
    assert said.startswith("Measured 'B CT segmentation'."), said
    assert (
        "⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was measured, not "
        "'A CT segmentation' on view (choose it under Labels to measure it)." in said
    ), said
    assert widget.status._kind == "warning"
    widget.labels_combo.setCurrentText(seg_a.name)  # the one on view: nothing to say
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.status.text() == "Measured 'A CT segmentation'."
    # the overlay hidden to look at the CT under it: said, with no other layer to name
    seg_a.visible = False
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.status.text().endswith(
        "⚠ 'A CT segmentation' is hidden: the layer chosen in this panel was measured."
    )


def _measured_with_b_hidden(make_napari_viewer, qtbot, *, ct_too: bool, same_grid: bool = True):
    """Inspect docked over two patients (``two_patients``), B's labels hidden (and its CT when
    ``ct_too``) and measured: ``(viewer, widget, (ct_a, seg_a), (ct_b, seg_b))``."""
    from _widget_data import two_patients

    viewer = make_napari_viewer()
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    a, (ct_b, seg_b) = two_patients(viewer, same_grid=same_grid)
    seg_b.visible = False
    if ct_too:
        ct_b.visible = False
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    return viewer, widget, a, (ct_b, seg_b)


def test_measuring_labels_hidden_over_their_own_ct_names_no_other_patients_labels(
    make_napari_viewer, qtbot
):
    """Two patients on one grid (A's CT, A's labels, B's CT, B's labels): B's overlay hidden
    alone to see B's CT edges, Measure said "… not 'A CT segmentation' on view (choose it
    under Labels to measure it)", while B's CT, shown, covered A's layers: A's labels were
    not on view, and the advice measured the wrong patient. Its own CT on view, the line says
    only that the labels are hidden; named only when that CT is hidden too."""
    viewer, widget, _, (ct_b, seg_b) = _measured_with_b_hidden(
        make_napari_viewer, qtbot, ct_too=False
    )
    assert widget.labels_combo.currentText() == seg_b.name
    said = widget.status.text()
    assert said.endswith(
        "\n⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was measured."
    ), said
    assert "A CT segmentation" not in said
    assert widget.status._kind == "warning"
    ct_b.visible = False  # B's CT hidden too: A's labels are what is on view
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.status.text().endswith(
        "⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was measured, not "
        "'A CT segmentation' on view (choose it under Labels to measure it)."
    ), widget.status.text()


def test_the_hidden_line_follows_the_eyes_turned_after_measuring(make_napari_viewer, qtbot):
    """Measured with B's layers hidden, the line "'B CT segmentation' is hidden … not 'A CT
    segmentation' on view" stayed once both were shown again, saying something false: it is
    said again as the eyes turn (B's CT shown: B's is on view), and goes once the labels are
    shown. Removed labels are let go (their eyes no longer followed)."""
    viewer, widget, _, (ct_b, seg_b) = _measured_with_b_hidden(
        make_napari_viewer, qtbot, ct_too=True
    )
    assert "not 'A CT segmentation' on view" in widget.status.text()
    ct_b.visible = True  # B's CT over A's: the line no longer names A
    assert widget.status.text() == (
        "Measured 'B CT segmentation'.\n"
        "⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was measured."
    )
    assert widget.status._kind == "warning"
    seg_b.visible = True  # shown: nothing hidden to say
    assert widget.status.text() == "Measured 'B CT segmentation'."
    assert widget.status._kind == ""
    seg_b.visible = False  # hidden after the fact: the figures' line stays as it is
    assert widget.status.text() == "Measured 'B CT segmentation'."

    # the line's labels removed: their eyes and their CT's are let go
    seg_b.visible = True
    ct_b.visible = seg_b.visible = False
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert "is hidden" in widget.status.text()
    before = len(ct_b.events.visible.callbacks)
    viewer.layers.remove(seg_b)
    assert len(ct_b.events.visible.callbacks) == before - 1
    said = widget.status.text()
    ct_b.visible = True
    assert widget.status.text() == said


def test_the_hidden_line_follows_renames_and_goes_once_the_labels_are_shown(
    make_napari_viewer, qtbot
):
    """A layer the amber line names renamed while it was up (the status took the new name),
    the line was no longer found as said: it stayed, amber, after the labels were shown
    again. It follows the renames and goes then."""
    viewer, widget, (_, seg_a), (ct_b, seg_b) = _measured_with_b_hidden(
        make_napari_viewer, qtbot, ct_too=True
    )
    assert "not 'A CT segmentation' on view" in widget.status.text()
    seg_a.name = "A renamed"  # the one named on view
    seg_b.name = "B renamed"  # the labels measured
    assert widget.status.text() == (
        "Measured 'B renamed'.\n⚠ 'B renamed' is hidden: the layer chosen in this panel was "
        "measured, not 'A renamed' on view (choose it under Labels to measure it)."
    )
    ct_b.visible = True  # B's CT over A's: A is no longer named
    assert widget.status.text() == (
        "Measured 'B renamed'.\n⚠ 'B renamed' is hidden: the layer chosen in this panel was "
        "measured."
    )
    seg_b.visible = True  # shown: the line goes
    assert widget.status.text() == "Measured 'B renamed'."
    assert widget.status._kind == ""


def test_labels_hidden_over_their_ct_name_labels_on_view_beside_it_or_in_grid_mode(
    make_napari_viewer, qtbot
):
    """Its own CT shown was taken to cover every layer under it: A's labels on view beside
    B's scan (another grid), or in a grid cell of their own, were no longer named. A CT covers
    labels only where its box in the world holds theirs, and never in grid mode."""
    from _widget_data import two_patients

    viewer, widget, _, _ = _measured_with_b_hidden(  # B's scan beside A's
        make_napari_viewer, qtbot, ct_too=False, same_grid=False
    )
    on_view = (
        "⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was measured, not "
        "'A CT segmentation' on view (choose it under Labels to measure it)."
    )
    assert widget.status.text().endswith(on_view), widget.status.text()

    viewer.layers.clear()
    (_, _), (_, seg_b) = two_patients(viewer, same_grid=True)  # B's CT over A's layers
    seg_b.visible = False
    _layers.grid_of(viewer).enabled = True  # but each layer in a cell of its own
    widget.labels_combo.setCurrentText(seg_b.name)
    widget.measure_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.status.text().endswith(on_view), widget.status.text()
    _layers.grid_of(viewer).enabled = False  # B's CT covers A's labels again: the line says so
    assert widget.status.text().endswith(
        "⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was measured."
    ), widget.status.text()
