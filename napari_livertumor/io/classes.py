"""The label classes' display colours, shared by napari's layers and the DICOM SEGs we write
(no imports: the widgets read it without loading pydicom)."""

from __future__ import annotations

#: Colours of the classes (RGB, 0..1): liver green, tumor red, portal vein blue, aorta amber.
#: A SEG carries them (RecommendedDisplayCIELabValue), so other viewers draw them alike.
CLASS_RGB: dict[int, tuple[float, float, float]] = {
    1: (0.20, 0.80, 0.30),
    2: (0.95, 0.20, 0.15),
    3: (0.25, 0.45, 1.00),
    4: (1.00, 0.75, 0.10),
}
