"""The liver: lobes moulded by the diaphragm and body wall, its vessels, cysts and tumors."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._fields import Grid, box_noise, ellipsoid, smin
from ._painter import Painter, sub_box
from ._tissue import (
    ASCITES,
    CYST,
    GALLBLADDER,
    HEPATIC_ARTERY,
    HEPATIC_VEIN,
    LIVER,
    LIVER_REGIONAL,
    MAX_TUMORS,
    NECROSIS,
    PORTAL_SMALL,
    PORTAL_VEIN,
    TUMOR0,
    VFAT,
)

#: what a tumor may replace: liver and its contents, or fat/fluid next to it (edge lesions)
_TUMOR_HOSTS = (LIVER, LIVER_REGIONAL, HEPATIC_VEIN, PORTAL_SMALL, PORTAL_VEIN, CYST, VFAT, ASCITES)


@dataclass
class TumorSpec:
    center: tuple[float, float, float]  # (z, y, x) mm
    diameter: float
    kind: str  # "typical", "hypovascular", "iso", "rim", "infiltrative"
    necrotic: float  # fraction of radius that is necrotic core (0: none)
    edge: bool
    code: int
    info: dict = field(default_factory=dict)


def paint_liver(p: Painter, rng, dome, v, extras):
    """Liver: smooth union of right lobe, medial bridge, left lobe and caudate, moulded by the
    diaphragm and the body wall, with portal and hepatic veins inside."""
    b = p.b
    g = p.g
    H = b.liver_height
    a, ca = b.cav_a, b.cav_ant
    size = extras.get("liver_scale", 1.0) * rng.uniform(0.92, 1.08)
    left_size = rng.uniform(0.65, 1.3) * extras.get("left_lobe_scale", 1.0)
    lo = (-1.3 * H - 30, -ca - 5, -a - 5)
    hi = (5.0, b.post, 0.95 * a)
    bx = g.box(lo, hi)
    if bx is None:
        return None, None
    sl, Z, Y, X = bx
    t = np.clip((Z + H) / H, 0, 1.2)

    def smooth(t0, t1, tt):
        s = np.clip((tt - t0) / (t1 - t0), 0, 1)
        return s * s * (3 - 2 * s)

    post_cav = b.post - b.skin - b.fat_post - b.muscle
    pr = (0.3 + 0.7 * smooth(0.0, 0.45, t)) * size
    rx_r = 0.62 * a * pr
    ry_r = 0.55 * (ca + post_cav) * pr
    cx_r = -0.45 * a - 0.15 * a * (1 - t)
    cy_r = 0.5 * (post_cav - ca) - 0.2 * ca * (1 - t)
    f = (np.sqrt(((X - cx_r) / rx_r) ** 2 + ((Y - cy_r) / ry_r) ** 2) - 1) * 70
    # the inferior surface rises medially: the right lobe's tip hangs lowest, at the flank
    tip = rng.uniform(0.6, 0.8)
    bottom = -H * (tip + (1 - tip) * np.clip(-X / a, 0, 1) ** 0.7)
    if extras.get("riedel", False):  # a tongue of the right lobe hanging down the flank
        bottom = bottom - 0.3 * H * np.clip((-X / a - 0.55) / 0.45, 0, 1) ** 2
    # the visceral surface rises toward the back (kidney, Morison's pouch): a sharp front edge
    bottom = bottom + rng.uniform(15, 45) * np.clip((Y + ca) / (ca + post_cav), 0, 1) ** 1.5
    f = np.maximum(f, (bottom - Z) * 1.5)
    pl = np.maximum(np.sin(np.pi * np.clip((t - 0.38) / 0.66, 0, 1)), 1e-3) ** 0.6 * left_size
    cx_l = 0.08 * a + 0.05 * a * t
    rx_l = 0.5 * a * pl
    wedge = 1 - 0.55 * np.clip((X - cx_l) / np.maximum(rx_l, 1), 0, 1)
    ry_l = 0.28 * ca * pl * wedge + 1e-3
    f_l = (np.sqrt(((X - cx_l) / rx_l) ** 2 + ((Y + 0.55 * ca) / ry_l) ** 2) - 1) * 40
    pm = np.maximum(smooth(0.3, 0.55, t), 1e-3) * size
    f_m = (
        np.sqrt(((X + 0.18 * a) / (0.32 * a * pm)) ** 2 + ((Y + 0.4 * ca) / (0.42 * ca * pm)) ** 2)
        - 1
    ) * 50
    pc = np.maximum(np.sin(np.pi * np.clip((t - 0.42) / 0.45, 0, 1)), 1e-3)
    f_c = (
        np.sqrt(
            ((X - v["ivc"][0] - 18) / (22 * pc)) ** 2 + ((Y - v["ivc"][1] + 25) / (22 * pc)) ** 2
        )
        - 1
    ) * 22
    f = smin(f, f_l, 15.0)
    f = smin(f, f_m, 15.0)
    f = smin(f, f_c, 8.0)
    f = f + rng.uniform(6, 12) * box_noise(rng, Z, Y, X, 55.0)
    nodular = extras.get("cirrhotic", False)
    f = f + (rng.uniform(1.5, 3.0) if nodular else 0.6) * box_noise(rng, Z, Y, X, 10.0)
    clamp = np.maximum(2.0 - p.cavity_depth(sl), Z - (dome[None, sl[1], sl[2]] - 5))
    # however the volume fit grows it, the liver ends where the scan planner expects it
    lowest = -H * (1.3 if extras.get("riedel", False) else 1.0) - 10.0
    clamp = np.maximum(clamp, lowest - Z)
    # keep clear of the spine, the aorta and the crura in front of them
    vb_ry, vb_rx = v["vb"]
    keep_out = np.sqrt(
        (X / (vb_rx + 22)) ** 2 + ((Y - b.spine_y) / (vb_ry + 2 * v["r_aorta"] + 12)) ** 2
    )
    clamp = np.maximum(clamp, (1 - keep_out) * 30)
    f = _fit_volume(f.astype(np.float32), clamp, p.g, extras.get("liver_target_ml", 1600.0))
    inside = f < 0
    p.paint(sl, inside, LIVER)

    def in_liver(sub):
        return sub_box(f, sl, sub) < -1.0

    _paint_liver_vessels(p, rng, v, in_liver)
    if rng.random() < (0.9 if extras.get("cirrhotic") else 0.6):
        _paint_fissure(p, rng, sl, Z, Y, X, H, a, ca, width=2.0 + 4.0 * extras.get("cirrhotic", 0))
    for _ in range(extras.get("n_regional", 0)):
        _paint_regional(p, rng, sl, f, Z, Y, X)
    for _ in range(extras.get("n_cysts", 0)):
        idx = np.flatnonzero(f < -15)
        if idx.size == 0:
            break
        k = np.unravel_index(rng.choice(idx), f.shape)
        cz, cy, cx = float(Z[k[0], 0, 0]), float(Y[0, k[1], 0]), float(X[0, 0, k[2]])
        r = rng.uniform(3, 15)
        p.paint_tube((cz, cy, cx), (cz + 0.1, cy, cx), r, r, CYST, within=in_liver)
    return sl, f


def _fit_volume(f, clamp, g: Grid, target_ml: float) -> np.ndarray:
    """Shift the liver's level set so its volume is near ``target_ml`` (secant steps)."""
    vox_ml = float(np.diff(g.zs[:2])[0] * np.diff(g.ys[:2])[0] * np.diff(g.xs[:2])[0]) / 1000
    level = 0.0
    for _ in range(4):
        vol = float(np.count_nonzero(np.maximum(f - level, clamp) < 0)) * vox_ml
        area_ml_per_mm = 5.0 * max(vol, 200.0) ** (2 / 3) / 10.0  # ~ surface (cm2) / 10
        step = float(np.clip((target_ml - vol) / area_ml_per_mm, -10, 10))
        if abs(step) < 0.5:
            break
        level += step
    return np.maximum(f - level, clamp).astype(np.float32)


def _paint_regional(p: Painter, rng, sl, f, Z, Y, X) -> None:
    """A geographic patch of liver (focal fat / perfusion anomaly), often at the surface."""
    idx = np.flatnonzero((f < -3) & (f > -25))
    if idx.size == 0:
        return
    k = np.unravel_index(rng.choice(idx), f.shape)
    c = np.array([Z[k[0], 0, 0], Y[0, k[1], 0], X[0, 0, k[2]]], float)
    r = rng.uniform(10, 28)
    bx = p.g.box(c - r - 4, c + r + 4)
    if bx is None:
        return
    bsl, bz, by, bxx = bx
    fr = ellipsoid(bz, by, bxx, c, r * rng.uniform(0.5, 1.2, 3))
    fr = fr + 0.4 * r * box_noise(rng, bz, by, bxx, max(0.5 * r, 4.0))
    p.paint(bsl, (fr < 0) & (p.tissue[bsl] == LIVER), LIVER_REGIONAL)


def _paint_fissure(p: Painter, rng, sl, Z, Y, X, H, a, ca, width: float) -> None:
    """Fat in the umbilical fissure (falciform ligament) between the left lobe's segments: a
    wedge cut from the front surface, widest there, fading 3-5 cm deep."""
    x0 = rng.uniform(-0.05, 0.12) * a
    tilt = rng.uniform(-0.3, 0.3)
    depth = rng.uniform(30, 50)
    front = -ca
    d = np.clip((Y - front) / depth, 0, 1)  # 0 at the front wall, 1 at full depth
    half = width * rng.uniform(0.7, 1.3) * (1 - d)
    t = (Z + H) / H
    cut = (np.abs(X - x0 - tilt * (Y - front)) < half) & (t > 0.25) & (t < rng.uniform(0.7, 0.85))
    cur = p.tissue[sl]
    p.paint(sl, cut & (cur == LIVER), VFAT)


def _paint_liver_vessels(p: Painter, rng, v, in_liver) -> None:
    b = p.b
    a, ca, sy = b.cav_a, b.cav_ant, b.spine_y
    H = b.liver_height
    hil = v["hilum"]
    ivx, ivy = v["ivc"]

    def j(s):
        return rng.normal(0, s, 3)

    r1 = hil + np.array([8, 5, -0.25 * a]) + j(5)
    l1 = hil + np.array([12, -0.2 * ca, 0.2 * a]) + j(5)
    l2 = l1 + np.array([5, -0.25 * ca, 0.05 * a]) + j(4)
    segs = [
        (r1, r1 + np.array([25, -0.35 * ca, -0.15 * a]) + j(6), 4.5, 3.0),
        (r1, r1 + np.array([-20, 0.4 * sy, -0.22 * a]) + j(6), 4.5, 3.0),
        (l2, l2 + np.array([15, 0.05 * ca, 0.3 * a]) + j(6), 4.0, 2.5),
        (l2, l2 + np.array([-10, -0.1 * ca, 0.15 * a]) + j(6), 3.5, 2.5),
        (l1, l1 + np.array([-5, 0.1 * ca, -0.15 * a]) + j(6), 3.5, 2.5),
    ]
    main_r = rng.uniform(4.5, 6.5)
    p.paint_tube(hil, r1, main_r, main_r * 0.85, PORTAL_VEIN, within=in_liver)
    p.paint_tube(hil, l1, main_r * 0.8, main_r * 0.7, PORTAL_VEIN, within=in_liver)
    p.paint_tube(l1, l2, main_r * 0.7, main_r * 0.6, PORTAL_VEIN, within=in_liver)
    small = []
    for a0, a1, r0, r1_ in segs:
        p.paint_tube(a0, a1, r0, r1_, PORTAL_VEIN, within=in_liver)
        small.append(a1)

    # hepatic artery branches run beside the portal ones (bright dots in the arterial phase)
    def beside(sub):
        return in_liver(sub) & (p.tissue[sub] == LIVER)

    side = rng.normal(0, 1, 3)
    side *= rng.uniform(5, 8) / (np.linalg.norm(side) + 1e-6)
    arteries = [(hil, r1), (hil, l1), (l1, l2)] + [(a0, a1) for a0, a1, _, _ in segs]
    for a0, a1 in arteries:
        p.paint_tube(a0 + side, a1 + side, 1.8, 1.3, HEPATIC_ARTERY, within=beside)
    # hepatic veins fan out from the IVC near the top
    top = np.array([-0.1 * H, ivy - 5, ivx])
    hv = [
        top + np.array([-0.35 * H, -0.1 * ca, -0.6 * a]) + j(8),
        top + np.array([-0.45 * H, -0.6 * ca, -0.15 * a]) + j(8),
        top + np.array([-0.2 * H, -0.55 * ca, 0.32 * a]) + j(8),
    ]
    for end in hv:
        p.paint_tube(top, end, rng.uniform(4, 6), 2.0, HEPATIC_VEIN, within=in_liver)
        small.append(end)
    for start in small:  # two more generations of small branches
        for _ in range(2):
            end = start + rng.normal(0, 22, 3)
            p.paint_tube(start, end, 2.2, 1.5, PORTAL_SMALL, within=in_liver)
            for _ in range(2):
                tip = end + rng.normal(0, 15, 3)
                p.paint_tube(end, tip, 1.5, 1.0, PORTAL_SMALL, within=in_liver)


def paint_tumors(p: Painter, rng, sl, f, plan: list[dict]) -> list[TumorSpec]:
    """Tumors from ``plan`` (diameter, kind, ...), placed inside the liver (``f < 0``)."""
    tumors: list[TumorSpec] = []
    if sl is None or not plan:
        return tumors
    g = p.g
    zs, ys, xs = (c[s] for c, s in zip((g.zs, g.ys, g.xs), sl, strict=True))
    main_center = None
    main_r = 0.0
    for i, spec in enumerate(plan[:MAX_TUMORS]):
        r = spec["diameter"] / 2
        edge = bool(spec.get("edge", False))
        if spec.get("satellite") and main_center is not None:
            # satellites sit around the main mass
            d = rng.normal(0, 1, 3)
            d /= np.linalg.norm(d) + 1e-6
            c = main_center + d * (main_r + r + rng.uniform(3, 25))
            ci = [
                int(np.clip(np.searchsorted(cc, x), 0, len(cc) - 1))
                for cc, x in zip((zs, ys, xs), c, strict=True)
            ]
            if f[tuple(ci)] > -0.3 * r:
                c = None
        else:
            c = None
        if c is None:
            need = -0.15 * r if edge else -min(0.6 * r, 25.0)
            parenchyma = p.tissue[sl] == LIVER
            near = (f < need) if not edge else ((f < 0) & (f > need))
            cand = np.flatnonzero(near & parenchyma)
            if cand.size == 0:
                cand = np.flatnonzero(parenchyma)
            if cand.size == 0:
                break
            k = np.unravel_index(rng.choice(cand), f.shape)
            c = np.array([zs[k[0]], ys[k[1]], xs[k[2]]], float)
        if main_center is None:
            main_center, main_r = c, r
        code = TUMOR0 + 2 * i
        _paint_one_tumor(p, rng, c, r, spec, edge, sl, f, code)
        tumors.append(
            TumorSpec(
                center=tuple(float(x) for x in c),
                diameter=float(spec["diameter"]),
                kind=spec["kind"],
                necrotic=float(spec.get("necrotic", 0.0)),
                edge=edge,
                code=code,
            )
        )
    return tumors


def _paint_one_tumor(p, rng, c, r, spec, edge, sl, f, code) -> None:
    g = p.g
    ax = r * rng.uniform(0.8, 1.2, 3)
    ax *= r / np.cbrt(np.prod(ax))  # keep the volume of a sphere of diameter d
    bx = g.box(c - 1.6 * r - 3, c + 1.6 * r + 3)
    if bx is None:
        return
    bsl, Z, Y, X = bx
    ft = ellipsoid(Z, Y, X, c, ax)
    for _ in range(int(rng.integers(0, 3))):  # lobulated margins
        off = rng.normal(0, 0.45 * r, 3)
        ft = smin(ft, ellipsoid(Z, Y, X, c + off, ax * rng.uniform(0.45, 0.7)), 0.2 * r)
    irregular = rng.uniform(0.05, 0.2) if spec["kind"] != "infiltrative" else rng.uniform(0.25, 0.4)
    ft = ft + irregular * r * box_noise(rng, Z, Y, X, max(0.6 * r, 3.0))
    margin = 0.3 * r if edge else 0.0
    fl = sub_box(f, sl, bsl)
    host = np.isin(p.tissue[bsl], _TUMOR_HOSTS)
    mask = (ft < 0) & (fl < margin) & (p.cavity_depth(bsl) > 2) & host
    p.paint(bsl, mask, code)
    if spec.get("rim", False):
        # a capsule is thin; an infiltrative margin is a wide band half-way to the liver's HU
        frac = (0.12, 0.22) if spec["kind"] == "infiltrative" else (0.04, 0.1)
        rim_w = max(1.5, rng.uniform(*frac) * r)
        p.paint(bsl, mask & (ft > -rim_w), code + 1)
    nec = spec.get("necrotic", 0.0)
    if nec > 0:
        fn = ft + 0.25 * r * box_noise(rng, Z, Y, X, max(0.4 * r, 3.0))
        p.paint(bsl, mask & (fn < -(1 - nec) * r), NECROSIS)


def paint_gallbladder(p: Painter, rng, v, extras) -> None:
    if not extras.get("gallbladder", True):
        return
    b = p.b
    H = b.liver_height
    hil = v["hilum"]
    fundus = np.array([-0.85 * H, -0.7 * b.cav_ant, -0.3 * b.cav_a]) + rng.normal(0, 8, 3)
    neck = hil + np.array([-10, -15, -10])
    r = rng.uniform(12, 20)
    p.paint_tube(fundus, neck, r, 6, GALLBLADDER, noise=1.5)


def paint_ascites(p: Painter, sl, f) -> None:
    if sl is None:
        return
    cur = p.tissue[sl]
    band = (f > 0) & (f < 12) & (cur == VFAT)
    p.paint(sl, band, ASCITES)
