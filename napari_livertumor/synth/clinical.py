"""An HCC-TACE-Seg-shaped clinical table linked to each phantom's true tumor burden.

Staging columns are derived the way clinicians derive them (CLIP from Child-Pugh, tumor
morphology, AFP and portal vein thrombosis; TNM from size, count, vascular invasion, nodes and
metastasis; BCLC from burden, performance and liver function), but from *noisy observations*
of the true burden, so they carry real but imperfect signal for weak supervision. About 5–10 %
of the values are missing, as in the real file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Column order of the generated table (a subset of the real file's ~55 columns).
COLUMNS = (
    "TCIA_ID",
    "age",
    "agegp",
    "Sex",
    "hepatitis",
    "Smoking",
    "Alcohol",
    "fhx_can",
    "fhx_livc",
    "Diabetes",
    "Evidence_of_cirh",
    "CPS",
    "Pathology",
    "tumor_nodul",
    "T_involvment",
    "AFP",
    "AFP_group",
    "Tr_Size",
    "Vascular invasion",
    "Portal Vein Thrombosis",
    "Metastasis",
    "Lymphnodes",
    "CLIP",
    "CLIP_Score",
    "Okuda",
    "TNM",
    "BCLC",
    "Personal history of cancer",
    "Interval_BL",
    "TTP",
    "OS",
    "Censored_0_progressed_1",
    "Death_1_StillAliveorLostToFU_0",
    "1_RECIST",
    "1_EASL",
    "1_mRECIST",
)
_NEVER_MISSING = {"TCIA_ID", "tumor_nodul", "T_involvment", "Tr_Size"}
_TNM = ("Stage-I", "Stage-II", "Stage-IIIA", "Stage-IIIB", "Stage-IIIC", "Stage-IVA", "Stage-IVB")


def make_clinical_table(
    phantom_infos: Sequence[dict],
    seed: int,
    ids: Sequence[str] | None = None,
    missing_rate: float = 0.07,
) -> pd.DataFrame:
    """One row per patient, values linked to the phantom's tumor burden.

    Parameters
    ----------
    phantom_infos : sequence of dict
        ``Phantom.info`` of each patient (uses ``tlvr``, ``tumors``, ``n_tumors``,
        ``max_tumor_diameter_mm``, ``cirrhotic``, ``ascites``).
    seed : int
        Seed of the clinical noise (deterministic).
    ids : sequence of str, optional
        ``TCIA_ID`` per patient; default ``HCC_001``, ``HCC_002``...
    missing_rate : float
        Fraction of values blanked per column (never the ID, nodularity, involvement, size).

    Returns
    -------
    DataFrame
        Columns :data:`COLUMNS`; categorical values spelled as in the real file
        (``'< or = 50%'``/``'>50%'``, ``Stage_0``…``Stage_6``, ``Stage-I``…``Stage-IVB``).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC11]))
    ids = list(ids) if ids is not None else [f"HCC_{i + 1:03d}" for i in range(len(phantom_infos))]
    if len(ids) != len(phantom_infos):
        raise ValueError(f"{len(ids)} ids for {len(phantom_infos)} phantoms")
    rows = [_patient_row(rng, pid, info) for pid, info in zip(ids, phantom_infos, strict=True)]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    # each patient's blank cells from a stream of its own (its place in the table): a cohort
    # of 160 and one of 60 of the same seed share their first 60 rows whole, blanks included
    may_blank = [c for c in df.columns if c not in _NEVER_MISSING]
    blank = (
        np.stack(
            [
                np.random.default_rng(np.random.SeedSequence([int(seed), 0xB1A, i])).random(
                    len(may_blank)
                )
                < missing_rate
                for i in range(len(df))
            ]
        )
        if len(df)
        else np.zeros((0, len(may_blank)), bool)
    )
    for j, col in enumerate(may_blank):
        if blank[:, j].any():
            df[col] = df[col].astype(object)
            df.loc[blank[:, j], col] = np.nan
    return df


def _patient_row(rng: np.random.Generator, pid: str, info: dict) -> dict:
    tlvr = float(info.get("tlvr", 0.0))
    # the lesions and the size a reader would find in the label map (a phantom of before these
    # keys: the lesions drawn, and their volume-equivalent diameter)
    n_tum = int(info.get("lesions_labelled", info.get("n_tumors", len(info.get("tumors", [])))))
    size_cm = float(info.get("max_tumor_axial_mm", info.get("max_tumor_diameter_mm", 0.0))) / 10
    cirr = bool(info.get("cirrhotic", rng.random() < 0.6))
    ascites = bool(info.get("ascites", False))
    age = int(np.clip(rng.normal(64, 10), 30, 90))
    # what a radiologist would estimate: the involved fraction exceeds the volume ratio
    involvement = 1 - np.exp(-4.5 * tlvr * rng.lognormal(0, 0.35)) + (0.08 if n_tum > 2 else 0)
    gt50 = involvement > 0.5
    log_afp = np.log(12) + 6.0 * tlvr + 0.08 * size_cm + rng.normal(0, 1.6)
    afp = float(np.round(np.exp(log_afp), 1))
    burden = 4 * tlvr + 0.15 * size_cm + 0.3 * (n_tum > 1)
    vasc = rng.random() < _sigmoid(-2.5 + 1.6 * burden)
    pvt = vasc and rng.random() < 0.55
    lymph = rng.random() < _sigmoid(-3.0 + 0.9 * burden)
    meta = rng.random() < _sigmoid(-3.5 + 0.9 * burden)
    cps_score = 0.6 * cirr + 0.8 * ascites + rng.normal(0, 0.4)  # Child-Pugh: mostly A, few C
    cps = "A" if cps_score < 0.7 else ("B" if cps_score < 1.5 else "C")
    morph = 2 if gt50 else (1 if n_tum > 1 else 0)
    clip = int({"A": 0, "B": 1, "C": 2}[cps] + morph + (afp >= 400) + pvt)
    tnm = _tnm(size_cm * rng.uniform(0.9, 1.1), n_tum, vasc, pvt, lymph, meta, rng)
    bclc = _bclc(size_cm, n_tum, pvt or vasc, lymph or meta, cps, rng)
    # Okuda points (involvement > 50 %, ascites, poor liver function): 0 → I, 1–2 → II, 3+ → III
    okuda_points = int(gt50) + int(ascites) + int(cps == "C")
    ttp = float(np.round(rng.exponential(14 * np.exp(-2.5 * tlvr - 0.3 * (n_tum > 1))) + 1, 1))
    progressed = rng.random() < 0.8
    os_ = float(np.round(ttp + rng.exponential(18 * np.exp(-2.0 * tlvr)), 1))
    died = rng.random() < min(0.95, 0.5 + tlvr)
    response = rng.choice(["CR", "PR", "SD", "PD"], p=_response_p(tlvr))
    return {
        "TCIA_ID": pid,
        "age": age,
        "agegp": "<=60" if age <= 60 else ">60",
        "Sex": "M" if rng.random() < 0.78 else "F",
        "hepatitis": rng.choice(
            ["HCV only", "HBV only", "HBV and HCV", "No virus"], p=[0.55, 0.12, 0.05, 0.28]
        ),
        "Smoking": int(rng.random() < 0.55),
        "Alcohol": int(rng.random() < (0.55 if cirr else 0.35)),
        "fhx_can": int(rng.random() < 0.3),
        "fhx_livc": int(rng.random() < 0.08),
        "Diabetes": int(rng.random() < 0.3),
        "Evidence_of_cirh": int(cirr if rng.random() < 0.9 else not cirr),
        "CPS": cps,
        "Pathology": rng.choice(
            [
                "Well differentiated",
                "Moderately differentiated",
                "Poorly differentiated",
                "No biopsy",
            ],
            p=[0.2, 0.3, 0.1, 0.4],
        ),
        # a tumor-free phantom (a few per cohort, for false positives) has no nodularity: blank,
        # not 'uninodular' (HCC-TACE-Seg has no such patient; its table always has a tumor)
        "tumor_nodul": ("multinodular" if n_tum > 1 else "uninodular") if n_tum else None,
        "T_involvment": ">50%" if gt50 else "< or = 50%",
        "AFP": afp,
        "AFP_group": ">=400" if afp >= 400 else "<400",
        "Tr_Size": float(np.round(size_cm * rng.uniform(0.85, 1.15), 1)),
        "Vascular invasion": int(vasc),
        "Portal Vein Thrombosis": int(pvt),
        "Metastasis": int(meta),
        "Lymphnodes": int(lymph),
        "CLIP": clip,
        "CLIP_Score": f"Stage_{clip}",
        "Okuda": "Stage I"
        if okuda_points == 0
        else "Stage II"
        if okuda_points <= 2
        else "Stage III",
        "TNM": tnm,
        "BCLC": bclc,
        "Personal history of cancer": int(rng.random() < 0.1),
        "Interval_BL": int(rng.integers(1, 120)),
        "TTP": ttp,
        "OS": os_,
        "Censored_0_progressed_1": int(progressed),
        "Death_1_StillAliveorLostToFU_0": int(died),
        "1_RECIST": response,
        **_enhancement_responses(response, rng),
    }


_RESPONSES = ("CR", "PR", "SD", "PD")


def _enhancement_responses(recist: str, rng) -> dict:
    """mRECIST and EASL after TACE, from the same patient's RECIST: both measure the enhancing
    (viable) tumor, so they read the same necrosis as a better response than RECIST's sizes do
    (a step better about half the time) and agree with each other mostly (EASL a step off one
    time in six). Drawn independently of RECIST, they had contradicted it at random (CR by
    mRECIST beside PD by RECIST)."""
    # two draws, as the two independent choices took: later patients' rows are unchanged
    u_mrecist, u_easl = rng.random(2)
    mrecist = _step(recist, -1) if u_mrecist < 0.5 else recist
    easl = mrecist if u_easl >= 1 / 6 else _step(mrecist, -1 if u_easl < 1 / 12 else 1)
    return {"1_EASL": easl, "1_mRECIST": mrecist}


def _step(response: str, by: int) -> str:
    """``response`` ``by`` categories worse (+) or better (-), within CR..PD."""
    return _RESPONSES[int(np.clip(_RESPONSES.index(response) + by, 0, len(_RESPONSES) - 1))]


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def _tnm(size_cm, n, vasc, pvt, lymph, meta, rng) -> str:
    if meta:
        stage = 6
    elif lymph:
        stage = 5
    elif pvt:
        stage = 3 if rng.random() < 0.8 else 4
    elif n > 1 and size_cm > 5:
        stage = 2
    elif n > 1 or vasc:
        stage = 1
    else:
        stage = 0
    if rng.random() < 0.1:  # staging disagreements
        stage = int(np.clip(stage + rng.choice([-1, 1]), 0, 6))
    return _TNM[stage]


def _bclc(size_cm, n, vascular, spread, cps, rng) -> str:
    if cps == "C":
        out = "D"
    elif vascular or spread:
        out = "C"
    elif n == 1 and size_cm < 2:
        out = "0"
    elif n == 1 or (n <= 3 and size_cm <= 3):
        out = "A"
    else:
        out = "B"
    if rng.random() < 0.08:
        out = rng.choice(["A", "B", "C"])
    return str(out)


def _response_p(tlvr: float):
    p = np.array([0.1, 0.35, 0.35, 0.2]) * np.array([1 - tlvr, 1, 1, 1 + 2 * tlvr])
    return p / p.sum()
