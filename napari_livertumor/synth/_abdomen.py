"""Hollow and solid organs around the liver: bowel, stomach, spleen, pancreas, kidneys."""

from __future__ import annotations

import numpy as np

from ._fields import box_noise, ellipsoid, tube, tube_box
from ._painter import Painter
from ._tissue import (
    ADRENAL,
    FECES,
    GAS,
    GI_FLUID,
    GI_WALL,
    KIDNEY_CORTEX,
    KIDNEY_MEDULLA,
    KIDNEY_PELVIS,
    MESENTERIC_VEIN,
    ORAL_CONTRAST,
    PANCREAS,
    SPLEEN,
    VFAT,
)


def paint_bowel(p: Painter, rng, dome, extras) -> None:
    """Colon along the flanks and small-bowel loops filling the free peritoneal fat.

    Loops are random walks of tube segments painted only into visceral fat, so they pack
    around the solid organs (and each other) instead of overlapping them.
    """
    b = p.b
    H = b.liver_height
    g = p.g
    a, ca = b.cav_a, b.cav_ant
    oral = extras.get("oral_contrast", False)
    zlo = float(g.zs[0]) - 20

    def walk(start, n, step, r, lateral=1.0):
        pts = [np.asarray(start, float)]
        d = rng.normal(0, 1, 3)
        for _ in range(n):
            d = 0.55 * d / (np.linalg.norm(d) + 1e-6) + 0.45 * rng.normal(0, 1, 3)
            d /= np.linalg.norm(d) + 1e-6
            nxt = pts[-1] + d * step * np.array([1.0, 0.8, lateral])
            nxt[1] = np.clip(nxt[1], -ca + r, b.spine_y * 0.6)
            nxt[2] = np.clip(nxt[2], -a + r, a - r)
            pts.append(nxt)
        return pts

    loops = []
    # colon: ascending (right flank) - transverse (front, under the liver) - descending (left)
    rc = rng.uniform(16, 26)
    zt = -H * rng.uniform(0.8, 1.0)
    asc = [(zlo, 0.2 * b.spine_y, -0.72 * a), (zt, -0.1 * ca, -0.7 * a)]
    trans = [
        (zt, -0.1 * ca, -0.7 * a),
        (zt - 25, -0.7 * ca, -0.2 * a),
        (zt + 10, -0.6 * ca, 0.4 * a),
        (-0.5 * H, 0.0, 0.72 * a),
    ]
    desc = [(-0.5 * H, 0.0, 0.72 * a), (zlo, 0.2 * b.spine_y, 0.72 * a)]
    for path in (asc, trans, desc):
        jit = [np.asarray(q) + rng.normal(0, 6, 3) for q in path]
        loops.append((jit, rc, "feces" if rng.random() < 0.7 else "gas"))
    zhi = -0.55 * H
    n = int(np.clip((zhi - zlo) / 9 * rng.uniform(0.8, 1.2), 0, 40))
    for _ in range(n):
        start = (
            rng.uniform(zlo, zhi),
            rng.uniform(-0.85 * ca, 0.3 * b.spine_y),
            rng.uniform(-0.7, 0.75) * a,
        )
        r = rng.uniform(7, 14)
        kind = str(rng.choice(["fluid", "collapsed", "gas", "feces"], p=[0.45, 0.35, 0.1, 0.1]))
        loops.append((walk(start, int(rng.integers(3, 8)), rng.uniform(18, 32), r), r, kind))
    # jejunal loops in the left upper quadrant, under the stomach
    for _ in range(int(rng.integers(2, 6))):
        start = (
            -H * rng.uniform(0.35, 0.6),
            rng.uniform(-0.7 * ca, 0.0),
            rng.uniform(0.2, 0.7) * a,
        )
        r = rng.uniform(8, 13)
        loops.append(
            (
                walk(start, int(rng.integers(2, 5)), 22, r),
                r,
                str(rng.choice(["fluid", "collapsed"])),
            )
        )

    def free(sl):
        cur = p.tissue[sl]
        ok = (cur == VFAT) & (p.cavity_depth(sl) > 2)
        return ok & (g.zs[sl[0]][:, None, None] < dome[None, sl[1], sl[2]] - 6)

    for pts, r, kind in loops:
        wall = rng.uniform(1.5, 3.0) if kind != "collapsed" else r
        content = {
            "fluid": ORAL_CONTRAST if oral and rng.random() < 0.6 else GI_FLUID,
            "gas": GAS,
            "feces": FECES,
            "collapsed": GI_WALL,
        }[kind]
        for p0, p1 in zip(pts[:-1], pts[1:], strict=True):
            lo, hi = tube_box(p0, p1, r, r)
            bx = g.box(lo, hi)
            if bx is None:
                continue
            sl, Z, Y, X = bx
            f = tube(Z, Y, X, p0, p1, r, r)
            ok = free(sl) | ((p.tissue[sl] == GI_WALL) & (f < -wall))
            p.paint(sl, ok & (f < 0), GI_WALL)
            if kind == "collapsed":
                continue
            inner = ok & (f < -wall)
            p.paint(sl, inner, content)
            if kind == "feces":
                p.paint(sl, inner & (box_noise(rng, Z, Y, X, 5.0) > 1.1), GAS)
            elif kind == "gas" and rng.random() < 0.5:
                p.paint(sl, inner & (Y > 0.5 * (p0[1] + p1[1])), GI_FLUID)
    # mesenteric vessels: thin bright lines fanning out in the fat
    root = np.array([-0.75 * H, b.spine_y - 40, 5.0])
    for _ in range(int(rng.integers(6, 12))):
        pts = [root + rng.normal(0, 10, 3)]
        r = rng.uniform(1.5, 2.5)
        for _ in range(3):
            pts.append(
                pts[-1] + np.array([rng.uniform(-50, 5), rng.uniform(-25, 5), rng.uniform(-35, 35)])
            )
            p.paint_tube(pts[-2], pts[-1], r, r * 0.75, MESENTERIC_VEIN, within=free)
            r *= 0.75


def paint_stomach(p: Painter, rng, dome, extras) -> None:
    b = p.b
    g = p.g
    collapsed = rng.random() < 0.3
    r = np.array([55, 0.35 * b.cav_ant, 0.28 * b.cav_a]) * (0.6 if collapsed else 1.0)
    r *= rng.uniform(0.8, 1.2, 3)
    c = (-rng.uniform(0.15, 0.4) * b.liver_height, -0.25 * b.cav_ant, 0.35 * b.cav_a)
    bx = g.box(np.subtract(c, r + 8), np.add(c, r + 8))
    if bx is None:
        return
    sl, Z, Y, X = bx
    f = ellipsoid(Z, Y, X, c, r) + 8 * box_noise(rng, Z, Y, X, 40)
    keep = (p.cavity_depth(sl) > 2) & (Z < dome[None, sl[1], sl[2]] - 5)
    wall = rng.uniform(6, 10) if collapsed else rng.uniform(3, 5)
    p.paint(sl, keep & (f < 0), GI_WALL)
    if collapsed:
        return
    inner = keep & (f < -wall)
    level = c[1] + r[1] * rng.uniform(-0.9, 0.3)  # gas rises to the front (low y)
    content = rng.choice([GI_FLUID, FECES, ORAL_CONTRAST], p=[0.55, 0.3, 0.15])
    if content == ORAL_CONTRAST and not extras.get("oral_contrast", False):
        content = GI_FLUID
    p.paint(sl, inner, int(content))
    p.paint(sl, inner & (Y < level), GAS)


def paint_spleen(p: Painter, rng, dome, extras) -> None:
    b = p.b
    g = p.g
    big = rng.uniform(1.2, 1.5) if extras.get("splenomegaly", False) else 1.0
    r = np.array([55, 0.45 * b.spine_y + 25, 0.18 * b.cav_a]) * big * rng.uniform(0.85, 1.15, 3)
    c = (-0.3 * b.liver_height, 0.55 * b.spine_y, 0.72 * b.cav_a)
    bx = g.box(np.subtract(c, r + 10), np.add(c, r + 10))
    if bx is None:
        return
    sl, Z, Y, X = bx
    f = ellipsoid(Z, Y, X, c, r) + 5 * box_noise(rng, Z, Y, X, 40)
    hil = ellipsoid(Z, Y, X, (c[0], c[1] - 0.4 * r[1], c[2] - 1.3 * r[2]), r * (1, 0.8, 0.9))
    keep = (p.cavity_depth(sl) > 1) & (Z < dome[None, sl[1], sl[2]] - 5)
    p.paint(sl, keep & (f < 0) & (hil > 0), SPLEEN)


def paint_pancreas_and_veins(p: Painter, rng, v) -> None:
    b = p.b
    conf = v["confluence"]
    ao_x, ao_y = v["aorta"]
    head = conf + (-rng.uniform(15, 30), -rng.uniform(0, 10), -rng.uniform(10, 25))
    neck = conf + (0, -12, 5)
    body = np.array([conf[0] + 12, ao_y - 28, 0.3 * b.cav_a])
    tail = np.array([conf[0] + 25, ao_y + 5, 0.58 * b.cav_a])
    rad = rng.uniform(0.8, 1.2)
    for a, c, r0, r1 in ((head, neck, 15, 11), (neck, body, 11, 10), (body, tail, 10, 8)):
        p.paint_tube(a, c, r0 * rad, r1 * rad, PANCREAS, noise=2.0)
    # splenic vein behind the pancreas, superior mesenteric vein down from the confluence
    sv1 = np.array([conf[0] + 12, ao_y - 16, 0.3 * b.cav_a])
    sv2 = np.array([conf[0] + 25, ao_y + 12, 0.6 * b.cav_a])
    p.paint_tube(conf, sv1, 5, 4.5, MESENTERIC_VEIN)
    p.paint_tube(sv1, sv2, 4.5, 4, MESENTERIC_VEIN)
    p.paint_tube(conf, conf + (-90, -8, 12), 5.5, 4.5, MESENTERIC_VEIN)


def paint_kidneys(p: Painter, rng) -> None:
    b = p.b
    H = b.liver_height
    for side in (-1, 1):
        zc = -H * rng.uniform(0.92, 1.05) - (15 if side < 0 else 0) + 20
        c = np.array([zc, b.spine_y - rng.uniform(0, 12), side * rng.uniform(62, 80)])
        r = np.array([rng.uniform(48, 60), rng.uniform(22, 27), rng.uniform(24, 30)])
        # long axis tilted: upper pole toward the spine and the back
        s, t = rng.uniform(0.1, 0.35), rng.uniform(0.05, 0.3)
        pad = r + 5 + np.array([0, t * r[0], s * r[0]])
        bx = p.g.box(c - pad, c + pad)
        if bx is None:
            continue
        sl, Z, Y0, X0 = bx
        X = X0 + side * s * (Z - c[0])
        Y = Y0 - t * (Z - c[0])
        f = ellipsoid(Z, Y, X, c, r)
        hil = ellipsoid(Z, Y, X, c + (0, -0.4 * r[1], -side * 0.9 * r[2]), r * (0.35, 0.4, 0.5))
        f = np.maximum(f, -hil)
        keep = p.cavity_depth(sl) > -5
        p.paint(sl, keep & (f < 0), KIDNEY_CORTEX)
        p.paint(sl, keep & (f < -rng.uniform(5, 8)), KIDNEY_MEDULLA)
        pel = ellipsoid(Z, Y, X, c + (0, -0.15 * r[1], -side * 0.45 * r[2]), r * (0.35, 0.3, 0.25))
        p.paint(sl, keep & (pel < 0), KIDNEY_PELVIS)
        # adrenal: a thin inverted Y above the upper pole, toward the spine
        top = c + np.array(
            [r[0] + rng.uniform(5, 15), -rng.uniform(5, 15), -side * rng.uniform(5, 15)]
        )
        limb = rng.uniform(2.0, 3.0)
        for end in ((-22, 6, side * 8), (-22, -8, -side * 4)):
            p.paint_tube(top, top + np.array(end), limb, limb * 0.8, ADRENAL, within=_fat(p))


def paint_duodenum(p: Painter, rng, v) -> None:
    """The duodenal C-loop around the pancreatic head, from the pylorus near the gallbladder."""
    conf = v["confluence"]
    hil = v["hilum"]
    r = rng.uniform(8, 12)
    pts = [
        hil + np.array([-30, -30, -10]),
        conf + np.array([-15, -5, -45]),
        conf + np.array([-70, 5, -45]),
        conf + np.array([-85, 10, 10]),
        conf + np.array([-75, 5, 45]),
    ]
    pts = [q + rng.normal(0, 4, 3) for q in pts]
    kind = str(rng.choice(["fluid", "collapsed", "gas"], p=[0.5, 0.35, 0.15]))
    free = _fat(p)
    for p0, p1 in zip(pts[:-1], pts[1:], strict=True):
        lo, hi = tube_box(p0, p1, r, r)
        bx = p.g.box(lo, hi)
        if bx is None:
            continue
        sl, Z, Y, X = bx
        f = tube(Z, Y, X, p0, p1, r, r)
        ok = free(sl) | (p.tissue[sl] == GI_WALL)
        p.paint(sl, ok & (f < 0), GI_WALL)
        if kind != "collapsed":
            p.paint(sl, ok & (f < -2.5), GI_FLUID if kind == "fluid" else GAS)


def _fat(p: Painter):
    def free(sl):
        return (p.tissue[sl] == VFAT) & (p.cavity_depth(sl) > 2)

    return free
