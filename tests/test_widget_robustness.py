"""Bad moments in the workflow: the app keeps running, says what happened, and loses nothing.

Segmentation here waits at a gate the test opens, so "while it runs" is deterministic; after
the gate the real pipeline runs on tiny models.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from _widget_data import tiny_ct, tiny_models

from napari_livertumor._widgets import _layers
from napari_livertumor._widgets.load import SOURCES, LoadWidget
from napari_livertumor._widgets.segment import SegmentWidget
from napari_livertumor.errors import Cancelled
from napari_livertumor.io.nifti import write_nifti

pytestmark = pytest.mark.gui
pipeline = pytest.importorskip("napari_livertumor.pipeline")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def gate(monkeypatch):
    real = pipeline.Segmenter.segment
    g = SimpleNamespace(
        entered=threading.Event(), release=threading.Event(), saw_cancel=threading.Event()
    )

    def gated(self, volume, *, progress=None, should_cancel=None):
        g.entered.set()
        while not g.release.is_set():
            if should_cancel is not None and should_cancel():
                g.saw_cancel.set()
                raise Cancelled("cancelled by the user")
            time.sleep(0.01)
        return real(self, volume, progress=progress, should_cancel=should_cancel)

    monkeypatch.setattr(pipeline.Segmenter, "segment", gated)
    yield g
    g.release.set()


@pytest.fixture
def segmenting(make_napari_viewer, models_dir, gate, qtbot):
    """A viewer whose Segment widget is busy segmenting 'CT A' (held at the gate)."""
    viewer = make_napari_viewer()
    vol, _ = tiny_ct()
    _layers.add_ct_layer(viewer, vol, name="CT A")
    widget = SegmentWidget(viewer)
    dock = viewer.window.add_dock_widget(widget)
    widget.add_model_folder(models_dir)
    widget.device_combo.setCurrentText("cpu")
    widget.run_button.click()
    qtbot.waitUntil(gate.entered.is_set, timeout=10_000)
    return viewer, widget, dock, vol


def _load_second_ct(viewer, qtbot, tmp_path) -> None:
    """A second CT, "b.nii.gz" on another grid, opened through Load CT."""
    vol_b, _ = tiny_ct(shape=(12, 40, 40), spacing=(3.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    write_nifti(vol_b, tmp_path / "b.nii.gz")
    loader = LoadWidget(viewer)
    loader.source.setCurrentText(SOURCES[1])
    loader.path.setText(str(tmp_path / "b.nii.gz"))
    loader.load_button.click()
    qtbot.waitUntil(lambda: not loader.busy, timeout=20_000)


def test_loading_a_second_ct_while_segmenting_keeps_results_on_the_first(
    segmenting, gate, qtbot, tmp_path
):
    viewer, widget, _, vol_a = segmenting
    _load_second_ct(viewer, qtbot, tmp_path)
    assert len(_layers.ct_layers(viewer)) == 2

    gate.release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    seg = viewer.layers["CT A segmentation"]
    assert seg.data.shape == vol_a.shape
    np.testing.assert_allclose(seg.translate, viewer.layers["CT A"].translate)
    names = [ly.name for ly in viewer.layers]
    # not drawn over the scan loaded meanwhile (as if its mask): just above its own CT, said
    assert names == ["CT A", "CT A segmentation", "b"]
    assert "under 'b'" in widget.status.text()


def test_deleting_the_ct_layer_while_segmenting_still_gives_aligned_labels(segmenting, gate, qtbot):
    viewer, widget, _, vol = segmenting
    viewer.layers.remove("CT A")
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    seg = viewer.layers["CT A segmentation"]
    np.testing.assert_allclose(seg.scale, vol.napari_scale)
    np.testing.assert_allclose(seg.translate, vol.napari_translate)
    assert "was removed meanwhile" in widget.status.text()


def test_a_result_whose_ct_was_closed_for_the_next_patient_is_not_drawn_over_that_one(
    segmenting, gate, qtbot, tmp_path
):
    """Patient A's layers removed and patient B loaded while A was segmented: A's result came
    visible and selected over B's scan (Export offered it for B), said on one plain line."""
    viewer, widget, _, vol = segmenting
    viewer.layers.remove("CT A")
    _load_second_ct(viewer, qtbot, tmp_path)
    active = viewer.layers.selection.active
    assert active is not None and active.name == "b"
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    seg = viewer.layers["CT A segmentation"]
    assert not seg.visible  # kept (nothing computed is lost), not shown over b
    assert viewer.layers.selection.active is active and seg not in viewer.layers.selection
    np.testing.assert_allclose(seg.translate, vol.napari_translate)  # its own geometry
    text = widget.status.text()
    assert text.startswith("⚠ The CT layer 'CT A' was removed while it was segmented: its")
    assert "added hidden, not over 'b' (another scan)" in text
    assert seg.metadata[_layers.CT_LAYER] is None  # linked to no other scan by its name


def test_a_result_whose_ct_was_closed_is_not_linked_to_a_scan_of_the_same_name(
    segmenting, gate, qtbot
):
    """Per-patient files of one name (ct.nii.gz): the hidden result kept its link by name to
    the other patient's scan."""
    viewer, widget, _, vol = segmenting
    viewer.layers.remove("CT A")
    other, _ = tiny_ct(shape=(12, 40, 40), spacing=(3.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    _layers.add_ct_layer(viewer, other, name="CT A")
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    seg = viewer.layers["CT A segmentation"]
    assert not seg.visible and seg.metadata[_layers.CT_LAYER] is None
    assert _layers.linked_ct_name(seg, viewer) is None
    assert "not over 'CT A' (another scan of the same name)" in widget.status.text()


def test_closing_the_segment_panel_stops_its_job(segmenting, gate, qtbot):
    viewer, widget, dock, _ = segmenting
    dock.destroyOnClose()  # the user clicks the panel's close button
    qtbot.waitUntil(gate.saw_cancel.is_set, timeout=10_000)
    qtbot.wait(100)
    assert [ly.name for ly in viewer.layers] == ["CT A"]


def test_cancel_mid_run_leaves_existing_layers_alone(segmenting, gate, qtbot):
    viewer, widget, _, _ = segmenting
    before = [ly.name for ly in viewer.layers]
    widget.jobs[widget.run_button].started_at -= 1  # (not a double-click's second click)
    widget.run_button.click()  # Cancel
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert gate.saw_cancel.is_set()
    assert [ly.name for ly in viewer.layers] == before
    assert "Cancelled" in widget.status.text()
    assert widget.run_button.text() == "Run"


@pytest.mark.parametrize("where", ["panel", "canvas"])
def test_escape_right_after_start_cancels_the_run(segmenting, gate, qtbot, where):
    """Esc pressed within a double-click's time of Start was taken as a double-click's second
    click: "click again to stop it", the run went on, and an Esc pressed again soon was
    swallowed as a double-tap."""
    import time

    from qtpy.QtCore import Qt

    viewer, widget, _, _ = segmenting
    widget.jobs[widget.run_button].started_at = time.monotonic()  # (Start just pressed)
    if where == "panel":
        target = widget.device_combo
        window = viewer.window._qt_window
        window.show()
        window.activateWindow()
        target.setFocus()
        qtbot.waitUntil(target.hasFocus, timeout=20_000)
    else:
        target = _focus_canvas(viewer, qtbot)
    widget.jobs[widget.run_button].started_at = time.monotonic()
    qtbot.keyClick(target, Qt.Key_Escape)
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert gate.saw_cancel.is_set() and "Cancelled" in widget.status.text()


def test_escape_in_the_panel_cancels_its_run(segmenting, gate, qtbot):
    """A keyboard user had to Tab to the Cancel button: Esc did nothing."""
    from qtpy.QtCore import Qt

    viewer, widget, _, _ = segmenting
    widget.jobs[widget.run_button].started_at -= 1  # (not a double-click's second click)
    window = viewer.window._qt_window
    window.show()
    window.activateWindow()
    widget.device_combo.setFocus()
    qtbot.waitUntil(lambda: widget.device_combo.hasFocus(), timeout=20_000)
    # Esc closing the Device list opened meanwhile only closes the list
    from qtpy.QtWidgets import QApplication

    widget.device_combo.showPopup()
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is not None, timeout=20_000)
    qtbot.keyClick(widget.device_combo.view(), Qt.Key_Escape)  # (its list has the focus)
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is None, timeout=20_000)
    qtbot.wait(100)
    assert widget.busy and not gate.saw_cancel.is_set()
    widget.device_combo.setFocus()
    qtbot.keyClick(widget.device_combo, Qt.Key_Escape)
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert gate.saw_cancel.is_set() and "Cancelled" in widget.status.text()


def _focus_canvas(viewer, qtbot):
    """The napari window shown, the keyboard focus on its canvas (a click to scroll slices)."""
    window = viewer.window._qt_window
    window.show()
    window.activateWindow()
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.waitUntil(canvas.hasFocus, timeout=20_000)
    return canvas


@pytest.mark.parametrize("where", ["canvas", "layer list"])
def test_escape_on_the_canvas_or_layer_list_cancels_the_run(segmenting, gate, qtbot, where):
    """A user who had clicked on the canvas (or a layer) while Segment ran pressed Esc, as
    the README says, and nothing happened: Esc cancelled only with the focus in the panel."""
    from qtpy.QtCore import Qt

    viewer, widget, _, _ = segmenting
    widget.jobs[widget.run_button].started_at -= 1  # (not a double-click's second click)
    target = _focus_canvas(viewer, qtbot)
    if where == "layer list":
        target = viewer.window._qt_viewer.layers
        target.setFocus()
        qtbot.waitUntil(target.hasFocus, timeout=20_000)
    qtbot.keyClick(target, Qt.Key_Escape)
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert gate.saw_cancel.is_set() and "Cancelled" in widget.status.text()


def test_escape_on_the_canvas_names_the_panel_whose_run_it_cancelled_behind_a_tab(
    segmenting, gate, qtbot, monkeypatch
):
    """Esc on the canvas cancelled a run whose panel was a tab behind another: the run
    stopped and nothing on screen said which (the panel saying "Cancelled" could not be
    seen). napari's notifications name it."""
    import napari.utils.notifications as notifications
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QLabel

    viewer, widget, dock, _ = segmenting
    said = []
    monkeypatch.setattr(notifications, "show_info", said.append)
    widget.jobs[widget.run_button].started_at -= 1  # (not a double-click's second click)
    canvas = _focus_canvas(viewer, qtbot)
    other = viewer.window.add_dock_widget(QLabel("another panel"), name="other", tabify=True)
    other.raise_()
    qtbot.waitUntil(lambda: dock.visibleRegion().isEmpty(), timeout=20_000)
    qtbot.keyClick(canvas, Qt.Key_Escape)
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert gate.saw_cancel.is_set()
    assert said == ["Segment: Esc cancelled its run."]


def test_escape_on_the_canvas_ends_a_labels_polygon_before_it_cancels(segmenting, gate, qtbot):
    """napari's own Esc comes first: drawing a polygon on a labels layer, the first Esc drops
    the polygon (the run goes on, also through a double-tapped Esc); the next, with nothing
    drawn, cancels the run."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    viewer, widget, _, _ = segmenting
    widget.jobs[widget.run_button].started_at -= 1  # (not a double-click's second click)
    labels = viewer.add_labels(np.zeros((4, 8, 8), dtype=np.uint8), name="drawing")
    labels.mode = "polygon"
    labels._overlays["polygon"].points = [[0.0, 1.0, 1.0], [0.0, 5.0, 1.0], [0.0, 5.0, 5.0]]
    canvas = _focus_canvas(viewer, qtbot)
    qtbot.keyClick(canvas, Qt.Key_Escape)
    qtbot.keyClick(canvas, Qt.Key_Escape)  # a double-tap, to be sure the polygon went
    qtbot.wait(200)
    assert len(labels._overlays["polygon"].points) == 0  # napari's Esc did its work
    assert widget.busy and not gate.saw_cancel.is_set()
    qtbot.wait(QApplication.doubleClickInterval() + 100)
    qtbot.keyClick(canvas, Qt.Key_Escape)
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert gate.saw_cancel.is_set()


def test_escape_during_a_brush_stroke_or_in_a_layer_controls_field_cancels_no_run(
    segmenting, gate, qtbot
):
    """An Esc pressed with the mouse held (a brush stroke being painted: napari keeps the
    stroke) or typed in a field of napari's layer controls (its dock hands the Esc on to the
    canvas) was taken for the canvas's and cancelled the run."""
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtWidgets import QAbstractSpinBox, QApplication

    viewer, widget, _, vol = segmenting
    widget.jobs[widget.run_button].started_at -= 5  # (not a double-click's second click)
    ct = viewer.layers[0]
    labels = viewer.add_labels(np.zeros(vol.shape, np.uint8), name="paint", scale=ct.scale,
                               translate=ct.translate)  # fmt: skip
    labels.mode = "paint"
    canvas = _focus_canvas(viewer, qtbot)
    middle = canvas.rect().center()
    qtbot.mousePress(canvas, Qt.LeftButton, pos=middle)
    for step in range(0, 30, 3):
        qtbot.mouseMove(canvas, pos=middle + QPoint(step, step))
    qtbot.keyClick(canvas, Qt.Key_Escape)
    qtbot.mouseRelease(canvas, Qt.LeftButton, pos=middle + QPoint(30, 30))
    qtbot.wait(QApplication.doubleClickInterval() + 300)
    assert widget.busy and not gate.saw_cancel.is_set()
    boxes = viewer.window._qt_viewer.controls.findChildren(QAbstractSpinBox)
    box = next(b for b in boxes if b.isVisible())
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=20_000)
    qtbot.keyClick(box, Qt.Key_Escape)
    qtbot.wait(500)
    assert widget.busy and not gate.saw_cancel.is_set()
    qtbot.keyClick(_focus_canvas(viewer, qtbot), Qt.Key_Escape)  # on the canvas: cancelled
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert gate.saw_cancel.is_set()


def test_escape_on_the_canvas_cancels_the_newest_of_two_runs(segmenting, gate, qtbot, models_dir):
    """Two panels running: Esc stops the one started last; the earlier one goes on, also
    through a double-tapped Esc (the next Esc, once it is not a double-tap, stops it)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    viewer, first, _, _ = segmenting
    second = SegmentWidget(viewer)
    viewer.window.add_dock_widget(second, name="second")
    second.add_model_folder(models_dir)
    second.device_combo.setCurrentText("cpu")
    gate.entered.clear()
    second.run_button.click()
    qtbot.waitUntil(gate.entered.is_set, timeout=10_000)
    for panel in (first, second):
        panel.jobs[panel.run_button].started_at -= 1  # (not a double-click's second click)
    canvas = _focus_canvas(viewer, qtbot)
    qtbot.keyClick(canvas, Qt.Key_Escape)
    qtbot.keyClick(canvas, Qt.Key_Escape)  # a double-tap: still the one run
    qtbot.waitUntil(lambda: not second.busy, timeout=10_000)
    assert "Cancelled" in second.status.text()
    assert first.busy and first.run_button.text() == "Cancel"
    qtbot.wait(QApplication.doubleClickInterval() + 100)
    qtbot.keyClick(canvas, Qt.Key_Escape)
    qtbot.waitUntil(lambda: not first.busy, timeout=10_000)
    assert "Cancelled" in first.status.text()


def _collect(qtbot) -> None:
    import gc

    from qtpy.QtWidgets import QApplication

    for _ in range(3):
        qtbot.wait(50)
        QApplication.processEvents()
        gc.collect()


def test_a_finished_job_and_a_closed_panel_let_go_of_layers_and_networks(
    make_napari_viewer, models_dir, qtbot
):
    """A finished Segment job held the CT layer and its volume until the button was used
    again; a panel closed with its dock's x button (napari only takes it out of the dock) was
    kept alive by its layer-list follower, with its loaded networks, reacting to layer events."""
    import weakref

    viewer = make_napari_viewer()
    vol, _ = tiny_ct()
    ct = _layers.add_ct_layer(viewer, vol, name="CT A")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-livertumor", "2 Segment")
    widget.add_model_folder(models_dir)
    widget.device_combo.setCurrentText("cpu")
    widget.run_button.click()
    panel = weakref.ref(widget)
    qtbot.waitUntil(lambda: not panel().busy, timeout=120_000)
    assert "Segmented 'CT A'" in widget.status.text()  # (after any serious warning)
    assert not widget.jobs  # the finished job is not kept
    net = weakref.ref(next(iter(widget._models.values())))
    ct_ref = weakref.ref(ct)
    viewer.layers.clear()
    del ct
    _collect(qtbot)
    assert ct_ref() is None  # the deleted CT is freed

    dock.destroyOnClose()  # the dock's x button
    del widget, dock
    _collect(qtbot)
    assert net() is None and panel() is None
    _layers.add_ct_layer(viewer, tiny_ct()[0], name="CT B")  # no closed panel reacts


def test_the_device_line_is_filled_even_when_a_background_import_breaks(
    qtbot, tmp_path, monkeypatch
):
    """An OSError (a broken CUDA library) in the background import left the line on
    "Looking for a GPU…" for good, its timer polling forever."""
    from qtpy.QtWidgets import QLabel

    from napari_livertumor._widgets._common import CHECKING_DEVICE, warm_up_in_background

    (tmp_path / "broken_cuda_lib.py").write_text("raise OSError('libcudart.so: cannot open')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    label = QLabel(CHECKING_DEVICE)
    qtbot.addWidget(label)
    warm_up_in_background(label, "broken_cuda_lib")
    qtbot.waitUntil(lambda: label.text() != CHECKING_DEVICE, timeout=60_000)
    assert "GPU" in label.text() or "CUDA" in label.text()


def test_renaming_a_layer_renames_it_only_in_the_layer_pickers(make_napari_viewer, qtbot):
    """A layer named like a choice of another list ('cpu') took that choice with it on a
    rename: the device list then offered 'CT 2' instead of cpu."""
    viewer = make_napari_viewer()
    ct = _layers.add_ct_layer(viewer, tiny_ct()[0], name="cpu")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.ct_combo.currentText() == "cpu"
    ct.name = "CT 2"
    assert widget.ct_combo.currentText() == "CT 2"
    devices = [widget.device_combo.itemText(i) for i in range(widget.device_combo.count())]
    assert devices == ["auto", "cpu", "cuda"]


def test_jobs_leave_qts_thread_pool_threads_free_for_its_own_work(qtbot):
    """Qt converts images for a repaint on its global pool, waiting with Python's lock held:
    two jobs filling a 2-thread pool froze the window for good."""
    import threading

    from qtpy.QtCore import QThreadPool

    from napari_livertumor._widgets._jobs import Job

    pool = QThreadPool.globalInstance()
    # workers of earlier tests still ending (a warm-up, a job's last signals) are not this
    # test's: it starts from an idle pool (7 threads active of 6 once failed it in CI)
    qtbot.waitUntil(lambda: pool.activeThreadCount() == 0, timeout=60_000)
    before = pool.maxThreadCount()
    pool.setMaxThreadCount(2)  # a 2-core machine
    release = threading.Event()
    try:
        jobs = [Job(lambda p, c: release.wait(20), napari_progress=False).start() for _ in range(2)]
        qtbot.waitUntil(lambda: pool.activeThreadCount() >= 2, timeout=20_000)
        assert pool.maxThreadCount() - len(jobs) >= 2  # the pool grew past our two jobs
        # others' short runnables (a repaint's conversions) may hold threads a moment (6 of 6
        # once in CI); ours hold theirs 20 s: two must come free while ours still run
        qtbot.waitUntil(
            lambda: pool.maxThreadCount() - pool.activeThreadCount() >= 2, timeout=10_000
        )
        assert not release.is_set() and all(job.running for job in jobs)
    finally:
        release.set()
        for job in jobs:
            job.wait(20)
        pool.setMaxThreadCount(max(before, pool.maxThreadCount()))


def test_a_click_after_a_job_handed_its_result_over_cancels_nothing(qtbot):
    """Its result shown, a job still reads "running" until its last signal: a second click
    (Measure pressed twice as results arrive) then cancelled it, and the panel said
    "Cancelled: nothing was changed" over the result it had just shown."""
    from qtpy.QtWidgets import QLabel, QPushButton

    from napari_livertumor._widgets._common import JobWidgetMixin
    from napari_livertumor._widgets._jobs import Job

    class Panel(JobWidgetMixin):
        def __init__(self):
            self.jobs, self.status = {}, QLabel()

    panel, button = Panel(), QPushButton("Measure")
    seen, ended, clicks = [], [], []

    def on_result(result):
        seen.append(result)
        clicks.append(panel.cancel_if_running(button))  # the second click, in this moment

    job = Job(lambda p, c: 42, on_result=on_result, on_finished=ended.append,
              napari_progress=False)  # fmt: skip
    panel.jobs[button] = job.start()
    qtbot.waitUntil(lambda: bool(ended), timeout=10_000)
    assert seen == [42] and clicks == [True] and ended == ["done"]
    assert button.text() == "Measure" and not job.cancel_requested


def test_the_double_click_note_gives_way_to_the_runs_own_line(qtbot):
    """A second click within the double-click interval is not a Cancel, and says so: the note
    then stood for the whole run (44 s) instead of "Segmenting …"."""
    import threading

    from qtpy.QtWidgets import QPushButton

    from napari_livertumor._widgets._common import JobWidgetMixin, StatusLabel, set_status
    from napari_livertumor._widgets._jobs import Job

    class Panel(JobWidgetMixin):
        NOTE_SECONDS = 0

        def __init__(self):
            self.jobs, self.status = {}, StatusLabel()

    panel, button = Panel(), QPushButton("Run")
    release, ended = threading.Event(), []

    def work(progress, should_cancel):
        release.wait(20)
        return 1

    job = Job(work, on_finished=ended.append, napari_progress=False)
    panel.jobs[button] = job.start()
    set_status(panel.status, "Segmenting 'CT'…")
    assert panel.cancel_if_running(button)  # the double-click's second click
    assert "double-click's second" in panel.status.text()
    qtbot.waitUntil(lambda: panel.status.text() == "Segmenting 'CT'…", timeout=20_000)
    assert not job.cancel_requested
    release.set()
    qtbot.waitUntil(lambda: bool(ended), timeout=10_000)


def test_every_input_of_every_panel_has_a_name_a_screen_reader_can_read(make_napari_viewer, qtbot):
    """Fields placed in a row beside a Browse… button, and the refinement's rows, had no
    accessible name; three buttons read "Browse…" alike."""
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit

    from napari_livertumor._widgets.export import ExportWidget
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.load import LoadWidget
    from napari_livertumor._widgets.refine import RefineWidget
    from napari_livertumor._widgets.segment import SegmentWidget
    from napari_livertumor._widgets.train import TrainWidget

    viewer = make_napari_viewer()
    unnamed = {}
    panels = (LoadWidget, SegmentWidget, RefineWidget, InspectWidget, ExportWidget, TrainWidget)
    for cls in panels:
        panel = cls(viewer)
        viewer.window.add_dock_widget(panel)
        qtbot.wait(50)  # laid out: the names are given then
        missing = []
        for w in panel.findChildren((QLineEdit, QComboBox, QAbstractSpinBox)):
            if isinstance(w.parent(), (QComboBox, QAbstractSpinBox)):
                continue  # the line edit inside an editable box or a spin box
            if w.isVisibleTo(panel) and not w.accessibleName():
                missing.append(w.objectName() or w.toolTip()[:40] or type(w).__name__)
        browse = [b for b in panel.findChildren(QAbstractButton) if b.text() == "Browse…"]
        if len({b.accessibleName() for b in browse}) != len(browse):
            missing.append("Browse… buttons named alike")
        if missing:
            unnamed[cls.__name__] = missing
    assert unnamed == {}


def test_a_rows_label_explains_its_field_as_the_field_does(make_napari_viewer, qtbot):
    """Only the field next to "σ (mm)", "λ inside", "Patch (z, y, x)" had a tooltip (and
    not the number box of the Iterations slider)."""
    from qtpy.QtWidgets import QAbstractSpinBox, QLabel

    from napari_livertumor._widgets.refine import RefineWidget
    from napari_livertumor._widgets.train import TrainWidget

    viewer = make_napari_viewer()
    refine, train = RefineWidget(viewer), TrainWidget(viewer)
    for panel in (refine, train):
        viewer.window.add_dock_widget(panel)
    qtbot.wait(100)  # laid out: the tips are given then
    labels = {lb.text(): lb for p in (refine, train) for lb in p.findChildren(QLabel)}
    for text in ("σ (mm)", "λ inside", "Min contrast (CNR)", "Max shift (mm)"):
        assert labels[text].toolTip(), text
    assert labels["σ (mm)"].toolTip() == refine.sigma.native.toolTip()
    patch = [t for t in labels if t.startswith("Patch")]
    assert patch and all(labels[t].toolTip() for t in patch)
    from qtpy.QtWidgets import QSlider

    (slider,) = refine.iterations.native.findChildren(QSlider)
    boxes = refine.iterations.native.findChildren(QAbstractSpinBox)
    assert slider.toolTip().startswith("How many steps the outline moves")
    assert boxes and all(b.toolTip() == slider.toolTip() for b in boxes)


def test_a_panel_scrolled_sideways_wraps_its_sentences_within_what_is_on_view(qtbot):
    """A panel narrower than its controls scrolls sideways; its status lines wrapped at the
    controls' width, so every line was cut at the edge (1024-px screens, 200 % scaling)."""
    from qtpy.QtWidgets import QPushButton, QWidget

    from napari_livertumor._widgets._common import (
        PanelScroll,
        StatusLabel,
        scroll_panel,
        set_status,
    )

    panel = QWidget()
    layout = scroll_panel(panel)
    wide = QPushButton("a control of a fixed, wide size")
    wide.setMinimumWidth(900)
    status = StatusLabel()
    layout.addWidget(wide)
    layout.addWidget(status)
    qtbot.addWidget(panel)
    panel.resize(420, 400)
    panel.show()
    set_status(status, "words " * 200)
    scroll = panel.findChild(PanelScroll)
    scroll.setMinimumWidth(0)
    panel.resize(420, 400)
    qtbot.waitUntil(lambda: status.width() <= scroll.viewport().width(), timeout=20_000)
    assert wide.width() >= 900  # the controls keep their width (and scroll sideways)


def test_a_result_line_follows_its_layer_renamed_and_says_when_it_is_removed(
    make_napari_viewer,
):
    """Export's "Wrote … of 'CT segmentation'" after a Segment rerun (the exported layer moved
    aside as "(previous)") named the new result, which it had not written."""
    from types import SimpleNamespace

    from napari_livertumor._widgets._common import (
        StatusLabel,
        mark_result_of,
        say_if_result_removed,
        set_status,
    )

    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((2, 4, 4), np.uint8), name="CT segmentation")
    panel = SimpleNamespace(viewer=viewer, status=StatusLabel(), busy=False)
    set_status(panel.status, "Wrote 2 file(s) of 'CT segmentation' to /out:\nCT_labels.nii.gz")
    mark_result_of(panel, layer)
    say_if_result_removed(panel)  # nothing changed
    assert panel.status.text().startswith("Wrote 2 file(s) of 'CT segmentation' to")
    layer.name = "CT segmentation (previous)"
    say_if_result_removed(panel)
    assert panel.status.text().startswith("Wrote 2 file(s) of 'CT segmentation (previous)' to")
    viewer.layers.remove(layer)
    say_if_result_removed(panel)
    assert panel.status.text().startswith(
        "(The layer 'CT segmentation (previous)' this tells of was removed.)\nWrote 2 file(s)"
    )


def test_tab_goes_down_every_panel_as_it_is_drawn(make_napari_viewer, qtbot):
    """Refine's fourteen settings, made before the layer rows above them, came before them in
    Qt's focus chain: Tab from the layer rows jumped to Apply to all (3D)."""
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtWidgets import QWidget

    from napari_livertumor._widgets._common import PanelScroll
    from napari_livertumor._widgets.export import ExportWidget
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.load import LoadWidget
    from napari_livertumor._widgets.refine import RefineWidget
    from napari_livertumor._widgets.segment import SegmentWidget
    from napari_livertumor._widgets.train import TrainWidget

    viewer = make_napari_viewer(show=True)
    out_of_order = {}
    panels = (LoadWidget, SegmentWidget, RefineWidget, InspectWidget, ExportWidget, TrainWidget)
    for cls in panels:
        panel = cls(viewer)
        dock = viewer.window.add_dock_widget(panel)
        qtbot.wait(100)  # laid out

        def tabbed(w, panel=panel):
            return (
                w.focusPolicy() & Qt.TabFocus
                and w.isVisible()
                and w.isEnabled()
                and panel.isAncestorOf(w)
                and not isinstance(w, PanelScroll)  # (the panel itself: arrow keys scroll it)
            )

        stops = [w for w in panel.findChildren(QWidget) if tabbed(w)]
        first = min(stops, key=lambda w: w.mapTo(panel, QPoint(0, 0)).y())
        chain, w = [first], first.nextInFocusChain()
        while w is not first and len(chain) < 500:
            if tabbed(w):
                chain.append(w)
            w = w.nextInFocusChain()
        assert set(chain) == set(stops), cls.__name__  # every control is reached
        ys = [w.mapTo(panel, QPoint(0, w.height() // 2)).y() for w in chain]

        def name(w):
            return w.accessibleName() or (w.text() if hasattr(w, "text") else type(w).__name__)

        back = [
            f"{name(a)} → {name(b)}"
            for a, b, ya, yb in zip(chain[:-1], chain[1:], ys[:-1], ys[1:], strict=True)
            if yb < ya - 8  # (controls of one row differ by a few px)
        ]
        if back:
            out_of_order[cls.__name__] = back
        viewer.window.remove_dock_widget(dock)
    assert out_of_order == {}


def test_deleting_the_ct_beside_another_gives_no_off_grid_warning_for_the_result(
    segmenting, gate, qtbot, tmp_path, monkeypatch
):
    """The panel says the CT was removed; adding its labels also warned that they lie on no
    open CT's grid ("…open the CT it was made on"), a note meant for files opened by hand."""
    import napari.utils.notifications as notifications

    viewer, widget, _, _ = segmenting
    said = []
    monkeypatch.setattr(notifications, "show_warning", lambda text: said.append(text))
    _load_second_ct(viewer, qtbot, tmp_path)
    viewer.layers.remove("CT A")
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "CT A segmentation" in [ly.name for ly in viewer.layers]
    assert "was removed while it was segmented" in widget.status.text()
    assert not [t for t in said if "grid" in t], said


def test_a_panel_closed_mid_run_and_docked_again_offers_run_not_cancel(segmenting, gate, qtbot):
    """Closing stops the job without its end being reported to the panel: docked again (a
    script can), it showed Cancel, the progress bar and "Segmenting…", and Cancel started a
    new run."""
    viewer, widget, _, _ = segmenting
    text = widget._button_text[widget.run_button]
    assert widget.run_button.text() != text
    gate.saw_cancel.clear()
    widget.shutdown_jobs()  # what closing the panel does
    # until the stopped run has ended, the button is not usable
    assert not widget.progress_bar.isVisible()
    assert widget.status.text().startswith("Stopping: the panel was closed")
    qtbot.waitUntil(gate.saw_cancel.is_set, timeout=10_000)
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=10_000)
    assert widget.run_button.text() == text and not widget.busy
    assert widget.status.text().startswith("Stopped: the panel was closed")
    assert [ly.name for ly in viewer.layers] == ["CT A"]


def test_an_unexpected_error_in_the_worker_is_said_and_its_traceback_logged(
    segmenting, gate, qtbot, monkeypatch, caplog
):
    """A bug inside the worker showed "KeyError: 'spacing'" and left no traceback anywhere;
    bad input (the tool's own errors) is said without one."""
    import logging

    viewer, widget, _, _ = segmenting

    def broken(*args, **kwargs):
        raise KeyError("spacing")

    monkeypatch.setattr(pipeline.Segmenter, "_liver_stage", broken)
    with caplog.at_level(logging.ERROR):
        gate.release.set()
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.status.text().endswith("KeyError: 'spacing'")
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info and record.exc_info[0] is KeyError
    assert [ly.name for ly in viewer.layers] == ["CT A"]


def test_only_bugs_are_logged_with_a_traceback(caplog):
    """Bad input, the disk, memory and errors a job put in words itself (a training process's
    refusal) are said in the panel only; a bug's traceback goes to the log — a training
    process's own, which was lost."""
    import logging

    from napari_livertumor._widgets._common import log_failure
    from napari_livertumor._widgets._jobs import JobFailed
    from napari_livertumor.errors import InputError

    def wrapped(exc):
        try:
            raise JobFailed(str(exc)) from exc
        except JobFailed as failed:
            return failed

    remote = JobFailed("KeyError: 'x'")
    remote.remote_traceback = "Traceback (most recent call last):\n  in train\nKeyError: 'x'\n"
    with caplog.at_level(logging.ERROR):
        for quiet in (
            JobFailed("holds a tumor model already"),
            InputError("a.nii", "not a CT"),
            wrapped(OSError(28, "No space left on device")),
            wrapped(MemoryError()),
        ):
            log_failure("train", "msg", quiet)
        assert caplog.records == []
        log_failure("train", "KeyError: 'x'", remote)
        log_failure("segment", "KeyError: 'spacing'", wrapped(KeyError("spacing")))
    first, second = caplog.records
    assert "in train" in first.getMessage() and first.exc_info is None
    assert second.exc_info[0] is KeyError
