"""File > Open of a folder the reader cannot use: what napari shows says why, and a folder that
is not ours stays offered to other plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from napari_livertumor._reader import napari_get_reader
from napari_livertumor.errors import InputError


def _refusal(path) -> str:
    """What the reader offered for ``path`` says when it runs (it must be offered)."""
    reader = napari_get_reader(str(path))
    assert reader is not None, f"{path} was declined: napari would say 'refused the file'"
    with pytest.raises(InputError) as info:
        reader(str(path))
    return str(info.value)


def test_a_folder_that_cannot_be_listed_is_said_to_be_so(tmp_path, monkeypatch):
    """The probe found nothing in it and declined: "napari-livertumor refused the file"."""
    folder = tmp_path / "HCC_001"
    folder.mkdir()
    scandir = os.scandir

    def refusing(path="."):
        if str(path) == str(folder):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    said = _refusal(folder)
    assert said.startswith("HCC_001: permission denied"), said


def test_a_file_inside_a_folder_that_cannot_be_entered_is_said_to_be_so(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    stat = Path.stat

    def refusing(self, *args, **kwargs):
        if str(self).startswith(str(locked) + os.sep):
            raise PermissionError(13, "Permission denied", str(self))
        return stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refusing)
    said = _refusal(locked / "IM0001.dcm")
    assert said.startswith("IM0001.dcm: permission denied"), said


def test_an_empty_folder_is_declined_unless_napari_sends_every_folder_here(tmp_path, monkeypatch):
    """With the README's reader remembered for folders ('*/'), napari opens an empty folder with
    this plugin alone and said only "refused the file"; without it, napari offers the folder to
    every reader that takes folders, and this one declines."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not a scan")
    assert napari_get_reader(str(empty)) is None
    assert napari_get_reader(str(tmp_path / "notes")) is None

    import napari.plugins.utils

    chosen = {str(empty), str(tmp_path / "notes")}
    monkeypatch.setattr(
        napari.plugins.utils,
        "get_preferred_reader",
        lambda path: "napari-livertumor" if str(path) in chosen else None,
    )
    assert _refusal(empty).startswith("empty: no DICOM or NIfTI files found")
    assert _refusal(tmp_path / "notes").startswith("notes: no DICOM or NIfTI files found")


@pytest.mark.gui
def test_file_open_of_an_empty_folder_with_the_folder_reader_remembered_says_why(
    make_napari_viewer, tmp_path
):
    from napari.settings import get_settings

    viewer = make_napari_viewer()
    settings = get_settings().plugins
    settings.extension2reader = {**settings.extension2reader, "*/": "napari-livertumor"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Exception) as info:  # napari's ReaderPluginError, with the plugin's
        viewer.open(str(empty), plugin=None)  # (as File > Open does: no plugin named)
    original = getattr(info.value, "original_error", info.value)
    assert "no DICOM or NIfTI files found" in str(original), repr(original)
    assert "refused" not in str(original)
    assert len(viewer.layers) == 0
