"""``livertumor segment`` on one CT: the files a user gets and the messages on bad input."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_livertumor import __version__
from napari_livertumor.cli import main
from napari_livertumor.commands.segment import discover_cases
from napari_livertumor.io import load_ct
from napari_livertumor.io.dicom_write import write_ct_series
from napari_livertumor.io.nifti import write_nifti
from napari_livertumor.io.volume import CTVolume
from napari_livertumor.models import make_untrained_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    make_untrained_model(root / "liver", "liver")
    make_untrained_model(root / "tumor", "tumor")
    return root


def small_ct(seed=0, shape=(12, 40, 48)):
    rng = np.random.default_rng(seed)
    ct = rng.normal(40, 60, shape).astype(np.int16)
    direction = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # rotated in-plane
    return CTVolume(
        ct,
        spacing=(2.5, 0.8, 0.7),
        origin=(-150.0, 30.0, 400.0),
        direction=direction,
        meta={"modality": "CT"},
    )


def test_a_nifti_ct_gives_labels_on_its_grid_and_a_stats_file(tmp_path, models, capsys):
    write_nifti(small_ct(), tmp_path / "patient7.nii.gz")
    out = tmp_path / "out"
    rc = main(
        [
            "segment",
            str(tmp_path / "patient7.nii.gz"),
            "-o",
            str(out),
            "--models",
            str(models),
            "--device",
            "cpu",
            "--no-refine",
        ]
    )
    assert rc == 0
    ct = nib.load(tmp_path / "patient7.nii.gz")
    labels = nib.load(out / "patient7_labels.nii.gz")
    assert labels.shape == ct.shape
    np.testing.assert_allclose(labels.affine, ct.affine, atol=1e-3)
    data = np.asarray(labels.dataobj)
    assert data.dtype == np.uint8 and set(np.unique(data)) <= {0, 1, 2}
    stats = json.loads((out / "patient7_stats.json").read_text())
    for key in ("liver_ml", "tumor_ml", "tumor_to_liver_ratio", "lesions", "timings_s", "device"):
        assert key in stats
    assert stats["device"] == "cpu" and stats["complete"] is True
    assert {"read", "liver", "write", "total"} <= set(stats["timings_s"])
    assert not (out / "summary.csv").exists()  # one case: no batch summary
    # its figures on one line (they were only in the JSON)
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith("patient7: no liver found; ")  # (noise: the untrained models)
    assert printed.endswith(f"-> {out / 'patient7_labels.nii.gz'}")


def test_the_result_line_gives_a_cases_figures():
    from napari_livertumor.commands.segment import _figures

    row = {"liver_ml": 1469.52, "tumor_ml": 44.66, "tumor_to_liver_ratio": 0.0304,
           "lesion_count": 1, "warnings": ""}  # fmt: skip
    assert _figures(row) == "liver 1469.5 mL, tumor 44.7 mL (3.0 % of the liver), 1 lesion"
    row.update(tumor_ml=0.0, tumor_to_liver_ratio=0.0, lesion_count=0, warnings="a | b")
    assert _figures(row) == (
        "liver 1469.5 mL, tumor 0.00 mL (0.0 % of the liver), 0 lesions; 2 warning(s) in its stats"
    )
    row.update(tumor_ml=None, tumor_to_liver_ratio=None, lesion_count=None, warnings="")
    assert _figures(row) == "liver 1469.5 mL, tumor not computed (liver only)"


def test_a_dicom_folder_gives_labels_with_the_affine_of_the_series(tmp_path, models):
    vol = small_ct(seed=3)
    write_ct_series(vol, tmp_path / "HCC_042" / "study" / "ct", patient_id="HCC_042")
    out = tmp_path / "out"
    rc = main(
        [
            "segment",
            str(tmp_path / "HCC_042"),
            "-o",
            str(out),
            "--models",
            str(models),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    ct = load_ct(tmp_path / "HCC_042")
    labels = nib.load(out / "HCC_042_labels.nii.gz")
    np.testing.assert_allclose(labels.affine, ct.affine, atol=1e-3)
    assert labels.shape == ct.shape[::-1]  # NIfTI stores (x, y, z)
    stats = json.loads((out / "HCC_042_stats.json").read_text())
    assert stats["series_uid"] == ct.meta["series_uid"]
    # what made it and of what: "0.1.0" named every commit; the voxels' digest is the same
    # for the series and for a NIfTI written of it
    from napari_livertumor.provenance import array_digest

    assert stats["ct_digest"] == array_digest(ct.array)
    assert stats["software"]["napari_livertumor"] == stats["version"]
    assert stats["software"]["torch"] and "commit" in stats["software"]


def test_the_summary_tells_a_baseline_from_a_follow_up(tmp_path, models, caplog):
    """Two studies of one patient segmented in one run: summary.csv gave no study date or
    series, so which row was the follow-up could be told only from the stats files. A rerun
    of a patient folder with ``--series`` of the other study replaced the first study's
    outputs saying only "other settings (--series)"."""
    import csv
    import logging

    for study, date, number in (("base", "20071223", 4), ("fu", "20080315", 104)):
        write_ct_series(small_ct(seed=3), tmp_path / study, patient_id="HCC_001",
                        study_date=date, series_number=number)  # fmt: skip
    write_nifti(small_ct(seed=1), tmp_path / "c.nii.gz")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "base"), str(tmp_path / "fu"), str(tmp_path / "c.nii.gz")]
    assert main([*args, "-o", str(out), "--models", str(models), "--device", "cpu"]) == 0
    with open(out / "summary.csv", newline="") as f:
        table = csv.DictReader(f)
        rows = {r["case"]: r for r in table}
    # (added last: the columns a script reads by place are where they were)
    assert table.fieldnames[:3] == ["case", "input", "status"]
    assert table.fieldnames[-2:] == ["study_date", "series_number"]
    got = {case: (r["study_date"], r["series_number"]) for case, r in rows.items()}
    assert got == {"base": ("2007-12-23", "4"), "fu": ("2008-03-15", "104"), "c": ("", "")}
    patient = tmp_path / "HCC_001"  # the two series in one folder: one case
    for study, date, number in (("base", "20071223", 4), ("fu", "20080315", 104)):
        write_ct_series(small_ct(seed=3), patient / study, patient_id="HCC_001",
                        study_uid="1.2.3.4", study_date=date, series_number=number)  # fmt: skip
    one = ["segment", str(patient), "-o", str(tmp_path / "one"), "--models", str(models)]
    base = load_ct(patient / "base").meta["series_uid"]
    follow_up = load_ct(patient / "fu").meta["series_uid"]
    assert main([*one, "--device", "cpu", "--series", base]) == 0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main([*one, "--device", "cpu", "--series", follow_up]) == 0
    assert "other settings (--series: those are of series #4 'CT' of 2007-12-23)" in caplog.text


def test_a_study_folder_with_several_series_is_one_case(tmp_path):
    vol = small_ct()
    write_ct_series(vol, tmp_path / "study" / "s1", patient_id="P1", study_uid="1.2.3.4")
    write_ct_series(vol, tmp_path / "study" / "s2", patient_id="P1", study_uid="1.2.3.4")
    cases = discover_cases([tmp_path / "study"])
    assert [c.name for c in cases] == ["study"]


def test_missing_input_is_a_clear_error(tmp_path, models, capsys):
    rc = main(
        ["segment", str(tmp_path / "nothing.nii.gz"), "-o", str(tmp_path), "--models", str(models)]
    )
    assert rc == 1
    assert "nothing.nii.gz: file or folder not found" in capsys.readouterr().err


def test_a_missing_model_folder_is_a_clear_error(tmp_path, capsys, caplog):
    """Refused before anything is planned: "models used: the liver model /nonexist/liver…"
    was logged first (and a case with outputs there "redone with other settings")."""
    import logging

    write_nifti(small_ct(), tmp_path / "ct.nii.gz")
    with caplog.at_level(logging.INFO):
        rc = main(
            [
                "segment",
                str(tmp_path / "ct.nii.gz"),
                "-o",
                str(tmp_path / "o"),
                "--models",
                str(tmp_path / "no_models"),
            ]
        )
    assert rc == 1
    err = capsys.readouterr().err
    assert "no_models: models folder not found" in err and "liver" in err
    assert "models used" not in caplog.text and "case(s) found" not in caplog.text
    assert not list((tmp_path / "o").glob("*_labels.nii.gz"))


def test_a_models_folder_with_a_liver_model_only_points_to_stages_liver(tmp_path, models, capsys):
    """Right after `train --stage liver`, `segment --models OUT` said to train a tumor model
    and never that the liver model runs alone with --stages liver."""
    import shutil

    write_nifti(small_ct(), tmp_path / "ct.nii.gz")
    shutil.copytree(models / "liver", tmp_path / "out" / "liver")
    args = ["segment", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "o"),
            "--models", str(tmp_path / "out"), "--device", "cpu"]  # fmt: skip
    assert main(args) == 1
    assert "`livertumor segment --stages liver`" in capsys.readouterr().err
    assert main([*args, "--stages", "liver", "--no-refine"]) == 0


def test_bad_shard_text_is_refused(tmp_path, capsys):
    write_nifti(small_ct(), tmp_path / "ct.nii.gz")
    assert main(["segment", str(tmp_path / "ct.nii.gz"), "--shard", "4/4"]) == 1
    assert "--shard 4/4" in capsys.readouterr().err


def test_models_default_names_the_shipped_models_as_train_init_does(tmp_path, monkeypatch):
    """An installed user could not name the shipped models (README's resources/models is a
    source checkout's path); ``train --init default`` could."""
    from napari_livertumor.cli import build_parser
    from napari_livertumor.models import default_model_dir

    shipped = str(default_model_dir("tumor").parent)
    monkeypatch.chdir(tmp_path)
    for argv in (["segment", "x.nii.gz"], ["evaluate", "--data", "d"]):
        assert build_parser().parse_args([*argv, "--models", "default"]).models == shipped
    (tmp_path / "default").mkdir()  # a folder of that name here is the one meant
    assert build_parser().parse_args(["segment", "x", "--models", "default"]).models == "default"


def test_the_lesion_filter_options_reach_the_pipeline_and_the_stats(tmp_path, models):
    import csv

    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    write_nifti(small_ct(seed=1), tmp_path / "b.nii.gz")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "-o", str(out)]
    args += ["--models", str(models), "--device", "cpu", "--no-refine"]
    assert (
        main([*args, "--min-tumor-ml", "0.3", "--min-lesion-peak", "1.5", "--tta", "inplane"]) == 0
    )
    stats = json.loads((out / "a_stats.json").read_text())
    assert stats["lesion_filter"] == {"min_ml": 0.3, "min_peak": 1.5}
    assert stats["tumor_tta"] == "inplane"
    assert isinstance(stats["unsure_lesions"], list)
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    expected = []
    for c in ("a", "b"):
        st = json.loads((out / f"{c}_stats.json").read_text())
        # no liver found → no tumor looked for: the count is blank, not 0
        expected.append("" if st["tumor_ml"] is None else str(len(st["unsure_lesions"])))
    assert [r["unsure_lesion_count"] for r in rows] == expected
    for c, row in zip(("a", "b"), rows, strict=True):  # the attenuations, as in each JSON
        st = json.loads((out / f"{c}_stats.json").read_text())
        for key in ("liver_mean_hu", "tumor_mean_hu"):
            assert row[key] == ("" if st[key] is None else str(st[key]))
    # without the options the model's own filter (none in this untrained model) is in force
    assert main([*args, "--overwrite"]) == 0
    stats = json.loads((out / "a_stats.json").read_text())
    assert stats["lesion_filter"] == {"min_ml": 0.1, "min_peak": 0.0}
    assert stats["tumor_tta"] == "none"  # one tumor pass unless asked otherwise


def test_a_model_whose_output_overflows_fails_the_case_and_keeps_the_earlier_outputs(
    tmp_path, models, caplog
):
    """A liver model with finite weights 1e30 times too large (all-NaN logits) exited 0 with
    "no liver found: is this an abdominal CT…?", blaming the scan, and --overwrite replaced a
    good earlier result with it. Now the case fails naming the model's file; nothing is
    written."""
    import shutil

    from safetensors.torch import load_file

    from napari_livertumor.models import read_metadata, save_model

    bad = tmp_path / "overflowing"
    shutil.copytree(models, bad)
    sd = load_file(str(bad / "liver" / "model.safetensors"))
    sd = {k: v * 1e30 if v.is_floating_point() else v for k, v in sd.items()}
    save_model(bad / "liver", sd, read_metadata(bad / "liver"))  # (its sha1 matches)
    write_nifti(small_ct(), tmp_path / "p.nii.gz")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "p.nii.gz"), "-o", str(out), "--device", "cpu"]
    assert main([*args, "--models", str(models), "--no-refine"]) == 0
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    caplog.clear()
    assert main([*args, "--models", str(bad), "--no-refine", "--overwrite"]) == 1
    err = caplog.text
    assert str(bad / "liver" / "model.safetensors") in err
    assert "the liver model's output on this scan holds 100 % NaN or infinite values" in err
    assert "no liver found" not in err
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_a_tumor_covering_the_whole_liver_is_warned_of(tmp_path, caplog):
    """A tumor model that marked the whole liver as tumor (1385.5 mL, 100 % of the liver)
    exited 0 with no warning, in the stats or on the console."""
    from _widget_data import tiny_ct, tiny_models

    models = tiny_models(tmp_path / "models")  # the "tumor" is the whole "liver"
    write_nifti(tiny_ct()[0], tmp_path / "p.nii.gz")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "p.nii.gz"), "-o", str(out), "--device", "cpu"]
    assert main([*args, "--models", str(models), "--no-refine"]) == 0
    stats = json.loads((out / "p_stats.json").read_text())
    assert stats["tumor_to_liver_ratio"] == 1.0
    said = "the tumor found covers 100.0 % of the liver"
    assert any(w.startswith(said) for w in stats["warnings"])
    assert any(r.levelname == "WARNING" and said in r.getMessage() for r in caplog.records)


def test_the_cli_offers_exactly_the_pipelines_mirroring_modes():
    import argparse

    from napari_livertumor.cli import build_parser
    from napari_livertumor.pipeline import TTA_FLIPS, InferenceConfig

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("segment", "evaluate"):
        tta = next(a for a in sub.choices[command]._actions if a.dest == "tta")
        assert sorted(tta.choices) == sorted(TTA_FLIPS)
        assert tta.default == InferenceConfig().tta


def test_outputs_are_reused_only_for_the_same_input_and_settings_never_overwritten(
    tmp_path, models, capsys, caplog
):
    (tmp_path / "other").mkdir()
    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    write_nifti(small_ct(seed=5), tmp_path / "other" / "a.nii.gz")  # another scan, same name
    out = tmp_path / "out"
    base = ["-o", str(out), "--models", str(models), "--device", "cpu", "--no-refine"]
    assert main(["segment", str(tmp_path / "a.nii.gz"), *base]) == 0
    labels, stats = out / "a_labels.nii.gz", out / "a_stats.json"
    made = {p: p.stat().st_mtime_ns for p in (labels, stats)}
    recorded = json.loads(stats.read_text())["run_settings"]
    assert recorded["input"] == str((tmp_path / "a.nii.gz").resolve())
    assert recorded["stages"] == "both" and recorded["refine"] is False
    assert json.loads(stats.read_text())["model_members"] == {"liver": 1, "tumor": 1}

    assert main(["segment", str(tmp_path / "a.nii.gz"), *base]) == 0  # same: skipped
    capsys.readouterr()
    caplog.clear()
    assert main(["segment", str(tmp_path / "other" / "a.nii.gz"), *base]) == 1
    assert "another input" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in (labels, stats)} == made  # nothing overwritten

    # the same input with other settings: this case's own outputs, redone with a warning
    with caplog.at_level("WARNING"):
        assert main(["segment", str(tmp_path / "a.nii.gz"), *base, "--stages", "liver"]) == 0
    assert "redoing outputs made with other settings (--stages)" in caplog.text
    assert json.loads(stats.read_text())["run_settings"]["stages"] == "liver"
    assert main(["segment", str(tmp_path / "other" / "a.nii.gz"), *base, "--overwrite"]) == 0
    assert json.loads(stats.read_text())["run_settings"]["input"].endswith("other/a.nii.gz")

    # a labels file without its stats (another tool's, or a run stopped between the writes)
    stats.unlink()
    labels.write_bytes(b"someone else's mask")
    caplog.clear()
    assert main(["segment", str(tmp_path / "a.nii.gz"), *base]) == 1
    assert "a_labels.nii.gz exists without its stats file" in caplog.text
    assert labels.read_bytes() == b"someone else's mask"

    # a stats file without its labels (it was replaced without a word)
    labels.unlink()
    stats.write_text('{"foo": 1}')
    caplog.clear()
    assert main(["segment", str(tmp_path / "a.nii.gz"), *base]) == 1
    assert "a_stats.json exists without its labels file" in caplog.text
    assert stats.read_text() == '{"foo": 1}'

    # a folder where an output goes: said before the work, even with --overwrite (it failed
    # after segmenting, on a temporary file's name)
    stats.unlink()
    labels.mkdir()
    caplog.clear()
    assert main(["segment", str(tmp_path / "a.nii.gz"), *base, "--overwrite"]) == 1
    err = caplog.text
    assert "a_labels.nii.gz is a folder, not a file" in err and ".a_labels" not in err


def test_option_errors_name_the_option_and_come_before_the_inputs_are_read(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    for option, value in (("--threads", "-3"), ("--tumor-window-growth", "0.5"),
                          ("--window-growth", "0.5"), ("--min-tumor-ml", "-1")):  # fmt: skip
        assert main(["segment", str(tmp_path / "missing"), option, value]) == 1
        err = capsys.readouterr().err
        assert f"error: {option} must be" in err and "missing" not in err
    assert main(["segment", str(tmp_path / "missing"), "-o", str(tmp_path / "afile")]) == 1
    assert "afile: is a file: -o takes the folder" in capsys.readouterr().err


def test_out_of_range_options_are_refused_before_any_output_folder_is_made(tmp_path, capsys):
    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    out = tmp_path / "out"
    for option in (["--window-growth", "0"], ["--min-tumor-ml", "-5"], ["--threads", "-2"],
                   ["--min-lesion-peak", "nan"]):  # fmt: skip
        assert main(["segment", str(tmp_path / "a.nii.gz"), "-o", str(out), *option]) == 1
        err = capsys.readouterr().err
        assert "error:" in err and "Traceback" not in err
    assert not out.exists()
    (tmp_path / "afile").write_text("x")
    assert main(["segment", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / "afile")]) == 1
    assert "afile: is a file: -o takes the folder" in capsys.readouterr().err


def test_allow_non_ct_reaches_a_dicom_folder_of_another_modality(tmp_path, models, caplog):
    import pydicom

    for f in write_ct_series(small_ct(seed=4), tmp_path / "MR_01" / "mr"):
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.save_as(f)
    args = ["segment", str(tmp_path / "MR_01"), "-o", str(tmp_path / "out")]
    args += ["--models", str(models), "--device", "cpu", "--no-refine"]
    assert main(args) == 1
    assert "no readable CT image series" in caplog.text
    assert "only MR images" in caplog.text and "--allow-non-ct" in caplog.text  # the way out
    assert main([*args, "--allow-non-ct"]) == 0
    assert (tmp_path / "out" / "MR_01_labels.nii.gz").is_file()
    stats = json.loads((tmp_path / "out" / "MR_01_stats.json").read_text())
    assert any("modality is MR" in w for w in stats["warnings"])  # said beside its figures


def test_a_series_of_another_modality_converted_to_nifti_is_still_no_ct(
    tmp_path, models, caplog, capsys
):
    """`convert --series UID` (the refusal's own advice) wrote an MR series without a word, and
    segment then took the NIfTI for a CT: the non-CT refusal was lost on the way."""
    import pydicom

    from napari_livertumor.io.dicom import discover_series

    for f in write_ct_series(small_ct(seed=4), tmp_path / "MR_01" / "mr"):
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.save_as(f)
    [series] = discover_series(tmp_path / "MR_01")
    nii = tmp_path / "mr.nii.gz"
    assert main(["convert", str(tmp_path / "MR_01"), "--series", series.uid, "-o", str(nii)]) == 0
    assert "the series is MR, not CT" in capsys.readouterr().err
    args = ["segment", str(nii), "-o", str(tmp_path / "out"), "--models", str(models)]
    args += ["--device", "cpu", "--no-refine"]
    assert main(args) == 1
    assert "modality is MR, not CT" in caplog.text
    assert main([*args, "--allow-non-ct"]) == 0
    stats = json.loads((tmp_path / "out" / "mr_stats.json").read_text())
    assert any("modality is MR" in w for w in stats["warnings"])


def test_a_wrong_refine_value_is_refused_and_a_dicom_file_names_its_series(
    tmp_path, models, capsys
):
    """{"method": "snake"} only warned and ran with Chan-Vese; one DICOM file of a series gave
    outputs named 1-001.dcm_labels.nii.gz."""
    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    (tmp_path / "r.json").write_text('{"method": "snake"}')
    rc = main(["segment", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / "o"), "--models",
               str(models), "--device", "cpu", "--refine-config", str(tmp_path / "r.json")])  # fmt: skip
    assert rc == 1 and "method 'snake' unknown" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # out of range: clamped, a setting below its range meant another thing (max_shift_mm -1
    # became 0, no limit at all; iterations -5 refined nothing, said as refine=custom)
    for text, said in (
        ('{"max_shift_mm": -1}', "max_shift_mm -1 out of range [0"),
        ('{"iterations": -5}', "iterations -5 out of range [0"),
        ('{"hu_window": [0, 5]}', "hu_window [0, 5] narrower than 10 HU"),
        ('{"hu_window": [-2000, 200]}', "hu_window [-2000, 200] reaches outside [-1024, 3071] HU"),
    ):
        (tmp_path / "r.json").write_text(text)
        rc = main(["segment", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / "o"), "--models",
                   str(models), "--device", "cpu", "--refine-config", str(tmp_path / "r.json")])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 1 and said in err and "clamped" not in err and "using" not in err, err
        assert not (tmp_path / "o").exists()

    series = tmp_path / "HCC_001" / "103.000000-LIVER 3 PHASE AP"
    files = write_ct_series(small_ct(), series, patient_id="HCC_001")
    base = ["-o", str(tmp_path / "d"), "--models", str(models), "--device", "cpu", "--no-refine"]
    assert main(["segment", str(files[0]), *base]) == 0
    assert [p.name for p in sorted((tmp_path / "d").glob("*_labels.nii.gz"))] == [
        "103.000000-LIVER_3_PHASE_AP_labels.nii.gz"
    ]


def test_a_single_failed_case_is_told_once_a_batch_gathers_its_failures(tmp_path, capsys, caplog):
    """One case that failed printed its error twice: logged as it failed, then again in the
    recap meant for a batch whose failures scroll away under its progress."""
    (tmp_path / "bad.nii.gz").write_text("not a NIfTI file")
    (tmp_path / "worse.nii.gz").write_text("nor this")
    cli = ["segment", "--device", "cpu"]
    caplog.set_level("INFO")

    # in-process, the log (stderr from the command line) is in caplog, the recap on stderr
    assert main([*cli, str(tmp_path / "bad.nii.gz"), "-o", str(tmp_path / "out1")]) == 1
    said = caplog.text + capsys.readouterr().err
    assert said.count("not a NIfTI file: it is a text file") == 1, said

    caplog.clear()
    assert main([*cli, str(tmp_path), "-o", str(tmp_path / "out2")]) == 1
    assert "summary: " in caplog.text  # the recap below it, on stderr
    recap = capsys.readouterr().err
    assert "bad failed" in recap and "worse failed" in recap, recap


def test_acquisition_picks_a_stacked_phase_and_a_changed_pick_redoes_the_case(tmp_path, models):
    """One series holding two phases over the same stretch: ``--acquisition`` reads the one asked
    for (recorded in the stats), a missing number names the ones there, and running again with
    the default pick is a change of settings, not a complete case to skip."""
    arterial, venous = small_ct(seed=5), small_ct(seed=6)
    common = {"series_uid": "1.2.826.0.1.3680043.8.498.71", "patient_id": "P9"}
    folder = tmp_path / "P9"
    write_ct_series(arterial, folder, acquisition_number=1, **common,
                    file_names=[f"a{i}.dcm" for i in range(12)])  # fmt: skip
    write_ct_series(venous, folder, acquisition_number=2, instance_number_start=20, **common,
                    file_names=[f"v{i}.dcm" for i in range(12)])  # fmt: skip
    out = tmp_path / "out"
    base = ["segment", str(folder), "-o", str(out), "--models", str(models), "--no-refine"]
    assert main([*base, "--device", "cpu", "--acquisition", "1"]) == 0
    stats = json.loads((out / "P9_stats.json").read_text())
    assert stats["acquisition_number"] == 1 and stats["acquisition"] == "acq 1"
    assert stats["run_settings"]["acquisition"] == 1
    assert main([*base, "--device", "cpu"]) == 0  # the default (the later phase): redone
    stats = json.loads((out / "P9_stats.json").read_text())
    assert stats["acquisition_number"] == 2 and stats["acquisition"] == "acq 2"


def test_a_missing_acquisition_names_those_there(tmp_path, models, caplog):
    arterial, venous = small_ct(seed=5), small_ct(seed=6)
    common = {"series_uid": "1.2.826.0.1.3680043.8.498.72"}
    write_ct_series(arterial, tmp_path / "s", acquisition_number=1, **common,
                    file_names=[f"a{i}.dcm" for i in range(12)])  # fmt: skip
    write_ct_series(venous, tmp_path / "s", acquisition_number=2, instance_number_start=20,
                    **common, file_names=[f"v{i}.dcm" for i in range(12)])  # fmt: skip
    rc = main(["segment", str(tmp_path / "s"), "-o", str(tmp_path / "o"), "--models",
               str(models), "--device", "cpu", "--acquisition", "3"])  # fmt: skip
    assert rc == 1
    assert "has no acquisition number 3 (its stacked acquisitions: 1, 2)" in caplog.text


@pytest.mark.parametrize("command", ["segment", "convert"])
def test_acquisition_takes_a_number_or_a_pass_and_any_other_form_is_a_usage_error(command, capsys):
    """``--acquisition`` takes an AcquisitionNumber (3) or a pass's number ('pass 3', 'PASS3'
    as well): a pass taken as its bare number reads another acquisition where passes are
    numbered apart from their AcquisitionNumbers; other text is a usage error naming both."""
    from napari_livertumor.commands import acquisition_arg

    taken = [acquisition_arg(t) for t in ("3", " 12 ", "pass 3", "PASS3", "Pass  12", "acq None")]
    assert taken == [3, 12, "pass 3", "pass 3", "pass 12", "none"]
    with pytest.raises(SystemExit) as info:
        main([command, "x", "--acquisition", "third"])
    assert info.value.code == 2
    assert (
        "must be a number (3), a pass (pass 3), parts joined (1+2) or none (the slices with no "
        "AcquisitionNumber), got 'third'" in capsys.readouterr().err
    )


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="this machine has a GPU to run on"
)
def test_strict_device_stops_when_cuda_is_absent_and_writes_nothing(tmp_path, models, capsys):
    write_nifti(small_ct(), tmp_path / "P1" / "ct.nii.gz")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "P1" / "ct.nii.gz"), "-o", str(out), "--models", str(models)]
    assert main([*args, "--device", "cuda", "--strict-device"]) == 1
    assert "CUDA" in capsys.readouterr().err
    assert not out.exists()  # nothing written, not even the folder
    assert main([*args, "--device", "cuda", "--no-refine"]) == 0  # without it: the CPU
    assert json.loads((out / "P1_stats.json").read_text())["device"] == "cpu"
    # one GPU of several by number, as evaluate and train take it
    assert main([*args, "--device", "cuda:1", "--strict-device"]) == 1
    assert "CUDA" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["segment", "evaluate", "train"])
def test_a_device_name_that_is_none_is_a_usage_error_naming_those_taken(command, capsys):
    """segment took auto|cpu|cuda only (no cuda:N); evaluate and train took any text and failed
    later (train after reading the data), 'cuda1' with a torch traceback."""
    from napari_livertumor.devices import is_device_name

    args = {"segment": ["x.nii.gz"], "evaluate": ["--data", "d"],
            "train": ["--data", "d", "--out", "o"]}[command]  # fmt: skip
    with pytest.raises(SystemExit) as info:
        main([command, *args, "--device", "cuda1"])
    assert info.value.code == 2
    assert "'cuda1' is not a device: auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    assert [is_device_name(n) for n in ("auto", "cpu", "cuda", "cuda:0", "cuda:12")] == [True] * 5
    assert not any(is_device_name(n) for n in ("cuda:", "cuda:x", "gpu", "mps", "cuda:1 "))


def test_a_device_name_is_taken_in_any_case_and_with_spaces_around_it():
    """``--device CPU`` or `` cuda:1`` (a shell variable with a space) names a device as its
    lower-case, stripped form does: taken as that name, not refused as a usage error."""
    from napari_livertumor.devices import device_arg

    assert [device_arg(n) for n in ("CPU", " Auto ", "CUDA", "Cuda:1 ")] == [
        "cpu",
        "auto",
        "cuda",
        "cuda:1",
    ]


def test_a_refine_config_not_in_utf8_is_named_and_a_bom_is_read(tmp_path, models, capsys):
    write_nifti(small_ct(), tmp_path / "ct.nii.gz")
    bad = tmp_path / "rc.json"
    bad.write_bytes('{"smoothing": 2, "#": "Données"}'.encode("cp1252"))
    args = ["segment", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "o")]
    assert main([*args, "--models", str(models), "--refine-config", str(bad)]) == 1
    assert "rc.json: not a UTF-8 text file" in capsys.readouterr().err
    from napari_livertumor.refine import RefineConfig

    bad.write_bytes(b"\xef\xbb\xbf" + b'{"smoothing": 2}')  # as Notepad saves UTF-8
    assert RefineConfig.load(bad).smoothing == 2
    bad.write_bytes('{"smoothing": 3}'.encode("utf-16"))  # as PowerShell 5's '>' saves
    assert RefineConfig.load(bad).smoothing == 3


def _fake_masks(monkeypatch):
    """The pipeline's masks replaced by a known liver with a tumor in it (the untrained test
    models find nothing to draw)."""
    from napari_livertumor import pipeline
    from napari_livertumor.stats import compute_stats

    def segment(self, volume, progress=None, **kw):
        labels = np.zeros(volume.shape, np.uint8)
        labels[3:9, 8:30, 10:36] = 1
        labels[5:7, 14:20, 18:24] = 2
        stats = compute_stats(labels, volume.spacing)
        return pipeline.SegmentationResult(labels, stats, {"liver": 0.1, "total": 0.1}, "cpu")

    monkeypatch.setattr(pipeline.Segmenter, "segment", segment)


def test_dicom_seg_and_preview_are_written_with_the_masks_and_added_later_without_a_rerun(
    tmp_path, models, monkeypatch, caplog, capsys
):
    from napari_livertumor.io.seg import read_dicom_seg

    _fake_masks(monkeypatch)
    vol = small_ct(seed=3)
    write_ct_series(vol, tmp_path / "HCC_042" / "ct", patient_id="HCC_042")
    out = tmp_path / "out"
    base = ["segment", str(tmp_path / "HCC_042"), "-o", str(out), "--models", str(models),
            "--device", "cpu", "--no-refine"]  # fmt: skip
    assert main([*base, "--dicom-seg", "--preview"]) == 0
    seg, png, stats_path = (out / f"HCC_042_{n}" for n in ("seg.dcm", "preview.png", "stats.json"))
    stats = json.loads(stats_path.read_text())
    assert stats["outputs"] == {"dicom_seg": seg.name, "preview": png.name}
    ct = load_ct(tmp_path / "HCC_042")
    labels = np.asarray(nib.load(out / "HCC_042_labels.nii.gz").dataobj).transpose(2, 1, 0)
    back = read_dicom_seg(seg, ct)  # the SEG holds the same masks, on the series' slices
    np.testing.assert_array_equal(back, labels)
    assert (labels == 2).sum() == 72 and (labels == 1).sum() == 6 * 22 * 26 - 72
    from PIL import Image

    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 2 * image.height
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    reddish = (pixels[:, 0] > 200) & (pixels[:, 1] < 120)  # the tumor's outline was drawn
    greenish = (pixels[:, 1] > 180) & (pixels[:, 0] < 120)  # and the liver's
    assert reddish.sum() > 20 and greenish.sum() > 20

    # a run without them first, then one asking for the preview: added from the labels file
    out2 = tmp_path / "out2"
    base2 = [*base[:3], str(out2), *base[4:]]
    assert main(base2) == 0
    labels_made = (out2 / "HCC_042_labels.nii.gz").stat().st_mtime_ns
    monkeypatch.setattr(
        "napari_livertumor.pipeline.Segmenter.segment",
        lambda *a, **k: pytest.fail("segmented again to add a preview"),
    )
    with caplog.at_level("INFO"):
        assert main([*base2, "--preview"]) == 0
    assert "added HCC_042_preview.png" in caplog.text
    # its printed figures are the earlier run's, and say so
    assert "(already complete; added HCC_042_preview.png) ->" in capsys.readouterr().out
    assert (out2 / "HCC_042_preview.png").is_file()
    assert (out2 / "HCC_042_labels.nii.gz").stat().st_mtime_ns == labels_made
    assert json.loads((out2 / "HCC_042_stats.json").read_text())["outputs"] == {
        "preview": "HCC_042_preview.png"
    }
    assert main([*base2, "--preview"]) == 0  # complete now: skipped


def test_the_lesion_map_marks_each_lesion_with_its_number_in_the_stats(
    tmp_path, models, monkeypatch, caplog
):
    """A user could not find lesion 3 of the stats in any file: the labels hold 1 and 2."""
    from napari_livertumor import pipeline
    from napari_livertumor.stats import compute_stats

    liver_only = {"on": False}

    def segment(self, volume, progress=None, **kw):
        labels = np.zeros(volume.shape, np.uint8)
        labels[1:11, 4:36, 4:44] = 1
        labels[2:5, 6:10, 6:10] = labels[6:9, 6:10, 30:34] = 2  # two of one size
        labels[4:10, 20:30, 14:24] = 2  # the largest
        labels[9, 33, 40] = 2
        stats = compute_stats(labels, volume.spacing, affine_lps=volume.affine_lps)
        if liver_only["on"]:
            labels[labels == 2] = 1
            stats.update(tumor_ml=None, lesion_count=None, lesions=[])
        return pipeline.SegmentationResult(labels, stats, {"liver": 0.1, "total": 0.1}, "cpu")

    monkeypatch.setattr(pipeline.Segmenter, "segment", segment)
    (tmp_path / "in").mkdir()
    write_nifti(small_ct(seed=1), tmp_path / "in" / "A.nii.gz")
    write_nifti(small_ct(seed=2), tmp_path / "in" / "B.nii.gz")
    out = tmp_path / "out"
    base = ["segment", str(tmp_path / "in"), "-o", str(out), "--models", str(models),
            "--device", "cpu", "--no-refine"]  # fmt: skip
    assert main([*base, "--lesion-map"]) == 0
    ct = nib.load(tmp_path / "in" / "A.nii.gz")
    img = nib.load(out / "A_lesions.nii.gz")
    np.testing.assert_allclose(img.affine, ct.affine, atol=1e-3)
    ids = np.asarray(img.dataobj).transpose(2, 1, 0)
    labels = np.asarray(nib.load(out / "A_labels.nii.gz").dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(ids > 0, labels == 2)
    stats = json.loads((out / "A_stats.json").read_text())
    assert stats["outputs"] == {"lesion_map": "A_lesions.nii.gz"}
    assert int(ids.max()) == stats["lesion_count"] == 4
    for les in stats["lesions"]:  # the file's lesion N is the stats' lesion N
        where = np.argwhere(ids == les["id"])
        assert len(where) * 2.5 * 0.8 * 0.7 / 1000 == pytest.approx(les["volume_ml"], abs=1e-4)
        np.testing.assert_allclose(where.mean(axis=0), les["centroid_zyx"], atol=0.01)
    rows = _summary(out)
    assert [r["lesion_map"] for r in rows] == ["A_lesions.nii.gz", "B_lesions.nii.gz"]
    # written into the input folder, the map is no case of the next run (it was segmented)
    inside = ["segment", str(tmp_path / "in"), "-o", str(tmp_path / "in"), *base[4:]]
    assert main([*inside, "--lesion-map"]) == 0
    assert (tmp_path / "in" / "A_lesions.nii.gz").is_file()
    assert [c.name for c in discover_cases([tmp_path / "in"])] == ["A", "B"]

    # no tumor looked for: no map, said, and the masks and stats written all the same
    liver_only["on"] = True
    caplog.clear()
    assert main([*base, "--lesion-map", "--stages", "liver"]) == 0
    stats = json.loads((out / "A_stats.json").read_text())
    assert stats["outputs"] == {"lesion_map": None} and not (out / "A_lesions.nii.gz").exists()
    assert any(
        w.startswith("no A_lesions.nii.gz: no tumor was looked for") for w in stats["warnings"]
    )
    assert "A: no A_lesions.nii.gz: no tumor was looked for" in caplog.text


def test_a_batch_stops_at_a_full_disk_and_lists_the_cases_not_attempted(
    tmp_path, models, monkeypatch, caplog
):
    """Every case after the disk filled up was segmented and then failed to be written: hours
    of a cohort's inference for nothing."""
    import errno

    from napari_livertumor import pipeline
    from napari_livertumor.io import nifti

    _fake_masks(monkeypatch)
    segmented = []
    real = pipeline.Segmenter.segment
    monkeypatch.setattr(
        pipeline.Segmenter,
        "segment",
        lambda self, vol, **kw: segmented.append(1) or real(self, vol, **kw),
    )

    def full(array, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(nifti, "write_nifti", full)
    (tmp_path / "in").mkdir()
    for name in ("A", "B", "C"):
        write_nifti(small_ct(seed=1), tmp_path / "in" / f"{name}.nii.gz")
    out = tmp_path / "out"
    base = ["segment", str(tmp_path / "in"), "-o", str(out), "--models", str(models),
            "--device", "cpu", "--no-refine"]  # fmt: skip
    assert main(base) == 1
    assert len(segmented) == 1  # the first case only
    assert "stopped: no room to write in" in caplog.text
    assert "2 case(s) not attempted" in caplog.text
    rows = _summary(out)
    assert [r["case"] for r in rows] == ["A", "B", "C"]
    assert "No space left on device" in rows[0]["error"]
    assert [r["error"] for r in rows[1:]] == ["not attempted: the output disk was full"] * 2
    # room again: the same command does them all
    monkeypatch.undo()
    _fake_masks(monkeypatch)
    assert main(base) == 0
    assert {r["status"] for r in _summary(out)} == {"done"}


def test_outputs_added_later_to_a_patient_of_a_shared_folder_are_of_that_patient(
    tmp_path, models, monkeypatch
):
    """A DICOM SEG added to a finished case of a folder holding two patients read the CT
    without the case's patient: B's masks went out referencing A's series, with A's
    PatientID."""
    import pydicom

    _fake_masks(monkeypatch)
    export = tmp_path / "export"
    write_ct_series(small_ct(seed=3), export, patient_id="AAA", file_names=None)
    for f in write_ct_series(small_ct(seed=4), tmp_path / "b", patient_id="BBB"):
        f.rename(export / f"b_{f.name}")
    out = tmp_path / "out"
    base = ["segment", str(export), "-o", str(out), "--models", str(models), "--device", "cpu",
            "--no-refine"]  # fmt: skip
    assert main(base) == 0
    names = sorted(p.name[: -len("_stats.json")] for p in out.glob("*_stats.json"))
    assert len(names) == 2
    assert main([*base, "--dicom-seg"]) == 0
    for name in names:
        stats = json.loads((out / f"{name}_stats.json").read_text())
        seg = pydicom.dcmread(out / f"{name}_seg.dcm")
        refs = {s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence}
        assert refs == {stats["series_uid"]}
        assert seg.PatientID == stats["run_settings"]["patient"]


def test_series_options_change_nothing_for_a_nifti_case(tmp_path, models, monkeypatch, caplog):
    """--series / --acquisition are DICOM choices: a NIfTI case run with them was redone
    ("other settings") when run without."""
    _fake_masks(monkeypatch)
    write_nifti(small_ct(seed=5), tmp_path / "P2.nii.gz")
    base = ["segment", str(tmp_path / "P2.nii.gz"), "-o", str(tmp_path / "out"), "--models",
            str(models), "--device", "cpu", "--no-refine"]  # fmt: skip
    assert main([*base, "--series", "1.2.3", "--acquisition", "7"]) == 0
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(base) == 0
    assert "P2: already complete, skipped" in caplog.text and "redoing" not in caplog.text


def test_extra_outputs_are_never_written_over_another_file_and_stale_ones_go(
    tmp_path, models, monkeypatch, caplog
):
    _fake_masks(monkeypatch)
    write_ct_series(small_ct(seed=4), tmp_path / "P1" / "ct", patient_id="P1")
    write_nifti(small_ct(seed=5), tmp_path / "P2.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "P1_seg.dcm").write_bytes(b"a radiologist's own SEG")
    base = ["segment", str(tmp_path / "P1"), "-o", str(out), "--models", str(models),
            "--device", "cpu", "--no-refine"]  # fmt: skip
    caplog.clear()
    assert main([*base, "--dicom-seg"]) == 1
    assert "P1_seg.dcm exists and is not an output of this case's last run" in caplog.text
    assert (out / "P1_seg.dcm").read_bytes() == b"a radiologist's own SEG"
    assert not (out / "P1_labels.nii.gz").exists()
    (out / "P1_seg.dcm").unlink()

    assert main([*base, "--dicom-seg", "--preview"]) == 0
    # other settings without them: the masks are redone, and the files showing the old ones go
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main([*base, "--stages", "liver", "--preview"]) == 0
    assert "removed P1_seg.dcm (made from the earlier masks" in caplog.text
    # a warning: -q (a quiet batch) says it too (it went without a word on screen)
    (gone,) = [r for r in caplog.records if "removed P1_seg.dcm" in r.getMessage()]
    assert gone.levelname == "WARNING"
    assert not (out / "P1_seg.dcm").exists() and (out / "P1_preview.png").is_file()
    outputs = json.loads((out / "P1_stats.json").read_text())["outputs"]
    assert outputs == {"preview": "P1_preview.png"}
    # (refinement is on by default, but a liver-only run refines nothing)
    assert json.loads((out / "P1_stats.json").read_text())["refine"] is False

    # a NIfTI input has no DICOM slices to refer to: said, and its other outputs written
    caplog.clear()
    nifti = ["segment", str(tmp_path / "P2.nii.gz"), *base[2:]]
    assert main([*nifti, "--dicom-seg", "--preview"]) == 0
    assert "P2: no DICOM SEG: the input is a NIfTI file" in caplog.text
    assert (out / "P2_preview.png").is_file() and not (out / "P2_seg.dcm").exists()
    # ... in its stats too, for someone who reads only those
    stats = json.loads((out / "P2_stats.json").read_text())
    assert stats["outputs"] == {"preview": "P2_preview.png", "dicom_seg": None}
    assert any(w.startswith("no P2_seg.dcm: the input is a NIfTI file") for w in stats["warnings"])
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main([*nifti, "--dicom-seg", "--preview"]) == 0  # nothing to add: skipped
    assert "P2: already complete, skipped" in caplog.text


def test_extras_that_cannot_be_made_never_cost_the_case_and_deleted_ones_come_back(
    tmp_path, models, monkeypatch, caplog
):
    """No liver: --dicom-seg failed the whole case (no labels, no stats). A preview deleted
    after the run was never made again. A foreign file was replaced when extras were added to
    a complete case. An output folder inside the input was taken for a patient."""
    from napari_livertumor import pipeline
    from napari_livertumor.stats import compute_stats

    def nothing(self, volume, progress=None, **kw):
        labels = np.zeros(volume.shape, np.uint8)
        return pipeline.SegmentationResult(
            labels, compute_stats(labels, volume.spacing), {"total": 0.1}, "cpu"
        )

    monkeypatch.setattr(pipeline.Segmenter, "segment", nothing)
    root = tmp_path / "patients"
    write_ct_series(small_ct(seed=4), root / "P1" / "ct", patient_id="P1")
    write_ct_series(small_ct(seed=6), root / "P2" / "ct", patient_id="P2")
    out = root / "results"  # inside the input: its SEG files must not make it a patient
    base = ["segment", str(root), "-o", str(out), "--models", str(models), "--device", "cpu",
            "--no-refine"]  # fmt: skip
    assert main([*base, "--dicom-seg", "--preview"]) == 0
    stats = json.loads((out / "P1_stats.json").read_text())
    assert stats["outputs"] == {"dicom_seg": None, "preview": "P1_preview.png"}
    assert any(w.startswith("no P1_seg.dcm: nothing was segmented") for w in stats["warnings"])
    assert (out / "P1_labels.nii.gz").is_file() and not (out / "P1_seg.dcm").exists()

    _fake_masks(monkeypatch)  # masks now, and a SEG, after a change of settings
    assert main([*base, "--dicom-seg", "--preview", "--min-tumor-ml", "0.2"]) == 0
    assert (out / "P1_seg.dcm").is_file()
    # the output folder inside the input was skipped, not a failed 'results' patient
    assert sorted(r["case"] for r in _summary(out)) == ["P1", "P2"]

    (out / "P1_preview.png").unlink()  # deleted by hand: made again, without segmenting
    # P2 as if made without --preview, and another program's picture of that name beside it
    from napari_livertumor.commands.segment import _stats_digest

    p2 = json.loads((out / "P2_stats.json").read_text())
    del p2["outputs"]["preview"]
    p2["stats_digest"] = _stats_digest(p2)  # as a run without --preview wrote it
    (out / "P2_stats.json").write_text(json.dumps(p2))
    (out / "P2_preview.png").write_bytes(b"someone's picture")
    monkeypatch.setattr(
        pipeline.Segmenter, "segment", lambda *a, **k: pytest.fail("segmented again")
    )
    caplog.clear()
    with caplog.at_level("INFO"):
        rc = main([*base, "--dicom-seg", "--preview", "--min-tumor-ml", "0.2"])
    assert rc == 1
    assert (out / "P1_preview.png").is_file() and "P1: added P1_preview.png" in caplog.text
    assert (out / "P2_preview.png").read_bytes() == b"someone's picture"
    assert "P2_preview.png exists and is not an output of this case's last run" in caplog.text
    # its own labels and stats are whole there: the summary keeps their row, said refused
    # (it read "failed" with every figure blank)
    (p2_row,) = [r for r in _summary(out) if r["case"] == "P2"]
    assert p2_row["status"] == "refused (earlier outputs kept)"
    assert p2_row["labels"] == "P2_labels.nii.gz" and p2_row["liver_ml"] != ""


def _one_dicom_patient(tmp_path, models):
    """A DICOM patient P1, and the output folder and command line that segment it."""
    write_ct_series(small_ct(seed=4), tmp_path / "P1" / "ct", patient_id="P1")
    out = tmp_path / "out"
    base = ["segment", str(tmp_path / "P1"), "-o", str(out), "--models", str(models),
            "--device", "cpu", "--no-refine"]  # fmt: skip
    return out, base


def _summary(out):
    import csv

    with open(out / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_outputs_written_into_a_patients_folder_neither_hide_it_nor_become_its_ground_truth(
    tmp_path, models, monkeypatch
):
    """A patient segmented into its own folder (-o .) was then skipped as 'an output folder'
    (its neighbour and it read as one mixed case), and its DICOM SEG was taken for a ground
    truth (it chose the series, and convert wrote the model's masks as labels)."""
    from napari_livertumor.commands.segment import discover_cases
    from napari_livertumor.io.dicom import read_dicom_series

    _fake_masks(monkeypatch)
    root = tmp_path / "patients"
    write_ct_series(small_ct(seed=4), root / "P1" / "ct", patient_id="P1")
    write_ct_series(small_ct(seed=6), root / "P2", patient_id="P2")
    base = ["--models", str(models), "--device", "cpu", "--no-refine", "--dicom-seg"]
    assert main(["segment", str(root / "P2"), "-o", str(root / "P2"), *base]) == 0
    assert (root / "P2" / "P2_seg.dcm").is_file()
    assert [c.name for c in discover_cases([root])] == ["P1", "P2"]
    assert read_dicom_series(root / "P2").meta["seg_files"] == []
    assert main(["convert", str(root), "-o", str(tmp_path / "ds")]) == 0
    assert (tmp_path / "ds" / "imagesTs" / "P2.nii.gz").is_file()
    assert not (tmp_path / "ds" / "labelsTr").exists()


def test_an_output_folder_with_exported_masks_or_a_stopped_runs_file_is_no_patient(tmp_path):
    from napari_livertumor.commands.segment import discover_cases

    root = tmp_path / "patients"
    write_ct_series(small_ct(seed=4), root / "P1" / "ct", patient_id="P1")
    write_ct_series(small_ct(seed=6), root / "P2" / "ct", patient_id="P2")
    out = root / "out"
    out.mkdir()
    (out / "P1_stats.json").write_text("{}")
    for name in ("P1_labels.nii.gz", "P1_liver.nii.gz", "P1_tumor.nii.gz",
                 ".P2_labels.nii.gz.new.nii.gz"):  # fmt: skip
        write_nifti(small_ct(), out / name)
    assert [c.name for c in discover_cases([root])] == ["P1", "P2"]


def test_labels_edited_since_the_run_are_never_replaced_nor_sent_as_the_models(
    tmp_path, models, monkeypatch, caplog, capsys
):
    """A labels file corrected by hand was replaced by a rerun with other settings (one
    warning: "redoing outputs made with other settings"), and a DICOM SEG added later was made
    from the corrections but marked as the model's unedited output, beside stats of the
    model's masks."""
    _fake_masks(monkeypatch)
    out, base = _one_dicom_patient(tmp_path, models)
    assert main(base) == 0
    labels = out / "P1_labels.nii.gz"
    stats = json.loads((out / "P1_stats.json").read_text())
    assert list(stats["digests"]) == ["P1_labels.nii.gz"]
    img = nib.load(labels)
    fixed = np.asarray(img.dataobj).copy()
    fixed[fixed == 2] = 1  # the reader saw no tumor
    nib.save(nib.Nifti1Image(fixed, img.affine, img.header), labels)
    edited = labels.read_bytes()
    caplog.clear()
    assert main([*base, "--dicom-seg"]) == 1
    assert "was changed after this command wrote it" in caplog.text
    assert "nothing was added from it" in caplog.text
    assert not (out / "P1_seg.dcm").exists()
    caplog.clear()
    assert main([*base[:-1], "--stages", "liver"]) == 1  # other settings
    assert "would replace it; nothing was overwritten" in caplog.text
    assert labels.read_bytes() == edited
    caplog.clear()
    capsys.readouterr()
    with caplog.at_level("INFO"):
        assert main(base) == 0  # the same settings: complete, kept, its figures printed
    assert "P1_labels.nii.gz edited since: kept" in caplog.text
    assert "labels file was edited since: these are the model's) ->" in capsys.readouterr().out
    assert labels.read_bytes() == edited
    # --overwrite segments again, and a DICOM SEG of the model's masks may then be added
    assert main([*base, "--overwrite"]) == 0
    assert labels.read_bytes() != edited
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main([*base, "--dicom-seg"]) == 0
    assert "added P1_seg.dcm" in caplog.text
    digests = json.loads((out / "P1_stats.json").read_text())["digests"]
    assert sorted(digests) == ["P1_labels.nii.gz", "P1_seg.dcm"]


def _outputs_without_digests(tmp_path, models, monkeypatch, *, labels_after: float):
    """One patient segmented, its outputs made as a version before 2 Dec 2026 left them (no
    digests in the stats), stats an hour old and the labels ``labels_after`` seconds newer."""
    import os

    _fake_masks(monkeypatch)
    out, base = _one_dicom_patient(tmp_path, models)
    assert main(base) == 0
    labels, stats_path = out / "P1_labels.nii.gz", out / "P1_stats.json"
    stats = json.loads(stats_path.read_text())
    for key in ("digests", "stats_digest"):  # as that version wrote them
        stats.pop(key)
    stats_path.write_text(json.dumps(stats))
    written = stats_path.stat().st_mtime - 3600
    os.utime(stats_path, (written, written))
    os.utime(labels, (written + labels_after, written + labels_after))
    return out, base, labels, stats_path


def test_labels_edited_in_outputs_of_a_version_without_digests_are_not_replaced(
    tmp_path, models, monkeypatch, caplog, capsys
):
    """QA compat59: outputs of a version that recorded no digests (before 2 Dec 2026), their
    labels corrected by hand, were replaced by the first run after an upgrade (the shipped
    models had changed: "redoing outputs made with other settings"), with no copy kept. Such
    a labels file newer than its stats (the run wrote the stats after it) is taken as edited;
    one as old as its stats is redone as before."""
    import os

    out, base, labels, stats_path = _outputs_without_digests(
        tmp_path, models, monkeypatch, labels_after=-1
    )  # (labels first, then stats)
    img = nib.load(labels)
    fixed = np.asarray(img.dataobj).copy()
    fixed[fixed == 2] = 1  # the reader saw no tumor
    nib.save(nib.Nifti1Image(fixed, img.affine, img.header), labels)  # (saved now)
    edited = labels.read_bytes()
    caplog.clear()
    capsys.readouterr()
    assert main([*base[:-1], "--stages", "liver", "--list"]) == 0  # said alike by --list
    assert "refuse: P1_labels.nii.gz newer than its stats, so maybe edited since, as file" in (
        capsys.readouterr().out
    )
    assert main([*base[:-1], "--stages", "liver"]) == 1  # other settings
    assert "is newer than its stats (edited since?" in caplog.text  # (how it was told)
    assert "would replace it; nothing was overwritten" in caplog.text
    assert labels.read_bytes() == edited
    # not edited (as old as its stats): redone with the other settings, as before
    written = stats_path.stat().st_mtime
    os.utime(labels, (written - 1, written - 1))
    assert main([*base[:-1], "--stages", "liver"]) == 0
    assert labels.read_bytes() != edited


def test_labels_a_moment_newer_than_their_stats_are_not_taken_as_edited(
    tmp_path, models, monkeypatch
):
    """Outputs of a version that recorded no digests, copied to another disk (cp -r without
    -p stamps each file as it copies it, the stats here half a second before the labels):
    the labels, half a second newer than their stats, were refused as "newer than its stats
    (edited since?)" and the case was never redone with other settings. Only labels newer
    by more than the moment a run or a copy takes are taken as edited."""

    out, base, labels, stats_path = _outputs_without_digests(
        tmp_path, models, monkeypatch, labels_after=0.5
    )
    assert main([*base[:-1], "--stages", "liver"]) == 0  # other settings: redone, not refused
    redone = json.loads(stats_path.read_text())
    assert redone["run_settings"]["stages"] == "liver" and "digests" in redone


def test_labels_newer_than_their_stats_are_said_as_maybe_edited_by_list_and_a_skip(
    tmp_path, models, monkeypatch, caplog, capsys
):
    """QA adv60: outputs of a version that kept no digests, the labels 3 s newer than their
    stats (as a slow copy can leave them): a rerun with other settings asked "edited since?",
    told by the files' times, but --list with the same settings, and the run that skipped the
    case, said "labels edited since" as a fact."""

    out, base, labels, stats_path = _outputs_without_digests(
        tmp_path, models, monkeypatch, labels_after=3
    )  # (touched, or copied after its stats)
    asked = "newer than its stats, so maybe edited since, as file times tell"
    capsys.readouterr()
    assert main([*base, "--list"]) == 0
    plan = capsys.readouterr().out.splitlines()[0].split("\t")[2]
    assert plan == f"skip: complete (labels {asked}: figures are the model's)"
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(base) == 0  # skipped, its labels kept: said alike
    assert f"already complete, skipped (P1_labels.nii.gz {asked}: kept)" in caplog.text
    assert f"(already complete; the labels file {asked}: these are the model's) ->" in (
        capsys.readouterr().out
    )
    assert main([*base[:-1], "--stages", "liver", "--list"]) == 0  # (the refusal, as before)
    assert f"refuse: P1_labels.nii.gz {asked}; a run with other settings" in (
        capsys.readouterr().out
    )


def test_stats_edited_since_the_run_are_never_shown_as_the_models_nor_replaced(
    tmp_path, models, monkeypatch, caplog, capsys
):
    """A stats file whose figures were edited by hand was printed as the model's by a rerun
    with the same settings, and replaced without a word by one with other settings."""
    _fake_masks(monkeypatch)
    out, base = _one_dicom_patient(tmp_path, models)
    assert main(base) == 0
    path = out / "P1_stats.json"
    assert main(base) == 0  # untouched: complete, skipped
    stats = json.loads(path.read_text())
    stats["liver_ml"] = 999.0
    path.write_text(json.dumps(stats, indent=2))
    edited = path.read_bytes()
    for argv in (base, [*base[:-1], "--stages", "liver"]):  # the same and other settings
        caplog.clear()
        assert main(argv) == 1
        assert "P1_stats.json: its contents differ from what this command wrote" in caplog.text
        assert "999.0" not in capsys.readouterr().out
        assert path.read_bytes() == edited
    assert main([*base, "--overwrite"]) == 0
    assert json.loads(path.read_text())["liver_ml"] != 999.0


def test_a_run_killed_while_putting_its_files_in_place_is_finished_by_the_next(
    tmp_path, models, monkeypatch, caplog
):
    """Killed after its labels (or a preview) were in place and before its stats: every later
    run refused the case for files "not an output of this case's last run"."""
    from napari_livertumor.fileio import temp_prefix

    _fake_masks(monkeypatch)
    out, base = _one_dicom_patient(tmp_path, models)
    assert main(base) == 0
    stats = out / "P1_stats.json"
    # the state a kill -9 leaves between the labels' rename and the stats': the stats written
    # aside, the old ones removed, the new labels in place
    (out / f"{temp_prefix(stats)}new.json").write_bytes(stats.read_bytes())
    stats.unlink()
    caplog.clear()
    assert main(base) == 0
    assert "a run was stopped while it put P1_labels.nii.gz in place" in caplog.text
    assert json.loads(stats.read_text())["complete"]
    assert not list(out.glob(".P1_*"))  # its temporary files gone too
    # a labels file that is not the one the stats aside recorded stays refused
    (out / f"{temp_prefix(stats)}new.json").write_bytes(stats.read_bytes())
    stats.unlink()
    img = nib.load(out / "P1_labels.nii.gz")
    edited = np.asarray(img.dataobj).copy()
    edited[edited == 2] = 1
    nib.save(nib.Nifti1Image(edited, img.affine, img.header), out / "P1_labels.nii.gz")
    assert main(base) == 1
    assert (out / "P1_labels.nii.gz").is_file()  # kept: not what the stats aside recorded


@pytest.mark.parametrize("renamed", [0, 1, 2])
def test_outputs_added_to_a_complete_case_by_a_run_killed_before_its_stats_are_finished(
    tmp_path, models, monkeypatch, caplog, capsys, renamed
):
    """kill -9 while --dicom-seg (here with --lesion-map) was added to a complete folder, after
    the SEG was renamed into place and before the stats: every later run refused the case for
    good ("P1_seg.dcm exists and is not an output of this case's last run"), its summary row
    failed with every figure blank, its stats left aside. Those stats record the files added:
    the next run puts them in place, as the killed run would have (``renamed``: how many of
    its files it had put in place)."""
    import shutil

    from _killed import Killed

    from napari_livertumor import pipeline
    from napari_livertumor.commands import segment as seg

    _fake_masks(monkeypatch)
    for k, pid in enumerate(("P1", "P2")):
        write_ct_series(small_ct(seed=4 + k), tmp_path / "in" / pid / "ct", patient_id=pid)
    out = tmp_path / "out"
    base = ["segment", str(tmp_path / "in"), "-o", str(out), "--models", str(models),
            "--device", "cpu", "--no-refine", "--preview"]  # fmt: skip
    assert main(base) == 0
    add = [*base, "--dicom-seg", "--lesion-map"]
    real, done, aside = seg.publish, [], tmp_path / "aside"

    def killed(tmp, path):  # kill -9 there: what was written aside stays (no clean-up runs)
        if len(done) == renamed:
            aside.mkdir()
            for p in out.glob(".P1_*"):
                shutil.copy2(p, aside / p.name)
            raise Killed
        done.append(path)
        return real(tmp, path)

    monkeypatch.setattr(seg, "publish", killed)
    with pytest.raises(Killed):
        main(add)
    monkeypatch.setattr(seg, "publish", real)
    for p in aside.iterdir():
        shutil.copy2(p, out / p.name)
    assert (out / ".P1_stats.json.new.json").is_file()
    assert "P1_seg.dcm" not in json.loads((out / "P1_stats.json").read_text())["outputs"]
    capsys.readouterr()
    assert main([*add, "--list"]) == 0  # said as the run does it (nothing changed)
    plan = capsys.readouterr().out.splitlines()[0].split("\t")[-1]
    assert (
        plan == "skip: complete (a stopped run's P1_seg.dcm, P1_lesions.nii.gz put in place first)"
    )
    assert (out / ".P1_stats.json.new.json").is_file()
    monkeypatch.setattr(pipeline.Segmenter, "segment", lambda *a, **k: pytest.fail("segmented"))
    real_add = seg.add_extras

    def add_extras(case, *args, **kwargs):  # (P2's are added: the kill came before)
        assert case.name != "P1", "added again"
        return real_add(case, *args, **kwargs)

    monkeypatch.setattr(seg, "add_extras", add_extras)
    caplog.clear()
    assert main(add) == 0
    assert (
        "P1: a run was stopped while it put P1_seg.dcm, P1_lesions.nii.gz in place (its stats "
        "were not yet): finished, its stats now list them"
    ) in caplog.text
    stats = json.loads((out / "P1_stats.json").read_text())
    assert stats["outputs"] == {"dicom_seg": "P1_seg.dcm", "preview": "P1_preview.png",
                                "lesion_map": "P1_lesions.nii.gz"}  # fmt: skip
    assert sorted(stats["digests"]) == [
        "P1_labels.nii.gz", "P1_lesions.nii.gz", "P1_preview.png", "P1_seg.dcm"
    ]  # fmt: skip
    assert not list(out.glob(".P1_*"))
    row = next(r for r in _summary(out) if r["case"] == "P1")
    assert row["status"] == "skipped (complete)" and float(row["liver_ml"]) > 0
    assert row["dicom_seg"] == "P1_seg.dcm"
    assert main(add) == 0  # (complete: as it is)


def test_outputs_a_killed_run_added_to_since_edited_labels_go_and_the_case_is_refused(
    tmp_path, models, monkeypatch, caplog
):
    """The stats aside of a run killed while it added a SEG cannot be finished when the labels
    were edited since: the SEG it put in place (of the unedited masks) goes with them, and the
    case is refused for its edited labels, not for a file of no run."""
    from napari_livertumor.fileio import temp_prefix

    _fake_masks(monkeypatch)
    out, base = _one_dicom_patient(tmp_path, models)
    assert main(base) == 0
    stats = out / "P1_stats.json"
    before = stats.read_bytes()
    assert main([*base, "--dicom-seg"]) == 0
    # the state a kill -9 leaves: the SEG in place, the stats listing it aside, the old ones
    (out / f"{temp_prefix(stats)}new.json").write_bytes(stats.read_bytes())
    stats.write_bytes(before)
    img = nib.load(out / "P1_labels.nii.gz")
    edited = np.asarray(img.dataobj).copy()
    edited[edited == 2] = 1
    nib.save(nib.Nifti1Image(edited, img.affine, img.header), out / "P1_labels.nii.gz")
    caplog.clear()
    assert main([*base, "--dicom-seg"]) == 1
    assert "a run was stopped while it put P1_seg.dcm in place" in caplog.text
    assert "nothing was added from it" in caplog.text and "not an output of" not in caplog.text
    assert not (out / "P1_seg.dcm").exists() and not list(out.glob(".P1_*"))
    assert stats.read_bytes() == before


def test_discovery_reads_no_header_of_a_deflated_file_inflating_past_the_cap(tmp_path, monkeypatch):
    """A deflated DICOM file inflating to gigabytes (3.4 MB held 7 GB) was refused unread by the
    reader, but segment's discovery of the cases read its header first, with pydicom, which
    inflates it whole even for one tag: refused unread there too, taken for an unreadable file
    as there."""
    import pydicom
    import pydicom.filereader
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    from napari_livertumor.commands import segment as seg
    from napari_livertumor.io import dicom

    write_ct_series(small_ct(seed=4), tmp_path / "P1" / "ct", patient_id="P1")
    # (a cap of 2 MiB here, for a bomb of 16 MiB quick to make: the same test as at 1 GiB)
    monkeypatch.setattr(dicom, "MAX_INFLATED", 2 << 20)
    bomb = pydicom.dcmread(sorted((tmp_path / "P1" / "ct").iterdir())[0])
    bomb.PatientID, bomb.StudyInstanceUID = "P2", generate_uid()
    bomb.SeriesInstanceUID, bomb.SOPInstanceUID = generate_uid(), generate_uid()
    bomb.private_block(0x0009, "ZIP BOMB", create=True).add_new(0x10, "OB", bytes(16 << 20))
    bomb.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "P2" / "ct" / "000.dcm"
    path.parent.mkdir(parents=True)
    bomb.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 100_000
    inflated = []
    real = pydicom.filereader.zlib.decompress
    monkeypatch.setattr(
        pydicom.filereader.zlib,
        "decompress",
        lambda data, *a: inflated.append(out := real(data, *a)) or out,
    )
    assert seg._series_key(str(path)) is None  # (the file itself: said when it is read)
    assert seg._owner(tmp_path / "P2") is None
    assert not seg._holds_a_scan(tmp_path / "P2")
    assert seg._sampled_patient_ids(tmp_path) == {"P1"}
    assert [c.name for c in discover_cases([tmp_path])] == ["P1", "P2"]  # (P2 fails, named)
    assert [c.name for c in discover_cases([path])] == ["ct"]
    assert not inflated


def test_a_run_brings_the_folders_other_summaries_up_to_date(tmp_path, models, monkeypatch):
    """Two shards redid every case, and summary.csv of an earlier plain run there still told
    the old figures and settings."""
    import csv

    _fake_masks(monkeypatch)
    for name in ("P1", "P2"):
        write_ct_series(small_ct(seed=4), tmp_path / "in" / name / "ct", patient_id=name)
    out = tmp_path / "out"
    base = ["segment", str(tmp_path / "in"), "-o", str(out), "--models", str(models),
            "--device", "cpu"]  # fmt: skip
    assert main([*base, "--no-refine"]) == 0

    def refine_column(name):
        with open(out / name, newline="") as fh:
            return {r["case"]: r["settings"] for r in csv.DictReader(fh)}

    before = refine_column("summary.csv")
    assert all("refine=off" in v for v in before.values())
    for shard in ("0/2", "1/2"):
        assert main([*base, "--shard", shard]) == 0
    after = refine_column("summary.csv")
    assert sorted(after) == ["P1", "P2"] and not any("refine=off" in v for v in after.values())
    assert (
        refine_column("summary_shard-0-of-2.csv").keys()
        != refine_column("summary_shard-1-of-2.csv").keys()
    )  # each shard's own cases only
    # a user's copy of a summary is theirs: never brought up to date
    import shutil

    shutil.copy(out / "summary.csv", out / "summary_before_retrain.csv")
    kept = (out / "summary_before_retrain.csv").read_bytes()
    assert main([*base, "--no-refine"]) == 0
    assert (out / "summary_before_retrain.csv").read_bytes() == kept
    assert all("refine=off" in v for v in refine_column("summary.csv").values())


def test_an_output_that_could_not_be_added_is_said_not_claimed(
    tmp_path, models, monkeypatch, caplog
):
    """No liver found: adding a DICOM SEG logged "added P1_seg.dcm" for a file it did not write,
    and why it was not written stayed in the stats."""
    from napari_livertumor import pipeline
    from napari_livertumor.stats import compute_stats

    def nothing(self, volume, progress=None, **kw):
        labels = np.zeros(volume.shape, np.uint8)
        return pipeline.SegmentationResult(
            labels, compute_stats(labels, volume.spacing), {"total": 0.1}, "cpu"
        )

    monkeypatch.setattr(pipeline.Segmenter, "segment", nothing)
    out, base = _one_dicom_patient(tmp_path, models)
    assert main(base) == 0
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main([*base, "--dicom-seg", "--preview"]) == 0
    assert (
        "added P1_preview.png" in caplog.text
        and "P1_seg.dcm" not in caplog.text.split("added")[-1].splitlines()[0]
    )
    assert "no P1_seg.dcm: nothing was segmented" in caplog.text
    assert not (out / "P1_seg.dcm").exists()


def test_a_folder_of_outputs_or_of_a_seg_alone_is_named_for_what_it_holds(tmp_path, models, caplog):
    from napari_livertumor.io import load_ct as read

    folder = tmp_path / "results"
    folder.mkdir()
    ct = small_ct()
    labels = CTVolume((ct.array > 50).astype(np.uint8), ct.spacing, ct.origin, ct.direction)
    write_nifti(labels, folder / "P1_labels.nii.gz")
    with pytest.raises(Exception, match="it holds only label maps .*give the CT they were made"):
        read(folder)
    write_nifti(ct, folder / "P2_liver.nii.gz")  # a CT named like a mask (16-bit): offered
    with pytest.raises(Exception, match=r"holds 1 NIfTI file\(s\) \(P2_liver.nii.gz\)"):
        read(folder)
    zeros = tmp_path / "unfinished.nii.gz"
    zeros.write_bytes(bytes(1000))
    with pytest.raises(Exception, match="it is zero bytes only"):
        read(zeros)
    png = tmp_path / "scan.nii.gz"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(Exception, match="not a NIfTI file: it is a PNG picture"):
        read(png)


def test_the_pipelines_own_log_lines_name_the_case(caplog):
    """ "refine: lesion kept unchanged …" lines said nothing of which case of a batch."""
    import logging

    from napari_livertumor.commands.segment import _case_prefix

    pipeline_log = logging.getLogger("napari_livertumor.pipeline")
    with caplog.at_level("INFO"):
        with _case_prefix("HCC_007"):
            pipeline_log.info("refine: %s", "lesion kept unchanged")
        with _case_prefix("Case 50%d"):  # a "%" in a name is no format
            pipeline_log.info("refine: %s", "kept")
        pipeline_log.info("after the case")
    assert [r.getMessage() for r in caplog.records] == [
        "HCC_007: refine: lesion kept unchanged",
        "Case 50%d: refine: kept",
        "after the case",
    ]


def test_a_text_list_of_inputs_says_a_list_is_a_csv(tmp_path, capsys):
    """A .txt list of paths was read as a DICOM file: 'not a readable DICOM file'."""
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'a.nii.gz'}\n")
    assert main(["segment", str(listing), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "a list of inputs is a CSV file" in err and "'path' column" in err


def test_verbose_logs_this_tools_steps_not_other_packages_debug_lines():
    """``-v`` set the root logger to DEBUG: a 640-slice DICOM SEG export printed 1400 of
    highdicom's lines ("add plane #N"), burying the tool's own."""
    import logging

    from napari_livertumor.cli import main

    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    root.handlers = []  # (pytest's own handlers would make basicConfig do nothing)
    try:
        main(["-v"])  # no command: help, after the logging is set up
        assert logging.getLogger("napari_livertumor.pipeline").isEnabledFor(logging.DEBUG)
        # (a case's unexpected error logs its traceback there)
        assert logging.getLogger("livertumor.segment").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("highdicom.seg").isEnabledFor(logging.INFO)
        assert not logging.getLogger("monai").isEnabledFor(logging.DEBUG)
        from napari_livertumor.commands import say_repeats_again

        # pydicom's per-element warnings (a misspelled character set: 194 identical lines for
        # a 97-image series with --dicom-seg) are said once each
        seen: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: seen.append(record.getMessage())
        pydicom_log = logging.getLogger("pydicom")
        pydicom_log.addHandler(handler)
        try:
            for _ in range(3):
                pydicom_log.warning("Unknown encoding 'ISO_IR100' - using default encoding")
            pydicom_log.warning("another thing")
            say_repeats_again()  # the next case of a batch: said under its own line again
            pydicom_log.warning("another thing")
            pydicom_log.warning("another thing")
        finally:
            pydicom_log.removeHandler(handler)
        assert seen == [
            "Unknown encoding 'ISO_IR100' - using default encoding", "another thing",
            "another thing",
        ]  # fmt: skip
        # the same warning raised by pydicom as a Python warning is not said a second time
        import warnings

        from pydicom.charset import convert_encodings

        with warnings.catch_warnings(record=True) as raised:
            warnings.simplefilter("always")  # (without main's filter: raised, every time)
            main(["-v"])
            assert convert_encodings(["ISO_IR100"]) == ["iso8859"]  # misspelled: warned of
        assert not raised
        main(["-v"])  # a second run in the same process says it again, and filters once
        assert len(pydicom_log.filters) == 1
    finally:
        root.setLevel(before[0])
        root.handlers = before[1]
        logging.getLogger("napari_livertumor").setLevel(logging.NOTSET)
        logging.getLogger("livertumor").setLevel(logging.NOTSET)
        logging.getLogger("highdicom").setLevel(logging.NOTSET)
        for once in list(logging.getLogger("pydicom").filters):
            logging.getLogger("pydicom").removeFilter(once)


def test_overwritten_outputs_keep_their_permissions_and_links(tmp_path, models):
    """--overwrite made private outputs readable by all and replaced a linked labels file by
    a plain one, leaving the file it linked to unchanged."""
    import stat

    write_nifti(small_ct(), tmp_path / "p.nii.gz")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "p.nii.gz"), "-o", str(out), "--models", str(models),
            "--device", "cpu", "--no-refine"]  # fmt: skip
    assert main(args) == 0
    labels, stats = out / "p_labels.nii.gz", out / "p_stats.json"
    kept = tmp_path / "kept" / "p_labels.nii.gz"
    kept.parent.mkdir()
    labels.rename(kept)
    labels.symlink_to(kept)
    for f in (kept, stats):
        f.chmod(0o600)
    before = kept.stat().st_mtime_ns
    assert main([*args, "--overwrite"]) == 0
    assert labels.is_symlink() and kept.stat().st_mtime_ns != before
    assert (
        stat.S_IMODE(kept.stat().st_mode) == 0o600 and stat.S_IMODE(stats.stat().st_mode) == 0o600
    )
    # a linked stats file too: it was deleted, and the link (left dangling for a moment)
    # replaced by a plain file, once dangling links stopped being followed
    kept_stats = tmp_path / "kept" / "p_stats.json"
    stats.rename(kept_stats)
    stats.symlink_to(kept_stats)
    assert main([*args, "--overwrite"]) == 0
    assert stats.is_symlink() and kept_stats.is_file() and labels.is_symlink()
    assert json.loads(kept_stats.read_text())["case"] == "p"
    assert stat.S_IMODE(kept_stats.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "argv, named",
    [
        (["segment", "", "-o", "out"], "an empty argument ("),
        (["convert", "", "-o", "x.nii.gz"], "an empty argument ("),
        (["segment", "ct.nii.gz", "--models", ""], "an empty argument (after --models)"),
        (["segment", "ct.nii.gz", "--models="], "an empty argument (--models=)"),
        (["convert", "ct.nii.gz", "-o="], "an empty argument (-o=)"),
    ],
)
def test_an_empty_argument_is_refused_not_read_as_the_current_folder(
    argv, named, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # "" was this folder: every case in it was segmented
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert named in err
    assert f"livertumor {argv[0]}: error: an empty argument" in err  # the command's own prefix
    assert list(tmp_path.iterdir()) == []


def test_the_shipped_models_named_or_not_are_one_setting_and_a_tumor_folder_is_named(
    tmp_path, models
):
    """`--models default` (or the shipped folder's path) was recorded as another setting than
    no --models: every case was segmented again. A summary of a run with a tumor/ alone (an
    ensemble's folder) named the shipped folder, not the one given."""
    import shutil

    from napari_livertumor.commands.segment import Case, _settings_text, run_settings
    from napari_livertumor.models import default_model_dir
    from napari_livertumor.pipeline import InferenceConfig
    from napari_livertumor.refine import RefineConfig

    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    case = Case("a", tmp_path / "a.nii.gz")
    plain = run_settings(case, InferenceConfig(device="cpu"))
    shipped = default_model_dir("liver").parent
    named = run_settings(case, InferenceConfig.from_models_dir(shipped, device="cpu"))
    assert named == plain and plain["liver_model"] is None and plain["tumor_model"] is None
    assert "models=shipped" in _settings_text(plain)

    alone = tmp_path / "ens"
    shutil.copytree(models / "tumor", alone / "tumor")
    settings = run_settings(case, InferenceConfig.from_models_dir(alone, device="cpu"))
    assert f"models={alone.resolve()} (liver: shipped)" in _settings_text(settings)
    both = run_settings(case, InferenceConfig.from_models_dir(models, device="cpu"))
    assert f"models={models.resolve()}" in _settings_text(both)

    # the contour's values as they ran (clamped), not the file's
    odd = RefineConfig(iterations=500, smoothing=2)
    cfg = InferenceConfig(device="cpu", refine_config=odd)
    recorded = run_settings(case, cfg)["refine_config"]
    assert recorded["iterations"] == odd.validated()[0].iterations != 500


def test_settings_recorded_before_they_were_normalised_are_still_the_same_run(tmp_path):
    """Stats of earlier versions hold the shipped models' path and the refinement's values
    as the file had them: an unchanged command redid every case once ("other settings"), and
    refused those whose labels were edited."""
    from napari_livertumor.commands.segment import Case, _compare_run, run_settings
    from napari_livertumor.models import default_model_dir
    from napari_livertumor.pipeline import InferenceConfig
    from napari_livertumor.refine import RefineConfig

    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    case = Case("a", tmp_path / "a.nii.gz")
    raw = RefineConfig(iterations=500, method="chan_vese")
    wanted = run_settings(case, InferenceConfig(device="cpu", refine_config=raw))
    old = dict(wanted)
    old["liver_model"] = str(default_model_dir("liver").resolve())
    old["tumor_model"] = str(default_model_dir("tumor").resolve())
    old["refine_config"] = json.loads(json.dumps(dataclasses.asdict(raw), default=str))
    assert old["refine_config"]["iterations"] == 500 != wanted["refine_config"]["iterations"]
    assert _compare_run({"run_settings": old}, wanted) == ("same", "")
    # another refinement is still another setting
    old["refine_config"]["iterations"] = 3
    assert _compare_run({"run_settings": old}, wanted)[0] == "other settings"


def test_other_libraries_python_warnings_are_said_as_log_lines(caplog):
    """highdicom's warning of a patient name printed raw, with a line of its source code."""
    import logging
    import warnings

    from napari_livertumor.cli import main

    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    try:
        with warnings.catch_warnings():  # (the CLI's choice ends with this block)
            warnings.simplefilter("always")
            main([])  # no command: help, after the logging is set up
            with caplog.at_level(logging.WARNING, logger="livertumor"):
                warnings.warn("Value of patient name is not a valid person name", stacklevel=1)
    finally:
        root.setLevel(before[0])
        root.handlers = before[1]
        for once in list(logging.getLogger("pydicom").filters):
            logging.getLogger("pydicom").removeFilter(once)
    assert "Value of patient name is not a valid person name" in caplog.text
    assert caplog.records[-1].name == "livertumor"


def test_a_file_name_that_is_not_utf8_is_segmented_and_the_batch_goes_on(tmp_path, models):
    """A Latin-1 name (a folder copied from a Windows share or an old archive) reaches Python
    as lone surrogates: writing summary.csv raised UnicodeEncodeError after the first case,
    the others never ran, and every run again failed the same way. The name is written
    escaped; the outputs are named as the panels name it."""
    import csv
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    latin1 = folder / os.fsdecode(b"M\xfcller.nii.gz")
    write_nifti(small_ct(), latin1)
    write_nifti(small_ct(seed=3), folder / "zeta.nii.gz")
    out = tmp_path / "out"
    base = ["-o", str(out), "--models", str(models), "--device", "cpu", "--stages", "liver"]
    assert main(["segment", str(folder), *base]) == 0
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:  # valid UTF-8
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["done", "done"]
    assert rows[0]["input"].endswith("M\\udcfcller.nii.gz")  # the byte, escaped
    assert (out / "M_ller_labels.nii.gz").is_file() and (out / "zeta_labels.nii.gz").is_file()
    stats = json.loads((out / "M_ller_stats.json").read_text(encoding="utf-8"))
    assert stats["run_settings"]["input"] == str(latin1.resolve())  # JSON gives the name back
    assert main(["segment", str(folder), *base]) == 0  # and again: both complete, skipped


def test_an_optional_output_lost_to_a_full_disk_is_said_and_made_by_the_next_run(
    tmp_path, models, monkeypatch, caplog, capsys
):
    """A DICOM SEG that could not be written (a full disk) was recorded as one the scan
    cannot have: no warning on screen, pydicom's whole traceback in the stats, and every later
    run called the case complete, so the SEG was never made."""
    import errno

    from napari_livertumor.io import seg as seg_io

    write_ct_series(small_ct(seed=4), tmp_path / "P1" / "ct", patient_id="P1")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "P1"), "-o", str(out), "--models", str(models),
            "--device", "cpu", "--stages", "liver", "--dicom-seg"]  # fmt: skip
    real = seg_io.write_dicom_seg

    def full_disk(*a, **k):
        Path(k.get("out_path") or a[2]).write_bytes(b"DICM, half")  # and what it had written
        try:  # as pydicom reports it: the same type, a whole traceback for its text
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise OSError("With tag (7FE0,0010) got exception: [Errno 28]\nTraceback …") from exc

    monkeypatch.setattr(seg_io, "write_dicom_seg", full_disk)
    _fake_masks(monkeypatch)
    capsys.readouterr()
    with caplog.at_level("WARNING"):
        # the masks and stats are the case's results, but the SEG asked for is not there: a
        # script going on to send it must not read the run as complete
        assert main(args) == 1
    said = "P1: no P1_seg.dcm: No space left on device; run the command again to make it"
    assert said in caplog.text
    assert (
        "livertumor segment: P1: --dicom-seg not made (see the warnings above); run the "
        "command again to make it" in capsys.readouterr().err
    )
    assert (out / "P1_labels.nii.gz").is_file()
    stats = json.loads((out / "P1_stats.json").read_text())
    assert "dicom_seg" not in stats["outputs"] and not (out / "P1_seg.dcm").exists()
    assert said[4:] in stats["warnings"] and "Traceback" not in json.dumps(stats)
    # the half-written SEG went (it stayed, hidden, until the case came again)
    assert not [p.name for p in out.iterdir() if "seg" in p.name.lower()]
    monkeypatch.setattr(seg_io, "write_dicom_seg", real)  # room again
    capsys.readouterr()
    assert main([*args, "--list"]) == 0  # (it said "skip: complete")
    assert "\tadd P1_seg.dcm (complete otherwise)" in capsys.readouterr().out
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(args) == 0
    assert "P1: added P1_seg.dcm" in caplog.text
    stats = json.loads((out / "P1_stats.json").read_text())
    assert stats["outputs"]["dicom_seg"] == "P1_seg.dcm"
    assert not any("P1_seg.dcm" in w for w in stats["warnings"])  # no longer said missing


def test_a_seg_memory_cannot_hold_now_is_said_before_it_is_built_and_made_later(
    tmp_path, models, monkeypatch, caplog, capsys
):
    """highdicom builds a SEG's frames beside the scan (0.3 GB over the segmentation's peak for
    900 slices): the memory check counted none of it, and the kernel could end the run there."""
    from napari_livertumor import memory

    write_ct_series(small_ct(seed=4), tmp_path / "P1" / "ct", patient_id="P1")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "P1"), "-o", str(out), "--models", str(models),
            "--device", "cpu", "--stages", "liver", "--dicom-seg"]  # fmt: skip
    _fake_masks(monkeypatch)
    real = memory.require

    def tight(need, what, *a, **k):
        if "DICOM SEG" in what:
            return real(10**15, what, *a, **k)  # (no machine has that much)
        return real(need, what, *a, **k)

    monkeypatch.setattr(memory, "require", tight)
    with caplog.at_level("WARNING"):
        assert main(args) == 1  # the SEG asked for is not there (the masks and stats are)
    said = [r.getMessage() for r in caplog.records if "no P1_seg.dcm" in r.getMessage()]
    assert said and "writing its DICOM SEG" in said[0] and "run the command again" in said[0]
    monkeypatch.setattr(memory, "require", real)
    capsys.readouterr()
    assert main([*args, "--list"]) == 0
    assert "\tadd P1_seg.dcm (complete otherwise)" in capsys.readouterr().out


def test_a_home_folder_no_shell_expanded_is_the_home_folder(tmp_path, models, monkeypatch, capsys):
    """'-o "~/out"' (quoted) or '--outdir=~/out' reach the command unexpanded: a folder named
    '~' was made in the current one, and an input '~/scans/a.nii.gz' was not found."""
    home, here = tmp_path / "home", tmp_path / "here"
    (home / "scans").mkdir(parents=True)
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    write_nifti(small_ct(), home / "scans" / "a.nii.gz")
    args = ["segment", "~/scans/a.nii.gz", "--outdir=~/out", "--models", str(models)]
    assert main([*args, "--device", "cpu", "--stages", "liver"]) == 0
    assert (home / "out" / "a_labels.nii.gz").is_file()
    assert not (here / "~").exists()
    # an option read as a Path (convert's input) too; a value that names no file is kept
    capsys.readouterr()
    main(["convert", "~/scans/a.nii.gz", "--list"])  # (a NIfTI holds no series to list)
    assert f"{home / 'scans' / 'a.nii.gz'}: no DICOM series found" in capsys.readouterr().err
    import argparse

    from napari_livertumor.cli import _expand_home

    args = argparse.Namespace(series="~1.2.3", outdir="~/o", members=[Path("~/m")])
    _expand_home(args)
    assert args.series == "~1.2.3" and args.outdir == str(home / "o")
    assert args.members == [home / "m"]


def test_an_input_named_with_a_leading_dash_is_told_how_to_give_it(tmp_path, monkeypatch, capsys):
    """'-dash.nii.gz' was read as an option: argparse said only that INPUT was required."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-dash.nii.gz").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_:
        main(["segment", "-dash.nii.gz"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'-dash.nii.gz' is a file here" in err and "./-dash.nii.gz" in err


def test_one_scan_reached_through_two_links_is_one_case(tmp_path, caplog, models, monkeypatch):
    """Two links to one patient folder were two cases, segmented twice, nothing said."""
    write_ct_series(small_ct(seed=4), tmp_path / "archive" / "P1" / "ct", patient_id="P1")
    write_ct_series(small_ct(seed=6), tmp_path / "archive" / "P2" / "ct", patient_id="P2")
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for name, target in (("A", "P1"), ("B", "P1"), ("C", "P2")):
        (cohort / name).symlink_to(tmp_path / "archive" / target, target_is_directory=True)
    with caplog.at_level("WARNING"):
        cases = discover_cases([cohort])
    assert [c.name for c in cases] == ["A", "C"]
    assert "are one scan" in caplog.text and "segmented once, as A" in caplog.text
    # the name whose outputs the folder holds keeps them (B's were orphaned, A segmented anew)
    out = tmp_path / "out"
    _fake_masks(monkeypatch)
    base = ["-o", str(out), "--models", str(models), "--device", "cpu", "--stages", "liver"]
    assert main(["segment", str(cohort / "B"), *base]) == 0
    assert [c.name for c in discover_cases([cohort], outdir=out)] == ["B", "C"]
    # two files of one series are one scan; a list naming one file twice, said so
    files = sorted((tmp_path / "archive" / "P1" / "ct").iterdir())
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert len(discover_cases([files[0], files[1]])) == 1
    listed = tmp_path / "list.csv"
    listed.write_text(f"path,case\n{files[0]},alpha\n{files[0]},beta\n")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert [c.name for c in discover_cases([listed])] == ["alpha"]
    assert "listed twice (as alpha and beta)" in caplog.text
    # a series given as its folder and as one of its files: one scan
    listed.write_text(f"path,case\n{files[0].parent},alpha\n{files[3]},beta\n")
    assert [c.name for c in discover_cases([listed])] == ["alpha"]


def test_a_scan_read_through_a_link_in_another_case_is_segmented_once(tmp_path, caplog):
    """QA d69: HCC_001/sib_link -> ../HCC_002 gave the cases HCC_002 and HCC_002_2 (HCC_001's
    folder reads HCC_002's series through the link); a folder of links P_A, P_B beside
    self -> . gave 4 cases for 2 scans: only cases whose real paths nest were compared."""
    sib = tmp_path / "sib"
    write_ct_series(small_ct(seed=4), sib / "HCC_001" / "study" / "ct", patient_id="HCC_001")
    write_ct_series(small_ct(seed=6), sib / "HCC_002" / "study" / "ct", patient_id="HCC_002")
    (sib / "HCC_001" / "sib_link").symlink_to("../HCC_002", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="livertumor"):
        cases = discover_cases([sib])
    assert [(c.name, c.path) for c in cases] == [
        ("HCC_001", sib / "HCC_001"),
        ("HCC_002", sib / "HCC_002"),  # (the folder holding it keeps it, not the link)
    ]
    link = sib / "HCC_001" / "sib_link"
    assert (
        f"{sib / 'HCC_002'} and {sib / 'HCC_001'} read one series (#1 'CT', through the link "
        f"{link}): segmented once, as HCC_002"
    ) in caplog.text
    links = tmp_path / "links"
    links.mkdir()
    (sib / "HCC_001" / "sib_link").unlink()
    for name, target in (("P_A", "HCC_001"), ("P_B", "HCC_002")):
        (links / name).symlink_to(sib / target, target_is_directory=True)
    (links / "self").symlink_to(".", target_is_directory=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="livertumor"):
        assert [c.name for c in discover_cases([links])] == ["P_A", "P_B"]
    assert caplog.text.count("read one series") == 2
    # a link back above (HCC_002/loop -> ..) reads nothing twice: both cases stay
    (sib / "HCC_002" / "loop").symlink_to("..", target_is_directory=True)
    assert [c.name for c in discover_cases([sib])] == ["HCC_001", "HCC_002"]


def test_an_unknown_option_is_said_with_the_commands_own_usage(capsys, monkeypatch):
    """'segment X --bogus' printed the tool's usage (COMMAND ...), no hint of segment's
    options; 'demo --widgets foo' without a display said the display was missing."""
    with pytest.raises(SystemExit) as exit_:
        main(["segment", "x.nii.gz", "--bogus"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage: livertumor segment" in err
    assert "livertumor segment: error: unrecognized arguments: --bogus" in err
    with pytest.raises(SystemExit):  # an option of the tool's, before the command: the tool's
        main(["--bogus", "segment", "x.nii.gz"])
    assert "livertumor: error: unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["segment", "x.nii.gz", "-v"])
    assert "-v goes before the command: livertumor -v segment" in capsys.readouterr().err
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["demo", "--widgets", "load,foo"]) == 2
    assert "unknown widget(s) ['foo']" in capsys.readouterr().err


def test_options_may_stand_between_the_inputs(tmp_path, capsys, monkeypatch):
    """'segment a.nii.gz -o out b.nii.gz' (a shell history edited, a script appending
    inputs) was refused: 'unrecognized arguments: b.nii.gz'; '--' still ends the options."""
    monkeypatch.chdir(tmp_path)
    ct = CTVolume(np.zeros((4, 8, 8), np.int16), spacing=(2.0, 1.0, 1.0))
    for name in ("a", "b", "-c"):
        write_nifti(ct, tmp_path / f"{name}.nii.gz")
    assert main(["segment", "a.nii.gz", "-o", "out", "--list", "b.nii.gz"]) == 0
    listed = capsys.readouterr().out
    assert "a\ta.nii.gz" in listed and "b\tb.nii.gz" in listed
    assert main(["segment", "--list", "a.nii.gz", "--", "-c.nii.gz"]) == 0
    listed = capsys.readouterr().out
    assert "a\ta.nii.gz" in listed and "-c\t-c.nii.gz" in listed
    with pytest.raises(SystemExit):  # an unknown option between them is still said, alone
        main(["segment", "a.nii.gz", "--bogus", "b.nii.gz"])
    assert "unrecognized arguments: --bogus\n" in capsys.readouterr().err


def test_the_console_names_the_model_folders_used_when_not_the_shipped(tmp_path, models, caplog):
    """With ``--models`` pointing to a folder of liver/ and tumor/ the console did not say
    which models ran (only -v did); a stage that falls back to the shipped model is warned of
    once (not named again)."""
    import shutil

    write_nifti(small_ct(), tmp_path / "p1.nii.gz")
    common = ["--device", "cpu", "--no-refine", "--list"]
    with caplog.at_level("INFO"):
        assert main(["segment", str(tmp_path / "p1.nii.gz"), "-o", str(tmp_path / "out"),
                     "--models", str(models), *common]) == 0  # fmt: skip
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("models used:")]
    assert said == [
        f"models used: the liver model {models / 'liver'}, the tumor model {models / 'tumor'}"
    ]
    # a tumor/ alone: the shipped liver model, warned of once, the tumor folder named
    shutil.copytree(models / "tumor", tmp_path / "ens" / "tumor")
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(["segment", str(tmp_path / "p1.nii.gz"), "-o", str(tmp_path / "out"),
                     "--models", str(tmp_path / "ens"), *common]) == 0  # fmt: skip
    lines = [r.getMessage() for r in caplog.records]
    assert [m for m in lines if m.startswith("models used:")] == [
        f"models used: the tumor model {tmp_path / 'ens' / 'tumor'}"
    ]
    assert sum("shipped liver model" in m for m in lines) == 1
    # the shipped models: nothing more said
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(["segment", str(tmp_path / "p1.nii.gz"), "-o", str(tmp_path / "out"),
                     *common]) == 0  # fmt: skip
    assert not any(r.getMessage().startswith("models used:") for r in caplog.records)


# ------------------------------------------ out of memory while loading the models (QA s49fixrev)
@pytest.mark.parametrize("wrapped", [False, True])
def test_out_of_memory_while_loading_the_models_is_said_as_out_of_memory(
    tmp_path, monkeypatch, capsys, wrapped
):
    """``ulimit -v 800000; livertumor segment small.nii.gz``: torch ran out building the
    network and the command said "unexpected error: RuntimeError: [enforce fail at
    alloc_cpu.cpp:127] … this is a bug"."""
    import resource

    from napari_livertumor import pipeline
    from napari_livertumor.errors import ModelError

    torch_said = (
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 442368 bytes. Error code 12 (Cannot allocate memory)"
    )

    def out_of_memory(*args, **kwargs):
        if wrapped:  # (as load_model says a network that cannot be built, from torch's)
            try:
                raise RuntimeError(torch_said)
            except RuntimeError as exc:
                raise ModelError("m/metadata.json", "cannot be built here") from exc
        raise RuntimeError(torch_said)

    monkeypatch.setattr(pipeline, "load_model", out_of_memory)
    real_limit = resource.getrlimit
    monkeypatch.setattr(
        resource,
        "getrlimit",
        lambda which: (819_200_000, -1) if which == resource.RLIMIT_AS else real_limit(which),
    )
    write_nifti(small_ct(), tmp_path / "small.nii.gz")
    rc = main(["segment", str(tmp_path / "small.nii.gz"), "-o", str(tmp_path / "out"),
               "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert err.strip() == (
        "livertumor segment: error: loading the models: out of memory (torch could not "
        "allocate 442 kB): this process's address-space limit (ulimit -v) is 819 MB: raise "
        "that limit (or ask the job for more memory)"
    )
    assert "this is a bug" not in err and "alloc_cpu" not in err


def test_list_tells_what_a_run_does_with_outputs_edited_since(
    tmp_path, models, monkeypatch, caplog, capsys
):
    """--list said "segment again: made with other settings", "add P1_seg.dcm (complete
    otherwise)" and "skip: complete" of a case whose labels were edited by hand: the run then
    refused the first two (exit 1, nothing overwritten) and skipped the third as edited."""
    _fake_masks(monkeypatch)
    out, base = _one_dicom_patient(tmp_path, models)

    def plan(argv):
        capsys.readouterr()
        assert main([*argv, "--list"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1
        return lines[0].split("\t")[2]

    assert main([*base, "--dicom-seg"]) == 0
    labels = out / "P1_labels.nii.gz"
    img = nib.load(labels)
    fixed = np.asarray(img.dataobj).copy()
    fixed[fixed == 2] = 1
    nib.save(nib.Nifti1Image(fixed, img.affine, img.header), labels)
    edited = labels.read_bytes()
    # other settings: refused, not redone
    said = plan([*base[:-1], "--stages", "liver"])
    assert said == (
        "refuse: P1_labels.nii.gz edited since it was written; a run with other settings "
        "(--stages) would replace it (--overwrite to redo)"
    )
    caplog.clear()
    assert main([*base[:-1], "--stages", "liver"]) == 1
    assert "was changed after this command wrote it" in caplog.text
    assert labels.read_bytes() == edited
    # the same settings: skipped, as edited
    assert plan(base) == "skip: complete (labels edited since: figures are the model's)"
    capsys.readouterr()
    assert main(base) == 0
    assert "labels file was edited since: these are the model's) ->" in capsys.readouterr().out
    # its SEG deleted and asked for again: not added from the edited labels
    (out / "P1_seg.dcm").unlink()
    assert plan([*base, "--dicom-seg"]) == (
        "refuse: P1_labels.nii.gz edited since it was written: P1_seg.dcm not added from it "
        "(--overwrite to redo)"
    )
    caplog.clear()
    assert main([*base, "--dicom-seg"]) == 1
    assert "nothing was added from it" in caplog.text
    assert not (out / "P1_seg.dcm").exists()
    # --overwrite redoes it, as --list says
    assert plan([*base, "--dicom-seg", "--overwrite"]) == "segment again (--overwrite)"
    assert main([*base, "--dicom-seg", "--overwrite"]) == 0
    assert plan([*base, "--dicom-seg"]) == "skip: complete"
    # stats edited by hand: refused with the same settings too
    stats = out / "P1_stats.json"
    data = json.loads(stats.read_text())
    data["liver_ml"] = 999.0
    stats.write_text(json.dumps(data, indent=2))
    assert plan(base) == "refuse: P1_stats.json edited since it was written (--overwrite to redo)"
    assert main(base) == 1


def test_list_tells_a_stopped_runs_files_are_removed_and_a_damaged_labels_file_redone(
    tmp_path, models, monkeypatch, capsys
):
    """The run's other decisions on files changed since, as --list says them."""
    from napari_livertumor.fileio import temp_prefix

    _fake_masks(monkeypatch)
    out, base = _one_dicom_patient(tmp_path, models)
    assert main(base) == 0
    stats = out / "P1_stats.json"
    (out / f"{temp_prefix(stats)}new.json").write_bytes(stats.read_bytes())
    stats.unlink()
    capsys.readouterr()
    assert main([*base, "--list"]) == 0
    assert capsys.readouterr().out.rstrip("\n").split("\t")[2] == (
        "segment (a stopped run's P1_labels.nii.gz removed first)"
    )
    assert (out / "P1_labels.nii.gz").is_file()  # (--list removes nothing)
    assert main(base) == 0
    (out / "P1_labels.nii.gz").write_bytes(b"")  # emptied (a full disk, a copy cut short)
    capsys.readouterr()
    assert main([*base, "--list"]) == 0
    assert capsys.readouterr().out.rstrip("\n").split("\t")[2] == (
        "segment again: P1_labels.nii.gz is empty"
    )
    assert main(base) == 0
    assert (out / "P1_labels.nii.gz").stat().st_size > 0


def test_an_output_that_cannot_be_made_is_not_said_to_be_written(
    tmp_path, models, monkeypatch, caplog
):
    """--stages liver --lesion-map said "writing A_lesions.nii.gz", then "no A_lesions.nii.gz:
    no tumor was looked for"; a scan with no liver found said so of its DICOM SEG."""
    from napari_livertumor import pipeline
    from napari_livertumor.stats import compute_stats

    def segment(self, volume, progress=None, **kw):
        labels = np.zeros(volume.shape, np.uint8)  # no liver found
        stats = compute_stats(labels, volume.spacing)
        stats.update(tumor_ml=None, lesion_count=None, lesions=[])
        return pipeline.SegmentationResult(labels, stats, {"liver": 0.1, "total": 0.1}, "cpu")

    monkeypatch.setattr(pipeline.Segmenter, "segment", segment)
    out, base = _one_dicom_patient(tmp_path, models)
    with caplog.at_level("INFO"):
        assert main([*base, "--stages", "liver", "--lesion-map", "--dicom-seg", "--preview"]) == 0
    assert "no P1_lesions.nii.gz: no tumor was looked for" in caplog.text
    assert "no P1_seg.dcm: nothing was segmented" in caplog.text
    assert "writing P1_lesions.nii.gz" not in caplog.text
    assert "writing P1_seg.dcm" not in caplog.text
    assert "P1: writing P1_preview.png" in caplog.text  # (made: said)
    stats = json.loads((out / "P1_stats.json").read_text())
    assert stats["outputs"] == {"dicom_seg": None, "preview": "P1_preview.png", "lesion_map": None}
    assert not (out / "P1_lesions.nii.gz").exists() and not (out / "P1_seg.dcm").exists()


def _two_scans_liver_only(tmp_path, models) -> tuple[Path, list[str]]:
    """A folder of two small NIfTI scans, the output folder, and the liver-only command line
    segmenting them (the re-run tests' batch)."""
    folder = tmp_path / "scans"
    folder.mkdir()
    write_nifti(small_ct(), folder / "a.nii.gz")
    write_nifti(small_ct(seed=3), folder / "b.nii.gz")
    out = tmp_path / "out"
    base = ["segment", str(folder), "-o", str(out), "--models", str(models), "--device", "cpu",
            "--stages", "liver"]  # fmt: skip
    return out, base


def test_outputs_of_a_version_that_recorded_no_models_are_kept_and_said(
    tmp_path, models, caplog, capsys
):
    """QA s50upgrade: a batch folder written before the models were stamped was skipped as
    complete by a later release whose shipped models had changed, its old figures mixed with
    new ones in one summary and nothing said."""
    import csv

    out, base = _two_scans_liver_only(tmp_path, models)
    assert main(base) == 0
    for case in ("a", "b"):  # as an earlier version wrote them: no stamps, no digests
        path = out / f"{case}_stats.json"
        stats = json.loads(path.read_text())
        del stats["run_settings"]["model_stamps"], stats["digests"], stats["stats_digest"]
        path.write_text(json.dumps(stats))
    capsys.readouterr()
    assert main([*base, "--list"]) == 0
    plan = capsys.readouterr().out
    assert plan.count("skip: complete (made by an earlier version that recorded no models") == 2
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(base) == 0
    warned = [r for r in caplog.records if "did not record the models" in r.getMessage()]
    assert [r.levelname for r in warned] == ["WARNING", "INFO"]  # a warning once a batch
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["skipped (complete; models not recorded)"] * 2
    # a file added to them shows those masks: said the same way (QA s50fixrev)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main([*base, "--preview"]) == 0
    assert "did not record the models" in caplog.text
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["status"] == "done (added a_preview.png; models not recorded)"
    assert main([*base, "--overwrite"]) == 0  # redone with today's models: stamped again
    assert "model_stamps" in json.loads((out / "a_stats.json").read_text())["run_settings"]
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(base) == 0
    assert "did not record the models" not in caplog.text


def _as_commit(monkeypatch, commit):
    """Runs from here on record (and compare with) ``commit`` as this version's."""
    from napari_livertumor import provenance
    from napari_livertumor.commands import segment

    recorded = {**provenance.software(), "commit": commit}
    monkeypatch.setattr(segment, "software", lambda: dict(recorded))


def _summary_statuses(out):
    import csv

    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        return [r["status"] for r in csv.DictReader(fh)]


def _kept_as_complete_unsaid(base, out, caplog) -> None:
    """A rerun of the two-scan batch keeps both cases as complete, with no word of another
    version."""
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(base) == 0
    assert "another version" not in caplog.text
    assert _summary_statuses(out) == ["skipped (complete)"] * 2


def test_outputs_another_version_made_are_kept_and_said(
    tmp_path, models, monkeypatch, caplog, capsys
):
    """QA compat59: a batch folder segmented by the 1 Dec code was skipped as complete by a
    later one whose liver stage had gained a pass (the same model and CT: 965 mL and 1 lesion
    then, 1005 mL and 2 lesions now), the old figures mixed with new ones in summary.csv and
    nothing said: the settings and model stamps matched, the commit was not looked at."""
    out, base = _two_scans_liver_only(tmp_path, models)
    _as_commit(monkeypatch, "9a4df72c1d2e")  # the older checkout
    assert main(base) == 0
    _as_commit(monkeypatch, "bfc5d283e176")  # upgraded
    capsys.readouterr()
    assert main([*base, "--list"]) == 0
    plan = capsys.readouterr().out
    assert plan.count(
        "skip: complete (made by another version: commit 9a4df72c1d2e; this is version "
        f"{__version__}, commit bfc5d283e176; --overwrite to redo)"
    ) == 2  # fmt: skip
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(base) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2  # the first case at once (a batch stopped later said it), the count
    assert (
        warned[0].startswith(
            "a: kept as complete, made by another version of livertumor (commit 9a4df72c1d2e; this "
            "is version "
        )
        and "commit bfc5d283e176)" in warned[0]
    )
    assert (
        "2 case(s) kept as complete were made by another version of livertumor than this "
        in (warned[1])
        and "commit bfc5d283e176): commit 9a4df72c1d2e (2 cases)." in warned[1]
    )
    assert "--overwrite" in warned[0] and "--overwrite" in warned[1]
    printed = capsys.readouterr().out
    assert printed.count("(already complete; made by another version: commit 9a4df72c1d2e)") == 2
    assert _summary_statuses(out) == ["skipped (complete; made by another version)"] * 2
    # a file added to them shows that version's masks: said the same way
    assert main([*base, "--preview"]) == 0
    assert _summary_statuses(out)[0] == "done (added a_preview.png; made by another version)"
    assert main([*base, "--overwrite"]) == 0  # redone by this version: recorded as its own
    _kept_as_complete_unsaid(base, out, caplog)
    # a release install records no commit: where neither side knows its commit, nothing said
    _as_commit(monkeypatch, None)
    assert main([*base, "--overwrite"]) == 0
    _kept_as_complete_unsaid(base, out, caplog)


def test_outputs_of_a_checkout_are_not_said_as_another_versions_by_a_release_install(
    tmp_path, models, monkeypatch, caplog
):
    """A batch segmented from a git checkout (its commit recorded), then checked by a
    release install of the same version (which records no commit): every case was said as
    "made by another version of livertumor (commit ...)", though nothing tells the two
    apart; only two known commits that differ are another version."""
    out, base = _two_scans_liver_only(tmp_path, models)
    _as_commit(monkeypatch, "9a4df72c1d2e")
    assert main(base) == 0
    _as_commit(monkeypatch, None)  # a release install of the same version: no commit
    _kept_as_complete_unsaid(base, out, caplog)


def test_one_case_kept_from_another_version_is_warned_of_once(
    tmp_path, models, monkeypatch, caplog
):
    """A one-case run kept as complete outputs another version made: the case's warning was
    followed by the batch's count, "1 case(s) kept as complete were made by another version
    ...", the same news twice. The count is a batch's, after a line per case is lost."""
    out, base = _two_scans_liver_only(tmp_path, models)
    (tmp_path / "scans" / "b.nii.gz").unlink()
    _as_commit(monkeypatch, "9a4df72c1d2e")
    assert main(base) == 0
    _as_commit(monkeypatch, "bfc5d283e176")
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(base) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1, warned
    assert warned[0].startswith("a: kept as complete, made by another version of livertumor")


def test_outputs_of_a_version_that_recorded_no_software_are_said(tmp_path, models, caplog):
    """QA compat59: outputs of a version from before the software was recorded (1 Dec: the
    models stamped, no commit) were kept as this version's; those of one before the models
    were stamped (no software either) are said as before, once."""
    from napari_livertumor.commands.segment import _stats_digest

    out, base = _two_scans_liver_only(tmp_path, models)
    assert main(base) == 0
    for case in ("a", "b"):  # as the 1 Dec version wrote them: no software
        path = out / f"{case}_stats.json"
        stats = json.loads(path.read_text())
        del stats["software"]
        stats["stats_digest"] = _stats_digest(stats)
        path.write_text(json.dumps(stats))
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(base) == 0
    assert "2 case(s) kept as complete were made by another version" in caplog.text
    assert "a version from before 5 Dec 2026, which recorded none (2 cases)" in caplog.text
    assert _summary_statuses(out) == ["skipped (complete; made by another version)"] * 2
    for case in ("a", "b"):  # older still: no models recorded either (said as that, alone)
        path = out / f"{case}_stats.json"
        stats = json.loads(path.read_text())
        del stats["run_settings"]["model_stamps"]
        stats["stats_digest"] = _stats_digest(stats)
        path.write_text(json.dumps(stats))
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(base) == 0
    assert "another version" not in caplog.text
    assert caplog.text.count("did not record the models") == 1
    assert _summary_statuses(out) == ["skipped (complete; models not recorded)"] * 2


def test_a_nifti_case_skipped_as_complete_is_no_seg_lost_for_the_exit_code(
    tmp_path, models, capsys
):
    """QA s50fixrev: a NIfTI case complete from a run without --dicom-seg, asked again with it,
    exited 1 ("--dicom-seg not made ... run the command again") on every run: a NIfTI input
    can never have a SEG (said as a warning, as on its first run)."""
    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    base = ["segment", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / "out"), "--models",
            str(models), "--device", "cpu", "--stages", "liver"]  # fmt: skip
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--dicom-seg"]) == 0
    assert main([*base, "--dicom-seg", "--preview"]) == 0  # (the preview added)
    assert "not made" not in capsys.readouterr().err


def test_list_says_a_folder_in_an_outputs_place_fails_the_case(tmp_path, models, capsys):
    """QA s50fixrev: a folder named as an output: --list said "segment again (--overwrite)"
    (or "refuse … --overwrite to replace"), and the run, --overwrite or not, failed."""
    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    out = tmp_path / "out"
    (out / "a_preview.png").mkdir(parents=True)
    base = ["segment", str(tmp_path / "a.nii.gz"), "-o", str(out), "--models", str(models),
            "--device", "cpu", "--stages", "liver", "--preview"]  # fmt: skip
    for extra in ([], ["--overwrite"]):
        capsys.readouterr()
        assert main([*base, *extra, "--list"]) == 0
        line = capsys.readouterr().out.strip().split("\t")
        assert line[2] == "fail: a_preview.png is a folder, not a file (move it)", line
        assert main([*base, *extra]) == 1  # as the run does


def test_summary_cells_that_begin_like_a_formula_are_shown_as_text(tmp_path, models, monkeypatch):
    """An input named ``=HYPERLINK(…).nii.gz`` and an error beginning ``@SUM(1+1)…`` were
    written as they are into summary.csv, where a spreadsheet runs them as formulas. A case
    whose cells got the apostrophe is still the same case when the summary is read back."""
    import csv

    from napari_livertumor.commands.segment import _read_summary

    folder = tmp_path / "in"
    linked = '=HYPERLINK("http:__evil","x").nii.gz'
    write_nifti(small_ct(), folder / linked)
    write_nifti(small_ct(seed=1), folder / "-x.nii.gz")
    bad_name = "@SUM(1+1)bad.nii.gz"
    (folder / bad_name).write_text("not a scan")
    monkeypatch.chdir(folder)  # the inputs as given, relative: the cells begin with = and @
    out = tmp_path / "out"
    args = ["segment", linked, bad_name, "./-x.nii.gz", "-o", str(out)]
    args += ["--models", str(models), "--device", "cpu", "--no-refine"]

    def summary() -> dict[str, dict]:
        with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:  # a spreadsheet runs no cell of it
            for value in row.values():
                assert not value.startswith(("=", "+", "@", "\t", "\r")), value
                assert not value.startswith("-") or value.replace(".", "").lstrip("-").isdigit()
        return {r["case"]: r for r in rows}

    assert main(args) == 1  # the text file fails, the others are done
    rows = summary()
    assert rows["HYPERLINK__http___evil___x"]["input"] == "'" + linked
    bad = rows["SUM_1_1_bad"]
    assert bad["input"] == "'@SUM(1+1)bad.nii.gz" and bad["error"].startswith("'@SUM(1+1)bad")
    assert rows["'-x"]["labels"] == "'-x_labels.nii.gz" and rows["'-x"]["status"] == "done"
    read = {r["case"]: r for r in _read_summary(out / "summary.csv")}  # as they were written
    assert read["-x"]["labels"] == "-x_labels.nii.gz" and read["SUM_1_1_bad"]["input"] == bad_name
    assert main(args) == 1  # again: the same three cases, the done ones skipped, none twice
    again = summary()
    assert sorted(again) == sorted(rows) and again["'-x"]["status"] == "skipped (complete)"


def test_outputs_linked_to_missing_files_are_replaced_in_the_folder_not_followed(tmp_path, models):
    """Links planted in the output folder for a case's labels and stats, their targets
    missing, were taken for "no earlier output" and followed: the run made the planted files
    outside the folder, without --overwrite."""
    write_nifti(small_ct(), tmp_path / "HCC_001.nii.gz")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    labels, stats = out / "HCC_001_labels.nii.gz", out / "HCC_001_stats.json"
    labels.symlink_to(elsewhere / "planted.nii.gz")
    stats.symlink_to(elsewhere / "planted_stats.json")
    args = ["segment", str(tmp_path / "HCC_001.nii.gz"), "-o", str(out)]
    assert main([*args, "--models", str(models), "--device", "cpu", "--no-refine"]) == 0
    assert list(elsewhere.iterdir()) == []
    assert not labels.is_symlink() and not stats.is_symlink()
    assert json.loads(stats.read_text())["complete"] is True
    assert nib.load(labels).shape == nib.load(tmp_path / "HCC_001.nii.gz").shape


def test_a_link_planted_at_a_cases_lock_file_fails_that_case_only(tmp_path, models):
    """The case's lock file was opened through a link planted at its name, making the file
    it pointed to; refused, the case fails naming the lock file, and the others go on."""
    import csv

    for k, name in enumerate(("a", "b")):
        write_nifti(small_ct(seed=k), tmp_path / "in" / f"{name}.nii.gz")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    lock = out / ".a.lock"
    lock.symlink_to(elsewhere / "planted")
    args = ["segment", str(tmp_path / "in"), "-o", str(out), "--models", str(models)]
    assert main([*args, "--device", "cpu", "--no-refine"]) == 1
    assert list(elsewhere.iterdir()) == [] and lock.is_symlink()
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    assert rows["a"]["status"] == "failed" and str(lock) in rows["a"]["error"]
    assert "symbolic link" in rows["a"]["error"] and rows["b"]["status"] == "done"
    assert not (out / "a_labels.nii.gz").exists() and (out / "b_labels.nii.gz").is_file()


def test_a_skipped_rows_seconds_are_the_runs_total_time():
    """A case skipped as complete reports the time its run took in all; taking the segment
    step's time alone would under-report it (40 s of a 45.2 s run)."""
    from napari_livertumor.commands.segment import _summary_values

    stats = {"timings_s": {"read": 2.0, "segment": 40.0, "write": 3.0, "total": 45.2}}
    assert _summary_values(stats)["seconds"] == 45.2


def test_stats_of_a_liver_only_run_say_nothing_was_refined():
    """A liver-only run has no tumor to refine: stats saying refine true would record a
    refinement that never ran."""
    import time
    from types import SimpleNamespace

    from napari_livertumor.commands.segment import Case, _case_stats

    segmenter = SimpleNamespace(
        config=SimpleNamespace(refine=True, stages="liver"),
        liver=SimpleNamespace(path="/m/liver", metadata=SimpleNamespace(members=1)),
        tumor=None,
    )
    result = SimpleNamespace(timings={"total": 1.0}, stats={}, device="cpu")
    volume = SimpleNamespace(meta={}, shape=(1, 1, 1), array=np.zeros((1, 1, 1), np.int16))
    stats = _case_stats(
        Case("c1", Path("/x")), volume, result, segmenter, {},
        timings=(time.perf_counter(), 0.1, 0.1, 0),
    )  # fmt: skip
    assert stats["refine"] is False


def test_an_earlier_summary_row_is_kept_while_either_of_its_files_remains(tmp_path):
    """A row whose labels were deleted but whose stats file remains still describes a case;
    dropping it when only one file is gone would lose that case from the summary."""
    from napari_livertumor.commands.segment import write_summary

    (tmp_path / "a_stats.json").write_text("{}")
    first = {"case": "a", "status": "done", "labels": "a_labels.nii.gz", "stats": "a_stats.json"}
    write_summary([first], tmp_path / "summary.csv")
    second = {"case": "b", "status": "done", "labels": "b_labels.nii.gz", "stats": "b_stats.json"}
    write_summary([second], tmp_path / "summary.csv")
    lines = (tmp_path / "summary.csv").read_text().splitlines()[1:]
    assert [line.split(",")[0] for line in lines] == ["a", "b"]


def test_a_training_runs_last_checkpoint_given_as_models_is_warned_of(tmp_path, caplog):
    """`segment --models run/liver/last` (the state a stopped run resumes from: no logit
    shift calibrated, no validation score) segmented without a word, where a weakly validated
    model warned "expect unreliable masks" and the run's own best model lay beside it."""
    import logging
    import shutil

    weak_free = {"score": 0.93, "n_val": 3, "n_val_with_class": 3}
    best = make_untrained_model(tmp_path / "run" / "liver", "liver", seed=1, metrics=weak_free)
    last = make_untrained_model(
        best / "last", "liver", seed=2, metrics={"note": "last checkpoint (epoch)"}
    )
    (last / "train_state.pt").write_bytes(b"state")
    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    base = ["segment", str(tmp_path / "a.nii.gz"), "--stages", "liver", "--device", "cpu"]
    with caplog.at_level(logging.WARNING):
        assert main([*base, "--models", str(last), "-o", str(tmp_path / "o")]) == 0
    said = [r.getMessage() for r in caplog.records if "last/ checkpoint" in r.getMessage()]
    assert len(said) == 1, caplog.text  # once, when the model is loaded
    assert f"({last})" in said[0] and "not a finished model" in said[0], said
    assert f"saved best model ({best}) instead" in said[0], said
    stats = json.loads((tmp_path / "o" / "a_stats.json").read_text())
    assert said[0] in stats["warnings"]  # recorded with the figures it casts doubt on
    # a run stopped before its first best model: the message says so, names no best model
    shutil.rmtree(tmp_path / "run2", ignore_errors=True)
    alone = tmp_path / "run2" / "liver" / "last"
    shutil.copytree(last, alone)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main([*base, "--models", str(alone), "-o", str(tmp_path / "o2")]) == 0
    assert "saved no best model yet" in caplog.text and str(alone.parent) in caplog.text
    # the run's best model, and a copy of last/ calibrated since (a shift of its own, as the
    # shipped tumor model was made): no such warning
    calibrated = tmp_path / "calibrated"
    make_untrained_model(
        calibrated, "liver", seed=2, logit_bias=(0.0, -1.0),
        metrics={"note": "last checkpoint (epoch)"},
    )  # fmt: skip
    for folder in (best, calibrated):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            out = tmp_path / f"o-{folder.name}"
            assert main([*base, "--models", str(folder), "-o", str(out)]) == 0
        assert "last/ checkpoint" not in caplog.text, folder


def test_list_says_the_refusal_of_models_the_run_would_refuse(tmp_path, models, capsys):
    """QA models58: `--list` said "segment" of a case whose run was refused at once for its
    models (a label_map naming no 'tumor', weights cut short, a link to nothing; a liver model
    in tumor/, weights named weights.safetensors): a batch planned with it was told all was
    well. It says the run's refusal, in the run's words."""
    import shutil

    write_nifti(small_ct(), tmp_path / "a.nii.gz")

    def broken(name, spoil):
        root = tmp_path / name
        shutil.copytree(models, root)
        spoil(root / "tumor")
        return root

    def no_tumor_label(folder):
        meta = json.loads((folder / "metadata.json").read_text())
        meta["label_map"]["2"] = "lesion"
        (folder / "metadata.json").write_text(json.dumps(meta))

    def cut_short(folder):
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])

    def dangling(folder):
        shutil.rmtree(folder)
        folder.symlink_to(tmp_path / "gone")

    def wrapped(folder):  # saved from DistributedDataParallel (QA rev58b: --list said segment)
        from safetensors.numpy import load_file, save_file

        weights = folder / "model.safetensors"
        save_file({f"module.{k}": v for k, v in load_file(weights).items()}, weights)
        meta = json.loads((folder / "metadata.json").read_text())
        meta.pop("weights_sha1", None)  # (its digest: the file's, checked on load)
        (folder / "metadata.json").write_text(json.dumps(meta))

    def other_weights(folder):  # weights swapped under a metadata.json (s59: --list said segment)
        from safetensors.numpy import load_file, save_file

        weights = folder / "model.safetensors"
        save_file({k: v * 1.01 for k, v in load_file(weights).items()}, weights)

    def diverged(folder):  # NaN in one tensor, its digest recorded (s59: --list said segment)
        import hashlib

        from safetensors.numpy import load_file, save_file

        weights = folder / "model.safetensors"
        sd = load_file(weights)
        first = sorted(sd)[0]
        sd[first] = sd[first] * np.nan
        save_file(sd, weights)
        meta = json.loads((folder / "metadata.json").read_text())
        meta["weights_sha1"] = hashlib.sha1(weights.read_bytes()).hexdigest()
        (folder / "metadata.json").write_text(json.dumps(meta))

    def liver_model(folder):  # the liver model copied into tumor/ (a slip of the hand)
        shutil.rmtree(folder)
        shutil.copytree(models / "liver", folder)

    def renamed(folder):  # the weights under another name
        (folder / "model.safetensors").rename(folder / "weights.safetensors")

    for name, spoil, said in [
        ("labels", no_tumor_label, "names no 'tumor' channel"),
        ("stage", liver_model, "this is a liver model; a tumor model is needed here"),
        ("renamed", renamed, "missing model.safetensors (weights.safetensors here: rename it"),
        ("cut", cut_short, "corrupt or unreadable weights (the file is cut short"),
        ("link", dangling, "a link to a folder that is not there"),
        ("prefix", wrapped, "every tensor name starts with 'module.'"),
        ("digest", other_weights, "not the weights this model's metadata.json was written with"),
        ("nan", diverged, "tensor(s) hold NaN or infinite values"),
    ]:
        root = broken(name, spoil)
        base = ["segment", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / f"out-{name}"),
                "--models", str(root), "--device", "cpu", "--no-refine"]  # fmt: skip
        capsys.readouterr()
        assert main([*base, "--list"]) == 0
        line = capsys.readouterr().out.strip().split("\t")
        assert line[2].startswith("fail: ") and said in line[2], line
        assert main(base) == 1  # the run: refused, in the same words
        assert line[2].removeprefix("fail: ") in capsys.readouterr().err
        # liver only: the tumor model is not loaded, so nothing stops the case
        assert main([*base, "--stages", "liver", "--list"]) == 0
        assert capsys.readouterr().out.strip().split("\t")[2] == "segment"


def test_list_passes_bfloat16_weights_the_run_loads(tmp_path, models, capsys):
    """QA rev59: `--list` read each tensor through numpy to look for NaN, and stopped on
    bfloat16 weights ("unexpected error: TypeError: data type 'bfloat16' not understood …
    this is a bug") that the run loads and segments with."""
    import hashlib
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    root = tmp_path / "bf16"
    shutil.copytree(models, root)
    weights = root / "tumor" / "model.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(weights).items()}, weights)
    meta = json.loads((root / "tumor" / "metadata.json").read_text())
    meta["weights_sha1"] = hashlib.sha1(weights.read_bytes()).hexdigest()
    (root / "tumor" / "metadata.json").write_text(json.dumps(meta))
    base = ["segment", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / "out"),
            "--models", str(root), "--device", "cpu", "--no-refine"]  # fmt: skip
    capsys.readouterr()
    assert main([*base, "--list"]) == 0
    assert capsys.readouterr().out.strip().split("\t")[2] == "segment"
    assert main(base) == 0


def test_a_models_folder_that_cannot_be_entered_is_named(tmp_path, models, capsys, monkeypatch):
    """QA models58: `--models m000` (mode 000) said "m000/metadata.json: Permission denied",
    of a file that is not there; a stage folder of mode 000 the same of its metadata.json."""
    import shutil

    from _permissions import deny_entering

    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    root = tmp_path / "m000"
    shutil.copytree(models, root)
    for denied, named in ((root, root), (root / "tumor", root / "tumor")):
        with monkeypatch.context() as m:
            deny_entering(m, denied)
            for extra in ([], ["--list"]):
                capsys.readouterr()
                rc = main(["segment", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / "out"),
                           "--models", str(root), "--device", "cpu", *extra])  # fmt: skip
                said = capsys.readouterr()
                text = said.err + said.out
                assert f"{named}: this folder cannot be read (permission denied)" in text, text
                assert "metadata.json" not in text
                # (a models folder that cannot be used stops --list too, as a missing one does)
                assert rc == (0 if extra and denied != root else 1)


def test_a_tumor_model_given_with_stages_liver_is_said_to_be_unused(tmp_path, models, caplog):
    """QA models58: `--models run/tumor --stages liver` said "the shipped liver model is used
    with it", and the tumor model given was never used: nothing said so."""
    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    base = ["segment", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / "out"), "--device",
            "cpu", "--stages", "liver", "--list"]  # fmt: skip
    with caplog.at_level("WARNING"):
        assert main([*base, "--models", str(models / "tumor")]) == 0
    said = caplog.text
    assert "is a tumor model, and only the liver stage runs" in said and "not used" in said
    assert "used with it" not in said


def test_threads_beyond_the_cores_are_capped_and_said(tmp_path, models, caplog):
    """QA models58: `--threads 999` on a 2-core machine ran torch with 999 threads, 13-16x
    slower than with 2, without a word."""
    import torch

    from napari_livertumor.pipeline import default_num_threads

    write_nifti(small_ct(), tmp_path / "a.nii.gz")
    before = torch.get_num_threads()
    cores = default_num_threads()
    try:
        with caplog.at_level("WARNING"):
            assert main(["segment", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / "out"),
                         "--models", str(models), "--device", "cpu", "--no-refine", "--stages",
                         "liver", "--threads", str(cores + 997)]) == 0  # fmt: skip
        assert torch.get_num_threads() == cores
        assert (
            f"{cores + 997} CPU threads asked for, more than the {cores} core(s) this process "
            f"may use: {cores} used"
        ) in caplog.text
    finally:
        torch.set_num_threads(before)


def test_a_log_file_hears_how_far_a_long_stage_is(monkeypatch, caplog):
    """With stderr a file (a cluster job's log), a stage was said once at its start and then
    nothing for its whole length (14 s of a tumor stage; minutes on a large scan)."""
    import io

    from napari_livertumor.commands import segment as seg

    monkeypatch.setattr(seg.sys, "stderr", io.StringIO())  # (no terminal)
    clock = iter([0.0, 3.0, 11.0, 12.0, 25.0, 26.0])
    monkeypatch.setattr(seg.time, "monotonic", lambda: next(clock))
    show = seg._printer()
    with caplog.at_level(logging.INFO, logger=seg.log.name):
        for done in range(6):
            show("HCC_001", "tumor", done, 9)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["HCC_001: tumor …", "HCC_001: tumor 2/9 …", "HCC_001: tumor 4/9 …"]


def test_a_log_files_progress_lines_keep_their_pace_whatever_the_clocks_start(monkeypatch, caplog):
    """The progress clock (time.monotonic) starts anywhere, often hours in: measured from 0,
    a log file would get a count line right after each stage's first line; and a line at a
    stage's very start or end ("0/9", "9/9") says nothing the next line does not. Each
    stage is said at once; its count then every 10 s, between its first and last step."""
    import io

    from napari_livertumor.commands import segment as seg

    monkeypatch.setattr(seg.sys, "stderr", io.StringIO())  # (no terminal)
    steps = [  # (seconds, stage, done, total)
        (5000.0, "liver", 0, 2),
        (5001.0, "liver", 1, 2),
        (5015.0, "liver", 2, 2),  # 14 s on, but the stage's end: no line
        (5016.0, "tumor", 0, 9),
        (5027.0, "tumor", 0, 9),  # 11 s on, but nothing done yet: no line
        (5028.0, "tumor", 3, 9),
        (5030.0, "tumor", 4, 9),
        (5040.0, "tumor", 9, 9),
    ]
    clock = iter([t for t, *_ in steps])
    monkeypatch.setattr(seg.time, "monotonic", lambda: next(clock))
    show = seg._printer()
    with caplog.at_level(logging.INFO, logger=seg.log.name):
        for _, stage, done, total in steps:
            show("HCC_001", stage, done, total)
    assert [r.getMessage() for r in caplog.records] == [
        "HCC_001: liver …",
        "HCC_001: tumor …",
        "HCC_001: tumor 3/9 …",
    ]


def test_a_folder_given_beside_the_patient_folder_holding_it_is_read_once_if_its_series_is(
    tmp_path, models, caplog, capsys
):
    """`segment n1/HCC_001 n1/HCC_001/<study>` segmented the one CT twice, under two names
    (two label maps, two summary rows): only a folder given twice was read once. What each
    reads decides, not the paths: a baseline study beside its patient folder, which reads
    the follow-up, is a case of its own."""
    patient = tmp_path / "P1"
    write_ct_series(small_ct(seed=4), patient / "study" / "ct", patient_id="P1")
    series = patient / "study" / "ct"
    (tmp_path / "link").symlink_to(patient / "study", target_is_directory=True)
    for inner in (patient / "study", series, sorted(series.iterdir())[2], tmp_path / "link"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="livertumor"):
            assert [c.name for c in discover_cases([patient, inner])] == ["P1"]
        assert f"{patient} and {inner} read one series (#1 'CT'): segmented once, as P1" in (
            caplog.text
        )
    # the first given keeps the case, unless the output folder holds the other's outputs
    assert [c.name for c in discover_cases([series, patient])] == ["ct"]
    out = tmp_path / "done"
    out.mkdir()
    made = {"run_settings": {"input": str(patient.resolve()), "patient": None}}
    (out / "P1_stats.json").write_text(json.dumps(made))
    assert [c.name for c in discover_cases([series, patient], outdir=out)] == ["P1"]
    # a patient folder holding a baseline and a follow-up (a case of a folder of patients)
    # reads one of them, the one with more slices: the other study's folder is a case too
    both = tmp_path / "cohort" / "P2"
    write_ct_series(small_ct(seed=1, shape=(8, 40, 48)), both / "base", patient_id="P2",
                    study_date="20071223", series_number=4)  # fmt: skip
    write_ct_series(small_ct(seed=2), both / "fu", patient_id="P2",
                    study_date="20080315", series_number=104)  # fmt: skip
    cohort = tmp_path / "cohort"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="livertumor"):
        assert [c.name for c in discover_cases([cohort, both / "base"])] == ["P2", "base"]
        assert "read one series" not in caplog.text
        assert [c.name for c in discover_cases([cohort, both / "fu"])] == ["P2"]
    assert f"{both} and {both / 'fu'} read one series (#104 'CT'): segmented once, as P2" in (
        caplog.text
    )
    # the run's --series decides what each reads: the baseline's, both read it
    cmd = ["segment", str(cohort), str(both / "base"), "-o", str(tmp_path / "out"), "--list",
           "--models", str(models)]  # fmt: skip
    capsys.readouterr()
    assert main(cmd) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == [
        "P2",
        "base",
    ]
    uid = load_ct(both / "base").meta["series_uid"]
    assert main([*cmd, "--series", uid]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["P2"]


def test_a_folder_read_once_is_said_with_the_name_its_case_is_written_under_and_its_pass(
    tmp_path, models, caplog, capsys
):
    """`segment coh cohB cohB/HCC_001/<study>`: both cohorts hold an HCC_001, cohB's written as
    HCC_001_2, but the warning said "segmented once, as HCC_001" (named before the names were
    made unique: the other patient's case). Of a series stacking passes it said "read one
    series" without the pass both read, which is what was compared."""
    a, b = tmp_path / "coh", tmp_path / "cohB"
    assert main(["synth", "-o", str(a), "--cases", "1", "--seed", "1"]) == 0
    assert main(["synth", "-o", str(b), "--cases", "1", "--seed", "0", "--quirks"]) == 0

    def ct_of(cohort):  # (its study, the CT series' number as its folder names it)
        series = next(cohort.glob("HCC_001/*/*LIVER 3 PHASE CAP*"))
        return series.parent, int(float(series.name.split("-")[0]))

    study, number = ct_of(b)  # (--quirks: a second phase stacked in the series)
    cmd = ["segment", str(a), str(b), str(study), "-o", str(tmp_path / "out"), "--list",
           "--models", str(models)]  # fmt: skip
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="livertumor"):
        assert main(cmd) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == [
        "HCC_001",
        "HCC_001_2",
    ]
    assert f"{b / 'HCC_001'} is written as HCC_001_2" in caplog.text
    assert (
        f"{b / 'HCC_001'} and {study} read one series (#{number} 'LIVER 3 PHASE CAP', acq 1): "
        "segmented once, as HCC_001_2"
    ) in caplog.text
    # a series of one pass: none said; the case keeping its name is said by it
    study, number = ct_of(a)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="livertumor"):
        assert [c.name for c in discover_cases([a, b, study])] == ["HCC_001", "HCC_001_2"]
    assert (
        f"{a / 'HCC_001'} and {study} read one series (#{number} 'LIVER 3 PHASE CAP'): "
        "segmented once, as HCC_001"
    ) in caplog.text
