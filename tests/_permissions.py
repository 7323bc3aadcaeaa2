"""Folders that cannot be listed, without dropping root's rights (the tests run as root)."""

from __future__ import annotations

import os


def deny_listing(monkeypatch, *folders) -> None:
    """Listing ``folders`` fails as a folder without read permission does."""
    denied = {str(f) for f in folders}
    scandir = os.scandir

    def refusing(path="."):
        if str(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)


def deny_entering(monkeypatch, *folders) -> None:
    """``folders`` cannot be entered nor listed, as folders with mode 000: whatever is looked
    up inside them fails with "Permission denied" (naming that path, as Python does)."""
    from pathlib import Path

    denied = [Path(f).absolute() for f in folders]
    stat, lstat, scandir, listdir = os.stat, os.lstat, os.scandir, os.listdir

    def inside(path) -> bool:
        if isinstance(path, int):  # (a file descriptor)
            return False
        here = Path(os.fsdecode(path)).absolute()
        return any(d in here.parents for d in denied)

    def guarded(real):
        def call(path, *args, **kwargs):
            if inside(path):
                raise PermissionError(13, "Permission denied", os.fsdecode(path))
            return real(path, *args, **kwargs)

        return call

    def refusing(real):
        def call(path="."):
            if isinstance(path, (str, bytes, os.PathLike)) and (
                Path(os.fsdecode(path)).absolute() in denied or inside(path)
            ):
                raise PermissionError(13, "Permission denied", os.fsdecode(path))
            return real(path)

        return call

    monkeypatch.setattr(os, "stat", guarded(stat))
    monkeypatch.setattr(os, "lstat", guarded(lstat))
    monkeypatch.setattr(os, "scandir", refusing(scandir))
    # (Path.iterdir lists with os.listdir in Python 3.11)
    monkeypatch.setattr(os, "listdir", refusing(listdir))
