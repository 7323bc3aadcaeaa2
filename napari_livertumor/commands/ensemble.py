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
    shift = (
        f"the members' shared logit shift {list(meta.logit_bias)} is kept"
        if meta.logit_bias is not None
        else "its logit shift is unset (the members' differ or have none): pick one with "
        "scripts/calibrate_shift.py"
    )
    print(f"wrote {out}: {meta.stage} ensemble of {meta.members} networks ({size:.1f} MB); {shift}")
    return 0
