"""Reading and writing CT volumes, label maps, DICOM SEG and clinical tables (no Qt)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..fileio import all_paths
from ..progress import ProgressFn, Reporter
from .volume import CTVolume

__all__ = ["CTVolume", "load_ct"]


#: image formats other tools write, named when given here instead of a puzzling DICOM error
_OTHER_FORMATS = {
    ".mgz": "FreeSurfer MGH",
    ".mgh": "FreeSurfer MGH",
    ".img": "Analyze",
    ".hdr": "Analyze",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
    ".npy": "NumPy",
    ".npz": "NumPy",
    ".png": "PNG picture",
    ".jpg": "JPEG picture",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def load_ct(
    path: str | Path,
    series_uid: str | None = None,
    *,
    acquisition: int | str | None = None,
    reporter: Reporter | ProgressFn | None = None,
    any_modality: bool = False,
    patient_id: str | None = None,
) -> CTVolume:
    """Load a CT from a DICOM folder/file or a ``.nii``/``.nii.gz`` file.

    Parameters
    ----------
    path : str or Path
        A NIfTI file, one DICOM file (its series is read from its folder), or a folder tree
        holding one or more DICOM series (unless ``series_uid``: the CT series a DICOM SEG
        there references, else an axial original one with the most slices; see
        :func:`napari_livertumor.io.dicom.read_dicom_series`).
    series_uid : str, optional
        ``SeriesInstanceUID`` to pick in a multi-series folder (ignored for NIfTI).
    acquisition : int or str, optional
        ``AcquisitionNumber`` to read when a series stacks several phases over the same
        stretch (ignored for NIfTI; by default the one a DICOM SEG there references, else the
        one with the most slices); of passes with no AcquisitionNumber, the pass's number;
        ``"pass 3"`` where passes are numbered apart from their AcquisitionNumbers (a number
        that is one pass's number and another pass's AcquisitionNumber is refused there);
        ``"none"`` for the slices with no AcquisitionNumber stacked beside numbered ones (see
        :func:`napari_livertumor.io.dicom.read_dicom_series`).
    reporter : napari_livertumor.progress.Reporter, optional
        Progress and cancellation while reading (DICOM files, NIfTI slabs).
    any_modality : bool
        DICOM: a folder without CT may give its image series of another modality (the caller
        then decides whether to use it; the pipeline refuses non-CT unless told otherwise).
    patient_id : str, optional
        DICOM: of a folder holding several patients' scans, this ``PatientID``'s.

    Returns
    -------
    CTVolume
        HU ``(z, y, x)`` with geometry, int16 (a float NIfTI whose values are not whole HU,
        e.g. scaled to 0..1, stays float32: the pipeline's input check then says they do not
        look like HU); problems met on the way in ``meta["warnings"]``.
    """
    from ..errors import InputError
    from .nifti import is_nifti_path, read_nifti

    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        # (pathlib's "expected str, bytes or os.PathLike object" said nothing of what to give)
        how = (
            ": an array is a CT already; wrap it as CTVolume(array, spacing=(dz, dy, dx))"
            if isinstance(path, np.ndarray)
            else ""
        )
        raise TypeError(
            f"load_ct takes the path of a DICOM folder or file or a NIfTI file; got "
            f"{type(path).__name__}{how}"
        )
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file or folder not found")
    if path.is_file() and is_nifti_path(path):
        volume = read_nifti(path, reporter=reporter)
        asked = [
            f"{what} {value}"
            for what, value in (("series", series_uid), ("acquisition", acquisition))
            if value is not None
        ]
        if asked:  # said, not silently dropped: a NIfTI file holds one volume
            volume.meta.setdefault("warnings", []).append(
                f"{' and '.join(asked)} asked for, but {path.name} is a NIfTI file (one volume, "
                "no DICOM series or acquisitions to choose from): it was read as it is"
            )
        return volume
    fmt = _OTHER_FORMATS.get("".join(path.suffixes[-2:]).lower()) or _OTHER_FORMATS.get(
        path.suffix.lower()
    )
    from .dicom import is_dicom_file, read_dicom_series

    if path.is_file() and fmt and not is_dicom_file(path):  # some exports name slices .img
        pair = _nifti_pair(path) if fmt == "Analyze" else None
        if pair:  # (said to be Analyze, its users looked for a NIfTI converter in vain)
            one = f"{path.stem}.nii.gz"
            raise InputError(
                path,
                f"a {pair} pair (.hdr header + .img voxels, two files): not read here (a "
                "NIfTI image is read as one .nii or .nii.gz file); make it one file, e.g. "
                f"with nibabel: nib.save(nib.load('{path.name}'), "
                f"'{one}'), then give {one}",
            )
        raise InputError(
            path,
            f"{fmt} format: not read here (DICOM and NIfTI only); convert it to NIfTI first "
            "(3D Slicer, ITK-SNAP, or SimpleITK's WriteImage write .nii.gz)",
        )
    try:
        return read_dicom_series(
            path,
            series_uid,
            acquisition=acquisition,
            reporter=reporter,
            any_modality=any_modality,
            patient_id=patient_id,
        )
    except InputError as exc:
        if path.is_dir() and exc.problem == "no DICOM files found":
            raise no_dicom_error(path) from exc
        raise


def _nifti_pair(path: Path) -> str | None:
    """``"NIfTI-1"`` (``"NIfTI-2"``) when the ``.hdr`` of an ``.hdr``/``.img`` pair (``path``
    being either) bears that magic, else None (Analyze 7.5 has none, or no header found)."""
    for header in (path, path.with_suffix(".hdr"), path.with_suffix(".HDR")):
        if header.suffix.lower() != ".hdr":
            continue
        try:
            with open(header, "rb") as fh:
                head = fh.read(540)
        except OSError:
            continue
        if head[344:347] == b"ni1":
            return "NIfTI-1"
        if head[4:7] == b"ni2":
            return "NIfTI-2"
        return None
    return None


def no_dicom_error(path: Path):
    """The :class:`InputError` for a folder with no DICOM image, saying what it holds instead
    (NIfTI files, label maps, DICOM SEGs alone, pictures of other formats, nothing): read_image
    and `livertumor convert`, which had said only "no DICOM files found"."""
    from ..errors import InputError

    path = Path(path)
    niftis = nifti_files_in(path)
    masks = [p for p in niftis if _MASK_NAME.match(p.name) and _bytes_per_voxel(p) == 1]
    if masks and len(masks) == len(niftis):
        return InputError(
            path,
            f"no CT here: it holds only label maps ({_names(masks)}: by their names "
            "and 8-bit values, the masks `livertumor segment` or Export write): give "
            "the CT they were made from",
        )
    niftis = [p for p in niftis if p not in masks]
    if niftis:
        return InputError(
            path,
            f"no DICOM files found; it holds {len(niftis)} NIfTI file(s) "
            f"({', '.join(p.name for p in niftis[:3])}{', …' if len(niftis) > 3 else ''})"
            ": give one of them",
        )
    from .tcia import seg_files_by_kind

    segs = [p for kind in seg_files_by_kind(path) for p in kind]
    if segs:
        return InputError(
            path,
            f"no CT here: it holds only DICOM SEG file(s) ({_names(segs)}), "
            "segmentations drawn on a CT series: give that CT's folder (in napari, "
            "opening the SEG finds its CT in the study folder or among those open)",
        )
    others = _other_format_files(path)
    if others:
        return InputError(
            path,
            f"no DICOM files found; it holds {others} (not read here: DICOM and NIfTI "
            "only; convert to NIfTI first, or choose the folder holding the DICOM series)",
        )
    return InputError(path, f"no DICOM files found: {_what_is_there(path)}")


def holds_no_scan_file(folder: Path, most: int = 5000) -> bool:
    """Whether ``folder`` surely holds no scan: nothing, or only pictures and volumes of
    formats not read here (PNG, NRRD…), none of them DICOM by its header. A file of any other
    kind (a DICOM slice without a preamble may be named anything) is left to the reader, as
    is a tree of more than ``most`` entries."""
    import itertools

    from .dicom import is_dicom_file

    for i, p in enumerate(itertools.islice(all_paths(folder), most + 1)):
        if i >= most:
            return False
        if p.name.startswith(".") or not p.is_file():
            continue
        fmt = _OTHER_FORMATS.get("".join(p.suffixes[-2:]).lower()) or _OTHER_FORMATS.get(
            p.suffix.lower()
        )
        if not fmt or is_dicom_file(p):
            return False
    return True


def _what_is_there(folder: Path, most: int = 1000) -> str:
    """What a folder with no scan holds, in a few words: empty, or some of its files."""
    import itertools

    files = sorted(
        p
        for p in itertools.islice(all_paths(folder), most)
        if p.is_file() and not p.name.startswith(".")
    )
    if not files:
        subs = any(p.is_dir() and not p.name.startswith(".") for p in Path(folder).iterdir())
        return "the folder is empty" + (" (but for empty subfolders)" if subs else "")
    names = ", ".join(p.name for p in files[:3]) + (", …" if len(files) > 3 else "")
    count = f"{len(files)}+" if len(files) >= most else str(len(files))
    return f"it holds {count} other file(s) ({names}), none of them DICOM"


#: the names of the masks `livertumor segment` and Export write
_MASK_NAME = re.compile(r".*_(labels|liver|tumor)\.nii(\.gz)?$", re.IGNORECASE)


def _bytes_per_voxel(path: Path) -> int | None:
    """The voxel size a NIfTI header declares (1: a label map's uint8; a CT is 2 or more)."""
    try:
        import nibabel as nib

        return int(nib.load(str(path)).header.get_data_dtype().itemsize)
    except Exception:  # noqa: BLE001 - unreadable: not judged a mask
        return None


def _names(paths: list[Path], n: int = 3) -> str:
    return ", ".join(p.name for p in paths[:n]) + (", …" if len(paths) > n else "")


def nifti_files_in(folder: Path, limit: int = 5000) -> list[Path]:
    """The NIfTI files under ``folder`` (a few thousand entries looked at, at most)."""
    from .nifti import is_nifti_path

    found = []
    for i, p in enumerate(all_paths(folder)):
        if i >= limit:
            break
        # (not a hidden file: macOS's ._liver_0.nii.gz beside the Decathlon's images)
        if is_nifti_path(p) and p.is_file() and not p.name.startswith("."):
            found.append(p)
    return sorted(found)


def _other_format_files(folder: Path, limit: int = 5000) -> str:
    """``"12 PNG picture files, 1 NRRD file"`` for the files of formats read elsewhere."""
    from collections import Counter

    counts: Counter = Counter()
    for i, p in enumerate(all_paths(folder)):
        if i >= limit:
            break
        fmt = _OTHER_FORMATS.get("".join(p.suffixes[-2:]).lower()) or _OTHER_FORMATS.get(
            p.suffix.lower()
        )
        if fmt and p.is_file():
            counts[fmt] += 1
    return ", ".join(f"{n} {fmt} file{'s' if n > 1 else ''}" for fmt, n in counts.most_common())
