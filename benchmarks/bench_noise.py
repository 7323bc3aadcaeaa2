"""How image noise moves the shipped models' Dice: the same phantoms with more noise added.

A review's own variant of one phantom ("20 HU more noise, an obese patient") halved its tumor
Dice, and docs/limits.md said so without a measurement over patients. Here each of ``--cases``
``full`` phantoms (development seeds: neither the training cohort's nor the accuracy
benchmark's) is segmented as drawn and again with correlated noise added at each
``--levels`` SD (HU): white noise smoothed in-plane over 0.8 px (a reconstruction kernel's
grain; every slice its own), scaled to that SD. The same models, settings and phantoms at
every level: only the noise differs.

Per level it gives the mean liver and tumor Dice (as ``bench_segment_accuracy.py``:
``training.metrics.case_scores``), the change from the same patients without added noise,
and two noise figures of the liver (the truth's, eroded): ``native_sd_hu``, a robust SD of
neighbouring voxels' differences on the CT's own grid (under-reads grainy noise), and
``model_grid_sd_hu``, the same on the tumor model's input grid (the CT averaged to its
2.5 × 2 × 2 mm, as the pipeline does; liver texture puts a floor of about 5 HU under it).

Usage::

    python benchmarks/bench_noise.py [--cases 6] [--levels 0 30 70 100 140] [--models DIR]

Writes ``benchmarks/results/noise.json`` and ``.md`` (``--out`` another stem).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # (a sibling module)
from _outputs import out_paths as _out_paths  # noqa: E402

RESULTS = HERE / "results"
#: development seeds: not the training cohort's (checked) nor bench_segment_accuracy's 7/8 M
BASE = 9_300_000
GRAIN_PX = 0.8


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--levels", type=float, nargs="+", default=[0, 30, 70, 100, 140])
    ap.add_argument("--models", default=None, help="models folder (default: the shipped ones)")
    ap.add_argument("--out", default=str(RESULTS / "noise"), help="output stem (.json/.md)")
    args = ap.parse_args(argv)
    levels = sorted(set(float(v) for v in args.levels) | {0.0})

    from napari_livertumor.models import default_model_dir
    from napari_livertumor.pipeline import InferenceConfig, Segmenter
    from napari_livertumor.synth.cohort import case_seed

    shipped = {case_seed(1, i) for i in range(160)}  # the model cards' cohort: synth --seed 1
    seeds = [BASE + i for i in range(args.cases)]
    if shipped & set(seeds):
        raise SystemExit(f"seeds {sorted(shipped & set(seeds))} were used in training")
    if args.models:
        cfg = InferenceConfig.from_models_dir(args.models, device="cpu")
    else:
        cfg = InferenceConfig(
            liver_model=default_model_dir("liver"),
            tumor_model=default_model_dir("tumor"),
            device="cpu",
        )
    seg = Segmenter(cfg)
    rows = []
    for seed in seeds:
        rows += _case(seg, seed, levels)
    report = _summarize(rows, levels)
    report.update(
        date_utc=time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        models={"liver": str(seg.liver.path), "tumor": str(seg.tumor.path)},
        seeds=seeds,
        grain_px=GRAIN_PX,
        cases=rows,
    )
    js, md = _out_paths(args.out)
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(report, indent=1) + "\n")
    md.write_text(_markdown(report))
    print(_markdown(report))
    print(f"wrote {js} and {md}")
    return 0


def _case(seg, seed: int, levels: list[float]) -> list[dict]:
    from scipy import ndimage as ndi

    from napari_livertumor.synth import generate_phantom
    from napari_livertumor.training.metrics import case_scores, hcc_to_output

    ph = generate_phantom(seed, "full")
    truth = hcc_to_output(ph.labels)
    clean = ph.ct.array.copy()
    rng = np.random.default_rng(seed)
    out = []
    for extra in levels:
        noisy = clean.astype(np.float32)
        if extra > 0:
            w = rng.standard_normal(noisy.shape, dtype=np.float32)
            w = ndi.gaussian_filter(w, (0, GRAIN_PX, GRAIN_PX))
            w *= extra / float(w.std())
            noisy += w
        info = np.iinfo(clean.dtype) if clean.dtype.kind in "iu" else None
        ph.ct.array[...] = (
            np.clip(np.round(noisy), info.min, info.max).astype(clean.dtype) if info else noisy
        )
        t0 = time.perf_counter()
        result = seg.segment(ph.ct)
        scores = case_scores(result.labels, truth)
        native, grid = _noise(seg, ph.ct.array, ph.ct.spacing, truth > 0)
        row = {
            "seed": seed,
            "added_sd_hu": extra,
            "phantom_noise_sd_hu": round(float(ph.info.get("noise_sd", float("nan"))), 1),
            "spacing": [round(float(s), 3) for s in ph.ct.spacing],
            "native_sd_hu": round(native, 1),
            "model_grid_sd_hu": round(grid, 1),
            "liver_dice": round(float(scores["liver_dice"]), 4),
            "tumor_dice": _round(scores["tumor_dice"]),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps(row), flush=True)
        out.append(row)
    ph.ct.array[...] = clean
    return out


def _robust_sd(diffs: np.ndarray) -> float:
    """The SD of one voxel's noise from differences of neighbours (MAD, / √2)."""
    if diffs.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2))


def _noise(seg, ct: np.ndarray, spacing, liver: np.ndarray) -> tuple[float, float]:
    from scipy import ndimage as ndi

    from napari_livertumor.models import preprocess as pp
    from napari_livertumor.pipeline import _bbox

    meta = seg.tumor.metadata
    box = _bbox(liver, margin_mm=meta.roi_margin_mm, spacing=spacing)
    sub = ct[box].astype(np.float32)
    inner = ndi.binary_erosion(liver[box], iterations=2)
    both = inner[:, :, 1:] & inner[:, :, :-1]
    native = _robust_sd((sub[:, :, 1:] - sub[:, :, :-1])[both])
    low = pp.stage_shape(sub.shape, spacing, meta.target_spacing)
    lo, hi = -1000.0, 1000.0  # wide: no clipping of the noise
    x = pp.prepare_stage_input(sub, low, (lo, hi)).numpy() * (hi - lo) + lo
    inside = ndi.binary_erosion(pp.resample(liver[box].astype(np.float32), low) > 0.999)
    ests = []
    for axis in (1, 2):
        a, m = np.moveaxis(x, axis, -1), np.moveaxis(inside, axis, -1)
        ests.append(_robust_sd((a[..., 1:] - a[..., :-1])[m[..., 1:] & m[..., :-1]]))
    return native, float(np.mean(ests))


def _round(v):
    v = float(v)
    return None if np.isnan(v) else round(v, 4)


def _summarize(rows: list[dict], levels: list[float]) -> dict:
    base = {r["seed"]: r for r in rows if r["added_sd_hu"] == 0}
    per_level = []
    for level in levels:
        at = [r for r in rows if r["added_sd_hu"] == level]
        tumor = [(r["tumor_dice"], base[r["seed"]]["tumor_dice"]) for r in at]
        tumor = [(t, b) for t, b in tumor if t is not None and b is not None]
        per_level.append(
            {
                "added_sd_hu": level,
                "cases": len(at),
                "native_sd_hu": round(statistics.median(r["native_sd_hu"] for r in at), 1),
                "model_grid_sd_hu": round(statistics.median(r["model_grid_sd_hu"] for r in at), 1),
                "liver_dice": round(statistics.mean(r["liver_dice"] for r in at), 4),
                "liver_change": round(
                    statistics.mean(r["liver_dice"] - base[r["seed"]]["liver_dice"] for r in at), 4
                ),
                "tumor_dice": round(statistics.mean(t for t, _ in tumor), 4) if tumor else None,
                "tumor_change": round(statistics.mean(t - b for t, b in tumor), 4)
                if tumor
                else None,
                "tumor_worst_change": round(min(t - b for t, b in tumor), 4) if tumor else None,
                "tumor_n": len(tumor),
            }
        )
    return {"levels": per_level}


def _markdown(r: dict) -> str:
    lines = [
        "# Dice with more image noise (the same phantoms, noise added)",
        "",
        f"Models: liver `{r['models']['liver']}`, tumor `{r['models']['tumor']}`; {r['date_utc']} UTC; {len(r['seeds'])} `full` phantoms "
        f"(seeds {r['seeds'][0]}–{r['seeds'][-1]}, none from the training cohort); noise "
        f"added: white, smoothed in-plane over {r['grain_px']} px, each slice its own. Noise "
        "of the liver, median over cases: on the CT's grid (robust SD from neighbouring voxels; "
        "it under-reads grainy noise) and on the tumor model's grid (2.5 × 2 × 2 mm, the CT "
        "averaged as the pipeline does; liver texture sets a floor of about 5 HU).",
        "",
        "| added SD (HU) | liver noise, CT grid | liver noise, model grid | liver Dice (change) "
        "| tumor Dice (change; worst case's) |",
        "|---|---|---|---|---|",
    ]
    for lv in r["levels"]:
        tumor = (
            "-"
            if lv["tumor_dice"] is None
            else f"{lv['tumor_dice']:.3f} ({lv['tumor_change']:+.3f}; "
            f"{lv['tumor_worst_change']:+.3f}) n={lv['tumor_n']}"
        )
        lines.append(
            f"| {lv['added_sd_hu']:g} | {lv['native_sd_hu']:.1f} | {lv['model_grid_sd_hu']:.1f} "
            f"| {lv['liver_dice']:.3f} ({lv['liver_change']:+.3f}) | {tumor} |"
        )
    lines += ["", "Reproduce: `python benchmarks/bench_noise.py`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
