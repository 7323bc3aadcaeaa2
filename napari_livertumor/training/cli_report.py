"""Text rendering of training reports for the CLI and ``torchrun`` logs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO


def epoch_said(epoch: int | None) -> str:
    """A report's epoch as every line a user reads says it: counted from 1, so the last of a
    3-epoch run is "epoch 3" (the reports, ``metadata.json`` and ``train_state.pt`` count
    from 0). The command line said "epoch 2" where the Train panel said "epoch 3"."""
    return "?" if epoch is None else str(int(epoch) + 1)


def format_report(r: dict[str, Any]) -> str | None:
    """One line per report (step lines are thinned to every 10th step)."""
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
    for r in reports:
        line = format_report(r) if not quiet or r.get("event") in RESULT_EVENTS else None
        if line:
            print(line, file=stream, flush=True)
        last = r
    return last
