"""Small vectorised building blocks for the phantom: a grid in mm, smooth random fields, tubes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Grid:
    """Voxel-centre coordinates (mm, body frame) of the working grid, in array order."""

    zs: np.ndarray
    ys: np.ndarray
    xs: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.zs), len(self.ys), len(self.xs))

    def box(self, lo, hi):
        """Slices and broadcastable coordinates ``Z (n,1,1), Y (1,n,1), X (1,1,n)`` of a mm box.

        ``lo``/``hi`` are ``(z, y, x)`` mm corners. Returns ``None`` when the box misses the grid.
        """
        sl = []
        co = []
        for c, a, b in zip((self.zs, self.ys, self.xs), lo, hi, strict=True):
            i0 = int(np.searchsorted(c, a, "left"))
            i1 = int(np.searchsorted(c, b, "right"))
            if i1 <= i0:
                return None
            sl.append(slice(i0, i1))
            co.append(c[i0:i1].astype(np.float32))
        return tuple(sl), co[0][:, None, None], co[1][None, :, None], co[2][None, None, :]


def resize_linear(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Separable linear interpolation of ``a`` onto ``shape`` (corners aligned)."""
    out = a
    for ax, n in enumerate(shape):
        m = out.shape[ax]
        if m == n:
            continue
        if m == 1:
            out = np.repeat(out, n, axis=ax)
            continue
        pos = np.linspace(0.0, m - 1.0, n, dtype=np.float32)
        i0 = np.minimum(pos.astype(np.int64), m - 2)
        w = pos - i0
        bshape = [1] * out.ndim
        bshape[ax] = n
        w = w.reshape(bshape)
        out = np.take(out, i0, axis=ax) * (1 - w) + np.take(out, i0 + 1, axis=ax) * w
    return out.astype(np.float32, copy=False)


def smooth_noise(rng: np.random.Generator, shape, cells) -> np.ndarray:
    """Unit-ish standard deviation random field with about ``cells`` control points per axis."""
    coarse = tuple(max(2, int(round(c)) + 1) for c in cells)
    g = rng.standard_normal(coarse).astype(np.float32)
    return resize_linear(g, tuple(shape))


def box_noise(rng, Z, Y, X, corr_mm: float) -> np.ndarray:
    """Smooth noise on a box from :meth:`Grid.box`, correlation length ``corr_mm``."""
    shape = (Z.shape[0], Y.shape[1], X.shape[2])
    ext = (
        float(Z[-1, 0, 0] - Z[0, 0, 0]),
        float(Y[0, -1, 0] - Y[0, 0, 0]),
        float(X[0, 0, -1] - X[0, 0, 0]),
    )
    cells = [max(1.0, e / corr_mm) for e in ext]
    return smooth_noise(rng, shape, cells)


def smin(a, b, k: float):
    """Smooth minimum (polynomial), a smooth union of two implicit shapes."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def ellipsoid(Z, Y, X, c, r) -> np.ndarray:
    """Approximate signed distance (mm) of an axis-aligned ellipsoid, negative inside."""
    q = ((Z - c[0]) / r[0]) ** 2 + ((Y - c[1]) / r[1]) ** 2 + ((X - c[2]) / r[2]) ** 2
    return (np.sqrt(q) - 1.0) * float(min(r))


def tube_box(p0, p1, r0, r1):
    """mm bounding box ``(lo, hi)`` of a tapered segment."""
    p0 = np.asarray(p0, float)
    p1 = np.asarray(p1, float)
    r = max(r0, r1) + 1.0
    return np.minimum(p0, p1) - r, np.maximum(p0, p1) + r


def tube(Z, Y, X, p0, p1, r0, r1) -> np.ndarray:
    """Signed distance (mm) to a tapered segment ``p0 -> p1`` (``(z, y, x)`` mm), negative inside."""
    p0 = np.asarray(p0, np.float32)
    d = np.asarray(p1, np.float32) - p0
    dd = float(d @ d) or 1e-6
    pz, py, px = Z - p0[0], Y - p0[1], X - p0[2]
    t = np.clip((pz * d[0] + py * d[1] + px * d[2]) / dd, 0.0, 1.0)
    dist = np.sqrt((pz - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (px - t * d[2]) ** 2)
    return dist - (r0 + (r1 - r0) * t)
