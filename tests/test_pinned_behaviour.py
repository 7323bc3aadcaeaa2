"""Behaviour a mutation audit (QA s50mut) found the suite did not pin: one test per item.

Each test asserts real values; each was seen to fail with the audit's mutation planted.
"""

from __future__ import annotations

import time

import numpy as np
import pydicom
import pytest
import torch

# (the phantoms and label maps the refinement's and the SEG's own tests use)
from test_io_seg import HCC_SEGMENTS, hcc_labels
from test_refine import SPACING, phantom

from napari_livertumor.io import CTVolume, load_ct
from napari_livertumor.io.dicom_write import write_ct_series
from napari_livertumor.io.seg import read_dicom_seg, write_dicom_seg
from napari_livertumor.models import preprocess as pp
from napari_livertumor.models import read_metadata
from napari_livertumor.pipeline import _bbox, tumor_mask_from_score
from napari_livertumor.refine import RefineConfig, refine_all
from napari_livertumor.stats import centroid_slice, compute_stats
from napari_livertumor.training import make_config, train
from napari_livertumor.training.toydata import write_toy_cohort

# --- R02: Chan-Vese's lambda1 / lambda2 reach the contour the way the docs say ---------------


def test_chan_vese_lambda1_below_lambda2_grows_the_mask_more_than_the_reverse():
    """docs/refinement.md: "`lambda1 < lambda2` grows". Swapped in the call to
    morphological_chan_vese, the two settings did each other's work unnoticed."""
    ct, truth, liver = phantom()

    def refined(lambda1, lambda2):
        cfg = RefineConfig(
            method="chan_vese",
            lambda1=lambda1,
            lambda2=lambda2,
            iterations=10,
            min_contrast=0,
            max_shift_mm=0,
        )
        return int(refine_all(ct, truth, liver, SPACING, cfg).sum())

    grows, shrinks = refined(0.2, 5.0), refined(5.0, 0.2)
    n = int(truth.sum())
    assert grows > n  # lambda1 < lambda2: the mask grows past the truth it started as
    assert grows > 2 * shrinks, (n, grows, shrinks)  # measured 18306 vs 5742


# --- T07: a resumed run's clock goes on from the time it had already trained ------------------

TINY_NET = {"init_filters": 4, "blocks_down": [1, 1, 1], "blocks_up": [1, 1], "vae_nz": 16}


@pytest.fixture(scope="module")
def toy_run_data(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return write_toy_cohort(tmp_path_factory.mktemp("toy"), n_cases=4, seed=0), cache


def _tiny_config(data, cache, out, **kw):
    base = dict(
        cache_dir=str(cache),
        data=str(data),
        out=str(out),
        epochs=3,
        steps_per_epoch=2,
        roi_size=(16, 32, 32),
        target_spacing=(2.5, 2.0, 2.0),
        network=TINY_NET,
        val_fraction=0.0,
        seed=3,
        warmup_steps=1,
    )
    base.update(kw)
    return make_config("liver", **base)


def test_a_resumed_run_counts_the_time_it_had_trained_against_max_minutes(toy_run_data, tmp_path):
    """--max-minutes counts the whole run: a resumed run whose clock restarted at 0 trained a
    full budget again, and its metadata said it had trained only the resumed part."""
    data, cache = toy_run_data
    steps = []
    for r in train(_tiny_config(data, cache, tmp_path), should_cancel=lambda: bool(steps)):
        if r["event"] == "step":
            steps.append(r["step"])
    assert steps == [1]
    budget_min = 1.0
    state_path = tmp_path / "liver" / "last" / "train_state.pt"
    state = torch.load(state_path, map_location="cpu", weights_only=False)
    state["elapsed_s"] = 60 * budget_min - 0.5  # half a second of the budget left
    torch.save(state, state_path)

    def slow_check():  # each step checks the clock after >= 0.3 s: one step fits, not two
        time.sleep(0.3)
        return False

    resumed = [
        r
        for r in train(
            _tiny_config(data, cache, tmp_path, resume=True, max_minutes=budget_min),
            should_cancel=slow_check,
        )
        if r["event"] != "prepare"
    ]
    more = [r["step"] for r in resumed if r["event"] == "step"]
    assert len(more) <= 1, more  # 5 steps were left; the budget stopped it
    done = resumed[-1]
    assert done["event"] == "done" and done["step"] <= 2 and done["planned_steps"] == 6
    assert done["minutes"] * 60 >= 60 * budget_min - 0.5
    meta = read_metadata(tmp_path / "liver")
    assert meta.training["minutes"] * 60 >= 60 * budget_min - 0.5


# --- P08: the ROI box's margin is converted to voxels with each axis's own spacing -----------


def test_the_roi_margin_is_counted_in_each_axis_own_voxels():
    m = np.zeros((20, 20, 20), bool)
    m[10, 10, 10] = True
    # 10 mm: 2 slices of 5 mm, 10 voxels of 1 mm (clipped to the volume)
    assert _bbox(m, 10.0, (5.0, 1.0, 1.0)) == (slice(8, 13), slice(0, 20), slice(0, 20))
    assert _bbox(m, 3.0, (1.0, 2.0, 0.5)) == (slice(7, 14), slice(8, 13), slice(4, 17))


# --- P06: the up-sampled mask's region holds every voxel a positive stage voxel reaches -------


def test_upsampling_inside_the_stage_region_equals_upsampling_everywhere():
    """Data of tests/test_models.py::test_mask_survives_the_trip_to_the_stage_grid_and_back.
    The region must be padded enough that nothing the full up-sampling marks is clipped."""
    z, y, x = np.ogrid[:20, :60, :60]
    src = ((z - 10) / 7) ** 2 + ((y - 30) / 20) ** 2 + ((x - 28) / 15) ** 2 <= 1
    low_shape = (10, 20, 20)
    score = pp.resample(torch.from_numpy(src.astype(np.float32)), low_shape) - 0.5
    in_region = np.zeros(src.shape, np.uint8)
    everywhere = np.zeros(src.shape, np.uint8)
    region = pp.stage_region((score > 0).numpy(), src.shape)
    pp.upsample_mask(score, src.shape, in_region, region=region, chunk=7)
    pp.upsample_mask(score, src.shape, everywhere, region=None)
    assert everywhere.sum() > 0.9 * src.sum()
    np.testing.assert_array_equal(in_region, everywhere)


# --- I08: SEG frame positions a little off a slice still find it, whichever way -------------


@pytest.fixture
def seg_ct(tmp_path) -> CTVolume:
    direction = np.diag([1.0, -1.0, -1.0])
    volume = CTVolume(np.full((8, 20, 24), -1000, np.int16), (2.5, 0.8, 0.7), (5, 6, 7), direction)
    write_ct_series(volume, tmp_path / "ct", patient_id="HCC_001")
    return load_ct(tmp_path / "ct")


@pytest.mark.parametrize("nudge", [0.04, -0.04])
def test_frame_positions_a_little_off_either_way_still_find_their_slices(tmp_path, seg_ct, nudge):
    """Positions a few hundredths of a mm below their slice (rounded down when written) fell to
    the slice below when the frame's index was truncated instead of rounded."""
    labels = hcc_labels(seg_ct.shape)
    write_dicom_seg(labels, seg_ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    for group in ds.PerFrameFunctionalGroupsSequence:
        group.pop("DerivationImageSequence", None)
        pos = group.PlanePositionSequence[0]
        pos.ImagePositionPatient = [float(v) + nudge for v in pos.ImagePositionPatient]
    ds.save_as(tmp_path / "nudged.dcm")
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "nudged.dcm", seg_ct), labels)


# --- P05: the lesion filter drops components under min_ml; one of exactly min_ml stays -------


def test_a_lesion_of_exactly_min_ml_is_kept():
    score = -np.ones((10, 10, 10), np.float32)
    score[2:5, 2:5, 2:5] = 1  # 27 voxels of 1 mm³: 0.027 mL
    liver = np.ones((10, 10, 10), bool)
    kept = tumor_mask_from_score(torch.from_numpy(score), liver, (1.0, 1.0, 1.0), min_ml=0.027)
    assert int(kept.sum()) == 27
    dropped = tumor_mask_from_score(torch.from_numpy(score), liver, (1.0, 1.0, 1.0), min_ml=0.028)
    assert int(dropped.sum()) == 0


# --- P07: window_hu clips a torch tensor to the window, as it does a numpy array -------------


def test_window_hu_clips_a_torch_tensor_to_zero_and_one():
    hu = [-1000.0, -200.0, 25.0, 250.0, 3000.0]
    out = pp.window_hu(torch.tensor(hu), (-200, 250))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    assert pp.window_hu(np.array(hu), (-200, 250)).tolist() == pytest.approx(out.tolist())


# --- P02: no tumor voxel of the tumor stage's output lies outside the predicted liver -------


def test_the_tumor_mask_from_the_score_never_leaves_the_liver():
    score = torch.ones((8, 12, 12))  # tumor everywhere
    liver = np.zeros((8, 12, 12), bool)
    liver[:, :, :6] = True  # the left half
    out = tumor_mask_from_score(score, liver, (1.0, 1.0, 1.0), min_ml=0.0)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out.astype(bool), liver)
    out = tumor_mask_from_score(score, liver, (1.0, 1.0, 1.0), min_ml=0.1)
    assert not out[~liver].any() and int(out.sum()) == int(liver.sum())


# --- M04: a lesion's centroid slice takes halves up (slices 2-3: slice 3) --------------------


def test_a_lesion_on_slices_2_and_3_is_said_to_be_on_slice_3():
    """stats.centroid_slice: halves rounded up (Python's round took 2.5 to 2 and 3.5 to 4)."""
    assert [centroid_slice(z) for z in (0.5, 2.5, 3.5, 2.49, 7.0)] == [1, 3, 4, 2, 7]
    labels = np.zeros((10, 12, 12), np.uint8)
    labels[:, 1:11, 1:11] = 1
    labels[2:4, 2:4, 2:4] = 2  # slices 2-3: centroid 2.5
    labels[0:2, 7:9, 7:10] = 2  # slices 0-1: centroid 0.5, a larger lesion (listed first)
    lesions = compute_stats(labels, (1.0, 1.0, 1.0))["lesions"]
    assert [(les["slice_range"], les["slice"]) for les in lesions] == [([0, 1], 1), ([2, 3], 3)]
