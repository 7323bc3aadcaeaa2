"""``livertumor ensemble OUT DIR DIR [...]``: one model folder that averages several models.

The members are model folders of one stage trained with one recipe (the folds of
``livertumor train --folds K --fold I``, or runs from different seeds); the ensemble's logits are
their mean. Use it like any model folder (``--models`` with ``liver/`` and ``tumor/``, or the
Segment widget). An existing OUT is kept unless ``--force``.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("output", type=Path, help="model folder to write (e.g. models/tumor)")
    parser.add_argument("members", type=Path, nargs="+", help="two or more model folders")
    parser.add_argument("--force", action="store_true", help="replace a model already in OUTPUT")


def run(args) -> int:
    from ..models import read_metadata
    from ..models.ensemble import make_ensemble

    out = make_ensemble(args.output, list(args.members), force=args.force)
    meta = read_metadata(out)
    size = (out / "model.safetensors").stat().st_size / 2**20
    if meta.logit_bias is not None:
        shift = f"the members' shared logit shift {list(meta.logit_bias)} is kept" + (
            " with their lesion filter" if meta.lesion_filter is not None else ""
        )
    elif meta.lesion_filter is not None:
        shift = "the members have no logit shift; their shared lesion filter is kept"
    else:
        members = [read_metadata(m) for m in args.members]
        why = (
            "the members' logit shifts differ"
            if len({_key(m.logit_bias) for m in members}) > 1
            else "the members' lesion filters differ"
            if len({_key(m.lesion_filter) for m in members}) > 1
            else "the members have none"
        )
        shift = (
            f"{why}, so it runs with no logit shift and the default lesion filter: calibrate "
            "them with scripts/calibrate_shift.py and scripts/calibrate_lesions.py (in the "
            "source checkout)"
        )
    print(f"wrote {out}: {meta.stage} ensemble of {meta.members} networks ({size:.1f} MB); {shift}")
    return 0


def _key(value) -> str:
    """A hashable form of a metadata value (a list, a dict or None)."""
    import json

    return json.dumps(value, sort_keys=True, default=str)
