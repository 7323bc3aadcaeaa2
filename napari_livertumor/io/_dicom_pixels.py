"""Pixel decoding of sorted CT slices: direct reads of native 16-bit data, pydicom otherwise.

Slices are decoded in a thread pool straight into the output volume, with the rescale applied in
place, so peak memory stays close to the volume's own size. A few damaged slices (pixel data
cut short, undecodable) are mended (:func:`mend_damaged`): read from a copy at the same
position, interpolated like missing ones from the slices on either side, or left out at an end
of the stack, and said.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pydicom

from ..errors import InputError
from ..progress import Reporter
from ._dicom_geometry import (
    MENDABLE_SHARE,
    SliceHeader,
    StackGeometry,
    grid_index,
    series_file_name,
    stack_geometry,
)


class DecoderMissing(InputError):
    """Compressed pixel data this Python cannot decode: every slice of that transfer syntax
    fails the same way, so it is never mended as one damaged slice."""


def decode_slices(
    slices,
    shape_yx,
    reporter: Reporter,
    max_workers: int | None,
    warnings: list | None = None,
    damaged: dict | None = None,
) -> np.ndarray:
    """HU of ``slices`` as int16 ``(n, rows, cols)``; values beyond int16 are clipped, which
    is said in ``warnings``.

    ``damaged``, when given, receives ``{index: InputError}`` for slices whose pixels cannot
    be read (their rows in the result are undefined) instead of the first such error being
    raised; a missing decoder (:class:`DecoderMissing`) is raised either way."""
    n = len(slices)
    out = np.empty((n, *shape_yx), dtype=np.int16)
    workers = max_workers or min(8, (os.cpu_count() or 2) + 2)
    done = 0
    clipped = [0] * n
    excess = [0] * n

    def work(k: int) -> None:
        try:
            clipped[k], excess[k] = _slice_hu(slices[k], shape_yx, out[k])
        except DecoderMissing:
            raise
        except InputError as exc:
            if damaged is None:
                raise
            damaged[k] = exc

    reporter.update("dicom pixels", 0, n)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, k) for k in range(n)]
        try:
            for fut in futures:
                fut.result()
                done += 1
                if done % 16 == 0 or done == n:
                    reporter.check()
                    reporter.update("dicom pixels", done, n)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    if sum(clipped) and warnings is not None:
        h = slices[next(k for k, c in enumerate(clipped) if c)]
        warnings.append(
            f"{sum(clipped)} voxel(s) in {sum(1 for c in clipped if c)} slice(s) lay beyond the "
            f"int16 range of HU and were clipped to -32768…32767 (e.g. {h.path.name}: "
            f"RescaleSlope {h.slope:g}, RescaleIntercept {h.intercept:g}): check the scaling"
        )
    lossy = lossy_note(slices)
    if lossy and warnings is not None:
        warnings.append(lossy)
    longer = [k for k, e in enumerate(excess) if e > 1]  # one byte: padding to even length
    if longer and warnings is not None:
        h, extra = slices[longer[0]], excess[longer[0]]
        frame = h.rows * h.cols * 2
        what = (
            f"{extra // frame} more frame(s) of this size the header does not declare"
            if extra % frame == 0
            else "Rows/Columns that do not match the pixel data?"
        )
        warnings.append(
            f"{len(longer)} slice(s) hold more pixel data than Rows × Columns says; only the "
            f"first {h.rows}×{h.cols} values were read (e.g. {series_file_name(h)}: "
            f"{extra} bytes beyond it: {what}): check these images in a DICOM viewer"
        )
    return out


_JPEG = "1.2.840.10008.1.2.4."
#: transfer syntaxes whose compression always loses detail: JPEG's DCT processes (baseline,
#: extended, and the retired progressive and hierarchical ones), JPEG XL's recompression of
#: such a JPEG, and video
LOSSY_SYNTAXES = frozenset(
    _JPEG + n
    for n in (
        *("50", "51", "52", "53", "54", "55", "56", "59", "60", "61", "62", "63", "64"),
        "111",
        *("100", "100.1", "101", "101.1", "102", "102.1", "103", "103.1", "104", "104.1"),
        *("105", "105.1", "106", "106.1", "107", "108"),
    )
)
#: transfer syntaxes that allow lossy compression as well as lossless: JPEG-LS near-lossless,
#: JPEG 2000 (not the lossless-only .90/.92), HTJ2K (not .201/.202), JPEG XL (not .110).
#: Lossy unless the file's LossyImageCompression says "00"
MAYBE_LOSSY_SYNTAXES = frozenset(_JPEG + n for n in ("81", "91", "93", "203", "112"))
#: LossyImageCompressionMethod's defined terms, in words
_LOSSY_METHODS = {
    "ISO_10918_1": "JPEG",
    "ISO_14495_1": "JPEG-LS near-lossless",
    "ISO_15444_1": "JPEG 2000",
    "ISO_15444_15": "HTJ2K",
    "ISO_18181_1": "JPEG XL",
    "ISO_13818_2": "MPEG-2",
    "ISO_14496_10": "MPEG-4 AVC/H.264",
    "ISO_23008_2": "HEVC/H.265",
}
_LESS_RELIABLE = (
    "tumor boundaries, small lesions and HU measurements are less reliable; if the PACS has "
    "the original (uncompressed or lossless) series, read that"
)


def lossy_note(headers: list[SliceHeader]) -> str | None:
    """A warning when the slices' pixel data were compressed with loss, else None: a
    LossyImageCompression of "01" on any of them (with its ratio and method), or a transfer
    syntax that is lossy (JPEG baseline) or allows it (JPEG 2000, JPEG-LS near-lossless, HTJ2K)
    where no "00" says it was not. A JPEG 2000 series at 10:1 read and segmented without a word
    while its HU differed by up to 150 in most voxels and its tumor masks from the lossless
    one's. ``headers``: the slices read, or an Enhanced CT's files (counted by frames)."""
    lossy = []
    for h in headers:
        flag, syntax = h.lossy_compression[0], h.transfer_syntax
        if (
            flag == "01"
            or syntax in LOSSY_SYNTAXES
            or (syntax in MAYBE_LOSSY_SYNTAXES and flag != "00")
        ):
            lossy.append(h)
    if not lossy:
        return None

    def count(hs) -> int:
        return sum(h.n_frames if h.enhanced else 1 for h in hs)

    n, total = count(lossy), count(headers)
    share = f"all {total} slices" if n == total else f"{n} of the {total} slices"
    tagged = [h for h in lossy if h.lossy_compression[0] == "01"]
    h = (tagged or lossy)[0]
    details = []
    if tagged:
        _, ratios, methods = h.lossy_compression
        details.append("LossyImageCompression 01")
        if ratios:
            details.append("ratio " + " then ".join(f"{_ratio(r)}:1" for r in ratios.split("\\")))
        if methods:
            details.append(
                " then ".join(
                    f"{_LOSSY_METHODS[m]} ({m})" if m in _LOSSY_METHODS else m
                    for m in methods.split("\\")
                )
            )
    if h.transfer_syntax in LOSSY_SYNTAXES | MAYBE_LOSSY_SYNTAXES and not (
        tagged and h.lossy_compression[2]
    ):  # (the method named says it already)
        details.append(f"transfer syntax {syntax_name(h.transfer_syntax)}")
    where = f"{share}; e.g. {series_file_name(h)}: {', '.join(details)}"
    if tagged or any(x.transfer_syntax in LOSSY_SYNTAXES for x in lossy):
        return (
            f"lossy-compressed pixel data ({where}): the values are an approximation of the "
            f"scanner's HU, so {_LESS_RELIABLE}"
        )
    return (
        f"pixel data in a transfer syntax that allows lossy compression ({where}; no "
        'LossyImageCompression "00" says it was lossless): if it was lossy, the values are an '
        f"approximation of the scanner's HU, and {_LESS_RELIABLE}"
    )


def _ratio(text: str) -> str:
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def compare_duplicates(geometry: StackGeometry, array: np.ndarray, damaged, warnings) -> None:
    """Say when copies of one position hold different pixels: the one read (the higher
    InstanceNumber) may not be the right one. ``array`` holds the real slices as decoded."""
    index = {id(h): k for k, h in enumerate(geometry.slices)}
    differing = []
    for kept, left in geometry.duplicates:
        k = index.get(id(kept))
        if k is None or k in damaged or (left.rows, left.cols) != geometry.shape_yx:
            continue
        row = np.empty(geometry.shape_yx, np.int16)
        try:
            _slice_hu(left, geometry.shape_yx, row)
        except InputError:
            continue  # an unreadable copy: nothing to compare (the kept one was read)
        diff = float(np.mean(np.abs(row.astype(np.float32) - array[k])))
        if diff > 1.0:
            differing.append((kept, left, diff))
    if differing:
        kept, left, diff = differing[0]
        warnings.append(
            f"{len(differing)} of the {len(geometry.duplicates)} repeated position(s) hold "
            f"different pixels in their copies (e.g. {series_file_name(kept)}, image "
            f"{kept.instance_number}, read, and {series_file_name(left)}, image "
            f"{left.instance_number}, left out: a mean difference of {diff:.0f} HU): the higher "
            "InstanceNumber (the last found where equal) was read; "
            "check in a DICOM viewer which copy is right"
        )


def _slice_hu(
    h: SliceHeader, shape_yx, out: np.ndarray, raw: np.ndarray | None = None
) -> tuple[int, int]:
    """Decode one slice and write its HU into ``out`` (a view into the volume); returns how
    many values were clipped to the int16 range, and how many bytes of pixel data lay beyond
    the Rows × Columns frame (not read). ``raw``: the slice's stored values, decoded already
    (a frame of an Enhanced CT), cut to BitsStored here and then treated as a file's."""
    rows, cols = shape_yx
    excess = h.pixel_excess
    if raw is not None:
        if h.pixel_representation == 0:
            raw = raw.astype(np.uint16, copy=False)
            if h.bits_stored < 16:  # bits above BitsStored (an overlay) are no pixel value
                raw = raw & np.uint16((1 << h.bits_stored) - 1)
        else:
            raw = raw.astype(np.int16, copy=False)
            if h.bits_stored < 16:  # a two's complement of BitsStored bits: its sign extended
                shift = 16 - h.bits_stored
                raw = (raw << shift) >> shift
        excess = 0
    elif h.pixel_offset is not None and (h.bits_stored == 16 or h.pixel_representation == 0):
        dtype = "<i2" if h.pixel_representation == 1 else "<u2"
        try:
            raw = np.fromfile(h.path, dtype=dtype, count=rows * cols, offset=h.pixel_offset)
        except OSError as exc:
            raise InputError(h.path, f"pixel data cannot be read ({exc})") from exc
        if raw.size != rows * cols:
            raise InputError(h.path, "truncated file: the pixel data is incomplete")
        raw = raw.reshape(rows, cols)
        if h.pixel_representation == 0 and h.bits_stored < 16:
            raw &= np.uint16((1 << h.bits_stored) - 1)
    if raw is None:
        raw, excess = _pydicom_pixels(h)
    if raw.shape != (rows, cols):
        raise InputError(h.path, f"pixel array {raw.shape} differs from Rows/Columns {shape_yx}")
    if _padding_outside_hu(h):  # outside the scanned field: air, whatever the stored value
        low, high = h.padding
        outside = (raw >= low) & (raw <= high) if low != high else raw == low
        if h.pixel_representation == 0 and h.bits_stored < 16:
            # the pixels were cut to BitsStored: so is the padding (-2000 stored as 63536 is
            # 2096 in 12 bits, which read as +1072 HU, bone, around the scanned field). Cut,
            # it is a value bone or contrast can hold too: only what of it reaches the
            # image's edge is the field's outside
            bits = (1 << h.bits_stored) - 1
            if low == high:  # (a range cut so would span bone and contrast: 1072–3071 HU)
                outside |= _touching_edge(raw == (int(low) & bits))
        if outside.any():
            hu = np.where(outside, np.int32(PADDING_HU), _rescaled(raw, h))
            n_out = int(np.count_nonzero((hu < -32768) | (hu > 32767)))
            out[...] = np.clip(hu, -32768, 32767)
            return n_out, excess
    if h.slope == 1.0 and float(h.intercept).is_integer():
        intercept = int(h.intercept)
        low, high = int(raw.min()) + intercept, int(raw.max()) + intercept
        if -32768 <= low and high <= 32767:
            # the common case: stored + intercept fits int16; no full-size temporaries
            np.add(raw, np.int32(intercept), out=out, casting="unsafe")
            return 0, excess
        hu = raw.astype(np.int32) + intercept
    else:
        hu = np.rint(raw.astype(np.float32) * h.slope + h.intercept)
    n_out = int(np.count_nonzero((hu < -32768) | (hu > 32767)))
    np.clip(hu, -32768, 32767, out=hu)
    out[...] = hu
    return n_out, excess


def _touching_edge(mask: np.ndarray) -> np.ndarray:
    """The parts of the 2D ``mask`` that reach the image's edge."""
    if not mask.any():
        return mask
    from scipy import ndimage as ndi

    parts, _ = ndi.label(mask)
    edge = np.unique(np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]]))
    return np.isin(parts, edge[edge > 0])


#: HU given to pixels outside the scanned field (PixelPaddingValue): air
PADDING_HU = -1024


def _padding_outside_hu(h: SliceHeader) -> bool:
    """Does the slice's padding value rescale above any CT value (denser than bone)? That is
    the pattern of a signed padding value on unsigned pixels (-2000 stored as 63536), which
    would read as +32767 HU, far too dense: those pixels are made air. A padding value that
    reads below air (-2000, -3024 HU: what scanners and SimpleITK give) is left as it reads,
    and so is one that is also a tissue's (0 with intercept 0 is water)."""
    if h.padding is None:
        return False
    return min(v * h.slope + h.intercept for v in h.padding) > 3071


def _rescaled(raw: np.ndarray, h: SliceHeader) -> np.ndarray:
    if h.slope == 1.0 and float(h.intercept).is_integer():
        return raw.astype(np.int32) + int(h.intercept)
    return np.rint(raw.astype(np.float32) * h.slope + h.intercept).astype(np.int32)


#: what pydicom needs to decode compressed pixel data (any one of them per syntax)
_DECODER_HINT = (
    "install a decoder: pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg pyjpegls "
    "(or python-gdcm)"
)


#: what to do with pixel data in a transfer syntax pydicom cannot decode at all
UNSUPPORTED_HINT = (
    "not supported here: convert the series to uncompressed DICOM first, e.g. with "
    "`gdcmconv --raw` (GDCM) or `dcmdjpeg`/`dcmdjpls` (DCMTK), or export it uncompressed "
    "from the PACS or scanner"
)

#: transfer syntaxes newer than the pydicom used (it knows neither their name nor a decoder)
_SYNTAX_NAMES = {
    "1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
    "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
}


def syntax_name(uid) -> str:
    """A transfer syntax in words with its UID: "JPEG 2000 Image Compression
    (1.2.840.10008.1.2.4.91)"; one no list names (a vendor's private one) by its UID alone."""
    uid = pydicom.uid.UID(str(uid).strip())
    name = _SYNTAX_NAMES.get(str(uid)) or (uid.name if uid.name != str(uid) else "")
    if not name:
        return f"{uid} (a private or unknown one)" if uid.is_private else f"{uid} (unknown)"
    return f"{name} ({uid})"


def refuse_unknown_syntax(path, ts) -> None:
    """Raise :class:`DecoderMissing` naming ``path`` when its transfer syntax ``ts`` is none
    pydicom knows (JPEG XL, a vendor's private one): pydicom's own words were "UID is not a
    transfer syntax.", which named neither the file nor the syntax nor what to do."""
    if ts is None or pydicom.uid.UID(str(ts).strip()).is_transfer_syntax:
        return
    raise DecoderMissing(
        path, f"pixel data in transfer syntax {syntax_name(ts)}, which is {UNSUPPORTED_HINT}"
    )


def read_dataset(path) -> pydicom.Dataset:
    """A whole DICOM file, also one without preamble or file meta (older exports): its transfer
    syntax is then the encoding pydicom found, so its pixel data can be decoded."""
    ds = pydicom.dcmread(path, force=True)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        if implicit is not None:
            ds.file_meta = meta if meta is not None else pydicom.dataset.FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = (
                pydicom.uid.ImplicitVRLittleEndian
                if implicit
                else pydicom.uid.ExplicitVRLittleEndian
                if little
                else pydicom.uid.ExplicitVRBigEndian
            )
    return ds


def _pydicom_pixels(h: SliceHeader) -> tuple[np.ndarray, int]:
    """One frame's stored values, and the bytes of native pixel data beyond it (frames the
    header does not declare, or a Rows/Columns that does not fit: the first frame is read)."""
    try:
        ds = read_dataset(h.path)
    except Exception as exc:
        raise InputError(h.path, f"cannot be read ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in ds:
        raise InputError(h.path, "no pixel data in the file (truncated?)")
    excess = 0
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    refuse_unknown_syntax(h.path, ts)
    if ts is not None and not ts.is_compressed and int(ds.get("NumberOfFrames") or 1) == 1:
        per_value = (int(ds.get("BitsAllocated") or 16) + 7) // 8
        frame = h.rows * h.cols * int(ds.get("SamplesPerPixel") or 1) * per_value
        excess = max(len(ds.PixelData) - frame, 0)
        if excess > 1:  # only the declared frame is decoded (said once for the series)
            ds.PixelData = ds.PixelData[: frame + frame % 2]
    try:
        arr = ds.pixel_array
    except Exception as exc:
        ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        name = syntax_name(ts) if ts else "unknown"
        text = str(exc)
        low = text.lower()
        # "no pixel data decoders have been implemented for" (video): none to install
        unsupported = "have been implemented" in low
        missing = unsupported or "missing dependencies" in text or "no pixel data decoder" in low
        why = (
            UNSUPPORTED_HINT
            if unsupported
            else _DECODER_HINT
            if missing
            else "truncated or corrupt file?"
        )
        raise (DecoderMissing if missing else InputError)(
            h.path,
            f"pixel data cannot be decoded (transfer syntax {name}; {why}; "
            f"{type(exc).__name__}: {exc})",
        ) from exc
    if arr.ndim != 2:
        raise InputError(h.path, f"expected one 2D frame, got pixel array of shape {arr.shape}")
    return arr, excess


def fill_gaps(
    array: np.ndarray, fill: list[tuple[int, int, float]], unread: list[int] | tuple = ()
) -> np.ndarray:
    """The volume on its uniform grid: ``array``'s real slices, with ``fill``'s gap slices
    (``(insert_at, n_new, _)`` per gap) inserted, and every gap slice and every ``unread`` one
    (real indices whose pixels could not be read; never the first or last) interpolated
    linearly, by grid position, from the nearest read slices on either side."""
    n_real = len(array)
    grid = grid_index(n_real, fill)
    if not fill and not len(unread):
        return array
    out = np.empty((int(grid[-1]) + 1, *array.shape[1:]), dtype=array.dtype)
    read = np.ones(n_real, bool)
    read[list(unread)] = False
    for k in np.flatnonzero(read):  # slice by slice: no second copy of the volume
        out[grid[k]] = array[k]
    known = grid[read]
    holes = np.setdiff1d(np.arange(len(out)), known)
    for z in holes:
        i = int(np.searchsorted(known, z))  # known[i - 1] < z < known[i]
        lo, hi = int(known[i - 1]), int(known[i])
        t = (z - lo) / (hi - lo)
        out[z] = np.rint(out[lo].astype(np.float32) * (1 - t) + out[hi].astype(np.float32) * t)
    return out


def mend_damaged(
    members: list[SliceHeader],
    geometry: StackGeometry,
    array: np.ndarray,
    damaged: dict[int, InputError],
    warnings: list[str],
    mark: int,
) -> tuple[StackGeometry, np.ndarray, list[int]]:
    """Mend the slices :func:`decode_slices` could not read, as the reader treats missing ones.

    * A damaged slice with a readable copy at the same position (a duplicate the stack had
      left out for its lower InstanceNumber) is replaced by that copy.
    * Damaged slices at either end of the stack are left out.
    * A damaged slice inside the stack stays in it (its header places it: position, SOP
      instance, image number) but has no usable file (``geometry.files`` holds None there, so a
      DICOM SEG export leaves its labels out); its index is returned in ``unread`` for
      :func:`fill_gaps` to interpolate by position.

    Whenever the first two change the stack it is measured again (``warnings[mark:]``, what
    :func:`stack_geometry` said, is said again for the new stack). More than
    :data:`MENDABLE_SHARE` of the slices (at least one is always mended), or fewer than two
    readable ones, is refused with the first file's problem.

    Returns ``(geometry, array, unread)``: ``array`` holds the new stack's real slices.
    """
    n = len(geometry.slices)
    slices = geometry.slices
    tol = max(0.01, min(0.1, 0.2 * float(geometry.spacing[0])))
    placed = {id(h) for h in slices}
    twin: dict[int, SliceHeader] = {}  # damaged index -> a copy at the same position
    unreadable: list[SliceHeader] = []  # copies tried that cannot be read either
    for k in damaged:
        h = slices[k]
        for m in members:
            if (
                id(m) in placed
                or not m.is_image
                or m.location is None
                or abs(m.location - h.location) >= tol
                or (m.rows, m.cols) != (h.rows, h.cols)
                or not _same(m.orientation, h.orientation, 1e-3)
                or not _same(m.pixel_spacing, h.pixel_spacing, 1e-4)
            ):
                continue  # not a copy of this slice (one the stack left out for its header)
            row = np.empty(geometry.shape_yx, np.int16)
            try:
                _slice_hu(m, geometry.shape_yx, row)
            except InputError:
                unreadable.append(m)
                continue
            twin[k] = m
            array[k] = row
            break
    bad = sorted(k for k in damaged if k not in twin)
    first = damaged[bad[0]] if bad else None
    if first is not None and n - len(bad) < 2:
        raise InputError(
            first.path,
            f"{first.problem} ({len(bad)} of the series' {n} slices cannot be read: fewer than "
            "two readable slices remain)",
        )
    if first is not None and len(bad) > max(1, int(MENDABLE_SHARE * n)):
        raise InputError(
            first.path,
            f"{first.problem} ({len(bad)} of the series' {n} slices cannot be read: too many "
            "to mend; at most a tenth are interpolated over or left out)",
        )
    lead = next(i for i in range(n + 1) if i not in bad)
    trail = next(i for i in range(n + 1) if (n - 1 - i) not in bad)
    head, tail = slices[:lead], slices[n - trail :]
    if head or tail or twin:
        gone = {id(h) for h in head + tail + unreadable} | {id(slices[k]) for k in twin}
        expected = [twin.get(k, slices[k]).path for k in range(lead, n - trail)]
        kept_warnings = warnings[mark:]
        del warnings[mark:]
        restacked = stack_geometry([h for h in members if id(h) not in gone], warnings)
        if [h.path for h in restacked.slices] != expected:
            warnings[mark:] = kept_warnings
            culprit = first or damaged[min(damaged)]
            raise InputError(
                culprit.path,
                f"{culprit.problem} (the series could not be mended around it: without it the "
                "slices stack otherwise)",
            )
        geometry, array = restacked, array[lead : n - trail]
    unread = [k - lead for k in bad if lead <= k < n - trail]
    if unread:
        grid = grid_index(len(geometry.slices), geometry.fill)
        for k in unread:
            geometry.files[int(grid[k])] = None
    for k, m in twin.items():
        warnings.append(
            f"{_name(slices[k])} cannot be read ({damaged[k].problem}); its copy at the same "
            f"position, {_name(m)}, was read instead"
        )
    if unread:
        warnings.append(
            f"{len(unread)} slice(s) whose pixel data cannot be read were filled by linear "
            f"interpolation from the slices on either side: "
            f"{_named([geometry.slices[k] for k in unread], damaged)}; a DICOM SEG export "
            "leaves their labels out"
        )
    for which, ends in (("first", head), ("last", tail)):
        if ends:
            warnings.append(
                f"the {which} {len(ends)} slice(s) of the stack cannot be read and were left out "
                f"(the volume {'starts' if which == 'first' else 'ends'} at the {which} readable "
                f"one): {_named(ends, damaged)}"
            )
    return geometry, array, unread


_name = series_file_name


def _same(a, b, atol: float) -> bool:
    """Two header values (tuples of numbers, or None) alike within ``atol``."""
    if a is None or b is None:
        return a is None and b is None
    return len(a) == len(b) and bool(np.allclose(a, b, atol=atol))


def _named(headers, damaged: dict[int, InputError]) -> str:
    """``folder/name (problem)`` of the first three files, and how many more."""
    problem = {str(e.path): e.problem for e in damaged.values()}
    text = ", ".join(f"{_name(h)} ({problem.get(str(h.path), 'unreadable')})" for h in headers[:3])
    return text + (f" and {len(headers) - 3} more" if len(headers) > 3 else "")
