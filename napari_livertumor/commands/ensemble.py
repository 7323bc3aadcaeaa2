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
    import sys

    # a usage error, as a required argument missing (docs/cli.md): one folder, or one given
    # twice
    if len({_resolved(m) for m in args.members}) < 2:
        print(
            "livertumor ensemble: error: an ensemble needs at least two different model "
            f"folders (given: {', '.join(str(m) for m in args.members)})",
            file=sys.stderr,
        )
        return 2
    from ..models import read_metadata
    from ..models.ensemble import make_ensemble, member_shifts

    out = make_ensemble(args.output, list(args.members), force=args.force)
    meta = read_metadata(out)
    size = (out / "model.safetensors").stat().st_size / 2**20
    members = [read_metadata(m) for m in args.members]
    shifts = member_shifts(members)
    if len(set(shifts)) > 1:
        shift = (
            f"the members' logit shifts differ: it adds their mean {_fmt(meta.logit_bias)} "
            "(so it averages the members as each segments; a shift of its own may suit it "
            "better: scripts/calibrate_shift.py, in the source checkout)"
        )
    elif meta.logit_bias is not None:
        shift = f"the members' shared logit shift {_fmt(meta.logit_bias)} is kept"
    else:
        shift = "the members have no logit shift"
    if meta.lesion_filter is not None:
        shift += "; their shared lesion filter is kept"
    elif len({_key(m.lesion_filter) for m in members}) > 1:
        shift += (
            "; the members' lesion filters differ, so it keeps the default one "
            "(scripts/calibrate_lesions.py picks its own)"
        )
    print(f"wrote {out}: {meta.stage} ensemble of {meta.members} networks ({size:.1f} MB); {shift}")
    return 0


def _fmt(bias) -> str:
    return "none" if bias is None else "[" + ", ".join(f"{v:g}" for v in bias) + "]"


def _key(value) -> str:
    """A hashable form of a metadata value (a list, a dict or None)."""
    import json

    return json.dumps(value, sort_keys=True, default=str)


def _resolved(path: Path) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return str(path)
