"""Model folders: ``model.safetensors`` (weights, no pickle) + ``metadata.json``.

Loading a model never unpickles anything, so opening a model file cannot run code. Every way a
folder can be unusable (missing, truncated, wrong stage, weights that don't fit the declared
network) raises :class:`~napari_livertumor.errors.ModelError` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ModelError
from ..fileio import atomic_write_bytes, read_user_json
from ..memory import out_of_memory
from .factory import NetworkConfig, build_inference_network, trunk_state_dict

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
STAGES = ("liver", "tumor")


@dataclass
class ModelMetadata:
    """Everything inference needs to use a model, plus where it came from.

    Attributes
    ----------
    stage : {"liver", "tumor"}
    network : NetworkConfig
    hu_window : (float, float)
        HU range mapped linearly to [0, 1] (clipped) before the network.
    target_spacing : (float, float, float)
        ``(dz, dy, dx)`` mm the CT is resampled to for this stage.
    roi_size : (int, int, int)
        Sliding-window / training patch size ``(z, y, x)``.
    label_map : dict
        Output channel index (as str) → class name.
    mask_outside_liver : bool
        Tumor stage: voxels outside the (predicted) liver are set to ``outside_hu``.
    outside_hu : float
    roi_margin_mm : float
        Tumor stage: margin around the liver bounding box.
    training : dict
        Data, split, config and seeds the model was trained with.
    metrics : dict
        Validation / test scores, with how they were measured.
    logit_bias : tuple of float, optional
        Added to the network's output logits (one value per channel) before the argmax: the
        decision threshold chosen on the validation patients (class weights and foreground-heavy
        patch sampling move a network's class boundary; this moves it back where validation says
        so). ``None``: no shift.
    members : int
        Networks in the folder. Above 1 the folder is an ensemble (``livertumor ensemble``):
        same network and geometry, weights stored under ``members.<i>.``, and the logits are
        the members' mean (before ``logit_bias``), as nnU-Net averages its folds.
    lesion_filter : dict, optional
        Tumor stage: the post-processing chosen with the model on development patients,
        ``{"min_ml": float, "min_peak": float}`` (see
        :func:`napari_livertumor.pipeline.tumor_mask_from_score`). Used when the inference
        config leaves these unset. ``None``: the pipeline's defaults.
    weights_sha1 : str, optional
        SHA-1 of the ``model.safetensors`` written with this metadata (set by
        :func:`save_model`). :func:`load_model` refuses other weights under it: the metadata's
        calibration (``logit_bias``, ``lesion_filter``) and scores belong to these weights.
        ``None`` (folders written before 2026-12-05): not checked.
    """

    stage: str
    network: NetworkConfig
    hu_window: tuple[float, float]
    target_spacing: tuple[float, float, float]
    roi_size: tuple[int, int, int]
    label_map: dict[str, str]
    mask_outside_liver: bool = False
    outside_hu: float = -1000.0
    roi_margin_mm: float = 10.0
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    logit_bias: tuple[float, ...] | None = None
    members: int = 1
    lesion_filter: dict[str, float] | None = None
    weights_sha1: str | None = None
    version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["network"] = self.network.to_dict()
        d["hu_window"] = list(self.hu_window)
        d["target_spacing"] = list(self.target_spacing)
        d["roi_size"] = list(self.roi_size)
        if self.logit_bias is not None:
            d["logit_bias"] = list(self.logit_bias)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMetadata:
        if not isinstance(d, dict):
            raise ValueError("metadata.json must hold a JSON object")
        unknown = _unknown_fields(d)
        if unknown and not _newer(str(d.get("version", ""))):
            # a misspelt setting is not used: "mask_outside_livers" ran the tumor stage
            # unmasked (1580 mL of tumor for 11); refused, not dropped (a newer release's
            # settings are said below). A near-miss of a descriptive field (weights_sha256,
            # versions, metric) changes no result: warned of by read_metadata, as other
            # unknown keys are
            near = {k: _near_field(k) for k in unknown}
            typos = [
                f"{k!r} (did you mean {n[0]!r}?)"
                for k, n in near.items()
                if n is not None and n[1] >= TYPO_RATIO and n[0] in INFERENCE_FIELDS
            ]
            if typos:
                raise ValueError(
                    f"unknown field(s) {', '.join(typos)}: a misspelt field is not used, which "
                    "changes the results (a note of your own: start its name with '_' or '#')"
                )
        needed = [
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [k for k in needed if d.get(k) is None]  # a null: as missing, named
        if isinstance(d.get("network"), dict):
            # a missing one took NetworkConfig's default, and a mismatch was then said of a
            # value metadata.json does not hold ("metadata.json says [8, 1, 3, 3, 3]")
            missing += [
                f"network.{k}" for k in REQUIRED_NETWORK_FIELDS if d["network"].get(k) is None
            ]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        d = dict(d)
        for key in ("hu_window", "target_spacing", "roi_size", "logit_bias"):
            # a string is iterable: "12" read as the two values 1 and 2
            if d.get(key) is not None and (
                isinstance(d[key], (str, bytes, dict)) or not hasattr(d[key], "__iter__")
            ):
                raise ValueError(f"{key} must be a list of numbers, got {d[key]!r}")
        d["network"] = NetworkConfig.from_dict(d["network"])
        net = d["network"]
        if net.out_channels < 2:  # a softmax over background and at least one class
            raise ValueError(
                f"network out_channels must be at least 2 (background and a class), got "
                f"{net.out_channels}"
            )
        if net.in_channels != 1:  # it loaded, then every case failed in a torch conv
            raise ValueError(
                f"network.in_channels is {net.in_channels}: the pipeline gives its models one "
                "input channel (the CT), so a model must take in_channels 1"
            )
        d["hu_window"] = tuple(_number(v, "hu_window") for v in d["hu_window"])
        d["target_spacing"] = tuple(_number(v, "target_spacing") for v in d["target_spacing"])
        d["roi_size"] = tuple(_whole(v, "roi_size") for v in d["roi_size"])
        win = d["hu_window"]
        if len(win) != 2 or not (all(map(math.isfinite, win)) and win[0] < win[1]):
            raise ValueError(f"hu_window must be two finite values, low < high; got {list(win)}")
        if not all(abs(v) <= MAX_HU for v in win):  # [-1e308, 1e308] overflowed on the CT
            raise ValueError(f"hu_window must lie within ±{MAX_HU:g} HU; got {list(win)}")
        ts = d["target_spacing"]
        if len(ts) != 3 or not all(math.isfinite(v) and v > 0 for v in ts):
            raise ValueError(f"target_spacing must be three positive sizes in mm; got {list(ts)}")
        lo, hi = TARGET_SPACING_RANGE_MM
        if not all(lo <= v <= hi for v in ts):  # 500 mm failed deep in torch, 0.01 mm asked 176 GB
            raise ValueError(
                f"target_spacing must lie between {lo:g} and {hi:g} mm (a CT grid); got {list(ts)}"
            )
        f = d["network"].downsample_factor
        roi = d["roi_size"]
        if len(roi) != 3 or any(v < f or v % f for v in roi):
            raise ValueError(
                f"roi_size must be three sizes, each a positive multiple of {f} (the network "
                f"down-samples by {f}); got {list(roi)}"
            )
        if d.get("logit_bias") is not None:
            bias = tuple(_number(v, "logit_bias") for v in d["logit_bias"])
            if len(bias) != d["network"].out_channels or not all(map(math.isfinite, bias)):
                raise ValueError(
                    f"logit_bias needs {d['network'].out_channels} finite values, got {list(bias)}"
                )
            d["logit_bias"] = bias
        if d.get("lesion_filter") is not None:
            lf = d["lesion_filter"]
            if not isinstance(lf, dict) or set(lf) - {"min_ml", "min_peak"}:
                raise ValueError(f"lesion_filter must hold min_ml and/or min_peak, got {lf!r}")
            lf = {k: _number(v, f"lesion_filter {k}") for k, v in lf.items()}
            if any(not math.isfinite(v) or v < 0 for v in lf.values()):
                raise ValueError(f"lesion_filter values must be finite and >= 0, got {lf}")
            d["lesion_filter"] = lf
        sha = d.get("weights_sha1")
        if sha is not None and not (
            isinstance(sha, str) and len(sha) == 40 and all(c in "0123456789abcdef" for c in sha)
        ):
            raise ValueError(f"weights_sha1 must be 40 lower-case hex digits, got {sha!r}")
        if not isinstance(d.get("mask_outside_liver", False), bool):
            raise ValueError(
                f"mask_outside_liver must be true or false, got {d['mask_outside_liver']!r}"
            )
        for key, low, high in (
            ("outside_hu", -MAX_HU, MAX_HU),
            ("roi_margin_mm", 0.0, MAX_MARGIN_MM),
        ):
            if key in d:
                v = d[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ValueError(f"{key} must be a finite number, got {v!r}")
                if not low <= v <= high:
                    raise ValueError(f"{key} must lie between {low:g} and {high:g}, got {v!r}")
                d[key] = float(v)
        for key in ("training", "metrics"):  # read as objects by fine-tuning and the cards
            if d.get(key) is not None and not isinstance(d[key], dict):
                raise ValueError(f"{key} must be an object of fields, not {type(d[key]).__name__}")
        trained = _trained_groups(d.get("training"))
        if trained is not None and net.is_group_norm and net.groups != trained:
            # group norm's count is not in the weights: 8 groups over a run's 4 found a
            # 20.9 L liver where the model finds 14.9 L, without a word
            given = (
                f"is {net.groups}"
                if net.norm_groups is not None
                else f"is not given, so MONAI's default {net.groups} would be used"
            )
            raise ValueError(
                f"network.norm_groups {given}, but training.config.network.norm_groups, the "
                f"count this model was trained with, is {trained}: group norm's count is not "
                "stored in the weights, and another one gives other masks without an error. "
                f"Set network.norm_groups to {trained} if the weights are that run's"
            )
        d["label_map"] = _label_map(d["label_map"], d["network"].out_channels)
        d["members"] = _whole(d.get("members", 1), "members")
        if not 1 <= d["members"] <= MAX_MEMBERS:
            raise ValueError(f"members must be from 1 to {MAX_MEMBERS}, got {d['members']}")
        known = set(cls.__dataclass_fields__)
        if unknown and _newer(str(d.get("version", ""))):
            # a later release's model may rely on settings this one would silently drop
            raise ValueError(
                f"written by napari-livertumor {d['version']}, newer than this "
                f"{__version__}, with settings this version does not know "
                f"({', '.join(unknown[:5])}): update napari-livertumor to use it"
            )
        return cls(**{k: v for k, v in d.items() if k in known})


#: the ``network`` fields a model's metadata.json must give (what its weights mean); the
#: others (dropout_prob and the VAE branch's) play no part at inference and default as in
#: NetworkConfig, and norm_groups, group norm's count, defaults to MONAI's 8 (the weights do not
#: record it). (A training recipe's network takes defaults for all: NetworkConfig.from_dict.)
REQUIRED_NETWORK_FIELDS = (
    "in_channels",
    "out_channels",
    "init_filters",
    "blocks_down",
    "blocks_up",
    "norm",
)
#: how alike (difflib's ratio, case ignored) an unknown metadata.json field and a known one
#: must be for the unknown one to be refused as a misspelling of it, not warned of
TYPO_RATIO = 0.8
#: the metadata.json fields that change what inference does: an unknown field this near one of
#: them is refused as its misspelling; one near a descriptive field (weights_sha1, version,
#: training, metrics) is warned of only
INFERENCE_FIELDS = frozenset(
    {"stage", "network", "hu_window", "target_spacing", "roi_size", "label_map",
     "mask_outside_liver", "outside_hu", "roi_margin_mm", "logit_bias", "members",
     "lesion_filter"}
)  # fmt: skip


def _trained_groups(training: Any) -> int | None:
    """The group norm count ``training.config.network`` (the recipe the weights were trained
    with, written beside them by training) says, or None where it says none (no recipe, a
    network of the user's, another norm, a recipe this version cannot read)."""
    config = training.get("config") if isinstance(training, dict) else None
    network = config.get("network") if isinstance(config, dict) else None
    if not isinstance(network, dict):
        return None
    try:
        trained = NetworkConfig.from_dict(network)
    except (TypeError, ValueError):
        return None
    return trained.groups if trained.is_group_norm else None


def _unknown_fields(d: dict) -> list[str]:
    """Top-level keys of a metadata.json object that :class:`ModelMetadata` does not know,
    without the notes (keys starting with ``#`` or ``_``)."""
    known = set(ModelMetadata.__dataclass_fields__)
    return sorted(str(k) for k in d if k not in known and not str(k).startswith(("#", "_")))


def _near_field(key: str) -> tuple[str, float] | None:
    """The known metadata.json field most like ``key`` (case ignored) and how alike, or None
    when none is close (difflib's ratio under 0.6)."""
    import difflib

    best = None
    for name in ModelMetadata.__dataclass_fields__:
        ratio = difflib.SequenceMatcher(None, key.lower(), name).ratio()
        if ratio >= 0.6 and (best is None or ratio > best[1]):
            best = (name, ratio)
    return best


#: target spacings a model may ask for (mm): a CT grid, not a typo's 500 or 0.01
TARGET_SPACING_RANGE_MM = (0.2, 20.0)
#: HU a model's window and outside value may name (a CT's lie within ±32768)
MAX_HU = 100_000.0
#: the widest margin around the liver a tumor model may ask for (1 m: the whole body)
MAX_MARGIN_MM = 1000.0


def _release(v: str) -> tuple[int, ...]:
    """The release numbers of a version (``(0, 1, 0)`` of ``0.1.0rc1``; ``()`` of no version)."""
    # the release numbers only: 0.1.0rc1 and 0.1.dev3 are not later than 0.1.0
    out = []
    for piece in v.strip().split(".")[:3]:
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        out.append(int(digits.group()))
        if digits.group() != piece:  # a pre-release suffix ends the release part
            break
    return tuple(out)


def _newer(version: str) -> bool:
    """Whether ``version`` (major.minor...) is a later release than this package's."""
    theirs, ours = _release(version), _release(__version__)
    return bool(theirs) and theirs > ours


def _version_problem(version: Any) -> str | None:
    """What is wrong with metadata.json's ``version`` (the package release that wrote it, as
    text: ``"0.1.0"``), or None. Descriptive, as the format has it: a newer release's model is
    refused only for settings this one does not know, which needs the version read."""
    if isinstance(version, str) and re.fullmatch(r"\d+(\.\d+){1,2}\S*", version.strip()):
        return None
    return (
        f"version {version!r} is not a napari-livertumor release (text such as "
        f"{__version__!r}): which release wrote this model cannot be told, so it is read as "
        f"this release's ({__version__}) model; save_model writes the version itself"
    )


def _whole(v: Any, key: str) -> int:
    """``v`` as an int when it is a whole number (3 or 3.0, not 3.5, "3" or true)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{key} must hold whole numbers, got {v!r}")
    if not math.isfinite(v) or v != int(v):
        raise ValueError(f"{key} must hold whole numbers, got {v!r}")
    return int(v)


def _number(value: Any, key: str) -> float:
    """A number of metadata.json (true/false is none: ``[true, 2, 2]`` was read as 1 mm; nor is
    a text: ``["2", "2", "2"]`` loaded, and null was said in Python's words)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # "2" or null too
        raise ValueError(f"{key} must hold numbers, got {value!r}")
    return float(value)


def _label_map(lm: Any, channels: int) -> dict[str, str]:
    """The output channel → class name map, each key a channel the network has."""
    if not isinstance(lm, dict) or not lm:
        raise ValueError(f"label_map must map output channels to class names, got {lm!r}")
    out = {}
    for k, v in lm.items():
        try:
            ch = int(k)
        except (TypeError, ValueError):
            ch = -1
        if str(ch) != str(k).strip() or not 0 <= ch < channels or not isinstance(v, str):
            raise ValueError(
                f"label_map entry {k!r}: {v!r} must name one of the network's {channels} "
                f"output channels (0 to {channels - 1}) with a class name"
            )
        out[str(ch)] = v
    names = [v.strip().lower() for v in out.values()]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # every channel "tumor": the whole crop was tumor (1011 mL for 107)
        raise ValueError(f"label_map names {', '.join(map(repr, twice))} for more than one channel")
    return out


@dataclass
class LoadedModel:
    """A ready-to-run trunk network (eval mode) and its metadata."""

    network: Any
    metadata: ModelMetadata
    path: Path


def save_model(
    folder: str | Path,
    state_dict: dict[str, Any],
    metadata: ModelMetadata,
    *,
    half: bool = False,
    trunk_only: bool = True,
) -> Path:
    """Write a model folder atomically (each file written to a temporary name, then renamed).

    Parameters
    ----------
    folder : path
        Created if needed.
    state_dict : dict
        Weights of a ``SegResNetVAE`` or ``SegResNet`` (a DDP ``module.`` prefix is stripped).
    metadata : ModelMetadata
    half : bool
        Store floating-point weights as float16 (halves the size; loaded back as float32).
    trunk_only : bool
        Drop the VAE branch (inference never uses it).
    """
    from safetensors.torch import save

    folder = Path(folder)
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if trunk_only and metadata.members == 1:
        sd = trunk_state_dict(sd, metadata.network)
    tensors = {}
    for k, v in sd.items():
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point():
            v = v.half()
        tensors[k] = v
    data = save(tensors, metadata={"stage": metadata.stage})
    d = metadata.to_dict()
    d["weights_sha1"] = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    atomic_write_bytes(folder / WEIGHTS_FILE, data)
    text = json.dumps(d, indent=2, sort_keys=True, default=_json_default)
    atomic_write_bytes(folder / METADATA_FILE, text.encode())
    return folder


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def check_readable(folder: str | Path) -> None:
    """ModelError naming ``folder`` when it cannot be entered (no execute permission: chmod
    000): Python raised at the first file looked for in it, which was then named
    ("m000/metadata.json: Permission denied", of a file that is not there)."""
    folder = Path(folder)
    try:
        (folder / METADATA_FILE).exists()
    except PermissionError as exc:
        raise cannot_enter(folder) from exc


def cannot_enter(folder: str | Path) -> ModelError:
    """The error of a model folder (or models folder) that cannot be entered."""
    return ModelError(
        folder,
        "this folder cannot be read (permission denied): give your user the rights to read "
        "and enter it (chmod u+rx), or copy the models to a folder of your own",
    )


def read_metadata(folder: str | Path) -> ModelMetadata:
    """Read and validate ``metadata.json`` only (cheap: no torch)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(
            folder,
            "not a folder: a model is a folder" if folder.exists() else "model folder not found",
        )
    check_readable(folder)  # (said of the folder: it was "metadata.json: permission denied")
    interrupted = (folder / ".best-new" / ".complete").is_file()
    if interrupted:  # training.loop._save_best, cut short
        raise ModelError(
            folder,
            "a training run was stopped while it replaced this model's files, so they may not "
            "belong together: the same `livertumor train` command with --resume finishes the "
            "save, as does Start then Resume in the Train panel with the same output folder (or "
            "--force, the Train panel's Replace, replaces the model)",
        )
    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        if (folder / "last" / METADATA_FILE).is_file():  # a run stopped before its first best
            raise ModelError(
                folder,
                "no model here yet: a training run stopped before saving one (its latest "
                f"weights are in {folder / 'last'}, which loads as a model; or finish it with "
                "the same `livertumor train` command and --resume, or Start then Resume in the "
                "Train panel with the same output folder)",
            )
        raise ModelError(folder, "no metadata.json here: not a napari-livertumor model folder")
    try:
        raw = read_user_json(meta_path)  # maybe edited by hand (a BOM, UTF-16)
        meta = ModelMetadata.from_dict(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(meta_path, f"unreadable metadata ({exc})") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(meta_path, f"incomplete or invalid metadata ({exc})") from exc
    if meta.stage not in STAGES:
        raise ModelError(meta_path, f"unknown stage {meta.stage!r}; expected one of {STAGES}")
    names = {str(v).lower() for v in meta.label_map.values()}
    if meta.stage not in names:
        # the pipeline took the last channel for it, unsaid
        # (a tumor model's map names the liver too: a liver model's names only it)
        other = (
            "liver"
            if meta.stage == "tumor" and names == {"background", "liver"}
            else "tumor"
            if meta.stage == "liver" and "tumor" in names
            else None
        )
        raise ModelError(
            meta_path,
            f"label_map {meta.label_map} names no '{meta.stage}' channel: a {meta.stage} "
            f"model's output channels must include the {meta.stage} class"
            + (
                f" (its label_map is a {other} model's: is 'stage' wrong, or is this the "
                f"{other} model?)"
                if other
                else ""
            ),
        )
    if "version" in raw and _version_problem(raw["version"]):
        # "banana" or 2 loaded without a word: a newer release's settings go by it
        warnings.warn(f"{meta_path}: {_version_problem(raw['version'])}", UserWarning, stacklevel=2)
    extra = _unknown_fields(raw)
    if extra:  # a note of the user's, or a setting misspelt past recognition: said, not used
        near = [(k, _near_field(k)) for k in extra]
        hints = [f"{n[0]!r} for {k!r}?" for k, n in near if n is not None]
        warnings.warn(
            f"{meta_path}: field(s) {', '.join(map(repr, extra))} unknown to napari-livertumor "
            f"{__version__}, not used"
            + (f" (did you mean {', '.join(hints)})" if hints else "")
            + "; a note of your own: start its name with '_' or '#'",
            UserWarning,
            stacklevel=2,
        )
    return meta


#: the most members an ensemble may have (one per fold: 5 in nnU-Net's way)
MAX_MEMBERS = 64


#: a training run's resume state, beside the full network in its ``last/`` checkpoint
RESUME_STATE_FILE = "train_state.pt"


def is_resume_checkpoint(folder: str | Path | None, meta: ModelMetadata) -> bool:
    """Whether the model folder ``folder`` (``meta`` its metadata) is a training run's ``last/``
    checkpoint: the run's state for ``--resume`` (:data:`RESUME_STATE_FILE` in it), or a copy
    of one as written (its "last checkpoint" note, no logit shift calibrated, no validation
    score). It loads as a model, but it holds the run's latest step, not its best validated
    and calibrated one; a copy calibrated since (a shift of its own) is a model like any other.
    ``folder`` None (a model in memory): told by its metadata alone."""
    metrics = meta.metrics or {}
    uncalibrated = (
        str(metrics.get("note") or "").startswith("last checkpoint")
        and meta.logit_bias is None
        and "score" not in metrics
    )
    return uncalibrated or (folder is not None and (Path(folder) / RESUME_STATE_FILE).is_file())


def best_model_beside(folder: str | Path | None) -> Path | None:
    """The saved best model of the run whose ``last/`` checkpoint is ``folder``: its stage
    folder (``OUT/<stage>``, holding ``last/``), when that holds a model; else None."""
    if folder is None or Path(folder).name != "last":
        return None
    stage = Path(folder).parent
    return stage if (stage / METADATA_FILE).is_file() else None


def load_model(folder: str | Path, stage: str | None = None, device: Any = "cpu") -> LoadedModel:
    """Load a model folder as an eval-mode ``SegResNet`` trunk on ``device``.

    Raises
    ------
    ModelError
        Missing or corrupt files, a model for another stage, or weights that don't fit.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    folder = Path(folder)
    meta = read_metadata(folder)
    if stage is not None and meta.stage != stage:
        raise ModelError(folder, f"this is a {meta.stage} model; a {stage} model is needed here")
    weights = _weights_there(folder)
    try:  # said as the system says it (safetensors said "No such file" of a file not readable)
        with open(weights, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ModelError(weights, exc.strerror or str(exc)) from exc
    try:
        sd = load(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        if out_of_memory(exc) is not None:  # torch's "can't allocate memory": not a corrupt file
            raise
        raise ModelError(
            weights,
            f"corrupt or unreadable weights ({_safetensors_words(exc, data)})"
            f"{_pickle_hint(weights)}",
        ) from exc
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    _check_size(weights, meta, sd)  # before building a network metadata.json may have grown
    try:  # its random first weights, replaced at once, drawn on a copy of the random state
        # (loading a model left a script's random numbers moved on)
        with torch.random.fork_rng(devices=[]):
            if meta.members > 1:
                from .ensemble import MeanEnsemble

                net = MeanEnsemble(
                    [build_inference_network(meta.network) for _ in range(meta.members)]
                )
            else:
                net = build_inference_network(meta.network)
    except (MemoryError, RuntimeError) as exc:  # torch's "can't allocate memory" is one
        raise ModelError(
            folder / "metadata.json",
            f"the network it describes cannot be built here ({str(exc).splitlines()[0]})",
        ) from exc
    if meta.members <= 1:
        # the training network's own VAE branch is left out; any other tensor the network
        # described has no place for means metadata.json describes less than the weights
        # hold (blocks_down [1, 2, 2, 2] over [1, 2, 2, 4]: another network, silently cut)
        trunk = set(net.state_dict())
        extra = [k for k in sd if k not in trunk and not k.startswith(VAE_PREFIXES)]
        prefix = _wrapper_prefix(net, sd) if extra else None
        if prefix:  # said as such, not as 33 missing and 33 unexpected tensors
            raise ModelError(weights, _prefix_text(prefix, net, weights))
        if extra:
            raise ModelError(
                weights,
                "weights do not match the network in metadata.json: "
                + _mismatch(net, {k: v for k, v in sd.items() if not k.startswith(VAE_PREFIXES)})
                + _norm_hint(sd, meta.network),
            )
        sd = trunk_state_dict(sd, meta.network)
    _check_values(weights, net, sd)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        prefix = _wrapper_prefix(net, sd)
        if prefix:  # an ensemble's (members.0. under module.)
            raise ModelError(weights, _prefix_text(prefix, net, weights)) from exc
        raise ModelError(
            weights,
            "weights do not match the network in metadata.json: "
            + _mismatch(net, sd)
            + (_norm_hint(sd, meta.network) if meta.members <= 1 else ""),
        ) from exc
    _check_digest(weights, meta, data)
    net.eval()
    net.to(torch.device(device))
    return LoadedModel(network=net, metadata=meta, path=folder)


def _check_digest(weights: Path, meta: ModelMetadata, data: bytes) -> None:
    """Refuse weights whose SHA-1 is not the one ``metadata.json`` records (where it records
    one): they may fit the network, but its calibration was chosen for other weights."""
    if meta.weights_sha1 is None:
        return
    sha = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    if sha != meta.weights_sha1:  # they fit: loaded under another's calibration
        raise ModelError(
            weights,
            f"not the weights this model's metadata.json was written with (their SHA-1 is "
            f"{sha[:12]}…, metadata.json records {meta.weights_sha1[:12]}…): the file was "
            "replaced, or metadata.json was copied from another model. Put the pair back "
            "together; to use these weights anyway, delete the weights_sha1 line of "
            "metadata.json (its logit_bias, lesion_filter and scores were chosen for the "
            "other weights)",
        )


def _weights_there(folder: Path) -> Path:
    """``folder``'s weights file, or ModelError saying it is missing (and what is there)."""
    weights = folder / WEIGHTS_FILE
    if weights.is_file():
        return weights
    torch_files = sorted(
        p.name for p in folder.glob("*") if p.suffix in (".pt", ".pth", ".ckpt", ".bin")
    )
    others = sorted(
        p.name
        for p in folder.glob("*")
        if p.suffix.lower() == ".safetensors" and p.name != WEIGHTS_FILE
    )
    hint = ""
    if others:  # weights.safetensors: a model's weights under another name
        hint = (
            f" ({others[0]} here: rename it {WEIGHTS_FILE})"
            if len(others) == 1
            else f" ({', '.join(others[:3])} here: rename the model's weights {WEIGHTS_FILE})"
        )
    elif torch_files:
        hint = (
            f" ({', '.join(torch_files[:3])} here: PyTorch checkpoints are never loaded, as "
            "unpickling can run code: write the folder with "
            "napari_livertumor.models.save_model; docs/training.md, 'Model folder format')"
        )
    raise ModelError(weights, "missing model.safetensors" + hint)


def check_model_folder(folder: str | Path, stage: str | None = None) -> ModelMetadata:
    """What :func:`load_model` refuses that is told without torch or building the network:
    ``metadata.json`` (:func:`read_metadata`), the stage, ``model.safetensors`` there and
    whole (a file cut short, a pickle under its name), a wrapper's prefix on its names, NaN
    or infinite values, and a SHA-1 other than the one metadata.json records.
    ``segment --list`` said "segment" of cases whose run was refused at once for these.

    Raises
    ------
    ModelError
        As :func:`load_model` would, in the same words.
    """
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    meta = read_metadata(folder)
    if stage is not None and meta.stage != stage:
        raise ModelError(folder, f"this is a {meta.stage} model; a {stage} model is needed here")
    weights = _weights_there(folder)
    try:
        with open(weights, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ModelError(weights, exc.strerror or str(exc)) from exc
    try:  # numpy: torch is not imported
        with safe_open(str(weights), framework="numpy") as f:
            names = list(f.keys())
            # the run's size checks, on the shapes the header gives (member count, blocks,
            # first layer: --list said "segment" of an ensemble missing a member)
            _check_size(
                weights, meta, {k: _Shape(tuple(f.get_slice(k).get_shape())) for k in names}
            )
            prefix = _wrapper_prefix_by_name(names)
            if prefix:  # (--list said "segment" of weights the run refuses at once for it)
                example = next(
                    (k[len(prefix) :] for k in sorted(names) if not k.startswith(VAE_PREFIXES)),
                    None,
                )  # (an ensemble's members.0. …: as the run, which builds it, names it)
                raise ModelError(weights, _prefix_text(prefix, None, weights, example))
            bad = [k for k in names if not _finite(f, k, data)]
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            weights,
            f"corrupt or unreadable weights ({_safetensors_words(exc, data[:9], size=len(data))})"
            f"{_pickle_hint(weights)}",
        ) from exc
    if bad:  # (the run's words: _check_values)
        raise ModelError(weights, _non_finite_text(bad))
    _check_digest(weights, meta, data)
    return meta


@dataclass(frozen=True)
class _Shape:
    """A tensor's shape as a weights file's header gives it (what :func:`_check_size` reads)."""

    shape: tuple[int, ...]


def _finite(f, name: str, data: bytes) -> bool:
    """Whether tensor ``name`` of an open weights file (numpy; ``data`` its bytes) holds no NaN
    or infinity; whole numbers do. bfloat16, which numpy has not (``--list`` stopped on it
    with a TypeError), is read from its bits (exponent all ones: NaN or infinite); float8 is
    not looked at here (the run, through torch, checks it)."""
    import numpy as np

    try:
        array = f.get_tensor(name)
    except TypeError:  # "data type 'bfloat16' not understood"
        if f.get_slice(name).get_dtype() != "BF16":
            return True
        size = int.from_bytes(data[:8], "little")
        start, end = json.loads(data[8 : 8 + size])[name]["data_offsets"]
        bits = np.frombuffer(data[8 + size + start : 8 + size + end], dtype="<u2")
        return not bool(((bits & 0x7F80) == 0x7F80).any())
    return not np.issubdtype(array.dtype, np.floating) or bool(np.isfinite(array).all())


#: the first part of every tensor name of a SegResNet (and of an ensemble's members)
_NETWORK_HEADS = ("convInit", "down_layers", "up_layers", "up_samples", "conv_final", "members")


def _wrapper_prefix_by_name(names: list[str]) -> str | None:
    """:func:`_wrapper_prefix` told from the names alone (no network built: ``--list``): a
    prefix on every name (``module.``, ``model.``, both…) with a SegResNet's own names under
    it. The same prefixes as the run's, so ``--list`` refuses what the run refuses."""
    return _peel_prefix(
        names, lambda rest: {k.split(".", 1)[0] for k in rest} <= set(_NETWORK_HEADS)
    )


def _wrapper_prefix(net, sd: dict) -> str | None:
    """The prefix all of ``sd``'s tensor names have that the network's own do not, where
    taking it off gives names of the network (``module.`` of DataParallel or DDP, ``model.``
    of a module holding the network, as a Lightning module's ``self.model``); else None."""
    want = set(net.state_dict())
    return _peel_prefix(list(sd), lambda rest: rest <= want)


def _peel_prefix(names: list[str], fits) -> str | None:
    """The shortest run of up to three first name parts, shared by every tensor name (the
    VAE branch's aside), whose removal leaves names that ``fits`` accepts; None where the
    names do not share one. (``module.model.``: a wrapper in a wrapper.)"""
    names = [k for k in names if not k.startswith(VAE_PREFIXES)] or list(names)
    prefix = ""
    for _ in range(3):
        rest = [k[len(prefix) :] for k in names]
        firsts = {k.split(".", 1)[0] for k in rest}
        if len(firsts) != 1 or not all("." in k for k in rest):
            return None
        first = firsts.pop()
        if first in _NETWORK_HEADS:  # the network's own (an ensemble's members.0. of a
            return None  # file holding one member) is no wrapper's (QA rev59b)
        prefix += first + "."
        stripped = {k[len(prefix) :] for k in names} - {""}
        stripped = {k for k in stripped if not k.startswith(VAE_PREFIXES)}
        if stripped and fits(stripped):
            return prefix
    return None


def _prefix_text(prefix: str, net, weights: Path, example: str | None = None) -> str:
    """A weights file whose names all have a wrapper's ``prefix``: what it is and the fix.
    Not taken off here: the file would load here only, not into a plain SegResNet (the
    format's names are the network's own, as a file under another name is refused, not
    looked for), and a prefix that is more than a wrapper's is not loaded unsaid."""
    if net is not None:
        example = next(iter(net.state_dict()), None)
    example = example or "convInit.conv.weight"
    who = (
        "DataParallel or DistributedDataParallel"
        if prefix == "module."
        else "a module holding the network, such as a Lightning module's self.model"
    )
    folder = str(weights.parent)
    return (
        f"every tensor name starts with {prefix!r} (the weights were saved from {who}); the "
        f"network's own names are without it ({example}): take it off and save the folder "
        "again, in Python: `from safetensors.torch import load_file; from "
        "napari_livertumor.models import read_metadata, save_model; "
        f"save_model({folder!r}, {{k.removeprefix({prefix!r}): v for k, v in "
        f"load_file({str(weights)!r}).items()}}, read_metadata({folder!r}))`"
    )


def _check_size(weights: Path, meta: ModelMetadata, sd: dict) -> None:
    """Refuse weights whose first layer or member count differ from metadata.json's, before a
    network of that description is built (an edited ``init_filters`` built gigabytes first)."""
    first = "convInit.conv.weight"
    prefixes = [f"members.{i}." for i in range(meta.members)] if meta.members > 1 else [""]
    stored = {k.split(".")[1] for k in sd if k.startswith("members.")}
    if meta.members > 1 and len(stored) != meta.members:
        if _wrapper_prefix_by_name(list(sd)):  # members.0. under module.: said as such when
            return  # the network is built (it said "the weights hold 0" members)
        raise ModelError(
            weights,
            f"metadata.json says {meta.members} members; the weights hold {len(stored)}",
        )
    for prefix in prefixes:
        held = _blocks_held(sd, prefix)
        said = (tuple(meta.network.blocks_down), tuple(meta.network.blocks_up))
        if held is not None and held != said:
            raise ModelError(
                weights,
                "weights do not match the network in metadata.json: they hold blocks_down "
                f"{list(held[0])}, blocks_up {list(held[1])}; metadata.json says "
                f"{list(said[0])}, {list(said[1])}",
            )
        tensor = sd.get(prefix + first)
        want = (meta.network.init_filters, meta.network.in_channels, 3, 3, 3)
        if tensor is not None and tuple(tensor.shape) != want:
            raise ModelError(
                weights,
                "weights do not match the network in metadata.json: its first layer is "
                f"{list(tensor.shape)} (filters, input channels, kernel), metadata.json says "
                f"{list(want)}",
            )


def _blocks_held(sd: dict, prefix: str = "") -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(blocks_down, blocks_up) of the SegResNet whose weights ``sd`` holds (read from its
    tensors' names: ``down_layers.<level>.<block>.…``, block 0 of a level past the first its
    down-sampling), or None for weights of no such network."""
    down: dict[int, set[int]] = {}
    up: dict[int, set[int]] = {}
    pattern = re.compile(re.escape(prefix) + r"(down|up)_layers\.(\d+)\.(\d+)\.")
    for key in sd:
        m = pattern.match(key)
        if m:
            (down if m[1] == "down" else up).setdefault(int(m[2]), set()).add(int(m[3]))
    if not down:
        return None
    blocks_down = tuple(len({j for j in down.get(i, ()) if j >= 1}) for i in range(max(down) + 1))
    blocks_up = tuple(len(up.get(i, ())) for i in range(max(up) + 1)) if up else ()
    return blocks_down, blocks_up


#: the parameters SegResNetVAE has beyond its SegResNet trunk (a training checkpoint's)
VAE_PREFIXES = (
    "vae_conv_final.",
    "vae_down.",
    "vae_fc1.",
    "vae_fc2.",
    "vae_fc3.",
    "vae_fc_up_sample.",
)


def _safetensors_words(
    exc: Exception, data: bytes | None = None, *, size: int | None = None
) -> str:
    """safetensors' error in words a user reads right ("incomplete metadata" is its header,
    not metadata.json; "invalid header length" a file cut inside its header). ``data``: the
    file's bytes, or its first 9 with ``size`` its length."""
    text = str(exc)
    if data is not None and size is None:
        size = len(data)
    # (safetensors before 0.6 says MetadataIncompleteBuffer)
    if any(
        w in text
        for w in ("incomplete metadata", "file not fully covered", "MetadataIncompleteBuffer")
    ):
        return "the file is cut short: an incomplete copy or download"
    if data is not None and size > 8 and data[8:9] == b"{":
        header = int.from_bytes(data[:8], "little")  # the JSON header's length, then the header
        if size < 8 + header:
            return "the file is cut short: an incomplete copy or download"
    if data is not None and size < 8:
        return f"{size} bytes: the file is cut short, or not a weights file"
    return text


def _pickle_hint(weights: Path) -> str:
    """A hint when unreadable weights are a PyTorch pickle (``torch.save``) renamed."""
    try:
        with open(weights, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return ""
    if head[8:9] == b"{":  # a safetensors file (its header's length, then its JSON): damaged
        return ""
    # a zip (torch.save since 1.6) or a pickle's PROTO opcode with protocol 2–5 (older ones);
    # a safetensors header length can start with 0x80 too (1664 bytes of header: 80 06 …)
    if head[:2] == b"PK" or (
        head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    ):
        return (
            "; it looks like a PyTorch checkpoint (torch.save, a pickle), which is never loaded "
            "here (unpickling can run code): save its state_dict with safetensors instead"
        )
    return ""


def _check_values(weights: Path, net, sd: dict) -> None:
    """Refuse weights that cannot be a trained network's: NaN or infinite values (a run that
    diverged) or whole numbers where the network has real ones. Loaded, they gave "no liver
    found", blaming the scan, or no tumor at all without a word."""
    import torch

    want = net.state_dict()
    integral = [
        k
        for k, v in sd.items()
        if k in want and want[k].is_floating_point() and not v.is_floating_point()
    ]
    if integral:
        raise ModelError(
            weights,
            f"{len(integral)} tensor(s) hold whole numbers ({sd[integral[0]].dtype}, e.g. "
            f"{integral[0]}), not weights: not a trained network's file",
        )
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ModelError(weights, _non_finite_text(bad))


def _non_finite_text(bad: list[str]) -> str:
    """What weights holding NaN or infinity (``bad``: their tensors' names) are, and the fix."""
    return (
        f"{len(bad)} tensor(s) hold NaN or infinite values (e.g. {bad[0]}): the training run "
        "that wrote them diverged, or the file was damaged since; use an earlier checkpoint "
        "(its best/ or last/ folder) or a fresh copy"
    )


def _mismatch(net, sd: dict) -> str:
    """One line on how ``sd`` differs from ``net``'s parameters (not PyTorch's long dump)."""
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in sd.items()}
    sized = [k for k in want if k in have and want[k] != have[k]]
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    parts = []
    if sized:
        k = sized[0]
        parts.append(
            f"{len(sized)} tensor(s) of another size (e.g. {k}: {list(have[k])} in the file, "
            f"{list(want[k])} for the network described)"
        )
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
    return "; ".join(parts) or "the layers differ"


def _norm_hint(sd: dict, cfg: NetworkConfig) -> str:
    """Where ``sd``'s tensor names are those of the network described with another norm, that
    said: group norm has a weight and bias per layer, batch norm running statistics too,
    MONAI's instance norm none (a MONAI SegResNet built with its defaults is a group-norm one)."""
    import dataclasses

    import torch

    have = {k for k in sd if not k.startswith(VAE_PREFIXES)}
    for norm in ("group", "batch", "instance"):
        if norm == cfg.norm.lower():
            continue
        # the names only (on the meta device: no memory, no random numbers); any count will do
        other = dataclasses.replace(cfg, norm=norm, norm_groups=1 if norm == "group" else None)
        with torch.device("meta"):
            names = set(build_inference_network(other).state_dict())
        if names == have:
            if norm == "group":
                return (
                    ". They are a group-norm network's (MONAI SegResNet's default): set network "
                    "norm to 'group' and norm_groups to its group count (8 when the network was "
                    "built with MONAI's defaults; the weights do not record it)"
                )
            article = "an" if norm == "instance" else "a"
            return f". They are {article} {norm}-norm network's: set network norm to '{norm}'"
    return ""


def is_shipped_model_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is one of the shipped default models' folders (where a training
    run or an ensemble written with --force/Replace would replace what Segment uses by
    default)."""
    here = Path(folder).resolve()
    return any(here == default_model_dir(stage).resolve() for stage in STAGES)


def stage_model_folder(folder: str | Path, stage: str) -> Path:
    """``folder``, or its ``stage``/ model when it is a run's folder holding liver/ and tumor/
    (a fine-tune's start given as the run's --out folder)."""
    folder = Path(folder)
    if not (folder / METADATA_FILE).is_file() and (folder / stage / METADATA_FILE).is_file():
        return folder / stage
    if not (folder / METADATA_FILE).is_file() and (folder / stage / "last").is_dir():
        return folder / stage  # a stopped run's: loading it says there is no model yet
    others = [s for s in STAGES if s != stage and (folder / s / METADATA_FILE).is_file()]
    if not (folder / METADATA_FILE).is_file() and others:  # a run of the other stage only
        raise ModelError(
            folder,
            f"holds a {others[0]} model ({others[0]}/) but no {stage}/ model: give a {stage} "
            f"model's folder (or the shipped {stage} model: --init default, or Start from: "
            "the shipped model (fine-tune) in the Train panel)",
        )
    return folder


def default_model_dir(stage: str) -> Path:
    """Folder of the shipped default model for ``stage`` (installed or source checkout)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}")
    here = Path(__file__).resolve().parent.parent
    for root in (here / "resources", here.parent / "resources"):
        cand = root / "models" / stage
        if (cand / METADATA_FILE).is_file():
            return cand
    return here.parent / "resources" / "models" / stage
