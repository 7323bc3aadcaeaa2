"""Montage of synthetic cases: axial and coronal slices through the liver with label contours.

    python scripts/make_montage.py [--cases 4] [--seed 20] [--shape full] [-o docs/images/synth_montage.png]

Soft-tissue window (W 400 / L 40). Contours in the colours napari shows a ground truth in (the
standard palette): liver yellow, tumor magenta, portal vein light blue, aorta orange.
A thin cyan line on each axial slice
marks the row the coronal view below it cuts through. Coronal views are resampled to true aspect
(head up).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from napari_livertumor._widgets._layers import TRUTH_COLORS  # noqa: E402 (no napari import)
from napari_livertumor.synth import generate_phantom  # noqa: E402

#: as the panels draw a ground truth (the models' own masks are green and red)
COLORS = {value: rgba[:3] for value, rgba in TRUTH_COLORS.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=4)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--shape", default="full")
    ap.add_argument("--no-contours", action="store_true")
    ap.add_argument("-o", "--out", default="docs/images/synth_montage.png")
    args = ap.parse_args(argv)
    fig, axes = plt.subplots(2, args.cases, figsize=(4.2 * args.cases, 8.6), squeeze=False)
    for i in range(args.cases):
        ph = generate_phantom(args.seed + i, args.shape)
        ct, lab = ph.ct.array, ph.labels
        dz, dy, dx = ph.ct.spacing
        liver = (lab == 1) | (lab == 2)
        area = liver.sum(axis=(1, 2))
        zt = np.flatnonzero(lab == 2)
        k = (
            int(np.argmax(area))
            if zt.size == 0
            else int(np.unravel_index(zt[len(zt) // 2], lab.shape)[0])
        )
        ys = np.flatnonzero(liver.any(axis=(0, 2)))
        row = int(ys.mean()) if ys.size else lab.shape[1] // 2
        if zt.size:
            row = int(np.unravel_index(zt[len(zt) // 2], lab.shape)[1])
        ax = axes[0, i]
        ax.imshow(ct[k], cmap="gray", vmin=-160, vmax=240, interpolation="bilinear")
        if not args.no_contours:
            _contours(ax, lab[k])
        info = ph.info
        ax.set_title(
            f"seed {args.seed + i}: {info['phase']}, {dz:.2g} mm\n"
            f"liver {info['whole_liver_ml']:.0f} mL, TLVR {info['tlvr']:.2f}, σ {info['noise_sd']:.0f}",
            fontsize=9,
            color="white",  # on the black figure
        )
        ax.axhline(row, color="cyan", lw=0.4, alpha=0.5)
        ax = axes[1, i]
        cor = ct[::-1, row, :]
        ext = (0, cor.shape[1] * dx, 0, cor.shape[0] * dz)
        ax.imshow(cor, cmap="gray", vmin=-160, vmax=240, extent=ext, aspect="equal")
        if not args.no_contours:
            _contours(ax, lab[::-1, row, :], extent=ext)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, facecolor="black")
    print(f"wrote {out}")
    return 0


def _contours(ax, lab2d, extent=None) -> None:
    for value, color in COLORS.items():
        m = (lab2d == value).astype(float)
        if m.any():
            if extent is None:
                ax.contour(m, levels=[0.5], colors=color, linewidths=0.6)
            else:
                ny, nx = m.shape
                xs = np.linspace(extent[0], extent[1], nx)
                ys = np.linspace(extent[3], extent[2], ny)
                ax.contour(xs, ys, m, levels=[0.5], colors=color, linewidths=0.6)


if __name__ == "__main__":
    raise SystemExit(main())
