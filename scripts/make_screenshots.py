"""README screenshots of the napari workflow, taken under Xvfb.

    python scripts/make_screenshots.py            # re-runs itself under xvfb-run if no display

Writes ``docs/images/workflow.png`` (the synthetic sample CT with liver and tumor overlays, the
Segment and Inspect panels, the lesion list) and ``docs/images/train_widget.png`` (the Train
panel with its loss / validation-Dice plot after a short run on a toy cohort). The Refine
panel's screenshot comes from ``benchmarks/bench_refine.py``.

The overlay is the Segment widget's output with the shipped models. Without shipped models
(a fresh checkout before training) it is the phantom's ground truth, and the layer says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-o", "--out", default=str(IMAGES), help=f"folder (default {IMAGES})")
    images = Path(ap.parse_args(argv).out)
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        return subprocess.call(
            ["xvfb-run", "-a", "-s", "-screen 0 1920x1200x24", sys.executable, *sys.argv]
        )
    images.mkdir(parents=True, exist_ok=True)
    workflow(images / "workflow.png")
    train_widget(images / "train_widget.png")
    return 0


def workflow(out: Path) -> None:
    import napari
    import numpy as np

    from napari_livertumor._sample_data import make_sample_ct
    from napari_livertumor._widgets import _layers
    from napari_livertumor._widgets.demo import _close_notifications
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.segment import SegmentWidget
    from napari_livertumor.models import default_model_dir

    viewer = napari.Viewer(title="napari-livertumor")
    app = _app()
    viewer.window._qt_window.resize(1600, 1000)
    (ct_data, ct_kw, _), (gt_data, gt_kw, _) = make_sample_ct()
    ct = viewer.add_image(ct_data, **ct_kw)
    volume = ct.metadata[_layers.CT_VOLUME]
    truth = viewer.add_labels(gt_data, **gt_kw)
    truth.visible = False
    segment = SegmentWidget(viewer)
    inspect = InspectWidget(viewer)
    viewer.window.add_dock_widget(segment, name="2 Segment")
    viewer.window.add_dock_widget(inspect, name="4 Inspect")

    if all((default_model_dir(s) / "metadata.json").is_file() for s in ("liver", "tumor")):
        segment.device_combo.setCurrentText("auto")
        segment.run_button.click()
        _wait(app, lambda: not segment.busy, 1800)
        labels_name = f"{ct.name} segmentation"
    else:  # no shipped models yet: show the truth as 0/1/2, named as what it is
        labels = np.where(np.isin(gt_data, (1, 3)), 1, 0).astype(np.uint8)
        labels[gt_data == 2] = 2
        labels_name = "ground truth (no shipped models yet)"
        _layers.add_labels_layer(viewer, labels, volume, labels_name, ct_layer_name=ct.name)
        segment.status.setText("Shipped models not found: the overlay is the phantom's truth.")
    inspect.refresh_layers()
    inspect.labels_combo.setCurrentText(labels_name)
    if labels_name != f"{ct.name} segmentation":
        inspect.truth_combo.setCurrentText("(none)")  # comparing the truth with itself: no
    else:
        inspect.truth_combo.setCurrentText(truth.name)
    inspect.opacity.setValue(45)
    inspect.measure_button.click()
    _wait(app, lambda: not inspect.busy, 120)
    inspect.lesion_table.selectRow(0)
    inspect.go_to_lesion(0)
    viewer.reset_view()  # the whole liver in view, on the lesion's slice
    _layers.camera(viewer).zoom *= 1.15
    viewer.layers.selection.active = viewer.layers[labels_name]
    _settle(app, 1.5)
    _close_notifications()
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print(f"saved {out}")
    viewer.close()


def train_widget(out: Path) -> None:
    import napari

    from napari_livertumor._widgets.demo import _close_notifications
    from napari_livertumor._widgets.train import TrainWidget
    from napari_livertumor.training.toydata import write_toy_cohort

    tmp = Path(tempfile.mkdtemp(prefix="shots_"))
    data = write_toy_cohort(tmp / "toy_cohort", n_cases=6, seed=5, shape=(24, 48, 48))
    from napari_livertumor._widgets.demo import add_sample

    viewer = napari.Viewer(title="napari-livertumor")
    app = _app()
    viewer.window._qt_window.resize(1600, 1000)
    add_sample(viewer)
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train models")
    widget.data.setText(str(data))
    widget.out.setText(str(tmp / "models"))
    widget.patch.setText("16, 32, 32")
    widget.epochs.setValue(4)
    widget.steps.setValue(6)
    widget.check_button.click()
    _wait(app, lambda: not widget.busy, 120)
    widget.start_button.click()
    _wait(app, lambda: not widget.busy, 1200)
    widget._redraw(force=True)
    _settle(app, 1.0)
    _close_notifications()
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print(f"saved {out}")
    viewer.close()
    shutil.rmtree(tmp, ignore_errors=True)


def _app():
    from qtpy.QtWidgets import QApplication

    return QApplication.instance()


def _wait(app, done, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > end:
            raise TimeoutError("the widget did not finish in time")
        app.processEvents()
        time.sleep(0.01)


def _settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
