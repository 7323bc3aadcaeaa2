"""Slice headers and the geometry of a stack of CT slices (sort, de-duplicate, gaps, tilt)."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError

#: SOP classes that are never image slices even if they carry image-like tags.
_NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "SR", "KO", "PR", "REG"}

#: Enhanced CT Image Storage and Legacy Converted Enhanced CT Image Storage: multi-frame CT
#: whose frames carry their own positions (functional groups); read through highdicom
ENHANCED_CT_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2"}


@dataclass
class SliceHeader:
    """What the header pass keeps of one DICOM file."""

    path: Path
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    modality: str
    is_image: bool
    position: np.ndarray | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    rows: int
    cols: int
    instance_number: int
    acquisition_number: int | None
    slope: float
    intercept: float
    bits_stored: int
    pixel_representation: int
    pixel_offset: int | None
    series_description: str
    series_number: int | None
    contrast_agent: str
    image_comments: str
    patient_id: str
    patient_name: str
    study_uid: str
    study_description: str
    study_date: str
    frame_of_reference_uid: str
    slice_thickness: float | None
    location: float | None = None  # position along the slice normal, mm
    n_frames: int = 1
    referenced_uids: frozenset[str] = frozenset()  # SOP instances a SEG refers to
    not_image: str = ""  # why a file is no image slice (a missing tag...), for messages
    bad_slope: str = ""  # a RescaleSlope that is no scale (0, not a number): taken as 1
    #: a RescaleIntercept that is no usable number (NaN, infinite, beyond MAX_INTERCEPT_HU):
    #: taken as the series' other files' (none: the series is refused)
    bad_intercept: str = ""
    #: stored values (low, high) marking pixels outside the scanned field (PixelPaddingValue
    #: up to PixelPaddingRangeLimit), or None
    padding: tuple[int, int] | None = None
    #: bytes of pixel data beyond one Rows × Columns frame (ignored; said, as it may mean
    #: wrong Rows/Columns or frames the header does not declare)
    pixel_excess: int = 0
    #: ImageType, e.g. "ORIGINAL\\PRIMARY\\AXIAL" or "DERIVED\\SECONDARY\\REFORMATTED"
    image_type: str = ""
    #: an Enhanced CT file (multi-frame, a position per frame), read whole through highdicom;
    #: it stays no single slice (``is_image`` False) for the classic stacking
    enhanced: bool = False
    #: of an Enhanced CT file: each frame's position along the slice normal, mm (file order)
    frame_locations: tuple[float, ...] = ()
    #: the file's TransferSyntaxUID ("" when its file meta has none: read as pydicom found it)
    transfer_syntax: str = ""
    #: LossyImageCompression ("01": compressed with loss at some time, "00": not, "" untagged),
    #: LossyImageCompressionRatio and LossyImageCompressionMethod as the header gives them
    #: (values joined by "\\"): a lossy series is said, its HU not being the scanner's
    lossy_compression: tuple[str, str, str] = ("", "", "")
    #: how the slice was reconstructed: ConvolutionKernel (values joined by "\\", "" untagged)
    #: and ReconstructionDiameter (mm, the field of view; None untagged), to tell
    #: reconstructions of one scan stacked in a series from its contrast phases
    convolution_kernel: str = ""
    reconstruction_diameter: float | None = None
    #: AcquisitionTime (else AcquisitionDateTime's time) in seconds of the day, None untagged
    acquisition_time: float | None = None

    @classmethod
    def from_dataset(
        cls, path: Path, ds, pixel_offset: int | None, pixel_excess: int = 0
    ) -> SliceHeader:
        modality = str(ds.get("Modality", "") or "")
        position = _floats(ds.get("ImagePositionPatient"), 3)
        orientation = _floats(ds.get("ImageOrientationPatient"), 6)
        rows = int(ds.get("Rows") or 0)
        cols = int(ds.get("Columns") or 0)
        frames = ds.get("NumberOfFrames")
        single_frame = frames in (None, "", 1, "1")
        reasons = [
            why
            for why, bad in (
                (f"a {modality} object", modality in _NON_IMAGE_MODALITIES),
                ("no Rows/Columns", rows <= 0 or cols <= 0),
                (_unusable("ImagePositionPatient", ds), position is None),
                (_unusable("ImageOrientationPatient", ds), orientation is None),
            )
            if bad
        ]
        spacing = _floats(ds.get("PixelSpacing"), 2) or _floats(ds.get("ImagerPixelSpacing"), 2)
        enhanced = None
        # an Enhanced CT of one frame is one too (a series split over files may end in one);
        # a classic slice merely labelled with the class (no functional groups) is not
        enhanced_class = str(ds.get("SOPClassUID", "")) in ENHANCED_CT_SOP_CLASSES and (
            not single_frame or "PerFrameFunctionalGroupsSequence" in ds
        )
        if (not single_frame or enhanced_class) and modality not in _NON_IMAGE_MODALITIES:
            # an Enhanced CT: its positions are per frame, so the slice tags are absent
            reasons = [f"a multi-frame image of {frames or 1} frame(s)"]
            if enhanced_class:
                enhanced = _enhanced_frames(ds)
                if isinstance(enhanced, str):  # what it lacks: said where it is listed
                    reasons = [f"{reasons[0]}, {enhanced}"]
                    enhanced = None
        elif not single_frame:
            reasons.append("multi-frame")
        is_image = not reasons
        frame_locations: tuple[float, ...] = ()
        if enhanced is not None:  # the first frame's geometry stands for the file's
            orientation, positions, frame_spacing, thickness, rescale = enhanced
            spacing = frame_spacing or spacing
            position = positions[0]
            normal = np.cross(orientation[:3], orientation[3:])
            normal /= np.linalg.norm(normal)
            frame_locations = tuple(float(np.dot(p, normal)) for p in positions)
        location = None
        if position is not None and orientation is not None:
            normal = np.cross(orientation[:3], orientation[3:])
            norm = np.linalg.norm(normal)
            if norm > 0:
                location = float(np.dot(position, normal / norm))
        acq = ds.get("AcquisitionNumber")
        slope, bad_slope = 1.0, ""
        raw_slope = ds.get("RescaleSlope")
        intercept = ds.get("RescaleIntercept", 0)
        if enhanced is not None and rescale is not None:
            raw_slope, intercept = rescale
        if raw_slope not in (None, ""):
            try:
                slope = float(raw_slope)
            except (TypeError, ValueError):
                slope = float("nan")
            if not np.isfinite(slope) or slope == 0:
                slope, bad_slope = 1.0, str(raw_slope)
        try:
            offset = float(intercept or 0)
        except (TypeError, ValueError):
            offset = float("nan")
        bad_intercept = ""
        if not abs(offset) <= MAX_INTERCEPT_HU:  # NaN too
            offset, bad_intercept = 0.0, str(intercept)
        representation = int(ds.get("PixelRepresentation") or 0)
        return cls(
            padding=_padding(ds, representation),
            path=path,
            series_uid=str(ds.get("SeriesInstanceUID", "")),
            sop_uid=str(ds.get("SOPInstanceUID", "")),
            sop_class_uid=str(ds.get("SOPClassUID", "")),
            modality=modality,
            is_image=is_image,
            position=None if position is None else np.asarray(position),
            orientation=None if orientation is None else tuple(orientation),
            pixel_spacing=None if spacing is None else (spacing[0], spacing[1]),
            rows=rows,
            cols=cols,
            instance_number=_int(ds.get("InstanceNumber"), 0),
            acquisition_number=_int(acq, None),
            slope=slope,
            bad_slope=bad_slope,
            bad_intercept=bad_intercept,
            intercept=offset,
            bits_stored=int(ds.get("BitsStored") or 16),
            pixel_representation=representation,
            pixel_offset=pixel_offset,
            pixel_excess=pixel_excess,
            image_type="\\".join(str(v) for v in (ds.get("ImageType") or ())).upper(),
            series_description=str(ds.get("SeriesDescription", "") or ""),
            series_number=_int(ds.get("SeriesNumber"), None),
            contrast_agent=str(ds.get("ContrastBolusAgent", "") or "") or _agent_codes(ds),
            image_comments=str(ds.get("ImageComments", "") or "")
            or (_frame_comments(ds) if enhanced is not None else ""),
            patient_id=str(ds.get("PatientID", "") or ""),
            patient_name=str(ds.get("PatientName", "") or ""),
            study_uid=str(ds.get("StudyInstanceUID", "") or ""),
            study_description=str(ds.get("StudyDescription", "") or ""),
            study_date=str(ds.get("StudyDate", "") or ""),
            frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
            slice_thickness=(
                thickness if enhanced is not None else _float_or_none(ds.get("SliceThickness"))
            ),
            location=None if enhanced is not None else location,
            not_image=", ".join(reasons),
            n_frames=_int(frames, 1) or 1,
            referenced_uids=_referenced_uids(ds) if modality == "SEG" else frozenset(),
            enhanced=enhanced is not None,
            frame_locations=frame_locations,
            transfer_syntax=_transfer_syntax(ds),
            lossy_compression=_lossy_compression(ds),
            convolution_kernel="\\".join(
                str(v).strip() for v in _values(ds.get("ConvolutionKernel"))
            ).strip("\\"),
            reconstruction_diameter=_float_or_none(ds.get("ReconstructionDiameter")),
            acquisition_time=_time_of_day(ds),
        )


@dataclass
class StackGeometry:
    slices: list[SliceHeader]  # the real slices, sorted
    shape_yx: tuple[int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    sop_instance_uids: list[str]  # per output z ("" for interpolated fill slices)
    files: list[Path | None]
    instance_numbers: list[int | None]  # per output z: the image numbers PACS shows (or None)
    fill: list[tuple[int, int, float]]  # (insert before real index, n slices, gap mm)
    #: (kept, left out) of each position two files gave: their pixels are compared once read
    duplicates: list[tuple[SliceHeader, SliceHeader]] = field(default_factory=list)


#: the largest RescaleIntercept taken as one (a CT's is -1024, -1000, 0 or -8192; a NaN or
#: 1e20 made every voxel 0 HU, unsaid, or ended in an OverflowError)
MAX_INTERCEPT_HU = 1e5


def _mend_intercepts(slices: list[SliceHeader], warnings: list[str]) -> list[SliceHeader]:
    """Files whose RescaleIntercept is no usable number take the other files' (their median),
    said; with no other, the series is refused (no HU can be made of it)."""
    bad = [h for h in slices if h.bad_intercept]
    if not bad:
        return slices
    good = [h.intercept for h in slices if not h.bad_intercept]
    if not good:
        raise InputError(
            bad[0].path,
            f"RescaleIntercept {bad[0].bad_intercept!r} (in all {len(bad)} file(s) of the "
            "series) is no usable number: Hounsfield units cannot be made of the pixels. Fix "
            "the header (a CT's is usually -1024 or -1000)",
        )
    value = float(np.median(good))
    warnings.append(
        f"RescaleIntercept {bad[0].bad_intercept!r} in {len(bad)} file(s) (e.g. "
        f"{bad[0].path.name}) is no usable number: taken as the other files' {value:g}; "
        "check those slices' HU values"
    )
    return [replace(h, intercept=value, bad_intercept="") if h.bad_intercept else h for h in slices]


def stack_geometry(members: list[SliceHeader], warnings: list[str]) -> StackGeometry:
    """Sort slices along the normal and check the stack; problems go to ``warnings``."""
    slices = [h for h in members if h.is_image]
    if not slices:
        raise InputError(members[0].path.parent, "the series holds no image slices")
    unplaced = [h for h in members if not h.is_image and h.modality not in _NON_IMAGE_MODALITIES]
    if unplaced:  # a file of the series that cannot be a slice: named, not silently gone
        warnings.append(
            f"{len(unplaced)} file(s) of the series left out, not usable as slices: "
            + ", ".join(f"{h.path} ({h.not_image})" for h in unplaced[:5])
        )
    slices = stacked_slices(slices, warnings)
    bad = [h for h in slices if h.bad_slope]
    if bad:
        warnings.append(
            f"RescaleSlope {bad[0].bad_slope!r} in {len(bad)} file(s) (e.g. {bad[0].path.name}) "
            "is no scale: taken as 1; check the HU values"
        )
    slices = _mend_intercepts(slices, warnings)
    first = slices[0]
    folder = Path(os.path.commonpath([str(h.path.parent) for h in slices]))
    row = np.asarray(first.orientation[:3], dtype=float)
    col = np.asarray(first.orientation[3:], dtype=float)
    normal = np.cross(row, col)
    sizes = (np.linalg.norm(row), np.linalg.norm(col), np.linalg.norm(normal))
    if (
        not all(np.isfinite(sizes))
        or min(sizes[:2]) < 1e-6
        or sizes[2] < 1e-3 * sizes[0] * sizes[1]
    ):
        raise InputError(
            folder,
            f"ImageOrientationPatient {list(first.orientation)} (in {first.path.name}) does not "
            "give two independent directions: the slices cannot be placed in space",
        )
    row /= sizes[0]
    col /= sizes[1]
    normal /= np.linalg.norm(normal)
    for h in slices:
        h.location = float(np.dot(h.position, normal))
    slices.sort(key=lambda h: (h.location, h.instance_number))
    n_slices = len({h.sop_uid or str(h.path) for h in slices})  # a copy of a file: one slice
    duplicates: list[tuple[SliceHeader, SliceHeader]] = []
    slices = trim_seams(slices, warnings)
    slices = _deduplicate(slices, warnings, duplicates)
    _check_interleaved(slices, warnings)
    if n_slices >= 4 and len(slices) <= n_slices // 2:
        passes = n_slices // max(len(slices), 1)
        if len(slices) >= 2 and n_slices == passes * len(slices):
            # every position held the same number of times: passes stacked at one table
            # position (contrast phases), AcquisitionNumber removed (an anonymiser's doing)
            raise InputError(
                folder,
                f"{n_slices} slices at only {len(slices)} positions, each held {passes} times: "
                f"this looks like {passes} passes stacked in one series (contrast phases, or "
                "reconstructions of one scan with other kernels or thicknesses) with no "
                "AcquisitionNumber to tell them apart, so they cannot be separated here. Copy "
                "one pass's files (e.g. by InstanceNumber range, AcquisitionTime or "
                "ConvolutionKernel) into a folder of its own and open that",
            )
        if len(slices) >= 2:
            raise InputError(
                folder,
                f"{n_slices} slices at only {len(slices)} positions, most held more than once: "
                "passes stacked in one series (contrast phases, or reconstructions) with no "
                "AcquisitionNumber that tells them apart, or the same images sent more than "
                "once under new UIDs; they cannot be separated here. Copy one pass's files "
                "(e.g. by InstanceNumber range, AcquisitionTime or ConvolutionKernel) into a "
                "folder of its own and open that",
            )
        raise InputError(
            folder,
            f"{n_slices} slices but only {len(slices)} distinct position(s) along the slice "
            "normal: ImagePositionPatient repeats, or does not match ImageOrientationPatient — "
            "the series cannot be stacked into a volume",
        )

    dy, dx = first.pixel_spacing or (1.0, 1.0)
    if first.pixel_spacing is None:
        warnings.append("no PixelSpacing in the files: 1 mm assumed in-plane")
    elif not (np.isfinite(dy) and np.isfinite(dx) and dy > 0 and dx > 0):
        raise InputError(
            folder, f"PixelSpacing {dy:g}\\{dx:g} (in {first.path.name}) is not a positive size"
        )
    locations = np.array([h.location for h in slices])
    steps = np.diff(locations)
    fill: list[tuple[int, int, float]] = []
    if len(slices) == 1:
        dz = first.slice_thickness or 1.0
        z_axis = normal
    else:
        usual = float(np.median(steps))
        dz = _finest_step(steps, usual)
        fill, uneven = _find_gaps(steps, dz, warnings, slices, mixed=dz != usual)
        dz = _uneven_spacing(locations, fill, uneven, dz, warnings)
        stride = (slices[-1].position - slices[0].position) / (
            len(slices) - 1 + sum(n for _, n, _ in fill)
        )
        z_axis = stride / np.linalg.norm(stride)
        tilt = float(np.degrees(np.arccos(np.clip(abs(np.dot(z_axis, normal)), 0, 1))))
        if tilt > 0.05:
            warnings.append(
                f"gantry tilt of {tilt:.2f} degrees: slices are offset in-plane; files written "
                "from it (NIfTI, DICOM SEG) keep the sheared geometry (not resampled), while "
                "napari shows the slices stacked straight: its sagittal, coronal and 3D views "
                "are skewed by the tilt"
            )
            # spacing: the distance between the slice planes (volumes and resampling use it);
            # the slice axis: one slice's step over it (CTVolume's sheared convention)
            dz = float(np.dot(stride, normal))
            if dz < 0:
                dz, normal = -dz, -normal
            z_axis = stride / dz
        else:
            z_axis = normal
    direction = np.column_stack([row, col, z_axis])

    sop_uids: list[str] = []
    files: list[Path | None] = []
    numbers: list[int | None] = []
    gaps = {at: n for at, n, _ in fill}
    # a series without InstanceNumber (read as 0 throughout) has no image numbers to show
    numbered = any(h.instance_number for h in slices)
    for k, h in enumerate(slices):
        for _ in range(gaps.get(k, 0)):
            sop_uids.append("")
            files.append(None)
            numbers.append(None)
        sop_uids.append(h.sop_uid)
        files.append(h.path)
        numbers.append(h.instance_number if numbered else None)
    return StackGeometry(
        slices=slices,
        shape_yx=(first.rows, first.cols),
        spacing=(float(dz), float(dy), float(dx)),
        origin=tuple(float(v) for v in slices[0].position),
        direction=direction,
        sop_instance_uids=sop_uids,
        files=files,
        instance_numbers=numbers,
        fill=fill,
        duplicates=duplicates,
    )


_PHASE_PATTERNS = [
    (
        "non-contrast",
        r"\b(PRE|NON[- ]?CON\w*|NONCONTRAST|NC|W/?O|WITHOUT|PLAIN|UNENHANCED|NATIVE)\b",
    ),
    ("arterial", r"\b(ART|ARTERIAL|LATE ART\w*|HAP|EARLY)\b"),
    ("portal venous", r"\b(PV|PVP|PORTAL|VENOUS|VEN)\b"),
    ("delayed", r"\b(DELAY\w*|DEL|EQUIL\w*|LATE)\b"),
]


def phase_from_text(description: str, contrast_agent: str = "", comments: str = "") -> str:
    """Guess the contrast phase from the series description, comments and contrast agent."""
    text = f"{description} {comments}".upper().replace("_", " ")
    for phase, pattern in _PHASE_PATTERNS:
        if re.search(pattern, text):
            return phase
    if contrast_agent.strip():
        return "contrast"
    return "unknown"


# --------------------------------------------------------------------------- helpers
def _group_item(ds, sequence: str, frame: int | None = 0):
    """The first item of ``sequence`` in a frame's functional group (``frame`` of the
    PerFrameFunctionalGroupsSequence), else in the shared one; None when neither has it."""
    places = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if frame is not None and frame < len(per_frame):
        places.append(per_frame[frame])
    places += list(ds.get("SharedFunctionalGroupsSequence") or [])[:1]
    for item in places:
        seq = item.get(sequence) if item is not None else None
        if seq:
            return seq[0]
    return None


def _enhanced_frames(ds):
    """An Enhanced CT's geometry from its functional groups: ``(orientation, positions per
    frame, pixel spacing, slice thickness, (slope, intercept) or None)``, or, when it lacks
    what places its frames, why (a text)."""
    n = _int(ds.get("NumberOfFrames"), 0) or 0
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if n < 1 or len(per_frame) != n:
        return (
            f"its per-frame functional groups hold {len(per_frame)} item(s) for {n} frames "
            "(a truncated or damaged file?)"
        )
    orientation = None
    item = _group_item(ds, "PlaneOrientationSequence")
    if item is not None:
        orientation = _floats(item.get("ImageOrientationPatient"), 6)
    if orientation is None or np.linalg.norm(np.cross(orientation[:3], orientation[3:])) < 1e-3:
        return "no usable ImageOrientationPatient in its functional groups"
    positions = []
    for k in range(n):
        item = _group_item(ds, "PlanePositionSequence", k)
        pos = _floats(item.get("ImagePositionPatient"), 3) if item is not None else None
        if pos is None:
            return f"no ImagePositionPatient for frame {k + 1} in its functional groups"
        positions.append(np.asarray(pos))
    measures = _group_item(ds, "PixelMeasuresSequence")
    spacing = thickness = None
    if measures is not None:
        spacing = _floats(measures.get("PixelSpacing"), 2)
        thickness = _float_or_none(measures.get("SliceThickness"))
    rescale = None
    item = _group_item(ds, "PixelValueTransformationSequence")
    if item is not None and "RescaleSlope" in item:
        rescale = (item.get("RescaleSlope"), item.get("RescaleIntercept", 0))
    return orientation, positions, spacing, thickness, rescale


def _frame_comments(ds) -> str:
    """An Enhanced CT's first frame's FrameComments (a legacy conversion puts the slices'
    ImageComments there, where scanners write the phase)."""
    item = _group_item(ds, "FrameContentSequence")
    return str(item.get("FrameComments", "") or "") if item is not None else ""


def _agent_codes(ds) -> str:
    """An Enhanced CT's contrast agent: the code meanings of its ContrastBolusAgentSequence
    (it has no ContrastBolusAgent text)."""
    names = [
        str(item.get("CodeMeaning", "") or "") for item in ds.get("ContrastBolusAgentSequence", [])
    ]
    return ", ".join(n for n in names if n)


def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    return str((meta.get("TransferSyntaxUID") if meta is not None else None) or "").strip()


def _lossy_compression(ds) -> tuple[str, str, str]:
    """(LossyImageCompression, its ratio(s), its method(s)) as text; ("", "", "") untagged."""

    def text(keyword: str) -> str:
        value = ds.get(keyword)
        if value is None:
            return ""
        several = hasattr(value, "__iter__") and not isinstance(value, (str, bytes))
        values = list(value) if several else [value]  # (a MultiValue: a ratio per compression)
        return "\\".join(str(v).strip() for v in values if str(v).strip())

    try:
        return (
            text("LossyImageCompression"),
            text("LossyImageCompressionRatio"),
            text("LossyImageCompressionMethod"),
        )
    except Exception:  # a damaged value: no reason to refuse the slice
        return ("", "", "")


def _padding(ds, representation: int) -> tuple[int, int] | None:
    """PixelPaddingValue (and PixelPaddingRangeLimit) as stored pixel values. A value written
    signed for unsigned pixels (-2000 for 63536, a common habit) is taken as its 16-bit
    pattern; unreadable values give None (no padding)."""
    bits = int(ds.get("BitsAllocated") or 16)
    values = []
    for keyword in ("PixelPaddingValue", "PixelPaddingRangeLimit"):
        value = ds.get(keyword)
        if isinstance(value, bytes | bytearray):  # implicit VR: US or SS, as the pixels
            value = int.from_bytes(bytes(value)[:2], "little", signed=representation == 1)
        try:
            value = None if value in (None, "") else int(value)
        except (TypeError, ValueError):
            value = None
        if value is not None and representation == 0 and value < 0:
            value += 1 << bits
        values.append(value)
    low, high = values
    if low is None:
        return None
    high = low if high is None else high
    return (min(low, high), max(low, high))


#: the third value of ImageType that marks a localizer (scout, topogram): a projection image
#: the scan was planned on, or a planning slice, never a slice of the volume
_LOCALIZER_TYPES = frozenset({"LOCALIZER", "SCOUT"})


def is_localizer(h: SliceHeader) -> bool:
    """Whether ImageType's third value says the image is a localizer (or scout)."""
    values = h.image_type.split("\\")
    return len(values) > 2 and values[2].strip() in _LOCALIZER_TYPES


def stacked_slices(slices: list[SliceHeader], warnings: list[str]) -> list[SliceHeader]:
    """Of a series' image slices, those stacked into its volume: localizers (ImageType) left
    out, unless the series holds nothing else, then the odd slice of another size,
    orientation or pixel spacing than the rest (see :func:`_keep_majority`); what is left out
    goes to ``warnings``. From the headers alone, so that a series list counts and spaces the
    slices a load reads (it listed a scout's series as 33 slices 15.4 mm apart, read as 32
    slices 8.56 mm apart). Raises :class:`InputError` where more than an odd slice differs.

    A localizer of the slices' own size and orientation (an axial planning slice) was stacked
    into the volume between two slices, 3 mm off their grid: the spacing made non-uniform and
    the liver's volume 2 % off.
    """
    scouts = [h for h in slices if is_localizer(h)]
    if scouts and len(scouts) < len(slices):
        slices = [h for h in slices if not is_localizer(h)]
        kinds = sorted({h.image_type for h in scouts})
        names = ", ".join(str(h.path) for h in scouts[:5])
        more = f" and {len(scouts) - 5} more" if len(scouts) > 5 else ""
        warnings.append(
            f"{len(scouts)} localizer image(s) (ImageType {', '.join(kinds)}: the scan's "
            f"planning images, no slices of it) were left out: {names}{more}"
        )
    slices = _keep_majority(
        slices,
        lambda h: (h.rows, h.cols),
        "Rows/Columns",
        warnings,
        shown=lambda k: f"{k[0]}×{k[1]} pixels",
    )
    slices = _keep_majority(
        slices,
        lambda h: tuple(np.round(h.orientation, 3)),
        "ImageOrientationPatient",
        warnings,
        raw=lambda h: h.orientation,
        shown=lambda k: f"orientation {_plain(k)}",
    )
    return _keep_majority(
        slices,
        lambda h: None if h.pixel_spacing is None else tuple(np.round(h.pixel_spacing, 4)),
        "PixelSpacing",
        warnings,
        raw=lambda h: h.pixel_spacing,
        shown=lambda k: "no PixelSpacing" if k is None else f"pixels of {_plain(k, '×')} mm",
    )


def _plain(numbers, sep: str = "\\") -> str:
    return sep.join(f"{float(v):g}" for v in numbers)


#: at most this many slices of a series with another size or pixel spacing than the rest, that
#: lie where the rest has no slice, are left out (said): a scout or two without a localizer's
#: ImageType, a stray slice. More are the rest of the scan at another matrix (16 slices of
#: 128² after 16 of 96² were left out with a warning, and a liver measured at 110 mL instead
#: of 1386 mL): the series is refused. Slices at the rest's own places (a second
#: reconstruction under the same UID), or in another orientation (a reformat), are left out
#: however many, unless they are as many as the rest (which one is the scan is then unsure)
ODD_SLICES = 3


def _beyond(kept, dropped) -> list:
    """Of ``dropped`` slices, those in the orientation of ``kept`` that lie where ``kept`` has
    no slice (further than half its step from each along its normal): anatomy the volume
    would miss. A second reconstruction's slices lie among the kept ones; a reformat's
    (another orientation) are no part of this stack."""
    ref = kept[0]
    if ref.orientation is None or len(ref.orientation) != 6:
        return []
    row, col = np.asarray(ref.orientation[:3], float), np.asarray(ref.orientation[3:], float)
    normal = np.cross(row, col)
    if not np.linalg.norm(normal):
        return []
    normal = normal / np.linalg.norm(normal)
    here = np.sort([float(np.dot(h.position, normal)) for h in kept if h.position is not None])
    if not len(here):
        return []
    steps = np.diff(here)
    steps = steps[steps > 1e-3]
    half = 0.5 * float(np.median(steps)) if len(steps) else 0.5
    out = []
    for h in dropped:
        if h.position is None or h.orientation is None or len(h.orientation) != 6:
            continue
        if not np.allclose(h.orientation, ref.orientation, atol=1e-3):
            continue
        where = float(np.dot(h.position, normal))
        if float(np.min(np.abs(here - where))) > half + 1e-3:
            out.append(h)
    return out


def _keep_majority(
    slices, key, what: str, warnings: list[str], raw=None, tol: float = 1e-3, shown=str
):
    """The slices whose ``key`` is the most common one; the others are left out, said, unless
    more than :data:`ODD_SLICES` of them lie where the kept ones have no slice, or a value
    is held by as many slices as the most common: the series is then refused, with each
    value (as ``shown`` words it) and how many slices hold it.

    With ``raw`` (the unrounded numbers ``key`` rounds), a slice is kept when its numbers lie
    within ``tol`` of the majority's: the same value written with float noise (0.78125 and
    0.781250001) can round to two keys, and half the series was left out.
    """
    counts = Counter(key(h) for h in slices)
    if len(counts) < 2:
        return slices
    best, _ = counts.most_common(1)[0]
    same = [key(h) == best for h in slices]
    if raw is not None and best is not None:
        ref = np.asarray(raw(next(h for h, s in zip(slices, same, strict=True) if s)), float)
        for i, h in enumerate(slices):
            value = raw(h)
            if not same[i] and value is not None and np.shape(value) == ref.shape:
                same[i] = bool(np.all(np.abs(np.asarray(value, float) - ref) <= tol))
    kept = [h for h, s in zip(slices, same, strict=True) if s]
    dropped = [h for h, s in zip(slices, same, strict=True) if not s]
    if not dropped:
        return slices
    groups: dict = {}
    for h in dropped:
        groups.setdefault(key(h), []).append(h)
    tie = max(len(hs) for hs in groups.values()) >= len(kept)
    beyond = _beyond(kept, dropped)
    if tie or len(beyond) > ODD_SLICES:
        from .dicom import printable

        first = slices[0]
        label = " ".join(
            [f"#{first.series_number}"] * (first.series_number is not None)
            + [f"'{first.series_description}'"] * bool(first.series_description)
        )
        held = [(best, kept), *sorted(groups.items(), key=lambda kv: -len(kv[1]))]
        values = "; ".join(
            f"{len(hs)} slice(s) of {shown(k)} (e.g. {series_file_name(hs[0])})" for k, hs in held
        )
        tie = " (as many as it would keep)" if tie else ""
        raise InputError(
            Path(os.path.commonpath([str(h.path.parent) for h in slices])),
            f"the slices of series {printable(label or first.series_uid)} differ in {what}: "
            f"{values}. Reading only the most common would leave out {len(dropped)} of the "
            f"{len(slices)} slices{tie}: "
            + (
                "two reconstructions under one SeriesInstanceUID, or two parts of the scan; "
                "which is wanted is unsure"
                if tie
                else f"{len(beyond)} of them lie where the others have no slice, part of the "
                "scan a volume of the most common would miss"
            )
            + f", so the series is not read. Copy the slices that share one {what} into a folder of their own (by "
            "InstanceNumber range, say) and open that",
        )
    names = ", ".join(str(h.path) for h in dropped[:5])
    warnings.append(
        f"{len(dropped)} slice(s) with a different {what} than the other {len(kept)} were "
        f"left out: {names}"
    )
    return kept


def parts_in_a_row(parts: list[list[float]]) -> list[int] | None:
    """Of parts of a series (each its sorted positions along the normal), their order along
    the body where they lie one after another, each overlapping at most the next one (none
    within another, no position held by three): the parts of one scan, a chest then an
    abdomen acquisition, say. None where they do not."""
    order = sorted(range(len(parts)), key=lambda k: (parts[k][0], parts[k][-1]))
    for i, (a, b) in enumerate(zip(order, order[1:], strict=False)):
        if not (parts[a][0] < parts[b][0] and parts[a][-1] < parts[b][-1]):
            return None  # one within the other, or sharing an end
        if i + 2 < len(order) and parts[order[i + 2]][0] <= parts[a][-1]:
            return None  # a position held by three parts (the next but one starts first)
    return order


def fold_reacquired(by_acq: dict) -> dict:
    """Of a series' slices by AcquisitionNumber (``{number: its slices}``), a slice or two
    re-acquired under another AcquisitionNumber at positions a larger acquisition already has:
    no phase or part of its own, it joins that acquisition (the duplicate rule, the higher
    InstanceNumber, picks between the copies). ``{number: slices}`` as the series' parts are
    told apart (by ``_split_acquisitions``, and at seams by :func:`trim_seams` alike)."""
    by_acq = dict(by_acq)

    def where(part):
        return {round(h.location, 1) for h in part if h.location is not None}

    largest = max((len(part) for part in by_acq.values()), default=0)
    for acq in sorted(by_acq, key=lambda a: len(by_acq[a])):
        part = by_acq[acq]
        if len(part) >= max(3, 0.1 * largest) or not where(part):
            continue
        host = next(
            (
                other
                for other in sorted(by_acq, key=lambda a: -len(by_acq[a]))
                if other != acq
                and len(by_acq[other]) > len(part)
                and where(part) <= where(by_acq[other])
            ),
            None,
        )
        if host is not None:
            by_acq[host] = by_acq[host] + by_acq.pop(acq)
    return by_acq


def trim_seams(slices: list[SliceHeader], warnings: list[str]) -> list[SliceHeader]:
    """Of parts of one scan under AcquisitionNumbers of their own (``slices`` sorted along the
    normal), lying one after another along the body and overlapping at a seam (a chest and an
    abdomen acquisition sharing a few slices, joined into one volume: ``_split_acquisitions``;
    a slice or two re-acquired under another number are their part's, as there:
    :func:`fold_reacquired`), the slices where two overlap are the part's scanned later, as
    the duplicate rule keeps of a repeated position: the part whose InstanceNumbers all follow
    the other's; where they tell no order (none recorded, or numbered from 1 in each part),
    the part with the later AcquisitionNumber. The other part's slices there are left out,
    and said, with the rule that chose. Their grids seldom line up: both parts' slices,
    interleaved there, made the spacing uneven (stacked on a grid of half the step, or at an
    average step off the true positions). Slices of any other series are returned as they
    are."""
    by_acq: dict[int | None, list[SliceHeader]] = {}
    for h in slices:
        by_acq.setdefault(h.acquisition_number, []).append(h)
    if len(by_acq) < 2 or any(h.location is None for h in slices):
        return slices
    by_acq = fold_reacquired(by_acq)
    if len(by_acq) < 2:
        return slices
    numbers = list(by_acq)
    parts = [sorted(part, key=lambda h: h.location) for part in by_acq.values()]
    order = parts_in_a_row([[h.location for h in part] for part in parts])
    if order is None:
        return slices
    gone: dict[int, SliceHeader] = {}
    said, rules = [], []
    for a, b in zip(order, order[1:], strict=False):
        below, above = parts[a], parts[b]
        if above[0].location > below[-1].location + 0.01:
            continue  # no overlap: a seam of no slices
        kept_at, rule = _later_part((numbers[a], below), (numbers[b], above))
        kept, own = (below, above) if kept_at == numbers[a] else (above, below)
        # (its slices within half its step of the kept part's ends: the step across the
        # seam comes nearest its own)
        steps = np.diff([h.location for h in own])
        half = 0.5 * float(np.median(steps)) if steps.size else 0.0
        lo, hi = kept[0].location - half, kept[-1].location + half
        left = [h for h in own if lo < h.location < hi]
        gone.update((id(h), h) for h in left)
        if left:
            own_at = numbers[b] if kept_at == numbers[a] else numbers[a]
            said.append(
                f"{len(left)} of AcquisitionNumber {_number(own_at)}, where "
                f"AcquisitionNumber {_number(kept_at)} overlaps it"
            )
            rules.append(rule)
    if not gone:
        return slices
    names = ", ".join(series_file_name(h) for h in list(gone.values())[:5])
    more = f" and {len(gone) - 5} more" if len(gone) > 5 else ""
    if len(set(rules)) == 1:  # (one rule decided at every seam: said once)
        read, said = f"the part {rules[0]} was read", said
    else:
        read = "one part was read"
        said = [f"{s}: the part {r} read" for s, r in zip(said, rules, strict=True)]
    warnings.append(
        f"the series joins parts of the scan under AcquisitionNumbers of their own, one after "
        f"another along the body and overlapping at their seams; there {read} and "
        f"{len(gone)} slice(s) of the other left out ({'; '.join(said)}): {names}{more}"
    )
    return [h for h in slices if id(h) not in gone]


def _number(acq: int | None) -> str:
    return "none" if acq is None else str(acq)


def _later_part(a: tuple, b: tuple) -> tuple:
    """Of two parts of one scan meeting at a seam (``(AcquisitionNumber, slices)`` each, ``b``
    the one further along the slice normal), the number of the one scanned later, whose
    slices are read there, and the rule that said so, as a warning words it ("with the higher
    InstanceNumbers"). Each part's own slices decide, not a slice re-acquired under another
    number folded into it (its InstanceNumber is the re-scan's)."""
    (acq_a, part_a), (acq_b, part_b) = a, b
    own_a = [h.instance_number for h in part_a if h.acquisition_number == acq_a]
    own_b = [h.instance_number for h in part_b if h.acquisition_number == acq_b]
    own_a, own_b = own_a or [0], own_b or [0]
    if min(own_a) > max(own_b):
        return acq_a, "with the higher InstanceNumbers"
    if min(own_b) > max(own_a):
        return acq_b, "with the higher InstanceNumbers"
    why = (
        "no InstanceNumbers are recorded to tell the scan order"
        if not any(own_a) and not any(own_b)
        else "the parts' InstanceNumbers overlap (each numbered from 1?), so they tell no "
        "scan order"
    )
    if acq_a is not None and acq_b is not None:
        later = max(acq_a, acq_b)
        return later, f"with the later AcquisitionNumber ({why})"
    # (one part without an AcquisitionNumber: nothing tells which was scanned later)
    return acq_b, (f"further along the slice normal ({why}, and one part has no AcquisitionNumber)")


def _deduplicate(
    slices: list[SliceHeader], warnings: list[str], pairs_out: list | None = None
) -> list[SliceHeader]:
    """One slice per position: of copies, the higher InstanceNumber; ``pairs_out`` receives
    ``(kept, left out)`` of each copy left out."""
    locs = np.array([h.location for h in slices])
    steps = np.diff(locs)
    real = steps[steps > 0.01]
    tol = max(0.01, min(0.1, 0.2 * float(np.median(real)))) if real.size else 0.01
    kept: list[SliceHeader] = []
    dropped: list[SliceHeader] = []
    pairs: set[tuple] = set()  # AcquisitionNumbers of each pair of copies
    where: list[int] = []  # per dropped copy: the index in kept of its position
    for h in slices:
        if kept and abs(h.location - kept[-1].location) < tol:
            pairs.add((h.acquisition_number, kept[-1].acquisition_number))
            if h.instance_number >= kept[-1].instance_number:
                dropped.append(kept[-1])
                kept[-1] = h
            else:
                dropped.append(h)
            where.append(len(kept) - 1)
        else:
            kept.append(h)
    if pairs_out is not None:
        pairs_out.extend((kept[k], d) for k, d in zip(where, dropped, strict=True))
    if dropped:
        names = ", ".join(series_file_name(h) for h in dropped[:5])
        more = f" and {len(dropped) - 5} more" if len(dropped) > 5 else ""
        mixed = sorted(
            {a for pair in pairs if pair[0] != pair[1] for a in pair},
            key=lambda a: (a is None, a if a is not None else 0),
        )
        shown = ", ".join("none" if a is None else str(a) for a in mixed)
        across = (
            f" (copies carry AcquisitionNumbers {shown}: re-acquired slices, or a "
            "short second pass over the same positions; check the series if the latter)"
            if mixed
            else ""
        )
        warnings.append(
            f"{len(dropped)} slice(s) repeated an existing position; kept the higher "
            f"InstanceNumber (the last found where equal) and left out: {names}{more}{across}"
        )
    return kept


#: at most this share of a series' slices (and at least one) is mended: damaged slices
#: interpolated over, or missing ones filled in; more is refused
MENDABLE_SHARE = 0.1


def _check_interleaved(slices: list[SliceHeader], warnings: list[str]) -> None:
    """Warn when SliceThickness goes back and forth along the sorted slices: two
    reconstructions (thick and thin, or of two kernels) that share a SeriesInstanceUID and
    AcquisitionNumber, offset along the body, were stacked as one volume with no word, their
    slices alternating. A series thinner through the liver changes thickness twice, not at
    every slice."""
    known = [h.slice_thickness for h in slices if h.slice_thickness is not None]
    # (0.625 and 0.62500001 are one thickness)
    changes = sum(abs(a - b) > 0.01 for a, b in zip(known[:-1], known[1:], strict=True))
    # going back and forth, not a few thinner stretches (through the liver, the pelvis) or
    # transition slices (5, 3.75, 1.25 … 1.25, 3.75, 5 mm): four changes there
    if changes <= max(4, 0.25 * len(known)):
        return
    counts = Counter(round(t, 2) for t in known)
    seen = ", ".join(f"{t:g} mm ({n} slices)" for t, n in counts.most_common(4))
    warnings.append(
        f"SliceThickness changes {changes} times along the series ({seen}): two "
        "reconstructions seem interleaved in one series (same SeriesInstanceUID and "
        "AcquisitionNumber), stacked here as one volume whose slices alternate between them. "
        "Copy one reconstruction's files (by SliceThickness or InstanceNumber range) into a "
        "folder of its own and open that"
    )


#: a series whose steps are whole multiples of a step this many times finer than the usual
#: one at most is stacked on that finer step (the others filled in)
_FINEST_RATIO = 4.0


def _finest_step(steps: np.ndarray, usual: float) -> float:
    """The step to stack at: ``usual`` (the median), or a finer step every step is a whole
    multiple of (within 10 %), when three or more steps in a row are that finer one.

    A series thinner through the liver than elsewhere (1.25 mm there, 2.5 mm around it) was
    stacked at the average of its steps when the thicker ones were the more (1.98 mm: slices
    up to 5 mm from their place, and the thin stretch's volumes 59 % too large), and exactly
    when the thinner were (the thick steps filled in as missing slices). Stacked on the finer
    step either way, with the positions between the thicker steps filled in. Not when the
    finer step is more than :data:`_FINEST_RATIO` times finer (one odd short step would
    multiply the volume), nor when filling would more than triple the slices.
    """
    if steps.size < 2 or usual <= 0:
        return usual
    is_finer = steps < 0.9 * usual
    # a stretch of them: three in a row at least (one odd short step, at a join of two
    # ranges, would double the slices for one place: it stays an uneven step)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[False, is_finer, False])))[::2]
    if runs.size == 0 or runs.max() < 3:
        return usual
    finer = steps[is_finer]
    step = float(np.median(finer))
    if step <= 0 or usual / step > _FINEST_RATIO + 0.2:
        return usual
    ratio = steps / step
    n = np.round(ratio)
    if np.any(n < 1) or np.any(np.abs(ratio - n) > 0.1) or n.sum() > 3 * steps.size:
        return usual
    return step


def _find_gaps(steps: np.ndarray, dz: float, warnings: list[str], slices=None, mixed: bool = False):
    """Gaps that are whole missing slices (filled later) and the other uneven steps; a gap is
    said by the files (and image numbers) on either side of it, when ``slices`` are given.

    A wider step between two consecutive image numbers lost no image: the spacing changes there
    (a series thinner through the liver than elsewhere), said as such and never refused. Without
    image numbers, ``mixed`` (``dz`` is finer than most of the series' steps,
    :func:`_finest_step`) or three wider steps in a row say the same."""
    fill = []
    uneven = []
    for i, step in enumerate(steps):
        ratio = step / dz
        if abs(ratio - 1) <= 0.05 or abs(step - dz) <= 0.01:
            continue
        n = int(round(ratio))
        if n >= 2 and abs(ratio - n) < 0.2:
            fill.append((i + 1, n - 1, float(step)))
        else:
            uneven.append(float(step))
    if not fill:
        return fill, uneven
    numbered = slices is not None and any(h.instance_number for h in slices)
    # a spacing change is at most _FINEST_RATIO steps wide: a wider step is a hole in the scan
    # (images deleted and the rest numbered again), filled only within the tenth's limit
    narrow = {at for at, n, _ in fill if n + 1 <= _FINEST_RATIO}
    if numbered:

        def spaced(at: int) -> bool:
            consecutive = abs(slices[at].instance_number - slices[at - 1].instance_number) == 1
            return at in narrow and consecutive

    else:
        ats = [at for at, n, _ in fill if n == 1]
        guess = mixed or any(ats[i + 2] - ats[i] == 2 for i in range(len(ats) - 2))

        def spaced(at: int) -> bool:
            return guess and at in narrow

    changes = [gap for gap in fill if spaced(gap[0])]
    missing = [gap for gap in fill if not spaced(gap[0])]
    whole = len(steps) + 1 + sum(n for _, n, _ in fill)

    def files(at: int) -> str:
        a, b = slices[at - 1], slices[at]
        return (
            f"{series_file_name(a)} (image {a.instance_number}) and "
            f"{b.path.name} (image {b.instance_number})"
        )

    if missing:
        total = sum(n for _, n, _ in missing)

        def between(at: int, n: int) -> str:
            return f"{n} before slice {at}" if slices is None else f"{n} between {files(at)}"

        where = "; ".join(between(at, n) for at, n, _ in missing[:5])
        if len(missing) > 5:
            where += f"; and {len(missing) - 5} more gap(s)"
        at, widest, step = max(missing, key=lambda gap: gap[1])
        if widest > max(1, int(MENDABLE_SHARE * whole)):
            # made-up anatomy: a liver and its lesions measured across centimetres of it (a
            # transfer cut short, a series exported in part) are not figures to report. One
            # gap, not the sum: a series thinner through the liver than elsewhere (1.25 and
            # 2.5 mm) has a missing slice at every other position outside it, and is read
            raise InputError(
                slices[at - 1].path.parent if slices is not None else None,
                f"{widest} consecutive slice positions of the series' {whole} have no image "
                f"({where}; that gap is {step:.1f} mm wide): too many to fill in; at most a "
                "tenth in a row are interpolated. Is the series complete (a transfer cut "
                "short, a partial export)?",
            )
        warnings.append(
            f"{total} missing slice(s) detected ({where}); filled by linear interpolation "
            "so the spacing stays uniform"
        )
    if changes:
        total = sum(n for _, n, _ in changes)
        wide = np.array([step for _, _, step in changes])
        middle = float(np.median(wide))
        if np.ptp(wide) <= 0.01:
            seen = f"{middle:.4g} mm"
        elif np.ptp(wide) <= 0.05 * middle:
            seen = f"about {middle:.3g} mm"
        else:
            seen = f"{wide.min():.3g} to {wide.max():.3g} mm"
        # where (a series renumbered after images were deleted reads as one: the files say)
        where = (
            "; ".join(f"between {files(at)}" for at, _, _ in changes[:3])
            + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
            if slices is not None
            else f"{len(changes)} step(s)"
        )
        warnings.append(
            f"slice spacing changes along the series: {dz:.4g} mm in places, {seen} elsewhere "
            f"({where}); stacked on the {dz:.4g} mm grid, the {total} "
            "position(s) between the slices further apart filled by linear interpolation "
            "(volumes and positions stay true)"
        )
    return fill, uneven


def stack_step(locations) -> float | None:
    """The slice step :func:`stack_geometry` stacks slices at these positions along the normal
    (mm; one per position): the finer step of a series thinner in places, the average step of
    an uneven one. What a series list shows (its median step was 30.5 mm where the load
    stacked at 15.3 mm). None for fewer than two positions."""
    locs = np.sort(np.asarray(list(locations), dtype=float))
    if locs.size < 2:
        return None
    steps = np.diff(locs)
    usual = float(np.median(steps))
    dz = _finest_step(steps, usual)
    said: list[str] = []  # (the load says them)
    try:
        fill, uneven = _find_gaps(steps, dz, said, None, mixed=dz != usual)
        return float(_uneven_spacing(locs, fill, uneven, dz, said))
    except InputError:  # too many missing: the load refuses it, and says why
        return float(dz)


def grid_index(n_real: int, fill: list[tuple[int, int, float]]) -> np.ndarray:
    """Each real slice's index on the uniform grid: its own, plus the gap slices ``fill``
    inserts before it (``(insert_at, n_new, _)`` per gap)."""
    index = np.arange(n_real)
    for at, n_new, _ in fill:
        index[at:] += n_new
    return index


def series_file_name(h: SliceHeader) -> str:
    """``folder/name`` of a slice's file: NBIA names every series' files 1-001.dcm…, so the
    folder says which series."""
    return f"{h.path.parent.name}/{h.path.name}"


def _uneven_spacing(locations, fill, uneven, dz, warnings: list[str]) -> float:
    """The step to stack slices at: the usual one, unless steps are uneven or drift (each
    within 5 % of it, yet adding up along the scan); then their average over the run, said,
    with how far off that places any slice."""
    index = grid_index(len(locations), fill).astype(float)  # filled gaps counted
    drift = float(np.max(np.abs(locations - (locations[0] + index * dz))))
    if not uneven and drift <= 0.1 * dz:
        return dz
    mean = float((locations[-1] - locations[0]) / index[-1])
    off = float(np.max(np.abs(locations - (locations[0] + index * mean))))
    if uneven:
        lo, hi = min(uneven), max(uneven)
        seen = f"{lo:.4g} mm" if abs(hi - lo) < 0.005 else f"{lo:.4g} to {hi:.4g} mm"
        what = (
            f"{len(uneven)} of {len(locations) - 1} step(s) between slices are {seen}, not "
            f"the usual {dz:.4g} mm"
        )
    else:
        what = f"steps near {dz:.4g} mm add up to {drift:.2g} mm off along the scan"
    steps = np.diff(locations) / np.maximum(np.diff(index), 1)
    worst = float(np.max(np.abs(steps - mean)) / abs(mean)) if steps.size else 0.0
    warnings.append(
        f"non-uniform slice spacing: {what}; slices stacked at their average step, "
        f"{mean:.4g} mm, so a slice lies up to {off:.2g} mm from its true position. Volumes "
        f"count each slice as {abs(mean):.4g} mm thick (its own steps differ by up to "
        f"{100 * worst:.0f} %), and positions along the body (lesion centroids in mm, 3D "
        "diameters) are as far off: take them as approximate, or have the series "
        "reconstructed at one spacing. A DICOM SEG export keeps every slice's true position"
    )
    return mean


def _referenced_uids(ds) -> frozenset[str]:
    uids = set()
    for series in ds.get("ReferencedSeriesSequence", []):
        for item in series.get("ReferencedInstanceSequence", []):
            uids.add(str(item.get("ReferencedSOPInstanceUID", "")))
    uids.discard("")
    return frozenset(uids)


def _unusable(keyword: str, ds) -> str:
    """Why a position or orientation tag gives nothing: missing, or numbers that are not
    (NaN, infinite, too few)."""
    value = ds.get(keyword)
    if value is None or value == "":
        return f"no {keyword}"
    return f"{keyword} {str(value)!r} is not {'3' if 'Position' in keyword else '6'} finite numbers"


def _floats(value, n: int) -> list[float] | None:
    if value is None:
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(np.isfinite(out)):
        return None
    return out


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _values(value) -> list:
    """A header value as a list of its values (one value, a MultiValue, or none)."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _time_of_day(ds) -> float | None:
    """AcquisitionTime ("HHMMSS.FFFFFF", or the old "HH:MM:SS"), else AcquisitionDateTime's
    time, in seconds of the day; None when neither is a time."""
    text = str(ds.get("AcquisitionTime", "") or "").replace(":", "").strip()
    if not text:
        stamp = str(ds.get("AcquisitionDateTime", "") or "").strip()
        text = stamp[8:].split("+")[0].split("-")[0] if len(stamp) > 8 else ""
    match = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(\.\d*)?", text)
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    value = int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    return value + (float(fraction) if fraction and len(fraction) > 1 else 0.0)


def _float_or_none(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v > 0 and np.isfinite(v) else None
