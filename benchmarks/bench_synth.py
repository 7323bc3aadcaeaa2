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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", type=int, default=5, help="full cases to time")
    ap.add_argument("--small", type=int, default=20, help="small cases to time")
    ap.add_argument("-o", "--out", default=str(Path(__file__).parent / "results" / "synth.json"))
    args = ap.parse_args(argv)
    generate_phantom(0, "small")  # imports and caches warm
    small = _time("small", args.small)
    full = _time("full", args.full)
    worst = _time("full", 1, n_slices=200)
    result = {
        "small_median_s": statistics.median(r["seconds"] for r in small),
        "full_median_s": statistics.median(r["seconds"] for r in full),
        "full_200_slices_s": worst[0]["seconds"],
        "bars_s": {"small": 0.2, "full": 5.0},
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "small": small,
        "full": full,
        "command": "python benchmarks/bench_synth.py",
    }
    print(f"small (96x96x32): median {result['small_median_s']:.3f} s over {len(small)} cases")
    print(
        f"full (512x512, 60-200 slices): median {result['full_median_s']:.2f} s over {len(full)} "
        f"cases; 200 slices: {result['full_200_slices_s']:.2f} s"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
