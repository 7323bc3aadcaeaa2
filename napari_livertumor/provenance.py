"""What made a result: the software (this package, its commit when run from a checkout, the
libraries whose arithmetic makes the masks), and digests that tie a result to its input and its
model files. Written into ``segment``'s stats, ``evaluate``'s summary and the panels' exports.

No torch import here: versions are read from the installed packages' metadata.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np

from . import __version__

log = logging.getLogger(__name__)

#: the libraries whose versions can change a segmentation (resampling, networks, contours)
_LIBRARIES = ("torch", "monai", "numpy", "scipy", "scikit-image")


@functools.lru_cache(maxsize=1)
def software() -> dict:
    """``{"napari_livertumor", "commit", "python", <library>: version, ...}``.

    ``commit`` is the git commit of the checkout the package runs from (``-dirty.<digest>``
    when its tracked files differ from it), or the one pip installed it from (``git+https://...``);
    ``None`` for a release (its version names it).
    """
    out: dict = {"napari_livertumor": __version__, "commit": _commit()}
    out["python"] = platform.python_version()
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _commit() -> str | None:
    """The checkout's commit (12 hex, ``-dirty.<8 hex of the local changes>`` with some), None
    outside one."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return _installed_commit()

    def git(*args: str) -> str:
        # --no-optional-locks: `git status` refreshed the index, writing .git/index.lock in
        # the checkout on every run (two jobs at once, a read-only checkout); safe.directory:
        # a checkout another user owns (a cluster's shared install) was refused ("dubious
        # ownership"), the commit left out without a word
        return subprocess.run(
            ["git", "--no-optional-locks", "-c", f"safe.directory={root}", "-C", str(root),
             *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()  # fmt: skip

    try:
        sha = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError) as exc:  # no git, a broken checkout
        log.debug("the commit of %s is not recorded: %s", root, _why(exc))
        return None
    if not changed:
        return sha or None
    try:  # which local changes: a bug and its fix, two edits of one commit, were both "-dirty"
        diff = git("diff", "HEAD", "--no-ext-diff", "--no-color")
    except (OSError, subprocess.SubprocessError) as exc:  # (a huge diff past the time limit)
        log.debug("the local changes of %s are not digested: %s", root, _why(exc))
        return f"{sha}-dirty"
    digest = hashlib.sha1(diff.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{sha}-dirty.{digest}"


def _why(exc: BaseException) -> str:
    """What a failed git call says (its first line on stderr), or the error itself."""
    said = getattr(exc, "stderr", None)
    if isinstance(said, str) and said.strip():
        return said.strip().splitlines()[0]
    return str(exc) or type(exc).__name__


def _installed_commit() -> str | None:
    """The commit pip installed from (``pip install git+https://...``: PEP 610's
    ``direct_url.json`` records it), 12 hex; None for a release or a plain folder."""
    import json

    try:
        text = metadata.distribution("napari-livertumor").read_text("direct_url.json")
        sha = json.loads(text or "{}").get("vcs_info", {}).get("commit_id")
    except (metadata.PackageNotFoundError, ValueError, AttributeError, OSError):
        return None
    return str(sha)[:12] if sha else None


def array_digest(array: np.ndarray) -> str:
    """SHA-1 (16 hex) of an array's shape and values in their stored order.

    The values are hashed as little-endian int16 when that holds them exactly (a CT's HU, from
    any integer or whole-valued float type), else as float64: the same CT read from its DICOM
    series or from a NIfTI of the same voxel order (``convert``'s; int16, int32 or float32)
    gives the same digest. A reoriented copy (another axis order or direction) does not.
    """
    array = np.asarray(array)
    if array.dtype.kind in "iub" or (array.dtype.kind == "f" and array.size):
        info = np.iinfo(np.int16)
        low, high = (array.min(), array.max()) if array.size else (0, 0)
        whole = array.dtype.kind != "f" or (
            np.isfinite(low) and np.isfinite(high) and _whole_valued(array)
        )
        wanted = "<i2" if whole and info.min <= low and high <= info.max else "<f8"
        array = array.astype(wanted, copy=False)  # a CT already int16: hashed as it is
    else:
        array = array.astype("<f8", copy=False)
    array = np.ascontiguousarray(array)
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"{array.shape}|{array.dtype.str}|".encode())
    digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()[:16]


def _whole_valued(array: np.ndarray) -> bool:
    """Whether a float array holds whole numbers only (slab by slab: no copy of the whole)."""
    flat = array.reshape(-1) if array.flags.c_contiguous else array.ravel()
    step = 1 << 22
    return all(
        np.array_equal(part, np.round(part))
        for part in (flat[i : i + step] for i in range(0, flat.size, step))
    )


def file_digest(path: str | Path) -> str:
    """SHA-1 (all 40 hex digits) of a file's bytes (a split file, a model's weights): the
    same text as a model's ``metadata.json`` ``weights_sha1`` and ``sha1sum``."""
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["array_digest", "file_digest", "software"]
