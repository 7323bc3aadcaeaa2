"""A quality-control picture of one segmentation: the CT with the liver and tumor outlined.

:func:`write_preview` draws three axial slices through the liver (the middle one through the
largest tumor area when there is tumor) and a coronal one through the liver's centre, turned to
the radiological view (the patient's right on the image's left, anterior up, head up), in an
abdominal window, and saves it as a PNG. A batch of ``livertumor segment --preview`` can then be
checked case by case in an image viewer before any mask is opened.

Core module: matplotlib's Agg canvas only (no pyplot, no GUI toolkit).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fileio import atomic_path
from .io.volume import CTVolume, Reorientation

#: abdominal soft-tissue window (W 400, L 50), HU
WINDOW = (-150.0, 250.0)
LIVER_COLOR = "#39d353"
TUMOR_COLOR = "#ff4040"


def preview_slices(labels: np.ndarray, spacing) -> dict:
    """Where the preview cuts the standard-oriented ``labels`` (``(z, y, x)``, 1 liver,
    2 tumor): ``{"axial": [z, z, z], "coronal": y}``.

    The axial slices split the liver's volume into quarters (at 25, 50 and 75 % of its voxels
    counted from the feet); with tumor, the slice of largest tumor area replaces the nearest
    of them. Without liver, the middle of the volume.
    """
    nz, ny, _ = labels.shape
    organ = labels > 0
    per_z = organ.sum(axis=(1, 2))
    if not per_z.any():
        return {"axial": [nz // 2], "coronal": ny // 2}
    cum = np.cumsum(per_z) / per_z.sum()
    axial = [int(np.searchsorted(cum, q)) for q in (0.25, 0.5, 0.75)]
    tumor_z = (labels == 2).sum(axis=(1, 2))
    if tumor_z.any():  # the largest tumor section replaces the nearest of the three
        top = int(np.argmax(tumor_z))
        axial[int(np.argmin([abs(z - top) for z in axial]))] = top
    axial = sorted(set(axial))
    per_y = organ.sum(axis=(0, 2))
    coronal = int(np.searchsorted(np.cumsum(per_y) / per_y.sum(), 0.5))
    return {"axial": axial, "coronal": coronal}


def write_preview(
    volume: CTVolume,
    labels: np.ndarray,
    path: str | Path,
    *,
    title: str = "",
    window: tuple[float, float] = WINDOW,
    dpi: int = 100,
) -> Path:
    """Save a PNG of ``labels`` (on ``volume``'s grid) over the CT; returns its path.

    Parameters
    ----------
    volume : CTVolume
        The CT (any orientation: it is shown turned to the standard one).
    labels : ndarray
        Label map on ``volume``'s grid: 1 liver, 2 tumor (other values are not drawn).
    path : str or Path
        The ``.png`` to write (atomically: an interrupted write leaves no partial file).
    title : str
        A line above the slices (the case and its volumes, say).
    window : (low, high)
        HU shown from black to white.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = np.asarray(labels)
    if labels.shape != volume.shape:
        raise ValueError(f"labels {labels.shape} are not on the CT's grid {volume.shape}")
    turn = Reorientation.to_standard(volume.direction)
    ct = turn.apply(volume.array)
    lab = turn.apply(labels)
    dz, dy, dx = turn.apply_spacing(volume.spacing)
    cuts = preview_slices(lab, (dz, dy, dx))
    nz, ny, nx = ct.shape
    # the body's extent in the slices shown (air and the table's gap left out), 10 mm around
    body = np.zeros((ny, nx), bool)
    for z in cuts["axial"]:
        body |= ct[z] > -500
    if body.any():
        rows, cols = np.nonzero(body.any(axis=1))[0], np.nonzero(body.any(axis=0))[0]
        my, mx = int(np.ceil(10 / dy)), int(np.ceil(10 / dx))
        y0, y1 = max(rows[0] - my, 0), min(rows[-1] + my + 1, ny)
        x0, x1 = max(cols[0] - mx, 0), min(cols[-1] + mx + 1, nx)
    else:
        y0, y1, x0, x1 = 0, ny, 0, nx
    w_mm, h_mm = (x1 - x0) * dx, (y1 - y0) * dy
    panels = []
    for z in cuts["axial"]:
        panels.append(
            (
                ct[z, y0:y1, x0:x1],
                lab[z, y0:y1, x0:x1],
                (0, w_mm, h_mm, 0),
                f"axial, slice {z + 1} of {nz}",
                "AP",
            )
        )
    y = cuts["coronal"]
    # standard z runs feet to head: reversed, the head is up
    panels.append(
        (
            ct[::-1, y, x0:x1],
            lab[::-1, y, x0:x1],
            (0, w_mm, nz * dz, 0),
            f"coronal, row {y + 1} of {ny}",
            "SI",
        )
    )
    widths = [p[2][1] / max(p[2][2], 1e-6) for p in panels]  # width / height of each
    fig = Figure(figsize=(3.2 * sum(widths) + 0.4, 3.8), dpi=dpi, facecolor="black")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, len(panels), width_ratios=widths, wspace=0.04, left=0.01, right=0.99)
    grid.update(top=0.86 if title else 0.93, bottom=0.02)
    for k, (image, mask, extent, caption, (top, bottom)) in enumerate(panels):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(
            image,
            cmap="gray",
            vmin=window[0],
            vmax=window[1],
            extent=extent,
            interpolation="bilinear",
        )
        tumor = mask == 2
        if tumor.any():
            tint = np.zeros((*tumor.shape, 4), np.float32)
            tint[tumor] = (1.0, 0.25, 0.25, 0.35)
            ax.imshow(tint, extent=extent, interpolation="nearest")
        # outlines at the voxel edges' midpoints, in mm (contour's grid is the voxel centres)
        h, w = mask.shape
        xs = (np.arange(w) + 0.5) * (extent[1] / w)
        ys = (np.arange(h) + 0.5) * (extent[2] / h)
        for values, color in (((1, 2), LIVER_COLOR), ((2,), TUMOR_COLOR)):
            inside = np.isin(mask, values)
            if inside.any() and not inside.all():
                ax.contour(xs, ys, inside.astype(np.float32), levels=[0.5], colors=color,
                           linewidths=1.0)  # fmt: skip
        ax.set_xlim(0, extent[1])
        ax.set_ylim(extent[2], 0)
        ax.set_axis_off()
        ax.set_title(caption, color="white", fontsize=8, pad=3)
        style = dict(color="#ffd54a", fontsize=8, fontweight="bold", transform=ax.transAxes)
        ax.text(0.01, 0.5, "R", ha="left", va="center", **style)
        ax.text(0.99, 0.5, "L", ha="right", va="center", **style)
        ax.text(0.5, 0.99, top, ha="center", va="top", **style)
        ax.text(0.5, 0.01, bottom, ha="center", va="bottom", **style)
    if title:
        fig.suptitle(title, color="white", fontsize=10, y=0.985)
    legend = f"green: liver outline; red: tumor; window {window[0]:g} to {window[1]:g} HU"
    fig.text(0.995, 0.005, legend, color="#bbbbbb", fontsize=6, ha="right", va="bottom")
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", facecolor="black")
    return path
