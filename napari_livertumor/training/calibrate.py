"""Choose each stage's decision threshold (logit shift) with the whole inference pipeline.

Training already picks a shift on its validation patients (:func:`training.loop.validate`), but
it scores the stage on its own: on a few patients, at the stage grid, the tumor stage inside the
*true* liver. Inference returns masks on the CT's full-resolution grid after post-processing,
and its tumor stage sits behind the *predicted* liver. A shift that is best in one regime need
not be best in the other (measured on the shipped liver model, validated before validation used
inference's windows: -4 on validation, -2 behind the real pipeline; see ``docs/training.md``). This module scores a grid of shifts with the real
:class:`~napari_livertumor.pipeline.Segmenter` on labelled cases and writes the best into the
model's ``metadata.json``.

The cases must be patients the benchmarks never use: ``scripts/calibrate_shift.py`` draws
development phantoms from their own seed range and checks them against the training cohort.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: shifts tried by default (added to the stage's main-class logit)
SHIFT_GRID = (-6.0, -5.0, -4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    s = int(pred.sum()) + int(truth.sum())
    if s == 0:
        return math.nan
    return 2.0 * float(np.logical_and(pred, truth).sum()) / s


def _main_channel(meta) -> int:
    for k, v in (meta.label_map or {}).items():
        if str(v).lower() == meta.stage:
            return int(k)
    return meta.network.out_channels - 1


def bias_with(meta, shift: float) -> tuple[float, ...]:
    """Per-channel ``logit_bias`` with ``shift`` on the stage's main class, 0 elsewhere."""
    bias = [0.0] * meta.network.out_channels
    bias[_main_channel(meta)] = float(shift)
    return tuple(bias)


def score_shifts(
    segmenter,
    cases: Iterable[tuple[np.ndarray, Sequence[float], np.ndarray]],
    stage: str,
    grid: Sequence[float] = SHIFT_GRID,
    *,
    progress=None,
) -> dict[str, Any]:
    """Dice per case for each shift of ``stage``'s main class, through the whole pipeline.

    Parameters
    ----------
    segmenter : Segmenter
        With both models loaded. Its models' ``logit_bias`` is restored afterwards.
    cases : iterable of ``(ct_hu, spacing, truth)``
        ``truth`` in the output convention (0 background, 1 liver, 2 tumor).
    stage : {"liver", "tumor"}
        Liver: liver Dice (labels >= 1) with the liver's shift varied. Tumor: tumor Dice with
        the tumor's shift varied behind the liver model as it is (NaN when prediction and
        truth are both empty; such cases are left out of that shift's mean).

    Returns
    -------
    dict
        ``{"grid": [...], "per_case": [[dice per shift], ...], "mean": [...], "n": [...]}``.
    """
    import torch

    from ..progress import Reporter

    if stage not in ("liver", "tumor"):
        raise ValueError(f"stage must be 'liver' or 'tumor'; got {stage!r}")
    model = segmenter.liver if stage == "liver" else segmenter.tumor
    if model is None:
        raise ValueError("the segmenter has no tumor model (stages='liver')")
    meta = model.metadata
    saved = meta.logit_bias
    grid = [float(g) for g in grid]
    per_case: list[list[float]] = []
    rep = Reporter(None, None)
    try:
        for i, (ct, spacing, truth) in enumerate(cases):
            ct = np.asarray(ct)
            spacing = tuple(float(s) for s in spacing)
            row = []
            with torch.inference_mode():
                base = None
                if stage == "tumor":
                    base = np.zeros(ct.shape, np.uint8)
                    found = segmenter._liver_stage(ct, spacing, base, rep, [])
                for g in grid:
                    meta.logit_bias = bias_with(meta, g)
                    if stage == "liver":
                        labels = np.zeros(ct.shape, np.uint8)
                        segmenter._liver_stage(ct, spacing, labels, rep, [])
                        row.append(_dice(labels >= 1, truth >= 1))
                    else:
                        labels = base.copy()
                        if found:
                            segmenter._tumor_stage(ct, spacing, labels, rep)
                        row.append(_dice(labels == 2, truth == 2))
            per_case.append(row)
            if progress is not None:
                progress(i, row)
    finally:
        meta.logit_bias = saved
    mean, n = [], []
    for j in range(len(grid)):
        vals = [r[j] for r in per_case if not math.isnan(r[j])]
        mean.append(statistics.fmean(vals) if vals else math.nan)
        n.append(len(vals))
    return {"stage": stage, "grid": grid, "per_case": per_case, "mean": mean, "n": n}


def best_shift(scores: dict[str, Any], current: float | None = None) -> float:
    """The shift with the highest mean Dice; ties (within 1e-4) go to the one nearest ``current``
    (or to zero), so a flat curve never moves the threshold for nothing."""
    ref = 0.0 if current is None else float(current)
    best = None
    for g, m in zip(scores["grid"], scores["mean"], strict=True):
        if math.isnan(m):
            continue
        key = (round(m, 4), -abs(g - ref))
        if best is None or key > best[0]:
            best = (key, g)
    if best is None:
        raise ValueError("no shift could be scored (every case empty in truth and prediction)")
    return float(best[1])


def write_shift(folder: str | Path, shift: float, scores: dict[str, Any], how: str) -> Path:
    """Set the main-class ``logit_bias`` in ``folder/metadata.json`` and record the calibration.

    The previous shift is kept in ``metrics["pipeline_calibration"]["previous_logit_bias"]``.
    Written atomically; the weights are not touched.
    """
    from ..fileio import atomic_write_bytes
    from ..models.checkpoint import METADATA_FILE, read_metadata

    folder = Path(folder)
    meta = read_metadata(folder)
    raw = json.loads((folder / METADATA_FILE).read_text())
    previous = raw.get("logit_bias")
    raw["logit_bias"] = list(bias_with(meta, shift))
    metrics = dict(raw.get("metrics") or {})
    metrics["pipeline_calibration"] = {
        "logit_bias": float(shift),
        "previous_logit_bias": previous,
        "measured_on": how,
        "grid": scores["grid"],
        "mean_dice": [None if math.isnan(m) else round(m, 4) for m in scores["mean"]],
        "n_cases": len(scores["per_case"]),
    }
    raw["metrics"] = metrics
    text = json.dumps(raw, indent=2, sort_keys=True)
    atomic_write_bytes(folder / METADATA_FILE, text.encode())
    read_metadata(folder)  # what was written must load
    return folder / METADATA_FILE
