"""Evaluation metrics agree with values computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_livertumor.training.metrics import (
    LARGE_TUMOR_MM,
    binary_scores,
    case_scores,
    case_surface_scores,
    conspicuity_columns,
    conspicuity_summary,
    format_table,
    hcc_to_output,
    lesion_conspicuity,
    lesion_detection,
    lesion_summary,
    longest_diameter_mm,
    size_stratum,
    summarize,
    surface_scores,
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


def test_sensitivity_is_the_share_of_the_truth_found_not_of_the_prediction():
    """Sensitivity is TP / (TP + FN): with as many false positives as false negatives the hand
    case above cannot tell it from TP / (TP + FP), the precision (a mutation audit's find)."""
    truth = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    pred = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0], bool)
    # TP 3, FP 1, FN 2, TN 4
    s = binary_scores(pred, truth)
    assert s["sensitivity"] == pytest.approx(3 / 5)
    assert s["accuracy"] == pytest.approx(7 / 10)
    assert s["dice"] == pytest.approx(6 / 9)
    assert s["iou"] == pytest.approx(3 / 6)
    # nothing predicted: none of the truth found (0), not undefined
    assert binary_scores(np.zeros(10, bool), truth)["sensitivity"] == 0.0
    # per class of a case, the same: the tumor's TP 1, FP 0, FN 2
    c = case_scores(np.array([[[0, 1, 2, 1, 1]]]), np.array([[[0, 1, 2, 2, 2]]]))
    assert c["tumor_sensitivity"] == pytest.approx(1 / 3)
    assert c["liver_sensitivity"] == 1.0


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


def test_a_lesion_of_exactly_10_cm_is_in_the_large_stratum():
    """The strata are ">=10cm" and "<10cm": a lesion of exactly 100 mm belongs to the first."""
    assert LARGE_TUMOR_MM == 100.0
    assert size_stratum(100.0) == ">=10cm"
    assert size_stratum(np.nextafter(100.0, 0.0)) == "<10cm"
    mask = np.zeros((3, 5, 30), bool)
    mask[1, 2, 2:27] = True  # 25 voxels of 4 mm along x: 100 mm
    assert longest_diameter_mm(mask, (1.0, 1.0, 4.0)) == 100.0
    assert size_stratum(longest_diameter_mm(mask, (1.0, 1.0, 4.0))) == ">=10cm"


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


def test_lesions_are_counted_found_missed_and_false():
    truth = np.zeros((10, 40, 40), bool)
    pred = np.zeros_like(truth)
    truth[2:8, 2:12, 2:12] = True  # a mass, half predicted: found
    pred[2:8, 2:12, 2:7] = True
    truth[2:4, 20:24, 20:24] = True  # a satellite with 1 of 32 voxels predicted: missed
    pred[2, 20, 20] = True
    pred[2:6, 30:36, 30:36] = True  # a predicted lesion on no tumor: false
    truth[9, 39, 39] = True  # a one-voxel speck (under 0.1 mL): not counted
    got = lesion_detection(pred, truth, (2.0, 2.0, 2.0))
    # the speck at 8 uL is below 0.1 mL; the single predicted voxel touching the satellite
    # is also below it, so it is neither a predicted nor a false lesion
    assert got == {"lesions_true": 2, "lesions_found": 1, "lesions_pred": 2, "lesions_false": 1}
    # lower thresholds: the satellite counts as found by one voxel only if 1/32 >= min_overlap
    loose = lesion_detection(pred, truth, (2.0, 2.0, 2.0), min_ml=0.0, min_overlap=0.01)
    assert loose == {"lesions_true": 3, "lesions_found": 2, "lesions_pred": 3, "lesions_false": 1}
    with pytest.raises(ValueError, match="shape"):
        lesion_detection(pred, truth[:5], (1, 1, 1))

    rows = [got, {"lesions_true": 0, "lesions_found": 0, "lesions_pred": 1, "lesions_false": 1}]
    summ = lesion_summary(rows)
    assert summ["lesion_recall"] == 0.5 and summ["false_lesions_per_case"] == 1.0
    assert summ["cases_without_tumor_with_false_lesion"] == 1
    assert lesion_summary([])["lesion_recall"] is None
    text = format_table(summarize([{**case_scores(np.ones((1, 1, 2)), np.ones((1, 1, 2))), **got}]))
    assert "found 1 of 2 (50%)" in text


def test_a_lesion_overlapped_by_exactly_the_minimum_share_is_found_and_not_false():
    """At least ``min_overlap`` (10 %) of a lesion's voxels make it found (and a predicted one
    not false), exactly 10 % included."""
    truth = np.zeros((3, 14, 30), bool)
    pred = np.zeros_like(truth)
    truth[1, 2:12, 2:12] = True  # 100 voxels
    pred[1, 2:12, 11:21] = True  # 100 voxels, 10 of them (one column) on the true lesion
    assert (truth & pred).sum() == 10
    counts = lesion_detection(pred, truth, (1.0, 1.0, 1.0), min_ml=0.01, min_overlap=0.1)
    assert counts == {"lesions_true": 1, "lesions_found": 1, "lesions_pred": 1, "lesions_false": 0}
    # one voxel less of overlap: under 10 % either way
    pred[1, 2, 11] = False
    counts = lesion_detection(pred, truth, (1.0, 1.0, 1.0), min_ml=0.01, min_overlap=0.1)
    assert counts["lesions_found"] == 0 and counts["lesions_false"] == 1


def test_the_stratum_diameter_of_a_flat_lesion_is_exact_and_the_lesion_lists():
    """A one-slice lesion has no 3D hull: every boundary voxel was kept and, above 3000, a
    random sample measured: a lesion near 10 cm could fall in either size group. The lesion
    list measures it the same way (it measured centre to centre, a voxel shorter)."""
    from napari_livertumor.stats import longest_diameter_mm as lesion_list

    mask = np.zeros((3, 160, 160), bool)
    yy, xx = np.mgrid[:160, :160]
    mask[1] = (yy - 80) ** 2 + (xx - 80) ** 2 <= 71**2  # 143 voxels across at 0.7 mm
    spacing = (2.0, 0.7, 0.7)
    # 143 voxels edge to edge along an axis; along a diagonal a pixel is √2 wide: the widest
    d = longest_diameter_mm(mask, spacing)
    assert 143 * 0.7 - 1e-6 <= d <= (142 + np.sqrt(2)) * 0.7 + 1e-6
    assert lesion_list(mask, spacing) == d


def test_the_10cm_split_measures_through_a_tilted_grid():
    """On a gantry-tilted (sheared) grid the spacings alone lengthened an 84-mm ball to 108 mm
    at 25 degrees, and it changed size group."""
    from napari_livertumor.io.volume import CTVolume

    spacing = (2.5, 0.8, 0.8)
    zz, yy, xx = np.indices((60, 140, 140)).astype(float)
    straight = ((zz - 30) * 2.5) ** 2 + ((yy - 70) * 0.8) ** 2 + ((xx - 70) * 0.8) ** 2 <= 42**2
    base = longest_diameter_mm(straight, spacing)
    t = np.radians(25)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[1, 2] = 2.5 * np.tan(t)  # each slice shifted along y: the tilted gantry
    vol = CTVolume.from_affine(np.zeros((140, 140, 60), np.int16), affine)
    # the same ball in world mm, voxelised on the tilted grid
    y_world = yy * 0.8 + zz * 2.5 * np.tan(t)
    tilted = ((zz - 30) * 2.5) ** 2 + (y_world - 70 * 0.8 - 30 * 2.5 * np.tan(t)) ** 2 + (
        (xx - 70) * 0.8
    ) ** 2 <= 42**2
    assert longest_diameter_mm(tilted, vol.spacing) > base + 10  # the spacings alone
    assert longest_diameter_mm(tilted, vol.spacing, vol.affine_lps) == pytest.approx(base, abs=2.5)


def test_lesion_conspicuity_measures_contrast_against_the_liver_around_each_lesion():
    """Two lesions in a noisy liver: a dark one (contrast -40 HU, noise SD 10: CNR about 4) and
    an iso one (+2 HU: CNR about 0.2); the ring is the liver only, not air or the other lesion."""
    rng = np.random.default_rng(0)
    shape = (20, 60, 60)
    labels = np.zeros(shape, np.uint8)
    labels[:, 5:55, 5:55] = 1
    ct = rng.normal(60.0, 10.0, shape)
    ct[labels == 0] = -1000.0  # air beside the liver must not enter the ring
    z, y, x = np.ogrid[:20, :60, :60]
    dark = ((z - 10) / 4) ** 2 + ((y - 20) / 8) ** 2 + ((x - 20) / 8) ** 2 <= 1
    iso = ((z - 10) / 3) ** 2 + ((y - 42) / 5) ** 2 + ((x - 40) / 5) ** 2 <= 1
    labels[dark | iso] = 2
    ct[dark] -= 40.0
    ct[iso] += 2.0
    pred = dark.copy()
    pred[iso] = False
    pred[10, 42, 40] = True  # one voxel of the iso lesion: not found
    rows = lesion_conspicuity(ct, labels, (2.0, 1.0, 1.0), pred)
    assert [r["ml"] for r in rows] == sorted((r["ml"] for r in rows), reverse=True)
    big, small = rows
    assert big["contrast_hu"] == pytest.approx(-40, abs=3)
    assert big["sd_hu"] == pytest.approx(10, abs=1)
    assert big["cnr"] == pytest.approx(4, abs=0.5)
    assert big["covered"] == 1.0
    assert small["cnr"] < 0.6 and small["covered"] < 0.1
    bands = conspicuity_summary(rows)
    assert [(b["lesions"], b["found"]) for b in bands] == [(1, 0), (0, 0), (1, 1)]
    # no liver around a lesion: no ring, no CNR (and left out of the bands)
    alone = np.zeros(shape, np.uint8)
    alone[dark] = 2
    (row,) = lesion_conspicuity(ct, alone, (2.0, 1.0, 1.0))
    assert row["cnr"] is None and "covered" not in row
    assert sum(b["lesions"] for b in conspicuity_summary([row])) == 0
    assert lesion_conspicuity(ct, np.zeros(shape, np.uint8), (1, 1, 1)) == []
    with pytest.raises(ValueError, match="shape"):
        lesion_conspicuity(ct[:5], labels, (1, 1, 1))


def test_conspicuity_columns_are_pooled_per_band_and_printed():
    one = conspicuity_columns([{"ml": 9, "cnr": 1.6, "covered": 0.9}, {"ml": 1, "cnr": 0.3}])
    assert one["tumor_main_cnr"] == 1.6
    assert one["lesions_cnr_0_0.5"] == 1 and one["lesions_cnr_0_0.5_found"] == 0
    assert one["lesions_cnr_1_up"] == 1 and one["lesions_cnr_1_up_found"] == 1
    none = conspicuity_columns([])
    assert none["tumor_main_cnr"] is None and none["lesions_cnr_0.5_1"] == 0
    two = conspicuity_columns([{"ml": 4, "cnr": 0.2, "covered": 0.5}])
    base = case_scores(np.array([[[1, 2]]]), np.array([[[1, 2]]]))
    rows = [{**base, **one}, {**base, **none}, {**base, **two}]
    summary = summarize(rows)
    assert [(b["lesions"], b["found"]) for b in summary["lesions_by_cnr"]] == [
        (2, 1),
        (0, 0),
        (1, 1),
    ]
    assert "CNR < 0.5: 1/2, 0.5–1: 0/0, ≥ 1: 1/1" in format_table(summary)
    assert "without one" not in format_table(summary)
    # a true lesion too small for a CNR is counted, and said, not silently left out
    counts = {"lesions_true": 2, "lesions_found": 1, "lesions_pred": 1, "lesions_false": 0}
    rows[0].update(counts)
    rows[1].update(counts, lesions_true=0)
    rows[2].update(counts, lesions_true=2)
    assert "; 1 without one (under 10 voxels" in format_table(summarize(rows))
    # rows from before these columns existed: no breakdown rather than a wrong one
    assert "lesions_by_cnr" not in summarize([base])


def test_surface_scores_by_hand_on_two_voxels():
    """Two one-voxel masks 4 voxels apart along x at 0.5 mm: every boundary distance is 2 mm."""
    a = np.zeros((3, 5, 9), bool)
    b = np.zeros_like(a)
    a[1, 2, 2] = True
    b[1, 2, 6] = True
    s = surface_scores(a, b, (3.0, 1.0, 0.5))
    assert s["hd95_mm"] == pytest.approx(2.0) and s["assd_mm"] == pytest.approx(2.0)
    assert s["nsd"] == 1.0  # within the 2 mm tolerance
    assert surface_scores(a, b, (3.0, 1.0, 0.5), tolerance_mm=1.5)["nsd"] == 0.0
    # the spacing is the one of each axis (z, y, x): along z the same gap is 4 * 3 mm
    c = np.zeros((9, 3, 3), bool)
    d = np.zeros_like(c)
    c[2, 1, 1] = d[6, 1, 1] = True
    assert surface_scores(c, d, (3.0, 1.0, 0.5))["hd95_mm"] == pytest.approx(12.0)
    same = surface_scores(a, a, (3.0, 1.0, 0.5))
    assert same == {"hd95_mm": 0.0, "assd_mm": 0.0, "nsd": 1.0}


def test_surface_scores_agree_with_monai_and_say_empty_masks():
    torch = pytest.importorskip("torch")
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    z, y, x = np.mgrid[:24, :40, :44]
    a = ((z - 12) ** 2 / 60 + (y - 19) ** 2 / 150 + (x - 21) ** 2 / 120) < 1
    b = ((z - 13) ** 2 / 55 + (y - 21) ** 2 / 140 + (x - 20) ** 2 / 140) < 1
    b[2:4, 3:6, 3:6] = True  # a stray island far away: the HD95 sees it, the NSD a little
    spacing = (2.5, 0.8, 0.7)
    ours = surface_scores(a, b, spacing)

    def onehot(m):
        return torch.from_numpy(np.stack([~m, m])[None].astype(np.float32))

    pa, pb = onehot(a), onehot(b)
    hd95 = float(compute_hausdorff_distance(pa, pb, percentile=95, spacing=spacing))
    assd = float(compute_average_surface_distance(pa, pb, symmetric=True, spacing=spacing))
    nsd = float(compute_surface_dice(pa, pb, class_thresholds=[2.0], spacing=spacing))
    assert ours["hd95_mm"] == pytest.approx(hd95, rel=1e-5)
    assert ours["assd_mm"] == pytest.approx(assd, rel=1e-5)
    assert ours["nsd"] == pytest.approx(nsd, rel=1e-5)
    assert 0 < ours["nsd"] < 1 and ours["hd95_mm"] > ours["assd_mm"] > 0

    empty = np.zeros_like(a)
    assert all(math.isnan(v) for v in surface_scores(empty, empty, spacing).values())
    one = surface_scores(a, empty, spacing)  # a false tumor in a tumor-free liver
    assert math.isnan(one["hd95_mm"]) and math.isnan(one["assd_mm"]) and one["nsd"] == 0.0
    with pytest.raises(ValueError, match="spacing must be 3 positive numbers"):
        surface_scores(a, b, (2.5, 0.0, 0.7))


def test_surface_summary_gives_means_medians_and_how_many_cases():
    pred = np.zeros((6, 12, 12), np.uint8)
    truth = np.zeros_like(pred)
    pred[1:5, 2:10, 2:10] = 1
    truth[1:5, 2:10, 3:11] = 1
    pred[2:4, 4:6, 4:6] = 2  # tumor in the first case only, none in the second's truth
    truth[2:4, 4:6, 4:6] = 2
    spacing = (2.5, 1.0, 1.0)
    rows = [
        {**case_scores(pred, truth), **case_surface_scores(pred, truth, spacing)},
        {
            **case_scores(pred, np.minimum(truth, 1)),
            **case_surface_scores(pred, np.minimum(truth, 1), spacing),
        },
    ]
    assert rows[0]["tumor_hd95_mm"] == 0.0 and math.isnan(rows[1]["tumor_hd95_mm"])
    assert rows[1]["tumor_nsd"] == 0.0  # a false tumor: no boundary agrees
    assert rows[0]["liver_hd95_mm"] == pytest.approx(1.0)  # one column over, at 1 mm
    with pytest.raises(ValueError, match="hcc_to_output"):
        case_surface_scores(pred, truth + 2, spacing)  # HCC classes are mapped first
    summary = summarize(rows)
    surface = summary["surface"]
    assert surface["tumor"]["hd95_mm"] == {"mean": 0.0, "median": 0.0, "n": 1}
    assert surface["tumor"]["nsd"] == {"mean": 0.5, "median": 0.5, "n": 2}
    text = format_table(summary)
    assert "Boundaries, mean (median) per patient:" in text
    assert (
        "(tumor HD95, ASSD: over 1 of the 2 patients; undefined where either mask has no tumor)"
        in text
    )
    assert "liver NSD" not in text  # defined on both
    # rows of an older evaluation (no boundary columns): no section
    assert "surface" not in summarize(
        [{k: v for k, v in rows[0].items() if "_mm" not in k and "nsd" not in k}]
    )


def test_summary_gives_medians_intervals_pooled_dice_and_volume_errors():
    def row(dice, overlap, true_ml, pred_ml):
        return {"liver_dice": dice, "tumor_dice": dice / 2, "liver_ml_overlap": overlap,
                "liver_ml_true": true_ml, "liver_ml_pred": pred_ml,
                "liver_volume_error_pct": 100 * (pred_ml - true_ml) / true_ml,
                "tumor_ml_overlap": 0.0, "tumor_ml_true": 0.0, "tumor_ml_pred": None,
                "tumor_volume_error_pct": None}  # fmt: skip

    rows = [
        row(0.9, 900.0, 1000.0, 1000.0),
        row(0.8, 80.0, 100.0, 100.0),
        row(0.6, 6.0, 10.0, 10.0),
    ]
    s = summarize(rows)
    assert s["table_median"]["liver"]["dice"] == pytest.approx(0.8)
    lo, hi = s["dice_ci95"]["liver"]
    assert 0.6 <= lo < np.mean([0.9, 0.8, 0.6]) < hi <= 0.9
    # pooled: 2 * 986 / (1110 + 1110), dominated by the large liver
    assert s["dice_global"]["liver"] == pytest.approx(2 * 986 / 2220)
    assert s["dice_global"]["tumor"] is None  # no tumor anywhere
    assert s["volume_error_pct"]["liver"] == {"mean": 0.0, "median": 0.0, "n": 3}
    assert s["volume_error_pct"]["tumor"]["n"] == 0
    text = format_table(s)
    assert (
        "Dice pooled over all patients (their mL; LiTS's global Dice pools voxels): liver 0.888"
        in text
    )
    assert "liver median 0.800, mean's 95 % interval" in text
    assert "Volume error, (predicted - true) / true: liver median +0.0 %" in text
    # the same draws run to run
    assert summarize(rows)["dice_ci95"] == s["dice_ci95"]


def test_lesion_table_gives_each_true_and_false_lesion_its_own_row():
    from napari_livertumor.training.metrics import lesion_table

    truth = np.zeros((10, 40, 40), np.uint8)
    truth[1:9, 2:38, 2:38] = 1  # liver
    truth[2:6, 5:15, 5:15] = 2  # true lesion A, 4*10*10 = 400 voxels
    truth[2:4, 25:29, 25:29] = 2  # true lesion B, 32 voxels: missed
    ct = np.where(truth == 2, 20, 60).astype(np.int16)
    pred = np.zeros(truth.shape, bool)
    pred[2:6, 5:15, 5:10] = True  # half of A
    pred[7:9, 30:34, 5:9] = True  # a false lesion, 32 voxels
    rows = lesion_table(ct, truth, pred, (1.0, 1.0, 1.0), min_ml=0.01)
    assert [r["lesion"] for r in rows] == ["true 1", "true 2", "false 1"]
    a, b, f = rows
    assert (a["ml"], a["covered"], a["found"]) == (0.4, 0.5, True)
    assert a["dice"] == pytest.approx(2 * 200 / (400 + 200), abs=1e-4)
    assert a["slice"] == 4 and a["cnr"] is not None and a["contrast_hu"] == pytest.approx(-40)
    assert (b["found"], b["dice"], b["covered"]) == (False, 0.0, 0.0)
    assert f["kind"] == "false" and f["ml"] == 0.032 and f["slice"] == 8
    # each on its centroid's slice, halves up (slices 2-5: 4; 2-3: 3; 7-8: 8), as the stats
    # name them: lesions.csv took the middle of the extent rounded down, the stats Python's
    # round (halves to even), so one lesion could be a slice apart between the two
    from napari_livertumor.stats import compute_stats

    assert b["slice"] == 3

    def named(mask):
        lesions = compute_stats(mask.astype(np.uint8) * 2, (1, 1, 1))["lesions"]
        return {tuple(les["slice_range"]): les["slice"] for les in lesions}

    assert named(truth == 2) == {(2, 5): a["slice"], (2, 3): b["slice"]}
    assert named(pred)[(7, 8)] == f["slice"]
    assert f["diameter_mm"] > 0 and "dice" not in f
    # the counts agree with lesion_detection's
    counts = lesion_detection(pred, truth == 2, (1.0, 1.0, 1.0), min_ml=0.01)
    assert counts["lesions_true"] == 2 and counts["lesions_false"] == 1


def test_lesions_are_counted_found_per_size_band():
    from napari_livertumor.training.metrics import lesions_by_size

    rows = [{"kind": "true", "diameter_mm": 5, "found": False},
            {"kind": "true", "diameter_mm": 10, "found": True},
            {"kind": "true", "diameter_mm": 45, "found": True},
            {"kind": "false", "diameter_mm": 9}]  # fmt: skip
    bands = lesions_by_size(rows)
    assert [(b["mm_from"], b["mm_to"], b["lesions"], b["found"]) for b in bands] == [
        (0.0, 10.0, 1, 0), (10.0, 20.0, 1, 1), (20.0, None, 1, 1)
    ]  # fmt: skip
    summary = summarize([])
    summary["lesions_by_size"] = bands
    summary["lesions"] = {"lesion_recall": 2 / 3, "lesions_found": 2, "lesions_true": 3,
                          "false_lesions_per_case": 1.0, "cases_without_tumor": 0,
                          "cases_without_tumor_with_false_lesion": 0}  # fmt: skip
    assert (
        "Lesions found by longest diameter: < 10 mm: 0/1, 10–20 mm: 1/1, 20+ mm: 1/1"
        in format_table(summary)
    )


# --- scores computed in the masks' box (crop_box) equal those of the whole volume ----------

SPACING = (2.5, 0.8, 0.7)  # anisotropic, as CT's


def _smooth_mask(rng, shape, box, threshold):
    """Blobs of smoothed noise inside ``box`` (many components, small ones at its edges)."""
    from scipy import ndimage as ndi

    out = np.zeros(shape, bool)
    noise = ndi.gaussian_filter(rng.random(shape), 1.2)
    out[box] = noise[box] > threshold
    return out


def _scoring_cases():
    """``(name, pred 0/1/2, truth 0/1/2)``: random ones, ones touching the volume's faces and
    corners, lesions touching the box's edge diagonally, empty ones."""
    shape = (18, 40, 36)
    cases = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        lo = rng.integers(1, 6, 3)
        box = tuple(slice(int(a), int(a) + n) for a, n in zip(lo, (10, 26, 22), strict=True))
        liver_t = _smooth_mask(rng, shape, box, 0.47)
        liver_p = _smooth_mask(rng, shape, box, 0.47) | np.roll(liver_t, 1, axis=2)
        tumor_t = _smooth_mask(rng, shape, box, 0.53) & liver_t
        tumor_p = _smooth_mask(rng, shape, box, 0.53) & liver_p
        truth = liver_t.astype(np.uint8) + tumor_t
        pred = liver_p.astype(np.uint8) + tumor_p
        cases.append((f"random{seed}", pred, truth))
    # touching every face of the volume: the box reaches the border, a margin there is none
    truth = np.zeros(shape, np.uint8)
    truth[0:10, 0:25, 5:36] = 1
    truth[0:3, 0:4, 30:36] = 2  # a lesion in the volume's corner
    truth[6:9, 10:14, 10:14] = 2
    pred = np.zeros(shape, np.uint8)
    pred[4:18, 8:40, 0:30] = 1
    pred[15:18, 36:40, 0:3] = 2  # in the opposite corner: a false lesion
    pred[6:9, 11:15, 10:13] = 2
    pred[14, 20, 29] = 2  # one voxel on the box's edge
    cases.append(("border", pred, truth))
    # lesions meeting only at a corner on the box's edge (26-connected: one lesion)
    truth = np.zeros(shape, np.uint8)
    truth[4:12, 6:30, 6:30] = 1
    truth[4:6, 6:8, 6:8] = 2
    truth[6:8, 8:10, 8:10] = 2
    pred = truth.copy()
    pred[11, 29, 29] = 2
    pred[10, 28, 28] = 2
    cases.append(("diagonal", pred, truth))
    empty = np.zeros(shape, np.uint8)
    one = cases[0][1]
    cases += [("empty", empty, empty), ("pred only", one, empty), ("truth only", empty, one)]
    return cases


CASES = _scoring_cases()


def _scored(pred, truth, crop):
    """Everything scored from the two maps, as text: equal text, bit-identical floats."""
    from napari_livertumor.training.metrics import lesion_table

    ct = np.random.default_rng(0).normal(60, 15, pred.shape).astype(np.float32)
    ct[truth == 2] -= 30
    out = {
        "case": case_scores(pred, truth, crop=crop),
        "surface": case_surface_scores(pred, truth, SPACING, crop=crop),
        "surface_tumor": surface_scores(pred == 2, truth == 2, SPACING, crop=crop),
        "lesions": [
            lesion_detection(pred == 2, truth == 2, SPACING, min_ml=m, crop=crop)
            for m in (0.0, 0.01, 0.1)
        ],
        "table": lesion_table(ct, truth, pred == 2, SPACING, min_ml=0.0, crop=crop),
        "diameter": longest_diameter_mm(truth == 2, SPACING, crop=crop),
    }
    return repr(out)


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_scores_in_the_masks_box_are_those_of_the_whole_volume(name):
    _, pred, truth = next(c for c in CASES if c[0] == name)
    assert _scored(pred, truth, crop=True) == _scored(pred, truth, crop=False)


def test_the_cases_tell_a_box_one_voxel_short(monkeypatch):
    """The comparison above notices a box cut into the masks (a margin or end off by one)."""
    from napari_livertumor.training import metrics

    crop_box = metrics.crop_box

    def short(*masks, margin=1):
        box = crop_box(*masks, margin=margin)
        return tuple(slice(s.start, max(s.start, s.stop - margin - 1)) for s in box)

    expected = {name: _scored(p, t, crop=False) for name, p, t in CASES}
    monkeypatch.setattr(metrics, "crop_box", short)
    differ = [name for name, p, t in CASES if _scored(p, t, crop=True) != expected[name]]
    assert differ == [c[0] for c in CASES if c[0] != "empty"]


def test_crop_box_is_the_bounding_box_with_its_margin_inside_the_volume():
    from napari_livertumor.training.metrics import crop_box

    a = np.zeros((6, 7, 8), np.int16)
    b = np.zeros(a.shape, bool)
    a[2, 3, 4] = 2
    b[3, 1, 7] = True  # on the last x: the margin stops at the border
    assert crop_box(a, b, margin=0) == (slice(2, 4), slice(1, 4), slice(4, 8))
    assert crop_box(a, b) == (slice(1, 5), slice(0, 5), slice(3, 8))
    a[0, 6, 0] = 5  # a class left out by its values
    assert crop_box((a, (1, 2)), b, margin=0) == (slice(2, 4), slice(1, 4), slice(4, 8))
    assert crop_box((a, (5,)), margin=2) == (slice(0, 3), slice(4, 7), slice(0, 3))
    empty = crop_box(np.zeros(a.shape), (a, (9,)))
    assert empty == (slice(0, 0),) * 3 and a[empty].size == 0
    with pytest.raises(ValueError, match="different shapes"):
        crop_box(a, b[1:])
    rng = np.random.default_rng(1)
    for dtype in (np.uint8, np.int8, np.int32, np.uint16, np.float32):
        m = rng.integers(0, 6, (40, 9, 11)).astype(dtype)
        m[m < 5] = 0  # a few voxels of 5
        for values in ((5,), (1, 2, 3), (4, 5), (0,)):
            where = np.argwhere(np.isin(m, values))
            box = crop_box((m, values), margin=1)
            if not where.size:
                assert box == (slice(0, 0),) * 3
                continue
            want = tuple(
                slice(max(0, lo - 1), min(n, hi + 2))
                for lo, hi, n in zip(where.min(0), where.max(0), m.shape, strict=True)
            )
            assert box == want, (dtype, values)


def test_in_classes_is_isin():
    from napari_livertumor.training.metrics import in_classes

    for dtype in (np.uint8, np.int8, np.int16, ">i2", np.uint16, np.int32, np.int64, np.float32):
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
        ends = [] if info is None else [info.min, info.min + 1, info.max - 1, info.max]
        a = np.array([*ends, 0, 1, 2, 3, 4, 5], dtype=dtype)
        if info is not None and info.min < 0:
            a = np.concatenate([a, np.array([-3, -1], dtype=dtype)])
        for values in ((1, 2, 3), (1, 2), (2,), (0,), (-1, 0, 1), (2, 4), (), (1.0, 2.0), (1.5,)):
            assert np.array_equal(in_classes(a, values), np.isin(a, values)), (dtype, values)


def test_the_dice_line_of_one_patient_ends_in_no_dangling_bootstrap():
    """With one patient scored, "Dice over patients: liver median 0.950; tumor median 0.825
    (bootstrap)": a bootstrap named, no interval given (none over one patient)."""
    from napari_livertumor.training.metrics import _format_spread

    med = {"liver": {"dice": 0.95}, "tumor": {"dice": 0.825}}
    (line,) = _format_spread({"table_median": med, "dice_ci95": {"liver": None, "tumor": None}})
    assert line == (
        "Dice over patients: liver median 0.950; tumor median 0.825 (one patient: no interval)"
    )
    # a tumor Dice on one patient of several (the others tumor-free): each says its own
    (line,) = _format_spread({"table_median": med, "dice_ci95": {"liver": [0.9, 0.97]}})
    assert line == (
        "Dice over patients: liver median 0.950, mean's 95 % interval 0.900–0.970 (bootstrap); "
        "tumor median 0.825 (one patient: no interval)"
    )
    both = {"liver": [0.9, 0.97], "tumor": [0.7, 0.9]}
    (line,) = _format_spread({"table_median": med, "dice_ci95": both})
    assert line.endswith("tumor median 0.825, mean's 95 % interval 0.700–0.900 (bootstrap)")
