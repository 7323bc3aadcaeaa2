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

    from .._widgets.demo import WIDGETS  # (no Qt: a plain table)

    names = [w.strip() for w in args.widgets.split(",")] if args.widgets.strip() != "all" else []
    unknown = [n for n in names if n not in WIDGETS]
    if unknown:  # said first, not after the display's own error (or napari's start)
        print(
            f"livertumor demo: error: unknown widget(s) {unknown}; choose from "
            f"{list(WIDGETS)} or 'all'",
            file=sys.stderr,
        )
        return 2
    # napari needs a Qt binding; the plain install has none (extra [pyqt5]): said here, not in
    # five chained tracebacks once napari starts
    if not any(find_spec(name) for name in QT_BINDINGS):
        print(
            "livertumor demo: error: no Qt binding for napari's window (none of "
            f"{', '.join(QT_BINDINGS)} is installed). Install one into this environment: "
            "pip install PyQt5 (or PyQt6; from a checkout: pip install -e '.[pyqt5]')",
            file=sys.stderr,
        )
        return 1
    problem = display_problem() if sys.platform.startswith("linux") else None
    if problem:  # Qt would abort with a core dump
        if args.screenshot and shutil.which("xvfb-run"):
            argv = [sys.executable, "-m", "napari_livertumor.cli", "demo"]
            argv += ["--screenshot", args.screenshot, "--widgets", args.widgets]
            # xvfb-run gives the display; a stale Wayland one or an 'offscreen' platform would
            # be tried first
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
            }
            return subprocess.call(
                ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *argv], env=env
            )
        me = "livertumor" if shutil.which("livertumor") else sys.argv[0] or "livertumor"
        print(
            f"livertumor demo: error: {problem}. Run it on a desktop, or save a screenshot "
            f"instead: {me} demo --screenshot demo.png (it runs itself under xvfb-run, which "
            "must be installed; from a source checkout: SCREENSHOT=demo.png make demo)",
            file=sys.stderr,
        )
        return 1
    from .._widgets.demo import napari_folders_problem

    folders = napari_folders_problem()
    if folders:
        print(f"livertumor demo: error: {folders}", file=sys.stderr)
        return 1
    try:
        from .._widgets.demo import run_demo

        return run_demo(screenshot=args.screenshot, widgets=args.widgets)
    except OSError as exc:  # napari writes its settings and caches under the home folder
        home = os.path.expanduser("~")
        where = str(exc.filename or "")
        if where and (where == home or where.startswith(home.rstrip("/") + "/")):
            print(
                f"livertumor demo: error: {where}: {exc.strerror or exc}. napari keeps its "
                "settings and caches under your home folder, which cannot be written here: "
                "point XDG_CONFIG_HOME and XDG_CACHE_HOME to a writable folder",
                file=sys.stderr,
            )
            return 1
        raise


def display_problem() -> str | None:
    """Why napari's window could not open on this Linux session (``None``: it can).

    A DISPLAY or WAYLAND_DISPLAY that is set is tried (a socket connection, a second at most):
    one left over from an old session (tmux, sudo) made Qt abort with a core dump and a
    "reinstalling may fix this" message. napari cannot draw under Qt's offscreen platform.
    """
    import os

    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if platform in ("offscreen", "minimal"):
        return (
            f"QT_QPA_PLATFORM is {platform!r}, where napari's canvas cannot draw (unset it, or "
            "use xvfb-run)"
        )
    if platform and platform not in ("xcb", "wayland", "wayland-egl"):
        return None  # eglfs, vnc…: the user's choice, tried as is
    x11, wayland = os.environ.get("DISPLAY"), os.environ.get("WAYLAND_DISPLAY")
    # the display the platform Qt will take is the one that must answer: X11 for xcb (Qt 5's
    # default whatever else is set), Wayland for wayland; Qt 6 takes either
    if platform == "xcb" or (not platform and _qt5()):
        wayland = None
    elif platform.startswith("wayland"):
        x11 = None
    if not x11 and not wayland:
        return (
            "no display (WAYLAND_DISPLAY is not set)"
            if platform.startswith("wayland")
            else "no display (DISPLAY is not set)"
        )
    if (x11 and _x11_answers(x11)) or (wayland and _wayland_answers(wayland)):
        return None
    named = " or ".join(
        f"{name}={value}"
        for name, value in (("DISPLAY", x11), ("WAYLAND_DISPLAY", wayland))
        if value
    )
    return f"no display answers at {named} (left over from another session?)"


def _qt5() -> bool:
    """Whether napari will run on a Qt 5 binding (qtpy's choice: QT_API, else the first of
    PyQt5, PySide2, PyQt6, PySide6 installed)."""
    import os
    from importlib.util import find_spec

    asked = os.environ.get("QT_API", "").strip().lower()
    if asked in ("pyqt6", "pyside6"):
        return False
    if asked in ("pyqt5", "pyside2"):
        return True
    return bool(find_spec("PyQt5") or find_spec("PySide2"))


def _connects(family, address, timeout: float = 1.0) -> bool:
    import socket

    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
        return True
    except OSError:
        return False


def _x11_answers(display: str) -> bool:
    """Whether an X server listens at ``display`` (``:0``, ``unix:1.0``, ``host:10.0``)."""
    import socket

    host, sep, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not sep or not number.isdigit():
        return True  # a form not known here: left to Qt
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        # the socket file, or Linux's abstract one of the same name (a container's X server)
        return _connects(socket.AF_UNIX, path) or _connects(socket.AF_UNIX, "\0" + path)
    if host.startswith("/"):  # a launchd-style path
        return _connects(socket.AF_UNIX, f"{host}:{rest}")
    return _tcp_answers(host.strip("[]"), 6000 + int(number))


def _tcp_answers(host: str, port: int, limit: float = 2.0) -> bool:
    """Whether ``host:port`` (a name, IPv4 or IPv6) accepts a connection; a name lookup that
    hangs past ``limit`` seconds is left to Qt (True), not taken for a dead display."""
    import socket
    import threading

    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(limit)
    return result[0] if result else True


def _wayland_answers(name: str) -> bool:
    import os
    import socket

    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    path = name if name.startswith("/") else os.path.join(runtime, name) if runtime else ""
    return bool(path) and _connects(socket.AF_UNIX, path)
