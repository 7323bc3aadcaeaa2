"""Two-stage inference: a CT in, liver and tumor labels out on the CT's own grid.

Most tests use an *oracle* network that labels voxels by intensity, so the expected masks are
known exactly and the tests check the pipeline itself (resampling, cropping, masking, paste-back,
post-processing), not a model's skill. Others run real (untrained) SegResNets end to end.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_livertumor.errors import Cancelled, InputError, ModelError, SettingsError
from napari_livertumor.io.volume import CTVolume
from napari_livertumor.models import (
    STAGE_DEFAULTS,
    LoadedModel,
    ModelMetadata,
    NetworkConfig,
    make_untrained_model,
)
from napari_livertumor.pipeline import (
    DeviceUnavailable,
    InferenceConfig,
    Segmenter,
    is_serious,
    resolve_device,
    segment_ct,
)

LIVER_HU, TUMOR_HU, FAT_HU = 120, 20, -100


class OracleNet(torch.nn.Module):
    """Logits from the windowed intensity, thresholds midway between the phantom's tissues.

    Liver stage: "liver" above 0.4. Tumor stage (outside the liver masked to a bright value, so
    the liver's partial-volume rim never looks like a dark tumor): "tumor" below 0.6, "liver"
    between 0.6 and 0.9, background above.
    """

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage

    def forward(self, x):
        if self.stage == "liver":
            return torch.cat([torch.zeros_like(x), 20 * (x - 0.4)], 1)
        bg = 20 * (x - 0.9)
        tumor = 20 * (0.6 - x)
        return torch.cat([bg, torch.zeros_like(x), tumor], 1)


def oracle_models() -> dict:
    models = {}
    for stage in ("liver", "tumor"):
        settings = dict(STAGE_DEFAULTS[stage])
        if stage == "tumor":
            settings["outside_hu"] = 400.0
        meta = ModelMetadata(
            stage=stage,
            network=NetworkConfig(out_channels=len(settings["label_map"])),
            roi_size=(16, 48, 48),
            **settings,
        )
        models[stage] = LoadedModel(network=OracleNet(stage), metadata=meta, path=None)
    return models


def phantom(shape=(40, 96, 96), spacing=(2.5, 0.8, 0.8), seed=0, liver_dx=0.0, tumor_dy=8.0):
    """Fat background, an ellipsoidal liver and a round tumor inside it; true masks.

    ``liver_dx`` (mm) moves liver and tumor along x (negative: to the patient's right);
    ``tumor_dy`` (mm) the tumor from the liver's centre along y (26: at its surface, bulging
    out)."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij"
    )
    cz, cy, cx = (n * s / 2 for n, s in zip(shape, spacing, strict=True))
    cx += liver_dx
    liver = ((zz - cz) / 35) ** 2 + ((yy - cy) / 30) ** 2 + ((xx - cx) / 28) ** 2 <= 1
    tumor = ((zz - cz) ** 2 + (yy - cy - tumor_dy) ** 2 + (xx - cx + 5) ** 2) <= 11**2
    ct = np.full(shape, FAT_HU, np.int16)
    ct[liver] = LIVER_HU
    ct[tumor] = TUMOR_HU
    ct = (ct + rng.normal(0, 5, shape)).astype(np.int16)
    vol = CTVolume(ct, spacing=spacing, origin=(10.0, -20.0, 30.0), meta={"modality": "CT"})
    return vol, liver | tumor, tumor


def dice(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    # Coarse grids keep the window count small whatever the random liver mask covers.
    make_untrained_model(root / "liver", "liver", target_spacing=(8.0, 6.0, 6.0))
    make_untrained_model(root / "tumor", "tumor", target_spacing=(5.0, 4.0, 4.0))
    return root


def test_liver_and_tumor_come_back_on_the_ct_grid():
    vol, liver, tumor = phantom()
    cfg = InferenceConfig(device="cpu", min_liver_ml=1)
    result = segment_ct(vol, cfg, models=oracle_models())
    assert result.labels.shape == vol.shape and result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) <= {0, 1, 2}
    assert dice(result.labels > 0, liver) > 0.98
    assert dice(result.labels == 2, tumor) > 0.95
    assert result.device == "cpu"
    assert {"liver", "tumor", "total"} <= set(result.timings)
    assert result.stats["lesion_count"] == 1
    true_ml = tumor.sum() * np.prod(vol.spacing) / 1000
    assert result.stats["tumor_ml"] == pytest.approx(true_ml, rel=0.15)


def test_a_spacing_as_a_nifti_header_stores_it_gives_the_same_labels(monkeypatch):
    """A DICOM series (PixelSpacing 0.79412657) and the NIfTI convert wrote of it (float32:
    0.7941266) gave other labels on a 512-pixel phantom: a liver voxel apart moved the tumor
    stage's box. The stages work at float32's precision, as the header stores it."""
    from napari_livertumor.models import preprocess as pp

    seen = []
    shape_of = pp.stage_shape

    def spy(shape, spacing, target):
        seen.append(tuple(spacing))
        return shape_of(shape, spacing, target)

    monkeypatch.setattr(pp, "stage_shape", spy)
    exact = (2.5, 0.79412657, 0.79412657)
    stored = tuple(float(np.float32(s)) for s in exact)
    assert stored != exact
    results = []
    for spacing in (exact, stored):
        vol, _, _ = phantom(spacing=spacing)
        cfg = InferenceConfig(device="cpu", min_liver_ml=1)
        results.append(segment_ct(vol, cfg, models=oracle_models()))
    half = len(seen) // 2
    assert half and seen[:half] == seen[half:] and all(s == stored for s in seen)
    np.testing.assert_array_equal(results[0].labels, results[1].labels)
    # the volumes are measured with the scan's own spacing
    assert results[0].stats["spacing_mm"] == [2.5, 0.794127, 0.794127]


def test_the_metadata_logit_bias_moves_the_decision_threshold():
    import dataclasses

    vol, liver, tumor = phantom()
    cfg = InferenceConfig(device="cpu", min_liver_ml=1)
    models = oracle_models()
    plain = segment_ct(vol, cfg, models=models).labels
    t = models["tumor"]
    # the oracle's tumor logit is 20 * (0.6 - x): +4 moves its threshold from 0.6 up to 0.8
    for bias, grows in ((4.0, True), (-4.0, False)):
        meta = dataclasses.replace(t.metadata, logit_bias=(0.0, 0.0, bias))
        shifted = dict(models, tumor=dataclasses.replace(t, metadata=meta))
        labels = segment_ct(vol, cfg, models=shifted).labels
        n, n0 = int((labels == 2).sum()), int((plain == 2).sum())
        assert (n > n0) if grows else (n < n0)
        assert np.array_equal(labels > 0, plain > 0)  # the liver stage is untouched


class ThreeClassLiverNet(torch.nn.Module):
    """A background/liver/tumor liver model: tumor between the fat's and the liver's values."""

    def forward(self, x):  # fat 0.125, tumor 0.425, liver 0.675 in the liver's HU window
        return torch.cat([20 * (0.3 - x), 20 * (x - 0.55), 20 * (0.1 - (x - 0.425).abs())], 1)


class _Mapped(torch.nn.Module):
    """``net``'s logits through ``fn`` (channels reordered or added)."""

    def __init__(self, net, fn):
        super().__init__()
        self.net, self.fn = net, fn

    def forward(self, x):
        return self.fn(self.net(x))


def _with_liver_net(models, net, label_map):
    liver = models["liver"]
    network = dataclasses.replace(liver.metadata.network, out_channels=len(label_map))
    meta = dataclasses.replace(liver.metadata, network=network, label_map=label_map)
    return dict(models, liver=dataclasses.replace(liver, network=net, metadata=meta))


@pytest.mark.parametrize("tumor_dy", [8.0, 26.0])  # inside the liver; at its surface
def test_a_liver_model_that_also_labels_tumors_keeps_them_in_the_liver(tumor_dy):
    """Only voxels where "liver" beat "tumor" were liver: a tumor at the liver's surface fell
    outside the liver (only enclosed holes were filled back), and the tumor stage, which looks
    inside the liver only, found none of it (tumor Dice 0.95 with a 2-class liver model, 0.00
    with a 3-class one)."""
    vol, liver, tumor = phantom(tumor_dy=tumor_dy)
    cfg = InferenceConfig(device="cpu", min_liver_ml=1, refine=False)
    models = _with_liver_net(
        oracle_models(), ThreeClassLiverNet(), {"0": "background", "1": "liver", "2": "tumor"}
    )
    labels = segment_ct(vol, cfg, models=models).labels
    assert dice(labels > 0, liver) > 0.95
    # (the 2-class oracle's at the surface: 0.82 on this coarse liver grid; before: 0.00)
    assert dice(labels == 2, tumor) > 0.8
    # the channels in another order, background named: the same
    swapped = _with_liver_net(
        oracle_models(),
        _Mapped(ThreeClassLiverNet(), lambda out: out[:, [2, 0, 1]]),
        {"0": "tumor", "1": "background", "2": "liver"},
    )
    assert np.array_equal(segment_ct(vol, cfg, models=swapped).labels, labels)


def test_a_two_class_liver_models_score_is_unchanged_bit_for_bit():
    """The liver stage's organ is every class but background; with one such class, its score
    is the liver logit minus the background logit, the very values of before."""
    from napari_livertumor.pipeline import _margin_score, _organ_channels, _organ_score

    logits = torch.randn(2, 5, 7, 9, generator=torch.Generator().manual_seed(0)) * 10
    for label_map, liver in (
        ({"0": "background", "1": "liver"}, 1),
        ({"0": "liver", "1": "background"}, 0),
        ({"0": "liver", "1": "other"}, 0),  # no background named: the liver channel, as before
        ({"0": "liver", "1": "tumor"}, 0),  # nothing but the organ: its liver channel (crashed)
    ):
        got = _organ_score(logits, _organ_channels(label_map, 2))
        assert torch.equal(got, _margin_score(logits, liver))
        assert torch.equal(got, logits[liver] - logits[1 - liver])


def test_a_tumor_model_with_more_classes_gives_tumor_where_the_tumor_class_wins():
    """A tumor model with a class beyond background/liver/tumor (here "vessel", before the
    tumor channel): tumor is where the tumor channel beats every other, the vessel's too."""
    vol, liver, tumor = phantom()
    cfg = InferenceConfig(device="cpu", min_liver_ml=1, refine=False)
    models = oracle_models()
    plain = segment_ct(vol, cfg, models=models).labels
    t = models["tumor"]
    network = dataclasses.replace(t.metadata.network, out_channels=4)
    label_map = {"0": "background", "1": "liver", "2": "vessel", "3": "tumor"}
    meta = dataclasses.replace(t.metadata, network=network, label_map=label_map)
    for same in (True, False):  # the vessel channel below the others' / above the tumor's
        if same:
            vessel = lambda out: out[:, :2].amin(1, keepdim=True) - 1  # noqa: E731
        else:
            vessel = lambda out: out[:, 2:] + 1  # noqa: E731
        net = _Mapped(
            t.network, lambda out, v=vessel: torch.cat([out[:, :2], v(out), out[:, 2:]], 1)
        )
        four = dict(models, tumor=dataclasses.replace(t, network=net, metadata=meta))
        labels = segment_ct(vol, cfg, models=four).labels
        if same:
            assert np.array_equal(labels, plain)
        else:
            assert not (labels == 2).any() and np.array_equal(labels > 0, plain > 0)


def test_a_model_that_validated_poorly_is_said_when_loaded():
    """A model trained for a few steps (validation Dice 0.01) gave masks shown and exported
    like any other model's, with no word of its quality."""
    vol, _, _ = phantom()
    models = oracle_models()
    t = models["tumor"]
    # (0 with no validation patient holding the class is a convention, not a score)
    for score, said, with_class in ((0.011, True, 1), (0.62, False, 1), (None, False, 1),
                                    (0.0, False, 0)):  # fmt: skip
        metrics = {"score": score, "n_val": 1, "n_val_with_class": with_class}
        metrics = metrics if score is not None else {}
        meta = dataclasses.replace(t.metadata, metrics=metrics)
        seg = Segmenter(
            InferenceConfig(device="cpu", min_liver_ml=1),
            models=dict(models, tumor=dataclasses.replace(t, metadata=meta)),
        )
        text = "scored a validation Dice of 0.01 on 1 validation patient(s)"
        assert any(text in w for w in seg.warnings) is said
        if said:
            assert any(text in w for w in seg.segment(vol).warnings)


def test_the_result_does_not_depend_on_array_orientation_quirks():
    # A CT with anisotropic in-plane size: masks must not be transposed or shifted.
    vol, liver, _ = phantom(shape=(36, 80, 112), spacing=(3.0, 0.7, 0.9))
    result = segment_ct(vol, InferenceConfig(device="cpu", stages="liver"), models=oracle_models())
    assert dice(result.labels > 0, liver) > 0.97
    assert not (result.labels == 2).any()
    # no tumor stage: its figures are unknown, not 0 ("no tumor found")
    assert result.stats["tumor_ml"] is None and result.stats["lesion_count"] is None
    assert result.stats["liver_ml"] > 0
    # the tumor stage's keys are there for scripts, empty (a KeyError before)
    assert result.stats["unsure_lesions"] == [] and result.stats["lesion_filter"] is None
    assert result.stats["tumor_tta"] is None


class SpyNet(OracleNet):
    """The oracle, keeping a copy of every batch it is given."""

    def __init__(self, stage: str, seen: list):
        super().__init__(stage)
        self.seen = seen

    def forward(self, x):
        self.seen.append(x.clone())
        return super().forward(x)


@pytest.mark.parametrize("codes", ["RAS", "SLP", "LPI"])
def test_the_models_see_any_storage_order_as_standard_and_labels_land_on_its_grid(codes):
    """A RAS NIfTI, a transposed or a feet-first file: the networks get the very same input as
    for the standard (DICOM-like) volume, and the labels come back on the file's own grid."""
    from _geometry import stored_as

    vol, liver, tumor = phantom()
    vol = vol.with_array(np.ascontiguousarray(vol.array))
    cfg = InferenceConfig(device="cpu", min_liver_ml=1)

    def run(volume):
        seen: list = []
        models = oracle_models()
        for st, m in models.items():
            models[st] = dataclasses.replace(m, network=SpyNet(st, seen))
        return segment_ct(volume, cfg, models=models), seen

    ref, seen_ref = run(vol)
    other = stored_as(vol, codes)
    result, seen = run(other)
    assert len(seen) == len(seen_ref) > 0
    assert all(torch.equal(a, b) for a, b in zip(seen, seen_ref, strict=True))
    assert result.labels.shape == other.shape
    _, turn = other.to_standard()
    np.testing.assert_array_equal(turn.apply(result.labels), ref.labels)
    assert result.stats["input_axes"] == codes and ref.stats["input_axes"] == "LPS"
    assert result.stats["tumor_ml"] == pytest.approx(ref.stats["tumor_ml"])
    assert dice(ref.labels == 2, tumor) > 0.95


def test_an_unsure_lesion_is_located_on_the_stored_grid():
    from _geometry import stored_as, world_of_voxel

    vol, liver, tumor = phantom()
    models = oracle_models()
    t = models["tumor"]
    meta = dataclasses.replace(t.metadata, lesion_filter={"min_ml": 0.1, "min_peak": 50.0})
    models["tumor"] = dataclasses.replace(t, metadata=meta)
    other = stored_as(vol, "SLP")
    (u,) = segment_ct(other, InferenceConfig(device="cpu"), models=models).stats["unsure_lesions"]
    true_centre = np.argwhere(tumor).mean(axis=0)
    np.testing.assert_allclose(
        world_of_voxel(other, u["centroid_zyx"]), world_of_voxel(vol, true_centre), atol=2.5
    )


@pytest.mark.parametrize(("liver_dx", "warned"), [(-12.0, False), (0.0, True), (12.0, True)])
def test_a_liver_not_on_the_patients_right_is_flagged(liver_dx, warned):
    """Phantoms, heads and files with left and right swapped give a 'liver' on the wrong side:
    the masks still come back, with a warning to check them."""
    from _geometry import stored_as

    vol, liver, _ = phantom(shape=(30, 96, 160), liver_dx=liver_dx)
    cfg = InferenceConfig(device="cpu", stages="liver", min_liver_ml=1)
    for volume in (vol, stored_as(vol, "RAS")):  # the side is judged in patient terms
        result = segment_ct(volume, cfg, models=oracle_models())
        assert result.stats["liver_ml"] > 0
        flagged = [w for w in result.warnings if "liver found lies" in w]
        assert bool(flagged) == warned, result.warnings
    if warned:
        assert ("patient's left" if liver_dx > 0 else "across the midline") in flagged[0]
        assert is_serious(flagged[0])  # first in the Segment panel, in amber, notified


def _warned_either_way(vol, text: str, expected: bool) -> list[str]:
    """The liver stage's warnings holding ``text`` for ``vol`` as stored and turned (RAS): an
    orientation is judged in patient terms, whatever the storage order."""
    from _geometry import stored_as

    cfg = InferenceConfig(device="cpu", stages="liver", min_liver_ml=1)
    for volume in (vol, stored_as(vol, "RAS")):
        result = segment_ct(volume, cfg, models=oracle_models())
        flagged = [w for w in result.warnings if text in w]
        assert bool(flagged) == expected, result.warnings
    return flagged


@pytest.mark.parametrize(("spine_dy", "warned"), [(45.0, False), (-45.0, True)])
def test_a_scan_with_front_and_back_swapped_is_flagged(spine_dy, warned):
    """A NIfTI without orientation codes is read with front and back swapped: the liver came
    out a third too small, with no word but the header's; the spine then lies in front."""

    vol, _, _ = phantom(shape=(30, 160, 160), liver_dx=-12.0)
    _, yy, xx = np.meshgrid(*[np.arange(n) * 0.8 for n in (30, 160, 160)], indexing="ij")
    ct = vol.array.copy()
    ct[(yy - 64 - spine_dy) ** 2 + (xx - 64) ** 2 <= 12**2] = 700  # the spine, on the midline
    vol = CTVolume(ct, spacing=vol.spacing, origin=vol.origin, meta=vol.meta)
    flagged = _warned_either_way(vol, "front and back look swapped", warned)
    if warned:
        assert "lies in front of its centre (100 % of them) and not behind it" in flagged[0]
        assert is_serious(flagged[0])


@pytest.mark.parametrize("swapped", [False, True])
def test_a_scan_with_head_and_feet_swapped_is_flagged(swapped):
    """A header that swaps head and feet mirrors the scan along the body: the liver found was
    5-16 % worse in Dice with no warning (the left-right and front-back checks cannot see it).
    The lung bases, air behind the body's centre, then lie at the liver's lower end."""

    spacing = (2.5, 2.0, 2.0)
    vol, _, _ = phantom(shape=(40, 160, 160), spacing=spacing, liver_dx=-12.0)
    zz, yy, xx = np.meshgrid(
        *[np.arange(n) * s for n, s in zip((40, 160, 160), spacing, strict=True)], indexing="ij"
    )
    ct = vol.array.copy()
    # the lung bases: two air spaces behind the body's centre, from the liver's top upwards
    lungs = (zz >= 75) & (yy > 170) & (yy < 250) & (np.abs(xx - 160) > 20) & (np.abs(xx - 160) < 90)
    ct[lungs] = -850
    ct[(zz < 20) & (yy > 170) & (yy < 185) & (np.abs(xx - 190) < 10)] = -900  # bowel gas
    if swapped:
        ct = ct[::-1].copy()  # the same header, the slices the other way round
    vol = CTVolume(ct, spacing=vol.spacing, origin=vol.origin, meta=vol.meta)
    flagged = _warned_either_way(vol, "head and feet look swapped", swapped)
    if swapped:
        assert "at the liver's lower end" in flagged[0] and "cm²" in flagged[0]
        assert is_serious(flagged[0])


def test_head_and_feet_are_judged_on_the_synthetic_phantoms_lungs_and_not_without_lungs():
    from scipy import ndimage as ndi

    from napari_livertumor.pipeline import _head_feet_warning
    from napari_livertumor.synth.phantom import generate_phantom

    for seed in range(3):
        ph = generate_phantom(seed, shape="small")
        ct, liver, spacing = ph.ct.array, np.isin(ph.labels, (1, 2)), ph.ct.spacing
        assert _head_feet_warning(ct, liver, spacing) is None
        assert "head and feet look swapped" in _head_feet_warning(ct[::-1], liver[::-1], spacing)
        # with no air inside the body (no lungs, no bowel gas) there is nothing to tell by
        airless = ct.copy()
        for z in range(ct.shape[0]):
            parts, _ = ndi.label(ct[z] > -500)
            body = ndi.binary_fill_holes(parts == np.bincount(parts.ravel())[1:].argmax() + 1)
            airless[z][body & (ct[z] < -400)] = 30
        assert (airless < -400).any()  # (the air around the body is left)
        assert _head_feet_warning(airless, liver, spacing) is None
        assert _head_feet_warning(airless[::-1], liver[::-1], spacing) is None


def test_bowel_gas_below_the_liver_is_not_taken_for_lungs():
    """A review's false alarms on scans the right way up: a distended colon behind the body's
    centre at the liver's lower end, under a dome whose lung recesses held fluid (effusions), or
    a scan cut through the liver (its dome unseen) was called swapped."""
    from scipy import ndimage as ndi

    from napari_livertumor.pipeline import _head_feet_warning
    from napari_livertumor.synth.phantom import generate_phantom

    ph = generate_phantom(0, shape="small")
    ct, liver, spacing = ph.ct.array.copy(), np.isin(ph.labels, (1, 2)), ph.ct.spacing
    zs = np.flatnonzero(liver.any(axis=(1, 2)))
    z0, z1 = zs[0], zs[-1]
    yy, xx = np.mgrid[: ct.shape[1], : ct.shape[2]]
    for z in range(ct.shape[0]):
        parts, _ = ndi.label(ct[z] > -500)
        body = ndi.binary_fill_holes(parts == np.bincount(parts.ravel())[1:].argmax() + 1)
        ys, xs = np.nonzero(body)
        if z <= z0 + 3:  # two gas-filled colon segments behind the centre, 80 cm² together
            for side in (-1, 1):
                c = (yy - ys.mean() - 0.15 * np.ptp(ys)) ** 2 + (
                    xx - xs.mean() - side * 0.28 * np.ptp(xs)
                ) ** 2
                gas = (c < 40 * 100 / np.pi / spacing[1] / spacing[2]) & body & ~liver[z]
                ct[z][gas] = -950
        if z >= (z0 + z1) // 2:  # fluid in the recesses behind: no air there
            behind = body & (yy > ys.mean()) & (ct[z] < -400)
            ct[z][behind] = 10
    assert _head_feet_warning(ct, liver, spacing) is None
    cut = (z0 + z1) // 2  # and a scan stopping inside the liver is not judged
    assert _head_feet_warning(ct[:cut], liver[:cut], spacing) is None
    assert _head_feet_warning(ph.ct.array[:cut][::-1], liver[:cut][::-1], spacing) is None


def test_bright_tissue_in_front_of_the_spine_is_not_taken_for_a_swap():
    """Pooled, the midline's bright voxels put a contrast-filled stomach or an arterial heart
    in front of the spine: a normal scan was called swapped. The spine is behind on every
    slice; they are in front on some."""
    from napari_livertumor.pipeline import _spine_side_warning

    vol, liver, _ = phantom(shape=(30, 160, 160), liver_dx=-12.0)
    _, yy, xx = np.meshgrid(*[np.arange(n) * 0.8 for n in (30, 160, 160)], indexing="ij")
    zz = np.arange(30)[:, None, None] * np.ones((1, 160, 160))
    ct = vol.array.copy()
    ct[(yy - 64 - 45) ** 2 + (xx - 64) ** 2 <= 6**2] = 700  # a thin spine, behind
    # a stomach full of oral contrast in front on two thirds of the slices, far larger
    ct[((yy - 64 + 35) ** 2 + (xx - 64) ** 2 <= 25**2) & (zz >= 10)] = 450
    assert _spine_side_warning(ct, liver, vol.spacing) is None
    flipped = _spine_side_warning(ct[:, ::-1], liver[:, ::-1], vol.spacing)
    assert flipped is None  # (the stomach is behind on most slices: no sure call either way)
    ct[(yy - 64 + 35) ** 2 + (xx - 64) ** 2 <= 25**2] = 450  # ... on every slice: still none
    assert _spine_side_warning(ct, liver, vol.spacing) is None
    # a calcified aortic wall in front of the spine on every slice: no alarm either
    ring = (yy - 64 + 20) ** 2 + (xx - 64) ** 2
    ct = vol.array.copy()
    ct[(yy - 64 - 45) ** 2 + (xx - 64) ** 2 <= 6**2] = 700
    ct[(ring <= 11**2) & (ring > 9**2)] = 600
    assert _spine_side_warning(ct, liver, vol.spacing) is None


def test_tumor_never_leaves_the_liver_and_small_specks_are_dropped():
    vol, liver, _ = phantom()
    ct = vol.array.copy()
    ct[2:4, 2:6, 2:6] = TUMOR_HU  # tumor-like blob outside the liver
    ct[20, 48, 70] = TUMOR_HU  # a one-voxel speck at the liver edge region
    vol = vol.with_array(ct)
    result = segment_ct(
        vol, InferenceConfig(device="cpu", min_tumor_ml=0.5), models=oracle_models()
    )
    assert not ((result.labels == 2) & ~(result.labels > 0)).any()
    assert (result.labels[2:4, 2:6, 2:6] != 2).all()
    assert result.stats["lesion_count"] == 1


def test_no_liver_gives_empty_labels_and_a_warning():
    head = CTVolume(np.full((20, 64, 64), -1000, np.int16), spacing=(2.5, 0.8, 0.8))
    result = segment_ct(head, InferenceConfig(device="cpu"), models=oracle_models())
    assert not result.labels.any()
    assert any("no liver found" in w for w in result.warnings)
    assert result.stats["liver_ml"] == 0 and result.stats["warnings"] == result.warnings


def test_no_liver_in_a_narrow_body_says_how_narrow_it_is():
    """A child-sized body (0.45 of an adult's) was asked only "is this an abdominal CT?"."""
    ct = np.full((20, 200, 200), -1000, np.int16)
    yy, xx = np.mgrid[:200, :200]
    ct[:, (yy - 100) ** 2 + (xx - 100) ** 2 <= 70**2] = 30  # 141 px of 1 mm: 141 mm wide
    cfg = InferenceConfig(device="cpu", min_liver_ml=1e6)  # (the oracle finds one in anything)
    result = segment_ct(CTVolume(ct, spacing=(2.5, 1.0, 1.0)), cfg, models=oracle_models())
    (said,) = [w for w in result.warnings if w.startswith("no liver found")]
    assert ": what was scanned is 141 mm wide at most, narrower than an adult's abdomen" in said
    assert said.endswith("or no abdomen (a head, a limb)")
    ct[:, 95:105, 0:200] = 30  # arms or a table across the field: 200 mm
    result = segment_ct(CTVolume(ct, spacing=(2.5, 1.0, 1.0)), cfg, models=oracle_models())
    (said,) = [w for w in result.warnings if w.startswith("no liver found")]
    assert said.endswith(": is this an abdominal CT that contains the liver?")


def test_a_cut_organ_not_on_the_right_is_not_said_to_be_a_cut_liver():
    """A chest scan's heart, taken for liver: the side warning fired, and the cut warning
    beside it still called its volume "a lower bound" of the liver's."""
    ct = np.full((20, 200, 200), -1000, np.int16)
    yy, xx = np.mgrid[:200, :200]
    ct[:, (yy - 100) ** 2 + (xx - 100) ** 2 <= 70**2] = 30  # centred: across the midline
    ct += np.random.default_rng(0).normal(0, 10, ct.shape).astype(np.int16)
    result = segment_ct(
        CTVolume(ct, spacing=(2.5, 1.0, 1.0)), InferenceConfig(device="cpu"), models=oracle_models()
    )
    assert any(w.startswith("the liver found lies across the midline") for w in result.warnings)
    (cut,) = [w for w in result.warnings if "reaches the scan's" in w]
    assert cut.startswith("what was found reaches the scan's top (head end) slice")
    assert cut.endswith("if it is the liver at all (see the warning on its side)")


@pytest.mark.parametrize("value", [0, 60, -1000])
def test_a_uniform_volume_has_no_liver_whatever_its_value(value):
    """Water, a constant soft-tissue value or air: no edge, no liver (a network alone may still
    paint one from its biases). Air throughout was also guessed "values shifted down"."""
    flat = CTVolume(np.full((20, 64, 64), value, np.int16), spacing=(2.5, 0.8, 0.8))
    result = segment_ct(flat, InferenceConfig(device="cpu"), models=oracle_models())
    assert not result.labels.any()
    assert any("uniform" in w and "no liver found" in w for w in result.warnings)
    assert not any("shifted" in w for w in result.warnings), result.warnings


def test_a_volume_smaller_than_one_window_is_padded_not_refused():
    vol, _, _ = phantom(shape=(3, 20, 24), spacing=(5.0, 4.0, 4.0))
    result = segment_ct(vol, InferenceConfig(device="cpu", min_liver_ml=0), models=oracle_models())
    assert result.labels.shape == (3, 20, 24)


def test_progress_is_reported_per_window_and_stage():
    vol, _, _ = phantom()
    seen = []
    segment_ct(
        vol,
        InferenceConfig(device="cpu"),
        models=oracle_models(),
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    stages = [s for s, _, _ in seen]
    assert stages.index("liver") < stages.index("tumor")
    for stage in ("liver", "tumor"):
        last = [(d, t) for s, d, t in seen if s == stage][-1]
        assert last[0] == last[1] >= 1
    # this phantom's body runs off every edge: the liver's second look at the image mirrored
    # counts under its own name (the liver's bar went back from 2/2 to 1/2)
    assert "liver (image edge)" in stages
    for stage in set(stages):
        done = [d for s, d, _ in seen if s == stage]
        assert done == sorted(done), (stage, done)


def test_cancel_between_windows_raises_cancelled():
    vol, _, _ = phantom()
    calls = []

    def should_cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        segment_ct(
            vol, InferenceConfig(device="cpu"), models=oracle_models(), should_cancel=should_cancel
        )


def test_the_runs_last_second_is_a_stage_of_its_own_and_a_cancel_there_is_honoured():
    """After refine's last step the fluid check, the labels turned back and the statistics
    ran (0.9 s of an 8 s run) with the bar at "refine 6 / 6" and no cancel check: a Cancel
    clicked then was ignored and the result came back (the panel sat on "Cancelling…" 5 s)."""
    vol, _, _ = phantom()
    seen = []
    segment_ct(
        vol,
        InferenceConfig(device="cpu"),
        models=oracle_models(),
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    assert seen[-2:] == [("measuring", 0, 1), ("measuring", 1, 1)]
    assert [s for s, _, _ in seen].index("measuring") > max(
        i for i, (s, _, _) in enumerate(seen) if s != "measuring"
    )
    asked = []
    with pytest.raises(Cancelled):
        segment_ct(
            vol,
            InferenceConfig(device="cpu"),
            models=oracle_models(),
            progress=lambda stage, done, total: asked.append(stage == "measuring") or None,
            should_cancel=lambda: any(asked),
        )


def test_a_cancel_during_the_liver_masks_up_sampling_stops_before_the_tumor_stage(monkeypatch):
    """The liver stage is one window on most scans: its up-sampling and checks (2 s of a
    512² scan) ran before the next check, so a cancel there took 4 s."""
    from napari_livertumor import pipeline
    from napari_livertumor.models import preprocess as pp

    vol, _, _ = phantom()
    asked, seen = [], []
    real = pp.upsample_mask

    def upsample(*args, **kwargs):
        asked.append(1)  # the user clicks Cancel while the liver mask is up-sampled
        return real(*args, **kwargs)

    monkeypatch.setattr(pp, "upsample_mask", upsample)
    checks = []
    monkeypatch.setattr(pipeline, "_inside_skull", lambda *a, **k: checks.append(1))
    with pytest.raises(Cancelled):
        segment_ct(
            vol,
            InferenceConfig(device="cpu"),
            models=oracle_models(),
            should_cancel=lambda: bool(asked),
            progress=lambda stage, done, total: seen.append(stage),
        )
    assert "tumor" not in seen and len(asked) == 1
    assert checks == []  # the liver's checks (the skull, sides, size, edges) were not run


def test_non_ct_modality_is_refused_unless_forced():
    vol, _, _ = phantom()
    vol.meta.update(modality="MR", source="/data/t1.nii.gz")
    with pytest.raises(InputError, match="t1.nii.gz.*MR, not CT"):
        segment_ct(vol, InferenceConfig(device="cpu"), models=oracle_models())
    result = segment_ct(
        vol, InferenceConfig(device="cpu", allow_non_ct=True), models=oracle_models()
    )
    assert result.labels.any()
    # and the figures say what they were made from (the stats' warnings)
    assert any("modality is MR" in w and "not validated" in w for w in result.warnings)


def test_a_liver_cut_by_the_scan_is_said_to_be_a_lower_bound():
    """A scan that stops inside the liver gave its partial volume without a word."""
    vol, _, _ = phantom()
    whole = segment_ct(vol, InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models())
    assert not any("reaches the scan" in w for w in whole.warnings)
    top = CTVolume(vol.array[:20].copy(), spacing=vol.spacing, meta={"modality": "CT"})
    cut = segment_ct(top, InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models())
    said = [w for w in cut.warnings if "reaches the scan" in w]
    assert len(said) == 1 and "top (head end)" in said[0] and "lower bound" in said[0]
    assert "only" not in said[0]
    # a few slices inside the liver: both ends cut, and the masks said to be less reliable
    # (a tumor came out larger on such a scan, not smaller)
    middle = CTVolume(vol.array[16:24].copy(), spacing=vol.spacing, meta={"modality": "CT"})
    few = segment_ct(middle, InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models())
    (said,) = [w for w in few.warnings if "reaches the scan" in w]
    assert "top (head end)" in said and "bottom (feet end)" in said
    assert "covers only 20 mm" in said and "less reliable" in said


def test_a_liver_cut_by_the_field_of_view_is_said_to_be_uncertain():
    """A field of view cropped to the liver, or cut through it, gave a liver of 619 or 155 mL
    (1071 true) without a word: the found liver stops short of the cut edge."""
    from napari_livertumor.pipeline import _liver_edge_warning
    from napari_livertumor.synth import generate_phantom

    ph = generate_phantom(0, "small")
    ct, liver = ph.ct.array, np.isin(ph.labels, (1, 2)).astype(np.uint8)
    assert _liver_edge_warning(ct, liver, ph.ct.spacing) is None  # the body fits the image
    xs = np.flatnonzero(liver.any(axis=(0, 1)))
    cut = slice(int(xs[0] + (xs[-1] - xs[0]) // 3), None)  # through the right lobe (x low)
    found = liver[:, :, cut].copy()
    found[:, :, :2] = 0  # the found liver stops short of the cut edge
    said = _liver_edge_warning(ct[:, :, cut], found, ph.ct.spacing)
    assert said is not None and "mm of the image's right edge" in said, said
    assert "uncertain and most likely low" in said, said
    # the same liver near an edge with air beyond it (the body fits the image): nothing to say
    air = ct[:, :, cut].copy()
    air[:, :, 0] = -1000
    assert _liver_edge_warning(air, found, ph.ct.spacing) is None


@pytest.mark.parametrize("padding", [-3024, -2048])
def test_a_liver_cut_by_the_round_field_of_view_is_said_to_be_uncertain(padding):
    """A large patient in a small reconstruction circle: the circle touches the image's edges
    only at four points, and a liver it cut went unsaid."""
    from napari_livertumor.pipeline import _liver_edge_warning
    from napari_livertumor.synth import generate_phantom

    ph = generate_phantom(0, "small", fov_padding=True)
    ct, liver = ph.ct.array.copy(), np.isin(ph.labels, (1, 2)).astype(np.uint8)
    n = ct.shape[1]
    c = (n - 1) / 2
    yy, xx = np.mgrid[0:n, 0:n]
    xs = np.flatnonzero(liver.any(axis=(0, 1)))
    radius = c - xs[0] - (xs[-1] - xs[0]) // 4  # through the right lobe
    outside = (yy - c) ** 2 + (xx - c) ** 2 > radius**2
    cut = ct.copy()
    cut[:, outside] = padding
    found = liver.copy()  # the found liver stops short of the circle
    found[:, (yy - c) ** 2 + (xx - c) ** 2 > (radius - 2) ** 2] = 0
    said = _liver_edge_warning(cut, found, ph.ct.spacing)
    assert said is not None and "mm of the scan's round field of view" in said, said
    assert "uncertain and most likely low" in said
    # a body that fits its circle (air between them) is nothing to say, at any padding
    fits = ct.copy()
    fits[:, (yy - c) ** 2 + (xx - c) ** 2 > (n / 2) ** 2] = padding
    assert _liver_edge_warning(fits, liver, ph.ct.spacing) is None
    # nor is a liver near a circle that cuts the body far from it (the rim by the liver is air)
    far = ct.copy()
    far[:, (yy - c) ** 2 + (xx - c) ** 2 > (n / 2) ** 2] = padding
    far[:, :, -3:] = 40  # body across the left edge only: its own (straight-edge) check
    assert _liver_edge_warning(far, liver, ph.ct.spacing) is None


def test_a_liver_near_an_edge_that_cuts_the_body_is_looked_for_in_the_image_mirrored():
    """A liver touching the image's edge was found ending 10-20 mm short of it: beyond the
    image the network saw air, and drew the body's skin at the edge."""
    import torch

    from napari_livertumor.pipeline import _mirror_cut_body

    spacing = (5.0, 3.5, 3.5)
    x = torch.zeros(8, 40, 40)
    x[:, 5:35, 10:40] = 0.5  # a body running off the image's x-high edge
    near = np.zeros((8, 40, 40), bool)
    near[2:6, 15:25, 30:37] = True  # a liver found 3 voxels (10.5 mm) short of that edge
    far = np.zeros_like(near)
    far[2:6, 15:25, 12:20] = True  # one 70 mm from it
    padded, (my, mx) = _mirror_cut_body(x, near, spacing, 30.0)
    assert (my, mx) == (9, 9) and padded.shape == (8, 58, 58)
    assert torch.equal(padded[:, my:-my, mx:-mx], x)  # the image, with a mirror round it
    assert torch.equal(padded[:, my:-my, -mx], x[:, :, -2])  # the body goes on past the edge
    assert _mirror_cut_body(x, far, spacing, 30.0) is None  # the liver is nowhere near
    assert _mirror_cut_body(x, near, spacing, 0.0) is None  # turned off
    inside = torch.zeros(8, 40, 40)
    inside[:, 5:35, 5:35] = 0.5  # air all round the body: nothing to mirror
    assert _mirror_cut_body(inside, near, spacing, 30.0) is None


def test_a_whole_liver_smaller_than_an_adults_is_said():
    """A body 40 % smaller (a child, or a phantom scaled down) lost liver to the models (Dice
    0.83-0.93) with no word."""
    from napari_livertumor.pipeline import _liver_small_warning

    liver = np.zeros((20, 40, 40), np.uint8)
    liver[5:15, 10:30, 10:30] = 1  # 4000 voxels of 0.08 mL: 320 mL
    said = _liver_small_warning(liver, (5.0, 4.0, 4.0))
    assert said is not None and said.startswith("the liver found is 320 mL, smaller than")
    assert _liver_small_warning(liver, (5.0, 6.0, 6.0)) is None  # 720 mL: a small adult's


def test_fluid_taken_for_liver_is_said_but_not_a_fatty_or_noisy_liver():
    """The liver model took perihepatic fluid (ascites, 10 HU) for liver on phantoms (Dice
    0.66-0.71) without a word. A fatty liver (one low density) and a noisy one are no fluid."""
    from napari_livertumor.pipeline import _liver_fluid_warning

    rng = np.random.default_rng(0)
    spacing = (2.5, 0.8, 0.8)
    ct = np.full((30, 120, 120), -100.0, np.float32)  # fat around
    zz, yy, xx = np.mgrid[:30, :120, :120]
    r = np.sqrt(((zz - 15) * 2.5) ** 2 + ((yy - 60) * 0.8) ** 2 + ((xx - 60) * 0.8) ** 2)
    liver = r < 30  # mm
    shell = (r >= 30) & (r < 40)
    labels = np.zeros(ct.shape, np.uint8)

    def scan(tissue_hu: float, fluid: bool, noise: float = 15.0):
        img = ct.copy()
        img[liver] = tissue_hu
        if fluid:
            img[shell] = 10.0
        return img + rng.normal(0, noise, ct.shape).astype(np.float32)

    labels[liver | shell] = 1  # the model's liver took in the shell
    said = _liver_fluid_warning(scan(110.0, True), labels, spacing)
    assert said is not None and "at water density" in said and "ascites" in said
    assert _liver_fluid_warning(scan(60.0, True), labels, spacing) is not None  # unenhanced
    labels[:] = 0
    labels[liver] = 1  # the liver alone: no fluid in it
    assert _liver_fluid_warning(scan(110.0, True), labels, spacing) is None
    assert _liver_fluid_warning(scan(60.0, False, noise=60.0), labels, spacing) is None
    labels[liver | shell] = 1
    # a fatty liver is of one low density throughout: not fluid beside tissue
    assert _liver_fluid_warning(scan(15.0, False), labels, spacing) is None
    # tumor aside: a necrotic lesion marked as tumor is not counted
    tumor_scan = scan(110.0, False)
    tumor_scan[liver & (r < 20)] = 10.0
    labels[liver & (r < 20)] = 2
    assert _liver_fluid_warning(tumor_scan, labels, spacing) is None


def test_the_border_mirror_setting_is_checked_and_recorded_only_when_changed(tmp_path):
    from napari_livertumor.commands.segment import Case, run_settings
    from napari_livertumor.errors import SettingsError

    for bad in (float("nan"), -1.0, "30"):
        with pytest.raises(SettingsError, match="border_mirror_mm must be a number >= 0"):
            InferenceConfig(border_mirror_mm=bad).validate()
    scan = tmp_path / "a.nii.gz"
    scan.write_bytes(b"")
    case = Case("a", scan)
    assert "border_mirror_mm" not in run_settings(case, InferenceConfig())
    assert run_settings(case, InferenceConfig(border_mirror_mm=0.0))["border_mirror_mm"] == 0.0


def test_coarse_voxels_are_warned_about():
    """30-mm slices gave 240 mL of tumor where the same phantom had 19, without a word."""
    from napari_livertumor.pipeline import check_volume

    vol, _, _ = phantom()
    assert not any("coarse voxels" in n for n in check_volume(vol))
    thick = CTVolume(vol.array[::10].copy(), spacing=(25.0, 0.8, 0.8), meta={"modality": "CT"})
    said = [n for n in check_volume(thick) if "coarse voxels" in n]
    assert len(said) == 1 and "25 mm slices" in said[0]
    # judged on the patient's axes, not the file's order: 15-mm slices and 3.5-mm pixels
    # (no warning) stored sagittal-first, where the file's "in-plane" holds the 15 mm
    stored = CTVolume(
        np.ascontiguousarray(np.transpose(vol.array, (2, 1, 0))),  # (x, y, z) as (z, y, x)
        spacing=(3.5, 3.5, 15.0),
        # index x runs to the head, y to the back, z to the left
        direction=np.array([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]]),
        meta={"modality": "CT"},
    )
    assert not any("coarse voxels" in n for n in check_volume(stored))


def test_untrained_models_run_end_to_end_from_folders(untrained):
    vol, _, _ = phantom(shape=(24, 64, 64))
    cfg = InferenceConfig.from_models_dir(untrained, device="cpu", min_liver_ml=0)
    seg = Segmenter(cfg)
    first = seg.segment(vol)
    again = seg.segment(vol)
    assert first.labels.shape == vol.shape and first.labels.dtype == np.uint8
    np.testing.assert_array_equal(first.labels, again.labels)  # deterministic, models reused


def test_a_model_for_the_wrong_stage_is_refused(untrained):
    cfg = InferenceConfig(liver_model=untrained / "tumor", tumor_model=untrained / "tumor")
    with pytest.raises(ModelError, match="tumor model; a liver model is needed"):
        Segmenter(cfg)


def test_a_missing_model_folder_says_how_to_get_one(tmp_path):
    with pytest.raises(ModelError, match="livertumor train"):
        Segmenter(InferenceConfig(liver_model=tmp_path / "none", device="cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_a_gpu_falls_back_with_a_warning():
    device, warning = resolve_device("cuda")
    assert device.type == "cpu" and "CUDA was asked for but is not available" in warning
    with pytest.raises(DeviceUnavailable):
        resolve_device("cuda", strict=True)
    seg = Segmenter(InferenceConfig(device="cuda"), models=oracle_models())
    vol, _, _ = phantom(shape=(16, 48, 48))
    result = seg.segment(vol)
    assert result.device == "cpu" and any("CUDA" in w for w in result.warnings)


def test_bad_config_values_are_refused():
    with pytest.raises(ValueError, match="window_growth"):  # NaN went into stats.json
        InferenceConfig(window_growth=float("nan")).validate()
    with pytest.raises(ValueError, match="device"):
        InferenceConfig(device="tpu").validate()
    with pytest.raises(ValueError, match="stages"):
        InferenceConfig(stages="tumor").validate()


def test_a_synthetic_patient_comes_back_with_labels_on_its_grid(untrained):
    from napari_livertumor.synth import generate_phantom

    ph = generate_phantom(3, shape="small")
    cfg = InferenceConfig.from_models_dir(untrained, device="cpu", min_liver_ml=0)
    result = segment_ct(ph.ct, cfg)
    assert result.labels.shape == ph.ct.shape and result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) <= {0, 1, 2}
    assert result.stats["spacing_mm"] == pytest.approx(list(ph.ct.spacing), abs=1e-6)


def test_refinement_stays_inside_the_liver_and_keeps_labels_valid():
    vol, liver, tumor = phantom()
    labels = np.where(liver, 1, 0).astype(np.uint8)
    grown = np.zeros_like(tumor)
    grown[tumor] = True
    grown = np.roll(grown, 3, axis=2)  # a shifted tumor guess for the contour to correct
    labels[grown & liver] = 2
    from napari_livertumor.pipeline import refine_labels

    notes = []
    out = refine_labels(vol.array, labels.copy(), vol.spacing, warnings=notes)
    assert set(np.unique(out)) <= {0, 1, 2}
    assert ((out > 0) == liver).all()  # the liver is untouched
    assert dice(out == 2, tumor) >= dice(labels == 2, tumor) - 0.02


def test_refinement_leaves_a_label_maps_vessels_as_they_are():
    """An HCC-TACE-Seg-style map (3 portal vein, 4 aorta): the contour's 'liver' was every
    label above 0, so the vessels came back as liver (1) and the tumor could grow into them."""
    vol, liver, tumor = phantom()
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[tumor & liver] = 2
    zs, ys, xs = np.nonzero(liver)
    z0, y0, x0 = zs.min(), ys.min(), xs.min()
    labels[z0 : z0 + 4, y0 : y0 + 4, x0 : x0 + 4] = 3
    labels[
        zs.max() - 3 : zs.max() + 1, ys.max() - 3 : ys.max() + 1, xs.max() - 3 : xs.max() + 1
    ] = 4
    from napari_livertumor.pipeline import refine_labels

    out = refine_labels(vol.array, labels.copy(), vol.spacing, min_ml=0)
    for v in (3, 4):
        assert ((out == v) == (labels == v)).all()
    assert ((out == 0) == (labels == 0)).all()


def test_a_refinement_note_gives_no_box_position_nor_the_panels_undo(monkeypatch, caplog):
    """'a lesion (on slices 62–88, centred at y 122, x 103) was emptied …; Undo brings it back'
    counted slices from the liver's box (the file's were 401–427) and named an Undo the
    command line does not have."""
    import napari_livertumor.refine as refine_mod
    from napari_livertumor.pipeline import refine_labels

    vol, liver, tumor = phantom()
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[tumor & liver] = 2

    def contour(ct, given, liver, spacing, cfg, notes=None, **kw):
        notes.append(
            "a lesion (on slices 62–88, centred at y 122, x 103) was emptied by the contour of "
            "a box it shares with another lesion: its contrast-to-noise against the liver is "
            "under 2 (a fixed limit …); Undo brings it back"
        )
        return given.copy()

    monkeypatch.setattr(refine_mod, "refine_all", contour)
    warnings: list[str] = []
    with caplog.at_level("INFO", logger="napari_livertumor.pipeline"):
        refine_labels(vol.array, labels.copy(), vol.spacing, warnings=warnings)
    assert not warnings  # (a lesion emptied is the contour's work: a note in the log)
    (said,) = [r.getMessage() for r in caplog.records if "emptied" in r.getMessage()]
    assert said.startswith("refine: a lesion was emptied by the contour of a box")
    assert "slices" not in said and "Undo" not in said
    assert said.endswith("; segmenting without refinement keeps it")


def test_refinement_leaves_no_tumor_sliver_under_the_lesion_filters_minimum():
    """Refinement must not bring back what the tumor stage's volume filter removes: the lesion
    count and the list would otherwise fill with specks of a few voxels."""
    from scipy import ndimage as ndi

    from napari_livertumor.pipeline import refine_labels

    vol, liver, tumor = phantom()
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[tumor] = 2
    z, y, x = np.argwhere(liver & ~ndi.binary_dilation(tumor, iterations=6))[0]
    labels[z, y, x : x + 2] = 2  # two voxels, 0.003 mL, in plain liver
    out = refine_labels(vol.array, labels.copy(), vol.spacing, min_ml=0.1)
    comps, n = ndi.label(out == 2, structure=np.ones((3, 3, 3), bool))
    sizes_ml = np.bincount(comps.ravel())[1:] * np.prod(vol.spacing) / 1000
    assert n == 1 and sizes_ml.min() >= 0.1
    assert out[z, y, x] == 1  # back to liver
    kept = refine_labels(vol.array, labels.copy(), vol.spacing, min_ml=0)
    assert (kept[z, y, x : x + 2] == 2).all()  # 0 turns the filter off


def test_a_lesion_the_contour_shrinks_under_the_size_filter_is_kept(monkeypatch):
    """A lesion found at 0.16 mL that the contour shrank to 0.07 went with the pieces under
    the 0.1 mL filter: the lesion count fell to 0 without a word."""
    from scipy import ndimage as ndi

    import napari_livertumor.refine as refine_mod
    from napari_livertumor.pipeline import refine_labels

    vol, liver, tumor = phantom()
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[tumor] = 2

    def contour(ct, given, liver_mask, spacing, cfg, notes=None, **kw):
        core = ndi.binary_erosion(given, iterations=4)  # far under 0.1 mL left
        z, y, x = np.argwhere(liver_mask & ~ndi.binary_dilation(given, iterations=6))[0]
        core[z, y, x] = True  # and a crumb in plain liver
        return core

    monkeypatch.setattr(refine_mod, "refine_all", contour)
    out = refine_labels(vol.array, labels.copy(), vol.spacing, min_ml=5.0)
    comps, n = ndi.label(out == 2, structure=np.ones((3, 3, 3), bool))
    assert n == 1 and (out == 2).sum() < 5000 / np.prod(vol.spacing)  # the shrunk lesion
    assert (out == 2).sum() == ndi.binary_erosion(tumor, iterations=4).sum()


def test_a_lesion_the_contour_leaves_at_exactly_the_size_filters_minimum_is_kept(monkeypatch):
    """Components *under* ``min_ml`` go, as the tumor stage's own filter keeps those of at
    least ``min_ml``: a lesion the contour grew to exactly 0.1 mL stays tumor."""
    import napari_livertumor.refine as refine_mod
    from napari_livertumor.pipeline import refine_labels

    spacing = (2.0, 1.0, 1.0)  # 2 µL a voxel: 0.1 mL is 50 voxels
    labels = np.zeros((10, 30, 30), np.uint8)
    labels[1:9, 2:28, 2:28] = 1
    labels[4, 5:9, 5:15] = 2  # 40 voxels the model drew ...
    labels[4, 20:24, 5:15] = 2  # ... and another 40
    z, y, x = 1, 2, 2  # the first voxel of the liver's box, where the contour runs

    def contour(ct, given, liver_mask, spacing, cfg, notes=None, **kw):
        assert given.shape == (8, 26, 26)
        out = given.copy()
        out[4 - z, 9 - y, 5 - x : 15 - x] = True  # the first grown to 50 voxels: 0.1 mL
        out[4 - z, 24 - y, 5 - x : 14 - x] = True  # the second to 49
        return out

    monkeypatch.setattr(refine_mod, "refine_all", contour)
    out = refine_labels(np.zeros(labels.shape, np.int16), labels.copy(), spacing, min_ml=0.1)
    expected = labels.copy()
    expected[4, 5:10, 5:15] = 2
    expected[4, 20:24, 5:15] = 1
    np.testing.assert_array_equal(out, expected)


def test_refinement_crumbs_of_a_few_voxels_go_on_a_coarse_grid_and_routine_notes_are_no_warnings(
    monkeypatch,
):
    """On a coarse grid (10 mm slices, 4 mm pixels: 0.16 mL a voxel) the mL filter let one-voxel
    crumbs of the contour through as lesions, and 'too small to refine' counted as a warning."""
    from scipy import ndimage as ndi

    import napari_livertumor.refine as refine_mod
    from napari_livertumor.pipeline import refine_labels

    vol, liver, tumor = phantom()
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[tumor] = 2
    z, y, x = np.argwhere(liver & ~ndi.binary_dilation(tumor, iterations=6))[0]
    labels[z, y, x] = 2  # a one-voxel lesion the model drew itself: kept

    def contour(ct, given, liver_mask, spacing, cfg, notes=None, **kw):
        notes.append("lesion(s) under 4 voxels kept unchanged (too small to refine)")
        away = np.where(liver_mask, ndi.distance_transform_edt(~given), 0)
        out = given.copy()
        out[np.unravel_index(np.argmax(away), away.shape)] = True  # a crumb the contours left
        return out

    monkeypatch.setattr(refine_mod, "refine_all", contour)
    warnings: list[str] = []
    out = refine_labels(vol.array, labels.copy(), (10.0, 4.0, 4.0), warnings=warnings, min_ml=0.1)
    assert ((out == 2) == (labels == 2)).all()  # the crumb is liver again; the rest as drawn
    assert warnings == []


def test_window_grows_to_cover_short_axes_and_shrinks_for_tiny_images():
    from napari_livertumor.pipeline import window_size

    assert window_size((32, 112, 112), (100, 117, 117), 8, 4.0) == (104, 120, 120)
    assert window_size((32, 112, 112), (100, 117, 117), 8, 1.0) == (32, 112, 112)
    assert window_size((32, 112, 112), (3, 10, 500), 8, 4.0) == (8, 16, 112)


def test_a_scan_of_a_few_cm_still_gives_the_network_two_voxels_at_its_deepest_level(untrained):
    """A 28 x 28 x 40 mm scan passed the size check and then failed inside torch ("Expected
    more than 1 spatial element when training"): one 8 x 8 x 8 window, 1 x 1 x 1 deep down."""
    from napari_livertumor.pipeline import window_size

    assert window_size((32, 96, 96), (8, 6, 6), 8, 1.5) == (16, 8, 8)
    vol = CTVolume(
        np.random.default_rng(1).normal(50, 20, (8, 40, 40)).astype(np.int16),
        spacing=(5.0, 0.7, 0.7),
        meta={"modality": "CT"},
    )
    cfg = InferenceConfig.from_models_dir(untrained, device="cpu", min_liver_ml=0)
    assert Segmenter(cfg).segment(vol).labels.shape == vol.shape


def test_a_liver_larger_than_any_but_the_rarest_is_said():
    """A water cylinder came out as a 7.5 L "liver" with no word (an MR series, 7.9 L)."""
    from napari_livertumor.pipeline import _liver_size_warning

    liver = np.zeros((100, 100, 100), np.uint8)
    liver[:, :, :70] = 1  # 700 000 voxels of 8 mm³: 5.6 L
    assert "5.6 L" in _liver_size_warning(liver, (2.0, 2.0, 2.0))
    assert _liver_size_warning(liver, (1.5, 1.5, 1.5)) is None  # 2.4 L
    # past the training phantoms' livers (about 1.1-1.9 L): on 2.7-3.5 L they measured too
    # little and missed tumor, without a word
    said = _liver_size_warning(liver, (1.7, 1.7, 1.7))  # 3.4 L
    assert said.startswith("the liver found (3.4 L) is larger than any the models were trained")
    from napari_livertumor.pipeline import is_serious

    assert not is_serious(said)  # said, not notified: livers of HCC patients are often large
    assert is_serious(_liver_size_warning(liver, (2.0, 2.0, 2.0)))  # 5.6 L: impossible


def _liver_scan(liver_hu=110.0):
    """A 2 mm grid: body 40 HU, a box liver (1.7 L) of ``liver_hu``, 10 HU of noise."""
    rng = np.random.default_rng(0)
    ct = np.full((80, 100, 100), -1000.0, np.float32)
    ct[:, 5:95, 5:95] = 40.0
    liver = np.zeros(ct.shape, np.uint8)
    liver[20:60, 20:60, 10:60] = 1
    ct[liver == 1] = liver_hu
    ct += rng.normal(0, 10, ct.shape).astype(np.float32)
    return ct, liver


def test_metal_dense_material_and_a_barely_enhanced_liver_are_said():
    """Metal streaks were called 96-202 mL of tumor and lipiodol halved the tumor Dice, each
    without a word."""
    from napari_livertumor.pipeline import _dense_material_warnings

    spacing = (2.0, 2.0, 2.0)
    ct, liver = _liver_scan()
    assert _dense_material_warnings(ct, liver, spacing, tumor=True) == []
    clip = ct.copy()
    clip[40, 50:53, 70:73] = 3071.0  # 9 voxels (0.07 mL) on a liver slice, 20 mm beside it
    (said,) = _dense_material_warnings(clip, liver, spacing, tumor=True)
    assert said.startswith("metal on the liver's slices (0.072 mL above 2500 HU on 1 slice(s)")
    from napari_livertumor.pipeline import is_serious

    assert is_serious(said)  # (96-202 mL of false tumor)
    far = ct.copy()
    far[64, 50:53, 70:73] = 3071.0  # 8 mm below the liver's slices: its streaks miss it
    far[40, 50:53, 95:98] = 3071.0  # on its slice, 70 mm beside it (an ECG electrode)
    assert _dense_material_warnings(far, liver, spacing, tumor=False) == []
    lip = ct.copy()
    lip[30:33, 30:35, 30:35] = 900.0  # 75 voxels, 0.6 mL: under 1 mL
    assert _dense_material_warnings(lip, liver, spacing, tumor=True) == []
    lip[30:36, 30:35, 30:35] = 900.0  # 150 voxels: 1.2 mL of lipiodol
    (said,) = _dense_material_warnings(lip, liver, spacing, tumor=True)
    assert said.startswith("dense material inside the liver found (1.2 mL above 400 HU")
    assert not is_serious(said)
    # (lipiodol in the middle of the image: no word of its side)
    assert "image's side" not in said and said.endswith("may be outlined wrongly")
    # a body cut by the image's side: the mask ran over the body wall and took in ribs, which
    # were said to be "lipiodol… a stent or clips" (a review's cut fields of view)
    cut_ct, cut_liver = ct.copy(), np.zeros_like(liver)
    cut_liver[20:60, 20:60, 0:40] = 1
    cut_ct[cut_liver == 1] = ct[liver == 1][: int(cut_liver.sum())]
    cut_ct[20:60, 25:35, 2:5] = 700.0  # 1200 voxels of rib by the image's side, 9.6 mL
    (said,) = _dense_material_warnings(cut_ct, cut_liver, spacing, tumor=True)
    assert "most of it within 20 mm of the image's side: bone (ribs) the mask took in" in said
    assert not is_serious(said)
    rib = ct.copy()
    rib[20:60, 20:60, 10] = 700.0  # bone the mask's edge took in (its outline: 12.8 mL)
    assert _dense_material_warnings(rib, liver, spacing, tumor=True) == []
    assert _dense_material_warnings(lip, liver, spacing, tumor=False) == []  # liver only
    # an unenhanced or arterial liver is no warning (HCC shows best on the arterial phase)
    native, liver = _liver_scan(liver_hu=55.0)
    assert _dense_material_warnings(native, liver, spacing, tumor=True) == []
    # nor a very noisy one: lone voxels over 400 HU (5 mL of them at 120 HU SD were said to
    # be lipiodol); small deposits of four voxels still count
    noisy = ct + np.random.default_rng(1).normal(0, 110, ct.shape).astype(np.float32)
    assert np.count_nonzero(noisy[liver == 1] > 400) * 8e-3 > 1.0  # over 1 mL of them
    assert _dense_material_warnings(noisy, liver, spacing, tumor=True) == []
    dots = ct.copy()
    for k in range(40):  # 40 deposits of 2 x 2 voxels: 1.28 mL
        z, y, x = 25 + k % 30, 25 + 6 * (k % 5), 15 + 6 * (k // 8)
        dots[z, y : y + 2, x : x + 2] = 900.0
    (said,) = _dense_material_warnings(dots, liver, spacing, tumor=True)
    assert said.startswith("dense material inside the liver found (1.3 mL above 400 HU")


def test_ribs_the_liver_mask_took_in_are_not_called_lipiodol():
    """Rib cross-sections a liver mask took in at its edge (4.7-10 mL on 5 of 8 phantoms of an
    independent generator, none holding anything over 350 HU in its liver) were said to be
    "dense material inside the liver …: lipiodol after chemoembolisation", sending the user
    to a treatment the patient never had. Bone joined to bone outside the mask is said as
    such; a deposit inside the liver beside the rib, not touching it, is still lipiodol."""
    from napari_livertumor.pipeline import _dense_material_warnings, is_serious

    spacing = (2.0, 2.0, 2.0)
    ct, liver = _liver_scan()  # the liver's lateral edge at x = 10, 20 mm from the image's side
    rib = ct.copy()
    rib[35:45, 15:65, 8:13] = 700.0  # a rib along it, beyond its front and back, half inside
    (said,) = _dense_material_warnings(rib, liver, spacing, tumor=True)
    # (its core: 10 slices x 38 rows x 2 columns of 8 mm³)
    assert said.startswith("the liver mask takes in 6.1 mL of bone at its edge"), said
    assert "lipiodol" not in said and not is_serious(said)
    assert said.endswith("check the mask's edge there")
    both = rib.copy()
    both[36:42, 30:36, 16:21] = 900.0  # lipiodol 6 mm inside the rib, liver between: 1.4 mL
    bone, deposit = _dense_material_warnings(both, liver, spacing, tumor=True)
    assert bone == said
    assert deposit.startswith(
        "dense material inside the liver found (1.4 mL above 400 HU: lipiodol after"
    )
    # a sliver of rib (1.2 mL) is no word: the liver's volume hardly moves
    sliver = ct.copy()
    sliver[38:40, 15:65, 8:13] = 700.0
    assert _dense_material_warnings(sliver, liver, spacing, tumor=True) == []


def test_lipiodol_in_a_tumor_label_is_not_called_bone():
    """Given a label map with its tumor (label 2), a deposit filling the tumor and the liver
    around it was said to be "bone at the mask's edge" (the tumor's voxels counted as outside
    the liver, joined to the deposit), or not said at all."""
    from napari_livertumor.pipeline import _dense_material_warnings

    spacing = (2.0, 2.0, 2.0)
    ct, liver = _liver_scan()
    zz, yy, xx = np.indices(ct.shape)
    r = np.sqrt((zz - 40) ** 2 + (yy - 40) ** 2 + (xx - 40) ** 2)
    for tumor_r, dense_r in ((6, 9), (8, 9), (8, 10)):
        dense, labels = ct.copy(), liver.copy()
        labels[(r <= tumor_r) & (labels == 1)] = 2
        dense[r <= dense_r] = 900.0
        said = _dense_material_warnings(dense, labels, spacing, tumor=True)
        assert len(said) == 1 and said[0].startswith("dense material inside the liver"), said
        assert "bone" not in said[0]


def test_a_liver_too_noisy_for_the_tumor_model_is_said():
    """20 HU more noise was said to halve a case's tumor Dice, unwarned; measured on 6
    phantoms (benchmarks/bench_noise.py) the model stands about 40 HU on its grid, and past
    that a warning says so. The noise is read on the stage's input (the liver masked)."""
    from napari_livertumor.pipeline import NOISE_WARN_HU, _noise_warning, is_serious, stage_noise_hu

    rng = np.random.default_rng(0)
    window = (-200.0, 250.0)
    for sd in (5.0, 20.0, 60.0):
        hu = np.full((30, 60, 60), -1000.0, np.float32)
        hu[5:25, 10:50, 10:50] = 100.0 + rng.normal(0, sd, (20, 40, 40))  # the liver
        x = np.clip((hu - window[0]) / (window[1] - window[0]), 0, 1)
        assert stage_noise_hu(x, window) == pytest.approx(sd, rel=0.08)
        import torch

        assert stage_noise_hu(torch.from_numpy(x), window) == pytest.approx(sd, rel=0.08)
    assert stage_noise_hu(np.zeros((5, 10, 10), np.float32), window) is None  # no liver
    assert _noise_warning(None) is None and _noise_warning(NOISE_WARN_HU - 1) is None
    said = _noise_warning(47.2)
    assert said.startswith("the liver is very noisy for the tumor model (about 47 HU SD")
    assert not is_serious(said)  # the liver stands it: a detail of the tumor's outlines


def test_a_liver_of_an_attenuation_no_liver_has_is_said():
    """A block of fat (-100 HU, noisy) was measured as a 1.5 L liver without a word."""
    from napari_livertumor.pipeline import _liver_attenuation_warning, is_serious

    rng = np.random.default_rng(0)
    ct = np.full((30, 64, 64), -1000, np.int16)
    liver = np.zeros(ct.shape, np.uint8)
    liver[5:25, 10:54, 10:54] = 1
    inside = liver == 1
    for hu, said in ((-100, "fat's or air's"), (55, None), (-25, None), (140, None),
                     (400, "bone's or contrast's")):  # fmt: skip
        ct[inside] = rng.normal(hu, 20, int(inside.sum())).astype(np.int16)
        text = _liver_attenuation_warning(ct, liver)
        if said is None:
            assert text is None, hu
        else:
            assert text.startswith("the liver found averages ") and said in text
            assert abs(int(text.split()[4]) - hu) <= 2
            assert is_serious(text)  # the masks as a whole may be wrong: notified
    liver[:] = 0
    liver[10, 20, 20] = 1
    assert _liver_attenuation_warning(ct, liver) is None  # too few voxels to say


def test_a_liver_of_one_value_throughout_is_said_not_to_look_scanned():
    """A uniform 20 HU box in air came out as a 6.8 L liver with 122 mL of tumor, and nothing
    said the image held no scanned tissue."""
    from napari_livertumor.pipeline import _liver_texture_warning

    ct = np.full((40, 64, 64), -1000, np.int16)
    ct[5:35, 10:54, 10:54] = 20
    liver = np.zeros(ct.shape, np.uint8)
    liver[5:35, 10:54, 10:54] = 1
    assert "of one value throughout (SD 0 HU" in _liver_texture_warning(ct, liver)
    noisy = ct + np.random.default_rng(0).normal(0, 3, ct.shape).astype(np.int16)
    assert _liver_texture_warning(noisy, liver) is None  # a heavily denoised scan: no word
    liver[:] = 0
    liver[10, 20, 20] = 1
    assert _liver_texture_warning(ct, liver) is None  # too few voxels to say


def test_a_lone_small_window_runs_as_two_copies_on_the_cpu_with_the_same_logits():
    from napari_livertumor.models import build_inference_network
    from napari_livertumor.pipeline import _pad_single_window

    cpu = torch.device("cpu")
    assert _pad_single_window(cpu, (32, 80, 80), 8)  # PyTorch's slow batch-of-one path
    assert not _pad_single_window(cpu, (64, 128, 128), 8)  # oneDNN already: run it alone
    assert not _pad_single_window(torch.device("meta"), (32, 80, 80), 8)
    torch.manual_seed(0)
    net = build_inference_network(NetworkConfig(out_channels=3)).eval()
    x = torch.rand(1, 1, 16, 32, 32)
    with torch.inference_mode():
        alone = net(x)
        padded = net(torch.cat([x, x]))[:1]
    torch.testing.assert_close(alone, padded, rtol=1e-4, atol=1e-4)


def test_each_stage_uses_its_own_window_growth():
    """The liver stage may cover the image with a few grown windows; the tumor stage keeps
    the trained window unless asked otherwise (its totals come through the progress calls)."""
    vol, _, _ = phantom(shape=(40, 160, 160))

    def totals(**kw):
        seen = {}
        kw.setdefault("tta", "none")  # the default: one pass per window (mirrored: below)
        segment_ct(
            vol,
            InferenceConfig(device="cpu", **kw),
            models=oracle_models(),
            progress=lambda stage, done, total: seen.__setitem__(stage, total),
        )
        return seen["liver"], seen["tumor"]

    liver_default, tumor_default = totals()
    assert liver_default == 1  # 40x160x160 at the liver grid fits in one grown window
    trained = totals(tumor_window_growth=1.0)[1]
    assert trained > 1  # the trained (16, 48, 48) window slides over the liver ROI
    assert totals(window_growth=1.0)[0] > 1
    assert totals(tumor_window_growth=8.0)[1] == 1
    # the default averages the trained window's pass and one grown window's
    assert tumor_default == trained + 1
    assert totals(tumor_window_growth=(1.0, 1.0))[1] == trained  # the same windows run once
    for bad in (0.5, (1.0, 0.5), ()):
        with pytest.raises(ValueError, match="tumor_window_growth"):
            InferenceConfig(tumor_window_growth=bad).validate()


def _toy_tumor_model(window=(16, 48, 48)):
    """An oracle tumor model whose network is a random 3x3x3 convolution: not symmetric under
    any flip, so a mirrored view really gives other logits."""
    model = oracle_models()["tumor"]
    torch.manual_seed(3)
    net = torch.nn.Conv3d(1, 3, 3, padding=1).eval()
    model.network = net
    model.metadata.roi_size = window
    return model


def test_a_cancel_inside_a_windows_forward_pass_stops_it_there():
    """The liver stage is one window on most scans: a Cancel waited for its whole forward pass
    (4.3 s of a 512² scan here). Now checked before each convolution; the hooks go after."""
    from napari_livertumor.pipeline import _sliding_logits
    from napari_livertumor.progress import Reporter

    model = _toy_tumor_model()
    ran = []
    model.network = torch.nn.Sequential(
        torch.nn.Conv3d(1, 3, 3, padding=1), torch.nn.Conv3d(3, 3, 3, padding=1)
    ).eval()
    model.network[0].register_forward_hook(lambda *a: ran.append(0))
    model.network[1].register_forward_hook(lambda *a: ran.append(1))
    x = torch.rand(16, 48, 48)
    cfg = InferenceConfig(device="cpu", tumor_window_growth=1.0)
    cpu = torch.device("cpu")
    with torch.inference_mode(), pytest.raises(Cancelled):
        # the user clicks Cancel once the first convolution has run
        _sliding_logits(model, x, cpu, cfg, Reporter(None, lambda: bool(ran)), "tumor")
    assert ran == [0]
    with torch.inference_mode():  # no check left behind on the (cached) network
        _sliding_logits(model, x, cpu, cfg, Reporter(None, None), "tumor")
    assert ran == [0, 0, 1]
    assert all(not m._forward_pre_hooks for m in model.network.modules())


def test_the_tumor_stage_averages_each_window_with_its_mirrored_views():
    from napari_livertumor.pipeline import TTA_FLIPS, _sliding_logits
    from napari_livertumor.progress import Reporter

    model = _toy_tumor_model()
    x = torch.rand(16, 48, 48)
    cpu = torch.device("cpu")

    def logits(stage, tta, x=x):
        cfg = InferenceConfig(device="cpu", tta=tta, tumor_window_growth=1.0, window_growth=1.0)
        with torch.inference_mode():
            return _sliding_logits(model, x, cpu, cfg, Reporter(None, None), stage)

    one = logits("tumor", "none")
    for tta in ("inplane", "all"):
        # one window covers the image, so mirroring each window = mirroring the image
        views = []
        for dims in TTA_FLIPS[tta]:
            d = [a - 2 for a in dims]  # batch axes -> (z, y, x) axes; logits are (C, z, y, x)
            flipped = logits("tumor", "none", torch.flip(x, d) if d else x)
            views.append(torch.flip(flipped, [a - 1 for a in dims]) if dims else flipped)
        expected = torch.stack(views).mean(0)
        got = logits("tumor", tta)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(got, one, atol=1e-3)  # the views did differ
    assert len({tuple(d) for d in TTA_FLIPS["all"]}) == 8
    # the liver stage never mirrors
    torch.testing.assert_close(logits("liver", "inplane"), logits("liver", "none"))


def test_mirrored_passes_are_counted_in_the_progress_and_checked_for_cancel():
    vol, _, _ = phantom()
    models = oracle_models()
    models["tumor"] = _toy_tumor_model()

    def run(tta):
        seen = {}
        segment_ct(
            vol,
            InferenceConfig(device="cpu", tta=tta),
            models=models,
            progress=lambda stage, done, total: seen.__setitem__(stage, (done, total)),
        )
        return seen

    plain, mirrored, everything = run("none"), run("inplane"), run("all")
    assert mirrored["liver"] == plain["liver"]
    assert mirrored["tumor"][1] == 4 * plain["tumor"][1] == mirrored["tumor"][0]
    assert everything["tumor"][1] == 8 * plain["tumor"][1]
    # a cancel asked for after the first pass of a window stops before its mirrored views
    calls = []
    models["tumor"].network.register_forward_hook(lambda *_: calls.append(1))
    state = {"stop": False}

    def progress(stage, done, total):
        state["stop"] = stage == "tumor" and done >= 1

    with pytest.raises(Cancelled):
        segment_ct(
            vol,
            InferenceConfig(device="cpu", tta="inplane"),
            models=models,
            progress=progress,
            should_cancel=lambda: state["stop"],
        )
    assert len(calls) == 1
    with pytest.raises(ValueError, match="tta"):
        InferenceConfig(tta="flip").validate()


def test_calibration_finds_the_shift_that_undoes_a_biased_threshold_and_restores_the_model():
    from napari_livertumor.training.calibrate import best_shift, score_shifts

    vol, liver, tumor = phantom()
    truth = np.where(tumor, 2, np.where(liver, 1, 0)).astype(np.uint8)
    models = oracle_models()
    seg = Segmenter(InferenceConfig(device="cpu"), models=models)
    cases = [(vol.array, vol.spacing, truth)]
    for stage in ("liver", "tumor"):
        scores = score_shifts(seg, cases, stage, grid=(-30.0, 0.0, 30.0))
        assert scores["n"] == [1, 1, 1]
        assert best_shift(scores) == 0.0, scores["mean"]
        assert scores["mean"][1] > 0.9 and min(scores["mean"][0], scores["mean"][2]) < 0.8
        assert models[stage].metadata.logit_bias is None  # put back as it was


def test_best_shift_breaks_ties_towards_the_current_threshold():
    from napari_livertumor.training.calibrate import best_shift

    scores = {"grid": [-2.0, -1.0, 0.0, 1.0], "mean": [0.5, 0.8, 0.8, float("nan")]}
    assert best_shift(scores) == 0.0
    assert best_shift(scores, current=-2.0) == -1.0
    with pytest.raises(ValueError):
        best_shift({"grid": [0.0], "mean": [float("nan")]})


def test_a_written_shift_loads_back_and_keeps_the_previous_one(untrained, tmp_path):
    import shutil

    from napari_livertumor.models import load_model, read_metadata
    from napari_livertumor.training.calibrate import write_shift

    folder = tmp_path / "tumor"
    shutil.copytree(untrained / "tumor", folder)
    weights = (folder / "model.safetensors").read_bytes()
    scores = {"grid": [-1.0, 0.0], "mean": [0.4, 0.5], "per_case": [[0.4, 0.5]]}
    write_shift(folder, -1.0, scores, "a test")
    meta = read_metadata(folder)
    assert meta.logit_bias == (0.0, 0.0, -1.0)
    cal = meta.metrics["pipeline_calibration"]
    assert cal["logit_bias"] == -1.0 and cal["measured_on"] == "a test"
    assert (folder / "model.safetensors").read_bytes() == weights
    assert load_model(folder, stage="tumor").metadata.logit_bias == (0.0, 0.0, -1.0)


def _blob(shape, centre, radius):
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    d2 = sum((g - c) ** 2 for g, c in zip((zz, yy, xx), centre, strict=True))
    return d2 <= radius**2, np.sqrt(d2)


def test_the_peak_filter_drops_unsure_components_whole_and_keeps_sure_ones_whole():
    from napari_livertumor.pipeline import tumor_mask_from_score

    shape = (20, 40, 40)
    sure, d_sure = _blob(shape, (10, 10, 10), 5)
    faint, d_faint = _blob(shape, (10, 28, 28), 5)
    # a sure lesion peaks at +5 in its centre, a faint one at +1; both are positive out to r=5
    score = np.full(shape, -3.0, np.float32)
    score[sure] = (5.0 * (1 - d_sure / 5.5))[sure]
    score[faint] = (1.0 * (1 - d_faint / 5.5))[faint]
    score = torch.from_numpy(score)
    liver = np.ones(shape, bool)
    spacing = (1.0, 1.0, 1.0)
    plain = tumor_mask_from_score(score, liver, spacing, min_ml=0.0, min_peak=0.0).astype(bool)
    assert np.array_equal(plain, sure | faint)
    dropped = []
    kept = tumor_mask_from_score(
        score, liver, spacing, min_ml=0.0, min_peak=2.0, dropped=dropped
    ).astype(bool)
    assert np.array_equal(kept, sure)  # the sure one keeps its extent, the faint one is gone
    # ... and is reported, not lost
    assert len(dropped) == 1
    assert dropped[0]["centroid_zyx"] == pytest.approx([10, 28, 28], abs=0.01)
    assert dropped[0]["volume_ml"] == pytest.approx(faint.sum() / 1000)
    assert dropped[0]["peak_margin"] == pytest.approx(1.0)
    assert not tumor_mask_from_score(score, liver, spacing, min_peak=6.0).any()
    # a faint part meeting the sure one only at a corner is the same lesion (26-connected, as
    # the stats count it): kept whole, not cut off and listed as unsure
    corner = np.full((8, 8, 8), -3.0, np.float32)
    corner[1:4, 1:4, 1:4] = 5.0
    corner[4:7, 4:7, 4:7] = 1.0
    dropped = []
    whole = tumor_mask_from_score(
        torch.from_numpy(corner), np.ones(corner.shape, bool), spacing, min_ml=0.0, min_peak=2.0,
        dropped=dropped,
    )  # fmt: skip
    assert whole.sum() == 54 and dropped == []
    # the volume filter works on the same components (each blob is 0.5 mL at 1 mm voxels)
    assert not tumor_mask_from_score(score, liver, spacing, min_ml=1.0).any()
    # and nothing leaves the liver
    half = liver.copy()
    half[:, :, 20:] = False
    assert np.array_equal(
        tumor_mask_from_score(score, half, spacing, min_ml=0.0).astype(bool), sure
    )


def test_the_lesion_filter_comes_from_the_config_else_the_model_else_defaults():
    import dataclasses

    from napari_livertumor.pipeline import DEFAULT_MIN_TUMOR_ML

    models = oracle_models()
    assert Segmenter(InferenceConfig(device="cpu"), models=models).lesion_filter() == (
        DEFAULT_MIN_TUMOR_ML,
        0.0,
    )
    t = models["tumor"]
    meta = dataclasses.replace(t.metadata, lesion_filter={"min_ml": 0.4, "min_peak": 3.0})
    models = dict(models, tumor=dataclasses.replace(t, metadata=meta))
    assert Segmenter(InferenceConfig(device="cpu"), models=models).lesion_filter() == (0.4, 3.0)
    cfg = InferenceConfig(device="cpu", min_tumor_ml=0.0, min_lesion_peak=0.0)
    assert Segmenter(cfg, models=models).lesion_filter() == (0.0, 0.0)
    with pytest.raises(ValueError, match="min_lesion_peak"):
        InferenceConfig(min_lesion_peak=-1).validate()


def test_a_lesion_filter_in_metadata_loads_back_and_bad_ones_are_refused(untrained, tmp_path):
    import json
    import shutil

    from napari_livertumor.models import load_model

    folder = tmp_path / "tumor"
    shutil.copytree(untrained / "tumor", folder)
    raw = json.loads((folder / "metadata.json").read_text())
    raw["lesion_filter"] = {"min_ml": 0.5, "min_peak": 2}
    (folder / "metadata.json").write_text(json.dumps(raw))
    assert load_model(folder, stage="tumor").metadata.lesion_filter == {
        "min_ml": 0.5,
        "min_peak": 2.0,
    }
    for bad in ({"min_ml": -1}, {"peak": 2}, "strict"):
        raw["lesion_filter"] = bad
        (folder / "metadata.json").write_text(json.dumps(raw))
        with pytest.raises(ModelError, match="lesion_filter"):
            load_model(folder, stage="tumor")


def test_the_lesion_filter_sweep_scores_what_the_pipeline_returns():
    from napari_livertumor.training.calibrate import score_lesion_filters

    vol, liver, tumor = phantom()
    ct = vol.array.copy()
    ct[20, 48, 70] = TUMOR_HU  # a speck the volume filter should remove
    truth = np.where(tumor, 2, np.where(liver, 1, 0)).astype(np.uint8)
    models = oracle_models()
    seg = Segmenter(InferenceConfig(device="cpu"), models=models)
    res = score_lesion_filters(
        seg, [(ct, vol.spacing, truth)], shifts=(0.0, -30.0), peaks=(0.0, 50.0), min_mls=(0.0, 0.5)
    )
    assert len(res["combos"]) == 8 and res["n"] == [1] * 8
    for j, (shift, peak, min_ml) in enumerate(res["combos"]):
        if shift != 0.0:
            continue
        cfg = InferenceConfig(device="cpu", min_tumor_ml=min_ml, min_lesion_peak=peak)
        labels = segment_ct(vol.with_array(ct), cfg, models=models).labels
        assert res["per_case"][0][j] == pytest.approx(dice(labels == 2, tumor), abs=1e-6)
    by = {tuple(c): m for c, m in zip(res["combos"], res["mean"], strict=True)}
    assert by[(0.0, 0.0, 0.5)] > 0.9
    assert by[(0.0, 50.0, 0.5)] == 0.0  # nothing is that sure: every lesion dropped
    assert by[(-30.0, 0.0, 0.5)] < by[(0.0, 0.0, 0.5)]


def test_the_lesion_filter_choice_trades_false_lesions_only_at_no_cost_in_dice_or_found():
    from napari_livertumor.training.calibrate import choose_lesion_filter

    combos = [[0.0, 0.0, 0.1], [0.0, 2.0, 0.1], [0.0, 4.0, 0.1], [0.5, 2.0, 0.1]]
    # per case and combo: (kept, false, found, true); two cases
    comps = [
        [(3, 2, 1, 1), (2, 1, 1, 1), (1, 0, 1, 1), (2, 1, 1, 1)],
        [(2, 1, 1, 2), (1, 0, 1, 2), (0, 0, 0, 2), (2, 0, 2, 2)],
    ]
    res = {"combos": combos, "mean": [0.60, 0.605, 0.61, 0.55], "components": comps}
    # peak 4 has the fewest false lesions and the best Dice but finds one lesion fewer;
    # shift +0.5 finds more but costs 0.05 Dice: peak 2 at the same shift is chosen
    assert choose_lesion_filter(res, current=(0.0, 0.0, 0.1)) == 1
    # with a loose Dice tolerance the +0.5 shift (as few false lesions, one more found) wins
    assert choose_lesion_filter(res, current=(0.0, 0.0, 0.1), dice_tolerance=0.1) == 3
    # nothing qualifies beside the current setting: keep it
    res_worse = dict(res, mean=[0.60, 0.4, 0.4, 0.4])
    assert choose_lesion_filter(res_worse, current=(0.0, 0.0, 0.1)) == 0
    with pytest.raises(ValueError, match="not in the scored grid"):
        choose_lesion_filter(res, current=(1.0, 0.0, 0.1))


def test_lesions_the_filter_drops_are_listed_in_the_stats_on_the_ct_grid():
    import dataclasses

    vol, liver, tumor = phantom()
    models = oracle_models()
    t = models["tumor"]
    # the oracle's tumor margin peaks near 20 * (0.6 - 0.3) = 6 in the phantom's tumor
    for peak, n_unsure in ((2.0, 0), (50.0, 1)):
        meta = dataclasses.replace(t.metadata, lesion_filter={"min_ml": 0.1, "min_peak": peak})
        result = segment_ct(
            vol,
            InferenceConfig(device="cpu"),
            models=dict(models, tumor=dataclasses.replace(t, metadata=meta)),
        )
        assert result.stats["lesion_filter"] == {"min_ml": 0.1, "min_peak": peak}
        assert len(result.stats["unsure_lesions"]) == n_unsure
        assert result.stats["lesion_count"] == 1 - n_unsure
    (u,) = result.stats["unsure_lesions"]
    true_centre = np.argwhere(tumor).mean(axis=0)
    assert np.allclose(u["centroid_zyx"], true_centre, atol=1.0)  # whole-volume voxel coords
    true_ml = tumor.sum() * np.prod(vol.spacing) / 1000
    assert u["volume_ml"] == pytest.approx(true_ml, rel=0.2)
    assert 0 < u["peak_margin"] < 50


def test_a_written_lesion_filter_adds_to_the_shift_and_keeps_the_previous_values(
    untrained, tmp_path
):
    import shutil

    from napari_livertumor.models import load_model, read_metadata
    from napari_livertumor.training.calibrate import write_lesion_filter

    folder = tmp_path / "tumor"
    shutil.copytree(untrained / "tumor", folder)
    weights = (folder / "model.safetensors").read_bytes()
    write_lesion_filter(folder, [0.5, 2.0, 0.25], {"measured_on": "a test"})
    write_lesion_filter(folder, [0.5, 3.0, 0.1])  # shifts add up: 0 + 0.5 + 0.5
    meta = read_metadata(folder)
    assert meta.logit_bias == (0.0, 0.0, 1.0)
    assert meta.lesion_filter == {"min_ml": 0.1, "min_peak": 3.0}
    rec = meta.metrics["lesion_calibration"]
    assert rec["previous"] == {
        "logit_bias": [0.0, 0.0, 0.5],
        "lesion_filter": {"min_ml": 0.25, "min_peak": 2.0},
    }
    assert (folder / "model.safetensors").read_bytes() == weights
    seg = Segmenter(
        InferenceConfig(device="cpu"),
        models={
            "liver": load_model(untrained / "liver", stage="liver"),
            "tumor": load_model(folder, stage="tumor"),
        },
    )
    assert seg.lesion_filter() == (0.1, 3.0)
    with pytest.raises(ValueError, match="tumor model"):
        write_lesion_filter(untrained / "liver", [0.0, 1.0, 0.1])


# ---------------------------------------------------------------- values and sizes that are off
def _with_air(vol, width=6):
    """The phantom with air (-1000 HU) around it, as a real CT has."""
    arr = np.array(vol.array)
    arr[:, :width] = arr[:, -width:] = -1000
    arr[:, :, :width] = arr[:, :, -width:] = -1000
    return CTVolume(arr, spacing=vol.spacing, origin=vol.origin, meta=dict(vol.meta))


def test_padding_of_minus_32768_is_not_read_as_a_uniform_image():
    vol, liver, _ = phantom()
    arr = np.array(_with_air(vol).array)
    arr[:, :, :4] = -32768  # outside the scanner's field of view, a common convention
    padded = CTVolume(arr, spacing=vol.spacing, origin=vol.origin, meta={"modality": "CT"})
    result = segment_ct(
        padded, InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models()
    )
    assert not any("uniform" in w for w in result.warnings)
    assert dice(result.labels > 0, liver) > 0.95


def test_unsigned_integer_ct_values_are_segmented_without_overflow():
    vol, liver, _ = phantom()
    models = oracle_models()
    # the tumor stage paints outside the liver with outside_hu: negative, which uint16 cannot hold
    models["tumor"].metadata = dataclasses.replace(models["tumor"].metadata, outside_hu=-1000.0)
    unsigned = CTVolume(
        np.clip(vol.array, 0, None).astype(np.uint16), spacing=vol.spacing, meta={"modality": "CT"}
    )
    result = segment_ct(unsigned, InferenceConfig(device="cpu", min_liver_ml=1), models=models)
    assert dice(result.labels > 0, liver) > 0.8  # values below 0 were clipped


def _head_ct(shape=(30, 128, 128), spacing=(3.0, 1.0, 1.0)):
    """Air, a skull (closed ring of bone) and a brain as bright as the oracle's liver."""
    zz, yy, xx = np.meshgrid(
        *[(np.arange(n) - n / 2) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij"
    )
    r = np.sqrt((zz / 70) ** 2 + (yy / 55) ** 2 + (xx / 48) ** 2)
    ct = np.full(shape, -1000, np.int16)
    ct[r <= 1.0] = 1200  # skull
    ct[r <= 0.88] = LIVER_HU  # brain
    return CTVolume(ct, spacing=spacing, meta={"modality": "CT"})


def test_a_head_ct_gives_no_liver_and_says_why():
    """A brain taken for a liver lies inside closed rings of skull (checked on the organ the
    liver model picked: the brain, not the skull)."""
    from napari_livertumor.pipeline import _inside_skull

    head = _head_ct()
    brain = (np.asarray(head.array) == LIVER_HU).astype(np.uint8)
    said = _inside_skull(np.asarray(head.array), brain, head.spacing)
    assert said is not None and "no liver found" in said and "head CT" in said
    # an abdomen (no closed ring of bone around the liver) is not taken for a head
    vol, liver, _ = phantom()
    normal = segment_ct(vol, InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models())
    assert not any("head CT" in w for w in normal.warnings) and normal.labels.any()
    assert _inside_skull(np.asarray(vol.array), liver.astype(np.uint8), vol.spacing) is None


def test_the_skull_test_judges_the_share_of_the_whole_organ_in_any_slice_order():
    """The share of the organ inside closed rings of bone is the whole organ's, whichever
    slices hold the rings (the test looks at the largest slices first and stops once the share
    can no longer pass 80 %): just under and just over the threshold, and the share said."""
    from napari_livertumor.pipeline import MAX_ENCLOSED_BY_BONE, _inside_skull

    n, size = 20, 64
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    rng = np.random.default_rng(3)
    radii = rng.uniform(6, 14, n)  # organ areas differ from slice to slice
    organ = np.stack([(r <= radii[z]).astype(np.uint8) for z in range(n)])
    area = organ.reshape(n, -1).sum(axis=1)
    for trial in range(12):
        ringed = rng.permutation(n)[: rng.integers(10, n + 1)]
        ct = np.full((n, size, size), -1000.0, np.float32)  # air all round
        ct[organ > 0] = 40.0
        for z in ringed:
            ct[z][(r > 14.5) & (r <= 17)] = 1000.0  # a closed ring of bone round the organ
        share = area[ringed].sum() / area.sum()
        said = _inside_skull(ct, organ, (5.0, 1.0, 1.0), hu_suspect=True)
        if share <= MAX_ENCLOSED_BY_BONE:
            assert said is None, (trial, share)
        else:
            assert said is not None and f"{100 * share:.0f} %" in said, (trial, share, said)


def test_values_that_are_not_hounsfield_units_are_warned_about():
    vol, _, _ = phantom()
    cfg = InferenceConfig(device="cpu", min_liver_ml=1)
    ok = segment_ct(_with_air(vol), cfg, models=oracle_models())
    assert not any("Hounsfield" in w for w in ok.warnings)
    arr = np.asarray(_with_air(vol).array, np.float32)
    up = arr + 1024  # an intercept not applied, the field of view's padding still at -1024
    up[:, :, :8] = -1024
    cases = {
        "normalised": ((arr + 1024) / 4096, "no air at -1000"),
        "shifted up": (up, "denser than bone"),
        "shifted down": (arr - 1024, "almost nothing lies between -150 and 150"),
    }
    for name, (values, says) in cases.items():
        odd = CTVolume(values, spacing=vol.spacing, meta={"modality": "CT"})
        result = segment_ct(odd, cfg, models=oracle_models())
        assert any(
            "do not look like Hounsfield units" in w and says in w for w in result.warnings
        ), (
            name,
            result.warnings,
        )
    # a few absurd voxels (a no-data fill) are warned about, not a reason to refuse the scan
    few = arr.copy()
    few[0, 0, :3] = -3.4e38
    result = segment_ct(
        CTVolume(few, spacing=vol.spacing, meta={"modality": "CT"}), cfg, models=oracle_models()
    )
    assert any("no CT has" in w for w in result.warnings) and result.labels.any()


def test_bone_dense_tissue_inside_the_liver_is_not_taken_for_a_skull():
    """A dense rim inside the liver (lipiodol after TACE, a calcified cyst: > 450 HU) that
    encloses most of it is still no skull: the liver's own edge lies outside it."""
    from scipy import ndimage as ndi

    from napari_livertumor.pipeline import _inside_skull

    vol, liver, _ = phantom()
    arr = np.array(_with_air(vol).array)
    ring = np.zeros_like(liver)
    for z in range(liver.shape[0]):
        if liver[z].any():
            outer = ndi.binary_erosion(liver[z], iterations=6)
            ring[z] = outer & ~ndi.binary_erosion(outer, iterations=2)
    arr[ring] = 1200
    enclosed = sum(ndi.binary_fill_holes(ring[z]).sum() for z in range(ring.shape[0]))
    assert 0.5 < enclosed / liver.sum() < 0.8  # the rim holds most of the liver
    assert _inside_skull(arr, liver.astype(np.uint8), vol.spacing) is None
    dense = CTVolume(arr, spacing=vol.spacing, meta={"modality": "CT"})
    result = segment_ct(
        dense, InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models()
    )
    assert not any("head CT" in w for w in result.warnings) and (result.labels > 0).any()


@pytest.mark.parametrize(
    ("array", "spacing", "match"),
    [
        (np.zeros((3, 3, 3), np.int16), (1.0, 1.0, 1.0), "too small to hold a liver"),
        (np.zeros((1, 64, 64), np.int16), (2.5, 0.8, 0.8), "too small to hold a liver"),
        (np.zeros((20, 64, 64), np.int16), (2.5, 0.0008, 0.0008), "implausible voxel spacing"),
        (np.zeros((20, 64, 64), np.int16), (2500.0, 800.0, 800.0), "implausible voxel spacing"),
        (np.full((20, 64, 64), 1e30, np.float32), (2.5, 0.8, 0.8), "not Hounsfield units"),
        (np.zeros((20, 64, 64), bool), (2.5, 0.8, 0.8), "a mask, not a CT"),
        (np.zeros((20, 64, 64), np.complex64), (2.5, 0.8, 0.8), "real numbers"),
    ],
)
def test_volumes_the_models_cannot_read_are_refused_with_the_reason(array, spacing, match):
    vol = CTVolume(array, spacing=spacing, meta={"modality": "CT", "source": "scan.nii.gz"})
    with pytest.raises(InputError, match=match) as info:
        segment_ct(vol, InferenceConfig(device="cpu"), models=oracle_models())
    assert "scan.nii.gz" in str(info.value)


def test_a_too_small_scan_is_told_only_what_it_lacks():
    """Two 1.25-mm slices read "2 × 512 × 512 voxels, 2 × 414 × 414 mm …; at least 2
    slices, 5 mm through-plane … are needed": it has 2 slices, and is 2.5 mm thick."""
    from napari_livertumor.pipeline import check_volume

    vol = CTVolume(np.zeros((2, 64, 64), np.int16), spacing=(1.25, 0.8, 0.8),
                   meta={"modality": "CT", "source": "two.nii.gz"})  # fmt: skip
    with pytest.raises(InputError) as info:
        check_volume(vol)
    text = str(info.value)
    assert (
        "2.5 × 51.2 × 51.2 mm (head-feet, front-back, left-right); needed: 5 mm through-plane"
        in text
    ), text
    assert "at least 2 slices" not in text


def test_the_size_check_goes_by_the_patients_axes_not_the_files_storage_order():
    """A 2-slice axial slab stored in sagittal order was refused for "18.9 mm in-plane", and
    four sagittal columns stored that way were run."""
    from napari_livertumor.pipeline import check_volume

    sagittal = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], float)  # x index → head-feet
    slab = CTVolume(np.zeros((64, 64, 2), np.int16), spacing=(0.8, 0.8, 9.4),
                    direction=sagittal, meta={"source": "slab.nii.gz"})  # fmt: skip
    assert not any("too small" in n for n in check_volume(slab, for_models=False))
    columns = CTVolume(np.zeros((4, 64, 64), np.int16), spacing=(3.9, 3.9, 3.9),
                       direction=sagittal, meta={"source": "cols.nii.gz"})  # fmt: skip
    with pytest.raises(InputError, match=r"64 × 64 × 4 voxels, .* needed: 20 mm in-plane"):
        check_volume(columns)


def test_an_oblique_scan_is_warned_of_and_a_straight_or_tilted_one_is_not():
    from napari_livertumor.pipeline import check_volume

    def turned(degrees):
        a = np.radians(degrees)
        rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        return CTVolume(np.zeros((20, 64, 64), np.int16), spacing=(2.5, 0.8, 0.8),
                        direction=rot, meta={"source": "scan.nii.gz"})  # fmt: skip

    def warned(vol):
        return [n for n in check_volume(vol, for_models=False) if "oblique" in n]

    assert not warned(turned(0)) and not warned(turned(15))
    (note,) = warned(turned(30))
    assert "turned 30° from the patient's" in note and "reformat it to axial" in note
    assert "turned 44°" in warned(turned(44))[0]
    shear = np.eye(3)
    shear[:, 1] = [0, np.cos(np.radians(25)), np.sin(np.radians(25))]  # a gantry tilt of 25°
    tilted = CTVolume(np.zeros((20, 64, 64), np.int16), spacing=(2.5, 0.8, 0.8),
                      direction=shear, meta={"source": "tilted"})  # fmt: skip
    assert not warned(tilted)  # the reader's own tilt warning says it


def test_a_models_folder_that_is_missing_says_so_and_one_model_is_taken_as_the_panel_does(
    tmp_path, untrained, caplog
):
    """`--models run/tumor` was refused ("is one model folder"), where the Segment panel took
    the same folder with the shipped model for the other stage."""
    from napari_livertumor.models import default_model_dir

    with pytest.raises(ModelError, match="models folder not found"):
        Segmenter(InferenceConfig.from_models_dir(tmp_path / "nope", device="cpu"))
    with caplog.at_level("WARNING"):
        cfg = InferenceConfig.from_models_dir(untrained / "tumor", device="cpu")
    assert (cfg.liver_model, cfg.tumor_model) == (default_model_dir("liver"), untrained / "tumor")
    assert "is one tumor model: the shipped liver model is used with it" in caplog.text
    cfg = InferenceConfig.from_models_dir(untrained / "liver", device="cpu")
    assert (cfg.liver_model, cfg.tumor_model) == (untrained / "liver", default_model_dir("tumor"))
    seg = Segmenter(cfg)
    assert seg.liver.path == untrained / "liver"
    (untrained / "broken").mkdir()
    (untrained / "broken" / "metadata.json").write_text("{ not json")
    with pytest.raises(ModelError, match="metadata.json"):
        InferenceConfig.from_models_dir(untrained / "broken", device="cpu")


def test_a_models_folder_with_one_stage_takes_the_shipped_model_for_the_other(
    tmp_path, untrained, caplog
):
    """`segment --models ens` with only ens/tumor (an ensemble, a fine-tuned tumor model) was
    refused ("ens/liver: no liver model here"); the Segment panel takes the shipped liver."""
    import shutil

    from napari_livertumor.models import default_model_dir

    shutil.copytree(untrained / "tumor", tmp_path / "ens" / "tumor")
    with caplog.at_level("WARNING"):
        cfg = InferenceConfig.from_models_dir(tmp_path / "ens", device="cpu")
    assert cfg.liver_model == default_model_dir("liver")
    assert cfg.tumor_model == tmp_path / "ens" / "tumor"
    assert "has no liver/ model: the shipped liver model is used with its tumor/" in caplog.text
    (tmp_path / "ens" / "liver").write_text("in the way")  # something there: not replaced
    assert (
        InferenceConfig.from_models_dir(tmp_path / "ens").liver_model == tmp_path / "ens" / "liver"
    )


def test_nan_voxels_are_read_as_the_lowest_value_and_warned_about(untrained):
    """A float CT with one NaN (a converter's fill, a layer from another reader): windowing
    kept the NaN and the network spread it over its whole window, so the liver vanished."""
    base = _with_air(phantom(shape=(24, 64, 64))[0])
    arr = np.asarray(base.array, np.float32)
    cfg = InferenceConfig.from_models_dir(untrained, device="cpu", min_liver_ml=0)
    seg = Segmenter(cfg)
    clean = seg.segment(CTVolume(arr, spacing=base.spacing, meta={"modality": "CT"}))
    assert (clean.labels > 0).any()
    poisoned = arr.copy()
    poisoned[0, 0, 0], poisoned[-1, -1, -1] = np.nan, -np.inf  # both in the air (-1000)
    result = seg.segment(CTVolume(poisoned, spacing=base.spacing, meta={"modality": "CT"}))
    np.testing.assert_array_equal(result.labels, clean.labels)
    assert any("2 NaN/infinite voxels" in w for w in result.warnings)
    with pytest.raises(InputError, match="every voxel is NaN"):
        seg.segment(CTVolume(np.full_like(arr, np.nan), spacing=base.spacing))


def test_num_threads_zero_gives_back_every_core_and_a_refine_dict_is_read(monkeypatch):
    """num_threads=0 ("all cores") left torch at whatever an earlier run set; a refine_config
    given as a dict (the JSON of a --refine-config file) failed late, in the refinement."""
    from napari_livertumor import pipeline
    from napari_livertumor.refine import RefineConfig

    monkeypatch.setattr(pipeline, "default_num_threads", lambda: 3)
    before = torch.get_num_threads()
    try:
        Segmenter(InferenceConfig(device="cpu", num_threads=1), models=oracle_models())
        assert torch.get_num_threads() == 1
        Segmenter(InferenceConfig(device="cpu", num_threads=0), models=oracle_models())
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    cfg = InferenceConfig(refine_config={"iterations": 5})
    cfg.validate()
    assert isinstance(cfg.refine_config, RefineConfig) and cfg.refine_config.iterations == 5
    with pytest.raises(SettingsError, match="refine_config: unknown refine setting"):
        InferenceConfig(refine_config={"iters": 5}).validate()  # (a setting: SettingsError)


def test_a_label_map_given_as_the_ct_is_refused_by_name():
    """A labelsTr file given as the CT was segmented (liver 729 mL) with only a warning that
    the values did not look like HU."""
    vol, liver, tumor = phantom()
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[tumor] = 2
    mask = CTVolume(
        labels, spacing=vol.spacing, meta={"modality": "CT", "source": "HCC_002.nii.gz"}
    )
    with pytest.raises(
        InputError, match=r"HCC_002.nii.gz: the image holds only the values 0, 1, 2: a label map"
    ):
        segment_ct(mask, InferenceConfig(device="cpu"), models=oracle_models())
    from napari_livertumor.pipeline import check_volume

    assert any("a label map" in n for n in check_volume(mask, for_models=False))
    # an image layer with no file (the console, another plugin): named by its layer name, not
    # by "." (an empty path)
    for meta, start in (({"description": "LABELMAP"}, "'LABELMAP': "), ({}, "the image holds")):
        unnamed = CTVolume(labels, spacing=vol.spacing, meta={"source": "", **meta})
        with pytest.raises(InputError) as refused:
            check_volume(unnamed)
        assert str(refused.value).startswith(start), str(refused.value)


def test_a_script_passing_an_array_a_path_or_a_string_setting_is_told_what_to_pass(
    tmp_path, untrained
):
    """A numpy array or a path given to segment() failed with AttributeError ('meta'); a setting
    given as text with numpy's TypeError; a model's file or a missing model folder named the
    folder above it, as if a models root had been meant."""
    from napari_livertumor.errors import InputError, SettingsError

    seg = Segmenter(InferenceConfig.from_models_dir(untrained, device="cpu"))
    with pytest.raises(InputError, match=r"takes a CTVolume, not a ndarray: wrap the array"):
        seg.segment(np.zeros((8, 16, 16), np.int16))
    with pytest.raises(InputError, match=r"ct\.nii\.gz: .*load_ct\(path\)"):
        seg.segment(str(tmp_path / "ct.nii.gz"))
    with pytest.raises(SettingsError, match="min_tumor_ml must be a number >= 0; got '0.5'"):
        InferenceConfig(min_tumor_ml="0.5").validate()
    for name, text in (("sw_overlap", "0.5"), ("sw_batch_size", "2"), ("num_threads", "2")):
        with pytest.raises(SettingsError, match=f"{name} must be a .*got '{text}'"):
            InferenceConfig(**{name: text}).validate()
    InferenceConfig(  # numpy's numbers and 0-d arrays are numbers
        sw_overlap=np.float32(0.25), sw_batch_size=np.int64(2), num_threads=np.int64(1),
        min_tumor_ml=np.array(0.5), min_liver_ml=np.int64(10),
    ).validate()  # fmt: skip
    with pytest.raises(ModelError, match="liver model folder not found") as err:
        Segmenter(InferenceConfig(liver_model=tmp_path / "no" / "such", device="cpu"))
    assert err.value.path == tmp_path / "no" / "such"
    with pytest.raises(ModelError, match=r"a file, not a liver model folder: give the folder"):
        Segmenter(InferenceConfig(liver_model=untrained / "liver" / "metadata.json", device="cpu"))


def test_stats_say_what_the_refinement_did():
    """ "refine": true alone could not tell a run whose every lesion the contrast gate kept as
    drawn from one the contour changed."""
    vol, _, _ = phantom()
    models = oracle_models()
    off = segment_ct(
        vol, InferenceConfig(device="cpu", min_liver_ml=1, refine=False), models=models
    )
    on = segment_ct(vol, InferenceConfig(device="cpu", min_liver_ml=1, refine=True), models=models)
    assert "refine_effect" not in off.stats
    effect = on.stats["refine_effect"]
    assert set(effect) == {"tumor_ml_added", "tumor_ml_removed"}
    assert min(effect.values()) >= 0
    net = effect["tumor_ml_added"] - effect["tumor_ml_removed"]
    assert on.stats["tumor_ml"] - off.stats["tumor_ml"] == pytest.approx(net, abs=0.01)


def test_the_livers_largest_part_keeps_a_lobe_joined_by_a_corner():
    """Joined by faces only, a lobe touching the rest by an edge or a corner on the coarse liver
    grid was dropped; lesions and the stats count such voxels as connected."""
    from napari_livertumor.pipeline import _largest_component

    mask = np.zeros((6, 10, 10), bool)
    mask[0:3, 0:5, 0:5] = True  # the larger part
    mask[3:5, 5:8, 5:8] = True  # a lobe meeting it at one corner voxel
    mask[4:6, 9, 0] = True  # a speck apart
    kept = _largest_component(mask)
    assert kept[0:3, 0:5, 0:5].all() and kept[3:5, 5:8, 5:8].all() and not kept[4:6, 9, 0].any()


def test_a_stopped_runs_stage_folder_as_models_says_no_model_yet(tmp_path):
    """`--models runs/cut/tumor` (a run stopped before its first best model) said "holds no
    liver/ or tumor/ model folder"; `--models runs/cut` said the cause."""
    import shutil

    from napari_livertumor.models import default_model_dir

    last = tmp_path / "cut" / "tumor" / "last"
    last.mkdir(parents=True)
    for name in ("metadata.json", "model.safetensors"):
        shutil.copy(default_model_dir("tumor") / name, last / name)
    from napari_livertumor.models.checkpoint import stage_model_folder

    # (and as a fine-tune's start: the run's folder names its stage's, which says the same)
    assert stage_model_folder(tmp_path / "cut", "tumor") == tmp_path / "cut" / "tumor"
    for given in (tmp_path / "cut" / "tumor", tmp_path / "cut"):
        with pytest.raises(ModelError, match="no model here yet"):
            InferenceConfig.from_models_dir(given).validate()
            Segmenter(InferenceConfig.from_models_dir(given, device="cpu"))


def test_models_given_on_another_device_are_copied_not_moved(tmp_path, monkeypatch):
    """Segmenter(models=...) moved the caller's networks in place: a CPU and a CUDA Segmenter
    sharing one LoadedModel took it from each other (the first one's next run failed)."""
    import napari_livertumor.pipeline as pipeline
    from napari_livertumor.models import load_model

    for stage in ("liver", "tumor"):
        make_untrained_model(tmp_path / stage, stage)
    models = {stage: load_model(tmp_path / stage, stage=stage) for stage in ("liver", "tumor")}
    same = Segmenter(InferenceConfig(device="cpu"), models=models)
    assert same.liver.network is models["liver"].network  # one device: shared, no copy
    assert pipeline._same_device(torch.device("cpu"), torch.device("cpu"))
    assert not pipeline._same_device(torch.device("cpu"), torch.device("cuda"))
    monkeypatch.setattr(pipeline, "_same_device", lambda a, b: False)  # as if on a GPU
    other = Segmenter(InferenceConfig(device="cpu"), models=models)
    assert other.liver.network is not models["liver"].network
    assert other.tumor.network is not models["tumor"].network
    assert other.liver.metadata is models["liver"].metadata
    original = dict(models["liver"].network.state_dict())
    for name, value in other.liver.network.state_dict().items():
        assert torch.equal(value, original[name])


def test_the_whole_pipeline_keeps_each_torch_call_on_one_device(monkeypatch):
    """A GPU run mixes devices where a CPU run cannot show it: the stage grids finer than the
    CT (5 mm slices) were interpolated with coordinates left on the CPU, and CUDA refused
    them. No GPU here: the networks and the stage inputs go to torch's "meta" device (shapes
    only), every torch call is checked for tensors of two devices (a CPU scalar apart), and
    what comes back to the CPU is a made-up ellipsoid, so the steps after each stage run.
    Each network is a 1×1×1 convolution of its model's channels on the meta device (its
    input still checked against its weights): inside them the shipped networks' calls stay on
    one device, and on meta they ran in Python, 0.6 s a pass, 40 passes."""
    import contextlib

    from torch.overrides import TorchFunctionMode

    from napari_livertumor.models import default_model_dir
    from napari_livertumor.synth import generate_phantom

    def made_up(t):  # the "result" a meta tensor brings back to the CPU
        shape = tuple(t.shape)
        inside = torch.ones(shape, dtype=torch.bool)
        if len(shape) >= 3:
            grids = np.ogrid[tuple(slice(0, n) for n in shape[-3:])]
            r = sum(((g - n / 2) / (n / 3)) ** 2 for g, n in zip(grids, shape[-3:], strict=True))
            inside = torch.from_numpy(np.broadcast_to(r < 1, shape).copy())
        return inside if t.dtype == torch.bool else torch.where(inside, 5.0, -5.0).to(t.dtype)

    mixed = []

    class OneDevice(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            held = []
            for a in (*args, *kwargs.values()):
                held += [x for x in (a if isinstance(a, (list, tuple)) else [a])
                         if isinstance(x, torch.Tensor)]  # fmt: skip
            devices = {a.device for a in held if a.dim() > 0 or a.device.type != "cpu"}
            name = getattr(func, "__name__", "")
            if len(devices) > 1:
                mixed.append(f"{name} on {sorted(str(d) for d in devices)}")
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if first is not None and first.device.type == "meta":
                targets = [
                    a for a in (*args[1:], *kwargs.values()) if isinstance(a, (str, torch.device))
                ]
                if name == "cpu" or (
                    name == "to" and targets and str(targets[0]).startswith("cpu")
                ):
                    return made_up(first)
                if name == "item":
                    return 1.0
            return func(*args, **kwargs)

    real_autocast = torch.autocast
    monkeypatch.setattr(
        torch,
        "autocast",
        lambda device_type, *a, **k: (
            contextlib.nullcontext()
            if device_type == "meta"
            else real_autocast(device_type, *a, **k)
        ),
    )
    models = default_model_dir("liver").parent
    for tta in ("none", "inplane"):
        cfg = InferenceConfig.from_models_dir(models, device="cpu", tta=tta, refine=False)
        seg = Segmenter(cfg)
        seg.device = seg._prep_device = torch.device("meta")
        for stage in ("liver", "tumor"):
            model = getattr(seg, stage)
            net = model.metadata.network
            conv = torch.nn.Conv3d(net.in_channels, net.out_channels, 1, device=seg.device)
            setattr(seg, stage, dataclasses.replace(model, network=conv.eval()))
        for overrides in ({"slice_thickness": 5.0}, {}):  # grids finer than the CT; coarser
            ct = generate_phantom(3, "small", **overrides).ct
            with OneDevice():
                result = seg.segment(ct)
            assert result.stats["liver_ml"] > 0  # (the made-up liver: every step ran)
    assert mixed == []


class VesselCallingNet(OracleNet):
    """The shipped tumor model's fault, by hand: enhancing vessels (windowed 0.8-0.95, 160-230
    HU) called tumor beside dark tumor (below 0.6)."""

    def forward(self, x):
        if self.stage == "liver":
            return super().forward(x)
        bg = 20 * (x - 0.95)
        tumor = torch.maximum(20 * (0.6 - x), 20 * torch.minimum(x - 0.8, 0.95 - x))
        return torch.cat([bg, torch.zeros_like(x), tumor], 1)


def test_an_enhancing_vessel_called_tumor_is_kept_but_said_lesion_by_lesion():
    """On a review's tumor-free phantom the tool reported 2 lesions, 29.5 mL: enhancing
    portal-vein branches called tumor, with no warning. Such a lesion is flagged in the stats
    (``vessel_like``) and named in a warning; the dark tumor is not, and nothing is removed."""
    vol, liver, tumor = phantom()
    spacing = np.asarray(vol.spacing)
    zz, yy, xx = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(vol.shape, spacing, strict=True)], indexing="ij"
    )
    cz, cy, cx = (n * s / 2 for n, s in zip(vol.shape, spacing, strict=True))
    # a portal branch 4 mm across running 40 mm along x, away from the tumor (y + 8 mm)
    vessel = (np.hypot(zz - cz, yy - (cy - 14)) <= 2.5) & (np.abs(xx - cx) <= 20) & liver
    ct = np.asarray(vol.array).copy()
    ct[vessel] = 190
    vol = vol.with_array(ct)
    models = oracle_models()
    models["tumor"] = dataclasses.replace(models["tumor"], network=VesselCallingNet("tumor"))
    result = segment_ct(vol, InferenceConfig(device="cpu", refine=False), models=models)
    lesions = result.stats["lesions"]
    (called,) = [les for les in lesions if les["vessel_like"]]
    assert abs(called["centroid_zyx"][1] * spacing[1] - (cy - 14)) < 2  # the vessel's
    largest = lesions[0]  # the dark tumor: not flagged, and nothing removed
    assert largest["volume_ml"] > 5 and largest["vessel_like"] is False
    assert result.stats["tumor_ml"] == pytest.approx(sum(les["volume_ml"] for les in lesions))
    said = [w for w in result.warnings if "enhancing vessel" in w]
    assert len(said) == 1 and said[0].startswith(f"lesion {called['id']} (")
    assert said == [w for w in result.stats["warnings"] if "enhancing vessel" in w]


class Scaled(torch.nn.Module):
    """``net``'s logits through a 1×1×1 convolution multiplying them by ``factor``: the same
    decisions, logits as large as the factor makes them (a convolution, so mixed precision
    runs it in float16)."""

    def __init__(self, net, channels: int, factor: float, layers: int = 1):
        super().__init__()
        self.net = net
        self.scale = torch.nn.Sequential(
            *[torch.nn.Conv3d(channels, channels, 1, bias=False) for _ in range(layers)]
        )
        with torch.no_grad():
            for conv in self.scale:
                conv.weight.copy_(factor * torch.eye(channels)[:, :, None, None, None])

    def forward(self, x):
        return self.scale(self.net(x))


def _with_network(model: LoadedModel, network, **meta) -> LoadedModel:
    return dataclasses.replace(
        model, network=network, metadata=dataclasses.replace(model.metadata, **meta)
    )


@pytest.mark.parametrize("stage", ["liver", "tumor"])
def test_a_model_whose_output_overflows_is_refused_naming_it(stage, tmp_path):
    """Finite weights 1e30 times too large gave all-NaN logits: the liver model said "no liver
    found: is this an abdominal CT…?", blaming the scan (and `--overwrite` replaced a good
    result with it); the tumor model gave 0 mL of tumor without a word."""
    vol, _, _ = phantom()
    models = oracle_models()
    channels = models[stage].metadata.network.out_channels
    # 1e30 twice: 1e60 overflows float32 (inf), and inf - inf is NaN
    overflowing = Scaled(models[stage].network, channels, 1e30, layers=2)
    models[stage] = dataclasses.replace(
        _with_network(models[stage], overflowing), path=tmp_path / stage
    )
    with pytest.raises(ModelError, match=f"the {stage} model's output .* NaN or infinite") as e:
        segment_ct(vol, InferenceConfig(device="cpu", min_liver_ml=1), models=models)
    assert str(tmp_path / stage / "model.safetensors") in str(e.value)
    assert "retrain it or re-export it" in str(e.value)


def test_logits_that_overflow_float16_run_again_in_float32_and_say_so(monkeypatch):
    """Inference on CUDA runs in float16 (largest value 65504): a model whose logits reach 1e5
    there gave infinite logits, and its stage found nothing. Now the stage runs again in
    float32, with a warning; logits that overflow float32 too are refused, saying so."""
    import napari_livertumor.pipeline as pipeline

    vol, _, _ = phantom()
    cfg = InferenceConfig(device="cpu", min_liver_ml=1)
    plain = segment_ct(vol, cfg, models=oracle_models())
    # as on CUDA (before, mixed precision was decided inline: no retry to test on a CPU)
    monkeypatch.setattr(pipeline, "_amp_on", lambda cfg, device: True, raising=False)
    models = oracle_models()
    # the oracle's tumor logits reach ±20: times 3e4 they overflow float16, not float32
    models["tumor"] = _with_network(models["tumor"], Scaled(models["tumor"].network, 3, 3e4))
    result = segment_ct(vol, cfg, models=models)
    np.testing.assert_array_equal(result.labels, plain.labels)
    said = [w for w in result.warnings if "overflowed in mixed precision" in w]
    assert len(said) == 1 and said[0].startswith("the tumor model's output overflowed"), said
    assert "ran again in float32" in said[0] and said[0] in result.stats["warnings"]
    assert not is_serious(said[0])  # (the result is float32's, as on a CPU)
    assert not any("overflow" in w for w in plain.warnings)
    models["tumor"] = _with_network(
        models["tumor"], Scaled(models["tumor"].network, 3, 1e30, layers=2)
    )
    with pytest.raises(ModelError, match=r"the tumor model's output .*\(in float32 too"):
        segment_ct(vol, cfg, models=models)


class Constant(torch.nn.Module):
    """A network with all-zero weights: zero logits, whatever the image."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, channels, 3, padding=1)
        torch.nn.init.zeros_(self.conv.weight)
        torch.nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        return self.conv(x)


def test_a_model_whose_output_does_not_depend_on_the_image_is_refused():
    """A tumor model of all-zero weights (the flat logits plus the shipped logit_bias of
    [0, 0, 2]) marked the whole liver as tumor, 1385.5 mL = 100 %, without a word. An image
    uniform where the network looks (all of it below the HU window: air) is no sign of a bad
    model: every network's output is flat there."""
    vol, _, _ = phantom()
    cfg = InferenceConfig(device="cpu", min_liver_ml=1)
    models = oracle_models()
    models["tumor"] = _with_network(models["tumor"], Constant(3), logit_bias=(0.0, 0.0, 2.0))
    with pytest.raises(ModelError, match="the tumor model's output is the same at every voxel"):
        segment_ct(vol, cfg, models=models)
    models = oracle_models()
    models["liver"] = _with_network(models["liver"], Constant(2), logit_bias=(0.0, 2.0))
    with pytest.raises(ModelError, match="the liver model's output is the same at every voxel"):
        segment_ct(vol, cfg, models=models)
    rng = np.random.default_rng(0)
    air = CTVolume((rng.normal(-1000, 5, vol.shape)).astype(np.int16), spacing=vol.spacing)
    models["liver"] = _with_network(models["liver"], Constant(2), logit_bias=None)
    result = segment_ct(air, cfg, models=models)  # windowed, all of it is the window's floor
    assert result.warnings[-1].startswith("no liver found") and not result.labels.any()


def test_a_tumor_covering_nearly_the_whole_liver_is_a_serious_warning():
    """A tumor model marked the whole liver as tumor (1385.5 mL, 100 % of the liver) and the
    run said nothing; the largest HCCs rarely reach 80 % of the organ."""
    vol, _, _ = phantom()
    cfg = InferenceConfig(device="cpu", min_liver_ml=1)
    models = oracle_models()
    # +60: the oracle's tumor logit 20 * (0.6 - x) wins everywhere in the liver
    models["tumor"] = _with_network(
        models["tumor"], models["tumor"].network, logit_bias=(0.0, 0.0, 60.0)
    )
    result = segment_ct(vol, cfg, models=models)
    assert result.stats["tumor_to_liver_ratio"] >= 0.9
    said = [w for w in result.warnings if w.startswith("the tumor found covers")]
    assert len(said) == 1 and "check the tumor mask" in said[0], result.warnings
    assert is_serious(said[0]) and said[0] in result.stats["warnings"]
    plain = segment_ct(vol, cfg, models=oracle_models())  # a tumor of a fifth: not said
    assert 0 < plain.stats["tumor_to_liver_ratio"] < 0.5
    assert not any("the tumor found covers" in w for w in plain.warnings)


def test_a_dead_model_whose_output_is_its_bias_alone_is_refused_too():
    """A network whose weights are all zero but whose last layer keeps a bias (0.37) gives
    0.37 at every voxel, up to float32's rounding in the windows' blending. Judged against
    too tight a bound (1e-9 of the logits) that rounding would pass for an output that
    varies, and its masks (the whole image as liver, or none of it) would be written as a
    result."""
    vol, _, _ = phantom()
    models = oracle_models()
    net = Constant(2)
    torch.nn.init.constant_(net.conv.bias, 0.37)
    models["liver"] = _with_network(models["liver"], net, logit_bias=None)
    with pytest.raises(ModelError, match="the liver model's output is the same at every voxel"):
        segment_ct(vol, InferenceConfig(device="cpu", min_liver_ml=1), models=models)


class LowContrast(torch.nn.Module):
    """A liver model whose logits are large (about 5) and vary little (by 0.05 over the HU
    window): the oracle's decisions (liver above 0.4), from logits of small contrast."""

    def forward(self, x):
        return torch.cat([torch.full_like(x, 5.02), 5 + 0.05 * x], 1)


def test_a_real_model_of_low_contrast_logits_is_not_taken_for_a_dead_one():
    """Logits that vary by a hundredth of their size are a working network's (a calibrated
    model's, whose logits sit near its threshold). Judged against too loose a bound (a tenth
    of the logits) such a model would be refused as "the same at every voxel", and no scan
    could be segmented with it."""
    vol, liver, _ = phantom()
    models = oracle_models()
    models["liver"] = _with_network(models["liver"], LowContrast(), logit_bias=None)
    result = segment_ct(vol, InferenceConfig(device="cpu", min_liver_ml=1), models=models)
    assert dice(result.labels > 0, liver) > 0.9


def test_a_liver_model_overflowing_float16_at_an_image_edge_is_said_once_by_its_name(monkeypatch):
    """The liver stage runs twice on a liver at an image edge that cuts the body (the image
    mirrored out, under the name "liver (image edge)"). A liver model overflowing float16
    is said once, as the liver model: not twice, nor as "the liver (image edge) model's
    output", a model no one has."""
    import napari_livertumor.pipeline as pipeline

    vol, _, _ = phantom()
    cfg = InferenceConfig(device="cpu", min_liver_ml=1)
    monkeypatch.setattr(pipeline, "_amp_on", lambda cfg, device: True)
    models = oracle_models()
    # the oracle's liver logits reach ±12: times 3e4 they overflow float16, not float32
    models["liver"] = _with_network(models["liver"], Scaled(models["liver"].network, 2, 3e4))
    seen = []
    result = segment_ct(
        vol, cfg, models=models, progress=lambda stage, done, total: seen.append(stage)
    )
    assert "liver (image edge)" in seen  # (the second pass ran, and overflowed too)
    said = [w for w in result.warnings if "overflowed in mixed precision" in w]
    assert len(said) == 1, said
    assert said[0].startswith("the liver model's output overflowed in mixed precision"), said


class NotANumber(torch.nn.Module):
    """A network whose every output value is NaN (finite weights whose values overflow)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, x):
        return torch.full_like(x, float("nan")).repeat(1, self.channels, 1, 1, 1)


def test_the_share_of_non_finite_logits_is_said_as_read():
    """A model whose output is NaN alone is said to give "100 % NaN or infinite values"; a
    share under 1 % is said as such ("0.25"), not rounded to "0" (read: none), and a few
    voxels of millions as "under 0.01"."""
    from napari_livertumor.pipeline import _non_finite_share

    vol, _, _ = phantom()
    models = oracle_models()
    models["liver"] = _with_network(models["liver"], NotANumber(2))
    with pytest.raises(ModelError, match=r"the liver model's output on this scan holds 100 % NaN"):
        segment_ct(vol, InferenceConfig(device="cpu", min_liver_ml=1), models=models)
    out = torch.zeros(2, 10, 10, 10)
    out[0, 0, 0, :5] = float("nan")  # 5 of 2000: 0.25 %
    assert _non_finite_share(out) == "0.25"
    out[0, 0, 0, :5] = 0
    out[1, 0, 0, 0] = float("inf")  # 1 of 2000: 0.05 %
    assert _non_finite_share(out) == "0.05"
    assert _non_finite_share(torch.full((2, 4), float("nan"))) == "100"
    big = torch.zeros(2, 100, 100, 100)
    big[0, 0, 0, 0] = float("nan")
    assert _non_finite_share(big) == "under 0.01"


@pytest.mark.parametrize(
    ("ratio", "warned"), [(0.5, False), (0.89, False), (0.9, True), (0.95, True)]
)
def test_the_whole_liver_as_tumor_warning_starts_at_nine_tenths(ratio, warned):
    """A tumor of 90 % of the organ or more is warned of (the largest HCCs rarely reach 80 %;
    a model that ignores the image marks all of it); one of half the organ, a large but real
    HCC, is not: a warning on every large tumor would be read past, and none at 95 % let a
    broken tumor model's result through unsaid."""
    from napari_livertumor.pipeline import _tumor_share_warning

    said = _tumor_share_warning({"tumor_to_liver_ratio": ratio})
    assert (said is not None) == warned, said
    if warned:
        assert said.startswith(f"the tumor found covers {100 * ratio:.1f} % of the liver")
    assert _tumor_share_warning({"tumor_to_liver_ratio": None}) is None


def test_as_many_threads_as_cores_is_no_warning_and_one_more_is(monkeypatch):
    """--threads equal to the cores this process may use is the best setting, and was to be
    taken without a word; one more thread than that is the first that only waits (999
    threads on 2 cores took 67-82 s where 2 took 5 s), and is said."""
    from napari_livertumor import pipeline

    monkeypatch.setattr(pipeline, "default_num_threads", lambda: 4)
    assert pipeline.usable_threads(4) == (4, None)
    assert pipeline.usable_threads(3) == (3, None)
    used, said = pipeline.usable_threads(5)
    assert used == 4 and said.startswith("5 CPU threads asked for, more than the 4 core(s)")
    assert pipeline.usable_threads(0) == (4, None)


def test_a_cancel_while_the_lesions_are_measured_stops_before_the_next_lesion(monkeypatch):
    """The statistics measure lesion after lesion (diameters, attenuation, the vessel check:
    seconds on a scan of many lesions) with the bar at "measuring": a Cancel clicked then
    stops the run before the next lesion, not after every lesion has been measured."""
    from napari_livertumor import stats as stats_mod

    vol, _, _ = phantom()
    ct = vol.array.copy()
    zz, yy, xx = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(ct.shape, vol.spacing, strict=True)], indexing="ij"
    )
    cz, cy, cx = (n * s / 2 for n, s in zip(ct.shape, vol.spacing, strict=True))
    second = (zz - cz) ** 2 + (yy - cy + 18) ** 2 + (xx - cx + 5) ** 2 <= 7**2
    ct[second] = TUMOR_HU
    vol = CTVolume(ct, spacing=vol.spacing, origin=vol.origin, meta={"modality": "CT"})
    cfg = InferenceConfig(device="cpu", min_liver_ml=1, refine=False)
    assert segment_ct(vol, cfg, models=oracle_models()).stats["lesion_count"] == 2
    measured = []
    real = stats_mod.longest_diameter_mm

    def longest(*args, **kwargs):
        measured.append(1)  # the user clicks Cancel while the first lesion is measured
        return real(*args, **kwargs)

    monkeypatch.setattr(stats_mod, "longest_diameter_mm", longest)
    with pytest.raises(Cancelled):
        segment_ct(vol, cfg, models=oracle_models(), should_cancel=lambda: bool(measured))
    assert len(measured) == 1


def test_a_models_folder_of_a_tumor_model_alone_with_liver_only_says_its_tumor_is_unused(
    tmp_path, untrained, caplog
):
    """`--models ens --stages liver` with only ens/tumor runs the shipped liver model alone:
    the note must not say "the shipped liver model is used with its tumor/", of a tumor
    model that never runs."""
    import shutil

    shutil.copytree(untrained / "tumor", tmp_path / "ens" / "tumor")
    with caplog.at_level("WARNING"):
        InferenceConfig.from_models_dir(tmp_path / "ens", device="cpu", stages="liver")
    assert (
        "has no liver/ model: the shipped liver model is used (its tumor/ is not used: only "
        "the liver stage runs)"
    ) in caplog.text
    assert "with its tumor/" not in caplog.text
