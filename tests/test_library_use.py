"""The core used as a library from a script or notebook: what a researcher builds by hand and
passes in is checked where it enters, and the calls do what their arguments say."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import oracle_models, phantom

from napari_livertumor.errors import InputError, SettingsError
from napari_livertumor.io import CTVolume, load_ct
from napari_livertumor.io.nifti import write_nifti
from napari_livertumor.pipeline import InferenceConfig, Segmenter, segment_ct
from napari_livertumor.progress import Reporter, as_reporter


@pytest.mark.parametrize(
    ("direction", "why"),
    [
        (np.diag([-0.75, -0.75, 2.5]), "an affine's 3×3: the voxel sizes counted twice"),
        (2 * np.eye(3), "every axis twice its length"),
        # 1 mm pixels, a 2 mm slice in the z column: within a tilt's length, but no tilt
        (np.diag([1.0, 1.0, 2.0]), "the slice thickness in the z column"),
        (np.diag([1.0, 1.0, 1.5]), "the slice thickness in the z column"),
        (np.zeros((3, 3)), "no axes"),
        (np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1.0]]), "x and y not at right angles"),
    ],
)
def test_a_direction_that_is_no_rotation_is_refused_where_it_is_made(direction, why):
    """An affine's 3×3 passed as the direction gave a 190-litre liver and no warning."""
    with pytest.raises(ValueError, match="unit vectors .* CTVolume.from_affine"):
        CTVolume(np.zeros((4, 5, 6), np.int16), (2.5, 0.75, 0.75), direction=direction)


def test_rounding_in_a_direction_is_normalised_and_a_tilt_is_kept():
    rounded = np.array([[1.0004, 0, 0], [0, 0.9995, 0.0], [0, 0, 1.0]])
    vol = CTVolume(np.zeros((4, 5, 6), np.int16), (2.5, 0.75, 0.75), direction=rounded)
    np.testing.assert_allclose(np.linalg.norm(vol.direction, axis=0), 1, atol=1e-12)
    tilt = np.radians(15)  # a gantry tilt: the slice step leans, one plane apart along the normal
    sheared = np.column_stack([[1, 0, 0], [0, 1, 0], [0, np.tan(tilt), 1]]).astype(float)
    vol = CTVolume(np.zeros((4, 5, 6), np.int16), (2.5, 0.75, 0.75), direction=sheared)
    np.testing.assert_allclose(vol.direction, sheared)
    assert vol.voxel_volume_ml == pytest.approx(2.5 * 0.75 * 0.75 / 1000)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spacing": (0.75, 0.75)}, "3 values"),
        ({"spacing": (2.5, 0.75, 0.75, 1.0)}, "3 values"),
        ({"origin": (0.0, np.nan, 0.0)}, "3 finite values"),
        ({"origin": (0.0, 0.0)}, "3 finite values"),
    ],
)
def test_malformed_geometry_is_refused_where_it_is_made(kwargs, match):
    """They failed deep inside a segmentation (IndexError, zip()) or passed silently (NaN)."""
    with pytest.raises(ValueError, match=match):
        CTVolume(np.zeros((4, 5, 6), np.int16), **kwargs)


def test_a_config_given_with_a_segmenter_is_the_one_applied():
    """segment_ct(ct, InferenceConfig(stages="liver"), models=segmenter) still found tumor."""
    vol, _, _ = phantom()
    seg = Segmenter(InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models())
    both = segment_ct(vol, None, models=seg)
    assert both.stats["lesion_count"] == 1
    liver_only = segment_ct(vol, InferenceConfig(device="cpu", stages="liver"), models=seg)
    assert not (liver_only.labels == 2).any() and liver_only.stats["lesion_count"] is None
    big_only = segment_ct(
        vol, InferenceConfig(device="cpu", min_liver_ml=1, min_tumor_ml=1e6), models=seg
    )
    assert big_only.stats["lesion_count"] == 0 and big_only.stats["lesion_filter"]["min_ml"] == 1e6
    with pytest.raises(SettingsError, match="liver_model .* not this Segmenter's"):
        segment_ct(vol, InferenceConfig(device="cpu", liver_model="/elsewhere"), models=seg)
    liver_seg = Segmenter(InferenceConfig(device="cpu", stages="liver"), models=oracle_models())
    with pytest.raises(SettingsError, match="no tumor model loaded"):
        segment_ct(vol, InferenceConfig(device="cpu"), models=liver_seg)


def test_a_refine_config_is_checked_before_any_work(tmp_path):
    """A path passed validation and failed after both stages had run (AttributeError)."""
    from napari_livertumor.refine import RefineConfig

    path = RefineConfig(iterations=7).save(tmp_path / "refine.json")
    cfg = InferenceConfig(device="cpu", refine=True, refine_config=str(path))
    cfg.validate()
    assert isinstance(cfg.refine_config, RefineConfig) and cfg.refine_config.iterations == 7
    with pytest.raises(SettingsError, match="refine_config: a refine config is a RefineConfig"):
        InferenceConfig(device="cpu", refine=True, refine_config=7).validate()


def test_values_within_one_hu_are_not_called_uniform():
    """A normalised (0..1) image was said to be "uniform (every voxel -0.0044)"."""
    vol, _, _ = phantom()
    normalised = vol.with_array((vol.array.astype(np.float32) + 1000) / 3000)
    result = segment_ct(normalised, InferenceConfig(device="cpu"), models=oracle_models())
    assert not result.labels.any()
    text = " ".join(result.warnings)
    assert "within 1 HU" in text and "uniform" not in text


def test_a_read_only_or_memory_mapped_ct_segments_without_a_torch_warning(tmp_path):
    vol, _, _ = phantom()
    path = tmp_path / "ct.npy"
    np.save(path, vol.array)
    mapped = vol.with_array(np.load(path, mmap_mode="r"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # (MONAI before 1.6 on torch 2.9+: its own indexing, not the arrays given)
        warnings.filterwarnings("ignore", "Using a non-tuple sequence", module=r"monai\.")
        result = segment_ct(
            mapped, InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models()
        )
    np.testing.assert_array_equal(
        result.labels,
        segment_ct(
            vol, InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models()
        ).labels,
    )


def test_readers_take_a_plain_progress_function_as_segment_ct_does(tmp_path):
    vol, _, _ = phantom(shape=(12, 32, 32))
    write_nifti(vol, tmp_path / "ct.nii.gz")
    seen = []
    load_ct(tmp_path / "ct.nii.gz", reporter=lambda stage, done, total: seen.append(stage))
    assert "nifti slices" in seen
    assert isinstance(as_reporter(None), Reporter)
    with pytest.raises(TypeError, match="reporter must be"):
        as_reporter(42)


def test_a_dicom_seg_with_an_unknown_algorithm_type_names_the_choices(tmp_path):
    from napari_livertumor.io.seg import write_dicom_seg

    vol = CTVolume(np.zeros((2, 8, 8), np.int16), (2.0, 1.0, 1.0), meta={"files": ["a", "b"]})
    with pytest.raises(InputError, match="AUTOMATIC, SEMIAUTOMATIC, MANUAL; got 'auto'"):
        write_dicom_seg(
            np.ones(vol.shape, np.uint8), vol, tmp_path / "s.dcm", algorithm_type="auto"
        )


def test_the_readmes_python_example_runs_as_written(tmp_path, monkeypatch):
    """The README's "Python API" block, run on a synthetic patient with the shipped models."""
    import re
    from pathlib import Path

    from napari_livertumor.synth import make_cohort

    root = make_cohort(tmp_path / "data", 1, seed=3, layout="tcia", shape="small")
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    assert root == tmp_path / "data"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    result, ct = namespace["result"], namespace["ct"]
    assert result.stats["liver_ml"] > 500 and result.labels.shape == ct.shape
    out = tmp_path / "results"
    assert (out / "HCC_001_labels.nii.gz").is_file() and (out / "HCC_001_seg.dcm").is_file()
    # a batch over the data afterwards finds the patient only (the example wrote its files
    # beside HCC_001/, and that label map became a case refused as no CT)
    from napari_livertumor.commands.segment import discover_cases

    assert [c.name for c in discover_cases([root])] == ["HCC_001"]
    # and a label map written so beside the patients' folders is no case either
    labels = "HCC_001_labels.nii.gz"
    (root / labels).write_bytes((out / labels).read_bytes())
    assert [c.name for c in discover_cases([root])] == ["HCC_001"]


def test_a_config_naming_the_same_models_and_device_otherwise_is_accepted(tmp_path, monkeypatch):
    """ "auto" on a CPU machine is "cpu"; a folder named by another path is the same folder."""
    from napari_livertumor.models import make_untrained_model

    make_untrained_model(tmp_path / "m" / "liver", "liver", target_spacing=(8.0, 6.0, 6.0))
    make_untrained_model(tmp_path / "m" / "tumor", "tumor", target_spacing=(5.0, 4.0, 4.0))
    seg = Segmenter(InferenceConfig.from_models_dir(tmp_path / "m", device="auto"))
    monkeypatch.chdir(tmp_path)
    again = InferenceConfig(
        liver_model="m/liver", tumor_model=tmp_path / "m" / ".." / "m" / "tumor", device="cpu"
    )
    vol, _, _ = phantom(shape=(12, 32, 32), spacing=(5.0, 4.0, 4.0))
    if seg.device.type == "cpu":
        segment_ct(vol, again, models=seg)  # no "not this Segmenter's"
    with pytest.raises(SettingsError, match="tumor_model .* not this Segmenter's"):
        segment_ct(vol, InferenceConfig(liver_model="m/liver", device="cpu"), models=seg)


def test_a_skewed_or_slightly_non_orthogonal_grid_is_kept():
    """A registration's output (skew) and a DICOM orientation off square by 0.02 were read
    before the direction check, and still are."""
    a = np.radians(1.0)
    skew = np.column_stack([[1, 0, 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]).astype(float)
    vol = CTVolume(np.zeros((4, 5, 6), np.int16), (2.5, 0.75, 0.75), direction=skew)
    np.testing.assert_allclose(vol.direction, skew)
    off = np.column_stack([[1, 0.02, 0], [0, 1, 0], [0, 0, 1]]).astype(float)
    vol = CTVolume(np.zeros((4, 5, 6), np.int16), (2.5, 0.75, 0.75), direction=off)
    np.testing.assert_allclose(np.linalg.norm(vol.direction[:, :2], axis=0), 1)


@pytest.mark.parametrize(
    "spacing",
    ["1,1,1", None, (1, 1), (0, 1, 1), (1.0, np.nan, 1.0), (True, 1, 1), ("2", "1", "1")],
)
def test_a_spacing_that_is_no_three_positive_numbers_is_said_everywhere(spacing):
    """compute_stats took a zero spacing for 0 mL, two values gave a numpy gufunc error, None a
    TypeError; CTVolume's text or None spacing said numpy's "could not convert"."""
    from napari_livertumor.stats import compute_stats

    labels = np.zeros((3, 4, 4), np.uint8)
    labels[1, 1:3, 1:3] = 1
    with pytest.raises(ValueError, match=r"spacing (is \(dz, dy, dx\) in mm|must be positive)"):
        compute_stats(labels, spacing)
    with pytest.raises(ValueError, match=r"spacing (is \(dz, dy, dx\) in mm|must be positive)"):
        CTVolume(np.zeros((3, 4, 4), np.int16), spacing)


def test_a_ct_with_nan_is_refused_by_the_dicom_writer_before_any_file(tmp_path):
    """NaN voxels were written as -32768 HU, said by a numpy cast warning only."""
    from napari_livertumor.io.dicom_write import write_ct_series

    array = np.zeros((3, 8, 8), np.float32)
    array[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite voxel"):
        write_ct_series(CTVolume(array, (2.5, 0.8, 0.8)), tmp_path / "ct")
    assert not (tmp_path / "ct").exists()  # not even an empty folder
    # beyond the pixels' range: 40000 HU was stored as 31743, 5e9 as -32768
    for hu, storage in ((40000, "int16"), (5e9, "int16"), (-40000, "int16"), (33000, "uint16")):
        array[1, 2, 2] = hu
        with pytest.raises(ValueError, match=f"the CT holds {int(hu)} HU, beyond .*{storage}"):
            write_ct_series(CTVolume(array, (2.5, 0.8, 0.8)), tmp_path / "ct", storage=storage)
    array[1, 2, 2] = -3000  # uint16's documented floor: clipped to -1024
    write_ct_series(CTVolume(array, (2.5, 0.8, 0.8)), tmp_path / "ct", storage="uint16")


def test_wrong_arguments_from_a_script_are_named_before_any_work():
    """A notebook's slips: refine_labels refined a slab of other shapes against the wrong CT
    voxels without a word; "false" from a settings file turned refinement on; a CTVolume as
    ``ct``, a folder as ``models`` or an array as ``load_ct``'s path failed deep inside
    (not subscriptable, dictionary update sequence, expected os.PathLike)."""
    from napari_livertumor.pipeline import refine_labels
    from napari_livertumor.stats import compute_stats

    vol, liver, tumor = phantom()
    labels = liver.astype(np.uint8) + tumor
    with pytest.raises(InputError, match=r"labels' shape \(4, .* does not match the CT shape"):
        refine_labels(vol.array, labels[:4].copy(), vol.spacing)
    with pytest.raises(InputError, match="labels must be a numpy array"):
        refine_labels(vol.array, labels.tolist(), vol.spacing)
    # a CTVolume where its voxels are asked for: taken (as everywhere else)
    by_array = refine_labels(vol.array, labels.copy(), vol.spacing)
    np.testing.assert_array_equal(refine_labels(vol, labels.copy(), vol.spacing), by_array)
    assert compute_stats(labels, vol.spacing, ct=vol) == compute_stats(
        labels, vol.spacing, ct=vol.array
    )
    for name in ("refine", "amp", "allow_non_ct", "fill_holes", "strict_device"):
        with pytest.raises(SettingsError, match=f"{name} must be True or False; got 'false'"):
            InferenceConfig(**{name: "false"}).validate()
    with pytest.raises(SettingsError, match="min_liver_ml must be a number"):
        InferenceConfig(min_liver_ml=None).validate()
    with pytest.raises(SettingsError, match="refine_config: .*bogus"):
        InferenceConfig(refine=True, refine_config={"bogus": 1}).validate()
    with pytest.raises(SettingsError, match="models are a Segmenter .* got str"):
        segment_ct(vol, {"device": "cpu"}, models="models/")
    with pytest.raises(SettingsError, match=r"models\['liver'\] must be a LoadedModel"):
        segment_ct(vol, {"device": "cpu"}, models={"liver": "x", "tumor": "y"})
    with pytest.raises(TypeError, match="an array is a CT already; wrap it as CTVolume"):
        load_ct(vol.array)
    with pytest.raises(TypeError, match="load_ct takes the path .* got NoneType"):
        load_ct(None)


def test_configs_are_taken_as_dicts_of_their_fields():
    """refine_labels(..., {"max_shift_mm": 3}) and Segmenter({"device": "cpu"}) raised
    AttributeError ('dict' object has no attribute 'validated')."""
    from napari_livertumor.pipeline import refine_labels
    from napari_livertumor.refine import RefineConfig, refine_all

    vol, liver, tumor = phantom()
    labels = liver.astype(np.uint8) + tumor
    out = refine_labels(vol.array, labels, vol.spacing, {"max_shift_mm": 3.0})
    assert out.shape == labels.shape and (out == 2).any()
    with pytest.raises(TypeError, match="a refine config is a RefineConfig, a dict"):
        refine_labels(vol.array, labels, vol.spacing, 7)
    refine_all(vol.array, labels == 2, liver, vol.spacing, {"iterations": 5})
    with pytest.raises(TypeError, match="a refine config is a RefineConfig, a dict"):
        refine_all(vol.array, labels == 2, liver, vol.spacing, 7)
    assert isinstance(Segmenter({"device": "cpu"}, models=oracle_models()).config, InferenceConfig)
    with pytest.raises(SettingsError, match="InferenceConfig's fields: .*device"):
        Segmenter({"devise": "cpu"}, models=oracle_models())
    with pytest.raises(SettingsError, match="config is an InferenceConfig or a dict"):
        Segmenter(RefineConfig(), models=oracle_models())
    # the Segmenter's other doors (AttributeError: 'dict' object has no attribute 'validate')
    from napari_livertumor.pipeline import segment_ct

    seg = Segmenter({"device": "cpu", "stages": "liver"}, models=oracle_models())
    assert seg.with_config({"device": "cpu", "stages": "liver", "sw_overlap": 0.5}).config == (
        InferenceConfig(device="cpu", stages="liver", sw_overlap=0.5)
    )
    result = segment_ct(vol, {"device": "cpu", "stages": "liver"}, models=seg)
    assert result.labels.shape == vol.shape
    with pytest.raises(SettingsError, match="sw_overlap"):
        seg.with_config({"device": "cpu", "stages": "liver", "sw_overlap": 2})
    with pytest.raises(SettingsError, match="run_settings records a run"):
        segment_ct(vol, {"input": "/x/ct.nii.gz", "device": "cpu"}, models=seg)


def test_scores_refuse_a_ground_truth_of_hcc_classes():
    """Raw HCC-TACE-Seg labels (3 portal vein, 4 aorta) counted the aorta as liver."""
    from napari_livertumor.training.metrics import case_scores, hcc_to_output

    truth = np.zeros((2, 4, 4), np.uint8)
    truth[0, :2, :2] = 1
    truth[1, :2, :2] = 4
    with pytest.raises(ValueError, match="truth_labels hold the value 4: .*hcc_to_output"):
        case_scores(truth.clip(0, 1), truth)
    assert case_scores(hcc_to_output(truth), hcc_to_output(truth))["liver_dice"] == 1.0
    # as nibabel's get_fdata reads a label file: float64 (it passed unchecked)
    with pytest.raises(ValueError, match="truth_labels hold the value 4: "):
        case_scores(truth.clip(0, 1), truth.astype(np.float64))
    with pytest.raises(ValueError, match="pred_labels hold the value -1: .*whole classes"):
        case_scores(truth.clip(0, 1).astype(np.int8) - 1, truth.clip(0, 1))
    with pytest.raises(ValueError, match="pred_labels hold the value 0.5: .*not probabilities"):
        case_scores(truth.clip(0, 1) * 0.5, truth.clip(0, 1))
    float_truth = hcc_to_output(truth).astype(np.float64)
    assert case_scores(float_truth, float_truth)["liver_dice"] == 1.0


def test_writing_over_a_file_that_was_there_says_so_not_meanwhile(tmp_path):
    vol, liver, _ = phantom()
    labels = liver.astype(np.uint8)
    path = tmp_path / "labels.nii.gz"
    write_nifti(labels, path, reference=vol)
    with pytest.raises(FileExistsError, match="exists; nothing was replaced") as info:
        write_nifti(labels, path, reference=vol, overwrite=False)
    assert "meanwhile" not in str(info.value)


def test_the_ct_digest_is_of_the_values_not_the_files_number_type():
    """A NIfTI of the same voxels stored as int32 gave another ct_digest than its series."""
    from napari_livertumor.provenance import array_digest

    hu = np.random.default_rng(0).integers(-1024, 3000, (4, 6, 5)).astype(np.int16)
    same = {array_digest(hu.astype(t)) for t in (np.int16, ">i2", np.int32, np.float32, "f8")}
    assert len(same) == 1
    fraction = hu.astype(np.float32)
    fraction[0, 0, 0] += 0.5
    assert array_digest(fraction) not in same
    assert array_digest(hu[::-1]) not in same  # the stored order counts
    assert array_digest(hu.astype(np.int32) * 100) != array_digest((hu * 100).astype(np.int16))


def test_a_checkout_with_local_changes_names_them_by_a_digest(monkeypatch):
    """Two edited versions of one commit (a bug, then its fix) were both "-dirty" alike."""
    import subprocess

    from napari_livertumor import provenance

    answers = {"rev-parse": "0d1b368c16b4", "status": " M napari_livertumor/pipeline.py"}

    def git(cmd, **kw):
        verb = cmd[cmd.index("-C") + 2]  # git [options] -C ROOT VERB ...
        out = answers.get(verb, answers.get("diff-text", ""))
        return subprocess.CompletedProcess(cmd, 0, stdout=out + "\n", stderr="")

    monkeypatch.setattr(provenance.subprocess, "run", git)
    answers["diff-text"] = "- inside = ct[liver]\n+ inside = ct[liver == 1]\n"
    fixed = provenance._commit()
    answers["diff-text"] = "+ inside = ct[liver]\n"
    broken = provenance._commit()
    assert fixed.startswith("0d1b368c16b4-dirty.") and broken.startswith("0d1b368c16b4-dirty.")
    assert fixed != broken and len(fixed) == len("0d1b368c16b4-dirty.") + 8
    answers["status"] = ""
    assert provenance._commit() == "0d1b368c16b4"  # clean: the commit alone


def test_an_install_from_a_git_url_names_its_commit(monkeypatch):
    """pip install git+https://... records the commit (PEP 610); the stats said None."""
    from napari_livertumor import provenance

    class Installed:
        def __init__(self, text):
            self.text = text

        def read_text(self, name):
            return self.text if name == "direct_url.json" else None

    sha = "0123456789abcdef0123456789abcdef01234567"
    given = '{"url": "https://github.com/x/y", "vcs_info": {"vcs": "git", "commit_id": "%s"}}'
    monkeypatch.setattr(provenance.metadata, "distribution", lambda name: Installed(given % sha))
    assert provenance._installed_commit() == sha[:12]
    wheel = Installed(None)  # a release from PyPI: no direct_url.json
    monkeypatch.setattr(provenance.metadata, "distribution", lambda name: wheel)
    assert provenance._installed_commit() is None
    folder = Installed('{"url": "file:///src/y", "dir_info": {"editable": true}}')
    monkeypatch.setattr(provenance.metadata, "distribution", lambda name: folder)
    assert provenance._installed_commit() is None


def test_a_config_changed_after_its_segmenter_was_made_is_not_half_applied():
    """The Segmenter kept the caller's own InferenceConfig: changing it to make a second one
    changed the first one's lesion filter, and stages or device changed afterwards were
    ignored (tumor still segmented) while a typo ended in a KeyError."""
    vol, _, _ = phantom()
    cfg = InferenceConfig(device="cpu", min_liver_ml=1)
    seg = Segmenter(cfg, models=oracle_models())
    cfg.min_tumor_ml = 1e6  # meant for another Segmenter
    cfg.stages = "liver"
    assert seg.segment(vol).stats["lesion_count"] == 1  # unchanged
    seg.config.tta = "inplane "  # in place: refused, naming it, with the way to do it
    with pytest.raises(SettingsError, match=r"changed after it was made \(tta\).*with_config"):
        seg.segment(vol)


def test_spacing_in_nibabels_order_is_warned_of():
    """(dx, dy, dz), as nibabel's get_zooms() gives it, where (dz, dy, dx) is meant: the same
    voxel volume, other figures (20 % more tumor on a 5 mm phantom), no word."""
    vol, _, _ = phantom()
    seg = Segmenter(InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models())
    assert not any("not square" in w for w in seg.segment(vol).warnings)
    dz, dy, dx = vol.spacing
    slip = CTVolume(vol.array, spacing=(dx, dy, dz * 2))
    assert any(
        "pixels are not square" in w and "(dz, dy, dx)" in w for w in seg.segment(slip).warnings
    )


def test_a_sagittal_series_with_square_pixels_is_not_said_to_have_other_ones():
    """The check ran on the axes turned to axial: a sagittal series of 0.7 mm pixels, 5 mm
    apart, was told its 'pixels are not square (0.7 × 5 mm)' and to reorder its spacing."""
    from napari_livertumor.pipeline import check_volume

    array = np.full((12, 40, 40), 40, np.int16)  # (sagittal planes, rows: S, columns: P)
    turned = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # i→P, j→S, k→L
    sagittal = CTVolume(array, spacing=(5.0, 0.7, 0.7), direction=turned)
    assert not any("not square" in w for w in check_volume(sagittal))
    onto = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # i→L, j→S, k→P
    coronal = CTVolume(array, spacing=(5.0, 0.7, 0.7), direction=onto)
    assert not any("not square" in w for w in check_volume(coronal))
    slip = CTVolume(array, spacing=(0.7, 0.7, 5.0))  # nibabel's order given as (dz, dy, dx)
    assert any("not square" in w and "get_zooms" in w for w in check_volume(slip))


def test_a_coronal_reformat_of_an_axial_series_is_not_said_to_have_odd_pixels(tmp_path):
    """Coronal images of an axial series (0.8 mm across, 5 mm head to foot) were warned of
    as 'not square' with advice to reorder a spacing no one had given; a file's odd pixels
    are told to check the file."""
    from napari_livertumor.io import load_ct
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.pipeline import check_volume

    array = np.full((40, 12, 40), 40, np.int16)  # (coronal planes: P, rows: S, columns: L)
    onto = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # i→L, j→S, k→P
    coronal = CTVolume(array, spacing=(0.8, 5.0, 0.8), direction=onto)
    assert not any("not square" in w for w in check_volume(coronal))
    write_nifti(CTVolume(array, spacing=(0.8, 5.0, 0.8)), tmp_path / "odd.nii.gz")
    odd = load_ct(tmp_path / "odd.nii.gz")
    said = [w for w in check_volume(odd) if "not square" in w]
    assert said and "check the file's pixel spacing" in said[0] and "get_zooms" not in said[0]
    # axial: its stored images are the plane across the patient, their figures not said twice
    assert "(5 × 0.8 mm, 0.8 mm between images): check" in said[0]
    assert "across the patient" not in said[0]


def test_a_scan_opened_with_file_open_is_warned_of_once_when_segmented(tmp_path):
    """File > Open keeps its check of the scan in the layer's metadata, and segmenting it
    said each note twice ('…not square…' and 'input: …not square…', in the stats too)."""
    from napari_livertumor._reader import napari_get_reader

    vol, _, _ = phantom()
    dz, dy, dx = vol.spacing
    write_nifti(CTVolume(vol.array, spacing=(dz, dy, 2 * dx)), tmp_path / "odd.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the reader's notification, without napari's window)
        [(_, meta, _)] = napari_get_reader(str(tmp_path / "odd.nii.gz"))(
            str(tmp_path / "odd.nii.gz")
        )
    opened = meta["metadata"]["ct_volume"]
    assert any("not square" in w for w in opened.meta["warnings"])
    seg = Segmenter(InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models())
    said = [w for w in seg.segment(opened).warnings if "not square" in w]
    assert len(said) == 1, said


def test_a_config_holding_numpy_arrays_segments():
    """Comparing the config with its copy (to refuse an in-place change) raised 'the truth
    value of an array is ambiguous' for a window growth given as a numpy array."""
    vol, _, _ = phantom()
    cfg = InferenceConfig(device="cpu", min_liver_ml=1, tumor_window_growth=np.array([1.0, 4.0]))
    seg = Segmenter(cfg, models=oracle_models())
    assert seg.segment(vol).stats["lesion_count"] == 1
    seg.config.tumor_window_growth = np.array([1.0, 3.0])
    with pytest.raises(SettingsError, match=r"\(tumor_window_growth\)"):
        seg.segment(vol)


def test_printed_volumes_phantoms_and_results_are_short_and_name_no_patient(tmp_path):
    """QA s50api: a notebook that showed a CTVolume printed the whole array and its meta (the
    patient's name and ID, the study date, every file's path and UID: 9.4 KB for 32 slices),
    and kept it in the saved notebook. SegmentationResult and Phantom printed their arrays."""
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.synth import generate_phantom

    vol, _, _ = phantom(shape=(32, 48, 48))
    folder = tmp_path / "study" / "series_7"
    write_ct_series(vol, folder, patient_id="HCC_042", patient_name="DOE^JANE",
                    study_date="20190412")  # fmt: skip
    ct = load_ct(folder)
    assert ct.meta["patient_id"] == "HCC_042" and ct.meta["files"]  # (all still in meta)
    ct.meta.setdefault("warnings", []).append("a warning")
    said = repr(ct)
    assert said.startswith("CTVolume(shape=(32, 48, 48), dtype=int16, spacing=(2.5, 0.8, 0.8)")
    assert "origin=(10.0, -20.0, 30.0)" in said and "source='series_7'" in said
    assert "warnings=1" in said and len(said) < 250, said
    for secret in ("HCC_042", "DOE", "JANE", "20190412", str(tmp_path), "study/", "1.2."):
        assert secret not in said, secret
    assert str(ct) == said
    drawn = repr(generate_phantom(1))
    assert drawn.startswith("Phantom(ct=CTVolume(shape=(32, 96, 96), dtype=int16")
    assert "tumors=" in drawn and "SYNTH_1" not in drawn and len(drawn) < 400, drawn
    result = segment_ct(ct, InferenceConfig(device="cpu", min_liver_ml=1), models=oracle_models())
    shown = repr(result)
    assert shown.startswith("SegmentationResult(shape=(32, 48, 48), dtype=uint8, liver_ml=")
    assert f"lesion_count={result.stats['lesion_count']}" in shown and len(shown) < 250, shown
    assert "HCC_042" not in shown and str(tmp_path) not in shown


def test_making_an_untrained_model_leaves_the_callers_random_numbers_alone(tmp_path):
    """QA s50api: make_untrained_model seeded torch's global generator (to 0): a script's own
    random numbers after it were the same in every run."""
    import torch

    from napari_livertumor.models import make_untrained_model

    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    make_untrained_model(tmp_path / "m", "liver")
    assert torch.initial_seed() == 1234
    assert torch.equal(torch.rand(3), expected)


def test_loading_and_saving_a_model_leave_the_callers_random_numbers_alone(tmp_path):
    """Loading a model (its network built, then its weights put in) and saving one (the trunk's
    keys taken from a network built for them) each drew from torch's global generator: a
    notebook's random numbers after them depended on how many models it had opened."""
    import torch

    from napari_livertumor.models import load_model, save_model

    folder = Path(__file__).resolve().parents[1] / "resources" / "models" / "liver"
    net = load_model(folder)
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    load_model(folder)
    save_model(tmp_path / "copy", net.network.state_dict(), net.metadata)
    assert torch.equal(torch.rand(3), expected)


def test_stats_of_a_ground_truth_with_hcc_classes_say_what_they_leave_out():
    """QA s50api: compute_stats on an HCC-TACE-Seg ground truth (3 portal vein, 4 aorta) gave
    a liver_ml without the portal vein, unsaid (the scores refuse such labels)."""
    from napari_livertumor.stats import compute_stats
    from napari_livertumor.training.metrics import hcc_to_output

    truth = np.zeros((4, 10, 10), np.uint8)
    truth[:, :5, :5] = 1
    truth[:, 5:, :2] = 3
    truth[0, 9, 9] = 4
    stats = compute_stats(truth, (1.0, 1.0, 1.0))
    assert stats["liver_ml"] == pytest.approx(0.1)  # the portal vein left out, as documented
    (said,) = stats["warnings"]
    assert "3 (portal vein, 0.04 mL) and 4 (aorta, 0.001 mL)" in said and "hcc_to_output" in said
    assert "lacks a portal vein" in said
    mapped = compute_stats(hcc_to_output(truth), (1.0, 1.0, 1.0))
    assert mapped["liver_ml"] == pytest.approx(0.14) and "warnings" not in mapped
    truth[truth == 3] = 0  # an aorta alone: no portal vein said to be missing (QA s50fixrev)
    (said,) = compute_stats(truth, (1.0, 1.0, 1.0))["warnings"]
    assert "4 (aorta, 0.001 mL)" in said and "portal vein inside" not in said
