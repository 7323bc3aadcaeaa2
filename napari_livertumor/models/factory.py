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
    dropout_prob: float | None = 0.1
    # VAE branch (training only)
    vae_nz: int = 256
    vae_estimate_std: bool = False
    vae_default_std: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["blocks_down"] = list(self.blocks_down)
        d["blocks_up"] = list(self.blocks_up)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown network fields: {sorted(unknown)}")
        d = dict(d)
        for key in ("blocks_down", "blocks_up"):
            if key in d:
                d[key] = tuple(int(v) for v in d[key])
        return cls(**d)

    @property
    def downsample_factor(self) -> int:
        """Input sizes must be divisible by this (2 ** number of down-sampling levels)."""
        return 2 ** (len(self.blocks_down) - 1)


def _trunk_kwargs(cfg: NetworkConfig) -> dict[str, Any]:
    return dict(
        spatial_dims=3,
        init_filters=cfg.init_filters,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        dropout_prob=cfg.dropout_prob,
        norm=cfg.norm,
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
    return SegResNetVAE(
        input_image_size=tuple(int(s) for s in patch_size),
        vae_estimate_std=cfg.vae_estimate_std,
        vae_default_std=cfg.vae_default_std,
        vae_nz=cfg.vae_nz,
        **_trunk_kwargs(cfg),
    )


def build_inference_network(cfg: NetworkConfig):
    """Trunk-only ``SegResNet`` with the same parameter names as the training network."""
    from monai.networks.nets import SegResNet

    return SegResNet(**_trunk_kwargs(cfg))


def trunk_state_dict(state_dict: dict[str, Any], cfg: NetworkConfig) -> dict[str, Any]:
    """The subset of a ``SegResNetVAE`` state dict that a ``SegResNet`` trunk uses."""
    keys = set(build_inference_network(cfg).state_dict().keys())
    return {k: v for k, v in state_dict.items() if k in keys}


__all__ = [
    "NetworkConfig",
    "build_inference_network",
    "build_training_network",
    "trunk_state_dict",
]
