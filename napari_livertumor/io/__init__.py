"""Reading and writing CT volumes, label maps, DICOM SEG and clinical tables (no Qt)."""

from __future__ import annotations

from .volume import CTVolume

__all__ = ["CTVolume"]
