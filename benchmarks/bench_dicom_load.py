"""Load time and peak memory of a 300-slice 512x512 CT series: our reader vs SimpleITK.

Writes a synthetic series (shuffled file names) to a temporary folder, then reads it repeatedly
with ``napari_livertumor.io.dicom.read_dicom_series`` and with SimpleITK's ``ImageSeriesReader``
(file discovery with ``GetGDCMSeriesFileNames`` included, as a user would call it), alternating
the two so both see the same page cache. Peak memory is measured in fresh subprocesses (peak RSS,
sampled every 2 ms, minus the RSS after imports) and with tracemalloc for our reader.

Run:  python benchmarks/bench_dicom_load.py [--slices 300] [--size 512] [--repeats 5] [--out PATH]
Prints a table and writes benchmarks/results/dicom_load.json (or ``--out PATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "dicom_load.json"

_MEMORY_PROBE = r"""
import json, sys, threading, time, tracemalloc
import psutil
which, folder = sys.argv[1], sys.argv[2]
import numpy as np
if which == "ours":
    from napari_livertumor.io.dicom import read_dicom_series
else:
    import SimpleITK as sitk
proc = psutil.Process()
baseline = proc.memory_info().rss
peak = [baseline]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.002)
sampler = threading.Thread(target=sample)
sampler.start()
tracemalloc.start()
if which == "ours":
    arr = read_dicom_series(folder).array
else:
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(folder))
    arr = sitk.GetArrayViewFromImage(r.Execute())
_, traced = tracemalloc.get_traced_memory()
done.set()
sampler.join()
peak[0] = max(peak[0], proc.memory_info().rss)
print(json.dumps({"rss_peak_increase": peak[0] - baseline, "traced_peak": traced,
                  "nbytes": int(arr.nbytes)}))
"""


def make_series(folder: Path, n_slices: int, size: int) -> None:
    from napari_livertumor.io import CTVolume
    from napari_livertumor.io.dicom_write import write_ct_series

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    body = (
        (yy - size / 2) ** 2 / (0.38 * size) ** 2 + (xx - size / 2) ** 2 / (0.45 * size) ** 2
    ) < 1
    base = np.where(body, 40, -1000).astype(np.int16)
    array = np.empty((n_slices, size, size), np.int16)
    for z in range(n_slices):
        array[z] = base + rng.integers(-20, 20, size=(size, size), dtype=np.int16)
    volume = CTVolume(array, (2.5, 0.7, 0.7), (-180.0, -180.0, -900.0))
    names = [f"IM{k:05d}" for k in range(n_slices)]
    random.Random(1).shuffle(names)
    write_ct_series(volume, folder, file_names=names)


def time_ours(folder: Path) -> float:
    from napari_livertumor.io.dicom import read_dicom_series

    t0 = time.perf_counter()
    read_dicom_series(folder)
    return time.perf_counter() - t0


def time_sitk(folder: Path) -> float:
    import SimpleITK as sitk

    t0 = time.perf_counter()
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    sitk.GetArrayViewFromImage(reader.Execute())
    return time.perf_counter() - t0


def memory(which: str, folder: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, which, str(folder)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out", default=str(RESULTS), help=f"where the figures go (default {RESULTS})"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_dicom_") as tmp:
        folder = Path(tmp) / "series"
        t0 = time.perf_counter()
        make_series(folder, args.slices, args.size)
        write_s = time.perf_counter() - t0
        time_ours(folder), time_sitk(folder)  # warm the page cache for both
        ours, sitk_times = [], []
        for _ in range(args.repeats):
            ours.append(time_ours(folder))
            sitk_times.append(time_sitk(folder))
        mem_ours = memory("ours", folder)
        mem_sitk = memory("sitk", folder)

    nbytes = args.slices * args.size * args.size * 2
    result = {
        "series": f"{args.slices} slices of {args.size}x{args.size} int16, shuffled file names",
        "repeats": args.repeats,
        "write_series_s": round(write_s, 2),
        "ours_median_s": round(statistics.median(ours), 3),
        "sitk_median_s": round(statistics.median(sitk_times), 3),
        "ratio_ours_over_sitk": round(statistics.median(ours) / statistics.median(sitk_times), 3),
        "ours_all_s": [round(t, 3) for t in ours],
        "sitk_all_s": [round(t, 3) for t in sitk_times],
        "volume_mb": round(nbytes / 1e6, 1),
        "ours_peak_rss_increase_mb": round(mem_ours["rss_peak_increase"] / 1e6, 1),
        "ours_tracemalloc_peak_mb": round(mem_ours["traced_peak"] / 1e6, 1),
        "ours_peak_over_volume": round(mem_ours["rss_peak_increase"] / nbytes, 2),
        "sitk_peak_rss_increase_mb": round(mem_sitk["rss_peak_increase"] / 1e6, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        "(shared with other jobs: timings are noisy)",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    print(f"DICOM load, {result['series']} ({result['volume_mb']} MB in memory)")
    print(f"  ours       median {result['ours_median_s']:.3f} s  {result['ours_all_s']}")
    print(f"  SimpleITK  median {result['sitk_median_s']:.3f} s  {result['sitk_all_s']}")
    print(f"  ratio ours/SimpleITK = {result['ratio_ours_over_sitk']:.2f}")
    print(
        f"  peak memory increase: ours {result['ours_peak_rss_increase_mb']} MB RSS "
        f"({result['ours_peak_over_volume']}x the volume; tracemalloc "
        f"{result['ours_tracemalloc_peak_mb']} MB), SimpleITK "
        f"{result['sitk_peak_rss_increase_mb']} MB RSS"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
