"""``livertumor share-model``: a model folder to give away, without its patients' records."""

from __future__ import annotations

import json

import pytest

from napari_livertumor.cli import main
from napari_livertumor.errors import ModelError
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


def _model(folder, stage="tumor", ids=IDS):
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
                "split": {"train": train, "val": [], "test": test, "method": "by hand: HCC_10"},
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
