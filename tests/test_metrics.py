"""Evaluation metrics agree with values computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_livertumor.training.metrics import (
    binary_scores,
    case_scores,
    format_table,
    hcc_to_output,
    longest_diameter_mm,
    size_stratum,
    summarize,
)


def test_binary_scores_by_hand():
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    pred = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0], bool)
    # TP 2, FP 1, FN 1, TN 6
    s = binary_scores(pred, truth)
    assert s["accuracy"] == pytest.approx(8 / 10)
    assert s["dice"] == pytest.approx(4 / 6)
    assert s["sensitivity"] == pytest.approx(2 / 3)
    assert s["iou"] == pytest.approx(2 / 4)


def test_both_empty_is_undefined_not_perfect():
    s = binary_scores(np.zeros(5, bool), np.zeros(5, bool))
    assert s["accuracy"] == 1.0
    assert math.isnan(s["dice"]) and math.isnan(s["iou"]) and math.isnan(s["sensitivity"])


def test_case_scores_liver_includes_tumor():
    truth = np.array([[[0, 1, 1, 2]]])
    pred = np.array([[[0, 1, 2, 2]]])
    s = case_scores(pred, truth)
    assert s["liver_dice"] == 1.0  # liver = labels >= 1 in both
    assert s["tumor_dice"] == pytest.approx(2 / 3)  # TP 1, FP 1, FN 0
    assert s["tumor_accuracy"] == pytest.approx(3 / 4)


def test_hcc_classes_map_to_outputs():
    hcc = np.array([0, 1, 2, 3, 4])
    assert hcc_to_output(hcc).tolist() == [0, 1, 2, 1, 0]


def test_longest_diameter_of_a_bar_and_strata():
    mask = np.zeros((3, 5, 30), bool)
    mask[1, 2, 5:25] = True  # 20 voxels of 4 mm along x → 80 mm
    assert longest_diameter_mm(mask, (1.0, 1.0, 4.0)) == pytest.approx(80.0)
    assert size_stratum(80.0) == "<10cm"
    assert size_stratum(120.0) == ">=10cm"
    assert size_stratum(0.0) == "none"
    # only the largest lesion counts
    mask[0, 0, 0] = True
    assert longest_diameter_mm(mask, (1.0, 1.0, 4.0)) == pytest.approx(80.0)


def test_summary_leaves_undefined_scores_out_and_prints_the_original_beside_ours():
    rows = [
        {**case_scores(np.array([[[1, 2]]]), np.array([[[1, 2]]])), "tumor_stratum": "<10cm"},
        {**case_scores(np.array([[[1, 1]]]), np.array([[[1, 1]]])), "tumor_stratum": "none"},
    ]
    summary = summarize(rows)
    assert summary["table"]["tumor"]["dice"] == 1.0  # the tumor-free case is not a 0 or 1
    assert summary["tumor_dice_by_size"]["<10cm"] == {"n": 1, "tumor_dice": 1.0}
    text = format_table(summary)
    assert "0.942" in text and "0.570" in text and "0.841" in text
