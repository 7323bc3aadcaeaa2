"""Clinical weak labels with serum AFP as it is vs as log10(AFP + 1), on synthetic cohorts.

    python benchmarks/bench_weak_afp.py [--patients 100] [--seeds 100] [--out PATH]

Each cohort is drawn here, not by the package's synthetic generator (whose AFP follows its own
formula, which would decide the answer): a tumor-to-liver volume ratio (TLVR) like
HCC-TACE-Seg's (Beta(0.7, 9), held to 0-0.4: most patients under 0.10, a few up to 0.4); AFP
(ng/mL) with a heavy tail that follows tumor burden only loosely, log10 AFP ~ N(1.2 + 4 TLVR,
1.0), and 20 % of the patients with a normal AFP whatever their tumor (log10 AFP ~ N(0.5,
0.3)); the other 14 default columns (``DEFAULT_WEAK_COLUMNS``) as codes, flags, years and days,
a few loosely tied to TLVR (T_involvment, CLIP_Score, TNM, Metastasis, Lymphnodes, TTP), the
rest not; 5 % of each column's cells missing.

Out-of-fold weak labels (``training.weak.out_of_fold_weak_labels``: 5 folds, ridge 1, as the
recipes fit them) are made twice per cohort, AFP entered as it is (``log_columns=()``, runs
before 7 Dec 2026) and as log10(AFP + 1) (the default), with all 15 columns and with AFP
alone; scored against the true TLVR by mean absolute error and Spearman's rank correlation.
Medians over the seeds, and the share of seeds where the log form did better.

Then the pull of one patient: in each cohort the patient with the lowest TLVR is given an AFP
of 50 000 ng/mL; how far every other patient's weak label moves (the largest and the median
move, in TLVR units).

Results: ``benchmarks/results/weak_afp.json`` (and ``.md``). numpy and pandas only; seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # (a sibling module)
from _outputs import out_paths as _out_paths  # noqa: E402

RESULTS = HERE / "results"


def cohort(n: int, seed: int):
    """A synthetic clinical table (indexed by TCIA_ID) and its patients' true TLVR."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    tlvr = np.clip(rng.beta(0.7, 9.0, n), 0.0, 0.4)
    log_afp = rng.normal(1.2 + 4.0 * tlvr, 1.0)
    normal = rng.random(n) < 0.2
    log_afp[normal] = rng.normal(0.5, 0.3, normal.sum())
    afp = np.clip(10.0**log_afp, 0.5, 1e7)

    def flag(p):
        return (rng.random(n) < p).astype(float)

    cols = {
        "T_involvment": (tlvr + rng.normal(0, 0.08, n) > 0.25).astype(float),
        "CLIP_Score": np.clip(np.round(1 + 6 * tlvr + rng.normal(0, 1.0, n)), 0, 6),
        "Personal history of cancer": flag(0.1),
        "TNM": np.clip(np.round(2 + 8 * tlvr + rng.normal(0, 1.2, n)), 1, 7),
        "Metastasis": flag(0.05 + 0.3 * tlvr),
        "fhx_can": flag(0.2),
        "Alcohol": flag(0.5),
        "Smoking": flag(0.5),
        "Evidence_of_cirh": flag(0.8),
        "AFP": np.round(afp, 1),
        "age": np.clip(np.round(rng.normal(64, 10, n)), 30, 90),
        "Diabetes": flag(0.3),
        "Lymphnodes": flag(0.1 + 0.3 * tlvr),
        "Interval_BL": np.round(rng.exponential(30.0, n)),
        "TTP": np.round(rng.exponential(12.0, n) / (1 + 3 * tlvr), 1),
    }
    ids = [f"HCC_{i:03d}" for i in range(1, n + 1)]
    frame = pd.DataFrame(cols, index=pd.Index(ids, name="TCIA_ID"))
    for c in frame.columns:  # 5 % of each column missing
        frame.loc[rng.random(n) < 0.05, c] = np.nan
    return frame, dict(zip(ids, tlvr, strict=True))


def spearman(a, b) -> float:
    import pandas as pd

    return float(pd.Series(a).rank().corr(pd.Series(b).rank()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--out", default=str(RESULTS / "weak_afp"), help="output stem (.json/.md)")
    args = ap.parse_args(argv)

    import logging

    from napari_livertumor.training.config import DEFAULT_WEAK_COLUMNS
    from napari_livertumor.training.weak import out_of_fold_weak_labels

    logging.disable(logging.INFO)  # (each fit logs its report)
    forms = {"linear": (), "log10": ("AFP",)}
    sets = {"15 default columns": list(DEFAULT_WEAK_COLUMNS), "AFP alone": ["AFP"]}
    per_seed: dict[str, dict[str, list[dict]]] = {s: {f: [] for f in forms} for s in sets}
    pull: dict[str, list[dict]] = {f: [] for f in forms}
    for seed in range(args.seeds):
        frame, tlvr = cohort(args.patients, seed)
        ids = sorted(tlvr)
        truth = np.array([tlvr[p] for p in ids])
        for set_name, columns in sets.items():
            for form, logs in forms.items():
                weak = out_of_fold_weak_labels(frame, tlvr, columns, log_columns=logs, seed=seed)
                # (AFP alone: a patient whose AFP is missing has no label, in both forms)
                have = [i for i, p in enumerate(ids) if p in weak.labels]
                w = np.array([weak.labels[ids[i]] for i in have])
                t = truth[have]
                per_seed[set_name][form].append(
                    {"mae": float(np.abs(w - t).mean()), "spearman": spearman(w, t)}
                )
        outlier = min(ids, key=lambda p: tlvr[p])
        high = frame.copy()
        high.loc[outlier, "AFP"] = 50_000.0
        for form, logs in forms.items():
            cols = list(DEFAULT_WEAK_COLUMNS)
            before = out_of_fold_weak_labels(frame, tlvr, cols, log_columns=logs, seed=seed)
            after = out_of_fold_weak_labels(high, tlvr, cols, log_columns=logs, seed=seed)
            moved = np.array([abs(after.labels[p] - before.labels[p]) for p in ids if p != outlier])
            pull[form].append({"max": float(moved.max()), "median": float(np.median(moved))})

    def med(rows, key):
        return float(np.median([r[key] for r in rows]))

    summary: dict = {"patients": args.patients, "seeds": args.seeds, "fits": {}, "pull": {}}
    lines = [
        f"# Weak labels: AFP as it is vs log10(AFP + 1) ({args.patients} synthetic patients, "
        f"{args.seeds} seeds, medians)",
        "",
        "| columns | AFP | MAE vs TLVR | Spearman | log better (MAE / Spearman) |",
        "|---|---|---|---|---|",
    ]
    for set_name in sets:
        lin, lg = per_seed[set_name]["linear"], per_seed[set_name]["log10"]
        better_mae = float(np.mean([b["mae"] < a["mae"] for a, b in zip(lin, lg, strict=True)]))
        better_rho = float(
            np.mean([b["spearman"] > a["spearman"] for a, b in zip(lin, lg, strict=True)])
        )
        summary["fits"][set_name] = {
            form: {"mae": med(rows, "mae"), "spearman": med(rows, "spearman")}
            for form, rows in per_seed[set_name].items()
        }
        summary["fits"][set_name]["log_better_share"] = {"mae": better_mae, "spearman": better_rho}
        for form in forms:
            rows = per_seed[set_name][form]
            lines.append(
                f"| {set_name} | {form} | {med(rows, 'mae'):.4f} | {med(rows, 'spearman'):.3f} | "
                + (f"{better_mae:.0%} / {better_rho:.0%}" if form == "log10" else "")
                + " |"
            )
    lines += [
        "",
        "One patient (the lowest TLVR) given AFP 50 000 ng/mL: how far the other patients' weak "
        "labels move (TLVR units, medians over seeds)",
        "",
        "| AFP | largest move | median move |",
        "|---|---|---|",
    ]
    for form, rows in pull.items():
        summary["pull"][form] = {"max": med(rows, "max"), "median": med(rows, "median")}
        lines.append(f"| {form} | {med(rows, 'max'):.4f} | {med(rows, 'median'):.4f} |")
    js, md = _out_paths(args.out)
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(summary, indent=1) + "\n")
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
