"""napari-livertumor: liver and liver-tumor segmentation of abdominal CT.

Importing the package is cheap: the heavy parts (torch, MONAI, napari) are imported by the
sub-modules that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
