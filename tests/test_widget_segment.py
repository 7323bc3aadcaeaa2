"""The Segment widget: choose a CT and models, click Run, see aligned labels; Cancel works."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_data import tiny_ct, tiny_models

from napari_livertumor._widgets import _layers, _registry
from napari_livertumor._widgets.segment import DEFAULT_MODELS, SegmentWidget

pytestmark = pytest.mark.gui
pytest.importorskip("napari_livertumor.pipeline", reason="the pipeline has not landed yet")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def viewer_with_ct(make_napari_viewer):
    viewer = make_napari_viewer()
    vol, _ = tiny_ct()
    _layers.add_ct_layer(viewer, vol, name="tiny CT")
    return viewer, vol


def _segment_widget(viewer, models_dir, monkeypatch):
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    monkeypatch.setattr(
        "napari_livertumor._widgets.segment.QFileDialog.getExistingDirectory",
        lambda *a, **k: str(models_dir),
    )
    widget.model_browse.click()  # the user picks the models folder
    widget.device_combo.setCurrentText("cpu")
    return widget


def test_run_adds_a_labels_layer_aligned_with_the_ct(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    viewer, vol = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    assert widget.ct_combo.currentText() == "tiny CT"
    assert widget.model_combo.currentText() == str(models_dir)

    widget.run_button.click()
    assert widget.run_button.text() == "Cancel"
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.run_button.text() == "Run"

    seg = viewer.layers["tiny CT segmentation"]
    ct = viewer.layers["tiny CT"]
    assert seg.data.shape == ct.data.shape
    np.testing.assert_allclose(seg.scale, ct.scale)
    np.testing.assert_allclose(seg.translate, ct.translate)
    assert set(np.unique(seg.data)) <= {0, 1, 2}
    assert (seg.data == 2).any()  # the biased tiny tumor model marks the liver as tumor
    assert "Segmented 'tiny CT' on cpu" in widget.status.text()  # which CT: another may show
    # all of it: said in amber above the result (it was not said at all)
    said = widget.status.text()
    assert "⚠ the tumor found covers 100.0 % of the liver" in said[: said.index("Segmented")]


def test_the_result_line_says_when_its_layer_was_removed(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """The next patient's turn (the last one's layers removed): the panel still read
    "Segmented 'HCC_001 …': liver 1385.5 mL…", easy to take for the scan now open."""
    viewer, vol = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    said = widget.status.text()
    assert said.startswith("Segmented 'tiny CT'") or "Segmented 'tiny CT'" in said
    viewer.layers.remove("tiny CT")  # the CT alone: its result still stands
    assert widget.status.text() == said
    viewer.layers.remove("tiny CT segmentation")
    assert widget.status.text() == (
        f"(The layer 'tiny CT segmentation' this tells of was removed.)\n{said}"
    )


def test_the_time_said_counts_the_wait_for_loading_too(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """A first run said "in 10.1 s" after 17.5 s from the click: torch, MONAI and the models
    load before the segmentation's own clock starts."""
    import time

    from napari_livertumor import pipeline

    real_init = pipeline.Segmenter.__init__

    def slow_init(self, *args, **kwargs):
        time.sleep(1.5)  # a slow model load
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(pipeline.Segmenter, "__init__", slow_init)
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    text = widget.status.text()
    said = float(
        text.split(" s loading torch and the models; layer 'tiny CT")[0].split("after ")[-1]
    )
    assert said >= 1.5, text
    # a second run with the models kept loads nothing: no such words
    monkeypatch.setattr(pipeline.Segmenter, "__init__", real_init)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "loading torch" not in widget.status.text()


def test_a_result_is_not_drawn_over_a_scan_opened_during_the_run(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """Added on top, the first scan's mask lay over a second scan loaded while it ran, as if
    it were that scan's."""
    viewer, vol = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.run_button.click()
    other, _ = tiny_ct()
    _layers.add_ct_layer(viewer, other, name="second CT")  # opened while it runs
    widget.ct_combo.setCurrentText("tiny CT")  # (the list switched to the new scan)
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    names = [ly.name for ly in viewer.layers]
    assert names == ["tiny CT", "tiny CT segmentation", "second CT"], names
    assert "under 'second CT' (another scan, drawn over 'tiny CT'): hide 'second CT'" in (
        widget.status.text()
    )
    assert viewer.layers.selection.active is viewer.layers["tiny CT segmentation"]
    # the second scan segmented: on top, no note
    widget.ct_combo.setCurrentText("second CT")
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert [ly.name for ly in viewer.layers][-1] == "second CT segmentation"
    assert "under '" not in widget.status.text()


def test_rerun_keeps_the_edited_labels_as_previous(viewer_with_ct, models_dir, qtbot, monkeypatch):
    viewer, vol = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.stage_combo.setCurrentText("liver only")
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    edited = viewer.layers["tiny CT segmentation"]
    edited.data[0, :4, :4] = 2  # a manual edit
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    previous = viewer.layers["tiny CT segmentation (previous)"]
    assert previous is edited and (previous.data[0, :4, :4] == 2).all()
    assert "previous" in widget.status.text()
    assert not (viewer.layers["tiny CT segmentation"].data == 2).any()  # liver only
    # more reruns with no edits: one unedited copy is kept aside, not one more per run (each
    # a full-size layer); the edited layer is never removed
    for _ in range(2):
        widget.run_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    aside = [ly for ly in viewer.layers if "(previous)" in ly.name]
    assert len(aside) == 2 and any(ly is edited for ly in aside)
    assert "Removed 1 older hidden unedited copy(ies)" in widget.status.text()


def test_a_rerun_clears_inspects_figures_of_the_labels_it_moved_aside(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """Inspect's picker kept its text (the new result took the name), so the figures of the
    painted labels moved aside as '(previous)' stayed, shown as the new result's."""
    from napari_livertumor._widgets.inspect import InspectWidget

    viewer, vol = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    inspect = InspectWidget(viewer)
    viewer.window.add_dock_widget(inspect)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    painted = viewer.layers["tiny CT segmentation"]
    painted.paint((2, 10, 10), 2)
    inspect.measure_button.click()
    qtbot.waitUntil(lambda: inspect.stats is not None and not inspect.busy, timeout=20_000)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert viewer.layers["tiny CT segmentation (previous)"] is painted
    assert inspect.labels_combo.currentText() == "tiny CT segmentation"
    assert inspect.stats is None and inspect.volume_table.rowCount() == 0
    assert inspect.status.text() == "Click Measure for the figures of 'tiny CT segmentation'."


def test_reruns_on_a_scan_named_with_a_bracket_keep_one_unedited_copy_aside(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """The same scan loaded twice ("tiny CT [2]"): the first result a rerun moved aside,
    "tiny CT [2] segmentation (previous)", was never removed unedited (its name was cut at the
    CT's own " [2]"): a full-size copy more than for a scan named otherwise."""
    viewer, _ = viewer_with_ct
    viewer.layers["tiny CT"].name = "tiny CT [2]"
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.stage_combo.setCurrentText("liver only")
    for _ in range(3):
        widget.run_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    aside = [ly.name for ly in viewer.layers if "(previous)" in ly.name]
    assert aside == ["tiny CT [2] segmentation (previous)"]
    assert "Removed 1 older hidden unedited copy(ies)" in widget.status.text()


def test_a_rerun_keeps_an_unedited_copy_aside_that_refine_is_applying_to(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """A rerun removed the hidden unedited "(previous)" copy while a Refine Apply still ran
    on it: the Apply's minutes of contour then ended "removed while refining", with no word
    of who removed it."""
    from napari_livertumor._widgets import _layers

    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.stage_combo.setCurrentText("liver only")
    for _ in range(2):
        widget.run_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    aside = viewer.layers["tiny CT segmentation (previous)"]
    apply = _layers.HeldApply()  # (an Apply whose result will be written into it)
    _layers.mark_refining(aside, apply)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert aside in viewer.layers
    apply.done()


def test_cancel_stops_the_run_and_adds_nothing(viewer_with_ct, models_dir, qtbot, monkeypatch):
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.run_button.click()
    widget.jobs[widget.run_button].started_at -= 1  # a later click, not a double-click's second
    widget.run_button.click()  # the button reads "Cancel" now
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert [ly.name for ly in viewer.layers] == ["tiny CT"]
    assert "Cancelled" in widget.status.text()


def test_a_cancel_as_the_core_returns_makes_no_layer(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """Cancel clicked as the core returned its result: the layer and its digests (the CT's
    hash, the software's record) were still made for a result the panel then dropped."""
    from napari_livertumor import pipeline
    from napari_livertumor._widgets import _layers

    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    real = pipeline.Segmenter.segment
    made = []

    def segment(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        widget.jobs[widget.run_button].cancel()  # the click lands as the core returns
        return out

    monkeypatch.setattr(pipeline.Segmenter, "segment", segment)
    real_make = _layers.make_labels_layer
    monkeypatch.setattr(
        _layers, "make_labels_layer", lambda *a, **k: made.append(1) or real_make(*a, **k)
    )
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert made == []
    assert [ly.name for ly in viewer.layers] == ["tiny CT"]
    assert "Cancelled" in widget.status.text()


def test_missing_models_show_a_clear_message(viewer_with_ct, qtbot, tmp_path, monkeypatch):
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, tmp_path, monkeypatch)  # an empty folder
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert str(tmp_path) in widget.status.text()
    assert len(viewer.layers) == 1


def test_trained_models_are_offered_at_once(viewer_with_ct, models_dir, monkeypatch):
    viewer, _ = viewer_with_ct
    widget = SegmentWidget(viewer)
    monkeypatch.setattr(_registry, "_recent_model_folders", [])
    _registry.remember_model_folder(models_dir)
    widget.refresh_models()
    items = [widget.model_combo.itemText(i) for i in range(widget.model_combo.count())]
    assert items == [DEFAULT_MODELS, str(models_dir.resolve())]


def test_without_a_ct_the_user_is_told_to_load_one(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    widget.run_button.click()
    assert "Load a CT first" in widget.status.text()


def test_a_second_run_reuses_the_loaded_models(viewer_with_ct, models_dir, qtbot, monkeypatch):
    from napari_livertumor import pipeline

    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    loads = []
    real_load = pipeline.load_model
    monkeypatch.setattr(
        pipeline, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k)
    )
    for _ in range(2):
        widget.run_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert len(loads) == 2  # liver and tumor, loaded once for both runs


def test_a_model_recalibrated_in_place_is_loaded_again(
    viewer_with_ct, tmp_path, qtbot, monkeypatch
):
    """A new metadata.json (a logit shift, a lesion filter) kept the old one in use, and a
    broken one was not noticed."""
    import json
    import shutil

    from napari_livertumor import pipeline

    viewer, _ = viewer_with_ct
    models = tiny_models(tmp_path / "models")
    widget = _segment_widget(viewer, models, monkeypatch)
    loads = []
    real_load = pipeline.load_model
    monkeypatch.setattr(
        pipeline, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k)
    )
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    meta_path = models / "tumor" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["lesion_filter"] = {"min_ml": 0.5}
    meta_path.write_text(json.dumps(meta, indent=3))  # another size, whatever the clock says
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert len(loads) == 4  # both loaded again
    meta_path.write_text("broken")
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "metadata.json" in widget.status.text() and "unreadable" in widget.status.text()
    # a stage folder that is a broken link is said, not replaced by the shipped model
    shutil.rmtree(models / "tumor")
    (models / "tumor").symlink_to(tmp_path / "gone")
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "a link to a folder that is not there" in widget.status.text()


def test_a_models_folder_that_cannot_be_entered_is_named(
    viewer_with_ct, tmp_path, qtbot, monkeypatch
):
    """QA models58: a models folder of mode 000 was said by a file in it that is not there
    ("metadata.json: Permission denied"); the panel names the folder, as the command does."""
    from _permissions import deny_entering

    viewer, _ = viewer_with_ct
    models = tiny_models(tmp_path / "models")
    widget = _segment_widget(viewer, models, monkeypatch)
    deny_entering(monkeypatch, models)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    said = widget.status.text()
    assert "this folder cannot be read (permission denied)" in said, said
    assert "metadata.json" not in said


def test_progress_shows_each_stage(viewer_with_ct, models_dir, qtbot, monkeypatch):
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    seen = set()
    bar = widget.progress_bar
    shown = bar.setFormat  # every stage the bar is given, however fast its value moves
    monkeypatch.setattr(bar, "setFormat", lambda text: (seen.add(text.split(":")[0]), shown(text)))
    widget.run_button.click()
    assert widget.progress_bar.isVisibleTo(widget)
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert {"liver", "tumor"} <= seen
    assert not widget.progress_bar.isVisibleTo(widget)  # hidden again when done


def test_the_stage_running_is_named_while_the_bar_is_busy(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """The liver stage (one window) and the measuring show a busy bar, on which Qt draws no
    text: the panel said only "Segmenting 'tiny CT'…", not which stage was running."""
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    bar, busy = widget.progress_bar, []
    shown = bar.setValue  # (the last a progress report sets)

    def seen(value):
        shown(value)
        if bar.maximum() == 0:  # a busy bar: what the panel says beside it
            busy.append((bar.format().split(":")[0], widget.status.text()))

    monkeypatch.setattr(bar, "setValue", seen)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert {"liver", "measuring"} <= {stage for stage, _ in busy}
    for stage, said in busy:
        assert said == f"Segmenting 'tiny CT': {stage}…"
    assert widget.status.text().startswith(("Segmented 'tiny CT'", "⚠"))


def test_a_progress_value_is_never_shown_under_the_last_stages_name(qtbot):
    """The bar took a new stage's value before its name: liver's 1/1 then tumor's 0/5 showed
    "liver: 0 / 5" for a moment (and said so to anything watching its value)."""
    from qtpy.QtWidgets import QProgressBar

    from napari_livertumor._widgets._jobs import Job

    bar = QProgressBar()
    qtbot.addWidget(bar)
    job = Job(lambda progress, should_cancel: None, progress_bar=bar, napari_progress=False)
    job.status = "running"  # as start() sets it, without running the target
    shown = []
    bar.valueChanged.connect(lambda value: shown.append((bar.format().split(":")[0], value)))
    job._show_progress("liver", 1, 1)
    job._show_progress("tumor", 0, 5)
    job._show_progress("tumor", 3, 5)
    assert ("liver", 0) not in shown
    assert shown[-2:] == [("tumor", 0), ("tumor", 3)]
    job.status = "done"


def test_a_one_step_stage_shows_a_busy_bar_until_its_step_is_done(qtbot):
    """The liver stage is one window on most scans (4 s on a CPU): its bar read "liver: 0 / 1"
    and looked stuck. A one-step stage not yet done is a busy bar, in the panel and napari's."""
    from qtpy.QtWidgets import QProgressBar

    from napari_livertumor._widgets._jobs import Job

    bar = QProgressBar()
    qtbot.addWidget(bar)
    job = Job(lambda progress, should_cancel: None, progress_bar=bar, napari_progress=True)
    job._open_bar()
    napari_bar = job._bars["job"]
    job.status = "running"  # as start() sets it, without running the target
    try:
        job._show_progress("liver", 0, 1)
        assert (bar.minimum(), bar.maximum()) == (0, 0)  # Qt's busy bar
        assert napari_bar.total == 0  # napari's activity bar: busy too
        job._show_progress("liver", 1, 1)
        assert (bar.maximum(), bar.value()) == (1, 1)
        assert (napari_bar.total, napari_bar.n) == (1, 1)
        job._show_progress("tumor", 0, 5)  # counted steps: a bar from 0
        assert (bar.maximum(), bar.value()) == (5, 0)
        assert (napari_bar.total, napari_bar.n) == (5, 0)
        job._show_progress("tumor", 5, 5)
        assert (napari_bar.total, napari_bar.n) == (5, 5)
    finally:
        job.status = "done"
        job._close_bars()


def test_the_lesion_filter_follows_the_model_unless_the_user_keeps_unsure_lesions(
    viewer_with_ct, models_dir, monkeypatch
):
    from napari_livertumor.pipeline import Segmenter

    viewer, vol = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    assert widget.unsure_check.isChecked()
    cfg = widget.build_config()
    assert cfg.min_tumor_ml is None and cfg.min_lesion_peak is None  # the model decides
    widget.unsure_check.setChecked(False)
    cfg = widget.build_config()
    assert (cfg.min_tumor_ml, cfg.min_lesion_peak) == (0.1, 0.0)
    assert Segmenter(cfg).lesion_filter() == (0.1, 0.0)


def test_the_mirrored_tumor_passes_are_off_unless_the_user_turns_them_on(
    viewer_with_ct, models_dir, monkeypatch
):
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    assert not widget.tta_check.isChecked() and widget.build_config().tta == "none"
    widget.tta_check.setChecked(True)
    assert widget.build_config().tta == "inplane"


def test_refining_with_segment_uses_the_open_refine_panels_settings(
    viewer_with_ct, models_dir, monkeypatch
):
    """The option said it used the Refine panel's settings; it always used the defaults."""
    from napari_livertumor._widgets.refine import RefineWidget

    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.refine_check.setChecked(True)
    assert widget.build_config().refine_config is None  # no panel open: the defaults
    panel = RefineWidget(viewer)
    viewer.window.add_dock_widget(panel, name="Refine")
    panel.iterations.value = 7
    panel.min_contrast.value = 0.0
    cfg = widget.build_config().refine_config
    assert cfg == panel.build_config() and cfg.iterations == 7 and cfg.min_contrast == 0
    widget.refine_check.setChecked(False)
    assert widget.build_config().refine_config is None
    widget.refine_check.setChecked(True)
    panel.panel_closed()  # closed: the defaults again
    assert widget.build_config().refine_config is None


def test_a_run_refined_with_the_refine_panels_own_settings_says_so(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """The tumor came out other than the command line's (the panel's settings) and the
    result line did not say why; at the defaults it says nothing of them."""
    from napari_livertumor._widgets.refine import RefineWidget

    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.refine_check.setChecked(True)
    panel = RefineWidget(viewer)
    viewer.window.add_dock_widget(panel, name="Refine")
    said = "Tumor refined with the Refine panel's settings (not the defaults)."
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "Segmented 'tiny CT'" in widget.status.text() and said not in widget.status.text()
    panel.iterations.value = 7
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert said in widget.status.text()


def test_cuda_asked_for_and_missing_is_said_first_in_amber(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """The CPU fallback was the last of ten lines, in the panel's plain colour."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.device_combo.setCurrentText("cuda")
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    said = widget.status.text()
    assert said.startswith("⚠ CUDA was asked for but is not available"), said
    assert said.count("CUDA was asked for") == 1 and "Segmented 'tiny CT' on cpu" in said
    assert widget.status._kind == "warning"


def test_unsure_candidates_close_together_share_one_label():
    """Two candidates a few voxels apart on one slice printed their labels on top of each
    other ("unsunsure 0.2 mL")."""
    from napari_livertumor._widgets.segment import _unsure_labels

    unsure = [{"volume_ml": 0.44}, {"volume_ml": 0.21}, {"volume_ml": 0.3}, {"volume_ml": 0.2}]
    centres = np.array([[43, 100, 100], [43, 104, 98], [43, 180, 60], [60, 100, 100]], float)
    labels = _unsure_labels(unsure, centres, [12.0] * 4)
    assert labels == ["unsure 0.4 + 0.2 mL", "", "unsure 0.3 mL", "unsure 0.2 mL"]


def test_candidates_the_lesion_filter_drops_are_marked_not_lost(
    viewer_with_ct, models_dir, qtbot, monkeypatch, tmp_path
):
    import json
    import shutil

    strict = tmp_path / "strict"
    shutil.copytree(models_dir, strict)
    meta_file = strict / "tumor" / "metadata.json"
    raw = json.loads(meta_file.read_text())
    raw["lesion_filter"] = {"min_ml": 0.1, "min_peak": 10.0}  # the tiny model's margin is 4
    meta_file.write_text(json.dumps(raw))
    viewer, vol = viewer_with_ct
    widget = _segment_widget(viewer, strict, monkeypatch)

    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    seg = viewer.layers["tiny CT segmentation"]
    assert not (seg.data == 2).any()
    points = viewer.layers["tiny CT segmentation unsure lesions"]
    assert len(points.data) == 1 and points.features["volume_ml"][0] > 0
    assert points.border_width[0] == pytest.approx(0.12)  # not napari's 1-px 0.05
    assert points.text.values[0].startswith("unsure ")
    np.testing.assert_allclose(points.scale, seg.scale)
    assert "unsure candidate" in widget.status.text()
    assert viewer.layers.selection.active is seg

    # a rerun marks its own candidates in the same layer (removing and adding one froze the
    # window about a second)
    points.data = np.zeros((3, 3))
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert viewer.layers["tiny CT segmentation unsure lesions"] is points
    assert len(points.data) == 1 and len(points.features) == 1
    assert points.text.values[0].startswith("unsure ")
    assert viewer.layers.selection.active is viewer.layers["tiny CT segmentation"]
    # drawn over the new mask, not under it (the rerun added the mask on top)
    names = [ly.name for ly in viewer.layers]
    assert names.index("tiny CT segmentation unsure lesions") == (
        names.index("tiny CT segmentation") + 1
    ), names

    qtbot.wait(50)  # (the previous result's removal is followed up after napari's own)
    assert viewer.layers["tiny CT segmentation unsure lesions"] is points

    # the segmentation removed: its marks go with it (squares over a scan with no result)
    viewer.layers.remove(viewer.layers["tiny CT segmentation"])
    qtbot.waitUntil(
        lambda: "tiny CT segmentation unsure lesions" not in viewer.layers, timeout=20_000
    )
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "tiny CT segmentation unsure lesions" in viewer.layers

    widget.unsure_check.setChecked(False)  # keep them this time
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert (viewer.layers["tiny CT segmentation"].data == 2).any()
    assert "tiny CT segmentation unsure lesions" not in viewer.layers
    assert "unsure" not in widget.status.text()


def test_renamed_layers_are_followed_by_every_panel(viewer_with_ct, models_dir, qtbot, monkeypatch):
    """Panels listed layers by the names they had when added: a renamed CT could not be
    segmented ("Load a CT first"), a renamed mask not exported, and a CT renamed during a run
    was reported removed, its new mask linked to a name no layer had."""
    from napari_livertumor._widgets.export import ExportWidget
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.refine import RefineWidget

    viewer, vol = viewer_with_ct
    _layers.add_ct_layer(viewer, tiny_ct(origin=(0.0, 0.0, 0.0))[0], name="another CT")
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    refine, export, inspect = RefineWidget(viewer), ExportWidget(viewer), InspectWidget(viewer)
    for w in (refine, export, inspect):
        viewer.window.add_dock_widget(w)
    widget.ct_combo.setCurrentText("tiny CT")  # not the first in the list
    widget.stage_combo.setCurrentText("liver only")
    widget.run_button.click()
    viewer.layers["tiny CT"].name = "patient A"  # renamed while the model runs
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    seg = viewer.layers["patient A segmentation"]
    assert seg.metadata[_layers.CT_LAYER] == "patient A"
    assert "removed" not in widget.status.text()
    assert widget.ct_combo.currentText() == "patient A"
    assert refine.ct_combo.currentText() == "patient A"

    viewer.layers["patient A"].name = "patient B"  # renamed at rest: the mask's link follows
    assert seg.metadata[_layers.CT_LAYER] == "patient B"
    # and every panel keeps it chosen (refilled by name, the lists fell back to another CT)
    assert widget.ct_combo.currentText() == "patient B"
    inspect.labels_combo.setCurrentText(seg.name)
    seg.name = "my mask"
    assert "my mask" in [
        export.labels_combo.itemText(i) for i in range(export.labels_combo.count())
    ]
    assert inspect.labels_combo.currentText() == "my mask"
    refine.mask_combo.setCurrentText("my mask")
    assert refine.ct_combo.currentText() == "patient B"

    widget.run_button.click()  # again on the renamed CT: the shown mask of it is moved aside
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert viewer.layers["patient B segmentation"].visible
    assert seg.name == "my mask (previous)" and not seg.visible


def test_a_rerun_never_hides_the_segmentation_of_another_ct(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """Segmented, renamed, then a new CT given the old name and segmented: the first CT's
    mask (still named after the old name) was hidden as "(previous)" as if it were the
    new CT's."""
    viewer, vol = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.stage_combo.setCurrentText("liver only")
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    first = viewer.layers["tiny CT segmentation"]
    viewer.layers["tiny CT"].name = "patient Y"
    _layers.add_ct_layer(viewer, vol, name="tiny CT")  # another scan, the old name
    widget.ct_combo.setCurrentText("tiny CT")
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert first.visible and first.name == "tiny CT segmentation"
    assert first.metadata[_layers.CT_LAYER] == "patient Y"
    assert "previous" not in widget.status.text()


def test_a_ct_renamed_before_any_panel_opened_is_still_found(make_napari_viewer):
    """A CT renamed before any panel was open (nothing followed the rename): its mask's link
    named a layer no longer there, so Refine picked whichever CT came first and Export named
    the case after the old name. The CT holding the same volume is found instead."""
    from napari_livertumor._widgets.export import ExportWidget
    from napari_livertumor._widgets.refine import RefineWidget

    viewer = make_napari_viewer()
    vol, truth = tiny_ct()
    _layers.add_ct_layer(viewer, tiny_ct(origin=(0.0, 0.0, 0.0))[0], name="another CT")
    _layers.add_ct_layer(viewer, vol, name="tiny CT")
    mask = _layers.make_labels_layer(
        (truth > 0).astype(np.uint8), vol, "my mask", ct_layer_name="tiny CT"
    )
    viewer.add_layer(mask)
    viewer.layers["tiny CT"].name = "patient A"  # no panel open: nothing follows it

    refine = RefineWidget(viewer)
    viewer.window.add_dock_widget(refine)
    refine.mask_combo.setCurrentText("my mask")
    refine._follow_mask_ct()
    assert refine.ct_combo.currentText() == "patient A"
    assert mask.metadata[_layers.CT_LAYER] == "patient A"  # the link is mended

    mask.metadata[_layers.CT_LAYER] = "gone"  # and Export names the case after the CT
    export = ExportWidget(viewer)
    export.labels_combo.setCurrentText("my mask")
    vol.meta.pop("patient_id", None)
    assert export._case() == "patient_A"
    # two CTs holding the same volume: no guess
    _layers.add_ct_layer(viewer, vol, name="copy")
    mask.metadata[_layers.CT_LAYER] = "gone"
    assert _layers.linked_ct_name(mask, viewer) is None


def test_panels_opened_from_the_menu_take_up_a_rerun_not_the_result_it_moved_aside(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """Panels opened from the Plugins menu get napari's proxy of the viewer, which hands out
    a new wrapper of a layer on each access: telling the new result from the one a rerun
    renamed "(previous)" by id() picked the hidden old one, and Export wrote it (no tumor)."""
    import warnings

    viewer, vol = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no private access through the proxy
        panels = [
            viewer.window.add_plugin_dock_widget("napari-livertumor", name)[1]
            for name in ("3 Refine tumor", "4 Inspect", "5 Export")
        ]
        refine, inspect, export = panels
        assert refine.viewer is viewer  # not the proxy
        for stages in ("liver only", "liver + tumor"):
            widget.stage_combo.setCurrentText(stages)
            widget.run_button.click()
            qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "tiny CT segmentation (previous)" in viewer.layers
    for combo in (refine.mask_combo, inspect.labels_combo, export.labels_combo):
        assert combo.currentText() == "tiny CT segmentation"


def test_a_double_click_on_run_does_not_cancel_what_it_started(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """A double-click is two clicks: the second found the job running and cancelled it
    ("Cancelled: nothing was changed")."""
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.run_button.click()
    widget.run_button.click()  # within the double-click interval
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "Cancelled" not in widget.status.text()
    assert "tiny CT segmentation" in [ly.name for ly in viewer.layers]


def test_liver_only_greys_out_the_tumor_options_and_records_no_refinement(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """With 'liver only' the tumor options stayed live, and a ticked Refine was recorded as
    applied in the exported stats (the CLI records refine false for a liver-only run)."""
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.refine_check.setChecked(True)
    widget.stage_combo.setCurrentText("liver only")
    assert not widget.refine_check.isEnabled() and not widget.tta_check.isEnabled()
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert viewer.layers["tiny CT segmentation"].metadata["run"]["refine"] is False
    widget.stage_combo.setCurrentText("liver + tumor")
    assert widget.refine_check.isEnabled() and widget.unsure_check.isEnabled()


def test_a_ct_layer_whose_voxels_were_replaced_is_segmented_as_shown(viewer_with_ct):
    """The CTVolume kept in a CT layer's metadata was segmented, not the layer's voxels: a
    duplicate given all-air data gave a liver."""
    viewer, vol = viewer_with_ct
    ct = viewer.layers["tiny CT"]
    assert _layers.volume_of(ct) is ct.metadata[_layers.CT_VOLUME]  # untouched: itself
    ct.data = np.full(vol.shape, -1000, np.int16)
    got = _layers.volume_of(ct)
    assert (got.array == -1000).all()
    np.testing.assert_allclose(got.affine, vol.affine)


def test_slice_numbers_are_the_sliders_with_several_volumes_open():
    """Slice 17 of one CT was step 32 of napari's slider with a longer CT open; a layer of
    more dimensions adds leading axes."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    ct = viewer.add_image(np.zeros((40, 8, 8)), scale=(2.5, 0.7, 0.7), translate=(-100.3, 0, 0))
    assert _layers.slider_index(viewer, ct, 17) == 17  # alone: its own index
    viewer.add_image(np.zeros((60, 8, 8)), scale=(2.5, 0.7, 0.7), translate=(-150.3, 0, 0))
    assert _layers.slider_index(viewer, ct, 17) == 37
    viewer.add_image(np.zeros((3, 60, 8, 8)), scale=(1, 2.5, 0.7, 0.7), translate=(0, -150.3, 0, 0))
    assert _layers.slider_index(viewer, ct, 17) == 37


def test_a_result_comes_under_the_ground_truths_outlines_and_into_view(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """The result was added over the ground truth, whose outlines vanished in its fill; and
    the view stayed on a slice the result did not reach (the middle of a scan: the kidneys)."""
    viewer, vol = viewer_with_ct
    truth = _layers.add_labels_layer(
        viewer, np.zeros(vol.shape, np.uint8), vol, "tiny truth", role="ground_truth"
    )
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    names = [ly.name for ly in viewer.layers]
    assert names.index("tiny truth") > names.index("tiny CT segmentation")
    assert truth.contour == _layers.GROUND_TRUTH_CONTOUR


def test_the_view_moves_to_the_result_only_when_the_slice_on_view_shows_none_of_it(
    viewer_with_ct,
):
    from napari_livertumor._widgets.segment import _show_where_found

    viewer, vol = viewer_with_ct
    data = np.zeros(vol.shape, np.uint8)
    data[1:3] = 1
    data[2, 2:4, 2:4] = 2  # the most tumor on slice 2
    layer = _layers.add_labels_layer(viewer, data, vol, "seg")
    viewer.dims.set_point(0, float(layer.data_to_world([1, 0, 0])[0]))
    assert _show_where_found(viewer, layer) is None  # liver on view: left alone
    viewer.dims.set_point(0, float(layer.data_to_world([vol.shape[0] - 1, 0, 0])[0]))
    assert _show_where_found(viewer, layer) == (2, "the most tumor")
    assert viewer.dims.point[0] == pytest.approx(float(layer.data_to_world([2, 0, 0])[0]))
    layer.data = np.where(data == 2, 1, data).astype(np.uint8)
    viewer.dims.set_point(0, float(layer.data_to_world([vol.shape[0] - 1, 0, 0])[0]))
    assert _show_where_found(viewer, layer)[1] == "the most liver"
    viewer.dims.ndisplay = 3
    viewer.dims.set_point(0, float(layer.data_to_world([vol.shape[0] - 1, 0, 0])[0]))
    assert _show_where_found(viewer, layer) is None  # 3D: no slice on view


def test_only_the_ground_truths_over_its_own_ct_are_lifted_over_a_result(make_napari_viewer):
    """Another patient's ground truth on an identical grid, hidden under this patient's CT,
    was lifted over the result, outlined on the wrong patient."""
    viewer = make_napari_viewer()
    vol, _ = tiny_ct()
    zeros = np.zeros(vol.shape, np.uint8)
    ct_b = _layers.add_ct_layer(viewer, vol, name="CT B")
    _layers.add_labels_layer(viewer, zeros, vol, "truth B", role="ground_truth")
    ct_a = _layers.add_ct_layer(viewer, vol, name="CT A")
    _layers.add_labels_layer(viewer, zeros, vol, "truth A", role="ground_truth")
    seg = _layers.add_labels_layer(viewer, zeros, vol, "CT A segmentation")
    assert _layers.lift_truths_over(viewer, seg, ct_a) == ["truth A"]
    assert [ly.name for ly in viewer.layers] == [
        "CT B", "truth B", "CT A", "CT A segmentation", "truth A"
    ]  # fmt: skip
    assert ct_b.name == "CT B"


def test_a_ground_truth_opened_as_a_file_in_3d_is_see_through_there_and_outlined_in_2d(
    make_napari_viewer,
):
    viewer = make_napari_viewer()
    vol, _ = tiny_ct()
    _layers.show_new_scans(viewer)
    _layers.dim_truth_in_3d(viewer)
    viewer.dims.ndisplay = 3
    from napari.layers import Labels

    truth = Labels(
        np.zeros(vol.shape, np.uint8), opacity=0.5,
        metadata={_layers.ROLE: "ground_truth", _layers.CT_VOLUME: vol},
    )  # fmt: skip
    viewer.add_layer(truth)  # as File > Open adds the reader's layer
    assert truth.contour == _layers.GROUND_TRUTH_CONTOUR
    assert truth.opacity <= _layers.GROUND_TRUTH_3D_OPACITY
    viewer.dims.ndisplay = 2
    assert truth.opacity >= 0.9


def test_a_models_folder_whose_liver_run_has_no_model_yet_names_the_train_panel(
    viewer_with_ct, models_dir, qtbot, monkeypatch, tmp_path
):
    """A run stopped before its first best model: the message said to finish it with the
    `livertumor train` command only; the Train panel's Start and Resume do it too."""
    import shutil

    models = tmp_path / "models"
    shutil.copytree(models_dir, models)
    (models / "liver" / "last").mkdir()
    for name in ("metadata.json", "model.safetensors"):
        (models / "liver" / name).rename(models / "liver" / "last" / name)
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models, monkeypatch)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    text = widget.status.text()
    assert "no model here yet" in text
    assert "--resume" in text and "Start then Resume in the Train panel" in text
    assert "tiny CT segmentation" not in viewer.layers


def test_a_training_runs_last_checkpoint_chosen_as_the_model_is_warned_of_in_amber(
    viewer_with_ct, models_dir, qtbot, monkeypatch, tmp_path
):
    """A run's liver/last folder (the state a stopped run resumes from, uncalibrated and never
    validated) chosen as the model segmented like any finished model, with no word of it; the
    command line now warns of it, and the panel says the same first, in amber."""
    import shutil

    best = tmp_path / "run" / "liver"
    shutil.copytree(models_dir / "liver", best)
    shutil.copytree(models_dir / "liver", best / "last")
    (best / "last" / "train_state.pt").write_bytes(b"state")
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, best / "last", monkeypatch)
    widget.stage_combo.setCurrentText("liver only")
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    said = widget.status.text()
    # among the amber lines above the result's (after the scan's own, as a weak model's note)
    amber = said[: said.index("Segmented 'tiny CT'")].splitlines()
    (line,) = [x for x in amber if x.startswith(f"⚠ the liver model ({best / 'last'})")]
    assert "is a training run's last/ checkpoint" in line and "not a finished model" in line
    assert f"saved best model ({best}) instead" in line and "Resume in the Train panel" in line
    assert widget.status._kind == "warning" and "tiny CT segmentation" in viewer.layers


def test_a_model_whose_output_overflows_is_said_and_the_segmentation_shown_stays(
    viewer_with_ct, models_dir, qtbot, monkeypatch, tmp_path
):
    """A tumor model with finite weights 1e30 times too large (all-NaN logits) replaced the
    segmentation shown with one of 0 mL of tumor, and the panel said nothing was wrong."""
    import shutil

    from safetensors.torch import load_file

    from napari_livertumor.models import read_metadata, save_model

    bad = tmp_path / "overflowing"
    shutil.copytree(models_dir, bad)
    sd = load_file(str(bad / "tumor" / "model.safetensors"))
    sd = {k: v * 1e30 if v.is_floating_point() else v for k, v in sd.items()}
    save_model(bad / "tumor", sd, read_metadata(bad / "tumor"))
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    before = np.array(viewer.layers["tiny CT segmentation"].data)
    assert (before == 2).any()
    names = [ly.name for ly in viewer.layers]
    monkeypatch.setattr(
        "napari_livertumor._widgets.segment.QFileDialog.getExistingDirectory",
        lambda *a, **k: str(bad),
    )
    widget.model_browse.click()  # the user picks the other models folder
    assert widget.model_combo.currentText() == str(bad)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    said = widget.status.text()
    assert str(bad / "tumor" / "model.safetensors") in said, said
    assert "the tumor model's output on this scan holds 100 % NaN or infinite values" in said
    assert widget.status._kind == "error"
    assert [ly.name for ly in viewer.layers] == names
    np.testing.assert_array_equal(viewer.layers["tiny CT segmentation"].data, before)


def test_the_note_on_a_single_model_folder_names_the_whole_folder(tmp_path):
    """'(liver holds no tumor model)' named the folder's last part, read as the organ."""
    from napari_livertumor._widgets.segment import _default_stage_note
    from napari_livertumor.models import make_untrained_model

    folder = make_untrained_model(tmp_path / "runC" / "liver", "liver")
    note = _default_stage_note(str(folder), liver_only=False)
    assert note == f"Tumor model: the shipped default (the folder {folder} holds no tumor model)."
    assert _default_stage_note(str(folder), liver_only=True) is None


def test_a_scan_opened_by_naparis_own_reader_is_refused_with_the_way_to_open_it(
    make_napari_viewer, tmp_path
):
    """``viewer.open(folder)`` (napari's own reader, as File > Open with napari builtins
    chosen) opens a DICOM series with no voxel spacing, 1 × 1 × 1: Segment ran and said "no
    liver found … 79 mm wide at most, narrower than an adult's abdomen … a child's", the real
    cause never said. Refused, saying how to open it here; an image layer made from an array
    (its scale the user's to set) is still offered and segmentable."""
    from napari_livertumor.io import CTVolume
    from napari_livertumor.io.dicom_write import write_ct_series

    source = CTVolume(
        np.random.default_rng(0).integers(-1000, 400, (6, 20, 22)).astype(np.int16),
        (2.5, 0.8, 0.75),
    )
    write_ct_series(source, tmp_path / "4.000000-LIVER 3 PHASE CAP", patient_id="P1")
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "4.000000-LIVER 3 PHASE CAP"))  # napari's reader
    assert layer.source.reader_plugin == "napari" and list(layer.scale) == [1.0, 1.0, 1.0]
    widget = SegmentWidget(viewer)
    widget.device_combo.setCurrentText("cpu")
    widget.ct_combo.setCurrentText(layer.name)
    widget.run_button.click()
    assert not widget.busy
    said = widget.status.text()
    assert "opened by napari's own reader, so it has no voxel spacing" in said, said
    assert "choose Liver Tumor Segmentation" in said and "Load CT panel" in said
    # a folder: File > Open File(s)… cannot pick one; the message ends with a full stop
    assert "Open 4.000000-LIVER 3 PHASE CAP again with File > Open Folder…" in said, said
    assert said.endswith("Load CT panel."), said
    assert [ly.name for ly in viewer.layers] == [layer.name]  # nothing added
    # the slices' files opened as a stack: the path napari keeps is one slice's, its folder
    # is named
    files = sorted(str(f) for f in (tmp_path / "4.000000-LIVER 3 PHASE CAP").iterdir())
    [stack] = viewer.open(files, stack=True, plugin="napari")
    why = _layers.opened_without_spacing(stack, viewer.layers)
    assert "Open its folder 4.000000-LIVER 3 PHASE CAP with File > Open Folder…" in why, why
    viewer.layers.remove(stack)

    # the user's own array at 1 mm, and the same layer given its spacing: not refused
    mine = viewer.add_image(np.asarray(layer.data), name="my array")
    assert _layers.opened_without_spacing(mine, viewer.layers) is None
    layer.scale = (2.5, 0.8, 0.75)
    assert _layers.opened_without_spacing(layer, viewer.layers) is None


def test_a_segmentation_converted_to_an_image_is_not_offered_as_a_ct(viewer_with_ct):
    """napari's *Convert to Image* keeps a labels layer's metadata: the Segment panel listed
    the converted segmentation (or ground truth) as a CT to segment."""
    from napari._app_model import get_app_model
    from napari.layers import Image

    viewer, vol = viewer_with_ct
    widget = SegmentWidget(viewer)
    for role in ("segmentation", "ground_truth"):
        labels = _layers.add_labels_layer(
            viewer, (vol.array > 0).astype(np.uint8), vol, f"tiny CT {role}", role=role
        )
        viewer.layers.selection = {labels}
        viewer.layers.selection.active = labels
        get_app_model().commands.execute_command("napari.layer.convert_to_image").result()
    converted = [ly for ly in viewer.layers if isinstance(ly, Image) and ly.name != "tiny CT"]
    assert {ly.metadata.get(_layers.ROLE) for ly in converted} == {"segmentation", "ground_truth"}
    widget.refresh_layers()
    assert [widget.ct_combo.itemText(i) for i in range(widget.ct_combo.count())] == ["tiny CT"]


def test_no_liver_in_a_layer_at_1_mm_says_that_no_spacing_is_known():
    """A TIFF stack or an array at 1 × 1 × 1 got only "narrower than an adult's abdomen … a
    child's": the likelier cause, no known spacing, is said too."""
    from napari.layers import Image

    from napari_livertumor._widgets.segment import _unknown_spacing_said

    said = (
        "no liver found: what was scanned is 64 mm wide at most, narrower than an adult's "
        "abdomen (280-400 mm): a child's (…), or no abdomen (a head, a limb)"
    )
    layer = Image(np.zeros((4, 8, 8), np.int16))
    assert _unknown_spacing_said(said, layer).endswith(
        "(the layer's voxels are 1 × 1 × 1 mm: no spacing is known — set the layer's scale, "
        "or open the DICOM/NIfTI with this plugin)"
    )
    assert _unknown_spacing_said("no liver found: is this an abdominal CT", layer).endswith("CT")
    vol, _ = tiny_ct()
    ours = Image(np.zeros((4, 8, 8), np.int16), metadata={_layers.CT_VOLUME: vol})
    assert _unknown_spacing_said(said, ours) == said
    assert _unknown_spacing_said(said, Image(np.zeros((4, 8, 8)), scale=(2.5, 1, 1))) == said


def test_a_liver_only_folder_says_the_shipped_tumor_model_ran_beside_the_models_named(
    viewer_with_ct, models_dir, tmp_path, qtbot, monkeypatch
):
    """After training the liver only, Segment with that folder ran the shipped tumor model:
    said, but as the status's sixth line, under the warnings and the unsure lesions."""
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(models_dir / "liver", folder / "liver")  # the liver trained, no tumor
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, folder, monkeypatch)
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    text = widget.status.text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("Segmented")]
    assert line.endswith(
        f"Models: {folder}. Tumor model: the shipped default (the folder {folder} holds no "
        "tumor model)."
    ), text


def test_candidates_within_two_slices_share_a_label_and_three_apart_do_not():
    """The labels of overlapping squares are joined "within two slices": two slices apart
    is joined (the texts lay on each other over the slices between), three apart is not."""
    from napari_livertumor._widgets.segment import _unsure_labels

    unsure = [{"volume_ml": 0.5}, {"volume_ml": 0.3}, {"volume_ml": 0.2}]
    centres = np.array([[40, 100, 100], [42, 101, 100], [45, 100, 101]], float)
    labels = _unsure_labels(unsure, centres, [12.0] * 3)
    assert labels == ["unsure 0.5 + 0.3 mL", "", "unsure 0.2 mL"]


def test_unsure_marks_lie_over_their_labels_and_are_sized_from_millimetres(viewer_with_ct):
    """A dropped candidate's square lies just above its segmentation (under it, the half
    opaque mask hid it) and is about 1.5 times the candidate's diameter, converted from mm
    into the layer's in-plane voxels."""
    from napari_livertumor._widgets.segment import _show_unsure

    viewer, vol = viewer_with_ct
    labels = _layers.add_labels_layer(
        viewer, np.zeros(vol.shape, np.uint8), vol, "tiny CT segmentation", ct_layer_name="tiny CT"
    )
    unsure = [{"centroid_zyx": [8.0, 24.0, 20.0], "volume_ml": 10.0, "peak_margin": 0.5}]
    name = _show_unsure(viewer, labels, unsure)
    names = [ly.name for ly in viewer.layers]
    assert names.index(name) == names.index("tiny CT segmentation") + 1, names
    assert viewer.layers.selection.active is labels
    diameter_mm = (6e3 * 10.0 / np.pi) ** (1 / 3)  # a ball of 10 mL: about 27 mm
    voxels = 1.5 * diameter_mm / float(labels.scale[-1])  # 0.9 mm voxels: about 45
    assert viewer.layers[name].size[0] == pytest.approx(voxels, rel=1e-3)


def test_a_run_being_stopped_greys_its_button_until_it_has_stopped(
    viewer_with_ct, models_dir, qtbot, monkeypatch
):
    """While a cancelled run winds down, its button reads the stopping text and cannot be
    clicked; once the run has ended it is the Run button again."""
    viewer, _ = viewer_with_ct
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    widget.run_button.click()
    widget.jobs[widget.run_button].started_at -= 1  # a later click, not a double-click's second
    widget.run_button.click()
    assert widget.run_button.text() == widget.STOPPING_TEXT
    assert not widget.run_button.isEnabled()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.run_button.text() == "Run" and widget.run_button.isEnabled()


def test_a_stages_last_progress_is_shown_however_soon_it_follows(qtbot):
    """The progress signals are throttled, but never a stage's last one: a stage that ended
    within the throttle's 50 ms of its previous report would leave the bar short of its end."""
    from qtpy.QtWidgets import QProgressBar

    from napari_livertumor._widgets._jobs import Job

    bar = QProgressBar()
    qtbot.addWidget(bar)
    job = Job(lambda progress, should_cancel: None, progress_bar=bar, napari_progress=False)
    job.status = "running"  # as start() sets it, without running the target
    job._report("liver", 1, 5)
    job._report("liver", 2, 5)  # at once: throttled away
    job._report("liver", 5, 5)  # at once too, but the stage's end
    qtbot.waitUntil(lambda: bar.value() == 5, timeout=20_000)
    assert bar.maximum() == 5 and bar.format().startswith("liver")
    job.status = "done"


def test_liver_only_with_a_folders_tumor_model_says_it_went_unused(models_dir):
    """'liver only' with a models folder holding a tumor model: the command line says the
    tumor model is not used, the panel said nothing (its user took the tumor model as run)."""
    from napari_livertumor._widgets.segment import _default_stage_note

    assert _default_stage_note(str(models_dir), True) == (
        "Its tumor model was not used (liver only)."
    )
    assert _default_stage_note(str(models_dir), False) is None
    assert _default_stage_note(str(models_dir / "tumor"), False).startswith(
        "Liver model: the shipped default"
    )
    assert _default_stage_note(str(models_dir / "tumor"), True).endswith(
        "holds no liver model). Its tumor model was not used (liver only)."
    )


def test_a_run_of_both_stages_that_finds_no_liver_is_not_called_liver_only(
    make_napari_viewer, models_dir, qtbot, monkeypatch
):
    """ "liver + tumor" with a models folder on a scan with no liver: the status said "no tumor
    stage run … Its tumor model was not used (liver only)", as if "liver only" were chosen
    (told from the missing tumor volume, not from the stages run)."""
    from napari_livertumor.io import CTVolume

    viewer = make_napari_viewer()
    vol, _ = tiny_ct()
    air = CTVolume(np.full(vol.array.shape, -1000, np.int16), spacing=vol.spacing)
    _layers.add_ct_layer(viewer, air, name="air")
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    assert widget.stage_combo.currentText() == "liver + tumor"
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    said = widget.status.text()
    assert "no liver found" in said
    assert "no tumor looked for (no liver found)" in said
    assert "liver only" not in said and "no tumor stage run" not in said

    widget.stage_combo.setCurrentText("liver only")  # chosen: said so, as before
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    said = widget.status.text()
    assert "no tumor stage run" in said
    assert "Its tumor model was not used (liver only)." in said


def _stacked_passes(folder, case: str) -> None:
    """A series #1 'ABD' of patient P9 stacking the tiny CT twice: as two phases under their
    AcquisitionNumbers ("phases"), or as acq 1's B30f and acq 2's B30f and B70f ("passes":
    passes 1-3, numbered apart from their AcquisitionNumbers)."""
    import pydicom

    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume

    vol, _ = tiny_ct()
    specs = {
        "phases": [(1, "arterial", None), (2, "portal venous", None)],
        "passes": [(1, "", ("B30f", "101500")), (2, "", ("B30f", "101600")),
                   (2, "", ("B70f", "101600"))],
    }[case]  # fmt: skip
    n = vol.shape[0]
    for k, (acq, phase, recon) in enumerate(specs):
        paths = write_ct_series(CTVolume(vol.array + 5 * k, vol.spacing, origin=vol.origin),
                                folder, acquisition_number=acq, contrast_phase=phase,
                                series_uid="1.2.826.0.1.3680043.8.498.16", series_number=1,
                                series_description="ABD", patient_id="P9",
                                instance_number_start=1 + n * k,
                                file_names=[f"p{k}_{i}.dcm" for i in range(n)])  # fmt: skip
        for p in paths if recon else ():
            ds = pydicom.dcmread(p)
            ds.ConvolutionKernel, ds.AcquisitionTime = recon
            ds.save_as(p)


def _passes_found(viewer, qtbot, folder, case: str):
    """A Load panel docked in ``viewer`` that has found :func:`_stacked_passes`' series in
    ``folder`` (made there), one row a pass."""
    from napari_livertumor._widgets.load import SOURCES, LoadWidget

    _stacked_passes(folder, case)
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load)
    load.source.setCurrentText(SOURCES[0])
    load.path.setText(str(folder))
    load.scan_button.click()
    qtbot.waitUntil(lambda: not load.busy, timeout=30_000)
    return load


@pytest.mark.parametrize(
    ("case", "passes"), [("phases", ("acq 1", "acq 2")), ("passes", ("pass 1", "pass 2"))]
)
def test_two_passes_of_one_series_segmented_and_exported_are_told_apart(
    make_napari_viewer, models_dir, qtbot, monkeypatch, tmp_path, case, passes
):
    """Two passes of one series loaded from the Load panel's rows and segmented: napari's
    layer list, cutting a name in the middle, showed both "P9 ABD (kern…segmentation" (the
    pass before " segmentation"); Export named both passes' files P9_… (the second asked to
    replace the first's); a pass within an acquisition read "(pass 2 (acq 2), kernel B30f)"
    in its row and "(kernel B30f, pass 2 (acq 2)) segmentation" in its layer's name."""
    from qtpy.QtCore import Qt

    from napari_livertumor._widgets.export import ExportWidget
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.refine import RefineWidget

    viewer = make_napari_viewer()
    load = _passes_found(viewer, qtbot, tmp_path / "dicom", case)
    rows = [load.series_table.item(r, 0).text() for r in range(load.series_table.rowCount())]
    assert all(row.count("(") == 1 for row in rows), rows  # no brackets within brackets
    assert case == "phases" or "#1 ABD (pass 2, acq 2, kernel B30f)" in rows, rows
    for r in range(2):
        load.series_table.selectRow(r)
        load.load_button.click()
        qtbot.waitUntil(lambda: not load.busy, timeout=30_000)
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    cts = [ly.name for ly in _layers.ct_layers(viewer)]
    for name in cts:
        widget.ct_combo.setCurrentText(name)
        widget.run_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    segs = [ly.name for ly in _layers.labels_layers(viewer, role="segmentation")]
    assert len(segs) == 2, [ly.name for ly in viewer.layers]
    for name in cts + segs:
        assert name.count("(") == 1, name
    # as napari's layer list shows them: cut in the middle, each with its pass at its end
    metrics = load.series_table.fontMetrics()
    for seg, which in zip(sorted(segs), passes, strict=True):
        assert seg.startswith("P9 ABD segmentation (") and seg.endswith(f", {which})"), seg
        shown = metrics.elidedText(seg, Qt.ElideMiddle, 150)
        assert "…" in shown and shown.endswith(f"{which})"), shown
    # the panels' pickers, narrow, show each pass too
    export, inspect, refine = ExportWidget(viewer), InspectWidget(viewer), RefineWidget(viewer)
    for panel in (export, inspect, refine):
        viewer.window.add_dock_widget(panel)
    refine.refresh_layers()
    for combo in (export.labels_combo, inspect.labels_combo, refine.mask_combo):
        assert sorted(combo.itemText(i) for i in range(combo.count())) == sorted(segs)
        combo.setFixedWidth(180)
        for seg, which in zip(sorted(segs), passes, strict=True):
            combo.setCurrentText(seg)
            assert combo.shown_text().endswith(f"{which})"), combo.shown_text()
    # each pass exported under a default name of its own, nothing asked or replaced
    export.folder.setText(str(tmp_path / "out"))
    asked = []
    monkeypatch.setattr(export, "ask_overwrite", lambda *a, **k: asked.append(a) or False)
    for seg in segs:
        export.labels_combo.setCurrentText(seg)
        export.export_button.click()
        qtbot.waitUntil(lambda: not export.busy, timeout=30_000)
    assert not asked
    written = sorted(p.name for p in (tmp_path / "out").glob("*_labels.nii.gz"))
    assert written == [f"P9_{w.replace(' ', '')}_labels.nii.gz" for w in passes], written


def test_a_passs_rerun_copy_and_a_second_load_keep_the_pass_in_the_pickers(
    make_napari_viewer, models_dir, qtbot, monkeypatch, tmp_path
):
    """Two passes of one series, each segmented twice, and the arterial pass loaded again:
    the pickers shortened "P9 ABD segmentation (arterial, acq 1) (previous)" and the portal
    venous one's to 'P9 ABD s… (previous)' both, and "… (arterial, acq 1) [2]" to
    'P9 ABD segment… [2]': the pass was cut, the names read the same."""
    from napari_livertumor._widgets.export import ExportWidget
    from napari_livertumor._widgets.inspect import InspectWidget

    viewer = make_napari_viewer()
    load = _passes_found(viewer, qtbot, tmp_path / "dicom", "phases")
    for r in (0, 1, 0):  # (the first pass twice: its second layer "… [2]")
        load.series_table.selectRow(r)
        load.load_button.click()
        qtbot.waitUntil(lambda: not load.busy, timeout=30_000)
    widget = _segment_widget(viewer, models_dir, monkeypatch)
    cts = [ly.name for ly in _layers.ct_layers(viewer)]
    for name in cts + cts[:2]:  # (the first two again: their results moved aside)
        widget.ct_combo.setCurrentText(name)
        widget.run_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    segs = sorted(ly.name for ly in _layers.labels_layers(viewer, role="segmentation"))
    assert segs == [
        "P9 ABD segmentation (arterial, acq 1)",
        "P9 ABD segmentation (arterial, acq 1) (previous)",
        "P9 ABD segmentation (arterial, acq 1) [2]",
        "P9 ABD segmentation (portal venous, acq 2)",
        "P9 ABD segmentation (portal venous, acq 2) (previous)",
    ], segs
    export, inspect = ExportWidget(viewer), InspectWidget(viewer)
    for panel in (export, inspect):
        viewer.window.add_dock_widget(panel)
    for combo in (export.labels_combo, inspect.labels_combo):
        combo.setFixedWidth(200)
        shown = {}
        for seg in segs:
            combo.setCurrentText(seg)
            shown[seg] = combo.shown_text()
            assert "…" in shown[seg], shown  # (each shortened)
            end = seg[seg.index("acq ") :]  # "acq 1) (previous)", "acq 1) [2]", "acq 2)"
            assert shown[seg].endswith(end), shown
        assert len(set(shown.values())) == len(segs), shown
