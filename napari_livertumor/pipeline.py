"""Two-stage liver → tumor inference on a CT volume (no Qt).

Stage 1 (global view) finds the liver on the whole CT resampled to the liver model's spacing;
stage 2 (local view) looks for tumor inside the liver's bounding box at the tumor model's finer
spacing, with everything outside the liver masked as the original method did. Both stages return
to the CT's own grid by linearly up-sampling a per-voxel *score* (the winning logit minus the best
other logit) from the stage grid and thresholding it at zero: boundaries land between stage
voxels instead of on their blocky edges, and no float map of the full-resolution grid is kept
(masks are ``uint8`` at full resolution; the float work happens in chunks of slices).

Typical use::

    seg = Segmenter(InferenceConfig(device="auto"))       # loads both models once
    result = seg.segment(volume, progress=print_progress)  # SegmentationResult
    result.labels  # uint8 (z, y, x): 0 background, 1 liver, 2 tumor
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import memory
from .devices import DEVICES, is_device_name
from .errors import InputError, LiverTumorError, ModelError, SettingsError
from .io.volume import CTVolume, Reorientation
from .models import preprocess as pp
from .models.checkpoint import (
    WEIGHTS_FILE,
    LoadedModel,
    best_model_beside,
    cannot_enter,
    check_readable,
    default_model_dir,
    is_resume_checkpoint,
    load_model,
)
from .progress import CancelFn, ProgressFn, Reporter
from .stats import add_image_numbers, compute_stats, vessel_warning

# MONAI before 1.6 indexes with a list where torch (2.9 on) wants a tuple: torch's deprecation
# warning, twice per case, about MONAI's code (the values are the same; MONAI 1.6 needs torch
# 2.8, so the bound stays low): not said as the tool's own
warnings.filterwarnings(
    "ignore",
    message=r"Using a non-tuple sequence for multidimensional indexing",
    module=r"monai\.",
)

log = logging.getLogger(__name__)

STAGE_CHOICES = ("liver", "both")
#: test-time mirroring of the tumor stage: the axes (of a ``(N, C, z, y, x)`` batch) each pass
#: flips; the logits of all passes are averaged
TTA_FLIPS = {
    "none": ((),),
    "inplane": ((), (4,), (3,), (3, 4)),
    "all": ((), (4,), (3,), (3, 4), (2,), (2, 4), (2, 3), (2, 3, 4)),
}
#: tumor components under this volume (mL) are removed unless the config or the model says else
DEFAULT_MIN_TUMOR_ML = 0.1


class DeviceUnavailable(LiverTumorError):
    """The requested compute device does not exist on this machine (strict mode)."""


def _is_number(value, *, whole: bool = False) -> bool:
    """A real number (a whole one with ``whole``): Python's or numpy's (or, not whole, a 0-d
    array); never text or a bool."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and not whole:
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        return False
    kinds = (int, np.integer) if whole else (int, float, np.integer, np.floating)
    return isinstance(value, kinds)


def _refuse_one_model_folder(root: Path) -> None:
    """ModelError when ``root``, given as a models folder, is one model's folder."""
    if (root / "metadata.json").is_file():
        raise ModelError(
            root,
            "is one model folder, not a models folder holding liver/ and tumor/: give the "
            "folder above it (it must be named liver/ or tumor/; a tumor/ alone is used with "
            "the shipped liver model)",
        )


def check_stage_folder(folder: str | Path | None, stage: str) -> Path:
    """The folder of the ``stage`` model a run uses (``folder``; None: the shipped one), or
    ModelError for one that is not a model folder (a file, missing, a link to nothing, a
    models root), as :class:`Segmenter` says it before loading."""
    folder = Path(folder) if folder is not None else default_model_dir(stage)
    try:
        return _stage_folder(folder, stage)
    except PermissionError as exc:  # a folder on the way that cannot be entered: named
        if exc.filename is None:
            raise
        raise cannot_enter(Path(exc.filename).parent) from exc


def _stage_folder(folder: Path, stage: str) -> Path:
    """:func:`check_stage_folder`'s checks (a folder that cannot be entered raises
    PermissionError, naming the path looked up in it)."""
    root = folder.parent
    if folder.is_symlink() and not folder.exists():  # (it said "no tumor model here. Train one")
        raise ModelError(folder, "a link to a folder that is not there")
    if folder.is_file():  # a model's file, given for its folder (a script's slip)
        inside = folder.name in ("metadata.json", WEIGHTS_FILE)
        raise ModelError(
            folder,
            f"a file, not a {stage} model folder"
            + (f": give the folder holding it ({root})" if inside else ""),
        )
    if not folder.is_dir() and not root.exists():
        if folder.name != stage:  # one model's folder, named as the user named it
            raise ModelError(folder, f"{stage} model folder not found")
        raise ModelError(root, "models folder not found (it should hold liver/ and tumor/)")
    if not folder.is_dir():
        _refuse_one_model_folder(root)
    if not (folder / "metadata.json").is_file() and not folder.is_dir():
        alone = (
            " (or, with a liver model only, run its stage alone: `livertumor segment "
            "--stages liver`, or 'liver only' in the Segment panel; `livertumor evaluate` "
            "scores both stages)"
            if stage == "tumor" and (root / "liver").is_dir()
            else ""
        )
        raise ModelError(
            folder,
            f"no {stage} model here. Train one with `livertumor train --stage {stage}` "
            "(or the Train panel) or pass a model folder (--models DIR holding liver/ and "
            f"tumor/; Folder… in the Segment panel){alone}",
        )
    return folder


@dataclass
class InferenceConfig:
    """Everything that controls one segmentation run (shared by the CLI, the GUI and tests).

    Attributes
    ----------
    liver_model, tumor_model : path or None
        Model folders (``model.safetensors`` + ``metadata.json``); ``None`` → shipped defaults.
    device : {"auto", "cpu", "cuda"} or "cuda:N"
        ``auto`` picks CUDA when present. Asking for CUDA where there is none falls back to the
        CPU with a warning, or raises :class:`DeviceUnavailable` when ``strict_device``.
    stages : {"liver", "both"}
    refine : bool
        Run the active-contour refinement (``napari_livertumor.refine.refine_all``) on the tumor.
    refine_config : RefineConfig, dict, path or None
        ``None`` → the refinement module's defaults; a dict of its fields or the path of a
        JSON file of them (``--refine-config``) is read into a :class:`RefineConfig`.
    min_tumor_ml : float or None
        Tumor components smaller than this (mL) are removed. ``None``: the tumor model's
        ``lesion_filter["min_ml"]`` (chosen with the model on development patients), else 0.1.
    min_lesion_peak : float or None
        A tumor component is kept only if somewhere in it the tumor logit exceeds every other
        class's by at least this much (hysteresis: the component's extent still comes from the
        decision threshold, its existence from its most confident voxel). Confident lesions keep
        their full extent; faint, unsure blobs (lesion mimics) are dropped whole. 0 turns it
        off. ``None``: the tumor model's ``lesion_filter["min_peak"]``, else 0.
    min_liver_ml : float
        A liver smaller than this is treated as "no liver found" (e.g. air, or a scan the
        liver model finds nothing in). A liver found that does not lie on the patient's right
        is kept with a warning (a phantom, a head, a header that swaps left and right).
    sw_overlap, sw_batch_size : sliding-window overlap fraction and windows per forward pass.
    window_growth : float
        Along an axis where the stage image is at most ``window_growth`` × the model's window,
        one window covers the whole axis (the trunk is fully convolutional). Fewer, larger
        windows cut the overlap work several-fold on a CPU; instance normalisation then sees a
        larger context than in training. Measured with the default CPU liver model on 9
        held-out ``full`` phantoms: mean liver Dice 0.820 with 1.0 (the trained window) vs 0.812
        with 4.0 (per case -0.11 to +0.03), liver stage 2.5-7x faster; hence the default 4.0.
        With the shipped liver model (longer training, shift -2) on the 16 development phantoms
        of ``scripts/calibrate_shift.py``, 4.0 is also the most accurate: mean liver Dice 0.9427
        (4.0), 0.9423 (2.0), 0.9348 (1.0), 0.9421 (1.0 and 4.0 averaged); median liver stage
        0.70 s with 4.0 vs 2.9 s with 1.0.
        Use 1.0 for the trained window size. Applies to the liver stage.
    tumor_window_growth : float or tuple of float
        The same for the tumor stage. Several values: the tumor logits of each window size are
        averaged (one network, two views of context). Default ``(1.0, 4.0)``: the trained
        window, whose instance normalisation sees what training saw, and one grown window that
        sees a large lesion whole. Measured with the shipped models (liver shift -2) on 16
        ``full`` development phantoms (seeds 9000000-9000015, used by no benchmark), each at
        its best tumor shift: mean tumor Dice 0.339 with 4.0 alone, 0.358 with 1.0 alone,
        0.367 with both; both cost the tumor stage about 1.3 s more on the CPU (512² × 200 case).
    tta : {"none", "inplane", "all"}
        Test-time mirroring of the tumor stage (as nnU-Net mirrors its windows): each window
        also runs flipped left-right, front-back and both (``inplane``: 4 passes; ``all`` adds
        head-feet: 8 passes), each output is flipped back, and the logits are averaged. The
        networks never saw flips in training (anatomy has handedness). Off by default because
        with the shipped models it helped only where it was chosen: mean tumor Dice on the 48
        development phantoms 0.558 → 0.579 with ``inplane``, but on the held-out sets 0.511 →
        0.507 (fresh 16), 0.442 → 0.463 (shifted 8), 0.587 → 0.562 (test 12) and 0.264 →
        0.259 on phantoms built another way (12; false lesions 1.58 → 1.42 per patient);
        docs/training.md, "Mirrored passes". ``inplane`` costs the tumor stage about 4× its
        time on a CPU. The liver stage never mirrors.
    amp : bool
        Mixed precision (float16 autocast) on CUDA; ignored on the CPU.
    num_threads : int or None
        CPU threads for torch; ``None`` → what torch uses already (all cores unless set);
        0 → every core this process may use; more than those are cut to them, with a warning.
        Set for the process (``torch.set_num_threads``) when the :class:`Segmenter` is made,
        as a command-line run wants it; a script that needs its own setting back sets it
        again afterwards.
    allow_non_ct : bool
        Segment volumes whose metadata says another modality (MR, PT, ...) anyway.
    fill_holes : bool
        Fill enclosed holes of the liver (vessels, tumor not labelled liver by stage 1).
    border_mirror_mm : float
        When the liver found comes within 25 mm of an in-plane image border where the field
        of view cuts the body, the liver stage looks again at its image mirrored out by this
        much past each in-plane border, so that the network does not take the image's edge
        for the body's, and keeps that result (0: off). Scans with air all round, and livers
        away from such borders, are unchanged (``_mirror_cut_body``).
    """

    liver_model: str | Path | None = None
    tumor_model: str | Path | None = None
    device: str = "auto"
    strict_device: bool = False
    stages: str = "both"
    refine: bool = False
    refine_config: Any = None
    min_tumor_ml: float | None = None
    min_lesion_peak: float | None = None
    min_liver_ml: float = 50.0
    sw_overlap: float = 0.25
    sw_batch_size: int = 1
    window_growth: float = 4.0
    tumor_window_growth: float | tuple[float, ...] = (1.0, 4.0)
    tta: str = "none"
    amp: bool = True
    num_threads: int | None = None
    allow_non_ct: bool = False
    fill_holes: bool = True
    border_mirror_mm: float = 30.0

    @classmethod
    def from_models_dir(cls, models_dir: str | Path, **kwargs: Any) -> InferenceConfig:
        """Config whose models are ``models_dir/liver`` and ``models_dir/tumor``; or, given
        one model's folder (``metadata.json`` in it), that model for its stage and the shipped
        model for the other, as the Segment panel takes one."""
        try:
            return cls._from_models_dir(Path(models_dir), **kwargs)
        except PermissionError as exc:  # a folder on the way that cannot be entered: named
            if exc.filename is None:
                raise
            raise cannot_enter(Path(exc.filename).parent) from exc

    @classmethod
    def _from_models_dir(cls, root: Path, **kwargs: Any) -> InferenceConfig:
        if root.is_file():
            raise InputError(
                root, "is a file: --models takes the folder that holds liver/ and tumor/"
            )
        if not root.exists():  # (said before a run plans its cases with these models)
            raise ModelError(root, "models folder not found (it should hold liver/ and tumor/)")
        check_readable(root)  # (said of the folder, not of a metadata.json in it)
        if (root / "metadata.json").is_file() and not (root / "liver").is_dir():
            from .models import default_model_dir, read_metadata

            stage = read_metadata(root).stage  # an unreadable one is said as such
            other = "tumor" if stage == "liver" else "liver"
            if stage == "tumor" and kwargs.get("stages") == "liver":
                # it said "the shipped liver model is used with it", and it was never used
                log.warning(
                    "%s is a tumor model, and only the liver stage runs (stages 'liver'; "
                    "--stages liver, 'liver only' in the Segment panel): it is not used, the "
                    "shipped liver model finds the liver",
                    root,
                )
            elif not (stage == "liver" and kwargs.get("stages") == "liver"):  # (none is used)
                log.warning(
                    "%s is one %s model: the shipped %s model is used with it",
                    root,
                    stage,
                    other,
                )
            chosen = {stage: root, other: default_model_dir(other)}
            return cls(liver_model=chosen["liver"], tumor_model=chosen["tumor"], **kwargs)
        if not (root / "liver").is_dir() and not (root / "tumor").is_dir():
            if (root / "last" / "metadata.json").is_file():  # a stage folder of a stopped run
                from .models import load_model

                load_model(root)  # raises: "no model here yet", naming its last/
            weights = (
                sorted(
                    p.name
                    for p in root.iterdir()
                    if p.suffix in (".safetensors", ".pt", ".pth", ".ckpt")
                )
                if root.is_dir()
                else []
            )
            if weights:  # a model's weights without its metadata.json (brought from elsewhere)
                raise ModelError(
                    root,
                    f"holds weights ({', '.join(weights[:3])}) but no metadata.json: a model "
                    "folder is model.safetensors beside a metadata.json saying its stage, "
                    "network, HU window, grid spacing and window size (written by "
                    "napari_livertumor.models.save_model; docs/training.md, 'Model folder "
                    "format'); --models takes a model folder, or the folder holding liver/ "
                    "and tumor/",
                )
            if root.is_dir():  # (a data folder given as models: said before it is read)
                raise ModelError(
                    root,
                    "holds no liver/ or tumor/ model folder: --models takes the folder that "
                    "holds them (a training run's --out folder)",
                )
        liver = root / "liver"
        if not liver.exists() and not liver.is_symlink() and (root / "tumor").is_dir():
            # a tumor model alone (fine-tuned, an ensemble): the shipped liver model finds the
            # liver it works in, as the Segment panel does (it was refused here). A liver model
            # alone is still refused, pointing to --stages liver: it is the one being tried out
            from .models import default_model_dir

            liver = default_model_dir("liver")
            log.warning(
                "%s has no liver/ model: the shipped liver model is used%s",
                root,
                " (its tumor/ is not used: only the liver stage runs)"
                if kwargs.get("stages") == "liver"
                else " with its tumor/",
            )
        return cls(liver_model=liver, tumor_model=root / "tumor", **kwargs)

    def validate(self) -> None:
        dev = str(self.device)
        if not is_device_name(dev):
            raise SettingsError(f"device must be one of {DEVICES} (or cuda:N); got {dev!r}")
        if self.stages not in STAGE_CHOICES:
            raise SettingsError(f"stages must be one of {STAGE_CHOICES}; got {self.stages!r}")
        if not (_is_number(self.sw_overlap) and 0.0 <= self.sw_overlap < 1.0):
            raise SettingsError(f"sw_overlap must be a number in [0, 1); got {self.sw_overlap!r}")
        if self.tta not in TTA_FLIPS:
            raise SettingsError(f"tta must be one of {tuple(TTA_FLIPS)}; got {self.tta!r}")
        if not (_is_number(self.sw_batch_size, whole=True) and self.sw_batch_size >= 1):
            raise SettingsError(
                f"sw_batch_size must be a whole number >= 1; got {self.sw_batch_size!r}"
            )
        for name in ("window_growth", "tumor_window_growth"):
            values = _as_growths(getattr(self, name))
            if not values or not all(np.isfinite(v) and v >= 1.0 for v in values):
                raise SettingsError(f"{name} must be >= 1; got {getattr(self, name)}")
        mirror = self.border_mirror_mm
        if not (_is_number(mirror) and np.isfinite(mirror) and mirror >= 0):
            raise SettingsError(f"border_mirror_mm must be a number >= 0; got {mirror!r}")
        for name in ("min_tumor_ml", "min_lesion_peak", "min_liver_ml"):
            value = getattr(self, name)
            if value is None and name == "min_liver_ml":  # (no model default stands for it)
                raise SettingsError(f"{name} must be a number >= 0 (0: any size); got None")
            if value is not None and not (_is_number(value) and np.isfinite(value) and value >= 0):
                raise SettingsError(f"{name} must be a number >= 0; got {value!r}")
        for name in ("refine", "amp", "allow_non_ct", "fill_holes", "strict_device"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                # "false" from a YAML or an environment variable was true
                raise SettingsError(f"{name} must be True or False; got {value!r}")
        threads = self.num_threads
        if threads is not None and not (_is_number(threads, whole=True) and threads >= 0):
            raise SettingsError(
                f"num_threads must be a whole number >= 0 (0: all cores); got {threads!r}"
            )
        if self.refine_config is not None:
            from .refine.config import as_refine_config

            try:  # a dict of its fields, a JSON file's path
                self.refine_config = as_refine_config(self.refine_config)
            except TypeError as exc:
                raise SettingsError(f"refine_config: {exc}") from None
            except InputError as exc:
                if isinstance(self.refine_config, (str, Path)):
                    raise  # (its file named)
                raise SettingsError(f"refine_config: {exc.problem}") from None


@dataclass
class SegmentationResult:
    """Output of :func:`segment_ct`.

    Attributes
    ----------
    labels : ndarray of uint8, shape (Z, Y, X)
        On the input CT's grid: 0 background, 1 liver, 2 tumor.
    stats : dict
        :func:`napari_livertumor.stats.compute_stats` of ``labels`` (+ ``warnings``).
    timings : dict
        Seconds per step (``liver``, ``tumor``, ``refine``, ``total``).
    device : str
    warnings : list of str
    """

    labels: np.ndarray
    stats: dict
    timings: dict
    device: str
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        # short, and without the patient: the default printed the whole label map and stats
        stats = self.stats or {}
        labels = np.asarray(self.labels)
        return (
            f"SegmentationResult(shape={labels.shape}, dtype={labels.dtype}, "
            f"liver_ml={stats.get('liver_ml')}, tumor_ml={stats.get('tumor_ml')}, "
            f"lesion_count={stats.get('lesion_count')}, device={self.device!r}, "
            f"warnings={len(self.warnings or [])})"
        )


def resolve_device(requested: str = "auto", strict: bool = False):
    """Return ``(torch.device, warning_or_None)`` for ``auto|cpu|cuda|cuda:N``."""
    import torch

    requested = str(requested)
    if not is_device_name(requested):
        raise ValueError(f"device must be one of {DEVICES} (or cuda:N); got {requested!r}")
    has_cuda = torch.cuda.is_available()
    if requested == "auto":
        return torch.device("cuda" if has_cuda else "cpu"), None
    if requested == "cpu":
        return torch.device("cpu"), None
    if requested.startswith("cuda"):
        if has_cuda:
            dev = torch.device(requested)
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                msg = f"{requested} asked for but only {torch.cuda.device_count()} GPU(s) exist"
                if strict:
                    raise DeviceUnavailable(msg)
                return torch.device("cuda"), msg + "; using cuda:0"
            return dev, None
        msg = (
            "CUDA was asked for but is not available "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'})"
        )
        if strict:
            raise DeviceUnavailable(msg)
        return torch.device("cpu"), msg + "; running on the CPU instead"
    raise ValueError(f"device must be one of {DEVICES} (or cuda:N); got {requested!r}")


#: validation Dice under which a model's masks are said to be unreliable when it is loaded (a
#: run of a few steps: its masks looked like any other model's)
WEAK_VALIDATION_DICE = {"liver": 0.8, "tumor": 0.3}


def model_quality_warning(model: LoadedModel) -> str | None:
    """A warning for a model whose training validated it poorly (its ``metrics.score``, the
    validation Dice of the stage's class, under :data:`WEAK_VALIDATION_DICE`), or that is a
    training run's ``last/`` checkpoint, else None.

    A ``last/`` checkpoint loads as a model but has no score to warn by: ``segment --models
    run/liver/last`` (or that folder chosen in the Segment panel) segmented with a run's
    latest, uncalibrated step without a word, where the run's best model was beside it."""
    meta = model.metadata
    if is_resume_checkpoint(model.path, meta):
        best = best_model_beside(model.path)
        finish = "finish the run (train --resume, or Resume in the Train panel)"
        if best is not None:
            instead = f"segment with the run's saved best model ({best}) instead, or {finish}"
        elif model.path is not None and Path(model.path).name == "last":
            instead = (
                f"the run saved no best model yet: {finish} and segment with the model it "
                f"saves in {Path(model.path).parent}"
            )
        else:  # a copy of one
            instead = (
                "segment with a run's saved best model (its stage folder, beside last/) "
                f"instead, or {finish}"
            )
        return (
            f"the {meta.stage} model ({model.path}) is a training run's last/ checkpoint, the "
            "state an unfinished run is resumed from (no logit shift calibrated, no validation "
            f"score), not a finished model: expect unreliable masks; {instead}"
        )
    if (meta.metrics or {}).get("n_val_with_class") == 0:
        return None  # no validation patient had the class: its 0 is a convention, no score
    score = (meta.metrics or {}).get("score")
    bar = WEAK_VALIDATION_DICE.get(meta.stage)
    if isinstance(score, bool) or not isinstance(score, (int, float)) or bar is None:
        return None
    if score >= bar:
        return None
    n = (meta.metrics or {}).get("n_val")
    on = f" on {n} validation patient(s)" if isinstance(n, int) else ""
    if meta.members > 1:  # the members' mean (models.ensemble)
        return (
            f"the {meta.stage} model ({model.path}, an ensemble of {meta.members}) has members "
            f"that scored a mean validation Dice of {score:.2f}{on} when they were trained: "
            "expect unreliable masks (train them longer, or on more patients)"
        )
    return (
        f"the {meta.stage} model ({model.path}) scored a validation Dice of {score:.2f}{on} when "
        "it was trained: expect unreliable masks (train it longer, or on more patients)"
    )


def _same_device(a, b) -> bool:
    """Whether two torch devices are one (``cuda`` and ``cuda:0`` are, where 0 is current)."""
    if a.type != b.type:
        return False
    if a.type != "cuda" or a.index == b.index:
        return True
    import torch

    current = torch.cuda.current_device()
    return (a.index if a.index is not None else current) == (
        b.index if b.index is not None else current
    )


class Segmenter:
    """Both stages' models loaded once, ready to segment many CTs (one load per process).

    Parameters
    ----------
    config : InferenceConfig, dict of its fields, or None (the defaults)
        Copied: changing it afterwards changes no Segmenter made with it (and changing
        ``segmenter.config`` in place is refused at the next ``segment``; use
        :meth:`with_config`).
    models : dict, optional
        ``{"liver": LoadedModel, "tumor": LoadedModel}`` already in memory (tests, the GUI);
        shared when on this Segmenter's device, else copied to it (the caller's stay put).

    Raises
    ------
    ModelError
        A model folder is missing, corrupt, or made for the other stage.
    DeviceUnavailable
        CUDA asked for with ``strict_device`` and absent.
    """

    def __init__(self, config: InferenceConfig | dict | None = None, *, models: dict | None = None):
        import copy

        import torch

        # its own copy: a config the caller changes afterwards (to make a second Segmenter)
        # changed this one's results, or was half ignored (stages, device: loaded already)
        self.config = config = copy.deepcopy(as_inference_config(config))
        self._loaded_with = copy.deepcopy(config)
        self.warnings: list[str] = []
        self.device, warn = resolve_device(config.device, config.strict_device)
        if warn:
            log.warning(warn)
            self.warnings.append(warn)
        if self.device.type == "cpu" and config.num_threads is not None:
            # 0: every core (an earlier run in this process may have set fewer)
            threads, note = usable_threads(int(config.num_threads))
            if note:
                log.warning(note)
            torch.set_num_threads(threads)
        t0 = time.perf_counter()
        if models is not None and not isinstance(models, dict):
            raise SettingsError(
                "models are a Segmenter (to segment_ct) or a dict {'liver': LoadedModel, "
                f"'tumor': LoadedModel}} (load_model(folder)); got {type(models).__name__}: "
                "a model folder goes in InferenceConfig(liver_model=..., tumor_model=...) or "
                "InferenceConfig.from_models_dir(folder)"
            )
        models = dict(models or {})
        self.liver = self._load(models.get("liver"), config.liver_model, "liver")
        self.tumor = None
        if config.stages == "both":
            self.tumor = self._load(models.get("tumor"), config.tumor_model, "tumor")
        for model in (self.liver, self.tumor):
            weak = model_quality_warning(model) if model is not None else None
            if weak:
                log.warning(weak)
                self.warnings.append(weak)
        self.load_seconds = time.perf_counter() - t0
        # what -v tells of the run (a bug report's first questions: which models, which device)
        for model in (self.liver, self.tumor):
            if model is not None:
                log.debug("%s model: %s", model.metadata.stage, model.path)
        log.debug(
            "device %s (torch %s, %d CPU threads); models loaded in %.2f s",
            self.device,
            torch.__version__,
            torch.get_num_threads(),
            self.load_seconds,
        )
        # Resampling runs where the network runs: on a GPU it is a few ms instead of ~1 s.
        self._prep_device = self.device if self.device.type == "cuda" else None

    def _load(self, given: LoadedModel | None, folder, stage: str) -> LoadedModel:
        if given is not None and not isinstance(given, LoadedModel):
            raise SettingsError(
                f"models['{stage}'] must be a LoadedModel (load_model(folder)); got "
                f"{type(given).__name__} (a folder goes in InferenceConfig's {stage}_model)"
            )
        if given is not None:
            if given.metadata.stage != stage:
                raise ModelError(
                    given.path,
                    f"this is a {given.metadata.stage} model; a {stage} model is needed here",
                )
            param = next(given.network.parameters(), None)
            if param is not None and not _same_device(param.device, self.device):
                # a copy on this device: moving the caller's network in place took it from
                # under a Segmenter of the other device sharing it (its next run failed
                # with a device mismatch)
                import copy
                import dataclasses

                network = copy.deepcopy(given.network).to(self.device)
                given = dataclasses.replace(given, network=network)
            given.network.eval()
            return given
        folder = check_stage_folder(folder, stage)
        return load_model(folder, stage=stage, device=self.device)

    def with_config(self, config: InferenceConfig | dict) -> Segmenter:
        """A Segmenter with ``config`` (or a dict of its fields) sharing this one's loaded
        networks (no second load). ``config`` must name the same model folders and device, or
        :class:`~napari_livertumor.errors.SettingsError` says which differs."""
        config = as_inference_config(config)
        loaded = {"liver_model": self.liver, "tumor_model": self.tumor}
        for name, model in loaded.items():
            asked = getattr(config, name)
            if model is None or (asked is None and getattr(self.config, name) is None):
                continue
            stage = name.split("_")[0]
            want = Path(asked) if asked is not None else default_model_dir(stage)
            have = Path(model.path) if model.path is not None else None
            if have is None or want.resolve() != have.resolve():
                raise SettingsError(
                    f"the config's {name} ({want}) is not this Segmenter's ({have or 'given in memory'}): "
                    "make a new Segmenter for other models"
                )
        device, _ = resolve_device(config.device, config.strict_device)
        if device != self.device:
            raise SettingsError(
                f"the config's device ({config.device}: {device}) is not this Segmenter's "
                f"({self.device}): make a new Segmenter for another device"
            )
        if config.stages == "both" and self.tumor is None:
            raise SettingsError(
                "this Segmenter has no tumor model loaded (stages='liver'): make a new one "
                "with stages='both'"
            )
        models = {"liver": self.liver}
        if config.stages == "both":
            models["tumor"] = self.tumor
        return Segmenter(config, models=models)

    def lesion_filter(self) -> tuple[float, float]:
        """``(min_ml, min_peak)`` in force: the config's, else the tumor model's, else defaults."""
        lf = (self.tumor.metadata.lesion_filter if self.tumor is not None else None) or {}
        min_ml = self.config.min_tumor_ml
        if min_ml is None:
            min_ml = lf.get("min_ml", DEFAULT_MIN_TUMOR_ML)
        min_peak = self.config.min_lesion_peak
        if min_peak is None:
            min_peak = lf.get("min_peak", 0.0)
        return float(min_ml), float(min_peak)

    # ------------------------------------------------------------------ public
    def segment(
        self,
        volume: CTVolume,
        *,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> SegmentationResult:
        """Segment liver (and tumor) in ``volume``; see :func:`segment_ct`."""
        import torch

        cfg = self.config
        changed = _changed_fields(cfg, self._loaded_with)
        if changed:  # changed in place after the models were loaded
            raise SettingsError(
                f"this Segmenter's config was changed after it was made ({', '.join(changed)}): "
                "settings are fixed when the models are loaded; use "
                "segmenter.with_config(InferenceConfig(...)) for other settings (it shares the "
                "loaded networks), or make a new Segmenter"
            )
        rep = Reporter(progress, should_cancel)
        warnings = list(self.warnings)
        hu_notes = _check_input(volume, cfg)
        shape = tuple(volume.array.shape)
        turn = Reorientation.to_standard(volume.direction)
        dtype = np.asarray(volume.array[:1, :1, :1]).dtype
        # working copies beside the CT held: turned to the models' axes (and the labels
        # turned back), made int16 or float32 (a RAS-stored int16 file peaked 1.4 bytes per
        # voxel higher in bench_memory.py, 3.3 on one scan a review measured)
        copy = 0 if turn.identity else dtype.itemsize + 1
        if dtype != np.int16:
            copy += 2 if np.issubdtype(dtype, np.integer) else 4
        memory.require(  # refused with the figures, not ended by the kernel without a word
            memory.segment_need_bytes(shape, copy_bytes_per_voxel=copy),
            f"segmenting its {' × '.join(map(str, shape))} voxels (z, y, x)",
            _named_source(volume),
            advice="crop the scan to the abdomen (the liver's slices and a margin)",
        )
        warnings += hu_notes
        # (File > Open keeps the reader's check of the scan, the same notes, in its metadata)
        read_notes = [w for w in volume.meta.get("warnings", []) or [] if w not in hu_notes]
        warnings += [f"input: {w}" for w in read_notes]
        timings: dict[str, float] = {}
        t_start = time.perf_counter()
        # The models see every CT as they were trained (x → left, y → posterior, z → superior);
        # a RAS-stored, transposed or feet-first file is turned (no resampling) and the labels
        # turned back onto its own grid (``turn``, above).
        ct = pp.signed_hu(turn.apply(np.asarray(volume.array)))
        # to float32's precision, as a NIfTI header stores it: a DICOM series (0.79412657 mm)
        # and the NIfTI `convert` wrote of it (0.7941266) gave other labels (a liver voxel
        # apart moved the tumor stage's box: 2 of 637 mL)
        spacing = tuple(float(np.float32(s)) for s in turn.apply_spacing(volume.spacing))
        labels = np.zeros(ct.shape, dtype=np.uint8)
        unsure: list = []
        refine_effect = None

        rep.check()
        with torch.inference_mode():
            t0 = time.perf_counter()
            lo, hi = float(ct.min()), float(ct.max())  # as floats: int16 -32768..max overflows
            if hi - lo < 1:  # no edge to find (the networks would see their own bias)
                warnings.append(
                    f"no liver found: the image is uniform (every voxel {lo:g})"
                    if hi == lo
                    else f"no liver found: every value lies between {lo:.4g} and {hi:.4g}, "
                    "within 1 HU (not CT values: normalised, or a mask)"
                )
                liver_found = False
            else:
                liver_found = self._liver_stage(
                    ct,
                    spacing,
                    labels,
                    rep,
                    warnings,
                    hu_suspect=any(NOT_HU in w for w in hu_notes),
                )
            timings["liver"] = time.perf_counter() - t0
            if liver_found and self.tumor is not None:
                rep.check()
                t0 = time.perf_counter()
                found: dict = {}
                box, unsure = self._tumor_stage(
                    ct, spacing, labels, rep, found=found, warnings=warnings
                )
                timings["tumor"] = time.perf_counter() - t0
                noisy = _noise_warning(found.get("noise_hu"))
                if noisy:
                    warnings.append(noisy)
                if cfg.refine:
                    rep.check()
                    t0 = time.perf_counter()
                    tumor_before = labels[box] == 2
                    self._refine(ct, spacing, labels, box, rep, warnings)
                    timings["refine"] = time.perf_counter() - t0
                    # what the contour did: "refine": true alone did not tell a run whose
                    # lesions all failed the contrast gate (kept as drawn) from one it changed
                    tumor_after = labels[box] == 2
                    refine_effect = {
                        "added_voxels": int(np.count_nonzero(tumor_after & ~tumor_before)),
                        "removed_voxels": int(np.count_nonzero(tumor_before & ~tumor_after)),
                    }
                    del tumor_before, tumor_after
            # what follows (the fluid check, the labels turned back, the stats) took 0.9 s of
            # an 8 s run after refine's last step, where a cancel was not seen and the bar
            # stood at "refine 6 / 6": a stage of its own, checked at its start and end
            rep.check()
            rep.update(MEASURING, 0, 1)
            if liver_found:  # (tumor aside, when the tumor stage ran: necrosis is tumor)
                fluid = _liver_fluid_warning(ct, labels, spacing)
                if fluid:
                    warnings.append(fluid)
        labels = turn.undo(labels)
        for u in unsure:
            u["centroid_zyx"] = [round(c, 1) for c in turn.index_back(u["centroid_zyx"], ct.shape)]
        timings["total"] = time.perf_counter() - t_start
        rep.check()
        stats = compute_stats(
            labels,
            tuple(volume.spacing),
            affine_lps=volume.affine_lps,
            ct=volume.array,
            should_cancel=rep.should_cancel,
        )
        rep.check()
        add_image_numbers(stats, volume)  # the lesions' DICOM image numbers, as PACS shows them
        stats["input_axes"] = turn.codes
        if self.tumor is None or not liver_found:  # no tumor was looked for: not "none found"
            stats.update(tumor_ml=None, tumor_to_liver_ratio=None, lesion_count=None, lesions=[])
        # enhancing portal-vein branches called tumor (a review's tumor-free phantom: 24 mL):
        # said, lesion by lesion, and kept (a hyperenhancing HCC is bright too)
        vessels = vessel_warning(stats)
        if vessels:
            warnings.append(vessels)
        whole = _tumor_share_warning(stats)
        if whole:
            warnings.append(whole)
        # how small or unsure a lesion may be and still be reported (null without a tumor
        # stage: the keys are always there for scripts that read them)
        stats.update(lesion_filter=None, tumor_tta=None, unsure_lesions=unsure)
        if self.tumor is not None:
            min_ml, min_peak = self.lesion_filter()
            stats["lesion_filter"] = {"min_ml": min_ml, "min_peak": min_peak}
            stats["tumor_tta"] = cfg.tta
        if refine_effect is not None:
            voxel_ml = volume.voxel_volume_ml
            stats["refine_effect"] = {
                "tumor_ml_added": round(refine_effect["added_voxels"] * voxel_ml, 3),
                "tumor_ml_removed": round(refine_effect["removed_voxels"] * voxel_ml, 3),
            }
        stats["warnings"] = list(warnings)  # (a list of its own: one changed, not the other)
        rep.update(MEASURING, 1, 1)
        return SegmentationResult(
            labels=labels,
            stats=stats,
            timings={k: round(v, 3) for k, v in timings.items()},
            device=str(self.device),
            warnings=warnings,
        )

    # ------------------------------------------------------------------ stages
    def _liver_stage(
        self, ct, spacing, labels, rep: Reporter, warnings: list[str], hu_suspect: bool = False
    ) -> bool:
        from scipy import ndimage as ndi

        meta = self.liver.metadata
        low_shape = pp.stage_shape(ct.shape, spacing, meta.target_spacing)
        x = pp.prepare_stage_input(ct, low_shape, meta.hu_window, device=self._prep_device)
        rep.update("liver", 0, 1)
        fg = _organ_channels(meta.label_map, meta.network.out_channels)
        logits = _sliding_logits(self.liver, x, self.device, self.config, rep, "liver", warnings)
        score = _organ_score(logits, fg)
        del logits
        mask = (score > 0).cpu().numpy()
        mask = _largest_component(mask)
        # a liver found near an image edge that cuts the body: again, the image mirrored out
        mirrored = _mirror_cut_body(x, mask, meta.target_spacing, self.config.border_mirror_mm)
        del x
        if mirrored is not None:
            xm, (my, mx) = mirrored
            # its own progress line: the liver's bar went back from 2/2 to 1/2
            logits = _sliding_logits(
                self.liver, xm, self.device, self.config, rep, "liver (image edge)", warnings
            )
            del xm
            logits = logits[:, :, my : logits.shape[2] - my, mx : logits.shape[3] - mx]
            score = _organ_score(logits, fg)
            del logits
            mask = _largest_component((score > 0).cpu().numpy())
        low_voxel_ml = float(np.prod(pp.grid_spacing(ct.shape, spacing, low_shape))) / 1000.0
        found_ml = float(mask.sum()) * low_voxel_ml
        if found_ml < max(self.config.min_liver_ml, 1e-9):
            width = None if hu_suspect else _body_width_mm(ct, spacing)
            warnings.append(
                "no liver found"
                + (f" (largest candidate {found_ml:.1f} mL)" if found_ml > 0 else "")
                + (
                    f": what was scanned is {width:.0f} mm wide at most, {NARROW_SCAN} "
                    "(280-400 mm): a child's (the models, trained on adult-"
                    "sized phantoms, miss a child's liver), or no abdomen (a head, a limb)"
                    if width is not None and width < CHILD_BODY_MM
                    else ": is this an abdominal CT that contains the liver?"
                )
            )
            return False
        if self.config.fill_holes:
            mask = ndi.binary_fill_holes(mask)
        rep.check()  # (what follows took 2 s of a 4 s cancel on a 512² scan)
        score = _force_sign(score, mask)
        region = pp.stage_region(mask, ct.shape)
        pp.upsample_mask(score, ct.shape, labels, region=region, value=1)
        rep.check()
        if not labels.any():  # a liver of under one source voxel after up-sampling
            warnings.append("no liver found: the liver candidate vanished at full resolution")
            return False
        skull = _inside_skull(ct, labels, spacing, hu_suspect=hu_suspect)
        if skull:
            labels[labels == 1] = 0
            warnings.append(skull)
            return False
        side = _liver_side_warning(ct, labels, spacing)
        if side:
            warnings.append(side)
        spine = _spine_side_warning(ct, labels, spacing)
        if spine:
            warnings.append(spine)
        head_feet = _head_feet_warning(ct, labels, spacing)
        if head_feet:
            warnings.append(head_feet)
        cut = _liver_cut_warning(labels, spacing)
        if cut and side:  # not on the right: perhaps no liver (a chest scan's heart was said
            # to be a cut liver whose volume is "a lower bound")
            cut = cut.replace("the liver reaches", "what was found reaches", 1) + (
                " — if it is the liver at all (see the warning on its side)"
            )
        if cut:
            warnings.append(cut)
        size = _liver_size_warning(labels, spacing)
        if size:
            warnings.append(size)
        if not hu_suspect:  # (values that are not HU: their "metal" means nothing)
            warnings += _dense_material_warnings(
                ct, labels, spacing, tumor=self.config.stages != "liver"
            )
        flat = _liver_texture_warning(ct, labels)
        if flat:
            warnings.append(flat)
        elif not hu_suspect:
            odd = _liver_attenuation_warning(ct, labels)
            if odd:
                warnings.append(odd)
        edge = _liver_edge_warning(ct, labels, spacing)
        if edge:
            warnings.append(edge)
        small = None if cut or edge else _liver_small_warning(labels, spacing)
        if small:  # (a liver cut by the scan or the image is small for that reason, said)
            warnings.append(small)
        return True

    def _tumor_stage(
        self,
        ct,
        spacing,
        labels,
        rep: Reporter,
        found: dict | None = None,
        warnings: list[str] | None = None,
    ):
        box, liver_roi, score = self._tumor_score(
            ct, spacing, labels, rep, found=found, warnings=warnings
        )
        min_ml, min_peak = self.lesion_filter()
        dropped: list = []
        tumor_roi = tumor_mask_from_score(
            score, liver_roi, spacing, min_ml=min_ml, min_peak=min_peak, dropped=dropped
        )
        labels[box][tumor_roi.astype(bool)] = 2
        for d in dropped:  # ROI → whole-volume voxel coordinates
            d["centroid_zyx"] = [c + b.start for c, b in zip(d["centroid_zyx"], box, strict=True)]
        return box, dropped

    def _tumor_score(
        self,
        ct,
        spacing,
        labels,
        rep: Reporter,
        found: dict | None = None,
        warnings: list[str] | None = None,
    ):
        """Liver ROI box, the liver inside it, and the tumor margin score on the stage grid.
        ``found`` receives ``noise_hu``, the liver's noise on the stage's input grid
        (:func:`stage_noise_hu`; None where the stage does not mask the liver); ``warnings``
        what the stage's passes say (a rerun in float32: :func:`_sliding_logits`)."""
        meta = self.tumor.metadata
        liver = labels == 1
        box = _bbox(liver, margin_mm=meta.roi_margin_mm, spacing=spacing)
        ct_roi = ct[box]
        liver_roi = liver[box]
        low_shape = pp.stage_shape(ct_roi.shape, spacing, meta.target_spacing)
        x = pp.prepare_stage_input(
            ct_roi,
            low_shape,
            meta.hu_window,
            mask=liver_roi if meta.mask_outside_liver else None,
            outside_hu=meta.outside_hu,
            device=self._prep_device,
        )
        if found is not None:
            found["noise_hu"] = (
                stage_noise_hu(x, meta.hu_window) if meta.mask_outside_liver else None
            )
        rep.update("tumor", 0, 1)
        logits = _sliding_logits(self.tumor, x, self.device, self.config, rep, "tumor", warnings)
        del x
        tumor_ch = _channel(meta.label_map, "tumor", default=logits.shape[0] - 1)
        score = _margin_score(logits, tumor_ch)
        del logits
        return box, liver_roi, score

    def _refine(self, ct, spacing, labels, box, rep: Reporter, warnings: list[str]) -> None:
        refine_labels(
            ct,
            labels,
            spacing,
            self.config.refine_config,
            box=box,
            progress=rep.progress,
            should_cancel=rep.should_cancel,
            warnings=warnings,
            min_ml=self.lesion_filter()[0],
        )


def refine_labels(
    ct: np.ndarray,
    labels: np.ndarray,
    spacing,
    refine_config=None,
    *,
    box: tuple[slice, slice, slice] | None = None,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    warnings: list[str] | None = None,
    min_ml: float = DEFAULT_MIN_TUMOR_ML,
) -> np.ndarray:
    """Active-contour refinement of the tumor (label 2) of ``labels``, in place, inside the liver
    (labels 1 and 2; other labels are left as they are).

    Calls :func:`napari_livertumor.refine.refine_all` on the liver's bounding box (``box``, or
    computed) so whole slices are never processed. Every tumor component under ``min_ml`` after
    the contours (slivers cut off a lesion's edge) goes back to liver, as the tumor stage's own
    filter removes them: one already that small in ``labels`` too. For hand-edited labels pass
    ``min_ml=0`` and use :func:`napari_livertumor.refine.drop_slivers` (which keeps a lesion
    that was already small), as the Refine panel does. When the refinement module is not
    available the labels are left as they are and a note is appended to ``warnings``.

    Returns
    -------
    ndarray
        ``labels`` (modified in place).
    """
    warnings = warnings if warnings is not None else []
    ct = getattr(ct, "array", ct)  # (a CTVolume, as everywhere else: its voxels)
    if not isinstance(labels, np.ndarray):
        raise InputError(
            None, f"labels must be a numpy array (refined in place); got {type(labels).__name__}"
        )
    if np.shape(ct) != labels.shape:
        # (each was cut to the liver's box of the labels: a slab refined against other voxels)
        raise InputError(
            None, f"the labels' shape {labels.shape} does not match the CT shape {np.shape(ct)}"
        )
    try:
        from . import refine as refine_mod

        refine_all = refine_mod.refine_all
    except (ImportError, AttributeError) as exc:
        warnings.append(
            f"refinement skipped: napari_livertumor.refine.refine_all is not available ({exc})"
        )
        return labels
    if not (labels == 2).any():
        return labels
    cfg = refine_mod.config.as_refine_config(refine_config)  # (a dict of its fields too)
    # the liver is its labels 1 and 2: a label map's vessels (3, 4: portal vein, aorta, as in
    # HCC-TACE-Seg's SEGs) stay as they are, not liver the tumor may grow into
    if box is None:
        box = _bbox(np.isin(labels, (1, 2)), margin_mm=0.0, spacing=spacing)
    roi = labels[box]
    liver = np.isin(roi, (1, 2))
    given = roi == 2
    notes: list[str] = []
    out = refine_all(
        np.ascontiguousarray(ct[box]),
        given,
        liver,
        tuple(spacing),
        cfg,
        progress=progress,
        should_cancel=should_cancel,
        notes=notes,
    )
    refined = np.asarray(out, dtype=bool) & liver
    # crumbs of under a few voxels the contours left (a lesion the model drew that small stays):
    # on a coarse grid (5-10 mm slices) one voxel can weigh more than the mL filter below
    refined = refine_mod.drop_slivers(
        given, refined, spacing, min_ml=0.0, notes=notes, min_voxels=refine_mod.MIN_LESION_VOXELS
    )
    from .refine.contour import WHERE_MARK

    for note in notes:
        # where a lesion lies is said in the indices of the liver's box of the CT turned to
        # the models' axes, not the file's (after WHERE_MARK, or in brackets): left out; and
        # Undo is the Refine panel's, not this run's
        n = re.sub(r" \((?:on slices? |centred at )[^)]*\)", "", note.split(WHERE_MARK)[0])
        n = n.replace("; Undo brings it back", "; segmenting without refinement keeps it")
        # the contrast gate and the size floor doing their job, crumbs cleared: notes
        if n.startswith(("lesion kept unchanged", "lesion(s) under")) or "by the contour" in n:
            log.info("refine: %s", n)
        else:  # settings clamped, a step that failed: warnings
            warnings.append(f"refine: {n}")
    if min_ml > 0 and refined.any():
        from scipy import ndimage as ndi

        cube = np.ones((3, 3, 3), bool)
        # all of it within the tumor's bounding box (before and after), not the liver's
        near = _bbox(refined | given, margin_mm=0.0, spacing=spacing)
        whole, refined = refined, refined[near]
        lab, _ = ndi.label(refined, structure=cube)
        sizes = np.bincount(lab.ravel())
        keep_voxels = min_ml * 1000.0 / float(np.prod(spacing))
        keep = sizes >= keep_voxels
        # pieces the contour left under the size filter go, but a lesion it shrank under it
        # stays: the largest piece left of every lesion of at least that size it was given
        # (one found at 0.16 mL, shrunk to 0.07, was lost without a word)
        before, _ = ndi.label(given[near], structure=cube)
        big = np.flatnonzero(np.bincount(before.ravel()) >= keep_voxels)
        both = (lab > 0) & np.isin(before, big[big > 0])
        old, piece = np.unique(np.stack([before[both], lab[both]]), axis=1)
        if old.size:
            order = np.lexsort((-sizes[piece], old))  # per lesion given, its largest piece first
            first = np.r_[True, old[order][1:] != old[order][:-1]]
            keep[piece[order][first]] = True
        keep[0] = False
        whole[near] = keep[lab]
        refined = whole
    roi[liver] = 1
    roi[refined] = 2
    return labels


def _changed_fields(now: InferenceConfig, was: InferenceConfig) -> list[str]:
    """The fields of ``now`` that differ from ``was`` (numpy arrays compared by value: ``!=``
    of two arrays is no yes or no)."""

    def same(a, b) -> bool:
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
        try:
            return bool(a == b)
        except (ValueError, TypeError):  # a container holding arrays
            return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))

    return [f for f in was.__dataclass_fields__ if not same(getattr(now, f), getattr(was, f))]


def as_inference_config(config: InferenceConfig | dict | None) -> InferenceConfig:
    """``config`` as a validated :class:`InferenceConfig`: ``None`` the defaults, a dict of its
    fields read into one; anything else, an unknown field or a bad value raises
    :class:`~napari_livertumor.errors.SettingsError`."""
    if isinstance(config, dict):  # a dict of its fields (as refine_config takes one)
        try:
            config = InferenceConfig(**config)
        except TypeError as exc:  # an unknown field, said with those there are
            known = ", ".join(InferenceConfig.__dataclass_fields__)
            hint = ""
            if "input" in config or "model_stamps" in config:
                hint = (
                    " (a stats file's run_settings records a run: pass its fields that "
                    "InferenceConfig has)"
                )
            raise SettingsError(f"{exc}; InferenceConfig's fields: {known}{hint}") from None
    elif config is None:
        config = InferenceConfig()
    elif not isinstance(config, InferenceConfig):
        raise SettingsError(
            f"config is an InferenceConfig or a dict of its fields; got {type(config).__name__}"
        )
    config.validate()
    return config


def segment_ct(
    volume: CTVolume,
    config: InferenceConfig | dict | None = None,
    *,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    models: Segmenter | dict | None = None,
) -> SegmentationResult:
    """Segment the liver and its tumors in a CT.

    Parameters
    ----------
    volume : CTVolume
        HU array ``(Z, Y, X)`` with spacing; its metadata ``modality`` must be CT.
    config : InferenceConfig, optional
    progress : callable ``(stage, done, total)``, optional
        Called per sliding window with stage ``"liver"`` / ``"tumor"`` (and ``"refine"``;
        ``"liver (image edge)"`` when a liver found at an image edge that cuts the body is
        looked at again with the image mirrored out: key on the name's start), then
        ``"measuring"`` (0 of 1, then 1 of 1) around the checks and statistics that end
        every run.
    should_cancel : callable, optional
        Polled between windows; when it returns True, :class:`~napari_livertumor.errors.Cancelled`
        is raised and nothing is returned.
    models : Segmenter or dict, optional
        Reuse models already loaded (a :class:`Segmenter`, or ``{"liver": LoadedModel, ...}``).
        With a :class:`Segmenter` and a ``config`` other than its own, its loaded models run
        with ``config`` (which must then name the same model folders and device).

    Returns
    -------
    SegmentationResult
        ``labels`` is uint8 on ``volume``'s grid: 0 background, 1 liver, 2 tumor. When no liver
        is found the labels are all 0 and ``warnings`` says so (no exception).

    Raises
    ------
    InputError
        The volume cannot be segmented (another modality, too small, no CT values), naming
        its source.
    SettingsError
        ``config`` holds an invalid value, or asks a given :class:`Segmenter` for other models.
    ModelError
        A model folder is missing, corrupt or made for the other stage.
    DeviceUnavailable
        CUDA asked for with ``strict_device`` and absent.
    Cancelled
        ``should_cancel`` returned True.

    Notes
    -----
    The library does not refine by default (``InferenceConfig(refine=False)``, as the Segment
    panel); ``livertumor segment`` does (``--no-refine`` turns it off). Pass
    ``InferenceConfig(refine=True)`` for the command line's result.
    """
    if isinstance(models, Segmenter):
        seg = models
        config = None if config is None else as_inference_config(config)
        if config is not None and config != seg.config:
            seg = seg.with_config(config)
    else:
        seg = Segmenter(config, models=models)
    return seg.segment(volume, progress=progress, should_cancel=should_cancel)


# --------------------------------------------------------------------------- helpers
#: in-plane spacings further apart than this ratio are warned of (a CT's pixels are square)
NON_SQUARE_RATIO = 1.25
#: plausible CT voxel spacing (mm): outside it the header is wrong (mm vs m, a unit slip)
SPACING_RANGE_MM = (0.05, 30.0)
#: (slice, in-plane) spacing above which results are warned about: twice the thickest
#: diagnostic CT's slices (10 mm), coarser in-plane than a downsampled scan (our `small`
#: phantoms: 4 mm pixels, up to 17.5 mm slices)
COARSE_MM = (20.0, 6.0)
#: the smallest scan the two stages can use: in-plane and through-plane extent (mm), slices
MIN_EXTENT_MM = (5.0, 20.0)
#: an axis of the scan turned more than this from the patient axis it is read as (an oblique
#: reconstruction) is warned of: the models see the body turned by as much (past 45° the axes
#: are read as others, and the body lies on its side for them)
OBLIQUE_DEGREES = 20.0
MIN_SLICES = 2
#: beyond this no CT value is Hounsfield units (extended scales reach about 30 000)
MAX_ABS_HU = 1e5
#: a CT of the body has air around it (-1000 HU) and little bone (> 600 HU): shares of voxels
MIN_AIR_SHARE = 0.002
MAX_DENSE_SHARE = 0.2
NOT_HU = "the values do not look like Hounsfield units"
#: the progress stage that ends every run: the fluid check, the labels turned back onto the
#: CT's grid and the statistics (the bar stood at the last stage's end for a second meanwhile)
MEASURING = "measuring"


def is_serious(warning: str) -> bool:
    """Whether a result warning says its masks and volumes may be wrong as a whole (values
    that are not HU, no liver, an orientation that looks swapped, a liver on the wrong side,
    of an impossible size (over 5 L) or too small for an adult's, metal streaking the liver's
    slices, tumor covering nearly all of it), not a detail (a liver over 2.5 L, dense material in it: said, not notified):
    the Segment panel puts those first, in amber, and as a notification."""
    return (
        NOT_HU in warning
        or warning.startswith(
            (
                "no liver found",
                "the liver found lies",
                "the liver found is",
                "the liver found averages",
                "metal on the liver",
                "the tumor found covers",
            )
        )
        or " look swapped" in warning
        or "expect unreliable masks" in warning  # a model that validated poorly
    )


#: ... and soft tissue (-150..150 HU) in the body
MIN_SOFT_SHARE = 0.02
#: more voxels than this beyond MAX_ABS_HU: refused; fewer: warned about (the window clips them)
MAX_WILD_SHARE = 0.001


def _check_input(volume: CTVolume, cfg: InferenceConfig) -> list[str]:
    """Refuse what the models cannot read; return warnings about values that look off."""
    if not isinstance(volume, CTVolume):
        given = type(volume).__name__
        how = (
            "read it with napari_livertumor.io.load_ct(path) first"
            if isinstance(volume, (str, Path))
            else "wrap the array as CTVolume(array, spacing=(dz, dy, dx)) (z, y, x order, HU)"
            if isinstance(volume, np.ndarray)
            else "pass a CTVolume (napari_livertumor.io.load_ct reads a DICOM folder or NIfTI)"
        )
        raise InputError(
            volume if isinstance(volume, (str, Path)) else None,
            f"segmenting takes a CTVolume, not a {given}: {how}",
        )
    src = _named_source(volume)
    modality = str(volume.meta.get("modality") or "CT").upper()
    if modality != "CT" and not cfg.allow_non_ct:
        raise InputError(
            src,
            f"modality is {modality}, not CT: the models are trained on CT in Hounsfield units "
            "(the command line's --allow-non-ct, or InferenceConfig(allow_non_ct=True), "
            "segments it anyway)",
        )
    notes = []
    if modality != "CT":  # allowed, and recorded beside the figures it gave
        notes.append(
            f"modality is {modality}, not CT: segmented anyway (--allow-non-ct); the models "
            "were trained on CT, these figures are not validated"
        )
    return notes + check_volume(volume)


def _named_source(volume: CTVolume) -> str | None:
    """What a message about ``volume`` starts with: its file or folder, else (an image layer
    with no file, made in the console or by another plugin) its name in quotes, else None (a
    "." started the message: an empty path)."""
    source = volume.meta.get("source")
    if source:
        return str(source)
    name = volume.meta.get("description")
    return f"'{name}'" if name else None


def _oblique_degrees(direction) -> float:
    """The largest angle (degrees) between an axis of the scan and the patient axis nearest
    it; 0 for a sheared grid (a gantry-tilted series: the reader says so itself)."""
    cols = np.asarray(direction, dtype=float)
    cols = cols / np.linalg.norm(cols, axis=0)
    gram = cols.T @ cols
    if np.abs(gram - np.eye(3)).max() > 1e-3:  # not orthogonal: sheared
        return 0.0
    nearest = np.clip(np.abs(cols).max(axis=0), 0.0, 1.0)
    return float(np.degrees(np.arccos(nearest)).max())


def check_volume(volume: CTVolume, *, for_models: bool = True) -> list[str]:
    """Refuse a volume no CT can be (a mask, complex values, spacing outside 0.05–30 mm,
    values far beyond HU) and return warnings on values that do not look like HU.

    ``for_models``: a volume too small for the models is refused; with False (loading it to
    look at) it is a warning instead.
    """
    src = _named_source(volume)
    arr = volume.array
    if arr.size == 0 or min(arr.shape) < 1:
        raise InputError(src, f"empty volume (shape {arr.shape})")
    if arr.dtype == bool:
        raise InputError(src, "the image holds only true/false values: a mask, not a CT")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(src, f"CT values must be real numbers, got {arr.dtype}")
    notes = []
    if np.issubdtype(arr.dtype, np.floating):
        bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if bad == arr.size:
            raise InputError(src, "every voxel is NaN or infinite")
        if bad:  # a converter's fill outside the field of view, a corrupt slice
            notes.append(
                f"{bad} NaN/infinite voxel{'s' if bad > 1 else ''} "
                f"({100 * bad / arr.size:.2g} %) read as the lowest value in the image "
                "(+infinite ones as the highest)"
            )
    spacing = tuple(float(v) for v in volume.spacing)
    lo_mm, hi_mm = SPACING_RANGE_MM
    if not all(lo_mm <= v <= hi_mm for v in spacing):
        units = volume.meta.get("nifti_units")
        raise InputError(
            src,
            "implausible voxel spacing "
            + " × ".join(f"{v:g}" for v in spacing)
            + f" mm (z, y, x); a CT's lies between {lo_mm:g} and {hi_mm:g} mm: "
            + (
                f"the header gives its sizes in {units}s, and NIfTI sizes are read as mm here "
                "(as nibabel reads them): save the file in mm (SimpleITK, for one, converts it)"
                if units
                else "check the header's units (mm, not m or µm)"
            ),
        )
    coarse_z, coarse_xy = COARSE_MM
    # along the patient's axes (a file may store them in another order)
    turn = Reorientation.to_standard(volume.direction)
    std = turn.apply_spacing(spacing)
    if std[0] > coarse_z or max(std[1:]) > coarse_xy:
        notes.append(
            f"coarse voxels ({std[0]:.3g} mm slices, {std[1]:.3g} × {std[2]:.3g} mm "
            "in-plane): lesions of a few voxels blur into the liver around them, so tumor "
            "volumes and lesion counts can be far off (a CT's slices are 0.5–10 mm, its "
            "pixels under 1 mm)"
        )

    def odd(pixel) -> bool:
        return max(pixel) > NON_SQUARE_RATIO * min(pixel)

    # A CT's pixels are square, in its stored images (whichever plane they are) or, for a
    # reformat of an axial series (coronal images of 0.8 × 5 mm pixels), in the axial plane:
    # neither square is a spacing in nibabel's (dx, dy, dz) order (get_zooms()) where
    # (dz, dy, dx) is meant (20 % more tumor on a 5 mm phantom, unsaid), or a header's slip
    if odd(spacing[1:]) and odd(std[1:]):
        given = (
            "check the file's pixel spacing"
            if volume.meta.get("source")
            else "if the spacing was given in (dx, dy, dz) order, as nibabel's get_zooms() "
            "gives it, give it as (dz, dy, dx)"
        )
        across = (  # (an axial series' stored images are the plane across the patient)
            ""
            if sorted(std[1:]) == sorted(spacing[1:])
            else f", nor are they across the patient ({std[1]:.3g} × {std[2]:.3g} mm)"
        )
        notes.append(
            f"the stored images' pixels are not square ({spacing[1]:.3g} × {spacing[2]:.3g} "
            f"mm, {spacing[0]:.3g} mm between images){across}: {given}; volumes and "
            "diameters are measured with it"
        )
    turned = _oblique_degrees(volume.direction)
    if turned > OBLIQUE_DEGREES:
        notes.append(
            f"the scan's axes are turned {turned:.0f}° from the patient's (an oblique "
            "reconstruction): it is read as if straight, on the patient axes nearest to its "
            "own, so the models, "
            "trained on straight axial scans, see the body turned by as much and can miss or "
            "cut the liver; reformat it to axial slices first if you can"
        )
    # along the patient's axes too: a thin slab stored in sagittal order is as thin
    shape = turn.apply_shape(arr.shape)
    extent = [n * v for n, v in zip(shape, std, strict=True)]
    min_z, min_xy = MIN_EXTENT_MM
    short = [  # only what fails is named (a 2-slice scan "needs at least 2 slices" read oddly)
        what
        for what, fails in (
            (f"at least {MIN_SLICES} slices", shape[0] < MIN_SLICES),
            (f"{min_z:g} mm through-plane", extent[0] < min_z),
            (f"{min_xy:g} mm in-plane", min(extent[1:]) < min_xy),
        )
        if fails
    ]
    if short:
        small = (
            "too small to hold a liver: "
            + " × ".join(str(n) for n in shape)
            + " voxels, "
            + " × ".join(f"{e:.3g}" for e in extent)
            + f" mm (head-feet, front-back, left-right); needed: {' and '.join(short)}"
        )
        if for_models:
            raise InputError(src, small)
        notes.append(f"the models will refuse it: {small}")
    label_map = _label_map_values(arr)
    if label_map:
        what = (
            f"the image holds only the values {label_map}: a label map (a segmentation), not a "
            "CT in Hounsfield units"
        )
        if for_models:
            raise InputError(src, f"{what}; give the CT image it was drawn on")
        notes.append(what)
    return notes + _hu_warnings(arr, src)


def _sample(arr: np.ndarray) -> np.ndarray:
    """About two million voxels of ``arr``, evenly strided (a view)."""
    step = max(1, round((arr.size / 2_000_000) ** (1 / 3)))
    return arr[::step, ::step, ::step]


def _label_map_values(arr: np.ndarray) -> str:
    """``"0, 1, 2"`` when ``arr`` holds 2 to 16 whole values within 0–255 (a label map), else
    ``""``. Judged on a sample (every CT has thousands of values, even a clipped one)."""
    sample = _sample(arr)
    if sample.size == 0 or sample.min() < 0 or sample.max() > 255:
        return ""
    values = np.unique(sample)
    if not 2 <= values.size <= 16 or not np.array_equal(values, np.round(values)):
        return ""
    return ", ".join(f"{v:g}" for v in values)


def _hu_warnings(arr: np.ndarray, src) -> list[str]:
    """Warnings when the values do not look like Hounsfield units (refuses absurd ones)."""
    sample = np.asarray(_sample(arr), dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return []
    wild = np.abs(sample) > MAX_ABS_HU
    top = float(np.abs(sample).max())
    if wild.mean() > MAX_WILD_SHARE:
        raise InputError(
            src,
            f"values up to {top:.3g} in {100 * wild.mean():.1f} % of the image: not Hounsfield "
            "units (a CT ranges from about -1024 to 3071, extended scales to about 30 000): "
            "check the file's scaling",
        )
    notes = []
    if wild.any():  # a few: a converter's no-data fill, a corrupt slice; the HU window clips them
        notes.append(
            f"a few voxels hold values up to {top:.3g}, which no CT has (a no-data fill?); "
            "they are treated as the HU window's ends"
        )
        sample = sample[~wild]
    p_lo, p_hi = np.percentile(sample, [0.5, 99.5])
    if sample.min() == sample.max():  # one value: said as such (no liver found), not a shift
        return notes
    air = float(np.mean((sample > -1100) & (sample < -850)))
    dense = float(np.mean(sample > 600))
    soft = float(np.mean((sample > -150) & (sample < 150)))
    seen = f"(most values lie in {p_lo:.4g}…{p_hi:.4g})"
    if air < MIN_AIR_SHARE:  # normalised or label data, a rescale intercept not applied
        notes.append(
            f"{NOT_HU}: no air at -1000 {seen}. Normalised "
            "values, a label map or a rescale intercept (-1024) not applied give wrong masks: "
            "check the file. (A scan cropped inside the body has no air either: the models "
            "expect a whole abdominal cross-section, and may miss or cut the liver in a crop)"
        )
    elif dense > MAX_DENSE_SHARE:  # the body shifted up, e.g. by +1024 (padding stays low)
        notes.append(
            f"{NOT_HU}: {100 * dense:.0f} % of the image is "
            f"denser than bone (600 HU) {seen}; values shifted up (a rescale intercept not "
            "applied?) give wrong masks: check the file"
        )
    elif soft < MIN_SOFT_SHARE:  # the body shifted down, e.g. an intercept applied twice
        notes.append(
            f"{NOT_HU}: almost nothing lies between -150 "
            f"and 150 HU, where soft tissue does {seen}; values shifted down (a rescale "
            "intercept applied twice?) give wrong masks: check the file"
        )
    return notes


def _sliding_logits(
    model: LoadedModel,
    x,
    device,
    cfg: InferenceConfig,
    rep: Reporter,
    stage: str,
    notes: list[str] | None = None,
):
    """Sliding-window logits ``(C, z, y, x)`` (float32, on ``device``) of ``x`` ``(z, y, x)``.

    Logits that are not all finite, or that are the same everywhere on an image that is not
    (:func:`_check_logits`), raise ModelError naming the model: with finite weights 1e30 times
    too large the logits were all NaN, and the run said "no liver found", blaming the scan (or
    a tumor of 0 mL, without a word); all-zero weights marked the whole liver as tumor. Under
    mixed precision (CUDA) non-finite logits first run the stage again in float32, whose range
    float16's (65504) is far below, and ``notes`` (else the log) says so."""
    import torch
    from monai.inferers import sliding_window_inference

    meta = model.metadata
    growths = _as_growths(cfg.tumor_window_growth if stage == "tumor" else cfg.window_growth)
    factor = meta.network.downsample_factor
    # one pass per distinct window size (on a small image several growths give the same one)
    rois = list(dict.fromkeys(window_size(meta.roi_size, x.shape, factor, g) for g in growths))
    flips = TTA_FLIPS[cfg.tta] if stage == "tumor" else TTA_FLIPS["none"]
    # progress counts forward passes: windows x mirrored views
    total = sum(_count_windows(x.shape, roi, cfg.sw_overlap) for roi in rois) * len(flips)
    done = 0
    use_amp = _amp_on(cfg, device)
    pad = False

    def predictor(batch):
        nonlocal done
        n = batch.shape[0]
        if pad and n == 1:
            batch = torch.cat([batch, batch])
        out = None
        for dims in flips:
            rep.check()
            view = torch.flip(batch, dims) if dims else batch
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                one = model.network(view)[:n].float()
            one = torch.flip(one, dims) if dims else one
            out = one if out is None else out.add_(one)
            done += n
            rep.update(stage, min(done, total), total)
        return out / len(flips) if len(flips) > 1 else out

    inp = x.to(device)[None, None]

    def passes():
        nonlocal pad
        out = None
        with _cancel_inside_forward(model.network, rep):
            for roi in rois:
                pad = _pad_single_window(device, roi, meta.network.init_filters)
                one = sliding_window_inference(
                    inp,
                    roi_size=roi,
                    sw_batch_size=cfg.sw_batch_size,
                    predictor=predictor,
                    overlap=cfg.sw_overlap,
                    mode="gaussian",
                    padding_mode="constant",
                    cval=0.0,
                )
                out = one if out is None else out.add_(one)
        if len(rois) > 1:
            out /= len(rois)
        return out[0].float()

    out = passes()
    name = stage.split(" (")[0]  # "liver (image edge)": the liver model
    retried = False
    if use_amp and not _all_finite(*_channel_ranges(out)):
        share = _non_finite_share(out)
        use_amp = False  # (read by predictor)
        retried = True
        done = 0
        out = passes()
        head = f"the {name} model's output overflowed in mixed precision (float16)"
        note = (
            f"{head} on {device}: {share} % of its values were NaN or infinite, and its stage "
            "ran again in float32 (slower); its activations come near float16's limit: "
            "retrain or re-export it"
        )
        if notes is None:
            log.warning(note)
        elif not any(n.startswith(head) for n in notes):  # (the liver's pass at an edge)
            notes.append(note)
    _check_logits(out, x, model, name, retried=retried)
    if meta.logit_bias is not None:  # the decision threshold chosen on validation patients
        out += torch.tensor(meta.logit_bias, dtype=out.dtype, device=out.device)[
            :, None, None, None
        ]
    return out


def _amp_on(cfg: InferenceConfig, device) -> bool:
    """Whether the networks run under float16 autocast: ``amp`` on a CUDA device."""
    return bool(cfg.amp) and device.type == "cuda"


def _non_finite_share(out) -> str:
    """The share (%) of ``out``'s values that are NaN or infinite, as a message says it."""
    import torch

    pct = 100.0 * (~torch.isfinite(out)).sum().item() / max(out.numel(), 1)
    return f"{pct:.0f}" if pct >= 1 else f"{pct:.2g}" if pct >= 0.01 else "under 0.01"


#: a stage's logits (every channel) varying by less than this, relative to their size, over
#: an image that varies are the same everywhere: Gaussian-weighted windows of a constant give
#: it back to within float32's rounding (1e-7), a trained network's vary by whole logits
FLAT_LOGITS_RTOL = 1e-4


def _channel_ranges(out):
    """Each channel's least and greatest value of ``out`` ``(C, ...)``: NaN where the channel
    holds one, ±inf where it holds an infinite value."""
    import torch

    return torch.aminmax(out.flatten(1), dim=1)


def _all_finite(lo, hi) -> bool:
    """Whether the ranges of :func:`_channel_ranges` are finite (so every value is)."""
    import torch

    # (.item(): a value on the device, as a meta-device test can stand in for)
    return bool((torch.isfinite(lo).all() & torch.isfinite(hi).all()).item())


def _check_logits(out, x, model: LoadedModel, name: str, *, retried: bool) -> None:
    """ModelError when the logits ``out`` ``(C, z, y, x)`` of the ``name`` stage's ``model``
    on its input ``x`` hold NaN or infinite values, or do not vary at all where ``x`` does.

    Both are a model's fault, never the scan's: the CT's non-finite voxels are replaced before
    this (``signed_hu``), and a uniform image never reaches the networks. A network whose output
    does not depend on its input (all-zero weights, every unit dead) is refused rather than
    warned of: its masks say nothing about the scan (the whole liver as tumor, or the whole
    image as liver or none of it), and written, they would be read as results. On a uniform
    input (a scan whose values all lie outside the model's HU window, the tumor stage's box
    all liver) every network's output is uniform: not judged. Cheap: the stage's grid is the
    low-resolution one, and one pass over it (each channel's least and greatest value, which a
    NaN or infinite value is among) does both (a 512² scan's liver stage: 2 × 0.9 M values,
    about 5 ms on a CPU core)."""
    import torch

    where = Path(model.path) / WEIGHTS_FILE if model.path is not None else None
    lo, hi = _channel_ranges(out)
    if not _all_finite(lo, hi):
        raise ModelError(
            where,
            f"the {name} model's output on this scan holds {_non_finite_share(out)} % NaN or "
            "infinite values"
            + (" (in float32 too, after float16 overflowed)" if retried else "")
            + ": its weights are finite, but the values inside the network overflow (weights "
            "far larger than a trained network's); retrain it or re-export it",
        )
    spread = (hi - lo).max().item()
    if spread > FLAT_LOGITS_RTOL * max(1.0, torch.maximum(hi.abs(), lo.abs()).max().item()):
        return
    x_lo, x_hi = torch.aminmax(x)  # (only then: the input's range is another pass)
    if out[0].numel() >= 2 and (x_hi > x_lo).item():
        raise ModelError(
            where,
            f"the {name} model's output is the same at every voxel of this scan: it does not "
            "depend on the image, as a network's with all-zero or dead weights does (its masks "
            f"would be {'all tumor or no tumor' if name == 'tumor' else 'everything or nothing'}"
            "); not a trained model: use another checkpoint (its run's best/ folder) or a "
            "fresh copy",
        )


@contextlib.contextmanager
def _cancel_inside_forward(network, rep: Reporter):
    """Check for a cancel before each 3D convolution of ``network``'s forward passes made by
    this thread: one window can be a whole stage (the liver's, on most scans: 4 s on this CPU),
    and a Cancel waited for it to end. (Only this thread's passes: another job sharing the
    cached network is not stopped by this one's Cancel.)"""
    import threading

    import torch

    if rep.should_cancel is None:
        yield
        return
    me = threading.get_ident()

    def check(_module, _inputs):
        if threading.get_ident() == me:
            rep.check()

    hooks = [
        m.register_forward_pre_hook(check)
        for m in network.modules()
        if isinstance(m, torch.nn.Conv3d)
    ]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


#: the share of an in-plane image border's voxels (over every slice) that must hold body
#: (above the HU window's floor) for the border to count as cutting the body
BODY_AT_BORDER_SHARE = 0.05
#: a liver found this close to such a border (mm) is looked for again in the image mirrored
#: out past it (livers touching the edge were found ending 13-21 mm short of it)
LIVER_NEAR_BORDER_MM = 25.0


def _mirror_cut_body(x, mask: np.ndarray, spacing, mm: float):
    """``(x mirrored out by mm in-plane, (y, x) margin in voxels)`` when the liver ``mask``
    found in ``x`` (z, y, x; the stage's windowed input) comes within
    :data:`LIVER_NEAR_BORDER_MM` of an in-plane border where the field of view cuts the body;
    else None (and always with ``mm`` 0).

    Beyond the image the network sees zeros, which its window makes air: a liver touching the
    image's edge ended 10-20 mm short of it, at a "skin" the network drew there. Mirrored, the
    anatomy goes on past the edge. ``benchmarks/bench_field_of_view.py`` (4 Dec 2026, 3 held-out
    phantoms of each of two generators, shipped models): mean liver Dice 0.816 -> 0.859 with
    the liver touching the image's edges, 0.923 -> 0.943 with 10 mm of it cut off, the uncropped
    phantoms unchanged (and so are all 36 of the accuracy and foreign-phantom benchmarks). On
    phantoms whose body touches the edge away from the liver, mirroring every time cost a little
    (0.934 -> 0.929, 0.971 -> 0.969), hence only near the liver."""
    import torch.nn.functional as F

    if mm <= 0 or not mask.any():
        return None
    ny = int(np.ceil(LIVER_NEAR_BORDER_MM / spacing[1]))
    nx = int(np.ceil(LIVER_NEAR_BORDER_MM / spacing[2]))
    sides = (
        (x[:, 0, :], mask[:, :ny, :]),
        (x[:, -1, :], mask[:, -ny:, :]),
        (x[:, :, 0], mask[:, :, :nx]),
        (x[:, :, -1], mask[:, :, -nx:]),
    )
    if not any(
        near.any() and float((border > 0).float().mean()) > BODY_AT_BORDER_SHARE
        for border, near in sides
    ):
        return None
    my = min(int(round(mm / spacing[1])), x.shape[1] - 1)
    mx = min(int(round(mm / spacing[2])), x.shape[2] - 1)
    padded = F.pad(x[None, None], (mx, mx, my, my, 0, 0), mode="reflect")[0, 0]
    return padded, (my, mx)


def _as_growths(value) -> tuple[float, ...]:
    """A window growth setting (one number or several) as a tuple of floats."""
    if isinstance(value, (int, float)):
        return (float(value),)
    return tuple(float(v) for v in value)


def _pad_single_window(device, roi, init_filters: int) -> bool:
    """Whether to run a batch of one window as two copies (CPU only).

    PyTorch sends a float32 3-D convolution of a batch of one to its native kernel instead of
    oneDNN when ``channels * depth * height <= 20480``; for the upper layers of a small window
    that path is several times slower than oneDNN on two copies. Measured with the default trunk
    on 2 threads: a (32, 80, 80) window 0.48 s alone vs 0.14 s as two copies, (32, 112, 112)
    0.40 vs 0.30 s, but (64, 128, 128) 0.69 vs 0.98 s (so large windows run alone).
    """
    return device.type == "cpu" and init_filters * roi[0] * roi[1] <= 2 * 20480


def window_size(roi_size, shape, factor: int, growth: float) -> tuple[int, int, int]:
    """Sliding-window size per axis for an image of ``shape`` and a model trained on ``roi_size``.

    An axis no longer than ``growth`` × the trained size gets one window spanning it (rounded up
    to a multiple of the network's down-sampling ``factor``): small images are never padded up to
    a big window, and mid-size ones are not cut into heavily overlapping pieces.
    """
    out = []
    for r, s in zip(roi_size, shape, strict=True):
        r, s = int(r), int(s)
        out.append(_ceil_to(s, factor) if s <= growth * r or s < r else r)
    if all(w <= factor for w in out):
        # a window of one voxel at the network's deepest level: instance norm has nothing to
        # normalise there ("Expected more than 1 spatial element"); the longest axis is padded
        # to two (an image of a few cm: 40 x 40 pixels at 0.7 mm, 8 slices at 5 mm)
        longest = int(np.argmax([int(s) for s in shape]))
        out[longest] = 2 * factor
    return tuple(out)  # type: ignore[return-value]


def _count_windows(shape, roi, overlap: float) -> int:
    n = 1
    for s, r in zip(shape, roi, strict=True):
        s = max(s, r)
        if s == r:
            n *= 1
            continue
        step = max(int(r * (1 - overlap)), 1)
        n *= int(np.ceil((s - r) / step)) + 1
    return n


def _ceil_to(v: int, f: int) -> int:
    return max(f, -(-v // f) * f)


def tumor_mask_from_score(
    score,
    liver_roi: np.ndarray,
    spacing,
    *,
    min_ml: float = DEFAULT_MIN_TUMOR_ML,
    min_peak: float = 0.0,
    dropped: list | None = None,
) -> np.ndarray:
    """The tumor stage's post-processing: stage-grid margin score → uint8 mask on the ROI grid.

    Parameters
    ----------
    score : torch.Tensor, shape (z, y, x)
        ``tumor logit - max(other logits)`` (logit shift applied) on the tumor stage's grid,
        which covers ``liver_roi``'s box.
    liver_roi : ndarray of bool
        The predicted liver on the source grid (ROI box); tumor outside it is removed.
    spacing : (dz, dy, dx) of the source grid, mm.
    min_ml : float
        Connected components (26-connected, source grid) under this volume are removed.
    min_peak : float
        Hysteresis (low 0, high ``min_peak``): stage-grid components of positive score
        (26-connected, as lesions are counted everywhere else) whose maximum is below
        ``min_peak`` are dropped before up-sampling. 0 keeps every component.
    dropped : list, optional
        When given, one dict per component the peak filter removed (inside the liver and at
        least ``min_ml``, as a kept one would be) is appended: ``centroid_zyx`` (ROI voxel
        coordinates), ``volume_ml``, ``peak_margin`` (its most confident stage voxel), largest
        first. Nothing is silently lost: callers report them as unsure lesions.
    """
    from scipy import ndimage as ndi

    pos = (score > 0).cpu().numpy()
    unsure = None
    if min_peak > 0 and pos.any():
        keep = _hysteresis(score.cpu().numpy(), pos, float(min_peak))
        if not np.array_equal(keep, pos):
            if dropped is not None:
                unsure = (score, pos & ~keep)
            score = _force_sign(score, keep)
            pos = keep
    tumor_roi = np.zeros(liver_roi.shape, dtype=np.uint8)
    region = pp.stage_region(pos, liver_roi.shape)
    if region is not None:
        pp.upsample_mask(score, liver_roi.shape, tumor_roi, region=region, value=1)
    tumor_roi &= liver_roi.view(np.uint8)
    if tumor_roi.any() and min_ml > 0:
        lab, n = ndi.label(tumor_roi, structure=np.ones((3, 3, 3), bool))
        sizes = np.bincount(lab.ravel())
        min_vox = min_ml * 1000.0 / float(np.prod(spacing))
        keep_c = sizes >= min_vox
        keep_c[0] = False
        tumor_roi = keep_c[lab].astype(np.uint8)
    if unsure is not None:
        dropped.extend(_describe_dropped(*unsure, liver_roi, spacing, min_ml))
    return tumor_roi


def _hysteresis(score: np.ndarray, pos: np.ndarray, high: float) -> np.ndarray:
    """The components of ``pos`` (26-connected) that reach ``score >= high`` somewhere.
    (skimage's ``apply_hysteresis_threshold`` joins faces only: the part of a lesion that met
    the confident part at an edge was dropped while the lesion counted as one.)"""
    from scipy import ndimage as ndi

    lab, n = ndi.label(pos, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return pos
    peak = ndi.maximum(score, lab, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = np.asarray(peak) >= high
    return keep[lab]


def _describe_dropped(score, low_mask: np.ndarray, liver_roi, spacing, min_ml: float) -> list:
    """Source-grid components of the stage-grid ``low_mask`` (what the peak filter removed)."""
    from scipy import ndimage as ndi

    roi = np.zeros(liver_roi.shape, dtype=np.uint8)
    region = pp.stage_region(low_mask, liver_roi.shape)
    if region is None:
        return []
    pp.upsample_mask(_force_sign(score, low_mask), liver_roi.shape, roi, region=region, value=1)
    roi &= liver_roi.view(np.uint8)
    lab, n = ndi.label(roi, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    low_lab, _ = ndi.label(low_mask, structure=np.ones((3, 3, 3), bool))  # the filter's own
    score_np = score.cpu().numpy()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        idx = np.nonzero(lab[sl] == i)
        vol = idx[0].size * voxel_ml
        if vol < max(min_ml, 1e-12):
            continue
        full = [idx[a] + sl[a].start for a in range(3)]
        low = tuple(
            np.clip(
                ((full[a] + 0.5) * low_mask.shape[a] / roi.shape[a]).astype(int),
                0,
                low_mask.shape[a] - 1,
            )
            for a in range(3)
        )
        hit = low_lab[low]
        hit = hit[hit > 0]
        peak = float(score_np[np.isin(low_lab, np.unique(hit))].max()) if hit.size else 0.0
        out.append(
            {
                "centroid_zyx": [round(float(c.mean()), 1) for c in full],
                "volume_ml": round(vol, 4),  # as the lesions'
                "peak_margin": round(peak, 3),
            }
        )
    return sorted(out, key=lambda d: -d["volume_ml"])


#: How far (mm) the liver's centre must lie on the patient's right of the body's midline.
LIVER_SIDE_MARGIN_MM = 10.0


def _liver_side_warning(ct: np.ndarray, liver: np.ndarray, spacing) -> str | None:
    """A warning when the found liver does not lie on the patient's right, else None.

    ``ct`` and ``liver`` are in the standard orientation (x → patient left). A real liver's
    centre lies 3–8 cm right of the body's midline in the slices it spans; one centred or on
    the left is a non-abdominal scan (a phantom, a head), a file whose header flips left and
    right, or situs inversus — worth a look before trusting any volume.
    """
    zs = np.flatnonzero(liver.any(axis=(1, 2)))
    zs = zs[:: max(1, zs.size // 24)]  # a few dozen slices tell the midline
    body = ct[zs] > -500
    if not body.any():
        return None
    dx = float(spacing[2])
    # mean column of the body's and of the liver's voxels, from counts per column
    cols = np.arange(ct.shape[2], dtype=np.float64)
    per_col = np.count_nonzero(body, axis=(0, 1))
    body_x = float(per_col @ cols / per_col.sum()) * dx
    per_col = np.count_nonzero(liver[zs], axis=(0, 1))
    liver_x = float(per_col @ cols / max(per_col.sum(), 1)) * dx
    offset = liver_x - body_x  # < 0: towards the patient's right
    if offset <= -LIVER_SIDE_MARGIN_MM:
        return None
    where = "on the patient's left" if offset > LIVER_SIDE_MARGIN_MM else "across the midline"
    return (
        f"the liver found lies {where} (its centre {int(round(offset)):+d} mm from the body's midline; "
        "a liver lies on the right): is this an abdominal CT, and is its left-right orientation "
        "in the file right? Check the mask before using its volumes (in situs inversus the "
        "models, which have only seen livers on the right, are not to be trusted either)"
    )


#: bone (HU) and the band about the body's midline (mm) where the spine is looked for
SPINE_HU, SPINE_BAND_MM = 300.0, 20.0
#: bone counts on a side of the body's centre (at least this far from it, mm) from this much
#: area (cm²) on a slice
SPINE_GAP_MM, SPINE_MIN_CM2 = 10.0, 0.5
#: front and back swapped: bone in front on at least this share of the liver's slices and
#: behind on at most that share
SPINE_FRONT_SHARE, SPINE_BACK_SHARE = 0.6, 0.2


def _spine_side_warning(ct: np.ndarray, liver: np.ndarray, spacing) -> str | None:
    """A warning when the midline's bone lies in front of the body's centre and not behind
    it, else None.

    ``ct`` and ``liver`` are in the standard orientation (y → the patient's back). The spine
    is bone of the body's midline behind its centre on nearly every slice of the liver. What
    lies in front of it, bright on some slices or all (an arterial aorta or heart, a calcified
    aortic wall, oral contrast in the stomach, the xiphoid, lipiodol), must not count: the
    check asks on how many slices there is bone behind and in front, not where most bright
    voxels lie, and calls a scan swapped only with bone in front on most slices and behind on
    almost none. That is a file whose header swaps front and back (a NIfTI without
    orientation codes is read so), on which the liver found was a third too small on a test
    scan and its lesion another structure; the left-right check cannot see it. A field of
    view that leaves the spine out, with bright tissue in front on most slices, would be
    called swapped too: the message asks to look at the image.
    """
    zs = np.flatnonzero(liver.any(axis=(1, 2)))
    if not zs.size:
        return None
    zs = zs[np.unique(np.linspace(0, zs.size - 1, min(zs.size, 24)).round().astype(int))]
    body = ct[zs] > -500
    if not body.any():
        return None
    dy, dx = float(spacing[1]), float(spacing[2])
    # the body's centre (mean row and column of its voxels), from counts per row and column
    per_row, per_col = np.count_nonzero(body, axis=(0, 2)), np.count_nonzero(body, axis=(0, 1))
    body_y = float(per_row @ np.arange(per_row.size, dtype=np.float64)) / per_row.sum()
    body_x = float(per_col @ np.arange(per_col.size, dtype=np.float64)) / per_col.sum()
    near = np.flatnonzero(np.abs(np.arange(ct.shape[2]) - body_x) * dx <= SPINE_BAND_MM)
    band = slice(int(near[0]), int(near[-1]) + 1)
    bone = (ct[zs][:, :, band] > SPINE_HU) & body[:, :, band]
    rows = (np.arange(ct.shape[1]) - body_y) * dy  # mm behind the centre (< 0: in front)
    least = SPINE_MIN_CM2 * 100.0 / (dy * dx)  # voxels
    per_row = bone.sum(axis=2)  # (slices, rows)
    behind = float((per_row[:, rows >= SPINE_GAP_MM].sum(axis=1) >= least).mean())
    front = float((per_row[:, rows <= -SPINE_GAP_MM].sum(axis=1) >= least).mean())
    if front < SPINE_FRONT_SHARE or behind > SPINE_BACK_SHARE:
        return None
    return (
        "front and back look swapped: on the liver's slices the bone of the body's midline "
        f"lies in front of its centre ({100 * front:.0f} % of them) and not behind it, where "
        "the spine lies. If the spine is at the top of the image, the file's orientation is "
        "wrong (a NIfTI without orientation codes is one cause) and the masks and volumes are "
        "not to be trusted: fix the orientation (convert the DICOM series again, or set the "
        "header) and run again"
    )


#: air (HU) inside the body's outline, how far beyond the liver's ends it is looked for (mm),
#: and the share of the liver's height looked at within each end
LUNG_HU, LUNG_REACH_MM, LUNG_LIVER_SHARE = -400.0, 40.0, 0.15
#: head and feet swapped: at least this much air (cm², median per slice) behind the body's
#: centre at the liver's bottom end, at least LUNG_SIDE_CM2 of it on each side of the midline
#: (two lungs), and at most LUNG_OTHER_SHARE of it at the top end
LUNG_MIN_CM2, LUNG_SIDE_CM2, LUNG_OTHER_SHARE = 60.0, 15.0, 0.25


def _head_feet_warning(ct: np.ndarray, liver: np.ndarray, spacing) -> str | None:
    """A warning when the lung bases lie at the liver's bottom end and not at its top, else
    None.

    ``ct`` and ``liver`` are in the standard orientation (z → head, y → back). The lung bases
    lie above and behind the liver's dome (the recesses behind it reach down along its upper
    part), so a scan showing the dome shows a large air area inside the body's outline
    behind its centre there; at the liver's lower tip there is at most some bowel gas. A file
    whose header swaps head and feet (a NIfTI with a wrong sign in its affine, a slice order
    read backwards) has them the other way round, and the liver found on such a scan was
    5–16 % worse in Dice, with no other warning: the left-right and front-back checks cannot
    see a mirror along the body's axis. A scan that starts below the lungs has no lungs to
    tell by and is not judged, nor one that cuts the liver (its dome or tip unseen). Bowel gas
    at the lower end counts only when it is as large as lungs are there (60 cm² behind the
    centre, on both sides) and the dome end has almost no air at all, in front or behind (a
    review's distended colon of 45–50 cm², below a dome whose recesses held fluid, had been
    called a swap).
    """
    from scipy import ndimage as ndi

    zs = np.flatnonzero(liver.any(axis=(1, 2)))
    if not zs.size:
        return None
    z0, z1 = int(zs[0]), int(zs[-1])
    if z0 == 0 or z1 == ct.shape[0] - 1:
        return None
    reach = int(round(LUNG_REACH_MM / float(spacing[0])))
    inner = max(1, int(round(LUNG_LIVER_SHARE * (z1 - z0 + 1))))
    step = 2 if min(ct.shape[1:]) >= 256 else 1  # half the pixels tell air areas as well
    pixel_cm2 = float(spacing[1]) * float(spacing[2]) * step * step / 100.0

    def air(lo: int, hi: int) -> tuple[float, float, float]:
        """Median air area inside the body (cm²): behind its centre, the smaller side of that,
        and all of it."""
        lo, hi = max(lo, 0), min(hi, ct.shape[0] - 1)
        rows = []
        for z in np.unique(np.linspace(lo, hi, min(hi - lo + 1, 10)).round().astype(int)):
            image = ct[z, ::step, ::step]
            parts, n = ndi.label(image > -500)
            if n == 0:
                rows.append((0.0, 0.0, 0.0))
                continue
            body = ndi.binary_fill_holes(parts == np.bincount(parts.ravel())[1:].argmax() + 1)
            inside = body & (image < LUNG_HU)
            ys, xs = np.nonzero(body)
            behind = inside.copy()
            behind[: int(np.ceil(ys.mean()))] = False
            mid = int(round(xs.mean()))
            left, right = (
                np.count_nonzero(b) * pixel_cm2 for b in (behind[:, :mid], behind[:, mid:])
            )
            rows.append((left + right, min(left, right), np.count_nonzero(inside) * pixel_cm2))
        return tuple(float(v) for v in np.median(np.array(rows), axis=0))

    head = air(z1 - inner, z1 + reach)[2]  # any air: effusions fill the recesses behind
    feet, feet_side, _ = air(z0 - reach, z0 + inner)
    if feet < LUNG_MIN_CM2 or feet_side < LUNG_SIDE_CM2 or head > LUNG_OTHER_SHARE * feet:
        return None
    return (
        "head and feet look swapped: the air of the lung bases lies at the liver's lower end "
        f"({feet:.0f} cm² behind the body's centre) and not at its dome ({head:.0f} cm² of air there). If "
        "the lungs are at the feet end of the scan, the file's orientation is wrong (a wrong "
        "sign in a NIfTI's affine, or slices read in reverse order) and the masks and volumes "
        "are not to be trusted: fix the orientation (convert the DICOM series again, or set "
        "the header) and run again"
    )


#: a scan shorter than this (mm) cutting the liver at both ends holds only part of it
SHORT_SCAN_MM = 100.0
#: liver cross-section (mm²) on the scan's first or last slice that says the scan cut it
LIVER_CUT_MM2 = 200.0


#: A liver found larger than this (mL, tumor included) is said to be implausible: an adult's
#: is 1.2-2 L, and marked hepatomegaly 3-5 L; a water phantom of 7.5 L and an MR series of
#: 7.9 L were segmented as "liver" with no word.
LIVER_PLAUSIBLE_ML = 5000.0


#: A liver found larger than this (mL) is past the models' training phantoms (livers of about
#: 1.1-1.9 L): on phantoms scaled to 2.7-3.5 L they found 5-11 % too little liver and missed
#: nearly all the tumor, without a word (a review, 5 Dec 2026). Hepatomegaly starts at about 2 L.
LIVER_LARGE_ML = 2500.0


def _liver_size_warning(liver: np.ndarray, spacing) -> str | None:
    """A warning when the liver found is larger than any but the rarest livers, or larger than
    the models were trained on, else None."""
    ml = float(np.count_nonzero(liver)) * float(np.prod([float(v) for v in spacing])) / 1000.0
    if ml <= LIVER_LARGE_ML:
        return None
    if ml <= LIVER_PLAUSIBLE_ML:
        return (  # (not "the liver found is": a detail, not notified — HCC livers are large)
            f"the liver found ({ml / 1000:.1f} L) is larger than any the models were trained on "
            "(about 1.1-1.9 L; an adult's is 1.2-2 L): on livers this large they measured too "
            "little liver (5-11 % on scaled phantoms) and missed tumor; check the mask slice by "
            "slice"
        )
    return (
        f"the liver found is {ml / 1000:.1f} L, larger than all but the rarest livers (an "
        "adult's is 1.2-2 L, marked hepatomegaly 3-5 L): check that the mask lies on the "
        "liver (not a phantom, an MR series or a scan in other units)"
    )


#: tumor over this share of the organ (liver and tumor) is warned of: a patient lives on a
#: quarter of the liver or so (a resection must leave 20-30 %), the largest HCCs rarely
#: exceed 70-80 % of the organ, and a model whose output ignores the image marked all of it
#: (1385.5 of 1385.5 mL, a review, without a word)
TUMOR_WHOLE_LIVER_SHARE = 0.9


def _tumor_share_warning(stats: dict) -> str | None:
    """A warning when the tumor found covers nearly the whole organ (over
    :data:`TUMOR_WHOLE_LIVER_SHARE` of liver and tumor), else None."""
    ratio = stats.get("tumor_to_liver_ratio")
    if ratio is None or ratio < TUMOR_WHOLE_LIVER_SHARE:
        return None
    return (
        f"the tumor found covers {100 * ratio:.1f} % of the liver (a patient lives on a "
        "quarter of it or so; the largest HCCs rarely reach 80 %): check the tumor mask slice "
        "by slice, and that the tumor model is one trained for this (a model whose output "
        "ignores the image marks all of the liver)"
    )


#: the words of "no liver found" in a scan narrower than :data:`CHILD_BODY_MM` (the Segment
#: panel adds, for a layer of unknown spacing, that no spacing is known)
NARROW_SCAN = "narrower than an adult's abdomen"

#: a body narrower than this (mm, left to right at its widest) is a child's: an adult's
#: abdomen is about 280-400 mm wide; the models missed a 0.45-scaled phantom's liver and said
#: only "is this an abdominal CT?" (a review, 5 Dec 2026)
CHILD_BODY_MM = 200.0


def _body_width_mm(ct: np.ndarray, spacing) -> float | None:
    """The body's widest left-to-right extent (mm) over a few dozen slices: columns holding
    tissue (over -500 HU; a table or arms in the field widen it, never narrow it). None when
    no slice holds any."""
    zs = range(0, ct.shape[0], max(1, ct.shape[0] // 24))
    widest = 0
    for z in zs:
        cols = np.flatnonzero((ct[z] > -500).any(axis=0))
        if cols.size:
            widest = max(widest, int(cols[-1] - cols[0] + 1))
    return widest * float(spacing[2]) if widest else None


#: metal (HU): clips, coils, wires, prostheses; cortical bone stays under about 2000 HU
METAL_HU = 2500.0
#: metal of at least this much (mL) on the liver's slices (its streaks run within a slice),
#: no further than this (mm) from the liver's box in the image: an ECG electrode in the air
#: in front of the body or spinal metal below the liver streaked nothing of it
METAL_MIN_ML, METAL_REACH_MM = 0.05, 50.0
#: dense material inside the liver found (HU: liver tissue stays under about 200 in any
#: phase; lipiodol after chemoembolisation, calcification, stents, clips lie above) ...
DENSE_LIVER_HU = 400.0
#: dense material found mostly this close to the image's in-plane side (mm) is said to be
#: perhaps bone the liver mask took in where the image cuts the body
DENSE_SIDE_MM = 20.0
#: ... of at least this much (mL)
DENSE_LIVER_ML = 1.0
#: dense material in the liver mask joined, through dense voxels within this margin (mm)
#: around the liver's box, to dense material outside the mask is bone the mask's edge took in
#: (ribs, spine, xiphoid), not a deposit in the liver: said, in other words, from this much
#: (mL) on (an independent generator's phantoms: 4.7-10 mL of rib cross-sections, 60+ mm
#: to the side of the body's centre, were said to be "lipiodol after chemoembolisation")
DENSE_JOIN_MM, DENSE_BONE_ML = 10.0, 2.0


def _dense_material_warnings(ct: np.ndarray, liver: np.ndarray, spacing, *, tumor: bool):
    """Warnings of what makes the masks unreliable without the models knowing: metal near the
    liver (its streaks were called tumor: 96-202 mL of false tumor on scans of 39-45 mL,
    and liver lost), and, for the tumor stage, dense material inside the liver (lipiodol
    after TACE: tumor Dice 0.60 → 0.29). Neither was said (a review of unusual scans, 5 Dec
    2026).
    ``ct``, ``liver`` (labels 1 and 2, liver and tumor: the liver stage gives 1 alone) in the
    standard orientation; worked slab by slab."""
    from scipy import ndimage as ndi

    out: list[str] = []
    # (the boxes of labels 1 and 2 joined: a bool copy of the whole scan is 52 MB on 512² × 200)
    found = [b for b in ndi.find_objects(liver.astype(np.uint8, copy=False))[:2] if b is not None]
    if not found:
        return out
    box = tuple(
        slice(min(b[i].start for b in found), max(b[i].stop for b in found)) for i in range(3)
    )
    voxel_ml = float(np.prod([float(v) for v in spacing])) / 1000.0
    zs, ys, xs = box
    ry = int(np.ceil(METAL_REACH_MM / float(spacing[1])))
    rx = int(np.ceil(METAL_REACH_MM / float(spacing[2])))
    near = (
        slice(max(0, ys.start - ry), min(ct.shape[1], ys.stop + ry)),
        slice(max(0, xs.start - rx), min(ct.shape[2], xs.stop + rx)),
    )
    metal = 0
    metal_slices = 0
    for z in range(zs.start, zs.stop, 16):
        slab = ct[z : min(z + 16, zs.stop), near[0], near[1]]
        per_slice = np.count_nonzero(slab >= METAL_HU, axis=(1, 2))
        metal += int(per_slice.sum())
        metal_slices += int(np.count_nonzero(per_slice))
    metal_ml = metal * voxel_ml
    if metal_ml >= METAL_MIN_ML:
        out.append(
            f"metal on the liver's slices ({metal_ml:.2g} mL above {METAL_HU:.0f} HU on "
            f"{metal_slices} slice(s), within {METAL_REACH_MM:.0f} mm of it: clips, coils, a "
            "prosthesis): its streaks can be taken for tumor and cut liver out; check the "
            "masks on those slices"
        )
    if not tumor:
        return out
    # bone the mask's edge took in runs on out of it (a rib's cross-section, the spine): what
    # is joined to dense voxels outside the mask is bone, what is not is material in the liver
    # (a deposit near its edge too: liver lies between it and any rib). Found first, before
    # the arrays below are made (the peak of memory stays that of either)
    joined = _joined_to_outside(ct, liver, box, spacing)
    # the liver found less its outline in the image: a rib's cortex the mask's edge took in
    # (7 voxels of 0.2 mL on 13 mm slices) is no material inside it
    core = ndi.binary_erosion(
        np.asarray(liver[box]) > 0, structure=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool)
    )
    dense = core & (np.asarray(ct[box]) > DENSE_LIVER_HU)
    # voxels with a dense neighbour in their image: a lone voxel over 400 HU is noise (a very
    # noisy scan, 120 HU SD, had 5 mL of them said to be lipiodol); a deposit is a blob
    beside = np.zeros_like(dense)
    beside[:, 1:] |= dense[:, :-1]
    beside[:, :-1] |= dense[:, 1:]
    beside[:, :, 1:] |= dense[:, :, :-1]
    beside[:, :, :-1] |= dense[:, :, 1:]
    dense &= beside
    del beside
    bone_ml = float(np.count_nonzero(dense & joined)) * voxel_ml
    dense &= ~joined
    del joined
    if bone_ml >= DENSE_BONE_ML:
        out.append(
            f"the liver mask takes in {bone_ml:.1f} mL of bone at its edge (above "
            f"{DENSE_LIVER_HU:.0f} HU, joined to the ribs or spine outside it): the liver's "
            "volume includes it; check the mask's edge there"
        )
    dense_ml = float(np.count_nonzero(dense)) * voxel_ml
    if dense_ml >= DENSE_LIVER_ML:
        # most of it by the image's side: where a body the image cuts lets the mask run over
        # the body wall (a review's cut fields of view: the ribs taken in were said to be
        # "lipiodol… a stent or clips", beside the warning of the edge)
        _, ys_in, xs_in = np.nonzero(dense)
        from_side_mm = np.minimum(
            np.minimum(ys_in + ys.start, ct.shape[1] - 1 - (ys_in + ys.start)) * float(spacing[1]),
            np.minimum(xs_in + xs.start, ct.shape[2] - 1 - (xs_in + xs.start)) * float(spacing[2]),
        )
        by_side = float(np.mean(from_side_mm <= DENSE_SIDE_MM)) >= 0.5
        out.append(
            f"dense material inside the liver found ({dense_ml:.1f} mL above "
            f"{DENSE_LIVER_HU:.0f} HU"
            + (
                f", most of it within {DENSE_SIDE_MM:.0f} mm of the image's side: bone (ribs) "
                "the mask took in where the image cuts the body, or lipiodol, calcification, a "
                "stent or clips): check the mask there; lesions holding such material may be "
                "outlined wrongly"
                if by_side
                else ": lipiodol after chemoembolisation, calcification, a stent or clips): the "
                "models never saw it, and lesions holding it may be outlined wrongly"
            )
        )
    # (a barely enhanced liver is not said: an arterial series, where HCC shows best, has one
    # too, 51-90 HU, and the training phantoms held unenhanced and arterial ones)
    return out


def _joined_to_outside(ct: np.ndarray, liver: np.ndarray, box, spacing) -> np.ndarray:
    """Within the liver's ``box``: its voxels over DENSE_LIVER_HU joined (26-connected,
    through such voxels within DENSE_JOIN_MM around the box) to any outside the liver mask
    (label 0: a tumor's voxels, label 2, are inside it). Three bool arrays of the box and its margin at most, filled 16 slices at a
    time: a full 512² CT is never copied (a box and margin of 7 M voxels: 21 MB)."""
    from scipy import ndimage as ndi

    reach = [int(np.ceil(DENSE_JOIN_MM / float(v))) for v in spacing]
    outer = tuple(
        slice(max(0, b.start - r), min(n, b.stop + r))
        for b, r, n in zip(box, reach, ct.shape, strict=True)
    )
    shape = tuple(o.stop - o.start for o in outer)
    dense = np.empty(shape, bool)
    seed = np.empty(shape, bool)
    for k in range(0, shape[0], 16):
        z = slice(outer[0].start + k, min(outer[0].start + k + 16, outer[0].stop))
        part = dense[k : k + z.stop - z.start]
        np.greater(np.asarray(ct[z, outer[1], outer[2]]), DENSE_LIVER_HU, out=part)
        np.logical_and(part, liver[z, outer[1], outer[2]] == 0, out=seed[k : k + z.stop - z.start])
    # (the mask as int8: scipy would copy a bool one into int8 for its iterations)
    joined = ndi.binary_propagation(
        seed, structure=np.ones((3, 3, 3), bool), mask=dense.view(np.int8)
    )
    del seed, dense
    inner = tuple(
        slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer, strict=True)
    )
    return np.ascontiguousarray(joined[inner])


#: A whole liver found smaller than this (mL, tumor included) is said to be unusually small:
#: an adult's is 1.2-2 L, and a shrunken cirrhotic one seldom under 0.7 L; the models missed
#: liver on small bodies (a phantom scaled to 60 %: Dice 0.83-0.93) without a word.
LIVER_SMALL_ML = 600.0


def _liver_small_warning(liver: np.ndarray, spacing) -> str | None:
    """A warning when the (whole) liver found is smaller than an adult's ever is, else None."""
    ml = float(np.count_nonzero(liver)) * float(np.prod([float(v) for v in spacing])) / 1000.0
    if ml >= LIVER_SMALL_ML:
        return None
    return (
        f"the liver found is {ml:.0f} mL, smaller than an adult's liver (1.2-2 L; a shrunken "
        "cirrhotic one seldom under 0.7 L): a child's scan, or liver the models missed (they "
        "were trained on adult-sized phantoms and do worse on small bodies); check the mask"
    )


#: the liver's noise on the tumor stage's input grid (HU, :func:`stage_noise_hu`) from which
#: a warning is given: on 6 phantoms with noise added (benchmarks/bench_noise.py, 6 Dec 2026)
#: up to 33 HU there (41 HU on the CT's own grid) left each case's tumor Dice within 0.08; at
#: 47 HU one case lost 0.25, at 66 HU the mean fell by 0.10 (liver Dice within 0.01 throughout)
NOISE_WARN_HU = 40.0


def stage_noise_hu(x, hu_window) -> float | None:
    """A robust SD (HU) of one voxel's noise in the liver on the tumor stage's input grid:
    the median absolute difference of in-plane neighbours (/ √2, × 1.4826) inside the liver
    eroded by two voxels (outside it the input is masked to the window's floor, 0). The CT is
    averaged onto that grid (2.5 × 2 × 2 mm for the shipped model), so a thin-slice scan's
    noise counts as the model sees it. Liver texture sets a floor of about 5 HU. None for
    fewer than 1000 neighbour pairs."""
    from scipy import ndimage as ndi

    a = x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, np.float32)
    inside = ndi.binary_erosion(a > 0, iterations=2)
    diffs = []
    for axis in (1, 2):
        m = np.moveaxis(inside, axis, -1)
        v = np.moveaxis(a, axis, -1)
        pairs = m[..., 1:] & m[..., :-1]
        diffs.append((v[..., 1:] - v[..., :-1])[pairs])
    d = np.concatenate(diffs)
    if d.size < 1000:
        return None
    mad = float(np.median(np.abs(d - np.median(d))))
    return 1.4826 * mad / np.sqrt(2.0) * (float(hu_window[1]) - float(hu_window[0]))


def _noise_warning(noise_hu: float | None) -> str | None:
    """A warning when the liver is noisier than the tumor model has been measured to stand."""
    if noise_hu is None or noise_hu < NOISE_WARN_HU:
        return None
    return (
        f"the liver is very noisy for the tumor model (about {noise_hu:.0f} HU SD after "
        "averaging to its grid; from about 40 HU tumor outlines and small lesions came out "
        "worse on our phantoms, the liver not): a low-dose or very thin-slice series, or a "
        "large patient; check the tumor outlines, or segment a thicker reconstruction of the "
        "same scan"
    )


#: below this spread of HU inside the liver found, the image holds no scanned tissue: every CT
#: has noise (about 8-30 HU SD in the liver; the strongest denoising leaves several HU)
MIN_LIVER_SD_HU = 1.0


#: Water-density fluid in the liver found (tumor aside): a share at least this large …
LIVER_FLUID_SHARE = 0.2
#: … beside at least this share of liver tissue (≥ 45 HU), denser by at least this many HU
LIVER_TISSUE_SHARE = 0.15
LIVER_FLUID_GAP_HU = 40.0
#: how far in from the liver's outline (on its slice) fluid is looked for
FLUID_DEPTH_MM = 3.0


def liver_fluid_share(ct: np.ndarray, labels: np.ndarray, spacing) -> dict | None:
    """How much of the liver found (label 1, at least 3 mm in from its outline on its slice)
    is at water density (−25…25 HU, the CT smoothed over 1.5 mm: noise of a liver's 10-30 HU
    SD falls to a few HU), how much is liver tissue (≥ 45 HU: a liver is 50-65 HU unenhanced,
    more with contrast) and their median HU. The outline's own 3 mm are left out: there the
    smoothed CT mixes liver with the fat or lung beside it (water-dense in passing on every
    scan), while fluid taken for liver lies deeper. None for a liver under 1000 voxels of the
    grid looked at (every second voxel in-plane under 1 mm)."""
    from scipy import ndimage as ndi

    liver = labels > 0  # (a lesion is no outline: its own edge is not left out)
    if not (labels == 1).any():
        return None
    box = _bbox(liver, margin_mm=3.0, spacing=spacing)
    sy = 2 if float(spacing[1]) < 1.0 else 1
    sx = 2 if float(spacing[2]) < 1.0 else 1
    sub = ct[box][:, ::sy, ::sx].astype(np.float32)
    inside = liver[box][:, ::sy, ::sx]
    tissue_of = labels[box][:, ::sy, ::sx] == 1
    grid = (float(spacing[0]), float(spacing[1]) * sy, float(spacing[2]) * sx)
    smooth = ndi.gaussian_filter(sub, sigma=[1.5 / g for g in grid])
    deep = np.zeros(inside.shape, bool)
    for k in np.flatnonzero(inside.any(axis=(1, 2))):
        deep[k] = ndi.distance_transform_edt(inside[k], sampling=grid[1:]) >= FLUID_DEPTH_MM
    values = smooth[deep & tissue_of]
    if values.size < 1000:
        return None
    water = (values > -25) & (values < 25)
    tissue = values >= 45
    return {
        "water_share": float(water.mean()),
        "tissue_share": float(tissue.mean()),
        "water_hu": float(np.median(values[water])) if water.any() else None,
        "tissue_hu": float(np.median(values[tissue])) if tissue.any() else None,
        "water_ml": float(water.sum()) * float(np.prod(grid)) / 1000.0,
    }


def _liver_fluid_warning(ct: np.ndarray, labels: np.ndarray, spacing) -> str | None:
    """A warning when a large part of the liver found is water-dense beside liver tissue (the
    liver model takes fluid around a cirrhotic liver for liver: Dice 0.66-0.71 on phantoms
    with ascites, and nothing said), else None. A liver fatty throughout is of one density (no
    tissue share), so it is not taken for fluid; one fatty in parts beside spared tissue is,
    and the warning names it among the causes."""
    found = liver_fluid_share(ct, labels, spacing)
    if (
        found is None
        or found["water_share"] < LIVER_FLUID_SHARE
        or found["tissue_share"] < LIVER_TISSUE_SHARE
        or found["tissue_hu"] - found["water_hu"] < LIVER_FLUID_GAP_HU
    ):
        return None
    return (
        f"{found['water_share']:.0%} of the liver found (about {found['water_ml']:.0f} mL, "
        f"its outline aside) is at water density ({found['water_hu']:.0f} HU) beside liver "
        f"tissue at {found['tissue_hu']:.0f} HU: fluid around the liver (ascites) or the gallbladder "
        "taken for liver, a large cyst or necrosis not marked as tumor, or a fatty part of the "
        "liver; check the outline (the liver volume may be too large)"
    )


#: mean HU of the liver found outside which it is no liver: unenhanced 40-70 HU, a severely
#: fatty liver down to about -30, a portal venous one up to about 150 (iron, amiodarone and
#: lipiodol raise it, not to 250); a block of fat (-100) was measured as a 1.5 L liver unsaid
LIVER_MEAN_HU_RANGE = (-40.0, 250.0)


def _liver_attenuation_warning(ct: np.ndarray, labels: np.ndarray) -> str | None:
    """A warning when the liver found averages an attenuation no liver has (fat, air, bone),
    else None."""
    step = (slice(None, None, 2),) * 3
    values = ct[step][labels[step] == 1]
    if values.size < 100:
        return None
    mean = float(np.mean(values, dtype=np.float64))
    low, high = LIVER_MEAN_HU_RANGE
    if low <= mean <= high:
        return None
    what = "fat's or air's" if mean < low else "bone's or contrast's"
    return (
        f"the liver found averages {mean:.0f} HU, {what}, not a liver's (about 40-70 HU "
        "without contrast, up to about 150 with; a very fatty liver near -30): its masks and "
        "volume are likely not of a liver; check the scan (an abdominal CT in HU?)"
    )


def _liver_texture_warning(ct: np.ndarray, labels: np.ndarray) -> str | None:
    """A warning when the liver found is one value throughout (a drawn box, a label map scaled
    into the HU range), else None: the models call any smooth soft-tissue blob liver."""
    step = (slice(None, None, 2),) * 3  # every 8th voxel: plenty for a spread, 8× less work
    values = ct[step][labels[step] == 1]
    if values.size < 100:
        return None
    sd = float(np.std(values, dtype=np.float64))
    if sd >= MIN_LIVER_SD_HU:
        return None
    return (
        f"the liver found is of one value throughout (SD {sd:.2g} HU; a scanned liver's noise "
        "alone is several HU): the image does not look like a scan; check the file (a drawn "
        "phantom, a label map or a mask in HU?)"
    )


def _liver_cut_warning(liver: np.ndarray, spacing) -> str | None:
    """A warning when the liver runs into the first or last slice (standard orientation: z
    up), else None: the scan may have cut it, and its volume is then a lower bound."""
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    ends = []
    sides = ((liver.shape[0] - 1, "top (head end)"), (0, "bottom (feet end)"))
    if liver.shape[0] == 1:
        sides = ((0, "only"),)  # (one slice: not named twice)
    for z, where in sides:
        area = float(np.count_nonzero(liver[z] == 1)) * pixel_mm2
        if area >= LIVER_CUT_MM2:
            ends.append(f"{where} slice ({area / 100:.0f} cm² of liver there)")
    if not ends:
        return None
    text = (
        f"the liver reaches the scan's {' and its '.join(ends)}: part of it may lie outside "
        "the scanned range, so its volume is a lower bound"
    )
    span = liver.shape[0] * float(spacing[0])
    if (len(ends) == 2 or liver.shape[0] == 1) and span < SHORT_SCAN_MM:
        # a few slices through the liver: the models see little around it, and the tumor
        # found grew (43 voxels of a full scan's result became 81–195 on 3–6 slices)
        text += (
            f". The scan covers only {span:.0f} mm along the body: with so little around the "
            "liver the masks are less reliable, the tumor's above all (it may come out larger "
            "or smaller than it is); check them slice by slice"
        )
    else:
        text += " (and so is the tumor's, for tumor beyond the cut)"
    return text


#: the liver this close (mm) to an in-plane edge of the image where the body runs off it
#: (a liver found touching the edge was found ending up to 21 mm short of it: 15 missed some)
LIVER_EDGE_MM = 25.0
#: share of that edge (on the liver's slices) in the body that says the field of view cuts it
BODY_ON_EDGE = 0.1


def _liver_edge_warning(ct: np.ndarray, labels: np.ndarray, spacing) -> str | None:
    """A warning when the liver comes within ``LIVER_EDGE_MM`` of an in-plane edge of the
    image across which the body runs (standard orientation: y → back, x → patient's left).

    A field of view cropped to the liver, or cut through it, gave a liver of 619 or 155 mL
    instead of 1071 without a word: the first/last-slice check sees only the scan's ends, and
    the found liver stops short of the cut edge. Between a whole liver and the image's edge
    there is the body wall, or air when the body fits the field of view.
    """
    zs = np.flatnonzero(labels.any(axis=(1, 2)))
    if not zs.size:
        return None
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    rows = np.zeros(labels.shape[1], bool)  # the liver's extent along y and x, its slices
    cols = np.zeros(labels.shape[2], bool)
    for z in range(z0, z1):
        liver = labels[z] == 1
        rows |= liver.any(axis=1)
        cols |= liver.any(axis=0)
    names = {(1, 0): "front", (1, 1): "back", (2, 0): "right", (2, 1): "left"}
    sides = []
    for axis, extent in ((1, rows), (2, cols)):
        idx = np.flatnonzero(extent)
        if not idx.size:
            continue
        n = labels.shape[axis]
        for high in (0, 1):
            gap = (n - 1 - int(idx[-1]) if high else int(idx[0])) * float(spacing[axis])
            if gap > LIVER_EDGE_MM:
                continue
            edge = np.take(ct[z0:z1], n - 1 if high else 0, axis=axis)
            if float(np.mean(edge > -500)) >= BODY_ON_EDGE:
                sides.append(f"{gap:.0f} mm of the image's {names[(axis, high)]} edge")
    if not sides:
        circle = _fov_circle_gap(ct[z0:z1], labels[z0:z1], spacing)
        if circle is None:
            return None
        sides = [f"{circle:.0f} mm of the scan's round field of view (its reconstruction circle)"]
    where = sides[0] if len(sides) == 1 else f"{', '.join(sides[:-1])} and {sides[-1]}"
    return (
        f"the liver comes to {where}, where the field of view cuts the body: part of it may "
        "lie outside the image, and near that edge the mask is less sure (liver missed, or "
        "drawn past what the image shows), so its volume (and any tumor there) is uncertain "
        "and most likely low"
    )


#: at or below this (HU) a voxel is padding outside the scanner's reconstruction circle
#: (-2048, -3024 and the like as read; air is about -1000)
PADDING_HU = -1500
#: share of the circle's inner rim near the liver that is body (not air) when the circle cuts it
BODY_ON_CIRCLE = 0.3


def _fov_circle_gap(ct: np.ndarray, labels: np.ndarray, spacing) -> float | None:
    """mm from the liver to the round field of view's edge when that circle cuts the body near
    it (a large patient, a small reconstruction field), else None. ``ct`` and ``labels`` are
    the liver's slices.

    Outside the circle most scanners write padding far below air; a body cut by the circle has
    tissue on the circle's inner rim, one that fits has air there. Corners of plain air (-1000,
    -1024) cannot be told from the air around a body (clamped air reads -1024 on every slice
    too, and its rim is the skin): not looked at. The image's straight edges
    are :func:`_liver_edge_warning`'s: the circle touches them only at four points, and a liver
    cut by the circle went unsaid."""
    from scipy import ndimage as ndi

    outside = np.all(ct <= PADDING_HU, axis=0)  # padding on every slice of the liver
    if not outside.any():
        return None
    pieces, _ = ndi.label(outside)
    corners = {int(pieces[0, 0]), int(pieces[0, -1]), int(pieces[-1, 0]), int(pieces[-1, -1])}
    corners.discard(0)
    if not corners:  # padding only in a pocket (a converter's fill), not around a circle
        return None
    outside = np.isin(pieces, sorted(corners))
    pixel = (float(spacing[1]), float(spacing[2]))
    to_circle = ndi.distance_transform_edt(~outside, sampling=pixel)
    liver = (labels == 1).any(axis=0)
    if not liver.any():
        return None
    gap = float(to_circle[liver].min())
    if gap > LIVER_EDGE_MM:
        return None
    near_liver = ndi.distance_transform_edt(~liver, sampling=pixel) <= 2 * LIVER_EDGE_MM
    rim = (to_circle > 0) & (to_circle <= 2 * max(pixel)) & near_liver
    if not rim.any() or float(np.mean(ct[:, rim] > -500)) < BODY_ON_CIRCLE:
        return None  # air between the body and the circle: the body fits in it
    return gap


#: bone in HU (a skull is 700–2000; contrast-filled vessels stay under it)
BONE_HU = 450.0
#: share of the found "liver" that may lie inside a closed ring of bone (a brain: all of it;
#: a liver with a dense rim inside it, lipiodol or a calcified cyst, keeps its own edge outside)
MAX_ENCLOSED_BY_BONE = 0.8
#: a skull has air this close outside it (past the scalp), on at least this share of that band
SKULL_AIR_MM = 15.0
SKULL_AIR_SHARE = 0.1


def _inside_skull(
    ct: np.ndarray, liver: np.ndarray, spacing=(1.0, 1.0, 1.0), hu_suspect: bool = False
) -> str | None:
    """A "no liver" message when most of the found organ lies inside closed rings of bone.

    In an axial slice a skull is a closed ring of bone with the scalp and then air just outside
    it; the ribs and spine around a liver are not closed (rib segments, cartilage). So a brain
    taken for a liver is told apart by filling the bone's holes slice by slice and asking how
    much of the organ falls in them, and the ring is confirmed as a skull by air within
    ``SKULL_AIR_MM`` outside it (a dense rim inside a liver, e.g. lipiodol after TACE or a
    calcified cyst, has liver around it, not air).
    """
    from scipy import ndimage as ndi

    zs = np.flatnonzero(liver.any(axis=(1, 2)))
    zs = zs[:: max(1, zs.size // 24)]
    organs = {int(z): liver[z] == 1 for z in zs}
    counts = {z: int(np.count_nonzero(organ)) for z, organ in organs.items()}
    total = sum(counts.values())
    if total == 0:
        return None
    inside = seen = 0
    best = (0, None, None)  # the slice with most organ enclosed, and its enclosure
    # the slices with most organ first, and no further once the share enclosed can no longer
    # pass MAX_ENCLOSED_BY_BONE (a liver's first slices settle it: 0.2 s -> a few ms)
    for z in sorted(counts, key=lambda k: -counts[k]):
        if inside + (total - seen) <= MAX_ENCLOSED_BY_BONE * total:
            return None
        seen += counts[z]
        bone = ct[z] > BONE_HU
        if not counts[z] or not bone.any():
            continue
        # holes filled within the bone's bounding box: the same holes as in the whole slice
        ys, xs = np.flatnonzero(bone.any(axis=1)), np.flatnonzero(bone.any(axis=0))
        box = (slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1))
        filled = np.zeros_like(bone)
        filled[box] = ndi.binary_fill_holes(bone[box])
        n = int(np.count_nonzero(filled & organs[z]))
        if n > best[0] or (n and n == best[0] and z < best[1]):  # (a tie: the lowest slice)
            best = (n, z, filled)
        inside += n
    if inside <= MAX_ENCLOSED_BY_BONE * total:
        return None
    if hu_suspect:  # values off: "bone" is then anything bright, not a skull
        return (
            f"no liver found: {100 * inside / total:.0f} % of the organ the liver model picked "
            "lies inside regions brighter than bone would be in Hounsfield units — the values "
            "are not HU (see the warning above)"
        )
    _, z, filled = best
    near = ndi.distance_transform_edt(~filled, sampling=tuple(spacing)[1:]) <= SKULL_AIR_MM
    shell = near & ~filled
    if not shell.any() or np.mean(ct[z][shell] < -500) < SKULL_AIR_SHARE:
        return None  # a closed dense ring with no air outside it: not a skull
    return (
        f"no liver found: the organ the liver model picked lies inside closed rings of bone "
        f"({100 * inside / total:.0f} % of it) with air just outside them, as a brain inside a "
        "skull does — is this a head CT? The liver model needs an abdominal CT"
    )


def _channel(label_map: dict, name: str, default: int) -> int:
    for k, v in (label_map or {}).items():
        if str(v).lower() == name:
            return int(k)
    return int(default)


def _organ_channels(label_map: dict, out_channels: int) -> list[int]:
    """The liver stage's organ: every channel but background (a liver model that also labels
    tumors, background/liver/tumor, has its tumors inside the liver: taken as channel "liver"
    alone, a tumor at the liver's surface fell outside the liver, and the tumor stage, which
    looks inside the liver only, missed it). Without a channel named background: the
    channels named liver and tumor."""
    names = {int(k): str(v).strip().lower() for k, v in (label_map or {}).items()}
    bg = [c for c, n in names.items() if n == "background"]
    liver = _channel(label_map, "liver", default=1)
    if not bg:
        organ = sorted({liver} | {c for c, n in names.items() if n == "tumor"})
        # every channel the organ (liver/tumor, nothing else): the liver channel against
        # the others, as before (there is nothing to win against)
        return organ if len(organ) < out_channels else [liver]
    return [c for c in range(out_channels) if c != bg[0]]


def _organ_score(logits, channels: list[int]):
    """``max(logits[channels]) - max(other logits)``: > 0 exactly where the argmax is one of
    ``channels``. One channel of two: ``logit[channel] - logit[other]``, as
    :func:`_margin_score` (the same values, bit for bit)."""
    import torch

    if len(channels) == 1:
        return _margin_score(logits, channels[0])
    others = [c for c in range(logits.shape[0]) if c not in channels]
    best = logits[channels].amax(0)
    best_other = logits[others].amax(0) if len(others) > 1 else logits[others[0]]
    return (best - best_other).contiguous().to(torch.float32)


def _margin_score(logits, channel: int):
    """``logit[channel] - max(other logits)``: > 0 exactly where argmax == channel."""
    import torch

    others = [c for c in range(logits.shape[0]) if c != channel]
    best_other = logits[others].amax(0) if len(others) > 1 else logits[others[0]]
    return (logits[channel] - best_other).contiguous().to(torch.float32)


def _force_sign(score, mask: np.ndarray, eps: float = 1e-3):
    """Make ``score`` positive exactly on ``mask`` (after post-processing), keeping magnitudes."""
    import torch

    m = torch.from_numpy(np.ascontiguousarray(mask)).to(score.device)
    return torch.where(m, score.clamp(min=eps), score.clamp(max=-eps))


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected part of ``mask``, voxels touching by a corner counting as
    connected, as lesions, the lesion filter and the stats count them (and as MONAI's
    ``KeepLargestConnectedComponent`` does by default): with faces only, a lobe joined by a
    diagonal bridge on the coarse liver grid was dropped (a fresh phantom's 2589 voxels, 1756
    of them liver: Dice 0.9704 → 0.9709; 3 of 24 benchmark phantoms changed at all)."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(sizes.argmax())


def _bbox(mask: np.ndarray, margin_mm: float, spacing) -> tuple[slice, slice, slice]:
    idx = (
        np.nonzero(mask.any(axis=(1, 2))),
        np.nonzero(mask.any(axis=(0, 2))),
        np.nonzero(mask.any(axis=(0, 1))),
    )
    box = []
    for ax in range(3):
        nz = idx[ax][0]
        pad = int(np.ceil(margin_mm / spacing[ax]))
        box.append(slice(max(int(nz[0]) - pad, 0), min(int(nz[-1]) + 1 + pad, mask.shape[ax])))
    return tuple(box)  # type: ignore[return-value]


def default_num_threads() -> int:
    """Cores this process may use (respects CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def usable_threads(asked: int) -> tuple[int, str | None]:
    """The CPU threads torch gets for ``asked`` (0: every core this process may use), and a
    warning where more were asked for than that: they were used (999 threads on 2 cores took
    67-82 s where 2 took 5 s: threads beyond the cores wait for each other), unsaid."""
    cores = default_num_threads()
    if asked == 0:
        return cores, None
    if asked > cores:
        return cores, (
            f"{asked} CPU threads asked for, more than the {cores} core(s) this process may "
            f"use: {cores} used (threads beyond the cores only wait for each other)"
        )
    return asked, None


__all__ = [
    "DeviceUnavailable",
    "InferenceConfig",
    "SegmentationResult",
    "as_inference_config",
    "Segmenter",
    "refine_labels",
    "resolve_device",
    "check_volume",
    "segment_ct",
    "tumor_mask_from_score",
]
