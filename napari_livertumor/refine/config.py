"""The refinement settings shared by the CLI (``--refine-config FILE``), the GUI and the tests.

A :class:`RefineConfig` may hold any values (a slider, a JSON file or a test can put anything in
it); :meth:`RefineConfig.validated` returns a copy with every value brought into its allowed range
and the list of notes that say, in words a user understands, what was changed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..fileio import atomic_write_text, not_utf8_message, parse_user_json, read_user_text

METHODS = ("chan_vese", "geodesic")

#: name -> (low, high) inclusive range of the numeric fields.
RANGES: dict[str, tuple[float, float]] = {
    "iterations": (0, 200),
    "smoothing": (0, 4),
    "lambda1": (0.01, 10.0),
    "lambda2": (0.01, 10.0),
    "balloon": (-5.0, 5.0),
    "alpha": (1.0, 10000.0),
    "sigma": (0.1, 10.0),
    "roi_margin_mm": (0.0, 100.0),
    "max_shift_mm": (0.0, 50.0),
    "min_contrast": (0.0, 10.0),
    "threshold": (0.0, 1.0),
}
_INT_FIELDS = ("iterations", "smoothing")
#: the CT values a window may span (int16 HU as stored by scanners)
HU_LIMITS = (-1024.0, 3071.0)


@dataclass
class RefineConfig:
    """Parameters of the active-contour refinement of a tumor mask.

    Parameters
    ----------
    method : {"chan_vese", "geodesic"}
        Morphological Chan-Vese (region means) or morphological geodesic active contour
        (edges of the inverse Gaussian gradient).
    iterations : int
        Number of contour updates (0 leaves the mask as it is).
    smoothing : int
        Curvature smoothing steps per update (0-4); more gives rounder contours.
    lambda1, lambda2 : float
        Chan-Vese weights of the inside and outside region; ``lambda1 < lambda2`` lets the
        tumor grow, ``lambda1 > lambda2`` makes it shrink.
    balloon : float
        Geodesic balloon force: > 0 inflates, < 0 deflates the contour where edges are weak.
    threshold : "auto" or float
        Geodesic stopping threshold on the inverse-gradient image in [0, 1].
    alpha : float
        Steepness of the inverse Gaussian gradient (geodesic only).
    sigma : float
        Gaussian scale in mm: the gradient scale (geodesic) or the denoising applied
        before the region competition (Chan-Vese).
    hu_window : (float, float)
        HU range mapped to [0, 1] before the contour sees the CT.
    roi_margin_mm : float
        Margin around each lesion's bounding box; only that box is processed.
    max_shift_mm : float
        The contour moves at most this far (mm) from the starting mask, in or out; 0 = no limit.
    min_contrast : float
        Lesions whose contrast-to-noise ratio against the liver ring around them is lower are
        kept unchanged (their boundary cannot be seen in the CT); 0 refines every lesion.
    """

    method: str = "chan_vese"
    iterations: int = 6
    smoothing: int = 0
    lambda1: float = 1.0
    lambda2: float = 1.0
    balloon: float = 0.0
    threshold: float | str = "auto"
    alpha: float = 1000.0
    sigma: float = 1.5
    hu_window: tuple[float, float] = (-100.0, 250.0)
    roi_margin_mm: float = 10.0
    max_shift_mm: float = 5.0
    min_contrast: float = 1.0

    # ------------------------------------------------------------------ checking
    def validated(self) -> tuple[RefineConfig, list[str]]:
        """A copy with every value in range, and the notes saying what was changed.

        Returns
        -------
        cfg : RefineConfig
        notes : list of str
            Empty when nothing had to change.
        """
        notes: list[str] = []
        changes: dict[str, Any] = {}
        default = RefineConfig()

        method = str(self.method).strip().lower().replace("-", "_")
        if method in ("chanvese", "cv"):
            method = "chan_vese"
        if method in ("gac", "geodesic_active_contour"):
            method = "geodesic"
        if method not in METHODS:
            notes.append(f"method {self.method!r} unknown; using {default.method!r}")
            method = default.method
        changes["method"] = method

        for name, (lo, hi) in RANGES.items():
            if name == "threshold":
                continue
            value = getattr(self, name)
            changes[name] = _clamp_number(name, value, lo, hi, getattr(default, name), notes)

        thr = self.threshold
        if isinstance(thr, str) and thr.strip().lower() == "auto":
            changes["threshold"] = "auto"
        else:
            lo, hi = RANGES["threshold"]
            changes["threshold"] = _clamp_number("threshold", thr, lo, hi, "auto", notes)

        changes["hu_window"] = _check_window(self.hu_window, default.hu_window, notes)
        return replace(self, **changes), notes

    def clamp(self) -> RefineConfig:
        """The in-range copy without the notes (see :meth:`validated`)."""
        return self.validated()[0]

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hu_window"] = list(self.hu_window)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path | None = None) -> RefineConfig:
        """Build from a mapping; unknown keys are an :class:`InputError` naming them."""
        if not isinstance(data, dict):
            raise InputError(source, "a refine config must be a JSON object of settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                source,
                f"unknown refine setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            )
        kwargs = dict(data)
        if "hu_window" in kwargs:
            win = kwargs["hu_window"]
            if not isinstance(win, (list, tuple)) or len(win) != 2:
                raise InputError(source, "hu_window must be a pair [low, high] of HU values")
            kwargs["hu_window"] = tuple(win)
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path) -> RefineConfig:
        """Read a JSON file (the CLI's ``--refine-config FILE``); keys not given keep defaults."""
        path = Path(path)
        try:
            text = read_user_text(path)  # a BOM (Notepad's UTF-8), UTF-16 (PowerShell) are fine
        except OSError as exc:
            raise InputError(path, f"cannot read the refine config: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise InputError(path, not_utf8_message(exc)) from exc
        try:
            data = parse_user_json(text)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"not valid JSON (line {exc.lineno}): {exc.msg}") from exc
        return cls.from_dict(data, source=path)

    def save(self, path: str | Path) -> Path:
        """Write as JSON atomically (temporary file in the same folder, then rename)."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


#: fields whose 0 turns a limit or check off: a negative value clamped to it does the opposite
#: of what a stricter setting meant, and the note says so
_ZERO_IS_OFF = {
    "max_shift_mm": "no limit on how far the contour moves",
    "min_contrast": "no contrast check",
}


def as_refine_config(value: Any) -> RefineConfig:
    """``value`` as a :class:`RefineConfig`: one as is, ``None`` the defaults, a dict of its
    fields, or a JSON file's path; anything else a TypeError naming what is taken."""
    if value is None:
        return RefineConfig()
    if isinstance(value, RefineConfig):
        return value
    if isinstance(value, dict):  # the JSON a --refine-config file holds
        return RefineConfig.from_dict(value)
    if isinstance(value, (str, Path)):  # that file (a script's shortcut)
        return RefineConfig.load(value)
    raise TypeError(
        "a refine config is a RefineConfig, a dict of its fields or a JSON file's path; "
        f"got {type(value).__name__}"
    )


def _clamp_number(name: str, value: Any, lo: float, hi: float, fallback: Any, notes: list[str]):
    is_int = name in _INT_FIELDS
    if isinstance(value, bool):  # JSON true/false: not a number, though Python counts it one
        notes.append(f"{name} {value!r} is not a number; using {fallback}")
        return fallback
    try:
        number = float(value)
    except (TypeError, ValueError):
        notes.append(f"{name} {value!r} is not a number; using {fallback}")
        return fallback
    if not math.isfinite(number):
        notes.append(f"{name} {value!r} is not finite; using {fallback}")
        return fallback
    clamped = min(max(number, lo), hi)
    if is_int:
        clamped = int(round(clamped))
        lo, hi = int(lo), int(hi)
    if clamped != number:
        if number < lo or number > hi:
            off = f" ({_ZERO_IS_OFF[name]})" if clamped == 0 and name in _ZERO_IS_OFF else ""
            notes.append(f"{name} {value} out of range [{lo}, {hi}]; clamped to {clamped}{off}")
        elif is_int:
            notes.append(f"{name} {value} must be a whole number; rounded to {clamped}")
    return clamped


def _check_window(window: Any, fallback: tuple[float, float], notes: list[str]):
    try:
        lo, hi = (float(v) for v in window)
    except (TypeError, ValueError):
        notes.append(f"hu_window {window!r} is not a pair of numbers; using {fallback}")
        return fallback
    if not (math.isfinite(lo) and math.isfinite(hi)):
        notes.append(f"hu_window {window!r} is not finite; using {fallback}")
        return fallback
    if lo > hi:
        notes.append(f"hu_window low {lo:g} above high {hi:g}; swapped")
        lo, hi = hi, lo
    c_lo, c_hi = max(lo, HU_LIMITS[0]), min(hi, HU_LIMITS[1])
    if (c_lo, c_hi) != (lo, hi):
        notes.append(f"hu_window clamped to [{c_lo:g}, {c_hi:g}] HU")
        lo, hi = c_lo, c_hi
    if hi - lo < 10:
        notes.append(f"hu_window [{lo:g}, {hi:g}] narrower than 10 HU; using {fallback}")
        return fallback
    return (lo, hi)
