"""GPU check for issue 5: the two stages and ``livertumor segment`` end to end on CUDA.

Bars (H100): the two stages of one 512×512×200 case ≤ 1.5 s, end to end ≤ 5 s.
Run through ``benchmarks/gpu_check.sh`` (one command). Needs an environment where
``napari_livertumor`` imports and ``torch.cuda.is_available()`` is True; nothing is downloaded.

Steps
1. Generate the synthetic 512×512×200 case (0.8×0.8×2.5 mm, synth seed 7) and write it as DICOM.
2. Load both models once on CUDA (shipped defaults, or ``--models DIR``; untrained models of the
   default size if none are found, which is said in the output), one warm-up run, then
   ``--runs`` timed runs of :meth:`Segmenter.segment` (both stages, AMP) with per-stage times;
   then the same with the tumor stage's mirrored passes (``tta="inplane"``, not the default);
   then one run each on two coarser cases (5 mm slices; the small phantom's 3–5 mm pixels and
   7–18 mm slices): stage grids finer than the CT, interpolated on the GPU.
3. ``livertumor segment DICOM --device cuda`` in a fresh process, ``--runs`` times: wall time;
   alternated with runs importing MONAI the usual way (``LIVERTUMOR_FULL_IMPORTS=1``). The
   per-stage times reported are the last normal (lean-import) run's. Also alternated: runs
   with Python's bytecode cache on (``PYTHONPYCACHEPREFIX`` in the work folder, written by one
   untimed run first, ``PYTHONDONTWRITEBYTECODE`` unset) — what a ``pip install`` leaves
   (it compiles every module), where an image without ``__pycache__`` folders and with
   ``PYTHONDONTWRITEBYTECODE`` set makes each process compile torch's and MONAI's sources
   again. Whether the interpreter writes bytecode, and whether torch's has any, is recorded:
   where it writes it and torch's is there (a usual install), both variants are cached and
   differ only by noise.
4. Where a fresh process spends its time before the first case: ``python -c "import torch"``,
   ``... import torch, monai`` and ``... + CUDA context`` as separate processes (``import monai``
   loads every MONAI sub-package, which imports whatever optional packages are installed:
   torchvision, transformers, cupy... — on a full CUDA image that is most of the wall time).
5. A batch: ``livertumor segment`` on a folder of ``--batch`` such series (other seeds) in one
   process; per-case time from each case's stats file (the first case also loads the models).
6. Print a summary and write it to ``$OUT/gpu_check.json`` (or ``benchmarks/results/``). The
   temporary work folder is removed at the end (``--keep`` keeps it).

``--device cpu --n-slices 40`` is a dry run of the script itself on a machine without a GPU (the
bars are not judged then, and it skips what is there only for the times: the warm-up runs and
the untimed run that writes the bytecode cache). ``--startup-runs 0`` leaves out step 4.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
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
    ap.add_argument("--batch", type=int, default=3, help="cases in the batch run (0: none)")
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a dry run)")
    ap.add_argument("--n-slices", type=int, default=200)
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    ap.add_argument(
        "--startup-runs", type=int, default=3, help="runs of each start-up snippet (0: none)"
    )
    args = ap.parse_args(argv)

    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print(f"gpu_check: CUDA is not available (torch {torch.__version__}); nothing to measure")
        return 2
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        return _check(args, work, cuda)
    finally:
        if args.keep:
            print("work folder kept:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _check(args, work: Path, cuda: bool) -> int:
    import torch

    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.models import default_model_dir, make_untrained_model
    from napari_livertumor.pipeline import InferenceConfig, Segmenter
    from napari_livertumor.synth import generate_phantom

    report = {
        "gpu": torch.cuda.get_device_name(0) if cuda else "none (CPU dry run)",
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "bytecode": _bytecode_facts(torch),
    }
    print("bytecode:", report["bytecode"])
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
    ph = generate_phantom(7, "full", pixel_spacing=0.8, slice_thickness=2.5, n_slices=args.n_slices)
    dicom = work / "BENCH_512x512x200"
    write_ct_series(ph.ct, dicom, patient_id="BENCH")
    print(f"case generated and written in {time.perf_counter() - t0:.1f} s: {ph.ct.shape}")

    cfg = InferenceConfig.from_models_dir(
        models, device=args.device, strict_device=True, refine=not args.no_refine
    )
    seg = Segmenter(cfg)
    print(f"models loaded in {seg.load_seconds:.2f} s")
    report["in_process"] = _time_in_process(seg, ph.ct, args.runs, "in-process")
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
        report["in_process"]["peak_gpu_memory_gb"] = round(peak, 2)
    # the tumor stage's mirrored passes (InferenceConfig.tta, off by default): their cost here
    seg_tta = Segmenter(
        dataclasses.replace(cfg, tta="inplane"), models={"liver": seg.liver, "tumor": seg.tumor}
    )
    report["in_process_tta_inplane"] = _time_in_process(
        seg_tta, ph.ct, args.runs, "in-process, --tta inplane"
    )

    # grids the bench case never needs: every stage finer than the CT along an axis (5 mm
    # slices for the tumor stage's 2.5 mm, 7-18 mm slices for the liver's 5 mm) is interpolated on
    # the GPU, and such a case failed there once (coordinates left on the CPU)
    report["other_grids"] = _other_grids(seg, generate_phantom, max(6, args.n_slices // 4))

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
        args.device,
        "--overwrite",
    ]
    if args.no_refine:
        cmd.append("--no-refine")
    # alternated with runs that import MONAI the usual way (every optional package it finds:
    # what the command did before models.lean_import), measured in the same run
    full_walls = []
    # and with a bytecode cache the interpreter may write (one untimed run writes it first)
    cached_walls: list[float] = []
    cached_env = {**os.environ, "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    cached_env.pop("PYTHONDONTWRITEBYTECODE", None)
    if cuda:  # a dry run's times are not judged: there its first cached run writes the cache
        proc = subprocess.run(cmd, capture_output=True, text=True, env=cached_env)
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            return 1
    variants = (
        (walls, os.environ),
        (full_walls, {**os.environ, "LIVERTUMOR_FULL_IMPORTS": "1"}),
        (cached_walls, cached_env),
    )
    stats_file = work / "out" / f"{dicom.name}_stats.json"
    cached_stats = None
    for _ in range(args.runs):
        for walls_of, env in variants:
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            walls_of.append(round(time.perf_counter() - t0, 2))
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                return 1
            if walls_of is walls:  # the stage times reported are the last lean (normal) run's
                stats = json.loads(stats_file.read_text())
            elif walls_of is cached_walls:
                cached_stats = json.loads(stats_file.read_text())
    report["end_to_end"] = {
        "command": " ".join(cmd),
        "runs_s": walls,
        "median_s": statistics.median(walls),
        "last_timings_s": stats["timings_s"],
        "device": stats["device"],
        "full_monai_import_runs_s": full_walls,
        "full_monai_import_median_s": statistics.median(full_walls),
        "bytecode_cached_runs_s": cached_walls,
        "bytecode_cached_median_s": statistics.median(cached_walls),
        "bytecode_cached_last_timings_s": cached_stats["timings_s"],
    }
    if args.startup_runs > 0:
        report["startup"] = _time_startup(args.startup_runs, cuda, cached_env)
    if args.batch > 0:
        report["batch"] = _time_batch(args, work, models, write_ct_series, generate_phantom)

    ok2 = report["in_process"]["two_stages_median_s"] <= 1.5
    oke = report["end_to_end"]["median_s"] <= 5.0
    print(
        f"two stages: median {report['in_process']['two_stages_median_s']:.2f} s "
        + (f"(bar 1.5 s: {'met' if ok2 else 'NOT met'})" if cuda else "")
    )
    print(
        f"end to end: median {report['end_to_end']['median_s']:.2f} s "
        + (f"(bar 5 s: {'met' if oke else 'NOT met'})" if cuda else "")
        + f", stages {stats['timings_s']}; importing MONAI the usual way: median "
        + f"{report['end_to_end']['full_monai_import_median_s']:.2f} s"
    )
    print(
        "end to end with a bytecode cache: median "
        f"{report['end_to_end']['bytecode_cached_median_s']:.2f} s, stages "
        f"{report['end_to_end']['bytecode_cached_last_timings_s']}"
    )
    if "startup" in report:
        print(_startup_line(report["startup"]))
    if "batch" in report:
        b = report["batch"]
        print(
            f"batch of {b['cases']} cases in one process: wall {b['wall_s']:.2f} s; per case "
            f"(read..write) {b['per_case_total_s']}; models loaded once in {b['load_models_s']} s"
        )
    if not cuda:
        print("CPU dry run: the GPU bars are not judged")
    out_dir = Path(os.environ.get("OUT") or Path(__file__).resolve().parent / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "gpu_check.json" if cuda else "gpu_check_cpu_dryrun.json"
    (out_dir / name).write_text(json.dumps(report, indent=2))
    print("saved", out_dir / name)
    return 0


def _other_grids(seg, generate_phantom, n_slices: int) -> dict:
    """One ``seg.segment`` each on coarser grids than the bench case's: liver and tumor mL."""
    out = {}
    cases = (
        (
            "5 mm slices",
            ("full",),
            {"pixel_spacing": 0.8, "slice_thickness": 5.0, "n_slices": n_slices},
        ),
        ("small: 3-5 mm pixels, 7-18 mm slices", ("small",), {}),
    )
    for name, shape, overrides in cases:
        ph = generate_phantom(11, *shape, **overrides)
        t0 = time.perf_counter()
        res = seg.segment(ph.ct)
        out[name] = {
            "shape": list(ph.ct.shape),
            "wall_s": round(time.perf_counter() - t0, 3),
            "liver_ml": round(res.stats["liver_ml"], 1),
            "tumor_ml": round(res.stats["tumor_ml"], 1),
        }
        print(f"  {name}: {out[name]}")
    return out


def _time_in_process(seg, ct, runs: int, label: str) -> dict:
    """One warm-up on CUDA (cuDNN autotune, allocator; none in a CPU dry run), then ``runs``
    timed ``seg.segment`` calls."""
    import torch

    cuda = seg.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        seg.segment(ct)
    rows = []
    for _ in range(runs):
        sync()
        t0 = time.perf_counter()
        res = seg.segment(ct)
        sync()
        rows.append({"wall_s": round(time.perf_counter() - t0, 3), **res.timings})
        print(f"  {label}: {rows[-1]}")
    two = [r.get("liver", 0) + r.get("tumor", 0) for r in rows]
    return {"runs": rows, "two_stages_median_s": round(statistics.median(two), 3)}


def _bytecode_facts(torch) -> dict:
    """Whether this interpreter writes bytecode, and whether torch's package has any."""
    pkg = Path(torch.__file__).parent
    return {
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "dont_write_bytecode": bool(sys.dont_write_bytecode),
        "torch_pyc_files": sum(1 for _ in pkg.glob("__pycache__/*.pyc"))
        + sum(1 for _ in pkg.glob("*/__pycache__/*.pyc")),
        "torch_py_files": sum(1 for _ in pkg.glob("*.py")) + sum(1 for _ in pkg.glob("*/*.py")),
    }


def _time_startup(runs: int, cuda: bool, cached_env: dict | None = None) -> dict:
    """Fresh-process wall times of the imports a ``livertumor segment`` run pays before its case
    (``*_bytecode_cached``: with ``cached_env``, whose bytecode cache the runs before wrote)."""
    snippets = {
        "python_torch": "import torch",
        "python_torch_monai": "import torch, monai",
        "python_torch_monai_lean": "import torch; from napari_livertumor.models.lean_import "
        "import import_monai_lean; import_monai_lean()",
    }
    if cuda:
        snippets["python_torch_monai_cuda_context"] = (
            "import torch, monai; torch.zeros(1, device='cuda'); torch.cuda.synchronize()"
        )
    runs_of = {name: (code, None) for name, code in snippets.items()}
    if cached_env is not None:
        for name in ("python_torch", "python_torch_monai_lean"):
            runs_of[name + "_bytecode_cached"] = (snippets[name], cached_env)
    out: dict = {}
    for name, (code, env) in runs_of.items():
        walls = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env)
            walls.append(round(time.perf_counter() - t0, 2))
        out[name] = {"runs_s": walls, "median_s": statistics.median(walls)}
    code = (
        "import sys, torch; b = set(sys.modules); import monai; "
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - b})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = ("torchvision", "transformers", "cupy", "tensorboard", "onnxruntime", "sklearn", "cv2")
    out["optional_packages_monai_imported"] = [m for m in proc.stdout.split() if m in heavy]
    return out


def _startup_line(startup: dict) -> str:
    """The summary's line for :func:`_time_startup`'s figures."""
    medians = (f"{k} {v['median_s']:.2f} s" for k, v in startup.items() if isinstance(v, dict))
    return "fresh-process start-up (medians): " + ", ".join(medians)


def _time_batch(args, work: Path, models: Path, write_ct_series, generate_phantom) -> dict:
    """``livertumor segment`` on a folder of ``args.batch`` series in one process."""
    folder = work / "batch"
    for i in range(args.batch):
        ph = generate_phantom(
            100 + i, "full", pixel_spacing=0.8, slice_thickness=2.5, n_slices=args.n_slices
        )
        write_ct_series(ph.ct, folder / f"CASE_{i}", patient_id=f"CASE_{i}")
    cmd = [
        sys.executable, "-m", "napari_livertumor.cli", "segment", str(folder),
        "-o", str(work / "batch_out"), "--models", str(models), "--device", args.device,
    ]  # fmt: skip
    if args.no_refine:
        cmd.append("--no-refine")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = round(time.perf_counter() - t0, 2)
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        return {"failed": proc.returncode}
    timings = [
        json.loads(p.read_text())["timings_s"]
        for p in sorted((work / "batch_out").glob("*_stats.json"))
    ]
    return {
        "cases": len(timings),
        "wall_s": wall,
        "per_case_total_s": [t["total"] for t in timings],
        "per_case_timings_s": timings,
        "load_models_s": next((t["load_models"] for t in timings if "load_models" in t), None),
    }


if __name__ == "__main__":
    sys.exit(main())
