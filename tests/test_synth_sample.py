"""File > Open Sample > napari-livertumor: the synthetic CT and its ground truth line up."""

from __future__ import annotations

import numpy as np


def test_open_sample_adds_ct_and_ground_truth_in_mm(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-livertumor", "synthetic_ct")
    names = [layer.name for layer in viewer.layers]
    assert names == ["CT (synthetic)", "ground truth"]
    ct, truth = viewer.layers
    assert np.allclose(ct.scale, truth.scale) and np.allclose(ct.translate, truth.translate)
    assert ct.scale[1] > 0.5 and ct.scale[0] >= 1.0  # mm, not voxels
    assert tuple(ct.contrast_limits) == (-160, 240)
    assert {1, 2, 3, 4} <= set(np.unique(truth.data))


def test_a_sample_opened_twice_links_each_ground_truth_to_its_own_ct(make_napari_viewer):
    """napari names the second CT "CT (synthetic) [1]"; its ground truth was linked by name
    to the first one."""
    from napari_livertumor._widgets._layers import linked_ct_name

    viewer = make_napari_viewer()
    viewer.open_sample("napari-livertumor", "synthetic_ct")
    viewer.open_sample("napari-livertumor", "synthetic_ct")
    names = [layer.name for layer in viewer.layers]
    ct1, truth1, ct2, truth2 = names
    assert ct2 != ct1 and truth2 != truth1
    assert linked_ct_name(viewer.layers[truth1], viewer) == ct1
    assert linked_ct_name(viewer.layers[truth2], viewer) == ct2
