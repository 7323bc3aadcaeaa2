"""Clinical weak supervision: out-of-fold weak labels and the soft-ratio penalty."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from napari_livertumor.errors import InputError
from napari_livertumor.training.weak import (
    fit_predict,
    out_of_fold_weak_labels,
    smallest_fold_fit,
    soft_tumor_ratio,
    weak_penalty,
)


def clinical_cohort(n=20, seed=0):
    rng = np.random.default_rng(seed)
    tlvr = rng.uniform(0, 0.4, n)
    ids = [f"HCC_{i:03d}" for i in range(1, n + 1)]
    frame = pd.DataFrame(
        {
            "AFP": np.exp(3 + 8 * tlvr + rng.normal(0, 0.3, n)),
            "T_involvment": np.where(tlvr > 0.2, 2, 1).astype(float),
            "age": rng.integers(40, 85, n).astype(float),
        },
        index=pd.Index(ids, name="TCIA_ID"),
    )
    frame.loc[ids[3], "AFP"] = np.nan  # a missing value, imputed from the other folds
    return frame, dict(zip(ids, tlvr, strict=True))


def test_weak_labels_track_tumor_burden_out_of_fold():
    frame, tlvr = clinical_cohort()
    weak = out_of_fold_weak_labels(frame, tlvr, ["AFP", "T_involvment", "age"], folds=5)
    assert set(weak.labels) == set(tlvr)
    ids = sorted(tlvr)
    corr = np.corrcoef([tlvr[i] for i in ids], [weak.labels[i] for i in ids])[0, 1]
    assert corr > 0.7
    assert all(0.0 <= v <= 1.0 for v in weak.labels.values())


@pytest.mark.parametrize("patient", ["HCC_001", "HCC_004", "HCC_017"])
def test_no_patient_sees_its_own_row(patient):
    """Changing a patient's own tumor burden never changes its own weak label."""
    frame, tlvr = clinical_cohort()
    cols = ["AFP", "T_involvment", "age"]
    before = out_of_fold_weak_labels(frame, tlvr, cols, folds=5, seed=1).labels
    changed = dict(tlvr)
    changed[patient] = 0.99
    after = out_of_fold_weak_labels(frame, changed, cols, folds=5, seed=1).labels
    assert after[patient] == pytest.approx(before[patient], abs=1e-12)
    # ... while the patients whose folds trained on that row do move
    moved = [p for p in tlvr if p != patient and abs(after[p] - before[p]) > 1e-9]
    assert moved


def test_imputation_uses_only_the_fitting_rows():
    x_fit = np.array([[1.0], [2.0], [3.0], [np.nan]])
    y_fit = np.array([0.1, 0.2, 0.3, 0.2])
    # the new row is missing its value: it gets the median of x_fit (2.0) → prediction ≈ 0.2
    pred = fit_predict(x_fit, y_fit, np.array([[np.nan]]), ridge=1e-9)
    assert pred[0] == pytest.approx(0.2, abs=1e-6)
    # a new row's own (extreme) value never shifts the imputation of the fitting rows
    pred2 = fit_predict(x_fit, y_fit, np.array([[1000.0], [np.nan]]), ridge=1e-9)
    assert pred2[1] == pytest.approx(0.2, abs=1e-6)


def test_a_weak_label_predicted_below_zero_is_held_at_zero():
    """TLVR is a share, 0 to 1: a patient whose clinical values lie far below the others' is
    predicted a negative tumor share by the regression: held at 0, not pulled towards."""
    rng = np.random.default_rng(0)
    n = 20
    ids = [f"HCC_{i:03d}" for i in range(1, n + 1)]
    tlvr = rng.uniform(0.0, 0.4, n)
    tlvr[0] = 0.0
    score = 10 * tlvr + rng.normal(0, 0.2, n)
    score[0] = -6.0  # an outlier far below the others
    frame = pd.DataFrame({"score": score}, index=pd.Index(ids, name="TCIA_ID"))
    # one fold per patient: HCC_001's label is the fit on the other 19 alone, which is negative
    raw = fit_predict(score[1:, None], tlvr[1:], score[:1, None], ridge=1.0)[0]
    assert raw < -0.1
    weak = out_of_fold_weak_labels(frame, dict(zip(ids, tlvr, strict=True)), ["score"], folds=n)
    assert weak.labels["HCC_001"] == 0.0
    assert all(0.0 <= v <= 1.0 for v in weak.labels.values())


def test_patients_without_clinical_rows_get_no_weak_label():
    frame, tlvr = clinical_cohort()
    tlvr["HCC_999"] = 0.1
    weak = out_of_fold_weak_labels(frame, tlvr, ["AFP", "age"])
    assert "HCC_999" not in weak.labels
    assert weak.n_without_clinical == 1
    assert any("no clinical row (HCC_999)" in m for m in weak.report)  # named, not counted


def test_clinical_table_with_no_matching_ids_names_the_file(tmp_path):
    frame, _ = clinical_cohort()
    with pytest.raises(InputError, match="no clinical row matches") as err:
        out_of_fold_weak_labels(frame, {"P1": 0.1, "P2": 0.2}, ["AFP"], source=tmp_path / "c.csv")
    assert "c.csv" in str(err.value)


def test_missing_columns_are_reported_not_guessed():
    frame, tlvr = clinical_cohort()
    weak = out_of_fold_weak_labels(frame, tlvr, ["AFP", "TNM"])
    assert weak.columns == ["AFP"]
    assert any("TNM" in m for m in weak.report)
    with pytest.raises(InputError, match="usable"):
        out_of_fold_weak_labels(frame, tlvr, ["TNM"])


def test_columns_are_matched_as_the_table_reader_matches_them(caplog):
    """A table with lower-case headers read fine, then lost every weak column but 'age' with a
    line at INFO level: weak supervision ran on age alone without a warning."""
    frame, tlvr = clinical_cohort()
    lower = frame.rename(columns=str.lower)
    exact = out_of_fold_weak_labels(frame, tlvr, ["AFP", "T_involvment", "age"])
    weak = out_of_fold_weak_labels(lower, tlvr, ["AFP", "T_involvment", "age"])
    assert weak.columns == ["afp", "t_involvment", "age"]
    assert weak.labels == pytest.approx(exact.labels)
    with caplog.at_level("WARNING"):
        out_of_fold_weak_labels(frame, tlvr, ["AFP", "CLIP_Score", "TNM", "BCLC"])
    assert "only 1 of the 4 clinical columns" in caplog.text and "CLIP_Score" in caplog.text


def test_soft_ratio_and_penalties_by_hand():
    probs = torch.zeros(1, 3, 1, 1, 4)
    probs[0, :, 0, 0, 0] = torch.tensor([0.0, 1.0, 0.0])  # liver
    probs[0, :, 0, 0, 1] = torch.tensor([0.0, 0.5, 0.5])  # half tumor
    probs[0, :, 0, 0, 2] = torch.tensor([0.0, 0.0, 1.0])  # tumor
    probs[0, :, 0, 0, 3] = torch.tensor([0.0, 0.0, 1.0])  # tumor, but outside the liver mask
    mask = torch.tensor([1, 1, 1, 0]).reshape(1, 1, 1, 1, 4)
    ratio = soft_tumor_ratio(probs, mask)
    assert float(ratio[0]) == pytest.approx(1.5 / 3.0, abs=1e-5)
    r = torch.tensor([0.5, 0.5, 0.5])
    w = torch.tensor([0.2, 0.47, 0.6])
    assert weak_penalty(r, w, form="mse").tolist() == pytest.approx([0.09, 0.0009, 0.01])
    # interval [w-0.05, w+0.05]: zero inside, squared distance to the interval outside
    assert weak_penalty(r, w, form="interval", margin=0.05).tolist() == pytest.approx(
        [0.0625, 0.0, 0.0025]
    )


def test_one_training_patient_with_a_row_trains_without_the_weak_term(caplog):
    """One training patient: every column 'had fewer than 2 values', and the error blamed the
    clinical table."""
    frame, tlvr = clinical_cohort()
    weak = out_of_fold_weak_labels(frame, {"HCC_001": tlvr["HCC_001"]}, ["AFP", "age"])
    assert weak.labels == {} and weak.columns == []
    assert "needs at least 4" in caplog.text


def test_a_table_with_no_usable_column_says_why_per_column():
    """Each column is named once under its reason: the reason repeated for each of the 15
    default columns filled Check data's box with one paragraph."""
    frame, tlvr = clinical_cohort()
    frame["notes"] = "n/a"
    frame["extra"] = "-"
    with pytest.raises(InputError) as err:
        out_of_fold_weak_labels(frame, tlvr, ["notes", "TNM", "extra"])
    said = str(err.value)
    assert "not in the table: TNM" in said
    assert f"values for the {len(tlvr)} training patient(s) with a row: notes, extra" in said
    assert said.count("fewer than 2") == 1


def test_patient_folders_named_another_way_find_their_rows():
    """Folders renamed hcc_001 or HCC-2 trained without their weak label, unsaid."""
    frame, tlvr = clinical_cohort()
    renamed = {
        (pid.lower() if i % 3 == 0 else pid.replace("_0", "-") if i % 3 == 1 else pid): v
        for i, (pid, v) in enumerate(sorted(tlvr.items()))
    }
    assert set(renamed) != set(tlvr)
    weak = out_of_fold_weak_labels(frame, renamed, ["AFP", "age"])
    assert weak.n_without_clinical == 0 and set(weak.labels) == set(renamed)


def test_too_few_patients_for_a_fit_train_without_the_weak_term(caplog):
    """Three patients in three folds: each label was the mean of the other two, which runs
    exactly opposite to the truth (r = -1), and the weak term trained on it at full weight."""
    frame, tlvr = clinical_cohort()
    three = {p: tlvr[p] for p in sorted(tlvr)[:3]}
    weak = out_of_fold_weak_labels(frame, three, ["AFP", "age"], folds=5)
    assert weak.labels == {}
    assert any("too few for the out-of-fold regression" in m for m in weak.report)
    # four leave three to fit on in each fold: labels are given
    four = {p: tlvr[p] for p in sorted(tlvr)[:4]}
    assert len(out_of_fold_weak_labels(frame, four, ["AFP", "age"], folds=5).labels) == 4


def test_five_patients_in_two_folds_leave_two_to_fit_on_and_train_without_the_weak_term(caplog):
    """Five patients in two folds are dealt 3 and 2: the fold of three is fitted on the other
    two, under the 3 rows a fit needs. Counting the smaller fold held out (5 - 5 // 2 = 3) would
    give that fold labels that are the mean of two patients."""
    assert smallest_fold_fit(5, 2) == 2
    assert smallest_fold_fit(6, 2) == 3 and smallest_fold_fit(4, 5) == 3  # (4 folds of one)
    frame, tlvr = clinical_cohort()
    five = {p: tlvr[p] for p in sorted(tlvr)[:5]}
    with caplog.at_level("WARNING"):
        weak = out_of_fold_weak_labels(frame, five, ["AFP", "age"], folds=2)
    assert weak.labels == {} and weak.columns == []
    assert any("(2 folds leave 2 to fit on; at least 3 are needed)" in m for m in weak.report)
    assert "training without the weak term" in caplog.text
    # six in two folds of three: three to fit on, labels given
    six = {p: tlvr[p] for p in sorted(tlvr)[:6]}
    assert len(out_of_fold_weak_labels(frame, six, ["AFP", "age"], folds=2).labels) == 6


def test_a_patient_with_no_value_in_any_used_column_gets_no_weak_label():
    """'NA' in every column: the label was the medians' prediction, as if the row said so."""
    frame, tlvr = clinical_cohort()
    frame.loc["HCC_005", ["AFP", "age"]] = np.nan
    weak = out_of_fold_weak_labels(frame, tlvr, ["AFP", "age"])
    assert "HCC_005" not in weak.labels and len(weak.labels) == len(tlvr) - 1
    assert weak.n_without_clinical == 1
    assert any("no value in any of the columns used (HCC_005)" in m for m in weak.report)


def test_a_cell_no_reading_understood_is_a_warning_the_train_panel_gets(tmp_path, caplog):
    """'abc' in AFP and '4 7' as an age were read as missing with an INFO line: the command
    line said it, the Train panel (which is passed warnings) never did."""
    from napari_livertumor.training import weak

    table = tmp_path / "clinical.csv"
    table.write_text("TCIA_ID,AFP,age\nHCC_001,abc,60\nHCC_002,12,4 7\n")
    with caplog.at_level("INFO", logger="napari_livertumor"):
        frame = weak.load_clinical_frame(table)
    said = [r for r in caplog.records if "unknown value(s)" in r.getMessage()]
    assert said and all(r.levelname == "WARNING" for r in said)
    assert not any(getattr(r, "in_report", False) for r in said)  # (passed to the panel)
    assert any("HCC_001 'abc'" in r.getMessage() and str(table) in r.getMessage() for r in said)
    assert frame.loc["HCC_002", "AFP"] == 12


def test_a_table_of_only_other_patients_rows_says_whose_rows_it_holds():
    """A table holding only the validation and test patients' rows was refused with "check
    the TCIA_ID column" alone: the user, whose IDs were right, looked for a misspelling."""
    frame, tlvr = clinical_cohort()
    train = dict(list(tlvr.items())[:4])
    others = frame.drop(index=[i for i in frame.index if i in train])
    with pytest.raises(InputError) as err:
        out_of_fold_weak_labels(others, train, ["AFP", "age"])
    said = str(err.value)
    assert f"its {len(others)} row(s) (" in said and "validation or test patients'?" in said
    assert str(others.index[0]) in said
    with pytest.raises(InputError) as err:  # an empty table: the ID column, as before
        out_of_fold_weak_labels(frame.iloc[:0], train, ["AFP", "age"])
    assert "row(s)" not in str(err.value) and "check the TCIA_ID column" in str(err.value)


def test_no_usable_column_names_each_column_once():
    """Every weak column blank: Check data's box listed the 15 names three times (the columns
    asked for, the reason, the table's), the consequence 25 rows down."""
    frame, tlvr = clinical_cohort()
    for c in ("AFP", "age"):
        frame[c] = "n/a"
    with pytest.raises(InputError) as err:
        out_of_fold_weak_labels(frame, tlvr, ["AFP", "age"])
    said = str(err.value).split("; the table's columns:")[0]
    assert said.count("AFP") == 1 and said.count("age") == 1


def test_an_afp_typo_no_patient_has_does_not_set_its_weak_label(tmp_path, caplog):
    """An AFP of 1e12 (a typo) was read as a number: AFP entered the fit unscaled then (no log),
    and that patient's weak label went from 0.118 to 1.0 (log10, it would still pull far). The table reader treats it as missing
    (the label is the one the patient's AFP left blank gets), said as a warning the Train
    panel shows."""
    from napari_livertumor.training import weak

    frame, tlvr = clinical_cohort(n=12, seed=0)
    frame = frame.drop(columns="T_involvment")
    frame.loc["HCC_003", "AFP"] = 1e12
    table = tmp_path / "clinical.csv"
    frame.to_csv(table)
    with caplog.at_level("INFO", logger="napari_livertumor"):
        read = weak.load_clinical_frame(table)
    said = [r for r in caplog.records if "outside the plausible" in r.getMessage()]
    assert said and all(r.levelname == "WARNING" for r in said)
    assert "HCC_003 1e12" in said[0].getMessage()
    blank = frame.copy()
    blank.loc["HCC_003", "AFP"] = np.nan
    cols = ["AFP", "age"]
    got = out_of_fold_weak_labels(read, tlvr, cols, folds=4).labels
    expected = out_of_fold_weak_labels(blank, tlvr, cols, folds=4).labels
    assert got["HCC_003"] == pytest.approx(expected["HCC_003"]) and got["HCC_003"] < 0.5


def afp_cohort(seed, n=40):
    """Patients like HCC-TACE-Seg's: most tumors under a tenth of the liver, AFP (ng/mL) with
    a long right tail that follows the tumor burden loosely (log10 AFP ~ N(1.2 + 4 TLVR, 0.5))."""
    rng = np.random.default_rng(seed)
    tlvr = np.clip(rng.beta(0.7, 9.0, n), 0.0, 0.4)
    ids = [f"HCC_{i:03d}" for i in range(1, n + 1)]
    frame = pd.DataFrame(
        {
            "AFP": np.round(10 ** rng.normal(1.2 + 4 * tlvr, 0.5), 1),
            "T_involvment": (tlvr + rng.normal(0, 0.08, n) > 0.25).astype(float),
            "age": rng.integers(40, 85, n).astype(float),
        },
        index=pd.Index(ids, name="TCIA_ID"),
    )
    return frame, dict(zip(ids, tlvr, strict=True))


@pytest.mark.parametrize("seed", range(10))
def test_one_patients_extreme_afp_does_not_set_the_other_patients_labels(seed):
    """AFP entered the fit as it is: one patient's 50 000 ng/mL (the others' up to a few
    thousand) made the AFP column that patient alone once standardised, and moved other
    patients' weak labels by up to 0.46 (TLVR units). On a log scale (log10(AFP + 1)) no other
    label moves by more than 0.1 (twice the interval penalty's margin)."""
    frame, tlvr = afp_cohort(seed)
    cols = ["AFP", "T_involvment", "age"]
    low = min(tlvr, key=tlvr.get)  # a small tumor, and an AFP no other patient has
    high = frame.copy()
    high.loc[low, "AFP"] = 50_000.0
    before = out_of_fold_weak_labels(frame, tlvr, cols).labels
    after = out_of_fold_weak_labels(high, tlvr, cols).labels
    moved = max(abs(after[p] - before[p]) for p in tlvr if p != low)
    assert moved < 0.1


def test_afp_enters_as_log10_of_afp_plus_one_before_the_folds_statistics(caplog):
    """The transform is applied to the values alone: imputation and standardisation still come
    from the fitting folds (the labels are those of a table that held log10(AFP + 1))."""
    frame, tlvr = clinical_cohort()
    cols = ["AFP", "T_involvment", "age"]
    with caplog.at_level("INFO", logger="napari_livertumor"):
        weak = out_of_fold_weak_labels(frame, tlvr, cols, folds=5, seed=1)
    logged = frame.copy()
    logged["AFP"] = np.log10(frame["AFP"] + 1)
    as_is = out_of_fold_weak_labels(logged, tlvr, cols, folds=5, seed=1, log_columns=())
    assert weak.labels == pytest.approx(as_is.labels, abs=1e-12)
    # said and recorded: which columns, in which form
    assert weak.log_columns == ["AFP"] and weak.summary()["log10_columns"] == ["AFP"]
    said = [m for m in weak.report if m.startswith("regressed on 3 column(s)")]
    assert said == ["regressed on 3 column(s): AFP (log10), T_involvment, age; (log10): "
                    "log10(value + 1)"]  # fmt: skip
    assert "weak supervision: regressed on 3 column(s): AFP (log10)" in caplog.text
    # () : every column as it is, as runs before 7 Dec 2026
    plain = out_of_fold_weak_labels(frame, tlvr, cols, folds=5, seed=1, log_columns=())
    assert plain.log_columns == [] and "(log10)" not in plain.report[-1]
    assert plain.labels != pytest.approx(weak.labels)
    # a header written 'afp' is the AFP column, log-scaled as well
    lower = out_of_fold_weak_labels(frame.rename(columns={"AFP": "afp"}), tlvr, cols, seed=1)
    assert lower.log_columns == ["afp"] and lower.labels == pytest.approx(weak.labels)


def test_a_negative_value_in_a_log_scaled_column_is_read_as_missing_and_said():
    frame, tlvr = clinical_cohort()
    frame.loc["HCC_002", "AFP"] = -5.0
    weak = out_of_fold_weak_labels(frame, tlvr, ["AFP", "age"])
    assert any("'AFP' is log-scaled, and 1 value(s) are negative (HCC_002)" in m
               for m in weak.report)  # fmt: skip
    blank = frame.copy()
    blank.loc["HCC_002", "AFP"] = np.nan
    assert weak.labels == pytest.approx(out_of_fold_weak_labels(blank, tlvr, ["AFP", "age"]).labels)


def test_the_recipe_records_the_log_columns_and_a_run_recorded_before_keeps_afp_as_it_is(
    tmp_path,
):
    """A run or model recorded before ``weak_log_columns`` (7 Dec 2026) entered AFP as it is:
    `train --resume` (with or without the recipe file), the Train panel's Resume and a
    fine-tune from the model's own recipe go on so; a new run takes log10 AFP."""
    import argparse
    import json

    from napari_livertumor._widgets.train import _saved_config
    from napari_livertumor.commands.train import add_arguments, build_configs
    from napari_livertumor.errors import SettingsError
    from napari_livertumor.models import default_model_dir
    from napari_livertumor.training.config import make_config, recipe_from_model
    from napari_livertumor.training.loop import saved_training_config

    cfg = make_config("tumor", data=".")
    assert cfg.weak_log_columns == ("AFP",) and cfg.to_dict()["weak_log_columns"] == ["AFP"]
    with pytest.raises(SettingsError, match="weak_log_columns must be a list"):
        make_config("tumor", data=".", weak_log_columns="AFP")

    last = tmp_path / "out" / "tumor" / "last"
    last.mkdir(parents=True)
    saved = {"stage": "tumor", "weak_lambda": 0.5}
    (last / "metadata.json").write_text(json.dumps({"training": {"config": saved}}))
    assert saved_training_config(last.parent)["weak_log_columns"] == []
    assert _saved_config(last.parent)["weak_log_columns"] == []
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    recipe = tmp_path / "recipe.json"

    def logs(*extra, tumor=None):
        if tumor is not None:
            recipe.write_text(json.dumps({"tumor": tumor}))
        argv = ["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--stage", "tumor"]
        (cfg,) = build_configs(parser.parse_args([*argv, *extra]))
        return cfg.weak_log_columns

    assert logs("--resume") == ()
    assert logs("--resume", "--config", str(recipe), tumor={"weak_lambda": 0.5}) == ()
    asked = {"weak_lambda": 0.5, "weak_log_columns": ["AFP"]}
    assert logs("--resume", "--config", str(recipe), tumor=asked) == ("AFP",)  # said so
    assert logs() == ("AFP",)  # a new run: the default
    saved["weak_log_columns"] = ["AFP"]
    (last / "metadata.json").write_text(json.dumps({"training": {"config": saved}}))
    assert logs("--resume") == ("AFP",)
    # the shipped tumor model trained with the weak term before the field existed
    shipped = recipe_from_model(default_model_dir("tumor"), "tumor")["tumor"]
    assert shipped["weak_log_columns"] == []
