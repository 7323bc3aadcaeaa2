"""Training: a user trains a tiny model on a toy cohort, stops it, resumes it, and uses it."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from napari_livertumor.errors import InputError, LiverTumorError
from napari_livertumor.models import load_model, read_metadata
from napari_livertumor.training import make_config, train
from napari_livertumor.training.data import make_split
from napari_livertumor.training.toydata import write_toy_cohort

TINY_NET = {"init_filters": 4, "blocks_down": [1, 1, 1], "blocks_up": [1, 1], "vae_nz": 16}
WEAK_COLUMNS = ["AFP", "T_involvment", "CLIP_Score", "age"]


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    global _CACHE
    _CACHE = str(tmp_path_factory.mktemp("cache"))  # preprocess each toy case once per module
    return write_toy_cohort(tmp_path_factory.mktemp("toy"), n_cases=6, seed=0)


_CACHE = None


def tiny_config(data, out, stage="liver", **kw):
    base = dict(
        cache_dir=_CACHE,
        data=str(data),
        out=str(out),
        epochs=2,
        steps_per_epoch=3,
        roi_size=(16, 32, 32),
        target_spacing=(2.5, 2.0, 2.0),
        network=TINY_NET,
        val_fraction=0.2,
        weak_columns=WEAK_COLUMNS,
        seed=3,
        warmup_steps=2,
    )
    base.update(kw)
    return make_config(stage, **base)


def run_all(config, **kw):
    """The run's reports, without the data preparation's progress (see its own test)."""
    return [r for r in train(config, **kw) if r["event"] != "prepare"]


@pytest.fixture(scope="module")
def uninterrupted(toy_data, tmp_path_factory):
    """``tiny_config``'s run never stopped, made once for the tests that stop and resume the
    same run and compare: ``(its reports, its stage folder)``, both only read."""
    out = tmp_path_factory.mktemp("full")
    return run_all(tiny_config(toy_data, out)), out / "liver"


def test_a_few_steps_lower_the_loss(toy_data, tmp_path):
    cfg = tiny_config(
        toy_data, tmp_path, epochs=1, steps_per_epoch=10, lr=5e-3, augment=False, fg_ratio=1.0
    )
    reports = run_all(cfg)
    losses = [r["losses"]["total"] for r in reports if r["event"] == "step"]
    assert len(losses) == 10
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert reports[-1]["event"] == "done"


def test_the_weak_terms_table_is_recorded_as_an_absolute_path(toy_data, tmp_path, monkeypatch):
    """QA train59: training.weak.clinical kept the table's path as typed ("tables/x.xlsx",
    relative to wherever the run was started) beside training.data.clinical's absolute one."""
    monkeypatch.chdir(toy_data.parent)
    table = Path(toy_data.name) / "clinical.csv"
    run_all(tiny_config(toy_data, tmp_path, stage="tumor", weak_lambda=0.5, clinical=str(table)))
    weak = load_model(tmp_path / "tumor", stage="tumor").metadata.training["weak"]
    assert weak["clinical"] == str(toy_data.resolve() / "clinical.csv")


def test_training_writes_a_model_folder_the_pipeline_can_load(toy_data, tmp_path):
    reports = run_all(tiny_config(toy_data, tmp_path, stage="tumor", weak_lambda=0.5))
    info = reports[0]
    assert info["event"] == "info" and info["weak"]["enabled"]
    assert info["weak"]["n_weak_labels"] == info["n_train"]
    epochs = [r for r in reports if r["event"] == "epoch"]
    assert len(epochs) == 2 and all("val_dice_tumor" in r["val"] for r in epochs)
    model = load_model(tmp_path / "tumor", stage="tumor")
    meta = model.metadata
    assert meta.label_map == {"0": "background", "1": "liver", "2": "tumor"}
    assert meta.mask_outside_liver and meta.roi_size == (16, 32, 32)
    assert set(meta.training["data"]["split"]) >= {"train", "val", "test"}
    assert meta.training["config"]["weak_lambda"] == 0.5
    # the table found in --data is named where the data is described, not only in "weak"
    assert meta.training["data"]["clinical"] == str((toy_data / "clinical.csv").resolve())
    # each training patient's weak label beside its true ratio (the info report stays short)
    labels = meta.training["weak"]["labels"]
    assert len(labels) == info["n_train"] > 0
    assert sorted(labels) == sorted(meta.training["data"]["split"]["train"])
    assert all(set(v) == {"weak", "tlvr"} for v in labels.values())
    assert "labels" not in info["weak"]
    assert "val_dice_tumor" in meta.metrics
    # the VAE branch is not shipped; the stored trunk has no vae_* weights
    from safetensors import safe_open

    with safe_open(str(tmp_path / "tumor" / "model.safetensors"), "pt") as fh:
        assert not [k for k in fh.keys() if k.startswith("vae")]
    split = json.loads((tmp_path / "tumor" / "split.json").read_text())
    assert not set(split["train"]) & set(split["test"])
    assert not set(split["val"]) & set(split["test"])


def test_cancel_stops_within_one_step_and_leaves_a_loadable_last_checkpoint(toy_data, tmp_path):
    steps_seen = []

    def should_cancel():
        return len(steps_seen) >= 2

    reports = []
    for r in train(tiny_config(toy_data, tmp_path), should_cancel=should_cancel):
        reports.append(r)
        if r["event"] == "step":
            steps_seen.append(r["step"])
    assert steps_seen == [1, 2]
    assert reports[-1]["event"] == "cancelled" and reports[-1]["step"] == 2
    last = load_model(tmp_path / "liver" / "last", stage="liver")
    assert last.metadata.training["steps"] == 2
    assert not list((tmp_path / "liver").glob(".last-*"))  # no temporary folder left behind


def test_share_model_leaves_out_patient_ids_figures_and_paths(toy_data, tmp_path):
    """A model folder to publish: the weights and recipe, none of the training patients' IDs,
    weak labels or local paths; evaluate still tells a training patient by its files."""
    from napari_livertumor.cli import main
    from napari_livertumor.training.data import index_cases
    from napari_livertumor.training.evaluate import _same_ground_truth

    run_all(tiny_config(toy_data, tmp_path / "run", stage="tumor", weak_lambda=0.5))
    src = tmp_path / "run" / "tumor"
    ids = sorted(json.loads((src / "metadata.json").read_text())["training"]["weak"]["labels"])
    assert ids and (src / "last").is_dir()
    assert main(["share-model", str(tmp_path / "run"), "-o", str(tmp_path / "pub")]) == 0
    dest = tmp_path / "pub" / "tumor"
    assert sorted(p.name for p in dest.iterdir()) == [
        "metadata.json",
        "model.safetensors",
        "split.json",
    ]
    assert (dest / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    for f in dest.iterdir():
        text = f.read_bytes().decode("latin-1")
        assert str(toy_data) not in text and str(tmp_path) not in text, f.name
        assert not [c for c in ids if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text)], (
            f.name
        )
    meta = read_metadata(dest)
    assert "labels" not in meta.training["weak"]
    assert meta.training["weak"]["n_labels_left_out"] == len(ids)
    assert meta.training["data"]["data"] == toy_data.name
    split = json.loads((dest / "split.json").read_text())
    assert set(split["train"]) <= set(split["fingerprints"])
    assert all(re.fullmatch(r"case-\d{3}", c) for c in split["train"] + split["test"])
    model = load_model(dest, stage="tumor")
    assert model.metadata.weights_sha1 == read_metadata(src).weights_sha1
    # a receiver holding a training patient under any name: found by its label voxels
    by_id = {r.case_id: r for r in index_cases(toy_data)}
    trained = json.loads((src / "split.json").read_text())["train"][0]
    assert _same_ground_truth(split, [trained], by_id) == [trained]
    # never into a folder holding files, nor inside the source
    with pytest.raises(LiverTumorError, match="not empty"):
        from napari_livertumor.models.share import share_model

        share_model(tmp_path / "run", tmp_path / "pub")
    with pytest.raises(LiverTumorError, match="inside"):
        share_model(tmp_path / "run", src / "copy")
    # --keep-ids (a public cohort's names): the split as written, the weak labels still out
    assert main(["share-model", str(src), "-o", str(tmp_path / "named"), "--keep-ids"]) == 0
    kept = json.loads((tmp_path / "named" / "split.json").read_text())
    assert kept["train"] == json.loads((src / "split.json").read_text())["train"]
    assert "labels" not in read_metadata(tmp_path / "named").training["weak"]
    # weights that are not the ones the metadata was written with are not passed on
    (src / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes()[:-4] + b"    ")
    with pytest.raises(LiverTumorError, match="SHA-1"):
        share_model(src, tmp_path / "bad")


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(
    toy_data, tmp_path, uninterrupted
):
    from napari_livertumor.training.cli_report import format_report

    full, _ = uninterrupted
    n = 0

    def cancel_after_four():
        return n >= 4

    for r in train(tiny_config(toy_data, tmp_path / "cut"), should_cancel=cancel_after_four):
        n += r["event"] == "step"
    resumed = run_all(tiny_config(toy_data, tmp_path / "cut", resume=True))
    steps = [r["step"] for r in resumed if r["event"] == "step"]
    assert steps == [5, 6]
    full_losses = [r["losses"]["total"] for r in full if r["event"] == "step"]
    res_losses = [r["losses"]["total"] for r in resumed if r["event"] == "step"]
    assert res_losses == pytest.approx(full_losses[4:], rel=1e-4, abs=1e-5)
    assert resumed[-1]["last_weights_digest"] == full[-1]["last_weights_digest"]
    # the epoch cut in two records the mean loss of all its steps, not of the resumed part's
    cut_epochs = [r["train_loss"] for r in resumed if r["event"] == "epoch"]
    full_epochs = [r["train_loss"] for r in full if r["event"] == "epoch"]
    assert cut_epochs == pytest.approx(full_epochs[1:], rel=1e-4)
    # the run so far is reported first, for a plot to go on from (the Train panel's started
    # empty): the whole epoch before the stop, as the uninterrupted run recorded it
    (so_far,) = [r for r in resumed if r["event"] == "resumed"]
    assert so_far["step"] == 4 and so_far["total_steps"] == 6
    assert [h["step"] for h in so_far["history"]] == [3]
    assert so_far["history"][0]["train_loss"] == pytest.approx(full_epochs[0], rel=1e-4)
    assert format_report(so_far).startswith("[liver] resumed at step 4/6 (1 epoch(s) recorded")


def test_resuming_with_a_torch_whose_safe_loader_can_be_got_past_says_so(
    toy_data, tmp_path, monkeypatch, caplog
):
    """The resume state is the one file read with torch.load; before torch 2.6 a crafted one
    gets past weights_only=True to run code (CVE-2025-32434), and pyproject allows torch 2.2
    (Intel Macs keep 2.2.2): a run folder someone sent is said to be a risk there."""
    import torch

    from napari_livertumor.training.loop import _unsafe_weights_only

    assert all("CVE-2025-32434" in _unsafe_weights_only(v) for v in ("2.2.2", "2.5.1+cu121"))
    assert _unsafe_weights_only("2.6.0") == "CVE-2026-24747, fixed in torch 2.10"
    assert not any(_unsafe_weights_only(v) for v in ("2.10.0a0+git", "2.13.0", "3.0", "x"))
    n = 0

    def cancel_after_two():
        return n >= 2

    for r in train(tiny_config(toy_data, tmp_path), should_cancel=cancel_after_two):
        n += r["event"] == "step"
    with caplog.at_level("WARNING"):
        run_all(tiny_config(toy_data, tmp_path, resume=True))
    assert "CVE" not in caplog.text  # (torch 2.13 here)
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    caplog.clear()
    with caplog.at_level("WARNING"):
        run_all(tiny_config(toy_data, tmp_path, resume=True, epochs=3))
    assert "torch 2.5.1" in caplog.text and "CVE-2025-32434" in caplog.text


def test_worker_processes_live_for_the_run_and_train_as_none_do(toy_data, tmp_path, monkeypatch):
    """A loader made anew each epoch started new workers each epoch; under ``spawn``
    (Windows, macOS) each was sent the whole training set again."""
    from napari_livertumor.training import loop

    made = []
    real = loop._loader
    monkeypatch.setattr(loop, "_loader", lambda *a: made.append(1) or real(*a))
    monkeypatch.setattr(loop.os, "sched_getaffinity", lambda _: {0, 1, 2}, raising=False)
    base = run_all(tiny_config(toy_data, tmp_path / "none", epochs=3, steps_per_epoch=2))
    assert len(made) == 1
    with_workers = run_all(
        tiny_config(toy_data, tmp_path / "two", epochs=3, steps_per_epoch=2, num_workers=2)
    )
    assert len(made) == 2  # one loader for the three epochs
    losses = [
        [r["losses"]["total"] for r in run if r["event"] == "step"] for run in (base, with_workers)
    ]
    assert len(losses[0]) == 6 and losses[1] == pytest.approx(losses[0], rel=1e-5, abs=1e-6)
    assert with_workers[-1]["last_weights_digest"] == base[-1]["last_weights_digest"]


def test_a_run_stopped_before_its_first_best_model_is_not_said_to_hold_a_model(toy_data, tmp_path):
    """Killed before its first validation, a rerun without --resume was told the folder
    'already holds a liver model and a run to resume': there was no model yet."""
    from napari_livertumor.errors import InputError

    n = 0

    def cancel_after_one():
        return n >= 1

    for r in train(tiny_config(toy_data, tmp_path / "cut"), should_cancel=cancel_after_one):
        n += r["event"] == "step"
    stage = tmp_path / "cut" / "liver"
    assert (stage / "last").is_dir() and not (stage / "model.safetensors").exists()
    with pytest.raises(
        InputError, match=r"holds a liver run to resume \(stopped before its first best model\)"
    ):
        run_all(tiny_config(toy_data, tmp_path / "cut"))


def test_a_stop_during_validation_is_made_good_on_resume(
    toy_data, tmp_path, monkeypatch, uninterrupted
):
    """Stopped while it checked the validation patients, the run kept no score for that epoch
    and resumed straight into the next: the check (and a best model it would have saved) was
    lost; at the run's last epoch it ended with no validated model at all."""
    from napari_livertumor.errors import Cancelled
    from napari_livertumor.training import loop

    full, _ = uninterrupted
    real_validate = loop.validate
    stopped = []

    def validate_stopped_by_the_user(*args, **kw):
        stopped.append(True)  # the user presses Stop while the first check runs
        raise Cancelled("validation stopped")

    monkeypatch.setattr(loop, "validate", validate_stopped_by_the_user)
    cut = run_all(tiny_config(toy_data, tmp_path / "cut"), should_cancel=lambda: bool(stopped))
    assert cut[-1]["event"] == "cancelled" and cut[-1]["step"] == 3
    assert not (tmp_path / "cut" / "liver" / "metadata.json").exists()  # nothing validated yet

    monkeypatch.setattr(loop, "validate", real_validate)
    resumed = run_all(tiny_config(toy_data, tmp_path / "cut", resume=True))
    first = next(r for r in resumed if r["event"] not in ("info", "resumed"))
    assert first["event"] == "epoch" and first["resumed_validation"]
    assert first["step"] == 3 and first["epoch"] == 0 and "val" in first
    assert [r["step"] for r in resumed if r["event"] == "step"] == [4, 5, 6]
    assert resumed[-1]["event"] == "done"
    assert resumed[-1]["last_weights_digest"] == full[-1]["last_weights_digest"]
    scores = [r["val"]["score"] for r in resumed if r["event"] == "epoch"]
    assert scores == pytest.approx([r["val"]["score"] for r in full if r["event"] == "epoch"])
    history = read_metadata(tmp_path / "cut" / "liver").training["history"]
    assert [h["step"] for h in history] == [3, 6]
    assert all(h["val_score"] is not None for h in history)


def test_a_stop_during_a_patients_validation_lands_within_one_window(toy_data, tmp_path):
    """The Train panel's Stop (and closing napari) during validation waited for the whole
    validation patient, 20-33 s where a step took 0.17 s, with "Stopping…" all along: the stop
    was heard only between validation patients, and a small cohort has one."""
    import types

    import torch

    from napari_livertumor.errors import Cancelled
    from napari_livertumor.training import loop

    cfg = tiny_config(toy_data, tmp_path)
    windows = []

    class SlowNet(torch.nn.Module):  # each call is one sliding window of the validation
        def forward(self, x):
            windows.append(tuple(x.shape))
            return (torch.zeros((x.shape[0], cfg.n_classes, *x.shape[2:])),)

    labels = np.zeros((64, 160, 160), np.uint8)
    labels[20:40, 50:110, 50:110] = 1
    patient = types.SimpleNamespace(image=np.zeros(labels.shape, np.float32), labels=labels)
    loop.validate(SlowNet(), [patient], cfg, torch.device("cpu"))
    in_full = len(windows)
    assert in_full > 3  # the stop below comes early in the patient's windows
    windows.clear()
    with pytest.raises(Cancelled):
        # Stop pressed while the second window runs: the third never starts
        loop.validate(
            SlowNet(), [patient], cfg, torch.device("cpu"), should_cancel=lambda: len(windows) >= 2
        )
    assert len(windows) == 2, (len(windows), in_full)


def test_a_stop_inside_the_one_validation_patient_is_redone_on_resume(
    toy_data, tmp_path, monkeypatch
):
    """docs/training.md §8: a stop during an epoch's validation is remembered and redone first
    on resume. With one validation patient the stop never cut a validation short, so the
    promise held only between patients."""
    from napari_livertumor.training import loop

    real_validate = loop.validate
    stopped = []

    def stop_in_its_first_window(net, cases, *args, **kw):
        assert len(cases) == 1  # the toy cohort's split: one validation patient
        hook = net.register_forward_hook(lambda *_: stopped.append(True))  # Stop pressed
        try:
            return real_validate(net, cases, *args, **kw)
        finally:
            hook.remove()

    monkeypatch.setattr(loop, "validate", stop_in_its_first_window)
    cut = run_all(tiny_config(toy_data, tmp_path), should_cancel=lambda: bool(stopped))
    assert cut[-1]["event"] == "cancelled" and cut[-1]["step"] == 3
    assert len(stopped) == 1  # the validation ended at its next check, not the patient's end
    # (the step before a validation says so: the panel's bar and its Stop's status tell)
    assert [r["validates_next"] for r in cut if r["event"] == "step"] == [False, False, True]
    monkeypatch.setattr(loop, "validate", real_validate)
    resumed = run_all(tiny_config(toy_data, tmp_path, resume=True))
    assert next(r for r in resumed if r["event"] == "resumed")["val_pending"]
    first = next(r for r in resumed if r["event"] not in ("info", "resumed"))
    assert first["event"] == "epoch" and first.get("resumed_validation") and first["step"] == 3


def test_a_resume_that_only_redoes_the_last_validation_is_no_nothing_to_train(
    toy_data, tmp_path, monkeypatch
):
    """QA rev59c: a run stopped inside its last validation, resumed, redid the validation
    and finished, but first warned "the run already reached its 2 epochs: nothing to train;
    raise the epochs", which the panel then showed as its final status."""
    from napari_livertumor.training import loop

    real_validate = loop.validate
    calls, stopped = [], []

    def stop_in_the_last(net, cases, *args, **kw):
        calls.append(True)
        if len(calls) < 2:
            return real_validate(net, cases, *args, **kw)
        hook = net.register_forward_hook(lambda *_: stopped.append(True))
        try:
            return real_validate(net, cases, *args, **kw)
        finally:
            hook.remove()

    monkeypatch.setattr(loop, "validate", stop_in_the_last)
    cut = run_all(tiny_config(toy_data, tmp_path), should_cancel=lambda: bool(stopped))
    assert cut[-1]["event"] == "cancelled" and cut[-1]["step"] == 6
    monkeypatch.setattr(loop, "validate", real_validate)
    resumed = run_all(tiny_config(toy_data, tmp_path, resume=True))
    notes = [r["text"] for r in resumed if r["event"] == "note"]
    assert not any("nothing to train" in n for n in notes), notes
    assert resumed[-1]["event"] == "done" and resumed[-1]["model_kept"]
    assert any(r["event"] == "epoch" and r.get("resumed_validation") for r in resumed)


def test_a_resume_redoing_the_validation_the_budget_ended_with_says_the_budget_stopped_it(
    toy_data, tmp_path, monkeypatch
):
    """A run its time budget ended was stopped inside the final validation the budget left;
    resumed with the same budget, it redid the validation and finished, but first warned "the
    run has already trained …, its time budget …: nothing to train; raise the time budget".
    Without that note it ended "done" at step 1 of 9 with no word of the budget at all."""
    from napari_livertumor.training import loop

    real_validate = loop.validate
    stopped = []

    def stop_in_its_first_window(net, cases, *args, **kw):
        hook = net.register_forward_hook(lambda *_: stopped.append(True))  # Stop pressed
        try:
            return real_validate(net, cases, *args, **kw)
        finally:
            hook.remove()

    real_clock = loop._Run._should_stop

    def out_of_time_after_the_first_step(self, should_cancel, t_start):
        if should_cancel is not None and should_cancel():
            return "cancel"
        return "time" if self.state["step"] >= 1 else None

    monkeypatch.setattr(loop, "validate", stop_in_its_first_window)
    monkeypatch.setattr(loop._Run, "_should_stop", out_of_time_after_the_first_step)
    cfg = tiny_config(toy_data, tmp_path, epochs=3, max_minutes=1e-9)
    cut = run_all(cfg, should_cancel=lambda: bool(stopped))
    assert [r["validates_next"] for r in cut if r["event"] == "step"] == [True]
    assert cut[-1]["event"] == "cancelled" and cut[-1]["step"] == 1 and stopped
    monkeypatch.setattr(loop, "validate", real_validate)
    monkeypatch.setattr(loop._Run, "_should_stop", real_clock)  # the budget is spent
    resumed = run_all(cfg.with_updates(resume=True))
    assert next(r for r in resumed if r["event"] == "resumed")["val_pending"]
    assert not [r for r in resumed if r["event"] == "step"]
    notes = [r["text"] for r in resumed if r["event"] == "note"]
    assert not any("nothing to train" in n for n in notes), notes
    assert any(r["event"] == "epoch" and r.get("resumed_validation") for r in resumed)
    assert resumed[-1]["event"] == "done" and resumed[-1]["best_val_dice"] is not None
    assert len(notes) == 1 and "stopped the run at step 1 of 9" in notes[0], notes


def test_ctrl_c_during_validation_is_made_good_on_resume_too(toy_data, tmp_path, monkeypatch):
    """Ctrl-C (the CLI's stop) during a validation saved last/ without remembering it."""
    from napari_livertumor.training import loop

    real_validate = loop.validate

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "validate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_all(tiny_config(toy_data, tmp_path))
    monkeypatch.setattr(loop, "validate", real_validate)
    resumed = run_all(tiny_config(toy_data, tmp_path, resume=True))
    first = next(r for r in resumed if r["event"] not in ("info", "resumed"))
    assert first["event"] == "epoch" and first.get("resumed_validation") and first["step"] == 3


def test_a_stop_during_the_last_validation_is_a_stop_not_an_unvalidated_finish(
    toy_data, tmp_path, monkeypatch
):
    from napari_livertumor.errors import Cancelled
    from napari_livertumor.training import loop

    real_validate = loop.validate
    calls = []

    def second_check_stopped(*args, **kw):
        calls.append(True)
        if len(calls) == 2:
            raise Cancelled("validation stopped")
        return real_validate(*args, **kw)

    monkeypatch.setattr(loop, "validate", second_check_stopped)
    cut = run_all(tiny_config(toy_data, tmp_path), should_cancel=lambda: len(calls) >= 2)
    assert cut[-1]["event"] == "cancelled" and cut[-1]["step"] == 6
    meta = read_metadata(tmp_path / "liver")  # the first epoch's validated model, untouched
    assert meta.training["steps"] == 3 and "note" not in meta.metrics

    monkeypatch.setattr(loop, "validate", real_validate)
    resumed = run_all(tiny_config(toy_data, tmp_path, resume=True))
    assert not [r for r in resumed if r["event"] == "step"]
    assert [r["step"] for r in resumed if r["event"] == "epoch"] == [6]
    assert resumed[-1]["event"] == "done" and resumed[-1]["best_val_dice"] is not None


def test_a_run_killed_while_saving_is_finished_or_rolled_back_never_mixed(
    toy_data, tmp_path, uninterrupted
):
    """Killed between the renames that swap last/ in, the folder held no last/ and --resume
    refused the run (advising --force, which throws it away); killed between the writes of the
    best model's files, new weights sat beside the old metadata and loaded without a word."""
    import shutil

    from napari_livertumor.errors import ModelError
    from napari_livertumor.training.loop import check_before_writing

    full, full_stage = uninterrupted
    stage = tmp_path / "cut" / "liver"
    n = 0

    def cancel_after_four():
        return n >= 4

    for r in train(tiny_config(toy_data, tmp_path / "cut"), should_cancel=cancel_after_four):
        n += r["event"] == "step"
    # as if killed mid-swap: the complete new state is .last-new/, the old one .last-old/
    os.replace(stage / "last", stage / ".last-new")
    resumed = run_all(tiny_config(toy_data, tmp_path / "cut", resume=True))
    assert [r["step"] for r in resumed if r["event"] == "step"] == [5, 6]
    assert resumed[-1]["last_weights_digest"] == full[-1]["last_weights_digest"]

    # as if killed half-way through moving a new best model in: new weights, old metadata
    before = (stage / "metadata.json").read_text()
    best = stage / ".best-new"
    best.mkdir()
    for name in ("model.safetensors", "metadata.json", "split.json"):
        shutil.copy(full_stage / name, best / name)
    (best / ".complete").write_text("")
    os.replace(best / "model.safetensors", stage / "model.safetensors")
    with pytest.raises(ModelError, match="stopped while it replaced this model's files"):
        load_model(stage)
    check_before_writing(tiny_config(toy_data, tmp_path / "cut", resume=True))  # finishes it
    assert not best.exists()
    assert (stage / "metadata.json").read_text() != before
    assert (stage / "metadata.json").read_text() == (full_stage / "metadata.json").read_text()
    load_model(stage)

    # killed while writing it (not marked complete): the previous model stays, the rest goes
    best.mkdir()
    (best / "model.safetensors").write_bytes(b"half a file")
    check_before_writing(tiny_config(toy_data, tmp_path / "cut", resume=True))
    assert not best.exists()
    load_model(stage)

    # a state written in part beside a whole last/ (a full disk): removed, it kept the space
    # the next save needed; one written whole (killed before the renames) is the newer state
    (stage / ".last-new").mkdir()
    (stage / ".last-new" / ".train_state.pt.tmp").write_bytes(b"x" * 1000)
    check_before_writing(tiny_config(toy_data, tmp_path / "cut", resume=True))
    assert not (stage / ".last-new").exists() and (stage / "last" / "train_state.pt").is_file()
    shutil.copytree(stage / "last", stage / ".last-new")
    (stage / ".last-new" / "marker").write_text("newer")
    check_before_writing(tiny_config(toy_data, tmp_path / "cut", resume=True))
    assert (stage / "last" / "marker").is_file() and not (stage / ".last-new").exists()
    assert not (stage / ".last-old").exists()


def _killed_in_first_last_save(config, monkeypatch, at: str = "metadata.json"):
    """Train ``config`` until its first save of last/ renames ``.last-new/<at>`` in, and stop
    it there as a kill -9 would: nothing after that rename runs (a SystemExit, which no
    handler of the run catches to save last/)."""
    real = os.replace

    def killed(src, dst, *args, **kwargs):
        if Path(dst).parent.name == ".last-new" and Path(dst).name == at:
            raise SystemExit("killed")
        return real(src, dst, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", killed)
        with pytest.raises(SystemExit):
            run_all(config)


def test_a_run_killed_in_its_first_save_of_last_starts_again_on_resume(
    toy_data, tmp_path, monkeypatch, caplog, uninterrupted
):
    """Killed while writing its first last/ (after its first best model was saved), the
    folder sent each command to the other: --resume found "a trained model but no last/
    state", the plain command "a liver model: --resume continues it"; only --force got out."""
    import shutil

    full, full_stage = uninterrupted
    out = tmp_path / "cut"
    _killed_in_first_last_save(tiny_config(toy_data, out), monkeypatch)
    stage = out / "liver"
    assert (stage / "model.safetensors").is_file() and (stage / "split.json").is_file()
    assert (stage / ".last-new").is_dir() and not (stage / "last").exists()
    from napari_livertumor.training.loop import resumable

    assert resumable(stage)  # (the Train panel offers Resume by it: it offered only Replace)
    # the plain command sends the user to --resume, saying what it will do
    with pytest.raises(InputError, match=r"first checkpoint .*--resume \(resume=True; Resume in"):
        run_all(tiny_config(toy_data, out))
    # --resume starts the run again, keeping its split, and ends as the run never stopped
    with caplog.at_level(logging.WARNING):
        resumed = run_all(tiny_config(toy_data, out, resume=True))
    assert "stopped while saving its first checkpoint" in caplog.text
    assert [r["step"] for r in resumed if r["event"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert resumed[-1]["event"] == "done"
    assert resumed[-1]["last_weights_digest"] == full[-1]["last_weights_digest"]
    assert (stage / "last" / "train_state.pt").is_file() and not (stage / ".last-new").exists()
    kept, drawn = (
        json.loads((folder / "split.json").read_text()) for folder in (stage, full_stage)
    )
    assert (kept["train"], kept["val"]) == (drawn["train"], drawn["val"])
    # a model with no state to resume at all (last/ deleted, a model copied in): --resume is
    # refused, so the plain command does not send the user there
    shutil.rmtree(stage / "last")
    assert not resumable(stage)
    with pytest.raises(InputError, match="no last/ state") as refused:
        run_all(tiny_config(toy_data, out))
    assert "--resume" not in str(refused.value) and "--force" in str(refused.value)
    with pytest.raises(InputError, match="no last/ state to resume; replace it"):
        run_all(tiny_config(toy_data, out, resume=True))


def test_a_run_killed_in_its_first_save_of_last_keeps_its_split_and_recipe_on_resume(
    toy_data, tmp_path, monkeypatch
):
    """Started again after a kill in its first save of last/, the run keeps the split its
    model was saved with (not one drawn again) and, resumed without --config, the settings the
    model records (the defaults had been taken); another recipe is refused as on any resume."""
    from napari_livertumor.cli import build_parser
    from napari_livertumor.commands.train import build_configs
    from napari_livertumor.training.loop import check_before_writing, resolve_split

    out = tmp_path / "cut"
    _killed_in_first_last_save(tiny_config(toy_data, out, batch_size=1), monkeypatch)
    stage = out / "liver"
    split = json.loads((stage / "split.json").read_text())
    # as if the split had been drawn otherwise (another version, a grown cohort): the model's
    moved = {**split, "train": split["train"][1:], "val": [*split["val"], split["train"][0]]}
    (stage / "split.json").write_text(json.dumps(moved))
    args = build_parser().parse_args(
        ["train", "--data", str(toy_data), "--out", str(out), "--stage", "liver", "--resume"]
    )
    (cfg,) = build_configs(args)
    assert cfg.roi_size == (16, 32, 32) and cfg.network.init_filters == 4
    assert (cfg.batch_size, cfg.steps_per_epoch, cfg.seed) == (1, 3, 3)
    check_before_writing(cfg, check_lock=False)
    ids = sorted({*split["train"], *split["val"], *split["test"]})
    assert sorted(resolve_split(cfg, ids)["val"]) == sorted(moved["val"])
    with pytest.raises(InputError, match="first checkpoint.*seed: run 3, now 5"):
        check_before_writing(dataclasses.replace(cfg, seed=5), check_lock=False)


def test_a_force_run_killed_in_its_first_save_of_last_never_resumes_the_run_it_replaced(
    toy_data, tmp_path, monkeypatch
):
    """A --force run killed while writing its first last/, before it saved a model of its own:
    the model (and state) beside it are the run it was replacing. --resume "started it again
    with its split" from that model (the replaced run's split and recipe), or went on with the
    replaced run's last/; it is refused, saying so, and --force starts the new run again."""
    import shutil

    from napari_livertumor.cli import build_parser
    from napari_livertumor.commands.train import build_configs
    from napari_livertumor.training.loop import check_before_writing, resumable

    out = tmp_path / "o"
    run_all(tiny_config(toy_data, out))  # the earlier run: a model, its split, its last/
    stage = out / "liver"
    replaced = (stage / "split.json").read_text()
    # the new run validates every 2nd epoch: its first save of last/ comes before any model
    new = tiny_config(toy_data, out, seed=5, val_every=2, overwrite=True)
    for keep_last in (True, False):  # the replaced run's state kept beside it, or none
        if not keep_last:
            shutil.rmtree(stage / "last")
        _killed_in_first_last_save(new, monkeypatch)
        assert (stage / ".last-new").is_dir() and (stage / "split.json").read_text() == replaced
        assert not resumable(stage)  # (the Train panel offers Resume by it)
        for cfg in (
            dataclasses.replace(new, overwrite=False, resume=True),
            tiny_config(toy_data, out, resume=True),  # the replaced run's own recipe
            dataclasses.replace(new, overwrite=False),
        ):
            said = r"replac.*--force.*stopped while saving its first checkpoint"
            with pytest.raises(InputError, match=said) as refused:
                check_before_writing(cfg, check_lock=False)
            assert "--resume would go on with the run it was replacing" in str(refused.value)
        # the command line's --resume without --config: refused too, not the replaced recipe
        args = build_parser().parse_args(
            ["train", "--data", str(toy_data), "--out", str(out), "--stage", "liver", "--resume"]
        )
        with pytest.raises(InputError, match="stopped while saving its first checkpoint"):
            check_before_writing(build_configs(args)[0], check_lock=False)
    # --force starts the new run again: its own split, to its end
    reports = run_all(new)
    assert reports[-1]["event"] == "done" and not (stage / ".last-new").exists()
    assert (
        json.loads((stage / "split.json").read_text())["train"]
        == json.loads((stage / "last" / "split.json").read_text())["train"]
    )
    assert (stage / "split.json").read_text() != replaced


def test_a_cli_resume_after_a_kill_mid_swap_takes_the_runs_own_recipe(toy_data, tmp_path):
    """Killed between the renames that swap last/ in, `--resume` without --config read the
    run's settings from last/ before the state was put back there: it went on with the
    defaults and was refused as "another recipe"."""
    import shutil

    from napari_livertumor.cli import build_parser
    from napari_livertumor.commands.train import build_configs
    from napari_livertumor.training.loop import check_before_writing

    out = tmp_path / "o"
    _stopped_after_two_steps(toy_data, out)
    stage = out / "liver"
    shutil.copytree(stage / "last", stage / ".last-new")  # the newer state, written whole
    os.replace(stage / "last", stage / ".last-old")  # the first of the two renames
    args = build_parser().parse_args(
        ["train", "--data", str(toy_data), "--out", str(out), "--stage", "liver", "--resume"]
    )
    (cfg,) = build_configs(args)
    assert cfg.roi_size == (16, 32, 32) and cfg.network.init_filters == 4
    check_before_writing(cfg, check_lock=False)  # puts the newer state back, refuses nothing
    assert (stage / "last" / "train_state.pt").is_file() and not (stage / ".last-new").exists()


def test_a_full_disk_while_saving_the_resume_state_says_so_and_keeps_the_last_one(
    toy_data, tmp_path, monkeypatch
):
    """torch.save says a full disk with a RuntimeError ("unexpected pos"): the run ended in a
    C++ traceback, not "cannot write the checkpoint … the previous checkpoint is kept", and
    left its partial state behind."""
    import torch

    out = tmp_path / "o"
    _stopped_after_two_steps(toy_data, out)
    stage = out / "liver"
    before = (stage / "last" / "train_state.pt").read_bytes()
    real = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if str(f).endswith(".train_state.pt.tmp"):
            Path(f).write_bytes(b"part of a state")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(LiverTumorError, match="cannot write the checkpoint .* previous checkpoint"):
        run_all(tiny_config(toy_data, out, resume=True))
    assert (stage / "last" / "train_state.pt").read_bytes() == before
    assert not (stage / ".last-new").exists()


def _disk_full_from_now(monkeypatch, folder_name: str, free: int) -> None:
    """Writes into ``folder_name`` (``.last-new``, ``.best-new``) fail as on a full disk (a part
    written first), and the disk then has ``free`` bytes."""
    import errno
    import shutil as shutil_module

    import torch

    from napari_livertumor.training import loop

    real_save, real_model, real_usage = torch.save, loop.save_model, shutil_module.disk_usage

    def full(path):
        Path(path).write_bytes(b"part")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    def save(obj, f, *args, **kwargs):
        return full(f) if Path(f).parent.name == folder_name else real_save(obj, f, *args, **kwargs)

    def save_model(folder, *args, **kwargs):
        if Path(folder).name == folder_name:
            Path(folder).mkdir(parents=True, exist_ok=True)
            return full(Path(folder) / "model.safetensors")
        return real_model(folder, *args, **kwargs)

    def usage(path):
        found = real_usage(path)
        return type(found)(found.total, found.total - free, free)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(loop, "save_model", save_model)
    monkeypatch.setattr(shutil_module, "disk_usage", usage)


def _size_said(text: str, what: str) -> float:
    """The size in bytes that ``text`` gives after ``what`` ("needs about 1.2 MB")."""
    import re

    number, unit = re.search(what + r" ([0-9.]+) (GB|MB|kB|bytes)", text).groups()
    return float(number) * {"GB": 1e9, "MB": 1e6, "kB": 1e3, "bytes": 1}[unit]


@pytest.mark.parametrize("when", ["resumed", "first save"])
def test_a_full_disk_at_a_checkpoint_says_which_step_is_kept_and_the_room_needed(
    toy_data, tmp_path, monkeypatch, when
):
    """The disk filled while the checkpoint was written: the message said "the previous
    checkpoint is kept" (also of a run that had none), not which step a resume would go on
    from, nor how much free space a save needs against what there is."""
    out = tmp_path / "o"
    stage = out / "liver"
    if when == "resumed":
        _stopped_after_two_steps(toy_data, out)  # last/ holds step 2
        sizes = sum(f.stat().st_size for f in (stage / "last").iterdir())
    _disk_full_from_now(monkeypatch, ".last-new", free=1000)
    with pytest.raises(LiverTumorError) as err:
        run_all(tiny_config(toy_data, out, resume=when == "resumed"))
    said = str(err.value)
    assert said.startswith(f"cannot write the checkpoint in {stage} (")
    assert "No space left on device" in said and "disk is full" not in said  # (said once)
    assert "; a save there needs about " in said and ", 1.0 kB is free" in said
    if when == "resumed":
        assert f"the previous checkpoint is kept: step 2's, in {stage / 'last'}" in said
        # about the size of the checkpoint already there (the same network and optimizer)
        assert 0.8 * sizes < _size_said(said, "needs about") < 1.2 * sizes
        assert (stage / "last" / "train_state.pt").is_file()
    else:
        assert "no checkpoint is kept (the run had written none yet)" in said
        assert "previous checkpoint" not in said
    assert not (stage / ".last-new").exists()
    assert (stage / "model.safetensors").is_file()  # the best model, saved before: still there


def test_a_full_disk_at_the_best_model_says_what_is_kept_and_the_room_needed(
    toy_data, tmp_path, monkeypatch
):
    """The disk filled while a new best model was written: "cannot write the model to …:
    [Errno 28] No space left on device" left unsaid which model the folder still held, which
    checkpoint a resume had, and how much room was wanted (its part-written files stayed)."""
    out = tmp_path / "o"
    stage = out / "liver"
    _stopped_after_two_steps(toy_data, out)  # last/ holds step 2; no model yet
    _disk_full_from_now(monkeypatch, ".best-new", free=1000)
    with pytest.raises(LiverTumorError) as err:
        run_all(tiny_config(toy_data, out, resume=True))
    said = str(err.value)
    assert said.startswith(f"cannot write the model to {stage}: ")
    assert "No space left on device" in said and "disk is full" not in said  # (said once)
    assert "; a save there needs about " in said and ", 1.0 kB is free" in said
    assert "the folder has no model yet" in said
    assert f"the previous checkpoint is kept: step 2's, in {stage / 'last'}" in said
    assert not (stage / ".best-new").exists()  # the part written gave its room back


@pytest.mark.parametrize("failing", ["metadata.json", "model.safetensors"])
def test_a_full_disk_moving_the_best_model_in_says_what_the_folder_holds(
    toy_data, tmp_path, monkeypatch, failing
):
    """The disk filled while epoch 1's best model was moved in: the message said "the folder's
    model is still step 3's", but the folder held step 6's weights beside step 3's
    metadata.json, and segment refused it ("stopped while it replaced this model's files…");
    when nothing had moved yet, the folder was refused all the same (.best-new/ was left)."""
    import errno

    from napari_livertumor.errors import ModelError

    real = os.replace
    moves = []

    def full_at_the_second_save(src, dst, *args, **kwargs):
        if str(src).endswith(f".best-new{os.sep}{failing}"):
            moves.append(src)
            if len(moves) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_at_the_second_save)
    stage = tmp_path / "liver"
    with pytest.raises(LiverTumorError) as err:
        run_all(tiny_config(toy_data, tmp_path, epochs=3))
    monkeypatch.setattr(os, "replace", real)
    said = str(err.value)
    assert said.startswith(f"cannot write the model to {stage}: ")
    assert "; a save there needs about " in said and "disk is full" not in said
    assert f"the previous checkpoint is kept: step 3's, in {stage / 'last'}" in said
    if failing == "metadata.json":  # the weights moved in: the folder is half step 6's
        assert "still step" not in said
        assert (
            "the new model (step 6's) was moved into the folder in part (model.safetensors; "
            "the rest is still in .best-new/): segment and evaluate refuse the folder until the "
            "same `livertumor train` command with --resume (Start then Resume in the Train "
            "panel) finishes the save" in said
        )
        with pytest.raises(ModelError, match="--resume finishes the save"):
            read_metadata(stage)
        run_all(tiny_config(toy_data, tmp_path, epochs=3, resume=True))
        assert read_metadata(stage).training["steps"] >= 6
    else:  # nothing moved: the folder's model is step 3's, whole
        assert "the folder's model is still step 3's" in said
        assert not (stage / ".best-new").exists()
        assert read_metadata(stage).training["steps"] == 3
        assert load_model(stage, stage="liver") is not None


def test_resume_over_a_grown_cohort_keeps_the_split_and_trains_on_the_new(
    toy_data, tmp_path, caplog
):
    """The seeded split was drawn again over the grown cohort: a first part's test patient was
    trained on in the second, and one of its training patients became a test patient."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    aside = tmp_path / "aside"
    aside.mkdir()
    for sub in ("imagesTr", "labelsTr"):
        (aside / sub).mkdir()
        for name in ("HCC_005.nii.gz", "HCC_006.nii.gz"):
            os.replace(data / sub / name, aside / sub / name)
    first = _stopped_after_two_steps(data, tmp_path / "out")
    for sub in ("imagesTr", "labelsTr"):
        for name in ("HCC_005.nii.gz", "HCC_006.nii.gz"):
            os.replace(aside / sub / name, data / sub / name)
    with caplog.at_level("WARNING"):
        run_all(tiny_config(data, tmp_path / "out", resume=True))
    second = json.loads((tmp_path / "out" / "liver" / "split.json").read_text())
    assert second["test"] == first["test"] and second["val"] == first["val"]
    assert second["train"] == first["train"] + ["HCC_005", "HCC_006"]
    assert "2 patient(s) new since the run started go to training" in caplog.text


def test_resume_over_renamed_data_keeps_its_held_out_patients_out_of_training(
    toy_data, tmp_path, caplog
):
    """A copy of the data with a test patient renamed: resumed, the "new" patient went to
    training, and the best model had seen the run's test patient. Data holding none of the
    run's patients was only warned of."""
    import shutil

    from napari_livertumor.errors import SettingsError

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    first = _stopped_after_two_steps(data, tmp_path / "out")
    [test_id] = first["test"][:1]
    for sub in ("imagesTr", "labelsTr"):  # the same files under another name
        os.replace(data / sub / f"{test_id}.nii.gz", data / sub / "renamed_case.nii.gz")
    with caplog.at_level("WARNING"):
        run_all(tiny_config(data, tmp_path / "out", resume=True, epochs=2))
    second = json.loads((tmp_path / "out" / "liver" / "last" / "split.json").read_text())
    assert "renamed_case" in second["test"] and "renamed_case" not in second["train"]
    assert "kept there, not trained on: renamed_case (was " in caplog.text
    # a split file given on resume that puts it in training: refused, not only warned of
    for sub in ("imagesTr", "labelsTr"):
        os.replace(data / sub / "renamed_case.nii.gz", data / sub / "again_renamed.nii.gz")
    given = tmp_path / "given.json"
    given.write_text(
        json.dumps({"train": [*second["train"], "again_renamed"], "val": second["val"], "test": []})
    )
    with pytest.raises(SettingsError, match="again_renamed \\(the run's test patient"):
        run_all(tiny_config(data, tmp_path / "out", resume=True, epochs=3, split_file=str(given)))
    # a folder with none of the run's patients: refused, not trained on as its own
    other = tmp_path / "other"
    (other / "imagesTr").mkdir(parents=True)
    (other / "labelsTr").mkdir()
    src = sorted((toy_data / "imagesTr").glob("*.nii.gz"))[:3]
    for k, f in enumerate(src):
        for sub in ("imagesTr", "labelsTr"):
            shutil.copy(toy_data / sub / f.name, other / sub / f"P{k}.nii.gz")
            # (not the same files: one voxel more of liver, so no fingerprint matches)
    import nibabel as nib

    for f in (other / "labelsTr").glob("*.nii.gz"):
        img = nib.load(f)
        arr = np.asarray(img.dataobj).copy()
        arr[0, 0, 0] = 1
        nib.save(nib.Nifti1Image(arr, img.affine, img.header), f)
    with pytest.raises(SettingsError, match="none of the .* patients of the split this run"):
        run_all(tiny_config(other, tmp_path / "out", resume=True, epochs=3))


def test_resumed_without_its_validation_patients_the_validated_model_stays_and_is_said(
    toy_data, tmp_path, caplog
):
    """It said "the one kept is the last weights", while the validated model stayed the
    folder's and only last/ moved on."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    run_all(tiny_config(data, tmp_path / "out", epochs=1))
    stage = tmp_path / "out" / "liver"
    model = (stage / "model.safetensors").read_bytes()
    split = json.loads((stage / "split.json").read_text())
    for case in split["val"]:
        for sub in ("imagesTr", "labelsTr"):
            (data / sub / f"{case}.nii.gz").unlink()
    with caplog.at_level("WARNING"):
        run_all(tiny_config(data, tmp_path / "out", resume=True, epochs=2))
    assert "the model validated earlier in this run stays the folder's model" in caplog.text
    assert (stage / "model.safetensors").read_bytes() == model


def test_resume_refuses_another_recipe_but_takes_a_new_learning_rate(toy_data, tmp_path):
    """Weights trained at one HU window and resumed at another would be recorded as trained at
    the second: refused, with what differs. Learning rate, epochs and data may change."""
    n = 0

    def cancel_after_two():
        return n >= 2

    for r in train(tiny_config(toy_data, tmp_path / "run"), should_cancel=cancel_after_two):
        n += r["event"] == "step"
    other = tiny_config(toy_data, tmp_path / "run", resume=True, hu_window=(-500.0, 500.0))
    with pytest.raises(
        InputError, match=r"hu_window: run \[-150.0, 250.0\], now \[-500.0, 500.0\]"
    ):
        run_all(other)
    bigger = tiny_config(toy_data, tmp_path / "run", resume=True, roi_size=(16, 48, 48))
    with pytest.raises(InputError, match="roi_size"):
        run_all(bigger)
    # the run keeps its split (last/split.json): another seed was not used, while the
    # metadata said it was
    reseeded = tiny_config(toy_data, tmp_path / "run", resume=True, seed=9)
    with pytest.raises(InputError, match=r"seed: run \d+, now 9"):
        run_all(reseeded)
    reports = run_all(tiny_config(toy_data, tmp_path / "run", resume=True, lr=1e-4))
    assert reports[-1]["event"] == "done"
    # its record unreadable: the recipe is not known, so a resume is refused (it went on with
    # another HU window and spacing without a word)
    meta = tmp_path / "run" / "liver" / "last" / "metadata.json"
    meta.write_text("garbage")
    with pytest.raises(InputError, match="missing, unreadable or records no training settings"):
        run_all(tiny_config(toy_data, tmp_path / "run", resume=True, hu_window=(-500.0, 500.0)))


def test_a_resume_whose_best_model_is_broken_saves_the_next_validations_in_its_place(
    toy_data, tmp_path, caplog
):
    """A best model cut short survived a resumed run that never beat its score ("done"), and
    segment then failed on it."""
    from napari_livertumor.models import load_model

    n = 0

    def cancel_after_epoch():  # the first epoch's validation has saved a best model
        return n >= 4

    for r in train(tiny_config(toy_data, tmp_path, epochs=3), should_cancel=cancel_after_epoch):
        n += r["event"] == "step"
    best = tmp_path / "liver" / "model.safetensors"
    assert best.is_file()
    best.write_bytes(best.read_bytes()[:1000])
    with caplog.at_level("WARNING"):
        reports = run_all(tiny_config(toy_data, tmp_path, epochs=3, resume=True))
    assert "the best model in" in caplog.text and "cannot be loaded" in caplog.text
    assert reports[-1]["event"] == "done"
    load_model(tmp_path / "liver", stage="liver")  # a model again
    # broken again, and no validation left to run (the run has reached its epochs): the final
    # weights replace it, said as such (it read "no validation patients")
    best.write_bytes(best.read_bytes()[:1000])
    caplog.clear()
    with caplog.at_level("WARNING"):
        run_all(tiny_config(toy_data, tmp_path, epochs=3, resume=True))
    assert "the final weights replace the best model" in caplog.text
    meta = load_model(tmp_path / "liver", stage="liver").metadata
    assert meta.metrics["note"] == "the best model was unreadable on resume; final weights"


@pytest.mark.parametrize("after", [2, 0])
def test_a_run_the_time_budget_stops_says_so(toy_data, tmp_path, caplog, monkeypatch, after):
    """It ended with a plain 'done' and nothing said the clock had stopped it (also when it ran
    out before the first step: an untrained model was saved as the result without a word)."""
    from napari_livertumor.training import loop

    real = loop._Run._should_stop

    def after_two_steps(self, should_cancel, t_start):  # the clock, read once `after` are done
        return "time" if self.state["step"] >= after else real(self, should_cancel, t_start)

    monkeypatch.setattr(loop._Run, "_should_stop", after_two_steps)
    with caplog.at_level("WARNING"):
        seen = []
        for r in train(tiny_config(toy_data, tmp_path, epochs=3, max_minutes=30)):
            seen.append(r)
            last = r
    assert last["event"] == "done" and last["step"] == after and last["planned_steps"] > 2
    notes = [r["text"] for r in seen if r["event"] == "note"]  # (the Train panel shows these)
    assert any(f"stopped the run at step {after}" in n for n in notes)
    # in the panel's words (its Time budget field), the command's in the log
    assert all("--max-minutes" not in n for n in notes), notes
    assert any(n.endswith("Start again with a larger Time budget, then Resume, to train on")
               for n in notes)  # fmt: skip
    assert f"the time budget (30 min, the whole run's) stopped the run at step {after} of" in (
        caplog.text
    )
    assert "--resume with a larger --max-minutes" in caplog.text


def test_the_step_before_the_time_budgets_final_validation_says_it_comes(
    toy_data, tmp_path, monkeypatch
):
    """The time budget ran out mid-epoch: the run validated once more before stopping, but the
    step before said no validation came, so the Train panel's bar sat at "step 2 / 9" with no
    "validating…" for the whole validation (and the command line printed nothing)."""
    import io

    from napari_livertumor.training import loop
    from napari_livertumor.training.cli_report import format_report, print_reports

    real = loop._Run._should_stop

    def out_of_time_after_two_steps(self, should_cancel, t_start):
        return "time" if self.state["step"] >= 2 else real(self, should_cancel, t_start)

    monkeypatch.setattr(loop._Run, "_should_stop", out_of_time_after_two_steps)
    reports = run_all(tiny_config(toy_data, tmp_path, epochs=3, max_minutes=30))
    ends = [r for r in reports if r["event"] in ("step", "epoch")]
    assert [(r["event"], r["step"]) for r in ends] == [("step", 1), ("step", 2), ("epoch", 2)]
    assert "val" in ends[-1]  # the budget's final validation
    assert [r["validates_next"] for r in ends[:2]] == [False, True]
    assert format_report(ends[1]).endswith("; validating…")
    assert reports[-1]["event"] == "done" and reports[-1]["step"] == 2
    # a step's wall time (its batch's loading included) and the time budget left: the time
    # left is worked out from them (cli_report.StepClock)
    for r in ends[:2]:
        assert r["interval_s"] >= r["seconds"] > 0
        assert r["val_every_steps"] == 3  # (a validation every epoch of 3 steps)
    assert 0 < ends[0]["budget_s"] <= 30 * 60
    # the step it ran out in says it has (it read "~1 s left" there), and the validation's
    # time is reported (the time left counts the validations to come at it)
    assert ends[1]["budget_s"] == 0.0 and ends[-1]["val_s"] > 0
    out = io.StringIO()
    print_reports(reports, out)
    assert "step 2/9 ep 1 " in out.getvalue()
    assert "; liver: time budget reached; validating…\n" in out.getvalue()


def _announced_validations(reports):
    """Whether each validation a run waits on was announced by the report before it: a step's
    ``validates_next``, a ``validating`` report or a resume's ``val_pending``."""
    shown = [r for r in reports if r["event"] in ("step", "epoch", "validating", "resumed")]
    return [
        i > 0
        and bool(
            shown[i - 1].get("validates_next")
            or shown[i - 1]["event"] == "validating"
            or shown[i - 1].get("val_pending")
        )
        for i, r in enumerate(shown)
        if r["event"] == "epoch" and "val" in r
    ]


def test_a_time_budget_spent_in_an_epochs_checkpoint_save_announces_the_final_validation(
    toy_data, tmp_path, monkeypatch
):
    """Validating every 2nd epoch, the time budget ran out while epoch 0 (not due a validation)
    saved its checkpoint: the run validated once more before stopping, with no step report
    saying so, and the Train panel's bar read "step 3 / 12" and the command line printed
    nothing for the whole validation."""
    from napari_livertumor.training import loop
    from napari_livertumor.training.cli_report import format_report

    real = loop._Run._should_stop

    def out_of_time_after_the_first_epoch(self, should_cancel, t_start):
        # read after each step (should_cancel None): still in time; before the next: out
        if should_cancel is not None and self.state["step"] >= 3:
            return "time"
        return real(self, should_cancel, t_start)

    monkeypatch.setattr(loop._Run, "_should_stop", out_of_time_after_the_first_epoch)
    cfg = tiny_config(toy_data, tmp_path, epochs=4, val_every=2, max_minutes=30)
    reports = run_all(cfg, should_cancel=lambda: False)
    ends = [r for r in reports if r["event"] in ("step", "epoch", "validating")]
    assert [(r["event"], r["step"]) for r in ends] == [
        ("step", 1), ("step", 2), ("step", 3), ("epoch", 3), ("validating", 3), ("epoch", 3)
    ]  # fmt: skip
    assert "val" not in ends[3] and "val" in ends[-1]  # (epoch 0: not due; the final one)
    assert _announced_validations(reports) == [True]
    assert ends[4]["total_steps"] == 12 and ends[4]["final"]
    assert format_report(ends[4]) == (
        "[liver] step 3/12: validating… (the final validation: the time budget ran out)"
    )
    assert reports[-1]["event"] == "done" and reports[-1]["step"] == 3


def test_a_resume_with_its_time_budget_spent_mid_epoch_announces_its_validation(toy_data, tmp_path):
    """Stopped after a step and resumed with its time budget already spent, the run recorded
    and validated the epoch the budget cut with no report before it saying so: the Train
    panel's bar and the command line sat still through the validation."""
    steps = []
    cut = tiny_config(toy_data, tmp_path, epochs=3)
    for r in train(cut, should_cancel=lambda: bool(steps)):
        if r["event"] == "step":
            steps.append(r)
    resumed = run_all(tiny_config(toy_data, tmp_path, epochs=3, max_minutes=1e-4, resume=True))
    ends = [r for r in resumed if r["event"] in ("step", "epoch", "validating")]
    assert [(r["event"], r["step"]) for r in ends] == [("validating", 1), ("epoch", 1)]
    assert "val" in ends[-1] and _announced_validations(resumed) == [True]


def test_the_command_line_says_a_validation_comes_before_it_runs():
    """`livertumor train` printed every 10th step only: an epoch's validation (minutes on real
    patients) followed step 30 of 37 with no line, as did the one a resume redoes first."""
    from napari_livertumor.training.cli_report import format_report

    step = {"event": "step", "stage": "liver", "step": 37, "total_steps": 370, "epoch": 0,
            "losses": {"total": 0.5}, "train_dice": None, "lr": 1e-3, "seconds": 1.0,
            "samples_per_s": 2.0}  # fmt: skip
    assert format_report(step) is None  # (thinned)
    line = format_report({**step, "validates_next": True})
    assert line.startswith("[liver] step 37/370 ep 1") and line.endswith("; validating…")
    resumed = {"event": "resumed", "stage": "liver", "step": 37, "total_steps": 370,
               "history": [{"step": 37}], "best": None}  # fmt: skip
    assert "validating" not in format_report(resumed)
    assert format_report({**resumed, "val_pending": True}).endswith(
        "; validating first: the stop had interrupted the validation"
    )
    # the time budget's final validation says so, one at the run's last step is no budget's
    validating = {"event": "validating", "stage": "liver", "step": 12, "total_steps": 12,
                  "final": True}  # fmt: skip
    assert format_report(validating) == "[liver] step 12/12: validating…"
    assert format_report({**validating, "step": 11}) == (
        "[liver] step 11/12: validating… (the final validation: the time budget ran out)"
    )


def test_a_replacing_run_that_fails_leaves_the_models_split_as_it_was(
    toy_data, tmp_path, monkeypatch
):
    """--force (the widget's Replace) that fails before saving a model must not rewrite the old
    model's split.json: evaluation would test the old model on patients it trained on."""
    from napari_livertumor.training import loop

    run_all(tiny_config(toy_data, tmp_path / "m"))
    split = tmp_path / "m" / "liver" / "split.json"
    before = split.read_bytes()

    def unusable_table(self, train_cases):  # e.g. a clinical table with no usable column
        raise InputError("clinical.csv", "none of the clinical columns is usable")

    monkeypatch.setattr(loop._Run, "_weak_labels", unusable_table)
    with pytest.raises(InputError, match="clinical"):
        run_all(tiny_config(toy_data, tmp_path / "m", overwrite=True, seed=7))
    assert split.read_bytes() == before


def test_a_cache_that_cannot_be_written_stops_the_run_instead_of_dropping_patients(
    toy_data, tmp_path
):
    """A write error of the cache (full disk, a folder where a file goes) is not a bad patient:
    the run stops and says where, rather than training on fewer patients."""
    cache = tmp_path / "cache"
    run_all(tiny_config(toy_data, tmp_path / "first", cache_dir=str(cache)))
    entry = next(cache.glob("liver/*.npz"))
    entry.unlink()
    entry.mkdir()  # the cache file's name is taken by a folder
    with pytest.raises(LiverTumorError, match="cannot write the preprocessing cache"):
        run_all(tiny_config(toy_data, tmp_path / "second", cache_dir=str(cache)))
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        run_all(tiny_config(toy_data, a_file))
    assert a_file.read_text() == "x"


def test_patients_left_out_while_indexing_are_recorded_in_the_split(toy_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    gone = sorted((data / "labelsTr").glob("*.nii.gz"))[-1]
    gone.unlink()
    cfg = tiny_config(data, tmp_path / "out", cache_dir=str(tmp_path / "c"), epochs=1,
                      steps_per_epoch=1)  # fmt: skip
    reports = run_all(cfg)
    info = next(r for r in reports if r["event"] == "info")
    assert info["n_skipped"] == 1
    split = json.loads((tmp_path / "out" / "liver" / "split.json").read_text())
    [entry] = split["skipped"]
    assert entry["case"] == gone.name.split(".")[0] and "no label file" in entry["reason"]


def test_stop_is_heard_while_preparing_data_and_before_an_epochs_validation(toy_data, tmp_path):
    """Stop during data preparation ends the run with nothing written (no untrained last/);
    Stop during an epoch's last step skips that epoch's validation."""
    cfg = tiny_config(toy_data, tmp_path / "a", cache_dir=str(tmp_path / "fresh_cache"))
    reports = run_all(cfg, should_cancel=lambda: True)
    assert [r["event"] for r in reports] == ["cancelled"] and reports[0]["last"] is None
    assert not (tmp_path / "a" / "liver" / "last").exists()

    steps = 0

    def stop_in_last_step():
        return steps >= 3  # steps_per_epoch is 3

    events = []
    for r in train(tiny_config(toy_data, tmp_path / "b"), should_cancel=stop_in_last_step):
        steps += r["event"] == "step"
        if r["event"] != "prepare":
            events.append(r["event"])
    assert events == ["info", "step", "step", "step", "cancelled"]  # no epoch/validation
    assert (tmp_path / "b" / "liver" / "last" / "train_state.pt").is_file()


def test_the_data_preparation_reports_its_progress_and_stops_with_the_run(toy_data, tmp_path):
    """Reading and resampling many patients' CT comes before the first step: it is reported
    patient by patient (the panel and the console said nothing for many minutes), and a run
    closed meanwhile (Ctrl-C) leaves no preparing thread behind."""
    import threading

    from napari_livertumor.training.cli_report import format_report

    cfg = tiny_config(toy_data, tmp_path / "a", cache_dir=str(tmp_path / "cache"), epochs=1)
    reports = list(train(cfg))
    prep = [r for r in reports if r["event"] == "prepare"]
    first_other = next(i for i, r in enumerate(reports) if r["event"] != "prepare")
    assert reports[first_other]["event"] == "info" and len(prep) == first_other
    info = reports[first_other]
    n = info["n_train"] + info["n_val"]
    assert [(r["done"], r["total"]) for r in prep if r["phase"] == "prepare"] == [
        (i, n) for i in range(n + 1)
    ]
    assert all(r["case"].startswith("HCC_") for r in prep[:-1]) and prep[-1]["case"] is None
    lines = [format_report(r) for r in prep]
    assert lines[0] == f"[liver] preparing training/validation patient 1/{n} ({prep[0]['case']})"
    assert lines[-1] == f"[liver] {n} training/validation patient(s) read (any left out are said)"

    run = train(tiny_config(toy_data, tmp_path / "b", cache_dir=str(tmp_path / "fresh")))
    assert next(run)["event"] == "prepare"
    run.close()  # what Ctrl-C does to the generator
    assert not [t for t in threading.enumerate() if t.name == "livertumor-prepare"]


def test_a_tumor_free_validation_set_is_said_not_scored_zero(toy_data, tmp_path, caplog):
    """With no tumor in any validation patient, the 'validation Dice 0.000 (best so far)' of
    every epoch was a convention, not a measurement: it is said once, and shown as none."""
    import shutil

    import nibabel as nib

    from napari_livertumor.training.cli_report import format_report

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    path = data / "labelsTr" / "HCC_002.nii.gz"
    img = nib.load(path)
    labels = np.asarray(img.dataobj).copy()
    assert (labels == 2).any()
    labels[labels == 2] = 1  # this patient's tumor becomes liver
    nib.save(nib.Nifti1Image(labels, img.affine, img.header), path)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001", "HCC_003", "HCC_004"], "val": ["HCC_002"],
                                 "test": ["HCC_005", "HCC_006"]}))  # fmt: skip
    cfg = tiny_config(data, tmp_path / "out", stage="tumor", split_file=str(split),
                      cache_dir=str(tmp_path / "cache"), weak_lambda=0.0,
                      steps_per_epoch=1)  # fmt: skip
    with caplog.at_level("WARNING"):
        reports = run_all(cfg)
    [note] = [r for r in reports if r["event"] == "note"]
    assert "none of the 1 validation patients has a tumor" in note["text"]
    assert "last weights, not the best validated" in note["text"] and note["text"] in caplog.text
    epochs = [r for r in reports if r["event"] == "epoch"]
    assert len(epochs) == 2 and all(r["val_dice"] is None for r in epochs)
    assert all(r["val"]["n_val_with_class"] == 0 for r in epochs)
    assert "validation not measured" in format_report(epochs[-1])
    assert reports[-1]["event"] == "done" and reports[-1]["best_val_dice"] is None
    # the model kept is not said to score a Dice of 0 either (the done line, train.log, panel)
    assert reports[-1]["model_kept"].endswith(
        "validation Dice not measured (no validation patient has the class)"
    ), reports[-1]["model_kept"]
    # resumed, the run so far shows no Dice of 0 either (a panel's plot would draw them)
    again = run_all(dataclasses.replace(cfg, epochs=3, resume=True))
    [so_far] = [r for r in again if r["event"] == "resumed"]
    assert len(so_far["history"]) == 2 and so_far["best"] is None
    # the model in the folder is still the run's own, saved by its (unmeasured) validations
    assert so_far["has_best"] is True
    assert all(h["val_score"] is None for h in so_far["history"])
    assert format_report(so_far).endswith("(2 epoch(s) recorded)")
    # a validation set with a tumor is measured as before
    measured = run_all(
        tiny_config(toy_data, tmp_path / "ok", stage="tumor", epochs=1, steps_per_epoch=1)
    )
    [epoch] = [r for r in measured if r["event"] == "epoch"]
    assert epoch["val"]["n_val_with_class"] >= 1 and epoch["val_dice"] == epoch["val"]["score"]
    assert not [r for r in measured if r["event"] == "note"]


def test_a_data_folder_without_labels_is_refused_clearly(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    with pytest.raises(InputError, match="labelsTr"):
        run_all(tiny_config(tmp_path, tmp_path / "out"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no labelled cases"):
        run_all(tiny_config(empty, tmp_path / "out"))


def test_a_patient_whose_ground_truth_has_no_liver_is_skipped_with_a_reason(toy_data, tmp_path):
    """A SEG without its Liver segment (here a label file of tumor only) was trained on: its
    tumor counted as the whole liver (a tumor-to-liver ratio near 1 for the weak fit)."""
    import shutil

    from napari_livertumor.io.nifti import read_nifti, write_nifti

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    path = data / "labelsTr" / "HCC_002.nii.gz"
    lab = read_nifti(path)
    tumor_only = np.where(lab.array == 2, 2, 0).astype(np.uint8)
    assert tumor_only.any()
    write_nifti(lab.with_array(tumor_only), path)
    reports = run_all(tiny_config(data, tmp_path / "out", epochs=1, steps_per_epoch=1))
    assert reports[0]["n_skipped"] == 1
    split = json.loads((tmp_path / "out" / "liver" / "split.json").read_text())
    [skip] = split["skipped"]
    assert skip["case"] == "HCC_002" and "has no liver" in skip["reason"]
    assert "class(es) 2 only" in skip["reason"]


def test_a_patient_whose_labels_do_not_fit_its_ct_is_skipped_with_a_reason(
    toy_data, tmp_path, caplog
):
    import shutil

    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    cfg = tiny_config(data, tmp_path / "out", epochs=1, steps_per_epoch=1)
    ids = [f"HCC_{i:03d}" for i in range(1, 7)]
    drawn = make_split(ids, cfg.seed, val_fraction=cfg.val_fraction)
    victim, [val_victim] = drawn["train"][0], drawn["val"]
    for case in (victim, val_victim):
        write_nifti(CTVolume(np.zeros((4, 8, 8), np.uint8)), data / "labelsTr" / f"{case}.nii.gz")
    with caplog.at_level("WARNING"):
        reports = run_all(cfg)
    assert reports[0]["n_skipped"] == 2
    split = json.loads((tmp_path / "out" / "liver" / "split.json").read_text())
    assert {s["case"] for s in split["skipped"]} == {victim, val_victim}
    assert all("does not match" in s["reason"] for s in split["skipped"])
    # the lists name only the patients trained and validated on (they contradicted skipped)
    assert victim not in split["train"] and split["val"] == []
    assert f"no validation patients (all 1 left out: {val_victim})" in caplog.text

    # fixed and resumed: each is tried again in the list it was drawn into, not as "new"
    for case in (victim, val_victim):
        shutil.copy(toy_data / "labelsTr" / f"{case}.nii.gz", data / "labelsTr" / f"{case}.nii.gz")
    caplog.clear()
    resumed = run_all(tiny_config(data, tmp_path / "out", epochs=2, steps_per_epoch=1, resume=True))
    assert resumed[0]["n_skipped"] == 0 and "new since the run started" not in caplog.text
    split = json.loads((tmp_path / "out" / "liver" / "split.json").read_text())
    assert victim in split["train"] and split["val"] == [val_victim]


def test_a_clinical_table_matching_no_patient_is_refused_clearly(toy_data, tmp_path):
    bad = tmp_path / "clinical.csv"
    bad.write_text("TCIA_ID,AFP,age\nXYZ_1,10,50\nXYZ_2,20,60\n")
    cache = tmp_path / "cache"
    cfg = tiny_config(
        toy_data,
        tmp_path / "out",
        stage="tumor",
        clinical=str(bad),
        weak_lambda=0.5,
        cache_dir=str(cache),
    )
    with pytest.raises(InputError, match="no clinical row matches") as err:
        run_all(cfg)
    assert "XYZ_1" in str(err.value) and "['" not in str(err.value)
    # refused once the patients were indexed, before any scan was prepared (the Train panel's
    # runs come here without the command's own check; preparing a real cohort takes long)
    assert not cache.exists() or not any(cache.rglob("*.npz"))


def test_the_cli_trains_both_stages_from_a_recipe(toy_data, tmp_path, capsys, caplog):
    import shutil

    from napari_livertumor.cli import main

    recipe = {
        "common": {
            "epochs": 1,
            "steps_per_epoch": 2,
            "roi_size": [16, 32, 32],
            "target_spacing": [2.5, 2.0, 2.0],
            "network": TINY_NET,
            "weak_columns": WEAK_COLUMNS,
        }
    }
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    (data / "labelsTr" / "HCC_006.nii.gz").unlink()  # one patient without labels
    with caplog.at_level("WARNING"):
        rc = main(
            ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--config",
             str(tmp_path / "recipe.json"), "--weak-lambda", "0.2"]
        )  # fmt: skip
    assert rc == 0
    # said once, not once in preprocessing and again in each stage
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "HCC_006" in r.message]
    assert len(warned) == 1, [r.message for r in warned]
    out = capsys.readouterr().out
    assert "training the liver model" in out and "training the tumor model" in out
    assert (
        "   preparing training/validation patient 1/4 (HCC_" in out
        and "   4 training/validation patient(s) read (any left out are said)" in out
    )
    assert read_metadata(tmp_path / "m" / "liver").stage == "liver"
    assert read_metadata(tmp_path / "m" / "tumor").training["config"]["weak_lambda"] == 0.2


def test_a_recipe_with_a_typo_is_refused(tmp_path):
    from napari_livertumor.training.config import load_recipe

    (tmp_path / "r.json").write_text(json.dumps({"common": {"epochz": 3}}))
    with pytest.raises(InputError, match="epochz"):
        load_recipe(tmp_path / "r.json")


@pytest.mark.parametrize(
    ("recipe", "said"),
    [
        ({"common": {"epochs": "3"}}, "epochs must be a whole number, got '3'"),
        ({"common": {"amp": "no"}}, "amp must be true or false"),  # "no" was read as true
        ({"common": {"seed": "x"}}, "seed must be a whole number"),
        ({"common": [1, 2]}, "section 'common' must be an object"),
        ({"liver": "fast"}, "section 'liver' must be an object"),
        ({"common": {"network": "big"}}, "network must be an object"),
        ({"common": {"roi_size": [0, 32, 32]}}, "roi_size values must be at least 1"),
        ({"common": {"target_spacing": [-2.5, 2, 2]}}, "target_spacing values must be at least"),
        ({"common": {"hu_window": [-100, "nan"]}}, "hu_window must be a list of finite numbers"),
        ({"liver": {"network": {"out_channels": 5}}}, "out_channels must be 2 for the liver"),
        ({"common": {"network": {"in_channels": 2}}}, "in_channels must be 1"),
        # trained, it would be a model no loader takes
        ({"common": {"network": {"init_filters": 160}}}, "init_filters 160 is beyond 128"),
        ({"common": {"network": {"blocks_down": [1, 2, 2, 99]}}}, "beyond 8 levels of at most"),
        ({"common": {"hu_window": [-200000, 300000]}}, "must lie within ±100000 HU"),
        ({"tumor": {"outside_hu": -1e7}}, "must lie within ±100000 HU"),
        ({"tumor": {"roi_margin_mm": 5000}}, "roi_margin_mm must be at most 1000"),
        ({"common": {"optimizer": "sgd"}}, "optimizer must be one of"),  # was AdamW, said sgd
        ({"common": {"fg_ratio": 2}}, "fg_ratio must be in [0, 1]"),
        ({"common": {"num_workers": -1}}, "num_workers must be >= 0"),
        ({"common": {"test_fraction": 1}}, "test_fraction must be in [0, 1)"),
        ({"common": {"epochs": 1.5}}, "epochs must be a whole number"),
    ],
)
def test_recipe_values_of_the_wrong_type_or_range_are_refused_by_name(tmp_path, recipe, said):
    """Each of these trained into an unusable model, crashed later with a traceback, or was
    silently read as something else."""
    from napari_livertumor.training.config import load_recipe

    (tmp_path / "r.json").write_text(json.dumps(recipe))
    with pytest.raises(InputError, match=re.escape(said)):
        load_recipe(tmp_path / "r.json")


def test_whole_floats_and_numpy_numbers_are_taken():
    cfg = make_config("liver", {"common": {"epochs": 3.0}}, seed=np.int64(4), lr=np.float32(1e-3))
    assert cfg.epochs == 3 and isinstance(cfg.epochs, int) and cfg.seed == 4


def test_validation_picks_the_logit_shift_that_undoes_an_over_eager_class():
    import torch

    from napari_livertumor.training.data import PreparedCase
    from napari_livertumor.training.loop import validate

    class Eager(torch.nn.Module):
        """Tumor where x < 0.5 is right, but the tumor logit carries +2: it over-calls."""

        def forward(self, x):
            tumor = 10 * (0.5 - x) + 2.0
            return torch.cat([torch.full_like(x, -5.0), torch.zeros_like(x), tumor], 1), None

    zz = np.broadcast_to(np.linspace(0, 1, 32, dtype=np.float32)[None, None], (16, 32, 32))
    image = np.ascontiguousarray(zz)  # a ramp along x; truth: tumor where x < 0.5
    labels = np.where(image < 0.5, 2, 1).astype(np.uint8)
    case = PreparedCase("A", image.astype(np.float16), labels, (1.0, 1.0, 1.0), 0.5)
    cfg = make_config("tumor", roi_size=(16, 32, 32), network=TINY_NET)
    scores = validate(Eager(), [case], cfg, torch.device("cpu"))
    assert scores["logit_bias"] == -2.0
    assert scores["val_dice_tumor"] == pytest.approx(1.0, abs=0.02)
    assert scores["val_dice_tumor_unshifted"] < scores["val_dice_tumor"]
    assert scores["score"] == scores["val_dice_tumor"]


def test_validation_sees_the_windows_inference_uses():
    """Liver: one grown window (InferenceConfig.window_growth); tumor: the trained window and a
    grown one, averaged (tumor_window_growth) — the shift it picks is then the one inference
    needs."""
    import torch

    from napari_livertumor.training.data import PreparedCase
    from napari_livertumor.training.loop import validate

    class Recorder(torch.nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.channels, self.shapes = channels, set()

        def forward(self, x):
            self.shapes.add(tuple(x.shape[2:]))
            return torch.cat([torch.zeros_like(x)] * self.channels, 1), None

    image = np.zeros((16, 96, 96), np.float16)
    for stage, channels, expected in (
        ("liver", 2, {(16, 96, 96)}),
        ("tumor", 3, {(16, 32, 32), (16, 96, 96)}),
    ):
        labels = np.ones((16, 96, 96), np.uint8)
        case = PreparedCase("A", image, labels, (1.0, 1.0, 1.0), 0.5)
        cfg = make_config(stage, roi_size=(16, 32, 32), network=TINY_NET)
        net = Recorder(channels)
        validate(net, [case], cfg, torch.device("cpu"))
        assert net.shapes == expected, stage


def test_fine_tuning_starts_from_an_existing_models_weights(toy_data, tmp_path, caplog):
    from napari_livertumor.errors import LiverTumorError, ModelError
    from napari_livertumor.provenance import file_digest

    run_all(tiny_config(toy_data, tmp_path / "a", epochs=1, steps_per_epoch=4))
    base = load_model(tmp_path / "a" / "liver", stage="liver").network.state_dict()
    # a calibrated lesion filter on the base model (as the shipped ones carry) is kept
    meta_path = tmp_path / "a" / "liver" / "metadata.json"
    raw = json.loads(meta_path.read_text())
    raw["lesion_filter"] = {"min_ml": 0.1, "min_peak": 2.0}
    raw["logit_bias"] = [0.0, 5.0]  # a threshold no validation picks: replaced, and said
    meta_path.write_text(json.dumps(raw))
    # a learning rate of ~0: one step leaves the trunk where the base model had it
    caplog.set_level("WARNING")
    reports = run_all(
        tiny_config(
            toy_data,
            tmp_path / "b",
            epochs=1,
            steps_per_epoch=1,
            lr=1e-12,
            warmup_steps=0,
            init_from=str(tmp_path / "a" / "liver"),
        )
    )
    assert reports[-1]["event"] == "done"
    tuned = load_model(tmp_path / "b" / "liver", stage="liver")
    assert tuned.metadata.training["init_from"]["folder"] == str(tmp_path / "a" / "liver")
    start = read_metadata(tmp_path / "a" / "liver").metrics
    recorded = tuned.metadata.training["init_from"]["metrics"]  # it was always {}
    assert recorded and recorded["val_dice_liver"] == start["val_dice_liver"]
    assert tuned.metadata.lesion_filter == {"min_ml": 0.1, "min_peak": 2.0}
    # where it started, by its files and its threshold (--init default names the installed
    # package's, which a later version replaces)
    init = tuned.metadata.training["init_from"]
    assert init["weights_sha1"] == file_digest(tmp_path / "a" / "liver" / "model.safetensors")
    assert init["logit_bias"] == [0.0, 5.0]
    assert "decision threshold (logit shift) is" in caplog.text
    assert "the starting model's was +5" in caplog.text
    # the run's warnings in its folder too, between its start and end (the terminal's gone)
    run_log = (tmp_path / "b" / "liver" / "train.log").read_text()
    assert "run started: liver stage" in run_log and ", from " in run_log
    assert "decision threshold (logit shift) is" in run_log
    assert "run ended: finished, model saved (at step 1; model kept: step 1" in run_log
    for k, v in tuned.network.state_dict().items():
        if v.is_floating_point():
            np.testing.assert_allclose(v.numpy(), base[k].numpy(), atol=2e-3, err_msg=k)
    # without --init the same run starts elsewhere
    run_all(tiny_config(toy_data, tmp_path / "c", epochs=1, steps_per_epoch=1, lr=1e-12))
    fresh = load_model(tmp_path / "c" / "liver", stage="liver").network.state_dict()
    k = next(k for k, v in fresh.items() if v.is_floating_point() and v.ndim == 5)
    assert not np.allclose(fresh[k].numpy(), base[k].numpy(), atol=2e-3)
    # resumed with another starting model named: refused (it went on from last/ while its
    # metadata named that folder beside the one it started from); its own is fine
    from napari_livertumor.errors import InputError

    other, own = str(tmp_path / "c" / "liver"), str(tmp_path / "a" / "liver")
    with pytest.raises(InputError, match="this run started from .*a/liver, not "):
        run_all(tiny_config(toy_data, tmp_path / "b", resume=True, epochs=2, init_from=other))
    with pytest.raises(InputError, match=r"started from scratch \(no --init / init_from\)"):
        run_all(tiny_config(toy_data, tmp_path / "c", resume=True, epochs=2, init_from=own))
    again = dict(resume=True, epochs=2, steps_per_epoch=1, lr=1e-12, warmup_steps=0)
    assert run_all(tiny_config(toy_data, tmp_path / "b", init_from=own, **again))[-1]["event"] == (
        "done"
    )

    with pytest.raises(ModelError, match="tumor"):  # a liver model for the tumor stage
        run_all(
            tiny_config(
                toy_data, tmp_path / "d", stage="tumor", init_from=str(tmp_path / "a" / "liver")
            )
        )
    bigger = dict(TINY_NET, init_filters=8)
    with pytest.raises(LiverTumorError, match="network"):
        run_all(
            tiny_config(
                toy_data, tmp_path / "e", network=bigger, init_from=str(tmp_path / "a" / "liver")
            )
        )
    with pytest.raises(ModelError):
        run_all(tiny_config(toy_data, tmp_path / "f", init_from=str(tmp_path / "nowhere")))
    from napari_livertumor.models.ensemble import make_ensemble

    ens = make_ensemble(tmp_path / "ens", [tmp_path / "a" / "liver", tmp_path / "b" / "liver"])
    with pytest.raises(LiverTumorError, match="ensemble of 2"):
        run_all(tiny_config(toy_data, tmp_path / "g", init_from=str(ens)))


def test_a_group_norm_network_trains_loads_and_fine_tunes(toy_data, tmp_path):
    """MONAI SegResNet's default norm (group) could not be named in a recipe or a model."""
    import torch

    from napari_livertumor.errors import SettingsError

    group_net = {**TINY_NET, "norm": "group", "norm_groups": 2}
    short = dict(epochs=1, steps_per_epoch=2, warmup_steps=0)
    reports = run_all(tiny_config(toy_data, tmp_path / "a", network=group_net, **short))
    assert reports[-1]["event"] == "done"
    loaded = load_model(tmp_path / "a" / "liver", stage="liver")
    assert loaded.metadata.network.norm == "group" and loaded.metadata.network.norm_groups == 2
    norms = [m for m in loaded.network.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and {m.num_groups for m in norms} == {2}
    # fine-tuned (--init) with the model's own network (the recipe --init takes without
    # --config), or a recipe's that is the same
    from napari_livertumor.training.config import recipe_from_model

    init = str(tmp_path / "a" / "liver")
    own = recipe_from_model(init, "liver")
    assert own["liver"]["network"]["norm_groups"] == 2
    assert make_config("liver", own).network == loaded.metadata.network
    cfg = tiny_config(toy_data, tmp_path / "b", network=group_net, init_from=init, **short)
    assert run_all(cfg)[-1]["event"] == "done"
    assert load_model(tmp_path / "b" / "liver").metadata.network.groups == 2
    with pytest.raises(LiverTumorError, match=r"norm_groups: model 2, recipe 4"):
        run_all(
            tiny_config(
                toy_data, tmp_path / "c", network={**group_net, "norm_groups": 4}, init_from=init
            )
        )
    # a count the VAE branch's 16 channels cannot take: refused before any work
    with pytest.raises(SettingsError, match="norm_groups 32 does not divide 16"):
        tiny_config(
            toy_data, tmp_path / "d", network={**group_net, "init_filters": 32, "norm_groups": 32}
        )


def test_fine_tuning_from_the_cli_takes_the_models_own_recipe(tmp_path, capsys):
    """``livertumor train --init resources/models/tumor`` without --config: the shipped model's
    network and geometry (the weights must fit), the run settings from the command line."""
    from napari_livertumor.cli import build_parser, main
    from napari_livertumor.commands.train import build_configs
    from napari_livertumor.models import default_model_dir

    shipped = default_model_dir("tumor")
    meta = read_metadata(shipped)
    args = build_parser().parse_args(
        ["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--stage", "tumor",
         "--init", str(shipped), "--epochs", "3", "--lr", "1e-4"]
    )  # fmt: skip
    (cfg,) = build_configs(args)
    assert cfg.init_from == str(shipped)
    assert cfg.network.to_dict() == meta.network.to_dict()
    assert cfg.roi_size == meta.roi_size and cfg.target_spacing == meta.target_spacing
    assert cfg.hu_window == meta.hu_window and cfg.mask_outside_liver
    assert cfg.epochs == 3 and cfg.lr == 1e-4 and cfg.data == str(tmp_path)
    # a liver model offered to the tumor stage: a clear message, no traceback
    rc = main(
        ["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--stage", "tumor",
         "--init", str(default_model_dir("liver"))]
    )  # fmt: skip
    assert rc != 0
    assert "not a tumor model" in capsys.readouterr().err

    # a relative --init is recorded as a full path (it meant nothing from another folder,
    # and a resume given the full path was refused as another start)
    import shutil

    from napari_livertumor.training.loop import _same_folder

    shutil.copytree(shipped, tmp_path / "start" / "tumor")
    here = Path.cwd()
    try:
        os.chdir(tmp_path)
        args = build_parser().parse_args(
            ["train", "--data", ".", "--out", "o", "--stage", "tumor", "--init", "start/tumor"]
        )
        (cfg,) = build_configs(args)
    finally:
        os.chdir(here)
    assert cfg.init_from == str(tmp_path / "start" / "tumor")
    # a run recorded before with the relative path: the same start
    assert _same_folder(str(tmp_path / "start" / "tumor"), "start/tumor")
    assert not _same_folder(str(tmp_path / "start" / "tumor"), "other/tumor")


@pytest.mark.parametrize(
    "bad",
    [
        {"epochs": 0},
        {"steps_per_epoch": 0},
        {"batch_size": 0},
        {"lr": -1.0},
        {"lr": float("nan")},
        {"weak_lambda": -1.0},
        {"max_minutes": 0.0},
        {"folds": 1},
        {"folds": 3, "fold": 5},
        {"fold": 1},
        {"device": "gpu"},
    ],
)
def test_out_of_range_training_settings_are_refused_by_name(bad):
    from napari_livertumor.errors import SettingsError
    from napari_livertumor.training.config import TrainConfig

    with pytest.raises(SettingsError, match=next(iter(bad))):
        TrainConfig(stage="liver", **bad)


def test_sigterm_during_cli_training_is_a_ctrl_c_so_last_is_saved():
    """Job schedulers stop with SIGTERM: inside `livertumor train` it raises KeyboardInterrupt
    (which the loop answers by saving last/), and the previous handler comes back after."""
    import os
    import signal

    from napari_livertumor.errors import Terminated
    from napari_livertumor.signals import HeldStops, sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next line
        time.sleep(1)  # never reached
    assert signal.getsignal(signal.SIGTERM) is before
    # a signal held for the end of a training step is raised as the signal it was
    finished = []
    for sig, raised in ((signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)):
        with pytest.raises(raised) as info, sigterm_as_interrupt(), HeldStops():
            os.kill(os.getpid(), sig)
            finished.append(sig)  # held: the step goes on to its end
        assert isinstance(info.value, Terminated) == (sig == signal.SIGTERM)
    assert finished == [signal.SIGTERM, signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_stop_during_a_held_step_stops_it_at_once():
    """A first Ctrl-C (or SIGTERM) is held to the end of the training step; a second one
    during the same step raises at once, so a step that hangs can still be stopped."""
    import signal

    from napari_livertumor.errors import Terminated
    from napari_livertumor.signals import HeldStops

    for sig, raised in ((signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)):
        reached = []
        with pytest.raises(raised), HeldStops():
            os.kill(os.getpid(), sig)
            reached.append("held")
            os.kill(os.getpid(), sig)  # the handler runs before the next line
            reached.append("after the second")
        assert reached == ["held"], sig


def test_a_stop_by_sigterm_exits_143_and_says_so(toy_data, tmp_path, capsys, monkeypatch):
    """A shell's status for a process SIGTERM ended is 128 + 15; schedulers and scripts tell a
    stop from a Ctrl-C (130) by it. It was 130 for both."""
    import signal

    import napari_livertumor.training.loop as loop
    from napari_livertumor.cli import main

    def terminated(cfg, **kw):
        os.kill(os.getpid(), signal.SIGTERM)
        yield  # a generator, as train is

    monkeypatch.setattr(loop, "train", terminated)
    rc = main(["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "liver"])
    assert rc == 143
    err = capsys.readouterr().err
    assert "livertumor: stopped (SIGTERM)" in err and "stopped before the liver run" in err


def test_resume_and_force_together_are_refused(capsys):
    """--resume won silently: a user who wanted a fresh model got a resumed one."""
    from napari_livertumor.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", "--data", "d", "--out", "o", "--resume", "--force"])
    assert info.value.code == 2
    assert "not allowed with argument --resume" in capsys.readouterr().err


def test_init_default_and_a_recipe_by_name_work_outside_a_source_checkout(tmp_path, monkeypatch):
    import argparse

    from napari_livertumor.commands import train as train_cmd
    from napari_livertumor.models import default_model_dir

    monkeypatch.chdir(tmp_path)  # no configs/ or resources/ here
    parser = argparse.ArgumentParser()
    train_cmd.add_arguments(parser)
    args = parser.parse_args(["--data", "d", "--out", "o", "--stage", "both", "--init", "default"])
    configs = train_cmd.build_configs(args)
    assert [c.init_from for c in configs] == [str(default_model_dir(s)) for s in ("liver", "tumor")]
    # a run's folder (liver/, tumor/) for one stage: that stage's model in it (it said "no
    # metadata.json here: not a napari-livertumor model folder")
    shipped = str(default_model_dir("tumor").parent)
    args = parser.parse_args(["--data", "d", "--out", "o", "--stage", "tumor", "--init", shipped])
    [config] = train_cmd.build_configs(args)
    assert config.init_from == str(default_model_dir("tumor"))
    args = parser.parse_args(["--data", "d", "--out", "o", "--config", "configs/hcc_tace_gpu.json"])
    assert train_cmd.build_configs(args)  # the built-in recipe of that name
    # an edited copy given with a wrong folder fails; it is never swapped for the stock recipe
    args = parser.parse_args(["--data", "d", "--out", "o", "--config", "mine/default_cpu.json"])
    with pytest.raises(InputError, match="not found"):
        train_cmd.build_configs(args)
    args = parser.parse_args(["--data", "d", "--out", "o", "--config", "nosuch.json"])
    with pytest.raises(InputError, match="built-in recipes, by name: .*hcc_tace_gpu"):
        train_cmd.build_configs(args)


def test_ctrl_c_before_anything_is_saved_does_not_claim_a_saved_state(
    toy_data, tmp_path, capsys, monkeypatch
):
    import napari_livertumor.training.loop as loop
    from napari_livertumor.cli import main

    def interrupted(cfg, **kw):
        raise KeyboardInterrupt
        yield  # a generator, as train is

    monkeypatch.setattr(loop, "train", interrupted)
    rc = main(["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "liver"])
    assert rc == 130
    err = capsys.readouterr().err
    assert "stopped before the liver run saved anything" in err and "--resume" not in err
    # a --force run stopped before its first save: the state there is the replaced run's
    old = tmp_path / "o" / "liver" / "last"
    old.mkdir(parents=True)
    (old / "train_state.pt").write_bytes(b"the replaced run")
    os.utime(old / "train_state.pt", (1e9, 1e9))
    (tmp_path / "o" / "liver" / "model.safetensors").write_bytes(b"")
    rc = main(["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "liver",
               "--force"])  # fmt: skip
    assert rc == 130
    assert "stopped before the liver run saved anything" in capsys.readouterr().err


def test_a_missing_clinical_table_is_said_before_the_liver_stage_trains(toy_data, tmp_path, capsys):
    """It was found only after the liver stage had trained (hours, on real data)."""
    from napari_livertumor.cli import main

    rc = main(["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "both",
               "--clinical", str(tmp_path / "nope.xlsx")])  # fmt: skip
    assert rc == 1
    assert "nope.xlsx: clinical table not found" in capsys.readouterr().err
    assert not (tmp_path / "o" / "liver").exists()
    # a file that is no clinical table: said as soon, and nothing left behind (a .cache/)
    (tmp_path / "other.csv").write_text("foo,bar\n1,2\n")
    rc = main(["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "tumor",
               "--clinical", str(tmp_path / "other.csv")])  # fmt: skip
    assert rc == 1 and "other.csv: no TCIA_ID column" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # the liver stage alone: it trained to the end and recorded the missing table as used
    rc = main(["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "liver",
               "--clinical", str(tmp_path / "nope.xlsx")])  # fmt: skip
    assert rc == 1 and "nope.xlsx: clinical table not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_liver_stage_says_it_does_not_use_a_clinical_table(toy_data, tmp_path, capsys):
    from napari_livertumor.cli import build_parser, main
    from napari_livertumor.commands.train import build_configs

    (tmp_path / "clinical.csv").write_text("TCIA_ID,AFP\nHCC_001,3\n")
    args = build_parser().parse_args(
        ["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "both",
         "--clinical", str(tmp_path / "clinical.csv")]
    )  # fmt: skip
    liver, tumor = build_configs(args)
    assert liver.clinical is None and tumor.clinical == str(tmp_path / "clinical.csv")
    # a recipe file naming the table: the liver's config does not take it either
    import json

    (tmp_path / "recipe.json").write_text(
        json.dumps({"common": {"clinical": str(tmp_path / "clinical.csv")}})
    )
    args = build_parser().parse_args(
        ["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "both",
         "--config", str(tmp_path / "recipe.json")]
    )  # fmt: skip
    liver, tumor = build_configs(args)
    assert liver.clinical is None and tumor.clinical == str(tmp_path / "clinical.csv")
    # the run itself with the tiny network and patch (the built-in defaults took a minute)
    tiny = {"roi_size": [16, 32, 32], "target_spacing": [2.5, 2.0, 2.0], "network": TINY_NET}
    (tmp_path / "tiny.json").write_text(json.dumps({"common": tiny}))
    rc = main(["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "liver",
               "--clinical", str(tmp_path / "clinical.csv"), "--epochs", "1",
               "--steps-per-epoch", "1", "--config", str(tmp_path / "tiny.json"),
               "--cache-dir", _CACHE])  # fmt: skip
    assert rc == 0
    assert "--clinical is not used by the liver stage" in capsys.readouterr().err


@pytest.mark.parametrize("first_stop", ["clock", "stop after a step"])
def test_resuming_a_run_whose_time_budget_is_spent_says_so(toy_data, tmp_path, caplog, first_stop):
    """--max-minutes counts the whole run: resumed with the same budget, it ran no step and
    ended 'done' without a word of why. Ended mid-epoch after a step (CI's timing), each resume
    recorded that epoch again and validated it again."""
    if first_stop == "clock":  # the budget ends it before or after its first step
        run_all(tiny_config(toy_data, tmp_path, epochs=3, max_minutes=1e-4))
    else:  # a step, then the panel's Stop; the first resume ends the epoch the budget cut
        steps = []
        cut = tiny_config(toy_data, tmp_path, epochs=3)
        for r in train(cut, should_cancel=lambda: bool(steps)):
            if r["event"] == "step":
                steps.append(r)
        assert len(steps) == 1
        first = run_all(tiny_config(toy_data, tmp_path, epochs=3, max_minutes=1e-4, resume=True))
        ends = [r for r in first if r["event"] in ("step", "epoch")]
        assert [(r["event"], r["step"]) for r in ends] == [("epoch", 1)] and "val" in ends[0]
    model = tmp_path / "liver" / "model.safetensors"
    before = (model.stat().st_mtime_ns, read_metadata(tmp_path / "liver").training["history"])
    for _ in range(2):  # it validated again, rewrote the model and added an epoch each time
        with caplog.at_level("WARNING"):
            resumed = run_all(
                tiny_config(toy_data, tmp_path, epochs=3, max_minutes=1e-4, resume=True)
            )
        assert not [r for r in resumed if r["event"] in ("step", "epoch")]
        assert "raise --max-minutes to train on" in caplog.text
    after = (model.stat().st_mtime_ns, read_metadata(tmp_path / "liver").training["history"])
    assert after == before


def test_a_stop_in_the_last_step_of_the_run_leaves_its_validation_for_the_resume(
    toy_data, tmp_path
):
    """Stopped during the final step (the GUI's Stop), the run skipped its only validation and,
    resumed, finished labelled "no validation patients; final weights"."""
    steps = []

    def stop_in_the_last_step():
        return len(steps) >= 2

    cfg = tiny_config(toy_data, tmp_path, epochs=1, steps_per_epoch=2)
    for r in train(cfg, should_cancel=stop_in_the_last_step):
        if r["event"] == "step":
            steps.append(r["step"])
    assert steps == [1, 2]
    resumed = run_all(tiny_config(toy_data, tmp_path, epochs=1, steps_per_epoch=2, resume=True))
    assert [r.get("resumed_validation") for r in resumed if r["event"] == "epoch"] == [True]
    assert resumed[-1]["event"] == "done" and resumed[-1]["best_val_dice"] is not None
    meta = read_metadata(tmp_path / "liver")
    assert "note" not in meta.metrics
    assert [(h["step"], h["val_score"] is not None) for h in meta.training["history"]] == [
        (2, True)
    ]


def test_folds_without_a_fold_is_refused_not_fold_0(tmp_path, capsys):
    """``--folds 5`` alone started a full run of fold 0: a job array that forgot ``--fold``
    trained the same fold five times."""
    from napari_livertumor.cli import main

    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--folds", "5"])
    assert rc != 0
    assert "--folds 5 needs --fold I (0..4)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_clinical_table_of_other_patients_or_columns_is_said_before_the_liver_trains(
    toy_data, tmp_path, capsys
):
    """A table whose IDs match no patient, or without any column asked for, was found only
    after the liver stage had trained (hours, on real data)."""
    from napari_livertumor.cli import main

    table = tmp_path / "nomatch.csv"
    table.write_text("TCIA_ID,AFP,age\nP001,10,50\nP002,20,60\n")
    args = ["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "both"]
    assert main([*args, "--clinical", str(table)]) == 1
    err = capsys.readouterr().err
    assert "nomatch.csv: no clinical row matches any of the" in err and "P001" in err
    assert not (tmp_path / "o" / "liver").exists()
    ids = [f"HCC_{i:03d}" for i in range(1, 7)]
    table.write_text("TCIA_ID,foo\n" + "".join(f"{i},{k}\n" for k, i in enumerate(ids)))
    assert main([*args, "--clinical", str(table)]) == 1
    err = capsys.readouterr().err
    assert "none of the clinical columns asked for" in err and "its columns: foo" in err
    assert not (tmp_path / "o" / "liver").exists()


def test_a_clinical_table_of_only_non_training_patients_is_refused_before_the_liver_trains(
    toy_data, tmp_path, capsys
):
    """A table with rows only for the validation and test patients (or values only for them)
    passed the check before training: the liver stage trained, then the tumor stage stopped
    on the table (no row, or no value, for any of its training patients): on real data, hours
    later. Refused first, in the tumor stage's words; a Train panel's tumor run refuses it
    before preparing any scan."""
    import shutil

    from napari_livertumor.cli import main
    from napari_livertumor.training.loop import resolve_split

    data = tmp_path / "d"
    for sub in ("imagesTr", "labelsTr"):
        shutil.copytree(toy_data / sub, data / sub)
    recipe = tmp_path / "recipe.json"
    tiny = {"epochs": 1, "steps_per_epoch": 1, "roi_size": [16, 32, 32],
            "target_spacing": [2.5, 2.0, 2.0], "network": TINY_NET, "seed": 3, "val_fraction": 0.2}  # fmt: skip
    recipe.write_text(json.dumps({"common": tiny, "tumor": {"weak_columns": WEAK_COLUMNS}}))
    full = (toy_data / "clinical.csv").read_text().splitlines()
    header, rows = full[0], {line.split(",")[0]: line for line in full[1:]}
    blank = ",".join(["{}"] + [""] * header.count(","))
    table = data / "clinical.csv"
    args = ["train", "--data", str(data), "--stage", "both", "--config", str(recipe)]
    outs = iter(range(10))

    def train_both(*more):
        out = tmp_path / f"o{next(outs)}"
        rc = main([*args, "--out", str(out), "--weak-lambda", "0.5", *more])
        said = capsys.readouterr()
        assert "training the liver model" not in said.out
        assert not (out / "liver").exists() and not any(out.rglob("*.npz"))
        return rc, said.err

    # --split: rows only for its validation and test patients
    split = tmp_path / "split.json"
    split.write_text(
        json.dumps({"train": ["HCC_001", "HCC_002", "HCC_003", "HCC_004"], "val": ["HCC_005"],
                    "test": ["HCC_006"]})
    )  # fmt: skip
    table.write_text("\n".join([header, rows["HCC_005"], rows["HCC_006"]]))
    rc, err = train_both("--split", str(split))
    assert rc == 1
    assert "no clinical row matches any of the 4 training patients (e.g. HCC_001" in err

    # the seeded default split: every row, values only for the patients it does not train on
    cfg = tiny_config(data, tmp_path / "x", stage="tumor", weak_lambda=0.5)
    train_ids = resolve_split(cfg, sorted(rows))["train"]
    table.write_text(
        "\n".join([header, *(blank.format(p) if p in train_ids else rows[p] for p in rows)])
    )
    rc, err = train_both()
    assert rc == 1 and "none of the clinical columns" in err and "is usable" in err

    # the Train panel runs one stage: refused once the patients are indexed, no scan prepared
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="none of the clinical columns"):
        run_all(dataclasses.replace(cfg, cache_dir=str(cache)))
    assert not any(cache.rglob("*.npz"))


def test_a_split_file_names_patients_as_the_clinical_table_may(toy_data, tmp_path, caplog):
    """'HCC-3' and 'hcc_4' matched no patient (the clinical reader reads them as HCC_003 and
    HCC_004), and the run ended with 'no usable training patient'."""
    from napari_livertumor.training.loop import resolve_split

    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC-1", "hcc_2", "HCC_3"], "val": ["hcc 4"],
                                 "test": ["HCC_5", "HCC_999"]}))  # fmt: skip
    cfg = tiny_config(toy_data, tmp_path / "out", split_file=str(split))
    ids = [f"HCC_{i:03d}" for i in range(1, 7)]
    with caplog.at_level("WARNING"):
        got = resolve_split(cfg, ids)
    assert got["train"] == ["HCC_001", "HCC_002", "HCC_003"] and got["val"] == ["HCC_004"]
    assert got["test"] == ["HCC_005", "HCC_999"]
    assert "test list names 1 patient(s) not in the data: HCC_999" in caplog.text
    assert "1 patient(s) of the data are in no list" in caplog.text and "HCC_006" in caplog.text
    split.write_text(json.dumps({"train": ["P1"], "val": [], "test": []}))
    with pytest.raises(InputError, match="no patient of its train list is in the data"):
        resolve_split(cfg, ids)


def test_a_resumed_run_keeps_its_split_when_folders_are_not_named_hcc_001(
    toy_data, tmp_path, caplog
):
    """The run's split.json is read as the clinical table reads IDs ('hcc-2' is HCC_002): a
    cohort named 'hcc-1'… found none of its patients listed on resume, sent all of them (test
    and validation patients too) to training as new, and validated on nobody."""
    from napari_livertumor.training.data import write_split
    from napari_livertumor.training.loop import resolve_split

    ids = [f"hcc-{i}" for i in range(1, 7)]
    cfg = tiny_config(toy_data, tmp_path / "out", resume=True)
    first = {"train": ["hcc-3", "hcc-4", "hcc-5", "hcc-6"], "val": ["hcc-1"], "test": ["hcc-2"]}
    write_split(first, Path(cfg.stage_dir) / "last" / "split.json")
    with caplog.at_level("WARNING"):
        got = resolve_split(cfg, ids)
    assert {k: got[k] for k in first} == first
    assert (
        "new since the run started" not in caplog.text
        and "no longer in the data" not in caplog.text
    )
    with caplog.at_level("WARNING"):
        got = resolve_split(cfg, [*ids, "hcc-7"])
    assert got["train"] == [*first["train"], "hcc-7"] and got["test"] == ["hcc-2"]


def test_a_resumed_run_refuses_a_split_file_that_moves_its_patients(toy_data, tmp_path):
    """--resume --split NEW ran with the new lists: a patient trained on in the first part
    became a test patient, and evaluate scored it as held out."""
    from napari_livertumor.errors import SettingsError
    from napari_livertumor.training.data import write_split
    from napari_livertumor.training.loop import resolve_split

    ids = [f"HCC_{i:03d}" for i in range(1, 8)]
    first = {"train": ["HCC_001", "HCC_002", "HCC_003"], "val": ["HCC_004"], "test": ["HCC_005"]}
    swap = tmp_path / "swap.json"
    swap.write_text(json.dumps({"train": ["HCC_005", "HCC_002", "HCC_003"], "val": ["HCC_004"],
                                "test": ["HCC_001"]}))  # fmt: skip
    cfg = tiny_config(toy_data, tmp_path / "out", resume=True, split_file=str(swap))
    write_split(first, Path(cfg.stage_dir) / "last" / "split.json")
    with pytest.raises(SettingsError, match=r"HCC_001 \(train → test\)") as info:
        resolve_split(cfg, ids)
    assert "HCC_005 (test → train)" in str(info.value)
    # the same lists, with patients new since (a grown cohort) anywhere: fine
    grown = tmp_path / "grown.json"
    grown.write_text(json.dumps({**first, "train": [*first["train"], "HCC_006"],
                                 "test": ["hcc-5", "HCC_007"]}))  # fmt: skip
    cfg = tiny_config(toy_data, tmp_path / "out", resume=True, split_file=str(grown))
    assert resolve_split(cfg, ids)["test"] == ["HCC_005", "HCC_007"]


def test_overwrite_and_resume_come_from_the_command_line_never_a_recipe(toy_data, tmp_path, caplog):
    """A model trained with --force saved "overwrite": true in its recipe; a fine-tune of it
    (--init, its recipe taken over) replaced the model in its output folder without asking."""
    from napari_livertumor.training.config import recipe_from_model

    run_all(tiny_config(toy_data, tmp_path / "a", epochs=1, steps_per_epoch=1, overwrite=True))
    assert read_metadata(tmp_path / "a" / "liver").training["config"]["overwrite"] is True
    recipe = recipe_from_model(tmp_path / "a" / "liver", "liver")
    assert "overwrite" not in recipe["liver"]
    # its seed comes along (fine-tuned on its own data it draws the same split: no test patient
    # it trained on)
    assert recipe["liver"]["seed"] == 3
    with caplog.at_level("WARNING"):
        cfg = make_config("liver", {"liver": {"overwrite": True, "resume": True}})
    assert cfg.overwrite is False and cfg.resume is False
    assert "'overwrite' is not taken from a recipe (the command line decides it: --force)" in (
        caplog.text
    )


def test_a_fine_tune_never_writes_over_the_model_it_starts_from(toy_data, tmp_path):
    """Output = the start model's own folder replaced it after a generic 'replace?' prompt
    (the shipped models live in such a folder)."""
    from napari_livertumor.errors import SettingsError
    from napari_livertumor.training.loop import check_before_writing

    run_all(tiny_config(toy_data, tmp_path / "a", epochs=1, steps_per_epoch=2))
    start = tmp_path / "a" / "liver"
    before = (start / "model.safetensors").read_bytes()
    for init in (start, start / "best"):
        cfg = tiny_config(toy_data, tmp_path / "a", init_from=str(init), overwrite=True)
        with pytest.raises(SettingsError, match="write over the model it starts from"):
            check_before_writing(cfg)
    assert (start / "model.safetensors").read_bytes() == before


def test_train_check_says_what_the_data_holds_and_trains_nothing(
    toy_data, tmp_path, capsys, monkeypatch
):
    """The Train panel's Check data had no CLI form: a CLI user learnt of a wrong folder (one
    "patient") only from a model trained on it."""
    from napari_livertumor.cli import main

    monkeypatch.chdir(tmp_path)  # nothing is written here either
    assert main(["train", "--data", str(toy_data), "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("6 patient(s) with ground-truth labels (nifti layout)")
    assert "Clinical table" in out
    assert "Default split: 4 training / 1 validation / 1 test patient(s)\n" in out

    # a table whose IDs match no patient: said by what each side holds, not as 15 empty columns
    # (and a row without its patient, the usual typo, is named)
    table = tmp_path / "t" / "clinical.csv"
    table.parent.mkdir()
    # (training refuses such a table: so does the check)
    table.write_text("TCIA_ID,AFP,age\nPAT01,12,60\nPAT02,7,71\n")
    assert main(["train", "--data", str(toy_data), "--clinical", str(table), "--check"]) == 1
    out = capsys.readouterr().out
    assert "No patient here has a row in clinical.csv: its IDs read like PAT01, PAT02, the " in out
    assert "patients here like HCC_001, HCC_002, HCC_003" in out
    assert "Columns without a usable value" not in out and "will not start" in out
    # (HCC_001 is no training patient of the split: the tumor stage would stop on the table)
    table.write_text("TCIA_ID,AFP,age\nHCC_001,12,60\nHCC_0007,7,71\n")
    assert main(["train", "--data", str(toy_data), "--clinical", str(table), "--check"]) == 1
    assert "Rows of the table with no patient here: HCC_007\n" in capsys.readouterr().out
    # IDs written as bare numbers: not matched (a number may be a record number), but said
    table.write_text("TCIA_ID,AFP,age\nHCC_001,12,60\n3,7,71\n005,7,71\n99,1,50\n")
    assert main(["train", "--data", str(toy_data), "--clinical", str(table), "--check"]) == 1
    out = capsys.readouterr().out
    assert "Rows of the table with no patient here: 005, 3, 99\n" in out
    assert "  005 may be HCC_005, 3 may be HCC_003, written as a number" in out
    # a table that cannot be read: said after the patients' lines (they had been lost with the
    # one-line error), and the check fails as training would
    table.write_text("Patient ID,AFP,age\nHCC_001,12,60\n")
    assert main(["train", "--data", str(toy_data), "--clinical", str(table), "--check"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("6 patient(s) with ground-truth labels")
    assert "⚠ Clinical table" in out and "TCIA_ID" in out and "--weak-lambda 0" in out
    # ... but a run that would not read it (liver only, λ 0) passes the check, still told
    for extra in (["--stage", "liver"], ["--weak-lambda", "0"]):
        args = ["train", "--data", str(toy_data), "--clinical", str(table), "--check", *extra]
        assert main(args) == 0
        assert "⚠ Clinical table" in capsys.readouterr().out
    # ... also λ 0 set by a recipe file (the check had read only --weak-lambda), and a table
    # named by the recipe is the one checked
    recipe = tmp_path / "t" / "recipe.json"
    recipe.write_text(json.dumps({"tumor": {"weak_lambda": 0.0, "clinical": str(table)}}))
    assert main(["train", "--data", str(toy_data), "--config", str(recipe), "--check"]) == 0
    out = capsys.readouterr().out
    assert "⚠ Clinical table" in out and "Training does not read the table (λ 0" in out
    assert "will not start" not in out
    recipe.write_text(json.dumps({"tumor": {"clinical": str(table)}}))
    assert main(["train", "--data", str(toy_data), "--config", str(recipe), "--check"]) == 1
    assert "⚠ Clinical table" in capsys.readouterr().out
    # the columns checked are the ones the recipe asks for (the default 15 were checked, and
    # the check passed a table training refuses)
    table.write_text(
        "TCIA_ID,AFP,age\n" + "".join(f"HCC_00{i},{i},{60 + i}\n" for i in range(1, 7))
    )
    recipe.write_text(json.dumps({"tumor": {"clinical": str(table), "weak_columns": ["Okuda"]}}))
    assert main(["train", "--data", str(toy_data), "--config", str(recipe), "--check"]) == 1
    out = capsys.readouterr().out
    assert "0/1 weak-supervision columns found" in out
    assert "None of the clinical columns the run asks for (Okuda) is in" in out
    assert "its columns: AFP, age" in out
    assert out.count("will not start") == 1, out  # (said once, not again by the fit's check)
    recipe.write_text(json.dumps({"tumor": {"clinical": str(table), "weak_columns": ["age"]}}))
    assert main(["train", "--data", str(toy_data), "--config", str(recipe), "--check"]) == 0
    assert (
        "1/1 weak-supervision columns found, 1 of them with usable values"
        in capsys.readouterr().out
    )
    # a fold of a k-fold split is no obstacle to a check (it reads the whole folder)
    assert main(["train", "--data", str(toy_data), "--check", "--folds", "5", "--fold", "2"]) == 0
    capsys.readouterr()
    recipe.unlink()
    table.unlink()
    table.parent.rmdir()
    assert not list(tmp_path.iterdir())  # nothing written in the current folder
    assert not list(toy_data.glob(".cache")) and not list(toy_data.glob("*/.cache"))
    assert main(["train", "--data", str(toy_data)]) == 2  # training needs --out
    assert "required: --out (or --check" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "nope"), "--check"]) == 1
    assert "data folder not found" in capsys.readouterr().err


def test_validation_patients_beyond_max_val_cases_are_said(toy_data, tmp_path, caplog):
    """Only the first max_val_cases of the 'val' list are validated on; the model's metrics
    said "validation patients (split.json 'val')", all of them."""
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001", "HCC_002", "HCC_003"],
                                 "val": ["HCC_004", "HCC_005"], "test": ["HCC_006"]}))  # fmt: skip
    cfg = tiny_config(toy_data, tmp_path / "o", split_file=str(split), max_val_cases=1, epochs=1)
    with caplog.at_level("WARNING"):
        run_all(cfg)
    assert "the first 1 of the 2 validation patients" in caplog.text
    measured = read_metadata(tmp_path / "o" / "liver").metrics["measured_on"]
    assert measured.startswith("the first 1 of the 2 validation patients")
    assert "ROI" not in measured  # (the tumor stage's ground-truth liver ROI: not the liver's)


def test_stages_split_differently_by_their_recipe_sections_are_warned_of(
    toy_data, tmp_path, caplog
):
    """A recipe with another seed in its tumor section split the stages differently: the
    liver model trained on the tumor stage's test patient without a word."""
    from napari_livertumor.cli import main

    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"liver": {"seed": 1}, "tumor": {"seed": 2}}))
    args = ["train", "--data", str(toy_data), "--check", "--config", str(recipe)]
    with caplog.at_level("WARNING"):
        main(args)
    assert "the liver and tumor stages are split differently (seed differ" in caplog.text
    caplog.clear()
    recipe.write_text(json.dumps({"common": {"seed": 2}}))
    with caplog.at_level("WARNING"):
        main(args)
    assert "split differently" not in caplog.text


def test_train_check_says_when_too_few_training_patients_leave_the_weak_term_off(tmp_path, capsys):
    """Training turns the weak term off under 4 training patients with clinical values (its
    out-of-fold fit needs 3 to fit on); the check said all was well."""
    from napari_livertumor.cli import main

    data = write_toy_cohort(tmp_path / "d", n_cases=3, seed=0)
    assert main(["train", "--data", str(data), "--check"]) == 0
    out = capsys.readouterr().out
    # (in training's words: test_check_foresees_each_way_training_goes_without_the_weak_term)
    assert (
        "⚠ Weak supervision off: 2 training patient(s) with usable clinical values are too few "
        "for the out-of-fold regression (2 folds leave 1 to fit on; at least 3 are needed)"
    ) in out
    assert main(["train", "--data", str(data), "--check", "--weak-lambda", "0"]) == 0
    out = capsys.readouterr().out
    assert "out-of-fold regression" not in out and "Weak supervision off (λ = 0)" in out
    # counted on the run's own split (a split file training 4 of 5), not the default one
    data = write_toy_cohort(tmp_path / "d5", n_cases=5, seed=0)
    split = tmp_path / "split.json"
    split.write_text(
        json.dumps({"train": [f"HCC_00{i}" for i in range(1, 5)], "test": ["HCC_005"]})
    )
    assert main(["train", "--data", str(data), "--check", "--split", str(split)]) == 0
    out = capsys.readouterr().out
    assert "Split of split.json: 4 training / 0 validation / 1 test patient(s)" in out
    assert "Weak supervision off" not in out
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"tumor": {"weak_folds": 2}}))  # 4 in 2 folds: 2 to fit on
    args = ["train", "--data", str(data), "--check", "--split", str(split), "--config", str(recipe)]
    assert main(args) == 0
    assert "(2 folds leave 2 to fit on; at least 3 are needed)" in capsys.readouterr().out
    # a liver-only check counts the same split (it said the default one)
    args = ["train", "--data", str(data), "--check", "--split", str(split), "--stage", "liver"]
    assert main(args) == 0
    assert "Split of split.json: 4 training" in capsys.readouterr().out


def test_check_foresees_each_way_training_goes_without_the_weak_term(
    toy_data, tmp_path, capsys, caplog
):
    """A user checked the data, saw no warning, and learnt only from the run's log that the
    weak term was off (clinical values for too few of the training patients), or saw the tumor
    stage stop on the table once its patients were prepared (rows only for the test patients;
    values only for them). The check says each, in the words training then says."""
    import shutil

    from napari_livertumor.cli import main

    data = tmp_path / "d"
    for sub in ("imagesTr", "labelsTr"):
        shutil.copytree(toy_data / sub, data / sub)
    split = tmp_path / "split.json"
    train_ids = ["HCC_001", "HCC_002", "HCC_003", "HCC_004"]
    split.write_text(json.dumps({"train": train_ids, "val": ["HCC_005"], "test": ["HCC_006"]}))
    full = (toy_data / "clinical.csv").read_text().splitlines()
    header, rows = full[0], {line.split(",")[0]: line for line in full[1:]}
    table = data / "clinical.csv"
    blank = ",".join(["{}"] + [""] * (header.count(",")))
    check = ["train", "--data", str(data), "--check", "--split", str(split)]
    cfg = tiny_config(data, tmp_path / "o", stage="tumor", weak_lambda=0.5, split_file=str(split))
    cfg = dataclasses.replace(cfg, epochs=1, steps_per_epoch=1)
    runs = iter(range(10))

    def train_it():  # (each run in its own output folder)
        return run_all(dataclasses.replace(cfg, out=str(tmp_path / f"o{next(runs)}")))

    # values for 3 of the 4 training patients: 3 folds leave 2 to fit on, training goes without
    table.write_text(
        "\n".join([header, *(rows[p] if p != "HCC_004" else blank.format(p) for p in rows)])
    )
    assert main([*check, "--config", _recipe(tmp_path, cfg)]) == 0
    said = capsys.readouterr().out.splitlines()
    info = next(r for r in train_it() if r["event"] == "info")
    assert not info["weak"]["enabled"]
    note = info["weak"]["report"][-1]
    assert "training without the weak term" in note
    assert f"⚠ Weak supervision off: {note}" in said

    # rows only for the validation and test patients, then values only for them: refused
    for text in (
        "\n".join([header, rows["HCC_005"], rows["HCC_006"]]),
        "\n".join([header, *(blank.format(p) if p in train_ids else rows[p] for p in rows)]),
    ):
        table.write_text(text)
        assert main([*check, "--config", _recipe(tmp_path, cfg)]) == 1
        said = capsys.readouterr().out.splitlines()
        with pytest.raises(InputError) as stopped:
            train_it()
        assert f"⚠ Clinical table {stopped.value}" in said
        assert "The tumor stage will not start with this table" in "\n".join(said)
    # a table with no value at all, under λ 0: not refused, its empty columns still named
    table.write_text("\n".join([header, *(blank.format(p) for p in rows)]))
    assert main([*check, "--weak-lambda", "0"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert "Weak supervision off (λ = 0)" in said
    assert any(line.startswith("Columns without a usable value: ") for line in said), said
    # (the tumor stage that will not use them is no news under λ 0, or for the liver stage)
    assert "No usable clinical value (this run does not read them)." in said
    assert main([*check, "--stage", "liver"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert "No usable clinical value (this run does not read them)." in said, said

    # no table at all: the words training logs as it starts
    table.unlink()
    assert main([*check, "--config", _recipe(tmp_path, cfg)]) == 0
    said = capsys.readouterr().out.splitlines()
    with caplog.at_level("WARNING"):
        info = next(r for r in train_it() if r["event"] == "info")
    assert info["weak"] == {"enabled": False, "reason": "no clinical table"}
    warned = next(r.getMessage() for r in caplog.records if "no clinical table" in r.getMessage())
    assert f"⚠ Weak supervision off: {warned}" in said
    assert "No clinical table." not in said  # (the warning says it, not a second line)

    # λ 0, or the liver stage only: off, as the run's record gives the reason
    assert main([*check, "--weak-lambda", "0"]) == 0
    assert "Weak supervision off (λ = 0)" in capsys.readouterr().out.splitlines()
    assert main([*check, "--stage", "liver"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "Weak supervision off (the liver stage has no weak term)" in out


def test_check_counts_usable_columns_on_the_training_patients_and_says_rows_plainly(
    toy_data, tmp_path
):
    """QA adv61: with values for the validation and test patients only, Check data said "6/6
    patients matched, 15/15 weak-supervision columns found, 15 of them with usable values",
    then "none of the clinical columns asked for is usable (fewer than 2 numeric values for the
    4 training patient(s)…)". And under "⚠ Weak supervision off" (for everyone) came "Without
    a clinical row (no weak term for them): HCC_004", as if the others had one."""
    import shutil

    from napari_livertumor.training.check import summarize_data

    data = tmp_path / "d"
    for sub in ("imagesTr", "labelsTr"):
        shutil.copytree(toy_data / sub, data / sub)
    split = tmp_path / "split.json"
    train_ids = ["HCC_001", "HCC_002", "HCC_003", "HCC_004"]
    split.write_text(json.dumps({"train": train_ids, "val": ["HCC_005"], "test": ["HCC_006"]}))
    full = (toy_data / "clinical.csv").read_text().splitlines()
    header, rows = full[0], {line.split(",")[0]: line for line in full[1:]}
    blank = ",".join(["{}"] + [""] * (header.count(",")))
    table = tmp_path / "clinical.csv"
    cfg = tiny_config(data, tmp_path / "o", stage="tumor", weak_lambda=0.5, split_file=str(split))
    n = len(cfg.weak_columns)

    def check(*kept_rows, blank_rows=()):
        table.write_text(
            "\n".join(
                [header, *(blank.format(p) if p in blank_rows else rows[p] for p in kept_rows)]
            )
        )
        return summarize_data(str(data), clinical=str(table), config=cfg)

    # values only for the validation and test patients: none usable for the training ones
    said = check(*rows, blank_rows=train_ids)
    head = next(line for line in said if line.startswith("Clinical table "))
    assert head.endswith(
        f"6/6 patients matched, {n}/{n} weak-supervision columns found, 0 of them with usable "
        "values for the 4 training patient(s)"
    )
    assert any("none of the clinical columns asked for is usable" in line for line in said)
    # all there: all usable, and a patient without a row goes without the weak term
    said = check(*[p for p in rows if p != "HCC_006"])
    assert any(line.endswith(f"{n} of them with usable values for the 4 training patient(s)")
               for line in said)  # fmt: skip
    assert "Without a clinical row (no weak term for them): HCC_006" in said
    # 3 of the 4 training patients with a row: off for everyone, the row's absence said plainly
    said = check(*[p for p in rows if p != "HCC_004"])
    assert any(line.startswith("⚠ Weak supervision off: 3 training patient(s)") for line in said)
    assert "Without a clinical row: HCC_004" in said
    assert not any("no weak term for them" in line for line in said)
    # off by λ 0: no weak term for anyone either
    said = summarize_data(str(data), clinical=str(table), config=cfg, weak_lambda=0)
    assert "Weak supervision off (λ = 0)" in said and "Without a clinical row: HCC_004" in said
    # a split file that cannot be read: the weak term's fate waits for the split
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    said = summarize_data(
        str(data), clinical=str(table), config=dataclasses.replace(cfg, split_file=str(broken))
    )
    assert said[1].startswith("⚠ Split of broken.json: "), said
    assert "⚠ Weak supervision: whether it runs is not known until the split is (see above)" in said
    # no recipe, stage or λ given: a tumor run's check, with the weak term on
    said = summarize_data(str(data), clinical=str(table))
    assert not any(line.startswith("Weak supervision off (") for line in said), said


def _recipe(tmp_path, cfg) -> str:
    """A recipe file holding ``cfg``'s tumor settings that decide the weak term's fit."""
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            {"tumor": {"weak_columns": list(cfg.weak_columns), "weak_folds": cfg.weak_folds}}
        )
    )
    return str(recipe)


@pytest.mark.parametrize("at", [4, 3])  # mid-epoch; the epoch's last step (its validation)
def test_ctrl_c_in_the_middle_of_a_step_resumes_as_if_never_stopped(
    toy_data, tmp_path, monkeypatch, at, uninterrupted
):
    """The signal landed mid-step: the saved state had this step's random draws (the VAE's
    sampling) with the last step's count, and the resumed run differed from one never
    stopped. The step now ends first; one that ends an epoch leaves its validation to the
    resume (it was skipped)."""
    import signal

    from napari_livertumor.training import loop

    full, full_stage = uninterrupted
    real, calls = loop._Run._step, []

    def signalled_mid_step(self, *args, **kw):
        calls.append(1)
        if len(calls) == at:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while this step runs
        return real(self, *args, **kw)

    monkeypatch.setattr(loop._Run, "_step", signalled_mid_step)
    with pytest.raises(KeyboardInterrupt):
        run_all(tiny_config(toy_data, tmp_path / "cut"))
    monkeypatch.setattr(loop._Run, "_step", real)
    resumed = run_all(tiny_config(toy_data, tmp_path / "cut", resume=True))
    # the step signalled was whole, and no epoch went unvalidated
    assert [r["step"] for r in resumed if r["event"] == "step"] == list(range(at + 1, 7))
    assert resumed[-1]["last_weights_digest"] == full[-1]["last_weights_digest"]
    scores = [
        (h["step"], h["val_score"])
        for h in read_metadata(tmp_path / "cut" / "liver").training["history"]
    ]
    assert scores == [
        (h["step"], h["val_score"]) for h in read_metadata(full_stage).training["history"]
    ]


def test_a_resume_takes_the_new_weight_decay_and_refuses_another_optimizer(toy_data, tmp_path):
    """The saved optimizer groups brought back the old weight decay while the metadata said
    the new one; another optimizer became a hybrid of the two, unsaid."""
    import torch

    n = 0

    def cancel_after_two():
        return n >= 2

    for r in train(tiny_config(toy_data, tmp_path), should_cancel=cancel_after_two):
        n += r["event"] == "step"
    with pytest.raises(InputError, match="optimizer: run adamw, now adam"):
        run_all(tiny_config(toy_data, tmp_path, resume=True, optimizer="adam"))
    n = 0
    cut = tiny_config(toy_data, tmp_path, resume=True, weight_decay=0.05)
    for r in train(cut, should_cancel=cancel_after_two):
        n += r["event"] == "step"
    state = torch.load(tmp_path / "liver" / "last" / "train_state.pt", weights_only=True)
    assert {g["weight_decay"] for g in state["optimizer"]["param_groups"]} == {0.05}


def test_a_start_model_of_another_network_or_a_missing_gpu_is_refused_before_any_work(
    toy_data, tmp_path
):
    """Both were found only after the cohort was prepared, or (--stage both) after the liver
    stage had trained."""
    from unittest import mock

    from napari_livertumor.training.loop import check_before_writing

    run_all(tiny_config(toy_data, tmp_path / "m"))
    other_net = {**TINY_NET, "init_filters": TINY_NET["init_filters"] * 2}
    init = str(tmp_path / "m" / "liver")
    cfg = tiny_config(toy_data, tmp_path / "ft", network=other_net, init_from=init)
    with pytest.raises(
        LiverTumorError,
        match=r"its network differs from the recipe's \(init_filters: model 4, recipe 8\)",
    ):
        check_before_writing(cfg)
    cfg = tiny_config(toy_data, tmp_path / "gpu", device="cuda")
    with mock.patch("torch.cuda.is_available", return_value=False):
        with pytest.raises(InputError, match="no CUDA device"):
            check_before_writing(cfg)


def test_tumor_settings_in_the_liver_or_common_section_are_refused_not_ignored(tmp_path):
    """Tumor-only keys in the liver section were ignored unsaid; mask_outside_liver in common
    changed the liver's training, unlike its inference."""
    from napari_livertumor.training.config import load_recipe

    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"liver": {"hard_ratio": 0.5, "epochs": 3}}))
    with pytest.raises(InputError, match="hard_ratio in the liver section: it acts on the tumor"):
        load_recipe(recipe)
    recipe.write_text(json.dumps({"common": {"mask_outside_liver": True}}))
    with pytest.raises(InputError, match="only the tumor stage masks its input"):
        load_recipe(recipe)
    recipe.write_text(json.dumps({"common": {"hard_ratio": 0.2}, "tumor": {"lesion_ratio": 0.5}}))
    assert load_recipe(recipe)["tumor"]["lesion_ratio"] == 0.5  # where they belong: taken


def test_train_help_gives_the_configurations_own_defaults(capsys):
    """`train --help` gave no default for --epochs, --lr, --seed…; the figures it gives now
    are written out (reading them would import the training package at every command's start):
    they must be the configuration's."""
    from napari_livertumor.cli import main
    from napari_livertumor.commands.train import HELP_DEFAULTS
    from napari_livertumor.training.config import make_config

    liver, tumor = (make_config(s, data=".", out=".") for s in ("liver", "tumor"))
    for field, value in HELP_DEFAULTS.items():
        assert getattr(tumor, field) == value, field
        if field != "weak_lambda":  # the tumor stage's term
            assert getattr(liver, field) == value, field
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "epochs per stage (default 10)" in text and "(default 0.002)" in text


def test_the_help_says_what_max_minutes_counts(capsys):
    """A 1-min run took 247 s from its start: 134 s of it before the first step (the data's
    preparation), which the budget's clock does not count, and 65 s of final validation past
    it; `train --help` said "wall-time cap per stage, for the whole run"."""
    from napari_livertumor.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the minutes of training and validation, not the start" in text
    assert "data preparation before the first step" in text
    assert "the final validation runs on top of it" in text


def test_an_output_folder_that_is_a_model_folder_is_refused(
    toy_data, tmp_path, capsys, monkeypatch
):
    """`train --out models/liver` nested a model in models/liver/liver without a word."""
    import shutil

    from napari_livertumor.cli import main
    from napari_livertumor.models import default_model_dir

    model = tmp_path / "models" / "liver"
    shutil.copytree(default_model_dir("liver"), model)
    assert main(["train", "--data", str(toy_data), "--out", str(model), "--stage", "liver"]) == 1
    err = capsys.readouterr().err
    assert "is a model's own folder; the output folder is the one that holds liver/" in err
    assert not (model / "liver").exists() and not (model / ".cache").exists()
    # the shipped models' folder (a --force would replace them): refused before anything
    # (a copy stands for it: a broken guard must not train into the real one)
    import napari_livertumor.models.checkpoint as checkpoint

    shipped = tmp_path / "shipped"
    for stage in ("liver", "tumor"):
        shutil.copytree(default_model_dir(stage), shipped / stage)
    monkeypatch.setattr(checkpoint, "default_model_dir", lambda stage: shipped / stage)
    before = (shipped / "liver" / "metadata.json").stat().st_mtime_ns
    args = ["train", "--data", str(toy_data), "--out", str(shipped), "--stage", "liver", "--force"]
    assert main([*args, "--epochs", "1", "--steps-per-epoch", "1"]) == 1
    assert "holds the shipped default models" in capsys.readouterr().err
    assert (shipped / "liver" / "metadata.json").stat().st_mtime_ns == before


def test_a_gpu_number_beyond_those_there_is_said_before_the_data_is_read(monkeypatch):
    import torch

    from napari_livertumor.training.loop import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda:1")
    check_device("cuda")
    with pytest.raises(InputError, match=r"cuda:2 was asked for but this machine has 2 GPU\(s\)"):
        check_device("cuda:2")


def test_the_weak_report_carries_the_tables_warnings_and_an_opposite_fit(tmp_path, caplog):
    """The Train panel shows only what the reports carry: a table's rows that differ were said
    in the CLI's log alone, and weak labels running opposite to the truth in a JSON figure."""
    from types import SimpleNamespace

    import pandas as pd

    from napari_livertumor.training import loop

    ids = [f"HCC_{i:03d}" for i in range(1, 9)]
    truth = np.linspace(0.05, 0.4, len(ids))
    # columns that tell nothing: each label is the other patients' mean, which runs opposite
    # to the truth (leave one out: r = -1)
    rows = {"TCIA_ID": ids + ["HCC_002"], "AFP": [10.0] * 8 + [5.0], "age": [60] * 9}
    pd.DataFrame(rows).to_csv(tmp_path / "clinical.csv", index=False)
    run = loop._Run.__new__(loop._Run)
    run.config = SimpleNamespace(stage="tumor", weak_lambda=0.5, clinical=str(tmp_path / "clinical.csv"),
                                 data=str(tmp_path), weak_columns=["AFP", "age"], weak_folds=8,
                                 weak_ridge=1.0, seed=0, weak_log_columns=("AFP",))  # fmt: skip
    cases = [SimpleNamespace(case_id=i, tlvr=float(t)) for i, t in zip(ids, truth, strict=True)]
    labels, summary = run._weak_labels(cases)
    assert summary["enabled"] and len(labels) == len(ids)
    # the form AFP entered in, recorded and said (the metadata keeps the summary)
    assert summary["log10_columns"] == ["AFP"]
    assert any("AFP (log10), age" in line for line in summary["report"])
    assert any("HCC_002 has 2 rows" in line for line in summary["report"])
    assert summary["oof_corr_with_tlvr"] == pytest.approx(-1.0)
    assert any("do not follow" in line and "-1.00" in line for line in summary["report"])


def test_two_runs_into_one_folder_at_once_are_refused_and_a_stale_lock_is_taken_over(
    toy_data, tmp_path
):
    """Two runs started into one output folder both trained, and the last to write replaced
    the other's model and state without a word."""
    import json
    import subprocess
    import sys

    from napari_livertumor.errors import SettingsError
    from napari_livertumor.training.loop import RunLock

    cfg = tiny_config(toy_data, tmp_path / "out", epochs=1, steps_per_epoch=1)
    stage_dir = Path(cfg.stage_dir)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stage_dir.mkdir(parents=True)
        (stage_dir / RunLock.NAME).write_text(
            json.dumps({"pid": other.pid, "host": __import__("socket").gethostname()})
        )
        with pytest.raises(
            SettingsError, match=rf"another training run is writing here \(process {other.pid}"
        ):
            run_all(cfg)
        assert not (stage_dir / "model.safetensors").exists()
    finally:
        other.kill()
        other.wait()
    # a run refused before it wrote anything leaves no folder it made (the output's too)
    fresh = tiny_config(toy_data, tmp_path / "new" / "out", init_from=str(tmp_path / "nope"))
    with pytest.raises(LiverTumorError):
        run_all(fresh)
    assert not (tmp_path / "new").exists()
    # its process gone (killed): the lock is stale, taken over, and released at the end
    reports = run_all(cfg)
    assert reports[-1]["event"] == "done"
    assert (stage_dir / "model.safetensors").is_file()
    assert not (stage_dir / RunLock.NAME).exists()


def test_a_resume_with_nothing_to_resume_does_not_also_say_resumed(toy_data, tmp_path, caplog):
    """`--resume` into a new folder said "no checkpoint …; starting from scratch" and then
    "resumed at step 0/2"."""
    with caplog.at_level(logging.INFO):
        reports = run_all(tiny_config(toy_data, tmp_path, epochs=1, steps_per_epoch=1, resume=True))
    assert "it starts fresh (its first run)" in caplog.text
    assert not [r for r in reports if r["event"] == "resumed"]
    assert reports[-1]["event"] == "done"


def test_a_resume_of_a_stage_that_never_began_is_no_warning(toy_data, tmp_path, caplog):
    """`--stage both` stopped in its liver stage, then `--resume`d, warned "resume: no
    checkpoint in R2/tumor/last; starting from scratch" for the tumor stage that had never
    begun (and the result was right): a WARNING only where a run began and left no state."""
    with caplog.at_level(logging.INFO):
        run_all(tiny_config(toy_data, tmp_path / "a", epochs=1, steps_per_epoch=1, resume=True))
    said = [(r.levelname, r.getMessage()) for r in caplog.records if "resume:" in r.getMessage()]
    assert said == [
        ("INFO", f"resume: the liver stage has not run in {tmp_path / 'a' / 'liver'} before: it "
         "starts fresh (its first run)")
    ], said  # fmt: skip

    begun = tmp_path / "b" / "liver"
    begun.mkdir(parents=True)
    (begun / "train.log").write_text("… run started: liver stage\n")  # stopped while preparing
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_all(tiny_config(toy_data, tmp_path / "b", epochs=1, steps_per_epoch=1, resume=True))
    said = [(r.levelname, r.getMessage()) for r in caplog.records if "resume:" in r.getMessage()]
    assert said == [
        ("WARNING", f"resume: no checkpoint in {begun / 'last'}; starting from scratch")
    ]


class _SignalProbe:
    """A dataset whose items tell how the process reading them handles SIGTERM and SIGINT."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        import signal

        return int(
            signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
            and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        )


def test_data_loader_workers_leave_sigterm_to_the_main_process():
    """`timeout` or a scheduler sending SIGTERM to the process group killed the workers, and
    the main process's save of last/ then failed on them (no last/, exit 1)."""
    import signal
    from types import SimpleNamespace

    from napari_livertumor.training.loop import _loader

    cfg = SimpleNamespace(num_workers=1, batch_size=1, seed=0)
    loader = _loader(_SignalProbe(), cfg, [0, 1])
    assert [int(b) for b in loader] == [1, 1]  # ignored in the worker
    assert signal.getsignal(signal.SIGTERM) != signal.SIG_IGN  # not in this process


def test_a_cli_resume_takes_the_runs_own_recipe(toy_data, tmp_path, caplog):
    """A run started in the Train panel with its own patch (or from a recipe file) could not
    be resumed from the command line: the defaults were refused as "another recipe" and no
    option gave the run's back; the panel's Resume takes the run's."""
    from napari_livertumor.cli import build_parser
    from napari_livertumor.commands.train import build_configs
    from napari_livertumor.training.loop import STATE_FILE, check_before_writing

    out = tmp_path / "o"
    run_all(tiny_config(toy_data, out, epochs=1, steps_per_epoch=2, batch_size=1, lr=7e-4))
    assert (out / "liver" / "last" / STATE_FILE).is_file()
    args = build_parser().parse_args(
        ["train", "--data", str(toy_data), "--out", str(out), "--stage", "liver", "--resume",
         "--epochs", "2"]
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="napari_livertumor"):
        (cfg,) = build_configs(args)
    assert cfg.roi_size == (16, 32, 32) and cfg.network.init_filters == 4
    assert cfg.epochs == 2 and cfg.resume  # the command line's own options on top
    # the run's other settings too, not the defaults (batch 1 went on at 2, unsaid; and a
    # finished run of 2 steps per epoch went on at 50)
    assert (cfg.batch_size, cfg.steps_per_epoch, cfg.lr) == (1, 2, 7e-4)
    assert "resuming with the run's own settings, not the defaults (" in caplog.text
    assert "roi_size" in caplog.text and "batch_size" in caplog.text
    # a setting the run left at its default is not named: its record's list [10.0, 40.0]
    # was compared with the default tuple (10.0, 40.0) and said changed on every resume
    assert "aug_field_mm" not in caplog.text
    check_before_writing(cfg, check_lock=False)  # no "another recipe" refusal
    # a --seed of its own is the user's: not replaced by the run's, refused as before
    args = build_parser().parse_args(
        ["train", "--data", str(toy_data), "--out", str(out), "--stage", "liver", "--resume",
         "--seed", "5"]
    )  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="napari_livertumor"):
        (cfg,) = build_configs(args)
    assert cfg.seed == 5 and cfg.roi_size == (16, 32, 32)
    assert "resuming" not in caplog.text  # a refusal follows, not "resuming" before it
    with pytest.raises(InputError, match="seed: run 3, now 5"):
        check_before_writing(cfg, check_lock=False)


def _stopped_after_two_steps(data, out) -> dict:
    """A liver run on ``data`` into ``out`` stopped (cancelled) after two steps; the split it
    saved in last/."""
    n = 0

    def cancel_after_two():
        return n >= 2

    for r in train(tiny_config(data, out), should_cancel=cancel_after_two):
        n += r["event"] == "step"
    return json.loads((out / "liver" / "last" / "split.json").read_text())


@pytest.mark.parametrize("cause", ["full disk", "file size limit"])
def test_a_checkpoint_that_ran_out_of_room_says_why_not_torchs_words(
    toy_data, tmp_path, monkeypatch, cause
):
    """A full disk was said as "writing train_state.pt failed: [enforce fail at
    inline_container.cc:672] . unexpected pos 8819264 vs 8819156"."""
    import resource
    import shutil as shutil_module

    import torch

    out = tmp_path / "o"
    _stopped_after_two_steps(toy_data, out)
    real_save, real_usage, real_limit = torch.save, shutil_module.disk_usage, resource.getrlimit
    failed = []

    def save(obj, f, *args, **kwargs):
        if str(f).endswith(".train_state.pt.tmp"):
            Path(f).write_bytes(b"x" * 4096)
            failed.append(f)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4160")
        return real_save(obj, f, *args, **kwargs)

    def usage(path):  # the disk as the failed write left it
        found = real_usage(path)
        free = 3_000_000 if failed and cause == "full disk" else found.free
        return type(found)(found.total, found.used, free)

    def limit(which):
        if failed and cause == "file size limit" and which == resource.RLIMIT_FSIZE:
            return (4096, resource.RLIM_INFINITY)
        return real_limit(which)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(shutil_module, "disk_usage", usage)
    monkeypatch.setattr(resource, "getrlimit", limit)
    with pytest.raises(LiverTumorError) as err:
        run_all(tiny_config(toy_data, out, resume=True))
    said = str(err.value)
    assert "enforce fail" not in said
    assert said.endswith(f"; the previous checkpoint is kept: step 2's, in {out / 'liver' / 'last'} "
                         "(--resume goes on from it)")  # fmt: skip
    if cause == "full disk":  # (how much is free: said once, after the part is removed)
        assert "(writing train_state.pt failed: No space left on device); a save there " in said
        assert ", 3.0 MB is free; " in said
    else:
        assert "writing train_state.pt failed: File too large: files are limited to" in said


def test_a_full_checkpoint_save_says_the_room_free_once_its_part_is_removed(
    toy_data, tmp_path, monkeypatch
):
    """QA adv61: a 20 MB disk filled while train_state.pt was written said "(writing
    train_state.pt failed: No space left on device (0 MB free)); the disk is full: a save there
    needs about 40.3 MB, 11.1 MB is free": two figures, neither what was free afterwards (18
    MB: torch's writer still held the part written open when it was removed), and the full
    disk said twice."""
    import shutil as shutil_module
    import weakref

    import torch

    out = tmp_path / "o"
    real_save, real_usage = torch.save, shutil_module.disk_usage
    opened = []

    def save(obj, f, *args, **kwargs):
        if not str(f).endswith(".train_state.pt.tmp"):
            return real_save(obj, f, *args, **kwargs)
        part = open(f, "wb")  # noqa: SIM115 - held open by this frame, as torch's writer is
        part.write(b"x" * 4096)
        opened.append(weakref.ref(part))
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4160")

    def usage(path):  # the part written holds 4 MB until it is closed and removed
        found = real_usage(path)
        held = any(r() is not None and not r().closed for r in opened)
        return type(found)(found.total, found.used, 1_000_000 if held else 5_000_000)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(shutil_module, "disk_usage", usage)
    with pytest.raises(LiverTumorError) as err:
        run_all(tiny_config(toy_data, out))
    said = str(err.value)
    assert opened and opened[0]() is None  # (let go of)
    assert said.startswith(
        f"cannot write the checkpoint in {out / 'liver'} (writing train_state.pt failed: No "
        "space left on device); a save there needs about "
    )
    assert ", 5.0 MB is free; " in said and "1.0 MB" not in said and "MB free" not in said
    assert "disk is full" not in said and said.count("No space left") == 1
    assert not (out / "liver" / ".last-new").exists()


def test_a_step_line_shows_no_weak_term_when_no_patch_had_a_weak_label():
    """A batch without a weak label was printed as weak=0.0000: a penalty of 0 the network
    had met, not a term that was not there."""
    from napari_livertumor.training.cli_report import format_report

    report = {"event": "step", "stage": "tumor", "step": 10, "total_steps": 20, "epoch": 0,
              "lr": 1e-4, "seconds": 1.0, "samples_per_s": 2.0, "train_dice": None,
              "losses": {"dice": 0.5, "weak": 0.0, "total": 0.5, "n_weak": 0}}  # fmt: skip
    line = format_report(report)
    assert " weak=- " in line and "n_weak" not in line and "dice=0.5000" in line
    report["losses"].update(weak=0.0123, n_weak=2)
    assert " weak=0.0123 " in format_report(report)


def test_quiet_train_prints_the_results_and_no_line_per_step(
    toy_data, tmp_path, capsys, monkeypatch
):
    """QA s49fixrev: ``livertumor -q train`` still printed "[liver] step 1/1 …" and
    "[liver] preparing …" though -q says warnings and errors only, no line per step."""
    import napari_livertumor.training.loop as loop
    from napari_livertumor.cli import main

    def reports(cfg, **kw):
        yield {"event": "prepare", "stage": cfg.stage, "phase": "prepare", "done": 0,
               "total": 2, "case": "HCC_001"}  # fmt: skip
        yield {"event": "info", "stage": cfg.stage, "n_train": 1}
        yield {"event": "step", "stage": cfg.stage, "step": 1, "total_steps": 1, "epoch": 0,
               "losses": {"dice": 0.5}, "train_dice": None, "lr": 1e-3, "seconds": 1.0,
               "samples_per_s": 2.0}  # fmt: skip
        yield {"event": "epoch", "stage": cfg.stage, "epoch": 0, "step": 1, "train_loss": 0.5,
               "val": {"val_dice": 0.25}, "seconds": 60.0}  # fmt: skip
        yield {"event": "done", "stage": cfg.stage, "step": 1, "model": str(cfg.stage_dir)}

    monkeypatch.setattr(loop, "train", reports)
    run = ["train", "--data", str(toy_data), "--out", str(tmp_path / "o"), "--stage", "liver"]
    assert main(run) == 0
    said = capsys.readouterr().out
    for line in ("== training the liver model", "[liver] preparing", "[liver] step 1/1",
                 "[liver] epoch 1", "[liver] done: "):  # fmt: skip
        assert line in said
    assert main(["-q", *run]) == 0
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 1 and said[0].startswith("[liver] done: "), said


class _NoLoggingConfigured:
    """The process as a script or notebook that configured no logging finds it: no handler on
    the root logger (pytest's own taken off for the while) nor the package's loggers; what
    Python's last resort prints goes to the ``sys.stderr`` of the moment (capsys's)."""

    def __enter__(self):
        root = logging.getLogger()
        self._root = (root.handlers, root.level)
        root.handlers = []  # (`livertumor`'s basicConfig adds its handler to this list only)
        from napari_livertumor.training.loop import _only_the_last_resort_listens

        assert _only_the_last_resort_listens(), "a handler of the package's was left behind"
        return self

    def __exit__(self, *exc):
        root = logging.getLogger()
        root.handlers, root.level = self._root


def _config_without_validation(data, out):
    return make_config("liver", data=str(data), out=str(out), cache_dir=_CACHE, epochs=1,
                       steps_per_epoch=1, roi_size=(16, 32, 32), target_spacing=(2.5, 2.0, 2.0),
                       network=TINY_NET, val_fraction=0.0, seed=3, warmup_steps=1)  # fmt: skip


def test_the_runs_warnings_reach_an_api_user_who_configured_no_logging(toy_data, tmp_path, capsys):
    """QA s50api: the run's own log handler kept Python's last resort from printing its
    warnings ("no validation patients: ... the last weights") in a notebook: they went to
    train.log only. Printed once; not by the run where a handler of the caller's is there."""
    package = logging.getLogger("napari_livertumor")
    capsys.readouterr()
    with _NoLoggingConfigured():
        list(train(_config_without_validation(toy_data, tmp_path / "a")))
        first = capsys.readouterr().err
        # a handler on the package's logger (the Train panel's process)
        package.addHandler(handler := logging.NullHandler())
        try:
            list(train(_config_without_validation(toy_data, tmp_path / "b")))
        finally:
            package.removeHandler(handler)
        second = capsys.readouterr().err
    assert first.count("no validation patients") == 1, first
    assert "no validation patients" not in second, second
    for out in ("a", "b"):  # and in each run's log as before
        assert "no validation patients" in (tmp_path / out / "liver" / "train.log").read_text()


def test_the_cli_prints_a_runs_warning_once(toy_data, tmp_path, capsys):
    """`livertumor train` configures logging itself: the run adds no printer of its own."""
    from napari_livertumor.cli import main

    recipe = {
        "common": {"epochs": 1, "steps_per_epoch": 1, "roi_size": [16, 32, 32],
                   "target_spacing": [2.5, 2.0, 2.0], "network": TINY_NET,
                   "val_fraction": 0.0}
    }  # fmt: skip
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    args = ["train", "--data", str(toy_data), "--out", str(tmp_path / "m"), "--stage", "liver",
            "--config", str(tmp_path / "recipe.json"), "--cache-dir", _CACHE]  # fmt: skip
    capsys.readouterr()
    with _NoLoggingConfigured():
        assert main(args) == 0
        said = capsys.readouterr().err
    assert said.count("no validation patients") == 1, said


def test_a_run_left_open_logs_only_its_own_work_into_its_log(toy_data, tmp_path):
    """QA s50api: a notebook's `for r in train(cfg): ... break` left the run's handler on the
    package's logger until the generator was collected: the segmentations after it logged into
    that run's train.log. While it waits (in the caller's thread or another), nothing of the
    caller's goes there; the run's own warnings, and its data preparation's thread's, do."""
    import threading

    other = logging.getLogger("napari_livertumor.pipeline")
    cfg = tiny_config(toy_data, tmp_path, epochs=1, steps_per_epoch=3, val_fraction=0.0)
    reports = train(cfg)
    try:
        for r in reports:
            if r["event"] == "prepare":
                other.warning("SAID WHILE THE RUN PREPARES")
            if r["event"] == "step":
                break  # left open, not closed
        other.warning("SAID WITH THE RUN LEFT OPEN")
        thread = threading.Thread(target=other.warning, args=("SAID IN ANOTHER THREAD",))
        thread.start()
        thread.join()
        run_log = (tmp_path / "liver" / "train.log").read_text()
    finally:
        reports.close()
    assert "run started: liver stage" in run_log
    assert "no validation patients" in run_log  # the run's own warning
    assert "SAID" not in run_log
    assert not [h for h in logging.getLogger("napari_livertumor").handlers
                if isinstance(h, logging.FileHandler)]  # fmt: skip
    assert not (tmp_path / "liver" / ".livertumor-run.lock").exists()


def test_the_data_preparations_warnings_go_to_the_runs_log(toy_data, tmp_path, monkeypatch):
    """The run's data is prepared in a thread of its own while the generator reports: its
    warnings (a patient left out) are the run's."""
    import napari_livertumor.training.loop as loop

    prepare = loop._Run._prepare_data

    def warned(self, progress=None):
        loop.log.warning("PREPARED IN ITS THREAD")
        return prepare(self, progress)

    monkeypatch.setattr(loop._Run, "_prepare_data", warned)
    run_all(tiny_config(toy_data, tmp_path, epochs=1, steps_per_epoch=1))
    assert "PREPARED IN ITS THREAD" in (tmp_path / "liver" / "train.log").read_text()


def test_a_refused_run_names_the_config_fields_beside_the_flags(toy_data, tmp_path):
    """QA s50api: an API caller was told "--force" and "--resume", which a TrainConfig does
    not have: its fields overwrite and resume are named too."""
    from napari_livertumor.training.loop import check_before_writing

    (tmp_path / "liver").mkdir()
    (tmp_path / "liver" / "model.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match=r"--force \(overwrite=True; Replace in the Train"):
        check_before_writing(tiny_config(toy_data, tmp_path), check_lock=False)
    with pytest.raises(InputError, match=r"--force, overwrite=True; Replace in the Train"):
        check_before_writing(tiny_config(toy_data, tmp_path, resume=True), check_lock=False)
    # (a model alone has nothing to resume: --resume is named where there is a run's state)
    (tmp_path / "liver" / "last").mkdir()
    (tmp_path / "liver" / "last" / "train_state.pt").write_bytes(b"")
    with pytest.raises(
        InputError, match=r"--resume \(resume=True; Resume.*--force \(overwrite=True; Replace"
    ):
        check_before_writing(tiny_config(toy_data, tmp_path), check_lock=False)


def test_the_learning_rate_warms_up_from_its_first_step_and_decays_to_one_percent():
    """The schedule a run trains with: a linear warm-up whose first step already moves the
    weights, a cosine decay to 1 % of the peak at the run's end, and with a time budget the
    decay follows the clock when it runs ahead of the steps."""
    from napari_livertumor.training.loop import lr_at

    base, total, warmup = 2e-3, 100, 4
    ramp = [lr_at(s, total, base, warmup) for s in range(warmup)]
    assert ramp == pytest.approx([base / 4, base / 2, 3 * base / 4, base])
    assert lr_at(warmup, total, base, warmup) == pytest.approx(base)
    assert lr_at(total, total, base, warmup) == pytest.approx(0.01 * base)
    assert lr_at(total + 50, total, base, warmup) == pytest.approx(0.01 * base)  # no rise after
    assert lr_at(total, total, base, 0) == pytest.approx(0.01 * base)
    # a quarter of the steps but the whole time budget: the end of the decay
    assert lr_at(total // 4, total, base, warmup, time_frac=1.0) == pytest.approx(0.01 * base)
    assert lr_at(total // 4, total, base, warmup, time_frac=0.0) == pytest.approx(
        lr_at(total // 4, total, base, warmup)
    )


def test_a_validation_that_ties_the_best_score_keeps_the_longer_trained_weights(
    toy_data, tmp_path, monkeypatch
):
    """Ties go to the later weights: each validation scoring as the best so far saves its
    model, so the model kept is the last one of equal score."""
    from napari_livertumor.training import loop

    scores = {"val_dice_liver": 0.5, "val_dice_liver_unshifted": 0.5, "logit_bias": 0.0,
              "score": 0.5, "n_val": 1, "n_val_with_class": 1}  # fmt: skip
    monkeypatch.setattr(loop, "validate", lambda *a, **k: dict(scores))
    reports = run_all(tiny_config(toy_data, tmp_path / "m", epochs=2, steps_per_epoch=1))
    epochs = [r for r in reports if r["event"] == "epoch"]
    assert [r.get("saved_best") for r in epochs] == [True, True]
    done = reports[-1]
    assert done["event"] == "done" and done["best_val_dice"] == 0.5


def test_among_logit_shifts_that_score_alike_the_smallest_is_kept():
    """Several shifts giving the best Dice: the one nearest 0 is kept (the model's metadata
    carries it to inference), not the largest."""
    import torch

    from napari_livertumor.training.data import PreparedCase
    from napari_livertumor.training.loop import validate

    class Eager(torch.nn.Module):
        """Tumor logit 7 where x < 0.5 (right), 0.7 elsewhere (over-calls at shift 0)."""

        def forward(self, x):
            tumor = torch.where(x < 0.5, 7.0, 0.7)
            return torch.cat([torch.full_like(x, -5.0), torch.zeros_like(x), tumor], 1), None

    zz = np.broadcast_to(np.linspace(0, 1, 32, dtype=np.float32)[None, None], (16, 32, 32))
    image = np.ascontiguousarray(zz)
    labels = np.where(image < 0.5, 2, 1).astype(np.uint8)
    case = PreparedCase("A", image.astype(np.float16), labels, (1.0, 1.0, 1.0), 0.5)
    cfg = make_config("tumor", roi_size=(16, 32, 32), network=TINY_NET)
    scores = validate(Eager(), [case], cfg, torch.device("cpu"))
    # every shift from -1 to -6 segments it exactly; -1 is the smallest
    assert scores["val_dice_tumor"] == pytest.approx(1.0)
    assert scores["logit_bias"] == -1.0


def test_a_resumed_fine_tune_goes_on_from_its_own_weights_not_the_start_models(toy_data, tmp_path):
    """A fine-tune stopped and resumed ends with the weights of one never stopped: the
    starting model's weights are loaded at step 0 only, never over the resumed state."""
    run_all(tiny_config(toy_data, tmp_path / "a", epochs=1, steps_per_epoch=2))
    start = str(tmp_path / "a" / "liver")
    full = run_all(tiny_config(toy_data, tmp_path / "full", init_from=start))
    n = 0

    def cancel_after_four():
        return n >= 4

    for r in train(tiny_config(toy_data, tmp_path / "cut", init_from=start),
                   should_cancel=cancel_after_four):  # fmt: skip
        n += r["event"] == "step"
    resumed = run_all(tiny_config(toy_data, tmp_path / "cut", init_from=start, resume=True))
    assert [r["step"] for r in resumed if r["event"] == "step"] == [5, 6]
    assert resumed[-1]["last_weights_digest"] == full[-1]["last_weights_digest"]


def test_validating_every_second_epoch_still_validates_the_last_one(toy_data, tmp_path):
    """``val_every`` 2 over 3 epochs: epoch 2 (index 1) is validated, and so is the run's last
    epoch, whose weights may be the best."""
    cfg = tiny_config(toy_data, tmp_path / "m", epochs=3, steps_per_epoch=1, val_every=2)
    reports = run_all(cfg)
    epochs = [r for r in reports if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1, 2]
    assert ["val" in r for r in epochs] == [False, True, True]
    # the step before an epoch with no validation does not say one comes (the panel said
    # "validating…" through epoch 1 and a Stop there said it stopped a validation)
    steps = [r for r in reports if r["event"] == "step"]
    assert [r["validates_next"] for r in steps] == [False, True, True]


def test_a_cli_resume_takes_no_time_budget_from_the_stopped_run(toy_data, tmp_path):
    """``train --resume`` without --max-minutes trains on with no cap: the stopped run's own
    budget (spent, for a run the clock stopped) belongs to its session, not to the resume;
    --max-minutes given on the resume is the resume's."""
    from napari_livertumor.cli import build_parser
    from napari_livertumor.commands.train import build_configs

    out = tmp_path / "o"
    run_all(tiny_config(toy_data, out, epochs=3, steps_per_epoch=2, max_minutes=1e-4))
    given = ["train", "--data", str(toy_data), "--out", str(out), "--stage", "liver", "--resume"]
    (cfg,) = build_configs(build_parser().parse_args(given))
    assert cfg.resume and cfg.steps_per_epoch == 2  # the run's own settings otherwise
    assert cfg.max_minutes is None
    (cfg,) = build_configs(build_parser().parse_args([*given, "--max-minutes", "5"]))
    assert cfg.max_minutes == 5


def test_more_folds_than_patients_are_refused_before_anything_is_prepared(
    toy_data, tmp_path, capsys
):
    """docs/training.md says `--folds K` needs at least K patients, but `train --folds 10
    --fold 0` on 6 patients trained (a 10-fold job array trained folds 0..5, then failed 6..9),
    and `--fold 7` was refused only once the preprocessing had started. Every fold of too
    many is refused now, naming the patient count, before any folder is made."""
    from napari_livertumor.cli import main
    from napari_livertumor.errors import SettingsError
    from napari_livertumor.training.loop import resolve_split

    ids = [f"HCC_{i:03d}" for i in range(1, 5)]
    for fold in (4, 3, 0):
        cfg = tiny_config(toy_data, tmp_path, folds=5, fold=fold)
        with pytest.raises(SettingsError, match="needs at least 5 patients .* holds 4"):
            resolve_split(cfg, ids)
    split = resolve_split(tiny_config(toy_data, tmp_path, folds=4, fold=3), ids)
    assert len(split["test"]) == 1
    out = tmp_path / "run"
    for fold in ("0", "7"):
        rc = main(["train", "--data", str(toy_data), "--out", str(out), "--stage", "liver",
                   "--folds", "10", "--fold", fold, "--epochs", "1", "--steps-per-epoch", "1",
                   "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
        captured = capsys.readouterr()
        assert rc == 1, captured
        assert "--folds 10 needs at least 10 patients" in captured.err, captured.err
        assert "holds 6" in captured.err and "preprocessing" not in captured.out
        assert "== training" not in captured.out, captured.out
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_resuming_a_finished_run_says_it_has_nothing_to_train(toy_data, tmp_path, caplog):
    """A run resumed at exactly its last step trains nothing, and says why (raise the epochs)
    rather than ending 'done' without a word."""
    cfg = tiny_config(toy_data, tmp_path, epochs=1, steps_per_epoch=2)
    run_all(cfg)
    with caplog.at_level("WARNING"):
        resumed = run_all(cfg.with_updates(resume=True))
    assert not [r for r in resumed if r["event"] in ("step", "epoch")]
    notes = [r["text"] for r in resumed if r["event"] == "note"]
    assert any("already reached its 1 epochs (step 2): nothing to train" in t for t in notes)
    assert "raise the epochs to train on" in caplog.text
    assert resumed[-1]["event"] == "done" and resumed[-1]["step"] == 2


def test_a_resume_whose_budget_was_spent_before_it_began_says_so_once(toy_data, tmp_path):
    """Resumed with a time budget the run had already spent, the run says that, once: not
    also that the budget stopped it part-way through this resume (no step ran in it)."""
    cfg = tiny_config(toy_data, tmp_path, epochs=3, max_minutes=1e-4)
    run_all(cfg)
    resumed = run_all(cfg.with_updates(resume=True))
    notes = [r["text"] for r in resumed if r["event"] == "note"]
    assert len(notes) == 1 and "its time budget" in notes[0], notes
    assert "stopped the run at step" not in notes[0]
    assert notes[0].endswith("raise Time budget to train on")  # (the panel's field)


def test_done_says_which_steps_model_was_kept(toy_data, tmp_path, monkeypatch, capsys):
    """A resumed run ended "done: step 24; model in …/tumor" (the CLI's line, train.log and
    the panel) while the model kept was step 4's, the best validation Dice; every later epoch
    scored lower, and nothing said so."""
    from napari_livertumor.training import loop
    from napari_livertumor.training.cli_report import print_reports

    falling = iter([0.5, 0.25, 0.125])

    def validate_scoring_less_each_epoch(*args, **kw):
        score = next(falling)
        return {"val_dice_liver": score, "val_dice_liver_unshifted": score, "logit_bias": 0.0,
                "score": score, "n_val": 1, "n_val_with_class": 1}  # fmt: skip

    monkeypatch.setattr(loop, "validate", validate_scoring_less_each_epoch)
    last = print_reports(train(tiny_config(toy_data, tmp_path, epochs=3, steps_per_epoch=2)),
                         __import__("sys").stdout)  # fmt: skip
    assert last["event"] == "done" and last["step"] == 6
    assert last["model_kept"] == "step 2 (epoch 1), validation Dice 0.500"
    lines = capsys.readouterr().out.splitlines()
    line = lines[-1]
    assert line.startswith('[liver] done: {"model_kept": "step 2 (epoch 1), validation Dice 0.500"')
    assert '"kept"' not in line  # said once, in words: not again as the raw record
    log = (tmp_path / "liver" / "train.log").read_text(encoding="utf-8").splitlines()
    assert log[-1].endswith(
        "run ended: finished, model saved (at step 6; model kept: step 2 (epoch 1), validation "
        "Dice 0.500)"
    ), log[-1]
    # one numbering, from 1, as the Train panel's: train.log called the model of a 3-epoch
    # run's last epoch "epoch 2" where the panel said "epoch 3"
    epochs = [x.split(" step ")[0] for x in lines if x.startswith("[liver] epoch ")]
    assert epochs == ["[liver] epoch 1", "[liver] epoch 2", "[liver] epoch 3"], lines
    assert any(x.startswith("[liver] step 6/6 ep 3 ") for x in lines), lines


@pytest.mark.parametrize(
    "metrics, said",
    [
        ({"score": 0.61, "n_val_with_class": 1}, "step 8 (epoch 2), validation Dice 0.610"),
        (
            {"score": 0.0, "n_val_with_class": 0},
            "step 8 (epoch 2), validation Dice not measured (no validation patient has the class)",
        ),
        (
            {"note": "no validation patients; final weights"},
            "step 8 (epoch 2), the final weights (not validated)",
        ),
    ],
    ids=["scored", "no-tumor-in-validation", "final-weights"],
)
def test_the_model_kept_is_said_as_its_metadata_records_it(tmp_path, metrics, said):
    """The done line, train.log and the Train panel name the model a run kept. A validated
    model whose validation set had no tumor must not read "the final weights (not validated)",
    nor the final weights of a run without validation patients "validation … not measured"."""
    from napari_livertumor.training.loop import kept_model, kept_model_text

    meta = {"training": {"steps": 8, "config": {"steps_per_epoch": 4}}, "metrics": metrics}
    (tmp_path / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    kept = kept_model(tmp_path)
    assert kept["validated"] is ("note" not in metrics)
    assert kept["epoch"] == 1  # stored from 0; said from 1 (the second epoch's last step)
    assert kept_model_text(kept) == said


def test_the_command_line_says_the_time_a_stages_steps_have_left():
    """The step lines said the step's seconds only; a run of hours could not be planned. They
    say the time the stage's steps have left (each stage its own: --stage both trains one,
    then the other), worked out from the median wall time of the latest steps, their data's
    loading included (the first step's warm-up left out)."""
    import io

    from napari_livertumor.training.cli_report import StepClock, duration_text, print_reports

    def step(stage, n, total, interval, **extra):  # (a run without validation patients)
        return {"event": "step", "stage": stage, "step": n, "total_steps": total, "epoch": 0,
                "losses": {"total": 0.5}, "train_dice": None, "lr": 1e-3, "seconds": 1.0,
                "samples_per_s": 2.0, "interval_s": interval, "val_every_steps": 0,
                **extra}  # fmt: skip

    out = io.StringIO()
    reports = [step("liver", n, 110, 300.0 if n == 1 else 3.0) for n in range(1, 11)]
    reports += [step("tumor", n, 70, 2.0) for n in range(1, 11)]
    print_reports(reports, out)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("1.00s/step 2.00 samples/s; liver: estimating time left…")
    assert lines[1].startswith("[liver] step 10/110")
    assert lines[1].endswith("; liver: ~5 min left")  # 100 steps × 3 s (not 300 s)
    assert lines[2].endswith("; tumor: estimating time left…")  # (a clock of its own)
    assert lines[3].startswith("[tumor] step 10/70")
    assert lines[3].endswith("; tumor: ~2 min left")  # 60 steps × 2 s
    # the median: a pause or a slow step does not sway it
    clock = StepClock()
    for n, interval in enumerate((60.0, 2.0, 2.0, 90.0, 2.0), start=1):
        clock.add(step("liver", n, 10, interval))
    assert clock.per_step() == 2.0
    assert clock.text(step("liver", 5, 10, 2.0)) == "~10 s left"
    assert clock.text(step("liver", 10, 10, 2.0)) == "none left"  # (not "~1 s left")
    # a time budget that runs out first
    budget = step("liver", 5, 1000, 2.0, budget_s=61.0)
    assert clock.text(budget) == "~1 min left (time budget: ends near step 36)"
    assert clock.text(budget, near_step=False) == "~1 min left (time budget)"
    assert [duration_text(s) for s in (0.2, 44.6, 89, 3599, 3600 * 5 + 12 * 60, 40 * 3600)] == [
        "1 s", "45 s", "1 min", "1 h 00 min", "5 h 12 min", "40 h"
    ]  # fmt: skip


def _timed_step(n, total=45, interval=1.2, every=15, **extra):
    """A step report of a run validating after every ``every`` steps (and after its last)."""
    return {"event": "step", "stage": "liver", "step": n, "total_steps": total,
            "epoch": (n - 1) // 15, "losses": {"total": 0.5}, "train_dice": None, "lr": 1e-3,
            "seconds": 1.0, "samples_per_s": 2.0, "interval_s": interval, "budget_s": None,
            "val_every_steps": every, "validates_next": bool(every) and (n % every == 0 or n == total),
            **extra}  # fmt: skip


def test_the_time_left_counts_the_validations_still_to_come_once_one_is_timed():
    """Steps of 1.2 s, validations of 55 s: at step 16 of 45 the time left read "~35 s" and
    the run ended 137 s later, at step 44 "~1 s" and it ended 55 s later: the validations
    were left out. Once one is timed (the epoch report's ``val_s``), those still to come are
    counted at its median; before, the figure is the steps' and says so (+ validations)."""
    import io

    from napari_livertumor.training.cli_report import StepClock, print_reports

    reports = []
    for n in range(1, 46):
        reports.append(_timed_step(n))
        if n % 15 == 0:
            reports.append({"event": "epoch", "stage": "liver", "epoch": n // 15 - 1, "step": n,
                            "train_loss": 0.5, "val": {"score": 0.5}, "val_dice": 0.5,
                            "val_s": 55.0, "seconds": 60.0})  # fmt: skip
    clock, said = StepClock(), {}
    for r in reports:
        clock.add(r)
        if r["event"] == "step":
            said[r["step"]] = (clock.text(r, near_step=False), clock.line_text(r))
    # the steps' 37 s (31 × 1.2 s) and three validations, not yet timed
    assert said[14] == ("~37 s left + validations", "liver steps: ~37 s left + validations")
    # 29 steps (35 s) and the validations after steps 30 and 45 (2 × 55 s)
    assert said[16] == ("~2 min left", "liver: ~2 min left")
    assert clock.left(reports[17]).validations == 2
    assert said[44] == ("~56 s left", "liver: ~56 s left")  # one step and the last validation
    assert said[45] == ("~55 s left", "liver: ~55 s left")  # (validating: the last one)
    out = io.StringIO()
    print_reports(reports, out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("[liver] step ")]
    assert lines[1].endswith("; liver steps: ~42 s left + validations")  # step 10
    assert lines[3].endswith("; liver: ~2 min left")  # step 20: the validation at 15 timed
    assert lines[-1].endswith("; liver: ~55 s left; validating…")
    # the median: a validation's warm-up does not sway it
    for t in (90.0, 50.0):
        clock.add({"event": "epoch", "stage": "liver", "val_s": t})
    assert clock.per_validation() == 55.0
    # a run without validation patients: the steps' time is the whole
    alone = StepClock()
    for n in range(1, 6):
        alone.add(_timed_step(n, every=0))
    assert alone.line_text(_timed_step(5, every=0)) == "liver: ~48 s left"  # 40 × 1.2 s


def test_a_budget_forecast_names_no_step_an_untimed_validation_comes_before():
    """30 epochs × 10 steps, a validation after every 10, a 1-min budget: at step 6 the time
    left said "ends near step 18" (its steps' 3.4 s alone), but the validation after step 10
    took 65 s and the run ended at step 10. Before a validation is timed, no step is said
    where one comes before it; once one is, the validations before the step are counted."""
    import io

    from napari_livertumor.training.cli_report import StepClock, TimeLeft, print_reports

    def step(n, budget):
        return _timed_step(n, total=300, interval=3.4, every=10, budget_s=budget)

    clock = StepClock()
    for n in range(1, 7):
        clock.add(step(n, 60 - 3.4 * n))
    at6 = step(6, 60 - 3.4 * 6)
    left = clock.left(at6)
    assert left == TimeLeft(39.6, None, False, None, budget_ends=True)
    assert "near step" not in clock.text(at6)
    assert clock.text(at6) == (
        "~40 s left + validations (time budget: its end step is said once a validation is timed)"
    )
    assert clock.text(at6, near_step=False) == "~40 s left + validations (time budget)"
    # past the validation, with none before the end step: the step is said
    assert clock.text(step(12, 20.0)) == "~20 s left + validations (time budget: ends near step 18)"
    # once one is timed (65 s), those before the end step are counted: 8 steps and the
    # validation after step 20 (92.2 s) leave 7.8 s of 100: three steps more
    clock.add({"event": "epoch", "stage": "liver", "val_s": 65.0})
    assert clock.left(step(12, 100.0)) == TimeLeft(165.0, 2, True, 23)
    assert clock.text(step(12, 100.0)) == "~3 min left (time budget: ends near step 23)"
    assert clock.left(step(12, 90.0)) == TimeLeft(pytest.approx(92.2), 1, True, 20)
    # the command line's step lines say the same
    out = io.StringIO()
    print_reports([step(n, 60 - 3.4 * n) for n in range(1, 11)], out)
    line = [x for x in out.getvalue().splitlines() if x.startswith("[liver] step 10/")][0]
    assert "near step" not in line
    assert "liver steps: ~26 s left + validations (time budget: its end step is said" in line


def test_a_budget_forecast_to_run_out_in_the_next_validation_is_not_said_reached():
    """The step before a validation said "time budget reached" where the budget was only
    forecast to run out in it (a validation timed at 43 s, 30 s of budget left), and the run
    went on twice after such a line; and a budget too large for a float (``--max-minutes
    1e308``: ``budget_s`` inf) raised OverflowError out of the CLI's and the panel's clock."""
    from napari_livertumor.training.cli_report import StepClock

    clock = StepClock()
    for n in range(1, 16):
        clock.add(_timed_step(n))
    clock.add({"event": "epoch", "stage": "liver", "val_s": 43.0})
    forecast = _timed_step(30, budget_s=30.0)
    assert clock.left(forecast).ends_near == 30 and not clock.left(forecast).reached
    said = clock.line_text(forecast)
    assert "reached" not in said
    assert said == "liver: ~43 s left (time budget: likely ends after this validation)"
    ends = _timed_step(30, budget_s=0.0)
    assert clock.left(ends).reached and "reached" in clock.line_text(ends)
    for huge in (float("inf"), 1e308):  # (as without a budget: 15 steps, 2 validations)
        assert clock.text(_timed_step(30, budget_s=huge)) == "~2 min left"
        assert clock.text(_timed_step(31, budget_s=huge)) == clock.text(_timed_step(31))


def test_the_time_left_under_a_time_budget_counts_its_final_validation():
    """Where the time budget ends the run first, the time left is the budget's and its final
    validation's; at the step it runs out, "time budget reached" (said "~1 s left", as the
    budget's 0 s rounded up)."""
    from napari_livertumor.training.cli_report import StepClock, TimeLeft, validations_left

    clock = StepClock()
    for n in range(1, 6):
        clock.add(_timed_step(n))
    ends = _timed_step(10, budget_s=0.0, validates_next=True)
    assert clock.text(ends) == "time budget reached"
    assert clock.line_text(ends) == "liver: time budget reached"
    early = StepClock()  # (said before the steps are timed too)
    assert early.text(_timed_step(1, budget_s=0.0)) == "time budget reached"
    # before a validation is timed: the budget's time, and the validation on top (no
    # validation comes before step 29: the steps alone end it there)
    budget = _timed_step(16, budget_s=15.0)
    assert clock.text(budget) == "~15 s left + validations (time budget: ends near step 29)"
    clock.add({"event": "epoch", "stage": "liver", "val_s": 55.0})
    assert clock.text(ends) == "~55 s left (time budget reached)"
    # 14 steps (17 s), the validation after step 30 (55 s), then steps again: a budget of
    # 80 s runs out near step 37, and the run ends with its final validation (55 s)
    budget = _timed_step(16, budget_s=80.0)
    assert clock.text(budget) == "~2 min left (time budget: ends near step 37)"
    assert clock.left(budget) == TimeLeft(135.0, 2, True, 37)  # (the one after step 30 too)
    # one of 60 s runs out in the validation after step 30: the run ends there
    assert clock.left(_timed_step(16, budget_s=60.0)) == TimeLeft(71.8, 1, True, 30)
    # the last step ends within 100 s: the budget runs out in the last validation, which was
    # due anyway (the steps' and validations' 145 s are the time left)
    assert clock.text(_timed_step(16, budget_s=100.0)) == "~2 min left"
    assert [validations_left(s, 45, 15) for s in (1, 15, 16, 44, 45)] == [3, 3, 2, 1, 1]
    assert [validations_left(s, 40, 15) for s in (1, 31, 40)] == [3, 1, 1]  # (the last: 40)
    assert validations_left(3, 45, 0) == 0 and validations_left(3, 45, None) is None
