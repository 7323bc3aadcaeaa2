"""Livers at the edge of the image: the liver stage with and without mirroring the image out
past an edge that cuts the body (``InferenceConfig.border_mirror_mm``), in one run.

A field of view reconstructed tight to a large patient puts the liver against the image's edge.
Beyond the image the network sees zeros (air after its HU window) and tends to draw the body's
skin there, ending the liver short of the edge. This benchmark crops held-out phantoms of two
generators (ours, ``livertumor synth``, and the independent one of
``bench_foreign_phantoms.py``) in-plane:

* ``base``: as generated (the body inside the image: the mirror never applies);
* ``tight``: cropped to the liver's box, so that the liver touches the image's right and front
  edges (15 mm of margin on the other sides);
* ``cut``: 10 mm of the liver cut off at the right and front (a field of view smaller than
  the body);

and segments each with the shipped models twice (mirror off, mirror at the default), scoring
liver and tumor Dice against the cropped truth.

    python benchmarks/bench_field_of_view.py [--cases 3] [--out benchmarks/results/field_of_view.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: held-out seeds: the accuracy benchmark's fresh set, and the foreign-phantom benchmark's
OUR_SEEDS = 7_000_000
VARIANTS = ("base", "tight", "cut")


def _foreign():
    spec = importlib.util.spec_from_file_location(
        "bench_foreign_phantoms", ROOT / "benchmarks" / "bench_foreign_phantoms.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _box(mask: np.ndarray) -> list[tuple[int, int]]:
    out = []
    for axis in range(3):
        idx = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        out.append((int(idx[0]), int(idx[-1])))
    return out


def crop(variant: str, ct: np.ndarray, truth: np.ndarray, spacing) -> tuple:
    """``(ct, truth)`` of ``variant`` (in-plane crops; standard orientation: y → back,
    x → the patient's left, so the liver's low-x side is the patient's right)."""
    if variant == "base":
        return ct, truth
    _, (y0, y1), (x0, x1) = _box(truth > 0)
    if variant == "tight":
        m = int(15 / spacing[1])
        sl = (slice(None), slice(y0, y1 + m + 1), slice(x0, x1 + m + 1))
    else:  # cut
        c = int(10 / spacing[1])
        sl = (slice(None), slice(y0 + c, None), slice(x0 + c, None))
    return np.ascontiguousarray(ct[sl]), np.ascontiguousarray(truth[sl])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return float("nan") if total == 0 else round(2 * int((a & b).sum()) / total, 4)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--cases", type=int, default=3, help="phantoms per generator (default 3)")
    ap.add_argument("--models", default=str(ROOT / "resources" / "models"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "field_of_view.json"))
    args = ap.parse_args(argv)

    import torch

    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.pipeline import InferenceConfig, Segmenter
    from napari_livertumor.synth import generate_phantom
    from napari_livertumor.training.metrics import hcc_to_output

    torch.set_num_threads(2)
    default_mm = InferenceConfig().border_mirror_mm
    settings = {"off": 0.0, "mirror": default_mm}
    segs = {
        k: Segmenter(
            InferenceConfig.from_models_dir(args.models, device="cpu", border_mirror_mm=mm)
        )
        for k, mm in settings.items()
    }
    foreign = _foreign()
    phantoms = []
    for i in range(args.cases):
        ph = generate_phantom(OUR_SEEDS + i, "full")
        std, turn = ph.ct.to_standard()
        truth = turn.apply(hcc_to_output(ph.labels))
        phantoms.append(("ours", OUR_SEEDS + i, std.array, truth, tuple(std.spacing)))
    for i in range(args.cases):
        ct, truth, spacing, facts = foreign.foreign_phantom(foreign.SEED_BASE + i)
        phantoms.append(("foreign", facts["seed"], ct, truth, tuple(spacing)))
    rows = []
    for generator, seed, ct, truth, spacing in phantoms:
        for variant in VARIANTS:
            c, t = crop(variant, ct, truth, spacing)
            row = {"generator": generator, "seed": seed, "variant": variant, "shape": list(c.shape)}
            for key, seg in segs.items():
                t0 = time.perf_counter()
                labels = seg.segment(CTVolume(c, spacing=spacing)).labels
                row[key] = {
                    "liver_dice": _dice(labels > 0, t > 0),
                    "tumor_dice": _dice(labels == 2, t == 2),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            rows.append(row)
            print(
                f"{generator} {seed} {variant:5s}: liver Dice {row['off']['liver_dice']:.3f} -> "
                f"{row['mirror']['liver_dice']:.3f}, tumor Dice {row['off']['tumor_dice']:.3f} "
                f"-> {row['mirror']['tumor_dice']:.3f}",
                flush=True,
            )
    summary = {}
    for variant in VARIANTS:
        sel = [r for r in rows if r["variant"] == variant]
        summary[variant] = {
            key: {
                m: round(statistics.mean(r[key][m] for r in sel if r[key][m] == r[key][m]), 4)
                for m in ("liver_dice", "tumor_dice")
            }
            for key in settings
        }
    record = {
        "what": "liver stage with the image mirrored past an edge that cuts the body vs not",
        "border_mirror_mm": default_mm,
        "cases_per_generator": args.cases,
        "summary_mean": summary,
        "rows": rows,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "command": "python benchmarks/bench_field_of_view.py " + " ".join(argv or sys.argv[1:]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    for variant, s in summary.items():
        print(
            f"{variant:5s} mean liver Dice {s['off']['liver_dice']:.3f} -> "
            f"{s['mirror']['liver_dice']:.3f}, tumor Dice {s['off']['tumor_dice']:.3f} -> "
            f"{s['mirror']['tumor_dice']:.3f}"
        )
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
