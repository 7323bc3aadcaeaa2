"""napari reader: DICOM CT folders/files, NIfTI CTs and label maps, DICOM SEG.

``napari_get_reader`` only looks at names and a few header bytes and returns ``None`` for
anything else, so napari can offer the file to other plugins; it never raises. (A folder is
offered to this reader whatever it holds: one with no DICOM or NIfTI file gets a reader that
says so when this plugin was chosen, and reads nothing otherwise.) The reader it
returns builds layers whose ``scale``/``translate`` come from the CT's spacing and origin, so a
label map read with its CT overlays it exactly.

Layer ``metadata`` follows the widgets' convention: ``"ct_volume"`` holds the
:class:`~napari_livertumor.io.volume.CTVolume` (geometry and DICOM identity, needed to save a
DICOM SEG later) and ``"livertumor_role"`` is ``"ct"``, ``"segmentation"`` or ``"ground_truth"``.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import time
from pathlib import Path

import numpy as np

from .errors import InputError

CT_CONTRAST_LIMITS = (-160.0, 240.0)  # the abdomen window, W 400 / L 40
_SEG_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}
#: files looked at for a DICOM one when a folder is offered: per folder, and in all
_PROBE_PER_FOLDER, _MAX_PROBE = 32, 1024


def napari_get_reader(path):
    """Return a reader for ``path`` if it is a CT (DICOM, NIfTI) or a DICOM SEG, else ``None``."""
    try:
        target = _single_target(path)
        if target is None:
            return None
        denied = _access_problem(target)
        if denied:  # no reader can read it: why is said (napari said "refused the file")
            return _refusal(target, denied)
        if _is_nifti(target) and target.is_file():
            return _said_briefly(read_nifti_layers)
        if target.is_dir():
            unread: list = []
            if _folder_has_dicom(target, unread):
                return _said_briefly(read_dicom_layers)
            # a folder of NIfTI files (a dataset's imagesTr/labelsTr): napari said only that the
            # plugin "refused the file"; which files to open is said instead
            if _nifti_files_in(target):
                return _said_briefly(read_nifti_folder)
            # napari offers every folder to every reader that takes folders (npe2 matches no
            # name for a folder): File > Open Folder or a drop asked which reader to use, this
            # plugin chosen first, and a decline said only "refused the file". Said instead
            # when this plugin was named; passed on where napari tries each reader in turn
            from .io.dicom import _skipped_text

            if _holds_no_files(target):  # napari builtins fail on it too: no advice to
                return _folder_refusal(  # choose them
                    target, "the folder is empty (or holds only subfolders: open one of them)"
                )
            chosen = _chosen_for(target)
            return _folder_refusal(
                target,
                "no DICOM or NIfTI files found"
                + (f"; {_skipped_text(unread)}" if unread else "")
                + (
                    # napari's settings send every folder here (as the README advises)
                    ", and napari opens every folder with this plugin (Preferences > Plugins)"
                    if chosen
                    else ""
                )
                + ": to open it as images, choose napari builtins (File > Open with Plugin > "
                "Open Folder…)",
            )
        if target.is_file() and _looks_like_dicom(target):
            return _said_briefly(read_dicom_layers)
        if target.is_file() and target.suffix.lower() in (".dcm", ".dicom", ".ima"):
            # named as DICOM but not one (an image renamed): napari said only that the plugin
            # "refused the file"; the reader says what the file is not
            return _said_briefly(read_dicom_layers)
    except Exception:  # a reader probe must never break napari's open dialog
        return None
    return None


def opens_as_a_scan(path) -> bool:
    """Whether this reader opens ``path`` as a scan: a DICOM file or a folder holding one, or
    a NIfTI file (napari's own reader opens some of them too, without their voxel spacing)."""
    try:
        target = Path(path)
        if target.is_dir():
            return _folder_has_dicom(target)
        return target.is_file() and (_is_nifti(target) or _looks_like_dicom(target))
    except (OSError, ValueError):
        return False


def _access_problem(target: Path) -> str | None:
    """Why ``target`` cannot be looked at: "permission denied" for a folder that cannot be
    listed, or a path inside a folder that cannot be entered (Python raises there); else
    None."""
    from .io.dicom import os_problem

    try:
        if target.is_dir():
            with os.scandir(target):
                pass
        elif target.is_file():
            open(target, "rb").close()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return os_problem(exc)
    return None


def _chosen_for(path: Path) -> bool:
    """Whether napari's settings name this plugin the reader of ``path`` (``*/`` for folders,
    as the README advises): napari then opens it here and offers no other reader."""
    try:
        from napari.plugins.utils import get_preferred_reader

        return get_preferred_reader(path) == "napari-livertumor"
    except Exception:  # noqa: BLE001 - no napari (a script): declined, as before
        return False


def _refusal(path: Path, problem: str):
    """A reader saying why ``path`` is not read (what napari shows of the plugin's error)."""

    def refuse(_path):
        raise InputError(path, problem)

    return _said_briefly(refuse)


def _holds_no_files(folder: Path) -> bool:
    """Whether ``folder`` holds no files (hidden ones, as macOS's .DS_Store, aside): empty, or
    only subfolders. False where it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return not any(not e.name.startswith(".") and e.is_file() for e in entries)
    except OSError:
        return False


def _folder_refusal(path: Path, problem: str):
    """A reader for a folder this plugin cannot read: it says why when napari was told to use
    this plugin (the reader dialog, a remembered choice, ``plugin=``); where napari tries every
    reader in turn (no plugin named), it returns no layers and the next reader is tried, as a
    decline would have."""
    said = _refusal(path, problem)

    @functools.wraps(said)
    def reader(_path):
        if _tried_in_turn():
            return []
        return said(_path)

    return reader


def _tried_in_turn() -> bool:
    """Whether npe2's ``read`` calling this reader was given no plugin name (it then tries the
    next reader when this one returns no layers). False where that cannot be seen (called
    directly, another npe2): the reader says why."""
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_read" and frame.f_globals.get("__name__") == "npe2.io_utils":
            return not frame.f_locals.get("plugin_name")
        frame = frame.f_back
    return False


def _said_briefly(read):
    """``read``, its refusals worded for napari's error notification, which shows a line or
    so: the file's name and the problem first, its folder after (a deep path filled the line
    and the problem was seen only by expanding it)."""
    import functools

    from .errors import toast_text

    @functools.wraps(read)
    def reader(path):
        _watch_viewer()
        try:
            return read(path)
        except InputError as exc:
            raise InputError(None, toast_text(str(exc))) from exc

    return reader


def _watch_viewer() -> None:
    """The viewer's layer hooks the panels install (a scan opened elsewhere shown, labels off
    every open CT's grid said), installed by the first file opened, with no panel open."""
    try:
        import napari

        from ._widgets._layers import dim_truth_in_3d, keep_head_up, show_new_scans

        viewer = napari.current_viewer()
        show_new_scans(viewer)
        dim_truth_in_3d(viewer)  # a ground truth opened in 3D: see-through, as with a panel
        keep_head_up(viewer)  # coronal and sagittal views head up, as with a panel
    except Exception:  # noqa: BLE001 - a courtesy; reading goes on
        pass


def read_dicom_layers(path) -> list[tuple]:
    """Layers for a DICOM folder/file: the CT, plus its ground truth when a SEG is found.

    A SEG file opens with the CT series it references (searched among the CTs open, then in the
    scan ``segment`` read it from, or its study folder); a folder holding a CT and a SEG (an
    HCC-TACE-Seg patient) opens as the segmented CT and its labels.
    """
    from .io.tcia import load_tcia_case, seg_files_by_kind

    target = _single_target(path)
    truth_problem: InputError | None = None
    if target.is_file() and _sop_class(target) in _SEG_SOP_CLASSES:
        # drawn on a CT already open (an export saved elsewhere, a SEG from PACS): its labels
        # join that CT rather than a second copy of it
        on_open_ct = _seg_on_an_open_ct(target)
        if on_open_ct is not None:
            return on_open_ct
        folder = _where_its_ct_is(target)
        searched = f"looked for in {folder} and among the CTs open in the viewer"
        try:
            if _crowded(folder):
                searched = "looked for among the CTs open in the viewer"
                raise InputError(
                    folder,
                    f"{folder} holds more than {_MAX_SEARCHED_FILES:,} files, too many to "
                    "search for its CT without holding up napari",
                )
            try:
                volume, labels = load_tcia_case(folder, seg_path=target)
            except InputError:
                study = target.parent.parent
                if folder == study or _crowded(study):
                    raise
                # the scan its stats name no longer holds that CT (moved, replaced): the
                # study folder, as for any SEG
                searched = (
                    f"looked for in {folder}, in {study} and among the CTs open in the viewer"
                )
                volume, labels = load_tcia_case(study, seg_path=target)
        except InputError as exc:
            if exc.path is not None and Path(exc.path) == target and "pixel data" in exc.problem:
                raise  # its CT was found: the SEG itself is damaged (no CT to open first)
            where = "" if exc.path in (None, target, folder) else f" ({exc.path})"
            # a model's own output is no ground truth: Load CT's field is no way to open it
            also = (
                ""
                if _seg_role(target) == "segmentation"
                else (" (or choose it as the ground truth in Load CT)")
            )
            raise InputError(
                target,
                f"{exc.problem}{where}\nThis is a DICOM SEG: it opens on the CT series it was "
                f"drawn on, {searched}. Open that CT first, then this file again{also}.",
            ) from exc
        _say_warnings(volume)
        return _with_ground_truth(volume, labels, _seg_role(target), opened_from=target)
    if target.is_dir():
        segs, own = seg_files_by_kind(target)
        # without a ground truth, this tool's own segmentation (the newest) opens instead
        own = [] if segs else _newest_first(own)
        either = segs or own
        if either and all(s.parent == target for s in either) and not _holds_images(target):
            # a Segmentation series folder (TCIA keeps each SEG in one), or one holding
            # `segment --dicom-seg`'s output: opened as its file
            layers = read_dicom_layers(either[0])
            if len(own) > 1:  # a batch's output folder: one patient's at a time
                _notify(
                    f"{len(own)} segmentations in {target.name}: opened the newest, "
                    f"{own[0].name}; open the others by their files"
                )
            return layers
        if segs:
            try:  # the SEG drawn on a CT of this folder (another patient's may sit beside)
                volume, labels = load_tcia_case(target)
            except InputError as exc:  # the CT still opens; why its labels did not is said
                truth_problem = exc  # (once it has: a CT that cannot be read says only that)
            else:
                _say_warnings(volume)
                seg_path = Path(volume.meta["seg_path"])
                return _with_ground_truth(volume, labels, _seg_role(seg_path), opened_from=seg_path)
        elif own:
            layers = _own_segmentation(target, own)
            if layers is not None:
                return layers
    from .io.dicom import read_dicom_series

    if target.is_file() and _opened_with_its_series(target):
        return [(None,)]  # napari's "read, nothing to add"
    volume = read_dicom_series(target)
    if target.is_file():
        _remember_series(target, volume)
    if truth_problem is not None:
        _notify(f"The ground truth was not loaded: {truth_problem}")
    _say_warnings(volume)
    return [ct_layer_data(volume.displayed())]  # as Load CT and NIfTI files show it


def _say_warnings(volume) -> None:
    """What the Load CT panel says beside a scan (another series or patient left out, a stacked
    phase chosen, missing slices, values that do not look like HU), said for File > Open too:
    as a napari notification, and in the layer's metadata ``warnings``."""
    from .pipeline import check_volume

    notes = check_volume(volume, for_models=False)  # what no CT can be is refused here
    said = [*notes, *(volume.meta.get("warnings") or [])]
    volume.meta["warnings"] = list(dict.fromkeys([*(volume.meta.get("warnings") or []), *notes]))
    if not said:
        return
    name = volume.meta.get("description") or volume.meta.get("source") or "the scan"
    _notify(f"{name}: " + "\n".join(said))


def _notify(text: str) -> None:
    """``text`` as a napari warning notification (a Python warning without napari)."""
    try:
        from napari.utils.notifications import show_warning

        show_warning(text)
    except Exception:  # noqa: BLE001 - no napari (a script using the reader): a Python warning
        import warnings

        warnings.warn(text, stacklevel=3)


#: A multi-select of one series' files in File > Open is handed to the reader one file at a time
#: (napari opens with ``stack=False``), and every file would open the whole series again. The
#: first file reads the series; its other files add nothing when they follow at once (each
#: within a few seconds of the one before, as napari's loop does; a person opening another file
#: of the series later gets it opened again).
_SERIES_SIBLINGS: dict[str, list] = {}  # file -> its series' shared [time of the last call]
_SIBLING_SECONDS = 5.0


def _remember_series(target: Path, volume) -> None:
    _SERIES_SIBLINGS.clear()  # only the series read last can be a multi-select in progress
    here = _file_key(target)
    group = [time.monotonic()]
    for f in [*(volume.meta.get("files") or []), *(volume.meta.get("unused_files") or [])]:
        if f and _file_key(Path(f)) != here:
            _SERIES_SIBLINGS[_file_key(Path(f))] = group


def _opened_with_its_series(target: Path) -> bool:
    group = _SERIES_SIBLINGS.pop(_file_key(target), None)
    if group is None:
        return False
    now = time.monotonic()
    if now - group[0] > _SIBLING_SECONDS or not _series_still_open(target):
        _SERIES_SIBLINGS.clear()
        return False
    group[0] = now  # the next file of the selection follows this one
    return True


def _series_still_open(target: Path) -> bool:
    """Whether the viewer still shows a layer read from ``target``'s series (a file opened
    within seconds of a multi-select, after its layer was deleted, added nothing and said
    nothing). True without a viewer (the time alone decides)."""
    try:
        import napari

        from ._widgets._layers import CT_VOLUME

        viewer = napari.current_viewer()
    except Exception:  # noqa: BLE001 - no viewer: as before
        return True
    if viewer is None:
        return True
    key = _file_key(target)
    for layer in viewer.layers:
        volume = layer.metadata.get(CT_VOLUME)
        meta = getattr(volume, "meta", None) or {}
        files = [*(meta.get("files") or []), *(meta.get("unused_files") or [])]
        if any(_file_key(Path(f)) == key for f in files if f):
            return True
    return False


def _file_key(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path)


def read_nifti_folder(path) -> list[tuple]:
    """A folder holding NIfTI files and no DICOM: each file is one scan or label map, opened
    as a file; said, naming some (nothing is opened)."""
    target = _single_target(path)
    found = _nifti_files_in(target)
    shown = ", ".join(str(p.relative_to(target)) for p in found[:3])
    more = " …" if len(found) > 3 else ""
    raise InputError(
        target,
        f"a folder of NIfTI files ({shown}{more}), not a DICOM series: open the files "
        "themselves (File > Open File(s); a CT and its label map together overlay), or a "
        "patient's scan in Load CT",
    )


_NIFTI_PROBE = 8


def _nifti_files_in(folder: Path) -> list[Path]:
    """Up to a few NIfTI files in ``folder`` or its subfolders one level down (imagesTr/)."""
    found: list[Path] = []
    try:
        entries = sorted(itertools.islice(folder.iterdir(), _MAX_PROBE))
    except OSError:
        return found
    for entry in entries[:_PROBE_PER_FOLDER]:  # a probe on napari's thread: bounded
        if entry.name.startswith("."):
            continue
        try:
            children = (
                sorted(itertools.islice(entry.iterdir(), _MAX_PROBE)) if entry.is_dir() else [entry]
            )
        except OSError:
            continue
        found += [
            c for c in children if c.is_file() and _is_nifti(c) and not c.name.startswith(".")
        ][: _NIFTI_PROBE - len(found)]  # (macOS's ._liver_0.nii.gz beside the Decathlon's)
        if len(found) >= _NIFTI_PROBE:
            break
    return found


def read_nifti_layers(path) -> list[tuple]:
    """Layers for a NIfTI file: an image layer for a CT, a labels layer for a label map.

    A label map with NaN or infinite voxels is refused, and one taken for a ground truth
    (by its name, folder or classes) is checked as the Load panel and ``evaluate`` check one:
    with values that are no class here (above 4, a 0/255 mask, fractions: refused there) it
    opens as plain labels, said in a notification, not as a ground truth (it opened as one,
    which Inspect scored against)."""
    from .io.nifti import ground_truth_classes, read_nifti, refuse_nonfinite_labels

    target = _single_target(path)
    stored = read_nifti(target)
    if not _is_label_map(stored.array):
        # checked as stored (a coronal file's square pixels were taken for its axial ones,
        # and said not square), then shown as DICOM shows it; saved back in stored order
        _say_warnings(stored)
        return [ct_layer_data(stored.displayed())]
    # (its NaN voxels were read as 0, background: a broken map, not a warning's matter)
    refuse_nonfinite_labels(target, stored)
    volume = stored.displayed()
    lesions = _lesions_of_map(target, stored.array)
    if lesions is not None:
        return [lesion_map_layer_data(volume.array, volume, _stem(target), lesions or None)]
    role = _nifti_labels_role(target, volume.array)
    labels = None
    if role == "ground_truth":
        try:
            labels = ground_truth_classes(target, volume)
        except InputError as exc:
            # another dataset's classes (AMOS's 13 organs, 255 for "ignore") in labelsTr/:
            # opened, as such a map in any other folder is, but not as a ground truth Inspect
            # would score against (refused, it could not be looked at at all)
            role = "segmentation"
            _notify(f"{target.name}: opened as plain labels, not as a ground truth: {exc.problem}")
    if labels is None:
        labels = volume.array.astype(np.uint8)
    made_on = _made_on_series(target)
    grid = volume.with_array(volume.array, **({"made_on_series": made_on} if made_on else {}))
    # named as a CT file is: by its folder too where its own name is a generic one
    name = volume.meta.get("display_name") or _stem(target)
    if role == "ground_truth" and not _says_label_map(name):
        # nnU-Net's labelsTr/liver_1 beside imagesTr/liver_1: "liver_1 [1]" in napari, and
        # "liver_1 ground truth" in the Load panel
        name = f"{name} ground truth"
    return [labels_layer_data(labels, grid, name, role, opened_from=target)]


def _lesions_of_map(path: Path, ids: np.ndarray) -> list | None:
    """The lesions a ``<case>_lesions.nii.gz`` (``segment --lesion-map``, Export) numbers, as
    the ``<case>_stats.json`` beside it lists them; ``[]`` for such a file whose stats are
    not beside it or list another number of lesions (numbered still, its figures unknown);
    None for any other file. (Without its stats, a two-lesion map opened as a segmentation —
    lesion 1 its liver —, a three-lesion one as a ground truth with a portal vein.)"""
    import json

    stem = _stem(path)
    if not stem.endswith("_lesions"):
        return None
    try:
        data = json.loads(
            path.with_name(stem[: -len("_lesions")] + "_stats.json").read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return []
    lesions = data.get("lesions") if isinstance(data, dict) else None
    if not isinstance(lesions, list) or not all(isinstance(x, dict) for x in lesions):
        return []
    top = int(ids.max()) if ids.size else 0
    return lesions if top == len(lesions) else []


def lesion_map_layer_data(ids: np.ndarray, volume, name: str, lesions: list | None) -> tuple:
    """``(data, kwargs, "labels")`` of a lesion map: a colour per lesion (napari's own), and
    each lesion's number, volume and diameter under the cursor in napari's status bar (with
    ``lesions``, its stats' list; without, the numbers alone). The panels leave it alone (it
    is no liver/tumor segmentation)."""
    import pandas as pd

    rows = [{"index": 0, "lesion": "", "volume_ml": None, "axial_diameter_mm": None}]
    if lesions is None:
        top = int(ids.max()) if ids.size else 0
        lesions = [{"id": i} for i in range(1, top + 1)]
    for i, les in enumerate(lesions, start=1):
        rows.append(
            {
                "index": i,
                "lesion": f"lesion {les.get('id', i)}",
                "volume_ml": les.get("volume_ml"),
                "axial_diameter_mm": les.get("axial_diameter_mm"),
            }
        )
    kwargs = {
        "name": name,
        "scale": volume.napari_scale,
        "translate": volume.napari_translate,
        "opacity": 0.6,
        "features": pd.DataFrame(rows),
        "metadata": {"ct_volume": volume, "livertumor_role": "lesion_map"},
    }
    return (ids, kwargs, "labels")


#: words of a label map's file name that say it is a reference drawn by hand, and words that
#: say it is a model's (which win)
_TRUTH_WORDS = frozenset({"gt", "truth", "groundtruth", "manual", "reference"})
_MODEL_WORDS = frozenset({"pred", "preds", "prediction", "predicted", "auto", "model", "output"})
#: folders whose label maps are references (nnU-Net's), and LiTS's reference names
_TRUTH_FOLDERS = frozenset({"labelstr", "labelsts"})
_LITS_TRUTH = re.compile(r"segmentation-\d+\.nii(\.gz)?", re.IGNORECASE)


def _says_label_map(name: str) -> bool:
    """Whether a layer name already says it is a label map or a reference (``P1 gt``,
    ``segmentation-3``, ``case_mask``)."""
    from .io.nifti import LABEL_MAP_WORDS

    words = {w for w in re.split(r"[^a-z]+", name.lower()) if w}
    return bool(words & (_TRUTH_WORDS | LABEL_MAP_WORDS))


def _nifti_labels_role(path: Path, labels: np.ndarray) -> str:
    """``"ground_truth"`` for a label map with the portal vein or aorta (HCC-TACE-Seg's
    classes), one an Export of a ground truth wrote, or one named as a reference (in nnU-Net's
    ``labelsTr``/``labelsTs``, LiTS's ``segmentation-N.nii``, a file name with the word gt,
    truth, manual or reference and none of pred, auto, model, output); else
    ``"segmentation"``. A LiTS or nnU-Net ground truth holds only 0/1/2, as a model's output
    does: it opened as a segmentation, which Inspect would not score against."""
    top = int(labels.max()) if labels.size else 0
    if 2 < top <= 4:  # HCC-TACE-Seg's portal vein or aorta (a 0/255 mask is no such map)
        return "ground_truth"
    path = Path(path)
    stats = _stats_beside(path)
    if stats is not None and _stats_speak_for(path, stats):
        # this tool's segment or Export wrote it: the stats say what it is (a ground truth's
        # stats beside the model's labels written over them since speak for nothing)
        return "ground_truth" if stats.get("source") == "ground_truth" else "segmentation"
    stem = _stem(path)
    if stem.lower().endswith("_labels"):  # this tool's name for a segmentation's labels
        return "segmentation"
    if path.parent.name.lower() in _TRUTH_FOLDERS or _LITS_TRUTH.fullmatch(path.name):
        return "ground_truth"
    words = {w for w in re.split(r"[^a-z]+", stem.lower()) if w}
    return "ground_truth" if words & _TRUTH_WORDS and not words & _MODEL_WORDS else "segmentation"


def ct_layer_data(volume) -> tuple:
    """``(data, kwargs, "image")`` for a CT volume."""
    meta = volume.meta
    name = meta.get("display_name") or meta.get("description") or meta.get("patient_id") or "CT"
    if meta.get("patient_id") and meta.get("patient_id") not in name:
        name = f"{meta['patient_id']} {name}"
    kwargs = {
        "name": name,
        "scale": volume.napari_scale,
        "translate": volume.napari_translate,
        "colormap": "gray",
        "contrast_limits": CT_CONTRAST_LIMITS,
        "metadata": {"ct_volume": volume, "livertumor_role": "ct", **_plain_meta(meta)},
    }
    if str(meta.get("modality") or "CT").upper() != "CT":
        # an MR's values are no HU: the abdomen window showed it mostly white (and the HU
        # presets leave a scan of another modality alone), as Load CT's contrast does
        kwargs["contrast_limits"] = value_contrast_limits(volume.array)
    return (volume.array, kwargs, "image")


def value_contrast_limits(data) -> tuple[float, float]:
    """Contrast limits from an image's own values, for a scan whose values are no HU: their
    0.5th and 99.5th percentiles over a sample of the voxels (a few million at most)."""
    data = np.asarray(data)
    step = max(1, round((data.size / 2_000_000) ** (1 / 3)))
    sample = data[::step, ::step, ::step] if data.ndim == 3 else data
    low, high = (float(v) for v in np.percentile(sample, (0.5, 99.5)))
    if not high > low:  # one value throughout: its whole range
        low, high = float(data.min()), float(data.max())
        high = high if high > low else low + 1
    return low, high


def labels_layer_data(
    labels: np.ndarray, volume, name: str, role: str, opened_from: Path | None = None
) -> tuple:
    """``(data, kwargs, "labels")`` on ``volume``'s grid. ``opened_from``, the file the labels
    were read from, is kept with a digest of them as read and, when a ``<case>_stats.json``
    of ``livertumor segment`` lies beside it, the run it records: an export says so."""
    from ._widgets._layers import class_colormap, class_features

    metadata = {"ct_volume": volume, "livertumor_role": role}
    if opened_from is not None:
        metadata.update(opened_file_metadata(labels, Path(opened_from), role))

    kwargs = {
        "name": name,
        "scale": volume.napari_scale,
        "translate": volume.napari_translate,
        "opacity": 0.5,
        # the panels' colours (liver green, tumor red...), whichever way a file was opened
        "colormap": class_colormap(truth=role == "ground_truth"),
        "features": class_features(),
        "metadata": metadata,
    }
    return (labels, kwargs, "labels")


def opened_file_metadata(labels: np.ndarray, path: Path, role: str = "segmentation") -> dict:
    """The labels layer metadata that says which file it was opened from (see
    :func:`napari_livertumor._writer.opened_file_provenance`). The digest is of the labels as
    an export writes them (a ground truth's portal vein and aorta mapped, as Export maps them),
    so an untouched ground truth exports as not edited."""
    from ._writer import (
        OPENED_ALGORITHM,
        OPENED_DIGEST,
        OPENED_FROM,
        OPENED_RUN,
        OPENED_TUMOR_NOT_RUN,
        labels_digest,
    )

    exported = labels
    if role == "ground_truth":
        from .training.metrics import hcc_to_output

        exported = hcc_to_output(labels)
    out = {OPENED_FROM: str(path), OPENED_DIGEST: labels_digest(exported)}
    run = _run_beside(path)
    if run:
        out[OPENED_RUN] = run
    made = _file_algorithm(path, run)
    if made:
        out[OPENED_ALGORITHM] = made
    if role != "ground_truth" and _tumor_not_run(path):
        out[OPENED_TUMOR_NOT_RUN] = True
    return out


def _tumor_not_run(path: Path) -> bool:
    """Whether a labels file says the tumor stage did not run: its stats' ``tumor_ml`` is
    null (``segment --stages liver``, or an export of such a run), or it is the model's own
    DICOM SEG of a liver-only run. Exported, its tumor figures are then "not computed", not
    "0 mL, 0 lesions", and its SEG holds no Tumor segment."""
    if path.is_file() and _sop_class(path) in _SEG_SOP_CLASSES:
        from .io.seg import is_model_output

        try:
            ds = _seg_header(path)
        except Exception:  # noqa: BLE001 - read again (and said) by the SEG reader
            return False
        # "<prefix><version> liver", of any version
        return is_model_output(ds) and str(ds.get("SeriesDescription", "")).endswith(" liver")
    stats = _stats_beside(path) or {}
    return "tumor_ml" in stats and stats["tumor_ml"] is None


def _file_algorithm(path: Path, run: dict | None) -> str | None:
    """How a labels file says its labels were made (a DICOM SEG's Segment Algorithm Types,
    the most manual of them; the ``source`` of the stats file beside a label map, or a
    ``livertumor segment`` run's record there): ``AUTOMATIC`` only for this tool's model output
    as it came; None when the file does not say."""
    if path.is_file() and _sop_class(path) in _SEG_SOP_CLASSES:
        from .io.seg import is_model_output

        try:
            ds = _seg_header(path)
        except Exception:  # noqa: BLE001 - read again (and said) by the SEG reader
            return None
        if is_model_output(ds):
            return "AUTOMATIC"
        kinds = {
            str(x.get("SegmentAlgorithmType", "")).upper() for x in ds.get("SegmentSequence", [])
        }
        if "MANUAL" in kinds:
            return "MANUAL"
        return "SEMIAUTOMATIC" if kinds else None
    stats = _stats_beside(path) or {}
    source = stats.get("source")
    if source is None:
        # a segment run's stats: the model's output, unless changed since the run wrote it
        # (their digests; a run of an early version recorded none)
        if not run:
            return None
        return "SEMIAUTOMATIC" if run.get("changed_since_run") else "AUTOMATIC"
    digests = stats.get("digests")
    if not isinstance(digests, dict) or path.name not in digests:
        # an export's stats that do not say what this file held (an earlier version's, or the
        # label map exported again alone): they may describe it before it was edited
        return None
    if not _stats_speak_for(path, stats):  # replaced or edited since: not what they describe
        return None
    made = stats.get("algorithm_type")  # what the export's DICOM SEG said
    if made not in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"):
        made = {"model": "AUTOMATIC", "edited": "SEMIAUTOMATIC", "ground_truth": "MANUAL"}
        made = made.get(source)
    return made


def _stats_speak_for(path: Path, stats: dict) -> bool:
    """Whether stats beside a labels file describe the file as it is: False when their
    ``digests`` name it and it no longer holds what was written (edited in another tool, or
    another export's labels written over it with the stats left as they were). Stats that
    record no digest for it are taken at their word (an earlier version's)."""
    digests = stats.get("digests")
    if not isinstance(digests, dict) or path.name not in digests:
        return True
    from .commands.segment import _changed_since_written

    return path.name not in _changed_since_written(path.parent, stats)


#: what an export repeats of the run a ``<case>_stats.json`` records
_RUN_KEYS = ("version", "device", "models", "refine", "tumor_tta", "lesion_filter", "warnings")


def _stats_path(path: Path) -> Path | None:
    """Where the ``<case>_stats.json`` of a ``<case>_labels.nii.gz`` (or ``<case>_seg.dcm``)
    lies; None for another name."""
    stem = _stem(path)
    for suffix in ("_labels", "_seg.dcm"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return path.with_name(stem[: -len(suffix)] + "_stats.json")
    return None


def _stats_beside(path: Path) -> dict | None:
    """The ``<case>_stats.json`` beside a ``<case>_labels.nii.gz`` (or ``<case>_seg.dcm``) as
    a dict, or None."""
    import json

    stats = _stats_path(path)
    if stats is None:
        return None
    try:
        data = json.loads(stats.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_beside(path: Path) -> dict | None:
    """The run ``livertumor segment`` records in the ``<case>_stats.json`` beside its
    ``<case>_labels.nii.gz`` or ``<case>_seg.dcm`` (version, models...); None for any other
    file, or stats that are not this tool's."""
    data = _stats_beside(path)
    if data is None or not data.get("version") or "models" not in data:
        return None
    stats = _stats_path(path)
    run = {"stats_file": str(stats), **{k: data[k] for k in _RUN_KEYS if k in data}}
    if isinstance(data.get("digests"), dict) and data["digests"]:  # as the run wrote the file,
        # or changed since (by its digest); anything else there is no record of ours
        from .commands.segment import _changed_since_written

        run["changed_since_run"] = path.name in _changed_since_written(path.parent, data)
    return run


# --------------------------------------------------------------------------- helpers
def _seg_on_an_open_ct(seg_path: Path) -> list[tuple] | None:
    """The SEG's labels layer on a CT open in the current viewer that it was drawn on, or None."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # noqa: BLE001 - no viewer: read the SEG with its study folder
        return None
    if viewer is None:
        return None

    from .io.seg import read_dicom_seg
    from .io.volume import CTVolume

    try:
        frame = str(_seg_header(seg_path).FrameOfReferenceUID)
    except Exception:  # noqa: BLE001 - unreadable here: the study-folder path says why
        return None
    for layer in list(viewer.layers):
        meta = getattr(layer, "metadata", None) or {}
        volume = meta.get("ct_volume")
        if meta.get("livertumor_role") != "ct" or not isinstance(volume, CTVolume):
            continue  # the plugin's CT layers (the same test as the widgets' grid_volume)
        if not any(volume.file_meta.get("sop_instance_uids") or ()):
            continue
        if str(volume.meta.get("frame_of_reference_uid") or "") != frame:
            continue
        said: list[str] = []
        try:
            labels = read_dicom_seg(seg_path, volume, warnings=said)
        except InputError:  # drawn on another series
            continue
        if said:  # another patient's SEG, segments not known, frames off the CT's slices
            _notify(f"{seg_path.name}: " + "\n".join(said))
        patient = volume.meta.get("patient_id") or "CT"
        # "HCC_001_seg" already says whose it is: not "HCC_001 HCC_001_seg"
        stem = seg_path.stem
        # the patient's ID as a word of its name, in any case ("HCC_001_seg", "seg-HCC_001",
        # "hcc_001.seg"; not "HCC_0010", nor "1-1", TCIA's file name, for a PatientID "1": for
        # an ID of digits, "-" and "." join a word: "1.2.840…", a file named by its UID)
        word = "0-9A-Za-z" + ("." + "-" if patient.isdigit() else "")
        named = patient != "CT" and re.search(
            rf"(?<![{word}]){re.escape(patient)}(?![{word}])", stem, re.IGNORECASE
        )
        role = _seg_role(seg_path)
        name = stem if named else f"{patient} {stem}"
        if re.fullmatch(r"[0-9._\-]+", stem):  # TCIA's "1-1", a UID: says nothing; named as
            # the same SEG opened on its own is ("HCC_001 ground truth", not "HCC_001 1-1")
            name = f"{patient} {'ground truth' if role == 'ground_truth' else 'segmentation'}"
        return [labels_layer_data(labels, volume, name, role, opened_from=seg_path)]
    return None


#: A SEG opened on its own has its CT looked for in a folder the user did not choose, read on
#: napari's thread: past this many files (a SEG saved in the home folder's subfolder has the
#: whole home folder as its "study folder") the search is not started and the user is told how
#: to open it instead. An HCC-TACE-Seg study holds a few hundred to a few thousand files.
_MAX_SEARCHED_FILES = 10_000


def _where_its_ct_is(seg_path: Path) -> Path:
    """The folder a SEG's CT is looked for in: the scan ``livertumor segment`` read, as the
    ``<case>_stats.json`` written beside its ``<case>_seg.dcm`` records it (an output folder
    can be anywhere), else the SEG's study folder (the folder above its series folder)."""
    import json

    if seg_path.name.endswith("_seg.dcm"):
        stats = seg_path.with_name(seg_path.name[: -len("_seg.dcm")] + "_stats.json")
        try:
            record = json.loads(stats.read_text(encoding="utf-8"))
            source = Path((record.get("run_settings") or {}).get("input") or record["input"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            source = None  # no stats (an export, a PACS file), or not ours: the study folder
        if source is not None and source.is_absolute() and source.exists():
            return source if source.is_dir() else source.parent
    return seg_path.parent.parent


def _crowded(folder: Path, most: int | None = None) -> bool:
    """Whether ``folder`` holds more than ``most`` entries (files and folders, at any depth);
    counting stops there, so a huge tree costs no more than that."""
    most = _MAX_SEARCHED_FILES if most is None else most
    seen, stack = 0, [folder]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if seen > most:
                        return True
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                    except OSError:
                        continue
        except OSError:  # unreadable or gone: the search says so if it matters
            continue
    return False


def _newest_first(paths: list[Path]) -> list[Path]:
    def key(p: Path):
        try:
            return (-p.stat().st_mtime, str(p))
        except OSError:  # gone since the scan: last
            return (float("inf"), str(p))

    return sorted(paths, key=key)


def _own_segmentation(folder: Path, own: list[Path]) -> list[tuple] | None:
    """The CT of ``folder`` with this tool's own segmentation of it (``segment --dicom-seg``
    or an unedited export saved beside it), when the folder holds no ground truth: the first
    of ``own`` (newest first) drawn on a CT series of this folder, as a segmentation layer,
    never as the truth. None when there is none, or when it cannot be read (the CT then opens
    alone, and why is said)."""
    from .io.dicom import discover_series
    from .io.seg import seg_referenced_series
    from .io.tcia import load_tcia_case

    held = {s.uid for s in discover_series(folder) if s.is_ct}
    seg_path = next((p for p in own if seg_referenced_series(p) in held), None)
    if seg_path is None:
        return None
    try:
        volume, labels = load_tcia_case(folder, seg_path=seg_path)
    except InputError as exc:
        _notify(f"The segmentation {seg_path.name} was not opened: {exc}")
        return None
    _say_warnings(volume)
    _notify(
        f"Opened with this tool's own segmentation {seg_path.name} (a model's output, shown as "
        "a segmentation, not as a ground truth)"
    )
    return _with_ground_truth(volume, labels, "segmentation", opened_from=seg_path)


def _seg_role(seg_path: Path) -> str:
    """``"segmentation"`` for a SEG this plugin wrote from a model's output (its algorithm
    named, not drawn by hand) or from labels drawn by hand that are no ground truth, which
    Inspect must not score against as the truth; else ``"ground_truth"``."""

    try:
        ds = _seg_header(seg_path)
    except Exception:  # noqa: BLE001 - read again (and said) by the SEG reader
        return "ground_truth"
    from .io.seg import is_ground_truth

    return "ground_truth" if is_ground_truth(ds) else "segmentation"


def _with_ground_truth(
    volume, labels, role: str = "ground_truth", opened_from: Path | None = None
) -> list[tuple]:
    # shown in the standard orientation, as Load CT and NIfTI files show a CT, so labels
    # opened from another file line up; saving turns them back to the files' own order
    volume = volume.displayed()
    turn = volume.meta.get("stored_turn")
    if turn is not None:
        labels = turn.apply(labels)
    what = "ground truth" if role == "ground_truth" else "segmentation"
    name = f"{volume.meta.get('patient_id') or 'CT'} {what}"
    layer = labels_layer_data(labels, volume, name, role, opened_from=opened_from)
    return [ct_layer_data(volume), layer]


def _single_target(path) -> Path | None:
    if isinstance(path, list | tuple):
        paths = [Path(p) for p in path]
        if not paths:
            return None
        if len(paths) == 1:
            return paths[0]
        # several files of one DICOM folder (a multi-select in the open dialog): their series
        if len({p.parent for p in paths}) == 1 and all(p.is_file() for p in paths):
            return paths[0] if _looks_like_dicom(paths[0]) else None
        return None
    return Path(path)


def _holds_images(folder: Path) -> bool:
    """Does ``folder`` (or a folder in it) hold a DICOM file that is no SEG (a CT slice)? A
    patient folder with its SEG on top and its CT below is no Segmentation series folder."""
    from .fileio import walk

    for dirpath, dirnames, filenames in walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not name.startswith(".") and _looks_like_dicom(p):
                if _sop_class(p) not in _SEG_SOP_CLASSES:
                    return True
    return False


def _is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _looks_like_dicom(path: Path) -> bool:
    from .io.dicom import is_dicom_file

    return is_dicom_file(path)


def _folder_has_dicom(folder: Path, unread: list | None = None) -> bool:
    """Is there a DICOM file in ``folder`` or below? A few files of each folder, spread over
    its sorted names, are looked at (a CD export's program folder of 70 DLLs sorts before its
    images folder; JPEG previews may sort before the slices), up to :data:`_MAX_PROBE` files in
    all. The folders that could not be listed are appended to ``unread`` as ``(folder,
    problem)``, as the DICOM reader's scan lists them."""
    from .io.dicom import FOLDER_NOT_READ, os_problem

    def failed(exc: OSError) -> None:
        if unread is not None and exc.filename:
            unread.append((Path(exc.filename), f"{FOLDER_NOT_READ} ({os_problem(exc)})"))

    probed = 0
    from .fileio import walk

    for dirpath, dirnames, filenames in walk(folder, onerror=failed):
        dirnames.sort()
        names = [n for n in sorted(filenames) if not n.startswith(".")]
        if len(names) > _PROBE_PER_FOLDER:  # spread over the folder: previews may sort first
            step = (len(names) - 1) / (_PROBE_PER_FOLDER - 1)
            names = [names[round(i * step)] for i in range(_PROBE_PER_FOLDER)]
        for name in names:
            if _looks_like_dicom(Path(dirpath) / name):
                return True
            probed += 1
            if probed >= _MAX_PROBE:
                return False
    return False


def _seg_header(path: Path):
    """A DICOM SEG's header (no pixel data), read once per file version: opening one reads its
    role, its algorithm, its stages and its frame of reference from the same header.
    Raises what pydicom raises for an unreadable file."""
    st = Path(path).stat()
    # (a file replaced in place by one of the same size and time, copied with its time kept or
    # on a 2-second file system, has another inode or change time)
    key = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_size)
    return _seg_header_cached(str(Path(path).resolve()), key)


@functools.lru_cache(maxsize=4)
def _seg_header_cached(path: str, version: tuple):
    import pydicom

    from .io.dicom import refuse_deflate_bomb

    refuse_deflate_bomb(path)  # (pydicom would inflate it whole first)
    return pydicom.dcmread(path, stop_before_pixels=True)


def _sop_class(path: Path) -> str:
    import pydicom

    from .io.dicom import refuse_deflate_bomb

    try:
        refuse_deflate_bomb(path)  # (pydicom would inflate it whole first)
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # unreadable, a zip bomb: no class (the CT reader says why)
        return ""
    return str(ds.get("SOPClassUID", ""))


def _is_label_map(array: np.ndarray) -> bool:
    """At most 128 whole values within 0–255: a mask or label map (TotalSegmentator's 117
    classes too), whatever its integer type; an 8-bit CT, windowed to 0–255, has nearly all
    256 values: an image."""
    if not np.issubdtype(array.dtype, np.integer) or array.size == 0:
        return False
    low, high = int(array.min()), int(array.max())
    return low >= 0 and high <= 255 and len(np.unique(array[:: max(1, array.shape[0] // 8)])) <= 128


def _made_on_series(labels_path: Path) -> dict | None:
    """The DICOM series a ``livertumor segment`` label file was made from, as its
    ``<case>_stats.json`` beside it says (``series_uid``, ``acquisition``; its study's UID and
    date, the series' number and description where it says them); None for
    any other file. Only then may the mask take a DICOM CT's identity in the viewer."""
    import json

    stem = _stem(labels_path)
    if not stem.endswith("_labels"):
        return None
    stats = labels_path.with_name(stem[: -len("_labels")] + "_stats.json")
    try:
        data = json.loads(stats.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("series_uid"):
        return None
    made_on = {"series_uid": str(data["series_uid"]), "acquisition": data.get("acquisition_number")}
    # which study and series in words, as the stats say them (Inspect names the scan of a
    # labels file beside another study's ground truth or CT by them, not by UIDs)
    for key in ("study_uid", "study_date", "series_number", "series_description"):
        if isinstance(data.get(key), (str, int)) and data[key] != "":
            made_on[key] = data[key]
    return made_on


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _plain_meta(meta: dict) -> dict:
    keep = (
        "patient_id",
        "study_uid",
        "series_uid",
        "description",
        "modality",
        "phase",
        "source",
        "warnings",
    )
    return {k: meta[k] for k in keep if k in meta}
