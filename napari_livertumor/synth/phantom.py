"""One synthetic abdominal CT with its HCC-TACE-Seg-style label map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.volume import CTVolume
from . import _tissue as T
from . import anatomy as A
from ._fields import Grid, resize_linear
from .intensity import PHASES, add_noise, render, sample_lut, upsample2

#: name -> (in-plane size, default slice count range or fixed count)
SHAPES = {"small": 96, "medium": 256, "full": 512}

#: lesion kinds (appearance relative to the liver per phase, see ``intensity.py``)
TUMOR_KINDS = ("typical", "hypovascular", "iso", "rim", "infiltrative")

#: overrides accepted by :func:`generate_phantom`
OVERRIDES = (
    "n_tumors",
    "tumor_diameters_mm",
    "tumor_kinds",
    "noise_sd",
    "slice_thickness",
    "pixel_spacing",
    "n_slices",
    "fatty_liver",
    "cirrhotic",
    "streaks",
    "body_size",
    "oral_contrast",
    "fov_padding",
)


@dataclass
class Phantom:
    """A generated case.

    Attributes
    ----------
    ct : CTVolume
        ``(Z, Y, X)`` int16 HU with spacing, LPS origin and identity direction.
    labels : ndarray of uint8, shape (Z, Y, X)
        0 other, 1 liver, 2 tumor mass (incl. necrosis), 3 portal vein, 4 abdominal aorta.
    info : dict
        What was drawn: phase, tumors (center_mm, diameter_mm — a volume-equivalent sphere's —,
        kind, enhancement, volume_ml — its viable part: necrosis, one code shared by every
        lesion, is counted in tumor_ml only), tlvr, liver_ml, tumor_ml, noise_sd, spacing; and
        what the label map shows: lesions_labelled (26-connected, ≥ 0.1 mL) and
        max_tumor_axial_mm (their largest axial diameter), and more.
    """

    ct: CTVolume
    labels: np.ndarray
    info: dict[str, Any]

    def __repr__(self) -> str:  # (the default printed both arrays whole)
        return (
            f"Phantom(ct={self.ct!r}, labels={np.shape(self.labels)} "
            f"{np.asarray(self.labels).dtype}, phase={self.info.get('phase')!r}, "
            f"tumors={len(self.info.get('tumors') or [])})"
        )


def generate_phantom(
    seed: int, shape: str = "small", phase: str | None = None, **overrides: Any
) -> Phantom:
    """Generate one seeded, deterministic synthetic abdominal CT with ground-truth labels.

    Parameters
    ----------
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed, shape, phase and overrides give
        the same phantom bit for bit.
    shape : {"small", "medium", "full"}
        ``small``: 96×96×32 over the whole abdomen (3–5 mm pixels, 7–18 mm slices) for fast tests;
        ``medium``: 256×256, 40–80 slices; ``full``: 512×512, 60–200 slices, 0.6–0.98 mm pixels.
    phase : {"non-contrast", "arterial", "portal venous"}, optional
        Contrast phase; drawn (15 % / 40 % / 45 %) when not given.
    **overrides
        Any of :data:`OVERRIDES`: ``n_tumors`` (int), ``tumor_diameters_mm`` (list of float,
        overrides the count), ``tumor_kinds`` (list of :data:`TUMOR_KINDS`), ``noise_sd``
        (HU), ``slice_thickness`` (mm), ``pixel_spacing`` (mm, ``full`` only), ``n_slices``,
        ``fatty_liver`` / ``cirrhotic`` / ``streaks`` / ``oral_contrast`` / ``fov_padding``
        (bool), ``body_size`` (habitus z-score, 0 = average).

    Returns
    -------
    Phantom
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {sorted(SHAPES)}, not {shape!r}")
    if phase is not None and phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    unknown = set(overrides) - set(OVERRIDES)
    if unknown:
        raise TypeError(f"unknown phantom overrides: {sorted(unknown)}; known: {OVERRIDES}")
    rng = np.random.default_rng(seed)
    ov = overrides
    drawn = str(rng.choice(PHASES, p=[0.15, 0.4, 0.45]))  # always drawn: same anatomy per seed
    phase = phase or drawn
    body = A.sample_body(rng, ov.get("body_size"))
    extras = _sample_extras(rng, ov)
    plan = _sample_tumor_plan(rng, ov)

    # ---- geometry of the scan
    n_xy = SHAPES[shape]
    H = body.liver_height
    top = rng.uniform(15, 60)
    # most scans stop a little below the liver; some run down into the pelvis
    liver_bottom = -H * (1.3 if extras["riedel"] else 1.0) - 10.0  # as clamped in _liver
    bottom = liver_bottom - (rng.uniform(20, 120) if rng.random() < 0.7 else rng.uniform(120, 300))
    width_needed = 2 * body.half_width * 1.06 + 16
    depth_needed = (body.ant + body.post) * 1.06 + 30
    if shape == "full":
        dx = float(ov.get("pixel_spacing", rng.uniform(0.6, 0.9)))
        dx = max(dx, min(0.98, max(width_needed, depth_needed) / n_xy))
        dz = float(ov.get("slice_thickness", rng.choice([1.25, 2.0, 2.5, 2.5, 2.5, 3.0, 5.0])))
        nz = int(ov.get("n_slices", np.clip(round((top - bottom) / dz) + 1, 60, 200)))
    elif shape == "medium":
        dx = max(width_needed, depth_needed) * rng.uniform(1.0, 1.15) / n_xy
        dz = float(ov.get("slice_thickness", rng.choice([3.0, 4.0, 5.0])))
        nz = int(ov.get("n_slices", np.clip(round((top - bottom) / dz) + 1, 40, 80)))
    else:
        dx = max(width_needed, depth_needed) * rng.uniform(1.0, 1.12) / n_xy
        nz = int(ov.get("n_slices", 32))
        dz = float(ov.get("slice_thickness", (top - bottom) / (nz - 1)))
    extent = (nz - 1) * dz
    mid = 0.5 * (top + bottom) if extent < top - bottom else top - 0.5 * extent
    if extent < top - bottom:  # thin slices: keep the liver in view
        mid = 0.5 * liver_bottom + rng.uniform(-0.1, 0.1) * max(0.0, extent + liver_bottom)
    z0 = mid - 0.5 * extent
    factor = 2 if n_xy >= 256 else 1
    n_w = n_xy // factor
    cx = rng.uniform(-10, 10)
    cy = (body.post - body.ant) / 2 + rng.uniform(-15, 15)
    x0 = cx - 0.5 * (n_xy - 1) * dx
    y0 = cy - 0.5 * (n_xy - 1) * dx
    wc = np.arange(n_w) * factor + 0.5 * (factor - 1)
    grid = Grid(
        zs=z0 + np.arange(nz) * dz,
        ys=y0 + wc * dx,
        xs=x0 + wc * dx,
    )
    z_shift = float(rng.uniform(-500, -150))  # body z (dome = 0) -> a typical table position
    body.scale_z = (
        1
        + rng.uniform(0.02, 0.05) * np.sin(grid.zs / rng.uniform(80, 200) + rng.uniform(0, 6))
        + rng.uniform(-0.1, 0.05) * np.clip(-grid.zs / 300.0, -0.2, 1.0)
    )

    # ---- anatomy and image
    anat = A.build_anatomy(rng, grid, body, plan, extras)
    anat.tissue = _warp_inplane(rng, anat.tissue, dx * factor, dz, rng.uniform(1.5, 6.0))
    lut, tex, facts = sample_lut(rng, phase, anat.tumors, extras)
    wdx = dx * factor
    img = render(
        rng,
        anat.tissue,
        lut,
        tex,
        texture_mm=rng.uniform(6, 14),
        voxel_mm=(dz, wdx, wdx),
        blur_mm=rng.uniform(0.4, 1.0) if factor == 1 else rng.uniform(0.8, 1.3),  # hide 2-px steps
        streaks=bool(ov.get("streaks", rng.random() < 0.25)),
    )
    labels = T.LABEL_OF_TISSUE[anat.tissue]
    lesions_drawn = _lesions_as_labelled(labels == 2, (dz, wdx, wdx))
    if factor == 2:
        img = upsample2(img)
        labels = np.repeat(np.repeat(labels, 2, axis=1), 2, axis=2)
    # larger patients are noisier at the same dose; sharp kernels give finer, stronger grain
    size_factor = float(np.clip((body.half_width / 160.0) ** 1.5, 0.7, 1.5))
    noise_sd = float(ov.get("noise_sd", np.clip(rng.uniform(7, 20) * size_factor, 6, 30)))
    grain = rng.uniform(0.6, 1.3) * (1.0 if factor == 2 else 0.5)
    add_noise(rng, img, noise_sd * (1 if dz >= 2 else 1.25), grain, seed=seed, phase=phase)
    if ov.get("fov_padding", rng.random() < 0.4):
        yy, xx = np.mgrid[0:n_xy, 0:n_xy]
        c = (n_xy - 1) / 2
        outside = (yy - c) ** 2 + (xx - c) ** 2 > (n_xy / 2) ** 2
        img[:, outside] = float(rng.choice([-1024, -2048, -3024]))
    np.rint(img, out=img)
    np.clip(img, -3024, 3071, out=img)
    ct = img.astype(np.int16)
    del img

    # ---- facts (counted on the working grid: each working voxel is factor² output voxels)
    counts = np.bincount(anat.tissue.ravel(), minlength=256) * factor**2
    vox_ml = dz * dx * dx / 1000.0
    per_class = np.bincount(T.LABEL_OF_TISSUE, weights=counts, minlength=5)
    n_liver, n_tumor, n_pv = (int(per_class[k]) for k in (1, 2, 3))
    tumors = []
    for t in anat.tumors:
        vol = (counts[t.code] + counts[t.code + 1]) * vox_ml
        tumors.append(
            {
                "center_mm": [t.center[2], t.center[1], t.center[0] + z_shift],  # LPS x, y, z
                "diameter_mm": t.diameter,
                "kind": t.kind,
                "necrotic_fraction": t.necrotic,
                "edge": t.edge,
                "enhancement": t.info.get("enhancement", 0.0),
                "volume_ml": float(vol),
            }
        )
    origin = (x0, y0, float(z0) + z_shift)
    info = {
        "seed": int(seed),
        "shape": shape,
        "phase": phase,
        "spacing": (float(dz), float(dx), float(dx)),
        "n_slices": nz,
        "noise_sd": noise_sd,
        "liver_hu": facts["liver_hu"],
        "tumors": tumors,
        "n_tumors": len([t for t in tumors if t["volume_ml"] > 0]),
        "liver_ml": n_liver * vox_ml,
        "portal_vein_ml": n_pv * vox_ml,
        "tumor_ml": n_tumor * vox_ml,
        "whole_liver_ml": (n_liver + n_tumor + n_pv) * vox_ml,
        "tlvr": n_tumor / max(1, n_liver + n_tumor + n_pv),
        "max_tumor_diameter_mm": max((t["diameter_mm"] for t in tumors), default=0.0),
        # the label map's own lesions (26-connected, 0.1 mL or more: as `segment` counts them;
        # satellites grown into their mass are one, specks of an irregular margin none) and
        # the largest axial diameter among them (what a reader measures; the drawn diameter
        # above is a volume-equivalent sphere's, before lobulation and margins)
        "lesions_labelled": lesions_drawn[0],
        "max_tumor_axial_mm": lesions_drawn[1],
        **{k: float(v) for k, v in anat.info.items()},
        **{k: v for k, v in extras.items() if isinstance(v, bool | int | float)},
    }
    volume = CTVolume(
        ct,
        spacing=(dz, dx, dx),
        origin=origin,
        meta={
            "patient_id": f"SYNTH_{seed}",
            "phase": phase,
            "description": f"synthetic CT ({phase}), seed {seed}",
            "modality": "CT",
            "source": "napari_livertumor.synth",
        },
    )
    return Phantom(ct=volume, labels=labels, info=info)


def _lesions_as_labelled(tumor: np.ndarray, spacing) -> tuple[int, float]:
    """``(lesions of 0.1 mL or more, their largest axial diameter in mm)`` of a tumor mask."""
    from scipy import ndimage as ndi

    from ..stats import axial_diameter_mm

    if not tumor.any():
        return 0, 0.0
    comps, _ = ndi.label(tumor, structure=np.ones((3, 3, 3), bool))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(comps.ravel())
    n, widest = 0, 0.0
    for k, box in enumerate(ndi.find_objects(comps), start=1):
        if box is None or sizes[k] * voxel_ml < 0.1:
            continue
        n += 1
        widest = max(widest, axial_diameter_mm(comps[box] == k, spacing))
    return n, float(widest)


def _warp_inplane(rng, tissue: np.ndarray, px_mm: float, dz: float, amp_mm: float) -> np.ndarray:
    """Bend every outline a little: a smooth random in-plane displacement (≈7 cm wavelength,
    varying along z), applied slice by slice with a nearest-neighbour gather."""
    nz, ny, nx = tissue.shape
    cells = max(3, int(round(ny * px_mm / 70.0)) + 1)
    nzc = max(2, int(round(nz * dz / 100.0)) + 2)
    coarse = rng.standard_normal((nzc, 2, cells, cells)).astype(np.float32) * (amp_mm / px_mm)
    fine = np.stack([resize_linear(coarse[k], (2, ny, nx)) for k in range(nzc)])
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    out = np.empty_like(tissue)
    pos = np.linspace(0, nzc - 1, nz)
    for k in range(nz):
        i0 = min(int(pos[k]), nzc - 2)
        w = np.float32(pos[k] - i0)
        d = fine[i0] * (1 - w) + fine[i0 + 1] * w
        iy = np.clip(np.rint(yy + d[0]), 0, ny - 1).astype(np.intp)
        ix = np.clip(np.rint(xx + d[1]), 0, nx - 1).astype(np.intp)
        warped = tissue[k][iy, ix]
        rigid = tissue[k] == T.TABLE  # the couch does not bend
        warped[warped == T.TABLE] = T.AIR
        warped[rigid] = T.TABLE
        out[k] = warped
    return out


def _sample_extras(rng, ov) -> dict:
    fatty = bool(ov.get("fatty_liver", rng.random() < 0.15))
    cirr = bool(ov.get("cirrhotic", rng.random() < 0.5))
    return {
        "fatty_liver": fatty,
        "liver_fat_drop": float(rng.uniform(15, 45)) if fatty else float(rng.uniform(-3, 5)),
        "cirrhotic": cirr,
        "ascites": bool(rng.random() < (0.3 if cirr else 0.08)),
        "splenomegaly": bool(rng.random() < (0.4 if cirr else 0.1)),
        "gallbladder": bool(rng.random() < 0.85),
        "oral_contrast": bool(ov.get("oral_contrast", rng.random() < 0.2)),
        "calcified_aorta": bool(rng.random() < 0.4),
        "n_cysts": int(rng.choice([0, 0, 0, 1, 2, 3])),
        "n_regional": int(rng.choice([0, 0, 0, 1, 2])),
        "liver_scale": float(rng.uniform(0.9, 1.1)),
        "liver_target_ml": float(np.clip(np.exp(rng.normal(np.log(1550), 0.18)), 1100, 2300)),
        "left_lobe_scale": float(
            rng.uniform(0.1, 0.25)  # resected or atrophic left lobe
            if rng.random() < 0.05
            else (rng.uniform(0.9, 1.2) if cirr else 1.0)
        ),
        "riedel": bool(rng.random() < 0.1),
    }


def _sample_tumor_plan(rng, ov) -> list[dict]:
    """Tumor diameters and kinds: HCC-TACE-Seg-like burden, uni- or multinodular."""
    if "tumor_diameters_mm" in ov:
        diam = [float(d) for d in ov["tumor_diameters_mm"]]
    else:
        n = ov.get("n_tumors")
        if n is None:
            n = (
                0
                if rng.random() < 0.04
                else (1 if rng.random() < 0.55 else int(rng.integers(2, 7)))
            )
        n = int(n)
        if n == 0:
            return []
        main = float(np.clip(np.exp(rng.normal(np.log(50), 0.6)), 8, 120))
        diam = [main] + [
            float(np.clip(np.exp(rng.normal(np.log(18), 0.5)), 5, 45)) for _ in range(n - 1)
        ]
    kinds = list(ov.get("tumor_kinds", []))
    bad = set(kinds) - set(TUMOR_KINDS)
    if bad:
        raise ValueError(f"unknown tumor kinds {sorted(bad)}; known: {TUMOR_KINDS}")
    plan = []
    for i, d in enumerate(diam):
        kind = (
            kinds[i % len(kinds)]
            if kinds
            else str(rng.choice(TUMOR_KINDS, p=[0.55, 0.18, 0.05, 0.12, 0.10]))
        )
        plan.append(
            {
                "diameter": d,
                "kind": kind,
                "rim": kind in ("rim", "infiltrative")
                or (kind == "typical" and rng.random() < 0.3),
                "necrotic": float(rng.uniform(0.3, 0.7)) if d > 40 and rng.random() < 0.5 else 0.0,
                "edge": bool(rng.random() < 0.2),
                "satellite": i > 0 and rng.random() < 0.5,
            }
        )
    return plan
