"""SIGTERM handled like Ctrl-C by the long-running commands."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a job scheduler's stop or time limit, ``kill``, ``docker stop``) raises
    ``KeyboardInterrupt`` like Ctrl-C, so a command ends its own way: training saves ``last/``,
    a batch of segmentations writes the summary of the cases it finished."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
