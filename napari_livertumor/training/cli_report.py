"""Text rendering of training reports for the CLI and ``torchrun`` logs, and the time a
stage's steps have left (the CLI's step lines and the Train panel's bar say it alike)."""

from __future__ import annotations

import json
import math
import statistics
from collections import deque
from collections.abc import Iterable
from typing import Any, TextIO

#: the time left is worked out from the median of the latest step times, once this many are in
#: (a slow step, a pause or the first step's warm-up does not sway it)
CLOCK_WINDOW = 20
CLOCK_LEAST = 3
#: what is said until then, and after the last step
ESTIMATING = "estimating time left…"
NONE_LEFT = "none left"


def epoch_said(epoch: int | None) -> str:
    """A report's epoch as every line a user reads says it: counted from 1, so the last of a
    3-epoch run is "epoch 3" (the reports, ``metadata.json`` and ``train_state.pt`` count
    from 0). The command line said "epoch 2" where the Train panel said "epoch 3"."""
    return "?" if epoch is None else str(int(epoch) + 1)


def duration_text(seconds: float) -> str:
    """``45 s``, ``8 min``, ``5 h 12 min``, ``31 h``: a time left, rounded as it is known."""
    seconds = max(0.0, seconds)
    if seconds < 59.5:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 10 else f"{hours + (minutes >= 30)} h"


class StepClock:
    """Seconds per step, and the time the steps of one stage's run have left, from its step
    reports, in the order they come.

    A step's time is the wall time since the step before (``interval_s``: its batch's loading
    included, which ``seconds``, the network's step alone, leaves out); the figure is the
    median of the latest :data:`CLOCK_WINDOW`, and the first step seen (a run's or a resumed
    part's: the warm-up) is left out. The time left is that of the steps left from the step
    reached (after a resume too); the validations come on top of it. Where the time budget
    (``budget_s``) runs out first, the time left is the budget's, and the step it ends near is
    said. One clock per stage's run.
    """

    def __init__(self) -> None:
        self._times: deque[float] = deque(maxlen=CLOCK_WINDOW)
        self._seen = 0

    def add(self, report: dict[str, Any]) -> None:
        """Count a ``step`` report."""
        self._seen += 1
        t = report.get("interval_s")
        if t is None:
            t = report.get("seconds")
        if self._seen > 1 and t is not None and math.isfinite(t) and t > 0:
            self._times.append(float(t))

    def per_step(self) -> float | None:
        """The seconds a step takes, or None before :data:`CLOCK_LEAST` steps are timed."""
        return statistics.median(self._times) if len(self._times) >= CLOCK_LEAST else None

    def left(self, report: dict[str, Any]) -> tuple[float, int | None] | None:
        """``(seconds left, step the time budget ends the run near or None)`` after the step
        ``report``, or None while estimating."""
        per = self.per_step()
        if per is None:
            return None
        step, total = report["step"], report["total_steps"]
        left = max(total - step, 0) * per
        budget = report.get("budget_s")
        if budget is not None and budget < left:
            # (the budget is read after each step: the step under way when it runs out ends it)
            return max(budget, 0.0), min(total, step + math.ceil(max(budget, 0.0) / per))
        return left, None

    def text(self, report: dict[str, Any], near_step: bool = True) -> str:
        """``~8 min left``, ``~25 min left (time budget: ends near step 270)`` where the time
        budget ends the run first (``(time budget)`` without ``near_step``), or
        :data:`ESTIMATING` (:data:`NONE_LEFT` after the last step)."""
        left = self.left(report)
        if left is None:
            return ESTIMATING
        seconds, budget_end = left
        if report["step"] >= report["total_steps"]:
            return NONE_LEFT
        text = f"~{duration_text(seconds)} left"
        if budget_end is not None:
            text += (
                f" (time budget: ends near step {budget_end})" if near_step else " (time budget)"
            )
        return text


def format_report(r: dict[str, Any], time_left: str | None = None) -> str | None:
    """One line per report (step lines are thinned to every 10th step); a step line ends with
    ``time_left`` (:meth:`StepClock.text`) where given."""
    ev = r.get("event")
    if ev == "step":
        # the step before a validation is always shown, and says it: the validation can take
        # minutes with no line (the time budget's final one too)
        validating = bool(r.get("validates_next"))
        if r["step"] % 10 and r["step"] != 1 and not validating:
            return None
        # a batch with no weak label has no weak term (its 0.0 keeps DDP's graph whole): shown
        # as none, as train_dice is, not as a penalty of 0 the network met
        no_weak = r["losses"].get("n_weak") == 0
        losses = " ".join(
            f"{k}=-" if k == "weak" and no_weak else f"{k}={v:.4f}"
            for k, v in r["losses"].items()
            if k != "n_weak"
        )
        td = r.get("train_dice")
        return (
            f"[{r['stage']}] step {r['step']}/{r['total_steps']} ep {epoch_said(r['epoch'])} {losses} "
            f"train_dice={'-' if td is None else f'{td:.3f}'} lr={r['lr']:.2e} "
            f"{r['seconds']:.2f}s/step {r['samples_per_s']:.2f} samples/s"
            + (f"; {r['stage']} steps: {time_left}" if time_left else "")
            + ("; validating…" if validating else "")
        )
    if ev == "validating":  # one no step line announced: the time budget ran out before a step
        final = r.get("final") and r["step"] < r["total_steps"]
        return f"[{r['stage']}] step {r['step']}/{r['total_steps']}: validating…" + (
            " (the final validation: the time budget ran out)" if final else ""
        )
    if ev == "epoch":
        val = r.get("val") or {}
        vals = " ".join(f"{k}={v:.4f}" for k, v in val.items() if isinstance(v, float))
        if val.get("n_val_with_class") == 0:  # a Dice of 0 by convention, not a measurement
            vals = "validation not measured (no validation patient has the class)"
        best = " (best, saved)" if r.get("saved_best") else ""
        if r.get("resumed_validation"):
            best += " (the validation the stop interrupted)"
        loss = r.get("train_loss")
        return (
            f"[{r['stage']}] epoch {epoch_said(r.get('epoch'))} step {r['step']} "
            f"train_loss={'-' if loss is None else f'{loss:.4f}'} {vals}{best} "
            f"elapsed {r['seconds'] / 60:.1f} min"
        )
    if ev == "prepare":  # before the first step: every 10th patient, and the end
        done, total = r["done"], r["total"]
        if r["phase"] == "index":
            if done == 0:
                return f"[{r['stage']}] reading {total} patient folders"
            return None
        if done == total:
            return f"[{r['stage']}] {total} training/validation patient(s) read (any left out are said)"
        if done % 10 == 0:
            return f"[{r['stage']}] preparing training/validation patient {done + 1}/{total} ({r['case']})"
        return None
    if ev == "resumed":
        best = r.get("best")
        return (
            f"[{r['stage']}] resumed at step {r['step']}/{r['total_steps']} "
            f"({len(r.get('history') or [])} epoch(s) recorded"
            + (f", best validation score {best:.4f})" if best is not None else ")")
            # (redone before any step: minutes with no line otherwise)
            + (
                "; validating first: the stop had interrupted the validation"
                if r.get("val_pending")
                else ""
            )
        )
    if ev == "info":
        return f"[{r['stage']}] " + json.dumps(
            {k: v for k, v in r.items() if k not in ("event", "stage")}
        )
    if ev in ("done", "cancelled"):
        # (``kept`` is said by ``model_kept``, which leads the line)
        return f"[{r['stage']}] {ev}: " + json.dumps(
            {k: v for k, v in r.items() if k not in ("event", "stage", "kept")}
        )
    return None


#: the reports ``-q`` still prints: a run's result (the warnings go to the log)
RESULT_EVENTS = ("done", "cancelled")


def print_reports(
    reports: Iterable[dict[str, Any]], stream: TextIO, *, quiet: bool = False
) -> dict[str, Any] | None:
    """Print every report's line; return the last report. ``quiet`` (``livertumor -q``): the
    result lines only, no line per step, epoch or patient prepared."""
    last = None
    clocks: dict[str, StepClock] = {}  # each stage's (a run of both trains one, then the other)
    for r in reports:
        left = None
        if r.get("event") == "step":
            clock = clocks.setdefault(r.get("stage", ""), StepClock())
            clock.add(r)
            left = clock.text(r)
        line = format_report(r, left) if not quiet or r.get("event") in RESULT_EVENTS else None
        if line:
            print(line, file=stream, flush=True)
        last = r
    return last
