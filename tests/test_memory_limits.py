"""The memory guard counts the limits a container, a batch job or ``ulimit -v`` sets, not only
the machine's free memory (a container's process was killed without a word where the machine
had room), and says which limit refused; torch running out of memory is said as such.

Every figure here is simulated (cgroup files in a temporary folder, resource.getrlimit and
psutil replaced): nothing depends on the machine running the tests."""

from __future__ import annotations

import logging
from collections import namedtuple
from pathlib import Path

import pytest

# (no such module on Windows, where ulimit does not exist: the module is skipped there, not
# an error that stops the whole test run when it is collected)
resource = pytest.importorskip("resource", reason="no resource module (Windows)")

from napari_livertumor import memory  # noqa: E402
from napari_livertumor.errors import InputError  # noqa: E402

GB = 1_000_000_000


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A machine with 64 GB free, no cgroup limit, no address-space limit; returns a function
    to set a figure: ``set(machine=..., cgroup_v2=(path, {file: text}), ...)``."""
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("0::/\n")
    root = tmp_path / "cgroup"
    root.mkdir()
    monkeypatch.setattr(memory, "CGROUP_ROOT", root)
    monkeypatch.setattr(memory, "PROC_SELF_CGROUP", proc)
    monkeypatch.setattr(memory, "_machine_free", lambda: 64 * GB)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (-1, -1))
    # (no earlier test's segmentation credited here)
    monkeypatch.setattr(memory, "_vms_before_first", None)
    monkeypatch.setattr(memory, "_vms_before_input", None)
    monkeypatch.setattr(memory, "_credited", False)
    return tmp_path


def _files(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text)


def test_only_the_machine_limits_where_no_cgroup_or_rlimit_does(machine):
    assert memory.headroom() == memory.Headroom(64 * GB, "machine")
    assert memory.available_bytes() == 64 * GB


def test_a_cgroup_v2_limit_of_the_process_own_cgroup_is_counted(machine):
    (machine / "proc_self_cgroup").write_text("0::/system.slice/docker-abc.scope\n")
    own = machine / "cgroup" / "system.slice" / "docker-abc.scope"
    _files(own, memory__max=f"{4 * GB}\n", memory__current=f"{2 * GB}\n",
           memory__stat=f"anon 1\ninactive_file {GB // 2}\nactive_file 5\n")  # fmt: skip
    # the page cache the kernel drops before it kills is not counted as used
    assert memory.headroom() == memory.Headroom(4 * GB - 2 * GB + GB // 2, "cgroup")
    with pytest.raises(InputError) as info:
        memory.require(3 * GB, "reading its 768 × 768 × 400 voxels", "/data/a.nii")
    text = str(info.value)
    assert "/data/a.nii" in text and "needs about 3.0 GB" in text
    assert "this container's memory limit (its cgroup) leaves 2.5 GB" in text
    assert "this machine has" not in text and "give the container or job more memory" in text
    memory.require(2 * GB, "reading it")  # fits


def test_a_limit_of_a_cgroup_above_the_process_is_counted_and_max_is_no_limit(machine):
    """Slurm limits the job's cgroup, the process runs in a step below it; "max" says none."""
    (machine / "proc_self_cgroup").write_text("0::/job_7/step_0\n")
    _files(machine / "cgroup" / "job_7", memory__max=f"{8 * GB}", memory__current=f"{7 * GB}")
    _files(machine / "cgroup" / "job_7" / "step_0", memory__max="max", memory__current="5")
    assert memory.headroom() == memory.Headroom(1 * GB, "cgroup")


def test_in_a_container_the_host_path_is_not_there_and_its_root_is_read(machine):
    (machine / "proc_self_cgroup").write_text("0::/kubepods/pod1/abc\n")
    _files(machine / "cgroup", memory__max=f"{3 * GB}", memory__current=f"{GB}")
    assert memory.headroom() == memory.Headroom(2 * GB, "cgroup")


def test_a_cgroup_v1_memory_limit_is_counted_and_its_huge_figure_is_no_limit(machine):
    (machine / "proc_self_cgroup").write_text("12:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n")
    mem = machine / "cgroup" / "memory"
    _files(mem, memory__limit_in_bytes="9223372036854771712", memory__usage_in_bytes="8")
    assert memory.headroom() == memory.Headroom(64 * GB, "machine")  # unlimited
    _files(mem / "docker" / "abc", memory__limit_in_bytes=f"{6 * GB}",
           memory__usage_in_bytes=f"{5 * GB}",
           memory__stat=f"cache 9\ninactive_file 7\ntotal_inactive_file {GB}\n")  # fmt: skip
    assert memory.headroom() == memory.Headroom(2 * GB, "cgroup")


def test_usage_above_the_limit_leaves_nothing_not_a_negative_figure(machine):
    _files(machine / "cgroup", memory__max=f"{GB}", memory__current=f"{2 * GB}")
    assert memory.headroom() == memory.Headroom(0, "cgroup")


def test_rlimit_as_leaves_its_limit_less_the_process_virtual_size(machine, monkeypatch):
    import psutil

    monkeypatch.setattr(resource, "getrlimit", lambda which: (5 * GB, resource.RLIM_INFINITY))
    info = namedtuple("pmem", "rss vms")(GB, 3 * GB)
    monkeypatch.setattr(psutil.Process, "memory_info", lambda self: info)
    assert memory.headroom() == memory.Headroom(2 * GB, "rlimit")
    with pytest.raises(
        InputError, match=r"address-space limit \(ulimit -v\) leaves 2\.0 GB"
    ) as err:
        memory.require(3 * GB, "segmenting it", advice="crop the scan")
    # other programs take nothing from it; the limit is named once
    assert str(err.value).endswith(". Crop the scan, or raise that limit")
    assert str(err.value).count("ulimit") == 1
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY,) * 2)
    assert memory.headroom() == memory.Headroom(64 * GB, "machine")


def test_the_smallest_figure_applies(machine, monkeypatch):
    _files(machine / "cgroup", memory__max=f"{10 * GB}", memory__current="0")
    monkeypatch.setattr(memory, "_machine_free", lambda: 3 * GB)
    assert memory.headroom() == memory.Headroom(3 * GB, "machine")
    with pytest.raises(InputError, match=r"this machine has 3\.0 GB free \(memory and swap\)"):
        memory.require(4 * GB, "it")


def test_unreadable_sources_are_left_out_and_never_raise(machine, monkeypatch):
    (machine / "proc_self_cgroup").write_text("garbage\n0::/a\n4:memory\n")
    _files(machine / "cgroup" / "a", memory__max="not a number", memory__current="1")
    _files(machine / "cgroup", memory__max=f"{2 * GB}", memory__current="what")
    assert memory.headroom() == memory.Headroom(64 * GB, "machine")

    def boom(*a):
        raise OSError("no such file")

    monkeypatch.setattr(memory, "PROC_SELF_CGROUP", machine / "missing")
    monkeypatch.setattr(resource, "getrlimit", boom)
    assert memory.headroom() == memory.Headroom(64 * GB, "machine")
    monkeypatch.setattr(memory, "_machine_free", boom)
    assert memory.headroom() is None and memory.available_bytes() is None
    memory.require(10**15, "anything")  # no figure: no refusal


# --------------------------------------------------------------- torch running out of memory
TORCH_CPU = (
    "[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 3221225472 bytes. Error code 12 (Cannot allocate memory)"
)


def test_segment_says_torch_cpu_out_of_memory_as_out_of_memory(tmp_path, monkeypatch, caplog):
    from test_segment_cli import small_ct

    from napari_livertumor import pipeline
    from napari_livertumor.cli import main
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.models import make_untrained_model

    make_untrained_model(tmp_path / "models" / "liver", "liver")
    make_untrained_model(tmp_path / "models" / "tumor", "tumor")

    def segment(self, volume, progress=None, **kw):
        raise RuntimeError(TORCH_CPU)

    monkeypatch.setattr(pipeline.Segmenter, "segment", segment)
    write_nifti(small_ct(), tmp_path / "p1.nii.gz")
    write_nifti(small_ct(seed=1), tmp_path / "p2.nii.gz")
    out = tmp_path / "out"
    with caplog.at_level("ERROR"):
        rc = main(["segment", str(tmp_path / "p1.nii.gz"), str(tmp_path / "p2.nii.gz"),
                   "-o", str(out), "--models", str(tmp_path / "models"), "--device", "cpu",
                   "--no-refine"])  # fmt: skip
    assert rc == 1
    summary = (out / "summary.csv").read_text()
    for said in (caplog.text, summary):
        assert "out of memory (torch could not allocate 3.2 GB)" in said
        assert "close other programs, or use a bigger machine" in said
        assert "enforce fail" not in said and "alloc_cpu.cpp" not in said
    assert str(tmp_path / "p1.nii.gz") in summary  # the row still names its input


def test_the_out_of_memory_texts_of_torch_and_numpy(tmp_path):
    from napari_livertumor.commands.segment import _error_text, _out_of_memory_text

    case = type("Case", (), {"path": tmp_path / "a.nii.gz"})()
    cpu = _error_text(RuntimeError(TORCH_CPU), case)
    assert cpu.startswith("out of memory (torch could not allocate 3.2 GB)")
    newer = RuntimeError(
        "DefaultCPUAllocator: not enough memory: you tried to allocate 9000000 bytes"
    )
    assert _out_of_memory_text(newer).startswith("out of memory (torch could not allocate 9 MB")
    OutOfMemoryError = type("OutOfMemoryError", (RuntimeError,), {})  # torch.cuda's kind
    gpu = OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nmore lines")
    assert _error_text(gpu, case) == (
        "out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB.): close what else "
        "uses the GPU, or run with --device cpu"
    )
    assert _out_of_memory_text(RuntimeError("CUDA out of memory. Tried ...")).startswith(
        "out of GPU memory"
    )
    assert _out_of_memory_text(MemoryError("Unable to allocate 900. MiB")).startswith(
        "out of memory (Unable to allocate 900. MiB)"
    )
    assert _out_of_memory_text(RuntimeError("shape mismatch")) is None
    assert _error_text(RuntimeError("shape mismatch"), case) == "shape mismatch"
    assert _out_of_memory_text(InputError(None, "not enough memory: x")) is None


def test_a_model_that_cannot_be_built_for_want_of_memory_is_said_as_out_of_memory(machine):
    """A model folder whose network torch could not allocate raises ModelError ("cannot be
    built here") from torch's "can't allocate memory": loading the models says it as running
    out of memory, with what to do, by looking at the error it was raised from."""
    from napari_livertumor.commands.segment import _load_segmenter
    from napari_livertumor.errors import ModelError

    def make(config):
        try:
            raise RuntimeError(TORCH_CPU)
        except RuntimeError as exc:
            raise ModelError(None, "the network it describes cannot be built here") from exc

    with pytest.raises(ModelError) as info:
        _load_segmenter(make, None)
    said = str(info.value)
    assert "loading the models: out of memory (torch could not allocate 3.2 GB)" in said
    assert said.endswith("close other programs, or use a bigger machine")
    assert memory.out_of_memory_text(info.value.__cause__.__cause__) is not None
    assert memory.out_of_memory_text(ModelError(None, "x")) is None


def test_the_panels_say_torchs_out_of_memory_in_words():
    """A Segment panel's job failing in torch's allocator showed "RuntimeError: [enforce fail
    at alloc_cpu.cpp:127] …" in its status line."""
    from napari_livertumor._widgets._jobs import JobFailed, error_text

    def failed_with(exc: BaseException) -> str:
        try:
            raise JobFailed("segment") from exc
        except JobFailed as failed:
            return error_text(failed)

    said = failed_with(RuntimeError(TORCH_CPU))
    assert said == "Out of memory (torch could not allocate 3.2 GB): close other programs or layers"
    OutOfMemoryError = type("OutOfMemoryError", (RuntimeError,), {})
    said = failed_with(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB."))
    assert said.startswith("Out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB.)")
    assert failed_with(RuntimeError("shape mismatch")) == "RuntimeError: shape mismatch"
    for other in ("CUDA error: out of memory", "MPS backend out of memory (MPS allocated: 9 GB)"):
        assert failed_with(RuntimeError(other)).startswith("Out of GPU memory")
    assert failed_with(MemoryError("Unable to allocate 900. MiB")).startswith(
        "Out of memory (Unable to allocate 900. MiB)"
    )


def test_the_train_panels_process_says_torchs_out_of_memory_as_no_bug(monkeypatch):
    """torch's CPU allocator failing in a Train panel run was sent as a bug: its raw C++ line
    and a traceback."""
    import queue
    import threading

    import napari_livertumor.training as training
    from napari_livertumor._widgets._training_jobs import _train_child

    def out_of_memory(config, should_cancel=None):
        raise RuntimeError(TORCH_CPU)
        yield  # (a generator, as train is)

    monkeypatch.setattr(training, "train", out_of_memory)
    monkeypatch.setattr(training.TrainConfig, "from_dict", staticmethod(lambda d: d))
    reports: queue.Queue = queue.Queue()
    reports.cancel_join_thread = lambda: None
    from napari_livertumor._widgets import _training_jobs

    try:
        _train_child({}, reports, threading.Event())
    finally:  # (the child's log forwarding, left on this process's loggers)
        for name in _training_jobs._LOGGERS:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                if isinstance(handler, _training_jobs._ReportHandler):
                    logger.removeHandler(handler)
    kind, text = reports.get_nowait()
    assert kind == "error"
    assert text == (
        "Out of memory (torch could not allocate 3.2 GB): close other programs, or train with a "
        "smaller batch or patch"
    )


# ------------------------------------------------- ulimit -v: a batch's later cases (QA s49hpc)
def _virtual_size(monkeypatch, now: int) -> dict:
    """psutil's virtual size replaced: set ``figure["now"]`` to change it."""
    import psutil

    figure = {"now": now}
    monkeypatch.setattr(
        psutil.Process, "memory_info", lambda self: namedtuple("pmem", "rss vms")(0, figure["now"])
    )
    return figure


def test_a_batchs_later_cases_are_not_charged_the_reserved_part_twice_under_ulimit_v(
    machine, monkeypatch
):
    """Under ``ulimit -v 1200000`` a batch's first case ran and its 2nd to 4th (same size, each
    of which ran alone) were refused: "needs about 301 MB, … (ulimit -v) leaves 197 MB". The
    first case's working memory stays in the virtual size (kept mapped, reused): charging the
    fixed part again counted it twice."""
    vms = _virtual_size(monkeypatch, 850_000_000)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1_228_800_000, -1))
    need = memory.segment_need_bytes((32, 96, 96))
    memory.before_input()  # 0.85 GB before its CT is read
    vms["now"] = 861_000_000  # as measured: 0.86 GB at the first case's check, 0.98 after
    memory.require(need, "segmenting case 1")  # 368 MB left: fits
    memory.segmentation_done()
    assert not memory.credited()
    for case in (2, 3, 4):
        vms["now"] = 980_000_000  # its working memory freed, its address space kept
        memory.before_input()
        memory.require(need, f"segmenting case {case}")  # 249 MB left, 130 MB of it reserved
        assert memory.credited()
    # the part per voxel is still charged, said without what is reserved: a bigger scan
    vms["now"] = 1_150_000_000  # 79 MB left, 300 MB reserved
    memory.before_input()
    bigger = memory.segment_need_bytes((100, 512, 512))  # 384 MB, 84 MB beyond that
    with pytest.raises(InputError, match=r"needs about 84 MB, .*ulimit -v\) leaves 78 MB"):
        memory.require(bigger, "segmenting case 5")
    # any other need (a scan's reading) is charged in full
    vms["now"] = 980_000_000
    with pytest.raises(InputError, match="needs about 300 MB"):
        memory.require(300_000_000, "reading it")


def test_no_credit_before_a_segmentation_completed_nor_for_the_cases_own_read(machine, monkeypatch):
    """QA s49fixrev: the credit was the growth since the first case's check, whether that
    case had run or been refused, and measured after the next case's CT was read (its own
    input counted as reserved): cases it let through then ran out part-way."""
    vms = _virtual_size(monkeypatch, 1_000_000_000)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1_300_000_000, -1))
    need = memory.segment_need_bytes((73, 256, 256))  # 315 MB
    memory.before_input()
    vms["now"] = 1_010_000_000  # its CT read
    with pytest.raises(InputError, match="needs about 316 MB"):
        memory.require(need, "segmenting case 1")  # refused: nothing segmented
    memory.before_input()
    vms["now"] = 1_034_000_000  # the next case's CT read: 266 MB left
    with pytest.raises(InputError, match=r"needs about 316 MB, .* leaves 266 MB"):
        memory.require(need, "segmenting case 2")  # not credited with case 1's or its own read
    assert not memory.credited()
    # once a case has run, what it left reserved is credited; the next case's read is not
    vms["now"] = 900_000_000
    memory.before_input()
    vms["now"] = 910_000_000
    memory.require(need, "segmenting case 3")
    memory.segmentation_done()
    vms["now"] = 950_000_000  # 50 MB kept reserved after it
    memory.before_input()
    vms["now"] = 1_100_000_000  # its own CT: 150 MB; 200 MB left
    with pytest.raises(InputError, match=r"needs about 266 MB, .* leaves 200 MB"):
        memory.require(need, "segmenting case 4")  # 315 MB less the 50 MB reserved
    assert memory.credited()


def test_the_refusals_figures_never_read_equal(machine, monkeypatch):
    """QA s49fixrev: "needs about 165 MB, and … (ulimit -v) leaves 165 MB": the need rounded
    up and the room rounded down."""
    monkeypatch.setattr(memory, "_machine_free", lambda: 165_300_000)
    with pytest.raises(InputError, match=r"needs about 166 MB, and this machine has 165 MB free"):
        memory.require(165_400_000, "segmenting it")
    monkeypatch.setattr(memory, "_machine_free", lambda: 1_349_000_000)
    with pytest.raises(InputError, match=r"needs about 1.4 GB, and this machine has 1.3 GB free"):
        memory.require(1_351_000_000, "segmenting it")
    monkeypatch.setattr(memory, "_machine_free", lambda: 999_900_000)
    with pytest.raises(InputError, match=r"needs about 1.0 GB, and this machine has 999 MB free"):
        memory.require(999_950_000, "segmenting it")


def test_a_credited_case_that_still_runs_out_says_to_shard(machine, monkeypatch):
    """QA s49fixrev: a later case of a batch under ``ulimit -v``, let through with what the
    earlier cases reserved, ran out part-way with "raise that limit" only."""
    from napari_livertumor.commands.segment import _out_of_memory_text

    vms = _virtual_size(monkeypatch, 900_000_000)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1_400_000_000, -1))
    need = memory.segment_need_bytes((73, 256, 256))
    memory.before_input()
    memory.require(need, "segmenting case 1")
    said = _out_of_memory_text(RuntimeError(TORCH_CPU))
    assert said.endswith("raise that limit (or ask the job for more memory)")  # not credited
    memory.segmentation_done()
    vms["now"] = 1_100_000_000
    memory.before_input()
    memory.require(need, "segmenting case 2")  # 300 MB left, 200 MB reserved
    said = _out_of_memory_text(RuntimeError(TORCH_CPU))
    assert said == (
        "out of memory (torch could not allocate 3.2 GB): this process's address-space limit "
        "(ulimit -v) is 1.4 GB: raise that limit (or ask the job for more memory); cases run "
        "one after another in one process hold more address space: use --shard, or raise the "
        "limit"
    )
    memory.before_input()  # the next case starts: nothing said of it yet
    assert not _out_of_memory_text(RuntimeError(TORCH_CPU)).endswith("raise the limit")


def test_the_reserved_part_is_not_credited_against_free_memory_or_a_cgroup(machine, monkeypatch):
    """Free memory and a cgroup's limit count resident memory, which the batch hands back
    between cases (malloc_trim): the fixed part is charged there every time."""
    vms = _virtual_size(monkeypatch, GB)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (2 * GB, -1))
    need = memory.segment_need_bytes((32, 96, 96))
    memory.before_input()
    memory.require(need, "segmenting case 1")
    memory.segmentation_done()
    vms["now"] = int(1.8 * GB)  # 200 MB left under the limit, 300 MB of it reserved
    memory.before_input()
    monkeypatch.setattr(memory, "_machine_free", lambda: 250_000_000)
    with pytest.raises(InputError, match=r"this machine has 250 MB free"):
        memory.require(need, "segmenting case 2")
    monkeypatch.setattr(memory, "_machine_free", lambda: 64 * GB)
    memory.require(need, "segmenting case 2")


def test_the_credit_under_ulimit_v_is_at_most_the_fixed_part(machine, monkeypatch):
    """What a completed segmentation left reserved is credited up to the fixed part of the need
    only: address space the process grew by beyond it since (a script holding other data, a
    library loaded) is no reserve a segmentation reuses, and the part per voxel is charged."""
    vms = _virtual_size(monkeypatch, 850_000_000)
    memory.before_input()
    memory.segmentation_done()
    vms["now"] = 2_000_000_000  # grown by 1.15 GB since, far beyond the 300 MB fixed part
    memory.before_input()
    monkeypatch.setattr(resource, "getrlimit", lambda which: (2_079_000_000, -1))  # 79 MB left
    bigger = memory.segment_need_bytes((100, 512, 512))  # 384 MB: 84 MB beyond the fixed part
    with pytest.raises(InputError, match=r"needs about 84 MB, .*ulimit -v\) leaves 79 MB"):
        memory.require(bigger, "segmenting case 2")
    assert memory.credited()


def test_torchs_out_of_memory_under_ulimit_v_names_that_limit(machine, monkeypatch):
    """Under ``ulimit -v`` torch's own "can't allocate memory" was said "close other programs,
    or use a bigger machine": neither lifts the process's own limit."""
    from napari_livertumor.commands.segment import _out_of_memory_text

    monkeypatch.setattr(resource, "getrlimit", lambda which: (1_200_000_000, -1))
    said = _out_of_memory_text(RuntimeError(TORCH_CPU))
    assert said == (
        "out of memory (torch could not allocate 3.2 GB): this process's address-space limit "
        "(ulimit -v) is 1.2 GB: raise that limit (or ask the job for more memory)"
    )
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY,) * 2)
    assert _out_of_memory_text(RuntimeError(TORCH_CPU)).endswith(
        "close other programs, or use a bigger machine"
    )
