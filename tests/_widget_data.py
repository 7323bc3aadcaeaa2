"""Small CT data for the widget tests (imported by tests/test_widget_*.py and test_demo*.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_livertumor.io.volume import CTVolume


def tiny_ct(shape=(16, 48, 48), spacing=(2.5, 0.9, 0.9), origin=(-20.0, -30.0, 100.0)) -> tuple:
    """A small abdomen-like CT: body ~0 HU, a 'liver' blob at 60 HU with a 'tumor' at 20 HU.

    Returns ``(volume, labels)`` with labels 1 liver, 2 tumor.
    """
    z, y, x = np.indices(shape)
    cz, cy, cx = (s / 2 for s in shape)
    body = ((y - cy) / (shape[1] * 0.45)) ** 2 + ((x - cx) / (shape[2] * 0.45)) ** 2 < 1
    liver = ((z - cz) / (shape[0] * 0.35)) ** 2 + ((y - cy) / (shape[1] * 0.25)) ** 2 + (
        (x - cx * 0.8) / (shape[2] * 0.25)
    ) ** 2 < 1
    tumor = ((z - cz) / 3.0) ** 2 + ((y - cy) / 5.0) ** 2 + ((x - cx * 0.8) / 5.0) ** 2 < 1
    ct = np.full(shape, -1000, np.int16)
    ct[body] = 10
    ct[liver] = 60
    ct[tumor] = 20
    labels = np.zeros(shape, np.uint8)
    labels[liver] = 1
    labels[tumor] = 2
    vol = CTVolume(
        ct,
        spacing=spacing,
        origin=origin,
        meta={"patient_id": "TEST_001", "description": "tiny CT"},
    )
    return vol, labels


def write_dicom_case(folder: Path) -> tuple[Path, CTVolume, np.ndarray]:
    """A DICOM CT series of :func:`tiny_ct` in ``folder/TEST_001/CT``."""
    from napari_livertumor.io.dicom_write import write_ct_series

    vol, labels = tiny_ct()
    series = folder / "TEST_001" / "CT"
    write_ct_series(vol, series, patient_id="TEST_001", series_description="tiny CT")
    return folder / "TEST_001", vol, labels
