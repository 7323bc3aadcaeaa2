"""Small randomly initialised model folders, for tests, demos and smoke runs (not for use on CT).

They have the exact format of a trained model (``model.safetensors`` + ``metadata.json``) and the
default stage settings, so the whole pipeline runs on them; their masks are meaningless.
"""

from __future__ import annotations

from pathlib import Path

from .checkpoint import ModelMetadata, save_model
from .factory import NetworkConfig, build_training_network

#: Stage settings shared by the untrained models here and the training recipe's defaults.
STAGE_DEFAULTS = {
    "liver": dict(
        hu_window=(-150.0, 250.0),
        target_spacing=(4.0, 3.0, 3.0),
        label_map={"0": "background", "1": "liver"},
        mask_outside_liver=False,
    ),
    "tumor": dict(
        hu_window=(-200.0, 250.0),
        target_spacing=(2.5, 1.5, 1.5),
        label_map={"0": "background", "1": "liver", "2": "tumor"},
        mask_outside_liver=True,
        outside_hu=-1000.0,
        roi_margin_mm=10.0,
    ),
}


def make_untrained_model(
    folder: str | Path,
    stage: str,
    *,
    init_filters: int = 4,
    roi_size: tuple[int, int, int] = (16, 32, 32),
    seed: int = 0,
    **overrides,
) -> Path:
    """Write a randomly initialised ``stage`` model folder and return its path.

    ``overrides`` replace :class:`ModelMetadata` fields (e.g. ``target_spacing``).
    """
    import torch

    settings = {**STAGE_DEFAULTS[stage], **overrides}
    n_classes = len(settings["label_map"])
    net_cfg = NetworkConfig(out_channels=n_classes, init_filters=init_filters)
    meta = ModelMetadata(
        stage=stage,
        network=net_cfg,
        roi_size=tuple(roi_size),
        training={"note": "untrained: random weights for tests and demos"},
        **settings,
    )
    # seeded on a copy of the CPU generator's state: the caller's random numbers go on as
    # they would have (a script's own were the same in every run after this)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)  # (the CPU's only: no GPU touched)
        net = build_training_network(net_cfg, roi_size)
        return save_model(folder, net.state_dict(), meta)
