"""Scoring against a ground truth on a thin-slice CT: the whole volume vs the masks' box.

    python benchmarks/bench_scoring.py [--slices 797] [--repeats 3] [-o PATH]

A ``full`` phantom of 512 × 512 × ``--slices`` (0.8 mm pixels, 0.625 mm slices: 209 M voxels
at 797) gives the ground truth (HCC-TACE-Seg classes, aorta included); the prediction is
that truth altered: the liver one voxel wider above its middle and narrower below, the tumor
one voxel wider, its smallest lesion missed and a false 0.6 mL lesion added.

Each scoring call is timed the old way (``crop=False``: the whole volume, as before
``metrics.crop_box``) and the new (the default: the box of both masks), in the same run,
with the peak memory each adds (the process's peak resident size, reset before each call
through ``/proc/self/clear_refs``; Linux; glibc's mmap threshold fixed, so freed arrays leave
the resident size). The figures of both must be identical (``repr``
of the results, bit for bit); the script says and records whether they are.

* Inspect's Measure with a ground truth: ``overlap_scores`` (Dice, IoU, HD95, ASSD, NSD per
  class), ``lesion_detection`` (its masks made as Measure makes them: ``np.isin`` before,
  ``metrics.in_classes`` now), ``compute_stats`` (unchanged: it crops its lesions already),
  and the three together.
* ``livertumor evaluate``, per case: ``case_scores``, ``case_surface_scores``,
  ``lesion_detection``, ``lesion_table``, ``longest_diameter_mm``.

MONAI and the functions are warmed up first (MONAI's import alone takes seconds: the first
Measure of a session pays it either way). Results: ``benchmarks/results/scoring.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GIB = float(1 << 30)


def make_case(n_slices: int):
    """``(prediction 0/1/2, HCC ground truth 0..4, CT, spacing)``."""
    from scipy import ndimage as ndi

    from napari_livertumor.synth import generate_phantom
    from napari_livertumor.training.metrics import hcc_to_output

    ph = generate_phantom(7, "full", pixel_spacing=0.8, slice_thickness=0.625, n_slices=n_slices)
    truth = np.asarray(ph.labels)
    out = hcc_to_output(truth)
    box = ndi.find_objects((out > 0).astype(np.uint8))[0]
    box = tuple(slice(max(s.start - 3, 0), s.stop + 3) for s in box)
    sub = out[box]
    liver = sub >= 1
    mid = liver.shape[0] // 2
    cross = ndi.generate_binary_structure(3, 1)
    pred_liver = liver.copy()
    pred_liver[:mid] = ndi.binary_dilation(liver, cross)[:mid]
    pred_liver[mid:] = ndi.binary_erosion(liver, cross)[mid:]
    tumor = sub == 2
    lab, _ = ndi.label(tumor, np.ones((3, 3, 3), bool))
    sizes = np.bincount(lab.ravel())[1:]
    kept = tumor & (lab != 1 + int(sizes.argmin()))  # the smallest lesion missed
    pred_tumor = ndi.binary_dilation(kept, cross) & pred_liver
    # a false lesion: a ball of 5.5 mm radius in the liver, away from the tumors
    zz, yy, xx = np.nonzero(pred_liver & ~ndi.binary_dilation(tumor, iterations=12))
    k = len(zz) // 3
    g = np.indices(pred_liver.shape, dtype=np.float32)
    dz, dy, dx = (float(s) for s in ph.ct.spacing)
    r2 = ((g[0] - zz[k]) * dz) ** 2 + ((g[1] - yy[k]) * dy) ** 2 + ((g[2] - xx[k]) * dx) ** 2
    pred_tumor |= (r2 <= 5.5**2) & pred_liver
    pred = np.zeros_like(out)
    pred[box][pred_liver] = 1
    pred[box][pred_tumor] = 2
    return pred, truth, np.asarray(ph.ct.array), tuple(float(s) for s in ph.ct.spacing), ph.ct


def _status(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def measured(fn, repeats: int) -> tuple[dict, object]:
    """Median / min / max seconds of ``repeats`` calls and the median peak memory each adds."""
    times, peaks, result = [], [], None
    for _ in range(repeats):
        rss = _status("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            resettable = True
        except OSError:
            resettable = False
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        hwm = _status("VmHWM")
        if resettable and rss is not None and hwm is not None:
            peaks.append(max(0, hwm - rss) / GIB)
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "peak_gib": round(statistics.median(peaks), 3) if peaks else None,
        "n": repeats,
    }, result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=797)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-o", "--out", default=str(ROOT / "benchmarks" / "results" / "scoring.json"))
    args = ap.parse_args(argv)
    if argv is None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # a fixed threshold: glibc's own rises after the first big free, and the arrays of a
        # later call then come from memory already held, unseen in its peak
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)

    from napari_livertumor._widgets.inspect import (
        LESION_MIN_ML,
        LESION_MIN_SHARE,
        PRED_CLASSES,
        TRUTH_CLASSES,
        overlap_scores,
    )
    from napari_livertumor.stats import compute_stats
    from napari_livertumor.training.metrics import (
        case_scores,
        case_surface_scores,
        crop_box,
        hcc_to_output,
        in_classes,
        lesion_detection,
        lesion_table,
        longest_diameter_mm,
    )

    t0 = time.perf_counter()
    pred, hcc, ct, spacing, volume = make_case(args.slices)
    print(
        f"phantom {pred.shape} ({pred.size / 1e6:.0f} M voxels) in {time.perf_counter() - t0:.0f} s"
    )
    truth = hcc_to_output(hcc)
    box = crop_box((pred, (1, 2)), (hcc, (1, 2, 3)), margin=1)
    box_shape = [s.stop - s.start for s in box]
    print(f"the masks' box: {box_shape} ({np.prod(box_shape) / pred.size:.1%} of the volume)")
    tiny = np.zeros((4, 6, 6), np.uint8)
    tiny[1:3, 1:4, 1:4] = 2
    overlap_scores(tiny, tiny, (1, 1, 1))  # MONAI imported, everything warm

    md = {"min_ml": LESION_MIN_ML, "min_overlap": LESION_MIN_SHARE}
    matching = {"min_ml": 0.1, "min_overlap": 0.1}
    axes = np.asarray(volume.affine_lps, float)[:3, :3][:, ::-1].T

    def measure(crop: bool):  # Inspect's Measure with a ground truth (its worker's body)
        true_tumor = (in_classes if crop else np.isin)(hcc, TRUTH_CLASSES["tumor"])
        stats = compute_stats(pred, spacing, ct=ct, truth_tumor=true_tumor)
        scores = overlap_scores(pred, hcc, spacing, crop=crop)
        stats["detection"] = lesion_detection(
            (in_classes if crop else np.isin)(pred, PRED_CLASSES["tumor"]),
            true_tumor,
            spacing,
            **md,
            crop=crop,
        )
        return stats, scores

    calls = {
        "inspect: overlap_scores": lambda crop: overlap_scores(pred, hcc, spacing, crop=crop),
        "inspect: lesion_detection": lambda crop: lesion_detection(
            (in_classes if crop else np.isin)(pred, PRED_CLASSES["tumor"]),
            (in_classes if crop else np.isin)(hcc, TRUTH_CLASSES["tumor"]),
            spacing,
            **md,
            crop=crop,
        ),
        "inspect: measure (all of it)": measure,
        "evaluate: case_scores": lambda crop: case_scores(pred, truth, crop=crop),
        "evaluate: case_surface_scores": lambda crop: case_surface_scores(
            pred, truth, spacing, crop=crop
        ),
        "evaluate: lesion_detection": lambda crop: lesion_detection(
            pred == 2, truth == 2, spacing, **matching, crop=crop
        ),
        "evaluate: lesion_table": lambda crop: lesion_table(
            ct, truth, pred == 2, spacing, axes=axes, **matching, crop=crop
        ),
        "evaluate: longest_diameter_mm": lambda crop: longest_diameter_mm(
            truth == 2, spacing, volume.affine_lps, crop=crop
        ),
    }
    rows = {}
    for name, call in calls.items():
        old, old_out = measured(lambda call=call: call(False), args.repeats)
        new, new_out = measured(lambda call=call: call(True), args.repeats)
        same = repr(old_out) == repr(new_out)
        rows[name] = {"whole_volume": old, "box": new, "identical": same}
        speed = old["median_s"] / max(new["median_s"], 1e-6)
        mem = (
            f"; peak +{old['peak_gib']:.2f} → +{new['peak_gib']:.2f} GiB"
            if old["peak_gib"] is not None and new["peak_gib"] is not None
            else ""
        )
        print(
            f"{name:32} {old['median_s']:7.2f} s → {new['median_s']:6.2f} s ({speed:5.1f}×){mem}"
            f"; identical: {same}"
        )
    stats_only, _ = measured(lambda: compute_stats(pred, spacing, ct=ct), args.repeats)
    print(f"{'(compute_stats, unchanged)':32} {stats_only['median_s']:7.2f} s")
    result = {
        "case": {
            "shape_zyx": list(pred.shape),
            "spacing_mm": list(spacing),
            "voxels": int(pred.size),
            "box_zyx": box_shape,
            "phantom": "generate_phantom(7, 'full', pixel_spacing=0.8, slice_thickness=0.625, "
            f"n_slices={args.slices})",
        },
        "calls": rows,
        "compute_stats_alone": stats_only,
        "all_identical": all(r["identical"] for r in rows.values()),
        "machine": {
            "cpus": os.cpu_count(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "note": "shared 2-core CPU, run under nice; medians of the repeats; peak: the "
            "resident size each call adds over what the process held before it",
        },
    }
    from napari_livertumor.fileio import atomic_write_text

    out = Path(args.out)
    atomic_write_text(out, json.dumps(result, indent=1))  # (whole, or the old file kept)
    print(f"wrote {out}")
    return 0 if result["all_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
