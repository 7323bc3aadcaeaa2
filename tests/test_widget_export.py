"""The Export widget: write the labels, reload them, find the same voxels; never overwrite
without asking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _widget_data import write_dicom_case

from napari_livertumor._widgets import _layers
from napari_livertumor._widgets.export import ExportWidget
from napari_livertumor.io.dicom import read_dicom_series
from napari_livertumor.io.nifti import read_nifti

pytestmark = pytest.mark.gui


@pytest.fixture
def dicom_viewer(make_napari_viewer, tmp_path):
    """A viewer holding a CT read from DICOM and an edited segmentation on it."""
    viewer = make_napari_viewer()
    case, _, labels = write_dicom_case(tmp_path / "dicom")
    vol = read_dicom_series(case)
    _layers.add_ct_layer(viewer, vol, name="TEST_001 CT")
    _layers.add_labels_layer(
        viewer, labels, vol, "TEST_001 CT segmentation", ct_layer_name="TEST_001 CT"
    )
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, vol, labels, tmp_path / "out"


def _export(widget, qtbot):
    widget.export_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)


def test_the_status_names_the_exported_layer_renamed_by_a_rerun_meanwhile(dicom_viewer, qtbot):
    """A Segment rerun that ended while Export wrote renamed the exported layer "… (previous)"
    and gave the new result its name: "Wrote 4 file(s) of 'TEST_001 CT segmentation'" then
    named the new, unexported layer (the files held the first one's labels)."""
    from napari_livertumor._widgets.segment import _keep_previous

    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    widget.labels_combo.setCurrentText("TEST_001 CT segmentation")
    widget.export_button.click()
    # the rerun's result arrives (on the main thread) before the export's is handed over
    kept, _ = _keep_previous(viewer, "TEST_001 CT segmentation", "TEST_001 CT")
    _layers.add_labels_layer(
        viewer, np.zeros_like(labels), vol, "TEST_001 CT segmentation", ct_layer_name="TEST_001 CT"
    )
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert kept == "TEST_001 CT segmentation (previous)"
    assert f"file(s) of '{kept}' to" in widget.status.text()


def test_a_deleted_choice_falls_back_to_the_newest_segmentation_on_view(dicom_viewer):
    """Export and Inspect fell back to the first layer in the list: a hidden "(previous)" run,
    another scan's, where Refine took the one on view."""
    from napari_livertumor._widgets.inspect import InspectWidget

    viewer, widget, vol, labels, _ = dicom_viewer
    old = viewer.layers["TEST_001 CT segmentation"]
    old.name = "TEST_001 CT segmentation (previous)"
    old.visible = False
    for name in ("B segmentation", "C segmentation"):
        _layers.add_labels_layer(viewer, labels, vol, name, ct_layer_name="TEST_001 CT")
    inspect = InspectWidget(viewer)
    viewer.window.add_dock_widget(inspect)
    for panel in (widget, inspect):
        panel.labels_combo.setCurrentText("C segmentation")
    viewer.layers.remove("C segmentation")
    assert widget.labels_combo.currentText() == "B segmentation"
    assert inspect.labels_combo.currentText() == "B segmentation"


def test_nifti_of_a_tilted_grid_say_in_the_panel_that_their_qform_is_off(
    make_napari_viewer, qtbot, tmp_path
):
    """The NIfTI files of a gantry-tilted CT hold its grid in the sform only; tools that read
    the qform (Slicer, ITK) place voxels up to 65 mm off. The panel said only "Wrote 7
    file(s)": the caveat went to the terminal, unseen from a desktop start (QA export66 1)."""
    from napari_livertumor.io.volume import CTVolume

    viewer = make_napari_viewer()
    tilt = np.deg2rad(15)
    direction = np.eye(3)
    direction[:, 2] = [0.0, np.sin(tilt), np.cos(tilt)]
    vol = CTVolume(np.zeros((8, 24, 24), np.int16), (2.5, 0.8, 0.8), (0.0, 0.0, 0.0), direction)
    labels = np.zeros((8, 24, 24), np.uint8)
    labels[2:6, 4:20, 4:20] = 1
    labels[3:5, 8:12, 8:12] = 2
    _layers.add_ct_layer(viewer, vol, name="TILT CT")
    _layers.add_labels_layer(viewer, labels, vol, "TILT CT segmentation", ct_layer_name="TILT CT")
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.folder.setText(str(tmp_path / "out"))
    widget.masks_check.setChecked(True)
    _export(widget, qtbot)
    text = widget.status.text()
    assert "file(s) of 'TILT CT segmentation'" in text
    said = "⚠ NIfTI files: the grid is sheared (a gantry-tilted series, not resampled)"
    assert text.count(said) == 1, text  # once for the labels, liver, tumor and lesion maps
    assert "place voxels up to" in text and "mm off" in text


def test_export_nifti_masks_and_stats_then_reload(dicom_viewer, qtbot):
    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    widget.masks_check.setChecked(True)
    _export(widget, qtbot)
    assert "Wrote 6 file(s) of " in widget.status.text()

    back = read_nifti(out / "TEST_001_labels.nii.gz")
    np.testing.assert_array_equal(back.array, labels)
    assert back.same_grid(vol)
    tumor = read_nifti(out / "TEST_001_tumor.nii.gz").array
    np.testing.assert_array_equal(tumor, labels == 2)
    stats = json.loads((out / "TEST_001_stats.json").read_text())
    assert stats["liver_ml"] == pytest.approx(np.count_nonzero(labels) * vol.voxel_volume_ml, 1e-3)
    # the command line's keys for what the labels lie on (the input's path was lost under
    # the provenance's "source")
    assert stats["case"] == "TEST_001" and stats["shape_zyx"] == list(labels.shape)
    assert stats["input"] == str(vol.meta["source"]) and stats["input"]
    assert stats["series_uid"] == vol.meta["series_uid"] and "acquisition_number" in stats
    import csv

    from napari_livertumor.stats import compute_stats

    rows = list(csv.DictReader((out / "TEST_001_lesions.csv").open()))
    assert len(rows) == stats["lesion_count"] >= 1
    for row, les in zip(rows, stats["lesions"], strict=True):  # a column per figure
        assert row["case"] == "TEST_001" and int(row["lesion"]) == les["id"]
        assert float(row["volume_ml"]) == les["volume_ml"]
        assert int(row["centre_slice"]) == les["slice"]
        zyx = [float(row[f"centroid_{a}_index"]) for a in "zyx"]
        lps = [float(row[f"centroid_lps_{a}_mm"]) for a in "xyz"]
        assert zyx == les["centroid_zyx"] and lps == les["centroid_lps_mm"]
    # and where each is: lesion N of the table marked N in the lesion map
    ids = read_nifti(out / "TEST_001_lesions.nii.gz")
    assert ids.same_grid(vol)
    again = compute_stats(back.array, vol.spacing, affine_lps=vol.affine_lps)["lesions"]
    for les in again:
        assert (ids.array == les["id"]).sum() * vol.voxel_volume_ml == pytest.approx(
            les["volume_ml"], abs=1e-4
        )
    np.testing.assert_array_equal(ids.array > 0, labels == 2)
    # the lesions' attenuation from the CT layer's voxels
    tumor_hu = round(float(vol.array[labels == 2].mean()), 1)
    assert stats["tumor_mean_hu"] == tumor_hu
    assert stats["liver_mean_hu"] == round(float(vol.array[labels == 1].mean()), 1)


def test_an_exported_lesion_map_opens_numbered_and_the_panels_leave_it_alone(dicom_viewer, qtbot):
    """Lesion N of the table could not be found in any exported file."""
    from napari_livertumor._widgets.inspect import InspectWidget
    from napari_livertumor._widgets.refine import RefineWidget

    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    _export(widget, qtbot)
    stats = json.loads((out / "TEST_001_stats.json").read_text())
    [layer] = viewer.open(str(out / "TEST_001_lesions.nii.gz"), plugin="napari-livertumor")
    assert layer.name == "TEST_001_lesions"
    assert layer.metadata[_layers.ROLE] == "lesion_map"
    assert int(np.asarray(layer.data).max()) == stats["lesion_count"] >= 1
    # napari's status bar names the lesion under the cursor, as the table does
    row = layer.features[layer.features["index"] == 1].iloc[0]
    assert row["lesion"] == "lesion 1" and row["volume_ml"] == stats["lesions"][0]["volume_ml"]
    inspect, refine = InspectWidget(viewer), RefineWidget(viewer)
    for panel in (widget, inspect, refine):
        viewer.window.add_dock_widget(panel)
    widget.refresh_layers()
    combos = [widget.labels_combo, inspect.labels_combo, refine.mask_combo, refine.liver_combo]
    for combo in combos:
        names = [combo.itemText(i) for i in range(combo.count())]
        assert "TEST_001 CT segmentation" in names and layer.name not in names
    # a stats file listing other lesions than the map holds, or none beside it: still a
    # lesion map, numbered, without figures (it opened as a segmentation, lesion 1 its liver)
    stats["lesions"] = stats["lesions"][:-1] + [stats["lesions"][-1]] * 2
    (out / "TEST_001_stats.json").write_text(json.dumps(stats))
    [plain] = viewer.open(str(out / "TEST_001_lesions.nii.gz"), plugin="napari-livertumor")
    (out / "TEST_001_stats.json").unlink()
    [alone] = viewer.open(str(out / "TEST_001_lesions.nii.gz"), plugin="napari-livertumor")
    for opened in (plain, alone):
        assert opened.metadata[_layers.ROLE] == "lesion_map"
        row = opened.features[opened.features["index"] == 1].iloc[0]
        assert row["lesion"] == "lesion 1" and row["volume_ml"] is None


def test_exported_stats_take_no_hu_without_a_ct_layer(dicom_viewer, qtbot):
    """Without the CT layer, the labels layer's own grid holds label values, not HU: the
    stats leave the attenuation out rather than write the label values as HU."""
    viewer, widget, vol, labels, out = dicom_viewer
    viewer.layers.remove("TEST_001 CT")
    widget.folder.setText(str(out))
    _export(widget, qtbot)
    stats = json.loads((out / "TEST_001_stats.json").read_text())
    assert stats["lesion_count"] >= 1 and "tumor_mean_hu" not in stats
    assert "mean_hu" not in stats["lesions"][0]


def test_a_folder_typed_with_a_tilde_is_in_the_home_folder(dicom_viewer, qtbot, monkeypatch):
    """'~/exports' made a folder named '~' in napari's working folder."""
    viewer, widget, vol, labels, out = dicom_viewer
    out.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(out))
    monkeypatch.chdir(out)
    widget.folder.setText("~/exports")
    _export(widget, qtbot)
    assert (out / "exports" / "TEST_001_labels.nii.gz").is_file()
    assert not (out / "~").exists()


def test_export_dicom_seg_reads_back_on_the_ct(dicom_viewer, qtbot):
    pytest.importorskip("napari_livertumor.io.seg")
    from napari_livertumor.io.seg import read_dicom_seg

    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    assert widget.seg_check.isEnabled()  # the CT came from DICOM
    widget.seg_check.setChecked(True)
    widget.nifti_check.setChecked(False)
    widget.stats_check.setChecked(False)
    _export(widget, qtbot)
    back = read_dicom_seg(out / "TEST_001_seg.dcm", vol)
    np.testing.assert_array_equal(back, labels)


def test_the_dicom_seg_says_who_drew_it(dicom_viewer, qtbot, monkeypatch):
    """Every export was written as the model's (AUTOMATIC, an AI algorithm), a ground truth
    and a segmentation painted on by hand too."""
    import pydicom

    viewer, widget, vol, labels, out = dicom_viewer
    monkeypatch.setattr(widget, "ask_overwrite", lambda existing, **_: True)
    widget.folder.setText(str(out))
    widget.seg_check.setChecked(True)
    widget.nifti_check.setChecked(False)
    widget.stats_check.setChecked(False)

    def exported_kinds():
        _export(widget, qtbot)
        ds = pydicom.dcmread(out / "TEST_001_seg.dcm")
        return {str(seg.SegmentAlgorithmType) for seg in ds.SegmentSequence}, ds

    layer = viewer.layers["TEST_001 CT segmentation"]
    kinds, ds = exported_kinds()
    assert kinds == {"AUTOMATIC"}
    assert ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence
    # described as `segment --dicom-seg` describes its own (docs/cli.md's "VERSION liver+tumor")
    assert str(ds.SeriesDescription).endswith(" liver+tumor")

    layer.selected_label = 2
    layer.paint((2, 10, 10), 2)  # a touch of the brush, as napari's paint tool does
    kinds, ds = exported_kinds()
    assert kinds == {"SEMIAUTOMATIC"}
    # told apart in a PACS's series list (all read "Segmentation", as the reference SEG)
    assert str(ds.SeriesDescription).endswith(" liver+tumor (edited)")

    truth = _layers.add_labels_layer(viewer, labels, vol, "TEST_001 ground truth",
                                     role="ground_truth")  # fmt: skip
    widget.labels_combo.setCurrentText(truth.name)
    # named apart from the segmentation's files (the same names offered to replace them)
    assert widget._case() == "TEST_001_truth"
    widget.case_name.setText("TEST_001")
    kinds, ds = exported_kinds()
    assert kinds == {"MANUAL"}
    assert str(ds.SeriesDescription) == "Ground truth (napari-livertumor export)"
    assert "SegmentationAlgorithmIdentificationSequence" not in ds.SegmentSequence[0]


def test_a_paint_undone_is_the_models_again_and_an_in_place_write_is_an_edit(
    dicom_viewer, qtbot, monkeypatch
):
    """Painted then undone, the SEG still said SEMIAUTOMATIC; written in place from napari's
    console (`layer.data[...] = 2; layer.refresh()`, no event), it still said AUTOMATIC."""
    import json

    import pydicom

    from napari_livertumor._writer import MODEL_DIGEST, labels_digest

    viewer, widget, vol, labels, out = dicom_viewer
    layer = viewer.layers["TEST_001 CT segmentation"]
    layer.metadata[MODEL_DIGEST] = labels_digest(layer.data)  # as the Segment panel sets it
    layer.metadata["stats"] = {"warnings": []}  # a model's run
    monkeypatch.setattr(widget, "ask_overwrite", lambda existing, **_: True)
    widget.folder.setText(str(out))
    widget.seg_check.setChecked(True)

    def exported():
        _export(widget, qtbot)
        ds = pydicom.dcmread(out / "TEST_001_seg.dcm")
        kinds = {str(seg.SegmentAlgorithmType) for seg in ds.SegmentSequence}
        return kinds, json.loads((out / "TEST_001_stats.json").read_text())["source"]

    layer.selected_label = 2
    layer.paint((2, 10, 10), 2)
    assert exported() == ({"SEMIAUTOMATIC"}, "edited")
    layer.undo()
    assert exported() == ({"AUTOMATIC"}, "model")
    layer.data[3, 12:14, 12:14] = 2
    layer.refresh()
    assert exported() == ({"SEMIAUTOMATIC"}, "edited")


def test_a_duplicated_segmentation_painted_on_is_edited_too(dicom_viewer):
    """napari's Duplicate Layer copies the role but not the paint hook: painted on, the copy
    still said AUTOMATIC."""
    from napari.layers._layer_actions import _duplicate_layer

    from napari_livertumor._writer import seg_algorithm_type

    viewer, widget, vol, labels, out = dicom_viewer
    seg = viewer.layers["TEST_001 CT segmentation"]
    viewer.layers.selection = {seg}
    _duplicate_layer(viewer.layers)
    copy = viewer.layers[-1]
    assert copy is not seg and seg_algorithm_type(copy.metadata) == "AUTOMATIC"
    copy.paint((2, 10, 10), 2)
    assert seg_algorithm_type(copy.metadata) == "SEMIAUTOMATIC"
    assert seg_algorithm_type(seg.metadata) == "AUTOMATIC"


def test_a_segmentation_whose_array_is_replaced_is_edited(dicom_viewer):
    """``layer.data = edited`` (napari's console, another plugin) left the SEG saying
    AUTOMATIC for a tumor removed by hand."""
    from napari_livertumor._writer import seg_algorithm_type

    viewer, widget, vol, labels, out = dicom_viewer
    seg = viewer.layers["TEST_001 CT segmentation"]
    assert seg_algorithm_type(seg.metadata) == "AUTOMATIC"
    edited = seg.data.copy()
    edited[edited == 2] = 1
    seg.data = edited
    assert seg_algorithm_type(seg.metadata) == "SEMIAUTOMATIC"


def test_existing_files_are_replaced_only_when_the_user_agrees(dicom_viewer, qtbot, monkeypatch):
    viewer, widget, vol, labels, out = dicom_viewer
    out.mkdir()
    target = out / "TEST_001_labels.nii.gz"
    target.write_bytes(b"the user's own file")
    widget.folder.setText(str(out))
    asked = []
    monkeypatch.setattr(widget, "ask_overwrite", lambda files, **_: asked.append(files) or False)
    widget.export_button.click()
    assert asked and target in asked[0]
    assert target.read_bytes() == b"the user's own file"
    assert "no file was replaced" in widget.status.text()

    monkeypatch.setattr(widget, "ask_overwrite", lambda files, **_: True)
    _export(widget, qtbot)
    np.testing.assert_array_equal(read_nifti(target).array, labels)
    assert not list(out.glob(".*tmp"))  # no temporary files left behind


def test_replacing_an_export_of_other_labels_of_the_scan_is_said(dicom_viewer, qtbot, monkeypatch):
    """A duplicated layer's edits exported, then the original into the same folder: "Replace
    them?" gave no sign the files held other labels, and Yes put the model's back."""
    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    _export(widget, qtbot)
    asked = []
    monkeypatch.setattr(
        widget, "ask_overwrite", lambda files, other_labels=None, **_: asked.append(other_labels)
    )
    widget.export_button.click()  # the same labels again: a plain question
    assert asked == [None]
    seg = viewer.layers["TEST_001 CT segmentation"]
    edited = seg.data.copy()
    edited[edited == 2] = 1  # the tumor taken back into the liver
    seg.data = edited
    widget.export_button.click()
    assert asked[-1] is not None and asked[-1].startswith("tumor "), asked
    assert asked[-1].endswith("0.00 mL in these labels (300 voxels apart)"), asked[-1]
    assert "liver" not in asked[-1]  # the whole liver (tumor included) did not change


def test_files_of_another_study_under_the_name_are_never_joined_by_this_ones(dicom_viewer, qtbot):
    """A follow-up's stats and labels under HCC_001, then the baseline's SEG or masks exported
    to the same folder: written beside them without a question (nothing was replaced), two
    studies' files under one Name."""
    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    _export(widget, qtbot)
    stats_path = out / "TEST_001_stats.json"
    stats = json.loads(stats_path.read_text())
    assert stats["patient_id"] == vol.meta["patient_id"] and stats["study_uid"]
    assert stats["series_description"] == "tiny CT"
    # as the other study's export would have written it
    stats.update(series_uid="1.2.3.4", study_date="1998-06-12", series_number=104)
    stats_path.write_text(json.dumps(stats))
    widget.nifti_check.setChecked(False)
    widget.stats_check.setChecked(False)
    widget.masks_check.setChecked(True)
    before = sorted(p.name for p in out.iterdir())
    widget.export_button.click()
    text = widget.status.text()
    assert "The files named TEST_001_… in" in text and "are another scan's: series #104" in text
    assert "of 1998-06-12 (these labels lie on series" in text and "nothing was written" in text
    assert sorted(p.name for p in out.iterdir()) == before


def test_replacing_another_scans_export_of_the_same_patient_is_said(
    dicom_viewer, qtbot, monkeypatch, tmp_path
):
    """Two studies of one patient (or two phases of a series under one Name typed) get the
    same name: the second export's "Replace them?" did not say the files were the other
    phase's."""
    from napari_livertumor._widgets.export import _made_on_another_scan

    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    _export(widget, qtbot)
    asked = []
    monkeypatch.setattr(
        widget,
        "ask_overwrite",
        lambda files, other_scan=None, **_: asked.append(other_scan) or False,
    )
    widget.export_button.click()  # the same scan again: a plain question
    assert asked == [None]
    stats_path = out / "TEST_001_stats.json"
    stats = json.loads(stats_path.read_text())
    series = stats["series_uid"]
    for layer in viewer.layers:  # a series of stacked phases: this is its second
        layer.metadata[_layers.CT_VOLUME].meta["acquisition_number"] = 2
    stats["acquisition_number"] = 7  # another acquisition of the series
    stats_path.write_text(json.dumps(stats))
    widget.export_button.click()
    assert asked[-1].startswith("acquisition 7 of the series")
    assert stats.get("acquisition") is None  # (the export's: no stacked passes)
    # passes the reader split and numbered: said as it names them (pass 3 is acq 2's B70f),
    # under a Name typed for both (by default each pass's files are named with it)
    for layer in viewer.layers:
        layer.metadata[_layers.CT_VOLUME].meta["acquisition_label"] = "pass 2, acq 2"
    widget.case_name.setText("TEST_001")
    stats["acquisition"] = "pass 3, acq 2, kernel B70f"
    stats_path.write_text(json.dumps(stats))
    widget.export_button.click()
    assert (
        asked[-1] == "pass 3, acq 2, kernel B70f of the series (these labels lie on pass 2, acq 2)"
    )
    stats["series_uid"] = "1.2.3.4"  # another series (another phase, another study)
    stats_path.write_text(json.dumps(stats))
    widget.export_button.click()
    assert asked[-1].startswith("series 1.2.3.4") and series in asked[-1]
    assert "no file was replaced" in widget.status.text()
    # a NIfTI scan's: by its file
    plain = type(vol)(vol.array, vol.spacing, vol.origin, meta={"source": "/data/b.nii.gz"})
    stats_path.write_text(json.dumps({"input": "/data/a.nii.gz"}))
    assert _made_on_another_scan(stats_path, plain).startswith("/data/a.nii.gz")
    stats_path.write_text(json.dumps({"input": "/data/b.nii.gz"}))
    assert _made_on_another_scan(stats_path, plain) is None
    stats_path.write_text("not JSON")
    assert _made_on_another_scan(stats_path, plain) is None
    # the same file by another path: the command line's relative input, a link
    (tmp_path / "data").mkdir()
    scan = tmp_path / "data" / "b.nii.gz"
    scan.write_bytes(b"")
    (tmp_path / "link.nii.gz").symlink_to(scan)
    real = type(vol)(vol.array, vol.spacing, vol.origin, meta={"source": str(scan)})
    stats_path.write_text(json.dumps({"input": "data/b.nii.gz"}))
    assert _made_on_another_scan(stats_path, real) is None
    stats_path.write_text(json.dumps({"input": "data/b.nii.gz",
                                      "run_settings": {"input": str(tmp_path / "link.nii.gz")}}))  # fmt: skip
    assert _made_on_another_scan(stats_path, real) is None
    stats_path.write_text(json.dumps({"input": "data/a.nii.gz"}))
    assert _made_on_another_scan(stats_path, real).startswith("data/a.nii.gz")


def test_lesion_hu_left_out_with_the_ct_closed_is_said(dicom_viewer, qtbot):
    viewer, widget, vol, labels, out = dicom_viewer
    for layer in [ly for ly in viewer.layers if ly.metadata.get(_layers.ROLE) == "ct"]:
        viewer.layers.remove(layer)
    widget.folder.setText(str(out))
    _export(widget, qtbot)
    assert "the lesions' HU are left out: no CT layer on their grid is open" in (
        widget.status.text()
    )
    stats = json.loads((out / "TEST_001_stats.json").read_text())
    assert all("mean_hu" not in les for les in stats["lesions"])


def test_an_export_stopped_by_a_full_disk_says_which_files_are_the_earlier_exports(
    dicom_viewer, qtbot, monkeypatch
):
    from napari_livertumor._widgets import export as export_module

    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    _export(widget, qtbot)
    real = export_module._write_one

    def full_disk(kind, path, *args):
        if kind == "stats.json":
            raise OSError(28, "No space left on device")
        return real(kind, path, *args)

    monkeypatch.setattr(export_module, "_write_one", full_disk)
    monkeypatch.setattr(widget, "ask_overwrite", lambda files, **_: True)
    _export(widget, qtbot)
    text = widget.status.text()
    assert "export stopped at TEST_001_stats.json" in text
    assert (
        "the TEST_001_stats.json, TEST_001_lesions.csv, TEST_001_lesions.nii.gz there are the earlier export's"
        in text
    )


def test_a_name_too_long_for_a_file_name_is_refused_before_anything_starts(dicom_viewer):
    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out / "new"))
    widget.case_name.setText("N" * 260)
    widget.export_button.click()
    text = widget.status.text()
    assert text.startswith("The Name is too long") and "Type a shorter Name" in text
    assert text.count("N" * 41) == 0  # not the whole name, twice
    assert not (out / "new").exists()
    # short enough for the SEG's name alone, not for the others (looked for as an earlier
    # export's): refused too, not a traceback
    for check in (widget.nifti_check, widget.masks_check, widget.stats_check):
        check.setChecked(False)
    widget.seg_check.setChecked(True)
    widget.case_name.setText("N" * 245)
    widget.status.setText("")
    widget.export_button.click()
    assert widget.status.text().startswith("The Name is too long")


def test_a_folder_too_long_for_windows_is_refused_before_anything_is_written(
    dicom_viewer, qtbot, monkeypatch
):
    """On Windows (without long paths) an export into a folder of 232 characters started,
    and its files' temporary names passed the 260-character limit: the writes fail there (a
    little shorter, the longer names only: half an export). Refused before any file is
    written, saying by how much."""
    from napari_livertumor import fileio

    viewer, widget, vol, labels, out = dicom_viewer
    monkeypatch.setattr(fileio, "on_windows", lambda: True)
    folder = out / ("o" * (232 - len(str(out)) - 1))
    widget.folder.setText(str(folder))
    widget.seg_check.setChecked(True)
    widget.export_button.click()
    text = widget.status.text()
    assert f"{folder}: paths too long for Windows" in text and not widget.busy
    assert "choose an output folder (or a Name) shorter by" in text
    assert "nothing was written" in text and not out.exists()
    # a short one: written
    widget.folder.setText(str(out / "short"))
    _export(widget, qtbot)
    assert (out / "short" / "TEST_001_seg.dcm").is_file(), widget.status.text()


def test_an_earlier_exports_mask_that_no_longer_matches_is_said(dicom_viewer, qtbot, monkeypatch):
    """Masks exported once, the tumor erased, labels exported again without masks: the old
    tumor mask stayed beside labels it no longer matched, without a word."""
    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    widget.masks_check.setChecked(True)
    _export(widget, qtbot)
    widget.masks_check.setChecked(False)
    monkeypatch.setattr(widget, "ask_overwrite", lambda existing, **_: True)
    _export(widget, qtbot)  # the same labels: the masks still match, nothing said
    assert "match" not in widget.status.text()
    layer = viewer.layers[widget.labels_combo.currentText()]
    edited = layer.data.copy()
    edited[edited == 2] = 1  # the tumor painted over as liver: the liver mask is the same
    layer.data = edited
    _export(widget, qtbot)
    text = widget.status.text()
    assert (
        "TEST_001_tumor.nii.gz, already in this folder and not rewritten now, does not match "
        "these labels" in text
    )
    assert "TEST_001_liver.nii.gz" not in text
    assert (out / "TEST_001_tumor.nii.gz").is_file()  # said, never removed
    # a SEG alone: the label map, the tumor mask and the stats (volumes) no longer match; a
    # damaged older file is said as not checked, not passed over
    edited = layer.data.copy()
    edited[edited == 1] = 2  # all tumor now: the liver mask is still the same
    layer.data = edited
    widget.nifti_check.setChecked(False)
    widget.stats_check.setChecked(False)
    widget.seg_check.setChecked(True)
    liver = out / "TEST_001_liver.nii.gz"
    liver.write_bytes(liver.read_bytes()[:40])
    _export(widget, qtbot)
    text = widget.status.text()
    assert (
        "TEST_001_labels.nii.gz, TEST_001_tumor.nii.gz, TEST_001_stats.json (and its lesion "
        "files), already in this folder and not rewritten now, do not match" in text
    )
    assert "TEST_001_liver.nii.gz (not a NIfTI file" in text  # why, in the reader's words
    assert "already in this folder and not rewritten now, could not be checked" in text
    # everything ticked again and exported: nothing left to say
    for box in (widget.nifti_check, widget.stats_check, widget.masks_check):
        box.setChecked(True)
    _export(widget, qtbot)
    assert "not rewritten" not in widget.status.text()
    widget.seg_check.setChecked(False)  # the SEG is read back on the CT and compared too
    _export(widget, qtbot)
    assert "not rewritten" not in widget.status.text()
    edited = layer.data.copy()
    edited[edited == 2] = 1
    layer.data = edited
    _export(widget, qtbot)
    assert "TEST_001_seg.dcm, already in this folder and not rewritten now, does not match" in (
        widget.status.text()
    )


def test_the_dicom_seg_tick_comes_back_with_a_layer_it_fits(dicom_viewer):
    """Unticked while a NIfTI-based layer was chosen, the SEG box stayed unticked when the user
    went back to the DICOM one: the next export skipped the SEG without a word."""
    from _widget_data import tiny_ct

    viewer, widget, vol, labels, out = dicom_viewer
    other, other_labels = tiny_ct()
    # another scan's grid (on the DICOM CT's own grid, a NIfTI mask takes that CT's identity)
    other = type(other)(other.array, other.spacing, (5.0, 5.0, 5.0), other.direction)
    _layers.add_labels_layer(viewer, other_labels, other, "from NIfTI")
    widget.labels_combo.setCurrentText("TEST_001 CT segmentation")
    widget.seg_check.setChecked(True)
    widget.labels_combo.setCurrentText("from NIfTI")
    assert not widget.seg_check.isEnabled() and not widget.seg_check.isChecked()
    widget.labels_combo.setCurrentText("TEST_001 CT segmentation")
    assert widget.seg_check.isEnabled() and widget.seg_check.isChecked()
    widget.seg_check.setChecked(False)  # the user's own untick stays too
    widget.labels_combo.setCurrentText("from NIfTI")
    widget.labels_combo.setCurrentText("TEST_001 CT segmentation")
    assert not widget.seg_check.isChecked()


def test_dicom_seg_is_offered_only_for_a_dicom_ct(make_napari_viewer):
    from _widget_data import tiny_ct

    viewer = make_napari_viewer()
    vol, labels = tiny_ct()
    _layers.add_labels_layer(viewer, labels, vol, "labels from NIfTI")
    widget = ExportWidget(viewer)
    assert not widget.seg_check.isEnabled()


def test_label_values_outside_the_classes_are_refused_and_a_ground_truth_is_mapped(
    dicom_viewer, qtbot
):
    viewer, widget, vol, labels, out = dicom_viewer
    odd = labels.astype(np.int32)
    odd[labels == 1] = 257  # a uint8 cast would make this "liver" (257 % 256 = 1)
    viewer.add_labels(odd, name="painted", scale=vol.napari_scale, translate=vol.napari_translate)
    widget.labels_combo.setCurrentText("painted")
    widget.folder.setText(str(out))
    _export(widget, qtbot)
    assert "'painted' holds label values from 0 to 257" in widget.status.text()
    assert not out.exists() or not list(out.iterdir())

    truth = labels.copy()
    truth[0, :2, :2] = 4  # aorta
    truth[labels == 1] = 3  # portal vein stands in for the liver here
    gt = _layers.add_labels_layer(viewer, truth, vol, "TEST_001 ground truth", role="ground_truth")
    widget.labels_combo.setCurrentText(gt.name)
    widget.masks_check.setChecked(True)
    _export(widget, qtbot)
    assert "is a ground truth" in widget.status.text()
    liver = read_nifti(out / "TEST_001_truth_liver.nii.gz").array
    np.testing.assert_array_equal(liver, labels > 0)  # portal vein + tumor, never the aorta
    np.testing.assert_array_equal(read_nifti(out / "TEST_001_truth_labels.nii.gz").array, labels)


def test_export_moves_from_a_ground_truth_to_the_segmentation_once_there_is_one(
    make_napari_viewer,
):
    from _widget_data import tiny_ct

    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)  # docked before anything is loaded, as the demo does
    vol, labels = tiny_ct()
    _layers.add_ct_layer(viewer, vol, name="CT")
    _layers.add_labels_layer(viewer, labels, vol, "CT ground truth", role="ground_truth")
    assert widget.labels_combo.currentText() == "CT ground truth"
    _layers.add_labels_layer(viewer, labels, vol, "CT segmentation", ct_layer_name="CT")
    assert widget.labels_combo.currentText() == "CT segmentation"
    widget.labels_combo.setCurrentText("CT ground truth")  # the user may still pick it
    assert widget.labels_combo.currentText() == "CT ground truth"


def test_export_follows_the_next_patients_ground_truth_when_none_is_segmented(
    make_napari_viewer,
):
    """It stayed on the first patient's ground truth when the second was opened."""
    from _widget_data import tiny_ct

    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)
    vol, labels = tiny_ct()
    for pid in ("P1", "P2"):
        _layers.add_ct_layer(viewer, vol, name=f"{pid} CT")
        _layers.add_labels_layer(viewer, labels, vol, f"{pid} ground truth", role="ground_truth")
        assert widget.labels_combo.currentText() == f"{pid} ground truth"


def test_a_ground_truth_painted_with_an_unknown_label_is_refused(dicom_viewer, qtbot):
    viewer, widget, vol, labels, out = dicom_viewer
    truth = labels.copy()
    truth[0, 0, 0] = 5  # no HCC class: it was written as background without a word
    gt = _layers.add_labels_layer(viewer, truth, vol, "TEST_001 ground truth", role="ground_truth")
    widget.labels_combo.setCurrentText(gt.name)
    widget.folder.setText(str(out))
    _export(widget, qtbot)
    assert "holds label values from 0 to 5" in widget.status.text()
    assert not out.exists() or not list(out.iterdir())


def test_an_unusable_output_folder_is_refused_before_anything_runs(dicom_viewer, qtbot, tmp_path):
    viewer, widget, vol, labels, out = dicom_viewer
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    widget.folder.setText(str(a_file / "sub"))
    widget.export_button.click()
    assert "afile: is a file" in widget.status.text() and not widget.busy
    assert a_file.read_text() == "x"


def test_an_export_that_fails_half_way_says_what_was_written(tmp_path, monkeypatch):
    """The labels were replaced, the stats not, and the message only quoted a temp file."""
    from napari_livertumor._widgets import export as export_mod
    from napari_livertumor.errors import LiverTumorError
    from napari_livertumor.io.volume import CTVolume

    vol = CTVolume(np.zeros((4, 8, 8), np.int16), spacing=(2.0, 1.0, 1.0))
    labels = np.zeros((4, 8, 8), np.uint8)
    labels[1:3, 2:6, 2:6] = 1
    real = export_mod.atomic_write_text

    def disk_full(path, text):
        if str(path).endswith("stats.json"):
            raise OSError(28, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(export_mod, "atomic_write_text", disk_full)
    files = {k: tmp_path / f"c_{k}" for k in ("labels.nii.gz", "stats.json", "lesions.csv")}
    with pytest.raises(LiverTumorError) as info:
        export_mod.write_exports(labels, vol, files)
    msg = str(info.value)
    assert "already written: c_labels.nii.gz" in msg
    assert "not written: c_stats.json, c_lesions.csv" in msg and "No space" in msg


def test_a_liver_only_segmentation_exports_its_tumor_figures_as_not_computed(dicom_viewer, qtbot):
    """Written as 0 tumor / 0 lesions, a liver-only run read as "no tumor found"; its DICOM
    SEG declared an empty Tumor segment (a viewer: "0 mL of tumor") and "liver+tumor"."""
    import pydicom

    viewer, widget, vol, labels, out = dicom_viewer
    layer = viewer.layers["TEST_001 CT segmentation"]
    layer.data = np.where(labels > 0, 1, 0).astype(np.uint8)  # the liver stage alone
    layer.metadata["stats"] = {"tumor_ml": None, "warnings": ["no liver found: test note"]}
    widget.folder.setText(str(out))
    widget.seg_check.setChecked(True)
    _export(widget, qtbot)
    stats = json.loads((out / "TEST_001_stats.json").read_text())
    assert stats["tumor_ml"] is None and stats["lesion_count"] is None
    assert "not run" in stats["note"] and stats["warnings"] == ["no liver found: test note"]
    assert stats["liver_ml"] > 0
    assert not (out / "TEST_001_lesions.nii.gz").exists()  # no lesions looked for: no map
    ds = pydicom.dcmread(out / "TEST_001_seg.dcm")
    assert [str(x.SegmentLabel) for x in ds.SegmentSequence] == ["Liver"]
    assert "liver+tumor" not in str(ds.SeriesDescription)
    widget.seg_check.setChecked(False)
    # tumor painted by hand afterwards is measured like any other
    data = layer.data.copy()
    data[labels == 2] = 2
    layer.data = data
    widget.folder.setText(str(tmp := out.parent / "out2"))
    _export(widget, qtbot)
    stats = json.loads((tmp / "TEST_001_stats.json").read_text())
    assert stats["tumor_ml"] > 0 and "note" not in stats
    assert (tmp / "TEST_001_lesions.nii.gz").is_file()


def _oblique_feet_first_ct():
    from _widget_data import tiny_ct

    from napari_livertumor.io.volume import CTVolume

    vol, labels = tiny_ct()
    a = np.deg2rad(20)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    direction = rot @ np.diag([1.0, 1.0, -1.0])  # tilted in-plane, slices stored feet first
    return CTVolume(
        vol.array,
        spacing=vol.spacing,
        origin=(-40.0, 25.0, 180.0),
        direction=direction,
        meta=dict(vol.meta),
    ), labels


def test_a_new_labels_layer_painted_on_an_oblique_ct_is_written_in_that_ct_geometry(
    make_napari_viewer, qtbot, tmp_path
):
    """napari's *New labels layer* carries only scale and translate; for a feet-first or tilted
    CT those were taken for an axis-aligned grid, and the mask was written mirrored (139 mm off
    on a feet-first series) without a word."""
    from napari_livertumor._writer import write_labels_nifti

    vol, labels = _oblique_feet_first_ct()
    viewer = make_napari_viewer()
    ct = _layers.add_ct_layer(viewer, vol, name="CT")
    painted = viewer.add_labels(labels.copy(), scale=ct.scale, translate=ct.translate, name="mine")
    assert _layers.CT_VOLUME not in painted.metadata
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels_combo.setCurrentText("mine")
    widget.folder.setText(str(tmp_path / "out"))
    _export(widget, qtbot)
    (written,) = (tmp_path / "out").glob("*_labels.nii.gz")
    back = read_nifti(written)
    assert back.same_grid(vol), (back.affine, vol.affine)
    np.testing.assert_array_equal(back.array, labels)

    # File > Save (the plugin's writer) finds the same CT
    (path,) = write_labels_nifti(str(tmp_path / "saved.nii.gz"), painted.data, painted._get_state())
    assert read_nifti(path).same_grid(vol)

    # a layer on no loaded CT's grid keeps its own scale and translate, axis-aligned
    other = viewer.add_labels(labels.copy(), scale=(3.0, 1.0, 1.0), name="elsewhere")
    assert np.allclose(_layers.volume_of(other, viewer.layers).direction, np.eye(3))


def test_only_a_mask_takes_a_ct_geometry_and_two_phases_on_one_grid_never_pick_a_seg_series(
    make_napari_viewer, qtbot, tmp_path
):
    """An image layer without a CT of its own took the loaded CT's voxels too (Segment ran on
    the other scan); a mask on the shared grid of two phases got the first one's series for its
    DICOM SEG by chance."""
    import dataclasses

    vol, labels = _oblique_feet_first_ct()
    viewer = make_napari_viewer()
    ct = _layers.add_ct_layer(viewer, vol, name="CT")
    other = viewer.add_image(
        np.full(vol.shape, -900, np.int16), scale=ct.scale, translate=ct.translate, name="copy"
    )
    got = _layers.volume_of(other, viewer.layers)
    assert (got.array == -900).all()  # its own voxels, not the CT's
    assert got.same_grid(vol) and not got.meta.get("files")  # the CT's frame, not its slices

    # a segmentation opened on its own (no CT layer) lends its CT's frame to a mask drawn on it
    seg = _layers.add_labels_layer(viewer, labels, vol, "seg", ct_layer_name="CT")
    viewer.layers.remove(ct)
    drawn = viewer.add_labels(np.zeros(vol.shape, np.uint8), scale=seg.scale,
                              translate=seg.translate, name="drawn")  # fmt: skip
    assert _layers.volume_of(drawn, viewer.layers).same_grid(vol)
    viewer.layers.remove(seg)
    viewer.layers.remove(drawn)

    arterial = dataclasses.replace(
        vol, meta={**vol.meta, "series_uid": "1.2.ART", "files": ["a.dcm"] * vol.shape[0]}
    )
    venous = dataclasses.replace(
        vol, meta={**vol.meta, "series_uid": "1.2.VEN", "files": ["v.dcm"] * vol.shape[0]}
    )
    _layers.add_ct_layer(viewer, arterial, name="arterial")
    _layers.add_ct_layer(viewer, venous, name="venous")
    mine = viewer.add_labels(labels.copy(), scale=ct.scale, translate=ct.translate, name="mine")
    shared = _layers.volume_of(mine, viewer.layers)
    assert shared.same_grid(vol) and not shared.meta.get("files")
    assert shared.meta["grid_shared_by"] == ["arterial", "venous"]
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels_combo.setCurrentText("mine")
    assert not widget.seg_check.isEnabled()
    assert "several CTs (arterial, venous)" in widget.seg_check.toolTip()
    widget.folder.setText(str(tmp_path / "out"))
    widget.seg_check.setEnabled(True)  # (were it offered anyway)
    widget.seg_check.setChecked(True)
    _export(widget, qtbot)
    assert "lies on the grid of several CTs (arterial, venous)" in widget.status.text()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # File > Save as DICOM SEG refuses it too, naming both
    from napari_livertumor._writer import SaveRefused, write_labels_dicom_seg

    with pytest.raises(SaveRefused, match=r"several CTs \(arterial, venous\)"):
        write_labels_dicom_seg(str(tmp_path / "mine.dcm"), mine.data, mine._get_state())


def test_cancel_stops_before_the_next_file_and_says_what_was_written(
    dicom_viewer, qtbot, monkeypatch
):
    """The export never looked at Cancel: every file was written, and the panel said
    "Cancelled: nothing was changed"."""
    import threading

    from napari_livertumor._widgets import export as export_mod

    viewer, widget, _, _, out = dicom_viewer
    widget.folder.setText(str(out))
    widget.masks_check.setChecked(True)
    real, first_done, go_on = export_mod._write_one, threading.Event(), threading.Event()

    def held(*args, **kwargs):
        real(*args, **kwargs)
        first_done.set()
        go_on.wait(20)  # the cancel is clicked while the first file's export "runs"

    monkeypatch.setattr(export_mod, "_write_one", held)
    widget.export_button.click()
    qtbot.waitUntil(first_done.is_set, timeout=20_000)
    widget.jobs[widget.export_button].started_at -= 1  # (not a double-click's second click)
    widget.export_button.click()  # Cancel
    go_on.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20_000)
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 1  # the one being written when Cancel came; nothing after it
    text = widget.status.text()
    assert text.startswith("Cancelled after: ") and files[0] in text and "not written" in text
    assert "nothing was changed" not in text


def test_a_new_labels_layer_on_a_ct_is_named_for_its_patient(dicom_viewer):
    """napari's New labels layer on the CT exported as "TEST_001_CT_-_Labels_labels.nii.gz"."""
    viewer, widget, vol, labels, out = dicom_viewer
    drawn = viewer.add_labels(
        np.zeros(vol.shape, np.uint8), name="TEST_001 CT - Labels",
        scale=vol.napari_scale, translate=vol.napari_translate,
    )  # fmt: skip
    widget.refresh_layers()
    widget.labels_combo.setCurrentText(drawn.name)
    assert widget.labels_combo.currentText() == drawn.name
    assert widget._case() == _safe(vol.meta["patient_id"])
    viewer.add_labels(np.zeros((3, 4, 5), np.uint8), name="sketch")  # on no CT's grid
    widget.refresh_layers()
    widget.labels_combo.setCurrentText("sketch")
    assert widget.labels_combo.currentText() == "sketch" and widget._case() == "sketch"


def test_one_pass_of_a_stacked_series_is_named_with_its_pass_only_beside_another(
    dicom_viewer, qtbot, monkeypatch
):
    """The only pass open of a series stacking two (HCC_001's labels by `livertumor segment`
    opened over their CT) was exported as HCC_001_acq1_… beside the command line's
    HCC_001_labels.nii.gz, nothing asked; the pass is added where another pass of the series
    is open (the second pass's export offered to replace the first's files)."""
    from napari_livertumor.io.volume import CTVolume

    viewer, widget, vol, labels, out = dicom_viewer
    vol.meta["acquisition_label"] = "acq 1"  # (the CT's and its segmentation's volume)
    widget.folder.setText(str(out))
    widget.labels_combo.setCurrentText("TEST_001 CT segmentation")
    assert widget._case() == "TEST_001"
    _export(widget, qtbot)
    assert (out / "TEST_001_labels.nii.gz").is_file()
    asked = []
    monkeypatch.setattr(widget, "ask_overwrite", lambda files, *a, **k: asked.append(files))
    _export(widget, qtbot)  # the case's files there: replaced only if the user agrees
    assert asked and "no file was replaced" in widget.status.text()
    # the other pass of the series opened, and segmented: each pass's files named with it
    other = CTVolume(vol.array, vol.spacing, vol.origin, vol.direction, dict(vol.meta))
    other.meta.update(acquisition_label="acq 2", acquisition_number=2)
    _layers.add_ct_layer(viewer, other, name="TEST_001 CT (acq 2)")
    assert widget._case() == "TEST_001_acq1"
    _layers.add_labels_layer(
        viewer, labels, other, "TEST_001 CT segmentation (acq 2)",
        ct_layer_name="TEST_001 CT (acq 2)",
    )  # fmt: skip
    widget.refresh_layers()
    widget.labels_combo.setCurrentText("TEST_001 CT segmentation (acq 2)")
    assert widget._case() == "TEST_001_acq2"
    asked.clear()
    _export(widget, qtbot)
    assert not asked and (out / "TEST_001_acq2_labels.nii.gz").is_file()
    # that pass closed: the one open is named as the case again
    viewer.layers.remove("TEST_001 CT segmentation (acq 2)")
    viewer.layers.remove("TEST_001 CT (acq 2)")
    widget.labels_combo.setCurrentText("TEST_001 CT segmentation")
    assert widget._case() == "TEST_001"


def _safe(name):
    from napari_livertumor._widgets.export import _safe_name

    return _safe_name(name)


def test_a_new_labels_layer_on_a_grid_two_patients_share_is_named_for_neither(make_napari_viewer):
    """Two patients' NIfTI scans resampled to one grid: a mask drawn there was named for the
    first one opened."""
    from napari_livertumor.io.volume import CTVolume

    viewer = make_napari_viewer()
    a = CTVolume(
        np.zeros((4, 8, 8), np.int16),
        (2.5, 1.0, 1.0),
        meta={"patient_id": "HCC_001", "source": "/d/HCC_001.nii.gz", "modality": "CT"},
    )
    b = CTVolume(np.ones((4, 8, 8), np.int16), (2.5, 1.0, 1.0),
                 meta={"patient_id": "HCC_002", "source": "/d/HCC_002.nii.gz", "modality": "CT"})  # fmt: skip
    _layers.add_ct_layer(viewer, a, name="HCC_001")
    _layers.add_ct_layer(viewer, b, name="HCC_002")
    drawn = viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="Labels",
                              scale=a.napari_scale, translate=a.napari_translate)  # fmt: skip
    vol = _layers.volume_of(drawn, viewer.layers)
    assert "patient_id" not in vol.meta and vol.meta["grid_shared_by"] == ["HCC_001", "HCC_002"]
    widget = ExportWidget(viewer)
    widget.refresh_layers()
    widget.labels_combo.setCurrentText("Labels")
    assert widget._case() == "Labels"


def test_segment_labels_opened_over_their_dicom_ct_export_a_dicom_seg(
    make_napari_viewer, qtbot, tmp_path
):
    """A batch `livertumor segment`, reviewed in napari (File > Open of the DICOM folder and the
    `<case>_labels.nii.gz`): the SEG was greyed out ("Needs a CT loaded from DICOM") and the
    files were named "HCC_001_labels_labels.nii.gz"."""
    from napari_livertumor._reader import napari_get_reader
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.seg import read_dicom_seg

    case, _, labels = write_dicom_case(tmp_path / "dicom")
    ct = read_dicom_series(case)
    write_nifti(labels, tmp_path / "TEST_001_labels.nii.gz", reference=ct)  # as segment writes
    # ... beside its stats, which name the series it was made from
    stats = {"series_uid": ct.meta["series_uid"], "acquisition_number": None, "version": "0.9",
             "models": {"liver": "resources/models/liver"}, "device": "cpu"}  # fmt: skip
    (tmp_path / "TEST_001_stats.json").write_text(json.dumps(stats))
    viewer = make_napari_viewer()
    for path in (case, tmp_path / "TEST_001_labels.nii.gz"):
        for data, kwargs, kind in napari_get_reader(str(path))(str(path)):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
    (seg_layer,) = _layers.labels_layers(viewer)
    assert not seg_layer.metadata["ct_volume"].meta.get("series_uid")  # a NIfTI of its own
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels_combo.setCurrentText(seg_layer.name)
    assert widget.seg_check.isEnabled()
    assert widget._case() == "TEST_001"
    widget.folder.setText(str(tmp_path / "out"))
    widget.seg_check.setChecked(True)
    _export(widget, qtbot)
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "out" / "TEST_001_seg.dcm", ct), labels)
    back = read_nifti(tmp_path / "out" / "TEST_001_labels.nii.gz")
    np.testing.assert_array_equal(back.array, labels)
    # its stats said only "source": "unknown": now which file, changed or not, and the run
    # that file's own stats record (a segment run's output as it came: the model's)
    said = json.loads((tmp_path / "out" / "TEST_001_stats.json").read_text())
    assert said["source"] == "model" and said["edited_since_opened"] is False
    assert said["opened_from"] == str(tmp_path / "TEST_001_labels.nii.gz")
    assert said["file_run"] == {"stats_file": str(tmp_path / "TEST_001_stats.json"),
                                "version": "0.9", "device": "cpu", **{k: stats[k] for k in ["models"]}}  # fmt: skip
    seg_layer.selected_label = 2
    seg_layer.paint((2, 10, 10), 2)
    widget.folder.setText(str(tmp_path / "out2"))
    _export(widget, qtbot)
    said = json.loads((tmp_path / "out2" / "TEST_001_stats.json").read_text())
    assert said["edited_since_opened"] is True and said["file_run"]["version"] == "0.9"
    assert said["source"] == "edited"
    seg_layer.undo()
    # napari's own File > Save with the plugin's SEG writer takes the same CT
    [dcm] = seg_layer.save(str(tmp_path / "saved.dcm"), plugin="napari-livertumor")
    np.testing.assert_array_equal(read_dicom_seg(dcm, ct), labels)
    # the same mask without the stats that name its series: it could be another scan's on the
    # same grid, so it takes no CT's identity
    (tmp_path / "TEST_001_stats.json").unlink()
    [(data, kwargs, _)] = napari_get_reader(str(tmp_path / "TEST_001_labels.nii.gz"))(
        str(tmp_path / "TEST_001_labels.nii.gz")
    )
    kwargs["name"] = "unnamed mask"
    viewer.add_labels(data, **kwargs)
    widget.refresh_layers()
    widget.labels_combo.setCurrentText("unnamed mask")
    assert widget.labels_combo.currentText() == "unnamed mask" and not widget.seg_check.isEnabled()
    viewer.layers.remove("unnamed mask")
    # without a DICOM CT open, a label file alone is named for its case, not "…_labels_labels"
    viewer.layers.remove(_layers.ct_layers(viewer)[0])
    widget.refresh_layers()
    widget.labels_combo.setCurrentText(seg_layer.name)
    assert widget._case() == "TEST_001" and not widget.seg_check.isEnabled()


def test_segment_labels_find_their_series_among_two_phases_on_one_grid(
    make_napari_viewer, qtbot, tmp_path
):
    """Two phases of a patient reconstructed on one grid, both opened, then `segment`'s labels
    of one of them: the SEG was greyed out ("Needs a CT loaded from DICOM", though both were)
    and the stats lost the series, while the labels' own stats named it."""
    from napari_livertumor._reader import napari_get_reader
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.seg import read_dicom_seg

    case, _, labels = write_dicom_case(tmp_path / "dicom")
    ct = read_dicom_series(case)
    other = write_ct_series(ct, tmp_path / "arterial", series_uid="1.2.826.0.1.3680043.8.498.99",
                            patient_id=ct.meta.get("patient_id") or "ANON")  # fmt: skip
    write_nifti(labels, tmp_path / "TEST_001_labels.nii.gz", reference=ct)
    stats = {"series_uid": ct.meta["series_uid"], "acquisition_number": None}
    (tmp_path / "TEST_001_stats.json").write_text(json.dumps(stats))
    viewer = make_napari_viewer()
    # the other phase first: the first CT on the grid is not the labels' one
    for path in (other if isinstance(other, Path) else tmp_path / "arterial", case,
                 tmp_path / "TEST_001_labels.nii.gz"):  # fmt: skip
        for data, kwargs, kind in napari_get_reader(str(path))(str(path)):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
    assert len(_layers.ct_layers(viewer)) == 2
    (seg_layer,) = _layers.labels_layers(viewer)
    vol = _layers.volume_of(seg_layer, viewer.layers)
    assert vol.meta["series_uid"] == ct.meta["series_uid"]
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels_combo.setCurrentText(seg_layer.name)
    assert widget.seg_check.isEnabled()
    widget.folder.setText(str(tmp_path / "out"))
    widget.seg_check.setChecked(True)
    _export(widget, qtbot)
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "out" / "TEST_001_seg.dcm", ct), labels)
    said = json.loads((tmp_path / "out" / "TEST_001_stats.json").read_text())
    assert said["series_uid"] == ct.meta["series_uid"]


def test_a_grid_two_turned_series_share_numbers_no_lesion_with_either_series_images(
    make_napari_viewer, tmp_path
):
    """Two feet-first phases on one grid: a mask drawn there was numbered with the first
    series' image numbers (its turned-away stored grid kept that series' references)."""
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.stats import add_image_numbers, compute_stats

    rng = np.random.default_rng(0)
    viewer = make_napari_viewer()
    for k, uid in enumerate(("1.2.826.0.1.3680043.8.498.71", "1.2.826.0.1.3680043.8.498.72")):
        vol = CTVolume(rng.integers(-100, 200, (6, 16, 16)).astype(np.int16), (2.5, 1.0, 1.0),
                       (0.0, 0.0, 0.0), np.diag([1.0, -1.0, -1.0]))  # fmt: skip
        write_ct_series(vol, tmp_path / str(k), series_uid=uid, instance_number_start=100 * k + 1)
        _layers.add_ct_layer(viewer, read_dicom_series(tmp_path / str(k)).displayed(), name=f"p{k}")
    ct = _layers.ct_layers(viewer)[0]
    shared = _layers.grid_volume(viewer.layers, ct.data.shape, ct.scale, ct.translate)
    assert shared.meta["grid_shared_by"] == ["p0", "p1"]
    assert "instance_numbers" not in shared.file_meta and not shared.file_meta.get("files")
    labels = np.zeros(ct.data.shape, np.uint8)
    labels[1:3, 4:8, 4:8] = 2
    stats = add_image_numbers(compute_stats(labels, shared.spacing), shared)
    assert "image_numbers" not in stats["lesions"][0]


def _slow_writes(monkeypatch) -> list:
    """Each export file written 0.3 s late; the names written are appended to the list."""
    import time

    import napari_livertumor._widgets.export as export_mod

    slow, real = [], export_mod._write_one

    def slow_write(kind, path, *args, **kwargs):
        time.sleep(0.3)
        real(kind, path, *args, **kwargs)
        slow.append(path.name)

    monkeypatch.setattr(export_mod, "_write_one", slow_write)
    return slow


def test_closing_the_panel_mid_export_lets_the_set_of_files_finish(
    dicom_viewer, qtbot, monkeypatch
):
    """Closed part-way, the export stopped: the folder held new labels beside old stats, and
    the message said nothing had changed."""

    from napari_livertumor._widgets._jobs import _RUNNING

    viewer, widget, vol, labels, out = dicom_viewer
    monkeypatch.setattr(widget, "ask_overwrite", lambda existing, **_: True)
    widget.folder.setText(str(out))
    widget.masks_check.setChecked(True)
    _export(widget, qtbot)
    old = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert len(old) == 6
    slow = _slow_writes(monkeypatch)
    layer = viewer.layers["TEST_001 CT segmentation"]
    layer.data = np.where(layer.data == 2, 1, layer.data).astype(np.uint8)  # tumor removed
    widget.export_button.click()
    qtbot.waitUntil(lambda: len(slow) >= 1, timeout=20_000)
    widget.shutdown_jobs()  # what closing the panel or the viewer does
    # docked again meanwhile (a script can), the panel offers no second export beside this
    # one's files until it has ended (two wrote into one folder: a mixed set)
    assert not widget.export_button.isEnabled() and widget.busy
    assert "finishes in the background" in widget.status.text()
    widget.export()
    assert "still ending" in widget.status.text()
    qtbot.waitUntil(lambda: not _RUNNING, timeout=30_000)
    qtbot.waitUntil(widget.export_button.isEnabled, timeout=20_000)
    assert widget.export_button.text() == "Export" and not widget.busy
    assert widget.status.text().startswith("Closed while writing: it finished")
    assert len(slow) == 6  # every file of the set, none left from before
    assert all(p.stat().st_mtime_ns != old[p.name] for p in out.iterdir())
    stats = json.loads((out / "TEST_001_stats.json").read_text())
    assert stats["tumor_ml"] == 0


def test_closing_napari_mid_export_lets_the_set_of_files_finish(dicom_viewer, qtbot, monkeypatch):
    """Closing napari deletes the panels without a closeEvent: that stopped the export
    half-way (new SEG, old masks)."""

    from napari_livertumor._widgets._jobs import _RUNNING

    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    widget.masks_check.setChecked(True)
    slow = _slow_writes(monkeypatch)
    widget.export_button.click()
    qtbot.waitUntil(lambda: len(slow) >= 1, timeout=20_000)
    viewer.close()
    qtbot.waitUntil(lambda: not _RUNNING, timeout=30_000)
    assert len(slow) == 6 and len(list(out.iterdir())) == 6


def test_at_exit_a_running_job_is_stopped_and_an_export_finishes_first(qtbot, capsys):
    """A script that closed napari and exited mid-job printed a Qt "deleted object" traceback
    from the worker thread, and an export was cut off."""
    import re
    import threading
    import time

    from napari_livertumor._widgets import _jobs
    from napari_livertumor.errors import Cancelled

    stopped, wrote = [], []

    def stoppable(progress, should_cancel):
        while not should_cancel():
            time.sleep(0.01)
        stopped.append(True)
        raise Cancelled("stopped")

    release = threading.Event()  # the export ends 1 s into the exit hook's wait, however slow
    # the machine (its "waiting for" line comes after 0.5 s of waiting)

    def writing(progress, should_cancel):
        release.wait(30)
        wrote.append(should_cancel())
        return "files"

    a = _jobs.Job(stoppable, napari_progress=False, description="segment").start()
    b = _jobs.Job(writing, napari_progress=False, description="export")
    b.finish_on_exit = True
    b.start()
    qtbot.waitUntil(lambda: a.worker.is_running and b.worker.is_running, timeout=10_000)
    timer = threading.Timer(1.0, release.set)
    timer.start()
    _jobs._finish_jobs_at_exit()  # what the interpreter runs on its way out
    timer.join()
    assert stopped == [True] and wrote == [False]  # the export was not told to stop
    assert a._thread_done.is_set() and b._thread_done.is_set()
    # (another test's job still ending would be named too: "... and X to stop")
    assert re.search(r"waiting for export to finish writing( and .* to stop)? before exiting",
                     capsys.readouterr().err)  # fmt: skip
    qtbot.waitUntil(lambda: not (a.running or b.running), timeout=10_000)
    assert (a.status, b.status) == ("cancelled", "done")


def test_an_untouched_ground_truth_opened_from_a_file_exports_as_not_edited(tmp_path):
    """The digest taken on opening was of the file's classes (portal vein 3, aorta 4), and
    Export compares the labels it writes (mapped to liver/background): every HCC ground truth
    said "edited_since_opened": true."""
    from napari_livertumor._reader import opened_file_metadata
    from napari_livertumor._widgets.export import _provenance
    from napari_livertumor.training.metrics import hcc_to_output

    raw = np.zeros((4, 8, 8), np.uint8)
    raw[1:3, 2:6, 2:6] = 1
    raw[2, 3:5, 3:5] = 2
    raw[1, 2, 2], raw[3, 7, 7] = 3, 4
    metadata = {"livertumor_role": "ground_truth"}
    metadata.update(opened_file_metadata(raw, tmp_path / "HCC_001_gt.nii.gz", "ground_truth"))
    said = _provenance(metadata, {}, hcc_to_output(raw))
    assert said["source"] == "ground_truth" and said["edited_since_opened"] is False
    raw[2, 2, 2] = 2  # a tumor voxel painted
    assert _provenance(metadata, {}, hcc_to_output(raw))["edited_since_opened"] is True


def test_a_reviewed_segmentation_reopened_and_exported_unchanged_stays_reviewed(
    dicom_viewer, qtbot, monkeypatch
):
    """A painted segmentation's DICOM SEG (SEMIAUTOMATIC), opened again with its CT and
    exported unchanged, was stamped AUTOMATIC with the model's description: the person's
    corrections were then passed over as the model's own output, never taken for a reference.
    Labels whose making no file says are not claimed to be the model's own either."""
    import pydicom

    from napari_livertumor._reader import opened_file_metadata
    from napari_livertumor._widgets.export import _provenance
    from napari_livertumor._writer import seg_algorithm_type
    from napari_livertumor.io.seg import is_model_output

    viewer, widget, vol, labels, out = dicom_viewer
    labels = labels.copy()  # (the layer paints into the fixture's array)
    monkeypatch.setattr(widget, "ask_overwrite", lambda existing, **_: True)
    widget.folder.setText(str(out))
    widget.seg_check.setChecked(True)
    layer = viewer.layers["TEST_001 CT segmentation"]
    layer.metadata["source"] = "model"  # as the Segment panel's
    _export(widget, qtbot)  # the model's output, as it came
    model_seg = out / "model_seg.dcm"
    (out / "TEST_001_seg.dcm").rename(model_seg)
    (out / "TEST_001_stats.json").rename(out / "model_stats.json")
    layer.selected_label = 2
    layer.paint((2, 10, 10), 2)  # reviewed: a touch of the brush
    _export(widget, qtbot)
    painted = np.asarray(layer.data).copy()

    def reopened(path, data):
        metadata = {"livertumor_role": "segmentation"}
        metadata.update(opened_file_metadata(data, path, "segmentation"))
        return metadata

    # the reviewed SEG and the label map beside its stats: as reviewed, unchanged or not
    for path in (out / "TEST_001_seg.dcm", out / "TEST_001_labels.nii.gz"):
        metadata = reopened(path, painted)
        assert seg_algorithm_type(metadata, painted) == "SEMIAUTOMATIC", path.name
        assert _provenance(metadata, {}, painted)["source"] == "edited", (path.name, metadata)
    # the model's own SEG opened: AUTOMATIC until painted on
    metadata = reopened(model_seg, labels)
    assert seg_algorithm_type(metadata, labels) == "AUTOMATIC"
    assert _provenance(metadata, {}, labels)["source"] == "model"
    assert seg_algorithm_type(metadata, painted) == "SEMIAUTOMATIC"
    # a label map no stats file speaks for: not the model's own
    (out / "TEST_001_stats.json").unlink()
    metadata = reopened(out / "TEST_001_labels.nii.gz", painted)
    assert seg_algorithm_type(metadata, painted) == "SEMIAUTOMATIC"
    assert _provenance(metadata, {}, painted)["source"] == "unknown"
    # end to end: the reviewed SEG opened through the reader with its CT, exported unchanged
    case = out.parent / "dicom"
    reviewed = out / "TEST_001_seg.dcm"
    folder = next(p.parent for p in case.rglob("*.dcm"))
    (folder.parent / "seg").mkdir()
    reviewed.rename(folder.parent / "seg" / "1-1.dcm")
    for ly in list(viewer.layers):
        viewer.layers.remove(ly)
    viewer.open(str(folder.parent), plugin="napari-livertumor")
    [seg] = [ly for ly in viewer.layers if ly.metadata.get(_layers.ROLE) == "segmentation"]
    np.testing.assert_array_equal(seg.data, painted)
    widget.refresh_layers()
    widget.labels_combo.setCurrentText(seg.name)
    widget.folder.setText(str(out2 := out.parent / "again"))
    widget.seg_check.setChecked(True)
    _export(widget, qtbot)
    [again] = out2.glob("*_seg.dcm")
    ds = pydicom.dcmread(again)
    assert {str(x.SegmentAlgorithmType) for x in ds.SegmentSequence} == {"SEMIAUTOMATIC"}
    assert not is_model_output(ds)
    [stats] = out2.glob("*_stats.json")
    assert json.loads(stats.read_text())["source"] == "edited"


def _reopen_and_export(viewer, widget, qtbot, path, out):
    """``path`` opened over the viewer's CT (other labels closed) and exported with a SEG."""
    import pydicom

    for ly in list(viewer.layers):
        if ly.metadata.get(_layers.ROLE) != "ct":
            viewer.layers.remove(ly)
    viewer.open(str(path), plugin="napari-livertumor")
    [seg] = [ly for ly in viewer.layers if ly.metadata.get(_layers.ROLE) != "ct"]
    widget.refresh_layers()
    widget.labels_combo.setCurrentText(seg.name)
    widget.stats_check.setChecked(True)
    widget.seg_check.setChecked(True)
    widget.folder.setText(str(out))
    _export(widget, qtbot)
    [dcm] = out.glob("*_seg.dcm")
    [stats] = out.glob("*_stats.json")
    return pydicom.dcmread(dcm), json.loads(stats.read_text())


def test_a_label_map_edited_after_its_export_is_not_taken_for_the_models_output(
    dicom_viewer, qtbot, monkeypatch
):
    """Its stats beside it (written by Export, "source": "model") were trusted though the label
    map had been painted and exported again alone: reopened, it was stamped AUTOMATIC and
    passed over as the model's own output. Export's stats now record what each label file held;
    a hand-drawn layer's round trip stays MANUAL."""
    from napari_livertumor.io.seg import is_model_output

    viewer, widget, vol, labels, out = dicom_viewer
    monkeypatch.setattr(widget, "ask_overwrite", lambda existing, **_: True)
    layer = viewer.layers["TEST_001 CT segmentation"]
    layer.metadata["source"] = "model"
    widget.folder.setText(str(out))
    _export(widget, qtbot)  # labels, stats and table: the model's as it came
    stats = json.loads((out / "TEST_001_stats.json").read_text())
    assert set(stats["digests"]) == {"TEST_001_labels.nii.gz"}
    assert stats["algorithm_type"] == "AUTOMATIC"
    layer.selected_label = 2
    layer.paint((2, 10, 10), 2)
    widget.stats_check.setChecked(False)
    _export(widget, qtbot)  # the label map again, alone: the stats now describe the one before
    ds, said = _reopen_and_export(
        viewer, widget, qtbot, out / "TEST_001_labels.nii.gz", out.parent / "again"
    )
    assert {str(x.SegmentAlgorithmType) for x in ds.SegmentSequence} == {"SEMIAUTOMATIC"}
    # the stats describe the file before: they say nothing of it now
    assert not is_model_output(ds) and said["source"] == "unknown"
    # drawn by hand on the CT: MANUAL, and still MANUAL once its label map is opened again
    hand = viewer.add_labels(labels.copy(), scale=layer.scale, translate=layer.translate,
                             name="by hand")  # fmt: skip
    widget.refresh_layers()
    widget.labels_combo.setCurrentText(hand.name)
    widget.folder.setText(str(drawn := out.parent / "drawn"))
    _export(widget, qtbot)
    ds, said = _reopen_and_export(
        viewer, widget, qtbot, next(drawn.glob("*_labels.nii.gz")), out.parent / "drawn again"
    )
    assert {str(x.SegmentAlgorithmType) for x in ds.SegmentSequence} == {"MANUAL"}


def test_a_ground_truths_stats_do_not_speak_for_the_model_labels_written_over_its_own(tmp_path):
    """A ground truth exported (labels + stats), then the model's labels of the case exported
    into the same folder alone: the stats' "ground_truth" made the model's output open as the
    truth (Inspect scored against it) and export as MANUAL."""
    from napari_livertumor._reader import _nifti_labels_role, opened_file_metadata
    from napari_livertumor._widgets.export import _provenance, write_exports
    from napari_livertumor._writer import OPENED_ALGORITHM, seg_algorithm_type
    from napari_livertumor.io.volume import CTVolume

    vol = CTVolume(np.zeros((6, 16, 16), np.int16), spacing=(2.0, 1.0, 1.0))
    truth = np.zeros((6, 16, 16), np.uint8)
    truth[1:5, 2:12, 2:12] = 1
    truth[2:4, 4:8, 4:8] = 2
    model = truth.copy()
    model[2:4, 4:9, 4:9] = 2

    def export(labels, metadata, *kinds):
        files = {kind: tmp_path / f"C1_{kind}" for kind in kinds}
        write_exports(labels, vol, files, extra_stats=_provenance(metadata, {}, labels),
                      algorithm_type=seg_algorithm_type(metadata, labels))  # fmt: skip

    export(truth, {"livertumor_role": "ground_truth"}, "labels.nii.gz", "stats.json")
    path = tmp_path / "C1_labels.nii.gz"
    assert _nifti_labels_role(path, truth) == "ground_truth"
    assert opened_file_metadata(truth, path)[OPENED_ALGORITHM] == "MANUAL"
    export(model, {"livertumor_role": "segmentation", "source": "model"}, "labels.nii.gz")
    assert _nifti_labels_role(path, model) == "segmentation"
    assert OPENED_ALGORITHM not in opened_file_metadata(model, path)


def test_a_liver_only_runs_labels_opened_from_a_file_export_the_tumor_as_not_computed(
    make_napari_viewer, tmp_path, qtbot
):
    """`segment --stages liver` labels opened later exported "0 mL tumor, 0 lesions" and a SEG
    with an empty Tumor segment: only the Segment panel's layers knew the stage had not run."""
    from napari_livertumor.commands.segment import _digest
    from napari_livertumor.io.nifti import write_nifti

    viewer = make_napari_viewer()
    case, _, labels = write_dicom_case(tmp_path / "dicom")
    vol = read_dicom_series(case)
    out = tmp_path / "seg"
    out.mkdir()
    labels_path = out / "TEST_001_labels.nii.gz"
    write_nifti(np.where(labels > 0, 1, 0).astype(np.uint8), labels_path, reference=vol)
    st = labels_path.stat()
    stats = {"case": "TEST_001", "version": "0.9", "models": {"liver": "x", "tumor": None},
             "tumor_ml": None, "lesion_count": None, "series_uid": vol.meta["series_uid"],
             "digests": {labels_path.name: _digest(str(labels_path), st.st_size, st.st_mtime_ns)}}  # fmt: skip
    (out / "TEST_001_stats.json").write_text(json.dumps(stats))
    viewer.open(str(case), plugin="napari-livertumor")
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    ds, said = _reopen_and_export(viewer, widget, qtbot, labels_path, tmp_path / "exp")
    assert [str(x.SegmentLabel) for x in ds.SegmentSequence] == ["Liver"]
    assert str(ds.SeriesDescription).endswith(" liver")  # the model's, as it came
    assert said["tumor_ml"] is None and said["lesion_count"] is None
    assert said["source"] == "model"


def test_a_failing_dicom_seg_says_nothing_else_was_written_and_how_to_have_it(tmp_path):
    from napari_livertumor._widgets import export as export_mod
    from napari_livertumor.errors import InputError
    from napari_livertumor.io.volume import CTVolume

    vol = CTVolume(np.zeros((4, 8, 8), np.int16), spacing=(2.0, 1.0, 1.0))
    labels = np.zeros((4, 8, 8), np.uint8)
    labels[1:3, 2:6, 2:6] = 1
    new = tmp_path / "new folder" / "sub"  # made for the export, removed again: nothing in it
    files = {k: new / f"c_{k}" for k in ("labels.nii.gz", "seg.dcm", "stats.json")}
    with pytest.raises(InputError) as info:  # a CT not read from DICOM
        export_mod.write_exports(labels, vol, files)
    assert "nothing was written or replaced; untick DICOM SEG" in str(info.value)
    assert not any(path.exists() for path in files.values())
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_at_the_dicom_seg_gives_no_advice_to_untick_it(tmp_path, monkeypatch):
    """A full disk (or a file-size limit) failed the SEG, written first, and the message
    said to untick DICOM SEG to export the other files: they would fail the same way."""
    import errno

    from napari_livertumor._widgets import export as export_mod
    from napari_livertumor.errors import LiverTumorError
    from napari_livertumor.io.volume import CTVolume

    def full(kind, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(export_mod, "_write_one", full)
    vol = CTVolume(np.zeros((4, 8, 8), np.int16), spacing=(2.0, 1.0, 1.0))
    labels = np.zeros((4, 8, 8), np.uint8)
    files = {k: tmp_path / f"c_{k}" for k in ("labels.nii.gz", "seg.dcm", "stats.json")}
    with pytest.raises(LiverTumorError) as info:
        export_mod.write_exports(labels, vol, files)
    said = str(info.value)
    assert "No space left on device" in said and "nothing was written or replaced" in said
    assert "untick" not in said


def test_a_cancel_never_parts_the_stats_from_their_lesion_table_and_names_old_files(
    tmp_path, monkeypatch
):
    """A cancel between the stats and the lesion table left a new stats file (5 lesions)
    beside the last export's table (4), and the message did not say the table was old."""
    import json

    from napari_livertumor._widgets import export as export_mod
    from napari_livertumor.errors import Cancelled
    from napari_livertumor.io.volume import CTVolume

    vol = CTVolume(np.zeros((4, 8, 8), np.int16), spacing=(2.0, 1.0, 1.0))
    labels = np.zeros((4, 8, 8), np.uint8)
    labels[1:3, 2:6, 2:6] = 1
    labels[1:3, 3:4, 3:4] = 2
    kinds = ("labels.nii.gz", "stats.json", "lesions.csv")
    files = {k: tmp_path / f"c_{k}" for k in kinds}
    export_mod.write_exports(labels, vol, files)  # the earlier export
    labels[1:3, 3:5, 3:5] = 2  # edited: another lesion size

    done: list[str] = []
    real = export_mod._write_one

    def writing(kind, *args, **kwargs):
        real(kind, *args, **kwargs)
        done.append(kind)

    monkeypatch.setattr(export_mod, "_write_one", writing)

    def after(kind):  # Cancel, clicked while ``kind`` was written
        done.clear()
        return lambda: kind in done

    # Cancel clicked while the stats were written: the table is written with them
    with pytest.raises(Cancelled) as info:
        export_mod.write_exports(labels, vol, files, should_cancel=after("stats.json"))
    stats = json.loads(files["stats.json"].read_text())
    table = files["lesions.csv"].read_text().splitlines()
    assert len(table) - 1 == stats["lesion_count"] == 1
    assert f"{stats['lesions'][0]['volume_ml']}" in table[1]
    assert "all 3 file(s) had been written" in info.value.changed

    # Cancel clicked while the labels were written: the old stats and table are named
    labels[1:3, 3:5, 3:6] = 2
    with pytest.raises(Cancelled) as info:
        export_mod.write_exports(labels, vol, files, should_cancel=after("labels.nii.gz"))
    text = info.value.changed
    assert "not written: c_stats.json, c_lesions.csv" in text
    assert "the c_stats.json, c_lesions.csv there are the earlier export's" in text


def test_a_lesions_hu_comes_from_its_own_scan_not_another_phase_on_its_grid(make_napari_viewer):
    """Its own phase's CT layer closed, the other phase of a stacked series on the same grid
    gave the lesions their attenuation (+29 HU against the liver became -27), without a word."""
    from napari_livertumor.io.volume import CTVolume

    viewer = make_napari_viewer()
    grid = {"spacing": (2.0, 1.0, 1.0), "origin": (0.0, 0.0, 0.0)}
    meta = {"series_uid": "1.2.3", "patient_id": "P"}
    one = CTVolume(np.full((4, 8, 8), 50, np.int16), **grid, meta={**meta, "acquisition_number": 1})
    two = CTVolume(np.full((4, 8, 8), 90, np.int16), **grid, meta={**meta, "acquisition_number": 2})
    _layers.add_ct_layer(viewer, one, name="phase 1")
    ct2 = _layers.add_ct_layer(viewer, two, name="phase 2")
    labels = np.zeros((4, 8, 8), np.uint8)
    seg = _layers.add_labels_layer(viewer, labels, two, "seg", ct_layer_name="phase 2")
    assert _layers.ct_array_for(seg, viewer.layers)[0, 0, 0] == 90
    viewer.layers.remove(ct2)
    assert _layers.ct_array_for(seg, viewer.layers) is None
    # said on export, whatever the reason
    assert _layers.why_no_hu(seg, viewer.layers).startswith("'phase 1' is not the scan")
    _layers.add_ct_layer(viewer, one, name="phase 1 again")
    assert "several scans lie on their grid ('phase 1', 'phase 1 again')" in _layers.why_no_hu(
        seg, viewer.layers
    )
    viewer.layers.remove("phase 1 again")
    # its own scan opened again (another layer of the same series and acquisition) lends HU
    _layers.add_ct_layer(viewer, two, name="phase 2 again")
    viewer.layers.remove("phase 1")
    assert _layers.ct_array_for(seg, viewer.layers)[0, 0, 0] == 90
    viewer.layers.remove("phase 2 again")
    assert _layers.why_no_hu(seg, viewer.layers) == "no CT layer on their grid is open"


def test_a_segment_output_changed_after_its_run_is_said_so_on_export(tmp_path):
    """Its stats' run was repeated as the file's maker although the file had been edited since
    (by another tool) — the stats' digests tell."""
    import os

    from napari_livertumor._reader import _run_beside
    from napari_livertumor.commands.segment import _digest

    labels = tmp_path / "P1_labels.nii.gz"
    labels.write_bytes(b"as segment wrote it")
    st = labels.stat()
    digest = _digest(str(labels.resolve()), st.st_size, st.st_mtime_ns)
    stats = {"version": "1.0", "models": {}, "digests": {labels.name: digest}}
    (tmp_path / "P1_stats.json").write_text(json.dumps(stats))
    assert _run_beside(labels)["changed_since_run"] is False
    labels.write_bytes(b"painted over in another tool")
    os.utime(labels, ns=(st.st_mtime_ns + 10**9, st.st_mtime_ns + 10**9))
    assert _run_beside(labels)["changed_since_run"] is True


def test_a_late_cancel_of_a_job_that_writes_files_still_shows_what_it_wrote(qtbot):
    """Cancel clicked after the export's last file but before it returned (checking older
    files beside them) said "Cancelled: nothing was changed." over replaced files."""
    import threading

    from napari_livertumor._widgets import _jobs

    shown = []
    asked = threading.Event()

    def writing(progress, should_cancel):
        asked.wait(10)  # the files are written; Cancel comes now
        return "2 files written"

    for deliver in (True, False):
        asked.clear()
        job = _jobs.Job(writing, napari_progress=False, description="export",
                        on_result=shown.append)  # fmt: skip
        job.deliver_after_cancel = deliver
        job.start()
        qtbot.waitUntil(lambda j=job: j.worker.is_running, timeout=10_000)
        job.cancel()
        asked.set()
        qtbot.waitUntil(lambda j=job: not j.running, timeout=10_000)
        assert job.status == ("done" if deliver else "cancelled")
    assert shown == ["2 files written"]  # a computing job's late result is still dropped


def test_a_job_waiting_for_a_panels_imports_can_be_cancelled():
    """Cancel did nothing while a load waited 9-14 s for a panel's torch and MONAI imports."""
    import time

    from napari_livertumor._widgets._jobs import ImportGate
    from napari_livertumor.errors import Cancelled

    gate = ImportGate()
    gate.announce()  # a panel's background imports, still running
    said, looks = [], []

    def cancelled() -> bool:  # Cancel pressed before the third look
        looks.append(1)
        return len(looks) >= 3

    t0 = time.monotonic()
    with pytest.raises(Cancelled, match="waiting for the panels' imports"):
        gate.wait(cancelled, lambda *a: said.append(a))
    # looked at while waiting (every tenth of a second: 0.3 s here), the Cancel taken at the
    # first look that saw it; the bound is loose, for a loaded machine
    assert len(looks) == 3 and said == [("waiting for torch and MONAI to load", 0, 1)]
    assert time.monotonic() - t0 < 10
    gate.done()
    gate.wait(lambda: False)  # nothing pending: through at once


def test_an_export_failing_after_its_panel_closed_is_said_when_the_button_returns(
    dicom_viewer, qtbot, monkeypatch
):
    """The job's callbacks go with the panel's closing: a disk filling up afterwards was
    reported as "it finished in the background" (the folder held part of the set)."""
    import time

    import napari_livertumor._widgets.export as export_mod

    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    widget.masks_check.setChecked(True)
    real, written = export_mod._write_one, []

    def failing(kind, path, *args, **kwargs):
        time.sleep(0.3)
        if path.name.endswith("_stats.json"):
            raise OSError(28, "No space left on device", str(path))
        real(kind, path, *args, **kwargs)
        written.append(path.name)

    monkeypatch.setattr(export_mod, "_write_one", failing)
    said = []
    monkeypatch.setattr(_common_mod(), "notify_error", said.append)
    widget.export_button.click()
    qtbot.waitUntil(lambda: len(written) >= 1, timeout=20_000)
    widget.shutdown_jobs()
    qtbot.waitUntil(widget.export_button.isEnabled, timeout=30_000)
    text = widget.status.text()
    assert "writing then failed" in text and "No space left on device" in text
    assert said and "part of the set" in said[0]


def _common_mod():
    import napari_livertumor._widgets._common as common

    return common


def test_a_model_runs_export_keeps_its_unsure_candidates_and_refine_effect():
    """The panel's stats left out what the command line's record (the candidates the filter
    dropped, what the refinement changed): the same case from both could not be compared."""
    from napari_livertumor._widgets.export import _provenance

    unsure = [{"volume_ml": 0.3, "centroid_zyx": [4.0, 10.0, 12.0], "peak": 1.2}]
    effect = {"tumor_ml_added": 1.5, "tumor_ml_removed": 0.2}
    model_stats = {
        "unsure_lesions": unsure,
        "refine_effect": effect,
        "lesion_filter": {"min_ml": 0.1, "min_peak": 2.0},
        "warnings": [],
    }
    out = _provenance({"source": "model", "run": {"refine": True}}, model_stats)
    assert out["unsure_lesions"] == unsure and out["refine_effect"] == effect
    out = _provenance({"source": "model", "run": {}}, {"lesion_filter": None})
    assert out["unsure_lesions"] == [] and "refine_effect" not in out


def test_an_export_replaces_links_to_missing_files_and_its_table_runs_no_formula(tmp_path):
    """A dangling link at an export's name was followed (the file made wherever it pointed,
    outside the folder), and a case named like a formula became one in the lesion table."""
    import csv

    from napari_livertumor._widgets import export as export_mod
    from napari_livertumor.io.volume import CTVolume

    vol = CTVolume(np.zeros((4, 8, 8), np.int16), spacing=(2.0, 1.0, 1.0), origin=(-90, -90, 0))
    labels = np.zeros((4, 8, 8), np.uint8)
    labels[1:3, 2:6, 2:6] = 1
    labels[1:3, 3:5, 3:5] = 2
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    kinds = ("labels.nii.gz", "stats.json", "lesions.csv")
    files = {k: out / f"@SUM(1+1)_{k}" for k in kinds}
    for k, path in files.items():
        path.symlink_to(elsewhere / f"planted_{k}")
    export_mod.write_exports(labels, vol, files)
    assert list(elsewhere.iterdir()) == []
    assert not any(p.is_symlink() for p in files.values())
    with open(files["lesions.csv"], newline="", encoding="utf-8") as fh:
        (row,) = csv.DictReader(fh)
    assert row["case"] == "'@SUM(1+1)"
    assert float(row["centroid_lps_x_mm"]) < 0  # a negative figure stays a number


def test_an_exports_notes_are_shown_in_amber(dicom_viewer, qtbot, monkeypatch):
    """An export that wrote its files but has something to say (an older file beside them
    that no longer matches) shows its line as a warning, not as a plain success."""
    viewer, widget, vol, labels, out = dicom_viewer
    widget.folder.setText(str(out))
    widget.masks_check.setChecked(True)
    _export(widget, qtbot)
    assert widget.status._kind != "warning"
    widget.masks_check.setChecked(False)
    monkeypatch.setattr(widget, "ask_overwrite", lambda existing, **_: True)
    layer = viewer.layers[widget.labels_combo.currentText()]
    edited = layer.data.copy()
    edited[edited == 2] = 1
    layer.data = edited
    _export(widget, qtbot)
    assert "does not match these labels" in widget.status.text()
    assert widget.status._kind == "warning"


def test_exporting_a_hidden_patients_labels_says_they_are_not_the_ones_on_view(
    make_napari_viewer, qtbot, tmp_path
):
    """Going back to patient A by hiding patient B's layers (their eyes), Export wrote B's
    segmentation, still chosen, and said only "Wrote 5 file(s) of 'B CT segmentation'" while
    the user looked at A: the choice stands, and the line says it is hidden, as Inspect's."""
    from _widget_data import back_to_the_first_patient

    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    seg_a, seg_b = back_to_the_first_patient(viewer, widget.labels_combo)
    widget.folder.setText(str(tmp_path / "out"))
    _export(widget, qtbot)
    said = widget.status.text()
    assert said.startswith(
        "⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was written, not "
        "'A CT segmentation' on view (choose it under Labels to export it).\n"
        "Wrote "
    ), said
    assert "file(s) of 'B CT segmentation' to" in said
    assert widget.status._kind == "warning"
    widget.labels_combo.setCurrentText(seg_a.name)  # the one on view: nothing to say
    widget.folder.setText(str(tmp_path / "out_a"))
    _export(widget, qtbot)
    assert widget.status.text().startswith("Wrote "), widget.status.text()
    assert "is hidden" not in widget.status.text() and widget.status._kind == ""


def test_exporting_labels_hidden_over_their_own_ct_names_no_other_patients_labels(
    make_napari_viewer, qtbot, tmp_path
):
    """Two patients on one grid: B's overlay hidden alone (B's CT on view, covering A's
    layers), Export named A's labels "on view" and advised exporting them. Its own CT shown,
    the line says only that the labels are hidden; shown again, the line goes from the
    status (it stayed, saying they were hidden)."""
    from _widget_data import two_patients

    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    (_, _), (ct_b, seg_b) = two_patients(viewer, same_grid=True)
    assert widget.labels_combo.currentText() == seg_b.name
    seg_b.visible = False
    widget.folder.setText(str(tmp_path / "out"))
    _export(widget, qtbot)
    said = widget.status.text()
    assert said.startswith(
        "⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was written.\nWrote "
    ), said
    assert "A CT segmentation" not in said
    assert widget.status._kind == "warning"
    ct_b.visible = False  # B's CT hidden after the export: A's labels are on view now
    assert widget.status.text().startswith(
        "⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was written, not "
        "'A CT segmentation' on view (choose it under Labels to export it).\nWrote "
    ), widget.status.text()
    ct_b.visible = seg_b.visible = True  # both shown again: the line goes
    assert widget.status.text() == said.split("\n", 1)[1]
    assert widget.status.text().startswith("Wrote ") and widget.status._kind == ""


def test_the_hidden_line_is_said_again_when_layers_are_moved_or_removed(
    make_napari_viewer, qtbot, tmp_path
):
    """The amber line followed eyes, not the layer list: A's labels moved above B's CT stayed
    unnamed, and removed they were still named "on view" (choose it under Labels)."""
    from _widget_data import two_patients

    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    (ct_a, seg_a), (ct_b, seg_b) = two_patients(viewer, same_grid=True)
    seg_b.visible = False
    widget.folder.setText(str(tmp_path / "out"))
    _export(widget, qtbot)
    alone = "⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was written.\n"
    assert widget.status.text().startswith(alone), widget.status.text()
    viewer.layers.move(viewer.layers.index(ct_b), 0)  # B's CT under A's layers now
    assert widget.status.text().startswith(
        "⚠ 'B CT segmentation' is hidden: the layer chosen in this panel was written, not "
        "'A CT segmentation' on view (choose it under Labels to export it).\nWrote "
    ), widget.status.text()
    viewer.layers.remove(seg_a)  # gone: not to be chosen
    assert widget.status.text().startswith(alone), widget.status.text()
    assert widget.status._kind == "warning"


def test_the_replace_question_says_the_labels_are_hidden(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """Back on patient A (B's layers hidden), Export still offers B's labels (the choice
    stands), and its "Replace files?" asked only about the file names: Yes replaced B's files
    while the user looked at A. The question says it, in the words of the line after an
    export; exporting them stays allowed."""
    from _widget_data import back_to_the_first_patient
    from qtpy.QtWidgets import QMessageBox

    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    seg_a, seg_b = back_to_the_first_patient(viewer, widget.labels_combo)
    widget.folder.setText(str(tmp_path / "out"))
    _export(widget, qtbot)  # nothing to replace yet: no question
    asked = []
    answer = {"button": QMessageBox.No}
    monkeypatch.setattr(
        QMessageBox,
        "question",
        lambda parent, title, text, *a: asked.append(text) or answer["button"],
    )
    widget.export_button.click()
    assert len(asked) == 1
    assert (
        "\n\n⚠ 'B CT segmentation' is hidden: the layer chosen in this panel would be written, "
        "not 'A CT segmentation' on view (choose it under Labels to export it).\n\nReplace them?"
    ) in asked[0], asked[0]
    assert widget.status.text() == "Export cancelled: no file was replaced."
    answer["button"] = QMessageBox.Yes  # replaced when the user agrees
    _export(widget, qtbot)
    assert "Wrote " in widget.status.text() and "is hidden" in widget.status.text()
    seg_b.visible = True  # on view again: a plain question
    widget.export_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert "is hidden" not in asked[-1] and asked[-1].endswith("\n\nReplace them?")
