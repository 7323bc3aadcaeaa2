"""Small CT data for the widget tests (imported by tests/test_widget_*.py and test_demo*.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_livertumor.io.volume import CTVolume


def tiny_ct(shape=(16, 48, 48), spacing=(2.5, 0.9, 0.9), origin=(-20.0, -30.0, 100.0)) -> tuple:
    """A small abdomen-like CT: body ~0 HU, a 'liver' blob at 60 HU with a 'tumor' at 20 HU.

    Returns ``(volume, labels)`` with labels 1 liver, 2 tumor.
    """
    z, y, x = np.indices(shape)
    cz, cy, cx = (s / 2 for s in shape)
    body = ((y - cy) / (shape[1] * 0.45)) ** 2 + ((x - cx) / (shape[2] * 0.45)) ** 2 < 1
    liver = ((z - cz) / (shape[0] * 0.35)) ** 2 + ((y - cy) / (shape[1] * 0.25)) ** 2 + (
        (x - cx * 0.8) / (shape[2] * 0.25)
    ) ** 2 < 1
    tumor = ((z - cz) / 3.0) ** 2 + ((y - cy) / 5.0) ** 2 + ((x - cx * 0.8) / 5.0) ** 2 < 1
    ct = np.full(shape, -1000, np.int16)
    ct[body] = 10
    ct[liver] = 60
    ct[tumor] = 20
    labels = np.zeros(shape, np.uint8)
    labels[liver] = 1
    labels[tumor] = 2
    vol = CTVolume(
        ct,
        spacing=spacing,
        origin=origin,
        meta={"patient_id": "TEST_001", "description": "tiny CT"},
    )
    return vol, labels


def write_dicom_case(folder: Path) -> tuple[Path, CTVolume, np.ndarray]:
    """A DICOM CT series of :func:`tiny_ct` in ``folder/TEST_001/CT``."""
    from napari_livertumor.io.dicom_write import write_ct_series

    vol, labels = tiny_ct()
    series = folder / "TEST_001" / "CT"
    write_ct_series(vol, series, patient_id="TEST_001", series_description="tiny CT")
    return folder / "TEST_001", vol, labels


def tiny_models(folder: Path) -> Path:
    """Random-weight liver and tumor models small enough to run in a second on a CPU.

    The last convolution is scaled down to a hundredth, with a bias for the foreground class,
    so the "liver" covers the whole CT and the "tumor" the whole liver: the tests check
    alignment and plumbing, not accuracy, and need a result that is the same on every machine.
    (Not zeroed: a network whose output is the same everywhere is refused, as it ignores the
    image; a hundredth leaves the bias winning by far.)
    """
    import torch

    from napari_livertumor.models import (
        ModelMetadata,
        NetworkConfig,
        build_inference_network,
        save_model,
    )

    for stage, n_out in (("liver", 2), ("tumor", 3)):
        net_cfg = NetworkConfig(
            out_channels=n_out,
            init_filters=4,
            blocks_down=(1, 1),
            blocks_up=(1,),
            dropout_prob=None,
        )
        torch.manual_seed(0)
        net = build_inference_network(net_cfg)
        final = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)][-1]
        with torch.no_grad():
            final.weight.mul_(0.01)
            final.bias.copy_(torch.tensor([0.0] * (n_out - 1) + [4.0]))
        labels = {"0": "background", "1": "liver"}
        if stage == "tumor":
            labels["2"] = "tumor"
        meta = ModelMetadata(
            stage=stage,
            network=net_cfg,
            hu_window=(-150.0, 250.0),
            target_spacing=(5.0, 4.0, 4.0),
            roi_size=(16, 64, 64),
            label_map=labels,
            mask_outside_liver=stage == "tumor",
            roi_margin_mm=0.0,
        )
        save_model(folder / stage, net.state_dict(), meta, trunk_only=False)
    return folder


def timed_calls(obj, name: str) -> list[tuple[float, float]]:
    """Replace ``obj.name`` with a wrapper recording each call's ``(start, end)``
    ``perf_counter`` times, for ``Heartbeat.max_stall_outside``: GUI work timed apart."""
    import time

    original = getattr(obj, name)
    windows: list[tuple[float, float]] = []

    def timed(*args, **kw):
        t0 = time.perf_counter()
        try:
            return original(*args, **kw)
        finally:
            windows.append((t0, time.perf_counter()))

    setattr(obj, name, timed)
    return windows


def two_patients(viewer, same_grid: bool = False) -> list:
    """Patient A, then patient B loaded after it (each a CT and its segmentation): B's layers
    are the newest, those the panels' pickers follow. ``same_grid``: B's scan lies exactly
    over A's (B's CT, shown, covers A's layers)."""
    from napari_livertumor._widgets import _layers

    layers = []
    origins = ((-20.0, -30.0, 100.0), (-20.0 if same_grid else -60.0, -30.0, 100.0))
    for pid, origin in zip(("A", "B"), origins, strict=True):
        vol, truth = tiny_ct(origin=origin)
        vol.meta.update(patient_id=pid, series_uid=f"1.2.{len(layers)}")
        ct = _layers.add_ct_layer(viewer, vol, name=f"{pid} CT")
        seg = _layers.add_labels_layer(
            viewer, truth, vol, f"{pid} CT segmentation", ct_layer_name=ct.name
        )
        layers.append((ct, seg))
    return layers


def back_to_the_first_patient(viewer, picker) -> tuple:
    """:func:`two_patients`, then B's layers hidden and A's labels selected, as a user going
    back to A does; the panel's labels ``picker`` stays on B's. ``(A's, B's)`` segmentations."""
    (_, seg_a), (ct_b, seg_b) = two_patients(viewer)
    assert picker.currentText() == seg_b.name
    ct_b.visible = seg_b.visible = False
    viewer.layers.selection.active = seg_a
    assert picker.currentText() == seg_b.name  # the picker stays as chosen
    return seg_a, seg_b
