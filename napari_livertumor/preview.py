"""A quality-control picture of one segmentation: the CT with the liver and tumor outlined.

:func:`write_preview` draws three axial slices through the liver (the middle one through the
largest tumor area when there is tumor) and a coronal one through the liver's centre, turned to
the radiological view (the patient's right on the image's left, anterior up, head up), in an
abdominal window, and saves it as a PNG. A batch of ``livertumor segment --preview`` can then be
checked case by case in an image viewer before any mask is opened.

Core module: matplotlib's Agg canvas only (no pyplot, no GUI toolkit).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from .fileio import atomic_path
from .io.volume import CTVolume, Reorientation

log = logging.getLogger(__name__)

#: abdominal soft-tissue window (W 400, L 50), HU
WINDOW = (-150.0, 250.0)
LIVER_COLOR = "#39d353"
TUMOR_COLOR = "#ff4040"


#: at most this many lesions numbered in one panel (the largest sections)
MAX_NUMBERS = 12


def _number_lesions(ax, numbers: np.ndarray, extent) -> None:
    """Each lesion's number beside its section in the panel (``numbers``: the lesion map's
    slice shown; ``extent``: the panel's mm), the largest sections first."""
    from scipy import ndimage as ndi

    found = np.unique(numbers[numbers > 0])
    if not found.size:
        return
    areas = ndi.sum_labels(np.ones(numbers.shape), numbers, found)
    keep = found[np.argsort(-areas, kind="stable")][:MAX_NUMBERS]
    h, w = numbers.shape
    for n in keep:
        # beside the right edge of its largest piece in this cut, at that piece's middle (a
        # lesion's speck elsewhere in the cut took the number away from it)
        pieces, count = ndi.label(numbers == n)
        if count > 1:
            largest = 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
            rows, cols = np.nonzero(pieces == largest)
        else:
            rows, cols = np.nonzero(pieces)
        right = (cols.max() + 1.5) * extent[1] / w
        ax.text(right, (rows.mean() + 0.5) * extent[2] / h, str(int(n)), color="#ffd54a",
                fontsize=7, fontweight="bold", ha="left", va="center", clip_on=True)  # fmt: skip


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


class _Places:
    """Captions that find a shown slice again: the DICOM image number (what a PACS viewer
    shows) or the file's own slice index (the stats' ``slice``), and the position in mm."""

    def __init__(self, volume: CTVolume, turn: Reorientation, std_shape, x_mid: int) -> None:
        self.volume, self.turn, self.shape, self.x = volume, turn, std_shape, x_mid
        self.numbers = volume.meta.get("instance_numbers") or []

    def _file_index(self, zyx) -> list[float]:
        return self.turn.index_back(zyx, self.shape)

    def _lps(self, zyx) -> np.ndarray:
        z, y, x = self._file_index(zyx)
        return (self.volume.affine_lps @ np.array([x, y, z, 1.0]))[:3]

    def axial(self, z: int) -> str:
        mid = (z, self.shape[1] // 2, self.x)
        s_mm = float(self._lps(mid)[2])
        where = f"{'S' if s_mm >= 0 else 'I'} {abs(s_mm):.0f} mm"
        if self.turn.perm[0] != 0:  # the file stores no axial slices: a position only
            return f"axial at {where}"
        k = int(round(self._file_index(mid)[0]))
        if 0 <= k < len(self.numbers) and self.numbers[k] is not None:
            return f"axial, image {self.numbers[k]} ({where})"
        return f"axial, slice {k} of 0–{self.volume.shape[0] - 1} ({where})"

    def coronal(self, y: int) -> str:
        p_mm = float(self._lps((self.shape[0] // 2, y, self.x))[1])
        return f"coronal at {'P' if p_mm >= 0 else 'A'} {abs(p_mm):.0f} mm"


def _matplotlib_config_dir() -> None:
    """Where matplotlib keeps its font cache, when the home folder cannot hold it (a compute
    node's read-only home): a private temporary folder, quietly. Matplotlib made one itself,
    with two warnings on every --preview run and its font-cache note."""
    import logging
    import os
    import sys
    import tempfile

    if "matplotlib" in sys.modules or os.environ.get("MPLCONFIGDIR"):
        return
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # "generated new fontManager"
    # (compute nodes' read-only homes are Linux's; elsewhere matplotlib picks among folders
    # of its own, and one made here would move its settings for every program)
    if not sys.platform.startswith(("linux", "freebsd")):
        return
    home = os.path.expanduser("~")
    folders = [  # its settings' folder and its cache's (the font list), as it finds them
        os.path.join(
            os.environ.get(f"XDG_{kind}_HOME") or os.path.join(home, f".{kind.lower()}"),
            "matplotlib",
        )
        for kind in ("CONFIG", "CACHE")
    ]
    try:
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
        if all(os.access(folder, os.W_OK) for folder in folders):
            return
    except OSError:
        pass
    import atexit
    import shutil

    folder = tempfile.mkdtemp(prefix="livertumor-matplotlib-")
    atexit.register(shutil.rmtree, folder, True)  # (matplotlib's own fallback goes at exit too)
    os.environ["MPLCONFIGDIR"] = folder


#: families tried first for a title's characters matplotlib's own font lacks (CJK mostly: a
#: patient folder "患者_山田太郎"), by the start of their names; then every installed font
FALLBACK_FONTS = (
    "Noto Sans CJK JP", "Noto Sans JP", "Source Han Sans", "IPAexGothic", "IPAGothic",
    "TakaoGothic", "VL Gothic", "Noto Sans CJK", "Noto Sans SC", "Noto Sans TC", "Noto Sans KR",
    "WenQuanYi", "Droid Sans Fallback", "Yu Gothic", "Meiryo", "MS Gothic", "MS PGothic",
    "Microsoft YaHei", "Microsoft JhengHei", "SimHei", "Malgun Gothic", "Hiragino Sans",
    "Hiragino Kaku Gothic", "PingFang", "Apple SD Gothic Neo", "Arial Unicode MS", "Noto Sans",
)  # fmt: skip

#: a character's fallback family, or None where no installed font has it (the fonts installed
#: do not change during a run: each font is opened once for a character at most)
_FONT_FOR: dict[str, str | None] = {}
#: whether this process has said that a title's characters cannot be drawn (once a run: a
#: batch of Japanese patients would say it for every case)
_SAID_UNDRAWABLE: list[bool] = []


def _has_glyphs(path: str, chars) -> set[str]:
    """The ``chars`` the font file ``path`` has a glyph for (none when it cannot be read)."""
    from matplotlib.ft2font import FT2Font

    try:  # (a face of a .ttc collection by its index, where matplotlib gives one: 3.11)
        index = getattr(path, "face_index", 0)
        font = FT2Font(str(path), face_index=index) if index else FT2Font(str(path))
        return {c for c in chars if font.get_char_index(ord(c))}
    except (OSError, RuntimeError, ValueError, TypeError):
        return set()


def _candidate_fonts() -> list[str]:
    """The installed font families with an upright face of normal weight (what a title is
    drawn with: matplotlib warns of any other it falls back to), :data:`FALLBACK_FONTS` first;
    never the Last Resort font (matplotlib's boxes, "covering" every character)."""
    from matplotlib import font_manager

    names = {
        entry.name
        for entry in font_manager.fontManager.ttflist
        if str(entry.weight).lower() in ("400", "normal", "regular", "book")
        and entry.style == "normal"
        and "lastresort" not in Path(entry.fname).name.lower().replace("-", "").replace("_", "")
    }

    def order(name: str):
        first = [k for k, start in enumerate(FALLBACK_FONTS) if name.startswith(start)]
        return (first[0] if first else len(FALLBACK_FONTS), name)

    return sorted(names, key=order)


def _title_fonts(text: str) -> tuple[list[str] | None, str]:
    """How to draw ``text``: the font families (matplotlib's own first, then installed ones
    that have the characters it lacks; None when it has them all) and the characters no
    installed font has, in their order in ``text``."""
    from matplotlib import font_manager, rcParams

    own = font_manager.findfont(font_manager.FontProperties())
    wanted = {c for c in text if c not in "\n\r"}
    lacking = wanted - _has_glyphs(own, wanted)
    if not lacking:
        return None, ""
    unknown = {c for c in lacking if c not in _FONT_FOR}
    if unknown:  # (the candidates opened one by one, until every character is found)
        for name in _candidate_fonts():
            try:  # (the family's file a title is drawn with)
                path = font_manager.findfont(
                    font_manager.FontProperties(family=name), fallback_to_default=False
                )
            except ValueError:
                continue
            for c in _has_glyphs(path, unknown):
                _FONT_FOR[c] = name
                unknown.discard(c)
            if not unknown:
                break
        _FONT_FOR.update(dict.fromkeys(unknown))
    found = [_FONT_FOR[c] for c in dict.fromkeys(text) if c in lacking and _FONT_FOR[c]]
    missing = "".join(c for c in dict.fromkeys(text) if c in lacking and not _FONT_FOR[c])
    families = [*rcParams["font.family"], *dict.fromkeys(found)] if found else None
    return families, missing


def _drawable_title(title: str) -> tuple[str, list[str] | None]:
    """``title`` as drawn (each character no installed font has as "?") and the font families
    to draw it with (None: matplotlib's own); says once a run when characters are replaced."""
    try:
        families, missing = _title_fonts(title)
    except Exception:  # (a font list matplotlib cannot read costs the title, not the preview)
        log.debug("preview: the title's fonts could not be looked up", exc_info=True)
        return title, None
    if missing:
        level = logging.DEBUG if _SAID_UNDRAWABLE else logging.WARNING
        _SAID_UNDRAWABLE.append(True)
        log.log(
            level,
            "the preview's title has characters no installed font can draw: %s (drawn as "
            "'?'; a font that has them, e.g. Noto Sans CJK for Chinese, Japanese and Korean, "
            "draws them; said once)",
            missing,
        )
        title = "".join("?" if c in missing else c for c in title)
    return title, families


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
    _matplotlib_config_dir()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = np.asarray(labels)
    if labels.shape != volume.shape:
        raise ValueError(f"labels {labels.shape} are not on the CT's grid {volume.shape}")
    turn = Reorientation.to_standard(volume.direction)
    ct = turn.apply(volume.array)
    lab = turn.apply(labels)
    from .stats import lesion_id_map

    # each lesion's number in the stats, written beside it (lesion 3 of the table found here)
    ids = turn.apply(lesion_id_map(labels, affine_lps=volume.affine_lps))
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
    place = _Places(volume, turn, ct.shape, (x0 + x1) // 2)
    panels = []
    for z in cuts["axial"]:
        panels.append(
            (ct[z, y0:y1, x0:x1], lab[z, y0:y1, x0:x1], (0, w_mm, h_mm, 0), place.axial(z), "AP",
             ids[z, y0:y1, x0:x1])
        )  # fmt: skip
    y = cuts["coronal"]
    # standard z runs feet to head: reversed, the head is up
    panels.append(
        (ct[::-1, y, x0:x1], lab[::-1, y, x0:x1], (0, w_mm, nz * dz, 0), place.coronal(y), "SI",
         ids[::-1, y, x0:x1])
    )  # fmt: skip
    # a short scan's coronal cut is a thin strip: shown in a frame at least a third as high as
    # wide (black below), so the picture stays a picture
    frames = [max(p[2][2], p[2][1] / 3) for p in panels]
    widths = [p[2][1] / f for p, f in zip(panels, frames, strict=True)]  # width / height
    fig = Figure(figsize=(3.9 * sum(widths) + 0.4, 4.6), dpi=dpi, facecolor="black")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, len(panels), width_ratios=widths, wspace=0.04, left=0.01, right=0.99)
    grid.update(top=0.86 if title else 0.93, bottom=0.02)
    for k, (image, mask, extent, caption, (top, bottom), numbers) in enumerate(panels):
        frame = frames[k]
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
        # outlines at the voxel edges' midpoints, in mm (contour's grid is the voxel centres),
        # around a border of one voxel, so an organ cut by the image's edge is outlined closed
        h, w = mask.shape
        xs = (np.arange(-1, w + 1) + 0.5) * (extent[1] / w)
        ys = (np.arange(-1, h + 1) + 0.5) * (extent[2] / h)
        for values, color in (((1, 2), LIVER_COLOR), ((2,), TUMOR_COLOR)):
            inside = np.pad(np.isin(mask, values), 1)
            if inside.any():
                ax.contour(xs, ys, inside.astype(np.float32), levels=[0.5], colors=color,
                           linewidths=1.0)  # fmt: skip
        _number_lesions(ax, numbers, extent)
        ax.set_xlim(0, extent[1])
        ax.set_ylim(frame, 0)
        ax.set_axis_off()
        ax.set_title(caption, color="white", fontsize=8, pad=3)
        style = dict(color="#ffd54a", fontsize=8, fontweight="bold", transform=ax.transAxes)
        # on the image, not on the black below a short scan's strip (axes' y runs up)
        shown = min(extent[2] / frame, 1.0)
        ax.text(0.01, 1 - shown / 2, "R", ha="left", va="center", **style)
        ax.text(0.99, 1 - shown / 2, "L", ha="right", va="center", **style)
        ax.text(0.5, 0.99, top, ha="center", va="top", **style)
        ax.text(0.5, 1 - shown + 0.01, bottom, ha="center", va="bottom", **style)
    if title:
        # in a font that has its characters (a CJK one where the title holds a patient's
        # Japanese name), or with those none has drawn as "?": matplotlib drew boxes there and
        # warned once per character ("Glyph 24739 ... missing from font(s) DejaVu Sans.")
        title, families = _drawable_title(title)
        fig.suptitle(
            title, color="white", fontsize=10, y=0.985, **({"family": families} if families else {})
        )
    legend = (
        f"green: liver outline; red: tumor, numbered as in the stats; window {window[0]:g} to "
        f"{window[1]:g} HU"
    )
    fig.text(0.995, 0.005, legend, color="#bbbbbb", fontsize=6, ha="right", va="bottom")
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp, warnings.catch_warnings():
        # (any glyph still missing is a box in the picture, not a log line per character)
        warnings.filterwarnings("ignore", r"Glyph \d+ .*missing from font", UserWarning)
        fig.savefig(tmp, format="png", facecolor="black")
    return path
