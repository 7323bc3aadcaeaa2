"""Text rendering of training reports for the CLI and ``torchrun`` logs, and the time a
stage's steps have left (the CLI's step lines and the Train panel's bar say it alike)."""

from __future__ import annotations

import json
import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TimeLeft:
    """The time a stage's run has left after a step (:meth:`StepClock.left`)."""

    #: seconds; the validations to come are counted where ``counted``, else the steps' alone
    seconds: float
    #: the validations still to come, the one right after this step and the final one
    #: included; None where the reports do not say
    validations: int | None
    #: whether ``seconds`` counts the validations (one has been timed, or none comes)
    counted: bool
    #: the step the time budget ends the run near (the step reported where it has run out,
    #: or where it runs out in the validation right after it), or None where it ends none
    ends_near: int | None = None
    #: whether the time budget has run out (the step report's ``budget_s`` is 0): the run
    #: ends after this step; ``ends_near`` at this step without it is a forecast
    reached: bool = False
    #: whether the time budget ends the run before its last step where ``ends_near`` is None:
    #: a validation comes before the step the steps' time alone would end it at, and none is
    #: timed yet (its minutes, taken from the budget, move that step: it is not said)
    budget_ends: bool = False


class StepClock:
    """Seconds per step and per validation, and the time one stage's run has left, from its
    ``step`` and ``epoch`` reports, in the order they come.

    A step's time is the wall time since the step before (``interval_s``: its batch's loading
    included, which ``seconds``, the network's step alone, leaves out); the figure is the
    median of the latest :data:`CLOCK_WINDOW`, and the first step seen (a run's or a resumed
    part's: the warm-up) is left out. A validation's time is an ``epoch`` report's ``val_s``
    (their median). The time left is that of the steps left from the step reached (after a
    resume too) and, once a validation has been timed, of the validations still to come
    (a step report's ``val_every_steps`` says where they come: after every so many steps, and
    after the last); until then the validations are not counted, and the text says so. Where
    the time budget (``budget_s``) runs out first, the time left is the budget's and its final
    validation's, and the step it ends near is said (the validations before it counted; not
    said where one comes before it and none is timed yet). One clock per stage's run.
    """

    def __init__(self) -> None:
        self._times: deque[float] = deque(maxlen=CLOCK_WINDOW)
        self._val_times: deque[float] = deque(maxlen=CLOCK_WINDOW)
        self._seen = 0

    def add(self, report: dict[str, Any]) -> None:
        """Count a ``step`` report, or an ``epoch`` report's validation time; others are
        passed over."""
        event = report.get("event", "step")
        if event == "epoch":
            t = report.get("val_s")
            if t is not None and math.isfinite(t) and t > 0:
                self._val_times.append(float(t))
            return
        if event != "step":
            return
        self._seen += 1
        t = report.get("interval_s")
        if t is None:
            t = report.get("seconds")
        if self._seen > 1 and t is not None and math.isfinite(t) and t > 0:
            self._times.append(float(t))

    def per_step(self) -> float | None:
        """The seconds a step takes, or None before :data:`CLOCK_LEAST` steps are timed."""
        return statistics.median(self._times) if len(self._times) >= CLOCK_LEAST else None

    def per_validation(self) -> float | None:
        """The seconds a validation takes, or None before one is timed."""
        return statistics.median(self._val_times) if self._val_times else None

    def left(self, report: dict[str, Any]) -> TimeLeft | None:
        """The time left after the step ``report``, or None while estimating."""
        step, total = report["step"], report["total_steps"]
        every = report.get("val_every_steps")
        n_val = validations_left(step, total, every)
        val = self.per_validation()
        counted = n_val == 0 or (n_val is not None and val is not None)
        val_s = val if counted and n_val else 0.0  # (0: none comes, or none is timed yet)
        budget = report.get("budget_s")
        if budget is not None and budget <= 0 and step < total:
            # it ran out in this step: the run ends here, with a validation where it validates
            return TimeLeft(val_s, None if n_val is None else min(n_val, 1), counted, step, True)
        per = self.per_step()
        if per is None:
            return None
        if budget is not None and math.isfinite(budget) and step < total:
            # (a budget too large for a float, --max-minutes 1e308, ends nothing)
            end = _budget_end(step, total, every or 0, per, val_s, budget)
            if end is not None:
                near, seconds = end
                if not counted and every and (near - 1) // every > (step - 1) // every:
                    # a validation, not timed, comes before that step and takes from the
                    # budget too: the step is not known ("near step 18" was said where the
                    # validation after step 10 took 65 s and the run ended at step 10); the
                    # time left is still the budget's (and its final validation's, on top)
                    return TimeLeft(seconds, None, False, budget_ends=True)
                return TimeLeft(seconds, validations_left(step, near, every), counted, near)
        return TimeLeft(max(total - step, 0) * per + (n_val or 0) * val_s, n_val, counted)

    def text(self, report: dict[str, Any], near_step: bool = True) -> str:
        """``~8 min left``; ``~8 min left + validations`` while no validation has been timed
        (the steps' time alone); ``~25 min left (time budget: ends near step 270)`` where the
        time budget ends the run first (``(time budget)`` without ``near_step``; ``(time
        budget: its end step is said once a validation is timed)`` where an untimed validation
        comes before the step the steps alone would end it at), ``time
        budget reached`` at the step where it has run out (``~1 min left (time budget
        reached)`` where its final validation is timed); :data:`ESTIMATING` (until a few steps
        are timed) or :data:`NONE_LEFT` (after the last step, nothing timed left)."""
        left = self.left(report)
        if left is None:
            return ESTIMATING
        step, total = report["step"], report["total_steps"]
        if step >= total and left.seconds <= 0:
            return NONE_LEFT
        if left.reached:
            if left.seconds > 0:
                return f"~{duration_text(left.seconds)} left (time budget reached)"
            return "time budget reached"
        if left.ends_near is not None and left.ends_near <= step:
            # a forecast: the budget runs out in the validation that comes next (its time is
            # a median: it may come in under it, and the run go on)
            return f"~{duration_text(left.seconds)} left (time budget: likely ends after this validation)"
        text = f"~{duration_text(left.seconds)} left"
        if not left.counted:
            text += " + validations"
        if left.ends_near is not None:
            text += (
                f" (time budget: ends near step {left.ends_near})"
                if near_step
                else " (time budget)"
            )
        elif left.budget_ends:
            text += (
                " (time budget: its end step is said once a validation is timed)"
                if near_step
                else " (time budget)"
            )
        return text

    def line_text(self, report: dict[str, Any]) -> str:
        """A command line's step line's end: ``liver: ~8 min left``, or ``liver steps: ~8 min
        left + validations`` while the figure is the steps' alone."""
        left = self.left(report)
        reached = left is not None and (
            left.reached or (left.ends_near is not None and left.ends_near <= report["step"])
        )
        steps_alone = left is not None and not left.counted and not reached
        whose = f"{report.get('stage', '')} steps" if steps_alone else report.get("stage", "")
        return f"{whose}: {self.text(report)}"


def validations_left(step: int, total: int, every: int | None) -> int | None:
    """The validations a run has still to do after its step ``step`` (the one right after it
    included) where one comes after every ``every`` steps and after the last (``total``); 0
    where ``every`` is 0 (none comes), None where it is not known."""
    if every is None:
        return None
    if every <= 0 or step > total:
        return 0
    return total // every - (step - 1) // every + (1 if total % every else 0)


def _budget_end(
    step: int, total: int, every: int, per: float, val: float, budget: float
) -> tuple[int, float] | None:
    """``(the step the time budget ends the run near, the seconds left)`` after ``step``,
    where steps take ``per`` seconds and a validation ``val`` after every ``every`` steps (0:
    none), or None where the run reaches ``total`` within ``budget``. The budget is read after
    each step: one that runs out in a step ends the run after it, with a final validation; one
    that runs out in a validation ends it there."""
    t, k = 0.0, step
    if every and k % every == 0:  # the validation right after this step
        t += val
        if t >= budget:
            return k, t
    while k < total:
        if every and k % every == 0:  # (whole stretches of steps and validation skipped)
            cycle = every * per + val
            skip = min((total - 1 - k) // every, math.floor((budget - t) / cycle) - 1)
            if skip > 0:
                t, k = t + skip * cycle, k + skip * every
        nxt = min(total, (k // every + 1) * every) if every else total
        if t + (nxt - k) * per >= budget:  # it runs out in these steps
            return min(total, k + max(1, math.ceil((budget - t) / per))), budget + val
        t, k = t + (nxt - k) * per, nxt
        if k >= total:
            return None
        t += val
        if t >= budget:
            return k, t
    return None


def format_report(r: dict[str, Any], time_left: str | None = None) -> str | None:
    """One line per report (step lines are thinned to every 10th step); a step line ends with
    ``time_left`` (:meth:`StepClock.line_text`) where given."""
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
            + (f"; {time_left}" if time_left else "")
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
        if r.get("event") in ("step", "epoch"):  # (an epoch's report times its validation)
            clock = clocks.setdefault(r.get("stage", ""), StepClock())
            clock.add(r)
            if r.get("event") == "step":
                left = clock.line_text(r)
        line = format_report(r, left) if not quiet or r.get("event") in RESULT_EVENTS else None
        if line:
            print(line, file=stream, flush=True)
        last = r
    return last
