"""Networks and model folders (torch and MONAI are imported lazily)."""

from __future__ import annotations

from .checkpoint import (
    LoadedModel,
    ModelMetadata,
    default_model_dir,
    load_model,
    read_metadata,
    save_model,
)
from .factory import (
    NetworkConfig,
    build_inference_network,
    build_training_network,
    trunk_state_dict,
)
from .untrained import STAGE_DEFAULTS, make_untrained_model

__all__ = [
    "STAGE_DEFAULTS",
    "LoadedModel",
    "ModelMetadata",
    "NetworkConfig",
    "build_inference_network",
    "build_training_network",
    "default_model_dir",
    "load_model",
    "make_untrained_model",
    "read_metadata",
    "save_model",
    "trunk_state_dict",
]
