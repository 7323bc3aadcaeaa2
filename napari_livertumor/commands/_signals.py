"""SIGTERM handled like Ctrl-C by the long-running commands."""

from __future__ import annotations

import contextlib

from ..errors import Terminated


def exit_status(exc: BaseException | None) -> int:
    """The exit status of a command a stop ended: 143 for SIGTERM, 130 for Ctrl-C."""
    return 143 if isinstance(exc, Terminated) else 130


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``), so a command ends its own
    way: training saves ``last/``, a batch of segmentations writes the summary of the cases it
    finished."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
