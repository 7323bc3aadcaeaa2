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

from ..fileio import read_user_text

#: true lesions smaller than this (mL) are not counted (as ``training.metrics.lesion_detection``)
LESION_MIN_ML = 0.1

#: shifts tried by default (added to the stage's main-class logit)
SHIFT_GRID = (-6.0, -5.0, -4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


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
    mean, n = _column_means(per_case, len(grid))
    return {"stage": stage, "grid": grid, "per_case": per_case, "mean": mean, "n": n}


def _column_means(per_case: list[list[float]], n_cols: int) -> tuple[list[float], list[int]]:
    """Mean and count per column, NaN (undefined Dice) left out."""
    mean, n = [], []
    for j in range(n_cols):
        vals = [r[j] for r in per_case if not math.isnan(r[j])]
        mean.append(statistics.fmean(vals) if vals else math.nan)
        n.append(len(vals))
    return mean, n


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


def without_nan(value):
    """``value`` with every NaN float (an undefined mean Dice) as None: a bare NaN is no JSON
    (Python reads it; jq, JavaScript and strict parsers refuse the whole file)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nan(v) for v in value]
    return value


def write_shift(
    folder: str | Path,
    shift: float,
    scores: dict[str, Any],
    how: str,
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Set the main-class ``logit_bias`` in ``folder/metadata.json`` and record the calibration.

    The previous shift is kept in ``metrics["pipeline_calibration"]["previous_logit_bias"]``;
    ``extra`` (e.g. ``chosen_by``, other phantom families' curves) is added to that record.
    Written atomically; the weights are not touched.
    """
    from ..fileio import atomic_write_bytes
    from ..models.checkpoint import METADATA_FILE, read_metadata

    folder = Path(folder)
    meta = read_metadata(folder)
    raw = json.loads(read_user_text(folder / METADATA_FILE))
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
        **(extra or {}),
    }
    raw["metrics"] = metrics
    text = json.dumps(without_nan(raw), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(folder / METADATA_FILE, text.encode())
    read_metadata(folder)  # what was written must load
    return folder / METADATA_FILE


def score_lesion_filters(
    segmenter,
    cases: Iterable[tuple[np.ndarray, Sequence[float], np.ndarray]],
    shifts: Sequence[float] = (0.0,),
    peaks: Sequence[float] = (0.0,),
    min_mls: Sequence[float] = (0.1,),
    *,
    progress=None,
) -> dict[str, Any]:
    """Tumor Dice per case for each (logit shift, ``min_peak``, ``min_ml``) of the tumor stage.

    Each case runs both networks once: the liver stage as configured, then the tumor network,
    whose margin score is post-processed (:func:`napari_livertumor.pipeline.
    tumor_mask_from_score`) for every combination. ``shifts`` are *added to* the tumor model's
    current ``logit_bias`` (0 = as it is). Dice follows :func:`score_shifts` (NaN when
    prediction and truth are both empty, left out of the mean).

    Returns
    -------
    dict
        ``{"combos": [[shift, peak, min_ml], ...], "per_case": [[dice per combo], ...],
        "mean": [...], "n": [...], "components": [[(kept, false, found, true) per combo],
        ...]}``: ``kept`` predicted components, ``false`` those under 10 % true tumor, ``found``
        true lesions (26-connected, at least ``LESION_MIN_ML``) at least 10 % predicted, of
        ``true``: the rules of :func:`napari_livertumor.training.metrics.lesion_detection`.
    """
    import torch
    from scipy import ndimage as ndi

    from ..pipeline import tumor_mask_from_score
    from ..progress import Reporter

    if segmenter.tumor is None:
        raise ValueError("the segmenter has no tumor model (stages='liver')")
    combos = [
        [float(s), float(p), float(m)] for s in shifts for p in peaks for m in sorted(min_mls)
    ]
    rep = Reporter(None, None)
    per_case: list[list[float]] = []
    lesions: list[list[tuple[int, int, int, int]]] = []
    for i, (ct, spacing, truth) in enumerate(cases):
        ct = np.asarray(ct)
        spacing = tuple(float(s) for s in spacing)
        truth_t = np.asarray(truth) == 2
        labels = np.zeros(ct.shape, np.uint8)
        row: list[float] = []
        les: list[tuple[int, int, int, int]] = []
        with torch.inference_mode():
            found = segmenter._liver_stage(ct, spacing, labels, rep, [])
            if found:
                box, liver_roi, score = segmenter._tumor_score(ct, spacing, labels, rep)
                truth_roi = truth_t[box]
                outside = int(truth_t.sum()) - int(truth_roi.sum())
        voxel_ml = float(np.prod(spacing)) / 1000.0
        t_lab, n_true = ndi.label(truth_t, structure=np.ones((3, 3, 3), bool))
        t_sizes = np.bincount(t_lab.ravel())
        real = t_sizes * voxel_ml >= LESION_MIN_ML
        real[0] = False
        n_true = int(real.sum())
        t_lab_roi = t_lab[box] if found else None
        for s in shifts:
            for p in peaks:
                if found:
                    mask = tumor_mask_from_score(
                        score + float(s), liver_roi, spacing, min_ml=0.0, min_peak=float(p)
                    ).astype(bool)
                    lab, _ = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
                    sizes = np.bincount(lab.ravel())
                    inter = np.bincount(
                        lab.ravel(), weights=truth_roi.ravel(), minlength=len(sizes)
                    )
                    t_sum = int(truth_roi.sum()) + outside
                else:
                    sizes = inter = np.zeros(1)
                    t_sum = int(truth_t.sum())
                for m in sorted(min_mls):
                    keep = sizes * voxel_ml >= m
                    keep[0] = False
                    tp, pv = float(inter[keep].sum()), float(sizes[keep].sum())
                    row.append(math.nan if pv + t_sum == 0 else 2.0 * tp / (pv + t_sum))
                    n_found = 0
                    if found and n_true and keep.any():
                        hit = np.bincount(
                            t_lab_roi.ravel(), weights=keep[lab].ravel(), minlength=len(t_sizes)
                        )
                        n_found = int((hit[real] >= 0.1 * t_sizes[real]).sum())
                    les.append(
                        (
                            int(keep.sum()),
                            int((inter[keep] < 0.1 * sizes[keep]).sum()),
                            n_found,
                            n_true,
                        )
                    )
        per_case.append(row)
        lesions.append(les)
        if progress is not None:
            progress(i, row)
    mean, n = _column_means(per_case, len(combos))
    return {"combos": combos, "per_case": per_case, "mean": mean, "n": n, "components": lesions}


def choose_lesion_filter(
    res: dict[str, Any], current: Sequence[float] = (0.0, 0.0, 0.1), dice_tolerance: float = 0.01
) -> int:
    """Index into ``res["combos"]`` of :func:`score_lesion_filters` to adopt.

    Mean Dice alone barely tells the settings apart (dropping a false lesion of a patient who
    has a large true one hardly moves that patient's Dice), while the reader sees every false
    lesion. So: among the settings within ``dice_tolerance`` of the best mean Dice that find at
    least as many true lesions as ``current`` (``[shift, min_peak, min_ml]``, which must be in
    the grid), take the fewest false lesions per case (to 0.01), then the most lesions found,
    then the simplest (shift nearest 0, lowest ``min_peak``, lowest ``min_ml``).
    """
    combos = [tuple(c) for c in res["combos"]]
    cur = tuple(float(v) for v in current)
    if cur not in combos:
        raise ValueError(f"the current setting {list(cur)} is not in the scored grid")
    comps = np.asarray(res["components"], dtype=float)  # case, combo, (kept, false, found, true)
    false_pc = comps[:, :, 1].mean(axis=0)
    found = comps[:, :, 2].sum(axis=0)
    means = np.array([-np.inf if math.isnan(m) else m for m in res["mean"]])
    j_cur = combos.index(cur)
    ok = [j for j in range(len(combos)) if means[j] >= means.max() - dice_tolerance]
    ok = [j for j in ok if found[j] >= found[j_cur]] or [j_cur]
    return min(
        ok,
        key=lambda j: (
            round(float(false_pc[j]), 2),
            -found[j],
            abs(combos[j][0]),
            combos[j][1],
            combos[j][2],
        ),
    )


def write_lesion_filter(
    folder: str | Path, combo: Sequence[float], record: dict[str, Any] | None = None
) -> Path:
    """Store a chosen ``[shift, min_peak, min_ml]`` in a tumor model's ``metadata.json``.

    ``shift`` is *added to* the model's current main-class logit shift (as in
    :func:`score_lesion_filters`); ``lesion_filter`` becomes ``{"min_ml", "min_peak"}``. The
    previous values and ``record`` (how they were chosen, the scores) go under
    ``metrics["lesion_calibration"]``. Written atomically; the weights are not touched.
    """
    from ..fileio import atomic_write_bytes
    from ..models.checkpoint import METADATA_FILE, read_metadata

    folder = Path(folder)
    meta = read_metadata(folder)
    if meta.stage != "tumor":
        raise ValueError(
            f"{folder}: a lesion filter belongs to a tumor model, not a {meta.stage} one"
        )
    shift_added, min_peak, min_ml = (float(v) for v in combo)
    raw = json.loads(read_user_text(folder / METADATA_FILE))
    old_bias = list(meta.logit_bias or bias_with(meta, 0.0))
    shift = old_bias[_main_channel(meta)] + shift_added
    raw["logit_bias"] = list(bias_with(meta, shift))
    raw["lesion_filter"] = {"min_ml": min_ml, "min_peak": min_peak}
    metrics = dict(raw.get("metrics") or {})
    metrics["lesion_calibration"] = {
        **(record or {}),
        "logit_bias": shift,
        "lesion_filter": raw["lesion_filter"],
        "previous": {"logit_bias": old_bias, "lesion_filter": meta.lesion_filter},
    }
    raw["metrics"] = metrics
    text = json.dumps(without_nan(raw), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(folder / METADATA_FILE, text.encode())
    read_metadata(folder)  # what was written must load
    return folder / METADATA_FILE
