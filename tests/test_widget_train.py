"""The Train widget: check the data, start, watch two steps, stop; the model is offered in
Segment; an unusable folder gives a clear message."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from _widget_data import timed_calls

from napari_livertumor._widgets import _registry
from napari_livertumor._widgets._heartbeat import Heartbeat
from napari_livertumor._widgets.segment import SegmentWidget
from napari_livertumor._widgets.train import TrainWidget
from napari_livertumor.models import make_untrained_model

pytestmark = pytest.mark.gui
pytest.importorskip("napari_livertumor.training.loop", reason="training has not landed yet")


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    from napari_livertumor.training.toydata import write_toy_cohort

    return write_toy_cohort(tmp_path_factory.mktemp("toy"), n_cases=4, seed=1, shape=(16, 32, 32))


@pytest.fixture
def train_widget(make_napari_viewer, monkeypatch):
    monkeypatch.setattr(_registry, "_recent_model_folders", [])
    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def _small_run(widget, data, out):
    widget.data.setText(str(data))
    widget.out.setText(str(out))
    widget.stage.setCurrentText("liver")
    widget.patch.setText("16, 32, 32")
    widget.device.setCurrentText("cpu")


def _start_faked(monkeypatch, train_widget, tmp_path, fake):
    """The Train panel started on a small run whose training process is ``fake`` (a
    generator of reports standing in for ``train_in_subprocess``); the panel."""
    import napari_livertumor._widgets.train as train_mod

    monkeypatch.setattr(train_mod, "train_in_subprocess", fake)
    _, widget = train_widget
    (tmp_path / "data").mkdir()
    _small_run(widget, tmp_path / "data", tmp_path / "models")
    widget.start_button.click()
    return widget


def test_the_path_fields_hints_fit_in_the_panel_and_say_the_rest_in_tooltips(
    make_napari_viewer, qtbot
):
    """The data, clinical and output fields' placeholders were cut ("optional (found in the
    dat…", "where the model folder is…") in the panel's column as the demo docks it: short
    enough to read whole, with the full hint in the field's tooltip."""
    from napari_livertumor._widgets.demo import _fill_screen, dock_widgets

    viewer = make_napari_viewer(show=True)
    _fill_screen(viewer)
    widget = dock_widgets(viewer, ["load", "segment", "train"])["train"]
    widget.parentWidget().parentWidget().raise_()  # (its dock: the tab shown)
    qtbot.waitUntil(lambda: widget.data.isVisible(), timeout=20_000)
    for field in (widget.data, widget.clinical, widget.out):
        hint = field.placeholderText()
        assert hint and field.toolTip()
        assert field.fontMetrics().horizontalAdvance(hint) + 8 <= field.width(), (
            hint,
            field.width(),
        )
    assert "labelsTr" in widget.data.toolTip() and "HCC-TACE-Seg" in widget.data.toolTip()


def test_check_data_summarises_patients_and_clinical_columns(train_widget, toy_data, qtbot):
    _, widget = train_widget
    widget.data.setText(str(toy_data))
    widget.check_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    text = widget.summary.text()
    assert "4 patient(s) with ground-truth labels (nifti layout)" in text
    assert "Clinical table" in text


def test_check_data_names_left_out_patients_and_a_clinical_table_without_values(
    train_widget, toy_data, qtbot, tmp_path
):
    """It said "4/4 patients matched, 15/15 columns found" for a table of "unknown"s, and
    nothing of the patient left out for missing labels."""
    import shutil

    _, widget = train_widget
    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    next((data / "labelsTr").glob("*.nii.gz")).unlink()
    table = tmp_path / "clinical.csv"
    table.write_text(
        "TCIA_ID,AFP,age,Tr_Size\n" + "".join(f"HCC_{i:03d},unknown,sixty,?\n" for i in range(1, 5))
    )
    widget.data.setText(str(data))
    widget.clinical.setText(str(table))
    widget.check_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    text = widget.summary.text()
    assert "3 patient(s) with ground-truth labels" in text
    assert "1 patient(s) left out" in text and "no label file" in text
    # (the panel's default stage, the liver, reads no table: not "the tumor stage cannot use
    # weak supervision", which is no news here)
    assert "0 of them with usable values" in text
    said = text + "\n" + widget.log.toPlainText()  # (no warning: in the log, not the box)
    assert "No usable clinical value (this run does not read them)." in said, said
    # its row is the left-out patient's, not a row "of no patient here"
    assert "Rows of patients left out above: HCC_" in text
    assert "no patient here" not in text


def test_check_data_of_the_liver_stage_does_not_refuse_a_table_without_values(
    train_widget, toy_data, qtbot, tmp_path
):
    """The liver stage has no weak term, whatever λ read before it was greyed out: its Check
    data of a table without a usable value says so, not that the tumor stage's run "will not
    start", and still names the columns without a value."""
    _, widget = train_widget
    table = tmp_path / "clinical.csv"
    table.write_text(
        "TCIA_ID,AFP,age,Tr_Size\n" + "".join(f"HCC_{i:03d},unknown,sixty,?\n" for i in range(1, 5))
    )
    widget.data.setText(str(toy_data))
    widget.clinical.setText(str(table))
    widget.stage.setCurrentText("liver")
    widget.weak_lambda.setValue(0.7)  # (a value typed in before it was greyed)
    widget.check_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    text = widget.summary.text() + "\n" + widget.log.toPlainText()  # (the rest in the log)
    assert "Weak supervision off (the liver stage has no weak term)" in text, text
    assert "will not start" not in text, text
    assert "Columns without a usable value: AFP, age" in text, text


def test_train_two_steps_responsively_then_offer_the_model_in_segment(
    train_widget, toy_data, qtbot, tmp_path
):
    viewer, widget = train_widget
    _small_run(widget, toy_data, tmp_path / "models")
    widget.epochs.setValue(1)
    widget.steps.setValue(2)
    qtbot.wait(200)
    # the chart's draws are the panel's own GUI work (a first draw with data took 0.44 s on a
    # busy machine): they are timed apart from the rest, which must never freeze the window
    draws = timed_calls(widget.canvas, "draw")
    beat = Heartbeat(20).start()
    widget.start_button.click()
    assert widget.start_button.text() == "Stop"
    qtbot.waitUntil(lambda: not widget.busy, timeout=240_000)
    beat.stop()
    assert widget.history["step"] == [1, 2]
    assert draws  # the chart was drawn during the run
    # the window never froze for half a second, but for the chart's own draws
    assert beat.max_stall_outside(draws) < 500, (beat.summary(), beat.long_stalls, draws)
    assert max(b - a for a, b in draws) < 2.0  # and those are throttled, bounded draws
    # the data preparation before the first step is shown, patient by patient
    log = widget.log.toPlainText()
    assert "preparing 3 training/validation patients (read once, then cached)" in log, (
        log
    )  # 1 held out
    assert log.index("preparing 3 training") < log.index("training / ")
    assert (tmp_path / "models" / "liver" / "metadata.json").is_file()
    assert "can be chosen in Segment" in widget.status.text()

    segment = SegmentWidget(viewer)
    segment.refresh_models()
    items = [segment.model_combo.itemText(i) for i in range(segment.model_combo.count())]
    assert str((tmp_path / "models").resolve()) in items


def test_a_check_of_a_folder_no_longer_wanted_stops_reading_it(
    train_widget, qtbot, tmp_path, monkeypatch
):
    """Browsing another folder while the first is checked used to leave the first check
    reading every DICOM header of the old folder in the background."""
    import threading
    import time

    from napari_livertumor._widgets import train as train_module
    from napari_livertumor.errors import Cancelled

    old, new = tmp_path / "old", tmp_path / "new"
    stopped = threading.Event()

    def fake_summary(data, clinical=None, progress=None, should_cancel=None, **kwargs):
        if data == str(old):  # a slow folder: reads until told to stop
            end = time.monotonic() + 20
            while time.monotonic() < end:
                progress("patients", 1, 100)
                if should_cancel():
                    stopped.set()
                    raise Cancelled()
                time.sleep(0.01)
            return ["the old folder, read to the end"]
        return [f"checked {data}"]

    monkeypatch.setattr(train_module, "summarize_data", fake_summary)
    _, widget = train_widget
    widget.data.setText(str(old))
    widget.check_button.click()
    qtbot.wait(200)
    monkeypatch.setattr(train_module.QFileDialog, "getExistingDirectory", lambda *a: str(new))
    widget.data_browse.click()
    qtbot.waitUntil(stopped.is_set, timeout=20_000)
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.summary.text() == f"checked {new}"
    assert f"Check data of {new}:" in widget.log.toPlainText()
    # a folder typed while a check runs: the check gives way, no summary of another folder
    widget.data.setText(str(old))
    widget.check_button.click()
    qtbot.wait(200)
    stopped.clear()
    widget.data.setText(str(new) + "x")
    qtbot.waitUntil(stopped.is_set, timeout=20_000)
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.summary.text() == "" and "Check data again" in widget.status.text()


def test_a_summary_goes_when_the_clinical_table_stage_or_weak_term_changes(
    train_widget, qtbot, tmp_path, monkeypatch
):
    """The summary says which patients have a clinical row and whether the tumor stage will
    start: it stayed up, of the table checked before, when another table was chosen."""
    from napari_livertumor._widgets import train as train_module

    def fake_summary(data, clinical=None, progress=None, should_cancel=None, **kwargs):
        return [f"checked {data} with {clinical}, λ {kwargs.get('weak_lambda')}"]

    monkeypatch.setattr(train_module, "summarize_data", fake_summary)
    _, widget = train_widget
    widget.stage.setCurrentText("tumor")
    widget.weak_lambda.setValue(0.5)
    widget.data.setText(str(tmp_path))
    widget.clinical.setText(str(tmp_path / "a.csv"))

    def check() -> None:
        widget.check_button.click()
        qtbot.waitUntil(lambda: widget.summary_box.isVisibleTo(widget), timeout=20_000)

    check()
    assert "a.csv" in widget.summary.text()
    widget.weak_lambda.setValue(0.7)  # another weight: the same patients, the same summary
    assert widget.summary_box.isVisibleTo(widget)
    from qtpy.QtCore import Qt

    edit = widget.weak_lambda.lineEdit()  # typed: "0.9" passes through 0 on the way
    edit.selectAll()
    qtbot.keyClicks(edit, "0.9")
    qtbot.keyClick(edit, Qt.Key_Return)
    assert widget.weak_lambda.value() == 0.9 and widget.summary_box.isVisibleTo(widget)
    widget.clinical.setText(str(tmp_path / "b.csv"))
    assert widget.summary.text() == "" and not widget.summary_box.isVisibleTo(widget)
    assert "The clinical table changed since Check data" in widget.status.text()
    check()
    widget.weak_lambda.setValue(0.0)
    assert not widget.summary_box.isVisibleTo(widget)
    assert "weak term" in widget.status.text()
    check()
    widget.stage.setCurrentText("liver")
    assert not widget.summary_box.isVisibleTo(widget) and "stage" in widget.status.text()


def test_resume_goes_on_with_the_runs_whole_recipe_and_the_forms_run_settings(
    train_widget, toy_data, tmp_path
):
    """A run made with a recipe file (batch 1, focal γ 3, no rotation...) resumed in the panel
    went on with the form's defaults for all but its network, patch, grid and HU window."""
    from napari_livertumor.training import make_config

    _, widget = train_widget
    _small_run(widget, toy_data, tmp_path / "models")
    recipe = {"liver": {"batch_size": 1, "focal_gamma": 3.0, "aug_rotate_deg": 0.0,
                        "warmup_steps": 3, "vae_weight": 0.0, "roi_size": [16, 48, 48]}}  # fmt: skip
    run = make_config("liver", recipe, data="elsewhere", out=str(tmp_path / "models"),
                      device="cpu", epochs=3, lr=1e-3, max_minutes=0.5,
                      cache_dir=str(tmp_path / "fast cache"), num_workers=3)  # fmt: skip
    last = tmp_path / "models" / "liver" / "last"
    last.mkdir(parents=True)
    (last / "metadata.json").write_text(json.dumps({"training": {"config": run.to_dict()}}))
    widget.epochs.setValue(5)
    widget.lr.setValue(5e-4)
    resumed = widget._with_run_recipe(widget.build_config(), last.parent)
    assert (resumed.batch_size, resumed.focal_gamma, resumed.aug_rotate_deg) == (1, 3.0, 0.0)
    assert (resumed.warmup_steps, resumed.vae_weight) == (3, 0.0)
    assert resumed.roi_size == (16, 48, 48)
    # what the form sets for a run: its own
    assert resumed.data == str(toy_data) and resumed.epochs == 5 and resumed.lr == 5e-4
    assert resumed.resume and not resumed.overwrite
    # the run's time budget is its session's: carried over, a cap reached trained nothing
    assert resumed.max_minutes is None
    widget.time_budget.setValue(20)  # the form's, as `train --resume --max-minutes 20` takes it
    assert widget._with_run_recipe(widget.build_config(), last.parent).max_minutes == 20
    # its preprocessing cache and loader workers stay its own (not made again elsewhere)
    assert resumed.cache_dir == str(tmp_path / "fast cache") and resumed.num_workers == 3
    log = widget.log.toPlainText()
    assert "Resuming with the run's own recipe, not the fields: roi_size" in log
    assert "Learning rate: run 0.001, now 0.0005" in log


def test_a_resume_with_nothing_to_train_keeps_its_note_not_finished(
    train_widget, toy_data, tmp_path
):
    """A finished run resumed with the same Epochs said "Finished", its note (nothing to
    train; raise Epochs) only in the log."""
    _, widget = train_widget
    _small_run(widget, toy_data, tmp_path / "models")
    note = "the run already reached its 1 epochs (step 2): nothing to train; raise Epochs"
    widget.reports = [{"event": "note", "text": note}, {"event": "done", "step": 2}]
    widget._finished("done", widget.build_config())
    assert widget.status.text().endswith(note) and "Finished" not in widget.status.text()


def _train_in_this_process(monkeypatch) -> None:
    """The panel's run trains in the test's process, not in a training process of its own
    (which imports torch and MONAI: most of a test's time)."""
    from napari_livertumor._widgets import train as train_module
    from napari_livertumor.training import train

    monkeypatch.setattr(
        train_module, "train_in_subprocess", lambda config, stop: train(config, should_cancel=stop)
    )


def test_a_model_already_in_the_output_folder_is_resumed_or_kept_never_replaced_silently(
    train_widget, toy_data, qtbot, tmp_path, monkeypatch
):
    # the panel's two runs train in this process: what is checked here is the panel's (its
    # question, the run's recipe, the plot); a training process, started twice, took most of
    # the test's time (each imports torch and MONAI), and is the Stop's and the data loader
    # workers' tests' own
    _train_in_this_process(monkeypatch)
    _, widget = train_widget
    _small_run(widget, toy_data, tmp_path / "models")
    widget.epochs.setValue(1)
    widget.steps.setValue(2)
    widget.start_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=240_000)
    model = tmp_path / "models" / "liver" / "model.safetensors"
    made = model.stat().st_mtime_ns

    asked = []
    monkeypatch.setattr(
        widget, "ask_existing_run", lambda folder, can_resume: asked.append(can_resume) or "cancel"
    )
    widget.start_button.click()
    assert asked == [True] and not widget.busy
    assert "Nothing started" in widget.status.text()
    assert model.stat().st_mtime_ns == made

    monkeypatch.setattr(widget, "ask_existing_run", lambda folder, can_resume: "resume")
    widget.epochs.setValue(2)  # one more epoch: the run goes on from step 2
    # a new session's fields hold the stage's default patch: Resume takes the run's own
    widget.patch.setText("32, 96, 96")
    widget.start_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=240_000)
    # the plot goes on from the run so far: its epoch (steps 1-2) as its mean loss, then steps
    first = json.loads((tmp_path / "models" / "liver" / "metadata.json").read_text())
    epoch_1 = first["training"]["history"][0]
    assert widget.history["step"] == [2, 3, 4]
    assert widget.history["loss"][0] == pytest.approx(epoch_1["train_loss"])
    assert "resumed at step 2 of 4; the plot shows the steps before it" in widget.log.toPlainText()
    assert "Resuming with the run's own recipe" in widget.log.toPlainText()
    assert "roi_size: run [16.0, 32.0, 32.0], now [32.0, 96.0, 96.0]" in widget.log.toPlainText()
    assert widget.patch.text() == "16, 32, 32"  # the fields show the recipe it went on with

    # Replace, stopped before its first step: the folder's last/ is the earlier run's, and the
    # status said "the last weights are in last/" (resuming would go on with the run replaced)
    import dataclasses

    config = dataclasses.replace(widget.build_config(), overwrite=True)
    widget.reports = [{"event": "cancelled", "stage": "liver", "step": 0, "last": None}]
    widget._finished("cancelled", config)
    assert "no model or state was written" in widget.status.text()
    assert "as it was (not replaced)" in widget.status.text()
    assert "last weights" not in widget.status.text()
    # a resumed run stopped before its first new step: its last/ can still be resumed
    widget._finished("cancelled", dataclasses.replace(config, overwrite=False, resume=True))
    assert "can still be resumed" in widget.status.text()
    # Replace stopped after a few steps, before its first validation: the model there is
    # still the replaced run's, said, and not offered to Segment as this run's
    widget.model_folder = None
    widget.reports = [
        {"event": "step", "stage": "liver", "step": 1},
        {"event": "cancelled", "stage": "liver", "step": 1, "last": "x"},
    ]
    widget._finished("cancelled", config)
    assert "is an earlier run's, not this one's" in widget.status.text()
    assert widget.model_folder is None
    # ... and that Replace resumed, then stopped again before any validation: still not its own
    widget.reports = [
        {"event": "resumed", "stage": "liver", "step": 1, "has_best": False},
        {"event": "step", "stage": "liver", "step": 2},
        {"event": "cancelled", "stage": "liver", "step": 2, "last": "x"},
    ]
    widget._finished("cancelled", dataclasses.replace(config, overwrite=False, resume=True))
    assert "is an earlier run's, not this one's" in widget.status.text()
    assert widget.model_folder is None
    # a run without validation patients resumed (its final weights, saved with no score, are
    # its own: not said to be another run's)
    widget.reports[0]["has_best"] = None
    widget._finished("cancelled", dataclasses.replace(config, overwrite=False, resume=True))
    assert "earlier run's" not in widget.status.text() and widget.model_folder is not None

    # another run writing into the folder (a lock held by a live process): said at Start,
    # before the question about the run there (it started a process that failed 5 s later)
    from napari_livertumor.training.loop import RunLock

    lock = tmp_path / "models" / "liver" / RunLock.NAME
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    asked.clear()
    monkeypatch.setattr(
        widget, "ask_existing_run", lambda folder, can_resume: asked.append(can_resume) or "cancel"
    )
    widget.start_button.click()
    assert asked == [] and not widget.busy
    assert "another training run is writing here" in widget.status.text()
    lock.unlink()

    # a data folder that is not there is said before any question about the output folder
    asked.clear()
    monkeypatch.setattr(
        widget, "ask_existing_run", lambda folder, can_resume: asked.append(can_resume) or "cancel"
    )
    widget.data.setText(str(tmp_path / "nope"))
    widget.start_button.click()
    assert asked == [] and "training data folder not found" in widget.status.text()


def _questions_asked(monkeypatch) -> list[tuple]:
    """The text, informative text and buttons of each question box shown (none waits)."""
    from qtpy.QtWidgets import QMessageBox

    asked: list[tuple] = []
    monkeypatch.setattr(
        QMessageBox,
        "exec_",
        lambda box: asked.append((box.text(), box.informativeText(), box.buttons())) or 0,
    )
    return asked


def test_the_question_about_a_run_killed_in_its_first_save_says_resume_starts_again(
    train_widget, tmp_path, monkeypatch
):
    """A run killed while it wrote its first last/ (a .last-new/ in part, no state): the
    question said "Resume continues that run where it stopped", and Resume started it again
    from step 0."""
    _, widget = train_widget
    stage = tmp_path / "liver"
    (stage / ".last-new").mkdir(parents=True)
    (stage / "model.safetensors").write_bytes(b"")
    asked = _questions_asked(monkeypatch)
    assert widget.ask_existing_run(stage, True) == "cancel"
    text, info, buttons = asked[-1]
    assert "stopped while it saved its first checkpoint" in text
    assert "state of a stopped or finished run" not in text
    assert info.startswith("Resume starts that run again from step 0")
    assert "where it stopped" not in info
    assert "Resume" in [b.text().replace("&", "") for b in buttons]

    from napari_livertumor.training.loop import STATE_FILE

    (stage / "last").mkdir()  # a state to go on from: Resume continues it
    (stage / "last" / STATE_FILE).write_bytes(b"")
    widget.ask_existing_run(stage, True)
    assert asked[-1][1].startswith("Resume continues that run where it stopped")
    assert "the state of a stopped or finished run" in asked[-1][0]


def test_the_question_about_a_run_says_what_it_has_trained_and_the_budget_leaves(
    train_widget, tmp_path, monkeypatch
):
    """After a run ended at its 1-min budget (1.7 min trained: its final validation ran past
    it), Start with the same folder offered Resume with no word of the budget; Resume then
    prepared the data for 28 s and said "nothing to train". The question says the minutes the
    run has trained (``training.minutes`` of last/metadata.json) and what the Time budget set
    leaves."""
    from napari_livertumor.training.loop import STATE_FILE

    _, widget = train_widget
    stage = tmp_path / "liver"
    (stage / "last").mkdir(parents=True)
    (stage / "last" / STATE_FILE).write_bytes(b"")
    (stage / "last" / "metadata.json").write_text(json.dumps({"training": {"minutes": 1.7}}))
    (stage / "model.safetensors").write_bytes(b"")
    asked = _questions_asked(monkeypatch)
    widget.time_budget.setValue(1)
    widget.ask_existing_run(stage, True)
    assert asked[-1][1] == (
        "Resume continues that run where it stopped (same recipe, up to the epochs set here); "
        "Replace trains a new model over it. It has trained 1.7 min; the Time budget set here "
        "(1 min, the whole run's) leaves nothing: raise it to train on."
    )
    widget.time_budget.setValue(3)
    widget.ask_existing_run(stage, True)
    assert asked[-1][1].endswith(
        "It has trained 1.7 min; the Time budget set here (3 min, the whole run's) leaves "
        "1.3 min of training."
    )
    widget.time_budget.setValue(0)  # no limit
    widget.ask_existing_run(stage, True)
    assert asked[-1][1].endswith("Replace trains a new model over it. It has trained 1.7 min.")
    (stage / "last" / "metadata.json").write_text("{}")  # (none recorded: nothing said)
    widget.ask_existing_run(stage, True)
    assert asked[-1][1].endswith("Replace trains a new model over it.")


def test_a_replace_killed_in_its_first_save_beside_a_state_alone_is_asked_about(
    train_widget, toy_data, tmp_path, monkeypatch
):
    """A Replace killed while it wrote its first last/, beside the replaced run's state and no
    model: Start asked nothing and went on to a refusal that said to Replace, never offered;
    the question offers Replace (no Resume: nothing of that run can be resumed)."""
    from napari_livertumor.training.loop import REPLACING_MARK, STATE_FILE

    _, widget = train_widget
    _small_run(widget, toy_data, tmp_path / "models")
    stage = Path(widget.build_config().stage_dir)
    (stage / "last").mkdir(parents=True)
    (stage / "last" / STATE_FILE).write_bytes(b"")  # the replaced run's state
    (stage / ".last-new").mkdir()
    (stage / ".last-new" / REPLACING_MARK).write_text("")
    asked = []
    monkeypatch.setattr(
        widget, "ask_existing_run", lambda folder, can_resume: asked.append(can_resume) or "cancel"
    )
    widget.start_button.click()
    assert asked == [False] and not widget.busy
    assert "Nothing started" in widget.status.text()
    monkeypatch.undo()
    said = _questions_asked(monkeypatch)
    assert widget.ask_existing_run(stage, False) == "cancel"
    text, info, buttons = said[-1]
    assert "a Replace stopped while it saved its first checkpoint" in text
    assert info == "Replace trains a new model over it."
    assert "Resume" not in [b.text().replace("&", "") for b in buttons]


def test_stop_ends_training_and_keeps_the_last_weights(train_widget, toy_data, qtbot, tmp_path):
    _, widget = train_widget
    _small_run(widget, toy_data, tmp_path / "models")
    widget.epochs.setValue(50)
    widget.steps.setValue(10)
    widget.start_button.click()
    qtbot.waitUntil(lambda: len(widget.history["step"]) >= 2, timeout=240_000)
    widget.start_button.click()  # Stop
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert len(widget.history["step"]) < 500
    assert widget.reports[-1]["event"] == "cancelled"
    assert "Stopped" in widget.status.text()
    assert widget.start_button.text() == "Start"


def test_a_stop_after_a_best_model_was_saved_says_where_it_is(train_widget, tmp_path):
    """Segment already listed the best model the stopped run had saved; the status spoke only
    of last/."""
    _, widget = train_widget
    _small_run(widget, tmp_path / "data", tmp_path / "out")
    config = widget.build_config()
    stage = Path(config.stage_dir)
    stage.mkdir(parents=True)
    (stage / "metadata.json").write_text("{}")
    widget.model_folder = None
    widget.reports = [
        {"event": "step", "stage": "liver", "step": 1},
        {"event": "epoch", "stage": "liver", "epoch": 0, "step": 2, "saved_best": True},
        {"event": "cancelled", "stage": "liver", "step": 3, "last": str(stage / "last")},
    ]
    widget._finished("cancelled", config)
    assert f"Its best model so far is in {stage}, which Segment lists." in widget.status.text()
    widget.reports = [widget.reports[0], widget.reports[2]]  # none saved: not said
    widget._finished("cancelled", config)
    assert "best model so far" not in widget.status.text()


def test_a_patch_the_network_cannot_take_is_named_as_the_form_names_it(
    train_widget, toy_data, tmp_path
):
    _, widget = train_widget
    _small_run(widget, toy_data, tmp_path / "models")
    widget.patch.setText("16, 60, 64")
    with pytest.raises(ValueError, match=r"Patch \(z, y, x\) \(16, 60, 64\) must be divisible"):
        widget.build_config()
    widget.patch.setText("16, 64, 64")
    widget.hu_low.setValue(300)
    widget.hu_high.setValue(100)
    with pytest.raises(ValueError, match=r"^HU window \(300.0, 100.0\) must be") as info:
        widget.build_config()
    assert "hu_window" not in str(info.value)


def test_the_log_keeps_its_last_line_in_view_unless_scrolled_up(train_widget, qtbot, tmp_path):
    """The log stayed on old lines (a resize grew its scroll range under it) while training
    ran: the live lines were hidden. A failed Check data left the last folder's summary up."""
    _, widget = train_widget
    bar = widget.log.verticalScrollBar()
    for i in range(200):
        widget._log(f"line {i}")
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    widget.log.setFixedHeight(widget.log.height() - 20)  # the range grows under it
    qtbot.wait(20)
    widget._log("line 200")
    assert bar.value() == bar.maximum()
    bar.triggerAction(bar.SliderPageStepSub)  # the user scrolls up to read: left there
    qtbot.wait(20)
    where = bar.value()
    widget._log("line 201")
    assert bar.value() == where < bar.maximum()
    bar.triggerAction(bar.SliderToMaximum)  # back at the end: followed again
    qtbot.wait(20)
    widget._log("line 202")
    assert bar.value() == bar.maximum()

    widget.summary.setText("4 patient(s) with ground-truth labels (nifti layout)")
    widget.summary_box.setVisible(True)
    widget.data.setText(str(tmp_path / "nope"))
    widget.check_data()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    # the last folder's summary is gone: the box says this check failed
    assert widget.summary.text().startswith("Check data failed: ")
    assert "4 patient(s)" not in widget.summary.text()


def test_the_log_says_a_stop_before_the_first_step_saved_nothing(train_widget):
    _, widget = train_widget
    widget._on_report({"event": "cancelled", "stage": "liver", "step": 0, "last": None})
    assert widget.log.toPlainText().endswith("cancelled before the first step; nothing saved")


def test_a_panel_closed_while_preparing_promises_no_last_state(train_widget, tmp_path):
    """Closed while the data were prepared, the panel said "its latest state is in the output
    folder's last/ (… Resume …)": there was none, and Start offered no Resume."""
    import time

    _, widget = train_widget
    _small_run(widget, tmp_path / "data", tmp_path / "out")
    widget._running_config = widget.build_config()
    widget._started_wall = time.time()
    widget.reports = [{"event": "prepare", "phase": "prepare", "done": 1, "total": 4}]
    text = widget.closed_text()
    assert "closed before training began" in text and "nothing was trained" in text
    assert "last/" not in text and str(tmp_path / "out" / ".cache") in text
    # a first step ran (the stop comes after the current step): its state is there
    widget.reports.append({"event": "step", "step": 1})
    assert widget.closed_text() == widget.CLOSED_TEXT
    # or no step heard, but the run saved its state after the close
    widget.reports.pop()
    last = tmp_path / "out" / "liver" / "last"
    last.mkdir(parents=True)
    (last / "train_state.pt").write_bytes(b"x")
    assert widget.closed_text() == widget.CLOSED_TEXT


def test_a_folder_with_nothing_usable_gives_a_clear_message(train_widget, qtbot, tmp_path):
    _, widget = train_widget
    (tmp_path / "empty").mkdir()
    _small_run(widget, tmp_path / "empty", tmp_path / "models")
    widget.start_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    assert "no labelled cases" in widget.status.text()
    assert "[failed]" in widget.log.toPlainText()
    assert "no labelled cases" in widget.log.toPlainText()  # the whole message, kept
    assert not (tmp_path / "models" / "liver" / "metadata.json").exists()


def test_a_training_process_that_dies_says_why_with_its_last_output(tmp_path):
    from napari_livertumor._widgets._training_jobs import _death_message

    log = tmp_path / "child.log"
    log.write_text("Fatal Python error: Segmentation fault\n  File train.py, line 3")
    msg = _death_message(-11, str(log))
    assert "exit code -11" in msg and "Segmentation fault" in msg
    assert "lack of memory" in _death_message(-9, str(tmp_path / "none.log"))
    # napari opened by a script with no __main__ guard: the child imports it and dies so
    log.write_text(
        "RuntimeError: \n        An attempt has been made to start a new process before the\n"
        "        current process has finished its bootstrapping phase.\n"
    )
    msg = _death_message(1, str(log))
    assert "if __name__" in msg and "RuntimeError" not in msg


def test_closing_the_viewer_while_training_stops_the_worker(
    make_napari_viewer, toy_data, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    _small_run(widget, toy_data, tmp_path / "models")
    widget.epochs.setValue(50)
    widget.start_button.click()
    job = widget.jobs[widget.start_button]
    qtbot.waitUntil(lambda: len(widget.history["step"]) >= 1, timeout=240_000)
    viewer.close()
    qtbot.waitUntil(lambda: not job.worker.is_running, timeout=60_000)
    assert job.cancel_requested
    assert (tmp_path / "models" / "liver" / "last").is_dir()  # the core saved what it had


_EXIT_SCRIPT = """
import os, sys
from napari_livertumor._widgets._training_jobs import train_in_subprocess
from napari_livertumor.training import make_config

data, out, how, workers = sys.argv[1:5]
config = make_config("liver", None, data=data, out=out, device="cpu", epochs=5000,
                     steps_per_epoch=20, roi_size=(16, 32, 32), num_workers=int(workers))
job = train_in_subprocess(config, lambda: False)
for report in job:
    if report.get("event") == "step":
        break  # the generator left suspended at exit, or closed at its yield as napari's quit
import multiprocessing
kids = [c.pid for c in multiprocessing.active_children()]
# and the training process's own: its data loader's workers
import glob
kids += [int(p) for k in kids for t in glob.glob(f"/proc/{k}/task/*/children")
         for p in open(t).read().split()]
print("child", *kids, flush=True)
if how == "close":
    job.close()
if how == "kill":
    os._exit(0)  # no clean-up at all: as napari killed or crashed
sys.exit(0)
"""


@pytest.mark.parametrize(
    "how, workers", [("close", 0), ("kill", 0), ("exit", 1), ("close", 1), ("kill", 1)]
)
def test_the_training_process_saves_its_state_when_napari_exits_or_dies(
    toy_data, tmp_path, how, workers, request
):
    """Closing napari mid-run kept nothing (Python's exit terminated the daemonic training
    process before it saved, though the notice said its state was in last/); napari killed
    left the process training to the end of its budget unseen. The same with a recipe's data
    loader workers (the training process, no longer daemonic, may start them), and they go
    too, leaving no crash log in the temporary folder."""
    import subprocess
    import sys
    import tempfile
    import time

    script = tmp_path / "run.py"
    script.write_text(_EXIT_SCRIPT)
    out = tmp_path / "models"
    # where the job's crash log goes: a short path (a data loader worker hands its batches
    # over a Unix socket made there, whose path may not pass 107 characters: under pytest's
    # own temporary folder no batch came, and the training waited on it for ever)
    held = tempfile.TemporaryDirectory(prefix="lt-")
    request.addfinalizer(held.cleanup)
    temp = Path(held.name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(temp)}
    done = subprocess.run(
        [sys.executable, str(script), str(toy_data), str(out), how, str(workers)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0 and "child" in done.stdout, done.stderr[-2000:]
    last = out / "liver" / "last" / "train_state.pt"
    deadline = time.monotonic() + 120  # killed: the orphan sees it and saves on its own
    while how == "kill" and not last.is_file() and time.monotonic() < deadline:
        time.sleep(1)
    assert last.is_file()
    # and the process is gone (killed: it stopped on its own instead of training on)
    pids = [int(p) for p in done.stdout.split("child", 1)[1].split()]
    assert len(pids) == 1 + workers

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        status = Path(f"/proc/{pid}/stat")  # (a zombie awaiting its reaper is gone too)
        return not (status.is_file() and status.read_text().split()[2] == "Z")

    deadline = time.monotonic() + 120
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(1)
    assert not any(alive(p) for p in pids)
    # nor its crash log (napari killed, the orphan removes it: one a run had piled up)
    assert not list(temp.glob("livertumor-train-*.log"))


_LINGERING_CHILD = """
import time


def lingering_child(config_dict, reports, cancel, crash_log=None, phase=None):
    # a training process that saves and says its last word when stopped, then lingers on
    # (its data loader's workers shutting down slowly, a hung CUDA context)
    with phase.get_lock():
        phase.value = 1
    reports.put(("report", {"event": "step", "step": 1}))
    cancel.wait(60)
    reports.put(("end", None))
    time.sleep(120)
"""

_LINGER_SCRIPT = """
import sys
import types

sys.path.insert(0, sys.argv[1])
from lingering import lingering_child

from napari_livertumor._widgets import _training_jobs

_training_jobs._train_child = lingering_child
config = types.SimpleNamespace(to_dict=dict, stage="liver")
job = _training_jobs.train_in_subprocess(config, lambda: False)
for report in job:
    break  # the generator left suspended at exit
import multiprocessing
print("child", *[c.pid for c in multiprocessing.active_children()], flush=True)
sys.exit(0)
"""


def test_napari_exits_though_its_training_process_lingers_after_saving(tmp_path):
    """Python's exit joins a (non-daemonic) training process without limit: one that saved
    its state when stopped but then lingered (its loader's workers slow to shut down) kept
    napari from quitting. The exit hook ends it once its state is saved."""
    import contextlib
    import signal
    import subprocess
    import sys

    (tmp_path / "lingering.py").write_text(_LINGERING_CHILD)
    script = tmp_path / "run.py"
    script.write_text(_LINGER_SCRIPT)
    # (to files, not pipes: the lingering child holds them open)
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)], stdout=out, stderr=err
        )
        try:
            proc.wait(timeout=60)  # (the child lingers 120 s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out, err = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    pids = [int(p) for p in out.split("child", 1)[1].split()] if "child" in out else []
    for pid in pids if proc.returncode else []:  # (a hung exit leaves the child behind)
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, f"napari's process did not exit: {err[-2000:]}"
    assert len(pids) == 1


def test_fine_tuning_the_shipped_model_keeps_its_geometry(train_widget, qtbot, tmp_path):
    """'Start from: the shipped model' shows that model's HU window and patch (read-only) and
    starts from its weights; a liver model offered for the tumor stage is refused clearly."""
    from napari_livertumor._widgets.train import START_FOLDER, START_SCRATCH, START_SHIPPED
    from napari_livertumor.models import default_model_dir, read_metadata

    _, widget = train_widget
    widget.data.setText(str(tmp_path))
    widget.out.setText(str(tmp_path / "out"))
    widget.stage.setCurrentText("tumor")
    assert not widget.init_folder.isVisibleTo(widget)
    widget.start_from.setCurrentText(START_SHIPPED)
    meta = read_metadata(default_model_dir("tumor"))
    assert not widget.patch.isEnabled()
    assert widget.patch.text() == ", ".join(str(v) for v in meta.roi_size)
    assert (widget.hu_low.value(), widget.hu_high.value()) == tuple(int(v) for v in meta.hu_window)
    cfg = widget.build_config()
    assert cfg.init_from == str(default_model_dir("tumor"))
    assert cfg.network.to_dict() == meta.network.to_dict()
    assert cfg.target_spacing == meta.target_spacing

    widget.start_from.setCurrentText(START_FOLDER)
    assert widget.init_folder.isVisibleTo(widget)
    widget.init_folder.setText(str(default_model_dir("liver")))
    widget.start()
    assert "not a tumor model" in widget.status.text()
    assert widget.start_button.text() == "Start"  # nothing started
    # a run's folder holding the other stage's model only: said (was "no metadata.json here")
    make_untrained_model(tmp_path / "run" / "liver", "liver")
    widget.init_folder.setText(str(tmp_path / "run"))
    widget.start()
    assert "holds a liver model (liver/) but no tumor/ model" in widget.status.text()
    # the way out in this panel's words, not only the command line's --init default
    assert "Start from: the shipped model (fine-tune)" in widget.status.text()

    widget.start_from.setCurrentText(START_SCRATCH)
    assert widget.status.text() == ""  # the error was about the previous choice
    assert widget.patch.isEnabled()
    assert widget.build_config().init_from is None


def test_an_output_folder_of_the_shipped_models_names_segments_controls(train_widget, tmp_path):
    """The refusal named Segment's --models only: a panel user has the models list and its
    Folder… button."""
    from napari_livertumor.models import default_model_dir

    _, widget = train_widget
    (tmp_path / "data").mkdir()
    widget.data.setText(str(tmp_path / "data"))
    widget.out.setText(str(default_model_dir("liver").parent))
    widget.stage.setCurrentText("liver")
    widget.start()
    text = widget.status.text()
    assert "holds the shipped default models" in text
    assert "Folder…" in text and "--models" in text  # the panel's control and the flag
    assert widget.start_button.text() == "Start"  # nothing started


def test_an_output_folder_too_long_for_windows_is_refused_at_start(
    train_widget, monkeypatch, tmp_path
):
    """On Windows (without long paths) a run into an output folder of 232 characters started,
    read its data, and failed at its first checkpoint or cache file, whose path passed the
    260-character limit. Said at Start, in the panel's words, before any process starts."""
    from napari_livertumor import fileio

    _, widget = train_widget
    monkeypatch.setattr(fileio, "on_windows", lambda: True)
    (tmp_path / "data").mkdir()
    widget.data.setText(str(tmp_path / "data"))
    out = tmp_path / ("o" * (232 - len(str(tmp_path)) - 1))
    widget.out.setText(str(out))
    widget.start()
    text = widget.status.text()
    assert f"{out}: paths too long for Windows" in text
    assert "the Train panel's Output) shorter by" in text
    assert widget.start_button.text() == "Start" and not out.exists()  # nothing started


def test_a_refusal_of_a_folder_holding_a_run_names_the_panels_resume_and_replace(
    toy_data, tmp_path
):
    """The panel shows the training's refusals as they are: a folder holding a model and a
    run's state names Resume and Replace beside --resume and --force."""
    from napari_livertumor.errors import InputError
    from napari_livertumor.training import make_config
    from napari_livertumor.training.loop import check_before_writing

    stage = tmp_path / "liver"
    (stage / "last").mkdir(parents=True)
    (stage / "model.safetensors").write_bytes(b"")
    (stage / "last" / "train_state.pt").write_bytes(b"")
    cfg = make_config("liver", None, data=str(toy_data), out=str(tmp_path))
    with pytest.raises(InputError) as refused:
        check_before_writing(cfg, check_lock=False)
    text = str(refused.value)
    assert "--resume (resume=True; Resume in the Train panel)" in text
    assert "--force (overwrite=True; Replace in the Train panel)" in text


def test_the_panel_fits_a_laptop_screen(train_widget):
    """It asked for 770 px of height: docked, napari could not be shorter than 865 px, and at
    that size the log and status were cut off; with only its form scrolling it still needed
    347 px. The whole panel scrolls now, as the others do."""
    from napari_livertumor._widgets._common import PanelScroll

    _, widget = train_widget
    assert widget.minimumSizeHint().height() <= 80
    scroll = widget.findChild(PanelScroll)  # (sideways only on a screen too small for it:
    # test_widget_workflow's test_a_panel_on_a_screen_too_small_for_it_scrolls_sideways)
    assert scroll.isAncestorOf(widget.start_button) and scroll.isAncestorOf(widget.canvas)


def test_the_training_child_never_runs_the_script_napari_was_started_from(tmp_path):
    """A script without a main guard (as napari's examples are) was imported again by the
    spawned training process: a second napari window, and training waited for it."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    marker = tmp_path / "ran"
    script.write_text(
        "import os\n"
        f"open({str(marker)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        "from napari_livertumor._widgets._training_jobs import _main_script_hidden\n"
        "import multiprocessing as mp, sys\n"
        "ctx = mp.get_context('spawn')\n"
        "child = ctx.Process(target=print, args=('child ran',))\n"
        "with _main_script_hidden():\n"
        "    child.start()\n"
        "child.join(60)\n"
        "main = sys.modules['__main__']\n"
        "print('exit', child.exitcode, main.__file__ == __file__, main.__spec__ is None)\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert "child ran" in out.stdout and "exit 0 True True" in out.stdout, out.stderr
    assert len(marker.read_text().split()) == 1  # the script's body ran once, in the parent


def test_the_log_names_who_was_left_out_and_what_the_clinical_table_gave(train_widget):
    """The panel's log said only '(1 skipped) … weak supervision on': the patient's name and
    reason, and the table's notes, went to a log file the run deleted."""
    _, widget = train_widget
    widget._on_report(
        {
            "event": "info",
            "n_train": 4,
            "n_val": 1,
            "n_skipped": 1,
            "skipped": [["HCC_103", "no DICOM SEG"]],
            "device": "cpu",
            "weak": {
                "enabled": True,
                "clinical": "/data/HCC-TACE-Seg_clinical_data-V2.xlsx",
                "n_weak_labels": 3,
                "n_without_clinical": 1,
                "report": ["column 'AFP' has fewer than 2 numeric values: not used"],
            },
        }
    )
    log = widget.log.toPlainText()
    assert "left out: HCC_103: no DICOM SEG" in log
    assert "weak supervision on (HCC-TACE-Seg_clinical_data-V2.xlsx)" in log  # which table
    assert "weak labels for 3 training patients; 1 without a usable clinical row" in log
    assert "clinical: column 'AFP' has fewer than 2 numeric values" in log
    widget._on_report({"event": "note", "text": "the run already reached its 2 epochs"})
    assert "already reached" in widget.status.text()


def test_an_unmeasured_validation_is_not_logged_as_a_dice_of_zero(train_widget):
    _, widget = train_widget
    widget._on_report(
        {"event": "epoch", "epoch": 0, "step": 3, "train_loss": 0.5, "val_dice": None,
         "val": {"score": 0.0, "n_val_with_class": 0}, "saved_best": True}
    )  # fmt: skip
    log = widget.log.toPlainText()
    assert "epoch 1: loss 0.5000 (not measured: saved as the latest weights)" in log
    assert "Dice" not in log and widget.history["val_dice"] == []


def test_the_progress_bar_follows_the_data_preparation(train_widget):
    """Reading and resampling 100 patients takes many minutes before the first step; the
    bar said "Training the tumor model…" at 0 all that time."""
    _, widget = train_widget
    report = {"event": "prepare", "stage": "tumor", "phase": "index", "case": None}
    widget._on_report({**report, "done": 0, "total": 105})
    assert "reading 105 patient folders" in widget.log.toPlainText()
    widget._on_report({**report, "phase": "prepare", "done": 0, "total": 98, "case": "HCC_001"})
    widget._on_report({**report, "phase": "prepare", "done": 41, "total": 98, "case": "HCC_042"})
    bar = widget.progress_bar
    assert (bar.value(), bar.maximum()) == (41, 98)
    # the 42nd is being prepared (41 done), as the command line counts it
    assert bar.format() == "preparing patient 42 / 98 (HCC_042)"
    assert "preparing 98 training/validation patients" in widget.log.toPlainText()


def test_the_training_processs_warnings_reach_the_panels_log(train_widget, toy_data, tmp_path):
    """A warning the training logged in its own process (here: a label file without its
    image, left out) went to that process's stderr, which nobody read; the CLI prints it."""
    import shutil

    from napari_livertumor._widgets._training_jobs import train_in_subprocess
    from napari_livertumor.training import make_config

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    first = sorted((data / "labelsTr").iterdir())[0]
    shutil.copy(first, data / "labelsTr" / "ORPHAN.nii.gz")
    config = make_config(
        "liver", None, data=str(data), out=str(tmp_path / "models"), device="cpu", epochs=1,
        steps_per_epoch=1, roi_size=(16, 32, 32), num_workers=0,
    )  # fmt: skip
    reports = list(train_in_subprocess(config, lambda: False))
    logged = [r["text"] for r in reports if r.get("event") == "log"]
    assert any("no image in imagesTr" in t and "ORPHAN.nii.gz" in t for t in logged), logged
    assert reports[-1]["event"] == "done"
    # the panel shows each as a warning line
    _, widget = train_widget
    for report in reports:
        widget._on_report(report)
    assert "warning: " in widget.log.toPlainText()
    assert "ORPHAN.nii.gz" in widget.log.toPlainText()


def test_a_run_with_data_loader_workers_trains_and_resumes_in_the_panel(
    toy_data, qtbot, tmp_path, monkeypatch, request
):
    """A run whose recipe asks for data loader workers (num_workers; 6 in the shipped GPU
    recipe) failed in the panel after its data were prepared: "AssertionError: daemonic
    processes are not allowed to have children". A Resume keeps the run's workers, so a run
    started from the command line with such a recipe could never be resumed in the panel."""
    from napari_livertumor.training import make_config, train

    out = tmp_path / "models"
    config = make_config(
        "liver", {"common": {"num_workers": 1, "batch_size": 1}}, data=str(toy_data),
        out=str(out), device="cpu", epochs=1, steps_per_epoch=1, roi_size=(16, 32, 32),
    )  # fmt: skip
    # the run started as the command line starts it (in this process: a training process of
    # the panel's own costs its imports of torch and MONAI again), before the viewer is made
    reports = list(train(config))
    assert reports[-1]["event"] == "done", reports[-3:]
    # resumed in the panel, in its training process: the run's own workers again
    _, widget = request.getfixturevalue("train_widget")
    _small_run(widget, toy_data, out)
    widget.epochs.setValue(2)
    widget.steps.setValue(1)
    monkeypatch.setattr(widget, "ask_existing_run", lambda folder, can_resume: "resume")
    widget.start_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=240_000)
    assert widget.reports[-1]["event"] == "done", widget.log.toPlainText()[-2000:]
    assert widget.history["step"][-1] == 2
    assert "daemonic" not in widget.log.toPlainText()


def test_a_stop_while_the_training_process_starts_ends_it_without_waiting(
    toy_data, tmp_path, monkeypatch
):
    """The process imports torch and MONAI (seconds) before it can read a Stop: a Stop then
    waited for it. Before the run begins nothing is made, so the process is ended at once."""
    import multiprocessing as mp
    import queue
    import threading

    from napari_livertumor._widgets._training_jobs import _train_child, train_in_subprocess
    from napari_livertumor.training import make_config

    config = make_config(
        "liver", None, data=str(toy_data), out=str(tmp_path / "models"), device="cpu", epochs=1,
        steps_per_epoch=1, roi_size=(16, 32, 32), num_workers=0,
    )  # fmt: skip
    reports = list(train_in_subprocess(config, lambda: True))
    assert reports == [{"event": "cancelled", "stage": "liver", "step": 0, "last": None}]
    assert not (tmp_path / "models").exists()
    # the process that finished starting after the parent's claim touches nothing either
    monkeypatch.setattr("os.nice", lambda n: 0)  # the child lowers its own priority
    phase, said = mp.get_context("spawn").Value("i", -1), queue.Queue()
    _train_child(config.to_dict(), said, threading.Event(), None, phase)
    assert said.empty() and not (tmp_path / "models").exists()


def test_the_loss_plot_shows_a_loss_above_one(train_widget):
    """The reset's fixed 0-1 axis turned autoscaling off: the loss of Dice + focal + VAE, about
    1.6 at the start, was drawn off the chart."""
    _, widget = train_widget
    widget._reset_plot()
    for step, loss in ((1, 1.7), (2, 1.6), (3, 1.55)):
        widget._on_report(
            {"event": "step", "step": step, "total_steps": 10, "losses": {"total": loss}}
        )
    widget._redraw(force=True)
    low, high = widget.loss_ax.get_ylim()
    assert low <= 1.55 and high >= 1.7, (low, high)


def test_a_run_recorded_before_the_weak_anchor_resumes_with_the_form_it_trained_with(tmp_path):
    """Runs before 4 Dec 2026 held every patch to its patient's weak label; their metadata has
    no ``weak_anchor``, and Resume must not switch them to the new default midway."""
    from napari_livertumor._widgets.train import _saved_config

    last = tmp_path / "tumor" / "last"
    last.mkdir(parents=True)
    config = {"stage": "tumor", "weak_lambda": 0.5, "weak_form": "interval"}
    (last / "metadata.json").write_text(json.dumps({"training": {"config": config}}))
    assert _saved_config(tmp_path / "tumor")["weak_anchor"] == "patient"
    config["weak_anchor"] = "patch"
    (last / "metadata.json").write_text(json.dumps({"training": {"config": config}}))
    assert _saved_config(tmp_path / "tumor")["weak_anchor"] == "patch"


def test_a_check_that_fails_is_logged_and_problems_lead_the_summary(
    train_widget, toy_data, qtbot, tmp_path
):
    """A failed check left the previous folder's summary as the log's last word; the summary
    box opened on the table's notes ("Table: ⚠ two rows…") before the counts."""
    _, widget = train_widget
    widget.data.setText(str(toy_data))
    widget.check_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    (tmp_path / "empty").mkdir()
    widget.data.setText(str(tmp_path / "empty"))
    widget.check_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    last = widget.log.toPlainText().strip().splitlines()[-1]
    assert last.startswith(f"Check data of {tmp_path / 'empty'}: failed: "), last
    # and under the button, where a check's result shows (the panel scrolled to its bottom)
    assert widget.summary.text().startswith("Check data failed: ")
    assert widget.summary._kind == "error" and widget.summary_box.isVisibleTo(widget)
    widget._show_summary(
        ["3 patient(s) with ground-truth labels", "Table: ⚠ HCC_001 has 2 rows",
         "⚠ No patient here has a row in clinical.csv"]
    )  # fmt: skip
    shown = widget.summary.text().splitlines()
    assert shown[0].startswith("⚠ No patient") and shown[1].startswith("3 patient(s)")
    assert shown[2].startswith("Table: ⚠")
    assert widget.summary._kind == ""  # (not left red)


def test_the_check_summary_shows_the_tables_problems_before_the_series_each_patient_reads(
    train_widget,
):
    """With the download's other series beside each SEG, the box showed "HCC_00x: reads #104
    …" eight times and cut off at "… 17 more line(s)": a patient's two rows that disagree, the
    patient without a row and the cells read as missing were only in the log below."""
    _, widget = train_widget
    lines = [
        "8 patient(s) with ground-truth labels (tcia layout)",
        "8 patient(s) with other CT series beside the one their SEG was drawn on:",
        *[f"  HCC_00{i}: reads #104 'LIVER 3 PHASE CAP'; not #2 'PRE LIVER'" for i in range(1, 9)],
        "Default split: 5 training / 1 validation / 2 test patient(s)",
        "Clinical table messy.xlsx: 7/8 patients matched, 15/15 weak-supervision columns found",
        "Without a clinical row (no weak term for them): HCC_008",
        "Rows of the table with no patient here: HCC_009",
        "Table: column(s) read under their usual names: 'clip score' as 'CLIP_Score'",
        "Table: ⚠ HCC_003 has 2 rows that differ in AFP: kept the first row",
        "Table: AFP: unknown value(s) HCC_006 'abc' treated as missing",
        "Missing columns: CLIP_Score",
    ]
    widget._show_summary(lines)
    shown = widget.summary.text().splitlines()
    assert shown[0].startswith("8 patient(s) with ground-truth labels")
    assert shown[1].startswith("Clinical table messy.xlsx: 7/8 patients matched")
    assert [s.split(":")[0] for s in shown[2:6]] == [
        "Without a clinical row (no weak term for them)",
        "Rows of the table with no patient here",
        "Table",
        "Table",
    ]
    assert "⚠ HCC_003" in shown[4] and "'abc'" in shown[5]
    assert shown[6] == "Missing columns: CLIP_Score"  # (a column the weak term lacks)
    assert not any("reads #104" in s for s in shown)  # (below, in the log)


def test_the_liver_stage_greys_out_the_weak_term_and_trains_without_it(train_widget, tmp_path):
    """The weak term is the tumor stage's: with the liver chosen its λ is greyed out and the
    run's settings carry 0, whatever the tumor stage had it set to."""
    _, widget = train_widget
    widget.data.setText(str(tmp_path / "data"))
    widget.out.setText(str(tmp_path / "models"))
    widget.stage.setCurrentText("tumor")
    widget.weak_lambda.setValue(0.7)
    assert widget.weak_lambda.isEnabled()
    widget.stage.setCurrentText("liver")
    widget.weak_lambda.setValue(0.7)  # (a value typed in before it was greyed)
    assert not widget.weak_lambda.isEnabled()
    assert widget.build_config().weak_lambda == 0.0


def test_enter_on_the_question_about_an_existing_run_never_replaces_it(
    train_widget, tmp_path, monkeypatch
):
    """The question's default button (what Enter presses) is Resume where a run can be
    resumed, else Cancel: never Replace, which trains a new model over the one there."""
    from qtpy.QtWidgets import QMessageBox

    _, widget = train_widget
    monkeypatch.setattr(QMessageBox, "exec_", lambda box: box.defaultButton().click() or 0)
    stage = tmp_path / "liver"
    stage.mkdir()
    (stage / "model.safetensors").write_bytes(b"")
    assert widget.ask_existing_run(stage, False) == "cancel"
    assert widget.ask_existing_run(stage, True) == "resume"


def _training_that_stops_slowly(make_napari_viewer, qtbot, tmp_path, monkeypatch, **form):
    """A Train panel docked as the Plugins menu docks it, running a stand-in training run that
    takes its time to save and end once stopped (until ``release`` is set), past its first
    step: ``(viewer, dock, panel, release, calls)``; ``form``: the epochs and steps set."""
    import threading
    import time

    import napari_livertumor._widgets.train as train_mod

    release, calls = threading.Event(), []

    def stopping_slowly(config, should_cancel):
        calls.append(config)
        yield {"event": "step", "step": 1, "losses": {"total": 0.9}, "total_steps": 21}
        while not should_cancel():
            time.sleep(0.01)
        assert release.wait(30)
        yield {"event": "cancelled", "stage": config.stage, "step": 0, "last": None}

    monkeypatch.setattr(train_mod, "train_in_subprocess", stopping_slowly)
    viewer = make_napari_viewer(show=True)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-livertumor", "Train models")
    (tmp_path / "data").mkdir()
    _small_run(panel, tmp_path / "data", tmp_path / "models")
    for name, value in form.items():
        getattr(panel, name).setValue(value)
    panel.start_button.click()
    qtbot.waitUntil(lambda: panel.history["step"] == [1], timeout=20_000)
    return viewer, dock, panel, release, calls


def test_a_train_panel_closed_mid_run_and_reopened_keeps_its_set_up_and_waits_for_the_run(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """Closed with its dock's ✕ while training, the panel reopened from the Plugins menu came
    back blank (data, output, epochs, patch to type again) and said nothing of the run still
    stopping: its Start began a second run into the same output folder at once."""
    viewer, dock, first, release, calls = _training_that_stops_slowly(
        make_napari_viewer, qtbot, tmp_path, monkeypatch, epochs=7, steps=3, time_budget=45
    )
    try:
        dock.title.close_button.click()  # the dock's ✕ mid-run
        qtbot.wait(50)
        assert first.busy  # (stopping)
        _, again = viewer.window.add_plugin_dock_widget("napari-livertumor", "Train models")
        assert again is not first  # (napari makes a new panel)
        assert again.data.text() == str(tmp_path / "data")
        assert again.out.text() == str(tmp_path / "models")
        assert (again.stage.currentText(), again.device.currentText()) == ("liver", "cpu")
        assert (again.epochs.value(), again.steps.value()) == (7, 3)
        assert again.time_budget.value() == 45
        assert again.patch.text() == "16, 32, 32"
        text = again.status.text()
        assert text.startswith("Still stopping: the panel was closed, so training was stopped")
        assert "'Start' can be used again once it has stopped" in text
        assert again.start_button.text() == "Stopping…" and not again.start_button.isEnabled()
        again._start_clicked()  # (a click from code on the disabled button)
        qtbot.wait(100)
        assert len(calls) == 1 and "still ending" in again.status.text()
    finally:
        release.set()
    qtbot.waitUntil(again.start_button.isEnabled, timeout=20_000)
    assert again.start_button.text() == "Start" and not again.busy
    assert again.status.text().startswith("Stopped: the panel was closed")
    again.start_button.click()  # the run has ended: a new one starts
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=20_000)
    again.jobs[again.start_button].started_at -= 1  # (not a double-click's second click)
    again.start_button.click()  # Stop
    qtbot.waitUntil(lambda: not again.busy, timeout=20_000)


@pytest.mark.parametrize("reopened", [False, True])
def test_a_train_panel_closed_mid_run_is_freed_once_its_run_has_ended(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, reopened
):
    """A Train panel closed with its dock's ✕ while training must not stay in memory, with
    its plot, log and viewer, once the run it stopped has ended (each close in a long session
    would have kept another): neither the record a panel opened again takes over nor the
    stopping run may hold it."""
    import gc
    import weakref

    from qtpy.QtCore import QCoreApplication, QEvent

    viewer, dock, first, release, _ = _training_that_stops_slowly(
        make_napari_viewer, qtbot, tmp_path, monkeypatch
    )
    job = first.jobs[first.start_button]
    try:
        dock.title.close_button.click()  # the dock's ✕ mid-run
        qtbot.wait(50)
        if reopened:
            _, again = viewer.window.add_plugin_dock_widget("napari-livertumor", "Train models")
            assert again.start_button.text() == "Stopping…"
    finally:
        release.set()
    qtbot.waitUntil(lambda: not job.running, timeout=20_000)
    if reopened:
        qtbot.waitUntil(again.start_button.isEnabled, timeout=20_000)
    closed = weakref.ref(first)
    first = dock = job = None

    def freed() -> bool:
        # Qt deletes what was let go (deleteLater) once control is back in its event loop.
        # The clicks above ran from the test, outside any loop: napari's progress bar, made at
        # the Start, pumps events itself, and the deletions posted there wait for a loop below
        # qtbot.wait's (napari's own, in a session); they are sent here instead. (A panel's
        # short timers, a status line scrolled into view, hold it for a moment too.)
        QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
        gc.collect()
        return closed() is None

    qtbot.waitUntil(freed, timeout=20_000)


@pytest.mark.parametrize("before", ["an epoch's steps", "a resume"])
def test_a_stop_during_validation_says_the_validation_is_stopping(
    train_widget, qtbot, tmp_path, monkeypatch, before
):
    """A Stop while the run validated read "Stopping…" for 20-33 s with nothing saying why:
    the steps had ended (the bar still read step 4) and the validation was running. Likewise
    in a resumed run that first redid the validation a stop had cut short (no step came). And
    with no Stop pressed, the status must not say a validation is stopping."""
    import threading
    import time

    release = threading.Event()
    if before == "a resume":
        first = {"event": "resumed", "stage": "liver", "step": 4, "total_steps": 12,
                 "val_pending": True, "history": [{"step": 4, "train_loss": 1.258}]}  # fmt: skip
    else:
        first = {"event": "step", "step": 4, "losses": {"total": 1.258}, "total_steps": 12,
                 "validates_next": True}  # fmt: skip

    def validating(config, should_cancel):
        yield first
        while not should_cancel():
            time.sleep(0.01)
        assert release.wait(30)
        yield {"event": "cancelled", "stage": config.stage, "step": 4, "last": None}

    widget = _start_faked(monkeypatch, train_widget, tmp_path, validating)
    try:
        qtbot.waitUntil(lambda: widget.history["step"] == [4], timeout=20_000)
        if before == "a resume":
            assert "redoing the validation the stop interrupted" in widget.log.toPlainText()
        else:
            assert "validating" in widget.progress_bar.format()
        assert widget.status.text() != widget.STOPPING_VALIDATION_TEXT  # (no Stop yet)
        widget.jobs[widget.start_button].started_at -= 1  # (not a double-click's second click)
        widget.start_button.click()  # Stop
        assert widget.status.text() == widget.STOPPING_VALIDATION_TEXT
        assert widget.start_button.text() == "Stopping…"
    finally:
        release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)


def test_a_validation_no_step_announced_says_it_on_the_bar_and_at_a_stop(
    train_widget, qtbot, tmp_path, monkeypatch
):
    """The time budget ran out in epoch 0's checkpoint save (validating every 2nd epoch): the
    run's final validation followed a step that said none came, the bar sat at "step 3 / 12"
    with no "validating…", and a Stop meanwhile read "Stopping…" with nothing saying why."""
    import threading
    import time

    release = threading.Event()

    def budget_spent_between_epochs(config, should_cancel):
        yield {"event": "step", "step": 3, "losses": {"total": 1.258}, "total_steps": 12,
               "validates_next": False}  # fmt: skip
        yield {"event": "epoch", "stage": config.stage, "epoch": 0, "step": 3,
               "train_loss": 1.3, "val_dice": None}  # fmt: skip
        yield {"event": "validating", "stage": config.stage, "step": 3, "total_steps": 12,
               "final": True}  # fmt: skip
        while not should_cancel():
            time.sleep(0.01)
        assert release.wait(30)
        yield {"event": "cancelled", "stage": config.stage, "step": 3, "last": None}

    widget = _start_faked(monkeypatch, train_widget, tmp_path, budget_spent_between_epochs)
    try:
        qtbot.waitUntil(
            lambda: any(r.get("event") == "validating" for r in widget.reports), timeout=20_000
        )
        assert "validating" in widget.progress_bar.format()
        assert widget.progress_bar.text() == "step 3 / 12  validating…"
        widget.jobs[widget.start_button].started_at -= 1  # (not a double-click's second click)
        widget.start_button.click()  # Stop
        assert widget.status.text() == widget.STOPPING_VALIDATION_TEXT
    finally:
        release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)


@pytest.mark.parametrize("before", ["ordinary steps", "an epoch's end"])
def test_a_stop_outside_a_validation_does_not_say_the_validation_is_stopping(
    train_widget, qtbot, tmp_path, monkeypatch, before
):
    """A Stop during ordinary steps, or after an epoch's validation ended, stops no validation:
    the status says "Stopping…", not that a validation is stopping; a validation announced
    after the Stop (the time budget's final one) then says it. The bar after a step that
    announces no validation says the step and its loss alone."""
    import threading
    import time

    release = threading.Event()

    def steps(config, should_cancel):
        if before == "ordinary steps":
            yield {"event": "step", "step": 1, "losses": {"total": 0.9}, "total_steps": 12,
                   "validates_next": False}  # fmt: skip
        else:
            yield {"event": "step", "step": 3, "losses": {"total": 0.9}, "total_steps": 12,
                   "validates_next": True}  # fmt: skip
            yield {"event": "epoch", "stage": config.stage, "epoch": 0, "step": 3,
                   "train_loss": 1.0, "val_dice": 0.5}  # fmt: skip
        while not should_cancel():
            time.sleep(0.01)
        yield {"event": "validating", "stage": config.stage, "step": 3, "total_steps": 12,
               "final": True}  # fmt: skip
        assert release.wait(30)
        yield {"event": "cancelled", "stage": config.stage, "step": 3, "last": None}

    widget = _start_faked(monkeypatch, train_widget, tmp_path, steps)
    try:
        if before == "ordinary steps":
            qtbot.waitUntil(lambda: widget.history["step"] == [1], timeout=20_000)
            # (and the time left, estimated once a few steps are timed)
            assert widget.progress_bar.text() == "step 1 / 12  loss 0.900  estimating time left…"
        else:
            qtbot.waitUntil(
                lambda: any(r.get("event") == "epoch" for r in widget.reports), timeout=20_000
            )
        widget.jobs[widget.start_button].started_at -= 1  # (not a double-click's second click)
        widget.start_button.click()  # Stop
        assert widget.status.text() == widget.STOPPING_TEXT
        qtbot.waitUntil(
            lambda: any(r.get("event") == "validating" for r in widget.reports), timeout=20_000
        )
        assert widget.status.text() == widget.STOPPING_VALIDATION_TEXT
    finally:
        release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)


def test_the_validation_stopping_text_says_what_the_validation_stops_at():
    """A validation stops after the image block it is on (a sliding window's batch), not at a
    "window": the text says so."""
    from napari_livertumor._widgets.train import TrainWidget

    text = TrainWidget.STOPPING_VALIDATION_TEXT
    assert "image block" in text and "window" not in text, text


def test_the_loss_plot_shows_the_steps_received_before_a_long_pause(train_widget, qtbot):
    """During a validation (30 s without a report) the plot showed only step 1 while the bar
    read step 4: the steps that came within the plot's redraw interval waited for the next
    report to be drawn."""
    _, widget = train_widget
    widget._reset_plot()  # (drawn now: the steps below come within the redraw interval)
    for step, loss in ((1, 1.7), (2, 1.6), (3, 1.5), (4, 1.258)):
        widget._on_report(
            {"event": "step", "step": step, "total_steps": 12, "losses": {"total": loss}}
        )
    # no report follows (the run validates): the steps are drawn all the same
    qtbot.waitUntil(lambda: list(widget.loss_line.get_xdata()) == [1, 2, 3, 4], timeout=10_000)
    # the next epoch's steps, again within the interval of that draw, and again a validation:
    # drawn too (not left at step 4 for the rest of the run)
    for step, loss in ((5, 1.2), (6, 1.1)):
        widget._on_report(
            {"event": "step", "step": step, "total_steps": 12, "losses": {"total": loss}}
        )
    qtbot.waitUntil(lambda: list(widget.loss_line.get_xdata())[-1:] == [6], timeout=10_000)


def test_a_nearly_flat_loss_is_drawn_nearly_flat_on_whole_steps(train_widget, qtbot):
    """Three steps of loss 1.131, 1.130, 1.129 filled the plot's height, a fall as steep as a
    real one, under five-decimal tick labels, and the steps were ticked 0.5, 1.5, 2.5."""
    _, widget = train_widget
    widget._reset_plot()
    for step, loss in ((1, 1.131), (2, 1.130), (3, 1.129)):
        widget._on_report(
            {"event": "step", "step": step, "total_steps": 12, "losses": {"total": loss}}
        )
    qtbot.waitUntil(lambda: list(widget.loss_line.get_xdata()) == [1, 2, 3], timeout=10_000)
    widget.canvas.draw()
    low, high = widget.loss_ax.get_ylim()
    assert high - low >= 0.05 * 1.131 * 0.99 and low < 1.129 and high > 1.131
    # about 5 %, no more (a wider span flattens a real fall too), centred on the values
    assert high - low <= 0.05 * 1.131 * 1.01, (low, high)
    assert abs((low + high) / 2 - 1.130) < 1e-4, (low, high)
    ticks = [t for t in widget.loss_ax.get_xticks() if 0 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    for step, loss in ((4, 0.8), (5, 0.5)):  # a real fall: drawn to its own size
        widget._on_report(
            {"event": "step", "step": step, "total_steps": 12, "losses": {"total": loss}}
        )
    qtbot.waitUntil(lambda: list(widget.loss_line.get_xdata())[-1:] == [5], timeout=10_000)
    low, high = widget.loss_ax.get_ylim()
    assert low <= 0.5 and high >= 1.131 and high - low < 1.0


def test_finished_says_which_steps_model_was_kept(train_widget, tmp_path):
    """A resumed run said "Finished" (and "done: step 24") while the model it kept, the one
    Segment offers, was step 4's (validation Dice 0.041): every later epoch scored lower."""
    _, widget = train_widget
    _small_run(widget, tmp_path / "data", tmp_path / "out")
    config = widget.build_config()
    stage = Path(config.stage_dir)
    stage.mkdir(parents=True)
    (stage / "metadata.json").write_text("{}")
    widget.reports = []
    widget._on_report({"event": "step", "stage": "liver", "step": 24, "total_steps": 24,
                       "losses": {"total": 0.9}})  # fmt: skip
    widget._on_report({"event": "done", "stage": "liver", "step": 24, "model": str(stage),
                       "kept": {"step": 4, "epoch": 0, "val_dice": 0.0413,
                                "validated": True}})  # fmt: skip
    widget._finished("done", config)
    kept = "model kept: step 4 (epoch 1), validation Dice 0.041"
    assert kept in widget.status.text()
    assert kept in widget.log.toPlainText()


def test_the_panel_counts_epochs_as_the_command_line_and_train_log(train_widget):
    """The panel said "model kept: step 24 (epoch 3)" of the model its run's train.log (and
    the command's done line) called "step 24 (epoch 2)": one numbering, from 1, everywhere."""
    from napari_livertumor.training.cli_report import format_report
    from napari_livertumor.training.loop import kept_model_text

    _, widget = train_widget
    kept = {"step": 24, "epoch": 2, "val_dice": 0.518, "validated": True}  # (stored from 0)
    assert kept_model_text(kept) == "step 24 (epoch 3), validation Dice 0.518"  # the CLI's
    assert widget._kept_text({"kept": kept}) == kept_model_text(kept)  # the panel's
    epoch = {"event": "epoch", "stage": "liver", "epoch": 2, "step": 24, "train_loss": 0.5,
             "val": {"score": 0.518}, "val_dice": 0.518, "seconds": 60.0}  # fmt: skip
    widget._on_report(epoch)
    assert "epoch 3: loss 0.5000, validation Dice 0.518" in widget.log.toPlainText()
    assert format_report(epoch).startswith("[liver] epoch 3 step 24 ")


def test_an_output_that_cannot_be_a_folder_is_refused_at_start_as_the_command_refuses_it(
    train_widget, toy_data, tmp_path, monkeypatch, capsys
):
    """A plain file as the Output was taken at Start; the run failed about a minute later
    ("…/afile: is a file, so …/afile/liver cannot be a folder") while `livertumor train`
    refused it at once. Refused at Start, in the command's words, nothing started; so is an
    Output on a read-only file system, which the command refuses too."""
    import os

    from napari_livertumor.cli import main

    _, widget = train_widget
    afile = tmp_path / "afile"
    afile.write_text("x")
    real_statvfs = os.statvfs

    class ReadOnly:
        def __init__(self, result):
            self.f_flag = result.f_flag | os.ST_RDONLY

    ro = tmp_path / "ro" / "out"
    for out, words in (
        (afile, f"{afile}: is a file, not a folder"),  # (the path said once, not twice)
        (ro, f"{ro}: cannot be created: {tmp_path} does not allow it (a read-only file system)"),
    ):
        if out == ro:
            monkeypatch.setattr(os, "statvfs", lambda path: ReadOnly(real_statvfs(path)))
        cli = ["train", "--data", str(toy_data), "--out", str(out), "--stage", "liver"]
        assert main(cli) == 1
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"livertumor train: error: {words}"
        )
        _small_run(widget, toy_data, out)
        widget.start()
        assert widget.status.text() == words
        assert not widget.busy and widget.start_button.text() == "Start"  # nothing started
        assert afile.read_text() == "x" and not ro.parent.exists()


def test_the_clinical_browse_dialog_lists_every_table_ending_read(train_widget, monkeypatch):
    """Its filter was "*.xlsx *.csv": a .tsv, .xlsm or .txt table, read all the same, did not
    show in the dialog."""
    from napari_livertumor._widgets import train as train_module

    asked = {}

    def dialog(*args, **kwargs):
        asked.update(kwargs)
        return "/data/clinical.tsv", ""

    monkeypatch.setattr(train_module.QFileDialog, "getOpenFileName", dialog)
    _, widget = train_widget
    widget.clinical_browse.click()
    tables = asked["filter"].split(";;")[0]
    for ending in ("*.xlsx", "*.xlsm", "*.xls", "*.csv", "*.tsv", "*.txt"):
        assert ending in tables.split("(")[1].rstrip(")").split()
    assert widget.clinical.text() == "/data/clinical.tsv"


def _visible_tick_labels(widget) -> list[str]:
    widget.canvas.draw()
    labels = []
    for ax in (widget.loss_ax, widget.dice_ax):
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks():
                labels += [t.get_text() for t in (tick.label1, tick.label2) if t.get_visible()]
    return [text for text in labels if text]


def test_the_empty_loss_plot_has_no_ticks_until_something_is_drawn(train_widget, qtbot):
    """Before any training the plot read "no training yet" over a loss and steps ticked
    −0.045 … 0.045, and "starting…" over 0 … 1: values of nothing."""
    _, widget = train_widget
    assert widget._empty_note.get_visible()
    assert _visible_tick_labels(widget) == []
    widget._reset_plot("starting…")
    assert _visible_tick_labels(widget) == []
    widget._on_report({"event": "step", "stage": "liver", "step": 1, "total_steps": 12,
                       "losses": {"total": 0.9}})  # fmt: skip
    qtbot.waitUntil(lambda: list(widget.loss_line.get_xdata()) == [1], timeout=10_000)
    shown = _visible_tick_labels(widget)
    assert shown and not widget._empty_note.get_visible()
    # a line of one point draws nothing: the ticks stood around an empty plot; the first
    # loss is a dot, the line's from the second step on
    assert widget.loss_line.get_marker() == "o" and widget.loss_line.get_markersize() > 0
    widget._on_report({"event": "step", "stage": "liver", "step": 2, "total_steps": 12,
                       "losses": {"total": 0.8}})  # fmt: skip
    qtbot.waitUntil(lambda: list(widget.loss_line.get_xdata()) == [1, 2], timeout=10_000)
    assert widget.loss_line.get_marker() == "None"
    widget._reset_plot("starting…")  # the next run's: empty again
    assert _visible_tick_labels(widget) == []


def test_the_bar_says_the_seconds_per_step_and_the_time_left(
    train_widget, qtbot, tmp_path, monkeypatch
):
    """The bar read "step 11 / 24  loss 0.605" and nothing said how long the run would take.
    It says the time the stage's steps have left, "estimating" before a few steps are timed;
    the status line says the seconds a step takes (the median of the latest, the first step's
    warm-up left out) and that the validations come on top."""
    import threading
    import time

    go = threading.Event()

    def steps(config, should_cancel):
        for step in range(1, 6):
            if step == 3:
                assert go.wait(30)
            yield {"event": "step", "stage": config.stage, "step": step, "total_steps": 24,
                   "losses": {"total": 1.0 / step}, "seconds": 0.5,  # (the network's alone)
                   "interval_s": 30.0 if step == 1 else 2.0, "budget_s": None,
                   "val_every_steps": 12, "validates_next": False}  # fmt: skip
        while not should_cancel():
            time.sleep(0.01)
        yield {"event": "cancelled", "stage": config.stage, "step": 5, "last": None}

    widget = _start_faked(monkeypatch, train_widget, tmp_path, steps)
    try:
        qtbot.waitUntil(lambda: len(widget.history["step"]) == 2, timeout=20_000)
        assert widget.progress_bar.text() == "step 2 / 24  loss 0.500  estimating time left…"
        assert widget.status.text() == "Training the liver model: estimating time left…"
        go.set()
        qtbot.waitUntil(lambda: len(widget.history["step"]) == 5, timeout=20_000)
        # steps 2-5 took 2 s each (step 1's 30 s warm-up left out): 19 steps left, 38 s;
        # the validations after steps 12 and 24 not timed yet
        assert widget.progress_bar.text() == "step 5 / 24  loss 0.200  ~38 s left + validations"
        assert widget.status.text() == (
            "Training the liver model: about 38 s left for its 19 step(s) to go, at 2.00 "
            "s/step; its 2 validation(s) come on top (timed once the first has run)."
        )
    finally:
        go.set()
        widget.jobs[widget.start_button].started_at -= 1  # (not a double-click's second click)
        widget.start_button.click()  # Stop
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    assert widget.status.text().startswith("Stopped")


def test_the_time_left_after_a_resume_and_under_a_time_budget(train_widget):
    """Resumed at step 100 of 124, the time left is the 24 steps' left, not 124's; a time
    budget that ends the run first is said, with the step it ends near."""
    _, widget = train_widget
    from napari_livertumor._widgets._common import set_status

    set_status(widget.status, "Training the liver model…")  # (as a run's start says)
    widget._on_report({"event": "resumed", "stage": "liver", "step": 100, "total_steps": 124,
                       "history": []})  # fmt: skip
    for step in range(101, 106):
        widget._on_report({"event": "step", "stage": "liver", "step": step, "total_steps": 124,
                           "losses": {"total": 0.5}, "seconds": 5.0, "interval_s": 6.0,
                           "budget_s": None, "val_every_steps": 31})  # fmt: skip
    # 19 steps × 6 s, and the last validation (after step 124), not timed yet
    assert widget.progress_bar.text().endswith("  ~2 min left + validations")
    assert "about 2 min left for its 19 step(s) to go" in widget.status.text()
    widget._on_report({"event": "step", "stage": "liver", "step": 106, "total_steps": 124,
                       "losses": {"total": 0.5}, "seconds": 5.0, "interval_s": 6.0,
                       "budget_s": 20.0, "val_every_steps": 31})  # fmt: skip
    assert widget.progress_bar.text().endswith("  ~20 s left + validations (time budget)")
    assert widget.status.text() == (
        "Training the liver model: its time budget ends it in about 20 s, near step 110 of "
        "124 (at 6.00 s/step); its last validation comes on top."
    )
    assert widget.progress_bar.toolTip() == widget.status.text()
    widget._on_report({"event": "step", "stage": "liver", "step": 124, "total_steps": 124,
                       "losses": {"total": 0.5}, "seconds": 5.0, "interval_s": 6.0,
                       "budget_s": None, "val_every_steps": 31})  # fmt: skip
    assert widget.progress_bar.text().endswith("  none left")  # (not "~1 s left")
    assert widget.status.text() == (
        "Training the liver model: its 124 steps are done; its last validation comes next."
    )
    # a Stop's "Stopping…" (or a note) is not written over
    set_status(widget.status, widget.STOPPING_TEXT)
    widget._on_report({"event": "step", "stage": "liver", "step": 107, "total_steps": 124,
                       "losses": {"total": 0.5}, "seconds": 5.0, "interval_s": 6.0,
                       "budget_s": None, "val_every_steps": 31})  # fmt: skip
    assert widget.status.text() == widget.STOPPING_TEXT


def test_the_time_budgets_end_step_is_not_said_before_a_validation_on_the_way_is_timed(
    train_widget,
):
    """30 epochs × 10 steps, a validation after every 10, a 1-min budget: at step 6 the status
    said "its time budget ends it in about 25 s, near step 18 of 300 …; its last validation
    comes on top", but the validation after step 10 took 65 s and the run ended at step 10
    (QA panel69). Until a validation is timed, no end step is said where one comes before it;
    once one is, the step counts them."""
    _, widget = train_widget
    from napari_livertumor._widgets._common import set_status

    set_status(widget.status, "Training the liver model…")  # (as a run's start says)

    def step(n, budget):
        widget._on_report({"event": "step", "stage": "liver", "step": n, "total_steps": 300,
                           "losses": {"total": 0.9}, "seconds": 3.0, "interval_s": 3.4,
                           "budget_s": budget, "val_every_steps": 10,
                           "validates_next": n % 10 == 0})  # fmt: skip

    for n in range(1, 7):
        step(n, 60 - 3.4 * n)
    assert widget.progress_bar.text().endswith("  ~40 s left + validations (time budget)")
    assert "near step" not in widget.status.text()
    assert widget.status.text() == (
        "Training the liver model: its time budget ends it in about 40 s (at 3.40 s/step); its "
        "validations (after every 10 steps) take from the budget too and are not yet timed, so "
        "the step it ends near is said once the first has run; its last validation comes on "
        "top."
    )
    # (a resumed run's) once a validation is timed: those before the end step are counted
    step(10, 200.0)
    widget._on_report({"event": "epoch", "stage": "liver", "epoch": 0, "step": 10,
                       "train_loss": 0.9, "val_dice": 0.5, "val_s": 65.0})  # fmt: skip
    step(12, 100.0)  # 8 steps and the validation after step 20: 92.2 s of 100
    assert widget.status.text() == (
        "Training the liver model: its time budget ends it in about 3 min, near step 23 of 300 "
        "(at 3.40 s/step, 1 min a validation); its last validation included."
    )


def test_a_training_run_opens_no_napari_activity_bar(train_widget, qtbot, tmp_path, monkeypatch):
    """The panel shows the run's progress itself. While a napari progress bar is open, napari's
    status bar spinner redraws the whole window about 30 times a second: with software OpenGL
    (no GPU, a remote desktop) that took half a core from the training process, whose steps
    took twice as long as the command line's."""
    import threading

    from napari.utils import progress

    import napari_livertumor._widgets.train as train_mod

    release = threading.Event()

    def steps(config, should_cancel):
        yield {"event": "step", "step": 1, "losses": {"total": 0.9}, "total_steps": 12,
               "validates_next": False}  # fmt: skip
        while not should_cancel() and not release.wait(0.01):
            pass
        yield {"event": "cancelled", "stage": config.stage, "step": 1, "last": None}

    monkeypatch.setattr(train_mod, "train_in_subprocess", steps)
    _, widget = train_widget
    (tmp_path / "data").mkdir()
    _small_run(widget, tmp_path / "data", tmp_path / "models")
    before = len(progress._all_instances)
    widget.start_button.click()
    try:
        qtbot.waitUntil(lambda: widget.history["step"] == [1], timeout=20_000)
        assert widget.busy
        assert len(progress._all_instances) == before
    finally:
        release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)


def test_the_bar_counts_the_validations_once_one_is_timed(train_widget):
    """Steps of 1.2 s and validations of 55 s: at step 16 of 45 the bar read "~35 s left"
    and the run ended 137 s later; at step 44 "~1 s left", and it ended 55 s later. Once a
    validation has been timed the validations to come are counted; before, the bar says the
    figure is the steps' ("+ validations")."""
    _, widget = train_widget
    from napari_livertumor._widgets._common import set_status

    set_status(widget.status, "Training the liver model…")  # (as a run's start says)

    def step(n):
        widget._on_report({"event": "step", "stage": "liver", "step": n, "total_steps": 45,
                           "losses": {"total": 0.5}, "seconds": 1.0, "interval_s": 1.2,
                           "budget_s": None, "val_every_steps": 15,
                           "validates_next": n % 15 == 0})  # fmt: skip

    for n in range(1, 15):
        step(n)
    assert widget.progress_bar.text() == "step 14 / 45  loss 0.500  ~37 s left + validations"
    assert widget.status.text() == (
        "Training the liver model: about 37 s left for its 31 step(s) to go, at 1.20 s/step; "
        "its 3 validation(s) come on top (timed once the first has run)."
    )
    step(15)
    assert widget.progress_bar.text() == "step 15 / 45  loss 0.500  validating…"
    widget._on_report({"event": "epoch", "stage": "liver", "epoch": 0, "step": 15,
                       "train_loss": 0.5, "val": {"score": 0.5}, "val_dice": 0.5,
                       "val_s": 55.0, "seconds": 75.0})  # fmt: skip
    step(16)  # 29 steps (35 s) and the validations after steps 30 and 45 (110 s)
    assert widget.progress_bar.text() == "step 16 / 45  loss 0.500  ~2 min left"
    assert widget.status.text() == (
        "Training the liver model: about 2 min left for its 29 step(s) to go, at 1.20 s/step, "
        "and its 2 validations, at 55 s each."
    )
    assert widget.progress_bar.toolTip() == widget.status.text()
    for n in range(17, 31):
        step(n)
    widget._on_report({"event": "epoch", "stage": "liver", "epoch": 1, "step": 30,
                       "train_loss": 0.5, "val": {"score": 0.5}, "val_dice": 0.5,
                       "val_s": 55.0, "seconds": 75.0})  # fmt: skip
    step(31)  # one validation to come: not "its 1 validation(s), at 55 s each"
    assert widget.status.text() == (
        "Training the liver model: about 1 min left for its 14 step(s) to go, at 1.20 s/step, "
        "and its last validation, of about 55 s."
    )
    for n in range(32, 45):
        step(n)
    assert widget.progress_bar.text() == "step 44 / 45  loss 0.500  ~56 s left"
    step(45)
    assert widget.status.text() == (
        "Training the liver model: its 45 steps are done; its last validation takes about 55 s."
    )


def test_the_time_budget_field_reaches_the_run_and_its_end_is_said(
    train_widget, qtbot, tmp_path, monkeypatch
):
    """The command's --max-minutes had no field in the panel: a run from the GUI could not be
    told to stop after so many minutes. The field (no limit by default) goes into the run as
    the command's option does; the run it ends says so, on the bar's line and at its end (it
    said a plain "Finished." as if every epoch had run)."""
    from napari_livertumor.cli import build_parser
    from napari_livertumor.commands.train import build_configs

    _, widget = train_widget
    assert widget.time_budget.value() == 0 and widget.time_budget.text() == "no limit"
    tip = widget.time_budget.toolTip()
    for said in ("whole run", "step under way finishes", "last validation", "last/", "Resume"):
        assert said in tip, tip
    # what its clock counts: a 1-min run took 247 s from Start, 134 s of it before its first
    # step (the data's preparation) and 65 s of final validation
    assert "training and validation time" in tip and "not the start-up" in tip, tip
    assert "preparing of the data before the first step" in tip, tip
    assert "last validation runs on top of it" in tip, tip
    calls = []

    def ended_by_the_budget(config, should_cancel):
        calls.append(config)
        stage = Path(config.stage_dir)
        for step, left in ((1, 40.0), (2, 0.0)):  # as the loop reports it (see loop.py)
            yield {"event": "step", "stage": "liver", "step": step, "total_steps": 9,
                   "losses": {"total": 0.9}, "seconds": 5.0, "interval_s": 6.0,
                   "budget_s": left, "val_every_steps": 3,
                   "validates_next": left == 0.0}  # fmt: skip
        stage.mkdir(parents=True)
        (stage / "metadata.json").write_text("{}")
        yield {"event": "epoch", "stage": "liver", "epoch": 0, "step": 2, "train_loss": 0.9,
               "val_dice": 0.5, "val_s": 3.0, "saved_best": True}  # fmt: skip
        yield {"event": "note", "text": "the time budget (30 min, the whole run's) stopped the "
               "run at step 2 of 9; its state is in last"}  # fmt: skip
        yield {"event": "done", "stage": "liver", "step": 2, "planned_steps": 9,
               "model": str(stage), "minutes": 31.24,
               "kept": {"step": 2, "epoch": 0, "val_dice": 0.5, "validated": True}}  # fmt: skip

    import napari_livertumor._widgets.train as train_mod

    monkeypatch.setattr(train_mod, "train_in_subprocess", ended_by_the_budget)
    (tmp_path / "data").mkdir()
    _small_run(widget, tmp_path / "data", tmp_path / "models")
    assert widget.build_config().max_minutes is None  # (no limit)
    widget.time_budget.setValue(30)
    widget.start_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    # the run's time budget is the command's --max-minutes, as `train` takes it
    given = ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "models"),
             "--stage", "liver", "--max-minutes", "30"]  # fmt: skip
    (cli,) = build_configs(build_parser().parse_args(given))
    assert calls[0].max_minutes == cli.max_minutes == 30
    # the step it ran out in (the bar's tooltip keeps the status line's last time-left words)
    assert widget.progress_bar.toolTip() == (
        "Training the liver model: its time budget is reached at step 2 of 9; its last "
        "validation comes next."
    )
    text = widget.status.text()
    assert text.startswith("Finished at its time budget (30 min), at step 2 of 9. "), text
    assert "can be chosen in Segment (model kept: step 2 (epoch 1)" in text
    # the minutes it used (its final validation's past the budget included): a budget of 2
    # min after 1.7 min trained gave 0.3 min more, and nothing said so
    assert text.endswith(
        "a larger Time budget than the 31.2 min the run has trained (the budget counts the "
        "whole run), then Resume."
    ), text
    assert "done: step 2 of 9 (the time budget, 30 min, ended it)" in widget.log.toPlainText()
    # a run that trains all its steps within its budget just finished
    widget.reports = [r for r in widget.reports if r["event"] != "note"]
    done = widget.reports[-1]
    done.update(step=9)
    widget._finished("done", calls[0])
    assert widget.status.text().startswith("Finished. The liver model")


def test_a_run_its_time_budget_ends_says_so_from_the_loops_own_reports(
    train_widget, toy_data, qtbot, tmp_path, monkeypatch
):
    """The training loop itself (in this process, its clock out of time after the first step):
    the panel's last word is the time budget's, with the step it stopped at."""
    from napari_livertumor.training import loop

    def out_of_time_after_one_step(self, should_cancel, t_start):
        if should_cancel is not None and should_cancel():
            return "cancel"
        return "time" if self.state["step"] >= 1 else None

    monkeypatch.setattr(loop._Run, "_should_stop", out_of_time_after_one_step)
    _train_in_this_process(monkeypatch)
    _, widget = train_widget
    _small_run(widget, toy_data, tmp_path / "models")
    widget.epochs.setValue(2)
    widget.steps.setValue(2)
    widget.time_budget.setValue(30)
    widget.start_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=240_000)
    text = widget.status.text()
    assert text.startswith("Finished at its time budget (30 min), at step 1 of 4. "), text
    log = widget.log.toPlainText()
    assert "Start again with a larger Time budget, then Resume, to train on" in log
    assert "done: step 1 of 4 (the time budget, 30 min, ended it)" in log
