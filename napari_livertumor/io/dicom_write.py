"""Write a :class:`CTVolume` as a realistic DICOM CT series (one CT Image Storage file per slice).

Used by the synthetic cohort (TCIA-like download layout), by tests that compare our reader with
SimpleITK, and by the benchmark. Geometry follows the volume's conventions exactly: slice ``k``
sits at ``origin + k * dz * direction[:, 2]`` (LPS), rows run along ``direction[:, 0]`` and
columns along ``direction[:, 1]``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from ..errors import InputError
from .volume import CTVolume

#: Short names accepted for ``transfer_syntax``.
TRANSFER_SYNTAXES = {
    "explicit": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg2000": JPEG2000Lossless,
}


def write_ct_series(
    volume: CTVolume,
    folder: str | Path,
    *,
    patient_id: str = "ANON",
    patient_name: str | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_number: int = 1,
    series_description: str = "CT",
    study_description: str = "CT ABDOMEN LIVER",
    study_date: str | None = None,
    acquisition_number: int = 1,
    contrast_agent: str | None = None,
    contrast_phase: str | None = None,
    instance_number_start: int = 1,
    file_names: Sequence[str] | None = None,
    storage: str = "int16",
    transfer_syntax: str = "explicit",
    patient_sex: str = "O",
    patient_age: str | None = None,
) -> list[Path]:
    """Write ``volume`` as one CT Image Storage file per z slice into ``folder``.

    Parameters
    ----------
    volume : CTVolume
        HU array ``(Z, Y, X)`` with its spacing, origin and direction.
    folder : str or Path
        Created if missing. Files are written to a temporary name and renamed, so a crash
        never leaves a half-written ``.dcm``.
    patient_id, patient_name, study_uid, series_uid, frame_of_reference_uid : str, optional
        Identity tags; UIDs are generated when not given. SOP instance UIDs are derived
        deterministically from the series UID, acquisition, instance number and slice index.
    series_number, series_description, study_description, study_date, acquisition_number
        Written as the matching DICOM tags (``study_date`` as ``YYYYMMDD``).
    contrast_agent : str, optional
        ``ContrastBolusAgent`` (absent for a non-contrast series).
    contrast_phase : str, optional
        A phase word (``"arterial"``, ``"portal venous"``, ``"delayed"``...) kept in
        ``ImageComments`` and in ``ContrastBolusRoute``-free form; readers guess the phase from it.
    instance_number_start : int
        ``InstanceNumber`` of slice 0; slice ``k`` gets ``start + k``.
    file_names : sequence of str, optional
        One name per slice (e.g. shuffled, to test that readers never sort by name). Default
        ``1-001.dcm``, ``1-002.dcm``... as in the TCIA download.
    storage : {"int16", "uint16"}
        Stored pixel type: ``int16`` with ``RescaleIntercept`` −1024, or ``uint16`` with
        ``RescaleIntercept`` −1024 (HU below −1024 are clipped then).
    transfer_syntax : {"explicit", "rle", "jpeg2000"}
        Uncompressed explicit VR little endian, or a lossless compression.

    Returns
    -------
    list of Path
        The files written, in slice order (``z = 0`` first).
    """
    folder = Path(folder)
    n_slices = volume.shape[0]
    if file_names is not None and len(file_names) != n_slices:
        raise InputError(folder, f"{len(file_names)} file names given for {n_slices} slices")
    if storage not in ("int16", "uint16"):
        raise ValueError(f"storage must be 'int16' or 'uint16', not {storage!r}")
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(f"transfer_syntax must be one of {sorted(TRANSFER_SYNTAXES)}")
    stored = _to_stored(np.asarray(volume.array), storage)  # refused before any folder is made
    folder.mkdir(parents=True, exist_ok=True)

    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    study_date = study_date or "20000101"
    width = max(3, len(str(n_slices)))
    if file_names is None:
        file_names = [f"1-{k + 1:0{width}d}.dcm" for k in range(n_slices)]

    template = _series_template(
        volume,
        patient_id=patient_id,
        patient_name=patient_name or f"{patient_id}^",
        patient_sex=patient_sex,
        patient_age=patient_age,
        study_uid=study_uid,
        series_uid=series_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        series_number=series_number,
        series_description=series_description,
        study_description=study_description,
        study_date=study_date,
        acquisition_number=acquisition_number,
        contrast_agent=contrast_agent,
        contrast_phase=contrast_phase,
        storage=storage,
    )
    ts_uid = TRANSFER_SYNTAXES[transfer_syntax]
    dz = volume.spacing[0]
    step = dz * volume.direction[:, 2]  # one slice to the next (sheared grid: not normal)
    normal = np.cross(volume.direction[:, 0], volume.direction[:, 1])
    normal *= np.sign(np.dot(normal, step)) or 1.0
    origin = np.asarray(volume.origin, dtype=float)

    paths = []
    for k in range(n_slices):
        position = origin + k * step
        ds = _slice_dataset(
            template, k, position, normal, instance_number_start + k, series_uid, acquisition_number
        )
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        if ts_uid != ExplicitVRLittleEndian:
            ds.compress(ts_uid, encoding_plugin="pylibjpeg" if ts_uid == JPEG2000Lossless else "")
        path = folder / file_names[k]
        _save_atomic(ds, path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- helpers
def _to_stored(hu: np.ndarray, storage: str) -> np.ndarray:
    if hu.dtype.kind == "f" and not np.isfinite(hu).all():  # cast to -32768 HU, unsaid
        bad = int(np.count_nonzero(~np.isfinite(hu)))
        raise ValueError(
            f"the CT holds {bad} NaN or infinite voxel(s): a DICOM image stores whole HU; "
            "replace them first (e.g. numpy.nan_to_num(array, nan=-1024))"
        )
    # RescaleIntercept -1024 for both storages
    values = np.rint(np.clip(hu, -(2**40), 2**40)).astype(np.int64) + 1024
    low, high = (0, 65535) if storage == "uint16" else (-32768, 32767)
    # what the pixels store and this package's reader gives back (HU as int16): 40000 HU was
    # stored as 31743, 5e9 as -32768, a uint16 64511 read back as 32767: another image
    top_hu = min(high - 1024, 32767)
    bottom_hu = -1024 if storage == "uint16" else -32768  # (uint16: clipped, as documented)
    if values.size:
        most, least = int(values.max()) - 1024, int(values.min()) - 1024
        if most > top_hu or (storage == "int16" and least < bottom_hu):
            raise ValueError(
                f"the CT holds {most if most > top_hu else least} HU, beyond what {storage} "
                f"pixels store and read back ({bottom_hu} to {top_hu} HU with RescaleIntercept "
                "-1024): clip the array first"
            )
    return np.clip(values, low, high).astype(np.uint16 if storage == "uint16" else np.int16)


def _series_template(volume: CTVolume, **kw) -> Dataset:
    ds = Dataset()
    now = _dt.datetime(2000, 1, 1, 12, 0, 0)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = kw["study_date"]
    ds.SeriesDate = kw["study_date"]
    ds.AcquisitionDate = kw["study_date"]
    ds.ContentDate = kw["study_date"]
    ds.StudyTime = now.strftime("%H%M%S")
    ds.SeriesTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "napari-livertumor"
    ds.InstitutionName = "SYNTHETIC"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = kw["study_description"]
    ds.SeriesDescription = kw["series_description"]
    ds.ManufacturerModelName = "synthetic"
    ds.PatientName = kw["patient_name"]
    ds.PatientID = kw["patient_id"]
    ds.PatientBirthDate = ""
    ds.PatientSex = kw["patient_sex"]
    if kw["patient_age"]:
        ds.PatientAge = kw["patient_age"]
    if kw["contrast_agent"]:
        ds.ContrastBolusAgent = kw["contrast_agent"]
    if kw["contrast_phase"]:
        ds.ImageComments = f"phase: {kw['contrast_phase']}"
    ds.BodyPartExamined = "ABDOMEN"
    ds.SliceThickness = f"{volume.spacing[0]:.6g}"
    ds.KVP = "120"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = kw["study_uid"]
    ds.SeriesInstanceUID = kw["series_uid"]
    ds.StudyID = "1"
    ds.SeriesNumber = kw["series_number"]
    ds.AcquisitionNumber = kw["acquisition_number"]
    ds.FrameOfReferenceUID = kw["frame_of_reference_uid"]
    ds.PositionReferenceIndicator = ""
    row_dir = volume.direction[:, 0]
    col_dir = volume.direction[:, 1]
    ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = volume.shape[1]
    ds.Columns = volume.shape[2]
    # PixelSpacing is (between rows, between columns) = (dy, dx).
    ds.PixelSpacing = [_ds(volume.spacing[1]), _ds(volume.spacing[2])]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if kw["storage"] == "int16" else 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    return ds


def _slice_dataset(
    template: Dataset,
    k: int,
    position: np.ndarray,
    normal: np.ndarray,
    instance_number: int,
    series_uid: str,
    acquisition_number: int,
) -> Dataset:
    ds = Dataset()
    ds.update(template)
    sop_uid = generate_uid(
        entropy_srcs=[series_uid, str(acquisition_number), str(instance_number), str(k)]
    )
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.SliceLocation = _ds(float(np.dot(position, normal)))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _ds(value: float) -> str:
    """A decimal string (max 16 characters) precise to well below 1e-3 mm."""
    text = f"{float(value):.10g}"
    if len(text) > 16:
        text = f"{float(value):.6e}"
    return "0" if text == "-0" else text


def _save_atomic(ds: Dataset, path: Path) -> None:
    from ..fileio import named_os_error, publish

    tmp = path.with_name(f".{path.name}.partial")
    try:
        try:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        except OSError as exc:  # a full disk: pydicom's error is a traceback naming no file
            said = named_os_error(exc, path, temp=tmp)
            if said is exc:
                raise
            raise said from exc
        publish(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
