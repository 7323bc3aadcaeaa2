"""Will it fit? A step that needs more memory than the process can get is refused before it
starts, with the figures, instead of being ended by the kernel's out-of-memory killer (which
stops the whole process, napari too, without a word). What it can get is the smallest of the
machine's free memory and swap, what its container's or job's cgroup memory limit leaves and
what its address-space limit (``ulimit -v``) leaves (:func:`headroom`).

The segmentation's working set is measured, not guessed: ``benchmarks/bench_memory.py`` runs
``livertumor segment`` on scans of 42–252 M voxels and checks that :func:`segment_need_bytes`
covers every peak it measures (``benchmarks/results/memory.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .errors import InputError

#: working memory of both stages, the refinement, the statistics and the writing beyond the CT
#: itself and what is resident before (Python, torch, the models: 0.42 GB): a fixed part (the
#: resampled grids, the networks' activations, the lesions' boxes) and a part per voxel of the
#: CT's own grid (the uint8 labels, the masks compared before and after refinement, the labels
#: turned back to the file's axes and written). Measured (``benchmarks/bench_memory.py``,
#: 4 Dec 2026, int16 NIfTI of 42–252 M voxels, each command's own peak): fitted peak RSS =
#: 0.51 GB + 4.5 bytes per voxel, that is about 0.1 GB + 2.5 bytes per voxel beyond the
#: resident part (0.42 GB) and the CT's 2 bytes. Kept here with a margin: the estimate is at
#: least 1.2 times every peak measured there (``benchmarks/results/memory.md``); a review
#: (5 Dec 2026, one thread) found 1.22-1.24 times on 512² int16 scans but only 1.12-1.15 times
#: on 768² and 1024² slices and int32 input (docs/benchmarks.md, Memory).
SEGMENT_FIXED_BYTES = 300_000_000
SEGMENT_BYTES_PER_VOXEL = 3.2


#: the cgroup file systems: cgroup v2 (unified, or beside v1 in the hybrid layout) and v1's
#: memory controller (Docker, Kubernetes, Slurm, systemd limit a process through them)
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: which cgroups this process is in (v2's "0::/path", v1's "N:memory:/path")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
#: a limit this large is "no limit" (v1 says 9223372036854771712, a page count's largest)
_NO_LIMIT = 2**60


class Headroom(NamedTuple):
    """What a new allocation can use, and which limit says so: ``"machine"`` (free memory and
    swap), ``"cgroup"`` (the container's or job's memory limit), ``"rlimit"`` (the process's
    address-space limit, ``ulimit -v``)."""

    bytes: int
    limit: str


def headroom() -> Headroom | None:
    """The smallest of the machine's free memory, what this process's cgroup limit leaves
    and what its address-space limit leaves; None when none of them can be read. A source
    that cannot be read is left out; this never raises."""
    return _headroom()


def _headroom(skip: str = "") -> Headroom | None:
    found = []
    for limit, source in (("machine", _machine_free), ("cgroup", _cgroup_free),
                          ("rlimit", _rlimit_free)):  # fmt: skip
        if limit == skip:
            continue
        try:
            n = source()
        except Exception:  # noqa: BLE001 - no figure from this source: not counted
            n = None
        if n is not None:
            found.append(Headroom(max(int(n), 0), limit))
    return min(found, key=lambda h: h.bytes) if found else None


def available_bytes() -> int | None:
    """Memory a new allocation can use without the kernel killing a process (see
    :func:`headroom`). None when the system does not say."""
    room = headroom()
    return None if room is None else room.bytes


def _machine_free() -> int:
    """Free RAM (with the page cache it can drop) plus free swap."""
    import psutil

    return int(psutil.virtual_memory().available + psutil.swap_memory().free)


def _read_int(path: Path) -> int | None:
    """A cgroup file's number; None for "max", a missing file or anything else."""
    try:
        text = path.read_text().strip()
        return int(text)
    except (OSError, ValueError):
        return None


def _inactive_file(path: Path, keys: tuple[str, ...]) -> int:
    """The page cache in ``memory.stat`` the kernel drops before it kills (counted in the
    cgroup's usage); 0 when it cannot be read."""
    try:
        stat = dict(line.split()[:2] for line in path.read_text().splitlines() if line.strip())
    except (OSError, ValueError):
        return 0
    for key in keys:
        try:
            return max(int(stat[key]), 0)
        except (KeyError, ValueError):
            continue
    return 0


def _cgroup_free() -> int | None:
    """What the memory limits of this process's cgroup and the cgroups above it leave (the
    smallest), less its usage but for the page cache it can drop; None without a limit."""
    own_v2: str | None = None
    own_v1: str | None = None
    for line in PROC_SELF_CGROUP.read_text().splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            own_v2 = parts[2]
        elif "memory" in parts[1].split(","):
            own_v1 = parts[2]
    frees: list[int] = []
    if own_v2 is not None:
        for root in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
            frees += _walk_up(root, own_v2, "memory.max", "memory.current", ("inactive_file",))
    if own_v1 is not None:
        frees += _walk_up(
            CGROUP_ROOT / "memory",
            own_v1,
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            ("total_inactive_file", "inactive_file"),
        )
    return min(frees) if frees else None


def _walk_up(root: Path, own: str, limit_file: str, usage_file: str, cache_keys) -> list[int]:
    """Limit less usage of each cgroup from ``own`` up to ``root`` that has a limit (in a
    container the path /proc/self/cgroup names may be the host's: its own root is reached)."""
    frees = []
    parts = [p for p in own.strip().split("/") if p and p not in (".", "..")]
    for depth in range(len(parts), -1, -1):
        folder = root.joinpath(*parts[:depth])
        limit = _read_int(folder / limit_file)
        if limit is None or limit <= 0 or limit >= _NO_LIMIT:
            continue
        usage = _read_int(folder / usage_file)
        if usage is None:
            continue
        usage -= _inactive_file(folder / "memory.stat", cache_keys)
        frees.append(limit - max(usage, 0))
    return frees


def _rlimit_free() -> int | None:
    """What RLIMIT_AS (``ulimit -v``) leaves above the process's virtual size; None without."""
    soft = address_space_limit()
    if soft is None:
        return None
    import psutil

    return int(soft) - int(psutil.Process().memory_info().vms)


def address_space_limit() -> int | None:
    """This process's address-space limit (RLIMIT_AS, ``ulimit -v``) in bytes; None without
    one (or where it cannot be read)."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    except Exception:  # noqa: BLE001 - no resource module (Windows), or unreadable
        return None
    if soft == resource.RLIM_INFINITY or soft < 0 or soft >= _NO_LIMIT:
        return None
    return int(soft)


def out_of_memory_advice() -> str:
    """What to do when a step ran out of memory: under an address-space limit (``ulimit -v``,
    a batch job's) that limit is what ran out, not the machine: "close other programs, or use
    a bigger machine" sent the user the wrong way."""
    limit = address_space_limit()
    if limit is not None:
        return (
            f"this process's address-space limit (ulimit -v) is {gigabytes(limit)}: raise that "
            "limit (or ask the job for more memory)"
        )
    return "close other programs, or use a bigger machine"


#: how each limit is said in a refusal, and what the user can do about it
_SAID = {
    "machine": ("this machine has {} free (memory and swap)", ""),
    "cgroup": (
        "this container's memory limit (its cgroup) leaves {}",
        "give the container or job more memory",
    ),
    "rlimit": (
        "this process's address-space limit (ulimit -v) leaves {}",
        "raise that limit",
    ),
}


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
    return SegmentNeed(int(SEGMENT_FIXED_BYTES + per_voxel * voxels))


class SegmentNeed(int):
    """:func:`segment_need_bytes`'s figure: its fixed part (:data:`SEGMENT_FIXED_BYTES`) is
    what a segmentation reserves whatever the scan; once one has run in this process, the
    address space it reserved stays mapped and is reused (see :func:`_reserved_before`)."""

    fixed = SEGMENT_FIXED_BYTES


#: the process's virtual size before the input of its first completed segmentation was read
#: (:func:`segmentation_done`); None until one has completed
_vms_before_first: int | None = None
#: the process's virtual size before the current case's input was read (:func:`before_input`)
_vms_before_input: int | None = None
#: whether the current case's check counted address space an earlier segmentation reserved
_credited = False


def _virtual_size() -> int:
    import psutil

    return int(psutil.Process().memory_info().vms)


def before_input() -> None:
    """Note the virtual size before a case's input is read (a batch calls it for each case):
    what a completed segmentation left reserved is measured from there, so the case's own CT
    (read before its check) is never counted as reserved (QA s49fixrev)."""
    global _vms_before_input, _credited
    _credited = False
    try:
        _vms_before_input = _virtual_size()
    except Exception:  # noqa: BLE001 - no figure: nothing counted as reserved
        _vms_before_input = None


def segmentation_done() -> None:
    """Note that a segmentation completed (models loaded and run once) in this process: the
    virtual size before its input was read is what later cases' growth is measured from."""
    global _vms_before_first
    if _vms_before_first is None:
        _vms_before_first = _vms_before_input


def credited() -> bool:
    """Whether the current case's check counted, under an address-space limit (``ulimit -v``),
    address space an earlier segmentation of this process reserved (a batch's later case):
    when such a case still runs out, a process of its own (``--shard``) avoids the batch's."""
    return _credited


def _reserved_before(need: int) -> int:
    """The part of a segmentation's fixed need an earlier segmentation in this process already
    holds in its virtual size: what the virtual size grew by from before the input of the
    first completed segmentation was read to before this case's input was read (glibc's
    arenas, torch's thread pools: kept mapped, and reused), at most the fixed part; nothing
    before a segmentation has completed, nor where :func:`before_input` was not called. An
    address-space limit (``ulimit -v``) counts the virtual size: charging the fixed part again
    there counted it twice (a batch at 1.2 GB refused its 2nd to 4th cases, each of which ran
    alone). Free memory and a cgroup's limit count resident memory, which the batch hands
    back between cases: there it is charged every time."""
    fixed = int(getattr(need, "fixed", 0))
    if not fixed or _vms_before_first is None or _vms_before_input is None:
        return 0
    return max(0, min(fixed, _vms_before_input - _vms_before_first))


def _rounded(n: int, *, up: bool) -> str:
    """:func:`gigabytes` of ``n`` rounded up or down at the figure's last digit: a need
    rounded up beside a room rounded down never read equal ("needs about 165 MB, and … leaves
    165 MB")."""
    unit = 100_000_000 if n >= 1e9 else 1_000_000
    steps = -(-int(n) // unit) if up else int(n) // unit
    return gigabytes(steps * unit)


def require(need: int, what: str, path: str | Path | None = None, *, advice: str = "") -> None:
    """Raise :class:`~napari_livertumor.errors.InputError` (naming ``path``) when ``need`` bytes
    are more than the machine has free, or than a container's memory limit or the process's
    address-space limit leaves (the message says which); ``what`` says what needs them
    ("reading its 1024 × … voxels"), ``advice`` what the user can do besides freeing memory."""
    global _credited
    reserved = _reserved_before(need)
    if reserved and address_space_limit() is not None:
        _credited = True  # (said when the case still runs out: segment's out-of-memory text)
    room = headroom()
    if room is None or need <= room.bytes:
        return
    if room.limit == "rlimit":  # (what is in the virtual size already is not counted twice)
        if reserved and need - reserved <= room.bytes:
            room = _headroom(skip="rlimit")  # the other limits count all of it
            if room is None or need <= room.bytes:
                return
        else:
            need -= reserved
    said, raise_it = _SAID.get(room.limit, _SAID["machine"])
    # (other programs take nothing from a process's own address-space limit)
    steps = [
        *(["close other programs"] if room.limit != "rlimit" else []),
        *([advice] if advice else []),
        *([raise_it] if raise_it else []),
        # (a bigger machine lifts no process's own limit)
        *(["or use a machine with more memory"] if room.limit != "rlimit" else []),
    ]
    if room.limit == "rlimit" and len(steps) > 1:
        steps[-1] = f"or {steps[-1]}"
    todo = ", ".join(steps)
    raise InputError(
        path,
        f"not enough memory: {what} needs about {_rounded(need, up=True)}, and "
        + said.format(_rounded(room.bytes, up=False))
        + f". {todo[:1].upper()}{todo[1:]}",
    )


def out_of_memory(exc: BaseException) -> tuple[bool, str] | None:
    """Whether ``exc`` is running out of memory, as ``(on the GPU, what ran out in words)``;
    None for any other error. numpy's MemoryError ("Unable to allocate 900. MiB ..."), torch's
    on the CPU (a RuntimeError "[enforce fail at alloc_cpu.cpp:127] ... DefaultCPUAllocator:
    can't allocate memory: you tried to allocate ..."), on the GPU (torch.cuda.OutOfMemoryError,
    "CUDA out of memory"): said raw before, the allocator's C++ line in the user's face."""
    import re

    from .errors import LiverTumorError

    if isinstance(exc, MemoryError):
        return False, str(exc) or "MemoryError"
    if not isinstance(exc, RuntimeError) or isinstance(exc, LiverTumorError):
        return None
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    low = text.lower()
    # torch.cuda.OutOfMemoryError; a kernel launch's "CUDA error: out of memory"; Apple's MPS
    if type(exc).__name__ == "OutOfMemoryError" or (
        "out of memory" in low and re.search(r"\b(cuda|mps)\b", low)
    ):
        return True, first
    if "can't allocate memory" in text or "DefaultCPUAllocator" in text:
        said = re.search(r"you tried to allocate (\d+) bytes", text)
        if not said:
            return False, first
        n = int(said[1])  # (a model's layer under ulimit -v: 442368 bytes, not "0 MB")
        return (
            False,
            f"torch could not allocate {gigabytes(n) if n >= 1e6 else f'{n / 1e3:.0f} kB'}",
        )
    return None


def out_of_memory_text(exc: BaseException | None, *, causes: bool = False) -> str | None:
    """What a step that ran out of memory says (:func:`out_of_memory`, with what to do:
    :func:`out_of_memory_advice`); None for any other error. ``causes``: the errors it was
    raised from are looked at too (a model folder's "cannot be built here", raised from
    torch's "can't allocate memory")."""
    seen = 0
    while exc is not None and seen < (8 if causes else 1):
        found = out_of_memory(exc)
        if found is not None:
            gpu, detail = found
            if gpu:
                return (
                    f"out of GPU memory ({detail}): close what else uses the GPU, or run with "
                    "--device cpu"
                )
            # under ulimit -v (a batch job's limit) that limit ran out, not the machine
            return f"out of memory ({detail}): {out_of_memory_advice()}"
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        seen += 1
    return None


def return_freed_memory() -> bool:
    """Hand memory freed by a finished job back to the system (glibc's ``malloc_trim``): the
    allocator keeps freed blocks for reuse, so napari's resident size climbed job after job
    (812 MB to 1.34 GB over ten patients in one session, a review measured, and back to 752 MB
    once trimmed) though nothing was held. True when it ran; False where there is no glibc
    (macOS, Windows, musl): nothing to do there."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True
