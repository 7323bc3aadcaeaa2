"""`livertumor evaluate`: the two-stage pipeline on test patients, printed like the original."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from napari_livertumor.cli import main
from napari_livertumor.training import make_config, train
from napari_livertumor.training.toydata import write_toy_cohort

TINY = dict(
    epochs=1,
    steps_per_epoch=2,
    roi_size=(16, 32, 32),
    target_spacing=(2.5, 2.0, 2.0),
    network={"init_filters": 4, "blocks_down": [1, 1, 1], "blocks_up": [1, 1], "vae_nz": 16},
    weak_lambda=0.0,
    max_val_cases=1,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = write_toy_cohort(root / "data", n_cases=5, seed=1)
    for stage in ("liver", "tumor"):
        list(train(make_config(stage, data=str(data), out=str(root / "models"), **TINY)))
    return data, root / "models"


#: the split of the tests that stop, kill and resume an evaluation of three test patients
THREE_TEST_PATIENTS = {"train": ["HCC_001"], "test": ["HCC_002", "HCC_003", "HCC_004"]}


@pytest.fixture(scope="module")
def whole_evaluation(trained, tmp_path_factory):
    """``THREE_TEST_PATIENTS`` evaluated in one run, its maps saved: what a stopped or killed
    evaluation resumed must give, made once for those tests: ``(its results, its folder)``,
    both only read."""
    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    root = tmp_path_factory.mktemp("whole")
    split = root / "split.json"
    split.write_text(json.dumps(THREE_TEST_PATIENTS))
    kw = dict(models=models, split_file=split, device="cpu", save_labels=True)
    return evaluate(data, out_dir=root / "whole", **kw), root / "whole"


@pytest.fixture(scope="module")
def blind_models(tmp_path_factory):
    """Models that find no liver, on a coarse grid, with no split file (every patient is a
    test patient): for the tests of what evaluate reads of a DICOM cohort and says of it, which
    no mask touches. The toy-trained ones (2 mm pixels) took 25 s on one small phantom."""
    from napari_livertumor.models import make_untrained_model

    root = tmp_path_factory.mktemp("blind")
    make_untrained_model(
        root / "liver", "liver", target_spacing=(8.0, 6.0, 6.0), logit_bias=(0.0, -100.0)
    )
    make_untrained_model(root / "tumor", "tumor", target_spacing=(5.0, 4.0, 4.0))
    return root


@pytest.fixture(scope="module")
def tcia_pair(tmp_path_factory):
    """Two small phantoms in the HCC-TACE-Seg download layout; a test changes a copy."""
    from napari_livertumor.synth import make_cohort

    return make_cohort(tmp_path_factory.mktemp("tcia") / "tcia", 2, seed=4, layout="tcia")


def test_evaluate_prints_the_table_beside_the_published_numbers(trained, tmp_path, capsys):
    data, models = trained
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "test": ["HCC_002"]}))
    rc = main(["evaluate", "--data", str(data), "--models", str(models), "--split", str(split),
               "-o", str(tmp_path / "out"), "--device", "cpu", "--save-labels",
               "--nsd-tolerance", "3"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "Test patients: 1" in out
    assert "0.942" in out and "0.570" in out  # the original's liver / tumor Dice
    assert ">=10cm" in out and "<10cm" in out
    with open(tmp_path / "out" / "per_case.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["case"] for r in rows] == ["HCC_002"]
    for key in (
        "liver_dice",
        "tumor_dice",
        "liver_iou",
        "tumor_sensitivity",
        "tumor_stratum",
        "lesions_true",
        "lesions_false",
        "tumor_main_cnr",
        "lesions_cnr_0_0.5",
        "lesions_cnr_1_up_found",
        "liver_hd95_mm",
        "liver_assd_mm",
        "tumor_nsd",
    ):
        assert key in rows[0]
    assert 0.0 <= float(rows[0]["liver_nsd"]) <= 1.0  # the tiny model finds some liver
    assert "Boundaries, mean (median) per patient:" in out and "NSD (3 mm)" in out
    # the split's 3D measure beside the axial (RECIST-like) one, which is never longer
    d3, axial = (
        float(rows[0][k]) for k in ("tumor_longest_diameter_mm", "tumor_axial_diameter_mm")
    )
    assert 0 < axial <= d3 + 1e-6
    assert "ours without the tumor refinement" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_cases"] == 1 and summary["split"] == str(split)
    assert summary["tta"] == "none" and summary["refine"] is False  # how it was segmented
    assert summary["surface"]["liver"]["nsd"]["n"] == 1
    used = summary["models_used"]  # the folders themselves, each with what moves its masks
    assert used["liver"]["path"] == str(models / "liver") and used["tumor"]["members"] == 1
    assert set(used["tumor"]) == {"path", "members", "logit_bias", "weights_sha1", "metadata_sha1"}
    from napari_livertumor.provenance import file_digest

    assert used["liver"]["weights_sha1"] == file_digest(models / "liver" / "model.safetensors")
    # the whole SHA-1, as the model's own metadata.json records it (16 digits did not match it)
    meta = json.loads((models / "liver" / "metadata.json").read_text())
    assert used["liver"]["weights_sha1"] == meta["weights_sha1"] and len(meta["weights_sha1"]) == 40
    assert summary["split"] == str(split.absolute())
    assert summary["lesion_matching"] == {"min_ml": 0.1, "min_overlap": 0.1, "connectivity": 26}
    assert summary["surface"]["nsd_tolerance_mm"] == 3.0
    # --save-labels: the label map scored, on the CT's grid; every figure recomputes from it
    import nibabel as nib

    from napari_livertumor.io.nifti import read_nifti
    from napari_livertumor.training.data import index_cases, load_case
    from napari_livertumor.training.metrics import case_scores, case_surface_scores, hcc_to_output

    saved = tmp_path / "out" / "labels" / "HCC_002_labels.nii.gz"
    assert summary["labels"] == str(saved.parent.absolute()) and "label maps:" in out
    ct, hcc = load_case(next(r for r in index_cases(data) if r.case_id == "HCC_002"))
    np.testing.assert_allclose(nib.load(saved).affine, read_nifti(saved).affine)
    labels = read_nifti(saved).array
    assert labels.shape == ct.shape
    truth = hcc_to_output(hcc)
    again = {
        **case_scores(labels, truth),
        **case_surface_scores(labels, truth, ct.spacing, tolerance_mm=3.0),
    }
    for key in ("liver_dice", "tumor_dice", "liver_iou", "liver_hd95_mm", "liver_nsd"):
        assert float(rows[0][key]) == pytest.approx(again[key], abs=1e-4), key
    # one row per lesion, as many as the counts
    with open(tmp_path / "out" / "lesions.csv") as fh:
        lesions = list(csv.DictReader(fh))
    assert list(lesions[0]) if lesions else True
    assert sum(r["kind"] == "true" for r in lesions) == int(rows[0]["lesions_true"])
    assert sum(r["kind"] == "false" for r in lesions) == int(rows[0]["lesions_false"])
    assert all(r["case"] == "HCC_002" for r in lesions)
    voxel = ct.voxel_volume_ml
    assert float(rows[0]["liver_ml_overlap"]) == pytest.approx(
        np.count_nonzero((labels >= 1) & (truth >= 1)) * voxel, abs=1e-3
    )
    assert summary["data"] == str(data.resolve()) and summary["software"]["torch"]
    assert summary["split_sha1"] == file_digest(split)
    assert set(summary["lesion_filter"]) == {"min_ml", "min_peak"}
    les = summary["lesions"]
    assert les["lesions_true"] == int(rows[0]["lesions_true"])
    assert les["lesions_found"] == int(rows[0]["lesions_found"]) <= les["lesions_true"]
    assert "false lesions per case" in out
    # how visible the true lesions were, pooled per CNR band, beside what was found of them
    bands = summary["lesions_by_cnr"]
    assert [b["cnr_from"] for b in bands] == [0, 0.5, 1]
    assert sum(b["lesions"] for b in bands) == les["lesions_true"]  # the toy lesions are in liver
    assert "Lesions found by contrast-to-noise ratio" in out and "CNR < 0.5: " in out


def test_evaluate_uses_the_test_patients_training_wrote_down(trained, tmp_path):
    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    written = json.loads((models / "tumor" / "split.json").read_text())
    result = evaluate(data, models=models, device="cpu", tta="inplane")
    assert [r["case"] for r in result["rows"]] == written["test"]
    assert result["summary"]["tta"] == "inplane"
    # the models' own split file is named whole and fingerprinted as a --split file is
    from napari_livertumor.provenance import file_digest

    split = (models / "tumor" / "split.json").absolute()
    assert result["summary"]["split"] == str(split)
    assert result["summary"]["split_sha1"] == file_digest(split)


def test_a_split_whose_test_patients_are_absent_is_refused(trained, tmp_path):
    from napari_livertumor.errors import InputError
    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [], "test": ["HCC_999"]}))
    with pytest.raises(InputError, match="no test patient"):
        evaluate(data, models=models, split_file=split, device="cpu")


def test_a_split_with_an_empty_test_list_is_refused_naming_the_file(tmp_path):
    """Said to fail inside MONAI: it is refused before any patient is read, naming the file."""
    from napari_livertumor.errors import InputError
    from napari_livertumor.training.evaluate import _test_ids

    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "val": ["HCC_002"], "test": []}))
    with pytest.raises(InputError, match=r"split\.json: the split file has an empty 'test' list"):
        _test_ids([], None, split)


def test_the_models_split_applies_only_to_the_data_it_describes(trained, tmp_path, caplog):
    """Another cohort reusing the names (HCC_001…) was never seen in training: all of it counts."""
    import logging

    from napari_livertumor.training.data import index_cases
    from napari_livertumor.training.evaluate import _test_ids

    data, models = trained
    records = index_cases(data)
    written = json.loads((models / "tumor" / "split.json").read_text())
    assert _test_ids(records, models, None)[0] == written["test"]
    other = write_toy_cohort(tmp_path / "other", n_cases=7, seed=3)  # HCC_006, HCC_007 are new
    with caplog.at_level(logging.WARNING):
        ids, source = _test_ids(index_cases(other), models, None)
    assert len(ids) == 7 and "other data" in source
    assert "other data" in caplog.text


def test_the_models_cohort_without_its_test_patients_is_not_called_other_data(
    trained, tmp_path, caplog
):
    """The training cohort with its test patients removed was "other data": its training
    patients were scored as test patients with no word."""
    import logging
    import shutil

    from napari_livertumor.training.data import index_cases
    from napari_livertumor.training.evaluate import _test_ids

    data, models = trained
    written = json.loads((models / "tumor" / "split.json").read_text())
    rest = tmp_path / "rest"
    shutil.copytree(data, rest)
    for case in written["test"]:
        for sub in ("imagesTr", "labelsTr"):
            for f in (rest / sub).glob(f"{case}*"):
                f.unlink()
    with caplog.at_level(logging.WARNING):
        ids, source = _test_ids(index_cases(rest), models, None)
    assert "other data" not in source and "not here" in source
    assert "if this is that cohort, their scores are not held-out scores" in caplog.text
    assert "--split, or split_file=" in caplog.text  # the flag and evaluate()'s parameter
    assert "this is other data" not in caplog.text


def test_another_cohort_with_the_same_patient_names_is_evaluated_whole(trained, tmp_path, caplog):
    """Every HCC-TACE-Seg-like cohort names its patients HCC_001…: the names alone made the
    models' split pick 2 of 10 patients of a cohort they never saw. Training records each test
    patient's ground-truth fingerprint; other labels under the same name are other patients."""
    import logging

    from napari_livertumor.training.data import index_cases
    from napari_livertumor.training.evaluate import _test_ids

    data, models = trained
    written = json.loads((models / "tumor" / "split.json").read_text())
    listed = {*written["train"], *written["val"], *written["test"]}
    assert set(written["fingerprints"]) == listed  # every patient's, not only the test ones
    same_names = write_toy_cohort(tmp_path / "same_names", n_cases=5, seed=11)
    records = index_cases(same_names)
    assert {r.case_id for r in records} == {r.case_id for r in index_cases(data)}
    with caplog.at_level(logging.WARNING):
        ids, source = _test_ids(records, models, None)
    assert len(ids) == 5 and "other data" in source
    assert "differs" in caplog.text
    # a copy of the same cohort is the same data
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    assert _test_ids(index_cases(copy), models, None)[0] == written["test"]


def _renamed_copy(data, to, rename):
    import shutil

    for sub in ("imagesTr", "labelsTr"):
        (to / sub).mkdir(parents=True)
        for f in (data / sub).glob("*.nii.gz"):
            shutil.copy(f, to / sub / (rename(f.name[: -len(".nii.gz")]) + ".nii.gz"))
    return to


def test_the_training_patients_are_known_under_other_names(trained, tmp_path, caplog, monkeypatch):
    """The models' own cohort with its folders renamed `hcc-1`… (as the README says a clinical
    table still matches) was taken for other data: every training patient was scored as
    held out with no word. Renamed the ways IDs are read, the split still names them; renamed
    any other way, their ground truth (fingerprinted for every patient of the split) gives
    them away."""
    import logging

    from napari_livertumor import pipeline
    from napari_livertumor.stats import compute_stats
    from napari_livertumor.training.evaluate import evaluate

    def nothing(self, volume, progress=None, **kw):  # which patients are scored, not their masks
        labels = np.zeros(volume.shape, np.uint8)
        stats = compute_stats(labels, volume.spacing)
        return pipeline.SegmentationResult(labels, stats, {"total": 0.1}, "cpu")

    monkeypatch.setattr(pipeline.Segmenter, "segment", nothing)
    data, models = trained
    written = json.loads((models / "tumor" / "split.json").read_text())
    as_table = _renamed_copy(data, tmp_path / "as_table", lambda c: "hcc-" + c[-1])
    result = evaluate(as_table, models=models, device="cpu")
    assert [r["case"] for r in result["rows"]] == ["hcc-" + c[-1] for c in written["test"]]
    assert result["summary"]["test_patients_seen_in_training"] == {}

    other_names = _renamed_copy(data, tmp_path / "other_names", lambda c: "patient_" + c[-1])
    with caplog.at_level(logging.WARNING):
        result = evaluate(other_names, models=models, device="cpu", max_cases=1)
    used = sorted("patient_" + c[-1] for c in [*written["train"], *written["val"]])
    seen = result["summary"]["test_patients_seen_in_training"]
    scored = [r["case"] for r in result["rows"]]
    assert len(scored) == 1 and scored[0] in used
    # the patient scored, not every one it trained on: with --max-cases 2 of 6 it said "trained
    # or validated on 6 of the test patients" and listed the 4 never scored in summary.json
    assert seen["liver"] == seen["tumor"] == scored
    assert "not held-out scores" in caplog.text and "on 1 of the test patients" in caplog.text
    result = evaluate(other_names, models=models, device="cpu")
    seen = result["summary"]["test_patients_seen_in_training"]
    assert seen["liver"] == seen["tumor"] == used  # every one it trained or validated on


def test_a_shared_model_without_its_ids_is_not_called_other_data(trained, tmp_path, caplog):
    """`evaluate --models` of a `share-model` copy (IDs renamed case-NNN) said "6 of the 6
    cases here are not in it: this is other data; evaluating every case", then, from the
    fingerprints, "trained or validated on 5 of the test patients". The data is the model's
    own cohort: say its split's names were removed, and keep the fingerprint caution."""
    import logging

    from napari_livertumor.models.share import share_model
    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    shared = tmp_path / "shared"
    share_model(models, shared)
    assert "case-" in (shared / "tumor" / "split.json").read_text()
    with caplog.at_level(logging.WARNING):
        result = evaluate(data, models=shared, device="cpu", max_cases=1)
    said = " ".join(result["summary"]["cautions"])
    assert "this is other data" not in said, said
    assert "names were removed" in said and "share-model, without --keep-ids" in said, said
    assert "not held-out scores" in said, said
    assert "other data" not in result["summary"]["split"]


def test_a_stop_asked_between_cases_keeps_an_earlier_complete_evaluation(trained, tmp_path):
    """Stopped through should_cancel (as a GUI would), with --overwrite over a complete
    evaluation: the part results replaced it, unmarked."""
    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "test": ["HCC_002", "HCC_003"]}))
    out = tmp_path / "out"
    evaluate(data, models=models, split_file=split, out_dir=out, device="cpu")
    complete = (out / "per_case.csv").read_text()
    asked = []
    result = evaluate(
        data, models=models, split_file=split, out_dir=out, device="cpu", overwrite=True,
        should_cancel=lambda: asked.append(1) or len(asked) > 1,
    )  # fmt: skip
    assert result["summary"]["interrupted"] is True
    assert (out / "per_case.csv").read_text() == complete
    stopped = json.loads((out / "summary.interrupted.json").read_text())
    assert stopped["interrupted"] is True and stopped["n_cases"] == 1


def test_one_case_out_of_memory_costs_that_case_and_a_surprise_keeps_the_scored_ones(
    trained, tmp_path, monkeypatch
):
    """Only an InputError was caught per case: a MemoryError (or CUDA out of memory) on the
    second case ended the run with nothing written, hours of scored cases lost."""
    from napari_livertumor import pipeline
    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "test": ["HCC_002", "HCC_003", "HCC_004"]}))
    real, calls = pipeline.Segmenter.segment, []

    def failing(kind):
        def segment(self, ct, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise kind("Unable to allocate 3.1 GiB")
            return real(self, ct, *args, **kwargs)

        return segment

    monkeypatch.setattr(pipeline.Segmenter, "segment", failing(MemoryError))
    result = evaluate(data, models=models, split_file=split, out_dir=tmp_path / "a", device="cpu")
    assert result["summary"]["n_cases"] == 2 and "interrupted" not in result["summary"]
    [failed] = result["summary"]["not_evaluated"]
    assert failed["case"] == "HCC_003" and "Unable to allocate" in failed["reason"]
    calls.clear()
    monkeypatch.setattr(pipeline.Segmenter, "segment", failing(ZeroDivisionError))
    with pytest.raises(ZeroDivisionError):
        evaluate(data, models=models, split_file=split, out_dir=tmp_path / "b", device="cpu")
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["n_cases"] == 1
    assert [n["case"] for n in summary["not_evaluated"]] == ["HCC_003", "HCC_004"]
    assert "stopped by an error" in summary["not_evaluated"][0]["reason"]


def test_a_models_split_without_test_patients_is_said_not_taken_for_none(trained, tmp_path, caplog):
    """Trained with more folds than patients, a fold's test list was empty without a word, and
    evaluation then said "no split file". Training now refuses such a fold; a split with no
    test patient is named as such."""
    import logging
    import shutil

    from napari_livertumor.errors import SettingsError
    from napari_livertumor.training.data import index_cases
    from napari_livertumor.training.evaluate import _test_ids

    data, models = trained
    cfg = make_config("liver", data=str(data), out=str(tmp_path / "m"), folds=9, fold=7, **TINY)
    with pytest.raises(SettingsError, match=r"--folds 9 needs at least 9 patients .* holds 5"):
        list(train(cfg))
    from napari_livertumor.training.loop import make_split

    assert make_split([f"p{i}" for i in range(5)], 0, folds=9, fold=3)["test"]  # not refused
    assert not (tmp_path / "m" / "liver").exists()
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    for stage in ("liver", "tumor"):
        split = json.loads((copy / stage / "split.json").read_text())
        split["train"] += split["test"]
        split["test"] = []
        (copy / stage / "split.json").write_text(json.dumps(split))
    with caplog.at_level(logging.WARNING):
        ids, source = _test_ids(index_cases(data), copy, None)
    assert len(ids) == 5 and source == "all cases"
    assert "lists no test patient" in caplog.text and "no split file" not in caplog.text


def test_fingerprints_of_dicom_segs_are_not_compared_with_nifti_labels(trained, tmp_path, caplog):
    """A model trained on the DICOM download, evaluated on a NIfTI conversion of it: the files
    differ, so it scored every patient as other data, its own training patients unflagged. The
    split now says which kind of file it fingerprinted; across kinds the names decide."""
    import logging
    import shutil

    from napari_livertumor.training.data import index_cases
    from napari_livertumor.training.evaluate import _test_ids

    data, models = trained
    written = json.loads((models / "tumor" / "split.json").read_text())
    assert written["fingerprint_layout"] == "nifti"
    dicom_trained = tmp_path / "models"
    shutil.copytree(models, dicom_trained)
    for stage in ("liver", "tumor"):  # as a run on the DICOM layout writes it
        path = dicom_trained / stage / "split.json"
        split = json.loads(path.read_text())
        split["fingerprint_layout"] = "tcia"
        split["fingerprints"] = {c: "0123456789abcdef" for c in split["fingerprints"]}
        path.write_text(json.dumps(split))
    with caplog.at_level(logging.WARNING):
        ids, source = _test_ids(index_cases(data), dicom_trained, None)
    assert ids == written["test"] and "other data" not in source
    assert "cannot be compared" in caplog.text and "--split, or split_file=" in caplog.text


def test_a_split_with_only_a_test_list_is_enough_to_evaluate(trained, tmp_path):
    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    split = tmp_path / "test_only.json"
    split.write_text(json.dumps({"test": ["HCC_002", "HCC_002"]}))
    result = evaluate(data, models=models, split_file=split, device="cpu")
    assert [r["case"] for r in result["rows"]] == ["HCC_002"]  # listed twice, scored once


def test_an_output_path_that_is_a_file_fails_before_anything_runs(trained, tmp_path, capsys):
    data, models = trained
    taken = tmp_path / "notafolder.txt"
    taken.write_text("{}")
    rc = main(["evaluate", "--data", str(data), "--models", str(models), "-o", str(taken)])
    err = capsys.readouterr().err
    assert rc == 1 and "notafolder.txt" in err and "folder" in err
    assert "Traceback" not in err and taken.read_text() == "{}"


def test_earlier_results_in_the_output_folder_are_kept_unless_overwrite(trained, tmp_path, capsys):
    data, models = trained
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"test": ["HCC_002"]}))
    args = ["evaluate", "--data", str(data), "--models", str(models), "--split", str(split)]
    args += ["-o", str(tmp_path / "out"), "--device", "cpu"]
    assert main(args) == 0
    (tmp_path / "out" / "summary.json").write_text('{"mine": 1}')
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "already holds per_case.csv and summary.json" in err and "--overwrite" in err
    assert (tmp_path / "out" / "summary.json").read_text() == '{"mine": 1}'
    # a stopped evaluation's folder says so: --overwrite is how it is finished
    (tmp_path / "out" / "summary.json").write_text('{"interrupted": true}')
    assert main(args) == 1
    assert "stopped before its end" in capsys.readouterr().err
    # (a stop over a whole evaluation writes its part beside it)
    (tmp_path / "out" / "summary.json").write_text('{"mine": 1}')
    (tmp_path / "out" / "summary.interrupted.json").write_text('{"interrupted": true}')
    assert main(args) == 1
    assert "stopped before its end" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n_cases"] == 1


def test_test_patients_that_cannot_be_scored_are_named_with_their_reason(trained, tmp_path, capsys):
    """A patient in the folder but unusable (no labels) was reported as 'not in DATA', and the
    summary did not say the figure covered 1 of the 3 patients asked for."""
    import shutil

    data, models = trained
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "labelsTr" / "HCC_003.nii.gz").unlink()  # its CT stays: a patient without labels
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [], "test": ["HCC_002", "HCC_003", "HCC_999"]}))
    rc = main(["evaluate", "--data", str(copy), "--models", str(models), "--split", str(split),
               "-o", str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert rc == 1  # a failed case, as in segment: the figures over the others written
    captured = capsys.readouterr()
    out = captured.out
    assert "2 of the 3 test patients could not be scored" in captured.err
    assert "Not evaluated: 2 of the 3 test patients asked for" in out
    assert "HCC_003 (no label file" in out and "HCC_999 (not in" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_cases"] == 1 and summary["test_patients_asked"] == 3
    assert [n["case"] for n in summary["not_evaluated"]] == ["HCC_003", "HCC_999"]


def test_a_scan_the_pipeline_refuses_is_named_and_the_others_are_kept(trained, tmp_path, capsys):
    """A test patient the pipeline cannot segment (one slice: too small to hold a liver) ended
    the evaluation with an error, and the patients already scored were lost with it."""
    import shutil

    import nibabel as nib

    data, models = trained
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    lab = np.asarray(nib.load(copy / "labelsTr" / "HCC_003.nii.gz").dataobj)
    z = int(np.argmax((lab == 1).sum(axis=(0, 1))))  # a slice through the liver
    for sub in ("imagesTr", "labelsTr"):  # read fine, refused by the pipeline
        path = copy / sub / "HCC_003.nii.gz"
        img = nib.load(path)
        one = np.asarray(img.dataobj)[..., z : z + 1]
        nib.save(nib.Nifti1Image(one, img.affine, img.header), path)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [], "test": ["HCC_002", "HCC_003"]}))
    rc = main(["evaluate", "--data", str(copy), "--models", str(models), "--split", str(split),
               "-o", str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert rc == 1  # one case failed: said by the exit status too
    out = capsys.readouterr().out
    assert "HCC_003 (not segmented:" in out and "slice" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_cases"] == 1
    assert [n["case"] for n in summary["not_evaluated"]] == ["HCC_003"]
    rows = list(csv.DictReader((tmp_path / "out" / "per_case.csv").open()))
    assert [r["case"] for r in rows] == ["HCC_002"]


def test_one_model_folder_as_models_is_evaluated_with_its_own_split(
    trained, tmp_path, capsys, caplog, monkeypatch
):
    """One model's folder is taken as the Segment panel takes it (with the shipped model for
    the other stage), and its own split.json names the test patients (it warned "no split
    file: evaluating every case", then refused the folder). Without -o, the per-case CSV goes
    to a new folder of its own (DESIGN: evaluate writes a per-case CSV), never over an earlier
    evaluation's."""
    data, models = trained
    rc = main(["evaluate", "--data", str(data), "--models", str(models / "tumor"),
               "--device", "cpu", "-o", str(tmp_path / "one")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert "no split file" not in caplog.text
    assert "is one tumor model: the shipped liver model is used with it" in caplog.text
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["split"] == str((models / "tumor" / "split.json").absolute())
    test = json.loads((models / "tumor" / "split.json").read_text())["test"]
    assert summary["n_cases"] == len(test)
    assert summary["models_used"]["tumor"]["path"] == str(models / "tumor")
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        rc = main(["evaluate", "--data", str(data), "--models", str(models), "--device", "cpu",
                   "--max-cases", "1"])  # fmt: skip
        assert rc == 0
        written = capsys.readouterr().out.strip().splitlines()[-1]
        assert written.startswith("per-case scores: evaluation-")
    folders = sorted(tmp_path.glob("evaluation-*"))
    assert len(folders) == 2 and all((f / "per_case.csv").is_file() for f in folders)


def test_one_liver_model_folder_is_evaluated_with_its_own_split_not_the_shipped_tumors(
    trained, tmp_path, capsys, caplog
):
    """The split of the shipped tumor model run beside it was read first: it names another
    cohort, so every patient was scored, those the liver model trained on too."""
    data, models = trained
    rc = main(["evaluate", "--data", str(data), "--models", str(models / "liver"),
               "--device", "cpu", "-o", str(tmp_path / "one")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["split"] == str((models / "liver" / "split.json").absolute())
    test = json.loads((models / "liver" / "split.json").read_text())["test"]
    assert summary["n_cases"] == len(test)
    assert "evaluating every case" not in caplog.text


def test_without_a_split_every_unreadable_patient_is_named_too(trained, tmp_path, capsys):
    """With no split, a patient the data index skipped (no labels, a broken SEG) was only a log
    line: the table said "Test patients: 4" with no word of the fifth."""
    import shutil

    data, models = trained
    copy, bare = tmp_path / "data", tmp_path / "models"
    shutil.copytree(data, copy)
    shutil.copytree(models, bare)
    for f in bare.rglob("split.json"):
        f.unlink()
    (copy / "labelsTr" / "HCC_003.nii.gz").unlink()
    rc = main(["evaluate", "--data", str(copy), "--models", str(bare), "-o",
               str(tmp_path / "out"), "--device", "cpu", "--max-cases", "1"])  # fmt: skip
    assert rc == 0  # no ground truth in a folder evaluated whole, and --max-cases: only named
    out = capsys.readouterr().out
    # the patient left out by the data index, and those beyond --max-cases: every one named
    assert "Not evaluated: 4 of the 5 test patients asked for" in out
    assert "HCC_003 (no label file" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    reasons = {n["case"]: n["reason"] for n in summary["not_evaluated"]}
    assert reasons["HCC_003"].startswith("no label file") and len(reasons) == 4
    assert sum(r == "beyond --max-cases 1" for r in reasons.values()) == 3
    assert not any(n["failed"] for n in summary["not_evaluated"])


def test_a_patient_missing_within_max_cases_still_fails_the_run(trained, tmp_path, capsys):
    """Any --max-cases made every patient that could not be read "not failed": exit 0 with
    one patient of a cohort of 3 missing and a cap of 10."""
    data, models = trained
    copy = _renamed_copy(data, tmp_path / "data", lambda c: c)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "test": ["HCC_002", "HCC_003", "HCC_004"]}))
    for sub in ("imagesTr", "labelsTr"):
        (copy / sub / "HCC_003.nii.gz").unlink()
    args = ["evaluate", "--data", str(copy), "--models", str(models), "--split", str(split),
            "--device", "cpu"]  # fmt: skip
    assert main([*args, "-o", str(tmp_path / "a"), "--max-cases", "10"]) == 1
    assert "HCC_003" in capsys.readouterr().out
    # a cap reached before it: named, not a failure
    assert main([*args, "-o", str(tmp_path / "b"), "--max-cases", "1"]) == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert not any(n["failed"] for n in summary["not_evaluated"])


def test_a_scans_warnings_are_said_under_the_table_not_only_in_the_csv(trained, tmp_path, capsys):
    """Slices filled in, NaNs read as air, values not in HU: segment says so on screen,
    evaluate only in per_case.csv's warnings column."""
    import nibabel as nib

    data, models = trained
    copy = _renamed_copy(data, tmp_path / "data", lambda c: c)
    path = copy / "imagesTr" / "HCC_002.nii.gz"
    img = nib.load(path)
    arr = np.asarray(img.dataobj, dtype=np.float32)
    arr[0, 0, :3] = np.nan
    nib.save(nib.Nifti1Image(arr, img.affine, img.header), path)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "test": ["HCC_002"]}))
    rc = main(["evaluate", "--data", str(copy), "--models", str(models), "--split", str(split),
               "-o", str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("Scan or result warned of"))
    assert "for 1 scored patient(s)" in line and "HCC_002 (" in line
    assert "validation Dice" not in line  # the weak toy models' note: not once per patient
    with open(tmp_path / "out" / "per_case.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert "validation Dice" in row["warnings"]  # the CSV keeps every warning


def test_labels_on_another_grid_are_said_so_not_called_unreadable(trained, tmp_path):
    import nibabel as nib

    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    copy = _renamed_copy(data, tmp_path / "data", lambda c: c)
    path = copy / "labelsTr" / "HCC_002.nii.gz"
    img = nib.load(path)
    moved = img.affine.copy()
    moved[0, 3] += 2.0  # 2 mm to one side
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), moved, img.header), path)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "test": ["HCC_002", "HCC_003"]}))
    result = evaluate(copy, models=models, split_file=split, device="cpu")
    (missed,) = result["summary"]["not_evaluated"]
    assert "HCC_002.nii.gz: the labels lie on another grid than the CT's" in missed["reason"]
    assert "up to 2 mm apart" in missed["reason"]


def test_labels_without_a_liver_are_said_so_not_called_unreadable(trained, tmp_path):
    """A ground truth that reads fine but holds no liver (a SEG's Liver segment not recognised,
    a tumor-only label file) was listed as "unreadable"."""
    from napari_livertumor.io.nifti import read_nifti, write_nifti
    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    copy = _renamed_copy(data, tmp_path / "data", lambda c: c)
    path = copy / "labelsTr" / "HCC_002.nii.gz"
    lab = read_nifti(path)
    write_nifti(lab.with_array(np.where(lab.array == 2, 2, 0).astype(np.uint8)), path)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "test": ["HCC_002", "HCC_003"]}))
    result = evaluate(copy, models=models, split_file=split, device="cpu")
    (missed,) = result["summary"]["not_evaluated"]
    assert missed["case"] == "HCC_002" and "unreadable" not in missed["reason"]
    assert "HCC_002.nii.gz: the ground truth has no liver" in missed["reason"]


def test_a_cohort_grown_by_new_patients_keeps_its_test_patients_and_adds_the_new(
    trained, tmp_path, caplog
):
    """One patient added to the download made evaluate score every patient, the models'
    training and validation patients included, as held-out."""
    import logging
    import shutil

    from napari_livertumor.training.data import index_cases
    from napari_livertumor.training.evaluate import _test_ids

    data, models = trained
    written = json.loads((models / "tumor" / "split.json").read_text())
    grown = tmp_path / "grown"
    shutil.copytree(data, grown)
    extra = write_toy_cohort(tmp_path / "extra", n_cases=6, seed=9)
    for sub in ("imagesTr", "labelsTr"):
        shutil.copy(extra / sub / "HCC_006.nii.gz", grown / sub / "HCC_006.nii.gz")
    with caplog.at_level(logging.WARNING):
        ids, source = _test_ids(index_cases(grown), models, None)
    assert ids == [*written["test"], "HCC_006"]
    assert "new to it" in source and "never seen in training" in caplog.text


def test_test_patients_another_model_trained_on_are_flagged(trained, tmp_path, capsys):
    """A liver model from another run (another seed, another fold) beside the tumor model had
    trained on the tumor split's test patients: its scores passed for held-out ones."""
    import shutil

    data, models = trained
    mixed = tmp_path / "models"
    shutil.copytree(models, mixed)
    liver_split = json.loads((mixed / "liver" / "split.json").read_text())
    test = json.loads((mixed / "tumor" / "split.json").read_text())["test"]
    liver_split["train"] = sorted(set(liver_split["train"]) | set(test))
    liver_split["test"] = [c for c in liver_split["test"] if c not in test] or liver_split["val"]
    (mixed / "liver" / "split.json").write_text(json.dumps(liver_split))
    rc = main(["evaluate", "--data", str(data), "--models", str(mixed), "-o",
               str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert rc == 0
    assert "Not held out: the liver model trained or validated on" in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["test_patients_seen_in_training"] == {"liver": test}


def test_evaluate_fails_when_no_test_patient_could_be_scored(trained, tmp_path, capsys):
    import shutil

    data, models = trained
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [], "test": ["HCC_002"]}))
    (copy / "imagesTr" / "HCC_002.nii.gz").write_bytes(b"not a nifti")
    rc = main(["evaluate", "--data", str(copy), "--models", str(models), "--split", str(split),
               "-o", str(tmp_path / "out2"), "--device", "cpu"])  # fmt: skip
    assert rc == 1
    captured = capsys.readouterr()
    assert "Not evaluated" in captured.out and "no test patient could be scored" in captured.err


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_case_runs(
    trained, tmp_path, monkeypatch
):
    """An existing -o folder without write permission failed only after every case had been
    segmented and scored (hours on a real cohort)."""
    from napari_livertumor.errors import InputError
    from napari_livertumor.training import evaluate as ev

    data, models = trained
    (tmp_path / "ro").mkdir()
    asked = []

    def not_writable(folder):
        asked.append(folder)
        raise InputError(folder, "cannot be written to (permissions)")

    def no_index(*a, **k):
        raise AssertionError("the cases were read before the output folder was checked")

    monkeypatch.setattr(ev, "check_writable_folder", not_writable)
    monkeypatch.setattr(ev, "index_cases", no_index)
    with pytest.raises(InputError, match="cannot be written to"):
        ev.evaluate(data, models=models, out_dir=tmp_path / "ro", device="cpu")
    assert asked == [tmp_path / "ro"]


def test_ctrl_c_keeps_the_cases_already_scored(trained, tmp_path, capsys, monkeypatch):
    """Ctrl-C (or SIGTERM) part-way threw away every case scored, and without -o left an
    empty results folder behind."""
    from napari_livertumor.pipeline import Segmenter

    data, models = trained
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "test": ["HCC_002", "HCC_003", "HCC_004"]}))
    real, calls = Segmenter.segment, []

    def interrupted_on_the_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Segmenter, "segment", interrupted_on_the_second)
    out = tmp_path / "out"
    rc = main(["evaluate", "--data", str(data), "--models", str(models), "--split", str(split),
               "-o", str(out), "--device", "cpu"])  # fmt: skip
    assert rc == 130
    assert "the cases scored before it are in" in capsys.readouterr().err
    with open(out / "per_case.csv") as fh:
        assert [r["case"] for r in csv.DictReader(fh)] == ["HCC_002"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert {n["case"] for n in summary["not_evaluated"]} == {"HCC_003", "HCC_004"}

    # --overwrite over a complete evaluation, stopped part-way: the complete one was replaced
    # by the one case scored; it stays, the part results are written beside it
    monkeypatch.setattr(Segmenter, "segment", real)
    args = ["evaluate", "--data", str(data), "--models", str(models), "--split", str(split),
            "-o", str(out), "--device", "cpu", "--overwrite"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    complete = (out / "per_case.csv").read_text()
    assert "interrupted" not in json.loads((out / "summary.json").read_text())
    calls.clear()
    monkeypatch.setattr(Segmenter, "segment", interrupted_on_the_second)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert str(out / "per_case.interrupted.csv") in err and "are kept" in err
    assert (out / "per_case.csv").read_text() == complete
    assert json.loads((out / "summary.interrupted.json").read_text())["interrupted"] is True
    # a plain rerun is refused naming them all; --overwrite's complete run takes their place
    assert main(args[:-1]) == 1
    assert "per_case.interrupted.csv" in capsys.readouterr().err
    monkeypatch.setattr(Segmenter, "segment", real)
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["lesions.csv", "per_case.csv", "summary.json"]

    calls.clear()  # stopped during the first case: nothing to keep, no folder left behind
    monkeypatch.setattr(
        Segmenter, "segment", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    monkeypatch.chdir(tmp_path / "cwd" if (tmp_path / "cwd").mkdir() is None else tmp_path)
    rc = main(["evaluate", "--data", str(data), "--models", str(models), "--split", str(split),
               "--device", "cpu"])  # fmt: skip
    assert rc == 130 and not list((tmp_path / "cwd").iterdir())


@pytest.mark.parametrize("relative", [False, True])
def test_what_the_models_split_has_to_say_is_said_once(
    trained, tmp_path, caplog, monkeypatch, relative
):
    """The split is looked at for its test list, then for the patients its models saw: its
    warning (here: no fingerprints recorded) was printed twice (QA s50upgrade: again with
    models named by a relative path, once relative, once absolute)."""
    import logging
    import shutil

    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    for stage in ("liver", "tumor"):
        path = copy / stage / "split.json"
        split = json.loads(path.read_text())
        split.pop("fingerprints", None)
        path.write_text(json.dumps(split))
    if relative:
        monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        evaluate(data, models=Path("models") if relative else copy, device="cpu", max_cases=1)
    said = [r.getMessage() for r in caplog.records if "records no fingerprints" in r.getMessage()]
    assert len(set(said)) == len(said) >= 1
    # one per split file, whichever way it was reached
    assert len({m.split(" records no")[0] for m in said}) == len(said), said


def test_a_patient_scored_on_part_of_its_ground_truth_is_named_beside_the_table(
    blind_models, tcia_pair, tmp_path, capsys
):
    """Its SEG had frames on CT slices lost in transfer: scored on the rest, with nothing on
    screen to say so."""
    import shutil

    models = blind_models
    data = shutil.copytree(tcia_pair, tmp_path / "tcia")
    [series] = [p for p in (data / "HCC_001").glob("*/*") if "LIVER" in p.name]
    for f in sorted(series.glob("*.dcm"))[:8]:
        f.write_bytes(f.read_bytes()[:300])
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [], "test": ["HCC_001"]}))
    rc = main(["evaluate", "--data", str(data), "--models", str(models), "--split", str(split),
               "-o", str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "Ground truth read with warnings for 1 scored patient(s)" in out
    assert "HCC_001 (" in out and "do not fall on a slice of the CT" in out
    per_case = (tmp_path / "out" / "per_case.csv").read_text()
    assert "truth_warnings" in per_case.splitlines()[0]


def test_an_output_folder_inside_the_data_is_no_patient_of_it(
    blind_models, tcia_pair, tmp_path, capsys
):
    """``evaluate --data D -o D/eval`` said "Not evaluated: ... eval (no DICOM SEG (no
    labels))" in that very run, and every later evaluation of D counted eval as a patient."""
    import shutil

    models = blind_models  # (no split file: every patient of the folder is scored)
    data = shutil.copytree(tcia_pair, tmp_path / "tcia")
    for out in ("eval", "eval2"):  # the first run's own folder, then an earlier run's
        rc = main(["evaluate", "--data", str(data), "--models", str(models), "-o",
                   str(data / out), "--max-cases", "1", "--device", "cpu"])  # fmt: skip
        assert rc == 0
        said = capsys.readouterr()
        assert "eval (" not in said.out + said.err and "eval2 (" not in said.out + said.err
        assert "Not evaluated: 1 of the 2 test patients asked for: HCC_002" in said.out
        summary = json.loads((data / out / "summary.json").read_text())
        assert [n["case"] for n in summary["not_evaluated"]] == ["HCC_002"]


def test_a_nifti_dataset_of_ungraded_scans_is_said_to_have_no_ground_truth(
    trained, tmp_path, capsys
):
    """``convert`` of patients without a SEG writes imagesTs/ alone: evaluate read imagesTs/
    as a patient folder ("imagesTs: no DICOM; NIfTI files ... are read from imagesTr/")."""
    import shutil

    data, models = trained
    nsn = tmp_path / "nsn"
    shutil.copytree(data / "imagesTr", nsn / "imagesTs")
    rc = main(["evaluate", "--data", str(nsn), "--models", str(models), "--device", "cpu"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "nsn: holds imagesTs/ but no imagesTr/ + labelsTr/: no ground truth" in err
    assert "the CTs in imagesTs/ have no labels" in err and "no DICOM" not in err


def test_a_data_folder_given_as_models_is_refused_before_the_data_is_read(trained, capsys, caplog):
    data, _ = trained
    rc = main(["evaluate", "--data", str(data), "--models", str(data), "--device", "cpu"])
    assert rc == 1 and "holds no liver/ or tumor/ model folder" in capsys.readouterr().err
    assert "no split file" not in caplog.text


def test_the_table_says_what_ours_is_and_over_how_many_patients_each_mean_is(trained, tmp_path):
    from napari_livertumor.training.metrics import format_table, summarize

    rows = [
        {"case": "A", "tumor_dice": 0.5, "tumor_sensitivity": 0.6, "tumor_iou": 0.4,
         "tumor_accuracy": 0.99, "liver_dice": 0.9, "liver_accuracy": 0.99,
         "liver_sensitivity": 0.9, "liver_iou": 0.8, "tumor_stratum": "<10cm"},
        {"case": "B", "tumor_dice": float("nan"), "tumor_sensitivity": float("nan"),
         "tumor_iou": float("nan"), "tumor_accuracy": 1.0, "liver_dice": 0.8,
         "liver_accuracy": 0.99, "liver_sensitivity": 0.8, "liver_iou": 0.7,
         "tumor_stratum": "none"},
    ]  # fmt: skip
    summary = summarize(rows)
    assert summary["n_scored"]["tumor"] == {
        "accuracy": 2, "dice": 1, "sensitivity": 1, "iou": 1
    }  # fmt: skip
    summary["refine"] = False
    text = format_table(summary)
    assert "ours without the tumor refinement" in text
    assert "(tumor dice, sensitivity, iou: over 1 of the 2 patients" in text
    assert "(liver" not in text  # every liver mean over both


def test_a_tumor_free_patient_has_blank_diameters_and_volume_errors(monkeypatch, tmp_path):
    """A diameter of 0.0 for a patient without tumor was averaged as a 0-mm lesion."""
    from types import SimpleNamespace

    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.training import evaluate as ev

    hcc = np.zeros((6, 16, 16), np.uint8)
    hcc[1:5, 3:13, 3:13] = 1  # a liver, no tumor
    ct = CTVolume(np.zeros(hcc.shape, np.int16), spacing=(2.5, 1.0, 1.0))
    monkeypatch.setattr(ev, "load_case", lambda rec: (ct, hcc))
    pred = (hcc > 0).astype(np.uint8)
    pred[2, 5:7, 5:7] = 2  # a false lesion, 0.01 mL
    result = SimpleNamespace(
        labels=pred, stats={"liver_ml": float((pred >= 1).sum()) * 2.5e-3, "tumor_ml": 0.01},
        warnings=[],
    )  # fmt: skip
    seg = SimpleNamespace(segment=lambda volume: result)
    rows: list = []
    ev._score_cases([SimpleNamespace(case_id="HCC_009")], seg, rows, [], labels_dir=tmp_path)
    (row,) = rows
    assert row["tumor_longest_diameter_mm"] is None and row["tumor_axial_diameter_mm"] is None
    assert row["tumor_stratum"] == "none"
    assert row["tumor_volume_error_pct"] is None  # no true tumor to be a share of
    assert row["liver_volume_error_pct"] == pytest.approx(0.0)
    assert row["tumor_nsd"] == 0.0 and np.isnan(row["tumor_hd95_mm"])
    assert (tmp_path / "HCC_009_labels.nii.gz").is_file()
    ev.write_results(tmp_path, rows, ev.summarize(rows))
    with open(tmp_path / "per_case.csv") as fh:
        written = next(csv.DictReader(fh))
    assert written["tumor_longest_diameter_mm"] == "" and written["tumor_volume_error_pct"] == ""


def test_volume_errors_come_from_voxel_counts_not_the_rounded_volumes(monkeypatch):
    """The relative volume error was computed from the stats' mL, rounded to 4 decimals:
    296.0004 % where the counts give 296 % exactly (a reviewer's case: 99 voxels for 25)."""
    from types import SimpleNamespace

    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.training import evaluate as ev

    spacing = (3.1, 0.77, 0.77)  # a voxel of 1.83799 uL: its mL do not round cleanly
    hcc = np.zeros((8, 20, 20), np.uint8)
    hcc[1:7, 2:18, 2:18] = 1
    hcc[3, 5:10, 5:10] = 2  # 25 tumor voxels
    ct = CTVolume(np.zeros(hcc.shape, np.int16), spacing=spacing)
    monkeypatch.setattr(ev, "load_case", lambda rec: (ct, hcc))
    pred = (hcc > 0).astype(np.uint8)
    pred[3, 4:13, 4:15] = 2  # 99 tumor voxels
    voxel_ml = float(np.prod(spacing)) / 1000
    result = SimpleNamespace(
        labels=pred,
        stats={"liver_ml": round(float((pred >= 1).sum()) * voxel_ml, 4),
               "tumor_ml": round(99 * voxel_ml, 4)},
        warnings=[],
    )  # fmt: skip
    rows: list = []
    seg = SimpleNamespace(segment=lambda volume: result)
    ev._score_cases([SimpleNamespace(case_id="HCC_010")], seg, rows, [])
    (row,) = rows
    assert row["tumor_volume_error_pct"] == 100.0 * (99 - 25) / 25
    assert row["liver_volume_error_pct"] == 0.0


def test_saved_label_maps_lie_on_the_files_own_grid(trained, tmp_path):
    """A RAS-stored case (x and y flipped, as many converters write them): --save-labels wrote
    its map turned, on another grid than the CT file's, and every figure recomputed from it
    was wrong (liver Dice 0.04 against 0.96)."""
    import shutil

    import nibabel as nib

    from napari_livertumor.training.evaluate import evaluate
    from napari_livertumor.training.metrics import case_scores, hcc_to_output

    data, models = trained
    ras = tmp_path / "ras"
    shutil.copytree(data, ras)
    for folder in ("imagesTr", "labelsTr"):
        path = ras / folder / "HCC_002.nii.gz"
        img = nib.load(path)
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        shape = np.array(img.shape[:3]) - 1
        shift = np.eye(4)
        shift[:2, 3] = shape[:2]
        affine = img.affine @ shift @ flip  # the same world, x and y stored the other way
        data_ras = np.asarray(img.dataobj)[::-1, ::-1, :]
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data_ras), affine, img.header), path)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "test": ["HCC_002"]}))
    result = evaluate(ras, models=models, split_file=split, out_dir=tmp_path / "out",
                      device="cpu", save_labels=True)  # fmt: skip
    saved = nib.load(tmp_path / "out" / "labels" / "HCC_002_labels.nii.gz")
    ct_file = nib.load(ras / "imagesTr" / "HCC_002.nii.gz")
    np.testing.assert_allclose(saved.affine, ct_file.affine, atol=1e-4)
    truth = hcc_to_output(np.asarray(nib.load(ras / "labelsTr" / "HCC_002.nii.gz").dataobj))
    again = case_scores(np.asarray(saved.dataobj), truth)
    assert again["liver_dice"] == pytest.approx(result["rows"][0]["liver_dice"], abs=1e-6)


def test_a_stopped_overwrite_keeps_the_earlier_label_maps_with_their_results(
    trained, tmp_path, monkeypatch
):
    """Ctrl-C during `--overwrite --save-labels` kept the earlier per_case.csv and summary but
    had replaced their label maps with the stopped run's: the two no longer matched."""
    from napari_livertumor.pipeline import Segmenter
    from napari_livertumor.training.evaluate import evaluate

    data, models = trained
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["HCC_001"], "test": ["HCC_002", "HCC_003"]}))
    out = tmp_path / "out"
    kw = dict(models=models, split_file=split, out_dir=out, device="cpu")
    evaluate(data, save_labels=True, **kw)
    maps = {p.name: p.read_bytes() for p in (out / "labels").iterdir()}
    assert set(maps) == {"HCC_002_labels.nii.gz", "HCC_003_labels.nii.gz"}
    real, calls = _stop_on_the_second_case(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        evaluate(data, save_labels=True, overwrite=True, **kw)
    assert {p.name: p.read_bytes() for p in (out / "labels").iterdir()} == maps  # untouched
    assert [p.name for p in (out / "labels.interrupted").iterdir()] == ["HCC_002_labels.nii.gz"]
    stopped = json.loads((out / "summary.interrupted.json").read_text())
    assert stopped["labels"] == str((out / "labels.interrupted").absolute())
    assert not (out / "labels.partial").exists()
    # stopped again, without --save-labels: the stopped results it replaces had maps; they go
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        evaluate(data, overwrite=True, **kw)
    assert not (out / "labels.interrupted").exists() and (out / "summary.interrupted.json").exists()
    assert {p.name: p.read_bytes() for p in (out / "labels").iterdir()} == maps
    # a complete --overwrite without --save-labels: the replaced evaluation's maps go with it
    monkeypatch.setattr(Segmenter, "segment", real)
    evaluate(data, overwrite=True, **kw)
    assert not (out / "labels").exists() and not (out / "labels.interrupted").exists()
    assert sorted(p.name for p in out.iterdir()) == ["lesions.csv", "per_case.csv", "summary.json"]
    # maps that cannot be moved into labels/: said, the results written and saying where
    # they are (they were written first, describing maps not there)
    from napari_livertumor.errors import InputError
    from napari_livertumor.training import evaluate as ev

    def refused(*args, **kwargs):
        raise PermissionError(
            13, "Permission denied", str(out / "labels" / "HCC_002_labels.nii.gz")
        )

    monkeypatch.setattr(ev, "_settle_labels", refused)
    with pytest.raises(InputError, match="the label maps could not be moved there"):
        evaluate(data, save_labels=True, overwrite=True, **kw)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"] == str((out / "labels.partial").absolute())
    assert "Permission denied" in summary["labels_not_moved"]
    assert len(list((out / "labels.partial").iterdir())) == 2


def test_a_stopped_evaluation_resumes_to_the_same_results_as_one_run_whole(
    trained, whole_evaluation, tmp_path, monkeypatch, capsys
):
    """Ctrl-C after some patients: the only way on was --overwrite, scoring every patient
    again. --resume keeps the ones scored and gives what one whole run gives."""
    from napari_livertumor.errors import InputError
    from napari_livertumor.pipeline import Segmenter
    from napari_livertumor.training.evaluate import RESUME_FILE, evaluate

    data, models = trained
    split = tmp_path / "split.json"
    split.write_text(json.dumps(THREE_TEST_PATIENTS))
    kw = dict(models=models, split_file=split, device="cpu", save_labels=True)
    whole, whole_out = whole_evaluation
    out = tmp_path / "out"
    real, calls = _stop_on_the_second_case(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        evaluate(data, out_dir=out, **kw)
    assert (out / RESUME_FILE).is_file()
    # refused when run otherwise than the stopped one (here: the surface tolerance)
    monkeypatch.setattr(Segmenter, "segment", real)
    with pytest.raises(InputError, match="differs from this one in: --nsd-tolerance; resume it"):
        evaluate(data, out_dir=out, resume=True, nsd_tolerance_mm=1.0, **kw)
    assert not (out / "labels.partial").exists()  # refused before anything was made
    # run again without --resume: --resume is offered beside --overwrite
    with pytest.raises(InputError, match="--resume goes on with it"):
        evaluate(data, out_dir=out, **kw)
    # the same split file given by another path is the same split
    monkeypatch.chdir(tmp_path)
    kw_rel = dict(kw, split_file="split.json")
    calls.clear()
    monkeypatch.setattr(
        Segmenter, "segment", lambda self, *a, **k: calls.append(1) or real(self, *a, **k)
    )
    # a map gone from labels/: that patient is scored again, not the whole evaluation
    (out / "labels" / "HCC_002_labels.nii.gz").unlink()
    resumed = evaluate(data, out_dir=out, resume=True, **kw_rel)
    assert len(calls) == 3  # (HCC_002 again, for its map; HCC_003 and HCC_004)
    assert not (out / RESUME_FILE).exists() and not (out / "labels.partial").exists()
    assert "interrupted" not in resumed["summary"]
    drop = ("seconds",)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(resumed["rows"]) == strip(whole["rows"])
    assert resumed["lesions"] == whole["lesions"]
    for key in ("table", "table_median", "n_scored", "tumor_dice_by_size", "lesions", "n_cases"):
        assert resumed["summary"][key] == whole["summary"][key], key
    maps = sorted(p.name for p in (out / "labels").iterdir())
    assert maps == ["HCC_002_labels.nii.gz", "HCC_003_labels.nii.gz", "HCC_004_labels.nii.gz"]
    for name in maps:
        assert (out / "labels" / name).read_bytes() == (whole_out / "labels" / name).read_bytes()
    # nothing left to resume: said
    with pytest.raises(InputError, match="holds no stopped evaluation to resume"):
        evaluate(data, out_dir=out, resume=True, **kw)
    # the command line: --resume needs -o, and goes with --overwrite no more
    assert main(["evaluate", "--data", str(data), "--resume"]) == 2
    assert "--resume needs -o" in capsys.readouterr().err


@pytest.mark.parametrize(
    "over_earlier, killed_at",
    [
        (False, "scoring"),  # while it segmented its second patient
        (False, "labels/"),  # moving the maps into labels/ (the others still staged)
        (False, "per_case.csv"),  # every patient scored, its maps in place
        (False, "summary.json"),  # per_case.csv and lesions.csv written
        (True, "scoring"),  # --overwrite over a complete evaluation
        (True, "per_case.csv"),  # ... the earlier maps replaced, its results not yet
    ],
)
def test_an_evaluation_killed_outright_is_resumed_with_the_patients_it_scored_kept(
    trained, whole_evaluation, tmp_path, monkeypatch, over_earlier, killed_at
):
    """kill -9 (the OOM killer, a scheduler) wrote no resume state (only a Ctrl-C did): --resume
    said "holds no stopped evaluation to resume", and a rerun was refused for "an earlier
    evaluation" (its orphan labels/) or scored every patient again. The state is kept up to date
    as the run goes: a kill anywhere is resumed to what one whole run gives."""
    import os
    import shutil

    from _killed import Killed

    from napari_livertumor.errors import InputError
    from napari_livertumor.pipeline import Segmenter
    from napari_livertumor.training.evaluate import RESUME_FILE, evaluate

    data, models = trained
    split = tmp_path / "split.json"
    split.write_text(json.dumps(THREE_TEST_PATIENTS))
    kw = dict(models=models, split_file=split, device="cpu", save_labels=True)
    whole, whole_out = whole_evaluation
    out = tmp_path / "out"
    if over_earlier:  # a complete evaluation there, its maps not this one's
        shutil.copytree(whole_out, out)
        for p in (out / "labels").iterdir():
            p.write_bytes(b"the earlier evaluation's map")
    real_segment, real_replace, calls, armed = Segmenter.segment, os.replace, [], [True]

    def killed_here(where: str) -> None:
        if armed and where == killed_at:
            armed.clear()
            raise Killed

    def segment(self, *args, **kwargs):
        calls.append(1)
        killed_here("scoring" if len(calls) == 2 else "")
        return real_segment(self, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):  # (a file put in place: where it goes)
        dst = Path(dst)
        killed_here(dst.name if dst.parent == out else f"{dst.parent.name}/")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(Segmenter, "segment", segment)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Killed):
        evaluate(data, out_dir=out, overwrite=over_earlier, **kw)
    assert not armed and (out / RESUME_FILE).is_file()
    # a rerun without --resume is offered it, not told of "an earlier evaluation" alone
    with pytest.raises(InputError, match="stopped before its end.*--resume goes on with it"):
        evaluate(data, out_dir=out, **kw)
    (out / ".per_case.csv.k1ll3d.tmp").write_text("case\n")  # (a kill -9 leaves its temporary)
    scored_before = 1 if killed_at == "scoring" else 3
    calls.clear()
    resumed = evaluate(data, out_dir=out, resume=True, **kw)
    assert len(calls) == 3 - scored_before  # the patients scored before: not scored again
    assert "interrupted" not in resumed["summary"] and resumed["summary"]["n_cases"] == 3
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed["rows"]) == strip(whole["rows"])
    assert resumed["lesions"] == whole["lesions"]
    with open(out / "per_case.csv") as fh:
        assert [r["case"] for r in csv.DictReader(fh)] == ["HCC_002", "HCC_003", "HCC_004"]
    assert json.loads((out / "summary.json").read_text())["n_cases"] == 3
    assert sorted(p.name for p in out.iterdir()) == [
        "labels", "lesions.csv", "per_case.csv", "summary.json"
    ]  # fmt: skip
    for p in (whole_out / "labels").iterdir():  # the maps scored, none of another run
        assert (out / "labels" / p.name).read_bytes() == p.read_bytes(), p.name
    assert len(list((out / "labels").iterdir())) == 3


def _stop_on_the_second_case(monkeypatch):
    """``Segmenter.segment`` interrupted (Ctrl-C) on its second call; the real method and the
    list of calls (cleared: it stops on the second call again)."""
    from napari_livertumor.pipeline import Segmenter

    real, calls = Segmenter.segment, []

    def stopped_on_the_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Segmenter, "segment", stopped_on_the_second)
    return real, calls


def test_a_second_evaluation_into_the_same_folder_is_refused_while_one_runs(tmp_path):
    """Two evaluations into one -o at once (two terminals, a job resubmitted) each passed the
    check for earlier results, scored, and wrote: the last one's summary beside the other's
    per-case table, passing for one run. One runs at a time; a refused run made no folder."""
    from napari_livertumor.errors import InputError
    from napari_livertumor.fileio import file_lock
    from napari_livertumor.training.evaluate import LOCK_FILE, evaluate

    out = tmp_path / "out"
    out.mkdir()
    (out / "per_case.csv").write_text("case\nHCC_001\n")
    with file_lock(out / LOCK_FILE) as held:  # the other evaluation, going on
        assert held
        with pytest.raises(InputError, match="another evaluation is writing") as exc:
            evaluate(tmp_path / "no data", out_dir=out, device="cpu", overwrite=True)
        assert str(out) in str(exc.value)
    assert (out / "per_case.csv").read_text() == "case\nHCC_001\n"
    assert sorted(p.name for p in out.iterdir()) == ["per_case.csv"]  # (its lock gone)
    fresh = tmp_path / "fresh"
    with pytest.raises(InputError, match="models folder not found"):
        evaluate(tmp_path, models=tmp_path / "none", out_dir=fresh, device="cpu")
    assert not fresh.exists()  # made for the lock, and removed: nothing written in it
    deep = tmp_path / "deep" / "a" / "ev"  # its parents new too: locked the same way
    with pytest.raises(InputError, match="models folder not found"):
        evaluate(tmp_path, models=tmp_path / "none", out_dir=deep, device="cpu")
    assert not (tmp_path / "deep").exists()
    from napari_livertumor.training.evaluate import _evaluation_lock

    with _evaluation_lock(deep):  # a run into it, its folders made for it: it holds the lock
        assert (deep / LOCK_FILE).is_file()
        with pytest.raises(InputError, match="another evaluation is writing"):
            evaluate(tmp_path / "no data", out_dir=deep, device="cpu")
    assert not (tmp_path / "deep").exists()


def test_a_studys_other_series_beside_the_one_its_truth_is_drawn_on_is_no_warning(
    blind_models, tmp_path, capsys
):
    """Every HCC-TACE-Seg patient has a PRE LIVER series beside the one its SEG is drawn on:
    "1 other series in the folder not read" was counted as a warning for each patient, burying
    real ones."""
    from napari_livertumor.synth import make_cohort

    models = blind_models
    data = make_cohort(tmp_path / "tcia", 1, seed=4, layout="tcia", shape="small", quirks=True)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [], "test": ["HCC_001"]}))
    rc = main(["evaluate", "--data", str(data), "--models", str(models), "--split", str(split),
               "-o", str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert rc == 0
    with open(tmp_path / "out" / "per_case.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert "other series in the folder not read" not in row["warnings"]
    from napari_livertumor.io.tcia import load_tcia_case

    ct, _ = load_tcia_case(data / "HCC_001")  # (the reader still says it: Load shows it)
    assert any("other series in the folder not read" in w for w in ct.meta["warnings"])


def test_the_summary_line_of_warnings_puts_serious_ones_first():
    """The line showed the first 160 characters of a patient's first warning only: a "no liver
    found" after a note about the field of view (or a patient with one after others) was not
    seen."""
    from napari_livertumor.training.evaluate import _warned_line

    edge = "the liver comes to 19 mm of the image's right edge, " + "where " * 40
    warned = [
        ("HCC_001", edge),
        ("HCC_002", "a slice was filled in; no liver found: every value lies within 1 HU"),
    ]
    line = _warned_line(warned)
    assert line.startswith("Scan or result warned of for 2 scored patient(s)")
    # the patient with a serious warning first, that warning shown, the rest said to be there
    assert "HCC_002 (no liver found: every value lies within 1 HU; and more); HCC_001 (" in line
    assert "a slice was filled in" not in line
    assert "HCC_001 (the liver comes to 19 mm" in line and "…" in line  # cut, as before


def test_the_summary_line_keeps_a_warning_whole_that_holds_a_semicolon_in_brackets():
    """The whole-liver tumor warning holds "; " in its brackets: split there, the line showed
    "HCC_002 (the tumor found covers 100.0 % of the liver (a patient lives on a quarter of it
    or so; and more)", its brackets never closed and its advice dropped."""
    from napari_livertumor.pipeline import _tumor_share_warning
    from napari_livertumor.training.evaluate import _split_warnings, _warned_line

    whole = _tumor_share_warning({"tumor_to_liver_ratio": 1.0})
    other = "a slice was filled in (slices 3; 4 and 5)"
    assert _split_warnings(f"{whole}; {other}") == [whole, other]
    line = _warned_line([("HCC_002", whole)])
    assert "or so; and more" not in line and "; and more" not in line
    assert "the largest HCCs rarely reach 80 %): check the tumor mask slice by slice" in line
    assert _warned_line([("HCC_002", f"{whole}; {other}")]).endswith("…; and more)")


def test_a_case_named_like_a_formula_is_text_in_the_tables(tmp_path):
    """A test patient's file ``=HYPERLINK("http:__evil","x").nii.gz`` gave per_case.csv and
    lesions.csv a cell that a spreadsheet runs as a formula; the figures stay numbers."""
    from napari_livertumor.training.evaluate import write_results

    case = '=HYPERLINK("http:__evil","x")'
    rows = [{"case": case, "tumor_dice": 0.5, "warnings": "-x: a warning", "lesions_true": 2}]
    lesions = [{"case": case, "lesion": "true 1", "kind": "true", "contrast_hu": -11.1}]
    write_results(tmp_path, rows, {}, lesions=lesions)
    with open(tmp_path / "per_case.csv", newline="", encoding="utf-8") as fh:
        (row,) = csv.DictReader(fh)
    assert row == {"case": "'" + case, "tumor_dice": "0.5000", "warnings": "'-x: a warning",
                   "lesions_true": "2"}  # fmt: skip
    with open(tmp_path / "lesions.csv", newline="", encoding="utf-8") as fh:
        (lesion,) = csv.DictReader(fh)
    assert lesion["case"] == "'" + case and lesion["contrast_hu"] == "-11.1000"


def test_a_lesions_ml_in_lesions_csv_has_the_digits_segments_stats_give(tmp_path):
    """lesions.csv wrote a 32-voxel lesion of 1 mm voxels (0.032 mL) as 0.0300: its ``ml`` was
    rounded to 2 decimals and written with 4, the last two zeros that were never measured, and
    the same lesion read 0.0320 mL in segment's stats."""
    from napari_livertumor.stats import compute_stats
    from napari_livertumor.training.evaluate import write_results
    from napari_livertumor.training.metrics import lesion_table

    truth = np.zeros((8, 24, 24), np.uint8)
    truth[1:7, 2:22, 2:22] = 1
    truth[2:4, 5:9, 5:9] = 2  # 2 * 4 * 4 = 32 voxels of 1 mm³
    ct = np.where(truth == 2, 20, 60).astype(np.int16)
    rows = lesion_table(ct, truth, truth == 2, (1.0, 1.0, 1.0), min_ml=0.01)
    write_results(tmp_path, [], {}, lesions=[{"case": "p1", **r} for r in rows])
    with open(tmp_path / "lesions.csv", newline="", encoding="utf-8") as fh:
        (lesion,) = csv.DictReader(fh)
    (stats_lesion,) = compute_stats(truth, (1.0, 1.0, 1.0))["lesions"]
    assert lesion["ml"] == f"{stats_lesion['volume_ml']:.4f}" == "0.0320", lesion


def test_resume_and_overwrite_together_are_a_usage_error(tmp_path, capsys):
    """--resume goes on with a stopped evaluation and --overwrite starts again: given both,
    the command says so (exit status 2) and touches nothing."""
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(tmp_path / "data"), "-o", str(out), "--resume", "--overwrite"]
    assert main(args) == 2
    assert "give one of them" in capsys.readouterr().err
    assert not out.exists()


def test_the_counts_of_patients_not_scored_add_up_with_a_scan_without_ground_truth(
    blind_models, tmp_path, capsys
):
    """A folder of 3 images (one without a label, one with a label of the wrong shape) under
    models whose split is of other data said "2 of the 2 cases here are not in it", then "Not
    evaluated: 2 of the 3 test patients asked for", then "1 test patient(s) could not be
    scored": each count over other patients, none saying so. And with one patient scored, the
    Dice line ended in a "(bootstrap)" with no interval."""
    import shutil

    import nibabel as nib

    data = write_toy_cohort(tmp_path / "data", n_cases=3, seed=2)
    (data / "labelsTr" / "HCC_001.nii.gz").unlink()  # no ground truth: only named
    label = nib.load(data / "labelsTr" / "HCC_002.nii.gz")
    cut = np.asanyarray(label.dataobj)[:, :, :-2]  # the wrong shape: a failed case
    nib.save(nib.Nifti1Image(cut, label.affine), data / "labelsTr" / "HCC_002.nii.gz")
    models = tmp_path / "models"
    shutil.copytree(blind_models, models)
    (models / "tumor" / "split.json").write_text(
        json.dumps({"train": ["X_001"], "val": [], "test": ["X_002"]})  # other data's
    )
    rc = main(["evaluate", "--data", str(data), "--models", str(models), "-o",
               str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert rc == 1
    said = capsys.readouterr()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_cases"] == 1 and summary["test_patients_asked"] == 3
    cautions = " ".join(summary["cautions"])
    assert "2 of the 2 cases here with a ground truth are not in it (1 more has none)" in cautions
    assert (
        "Not evaluated: 2 of the 3 test patients asked for (1 could not be scored, 1 has no "
        "ground truth): HCC_001 (no label file"
    ) in said.out
    assert (
        "1 of the 3 test patients could not be scored (see 'Not evaluated'; besides them, 1 has "
        "no ground truth): the figures are over the 1 scored"
    ) in said.err
    (dice,) = [line for line in said.out.splitlines() if line.startswith("Dice over patients")]
    assert dice.endswith(" (one patient: no interval)") and "bootstrap" not in dice
