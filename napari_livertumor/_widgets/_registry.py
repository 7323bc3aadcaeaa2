"""Model folders trained in this session, so the Segment widget can offer them at once.

A plain list of paths (no layers, no widgets): the Train widget appends to it when a run
finishes, the Segment widget reads it whenever it refreshes its model list.
"""

from __future__ import annotations

from pathlib import Path

_recent_model_folders: list[Path] = []


def remember_model_folder(folder: str | Path) -> None:
    """Offer ``folder`` (a model folder or a folder with ``liver/``/``tumor/``) in Segment."""
    folder = Path(folder).resolve()
    if folder in _recent_model_folders:
        _recent_model_folders.remove(folder)
    _recent_model_folders.insert(0, folder)


def recent_model_folders() -> list[Path]:
    """Most recent first; folders deleted since are left out."""
    return [f for f in _recent_model_folders if f.is_dir()]
