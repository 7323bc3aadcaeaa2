"""Synthetic HCC-TACE-Seg-like data: abdominal CT phantoms, labels, clinical tables, cohorts.

Core module (no Qt). ``generate_phantom`` makes one case; ``make_cohort`` writes many in the
TCIA download layout or a NIfTI layout with a matching clinical table.
"""

from __future__ import annotations

from .clinical import make_clinical_table
from .cohort import case_seed, make_cohort
from .intensity import PHASES
from .phantom import OVERRIDES, SHAPES, Phantom, generate_phantom

__all__ = [
    "OVERRIDES",
    "PHASES",
    "SHAPES",
    "Phantom",
    "case_seed",
    "generate_phantom",
    "make_clinical_table",
    "make_cohort",
]
