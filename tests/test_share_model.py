"""``livertumor share-model``: a model folder to give away, without its patients' records."""

from __future__ import annotations

import hashlib
import json

import pytest

from napari_livertumor.cli import main
from napari_livertumor.errors import InputError, ModelError
from napari_livertumor.models import (
    ModelMetadata,
    NetworkConfig,
    build_inference_network,
    read_metadata,
    save_model,
)
from napari_livertumor.models.share import share_model

TINY = NetworkConfig(out_channels=3, init_filters=4)

#: patient IDs as clinics and downloads name them: numbers, words, one inside another
IDS = ["1", "2", "19", "4", "HCC_1", "HCC_10", "liver", "Mueller_Anna_MRN123456"]


def _model(folder, stage="tumor", ids=IDS, method="by hand: HCC_10"):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = build_inference_network(TINY)
    train, test = ids[:-2], ids[-2:]
    meta = ModelMetadata(
        stage=stage,
        network=TINY,
        hu_window=(-200.0, 250.0),
        target_spacing=(2.5, 1.5, 1.5),
        roi_size=(16, 32, 32),
        label_map={"0": "background", "1": "liver", "2": "tumor"},
        training={
            "data": {
                "data": "/hospital/cohorts/liver_2026",
                "split": {"train": train, "val": [], "test": test, "method": method},
                "skipped": [["HCC_10", "HCC_10/ct.nii.gz: unreadable"]],
            },
            "weak": {
                "enabled": True,
                "labels": {c: {"weak": 0.1, "tlvr": 0.12} for c in train},
                "report": ["Mueller_Anna_MRN123456: AFP '<5' read as 5"],
                "note": "out-of-fold correlation -0.19 over 4 patients",
            },
        },
        metrics={"lesions_found": "54/105", "val_dice_tumor": 0.5},
    )
    save_model(folder, net.state_dict(), meta)
    split = {"train": train, "val": [], "test": test, "fingerprints": {c: "ab" for c in ids}}
    (folder / "split.json").write_text(json.dumps(split))
    return folder


def test_ids_are_renamed_where_they_are_ids_never_in_field_names_numbers_or_stages(tmp_path):
    """A patient named 1 renamed label_map's channel "1" and the version "0.1.0", one named 4
    or 19 the numbers of a note: the copy did not load."""
    src = _model(tmp_path / "m")
    report = share_model(src, tmp_path / "pub")
    raw = json.loads((tmp_path / "pub" / "metadata.json").read_text())
    orig = json.loads((src / "metadata.json").read_text())
    for key in ("label_map", "stage", "version", "network", "weights_sha1", "hu_window"):
        assert raw[key] == orig[key], key
    assert raw["metrics"] == orig["metrics"]  # "54/105" is no patient list
    weak = raw["training"]["weak"]
    assert weak["note"] == orig["training"]["weak"]["note"]
    assert "labels" not in weak and "report" not in weak and weak["n_labels_left_out"] == 6
    split = raw["training"]["data"]["split"]
    names = {c: f"case-{i:03d}" for i, c in enumerate(sorted(IDS), 1)}
    assert split["train"] == [names[c] for c in IDS[:-2]]
    assert split["method"] == f"by hand: {names['HCC_10']}"
    assert raw["training"]["data"]["skipped"] == [[names["HCC_10"]]]
    assert raw["training"]["data"]["data"] == "liver_2026"
    shared = json.loads((tmp_path / "pub" / "split.json").read_text())
    assert sorted(shared["fingerprints"]) == sorted(names.values())
    assert report.patients_renamed == len(IDS)
    meta = read_metadata(tmp_path / "pub")
    assert meta.stage == "tumor" and meta.label_map == orig["label_map"]


def test_force_leaves_nothing_of_an_earlier_share_and_a_refusal_nothing_at_all(tmp_path):
    run = tmp_path / "run"
    _model(run / "liver", stage="liver", ids=["a1", "b2", "c3"])
    _model(run / "tumor", ids=["a1", "b2", "c3"])
    pub = tmp_path / "pub"
    share_model(run / "tumor", pub)  # one model at the top of the folder
    assert main(["share-model", str(run), "-o", str(pub), "--force"]) == 0
    assert sorted(p.name for p in pub.iterdir()) == ["liver", "tumor"]  # no stale top model
    # weights that are not the metadata's: refused, and the share already there kept whole
    before = {p: p.read_bytes() for p in pub.rglob("*") if p.is_file()}
    weights = run / "tumor" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"    ")
    with pytest.raises(ModelError, match="SHA-1"):
        share_model(run, pub, force=True)
    assert {p: p.read_bytes() for p in pub.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pub", "run"]  # no staging left


def test_a_stage_stopped_before_its_first_model_is_said_not_shared(tmp_path, capsys):
    run = tmp_path / "run"
    _model(run / "liver", stage="liver", ids=["a1", "b2", "c3"])
    (run / "tumor" / "last").mkdir(parents=True)
    assert main(["share-model", str(run), "-o", str(tmp_path / "pub")]) == 0
    assert "tumor/: no model yet" in capsys.readouterr().out
    assert not (tmp_path / "pub" / "tumor").exists()
    only = tmp_path / "stopped"
    _model(only / "liver" / "last", stage="liver", ids=["a1", "b2", "c3"])
    with pytest.raises(ModelError, match="stopped before saving one"):
        share_model(only, tmp_path / "pub2")


def test_a_model_in_the_other_stages_folder_is_refused_as_segment_refuses_it(tmp_path):
    """A liver model put in tumor/ was shared; segment refused the copy."""
    run = tmp_path / "run"
    _model(run / "liver", stage="liver", ids=["a1", "b2", "c3"])
    _model(run / "tumor", stage="liver", ids=["a1", "b2", "c3"])
    with pytest.raises(ModelError, match="this is a liver model; a tumor model is needed here"):
        share_model(run, tmp_path / "pub")
    assert not (tmp_path / "pub").exists()


def test_weights_are_checked_without_a_sha1_and_the_copy_gets_one(tmp_path):
    """An older model (no weights_sha1) with weights cut short was shared, rc 0."""
    src = _model(tmp_path / "m", ids=["a1", "b2", "c3"])
    meta = json.loads((src / "metadata.json").read_text())
    del meta["weights_sha1"]
    (src / "metadata.json").write_text(json.dumps(meta))
    share_model(src, tmp_path / "pub")
    weights = (src / "model.safetensors").read_bytes()
    shared = json.loads((tmp_path / "pub" / "metadata.json").read_text())
    assert shared["weights_sha1"] == hashlib.sha1(weights, usedforsecurity=False).hexdigest()
    (src / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ModelError, match="cut short") as err:
        share_model(src, tmp_path / "pub2")
    assert "model.safetensors" in str(err.value)
    assert not (tmp_path / "pub2").exists()


def test_a_persons_notes_at_the_top_are_scrubbed_as_the_training_record_is(tmp_path):
    """Top-level "_note"/"#…" keys were copied verbatim: IDs and paths and all."""
    src = _model(tmp_path / "m")
    meta = json.loads((src / "metadata.json").read_text())
    meta["_note"] = "trained at /data/hospital/secret on HCC_10 and HCC_1, see /data/x/HCC_1/ct"
    meta["#cases"] = {"Mueller_Anna_MRN123456": "C:\\hospital\\scans\\mueller.nii.gz"}
    (src / "metadata.json").write_text(json.dumps(meta))
    share_model(src, tmp_path / "pub")
    text = (tmp_path / "pub" / "metadata.json").read_text()
    for leak in ("HCC_1", "Mueller", "hospital", "/data"):
        assert leak not in text, leak
    raw = json.loads(text)
    names = {c: f"case-{i:03d}" for i, c in enumerate(sorted(IDS), 1)}
    assert raw["_note"] == (f"trained at secret on {names['HCC_10']} and {names['HCC_1']}, see ct")
    assert raw["#cases"] == {names["Mueller_Anna_MRN123456"]: "mueller.nii.gz"}
    assert raw["stage"] == "tumor" and raw["label_map"]["1"] == "liver"  # a patient "liver"


def test_a_range_of_ids_is_renamed_with_as_many_patients(tmp_path):
    """ "HCC_061-065 to validation" was left as written (an ID followed by "-")."""
    ids = ["HCC_061", "HCC_062", "HCC_063", "HCC_064", "HCC_065", "HCC_066", "HCC_070"]
    method = "HCC_061-065 to validation, HCC_066-HCC_070 to training, HCC_062–064 checked"
    src = _model(tmp_path / "m", ids=ids, method=method)
    share_model(src, tmp_path / "pub")
    want = "case-001-005 to validation, case-006-007 to training, case-002–004 checked"
    raw = json.loads((tmp_path / "pub" / "metadata.json").read_text())
    assert raw["training"]["data"]["split"]["method"] == want
    assert "HCC" not in (tmp_path / "pub" / "metadata.json").read_text()


def test_a_model_card_naming_other_weights_is_warned_of(tmp_path, capsys):
    """A retrained run's folder kept the shipped card (its SHA-1 not the weights')."""
    src = _model(tmp_path / "m", ids=["a1", "b2", "c3"])
    other = "c487fc953e1162831d30ad33400ecd8a4aa73c95"
    (src / "MODEL_CARD.md").write_text(f"| Weights | `model.safetensors` SHA-1 `{other}` |\n")
    assert main(["share-model", str(src), "-o", str(tmp_path / "pub")]) == 0
    err = capsys.readouterr().err
    sha = json.loads((src / "metadata.json").read_text())["weights_sha1"]
    assert "warning" in err and str(src / "MODEL_CARD.md") in err
    assert other in err and sha in err
    (src / "MODEL_CARD.md").write_text(f"Weights SHA-1 {sha[:12]}…\n")  # the card of these
    assert main(["share-model", str(src), "-o", str(tmp_path / "pub2")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_stage_folder_that_is_no_model_is_said_not_shared(tmp_path, capsys):
    run = tmp_path / "run"
    _model(run / "liver", stage="liver", ids=["a1", "b2", "c3"])
    (run / "tumor").mkdir()
    (run / "tumor" / "notes.txt").write_text("to do")
    assert main(["share-model", str(run), "-o", str(tmp_path / "pub")]) == 0
    assert "tumor/: not a model" in capsys.readouterr().out
    assert not (tmp_path / "pub" / "tumor").exists()


def _shared_run(tmp_path):
    """A run's folder with both stages' models, and a share of it already in ``pub``."""
    run = tmp_path / "run"
    _model(run / "liver", stage="liver", ids=["a1", "b2", "c3"])
    _model(run / "tumor", ids=["a1", "b2", "c3"])
    pub = tmp_path / "pub"
    share_model(run, pub)
    return run, pub


def _files(folder, root=None):
    """``folder``'s files' bytes by their paths in ``root`` (``folder``)."""
    root = folder if root is None else root
    return {p.relative_to(root): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_force_never_removes_a_persons_or_a_runs_files_and_says_what_it_removed(tmp_path, capsys):
    """--force deleted any liver/ and tumor/ in OUT, their notes and scans with them (another
    run's last/ and train.log too), without a word."""
    run, pub = _shared_run(tmp_path)
    proj = tmp_path / "proj"
    (proj / "liver").mkdir(parents=True)
    (proj / "tumor").mkdir()
    (proj / "liver" / "ct_notes.txt").write_text("notes")
    (proj / "tumor" / "case.nii.gz").write_bytes(b"x")
    (proj / "README.txt").write_text("keep")
    before = _files(proj)
    assert main(["share-model", str(run), "-o", str(proj), "--force"]) == 1
    err = capsys.readouterr().err
    assert "liver: holds files that are not a model's (ct_notes.txt)" in err
    assert _files(proj) == before and sorted(p.name for p in proj.iterdir()) == [
        "README.txt",
        "liver",
        "tumor",
    ]
    # another training run's folder: its model sits beside last/ and train.log
    other = tmp_path / "runs" / "mine"
    _model(other / "liver", stage="liver", ids=["a1", "b2", "c3"])
    (other / "liver" / "last").mkdir()
    (other / "liver" / "train.log").write_text("epoch 1")
    before = _files(other)
    with pytest.raises(ModelError, match=r"last/, train\.log\)"):
        share_model(run, other, force=True)
    assert _files(other) == before
    # a model at OUT's top beside a run's files is not replaced either
    (other / "metadata.json").write_bytes((run / "tumor" / "metadata.json").read_bytes())
    (other / "train.log").write_text("x")
    with pytest.raises(ModelError, match="holds a training run"):
        share_model(run / "tumor", other, force=True)
    # the share made before is replaced, said; a person's file beside it is left alone
    (pub / "README.txt").write_text("mine")
    assert main(["share-model", str(run / "tumor"), "-o", str(pub), "--force"]) == 0
    out = capsys.readouterr().out
    assert f"removed {pub / 'liver'}/, {pub / 'tumor'}/" in out
    assert sorted(p.name for p in pub.iterdir()) == [
        "README.txt",
        "metadata.json",
        "model.safetensors",
        "split.json",
    ]
    assert (pub / "README.txt").read_text() == "mine"


def test_a_share_across_file_systems_is_copied_and_a_failed_swap_keeps_the_old_share(
    tmp_path, monkeypatch
):
    """OUT on another file system than the folder above it (a USB stick's mount point): the
    rename from the copy's folder failed ("Invalid cross-device link"), and with --force the
    share already there had been deleted first."""
    import errno
    import os

    run, pub = _shared_run(tmp_path)
    before = _files(pub)
    rename = os.replace

    def across(src, dst, *args, **kwargs):  # the copy's hidden folder on another device
        if ".share-" in str(src) and ".share-" not in str(dst):
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src), None, str(dst))
        return rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", across)
    report = share_model(run / "tumor", tmp_path / "usb")
    assert sorted(p.name for p in (tmp_path / "usb").iterdir()) == [
        "metadata.json",
        "model.safetensors",
        "split.json",
    ]
    read_metadata(tmp_path / "usb")
    assert len(report.written) == 3
    # a move that fails part-way (the disk full as the second stage goes in): the old share
    # put back whole, no new file left, nor the hidden folder
    calls = []

    def full(src, dst, *args, **kwargs):
        if ".share-" in str(src) and ".share-" not in str(dst):
            calls.append(dst)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(dst))
        return rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    (run / "liver" / "MODEL_CARD.md").write_text("# new card")
    with pytest.raises(OSError, match="No space left") as info:
        share_model(run, pub, force=True)
    assert ".share-" not in str(info.value) and info.value.filename == str(pub / "tumor")
    assert _files(pub) == before
    assert sorted(p.name for p in pub.iterdir()) == ["liver", "tumor"]


def _ctrl_c_after_the_first_move_in(monkeypatch) -> list:
    """One Ctrl-C once the first of the copy's files or folders has moved into OUT (the
    swap); the moves into OUT are listed in the list returned."""
    import os
    import signal

    rename = os.replace
    moves = []

    def interrupted(src, dst, *args, **kwargs):
        result = rename(src, dst, *args, **kwargs)
        if ".share-" in str(src) and ".share-" not in str(dst):
            moves.append(dst)
            if len(moves) == 1:
                signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(os, "replace", interrupted)
    return moves


def test_a_stop_during_the_swap_waits_for_it_to_end(tmp_path, monkeypatch):
    """Ctrl-C between the moves into OUT left the new liver/ and no tumor/ at all."""
    run, pub = _shared_run(tmp_path)
    (run / "liver" / "MODEL_CARD.md").write_text("# new card")
    moves = _ctrl_c_after_the_first_move_in(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        share_model(run, pub, force=True)
    assert len(moves) == 2  # the swap finished: the new share whole
    assert (pub / "liver" / "MODEL_CARD.md").read_text() == "# new card"
    read_metadata(pub / "tumor")
    assert sorted(p.name for p in pub.iterdir()) == ["liver", "tumor"]  # no hidden folder


def test_errors_name_out_or_the_given_file_never_a_hidden_folder(tmp_path, monkeypatch):
    """Errors named the copy's temporary folder beside OUT, or no file at all (a full disk),
    and a warning about the copy named a folder already gone."""
    import errno
    import pathlib
    import warnings

    run, pub = _shared_run(tmp_path)
    before = _files(pub)
    real = pathlib.Path.write_bytes

    def full(self, data):
        if ".share-" in str(self):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    with pytest.raises(OSError, match="No space left") as info:
        share_model(run, pub, force=True)
    assert info.value.filename == str(pub)
    assert _files(pub) == before
    with pytest.raises(OSError) as info:
        share_model(run, tmp_path / "new" / "pub")
    assert info.value.filename == str(tmp_path / "new" / "pub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pub", "run"]  # "new" made, removed
    monkeypatch.undo()
    if pathlib.Path("/proc/self").is_dir():  # a folder that takes no new files
        with pytest.raises(InputError, match=r"^/proc/x: cannot be created"):
            share_model(run, "/proc/x")
    # a note the source's metadata holds: warned of once, naming the source's file
    meta = run / "tumor" / "metadata.json"
    meta.write_text(meta.read_text().replace('"stage"', '"zzq_extra": 1, "stage"'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        share_model(run / "tumor", tmp_path / "pub2")
    said = [str(w.message) for w in caught if "zzq_extra" in str(w.message)]
    assert len(said) == 1 and said[0].startswith(str(meta)), said
    # weights missing: said as segment says it
    (run / "liver" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="model.safetensors: missing model.safetensors"):
        share_model(run, tmp_path / "pub3")
    assert not (tmp_path / "pub3").exists()


def test_a_git_commit_in_the_model_card_is_not_taken_for_the_weights_sha1(tmp_path, capsys):
    """Any 40 hex digits in a card were read as the weights' SHA-1: a card naming the commit
    it was written at warned of "other weights"."""
    src = _model(tmp_path / "m", ids=["a1", "b2", "c3"])
    commit = "4ff468c0607c8b29f475547167eb9d0a5e559453"
    (src / "MODEL_CARD.md").write_text(f"Trained at git commit {commit}.\n")
    assert main(["share-model", str(src), "-o", str(tmp_path / "pub")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_sigterm_while_copying_leaves_out_as_it_was_without_a_hidden_folder(tmp_path, monkeypatch):
    """A plain `timeout` (SIGTERM) during the copy left a hidden .share-* folder in OUT holding
    part of the weights; a later share into it read "not empty" with nothing to see."""
    import pathlib
    import signal

    run, pub = _shared_run(tmp_path)
    before = _files(pub)
    real = pathlib.Path.write_bytes

    def stopped(self, data):
        if ".share-" in str(self):
            signal.raise_signal(signal.SIGTERM)
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", stopped)
    assert main(["share-model", str(run), "-o", str(pub), "--force"]) == 143
    assert _files(pub) == before
    assert not [p for p in pub.iterdir() if p.name.startswith(".share-")]
    fresh = tmp_path / "fresh"
    assert main(["share-model", str(run), "-o", str(fresh)]) == 143
    assert not fresh.exists()  # made for the share, removed again


def test_a_stop_held_over_the_swap_says_the_new_share_was_written(tmp_path, monkeypatch, capsys):
    """A Ctrl-C during the swap ends it first; the command then said only "interrupted",
    read as nothing replaced, while OUT held the new share."""
    run, pub = _shared_run(tmp_path)
    _ctrl_c_after_the_first_move_in(monkeypatch)
    assert main(["share-model", str(run), "-o", str(pub), "--force"]) == 130
    assert f"wrote {pub} whole before the stop" in capsys.readouterr().out
    read_metadata(pub / "tumor")


def test_a_path_with_spaces_in_a_note_is_cut_whole_and_the_words_after_it_kept(tmp_path):
    """A path with spaces in a note was cut only up to its first space: "/data/My
    Cohort/HCC_1 scans" became "Cohort/HCC_1 scans", a folder of the path and a patient's ID
    left in the copy."""
    src = _model(tmp_path / "m")
    meta = json.loads((src / "metadata.json").read_text())
    meta["_note"] = "trained on /data/My Cohort/HCC_10 scans, the rest as before"
    meta["#win"] = "see C:\\Users\\Dr Jones\\Patients\\Mary Ann Lee\\ct.nii for HCC_1"
    meta["#unc"] = "copied from \\\\pacs\\Radiology Dept\\Smith John 1962\\CT (arterial)"
    meta["#quoted"] = "read \"/data/Study A/Mueller_Anna_MRN123456 ct.nii\" and '~/Lee, Mary/x'"
    meta["#two"] = "from /data/Old Scans/a.nii to /data/New Scans/b.nii; done"
    meta["#prog"] = "tool at C:\\Program Files (x86)\\Seg\\seg.exe, run twice"
    (src / "metadata.json").write_text(json.dumps(meta))
    report = share_model(src, tmp_path / "pub")
    text = (tmp_path / "pub" / "metadata.json").read_text()
    for leak in ("HCC_1", "Mueller", "Cohort", "Jones", "Mary", "Lee", "Smith", "pacs", "Study"):
        assert leak not in text, leak
    raw = json.loads(text)
    names = {c: f"case-{i:03d}" for i, c in enumerate(sorted(IDS), 1)}
    assert raw["_note"] == f"trained on {names['HCC_10']} scans, the rest as before"
    assert raw["#win"] == f"see ct.nii for {names['HCC_1']}"
    assert raw["#unc"] == "copied from CT (arterial)"
    assert raw["#quoted"] == f"read \"{names['Mueller_Anna_MRN123456']} ct.nii\" and 'x'"
    assert raw["#two"] == "from a.nii to b.nii; done"
    assert raw["#prog"] == "tool at seg.exe, run twice"
    assert report.paths_shortened >= 7


@pytest.mark.parametrize(
    ("note", "shared"),
    [  # a sentence's words after a path were taken for a folder's name, and lost
        ("see /data/x and/or /data/y", "see x and/or y"),
        ("cohort /data/liver with 12/05/2026 scans", "cohort liver with 12/05/2026 scans"),
        ("model from /data/x used 1/3 of cases", "model from x used 1/3 of cases"),
        ("compare /data/x vs. ~/y with a 50/50 split", "compare x vs. y with a 50/50 split"),
        ("at /data/a then w/o contrast", "at a then w/o contrast"),
        ("store /data/a as is, n/a", "store a as is, n/a"),
        ("patients from /data/a, others from b/c", "patients from a, others from b/c"),
        ("see https://example.org/a b", "see https://example.org/a b"),
    ],
)
def test_a_notes_own_words_after_a_path_are_kept(note, shared):
    from napari_livertumor.models.share import ShareReport, _paths_in_text

    assert _paths_in_text(note, ShareReport()) == shared


def test_force_never_leaves_a_folder_of_two_models_parts(tmp_path, capsys):
    """A one-stage model shared with --force into a training run's folder went to its top,
    beside the run's liver/ and tumor/: segment --models took the run's models, share-model
    the new one."""
    run, pub = _shared_run(tmp_path)
    other = tmp_path / "other"  # a training run's folder: its stages beside last/, train.log
    _model(other / "liver", stage="liver", ids=["a1", "b2", "c3"])
    _model(other / "tumor", ids=["a1", "b2", "c3"])
    (other / "tumor" / "train.log").write_text("epoch 1")
    before = _files(other)
    assert main(["share-model", str(run / "tumor"), "-o", str(other), "--force"]) == 1
    err = capsys.readouterr().err
    assert f"{other / 'tumor'}: holds a model" in err and "train.log" in err
    assert _files(other) == before
    # one stage of a run into a share of two: the other stage's model there is not replaced
    # by anything, and would stay beside the new one
    half = tmp_path / "half"
    _model(half / "liver", stage="liver", ids=["a1", "b2", "c3"])
    (pub / "tumor" / "notes.txt").write_text("mine")
    before = _files(pub)
    with pytest.raises(ModelError, match="holds a model"):
        share_model(half, pub, force=True)
    assert _files(pub) == before
    # a share of two stages replaced whole by one of one stage, and the reverse
    (pub / "tumor" / "notes.txt").unlink()
    report = share_model(half, pub, force=True)
    assert sorted(p.name for p in pub.iterdir()) == ["liver"]
    assert [str(p) for p in report.replaced] == [f"{pub / 'liver'}/", f"{pub / 'tumor'}/"]
    share_model(run / "tumor", pub, force=True)
    assert sorted(p.name for p in pub.iterdir()) == [
        "metadata.json",
        "model.safetensors",
        "split.json",
    ]
    share_model(run, pub, force=True)
    assert sorted(p.name for p in pub.iterdir()) == ["liver", "tumor"]


def _killed_share(out, pid, *, old=False):
    """OUT's hidden folder as a share-model run killed (SIGKILL) while writing leaves it."""
    import socket
    import time

    work = out / ".share-k1ll3d_x"
    (work / "new" / "liver").mkdir(parents=True)
    (work / "new" / "liver" / "model.safetensors").write_bytes(b"part of the weights")
    owner = {"pid": pid, "host": socket.gethostname(), "started": time.time() - 5}
    (work / "owner.json").write_text(json.dumps(owner))
    if old:  # killed during the swap: the share it replaced moved aside
        (work / "old" / "tumor").mkdir(parents=True)
        (work / "old" / "tumor" / "metadata.json").write_text("{}")
    _age(work)
    return work


def _age(folder, seconds=120):
    """Nothing in ``folder`` changed for ``seconds``."""
    import os
    import time

    for path in (folder, *folder.rglob("*")):
        os.utime(path, (time.time() - seconds,) * 2)


def _dead_pid():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_shares_hidden_folder_is_removed_by_the_next_never_a_live_ones(tmp_path, capsys):
    """A share killed with SIGKILL left its hidden .share-* folder in OUT: the next share
    said OUT was "not empty" with nothing to see, and --force left the folder there."""
    import os
    import shutil

    run = tmp_path / "run"
    _model(run / "liver", stage="liver", ids=["a1", "b2", "c3"])
    _model(run / "tumor", ids=["a1", "b2", "c3"])
    pub = tmp_path / "pub"
    pub.mkdir()
    work = _killed_share(pub, _dead_pid())
    assert main(["share-model", str(run), "-o", str(pub)]) == 0
    out = capsys.readouterr().out
    assert f"removed {work}" in out and "no longer running" in out
    assert sorted(p.name for p in pub.iterdir()) == ["liver", "tumor"]
    # with --force onto the share, too
    work = _killed_share(pub, _dead_pid())
    assert main(["share-model", str(run), "-o", str(pub), "--force"]) == 0
    assert f"removed {work}" in capsys.readouterr().out
    assert sorted(p.name for p in pub.iterdir()) == ["liver", "tumor"]
    # a run still going (the process that started this test's stands for it): left alone
    before = _files(pub)
    work = _killed_share(pub, os.getppid())
    going = rf"another share-model run is writing here \(process {os.getppid()}, started"
    with pytest.raises(ModelError, match=going):
        share_model(run, pub, force=True)
    assert work.is_dir() and _files(pub) == {**before, **_files(work, pub)}
    shutil.rmtree(work)
    # one whose process is not seen but which writes still (a run in a container of its
    # own, its processes hidden from here): left alone
    work = _killed_share(pub, _dead_pid())
    (work / "new" / "liver" / "metadata.json").write_text("{}")  # (written just now)
    with pytest.raises(ModelError, match="most likely killed"):
        share_model(run, pub, force=True)
    assert (work / "new" / "liver" / "metadata.json").is_file()
    shutil.rmtree(work)
    # one killed before it said whose it was (a share writes that first: it holds nothing
    # else): removed once nothing changed in it a while
    work = pub / ".share-n00wn3r_"
    work.mkdir()
    with pytest.raises(ModelError, match="another share-model run is writing here"):
        share_model(run, pub, force=True)  # (changed just now)
    _age(work)
    report = share_model(run, pub, force=True)
    assert report.killed_removed == [(work, report.killed_removed[0][1])]
    assert "names no process" in report.killed_removed[0][1]
    # a folder of that name holding files and no owner.json is no share's: never removed
    mine = pub / ".share-mynotes1"
    (mine / "new").mkdir(parents=True)
    (mine / "new" / "my_notes.txt").write_text("mine")
    _age(mine)
    report = share_model(run, pub, force=True)
    assert report.killed_removed == [] and (mine / "new" / "my_notes.txt").is_file()
    shutil.rmtree(mine)
    # one killed during the swap holds the share it replaced: kept, and said where it is
    work = _killed_share(pub, _dead_pid(), old=True)
    with pytest.raises(ModelError, match="the share it replaced is in"):
        share_model(run, pub, force=True)
    assert (work / "old" / "tumor" / "metadata.json").is_file()


def test_a_share_killed_a_moment_ago_is_said_killed_not_still_writing(tmp_path, capsys):
    """A share killed with kill -9 and run again within the minute was refused with "another
    share-model run is writing here … wait for it to end": a wait for a process that is gone.
    One of this machine's kernel and PID namespace is removed at once; one that does not say
    so (an older owner.json, a container's) is said most likely killed, with the seconds left."""
    import os
    import re

    from napari_livertumor.models import share

    run = tmp_path / "run"
    _model(run / "liver", stage="liver", ids=["a1", "b2", "c3"])
    pub = tmp_path / "pub"
    pub.mkdir()
    # no kernel recorded: its process perhaps hidden in a container, kept for the minute
    work = _killed_share(pub, _dead_pid())
    _age(work, 20)  # (last written 20 s ago)
    assert main(["share-model", str(run), "-o", str(pub), "--force"]) == 1
    err = capsys.readouterr().err
    assert "another share-model run is writing here" not in err
    assert "wait for it" not in err
    assert "a share-model run that was most likely killed left its hidden folder" in err
    said = re.search(r"try again in (\d+) s, or delete (.+) now", err)
    assert said and 38 <= int(said[1]) <= 41 and said[2] == str(work), err
    assert work.is_dir()
    # another PID namespace's (a container of its own): the same
    owner = json.loads((work / "owner.json").read_text())
    (work / "owner.json").write_text(json.dumps({**owner, "kernel": "x pid:[1]"}))
    with pytest.raises(ModelError, match="most likely killed"):
        share_model(run, pub, force=True)
    # this machine's kernel and PID namespace, its process gone: removed at once
    if share._kernel() is None:
        pytest.skip("no boot ID or PID namespace to tell (not Linux)")
    (work / "owner.json").write_text(json.dumps({**owner, "kernel": share._kernel()}))
    report = share_model(run, pub, force=True)
    assert [f for f, _ in report.killed_removed] == [work] and not work.exists()
    assert "no longer running" in report.killed_removed[0][1]
    # one of this kernel's whose process runs (this test's parent stands for it): refused
    work = _killed_share(pub, os.getppid())
    owner = json.loads((work / "owner.json").read_text())
    (work / "owner.json").write_text(json.dumps({**owner, "kernel": share._kernel()}))
    with pytest.raises(ModelError, match="another share-model run is writing here"):
        share_model(run, pub, force=True)
    assert work.is_dir()


def test_a_live_process_whose_proc_entry_is_hidden_runs(monkeypatch):
    """Another user's share, its /proc entry hidden (hidepid): psutil finds no such process
    though the kernel has it. Read as gone, its hidden folder was removed at once (its owner
    on this kernel) while it wrote there."""
    import os

    import psutil

    from napari_livertumor.models import share

    def hidden(pid):
        raise psutil.NoSuchProcess(pid)

    monkeypatch.setattr(psutil, "Process", hidden)
    assert share._running(os.getppid(), 0.0)
    assert not share._running(_dead_pid(), 0.0)


def test_a_share_of_this_boot_in_another_pid_namespace_is_kept_for_the_minute(tmp_path):
    """A run recorded with this machine's boot but another PID namespace (a container of its
    own on this kernel: its processes hidden from here), its process not seen and its folder
    written 20 s ago: most likely killed, kept for the minute, not removed at once."""
    from pathlib import Path

    from napari_livertumor.models import share

    boot_id = Path("/proc/sys/kernel/random/boot_id")
    if not boot_id.is_file():
        pytest.skip("no boot ID to tell (not Linux)")
    run = tmp_path / "run"
    _model(run / "liver", stage="liver", ids=["a1", "b2", "c3"])
    pub = tmp_path / "pub"
    pub.mkdir()
    work = _killed_share(pub, _dead_pid())
    owner = json.loads((work / "owner.json").read_text())
    kernel = f"{boot_id.read_text().strip()} pid:[1]"
    assert kernel != share._kernel()
    (work / "owner.json").write_text(json.dumps({**owner, "kernel": kernel}))
    _age(work, 20)
    with pytest.raises(ModelError, match="most likely killed"):
        share_model(run, pub, force=True)
    assert (work / "new" / "liver" / "model.safetensors").is_file()


def test_a_share_records_this_kernel_and_pid_namespace():
    """owner.json names the kernel a share ran on (its boot and PID namespace), as
    :func:`_kernel` tells it for this process."""
    import os

    from napari_livertumor.models import share

    owner = share._owner()
    assert "kernel" in owner and owner["kernel"] == share._kernel()
    if share._kernel() is not None:
        assert share._kernel().endswith(f" {os.readlink('/proc/self/ns/pid')}")


def test_a_zombie_or_a_process_started_since_is_not_running(monkeypatch):
    """A process that ended (a zombie) is not running; nor is one that took the number since
    the share started (its create_time over a second later)."""
    import os

    import psutil

    from napari_livertumor.models import share

    parent = os.getppid()
    created = psutil.Process(parent).create_time()
    assert share._running(parent, created + 5)
    assert not share._running(parent, created - 10)

    def zombie(pid):
        raise psutil.ZombieProcess(pid)

    monkeypatch.setattr(psutil, "Process", zombie)
    assert not share._running(parent, 0.0)


def test_a_share_without_a_kernel_to_tell_is_kept_for_the_minute(tmp_path, monkeypatch):
    """Where this machine's kernel cannot be told (``_kernel`` None: not Linux), a recent
    folder whose owner.json names no kernel either is not of this kernel: most likely
    killed, kept for the minute (no kernel matches no kernel)."""
    from napari_livertumor.models import share

    monkeypatch.setattr(share, "_kernel", lambda: None)
    run = tmp_path / "run"
    _model(run / "liver", stage="liver", ids=["a1", "b2", "c3"])
    pub = tmp_path / "pub"
    pub.mkdir()
    work = _killed_share(pub, _dead_pid())
    _age(work, 20)
    with pytest.raises(ModelError, match="most likely killed"):
        share_model(run, pub, force=True)
    assert work.is_dir()
