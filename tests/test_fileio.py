"""Every writer publishes complete files with normal permissions, or nothing."""

from __future__ import annotations

import os
import stat

import pytest

from napari_livertumor.fileio import atomic_path, atomic_write_text


def test_written_file_has_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        out = atomic_write_text(tmp_path / "stats.json", "{}")
    finally:
        os.umask(umask)
    assert out.read_text() == "{}"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "labels.nii.gz"
    target.write_text("previous result")
    with pytest.raises(RuntimeError), atomic_path(target, suffix=".nii.gz") as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz"]
