"""Enhanced CT (multi-frame) series: read through highdicom into the classic reader's grid.

An Enhanced CT Image Storage or Legacy Converted Enhanced CT Image Storage file holds a whole
stack of slices as frames, each placed by its own functional groups. highdicom
(``Image.get_volume``) checks that the frames form one regular stack (one orientation, one
position per frame, even spacing, no tilt) and applies each frame's rescale to HU; here the
result is put on the grid :func:`~napari_livertumor.io.dicom.read_dicom_series` gives the same
slices stored one file each: slices sorted along the slice normal (``z`` increasing along
row × column), int16 HU, the same origin and direction. A series split into several such
files (some scanners write one per few hundred frames) is read file by file and stacked when
the files continue one another on one grid. Per ``z`` the reader keeps the file, its SOP
instance UID and the frame number: what a DICOM SEG drawn on it references.
"""

from __future__ import annotations

import numpy as np

from .. import memory
from ..errors import InputError
from ..progress import Reporter
from ._dicom_geometry import (
    MAX_INTERCEPT_HU,
    SliceHeader,
    StackGeometry,
    _enhanced_frames,
    series_file_name,
)
from ._dicom_pixels import (
    _DECODER_HINT,
    UNSUPPORTED_HINT,
    DecoderMissing,
    lossy_note,
    refuse_unknown_syntax,
    syntax_name,
)

#: slices read between two looks at Cancel (and progress updates)
_BLOCK = 8
#: how far (mm) the steps between frames may differ and the frames still be one stack: a
#: position rounded to 0.1 mm, or jittered by µm, is (the classic reader takes them too)
_SPACING_ATOL = 0.25


def read_enhanced(
    members: list[SliceHeader], warnings: list[str], reporter: Reporter, path
) -> tuple[StackGeometry, np.ndarray, list[int]]:
    """The HU volume of an Enhanced CT series (its files' headers ``members``), its geometry
    as the classic reader gives it, and per ``z`` the frame number (1-based) in its file."""
    rows, cols = members[0].rows, members[0].cols
    n_frames = sum(h.n_frames for h in members)
    # the int16 stack, the decoded pixel data of the largest file and a frame's temporaries
    biggest = max(h.n_frames for h in members)
    # (a series in several files is joined: a second stack while it is; a file's pixel data
    # is held twice while highdicom takes it in)
    joined = n_frames * 2 if len(members) > 1 else 0
    memory.require(
        (n_frames * 2 + joined + biggest * 4) * rows * cols + 16 * rows * cols,
        f"reading its {n_frames} frames of {rows} × {cols} pixels",
        path,
    )
    order = sorted(members, key=lambda h: (min(h.frame_locations), h.instance_number, str(h.path)))
    progress = {"done": 0, "total": n_frames}
    parts = []
    clipped = 0
    for h in order:
        reporter.check()
        part = _read_file(h, reporter, progress)
        clipped += part["clipped"]
        warnings.extend(part["notes"])
        parts.append(part)
    reporter.update("dicom pixels", n_frames, n_frames)
    # a file of one frame has no step of its own: a file of several frames gives the series'
    # (else the smallest step between the files' positions; a gap is then named by the check
    # below); a lone frame keeps its SliceThickness, as a classic slice does
    several = [p for p in parts if len(p["array"]) > 1]
    locations = sorted({round(loc, 3) for h in members for loc in h.frame_locations})
    steps = [d for d in np.diff(locations) if d > 1e-3]
    step = several[0]["spacing"][0] if several else (float(min(steps)) if steps else None)
    for p in parts:
        if len(p["array"]) == 1 and step:
            p["spacing"] = (step, *p["spacing"][1:])
    if len(parts) > 1:
        _check_one_grid(parts)
    first = parts[0]
    array = parts[0]["array"] if len(parts) == 1 else np.concatenate([p["array"] for p in parts])
    uids, files, frames, numbers = [], [], [], []
    for p in parts:
        n = len(p["array"])
        uids += [p["header"].sop_uid] * n
        files += [p["header"].path] * n
        frames += p["frames"]
        numbers += p["image_numbers"]
    if len(parts) > 1 and not (
        all(p["numbers_kept"] for p in parts)
        and all(n is not None for n in numbers)
        and _steady(numbers)
    ):  # each file numbers its own frames from 1: no numbering of the series
        numbers = [None] * len(numbers)
    lossy = lossy_note([p["header"] for p in parts])
    if lossy:
        warnings.append(lossy)
    if clipped:
        warnings.append(
            f"{clipped} voxel(s) lay beyond the int16 range of HU and were clipped to "
            f"-32768…32767 (in {', '.join(series_file_name(p['header']) for p in parts)}): "
            "check the scaling"
        )
    geometry = StackGeometry(
        slices=[p["header"] for p in parts],
        shape_yx=(rows, cols),
        spacing=first["spacing"],
        origin=tuple(float(v) for v in first["origin"]),
        direction=first["direction"],
        sop_instance_uids=uids,
        files=files,
        instance_numbers=numbers,
        fill=[],
    )
    return geometry, array, frames


def _open(h: SliceHeader):
    """The file as a highdicom Image, its pixel data read whole (a lazy read printed a
    traceback of its own for a cut-short file); SpacingBetweenSlices taken out of its
    functional groups (highdicom held the frames to it, and a value that disagrees with their
    positions refused frames that lie evenly)."""
    import highdicom as hd
    import pydicom

    try:
        ds = pydicom.dcmread(str(h.path))
    except Exception as exc:  # pydicom raises many kinds on a damaged file
        raise InputError(h.path, f"cannot be read as an Enhanced CT ({_why(exc)})") from exc
    refuse_unknown_syntax(h.path, getattr(ds, "file_meta", {}).get("TransferSyntaxUID"))
    for groups in (
        ds.get("SharedFunctionalGroupsSequence") or [],
        ds.get("PerFrameFunctionalGroupsSequence") or [],
    ):
        for item in groups:
            for measures in item.get("PixelMeasuresSequence") or []:
                if "SpacingBetweenSlices" in measures:
                    del measures.SpacingBetweenSlices
    try:
        return hd.Image.from_dataset(ds, copy=False)
    except Exception as exc:
        raise InputError(h.path, f"cannot be read as an Enhanced CT ({_why(exc)})") from exc


def _why(exc: Exception) -> str:
    """An exception in words; pixel data cut short is named as such."""
    text = f"{type(exc).__name__}: {exc}"
    low = str(exc).lower()
    if any(k in low for k in ("less than expected", "truncat", "end of file", "eof", "buffer")):
        return f"truncated or corrupt file? {text}"
    return text


def _read_file(h: SliceHeader, reporter: Reporter, progress: dict) -> dict:
    """One Enhanced CT file as a regular stack: int16 HU sorted along the slice normal, its
    origin, direction, spacing, and per slice the frame it is and its image number.

    The frames' stored values go through the classic reader's per-slice decoding
    (:func:`~napari_livertumor.io._dicom_pixels._slice_hu`: bits above BitsStored cleared, a
    padding value that would read denser than bone made air, each frame's own rescale), a few
    frames at a time, with Cancel looked at between them.
    """
    from dataclasses import replace

    from ._dicom_pixels import _slice_hu

    name = series_file_name(h)
    image = _open(h)
    try:
        geometry = image.get_volume_geometry(atol=_SPACING_ATOL, allow_duplicate_positions=False)
        problem = None if geometry is not None else "highdicom found no volume in them"
    except Exception as exc:
        geometry, problem = None, _why(exc)
    if geometry is None:
        raise InputError(
            h.path,
            f"its {h.n_frames} frames do not form one regular stack of slices, which an "
            f"Enhanced CT must here ({problem}): frames missing, unevenly spaced, tilted, or "
            "several stacks (a localizer, another orientation) in one file. Export the series "
            "as one file per slice",
        )
    affine = geometry.affine
    n = int(geometry.spatial_shape[0])
    step, down, across = affine[:3, 0], affine[:3, 1], affine[:3, 2]  # (slice, row, column)
    dy, dx = float(np.linalg.norm(down)), float(np.linalg.norm(across))
    x_dir, y_dir = across / dx, down / dy
    normal = np.cross(x_dir, y_dir)
    normal /= np.linalg.norm(normal)
    origin = affine[:3, 3].astype(float)
    if n > 1 and float(np.dot(step, normal)) < 0:  # highdicom stacked against the normal
        origin = origin + (n - 1) * step
    # one frame has no step (highdicom gives 1 mm): its SliceThickness, as a classic slice's
    dz = abs(float(np.dot(step, normal))) if n > 1 else (h.slice_thickness or 1.0)
    if not dz > 0:
        dz = h.slice_thickness or 1.0
    frames = _frame_numbers(image, origin, normal, dz, n, h, name)
    numbers, kept = _image_numbers(image, frames)
    rescale, rescale_notes = _frame_rescales(image, h)
    array = np.empty((n, h.rows, h.cols), np.int16)
    clipped = 0
    for start in range(0, n, _BLOCK):
        reporter.check()
        reporter.update("dicom pixels", progress["done"], progress["total"])
        for z in range(start, min(n, start + _BLOCK)):
            try:
                raw = image.get_stored_frame(frames[z])
            except Exception as exc:
                raise InputError(
                    h.path,
                    f"frame {frames[z]} cannot be decoded ({_decoder_or_why(image, exc, h)})",
                ) from exc
            slope, intercept = rescale[frames[z] - 1]
            frame_header = replace(h, slope=slope, intercept=intercept)
            clipped += _slice_hu(frame_header, (h.rows, h.cols), array[z], raw=raw)[0]
            progress["done"] += 1
    return {
        "header": h,
        "array": array,
        "origin": origin,
        "direction": np.column_stack([x_dir, y_dir, normal]),
        "spacing": (dz, dy, dx),
        "normal": normal,
        "frames": frames,
        "image_numbers": numbers,
        "numbers_kept": kept,
        "clipped": clipped,
        "notes": rescale_notes,
    }


def _decoder_or_why(image, exc: Exception, h: SliceHeader) -> str:
    low = str(exc).lower()
    if "decod" in low or "missing dependencies" in low or "plugin" in low:
        ts = getattr(getattr(image, "file_meta", None), "TransferSyntaxUID", None)
        what = syntax_name(ts) if ts else "unknown"
        if "have been implemented" in low:  # no decoder exists for it (video): none to install
            raise DecoderMissing(
                h.path, f"pixel data in transfer syntax {what}, which is {UNSUPPORTED_HINT}"
            ) from exc
        if "missing dependencies" in low or "no pixel data decoder" in low:
            raise DecoderMissing(
                h.path, f"pixel data in transfer syntax {what} cannot be decoded: {_DECODER_HINT}"
            ) from exc
        return f"transfer syntax {what}; {_why(exc)}"
    return _why(exc)


def _frame_rescales(image, h: SliceHeader) -> tuple[list[tuple[float, float]], list[str]]:
    """Each frame's (RescaleSlope, RescaleIntercept) — its own functional group's, else the
    shared one's, else the file's (the header's) — and what was mended, as the classic reader
    mends slices: a slope that is no scale is 1, an intercept that is no usable number the
    other frames' (none: the file is refused)."""
    from ._dicom_geometry import _group_item

    slopes: list[float] = []
    intercepts: list[float | None] = []
    bad_slope, bad_intercept = "", ""
    scaled_by_one: list[int] = []  # frames whose slope was no scale
    for k in range(int(image.get("NumberOfFrames") or 1)):
        item = _group_item(image, "PixelValueTransformationSequence", k)
        raw_slope, raw_intercept = h.slope, (None if h.bad_intercept else h.intercept)
        if item is not None and "RescaleSlope" in item:
            raw_slope, raw_intercept = item.get("RescaleSlope"), item.get("RescaleIntercept", 0)
        try:
            slope = float(raw_slope)
        except (TypeError, ValueError):
            slope = float("nan")
        if not np.isfinite(slope) or slope == 0:
            bad_slope = bad_slope or str(raw_slope)
            scaled_by_one.append(k)
            slope = 1.0
        try:
            intercept = float(raw_intercept) if raw_intercept is not None else float("nan")
        except (TypeError, ValueError):
            intercept = float("nan")
        if not abs(intercept) <= MAX_INTERCEPT_HU:
            bad_intercept = bad_intercept or str(
                raw_intercept if raw_intercept is not None else h.bad_intercept
            )
            intercept = None
        slopes.append(slope)
        intercepts.append(intercept)
    notes = []
    if bad_slope:
        notes.append(
            f"RescaleSlope {bad_slope!r} of {len(scaled_by_one)} frame(s) of {h.path.name} (e.g. "
            f"frame {scaled_by_one[0] + 1}) is no scale: taken as 1; check the HU values"
        )
    gone = [k for k, v in enumerate(intercepts) if v is None]
    if gone:
        good = [v for v in intercepts if v is not None]
        if not good:
            raise InputError(
                h.path,
                f"RescaleIntercept {bad_intercept!r} (of all {len(gone)} frame(s)) is no "
                "usable number: Hounsfield units cannot be made of its pixels. Fix the header",
            )
        value = float(np.median(good))
        intercepts = [value if v is None else v for v in intercepts]
        notes.append(
            f"RescaleIntercept {bad_intercept!r} of {len(gone)} frame(s) of {h.path.name} "
            f"(e.g. frame {gone[0] + 1}) is no usable number: taken as the other frames' "
            f"{value:g}; check those slices' HU values"
        )
    return list(zip(slopes, intercepts, strict=True)), notes


def _image_numbers(image, frames: list[int]) -> tuple[list[int | None], bool]:
    """Per slice, the image number a viewer shows for it, and whether those are the original
    slices' InstanceNumbers a legacy conversion kept for each frame (else frame numbers); None
    for all when the numbers do not run steadily along the stack (a range of them would name
    images lying elsewhere)."""
    per_frame = image.get("PerFrameFunctionalGroupsSequence") or []
    shared = None  # a conversion of one slice keeps its number among the shared attributes
    if len(per_frame) == 1:
        for group in image.get("SharedFunctionalGroupsSequence") or []:
            for kept in group.get("UnassignedSharedConvertedAttributesSequence") or []:
                shared = kept.get("InstanceNumber")
    numbers: list[int | None] = []
    for f in frames:
        value = shared
        if f - 1 < len(per_frame):
            for kept in per_frame[f - 1].get("UnassignedPerFrameConvertedAttributesSequence") or []:
                value = kept.get("InstanceNumber", value)
        try:
            numbers.append(int(value) if value is not None else None)
        except (TypeError, ValueError):
            numbers.append(None)
    kept = all(v is not None for v in numbers)
    if not kept:
        numbers = list(frames)
    if not _steady(numbers):  # no numbering of this file: none of the series' either
        return [None] * len(numbers), False
    return numbers, kept


def _steady(numbers) -> bool:
    """Whether ``numbers`` only rise, or only fall."""
    steps = np.diff(np.asarray(numbers, dtype=float))
    return not len(steps) or bool(np.all(steps > 0) or np.all(steps < 0))


def _frame_numbers(image, origin, normal, dz, n, h: SliceHeader, name: str) -> list[int]:
    """Per slice of the stack, the number (1-based) of the frame lying there."""
    found = _enhanced_frames(image)
    if isinstance(found, str):
        raise InputError(h.path, f"its frames cannot be placed: {found}")
    _, positions, _, _, _ = found
    frames = [0] * n
    for k, pos in enumerate(positions):
        z = float(np.dot(np.asarray(pos) - origin, normal)) / dz
        zi = int(round(z))
        if 0 <= zi < n and abs(z - zi) < 0.25 and not frames[zi]:
            frames[zi] = k + 1
    if not all(frames):
        missing = [z for z, f in enumerate(frames) if not f]
        raise InputError(
            h.path,
            f"{name}: no frame found at slice(s) {missing[:5]} of its stack of {n}: the "
            "frames' positions do not match the volume highdicom made of them",
        )
    return frames


def _check_one_grid(parts: list[dict]) -> None:
    """Several files of one series: they must continue one another on one grid (one
    orientation, one spacing, in-plane aligned, each starting a step after the last)."""
    ref = parts[0]
    a_name = series_file_name(ref["header"])
    for p in parts[1:]:
        b_name = series_file_name(p["header"])
        what = None
        if p["array"].shape[1:] != ref["array"].shape[1:]:
            what = (
                f"their frames differ in size ({ref['array'].shape[1:]} and {p['array'].shape[1:]})"
            )
        elif not np.allclose(p["direction"], ref["direction"], atol=1e-3):
            what = "their frames lie in other orientations"
        elif not np.allclose(p["spacing"], ref["spacing"], rtol=1e-2, atol=1e-3):
            sa = "x".join(f"{v:.4g}" for v in ref["spacing"])
            sb = "x".join(f"{v:.4g}" for v in p["spacing"])
            what = f"their voxel spacings differ ({sa} and {sb} mm)"
        else:
            shift = p["origin"] - ref["origin"]
            inplane = shift - np.dot(shift, ref["normal"]) * ref["normal"]
            if np.linalg.norm(inplane) > 0.1 * min(ref["spacing"][1:]):
                what = f"their slices are offset in-plane by {np.linalg.norm(inplane):.2f} mm"
        if what:
            raise InputError(
                p["header"].path,
                f"the series is split into {len(parts)} Enhanced CT files that do not share "
                f"one grid ({a_name} and {b_name}: {what}); they cannot be stacked into one "
                "volume",
            )
    dz = ref["spacing"][0]
    for a, b in zip(parts[:-1], parts[1:], strict=True):
        last = a["origin"] + (len(a["array"]) - 1) * dz * a["normal"]
        gap = float(np.dot(b["origin"] - last, ref["normal"]))
        if abs(gap - dz) > 0.05 * dz:
            a_name, b_name = series_file_name(a["header"]), series_file_name(b["header"])
            why = (
                "overlap: they cover the same positions (two stacks or acquisitions in one series?)"
                if gap < 0.5 * dz
                else f"leave a gap of {gap:.2f} mm between them, not one {dz:.3g} mm step "
                "(frames missing?)"
            )
            raise InputError(
                b["header"].path,
                f"the series is split into {len(parts)} Enhanced CT files; {a_name} and "
                f"{b_name} {why}: they cannot be stacked into one volume",
            )
