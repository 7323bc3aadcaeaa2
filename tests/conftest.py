"""Shared pytest configuration. Area-specific fixtures live in the test modules of that area."""

from __future__ import annotations

import os

# Keep torch from fighting pytest-xdist-less runs for the 2 cores, and keep runs reproducible.
os.environ.setdefault("OMP_NUM_THREADS", "2")
