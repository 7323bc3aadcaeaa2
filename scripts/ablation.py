"""Ablation of the clinical weak term: tumor Dice with λ = 0 vs λ > 0, same seeds and budget.

Usage::

    OMP_NUM_THREADS=2 python scripts/ablation.py --data data/ablation --cases 24 --shape medium \
        --seeds 0 1 2 --steps 150 --lambdas 0 0.5 [--config configs/default_cpu.json]

Generates the cohort with ``livertumor synth`` (NIfTI layout) if ``--data`` is empty, then for
every seed trains the tumor stage once per λ with identical settings (same split, same patch
stream, same number of steps; no wall-time cap, so the budgets are equal), and scores each model
on the held-out test patients of the split: tumor Dice per patient at the stage grid, inside the
ground-truth liver ROI (this isolates the tumor model from the liver model). Prints a table and
writes ``<out>/ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/ablation")
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--cases", type=int, default=24)
    p.add_argument("--shape", default="medium", choices=["small", "medium", "full"])
    p.add_argument("--cohort-seed", type=int, default=7)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.5])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--config", default="configs/default_cpu.json")
    p.add_argument("--weak-form", default=None, choices=["mse", "interval"])
    p.add_argument(
        "--weak-anchor",
        default=None,
        choices=["patch", "patient"],
        help="default: the recipe's (configs/default_cpu.json: patient, as the ablation ran)",
    )
    p.add_argument("--cache-dir", default=None, help="preprocessing cache (default OUT/cache)")
    args = p.parse_args(argv)

    import torch

    from napari_livertumor.models import build_training_network
    from napari_livertumor.training import make_config, train
    from napari_livertumor.training.config import load_recipe
    from napari_livertumor.training.data import index_cases, load_or_prepare, preprocess_params
    from napari_livertumor.training.loop import STATE_FILE, resolve_device, resolve_split, validate

    data = Path(args.data)
    generated = not (data / "imagesTr").is_dir()
    if generated:
        from napari_livertumor.synth import make_cohort

        print(f"generating {args.cases} {args.shape} cases in {data} ...", flush=True)
        make_cohort(data, args.cases, seed=args.cohort_seed, layout="nifti", shape=args.shape)
    recipe = load_recipe(args.config)
    out = Path(args.out)
    results = []
    for seed in args.seeds:
        for lam in args.lambdas:
            cfg = make_config(
                "tumor",
                recipe,
                data=str(data),
                out=str(out / f"seed{seed}_lambda{lam:g}"),
                cache_dir=args.cache_dir or str(out / "cache"),
                seed=seed,
                weak_lambda=lam,
                weak_form=args.weak_form,
                weak_anchor=args.weak_anchor,
                epochs=1,
                steps_per_epoch=args.steps,
                val_every=10**6,
            ).with_updates(max_minutes=None)  # equal budgets: steps, not wall time
            t0 = time.perf_counter()
            reports = list(train(cfg))
            minutes = (time.perf_counter() - t0) / 60
            records = index_cases(cfg.data)
            split = resolve_split(cfg, [r.case_id for r in records])
            test = [r for r in records if r.case_id in set(split["test"])]
            prepared, _ = load_or_prepare(test, [preprocess_params(cfg)], cfg.cache_dir)
            state = torch.load(cfg.stage_dir / "last" / STATE_FILE, weights_only=True)
            net = build_training_network(cfg.network, cfg.roi_size)
            net.load_state_dict(state["weights"])
            per_case = []
            for case in prepared[0].values():
                s = validate(net, [case], cfg, resolve_device("cpu"))
                if s["val_dice_tumor"] is not None:
                    per_case.append(s["val_dice_tumor"])
            info = next(r for r in reports if r["event"] == "info")["weak"]
            row = {
                "seed": seed,
                "lambda": lam,
                "steps": args.steps,
                "test_cases": len(per_case),
                "tumor_dice_mean": float(np.mean(per_case)) if per_case else None,
                "tumor_dice_per_case": per_case,
                "oof_corr_with_tlvr": info.get("oof_corr_with_tlvr"),
                "minutes": round(minutes, 1),
            }
            results.append(row)
            print(
                json.dumps({k: v for k, v in row.items() if k != "tumor_dice_per_case"}), flush=True
            )
    print("\nlambda  mean tumor Dice over seeds (per seed)")
    for lam in args.lambdas:
        vals = [
            r["tumor_dice_mean"]
            for r in results
            if r["lambda"] == lam and r["tumor_dice_mean"] is not None
        ]
        if vals:
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            print(f"{lam:<7g} {np.mean(vals):.3f} ± {sd:.3f}  {[round(v, 3) for v in vals]}")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".ablation.json.tmp"
    settings = vars(args)
    if not generated:  # an existing cohort was used: the generation settings did nothing
        settings = {k: v for k, v in settings.items() if k not in ("cases", "shape", "cohort_seed")}
        settings["data_note"] = "an existing cohort (not generated by this run)"
    tmp.write_text(json.dumps({"args": settings, "results": results}, indent=2))
    os.replace(tmp, out / "ablation.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
