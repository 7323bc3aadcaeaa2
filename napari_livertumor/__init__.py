"""napari-livertumor: liver and liver-tumor segmentation of abdominal CT.

Importing the package is cheap: the heavy parts (torch, MONAI, napari) are imported by the
sub-modules that need them.

Entry points: ``io.load_ct`` (a CT), ``pipeline.Segmenter`` / ``pipeline.segment_ct`` (labels
and figures), ``stats.compute_stats``, ``synth.generate_phantom`` (a synthetic patient) and
``training.train``; the README's "Python API" section shows them at work.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
