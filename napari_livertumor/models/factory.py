"""Network factory: MONAI ``SegResNetVAE`` for training, its ``SegResNet`` trunk for inference.

``SegResNetVAE`` subclasses ``SegResNet``; the segmentation trunk's parameters have the same names
in both, so a trained VAE network's trunk loads into a plain ``SegResNet`` that accepts any input
size (the VAE branch's fully-connected layers fix the training patch size, the trunk does not).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class NetworkConfig:
    """Architecture of one stage's network (stored in the model's ``metadata.json``)."""

    in_channels: int = 1
    out_channels: int = 2
    init_filters: int = 8
    blocks_down: tuple[int, ...] = (1, 2, 2, 4)
    blocks_up: tuple[int, ...] = (1, 1, 1)
    norm: str = "instance"
    #: group norm's group count (``norm`` "group" only; None there: MONAI's default, 8)
    norm_groups: int | None = None
    dropout_prob: float | None = 0.1
    # VAE branch (training only)
    vae_nz: int = 256
    vae_estimate_std: bool = False
    vae_default_std: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["blocks_down"] = list(self.blocks_down)
        d["blocks_up"] = list(self.blocks_up)
        if self.is_group_norm:  # written out, so the file says the count the weights need
            d["norm_groups"] = self.groups
        elif self.norm_groups is None:  # (instance and batch models' metadata as before)
            del d["norm_groups"]
        return d

    @property
    def is_group_norm(self) -> bool:
        return isinstance(self.norm, str) and self.norm.lower() == "group"

    @property
    def groups(self) -> int:
        """Group norm's group count (``norm_groups``, or MONAI's default)."""
        return DEFAULT_NORM_GROUPS if self.norm_groups is None else self.norm_groups

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkConfig:
        if not isinstance(d, dict):
            raise ValueError(f"network must be an object of fields, not {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown network fields: {sorted(unknown)}")
        d = dict(d)
        for key in ("blocks_down", "blocks_up"):
            if key in d:
                if not isinstance(d[key], (list, tuple)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in d[key]
                ):
                    raise ValueError(f"network {key} must be a list of whole numbers >= 1")
                d[key] = tuple(int(v) for v in d[key])
        net = cls(**check_scalar_fields(cls, d, "network "))
        if len(net.blocks_up) != len(net.blocks_down) - 1:
            raise ValueError(
                f"network blocks_up needs one entry fewer than blocks_down ({len(net.blocks_down)})"
            )
        for name in ("in_channels", "out_channels", "init_filters", "vae_nz"):
            if getattr(net, name) < 1:
                raise ValueError(f"network {name} must be at least 1, got {getattr(net, name)}")
        # beyond any network of this design (a model file's edited metadata built gigabytes
        # before its weights were found not to fit; a run trained one no loader takes)
        if len(net.blocks_down) > MAX_LEVELS or max(net.blocks_down + net.blocks_up) > MAX_BLOCKS:
            raise ValueError(
                f"network blocks_down {list(net.blocks_down)}, blocks_up {list(net.blocks_up)} "
                f"are beyond {MAX_LEVELS} levels of at most {MAX_BLOCKS} blocks: not a network "
                "this tool trains or loads"
            )
        if net.init_filters > MAX_INIT_FILTERS:
            raise ValueError(
                f"network init_filters {net.init_filters} is beyond {MAX_INIT_FILTERS}: not a "
                "network this tool trains or loads"
            )
        # MONAI checks these only when the network is built: a traceback, not a message
        check_norm(net)
        if net.dropout_prob is not None and not 0.0 <= net.dropout_prob < 1.0:
            raise ValueError(
                f"network dropout_prob must be at least 0 and below 1, got {net.dropout_prob}"
            )
        return net

    @property
    def downsample_factor(self) -> int:
        """Input sizes must be divisible by this (2 ** number of down-sampling levels)."""
        return 2 ** (len(self.blocks_down) - 1)


#: the widest first layer a network may have (the shipped models: 8; the original method: 16)
MAX_INIT_FILTERS = 128
#: the most down-sampling levels (a 2**7 = 128-fold factor) and residual blocks in a level
#: (a model's edited blocks built gigabytes, or for minutes, before its weights were read)
MAX_LEVELS = 8
MAX_BLOCKS = 32

#: the normalisations a network may name (MONAI's; "group" with ``norm_groups`` groups)
NORMS = frozenset({"instance", "batch", "group"})
#: group norm's group count when ``norm_groups`` is not given: MONAI SegResNet's default
#: (``norm=("GROUP", {"num_groups": 8})``)
DEFAULT_NORM_GROUPS = 8
#: the channels of the VAE branch's narrowest layer (MONAI SegResNetVAE's ``smallest_filters``,
#: group-normalised too): a training network's group count must divide it
VAE_SMALLEST_FILTERS = 16


def check_scalar_fields(cls, values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``values`` for dataclass ``cls`` with its int/float/bool/str fields checked by type.

    JSON recipes and metadata are typed by hand: ``"epochs": "3"`` or ``"amp": "no"`` must be
    refused by name here, not crash a run later (or, for ``"no"``, be read as true). Whole
    floats are taken as ints (``3.0``), ints as floats; NaN and infinities are refused.
    """
    import math
    from numbers import Integral, Real

    out = dict(values)
    for f in cls.__dataclass_fields__.values():
        if f.name not in out:
            continue
        kind = str(f.type).replace(" ", "")
        value = out[f.name]
        optional = kind.endswith("|None")
        base = kind.removesuffix("|None")
        if value is None and optional:
            continue
        where = f"{prefix}{f.name}"
        if base == "bool":
            if not isinstance(value, bool) and type(value).__name__ != "bool_":
                raise ValueError(f"{where} must be true or false, got {value!r}")
        elif base == "int":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise ValueError(f"{where} must be a whole number, got {value!r}")
            out[f.name] = int(value)
        elif base == "float":
            if isinstance(value, bool) or not isinstance(value, Real):
                raise ValueError(f"{where} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{where} must be a finite number, got {value!r}")
            out[f.name] = float(value)
        elif base == "str":
            if not isinstance(value, str):
                raise ValueError(f"{where} must be text, got {value!r}")
    return out


def _trunk_kwargs(cfg: NetworkConfig) -> dict[str, Any]:
    return dict(
        spatial_dims=3,
        init_filters=cfg.init_filters,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        dropout_prob=cfg.dropout_prob,
        norm=("GROUP", {"num_groups": cfg.groups}) if cfg.is_group_norm else cfg.norm,
        blocks_down=tuple(cfg.blocks_down),
        blocks_up=tuple(cfg.blocks_up),
    )


def build_training_network(cfg: NetworkConfig, patch_size: tuple[int, int, int]):
    """``SegResNetVAE`` for training on patches of exactly ``patch_size`` ``(z, y, x)``.

    In train mode its forward returns ``(logits, vae_loss)``; in eval mode ``(logits, None)``.
    """
    from monai.networks.nets import SegResNetVAE

    f = cfg.downsample_factor
    if any(int(s) % f for s in patch_size):
        raise ValueError(f"patch size {tuple(patch_size)} must be divisible by {f} in every dim")
    check_trainable_norm(cfg)
    return SegResNetVAE(
        input_image_size=tuple(int(s) for s in patch_size),
        vae_estimate_std=cfg.vae_estimate_std,
        vae_default_std=cfg.vae_default_std,
        vae_nz=cfg.vae_nz,
        **_trunk_kwargs(cfg),
    )


def check_norm(net: NetworkConfig) -> None:
    """Refuse a norm MONAI does not build, or a group count its layers cannot take."""
    if net.norm.lower() not in NORMS:
        raise ValueError(f"network norm must be one of {sorted(NORMS)}, got {net.norm!r}")
    if net.norm_groups is not None and not net.is_group_norm:
        # a count that plays no part: the network meant was probably a group-norm one
        raise ValueError(
            f"network norm_groups ({net.norm_groups}) is for norm 'group' only, and norm is "
            f"{net.norm!r}: drop norm_groups, or set norm to 'group'"
        )
    if net.norm_groups is not None and net.norm_groups < 1:
        raise ValueError(f"network norm_groups must be at least 1, got {net.norm_groups}")
    if net.is_group_norm and net.init_filters % net.groups:
        # MONAI's GroupNorm refused it only when the network was built (a traceback)
        given = " (MONAI's default: norm_groups not given)" if net.norm_groups is None else ""
        raise ValueError(
            f"network init_filters {net.init_filters} is not divisible by norm_groups "
            f"{net.groups}{given}: group norm splits every layer's channels (init_filters and "
            "its doubles) into norm_groups equal groups"
        )


def check_trainable_norm(cfg: NetworkConfig) -> None:
    """Refuse a group count the training network's VAE branch cannot take (inference can)."""
    check_norm(cfg)  # (a NetworkConfig given directly, not read by from_dict)
    if cfg.is_group_norm and VAE_SMALLEST_FILTERS % cfg.groups:
        raise ValueError(
            f"network norm_groups {cfg.groups} does not divide {VAE_SMALLEST_FILTERS}, the "
            "channels of the VAE branch's narrowest layer (MONAI SegResNetVAE, group-normalised "
            "too): a group-norm network trains here with 1, 2, 4, 8 or 16 groups (it loads and "
            "segments with any count that divides init_filters)"
        )


def build_inference_network(cfg: NetworkConfig):
    """Trunk-only ``SegResNet`` with the same parameter names as the training network."""
    from monai.networks.nets import SegResNet

    return SegResNet(**_trunk_kwargs(cfg))


#: a trunk's parameter names by the settings it is built with (:func:`trunk_state_dict`)
_TRUNK_KEYS: dict[str, frozenset[str]] = {}


def trunk_state_dict(state_dict: dict[str, Any], cfg: NetworkConfig) -> dict[str, Any]:
    """The subset of a ``SegResNetVAE`` state dict that a ``SegResNet`` trunk uses."""
    import torch

    # the keys only: built on the meta device, no memory used and no random numbers drawn
    # (saving a model left a script's or a training run's random state moved on); once for
    # each network settings (0.15 s a build on the meta device, five times a load's)
    built_with = repr(sorted(_trunk_kwargs(cfg).items()))
    keys = _TRUNK_KEYS.get(built_with)
    if keys is None:
        with torch.device("meta"):
            keys = frozenset(build_inference_network(cfg).state_dict().keys())
        _TRUNK_KEYS[built_with] = keys
    return {k: v for k, v in state_dict.items() if k in keys}


__all__ = [
    "NetworkConfig",
    "build_inference_network",
    "build_training_network",
    "trunk_state_dict",
]
