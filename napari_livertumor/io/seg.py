"""DICOM SEG: write our masks referencing the source CT (highdicom); read HCC-TACE-Seg labels.

Reading maps every frame to the reference CT's grid by the SOP instance it was derived from
(else by its plane position) and every segment to a class by its label text — never by frame order
or segment number, which differ between HCC-TACE-Seg patients.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom

from ..errors import InputError
from ..fileio import atomic_path
from .classes import CLASS_RGB
from .volume import CTVolume

log = logging.getLogger(__name__)

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
#: Segmentation Storage and Label Map Segmentation Storage.
SEG_SOP_CLASSES = {SEG_SOP_CLASS, "1.2.840.10008.5.1.4.1.1.66.7"}

#: Segment label text (lower case, normalised) -> class value.
LABEL_TO_CLASS = {
    "liver": 1,
    "mass": 2,
    "tumor": 2,
    "tumour": 2,
    "lesion": 2,
    "necrosis": 2,
    "necroses": 2,
    "necrotic": 2,
    "hcc": 2,
    "neoplasm": 2,
    "metastasis": 2,
    "metastases": 2,
    "metastatic": 2,
    "carcinoma": 2,
    "cancer": 2,
    "portal vein": 3,
    "portalvein": 3,
    "abdominal aorta": 4,
    "aorta": 4,
}
#: SNOMED CT's Necrosis: a tumor segment, counted as such and said (HCC_017's)
NECROSIS_CODE = "6574001"
#: the classes in words, as notes name them
CLASS_WORDS = {1: "liver", 2: "tumor", 3: "portal vein", 4: "aorta"}
#: A SEG's series number is the CT's plus this (HCC-TACE-Seg numbers its ground-truth SEGs
#: 300: a model's SEG beside it in a PACS is a series of its own)
SEG_SERIES_OFFSET = 1000
# Painting order when segments overlap: the later wins (tumor over liver).
_PAINT_ORDER = {1: 0, 3: 1, 4: 2, 2: 3}


_TUMOR_WORDS = (
    r"(?:tumou?rs?|mass(?:es)?|lesions?|hcc|necros[ie]s|necrotic|neoplasms?|metasta(?:sis|ses|tic)"
    r"|carcinomas?|cancers?)"
)
#: the words of the other classes, as a segment label may negate them ("Liver, excluding
#: portal vein" is liver)
_VESSEL_WORDS = r"(?:portal\s?veins?|(?:abdominal\s)?aortas?)"

#: SNOMED CT codes of a segment's Segmented Property Type (what a SEG says a segment is,
#: whatever its label: 3D Slicer names them "Segment_1"): the class each is read as
SCT_TO_CLASS = {
    "10200004": 1,  # Liver (structure)
    "4147007": 2,  # Mass
    "108369006": 2,  # Neoplasm / Tumor
    "86049000": 2,  # Malignant neoplasm, primary
    "14799000": 2,  # Neoplasm, metastatic
    "128462008": 2,  # Metastasis
    "94381002": 2,  # Secondary malignant neoplasm of liver
    "93870000": 2,  # Malignant neoplasm of liver
    "25370001": 2,  # Hepatocellular carcinoma
    "1187425009": 2,  # Carcinoma
    "68453008": 2,  # Carcinoma, no subtype
    "52988006": 2,  # Lesion
    "6574001": 2,  # Necrosis (NECROSIS_CODE)
    "32764006": 3,  # Portal vein
    "7832008": 4,  # Abdominal aorta
    "15825003": 4,  # Aorta
    # SNOMED RT's older codes (scheme SRT), as older dcmqi, 3D Slicer and OHIF SEGs carry them
    "T-62000": 1,  # Liver
    "M-03000": 2,  # Mass
    "M-80000": 2,  # Neoplasm
    "M-80003": 2,  # Neoplasm, malignant
    "M-54000": 2,  # Necrosis (NECROSIS_CODE's)
    "T-48810": 3,  # Portal vein
    "T-42000": 4,  # Aorta
    "T-42500": 4,  # Abdominal aorta
}


def _without_negated(key: str, words: str) -> str:
    """``key`` (a normalised segment label) without the ``words`` it negates: "non-tumor",
    "without necrosis", "tumor-free", "necrosis excluded"."""
    return re.sub(
        rf"(?:\b(?:non|no|not|without|excluding|except|minus)|\bw/o)\s+{words}\b"
        rf"|\b{words}\s+\(?(?:free|excluded|removed)\b",
        " ",
        key,
    )


def label_to_class(label: str) -> int:
    """Class value (0 when unknown) for a segment label such as ``"Mass"`` or ``"Portal Vein"``."""
    key = re.sub(r"[\s_\-]+", " ", label.strip().lower())
    if key in LABEL_TO_CLASS:
        return LABEL_TO_CLASS[key]
    # "Non-tumor liver", "Tumor-free liver", "Liver without tumor", "Liver (tumor excluded)":
    # a negated tumor word says what the segment is not; it is taken out before the search, so
    # "Tumor without necrosis" stays a tumor and "Non-tumor liver" is liver
    tumor_words = _TUMOR_WORDS
    key = _without_negated(_without_negated(key, tumor_words), _VESSEL_WORDS)
    if re.search(r"\bliver\b", key):
        # "Liver + tumor", "Liver and tumors", "Whole liver (incl. tumor)": the whole organ, a
        # liver segment; tumor painted over it would make the whole liver tumor
        key = re.sub(
            rf"(?:\b(?:incl(?:uding|uded)?\.?|with|and|plus)|[+&])\s*{tumor_words}\b", " ", key
        )
    # words of the more specific classes first: "Liver mass", "Liver tumor" and "Liver lesion"
    # are tumors, "Portal vein (liver)" a vessel; a plural or a number may follow a word
    # ("Tumors", "Masses", "Mass1", "Tumor 2")
    for word, value in sorted(LABEL_TO_CLASS.items(), key=lambda kv: kv[1] == 1):
        if re.search(rf"\b{word}(?:es|s)?\d*\b", key):
            return value
    return 0


def read_dicom_seg(
    seg_path: str | Path,
    reference: CTVolume,
    *,
    warnings: list[str] | None = None,
) -> np.ndarray:
    """Read a DICOM SEG onto the grid of its reference CT.

    Parameters
    ----------
    seg_path : str or Path
        A DICOM Segmentation Storage file.
    reference : CTVolume
        The CT the SEG was drawn on, as read by :func:`~napari_livertumor.io.dicom.read_dicom_series`
        (its ``meta["sop_instance_uids"]`` are used) or any volume on the same grid (positions).
    warnings : list of str, optional
        Receives notes (unknown segment labels, frames outside the CT, overlaps).

    Returns
    -------
    ndarray, shape (Z, Y, X), uint8
        0 other, 1 liver, 2 tumor mass (incl. necrosis), 3 portal vein, 4 abdominal aorta.
    """
    seg_path = Path(seg_path)
    notes = warnings if warnings is not None else []
    ds = _read_seg_dataset(seg_path)
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", [])
    # a CT held in another voxel order than its SEG's frames (a prone series shown turned, a
    # NIfTI written with flipped rows): read on the CT turned to the frames' axes, turned back
    turn = _turn_to_frames(_seg_orientation(shared, per_frame), reference, seg_path)
    if turn is not None:
        return turn.undo(read_dicom_seg(seg_path, reference.turned(turn), warnings=warnings))
    segment_class = _segment_classes(ds, notes, seg_path)
    frames = _frames(ds, seg_path)
    n_frames = frames.shape[0]
    if (ds.Rows, ds.Columns) != reference.shape[1:]:
        raise InputError(
            seg_path,
            f"SEG frames are {ds.Rows}x{ds.Columns} but the CT slices are "
            f"{reference.shape[1]}x{reference.shape[2]}: it does not belong to this CT",
        )
    uid_to_z = _uid_to_z(reference.meta)
    to_index = np.linalg.inv(reference.affine_lps)
    referenced = _source_uids(per_frame)
    if uid_to_z and referenced and not referenced & {u for u, _ in uid_to_z}:
        seg_series = _referenced_series(ds) or "?"
        ct_series = reference.meta.get("series_uid", "?")
        if seg_series == ct_series:  # a stacked series read at another acquisition
            acq = reference.meta.get("acquisition_number")
            if acq is None:  # one acquisition read (or none numbered): which is unknown
                raise InputError(
                    seg_path,
                    f"the SEG names series {ct_series} as its source, but none of its "
                    f"{len(referenced)} source images is a slice of that series as read: it "
                    "was drawn on another acquisition of the series, missing from the folder, "
                    "or its references point at another series' images",
                )
            # a pass numbered 1..n (its number no AcquisitionNumber) is said as its label:
            # "pass 2, acq 1, kernel LUNG" (QA adv61b: "AcquisitionNumber 2" of pass 2)
            label = str(reference.meta.get("acquisition_label") or "")
            is_pass = label.startswith("pass ")
            word = "pass" if is_pass else "acquisition"
            raise InputError(
                seg_path,
                f"the SEG was drawn on another {word} of series {ct_series} than the one "
                f"read ({label if is_pass else f'AcquisitionNumber {acq}'}); none of its "
                f"{len(referenced)} source images is here: the segmented {word} is missing from "
                "the folder, or read it with its "
                + ("pass number (--acquisition 'pass N')" if is_pass else "acquisition number"),
            )
        raise InputError(
            seg_path,
            f"the SEG references series {seg_series} (none of its "
            f"{len(referenced)} source images is a slice of the CT series "
            f"{ct_series}): load the CT series it was drawn on",
        )

    if not (referenced and uid_to_z):  # placed by position only: is it this scan at all?
        _check_same_scan(ds, reference, notes, seg_path)

    labels = np.zeros(reference.shape, dtype=np.uint8)
    priority = np.full(reference.shape, -1, dtype=np.int8)
    unmapped = 0
    labelmap = str(ds.get("SegmentationType", "")) == "LABELMAP"
    # a Necrosis segment (HCC-TACE-Seg's HCC_017) counts as tumor: said, with what of it lies
    # outside the Mass and Liver segments (the original dropped that patient for it)
    necrotic = _necrosis_segments(ds)
    necrosis = np.zeros(reference.shape, bool) if necrotic else None
    organ = np.zeros(reference.shape, bool) if necrotic else None
    undescribed: dict[int, int] = {}  # segment number -> frames drawn for it, not described
    framed: set[int] = set()  # slices a frame fell on (a filled slice too: placed by position)
    for i in range(n_frames):
        group = per_frame[i] if i < len(per_frame) else None
        if labelmap:  # pixel values are segment numbers; one frame holds every segment
            pieces = [(frames[i] == n, v, n) for n, v in segment_class.items() if v]
            for n in np.unique(frames[i]).tolist():
                if n and n not in segment_class:
                    undescribed[n] = undescribed.get(n, 0) + 1
        else:  # one segment per frame, named in the frame's functional groups
            number = _frame_segment(group, shared, segment_class, seg_path, i)
            if number not in segment_class and frames[i].any():
                undescribed[number] = undescribed.get(number, 0) + 1
            value = segment_class.get(number, 0)
            pieces = [(frames[i] > 0, value, number)] if value else []
        if not pieces:
            continue
        z = _frame_z(group, shared, uid_to_z, to_index, reference)
        if z is None:
            unmapped += 1
            continue
        framed.add(z)
        for mask, value, number in pieces:
            rank = _PAINT_ORDER[value]
            paint = mask & (priority[z] < rank)
            labels[z][paint] = value
            priority[z][paint] = rank
            if necrotic:
                if number in necrotic:
                    necrosis[z] |= mask
                elif value in (1, 2):
                    organ[z] |= mask
    if necrotic and necrosis.any():
        from scipy import ndimage as ndi

        # outside the organ: not in the Mass or Liver segments, nor in a hole of theirs on its
        # slice (a core cut out of the Mass, as a label map writes it), nor within 2 voxels of
        # them (a core open to the liver's edge)
        outside = sum(
            int(
                np.count_nonzero(
                    necrosis[z]
                    & ~ndi.binary_dilation(ndi.binary_fill_holes(organ[z]), iterations=2)
                )
            )
            for z in np.flatnonzero(necrosis.any(axis=(1, 2)))
        )
        notes.append(
            f"its Necrosis segment ({int(np.count_nonzero(necrosis))} voxels) is counted as "
            "tumor"
            + (
                f"; {outside} of its voxels lie outside the Mass and Liver segments (check the "
                "segmentation)"
                if outside
                else ""
            )
        )
    del necrosis, organ
    if undescribed:  # a damaged or hand-edited SEG: the liver went missing, unsaid
        said = ", ".join(f"{n} ({k} frame(s))" for n, k in sorted(undescribed.items()))
        described = ", ".join(str(n) for n in sorted(segment_class))
        notes.append(
            f"frames drawn for segment(s) {said} that the SEG does not describe (it "
            f"describes {described}) were left out: the file is damaged or was edited; check "
            "the ground truth"
        )
    if 1 not in segment_class.values() and is_ground_truth(ds):
        # as convert, train --check and evaluate refuse it (its header says it): the Load panel
        # and File > Open showed it with no word
        from ..training.data import NO_LIVER_WHY

        shown = ", ".join(label for label, _ in _segment_labels(ds)) or "none"
        notes.append(f"the SEG describes no liver segment (its segments: {shown}): {NO_LIVER_WHY}")
    if 2 not in segment_class.values() and is_ground_truth(ds):
        # a tumor-free ground truth is legitimate, but in HCC-TACE-Seg every patient has HCC:
        # a Mass segment dropped by an edit was scored and trained on as tumor-free, unsaid
        shown = ", ".join(label for label, _ in _segment_labels(ds))
        notes.append(
            f"the SEG describes no tumor segment (its segments: {shown}): the patient is taken "
            "as tumor-free; every HCC-TACE-Seg patient has HCC, so its tumor was probably not "
            "annotated or was dropped"
        )
    if unmapped:
        if unmapped == n_frames or not labels.any():
            ref_series = _referenced_series(ds)
            ct_series = reference.meta.get("series_uid")
            if ref_series and ref_series == ct_series:
                raise InputError(
                    seg_path,
                    f"none of the SEG's {n_frames} frames falls on a slice of the CT, though "
                    f"both name series {ct_series}: the frames' positions do not match the "
                    "slices' (another acquisition of the series, or a SEG written with wrong "
                    "positions)",
                )
            raise InputError(
                seg_path,
                f"none of the SEG's {n_frames} frames fall on the CT "
                f"(SEG references series {ref_series or '?'}, CT is series "
                f"{ct_series or '?'}): it belongs to another series",
            )
        unused = reference.file_meta.get("unused_files") or []
        why = (
            f" (the CT's reader left out {len(unused)} file(s) of its series, e.g. "
            f"{Path(unused[0]).name}: unreadable or duplicate slices; frames drawn on them have "
            "no slice here)"
            if unused
            else ""
        )
        notes.append(
            f"{unmapped} SEG frame(s) do not fall on a slice of the CT and were ignored{why}"
        )
    _fill_interpolated_slices(labels, reference, notes, framed)
    counts = np.bincount(labels.ravel(), minlength=5)
    if counts[2] > counts[1] > 0:  # HCC-TACE-Seg's HCC_065 and HCC_075 are known for this
        notes.append(
            f"its tumor ({int(counts[2])} voxels) is larger than the rest of the liver "
            f"({int(counts[1])}): a very large tumor, or the Liver and Mass labels swapped; "
            "check the segments"
        )
    return labels


def _fill_interpolated_slices(
    labels: np.ndarray, reference: CTVolume, notes: list[str], framed: set[int]
) -> None:
    """Label the CT's slices its reader filled in over a gap (no DICOM image there) that no
    SEG frame fell on, from the real slices on either side, in place: each class's shape is
    interpolated between them (its in-plane signed distance, weighted by how near each slice
    is; the organ as every labelled voxel, then vessels and tumor painted over it). Left
    empty, they striped a SEG reopened in napari (one `segment` wrote on such a scan has no
    frames there), and a series of 2.5 then 5 mm slices showed half its liver and tumor. A
    slice a frame fell on by its position (a SEG drawn on the whole series, read on a folder
    missing some of its files) keeps the SEG's own labels."""
    # the slices without a usable file: filled over a gap (no UID either), or read from a
    # damaged file whose header placed it (interpolated too; a SEG cannot reference it)
    files = reference.meta.get("files") or reference.meta.get("sop_instance_uids")
    if not files or len(files) != labels.shape[0] or not labels.any():
        return
    real = [z for z, f in enumerate(files) if f]
    empty = [z for z, f in enumerate(files) if not f and z not in framed]
    if not empty or not real:
        return
    from scipy import ndimage as ndi

    sampling = tuple(float(v) for v in reference.spacing[1:])
    far = float(np.hypot(labels.shape[1] * sampling[0], labels.shape[2] * sampling[1]))

    def distance(mask: np.ndarray) -> np.ndarray:  # mm, negative inside; ``far`` for none
        if not mask.any():
            return np.full(mask.shape, far, np.float32)
        if mask.all():
            return np.full(mask.shape, -far, np.float32)
        return (
            ndi.distance_transform_edt(~mask, sampling=sampling)
            - ndi.distance_transform_edt(mask, sampling=sampling)
        ).astype(np.float32)

    labelled = 0
    for z in empty:
        below = max((r for r in real if r < z), default=None)
        above = min((r for r in real if r > z), default=None)
        if below is None or above is None:  # (a reader fills gaps only: never at an end)
            continue
        t = (z - below) / (above - below)
        out = np.zeros(labels.shape[1:], np.uint8)
        for value in sorted(_PAINT_ORDER, key=_PAINT_ORDER.get):
            a, b = ((labels[k] > 0) if value == 1 else (labels[k] == value) for k in (below, above))
            either = a | b
            if not either.any():
                continue
            # in the box of either shape and a voxel around it: the result lies within them,
            # and the distances there are those of the whole slice (the box's rim is outside
            # both), at a fraction of the cost on a 512 x 512 slice
            ys, xs = np.flatnonzero(either.any(axis=1)), np.flatnonzero(either.any(axis=0))
            box = (
                slice(max(int(ys[0]) - 1, 0), int(ys[-1]) + 2),
                slice(max(int(xs[0]) - 1, 0), int(xs[-1]) + 2),
            )
            inside = ((1 - t) * distance(a[box]) + t * distance(b[box])) < 0
            out[box][inside] = value
        labels[z] = out
        labelled += bool(out.any())
    if labelled:
        notes.append(
            f"{labelled} slice(s) of the CT were filled in over a gap in its series, where no "
            "SEG frame lies: their labels were interpolated from the slices on either side"
        )


def _said(notes: list[str] | None, note: str) -> None:
    """Add ``note`` to the caller's ``notes`` (who says it: `segment` logged it again, with its
    case's name), or, when it passed no list, log it as a warning."""
    if notes is not None:
        notes.append(note)
    else:
        log.warning("%s", note)


#: SeriesDescription of the DICOM SEGs of a model's segmentation as it came (``livertumor
#: segment --dicom-seg``, an unedited one exported or saved in napari)
MODEL_SEG_PREFIX = "livertumor "


def model_seg_description(what: str = "segmentation") -> str:
    """The SeriesDescription marking a DICOM SEG as a model's unedited output."""
    from .. import __version__

    return f"{MODEL_SEG_PREFIX}{__version__} {what}"[:64]


def seg_series_description(
    algorithm_type: str, liver_only: bool = False, ground_truth: bool = True
) -> str:
    """A DICOM SEG's SeriesDescription by how it was made, alike from Export and from napari's
    File > Save: the model's output as `segment` describes its own ("livertumor VERSION
    liver+tumor"), "… (edited)" once reviewed (SEMIAUTOMATIC), a ground truth's (MANUAL) as
    one (File > Save wrote the layer's name, Export these), and labels drawn by hand that are
    no ground truth (``ground_truth`` False: a napari labels layer painted from scratch) as a
    manual segmentation: a PACS list showed a sketch as a reference standard."""
    what = "liver" if liver_only else "liver+tumor"
    if algorithm_type == "AUTOMATIC":
        return model_seg_description(what)
    if algorithm_type == "SEMIAUTOMATIC":
        return model_seg_description(f"{what} (edited)")
    if not ground_truth:
        return MANUAL_SEG_DESCRIPTION
    return "Ground truth (napari-livertumor export)"


#: the SeriesDescription of labels drawn by hand that are no ground truth (read back as a
#: segmentation, not as a reference to score against)
MANUAL_SEG_DESCRIPTION = "Manual segmentation (napari-livertumor export)"


def is_ground_truth(ds) -> bool:
    """Is ``ds`` (a DICOM SEG header) read as a ground truth? Not when this plugin wrote it
    from a model's output (its algorithm named, not drawn by hand: a reviewed one too) or from
    labels drawn by hand that it saved as no ground truth, which Inspect must not score against
    as the truth."""
    if str(ds.get("SeriesDescription", "")) == MANUAL_SEG_DESCRIPTION:
        # drawn by hand and saved here as no ground truth: reopened as one, it was saved
        # again as "Ground truth" and scored against
        return False
    for segment in ds.get("SegmentSequence", []):
        kind = str(segment.get("SegmentAlgorithmType", "")).upper()
        ids = segment.get("SegmentationAlgorithmIdentificationSequence", [])
        names = {str(item.get("AlgorithmName", "")) for item in ids}
        if kind in ("AUTOMATIC", "SEMIAUTOMATIC") and "napari-livertumor" in names:
            return False
    return True


def is_model_output(ds) -> bool:
    """Is ``ds`` (a DICOM SEG header) a model's segmentation as it came, written by this tool
    (``segment --dicom-seg``, or exported unedited: every segment AUTOMATIC and the series
    description of :func:`model_seg_description`)? Such a file beside a CT is no ground truth:
    readers that look for one leave it out. An edited one (SEMIAUTOMATIC) is kept."""
    segments = ds.get("SegmentSequence") or []
    return (
        str(ds.get("Manufacturer", "") or "") == "napari-livertumor"
        and str(ds.get("SeriesDescription", "") or "").startswith(MODEL_SEG_PREFIX)
        and len(segments) > 0
        and all(str(x.get("SegmentAlgorithmType", "")).upper() == "AUTOMATIC" for x in segments)
    )


def write_dicom_seg(
    labels: np.ndarray,
    reference: CTVolume,
    out_path: str | Path,
    segments: Sequence[tuple[int, str]] = ((1, "Liver"), (2, "Tumor")),
    *,
    source_files: Sequence[str | Path] | None = None,
    source_datasets: Sequence[pydicom.Dataset] | None = None,
    source_folder: str | Path | None = None,
    algorithm_type: str = "AUTOMATIC",
    algorithm_name: str = "napari-livertumor",
    series_description: str = "Segmentation",
    series_number: int | None = None,
    reverse_frames: bool = False,
    segmentation_type: str = "BINARY",
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
    notes: list[str] | None = None,
    shown_as: str | Path | None = None,
    created: datetime.datetime | None = None,
) -> Path:
    """Write a label map as a DICOM SEG that references the source CT slices.

    Parameters
    ----------
    labels : ndarray, shape (Z, Y, X)
        Integer label map on ``reference``'s grid.
    reference : CTVolume
        The CT; its slices' DICOM files are the SEG's source images.
    out_path : str or Path
        The ``.dcm`` to write (atomically).
    segments : sequence of (value, label_text)
        Label values to export and their segment labels, e.g. ``[(1, "Liver"), (2, "Mass")]``;
        segment numbers are 1, 2, ... in this order.
    source_files, source_datasets, source_folder
        Where the source CT headers come from, one per z slice in array order; default:
        ``reference.meta["files"]`` (set by the DICOM reader). ``source_folder`` is re-read with
        :func:`read_dicom_series` semantics (only headers are used).
    algorithm_type : {"AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"}
        ``MANUAL`` for ground truth drawn by a person.
    segmentation_type : {"BINARY", "LABELMAP"}
        ``BINARY`` (one frame per segment and slice; what PACS viewers read most widely) or
        the newer ``LABELMAP`` (one frame per slice holding segment numbers). Only frames
        holding a labelled pixel are written; a segment without one is declared, frameless.
    reverse_frames : bool
        Reverse the frame order highdicom chose (HCC-TACE-Seg files come in both orders);
        readers must cope.
    notes : list of str, optional
        Receives what the file leaves out: labels on slices the reader interpolated (over a gap
        in the series, or over a file whose pixels it could not read: no DICOM image to
        reference) are not written, and said here and in the
        log.
    shown_as : str or Path, optional
        The name the user knows the file by, in notes and errors (when ``out_path`` is a
        temporary one, renamed later).

    Returns
    -------
    Path
        The file written.
    """
    import highdicom as hd

    out_path = Path(out_path)
    shown = Path(shown_as) if shown_as is not None else out_path
    kinds = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")
    if str(algorithm_type).upper() not in kinds:
        raise InputError(
            shown, f"algorithm_type must be one of {', '.join(kinds)}; got {algorithm_type!r}"
        )
    if str(segmentation_type).upper() not in ("BINARY", "LABELMAP"):
        raise InputError(
            shown, f"segmentation_type must be BINARY or LABELMAP; got {segmentation_type!r}"
        )
    labels = np.asarray(labels)
    if labels.shape != reference.shape:
        raise InputError(
            shown, f"label shape {labels.shape} differs from the CT's {reference.shape}"
        )
    # a CT shown turned (a head-to-feet or mirrored series): back to the files' own order
    labels, reference = reference.to_stored(labels)
    if not segments:
        raise InputError(shown, "no segments to write")
    if not labels.any():  # as napari's Save of an empty layer: refused, not an empty SEG
        raise InputError(shown, "the labels are empty: a DICOM SEG needs a labelled voxel")
    sources = _source_datasets(reference, source_files, source_datasets, source_folder, shown)
    keep = [z for z, ds in enumerate(sources) if ds is not None]
    if not keep:
        raise InputError(shown, "none of the CT's slices has a source DICOM image to reference")
    _check_sources_fit(reference, sources, keep, shown)
    filled = [z for z, ds in enumerate(sources) if ds is None]
    dropped = int(np.count_nonzero(labels[filled])) if filled else 0
    if dropped:
        # slices the reader interpolated (a gap, or a file it could not read): a SEG can only
        # reference images that exist and were read, so their labels stay out of it (the
        # NIfTI export keeps them)
        _said(
            notes,
            f"{shown.name}: slice(s) {_ranges(filled)} (of 0..{len(sources) - 1}"
            f"{_between_images(filled, reference)}) were "
            f"interpolated over a gap or an unreadable file in the CT series and have no DICOM "
            "image to reference; "
            f"their {dropped} labelled voxel(s) are left out of the DICOM SEG (a NIfTI export "
            "keeps them)",
        )
    wanted = [value for value, _ in segments]
    stray = np.setdiff1d(np.unique(labels), [0, *wanted])
    if stray.size:  # values no segment names: left out, and said (or refused: nothing left)
        n_stray = int(np.isin(labels, stray).sum())
        if not np.isin(labels, wanted).any():
            raise InputError(
                shown,
                f"no voxel has a label value of the segments {wanted}; the labels hold "
                f"{', '.join(f'{v:g}' for v in stray[:8])}: nothing to write",
            )
        _said(
            notes,
            f"{shown.name}: {n_stray} voxel(s) with label value(s) "
            f"{', '.join(f'{v:g}' for v in stray[:8])} match no segment ({wanted}) and are "
            "left out of the DICOM SEG",
        )
    order = keep
    if not np.isin(labels[order], wanted).any():  # all of it on slices no image backs
        raise InputError(
            shown,
            "every labelled voxel lies on slices interpolated over a gap or an unreadable file "
            "in the CT series, which a DICOM SEG cannot reference: nothing to write (a NIfTI "
            "export keeps them)",
        )
    pixel = np.zeros((len(order), *labels.shape[1:]), dtype=np.uint8)
    for number, (value, _) in enumerate(segments, start=1):
        pixel[labels[order] == value] = number
    descriptions = [
        _segment_description(hd, number, text, algorithm_type, algorithm_name)
        for number, (_, text) in enumerate(segments, start=1)
    ]
    source_images = [_utf8_where_undeclared(sources[z]) for z in order]
    if any(int(ds.get("NumberOfFrames") or 1) > 1 for ds in source_images):
        source_images, pixel = _multiframe_source(reference, sources, order, pixel, shown)
    import warnings

    from pydicom.uid import generate_uid

    from .. import __version__

    try:
        with warnings.catch_warnings():
            # an anonymised series' one-word PatientName ("REV"): highdicom advised building
            # names with pydicom, in the user's log even with -q; the name is the CT's, copied
            warnings.filterwarnings(
                "ignore", "The string .* is unlikely to represent the intended person name"
            )
            seg = hd.seg.Segmentation(
                source_images=source_images,
                pixel_array=pixel,
                segmentation_type=hd.seg.SegmentationTypeValues[segmentation_type.upper()],
                segment_descriptions=descriptions,
                series_instance_uid=series_uid or generate_uid(),
                series_number=(
                    series_number
                    if series_number is not None
                    else _seg_series_number(sources[order[0]], algorithm_type)
                ),
                sop_instance_uid=sop_instance_uid or generate_uid(),
                instance_number=1,
                manufacturer="napari-livertumor",
                manufacturer_model_name="napari-livertumor",
                software_versions=str(__version__),
                device_serial_number="0",
                series_description=series_description,
                omit_empty_frames=True,  # a 640-slice SEG: 1280 frames, 42.7 MB → 367, 12.3 MB
                specific_character_set=_character_set(sources[order[0]]),
            )
    except AttributeError as exc:  # a Type 1 attribute highdicom copies is absent
        raise InputError(
            shown, f"the source CT images lack a required DICOM attribute ({exc})"
        ) from exc
    if created is not None:  # a fixed time (synthetic cohorts: the same seed, the same bytes)
        for what in ("InstanceCreation", "Content", "Series"):
            setattr(seg, f"{what}Date", created.strftime("%Y%m%d"))
            setattr(seg, f"{what}Time", created.strftime("%H%M%S"))
        for item in seg.get("ContributingEquipmentSequence", []):
            item.ContributionDateTime = created.strftime("%Y%m%d%H%M%S")
        # and highdicom's random dimension organization UID, from the instance's own
        dim_uid = generate_uid(entropy_srcs=[str(seg.SOPInstanceUID), "dimensions"])
        for key in ("DimensionOrganizationSequence", "DimensionIndexSequence"):
            for item in seg.get(key, []):
                if "DimensionOrganizationUID" in item:
                    item.DimensionOrganizationUID = dim_uid
    if "ContentCreatorName" not in seg:  # Type 2 (Content Identification): present, empty
        seg.ContentCreatorName = ""
    if reverse_frames:
        _reverse_frame_order(seg)
    with atomic_path(out_path, suffix=".partial", shown_as=shown) as tmp:
        seg.save_as(tmp)
    return out_path


def _multiframe_source(reference, sources, order, pixel, shown):
    """An Enhanced CT as the SEG's source: highdicom takes one multi-frame image, the
    segmentation given frame for frame in the file's own frame order (``pixel`` holds the
    slices ``order`` of the CT's grid). ``([source], frames)``."""
    distinct = {str(sources[z].SOPInstanceUID): sources[z] for z in order}
    if len(distinct) > 1 or any(
        int(ds.get("NumberOfFrames") or 1) <= 1 for ds in distinct.values()
    ):
        raise InputError(
            shown,
            f"the CT series is stored in {len(distinct)} files, multi-frame (Enhanced CT) ones "
            "among them; a DICOM SEG (highdicom) references either single-frame images or one "
            "multi-frame image, so no SEG can be written on it here: export NIfTI instead",
        )
    [source] = distinct.values()
    frames = list(reference.meta.get("frame_numbers") or [])
    n_frames = int(source.NumberOfFrames)
    if len(frames) != len(sources) or any(not 1 <= int(frames[z]) <= n_frames for z in order):
        raise InputError(
            shown,
            "the CT is an Enhanced CT (multi-frame) but does not say which of its frames each "
            "slice is: read it again from its DICOM file (or export NIfTI instead)",
        )
    full = np.zeros((n_frames, *pixel.shape[1:]), dtype=pixel.dtype)
    for k, z in enumerate(order):
        full[int(frames[z]) - 1] = pixel[k]
    return [source], full


def _between_images(indices: list[int], reference) -> str:
    """``; between images 4 and 6`` for the runs of ``indices``: the DICOM image numbers (what
    a PACS viewer shows) on either side of each, when the reader kept them; else ``""``."""
    numbers = list(reference.meta.get("instance_numbers") or ())
    if len(numbers) != reference.shape[0]:
        return ""
    said = []
    for a, b in _runs(indices):
        below = numbers[a - 1] if a > 0 else None
        above = numbers[b + 1] if b + 1 < len(numbers) else None
        if below is not None and above is not None:
            said.append(f"{below} and {above}")
    return f"; between images {', '.join(said)}" if said else ""


def _runs(indices: list[int]) -> list[list[int]]:
    """``[3, 4, 5, 9]`` → ``[[3, 5], [9, 9]]``: first and last of each consecutive run."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return runs


def _ranges(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` → ``"3-5, 9"``."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in _runs(indices))


# --------------------------------------------------------------------------- reading helpers
def _read_seg_dataset(seg_path: Path):
    from .dicom import refuse_deflate_bomb

    if not seg_path.is_file():
        raise InputError(seg_path, "file not found")
    refuse_deflate_bomb(seg_path)  # (pydicom would inflate it whole first)
    try:
        ds = pydicom.dcmread(seg_path)
    except Exception as exc:
        raise InputError(seg_path, f"not a readable DICOM file ({type(exc).__name__})") from exc
    if str(ds.get("SOPClassUID", "")) not in SEG_SOP_CLASSES:
        raise InputError(
            seg_path,
            f"not a DICOM SEG (SOP class {ds.get('SOPClassUID', '?')}, "
            f"modality {ds.get('Modality', '?')})",
        )
    if "PixelData" not in ds:
        raise InputError(seg_path, "DICOM SEG without pixel data")
    return ds


def _says_necrosis(label: str) -> bool:
    """Does a segment label name necrosis ("Necrosis", "Necrotic core"; not "Tumor without
    necrosis" nor "Necrosis-free tumor")?"""
    key = _without_negated(re.sub(r"[\s_\-]+", " ", label.strip().lower()), r"necro\w*")
    return bool(re.search(r"\bnecro", key))


def _necrosis_segments(ds) -> set[int]:
    """The numbers of the tumor segments labelled necrosis ("Necrosis", "Necroses"; not
    "Tumor without necrosis", "Viable tumor (non-necrotic)" nor "Necrosis-free tumor")."""
    out = set()
    for item in ds.get("SegmentSequence", []):
        label = str(item.get("SegmentLabel", "") or "")
        by_code, _ = coded_class(item)
        coded_necrosis = any(
            str(code.get("CodingSchemeDesignator", "")).upper() in ("SCT", "SRT", "SNM3")
            and str(code.get("CodeValue", "")).strip() in (NECROSIS_CODE, "M-54000")
            for code in item.get("SegmentedPropertyTypeCodeSequence", []) or []
        )
        # a tumor class, by its code first as every segment is read (a "Necrosis" label coded
        # as liver is liver), and necrosis by its code or its label
        if (by_code or label_to_class(label)) == 2 and (coded_necrosis or _says_necrosis(label)):
            out.add(int(item.SegmentNumber))
    return out


def coded_class(item) -> tuple[int, str]:
    """The class a segment's coded type says (its Segmented Property Type, SNOMED CT), and
    the code's meaning; ``(0, "")`` without a code this package knows."""
    for code in item.get("SegmentedPropertyTypeCodeSequence", []) or []:
        scheme = str(code.get("CodingSchemeDesignator", "") or "").upper()
        value = str(code.get("CodeValue", "") or "").strip()
        if scheme in ("SCT", "SRT", "SNM3") and value in SCT_TO_CLASS:
            return SCT_TO_CLASS[value], str(code.get("CodeMeaning", "") or value)
    return 0, ""


def _item_class(item) -> tuple[int, int, str]:
    """A segment's class by its coded type, by its label (else its description), and its
    code's meaning."""
    by_text = label_to_class(str(item.get("SegmentLabel", "") or ""))
    if by_text == 0:
        by_text = label_to_class(str(item.get("SegmentDescription", "") or ""))
    by_code, meaning = coded_class(item)
    return by_code, by_text, meaning


def _segment_labels(ds) -> list[tuple[str, int]]:
    """``(label, class)`` of each segment a SEG describes, in its order: the class its code
    says, else its label (0: not known); the label as notes show it."""
    from .dicom import printable

    out = []
    for item in ds.get("SegmentSequence", []):
        by_code, by_text, _ = _item_class(item)
        label = printable(str(item.get("SegmentLabel", "") or ""))
        out.append((label or f"#{item.get('SegmentNumber', '?')}", by_code or by_text))
    return out


def _segment_classes(ds, notes: list[str], seg_path: Path) -> dict[int, int]:
    """Each segment's class: by its coded type where this package knows the code (a label
    is free text: "Liver metastasis" read as liver, "Segment_1" as nothing), else by its label
    (then its description). A label that says another class than its code is said."""
    from .dicom import printable

    classes = {}
    unknown = []
    for item in ds.get("SegmentSequence", []):
        number = int(item.SegmentNumber)
        label = str(item.get("SegmentLabel", "") or "")
        by_code, by_text, meaning = _item_class(item)
        value = by_code or by_text
        shown = printable(label)  # (header text: its control characters escaped)
        if by_code and by_text and by_code != by_text:
            notes.append(
                f"segment {number} '{shown}' is coded as {printable(meaning)}: read as "
                f"{CLASS_WORDS[by_code]}, not {CLASS_WORDS[by_text]} as its label reads"
            )
        elif not by_code and by_text == 1 and re.search(r"\bcysts?\b", label.lower()):
            notes.append(f"segment {number} '{shown}' read as liver (a cyst is no tumor)")
        if value == 0 and label.strip().lower() not in ("background", "bg"):
            unknown.append(shown or f"#{number}")  # (a background segment is no news)
        classes[number] = value
    if unknown:
        notes.append(f"segment(s) with unknown labels ignored: {', '.join(unknown)}")
    if not any(classes.values()):
        raise InputError(
            seg_path, "the SEG has no segment labelled liver, mass, portal vein or aorta"
        )
    return classes


def _frames(ds, seg_path: Path) -> np.ndarray:
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise InputError(seg_path, f"SEG pixel data cannot be decoded ({exc})") from exc
    n = int(ds.get("NumberOfFrames", 1) or 1)
    arr = np.asarray(arr).reshape(n, ds.Rows, ds.Columns)
    if str(ds.get("SegmentationType", "BINARY")) == "FRACTIONAL":
        limit = float(ds.get("MaximumFractionalValue", 255) or 255)
        arr = (arr >= 0.5 * limit).astype(np.uint8)
    return arr


def _frame_segment(group, shared, segments, seg_path: Path, i: int) -> int:
    """The segment number frame ``i`` names; a frame naming none (against the standard) holds
    the SEG's only segment, and with several described which one is unknown: refused (it was
    read as segment 1, the liver in HCC-TACE-Seg's SEGs, whatever it held)."""
    for g in (group, shared):
        if g is not None and "SegmentIdentificationSequence" in g:
            return int(g.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    if len(segments) == 1:
        return next(iter(segments))
    raise InputError(
        seg_path,
        f"frame {i + 1} names no segment (no SegmentIdentificationSequence) and the SEG "
        f"describes {len(segments)} segments: which one it holds cannot be told; the file "
        "is damaged or not a standard SEG",
    )


def _uid_to_z(meta) -> dict[tuple[str, int | None], int]:
    """``(SOP instance UID, frame number or None) -> z`` of a CT read from DICOM: a slice
    of a classic series is its file's (frame None); one of an Enhanced CT, a frame of a
    multi-frame file (``meta["frame_numbers"]``)."""
    uids = meta.get("sop_instance_uids") or []
    frames = meta.get("frame_numbers") or []
    if len(frames) == len(uids):
        out = {(u, int(f)): z for z, (u, f) in enumerate(zip(uids, frames, strict=True)) if u}
        if out:
            return out
    return {(u, None): z for z, u in enumerate(uids) if u}


def _frame_z(group, shared, uid_to_z, to_index, reference: CTVolume) -> int | None:
    if group is not None and uid_to_z:
        for derivation in group.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                uid = str(source.get("ReferencedSOPInstanceUID", ""))
                z = uid_to_z.get((uid, None))
                if z is None:  # a frame of a multi-frame source (an Enhanced CT)
                    numbers = source.get("ReferencedFrameNumber")
                    if numbers is not None and not isinstance(numbers, str | int):
                        numbers = list(numbers)
                    numbers = numbers if isinstance(numbers, list) else [numbers]
                    for number in numbers:
                        try:
                            z = uid_to_z.get((uid, int(number)))
                        except (TypeError, ValueError):
                            continue
                        if z is not None:
                            break
                if z is not None:
                    return z
    position = None
    for g in (group, shared):
        if g is not None and "PlanePositionSequence" in g:
            position = [float(v) for v in g.PlanePositionSequence[0].ImagePositionPatient]
            break
    if position is None:
        return None
    ijk = to_index @ np.array([*position, 1.0])
    x, y, z = ijk[:3]
    # positions are often written rounded (to 0.1 mm, or fewer digits): up to 0.15 mm off is
    # the same place, and never a quarter voxel, which would be another grid
    dz, dy, dx = (float(v) for v in reference.spacing)
    if abs(x) > min(0.25, max(0.05, 0.15 / dx)) or abs(y) > min(0.25, max(0.05, 0.15 / dy)):
        return None
    zi = int(round(z))
    if abs(z - zi) > min(0.25, max(0.1, 0.15 / dz)) or not 0 <= zi < reference.shape[0]:
        return None
    return zi


def _seg_orientation(shared, per_frame) -> np.ndarray | None:
    """The frames' ImageOrientationPatient (row then column direction, LPS), or None."""
    for g in [shared] + ([per_frame[0]] if per_frame else []):
        if g is not None and "PlaneOrientationSequence" in g:
            return np.array(
                [float(v) for v in g.PlaneOrientationSequence[0].ImageOrientationPatient]
            )
    return None


def _turn_to_frames(iop, reference: CTVolume, seg_path: Path):
    """None when the CT's rows and columns run as the SEG's frames' do; else the
    :class:`~napari_livertumor.io.volume.Reorientation` (axis permutation and flips) that
    makes them so. A CT that no such turn fits was not what the SEG was drawn on."""
    from .volume import Reorientation

    def fits(volume: CTVolume) -> bool:
        d = volume.direction / np.linalg.norm(volume.direction, axis=0)
        return np.allclose(iop, np.concatenate([d[:, 0], d[:, 1]]), atol=1e-3)

    if iop is None or fits(reference):
        return None
    row, col = iop[:3], iop[3:]
    frame = np.column_stack([row, col, np.cross(row, col)])  # the SEG's axes, as columns
    # the CT's axes seen in the SEG's frame: "standard" there is the frames' own order
    turn = Reorientation.to_standard(frame.T @ reference.direction)
    if not turn.identity and fits(reference.turned(turn)):
        return turn
    raise InputError(
        seg_path,
        "the SEG's image orientation differs from the CT's: it was drawn on another series",
    )


def _check_same_scan(ds, reference: CTVolume, notes: list[str], seg_path: Path) -> None:
    """A note when a SEG whose frames name no source image of the CT also names another
    series and frame of reference than the CT's: its frames can only be placed by position,
    and a scan of another patient or visit on the same grid would be read without a word."""
    from .dicom import printable

    seg_frame = str(ds.get("FrameOfReferenceUID", "") or "")
    ct_frame = str(reference.meta.get("frame_of_reference_uid") or "")
    seg_series = _referenced_series(ds)
    ct_series = str(reference.meta.get("series_uid") or "")
    if not (seg_frame and ct_frame and seg_frame != ct_frame):
        return
    if seg_series and ct_series and seg_series == ct_series:
        return
    who = ""
    seg_patient = str(ds.get("PatientID", "") or "")
    ct_patient = str(reference.meta.get("patient_id") or "")
    if seg_patient and ct_patient and seg_patient != ct_patient:
        # (header text: its control characters escaped, not sent to the terminal)
        who = f" of patient {printable(seg_patient)} (the CT is {printable(ct_patient)})"
    _said(
        notes,
        f"{seg_path.name}: this SEG{who} was drawn in another frame of reference than the CT "
        f"(series {printable(seg_series or '?')}, not {printable(ct_series or '?')}) and "
        "names none of its images; its frames were placed by position only: check that it "
        "belongs to this scan",
    )


def _source_uids(per_frame) -> set[str]:
    uids = set()
    for group in per_frame:
        for derivation in group.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                uids.add(str(source.get("ReferencedSOPInstanceUID", "")))
    uids.discard("")
    return uids


def seg_referenced_series(path: str | Path) -> str | None:
    """The ``SeriesInstanceUID`` of the CT series a DICOM SEG file was drawn on, or None when
    the file cannot be read or names none (header only; the frames are not read)."""
    ds = _seg_header(path)
    return None if ds is None else (_referenced_series(ds) or None)


def seg_segments(path: str | Path) -> list[tuple[str, int]] | None:
    """``(label, class)`` of each segment a DICOM SEG file describes (class 0: not known),
    as :func:`read_dicom_seg` reads them; None when the file cannot be read (header only)."""
    ds = _seg_header(path)
    return None if ds is None else _segment_labels(ds)


def seg_series_and_segments(
    path: str | Path,
) -> tuple[str | None, list[tuple[str, int]] | None]:
    """:func:`seg_referenced_series` and :func:`seg_segments` of one DICOM SEG file, its
    header read once (indexing a patient read it once for each)."""
    ds = _seg_header(path)
    if ds is None:
        return None, None
    return _referenced_series(ds) or None, _segment_labels(ds)


def _seg_header(path: str | Path):
    """A DICOM file's header, or None when it cannot be read."""
    from .dicom import refuse_deflate_bomb

    try:
        refuse_deflate_bomb(path)  # (pydicom would inflate it whole first)
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # not DICOM, truncated, a zip bomb: no answer
        return None


def _referenced_series(ds) -> str:
    for item in ds.get("ReferencedSeriesSequence", []):
        return str(item.get("SeriesInstanceUID", ""))
    return ""


# --------------------------------------------------------------------------- writing helpers
def _source_datasets(reference, source_files, source_datasets, source_folder, out_path):
    n = reference.shape[0]
    if source_datasets is not None:
        sources = list(source_datasets)
    else:
        if source_files is None and source_folder is not None:
            from .dicom import read_dicom_series

            source_files = read_dicom_series(source_folder, reference.meta.get("series_uid")).meta[
                "files"
            ]
        if source_files is None:
            source_files = reference.meta.get("files")
        if not source_files:
            raise InputError(
                out_path,
                "a DICOM SEG needs the source CT's DICOM files; this CT was not read from "
                "DICOM (export NIfTI instead, or give the DICOM series)",
            )
        from .dicom import refuse_deflate_bomb

        sources = []
        read: dict[str, pydicom.Dataset] = {}  # an Enhanced CT's file holds many slices
        for f in source_files:
            if not f:
                sources.append(None)
                continue
            if str(f) in read:
                sources.append(read[str(f)])
                continue
            # (read by the CT's reader, which refused a zip bomb; but it may be replaced since)
            refuse_deflate_bomb(f)
            try:
                # force: the reader takes files without a preamble too
                read[str(f)] = pydicom.dcmread(f, stop_before_pixels=True, force=True)
            except Exception as exc:
                raise InputError(f, f"source CT slice cannot be read ({exc})") from exc
            sources.append(read[str(f)])
    if len(sources) != n:
        raise InputError(out_path, f"{len(sources)} source images for {n} CT slices")
    done: dict[int, pydicom.Dataset] = {}  # one copy of a file standing for many slices
    return [
        None if ds is None else done.setdefault(id(ds), _with_type2_attributes(ds))
        for ds in sources
    ]


def _character_set(ds):
    """The source's Specific Character Set when highdicom writes it, else UTF-8 (ISO_IR 192).

    Exports spell it in ways highdicom refuses ("ISO_IR100", "UTF-8", "ISO_IR 6", a first
    value left empty before "ISO 2022 IR 87"): pydicom has already decoded the names with
    it, and UTF-8 holds any of them."""
    from highdicom.enum import SpecificCharacterSetValues

    value = ds.get("SpecificCharacterSet")
    if value is None:  # the default repertoire, ASCII: said so only if the text fits it
        return "ISO_IR 192" if _has_non_ascii_text(ds) else None
    values = [value] if isinstance(value, str) else list(value)
    known = {m.value for m in SpecificCharacterSetValues}
    return value if values and all(v in known for v in values) else "ISO_IR 192"


#: the value representations of text a SEG copies from its source (names, descriptions)
_TEXT_VRS = ("PN", "LO", "SH", "ST", "LT", "UT", "UC")


def _utf8_where_undeclared(ds):
    """``ds``, or a copy of it whose text is read as UTF-8 where it is UTF-8 though no
    character set is declared (many tools write UTF-8 undeclared): pydicom reads such text as
    Latin-1, and the SEG, now declared UTF-8, carried "MÃ¼ller" for "Müller". Latin-1 bytes
    that are no UTF-8 stay as read (Latin-1)."""
    if ds is None or "SpecificCharacterSet" in ds:
        return ds
    fixed: dict[int, str] = {}  # by the element's place in iterall(): the copy's is the same
    for place, elem in enumerate(ds.iterall()):
        if elem.VR not in _TEXT_VRS or elem.value is None or elem.VM != 1:
            continue
        text = str(elem.value)
        try:
            raw = text.encode("latin-1")  # the bytes as stored (pydicom's default reading)
            utf8 = raw.decode("utf-8") if not raw.isascii() else None
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if utf8 is not None:
            fixed[place] = utf8
    if not fixed:
        return ds
    import copy

    out = copy.deepcopy(ds)
    for place, elem in enumerate(out.iterall()):
        if place in fixed:
            elem.value = fixed[place]
    return out


def _has_non_ascii_text(ds) -> bool:
    """Does a source that declares no character set hold text beyond ASCII anyway (Latin-1
    names an old scanner or anonymiser wrote undeclared, decoded by pydicom as such)? The SEG
    copies its patient and study text: undeclared, a strict reader garbles or refuses it."""
    for elem in ds.iterall():
        if elem.VR in _TEXT_VRS and elem.value is not None:
            try:
                str(elem.value).encode("ascii")
            except UnicodeEncodeError:
                return True
    return False


def _source_plane(ds, frame: int | None):
    """``(ImageOrientationPatient, ImagePositionPatient)`` of a source image, or of its frame
    ``frame`` (1-based) when it is a multi-frame one (from its functional groups)."""
    if frame is None or int(ds.get("NumberOfFrames") or 1) <= 1:
        return getattr(ds, "ImageOrientationPatient", None), getattr(
            ds, "ImagePositionPatient", None
        )
    from ._dicom_geometry import _group_item

    orient = _group_item(ds, "PlaneOrientationSequence", frame - 1)
    place = _group_item(ds, "PlanePositionSequence", frame - 1)
    return (
        None if orient is None else orient.get("ImageOrientationPatient"),
        None if place is None else place.get("ImagePositionPatient"),
    )


def _check_sources_fit(reference, sources, keep, out_path) -> None:
    """Refuse source images that do not lie where ``reference`` puts its slices: the labels
    would be written onto other slices (a reversed order) or mirrored (another orientation)
    and every viewer would show them there."""
    direction = np.asarray(reference.direction, dtype=float)
    aff = reference.affine_lps
    dz = float(reference.spacing[0])
    frames = list(reference.meta.get("frame_numbers") or [])
    for z in (keep[0], keep[-1]):
        ds = sources[z]
        iop, ipp = _source_plane(ds, frames[z] if len(frames) == len(sources) else None)
        if iop is None or ipp is None or len(iop) != 6 or len(ipp) != 3:
            continue  # a header without geometry: highdicom decides
        try:
            row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
            pos = np.asarray(ipp, float)
        except (TypeError, ValueError):
            continue
        expected = (aff @ np.array([0.0, 0.0, float(z), 1.0]))[:3]
        if (
            float(row @ direction[:, 0]) < 0.99
            or float(col @ direction[:, 1]) < 0.99
            or np.linalg.norm(pos - expected) > max(0.5 * dz, 1.0)
        ):
            raise InputError(
                out_path,
                f"the labels' grid does not match the source CT images: slice {z} lies at "
                f"{np.round(expected, 1).tolist()} mm but its DICOM image at "
                f"{np.round(pos, 1).tolist()} mm (orientation {[round(float(v), 3) for v in iop]}); "
                "the SEG would put the labels on other slices or mirrored. Save from a layer "
                "on the CT as loaded, or export NIfTI",
            )


#: Patient and study attributes a SEG copies from its source images: DICOM requires them
#: (Type 2) but may leave them empty, and anonymised or stripped exports often drop them.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def _with_type2_attributes(ds):
    """``ds``, or a copy with the missing :data:`_TYPE2_COPIED` attributes present but empty."""
    missing = [kw for kw in _TYPE2_COPIED if kw not in ds]
    if not missing:
        return ds
    import copy

    ds = copy.deepcopy(ds)
    for kw in missing:
        setattr(ds, kw, "")
    return ds


def _reverse_frame_order(seg) -> None:
    from pydicom.pixels import pack_bits

    n = int(seg.NumberOfFrames)
    frames = np.asarray(seg.pixel_array).reshape(n, seg.Rows, seg.Columns)
    seg.PerFrameFunctionalGroupsSequence = list(seg.PerFrameFunctionalGroupsSequence)[::-1]
    flipped = np.ascontiguousarray(frames[::-1])
    seg.PixelData = pack_bits(flipped) if int(seg.BitsAllocated) == 1 else flipped.tobytes()


def _segment_description(hd, number: int, text: str, algorithm_type: str, algorithm_name: str):
    from pydicom.sr.codedict import codes

    value = label_to_class(text)
    category = {  # CID 7150: an organ is an "Anatomical Structure" (as Slicer, dcmqi code it)
        1: codes.SCT.AnatomicalStructure,
        3: codes.SCT.AnatomicalStructure,
        4: codes.SCT.AnatomicalStructure,
    }
    prop = {
        1: codes.SCT.Liver,
        2: codes.SCT.Mass,
        3: codes.SCT.PortalVein,
        4: codes.SCT.AbdominalAorta,
    }
    if value == 2 and _says_necrosis(text):  # ("Tumor without necrosis" is no necrosis)
        prop_type = codes.SCT.Necrosis
    else:
        prop_type = prop.get(value, codes.SCT.Tissue)
    kind = hd.seg.SegmentAlgorithmTypeValues[algorithm_type.upper()]
    algorithm = None
    if kind != hd.seg.SegmentAlgorithmTypeValues.MANUAL:
        from .. import __version__

        algorithm = hd.AlgorithmIdentificationSequence(
            name=algorithm_name,
            version=str(__version__),
            family=codes.DCM.ArtificialIntelligence,
        )
    rgb = CLASS_RGB.get(value)
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=text,
        segmented_property_category=category.get(value, codes.SCT.MorphologicallyAbnormalStructure),
        segmented_property_type=prop_type,
        algorithm_type=kind,
        # a mass coded with where it is (as the liver is by its own type): a tumor of the liver
        anatomic_regions=[codes.SCT.Liver] if value == 2 else None,
        algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(*(255 * c for c in rgb)) if rgb else None,
    )


def _seg_series_number(source, algorithm_type: str = "AUTOMATIC") -> int:
    """The CT's series number plus :data:`SEG_SERIES_OFFSET` (that alone when it has none);
    twice that for a reviewed (SEMIAUTOMATIC) SEG, three times for a MANUAL one: an edited
    export is not a second series of the model's number in the study (a PACS listed two
    "1104"), and steps of 1000 keep clear of the next CT series' SEG (CT 104's reviewed SEG at
    1105 was CT 105's automatic one)."""
    try:
        number = int(source.get("SeriesNumber"))
    except (TypeError, ValueError):
        number = 0
    times = {"SEMIAUTOMATIC": 2, "MANUAL": 3}.get(str(algorithm_type).upper(), 1)
    return SEG_SERIES_OFFSET * times + max(number, 0)
