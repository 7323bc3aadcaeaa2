"""Accessibility of the panels: keyboard focus, screen-reader names, colours, font size."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_livertumor._widgets import _layers

pytestmark = pytest.mark.gui


def _dock_of(widget):
    from qtpy.QtWidgets import QDockWidget

    while widget is not None and not isinstance(widget, QDockWidget):
        widget = widget.parentWidget()
    return widget


def test_tab_past_a_panel_shows_the_tab_the_focus_goes_into(make_napari_viewer, qtbot):
    """Qt moves the docks of tabs not shown off screen and counts them visible: Tab past
    Load's last control went into Segment's controls, unseen (Space then ran it)."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication, QComboBox

    from napari_livertumor._widgets.demo import dock_widgets

    viewer = make_napari_viewer(show=True)
    panels = dock_widgets(viewer, ["load", "segment", "refine"])
    window = viewer.window._qt_window
    load_dock = _dock_of(panels["load"])
    qtbot.wait(200)
    load_dock.raise_()
    window.activateWindow()
    qtbot.wait(200)
    assert _dock_of(panels["segment"]).visibleRegion().isEmpty()  # (a tab behind Load's)
    last = panels["load"].findChildren(QComboBox)[-1]  # the HU window
    last.setFocus(Qt.TabFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is last, timeout=20_000)
    app = QApplication.instance()
    entered = []
    for _ in range(12):
        QTest.keyClick(app.focusWidget(), Qt.Key_Tab)
        app.processEvents()
        focus = app.focusWidget()
        dock = _dock_of(focus)
        if dock is None or dock is load_dock:
            continue
        if dock in (_dock_of(panels["segment"]), _dock_of(panels["refine"])):
            entered.append(dock)
            assert not dock.visibleRegion().isEmpty(), type(focus).__name__  # shown
    assert entered  # Tab did go on into the next panel


def test_refine_preview_colour_follows_the_palette(make_napari_viewer, monkeypatch):
    """Cyan over the safe palette's sky-blue liver almost vanished (deuteranopes: ΔE 12.9)."""
    from napari_livertumor._widgets.refine import PREVIEW_NAME

    monkeypatch.setattr(_layers, "_palette", ["standard"])
    viewer = make_napari_viewer()
    preview = viewer.add_labels(
        np.ones((1, 4, 4), np.uint8), name=PREVIEW_NAME, metadata={_layers.ROLE: "preview"}
    )
    _layers.set_preview_color(preview)
    colour = preview.colormap.map(np.array([1]))[0]
    np.testing.assert_allclose(colour, _layers.PREVIEW_COLORS["standard"])
    np.testing.assert_allclose(colour[:3], (0.0, 0.95, 1.0))  # cyan: kept
    _layers.set_palette("colour-blind safe", viewer)  # chosen while the preview shows
    safe = preview.colormap.map(np.array([1]))[0]
    np.testing.assert_allclose(safe, _layers.PREVIEW_COLORS["colour-blind safe"])
    sky_blue = _layers.PALETTES["colour-blind safe"][0][1]
    assert _delta_e(_deutan(safe[:3]), _deutan(sky_blue[:3])) > 25
    assert tuple(safe) != tuple(_layers.PALETTES["colour-blind safe"][1][2])  # not truth's
    _layers.set_palette("standard", viewer)
    np.testing.assert_allclose(
        preview.colormap.map(np.array([1]))[0], _layers.PREVIEW_COLORS["standard"]
    )


# Machado, Oliveira and Fernandes 2009, full severity, on linear RGB
_DEUTAN = np.array(
    [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.01182, 0.04294, 0.968881]]
)


def _linear(rgb):
    c = np.asarray(rgb, float)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb(lin):
    c = np.clip(lin, 0, 1)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def _deutan(rgb):
    return _srgb(_linear(rgb[:3]) @ _DEUTAN.T)


def _lab(rgb):
    """CIE L*a*b* (D65) of an sRGB colour."""
    m = np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
         [0.0193339, 0.1191920, 0.9503041]]
    )  # fmt: skip
    xyz = m @ _linear(rgb[:3]) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _delta_e(a, b) -> float:
    """CIE76 colour difference."""
    return float(np.linalg.norm(_lab(a) - _lab(b)))


def test_the_safe_palettes_ground_truth_stands_apart_from_its_segmentation_for_deuteranopes():
    """With *Contours only* the safe palette's orange segmented tumor and its yellow truth liver
    read as one line for deuteranopes (CIEDE2000 11.6): its truth colours differ in lightness
    from every segmentation colour. (The standard palette is for normal colour vision: its
    green liver and yellow truth liver merge for deuteranopes, which is what this one is for.)"""
    segmentation, truth = _layers.PALETTES["colour-blind safe"]
    for t, s in itertools.product(truth.values(), segmentation.values()):
        # measured (CIE76): at least 25.9, the old colours 17.0; lightness at least 18.4 apart,
        # the old 3.3
        assert _delta_e(_deutan(t), _deutan(s)) >= 22, (t, s)
        assert abs(_lab(t)[0] - _lab(s)[0]) >= 12, (t, s)  # lightness, not hue alone
    for a, b in itertools.combinations(truth.values(), 2):  # and apart from each other
        # measured: at least 29.3 (the old: 17.6)
        assert _delta_e(_deutan(a), _deutan(b)) >= 25, (a, b)
    # the Refine preview stands out from grey tissue at every brightness (white was lost over
    # bright liver in the liver window) and from the segmentation: measured 43 and 62.9
    preview = _layers.PREVIEW_COLORS["colour-blind safe"]
    for grey in (0.4, 0.6, 0.8, 1.0):
        assert _delta_e(preview, (grey, grey, grey)) >= 35, grey
    for s in segmentation.values():
        assert _delta_e(_deutan(preview), _deutan(s)) >= 35, s


def test_the_standard_ground_truth_stands_apart_from_its_segmentation():
    segmentation, truth = _layers.PALETTES["standard"]
    for t, s in itertools.product(truth.values(), segmentation.values()):
        assert _delta_e(t, s) >= 25, (t, s)  # measured (CIE76): at least 27.6


def test_tables_fields_and_log_follow_napari_font_size(make_napari_viewer, qtbot):
    """napari's font size grew labels and buttons, not the tables, paths and the log."""
    from napari.settings import get_settings
    from qtpy.QtWidgets import QLineEdit

    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.load import LoadWidget
    from napari_livertumor._widgets.train import TrainWidget

    viewer = make_napari_viewer()
    load, inspect, train = LoadWidget(viewer), InspectWidget(viewer), TrainWidget(viewer)
    for panel in (load, inspect, train):
        viewer.window.add_dock_widget(panel)
    qtbot.wait(50)
    appearance = get_settings().appearance
    before = appearance.font_size
    watched = {
        "series": load.series_table,
        "path": load.path,
        "volumes": inspect.volume_table,
        "lesions": inspect.lesion_table,
        "log": train.log,
        "data": train.data,
    }
    assert all(isinstance(w, QLineEdit) for w in (load.path, train.data))
    sizes = {k: w.font().pointSizeF() for k, w in watched.items()}
    label = train.loss_ax.xaxis.label.get_fontsize()
    try:
        appearance.font_size = 16
        grown = {k: w.font().pointSizeF() for k, w in watched.items()}
        assert all(grown[k] == 16 > sizes[k] for k in watched), (sizes, grown)
        assert train.loss_ax.xaxis.label.get_fontsize() > label  # the plot's too
    finally:
        appearance.font_size = before
    assert all(w.font().pointSizeF() == before for w in watched.values())


def test_panels_give_screen_readers_names_and_reach_the_status_by_tab(make_napari_viewer, qtbot):
    from qtpy.QtCore import Qt

    from napari_livertumor._widgets._common import PanelScroll, set_status
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.load import LoadWidget
    from napari_livertumor._widgets.train import TrainWidget

    viewer = make_napari_viewer()
    load, inspect, train = LoadWidget(viewer), InspectWidget(viewer), TrainWidget(viewer)
    for panel in (load, inspect, train):
        viewer.window.add_dock_widget(panel)
    qtbot.wait(50)
    assert load.series_table.accessibleName() == "Series found"
    assert inspect.volume_table.accessibleName() == "Volumes"
    assert inspect.lesion_table.accessibleName() == "Lesions"
    assert inspect.score_table.accessibleName() == "Scores against ground truth"
    assert train.log.accessibleName() == "Training log"
    assert train.init_folder.accessibleName()
    assert load.status.accessibleName() == "Load status"
    assert inspect.status.accessibleName() == "Inspect status"
    assert train.status.accessibleName() == "Train status"
    for panel in (load, inspect, train):
        assert panel.findChild(PanelScroll).focusPolicy() == Qt.NoFocus  # no unnamed stop
    # Check data's summary: its box is no stop of its own, the text in it is, named
    assert train.summary_box.focusPolicy() == Qt.NoFocus
    assert train.summary.accessibleName() == "Check data summary"
    set_status(load.status, "No series found in /nowhere", error=True)
    assert load.status.focusPolicy() & Qt.TabFocus  # Tab reaches the message
    assert load.status.textInteractionFlags() & Qt.TextSelectableByKeyboard
    set_status(load.status, "")
    assert not load.status.focusPolicy() & Qt.TabFocus  # not a stop on nothing


def test_error_and_warning_status_differ_for_a_screen_reader_not_by_colour_only(qtbot):
    from qtpy.QtWidgets import QLabel

    from napari_livertumor._widgets._common import StatusLabel, set_status

    status, plain = StatusLabel(), QLabel()
    qtbot.addWidget(status)
    qtbot.addWidget(plain)
    for label in (status, plain):
        set_status(label, "Could not read the file", error=True)
        assert label.accessibleDescription() == "error"
        assert label.text() == "Could not read the file"  # the text itself unchanged
        set_status(label, "Few slices", warning=True)
        assert label.accessibleDescription() == "warning"
        set_status(label, "Loaded")
        assert label.accessibleDescription() == ""


def _rows_cut_off(table) -> list[int]:
    """The rows of ``table`` not wholly inside its viewport (scrolled to the top)."""
    table.verticalScrollBar().setValue(0)
    bottom = table.viewport().height()
    return [
        r
        for r in range(table.rowCount())
        if table.visualRect(table.model().index(r, 0)).bottom() >= bottom
    ]


def test_inspect_s_tables_refit_when_napari_s_font_size_changes(make_napari_viewer, qtbot):
    """The tables kept the height fitted when they were filled: napari's font size raised from
    9 to 16 left Volumes scrolling with "Lesions" out of sight, and the scores half a row
    short, till the next Measure."""
    from _widget_data import tiny_ct
    from napari.settings import get_settings

    from napari_livertumor._widgets.inspect import InspectWidget

    appearance = get_settings().appearance
    before = appearance.font_size
    appearance.font_size = 9
    try:
        viewer = make_napari_viewer(show=True)
        viewer.window._qt_window.resize(1600, 1000)
        vol, truth = tiny_ct()
        _layers.add_ct_layer(viewer, vol, name="tiny CT")
        _layers.add_labels_layer(viewer, truth, vol, "tiny CT ground truth", role="ground_truth")
        pred = truth.copy()
        pred[2:4, 10:13, 20:23] = 2  # a second lesion
        _layers.add_labels_layer(viewer, pred, vol, "tiny CT segmentation", ct_layer_name="tiny CT")
        widget = InspectWidget(viewer)
        viewer.window.add_dock_widget(widget)
        widget.truth_combo.setCurrentText("tiny CT ground truth")
        widget.measure_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
        tables = (widget.volume_table, widget.lesion_table, widget.score_table)
        qtbot.wait(100)
        assert all(t.isVisible() and t.rowCount() >= 2 for t in tables)
        assert not any(_rows_cut_off(t) for t in tables)
        fitted = [t.height() for t in tables]

        appearance.font_size = 16
        qtbot.wait(100)
        assert all(t.height() > h for t, h in zip(tables, fitted, strict=True))  # (taller rows)
        cut = {t.accessibleName(): _rows_cut_off(t) for t in tables}
        assert not any(cut.values()), cut
        assert not any(t.verticalScrollBar().isVisible() for t in tables)
    finally:
        appearance.font_size = before
