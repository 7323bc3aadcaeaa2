"""Choose the tumor model's lesion filter (and re-check its logit shift) on development phantoms.

    python scripts/calibrate_lesions.py --models runs/mine --cases 48 [--write]

Runs both networks once per development phantom (seeds from 9 000 000, the range of
``scripts/calibrate_shift.py``, checked against the training cohort and the benchmarks' seeds)
and scores the tumor post-processing for every combination of logit shift (added to the model's
current one), ``min_peak`` (drop tumor components whose most confident voxel is below this
margin) and ``min_ml`` (drop components under this volume), by mean tumor Dice and by lesions
found and false (``training.calibrate.choose_lesion_filter`` picks: near-best Dice, no fewer
lesions found than now, fewest false ones). The phantoms are also scored in two halves (even
and odd seeds) so the printout shows whether the choice holds on both. ``--write`` stores ``lesion_filter`` (and the shift) in the tumor model's
``metadata.json`` with the scores under ``metrics.lesion_calibration``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibrate_shift import (  # noqa: E402
    _cases,
    add_dev_arguments,
    dev_seeds,
    load_pair,
    models_root,
    seed_check_note,
    with_run_manifests,
)


def _rounded(value: float) -> float | None:
    """A mean Dice for the JSON written: None where it is undefined (no tumor in any case)."""
    return None if math.isnan(value) else round(value, 4)


def _shown(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:.4f}"


def main(argv=None) -> int:
    from napari_livertumor.pipeline import InferenceConfig, Segmenter
    from napari_livertumor.training.calibrate import (
        choose_lesion_filter,
        score_lesion_filters,
        write_lesion_filter,
    )

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dev_arguments(ap, cases=48, manifests=["data/synth3/synth_manifest.json"])
    ap.add_argument("--shifts", type=float, nargs="+", default=[-0.5, 0.0, 0.5, 1.0, 1.5])
    ap.add_argument("--peaks", type=float, nargs="+", default=[0, 1, 2, 3, 4, 5, 6])
    ap.add_argument("--min-ml", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    ap.add_argument("--dice-tolerance", type=float, default=0.01)
    ap.add_argument("--scores", default=None, help="choose from a saved score file, no rerun")
    ap.add_argument("--save", default=None, help="JSON with every score (default: in --cache)")
    ap.add_argument("--write", action="store_true", help="write the choice into the tumor model")
    args = ap.parse_args(argv)

    root = models_root(ap, args)
    args.manifest = with_run_manifests(args.manifest, root)
    seeds = dev_seeds(args.seed_base, args.cases, args.manifest)
    models = load_pair(root, "calibrate_lesions")
    seg = Segmenter(InferenceConfig(device="cpu"), models=models)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)

    def show(i, row):
        print(f"  case {seeds[i]}: best of the grid {max(row, default=math.nan):.3f}", flush=True)

    tumor_meta = models["tumor"].metadata
    state = {
        "logit_bias": list(tumor_meta.logit_bias or []),
        "lesion_filter": tumor_meta.lesion_filter,
    }
    cur_ml, cur_peak = seg.lesion_filter()
    current = [0.0, cur_peak, cur_ml]  # [shift, min_peak, min_ml] as it is now
    if args.scores:
        res = json.loads(Path(args.scores).read_text())
        seeds = res["seeds"]
        # shifts are relative to the model's threshold when scored: it must not have moved since
        if res.get("model_state", state) != state:
            raise SystemExit(
                f"calibrate_lesions: {args.scores} was scored with the tumor model at "
                f"{res['model_state']}; {root / 'tumor'} is now at {state}"
            )
        if current not in res["combos"]:
            raise SystemExit(
                f"calibrate_lesions: the current setting {current} (shift, min_peak, min_ml) "
                f"is not in the grid of {args.scores}; score again with it in the grid"
            )
    else:
        # the choice is measured against the current setting: it must be in the grid, so add
        # it (before scoring) rather than find out after every phantom has been scored
        for opt, dest, value in (
            ("--shifts", "shifts", 0.0),
            ("--peaks", "peaks", cur_peak),
            ("--min-ml", "min_ml", cur_ml),
        ):
            if value not in getattr(args, dest):
                setattr(args, dest, sorted([*getattr(args, dest), value]))
                print(
                    f"note: added the current setting's {value:g} to {opt}: {getattr(args, dest)}"
                )
        res = score_lesion_filters(
            seg, _cases(seeds, cache), args.shifts, args.peaks, args.min_ml, progress=show
        )
        res["model_state"] = state
        not_checked = seed_check_note(args.manifest)
        if not_checked:
            res["training_seeds_not_checked"] = not_checked
        out = Path(args.save) if args.save else cache / "lesion_calibration.json"
        out.write_text(json.dumps({"seeds": seeds, **res}, indent=1))
        print("saved", out)
    combos, per_case = res["combos"], res["per_case"]
    comps = res["components"]

    def mean_of(rows, j):
        vals = [r[j] for r in rows if not math.isnan(r[j])]
        return statistics.fmean(vals) if vals else math.nan

    def summary(j):
        false = statistics.fmean(c[j][1] for c in comps)
        found = sum(c[j][2] for c in comps)
        true = sum(c[j][3] for c in comps)
        return {
            "mean_dice": _rounded(res["mean"][j]),
            # None where no seed of the half has a defined Dice (NaN is no JSON)
            "mean_dice_even_seeds": _rounded(mean_of(per_case[0::2], j)),
            "mean_dice_odd_seeds": _rounded(mean_of(per_case[1::2], j)),
            "lesions_found": f"{found}/{true}",
            "false_lesions_per_case": round(false, 2),
        }

    j_cur = combos.index(current)
    j_best = choose_lesion_filter(res, current, args.dice_tolerance)
    print(f"{len(seeds)} development phantoms, seeds {seeds[0]}-{seeds[-1]}")
    print("shift  peak  min_ml   mean    even    odd   found  false/case")
    for j in range(len(combos)):
        c, s = combos[j], summary(j)
        tag = "   <- current" if j == j_cur else ("   <- chosen" if j == j_best else "")
        print(
            f"{c[0]:+5.1f} {c[1]:5.1f} {c[2]:7.2f} {_shown(s['mean_dice'])} "
            f"{_shown(s['mean_dice_even_seeds'])} {_shown(s['mean_dice_odd_seeds'])} "
            f"{s['lesions_found']:>7} {s['false_lesions_per_case']:6.2f}{tag}"
        )
    best = combos[j_best]
    print(f"chosen: shift {best[0]:+g}, min_peak {best[1]:g}, min_ml {best[2]:g}")
    if args.write:
        record = {
            "chosen": summary(j_best),
            "before": summary(j_cur),
            "rule": (
                f"within {args.dice_tolerance} of the best mean Dice and finding at least as "
                "many true lesions as before: fewest false lesions per case, then most found, "
                "then the simplest (training.calibrate.choose_lesion_filter)"
            ),
            "measured_on": (
                f"whole pipeline (CPU) on {len(seeds)} development phantoms "
                f"(generate_phantom(seed, 'full'), seeds {seeds[0]}-{seeds[-1]}); mean tumor "
                f"Dice per case; grid: shifts {sorted({c[0] for c in combos})} added to the "
                f"previous shift, min_peak {sorted({c[1] for c in combos})}, "
                f"min_ml {sorted({c[2] for c in combos})}, Dice tolerance "
                f"{args.dice_tolerance}; scripts/calibrate_lesions.py"
                + (
                    f"; {res['training_seeds_not_checked']}"
                    if res.get("training_seeds_not_checked")
                    else ""
                )
            ),
        }
        print("wrote", write_lesion_filter(root / "tumor", best, record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
