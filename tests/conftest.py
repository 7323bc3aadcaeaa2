"""Shared pytest configuration. Area-specific fixtures live in the test modules of that area."""

from __future__ import annotations

import os

# Keep torch from fighting pytest-xdist-less runs for the 2 cores, and keep runs reproducible.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# The Segment and Train panels import torch and MONAI in a background thread when they open;
# the panels' jobs wait for it (``_jobs.IMPORT_LOCK``) but test code importing MONAI on the
# main thread at the same moment (building toy models) does not. Imported once here, the
# panels' background import finds them loaded.
try:
    import monai.inferers  # noqa: E402, F401
    import monai.networks.nets  # noqa: E402, F401
    import torch  # noqa: E402, F401
except ImportError:  # the tests that need them say so
    pass
