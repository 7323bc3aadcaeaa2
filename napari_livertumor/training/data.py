"""Training data: case index, patient-level splits, label mapping and the per-stage cache.

``--data`` is either the HCC-TACE-Seg download layout (one folder per patient holding DICOM CT
series and one DICOM SEG) or a NIfTI layout (``imagesTr/<case>.nii.gz`` + ``labelsTr/<case>.nii.gz``
with the HCC classes 0 other, 1 liver, 2 tumor, 3 portal vein, 4 aorta). Each case is read once
per preprocessing setting and cached as resampled, windowed arrays, so epochs never re-read DICOM.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Cancelled, InputError, LiverTumorError
from ..fileio import all_paths, not_utf8_message, read_user_json
from ..models.preprocess import (
    grid_spacing,
    prepare_stage_input,
    resample_labels,
    signed_hu,
    stage_shape,
)
from ..progress import Reporter, as_reporter

log = logging.getLogger(__name__)

#: ``extra`` of a warning that a training report also carries (the Train panel shows the
#: report; the training process passes the panel its other warnings)
IN_REPORT = {"in_report": True}

#: HCC-TACE-Seg classes in ground-truth label maps.
HCC_LIVER, HCC_TUMOR, HCC_PORTAL_VEIN, HCC_AORTA = 1, 2, 3, 4
#: how a patient whose ground truth holds no liver is refused (evaluate tells it from an
#: unreadable file by it)
NO_LIVER = "the ground truth has no liver"
NO_LIVER_WHY = "a patient cannot be trained on or scored without its liver"
CACHE_VERSION = 4  # 3: tumor-stage caches hold atypical-liver voxels (hard negatives); 4: a
# ground truth without liver is refused (a cached one of version 3 trained with its tumor as liver)
CLINICAL_PATTERNS = ("*clinical*.xlsx", "*clinical*.csv", "*.xlsx", "*.csv")
#: tables a download holds that are no clinical table (the NBIA Data Retriever's series list)
NOT_CLINICAL = frozenset({"metadata.csv"})
_FG_SAMPLES = 4000


@dataclass
class CaseRecord:
    """Where one patient's CT and ground truth live."""

    case_id: str
    layout: str  # "nifti" | "tcia"
    image: Path  # NIfTI file, or the patient folder
    labels: Path  # NIfTI label file, or the DICOM SEG file
    series_uid: str | None = None  # tcia: the CT series the SEG references
    #: tcia: the CT series used (``#5 'LIVER 3 PHASE CAP'``) and the folder's other CT series,
    #: not used (a follow-up study, another phase): for the data check to say which is read
    used_series: str = ""
    other_series: tuple[str, ...] = ()


@dataclass
class PreparedCase:
    """One case on a stage grid, ready for patch sampling."""

    case_id: str
    image: np.ndarray  # float16 (z, y, x), windowed to [0, 1]
    labels: np.ndarray  # uint8 (z, y, x), stage classes
    spacing: tuple[float, float, float]
    tlvr: float  # tumor / (liver + portal vein + tumor) voxels at source resolution
    fg: dict[str, np.ndarray] = field(default_factory=dict)  # class name → (K, 3) voxel indices
    info: dict[str, Any] = field(default_factory=dict)
    #: tumor stage with masking: the same ROI windowed *without* the mask (float16), and each
    #: voxel's distance in mm from the ground-truth liver (float16, 0 inside); patch sampling
    #: blends the two to mask with a grown liver (``aug_mask_dilate_mm``)
    unmasked: np.ndarray | None = None
    outside_mm: np.ndarray | None = None


# --------------------------------------------------------------------------- case index
def index_cases(
    data: str | Path, skipped: list | None = None, reporter: Reporter | None = None
) -> list[CaseRecord]:
    """List the labelled cases in ``data`` (NIfTI or HCC-TACE-Seg layout).

    Patients that cannot be used (no labels, a SEG whose CT is missing, ...) are logged and,
    when ``skipped`` is given, appended to it as ``(case_id, reason)``. ``reporter`` gets the
    progress (``"patients"``, one step per patient folder) and is asked between patients and
    between DICOM files whether to stop.

    Raises
    ------
    InputError
        The folder is missing, or holds no labelled case (the message says what was expected).
    Cancelled
        ``reporter`` said to stop.
    """
    reporter = as_reporter(reporter)
    root = Path(data)
    if root.is_file():
        raise InputError(root, "is a file; give the folder that holds the patients")
    if not root.is_dir():
        raise InputError(root, "data folder not found")
    skipped = skipped if skipped is not None else []
    if (root / "imagesTr").is_dir():
        return _one_id_each(root, _drop_copies(_index_nifti(root, skipped), skipped, reporter))
    from ..io.tcia import collection_folder

    inner = collection_folder(root)
    if inner != root:  # an NBIA download given above its collection folder
        log.info("reading the patient folders in %s (the download's collection folder)", inner)
        root = inner
    patients = sorted(
        p
        for p in root.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and p.name not in _NIFTI_FOLDERS
        and not _holds_models(p)
        and not _holds_evaluation(p)
    )
    held = [n for n in _NIFTI_FOLDERS if (root / n).is_dir()]
    if held and not patients:  # a NIfTI dataset without imagesTr/: it was "imagesTs: no DICOM"
        raise InputError(root, _no_ground_truth(root, held))
    if held:
        log.info("%s: its %s/ (a NIfTI dataset's) not read as patients", root, "/, ".join(held))
    if not patients:
        raise InputError(
            root,
            "no labelled cases: expected imagesTr/ + labelsTr/ (NIfTI) or one folder per "
            "patient with DICOM CT and a DICOM SEG (HCC-TACE-Seg layout)",
        )
    # the patient's DICOM scan asks to stop between files, and reports nothing of its own
    quiet = Reporter(None, reporter.should_cancel)
    records = []
    for i, patient in enumerate(patients):
        reporter.check()
        reporter.update("patients", i, len(patients))
        record = _index_tcia_patient(patient, skipped, quiet)
        if record is not None:
            records.append(record)
    reporter.update("patients", len(patients), len(patients))
    if not records:
        nested = [(name, r) for name, r in skipped if r.startswith(SEVERAL_PATIENTS)]
        if len(patients) == 1 and nested:  # the patients one level further down: said so
            raise InputError(patients[0], nested[0][1])
        if nested:  # e.g. one folder per site, each a cohort: not "none holds a SEG"
            names = ", ".join(name for name, _ in nested[:4]) + (", …" if len(nested) > 4 else "")
            one = len(nested) == 1
            raise InputError(
                root,
                f"{len(nested)} of its {len(patients)} folders ({names}) "
                + ("holds" if one else "each hold")
                + " the CT scans and SEGs of several patients: "
                + ("it is a folder of patients, not a patient" if one else
                   "they are folders of patients, not patients")
                + "; give such a folder as the data folder",
            )  # fmt: skip
        if skipped:  # why each was left out ("holds no SEG" sent users looking for SEGs
            # that were there, beside no CT); patients left out for one reason said together,
            # the series UIDs that tell them apart shortened (the log has them whole)
            groups: dict[str, list[tuple[str, str]]] = {}
            for name, why in skipped:
                short = re.sub(r"\b\d+(?:\.\d+){4,}\b", lambda m: "…" + m.group(0)[-8:], why)
                groups.setdefault(re.sub(r"…\d{1,8}\b", "…", short), []).append((name, short))
            reasons = "; ".join(
                f"{members[0][0]}: {members[0][1]}"
                if len(members) == 1
                else f"{_some_names([n for n, _ in members])}: {why}"
                for why, members in list(groups.items())[:4]
            )
            more = f"; and {len(groups) - 4} other reason(s)" if len(groups) > 4 else ""
            raise InputError(
                root,
                f"none of the {len(patients)} patient folders can be used: {reasons}{more}",
            )
        raise InputError(
            root, f"none of the {len(patients)} patient folders holds a DICOM SEG with labels"
        )
    one = _one_patients_folder(root, records)
    if one:
        log.warning(
            "%s looks like the folder of one patient (PatientID %s), not a folder of patients: "
            "its study folders are taken as patients %s. Give the folder that holds the "
            "patient folders.",
            root,
            one,
            [r.case_id for r in records][:3],
        )
    return _one_id_each(root, _drop_copies(records, skipped, reporter))


def _one_id_each(root: Path, records: list[CaseRecord]) -> list[CaseRecord]:
    """``records``, refused (:class:`InputError`) when two of them are one patient as IDs are
    read (a split file's and the clinical table's: ``hcc-3`` and ``HCC_003``, an é composed
    or stored as e + ´ by macOS): evaluate scored one of two such patients and dropped the
    other without a word."""
    from ..io.clinical import normalise_id
    from ..io.dicom import printable

    seen: dict[str, str] = {}
    for r in records:
        other = seen.setdefault(normalise_id(r.case_id), r.case_id)
        if other != r.case_id:
            how = (
                "the same name in two Unicode forms (é composed, or e + ´)"
                if unicodedata.normalize("NFC", other) == unicodedata.normalize("NFC", r.case_id)
                else f"both read as {normalise_id(other)}, as the clinical table reads IDs"
            )
            raise InputError(
                root,
                f"two patients are named alike: '{printable(other)}' and "
                f"'{printable(r.case_id)}' ({how}), so a split file or the clinical table "
                "cannot tell them apart; rename one",
            )
    return records


def _drop_copies(
    records: list[CaseRecord], skipped: list, reporter: Reporter | None = None
) -> list[CaseRecord]:
    """One record per scan: a patient folder copied beside itself ("HCC_001 (1)", a download
    unpacked twice) could land on both sides of the split, a test patient trained on.

    The same CT series (DICOM: its SeriesInstanceUID), or a NIfTI pair whose image and labels
    files are the same bytes, is one scan; the name that does not look like a copy's
    ("HCC_001 (1)", "Copy of HCC_001") is kept, else the first sorted, and each copy is skipped
    with the name of the case it copies.
    """
    keep: list[CaseRecord] = []
    seen: dict[tuple, list[CaseRecord]] = {}  # records of one key: the same series / sizes
    import re

    def copy_like(name: str) -> bool:  # "HCC_001 (1)", "Copy of HCC_001", "HCC_001_copy"
        return bool(re.search(r"copy|\(\d+\)\s*$", name, re.IGNORECASE))

    for rec in sorted(records, key=lambda r: (copy_like(r.case_id), r.case_id)):
        if reporter is not None:  # reading files to compare them can take a while
            reporter.check()
        if rec.series_uid:
            key: tuple = ("series", rec.series_uid)
        else:
            try:
                key = ("files", Path(rec.image).stat().st_size, Path(rec.labels).stat().st_size)
            except OSError:
                keep.append(rec)
                continue
        group = seen.setdefault(key, [])
        copy_of = group[0] if group and key[0] == "series" else None
        if copy_of is None and group:  # the same sizes: the same bytes as one of them?
            # a cheap look first (the files' first and last bytes), every file read once; the
            # whole files only for a pair that looks the same
            mine = _quick_digest(rec)
            for other in group:
                if mine is not None and mine == _quick_digest(other) and _same_files(rec, other):
                    copy_of = other
                    break
        if copy_of is not None:
            _skip(skipped, rec.case_id, f"a copy of {copy_of.case_id} (the same scan)")
            continue
        group.append(rec)
        keep.append(rec)
    order = {r.case_id: i for i, r in enumerate(records)}
    return sorted(keep, key=lambda r: order[r.case_id])


def _quick_digest(rec: CaseRecord) -> tuple | None:
    """The first and last 64 KiB of a record's image and labels files (cached per file
    version): patients' files differ there, a copy's do not."""
    try:
        return tuple(_ends_digest(*_file_version(Path(p))) for p in (rec.image, rec.labels))
    except OSError:
        return None


def _file_version(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=4096)
def _ends_digest(path: str, size: int, mtime_ns: int) -> str:
    import hashlib

    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 16))
        if size > 1 << 17:
            fh.seek(size - (1 << 16))
            digest.update(fh.read(1 << 16))
    return digest.hexdigest()


def _same_files(a: CaseRecord, b: CaseRecord) -> bool:
    """Are two records' image and labels files the same bytes (labels first: smaller)?"""
    for x, y in ((a.labels, b.labels), (a.image, b.image)):
        mine = _file_digest(x)
        if mine is None or mine != _file_digest(y):
            return False
    return True


def _file_digest(path) -> str | None:
    import hashlib

    digest = hashlib.sha1(usedforsecurity=False)
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


#: how a folder holding several patients' scans and SEGs is said (skipped as one patient)
SEVERAL_PATIENTS = "holds the CT scans and SEGs of"


def _one_patients_folder(root: Path, records: list[CaseRecord]) -> str | None:
    """The PatientID when every case's SEG belongs to one patient named like ``root``."""
    import pydicom

    from ..io.dicom import refuse_deflate_bomb

    ids = set()
    for rec in records:
        try:
            refuse_deflate_bomb(rec.labels)  # (pydicom would inflate it whole first)
            ds = pydicom.dcmread(rec.labels, stop_before_pixels=True, specific_tags=["PatientID"])
        except Exception:  # unreadable header, a zip bomb: nothing to say
            return None
        ids.add(str(ds.get("PatientID", "")))
    if len(ids) == 1:
        (pid,) = ids
        if pid and pid == root.name and all(r.case_id != pid for r in records):
            return pid
    return None


def _index_nifti(root: Path, skipped: list) -> list[CaseRecord]:
    labels_dir = root / "labelsTr"
    if not labels_dir.is_dir():
        raise InputError(
            root,
            "imagesTr/ found but no labelsTr/ folder: training and evaluation need the labels "
            f"(to segment the scans alone: livertumor segment {root / 'imagesTr'})",
        )

    # the label files by case name, whatever the case of their ending (HCC_001.NII.GZ beside
    # imagesTr/HCC_001.nii.gz was "no label file" and "a label file with no image"; every
    # other command reads such names). The case name itself is matched exactly: PatA and
    # pata are two patients
    by_case: dict[str, list[Path]] = {}
    for p in sorted(labels_dir.iterdir()):
        stem = _nifti_stem(p.name)
        if stem is not None and not p.name.startswith("."):
            by_case.setdefault(stem, []).append(p)

    def label_of(case: str) -> Path | None:
        # .nii.gz before .nii (as before), its lower-case spelling before others
        found = sorted(
            by_case.get(case, ()),
            key=lambda p: (
                not p.name.lower().endswith(".gz"),
                p.name[len(case) :] != p.name[len(case) :].lower(),
            ),
        )
        hit = next((p for p in found if p.is_file()), None)
        if hit is None:  # a file system blind to case (macOS, Windows) finds hcc_001's
            # HCC_001.nii.gz by the image's spelling, as it did before the names were listed
            hit = next(
                (
                    labels_dir / f"{case}{s}"
                    for s in (".nii.gz", ".nii")
                    if (labels_dir / f"{case}{s}").is_file()
                ),
                None,
            )
        return hit

    records: list[CaseRecord] = []
    used_labels: set[Path] = set()
    for img in sorted((root / "imagesTr").iterdir()):
        stem = _nifti_stem(img.name)
        if stem is None or img.name.startswith("."):
            continue
        # nnU-Net names an image's channel HCC_001_0000.nii.gz beside labelsTr/HCC_001.nii.gz;
        # a case whose own name ends in _0001 keeps it when its label does (case_0001.nii.gz)
        channel = _nifti_case_id(img.name)
        case, lab = stem, label_of(stem)
        if lab is None and channel != stem:
            case, lab = channel, label_of(channel)
        if lab is None:
            _skip(skipped, case, f"no label file {labels_dir}/{case}.nii.gz")
            continue
        if any(r.case_id == case for r in records):
            _skip(skipped, case, f"{img.name}: a second image of the case (kept the first)")
            continue
        used_labels.add(lab)
        records.append(CaseRecord(case, "nifti", img, lab))
    orphans = sorted(
        p.name
        for p in labels_dir.iterdir()
        if _nifti_stem(p.name) is not None and not p.name.startswith(".") and p not in used_labels
    )
    if orphans:
        log.warning(
            "%s: %d label file(s) with no image in imagesTr/, not used: %s",
            labels_dir,
            len(orphans),
            ", ".join(orphans[:8]) + (" …" if len(orphans) > 8 else ""),
        )
    if not records:
        raise InputError(labels_dir, "no image in imagesTr/ has a matching label file")
    return records


#: the lock a training run holds in its stage folder (``training.loop.RunLock.NAME``)
_RUN_LOCK = ".livertumor-run.lock"
#: a NIfTI dataset's folders that are no patient's (read as a dataset only beside imagesTr/)
_NIFTI_FOLDERS = ("imagesTs", "labelsTr")


def _no_ground_truth(root: Path, held: list[str]) -> str:
    """Why a NIfTI dataset without imagesTr/ (``held``: its imagesTs/, labelsTr/) gives no
    case to train on or score."""
    if "labelsTr" in held:
        return (
            "holds labelsTr/ but no imagesTr/: a NIfTI dataset's labels are read with their "
            "CTs in imagesTr/ (one file per case in each, the same names: docs/training.md, "
            "'Data layouts')"
        )
    return (
        "holds imagesTs/ but no imagesTr/ + labelsTr/: no ground truth to train on or score "
        "against (no labelsTr/; the CTs in imagesTs/ have no labels: `livertumor convert` puts "
        "a patient without a DICOM SEG there); to segment them: livertumor segment "
        f"{root / 'imagesTs'}"
    )


def _holds_evaluation(folder: Path) -> bool:
    """An evaluation's output (``evaluate -o`` inside ``--data``), not a patient: skipped, said
    once. Known by the files evaluate writes there: its lock while it runs, its state for
    --resume, its per_case.csv beside its summary.json (or a stopped run's of each)."""
    from .evaluate import INTERRUPTED, LOCK_FILE, RESUME_FILE

    results = [(f"per_case{end}.csv", f"summary{end}.json") for end in ("", INTERRUPTED)]
    found = any((folder / name).is_file() for name in (LOCK_FILE, RESUME_FILE)) or any(
        (folder / table).is_file() and (folder / summary).is_file() for table, summary in results
    )
    if found:
        log.info("%s: an evaluation's output folder, not a patient; skipped", folder)
    return found


def _holds_models(folder: Path) -> bool:
    """A training output (``--out`` inside ``--data``), not a patient: skipped, said once. Its
    models, or a run going on (its lock) or stopped before its first model (``last/``)."""
    found = any(
        ((d / "metadata.json").is_file() and (d / "model.safetensors").is_file())
        or (d / "last" / "metadata.json").is_file()
        or (d / _RUN_LOCK).is_file()
        for d in (folder, folder / "liver", folder / "tumor")
    )
    if found:
        log.info("%s: holds trained models (a training output), not a patient; skipped", folder)
    return found


def _nifti_stem(name: str) -> str | None:
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def _nifti_case_id(name: str) -> str | None:
    case = _nifti_stem(name)
    # nnU-Net style channel suffix: HCC_001_0000.nii.gz
    if case is not None and len(case) > 5 and case[-5] == "_" and case[-4:].isdigit():
        case = case[:-5]
    return case


def _index_tcia_patient(
    folder: Path, skipped: list, reporter: Reporter | None = None
) -> CaseRecord | None:
    from ..io.dicom import discover_series
    from ..io.seg import seg_series_and_segments

    unreadable: list = []
    try:
        series = discover_series(folder, unreadable=unreadable, reporter=reporter)
    except Cancelled:
        raise
    except Exception as exc:  # a broken folder must not stop the index
        _skip(skipped, folder.name, f"cannot scan DICOM files ({exc})")
        return None
    segs = [s for s in series if s.modality == "SEG"]
    if not segs:
        if unreadable:  # a truncated SEG is not the same as none
            path, problem = unreadable[0]
            _skip(
                skipped,
                folder.name,
                f"no readable DICOM SEG (no labels); {len(unreadable)} unreadable DICOM "
                f"file(s), e.g. {path}: {problem}",
            )
            return None
        niftis = sorted(
            p.name
            for p in all_paths(folder)
            if p.is_file() and p.name.lower().endswith((".nii", ".nii.gz"))
        )
        if niftis and not series:  # KiTS's case_N/imaging + segmentation: another layout
            _skip(
                skipped,
                folder.name,
                f"no DICOM; NIfTI files ({', '.join(niftis[:3])}"
                + (", ..." if len(niftis) > 3 else "")
                + ") are read from imagesTr/ + labelsTr/ only (one file per case in each, "
                "the same names: docs/training.md, 'Data layouts')",
            )
            return None
        _skip(skipped, folder.name, "no DICOM SEG (no labels)")
        return None
    cts = [s for s in series if s.is_ct]
    # several patients each with a scan and a SEG: a folder of patient folders given one
    # level too high (it was trained as one patient, the first SEG's, under the folder's name)
    both = sorted({s.patient_id for s in segs if s.patient_id} & {s.patient_id for s in cts})
    # the folder's own patient (by name, in its SEGs or scans): its SEG is the one, whatever
    # else the folder holds
    own = sorted(
        {s.patient_id for s in (*segs, *cts) if s.patient_id and _names(s.patient_id, folder.name)}
    )
    others = [p for p in both if p not in own]
    # the others in sub-folders named by them: a folder of patients that happens to be named
    # like one of them ("hcc_001/HCC_001, HCC_002, …"), not a patient with a study copied in
    subfolders = [d.name for d in folder.iterdir() if d.is_dir()]
    if own and any(_names(p, d) for p in others for d in subfolders):
        own = []
    if own and others:  # another patient's study copied in beside this one's: said, not used
        log.warning(
            "patient folder %s also holds the scans and SEGs of %d other patient(s) (%s): "
            "not used for %s",
            folder.name, len(others), ", ".join(others[:4]), folder.name,
        )  # fmt: skip
    if len(both) > 1 and not own:  # (a patient's folder holding another's study too: its own)
        shown = ", ".join(both[:4]) + (", …" if len(both) > 4 else "")
        # no sub-folder named by a patient: perhaps one patient's folder, named by no PatientID,
        # with another patient's study copied in; which is its own cannot be told
        ids = " or ".join(both) if len(both) == 2 else "one of those"
        copied = (
            ""
            if any(_names(p, d) for p in both for d in subfolders)
            else (
                " (or, if it is one patient's folder with another's study copied in, name the "
                f"folder by its patient's ID, {ids}, or move the other study out)"
            )
        )
        _skip(
            skipped,
            folder.name,
            f"{SEVERAL_PATIENTS} {len(both)} patients ({shown}): a folder of patients, not one "
            f"patient's; give {folder} as the data folder{copied}",
        )
        return None
    # another patient's or phase's SEG beside this one's: the one drawn on a CT held here
    held = {s.uid for s in cts}
    seg_files = [f for s in segs for f in s.files]
    # (each SEG's header read once: it was read for its series, then again for its segments)
    facts = [seg_series_and_segments(f) for f in seg_files]
    refs = [ref for ref, _ in facts]
    seg_patients = [next(s.patient_id for s in segs if f in s.files) for f in seg_files]
    # its own patient's, else one of no other patient's here (a blank PatientID): another
    # patient's SEG and scan must never stand in for its own (they trained under this folder's
    # clinical row, and the other patient's own folder was then dropped as "a copy")
    every = range(len(seg_files))
    cands = (
        [i for i in every if seg_patients[i] in own]
        or [i for i in every if seg_patients[i] not in others]
        or ([] if own else list(every))
    )
    if not cands:  # its own SEG missing: only other patients' here
        _skip(
            skipped,
            folder.name,
            f"no SEG of its own patient ({own[0]}); the SEGs here are those of "
            f"{', '.join(others[:4])}, whose scans are copied in beside it",
        )
        return None
    mine = next((i for i in cands if refs[i] in held), cands[0])
    seg_file, ref = seg_files[mine], refs[mine]
    if ref is not None and not any(s.uid == ref for s in cts):
        _skip(
            skipped,
            folder.name,
            f"its SEG references series {ref}, which is not in the folder"
            if cts
            else f"no CT series in the folder (its SEG references series {ref})",
        )
        return None
    if ref is None and not cts:
        _skip(skipped, folder.name, "no CT series")
        return None
    segments = facts[mine][1]
    if segments is not None and not any(value == HCC_LIVER for _, value in segments):
        # (its header says it: training would skip it once it has read its scan, and
        # Check data counted it among the patients with labels)
        _skip(
            skipped,
            folder.name,
            f"its SEG {Path(seg_file).name} describes no liver segment (its segments: "
            f"{', '.join(label for label, _ in segments) or 'none'}): {NO_LIVER_WHY}",
        )
        return None
    _check_patient_name(folder.name, next(s for s in segs if seg_file in s.files).patient_id)
    # a SEG naming no series: the folder's own scan, not one of another patient's study
    scans = [c for c in cts if c.patient_id not in others] or cts
    uid = ref or scans[0].uid
    used = next((c for c in cts if c.uid == uid), None)
    return CaseRecord(
        folder.name,
        "tcia",
        folder,
        seg_file,
        uid,
        used_series="" if used is None else _series_label(used),
        other_series=tuple(
            _series_label(c) for c in cts if c.uid != uid and c.patient_id not in others
        ),
    )


def _series_label(series) -> str:
    """``#5 'LIVER 3 PHASE CAP'`` (its acquisition too, of a series holding two phases)."""
    acq = f" {series.acquisition_label}" if series.acquisition is not None else ""
    return f"#{series.series_number} '{series.description}'{acq}"


def _names(patient_id: str, folder: str) -> bool:
    """Does ``folder`` name the patient ``patient_id``? (``HCC_001`` and ``hcc-1``; ``Pat-7``
    and ``pat 7``.)"""
    from ..io.clinical import normalise_id
    from ..io.dicom import normalise_folder_id

    return normalise_id(patient_id) == normalise_id(folder) or normalise_folder_id(
        patient_id
    ) == normalise_folder_id(folder)


def _check_patient_name(folder: str, patient_id: str) -> None:
    """Warn when a patient folder named like an HCC-TACE-Seg ID holds another such patient's
    SEG: the clinical row (and the split) go by the folder's name, so two swapped folders
    would train each scan against the other patient's clinical values."""
    from ..io.clinical import normalise_id

    named, held = normalise_id(folder), normalise_id(patient_id or "")
    if not (named.startswith("HCC_") and held.startswith("HCC_")) or named == held:
        return
    text = (
        f"patient folder {folder} holds the SEG of PatientID {patient_id}: its clinical row "
        f"is looked up as {named} (the folder's name); if the folder is misnamed, rename it"
    )
    if _WARNED is not None and ("name", text) in _WARNED:
        log.info(text)
        return
    if _WARNED is not None:
        _WARNED.add(("name", text))
    log.warning(text)


#: inside :func:`skips_warned_once`: the (case, reason) pairs already warned of. Indexing and
#: preparing run once per stage (three times for ``train --stage both``), and the same skip
#: was warned of each time.
_WARNED: set[tuple[str, str]] | None = None


@contextlib.contextmanager
def skips_warned_once():
    """Within this block a skipped patient is warned of once (again: at DEBUG level; a
    ``--stage both`` run repeated each reason at INFO three times more)."""
    global _WARNED
    outer, _WARNED = _WARNED, set()
    try:
        yield
    finally:
        _WARNED = outer


def _warn_skip(case: str, reason: str) -> None:
    if _WARNED is not None and (case, reason) in _WARNED:
        log.debug("skipping %s: %s", case, reason)
        return
    if _WARNED is not None:
        _WARNED.add((case, reason))
    log.warning("skipping %s: %s", case, reason, extra=IN_REPORT)


def _some_names(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _skip(skipped: list, case: str, reason: str) -> None:
    _warn_skip(case, reason)
    skipped.append((case, reason))


def find_clinical(data: str | Path) -> Path | None:
    """The clinical table at the root of ``data`` (XLSX preferred), or None. An NBIA
    download's folders down to its collection folder are looked in too, the nearest first."""
    from ..io.tcia import download_levels

    found: list[Path] = []
    for level in download_levels(data):
        for pattern in CLINICAL_PATTERNS:
            hits = sorted(
                p
                for p in level.glob(pattern)
                if not p.name.startswith((".", "~")) and p.name.lower() not in NOT_CLINICAL
            )
            if "clinical" not in pattern:  # any table: only one with the patients' ID column
                hits = [p for p in hits if p not in found and _has_patient_ids(p)]
            found += [p for p in hits if p not in found]
        if found:
            break
    # said, so a CSV edited beside the XLSX is not thought to be read (the same table saved
    # in both formats, as TCIA offers it and `synth` writes it, is not worth a word)
    others = [p for p in found[1:] if p.stem != found[0].stem]
    if others:
        log.info(
            "clinical table: %s used; also at the data root, not read: %s (give --clinical "
            "to choose)",
            found[0].name,
            ", ".join(p.name for p in others[:3]) + (" …" if len(others) > 3 else ""),
        )
    if found:
        # the same table in both formats, one of them changed since: the one read may be the
        # one not edited (a CSV saved from the spreadsheet after a correction)
        newer = [p for p in found[1:] if p.stem == found[0].stem and _newer(p, found[0])]
        # said once per state of the files (it is looked for twice per run), and again after
        # another edit in a napari session that stays open
        said = newer and (found[0], newer[0], _mtime(found[0]), _mtime(newer[0]))
        if said and said not in _NEWER_SAID:
            _NEWER_SAID.add(said)
            log.warning(
                "clinical table: %s is read, and %s beside it was saved later; if that is the "
                "one you edited, choose it as the clinical table (%s)",
                found[0].name,
                newer[0].name,
                newer[0],
            )
    return found[0] if found else None


_NEWER_SAID: set = set()


def tables_passed_over(data: str | Path) -> list[str]:
    """The tables at the root of ``data`` (and an NBIA download's folders above it) not taken
    for the clinical table because they have no ``TCIA_ID`` column (by name)."""
    from ..io.tcia import download_levels

    names = []
    for level in download_levels(data):
        for pattern in CLINICAL_PATTERNS[2:]:
            names += [
                p.name
                for p in sorted(level.glob(pattern))
                if not p.name.startswith((".", "~"))
                and p.name.lower() not in NOT_CLINICAL
                and "clinical" not in p.name.lower()
                and not _has_patient_ids(p)
            ]
    return list(dict.fromkeys(names))


def _has_patient_ids(path: Path) -> bool:
    """Whether a table not named as a clinical one has a ``TCIA_ID`` column (a volumes list
    or a results table at the data root is no clinical table; read as one, it stopped the
    tumor stage with "no TCIA_ID column")."""
    from ..io.clinical import _has_id_column, _read_any

    try:
        frame = _read_any(path, [])
    except Exception:  # unreadable: kept, so that reading it says what is wrong with it
        return True
    if _has_id_column(frame):
        return True
    # said once per state of the file (find_clinical and tables_passed_over both ask: the
    # check printed the line twice)
    said = (path, _mtime(path))
    if said not in _PASSED_SAID:
        _PASSED_SAID.add(said)
        log.info("%s: no TCIA_ID column; not taken for the clinical table", path)
    return False


_PASSED_SAID: set = set()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _newer(a: Path, b: Path, seconds: float = 60.0) -> bool:
    """Whether ``a`` was modified more than ``seconds`` after ``b`` (both written by one
    download or one ``synth`` run are not)."""
    try:
        return a.stat().st_mtime > b.stat().st_mtime + seconds
    except OSError:
        return False


# --------------------------------------------------------------------------- reading
def load_case(record: CaseRecord):
    """Read a case's CT (:class:`CTVolume`) and HCC-class label map (uint8, same grid).

    Both come in the standard orientation (:meth:`CTVolume.to_standard`, what inference feeds
    the models), so a RAS-stored or transposed NIfTI trains like a DICOM series.
    """
    ct, labels = _read_case(record)
    if not np.any(labels == HCC_LIVER):
        # a SEG without its Liver segment (or a tumor-only label file): its tumor would count
        # as the whole liver (a tumor-to-liver ratio near 1 for the weak fit) and its liver
        # Dice would score the model against nothing
        held = sorted(int(v) for v in np.unique(labels) if v)
        raise InputError(
            record.labels,
            f"{NO_LIVER} (class 1"
            + (", the SEG's Liver segment" if record.layout != "nifti" else "")
            + "); it holds "
            + (f"class(es) {', '.join(map(str, held))} only" if held else "no labels at all")
            + f". {NO_LIVER_WHY[0].upper()}{NO_LIVER_WHY[1:]}.",
        )
    # turned as a viewer shows it, remembering the file's own grid (CTVolume.to_stored puts
    # a mask back on it: evaluate --save-labels wrote RAS-stored cases' maps turned)
    shown = ct.displayed()
    turn = shown.meta.get("stored_turn") if shown is not ct else None
    return shown, (labels if turn is None else turn.apply(labels))


def _read_case(record: CaseRecord):
    if record.layout == "nifti":
        from ..io.nifti import ground_truth_classes, read_nifti

        ct = read_nifti(record.image).displayed()  # (its file's grid kept: see load_case)
        lab, _ = read_nifti(record.labels).to_standard()  # stored in another axis order is fine
        if lab.shape != ct.shape:
            raise InputError(
                record.labels,
                f"label shape {lab.shape} (z, y, x) does not match the CT's {ct.shape}",
            )
        if not ct.fits_labels(lab):
            from ..io.nifti import _corner_distance

            apart = _corner_distance(lab.affine, ct.affine, ct.shape[::-1])
            raise InputError(
                record.labels,
                f"the labels lie on another grid than the CT's (their corners up to "
                f"{apart:.3g} mm apart; the header's affine differs): resample them onto the "
                "CT, or export them again from it",
            )
        # the Load panel's check: NaN voxels (read as background), a scan, a probability map,
        # another dataset's classes are refused, naming what the file holds
        return ct, ground_truth_classes(record.labels, lab)
    from ..io.dicom import read_dicom_series
    from ..io.seg import read_dicom_seg

    ct = read_dicom_series(record.image, series_uid=record.series_uid)
    notes: list[str] = []
    labels = read_dicom_seg(record.labels, ct, warnings=notes)
    if notes:
        # e.g. SEG frames on slices the CT read lacks: a ground truth that covers part of the
        # patient, said (evaluate names it beside its scores), not taken in silence
        for note in notes:
            log.warning("%s: ground truth %s: %s", record.case_id, record.labels, note)
        ct.meta["truth_warnings"] = [f"{Path(record.labels).name}: {n}" for n in notes]
    return ct, np.asarray(labels, dtype=np.uint8)


def stage_labels(hcc: np.ndarray, stage: str) -> np.ndarray:
    """Map HCC classes to a stage's classes.

    liver: liver + tumor + portal vein → 1, everything else (aorta included) → 0.
    tumor: 0 background, 1 liver (+ portal vein), 2 tumor.
    """
    hcc = np.asarray(hcc)
    if stage == "liver":
        return np.isin(hcc, (HCC_LIVER, HCC_TUMOR, HCC_PORTAL_VEIN)).astype(np.uint8)
    if stage == "tumor":
        out = np.zeros(hcc.shape, np.uint8)
        out[(hcc == HCC_LIVER) | (hcc == HCC_PORTAL_VEIN)] = 1
        out[hcc == HCC_TUMOR] = 2
        return out
    raise ValueError(f"unknown stage {stage!r}")


def tumor_liver_ratio(hcc: np.ndarray) -> float:
    """TLVR = tumor / (liver + portal vein + tumor) voxels (0 when there is no liver)."""
    counts = np.bincount(np.asarray(hcc).ravel(), minlength=5)
    denom = counts[HCC_LIVER] + counts[HCC_PORTAL_VEIN] + counts[HCC_TUMOR]
    return float(counts[HCC_TUMOR] / denom) if denom else 0.0


def liver_bbox(liver: np.ndarray, spacing, margin_mm: float) -> tuple[slice, slice, slice]:
    """Bounding box of a liver mask plus ``margin_mm`` on every side, clipped to the volume."""
    idx = np.nonzero(liver.any(axis=(1, 2)))[0], np.nonzero(liver.any(axis=(0, 2)))[0]
    idx = (*idx, np.nonzero(liver.any(axis=(0, 1)))[0])
    out = []
    for ax, found in enumerate(idx):
        m = int(np.ceil(margin_mm / spacing[ax]))
        out.append(slice(max(0, found[0] - m), min(liver.shape[ax], found[-1] + 1 + m)))
    return tuple(out)  # type: ignore[return-value]


# --------------------------------------------------------------------------- preprocessing
def preprocess_params(config) -> dict[str, Any]:
    """The settings a cached case depends on (part of its cache key)."""
    return {
        "stage": config.stage,
        "target_spacing": list(config.target_spacing),
        "hu_window": list(config.hu_window),
        "mask_outside_liver": bool(config.mask_outside_liver) and config.stage == "tumor",
        "outside_hu": float(config.outside_hu),
        "roi_margin_mm": float(config.roi_margin_mm),
        "version": CACHE_VERSION,
        # masked tumor-stage caches also hold the unmasked ROI (mask-growth augmentation)
        **({"unmasked": True} if config.stage == "tumor" and config.mask_outside_liver else {}),
    }


def prepare_case(ct, hcc: np.ndarray, params: dict[str, Any], case_id: str) -> PreparedCase:
    """Resample, crop (tumor stage) and window one case exactly as inference will."""
    stage = params["stage"]
    tlvr = tumor_liver_ratio(hcc)
    # as inference reads it: int16 where it fits (an unsigned CT took -1000 HU outside the liver
    # as an OverflowError), NaN/infinite values as the lowest finite one
    hu = signed_hu(np.asarray(ct.array))
    spacing = tuple(float(s) for s in ct.spacing)
    liver_all = np.isin(hcc, (HCC_LIVER, HCC_TUMOR, HCC_PORTAL_VEIN))
    info: dict[str, Any] = {"source_shape": list(hu.shape), "source_spacing": list(spacing)}
    mask = None
    if stage == "tumor":
        if not liver_all.any():
            raise InputError(None, f"{case_id}: no liver in the labels; cannot crop the liver ROI")
        box = liver_bbox(liver_all, spacing, params["roi_margin_mm"])
        hu = hu[box]
        hcc = hcc[box]
        if params["mask_outside_liver"]:
            mask = liver_all[box]
        info["roi"] = [[int(s.start), int(s.stop)] for s in box]
    out_shape = stage_shape(hu.shape, spacing, params["target_spacing"])
    # the very function inference uses, so training sees what the pipeline will feed the net
    image = prepare_stage_input(
        hu, out_shape, params["hu_window"], mask=mask, outside_hu=params["outside_hu"]
    ).numpy()
    labels = resample_labels(stage_labels(hcc, stage), out_shape, 2 if stage == "liver" else 3)
    stage_spacing = grid_spacing(hu.shape, spacing, out_shape)
    unmasked = outside_mm = None
    if mask is not None and params.get("unmasked"):
        from scipy import ndimage as ndi

        unmasked = prepare_stage_input(hu, out_shape, params["hu_window"]).numpy()
        unmasked = unmasked.astype(np.float16)
        outside_mm = ndi.distance_transform_edt(labels == 0, sampling=stage_spacing)
        outside_mm = np.minimum(outside_mm, 1000.0).astype(np.float16)
    rng = np.random.default_rng(zlib.crc32(case_id.encode("utf-8", "surrogateescape")))
    fg = {"liver": _sample_indices(labels >= 1, rng)}
    if stage == "tumor":
        fg["tumor"] = _sample_indices(labels == 2, rng)
        fg["atypical"] = _sample_indices(atypical_liver(image, labels), rng)
        fg["lesion"] = lesion_indices(labels, rng)
    return PreparedCase(
        case_id=case_id,
        image=image.astype(np.float16),
        labels=labels.astype(np.uint8),
        spacing=stage_spacing,
        tlvr=tlvr,
        fg=fg,
        info=info,
        unmasked=unmasked,
        outside_mm=outside_mm,
    )


def atypical_liver(image: np.ndarray, labels: np.ndarray, k: float = 3.0) -> np.ndarray:
    """Non-tumor liver voxels whose smoothed intensity is far from the liver's typical one.

    Hard negatives for the tumor stage: focal fat or sparing, perfusion anomalies, cysts,
    vessels, scars: tissue that is not tumor but does not look like the rest of the liver. A
    voxel is atypical when its intensity, smoothed over about one voxel, lies more than ``k``
    robust standard deviations (1.4826 MAD) from the liver median. The smoothing averages over
    non-tumor liver only (normalised convolution), so neither the masked outside nor a tumor
    bleeds into its neighbours, and the one-voxel rim at the liver's edge (partial volume) is
    left out. Nothing is specific to a phantom generator: on real CT the same rule finds real
    mimics.
    """
    from scipy import ndimage as ndi

    liver = labels == 1
    core = ndi.binary_erosion(liver, iterations=1)
    if core.sum() < 50:
        return np.zeros(labels.shape, bool)
    w = liver.astype(np.float32)
    num = ndi.gaussian_filter(np.asarray(image, np.float32) * w, 1.0)
    den = ndi.gaussian_filter(w, 1.0)
    smooth = num / np.maximum(den, 1e-3)
    vals = smooth[core]
    med = float(np.median(vals))
    mad = float(np.median(np.abs(vals - med))) * 1.4826
    return core & (np.abs(smooth - med) > k * max(mad, 1e-3))


def lesion_indices(
    labels: np.ndarray, rng, per_lesion: int = 200, min_voxels: int = 5
) -> np.ndarray:
    """Tumor voxels drawn lesion by lesion: ``per_lesion`` (with replacement) from each
    connected tumor component (26-connectivity) of at least ``min_voxels`` voxels.

    A centre drawn uniformly from these rows picks every lesion equally often, so a 1 mL
    satellite is seen as often as the 500 mL mass beside it (drawn voxel by voxel, the mass
    gets 500 times the patches). Specks under ``min_voxels`` (resampling fragments) are left
    to the voxel-uniform draw. Returns ``(N, 3)`` int32, empty when there is no tumor.
    """
    from scipy import ndimage as ndi

    comp, n = ndi.label(labels == 2, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return np.zeros((0, 3), np.int32)
    idx = np.argwhere(comp > 0)
    ids = comp[tuple(idx.T)]
    order = np.argsort(ids, kind="stable")
    idx, ids = idx[order], ids[order]
    starts = np.searchsorted(ids, np.arange(1, n + 1))
    stops = np.searchsorted(ids, np.arange(1, n + 1), side="right")
    rows = [
        idx[a + rng.integers(0, b - a, per_lesion)]
        for a, b in zip(starts, stops, strict=True)
        if b - a >= min_voxels
    ]
    if not rows:
        return np.zeros((0, 3), np.int32)
    return np.concatenate(rows).astype(np.int32)


def _sample_indices(mask: np.ndarray, rng) -> np.ndarray:
    idx = np.argwhere(mask)
    if len(idx) > _FG_SAMPLES:
        idx = idx[rng.choice(len(idx), _FG_SAMPLES, replace=False)]
    return idx.astype(np.int32)


def cache_key(record: CaseRecord, params: dict[str, Any]) -> str:
    """Hash of the case's source files (path, size, mtime) and the preprocessing settings.

    A patient folder (HCC-TACE-Seg layout) counts every file under it: its own size and time
    do not change when a CT slice in a series folder is replaced.
    """
    h = hashlib.sha1()
    for p in (record.image, record.labels):
        h.update(os.fsencode(p.resolve()))  # (a Latin-1 name's own bytes)
        # (named below the folder, however the folder was named; hidden files, which the
        # reader skips, do not count)
        files = [(f.relative_to(p).as_posix(), f) for f in all_paths(p)] if p.is_dir() else []
        for name, f in sorted(files) or [("", p)]:
            if (name and any(part.startswith(".") for part in name.split("/"))) or not f.is_file():
                continue
            st = f.stat()
            h.update(f"|{name}|{st.st_size}|{st.st_mtime_ns}".encode("utf-8", "surrogateescape"))
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(str(record.series_uid).encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


class CacheWriteError(LiverTumorError):
    """The preprocessing cache cannot be written (a full disk, a file where a folder goes)."""


def load_or_prepare(
    records: list[CaseRecord],
    params_list: list[dict[str, Any]],
    cache_dir: str | Path,
    *,
    should_cancel=None,
    progress=None,
) -> tuple[list[dict[str, PreparedCase]], list[tuple[str, str]]]:
    """Prepare every case for every parameter set, reading each source at most once.

    Returns ``(prepared, skipped)``: ``prepared[i][case_id]`` for ``params_list[i]``, and
    ``(case_id, reason)`` for each patient that could not be used (logged).
    ``should_cancel()`` returning True between patients raises
    :class:`~napari_livertumor.errors.Cancelled` (what was cached stays cached).
    ``progress(done, total, case_id)`` is called before each patient, and with
    ``(total, total, None)`` at the end: reading and resampling a patient's CT takes seconds.
    """
    cache_dir = Path(cache_dir)
    prepared: list[dict[str, PreparedCase]] = [{} for _ in params_list]
    skipped: list[tuple[str, str]] = []
    used = 0  # bytes of the cache this run's patients take
    space_said = False
    known: dict[int, list[Path]] = {}

    def files_of(i: int) -> list[Path]:  # a patient's cache files (each keyed once)
        if i not in known:
            rec = records[i]
            known[i] = [
                cache_dir / p["stage"] / f"{rec.case_id}-{cache_key(rec, p)}.npz"
                for p in params_list
            ]
        return known[i]

    def still_to_prepare(after: int) -> int:
        n = 0
        for i in range(after + 1, len(records)):
            if should_cancel is not None and should_cancel():
                raise Cancelled("stopped while preparing the data")
            n += not all(p.is_file() for p in files_of(i))
        return n

    for done, rec in enumerate(records):
        if should_cancel is not None and should_cancel():
            raise Cancelled("stopped while preparing the data")
        if progress is not None:
            progress(done, len(records), rec.case_id)
        paths = files_of(done)
        missing = [i for i, path in enumerate(paths) if not path.is_file()]
        for i, path in enumerate(paths):
            if i not in missing:
                try:
                    prepared[i][rec.case_id] = _read_cached(path)
                except Exception:  # unreadable cache entry: rebuild it
                    missing.append(i)
        if not missing:
            used += _sizes(paths)
            continue
        try:
            ct, hcc = load_case(rec)
            # what the reader made good or left out (missing slices interpolated, a damaged
            # file, another series), said as convert and segment say it; kept with the cache
            notes = list(dict.fromkeys(str(w) for w in ct.meta.get("warnings") or ()))
            for note in notes:  # which series or phase was read is routine in a real download
                routine = note.startswith("read ") or " stacks " in note
                (log.info if routine else log.warning)("patient %s: %s", rec.case_id, note)
            for i in missing:
                case = prepare_case(ct, hcc, params_list[i], rec.case_id)
                if notes:
                    case.info["reader_warnings"] = notes
                try:
                    _write_cached(paths[i], case)
                except OSError as exc:  # the cache's disk, not the patient: stop the run
                    raise CacheWriteError(
                        f"cannot write the preprocessing cache {paths[i]} ("
                        f"{exc.strerror or exc}): check the cache or output folder and the "
                        "free disk space"
                    ) from exc
                prepared[i][rec.case_id] = case
            written = _sizes(paths)
            used += written
            if not space_said:  # the first patient written tells what the rest will take
                space_said = True
                _say_cache_space(cache_dir, written, still_to_prepare(done))
        except (CacheWriteError, Cancelled):  # (a stop while the rest's keys were made)
            raise
        except Exception as exc:  # one bad patient must not stop the run
            reason = _skip_reason(exc)
            _warn_skip(f"patient {rec.case_id}", reason)
            skipped.append((rec.case_id, reason))
            for d in prepared:
                d.pop(rec.case_id, None)
    if progress is not None:
        progress(len(records), len(records), None)
    if records:
        log.info(
            "preprocessing cache %s: %s for %d patient(s)",
            cache_dir,
            _amount(used),
            len(records) - len(skipped),
        )
    return prepared, skipped


def _skip_reason(exc: BaseException) -> str:
    """Why a patient could not be prepared, in words: running out of memory and an error of
    no expected kind were said as their bare type ("skipping patient HCC_002: MemoryError")."""
    from ..memory import out_of_memory

    found = out_of_memory(exc)
    if found is not None:
        gpu, detail = found
        return (
            f"out of {'GPU ' if gpu else ''}memory preparing it ({detail}): close other "
            "programs, use a bigger machine, or a recipe of coarser target spacing"
        )
    if isinstance(exc, (LiverTumorError, OSError, ValueError, RuntimeError)):
        return str(exc) or type(exc).__name__
    return f"unexpected error ({type(exc).__name__}: {exc})"


def _sizes(paths) -> int:
    total = 0
    for path in paths:
        try:
            total += Path(path).stat().st_size
        except OSError:
            continue
    return total


def _amount(n: float) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    return f"{n / 2**20:.1f} MB" if n < 10 * 2**20 else f"{n / 2**20:.0f} MB"


def _say_cache_space(cache_dir: Path, per_patient: int, more: int) -> None:
    """Where the cache goes, what the patients still to prepare will take there (as much as
    the first one each), and a warning when its disk has not that much free (the run would
    stop part-way: 105 patients of the GPU recipe take about 5 GB)."""
    import shutil

    need = per_patient * more
    try:
        free = shutil.disk_usage(cache_dir).free
    except OSError:
        free = None
    what = (
        f"preprocessing cache {cache_dir}: about {_amount(per_patient)} a patient, "
        f"{_amount(need)} more for the {more} still to prepare"
    )
    if free is not None and need > 0.9 * free:
        log.warning(
            "%s, and its disk has %s free: free space, or put the cache on a larger disk "
            "(--cache-dir; in the Train panel, an output folder there: the cache is its .cache)",
            what,
            _amount(free),
        )
    else:
        log.info("%s%s", what, f" ({_amount(free)} free)" if free is not None else "")


def _write_cached(path: Path, case: PreparedCase) -> None:
    from ..fileio import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "case_id": case.case_id,
        "spacing": list(case.spacing),
        "tlvr": case.tlvr,
        "info": case.info,
    }
    # named and published as every other file the package writes (readable by the group a
    # shared cache folder is meant for, not the owner only)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            image=case.image,
            labels=case.labels,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            **{f"fg_{k}": v for k, v in case.fg.items()},
            **{
                k: v
                for k, v in (("unmasked", case.unmasked), ("outside_mm", case.outside_mm))
                if v is not None
            },
        )


def _read_cached(path: Path) -> PreparedCase:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        fg = {k[3:]: z[k] for k in z.files if k.startswith("fg_")}
        if "tumor" in fg and "lesion" not in fg:  # cache written before lesion sampling
            case = meta["case_id"].encode("utf-8", "surrogateescape")
            rng = np.random.default_rng(zlib.crc32(case) + 1)
            fg["lesion"] = lesion_indices(z["labels"], rng)
        return PreparedCase(
            case_id=meta["case_id"],
            image=z["image"],
            labels=z["labels"],
            spacing=tuple(meta["spacing"]),
            tlvr=float(meta["tlvr"]),
            fg=fg,
            info=meta.get("info", {}),
            unmasked=z["unmasked"] if "unmasked" in z.files else None,
            outside_mm=z["outside_mm"] if "outside_mm" in z.files else None,
        )


# --------------------------------------------------------------------------- splits
def make_split(
    case_ids: list[str],
    seed: int,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    folds: int = 0,
    fold: int = 0,
) -> dict[str, Any]:
    """Patient-level split into ``train`` / ``val`` / ``test``.

    ``folds == 0``: a seeded shuffle, the last ``test_fraction`` is test (80/20 like the original).
    ``folds = k``: the patients are dealt into k folds and fold ``fold`` is the test set.
    ``val`` (for picking the best checkpoint) is taken from the training patients; it is never
    the test set.
    """
    ids = sorted(set(case_ids))
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    if folds and folds > 1:
        if not 0 <= fold < folds:
            raise ValueError(f"fold {fold} is not in 0..{folds - 1}")
        test = [c for i, c in enumerate(order) if i % folds == fold]
        rest = [c for i, c in enumerate(order) if i % folds != fold]
    else:
        n_test = int(round(len(order) * test_fraction)) if len(order) > 2 else 0
        test, rest = order[len(order) - n_test :], order[: len(order) - n_test]
    n_val = max(1, int(round(len(rest) * val_fraction))) if len(rest) > 2 and val_fraction else 0
    val, train = rest[len(rest) - n_val :], rest[: len(rest) - n_val]
    return {
        "train": sorted(train),
        "val": sorted(val),
        "test": sorted(test),
        "seed": seed,
        "method": f"{folds}-fold (test fold {fold})" if folds and folds > 1 else "shuffle",
    }


def _shipped_split(path: Path) -> Path:
    """``path``, or the package's ``configs/<name>`` when ``path`` is a relative
    ``configs/<name>`` (or a bare name) not found here: the model cards' commands run outside a
    source checkout."""
    if path.exists() or path.is_absolute() or str(path.parent) not in (".", "configs"):
        return path
    here = Path(__file__).resolve().parent.parent  # the package (installed: configs inside it)
    for folder in (here / "configs", here.parent / "configs"):
        found = folder / path.name
        if found.is_file():
            log.info("split %s: the shipped %s", path, found)
            return found
    return path


def read_split(path: str | Path, *, require_train: bool = True) -> dict[str, Any]:
    """Read a split JSON (``train``, optional ``val``, ``test``; lists of patient IDs).

    ``require_train=False`` (evaluation) accepts a file with only a ``test`` list. A relative
    ``configs/NAME.json`` that is not here is the split shipped with the plugin of that name
    (``configs/split_synth160.json``, as the model cards give it), as recipes are found.
    """
    path = _shipped_split(Path(path))
    try:
        split = read_user_json(path)
    except FileNotFoundError as exc:
        raise InputError(path, "split file not found") from exc
    except UnicodeDecodeError as exc:
        raise InputError(path, not_utf8_message(exc)) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON split file ({exc})") from exc
    key = "train" if require_train else "test"
    if not isinstance(split, dict) or not isinstance(split.get(key), list):
        raise InputError(path, f"a split file is a JSON object with a '{key}' list of patient IDs")
    for k in ("train", "val", "test"):
        if not isinstance(split.setdefault(k, []), list):
            raise InputError(path, f"'{k}' in a split file must be a list of patient IDs")
    # a training run's split.json lists a patient it skipped (unreadable then) under 'skipped'
    # with the list it was drawn into: it goes back there, to be tried again
    for entry in split.get("skipped") or []:
        if isinstance(entry, dict) and entry.get("list") in ("train", "val"):
            if entry.get("case") and entry["case"] not in split[entry["list"]]:
                split[entry["list"]] = [*split[entry["list"]], entry["case"]]
    # IDs written as the clinical table may write them ('HCC-3', 'hcc_4') are one patient's:
    # read as the table reader reads them, once per list, before the lists are compared
    from ..io.clinical import normalise_id

    for k in ("train", "val", "test"):
        split[k] = list(dict.fromkeys(normalise_id(c) for c in split[k]))
    # a patient in two lists is trained on and then scored as unseen (or validated on):
    # refused for training, naming them; evaluation reads only 'test' (scoring training
    # patients on purpose is a fair question to ask) and says so
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        both = sorted(set(map(str, split[a])) & set(map(str, split[b])))
        if both:
            listed = ", ".join(both[:8]) + (f" and {len(both) - 8} more" if len(both) > 8 else "")
            text = f"{len(both)} patient(s) are in both '{a}' and '{b}': {listed}"
            if require_train:
                raise InputError(path, text)
            log.warning("%s: %s (evaluating its 'test' list as given)", path, text)
    split["_path"] = str(path)
    return split


def case_fingerprint(record: CaseRecord) -> str | None:
    """A short hash of a patient's ground-truth file (NIfTI labels or DICOM SEG), or None.

    Patient IDs do not identify a patient across cohorts (every HCC-TACE-Seg-like cohort names
    them HCC_001…); the labels file does. Training records it for the test patients in
    ``split.json`` so that evaluation can tell its own test set from another cohort's.
    """
    try:
        return _fingerprint(*_file_version(Path(record.labels)))
    except OSError:
        return None


@functools.lru_cache(maxsize=1024)
def _fingerprint(path_text: str, size: int, mtime_ns: int) -> str | None:
    """:func:`case_fingerprint` of one version of a file (read once however often asked)."""
    import gzip

    path = Path(path_text)
    try:
        if path.name.lower().endswith(".gz"):  # the voxels and header, not gzip's time stamp
            # hashed as it inflates, 1 MiB at a time: read whole, a small file inflating to
            # gigabytes (a gzip bomb) held them all in memory
            digest = hashlib.sha1(usedforsecurity=False)
            with gzip.open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            return digest.hexdigest()[:16]
        if path.suffix.lower() == ".nii":
            content = path.read_bytes()
        else:  # a DICOM SEG: its frames (its UIDs are new every time one is written)
            import pydicom

            from ..io.dicom import refuse_deflate_bomb

            refuse_deflate_bomb(path)  # (pydicom would inflate it whole first)
            content = pydicom.dcmread(path).PixelData
    except Exception:  # unreadable: no fingerprint (evaluation then falls back to the names)
        return None
    return hashlib.sha1(content, usedforsecurity=False).hexdigest()[:16]


def write_split(split: dict[str, Any], path: str | Path) -> Path:
    """Write a split as JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from ..fileio import atomic_write_text

    split = {k: v for k, v in split.items() if not k.startswith("_")}
    return atomic_write_text(path, json.dumps(split, indent=2))
