"""Plain-callback progress and cancellation for long-running core jobs.

Core functions accept ``progress`` and ``should_cancel`` callables; the GUI bridges them to
napari progress bars and a worker's quit flag, the CLI to a text line. Nothing here touches Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import Cancelled

#: ``progress(stage, done, total)``: ``stage`` is a short label such as ``"liver"``.
ProgressFn = Callable[[str, int, int], None]
#: ``should_cancel()`` returns True when the user asked to stop.
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
