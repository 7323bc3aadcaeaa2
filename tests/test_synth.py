"""The synthetic cohort: a user generates phantoms and cohorts and checks what they got."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

from napari_livertumor.synth import (
    PHASES,
    case_seed,
    generate_phantom,
    make_clinical_table,
    make_cohort,
)

#: the ``info`` of cohort seed 200's small phantoms, made once in a test process
_COHORT_INFOS: list[dict] = []


def _cohort_infos(n: int) -> list[dict]:
    """Copies of the ``info`` of the first ``n`` small phantoms of cohort seed 200. Three tests
    measure such a cohort; each made its own (82 phantoms, where 40 make them all)."""
    while len(_COHORT_INFOS) < n:
        _COHORT_INFOS.append(generate_phantom(case_seed(200, len(_COHORT_INFOS)), "small").info)
    return copy.deepcopy(_COHORT_INFOS[:n])


def _eroded(mask: np.ndarray, it: int = 1) -> np.ndarray:
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)  # in-plane only: slices can be thick
    return ndimage.binary_erosion(mask, st, iterations=it)


# ------------------------------------------------------------------------------ one phantom
def test_small_phantom_is_a_ct_with_hcc_labels():
    ph = generate_phantom(3, "small")
    assert ph.ct.array.dtype == np.int16 and ph.ct.shape == (32, 96, 96)
    assert ph.labels.dtype == np.uint8 and ph.labels.shape == ph.ct.shape
    assert set(np.unique(ph.labels)) <= {0, 1, 2, 3, 4}
    assert {1, 3, 4} <= set(np.unique(ph.labels))
    assert np.allclose(ph.ct.direction, np.eye(3))
    assert ph.ct.meta["phase"] == ph.info["phase"] in PHASES
    # air outside the body, soft tissue inside
    assert ph.ct.array[:, 0, 0].max() < -500
    assert 0 < ph.info["tlvr"] < 1 or ph.info["n_tumors"] == 0


def test_same_seed_gives_the_same_phantom_and_another_seed_does_not():
    a, b, c = (generate_phantom(s, "small") for s in (11, 11, 12))
    assert np.array_equal(a.ct.array, b.ct.array) and np.array_equal(a.labels, b.labels)
    assert a.info == b.info
    assert not np.array_equal(a.labels, c.labels)


def test_phase_changes_intensities_not_anatomy():
    art = generate_phantom(5, "small", phase="arterial")
    pv = generate_phantom(5, "small", phase="portal venous")
    assert np.array_equal(art.labels, pv.labels)
    aorta = _eroded(art.labels == 4)
    assert art.ct.array[aorta].mean() > pv.ct.array[aorta].mean() + 40


def test_phase_changes_intensities_not_the_other_draws():
    """Another phase of the same seed: other HU, the same noise level and texture (a draw made
    in some phases only shifted every later one: noise 12.9 / 7.7 / 9.0 HU by phase)."""
    noise = {p: generate_phantom(3, "small", phase=p).info.get("noise_sd") for p in PHASES}
    assert len(set(noise.values())) == 1, noise
    # but not the same noise: two phases of a patient (a stacked second phase, a PRE LIVER
    # series) subtracted gave a nearly noise-free image
    art, pv = (generate_phantom(3, "small", phase=p) for p in ("arterial", "portal venous"))
    liver = _eroded(art.labels == 1)
    diff = art.ct.array.astype(float)[liver] - pv.ct.array.astype(float)[liver]
    assert diff.std() > 1.2 * noise["arterial"]


def test_no_two_slices_share_their_noise():
    """Real CT noise is independent slice to slice; a bank of 24 noise slices reused as drawn
    gave every slice of a 200-slice phantom the very noise of others (correlation 0.999)."""
    a = generate_phantom(3, "medium").ct.array.astype(np.float32)
    b = generate_phantom(3, "medium", noise_sd=0).ct.array.astype(np.float32)
    flat = (a - b).reshape(a.shape[0], -1)
    flat -= flat.mean(axis=1, keepdims=True)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    corr = flat @ flat.T
    np.fill_diagonal(corr, 0)
    assert a.shape[0] > 24 and corr.max() < 0.2


def test_unknown_shape_phase_or_override_is_refused():
    with pytest.raises(ValueError, match="shape"):
        generate_phantom(0, "huge")
    with pytest.raises(ValueError, match="phase"):
        generate_phantom(0, "small", phase="delayed")
    with pytest.raises(TypeError, match="tumour_count"):
        generate_phantom(0, "small", tumour_count=3)
    with pytest.raises(ValueError, match="tumor kinds"):
        generate_phantom(0, "small", tumor_kinds=["benign"])


@pytest.mark.parametrize("kind", ["typical", "hypovascular", "iso", "rim", "infiltrative"])
def test_every_tumor_kind_can_be_asked_for(kind):
    ph = generate_phantom(6, "small", tumor_diameters_mm=[40], tumor_kinds=[kind])
    assert ph.info["tumors"][0]["kind"] == kind and (ph.labels == 2).any()


@pytest.mark.parametrize("seed", [1, 2])
def test_full_phantom_has_a_realistic_liver_and_geometry(seed):
    ph = generate_phantom(seed, "full")
    dz, dy, dx = ph.ct.spacing
    assert ph.ct.shape[1:] == (512, 512) and 60 <= ph.ct.shape[0] <= 200
    assert 0.6 <= dx <= 0.98 and dx == dy and 1.0 <= dz <= 5.0
    assert 1000 <= ph.info["whole_liver_ml"] <= 2500
    # the liver is on the patient's right: low x index, and spans 12-28 cm cranio-caudally
    # (up to 28 with a Riedel's lobe), all of it inside the scan
    zz, _, xx = np.nonzero(ph.labels == 1)
    assert xx.mean() < 256
    assert 120 <= (zz.max() - zz.min() + 1) * dz <= 280
    assert zz.min() > 0 and zz.max() < ph.ct.shape[0] - 1
    # the aorta runs left of the midline, in front of the spine, through the whole scan
    _, _, ax = np.nonzero(ph.labels == 4)
    assert ax.mean() > xx.mean()
    assert (ph.labels == 4).any(axis=(1, 2)).all()


@pytest.mark.parametrize("phase", PHASES)
def test_mean_hu_per_class_is_realistic_for_each_phase(phase):
    expected = {  # (liver, aorta, portal vein) mean HU bounds, incl. scanner offset/gain
        "non-contrast": ((40, 80), (20, 65), (20, 65)),
        "arterial": ((55, 100), (220, 430), (85, 165)),
        "portal venous": ((85, 145), (135, 215), (135, 215)),
    }[phase]
    for seed in (21, 22):
        ph = generate_phantom(seed, "medium", phase=phase, fatty_liver=False, noise_sd=10)
        ct = ph.ct.array.astype(float)
        for value, (lo, hi) in zip((1, 4, 3), expected, strict=True):
            mask = _eroded(ph.labels == value, 2 if value == 1 else 1)
            if mask.sum() < 20:
                continue
            mean = float(np.median(ct[mask]))
            assert lo <= mean <= hi, (phase, value, mean)


def test_fatty_liver_is_darker_than_normal_liver():
    a = generate_phantom(4, "small", phase="non-contrast", fatty_liver=True)
    b = generate_phantom(4, "small", phase="non-contrast", fatty_liver=False)
    m = _eroded(a.labels == 1)
    assert a.ct.array[m].mean() < b.ct.array[m].mean() - 10


def test_requested_tumors_are_there_with_their_size_and_inside_the_liver():
    ph = generate_phantom(8, "medium", tumor_diameters_mm=[60, 20])
    tumors = ph.info["tumors"]
    assert len(tumors) == 2
    for t in tumors:
        sphere_ml = np.pi / 6 * (t["diameter_mm"] / 10) ** 3
        assert t["volume_ml"] <= 1.6 * sphere_ml, t
        # a lesion at the liver's edge is cut by what lies outside; inner ones keep their size
        assert t["volume_ml"] >= (0.05 if t["edge"] else 0.3) * sphere_ml, t
    tumor = ph.labels == 2
    comps, n = ndimage.label(tumor)
    assert n >= 1
    near_liver = ndimage.binary_dilation(ph.labels == 1, iterations=1)
    for k in range(1, n + 1):
        assert (near_liver & (comps == k)).any()  # every lesion sits in or on the liver
    assert ph.info["tlvr"] == pytest.approx(
        tumor.sum() / np.isin(ph.labels, (1, 2, 3)).sum(), rel=1e-6
    )


def test_reported_tumor_center_is_where_the_tumor_label_is():
    ph = generate_phantom(12, "medium", tumor_diameters_mm=[55])
    z, y, x = np.nonzero(ph.labels == 2)
    centroid_lps = ph.ct.affine_lps @ np.array([x.mean(), y.mean(), z.mean(), 1.0])
    reported = np.array(ph.info["tumors"][0]["center_mm"])
    assert np.linalg.norm(centroid_lps[:3] - reported) < 15.0


def test_no_tumor_phantom_has_no_tumor_label():
    ph = generate_phantom(9, "small", n_tumors=0)
    assert not (ph.labels == 2).any() and ph.info["tlvr"] == 0 and ph.info["tumors"] == []


def test_tumor_burden_follows_the_drawn_distribution():
    infos = _cohort_infos(40)
    counts = np.array([i["n_tumors"] for i in infos])
    diam = np.concatenate([[t["diameter_mm"] for t in i["tumors"]] for i in infos])
    main = [i["tumors"][0]["diameter_mm"] for i in infos if i["tumors"]]
    assert 0.3 <= (counts == 1).mean() <= 0.8  # uni- and multinodular
    assert (counts >= 2).mean() >= 0.15
    assert diam.min() >= 5 and diam.max() <= 120 and 30 <= np.median(main) <= 75
    assert len({i["phase"] for i in infos}) == 3
    spacing = [i["spacing"][0] for i in infos]
    assert max(spacing) > min(spacing)


# ---------------------------------------------------------------------------- clinical table
def test_a_larger_cohort_of_a_seed_begins_with_the_smaller_ones_table():
    """Blank cells were drawn per column over the whole table: the first 60 rows of a cohort of
    160 differed from a cohort of 60 of the same seed in 251 cells."""
    infos = _cohort_infos(12)
    small = make_clinical_table(infos[:5], seed=200)
    large = make_clinical_table(infos, seed=200)
    # as written (a column with a blank in one table only has another dtype in memory)
    assert small.to_csv(index=False) == large.iloc[:5].to_csv(index=False)
    assert large.isna().to_numpy().any()  # and some cells are blank


def test_clinical_table_has_the_real_columns_and_tracks_tumor_burden():
    infos = _cohort_infos(30)
    df = make_clinical_table(infos, seed=200)
    for col in (
        "TCIA_ID",
        "age",
        "Sex",
        "T_involvment",
        "CLIP_Score",
        "TNM",
        "BCLC",
        "AFP",
        "AFP_group",
        "Tr_Size",
        "tumor_nodul",
        "Vascular invasion",
        "Metastasis",
        "Personal history of cancer",
        "fhx_can",
        "Alcohol",
        "Smoking",
        "Evidence_of_cirh",
        "Diabetes",
        "Lymphnodes",
        "Interval_BL",
        "TTP",
        "OS",
    ):
        assert col in df.columns
    assert list(df["TCIA_ID"][:2]) == ["HCC_001", "HCC_002"]
    assert set(df["T_involvment"]) <= {"< or = 50%", ">50%"}
    assert set(df["CLIP_Score"].dropna()) <= {f"Stage_{k}" for k in range(7)}
    tlvr = [i["tlvr"] for i in infos]
    involvement = (df["T_involvment"] == ">50%").astype(int)
    assert stats.spearmanr(tlvr, involvement).statistic > 0.3
    size = [i["max_tumor_diameter_mm"] for i in infos]
    assert stats.spearmanr(size, df["Tr_Size"]).statistic > 0.8
    missing = df.drop(columns=["TCIA_ID"]).isna().to_numpy().mean()
    assert 0.02 <= missing <= 0.15
    again = make_clinical_table(infos, seed=200)
    assert again.equals(df)


def test_a_tumor_free_phantoms_clinical_row_gives_no_nodularity():
    """It said 'uninodular' (one nodule) of a liver without any."""
    infos = [
        generate_phantom(9, "small", n_tumors=0).info,
        generate_phantom(case_seed(200, 0), "small", n_tumors=1).info,
        generate_phantom(case_seed(200, 1), "small", n_tumors=3).info,
    ]
    df = make_clinical_table(infos, seed=200, missing_rate=0.0)
    assert pd.isna(df["tumor_nodul"][0]) and df["Tr_Size"][0] == 0
    assert list(df["tumor_nodul"][1:]) == ["uninodular", "multinodular"]


# ------------------------------------------------------------------------------ cohorts
def test_tcia_cohort_reads_back_through_our_dicom_and_seg_readers(tmp_path):
    import json

    from napari_livertumor.io.clinical import read_clinical
    from napari_livertumor.io.dicom import read_dicom_series
    from napari_livertumor.io.seg import read_dicom_seg
    from napari_livertumor.io.tcia import load_tcia_case

    out = make_cohort(tmp_path / "cohort", 3, seed=5, layout="tcia", quirks=True)
    manifest = json.loads((out / "synth_manifest.json").read_text())
    assert [m["TCIA_ID"] for m in manifest] == ["HCC_001", "HCC_002", "HCC_003"]
    quirks = " ".join(q for m in manifest for q in m["quirks"])
    assert "stacked" in quirks and "duplicate" in quirks and "reversed" in quirks
    for i, m in enumerate(manifest):
        series = out / m["ct_series"]
        assert series.parent.parent.name == m["TCIA_ID"]
        assert series.name.split("-")[1].strip() == "LIVER 3 PHASE CAP"
        stacked = any("stacked" in q for q in m["quirks"])
        volume = read_dicom_series(series, acquisition=1 if stacked else None)
        truth = generate_phantom(case_seed(5, i), "small")
        assert np.array_equal(volume.array, truth.ct.array)
        labels = read_dicom_seg(out / m["seg"], volume)
        assert np.array_equal(labels, truth.labels)
        # the patient-level loader finds the segmented phase among the quirks by itself
        ct, seg = load_tcia_case(out / m["TCIA_ID"])
        assert np.array_equal(ct.array, truth.ct.array) and np.array_equal(seg, truth.labels)
        other = out / m["other_series"][0]  # a thicker non-contrast series in the same study
        assert other.parent == series.parent and "PRE LIVER" in other.name
        pre = read_dicom_series(other)
        assert pre.spacing[0] == pytest.approx(2 * volume.spacing[0])
        assert pre.meta["series_uid"] != volume.meta["series_uid"]
        if stacked:  # each acquisition's contrast agent is its own phase's
            import pydicom

            for f in series.glob("*.dcm"):
                ds = pydicom.dcmread(f, stop_before_pixels=True)
                plain = "non-contrast" in str(ds.get("ImageComments", ""))
                assert (ds.get("ContrastBolusAgent") is None) == plain, f
    table = read_clinical(out / "HCC-TACE-Seg_clinical_data-V2.xlsx")
    assert list(table.frame.index) == ["HCC_001", "HCC_002", "HCC_003"]
    assert (out / "HCC-TACE-Seg_clinical_data-V2.csv").exists()


def test_nifti_cohort_from_the_command_line(tmp_path):
    from napari_livertumor.cli import main
    from napari_livertumor.io.nifti import read_nifti

    rc = main(["synth", "-o", str(tmp_path), "--cases", "2", "--seed", "3", "--layout", "nifti"])
    assert rc == 0
    img = read_nifti(tmp_path / "imagesTr" / "HCC_002.nii.gz")
    lab = read_nifti(tmp_path / "labelsTr" / "HCC_002.nii.gz")
    truth = generate_phantom(case_seed(3, 1), "small")
    assert np.array_equal(img.array, truth.ct.array) and np.array_equal(lab.array, truth.labels)
    assert img.same_grid(lab)
    assert (tmp_path / "clinical.csv").exists() and (tmp_path / "clinical.xlsx").exists()
    # the same seed, the same bytes: the XLSX held the time it was written
    import time

    time.sleep(2.1)  # (a zip entry's time has 2 s steps)
    again = tmp_path / "again"
    args = ["synth", "-o", str(again), "--cases", "2", "--seed", "3", "--layout", "nifti"]
    assert main(args) == 0
    assert (tmp_path / "clinical.xlsx").read_bytes() == (again / "clinical.xlsx").read_bytes()
    import pandas as pd

    sheet = pd.read_excel(again / "clinical.xlsx", sheet_name="data table")
    assert list(sheet.columns) == list(pd.read_csv(again / "clinical.csv").columns)


def test_sample_data_gives_an_aligned_ct_and_ground_truth():
    from napari_livertumor._sample_data import make_sample_ct

    (ct, ct_kw, ct_type), (lab, lab_kw, lab_type) = make_sample_ct()
    assert (ct_type, lab_type) == ("image", "labels")
    assert ct.shape == lab.shape and ct.shape[1:] == (256, 256)
    assert ct_kw["scale"] == lab_kw["scale"] and ct_kw["translate"] == lab_kw["translate"]
    assert ct_kw["contrast_limits"] == (-160, 240)
    assert {1, 2, 3, 4} <= set(np.unique(lab))


def test_synth_command_refuses_a_file_as_output_folder(tmp_path, capsys):
    from napari_livertumor.cli import main

    target = tmp_path / "not_a_folder"
    target.write_text("x")
    assert main(["synth", "-o", str(target), "--cases", "1"]) == 1
    assert "cannot create the output folder" in capsys.readouterr().err
    assert main(["synth", "-o", str(tmp_path / "out"), "--cases", "0"]) == 2


def test_synth_never_replaces_what_a_folder_holds_unless_forced(tmp_path, capsys):
    """A mistyped -o pointing at a real download must not lose patients or the clinical table."""
    from napari_livertumor.cli import main

    out = tmp_path / "cohort"
    assert main(["synth", "-o", str(out), "--cases", "2", "--layout", "nifti"]) == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert main(["synth", "-o", str(out), "--cases", "1", "--layout", "nifti"]) == 1
    assert "not empty" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before

    (out / "notes.txt").write_text("mine")
    assert main(["synth", "-o", str(out), "--cases", "1", "--layout", "nifti", "--force"]) == 0
    # one consistent cohort: the earlier cohort's second case is gone, the user's file is not
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["HCC_001.nii.gz"]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["HCC_001.nii.gz"]
    manifest = json.loads((out / "synth_manifest.json").read_text())
    assert [m["TCIA_ID"] for m in manifest] == ["HCC_001"]
    assert (out / "notes.txt").read_text() == "mine"


def test_synth_force_never_removes_what_a_user_added_to_a_patient_folder(tmp_path, capsys):
    """--force removed whole patient folders: a user's notes and a series of their own inside
    went with the synthetic files, without a word."""
    from napari_livertumor.cli import main

    out = tmp_path / "cohort"
    args = ["synth", "-o", str(out), "--cases", "2", "--shape", "small"]
    assert main(args) == 0
    study = next((out / "HCC_002").iterdir())
    (study / "999-MY SERIES").mkdir()
    (study / "999-MY SERIES" / "a.dcm").write_bytes(b"mine")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    for cases in ("2", "1"):  # replaced or removed as stale: refused alike
        assert main([*args[:-3], cases, "--shape", "small", "--force"]) == 1
        err = capsys.readouterr().err
        assert "did not write" in err and "999-MY SERIES/a.dcm" in err
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    (study / "999-MY SERIES" / "a.dcm").unlink()
    assert main([*args[:-3], "1", "--shape", "small", "--force"]) == 0  # (HCC_002 removed)

    # a --force run with another seed stopped after its first case: its own new files are
    # no stranger's, and the run is redone with --force again
    from napari_livertumor.errors import Cancelled
    from napari_livertumor.progress import Reporter
    from napari_livertumor.synth.cohort import make_cohort

    def stop_after_first(stage, done, total):
        if done >= 1:
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        make_cohort(out, 2, seed=2, shape="small", overwrite=True,
                    reporter=Reporter(progress=stop_after_first))  # fmt: skip
    make_cohort(out, 1, seed=2, shape="small", overwrite=True)


def test_synth_force_refuses_a_folder_that_holds_no_cohort(tmp_path, capsys):
    """--force went ahead into a folder of segmentation results and wrote a cohort beside them."""
    from napari_livertumor.cli import main

    out = tmp_path / "results"
    out.mkdir()
    (out / "HCC_001_labels.nii.gz").write_bytes(b"x")
    assert main(["synth", "-o", str(out), "--cases", "1", "--layout", "nifti", "--force"]) == 1
    assert "holds none" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["HCC_001_labels.nii.gz"]


def test_make_cohort_names_its_parameter_beside_the_flag(tmp_path):
    """QA s50api: make_cohort into a folder that is not empty said "pass --force", which a
    Python caller does not have: its parameter is overwrite=True."""
    from napari_livertumor.errors import InputError
    from napari_livertumor.synth import make_cohort

    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(InputError, match=r"--force \(overwrite=True\)"):
        make_cohort(tmp_path, 1, shape="small")
    with pytest.raises(InputError, match=r"--force \(overwrite=True\) replaces"):
        make_cohort(tmp_path, 1, shape="small", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_a_stopped_synth_run_can_be_redone_with_force(tmp_path):
    from napari_livertumor.errors import Cancelled
    from napari_livertumor.progress import Reporter
    from napari_livertumor.synth.cohort import make_cohort

    out = tmp_path / "cohort"
    calls = []

    def stop_after_first(stage, done, total):
        calls.append(done)
        if done >= 1:
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        make_cohort(
            out, 3, layout="nifti", shape="small", reporter=Reporter(progress=stop_after_first)
        )
    assert (out / "imagesTr" / "HCC_001.nii.gz").is_file()
    make_cohort(out, 1, layout="nifti", shape="small", overwrite=True)
    assert [m["TCIA_ID"] for m in json.loads((out / "synth_manifest.json").read_text())] == [
        "HCC_001"
    ]


@pytest.mark.parametrize(("first", "then"), [("nifti", "tcia"), ("tcia", "nifti")])
def test_synth_force_in_the_other_layout_leaves_nothing_of_the_old_cohort(tmp_path, first, then):
    """NIfTI files and clinical tables of a NIfTI cohort stayed beside a TCIA one written over
    it with --force, and evaluate then scored the old phantoms."""
    from napari_livertumor.cli import main
    from napari_livertumor.synth.cohort import CLINICAL_CSV, CLINICAL_XLSX

    out = tmp_path / "c"
    assert (
        main(["synth", "-o", str(out), "--cases", "2", "--shape", "small", "--layout", first]) == 0
    )
    assert main(
        ["synth", "-o", str(out), "--cases", "1", "--shape", "small", "--layout", then, "--force"]
    ) == 0  # fmt: skip
    names = sorted(p.name for p in out.iterdir())
    if then == "tcia":
        assert names == sorted(["HCC_001", CLINICAL_CSV, CLINICAL_XLSX, "synth_manifest.json"])
    else:
        assert names == sorted(
            ["imagesTr", "labelsTr", "clinical.csv", "clinical.xlsx", "synth_manifest.json"]
        )
        assert [p.name for p in (out / "imagesTr").iterdir()] == ["HCC_001.nii.gz"]


def test_an_interrupted_synth_says_the_cohort_is_incomplete_and_how_to_redo_it(
    tmp_path, capsys, monkeypatch
):
    import napari_livertumor.synth as synth
    from napari_livertumor.cli import main

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "make_cohort", stopped)
    assert main(["synth", "-o", str(tmp_path / "c"), "--cases", "2"]) == 130
    assert "interrupted before anything was written" in capsys.readouterr().err

    def stopped_after_a_file(out, *args, **kwargs):
        (tmp_path / "c").mkdir(exist_ok=True)
        (tmp_path / "c" / "synth_manifest.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "make_cohort", stopped_after_a_file)
    assert main(["synth", "-o", str(tmp_path / "c"), "--cases", "2"]) == 130
    err = capsys.readouterr().err
    assert "incomplete cohort" in err and "--force writes it again" in err


def test_the_same_seed_writes_the_same_dicom_and_seg_bytes(tmp_path):
    """The SEG had a new UID and creation time on every run: a cohort written again was new
    ground truth to convert's cache."""
    a, b = (make_cohort(tmp_path / n, 1, seed=4, shape="small") for n in ("a", "b"))
    files = sorted(p.relative_to(a) for p in a.rglob("*.dcm"))
    assert any("Segmentation" in str(f) for f in files)
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_synth_quirks_are_for_the_dicom_layout(tmp_path, capsys):
    from napari_livertumor.cli import main

    args = ["synth", "-o", str(tmp_path / "c"), "--cases", "1", "--layout", "nifti", "--quirks"]
    assert main(args) == 2
    assert "--layout tcia" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_the_clinical_size_and_nodularity_are_those_of_the_label_map():
    """Tr_Size was the drawn volume-equivalent diameter (a median 0.85 of the labels' largest
    axial diameter, down to 0.62) and nodularity the lesions drawn (satellites grown into their
    mass made a single mass 'multinodular'); 2 Okuda points gave Stage III."""
    from scipy import ndimage as ndi

    from napari_livertumor.stats import axial_diameter_mm

    infos, labels = [], []
    for i in range(6):
        ph = generate_phantom(case_seed(300, i), "small")
        infos.append(ph.info)
        labels.append(ph.labels)
    df = make_clinical_table(infos, seed=300, missing_rate=0.0)
    for info, lab, (_, row) in zip(infos, labels, df.iterrows(), strict=True):
        comps, n = ndi.label(lab == 2, structure=np.ones((3, 3, 3), bool))
        voxel_ml = float(np.prod(info["spacing"])) / 1000
        big = [k for k in range(1, n + 1) if (comps == k).sum() * voxel_ml >= 0.1]
        assert info["lesions_labelled"] == len(big)
        widest = max((axial_diameter_mm(comps == k, info["spacing"]) for k in big), default=0.0)
        assert info["max_tumor_axial_mm"] == pytest.approx(widest)
        if big:
            assert 0.84 * widest / 10 <= row["Tr_Size"] <= 1.16 * widest / 10 + 0.05
            assert row["tumor_nodul"] == ("multinodular" if len(big) > 1 else "uninodular")
    from napari_livertumor.synth.clinical import _patient_row

    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):  # involvement > 50 % and ascites: 2 points, 3 with Child-Pugh C
        row = _patient_row(rng, "HCC_001", {"tlvr": 0.9, "ascites": True, "n_tumors": 3})
        assert row["T_involvment"] == ">50%"
        assert row["Okuda"] == ("Stage III" if row["CPS"] == "C" else "Stage II"), row
        seen.add(row["Okuda"])
    assert seen == {"Stage II", "Stage III"}
    no_points = _patient_row(rng, "HCC_001", {"tlvr": 0.0, "ascites": False, "cirrhotic": False})
    assert no_points["Okuda"] == "Stage I" or no_points["CPS"] == "C"


def test_a_seed_in_another_shape_or_phase_writes_other_uids(tmp_path):
    """UIDs came from the seed alone: cohorts of one seed in two shapes held other pixels under
    the same SOP instance UIDs, and convert took the second for the first moved."""
    import pydicom

    def uids(folder, **kw):
        out = make_cohort(folder, 1, seed=5, layout="tcia", shape="small", **kw)
        files = sorted(out.rglob("*.dcm"))
        return {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}

    first = uids(tmp_path / "a")
    assert uids(tmp_path / "b") == first  # the same arguments: the same files
    assert not uids(tmp_path / "c", phase="arterial") & first


def test_synth_force_never_writes_over_a_nifti_file_it_did_not_write(tmp_path, capsys):
    """The NIfTI layout's --force replaced a user's imagesTr/HCC_003.nii.gz (a converted real
    patient beside a 2-case cohort) without a word."""
    from napari_livertumor.cli import main

    out = tmp_path / "cohort"
    args = ["synth", "-o", str(out), "--shape", "small", "--layout", "nifti", "--cases"]
    assert main([*args, "2"]) == 0
    for sub in ("imagesTr", "labelsTr"):
        (out / sub / "HCC_003.nii.gz").write_bytes(b"mine")
    assert main([*args, "3", "--force"]) == 1
    err = capsys.readouterr().err
    assert "did not write" in err and "HCC_003.nii.gz" in err
    assert (out / "imagesTr" / "HCC_003.nii.gz").read_bytes() == b"mine"
    assert main([*args, "2", "--force"]) == 0  # its own two are rewritten, the user's kept
    assert (out / "labelsTr" / "HCC_003.nii.gz").read_bytes() == b"mine"
    # a manifest written on Windows names its files with "\\": still its own
    manifest = out / "synth_manifest.json"
    entries = json.loads(manifest.read_text())
    assert entries[0]["image"] == "imagesTr/HCC_001.nii.gz"
    for e in entries:
        e["image"], e["label"] = e["image"].replace("/", "\\"), e["label"].replace("/", "\\")
    manifest.write_text(json.dumps(entries))
    assert main([*args, "2", "--force"]) == 0


def test_the_recorded_liver_hu_is_the_images_after_the_scanners_gain_and_offset():
    """The manifest's liver_hu was taken before the scanner's gain and offset: up to 7 HU off
    the image's liver."""
    from scipy import ndimage as ndi

    for seed in range(4):
        ph = generate_phantom(seed, "small")
        liver = ndi.binary_erosion(np.asarray(ph.labels) == 1, iterations=2)
        median = float(np.median(np.asarray(ph.ct.array, float)[liver]))
        assert abs(ph.info["liver_hu"] - median) <= 3.0, (seed, ph.info["liver_hu"], median)


def test_the_enhancement_responses_follow_the_patients_recist():
    """mRECIST and EASL were drawn independently of RECIST (CR beside PD); they now read the
    same response at most a step better than RECIST, and mostly agree with each other."""
    from napari_livertumor.synth.clinical import _enhancement_responses

    order = ["CR", "PR", "SD", "PD"]
    rng = np.random.default_rng(3)
    same = 0
    for _ in range(600):
        recist = order[int(rng.integers(4))]
        got = _enhancement_responses(recist, rng)
        m, e = order.index(got["1_mRECIST"]), order.index(got["1_EASL"])
        assert order.index(recist) - 1 <= m <= order.index(recist)
        assert abs(e - m) <= 1
        same += e == m
    assert 0.75 < same / 600 < 0.92  # one in six a step off (less at the scale's ends)


def _disk_full_writing(monkeypatch, name: str) -> None:
    """Every write to a file whose name holds ``name`` fails as on a full disk (the file was
    opened, and truncated, first: what a real full disk leaves)."""
    import builtins
    import errno
    import io

    real_open = io.open

    class Full:
        def __init__(self, fh):
            self._fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, attr):
            return getattr(self._fh, attr)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

    def opened(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return Full(fh) if name in str(file) and ("w" in mode or "a" in mode) else fh

    monkeypatch.setattr(io, "open", opened)
    monkeypatch.setattr(builtins, "open", opened)


def test_a_full_disk_while_writing_the_manifest_keeps_the_one_there(tmp_path, monkeypatch):
    """A full disk left a 0-byte synth_manifest.json: --force then took the cohort's own
    files for a user's and refused to write it again."""
    out = tmp_path / "cohort"
    make_cohort(out, 1, layout="nifti", shape="small")
    before = (out / "synth_manifest.json").read_bytes()
    with monkeypatch.context() as m:
        _disk_full_writing(m, "synth_manifest.json")
        with pytest.raises(OSError) as err:
            make_cohort(out, 1, layout="nifti", shape="small", overwrite=True)
    assert err.value.filename == str(out / "synth_manifest.json")
    assert (out / "synth_manifest.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    make_cohort(out, 1, layout="nifti", shape="small", overwrite=True)  # redone with --force


def test_a_full_disk_in_synth_says_the_file_not_pydicoms_traceback(tmp_path, capsys, monkeypatch):
    """pydicom's error was printed whole: "With tag (7FE0,0010) got exception: [Errno 28] …"
    and a traceback, naming no file."""
    import errno

    import pydicom.filewriter as filewriter

    from napari_livertumor.cli import main

    real = filewriter.write_data_element

    def write(fp, elem, *args, **kwargs):
        if elem.tag == 0x7FE00010:  # the pixels
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fp, elem, *args, **kwargs)

    monkeypatch.setattr(filewriter, "write_data_element", write)
    out = tmp_path / "c"
    assert main(["synth", "-o", str(out), "--cases", "1"]) == 1
    err = capsys.readouterr().err
    first = next(line for line in err.splitlines() if "error" in line)
    assert first.startswith("livertumor synth: error: ") and "Traceback" not in err
    assert first.endswith(".dcm: No space left on device") and str(out) in first


def test_synth_refuses_a_negative_seed_as_a_usage_error(tmp_path, capsys):
    """A negative ``--seed`` is a usage error (exit status 2), said before any folder is
    made."""
    from napari_livertumor.cli import main

    assert main(["synth", "-o", str(tmp_path / "c"), "--seed", "-1"]) == 2
    assert "--seed must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
