"""Speed of the tumor-contour refinement (issue 7 bars), next to scikit-image on whole slices.

    python benchmarks/bench_refine.py                 # core timings -> benchmarks/results/refine.json
    xvfb-run -a python benchmarks/bench_refine.py --widget --screenshot docs/images/refine_widget.png

1. Live preview: one slice through a 4 cm lesion of a 512² CT at 0.7 mm, median time of
   ``refine_slice`` after a parameter change (the core call the widget's worker makes), and
   scikit-image's ``morphological_chan_vese`` with the same settings on the full 512² slice.
2. 3D: ``refine_all`` on a CT with one 5 cm lesion, and scikit-image on the full-size slab of
   slices holding the ROI (512² × the ROI's slices) with the same settings.
3. (``--widget``) the widget: time from a slider change to the new preview on screen, with and
   without the 80 ms debounce the widget waits for the user to pause.

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--widget", action="store_true", help="also time the widget (needs a display)")
    ap.add_argument("--screenshot", help="save a window screenshot here (with --widget)")
    ap.add_argument("-o", "--out", default=str(ROOT / "benchmarks" / "results" / "refine.json"))
    args = ap.parse_args(argv)
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
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
