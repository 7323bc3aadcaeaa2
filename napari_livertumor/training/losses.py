"""Segmentation losses: soft Dice + focal, the VAE term, and the clinical weak term.

``total = dice_weight·Dice + focal_weight·Focal + vae_weight·VAE + λ·weak``. The VAE
reconstruction/KL loss that ``SegResNetVAE`` returns in train mode is *used* (the original
discarded it, so its VAE branch never trained and never regularised the encoder).
"""

from __future__ import annotations

from typing import Any

from .weak import soft_tumor_ratio, weak_penalty


def soft_dice_loss(
    logits, target, *, include_background: bool = False, classes=None, eps: float = 1e-5
):
    """1 − mean soft Dice over classes, with sums over the whole batch (stable on empty patches).

    ``logits``: (B, C, Z, Y, X); ``target``: (B, Z, Y, X) integer classes. ``classes`` (a list
    of class indices) restricts the mean to those classes, e.g. ``[2]`` for tumor only.
    """
    import torch

    probs = torch.softmax(logits.float(), dim=1)
    onehot = torch.nn.functional.one_hot(target.long(), probs.shape[1]).permute(0, 4, 1, 2, 3)
    onehot = onehot.to(probs.dtype)
    if classes:
        idx = [int(c) for c in classes]
        p, t = probs[:, idx], onehot[:, idx]
    else:
        start = 0 if include_background else 1
        p, t = probs[:, start:], onehot[:, start:]
    dims = (0, 2, 3, 4)
    inter = (p * t).sum(dims)
    denom = p.sum(dims) + t.sum(dims)
    dice = (2 * inter + eps) / (denom + eps)
    return 1.0 - dice.mean()


def focal_loss(logits, target, *, gamma: float = 2.0, class_weights=None):
    """Multi-class focal loss on softmax probabilities (``gamma`` 0: cross-entropy).

    With ``class_weights`` (one per class) each voxel counts ``w[its class]`` times and the mean
    is taken over the weights, as ``torch.nn.functional.cross_entropy(weight=...)`` does.
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=1)
    logp_t = logp.gather(1, target.long().unsqueeze(1)).squeeze(1)
    one_minus = 1 - logp_t.exp()
    if 0 < gamma < 1:  # x**γ has an infinite slope at 0 (a confident voxel): NaN gradients
        one_minus = one_minus.clamp(min=1e-6)
    loss = -(one_minus**gamma) * logp_t
    if class_weights is None:
        return loss.mean()
    w = torch.as_tensor(class_weights, dtype=loss.dtype, device=loss.device)[target.long()]
    return (w * loss).sum() / w.sum().clamp(min=1e-8)


def patch_targets(weak, target, tlvr):
    """Each patch's weak target: the weak label moved by how far the patch's own true ratio
    lies from its patient's.

    A patch is not the whole liver: its true tumor ratio ``t`` (tumor voxels over liver +
    tumor voxels of the patch's labels) strays from the patient's ``tlvr`` by far more than the
    interval's margin (0.06 against 0.38 in two patches of one patient whose whole liver holds
    0.24), so comparing every patch with the patient's weak label penalised the ground truth
    itself. The target ``w + (t − tlvr)`` keeps what the clinical label says (``w − tlvr``: the
    table's view of the tumor burden against the annotation's) and nothing else: where the
    weak label equals the true ratio, a prediction equal to the ground truth pays nothing.
    Clipped to [0, 1].

    ``weak``, ``tlvr``: (B,); ``target``: (B, Z, Y, X) integer classes (1 liver, 2 tumor).
    """
    import torch

    flat = target.flatten(1)
    tumor = (flat == 2).sum(1).to(torch.float32)
    liver = (flat >= 1).sum(1).to(torch.float32)
    own = tumor / liver.clamp(min=1.0)
    return (weak + own - tlvr.to(torch.float32)).clamp(0.0, 1.0)


def compute_losses(logits, vae_loss, target, batch_extra: dict[str, Any], config) -> dict[str, Any]:
    """All loss terms for one batch, and ``"total"`` (tensors; ``"n_weak"`` an int).

    ``batch_extra`` holds ``weak_target`` (B,) with NaN where a sample has no weak label,
    ``weak_ok`` (B,) booleans (the patch qualifies for the weak term) and, for ``weak_anchor``
    "patch", ``weak_tlvr`` (B,), each sample's patient's true ratio (see :func:`patch_targets`).
    """
    import torch

    terms: dict[str, Any] = {}
    total = logits.new_zeros((), dtype=torch.float32)
    if config.dice_weight:
        terms["dice"] = soft_dice_loss(logits, target, classes=config.dice_classes)
        total = total + config.dice_weight * terms["dice"]
    if config.focal_weight:
        terms["focal"] = focal_loss(
            logits, target, gamma=config.focal_gamma, class_weights=config.class_weights
        )
        total = total + config.focal_weight * terms["focal"]
    if config.vae_weight and vae_loss is not None:
        terms["vae"] = vae_loss.float()
        total = total + config.vae_weight * terms["vae"]
    n_weak = 0
    if config.stage == "tumor" and config.weak_lambda > 0:
        w = batch_extra["weak_target"].to(logits.device)
        ok = batch_extra["weak_ok"].to(logits.device) & torch.isfinite(w)
        n_weak = int(ok.sum())
        if n_weak:
            probs = torch.softmax(logits.float(), dim=1)
            liver = (target >= 1).unsqueeze(1)
            ratio = soft_tumor_ratio(probs, liver)
            w = w.float()
            if getattr(config, "weak_anchor", "patient") == "patch":
                w = patch_targets(w, target, batch_extra["weak_tlvr"].to(logits.device))
            pen = weak_penalty(ratio[ok], w[ok], form=config.weak_form, margin=config.weak_margin)
            terms["weak"] = pen.mean()
            total = total + config.weak_lambda * terms["weak"]
        else:
            # keep every parameter in the graph identically on every rank (DDP)
            terms["weak"] = logits.new_zeros((), dtype=torch.float32)
    terms["total"] = total
    terms["n_weak"] = n_weak
    return terms
