"""Volumes, ratio and per-lesion measurements against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from napari_livertumor.stats import (
    axial_diameter_mm,
    compute_stats,
    longest_diameter_mm,
    volume_shown,
)


def test_volumes_and_ratio_count_the_tumor_as_part_of_the_liver():
    labels = np.zeros((4, 10, 10), np.uint8)
    labels[:, :5, :] = 1  # 4*5*10 = 200 liver voxels
    labels[1:3, 1:3, 1:3] = 2  # 8 tumor voxels replace liver voxels
    stats = compute_stats(labels, (2.0, 1.0, 0.5))  # 1 mm³ = 0.001 mL per voxel
    assert stats["liver_ml"] == pytest.approx(0.200)
    assert stats["liver_parenchyma_ml"] == pytest.approx(0.192)
    assert stats["tumor_ml"] == pytest.approx(0.008)
    assert stats["tumor_to_liver_ratio"] == pytest.approx(0.04)
    assert stats["lesion_count"] == 1


def test_lesions_are_listed_largest_first_with_slice_ranges():
    labels = np.zeros((10, 20, 20), np.uint8)
    labels[0:10] = 1
    labels[2, 2, 2] = 2  # one voxel
    labels[4:8, 10:13, 10:14] = 2  # 48 voxels
    labels[9, 19, 19] = 2  # touches lesion? no: far away
    stats = compute_stats(labels, (1.0, 1.0, 1.0))
    lesions = stats["lesions"]
    assert [les["id"] for les in lesions] == [1, 2, 3]
    big = lesions[0]
    assert big["volume_ml"] == pytest.approx(0.048)
    assert big["slice_range"] == [4, 7]
    assert big["centroid_zyx"] == [5.5, 11.0, 11.5]
    assert big["bbox_zyx"] == [[4, 8], [10, 13], [10, 14]]
    # Farthest voxel centres: corners (4,10,10) and (7,12,13), sqrt(9 + 4 + 9) apart; edge to
    # edge adds one voxel's extent along (3, 2, 3)/sqrt(22): 8/sqrt(22)
    assert big["longest_diameter_mm"] == pytest.approx(30 / np.sqrt(22), abs=0.01)
    assert lesions[1]["longest_diameter_mm"] == 1.0  # one voxel: its width


def test_diagonal_neighbours_belong_to_one_lesion():
    labels = np.zeros((3, 3, 3), np.uint8)
    labels[0, 0, 0] = labels[1, 1, 1] = labels[2, 2, 2] = 2
    stats = compute_stats(labels, (1.0, 1.0, 1.0))
    assert stats["lesion_count"] == 1
    # centres 2*sqrt(3) apart, and a cube's extent along its diagonal, sqrt(3)
    assert stats["lesions"][0]["longest_diameter_mm"] == pytest.approx(3 * np.sqrt(3), abs=0.01)


def test_diameter_uses_the_spacing_of_each_axis():
    mask = np.zeros((5, 1, 7), bool)
    mask[:, 0, :] = True  # a flat plate: corners (0,0,0) and (4,0,6)
    centres = np.hypot(4 * 2.5, 6 * 0.8)
    extent = (2.5 * 4 * 2.5 + 0.8 * 6 * 0.8) / centres  # one voxel along that direction
    assert longest_diameter_mm(mask, (2.5, 0.8, 0.8)) == pytest.approx(centres + extent)


def test_a_tilted_plate_one_voxel_thick_is_measured_on_its_hull():
    """Coplanar voxels in a plane along no axis (a one-voxel-thick lesion, tilted): their 3D
    hull does not exist, and the measurement fell to every pair of voxels (14 400: 29 s)."""
    from napari_livertumor import stats

    yy, xx = np.mgrid[:120, :120]
    plate = np.zeros((240, 120, 120), bool)
    plate[yy + xx, yy, xx] = True
    pts = np.argwhere(plate).astype(float)
    assert len(stats._hull_points(pts)) <= 8  # its four corners (and no inner voxel)
    small = plate[:40, :20, :20]  # every pair, for the figure
    d = np.sqrt(
        (((np.argwhere(small)[:, None] - np.argwhere(small)[None]) * (2.5, 0.7, 0.7)) ** 2).sum(-1)
    ).max()
    assert longest_diameter_mm(small, (2.5, 0.7, 0.7)) > d  # centres' distance + a voxel's extent
    assert longest_diameter_mm(small, (2.5, 0.7, 0.7)) < d + 2.7
    line = np.zeros((30, 30, 30), bool)
    line[np.arange(25), np.arange(25), np.arange(25)] = True
    assert len(stats._hull_points(np.argwhere(line).astype(float))) == 2  # its two ends


def test_diameter_of_a_voxelised_sphere():
    z, y, x = np.ogrid[-20:21, -20:21, -20:21]
    ball = z**2 + y**2 + x**2 <= 20**2
    d = longest_diameter_mm(ball, (0.5, 0.5, 0.5))
    # centres of opposite poles are 40 voxels * 0.5 mm apart; edge to edge adds a voxel's
    # extent along the pair: 0.5 mm along an axis, up to 0.5·√3 along a diagonal
    assert 20.5 - 1e-9 <= d <= 20.0 + 0.5 * np.sqrt(3) + 1e-9


def test_the_axial_diameter_is_the_widest_image_s_and_not_the_3d_one():
    """Radiologists report the longest diameter on one axial image (RECIST); the lesion list
    gave only the 3D one, longer on a lesion drawn out along the body's axis."""
    spacing = (2.5, 0.8, 0.8)
    z, y, x = np.mgrid[:40, :60, :60]
    # an ellipsoid 40 mm head-feet, 30 mm left-right, 20 mm front-back
    egg = ((z - 20) * 2.5 / 20) ** 2 + ((y - 30) * 0.8 / 10) ** 2 + ((x - 30) * 0.8 / 15) ** 2 <= 1
    [lesion] = compute_stats(egg.astype(np.uint8) * 2, spacing)["lesions"]
    assert lesion["longest_diameter_mm"] == pytest.approx(42.5, abs=0.5)  # 40 mm + a slice
    assert lesion["axial_diameter_mm"] == pytest.approx(30.0, abs=0.8)  # 30 mm on slice 20
    # the images are taken across the grid axis along the patient's head-feet axis: the same
    # ellipsoid stored sagittally (index z along L, y along P, x along S) measures the same
    stored = np.transpose(egg, (2, 1, 0))
    axes = np.diag([0.8, 0.8, 2.5])  # rows: a step of z, y, x in L, P, S mm
    assert axial_diameter_mm(stored, (0.8, 0.8, 2.5), axes) == pytest.approx(
        lesion["axial_diameter_mm"], abs=0.01
    )
    # a plate one voxel thick in z measures its in-plane width; a lone voxel, its smallest side
    plate = np.zeros((3, 5, 5), bool)
    plate[1, 2, :] = True
    assert axial_diameter_mm(plate, spacing) == pytest.approx(5 * 0.8)
    dot = np.zeros((3, 3, 3), bool)
    dot[1, 1, 1] = True
    assert axial_diameter_mm(dot, spacing) == pytest.approx(0.8)


def test_an_empty_label_map_has_zero_volumes_and_no_ratio():
    """tumor / liver with no liver is undefined: null, as the CLI writes it, not 0.0."""
    stats = compute_stats(np.zeros((2, 3, 4), np.uint8), (1, 1, 1))
    assert stats["liver_ml"] == 0 and stats["tumor_to_liver_ratio"] is None
    assert stats["lesions"] == [] and stats["lesion_count"] == 0


def test_lesions_are_located_in_patient_mm_and_measured_through_a_tilted_grid():
    """Slice indices depend on the file's slice order (feet first, head first): PACS users
    need the patient position. On a gantry-tilted grid the diameter ignored the shear."""
    from napari_livertumor.io.volume import CTVolume

    labels = np.zeros((10, 12, 12), np.uint8)
    labels[2:7, 3:4, 5:6] = 2  # a lesion along z only: 4 steps of the slice axis
    tilt = np.deg2rad(30)
    direction = np.eye(3)
    direction[:, 2] = [0.0, np.tan(tilt), 1.0]  # sheared: each slice steps 2*tan(30°) mm in y
    grid = CTVolume(labels, (2.0, 1.0, 1.0), (10.0, 20.0, 30.0), direction)
    stats = compute_stats(labels, grid.spacing, affine_lps=grid.affine_lps)
    [lesion] = stats["lesions"]
    # 5 slices along the tilted axis, and the in-plane pixel's share along it (sin 30° * 1 mm)
    assert lesion["longest_diameter_mm"] == pytest.approx(5 * 2.0 / np.cos(tilt) + 0.5, abs=0.01)
    z, y, x = 4.0, 3.0, 5.0  # the centroid's index
    expected = np.array([10.0 + x, 20.0 + y + z * 2.0 * np.tan(tilt), 30.0 + z * 2.0])
    np.testing.assert_allclose(lesion["centroid_lps_mm"], expected, atol=0.06)
    plain = compute_stats(labels, grid.spacing)["lesions"][0]  # without the affine: as before
    assert "centroid_lps_mm" not in plain and plain["longest_diameter_mm"] == 10.0


def test_labels_must_be_three_dimensional():
    with pytest.raises(ValueError, match="3D"):
        compute_stats(np.zeros((3, 3), np.uint8), (1, 1, 1))


def test_a_one_slice_lesion_on_a_tilted_grid_is_measured_from_its_hull(monkeypatch):
    """A lesion on one slice of an oblique grid is flat in voxel indices but not in mm: the
    hull was sought in mm, failed, and every boundary voxel went to the pairwise search
    (12 s and 0.9 GB for a 8 cm disk). Found on the indices, the hull keeps it to a few."""
    import napari_livertumor.stats as stats_mod

    seen = []
    pairwise = stats_mod._max_edge_to_edge
    monkeypatch.setattr(
        stats_mod,
        "_max_edge_to_edge",
        lambda pts, steps: seen.append(len(pts)) or pairwise(pts, steps),
    )
    mask = np.zeros((3, 120, 120), bool)
    yy, xx = np.mgrid[:120, :120]
    mask[1] = (yy - 60) ** 2 + (xx - 60) ** 2 <= 50**2  # a disk 100 voxels across
    tilt = np.deg2rad(15)
    axes = np.array([[2.0, 2.0 * np.sin(tilt), 0.0], [0.0, 0.7 * np.cos(tilt), 0.0], [0, 0, 0.7]])
    axes[1] = [0.0, 0.7, 0.0]
    axes[0] = [2.0 * np.cos(tilt), 2.0 * np.sin(tilt), 0.0]  # the slice axis leans over y
    # 100 voxels between centres, and a voxel's extent along the measured direction
    assert 70.0 + 0.7 - 1e-6 <= longest_diameter_mm(mask, (2.0, 0.7, 0.7), axes) <= 71.6
    assert seen[-1] < 200
    line = np.zeros((3, 40, 40), bool)
    line[1, 20, 5:35] = True  # a row of voxels: its two ends
    assert longest_diameter_mm(line, (2.0, 0.7, 0.7), axes) == pytest.approx(30 * 0.7)
    assert seen[-1] == 2


def test_lesions_of_one_size_are_numbered_by_place_whichever_way_the_volume_is_held():
    """Ties kept the label scan's order, which turning the volume changes: Inspect's lesion 2
    was lesions.csv's lesion 3."""
    from napari_livertumor.io import CTVolume
    from napari_livertumor.stats import compute_stats

    labels = np.ones((8, 20, 20), np.uint8)
    labels[1, 2, 2] = labels[6, 15, 15] = labels[3, 10, 4] = 2  # three one-voxel lesions
    stored = CTVolume(labels, (3.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.diag([1.0, 1.0, -1.0]))
    shown = stored.displayed()
    assert not np.array_equal(shown.array, stored.array)
    a = compute_stats(stored.array, stored.spacing, affine_lps=stored.affine_lps)["lesions"]
    b = compute_stats(shown.array, shown.spacing, affine_lps=shown.affine_lps)["lesions"]
    assert [les["centroid_lps_mm"] for les in a] == [les["centroid_lps_mm"] for les in b]


def test_the_lesion_map_numbers_each_lesion_as_the_stats_do():
    """Lesion N could not be found in any file written (the labels hold 1 and 2 only)."""
    from napari_livertumor.io import CTVolume
    from napari_livertumor.stats import compute_stats, lesion_id_map

    labels = np.ones((10, 30, 30), np.uint8)
    labels[1:4, 2:6, 2:6] = 2  # 48 voxels
    labels[6:9, 20:24, 2:6] = 2  # 48 voxels: the same size elsewhere (numbered by place)
    labels[3:9, 10:18, 12:22] = 2  # 480: the largest
    labels[9, 28, 28] = labels[8, 27, 27] = 2  # touching at a corner: one lesion of two voxels
    labels[0, 29, 0] = 2
    vol = CTVolume(labels, (2.5, 0.8, 0.7), (0.0, 0.0, 0.0), np.diag([1.0, 1.0, -1.0]))
    for shown in (vol, vol.displayed()):  # stored, and turned as napari shows it
        stats = compute_stats(shown.array, shown.spacing, affine_lps=shown.affine_lps)
        ids = lesion_id_map(shown.array, affine_lps=shown.affine_lps)
        assert ids.dtype == np.uint8 and ids.shape == labels.shape
        np.testing.assert_array_equal(ids > 0, shown.array == 2)
        assert int(ids.max()) == stats["lesion_count"] == 5
        voxel_ml = 2.5 * 0.8 * 0.7 / 1000
        for les in stats["lesions"]:
            where = np.argwhere(ids == les["id"])
            assert len(where) * voxel_ml == pytest.approx(les["volume_ml"], abs=1e-4)
            np.testing.assert_allclose(where.mean(axis=0), les["centroid_zyx"], atol=0.01)
    assert not lesion_id_map(np.ones((3, 4, 5), np.uint8)).any()
    many = np.zeros((3, 40, 40), np.uint8)
    many[1, ::2, ::2] = 2  # 400 one-voxel lesions: past uint8
    ids = lesion_id_map(many)
    assert ids.dtype == np.uint16 and int(ids.max()) == 400 and len(np.unique(ids)) == 401


def test_a_mirrored_or_turned_lesion_measures_the_same():
    """Two pairs of voxels equally far apart, one along an axis and one along a diagonal, have
    different voxel extents: the farthest pair alone gave 6.4 or 6.0 mm as the same triangle
    lay one way or the other."""
    tri = np.zeros((1, 8, 8), bool)
    for y in range(6):
        tri[0, y, : 6 - y] = True  # a filled right triangle, legs of 6 voxels
    sizes = {
        longest_diameter_mm(t, (1.0, 1.0, 1.0))
        for t in (
            tri,
            tri[:, :, ::-1],
            tri[:, ::-1],
            tri.transpose(0, 2, 1),
            np.rot90(tri, axes=(1, 2)),
        )
    }
    assert len(sizes) == 1, sizes
    [size] = sizes
    hyp = np.hypot(5, 5)  # the hypotenuse's end voxels, and a voxel's extent along it
    assert size == pytest.approx(max(hyp + 10 / hyp, 5 + 1), abs=1e-9)


@pytest.mark.parametrize(
    "direction",
    [
        np.diag([1.0, -1.0, -1.0]),  # shown turned: the slice axis reversed
        np.column_stack([[0, 1, 0], [0, 0, -1], [1, 0, 0]]).astype(float),  # sagittal
    ],
    ids=["reversed", "sagittal"],
)
def test_lesions_carry_the_dicom_image_numbers_however_the_scan_is_shown(tmp_path, direction):
    """A series shown turned numbers its slices otherwise than its files do: the lesion list
    said "slices 2–4" in napari and "slices 5–7" in the CLI's stats, and neither is what a PACS
    viewer shows. The InstanceNumbers are the same in both."""
    from napari_livertumor.io import CTVolume, load_ct
    from napari_livertumor.io.dicom_write import write_ct_series
    from napari_livertumor.stats import add_image_numbers

    rng = np.random.default_rng(0)
    source = CTVolume(
        rng.integers(-200, 200, (10, 24, 20)).astype(np.int16),
        (2.0, 1.0, 1.0),
        (0, 0, 0),
        direction,
    )
    write_ct_series(source, tmp_path / "ct", instance_number_start=101)
    ct = load_ct(tmp_path / "ct")
    numbers = ct.meta["instance_numbers"]  # per slice of the array as read
    assert sorted(numbers) == list(range(101, 111))
    labels = np.zeros(ct.shape, np.uint8)
    labels[:, 2:20, 2:18] = 1
    labels[3:6, 5:9, 6:10] = 2  # the array's slices 3..5
    labels[8, 15:17, 12:14] = 2  # a small one on slice 8
    stored = add_image_numbers(compute_stats(labels, ct.spacing, affine_lps=ct.affine_lps), ct)
    big = sorted(numbers[3:6])
    assert [les["image_numbers"] for les in stored["lesions"]] == [
        [big[0], big[-1]],
        [numbers[8], numbers[8]],
    ]
    assert [les["image_number"] for les in stored["lesions"]] == [numbers[4], numbers[8]]

    shown = ct.displayed()
    turned = shown.meta["stored_turn"].apply(labels)
    stats = add_image_numbers(
        compute_stats(turned, shown.spacing, affine_lps=shown.affine_lps), shown
    )
    assert [les["slice_range"] for les in stats["lesions"]] != [
        les["slice_range"] for les in stored["lesions"]
    ]
    for a, b in zip(stats["lesions"], stored["lesions"], strict=True):
        assert (a["image_numbers"], a["image_number"]) == (b["image_numbers"], b["image_number"])


def test_no_image_numbers_without_dicom_or_on_interpolated_slices_only():
    from napari_livertumor.io import CTVolume
    from napari_livertumor.stats import add_image_numbers

    labels = np.zeros((6, 8, 8), np.uint8)
    labels[1, 2:4, 2:4] = 2
    labels[4, 2:4, 2:4] = 2
    nifti = CTVolume(np.zeros(labels.shape, np.int16), (2.0, 1.0, 1.0))
    stats = add_image_numbers(compute_stats(labels, nifti.spacing), nifti)
    assert all("image_numbers" not in les for les in stats["lesions"])
    gap = nifti.with_array(nifti.array, instance_numbers=[1, None, 2, 3, 4, 5])
    stats = add_image_numbers(compute_stats(labels, gap.spacing), gap)
    by_slice = {les["slice"]: les for les in stats["lesions"]}
    assert "image_numbers" not in by_slice[1]  # only on a slice filled into a gap
    assert by_slice[4]["image_numbers"] == [4, 4]


def test_with_the_ct_each_lesion_gets_its_attenuation_and_its_contrast_to_the_liver():
    """A dark lesion (-35 HU against a 60 HU liver), a bright one (+40) and one standing out of
    the liver into fat, where no liver lies around it to compare with."""
    rng = np.random.default_rng(0)
    labels = np.zeros((20, 64, 64), np.uint8)
    labels[:, 4:60, 4:48] = 1
    ct = rng.normal(60.0, 8.0, labels.shape)
    ct[labels == 0] = -100.0  # fat
    labels[6:14, 14:26, 14:26] = 2
    ct[6:14, 14:26, 14:26] -= 35.0
    labels[8:12, 40:46, 30:36] = 2
    ct[8:12, 40:46, 30:36] += 40.0
    labels[8:12, 28:34, 57:63] = 2  # in the fat beyond the liver's edge
    ct[8:12, 28:34, 57:63] = 20.0
    spacing = (2.0, 1.0, 1.0)
    stats = compute_stats(labels, spacing, ct=ct.astype(np.int16))
    dark, bright, outside = (
        next(les for les in stats["lesions"] if les["centroid_zyx"][1] < 27),
        next(les for les in stats["lesions"] if les["centroid_zyx"][1] > 38),
        next(les for les in stats["lesions"] if les["centroid_zyx"][2] > 50),
    )
    assert dark["mean_hu"] == pytest.approx(25, abs=1.5)
    assert dark["liver_contrast_hu"] == pytest.approx(-35, abs=1.5)
    assert bright["liver_contrast_hu"] == pytest.approx(40, abs=2)
    assert outside["mean_hu"] == 20.0 and outside["liver_contrast_hu"] is None
    assert stats["liver_mean_hu"] == pytest.approx(60, abs=0.5)
    n_dark, n_bright, n_out = 8 * 12 * 12, 4 * 6 * 6, 4 * 6 * 6
    expected = (n_dark * 25 + n_bright * 100 + n_out * 20) / (n_dark + n_bright + n_out)
    assert stats["tumor_mean_hu"] == pytest.approx(expected, abs=1.5)
    # without the CT: no attenuation keys; a CT of another grid is refused
    plain = compute_stats(labels, spacing)
    assert "liver_mean_hu" not in plain and "mean_hu" not in plain["lesions"][0]
    with pytest.raises(ValueError, match="CT shape"):
        compute_stats(labels, spacing, ct=ct[:5])
    # a ground truth's tumor: each lesion's share of it (a half-covered lesion's 0.5)
    truth = labels == 2
    truth[: truth.shape[0] // 2] = False
    shares = [
        les["truth_share"] for les in compute_stats(labels, spacing, truth_tumor=truth)["lesions"]
    ]
    for les, share in zip(plain["lesions"], shares, strict=True):
        (z0, z1), (y0, y1), (x0, x1) = les["bbox_zyx"]
        box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
        mine = labels[box] == 2  # (each lesion's box holds no other lesion here)
        assert share == pytest.approx(np.count_nonzero(truth[box] & mine) / mine.sum(), abs=1e-4)
    assert "truth_share" not in plain["lesions"][0]
    with pytest.raises(ValueError, match="ground truth shape"):
        compute_stats(labels, spacing, truth_tumor=truth[:5])
    empty = compute_stats(np.zeros_like(labels), spacing, ct=ct)
    assert empty["liver_mean_hu"] is None and empty["tumor_mean_hu"] is None


def test_the_liver_contrast_ring_reaches_from_3_to_8_mm_around_the_lesion():
    """The liver a lesion is compared with lies 3–8 mm outside it: a ring of 3–5 mm would leave
    out brighter liver 5–8 mm away (an enhancing vessel, a perfusion change)."""
    z, y, x = np.indices((40, 40, 40))
    labels = np.ones(z.shape, np.uint8)
    labels[17:23, 17:23, 17:23] = 2  # a 6 mm cube
    # each voxel's distance to the cube's nearest voxel (what the ring is cut by), squared
    d2 = sum(np.maximum(np.maximum(17 - a, a - 22), 0) ** 2 for a in (z, y, x))
    ct = np.full(z.shape, 100, np.int16)
    ct[labels == 2] = 40
    ct[(d2 > 25) & (d2 <= 64)] = 160  # brighter liver 5-8 mm out
    near, far = np.count_nonzero((d2 > 9) & (d2 <= 25)), np.count_nonzero((d2 > 25) & (d2 <= 64))
    ring_mean = (100 * near + 160 * far) / (near + far)
    [lesion] = compute_stats(labels, (1.0, 1.0, 1.0), ct=ct)["lesions"]
    assert lesion["mean_hu"] == 40.0
    assert lesion["liver_contrast_hu"] == pytest.approx(40 - ring_mean, abs=0.05)
    assert lesion["liver_contrast_hu"] < -100  # (3-5 mm alone: -60)


def test_another_lesion_in_a_lesions_ring_is_not_taken_for_its_liver():
    """A lesion's contrast is against the liver around it (label 1): a bright lesion 6 mm away
    counted as liver in the ring would make a -60 HU lesion read far darker than it is."""
    labels = np.ones((34, 34, 40), np.uint8)
    ct = np.full(labels.shape, 100, np.int16)
    labels[14:20, 14:20, 10:16] = 2  # dark lesion
    ct[14:20, 14:20, 10:16] = 40
    labels[14:20, 14:20, 21:27] = 2  # bright lesion, 6 mm beside it, not touching
    ct[14:20, 14:20, 21:27] = 1000  # (contrast-filled, as after TACE)
    lesions = compute_stats(labels, (1.0, 1.0, 1.0), ct=ct)["lesions"]
    assert len(lesions) == 2
    dark, bright = sorted(lesions, key=lambda les: les["centroid_zyx"][2])
    assert (dark["mean_hu"], dark["liver_contrast_hu"]) == (40.0, -60.0)
    assert (bright["mean_hu"], bright["liver_contrast_hu"]) == (1000.0, 900.0)


def test_a_ct_holding_nan_gives_no_attenuation_rather_than_nan():
    labels = np.zeros((6, 20, 20), np.uint8)
    labels[:, 2:18, 2:18] = 1
    labels[2:4, 8:12, 8:12] = 2
    ct = np.full(labels.shape, 60.0)
    ct[0, 3, 3] = np.nan  # in the liver
    ct[2, 9, 9] = np.nan  # in the lesion
    stats = compute_stats(labels, (2.0, 1.0, 1.0), ct=ct)
    assert stats["liver_mean_hu"] is None and stats["tumor_mean_hu"] is None
    assert stats["lesions"][0]["mean_hu"] is None
    import json

    json.dumps(stats, allow_nan=False)  # what JSON can hold


def test_labels_it_cannot_measure_are_refused_not_measured_as_nothing():
    mask = np.zeros((3, 8, 8), np.uint8)
    mask[1, 2:5, 2:5] = 255  # a 0/255 mask from another tool
    with pytest.raises(ValueError, match="hold the value 255"):
        compute_stats(mask, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="must be integers"):
        compute_stats(mask.astype(np.float32) / 255 + 0.5, (1.0, 1.0, 1.0))
    mask[mask == 255] = 4  # the aorta alone: measured (as nothing), not refused
    assert compute_stats(mask, (1.0, 1.0, 1.0))["liver_ml"] == 0


def test_totals_keep_the_precision_of_the_lesions_and_a_small_ratio_its_digits():
    labels = np.zeros((4, 40, 40), np.uint8)
    labels[:, 5:35, 5:35] = 1
    labels[2, 20, 20] = 2  # one voxel of 5 x 0.7 x 0.7 mm
    stats = compute_stats(labels, (5.0, 0.7, 0.7))
    assert stats["tumor_ml"] == stats["lesions"][0]["volume_ml"] == 0.0024
    assert stats["tumor_to_liver_ratio"] == pytest.approx(1 / 3600, rel=1e-3)


def test_diameter_shown_one_decimal_from_the_stats_figure():
    """Inspect's table and evaluate's per_case.csv show one decimal of the same figure."""
    from napari_livertumor.stats import diameter_shown

    assert diameter_shown(87.1497) == 87.2  # 87.15 in the stats → 87.2, never 87.1 elsewhere
    assert diameter_shown(87.14) == 87.1
    assert diameter_shown(0.05) == 0.1 and diameter_shown(2.25) == 2.3  # half up, not even
    assert diameter_shown(None) is None
    mask = np.zeros((6, 40, 40), bool)
    mask[2:4, 5:30, 10:13] = True
    stats = compute_stats(mask.astype(np.uint8) * 2, (2.5, 0.77, 0.77))
    raw = longest_diameter_mm(mask, (2.5, 0.77, 0.77))
    assert diameter_shown(stats["lesions"][0]["longest_diameter_mm"]) == diameter_shown(raw)


def test_volumes_are_shown_with_one_decimal_from_what_rounds_to_one_millilitre():
    """0.996 mL was shown "1.00" beside 1.0 mL's "1.0": two precisions for one figure."""
    from napari_livertumor.stats import volume_shown

    assert [volume_shown(v) for v in (0.996, 0.999, 1.0, 1.04)] == ["1.0"] * 4
    assert [volume_shown(v) for v in (0.99, 0.44, 0.004, 0.0)] == ["0.99", "0.44", "<0.01", "0.00"]
    assert volume_shown(1234.56) == "1234.6" and volume_shown(None) == "—"


def test_a_case_name_is_the_same_whatever_the_locale():
    """Under an ASCII locale a UTF-8 file name reaches Python as lone surrogates: 'Dïcom 中文'
    was named D__com there and Dïcom_中文 elsewhere, so a run under the other locale wrote a
    second set of outputs for the same scan."""
    import os

    from napari_livertumor.fileio import safe_name, temp_prefix

    as_ascii_locale = "Dïcom 中文".encode().decode("ascii", "surrogateescape")
    assert safe_name(as_ascii_locale) == safe_name("Dïcom 中文") == "Dïcom_中文"
    assert safe_name(os.fsdecode(b"M\xfcller")) == "M_ller"  # Latin-1: its byte replaced
    assert temp_prefix(os.fsdecode(b"M\xfcller.nii.gz")).startswith(".M")  # (raised before)
    assert len(os.fsencode(temp_prefix(os.fsdecode(b"\xfc" * 200)))) < 60


def test_a_name_windows_keeps_for_a_device_is_not_a_case_name():
    """A PatientID 'CON' made convert write imagesTs/CON.nii.gz, which Windows cannot create
    (nor NUL, COM1, LPT9; whatever follows a dot)."""
    from napari_livertumor.fileio import safe_name

    assert safe_name("CON") == "CON_" and safe_name("nul") == "nul_"
    assert safe_name("com1.phase2") == "com1_.phase2" and safe_name("LPT9") == "LPT9_"
    assert safe_name("CONTRAST") == "CONTRAST" and safe_name("COM10") == "COM10"


def _liver_with(lesions, liver_hu: float, seed: int = 0, spacing=(2.5, 0.8, 0.8)):
    """A 100 × 128 × 128 mm block of liver (``liver_hu``, noise SD 15) holding ``lesions``:
    ``(mask function of (z, y, x) in mm → bool, HU function → values)`` each, labelled tumor;
    its voxels ``spacing`` mm (by default 2.5 × 0.8 × 0.8)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(round(n / s)) for n, s in zip((100.0, 128.0, 128.0), spacing, strict=True))
    zz, yy, xx = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij"
    )
    labels = np.ones(shape, np.uint8)
    ct = np.full(shape, liver_hu, np.float32)
    for mask, hu in lesions:
        where = mask(zz, yy, xx)
        labels[where] = 2
        ct = np.where(where, hu(zz, yy, xx), ct)
    ct += rng.normal(0, 15, shape)
    return labels, ct.astype(np.int16), spacing


def _tube_distance(zz, yy, xx, a, b):
    """Distance (mm) of each point from the segment a–b (z, y, x mm)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    p = np.stack([zz, yy, xx], -1) - a
    t = np.clip((p @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
    return np.linalg.norm(p - t[..., None] * (b - a), axis=-1)


def _ball(centre, r):
    return lambda z, y, x: (
        (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= r**2
    )


def test_an_enhancing_vessel_called_tumor_is_flagged_and_round_lesions_are_not():
    """A review's tumor-free phantom came back with 24 mL of "tumor": the model had called
    enhancing portal-vein branches (185 HU, liver 115) tumor, with a margin of liver around
    them, and nothing said so. Such a lesion is now flagged vessel-like (kept and counted);
    a round dark lesion (HCC in the portal venous phase) and a rim-enhancing one are not."""
    from napari_livertumor.stats import vessel_warning

    trunk = ((50.0, 30.0, 30.0), (50.0, 70.0, 75.0))
    branch = ((50.0, 70.0, 75.0), (35.0, 100.0, 80.0))

    def tree(zz, yy, xx, r):
        return (_tube_distance(zz, yy, xx, *trunk) <= r) | (
            _tube_distance(zz, yy, xx, *branch) <= r
        )

    vessel = (
        lambda z, y, x: tree(z, y, x, 5.5),
        lambda z, y, x: np.where(tree(z, y, x, 3.5), 185, 115),
    )
    dark = (_ball((50, 40, 100), 12), lambda z, y, x: 65.0)
    centre = (50, 95, 35)

    def rim(z, y, x):
        d = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
        return np.where(d > 11, 150, 60)

    labels, ct, spacing = _liver_with([vessel, dark, (_ball(centre, 14), rim)], liver_hu=115)
    stats = compute_stats(labels, spacing, ct=ct)
    known = {"dark": np.array((50, 40, 100)), "rim": np.array(centre)}

    def which(les) -> str:
        mm = np.asarray(les["centroid_zyx"]) * spacing
        near = [k for k, c in known.items() if np.linalg.norm(mm - c) < 5]
        return near[0] if near else "vessel"

    by_place = {which(les): les for les in stats["lesions"]}
    assert set(by_place) == {"vessel", "dark", "rim"}
    assert by_place["vessel"]["vessel_like"] is True
    assert by_place["vessel"]["length_to_width"] >= 3
    assert by_place["vessel"]["upper_quartile_vs_liver_hu"] >= 30
    assert by_place["dark"]["vessel_like"] is False
    assert by_place["rim"]["vessel_like"] is False  # bright rim, but a round mass
    said = vessel_warning(stats)
    vid = by_place["vessel"]["id"]
    assert said.startswith(f"lesion {vid} (") and "enhancing vessel" in said
    assert "check it" in said


def test_a_mask_of_most_of_the_liver_is_not_called_a_vessel():
    """A 2-minute tumor model marked 1291 mL, 89 % of a liver, and the stats called it "brighter
    than the liver and tube-shaped, as an enhancing vessel is": bright and long, but no vessel
    is hundreds of mL (the whole-liver warning says what it is)."""
    from napari_livertumor.stats import VESSEL_MAX_ML, vessel_check

    sub = np.zeros((12, 12, 80), bool)
    sub[3:9, 3:9, 2:78] = True  # 6 mm wide, 76 mm long (1 mm voxels)
    hu = np.full(int(sub.sum()), 180.0)
    args = (hu, sub, (1.0, 1.0, 1.0), 115.0, 76.0)
    assert vessel_check(*args)["vessel_like"] is True  # (no volume given: shape and HU only)
    assert vessel_check(*args, volume_ml=30.0)["vessel_like"] is True
    big = vessel_check(*args, volume_ml=VESSEL_MAX_ML + 1)
    assert big["vessel_like"] is False and big["length_to_width"] >= 3


def test_a_hyperenhancing_round_lesion_in_the_arterial_phase_is_not_flagged():
    """Arterial-phase HCC is brighter than the liver (76 HU against 120-130): bright alone
    must not make a lesion vessel-like, or every such HCC would be doubted."""
    from napari_livertumor.stats import vessel_warning

    hcc = (_ball((50, 64, 64), 15), lambda z, y, x: 125.0)
    small = (_ball((50, 120, 110), 6), lambda z, y, x: 130.0)
    labels, ct, spacing = _liver_with([hcc, small], liver_hu=76)
    stats = compute_stats(labels, spacing, ct=ct)
    assert [les["vessel_like"] for les in stats["lesions"]] == [False, False]
    assert all(les["upper_quartile_vs_liver_hu"] >= 30 for les in stats["lesions"])
    assert vessel_warning(stats) is None


def test_a_bright_oval_mass_is_not_flagged_as_a_vessel():
    """A tumor is round to oval: a hyperenhancing oval mass twice as long as it is wide
    (48 × 22 mm, 60 HU over the liver) measures a length-to-width of about 2, under the
    3 of a vessel, and must not be doubted as one (nor with its width taken as its
    inscribed radius, not twice it, which would double every ratio)."""
    from napari_livertumor.stats import vessel_warning

    def oval(z, y, x):
        return ((z - 50) / 11) ** 2 + ((y - 64) / 24) ** 2 + ((x - 64) / 11) ** 2 <= 1

    labels, ct, spacing = _liver_with([(oval, lambda z, y, x: 160.0)], liver_hu=100)
    (les,) = compute_stats(labels, spacing, ct=ct)["lesions"]
    assert les["upper_quartile_vs_liver_hu"] >= 30  # bright: only its shape clears it
    assert 2.0 <= les["length_to_width"] < 2.6
    assert les["vessel_like"] is False
    assert vessel_warning({"lesions": [les]}) is None


def test_a_round_arterial_hcc_on_thick_slices_is_not_flagged_as_a_vessel():
    """On 5 mm slices of 0.7 mm pixels a round 30 mm arterial HCC is 6 slices deep but 43
    pixels wide: its width measured in voxels, not mm, made it 4 or 5 times longer than
    wide, and every bright round lesion of such a scan "vessel?"."""
    hcc = (_ball((50, 64, 64), 15), lambda z, y, x: 125.0)
    labels, ct, spacing = _liver_with([hcc], liver_hu=76, spacing=(5.0, 0.7, 0.7))
    (les,) = compute_stats(labels, spacing, ct=ct)["lesions"]
    assert les["upper_quartile_vs_liver_hu"] >= 30
    assert les["length_to_width"] < 1.5  # round
    assert les["vessel_like"] is False


def test_two_faintly_enhancing_vessels_are_both_flagged_and_counted_together():
    """Two portal-vein branches called tumor, their brightest quarter only 35 HU over the
    liver (a late portal venous phase): both are vessel-like, and the warning names both
    in the plural with the volume they add to the tumor's together."""
    from napari_livertumor.stats import vessel_warning

    tubes = [((50.0, 20.0, 30.0), (50.0, 100.0, 40.0)), ((30.0, 30.0, 90.0), (70.0, 90.0, 100.0))]
    lesions = [
        (
            lambda z, y, x, t=t: _tube_distance(z, y, x, *t) <= 4.0,
            lambda z, y, x: 100.0 + 25.0,  # + the noise's upper quartile (0.67 × 15 HU)
        )
        for t in tubes
    ]
    labels, ct, spacing = _liver_with(lesions, liver_hu=100)
    stats = compute_stats(labels, spacing, ct=ct)
    found = stats["lesions"]
    assert len(found) == 2
    for les in found:
        assert 30 <= les["upper_quartile_vs_liver_hu"] < 45
        assert les["length_to_width"] >= 3
        assert les["vessel_like"] is True
    said = vessel_warning(stats)
    a, b = found
    assert said.startswith(
        f"lesions {a['id']} ({volume_shown(a['volume_ml'])} mL) and {b['id']} "
        f"({volume_shown(b['volume_ml'])} mL) are brighter than the liver and tube-shaped, "
        "as enhancing vessels are"
    ), said
    total = volume_shown(a["volume_ml"] + b["volume_ml"])
    assert said.endswith(f"check them before counting them ({total} mL of the tumor volume)")


def test_without_the_ct_or_a_liver_there_is_no_vessel_check():
    labels = np.zeros((10, 20, 20), np.uint8)
    labels[2:6, 5:10, 5:10] = 2
    assert "vessel_like" not in compute_stats(labels, (1.0, 1.0, 1.0))["lesions"][0]
    les = compute_stats(labels, (1.0, 1.0, 1.0), ct=np.zeros(labels.shape, np.int16))["lesions"][0]
    assert les["vessel_like"] is None and les["length_to_width"] is None
