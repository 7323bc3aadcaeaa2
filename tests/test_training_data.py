"""Training data: both `--data` layouts, patient-level splits, label mapping per stage."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from napari_livertumor.training.data import (
    find_clinical,
    index_cases,
    load_case,
    make_split,
    stage_labels,
    tumor_liver_ratio,
)


@pytest.fixture(scope="module")
def tcia_cohort(tmp_path_factory):
    from napari_livertumor.synth import make_cohort

    return make_cohort(tmp_path_factory.mktemp("tcia"), 3, seed=4, layout="tcia", shape="small")


def test_tcia_layout_reads_the_ct_series_the_seg_references(tcia_cohort):
    records = index_cases(tcia_cohort)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_002", "HCC_003"]
    assert all(r.layout == "tcia" and r.series_uid for r in records)
    ct, hcc = load_case(records[0])
    assert hcc.shape == ct.shape and hcc.dtype == np.uint8
    assert set(np.unique(hcc)) <= {0, 1, 2, 3, 4} and (hcc == 1).any()
    assert ct.meta.get("series_uid") == records[0].series_uid
    assert find_clinical(tcia_cohort).name.startswith("HCC-TACE-Seg_clinical")


def test_a_patient_without_seg_is_skipped_with_a_logged_reason(tcia_cohort, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(tcia_cohort, data)
    for seg in (data / "HCC_002").rglob("*Segmentation*"):
        shutil.rmtree(seg)
    with caplog.at_level(logging.WARNING):
        records = index_cases(data)
    assert [r.case_id for r in records] == ["HCC_001", "HCC_003"]
    assert "HCC_002" in caplog.text and "no DICOM SEG" in caplog.text


def test_splits_are_by_patient_seeded_and_disjoint():
    ids = [f"HCC_{i:03d}" for i in range(1, 41)]
    a = make_split(ids, seed=1)
    assert a == make_split(ids, seed=1)
    assert a != make_split(ids, seed=2)
    assert len(a["test"]) == 8 and len(a["train"]) + len(a["val"]) == 32
    assert not (set(a["train"]) & set(a["test"])) and not (set(a["val"]) & set(a["test"]))
    folds = [make_split(ids, seed=1, folds=5, fold=k)["test"] for k in range(5)]
    assert sorted(sum(folds, [])) == ids  # every patient is tested exactly once over the folds


def test_label_mapping_per_stage_and_tlvr():
    hcc = np.array([0, 1, 1, 2, 3, 4])
    assert stage_labels(hcc, "liver").tolist() == [0, 1, 1, 1, 1, 0]
    assert stage_labels(hcc, "tumor").tolist() == [0, 1, 1, 2, 1, 0]
    assert tumor_liver_ratio(hcc) == pytest.approx(1 / 4)
