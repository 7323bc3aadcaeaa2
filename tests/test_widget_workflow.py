"""The whole workflow as a user drives it, on a synthetic patient in the HCC-TACE-Seg layout:
Load (series list, ground truth found) → Segment → Inspect (volumes, Dice) → Refine → Export →
reload."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_data import tiny_models

from napari_livertumor._widgets import _layers
from napari_livertumor._widgets.export import ExportWidget
from napari_livertumor._widgets.inspect import InspectWidget
from napari_livertumor._widgets.load import SOURCES, LoadWidget
from napari_livertumor._widgets.segment import SegmentWidget
from napari_livertumor.stats import volume_shown

pytestmark = pytest.mark.gui
pytest.importorskip("napari_livertumor.pipeline")
pytest.importorskip("napari_livertumor.io.seg")
synth = pytest.importorskip("napari_livertumor.synth")
RefineWidget = pytest.importorskip("napari_livertumor._widgets.refine").RefineWidget


@pytest.fixture(scope="module")
def tcia_patient(tmp_path_factory):
    root = synth.make_cohort(
        tmp_path_factory.mktemp("tcia"), 1, seed=0, layout="tcia", shape="small"
    )
    return root / "HCC_001"


def _idle(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def test_load_segment_inspect_export_and_reload(
    make_napari_viewer, qtbot, tcia_patient, tmp_path, monkeypatch
):
    from napari_livertumor.io.nifti import read_nifti
    from napari_livertumor.io.seg import read_dicom_seg

    viewer = make_napari_viewer()
    load, segment = LoadWidget(viewer), SegmentWidget(viewer)
    inspect, export = InspectWidget(viewer), ExportWidget(viewer)
    for w in (load, segment, inspect, export):
        viewer.window.add_dock_widget(w)

    # Load: the folder's CT series is listed and its DICOM SEG offered as ground truth
    load.source.setCurrentText(SOURCES[0])
    load.path.setText(str(tcia_patient))
    load.scan_button.click()
    _idle(qtbot, load)
    assert load.series_table.rowCount() == 1
    assert load.truth_path.text().endswith(".dcm")
    load.load_button.click()
    _idle(qtbot, load)
    (ct,) = _layers.ct_layers(viewer)
    (truth,) = _layers.labels_layers(viewer, role="ground_truth")
    assert {1, 2} <= set(np.unique(truth.data))
    np.testing.assert_allclose(truth.translate, ct.translate)

    # Segment with tiny models (plumbing, not accuracy)
    segment.add_model_folder(tiny_models(tmp_path / "models"))
    segment.device_combo.setCurrentText("cpu")
    assert segment.ct_combo.currentText() == ct.name
    segment.run_button.click()
    _idle(qtbot, segment)
    seg = viewer.layers[f"{ct.name} segmentation"]
    assert seg.data.shape == ct.data.shape
    np.testing.assert_allclose(seg.scale, ct.scale)

    # Inspect: volumes and Dice against the loaded ground truth
    inspect.labels_combo.setCurrentText(seg.name)
    inspect.truth_combo.setCurrentText(truth.name)
    inspect.measure_button.click()
    _idle(qtbot, inspect)
    liver_ml = np.count_nonzero(seg.data) * np.prod(ct.scale) / 1000
    assert inspect.volume_table.item(0, 1).text() == volume_shown(liver_ml)
    assert inspect.score_table.rowCount() == 2

    # The user redraws the labels by hand (the tiny models are not accurate), refines the
    # tumor contours, paints one more correction, then exports NIfTI + DICOM SEG
    drawn = np.where(np.isin(truth.data, (1, 3)), 1, 0).astype(np.uint8)
    drawn[truth.data == 2] = 2
    seg.data = drawn
    refine = RefineWidget(viewer)
    viewer.window.add_dock_widget(refine)
    refine.refresh_layers()
    refine.ct_combo.setCurrentText(ct.name)
    refine.mask_combo.setCurrentText(seg.name)
    refine.apply_all_button.click()
    _idle(qtbot, refine, timeout=120_000)
    assert "rror" not in refine.status.text()
    assert set(np.unique(seg.data)) <= {0, 1, 2} and (seg.data == 2).any()
    seg.data[5, 10:20, 10:20] = 2
    export.labels_combo.setCurrentText(seg.name)
    export.folder.setText(str(tmp_path / "out"))
    export.seg_check.setChecked(True)
    export.export_button.click()
    _idle(qtbot, export)
    assert "Wrote 5 file(s) of " in export.status.text()

    volume = ct.metadata["ct_volume"]
    case = volume.meta["patient_id"]
    back = read_nifti(tmp_path / "out" / f"{case}_labels.nii.gz")
    np.testing.assert_array_equal(back.array, seg.data)
    assert back.same_grid(volume)
    np.testing.assert_array_equal(
        read_dicom_seg(tmp_path / "out" / f"{case}_seg.dcm", volume), seg.data
    )
    # the stats say how the labels were made, with the command line's keys
    import json

    stats = json.loads((tmp_path / "out" / f"{case}_stats.json").read_text())
    assert stats["source"] == "edited" and "edited after the model ran" in stats["note_edited"]
    assert stats["device"] == "cpu" and stats["refine"] is False and stats["version"]
    assert stats["models"]["liver"].endswith("liver") and isinstance(stats["warnings"], list)
    assert "model_warnings" not in stats


def test_no_layer_complaints_clear_once_a_layer_comes(make_napari_viewer):
    """Pressed with no layers, Segment, Inspect and Export said so in red, and kept saying it
    after a CT and a mask had been added and chosen in their lists."""
    from _widget_data import tiny_ct

    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets.export import ExportWidget
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    segment, inspect, export = SegmentWidget(viewer), InspectWidget(viewer), ExportWidget(viewer)
    segment.run_button.click()
    inspect.measure()
    export.export_button.click()
    assert all(w.status.text() for w in (segment, inspect, export))
    vol, labels = tiny_ct()
    _layers.add_ct_layer(viewer, vol, name="CT")
    assert segment.status.text() == ""
    viewer.add_layer(_layers.make_labels_layer(labels, vol, "CT segmentation", ct_layer_name="CT"))
    assert inspect.status.text() == "" and export.status.text() == ""


def test_panels_fit_a_768_px_screen_stacked_and_results_get_room(make_napari_viewer, qtbot):
    """Opened one by one from the Plugins menu, the six panels stacked in one column made the
    window 2600 px tall (Export and Train off screen), then 793 px (Train's form alone
    scrolled); results appearing in Inspect then stayed behind a scroll bar beside a
    half-empty Segment panel."""
    from _widget_data import tiny_ct

    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets._common import PanelScroll
    from napari_livertumor._widgets.export import ExportWidget
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.load import LoadWidget
    from napari_livertumor._widgets.refine import RefineWidget
    from napari_livertumor._widgets.segment import SegmentWidget
    from napari_livertumor._widgets.train import TrainWidget

    viewer = make_napari_viewer(show=True)
    panels = {}
    for cls in (LoadWidget, SegmentWidget, RefineWidget, InspectWidget, ExportWidget, TrainWidget):
        panels[cls] = cls(viewer)
        viewer.window.add_dock_widget(panels[cls], name=cls.__name__, area="right")
    window = viewer.window._qt_window
    assert window.minimumSizeHint().height() < 700  # a 768-px screen less its task bar

    for cls in (LoadWidget, RefineWidget, ExportWidget, TrainWidget):  # two panels left
        viewer.window.remove_dock_widget(panels[cls].parent())
    window.resize(1400, 900)
    vol, labels = tiny_ct()
    _layers.add_ct_layer(viewer, vol, name="CT")
    _layers.add_labels_layer(viewer, labels, vol, "CT segmentation", ct_layer_name="CT")
    inspect = panels[InspectWidget]
    inspect.measure_button.click()
    qtbot.waitUntil(lambda: not inspect.busy, timeout=30_000)
    scroll = inspect.findChild(PanelScroll)
    qtbot.waitUntil(
        lambda: scroll.viewport().height() + 2 >= scroll.widget().sizeHint().height(),
        timeout=20_000,
    )


def test_two_panels_share_the_column_and_a_refusal_scrolls_into_view(make_napari_viewer, qtbot):
    """Docked one after the other, the second panel took the whole column and left the first
    cut to a few rows (its Load button out of sight) above empty space; a refusal written
    below the visible part of a scrolled panel looked like a button doing nothing."""
    from napari_livertumor._widgets._common import PanelScroll
    from napari_livertumor._widgets.load import LoadWidget
    from napari_livertumor._widgets.segment import SegmentWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 1000)
    load, segment = LoadWidget(viewer), SegmentWidget(viewer)
    for w in (load, segment):
        viewer.window.add_dock_widget(w, area="right")
    scroll = load.findChild(PanelScroll)
    qtbot.waitUntil(
        lambda: scroll.viewport().height() + 2 >= scroll.content_height(), timeout=20_000
    )

    viewer.window._qt_window.resize(1400, 450)  # a short window: both panels scroll
    seg_scroll = segment.findChild(PanelScroll)
    qtbot.waitUntil(lambda: seg_scroll.verticalScrollBar().maximum() > 0, timeout=20_000)
    seg_scroll.verticalScrollBar().setValue(0)
    segment.run_button.click()  # no CT: refused, in its status at the bottom
    qtbot.waitUntil(lambda: seg_scroll.verticalScrollBar().value() > 0, timeout=20_000)


def test_train_in_the_column_leaves_every_panel_a_usable_height(make_napari_viewer, qtbot):
    """With Train in the column (its form alone scrolled, 347 px at least) the panels docked
    around it were squashed to one row (48 px), even on a 1080-px screen."""
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.load import LoadWidget
    from napari_livertumor._widgets.refine import RefineWidget
    from napari_livertumor._widgets.train import TrainWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1900, 1000)
    panels = []
    for cls in (InspectWidget, LoadWidget, TrainWidget, RefineWidget):
        panels.append(cls(viewer))
        viewer.window.add_dock_widget(panels[-1], name=cls.__name__, area="right")
        qtbot.wait(200)
    qtbot.wait(300)
    heights = {type(p).__name__: p.height() for p in panels}
    assert min(heights.values()) >= 95, heights  # a few rows, not one (67 px)
    # and when a panel's content grows (results, a notes box) it takes room, not all of it
    from napari_livertumor._widgets._common import PanelScroll

    scroll = panels[-1].findChild(PanelScroll)
    scroll._asked = 1  # as if its content had just grown
    scroll._claim_room()
    qtbot.wait(300)
    heights = {type(p).__name__: p.height() for p in panels}
    assert min(heights.values()) >= 95, heights  # a few rows, not one (67 px)


def test_results_of_a_panel_in_a_full_column_are_not_squashed(
    make_napari_viewer, qtbot, monkeypatch
):
    """Five panels in one column on a 720-px screen: Inspect's results (Measure) shrank its
    dock to one row (71 px), the neighbours' usable heights adding up past the column."""
    from napari_livertumor._widgets import _common
    from napari_livertumor._widgets._common import PanelScroll

    # panels docked one by one join as tabs; a column is what a user dragging them makes
    monkeypatch.setattr(_common, "tab_with_other_panels", lambda widget: None)
    from napari_livertumor._widgets.export import ExportWidget
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.load import LoadWidget
    from napari_livertumor._widgets.refine import RefineWidget
    from napari_livertumor._widgets.segment import SegmentWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 720)
    panels = []
    for cls in (LoadWidget, SegmentWidget, RefineWidget, InspectWidget, ExportWidget):
        panels.append(cls(viewer))
        viewer.window.add_dock_widget(panels[-1], name=cls.__name__, area="right")
        qtbot.wait(200)
    qtbot.wait(300)
    inspect, refine = panels[3], panels[2]
    # content that grew on its own (a live preview's note): room, but never half the column
    before = {p: p.height() for p in panels}
    scroll = refine.findChild(PanelScroll)
    scroll._asked = 1
    scroll._claim_room()
    qtbot.wait(300)
    column = sum(p.height() for p in panels)
    assert before[refine] - 2 <= refine.height() < column // 3, (before[refine], refine.height())
    # the results of a job the user started (Measure): at least a third of it
    before = inspect.height()
    scroll = inspect.findChild(PanelScroll)
    scroll._asked = 1  # as if its results had just appeared
    scroll.results_shown()
    scroll._claim_room()
    qtbot.wait(300)
    assert inspect.height() >= max(before, column // 3), (before, inspect.height(), column)


def test_a_long_path_in_a_status_never_widens_the_panel(make_napari_viewer, qtbot):
    """One 64-character DICOM UID in Load's red line widened its dock from 341 to 1196 px,
    and the window past a 1366-px screen; the status reads as it was written."""
    from napari_livertumor._widgets.load import LoadWidget

    viewer = make_napari_viewer(show=True)
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load, area="right")
    qtbot.wait(200)
    width = load.minimumSizeHint().width()
    uid = "1.3.6.1.4.1.14519.5.2.1.1706.8374.643249677828306008300337414785"
    load.source.setCurrentIndex(1)  # NIfTI file
    load.path.setText(f"/data/PACS_export/HCC_017/{uid}/{uid}.nii.gz")
    load.load_button.click()
    qtbot.waitUntil(lambda: "not found" in load.status.text(), timeout=20_000)
    qtbot.wait(200)
    assert load.minimumSizeHint().width() <= width + 5
    assert f"{uid}/{uid}.nii.gz" in load.status.text()  # no hidden break points in the text


def test_a_status_can_be_selected_and_copied_without_its_break_points(make_napari_viewer, qtbot):
    """A path or UID in a message is something to paste elsewhere: the status is selectable,
    and what is copied is the message as written, not its display with hidden break points."""
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QKeySequence
    from qtpy.QtWidgets import QApplication

    from napari_livertumor._widgets._common import _ZWSP
    from napari_livertumor._widgets.load import LoadWidget

    viewer = make_napari_viewer(show=True)
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load, area="right")
    path = (
        "/data/PACS_export/HCC_017/1.3.6.1.4.1.14519.5.2.1.1706.8374.6432496778283060083/ct.nii.gz"
    )
    load.status.setText(f"{path}: not found")
    assert load.status.textInteractionFlags() & Qt.TextSelectableByMouse
    assert _ZWSP in _shown_text(load.status)  # the display does have break points
    clipboard = QApplication.clipboard()
    clipboard.setText("")
    load.status.setSelection(0, len(_shown_text(load.status)))
    qtbot.keySequence(load.status, QKeySequence.Copy)
    assert clipboard.text() == f"{path}: not found"
    load.status.setSelection(0, 0)
    assert load.status.copy_text() == f"{path}: not found"  # nothing selected: the message
    assert clipboard.text() == f"{path}: not found"


def _shown_text(label) -> str:
    """What the label shows (StatusLabel.text() gives the message as written)."""
    from qtpy.QtWidgets import QLabel

    return QLabel.text(label)


def test_warnings_and_errors_are_legible_in_the_light_theme(make_napari_viewer):
    """The dark theme's amber and red measured 1.6:1 and 2.3:1 on napari's light panels."""
    from napari_livertumor._widgets._common import _STATUS_COLORS, set_status
    from napari_livertumor._widgets.inspect import InspectWidget

    viewer = make_napari_viewer(show=True)
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    set_status(widget.status, "x", error=True)
    assert _STATUS_COLORS["dark"][0] in widget.status.styleSheet()
    viewer.theme = "light"
    set_status(widget.status, "x", error=True)
    assert _STATUS_COLORS["light"][0] in widget.status.styleSheet()
    set_status(widget.status, "x", warning=True)
    assert _STATUS_COLORS["light"][1] in widget.status.styleSheet()
    set_status(widget.status, "x")
    assert widget.status.styleSheet() == ""


def _contrast(fg: str, bg: str) -> float:
    def lum(hex_color: str) -> float:
        rgb = [int(hex_color.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(fg), lum(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_status_colours_reach_text_contrast_on_both_themes():
    from napari.utils.theme import get_theme

    from napari_livertumor._widgets._common import _STATUS_COLORS

    for theme, colors in _STATUS_COLORS.items():
        background = get_theme(theme).background.as_hex()
        for color in colors:
            assert _contrast(color, background) >= 4.5, (theme, color)


def test_status_colours_follow_a_theme_change(make_napari_viewer, qtbot):
    """A warning written in the light theme stayed dark amber on the dark one."""
    from napari_livertumor._widgets._common import _STATUS_COLORS, set_status
    from napari_livertumor._widgets.inspect import InspectWidget

    viewer = make_napari_viewer(show=True)
    viewer.theme = "light"
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    set_status(widget.status, "careful", warning=True)
    assert _STATUS_COLORS["light"][1] in widget.status.styleSheet()
    viewer.theme = "dark"
    qtbot.waitUntil(lambda: _STATUS_COLORS["dark"][1] in widget.status.styleSheet(), timeout=20_000)


def test_a_long_layer_name_keeps_its_last_word_in_a_narrow_picker(qtbot):
    """ "HCC_001 LIVER 3 PHASE CAP segmentation" and "… ground truth" both read
    "HCC_001 LIVER 3 PH" in a narrow panel: the end that tells them apart was cut."""
    from napari_livertumor._widgets._common import NameCombo

    combo = NameCombo()
    qtbot.addWidget(combo)
    names = ["HCC_001 LIVER 3 PHASE CAP segmentation", "HCC_001 LIVER 3 PHASE CAP ground truth"]
    combo.addItems(names)
    combo.setFixedWidth(220)
    combo.show()
    qtbot.waitExposed(combo)
    shown = combo.shown_text()
    assert shown.startswith("HCC") and shown.endswith("… segmentation"), shown
    combo.setCurrentIndex(1)
    assert combo.shown_text().endswith("… truth") and "Chosen: " + names[1] in combo.toolTip()
    combo.grab()  # it paints
    combo.setFixedWidth(600)  # room enough: the name in full
    assert combo.shown_text() == names[1]


def test_a_ground_truth_is_see_through_in_3d_and_as_it_was_in_2d(make_napari_viewer, qtbot):
    """napari draws no outlines in 3D: the ground truth (outlines at 0.9 opacity in 2D) hid
    the segmentation under an opaque blob."""
    from _widget_data import tiny_ct
    from napari.utils._proxies import PublicOnlyProxy

    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets.inspect import InspectWidget

    viewer = make_napari_viewer()
    vol, truth = tiny_ct()
    _layers.add_ct_layer(viewer, vol, name="CT")
    gt = _layers.add_labels_layer(viewer, truth, vol, "CT ground truth", role="ground_truth")
    seg = _layers.add_labels_layer(viewer, (truth > 0).astype("uint8"), vol, "CT segmentation")
    # any panel watches its viewer, also when opened from the Plugins menu, which hands it a
    # proxy of the viewer (held weakly, the proxy was gone at once: no dimming)
    viewer.window.add_dock_widget(InspectWidget(PublicOnlyProxy(viewer)))
    before, seg_before = gt.opacity, seg.opacity
    viewer.dims.ndisplay = 3
    assert gt.opacity == _layers.GROUND_TRUTH_3D_OPACITY and seg.opacity == seg_before
    later = _layers.add_labels_layer(viewer, truth, vol, "CT ground truth 2", role="ground_truth")
    assert later.opacity == _layers.GROUND_TRUTH_3D_OPACITY  # opened while in 3D
    viewer.dims.ndisplay = 2
    assert gt.opacity == before and later.opacity == before
    viewer.window.add_dock_widget(InspectWidget(viewer))  # a second panel: watched once
    viewer.dims.ndisplay = 3
    viewer.dims.ndisplay = 2
    assert gt.opacity == before


def test_the_control_with_the_keyboards_focus_is_outlined(qtbot):
    """napari's stylesheet marks no focused control: tabbing through a panel showed nothing of
    where one was (screen grabs of five focus states were pixel-identical)."""
    from qtpy.QtWidgets import QPushButton

    from napari_livertumor._widgets._common import PanelScroll

    panel = PanelScroll()
    first, second = QPushButton("Run"), QPushButton("Folder…")
    panel.content.addWidget(first)
    panel.content.addWidget(second)
    qtbot.addWidget(panel)
    panel.show()
    panel.activateWindow()
    qtbot.waitExposed(panel)
    first.setFocus()
    qtbot.waitUntil(first.hasFocus, timeout=20_000)
    focused = first.grab().toImage()
    second.setFocus()
    qtbot.waitUntil(second.hasFocus, timeout=20_000)
    assert first.grab().toImage() != focused


def test_a_panel_on_a_screen_too_small_for_it_scrolls_sideways(
    make_napari_viewer, qtbot, monkeypatch
):
    """A 1366-px screen at 150 % (911 px) is narrower than napari's window plus a panel's
    content: the panel's right edge was off the screen, its checkboxes cut off."""
    from qtpy.QtCore import Qt

    from napari_livertumor._widgets import _common
    from napari_livertumor._widgets._common import PanelScroll
    from napari_livertumor._widgets.inspect import InspectWidget

    monkeypatch.setattr(_common, "NAPARI_OWN_WIDTH", 0)  # room beside napari for the panel
    viewer = make_napari_viewer(show=True)
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Inspect", area="right")
    scroll = widget.findChild(PanelScroll)
    content = scroll.widget().minimumSizeHint().width()
    qtbot.waitUntil(lambda: scroll.minimumWidth() > content, timeout=20_000)
    assert scroll.horizontalScrollBarPolicy() == Qt.ScrollBarAlwaysOff
    # napari's own window leaves only MIN_PANEL_WIDTH beside it
    screen = scroll.screen().availableGeometry().width()
    monkeypatch.setattr(_common, "NAPARI_OWN_WIDTH", screen - _common.MIN_PANEL_WIDTH)
    scroll.widget().updateGeometry()
    qtbot.waitUntil(lambda: scroll.minimumWidth() == _common.MIN_PANEL_WIDTH, timeout=20_000)
    assert scroll.horizontalScrollBarPolicy() == Qt.ScrollBarAsNeeded
    assert scroll.sizeHint().width() == _common.MIN_PANEL_WIDTH
    # a status wider than the panel is brought into view up and down only (it was centred
    # sideways, every field's left edge cut off)
    scroll.resize(_common.MIN_PANEL_WIDTH, 300)
    scroll.horizontalScrollBar().setValue(0)
    _common.set_status(widget.status, "Measured 'a labels layer with a long name'. " * 4)
    _common.scroll_into_view(widget.status)
    qtbot.wait(200)
    assert scroll.horizontalScrollBar().value() == 0


def test_the_focus_mark_reaches_contrast_and_follows_the_theme(make_napari_viewer, qtbot):
    """The focus blue measured 2.7:1 on the light theme's panels (a focused checkbox's label
    hard to read); it has a blue of its own there, and follows a theme change."""
    from napari.utils.theme import get_theme

    from napari_livertumor._widgets._common import FOCUS_COLORS, PanelScroll
    from napari_livertumor._widgets.inspect import InspectWidget

    for theme, color in FOCUS_COLORS.items():
        assert _contrast(color, get_theme(theme).background.as_hex()) >= 4.5, theme
    viewer = make_napari_viewer(show=True)
    viewer.theme = "light"
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    inner = widget.findChild(PanelScroll).widget()
    qtbot.waitUntil(lambda: FOCUS_COLORS["light"] in inner.styleSheet(), timeout=20_000)
    viewer.theme = "dark"
    qtbot.waitUntil(lambda: FOCUS_COLORS["dark"] in inner.styleSheet(), timeout=20_000)
