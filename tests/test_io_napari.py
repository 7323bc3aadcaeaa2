"""A user opens CT, label and SEG files in napari and saves labels back."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from napari_livertumor import _reader
from napari_livertumor._reader import napari_get_reader
from napari_livertumor._writer import (
    SaveRefused,
    write_image_nifti,
    write_labels_dicom_seg,
    write_labels_nifti,
)
from napari_livertumor.errors import InputError
from napari_livertumor.io import CTVolume, load_ct
from napari_livertumor.io.dicom_write import write_ct_series
from napari_livertumor.io.nifti import read_nifti, write_nifti
from napari_livertumor.io.seg import read_dicom_seg, write_dicom_seg


@pytest.fixture
def study(tmp_path):
    """An HCC-TACE-Seg-like study folder: one CT series and one SEG series."""
    direction = np.diag([1.0, -1.0, -1.0])
    source = CTVolume(
        np.random.default_rng(0).integers(-1000, 400, (6, 20, 22)).astype(np.int16),
        (2.5, 0.8, 0.75),
        (-50.0, 60.0, 100.0),
        direction,
    )
    ct_dir = tmp_path / "HCC_001" / "study" / "4.000000-LIVER 3 PHASE AP-1"
    write_ct_series(source, ct_dir, patient_id="HCC_001", series_description="LIVER 3 PHASE AP")
    ct = load_ct(ct_dir)
    labels = np.zeros(ct.shape, np.uint8)
    labels[1:5, 4:16, 4:18] = 1
    labels[2:4, 6:9, 6:10] = 2
    seg = tmp_path / "HCC_001" / "study" / "300.000000-Segmentation-1" / "1-1.dcm"
    write_dicom_seg(labels, ct, seg, [(1, "Liver"), (2, "Mass")], algorithm_type="MANUAL")
    return ct_dir, seg, ct, labels


def _says_no_scan_in(folder) -> None:
    """The reader napari is given for ``folder`` (it offers every folder to every reader that
    takes folders) says it holds no scan, and which reader to choose instead."""
    reader = napari_get_reader(str(folder))
    assert reader is not None
    with pytest.raises(InputError, match="no DICOM or NIfTI files found.*napari builtins"):
        reader(str(folder))


def shown(ct, labels=None):
    """The CT (and labels) as napari shows them: turned to the standard orientation, as the
    Load CT panel and NIfTI files show a scan (the study's series runs feet to head, anterior
    last)."""
    turned = ct.displayed()
    turn = turned.meta["stored_turn"]
    return turned if labels is None else (turned, turn.apply(labels))


def test_reader_declines_what_it_cannot_read_without_raising(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    for path in [tmp_path / "notes.txt", tmp_path / "missing.dcm", [], [1, 2]]:
        assert napari_get_reader(path) is None
    # (a folder is offered whatever it holds: its reader says why, tests/test_reader_folders.py)


def test_dicom_folder_opens_as_a_ct_layer_in_mm(study):
    ct_dir, _, ct, _ = study
    reader = napari_get_reader(str(ct_dir))
    [(data, kwargs, kind)] = reader(str(ct_dir))
    assert kind == "image"
    np.testing.assert_array_equal(data, shown(ct).array)
    assert kwargs["scale"] == shown(ct).napari_scale
    assert kwargs["translate"] == shown(ct).napari_translate
    assert kwargs["contrast_limits"] == (-160.0, 240.0)
    assert kwargs["metadata"]["patient_id"] == "HCC_001"
    assert "HCC_001" in kwargs["name"]


def test_seg_file_opens_with_its_ct_and_overlays_exactly(study):
    _, seg, ct, labels = study
    layers = napari_get_reader(str(seg))(str(seg))
    (_, ct_kwargs, ct_kind), (lab, lab_kwargs, lab_kind) = layers
    assert (ct_kind, lab_kind) == ("image", "labels")
    np.testing.assert_array_equal(lab, shown(ct, labels)[1])
    assert lab_kwargs["scale"] == ct_kwargs["scale"]
    assert lab_kwargs["translate"] == ct_kwargs["translate"]
    assert lab_kwargs["metadata"]["livertumor_role"] == "ground_truth"


def test_a_damaged_seg_whose_ct_was_found_is_not_told_to_open_its_ct_first(study):
    """Its pixel data cut short: the message ended 'Open that CT first, then this file
    again', though the CT was right there."""
    import pydicom

    _, seg, _, _ = study
    ds = pydicom.dcmread(seg)
    ds.PixelData = ds.PixelData[:10]
    ds.save_as(seg)
    with pytest.raises(InputError, match="SEG pixel data cannot be decoded") as err:
        napari_get_reader(str(seg))(str(seg))
    assert "Open that CT first" not in str(err.value)


def test_segment_output_opened_beside_its_dicom_ct_lines_up(tmp_path, study):
    """File > Open showed a DICOM series as stored but a NIfTI turned to the standard
    orientation: `segment`'s labels of an anterior-first series landed mirrored, on the
    wrong side of the body."""
    ct_dir, _, ct, labels = study
    out = tmp_path / "HCC_001_labels.nii.gz"
    write_nifti(labels, out, reference=ct)  # as `livertumor segment` writes it: the CT's grid
    [(image, ct_kwargs, _)] = napari_get_reader(str(ct_dir))(str(ct_dir))
    [(lab, lab_kwargs, kind)] = napari_get_reader(str(out))(str(out))
    assert kind == "labels"
    np.testing.assert_allclose(lab_kwargs["scale"], ct_kwargs["scale"], atol=1e-5)
    np.testing.assert_allclose(lab_kwargs["translate"], ct_kwargs["translate"], atol=1e-3)
    turned, turned_labels = shown(ct, labels)
    np.testing.assert_array_equal(lab, turned_labels)
    np.testing.assert_array_equal(image, turned.array)


def test_a_folder_whose_seg_was_drawn_on_another_series_still_opens_its_ct(
    tmp_path, study, monkeypatch
):
    """A SEG of another phase beside the CT (a partial download) made the folder fail to
    open at all; the CT opens and the missing ground truth is said."""
    import shutil

    ct_dir, seg, ct, _ = study
    other = CTVolume(ct.array, ct.spacing, (0.0, 0.0, 0.0), ct.direction)
    write_ct_series(other, tmp_path / "other", patient_id="HCC_001")
    folder = tmp_path / "mixed"
    shutil.copytree(ct_dir, folder)
    write_dicom_seg(
        (ct.array > 0).astype(np.uint8),
        load_ct(tmp_path / "other"),
        folder / "other_seg.dcm",
        [(1, "Liver")],
    )
    said: list[str] = []
    monkeypatch.setattr(_reader, "_notify", said.append)
    layers = _reader.read_dicom_layers(str(folder))
    assert [kind for *_, kind in layers] == ["image"]
    np.testing.assert_array_equal(layers[0][0], shown(ct).array)
    assert any("ground truth was not loaded" in text for text in said)

    # with the patient's own SEG there too, that one is used, whatever the order of names
    shutil.copy(seg, folder / "zz_own_seg.dcm")
    layers = _reader.read_dicom_layers(str(folder))
    assert [kind for *_, kind in layers] == ["image", "labels"]


def test_old_exports_without_a_preamble_and_cd_folders_open(tmp_path, study):
    """`segment` and `convert` read them; napari said it had no reader: files written without
    the 128-byte preamble (old implicit-VR exports), and a CD export whose program folder of
    70 DLLs sorts before its images."""
    import pydicom
    from pydicom.filebase import DicomBytesIO

    ct_dir, _, ct, _ = study
    bare = tmp_path / "bare"
    bare.mkdir()
    for i, f in enumerate(sorted(ct_dir.glob("*.dcm"))):
        ds = pydicom.dcmread(f)
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, True
        pydicom.filewriter.write_dataset(fp, ds)  # the dataset alone: no preamble, no meta
        (bare / f"IM{i}").write_bytes(fp.getvalue())
    for target in (bare, bare / "IM0"):
        reader = napari_get_reader(str(target))
        assert reader is not None, target
    [(data, _, kind)] = napari_get_reader(str(bare))(str(bare))
    assert kind == "image"
    np.testing.assert_array_equal(data, shown(ct).array)

    cd = tmp_path / "cd"
    (cd / "Program").mkdir(parents=True)
    for i in range(70):
        (cd / "Program" / f"lib{i:02d}.dll").write_bytes(b"MZ" + bytes(200))
    shutil.copytree(ct_dir, cd / "Images")
    assert napari_get_reader(str(cd)) is not None
    _says_no_scan_in(cd / "Program")  # nothing DICOM there
    # one flat folder whose 40 previews sort before the slices
    flat = tmp_path / "flat"
    shutil.copytree(ct_dir, flat)
    for i in range(40):
        (flat / f"0000_preview{i:02d}.jpg").write_bytes(b"\xff\xd8\xff" + bytes(300))
    assert napari_get_reader(str(flat)) is not None


def test_a_sagittal_series_opened_turned_still_saves_and_reads_back_as_a_dicom_seg(tmp_path):
    """Turned to axial, a sagittal series' layer lost its per-slice DICOM references: a SEG
    could no longer be saved from it, nor opened onto it."""
    direction = np.column_stack([[0, 1, 0], [0, 0, -1], [1, 0, 0]]).astype(float)
    rng = np.random.default_rng(0)
    source = CTVolume(rng.integers(-200, 200, (10, 24, 20)).astype(np.int16), (2.0, 1.0, 1.0),
                      (0, 0, 0), direction)  # fmt: skip
    write_ct_series(source, tmp_path / "p" / "ct", patient_id="P")
    ct = load_ct(tmp_path / "p" / "ct")
    [(data, kwargs, _)] = napari_get_reader(str(tmp_path / "p" / "ct"))(str(tmp_path / "p" / "ct"))
    shown_ct = kwargs["metadata"]["ct_volume"]
    assert data.shape != ct.shape  # the slice axis changed
    labels = np.zeros(data.shape, np.uint8)
    labels[3:7, 5:15, 5:15] = 1
    attributes = {"metadata": {"ct_volume": shown_ct, "livertumor_role": "segmentation"},
                  "name": "seg"}  # fmt: skip
    [out] = write_labels_dicom_seg(str(tmp_path / "seg.dcm"), labels, attributes)
    back = read_dicom_seg(out, ct)
    np.testing.assert_array_equal(shown_ct.meta["stored_turn"].apply(back), labels)
    np.testing.assert_array_equal(read_dicom_seg(out, shown_ct), labels)


def test_a_segmentation_saved_from_file_save_declares_what_the_export_panel_does(tmp_path):
    """File > Save as DICOM SEG of a run whose tumor model found nothing wrote Liver alone,
    marked as a liver-only run: reopened, its tumor figures became "not computed" instead of
    0 mL. And a hand-painted value 3 in a segmentation was written as "Label 3"."""
    from pathlib import Path

    import pydicom

    from napari_livertumor._reader import _tumor_not_run
    from napari_livertumor._writer import MODEL_DIGEST, labels_digest

    rng = np.random.default_rng(1)
    source = CTVolume(rng.integers(-200, 200, (6, 20, 16)).astype(np.int16), (2.0, 1.0, 1.0))
    write_ct_series(source, tmp_path / "ct", patient_id="P")
    ct = load_ct(tmp_path / "ct")
    labels = np.zeros(ct.shape, np.uint8)
    labels[1:5, 4:14, 3:12] = 1

    def save(name, stats, data=labels):
        meta = {
            "ct_volume": ct,
            "livertumor_role": "segmentation",
            "stats": stats,
            MODEL_DIGEST: labels_digest(data),
        }  # (the model's digest: its output as it came)
        [out] = write_labels_dicom_seg(str(tmp_path / name), data, {"metadata": meta})
        return pydicom.dcmread(out, stop_before_pixels=True), out

    no_tumor, out = save("none.dcm", {"liver_ml": 1.0, "tumor_ml": 0.0})
    assert [s.SegmentLabel for s in no_tumor.SegmentSequence] == ["Liver", "Tumor"]
    assert no_tumor.SeriesDescription.endswith("liver+tumor")
    assert not _tumor_not_run(Path(out))
    liver_only, out = save("liver.dcm", {"liver_ml": 1.0, "tumor_ml": None})
    assert [s.SegmentLabel for s in liver_only.SegmentSequence] == ["Liver"]
    assert _tumor_not_run(Path(out))
    # described as Export describes it (File > Save wrote the layer's name once edited)
    from napari_livertumor.io.seg import seg_series_description

    edited = labels.copy()
    edited[2, 6, 6] = 2  # painted after the model ran: its digest is of the labels before
    meta = {"ct_volume": ct, "livertumor_role": "segmentation", "stats": {"tumor_ml": 0.0},
            MODEL_DIGEST: labels_digest(labels)}  # fmt: skip
    [out] = write_labels_dicom_seg(str(tmp_path / "edited.dcm"), edited, {"metadata": meta})
    painted = pydicom.dcmread(out, stop_before_pixels=True)
    assert painted.SeriesDescription == seg_series_description("SEMIAUTOMATIC")
    assert painted.SeriesDescription.endswith("liver+tumor (edited)")
    odd = labels.copy()
    odd[2, 5, 5] = 3
    with pytest.raises(SaveRefused, match=r"label value\(s\) 3 besides 1 \(liver\) and 2"):
        save("odd.dcm", {"tumor_ml": 0.0}, odd)
    assert not (tmp_path / "odd.dcm").exists()
    # a ground truth's other values are written, and said not to come back here
    odd[2, 6, 6] = 5
    with pytest.warns(UserWarning, match=r"value\(s\) 5 written as segment\(s\) Label 5"):
        write_labels_dicom_seg(
            str(tmp_path / "gt.dcm"), odd, {"metadata": {"ct_volume": ct}, "name": "gt"}
        )
    # labels drawn by hand (no role: napari's New Labels) are a manual segmentation, not
    # described as a ground truth in a PACS's list; a ground truth still is one
    drawn = pydicom.dcmread(tmp_path / "gt.dcm", stop_before_pixels=True)
    assert drawn.SeriesDescription == "Manual segmentation (napari-livertumor export)"
    meta = {"ct_volume": ct, "livertumor_role": "ground_truth"}
    [out] = write_labels_dicom_seg(str(tmp_path / "truth.dcm"), labels, {"metadata": meta})
    truth = pydicom.dcmread(out, stop_before_pixels=True)
    assert truth.SeriesDescription == "Ground truth (napari-livertumor export)"
    # reopened, the drawing is no ground truth either (it came back as one, and was saved
    # again as "Ground truth" and scored against)
    assert _reader._seg_role(Path(tmp_path / "gt.dcm")) == "segmentation"
    assert _reader._seg_role(Path(out)) == "ground_truth"


def test_a_seg_this_plugin_exported_opens_as_a_segmentation_in_the_class_colours(tmp_path, study):
    """Reopened, the plugin's own export was taken for the ground truth (Inspect would score
    it against itself), and labels opened with File > Open had napari's colours, not the
    panels' (tumor cyan in one viewer, red in the other)."""
    import shutil

    from napari_livertumor._widgets._layers import CLASS_COLORS, TRUTH_COLORS

    ct_dir, seg, ct, labels = study
    patient = ct_dir.parent.parent
    [_, (_, gt_kwargs, _)] = napari_get_reader(str(seg))(str(seg))
    assert gt_kwargs["metadata"]["livertumor_role"] == "ground_truth"  # drawn by hand (MANUAL)
    # a ground truth in its own colours (outlines of the model's would look the same)
    tumor = tuple(gt_kwargs["colormap"].map(np.array([2]))[0])
    assert tumor == pytest.approx(TRUTH_COLORS[2]) and tumor != pytest.approx(CLASS_COLORS[2])
    assert list(gt_kwargs["features"]["class"]) == [
        "background", "liver", "tumor", "portal vein", "aorta"
    ]  # fmt: skip

    export = patient / "exports" / "mine_seg.dcm"
    export.parent.mkdir()
    write_dicom_seg((labels > 0).astype(np.uint8) + (labels == 2), ct, export,
                    [(1, "Liver"), (2, "Tumor")])  # fmt: skip
    [_, (_, kwargs, _)] = napari_get_reader(str(export))(str(export))
    assert kwargs["metadata"]["livertumor_role"] == "segmentation"
    assert kwargs["name"].endswith("segmentation")
    assert tuple(kwargs["colormap"].map(np.array([2]))[0]) == pytest.approx(CLASS_COLORS[2])
    shutil.rmtree(export.parent)


def test_label_nifti_opens_as_labels_and_ct_nifti_as_image(tmp_path, study):
    _, _, ct, labels = study
    write_nifti(ct, tmp_path / "ct.nii.gz")
    write_nifti(labels, tmp_path / "labels.nii.gz", reference=ct)
    [(_, ct_kwargs, kind)] = napari_get_reader(str(tmp_path / "ct.nii.gz"))(
        str(tmp_path / "ct.nii.gz")
    )
    assert kind == "image"
    [(lab, kwargs, kind)] = napari_get_reader(str(tmp_path / "labels.nii.gz"))(
        str(tmp_path / "labels.nii.gz")
    )
    assert kind == "labels"
    # this CT's rows and slices run against the standard axes: both are shown turned alike
    _, turn = ct.to_standard()
    assert not turn.identity
    np.testing.assert_array_equal(lab, turn.apply(labels))
    np.testing.assert_allclose(kwargs["scale"], ct_kwargs["scale"])
    np.testing.assert_allclose(kwargs["translate"], ct_kwargs["translate"])


@pytest.mark.parametrize(
    ("where", "role"),
    [
        ("labelsTr/HCC_001.nii.gz", "ground_truth"),  # nnU-Net's layout
        ("lits/segmentation-3.nii", "ground_truth"),  # LiTS's names
        ("case/case_gt.nii.gz", "ground_truth"),
        ("case/Manual_Reference.nii.gz", "ground_truth"),
        ("case/liver_mask.nii.gz", "segmentation"),  # no sign it is a reference
        ("out/case_labels.nii.gz", "segmentation"),
        # a model's output, whatever its folder, or a model word beside a reference word
        ("manual_check/case1.nii.gz", "segmentation"),
        ("preds_vs_gt/case1_pred.nii.gz", "segmentation"),
        ("labelsTr_pred/liver_3.nii.gz", "segmentation"),
        ("out/HCC_GT_001_labels.nii.gz", "segmentation"),
        ("x/gt_vs_auto.nii.gz", "segmentation"),
        ("x/weight_length.nii.gz", "segmentation"),  # "gt" inside words
    ],
)
def test_a_liver_tumor_ground_truth_named_as_one_opens_as_the_truth(tmp_path, study, where, role):
    """A LiTS or nnU-Net ground truth holds 0/1/2 only, as a model's output does: it opened
    as a segmentation, drawn in the model's colours, which Inspect would not score against."""
    _, _, ct, labels = study
    path = tmp_path / where
    write_nifti(np.minimum(labels, 2).astype(np.uint8), path, reference=ct)
    [(_, kwargs, kind)] = napari_get_reader(str(path))(str(path))
    assert kind == "labels" and kwargs["metadata"]["livertumor_role"] == role
    # a reference named as its scan is (labelsTr/HCC_001 beside imagesTr/HCC_001) says what
    # it is, as the Load panel names it (napari showed "HCC_001 [1]")
    if where.startswith("labelsTr/"):
        assert kwargs["name"] == "HCC_001 ground truth"
    elif role == "ground_truth":
        assert "ground truth" not in kwargs["name"]  # (its own name says so: gt, segmentation)


def test_a_ground_truth_holding_other_classes_opens_as_plain_labels_not_as_one(
    tmp_path, study, monkeypatch
):
    """labelsTr/HCC_001.nii.gz holding 5 and 7 opened with File > Open as a ground truth,
    without a word (Inspect scored against it), where the Load panel and evaluate refuse it.
    Refused, another dataset's map in labelsTr/ (AMOS's organs) could not be looked at at
    all: it opens as plain labels, said why; the same values elsewhere open as labels."""
    _, _, ct, labels = study
    organs = np.where(labels > 0, 5, 0).astype(np.uint8)
    organs[labels == 2] = 7
    truth = tmp_path / "labelsTr" / "HCC_001.nii.gz"
    write_nifti(organs, truth, reference=ct)
    said = []
    monkeypatch.setattr(_reader, "_notify", said.append)
    [(data, kwargs, kind)] = napari_get_reader(str(truth))(str(truth))
    assert kind == "labels" and kwargs["metadata"]["livertumor_role"] == "segmentation"
    assert set(np.unique(data)) == {0, 5, 7}
    assert len(said) == 1 and said[0].startswith(
        "HCC_001.nii.gz: opened as plain labels, not as a ground truth: holds values from 0 to 7"
    )
    assert "values above 4 are no class here" in said[0]
    other = tmp_path / "out" / "organs.nii.gz"
    write_nifti(organs, other, reference=ct)
    [(_, kwargs, kind)] = napari_get_reader(str(other))(str(other))
    assert kind == "labels" and kwargs["metadata"]["livertumor_role"] == "segmentation"


def test_a_segmentation_written_by_segment_opens_as_one_whatever_its_folder(tmp_path, study):
    _, _, ct, labels = study
    path = tmp_path / "gt_compare" / "case_labels.nii.gz"
    write_nifti(np.minimum(labels, 2).astype(np.uint8), path, reference=ct)
    (path.parent / "case_stats.json").write_text('{"version": "0.1.0", "models": "shipped"}')
    [(_, kwargs, _)] = napari_get_reader(str(path))(str(path))
    assert kwargs["metadata"]["livertumor_role"] == "segmentation"
    # ... and Export's labels of a ground truth open as one, by what its stats say
    (path.parent / "case_stats.json").write_text('{"version": "0.1.0", "source": "ground_truth"}')
    [(_, kwargs, _)] = napari_get_reader(str(path))(str(path))
    assert kwargs["metadata"]["livertumor_role"] == "ground_truth"


def test_a_segmentation_opened_from_a_file_and_painted_is_no_longer_automatic(tmp_path, study):
    """With no panel open (none watching its edits), a segment output opened and painted on
    was saved as a DICOM SEG saying AUTOMATIC: hand edits recorded as the model's."""
    from napari_livertumor._writer import seg_algorithm_type

    _, _, ct, labels = study
    path = tmp_path / "case_labels.nii.gz"
    write_nifti(np.minimum(labels, 2).astype(np.uint8), path, reference=ct)
    (tmp_path / "case_stats.json").write_text('{"version": "0.1.0", "models": "shipped"}')
    [(data, kwargs, _)] = napari_get_reader(str(path))(str(path))
    meta = kwargs["metadata"]
    assert seg_algorithm_type(meta, data) == "AUTOMATIC"
    painted = data.copy()
    painted[tuple(s // 2 for s in painted.shape)] = 2 if painted.flat[0] != 2 else 1
    painted[0, 0, 0] = 2
    assert seg_algorithm_type(meta, painted) == "SEMIAUTOMATIC"


def test_labels_layer_saves_to_nifti_and_dicom_seg_on_the_ct_grid(tmp_path, study):
    _, _, ct, labels = study
    attributes = {
        "name": "segmentation",
        "scale": ct.napari_scale,
        "translate": ct.napari_translate,
        "metadata": {"ct_volume": ct, "livertumor_role": "segmentation"},
    }
    [nii] = write_labels_nifti(str(tmp_path / "out"), labels, attributes)
    assert nii.endswith("out.nii.gz")
    back = read_nifti(nii)
    np.testing.assert_array_equal(back.array, labels)
    assert back.same_grid(ct)

    [dcm] = write_labels_dicom_seg(str(tmp_path / "seg.dcm"), labels, attributes)
    np.testing.assert_array_equal(read_dicom_seg(dcm, ct), labels)


def test_a_turned_nifti_layer_saves_back_in_the_files_own_order(tmp_path, study):
    _, _, ct, labels = study
    write_nifti(ct, tmp_path / "ct.nii.gz")
    write_nifti(labels, tmp_path / "labels.nii.gz", reference=ct)
    [(lab, kwargs, _)] = napari_get_reader(str(tmp_path / "labels.nii.gz"))(
        str(tmp_path / "labels.nii.gz")
    )
    attributes = {"name": "edited", **kwargs}
    [nii] = write_labels_nifti(str(tmp_path / "edited.nii.gz"), lab, attributes)
    back = read_nifti(nii)
    np.testing.assert_array_equal(back.array, labels)  # the file's voxel order
    assert back.same_grid(read_nifti(tmp_path / "ct.nii.gz"))


def test_a_ct_layer_saves_as_the_nifti_convert_writes(tmp_path, study):
    """napari offered no way to save a CT image layer as NIfTI; the file is `convert`'s."""
    import nibabel as nib

    from napari_livertumor.cli import main

    ct_dir, _, ct, _ = study
    assert main(["convert", str(ct_dir), "-o", str(tmp_path / "convert.nii.gz")]) == 0
    converted = nib.load(tmp_path / "convert.nii.gz")
    [(data, kwargs, kind)] = napari_get_reader(str(ct_dir))(str(ct_dir))
    assert kind == "image"
    [nii] = write_image_nifti(str(tmp_path / "layer"), data, {"name": "CT", **kwargs})
    saved = nib.load(nii)
    assert nii.endswith("layer.nii.gz") and saved.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(saved.dataobj), np.asarray(converted.dataobj))
    np.testing.assert_allclose(saved.affine, converted.affine, atol=1e-3)
    assert read_nifti(nii).same_grid(ct)
    # a NIfTI shown turned goes back in its own voxel order
    [(data, kwargs, _)] = napari_get_reader(nii)(nii)
    [again] = write_image_nifti(str(tmp_path / "again.nii.gz"), data, kwargs)
    np.testing.assert_array_equal(np.asarray(nib.load(again).dataobj), np.asarray(saved.dataobj))
    np.testing.assert_allclose(nib.load(again).affine, saved.affine, atol=1e-4)


def test_an_image_without_a_ct_saves_on_its_scale_and_what_is_no_volume_is_refused(tmp_path):
    image = np.linspace(0, 1, 2 * 3 * 4).reshape(2, 3, 4)  # float64, a filtered result
    attributes = {"scale": (2.5, 0.8, 0.7), "translate": (10.0, 20.0, 30.0), "metadata": {}}
    [nii] = write_image_nifti(str(tmp_path / "f.nii.gz"), image, attributes)
    back = read_nifti(nii)
    assert back.spacing == pytest.approx((2.5, 0.8, 0.7))
    np.testing.assert_allclose(np.asarray(back.array, float), image, atol=1e-6)
    with pytest.raises(SaveRefused, match="expected a 3D image layer") as info:
        write_image_nifti(str(tmp_path / "flat.nii.gz"), np.zeros((3, 4)), attributes)
    assert "save a 2D image with napari builtins" in str(info.value)  # what to do instead
    with pytest.raises(SaveRefused, match="RGB image is no CT"):
        write_image_nifti(str(tmp_path / "rgb.nii.gz"), np.zeros((3, 4, 3)), {"rgb": True})
    assert not (tmp_path / "flat.nii.gz").exists() and not (tmp_path / "rgb.nii.gz").exists()


def test_a_file_named_as_dicom_that_is_not_one_is_said_not_refused_blankly(tmp_path):
    """A PNG renamed .dcm got napari's "Reader 'napari-livertumor' ... refused the file"."""
    fake = tmp_path / "scan" / "fake.dcm"
    fake.parent.mkdir()
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(600))
    reader = napari_get_reader(str(fake))
    assert reader is not None
    with pytest.raises(InputError, match=r"fake\.dcm: .*named like a DICOM file but is not one"):
        reader(str(fake))
    (tmp_path / "notes.txt").write_text("hello")
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None  # what is not ours stays not


def test_dicom_seg_writer_refuses_a_layer_without_a_dicom_ct(tmp_path):
    attributes = {"scale": (1, 1, 1), "translate": (0, 0, 0), "metadata": {}}
    with pytest.raises(SaveRefused, match="not linked to a CT read from DICOM"):
        write_labels_dicom_seg(str(tmp_path / "x.dcm"), np.ones((2, 3, 4), np.uint8), attributes)
    assert not (tmp_path / "x.dcm").exists()


def test_a_libraries_value_error_is_shown_not_taken_for_no_writer(tmp_path, monkeypatch):
    """highdicom's ValueError (a header value it refuses) passed through as it was: napari
    would take it for "no writer found" and hide the reason."""
    import napari_livertumor.io.seg as seg_mod

    def refuse(*args, **kwargs):
        raise ValueError("'X' is not a valid SpecificCharacterSetValues")

    monkeypatch.setattr(seg_mod, "write_dicom_seg", refuse)
    vol = CTVolume(np.zeros((2, 3, 4), np.int16), (1, 1, 1), meta={"files": ["a", "b"]})
    attributes = {"metadata": {"ct_volume": vol}}
    with pytest.raises(SaveRefused, match=r"x\.dcm: cannot be written \('X' is not a valid"):
        write_labels_dicom_seg(str(tmp_path / "x.dcm"), np.ones((2, 3, 4), np.uint8), attributes)


@pytest.mark.gui
def test_napari_save_shows_why_the_plugin_refused(make_napari_viewer, tmp_path):
    """napari takes a ValueError from a writer for "no writer found": the refusal's reason was
    hidden behind "not a valid writer" and nothing said why."""
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.ones((2, 3, 4), np.uint8), name="drawn by hand")
    with pytest.raises(SaveRefused, match="not linked to a CT read from DICOM"):
        layer.save(str(tmp_path / "mine.dcm"), plugin="napari-livertumor")
    assert not (tmp_path / "mine.dcm").exists()


def test_a_layer_saved_from_a_window_not_active_last_finds_its_dicom_ct(
    make_napari_viewer, study, tmp_path
):
    """A writer gets the layer's data, not its viewer: with a second window opened since, the
    segmentation of the first was refused as 'not linked to a CT read from DICOM'."""
    ct_dir, _, ct, labels = study
    out = tmp_path / "HCC_001_labels.nii.gz"
    write_nifti(labels, out, reference=ct)  # as `livertumor segment` writes it, beside
    (tmp_path / "HCC_001_stats.json").write_text(json.dumps({"series_uid": ct.meta["series_uid"]}))
    first = make_napari_viewer()
    first.open(str(ct_dir), plugin="napari-livertumor")
    [lab] = first.open(str(out), plugin="napari-livertumor")
    make_napari_viewer()  # the current viewer now
    lab.save(str(tmp_path / "seg.dcm"), plugin="napari-livertumor")
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "seg.dcm", ct), labels)


@pytest.mark.gui
def test_napari_opens_the_seg_over_its_ct(make_napari_viewer, study, tmp_path):
    _, seg, ct, labels = study
    viewer = make_napari_viewer()
    layers = viewer.open(str(seg), plugin="napari-livertumor")
    assert [ly.__class__.__name__ for ly in layers] == ["Image", "Labels"]
    image, lab = layers
    # a ground truth drawn as Load CT draws one: outlines, over any segmentation's fill
    assert lab.metadata["livertumor_role"] == "ground_truth"
    assert lab.contour == 2 and lab.opacity >= 0.9
    from napari_livertumor._widgets import _layers

    seg_layer = viewer.add_labels(lab.data.copy(), scale=lab.scale, translate=lab.translate)
    assert _layers.lift_truths_over(viewer, seg_layer, image) == [lab.name]
    assert [ly.name for ly in viewer.layers][-2:] == [seg_layer.name, lab.name]
    viewer.layers.remove(seg_layer)
    np.testing.assert_allclose(lab.scale, image.scale)
    np.testing.assert_allclose(lab.translate, image.translate)
    # a world point (mm) inside the tumor is the same voxel in both layers, and it is tumor:
    # the file's voxel [3, 7, 8], wherever the turn to the standard orientation put it
    turned = shown(ct)
    marker = np.zeros(ct.shape, np.uint8)
    marker[3, 7, 8] = 1
    idx = np.argwhere(turned.meta["stored_turn"].apply(marker))[0]
    world = np.array(turned.napari_translate) + np.array(turned.napari_scale) * idx
    np.testing.assert_allclose(lab.world_to_data(world), idx, atol=1e-6)
    np.testing.assert_allclose(image.world_to_data(world), idx, atol=1e-6)
    assert lab.data[tuple(idx)] == 2 and image.data[tuple(idx)] == ct.array[3, 7, 8]

    # File > Save Selected Layer(s) with our writers: same voxels, the CT's grid
    viewer.layers.selection = {lab}
    [nii] = viewer.layers.save(
        str(tmp_path / "saved.nii.gz"), selected=True, plugin="napari-livertumor"
    )
    back = read_nifti(nii)
    np.testing.assert_array_equal(back.array, labels)
    assert back.same_grid(ct)
    [dcm] = viewer.layers.save(
        str(tmp_path / "saved.dcm"), selected=True, plugin="napari-livertumor"
    )
    np.testing.assert_array_equal(read_dicom_seg(dcm, ct), labels)
    # and the CT layer itself, as NIfTI on its own grid
    viewer.layers.selection = {image}
    [ct_nii] = viewer.layers.save(
        str(tmp_path / "ct.nii.gz"), selected=True, plugin="napari-livertumor"
    )
    back = read_nifti(ct_nii)
    np.testing.assert_array_equal(back.array, ct.array)
    assert back.same_grid(ct)


def test_patient_folder_opens_as_ct_with_its_ground_truth(study):
    ct_dir, _, ct, labels = study
    patient = ct_dir.parent.parent
    layers = napari_get_reader(str(patient))(str(patient))
    assert [kind for *_, kind in layers] == ["image", "labels"]
    np.testing.assert_array_equal(layers[0][0], shown(ct).array)
    np.testing.assert_array_equal(layers[1][0], shown(ct, labels)[1])


def test_seg_whose_ct_is_missing_gives_a_clear_error(tmp_path, study):
    import shutil

    ct_dir, seg, _, _ = study
    shutil.rmtree(ct_dir)
    with pytest.raises(InputError, match="references"):
        napari_get_reader(str(seg))(str(seg))


def test_a_multi_select_of_one_series_files_opens_the_series_once(
    make_napari_viewer, study, monkeypatch
):
    """File > Open with every file of a series selected hands napari's reader one file at a time;
    the series must appear once, not once per file."""
    ct_dir, _, ct, _ = study
    files = sorted(str(p) for p in ct_dir.glob("*.dcm"))
    assert len(files) == ct.shape[0] > 1
    viewer = make_napari_viewer()
    layers = viewer.open(files, plugin="napari-livertumor")
    assert len(layers) == 1 and len(viewer.layers) == 1
    np.testing.assert_array_equal(layers[0].data, shown(ct).array)
    # a file opened again is a new request: it opens again
    again = viewer.open(files[2], plugin="napari-livertumor")
    assert len(again) == 1 and len(viewer.layers) == 2
    # a file of it opened at once after the series' layers were deleted opens (it added
    # nothing, and said nothing, for 5 seconds)
    layers = viewer.open(files, plugin="napari-livertumor")
    viewer.layers.clear()
    again = viewer.open(files[3], plugin="napari-livertumor")
    assert len(again) == 1 and len(viewer.layers) == 1
    viewer.layers.clear()
    viewer.open(files[:2], plugin="napari-livertumor")
    viewer.open(files[:2], plugin="napari-livertumor")
    # and a file of that series opened by hand a while later opens too
    monkeypatch.setattr(_reader, "_SIBLING_SECONDS", 0.0)
    again = viewer.open(files[0], plugin="napari-livertumor")
    assert len(again) == 1 and len(viewer.layers) == 3


def test_a_multi_select_of_a_series_with_unreadable_files_opens_it_once(
    make_napari_viewer, tmp_path
):
    """The files whose pixels could not be read (one mended inside, one left out at the end)
    were not known as the series' own, so each opened the whole series again."""
    from napari_livertumor.io import CTVolume
    from napari_livertumor.io.dicom_write import write_ct_series

    rng = np.random.default_rng(0)
    ct = CTVolume(rng.integers(-100, 200, (20, 16, 16)).astype(np.int16), (2.5, 0.8, 0.8))
    paths = write_ct_series(ct, tmp_path)
    for k in (4, 19):
        data = paths[k].read_bytes()
        paths[k].write_bytes(data[:-100])
    viewer = make_napari_viewer()
    layers = viewer.open(sorted(str(p) for p in paths), plugin="napari-livertumor")
    assert len(layers) == 1 and len(viewer.layers) == 1
    assert layers[0].data.shape == (19, 16, 16)


def test_a_name_for_the_other_writer_is_refused_not_double_suffixed(tmp_path, study):
    _, _, ct, labels = study
    attrs = {"metadata": {"ct_volume": ct, "livertumor_role": "segmentation"}}
    with pytest.raises(SaveRefused, match="ends in .dcm but this writer saves .nii.gz"):
        write_labels_nifti(str(tmp_path / "seg.dcm"), labels, attrs)
    assert not list(tmp_path.glob("seg.dcm*"))
    [out] = write_labels_nifti(str(tmp_path / "seg"), labels, attrs)  # no suffix: one added
    assert out.endswith("seg.nii.gz")


def test_a_seg_saved_away_from_its_ct_opens_onto_the_ct_already_open(
    make_napari_viewer, study, tmp_path
):
    """An exported SEG kept in another folder failed with a list of every SEG found, and never
    said to open the CT first; with the CT open it now joins it."""
    import shutil

    ct_dir, seg, ct, labels = study
    away = tmp_path / "elsewhere" / "exports" / "mine.dcm"
    away.parent.mkdir(parents=True)
    shutil.copy(seg, away)
    with pytest.raises(InputError, match="Open that CT first, then this file again"):
        napari_get_reader(str(away))(str(away))

    viewer = make_napari_viewer()
    (image,) = viewer.open(str(ct_dir), plugin="napari-livertumor")
    (lab,) = viewer.open(str(away), plugin="napari-livertumor")
    assert len(viewer.layers) == 2 and lab.__class__.__name__ == "Labels"
    np.testing.assert_array_equal(lab.data, shown(ct, labels)[1])
    np.testing.assert_allclose(lab.scale, image.scale)
    np.testing.assert_allclose(lab.translate, image.translate)


def test_a_2d_labels_layer_refused_is_told_how_to_save_it(tmp_path):
    """ "expected a 3D labels layer, got shape (20, 20)" said no way forward."""
    flat = np.zeros((20, 20), np.uint8)
    for write, name in ((write_labels_nifti, "flat.nii.gz"), (write_labels_dicom_seg, "f.dcm")):
        with pytest.raises(SaveRefused, match=r"got shape \(20, 20\)") as info:
            write(str(tmp_path / name), flat, {"metadata": {}})
        assert "save a 2D layer with napari builtins, e.g. as .tif" in str(info.value)


def test_label_values_a_uint8_file_cannot_hold_are_refused_not_wrapped(tmp_path):
    """A labels layer holding 256 (napari's labels take any integer) would be stored as 0 in
    the uint8 file, its voxels silently lost: refused, and nothing written; 255 is saved."""
    labels = np.zeros((3, 4, 5), np.int32)
    labels[1, 1:3, 1:4] = 256
    with pytest.raises(SaveRefused, match=r"label values must lie in 0\.\.255"):
        write_labels_nifti(str(tmp_path / "big.nii.gz"), labels, {"metadata": {}})
    assert not (tmp_path / "big.nii.gz").exists()
    labels[labels == 256] = 255
    [out] = write_labels_nifti(str(tmp_path / "ok.nii.gz"), labels, {"metadata": {}})
    assert int(np.asarray(read_nifti(out).array).max()) == 255


def test_a_save_refusal_names_the_file_and_the_problem_before_its_folder(tmp_path, study):
    """napari's popup shows a line or so: "/tmp/…/gt.nii.gz: already this…", the reason cut
    off behind a deep path. Said as the reader's refusals are: name, problem, then folder."""
    _, _, ct, labels = study
    deep = tmp_path / "a rather" / "deep folder" / "of exports" / "for this patient"
    deep.mkdir(parents=True)
    attrs = {"metadata": {"ct_volume": ct, "livertumor_role": "ground_truth"}}
    write_labels_nifti(str(deep / "gt.nii.gz"), labels, attrs)
    with pytest.raises(SaveRefused) as info:
        write_labels_nifti(str(deep / "gt"), labels, attrs)  # typed without its ending
    said = str(info.value)
    assert said.startswith("gt.nii.gz: already exists"), said
    assert said.splitlines()[0].endswith(f"(in {deep})"), said
    with pytest.raises(SaveRefused) as info:  # a refusal before any file is named: as it was
        write_labels_nifti(str(deep / "flat.nii.gz"), np.zeros((3, 4), np.uint8), attrs)
    assert str(info.value).startswith("expected a 3D labels layer")


def _seg_with_label_5(viewer, ct_dir):
    [ct] = viewer.open(str(ct_dir), plugin="napari-livertumor")
    # napari's New labels layer on the CT, a 5 painted on it (no class this plugin names)
    drawn = viewer.add_labels(
        np.zeros(ct.data.shape, np.uint8), name="drawn", scale=ct.scale, translate=ct.translate
    )
    drawn.data[1, 2:6, 2:6] = 5
    viewer.layers.selection = {drawn}
    return drawn


@pytest.mark.gui
def test_a_dicom_seg_writers_note_is_shown_when_saved_from_the_file_menu(
    make_napari_viewer, study, tmp_path, monkeypatch
):
    """File > Save Selected Layers records the warnings a save raises and shows them only if
    it fails: "label value(s) 5 written as segment(s) Label 5 …" was never seen. Shown once
    there, and once through viewer.layers.save, where napari's hook shows the warning itself."""
    import warnings

    from napari.plugins._npe2 import file_extensions_string_for_layers
    from napari.utils.notifications import notification_manager
    from qtpy.QtWidgets import QFileDialog

    ct_dir, _, _, _ = study
    viewer = make_napari_viewer()
    drawn = _seg_with_label_5(viewer, ct_dir)
    shown: list[str] = []

    def note(notification):
        shown.append(str(notification.message))

    filters, _ = file_extensions_string_for_layers([drawn])
    seg_filter = next(f for f in filters.split(";;") if "DICOM SEG" in f)
    out = tmp_path / "drawn_seg.dcm"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), seg_filter))
    notification_manager.notification_ready.connect(note)
    try:
        viewer.window._qt_viewer._save_layers_dialog(selected=True)
        assert out.exists()
        assert len([m for m in shown if "written as segment(s) Label 5" in m]) == 1, shown

        shown.clear()
        monkeypatch.setattr(notification_manager, "_seen_warnings", set(), raising=False)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            notification_manager.install_hooks()  # as a running napari has them
            try:
                viewer.layers.save(str(tmp_path / "api_seg.dcm"), selected=True,
                                   plugin="napari-livertumor")  # fmt: skip
            finally:
                notification_manager.restore_hooks()
        assert len([m for m in shown if "written as segment(s) Label 5" in m]) == 1, shown
    finally:
        notification_manager.notification_ready.disconnect(note)


def test_a_name_without_its_ending_never_replaces_the_file_it_would_become(tmp_path, study):
    """napari asks about replacing 'm2' (absent); the writer added .nii.gz and replaced
    m2.nii.gz without a word."""
    _, _, ct, labels = study
    attrs = {"metadata": {"ct_volume": ct, "livertumor_role": "segmentation"}}
    [out] = write_labels_nifti(str(tmp_path / "m2"), labels, attrs)
    before = (tmp_path / "m2.nii.gz").read_bytes()
    with pytest.raises(SaveRefused, match=r"m2.nii.gz: already exists .* give the full name"):
        write_labels_nifti(str(tmp_path / "m2"), np.zeros_like(labels), attrs)
    assert (tmp_path / "m2.nii.gz").read_bytes() == before
    write_labels_nifti(out, labels, attrs)  # the full name: napari asked, so it is replaced


def _stacked_series(folder):
    arterial = CTVolume(np.full((5, 12, 12), 100, np.int16), (2.5, 0.8, 0.8))
    venous = CTVolume(np.full((5, 12, 12), 200, np.int16), (2.5, 0.8, 0.8))
    common = {"series_uid": "1.2.826.0.1.3680043.8.498.91", "patient_id": "P1"}
    write_ct_series(arterial, folder, acquisition_number=1, **common,
                    file_names=[f"a{i}.dcm" for i in range(5)])  # fmt: skip
    write_ct_series(venous, folder, acquisition_number=2, instance_number_start=10, **common,
                    file_names=[f"v{i}.dcm" for i in range(5)])  # fmt: skip


def test_one_file_of_a_stacked_series_opens_its_own_phase(tmp_path):
    """The file of the first phase opened the second (most slices, then the latest)."""
    _stacked_series(tmp_path / "s")
    [(data, kwargs, _)] = _reader.read_dicom_layers(str(tmp_path / "s" / "a0.dcm"))
    assert int(data.max()) == 100
    assert any("the one holding a0.dcm" in w for w in kwargs["metadata"]["warnings"])
    [(data, _, _)] = _reader.read_dicom_layers(str(tmp_path / "s"))  # the folder: the latest
    assert int(data.max()) == 200


def test_what_the_reader_leaves_out_is_said_not_only_stored(tmp_path, monkeypatch):
    """The other phase left out (and values that are no HU) were only in the layer's metadata:
    File > Open said nothing."""
    import napari.utils.notifications as notifications

    said: list[str] = []
    monkeypatch.setattr(notifications, "show_warning", said.append)
    _stacked_series(tmp_path / "s")
    _reader.read_dicom_layers(str(tmp_path / "s"))
    assert "stacks 2 acquisitions" in " ".join(said)
    probs = CTVolume(np.random.default_rng(1).random((6, 20, 20)).astype(np.float32), (2.5, 1, 1))
    write_nifti(probs, tmp_path / "prob.nii.gz")
    said.clear()
    [(_, kwargs, _)] = _reader.read_nifti_layers(str(tmp_path / "prob.nii.gz"))
    assert "Hounsfield" in " ".join(said)
    assert any("Hounsfield" in w for w in kwargs["metadata"]["warnings"])


def test_an_mr_nifti_opens_with_contrast_from_its_own_values(tmp_path):
    """Opened with File > Open it got the abdomen window (-160…240): an MR of values up to
    1500 showed 84 % white, and the HU presets leave a scan of another modality alone (Load
    CT gave it contrast from its values)."""
    import nibabel as nib

    values = (np.random.default_rng(0).random((12, 40, 40)) * 1500).astype(np.int16)
    img = nib.Nifti1Image(values.T, np.diag([0.9, 0.9, 2.5, 1]))
    img.header["descrip"] = b"MR image: T1"
    nib.save(img, tmp_path / "mr.nii.gz")
    [(data, kwargs, kind)] = _reader.read_nifti_layers(str(tmp_path / "mr.nii.gz"))
    low, high = kwargs["contrast_limits"]
    assert kind == "image" and 0 <= low < 20 and 1480 < high <= 1500
    assert float((np.asarray(data) >= high).mean()) < 0.01


def _mr_series(folder) -> tuple:
    """A 4-slice series whose Modality says MR: (its first file, its SeriesInstanceUID)."""
    import pydicom

    write_ct_series(CTVolume(np.zeros((4, 10, 10), np.int16), (3.0, 1.0, 1.0)), folder)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.save_as(f)
    return sorted(folder.iterdir())[0], str(ds.SeriesInstanceUID)


def test_an_mr_file_is_refused_as_its_folder_is(tmp_path):
    first, _ = _mr_series(tmp_path / "mr")
    with pytest.raises(InputError, match="is a MR image, not CT"):
        _reader.read_dicom_layers(str(first))


def test_a_segmentation_series_folder_opens_like_its_file(study):
    _, seg, ct, labels = study
    layers = _reader.read_dicom_layers(str(seg.parent))
    assert [kind for *_, kind in layers] == ["image", "labels"]
    np.testing.assert_array_equal(layers[1][0], shown(ct, labels)[1])


def test_a_patient_folder_with_its_seg_on_top_opens_that_patient_only(tmp_path, study):
    """Taken for a Segmentation series folder, it read the folder above: every patient."""
    import shutil

    ct_dir, seg, ct, labels = study
    patient = tmp_path / "HCC_001"
    shutil.move(str(seg), str(patient / "seg.dcm"))
    layers = _reader.read_dicom_layers(str(patient))
    assert [kind for *_, kind in layers] == ["image", "labels"]
    np.testing.assert_array_equal(layers[1][0], shown(ct, labels)[1])


def test_an_mr_file_reads_when_its_series_is_asked_for(tmp_path):
    from napari_livertumor.io.dicom import read_dicom_series

    first, uid = _mr_series(tmp_path / "mr")
    assert read_dicom_series(first, uid).shape == (4, 10, 10)


@pytest.mark.gui
def test_a_multiscale_image_saves_its_full_resolution_level(make_napari_viewer, tmp_path):
    """napari hands a writer MultiScaleData: the smallest level was saved with the full
    level's scale (half the physical size)."""
    viewer = make_napari_viewer()
    big = np.random.default_rng(0).integers(-100, 100, (8, 32, 32)).astype(np.int16)
    layer = viewer.add_image([big, big[::2, ::2, ::2]], multiscale=True, scale=(2.0, 1.0, 1.0))
    [path] = layer.save(str(tmp_path / "ms.nii.gz"), plugin="napari-livertumor")
    back = read_nifti(path)
    np.testing.assert_array_equal(back.array, big)
    assert back.spacing == pytest.approx((2.0, 1.0, 1.0))


def test_an_8_bit_ct_opens_as_an_image_and_an_8_bit_mask_as_labels(tmp_path):
    """Every uint8 NIfTI opened as a Labels layer: a CT windowed to 0-255 became a 256-class
    label map (the CLI segments the same file as a CT)."""
    ramp = np.arange(8 * 16 * 16).reshape(8, 16, 16) % 256
    write_nifti(CTVolume(ramp.astype(np.uint8), (2.0, 1.0, 1.0)), tmp_path / "ct8.nii.gz")
    mask = (ramp > 100).astype(np.uint8) + (ramp > 200)
    write_nifti(CTVolume(mask, (2.0, 1.0, 1.0)), tmp_path / "mask.nii.gz")
    empty = np.zeros_like(mask)
    write_nifti(CTVolume(empty, (2.0, 1.0, 1.0)), tmp_path / "empty.nii.gz")
    many = (ramp % 118).astype(np.uint8)  # a 117-class map (TotalSegmentator's)
    write_nifti(CTVolume(many, (2.0, 1.0, 1.0)), tmp_path / "many.nii.gz")
    kinds = {}
    for name in ("ct8", "mask", "empty", "many"):
        path = str(tmp_path / f"{name}.nii.gz")
        kinds[name] = [kind for *_, kind in napari_get_reader(path)(path)]
    assert kinds == {"ct8": ["image"], "mask": ["labels"], "empty": ["labels"], "many": ["labels"]}


def test_a_folder_with_this_tools_own_segmentation_opens_it_as_a_segmentation(tmp_path):
    """`segment --dicom-seg` written beside the CT is never a ground truth (readers skip it);
    opening the folder in napari then showed the CT alone, the segmentation the user came back
    for left out. It opens as a segmentation (the newest of several), never as the truth; the
    output folder alone opens it on the CT open in the viewer, or says where it looked."""
    import os

    from napari_livertumor.io.seg import model_seg_description

    ct_dir = tmp_path / "study" / "P7"
    source = CTVolume(
        np.random.default_rng(3).integers(-200, 300, (5, 16, 18)).astype(np.int16),
        (2.5, 0.8, 0.8),
        (-40.0, 50.0, 90.0),
        np.diag([1.0, -1.0, -1.0]),  # as the study's: shown turned
    )
    write_ct_series(source, ct_dir, patient_id="P7")
    ct = load_ct(ct_dir)
    old = np.zeros(ct.shape, np.uint8)
    old[1:4, 3:12, 3:14] = 1
    new = old.copy()
    new[2, 5:8, 5:9] = 2
    description = model_seg_description("liver+tumor")
    for name, labels in (("P7_old_seg.dcm", old), ("P7_seg.dcm", new)):
        write_dicom_seg(labels, ct, ct_dir / name, series_description=description)
    os.utime(ct_dir / "P7_old_seg.dcm", (1e9, 1e9))  # written long ago
    layers = napari_get_reader(str(ct_dir))(str(ct_dir))
    assert [kind for *_, kind in layers] == ["image", "labels"]
    assert layers[1][1]["metadata"]["livertumor_role"] == "segmentation"
    assert layers[1][1]["name"] == "P7 segmentation"
    np.testing.assert_array_equal(layers[1][0], shown(ct, new)[1])

    # the segment command's output folder (no CT in it) opens the SEG with its CT, looked for
    # in the study folder, as a SEG file opens; too far from its CT, it says where it looked
    out = tmp_path / "study" / "results"
    out.mkdir()
    (ct_dir / "P7_seg.dcm").rename(out / "P7_seg.dcm")
    (ct_dir / "P7_old_seg.dcm").unlink()
    layers = napari_get_reader(str(out))(str(out))
    assert layers[1][1]["metadata"]["livertumor_role"] == "segmentation"
    np.testing.assert_array_equal(layers[1][0], shown(ct, new)[1])
    far = tmp_path / "elsewhere" / "x" / "results"
    far.mkdir(parents=True)
    shutil.copy(out / "P7_seg.dcm", far / "P7_seg.dcm")
    with pytest.raises(InputError, match="drawn on"):
        napari_get_reader(str(far))(str(far))
    # ... unless its stats (`segment` writes them beside) say which scan it read
    (far / "P7_stats.json").write_text(
        json.dumps({"input": "P7", "run_settings": {"input": str(ct_dir)}})
    )
    layers = napari_get_reader(str(far))(str(far))
    np.testing.assert_array_equal(layers[1][0], shown(ct, new)[1])
    # stats naming a scan that no longer holds that CT: the study folder, as for any SEG
    moved = tmp_path / "study" / "results2"
    moved.mkdir()
    shutil.copy(far / "P7_seg.dcm", moved / "P7_seg.dcm")
    (moved / "P7_stats.json").write_text(json.dumps({"run_settings": {"input": str(far)}}))
    layers = napari_get_reader(str(moved))(str(moved))
    np.testing.assert_array_equal(layers[1][0], shown(ct, new)[1])
    # a ground truth beside it wins: the folder opens as before
    write_dicom_seg(old, ct, ct_dir / "truth.dcm", algorithm_type="MANUAL")
    shutil.copy(out / "P7_seg.dcm", ct_dir / "P7_seg.dcm")
    layers = napari_get_reader(str(ct_dir))(str(ct_dir))
    assert layers[1][1]["metadata"]["livertumor_role"] == "ground_truth"
    np.testing.assert_array_equal(layers[1][0], shown(ct, old)[1])


def test_a_seg_whose_study_folder_is_huge_is_not_searched_on_naparis_thread(
    tmp_path, study, monkeypatch
):
    """A SEG saved in a folder of the home folder had the whole home folder read for its CT,
    file by file, on napari's thread (napari hung). Past a number of files the search is not
    started, and the message says how to open it; a CT open in the viewer still takes it."""
    import napari_livertumor._reader as reader

    ct_dir, seg, _, _ = study
    monkeypatch.setattr(reader, "_MAX_SEARCHED_FILES", 5)
    calls = []
    monkeypatch.setattr("napari_livertumor.io.tcia.load_tcia_case", lambda *a, **k: calls.append(a))
    with pytest.raises(InputError, match="more than 5 files, too many") as err:
        napari_get_reader(str(seg))(str(seg))
    assert "looked for among the CTs open in the viewer. Open that CT first" in str(err.value)
    assert calls == []  # nothing was read
    assert not reader._crowded(ct_dir, most=10_000)


def test_a_folder_of_nifti_files_says_to_open_the_files(tmp_path, study):
    """File > Open on a NIfTI dataset folder gave only napari's "the plugin refused the file"."""
    _, _, ct, labels = study
    for sub, array in (("imagesTr", ct), ("labelsTr", labels)):
        (tmp_path / "ds" / sub).mkdir(parents=True)
        # (macOS's AppleDouble copy first, as the Decathlon's download holds: never named)
        (tmp_path / "ds" / sub / "._HCC_001.nii.gz").write_bytes(b"\x00\x05\x16\x07")
        write_nifti(array, tmp_path / "ds" / sub / "HCC_001.nii.gz", reference=ct)
    reader = napari_get_reader(str(tmp_path / "ds"))
    assert reader is not None
    with pytest.raises(InputError, match="a folder of NIfTI files") as err:
        reader(str(tmp_path / "ds"))
    assert "imagesTr/HCC_001.nii.gz" in str(err.value) and "open the files" in str(err.value)
    assert "._" not in str(err.value)
    assert napari_get_reader(str(tmp_path / "ds" / "imagesTr")) is not None
    # a folder of other images: napari's own reads a PNG stack, and this reader says to choose
    # it (napari offers every folder to both; tests/test_reader_folders.py)
    (tmp_path / "png").mkdir()
    (tmp_path / "png" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    _says_no_scan_in(tmp_path / "png")


def test_a_study_whose_ct_cannot_be_read_says_that_alone_name_first(study, monkeypatch):
    """File > Open of a study whose CT lost a third of its slices in a row warned "The ground truth was
    not loaded" (as if the CT had opened), then failed with a notification whose visible line
    was only the folder's path."""
    said = []
    monkeypatch.setattr(_reader, "_notify", said.append)
    ct_dir, seg, ct, labels = study
    for f in sorted(ct_dir.iterdir())[1:3]:
        f.unlink()
    folder = ct_dir.parent
    with pytest.raises(InputError) as err:
        napari_get_reader(str(folder))(str(folder))
    text = str(err.value)
    assert text.startswith(f"{ct_dir.name}: 2 consecutive slice positions") and "(in " in text
    assert said == []


def test_labels_opened_over_a_ct_they_do_not_lie_on_are_said(make_napari_viewer, tmp_path, study,
                                                              monkeypatch):  # fmt: skip
    """A mask of another scan opened over the CT was drawn as a block on part of it, and
    Inspect measured it, without a word (Load CT refuses such a ground truth)."""
    import napari.utils.notifications as notifications

    from napari_livertumor._widgets import _layers

    _, _, ct, labels = study
    said = []
    monkeypatch.setattr(notifications, "show_warning", lambda text: said.append(text))
    write_nifti(ct, tmp_path / "ct.nii.gz")
    write_nifti(labels, tmp_path / "own_labels.nii.gz", reference=ct)
    other = CTVolume(np.zeros((4, 6, 6), np.int16), (2.0, 1.0, 1.0))
    write_nifti(np.ones((4, 6, 6), np.uint8), tmp_path / "other_labels.nii.gz", reference=other)
    viewer = make_napari_viewer()  # no panel open: the reader installs the check
    viewer.open(str(tmp_path / "ct.nii.gz"), plugin="napari-livertumor")
    viewer.open(str(tmp_path / "own_labels.nii.gz"), plugin="napari-livertumor")
    assert not [t for t in said if "grid" in t]
    viewer.open(str(tmp_path / "other_labels.nii.gz"), plugin="napari-livertumor")
    [text] = [t for t in said if "grid" in t]
    assert f"'other_labels' does not lie on the grid of the open CT '{tmp_path.name} ct'" in text
    assert "4 × 6 × 6 voxels of 2 × 1 × 1 mm" in text
    # the same grid 5 mm away: said as such (not as two identical grids)
    moved = CTVolume(ct.array, ct.spacing, np.asarray(ct.origin) + (0, 0, 5.0), ct.direction)
    write_nifti(labels, tmp_path / "moved_labels.nii.gz", reference=moved)
    viewer.open(str(tmp_path / "moved_labels.nii.gz"), plugin="napari-livertumor")
    assert "mm, 5.0 mm away" in said[-1]
    # a mask of an image another reader opened (no CT volume of ours) is on that image's grid
    said.clear()
    plain = viewer.add_image(np.zeros((5, 7, 9), np.int16), scale=(3, 0.7, 0.7), name="plain")
    vol = _layers.volume_of(plain, viewer.layers)
    viewer.add_layer(_layers.make_labels_layer(np.zeros(vol.shape, np.uint8), vol, "plain seg"))
    assert not [t for t in said if "grid" in t]


def test_panels_share_one_answer_to_same_grid():
    """Inspect, Refine and the off-grid notice ask one function whether two grids are one; a
    voxel size off by 5e-5 (float32 rounding of a DICOM spacing) is the same grid everywhere,
    a thousandth of a voxel's shift is, a tenth of one is not."""
    from napari_livertumor._widgets._layers import on_one_grid

    shape, scale, origin = (40, 64, 64), (2.5, 0.7, 0.7), (10.0, -5.0, 3.0)
    assert on_one_grid(shape, scale, origin, shape, scale, origin)
    assert on_one_grid(shape, (2.5, 0.70005, 0.7), origin, shape, scale, origin)
    assert on_one_grid(shape, scale, (10.0, -5.0, 3.0005), shape, scale, origin)
    assert not on_one_grid(shape, scale, (10.0, -5.0, 3.07), shape, scale, origin)
    assert not on_one_grid(shape, (2.5, 0.71, 0.7), origin, shape, scale, origin)
    assert not on_one_grid((41, 64, 64), scale, origin, shape, scale, origin)
    # a napari layer's scale may carry leading axes (a time axis): the last three compare
    assert on_one_grid(shape, (1.0, *scale), (0.0, *origin), shape, scale, origin)


def test_napari_offers_the_reader_for_dicom_and_nifti_names_not_for_every_file():
    """A "*" pattern made napari ask which reader to use for every PNG, CSV or NumPy file
    opened while this plugin was installed."""
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()

    def offered(name):
        return any(
            r.command == "napari-livertumor.get_reader"
            for r in pm.iter_compatible_readers([f"/nowhere/{name}"])
        )

    for name in ("IM000001", "1.2.840.113619.2.55.3", "slice.dcm", "x.DCM", "a.IMA", "ct.nii",
                 "ct.nii.gz", "CT.NII.GZ", "DICOMDIR", "IMAGE_A"):  # fmt: skip
        assert offered(name), name
    for name in ("photo.png", "table.csv", "array.npy", "case_stats.json", "notes.txt",
                 "Photo.PNG"):  # fmt: skip
        assert not offered(name), name


@pytest.mark.gui
def test_a_seg_opened_onto_its_open_ct_is_named_once_by_its_patient(make_napari_viewer, study):
    """A SEG opened onto its CT already on view: 'HCC_001_seg', not 'HCC_001 HCC_001_seg'; a
    file whose name does not say whose it is gets the patient first."""
    ct_dir, seg, _, labels = study
    viewer = make_napari_viewer()
    viewer.open(str(ct_dir), plugin="napari-livertumor")
    named = seg.with_name("HCC_001_seg.dcm")
    seg.rename(named)
    [lab] = viewer.open(str(named), plugin="napari-livertumor")
    assert lab.name == "HCC_001_seg"
    plain = named.with_name("mask.dcm")
    named.rename(plain)
    [lab2] = viewer.open(str(plain), plugin="napari-livertumor")
    assert lab2.name == "HCC_001 mask"
    # a name that only starts with the ID's characters is not said to be named by it
    other = plain.with_name("HCC_0010_notes.dcm")
    plain.rename(other)
    [lab3] = viewer.open(str(other), plugin="napari-livertumor")
    assert lab3.name == "HCC_001 HCC_0010_notes"
    for name in ("seg.HCC_001.dcm", "hcc_001-seg.dcm"):  # a word anywhere, in any case
        renamed = other.with_name(name)
        other.rename(renamed)
        other = renamed
        [lab4] = viewer.open(str(renamed), plugin="napari-livertumor")
        assert lab4.name == renamed.stem
    assert int(np.asarray(lab2.data).max()) == int(labels.max())
    # TCIA's file name (a number), or a UID, says nothing: named as the SEG opened on its own
    tcia = other.with_name("1-1.dcm")
    other.rename(tcia)
    [lab5] = viewer.open(str(tcia), plugin="napari-livertumor")
    role = lab5.metadata["livertumor_role"]
    assert lab5.name == f"HCC_001 {'ground truth' if role == 'ground_truth' else 'segmentation'}"


def test_a_coronal_nifti_opened_is_checked_as_stored(tmp_path):
    """File > Open checked the scan turned to axial: a coronal file of square pixels was said
    to have pixels 'not square (5 × 0.8 mm, 0.8 mm between images)' (the Load panel said
    nothing), and an odd one was quoted with its axial figures."""
    import warnings as pywarnings

    from napari_livertumor.io.nifti import write_nifti

    rng = np.random.default_rng(0)  # (CT values: a constant image reads as a label map)
    array = rng.integers(-1000, 400, (12, 40, 40)).astype(np.int16)  # (P, rows: S, cols: L)
    onto = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # i→L, j→S, k→P
    write_nifti(CTVolume(array, (5.0, 0.8, 0.8), direction=onto), tmp_path / "cor.nii.gz")
    write_nifti(CTVolume(array, (1.6, 5.0, 0.8), direction=onto), tmp_path / "odd.nii.gz")
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore")
        [(_, square, _)] = napari_get_reader(str(tmp_path / "cor.nii.gz"))(
            str(tmp_path / "cor.nii.gz")
        )
        [(_, odd, _)] = napari_get_reader(str(tmp_path / "odd.nii.gz"))(
            str(tmp_path / "odd.nii.gz")
        )
    assert not any("not square" in w for w in square["metadata"].get("warnings", []))
    [said] = [w for w in odd["metadata"]["warnings"] if "not square" in w]
    assert "(5 × 0.8 mm, 1.6 mm between images), nor are they across the patient" in said


def test_a_seg_file_that_is_a_zip_bomb_is_refused_by_name_never_inflated(study, monkeypatch):
    """File > Open of a deflated DICOM SEG that inflates past the cap (3.4 MB held 7 GB):
    pydicom inflated it whole to learn its SOP class, then again to read it. Refused by name
    now, pydicom never asked to read it; its study folder opens its CT, the SEG passed over."""
    from test_io_seg import _dcmread_spy, _zip_bomb

    ct_dir, seg, ct, _ = study
    _zip_bomb(seg, monkeypatch)
    asked = _dcmread_spy(monkeypatch)
    with pytest.raises(InputError, match="inflates past 1 GiB") as err:
        napari_get_reader(str(seg))(str(seg))
    assert str(err.value).startswith("1-1.dcm: not a readable DICOM file: deflated DICOM")
    study_folder = seg.parent.parent
    [(data, kwargs, kind)] = napari_get_reader(str(study_folder))(str(study_folder))
    assert kind == "image"
    np.testing.assert_array_equal(data, shown(ct).array)
    assert asked and seg not in asked


def test_a_scan_opened_with_the_reader_alone_rolls_head_up(make_napari_viewer, tmp_path):
    """With no plugin panel open, a CT opened by File > Open rolled to a coronal view still
    showed the feet at the top (the panels turned the view, the reader did not)."""
    from napari_livertumor._widgets import _layers

    volume = CTVolume(np.zeros((10, 16, 16), np.int16), spacing=(2.5, 1.0, 1.0))
    write_nifti(volume, tmp_path / "ct.nii.gz")
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "ct.nii.gz"), plugin="napari-livertumor")
    viewer.dims.order = (1, 0, 2)  # coronal: z upright
    vertical = _layers.camera(viewer).orientation2d[0]
    assert str(getattr(vertical, "value", vertical)) == "up"


def test_napari_translate_is_in_z_y_x_order_and_places_one_point_alike():
    """Layer translate must follow the array axes (z, y, x); with y and x swapped two CTs
    whose origins differ would show the same patient point at different napari coordinates."""
    ct = CTVolume(np.zeros((4, 8, 8), np.int16), (2.5, 0.7, 0.7), (-200.0, -150.0, -100.0))
    assert ct.napari_translate == pytest.approx((-100.0, -150.0, -200.0))

    a = CTVolume(np.zeros((6, 20, 20), np.int16), (2.0, 0.5, 0.5), (0.0, 0.0, 0.0))
    b = CTVolume(np.zeros((6, 20, 20), np.int16), (2.0, 0.5, 0.5), (-3.0, 2.0, -4.0))
    point = np.array([1.0, 3.5, 2.0, 1.0])  # LPS x, y, z: a voxel centre of both grids

    def world(ct):
        ijk = np.linalg.solve(ct.affine_lps, point)[:3]  # x, y, z index
        return np.asarray(ct.napari_translate) + ijk[::-1] * np.asarray(ct.napari_scale)

    np.testing.assert_allclose(world(a), world(b))
    np.testing.assert_allclose(world(a), [2.0, 3.5, 1.0])
