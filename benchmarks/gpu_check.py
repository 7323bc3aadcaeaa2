"""GPU check for issue 5: the two stages and ``livertumor segment`` end to end on CUDA.

Bars (H100): the two stages of one 512×512×200 case ≤ 1.5 s, end to end ≤ 5 s.
Run through ``benchmarks/gpu_check.sh`` (one command). Needs an environment where
``napari_livertumor`` imports and ``torch.cuda.is_available()`` is True; nothing is downloaded.

Steps
1. Generate the synthetic 512×512×200 case (0.8×0.8×2.5 mm, synth seed 7) and write it as DICOM.
2. Load both models once on CUDA (shipped defaults, or ``--models DIR``; untrained models of the
   default size if none are found, which is said in the output), one warm-up run, then
   ``--runs`` timed runs of :meth:`Segmenter.segment` (both stages, AMP) with per-stage times;
   then the same with the tumor stage's mirrored passes (``tta="inplane"``, not the default).
3. ``livertumor segment DICOM --device cuda`` in a fresh process, ``--runs`` times: wall time.
4. Print a summary and write it to ``$OUT/gpu_check.json`` (or ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="two-stage and end-to-end timing on CUDA")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", help="folder with liver/ and tumor/ (default: shipped models)")
    ap.add_argument("--no-refine", action="store_true")
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: CUDA is not available (torch {torch.__version__}); nothing to measure")
        return 2
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.models import default_model_dir, make_untrained_model
    from napari_livertumor.pipeline import InferenceConfig, Segmenter
    from napari_livertumor.synth import generate_phantom

    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    print("GPU:", report["gpu"])

    models = Path(args.models) if args.models else default_model_dir("liver").parent
    if not (
        (models / "liver" / "metadata.json").is_file()
        and (models / "tumor" / "metadata.json").is_file()
    ):
        models = work / "untrained"
        make_untrained_model(models / "liver", "liver", init_filters=8, roi_size=(32, 128, 128))
        make_untrained_model(models / "tumor", "tumor", init_filters=8, roi_size=(32, 96, 96))
        report["models_note"] = "UNTRAINED default-size models (no shipped weights found)"
    report["models"] = str(models)

    t0 = time.perf_counter()
    ph = generate_phantom(7, "full", pixel_spacing=0.8, slice_thickness=2.5, n_slices=200)
    dicom = work / "BENCH_512x512x200"
    write_ct_series(ph.ct, dicom, patient_id="BENCH")
    print(f"case generated and written in {time.perf_counter() - t0:.1f} s: {ph.ct.shape}")

    cfg = InferenceConfig.from_models_dir(
        models, device="cuda", strict_device=True, refine=not args.no_refine
    )
    seg = Segmenter(cfg)
    print(f"models loaded in {seg.load_seconds:.2f} s")
    report["in_process"] = _time_in_process(seg, ph.ct, args.runs, "in-process")
    report["in_process"]["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    # the tumor stage's mirrored passes (InferenceConfig.tta, off by default): their cost here
    seg_tta = Segmenter(
        dataclasses.replace(cfg, tta="inplane"), models={"liver": seg.liver, "tumor": seg.tumor}
    )
    report["in_process_tta_inplane"] = _time_in_process(
        seg_tta, ph.ct, args.runs, "in-process, --tta inplane"
    )

    walls = []
    cmd = [
        sys.executable,
        "-m",
        "napari_livertumor.cli",
        "segment",
        str(dicom),
        "-o",
        str(work / "out"),
        "--models",
        str(models),
        "--device",
        "cuda",
        "--overwrite",
    ]
    if args.no_refine:
        cmd.append("--no-refine")
    for _ in range(args.runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        walls.append(round(time.perf_counter() - t0, 2))
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            return 1
    stats = json.loads((work / "out" / f"{dicom.name}_stats.json").read_text())
    report["end_to_end"] = {
        "command": " ".join(cmd),
        "runs_s": walls,
        "median_s": statistics.median(walls),
        "last_timings_s": stats["timings_s"],
        "device": stats["device"],
    }
    ok2 = report["in_process"]["two_stages_median_s"] <= 1.5
    oke = report["end_to_end"]["median_s"] <= 5.0
    print(
        f"two stages: median {report['in_process']['two_stages_median_s']:.2f} s "
        f"(bar 1.5 s: {'met' if ok2 else 'NOT met'})"
    )
    print(
        f"end to end: median {report['end_to_end']['median_s']:.2f} s "
        f"(bar 5 s: {'met' if oke else 'NOT met'}), stages {stats['timings_s']}"
    )
    out_dir = Path(os.environ.get("OUT") or Path(__file__).resolve().parent / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print("saved", out_dir / "gpu_check.json")
    return 0


def _time_in_process(seg, ct, runs: int, label: str) -> dict:
    """One warm-up (cuDNN autotune, allocator), then ``runs`` timed ``seg.segment`` calls."""
    import torch

    seg.segment(ct)
    rows = []
    for _ in range(runs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = seg.segment(ct)
        torch.cuda.synchronize()
        rows.append({"wall_s": round(time.perf_counter() - t0, 3), **res.timings})
        print(f"  {label}: {rows[-1]}")
    two = [r.get("liver", 0) + r.get("tumor", 0) for r in rows]
    return {"runs": rows, "two_stages_median_s": round(statistics.median(two), 3)}


if __name__ == "__main__":
    sys.exit(main())
