"""Benchmark ``livertumor segment`` (issue 5) and batch throughput (issue 9) on this machine.

What it measures, all in one run so the ratios compare like with like:

1. End to end: one synthetic 512×512×200 DICOM series (0.8×0.8×2.5 mm) through
   ``livertumor segment`` in a fresh process (Python start, imports, DICOM read, both stages,
   refinement, writing), median of ``--runs`` runs, per-stage times from ``<case>_stats.json``,
   peak RSS of the command (its own ``getrusage``, reported by a small launcher, + psutil sampling).
2. The original method's configuration: SegResNetVAE ``init_filters=16``, blocks (1, 2, 2, 4),
   at native resolution. Its eval-mode forward is exactly the SegResNet trunk (MONAI skips the
   VAE branch in eval), so the trunk is timed on one (16, 512, 512) window (liver model) and one
   (32, 256, 256) window (tumor model), twice each (median), and **extrapolated** to the number
   of windows the original's sliding window (overlap 0.2) needs on this volume. Reported as a
   projection and as a ratio to our measured end-to-end median.
3. Batch (issue 9): 10 ``small`` + 3 ``full`` synthetic NIfTI cases, one ``livertumor segment``
   process over the folder (one model load) versus one process per case in a loop;
   cases/min and the ratio.

Results go to ``benchmarks/results/segment.json`` and ``segment.md`` (``--out PATH`` for
another place). The machine is shared: numbers measured while other jobs run are noisy (the
load average is recorded beside them). A part not measured in this run (``--skip-batch``,
``--only``) is copied from the earlier report and labelled as such, with no ratio computed
across the two runs.

Usage::

    python benchmarks/bench_segment.py [--runs 3] [--models DIR] [--skip-original] [--skip-batch]
        [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # (a sibling module)
from _outputs import out_paths as _out_paths  # noqa: E402

RESULTS = HERE / "results"
DEFAULT_OUT = RESULTS / "segment.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", help="folder with liver/ and tumor/ (default: shipped models)")
    ap.add_argument(
        "--workdir",
        help="where to put generated data, kept afterwards (default: a temp folder, removed)",
    )
    ap.add_argument("--skip-original", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument(
        "--only",
        choices=["e2e", "batch"],
        help="rerun only this part and update the saved results (keeps the other parts, "
        "labelled as from the earlier run)",
    )
    ap.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help="report file; the .md goes beside it (default: benchmarks/results/segment.json). "
        "Parts not measured now are taken from it if it exists, else from the default",
    )
    ap.add_argument("--no-refine", action="store_true", help="benchmark without refinement")
    ap.add_argument(
        "--fast-growth",
        type=float,
        default=0.0,
        help="also time --window-growth G (default 0: not timed)",
    )
    ap.add_argument(
        "--tta",
        choices=["inplane", "all"],
        help="also time --tta MODE (the tumor stage's mirrored passes) in the same run",
    )
    args = ap.parse_args(argv)

    out_json, out_md = _out_paths(args.out)
    earlier = out_json if out_json.is_file() else DEFAULT_OUT
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_segment_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, work, out_json, out_md, earlier)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def _run(args, work: Path, out_json: Path, out_md: Path, earlier: Path) -> int:
    import torch

    models, models_note = _models(args.models, work)
    report: dict = {
        "machine": _machine(),
        "torch_threads": torch.get_num_threads(),
        "models": str(models),
        "models_note": models_note,
        "refine": not args.no_refine,
    }
    print(f"models: {models} ({models_note})")
    if args.only == "batch":
        if not earlier.is_file():
            raise SystemExit(f"--only batch updates a saved report; none at {earlier}")
        report = json.loads(earlier.read_text())
        report["batch"] = _batch(work, models, args.no_refine)
        report["batch"]["models"] = str(models)
        # the machine line's load is the end-to-end run's; the batch's is in its own block
        return _save(report, out_json, out_md, load_after=report.get("load_average_after"))
    keep = args.only == "e2e" or args.skip_batch
    old = json.loads(earlier.read_text()) if keep and earlier.is_file() else {}

    dicom = _make_dicom(work)
    report["end_to_end"] = _end_to_end(dicom, work / "out", models, args.runs, args.no_refine)
    e2e = report["end_to_end"]
    print(
        f"end to end: median {e2e['median_s']:.2f} s over {args.runs} runs "
        f"{e2e['runs_s']}, peak RSS {e2e['peak_rss_gb']:.2f} GiB"
    )
    print("  stages (median s):", e2e["stages_median_s"])
    # the same command importing MONAI the usual way (what it did before models.lean_import)
    report["end_to_end_full_imports"] = _end_to_end(
        dicom, work / "out", models, args.runs, args.no_refine, env={"LIVERTUMOR_FULL_IMPORTS": "1"}
    )
    full = report["end_to_end_full_imports"]
    print(
        f"end to end, MONAI imported the usual way: median {full['median_s']:.2f} s "
        f"{full['runs_s']} (lean import saves {full['median_s'] - e2e['median_s']:.2f} s)"
    )
    if args.fast_growth and args.only != "e2e":
        extra = ("--window-growth", str(args.fast_growth))
        report["end_to_end_fast"] = _end_to_end(
            dicom, work / "out_fast", models, args.runs, args.no_refine, extra
        )
        f = report["end_to_end_fast"]
        print(f"end to end with --window-growth {args.fast_growth}: median {f['median_s']:.2f} s")
    if args.tta and args.only != "e2e":
        report["end_to_end_tta"] = _end_to_end(
            dicom, work / "out_tta", models, args.runs, args.no_refine, ("--tta", args.tta)
        )
        t = report["end_to_end_tta"]
        print(f"end to end with --tta {args.tta}: median {t['median_s']:.2f} s")

    if args.only == "e2e":
        report.pop("end_to_end_fast", None)
        report.pop("end_to_end_tta", None)
        if "original_config" in old:
            # timed in another run: kept with its own figures only, no ratio across runs
            report["original_config"] = _from_earlier(
                old["original_config"], old, "original_timed_in_this_run"
            )
        if "batch" in old:
            report["batch"] = _from_earlier(old["batch"], old, "measured_in_this_run")
        return _save(report, out_json, out_md)
    if not args.skip_original:
        orig = _original(shape_zyx=(200, 512, 512))
        orig["ratio_original_over_ours"] = round(orig["projected_total_s"] / e2e["median_s"], 1)
        stages_ours = sum(e2e["stages_median_s"].get(k, 0.0) for k in ("liver", "tumor"))
        orig["ratio_original_over_our_two_stages"] = round(
            orig["projected_total_s"] / max(stages_ours, 1e-9), 1
        )
        report["original_config"] = orig
        print(
            f"original configuration (extrapolated from timed windows): "
            f"{orig['projected_total_s']:.0f} s = {orig['ratio_original_over_ours']}x our end to end"
        )

    if args.skip_batch and "batch" in old:
        report["batch"] = _from_earlier(old["batch"], old, "measured_in_this_run")
    if not args.skip_batch:
        report["batch"] = _batch(work, models, args.no_refine)
        b = report["batch"]
        print(
            f"batch: {b['batch_cases_per_min']:.2f} cases/min (one process) vs "
            f"{b['loop_cases_per_min']:.2f} (a process per case): {b['speedup']}x"
        )

    return _save(report, out_json, out_md)


def _from_earlier(block: dict, old: dict, flag: str) -> dict:
    """A part of the earlier report, copied into this one: ``flag`` false, and its date.

    The date is the block's own if it records one, else the earlier report's (a block copied
    before keeps the date it carries). ``original_config`` loses its ratios: they compared it
    with that run's end to end, not this one's.
    """
    block = {k: v for k, v in block.items() if not k.startswith("ratio_")}
    if "earlier_report_date_utc" not in block:
        date = block.get("date_utc") or old.get("machine", {}).get("date_utc", "unknown")
        block["earlier_report_date_utc"] = date
    block[flag] = False
    return block


def _save(report: dict, out_json: Path, out_md: Path, load_after=None) -> int:
    report["load_average_after"] = load_after or os.getloadavg()
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=2))
    out_md.write_text(_markdown(report))
    print(f"saved {out_json} and {out_md}")
    return 0


# --------------------------------------------------------------------------- data + models
def _models(given: str | None, work: Path) -> tuple[Path, str]:
    from napari_livertumor.models import default_model_dir, make_untrained_model

    if given:
        return Path(given), "given on the command line"
    liver, tumor = default_model_dir("liver"), default_model_dir("tumor")
    if (liver / "metadata.json").is_file() and (tumor / "metadata.json").is_file():
        if liver.parent == tumor.parent:
            return liver.parent, "shipped default models"
    root = work / "untrained_models"
    make_untrained_model(root / "liver", "liver", init_filters=8, roi_size=(32, 128, 128))
    make_untrained_model(root / "tumor", "tumor", init_filters=8, roi_size=(32, 96, 96))
    return root, (
        "UNTRAINED models of the default size (no shipped weights found): the liver mask is "
        "random, so the tumor stage's liver ROI is far larger than on a real liver and its "
        "time is pessimistic"
    )


def _make_dicom(work: Path) -> Path:
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.synth import generate_phantom

    folder = work / "BENCH_512x512x200"
    if len(list(folder.glob("*.dcm"))) == 200:
        return folder
    ph = generate_phantom(7, "full", pixel_spacing=0.8, slice_thickness=2.5, n_slices=200)
    assert ph.ct.shape == (200, 512, 512), ph.ct.shape
    write_ct_series(ph.ct, folder, patient_id="BENCH", series_description="bench 512x512x200")
    return folder


# --------------------------------------------------------------------------- measurements
#: runs the measured command as its child and reports that child's own peak RSS: a command
#: started straight from this script inherited the script's peak (Linux counts a forked
#: child's memory from its parent's until exec, and keeps the highest across exec), so a
#: benchmark holding a 512² × 200 scan reported its own 0.9 GB for an empty command
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:])\n"
    "kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "sys.stderr.write(f'\\n@@maxrss_kb {kb}\\n')\n"
    "sys.exit(rc)\n"
)


def _run_cli(cmd: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """Run a command; return (wall s, peak RSS GB sampled incl. children, return code).

    The command runs under a small launcher process (:data:`_LAUNCHER`), whose report of its
    child's peak RSS is kept as ``_run_cli.own_maxrss_gb``.
    """
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    peak = [0]
    ended = threading.Event()

    def sample():
        try:
            p = psutil.Process(proc.pid)
            # (not proc.poll(): it reaps the child, and wait4 below then finds none)
            while not ended.is_set():
                rss = p.memory_info().rss + sum(
                    c.memory_info().rss for c in p.children(recursive=True)
                )
                peak[0] = max(peak[0], rss)
                time.sleep(0.02)
        except psutil.Error:
            pass

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    err_text: list[str] = []
    reader = threading.Thread(target=lambda: err_text.append(proc.stderr.read()), daemon=True)
    reader.start()
    _, status, _ = os.wait4(proc.pid, 0)
    ended.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    th.join()
    reader.join()
    err = "".join(err_text)
    if proc.returncode != 0:
        print(err[-2000:], file=sys.stderr)
    said = [ln for ln in err.splitlines() if ln.startswith("@@maxrss_kb ")]
    # the launcher's child's own peak (Linux: kB); the sampled peak when it said none
    _run_cli.own_maxrss_gb = int(said[-1].split()[1]) / 2**20 if said else 0.0
    return wall, peak[0] / 2**30, proc.returncode


def _segment_cmd(inputs, out, models, no_refine, *extra) -> list[str]:
    cmd = [sys.executable, "-m", "napari_livertumor.cli", "segment", *map(str, inputs)]
    cmd += ["-o", str(out), "--models", str(models), "--device", "cpu", "--overwrite", *extra]
    return cmd + (["--no-refine"] if no_refine else [])


def _end_to_end(
    dicom: Path, out: Path, models: Path, runs: int, no_refine: bool, extra=(), env=None
) -> dict:
    walls, peaks, stages, owns = [], [], [], []
    for k in range(runs):
        wall, peak, rc = _run_cli(_segment_cmd([dicom], out, models, no_refine, *extra), env)
        owns.append(_run_cli.own_maxrss_gb)
        if rc != 0:
            raise SystemExit(f"livertumor segment failed (exit {rc})")
        stats = json.loads((out / f"{dicom.name}_stats.json").read_text())
        walls.append(round(wall, 2))
        peaks.append(peak)
        stages.append(stats["timings_s"])
        print(f"  run {k + 1}: {wall:.2f} s, stages {stats['timings_s']}")
    children_maxrss_gb = max(owns)  # these runs' own peaks (getrusage of each child)
    keys = sorted({k for s in stages for k in s})
    return {
        "input": "synthetic 512x512x200 DICOM series, 0.8x0.8x2.5 mm (synth seed 7)",
        "command": " ".join(_segment_cmd([dicom], out, models, no_refine, *extra)),
        "runs_s": walls,
        "median_s": statistics.median(walls),
        "stages_median_s": {
            k: round(statistics.median(s.get(k, 0.0) for s in stages), 3) for k in keys
        },
        "peak_rss_gb": round(max(max(peaks), children_maxrss_gb), 3),
        "peak_rss_sampled_gb": round(max(peaks), 3),
        "peak_rss_getrusage_gb": round(children_maxrss_gb, 3),
        "stats_sample": {k: stats[k] for k in ("liver_ml", "tumor_ml", "lesion_count", "device")},
    }


def _original(shape_zyx) -> dict:
    import torch

    from napari_livertumor.models import NetworkConfig, build_inference_network

    def windows(shape, roi, overlap=0.2):
        n = 1
        for s, r in zip(shape, roi, strict=True):
            step = max(int(r * (1 - overlap)), 1)
            n *= 1 if s <= r else int(np.ceil((s - r) / step)) + 1
        return n

    out = {}
    for name, roi, classes in (("liver", (16, 512, 512), 2), ("tumor", (32, 256, 256), 3)):
        cfg = NetworkConfig(out_channels=classes, init_filters=16, blocks_down=(1, 2, 2, 4))
        net = build_inference_network(cfg).eval()
        x = torch.rand(1, 1, *roi)
        times = []
        with torch.inference_mode():
            for _ in range(2):
                t0 = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - t0)
        n = windows(shape_zyx, roi)
        per = statistics.median(times)
        out[name] = {
            "window_zyx": list(roi),
            "window_forward_s": [round(t, 2) for t in times],
            "windows_for_volume": n,
            "projected_s": round(per * n, 1),
        }
        print(f"  original {name}: {n} windows x {per:.2f} s = {per * n:.0f} s (extrapolated)")
        del net
    out["projected_total_s"] = round(out["liver"]["projected_s"] + out["tumor"]["projected_s"], 1)
    out["method"] = (
        "SegResNet trunk = SegResNetVAE eval forward, init_filters 16, blocks (1,2,2,4); "
        "two timed forwards per window size (median) x number of windows with overlap 0.2 on "
        "the 200x512x512 volume at native resolution (no resampling); tumor model run over the "
        "whole masked volume as in the original. Extrapolated, not run end to end."
    )
    return out


def _batch(work: Path, models: Path, no_refine: bool) -> dict:
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.synth import generate_phantom

    data = work / "batch_cases"
    data.mkdir(exist_ok=True)
    specs = [(f"small_{i:02d}", 100 + i, "small") for i in range(10)]
    specs += [(f"full_{i}", 200 + i, "full") for i in range(3)]
    for name, seed, shape in specs:
        path = data / f"{name}.nii.gz"
        if not path.exists():
            write_nifti(generate_phantom(seed, shape).ct, path)
    n = len(specs)
    wall_batch, peak_b, rc = _run_cli(_segment_cmd([data], work / "batch_out", models, no_refine))
    if rc != 0:
        raise SystemExit(f"batch run failed (exit {rc})")
    t_loop = 0.0
    for name, _, _ in specs:
        wall, _, rc = _run_cli(
            _segment_cmd([data / f"{name}.nii.gz"], work / "loop_out", models, no_refine)
        )
        if rc != 0:
            raise SystemExit(f"single-case run for {name} failed (exit {rc})")
        t_loop += wall
    return {
        "cases": f"{n} synthetic NIfTI cases: 10 'small' (96x96x32) + 3 'full' (512x512, 60-200 slices)",
        "batch_s": round(wall_batch, 2),
        "loop_s": round(t_loop, 2),
        "batch_cases_per_min": round(n / wall_batch * 60, 2),
        "loop_cases_per_min": round(n / t_loop * 60, 2),
        "speedup": round(t_loop / wall_batch, 2),
        "batch_peak_rss_gb": round(peak_b, 3),
        "load_average_after": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


# --------------------------------------------------------------------------- report
def _machine() -> dict:
    import platform

    import torch

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "load_average_before": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def _markdown(r: dict) -> str:
    e = r["end_to_end"]
    lines = [
        "# `livertumor segment` benchmark",
        "",
        f"Machine: {r['machine']['cpu_count']} CPU cores, torch {r['machine']['torch']} "
        f"({r['torch_threads']} threads), {r['machine']['date_utc']} UTC; load average before "
        f"{tuple(round(v, 1) for v in r['machine']['load_average_before'])}, after "
        f"{tuple(round(v, 1) for v in r['load_average_after'])} (a shared machine: noisy).",
        f"Models: `{r['models']}` — {r['models_note']}. Refinement: {r['refine']}.",
        "",
        "## End to end (512×512×200 DICOM, 0.8×0.8×2.5 mm)",
        "",
        f"- median **{e['median_s']:.2f} s** over runs {e['runs_s']} (bar: ≤ 20 s)",
        f"- peak RSS **{e['peak_rss_gb']:.2f} GiB** (bar: ≤ 4 GB)",
        "- per stage (median s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in e["stages_median_s"].items()),
        f"- command: `{e['command']}`",
        "",
    ]
    if "end_to_end_full_imports" in r:
        full = r["end_to_end_full_imports"]
        lines += [
            "Same command with `LIVERTUMOR_FULL_IMPORTS=1` (MONAI imported with every optional "
            "package it finds, as before `models.lean_import`), in the same run: median "
            f"**{full['median_s']:.2f} s** over runs {full['runs_s']}, peak RSS "
            f"{full['peak_rss_gb']:.2f} GiB.",
            "",
        ]
    if "end_to_end_fast" in r:
        f = r["end_to_end_fast"]
        lines += [
            "## Same, with another window size (`--window-growth`)",
            "",
            f"- median **{f['median_s']:.2f} s** over runs {f['runs_s']}, peak RSS "
            f"{f['peak_rss_gb']:.2f} GiB",
            "- per stage (median s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in f["stages_median_s"].items()),
            f"- command: `{f['command']}`",
            "",
        ]
    if "end_to_end_tta" in r:
        t = r["end_to_end_tta"]
        lines += [
            "## Same, with the tumor stage's mirrored passes (`--tta`)",
            "",
            f"- median **{t['median_s']:.2f} s** over runs {t['runs_s']}, peak RSS "
            f"{t['peak_rss_gb']:.2f} GiB",
            "- per stage (median s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in t["stages_median_s"].items()),
            f"- command: `{t['command']}`",
            "",
        ]
    if "original_config" in r:
        o = r["original_config"]
        same_run = o.get("original_timed_in_this_run", True)
        lines += ["## The original method's configuration (extrapolated)", ""]
        if not same_run:
            lines += [
                f"Timed in another run (report of {o['earlier_report_date_utc']} UTC), not in "
                "this one: no ratio to this run's end to end is computed.",
                "",
            ]
        lines += [
            f"- liver: {o['liver']['windows_for_volume']} windows (16,512,512) × "
            f"{min(o['liver']['window_forward_s']):.2f}–{max(o['liver']['window_forward_s']):.2f} s"
            f" → {o['liver']['projected_s']:.0f} s",
            f"- tumor: {o['tumor']['windows_for_volume']} windows (32,256,256) × "
            f"{min(o['tumor']['window_forward_s']):.2f}–{max(o['tumor']['window_forward_s']):.2f} s"
            f" → {o['tumor']['projected_s']:.0f} s",
            f"- total **{o['projected_total_s']:.0f} s = {o['ratio_original_over_ours']}× our end "
            f"to end** ({o['ratio_original_over_our_two_stages']}× our two stages)"
            if same_run
            else f"- total **{o['projected_total_s']:.0f} s** (timed in another run)",
            f"- {o['method']}",
            "",
        ]
    if "batch" in r:
        b = r["batch"]
        lines += ["## Batch throughput (issue 9)", ""]
        if not b.get("measured_in_this_run", True):
            lines += [
                f"Not measured in this run: copied from the report of "
                f"{b['earlier_report_date_utc']} UTC.",
                "",
            ]
        elif b.get("date_utc"):
            lines += [f"Measured {b['date_utc']} UTC.", ""]
        lines += [
            f"- {b['cases']}",
            f"- one process, one model load: {b['batch_s']:.1f} s = "
            f"**{b['batch_cases_per_min']:.2f} cases/min** (peak RSS {b['batch_peak_rss_gb']:.2f} GiB)",
            f"- a process per case: {b['loop_s']:.1f} s = {b['loop_cases_per_min']:.2f} cases/min",
            f"- speed-up **{b['speedup']}×**",
        ]
        if b.get("models_note"):
            lines.append(f"- {b['models_note']}")
        lines.append("")
    lines.append("Reproduce: `python benchmarks/bench_segment.py`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
