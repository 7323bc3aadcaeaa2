"""The original's evaluation table: Accuracy, Dice, Sensitivity and IoU per class and case.

For a class ``c`` the prediction and ground truth are compared as binary masks over the whole
volume (``TP, FP, FN, TN`` voxel counts):

* Accuracy = (TP + TN) / N
* Dice = 2 TP / (2 TP + FP + FN)
* Sensitivity = TP / (TP + FN)
* IoU = TP / (TP + FP + FN)

When both masks are empty Dice and IoU are undefined, and Sensitivity whenever the truth is
empty: reported as NaN (left out of means), never silently counted as 1 or 0; how many cases each mean covers is in the
summary (``n_scored``) and said under the table when fewer than all. Tumor size strata: the
original reports tumors ≥ 10 cm and < 10 cm without saying how it measured them; here the longest
3D diameter (edge to edge, in mm) of the largest ground-truth lesion (connected component)
≥ 100 mm vs < 100 mm. An axial (RECIST-like) measure would put some lesions of 10–12 cm in 3D
below the line: ``per_case.csv`` gives both (``tumor_axial_diameter_mm``).

Beside the voxel scores, :func:`lesion_detection` counts lesions (connected components): how
many true lesions were found and how many predicted lesions are false. Voxel Dice is dominated
by the largest mass; these counts show missed satellites and false lesions in a tumor-free liver;
:func:`lesion_conspicuity` says how visible each true lesion was to begin with.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

# MONAI 1.3-1.4 warn on every call that get_mask_edges' default return type will change (the
# arrays here are numpy's either way; the argument itself is deprecated from 1.5): MONAI's
# notice, not said as evaluate's own warning
warnings.filterwarnings(
    "ignore", message=r"monai\.metrics\.utils get_mask_edges:always_return_as_numpy"
)

METRICS = ("accuracy", "dice", "sensitivity", "iou")

#: The original work's reported test scores (80/20 split; REFERENCE.md §1).
PUBLISHED = {
    "liver": {"accuracy": 0.994, "dice": 0.942, "sensitivity": 0.955, "iou": 0.895},
    "tumor": {"accuracy": 0.995, "dice": 0.570, "sensitivity": 0.801, "iou": 0.460},
}
PUBLISHED_TUMOR_DICE_BY_SIZE = {">=10cm": 0.841, "<10cm": 0.406}
LARGE_TUMOR_MM = 100.0


def crop_box(*masks, margin: int = 1) -> tuple[slice, ...]:
    """The bounding box of the voxels set in any of ``masks``, ``margin`` voxels wider on each
    side (within the array): where scores of the whole volume are computed alike, far faster
    (a liver is some 5 % of a thin-slice scan).

    Each mask is an array (its nonzero voxels are set) or ``(array, values)`` (the voxels
    holding one of ``values``), all of one shape. Nothing set: a box of size 0 (what is
    computed on it is what two empty masks give). The first axis is read slab by slab (no
    temporary the size of the volume), the others only where something is set.
    """
    pairs = [(np.asarray(m[0]), m[1]) if isinstance(m, tuple) else (m, None) for m in masks]
    pairs = [(np.asarray(a), values) for a, values in pairs]
    shape = pairs[0][0].shape
    if any(a.shape != shape for a, _ in pairs):
        raise ValueError(f"masks of different shapes: {[a.shape for a, _ in pairs]}")
    if not pairs[0][0].size:
        return tuple(slice(0, 0) for _ in shape)
    per = max(1, (1 << 22) // max(1, int(np.prod(shape[1:]))))  # ~4 M voxels a slab
    held = [np.zeros(n, bool) for n in shape]  # per axis: the indices where something is set
    for start in range(0, shape[0], per):
        for a, values in pairs:
            part = a[start : start + per]
            if values is not None:
                part = in_classes(part, values)
            elif part.dtype != bool:
                part = part != 0
            rows = part.reshape(len(part), -1).any(axis=1)
            if not rows.any():
                continue
            held[0][start : start + len(part)] |= rows
            plane = part.any(axis=0)  # the other axes' projections from the slab's
            for ax in range(1, len(shape)):
                held[ax] |= plane.any(axis=tuple(k for k in range(len(shape) - 1) if k != ax - 1))
    if not held[0].any():
        return tuple(slice(0, 0) for _ in shape)
    box = []
    for n, where in zip(shape, held, strict=True):
        idx = np.flatnonzero(where)
        box.append(slice(max(0, int(idx[0]) - margin), min(n, int(idx[-1]) + 1 + margin)))
    return tuple(box)


def in_classes(part: np.ndarray, values) -> np.ndarray:
    """``np.isin(part, values)`` for a few class values, the same mask 3-20 times faster and
    with less memory: one value compared; on an integer map a run of values ``lo..hi`` in one
    comparison (``part - lo``, wrapped as unsigned, ``<= hi - lo``); others one by one."""
    part = np.asarray(part)
    vals = sorted(set(np.ravel(values).tolist()))
    if len(vals) == 1:
        return part == vals[0]
    if (
        part.dtype.kind in "iu"
        and part.dtype.isnative
        and vals
        and all(isinstance(v, int) for v in vals)
        and vals == list(range(vals[0], vals[-1] + 1))
        and np.iinfo(part.dtype).min <= vals[0]
        and vals[-1] <= np.iinfo(part.dtype).max
    ):
        unsigned = part.view(f"u{part.dtype.itemsize}")
        low = vals[0] % (1 << (8 * part.dtype.itemsize))
        return np.subtract(unsigned, low, dtype=unsigned.dtype) <= vals[-1] - vals[0]
    if not vals:
        return np.zeros(part.shape, bool)
    return functools.reduce(np.logical_or, [part == v for v in vals])


def binary_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy, Dice, Sensitivity and IoU of two boolean masks of the same shape."""
    pred = np.asarray(pred, bool)
    truth = np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground truth shape {truth.shape}")
    return _binary_scores(pred, truth, pred.size)


def _binary_scores(pred: np.ndarray, truth: np.ndarray, n: int) -> dict[str, float]:
    """:func:`binary_scores` of two masks that may be a box of volumes of ``n`` voxels (both
    background outside it)."""
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    tn = n - tp - fp - fn
    nan = float("nan")
    return {
        "accuracy": (tp + tn) / n if n else nan,
        "dice": 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else nan,
        "sensitivity": tp / (tp + fn) if (tp + fn) else nan,
        "iou": tp / (tp + fp + fn) if (tp + fp + fn) else nan,
    }


#: tolerance (mm) of the surface Dice (NSD): a boundary voxel within this distance of the other
#: mask's boundary counts as agreeing. 2 mm is under one voxel's diagonal of our grids' 0.6–1 mm
#: pixels and 2.5 mm slices, about what two readers' liver outlines differ by.
NSD_TOLERANCE_MM = 2.0
SURFACE_METRICS = ("hd95_mm", "assd_mm", "nsd")


def surface_scores(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: Sequence[float],
    *,
    tolerance_mm: float = NSD_TOLERANCE_MM,
    crop: bool = True,
) -> dict[str, float]:
    """Boundary scores of two boolean masks on a grid of ``spacing`` (mm, one per axis).

    The masks' boundary voxels (MONAI's :func:`~monai.metrics.utils.get_mask_edges`) and each
    boundary voxel's distance to the other mask's boundary
    (:func:`~monai.metrics.utils.get_surface_distance`, Euclidean, in mm) are computed once
    each way, and from them, as MONAI's ``compute_hausdorff_distance(percentile=95)``,
    ``compute_average_surface_distance(symmetric=True)`` and ``compute_surface_dice``:

    * ``hd95_mm``: the larger of the two directed 95th percentiles;
    * ``assd_mm``: the mean of all the distances, both ways;
    * ``nsd``: the share of boundary voxels, both ways, within ``tolerance_mm`` of the other
      boundary (normalised surface Dice; voxel counts, not areas).

    Both masks empty: all NaN (nothing to compare, as the Dice). One empty: the distances are
    undefined (NaN; MONAI gives inf) and ``nsd`` is 0 (no boundary agrees).

    The grid is taken as right-angled: on a gantry-tilted (sheared) one the distances across
    slices are those of its spacing, a few per cent short at 20-25° of tilt (volumes and
    diameters go through the grid's affine; these do not).

    The masks are scored in their :func:`crop_box` (MONAI crops to it too, after reading the
    whole volume): the same figures; ``crop=False`` reads the whole volume, as before (the
    reference the tests and ``benchmarks/bench_scoring.py`` hold it to).
    """
    from monai.metrics.utils import get_mask_edges, get_surface_distance

    pred = np.asarray(pred, bool)
    truth = np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground truth shape {truth.shape}")
    spacing = [float(s) for s in spacing]
    if len(spacing) != pred.ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing must be {pred.ndim} positive numbers (mm), got {spacing}")
    if crop:  # one voxel of background around both, as MONAI's own crop keeps
        box = crop_box(pred, truth, margin=1)
        pred, truth = pred[box], truth[box]
    nan = float("nan")
    has_pred, has_truth = bool(pred.any()), bool(truth.any())
    if not (has_pred and has_truth):
        return {"hd95_mm": nan, "assd_mm": nan, "nsd": 0.0 if has_pred or has_truth else nan}
    edges_pred, edges_truth = get_mask_edges(pred, truth, crop=True)
    to_truth = np.asarray(get_surface_distance(edges_pred, edges_truth, spacing=spacing), float)
    to_pred = np.asarray(get_surface_distance(edges_truth, edges_pred, spacing=spacing), float)
    both = np.concatenate([to_truth, to_pred])
    return {
        "hd95_mm": float(max(np.percentile(to_truth, 95), np.percentile(to_pred, 95))),
        "assd_mm": float(both.mean()),
        "nsd": float(np.count_nonzero(both <= tolerance_mm) / both.size),
    }


def case_scores(
    pred_labels: np.ndarray, truth_labels: np.ndarray, *, crop: bool = True
) -> dict[str, float]:
    """Scores for liver (labels ≥ 1: liver incl. tumor) and tumor (label 2) of one case.

    Both label maps use the output convention 0 background, 1 liver, 2 tumor: a ground truth
    of HCC-TACE-Seg's classes (3 portal vein, 4 aorta) is refused (ValueError) — map it first
    with :func:`hcc_to_output` (the aorta counted as liver gave a liver Dice 0.06 too low).
    The voxels are counted in the maps' :func:`crop_box` (``crop=False``: all of them, the
    same counts).
    """
    pred_labels, truth_labels = _output_labels(pred_labels, truth_labels)
    n = pred_labels.size
    if pred_labels.shape != truth_labels.shape:
        raise ValueError(
            f"prediction shape {pred_labels.shape} != ground truth shape {truth_labels.shape}"
        )
    if crop:  # the background around both is true negatives alike: counted as n - the rest
        box = crop_box(pred_labels, truth_labels, margin=0)
        pred_labels, truth_labels = pred_labels[box], truth_labels[box]
    out: dict[str, float] = {}
    for name, pm, tm in class_masks(pred_labels, truth_labels):
        for k, v in _binary_scores(pm, tm, n).items():
            out[f"{name}_{k}"] = v
    return out


def case_surface_scores(
    pred_labels: np.ndarray,
    truth_labels: np.ndarray,
    spacing: Sequence[float],
    *,
    tolerance_mm: float = NSD_TOLERANCE_MM,
    crop: bool = True,
) -> dict[str, float]:
    """:func:`surface_scores` for liver (labels ≥ 1) and tumor (label 2) of one case, as
    :func:`case_scores` (the same label maps, refused alike): ``liver_hd95_mm``,
    ``liver_assd_mm``, ``liver_nsd``, ``tumor_hd95_mm``…"""
    pred_labels, truth_labels = _output_labels(pred_labels, truth_labels)
    if crop and pred_labels.shape == truth_labels.shape:  # both classes lie in the liver's box
        box = crop_box(pred_labels, truth_labels, margin=1)
        pred_labels, truth_labels = pred_labels[box], truth_labels[box]
    out: dict[str, float] = {}
    for name, pm, tm in class_masks(pred_labels, truth_labels):
        scores = surface_scores(pm, tm, spacing, tolerance_mm=tolerance_mm, crop=crop)
        for k, v in scores.items():
            out[f"{name}_{k}"] = v
    return out


def class_masks(pred_labels: np.ndarray, truth_labels: np.ndarray):
    """``(class, predicted mask, true mask)`` of the scored classes of two 0/1/2 maps: liver
    (labels ≥ 1: liver incl. tumor) and tumor (label 2)."""
    return (
        ("liver", pred_labels >= 1, truth_labels >= 1),
        ("tumor", pred_labels == 2, truth_labels == 2),
    )


def _output_labels(pred_labels, truth_labels) -> tuple[np.ndarray, np.ndarray]:
    """The two maps as arrays, refused (ValueError) unless of the classes 0, 1, 2."""
    pred_labels = np.asarray(pred_labels)
    truth_labels = np.asarray(truth_labels)
    for name, labels in (("pred_labels", pred_labels), ("truth_labels", truth_labels)):
        if not labels.size or labels.dtype.kind == "b":
            continue
        if labels.dtype.kind not in "iuf":
            raise ValueError(f"{name} must be a label map of numbers, not {labels.dtype}")
        low, high = labels.min(), labels.max()  # a float map too (nibabel's get_fdata)
        if high > 2:
            raise ValueError(
                f"{name} hold the value {high:g}: scores take 0 background, 1 liver, 2 tumor; "
                "a ground truth of HCC-TACE-Seg's classes (3 portal vein, 4 aorta) is mapped "
                "first with napari_livertumor.training.metrics.hcc_to_output(labels)"
            )
        if low < 0 or (labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels))):
            bad = low if low < 0 else labels[labels != np.round(labels)].flat[0]
            raise ValueError(
                f"{name} hold the value {bad:g}: scores take the whole classes 0 background, "
                "1 liver, 2 tumor (not probabilities or negative values)"
            )
    return pred_labels, truth_labels


def lesion_detection(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: Sequence[float],
    *,
    min_ml: float = 0.1,
    min_overlap: float = 0.1,
    crop: bool = True,
) -> dict[str, int]:
    """Lesion-level counts of one case from two tumor masks.

    Lesions are connected components (26-connectivity) of at least ``min_ml``. A true lesion is
    *found* when at least ``min_overlap`` of its voxels are predicted tumor; a predicted lesion
    is *false* when less than ``min_overlap`` of its voxels are true tumor. Components under
    ``min_ml`` (annotation specks; the pipeline drops predicted ones under 0.1 mL by default)
    are not counted either way.

    The lesions are found in the masks' :func:`crop_box` (``crop=False``: in the whole
    volume; the same lesions).

    Returns
    -------
    dict
        ``lesions_true``, ``lesions_found``, ``lesions_pred``, ``lesions_false``.
    """
    from scipy import ndimage as ndi

    pred = np.asarray(pred, bool)
    truth = np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground truth shape {truth.shape}")
    if crop:  # every lesion of both, with one voxel of background around them
        box = crop_box(pred, truth, margin=1)
        pred, truth = pred[box], truth[box]
    min_vox = min_ml * 1000.0 / float(np.prod(spacing))
    structure = np.ones((3, 3, 3), bool)

    def counts(mask, other):
        lab, n = ndi.label(mask, structure=structure)
        if n == 0:
            return 0, 0
        size = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        inside = np.bincount(lab[other], minlength=n + 1)[1:]
        big = size >= min_vox
        return int(big.sum()), int((big & (inside >= min_overlap * size)).sum())

    n_true, n_found = counts(truth, pred)
    n_pred, n_right = counts(pred, truth)
    return {
        "lesions_true": n_true,
        "lesions_found": n_found,
        "lesions_pred": n_pred,
        "lesions_false": n_pred - n_right,
    }


def _contrast_columns(ring: dict[str, Any]) -> dict[str, Any]:
    """``contrast_hu``, ``sd_hu``, ``cnr`` of a lesion's ring measure (all None unmeasured)."""
    if ring["contrast"] is None:
        return {"contrast_hu": None, "sd_hu": None, "cnr": None}
    contrast, sd = ring["contrast"], ring["sd"]
    return {
        "contrast_hu": round(contrast, 1),
        "sd_hu": round(sd, 1),
        "cnr": round(abs(contrast) / max(sd, 1e-6), 2),
    }


#: bands of :func:`lesion_conspicuity`'s contrast-to-noise ratio used in reports
CNR_BANDS = ((0.0, 0.5), (0.5, 1.0), (1.0, float("inf")))


#: decimals of a lesion's ``ml`` (as segment's stats round ``volume_ml``, and as ``lesions.csv``
#: writes every number: rounded to 2, 0.12 mL was written 0.1200, digits that were not there)
ML_DECIMALS = 4


def lesion_conspicuity(
    ct: np.ndarray,
    truth_labels: np.ndarray,
    spacing: Sequence[float],
    pred: np.ndarray | None = None,
    *,
    min_ml: float = 0.1,
) -> list[dict[str, Any]]:
    """How visible each true lesion is: its contrast-to-noise ratio against the liver around it.

    For each ground-truth tumor component (label 2, 26-connectivity, at least ``min_ml``): the
    mean HU inside it minus that of the liver (label 1; tumor excluded) 3–8 mm from its edge,
    over the pooled standard deviation of the two (noise and texture together;
    :func:`napari_livertumor.stats.lesion_ring_contrast`, the refinement's own ring measure).
    A CNR well under 1 is a lesion a reader hardly sees on this phase either (an
    iso-attenuating mass, or a hypo-attenuating one in a fatty liver); it bounds what any model
    can score on it. ``pred`` (a tumor mask), when given, adds ``covered``: the fraction of the
    lesion predicted tumor (to 3 decimals), and ``found`` (at least 0.1 of it, as
    :func:`lesion_detection` counts).

    Returns
    -------
    list of dict
        Per lesion, largest first: ``ml``, ``contrast_hu``, ``sd_hu`` and ``cnr`` (all three
        ``None`` when the lesion, or the liver around it, has fewer than 10 voxels), and
        ``covered``.
    """
    from scipy import ndimage as ndi

    from ..stats import lesion_ring_contrast

    ct = np.asarray(ct)
    truth_labels = np.asarray(truth_labels)
    if ct.shape != truth_labels.shape:
        raise ValueError(f"CT shape {ct.shape} != ground truth shape {truth_labels.shape}")
    if pred is not None and np.shape(pred) != ct.shape:
        raise ValueError(f"prediction shape {np.shape(pred)} != CT shape {ct.shape}")
    spacing = tuple(float(s) for s in spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    lab, n = ndi.label(truth_labels == 2, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    out = []
    for i, box in enumerate(ndi.find_objects(lab), start=1):
        if box is None or sizes[i] * voxel_ml < min_ml:
            continue
        sub = lab[box] == i
        ring = lesion_ring_contrast(ct, truth_labels, sub, [b.start for b in box], spacing)
        row: dict[str, Any] = {"ml": round(float(sizes[i] * voxel_ml), ML_DECIMALS)}
        row.update(_contrast_columns(ring))
        if pred is not None:
            covered = float(np.asarray(pred)[box][sub].mean())
            row["covered"] = round(covered, 3)
            row["found"] = covered >= 0.1  # exact, as lesion_detection decides
        out.append(row)
    out.sort(key=lambda r: -r["ml"])
    return out


def lesion_table(
    ct: np.ndarray,
    truth_labels: np.ndarray,
    pred: np.ndarray,
    spacing: Sequence[float],
    *,
    axes: np.ndarray | None = None,
    min_ml: float = 0.1,
    min_overlap: float = 0.1,
    crop: bool = True,
) -> list[dict[str, Any]]:
    """One row per lesion of a case: each true lesion, then each false predicted one.

    Lesions and matching as :func:`lesion_detection` (26-connected components of at least
    ``min_ml``; a true lesion is found when ``min_overlap`` of it is predicted tumor, a
    predicted one false when under ``min_overlap`` of it is true tumor). ``truth_labels`` is
    the 0/1/2 map (its liver gives the contrast ring), ``pred`` a tumor mask.

    A true lesion's row (``kind`` "true", numbered largest first): ``ml``, ``diameter_mm``
    (longest 3D, edge to edge, as :func:`napari_livertumor.stats.longest_diameter_mm`;
    ``axes`` the grid's mm steps as there), ``slice`` (its centroid's slice,
    :func:`~napari_livertumor.stats.centroid_slice`), ``contrast_hu``, ``sd_hu``, ``cnr`` (as
    :func:`lesion_conspicuity`), ``covered`` (share of it predicted tumor), ``found`` and
    ``dice``: against the predicted components that overlap it (0 when none does; a predicted
    mass spanning two true lesions counts whole for each).
    A false lesion's row (``kind`` "false"): ``ml``, ``diameter_mm``, ``slice``.

    The lesions are found in the two masks' :func:`crop_box` (``crop=False``: in the whole
    volume; the same rows, in the same order).
    """
    from scipy import ndimage as ndi

    from ..stats import centroid_slice, lesion_ring_contrast
    from ..stats import longest_diameter_mm as diameter

    truth_labels = np.asarray(truth_labels)
    pred = np.asarray(pred, bool)
    if pred.shape != truth_labels.shape or np.shape(ct) != truth_labels.shape:
        raise ValueError(
            f"shapes differ: CT {np.shape(ct)}, ground truth {truth_labels.shape}, "
            f"prediction {pred.shape}"
        )
    spacing = tuple(float(s) for s in spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    min_vox = min_ml / voxel_ml
    structure = np.ones((3, 3, 3), bool)
    # the lesions' labels in the box of both masks (the CT and liver around them whole)
    where = crop_box((truth_labels, (2,)), pred, margin=1) if crop else (slice(None),) * pred.ndim
    offset = [s.indices(n)[0] for s, n in zip(where, pred.shape, strict=True)]
    truth = truth_labels[where] == 2
    pred = pred[where]
    lab_t, n_t = ndi.label(truth, structure=structure)
    lab_p, n_p = ndi.label(pred, structure=structure)
    size_t = np.bincount(lab_t.ravel(), minlength=n_t + 1)
    size_p = np.bincount(lab_p.ravel(), minlength=n_p + 1)

    def placed(mask, box) -> dict[str, Any]:
        z = float(np.nonzero(mask)[0].mean())  # as segment's stats and Inspect place it
        return {
            "diameter_mm": round(float(diameter(mask, spacing, axes)), 2),
            "slice": int(offset[0] + box[0].start + centroid_slice(z)),
        }

    rows: list[dict[str, Any]] = []
    for i, box in enumerate(ndi.find_objects(lab_t) if n_t else [], start=1):
        if box is None or size_t[i] < min_vox:
            continue
        sub = lab_t[box] == i
        row: dict[str, Any] = {
            "kind": "true",
            "ml": round(float(size_t[i] * voxel_ml), ML_DECIMALS),
        }
        row.update(placed(sub, box))
        start = [b.start + o for b, o in zip(box, offset, strict=True)]
        ring = lesion_ring_contrast(ct, truth_labels, sub, start, spacing)
        row.update(_contrast_columns(ring))
        hit = np.unique(lab_p[box][sub])
        hit = hit[hit > 0]
        inside = int(np.count_nonzero(pred[box][sub]))
        row["covered"] = round(inside / int(size_t[i]), 3)
        row["found"] = inside >= min_overlap * int(size_t[i])
        matched = int(size_p[hit].sum()) if hit.size else 0
        row["dice"] = round(2.0 * inside / (int(size_t[i]) + matched), 4)
        rows.append(row)
    rows.sort(key=lambda r: -r["ml"])
    false_rows = []
    for j, box in enumerate(ndi.find_objects(lab_p) if n_p else [], start=1):
        if box is None or size_p[j] < min_vox:
            continue
        sub = lab_p[box] == j
        if np.count_nonzero(truth[box][sub]) >= min_overlap * int(size_p[j]):
            continue
        row = {"kind": "false", "ml": round(float(size_p[j] * voxel_ml), ML_DECIMALS)}
        row.update(placed(sub, box))
        false_rows.append(row)
    false_rows.sort(key=lambda r: -r["ml"])
    for kind, group in (("true", rows), ("false", false_rows)):
        for k, row in enumerate(group, start=1):
            row["lesion"] = f"{kind} {k}"
    return rows + false_rows


#: lesion size bands (longest diameter, mm) of the detection breakdown: small lesions are
#: where detection fails first (LiTS reports its lesions by such sizes)
SIZE_BANDS_MM = ((0.0, 10.0), (10.0, 20.0), (20.0, float("inf")))


def lesions_by_size(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """True lesions of :func:`lesion_table` rows (any number of cases) found per size band:
    ``[{"mm_from", "mm_to", "lesions", "found"}, …]`` (``mm_to`` None for the last)."""
    out = []
    for lo, hi in SIZE_BANDS_MM:
        rows = [
            r
            for r in table
            if r.get("kind") == "true" and lo <= float(r.get("diameter_mm") or 0.0) < hi
        ]
        out.append(
            {
                "mm_from": lo,
                "mm_to": None if hi == float("inf") else hi,
                "lesions": len(rows),
                "found": sum(1 for r in rows if r.get("found")),
            }
        )
    return out


def _size_band(lo: float, hi: float | None) -> str:
    if not lo:
        return f"< {hi:g} mm"
    return f"{lo:g}+ mm" if hi is None else f"{lo:g}–{hi:g} mm"


def conspicuity_summary(lesions: list[dict[str, Any]], min_overlap: float = 0.1) -> list[dict]:
    """Lesions found per :data:`CNR_BANDS` band, from :func:`lesion_conspicuity` rows (with
    ``covered``), pooled over cases; lesions without a CNR are left out. The last band's
    ``cnr_to`` is ``None`` (no upper end)."""
    out = []
    for lo, hi in CNR_BANDS:
        band = [r for r in lesions if r.get("cnr") is not None and lo <= r["cnr"] < hi]
        found = sum(1 for r in band if r.get("found", r.get("covered", 0.0) >= min_overlap))
        top = hi if np.isfinite(hi) else None  # None: no upper end (JSON has no infinity)
        out.append({"cnr_from": lo, "cnr_to": top, "lesions": len(band), "found": found})
    return out


def _band_key(lo: float, hi: float | None) -> str:
    return (
        f"lesions_cnr_{lo:g}_up"
        if hi is None or not np.isfinite(hi)
        else f"lesions_cnr_{lo:g}_{hi:g}"
    )


def conspicuity_columns(lesions: list[dict[str, Any]]) -> dict[str, Any]:
    """One case's :func:`lesion_conspicuity` rows as flat table columns: the largest lesion's
    CNR (``tumor_main_cnr``) and, per :data:`CNR_BANDS` band, its lesions and those found
    (``lesions_cnr_0_0.5``, ``lesions_cnr_0_0.5_found``, …); :func:`summarize` pools them."""
    cols: dict[str, Any] = {"tumor_main_cnr": lesions[0].get("cnr") if lesions else None}
    for band in conspicuity_summary(lesions):
        key = _band_key(band["cnr_from"], band["cnr_to"])
        cols[key], cols[f"{key}_found"] = band["lesions"], band["found"]
    return cols


def _pooled_bands(rows: list[dict[str, Any]]) -> list[dict] | None:
    out = []
    for lo, hi in CNR_BANDS:
        key = _band_key(lo, hi)
        have = [r for r in rows if key in r]
        if not have:
            return None
        out.append({
            "cnr_from": lo,
            "cnr_to": hi if np.isfinite(hi) else None,
            "lesions": sum(int(r[key]) for r in have),
            "found": sum(int(r[f"{key}_found"]) for r in have),
        })  # fmt: skip
    return out


def format_bands(bands: list[dict]) -> str:
    """``CNR < 0.5: 0/3, 0.5–1: 2/4, ≥ 1: 9/9`` (found / lesions per band)."""
    parts = []
    for b in bands:
        lo, hi = b["cnr_from"], b["cnr_to"]
        name = f"≥ {lo:g}" if hi is None else f"< {hi:g}" if lo == 0 else f"{lo:g}–{hi:g}"
        parts.append(f"{name}: {b['found']}/{b['lesions']}")
    return "CNR " + ", ".join(parts)


def lesion_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Lesion recall (found / true, pooled over cases) and false lesions per case."""
    rows = [r for r in rows if "lesions_true" in r]
    n_true = sum(int(r["lesions_true"]) for r in rows)
    n_found = sum(int(r["lesions_found"]) for r in rows)
    n_false = sum(int(r["lesions_false"]) for r in rows)
    n_pred = sum(int(r.get("lesions_pred", 0)) for r in rows)
    return {
        "lesions_true": n_true,
        "lesions_found": n_found,
        "lesion_recall": n_found / n_true if n_true else None,
        # of the predicted lesions, the share that are true ones (pooled; None: none drawn)
        "lesion_precision": (n_pred - n_false) / n_pred if n_pred else None,
        "false_lesions_per_case": n_false / len(rows) if rows else None,
        "cases_without_tumor_with_false_lesion": sum(
            1 for r in rows if int(r["lesions_true"]) == 0 and int(r["lesions_false"]) > 0
        ),
        "cases_without_tumor": sum(1 for r in rows if int(r["lesions_true"]) == 0),
    }


def hcc_to_output(hcc: np.ndarray) -> np.ndarray:
    """HCC-TACE-Seg classes → output convention (liver + portal vein → 1, tumor → 2, rest 0)."""
    hcc = np.asarray(hcc)
    out = np.zeros(hcc.shape, np.uint8)
    out[(hcc == 1) | (hcc == 3)] = 1
    out[hcc == 2] = 2
    return out


def longest_diameter_mm(
    mask: np.ndarray,
    spacing: Sequence[float],
    affine_lps: np.ndarray | None = None,
    *,
    crop: bool = True,
) -> float:
    """Maximum Feret diameter (mm) of the largest connected component of ``mask`` (0 if empty).

    The lesion list's measure (:func:`napari_livertumor.stats.longest_diameter_mm`): edge to
    edge, as a reader measures for the 10 cm split (a voxelised ball measures a little over its
    true diameter). ``affine_lps`` (the grid's ``CTVolume.affine_lps``) measures through the
    grid's own axes: on a gantry-tilted (sheared) grid the spacings alone lengthen a lesion
    with the tilt. Its lesions are found in the mask's :func:`crop_box` (``crop=False``: in the
    whole volume, alike).
    """
    from scipy import ndimage as ndi

    from ..stats import longest_diameter_mm as lesion_diameter

    mask = np.asarray(mask, bool)
    if crop:
        mask = mask[crop_box(mask, margin=1)]
    if not mask.any():
        return 0.0
    lab, n = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        mask = lab == int(sizes.argmax())
    sl = ndi.find_objects(mask.astype(np.uint8))[0]
    axes = None
    if affine_lps is not None:
        m = np.asarray(affine_lps, float)[:3, :3]
        axes = np.stack([m[:, 2], m[:, 1], m[:, 0]])  # rows: one step along z, y, x in mm
    return lesion_diameter(mask[sl], spacing, axes)


def size_stratum(diameter_mm: float) -> str:
    """``">=10cm"`` or ``"<10cm"`` (``"none"`` when the case has no tumor)."""
    if diameter_mm <= 0:
        return "none"
    return ">=10cm" if diameter_mm >= LARGE_TUMOR_MM else "<10cm"


def summarize(
    rows: list[dict[str, Any]], *, nsd_tolerance_mm: float = NSD_TOLERANCE_MM
) -> dict[str, Any]:
    """Mean per-case scores (NaN left out) for the table, their medians, a 95 % bootstrap
    interval of the mean Dice, the Dice pooled over patients, the volume errors, tumor Dice
    per size stratum, lesion counts and boundary scores (each where its rows have them)."""
    table: dict[str, dict[str, float | None]] = {}
    medians: dict[str, dict[str, float | None]] = {}
    scored: dict[str, dict[str, int]] = {}
    dice_ci: dict[str, list[float] | None] = {}
    for cls in ("liver", "tumor"):
        table[cls] = {}
        medians[cls] = {}
        scored[cls] = {}
        for m in METRICS:
            vals = [r[f"{cls}_{m}"] for r in rows if np.isfinite(r.get(f"{cls}_{m}", np.nan))]
            table[cls][m] = float(np.mean(vals)) if vals else None
            medians[cls][m] = float(np.median(vals)) if vals else None
            scored[cls][m] = len(vals)
            if m == "dice":
                dice_ci[cls] = bootstrap_ci(vals)
    strata: dict[str, dict[str, Any]] = {}
    for s in (">=10cm", "<10cm"):
        vals = [
            r["tumor_dice"]
            for r in rows
            if r.get("tumor_stratum") == s and np.isfinite(r.get("tumor_dice", np.nan))
        ]
        strata[s] = {"n": len(vals), "tumor_dice": float(np.mean(vals)) if vals else None}
    out = {
        "n_cases": len(rows),
        "table": table,
        "table_median": medians,
        "n_scored": scored,  # cases each mean is over (a score undefined on a case is left out)
        "dice_ci95": dice_ci,  # of the mean over patients (None under 2 patients)
        "tumor_dice_by_size": strata,
        "lesions": lesion_summary(rows),
    }
    volumes = _volume_summary(rows)
    if volumes is not None:
        out.update(volumes)
    bands = _pooled_bands(rows)
    if bands is not None:
        out["lesions_by_cnr"] = bands
    surface = _surface_summary(rows, nsd_tolerance_mm)
    if surface is not None:
        out["surface"] = surface
    return out


def bootstrap_ci(values: Sequence[float], n: int = 2000, seed: int = 0) -> list[float] | None:
    """95 % percentile bootstrap interval of the mean of ``values`` (patients resampled with
    replacement ``n`` times, a fixed seed: the same figures run to run); None under two."""
    vals = np.asarray([v for v in values if np.isfinite(v)], float)
    if vals.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = vals[rng.integers(0, vals.size, size=(n, vals.size))].mean(1)
    return [float(v) for v in np.percentile(means, [2.5, 97.5])]


def _volume_summary(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``dice_global`` (per class: twice the shared mL over the predicted plus true mL, all
    patients pooled: LiTS's "Dice global", dominated by the large livers and tumors) and
    ``volume_error_pct`` (per class: mean and median of (predicted - true) / true, in %, over
    the patients with the class in their truth); None for rows without the columns."""
    if not any("liver_ml_overlap" in r for r in rows):
        return None
    pooled: dict[str, float | None] = {}
    errors: dict[str, dict[str, Any]] = {}
    for cls in ("liver", "tumor"):
        got = [r for r in rows if r.get(f"{cls}_ml_overlap") is not None]
        shared = sum(float(r[f"{cls}_ml_overlap"]) for r in got)
        both = sum(float(r[f"{cls}_ml_true"]) + float(r.get(f"{cls}_ml_pred") or 0.0) for r in got)
        pooled[cls] = 2.0 * shared / both if both > 0 else None
        vals = [
            float(r[f"{cls}_volume_error_pct"])
            for r in rows
            if r.get(f"{cls}_volume_error_pct") is not None
            and np.isfinite(r[f"{cls}_volume_error_pct"])
        ]
        errors[cls] = {
            "mean": float(np.mean(vals)) if vals else None,
            "median": float(np.median(vals)) if vals else None,
            "n": len(vals),
        }
    return {"dice_global": pooled, "volume_error_pct": errors}


def _surface_summary(
    rows: list[dict[str, Any]], nsd_tolerance_mm: float = NSD_TOLERANCE_MM
) -> dict[str, Any] | None:
    """Mean and median per class of each boundary score (distances are skewed: one stray
    island far away sets a case's HD95), over the cases where it is defined; None when no
    row has them (rows of an older evaluation)."""
    if not any(f"liver_{SURFACE_METRICS[0]}" in r for r in rows):
        return None
    out: dict[str, Any] = {"nsd_tolerance_mm": nsd_tolerance_mm}
    for cls in ("liver", "tumor"):
        out[cls] = {}
        for m in SURFACE_METRICS:
            vals = [
                float(r[f"{cls}_{m}"])
                for r in rows
                if r.get(f"{cls}_{m}") is not None and np.isfinite(r[f"{cls}_{m}"])
            ]
            out[cls][m] = {
                "mean": float(np.mean(vals)) if vals else None,
                "median": float(np.median(vals)) if vals else None,
                "n": len(vals),
            }
    return out


def _format_spread(summary: dict[str, Any]) -> list[str]:
    """Under the table: the Dice's bootstrap interval and median, the Dice pooled over the
    patients' voxels, the volume errors."""
    lines = []
    ci, med = summary.get("dice_ci95") or {}, summary.get("table_median") or {}
    parts = []
    shown = [c for c in ("liver", "tumor") if (med.get(c) or {}).get("dice") is not None]
    # a class without an interval has one patient's Dice (its median is that Dice): said so,
    # where a lone "(bootstrap)" after a median read as an interval left out
    some = [c for c in shown if ci.get(c)]
    mixed = 0 < len(some) < len(shown)  # each part then says its own
    for cls in shown:
        interval = ci.get(cls)
        parts.append(
            f"{cls} median {med[cls]['dice']:.3f}"
            + (f", mean's 95 % interval {interval[0]:.3f}–{interval[1]:.3f}" if interval else "")
            + ((" (bootstrap)" if interval else " (one patient: no interval)") if mixed else "")
        )
    if parts:
        end = "" if mixed else " (bootstrap)" if some else " (one patient: no interval)"
        lines.append("Dice over patients: " + "; ".join(parts) + end)
    pooled = summary.get("dice_global") or {}
    if any(v is not None for v in pooled.values()):
        lines.append(
            "Dice pooled over all patients (their mL; LiTS's global Dice pools voxels): "
            + ", ".join(f"{c} {v:.3f}" for c, v in pooled.items() if v is not None)
        )
    errors = summary.get("volume_error_pct") or {}
    said = [(c, e) for c, e in errors.items() if e.get("median") is not None]
    if said:
        lines.append(
            "Volume error, (predicted - true) / true: "
            + "; ".join(
                f"{c} median {e['median']:+.1f} %, mean {e['mean']:+.1f} % (n={e['n']})"
                for c, e in said
            )
        )
    return lines


def _format_surface(surface: dict[str, Any], n: int) -> list[str]:
    """The boundary scores' lines under the table."""

    def cell(stat: dict, digits: int) -> str:
        if stat["mean"] is None:
            return f"{'-':>16}"
        return f"{stat['mean']:>7.{digits}f} ({stat['median']:.{digits}f})".rjust(16)

    tol = surface.get("nsd_tolerance_mm", NSD_TOLERANCE_MM)
    lines = [
        "Boundaries, mean (median) per patient:",
        f"{'':11}{'HD95 (mm)':>16}{'ASSD (mm)':>16}{f'NSD ({tol:g} mm)':>16}",
    ]
    for cls in ("liver", "tumor"):
        c = surface[cls]
        lines.append(f"{cls:<11}{cell(c['hd95_mm'], 2)}{cell(c['assd_mm'], 2)}{cell(c['nsd'], 3)}")
    for cls in ("liver", "tumor"):
        c = surface[cls]
        k_dist, k_nsd = c["hd95_mm"]["n"], c["nsd"]["n"]
        if k_dist < n:
            lines.append(
                f"  ({cls} HD95, ASSD: over {k_dist} of the {n} patient{'s' if n != 1 else ''};"
                f" undefined where either mask has no {cls})"
            )
        if k_nsd < n:
            lines.append(
                f"  ({cls} NSD: over {k_nsd} of the {n} patient{'s' if n != 1 else ''}; "
                f"undefined where neither mask has {cls}, 0 where one has none)"
            )
    return lines


#: when a score of a class is undefined on a case (left out of the mean)
_UNDEFINED = {
    "dice": "where neither the truth nor the prediction has {cls}",
    "iou": "where neither the truth nor the prediction has {cls}",
    "sensitivity": "without true {cls}",
    "accuracy": "never",
}


def format_table(summary: dict[str, Any]) -> str:
    """The original's table with our numbers beside the published ones."""

    def f(v):
        return "   -  " if v is None else f"{v:6.3f}"

    refine = summary.get("refine")
    lines = [
        f"Test patients: {summary['n_cases']}"
        + (
            ""
            if refine is None
            else f"; ours {'with' if refine else 'without'} the tumor refinement"
            + ("" if refine else " (the original refined its tumor masks: --refine)")
        ),
        f"{'':8}{'':3}{'Accuracy':>17}{'Dice':>17}{'Sensitivity':>17}{'IoU':>17}",
        f"{'':11}" + "".join(f"{'ours':>9}{'orig.':>8}" for _ in METRICS),
    ]
    for cls in ("liver", "tumor"):
        cells = "".join(
            f"   {f(summary['table'][cls][m])}  {PUBLISHED[cls][m]:.3f}" for m in METRICS
        )
        lines.append(f"{cls:<11}{cells}")
    n = summary["n_cases"]
    for cls in ("liver", "tumor"):
        scored = (summary.get("n_scored") or {}).get(cls, {})
        fewer = [m for m in METRICS if scored.get(m, n) < n]
        for k in sorted({scored[m] for m in fewer}, reverse=True):  # one note per count
            names = [m for m in fewer if scored[m] == k]
            why = "; ".join(dict.fromkeys(_UNDEFINED[m].format(cls=cls) for m in names))
            lines.append(
                f"  ({cls} {', '.join(names)}: over {k} of the {n} patient"
                f"{'s' if n != 1 else ''}; undefined {why})"
            )
    lines += _format_spread(summary)
    if summary.get("surface"):
        lines += _format_surface(summary["surface"], n)
    lines.append(
        "Tumor Dice by the largest true lesion's longest 3D diameter (the original's measure is "
        "not published):"
    )
    for s, ref in PUBLISHED_TUMOR_DICE_BY_SIZE.items():
        st = summary["tumor_dice_by_size"][s]
        lines.append(f"  {s:<7} n={st['n']:<3} ours {f(st['tumor_dice'])}   original {ref:.3f}")
    les = summary.get("lesions") or {}
    if les.get("lesion_recall") is not None or les.get("false_lesions_per_case") is not None:
        recall = les.get("lesion_recall")
        precision = les.get("lesion_precision")
        per_lesion = les.get("dice_per_true_lesion_mean")
        lines.append(
            f"Lesions (>= 0.1 mL): found {les['lesions_found']} of {les['lesions_true']}"
            + (f" ({recall:.0%})" if recall is not None else "")
            + f"; false lesions per case {les['false_lesions_per_case']:.2f}"
            + f" (tumor-free cases with one: {les['cases_without_tumor_with_false_lesion']}"
            + f" of {les['cases_without_tumor']})"
            + (f"; true among those drawn {precision:.0%}" if precision is not None else "")
            + (f"; mean Dice per true lesion {per_lesion:.3f}" if per_lesion is not None else "")
        )
    if summary.get("lesions_by_size") and any(b["lesions"] for b in summary["lesions_by_size"]):
        lines.append(
            "Lesions found by longest diameter: "
            + ", ".join(
                f"{_size_band(b['mm_from'], b['mm_to'])}: {b['found']}/{b['lesions']}"
                for b in summary["lesions_by_size"]
            )
        )
    if summary.get("lesions_by_cnr"):
        bands = summary["lesions_by_cnr"]
        unmeasured = int(les.get("lesions_true") or 0) - sum(b["lesions"] for b in bands)
        lines.append(
            "Lesions found by contrast-to-noise ratio against the liver around them "
            f"(under 0.5: hard to see on this phase): {format_bands(bands)}"
            + (
                f"; {unmeasured} without one (under 10 voxels, or no liver around it)"
                if unmeasured > 0
                else ""
            )
        )
    return "\n".join(lines)
