"""Volumes and per-lesion measurements of a liver/tumor label map (no Qt).

Definitions (the same in the CLI's ``<case>_stats.json``, the batch summary and the Inspect
widget):

* ``liver_ml``: the whole organ, i.e. voxels labelled 1 (liver) **or** 2 (tumor), in mL.
* ``liver_parenchyma_ml``: voxels labelled 1 only.
* ``tumor_ml``: voxels labelled 2.
* ``tumor_to_liver_ratio``: ``tumor_ml / liver_ml`` (tumor over the whole organ incl. tumor, the
  TLVR of the clinical literature and of the weak supervision); null when there is no liver
  (undefined, not 0).
* Lesions: connected components of the tumor with 26-connectivity (voxels touching by a face,
  edge or corner belong to one lesion), numbered 1, 2, ... from the largest.
  ``longest_diameter_mm`` is the maximum 3D diameter, edge to edge: over the pairs of voxels
  of the lesion (those on the convex hull of its boundary voxels), the largest distance in mm
  between their centres plus one voxel's extent along it. A one-voxel lesion measures its
  smallest width. ``evaluate``'s 10 cm split uses the same measure. ``axial_diameter_mm`` is the longest diameter within one axial
  image (the RECIST measure a radiologist takes on the slice where the lesion is widest),
  edge to edge the same way: over the images across the grid axis nearest the patient's
  head-feet axis (the stored slices of an axial CT), the largest. ``centroid_zyx`` is in voxel
  indices,
  ``slice_range`` is the first and last z index (inclusive) and ``slice`` the z index of the
  centroid (halves rounded up), for jumping to the lesion in a viewer. Given the grid's ``affine_lps``, each
  lesion also has ``centroid_lps_mm``: the DICOM patient position (x, y, z, mm) of its
  centroid, the coordinates a PACS viewer shows (slice indices depend on the file's order),
  and diameters are measured through that affine (exact on a gantry-tilted, sheared grid).
* For a CT read from DICOM, :func:`add_image_numbers` gives each lesion ``image_numbers``
  (the first and last InstanceNumber of the slices it lies on) and ``image_number`` (that of
  its centre slice): the image numbers a PACS viewer shows for the series, the same however
  the volume is turned for display, where slice indices are not.
* Given the CT (``ct``, on the labels' grid): ``liver_mean_hu`` (parenchyma, label 1) and
  ``tumor_mean_hu``, and per lesion ``mean_hu`` and ``liver_contrast_hu``: its mean minus that
  of the liver (label 1) 3–8 mm around it (null when the lesion, or the liver there, has fewer
  than 10 voxels; negative:
  darker than the liver, as most HCC in the portal venous phase), the attenuation a
  radiologist reads on the image, measured the same way as the refinement's contrast test.
  And ``vessel_like`` (:func:`vessel_check`): whether the lesion is brighter than the liver
  and tube-shaped, as an enhancing vessel the tumor model took for tumor is, with its figures
  ``upper_quartile_vs_liver_hu`` and ``length_to_width`` (all None without a liver of 10
  voxels, or a lesion under 10). Such a lesion is kept and counted; :func:`vessel_warning`
  names it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LIVER, TUMOR = 1, 2


def compute_stats(
    labels: np.ndarray,
    spacing: Sequence[float],
    *,
    affine_lps: np.ndarray | None = None,
    ct: np.ndarray | None = None,
    truth_tumor: np.ndarray | None = None,
    should_cancel=None,
) -> dict:
    """Volumes and lesion list of a ``(Z, Y, X)`` label map (0 background, 1 liver, 2 tumor).

    Values 3 (portal vein) and 4 (aorta) are left out of every figure (said in the returned
    ``warnings``). An HCC-TACE-Seg ground truth, whose portal vein runs inside the liver, is
    scored by ``evaluate`` and Inspect after
    :func:`napari_livertumor.training.metrics.hcc_to_output` maps it to liver (14 mL more
    liver on a ``small`` phantom): pass it through that function first for their figures.

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
    spacing : (dz, dy, dx) in mm
    affine_lps : ndarray (4, 4), optional
        The grid's index ``(x, y, z, 1)`` → LPS mm matrix (``CTVolume.affine_lps``): adds
        ``centroid_lps_mm`` to each lesion and measures diameters through it.
    ct : ndarray, shape (Z, Y, X), optional
        The CT in HU on the same grid: adds the mean attenuations (``liver_mean_hu``,
        ``tumor_mean_hu``, each lesion's ``mean_hu`` and ``liver_contrast_hu``). A CT of
        another shape is refused (ValueError).
    truth_tumor : ndarray of bool, shape (Z, Y, X), optional
        A ground truth's tumor on the same grid: adds each lesion's ``truth_share``, the share
        of its voxels the ground truth marks as tumor (under 0.1: a false lesion, as
        :func:`napari_livertumor.training.metrics.lesion_detection` counts them).
    should_cancel : callable, optional
        Asked before each lesion is measured; true: :class:`~napari_livertumor.errors.Cancelled`.

    Returns
    -------
    dict
        ``liver_ml``, ``liver_parenchyma_ml``, ``tumor_ml``, ``tumor_to_liver_ratio``,
        ``lesion_count``, ``lesions`` (list of dicts: ``id``, ``volume_ml``,
        ``longest_diameter_mm``, ``axial_diameter_mm``, ``centroid_zyx``, ``slice``,
        ``slice_range``, ``bbox_zyx``),
        ``spacing_mm``; ``warnings`` (list of str) only where there is one: labels holding 3
        or 4 (their figures lack the portal vein; see above).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D (z, y, x); got shape {labels.shape}")
    ct = getattr(ct, "array", ct)  # (a CTVolume, as everywhere else: its voxels)
    if ct is not None and np.shape(ct) != labels.shape:
        raise ValueError(f"CT shape {np.shape(ct)} differs from the labels' {labels.shape}")
    if truth_tumor is not None and np.shape(truth_tumor) != labels.shape:
        raise ValueError(
            f"ground truth shape {np.shape(truth_tumor)} differs from the labels' {labels.shape}"
        )
    if labels.dtype.kind not in "biu":  # float labels measured nothing, without a word
        raise ValueError(
            f"labels must be integers (0 background, 1 liver, 2 tumor); got {labels.dtype}"
        )
    if labels.size and labels.dtype.kind != "b":
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high > 4:  # a 0/255 mask measured 0 mL, without a word
            raise ValueError(
                f"labels hold the value {high if high > 4 else low}: expected 0 background, "
                "1 liver, 2 tumor (3 portal vein and 4 aorta are left out of the figures)"
            )
    from .io.volume import checked_spacing

    spacing = checked_spacing(spacing)  # a zero measured 0 mL, without a word
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if affine_lps is not None:  # exact on any grid (a skewed one's spacings overstate it)
        voxel_ml = abs(float(np.linalg.det(np.asarray(affine_lps, float)[:3, :3]))) / 1000.0
    tumor = labels == TUMOR
    n_tumor = int(np.count_nonzero(tumor))
    n_liver_only = int(np.count_nonzero(labels == LIVER))
    liver_median = None  # the vessel check's reference: the liver as a whole (see vessel_check)
    if ct is not None and n_tumor and n_liver_only >= MIN_CHECK_VOXELS:
        box = _bbox(labels == LIVER)
        liver_median = _finite(np.median(np.asarray(ct[box])[labels[box] == LIVER]))
    liver_ml = (n_liver_only + n_tumor) * voxel_ml
    tumor_ml = n_tumor * voxel_ml

    # (z, y, x) index steps as mm vectors: the grid's own axes (sheared when tilted)
    axes = None if affine_lps is None else np.asarray(affine_lps, float)[:3, :3][:, ::-1].T
    lesions = []
    if n_tumor:
        found, sizes = _numbered_lesions(tumor, affine_lps)
        for order, (comp, sub, start, centroid, _) in enumerate(found, start=1):
            if should_cancel is not None and should_cancel():  # a large scan's many lesions
                from .errors import Cancelled

                raise Cancelled("measuring cancelled by the user")
            stop = start + np.array(sub.shape)
            lesion = {
                "id": order,
                "volume_ml": round(int(sizes[comp]) * voxel_ml, 4),
                "longest_diameter_mm": round(longest_diameter_mm(sub, spacing, axes), 2),
                "axial_diameter_mm": round(axial_diameter_mm(sub, spacing, axes), 2),
                "centroid_zyx": [round(float(c), 2) for c in centroid],
                "slice": centroid_slice(float(centroid[0])),
                "slice_range": [int(start[0]), int(stop[0] - 1)],
                "bbox_zyx": [[int(a), int(b)] for a, b in zip(start, stop, strict=True)],
            }
            if affine_lps is not None:
                mm = _to_lps(affine_lps, centroid)
                lesion["centroid_lps_mm"] = [round(float(v), 1) for v in mm]
            if ct is not None:
                lesion.update(_lesion_attenuation(ct, labels, sub, start, spacing))
                box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
                lesion.update(
                    vessel_check(
                        np.asarray(ct[box])[sub],
                        sub,
                        spacing,
                        liver_median,
                        lesion["longest_diameter_mm"],
                        axes,
                        volume_ml=lesion["volume_ml"],
                    )
                )
            if truth_tumor is not None:
                where_truth = np.asarray(truth_tumor[tuple(map(slice, start, stop))], bool)
                share = np.count_nonzero(where_truth[sub]) / int(sizes[comp])
                lesion["truth_share"] = float(share)  # (unrounded: 0.09996 is under 0.1)
            lesions.append(lesion)
    out = {
        # (mL to 4 decimals, as each lesion's: a one-voxel lesion's 0.0024 mL is not 0.002 in
        # all; the ratio to 4 significant digits: a small tumor's is not 7e-05)
        "liver_ml": round(liver_ml, 4),
        "liver_parenchyma_ml": round(n_liver_only * voxel_ml, 4),
        "tumor_ml": round(tumor_ml, 4),
        "tumor_to_liver_ratio": float(f"{tumor_ml / liver_ml:.4g}") if liver_ml > 0 else None,
        "lesion_count": len(lesions),
        "lesions": lesions,
        "spacing_mm": [round(float(s), 6) for s in spacing],  # 4.0, not 3.999999999999999
    }
    if ct is not None:
        out["liver_mean_hu"] = _mean_hu(ct, labels == LIVER) if n_liver_only else None
        out["tumor_mean_hu"] = _mean_hu(ct, tumor) if n_tumor else None
    left_out = _left_out_classes(labels, voxel_ml)
    if left_out:  # an HCC-TACE-Seg ground truth: its liver_ml lacked the portal vein, unsaid
        vein = (
            "liver_ml lacks a portal vein inside the liver. " if "portal vein" in left_out else ""
        )
        out["warnings"] = [
            f"the labels hold {left_out}, left out of every figure: {vein}Map an HCC-TACE-Seg "
            "ground truth first, as evaluate does: "
            "napari_livertumor.training.metrics.hcc_to_output(labels) (portal vein to liver, "
            "aorta left out)"
        ]
    return out


def _left_out_classes(labels: np.ndarray, voxel_ml: float) -> str:
    """The classes 3 (portal vein) and 4 (aorta) a label map holds, with their volumes, as
    words ("" for none)."""
    if not labels.size or labels.dtype.kind == "b" or int(labels.max()) < 3:
        return ""
    held = []
    for value, name in ((3, "portal vein"), (4, "aorta")):
        n = int(np.count_nonzero(labels == value))
        if n:
            held.append(f"{value} ({name}, {n * voxel_ml:.4g} mL)")
    return " and ".join(held)


def _numbered_lesions(tumor: np.ndarray, affine_lps) -> tuple[list, np.ndarray]:
    """The tumor's lesions (26-connected components) in the order :func:`compute_stats`
    numbers them: ``([(component, its mask in its box, box start, centroid (z, y, x),
    centroid in LPS mm or index), ...], sizes by component)``."""
    from scipy import ndimage as ndi

    # Work on the tumor's bounding box only: a full-size int32 label image is 4x the CT.
    box = _bbox(tumor)
    offset = np.array([s.start for s in box])
    lab, n = ndi.label(tumor[box], structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(lab.ravel())
    boxes = ndi.find_objects(lab)
    found = []
    for comp in range(1, n + 1):
        sl = boxes[comp - 1]
        sub = lab[sl] == comp
        start = offset + np.array([s.start for s in sl])
        centroid = np.argwhere(sub).mean(axis=0) + start
        where = centroid if affine_lps is None else _to_lps(affine_lps, centroid)
        found.append((comp, sub, start, centroid, where))
    # numbered by size; lesions of the same size by their place in the patient, so a
    # volume shown turned numbers them as its file does (the scan order differs)
    found.sort(key=lambda f: (-int(sizes[f[0]]), *np.round(f[4], 3)))
    return found, sizes


def lesion_id_map(labels: np.ndarray, *, affine_lps: np.ndarray | None = None) -> np.ndarray:
    """Each lesion of ``labels``' tumor (value 2) marked with its number in
    :func:`compute_stats`' ``lesions`` (``id``: 1 the largest), 0 elsewhere: the map to find
    lesion N in (``segment --lesion-map``'s ``<case>_lesions.nii.gz``, Export's). Give the
    ``affine_lps`` the stats were measured with: lesions of the same size are numbered by their
    place in the patient. uint8, or uint16 past 255 lesions."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D (z, y, x); got shape {labels.shape}")
    tumor = labels == TUMOR
    if not tumor.any():
        return np.zeros(labels.shape, np.uint8)
    found, _ = _numbered_lesions(tumor, affine_lps)
    out = np.zeros(labels.shape, np.uint8 if len(found) < 256 else np.uint16)
    for order, (_, sub, start, _, _) in enumerate(found, start=1):
        where = tuple(slice(int(a), int(a) + n) for a, n in zip(start, sub.shape, strict=True))
        out[where][sub] = order
    return out


def _mean_hu(ct: np.ndarray, mask: np.ndarray) -> float | None:
    box = _bbox(mask)  # a liver's box, not the whole scan
    return _finite(ct[box][mask[box]].mean(dtype=np.float64))


def _finite(value) -> float | None:
    """``value`` to 0.1 HU; None when it is not a number (a CT holding NaN): JSON has no NaN."""
    if value is None:
        return None
    value = float(value)
    return round(value, 1) if np.isfinite(value) else None


def _lesion_attenuation(ct, labels, sub: np.ndarray, start, spacing) -> dict:
    """``mean_hu`` and ``liver_contrast_hu`` of one lesion (:func:`lesion_ring_contrast`)."""
    ring = lesion_ring_contrast(ct, labels, sub, start, spacing)
    return {"mean_hu": _finite(ring["mean"]), "liver_contrast_hu": _finite(ring["contrast"])}


def lesion_ring_contrast(
    ct: np.ndarray, labels: np.ndarray, sub: np.ndarray, start, spacing, liver: int = LIVER
) -> dict:
    """One lesion's mean HU, and its contrast to the liver 3–8 mm around it.

    ``sub`` is the lesion's mask in its bounding box, whose first voxel is ``start`` (z, y, x)
    in ``ct`` and ``labels``; the liver is ``labels == liver`` (other lesions are not). Only a
    box reaching 9 mm around the lesion is worked on. Returns ``{"mean", "contrast", "sd"}``
    (floats, unrounded; ``contrast`` = mean minus the ring's mean and ``sd`` the pooled
    standard deviation of :func:`napari_livertumor.refine.contour.ring_contrast`, both None
    when the lesion or the ring has fewer than 10 voxels).
    """
    from .refine.contour import ring_contrast

    pad = [int(np.ceil(9.0 / s)) + 1 for s in spacing]  # the ring reaches 8 mm out
    lo = [max(0, int(a) - q) for a, q in zip(start, pad, strict=True)]
    hi = [
        min(n, int(a) + m + q)
        for a, m, q, n in zip(start, sub.shape, pad, labels.shape, strict=True)
    ]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    lesion = np.zeros(tuple(b - a for a, b in zip(lo, hi, strict=True)), bool)
    at = tuple(
        slice(int(a) - o, int(a) - o + m) for a, o, m in zip(start, lo, sub.shape, strict=True)
    )
    lesion[at] = sub
    image = np.asarray(ct[box], np.float32)
    stats = ring_contrast(image, lesion, labels[box] == liver, spacing)
    return {
        "mean": float(image[lesion].mean(dtype=np.float64)),
        "contrast": None if stats is None else stats[0],
        "sd": None if stats is None else stats[1],
    }


#: Fewer voxels than this (in a lesion, or in the liver) give no vessel check (None).
MIN_CHECK_VOXELS = 10
#: A lesion is vessel-like when its brightest quarter (upper quartile, HU) lies at least this
#: far above the liver's median: enhancing portal and hepatic veins are 150-200 HU in the portal
#: venous phase against a liver of 90-130, and the tumor model's mask of one takes a margin of
#: liver around the lumen (the lumen a quarter to a half of it), so its median is the liver's
#: while its upper quartile is the lumen's. Plain liver's upper quartile lies 0.67 noise SD
#: over its median: 30 HU is not reached under about 45 HU of noise. A hypodense lesion (most
#: HCC in the portal venous phase, metastases) is not bright; a hyperenhancing one (arterial
#: HCC) or a rim-enhancing one is, and only its shape tells it from a vessel (below).
VESSEL_BRIGHT_HU = 30.0
#: ... and tube-shaped: its longest diameter at least this many times its widest width (twice
#: its largest inscribed radius): a straight vessel or a branching tree. A tumor is a mass:
#: round to oval, an oval of 2:1 measures about 2; a vessel 8 mm wide and 3 cm long already 3.7.
VESSEL_LENGTH_TO_WIDTH = 3.0
#: ... and no larger than this (mL): the false lesions on vessels measured were up to 32.5 mL
#: (a vessel with its margin of liver); a mask of hundreds of mL bright and long is the model
#: marking most of the liver (1291 mL, 89 % of a liver, read "tube-shaped, as an enhancing
#: vessel is"), which the whole-liver warning names instead
VESSEL_MAX_ML = 100.0


def vessel_check(
    hu: np.ndarray,
    sub: np.ndarray,
    spacing,
    liver_median_hu: float | None,
    longest_mm: float,
    axes: np.ndarray | None = None,
    volume_ml: float | None = None,
) -> dict:
    """Whether one lesion looks like an enhancing vessel rather than a mass.

    ``hu`` are the lesion's voxels' values, ``sub`` its mask in its bounding box,
    ``liver_median_hu`` the median of the liver (label 1) and ``longest_mm`` its longest
    diameter. The tumor model calls enhancing portal-vein branches tumor (a review: 24 mL of
    "tumor" in a tumor-free phantom, its voxels 40 HU above the liver); a vessel is brighter
    than the liver (:data:`VESSEL_BRIGHT_HU`) and long for its width
    (:data:`VESSEL_LENGTH_TO_WIDTH`), a hyperenhancing HCC only the first; one of over
    :data:`VESSEL_MAX_ML` (``volume_ml``) is no vessel, whatever its shape. Returns
    ``vessel_like`` (bool), ``upper_quartile_vs_liver_hu`` and ``length_to_width``, all None
    when the lesion or the liver is too small to tell (:data:`MIN_CHECK_VOXELS`) or the CT
    holds no number there. Nothing is removed: callers say it (:func:`vessel_warning`).
    """
    from scipy import ndimage as ndi

    none = {"vessel_like": None, "upper_quartile_vs_liver_hu": None, "length_to_width": None}
    if liver_median_hu is None or hu.size < MIN_CHECK_VOXELS:
        return none
    bright = _finite(np.percentile(np.asarray(hu, np.float64), 75) - liver_median_hu)
    if bright is None:
        return none
    # the largest inscribed radius, in mm (a skewed grid: its steps' lengths, as spacing)
    steps = np.asarray(spacing, float) if axes is None else np.linalg.norm(axes, axis=1)
    inside = ndi.distance_transform_edt(np.pad(sub, 1), sampling=steps)
    width = 2.0 * float(inside.max())
    ratio = round(float(longest_mm) / width, 2) if width > 0 else None
    return {
        "vessel_like": bool(
            ratio is not None
            and bright >= VESSEL_BRIGHT_HU
            and ratio >= VESSEL_LENGTH_TO_WIDTH
            and (volume_ml is None or volume_ml <= VESSEL_MAX_ML)
        ),
        "upper_quartile_vs_liver_hu": bright,
        "length_to_width": ratio,
    }


def vessel_warning(stats: dict) -> str | None:
    """The warning naming the lesions of ``stats`` that :func:`vessel_check` found
    vessel-like (kept and counted in ``tumor_ml``), or None when there are none."""
    found = [les for les in stats.get("lesions") or [] if les.get("vessel_like")]
    if not found:
        return None
    shown = [f"{les['id']} ({volume_shown(les['volume_ml'])} mL)" for les in found[:6]]
    more = len(found) - len(shown)
    names = ", ".join(shown[:-1]) + (" and " if len(shown) > 1 else "") + shown[-1]
    if more:
        names = f"{', '.join(shown)} and {more} more"
    one = len(found) == 1
    total = sum(les["volume_ml"] for les in found)
    return (
        f"lesion{'' if one else 's'} {names} {'is' if one else 'are'} brighter than the liver "
        f"and tube-shaped, as {'an enhancing vessel is' if one else 'enhancing vessels are'} "
        f"(the tumor model takes such vessels for tumor): check {'it' if one else 'them'} "
        f"before counting {'it' if one else 'them'}"
        + ("" if one else f" ({volume_shown(total)} mL of the tumor volume)")
        # (the panels mark its row "vessel?"; the stats file says "vessel_like")
    )


def scan_identity(meta: dict) -> dict:
    """The scan a result is of, as a reader knows it: ``patient_id``, ``study_uid``,
    ``study_date`` (YYYY-MM-DD), ``series_number``, ``series_description`` of a DICOM scan
    (None where it does not say; all None for a NIfTI file, whose name says none of them).
    Two studies of one patient (a baseline, a follow-up) were told apart only by UIDs."""
    if not meta.get("series_uid"):  # a NIfTI's: its name is no patient's or series' (null)
        meta = {}
    date = str(meta.get("study_date") or "")
    if len(date) == 8 and date.isdigit():
        date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    number = meta.get("series_number")
    return {
        "patient_id": str(meta.get("patient_id") or "") or None,
        "study_uid": str(meta.get("study_uid") or "") or None,
        "study_date": date or None,
        "series_number": int(number) if isinstance(number, (int, np.integer)) else None,
        "series_description": str(meta.get("description") or "") or None,
    }


def scan_words(identity: dict) -> str:
    """``series #104 'LIVER 3 PHASE CAP' of 1998-06-12`` from :func:`scan_identity`'s keys
    (those known); "" when none is."""
    parts = []
    if identity.get("series_number") is not None:
        parts.append(f"#{identity['series_number']}")
    if identity.get("series_description"):
        parts.append(repr(str(identity["series_description"])))
    words = f"series {' '.join(parts)}" if parts else ""
    if identity.get("study_date"):
        words += f"{' of' if words else 'the study of'} {identity['study_date']}"
    return words


def add_image_numbers(stats: dict, volume) -> dict:
    """Add each lesion's DICOM image numbers (``image_numbers``: first and last,
    ``image_number``: its centre slice's) to ``stats`` measured on ``volume``'s grid.

    ``volume`` is the :class:`~napari_livertumor.io.volume.CTVolume` the labels lie on: as
    read, or turned for display (:meth:`~napari_livertumor.io.volume.CTVolume.displayed`,
    whose lesions are mapped back to the file's slices). Without per-slice InstanceNumbers (a
    NIfTI, a series without them) nothing is added. Slices interpolated into a gap have no
    number; a lesion only on such slices gets none. Returns ``stats``.
    """
    own = volume.meta.get("instance_numbers")
    turn = volume.meta.get("stored_turn")
    if own is not None and len(own) == volume.shape[0]:
        numbers, turn = list(own), None
    elif turn is not None:
        numbers = list(volume.file_meta.get("instance_numbers") or [])
        if len(numbers) != volume.meta["stored_grid"].shape[0]:
            return stats
    else:
        return stats
    if not any(n is not None for n in numbers):
        return stats

    def stored_z(zyx) -> float:
        return float(zyx[0]) if turn is None else turn.index_back(zyx, volume.shape)[0]

    for lesion in stats.get("lesions") or []:
        (z0, z1), (y0, y1), (x0, x1) = lesion["bbox_zyx"]
        ends = [stored_z((z0, y0, x0)), stored_z((z1 - 1, y1 - 1, x1 - 1))]
        lo, hi = (int(round(v)) for v in sorted(ends))
        covered = [n for n in numbers[lo : hi + 1] if n is not None]
        centre = numbers[int(round(stored_z((lesion["slice"], *lesion["centroid_zyx"][1:]))))]
        if covered:
            lesion["image_numbers"] = [min(covered), max(covered)]
            lesion["image_number"] = centre
    return stats


def centroid_slice(z: float) -> int:
    """The slice index of a lesion's centroid ``z`` (voxels), halves rounded up: one rule for
    the stats, Inspect and ``evaluate``'s ``lesions.csv`` (Python's ``round`` takes halves to
    the even index, so a lesion on slices 2–3 was slice 2 and one on 3–4 slice 4). A lesion's
    slices are contiguous (26-connected), so the centroid's slice holds some of it."""
    return int(np.floor(z + 0.5))


def _to_lps(affine_lps, centroid_zyx) -> np.ndarray:
    """A (z, y, x) voxel position in patient mm (L, P, S)."""
    return (np.asarray(affine_lps, float) @ np.r_[np.asarray(centroid_zyx)[::-1], 1.0])[:3]


def diameter_shown(mm: float | None) -> float | None:
    """A diameter to one decimal, as the tables show it, from the stats' two-decimal figure.

    The lesion list holds diameters to 0.01 mm; one decimal is taken from that figure, half
    away from zero (87.1497 → 87.15 → 87.2), so that every table showing one decimal — the
    Inspect panel's, ``evaluate``'s ``per_case.csv`` — gives the same number for the same lesion.
    """
    if mm is None:
        return None
    from decimal import ROUND_HALF_UP, Decimal

    two = Decimal(f"{float(mm):.2f}")
    return float(two.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def volume_shown(ml: float | None) -> str:
    """A volume as the panels and the command line print it (mL, without the unit): one
    decimal from 1 mL (a 1.5-mm voxel grid measures no hundredths of a litre-sized liver), two
    below (a 0.44-mL lesion), "<0.01" for a finding under 0.005 mL (not an empty-looking 0.00).
    The stats files keep their full figures."""
    if ml is None:
        return "—"
    value = float(ml)
    if 0 < value < 0.005:
        return "<0.01"
    # (by the figure shown: 0.996 is "1.0", as 1.0 is, not "1.00")
    return f"{value:.1f}" if abs(value) >= 0.995 else f"{value:.2f}"


def longest_diameter_mm(
    mask: np.ndarray, spacing: Sequence[float], axes: np.ndarray | None = None
) -> float:
    """Maximum 3D Feret diameter (mm) of a binary ``(Z, Y, X)`` mask, edge to edge.

    Over pairs of voxels, the largest distance between their centres plus one voxel's extent
    along it (centre to centre, a lesion measures one voxel short; a single voxel, 0).
    ``axes`` (3×3, optional): row ``i`` the mm vector of one step along index axis ``i``
    (z, y, x); by default the axes are at right angles with lengths ``spacing``."""
    from scipy import ndimage as ndi

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0.0
    # The farthest pair of a set lies on its convex hull, whose vertices are boundary voxels.
    boundary = mask & ~ndi.binary_erosion(mask, border_value=0)
    index = np.argwhere(boundary).astype(np.float64)
    # A linear map keeps a hull's vertices: the hull is found on the voxel indices, where a
    # one-slice lesion is exactly flat even on a tilted or oblique grid, then mapped to mm.
    if len(index) > 4:
        index = _hull_points(index)
    steps = np.diag(np.asarray(spacing, np.float64)) if axes is None else np.asarray(axes, float)
    pts = index @ steps
    longest = _max_edge_to_edge(pts, steps) if len(pts) >= 2 else 0.0
    if longest == 0:  # one voxel (or one repeated point): its smallest width
        return float(np.linalg.norm(steps, axis=1).min())
    return longest


def axial_diameter_mm(
    mask: np.ndarray, spacing: Sequence[float], axes: np.ndarray | None = None
) -> float:
    """Longest diameter (mm) of a binary ``(Z, Y, X)`` mask within one axial image, edge to
    edge as :func:`longest_diameter_mm` measures it; the largest over the images.

    The images are those across the index axis whose step points most along the patient's
    head-feet axis (``axes``' third column, LPS ``S``); without ``axes``, the z axis.
    """
    from scipy import ndimage as ndi

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0.0
    steps = np.diag(np.asarray(spacing, np.float64)) if axes is None else np.asarray(axes, float)
    # the axis whose direction (not step length: a thick slice's) is most head-feet
    across = (
        0 if axes is None else int(np.argmax(np.abs(steps[:, 2]) / np.linalg.norm(steps, axis=1)))
    )
    inplane = [a for a in range(3) if a != across]
    best = 0.0
    for i in np.flatnonzero(mask.any(axis=tuple(inplane))):
        image = np.take(mask, i, axis=across)
        boundary = image & ~ndi.binary_erosion(image, border_value=0)
        index = np.argwhere(boundary).astype(np.float64)
        if len(index) > 3:
            index = _hull_points(index)
        if len(index) >= 2:
            best = max(best, _max_edge_to_edge(index @ steps[inplane], steps[inplane]))
    if best == 0:  # one voxel per image: its smallest in-plane width
        return float(np.linalg.norm(steps[inplane], axis=1).min())
    return best


def _hull_points(pts: np.ndarray) -> np.ndarray:
    from scipy.spatial import ConvexHull, QhullError

    try:
        return pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):
        pass
    # Flat lesions (one slice; one voxel thick in a tilted plane) or a line of voxels: the
    # hull of their coordinates in their own plane (or line), whatever its direction. Tried
    # on the axes only, a tilted plate of 14 400 voxels fell to the all-pairs search (29 s).
    centred = pts - pts.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int((sv > 1e-9 * max(float(sv[0]), 1.0)).sum())
    if rank == 2:
        try:
            return pts[ConvexHull(centred @ vt[:2].T).vertices]
        except (QhullError, ValueError):
            return pts
    if rank == 1:  # a line of voxels: its two ends
        along = centred @ vt[0]
        return pts[[int(along.argmin()), int(along.argmax())]]
    return pts


def _max_edge_to_edge(pts: np.ndarray, steps: np.ndarray, block: int = 256) -> float:
    """The largest distance between two of the voxel centres ``pts``, plus one voxel's extent
    along it, over every pair: taken for the farthest pair alone, a lesion's figure changed
    when it was mirrored (two pairs of one length, one along an axis, one along a diagonal,
    whose voxel extents differ)."""
    best = 0.0
    for i in range(0, len(pts), block):
        diff = pts[i : i + block, None, :] - pts[None, :, :]
        dist = np.sqrt((diff**2).sum(-1))
        extent = np.abs(diff @ steps.T).sum(-1)  # Σ_k |step_k · v|, over |v| below
        with np.errstate(invalid="ignore", divide="ignore"):
            total = np.where(dist > 0, dist + extent / dist, 0.0)
        best = max(best, float(total.max()))
    return best


def _bbox(mask: np.ndarray) -> tuple[slice, slice, slice]:
    out = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(out)  # type: ignore[return-value]


__all__ = [
    "axial_diameter_mm",
    "compute_stats",
    "diameter_shown",
    "longest_diameter_mm",
    "vessel_check",
    "vessel_warning",
    "volume_shown",
]
