"""SIGTERM handled like Ctrl-C by the long-running commands, and stops held over a block."""

from __future__ import annotations

import contextlib

from .errors import Terminated


def exit_status(exc: BaseException | None) -> int:
    """The exit status of a command a stop ended: 143 for SIGTERM, 130 for Ctrl-C."""
    return 143 if isinstance(exc, Terminated) else 130


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (and Windows' SIGBREAK: Ctrl-Break, a closed console) raises
    :class:`Terminated` (a ``KeyboardInterrupt``), so a command ends its own way: training
    saves ``last/``, a batch of segmentations writes the summary of the cases it finished."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _stop(signum)

    # Windows: Ctrl-Break and a closed console window arrive as SIGBREAK, which otherwise
    # ends the process at once (a training run without saving last/)
    stops = [s for s in (signal.SIGTERM, getattr(signal, "SIGBREAK", None)) if s is not None]
    previous = {sig: signal.signal(sig, stop) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class HeldStops:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise ``KeyboardInterrupt`` (or
    :class:`Terminated`); a second one during the block raises at once (a block that hangs can
    still be stopped). Training holds them over a step, ``segment`` over the renames that
    replace a case's outputs. Outside the main thread (the napari panel's worker, which stops
    by its flag) it does nothing."""

    _SIGNALS = ("SIGINT", "SIGTERM", "SIGBREAK")  # (SIGBREAK: Windows only)

    def __enter__(self):
        import signal
        import threading

        self._old: dict = {}
        self._pending: list[int] = []
        if threading.current_thread() is not threading.main_thread():
            return self

        def hold(signum, frame):
            if self._pending:
                raise _stop(signum)
            self._pending.append(signum)

        for name in self._SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._old[sig] = signal.signal(sig, hold)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        import signal

        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        if self._pending and exc_type is None:
            raise _stop(self._pending[0])
        return False


def _stop(signum: int) -> KeyboardInterrupt:
    """The exception a held signal raises: :class:`Terminated` for SIGTERM and SIGBREAK (exit
    status 143)."""
    import signal

    for name in ("SIGTERM", "SIGBREAK"):
        if signum == getattr(signal, name, None):
            return Terminated(name)
    return KeyboardInterrupt()
