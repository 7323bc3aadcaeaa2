"""The CT volume type shared by every part of the package.

Conventions (the same as SimpleITK's, so results can be compared voxel for voxel):

* ``array`` is indexed ``(z, y, x)``: ``z`` the slice, ``y`` the row, ``x`` the column.
* ``spacing`` is ``(dz, dy, dx)`` in mm, in the same order as the array axes.
* ``origin`` is the DICOM patient (LPS) position of voxel ``(0, 0, 0)`` in mm, as ``(x, y, z)``
  world coordinates (it is a point, not an index).
* ``direction`` is a 3×3 matrix whose *columns* are the unit LPS vectors along the array's
  ``x``, ``y`` and ``z`` index axes (SimpleITK's ``GetDirection`` reshaped to 3×3).
  A sheared grid (a gantry-tilted series) is the one exception: its slice axis is not normal
  to the slices, ``spacing[0]`` is the distance *between the slice planes* (so voxel volumes
  and the models' resampling are true; distances measured on the grid, such as a lesion's
  longest diameter, ignore the in-plane offset between slices) and the ``z`` column is the
  step from one slice to the next divided by it, of length 1 / cos(tilt). ``affine_lps`` is
  exact either way.

``affine_lps`` maps an index ``(x, y, z, 1)`` to LPS mm; ``affine`` maps the same index to RAS
mm and is what NIfTI files carry (the array is written transposed to ``(x, y, z)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def checked_spacing(spacing) -> tuple[float, float, float]:
    """``spacing`` as three positive, finite floats ``(dz, dy, dx)`` in mm, else ValueError
    (a text, None, two values, a zero: each said, not left to numpy)."""
    try:
        items = np.ravel(np.asarray(spacing, dtype=object))
        if any(isinstance(s, (bool, np.bool_, str, bytes)) for s in items):  # True: 1 mm
            raise TypeError
        values = tuple(float(s) for s in items)
    except (TypeError, ValueError):
        raise ValueError(f"spacing is (dz, dy, dx) in mm: 3 numbers; got {spacing!r}") from None
    if len(values) != 3:
        raise ValueError(f"spacing is (dz, dy, dx) in mm: 3 values; got {values}")
    if any(s <= 0 or not np.isfinite(s) for s in values):
        raise ValueError(f"spacing must be positive and finite; got {values}")
    return values  # type: ignore[return-value]


def spacing_text(spacing, sep: str = "×") -> str:
    """``(dz, dy, dx)`` said with its parts named, as a reader says it: ``0.7×0.7 mm pixels,
    2.5 mm slices`` (bare numbers were printed slice first in one place and x, y, z in
    another: which was the slice spacing could not be told). ``dy`` first: rows, then
    columns, as DICOM's PixelSpacing."""
    dz, dy, dx = (float(s) for s in spacing)
    return f"{dy:.3g}{sep}{dx:.3g} mm pixels, {dz:.3g} mm slices"


def _rounded(values, digits: int) -> tuple[float, ...]:
    return tuple(round(float(v), digits) + 0.0 for v in values)  # (+ 0.0: no -0.0)


def _source_name(meta: dict[str, Any]) -> str:
    """The last part of the file or folder a volume was read from (``meta["source"]``), not
    its whole path; "" when none is known."""
    source = str(meta.get("source") or "").rstrip("/\\")
    return source.replace("\\", "/").rsplit("/", 1)[-1]


#: how far (mm) a ground truth's grid may lie from its CT's at any corner voxel and still be
#: read as on it (header rounding; a tenth of the finest CT voxel)
LABEL_GRID_MM = 0.1


@dataclass
class CTVolume:
    """A CT image in Hounsfield units with its geometry and source metadata.

    Parameters
    ----------
    array : ndarray, shape (Z, Y, X)
        HU values, stored as int16 (other dtypes are accepted for label maps).
    spacing : tuple of float
        ``(dz, dy, dx)`` voxel size in mm.
    origin : tuple of float
        LPS world position ``(x, y, z)`` of voxel ``(0, 0, 0)``.
    direction : ndarray, shape (3, 3)
        Columns are the LPS unit vectors of the x, y, z index axes.
    meta : dict
        Source metadata: ``patient_id``, ``study_uid``, ``series_uid``, ``description``,
        ``modality``, ``phase``, ``source`` (path), ``sop_instance_uids`` (per slice, for DICOM
        SEG export), ``warnings`` (list of str) and anything a reader wants to keep.
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise ValueError(f"a CT volume is 3D (z, y, x); got shape {self.array.shape}")
        self.spacing = checked_spacing(self.spacing)  # type: ignore[assignment]
        try:
            self.origin = tuple(float(o) for o in np.ravel(self.origin))  # type: ignore[assignment]
        except (TypeError, ValueError):
            raise ValueError(
                f"origin is the (x, y, z) LPS position in mm of voxel (0, 0, 0): 3 numbers; "
                f"got {self.origin!r}"
            ) from None
        if len(self.origin) != 3 or not np.all(np.isfinite(self.origin)):
            raise ValueError(
                f"origin is the (x, y, z) LPS position in mm of voxel (0, 0, 0): 3 finite "
                f"values; got {self.origin}"
            )
        self.direction = _checked_direction(self.direction)

    def __repr__(self) -> str:
        # short, and without the patient: the default printed the whole array and ``meta``
        # (patient name and ID, study date, every file's path and UID), which a notebook keeps
        return (
            f"{type(self).__name__}(shape={self.shape}, dtype={self.array.dtype}, "
            f"spacing={_rounded(self.spacing, 4)}, origin={_rounded(self.origin, 1)}, "
            f"source={_source_name(self.meta)!r}, "
            f"warnings={len(self.meta.get('warnings') or [])})"
        )

    # ----------------------------------------------------------------- geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def affine_lps(self) -> np.ndarray:
        """4×4 matrix mapping index ``(x, y, z, 1)`` to LPS mm."""
        dz, dy, dx = self.spacing
        aff = np.eye(4)
        aff[:3, :3] = self.direction @ np.diag([dx, dy, dz])
        aff[:3, 3] = self.origin
        return aff

    @property
    def affine(self) -> np.ndarray:
        """4×4 NIfTI (RAS) affine for the array transposed to ``(x, y, z)``."""
        return _LPS_TO_RAS @ self.affine_lps

    @property
    def voxel_volume_ml(self) -> float:
        """|det| of the grid: the spacings' product, unless the in-plane axes are skewed
        (a registration output), where that product overstates it by 1/cos(skew)."""
        return abs(float(np.linalg.det(self.affine_lps[:3, :3]))) / 1000.0

    @property
    def napari_scale(self) -> tuple[float, float, float]:
        """Layer ``scale`` for napari: the spacing, in array order."""
        return tuple(self.spacing)  # type: ignore[return-value]

    @property
    def napari_translate(self) -> tuple[float, float, float]:
        """Layer ``translate`` for napari: the origin along the array axes, in array order.

        For an oblique volume this is the origin projected on the index axes; CT and label
        layers built from the same volume always share it, so overlays line up.
        """
        unit = self.direction / np.linalg.norm(self.direction, axis=0)  # sheared z: not unit
        proj = unit.T @ np.asarray(self.origin)  # components along x, y, z axes
        return (float(proj[2]), float(proj[1]), float(proj[0]))

    def with_array(self, array: np.ndarray, **meta: Any) -> CTVolume:
        """A volume on the same grid holding ``array`` (e.g. a label map)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} != volume shape {self.array.shape}")
        return replace(self, array=array, meta={**self.meta, **meta})

    def same_grid(self, other: CTVolume, atol: float = 1e-3) -> bool:
        """True when ``other`` has the same shape and affine (to ``atol`` mm)."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol)

    def fits_labels(self, labels: CTVolume) -> bool:
        """Do ``labels`` lie on this grid, as a ground truth must: the same shape, and every
        corner voxel within :data:`LABEL_GRID_MM` of this grid's (the one rule of the Load
        panel, training, evaluate and convert: they had three tolerances, so a label map 0.05
        mm off loaded in napari and was refused by training)."""
        if self.shape != labels.shape:
            return False
        shape = self.shape[::-1]
        corners = np.array(
            [[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
             for k in (0, shape[2] - 1)]
        ).T  # fmt: skip
        apart = np.linalg.norm((self.affine @ corners - labels.affine @ corners)[:3], axis=0)
        return float(apart.max()) <= LABEL_GRID_MM

    def to_standard(self) -> tuple[CTVolume, Reorientation]:
        """This volume turned to the standard orientation (see :class:`Reorientation`).

        Returns the turned volume (the same object when it is already standard) and the
        :class:`Reorientation` that maps results back. World geometry is unchanged: every voxel
        keeps its world position. Per-slice DICOM references follow a reversed slice axis and
        are dropped when the slice axis changes.
        """
        ro = Reorientation.to_standard(self.direction)
        return self.turned(ro), ro

    def turned(self, ro: Reorientation) -> CTVolume:
        """This volume with its array turned by ``ro`` (axis permutation and flips), on the
        same voxels in the world (the same object when ``ro`` is the identity).

        Per-slice DICOM references follow a reversed slice axis and are dropped when the slice
        axis changes.
        """
        if ro.identity:
            return self
        index_map = np.eye(4)  # standard (x, y, z) index -> input (x, y, z) index
        std_shape = ro.apply_shape(self.shape)
        for b, a in enumerate(ro.perm):
            row, col = 2 - a, 2 - b
            index_map[row, :] = 0
            index_map[row, col] = -1.0 if ro.flip[b] else 1.0
            index_map[row, 3] = std_shape[b] - 1 if ro.flip[b] else 0.0
        meta = dict(self.meta)
        # one per slice (``frame_numbers``: an Enhanced CT's frame at each z)
        for key in ("sop_instance_uids", "files", "instance_numbers", "frame_numbers"):
            per_slice = meta.pop(key, None)
            if per_slice is not None and ro.perm[0] == 0:
                meta[key] = list(per_slice)[::-1] if ro.flip[0] else list(per_slice)
        return CTVolume.from_affine(
            ro.apply(self.array), _LPS_TO_RAS @ self.affine_lps @ index_map, meta
        )

    def displayed(self) -> CTVolume:
        """This volume as a viewer should show it: turned to the standard orientation.

        A RAS-stored or transposed NIfTI otherwise appears mirrored or upside down (napari
        shows voxels as stored). The turned volume remembers the file's own grid
        (``meta["stored_turn"]``, ``meta["stored_grid"]``), so :meth:`to_stored` can put masks
        drawn on it back in the file's voxel order. A standard volume is returned as it is.
        """
        turned, turn = self.to_standard()
        if turn.identity:
            return self
        turned.meta["stored_turn"] = turn
        # the stored grid's geometry, without a copy of its voxels
        turned.meta["stored_grid"] = replace(
            self, array=np.broadcast_to(np.uint8(0), self.shape), meta=dict(self.meta)
        )
        return turned

    @property
    def file_meta(self) -> dict:
        """The metadata of the files' own grid: per-slice DICOM references (``files``,
        ``sop_instance_uids``) survive there when a volume shown turned lost them (a sagittal
        or coronal series turned to axial changes its slice axis)."""
        grid = self.meta.get("stored_grid")
        return grid.meta if grid is not None else self.meta

    def to_stored(self, array: np.ndarray) -> tuple[np.ndarray, CTVolume]:
        """``array`` on this grid, and the grid it is written on: the file's own grid for a
        volume from :meth:`displayed` (the array turned back), else this one."""
        turn = self.meta.get("stored_turn")
        if turn is None:
            return array, self
        return turn.undo(np.asarray(array)), self.meta["stored_grid"]

    @classmethod
    def from_affine(
        cls, array: np.ndarray, affine_ras: np.ndarray, meta: dict | None = None
    ) -> CTVolume:
        """Build from a ``(z, y, x)`` array and a NIfTI RAS affine of its ``(x, y, z)`` transpose."""
        lps = np.linalg.inv(_LPS_TO_RAS) @ np.asarray(affine_ras, dtype=float)
        m = lps[:3, :3]
        zooms = np.linalg.norm(m, axis=0)  # dx, dy, dz
        if np.any(zooms <= 0):
            raise ValueError("affine has a zero-length axis")
        # the slice spacing is the distance between slice planes: for a sheared (gantry-tilted)
        # affine, shorter than the slice axis' length; the voxel volume is then |det|
        plane = float(np.linalg.norm(np.cross(m[:, 0], m[:, 1])))
        if plane > 0:
            zooms[2] = min(zooms[2], abs(float(np.linalg.det(m))) / plane)
        if zooms[2] <= 0:
            raise ValueError("affine has a zero-length axis")
        direction = m / zooms
        return cls(
            array=array,
            spacing=(zooms[2], zooms[1], zooms[0]),
            origin=tuple(lps[:3, 3]),
            direction=direction,
            meta=dict(meta or {}),
        )


#: Patient directions (negative, positive) of the LPS world axes, for orientation codes.
_LPS_LABELS = (("R", "L"), ("A", "P"), ("I", "S"))


@dataclass(frozen=True)
class Reorientation:
    """A turn of a ``(z, y, x)`` array to the standard orientation, and back.

    Standard is what DICOM axial series give and what the models were trained on: the ``x``
    index axis runs to the patient's left, ``y`` to posterior and ``z`` to superior (LPS,
    direction ≈ identity). Files stored otherwise (a RAS NIfTI, a transposed or feet-first
    volume) are turned by axis permutation and flips only (no resampling), the nearest axes for
    an oblique one; results are turned back so they land on the input's own grid.

    ``perm[b]`` is the input array axis that becomes standard axis ``b``; ``flip[b]`` says that
    axis is then reversed. ``codes`` names where the input's ``x, y, z`` index axes point
    (``"LPS"`` for a standard volume, ``"RAS"`` for a RAS-stored NIfTI).
    """

    perm: tuple[int, int, int] = (0, 1, 2)
    flip: tuple[bool, bool, bool] = (False, False, False)
    codes: str = "LPS"

    @classmethod
    def to_standard(cls, direction: np.ndarray) -> Reorientation:
        """The turn for a volume whose index axes point along ``direction``'s columns (LPS)."""
        from nibabel.orientations import io_orientation, ornt2axcodes

        aff = np.eye(4)
        aff[:3, :3] = np.asarray(direction, dtype=float)
        ornt = io_orientation(aff)  # per index axis (x, y, z): nearest world axis and its sign
        perm, flip = [0, 1, 2], [False, False, False]
        for i, (w, sign) in enumerate(ornt):
            perm[2 - int(w)] = 2 - i  # index axis i is array axis 2 - i
            flip[2 - int(w)] = bool(sign < 0)
        codes = "".join(ornt2axcodes(ornt, labels=_LPS_LABELS))
        return cls(tuple(perm), tuple(flip), codes)  # type: ignore[arg-type]

    @property
    def identity(self) -> bool:
        return self.perm == (0, 1, 2) and not any(self.flip)

    def apply_shape(self, shape) -> tuple[int, int, int]:
        return tuple(int(shape[a]) for a in self.perm)  # type: ignore[return-value]

    def apply_spacing(self, spacing) -> tuple[float, float, float]:
        return tuple(float(spacing[a]) for a in self.perm)  # type: ignore[return-value]

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Input-oriented array → standard (a contiguous copy; the array itself if identity)."""
        if self.identity:
            return array
        out = np.transpose(array, self.perm)
        flips = tuple(b for b in range(3) if self.flip[b])
        return np.ascontiguousarray(np.flip(out, flips) if flips else out)

    def undo(self, array: np.ndarray) -> np.ndarray:
        """Standard-oriented array → the input's orientation (inverse of :meth:`apply`)."""
        if self.identity:
            return array
        flips = tuple(b for b in range(3) if self.flip[b])
        out = np.flip(array, flips) if flips else array
        return np.ascontiguousarray(np.transpose(out, np.argsort(self.perm)))

    def index_back(self, zyx, std_shape) -> list[float]:
        """A (possibly fractional) standard-grid voxel index → the input grid's index."""
        out = [0.0, 0.0, 0.0]
        for b, a in enumerate(self.perm):
            v = float(zyx[b])
            out[a] = std_shape[b] - 1 - v if self.flip[b] else v
        return out


#: how far a direction's in-plane axes may be from unit length and be taken as rounding
#: (DICOM's ImageOrientationPatient is written with a few decimals) and normalised
_DIRECTION_TOL = 0.01
#: the longest slice-axis column a sheared grid has: 1 / cos(60°), a gantry tilt beyond any
#: scanner's (about 30°)
_MAX_SLICE_COLUMN = 2.0


def _checked_direction(direction) -> np.ndarray:
    """``direction`` as a 3×3 float matrix whose x and y columns are unit vectors (normalised
    from rounding) and whose z column is the slice axis: unit length, or longer on a
    gantry-tilted, sheared grid whose slice step is one plane along the normal (up to 2, and
    exactly one plane: ``diag(1, 1, 2)`` is a slice thickness, refused). A
    skew between the axes (a registration's output) is kept. Refused: a matrix holding the
    voxel sizes (an affine's 3×3, which would count them twice in every mL), or axes that
    (nearly) lie in one plane."""
    try:
        d = np.array(direction, dtype=float).reshape(3, 3)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"direction must be a 3×3 matrix; got {direction!r}") from exc
    if not np.all(np.isfinite(d)):
        raise ValueError(f"direction must be finite; got {d.tolist()}")
    lengths = np.linalg.norm(d, axis=0)
    hint = (
        "direction's columns are the unit vectors of the x, y, z index axes (the voxel size "
        "goes in spacing); got column lengths "
        f"{np.round(lengths, 4).tolist()}. From an affine, use CTVolume.from_affine, or "
        "divide its columns by the voxel sizes"
    )
    if (
        abs(lengths[0] - 1) > _DIRECTION_TOL
        or abs(lengths[1] - 1) > _DIRECTION_TOL
        or not 1 - _DIRECTION_TOL <= lengths[2] <= _MAX_SLICE_COLUMN
    ):
        raise ValueError(hint)
    x, y = d[:, 0] / lengths[0], d[:, 1] / lengths[1]
    normal = np.cross(x, y)
    if np.linalg.norm(normal) < 0.5 or abs(np.dot(d[:, 2], normal)) / lengths[
        2
    ] < 0.5 * np.linalg.norm(normal):
        raise ValueError(
            "direction's x, y and z axes (nearly) lie in one plane (more than 30° of skew "
            f"between them): {np.round(d, 4).tolist()}"
        )
    # a longer slice column is a tilted grid's only when it steps one plane along the normal:
    # a slice thickness in it (diag(1, 1, 2)) passed, and every volume counted twice
    along = abs(float(np.dot(d[:, 2], normal / np.linalg.norm(normal))))
    if lengths[2] > 1 + _DIRECTION_TOL and abs(along - 1) > _DIRECTION_TOL:
        raise ValueError(hint)
    d[:, 0], d[:, 1] = x, y
    return d
