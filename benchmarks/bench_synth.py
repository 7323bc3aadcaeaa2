"""Time phantom generation: medians for ``small`` and ``full`` cases.

    python benchmarks/bench_synth.py [--full 5] [--small 20]

Prints the medians and writes ``benchmarks/results/synth.json``. Bars from the issue: one
``full`` case (512×512, 60–200 slices) ≤ 5 s, one ``small`` case (96×96×32) ≤ 0.2 s. The machine
may be shared: the JSON records the CPU count and the per-case times so noise is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from napari_livertumor.synth import case_seed, generate_phantom


def _time(shape: str, n: int, **kw) -> list[dict]:
    out = []
    for i in range(n):
        seed = case_seed(1234, i)
        t0 = time.perf_counter()
        ph = generate_phantom(seed, shape, **kw)
        dt = time.perf_counter() - t0
        out.append({"seed": seed, "seconds": round(dt, 4), "shape": list(ph.ct.shape)})
    return out


def _cohort_stats(n: int) -> dict:
    """Distributions a model card can quote: what the synthetic cohort contains."""
    import numpy as np

    infos = [generate_phantom(case_seed(4321, i), "small").info for i in range(n)]

    def pct(key):
        v = np.array([i[key] for i in infos], float)
        return [round(float(x), 3) for x in np.percentile(v, [5, 50, 95])]

    phases = [i["phase"] for i in infos]
    contrast: dict[str, list[float]] = {}
    for i in infos:
        for t in i["tumors"]:
            contrast.setdefault(i["phase"], []).append(t["enhancement"])
    counts = np.bincount([i["n_tumors"] for i in infos])
    return {
        "n": n,
        "whole_liver_ml_p5_p50_p95": pct("whole_liver_ml"),
        "tumor_ml_p5_p50_p95": pct("tumor_ml"),
        "tlvr_p5_p50_p95": pct("tlvr"),
        "max_tumor_diameter_mm_p5_p50_p95": pct("max_tumor_diameter_mm"),
        "noise_sd_p5_p50_p95": pct("noise_sd"),
        "liver_hu_p5_p50_p95": pct("liver_hu"),
        "n_tumors_counts": {str(k): int(c) for k, c in enumerate(counts)},
        "phase_fraction": {p: round(phases.count(p) / n, 2) for p in sorted(set(phases))},
        "tumor_minus_liver_hu_p5_p50_p95": {
            p: [round(float(x), 1) for x in np.percentile(v, [5, 50, 95])]
            for p, v in sorted(contrast.items())
        },
        "fraction_cirrhotic": round(float(np.mean([i["cirrhotic"] for i in infos])), 2),
        "fraction_fatty_liver": round(float(np.mean([i["fatty_liver"] for i in infos])), 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", type=int, default=5, help="full cases to time")
    ap.add_argument("--small", type=int, default=20, help="small cases to time")
    ap.add_argument("--stats", type=int, default=100, help="small cases for cohort statistics")
    ap.add_argument("-o", "--out", default=str(Path(__file__).parent / "results" / "synth.json"))
    args = ap.parse_args(argv)
    generate_phantom(0, "small")  # imports and caches warm
    small = _time("small", args.small)
    full = _time("full", args.full)
    worst = _time("full", 1, n_slices=200)
    stats = _cohort_stats(args.stats)
    result = {
        # (a part asked for 0 times is not timed: no median)
        "small_median_s": statistics.median(r["seconds"] for r in small) if small else None,
        "full_median_s": statistics.median(r["seconds"] for r in full) if full else None,
        "full_200_slices_s": worst[0]["seconds"],
        "bars_s": {"small": 0.2, "full": 5.0},
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "cohort_stats": stats,
        "small": small,
        "full": full,
        "command": "python benchmarks/bench_synth.py",
    }
    if small:
        print(f"small (96x96x32): median {result['small_median_s']:.3f} s over {len(small)} cases")
    if full:
        print(
            f"full (512x512, 60-200 slices): median {result['full_median_s']:.2f} s over "
            f"{len(full)} cases"
        )
    print(f"full, 200 slices: {result['full_200_slices_s']:.2f} s")
    print(
        "cohort ({n} small cases): liver {lv} mL (5/50/95 %), TLVR {tl}, lesions/patient {nt}, "
        "phases {ph}".format(
            n=stats["n"],
            lv=stats["whole_liver_ml_p5_p50_p95"],
            tl=stats["tlvr_p5_p50_p95"],
            nt=stats["n_tumors_counts"],
            ph=stats["phase_fraction"],
        )
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
