"""File writing shared by the package: atomic writes, locks between runs, safe names.

A file is written under a temporary name in its destination folder, given the permissions a
normal ``open()`` would give it (``tempfile.mkstemp`` makes files private), and renamed over the
destination only when complete. A failed or interrupted write leaves no partial file behind.
Two processes writing the same outputs take turns through :func:`file_lock`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: names longer than this (in bytes) get a shortened temporary prefix: the temporary name adds
#: about 20 bytes, and a name component may have 255 at most
_LONG_NAME = 100


def temp_prefix(path: str | Path) -> str:
    """The hidden prefix of ``path``'s temporary files in its folder: ``.<name>.``, or for a
    long name its start and a hash of it (a legal name's temporary name must be legal too)."""
    import hashlib

    name = Path(path).name
    raw = os.fsencode(name)  # the name's own bytes (a Latin-1 one's too)
    if len(raw) <= _LONG_NAME:
        return f".{name}."
    digest = hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:12]
    return f".{os.fsdecode(raw[:40]).encode('utf-8', 'ignore').decode('utf-8')}-{digest}."


@contextmanager
def atomic_path(
    path: str | Path,
    suffix: str = ".tmp",
    *,
    exclusive: bool = False,
    shown_as: str | Path | None = None,
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; publish it as ``path`` when the block succeeds.

    ``suffix`` matters to writers that pick the format from the name (``".nii.gz"``).
    ``exclusive``: never replace a file there, not even one another process wrote while this
    one was writing (``FileExistsError`` naming ``path``). An error of the block that names no
    file, or the temporary one (a full disk: ``[Errno 28]`` alone; a copy's, naming it second),
    is raised naming ``shown_as`` or ``path``: the file the user asked for (pydicom's wrapped
    error unwrapped: :func:`named_os_error`).
    """
    shown_as = shown_as or path  # (the name asked for, not a link's target)
    path = resolved(path)
    if exclusive and (path.exists() or path.is_symlink()):  # there before: not "meanwhile"
        raise FileExistsError(errno.EEXIST, "exists; nothing was replaced", str(shown_as))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=suffix, dir=path.parent)
    except OSError as exc:  # a read-only folder: named as the file asked for, not the temporary
        said = named_os_error(exc, shown_as, temp=getattr(exc, "filename", None))
        if said is exc:
            raise
        raise said from exc
    os.close(fd)
    try:
        try:
            yield Path(tmp)
        except OSError as exc:
            said = named_os_error(exc, shown_as or path, temp=tmp)
            if said is exc:
                raise
            raise said from exc
        give_mode(tmp, like=path)
        try:
            if exclusive:
                _publish_new(Path(tmp), path, shown_as)
            else:
                os.replace(tmp, path)
        except FileExistsError:
            raise
        except OSError as exc:  # an immutable or locked file there: named, not the temporary
            if exc.errno is None:
                raise
            raise OSError(
                exc.errno, f"{exc.strerror or exc}; it was not replaced", str(shown_as or path)
            ) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def unwrapped_os_error(exc: OSError) -> OSError:
    """The operating system's own error inside ``exc``: pydicom wraps one raised while it
    writes an element in an error of the same type, without its errno, whose text is a whole
    traceback ("With tag (7FE0,0010) got exception: [Errno 28] No space left on device" and
    the stack); ``exc`` itself when it wraps none."""
    inner = exc
    while inner.errno is None and isinstance(inner.__cause__, OSError):
        inner = inner.__cause__
    return inner


def named_os_error(exc: OSError, path: str | Path, temp: str | Path | None = None) -> OSError:
    """``exc`` said plainly about ``path`` (``<path>: No space left on device``): the error
    pydicom wraps (:func:`unwrapped_os_error`), naming ``path`` where it named no file or the
    temporary one, ``temp``, written first. An error without an errno, or about another file,
    is ``exc`` itself."""
    inner = unwrapped_os_error(exc)
    if inner.errno is None:
        return exc
    temps = () if temp is None else (temp, str(temp))
    # a copy's error names its source first and the temporary file second (shutil.copyfile):
    # the file being written is the one to name there too
    if inner.filename in (None, *temps) or inner.filename2 in temps:
        return OSError(inner.errno, inner.strerror or str(inner), str(path))
    if inner is exc:
        return exc
    return OSError(inner.errno, inner.strerror, inner.filename, None, inner.filename2)


def _publish_new(tmp: Path, path: Path, shown_as: str | Path | None = None) -> None:
    """``tmp`` renamed to ``path`` only if no file is there, checked and done in one step
    (errors name ``shown_as`` when given)."""
    named = str(shown_as or path)
    try:
        os.link(tmp, path)  # fails if path exists, even when it appeared a moment ago
    except FileExistsError:
        raise FileExistsError(
            errno.EEXIST,
            "exists (written meanwhile by another run?); nothing was replaced",
            named,
        ) from None
    except OSError:  # a file system without hard links (FAT, some network shares)
        if path.exists() or path.is_symlink():
            raise FileExistsError(
                errno.EEXIST,
                "exists (written meanwhile by another run?); nothing was replaced",
                named,
            ) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def atomic_write_bytes(
    path: str | Path, data: bytes, *, shown_as: str | Path | None = None
) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename); errors name
    ``shown_as`` when given (``path`` is itself a file written aside)."""
    with atomic_path(path, shown_as=shown_as) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, shown_as: str | Path | None = None) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically.

    A file name that is not UTF-8 (Latin-1 bytes from a Windows share or an old archive)
    reaches Python as lone surrogates, which UTF-8 cannot encode: written as escapes
    (``\\udce9``, which JSON reads back as the same name), not a crash that lost a batch's
    summary."""
    return atomic_write_bytes(path, text.encode("utf-8", TEXT_ERRORS), shown_as=shown_as)


#: how text files are encoded (:func:`atomic_write_text`): never failing on a file's name
TEXT_ERRORS = "backslashreplace"


def resolved(path: str | Path) -> Path:
    """``path``, or the file it links to: an output is written through a symbolic link to an
    existing file, as an editor does (it was swapped for a plain file, the linked one left
    unchanged).

    A link whose target does not exist is not followed: the link itself is replaced by the
    output, in its own folder. Followed, a link planted in an output folder made a file
    wherever it pointed, outside the folder, while the folder looked empty (``exists()``
    follows links), so nothing was said to be overwritten, not even without ``--overwrite``.
    """
    path = Path(path)
    if path.is_symlink() and os.path.exists(path):
        return Path(os.path.realpath(path))
    return path


def publish(tmp: str | Path, path: str | Path) -> Path:
    """Rename the finished file ``tmp`` over ``path`` (through a link), with the permissions
    of the file it replaces (a private output stays private) or a new file's.

    A link whose target is missing (:func:`resolved`), or cannot take the rename (another
    file system, a closed folder), is itself replaced, as a plain rename does: the write never
    fails for the link's sake, nor makes a file outside ``path``'s folder. Other errors name
    ``path``, not the temporary file."""
    path = Path(path)
    target = resolved(path)
    give_mode(tmp, like=target)
    try:
        os.replace(tmp, target)
        return target
    except OSError as exc:
        if target != path and exc.errno in _LINK_TARGET_ERRORS:
            try:
                os.replace(tmp, path)
                return path
            except OSError as again:
                exc = again
        if exc.errno is None:
            raise
        raise OSError(exc.errno, f"{exc.strerror or exc}; it was not replaced", str(path)) from exc


#: why a link's target may refuse a rename from the link's folder
_LINK_TARGET_ERRORS = (errno.EXDEV, errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS)


def give_mode(path: str | Path, like: str | Path | None = None) -> None:
    """The permissions of the file ``like`` that ``path`` replaces (a private scan's mask stays
    private: replaced files had become readable by all), else those of a new file."""
    import stat

    try:
        os.chmod(path, stat.S_IMODE(os.stat(like).st_mode))
        return
    except (OSError, TypeError):  # no file there (or none given): a new file's mode
        pass
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux): the
    umask is the whole process's, and set to 0 for a moment to read it, files another thread
    (napari's settings, a second export) created meanwhile came out writable by all."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o077)  # (elsewhere: set for a moment, to the strictest a file gets)
    os.umask(umask)
    return umask


def check_writable_folder(folder: str | Path) -> None:
    """Raise :class:`~napari_livertumor.errors.InputError` unless ``folder`` is, or can be made,
    a writable folder (its first existing ancestor decides): found out before any work starts.
    """
    from .errors import InputError

    folder = Path(folder)
    if str(folder) == ".":  # the current folder, by its name (".: cannot be written to")
        folder = Path(os.path.abspath(folder))
    probe = folder
    try:
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        is_dir = probe.is_dir()
    except OSError as exc:  # a path over the system's limit (4096 bytes): Errno 36 raised
        raise InputError(folder, f"cannot be used: {exc.strerror or exc}") from exc
    if not is_dir:  # (the folder itself named once: "…/afile: is a file, so …/afile cannot…")
        raise InputError(
            probe,
            "is a file, not a folder"
            if probe == folder
            else f"is a file, so {folder} cannot be a folder",
        )
    # named as the user gave it: a folder to create in a place that cannot hold it is that
    # folder's problem ("/proc: cannot be written to" blamed a folder nobody chose)
    where = (
        f"cannot be created: {probe} does not allow it"
        if probe != folder
        else "cannot be written to"
    )
    try:  # a read-only mount fails os.access too: said as what it is, not as permissions
        read_only = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        read_only = False
    if read_only:
        raise InputError(folder, f"{where} (a read-only file system)")
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


def walk(root: str | Path, *, onerror=None) -> Iterator[tuple[str, list[str], list[str]]]:
    """:func:`os.walk` of ``root``, into folders that are symbolic links too (a study folder
    whose series are links to an archive was found empty), each real folder once (a link to a
    folder above ends there, not in a loop). The caller may sort or prune ``dirnames``."""
    seen: set[tuple[int, int]] = set()
    # the root and the folders above it: a link back to one of them (a patient folder's link
    # to its cohort) would walk the whole cohort again from inside one patient
    above: set[tuple[int, int]] = set()
    probe = Path(os.path.realpath(root))
    for folder in (probe, *probe.parents):
        with contextlib.suppress(OSError):
            st = os.stat(folder)
            above.add((st.st_dev, st.st_ino))
    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            st = None
        if st is not None:
            key = (st.st_dev, st.st_ino)
            if key in seen or (seen and key in above):
                dirnames[:] = []
                continue
            seen.add(key)
        yield dirpath, dirnames, filenames


def all_paths(root: str | Path) -> Iterator[Path]:
    """Every file and folder below ``root``, as ``Path.rglob("*")`` gives them but through
    links to folders (:func:`walk`): each folder's own entries, sorted, then its folders'."""
    for dirpath, dirnames, filenames in walk(root):
        dirnames.sort()
        base = Path(dirpath)
        yield from (base / name for name in sorted(dirnames + filenames))


def remove_stale_temps(final: str | Path, older_than_s: float, suffix: str = "") -> int:
    """Remove the temporary files of ``final`` (:func:`atomic_path`'s, ending in ``suffix``)
    last written more than ``older_than_s`` seconds ago: a killed run's (a younger one may be
    another run's, at work). Returns how many went; never raises."""
    import glob
    import time

    final = Path(final)
    now, gone = time.time(), 0
    for tmp in final.parent.glob(f"{glob.escape(temp_prefix(final))}*{glob.escape(suffix)}"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                gone += 1
        except OSError:
            continue
    return gone


def same_file(a: str | Path | None, b: str | Path | None) -> bool:
    """Whether paths ``a`` and ``b`` name one file or folder: the same text, or both there and
    one on disk (macOS keeps the letter case typed in a resolved path, so ``~/desktop/ct`` and
    ``~/Desktop/CT`` differ as text)."""
    if a is None or b is None or not str(a) or not str(b):
        return str(a or "") == str(b or "")
    if str(a) == str(b):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # (one is not there; a NUL in a recorded path)
        return False


def on_windows() -> bool:
    """Whether this runs on Windows (a function, so that tests can pretend it does)."""
    import sys

    return sys.platform == "win32"


def windows_path_limit() -> int | None:
    """The most characters a path may have where Windows' MAX_PATH applies (259: 260 with
    its closing NUL); None elsewhere, and on a Windows with long paths enabled."""
    if not on_windows():
        return None
    try:  # (the LongPathsEnabled setting, and a Python that may use it)
        import ctypes

        enabled = ctypes.WinDLL("ntdll").RtlAreLongPathsEnabled
        enabled.restype = ctypes.c_ubyte  # (a BOOLEAN: one byte)
        if enabled():
            return None
    except (AttributeError, OSError):  # (no such call: a Windows before 10)
        pass
    return 259


def windows_path_length(path: str | Path) -> int:
    """``path``'s length as Windows counts it (UTF-16 units), made absolute."""
    return len(os.path.abspath(path).encode("utf-16-le", "surrogatepass")) // 2


#: the random part of a temporary name (``tempfile``'s 8 characters) and the longest ending
#: one is given here (``.partial``: a DICOM SEG's; ``.nii.gz``, ``.tmp``, ``.npz`` are shorter)
_TEMP_RANDOM, _TEMP_ENDING = 8, ".partial"


def longest_temp_path(final: str | Path, ending: str = _TEMP_ENDING) -> Path:
    """The longest path a file written to ``final`` through :func:`atomic_path` has while it
    is written: its temporary name beside it (:func:`temp_prefix`, the random part, the
    ``suffix`` given there: ``ending``, the longest by default), longer than ``final``."""
    final = Path(final)
    return final.parent / f"{temp_prefix(final)}{'x' * _TEMP_RANDOM}{ending}"


def check_path_lengths(
    folder: str | Path,
    files: Iterable[str | Path] = (),
    *,
    direct: Iterable[str | Path] = (),
    via: Callable[[Path], Path] | None = None,
    ending: str = _TEMP_ENDING,
    choose: str = "an output folder (-o)",
) -> None:
    """Refuse (:class:`~napari_livertumor.errors.InputError` naming ``folder``) a run whose
    files would have paths longer than Windows allows (MAX_PATH, where it applies: no long
    paths enabled), before it writes anything: the write fails there ("No such file or
    directory", naming a hidden temporary file) part-way through, after minutes of work (every
    case of a batch computed, a training run's data prepared). Elsewhere this does nothing.

    ``files``: the files the run writes through temporary names (:func:`atomic_path`), each
    measured by its longest (:func:`longest_temp_path`; ``ending``: the temporary names' when
    all have one, shorter than the longest), of the file ``via(file)`` where it is written
    first under another name (``segment``'s asides); ``direct``: files written as named.
    ``choose``: what the user shortens, as the message says it ("choose an output folder (-o)
    shorter by …").
    """
    from .errors import InputError

    limit = windows_path_limit()
    if limit is None:
        return
    measured = [
        (windows_path_length(longest_temp_path(via(Path(f)) if via else f, ending)), Path(f), True)
        for f in files
    ]
    measured += [(windows_path_length(f), Path(f), False) for f in direct]
    if not measured:
        return
    size, final, temporary = max(measured, key=lambda m: m[0])
    if size > limit:
        which = (
            f"the temporary ones written before {final.name}"
            if temporary
            else f"{final.name} the longest"
        )
        raise InputError(
            folder,
            f"paths too long for Windows: the files this run writes here ({which}) have up "
            f"to {size} characters, and Windows allows {limit} unless its long paths are "
            f"enabled (the LongPathsEnabled setting); choose {choose} shorter by "
            f"{size - limit} characters at least",
        )


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` (on this machine) is still running.

    Not ``os.kill(pid, 0)`` on Windows: there signal 0 is ``CTRL_C_EVENT``, which sends Ctrl-C
    to a live process group and fails with a plain ``OSError`` for a dead pid (read as alive).
    """
    if on_windows():
        import psutil

        return bool(psutil.pid_exists(pid))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def safe_name(name: str) -> str:
    """``name`` as a file name part: letters, digits, ``-_.`` kept, anything else ``_`` (the
    command line's and the panels' output names alike)."""
    import unicodedata

    # a file name's bytes Python could not decode (a Latin-1 name; any non-ASCII one under
    # an ASCII locale) come as lone surrogates: read as UTF-8 where they are, so that a
    # name is the same whatever the locale ("Dïcom", not "D__com" under LANG=C)
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    # composed first: macOS stores é as e + a combining accent, which is no letter of its own
    name = unicodedata.normalize("NFC", name)
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    first, dot, rest = keep.partition(".")
    if first.upper() in _WINDOWS_DEVICES:  # "CON.nii.gz" cannot be made on Windows
        keep = f"{first}_{dot}{rest}"
    return keep or "case"


#: names Windows keeps for devices, whatever follows a dot (a PatientID "CON", "NUL", "COM1";
#: COM0 and the superscript COM¹ COM² COM³ too, which ``isalnum()`` lets through)
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{p}{i}" for p in ("COM", "LPT") for i in [*"0123456789", "\u00b9", "\u00b2", "\u00b3"]]
)


def name_key(name: str) -> str:
    """``name`` as a case-insensitive file system compares it (macOS, Windows, SMB shares,
    exFAT: ``HCC_001`` and ``hcc_001`` are one file there), after Unicode normalisation (macOS
    stores é as e + ´)."""
    import unicodedata

    return unicodedata.normalize("NFC", name).casefold()


def name_clash_text(count: int, first: str, name: str, which, new: str, what="inputs") -> str:
    """The warning of ``name`` written as ``new``: ``count`` ``what`` have one file name on a
    case-insensitive disk, which ``first`` keeps; ``which`` is the one renamed (its path)."""
    many = "two" if count == 2 else str(count)
    # (letter case beyond ASCII is folded differently by NTFS, APFS and casefold():
    # Straße and STRASSE are two names on both, given _2 here all the same)
    one = "one" if first.isascii() and name.isascii() else "may be one"
    named = name if first == name else f"{first} and {name} ({one} file name on macOS and Windows)"
    return f"{many} {what} are named {named}: {which} is written as {new}"


def unique_file_names(names, what="inputs") -> tuple[dict[str, str], list[str]]:
    """Each of ``names`` → a name for its files no other of them has on a case-insensitive
    disk, and the warnings of those renamed. Of names that are one there (``PatA``, ``pata``)
    the first sorted keeps its own, the others get ``_2``, ``_3``… (never a name another has),
    as ``segment`` and ``convert`` name their inputs: the same names give the same files."""
    names = sorted(set(names), key=lambda n: (name_key(n), n))
    taken = {name_key(n) for n in names}
    counts: dict[str, int] = {}
    for n in names:
        counts[name_key(n)] = counts.get(name_key(n), 0) + 1
    first: dict[str, str] = {}  # the name that holds a key
    out: dict[str, str] = {}
    notes: list[str] = []
    for n in names:
        key = name_key(n)
        if key not in first:
            first[key] = out[n] = n
            continue
        i = 2
        while name_key(f"{n}_{i}") in taken:
            i += 1
        out[n] = new = f"{n}_{i}"
        taken.add(name_key(new))
        notes.append(name_clash_text(counts[key], first[key], n, n, new, what))
    return out, notes


def listed_path(raw: str, base: str | Path, *, source=None, where: str = "") -> Path:
    """The path a list's cell names (a case list's ``path``), a relative one from ``base``.

    A list made on Windows separates folders with backslashes, which are a name's own
    characters elsewhere: a path not there as written is read with them as separators
    (``scans\\x.nii.gz`` as ``scans/x.nii.gz``). A drive-letter (``C:\\...``) or network
    (``\\\\server\\...``) path names a Windows disk, no path here: an :class:`InputError`
    of ``source`` says so (``where``: its line). Otherwise the path is returned, found or not
    (reading it says it is not there; with backslashes, what was tried is said first).
    """
    import logging
    import re

    from .errors import InputError

    def here(text: str) -> Path:
        p = Path(text)
        return p if p.is_absolute() else Path(base) / p

    p = here(raw)
    if os.sep == "\\" or os.path.lexists(p):
        return p
    if re.match(r"[A-Za-z]:[\\/]", raw) or raw.startswith("\\\\"):
        disk = "a network share" if raw.startswith("\\") else f"drive {raw[:2]}"
        raise InputError(
            source,
            f"{where}{raw} is a Windows path (on {disk}), which this computer cannot open: "
            "write the file's path as this computer names it, or relative to the list's folder",
        )
    if "\\" not in raw:
        return p
    alt = here(raw.replace("\\", "/"))
    if not os.path.lexists(alt):
        logging.getLogger(__name__).warning(
            "%s%s: not found as written (%s), nor with its backslashes read as folder "
            "separators, as Windows writes paths (%s)",
            f"{source}: " if source is not None else "",
            f"{where}{raw}",
            p,
            alt,
        )
    return alt


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


def parse_user_json(text: str) -> Any:
    """``json.loads`` for a file a user gives: nesting too deep for Python's parser (a
    ``RecursionError`` traceback) is a ``json.JSONDecodeError`` as any other bad JSON, and a
    whole number of more than 30 digits is read as a float (infinite past 1e308: refused by
    the checks that refuse ``Infinity``, where ``float()`` of it raised ``OverflowError``)."""
    import json

    def whole(digits: str) -> int | float:
        return int(digits) if len(digits.lstrip("-")) <= 30 else float(digits)

    try:
        return json.loads(text, parse_int=whole)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def read_user_json(path: str | Path) -> Any:
    """:func:`parse_user_json` of :func:`read_user_text` (its errors: ``OSError``,
    ``UnicodeDecodeError``, ``json.JSONDecodeError``)."""
    return parse_user_json(read_user_text(path))


def not_utf8_message(exc: UnicodeDecodeError) -> str:
    """Says which byte is not UTF-8, and what to do."""
    return (
        f"not a UTF-8 text file (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r}): "
        "save it as UTF-8"
    )


#: folders already warned that file locks do not work in them (said once per folder)
_UNLOCKED_SAID: set[str] = set()


@contextmanager
def file_lock(
    path: str | Path, *, wait_s: float = 0.0, unlocked: str | None = None
) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created, and removed after) for the block; yields
    True when held, False when another process holds it (after ``wait_s`` seconds of trying).

    The operating system's lock (``flock``; ``msvcrt.locking`` on Windows) ends with the
    process, so a killed run leaves no lock that holds. Where locks are not available (a
    folder that cannot be written, a file system without them: NFS mounted ``nolock``, Lustre
    without ``flock``) the block runs unlocked: the writes there say their own errors. A file
    system without locks is warned of once per folder (``unlocked``: what that means for the
    caller's runs, said after "file locks do not work here"), and the lock file this call
    created there is removed (each case's was left behind). A symbolic link at ``path`` is
    refused (``OSError`` naming it), never followed.
    """
    import time

    path = Path(path)
    deadline = time.monotonic() + wait_s
    fd, replaced = None, 0
    while fd is None:
        # never through a link planted at the lock's name: followed, it made an empty file
        # wherever it pointed (outside the folder), and left it there after the block
        if os.path.islink(path):  # (also where there is no O_NOFOLLOW: Windows)
            raise _planted_link(path)
        try:
            existed = os.path.lexists(path)
            opened = os.open(path, os.O_RDWR | os.O_CREAT | _NO_FOLLOW, 0o666)
        except OSError as exc:
            if os.path.islink(path):  # made meanwhile (ELOOP; EMLINK on BSD)
                raise _planted_link(path) from exc
            break  # no lock to be had here: unlocked
        got = _try_lock(opened)
        if got is None:
            os.close(opened)
            if not existed:  # (made for a lock that cannot be had: not left behind)
                _remove_quietly(path)
            _say_unlocked(path.parent, unlocked)
            break
        if got:
            try:  # still the file at that name (not one the last holder removed meanwhile)
                current = os.path.samestat(os.fstat(opened), os.stat(path))
            except OSError:  # (no stable file identity here: taken as current)
                current = True
            if current or replaced >= 20:
                fd = opened
                break
            replaced += 1
            _unlock(opened)
            os.close(opened)
            continue
        os.close(opened)
        if time.monotonic() >= deadline:
            yield False
            return
        time.sleep(0.05)
    if fd is None:
        yield True
        return
    try:
        yield True
    finally:
        if os.name == "nt":  # a file open here cannot be removed: let go of it first
            _unlock(fd)
            os.close(fd)
            _remove_quietly(path)
        else:  # removed while held, so a waiter that opened it sees it replaced
            _remove_quietly(path)
            _unlock(fd)
            os.close(fd)


#: opens a lock file only if it is no symbolic link (0 where the platform lacks the flag)
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _planted_link(path: Path) -> OSError:
    """The error of a symbolic link found where a lock file is made: refused, never followed."""
    return OSError(
        errno.ELOOP,
        "is a symbolic link, not a lock file: refused, not followed (remove the link and run "
        "again)",
        str(path),
    )


def _say_unlocked(folder: Path, consequence: str | None) -> None:
    """Warn, once per folder, that file locks do not work in it (two runs writing into it at
    once are not kept apart)."""
    import logging

    key = os.path.abspath(folder)
    if key in _UNLOCKED_SAID:
        return
    _UNLOCKED_SAID.add(key)
    logging.getLogger(__name__).warning(
        "%s: file locks do not work here: %s",
        folder,
        consequence or "two runs writing into it at once are not kept apart",
    )


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _try_lock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: no locking here."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError as exc:
            return False if exc.errno in (errno.EACCES, errno.EDEADLK) else None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None


def _unlock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass
