"""One HCC-TACE-Seg patient as downloaded from TCIA: the SEG and the CT series it was drawn on.

Layout: ``HCC_009/<study>/<CT series>/1-001.dcm ...`` and
``HCC_009/<study>/300.000000-Segmentation-91221/1-1.dcm``. The CT is found from the SEG's
referenced series and SOP instances (so the right phase is read when a series stacks two), never
from folder names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from ..errors import InputError
from ..fileio import all_paths
from ..progress import Reporter
from .volume import CTVolume


def collection_folder(root: str | Path) -> Path:
    """The folder of patient folders of an NBIA Data Retriever download given above it.

    The retriever saves ``<download>/manifest-<id>/<Collection>/<PatientID>/…`` (the manifest
    folder also holds ``metadata.csv``): given the download or the manifest folder, the patient
    folders are two or one levels down. A lone ``manifest-*`` folder, and a lone folder beside
    ``metadata.csv`` in it, are gone down into; anything else is ``root`` itself (a patient's
    own folder, with its one study folder, is never gone down into).
    """
    return download_levels(root)[-1]


def download_levels(root: str | Path) -> list[Path]:
    """``root`` and the folders :func:`collection_folder` goes down through, in order."""
    from .dicom import MACOS_ZIP_FOLDER

    levels = [Path(root)]
    for _ in range(2):
        folder = levels[-1]
        try:
            subs = [
                p
                for p in folder.iterdir()
                if p.is_dir() and not p.name.startswith(".") and p.name != MACOS_ZIP_FOLDER
            ]
        except OSError:
            break
        if len(subs) != 1:
            break
        sub = subs[0]
        if not (sub.name.lower().startswith("manifest-") or (folder / "metadata.csv").is_file()):
            break
        levels.append(sub)
    return levels


def find_seg_files(root: str | Path, *, model_output: bool = False) -> list[Path]:
    """DICOM SEG files under ``root`` (any depth): the ground truths (by path; corrections
    this tool exported, after the others: :func:`seg_files_by_kind`), or with
    ``model_output`` only this tool's own unedited segmentations (``seg.is_model_output``),
    which are never a ground truth."""
    truths, own = seg_files_by_kind(root)
    return own if model_output else truths


def seg_files_by_kind(root: str | Path) -> tuple[list[Path], list[Path]]:
    """``(ground truths, this tool's own segmentations)`` among the DICOM SEG files under
    ``root``, each sorted by path (of the ground truths, those a user reviewed with this tool
    — :func:`reviewed_with_this_tool` — after the others), from one pass over the folder."""
    from .dicom import is_dicom_file, refuse_deflate_bomb
    from .seg import SEG_SOP_CLASSES, is_model_output

    found: tuple[list[Path], list[Path]] = ([], [])
    reviewed: list[Path] = []  # this tool's edited ones: after the dataset's own
    for path in sorted(all_paths(root)):
        if not path.is_file() or path.name.startswith(".") or not is_dicom_file(path):
            continue
        try:
            refuse_deflate_bomb(path)  # (pydicom would inflate it whole first)
            ds = pydicom.dcmread(
                path,
                stop_before_pixels=True,
                specific_tags=[
                    "SOPClassUID",
                    "Manufacturer",
                    "SeriesDescription",
                    "SegmentSequence",
                ],
            )
        except Exception:  # unreadable, a zip bomb: no SEG of it
            continue
        # this tool's own automatic output is no ground truth
        if str(ds.get("SOPClassUID", "")) in SEG_SOP_CLASSES:
            if is_model_output(ds):
                found[1].append(path)
            elif reviewed_with_this_tool(ds):
                reviewed.append(path)
            else:
                found[0].append(path)
    # a user's corrected export saved into the study folder was taken before the dataset's
    # reference SEG (sorted by path): the reference first, the corrections after
    return found[0] + reviewed, found[1]


def reviewed_with_this_tool(ds) -> bool:
    """Whether the DICOM SEG header ``ds`` is a model's segmentation corrected and exported
    with napari-livertumor (its maker, a segment SEMIAUTOMATIC): a user's review, not the
    dataset's ground truth. Its maker alone does not say it (the synthetic cohort's reference
    SEGs, a ground truth exported as MANUAL, are this tool's too)."""
    return str(ds.get("Manufacturer", "") or "") == "napari-livertumor" and any(
        str(x.get("SegmentAlgorithmType", "")).upper() == "SEMIAUTOMATIC"
        for x in ds.get("SegmentSequence") or []
    )


def _seg_of_this_folder(folder: Path, segs: list[Path], reporter: Reporter | None = None) -> Path:
    """The first of ``segs`` drawn on a CT series held in ``folder`` (else the first)."""
    from .dicom import discover_series
    from .seg import seg_referenced_series

    held = {s.uid for s in discover_series(folder, reporter=reporter) if s.is_ct}
    return next((seg for seg in segs if seg_referenced_series(seg) in held), segs[0])


def referenced_instances(seg_path: str | Path) -> tuple[str, set[str]]:
    """The series UID and SOP instance UIDs a DICOM SEG references."""
    from .dicom import refuse_deflate_bomb

    seg_path = Path(seg_path)
    refuse_deflate_bomb(seg_path)  # (pydicom would inflate it whole first)
    try:
        ds = pydicom.dcmread(seg_path, stop_before_pixels=True)
    except Exception as exc:
        raise InputError(seg_path, f"not a readable DICOM file ({type(exc).__name__})") from exc
    series_uid = ""
    uids: set[str] = set()
    for item in ds.get("ReferencedSeriesSequence", []):
        series_uid = series_uid or str(item.get("SeriesInstanceUID", ""))
        for inst in item.get("ReferencedInstanceSequence", []):
            uids.add(str(inst.get("ReferencedSOPInstanceUID", "")))
    for group in ds.get("PerFrameFunctionalGroupsSequence", []):
        for derivation in group.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                uids.add(str(source.get("ReferencedSOPInstanceUID", "")))
    uids.discard("")
    return series_uid, uids


def load_tcia_case(
    patient_dir: str | Path,
    *,
    seg_path: str | Path | None = None,
    reporter: Reporter | None = None,
) -> tuple[CTVolume, np.ndarray]:
    """Read one HCC-TACE-Seg patient: the segmented CT and its ground-truth classes.

    Parameters
    ----------
    patient_dir : str or Path
        The patient folder (or study folder) holding the CT series and the SEG.
    seg_path : str or Path, optional
        The SEG to use (default: the first SEG found under ``patient_dir``).

    Returns
    -------
    ct : CTVolume
        The CT series the SEG references (``meta["warnings"]`` also lists SEG notes).
    labels : ndarray, shape (Z, Y, X), uint8
        0 other, 1 liver, 2 tumor (mass + necrosis), 3 portal vein, 4 abdominal aorta.

    Raises
    ------
    InputError
        No SEG in the folder (e.g. HCC_103), or the CT series it references is missing.
    """
    from .dicom import read_dicom_series
    from .seg import read_dicom_seg

    patient_dir = Path(patient_dir)
    notes: list[str] = []
    if seg_path is None:
        segs = find_seg_files(patient_dir)
        if not segs:
            raise InputError(patient_dir, "no DICOM SEG (ground truth) in this patient folder")
        seg_path = segs[0]
        if len(segs) > 1:  # one drawn on a series of this folder (not another patient's)
            seg_path = _seg_of_this_folder(patient_dir, segs, reporter)
            notes.append(f"{len(segs)} SEG files found; used {seg_path}")
    seg_path = Path(seg_path)
    series_uid, sop_uids = referenced_instances(seg_path)
    try:
        ct = read_dicom_series(
            patient_dir,
            series_uid or None,
            prefer_sop_instance_uids=sop_uids,
            reporter=reporter,
        )
    except InputError as exc:
        raise InputError(
            seg_path,
            f"the CT series it references ({series_uid or 'unnamed'}) cannot be read from "
            f"{patient_dir}: {exc.problem}",
        ) from exc
    labels = read_dicom_seg(seg_path, ct, warnings=notes)
    ct.meta.setdefault("warnings", []).extend(notes)
    ct.meta["seg_path"] = str(seg_path)
    return ct, labels
