"""Background jobs for the widgets: a napari ``thread_worker`` around a core call.

The core reports through plain callbacks (``progress(stage, done, total)``,
``should_cancel()``) from the worker thread. A :class:`Job` bridges them to the GUI thread with a
queued Qt signal (throttled, so a chatty core cannot flood the event loop), shows a napari
progress bar per stage plus an optional ``QProgressBar`` in the widget, and turns a Cancel click
into the flag the core polls. Cancellation surfaces as :class:`~napari_livertumor.errors.Cancelled`
and is reported as such, not as an error.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, Qt, Signal, Slot

from ..errors import Cancelled, LiverTumorError

#: Minimum seconds between two progress signals for the same stage.
_THROTTLE_S = 0.05
#: Jobs whose thread still runs: keeps each Job (a QObject whose signal the worker thread
#: emits) alive until its thread ends, even after the widget that started it is gone; and the
#: plain workers started with a stop flag (start_worker), for the exit hook.
_RUNNING: set = set()


#: Seconds the interpreter waits at exit for a stopped job's thread, and for a job let finish
#: unseen (an export writing its set of files; see Job.detach).
_EXIT_WAIT_CANCELLED_S = 30.0
_EXIT_WAIT_DETACHED_S = 300.0


@atexit.register
def _finish_jobs_at_exit() -> None:
    """Let running jobs end before the interpreter tears down the Qt objects they signal through.

    A script that closes napari and exits (``sys.exit``) while a job runs used to leave the
    worker thread emitting on deleted objects: a Qt traceback on the way out, and an export
    cut off half-way. Stopped jobs end at the core's next check; detached ones (an export)
    finish their files. Qt's own shutdown waits for its pool too, but only after Python has
    deleted the objects.
    """
    jobs = [job for job in list(_RUNNING) if not job._thread_done.is_set()]
    if not jobs:
        return
    finishing = {job for job in jobs if job._detached or job.finish_on_exit}
    for job in jobs:
        if job not in finishing:
            job._cancel.set()
    start = time.monotonic()
    said = False
    while True:
        now = time.monotonic() - start
        waiting = [
            job
            for job in jobs
            if not job._thread_done.is_set()
            and now < (_EXIT_WAIT_DETACHED_S if job in finishing else _EXIT_WAIT_CANCELLED_S)
        ]
        if not waiting:
            return
        if not said and now > 0.5:
            said = True
            writing = sorted({j._description or "a job" for j in waiting if j in finishing})
            stopping = sorted({j._description or "a job" for j in waiting if j not in finishing})
            parts = [f"{', '.join(writing)} to finish writing"] if writing else []
            parts += [f"{', '.join(stopping)} to stop"] if stopping else []
            print(
                f"napari-livertumor: waiting for {' and '.join(parts)} before exiting",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(0.02)


#: Threads of Qt's global pool kept free beside the running workers (see start_worker).
_SPARE_THREADS = 4


def start_worker(worker, cancel: threading.Event | None = None, description: str = "") -> None:
    """Start a superqt worker on Qt's global thread pool, first making room in that pool.

    The workers run on ``QThreadPool.globalInstance()``, whose size is the core count (2 on a
    small machine). Qt uses the same pool inside the GUI thread: repainting the window converts
    images in pieces on pool threads and waits for them while holding Python's lock. With both
    threads taken by jobs waiting for that lock, neither side could go on: the whole window
    froze for good (two jobs at once on a 2-core machine). The pool is grown so that a few
    threads beyond the running ones are always free for Qt.

    ``cancel``: the stop flag a plain worker (no :class:`Job`: the Refine panel's preview) polls;
    the exit hook sets it and waits for the worker's thread as it does a Job's. Left to run, a
    preview computing when a script closed napari and exited emitted on Qt objects Python had
    deleted: a "wrapped C/C++ object … has been deleted" traceback and an abort (exit 134).
    """
    from qtpy.QtCore import QThreadPool

    if cancel is not None:
        plain = _PlainWorker(cancel, description)
        # in the worker thread itself, with no event loop needed (as a Job's)
        worker.finished.connect(plain._thread_done.set, Qt.ConnectionType.DirectConnection)
        worker.finished.connect(lambda: _RUNNING.discard(plain))
        _RUNNING.add(plain)
    pool = QThreadPool.globalInstance()
    need = pool.activeThreadCount() + 1 + _SPARE_THREADS
    if pool.maxThreadCount() < need:
        pool.setMaxThreadCount(need)
    worker.start()


class _PlainWorker:
    """What the exit hook reads of a running :class:`Job`, for a plain worker (start_worker)."""

    _detached = False
    finish_on_exit = False

    def __init__(self, cancel: threading.Event, description: str) -> None:
        self._cancel = cancel
        self._thread_done = threading.Event()
        self._description = description


class ImportGate:
    """Keeps other threads' imports away from a panel's background imports of torch and MONAI.

    Two threads importing the same packages at once can each hold a module the other needs:
    Python then hands one of them a half-initialised module ("cannot import name …").
    ``with IMPORT_LOCK:`` waits until no background import is announced or running; every job
    does so in its worker before it starts (the window never waits). The background imports
    take only other packages (torch, MONAI, SciPy): the panel imports this package's own
    modules on the GUI thread first, so no other thread is ever inside them. They announce
    themselves from the thread that starts them (:meth:`announce`, so a job started a moment
    later already waits), say :meth:`done` when finished, and run one at a time (``serial``).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = 0
        self.serial = threading.Lock()

    def announce(self) -> None:
        with self._cond:
            self._pending += 1

    def done(self) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def __enter__(self) -> ImportGate:
        with self._cond:
            self._cond.wait_for(lambda: self._pending == 0)
        return self

    def wait(self, cancelled: Callable[[], bool], report=None) -> None:
        """Wait as ``with IMPORT_LOCK`` does, raising :class:`Cancelled` when ``cancelled()``
        (Cancel did nothing for the 9–14 s a load started with a panel just opened waited),
        and saying what it waits for through ``report(stage, done, total)``."""
        said = False
        with self._cond:
            while not self._cond.wait_for(lambda: self._pending == 0, timeout=0.1):
                if cancelled():
                    raise Cancelled("cancelled while waiting for the panels' imports")
                if report is not None and not said:
                    said = True
                    report("waiting for torch and MONAI to load", 0, 1)

    def __exit__(self, *exc) -> bool:
        return False


IMPORT_LOCK = ImportGate()


class JobFailed(Exception):
    """A core error re-raised under a type the worker machinery passes on.

    superqt's generator workers swallow ``RuntimeError`` (they take it for a deleted Qt object),
    and torch raises ``RuntimeError`` for real failures, so every error is wrapped in this.
    """


class Job(QObject):
    """Run ``target(progress, should_cancel)`` in a napari worker thread.

    Parameters
    ----------
    target : callable
        ``target(progress, should_cancel)`` returning a result, or (``generator=True``) returning
        an iterator whose items are passed to ``on_yielded`` as they come.
    on_result, on_yielded, on_error, on_finished : callable, optional
        Called in the GUI thread. ``on_error(exc)`` gets every failure except a cancellation;
        ``on_finished(status)`` is always called last with ``"done"``, ``"cancelled"`` or
        ``"failed"``.
    progress_bar : QProgressBar, optional
        Updated with the stage's progress; its format shows the stage name.
    on_stage : callable, optional
        ``on_stage(stage)``, in the GUI thread, each time another stage starts: a stage of one
        step shows a busy bar, on which Qt draws no text, so the panel says it elsewhere.
    description : str
        Prefix of the napari progress bars' text.
    """

    _progressed = Signal(str, int, int)

    def __init__(
        self,
        target: Callable[..., Any],
        *,
        generator: bool = False,
        on_result: Callable[[Any], None] | None = None,
        on_yielded: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_finished: Callable[[str], None] | None = None,
        progress_bar: Any = None,
        on_stage: Callable[[str], None] | None = None,
        description: str = "",
        napari_progress: bool = True,
    ) -> None:
        super().__init__()
        self._cancel = threading.Event()
        self._detached = False  # the widget closed and lets it finish unseen (detach)
        self._thread_done = threading.Event()  # set by the worker thread's last signal
        #: let finish, not stopped, when the interpreter exits (an export's set of files)
        self.finish_on_exit = False
        #: show the result of a run that ended after Cancel was asked (a job writing files)
        self.deliver_after_cancel = False
        #: when it was started (a Cancel within a double-click's interval is the second click)
        self.started_at = time.monotonic()
        #: when the click that started it was typed (the window system's ms; None: unknown)
        self.input_at: int | None = None
        self._last_emit: dict[str, float] = {}
        self._bars: dict[str, Any] = {}  # "job": the napari bar, "stage": its current stage
        self._qbar = progress_bar
        self._on_stage = on_stage
        self._stage: str | None = None  # the stage last said to on_stage
        self._description = description
        self._napari_progress = napari_progress
        self._on_result = on_result
        self._on_yielded = on_yielded
        self._on_error = on_error
        self._on_finished = on_finished
        self.status = "pending"
        #: the result was handed to ``on_result``: the job only has its last signal to send
        #: (reads "running" a moment more), so a Cancel then has nothing to stop
        self.delivered = False
        self._outcome: str | None = None
        #: the error a failed job ended with (also when nobody was listening any more)
        self.error: BaseException | None = None
        #: what a cancelled job had already done (``Cancelled.changed``), "" for nothing
        self.cancel_changed = ""
        self._progressed.connect(self._show_progress)
        self.worker = self._make_worker(target, generator)

    # ------------------------------------------------------------------ control
    def start(self) -> Job:
        self.status = "running"
        self._open_bar()
        _RUNNING.add(self)
        start_worker(self.worker)
        return self

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the core to stop at its next check (it may still save what it has)."""
        self._cancel.set()

    def shutdown(self) -> None:
        """Cancel, stop delivering results, and close the progress bars (widget or viewer closing).

        The worker is not aborted: the core sees the cancel flag at its next check and ends
        its own way (training saves its last weights first).
        """
        self._cancel.set()
        self._on_result = self._on_yielded = self._on_error = self._on_finished = None
        self._on_stage = None
        self._qbar = None
        self._close_bars()

    def detach(self) -> None:
        """Let the worker run to its end unseen (the widget is closing): no cancel, no results
        delivered, no progress shown. For work that must not stop half-way: an export
        replacing a set of files would leave old and new ones mixed."""
        self._detached = True
        self._on_result = self._on_yielded = self._on_error = self._on_finished = None
        self._on_stage = None
        self._qbar = None
        self._close_bars()

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Block until the worker thread ends (for tests and shutdown); True if it ended."""
        end = time.monotonic() + timeout_s
        while self.worker.is_running or self.status == "pending":
            if time.monotonic() > end:
                return False
            time.sleep(0.01)
        return True

    # ------------------------------------------------------------------ worker side
    def _report(self, stage: str, done: int, total: int) -> None:
        if self._detached:  # nobody is watching: no Qt signal at all
            return
        now = time.monotonic()
        last = self._last_emit.get(stage)
        if last is not None and done < total and now - last < _THROTTLE_S:
            return
        self._last_emit[stage] = now
        try:
            self._progressed.emit(str(stage), int(done), int(total))
        except RuntimeError as exc:  # Qt is gone (application exiting): stop the core
            self._cancel.set()
            raise Cancelled("the application is closing") from exc

    def _should_cancel(self) -> bool:
        return self._cancel.is_set()

    def _make_worker(self, target, generator: bool):
        # superqt's workers (what napari.qt.threading wraps) without napari's relay of every
        # worker error as a traceback: a job shows its errors itself as one clear line, and a
        # cancellation is no error at all.
        from superqt.utils import create_worker

        report, should_cancel = self._report, self._should_cancel
        # the worker keeps its function after it ran: the target (and what it holds) is
        # reached through this list, emptied when the job has finished
        self._target = [target]
        held = self._target
        if generator:
            inner: list = []

            def run_generator():
                IMPORT_LOCK.wait(should_cancel, report)  # a panel's background imports first
                try:
                    inner.append(held[0](report, should_cancel))
                    yield from inner[-1]
                except (LiverTumorError, JobFailed):
                    raise
                except Exception as exc:
                    raise JobFailed(f"{type(exc).__name__}: {exc}") from exc

            worker = create_worker(run_generator, _start_thread=False, _ignore_errors=True)
            worker.yielded.connect(self._yielded)

            def close_inner():
                # quit (napari closing) leaves the generator suspended, its clean-up (a
                # training process told to stop and save) to the garbage collector, after
                # Python's exit had killed that process: closed here, in the worker thread
                for gen in inner:
                    with contextlib.suppress(Exception):
                        gen.close()

            worker.aborted.connect(close_inner, Qt.ConnectionType.DirectConnection)
        else:

            def run_function():
                IMPORT_LOCK.wait(should_cancel, report)  # a panel's background imports first
                try:
                    return held[0](report, should_cancel)
                except (LiverTumorError, JobFailed):
                    raise
                except Exception as exc:
                    raise JobFailed(f"{type(exc).__name__}: {exc}") from exc

            worker = create_worker(run_function, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._returned)
        worker.errored.connect(self._errored)
        worker.finished.connect(self._finished)
        # in the worker thread itself, with no event loop needed: what the exit hook waits for
        worker.finished.connect(self._thread_done.set, Qt.ConnectionType.DirectConnection)
        return worker

    # ------------------------------------------------------------------ GUI side
    @Slot(str, int, int)
    def _show_progress(self, stage: str, done: int, total: int) -> None:
        if self.status != "running":
            return
        if self._napari_progress:
            self._update_napari_bar(stage, done, total)
        if stage != self._stage:
            self._stage = stage
            if self._on_stage is not None:
                self._on_stage(stage)
        if self._qbar is not None:
            try:
                # the stage's name first: the value it shows never carries the last stage's
                self._qbar.setFormat(f"{stage}: %v / %m")
                # a stage of one step not yet done (the liver's one window: 4 s on a CPU), or
                # one started whose steps are not yet counted, moves as a busy bar: "0 / 1"
                # looked stuck
                self._qbar.setMaximum(0 if _busy(done, total) else max(total, 1))
                self._qbar.setValue(min(done, max(total, 1)))
            except RuntimeError:  # the widget was deleted under us
                self._qbar = None

    def _yielded(self, item: Any) -> None:
        if self._on_yielded is not None:
            self._on_yielded(item)

    def _returned(self, result: Any) -> None:
        # a job that writes files and returned after a late Cancel has written them: its
        # result is shown ("Cancelled: nothing was changed" stood over replaced files)
        late = self._cancel.is_set() and not self.deliver_after_cancel
        if self._on_result is not None and not late:
            self.delivered = True
            self._on_result(result)

    def _errored(self, exc: BaseException) -> None:
        # The status changes only in _finished, so a job reads "running" until every signal
        # of its thread has been handled.
        if isinstance(exc, Cancelled):
            self._outcome = "cancelled"
            self.cancel_changed = getattr(exc, "changed", "")
            return
        self._outcome = "failed"
        self.error = exc
        if self._on_error is not None:
            self._on_error(exc)

    def _finished(self) -> None:
        _RUNNING.discard(self)
        if self._outcome is None:  # a Cancel after the result was shown changed nothing
            self._outcome = "cancelled" if self._cancel.is_set() and not self.delivered else "done"
        self.status = self._outcome
        self._close_bars()
        on_finished = self._on_finished
        # let go of what the callbacks hold (layers, volumes, the result): a finished job
        # kept by anyone must not keep them alive
        self._on_result = self._on_yielded = self._on_error = self._on_finished = None
        self._on_stage = None
        self._qbar = None
        self._target[:] = []
        if on_finished is not None:
            on_finished(self.status)

    def _update_napari_bar(self, stage: str, done: int, total: int) -> None:
        # One napari bar per job, relabelled per stage: creating napari bars is what costs
        # time on the GUI thread, so it happens once, when the job starts.
        bar = self._bars.get("job")
        if bar is None:
            return
        total = 0 if _busy(done, total) else max(int(total), 1)  # (0: napari's busy bar)
        if self._bars.get("stage") != stage:
            self._bars["stage"] = stage
            bar.set_description(f"{self._description}: {stage}".strip(": "))
            bar.n = 0
        if bar.total != total:
            bar.total = total
        delta = min(int(done), max(total, 1)) - bar.n
        if delta:
            bar.update(delta)

    def _open_bar(self) -> None:
        if self._napari_progress:
            from napari.utils import progress

            self._bars["job"] = progress(total=1, desc=self._description or "working")

    def _close_bars(self) -> None:
        bar = self._bars.pop("job", None)
        if bar is not None:
            bar.close()
        self._bars.clear()


def _busy(done: int, total: int) -> bool:
    """A stage with one step, not yet done: shown as busy, not as a bar stuck at 0."""
    return int(done) <= 0 and int(total) <= 1


def error_text(exc: BaseException) -> str:
    """A one-line message for the user (no traceback)."""
    from ..memory import out_of_memory

    if isinstance(exc, JobFailed) and exc.__cause__ is not None:
        exc = exc.__cause__
        oom = out_of_memory(exc)  # torch's allocator said raw: "[enforce fail at alloc_cpu…"
        if oom is not None and not isinstance(exc, MemoryError):
            gpu, detail = oom
            if gpu:
                return f"Out of GPU memory ({detail}): close what else uses the GPU, or choose cpu"
            return f"Out of memory ({detail}): close other programs or layers"
        if isinstance(exc, OSError) and exc.filename and exc.strerror:  # the file, then why
            if exc.filename2:  # a rename or link: both ends
                return f"{exc.filename} -> {exc.filename2}: {exc.strerror}"
            return f"{exc.filename}: {exc.strerror}"
        if not isinstance(exc, MemoryError):  # (in the worker: wrapped, read like the GUI's)
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, MemoryError):  # numpy's "Unable to allocate 900. MiB for an array ..."
        return f"Out of memory{f' ({exc})' if str(exc) else ''}: close other programs or layers"
    return str(exc) or type(exc).__name__
