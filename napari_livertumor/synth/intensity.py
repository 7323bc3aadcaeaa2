"""Hounsfield units per tissue and contrast phase, and the image-formation steps.

Values are drawn per case around textbook ranges (``REFERENCE.md`` §5), so no two phantoms share
a look: liver HU (incl. fatty liver), tumor-to-liver contrast (incl. near-iso lesions), texture,
blur, noise level and grain, streaks and a scanner offset all vary.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import _tissue as A
from ._fields import smooth_noise

PHASES = ("non-contrast", "arterial", "portal venous")

#: tissue -> ((lo, hi) non-contrast, arterial, portal venous), texture amplitude (HU)
_HU = {
    A.AIR: ((-1010, -990),) * 3 + (3,),
    A.TABLE: ((-150, 250),) * 3 + (30,),
    A.SKIN: ((20, 50),) * 3 + (5,),
    A.FAT: ((-120, -85),) * 3 + (6,),
    A.VFAT: ((-115, -80),) * 3 + (8,),
    A.MUSCLE: ((35, 55), (50, 65), (55, 70), 4),
    A.CORTICAL: ((600, 1100),) * 3 + (60,),
    A.CANCELLOUS: ((150, 320),) * 3 + (40,),
    A.DISC: ((70, 100),) * 3 + (8,),
    A.CANAL: ((10, 35),) * 3 + (4,),
    A.LUNG: ((-900, -760),) * 3 + (40,),
    A.HEART_BLOOD: ((35, 50), (220, 360), (140, 190), 6),
    A.MYOCARDIUM: ((40, 55), (90, 130), (90, 120), 5),
    A.PORTAL_VEIN: ((35, 50), (100, 150), (150, 200), 5),
    A.PORTAL_SMALL: ((35, 50), (90, 140), (140, 190), 5),
    A.MESENTERIC_VEIN: ((35, 50), (100, 150), (150, 200), 5),
    A.HEPATIC_VEIN: ((35, 50), (40, 80), (130, 190), 5),
    A.IVC: ((35, 50), (70, 120), (120, 170), 10),
    A.AORTA: ((35, 50), (250, 400), (150, 200), 6),
    A.HEPATIC_ARTERY: ((35, 50), (180, 320), (120, 170), 8),
    A.ARTERY: ((35, 50), (200, 350), (130, 180), 8),
    A.ADRENAL: ((25, 40), (50, 80), (60, 90), 5),
    A.SPLEEN: ((45, 55), (100, 150), (110, 130), 6),
    A.KIDNEY_CORTEX: ((30, 40), (150, 200), (150, 180), 6),
    A.KIDNEY_MEDULLA: ((30, 40), (60, 100), (140, 170), 6),
    A.KIDNEY_PELVIS: ((0, 20), (0, 20), (5, 25), 3),
    A.GI_WALL: ((30, 45), (60, 90), (70, 110), 6),
    A.GAS: ((-1000, -950),) * 3 + (8,),
    A.GI_FLUID: ((0, 25),) * 3 + (4,),
    A.ORAL_CONTRAST: ((150, 350),) * 3 + (25,),
    A.FECES: ((-80, 40),) * 3 + (60,),
    A.GALLBLADDER: ((0, 20),) * 3 + (3,),
    A.PANCREAS: ((35, 50), (100, 140), (80, 110), 10),
    A.CYST: ((0, 15),) * 3 + (2,),
    A.ASCITES: ((5, 20),) * 3 + (3,),
    A.CARTILAGE: ((80, 200),) * 3 + (20,),
    A.NECROSIS: ((0, 25),) * 3 + (6,),
    A.CALCIFICATION: ((500, 1000),) * 3 + (50,),
}
_LIVER = ((55, 65), (70, 85), (100, 130))
#: tumor kind -> HU change vs (non-fatty) liver per phase (REFERENCE.md §5: HCC is iso/hypo by
#: 5-20 HU unenhanced, +20..+60 arterial, -10..-40 portal venous). Only the "iso" kind straddles
#: zero: a mass whose whole body matches the liver is one a reader finds on another phase, so it
#: is kept as the rare hard case, not the body of most other kinds.
_TUMOR_DELTA = {
    "typical": ((-20, -6), (20, 60), (-40, -12)),
    "hypovascular": ((-25, -8), (-35, -10), (-45, -15)),
    "iso": ((-8, 2), (-8, 10), (-10, 3)),
    "rim": ((-25, -8), (-30, -10), (-40, -15)),  # rim APHE: a hypo-enhancing body
    "infiltrative": ((-18, -6), (12, 30), (-30, -10)),  # mild, heterogeneous, ill-defined
}


def sample_lut(rng: np.random.Generator, phase: str, tumors, extras: dict):
    """Per-case HU lookup and texture amplitude per tissue code.

    Returns ``(lut, texture, facts)``: float32 arrays of 256 entries and a dict of the drawn
    liver/tumor values kept in the phantom's info.
    """
    k = PHASES.index(phase)
    lut = np.zeros(256, np.float32)
    tex = np.zeros(256, np.float32)
    for code, spec in _HU.items():
        lo, hi = spec[k]
        lut[code] = rng.uniform(lo, hi)
        tex[code] = spec[3] * rng.uniform(0.6, 1.4)
    # drawn in every phase (a draw made in some phases only shifted every later one: another
    # phase of a seed had another noise level, texture and field of view)
    zebra, zebra_tex = rng.random() < 0.7, rng.uniform(15, 30)
    if phase == "arterial" and zebra:
        tex[A.SPLEEN] = zebra_tex  # arciform (zebra) spleen
    liver_normal = rng.uniform(*_LIVER[k])
    fat_drop = extras.get("liver_fat_drop", 0.0)
    lut[A.LIVER] = liver_normal - fat_drop
    tex[A.LIVER] = rng.uniform(2, 8) if not extras.get("cirrhotic") else rng.uniform(5, 12)
    # focal fat is darker in every phase; an arterial perfusion anomaly is brighter
    anomaly, bright, dark = rng.random() < 0.5, rng.uniform(10, 25), rng.uniform(10, 35)
    if phase == "arterial" and anomaly:
        lut[A.LIVER_REGIONAL] = lut[A.LIVER] + bright
    else:
        lut[A.LIVER_REGIONAL] = lut[A.LIVER] - dark
    tex[A.LIVER_REGIONAL] = tex[A.LIVER]
    facts = {"liver_hu": float(lut[A.LIVER]), "tumor_hu": []}
    for t in tumors:
        lo, hi = _TUMOR_DELTA[t.kind][k]
        delta = rng.uniform(lo, hi)
        lut[t.code] = liver_normal + delta
        tex[t.code] = rng.uniform(4, 18)
        enhancing = rng.uniform(15, 45)  # drawn in every phase, as above
        rim = delta + enhancing if phase != "non-contrast" else delta + 5
        if t.kind == "infiltrative":
            rim = delta * rng.uniform(0.3, 0.6)  # ill-defined margin
        lut[t.code + 1] = liver_normal + rim
        tex[t.code + 1] = 5
        t.info["enhancement"] = float(lut[t.code] - lut[A.LIVER])
        facts["tumor_hu"].append(float(lut[t.code]))
    gain = rng.uniform(0.97, 1.03)
    offset = rng.normal(0, 4)
    lut = lut * gain + offset
    # the facts as the image has them (after the scanner's gain and offset)
    facts["liver_hu"] = float(lut[A.LIVER])
    facts["tumor_hu"] = [float(lut[t.code]) for t in tumors]
    for t in tumors:
        t.info["enhancement"] = float(lut[t.code] - lut[A.LIVER])
    return lut, tex, facts


def render(
    rng: np.random.Generator,
    tissue: np.ndarray,
    lut: np.ndarray,
    tex: np.ndarray,
    *,
    texture_mm: float,
    voxel_mm: tuple[float, float, float],
    blur_mm: float,
    streaks: bool,
) -> np.ndarray:
    """HU image (float32) on the working grid: tissue values, texture, streaks, blur."""
    img = lut[tissue]
    nz, ny, nx = tissue.shape
    cells = (
        nz * voxel_mm[0] / texture_mm,
        ny * voxel_mm[1] / texture_mm,
        nx * voxel_mm[2] / texture_mm,
    )
    field = smooth_noise(rng, tissue.shape, cells)
    img += tex[tissue] * field
    if streaks:
        img += _streaks(rng, tissue.shape)
    # thick slices average a slab: let neighbouring planes bleed in (partial volume along z)
    sigma_z = 0.45 if voxel_mm[0] >= 3 else 0.3
    sigma = (sigma_z, blur_mm / voxel_mm[1], blur_mm / voxel_mm[2])
    return ndimage.gaussian_filter(img, sigma, truncate=2.5, mode="nearest")


def _streaks(rng, shape) -> np.ndarray:
    nz, ny, nx = shape
    Y, X = np.mgrid[0:ny, 0:nx].astype(np.float32)
    pat = np.zeros((ny, nx), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        cy, cx = rng.uniform(0.4, 0.7) * ny, rng.uniform(0.35, 0.65) * nx
        ang = rng.uniform(0, np.pi)
        d = (X - cx) * np.sin(ang) - (Y - cy) * np.cos(ang)
        pat += rng.choice([-1, 1]) * rng.uniform(15, 45) * np.exp(-(d**2) / 1.5)
    amp = rng.uniform(0.2, 1.0, nz).astype(np.float32)[:, None, None]
    return amp * pat[None]


def upsample2(img: np.ndarray, chunk: int = 8) -> np.ndarray:
    """Bilinear 2x in-plane upsampling with half-pixel centres (working -> output grid).

    Works through ``chunk`` slices at a time so the temporaries stay small.
    """
    nz, ny, nx = img.shape
    out = np.empty((nz, 2 * ny, 2 * nx), np.float32)
    for k in range(0, nz, chunk):
        out[k : k + chunk] = _upsample2_block(img[k : k + chunk])
    return out


def _upsample2_block(img: np.ndarray) -> np.ndarray:
    nz, ny, nx = img.shape
    out_y = np.empty((nz, 2 * ny, nx), np.float32)
    prev = np.concatenate([img[:, :1], img[:, :-1]], axis=1)
    nxt = np.concatenate([img[:, 1:], img[:, -1:]], axis=1)
    out_y[:, 0::2] = 0.75 * img + 0.25 * prev
    out_y[:, 1::2] = 0.75 * img + 0.25 * nxt
    del prev, nxt
    out = np.empty((nz, 2 * ny, 2 * nx), np.float32)
    prev = np.concatenate([out_y[:, :, :1], out_y[:, :, :-1]], axis=2)
    out[:, :, 0::2] = 0.75 * out_y + 0.25 * prev
    del prev
    nxt = np.concatenate([out_y[:, :, 1:], out_y[:, :, -1:]], axis=2)
    out[:, :, 1::2] = 0.75 * out_y + 0.25 * nxt
    return out


def add_noise(rng, img: np.ndarray, sd: float, grain_px: float, seed=None, phase=None) -> None:
    """Add spatially correlated noise (in-plane grain, independent slices) in place.

    For large volumes a bank of 24 noise slices is drawn and each slice takes one of them,
    turned, mirrored and shifted by a random amount of its own (the stream of ``seed`` and
    ``phase``: ``rng``'s draws are those of a plain bank): the noise texture is the same, the
    cost a fraction of drawing every voxel, and no two slices share their noise (a bank reused
    as drawn gave every slice of a 200-slice phantom the very noise of others, which no
    scanner does), nor two phases of a seed (a stacked second phase or a PRE LIVER series).
    """
    nz, ny, nx = img.shape
    n_bank = min(nz, 24)
    bank = rng.standard_normal((n_bank, ny, nx), dtype=np.float32)
    # periodic in-plane: a shifted slice shows no seam where it wraps
    bank = ndimage.gaussian_filter(bank, (0, grain_px, grain_px), truncate=2.5, mode="wrap")
    bank *= sd / max(float(bank.std()), 1e-6)
    order = np.arange(nz) if n_bank == nz else rng.integers(0, n_bank, nz)
    which = PHASES.index(phase) if phase in PHASES else 3
    own = np.random.default_rng(np.random.SeedSequence([0x501CE, abs(int(seed or 0)), which]))
    turns = own.integers(0, 2 if ny != nx else 4, nz) * (2 if ny != nx else 1)
    flips = own.random(nz) < 0.5
    shifts = own.integers(0, [ny, nx], (nz, 2))
    for k in range(nz):
        noise = np.rot90(bank[order[k]], int(turns[k]))
        if flips[k]:
            noise = noise[:, ::-1]
        img[k] += np.roll(noise, tuple(int(v) for v in shifts[k]), axis=(0, 1))
