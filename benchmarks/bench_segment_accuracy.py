"""Accuracy of the shipped (or given) models on synthetic patients never used in training.

Two sets, generated here from seeds outside the training cohort (checked against the cohort's
``synth_manifest.json`` when it is found):

* ``fresh``: ``full`` phantoms drawn exactly like the training cohort (new seeds).
* ``shifted``: deliberately different acquisitions: in-plane spacing 0.95–1.0 mm (training:
  0.6–0.9), 5 mm or 1.5 mm slices (training draws 5 mm too, not 1.5), noise 25–35 HU (31–44
  on the 1.5 mm slices; training 6–30 HU), and only non-contrast / arterial phases.

Each case runs through :class:`~napari_livertumor.pipeline.Segmenter` (one model load), once
without and once with the default active-contour refinement (the CLI's default), and is scored
with the evaluation's metrics (``training.metrics.case_scores``: liver = labels ≥ 1 incl. tumor
and portal vein, tumor = label 2; Dice is NaN when prediction and truth are both empty and
left out of the mean).

Usage::

    python benchmarks/bench_segment_accuracy.py [--fresh 16] [--shifted 8] [--models DIR]

Means come with a 95 % bootstrap interval over cases (2000 resamples): with a handful of
patients one tumor-free liver with a false positive moves the tumor mean by 1/n.

Writes ``benchmarks/results/segment_accuracy.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # (a sibling module)
from _outputs import out_paths as _out_paths  # noqa: E402

RESULTS = HERE / "results"
FRESH_BASE = 7_000_000
SHIFTED_BASE = 8_000_000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fresh", type=int, default=16)
    ap.add_argument("--shifted", type=int, default=8)
    ap.add_argument("--models", help="folder with liver/ and tumor/ (default: shipped models)")
    ap.add_argument(
        "--manifest",
        nargs="+",
        default=["data/synth2/synth_manifest.json", "data/synth3/synth_manifest.json"],
        help="training cohorts' manifests (those found are checked)",
    )
    ap.add_argument(
        "--tta",
        default="none",
        choices=["none", "inplane", "all"],
        help="the tumor stage's mirrored passes (InferenceConfig.tta; default: the pipeline's)",
    )
    ap.add_argument(
        "--out",
        default=str(RESULTS / "segment_accuracy"),
        help="report name: NAME.json and NAME.md (a name ending in .json: the .md beside it)",
    )
    ap.add_argument(
        "--check-seeds",
        action="store_true",
        help="only check the saved report's seeds against the training cohort and record it "
        "(no case is run again)",
    )
    ap.add_argument(
        "--write-cards",
        action="store_true",
        help="draft a model card beside each evaluated model from its metadata and these "
        "scores: MODEL_CARD.md where there is none, else MODEL_CARD.draft.md (a card written "
        "by hand is never replaced)",
    )
    args = ap.parse_args(argv)
    if args.check_seeds:
        return _check_saved_seeds(args)

    from napari_livertumor.models import default_model_dir
    from napari_livertumor.pipeline import InferenceConfig, Segmenter

    if args.models:
        cfg = InferenceConfig.from_models_dir(args.models, device="cpu", tta=args.tta)
    else:
        cfg = InferenceConfig(
            liver_model=default_model_dir("liver"),
            tumor_model=default_model_dir("tumor"),
            device="cpu",
            tta=args.tta,
        )
    seg = Segmenter(cfg)
    models = {"liver": str(seg.liver.path), "tumor": str(seg.tumor.path)}
    used, not_checked = _training_seeds(args.manifest, models)
    report = {
        "models": models,
        "training_seeds_checked": len(used) if used else None,
        **({"training_seeds_note": not_checked} if not_checked else {}),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "tumor_tta": args.tta,
        "sets": {},
    }
    for name, n, base in (
        ("fresh", args.fresh, FRESH_BASE),
        ("shifted", args.shifted, SHIFTED_BASE),
    ):
        rows = []
        for i in range(n):
            seed = base + i
            if seed in used:
                raise SystemExit(f"seed {seed} was used in training; pick another base")
            rows.append(_case(seg, name, seed, i))
        report["sets"][name] = {"cases": rows, "summary": _summarize(rows)}
        print(name, json.dumps(report["sets"][name]["summary"], indent=1))
    out_json, out_md = _out_paths(args.out)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=2, default=_nan_safe))
    out_md.write_text(_markdown(report))
    print("saved", out_json, out_md)
    if args.write_cards:
        for path in write_cards(report, seg):
            print("wrote", path)
    return 0


def _case(seg, set_name: str, seed: int, i: int) -> dict:
    from napari_livertumor.pipeline import refine_labels
    from napari_livertumor.synth import generate_phantom
    from napari_livertumor.training.metrics import (
        case_scores,
        case_surface_scores,
        hcc_to_output,
        lesion_conspicuity,
        lesion_detection,
    )

    if set_name == "fresh":
        ph = generate_phantom(seed, "full")
    else:
        rng = np.random.default_rng(seed)
        ph = generate_phantom(
            seed,
            "full",
            phase=("non-contrast", "arterial")[i % 2],
            pixel_spacing=float(rng.uniform(0.95, 1.0)),
            slice_thickness=(5.0, 1.5)[(i // 2) % 2],
            noise_sd=float(rng.uniform(25, 35)),
        )
    truth = hcc_to_output(ph.labels)
    t0 = time.perf_counter()
    result = seg.segment(ph.ct)
    t_seg = time.perf_counter() - t0
    row = {
        "seed": seed,
        "shape": list(ph.ct.shape),
        "spacing": [round(s, 3) for s in ph.ct.spacing],
        "phase": ph.info.get("phase"),
        "true_tumor_ml": round(float((truth == 2).sum()) * np.prod(ph.ct.spacing) / 1000, 2),
        "seconds": round(t_seg, 2),
        "model": _pick(case_scores(result.labels, truth)),
        # HD95, ASSD (mm) and surface Dice within 2 mm per class, as `livertumor evaluate`
        "boundary": case_surface_scores(result.labels, truth, ph.ct.spacing),
        "lesions": lesion_detection(result.labels == 2, truth == 2, ph.ct.spacing),
        "lesion_cnr": lesion_conspicuity(ph.ct.array, truth, ph.ct.spacing, result.labels == 2),
    }
    labels = result.labels.copy()
    t0 = time.perf_counter()
    refine_labels(ph.ct.array, labels, ph.ct.spacing)
    row["refine_seconds"] = round(time.perf_counter() - t0, 2)
    row["refined"] = _pick(case_scores(labels, truth))
    print(
        f"{set_name} seed {seed}: liver Dice {row['model']['liver_dice']:.3f}, tumor Dice "
        f"{row['model']['tumor_dice']:.3f} -> refined {row['refined']['tumor_dice']:.3f} "
        f"({t_seg:.1f} s)",
        flush=True,
    )
    return row


def _pick(scores: dict) -> dict:
    keys = ("liver_dice", "liver_sensitivity", "tumor_dice", "tumor_sensitivity", "tumor_iou")
    return {k: float(scores[k]) for k in keys}


def _summarize(rows: list[dict]) -> dict:
    from napari_livertumor.training.metrics import conspicuity_summary, lesion_summary

    out = {"n_cases": len(rows)}
    for variant in ("model", "refined"):
        for k in ("liver_dice", "tumor_dice", "tumor_sensitivity"):
            vals = [r[variant][k] for r in rows if not math.isnan(r[variant][k])]
            out[f"{variant}_{k}_mean"] = round(statistics.mean(vals), 4) if vals else None
            out[f"{variant}_{k}_n"] = len(vals)
            out[f"{variant}_{k}_ci95"] = _bootstrap_ci(vals)
    for k in BOUNDARY_KEYS:  # distances are skewed: the median beside the mean
        vals = [r["boundary"][k] for r in rows if "boundary" in r]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        out[f"model_{k}_mean"] = round(statistics.mean(vals), 4) if vals else None
        out[f"model_{k}_median"] = round(statistics.median(vals), 4) if vals else None
        out[f"model_{k}_n"] = len(vals)
    les = lesion_summary([r["lesions"] for r in rows if "lesions" in r])
    out["lesion_recall"] = None if les["lesion_recall"] is None else round(les["lesion_recall"], 4)
    out["lesions_found"], out["lesions_true"] = les["lesions_found"], les["lesions_true"]
    out["false_lesions_per_case"] = les["false_lesions_per_case"]
    out["tumor_free_cases_with_false_lesion"] = les["cases_without_tumor_with_false_lesion"]
    out["tumor_free_cases"] = les["cases_without_tumor"]
    out["median_seconds"] = statistics.median(r["seconds"] for r in rows) if rows else None
    # how visible the lesions were: found per CNR band, and the tumor Dice of the patients whose
    # largest lesion a reader could see on this phase (a breakdown; the bar is on every case)
    lesions = [les for r in rows for les in r.get("lesion_cnr", [])]
    if lesions:
        out["lesions_by_cnr"] = conspicuity_summary(lesions)
        visible = [
            r["model"]["tumor_dice"]
            for r in rows
            if _main_cnr(r) is not None
            and _main_cnr(r) >= VISIBLE_CNR
            and not math.isnan(r["model"]["tumor_dice"])
        ]
        out["visible_main_lesion_cases"] = len(visible)
        out["visible_main_lesion_tumor_dice_mean"] = (
            round(statistics.mean(visible), 4) if visible else None
        )
    return out


#: the boundary scores summarised (training.metrics.case_surface_scores' columns)
BOUNDARY_KEYS = tuple(
    f"{cls}_{m}" for cls in ("liver", "tumor") for m in ("hd95_mm", "assd_mm", "nsd")
)

#: a largest lesion at this CNR or more counts as visible in the breakdown
VISIBLE_CNR = 0.5


def _main_cnr(row: dict):
    les = row.get("lesion_cnr") or []
    return les[0].get("cnr") if les else None


def _bootstrap_ci(vals: list[float], n: int = 2000, seed: int = 0) -> list[float] | None:
    """95 % percentile bootstrap interval of the mean over cases."""
    if len(vals) < 2:
        return None
    rng = np.random.default_rng(seed)
    a = np.asarray(vals, dtype=float)
    means = a[rng.integers(0, len(a), size=(n, len(a)))].mean(1)
    return [round(float(v), 4) for v in np.percentile(means, [2.5, 97.5])]


def _nan_safe(o):
    return None if isinstance(o, float) and math.isnan(o) else str(o)


def _markdown(r: dict) -> str:
    lines = [
        "# Accuracy of the default models on held-out synthetic patients",
        "",
        f"Models: liver `{r['models']['liver']}`, tumor `{r['models']['tumor']}`; "
        f"{r['date_utc']} UTC. {_seed_line(r)} "
        f"Tumor stage's mirrored passes: `{r.get('tumor_tta', 'none')}`. "
        "Means per case, with a 95 % bootstrap interval over cases.",
        "",
        "| set | cases | liver Dice | tumor Dice (model) | tumor Dice (+ refinement) "
        "| tumor sensitivity | lesions found | false lesions per case |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in r["sets"].items():
        m = s["summary"]
        lines.append(
            f"| {name} | {m['n_cases']} | {_f(m['model_liver_dice_mean'])} "
            f"{_ci(m.get('model_liver_dice_ci95'))} | "
            f"{_f(m['model_tumor_dice_mean'])} {_ci(m.get('model_tumor_dice_ci95'))} "
            f"(n={m['model_tumor_dice_n']}) | "
            f"{_f(m['refined_tumor_dice_mean'])} | {_f(m['model_tumor_sensitivity_mean'])} | "
            f"{_lesions(m)} | {_f(m.get('false_lesions_per_case'))} |"
        )
    lines += [
        "",
        "Lesions are connected components of at least 0.1 mL; a true lesion is found when at "
        "least 10 % of it is predicted tumor, a predicted one is false when under 10 % of it is "
        "true tumor (`training.metrics.lesion_detection`).",
        "",
    ]
    lines += _boundary_lines(r)
    lines += _conspicuity_lines(r)
    lines += [
        "Per case (CNR: the largest lesion's):",
        "",
        "| set | seed | shape | spacing | phase | tumor mL | CNR | liver Dice | tumor Dice "
        "| refined | lesions found | false lesions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in r["sets"].items():
        for c in s["cases"]:
            lines.append(
                f"| {name} | {c['seed']} | {c['shape']} | {c['spacing']} | {c['phase']} | "
                f"{c['true_tumor_ml']} | {_cnr(_main_cnr(c))} | "
                f"{_f(c['model']['liver_dice'])} | "
                f"{_f(c['model']['tumor_dice'])} | {_f(c['refined']['tumor_dice'])} | "
                f"{_case_lesions(c)} |"
            )
    lines += ["", "Reproduce: `python benchmarks/bench_segment_accuracy.py`", ""]
    return "\n".join(lines)


def _boundary_lines(r: dict) -> list[str]:
    """The model output's boundary scores per set: mean (median) over the cases where each is
    defined (a distance needs the class in both masks)."""
    sets = [(n, s["summary"]) for n, s in r["sets"].items() if "model_liver_nsd_n" in s["summary"]]
    if not sets:
        return []
    lines = [
        "Boundaries of the model's output (`training.metrics.surface_scores`, as `livertumor "
        "evaluate`): mean (median) per case; HD95 and ASSD in mm, NSD the share of boundary "
        "voxels within 2 mm of the other boundary; n: cases where it is defined.",
        "",
        "| set | liver HD95 | liver ASSD | liver NSD | tumor HD95 | tumor ASSD | tumor NSD |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in sets:
        cells = []
        for k in BOUNDARY_KEYS:
            mean, median = m.get(f"model_{k}_mean"), m.get(f"model_{k}_median")
            digits = 3 if k.endswith("nsd") else 2
            cells.append(
                "–"
                if mean is None
                else f"{mean:.{digits}f} ({median:.{digits}f}) n={m[f'model_{k}_n']}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _cnr(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _conspicuity_lines(r: dict) -> list[str]:
    """How visible the true lesions were, and what the model found of each kind."""
    sets = [(n, s["summary"]) for n, s in r["sets"].items() if s["summary"].get("lesions_by_cnr")]
    if not sets:
        return []
    bands = sets[0][1]["lesions_by_cnr"]
    head = " | ".join(
        f"CNR ≥ {b['cnr_from']:g}"
        if b["cnr_to"] is None or not math.isfinite(b["cnr_to"])
        else f"CNR {b['cnr_from']:g}–{b['cnr_to']:g}"
        for b in bands
    )
    lines = [
        "How visible the lesions were: each true lesion's contrast-to-noise ratio (CNR), its "
        "mean HU minus that of the liver 3–8 mm around it, over the two regions' pooled standard "
        "deviation (noise and texture; `training.metrics.lesion_conspicuity`). Under about 0.5 a lesion "
        "is hard for a reader to see on that phase too (iso-attenuating, or hypo-attenuating in "
        "a fatty liver). Lesions found per band, and the mean tumor Dice of the patients whose "
        f"largest lesion has a CNR of at least {VISIBLE_CNR:g} (a breakdown: the bar is on "
        "every patient):",
        "",
        f"| set | {head} | tumor Dice, largest lesion CNR ≥ {VISIBLE_CNR:g} |",
        "|---|" + "---|" * len(bands) + "---|",
    ]
    for name, m in sets:
        cells = " | ".join(f"{b['found']}/{b['lesions']}" for b in m["lesions_by_cnr"])
        lines.append(
            f"| {name} | {cells} | {_f(m.get('visible_main_lesion_tumor_dice_mean'))} "
            f"(n={m.get('visible_main_lesion_cases')}) |"
        )
    return lines + [""]


#: the shipped models' training cohorts as their model cards give them (``synth --seed 1``
#: with 60, then 160 cases: the first 60 are the same), checked when no manifest is found
SHIPPED_COHORT = (1, 160)


def _training_seeds(manifests, models: dict) -> tuple[set[int], str | None]:
    """The training cohorts' phantom seeds: from their manifests; else, for the shipped models
    (``models``: stage → folder), their cohort rebuilt from its recipe, said in the note. The
    note is None when checked against manifests; with neither, no seed is known (the note says
    nothing was checked)."""
    from napari_livertumor.models import default_model_dir
    from napari_livertumor.synth import manifest_seeds
    from napari_livertumor.synth.cohort import case_seed

    used, not_checked = manifest_seeds(manifests)
    if not not_checked:
        return used, None
    shipped = all(
        Path(models.get(stage, "")).resolve() == Path(default_model_dir(stage)).resolve()
        for stage in ("liver", "tumor")
    )
    if not shipped:  # another model's cohort: unknown here
        print(f"warning: {not_checked}", file=sys.stderr)
        return set(), not_checked
    seed, n = SHIPPED_COHORT
    used = {case_seed(seed, i) for i in range(n)}
    note = (
        f"{not_checked.removeprefix('training seeds not checked: ')}; checked against the "
        f"seeds of the shipped models' cohort as their model cards give it, synth --cases {n} "
        f"--seed {seed}"
    )
    print(f"note: {note}", file=sys.stderr)
    return used, note


def _check_saved_seeds(args) -> int:
    """``--check-seeds``: the saved report's cases checked against the training seeds, and the
    result recorded in it (its figures untouched)."""
    out_json, out_md = _out_paths(args.out)
    if not out_json.is_file():
        raise SystemExit(f"--check-seeds checks a saved report; none at {out_json}")
    report = json.loads(out_json.read_text())
    used, note = _training_seeds(args.manifest, report.get("models", {}))
    if not used:
        raise SystemExit(f"no training seeds to check against: {note}")
    seeds = [c["seed"] for s in report["sets"].values() for c in s["cases"]]
    clash = sorted(set(seeds) & used)
    if clash:
        raise SystemExit(f"seeds {clash} of the saved report were used in training")
    report["training_seeds_checked"] = len(used)
    report["training_seeds_note"] = note or "checked against the cohorts' manifests"
    report["training_seeds_checked_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    out_json.write_text(json.dumps(report, indent=2, default=_nan_safe))
    # (the .md may carry notes written since: not rewritten; its seed sentence is printed)
    print(f"{len(seeds)} seeds checked against {len(used)} training seeds: none shared")
    print(f"recorded in {out_json}; for {out_md.name}: {_seed_line(report)}")
    return 0


def _seed_line(r: dict) -> str:
    if r.get("training_seeds_checked") is None:
        note = r.get("training_seeds_note", "training seeds not checked")
        return note[:1].upper() + note[1:] + "."
    how = r.get("training_seeds_note")
    return f"Seeds checked against {r['training_seeds_checked']} training seeds" + (
        f" ({how})." if how else "."
    )


def _lesions(m: dict) -> str:
    if m.get("lesion_recall") is None:
        return "-"
    return f"{m['lesions_found']}/{m['lesions_true']} ({m['lesion_recall']:.0%})"


def _case_lesions(c: dict) -> str:
    les = c.get("lesions")
    if not les:
        return "- | -"
    return f"{les['lesions_found']}/{les['lesions_true']} | {les['lesions_false']}"


# --------------------------------------------------------------------------- model cards
def write_cards(report: dict, seg) -> list[Path]:
    """MODEL_CARD.md for each stage's model folder, from its metadata and the measured scores."""
    paths = []
    for stage, loaded in (("liver", seg.liver), ("tumor", seg.tumor)):
        meta = loaded.metadata
        tr = meta.training or {}
        cfg = tr.get("config", {})
        folder = Path(loaded.path)
        split = {}
        if (folder / "split.json").is_file():
            split = json.loads((folder / "split.json").read_text())
        n_params = sum(p.numel() for p in loaded.network.parameters())
        size_mb = (folder / "model.safetensors").stat().st_size / 2**20
        key = "liver_dice" if stage == "liver" else "tumor_dice"
        bar = 0.95 if stage == "liver" else 0.75
        rows = []
        for name, s in report["sets"].items():
            m = s["summary"]
            model_v = m[f"model_{key}_mean"]
            line = f"| {name} | {m['n_cases']} | {_f(model_v)} |"
            if stage == "tumor":
                line += (
                    f" {_f(m['refined_tumor_dice_mean'])} | {_f(m['model_tumor_sensitivity_mean'])}"
                    f" | {_lesions(m)} | {_f(m.get('false_lesions_per_case'))} |"
                )
            rows.append(line)
        head = "| set | cases | mean Dice per case |"
        sep = "|---|---|---|"
        if stage == "tumor":
            head += (
                " with default refinement | sensitivity | lesions found | false lesions per case |"
            )
            sep += "---|---|---|---|"
        fresh = report["sets"].get("fresh", {}).get("summary", {})
        met = fresh.get(f"model_{key}_mean")
        verdict = (
            "not measured"
            if met is None
            else ("met" if met >= bar else f"**not met** ({met:.4f} < {bar})")
        )
        hist = tr.get("history") or []
        resumed = ""
        if cfg.get("resume"):
            resumed = (
                "The shipped run was then continued (same data, split and cache):\n\n```\n"
                f"OMP_NUM_THREADS=2 livertumor train --data {cfg.get('data')} --out resources/models "
                f"--stage {stage} --config configs/default_cpu.json --resume "
                f"--epochs {cfg.get('epochs')} --max-minutes {cfg.get('max_minutes')}\n```\n\n"
            )
        fg_name = "liver" if stage == "liver" else "tumor"
        if meta.logit_bias:
            cal = (meta.metrics or {}).get("pipeline_calibration")
            if cal:
                curve = ", ".join(
                    f"{g:+g}: {m}" for g, m in zip(cal["grid"], cal["mean_dice"], strict=True)
                )
                if cal.get("chosen_by"):
                    bias_line = (
                        f"the {fg_name} logit is shifted by {meta.logit_bias[-1]:+.1f} before "
                        f"the argmax (`logit_bias` in `metadata.json`): {cal['chosen_by']} "
                        f"(`scripts/calibrate_shift.py`). Mean Dice per shift through the whole "
                        f"pipeline on {cal['n_cases']} development phantoms: {curve}"
                    )
                else:
                    bias_line = (
                        f"the {fg_name} logit is shifted by {meta.logit_bias[-1]:+.1f} before "
                        "the argmax (`logit_bias` in `metadata.json`), the shift with the best "
                        f"mean Dice through the whole pipeline on {cal['n_cases']} development "
                        f"phantoms (`scripts/calibrate_shift.py`; training's validation had "
                        f"chosen {(meta.metrics or {}).get('logit_bias')}). Mean Dice per "
                        f"shift: {curve}"
                    )
                other = cal.get("foreign_phantoms")
                if other:
                    bias_line += "; on {} phantoms built by other code ({}): {}".format(
                        other["n_cases"],
                        other["measured_on"],
                        ", ".join(
                            f"{g:+g}: {m}"
                            for g, m in zip(cal["grid"], other["mean_dice"], strict=True)
                        ),
                    )
            else:
                bias_line = (
                    f"the {fg_name} logit is shifted by {meta.logit_bias[-1]:+.1f} before the "
                    "argmax (`logit_bias` in `metadata.json`; how it was chosen is not recorded "
                    "there)"
                )
        else:
            bias_line = "plain argmax (no logit shift chosen on validation)"
        aug_line = ""
        if stage == "tumor" and cfg.get("aug_mask_dilate_mm"):
            aug_line = (
                f"Mask growth: with probability {cfg.get('aug_mask_prob')} a patch was masked with "
                f"the true liver grown by up to {cfg.get('aug_mask_dilate_mm')} mm (inference masks "
                "with the predicted liver).\n"
            )
        text = f"""# Model card: default {stage} model

**Trained on synthetic phantoms only. Not validated on real CT. Not a medical device.**

| | |
|---|---|
| Stage | {stage} ({"global view: whole CT, liver vs background" if stage == "liver" else "local view: liver ROI, background / liver / tumor"}) |
| Network | MONAI SegResNetVAE trained, SegResNet trunk shipped: init_filters {meta.network.init_filters}, blocks_down {list(meta.network.blocks_down)}, blocks_up {list(meta.network.blocks_up)}, {meta.network.norm} norm; {n_params / 1e6:.2f} M parameters; `model.safetensors` {size_mb:.1f} MiB ({"float16" if cfg.get("save_half") else "float32"} storage) |
| Input | CT resampled to {list(meta.target_spacing)} mm (dz, dy, dx), HU window {list(meta.hu_window)} → [0, 1]{"; liver bounding box + " + str(meta.roi_margin_mm) + " mm, outside the liver set to " + str(meta.outside_hu) + " HU" if stage == "tumor" and meta.mask_outside_liver else ""} |
| Training window | {list(meta.roi_size)} voxels |
| Labels | {meta.label_map} |

## Data

A synthetic HCC-TACE-Seg-like cohort generated by `livertumor synth` (`napari_livertumor.synth`,
procedural abdominal CT phantoms with liver, tumors, portal vein, aorta and surrounding anatomy),
read from `{cfg.get("data", "?")}`. Patient split (seed {split.get("seed", "?")}):
{len(split.get("train", []))} training, {len(split.get("val", []))} validation,
{len(split.get("test", []))} test patients (`split.json` in this folder). No real patient data.

## Recipe (reproduce)

The default recipe (a draft: replace it with the commands this model was trained with):

```
livertumor synth -o {cfg.get("data", "data/synth")} --cases 60 --seed 1 --layout nifti --shape full
OMP_NUM_THREADS=2 livertumor train --data {cfg.get("data", "data/synth")} --out resources/models --stage both --config configs/default_cpu.json
python benchmarks/bench_segment_accuracy.py --write-cards   # the scores below
```

{resumed}(`docs/training.md` has the details; a run cut short can continue with `--resume`.) Trained
on {tr.get("device", "?")} ({tr.get("world_size", 1)} process): {tr.get("steps", "?")} steps in
{tr.get("minutes", "?")} min (budget {cfg.get("max_minutes", "?")} min), lr {cfg.get("lr", "?")},
batch {cfg.get("batch_size", "?")},
loss Dice {cfg.get("dice_weight", "?")} (classes {cfg.get("dice_classes") or "all foreground"}) + Focal {cfg.get("focal_weight", "?")} (γ {cfg.get("focal_gamma", "?")}, class weights {cfg.get("class_weights") or "equal"}) + VAE {cfg.get("vae_weight", "?")}{" + clinical weak term λ=" + str(cfg.get("weak_lambda")) + " (" + str(cfg.get("weak_form")) + ")" if stage == "tumor" else ""}.
{aug_line}Validation during training (as recorded in `metadata.json`): `{json.dumps({k: v for k, v in meta.metrics.items() if k != "pipeline_calibration"})}`.
Decision threshold: {bias_line}.
{len(hist)} history entries are kept in `metadata.json`.

## Scores on held-out synthetic patients

Measured with `python benchmarks/bench_segment_accuracy.py --write-cards` on {report["date_utc"]} UTC:
the full two-stage pipeline (`napari_livertumor.pipeline.Segmenter`, CPU) on `full` phantoms from
seeds never used in training (fresh: drawn like the training cohort; shifted: in-plane spacing
0.95–1.0 mm, 5 or 1.5 mm slices, noise 25–35 HU (31–44 on the 1.5 mm slices; training 6–30 HU), non-contrast/arterial phases only). Dice per case,
then the mean (cases where prediction and truth are both empty are left out).

{head}
{sep}
{chr(10).join(rows)}

Issue bar for this stage on the fresh set (mean Dice ≥ {bar}): {verdict}.
Per-case numbers: `benchmarks/results/segment_accuracy.md`.

## Limits

- Trained and tested on synthetic phantoms only; real CT differs (texture, artefacts, anatomy,
  pathology). Expect lower scores on real scans until retrained on real labelled data
  (`configs/hcc_tace_gpu.json` is the recipe meant for HCC-TACE-Seg on a GPU).
- Small network trained for a few CPU-hours (see the totals above): a baseline and a demo of the workflow, not a clinical tool.
- {"Tumor output is only as good as the liver mask it is cropped to." if stage == "tumor" else "Livers cut by the field of view, very fatty or very small livers are under-represented."}
"""
        if met is not None and met < 0.5:
            text += (
                f"- **As shipped, this model is not usable for {stage} segmentation**: mean Dice "
                f"{met:.3f} on held-out phantoms (and {_f(meta.metrics.get('score'))} on "
                "validation during training); retrain with a longer budget (e.g. the GPU "
                "recipe) before relying on it.\n"
            )
        path = folder / "MODEL_CARD.md"
        if path.exists():  # a card written by hand (ours are) is kept: the draft goes beside it
            path = folder / "MODEL_CARD.draft.md"
        path.write_text(text)
        paths.append(path)
    return paths


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _f(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
