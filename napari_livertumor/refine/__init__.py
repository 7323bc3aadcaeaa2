"""Active-contour refinement of tumor masks (Qt-free; see docs/refinement.md)."""

from __future__ import annotations

from .config import METHODS, RANGES, RefineConfig
from .contour import (
    MIN_LESION_VOXELS,
    SLIVER_ML,
    contrast_to_noise,
    drop_slivers,
    label_lesions,
    lesion_boxes,
    original_refinement,
    refine_all,
    refine_lesion,
    refine_slice,
    window_ct,
)

__all__ = [
    "contrast_to_noise",
    "drop_slivers",
    "MIN_LESION_VOXELS",
    "SLIVER_ML",
    "METHODS",
    "RANGES",
    "RefineConfig",
    "label_lesions",
    "lesion_boxes",
    "original_refinement",
    "refine_all",
    "refine_lesion",
    "refine_slice",
    "window_ct",
]
