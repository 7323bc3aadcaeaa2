"""Training both stages with clinical weak supervision, and evaluation (no Qt).

``TrainConfig`` holds one stage's run; ``train(config)`` is a generator of reports; ``metrics``
computes the original's table; ``evaluate`` runs the two-stage pipeline on test patients.
"""

from __future__ import annotations

from .config import TrainConfig, load_recipe, make_config
from .loop import train

__all__ = ["TrainConfig", "load_recipe", "make_config", "train"]
