"""Panels in more than one place: the demo's docks and the Plugins menu, an Export panel
reopened while a closed one still writes, the palette across viewers."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def _plugin_menu_actions(viewer) -> dict:
    """The Plugins menu's actions for this plugin's panels: title → QAction (the menu built as
    when the user opens it)."""
    out = {}
    for top in viewer.window._qt_window.menuBar().actions():
        if "lugin" not in top.text():
            continue
        menu = top.menu()
        menu.aboutToShow.emit()
        for sub in menu.actions():
            if sub.menu() is not None and "Liver Tumor" in sub.text():
                sub.menu().aboutToShow.emit()
                out.update({act.text(): act for act in sub.menu().actions()})
    return out


def _napari_menu_toggle_known() -> None:
    """Skip where napari's Plugins menu toggle is not where the panels look for it (a later
    napari: the panels then behave as napari's own toggle does, and these tests say so)."""
    import importlib

    from napari_livertumor._widgets._common import _NAPARI_MENU_TOGGLE

    try:
        module = importlib.import_module(_NAPARI_MENU_TOGGLE)
    except ImportError:
        module = None
    if not hasattr(module, "_toggle_or_get_widget"):
        pytest.skip(f"napari's menu toggle is no longer {_NAPARI_MENU_TOGGLE}")


def test_the_plugins_menu_shows_the_demo_s_panel_instead_of_opening_a_second_copy(
    make_napari_viewer, qtbot
):
    """The demo docked its panels as "2 Segment (napari-livertumor)"; the Plugins menu looks
    them up as "2 Segment (Liver Tumor Segmentation)", found none and opened a second Segment
    panel beside the demo's."""
    from napari_livertumor._widgets import demo
    from napari_livertumor._widgets.segment import SegmentWidget

    _napari_menu_toggle_known()
    viewer = make_napari_viewer(show=True)
    docked = demo.dock_widgets(viewer, list(demo.WIDGETS))
    qtbot.wait(50)
    assert len(viewer.window.dock_widgets) == 6
    action = _plugin_menu_actions(viewer)["2 Segment"]
    action.trigger()
    qtbot.wait(50)
    panels = list(viewer.window.dock_widgets.values())
    assert len(panels) == 6
    assert sum(isinstance(p, SegmentWidget) for p in panels) == 1
    assert docked["segment"] in panels
    # the menu shows the demo's dock (a tab behind Load's: brought to the front), hides it
    # on the next click, shows it on the one after
    dock = _dock_of(docked["segment"])
    qtbot.waitUntil(lambda: not dock.visibleRegion().isEmpty(), timeout=20_000)
    _plugin_menu_actions(viewer)["2 Segment"].trigger()
    qtbot.wait(50)
    assert not dock.isVisible()
    _plugin_menu_actions(viewer)["2 Segment"].trigger()
    qtbot.wait(50)
    assert dock.isVisible() and len(viewer.window.dock_widgets) == 6


def _front_tab(window, dock) -> str:
    """The text of the current tab of the tab bar holding ``dock``'s title."""
    from qtpy.QtWidgets import QTabBar

    for bar in window.findChildren(QTabBar):
        titles = [bar.tabText(i) for i in range(bar.count())]
        if bar.isVisible() and dock.windowTitle() in titles:
            return bar.tabText(bar.currentIndex())
    return ""


def test_the_plugins_menu_brings_a_tab_behind_another_to_the_front(make_napari_viewer, qtbot):
    """napari's menu toggles a panel by ``setVisible(not isVisible())``, and Qt counts a tab
    behind another visible: "2 Segment" chosen while "4 Inspect" was in front hid Segment's
    tab, and chosen again put it back behind Inspect."""
    from napari_livertumor._widgets import demo

    _napari_menu_toggle_known()
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    docked = demo.dock_widgets(viewer, list(demo.WIDGETS))
    docks = {name: _dock_of(panel) for name, panel in docked.items()}
    # the demo's start
    qtbot.waitUntil(lambda: _front_tab(window, docks["load"]) == "1 Load", timeout=20_000)
    docks["inspect"].raise_()
    qtbot.waitUntil(lambda: not docks["inspect"].visibleRegion().isEmpty(), timeout=20_000)
    segment = docks["segment"]
    assert segment.visibleRegion().isEmpty()  # (behind Inspect)

    _plugin_menu_actions(viewer)["2 Segment"].trigger()
    qtbot.wait(50)
    assert segment.isVisible() and not segment.visibleRegion().isEmpty()
    assert _front_tab(window, segment) == "2 Segment"
    assert docks["inspect"].visibleRegion().isEmpty()

    _plugin_menu_actions(viewer)["2 Segment"].trigger()  # in front: the menu hides it
    qtbot.wait(50)
    assert segment.isHidden()

    _plugin_menu_actions(viewer)["2 Segment"].trigger()  # shown again: in front
    qtbot.waitUntil(lambda: not segment.visibleRegion().isEmpty(), timeout=20_000)
    assert _front_tab(window, segment) == "2 Segment"

    segment.close()  # its title bar's hide button (Qt's close), then the menu: in front
    qtbot.wait(50)
    assert segment.isHidden()
    docks["refine"].raise_()
    qtbot.wait(50)
    _plugin_menu_actions(viewer)["2 Segment"].trigger()
    qtbot.waitUntil(lambda: not segment.visibleRegion().isEmpty(), timeout=20_000)
    assert _front_tab(window, segment) == "2 Segment"
    assert len(viewer.window.dock_widgets) == 6
    assert all(d.isVisible() for d in docks.values())


def _dock_of(widget):
    dock = widget.parentWidget()
    while dock is not None and not hasattr(dock, "inner_widget"):
        dock = dock.parentWidget()
    return dock


def test_an_export_panel_opened_anew_does_not_write_the_files_a_closed_one_still_writes(
    make_napari_viewer, qtbot, monkeypatch, tmp_path
):
    """A closed Export panel's export finishes in the background, its button unusable till
    then; an Export panel opened anew (the Plugins menu) started a second export into the
    same folder and Name, the two writing one set of files at once."""
    import threading

    from _widget_data import tiny_ct

    import napari_livertumor._widgets.export as export_mod
    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets._jobs import _RUNNING
    from napari_livertumor._widgets.export import ExportWidget

    release, calls = threading.Event(), []
    real = export_mod.write_exports

    def blocked_write(*args, **kwargs):
        calls.append(threading.get_ident())
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(export_mod, "write_exports", blocked_write)
    viewer = make_napari_viewer(show=True)
    vol, labels = tiny_ct()
    _layers.add_ct_layer(viewer, vol, name="TEST_001 CT")
    _layers.add_labels_layer(
        viewer, labels, vol, "TEST_001 CT segmentation", ct_layer_name="TEST_001 CT"
    )
    out = tmp_path / "out"
    first = ExportWidget(viewer)
    viewer.window.add_dock_widget(first, name="5 Export")
    first.folder.setText(str(out))
    first.export_button.click()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=20_000)
    _dock_of(first).title.close_button.click()  # the user closes the panel mid-export
    qtbot.wait(50)
    assert first.busy  # finishing in the background
    second = ExportWidget(viewer)  # opened anew from the Plugins menu
    viewer.window.add_dock_widget(second, name="5 Export (again)")
    second.folder.setText(str(out) + "/")  # the same folder, written another way
    second.export_button.click()
    qtbot.wait(200)
    assert len(calls) == 1 and not second.busy
    text = second.status.text()
    assert "closed Export panel is still writing to" in text and str(out) in text
    assert "Try again when it ends" in text
    # another Name is other files: not refused
    second.case_name.setText("OTHER")
    second.export_button.click()
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=20_000)
    release.set()
    qtbot.waitUntil(lambda: not _RUNNING, timeout=30_000)
    qtbot.waitUntil(lambda: not first.busy and not second.busy, timeout=10_000)
    assert not export_mod._WRITING  # ended, forgotten
    second.case_name.setText("")
    monkeypatch.setattr(second, "ask_overwrite", lambda existing, **_: True)
    second.export_button.click()  # the first has ended: this one writes
    qtbot.waitUntil(lambda: len(calls) == 3, timeout=20_000)
    qtbot.waitUntil(lambda: not second.busy, timeout=30_000)
    assert second.status.text().startswith("Wrote "), second.status.text()


@pytest.mark.parametrize("insensitive", [True, False])
def test_an_export_s_name_differing_only_in_case_is_the_same_files_where_the_disk_says_so(
    monkeypatch, tmp_path, insensitive
):
    """On macOS's and Windows's default disks "Case1" and "case1" name one set of files: an
    export under "case1" started while a closed panel still wrote "Case1"'s, the two writing
    the same files at once."""
    import napari_livertumor._widgets.export as export_mod

    monkeypatch.setattr(export_mod, "CASE_INSENSITIVE_FILES", insensitive, raising=False)
    monkeypatch.setattr(export_mod, "_WRITING", {})
    out = tmp_path / "Out"
    out.mkdir()

    class Panel:  # (held weakly by the record)
        pass

    panel = Panel()
    record = export_mod._Writing(panel)
    export_mod._WRITING[export_mod._writing_key(out, "Case1")] = record
    same = export_mod._writing_now(export_mod._writing_key(out, "case1"))
    assert (same is record) == insensitive
    folder = export_mod._writing_now(export_mod._writing_key(tmp_path / "out", "Case1"))
    assert (folder is record) == insensitive
    assert export_mod._writing_now(export_mod._writing_key(out, "Case1")) is record
    assert export_mod._writing_now(export_mod._writing_key(out, "Case2")) is None


def _viewer_with_inspect(make_napari_viewer):
    """A viewer with a CT, its segmentation, a ground truth, a Refine preview and an Inspect
    panel."""
    import numpy as np
    from _widget_data import tiny_ct

    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets.inspect import InspectWidget

    viewer = make_napari_viewer()
    vol, labels = tiny_ct()
    _layers.add_ct_layer(viewer, vol, name="tiny CT")
    _layers.add_labels_layer(viewer, labels, vol, "tiny CT ground truth", role="ground_truth")
    _layers.add_labels_layer(viewer, labels, vol, "tiny CT segmentation", ct_layer_name="tiny CT")
    preview = viewer.add_labels(
        np.zeros(labels.shape, np.uint8), name="Refine preview", metadata={_layers.ROLE: "preview"}
    )
    _layers.set_preview_color(preview)
    widget = InspectWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels_combo.setCurrentText("tiny CT segmentation")
    return viewer, widget


def _shown(layer, value: int):
    import numpy as np

    return tuple(np.round(layer.colormap.map(np.array([value]))[0], 3))


def test_the_palette_chosen_in_one_viewer_recolours_the_other_viewer_and_its_panel(
    make_napari_viewer, monkeypatch
):
    """The palette is the process's, but only the viewer it was chosen in was recoloured and
    only its Inspect panel said so: the other viewer's panel still read "standard", its layers
    kept the old colours and its new layers took the new ones (two palettes side by side)."""
    import numpy as np

    from napari_livertumor._widgets import _layers

    monkeypatch.setattr(_layers, "_palette", ["standard"])  # (a session's choice: restored)
    v1, inspect1 = _viewer_with_inspect(make_napari_viewer)
    v2, inspect2 = _viewer_with_inspect(make_napari_viewer)
    calls = []
    real = _layers.set_palette
    monkeypatch.setattr(_layers, "set_palette", lambda *a, **k: (calls.append(a), real(*a, **k)))
    inspect1.palette_combo.setCurrentText("colour-blind safe")
    assert len(calls) == 1  # the other panel followed without choosing it again
    safe, safe_truth = _layers.PALETTES["colour-blind safe"]
    for viewer in (v1, v2):
        seg, gt = viewer.layers["tiny CT segmentation"], viewer.layers["tiny CT ground truth"]
        np.testing.assert_allclose(seg.colormap.map(np.array([1, 2])), [safe[1], safe[2]])
        np.testing.assert_allclose(
            gt.colormap.map(np.array([2, 3])), [safe_truth[2], safe_truth[3]]
        )
        expected = _layers.PREVIEW_COLORS["colour-blind safe"]
        assert _shown(viewer.layers["Refine preview"], 1) == tuple(np.round(expected, 3))
    assert inspect2.palette_combo.currentText() == "colour-blind safe"
    r, g, b, _ = (int(255 * c) for c in safe[1])
    assert f"rgb({r},{g},{b})" in inspect2.color_buttons[1].styleSheet()
    # and back, chosen in the second viewer this time
    inspect2.palette_combo.setCurrentText("standard")
    assert len(calls) == 2
    assert inspect1.palette_combo.currentText() == "standard"
    assert _shown(v1.layers["tiny CT segmentation"], 2) == _layers.CLASS_COLORS[2]
    assert _shown(v1.layers["tiny CT ground truth"], 2) == _layers.TRUTH_COLORS[2]


def test_load_names_the_ground_truth_s_colours_of_the_palette_in_use(
    make_napari_viewer, qtbot, monkeypatch, tmp_path
):
    """Load said "liver yellow, tumor magenta (a segmentation's are green and red)" whatever
    the colours: wrong with the colour-blind safe palette, and since the truth's own changed."""
    from _widget_data import tiny_ct

    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets.load import SOURCES, LoadWidget
    from napari_livertumor.io.nifti import write_nifti

    vol, labels = tiny_ct()
    write_nifti(vol, tmp_path / "ct.nii.gz")
    write_nifti(labels, tmp_path / "gt.nii.gz", reference=vol)
    viewer = make_napari_viewer()
    widget = LoadWidget(viewer)
    viewer.window.add_dock_widget(widget)
    said = {}
    for name in ("standard", "colour-blind safe"):
        monkeypatch.setattr(_layers, "_palette", [name])
        widget.source.setCurrentText(SOURCES[1])
        widget.path.setText(str(tmp_path / "ct.nii.gz"))
        widget.truth_path.setText(str(tmp_path / "gt.nii.gz"))
        widget.load_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
        said[name] = widget.status.text()
    assert (
        "outlined in its own colours: liver yellow, tumor magenta (a segmentation's "
        "are green and red)" in said["standard"]
    ), said["standard"]
    assert (
        "outlined in its own colours: liver light yellow, tumor dark reddish purple (a "
        "segmentation's are sky blue and orange)" in said["colour-blind safe"]
    ), said["colour-blind safe"]


@pytest.mark.parametrize(
    ("title", "fields"),
    [
        ("2 Segment", {"stage_combo": "liver only", "device_combo": "cpu", "tta_check": True,
                       "unsure_check": False}),
        ("1 Load CT", {"source": "NIfTI file", "path": "/data/ct.nii.gz",
                       "truth_path": "/data/truth.nii.gz"}),
        ("5 Export", {"folder": "/data/exports", "masks_check": True, "stats_check": False}),
    ],
)  # fmt: skip
def test_a_panel_closed_and_opened_again_from_the_plugins_menu_keeps_its_settings(
    make_napari_viewer, qtbot, title, fields
):
    """napari's dock ✕ takes the panel away, and the Plugins menu then makes a new one: it
    came back with its defaults (the output folder, the options chosen to type again)."""
    from qtpy.QtWidgets import QCheckBox, QComboBox

    def value(box):
        if isinstance(box, QCheckBox):
            return box.isChecked()
        return box.currentText() if isinstance(box, QComboBox) else box.text()

    def values(panel) -> dict:
        return {name: value(getattr(panel, name)) for name in fields}

    viewer = make_napari_viewer(show=True)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-livertumor", title)
    for name, wanted in fields.items():
        box = getattr(panel, name)
        if isinstance(box, QCheckBox):
            box.setChecked(wanted)
        elif isinstance(box, QComboBox):
            assert box.findText(wanted) >= 0  # (a choice it offers)
            box.setCurrentText(wanted)
        else:
            box.setText(wanted)
    assert values(panel) == fields
    dock.title.close_button.click()  # the dock's ✕
    qtbot.wait(50)
    _, again = viewer.window.add_plugin_dock_widget("napari-livertumor", title)
    assert again is not panel
    assert values(again) == fields
    # a panel opened in another viewer starts as new
    other = make_napari_viewer()
    _, elsewhere = other.window.add_plugin_dock_widget("napari-livertumor", title)
    assert values(elsewhere) != fields


def test_closing_a_viewer_while_it_measures_leaves_the_other_viewer_s_scan_drawn(
    make_napari_viewer, qtbot, monkeypatch
):
    """Two viewers open; the first closed (``viewer.close()``) while its Inspect panel
    measured: the second viewer's scan turned black for good, every redraw logging "Error
    drawing visual" (GLError). napari deleted the closed viewer's textures in the OpenGL
    context current then, the one Qt had last drawn a window with: the second window's (the
    run's progress redraws the activity indicator of every window), whose own textures and
    buffers of those numbers went."""
    import threading

    import numpy as np
    from _widget_data import tiny_ct

    from napari_livertumor import stats
    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets.inspect import InspectWidget

    def brightness(viewer) -> float:
        return float(np.asarray(viewer.screenshot(canvas_only=True))[..., :3].mean())

    vol, labels = tiny_ct()
    stays = make_napari_viewer(show=True)
    _layers.add_ct_layer(stays, vol, name="tiny CT")
    closing = make_napari_viewer(show=True)
    _layers.add_ct_layer(closing, vol, name="tiny CT")
    _layers.add_labels_layer(closing, labels, vol, "tiny CT segmentation", ct_layer_name="tiny CT")
    inspect = InspectWidget(closing)
    closing.window.add_dock_widget(inspect)
    inspect.labels_combo.setCurrentText("tiny CT segmentation")
    qtbot.wait(200)
    drawn = brightness(stays)
    assert drawn > 5  # (the scan is drawn: not black to begin with)

    started, go_on = threading.Event(), threading.Event()
    measure = stats.longest_diameter_mm

    def slow(*args, **kwargs):
        started.set()
        go_on.wait(20)
        return measure(*args, **kwargs)

    monkeypatch.setattr(stats, "longest_diameter_mm", slow)
    try:
        inspect.measure_button.click()
        qtbot.waitUntil(started.is_set, timeout=20_000)
        # the other window drawn last (its activity indicator showing the run's progress)
        stays.window._qt_window.statusBar().repaint()
        closing.close()
    finally:
        go_on.set()
    qtbot.wait(300)
    assert brightness(stays) > 0.8 * drawn
