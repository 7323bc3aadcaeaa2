"""``livertumor share-model MODELS -o OUT``: a copy of a model folder fit to share.

Patient IDs renamed ``case-NNN`` (unless ``--keep-ids``), per-patient figures and clinical notes
left out, paths cut to their last part, the run's other files not copied; the weights byte for
byte (:mod:`napari_livertumor.models.share`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import models_folder


def add_arguments(parser) -> None:
    parser.add_argument(
        "models",
        type=models_folder,
        help="a model folder, or a folder holding liver/ and tumor/ (a training run's --out)",
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="folder to write (new)")
    parser.add_argument(
        "--keep-ids",
        action="store_true",
        help="keep the patients' IDs in the split (a public cohort's, e.g. HCC-TACE-Seg); "
        "per-patient figures and paths are left out all the same",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into OUT even if it holds files, replacing a model shared there before "
        "(only its model files: other files are left alone; a liver/ or tumor/ holding any, "
        "or a model left that would stay beside the new one, is refused)",
    )


def run(args) -> int:
    from ..models.share import share_model
    from ..signals import sigterm_as_interrupt

    try:
        # SIGTERM (a plain `timeout`, a scheduler) stops it as Ctrl-C does: its hidden copy
        # in OUT removed, not left there (OUT then read "not empty" with nothing to see)
        with sigterm_as_interrupt():
            report = share_model(args.models, args.out, keep_ids=args.keep_ids, force=args.force)
    except KeyboardInterrupt as exc:
        if getattr(exc, "share_written", False):  # the stop came while the copy went in
            print(f"wrote {args.out} whole before the stop (a model shared there is replaced)")
        raise
    print(f"wrote {args.out} ({len(report.written)} files)")
    for folder, whose in report.killed_removed:
        print(f"  removed {folder}: left by a share-model run that was killed ({whose})")
    if report.replaced:
        print(f"  replaced the model shared there before: removed {', '.join(report.replaced)}")
    if args.keep_ids:
        print("  patient IDs kept (--keep-ids)")
    else:
        print(f"  {report.patients_renamed} patient ID(s) renamed case-NNN")
    if report.weak_labels_dropped or report.notes_dropped:
        print(
            f"  left out: {report.weak_labels_dropped} per-patient weak label(s), "
            f"{report.notes_dropped} clinical note(s)"
        )
    if report.paths_shortened:
        print(f"  {report.paths_shortened} path(s) cut to their last part")
    for stage in report.stopped:
        print(f"  {stage}/: no model yet (a run stopped before its first): not shared")
    for stage in report.not_models:
        print(f"  {stage}/: not a model (no metadata.json), not shared")
    if report.not_copied:
        print(f"  not copied (the run's own files): {', '.join(report.not_copied)}")
    for card in report.cards_copied:
        print(f"  {card} copied as written: read it before sharing (it is a person's text)")
    for warning in report.warnings:
        print(f"livertumor share-model: warning: {warning}", file=sys.stderr)
    return 0
