"""Edits of a written DICOM SEG, as a hand or another tool makes them (pydicom)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom


def drop_segment(path: Path, label: str) -> None:
    """Remove the segment labelled ``label`` and its frames from a BINARY SEG."""
    from pydicom.pixels import pack_bits

    ds = pydicom.dcmread(path)
    [number] = [int(s.SegmentNumber) for s in ds.SegmentSequence if s.SegmentLabel == label]
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    groups = ds.PerFrameFunctionalGroupsSequence
    keep = [
        i
        for i, g in enumerate(groups)
        if int(g.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != number
    ]
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([groups[i] for i in keep])
    ds.SegmentSequence = pydicom.Sequence(
        [s for s in ds.SegmentSequence if int(s.SegmentNumber) != number]
    )
    ds.NumberOfFrames = len(keep)
    ds.PixelData = pack_bits(frames[keep].astype(np.uint8))
    ds.save_as(path)


def liver_made_spleen(path: Path) -> None:
    """Label and code the SEG's Liver segment as the spleen (SNOMED CT 78961009)."""
    ds = pydicom.dcmread(path)
    [liver] = [s for s in ds.SegmentSequence if s.SegmentLabel == "Liver"]
    liver.SegmentLabel = "Spleen"
    code = liver.SegmentedPropertyTypeCodeSequence[0]
    code.CodeValue, code.CodeMeaning = "78961009", "Spleen"
    ds.save_as(path)
