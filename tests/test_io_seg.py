"""A user exports masks as DICOM SEG and reads HCC-TACE-Seg-like SEGs back onto their CT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from _seg_edits import drop_segment

from napari_livertumor.errors import InputError
from napari_livertumor.io import CTVolume, load_ct
from napari_livertumor.io.dicom import read_dicom_series
from napari_livertumor.io.dicom_write import write_ct_series
from napari_livertumor.io.seg import label_to_class, read_dicom_seg, write_dicom_seg

HCC_SEGMENTS = [(1, "Liver"), (2, "Mass"), (3, "Portal vein"), (4, "Abdominal aorta")]


@pytest.fixture
def ct(tmp_path) -> CTVolume:
    direction = np.diag([1.0, -1.0, -1.0])
    volume = CTVolume(np.full((8, 20, 24), -1000, np.int16), (2.5, 0.8, 0.7), (5, 6, 7), direction)
    write_ct_series(volume, tmp_path / "ct", patient_id="HCC_001")
    return load_ct(tmp_path / "ct")


def hcc_labels(shape) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[1:7, 3:15, 4:20] = 1
    labels[2:5, 5:9, 6:11] = 2
    labels[3:6, 12:14, 16:18] = 3
    labels[0:8, 17:19, 2:4] = 4
    return labels


@pytest.mark.parametrize("kind", ["BINARY", "LABELMAP"])
@pytest.mark.parametrize("reverse", [False, True], ids=["highdicom-order", "reversed-frames"])
def test_seg_written_then_read_lands_on_the_same_voxels(tmp_path, ct, reverse, kind):
    labels = hcc_labels(ct.shape)
    write_dicom_seg(
        labels,
        ct,
        tmp_path / "seg.dcm",
        HCC_SEGMENTS,
        reverse_frames=reverse,
        segmentation_type=kind,
    )
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "seg.dcm", ct), labels)


def test_a_one_word_patient_name_is_copied_into_the_seg_without_highdicom_s_advice(tmp_path):
    """An anonymised series' one-word PatientName ("REV") made highdicom warn, through the
    command line's log even with -q, that the user should construct names with pydicom's
    ``PersonName.from_named_components()`` (QA export66 2): the name is the CT's, copied."""
    import warnings

    volume = CTVolume(np.full((4, 12, 12), -1000, np.int16), (2.5, 0.8, 0.8))
    write_ct_series(volume, tmp_path / "ct", patient_id="REV", patient_name="REV")
    ct = load_ct(tmp_path / "ct")
    labels = np.zeros(ct.shape, np.uint8)
    labels[1:3, 3:9, 3:9] = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_dicom_seg(labels, ct, tmp_path / "seg.dcm", [(1, "Liver")])
    assert not [w for w in caught if "person name" in str(w.message)], [
        str(w.message) for w in caught
    ]
    assert str(pydicom.dcmread(tmp_path / "seg.dcm").PatientName) == "REV"


def test_frames_of_a_segment_the_seg_does_not_describe_are_said_not_dropped_unsaid(tmp_path, ct):
    """A damaged SEG whose first segment's number no longer matched its frames lost the
    liver without a word (convert wrote a dataset without it)."""
    labels = hcc_labels(ct.shape)
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    ds.SegmentSequence[0].SegmentNumber = 60000
    ds.save_as(tmp_path / "seg.dcm")
    warnings: list[str] = []
    read = read_dicom_seg(tmp_path / "seg.dcm", ct, warnings=warnings)
    assert not (read == 1).any()
    [said] = [w for w in warnings if "does not describe" in w]
    liver_frames = int((labels == 1).any(axis=(1, 2)).sum())
    assert f"segment(s) 1 ({liver_frames} frame(s))" in said and "describes 2, 3, 4, 60000" in said
    # a label map SEG: pixel values no segment describes (the liver's recoloured to 9)
    write_dicom_seg(labels, ct, tmp_path / "map.dcm", HCC_SEGMENTS, segmentation_type="LABELMAP")
    ds = pydicom.dcmread(tmp_path / "map.dcm")
    pixels = ds.pixel_array
    pixels[pixels == 1] = 9
    ds.PixelData = pixels.astype(pixels.dtype).tobytes()
    ds.save_as(tmp_path / "map.dcm")
    warnings = []
    read = read_dicom_seg(tmp_path / "map.dcm", ct, warnings=warnings)
    assert not (read == 1).any()
    assert any(f"segment(s) 9 ({liver_frames} frame(s))" in w for w in warnings), warnings


def _strip(ct: CTVolume, keywords) -> None:
    for f in ct.meta["files"]:
        ds = pydicom.dcmread(f)
        for kw in keywords:
            if kw in ds:
                delattr(ds, kw)
        ds.save_as(f)


def test_seg_of_a_stripped_export_is_written_with_empty_patient_and_study_fields(tmp_path, ct):
    """Anonymised exports often drop Type 2 attributes a SEG copies: write them empty."""
    dropped = ["PatientBirthDate", "PatientSex", "StudyTime", "StudyID", "AccessionNumber",
               "ReferringPhysicianName", "StudyDate"]  # fmt: skip
    _strip(ct, dropped)
    labels = hcc_labels(ct.shape)
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    assert all(kw in ds and not ds.get(kw) for kw in dropped)
    assert ds.PatientID == "HCC_001"  # what the source has is still copied
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "seg.dcm", ct), labels)


def test_seg_of_sources_without_a_study_uid_is_refused_by_name(tmp_path, ct):
    _strip(ct, ["StudyInstanceUID"])
    with pytest.raises(InputError, match="seg.dcm.*lack a required DICOM attribute"):
        write_dicom_seg(hcc_labels(ct.shape), ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    assert not (tmp_path / "seg.dcm").exists()


def test_seg_maps_by_label_text_not_segment_number(tmp_path, ct):
    labels = hcc_labels(ct.shape)
    # segment numbers in another order than our class values, labels in other cases
    shuffled = [(4, "ABDOMINAL AORTA"), (2, "mass"), (1, "liver"), (3, "Portal Vein")]
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", shuffled, algorithm_type="MANUAL")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence][0] == "ABDOMINAL AORTA"
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "seg.dcm", ct), labels)


def test_seg_maps_by_position_when_the_ct_has_no_dicom_identity(tmp_path, ct):
    labels = hcc_labels(ct.shape)
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    same_grid = CTVolume(ct.array, ct.spacing, ct.origin, ct.direction)  # e.g. from NIfTI
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "seg.dcm", same_grid), labels)


def test_necrosis_counts_as_tumor_and_unknown_segments_are_reported(tmp_path, ct):
    labels = np.zeros(ct.shape, np.uint8)
    labels[2:4, 4:8, 4:8] = 1
    labels[3, 5:7, 5:7] = 5
    labels[6, 1:3, 1:3] = 6
    labels[7, 1:3, 1:3] = 7
    segments = [(1, "Liver"), (5, "Necrosis"), (6, "Spleen"), (7, "Background")]
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", segments)
    notes: list[str] = []
    back = read_dicom_seg(tmp_path / "seg.dcm", ct, warnings=notes)
    assert (back[3, 5:7, 5:7] == 2).all()
    assert back[6].max() == 0 and back[7].max() == 0
    assert any("Spleen" in n for n in notes)
    assert not any("Background" in n for n in notes)  # a LABELMAP's background: no news


def test_seg_of_another_series_is_refused(tmp_path, ct):
    other = CTVolume(np.zeros(ct.shape, np.int16), ct.spacing, ct.origin, ct.direction)
    write_ct_series(other, tmp_path / "other")
    other = load_ct(tmp_path / "other")
    write_dicom_seg(hcc_labels(ct.shape), other, tmp_path / "seg.dcm", HCC_SEGMENTS)
    with pytest.raises(InputError, match="references series") as info:
        read_dicom_seg(tmp_path / "seg.dcm", ct)
    assert info.value.path == tmp_path / "seg.dcm"


def test_a_ct_slice_is_not_a_seg(ct):
    with pytest.raises(InputError, match="not a DICOM SEG"):
        read_dicom_seg(ct.meta["files"][0], ct)


def test_seg_export_needs_dicom_sources(tmp_path):
    nifti_ct = CTVolume(np.zeros((3, 8, 8), np.int16))
    with pytest.raises(InputError, match="needs the source CT's DICOM files"):
        write_dicom_seg(np.ones((3, 8, 8), np.uint8), nifti_ct, tmp_path / "seg.dcm")
    assert not any(tmp_path.iterdir())


def test_label_text_mapping():
    assert [label_to_class(t) for t in ("Liver", "TUMOR", "Portal_Vein", "aorta", "Kidney")] == [
        1,
        2,
        3,
        4,
        0,
    ]


def test_tcia_patient_folder_loads_the_referenced_phase_and_its_labels(tmp_path):
    from napari_livertumor.io.tcia import load_tcia_case

    rng = np.random.default_rng(7)
    uid = "1.2.826.0.1.3680043.8.498.77"
    study = tmp_path / "HCC_009" / "02-15-1998-NA-PP CAPLIVER PROTO.-10975"
    series_dir = study / "103.000000-LIVER 3 PHASE CAP-83135"
    phases = []
    for acq in (1, 2):  # two phases stacked in one series folder, as in 21 of 105 patients
        volume = CTVolume(rng.integers(-100, 200, (6, 16, 18)).astype(np.int16), (2.5, 0.8, 0.8))
        write_ct_series(
            volume,
            series_dir,
            series_uid=uid,
            acquisition_number=acq,
            patient_id="HCC_009",
            instance_number_start=1 + 6 * (acq - 1),
            file_names=[f"{acq}-{k + 1:03d}.dcm" for k in range(6)],
        )
        phases.append(volume)
    pre = CTVolume(np.zeros((12, 16, 18), np.int16), (2.5, 0.8, 0.8))
    write_ct_series(pre, study / "2.000000-PRE LIVER-1", series_description="PRE LIVER")

    first_phase = read_dicom_series(series_dir, acquisition=1)
    labels = hcc_labels(first_phase.shape)
    write_dicom_seg(
        labels,
        first_phase,
        study / "300.000000-Segmentation-91221" / "1-1.dcm",
        HCC_SEGMENTS,
        reverse_frames=True,
        algorithm_type="MANUAL",
    )

    ct, gt = load_tcia_case(tmp_path / "HCC_009")
    np.testing.assert_array_equal(ct.array, phases[0].array)  # the phase the SEG was drawn on
    np.testing.assert_array_equal(gt, labels)

    # reading the series by UID from the patient folder also picks the segmented phase...
    by_uid = read_dicom_series(tmp_path / "HCC_009", uid)
    np.testing.assert_array_equal(by_uid.array, phases[0].array)
    assert any("the one a DICOM SEG references" in w for w in by_uid.meta["warnings"])
    # ... while the series folder alone (no SEG in it) gives the later phase
    np.testing.assert_array_equal(read_dicom_series(series_dir).array, phases[1].array)


def test_patient_without_seg_is_named(tmp_path, ct):
    from napari_livertumor.io.tcia import load_tcia_case

    with pytest.raises(InputError, match="no DICOM SEG"):
        load_tcia_case(tmp_path / "ct")


def test_a_liver_tumor_label_is_a_tumor_not_liver():
    """ "Liver mass", "Liver tumor" and "Liver lesion" were read as liver, the first word found."""
    labels = (
        "Liver mass",
        "Liver Tumor",
        "liver_lesion",
        "Mass1",
        "Tumor 2",
        "Portal vein (liver)",
    )
    assert [label_to_class(t) for t in labels] == [2, 2, 2, 2, 2, 3]
    assert label_to_class("Liver parenchyma") == 1 and label_to_class("Whole liver") == 1
    # negated tumor words are liver, plurals count, a non-enhancing tumor is still a tumor
    negated = ("Non-tumor liver", "Tumor-free liver", "Liver without tumor",
               "Liver (tumor excluded)", "liver excluding lesions")  # fmt: skip
    assert [label_to_class(t) for t in negated] == [1] * 5
    assert [label_to_class(t) for t in ("Tumors", "lesions", "Non-enhancing tumor")] == [2, 2, 2]
    # one negated word does not cancel the tumor beside it; "Masses" is plural of Mass
    still_tumor = ("Liver tumor, no necrosis", "Tumor without necrosis", "HCC excluding necrosis",
                   "Viable tumor (necrosis excluded)", "Masses", "Liver masses 2", "Necroses")  # fmt: skip
    assert [label_to_class(t) for t in still_tumor] == [2] * 7
    assert label_to_class("Liver, no masses") == 1
    # the whole organ with its tumors is a liver segment (as tumor it made the liver all tumor)
    whole = ("Liver + tumor", "Liver and tumors", "Whole liver (incl. tumor)", "Liver & Tumor",
             "Liver including lesions", "Liver with tumor", "Liver minus tumor")  # fmt: skip
    assert [label_to_class(t) for t in whole] == [1] * 7
    assert label_to_class("Tumor and necrosis") == 2


def test_labels_on_slices_filled_over_a_gap_are_left_out_of_the_seg_and_said(tmp_path, ct):
    """A series with a missing slice (filled by interpolation when read) made the SEG export
    fail as a whole, and with it the NIfTI and stats written after it."""
    Path(ct.meta["files"][4]).unlink()  # a middle slice
    gap = read_dicom_series(tmp_path / "ct")
    assert gap.shape == ct.shape and "missing slice" in " ".join(gap.meta["warnings"])
    (filled,) = [z for z, uid in enumerate(gap.meta["sop_instance_uids"]) if not uid]
    labels = hcc_labels(gap.shape)
    notes: list[str] = []
    write_dicom_seg(labels, gap, tmp_path / "seg.dcm", HCC_SEGMENTS, notes=notes)
    (note,) = notes
    assert f"slice(s) {filled} (of 0..7" in note and "left out of the DICOM SEG" in note
    # and where a PACS viewer shows it: between the image numbers on either side
    numbers = gap.meta["instance_numbers"]
    assert f"between images {numbers[filled - 1]} and {numbers[filled + 1]})" in note
    said: list[str] = []
    back = read_dicom_seg(tmp_path / "seg.dcm", gap, warnings=said)
    # read back, the filled slice's labels come from the slices beside it; left empty, a SEG
    # reopened in napari was striped. Liver and vessel are the same shapes on both sides:
    # kept; the tumor ends on the filled slice (on the slice below, not above): left as liver
    np.testing.assert_array_equal(np.delete(back, filled, 0), np.delete(labels, filled, 0))
    assert (labels[filled - 1] == 2).any() and not (labels[filled + 1] == 2).any()
    expected = np.where(labels[filled] == 2, 1, labels[filled])
    np.testing.assert_array_equal(back[filled], expected)
    assert any("their labels were interpolated" in n for n in said)
    # labels on the filled slice only: refused, not an empty SEG
    only = np.zeros_like(labels)
    only[filled] = labels[filled]
    with pytest.raises(InputError, match="every labelled voxel lies on slices interpolated"):
        write_dicom_seg(only, gap, tmp_path / "seg2.dcm", HCC_SEGMENTS)
    assert not (tmp_path / "seg2.dcm").exists()


def test_a_note_handed_back_is_not_logged_too(tmp_path, ct, caplog):
    """`segment --dicom-seg` logged "… left out of the DICOM SEG" twice: once as the writer
    logged it, once with its case's name from the notes it was handed."""
    Path(ct.meta["files"][4]).unlink()
    gap = read_dicom_series(tmp_path / "ct")
    labels = hcc_labels(gap.shape)
    notes: list[str] = []
    with caplog.at_level("WARNING"):
        write_dicom_seg(labels, gap, tmp_path / "a.dcm", HCC_SEGMENTS, notes=notes)
    assert len(notes) == 1 and "left out of the DICOM SEG" not in caplog.text
    with caplog.at_level("WARNING"):  # no list to hand it to: logged
        write_dicom_seg(labels, gap, tmp_path / "b.dcm", HCC_SEGMENTS)
    assert caplog.text.count("left out of the DICOM SEG") == 1


def test_a_seg_of_the_whole_series_keeps_its_labels_on_a_slice_whose_file_is_missing(tmp_path, ct):
    """A ground truth drawn on the complete series, read on a folder missing one image: its
    frames there land on the filled slice by position, exactly; they were thrown away for
    labels interpolated from the slices beside it (the vessel's 112 voxels became 33), and
    the note said that slice had no frames."""
    labels = hcc_labels(ct.shape)
    labels[4, 12:14, 16:18] = 0  # the vessel interrupted on slice 4 only: no neighbour's shape
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    Path(ct.meta["files"][4]).unlink()
    gap = read_dicom_series(tmp_path / "ct")
    assert not gap.meta["sop_instance_uids"][4]
    said: list[str] = []
    back = read_dicom_seg(tmp_path / "seg.dcm", gap, warnings=said)
    np.testing.assert_array_equal(back, labels)
    assert not any("interpolated" in n for n in said)


def test_a_seg_of_a_series_with_every_other_slice_filled_reads_back_whole(tmp_path, ct):
    """A series of 2.5 then 5 mm slices (the reader fills every second slice of its 5 mm
    part): its SEG reopened showed labels on the real slices only, striped, with half the
    liver of the stats. The filled slices take the shapes between their neighbours'."""
    for z in (2, 4):  # two gaps: slices 2 and 4 filled when read
        Path(ct.meta["files"][z]).unlink()
    gap = read_dicom_series(tmp_path / "ct")
    filled = [z for z, uid in enumerate(gap.meta["sop_instance_uids"]) if not uid]
    assert filled == [2, 4]
    labels = np.zeros(gap.shape, np.uint8)
    yy, xx = np.mgrid[: gap.shape[1], : gap.shape[2]]
    for z in range(1, 7):  # a liver widening slice by slice (a cone's cross-sections)
        labels[z][(yy - 10) ** 2 + (xx - 12) ** 2 <= (2 + 1.2 * z) ** 2] = 1
    labels[3, 8:12, 10:14] = 2  # a tumor on a real slice only
    write_dicom_seg(labels, gap, tmp_path / "seg.dcm", HCC_SEGMENTS, notes=[])
    back = read_dicom_seg(tmp_path / "seg.dcm", gap)
    real = [z for z in range(gap.shape[0]) if z not in filled]
    np.testing.assert_array_equal(back[real], labels[real])
    area = (back > 0).sum(axis=(1, 2))
    for z in filled:  # between its neighbours' (a real slice's own are exact)
        assert area[z - 1] < area[z] < area[z + 1], area
    assert (back == 2).sum() == (labels[3] == 2).sum()  # not smeared onto the filled slices
    assert abs(int((back > 0).sum()) - int((labels > 0).sum())) < 0.05 * (labels > 0).sum()


def test_a_folder_with_a_seg_reads_the_series_the_seg_was_drawn_on(tmp_path, ct):
    """convert (and segment) took the derived recon with more slices over the contrast series the
    SEG references, unlike training and napari, which pair the labels with the referenced one."""
    recon = CTVolume(np.zeros((12, 20, 24), np.int16), (1.25, 0.8, 0.7), (5, 6, 7))
    write_ct_series(recon, tmp_path / "recon", patient_id="HCC_001", series_description="Recon 2")
    write_dicom_seg(hcc_labels(ct.shape), ct, tmp_path / "seg" / "1-1.dcm", HCC_SEGMENTS)
    volume = read_dicom_series(tmp_path)
    assert volume.meta["series_uid"] == ct.meta["series_uid"] and volume.shape == ct.shape
    assert any("the DICOM SEG here was drawn on" in w for w in volume.meta["warnings"])
    # without the SEG, the most slices
    (tmp_path / "seg" / "1-1.dcm").unlink()
    assert read_dicom_series(tmp_path).shape == recon.shape


def test_a_seg_given_as_the_ct_says_what_it_is_and_what_to_give(tmp_path, ct):
    write_dicom_seg(hcc_labels(ct.shape), ct, tmp_path / "ct" / "seg.dcm", HCC_SEGMENTS)
    with pytest.raises(InputError, match=r"is a DICOM SEG .*its CT series .* is in this folder"):
        read_dicom_series(tmp_path / "ct" / "seg.dcm")
    write_dicom_seg(hcc_labels(ct.shape), ct, tmp_path / "alone" / "seg.dcm", HCC_SEGMENTS)
    with pytest.raises(InputError, match="give the folder of the CT series it was drawn on"):
        read_dicom_series(tmp_path / "alone" / "seg.dcm")


def test_a_seg_on_a_missing_acquisition_of_the_same_series_says_so(tmp_path, ct):
    """It said 'references series X (none … is a slice of the CT series X)', the UID twice."""
    write_dicom_seg(hcc_labels(ct.shape), ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    other = CTVolume(np.zeros(ct.shape, np.int16), ct.spacing, ct.origin, ct.direction)
    write_ct_series(other, tmp_path / "acq2", series_uid=ct.meta["series_uid"],
                    acquisition_number=2)  # fmt: skip
    second = load_ct(tmp_path / "acq2")
    with pytest.raises(InputError, match="drawn on another acquisition of the series") as info:
        read_dicom_seg(tmp_path / "seg.dcm", second)
    assert str(info.value).count(ct.meta["series_uid"]) == 1
    # one acquisition read: its number is not known (it said "AcquisitionNumber None")
    assert second.meta.get("acquisition_number") is None and "None" not in str(info.value)


def test_a_folder_holding_only_a_seg_says_its_ct_is_missing(tmp_path, ct):
    """A patient folder with only the SEG was told "multi-frame/enhanced CT objects are not
    supported" (the SEG is multi-frame), which sent the user looking for the wrong problem."""
    alone = tmp_path / "HCC_005" / "seg"
    write_dicom_seg(hcc_labels(ct.shape), ct, alone / "1-1.dcm", HCC_SEGMENTS)
    with pytest.raises(InputError, match="only SEG object") as info:
        load_ct(tmp_path / "HCC_005")
    assert "is not in this folder" in str(info.value) and "not supported" not in str(info.value)


def test_label_values_no_segment_names_are_said_not_silently_dropped(tmp_path, ct):
    labels = hcc_labels(ct.shape)
    notes: list[str] = []
    write_dicom_seg(labels, ct, tmp_path / "two.dcm", [(1, "Liver"), (2, "Mass")], notes=notes)
    assert any("match no segment" in n and "3, 4" in n for n in notes)
    with pytest.raises(InputError, match="no voxel has a label value of the segments"):
        write_dicom_seg(labels * 3, ct, tmp_path / "none.dcm", [(1, "Liver"), (2, "Mass")])
    assert not (tmp_path / "none.dcm").exists()
    # an empty label map: refused as napari's Save refuses it (the API wrote 0-filled frames)
    with pytest.raises(InputError, match="the labels are empty"):
        write_dicom_seg(labels * 0, ct, tmp_path / "empty.dcm", HCC_SEGMENTS)
    assert not (tmp_path / "empty.dcm").exists()


def test_segments_are_coded_as_viewers_expect(tmp_path, ct):
    """The liver was coded in category "Organ" (not in CID 7150), beside portal vein and aorta
    as "Anatomical Structure": Slicer, dcmqi and OHIF look for Anatomical Structure + Liver."""
    import pydicom

    write_dicom_seg(hcc_labels(ct.shape), ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    coded = {
        str(seg.SegmentLabel): (
            str(seg.SegmentedPropertyCategoryCodeSequence[0].CodeMeaning),
            str(seg.SegmentedPropertyTypeCodeSequence[0].CodeMeaning),
        )
        for seg in ds.SegmentSequence
    }
    assert coded["Liver"] == ("Anatomical Structure", "Liver")
    assert coded["Portal vein"][0] == "Anatomical Structure"
    # drawn in napari's colours elsewhere too (viewers picked their own), and a series of its
    # own: 300 was HCC-TACE-Seg's ground truth's number beside it in the same study
    import highdicom as hd

    from napari_livertumor.io.classes import CLASS_RGB

    for seg in ds.SegmentSequence:
        value = label_to_class(str(seg.SegmentLabel))
        lab = hd.color.CIELabColor.from_dicom_value(seg.RecommendedDisplayCIELabValue)
        assert np.allclose(lab.to_rgb(), np.round(np.array(CLASS_RGB[value]) * 255), atol=2)
    ct_number = int(pydicom.dcmread(ct.meta["files"][0]).SeriesNumber)
    assert int(ds.SeriesNumber) == 1000 + ct_number
    # the mass is coded where it is; an edited export is a series number of its own (a PACS
    # listed the model's SEG and its reviewed copy as two series "1104")
    mass = next(seg for seg in ds.SegmentSequence if str(seg.SegmentLabel) == "Mass")
    assert str(mass.AnatomicRegionSequence[0].CodeMeaning) == "Liver"
    liver = next(seg for seg in ds.SegmentSequence if str(seg.SegmentLabel) == "Liver")
    assert "AnatomicRegionSequence" not in liver
    # steps of 1000: the next CT series' automatic SEG is CT + 1 + 1000 (+1 clashed with it)
    for kind, offset in (("SEMIAUTOMATIC", 2000), ("MANUAL", 3000)):
        out = tmp_path / f"{kind}.dcm"
        write_dicom_seg(hcc_labels(ct.shape), ct, out, HCC_SEGMENTS, algorithm_type=kind)
        assert int(pydicom.dcmread(out).SeriesNumber) == offset + ct_number


def test_a_seg_drawn_on_a_ct_shown_turned_lands_on_the_files_slices(tmp_path, ct):
    """A head-to-feet, anterior-first series is shown turned; napari's Save as DICOM SEG
    wrote the mask drawn on the shown slices onto the stored ones, mirrored in z and y."""
    shown = ct.displayed()
    assert shown.meta.get("stored_turn") is not None
    drawn = np.zeros(shown.shape, np.uint8)
    drawn[1:3, 2:6, 3:9] = 1  # near the top of the shown volume only
    write_dicom_seg(drawn, shown, tmp_path / "seg.dcm", [(1, "Liver")])
    back = read_dicom_seg(tmp_path / "seg.dcm", ct)
    np.testing.assert_array_equal(back, shown.meta["stored_turn"].undo(drawn))
    assert back[-3:-1].any() and not back[1:3].any()  # the feet-first file: the last slices


def test_a_seg_opens_on_its_ct_shown_turned_and_on_a_nifti_stored_another_way(tmp_path, ct):
    """Load CT shows an anterior-first series turned; a SEG drawn on the files was refused on
    it as "drawn on another series", and so was a SEG on a NIfTI of the same CT whose rows
    run the other way (as dcm2niix writes them)."""
    from napari_livertumor.io.nifti import read_nifti, write_nifti

    labels = hcc_labels(ct.shape)
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    shown = ct.displayed()
    turn = shown.meta["stored_turn"]
    notes: list[str] = []
    np.testing.assert_array_equal(
        read_dicom_seg(tmp_path / "seg.dcm", shown, warnings=notes), turn.apply(labels)
    )
    assert notes == []

    standard, _ = ct.to_standard()  # the same voxels, rows running to posterior
    write_nifti(
        CTVolume(standard.array, standard.spacing, standard.origin, standard.direction),
        tmp_path / "ct.nii.gz",
    )
    nifti = read_nifti(tmp_path / "ct.nii.gz")
    assert not np.allclose(nifti.direction, ct.direction)
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "seg.dcm", nifti), turn.apply(labels))

    # a CT turned a way no axis flip undoes (30° about the body axis) is refused
    c, s30 = np.cos(np.pi / 6), np.sin(np.pi / 6)
    oblique = np.array([[c, -s30, 0], [s30, c, 0], [0, 0, 1]]) @ ct.direction
    with pytest.raises(InputError, match="orientation differs"):
        read_dicom_seg(tmp_path / "seg.dcm", CTVolume(ct.array, ct.spacing, ct.origin, oblique))


def test_frames_naming_no_segment_are_the_only_segment_or_refused(tmp_path, ct):
    """Frames without a SegmentIdentificationSequence (against the standard) hold the SEG's
    only segment; with several described, which one is unknown, and the file is refused
    rather than every frame read as segment 1 (the liver)."""
    labels = hcc_labels(ct.shape)
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    for group in [*ds.PerFrameFunctionalGroupsSequence, *ds.SharedFunctionalGroupsSequence]:
        group.pop("SegmentIdentificationSequence", None)
    ds.save_as(tmp_path / "anonymous.dcm")
    with pytest.raises(InputError, match="frame 1 names no segment") as err:
        read_dicom_seg(tmp_path / "anonymous.dcm", ct)
    assert "describes 4 segments" in str(err.value) and "anonymous.dcm" in str(err.value)

    tumor = np.where(labels == 2, 2, 0).astype(np.uint8)  # one segment: a Mass, numbered 7
    write_dicom_seg(tumor, ct, tmp_path / "mass.dcm", [(2, "Mass")])
    ds = pydicom.dcmread(tmp_path / "mass.dcm")
    assert len(ds.SegmentSequence) == 1
    ds.SegmentSequence[0].SegmentNumber = 7
    for group in [*ds.PerFrameFunctionalGroupsSequence, *ds.SharedFunctionalGroupsSequence]:
        group.pop("SegmentIdentificationSequence", None)
    ds.save_as(tmp_path / "mass7.dcm")
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "mass7.dcm", ct), tumor)


def test_frame_positions_written_rounded_still_find_their_slices(tmp_path, ct):
    """Positions rounded to 0.1 mm and no per-frame source image: every frame was dropped,
    and the message named the same series twice as "another series"."""
    labels = hcc_labels(ct.shape)
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    for group in ds.PerFrameFunctionalGroupsSequence:
        group.pop("DerivationImageSequence", None)
        pos = group.PlanePositionSequence[0]
        pos.ImagePositionPatient = [round(float(v) + 0.04, 1) for v in pos.ImagePositionPatient]
    ds.save_as(tmp_path / "rounded.dcm")
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "rounded.dcm", ct), labels)

    for group in ds.PerFrameFunctionalGroupsSequence:  # half a slice off: not these slices
        pos = group.PlanePositionSequence[0]
        pos.ImagePositionPatient = [
            *pos.ImagePositionPatient[:2],
            pos.ImagePositionPatient[2] + 1.25,
        ]
    ds.save_as(tmp_path / "off.dcm")
    with pytest.raises(InputError, match="positions do not match the slices"):
        read_dicom_seg(tmp_path / "off.dcm", ct)


def test_a_seg_of_another_scan_placed_by_position_only_is_said(tmp_path, ct):
    """Another patient's SEG on the same grid, with no per-frame source image, was read
    without a word."""
    from pydicom.uid import generate_uid

    labels = hcc_labels(ct.shape)
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    for group in ds.PerFrameFunctionalGroupsSequence:
        group.pop("DerivationImageSequence", None)
    ds.save_as(tmp_path / "own.dcm")
    notes: list[str] = []
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "own.dcm", ct, warnings=notes), labels)
    assert notes == []  # its own CT: nothing to say

    ds.FrameOfReferenceUID = generate_uid()
    ds.ReferencedSeriesSequence[0].SeriesInstanceUID = generate_uid()
    ds.PatientID = "HCC_099"
    ds.save_as(tmp_path / "other.dcm")
    read_dicom_seg(tmp_path / "other.dcm", ct, warnings=notes)
    [note] = notes
    assert "patient HCC_099 (the CT is HCC_001)" in note and "placed by position only" in note


def test_labels_on_a_grid_the_source_images_do_not_lie_on_are_refused(tmp_path, ct):
    """A turned copy of the CT that lost its way back: the SEG would put every label on the
    mirrored voxels, and nothing would say so."""
    turned, _ = ct.to_standard()
    assert turned.meta.get("files") == ct.meta["files"][::-1]  # per-slice lists follow z
    with pytest.raises(InputError, match="does not match the source CT images"):
        write_dicom_seg(hcc_labels(turned.shape), turned, tmp_path / "seg.dcm", HCC_SEGMENTS)
    assert not (tmp_path / "seg.dcm").exists()


def _seg_of_sources_edited(tmp_path, edit):
    """A small CT series whose files ``edit(ds)`` changed, read, and a liver SEG written of it:
    ``(ct, labels, the SEG as pydicom reads it)``."""
    volume = CTVolume(np.full((6, 16, 16), -1000, np.int16), (2.5, 0.8, 0.8), (0, 0, 0))
    for f in write_ct_series(volume, tmp_path / "ct", patient_id="HCC_002"):
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(f)
    ct = load_ct(tmp_path / "ct")
    labels = np.zeros(ct.shape, np.uint8)
    labels[2:4, 5:9, 5:9] = 1
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", [(1, "Liver")])
    return ct, labels, pydicom.dcmread(tmp_path / "seg.dcm")


@pytest.mark.parametrize(
    "charset", [["", "ISO 2022 IR 87"], "ISO_IR 6", "UTF-8"], ids=["japanese", "ir6", "utf8"]
)
def test_a_character_set_highdicom_refuses_is_written_as_utf8(tmp_path, charset):
    """Exports spell Specific Character Set in ways highdicom's enum refuses (the standard
    Japanese form with an empty first value too): SEG export failed with its raw error."""
    name = "Yamada^Tarou=山田^太郎=やまだ^たろう" if charset != "ISO_IR 6" else "Doe^Jane"

    def named(ds):
        ds.SpecificCharacterSet = charset
        ds.PatientName = name

    ct, labels, seg = _seg_of_sources_edited(tmp_path, named)
    assert str(seg.PatientName) == name
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "seg.dcm", ct), labels)


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("M\u00fcller^J\u00f6rg", "latin-1"),
        ("M\u00fcller^J\u00fcrgen", "utf-8"),
        ("Doe^Jane", "ascii"),
    ],
    ids=["latin1", "utf8", "ascii"],
)
def test_text_beyond_ascii_in_a_source_with_no_character_set_is_declared_utf8(
    tmp_path, name, encoding
):
    """An old scanner or anonymiser wrote Latin-1 names without declaring a character set: the
    SEG copied the bytes undeclared (outside the default repertoire a strict reader or PACS
    garbles or refuses). Written as UTF-8, declared; plain ASCII stays undeclared. UTF-8
    written undeclared (as many tools do) stays itself, not read as Latin-1 ("MÃ¼ller")."""
    from pydicom.dataelem import DataElement

    def undeclared(ds):
        if "SpecificCharacterSet" in ds:
            del ds.SpecificCharacterSet
        del ds[0x00100010]
        ds[0x00100010] = DataElement(0x00100010, "PN", name.encode(encoding))  # raw bytes

    _, _, seg = _seg_of_sources_edited(tmp_path, undeclared)
    assert str(seg.PatientName) == name
    if name.isascii():
        assert "SpecificCharacterSet" not in seg
    else:
        assert seg.SpecificCharacterSet == "ISO_IR 192"
        assert name.encode("utf-8") in (tmp_path / "seg.dcm").read_bytes()


def test_the_seg_carries_its_type_2_content_creator(tmp_path, ct):
    """Content Creator's Name (0070,0084) is Type 2: left out, a validator flags the SEG."""
    write_dicom_seg(hcc_labels(ct.shape), ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    assert "ContentCreatorName" in pydicom.dcmread(tmp_path / "seg.dcm")


def test_a_necrosis_segment_and_a_tumor_larger_than_the_liver_are_said(tmp_path, ct):
    """HCC-TACE-Seg's HCC_017 adds a Necrosis segment (the original dropped the patient for it)
    and HCC_065/075 have a tumor larger than the liver: both were read without a word."""
    labels = hcc_labels(ct.shape)
    labels[3, 6:8, 7:9] = 5  # a necrotic core cut out of the mass
    write_dicom_seg(labels, ct, tmp_path / "nec.dcm", [*HCC_SEGMENTS, (5, "Necrosis")])
    notes: list[str] = []
    read = read_dicom_seg(tmp_path / "nec.dcm", ct, warnings=notes)
    assert (read[3, 6:8, 7:9] == 2).all()  # counted as tumor
    [note] = notes
    assert "Necrosis segment (4 voxels) is counted as tumor" in note and "outside" not in note
    labels[3, 0:2, 20:22] = 5  # and some of it outside the organ
    write_dicom_seg(labels, ct, tmp_path / "nec2.dcm", [*HCC_SEGMENTS, (5, "Necrosis")])
    notes = []
    read_dicom_seg(tmp_path / "nec2.dcm", ct, warnings=notes)
    assert "4 of its voxels lie outside the Mass and Liver segments" in notes[0]

    plain = hcc_labels(ct.shape)
    swapped = np.where(plain == 1, 2, np.where(plain == 2, 1, plain)).astype(np.uint8)
    # a tumor segment named for what it is not is no Necrosis segment
    for tumor_name in ("Tumor without necrosis", "Viable tumor (non-necrotic)",
                       "Necrosis-free tumor", "Tumor, not necrotic"):  # fmt: skip
        named = [(1, "Liver"), (2, tumor_name), (3, "Portal vein"), (4, "Aorta")]
        write_dicom_seg(plain, ct, tmp_path / "named.dcm", named)
        notes = []
        read_dicom_seg(tmp_path / "named.dcm", ct, warnings=notes)
        assert not any("Necrosis" in n for n in notes), tumor_name
    write_dicom_seg(swapped, ct, tmp_path / "swap.dcm", HCC_SEGMENTS)
    notes = []
    read_dicom_seg(tmp_path / "swap.dcm", ct, warnings=notes)
    assert any("larger than the rest of the liver" in n for n in notes)
    notes = []
    read_dicom_seg(tmp_path / "nec.dcm", ct, warnings=notes)
    assert not any("larger than" in n for n in notes)


def test_only_labelled_frames_are_written_and_an_empty_segment_stays_declared(tmp_path, ct):
    """Every slice of every segment was a frame: a 640-slice SEG held 1280 frames, 42.7 MB, for
    a liver on 273 slices (367 frames, 12.3 MB now). A segment without voxels (no tumor found)
    is still declared, with no frames, and reads back empty."""
    import highdicom as hd

    labels = hcc_labels(ct.shape)
    labels[labels >= 2] = 1  # a liver, no tumor
    path = write_dicom_seg(labels, ct, tmp_path / "seg.dcm")
    ds = pydicom.dcmread(path)
    assert int(ds.NumberOfFrames) == int(labels.any(axis=(1, 2)).sum())
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["Liver", "Tumor"]
    np.testing.assert_array_equal(read_dicom_seg(path, ct), labels)
    assert hd.seg.segread(path).number_of_segments == 2


def test_segments_are_read_by_their_coded_type_before_their_label(tmp_path, ct):
    """Other tools' SEGs: "Liver metastasis" was read as liver (its tumor voxels became liver,
    nothing said) and 3D Slicer's "Segment_1", "Segment_2" (coded Liver and Neoplasm) refused
    as having no known segment."""
    from pydicom.sr.codedict import codes

    labels = hcc_labels(ct.shape)
    labels[labels > 2] = 0  # liver and tumor only
    write_dicom_seg(labels, ct, tmp_path / "ours.dcm", [(1, "Liver"), (2, "Mass")])

    def relabelled(names, tumor_code=None):
        ds = pydicom.dcmread(tmp_path / "ours.dcm")
        for item, name in zip(ds.SegmentSequence, names, strict=True):
            item.SegmentLabel = name
        if tumor_code is not None:
            code = ds.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0]
            code.CodeValue, code.CodeMeaning = tumor_code.value, tumor_code.meaning
        path = tmp_path / f"{'_'.join(names)}.dcm"
        ds.save_as(path)
        return path

    for names, code in (
        (["Segment_1", "Segment_2"], codes.SCT.Neoplasm),
        (["Liver", "Liver metastasis"], codes.SCT.Metastasis),
    ):
        notes: list[str] = []
        read = read_dicom_seg(relabelled(names, code), ct, warnings=notes)
        np.testing.assert_array_equal(read, labels)
        assert notes == []
    # a label that says another class than its code: the code decides, and it is said
    notes = []
    read = read_dicom_seg(relabelled(["Liver", "Liver"]), ct, warnings=notes)
    np.testing.assert_array_equal(read, labels)
    assert notes == [
        "segment 2 'Liver' is coded as Mass: read as tumor, not liver as its label reads"
    ]
    # SNOMED RT's older codes, as older dcmqi / Slicer SEGs carry them
    ds = pydicom.dcmread(relabelled(["Segment_1", "Segment_2"], codes.SCT.Neoplasm))
    for item, value in zip(ds.SegmentSequence, ("T-62000", "M-03000"), strict=True):
        code = item.SegmentedPropertyTypeCodeSequence[0]
        code.CodingSchemeDesignator, code.CodeValue = "SRT", value
    ds.save_as(tmp_path / "srt.dcm")
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "srt.dcm", ct), labels)
    # a "Necrosis" label coded as liver is liver, and not counted as necrosis besides
    notes = []
    ds = pydicom.dcmread(relabelled(["Liver", "Necrosis"], codes.SCT.Liver))
    ds.save_as(tmp_path / "nec.dcm")
    read = read_dicom_seg(tmp_path / "nec.dcm", ct, warnings=notes)
    assert set(np.unique(read)) == {0, 1}
    assert not any("counted as tumor" in n for n in notes) and "read as liver" in notes[0]
    # and without a code known here, the label's words: tumors by more names than before
    names = ("Liver metastasis", "Malignant neoplasm of liver", "Hepatocellular carcinoma",
             "Liver cancer", "Neoplasm")  # fmt: skip
    assert [label_to_class(t) for t in names] == [2] * 5
    assert label_to_class("Necrotic core") == 2 and label_to_class("Liver, non-necrotic") == 1
    assert label_to_class("Liver, excluding portal vein") == 1


def _disk_full_at_the_pixels(monkeypatch):
    """pydicom's writer failing as on a full disk: its own wrapping of the error (a traceback
    as its text, no errno), raised at the pixel data."""
    import errno

    import pydicom.filewriter as filewriter

    real = filewriter.write_data_element

    def write(fp, elem, *args, **kwargs):
        if elem.tag == 0x7FE00010:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fp, elem, *args, **kwargs)

    monkeypatch.setattr(filewriter, "write_data_element", write)


def test_a_full_disk_while_writing_a_seg_names_the_file_not_pydicoms_traceback(
    tmp_path, ct, monkeypatch
):
    """The Export panel showed "With tag (7FE0,0010) got exception: [Errno 28] …" and a
    traceback, naming no file."""
    _disk_full_at_the_pixels(monkeypatch)
    target = tmp_path / "seg.dcm"
    with pytest.raises(OSError) as err:
        write_dicom_seg(hcc_labels(ct.shape), ct, target, HCC_SEGMENTS)
    assert str(err.value) == f"[Errno 28] No space left on device: '{target}'"
    assert err.value.filename == str(target) and err.value.strerror == "No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct"]  # no partial file left


def test_a_full_disk_while_writing_a_ct_slice_names_the_slice(tmp_path, monkeypatch):
    _disk_full_at_the_pixels(monkeypatch)
    volume = CTVolume(np.zeros((2, 8, 8), np.int16), (2.5, 0.8, 0.7), (0, 0, 0), np.eye(3))
    with pytest.raises(OSError) as err:
        write_ct_series(volume, tmp_path / "ct")
    assert err.value.filename == str(tmp_path / "ct" / "1-001.dcm")
    assert err.value.strerror == "No space left on device" and "Traceback" not in str(err.value)
    assert list((tmp_path / "ct").iterdir()) == []


def _zip_bomb(path, monkeypatch) -> Path:
    """``path`` saved again as a deflated DICOM file holding 16 MiB of zeros, past the cap
    lowered to 2 MiB for it (the same test as a 3.5 GB one at 1 GiB): a zip bomb."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from napari_livertumor.io import dicom

    monkeypatch.setattr(dicom, "MAX_INFLATED", 2 << 20)
    ds = pydicom.dcmread(path)
    ds.private_block(0x0009, "ZIP BOMB", create=True).add_new(0x10, "OB", bytes(16 << 20))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    assert Path(path).stat().st_size < 200_000
    return Path(path)


def _dcmread_spy(monkeypatch) -> list[Path]:
    """The files pydicom's ``dcmread`` is asked to read from now on (its path or open file's)."""
    import os

    asked: list[Path] = []
    real = pydicom.dcmread

    def spy(fp, *args, **kwargs):
        asked.append(Path(fp if isinstance(fp, (str, os.PathLike)) else fp.name))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", spy)
    return asked


def test_a_seg_or_source_slice_that_is_a_zip_bomb_is_refused_by_name_never_inflated(
    tmp_path, ct, monkeypatch
):
    """pydicom inflates a deflated file whole before reading even its header (3.4 MB held
    7 GB): a SEG read, its referenced series looked up, a folder searched for SEGs, or a source
    slice replaced since the CT was read handed such a file to pydicom. Refused first now: the
    file named (or passed over where an unreadable one is), pydicom never asked to read it."""
    from napari_livertumor.io.seg import seg_referenced_series
    from napari_livertumor.io.tcia import find_seg_files, referenced_instances

    labels = hcc_labels(ct.shape)
    real = tmp_path / "segs" / "1-1.dcm"
    write_dicom_seg(labels, ct, real, HCC_SEGMENTS)
    write_dicom_seg(labels, ct, tmp_path / "segs" / "1-2.dcm", HCC_SEGMENTS)
    bomb = _zip_bomb(tmp_path / "segs" / "1-2.dcm", monkeypatch)
    slice_bomb = _zip_bomb(Path(ct.meta["files"][3]), monkeypatch)  # (replaced since read)
    asked = _dcmread_spy(monkeypatch)

    with pytest.raises(InputError, match="inflates past 1 GiB") as err:
        read_dicom_seg(bomb, ct)
    assert err.value.path == bomb
    with pytest.raises(InputError, match="inflates past 1 GiB") as err:
        referenced_instances(bomb)
    assert err.value.path == bomb
    assert seg_referenced_series(bomb) is None  # (no answer, as for any unreadable file)
    assert find_seg_files(tmp_path / "segs") == [real]
    with pytest.raises(InputError, match="inflates past 1 GiB") as err:
        write_dicom_seg(labels, ct, tmp_path / "out.dcm", HCC_SEGMENTS)
    assert err.value.path == slice_bomb and not (tmp_path / "out.dcm").exists()
    assert asked and bomb not in asked and slice_bomb not in asked
    np.testing.assert_array_equal(read_dicom_seg(real, ct), labels)  # a real one reads


# (pydicom: control characters have no place in an LO, and ESC [ is no character set's)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_header_text_of_a_seg_reaches_its_notes_escaped(tmp_path, ct):
    """A SEG's PatientID and segment labels holding ESC sequences and newlines reached the
    notes (printed by convert and segment) raw: they could clear the terminal or forge a
    line. Escaped as Python writes them (\\x1b, \\n)."""
    from pydicom.uid import generate_uid

    labels = hcc_labels(ct.shape)
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    for group in ds.PerFrameFunctionalGroupsSequence:
        group.pop("DerivationImageSequence", None)
    ds.FrameOfReferenceUID = generate_uid()
    ds.ReferencedSeriesSequence[0].SeriesInstanceUID = generate_uid()
    ds.PatientID = "HCC_099\x1b[2J\nlivertumor: all fine"
    ds.SegmentSequence[3].SegmentLabel = "Liver\x1b[1;31m\r"  # (coded as the aorta)
    ds.save_as(tmp_path / "evil.dcm")
    notes: list[str] = []
    read_dicom_seg(tmp_path / "evil.dcm", ct, warnings=notes)
    said = "\n".join(notes)
    assert "patient HCC_099\\x1b[2J\\nlivertumor: all fine (the CT is HCC_001)" in said
    assert "segment 4 'Liver\\x1b[1;31m\\r' is coded as" in said
    assert not [c for c in said.replace("\n", "") if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0]


def test_a_seg_on_a_grid_shifted_along_y_is_refused_when_placed_by_position(tmp_path, ct):
    """A SEG drawn on a grid 3 mm further back, read onto a CT with no per-slice identity,
    would otherwise be placed rows off its true position instead of being refused."""
    labels = hcc_labels(ct.shape)
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm", HCC_SEGMENTS)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    for group in ds.PerFrameFunctionalGroupsSequence:
        pos = group.PlanePositionSequence[0]
        xyz = [float(v) for v in pos.ImagePositionPatient]
        xyz[1] += 3.0
        pos.ImagePositionPatient = [f"{v:.4f}" for v in xyz]
    ds.save_as(tmp_path / "shifted.dcm")
    same_grid = CTVolume(ct.array, ct.spacing, ct.origin, ct.direction)  # e.g. from NIfTI
    with pytest.raises(InputError, match="frames fall on the CT"):
        read_dicom_seg(tmp_path / "shifted.dcm", same_grid)


def test_where_a_mass_and_the_aorta_segments_overlap_the_voxels_read_as_tumor(tmp_path, ct):
    """Overlapping segments are painted in a fixed order with the tumor on top; with the aorta
    painted last the shared voxels would be read as vessel and the tumor would shrink."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(f) for f in sorted((tmp_path / "ct").iterdir())]
    mask = np.zeros((*ct.shape, 2), bool)
    mask[2:4, 4:10, 4:12, 0] = True  # Mass
    mask[2:4, 7:13, 8:16, 1] = True  # Aorta, overlapping the mass

    def segment(number, label, prop):
        return hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=prop,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )

    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            segment(1, "Mass", codes.SCT.Mass),
            segment(2, "Aorta", codes.SCT.AbdominalAorta),
        ],
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(tmp_path / "seg.dcm")
    got = read_dicom_seg(tmp_path / "seg.dcm", ct)
    both = mask[..., 0] & mask[..., 1]
    assert both.any()
    assert (got[both] == 2).all()
    assert (got[mask[..., 0]] == 2).all()
    assert (got[mask[..., 1] & ~both] == 4).all()


def test_a_ground_truth_seg_without_a_tumor_segment_is_said_to_be_read_tumor_free(tmp_path, ct):
    """A SEG whose Mass segment was dropped (with its frames) was read as a tumor-free ground
    truth without a word: evaluate counted the tumor the model found as a false lesion."""
    labels = hcc_labels(ct.shape)
    seg = tmp_path / "seg.dcm"
    write_dicom_seg(labels, ct, seg, HCC_SEGMENTS, algorithm_type="MANUAL")
    drop_segment(seg, "Mass")
    notes: list[str] = []
    read = read_dicom_seg(seg, ct, warnings=notes)
    assert not (read == 2).any() and (read == 1).any()  # read, not refused
    [said] = [n for n in notes if "tumor" in n]
    assert said.startswith(
        "the SEG describes no tumor segment (its segments: Liver, Portal vein, Abdominal aorta)"
    )
    assert "taken as tumor-free" in said and "\n" not in said

    # a tumor looked for and not found (a declared Mass segment without frames): no news
    write_dicom_seg(
        np.where(labels == 2, 1, labels), ct, seg, HCC_SEGMENTS, algorithm_type="MANUAL"
    )
    notes = []
    read_dicom_seg(seg, ct, warnings=notes)
    assert notes == []
    # nor of this tool's own segmentation of a liver-only run (no ground truth)
    write_dicom_seg(np.where(labels == 1, 1, 0), ct, seg, [(1, "Liver")])
    notes = []
    read_dicom_seg(seg, ct, warnings=notes)
    assert notes == []


def test_a_ground_truth_seg_without_a_liver_segment_is_said_as_training_says_it(tmp_path, ct):
    """A SEG whose Liver segment was dropped (with its frames) opened in the Load panel and by
    File > Open without a word, while convert, train --check and evaluate refuse the patient
    ("describes no liver segment … cannot be trained on or scored")."""
    from napari_livertumor.training.data import NO_LIVER_WHY

    labels = hcc_labels(ct.shape)
    seg = tmp_path / "seg.dcm"
    write_dicom_seg(labels, ct, seg, HCC_SEGMENTS, algorithm_type="MANUAL")
    drop_segment(seg, "Liver")
    notes: list[str] = []
    read = read_dicom_seg(seg, ct, warnings=notes)
    assert (read == 2).any() and not (read == 1).any()  # read, not refused
    assert notes == [
        "the SEG describes no liver segment (its segments: Mass, Portal vein, Abdominal aorta): "
        + NO_LIVER_WHY
    ]
    # nor of this tool's own segmentation of a tumor-only output (no ground truth)
    write_dicom_seg(np.where(labels == 2, 2, 0), ct, seg, [(2, "Tumor")])
    notes = []
    read_dicom_seg(seg, ct, warnings=notes)
    assert notes == []


def test_a_tumor_free_synthetic_patients_seg_declares_its_mass_segment(tmp_path):
    """A synthetic cohort's tumor-free patients are no dropped tumor: their SEG still says a
    Mass segment (empty), and reads without a warning."""
    from napari_livertumor.io.tcia import load_tcia_case
    from napari_livertumor.synth.cohort import _write_tcia_case
    from napari_livertumor.synth.phantom import generate_phantom

    ph = generate_phantom(9, "small", n_tumors=0)
    _write_tcia_case(tmp_path, "HCC_001", ph, 9, np.random.default_rng(0), quirks=False)
    [seg] = (tmp_path / "HCC_001").rglob("1-1.dcm")
    labels = [str(s.SegmentLabel) for s in pydicom.dcmread(seg).SegmentSequence]
    assert "Mass" in labels
    ct, read = load_tcia_case(tmp_path / "HCC_001")
    assert not (read == 2).any() and (read == 1).any()
    assert not any("tumor" in w for w in ct.meta.get("warnings", [])), ct.meta.get("warnings")
