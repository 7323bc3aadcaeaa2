"""Ensembles: one model folder holding several networks of one recipe, whose logits are averaged.

``livertumor ensemble OUT DIR DIR ...`` writes one from model folders trained with the same recipe
(the folds of ``livertumor train --folds K --fold I``, or runs from different seeds). nnU-Net ships
its five folds this way. The mean of several networks' logits is often a little more accurate than
one network when the members were trained apart (folds, seeds); it costs one forward pass per
member. Two fine-tunes of one shipped tumor model gained nothing (docs/training.md, "Ensembles").
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..errors import ModelError
from ..fileio import check_path_lengths
from .checkpoint import (
    METADATA_FILE,
    WEIGHTS_FILE,
    ModelMetadata,
    best_model_beside,
    is_resume_checkpoint,
    load_model,
    save_model,
)

log = logging.getLogger(__name__)


class MeanEnsemble(torch.nn.Module):
    """Output = the mean of the members' outputs; parameters live under ``members.<i>.``."""

    def __init__(self, members):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x):
        out = self.members[0](x)
        for m in self.members[1:]:
            out = out + m(x)
        return out / len(self.members)


def make_ensemble(folder: str | Path, members: list[str | Path], *, force: bool = False) -> Path:
    """Write an ensemble model folder from several model folders of one stage and geometry.

    The members must agree on stage, network, HU window, target spacing, window size, label map
    and liver masking (they were trained with one recipe, e.g. the folds of ``--folds K``). The
    ensemble's logit shift is the members' mean (:func:`ensemble_shift`: it averages the members
    as each segments; a shift of its own may suit it better, ``scripts/calibrate_shift.py``); a
    lesion filter every member shares is kept, differing ones leave the default. Weights keep
    the members' storage type.

    Raises
    ------
    ModelError
        Fewer than two members, a member that does not load, members that disagree, or an
        existing output folder without ``force``.
    """
    folder = Path(folder)
    if len(members) < 2:
        raise ModelError(folder, "an ensemble needs at least two model folders")
    # (Windows' path limit, where it applies: not found at the end, after every member loaded)
    check_path_lengths(
        folder,
        [folder / name for name in (WEIGHTS_FILE, METADATA_FILE, "split.json")],
        ending=".tmp",  # (save_model's and the split's temporary names)
        choose="an output folder",
    )
    if folder.exists() and not folder.is_dir():
        raise ModelError(folder, "the output must be a folder, and this is a file")
    if any(_same_folder(folder, m) for m in members):
        raise ModelError(folder, "is one of the members: the ensemble would overwrite it")
    for m in members:
        if _inside(folder, m):
            raise ModelError(
                folder,
                f"lies inside the member {m}: a model folder written into another model's "
                "folder; give a folder beside it",
            )
    for i, m in enumerate(members):
        for other in members[:i]:
            if _same_folder(m, other):
                raise ModelError(
                    m,
                    f"is given twice (also as {other}): an ensemble of one network twice is "
                    "that network at twice the time; list each member once",
                )
    replaced = None  # the stage of the model --force replaces
    if folder.is_dir():
        if any((folder / s / METADATA_FILE).exists() for s in ("liver", "tumor")):
            raise ModelError(
                folder,
                "holds stage models (liver/, tumor/: a models root): give a stage folder, "
                "e.g. OUT/tumor",
            )
        if (folder / "last").is_dir():
            raise ModelError(
                folder,
                "holds a training run (last/ is its state for --resume): an ensemble written "
                "there would be overwritten when the run goes on; give another folder",
            )
        if (folder / METADATA_FILE).exists():
            from .checkpoint import is_shipped_model_folder

            if is_shipped_model_folder(folder):  # --force would replace what Segment uses
                raise ModelError(
                    folder,
                    "is a shipped default model's folder: write the ensemble to another "
                    "folder and choose it in Segment (--models)",
                )
            if not force:
                raise ModelError(folder, "a model is already there (use --force to replace it)")
            replaced = _stage_of(folder)  # said once the ensemble's own stage is known
        elif force and _only_model_files(folder):
            pass  # an ensemble stopped while replacing a model: its weights, no metadata yet
        elif any(folder.iterdir()):
            stopped = _only_model_files(folder)
            raise ModelError(
                folder,
                "holds the weights of an ensemble stopped while it was written: --force "
                "writes it again"
                if stopped
                else "is not empty and holds no model: give a new or empty folder",
            )
    metas = []
    tensors: dict[str, Any] = {}
    keys = ("stage", "network", "hu_window", "target_spacing", "roi_size", "label_map")
    keys += ("mask_outside_liver", "outside_hu", "roi_margin_mm")
    for i, member in enumerate(members):
        member = Path(member)
        if not (member / METADATA_FILE).exists() and any(
            (member / st / METADATA_FILE).exists() for st in ("liver", "tumor")
        ):
            held = [st for st in ("liver", "tumor") if (member / st / METADATA_FILE).exists()]
            raise ModelError(
                member,
                f"holds {' and '.join(f'{st}/' for st in held)} (a models root): give its "
                + " or ".join(f"{st}/" for st in held)
                + " folder",
            )
        loaded = load_model(member)  # ModelError names the folder
        meta = loaded.metadata
        _refuse_resume_checkpoint(member, meta)
        if meta.members != 1:
            raise ModelError(member, "is itself an ensemble; list its member folders instead")
        if metas:
            mine, first = meta.to_dict(), metas[0].to_dict()
            if mine["stage"] != first["stage"]:  # (its other fields differ with it, 7 names)
                raise ModelError(
                    member,
                    f"is a {mine['stage']} model and {members[0]} a {first['stage']} model: "
                    "an ensemble's members are models of one stage",
                )
            diff = [k for k in keys if mine[k] != first[k]]
            if diff:
                # each field with both values: the names alone sent the user to both files
                shown = "; ".join(
                    f"{k} {_shown(mine[k])} vs {_shown(first[k])}" for k in diff[:4]
                ) + (f"; and {', '.join(diff[4:])}" if len(diff) > 4 else "")
                raise ModelError(member, f"differs from {members[0]} in {shown}: not one recipe")
        metas.append(meta)
        raw = load_file(str(member / WEIGHTS_FILE), device="cpu")  # keeps fp16 storage
        for k in loaded.network.state_dict():  # the trunk (a VAE branch is left behind)
            tensors[f"members.{i}.{k}"] = raw[k].contiguous()
    # checked once every member has loaded (a warning, then a refusal, read oddly)
    digests = [_weights_digest(Path(m)) for m in members]
    twins = len(digests) - len(set(digests))
    if twins and None not in digests:
        log.warning(
            "%d member(s) have the same weights as another member: the ensemble gives the same "
            "masks as fewer members, at more time per case",
            twins,
        )
    recipes = [dict((m.training or {}).get("config") or {}) for m in metas]
    differ = sorted(
        k
        for k in set().union(*recipes) - _per_run_keys()
        if any(r.get(k) != recipes[0].get(k) for r in recipes[1:])
    )
    if differ and all(recipes):  # one training recipe is what the docs (and folds) mean
        log.warning(
            "the members were trained with other settings (%s): the ensemble records the "
            "first's recipe (%s)",
            ", ".join(differ[:8]) + (" …" if len(differ) > 8 else ""),
            members[0],
        )
    base = metas[0]
    _refuse_other_stage(folder, base.stage, replaced)
    meta = ModelMetadata.from_dict(
        {
            **base.to_dict(),
            "members": len(metas),
            "logit_bias": ensemble_shift(metas),
            "lesion_filter": _shared(m.lesion_filter for m in metas),
            "training": {
                "config": (base.training or {}).get("config", {}),
                # where the members were (a path as typed named nothing from another folder)
                "ensemble_of": [str(_resolved(m)) for m in members],
                "members": [m.training for m in metas],
                "member_logit_bias": [
                    None if m.logit_bias is None else list(m.logit_bias) for m in metas
                ],
            },
            "metrics": _ensemble_metrics(metas),
        }
    )
    # the replaced model's description goes first: a stop (or a full disk) between the files
    # below had left the ensemble's weights beside the old model's metadata (a folder that no
    # longer loads) or the old split (which evaluate would trust); now it leaves no model, and
    # `--force` finishes the job
    card = folder / "MODEL_CARD.md"
    for old in (folder / METADATA_FILE, folder / "split.json", card):
        if old.is_file():
            old.unlink()
            if old == card:  # the replaced model's card (the shipped one's) describes it
                log.info("%s: removed the replaced model's MODEL_CARD.md", folder)
    _carry_split(folder, members)
    return save_model(folder, tensors, meta)  # members > 1: the keys are kept as they are


def _stage_of(folder: Path) -> str | None:
    """The stage ``folder``'s metadata.json names (None when it cannot be read)."""
    import json

    try:
        stage = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8")).get("stage")
    except (OSError, ValueError, AttributeError):
        return None
    return stage if isinstance(stage, str) else None


def _refuse_other_stage(folder: Path, stage: str, replaced: str | None) -> None:
    """Refuse a ``stage`` ensemble over a model of the other stage (``--force`` replaced a liver
    model with a tumor ensemble, unsaid), or into a folder named for the other stage (a models
    root's ``tumor/`` is read as its tumor model: segment refused a liver model there)."""
    if replaced is not None and replaced != stage:
        raise ModelError(
            folder,
            f"holds a {replaced} model, and this is a {stage} ensemble: a model is replaced "
            f"only by one of its own stage, even with --force; give another folder (or delete "
            f"this one first if its {replaced} model is not wanted)",
        )
    named = folder.name.casefold()
    if named in ("liver", "tumor") and named != stage:
        raise ModelError(
            folder,
            f"is named {folder.name}/, and this is a {stage} ensemble: segment --models reads "
            f"a models folder's {named}/ as its {named} model (and refuses a {stage} model "
            f"there); write it to a folder named {stage}/, or one of another name",
        )


def _refuse_resume_checkpoint(member: Path, meta: ModelMetadata) -> None:
    """Refuse a training run's ``last/`` checkpoint as a member: it loads as a model, but it is
    the run's state for ``--resume``, with no logit shift calibrated and no validation score.
    Taken in, its missing shift counted as zero in the ensemble's mean shift and its missing
    score dropped the ensemble's, so a poorly validated member no longer warned when used."""
    # (or a copy of one as written; a calibrated copy has a shift: it may go in)
    if not is_resume_checkpoint(member, meta):
        return
    best = best_model_beside(member)
    instead = (
        f"give the stage folder's saved best model ({best})"
        if best is not None
        else "give a stage folder's saved best model (OUT/<stage>, beside its last/)"
    )
    raise ModelError(
        member,
        "is a training run's last/ checkpoint (its state for --resume: no logit shift "
        f"calibrated, no validation score), not a model to ensemble: {instead}; or finish the "
        "run with --resume, or copy it elsewhere and calibrate it "
        "(scripts/calibrate_shift.py) before ensembling it",
    )


def _only_model_files(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but a model's own files (no metadata.json)."""
    own = {WEIGHTS_FILE, METADATA_FILE, "split.json", "MODEL_CARD.md"}
    return (folder / WEIGHTS_FILE).is_file() and all(
        p.name in own or p.name.startswith(".") for p in folder.iterdir()
    )


def _carry_split(folder: Path, members: list[Path]) -> None:
    """The members' split.json when they all share its test list (evaluate then scores only
    patients no member trained on); else none, said (the replaced model's split is removed:
    evaluate would trust it)."""
    import json

    from ..fileio import atomic_write_text, read_user_json

    splits = []
    for member in members:
        try:
            splits.append(read_user_json(Path(member) / "split.json"))
        except (OSError, ValueError):
            splits.append(None)
    target = folder / "split.json"
    tests = [sorted(s.get("test") or []) if isinstance(s, dict) else None for s in splits]
    if tests and tests[0] and all(t == tests[0] for t in tests):
        # every member's training and validation patients are left out of the test list
        trained = set().union(
            *(set(s.get("train") or []) | set(s.get("val") or []) for s in splits)
        )
        carried = {**splits[0], "train": sorted(trained), "val": []}
        fingerprints: dict = {}  # each member's (renamed copies of any member's patients)
        for s in splits:
            fingerprints.update(s.get("fingerprints") or {})
        if fingerprints:
            carried["fingerprints"] = fingerprints
        atomic_write_text(target, json.dumps(carried, indent=2))
        return
    trained = set().union(
        *(
            set(s.get("train") or []) | set(s.get("val") or [])
            for s in splits
            if isinstance(s, dict)
        )
    )
    if trained:
        # no shared test list, but who trained each member is kept: `evaluate` then says which
        # of the patients it scores a member has seen (without this file it scored them as
        # held out, unsaid)
        fingerprints: dict = {}
        for s in splits:
            if isinstance(s, dict):
                fingerprints.update(s.get("fingerprints") or {})
        carried = {
            "train": sorted(trained),
            "val": [],
            "test": [],
            "note": "an ensemble of members tested on different patients: no shared test "
            "list; 'train' lists every patient a member trained or validated on",
            "fingerprints": fingerprints,
        }
        atomic_write_text(target, json.dumps(carried, indent=2))
    elif target.is_file():
        target.unlink()
        log.info("%s: removed the replaced model's split.json", folder)
    log.warning(
        "%s: the members were not tested on one shared set of patients (their split.json "
        "files differ or are missing): `livertumor evaluate` needs --split, or it scores every "
        "patient%s",
        folder,
        " and names those a member trained or validated on" if trained else "",
    )


def _per_run_keys() -> frozenset:
    """Training settings that differ between the members of one recipe (folds, seeds, where
    and how long each ran): the run settings a fine-tune leaves to the command line, plus the
    seed and validation/storage switches. Not worth a warning."""
    from ..training.config import RUN_KEYS

    return RUN_KEYS | {"seed", "max_val_cases", "val_every", "amp", "save_half"}


def member_shifts(metas) -> list[tuple[float, ...]]:
    """Each member's logit shift, no shift (``None``) as zeros."""
    out = []
    for m in metas:
        n = m.network.out_channels
        out.append(
            tuple(float(v) for v in m.logit_bias) if m.logit_bias is not None else (0.0,) * n
        )
    return out


def ensemble_shift(metas) -> tuple[float, ...] | None:
    """The members' mean logit shift (``None`` when it is zero).

    A shift is added to the logits, so the mean of the members' shifted logits is the mean of
    their logits plus the mean of their shifts: with it the ensemble averages the members as
    each segments on its own (dropping differing shifts ran it unshifted, and it found less
    tumor than each of its members).
    """
    shifts = member_shifts(metas)
    mean = tuple(sum(s[k] for s in shifts) / len(shifts) for k in range(len(shifts[0])))
    return None if not any(mean) else mean


def _shown(value) -> str:
    """A metadata value as a short text (``[-200, 250]``, ``true``), cut past 80 characters."""
    import json

    def whole(v):  # [-200.0, 250.0] as [-200, 250]
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, (list, tuple)):
            return [whole(x) for x in v]
        if isinstance(v, dict):
            return {k: whole(x) for k, x in v.items()}
        return v

    text = json.dumps(whole(value), default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _shared(values):
    """The value every item has, else ``None``."""
    values = list(values)
    return values[0] if all(v == values[0] for v in values) else None


def _ensemble_metrics(metas) -> dict:
    """The members' metrics, and their mean validation score (with the fewest validation
    patients any had) so that a poorly validated set of members still warns when used.

    A member none of whose validation patients had the class scored 0 by convention, not by
    its masks, and a member with no score at all says nothing of its masks: both are left out
    of the mean (which is said in ``score_is``), and the ensemble has no score only when no
    member has a real one.
    """
    metrics = [m.metrics or {} for m in metas]
    out: dict = {"members": [m.metrics for m in metas]}

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not metrics or not any(number(m.get("score")) for m in metrics):
        return out
    # a member with no score (a run without validation patients) is left out of the mean as
    # well: it dropped the ensemble's score, and with it the warning its scored members gave
    scored = [m for m in metrics if number(m.get("score")) and m.get("n_val_with_class") != 0]
    if not scored:
        if all(number(m.get("score")) for m in metrics):
            # no member ever saw the class in validation: no score, as for one of them
            out.update(score=0.0, n_val_with_class=0)
        return out
    out["score"] = sum(m["score"] for m in scored) / len(scored)
    out["score_is"] = "the members' mean validation score, not the ensemble's own" + (
        f" ({len(scored)} of {len(metrics)} members scored)" if len(scored) < len(metrics) else ""
    )
    n_val = [m.get("n_val") for m in scored]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in n_val):
        out["n_val"] = min(n_val)
    with_class = [m.get("n_val_with_class") for m in scored]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in with_class):
        out["n_val_with_class"] = min(with_class)
    return out


def _resolved(path) -> Path:
    try:
        return Path(path).resolve()
    except OSError:
        return Path(path).absolute()


def _inside(folder: Path, member) -> bool:
    """Whether ``folder`` lies below the member's folder (not the folder itself)."""
    inner, outer = _resolved(folder), _resolved(member)
    return inner != outer and inner.is_relative_to(outer)


def _same_folder(a: Path, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _weights_digest(member: Path) -> str | None:
    import hashlib

    try:
        with open(member / WEIGHTS_FILE, "rb") as fh:
            return hashlib.sha1(fh.read(), usedforsecurity=False).hexdigest()
    except OSError:
        return None  # load_model names the problem below
