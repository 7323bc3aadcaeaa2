"""Will it fit? A step that needs more memory than the machine has free is refused before it
starts, with the figures, instead of being ended by the kernel's out-of-memory killer (which
stops the whole process, napari too, without a word).

The segmentation's working set is measured, not guessed: ``benchmarks/bench_memory.py`` runs
``livertumor segment`` on scans of 42–252 M voxels and checks that :func:`segment_need_bytes`
covers every peak it measures (``benchmarks/results/memory.md``).
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

#: working memory of both stages, the refinement, the statistics and the writing beyond the CT
#: itself and what is resident before (Python, torch, the models: 0.42 GB): a fixed part (the
#: resampled grids, the networks' activations, the lesions' boxes) and a part per voxel of the
#: CT's own grid (the uint8 labels, the masks compared before and after refinement, the labels
#: turned back to the file's axes and written). Measured (``benchmarks/bench_memory.py``,
#: 4 Dec 2026, int16 NIfTI of 42–252 M voxels, each command's own peak): fitted peak RSS =
#: 0.51 GB + 4.5 bytes per voxel, that is about 0.1 GB + 2.5 bytes per voxel beyond the
#: resident part (0.42 GB) and the CT's 2 bytes. Kept here with a margin: the estimate is at
#: least 1.2 times every measured peak (``benchmarks/results/memory.md``).
SEGMENT_FIXED_BYTES = 300_000_000
SEGMENT_BYTES_PER_VOXEL = 3.2


def available_bytes() -> int | None:
    """Memory a new allocation can use without the kernel killing a process: free RAM (with
    the page cache it can drop) plus free swap. None when the system does not say."""
    try:
        import psutil

        return int(psutil.virtual_memory().available + psutil.swap_memory().free)
    except Exception:  # noqa: BLE001 - no figure: no check (never a reason to refuse)
        return None


def gigabytes(n: float) -> str:
    """``n`` bytes as "1.4 GB", or "350 MB" under one gigabyte ("0.0 GB" said nothing)."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def segment_need_bytes(shape, *, copy_bytes_per_voxel: float = 0.0) -> int:
    """Memory segmenting a CT of ``shape`` (any order) needs beyond the CT array itself.

    ``copy_bytes_per_voxel``: a working copy of the CT the segmentation makes first (a file
    stored in another axis order is turned to the models' axes, other integer types are
    made int16 or float32; bench_memory.py's scans need none), and the labels turned back.
    """
    voxels = 1
    for n in shape:
        voxels *= int(n)
    per_voxel = SEGMENT_BYTES_PER_VOXEL + float(copy_bytes_per_voxel)
    return int(SEGMENT_FIXED_BYTES + per_voxel * voxels)


def require(need: int, what: str, path: str | Path | None = None, *, advice: str = "") -> None:
    """Raise :class:`~napari_livertumor.errors.InputError` (naming ``path``) when ``need`` bytes
    are more than the machine has free; ``what`` says what needs them ("reading its 1024 × …
    voxels"), ``advice`` what the user can do besides freeing memory."""
    free = available_bytes()
    if free is None or need <= free:
        return
    raise InputError(
        path,
        f"not enough memory: {what} needs about {gigabytes(need)}, and this machine has "
        f"{gigabytes(free)} free (memory and swap). Close other programs"
        + (f", {advice}" if advice else "")
        + ", or use a machine with more memory",
    )
