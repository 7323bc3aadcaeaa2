"""Speed of the tumor-contour refinement (issue 7 bars), next to scikit-image on whole slices.

    python benchmarks/bench_refine.py                 # core timings -> benchmarks/results/refine.json
    xvfb-run -a python benchmarks/bench_refine.py --widget --screenshot docs/images/refine_widget.png
    xvfb-run -a python benchmarks/bench_refine.py --edits [--baseline OLD_CHECKOUT]

1. Live preview: one slice through a 4 cm lesion of a 512² CT at 0.7 mm, median time of
   ``refine_slice`` after a parameter change (the core call the widget's worker makes), and
   scikit-image's ``morphological_chan_vese`` with the same settings on the full 512² slice.
2. 3D: ``refine_all`` on a CT with one 5 cm lesion, and scikit-image on the full-size slab of
   slices holding the ROI (512² × the ROI's slices) with the same settings.
3. (``--widget``) the widget: time from a slider change to the new preview on screen, with and
   without the 80 ms debounce the widget waits for the user to pause.
4. (``--edits``) the longest stall of the window at Apply to slice, Apply to all, Undo and
   Reset on a 512² × 200 CT, optionally beside another version's (``--baseline``).

Timings on a shared CPU are noisy; the medians are printed with the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from skimage.segmentation import morphological_chan_vese

from napari_livertumor.refine import RefineConfig, lesion_boxes, refine_all, refine_slice, window_ct
from napari_livertumor.synth import generate_phantom

ROOT = Path(__file__).resolve().parents[1]


def lesion_case(diameter_mm: float, seed: int = 7, n_slices: int = 60):
    ph = generate_phantom(
        seed,
        "full",
        phase="arterial",  # a hyperenhancing HCC: a boundary the contour can find
        tumor_diameters_mm=[diameter_mm],
        tumor_kinds=["typical"],
        pixel_spacing=0.7,
        slice_thickness=2.5,
        n_slices=n_slices,
    )
    truth = ph.labels == 2
    liver = np.isin(ph.labels, (1, 2, 3))
    return ph, truth, liver


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def stats(ms: list[float]) -> dict:
    return {
        "median_ms": statistics.median(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "n": len(ms),
    }


def bench_slice(cfg: RefineConfig, repeats: int) -> dict:
    ph, truth, liver = lesion_case(40.0)
    z = int(np.argmax(truth.sum(axis=(1, 2))))
    ct2d, tumor2d, liver2d = ph.ct.array[z], truth[z], liver[z]
    sp = ph.ct.spacing[1:]
    # each call is a "parameter change": cycle lambda2 so no two calls are alike
    variants = [replace(cfg, lambda2=1.0 + 0.05 * (i % 5)) for i in range(repeats)]
    it = iter(variants)
    notes: list[str] = []
    refine_slice(ct2d, tumor2d, liver2d, sp, cfg, notes=notes)
    if notes:  # a gated or skipped lesion would time nothing
        raise RuntimeError(f"the benchmark lesion was not refined: {notes}")
    ours = timed(lambda: refine_slice(ct2d, tumor2d, liver2d, sp, next(it)), repeats)
    image = window_ct(ct2d, cfg.hu_window)
    whole = timed(
        lambda: morphological_chan_vese(
            image, cfg.iterations, init_level_set=tumor2d.astype(np.int8), smoothing=cfg.smoothing
        ),
        max(3, repeats // 4),
    )
    return {
        "slice_shape": list(ct2d.shape),
        "pixel_mm": sp[0],
        "lesion_diameter_px": int(tumor2d.any(axis=0).sum()),
        "ours": stats(ours),
        "skimage_full_slice": stats(whole),
        "speedup": statistics.median(whole) / statistics.median(ours),
        "goal_ms": 50,
    }


def bench_3d(cfg: RefineConfig, repeats: int) -> dict:
    ph, truth, liver = lesion_case(50.0)
    ct, sp = ph.ct.array, ph.ct.spacing
    notes: list[str] = []
    refine_all(ct, truth, liver, sp, cfg, notes=notes)
    if notes:
        raise RuntimeError(f"the benchmark lesion was not refined: {notes}")
    ours = timed(lambda: refine_all(ct, truth, liver, sp, cfg), repeats)
    (roi,) = lesion_boxes(truth, sp, cfg.roi_margin_mm)
    slab = (roi[0], slice(None), slice(None))
    image = window_ct(ct[slab], cfg.hu_window)
    init = truth[slab].astype(np.int8)
    whole = timed(
        lambda: morphological_chan_vese(
            image, cfg.iterations, init_level_set=init, smoothing=cfg.smoothing
        ),
        1,
    )
    return {
        "volume_shape": list(ct.shape),
        "roi_shape": [s.stop - s.start for s in roi],
        "spacing_mm": list(sp),
        "ours": stats(ours),
        "skimage_full_slab_shape": list(image.shape),
        "skimage_full_slab": stats(whole),
        "speedup": statistics.median(whole) / statistics.median(ours),
        "goal_ms": 1000,
    }


def bench_widget(repeats: int, screenshot: str | None) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets.refine import DEBOUNCE_MS, RefineWidget

    ph, truth, liver = lesion_case(40.0)
    from scipy import ndimage as ndi

    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndi.generate_binary_structure(2, 1)
    model = ndi.binary_erosion(truth, plane, iterations=4)  # a too-small "model" tumor
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[model] = 2

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    _layers.add_ct_layer(viewer, ph.ct, name="CT (synthetic)")
    seg = _layers.add_labels_layer(
        viewer, labels, ph.ct, "CT (synthetic) segmentation", ct_layer_name="CT (synthetic)"
    )
    seg.opacity = 0.35
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="3 Refine tumor", area="right")
    z = int(np.argmax(truth.sum(axis=(1, 2))))
    viewer.dims.set_current_step(0, z)
    app = QApplication.instance()

    def wait_preview(count, timeout=10.0):
        end = time.perf_counter() + timeout
        while widget.preview_count <= count or widget._preview_busy:
            app.processEvents()
            if time.perf_counter() > end:
                raise TimeoutError(
                    f"no preview: status {widget.status.text()!r}, notes {widget.notes.text()!r}"
                )
            time.sleep(0.001)

    wait_preview(-1)
    total, core = [], []
    for i in range(repeats):
        count = widget.preview_count
        t0 = time.perf_counter()
        widget.iterations.value = 5 + (i % 4)  # the user drags the slider
        wait_preview(count)
        total.append((time.perf_counter() - t0) * 1000.0)
        core.append(widget.last_preview_ms)
    result = {
        "slider_to_preview": stats(total),
        "after_debounce": stats(core),
        "debounce_ms": DEBOUNCE_MS,
    }
    if screenshot:
        count = widget.preview_count
        widget.iterations.value = RefineConfig().iterations
        widget.schedule_preview()  # in case the value did not change
        wait_preview(count)
        viewer.layers.selection.active = seg
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        ly = viewer.layers["CT (synthetic)"]
        yx = np.argwhere(truth[z]).mean(axis=0) * np.asarray(ph.ct.spacing[1:])
        viewer.camera.center = (0.0, *(yx + np.asarray(ly.translate[1:])))
        viewer.camera.zoom = 3.0
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        try:  # the "PyQt5 is deprecated" toast would cover the canvas
            from napari._qt.dialogs.qt_notification import NapariQtNotification

            for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
                toast.close()
            app.processEvents()
        except Exception:  # private napari API; a toast in the picture is no failure
            pass
        path = Path(screenshot)
        path.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(path), canvas_only=False)
        result["screenshot"] = str(path)
    viewer.close()
    return result


def bench_edits(repeats: int) -> dict:
    """Longest stall of the window (20 ms heartbeat) while the Refine panel applies, undoes and
    resets on a full-size CT (512² × 200 slices, three lesions): the work an Apply leaves to
    the window is writing the changed part and listing the lesions anew."""
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets._heartbeat import Heartbeat
    from napari_livertumor._widgets.refine import RefineWidget

    ph = generate_phantom(
        3, "full", phase="arterial", tumor_kinds=["typical"] * 3, n_tumors=3,
        pixel_spacing=0.7, slice_thickness=2.5, n_slices=200,
    )  # fmt: skip
    truth, liver = ph.labels == 2, np.isin(ph.labels, (1, 2, 3))
    from scipy import ndimage as ndi

    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndi.generate_binary_structure(2, 1)
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[ndi.binary_erosion(truth, plane, iterations=3)] = 2
    viewer = napari.Viewer(show=True)
    _layers.add_ct_layer(viewer, ph.ct, name="CT")
    _layers.add_labels_layer(viewer, labels, ph.ct, "CT segmentation", ct_layer_name="CT")
    widget = RefineWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Refine", area="right")
    viewer.dims.set_current_step(0, int(np.argmax(truth.sum(axis=(1, 2)))))
    widget.min_contrast.value = 0  # every lesion is refined: the most the window has to write
    app = QApplication.instance()

    def settle(ms: float) -> None:
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    def stall_of(action) -> float:
        settle(300)
        while widget.busy or widget._preview_busy:
            settle(50)
        beat = Heartbeat(20).start()
        settle(60)
        QTimer.singleShot(0, action)
        settle(60)
        while widget.busy or widget._preview_busy:
            settle(20)
        settle(300)
        return beat.stop()

    actions = {
        "apply_slice": widget.apply_slice,
        "undo_slice": widget.undo,
        "apply_all": widget.apply_all,
        "undo_all": widget.undo,
        "reset": widget.reset_to_model_output,
        "undo_reset": widget.undo,
    }
    runs: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeats):
        for name, action in actions.items():
            if name == "reset":  # something to reset: the slice applied again (a worker)
                widget.apply_slice()
                while widget.busy:
                    settle(20)
            runs[name].append(stall_of(action))
        widget.undo()  # the slice applied before the reset
    viewer.close()
    return {
        "ct_shape": list(ph.ct.shape),
        "heartbeat_ms": 20,
        "max_stall_ms": {name: stats(ms) for name, ms in runs.items()},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--widget", action="store_true", help="also time the widget (needs a display)")
    ap.add_argument("--screenshot", help="save a window screenshot here (with --widget)")
    ap.add_argument(
        "--edits", action="store_true",
        help="also time the window's stalls at Apply, Undo and Reset on a 512² × 200 CT "
        "(needs a display)",
    )  # fmt: skip
    ap.add_argument(
        "--baseline",
        help="with --edits: a checkout of another version (e.g. `git worktree add OLD REV`) "
        "timed the same way in this run, for comparison",
    )
    ap.add_argument("--edits-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("-o", "--out", default=str(ROOT / "benchmarks" / "results" / "refine.json"))
    args = ap.parse_args(argv)
    if args.edits_only:  # the baseline's run, in its own process (see --baseline)
        print(json.dumps(bench_edits(max(3, args.repeats // 7))))
        return 0
    cfg = RefineConfig()
    result = {
        "config": cfg.to_dict(),
        "machine": {
            "cpus": os.cpu_count(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
            "python": platform.python_version(),
            "note": "shared 2-core CPU; timings are noisy",
        },
    }
    result["slice_preview"] = s = bench_slice(cfg, args.repeats)
    print(
        f"live preview, {s['lesion_diameter_px']} px lesion on a {s['slice_shape']} slice: "
        f"median {s['ours']['median_ms']:.1f} ms (goal ≤ 50); scikit-image on the full slice "
        f"{s['skimage_full_slice']['median_ms']:.0f} ms → {s['speedup']:.1f}× faster"
    )
    result["slice_preview_smoothing1"] = s1 = bench_slice(replace(cfg, smoothing=1), args.repeats)
    print(
        f"  same with smoothing 1: median {s1['ours']['median_ms']:.1f} ms; scikit-image on the "
        f"full slice {s1['skimage_full_slice']['median_ms']:.0f} ms → {s1['speedup']:.1f}× faster"
    )
    result["lesion_3d"] = d = bench_3d(cfg, max(3, args.repeats // 4))
    print(
        f"3D, 5 cm lesion (ROI {d['roi_shape']}): median {d['ours']['median_ms']:.0f} ms "
        f"(goal ≤ 1000); scikit-image on the full slab {d['skimage_full_slab_shape']} "
        f"{d['skimage_full_slab']['median_ms']:.0f} ms → {d['speedup']:.1f}× faster"
    )
    if args.widget:
        result["widget"] = w = bench_widget(max(5, args.repeats // 2), args.screenshot)
        print(
            f"widget: slider change to preview shown median "
            f"{w['slider_to_preview']['median_ms']:.0f} ms (incl. {w['debounce_ms']} ms debounce); "
            f"after the debounce {w['after_debounce']['median_ms']:.0f} ms"
        )
    if args.edits:
        n = max(3, args.repeats // 7)
        result["edits"] = e = bench_edits(n)
        base = None
        if args.baseline:
            import subprocess

            src = str(Path(args.baseline).resolve())
            run = subprocess.run(
                [sys.executable, __file__, "--edits-only", "--repeats", str(args.repeats)],
                env={**os.environ, "PYTHONPATH": src}, capture_output=True, text=True, check=True,
            )  # fmt: skip
            base = json.loads(run.stdout.strip().splitlines()[-1])
            base["source"] = src
            result["edits_baseline"] = base
        print(f"window stalls on a {e['ct_shape']} CT (median of {n}):")
        for name, st in e["max_stall_ms"].items():
            was = ""
            if base is not None:
                old = base["max_stall_ms"][name]["median_ms"]
                was = f"; baseline {old:.0f} ms ({old / max(st['median_ms'], 1):.1f}×)"
            print(f"  {name}: {st['median_ms']:.0f} ms (max {st['max_ms']:.0f}){was}")
    out = Path(args.out)
    if out.exists():  # a run of some parts keeps the figures of the others
        try:
            result = {**json.loads(out.read_text()), **result}
        except (OSError, ValueError):
            pass
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
