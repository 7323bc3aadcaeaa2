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
