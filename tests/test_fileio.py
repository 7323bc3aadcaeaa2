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


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux's /proc")
def test_a_new_files_mode_is_found_without_touching_the_processs_umask(tmp_path, monkeypatch):
    """The umask was set to 0 for a moment to read it: it is the whole process's, so files
    another thread created meanwhile (an export beside, napari's settings) came out writable
    by all (5 of 20 000 in a reviewer's two-thread loop)."""
    umask = os.umask(0o027)
    try:

        def set_umask(mask):
            raise AssertionError(f"umask set to {mask:o} while a file was written")

        monkeypatch.setattr(os, "umask", set_umask)
        out = atomic_write_text(tmp_path / "stats.json", "{}")
    finally:
        monkeypatch.undo()
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "labels.nii.gz"
    target.write_text("previous result")
    with pytest.raises(RuntimeError), atomic_path(target, suffix=".nii.gz") as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz"]


def test_an_exclusive_write_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    from napari_livertumor.fileio import atomic_write_bytes

    target = tmp_path / "ct.nii.gz"
    with pytest.raises(FileExistsError, match="another run") as err:
        with atomic_path(target, exclusive=True) as tmp:
            tmp.write_bytes(b"mine")
            target.write_bytes(b"theirs")  # another process, between the check and the write
    assert err.value.filename == str(target)
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["ct.nii.gz"]
    with atomic_path(tmp_path / "new.nii.gz", exclusive=True) as tmp:
        tmp.write_bytes(b"mine")
    assert (tmp_path / "new.nii.gz").read_bytes() == b"mine"
    atomic_write_bytes(target, b"replaced")  # not exclusive: replaced, as before
    assert target.read_bytes() == b"replaced"


def test_an_error_naming_no_file_names_the_one_asked_for_not_the_temporary(tmp_path):
    target = tmp_path / "HCC_001_stats.json"
    with pytest.raises(OSError) as err, atomic_path(tmp_path / ".x.new.json", shown_as=target):
        raise OSError(28, "No space left on device")
    assert err.value.filename == str(target) and err.value.errno == 28
    with pytest.raises(OSError) as err, atomic_path(target) as tmp:
        raise OSError(28, "No space left on device", str(tmp))
    assert err.value.filename == str(target)


def test_a_long_legal_name_gets_a_legal_temporary_name(tmp_path):
    name = "b" * 240 + ".nii.gz"  # 247 bytes: legal; ".<name>.<random>.nii.gz" was not
    with atomic_path(tmp_path / name, suffix=".nii.gz") as tmp:
        assert len(tmp.name.encode()) <= 255
        tmp.write_bytes(b"x")
    assert (tmp_path / name).read_bytes() == b"x"


def test_a_file_lock_is_held_by_one_holder_at_a_time(tmp_path):
    from napari_livertumor.fileio import file_lock

    lock = tmp_path / ".case.lock"
    with file_lock(lock) as first:
        assert first
        with file_lock(lock) as second:  # another open file, as another process has
            assert not second
    assert not lock.exists()  # removed by its holder
    with file_lock(lock) as again:
        assert again


@pytest.mark.parametrize("code", ["ENOSYS", "ENOLCK", "EOPNOTSUPP"])
def test_where_locks_do_not_work_it_is_said_once_and_no_lock_file_is_left(
    tmp_path, monkeypatch, caplog, code
):
    """NFS mounted ``nolock``, Lustre without ``flock``: flock raises ENOSYS, ENOLCK or
    EOPNOTSUPP. Parallel runs into one folder then each did every case without a word, and
    each case's ``.CASE.lock`` was left behind."""
    import errno
    import fcntl
    import logging

    from napari_livertumor import fileio
    from napari_livertumor.fileio import file_lock

    def no_locks(fd, operation):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    monkeypatch.setattr(fileio, "_UNLOCKED_SAID", set())
    kept = tmp_path / ".other.lock"
    kept.write_text("")  # a file that was there: not this call's to remove
    with caplog.at_level(logging.WARNING):
        for name in (".HCC_001.lock", ".HCC_002.lock", ".other.lock"):
            with file_lock(
                tmp_path / name, unlocked="parallel runs will each do every case"
            ) as held:
                assert held  # unlocked, it runs
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.lock"]
    said = [r.getMessage() for r in caplog.records if "file locks" in r.getMessage()]
    assert said == [
        f"{tmp_path}: file locks do not work here: parallel runs will each do every case"
    ]


def test_a_file_that_cannot_be_replaced_is_named_not_the_temporary(tmp_path, monkeypatch):
    """An immutable file there (``chattr +i``, a lock on a share): the rename failed with both
    names, the temporary's first, and the panel showed that."""
    from napari_livertumor._widgets._jobs import JobFailed, error_text

    target = tmp_path / "HCC_001_seg.dcm"
    target.write_bytes(b"old")

    def refuse(src, dst):
        raise PermissionError(1, "Operation not permitted", str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError) as err, atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert err.value.filename == str(target) and err.value.errno == 1
    assert "not replaced" in err.value.strerror
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["HCC_001_seg.dcm"]
    try:
        raise JobFailed("export") from err.value
    except JobFailed as failed:
        text = error_text(failed)
    assert text == f"{target}: Operation not permitted; it was not replaced"
    try:  # a rename outside atomic_path: both ends named
        raise JobFailed("export") from PermissionError(1, "Operation not permitted", "a", None, "b")
    except JobFailed as failed:
        assert error_text(failed) == "a -> b: Operation not permitted"


def test_a_replaced_file_keeps_its_permissions_and_a_link_is_written_through(tmp_path):
    """Replacing a private (0600) mask made it readable by all (0644); a symlinked output was
    swapped for a plain file, leaving the file it pointed to unchanged."""
    private = tmp_path / "HCC_001_labels.nii.gz"
    private.write_text("old")
    private.chmod(0o600)
    atomic_write_text(private, "new")
    assert private.read_text() == "new" and stat.S_IMODE(private.stat().st_mode) == 0o600
    real = tmp_path / "real" / "stats.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "stats.json"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert sorted(p.name for p in real.parent.iterdir()) == ["stats.json"]  # no temporary left


def test_a_link_whose_target_cannot_take_the_file_is_replaced_not_failed(tmp_path):
    """Written through, a link into a missing folder (or another file system) failed the whole
    case after its old stats were gone; the link itself is replaced instead."""
    from napari_livertumor.fileio import publish

    link = tmp_path / "HCC_001_labels.nii.gz"
    link.symlink_to(tmp_path / "gone" / "labels.nii.gz")
    tmp = tmp_path / ".partial"
    tmp.write_text("new")
    assert publish(tmp, link) == link
    assert not link.is_symlink() and link.read_text() == "new" and not tmp.exists()
    assert not (tmp_path / "gone").exists()
    (tmp_path / "a file").write_text("")
    tmp.write_text("new")
    with pytest.raises(OSError) as err:  # other failures name the output, not the temporary
        publish(tmp, tmp_path / "a file" / "out.json")
    assert err.value.filename == str(tmp_path / "a file" / "out.json")


def test_a_read_only_mount_is_said_as_such_not_as_permissions(tmp_path, monkeypatch):
    from napari_livertumor.errors import InputError
    from napari_livertumor.fileio import check_writable_folder

    real = os.statvfs

    class ReadOnly:
        def __init__(self, result):
            self.f_flag = result.f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda path: ReadOnly(real(path)))
    with pytest.raises(InputError, match=r"cannot be created: .* \(a read-only file system\)"):
        check_writable_folder(tmp_path / "out")


def test_json_a_user_gives_that_nests_too_deep_or_holds_a_huge_number_is_said(tmp_path):
    """'[' * 100000 as metadata.json, a training config, a split or a refine config ended in
    Python's RecursionError traceback; a 400-digit roi_size in an OverflowError."""
    import json
    import shutil

    from napari_livertumor.errors import InputError, ModelError
    from napari_livertumor.fileio import parse_user_json
    from napari_livertumor.models import load_model
    from napari_livertumor.models.untrained import make_untrained_model
    from napari_livertumor.refine.config import RefineConfig
    from napari_livertumor.training.config import load_recipe

    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        parse_user_json(deep)
    assert parse_user_json('{"a": [12, -3, 1.5]}') == {"a": [12, -3, 1.5]}
    assert parse_user_json("1" + "0" * 400) == float("inf")
    (tmp_path / "deep.json").write_text(deep)
    with pytest.raises(InputError, match="deep.json: not valid JSON.*nested too deeply"):
        RefineConfig.load(tmp_path / "deep.json")
    with pytest.raises(InputError, match="deep.json: not a readable JSON training config"):
        load_recipe(tmp_path / "deep.json")
    model = make_untrained_model(tmp_path / "tumor", "tumor")
    meta = json.loads((model / "metadata.json").read_text())
    shutil.copy(tmp_path / "deep.json", model / "metadata.json")
    with pytest.raises(ModelError, match="metadata.json: unreadable metadata.*nested too deeply"):
        load_model(model)
    meta["roi_size"][2] = "HUGE"
    (model / "metadata.json").write_text(json.dumps(meta).replace('"HUGE"', "1" + "0" * 400))
    with pytest.raises(ModelError, match="metadata.json: incomplete or invalid metadata.*roi_size"):
        load_model(model)


def test_a_failed_copy_names_the_file_asked_for_not_the_temporary(tmp_path):
    """shutil.copyfile's error names its source first and the temporary file second: a full
    disk while copying the clinical table named ".HCC-TACE-Seg_clinical_data-V2.xlsx.…"."""
    import errno
    import shutil

    source = tmp_path / "table.xlsx"
    source.write_bytes(b"table")
    target = tmp_path / "out" / "table.xlsx"
    with pytest.raises(OSError) as err, atomic_path(target, suffix=".xlsx") as tmp:
        shutil.copyfile(source, tmp)
        raise OSError(errno.ENOSPC, "No space left on device", str(source), None, str(tmp))
    assert str(err.value) == f"[Errno 28] No space left on device: '{target}'"
    assert list((tmp_path / "out").iterdir()) == []


def test_a_link_to_a_missing_file_is_replaced_in_its_folder_never_followed(tmp_path):
    """A dangling link planted in an output folder was taken for "no earlier output"
    (``exists()`` follows links) and followed: the run made the file it pointed to, outside
    the folder, without --overwrite. The link itself is replaced; a link to an existing file
    is still written through."""
    from napari_livertumor.fileio import publish, resolved

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    stats, labels = out / "HCC_001_stats.json", out / "HCC_001_labels.nii.gz"
    stats.symlink_to(elsewhere / "planted_stats.json")
    labels.symlink_to(elsewhere / "planted.nii.gz")
    assert resolved(stats) == stats
    assert atomic_write_text(stats, "new") == stats
    tmp = out / ".partial"
    tmp.write_text("labels")
    assert publish(tmp, labels) == labels
    for path, text in ((stats, "new"), (labels, "labels")):
        assert not path.is_symlink() and path.read_text() == text
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == [labels.name, stats.name]  # no temporary


@pytest.mark.parametrize("target_exists", [False, True])
def test_a_link_planted_at_a_lock_files_name_is_refused_not_followed(tmp_path, target_exists):
    """The lock file was opened through a link: a dangling one made an empty file wherever it
    pointed (left there after), a link to a file opened that file for writing."""
    from napari_livertumor.fileio import file_lock

    target = tmp_path / "elsewhere" / "victim"
    target.parent.mkdir()
    if target_exists:
        target.write_text("kept")
    lock = tmp_path / ".HCC_001.lock"
    lock.symlink_to(target)
    with pytest.raises(OSError) as err, file_lock(lock):
        pytest.fail("the block ran with a link as its lock")
    assert err.value.filename == str(lock) and "symbolic link" in err.value.strerror
    assert lock.is_symlink()  # left as it was: refused, not removed
    assert [p.read_text() for p in target.parent.iterdir()] == (["kept"] if target_exists else [])


def test_csv_text_that_a_spreadsheet_would_run_as_a_formula_is_shown_as_text():
    """A case or input path named ``=HYPERLINK(…)`` became a formula in the CSV tables;
    numbers, negative ones as text too, must stay numbers."""
    from napari_livertumor.tables import cell_value, safe_cell

    for text in ('=HYPERLINK("http:__evil","x")', "+cmd|' _C calc'!A0", "-2+3", "@SUM(1+1)",
                 "\t=1", "\r=1", "-x_labels.nii.gz"):  # fmt: skip
        assert safe_cell(text) == "'" + text and cell_value(safe_cell(text)) == text
    for value in ("HCC_001", "-11.1000", "+3", "1e-05", ">=10cm", "", -11.1, 3, None, True):
        assert safe_cell(value) == value
        assert cell_value(value) == value
    # a cell's own leading apostrophe is kept through a write and a read ("'=in2/x.nii.gz", an
    # input folder named so, was read back as "=in2/…", and its summary row dropped as gone)
    for text in ("'=in2/bad2.nii.gz", "'q", "''", "'-5", "'"):
        assert safe_cell(text) == "'" + text and cell_value(safe_cell(text)) == text
    # a text with an apostrophe of its own that safe_cell never added (a summary written
    # before 6 Dec 2026 held it as it is) reads back with that apostrophe
    for text in ("'HCC_001", "'q x", "'3"):
        assert cell_value(text) == text


def test_a_temporary_file_that_cannot_be_made_is_said_of_the_file_asked_for(tmp_path, monkeypatch):
    """Saving into a read-only folder said "Read-only file system: '…/.gt.nii.gz.rlwql9ay.nii.gz'":
    a hidden temporary name the user never chose."""
    import errno
    import tempfile

    from napari_livertumor.fileio import atomic_path

    def refuse(prefix="", suffix="", dir=None):
        raise OSError(errno.EROFS, "Read-only file system", f"{dir}/{prefix}x1y2{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    target = tmp_path / "gt.nii.gz"
    with pytest.raises(OSError) as caught, atomic_path(target, ".nii.gz"):
        pass
    assert caught.value.errno == errno.EROFS and caught.value.filename == str(target)


def test_a_folder_path_over_the_systems_limit_is_refused_with_a_message(tmp_path):
    """A folder path over 4096 bytes raised Errno 36 out of Export (napari's traceback)."""
    from napari_livertumor.errors import InputError
    from napari_livertumor.fileio import check_writable_folder

    deep = tmp_path.joinpath(*["中" * 80] * 18, "sub")  # about 4.3 kB
    with pytest.raises(InputError, match="cannot be used: File name too long"):
        check_writable_folder(deep)


def test_a_file_in_a_folders_place_is_named_once(tmp_path):
    """An Output that is a file read "…/afile: is a file, so …/afile cannot be a folder", the
    path twice; a folder under a file names both."""
    from napari_livertumor.errors import InputError
    from napari_livertumor.fileio import check_writable_folder

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InputError) as err:
        check_writable_folder(afile)
    assert str(err.value) == f"{afile}: is a file, not a folder"
    with pytest.raises(InputError) as err:
        check_writable_folder(afile / "liver")
    assert str(err.value) == f"{afile}: is a file, so {afile / 'liver'} cannot be a folder"
