"""Atomic file writes shared by every writer in the package.

A file is written under a temporary name in its destination folder, given the permissions a
normal ``open()`` would give it (``tempfile.mkstemp`` makes files private), and renamed over the
destination only when complete. A failed or interrupted write leaves no partial file behind.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; publish it as ``path`` when the block succeeds.

    ``suffix`` matters to writers that pick the format from the name (``".nii.gz"``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _give_normal_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _give_normal_mode(path: str | Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def check_writable_folder(folder: str | Path) -> None:
    """Raise :class:`~napari_livertumor.errors.InputError` unless ``folder`` is, or can be made,
    a writable folder (its first existing ancestor decides): found out before any work starts.
    """
    from .errors import InputError

    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(probe, f"is a file, so {folder} cannot be a folder")
    # named as the user gave it: a folder to create in a place that cannot hold it is that
    # folder's problem ("/proc: cannot be written to" blamed a folder nobody chose)
    where = (
        f"cannot be created: {probe} does not allow it"
        if probe != folder
        else "cannot be written to"
    )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(folder, f"{where} (permissions)")
    try:  # permissions can say yes where writing fails (read-only mounts, immutable folders)
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno == errno.ENOENT:  # a special file system (/proc) that takes no files
            why = "it takes no new files"
        raise InputError(folder, f"{where} ({why})") from exc


def safe_name(name: str) -> str:
    """``name`` as a file name part: letters, digits, ``-_.`` kept, anything else ``_`` (the
    command line's and the panels' output names alike)."""
    import unicodedata

    # composed first: macOS stores é as e + a combining accent, which is no letter of its own
    name = unicodedata.normalize("NFC", name)
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep or "case"


def read_user_text(path: str | Path) -> str:
    """A text file a user may have saved with any editor: UTF-8 (a BOM is fine), or UTF-16
    with its BOM (what Windows PowerShell 5's ``>`` and ``Out-File`` write).

    Raises ``UnicodeDecodeError`` for other encodings, ``OSError`` when unreadable.
    """
    data = Path(path).read_bytes()
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):  # before UTF-16's
        return data.decode("utf-32")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def not_utf8_message(exc: UnicodeDecodeError) -> str:
    """Says which byte is not UTF-8, and what to do."""
    return (
        f"not a UTF-8 text file (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r}): "
        "save it as UTF-8"
    )
