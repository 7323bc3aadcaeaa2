"""Writing a refined tumor into labels: only inside the liver, and Undo restores every voxel."""

from __future__ import annotations

import numpy as np

from napari_livertumor.refine.edits import EditHistory, write_tumor


class Layer:
    def __init__(self, data):
        self.data = data


def test_tumor_is_written_inside_the_liver_only_and_undo_restores_exactly():
    rng = np.random.default_rng(0)
    labels = np.zeros((4, 20, 20), np.uint8)
    labels[:, 2:18, 2:18] = 1
    labels[1:3, 8:12, 8:12] = 2
    labels[0, 0, 0] = 4  # an unrelated class far away
    layer = Layer(labels)
    original = labels.copy()
    tumor = labels == 2
    liver = (labels == 1) | tumor
    after = np.zeros_like(tumor)
    after[1:3, 6:14, 6:14] = True  # grows
    after[1:3, 0:3, 0:3] = True  # partly outside the liver: must not be written there
    history = EditHistory(max_steps=3)

    grown, shrunk = write_tumor(labels, tumor, after, liver, history=history, target=layer)
    assert grown > 0 and shrunk == 0
    assert not ((labels == 2) & ~liver).any()
    assert labels[0, 0, 0] == 4
    assert history.undo() is not None
    np.testing.assert_array_equal(labels, original)

    # shrinking returns the given-up voxels to liver (1); several steps undo in order
    snapshots = [labels.copy()]
    for _ in range(3):
        tumor = labels == 2
        after = tumor & (rng.random(tumor.shape) > 0.3)
        write_tumor(labels, tumor, after, liver, history=history, target=layer)
        assert set(np.unique(labels[tumor & ~after])) <= {1}
        snapshots.append(labels.copy())
    for expected in reversed(snapshots[:-1]):
        history.undo()
        np.testing.assert_array_equal(labels, expected)
    assert history.undo() is None


def test_history_keeps_only_the_newest_steps():
    labels = np.zeros((3, 3), np.uint8)
    layer = Layer(labels)
    history = EditHistory(max_steps=2)
    for i in range(5):
        history.record(layer, (slice(0, 1), slice(0, 1)), f"step {i}")
        labels[0, 0] = i + 1
    assert [s.what for s in history.steps] == ["step 3", "step 4"]
    history.undo()
    history.undo()
    assert labels[0, 0] == 3


def test_no_change_writes_nothing_and_records_nothing():
    labels = np.ones((5, 5), np.uint8)
    tumor = np.zeros((5, 5), bool)
    history = EditHistory()
    assert write_tumor(
        labels, tumor, tumor.copy(), None, history=history, target=Layer(labels)
    ) == (0, 0)
    assert len(history) == 0


def test_undo_keeps_voxels_painted_by_hand_since_the_step():
    """Undo wrote the step's whole box back: 16 of 21 voxels painted after an Apply vanished,
    and the status said only "Undid: all lesions"."""
    labels = np.ones((3, 30, 30), np.uint8)
    labels[1, 10:20, 10:20] = 2
    layer = Layer(labels)
    history = EditHistory()
    tumor = labels == 2
    after = np.zeros_like(tumor)
    after[1, 8:22, 8:22] = True  # the contour grew the lesion
    write_tumor(labels, tumor, after, None, history=history, target=layer, what="all lesions")
    applied = labels.copy()
    labels[1, 9, 12:16] = 1  # painted back to liver by hand, inside the step's change
    labels[1, 14, 14] = 0  # and inside the box, where the step changed nothing
    hand, painted = labels != applied, labels.copy()
    step = history.undo()
    assert step.kept == int(hand.sum()) == 5
    np.testing.assert_array_equal(labels[hand], painted[hand])  # the hand edits stay
    expected = np.ones_like(labels)
    expected[1, 10:20, 10:20] = 2
    np.testing.assert_array_equal(labels[~hand], expected[~hand])  # the rest as before


def test_a_change_given_as_a_part_of_the_volume_lands_on_that_part():
    """Apply to slice and Apply to all hand over only the part they changed (the whole 512²
    volume cost the window a second at each Apply); it must land on the same voxels."""
    from napari_livertumor.refine.edits import changed_box

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, (6, 20, 24)).astype(np.uint8)
    whole = labels.copy()
    before = labels == 2
    after = before.copy()
    after[3, 5:9, 10:15] = True
    after[4, 2:4, 2:4] = False
    liver = labels > 0
    grown, shrunk = write_tumor(whole, before, after, liver)  # the whole volume at once

    box = (slice(2, 6), slice(None), slice(1, 24))
    history = EditHistory(data_of=lambda target: labels)
    start = labels.copy()
    got = write_tumor(labels, before[box], after[box], liver[box], history=history, within=box)
    assert got == (grown, shrunk) and grown > 0 and shrunk > 0
    np.testing.assert_array_equal(labels, whole)
    [step] = history.steps
    assert step.box == changed_box(labels != start)  # in the whole volume's indices
    history.undo()
    np.testing.assert_array_equal(labels, start)


def test_changed_box_is_the_bounding_box_of_the_changed_voxels():
    from scipy import ndimage as ndi

    from napari_livertumor.refine.edits import changed_box

    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = np.zeros(tuple(rng.integers(1, 9, 3)), bool)
        for _ in range(rng.integers(1, 4)):
            mask[tuple(rng.integers(0, n) for n in mask.shape)] = True
        assert changed_box(mask) == ndi.find_objects(mask.astype(np.uint8))[0]
    assert changed_box(np.zeros((2, 3), bool)) == (slice(0, 2), slice(0, 3))


def test_an_undo_history_of_no_steps_is_refused():
    """``steps[:-0]`` is every step: a history of 0 steps would have kept them all."""
    import pytest

    with pytest.raises(ValueError, match="at least 1"):
        EditHistory(max_steps=0)
