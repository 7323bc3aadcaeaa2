"""napari writers for labels layers (NIfTI on the CT's grid, DICOM SEG referencing the CT) and
for a CT image layer (NIfTI, the file ``livertumor convert`` writes for that CT).

Both follow npe2's single-layer writer signature ``(path, data, attributes) -> list[str]``. The
CT's geometry comes from ``attributes["metadata"]["ct_volume"]`` (set by our reader and widgets);
without it, a layer lying on the grid of a CT loaded in the viewer (napari's *New labels layer*)
takes that CT's geometry; otherwise a NIfTI is written from the layer's ``scale``/``translate``
(axis-aligned) and a DICOM SEG is refused with a message, since it must reference the CT's DICOM
slices.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

#: Segment labels written for each class value, by layer role.
_SEGMENTS = {
    "ground_truth": {1: "Liver", 2: "Mass", 3: "Portal vein", 4: "Abdominal aorta"},
    "segmentation": {1: "Liver", 2: "Tumor"},
}


#: layer metadata key set once a person changed a model's segmentation (painted, refined)
EDITED = "livertumor_edited"
#: layer metadata key: a digest of the labels the model gave (:func:`labels_digest`)
MODEL_DIGEST = "livertumor_model_digest"
#: layer metadata keys of labels opened from a file: the file, a digest of the labels as read,
#: and the run a ``livertumor segment`` stats file beside it records
OPENED_FROM = "livertumor_opened_from"
OPENED_DIGEST = "livertumor_opened_digest"
OPENED_RUN = "livertumor_opened_run"
#: ... and how the file says its labels were made: ``AUTOMATIC`` (this tool's model output as it
#: came), ``SEMIAUTOMATIC`` (edited after the model), ``MANUAL``, or absent (not said)
OPENED_ALGORITHM = "livertumor_opened_algorithm"
#: ... True when the file says the tumor stage did not run (a liver-only run): its tumor figures
#: are not computed, not 0
OPENED_TUMOR_NOT_RUN = "livertumor_opened_tumor_not_run"


def labels_digest(data) -> str:
    """A cheap fingerprint of a label array (shape and CRC-32 of its bytes, ~30 ms for a
    512² × 200 scan): tells the model's own output from anything changed since."""
    import zlib

    array = np.ascontiguousarray(np.asarray(data))
    crc = 0
    flat = array.reshape(-1).view(np.uint8)
    for start in range(0, flat.size, 1 << 26):  # 64 MB at a time: no copy of a huge array
        crc = zlib.crc32(flat[start : start + (1 << 26)], crc)
    return f"{array.dtype.str}{array.shape}:{crc:08x}"


def labels_edited(metadata: dict, data=None) -> bool:
    """Whether a model's segmentation was changed since the model made it. With ``data`` and
    the model's digest, by its voxels: a paint undone is the model's again, and a change
    napari has no event for (an array written in place from the console) is an edit. Else by
    the edit events seen (``EDITED``)."""
    metadata = metadata or {}
    digest = metadata.get(MODEL_DIGEST)
    if data is not None and digest:
        return labels_digest(data) != digest
    opened = metadata.get(OPENED_DIGEST)
    if data is not None and opened:
        # a model's output opened from a file (no panel watching it): changed since it was
        # opened, or changed in the file since the run wrote it
        run = metadata.get(OPENED_RUN) or {}
        return labels_digest(data) != opened or bool(run.get("changed_since_run"))
    return bool(metadata.get(EDITED))


def opened_file_provenance(metadata: dict, data=None) -> dict:
    """What an export says of labels opened from a file: ``opened_from`` (the file),
    ``edited_since_opened`` (by the labels' digest, with ``data``) and ``file_run``: the run of
    ``livertumor segment`` its stats file records (version, models, device...), as that file
    says it; empty for labels not opened from a file."""
    metadata = metadata or {}
    path = metadata.get(OPENED_FROM)
    if not path:
        return {}
    out: dict = {"opened_from": str(path)}
    digest = metadata.get(OPENED_DIGEST)
    if data is not None and digest:
        out["edited_since_opened"] = labels_digest(data) != digest
    if metadata.get(OPENED_RUN):
        out["file_run"] = dict(metadata[OPENED_RUN])
    return out


def seg_algorithm_type(metadata: dict, data=None) -> str:
    """How a labels layer came to be, as a DICOM SEG says it (Segment Algorithm Type): a
    model's segmentation is ``AUTOMATIC`` until a person paints on it or refines it
    (``SEMIAUTOMATIC``); a ground truth, or a layer drawn by hand, is ``MANUAL``. ``data``
    (the labels as saved) is compared with the model's own output where that is known."""
    metadata = metadata or {}
    if metadata.get("livertumor_role") != "segmentation":
        return "MANUAL"
    edited = labels_edited(metadata, data)
    if metadata.get(OPENED_FROM) and not metadata.get(MODEL_DIGEST):
        # opened from a file: as the file says it was made, or edited since. A reviewed SEG
        # reopened and exported unchanged was stamped the model's untouched output (and then
        # passed over as such, never taken for a reference); labels whose making no file
        # says are not claimed to be the model's own
        made = metadata.get(OPENED_ALGORITHM)
        if made == "MANUAL":
            return "MANUAL"
        if made == "AUTOMATIC" and not edited:
            return "AUTOMATIC"
        return "SEMIAUTOMATIC"
    return "SEMIAUTOMATIC" if edited else "AUTOMATIC"


class SaveRefused(RuntimeError):
    """Why a save was refused, in a type napari shows: it takes any ``ValueError`` (our
    :class:`~napari_livertumor.errors.InputError` is one) raised by a writer for "no writer
    found" and hides the message behind "not a valid writer"."""


def _refusals_shown(writer):
    @functools.wraps(writer)
    def write(path: str, data: Any, attributes: dict) -> list[str]:
        from .errors import InputError, toast_text

        # worded as the reader's refusals are, for napari's popup that shows a line or so: the
        # file's name and the problem first, its folder last (a deep path filled the line)
        try:
            return writer(path, data, attributes)
        except InputError as exc:
            raise SaveRefused(toast_text(str(exc))) from exc
        except ValueError as exc:  # a library's (highdicom's, nibabel's): said, not hidden
            raise SaveRefused(toast_text(f"{path}: cannot be written ({exc})")) from exc

    return write


@_refusals_shown
def write_labels_nifti(path: str, data: Any, attributes: dict) -> list[str]:
    """Save a labels layer as a uint8 NIfTI with the exact grid and affine of its CT."""
    from .io.nifti import write_nifti

    out = _with_suffix(Path(path), (".nii.gz", ".nii"), ".nii.gz")
    labels = _labels_array(data)
    reference = _reference(attributes, labels.shape)
    labels, reference = reference.to_stored(labels)  # a turned NIfTI: back to the file's order
    write_nifti(labels, out, reference=reference, labels=True)
    return [str(out)]


@_refusals_shown
def write_image_nifti(path: str, data: Any, attributes: dict) -> list[str]:
    """Save an image layer (a CT) as NIfTI on its own grid and affine, in its file's own axis
    order: for a CT read from DICOM, the file ``livertumor convert`` writes. Integer images keep
    their type (HU as int16); others are stored as float32."""
    from .errors import InputError
    from .io.nifti import write_nifti

    out = _with_suffix(Path(path), (".nii.gz", ".nii"), ".nii.gz")
    if isinstance(data, (list, tuple)) or type(data).__name__ == "MultiScaleData":
        data = data[0]  # a multiscale image: its full-resolution level
    if attributes.get("rgb"):
        raise InputError(out, "an RGB image is no CT: it cannot be saved as a NIfTI volume")
    array = np.asarray(data)
    if array.ndim != 3:
        raise InputError(
            out,
            f"expected a 3D image layer, got shape {array.shape} (this writer saves 3D "
            "volumes; save a 2D image with napari builtins, e.g. as .tif or .png)",
        )
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32, copy=False)
    # its own grid (an image never takes a DICOM CT's identity, nor its voxel order)
    reference = _reference(attributes, array.shape, twin=False)
    array, reference = reference.to_stored(array)  # a turned NIfTI: back to the file's order
    write_nifti(array, out, reference=reference)
    return [str(out)]


@_refusals_shown
def write_labels_dicom_seg(path: str, data: Any, attributes: dict) -> list[str]:
    """Save a labels layer as a DICOM SEG that references the CT series it was drawn on."""
    from .errors import InputError
    from .io.seg import seg_series_description, write_dicom_seg

    out = _with_suffix(Path(path), (".dcm",), ".dcm")
    labels = _labels_array(data)
    metadata = attributes.get("metadata") or {}
    volume = _reference(attributes, labels.shape)
    shared = volume.meta.get("grid_shared_by")
    if shared:
        raise InputError(
            out,
            f"this labels layer lies on the grid of several CTs ({', '.join(shared)}): a DICOM "
            "SEG must reference the one it was drawn on; close the other CT layers and save "
            "again, save it from a layer made on that CT (the Segment panel, or Load CT's "
            "ground truth), or save it as NIfTI",
        )
    if not volume.file_meta.get("files"):
        raise InputError(
            out,
            "this labels layer is not linked to a CT read from DICOM; a DICOM SEG must "
            "reference the CT's DICOM slices (save as NIfTI instead)",
        )
    role = metadata.get("livertumor_role")
    names = _SEGMENTS.get(role, _SEGMENTS["ground_truth"])
    values = [int(v) for v in np.unique(labels) if v != 0]
    if not values:
        raise InputError(out, "the labels layer is empty; nothing to save")
    segments = [(v, names.get(v, f"Label {v}")) for v in values]
    scope = "liver+tumor" if 2 in values else "liver"
    if role == "segmentation":
        # as the Export panel and `segment --dicom-seg` write it: Liver and Tumor declared
        # (an empty Tumor is "no tumor found"), Liver alone only when the tumor stage never ran
        odd = [v for v in values if v not in (1, 2)]
        if odd:
            listed = ", ".join(str(v) for v in odd[:5]) + (" …" if len(odd) > 5 else "")
            raise InputError(
                out,
                f"this segmentation holds label value(s) {listed} besides 1 (liver) and 2 "
                "(tumor): paint those voxels 0, 1 or 2 before saving it as a DICOM SEG (or "
                "save it as NIfTI, which keeps any value)",
            )
        scope = "liver" if tumor_not_assessed_in(metadata, labels) else "liver+tumor"
        segments = [(1, "Liver")] if scope == "liver" else [(1, "Liver"), (2, "Tumor")]
    notes: list[str] = []
    unnamed = [v for v in values if v not in names] if role != "segmentation" else []
    if unnamed:  # written (other tools read them), but this plugin reads back only its classes
        more = " …" if len(unnamed) > 5 else ""
        notes.append(
            f"label value(s) {', '.join(str(v) for v in unnamed[:5])}{more} written as "
            f"segment(s) {', '.join(f'Label {v}' for v in unnamed[:5])}{more}: opened here again "
            f"(File > Open, Load CT's ground truth) only {', '.join(names.values())} are read back"
        )
    kind = seg_algorithm_type(metadata, labels)
    write_dicom_seg(  # (a CT shown turned: it writes on the files' own order)
        labels,
        volume,
        out,
        segments,
        algorithm_type=kind,
        # a model's segmentation as it came is marked so: never read as a ground truth
        # as Export describes it (the layer's name here, something else there)
        series_description=seg_series_description(
            kind, liver_only=scope == "liver", ground_truth=role == "ground_truth"
        ),
        notes=notes,
    )
    for note in notes:
        _warn(note)
    return [str(out)]


def _warn(note: str) -> None:
    """``note`` as a Python warning and, in napari, as a notification. napari shows a warning
    as one only where its hook receives it (``viewer.layers.save`` in a running napari); File >
    Save Selected Layers records the warnings a save raises and shows them only if it fails,
    so there the note was lost: it is also shown there, and once only where napari's hook
    shows the warning itself."""
    import sys
    import warnings

    napari_shows = False
    if "napari" in sys.modules:  # (a script writing files never loads napari for this)
        try:
            from napari.utils.notifications import notification_manager, show_warning

            napari_shows = warnings.showwarning == notification_manager.receive_warning
            if not napari_shows:
                show_warning(note)
        except Exception:  # noqa: BLE001 - the warning below still says it
            pass
    warnings.warn(note, UserWarning, stacklevel=3)


# --------------------------------------------------------------------------- helpers
def tumor_not_assessed_in(metadata: dict, labels) -> bool:
    """True for a model segmentation (its layer ``metadata``) whose tumor stage never ran
    (liver only, or no liver found; also one opened from a file that says so) and in which
    nobody has painted tumor since (``labels``): its tumor figures are unknown, not 0."""
    stats = metadata.get("stats") or {}
    said = "tumor_ml" in stats and stats["tumor_ml"] is None
    if not said and not metadata.get(OPENED_TUMOR_NOT_RUN):  # (a liver-only run's file opened)
        return False
    return not bool(np.any(np.asarray(labels) == 2))


def _labels_array(data) -> np.ndarray:
    array = np.asarray(data)
    if array.ndim != 3:
        from .errors import InputError

        raise InputError(
            None,
            f"expected a 3D labels layer, got shape {array.shape} (these writers save 3D "
            "volumes; save a 2D layer with napari builtins, e.g. as .tif)",
        )
    if array.min() < 0 or array.max() > 255:
        from .errors import InputError

        raise InputError(None, "label values must lie in 0..255 to be saved as uint8")
    return array.astype(np.uint8, copy=False)


def _reference(attributes: dict, shape, *, twin: bool = True):
    from .io.volume import CTVolume

    volume = (attributes.get("metadata") or {}).get("ct_volume")
    if volume is not None and tuple(volume.shape) == tuple(shape):
        # a mask segment wrote as NIfTI, over the DICOM CT it was made on open in the viewer:
        # that CT's identity (a DICOM SEG references its slices)
        return (_dicom_twin_in_viewer(volume) if twin else None) or volume
    scale = tuple(attributes.get("scale") or (1.0, 1.0, 1.0))[-3:]
    translate = tuple(attributes.get("translate") or (0.0, 0.0, 0.0))[-3:]
    # a layer with no CT of its own (napari's New labels layer) on a loaded CT's grid: that CT's
    # orientation and origin, which scale and translate do not hold for a feet-first or oblique CT
    same = _grid_volume_in_viewer(shape, scale, translate)
    if same is not None:
        return same
    return CTVolume(
        np.zeros(shape, np.uint8),
        spacing=scale,
        origin=(translate[2], translate[1], translate[0]),
    )


def _viewers() -> list:
    """napari's open viewers, the current one first; none from a script without napari or
    without a viewer. Only that is quiet: an error in what the viewer's layers are asked is the
    writer's error, not a save on a grid rebuilt without the CT's orientation. (A writer is
    given the layer's data, not its viewer: with two windows open, the one active last decided,
    and a save from the other one was refused as "not linked to a CT read from DICOM".)"""
    try:
        import napari
    except ImportError:
        return []
    current = napari.current_viewer()
    others = [v for v in list(getattr(napari.Viewer, "_instances", ())) if v is not current]
    return ([current] if current is not None else []) + others


def _dicom_twin_in_viewer(volume):
    from ._widgets._layers import dicom_twin

    for viewer in _viewers():
        twin = dicom_twin(volume, viewer.layers)
        if twin is not None:
            return twin
    return None


def _grid_volume_in_viewer(shape, scale, translate):
    from ._widgets._layers import grid_volume

    for viewer in _viewers():
        same = grid_volume(viewer.layers, shape, scale, translate)
        if same is not None:
            return same
    return None


#: file name endings that belong to one of the two writers
_KNOWN_SUFFIXES = (".nii.gz", ".nii", ".dcm")


def _with_suffix(path: Path, allowed: tuple[str, ...], default: str) -> Path:
    from .errors import InputError

    name = path.name.lower()
    if any(name.endswith(s) for s in allowed):
        return path
    other = next((s for s in _KNOWN_SUFFIXES if name.endswith(s)), None)
    if other is not None:  # "seg.dcm" typed with the NIfTI filter chosen: not "seg.dcm.nii.gz"
        raise InputError(
            path,
            f"the name ends in {other} but this writer saves {default} files: choose the "
            f"matching file type, or name it *{default}",
        )
    out = path.with_name(path.name + default)
    if out.exists():
        # napari's dialog asked about replacing the name as typed, which does not exist; the
        # file this name becomes does, and nobody was asked about it
        raise InputError(
            out,
            f"already exists (the name given had no {default} ending, so replacing it was never "
            f"asked): give the full name {out.name} to replace it, or another name",
        )
    return out
