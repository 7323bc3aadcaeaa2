"""``TrainConfig``: every knob of one stage's training run, shared by the CLI, GUI and tests.

A recipe file (JSON) holds a ``"common"`` section and optional ``"liver"`` / ``"tumor"``
sections; :func:`load_recipe` merges them for one stage. Unknown keys are an error, so a typo in
a recipe never silently falls back to a default.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..devices import is_device_name
from ..errors import InputError, SettingsError
from ..fileio import not_utf8_message, read_user_json
from ..models import NetworkConfig

log = logging.getLogger(__name__)

STAGES = ("liver", "tumor")
#: optimizers ``training.loop`` builds (AdamW; Adam with AMSGrad, as the original)
OPTIMIZERS = ("adamw", "adam")


def _numbers(values, name: str, kind, minimum=None) -> tuple:
    """A tuple of ``kind`` from a JSON list; strings, NaN and values below ``minimum`` refused."""
    import math
    from numbers import Real

    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v):
            raise ValueError(f"{name} must be a list of finite numbers, got {list(values)!r}")
        if kind is int and float(v) != int(v):
            raise ValueError(f"{name} must be whole numbers, got {list(values)!r}")
        if minimum is not None and v < minimum:
            raise ValueError(f"{name} values must be at least {minimum}, got {list(values)!r}")
        out.append(kind(v))
    return tuple(out)


def _setting(parse, *args):
    """``parse(*args)``, its ValueError a :class:`SettingsError`."""
    try:
        return parse(*args)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc)) from exc


#: Clinical columns of HCC-TACE-Seg the original regression used (REFERENCE.md §1).
DEFAULT_WEAK_COLUMNS = (
    "T_involvment",
    "CLIP_Score",
    "Personal history of cancer",
    "TNM",
    "Metastasis",
    "fhx_can",
    "Alcohol",
    "Smoking",
    "Evidence_of_cirh",
    "AFP",
    "age",
    "Diabetes",
    "Lymphnodes",
    "Interval_BL",
    "TTP",
)
#: weak columns entered as log10(value + 1): serum AFP (ng/mL) spans five decades (most
#: patients under 20, a few 10^3 to 10^5) and is read on a log scale in clinical practice;
#: standardised as it is, one patient's 50 000 set every weak label. The other defaults are
#: codes, flags, years or days within a decade or two: as they are. Runs recorded before the
#: field (7 Dec 2026) entered every column as it is (``()``), and resume so.
DEFAULT_WEAK_LOG_COLUMNS = ("AFP",)


@dataclass
class TrainConfig:
    """One stage's training run.

    Geometry fields are written into the model's ``metadata.json`` so inference preprocesses
    exactly as training did: CT resampled (trilinear) to ``target_spacing`` ``(dz, dy, dx)`` mm,
    HU clipped to ``hu_window`` and scaled to [0, 1]; tumor stage: cropped to the liver's bounding
    box plus ``roi_margin_mm`` and, when ``mask_outside_liver``, voxels outside the ground-truth
    liver set to ``outside_hu`` before windowing (the predicted liver at inference).
    """

    stage: str = "liver"
    data: str = ""
    out: str = "models"
    clinical: str | None = None
    # schedule
    epochs: int = 10
    steps_per_epoch: int = 50
    max_minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-5
    optimizer: str = "adamw"  # "adamw" | "adam" (amsgrad, as the original)
    warmup_steps: int = 20
    # 2, not 1: on the CPU PyTorch runs a 3-D convolution of a batch of one on its native
    # im2col kernel instead of oneDNN; measured here (torch 2.13, 2 threads, 32x80x80 patches)
    # one sample per step took 2.1 s and two 0.66 s (benchmarks/bench_train.py times both)
    batch_size: int = 2
    # geometry
    roi_size: tuple[int, int, int] = (32, 128, 128)
    target_spacing: tuple[float, float, float] = (4.0, 3.0, 3.0)
    hu_window: tuple[float, float] = (-150.0, 250.0)
    mask_outside_liver: bool = False
    outside_hu: float = -1000.0
    roi_margin_mm: float = 10.0
    network: NetworkConfig = field(default_factory=NetworkConfig)
    # loss
    dice_weight: float = 1.0
    focal_weight: float = 1.0
    focal_gamma: float = 2.0
    #: per-class weights of the focal/CE term (None: equal); the tumor is a few % of voxels
    class_weights: tuple[float, ...] | None = None
    #: classes averaged in the Dice term (None: every non-background class)
    dice_classes: tuple[int, ...] | None = None
    vae_weight: float = 0.1
    weak_lambda: float = 0.0
    weak_form: str = "interval"  # "mse" (original) | "interval"
    weak_margin: float = 0.05
    #: what a patch's soft ratio is compared with: "patch" (the weak label moved by how far the
    #: patch's own true ratio lies from its patient's true ratio, so that a prediction equal to
    #: the ground truth pays nothing) or "patient" (the weak label itself, for every patch: the
    #: recipes before 4 Dec 2026; a patch's ratio strays far from the whole liver's, so that form
    #: penalised the ground truth itself on most patches of patients with large tumors)
    weak_anchor: str = "patch"
    weak_columns: tuple[str, ...] = DEFAULT_WEAK_COLUMNS
    #: of ``weak_columns``, those entered as log10(value + 1) (see DEFAULT_WEAK_LOG_COLUMNS)
    weak_log_columns: tuple[str, ...] = DEFAULT_WEAK_LOG_COLUMNS
    weak_folds: int = 5
    weak_ridge: float = 1.0
    weak_min_liver_fraction: float = 0.05
    # sampling and augmentation
    fg_ratio: float = 0.7  # probability a patch is centred on a foreground voxel
    tumor_ratio: float = 0.5  # tumor stage: of those, probability the centre is a tumor voxel
    #: tumor stage: of the remaining liver-centred patches, the probability the centre is an
    #: atypical non-tumor liver voxel (a hard negative; ``training.data.atypical_liver``)
    hard_ratio: float = 0.0
    #: tumor stage: of the tumor-centred patches, the probability the centre is drawn lesion by
    #: lesion (every connected lesion equally likely; ``training.data.lesion_indices``) instead
    #: of voxel by voxel, where a large mass takes nearly all the patches and satellites few
    lesion_ratio: float = 0.0
    augment: bool = True
    aug_intensity: float = 0.1  # ± shift and ± relative scale of windowed intensities
    aug_gamma: float = 0.3  # gamma in [1 - g, 1 + g]
    aug_noise: float = 0.03  # max std of added Gaussian noise (windowed units)
    aug_blur: float = 0.2  # probability of a Gaussian blur (sigma 0.5..1 voxel)
    aug_rotate_deg: float = 10.0  # axial-plane rotation (no flips: anatomy has handedness)
    aug_scale: float = 0.1  # isotropic zoom in [1 - s, 1 + s]
    aug_prob: float = 0.8  # probability the spatial transform is applied
    #: an additive smooth intensity field (MONAI ``SmoothField``), as real parenchyma varies
    #: with perfusion, fat, beam hardening and the reconstruction kernel: amplitude drawn up to
    #: ``aug_field_hu`` HU, blobs of ``aug_field_mm`` mm (drawn in that range), labels unchanged,
    #: so smooth patches without an edge are not taken for tumor. 0 turns it off.
    aug_field_hu: float = 0.0
    aug_field_mm: tuple[float, float] = (10.0, 40.0)
    aug_field_prob: float = 0.5
    #: tumor stage: inside each lesion the field takes the value of the nearest non-lesion voxel,
    #: so it never cancels or doubles a lesion's contrast against its surroundings (the label
    #: stays true to what the patch shows); off replays the plain field
    aug_field_spare_lesions: bool = False
    #: tumor stage with ``mask_outside_liver``: inference masks with the *predicted* liver, which
    #: can run a few mm (or into ascites, fat or muscle) past the true one. With probability
    #: ``aug_mask_prob`` a patch is masked with the ground-truth liver grown by an irregular
    #: margin of up to ``aug_mask_dilate_mm`` instead, so the net sees real non-liver tissue
    #: inside the mask, labelled background, and learns not to call it tumor. 0 turns it off.
    aug_mask_dilate_mm: float = 0.0
    aug_mask_prob: float = 0.5
    # data
    split_file: str | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.1  # of the training patients, for picking the best checkpoint
    folds: int = 0  # > 0: k-fold split instead of 80/20; ``fold`` is the test fold
    fold: int = 0
    cache_dir: str | None = None
    max_val_cases: int = 8
    val_every: int = 1
    val_overlap: float = 0.25
    # runtime
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    resume: bool = False
    #: replace a model (or a stopped run) already in ``out/<stage>``; without it or ``resume``,
    #: training there is refused before anything is written
    overwrite: bool = False
    #: start from the weights of an existing model folder (fine-tuning, e.g. the shipped model on
    #: your own data): its trunk is loaded, the VAE branch (not stored in model folders) starts
    #: fresh, and the optimizer, step count and learning-rate schedule start from zero. Ignored
    #: when ``resume`` finds a checkpoint to continue.
    init_from: str | None = None
    save_half: bool = True

    def __post_init__(self) -> None:
        from ..models.factory import check_scalar_fields

        try:  # each field of the right type ("epochs": "3" or "amp": "no" refused by name)
            checked = check_scalar_fields(
                type(self), {f.name: getattr(self, f.name) for f in fields(self)}
            )
            for name, value in checked.items():  # coerced scalars (3.0 -> 3); the rest as given
                setattr(self, name, value)
            if isinstance(self.network, dict):
                self.network = NetworkConfig.from_dict(self.network)
            elif not isinstance(self.network, NetworkConfig):
                raise ValueError(f"network must be an object of fields, not {self.network!r}")
            self.roi_size = _numbers(self.roi_size, "roi_size", int, minimum=1)  # type: ignore[assignment]
            self.target_spacing = _numbers(
                self.target_spacing, "target_spacing", float, minimum=1e-3
            )  # type: ignore[assignment]
            from ..models.checkpoint import TARGET_SPACING_RANGE_MM

            lo, hi = TARGET_SPACING_RANGE_MM
            if not all(lo <= v <= hi for v in self.target_spacing):  # as a model file allows
                raise ValueError(
                    f"target_spacing values must lie between {lo:g} and {hi:g} mm, got "
                    f"{list(self.target_spacing)}"
                )
            self.hu_window = _numbers(self.hu_window, "hu_window", float)  # type: ignore[assignment]
        except (TypeError, ValueError) as exc:
            raise SettingsError(str(exc)) from exc
        self._check_ranges()
        for name in ("weak_columns", "weak_log_columns"):
            names = getattr(self, name)
            if (
                isinstance(names, str)
                or not isinstance(names, (list, tuple))
                or not all(isinstance(c, str) for c in names)
            ):
                # "AFP" had become the columns A, F and P
                raise SettingsError(f"{name} must be a list of column names, got {names!r}")
            setattr(self, name, tuple(names))
        if self.stage not in STAGES:
            raise SettingsError(f"stage must be one of {STAGES}, not {self.stage!r}")
        if self.class_weights is not None:
            self.class_weights = _setting(_numbers, self.class_weights, "class_weights", float)
            if (
                len(self.class_weights) != self.n_classes
                or min(self.class_weights) < 0
                or not all(math.isfinite(w) for w in self.class_weights)
            ):
                raise SettingsError(
                    f"class_weights needs {self.n_classes} non-negative values for the "
                    f"{self.stage} stage, got {list(self.class_weights)}"
                )
        if self.dice_classes is not None:
            self.dice_classes = _setting(_numbers, self.dice_classes, "dice_classes", int)
            if not self.dice_classes or not all(0 <= c < self.n_classes for c in self.dice_classes):
                raise SettingsError(
                    f"dice_classes must be class indices in 0..{self.n_classes - 1}, "
                    f"got {list(self.dice_classes)}"
                )
        if self.weak_form not in ("mse", "interval"):
            raise SettingsError(f"weak_form must be 'mse' or 'interval', not {self.weak_form!r}")
        if self.weak_anchor not in ("patch", "patient"):
            raise SettingsError(
                f"weak_anchor must be 'patch' or 'patient', not {self.weak_anchor!r}"
            )
        if len(self.roi_size) != 3 or len(self.target_spacing) != 3 or len(self.hu_window) != 2:
            raise SettingsError("roi_size and target_spacing need 3 values, hu_window 2")
        f = self.network.downsample_factor
        if any(s % f for s in self.roi_size):
            raise SettingsError(f"roi_size {self.roi_size} must be divisible by {f} in every dim")
        if self.hu_window[0] >= self.hu_window[1]:
            raise SettingsError(f"hu_window {self.hu_window} must be (low, high) with low < high")
        from ..models.checkpoint import MAX_HU, MAX_MARGIN_MM

        # as a model's metadata.json may hold them (a run trained a model no loader took)
        for name, values in (("hu_window", self.hu_window), ("outside_hu", [self.outside_hu])):
            if not all(abs(v) <= MAX_HU for v in values):
                shown = list(values) if name == "hu_window" else values[0]  # (as JSON has it)
                raise SettingsError(f"{name} {shown} must lie within ±{MAX_HU:g} HU")
        if not float(self.roi_margin_mm) <= MAX_MARGIN_MM:
            raise SettingsError(
                f"roi_margin_mm must be at most {MAX_MARGIN_MM:g}, got {self.roi_margin_mm}"
            )
        for name in ("hard_ratio", "lesion_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SettingsError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        lo_mm, hi_mm = (float(v) for v in self.aug_field_mm)
        if self.aug_field_hu < 0 or not 0.0 < lo_mm <= hi_mm or not 0 <= self.aug_field_prob <= 1:
            raise SettingsError(
                "aug_field_hu must be >= 0, aug_field_mm (low, high) > 0 and aug_field_prob in "
                f"[0, 1], got {self.aug_field_hu}, {self.aug_field_mm} and {self.aug_field_prob}"
            )
        self._check_run_settings()
        if self.aug_mask_dilate_mm < 0 or not 0.0 <= self.aug_mask_prob <= 1.0:
            raise SettingsError(
                "aug_mask_dilate_mm must be >= 0 and aug_mask_prob in [0, 1], got "
                f"{self.aug_mask_dilate_mm} and {self.aug_mask_prob}"
            )

    def _check_ranges(self) -> None:
        """Values a run or the saved model could not use, refused before any work."""
        net = self.network
        if net.in_channels != 1:
            raise SettingsError(
                f"network in_channels must be 1 (one CT channel), got {net.in_channels}"
            )
        if net.out_channels != self.n_classes:
            raise SettingsError(
                f"network out_channels must be {self.n_classes} for the {self.stage} stage "
                f"({'background, liver' if self.stage == 'liver' else 'background, liver, tumor'}"
                f"), got {net.out_channels}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise SettingsError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        for name in (
            "fg_ratio", "tumor_ratio", "aug_blur", "aug_prob", "aug_mask_prob", "aug_field_prob",
        ):  # fmt: skip
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SettingsError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("test_fraction", "val_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise SettingsError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.num_workers < 0:
            raise SettingsError(f"num_workers must be >= 0, got {self.num_workers}")
        from ..models.factory import MAX_INIT_FILTERS, check_trainable_norm

        if net.init_filters > MAX_INIT_FILTERS:  # (a NetworkConfig given directly, not a dict)
            raise SettingsError(
                f"network init_filters {net.init_filters} is beyond {MAX_INIT_FILTERS}: not a "
                "network this tool trains or loads"
            )
        try:  # before any work, not when the training network is built
            check_trainable_norm(net)
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc
        # accepted, these failed after an epoch's training (an overlap of 1 at the first
        # validation, a negative seed at the split) or trained something other than asked
        for name in (
            "roi_margin_mm", "dice_weight", "focal_weight", "focal_gamma", "vae_weight",
            "weak_margin", "weak_ridge",
        ):  # fmt: skip
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value >= 0):
                raise SettingsError(f"{name} must be a number >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.val_overlap < 1.0:
            raise SettingsError(f"val_overlap must be in [0, 1), got {self.val_overlap}")
        if not 0.0 <= self.weak_min_liver_fraction <= 1.0:
            raise SettingsError(
                f"weak_min_liver_fraction must be in [0, 1], got {self.weak_min_liver_fraction}"
            )
        if self.weak_folds < 2:
            raise SettingsError(f"weak_folds must be at least 2, got {self.weak_folds}")
        if not 0 <= self.seed < 2**32:
            raise SettingsError(f"seed must be a whole number from 0 to 2**32 - 1, got {self.seed}")

    def _check_run_settings(self) -> None:
        """The schedule, optimizer, split and device fields: in range, or a clear error."""
        positive_int = ("epochs", "steps_per_epoch", "batch_size", "val_every")
        for name in positive_int:
            if int(getattr(self, name)) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SettingsError(f"lr must be a number > 0, got {self.lr}")
        for name in ("weight_decay", "weak_lambda", "warmup_steps", "max_val_cases"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SettingsError(f"{name} must be >= 0, got {value}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise SettingsError(
                f"max_minutes must be > 0 (or unset: no limit), got {self.max_minutes}"
            )
        if self.folds == 1 or self.folds < 0:
            raise SettingsError(f"folds must be 0 (an 80/20 split) or at least 2, got {self.folds}")
        if self.folds and not 0 <= self.fold < self.folds:
            raise SettingsError(
                f"fold must be in 0..{self.folds - 1} with {self.folds} folds, got {self.fold}"
            )
        if not self.folds and self.fold:
            raise SettingsError(f"fold {self.fold} needs folds (k-fold split) as well")
        dev = str(self.device)
        if not is_device_name(dev):
            raise SettingsError(f"device must be auto, cpu, cuda or cuda:N, got {dev!r}")

    @property
    def n_classes(self) -> int:
        return 2 if self.stage == "liver" else 3

    @property
    def label_map(self) -> dict[str, str]:
        if self.stage == "liver":
            return {"0": "background", "1": "liver"}
        return {"0": "background", "1": "liver", "2": "tumor"}

    @property
    def stage_dir(self) -> Path:
        return Path(self.out) / self.stage

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["network"] = self.network.to_dict()
        for k in ("roi_size", "target_spacing", "hu_window", "weak_columns", "weak_log_columns"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training config fields: {sorted(unknown)}")
        return cls(**d)

    def with_updates(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)


def stage_defaults(stage: str) -> dict[str, Any]:
    """The per-stage defaults that differ from the dataclass defaults (original-like windows)."""
    if stage == "liver":
        return dict(
            stage="liver",
            hu_window=(-150.0, 250.0),
            target_spacing=(4.0, 3.0, 3.0),
            roi_size=(32, 128, 128),
            network=NetworkConfig(out_channels=2),
            weak_lambda=0.0,
            mask_outside_liver=False,
        )
    if stage == "tumor":
        return dict(
            stage="tumor",
            hu_window=(-200.0, 250.0),
            target_spacing=(2.5, 1.5, 1.5),
            roi_size=(32, 96, 96),
            network=NetworkConfig(out_channels=3),
            weak_lambda=0.5,
            mask_outside_liver=True,
            # Dice averaged over liver + tumor let the rare tumor class collapse to "never" on
            # every synthetic run we tried; tumor-only Dice + a tumor-weighted focal term did not
            dice_classes=(2,),
            class_weights=(1.0, 1.0, 5.0),
            # the stage-1 liver a tumor model is given at inference is never exact
            aug_mask_dilate_mm=15.0,
            aug_mask_prob=0.5,
        )
    raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")


def make_config(stage: str, recipe: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Stage defaults, then the recipe's ``common`` and ``<stage>`` sections, then overrides."""
    d: dict[str, Any] = stage_defaults(stage)
    recipe = recipe or {}
    for section in (recipe.get("common", {}), recipe.get(stage, {})):
        for key in sorted(_DECIDED_PER_RUN.keys() & set(section)):
            # (a model's saved recipe holds the run's own: a fine-tune of a model trained with
            # --force replaced the model in its output folder without asking)
            said = (key, _DECIDED_PER_RUN[key])
            if section[key] and said not in _SAID:  # (each stage's config is made twice)
                _SAID.add(said)
                log.warning(
                    "recipe: %r is not taken from a recipe (the command line decides it: %s)",
                    *said,
                )
        d.update(
            {
                k: v
                for k, v in section.items()
                if not k.startswith("#") and k not in _DECIDED_PER_RUN
            }
        )
    d.update({k: v for k, v in overrides.items() if v is not None})
    d["stage"] = stage
    net = d.get("network")
    if isinstance(net, dict):
        base = NetworkConfig(out_channels=2 if stage == "liver" else 3).to_dict()
        base.update(net)
        d["network"] = NetworkConfig.from_dict(base)
    return TrainConfig.from_dict(d)


#: what only the command line (or the panel) decides for a run: never read from a recipe
_DECIDED_PER_RUN = {"overwrite": "--force", "resume": "--resume"}
_SAID: set = set()

#: settings of one run rather than of a recipe; never taken over from a model being fine-tuned
RUN_KEYS = frozenset(
    {
        "overwrite",
        "stage",
        "data",
        "out",
        "clinical",
        "split_file",
        "folds",
        "fold",
        "cache_dir",
        "resume",
        "init_from",
        "device",
        "epochs",
        "steps_per_epoch",
        "max_minutes",
        "num_workers",
    }
)


def recipe_from_model(folder: str | Path, stage: str) -> dict[str, Any]:
    """The recipe (``{stage: {...}}``) a model folder was trained with, for fine-tuning it.

    The training settings are read from the model's ``metadata.json`` (``training.config``);
    the network and the geometry (patch, grid, HU window, liver masking) always come from the
    model itself, so the weights fit. Run settings (:data:`RUN_KEYS`: data, output, epochs,
    time budget, device, ...) are left to the caller.

    Raises
    ------
    ModelError
        ``folder`` holds no readable model, or one for the other stage.
    """
    from ..errors import ModelError
    from ..models.checkpoint import read_metadata

    meta = read_metadata(folder)
    if meta.stage != stage:
        raise ModelError(folder, f"this is a {meta.stage} model, not a {stage} model")
    known = {f.name for f in fields(TrainConfig)}
    saved = dict((meta.training or {}).get("config") or {})
    if "weak_lambda" in saved and "weak_anchor" not in saved:
        saved["weak_anchor"] = "patient"  # trained before the field: the form it trained with
    if "weak_lambda" in saved and "weak_log_columns" not in saved:
        saved["weak_log_columns"] = []  # before the field: every column as it is (AFP too)
    # (its seed comes along: fine-tuned on the data it was trained on, it draws the same split
    # and never tests on a patient it trained on; --seed changes it, said in the help)
    section = {k: v for k, v in saved.items() if k in known and k not in RUN_KEYS}
    section.update(
        network=meta.network.to_dict(),
        roi_size=list(meta.roi_size),
        target_spacing=list(meta.target_spacing),
        hu_window=list(meta.hu_window),
        roi_margin_mm=float(meta.roi_margin_mm),
        outside_hu=float(meta.outside_hu),
    )
    if stage == "tumor":
        section["mask_outside_liver"] = bool(meta.mask_outside_liver)
    try:  # a hand-edited metadata.json ("lr": "fast") is named, not a traceback mid-setup
        make_config(stage, {stage: section})
    except (TypeError, ValueError) as exc:
        raise ModelError(
            folder, f"the training settings in its metadata.json cannot be reused ({exc})"
        ) from exc
    return {stage: section}


def builtin_recipes() -> dict[str, Path]:
    """The recipes that ship with the plugin (``configs/*.json``), by name without ``.json``."""
    here = Path(__file__).resolve().parent.parent  # the package (installed: configs inside it)
    for folder in (here / "configs", here.parent / "configs"):
        if folder.is_dir():
            return {
                p.stem: p for p in sorted(folder.glob("*.json")) if not p.stem.startswith("split")
            }
    return {}


def resolve_recipe(path: str | Path) -> Path:
    """``path`` if it exists, else the built-in recipe of that name (``hcc_tace_gpu``,
    ``configs/hcc_tace_gpu.json``...): the README's commands work outside a source checkout."""
    path = Path(path)
    if path.exists() or path.is_absolute() or str(path.parent) not in (".", "configs"):
        return path  # an edited copy given with a wrong folder must fail, not be swapped
    name = path.name[:-5] if path.name.endswith(".json") else path.name
    found = builtin_recipes().get(name)
    if found is None:
        return path
    log.info("training config %s: the built-in recipe %s", path, found)
    return found


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a recipe JSON file (sections ``common``, ``liver``, ``tumor``; ``#`` keys ignored).

    A relative path that does not exist names a built-in recipe (see :func:`builtin_recipes`).
    """
    path = resolve_recipe(path)
    try:
        raw = read_user_json(path)
    except FileNotFoundError as exc:
        names = ", ".join(builtin_recipes()) or "none found"
        raise InputError(
            path, f"training config file not found (built-in recipes, by name: {names})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise InputError(path, not_utf8_message(exc)) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON training config ({exc})") from exc
    if not isinstance(raw, dict):
        raise InputError(path, "a training config is a JSON object with common/liver/tumor")
    bad = set(raw) - {"common", "liver", "tumor"} - {k for k in raw if k.startswith("#")}
    if bad:
        raise InputError(path, f"unknown sections {sorted(bad)}; use common, liver, tumor")
    recipe = {k: v for k, v in raw.items() if not k.startswith("#")}
    for name, section in recipe.items():
        if not isinstance(section, dict):
            raise InputError(
                path,
                f"section {name!r} must be an object of settings, not {type(section).__name__}",
            )
    misplaced = sorted(TUMOR_ONLY & set(recipe.get("liver", {})))
    if misplaced:  # the liver stage ignored them unsaid
        raise InputError(
            path,
            f"{', '.join(misplaced)} in the liver section: "
            + ("it acts" if len(misplaced) == 1 else "they act")
            + " on the tumor stage only; move "
            + ("it" if len(misplaced) == 1 else "them")
            + " to the tumor section",
        )
    if recipe.get("common", {}).get("mask_outside_liver"):
        # it changed the liver's training (background reset after augmentation) unlike its
        # inference, which sees the whole CT
        raise InputError(
            path,
            "mask_outside_liver in the common section: only the tumor stage masks its input "
            "(the liver model sees the whole CT); set it in the tumor section",
        )
    for stage in STAGES:
        try:
            make_config(stage, recipe)
        except (TypeError, ValueError) as exc:
            raise InputError(path, f"invalid {stage} settings: {exc}") from exc
    return recipe


#: settings read by the tumor stage only (its sampling of lesions, hard negatives, the clinical
#: weak term, the liver masking and its augmentation)
TUMOR_ONLY = frozenset(
    {
        "hard_ratio",
        "lesion_ratio",
        "tumor_ratio",
        "weak_lambda",
        "weak_form",
        "weak_margin",
        "weak_anchor",
        "weak_columns",
        "weak_log_columns",
        "mask_outside_liver",
        "aug_mask_dilate_mm",
        "aug_mask_prob",
        "aug_field_spare_lesions",
    }
)
