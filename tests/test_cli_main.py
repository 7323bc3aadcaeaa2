"""What the ``livertumor`` tool itself says: its version, and an error nobody planned for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import napari_livertumor
from napari_livertumor.cli import main


def test_version_names_the_commit_and_the_libraries_a_results_stats_record():
    """``--version`` said "livertumor 0.1.0" alone: a bug report could not tell which build, or
    which torch, made a result."""
    from napari_livertumor.provenance import software

    info = software()
    res = subprocess.run(
        [sys.executable, "-m", "napari_livertumor.cli", "--version"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    first, libraries = res.stdout.splitlines()
    assert first.startswith(f"livertumor {napari_livertumor.__version__}")
    if info["commit"]:
        assert f"(commit {info['commit'].split('-')[0]}" in first
    assert f"python {info['python']}" in libraries and f"numpy {info['numpy']}" in libraries
    for name in ("torch", "monai", "scipy", "scikit-image"):
        assert name in libraries
    # read from the packages' metadata: torch is not imported for it
    res = subprocess.run(
        [sys.executable, "-c",
         "import sys\nfrom napari_livertumor.cli import main\ntry:\n    main(['--version'])\n"
         "except SystemExit:\n    pass\nprint('torch' in sys.modules)"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.stdout.splitlines()[-1] == "False", res.stderr


def test_an_unexpected_error_is_said_in_two_lines_and_the_traceback_with_v(
    tmp_path, capsys, caplog, monkeypatch
):
    """A bug before the case loop printed a raw Python traceback."""
    import napari_livertumor.synth as synth

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'\nmore lines")

    monkeypatch.setattr(synth, "make_cohort", broken)
    args = ["synth", "-o", str(tmp_path / "c"), "--cases", "1"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "livertumor synth: unexpected error: TypeError: unsupported operand type(s) for +: "
        "'int' and 'str'",
        "this is a bug: please report it with the output of `livertumor --version` and the "
        "command run; `livertumor -v ...` shows the traceback",
    ]
    assert "Traceback" not in caplog.text
    assert main(["-v", *args]) == 1
    assert "livertumor synth: unexpected error: TypeError" in capsys.readouterr().err
    assert "Traceback (most recent call last)" in caplog.text
    assert 'raise TypeError("unsupported' in caplog.text


def test_the_commit_is_read_without_writing_the_checkout_and_in_another_users_checkout(
    monkeypatch, caplog
):
    """``git status`` wrote ``.git/index.lock`` in the package's checkout on every run (two jobs
    at once, a read-only checkout), and in a checkout another user owns (a cluster's shared
    install) git refused ("dubious ownership"): ``software.commit`` was null without a word."""
    import shutil
    from pathlib import Path

    import pytest

    from napari_livertumor import provenance

    root = Path(provenance.__file__).resolve().parent.parent
    if not (root / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not run from a git checkout")
    calls = []
    run = subprocess.run

    def recorded(args, **kw):
        calls.append(list(args))
        return run(args, **kw)

    monkeypatch.setattr(provenance.subprocess, "run", recorded)
    # git's own switch for "this repository belongs to someone else" (git >= 2.35.2)
    monkeypatch.setenv("GIT_TEST_ASSUME_DIFFERENT_OWNER", "1")
    sha = run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
              capture_output=True, text=True)  # fmt: skip
    if sha.returncode == 0:
        pytest.skip("this git does not check a repository's owner")
    assert provenance._commit() is not None
    assert calls and all(
        c[:4] == ["git", "--no-optional-locks", "-c", f"safe.directory={root}"] for c in calls
    )
    # a commit that cannot be read is said why (with -v)

    def refused(args, **kw):
        raise subprocess.CalledProcessError(
            128, args, stderr="fatal: detected dubious ownership in repository at '/x'\nmore"
        )

    monkeypatch.setattr(provenance.subprocess, "run", refused)
    with caplog.at_level("DEBUG", logger="napari_livertumor.provenance"):
        assert provenance._commit() is None
    assert "is not recorded: fatal: detected dubious ownership in repository at '/x'" in (
        caplog.text
    )


def test_quiet_logs_warnings_and_errors_only_and_not_with_verbose(tmp_path, caplog, capsys):
    """A batch job's log had a line per step and no way to leave them out."""
    import logging

    import numpy as np
    import pytest

    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume

    write_nifti(CTVolume(np.zeros((4, 8, 8), np.int16), spacing=(2.0, 1.0, 1.0)),
                tmp_path / "p1.nii.gz")  # fmt: skip
    run = ["segment", str(tmp_path / "p1.nii.gz"), "-o", str(tmp_path / "out"), "--list",
           "--no-refine", "--refine-config", str(tmp_path / "r.json")]  # fmt: skip
    with caplog.at_level(logging.INFO):
        assert main(["-q", *run]) == 0
    levels = {
        r.levelname
        for r in caplog.records
        if r.name.split(".")[0] in ("livertumor", "napari_livertumor")
    }
    assert levels == {"WARNING"}  # its warning said, no "1 case(s) found"
    assert "p1" in capsys.readouterr().out  # what it prints on stdout stays
    caplog.clear()
    with caplog.at_level(logging.INFO):  # (the next run in one process: as before)
        assert main(run) == 0
    assert any(r.getMessage() == "1 case(s) found" for r in caplog.records)
    with pytest.raises(SystemExit):
        main(["-q", "-v", *run])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*run, "-q"])
    assert "-q goes before the command: livertumor -q segment" in capsys.readouterr().err


def test_matplotlibs_cache_troubles_are_not_said_as_the_tools_warnings(tmp_path):
    """Where HOME or MPLCONFIGDIR cannot be written (a cluster node), matplotlib's own lines
    ("mkdir -p failed", "Matplotlib created a temporary cache directory", "generated new
    fontManager") showed as ``WARNING:`` lines of this tool's log."""
    import os

    code = (
        "from napari_livertumor.cli import main\n"
        f"main(['segment', {str(tmp_path / 'missing.nii.gz')!r}])\n"
        "import matplotlib.pyplot\n"
    )
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "not-a-folder" / "x"), "HOME": "/proc"}
    (tmp_path / "not-a-folder").write_text("a file")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)  # fmt: skip
    assert "file or folder not found" in res.stderr
    for line in ("mkdir -p failed", "Matplotlib created", "fontManager"):
        assert line not in res.stderr, res.stderr


def test_running_out_of_memory_is_said_as_such_not_as_a_bug(tmp_path, capsys, monkeypatch):
    """QA s49fixrev: torch's "[enforce fail at alloc_cpu.cpp:127] … can't allocate memory"
    outside a case (the models being loaded, any command) was "unexpected error … this is a
    bug"; a MemoryError said "out of memory" with nothing to do about it."""
    import resource

    import napari_livertumor.synth as synth

    def torch_out_of_memory(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 3221225472 bytes. Error code 12"
        )

    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY,) * 2)
    monkeypatch.setattr(synth, "make_cohort", torch_out_of_memory)
    args = ["synth", "-o", str(tmp_path / "c"), "--cases", "1"]
    assert main(args) == 1
    assert capsys.readouterr().err.strip() == (
        "livertumor synth: error: out of memory (torch could not allocate 3.2 GB): close other "
        "programs, or use a bigger machine"
    )

    def numpy_out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 900. MiB for an array")

    monkeypatch.setattr(synth, "make_cohort", numpy_out_of_memory)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1_200_000_000, -1))
    assert main(args) == 1
    assert capsys.readouterr().err.strip() == (
        "livertumor synth: error: out of memory (Unable to allocate 900. MiB for an array): this "
        "process's address-space limit (ulimit -v) is 1.2 GB: raise that limit (or ask the job "
        "for more memory)"
    )
    # any other RuntimeError is still a bug's
    monkeypatch.setattr(synth, "make_cohort", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("shape mismatch")))  # fmt: skip
    assert main(args) == 1
    assert "unexpected error: RuntimeError: shape mismatch" in capsys.readouterr().err


def test_no_command_prints_the_help_and_exits_2(capsys):
    """``livertumor`` alone is a usage error (exit status 2, as argparse's own), with the
    commands listed."""
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "usage: livertumor" in out and "segment" in out and "train" in out


def test_a_folder_really_named_tilde_is_kept_as_written(tmp_path, monkeypatch):
    """A path starting with '~' is the home folder's only where nothing exists as written:
    a folder named '~' in the current one is the one meant."""
    import argparse

    from napari_livertumor.cli import _expand_home

    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    (here / "~" / "scans").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    args = argparse.Namespace(inputs=["~/scans", "~/other"], outdir="~/scans")
    _expand_home(args)
    assert args.inputs == ["~/scans", str(home / "other")]
    assert args.outdir == "~/scans"


def test_a_ctrl_c_while_the_tool_is_starting_is_said_in_one_line(tmp_path):
    """Ctrl-C in the first few tenths of a second of ``livertumor segment`` (while its modules,
    numpy and torch, were imported) printed a Python traceback; later it said "livertumor:
    interrupted" and exited 130."""
    import signal
    import time

    import numpy as np

    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.models import make_untrained_model

    make_untrained_model(tmp_path / "models" / "liver", "liver")
    ct = np.random.default_rng(0).normal(40, 60, (12, 40, 48)).astype(np.int16)
    write_nifti(CTVolume(ct, spacing=(2.5, 0.8, 0.7)), tmp_path / "ct.nii.gz")
    argv = ["segment", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "out"), "--stages",
            "liver", "--models", str(tmp_path / "models" / "liver"), "--device", "cpu"]  # fmt: skip
    # the interpreter's own start-up is not ours (a Ctrl-C there is Python's to say): the stop
    # is sent once the tool's main() runs (said from inside it: a stop landing between the
    # line and the call, on a loaded machine, was this script's traceback, not the tool's),
    # at delays that fall on its first steps
    code = (
        "import sys\nimport napari_livertumor.cli as cli\nrun = cli._main\n"
        "def started(argv):\n    print('started', flush=True)\n    return run(argv)\n"
        f"cli._main = started\nsys.exit(cli.main({argv!r}))"
    )
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.3):
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "started"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, f"a stop {delay} s in:\n{err}"
        assert proc.returncode == 130, f"a stop {delay} s in:\n{err}"
        assert err.strip().splitlines()[-1] == "livertumor: interrupted"


def test_a_ctrl_c_ignored_from_the_start_stays_ignored(monkeypatch):
    """A shell script's background job (``livertumor train … &``) starts with Ctrl-C ignored,
    to run on past the script's Ctrl-C, as Python leaves it: the tool's own handler replaced
    it, and the job stopped with the script (QA rev66 2). Not ignored, the handler is put in
    place for the run and the one before it back after."""
    import signal

    from napari_livertumor import cli

    seen = []
    monkeypatch.setattr(cli, "_main", lambda argv: seen.append(signal.getsignal(signal.SIGINT)))
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cli.main([])
        assert seen == [signal.SIG_IGN]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        cli.main([])
        assert seen[1] is cli._interrupt_outside_imports
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_ctrl_c_while_the_output_streams_are_changed_leaves_them_whole(monkeypatch):
    """A Ctrl-C landing inside ``reconfigure`` (CPython drops the stream's encoder, then builds
    the new one in Python code) left ``sys.stderr`` "not writable": "livertumor: interrupted"
    could not be said, the tool exited 1 with "lost sys.stderr" (CI, 7 Dec 2026). The stop is
    held until both streams are changed, then raised."""
    import signal

    from napari_livertumor import cli

    steps = []

    class Stream:
        def __init__(self, name):
            self.name = name

        def reconfigure(self, **kwargs):
            steps.append(f"{self.name} begun")
            if self.name == "stderr":
                os.kill(os.getpid(), signal.SIGINT)  # the handler runs before the next line
            steps.append(f"{self.name} done")

    monkeypatch.setattr(sys, "stdout", Stream("stdout"))
    monkeypatch.setattr(sys, "stderr", Stream("stderr"))
    with pytest.raises(KeyboardInterrupt):
        cli._never_fail_printing()
    assert steps == ["stdout begun", "stdout done", "stderr begun", "stderr done"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _command_then_work(monkeypatch, first, steps):
    """``main``'s command as ``first()`` then 2 s of work in short steps (a stop raised in it
    ends it), each recorded in ``steps``."""
    import time

    from napari_livertumor import cli

    def command(argv):
        first()
        steps.append("first done")
        for _ in range(200):
            time.sleep(0.01)
        steps.append("worked to the end")
        return 0

    monkeypatch.setattr(cli, "_main", command)


def _main_importing(module: str, folder, monkeypatch) -> tuple[int, list[str]]:
    """``main``'s exit status and steps (:func:`_command_then_work`), its command importing
    ``module`` (a file written in ``folder``) first."""
    import importlib

    monkeypatch.syspath_prepend(str(folder))
    steps: list[str] = []
    try:
        _command_then_work(monkeypatch, lambda: importlib.import_module(module), steps)
        return main([]), steps
    finally:
        sys.modules.pop(module, None)


def test_a_ctrl_c_python_cannot_raise_stops_the_run_all_the_same(monkeypatch, capsys):
    """A Ctrl-C whose ``KeyboardInterrupt`` is raised where Python cannot raise it (a
    ``__del__``, a weakref's callback) was printed as "Exception ignored in … KeyboardInterrupt"
    and dropped: the run went on to the end and exited 0. It is raised again as the run goes
    on: "livertumor: interrupted", 130."""
    import signal

    steps = []

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs before the next line
            steps.append("__del__ went on")

    _command_then_work(monkeypatch, lambda: Finalized(), steps)  # (collected at once)
    before = sys.unraisablehook
    assert main([]) == 130
    assert "worked to the end" not in steps and "__del__ went on" not in steps
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["livertumor: interrupted"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sys.unraisablehook is before  # the run's own is put back


def test_a_second_ctrl_c_while_the_run_stops_is_no_traceback(monkeypatch, capsys):
    """A second Ctrl-C just after the first (a user pressing it twice) landed in the stop's
    own clean-up: a traceback after "livertumor: interrupted", and the process killed by the
    signal (-2) in place of 130 (QA rev68b 3). It is let go while the run stops."""
    import signal

    from napari_livertumor import cli

    def command(argv):
        raise KeyboardInterrupt

    said = cli._stopped

    def stopped(exc):
        os.kill(os.getpid(), signal.SIGINT)  # the second, as the stop is being said
        return said(exc)

    monkeypatch.setattr(cli, "_main", command)
    monkeypatch.setattr(cli, "_stopped", stopped)
    try:
        status = main([])
    except KeyboardInterrupt:  # (as a test failure, not the test session's stop)
        pytest.fail("the second Ctrl-C came out of main")
    assert status == 130
    assert capsys.readouterr().err.strip().splitlines() == ["livertumor: interrupted"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # (put back)


def test_a_ctrl_c_at_the_process_exit_is_let_go(monkeypatch):
    """A Ctrl-C in the exit's garbage collection was printed as "Exception ignored in atexit
    callback … KeyboardInterrupt"."""
    import gc

    from napari_livertumor import cli

    def collect(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(gc, "collect", collect)
    try:
        cli._quick_teardown()
    except KeyboardInterrupt:
        pytest.fail("the Ctrl-C came out of the exit's teardown")


def test_a_ctrl_c_while_a_module_is_imported_stops_the_run_when_the_import_ends(
    tmp_path, monkeypatch, capsys
):
    """A Ctrl-C landing in a module's import was raised where nothing could take it: in a
    class's ``__set_name__`` (a dataclass's fields, pandas) it became "RuntimeError: Error
    calling __set_name__", said as a bug; in Cython's start-up code of a compiled module (a bare
    ``except: pass``) it was dropped and the run went on to the end. It is raised once the
    import has ended."""
    import signal

    (tmp_path / "ctrl_c_in_import.py").write_text(
        "import os, signal\n"
        "class Field:\n"
        "    def __set_name__(self, owner, name):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        self.name = name\n"
        "class Record:\n"
        "    field = Field()\n"
    )
    status, steps = _main_importing("ctrl_c_in_import", tmp_path, monkeypatch)
    assert status == 130  # (RuntimeError: Error calling __set_name__ … 'field')
    assert "worked to the end" not in steps
    assert capsys.readouterr().err.strip().splitlines() == ["livertumor: interrupted"]
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL  # the timer's handler put back


def test_a_second_ctrl_c_while_a_module_is_imported_stops_it_at_once(tmp_path, monkeypatch):
    """A Ctrl-C waiting for an import to end does not wait for an import that hangs: a second
    one stops the run at once."""
    import signal

    log = tmp_path / "steps.txt"
    (tmp_path / "ctrl_c_twice.py").write_text(
        "import os, pathlib, signal\n"
        "def load():  # (a function the import runs: a stop in it waits)\n"
        f"    log = pathlib.Path({str(log)!r})\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    log.write_text('after the first')\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    log.write_text('after the second')\n"
        "load()\n"
    )
    status, steps = _main_importing("ctrl_c_twice", tmp_path, monkeypatch)
    assert status == 130
    assert steps == []
    assert log.read_text() == "after the first"
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL


def test_a_ctrl_c_while_the_arguments_are_read_is_said_in_one_line(tmp_path, monkeypatch, capsys):
    """A Ctrl-C landing where argparse reads a command's inputs among its options (before it
    has set them aside) broke argparse's own clean-up: "AttributeError: … 'save_nargs'" and a
    traceback. It is held until the arguments are read: "livertumor: interrupted", 130."""
    import signal

    from napari_livertumor import cli

    usage = cli._IntermixedParser.format_usage

    def format_usage(self):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs before the next line
        return usage(self)

    monkeypatch.setattr(cli._IntermixedParser, "format_usage", format_usage)
    assert main(["segment", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["livertumor: interrupted"]
    assert not (tmp_path / "out").exists()
