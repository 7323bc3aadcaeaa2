"""File > Open of a folder the reader cannot use: what napari shows says why, and a folder that
is not ours stays offered to other plugins."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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


def test_a_folder_with_no_scan_says_to_choose_napari_builtins(tmp_path, monkeypatch):
    """napari offers every folder to every reader that takes folders, whatever the reader's
    answer (npe2 matches no name for a folder): a declined folder said only "refused the file"
    when this plugin was chosen. With the README's reader remembered for folders ('*/'), the
    answer says so too."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not a scan")
    said = _refusal(tmp_path / "notes")
    assert said.startswith("notes: no DICOM or NIfTI files found"), said
    assert "choose napari builtins" in said and "Preferences" not in said

    import napari.plugins.utils

    chosen = {str(empty), str(tmp_path / "notes")}
    monkeypatch.setattr(
        napari.plugins.utils,
        "get_preferred_reader",
        lambda path: "napari-livertumor" if str(path) in chosen else None,
    )
    assert _refusal(empty).startswith("empty: the folder is empty")
    assert "napari opens every folder with this plugin" in _refusal(tmp_path / "notes")


def test_an_empty_folder_is_said_to_be_empty_without_advice_napari_builtins_cannot_keep(
    tmp_path,
):
    """napari builtins fail on an empty folder too: "choose napari builtins" was no way out."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"")  # a hidden file is no file to open
    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "one").mkdir()  # subfolders only
    for folder in (empty, tmp_path / "series"):
        said = _refusal(folder)
        assert said.startswith(
            f"{folder.name}: the folder is empty (or holds only subfolders: open one of them)"
        ), said
        assert "builtins" not in said


def _image_folder(tmp_path):
    from imageio.v3 import imwrite

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        imwrite(folder / f"{i}.png", np.full((8, 10), 40 * i, np.uint8))
    return folder


def test_where_napari_tries_each_reader_in_turn_a_folder_of_images_goes_on_to_the_next(tmp_path):
    """No plugin named (npe2 tries the readers in turn): the folder is not refused, napari's
    own reader reads it, as when this reader declined."""
    import npe2
    from napari.plugins.io import read_data_with_plugins

    npe2.PluginManager.instance().discover()  # (as napari does on start)
    folder = _image_folder(tmp_path)
    layers, reader = read_data_with_plugins([str(folder)], plugin=None)
    assert reader == "napari"
    assert np.asarray(layers[0][0]).shape == (3, 8, 10)


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
    assert "the folder is empty" in str(original), repr(original)
    assert "refused" not in str(original)
    assert len(viewer.layers) == 0


@pytest.mark.gui
def test_a_folder_of_images_dropped_on_napari_says_to_choose_napari_builtins(
    make_napari_viewer, tmp_path, monkeypatch
):
    """A folder of PNGs dropped on napari (or File > Open Folder): napari asks which reader to
    use, this plugin chosen first, whatever the reader answers for the folder (npe2 matches a
    folder by no name). OK said "Reader 'napari-livertumor' was selected to open ['…/pngs'],
    but refused the file"; it now says what to choose instead, and that choice opens it."""
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog

    folder = _image_folder(tmp_path)
    viewer = make_napari_viewer()
    asked: list = []
    answer: list = [None]

    def exec_(dialog):  # the reader dialog, answered as a person would
        buttons = {b.text(): b for b in dialog.reader_btn_group.buttons()}
        asked.append((sorted(buttons), dialog._get_plugin_choice()))
        if answer[0]:
            buttons[answer[0]].setChecked(True)
        return 1  # OK

    monkeypatch.setattr(QtReaderDialog, "exec_", exec_)
    monkeypatch.setattr(QtReaderDialog, "exec", exec_, raising=False)
    with pytest.raises(Exception) as info:  # (napari's exception hook shows it)
        viewer.window._qt_viewer._qt_open([str(folder)], stack=False)
    assert asked == [(["Liver Tumor Segmentation", "napari builtins"], "Liver Tumor Segmentation")]
    said = str(info.value)
    assert said.startswith("pngs: no DICOM or NIfTI files found"), said
    assert "choose napari builtins" in said and "refused" not in said
    assert len(viewer.layers) == 0

    answer[0] = "napari builtins"  # what it says to choose
    viewer.window._qt_viewer._qt_open([str(folder)], stack=False)
    assert [np.asarray(ly.data).shape for ly in viewer.layers] == [(3, 8, 10)]
