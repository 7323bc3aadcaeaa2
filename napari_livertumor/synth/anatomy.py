"""Procedural abdominal anatomy: a tissue map on the working grid, painted organ by organ.

The body frame is in mm: ``x`` toward the patient's left, ``y`` toward the back, ``z`` toward the
head (the LPS axes), with the top of the right hemidiaphragm at ``z = 0`` and the body's centre
at ``x = y = 0``. Organs are placed relative to the body's inner (cavity) size, so the anatomy
scales with the patient, and every size and position is drawn around a textbook value.

Each organ is painted in its own bounding box (later organs win), so the cost is a few passes
over the full grid (body layers, lungs) plus small boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._abdomen import (
    paint_bowel,
    paint_duodenum,
    paint_kidneys,
    paint_pancreas_and_veins,
    paint_spleen,
    paint_stomach,
)
from ._fields import Grid, ellipsoid
from ._liver import TumorSpec, paint_ascites, paint_gallbladder, paint_liver, paint_tumors
from ._painter import Body, Painter
from ._tissue import (
    AIR,
    AORTA,
    ARTERY,
    CALCIFICATION,
    CANAL,
    CANCELLOUS,
    CARTILAGE,
    CORTICAL,
    DISC,
    FAT,
    GI_FLUID,
    GI_WALL,
    HEART_BLOOD,
    IVC,
    LIVER,
    LUNG,
    MUSCLE,
    MYOCARDIUM,
    PANCREAS,
    PORTAL_VEIN,
    SKIN,
    TABLE,
    VFAT,
)


def sample_body(rng: np.random.Generator, size: float | None = None) -> Body:
    """Body habitus: the inner (cavity) size first, then fat and muscle around it.

    Organs need a roughly constant room, so the cavity varies less than the skin outline;
    obesity adds fat outside (and inside) the muscle wall.
    """
    s = rng.normal(0.0, 1.0) if size is None else size  # habitus z-score
    cav_a = float(np.clip(128 + 8 * s + rng.normal(0, 6), 105, 155))
    cav_ant = float(np.clip(88 + 6 * s + rng.normal(0, 5), 70, 110))
    fat = float(np.clip(np.exp(rng.normal(np.log(15), 0.5)) * (1 + 0.3 * s), 4, 55))
    muscle = float(rng.uniform(7, 13))
    skin = 2.0
    fat_ant = fat * rng.uniform(0.9, 1.4)
    fat_lat = fat * rng.uniform(0.6, 1.0)
    fat_post = fat * rng.uniform(0.7, 1.1)
    spine_y = float(rng.uniform(20, 40))
    back = rng.uniform(48, 62)  # vertebral centre to the back muscles' surface
    return Body(
        half_width=cav_a + skin + fat_lat + muscle,
        ant=cav_ant + skin + fat_ant + muscle,
        post=spine_y + back + fat_post + skin,
        skin=skin,
        fat_ant=fat_ant,
        fat_lat=fat_lat,
        fat_post=fat_post,
        muscle=muscle,
        spine_y=spine_y,
        liver_height=float(np.clip(rng.normal(168, 16), 135, 215)),
        dome_drop=float(rng.uniform(55, 85)),
    )


@dataclass
class Anatomy:
    tissue: np.ndarray  # uint8 (z, y, x) on the working grid
    tumors: list[TumorSpec]
    info: dict


def build_anatomy(
    rng: np.random.Generator, grid: Grid, body: Body, tumor_plan: list[dict], extras: dict
) -> Anatomy:
    """Paint every organ on ``grid`` and return the tissue map, tumors and geometry facts."""
    p = Painter(rng, grid, body)
    H = body.liver_height
    _paint_body_and_table(p)
    dome = _dome(p, rng)
    vessels = _vessel_positions(p, rng)
    _paint_thorax(p, rng, dome, vessels)
    _paint_ribs(p, rng)
    paint_stomach(p, rng, dome, extras)
    paint_spleen(p, rng, dome, extras)
    paint_pancreas_and_veins(p, rng, vessels)
    liver_sl, liver_f = paint_liver(p, rng, dome, vessels, extras)
    paint_gallbladder(p, rng, vessels, extras)
    paint_kidneys(p, rng)
    paint_duodenum(p, rng, vessels)
    _paint_great_vessels(p, rng, vessels, extras)
    _paint_spine(p, rng)
    _paint_pelvis(p, rng)
    # tumors last among the solid organs: they grow in liver (or bulge into fat), never
    # under a kidney or vessel painted afterwards
    tumors = paint_tumors(p, rng, liver_sl, liver_f, tumor_plan)
    if extras.get("ascites", False):
        paint_ascites(p, liver_sl, liver_f)
    paint_bowel(p, rng, dome, extras)
    info = {"liver_height_mm": H}
    return Anatomy(tissue=p.tissue, tumors=tumors, info=info)


# ============================================================================ body and chest
def _paint_body_and_table(p: Painter) -> None:
    b = p.b
    t = p.tissue
    layers = np.array([AIR, SKIN, FAT, MUSCLE, VFAT], np.uint8)
    for k, s in enumerate(p.scale_z):  # slice by slice: 2D work, no 3D temporaries
        d = s * p.ray2d - p.dist2d
        idx = (d >= 0).view(np.uint8) + (d >= b.skin) + (d >= p.fat2d) + (d >= p.wall2d)
        t[k] = layers[idx]
    # the couch: a curved band under the back
    Y = p.g.ys[:, None]
    X = p.g.xs[None, :]
    y0 = b.post * float(p.scale_z.min()) + p.rng.uniform(0, 4)
    yt = y0 - 4e-4 * X**2 * p.rng.uniform(0.5, 1.5)  # a cradle: edges rise around the body
    thick = p.rng.uniform(4, 8)
    wide = np.abs(X) < p.rng.uniform(180, 230)
    below = yt + thick + p.rng.uniform(15, 40)
    table = wide & (((Y >= yt) & (Y <= yt + thick)) | ((Y >= below) & (Y <= below + thick)))
    t[:, table & (t.min(axis=0) == AIR)] = TABLE


def _dome(p: Painter, rng) -> np.ndarray:
    """Height (mm) of the diaphragm over the axial plane: two domes, the right one higher."""
    b = p.b
    Y = p.g.ys[:, None].astype(np.float32)
    X = p.g.xs[None, :].astype(np.float32)
    ry = 0.5 * (b.cav_ant + b.spine_y) * 1.15
    yc = rng.uniform(-0.2, 0.1) * b.cav_ant
    post = np.where(Y > yc, rng.uniform(1.1, 1.5), rng.uniform(0.3, 0.5))  # deep at the back
    deepest = rng.uniform(0.85, 1.15)
    qy = (post * ((Y - yc) / ry) ** 2) ** 2  # flat in the middle, steep at the back
    lat = rng.uniform(1.0, 1.5)
    qr = lat * ((X + 0.45 * b.cav_a) / (0.8 * b.cav_a)) ** 2 + qy
    ql = lat * ((X - 0.45 * b.cav_a) / (0.8 * b.cav_a)) ** 2 + qy
    right = -b.dome_drop * np.minimum(qr, deepest)
    left = -rng.uniform(8, 25) - b.dome_drop * np.minimum(ql, deepest)
    return np.maximum(right, left).astype(np.float32)


def _paint_thorax(p: Painter, rng, dome, v) -> None:
    g = p.g
    bx = g.box((float(dome.min()), g.ys[0], g.xs[0]), (g.zs[-1], g.ys[-1], g.xs[-1]))
    if bx is None:
        return
    sl, Z, Y, X = bx
    cav = p.cavity_depth(sl) > 0
    above = Z - dome[None]
    p.paint(sl, cav & (above > 0) & (above <= 5), MUSCLE)  # diaphragm
    p.paint(sl, cav & (above > 5), LUNG)
    # posterior mediastinum (crura, oesophagus, azygos) between the lung bases
    b = p.b
    ao_x, ao_y = v["aorta"]
    med = ((X - ao_x + 12) / rng.uniform(38, 50)) ** 2 + ((Y - ao_y - 8) / rng.uniform(30, 40)) ** 2
    p.paint(sl, cav & (above > 0) & (med < 1), VFAT)
    ring = np.sqrt((X - ao_x) ** 2 + (Y - ao_y) ** 2) - v["r_aorta"]
    p.paint(
        sl, cav & (above > -30) & (ring > 0) & (ring < rng.uniform(4, 7)) & (Y > ao_y - 5), MUSCLE
    )
    # the heart sits on the central tendon, in front and to the left
    c = (rng.uniform(35, 55), -0.3 * b.cav_ant, rng.uniform(0.1, 0.25) * b.cav_a)
    r = (65.0, rng.uniform(0.45, 0.6) * b.cav_ant, rng.uniform(0.38, 0.48) * b.cav_a)
    f = ellipsoid(Z, Y, X, c, r)
    heart = cav & (above > 5)
    p.paint(sl, heart & (f < 8), VFAT)  # pericardial fat
    p.paint(sl, heart & (f < 0), MYOCARDIUM)
    p.paint(sl, heart & (f < -9), HEART_BLOOD)


def _paint_ribs(p: Painter, rng) -> None:
    """Ribs as oblique bands in the inner body wall, descending toward the front."""
    b = p.b
    H = b.liver_height
    band_in = p.wall2d - rng.uniform(1, 4)
    band_out = band_in - rng.uniform(8, 12)
    depth0 = p.ray2d - p.dist2d
    aphi = np.abs(p.phi2d)
    ring = (depth0 > band_out - 3) & (depth0 < band_in + 3) & (aphi > 0.45) & (aphi < 2.95)
    iy, ix = np.nonzero(ring)
    if iy.size == 0:
        return
    z = p.g.zs.astype(np.float32)[:, None]
    depth = p.scale_z[:, None] * p.ray2d[iy, ix][None] - p.dist2d[iy, ix][None]
    inb = (depth > band_out[iy, ix]) & (depth < band_in[iy, ix])
    phin = (aphi[iy, ix] - 0.45) / 2.5
    drop = rng.uniform(110, 170)
    period = rng.uniform(24, 32)
    width = rng.uniform(7, 10)
    zr = z + drop * phin[None]  # the rib's height at its back end
    ph = np.mod(zr - rng.uniform(0, period), period)
    # the costal margin: the lowest ribs end low at the back, the cartilages high in front
    margin = -H * (rng.uniform(0.85, 1.05) - rng.uniform(0.35, 0.5) * phin[None])
    rib = inb & (ph < width) & (z > margin)
    # a thin cortical shell around marrow, on all four sides of the cross-section
    shell = (depth - band_out[iy, ix] < 1.8) | (band_in[iy, ix] - depth < 1.8)
    edge = (ph < 1.6) | (ph > width - 1.6) | shell
    cart = (aphi[iy, ix] > 2.3)[None]
    sub = p.tissue[:, iy, ix]
    sub[rib & cart] = CARTILAGE
    sub[rib & ~cart] = CANCELLOUS
    sub[rib & ~cart & edge] = CORTICAL
    p.tissue[:, iy, ix] = sub


def _vessel_positions(p: Painter, rng) -> dict:
    b = p.b
    H = b.liver_height
    vb_ry = rng.uniform(15, 19)
    vb_rx = vb_ry * rng.uniform(1.2, 1.4)
    r_ao = rng.uniform(9, 13.5)
    ao = (rng.uniform(8, 24), b.spine_y - vb_ry - r_ao - rng.uniform(1, 8))  # (x, y)
    ivc = (-rng.uniform(22, 38), ao[1] - rng.uniform(0, 12))
    conf = np.array([-0.7 * H, ivc[1] - rng.uniform(22, 34), ivc[0] + rng.uniform(20, 32)])
    hilum = np.array(
        [-0.5 * H + rng.uniform(-10, 10), conf[1] - rng.uniform(5, 20), ivc[0] - rng.uniform(8, 22)]
    )
    return {
        "vb": (vb_ry, vb_rx),
        "aorta": ao,
        "r_aorta": r_ao,
        "ivc": ivc,
        "r_ivc": (rng.uniform(10, 15), rng.uniform(7, 11)),
        "confluence": conf,
        "hilum": hilum,
    }


def _paint_great_vessels(p: Painter, rng, v, extras) -> None:
    g = p.g
    ztop, zbot = float(g.zs[-1]) + 5, float(g.zs[0]) - 5
    ax_, ay_ = v["aorta"]
    ra = v["r_aorta"]
    p.paint_tube((zbot, ay_, ax_), (ztop, ay_ + 5, ax_ - 3), ra, ra * 1.05, AORTA)
    if extras.get("calcified_aorta", False):
        for _ in range(int(rng.integers(2, 8))):
            zc = rng.uniform(zbot, ztop)
            ang = rng.uniform(0, 2 * np.pi)
            c = (zc, ay_ + ra * np.sin(ang), ax_ + ra * np.cos(ang))
            p.paint_tube(c, np.add(c, (rng.uniform(2, 8), 0, 0)), 1.5, 1.5, CALCIFICATION)
    ix, iy = v["ivc"]
    rx, ry = v["r_ivc"]
    # an elliptical IVC: a stack of short tubes would be costly; use one flattened box
    bx = g.box((zbot, iy - ry - 2, ix - rx - 2), (ztop, iy + ry + 2, ix + rx + 2))
    if bx is not None:
        sl, Z, Y, X = bx
        p.paint(sl, ((X - ix) / rx) ** 2 + ((Y - iy) / ry) ** 2 < 1, IVC)
    # celiac trunk -> common hepatic artery to the hilum and splenic artery; SMA downward
    conf = v["confluence"]
    celiac = np.array([conf[0] + 30, ay_ - ra, ax_])
    celiac_end = celiac + np.array([0, -15, 0])

    def fat(sl):
        return np.isin(p.tissue[sl], (VFAT, PANCREAS))

    p.paint_tube(celiac, celiac_end, 3.5, 3.0, ARTERY, within=fat)
    p.paint_tube(celiac_end, v["hilum"] + (5, -6, 6), 3.0, 2.2, ARTERY, within=fat)
    spleen_hilum = np.array([conf[0] + 35, ay_ + 10, 0.6 * p.b.cav_a])
    p.paint_tube(celiac_end, spleen_hilum, 3.0, 2.5, ARTERY, within=fat)
    sma = np.array([conf[0] + 10, ay_ - ra, ax_])
    p.paint_tube(sma, sma + (-110, -25, -8), 3.5, 2.5, ARTERY, within=fat)
    # oesophagus: down beside the aorta, through the hiatus, to the cardia
    H = p.b.liver_height
    a, ca = p.b.cav_a, p.b.cav_ant
    eso = [
        np.array([ztop, ay_ - 18, ax_ - 12]),
        np.array([-0.08 * H, ay_ - 28, ax_ + 2]),
        np.array([-0.22 * H, -0.15 * ca, 0.25 * a]),
    ]

    def free(sl):
        return np.isin(p.tissue[sl], (VFAT, LUNG, MUSCLE))

    for e0, e1 in zip(eso[:-1], eso[1:], strict=True):
        p.paint_tube(e0, e1, 7.0, 7.0, GI_WALL, within=free)
    # main portal vein: confluence -> hilum
    r = rng.uniform(6, 8)
    # the porta hepatis: fat of the hepatoduodenal ligament around the trunk where it enters
    p.paint_tube(
        v["confluence"], v["hilum"], r + 5, r + 4, VFAT, within=lambda sl: p.tissue[sl] == LIVER
    )
    p.paint_tube(v["confluence"], v["hilum"], r, r * 0.9, PORTAL_VEIN)


def _paint_pelvis(p: Painter, rng) -> None:
    """Iliac wings (curved bone plates) and, lowest, the bladder, for scans that reach them."""
    b = p.b
    g = p.g
    crest = -b.liver_height - rng.uniform(110, 160)
    if g.zs[0] > crest:
        return
    lo_z = float(g.zs[0]) - 5
    yc = b.spine_y + rng.uniform(15, 30)
    for side in (-1, 1):
        xc = side * rng.uniform(35, 50)
        bottom = max(lo_z, crest - rng.uniform(100, 130))  # the wings end at the acetabula
        xs = sorted((side * 25, side * 170))
        bx = g.box((bottom, -b.cav_ant, xs[0]), (crest, b.post, xs[1]))
        if bx is None:
            continue
        sl, Z, Y, X = bx
        grow = np.clip((crest - Z) / 80.0, 0, 1)
        radius = 55 + 45 * grow
        rho = np.sqrt((X - xc) ** 2 + ((Y - yc) * 1.25) ** 2)
        ang = np.arctan2(-(Y - yc), side * (X - xc))  # 0 lateral, +pi/2 toward the front
        plate = (np.abs(rho - radius) < 4.5) & (ang > -0.4) & (ang < 0.6 + 0.6 * grow)
        inside = p.cavity_depth(sl) > -25
        p.paint(sl, plate & inside, CANCELLOUS)
        p.paint(sl, plate & inside & (np.abs(rho - radius) > 2.5), CORTICAL)
        # iliacus: muscle lining the wing on its inner side
        p.paint(
            sl,
            (rho < radius - 4.5) & (rho > radius - 18) & (ang > -0.3) & (ang < 0.5 + 0.6 * grow),
            MUSCLE,
        )
    bladder_z = crest - rng.uniform(140, 190)
    c = np.array([bladder_z, -0.35 * b.cav_ant, rng.uniform(-10, 10)])
    r = np.array([rng.uniform(30, 50), rng.uniform(30, 45), rng.uniform(35, 60)])
    bx = g.box(c - r - 4, c + r + 4)
    if bx is not None:
        sl, Z, Y, X = bx
        f = ellipsoid(Z, Y, X, c, r)
        keep = p.cavity_depth(sl) > 2
        p.paint(sl, keep & (f < 0), GI_WALL)
        p.paint(sl, keep & (f < -3), GI_FLUID)


def _paint_spine(p: Painter, rng) -> None:
    b = p.b
    g = p.g
    ry = 17.0
    rx = ry * 1.3
    cy = b.spine_y
    period = rng.uniform(30, 36)
    disc = rng.uniform(6, 9)
    phase = rng.uniform(0, period)
    bx = g.box((g.zs[0], cy - ry - 3, -rx - 40), (g.zs[-1], cy + ry + 70, rx + 40))
    if bx is None:
        return
    sl, Z, Y, X = bx
    zz = np.mod(Z - phase, period)
    q = ((X / rx) ** 2 + ((Y - cy) / ry) ** 2).astype(np.float32)
    body = q < 1
    p.paint(sl, body, CANCELLOUS)
    p.paint(
        sl, body & ((q > (1 - 2.2 / ry) ** 2) | (zz < disc + 1.5) | (zz > period - 1.5)), CORTICAL
    )
    p.paint(sl, body & (zz < disc), DISC)
    canal_y = cy + ry + 10
    rc = np.sqrt(X**2 + (Y - canal_y) ** 2)
    arch = (zz > disc) & (zz < disc + 0.6 * period)
    p.paint(sl, (rc < 15) & (rc >= 9) & arch & (Y > cy + ry - 2), CORTICAL)
    spin = arch & (np.abs(X) < 3.5 + 0.08 * (Y - canal_y)) & (Y > canal_y + 8) & (Y < canal_y + 35)
    short = (zz > disc + 0.15 * period) & (zz < disc + 0.4 * period)
    trans = short & (np.abs(Y - canal_y + 3) < 3.5) & (np.abs(X) > 12) & (np.abs(X) < rx + 12)
    p.paint(sl, spin | trans, CANCELLOUS)
    p.paint(sl, rc < 9, CANAL)
    # psoas muscles grow below the kidneys' top
    H = b.liver_height
    grow = np.clip((-Z - 0.75 * H) / 110, 0, 1) * rng.uniform(18, 26)
    for side in (-1, 1):
        xc = side * (rx + 8 + grow)
        ps = ((X - xc) / (grow + 1e-3)) ** 2 + ((Y - cy + 4) / (0.9 * grow + 1e-3)) ** 2 < 1
        p.paint(sl, ps & (grow > 3), MUSCLE)
