"""Plain-callback progress and cancellation for long-running core jobs.

Core functions accept ``progress`` and ``should_cancel`` callables; the GUI bridges them to
napari progress bars and a worker's quit flag, the CLI to a text line. Nothing here touches Qt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .errors import Cancelled

#: ``progress(stage, done, total)``: ``stage`` is a short label such as ``"liver"``;
#: ``0 <= done <= total``. A stage may first say ``(stage, 0, 1)`` (started, its steps not yet
#: counted) and then count in its own total; steps may be passed over (a lesion's contour that
#: stops early: ``done`` jumps), and a stage ends at ``done == total``. An exception raised by
#: the callback is not caught: it ends the job as it is.
ProgressFn = Callable[[str, int, int], None]
#: ``should_cancel()``: a true value stops the job (:class:`Cancelled`) at its next check.
CancelFn = Callable[[], bool]


@dataclass
class Reporter:
    """Bundle of the two callbacks, with safe no-op defaults."""

    progress: ProgressFn | None = None
    should_cancel: CancelFn | None = None

    def update(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    def check(self) -> None:
        """Raise :class:`Cancelled` if the user asked to stop."""
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("cancelled by the user")


def as_reporter(reporter) -> Reporter:
    """``reporter`` as a :class:`Reporter`: None gives a silent one, a plain
    ``progress(stage, done, total)`` function is wrapped (as ``segment_ct`` takes it)."""
    if reporter is None:
        return Reporter()
    if isinstance(reporter, Reporter):
        return reporter
    if callable(reporter):
        return Reporter(progress=reporter)
    raise TypeError(
        "reporter must be a napari_livertumor.progress.Reporter(progress, should_cancel) or a "
        f"progress(stage, done, total) function; got {type(reporter).__name__}"
    )


class case_log_prefix:  # noqa: N801 - used as a context manager, like a function
    """The pipeline's own log lines (a lesion the refinement kept unchanged...) start with the
    case's name, as the commands' own lines do: in a batch they said which case no more
    (``segment``, ``evaluate``)."""

    def __init__(self, name: str):
        self.name = name
        self.logger = logging.getLogger("napari_livertumor.pipeline")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()  # formatted first: a "%" in a case name is no format
        except Exception:  # noqa: BLE001 - a bad call: logging's own handling says so
            return True
        if not message.startswith(f"{self.name}: "):
            record.msg, record.args = f"{self.name}: {message}", None
        return True

    def __enter__(self):
        self.logger.addFilter(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeFilter(self)
        return False
