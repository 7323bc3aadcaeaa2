"""``livertumor demo``: napari with the plugin's widgets docked and a sample CT loaded."""

from __future__ import annotations

from pathlib import Path

PLUGIN = "napari-livertumor"
#: short name → display name in napari.yaml
WIDGETS = {
    "load": "1 Load CT",
    "segment": "2 Segment",
    "refine": "3 Refine tumor",
    "inspect": "4 Inspect",
    "export": "5 Export",
    "train": "Train models",
}
#: the demo's tab titles: short enough for six tabs side by side on a laptop screen
TAB_TITLES = {
    "load": "1 Load",
    "segment": "2 Segment",
    "refine": "3 Refine",
    "inspect": "4 Inspect",
    "export": "5 Export",
    "train": "Train",
}


def run_demo(screenshot: str | None = None, widgets: str = "all") -> int:
    """Open napari with the widgets docked and the sample CT loaded.

    Parameters
    ----------
    screenshot : str, optional
        Save a screenshot of the whole window to this PNG once it is drawn, then quit.
    widgets : str
        ``"all"`` or comma-separated short names (load, segment, refine, inspect, export, train).

    Returns
    -------
    int
        Exit status (0 on success, 2 for an unknown widget name).
    """
    _quiet_start()
    import napari

    names = list(WIDGETS) if widgets.strip() == "all" else [w.strip() for w in widgets.split(",")]
    unknown = [n for n in names if n not in WIDGETS]
    if unknown:
        import sys

        print(
            f"livertumor demo: error: unknown widget(s) {unknown}; choose from "
            f"{list(WIDGETS)} or 'all'",
            file=sys.stderr,
        )
        return 2
    viewer = napari.Viewer(title="napari-livertumor demo")
    _fill_screen(viewer)
    docked = dock_widgets(viewer, names)
    add_sample(viewer)
    load = docked.get("load")
    if load is not None and hasattr(load, "source"):  # the panel says what was loaded
        from .load import SOURCES

        load.source.setCurrentText(SOURCES[2])
        from ._common import set_status

        # said, so that the first click a reader of the workflow makes is not Load (a second
        # copy of the sample, the first's labels drawn over it)
        set_status(
            load.status,
            "The sample CT (seed 7) and its ground truth are open: go on with 2 Segment. Load "
            "opens another scan (a DICOM folder, a NIfTI file, or a sample of another seed).",
        )
    from qtpy.QtCore import QTimer

    # fit the CT again once the window and its docks have their sizes (fitted before, the
    # canvas was still small and the scan came out a third of the view)
    QTimer.singleShot(500, viewer.reset_view)
    if screenshot:
        return _screenshot_and_quit(viewer, Path(screenshot))
    napari.run()
    return 0


def dock_widgets(viewer, names: list[str]) -> dict:
    """Dock the named widgets (tabbed after the first); returns short name → widget.

    Each dock has the name the Plugins menu gives that panel (``"2 Segment (Liver Tumor
    Segmentation)"``, the manifest's display name): the menu then shows or hides the demo's
    panel. ``add_plugin_dock_widget`` named it after the plugin's package ("… (napari-
    livertumor)"), and the menu, finding no dock of its name, opened a second copy.
    """
    from napari.utils.notifications import show_warning

    from ._common import title_bar_follows_title

    docked, docks = {}, []
    for name in names:
        try:
            dock, widget = _dock_as_the_menu_does(viewer, WIDGETS[name], tabify=bool(docked))
        except Exception as exc:  # one panel failing to open must not stop the demo
            show_warning(f"widget '{WIDGETS[name]}' could not be opened: {exc}")
            continue
        docked[name] = widget
        docks.append(dock)
        # the tab shows the panel's name, not "(Liver Tumor Segmentation)" after it: six tabs
        # side by side on a laptop read "1 Lo…", "2 Seg…" with the plugin's name in each
        dock.setWindowTitle(TAB_TITLES.get(name, WIDGETS[name]))
        title_bar_follows_title(dock)  # (napari's bar over the panel showed the long name)
    if docks:
        from qtpy.QtCore import QTimer

        # The workflow starts with its first tab; raising works once the window is shown.
        QTimer.singleShot(0, docks[0].raise_)
    return docked


def menu_key(widget_name: str) -> str:
    """The name napari's Plugins menu looks a panel's dock up by: ``"{widget} ({display
    name})"``."""
    from napari.plugins import menu_item_template
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest(PLUGIN)
    return menu_item_template.format(manifest.display_name or PLUGIN, widget_name)


def _dock_as_the_menu_does(viewer, widget_name: str, tabify: bool):
    """Dock the plugin's widget ``widget_name`` under the Plugins menu's name for it (the one
    already docked under that name if any); returns (dock, widget)."""
    from npe2 import PluginManager

    key = menu_key(widget_name)
    window = viewer.window
    inner = window.dock_widgets.get(key)
    if inner is not None:  # already open (the menu's, or an earlier call's)
        dock = inner.parentWidget()
        while dock is not None and not hasattr(dock, "inner_widget"):
            dock = dock.parentWidget()
        if dock is not None:
            return dock, inner
    for contrib in PluginManager.instance().iter_widgets():
        if contrib.plugin_name == PLUGIN and contrib.display_name == widget_name:
            widget = contrib.get_callable()(viewer)
            return window.add_dock_widget(widget, name=key, tabify=tabify), widget
    raise KeyError(f"{PLUGIN} provides no widget named {widget_name!r}")


def add_sample(viewer) -> list:
    """Add the sample CT (a synthetic phantom, with its ground truth)."""
    from napari.layers import Layer

    from .._sample_data import make_sample_ct
    from . import _layers

    layers = [viewer.add_layer(Layer.create(*tpl)) for tpl in make_sample_ct()]
    _layers.name_axes(viewer)  # the slider: "slice", as the panels name it
    image = [ly for ly in layers if ly.__class__.__name__ == "Image"]
    if image:
        viewer.layers.selection.active = image[0]
        # Fit the view to the CT (a widget may have added a layer of another extent first).
        viewer.reset_view()
        step = list(viewer.dims.current_step)
        step[0] = image[0].data.shape[0] // 2
        viewer.dims.current_step = tuple(step)
    return layers


def _fill_screen(viewer) -> None:
    """Most of the screen for the window: napari's default 1089×633 left the scan a 305-px
    wide strip beside the panels, even on a 1920×1080 screen."""
    window = viewer.window._qt_window
    screen = window.screen() if hasattr(window, "screen") else None
    if screen is None:
        return
    area = screen.availableGeometry()
    width, height = int(area.width() * 0.92), int(area.height() * 0.92)
    # never past the screen: napari restores the last size, maybe a bigger monitor's
    window.resize(
        min(max(width, window.width()), area.width()),
        min(max(height, window.height()), area.height()),
    )
    window.move(area.x() + max((area.width() - window.width()) // 2, 0), area.y())


def _quiet_start() -> None:
    """Leave out two start-up lines nobody can act on: napari on PyQt5 (this package's default
    binding) warns twice that it detects the desktop's theme only under Qt6, and PyOpenGL
    says at INFO that its optional accelerator is not installed. napari's own notice that its
    PyQt5 support is deprecated stays (the README says what to do about it)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message="System theme detection requires a Qt6 backend")
    logging.getLogger("OpenGL.acceleratesupport").setLevel(logging.WARNING)


def _screenshot_and_quit(viewer, path: Path) -> int:
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    path.parent.mkdir(parents=True, exist_ok=True)
    replaced = path.exists()  # a screenshot of an earlier run: replaced, and said so
    viewer.window._qt_window.resize(1500, 950)
    status = {"code": 1}

    def shoot() -> None:
        _close_notifications()
        try:
            save_screenshot(viewer.screenshot(canvas_only=False, flash=False), path)
            print(
                f"screenshot saved to {path}"
                + (" (replacing the earlier file)" if replaced else "")
            )
            status["code"] = 0
        except (OSError, ValueError, TypeError) as exc:  # a full disk, a format PIL refuses
            import sys

            print(f"livertumor demo: error: {path}: screenshot not saved ({exc})", file=sys.stderr)
        finally:
            viewer.close()
            QApplication.quit()

    QTimer.singleShot(2500, shoot)
    napari.run()
    return status["code"]


def save_screenshot(image, path: Path) -> None:
    """Write an RGBA screenshot to ``path`` (its format from the suffix; JPEG and BMP without
    the alpha channel, which they cannot hold) through a temporary file: a failed write
    leaves an earlier file of that name as it was (napari's own writer emptied it first)."""
    import os

    import imageio.v3 as iio
    import numpy as np

    image = np.asarray(image)
    if path.suffix.lower() in (".jpg", ".jpeg", ".bmp") and image.ndim == 3:
        image = image[..., :3]
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        iio.imwrite(tmp, image)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _close_notifications() -> None:
    """Close napari's toast notifications so they don't cover the screenshot."""
    from qtpy.QtWidgets import QApplication

    for w in QApplication.topLevelWidgets() + QApplication.allWidgets():
        if type(w).__name__ == "NapariQtNotification":
            w.close()


def napari_folders_problem() -> str | None:
    """Why napari could not keep its settings and caches (a folder it cannot write), or None.

    napari writes its settings from inside a Qt slot, where a PermissionError aborts the
    process (a core dump): a home, a ``~/.config/napari`` left by a ``sudo`` run, or an
    XDG_CONFIG_HOME that cannot be written is found here first.
    """
    import os
    import tempfile

    try:
        from napari.utils._platformdirs import user_cache_dir, user_config_dir

        folders = (
            [os.path.dirname(os.environ["NAPARI_CONFIG"])]
            if os.environ.get("NAPARI_CONFIG")
            else [user_config_dir()]
        )
        folders.append(user_cache_dir())
    except Exception:  # noqa: BLE001 - napari's private layout changed: left to napari
        return None
    for folder in folders:
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            return (
                f"{folder}: napari cannot keep its settings and caches there "
                f"({exc.strerror or exc}); point XDG_CONFIG_HOME and XDG_CACHE_HOME to a "
                "writable folder"
            )
    return None
