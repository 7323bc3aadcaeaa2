"""Data the batch tests share: untrained models, and a small CT of noise."""

from __future__ import annotations

import numpy as np

from napari_livertumor.io.volume import CTVolume
from napari_livertumor.models import make_untrained_model


def untrained_models(root):
    """A models folder (liver and tumor, untrained) in ``root``."""
    make_untrained_model(root / "liver", "liver")
    make_untrained_model(root / "tumor", "tumor")
    return root


def ct(seed, shape=(8, 32, 32)):
    """A CT of noise around 60 HU, 3 × 0.9 × 0.9 mm."""
    rng = np.random.default_rng(seed)
    return CTVolume(rng.normal(60, 80, shape).astype(np.int16), spacing=(3.0, 0.9, 0.9))
