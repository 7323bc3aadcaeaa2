"""Memory of ``livertumor segment`` as the scan grows, and the estimate that refuses a scan
too big for the machine (``napari_livertumor.memory``), checked against it (issue 5: "a tiny
or huge volume ... a clear message").

One synthetic ``full`` phantom (512×512×160, 0.8×0.8×2.5 mm) is written as int16 NIfTI, with
variants of it: stacked 3 and 6 times along z (126 and 252 M voxels: a chest-abdomen-pelvis
or whole-body length), the 6-times stack on 0.625 mm slices (the same voxels, a quarter of
the length: the networks' resampled grids shrink, the full-resolution arrays do not) and
resampled to 1024×1024 in-plane (0.4 mm pixels). Each goes through ``livertumor segment``
(both stages, refinement, writing) in a fresh process, its peak RSS sampled with psutil and
reported by a small launcher process (``bench_segment._run_cli``). A line ``fixed + per_voxel × voxels`` is fitted to the peaks and
:func:`napari_livertumor.memory.segment_need_bytes` plus the CT's own bytes is set beside
each peak: the estimate must cover every one.

Results go to ``benchmarks/results/memory.json`` and ``memory.md``.

Usage::

    python benchmarks/bench_memory.py [--workdir DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DEFAULT_OUT = HERE / "results" / "memory.json"


def _variants(work: Path) -> list[tuple[str, Path, tuple[int, int, int], str]]:
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.synth import generate_phantom

    ph = generate_phantom(7, "full", pixel_spacing=0.8, slice_thickness=2.5, n_slices=160)
    ct = np.asarray(ph.ct.array, np.int16)
    dz, dy, dx = (float(v) for v in ph.ct.spacing)
    out = []

    def add(name, array, spacing):
        path = work / f"{name}.nii.gz"
        if not path.exists():
            write_nifti(CTVolume(array, spacing=spacing), path)
        out.append((name, path, tuple(array.shape), ""))

    add("base_512x512x160", ct, (dz, dy, dx))
    add("z3_512x512x480", np.concatenate([ct] * 3), (dz, dy, dx))
    six = np.concatenate([ct] * 6)
    add("z6_512x512x960", six, (dz, dy, dx))
    add("z6thin_512x512x960", six, (0.625, dy, dx))
    del six
    add("xy2_1024x1024x160", ct.repeat(2, axis=1).repeat(2, axis=2), (dz, dy / 2, dx / 2))
    # stored in another axis order (RAS, as many NIfTI tools write): the segmentation turns
    # it to the models' axes first, a copy the estimate counts
    path = work / "z3ras_512x512x480.nii.gz"
    if not path.exists():
        three = np.concatenate([ct] * 3)
        ras = CTVolume(three, spacing=(dz, dy, dx), direction=np.diag([-1.0, -1.0, 1.0]))
        write_nifti(ras, path)
        del three
    out.append(("z3ras_512x512x480", path, (480, 512, 512), "ras"))
    return out


def _resident_before_segmenting() -> int:
    """RSS of a fresh process that has imported the package and loaded both shipped models,
    what is resident when :meth:`Segmenter.segment` checks the memory it needs (bytes)."""
    import subprocess

    code = (
        "import psutil\n"
        "from napari_livertumor.pipeline import InferenceConfig, Segmenter\n"
        "Segmenter(InferenceConfig(device='cpu'))\n"
        "print(psutil.Process().memory_info().rss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    return int(done.stdout.split()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", help="keep the generated scans here (default: a temp folder)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)

    from bench_segment import _run_cli

    from napari_livertumor import memory

    base = _resident_before_segmenting()
    print(f"resident before segmentation starts (Python, torch, both models): {base / 1e9:.3f} GB")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_mem_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for name, path, shape, stored in _variants(work):
            out = work / f"out_{name}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, "-m", "napari_livertumor.cli", "segment", str(path)]
            cmd += ["-o", str(out), "--device", "cpu"]
            wall, peak_sampled, rc = _run_cli(cmd, {"OMP_NUM_THREADS": "2"})
            peak = max(peak_sampled, _run_cli.own_maxrss_gb) * 2**30
            voxels = int(np.prod(shape))
            # (as Segmenter.segment counts it: a turned copy and the labels turned back)
            copy = 3 if stored == "ras" else 0
            need = memory.segment_need_bytes(shape, copy_bytes_per_voxel=copy)
            estimate = base + voxels * 2 + need
            rows.append(
                {
                    "case": name,
                    "shape_zyx": list(shape),
                    "voxels_m": round(voxels / 1e6, 1),
                    "stored": stored or "LPS (as the models' axes)",
                    "rc": rc,
                    "wall_s": round(wall, 1),
                    "peak_rss_gb": round(peak / 1e9, 3),
                    "estimate_gb": round(estimate / 1e9, 3),
                    "covered": bool(estimate >= peak),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    ok = [r for r in rows if r["rc"] == 0]
    fit_rows = [r for r in ok if r["stored"].startswith("LPS")]
    v = np.array([r["voxels_m"] * 1e6 for r in fit_rows])
    p = np.array([r["peak_rss_gb"] * 1e9 for r in fit_rows])
    slope, fixed = np.polyfit(v, p, 1) if len(fit_rows) >= 2 else (float("nan"), float("nan"))
    report = {
        "what": "peak RSS of `livertumor segment` (int16 NIfTI, both stages, refinement, "
        "writing) against the scan's voxels; the estimate is what is resident before "
        "segmentation starts, the CT's 2 bytes per voxel and "
        "napari_livertumor.memory.segment_need_bytes",
        "rows": rows,
        "fit": {"fixed_gb": round(fixed / 1e9, 3), "bytes_per_voxel": round(slope, 2)},
        "resident_before_segmenting_gb": round(base / 1e9, 3),
        "estimate": {
            "fixed_bytes": memory.SEGMENT_FIXED_BYTES,
            "bytes_per_voxel_beyond_ct": memory.SEGMENT_BYTES_PER_VOXEL,
        },
        "all_covered": all(r["covered"] for r in ok) and len(ok) == len(rows),
        "lowest_margin": round(min(r["estimate_gb"] / r["peak_rss_gb"] for r in ok), 2)
        if ok
        else None,
        "machine": f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the end",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    lines = [
        "# `livertumor segment`: memory against scan size",
        "",
        report["what"] + ".",
        "",
        "| case | z × y × x | stored | M voxels | peak RSS (GB) | estimate (GB) | covered | "
        "wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {' × '.join(map(str, r['shape_zyx']))} | {r['stored']} | "
            f"{r['voxels_m']} | "
            f"{r['peak_rss_gb']} | {r['estimate_gb']} | {'yes' if r['covered'] else '**no**'} "
            f"| {r['wall_s']} |"
        )
    lines += [
        "",
        f"Fitted (scans stored in the models' axes): peak = {report['fit']['fixed_gb']} GB + "
        f"{report['fit']['bytes_per_voxel']} bytes per voxel. Estimate: what is resident before segmentation starts "
        f"({report['resident_before_segmenting_gb']} GB: Python, torch, both models), the CT "
        f"(2 bytes per voxel) + "
        f"{memory.SEGMENT_FIXED_BYTES / 1e9:.1f} GB + {memory.SEGMENT_BYTES_PER_VOXEL} bytes "
        f"per voxel (3 more for a scan stored in another axis order); lowest estimate / peak {report['lowest_margin']}.",
        "",
        report["machine"] + ".",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0 if report["all_covered"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
