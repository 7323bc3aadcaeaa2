"""Patient geometry and the painter that writes organs into the tissue map, box by box."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._fields import Grid, box_noise, tube, tube_box


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


class Painter:
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


def sub_box(f, sl, sub):
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
