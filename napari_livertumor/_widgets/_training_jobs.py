"""Training work for the Train widget, outside the GUI thread and, for training itself,
outside the GUI process (no Qt here)."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
from pathlib import Path


def train_in_subprocess(config, should_cancel):
    """Yield the reports of ``training.train(config)`` run in a child process.

    The training loop's data augmentation (scipy.ndimage) holds Python's global lock for up
    to a second at a time; in a thread of this process that froze the window. A child process
    has its own lock. Cancelling sets an event the child's ``should_cancel`` reads, so the loop
    still saves its last weights; the child is only terminated if it ignores that for 60 s, or
    at once if it has not yet begun the run (still importing torch and MONAI: nothing made).
    This generator ends with the child's last report; the process's exit is awaited apart.

    The child is not daemonic: a daemonic process may not start processes, and a recipe's data
    loader workers (``num_workers``, 6 in the shipped GPU recipe) failed the run with "daemonic
    processes are not allowed to have children". What daemonic gave is kept by hand: the child
    stops itself when this process dies (its ``should_stop``), and this process's exit stops it,
    lets it save its state, then ends it (an exit hook below) rather than waiting on it forever.
    """
    import multiprocessing as mp
    import tempfile

    from ._jobs import JobFailed

    ctx = mp.get_context("spawn")  # forking a process that runs Qt threads is unsafe
    reports, cancel = ctx.Queue(), ctx.Event()
    # 0: the child is still starting (importing torch: seconds), has touched nothing; 1: it
    # runs the training; -1: stopped by the parent before it ran (under the value's lock)
    phase = ctx.Value("i", 0)
    # the child's own last words (a crash's traceback) when it dies without reporting
    fd, crash_log = tempfile.mkstemp(prefix="livertumor-train-", suffix=".log")
    os.close(fd)
    child = ctx.Process(
        target=_train_child,
        args=(config.to_dict(), reports, cancel, crash_log, phase),
        daemon=False,  # its data loader may start worker processes (see above)
    )
    with _main_script_hidden():
        child.start()
    ended = False
    waited = []  # the exit hook below has awaited the child's last word
    # Python's exit joins a non-daemonic child without limit (multiprocessing's exit hook;
    # terminated, as a daemonic one was, it kept nothing of the run though the notice said its
    # state was in last/): a hook of ours, registered after it and so run before it, stops the
    # child, lets it save its state, then ends it. It stays until the child is reaped (a run
    # that has ended may still be shutting down its loader's workers when napari quits).

    def stop_at_exit() -> None:
        if child.is_alive():
            cancel.set()
            if not ended and not waited:
                _await_last_report(child, reports, timeout=LAST_SAVE_WAIT_S)
            # its state is saved (or it ignored the stop for minutes): what is left is its
            # loader's workers shutting down, seconds; they end on their own when it is gone
            with contextlib.suppress(OSError):
                child.terminate()
            child.join(timeout=5)
        waited.append(True)
        # the reaper thread that would remove it (a daemon) dies with this process
        with contextlib.suppress(OSError):
            os.unlink(crash_log)

    atexit.register(stop_at_exit)
    try:
        while True:
            if should_cancel():
                cancel.set()
                if _claim_before_start(phase):
                    # a Stop while the child still imports: nothing was made or locked, so
                    # it ends now (it had to finish starting, seconds, before it could see it)
                    child.terminate()
                    ended = True
                    yield {"event": "cancelled", "stage": config.stage, "step": 0, "last": None}
                    return
            try:
                kind, payload = reports.get(timeout=0.1)
            except queue.Empty:
                if not child.is_alive():
                    raise JobFailed(_death_message(child.exitcode, crash_log)) from None
                continue
            if kind == "report":
                yield payload
            elif kind == "log":  # a warning the training logged (a patient's data, the recipe)
                yield {"event": "log", "text": payload}
            elif kind == "error":
                ended = True
                raise JobFailed(payload)
            elif kind == "bug":  # the training process's own traceback, for the log
                ended = True
                failed = JobFailed(payload[0])
                failed.remote_traceback = payload[1]
                raise failed
            else:
                ended = True
                return
    finally:
        cancel.set()
        if not ended and not waited:
            # closed before the child's last word (napari quitting closes this generator at its
            # yield): wait, bounded, for the child to save its state and say so
            _await_last_report(child, reports, timeout=LAST_SAVE_WAIT_S)
            waited.append(True)
        # Its reports are all in (the last weights saved when stopped); the process itself may
        # take many seconds more to exit (its data loader's worker processes shut down): the
        # panel waited 6-16 s after a Stop that had taken effect in under one. Its exit is
        # awaited apart, and forced if it ignores the stop.
        reaper = threading.Thread(
            target=_reap,
            args=(child, crash_log, stop_at_exit),
            name="livertumor-train-exit",
            daemon=True,
        )
        try:
            if not child.is_alive():
                raise RuntimeError("ended")
            reaper.start()
        except RuntimeError:  # ended (or Python shutting down: no new thread): reaped here
            _reap(child, crash_log, stop_at_exit)


def _claim_before_start(phase) -> bool:
    """Whether the child had not yet begun the training (it never will now)."""
    with phase.get_lock():
        if phase.value == 0:
            phase.value = -1
            return True
        return False


#: seconds a training job closed mid-run waits for its process to save its state
LAST_SAVE_WAIT_S = 120.0


def _await_last_report(child, reports, timeout: float) -> None:
    """Read the child's reports until its last (end or error), it dies, or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kind, _ = reports.get(timeout=0.2)
        except queue.Empty:
            if not child.is_alive():
                return
            continue
        except (EOFError, OSError):  # the queue went with the child
            return
        if kind in ("end", "error", "bug"):
            return


def _reap(child, crash_log: str, at_exit=None) -> None:
    """Wait for the training process to exit (terminated if it has not in 60 s); tidy up,
    and drop its exit hook ``at_exit`` (nothing left to stop)."""
    child.join(timeout=60)
    if child.is_alive():
        child.terminate()
        child.join(timeout=5)
    if at_exit is not None:
        atexit.unregister(at_exit)
    with contextlib.suppress(OSError):
        os.unlink(crash_log)


@contextlib.contextmanager
def _main_script_hidden():
    """Start the child without it importing the script napari was started from.

    A "spawn" child imports the parent's ``__main__`` (by its path, or by name under
    ``python -m``) before it runs anything; a script whose code is not under
    ``if __name__ == "__main__":`` (as in napari's own examples) then opened a second napari
    window, and training waited until it was closed. The child needs nothing from it (the
    target is this module's, its arguments plain data): ``__main__`` shows the child neither
    its path nor its module name while it starts.
    """
    import sys

    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    try:
        main.__dict__.pop("__file__", None)
        main.__spec__ = None
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _death_message(exitcode, crash_log: str) -> str:
    msg = f"the training process ended unexpectedly (exit code {exitcode})"
    if exitcode in (-9, 137):
        msg += "; killed, most often for lack of memory (try a smaller patch or batch)"
    try:
        tail = Path(crash_log).read_text(encoding="utf-8", errors="replace").strip()[-800:]
    except OSError:
        tail = ""
    if "bootstrapping phase" in tail or "freeze_support" in tail:
        # the child re-imported the script that opened napari (its code not under a guard)
        return (
            "training runs in a separate process, which imports the script napari was started "
            "from; that script opens napari again at import. Put its code under "
            "'if __name__ == \"__main__\":' (or start napari with 'napari' or 'livertumor demo')"
        )
    return msg + (f". Its last output:\n{tail}" if tail else "")


#: the loggers whose warnings the training process passes to the panel
_LOGGERS = ("napari_livertumor", "livertumor")


class _ReportHandler(logging.Handler):
    """Pass WARNING and above to the parent as ``("log", text)``, but not those a training
    report carries too (``extra=IN_REPORT``: the panel shows the report)."""

    def __init__(self, reports) -> None:
        super().__init__(level=logging.WARNING)
        self.reports = reports

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "in_report", False):
            return
        try:
            self.reports.put(("log", record.getMessage()))
        except Exception:  # noqa: BLE001 - a warning must never stop the training
            self.handleError(record)


def _train_child(
    config_dict: dict, reports, cancel, crash_log: str | None = None, phase=None
) -> None:
    """Child process: run the training generator and pass its reports back."""
    import faulthandler
    import sys

    from ..errors import LiverTumorError
    from ..training import TrainConfig, train

    if crash_log:  # what the parent shows if this process dies without a report
        # UTF-8 (the parent reads it so): a traceback naming a patient folder in another
        # script could not be written in Windows' code page
        log_file = open(crash_log, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        sys.stderr = log_file
        faulthandler.enable(log_file)

    try:
        os.nice(5)  # the window's process comes first when CPUs are short
    except (AttributeError, OSError):
        pass
    import multiprocessing as mp

    parent, ppid = mp.parent_process(), os.getppid()
    orphaned = []

    def should_stop() -> bool:
        # stopped, or napari gone (killed, crashed): an orphan trained to the end of its
        # budget, holding the CPU or GPU and writing into the output folder unseen
        if cancel.is_set():
            return True
        if (parent is not None and not parent.is_alive()) or os.getppid() != ppid:
            reports.cancel_join_thread()  # nobody reads the reports now: exit without them
            orphaned.append(True)
            return True
        return False

    if phase is not None:
        # the slow imports (seconds) come first, while a Stop may still end this process at
        # once: after the claim below, the run stops at its own checks
        import monai.networks.nets  # noqa: F401
        import torch  # noqa: F401

        with phase.get_lock():
            if phase.value == -1:  # stopped while this process started: it touches nothing
                return
            phase.value = 1
    # the warnings the training logs (a patient's SEG that covers part of its CT, a recipe sized
    # for a GPU, a validation subset...) go to the panel's log, as the CLI prints them; without
    # this they went to this process's stderr, which nobody reads
    forward = _ReportHandler(reports)
    for name in _LOGGERS:
        logging.getLogger(name).addHandler(forward)
    try:
        config = TrainConfig.from_dict(config_dict)
        for report in train(config, should_cancel=should_stop):
            reports.put(("report", report))
    except LiverTumorError as exc:
        reports.put(("error", str(exc)))
    except OSError as exc:  # the disk, a permission: said as one line, no traceback
        reports.put(("error", f"{type(exc).__name__}: {exc}"))
    except Exception as exc:  # a bug: one line in the widget, its traceback in the log
        from ..memory import out_of_memory

        oom = out_of_memory(exc)  # numpy's, torch's CPU allocator, CUDA, MPS: no bug
        if oom is not None and oom[0]:
            reports.put(("error", f"Out of GPU memory ({oom[1]}): train with a smaller batch or "
                         "patch, or close what else uses the GPU"))  # fmt: skip
        elif oom is not None:
            reports.put(("error", f"Out of memory ({oom[1]}): close other programs, or train "
                         "with a smaller batch or patch"))  # fmt: skip
        else:
            import traceback

            reports.put(("bug", (f"{type(exc).__name__}: {exc}", traceback.format_exc())))
    else:
        reports.put(("end", None))
    finally:
        if orphaned and crash_log:  # its reader, napari, is gone: nobody removes it but us
            with contextlib.suppress(OSError):
                os.unlink(crash_log)


# the Check data summary lives in the core (the CLI's `train --check` prints it too)
from ..training.check import summarize_data  # noqa: E402, F401
