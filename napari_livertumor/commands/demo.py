"""``livertumor demo``: napari with the plugin's widgets docked and a sample CT loaded."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument(
        "--screenshot",
        metavar="PNG",
        help="save a screenshot of the window to PNG and quit (for docs and checks)",
    )
    parser.add_argument(
        "--widgets",
        default="all",
        help="comma-separated widgets to dock (load,segment,refine,inspect,export,train) or 'all'",
    )


#: the Qt bindings napari runs on (through qtpy)
QT_BINDINGS = ("PyQt5", "PyQt6", "PySide2", "PySide6")


def run(args) -> int:
    import os
    import shutil
    import subprocess
    import sys

    if args.screenshot:  # found now, not after napari has started (seconds)
        from pathlib import Path

        from ..errors import InputError
        from ..fileio import check_writable_folder

        shot = Path(args.screenshot)
        if shot.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
            raise InputError(shot, "a screenshot is an image: name it .png (or .jpg, .tif)")
        if shot.is_dir():
            raise InputError(shot, "is a folder: give the image file to write")
        check_writable_folder(shot.resolve().parent)
    from importlib.util import find_spec

    # napari needs a Qt binding; the plain install has none (extra [pyqt5]): said here, not in
    # five chained tracebacks once napari starts
    if not any(find_spec(name) for name in QT_BINDINGS):
        print(
            "livertumor demo: error: no Qt binding for napari's window (none of "
            f"{', '.join(QT_BINDINGS)} is installed). Install one: "
            'pip install "napari-livertumor[pyqt5]" (or PyQt6)',
            file=sys.stderr,
        )
        return 1
    headless = sys.platform.startswith("linux") and not any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    )
    if headless:  # Qt would abort with a core dump
        if args.screenshot and shutil.which("xvfb-run"):
            argv = [sys.executable, "-m", "napari_livertumor.cli", "demo"]
            argv += ["--screenshot", args.screenshot, "--widgets", args.widgets]
            return subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *argv])
        print(
            "livertumor demo: error: no display (DISPLAY is not set). Run it on a desktop, or "
            "save a screenshot instead: livertumor demo --screenshot demo.png (it runs itself "
            "under xvfb-run, which must be installed)",
            file=sys.stderr,
        )
        return 1
    from .._widgets.demo import run_demo

    return run_demo(screenshot=args.screenshot, widgets=args.widgets)
