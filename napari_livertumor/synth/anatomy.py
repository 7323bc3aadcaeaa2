"""Procedural abdominal anatomy: a tissue map on the working grid, painted organ by organ.

The body frame is in mm: ``x`` toward the patient's left, ``y`` toward the back, ``z`` toward the
head (the LPS axes), with the top of the right hemidiaphragm at ``z = 0`` and the body's centre
at ``x = y = 0``. Organs are placed relative to the body's inner (cavity) size, so the anatomy
scales with the patient, and every size and position is drawn around a textbook value.

Each organ is painted in its own bounding box (later organs win), so the cost is a few passes
over the full grid (body layers, lungs) plus small boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._fields import Grid, box_noise, ellipsoid, smin, tube, tube_box

# ---------------------------------------------------------------------------- tissue codes
AIR, TABLE, SKIN, FAT, MUSCLE, VFAT = 0, 1, 2, 3, 4, 5
CORTICAL, CANCELLOUS, DISC, CANAL, LUNG, HEART_BLOOD, MYOCARDIUM = 6, 7, 8, 9, 10, 11, 12
LIVER, PORTAL_VEIN, HEPATIC_VEIN, IVC, AORTA, SPLEEN = 13, 14, 15, 16, 17, 18
KIDNEY_CORTEX, KIDNEY_MEDULLA, KIDNEY_PELVIS = 19, 20, 21
GI_WALL, GAS, GI_FLUID, FECES, GALLBLADDER, PANCREAS = 22, 23, 24, 25, 26, 27
CYST, ASCITES, CARTILAGE, PORTAL_SMALL, MESENTERIC_VEIN, NECROSIS, CALCIFICATION = (
    28,
    29,
    30,
    31,
    32,
    33,
    34,
)
ORAL_CONTRAST = 35
TUMOR0 = 40  #: tumor ``i`` body is ``TUMOR0 + 2 i``, its rim/capsule ``TUMOR0 + 2 i + 1``
MAX_TUMORS = 20
N_CODES = TUMOR0 + 2 * MAX_TUMORS

#: tissue code -> HCC-TACE-Seg class (0 other, 1 liver, 2 tumor mass, 3 portal vein, 4 aorta)
LABEL_OF_TISSUE = np.zeros(256, np.uint8)
LABEL_OF_TISSUE[[LIVER, HEPATIC_VEIN, CYST, PORTAL_SMALL]] = 1
LABEL_OF_TISSUE[NECROSIS] = 2
LABEL_OF_TISSUE[TUMOR0:N_CODES] = 2
LABEL_OF_TISSUE[PORTAL_VEIN] = 3
LABEL_OF_TISSUE[AORTA] = 4


@dataclass
class Body:
    """Patient-level geometry (mm), drawn once per case."""

    half_width: float  # a: skin to skin / 2 along x
    ant: float  # skin depth anterior of the centre
    post: float  # skin depth posterior of the centre
    skin: float
    fat_ant: float
    fat_lat: float
    fat_post: float
    muscle: float
    spine_y: float  # vertebral body centre (y)
    liver_height: float  # cranio-caudal extent H
    dome_drop: float
    scale_z: np.ndarray = field(default_factory=lambda: np.ones(1))

    @property
    def cav_a(self) -> float:
        return self.half_width - self.skin - self.fat_lat - self.muscle

    @property
    def cav_ant(self) -> float:
        return self.ant - self.skin - self.fat_ant - self.muscle


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
class TumorSpec:
    center: tuple[float, float, float]  # (z, y, x) mm
    diameter: float
    kind: str  # "typical", "hypovascular", "iso", "rim"
    necrotic: float  # fraction of radius that is necrotic core (0: none)
    edge: bool
    code: int
    info: dict = field(default_factory=dict)


@dataclass
class Anatomy:
    tissue: np.ndarray  # uint8 (z, y, x) on the working grid
    tumors: list[TumorSpec]
    info: dict


# ==================================================================================== builder
class _Painter:
    def __init__(self, rng: np.random.Generator, grid: Grid, body: Body):
        self.rng = rng
        self.g = grid
        self.b = body
        nz, ny, nx = grid.shape
        self.tissue = np.zeros(grid.shape, np.uint8)
        Y = grid.ys[:, None].astype(np.float32)
        X = grid.xs[None, :].astype(np.float32)
        self.dist2d = np.sqrt(X**2 + Y**2) + 1e-3
        ay = np.where(Y < 0, body.ant, body.post)
        py = np.where(Y < 0, 2.0, 3.2)  # flatter back (lying on the table)
        rho = ((np.abs(X) / body.half_width) ** 2.0 + (np.abs(Y) / ay) ** py) ** 0.5
        phi = np.arctan2(X, Y)  # 0 at the back, +-pi at the front
        # no body is an ellipse: a few low angular harmonics on the outline and the fat
        wobble = sum(
            rng.normal(0, 0.025 / k) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
            for k in (2, 3, 4, 5)
        )
        self.ray2d = self.dist2d / np.maximum(rho, 1e-3) * (1 + wobble)  # centre-to-skin ray length
        self.phi2d = phi
        ant_w = np.clip(-np.cos(phi), 0, 1)  # 1 at the front
        lat_w = np.abs(np.sin(phi))
        post_w = np.clip(np.cos(phi), 0, 1)
        fat = body.fat_ant * ant_w**2 + body.fat_lat * lat_w**2 + body.fat_post * post_w**2
        fat = fat * (
            1 + sum(rng.normal(0, 0.12) * np.cos(k * phi + rng.uniform(0, 6.3)) for k in (1, 2, 3))
        )
        # paraspinal muscles make the back wall thick near the midline
        wall_post = body.post - body.skin - body.fat_post - body.spine_y
        muscle = body.muscle + np.maximum(wall_post - body.muscle, 0) * np.exp(-((phi / 0.55) ** 2))
        self.fat2d = (body.skin + fat).astype(np.float32)
        self.wall2d = (self.fat2d + muscle).astype(np.float32)
        self.scale_z = body.scale_z.astype(np.float32)

    # ------------------------------------------------------------------ helpers
    def depth(self, sl) -> np.ndarray:
        """Depth below the skin (mm) in a box, from the per-slice body scale."""
        sz, sy, sx = sl
        return self.scale_z[sz, None, None] * self.ray2d[None, sy, sx] - self.dist2d[None, sy, sx]

    def cavity_depth(self, sl) -> np.ndarray:
        sz, sy, sx = sl
        return self.depth(sl) - self.wall2d[None, sy, sx]

    def paint(self, sl, mask, code: int) -> None:
        view = self.tissue[sl]
        view[np.broadcast_to(mask, view.shape)] = code

    def paint_tube(self, p0, p1, r0, r1, code, within=None, noise=0.0):
        lo, hi = tube_box(p0, p1, r0, r1)
        bx = self.g.box(lo, hi)
        if bx is None:
            return
        sl, Z, Y, X = bx
        f = tube(Z, Y, X, p0, p1, r0, r1)
        if noise:
            f = f + noise * box_noise(self.rng, Z, Y, X, 8.0)
        mask = f < 0
        if within is not None:
            mask &= within(sl)
        self.paint(sl, mask, code)

    def u(self, x: float) -> float:  # cavity-relative -> mm
        return x * self.b.cav_a

    def v(self, y: float) -> float:
        return y * self.b.cav_ant if y < 0 else y * self.b.spine_y


def build_anatomy(
    rng: np.random.Generator, grid: Grid, body: Body, tumor_plan: list[dict], extras: dict
) -> Anatomy:
    """Paint every organ on ``grid`` and return the tissue map, tumors and geometry facts."""
    p = _Painter(rng, grid, body)
    H = body.liver_height
    _paint_body_and_table(p)
    dome = _dome(p, rng)
    vessels = _vessel_positions(p, rng)
    _paint_thorax(p, rng, dome, vessels)
    _paint_ribs(p, rng)
    _paint_stomach(p, rng, dome, extras)
    _paint_spleen(p, rng, dome, extras)
    _paint_pancreas_and_veins(p, rng, vessels)
    liver_sl, liver_f = _paint_liver(p, rng, dome, vessels, extras)
    tumors = _paint_tumors(p, rng, liver_sl, liver_f, tumor_plan)
    _paint_gallbladder(p, rng, vessels, extras)
    _paint_kidneys(p, rng)
    _paint_great_vessels(p, rng, vessels, extras)
    _paint_spine(p, rng)
    if extras.get("ascites", False):
        _paint_ascites(p, liver_sl, liver_f)
    _paint_bowel(p, rng, dome, extras)
    info = {"liver_height_mm": H, "dome": float(dome.max())}
    return Anatomy(tissue=p.tissue, tumors=tumors, info=info)


# ============================================================================ body and chest
def _paint_body_and_table(p: _Painter) -> None:
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


def _dome(p: _Painter, rng) -> np.ndarray:
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


def _paint_thorax(p: _Painter, rng, dome, v) -> None:
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
    c = (rng.uniform(40, 60), -0.35 * b.cav_ant, 0.12 * b.cav_a)
    r = (70.0, 0.6 * b.cav_ant, 0.55 * b.cav_a)
    f = ellipsoid(Z, Y, X, c, r)
    heart = cav & (above > 5)
    p.paint(sl, heart & (f < 8), VFAT)  # pericardial fat
    p.paint(sl, heart & (f < 0), MYOCARDIUM)
    p.paint(sl, heart & (f < -9), HEART_BLOOD)


def _paint_ribs(p: _Painter, rng) -> None:
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
    rib = inb & (ph < width) & (zr > -H * rng.uniform(0.8, 1.0))
    edge = (ph < 1.6) | (ph > width - 1.6)
    cart = (aphi[iy, ix] > 2.3)[None]
    sub = p.tissue[:, iy, ix]
    sub[rib & cart] = CARTILAGE
    sub[rib & ~cart] = CANCELLOUS
    sub[rib & ~cart & edge] = CORTICAL
    p.tissue[:, iy, ix] = sub


# ================================================================================ abdomen
def _vessel_positions(p: _Painter, rng) -> dict:
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


def _paint_bowel(p: _Painter, rng, dome, extras) -> None:
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


def _paint_stomach(p: _Painter, rng, dome, extras) -> None:
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


def _paint_spleen(p: _Painter, rng, dome, extras) -> None:
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


def _paint_pancreas_and_veins(p: _Painter, rng, v) -> None:
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


def _paint_liver(p: _Painter, rng, dome, v, extras):
    """Liver: smooth union of right lobe, medial bridge, left lobe and caudate, moulded by the
    diaphragm and the body wall, with portal and hepatic veins inside."""
    b = p.b
    g = p.g
    H = b.liver_height
    a, ca = b.cav_a, b.cav_ant
    size = extras.get("liver_scale", 1.0) * rng.uniform(0.92, 1.08)
    left_size = rng.uniform(0.65, 1.3) * extras.get("left_lobe_scale", 1.0)
    lo = (-H - 30, -ca - 5, -a - 5)
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
    # keep clear of the spine, the aorta and the crura in front of them
    vb_ry, vb_rx = v["vb"]
    keep_out = np.sqrt(
        (X / (vb_rx + 22)) ** 2 + ((Y - b.spine_y) / (vb_ry + 2 * v["r_aorta"] + 12)) ** 2
    )
    clamp = np.maximum(clamp, (1 - keep_out) * 30)
    f = _fit_volume(f.astype(np.float32), clamp, p.g, extras.get("liver_volume_ml", 1600.0))
    inside = f < 0
    p.paint(sl, inside, LIVER)

    def in_liver(sub):
        return _sub(f, sl, sub) < -1.0

    _paint_liver_vessels(p, rng, v, in_liver)
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


def _sub(f, sl, sub):
    """The part of box array ``f`` (at ``sl``) under the smaller box ``sub``; +inf outside."""
    out = np.full(tuple(s.stop - s.start for s in sub), np.inf, np.float32)
    inter = []
    src = []
    for a, c in zip(sl, sub, strict=True):
        lo, hi = max(a.start, c.start), min(a.stop, c.stop)
        if hi <= lo:
            return out
        inter.append(slice(lo - c.start, hi - c.start))
        src.append(slice(lo - a.start, hi - a.start))
    out[tuple(inter)] = f[tuple(src)]
    return out


def _paint_liver_vessels(p: _Painter, rng, v, in_liver) -> None:
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


def _paint_tumors(p: _Painter, rng, sl, f, plan: list[dict]) -> list[TumorSpec]:
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
            cand = np.flatnonzero(f < need) if not edge else np.flatnonzero((f < 0) & (f > need))
            if cand.size == 0:
                cand = np.flatnonzero(f < 0)
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
    irregular = spec.get("irregularity", rng.uniform(0.05, 0.2))
    ft = ft + irregular * r * box_noise(rng, Z, Y, X, max(0.6 * r, 3.0))
    margin = 0.3 * r if edge else 0.0
    fl = _sub(f, sl, bsl)
    mask = (ft < 0) & (fl < margin) & (p.cavity_depth(bsl) > 2)
    p.paint(bsl, mask, code)
    if spec.get("rim", False):
        rim_w = max(1.5, rng.uniform(0.04, 0.1) * r)
        p.paint(bsl, mask & (ft > -rim_w), code + 1)
    nec = spec.get("necrotic", 0.0)
    if nec > 0:
        fn = ft + 0.25 * r * box_noise(rng, Z, Y, X, max(0.4 * r, 3.0))
        p.paint(bsl, mask & (fn < -(1 - nec) * r), NECROSIS)


def _paint_gallbladder(p: _Painter, rng, v, extras) -> None:
    if not extras.get("gallbladder", True):
        return
    b = p.b
    H = b.liver_height
    hil = v["hilum"]
    fundus = np.array([-0.85 * H, -0.7 * b.cav_ant, -0.3 * b.cav_a]) + rng.normal(0, 8, 3)
    neck = hil + np.array([-10, -15, -10])
    r = rng.uniform(12, 20)
    p.paint_tube(fundus, neck, r, 6, GALLBLADDER, noise=1.5)


def _paint_kidneys(p: _Painter, rng) -> None:
    b = p.b
    H = b.liver_height
    for side in (-1, 1):
        zc = -H * rng.uniform(0.92, 1.05) - (15 if side < 0 else 0) + 20
        c = np.array([zc, b.spine_y - rng.uniform(0, 12), side * rng.uniform(62, 80)])
        r = np.array([rng.uniform(48, 60), rng.uniform(22, 27), rng.uniform(24, 30)])
        bx = p.g.box(c - r - 5, c + r + 5)
        if bx is None:
            continue
        sl, Z, Y, X = bx
        f = ellipsoid(Z, Y, X, c, r)
        hil = ellipsoid(Z, Y, X, c + (0, -0.4 * r[1], -side * 0.9 * r[2]), r * (0.35, 0.4, 0.5))
        f = np.maximum(f, -hil)
        keep = p.cavity_depth(sl) > -5
        p.paint(sl, keep & (f < 0), KIDNEY_CORTEX)
        p.paint(sl, keep & (f < -rng.uniform(5, 8)), KIDNEY_MEDULLA)
        pel = ellipsoid(Z, Y, X, c + (0, -0.15 * r[1], -side * 0.45 * r[2]), r * (0.35, 0.3, 0.25))
        p.paint(sl, keep & (pel < 0), KIDNEY_PELVIS)


def _paint_great_vessels(p: _Painter, rng, v, extras) -> None:
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
    # main portal vein: confluence -> hilum
    r = rng.uniform(6, 8)
    p.paint_tube(v["confluence"], v["hilum"], r, r * 0.9, PORTAL_VEIN)


def _paint_spine(p: _Painter, rng) -> None:
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


def _paint_ascites(p: _Painter, sl, f) -> None:
    if sl is None:
        return
    cur = p.tissue[sl]
    band = (f > 0) & (f < 12) & (cur == VFAT)
    p.paint(sl, band, ASCITES)
