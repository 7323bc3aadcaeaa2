"""Exceptions shared by the core, the CLI and the widgets.

Every error a user can cause carries the file (if any) and the problem in plain words, so the
CLI can print it and the GUI can show it without a traceback.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler's stop or time limit, ``kill``, ``docker stop``), raised in a
    command-line process so that it ends as Ctrl-C does; its exit status is 143 (128 + 15), as a
    shell reports a process SIGTERM ended, where Ctrl-C's is 130. ``signal_name`` is the stop's
    signal as the user knows it: "SIGTERM", or "SIGBREAK" (Windows: Ctrl-Break, a closed
    console window)."""

    def __init__(self, signal_name: str = "SIGTERM"):
        super().__init__()  # (no text: printed as a Ctrl-C's empty one was)
        self.signal_name = signal_name


class LiverTumorError(Exception):
    """Base class of the errors this package raises on purpose."""


class InputError(LiverTumorError, ValueError):
    """An input file or folder cannot be used.

    Parameters
    ----------
    path : str or Path or None
        The offending file or folder.
    problem : str
        What is wrong with it, in words a user understands.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None or str(path) == "" else Path(path)  # "": not "."
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class ModelError(LiverTumorError):
    """A model folder is missing, corrupt, or does not fit the job."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None or str(path) == "" else Path(path)  # "": not "."
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class SettingsError(LiverTumorError, ValueError):
    """A setting (a CLI option, a config field) is out of its range or not one of its choices."""


class Cancelled(LiverTumorError):
    """A long-running job was cancelled by the user.

    ``changed`` says what the job had already done when it stopped (files written...), in
    words for the user; empty when it stopped before changing anything.
    """

    def __init__(self, message: str = "cancelled by the user", *, changed: str = ""):
        self.changed = changed
        super().__init__(message)


def toast_text(message: str) -> str:
    """``message`` for a notification: a leading file path is cut to its name.

    Messages about a file start with its full path ("/data/HCC_009/…/1-001.dcm: not DICOM");
    a notification shows only its first line or so, which a deep path fills. The toast says
    "1-001.dcm: not DICOM (in /data/HCC_009/…)" instead; the widget's status keeps the original.
    """
    head, sep, rest = message.partition(": ")
    if not sep or "\n" in head:
        return message
    if PurePosixPath(head).is_absolute():
        path = PurePosixPath(head)
    elif PureWindowsPath(head).is_absolute():
        path = PureWindowsPath(head)
    else:
        return message
    if not path.name or path.parent == path:
        return message
    first, nl, more = rest.partition("\n")
    return f"{path.name}: {first} (in {path.parent}){nl}{more}"
