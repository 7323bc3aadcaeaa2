"""What made a result: the software (this package, its commit when run from a checkout, the
libraries whose arithmetic makes the masks), and digests that tie a result to its input and its
model files. Written into ``segment``'s stats, ``evaluate``'s summary and the panels' exports.

No torch import here: versions are read from the installed packages' metadata.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np

from . import __version__

#: the libraries whose versions can change a segmentation (resampling, networks, contours)
_LIBRARIES = ("torch", "monai", "numpy", "scipy", "scikit-image")


@functools.lru_cache(maxsize=1)
def software() -> dict:
    """``{"napari_livertumor", "commit", "python", <library>: version, ...}``.

    ``commit`` is the git commit of the checkout the package runs from (``-dirty`` when its
    tracked files differ from it), ``None`` for an installed package (its version names it).
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
    """The checkout's commit (12 hex, ``-dirty`` with local changes), None outside one."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # no git, a broken or foreign checkout
        return None
    return f"{sha}-dirty" if changed else sha or None


def array_digest(array: np.ndarray) -> str:
    """SHA-1 (16 hex) of an array's shape, dtype and values: the same CT read from its DICOM
    series or from a NIfTI written of it (as int16) gives the same digest."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"{array.shape}|{array.dtype.str}|".encode())
    digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """SHA-1 (16 hex) of a file's bytes (a split file, a model's weights)."""
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


__all__ = ["array_digest", "file_digest", "software"]
