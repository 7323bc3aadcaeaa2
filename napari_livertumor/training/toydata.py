"""A tiny labelled cohort (ellipsoid liver, spherical tumors) for tests and smoke runs.

Not a realistic phantom (that is :mod:`napari_livertumor.synth`): it only has to be cheap, seeded
and shaped like the real layouts, with a clinical table whose columns track tumor burden.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def toy_case(seed: int, shape=(24, 48, 48), spacing=(2.5, 2.0, 2.0)):
    """``(hu int16, labels uint8 HCC classes, tlvr)`` for one toy patient."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    hu = rng.normal(-60, 25, shape).astype(np.float32)  # soft tissue / fat mix
    labels = np.zeros(shape, np.uint8)
    c = np.array(shape) * np.array([0.5, 0.45, 0.4]) + rng.uniform(-2, 2, 3)
    r = np.array(shape) * np.array([0.35, 0.3, 0.28]) * rng.uniform(0.85, 1.15, 3)
    liver = ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 <= 1
    labels[liver] = 1
    hu[liver] = rng.normal(110, 12, int(liver.sum()))
    vessel = liver & ((y - c[1]) ** 2 + (x - c[2] + 3) ** 2 <= 2.0)
    labels[vessel] = 3
    hu[vessel] = 170
    for _ in range(int(rng.integers(0, 3))):
        t = c + rng.uniform(-0.5, 0.5, 3) * r
        rad = rng.uniform(2.0, 5.0)
        tumor = liver & ((z - t[0]) ** 2 + (y - t[1]) ** 2 + (x - t[2]) ** 2 <= rad**2)
        labels[tumor] = 2
        hu[tumor] = rng.normal(60, 10, int(tumor.sum()))
    aorta = ((y - shape[1] * 0.6) ** 2 + (x - shape[2] * 0.6) ** 2) <= 4
    aorta &= labels == 0
    labels[aorta] = 4
    hu[aorta] = 180
    n = np.bincount(labels.ravel(), minlength=5)
    tlvr = n[2] / max(1, n[1] + n[2] + n[3])
    return hu.round().astype(np.int16), labels, float(tlvr)


def write_toy_cohort(out: str | Path, n_cases: int = 6, seed: int = 0, shape=(24, 48, 48)) -> Path:
    """Write ``imagesTr/``, ``labelsTr/`` and ``clinical.csv`` for ``n_cases`` toy patients."""
    import pandas as pd

    from ..io.nifti import write_nifti
    from ..io.volume import CTVolume

    out = Path(out)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    rows = []
    rng = np.random.default_rng(seed + 999)
    for i in range(n_cases):
        cid = f"HCC_{i + 1:03d}"
        hu, labels, tlvr = toy_case(seed * 1000 + i, shape)
        ct = CTVolume(hu, spacing=(2.5, 2.0, 2.0))
        write_nifti(ct, out / "imagesTr" / f"{cid}.nii.gz")
        write_nifti(ct.with_array(labels), out / "labelsTr" / f"{cid}.nii.gz", labels=True)
        rows.append(
            {
                "TCIA_ID": cid,
                "T_involvment": 2 if tlvr > 0.05 else 1,
                "AFP": float(np.exp(3 + 20 * tlvr + rng.normal(0, 0.5))),
                "age": float(rng.integers(45, 85)),
                "CLIP_Score": int(np.clip(round(tlvr * 30 + rng.normal(0, 0.7)), 0, 6)),
            }
        )
    pd.DataFrame(rows).to_csv(out / "clinical.csv", index=False)
    return out
