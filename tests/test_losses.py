"""Loss terms against hand-computed and PyTorch reference values."""

from __future__ import annotations

import pytest
import torch

from napari_livertumor.training import make_config
from napari_livertumor.training.losses import compute_losses, focal_loss, soft_dice_loss


def _batch(seed=0, shape=(2, 3, 4, 5, 6)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=g)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    return logits, target


def test_focal_with_gamma_zero_and_class_weights_is_weighted_cross_entropy():
    logits, target = _batch()
    w = (1.0, 1.0, 5.0)
    ours = focal_loss(logits, target, gamma=0.0, class_weights=w)
    ref = torch.nn.functional.cross_entropy(logits, target, weight=torch.tensor(w))
    assert float(ours) == pytest.approx(float(ref), rel=1e-5)
    # equal weights change nothing
    assert float(focal_loss(logits, target, gamma=2.0, class_weights=(2.0, 2.0, 2.0))) == (
        pytest.approx(float(focal_loss(logits, target, gamma=2.0)), rel=1e-5)
    )


def test_tumor_weight_raises_the_cost_of_missing_the_tumor():
    # every voxel predicted "liver" with confidence; a quarter of the voxels are tumor
    target = torch.ones(1, 4, 4, 4, dtype=torch.long)
    target[..., :1] = 2
    logits = torch.zeros(1, 3, 4, 4, 4)
    logits[:, 1] = 4.0
    plain = float(focal_loss(logits, target, gamma=0.0))
    weighted = float(focal_loss(logits, target, gamma=0.0, class_weights=(1.0, 1.0, 5.0)))
    assert weighted > 2 * plain


def test_dice_restricted_to_one_class_matches_a_hand_computation():
    logits, target = _batch(seed=3)
    p = torch.softmax(logits, 1)[:, 2]
    t = (target == 2).float()
    expected = 1 - (2 * (p * t).sum() + 1e-5) / (p.sum() + t.sum() + 1e-5)
    got = soft_dice_loss(logits, target, classes=[2])
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    # the default averages every foreground class
    p1, t1 = torch.softmax(logits, 1)[:, 1], (target == 1).float()
    d1 = (2 * (p1 * t1).sum() + 1e-5) / (p1.sum() + t1.sum() + 1e-5)
    d2 = 1 - expected
    assert float(soft_dice_loss(logits, target)) == pytest.approx(float(1 - (d1 + d2) / 2), 1e-6)


def test_compute_losses_uses_the_configured_classes_and_weights():
    logits, target = _batch(seed=5)
    cfg = make_config("tumor", data=".", class_weights=[1, 1, 5], dice_classes=[2], weak_lambda=0.0)
    terms = compute_losses(logits, None, target, {}, cfg)
    assert float(terms["dice"]) == pytest.approx(
        float(soft_dice_loss(logits, target, classes=[2])), rel=1e-6
    )
    assert float(terms["focal"]) == pytest.approx(
        float(focal_loss(logits, target, gamma=cfg.focal_gamma, class_weights=(1, 1, 5))),
        rel=1e-6,
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"class_weights": [1, 5]},  # the tumor stage has three classes
        {"class_weights": [1, -1, 5]},
        {"dice_classes": [3]},
        {"dice_classes": []},
    ],
)
def test_bad_class_settings_are_refused(bad):
    with pytest.raises(ValueError):
        make_config("tumor", data=".", **bad)


@pytest.mark.parametrize("gamma", [0.5, 0.9, 2.0])
def test_focal_loss_gradients_stay_finite_on_confident_voxels(gamma):
    """With 0 < γ < 1, (1 - p)**γ has an infinite slope at p = 1, which float32 reaches at a
    logit margin of about 17: a finite loss with NaN gradients, spread into every weight."""
    logits = torch.tensor([[[20.0, -1.0], [0.0, 3.0], [0.0, -2.0]]]).requires_grad_()
    target = torch.tensor([[0, 1]])
    loss = focal_loss(logits, target, gamma=gamma)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
