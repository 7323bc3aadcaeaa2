"""Measure how responsive the Qt event loop stays while background work runs.

A QTimer fires every ``interval_ms``; the longest gap between two beats, minus the interval, is
the longest time the event loop could not react to the user (a "stall").
"""

from __future__ import annotations

import time

from qtpy.QtCore import QObject, QTimer


class Heartbeat(QObject):
    """Record the longest event-loop stall between :meth:`start` and :meth:`stop`."""

    def __init__(self, interval_ms: int = 20) -> None:
        super().__init__()
        self.interval_ms = interval_ms
        self.max_stall_ms = 0.0
        self.beats = 0
        self._gaps: list[float] = []
        #: (start, end) perf_counter times of every stall over 2 intervals, for attributing them
        self.long_stalls: list[tuple[float, float]] = []
        self._last: float | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._beat)

    def start(self) -> Heartbeat:
        self.max_stall_ms, self.beats, self._gaps, self._last = 0.0, 0, [], None
        self.long_stalls = []
        self._timer.start()
        return self

    def stop(self) -> float:
        """Stop and return the longest stall in ms."""
        self._timer.stop()
        return self.max_stall_ms

    def summary(self) -> dict:
        gaps = sorted(self._gaps) or [0.0]
        return {
            "interval_ms": self.interval_ms,
            "beats": self.beats,
            "max_stall_ms": round(self.max_stall_ms, 1),
            "p95_stall_ms": round(gaps[int(0.95 * (len(gaps) - 1))], 1),
            "median_stall_ms": round(gaps[len(gaps) // 2], 1),
        }

    def max_stall_outside(self, windows: list[tuple[float, float]]) -> float:
        """Longest stall (ms) not overlapping any ``(start, end)`` perf_counter window."""
        worst = 0.0
        for start, end in self.long_stalls:
            if any(start < w_end and end > w_start for w_start, w_end in windows):
                continue
            worst = max(worst, (end - start) * 1000.0 - self.interval_ms)
        return round(worst, 1)

    def _beat(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            stall = max(0.0, (now - self._last) * 1000.0 - self.interval_ms)
            self._gaps.append(stall)
            self.max_stall_ms = max(self.max_stall_ms, stall)
            if stall > 2 * self.interval_ms:
                self.long_stalls.append((self._last, now))
        self._last = now
        self.beats += 1
