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


def _weak_batch(tumor_slices=(2, 0), tlvr=0.125, weak=None):
    """Two all-liver patches of one patient whose own tumor ratios differ (2/8 and 0/8 of the
    slices tumor), with logits equal to their ground truth (a perfect prediction)."""
    target = torch.ones(2, 8, 8, 8, dtype=torch.long)
    for i, n in enumerate(tumor_slices):
        target[i, :n] = 2
    logits = 20.0 * torch.nn.functional.one_hot(target, 3).permute(0, 4, 1, 2, 3).float()
    w = tlvr if weak is None else weak
    extra = {
        "weak_target": torch.tensor([w, w]),
        "weak_ok": torch.tensor([True, True]),
        "weak_tlvr": torch.tensor([tlvr, tlvr]),
    }
    return logits.requires_grad_(), target, extra


def test_the_ground_truth_pays_no_weak_penalty_when_each_patch_is_held_to_its_own_ratio():
    """A patch's true ratio strays from its patient's (here 0.25 and 0 around 0.125, beyond
    the 0.05 margin): held to the patient's label (``weak_anchor`` "patient", the recipes
    before 4 Dec 2026) the ground truth itself was penalised; held to the label moved by the
    patch's own deviation it pays nothing."""
    from napari_livertumor.training.losses import patch_targets

    logits, target, extra = _weak_batch()
    own = patch_targets(extra["weak_target"], target, extra["weak_tlvr"])
    assert own.tolist() == pytest.approx([0.25, 0.0])
    for anchor, zero in (("patch", True), ("patient", False)):
        cfg = make_config("tumor", data=".", weak_lambda=0.5, weak_anchor=anchor)
        weak = float(compute_losses(logits, None, target, extra, cfg)["weak"].detach())
        assert (weak == pytest.approx(0.0, abs=1e-9)) is zero, (anchor, weak)


def test_a_weak_label_above_the_true_ratio_still_pulls_the_tumor_up_in_every_patch():
    """What the clinical label adds is kept: a label 0.2 above the patient's true ratio asks
    more tumor of both patches (also of the one whose own ratio is above the label's)."""
    logits, target, extra = _weak_batch(weak=0.325)
    cfg = make_config("tumor", data=".", weak_lambda=1.0, weak_anchor="patch", dice_weight=0.0,
                      focal_weight=0.0)  # fmt: skip
    terms = compute_losses(logits, None, target, extra, cfg)
    assert float(terms["weak"].detach()) > 0.01
    terms["total"].backward()
    grad = logits.grad[:, 2].flatten(1).sum(1)  # d loss / d tumor logits, per patch
    assert (grad < 0).all(), grad  # descending raises the tumor logits of both patches


def test_a_patch_without_a_weak_label_or_not_qualifying_gets_no_weak_term():
    logits, target, extra = _weak_batch()
    extra["weak_target"] = torch.tensor([float("nan"), 0.5])
    extra["weak_ok"] = torch.tensor([True, False])
    cfg = make_config("tumor", data=".", weak_lambda=0.5)
    terms = compute_losses(logits, None, target, extra, cfg)
    assert terms["n_weak"] == 0 and float(terms["weak"]) == 0.0


def test_an_unknown_weak_anchor_is_refused():
    from napari_livertumor.errors import SettingsError

    with pytest.raises(SettingsError, match="weak_anchor"):
        make_config("tumor", data=".", weak_anchor="lesion")


def test_resuming_or_fine_tuning_a_run_from_before_the_weak_anchor_keeps_its_form(tmp_path):
    """Runs (and the shipped models) from before 4 Dec 2026 held every patch to its patient's
    label; `train --resume`, the Train panel's Resume and a fine-tune from the model's own
    recipe go on with that form unless asked otherwise."""
    import argparse
    import json

    from napari_livertumor.commands.train import add_arguments, build_configs
    from napari_livertumor.models import default_model_dir
    from napari_livertumor.training.config import recipe_from_model
    from napari_livertumor.training.loop import run_weak_anchor

    last = tmp_path / "out" / "tumor" / "last"
    last.mkdir(parents=True)
    saved = {"stage": "tumor", "weak_lambda": 0.5}
    (last / "metadata.json").write_text(json.dumps({"training": {"config": saved}}))
    assert run_weak_anchor(last.parent) == "patient"
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    def anchor(*extra):
        argv = ["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--stage", "tumor"]
        (cfg,) = build_configs(parser.parse_args([*argv, *extra]))
        return cfg.weak_anchor

    assert anchor("--resume") == "patient"
    assert anchor("--resume", "--weak-anchor", "patch") == "patch"  # asked otherwise
    assert anchor() == "patch"  # a new run: the default
    saved["weak_anchor"] = "patch"
    (last / "metadata.json").write_text(json.dumps({"training": {"config": saved}}))
    assert run_weak_anchor(last.parent) == "patch" and anchor("--resume") == "patch"
    # the shipped tumor model trained with the weak term before the field existed
    shipped = recipe_from_model(default_model_dir("tumor"), "tumor")["tumor"]
    assert shipped["weak_anchor"] == "patient"


def test_a_recipe_without_weak_anchor_is_said_to_train_the_new_default(tmp_path, caplog):
    """QA s50upgrade: a recipe file written before 4 Dec 2026 (no weak_anchor) trained
    'patient' then and 'patch' now, unsaid: a fold added mid-project trained another loss."""
    import argparse
    import json
    import logging

    from napari_livertumor.commands.train import add_arguments, build_configs

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    recipe = tmp_path / "old.json"
    recipe.write_text(json.dumps({"tumor": {"weak_lambda": 0.5}}))
    said = "sets no weak_anchor: the clinical weak term, where it runs, takes the default"

    def build(*extra, tumor=None):
        if tumor is not None:
            recipe.write_text(json.dumps({"tumor": tumor}))
        argv = ["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--stage", "tumor",
                "--config", str(recipe)]  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            (cfg,) = build_configs(parser.parse_args([*argv, *extra]))
        return cfg.weak_anchor, said in caplog.text

    assert build() == ("patch", True)
    assert build("--weak-anchor", "patient") == ("patient", False)  # chosen on the command line
    assert build(tumor={"weak_lambda": 0.5, "weak_anchor": "patch"}) == ("patch", False)
    assert build(tumor={"weak_lambda": 0.0}) == ("patch", False)  # no weak term: no matter
    # the built-in recipes all say which
    for name in ("default_cpu", "hcc_tace_gpu", "tumor_field_spare_cpu"):
        argv = ["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--stage", "tumor",
                "--config", name]  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            build_configs(parser.parse_args(argv))
        assert said not in caplog.text, name
