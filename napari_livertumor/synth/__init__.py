"""Synthetic HCC-TACE-Seg-like data: abdominal CT phantoms, labels, clinical tables, cohorts.

Core module (no Qt). ``generate_phantom`` makes one case; ``make_cohort`` writes many in the
TCIA download layout or a NIfTI layout with a matching clinical table.
"""

from __future__ import annotations

from .intensity import PHASES
from .phantom import OVERRIDES, SHAPES, Phantom, generate_phantom

__all__ = ["OVERRIDES", "PHASES", "SHAPES", "Phantom", "generate_phantom"]
