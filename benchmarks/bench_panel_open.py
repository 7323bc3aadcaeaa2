"""How long the napari window freezes when the Segment panel opens in a fresh process.

    xvfb-run -a python benchmarks/bench_panel_open.py   # -> benchmarks/results/panel_open.json

(Without a display it re-runs itself under ``xvfb-run -a``.)

The panel needs torch and MONAI (seconds to import). Two ways, each in its own fresh process,
measured in the same run: ``background`` (what the panel does: the imports in a worker thread,
the device line filled in when they end) and ``gui_thread`` (the imports done on the GUI thread
as the panel opens, as before). A 20 ms QTimer heartbeat runs in the GUI thread from before the
panel is added until the device line is filled in; the longest gap minus 20 ms is the longest
time the window could not react ("stall"). Medians over ``--repeats`` runs; the machine's load
average is saved with them (a shared CPU is noisy).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "panel_open.json"

CHILD = r"""
import json, sys, time
mode = sys.argv[1]
import napari
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from napari_livertumor._widgets import _common, segment

viewer = napari.Viewer(show=True)
app = QApplication.instance()
for _ in range(20):
    app.processEvents()
    time.sleep(0.01)
if mode == "gui_thread":  # the imports on the GUI thread, as the panel did before
    def sync(label, *modules):
        _common.warm_up_imports(*modules)
        label.setText(_common.device_summary())
    segment.warm_up_in_background = sync
beats = []
timer = QTimer()
timer.setInterval(20)
timer.timeout.connect(lambda: beats.append(time.perf_counter()))
timer.start()
t0 = time.perf_counter()
beats.append(t0)
widget = segment.SegmentWidget(viewer)
viewer.window.add_dock_widget(widget)
while widget.device_info.text() == _common.CHECKING_DEVICE:
    app.processEvents()
    time.sleep(0.002)
ready = time.perf_counter() - t0
end = time.perf_counter() + 0.2
while time.perf_counter() < end:
    app.processEvents()
    time.sleep(0.002)
beats.append(time.perf_counter())
gaps = [b - a for a, b in zip(beats, beats[1:])]
print(json.dumps({"max_stall_ms": round(max(0.0, max(gaps) - 0.02) * 1000, 1),
                  "ready_s": round(ready, 2), "device": widget.device_info.text()}))
viewer.close()
"""


def run_once(mode: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, env=env, timeout=300
    )
    if out.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default=str(OUT), help=f"where the figures go (default {OUT})")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per way (default 3)")
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY"):  # as bench_gui_responsiveness.py: under a virtual display
        if shutil.which("xvfb-run"):
            again = [
                sys.executable,
                str(Path(__file__).resolve()),
                *(sys.argv[1:] if argv is None else argv),
            ]
            return subprocess.call(["xvfb-run", "-a", *again])
        print("bench_panel_open: no display (DISPLAY unset) and no xvfb-run", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"background": [], "gui_thread": []}
    for _ in range(args.repeats):  # interleaved, so drifting load hits both alike
        for mode in runs:
            runs[mode].append(run_once(mode))
    summary = {}
    for mode, rows in runs.items():
        summary[mode] = {
            "median_max_stall_ms": statistics.median(r["max_stall_ms"] for r in rows),
            "median_ready_s": statistics.median(r["ready_s"] for r in rows),
            "runs": rows,
        }
        print(
            f"{mode:>11}: longest stall {summary[mode]['median_max_stall_ms']:.0f} ms (median of "
            f"{len(rows)}), device line after {summary[mode]['median_ready_s']:.1f} s"
        )
    bg = summary["background"]["median_max_stall_ms"]
    ratio = summary["gui_thread"]["median_max_stall_ms"] / max(bg, 1.0)
    print(f"imports on the GUI thread freeze the window {ratio:.1f}x longer")
    result = {
        "what": "longest Qt event-loop stall (ms) while the Segment panel opens, fresh process",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_1min_at_start": round(load, 2),
        "cpu_count": os.cpu_count(),
        "results": summary,
        "gui_thread_over_background": round(ratio, 2),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
