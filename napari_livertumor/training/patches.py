"""Patch sampling and cheap CPU augmentation for training.

Every patch is drawn from a seeded generator keyed by ``(seed, epoch, rank, position)``, so a run
is reproducible regardless of the number of data-loader workers, and a resumed run draws exactly
the patches the uninterrupted run would have drawn.

Augmentation keeps to what real CT varies in and what anatomy allows: intensity shift/scale, gamma,
a smooth additive intensity field, noise, blur, a small axial-plane rotation and zoom. No flips:
the liver is on the patient's right, and a left-right flipped abdomen is not a CT anyone will
ever segment.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .data import PreparedCase


def epoch_plan(
    n_cases: int, epoch: int, n_samples: int, *, seed: int, rank: int = 0, world: int = 1
) -> list[tuple[int, int]]:
    """``(case index, sample seed)`` for this rank's ``n_samples`` patches of ``epoch``.

    Patients are shuffled and dealt to ranks by a ``DistributedSampler`` (cycled when an epoch
    needs more samples than this rank has patients).
    """
    from torch.utils.data import DistributedSampler

    order: list[int] = []
    cycle = 0
    while len(order) < n_samples:
        sampler = DistributedSampler(
            range(n_cases), num_replicas=world, rank=rank, shuffle=True, seed=seed + 7919 * cycle
        )
        sampler.set_epoch(epoch)
        order.extend(list(sampler))
        cycle += 1
    order = order[:n_samples]
    seq = np.random.SeedSequence([seed, epoch, rank, 12345])
    seeds = seq.generate_state(n_samples).tolist()
    return list(zip(order, seeds, strict=False))


class PatchDataset:
    """A map-style dataset over one epoch's plan (works with ``torch.utils.data.DataLoader``).

    An item is the plan's ``i``-th, or (from a sampler that hands out the plan itself) a
    ``(case index, sample seed)`` pair.
    """

    def __init__(self, cases: list[PreparedCase], plan, config, weak_labels: dict[str, float]):
        self.cases = cases
        self.plan = plan
        self.config = config
        self.weak_labels = weak_labels

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int | tuple[int, int]) -> dict[str, Any]:
        case_idx, seed = i if isinstance(i, tuple) else self.plan[i]
        case = self.cases[case_idx]
        return sample_patch(
            case, np.random.default_rng(seed), self.config, self.weak_labels.get(case.case_id)
        )


def sample_patch(case: PreparedCase, rng, config, weak_label: float | None) -> dict[str, Any]:
    """One training patch ``(1, *roi)`` with its labels and weak-term bookkeeping."""
    import torch

    roi = np.array(config.roi_size)
    shape = np.array(case.image.shape)
    kind = "random"
    if rng.random() < config.fg_ratio and len(case.fg.get("liver", ())):
        tumor = case.fg.get("tumor")
        if (
            config.stage == "tumor"
            and tumor is not None
            and len(tumor)
            and rng.random() < config.tumor_ratio
        ):
            lesion = case.fg.get("lesion")
            if (
                config.lesion_ratio > 0  # (no draw otherwise: older recipes replay exactly)
                and lesion is not None
                and len(lesion)
                and rng.random() < config.lesion_ratio
            ):
                tumor = lesion  # each connected lesion equally likely
            centre = tumor[rng.integers(len(tumor))].astype(float)
            kind = "tumor"
        elif (
            config.stage == "tumor"
            and config.hard_ratio > 0
            and len(case.fg.get("atypical", ()))
            and rng.random() < config.hard_ratio
        ):
            hard = case.fg["atypical"]  # liver that does not look like liver, nor is tumor
            centre = hard[rng.integers(len(hard))].astype(float)
            kind = "atypical"
        else:
            liver = case.fg["liver"]
            centre = liver[rng.integers(len(liver))].astype(float)
            kind = "liver"
        centre = centre + rng.uniform(-0.25, 0.25, 3) * roi  # don't always centre exactly
    else:
        lo = np.minimum(roi / 2, shape / 2)
        hi = np.maximum(shape - roi / 2, shape / 2)
        centre = rng.uniform(lo, hi)
    angle, zoom = 0.0, 1.0
    if config.augment and rng.random() < config.aug_prob:
        angle = math.radians(rng.uniform(-config.aug_rotate_deg, config.aug_rotate_deg))
        zoom = rng.uniform(1 - config.aug_scale, 1 + config.aug_scale)
    grow = (
        config.augment
        and config.mask_outside_liver
        and config.aug_mask_dilate_mm > 0
        and case.unmasked is not None
        and case.outside_mm is not None
        and rng.random() < config.aug_mask_prob
    )
    extra = (case.unmasked, case.outside_mm) if grow else ()
    image, labels, *more = _extract(case, centre, roi, angle, zoom, extra)
    if grow:
        image = _grow_mask(image, *more, rng, config.aug_mask_dilate_mm, case.spacing)
    if config.augment:
        image = _augment_intensity(image, labels, rng, config, case.spacing)
    liver_frac = float((labels >= 1).mean())
    weak_ok = (
        config.stage == "tumor"
        and kind == "liver"
        and weak_label is not None
        and liver_frac >= config.weak_min_liver_fraction
    )
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image[None], dtype=np.float32)),
        "label": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        "weak_target": torch.tensor(
            float(weak_label) if weak_label is not None else float("nan"), dtype=torch.float32
        ),
        "weak_ok": torch.tensor(bool(weak_ok)),
        # the patient's true ratio, against which a patch's own true ratio is measured
        # (``weak_anchor`` "patch")
        "weak_tlvr": torch.tensor(float(case.tlvr), dtype=torch.float32),
    }


def _extract(case: PreparedCase, centre, roi, angle: float, zoom: float, extra=()):
    """Resample a patch around ``centre`` (voxel coords), rotated in the axial plane and zoomed.

    Returns ``image, labels, *extra`` patches (``extra``: further float arrays of the case's
    shape, resampled like the image).
    """
    import torch
    import torch.nn.functional as F

    if angle == 0.0 and zoom == 1.0:
        start = np.round(centre - roi / 2).astype(int)
        crops = [_crop_padded(a, start, roi) for a in (case.image, case.labels, *extra)]
        return [crops[0], crops[1]] + [c.astype(np.float32) for c in crops[2:]]
    offs = [np.arange(n) - (n - 1) / 2 for n in roi]
    oz, oy, ox = np.meshgrid(*offs, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    # the zoom is applied in mm-consistent voxel units; spacing is near-isotropic in-plane
    ry = (c * oy - s * ox) / zoom
    rx = (s * oy + c * ox) / zoom
    rz = oz / zoom
    shape = case.image.shape
    coords = [rz + centre[0], ry + centre[1], rx + centre[2]]
    # grid_sample wants (x, y, z) normalised to [-1, 1] with align_corners=True
    grid = np.stack([2 * coords[2 - k] / max(shape[2 - k] - 1, 1) - 1 for k in range(3)], -1)
    grid_t = torch.from_numpy(grid[None].astype(np.float32))
    img = torch.from_numpy(np.stack([a.astype(np.float32) for a in (case.image, *extra)]))[None]
    lab = torch.from_numpy(case.labels.astype(np.float32))[None, None]
    out_img = F.grid_sample(img, grid_t, mode="bilinear", padding_mode="zeros", align_corners=True)
    out_lab = F.grid_sample(lab, grid_t, mode="nearest", padding_mode="zeros", align_corners=True)
    out = out_img[0].numpy()
    return [out[0], out_lab[0, 0].numpy().astype(np.uint8), *out[1:]]


def _grow_mask(masked, unmasked, outside_mm, rng, max_mm: float, spacing) -> np.ndarray:
    """The patch as if masked with the liver grown by an irregular margin of up to ``max_mm``.

    The margin is a random base plus smooth low-frequency variation (a stage-1 liver that leaks
    does so on one side, not evenly); a one-voxel ramp at its edge mimics the partial-volume
    edge that masking at source resolution leaves after down-sampling.
    """
    from scipy.ndimage import zoom as nd_zoom

    base = rng.uniform(0.1, 1.0) * max_mm
    coarse = rng.uniform(-1.0, 1.0, (2, 3, 3))
    factors = [n / c for n, c in zip(masked.shape, coarse.shape, strict=False)]
    wobble = nd_zoom(coarse, factors, order=1, mode="nearest", grid_mode=True)
    margin = np.clip(base * (1.0 + 0.6 * wobble), 0.0, max_mm)
    ramp = float(np.mean(spacing))
    w = np.clip((margin - outside_mm) / ramp + 0.5, 0.0, 1.0)
    return (w * unmasked + (1.0 - w) * masked).astype(np.float32)


def _crop_padded(arr: np.ndarray, start, size) -> np.ndarray:
    out = np.zeros(tuple(int(s) for s in size), dtype=arr.dtype)
    src, dst = [], []
    for a, (st, n) in enumerate(zip(start, size, strict=False)):
        lo, hi = max(st, 0), min(st + n, arr.shape[a])
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - st, hi - st))
    out[tuple(dst)] = arr[tuple(src)]
    return out


def _augment_intensity(
    image: np.ndarray, labels: np.ndarray, rng, config, spacing=(1.0, 1.0, 1.0)
) -> np.ndarray:
    image = image.astype(np.float32, copy=True)
    outside = (labels == 0) & (image <= 0.0) if config.mask_outside_liver else None
    if config.aug_intensity:
        k = config.aug_intensity
        image = image * rng.uniform(1 - k, 1 + k) + rng.uniform(-k, k)
    if config.aug_gamma:
        g = rng.uniform(1 - config.aug_gamma, 1 + config.aug_gamma)
        image = np.clip(image, 0.0, 1.0) ** g
    if config.aug_field_hu > 0 and rng.random() < config.aug_field_prob:
        width = float(config.hu_window[1]) - float(config.hu_window[0])
        amp = rng.uniform(0.0, config.aug_field_hu) / width
        f = smooth_field(rng, image.shape, spacing, amp, config.aug_field_mm)
        if config.aug_field_spare_lesions and config.stage == "tumor":
            f = spare_lesions(f, labels == 2, spacing)
        image = image + f
    if config.aug_blur and rng.random() < config.aug_blur:
        from scipy.ndimage import gaussian_filter

        image = gaussian_filter(image, sigma=rng.uniform(0.5, 1.0))
    if config.aug_noise:
        image = image + rng.normal(0.0, rng.uniform(0, config.aug_noise), image.shape).astype(
            np.float32
        )
    image = np.clip(image, 0.0, 1.0)
    if outside is not None:
        image[outside] = 0.0  # inference sees exactly the outside value there
    return image


def spare_lesions(field: np.ndarray, lesion: np.ndarray, spacing) -> np.ndarray:
    """``field`` with each lesion voxel given the value at its nearest non-lesion voxel.

    A smooth field whose blobs are the size of a lesion can cancel (or double) the lesion's
    contrast while its label stays "tumor". Carrying the surrounding value inside keeps every
    lesion's contrast against the parenchyma next to it exactly as drawn; the field still
    varies everywhere else. Returns ``field`` itself when there is no lesion (or nothing else).
    """
    from scipy.ndimage import distance_transform_edt

    if not lesion.any() or lesion.all():
        return field
    _, idx = distance_transform_edt(lesion, sampling=spacing, return_indices=True)
    return field[tuple(idx)]


def smooth_field(rng, shape, spacing, amplitude: float, blob_mm=(10.0, 40.0)) -> np.ndarray:
    """A smooth random field in ``[-amplitude, amplitude]`` (float32, ``shape``).

    MONAI's ``SmoothField``: uniform values on a coarse grid whose cells are ``blob_mm`` (one
    size drawn in that range) apart, up-sampled trilinearly to ``shape`` (``spacing`` in mm).
    """
    from monai.transforms.smooth_field.array import SmoothField

    cell = rng.uniform(float(blob_mm[0]), float(blob_mm[1]))
    rand_size = [
        max(2, round(n * float(s) / cell) + 1) for n, s in zip(shape, spacing, strict=True)
    ]
    field = SmoothField(
        rand_size=rand_size,
        spatial_size=tuple(int(n) for n in shape),
        low=-amplitude,
        high=amplitude,
        channels=1,
        mode="trilinear",
        align_corners=True,
    )
    field.set_random_state(int(rng.integers(2**31 - 1)))
    field.randomize()
    return np.asarray(field()[0], dtype=np.float32)
