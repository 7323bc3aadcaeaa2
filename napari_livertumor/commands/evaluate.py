"""``livertumor evaluate``: the two-stage pipeline on test patients, scored like the original."""

from __future__ import annotations

import sys
from pathlib import Path

from ..devices import DEVICE_HELP, device_arg
from . import models_folder


def add_arguments(parser) -> None:
    parser.add_argument(
        "--data", required=True, help="data folder with ground truth (NIfTI or HCC-TACE-Seg layout)"
    )
    parser.add_argument(
        "--models",
        type=models_folder,
        help="folder with liver/ and tumor/ models, or one model's folder (used with the "
        "shipped model for the other stage) (default, or 'default': the shipped models)",
    )
    parser.add_argument(
        "--split",
        help="split JSON whose 'test' list is evaluated (default: the models' split.json)",
    )
    parser.add_argument(
        "-o",
        "--out",
        dest="out_dir",
        help="folder for per_case.csv and summary.json (default: a new folder "
        "evaluation-<date>-<time> in the current folder)",
    )
    parser.add_argument("--device", default="auto", type=device_arg, help=DEVICE_HELP)
    parser.add_argument(
        "--refine", action="store_true", help="apply active-contour refinement to the tumor"
    )
    parser.add_argument(
        "--tta",
        default="none",
        choices=["none", "inplane", "all"],
        help="the tumor stage's mirrored passes, as in `livertumor segment --tta`",
    )
    parser.add_argument(
        "--max-cases", type=_at_least_one, help="evaluate at most this many test patients"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier evaluation in the -o folder (its per_case.csv, summary.json, "
        "lesions.csv and label maps)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with the evaluation stopped in the -o folder (Ctrl-C, an error): the "
        "patients it scored are kept, the others scored (the same data, models and options)",
    )
    parser.add_argument(
        "--save-labels",
        action="store_true",
        help="also write each patient's predicted label map, as scored, to "
        "OUT/labels/<case>_labels.nii.gz (to recompute any figure from)",
    )
    parser.add_argument(
        "--nsd-tolerance",
        type=_positive_mm,
        default=2.0,
        metavar="MM",
        help="tolerance of the surface Dice (NSD) columns, mm (default 2)",
    )


def _positive_mm(text: str) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of mm is needed, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"a positive number of mm is needed, got {text!r}")
    return value


def _at_least_one(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number is needed, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1 (leave it out for all), got {value}")
    return value


def run(args) -> int:
    from ..models.lean_import import import_monai_lean
    from ..training.evaluate import evaluate

    import_monai_lean()  # a command-line process: MONAI without what inference never uses

    import time

    from ..signals import exit_status, sigterm_as_interrupt

    made = None
    if args.resume and not args.out_dir:
        print(
            "livertumor evaluate: error: --resume needs -o, the folder of the evaluation "
            "that was stopped",
            file=sys.stderr,
        )
        return 2
    if args.resume and args.overwrite:
        print(
            "livertumor evaluate: error: --resume goes on with the stopped evaluation, "
            "--overwrite starts again: give one of them",
            file=sys.stderr,
        )
        return 2
    if not args.out_dir:  # a new folder of its own: never an earlier evaluation's files
        made = args.out_dir = _new_folder()
    started = time.time()
    try:
        with sigterm_as_interrupt():
            result = evaluate(
                args.data,
                models=args.models,
                split_file=args.split,
                out_dir=args.out_dir,
                device=args.device,
                refine=args.refine,
                tta=args.tta,
                max_cases=args.max_cases,
                overwrite=args.overwrite,
                save_labels=args.save_labels,
                nsd_tolerance_mm=args.nsd_tolerance,
                resume=args.resume,
            )
    except BaseException as exc:
        # interrupted after some cases: those are written (summary.json says interrupted)
        written = _written_now(args.out_dir, started)
        if isinstance(exc, KeyboardInterrupt) and written:
            kept = (
                "; the earlier evaluation's results (and label maps) are kept"
                if written != "per_case.csv"
                else ""
            )
            maps = ""
            if args.save_labels:  # where its maps went (beside the earlier ones' labels/)
                folder = "labels" if written == "per_case.csv" else "labels.interrupted"
                maps = f"; their label maps in {Path(args.out_dir) / folder}"
            print(
                f"livertumor evaluate: interrupted; the cases scored before it are in "
                f"{Path(args.out_dir) / written} (and its summary){maps}{kept}; to go on, run it "
                f"again with --resume -o {args.out_dir} (without --overwrite)",
                file=sys.stderr,
            )
            return exit_status(exc)
        if written:  # an error that ended the run: what it had scored is kept, and said
            print(
                f"livertumor evaluate: stopped by an error; the cases scored before it are in "
                f"{Path(args.out_dir) / written} (and its summary)",
                file=sys.stderr,
            )
        if made is not None:  # nothing written in it: not left behind
            try:
                Path(made).rmdir()
            except OSError:
                pass
        raise
    print(result["table"])
    print(
        f"per-case scores: {args.out_dir}/per_case.csv (and summary.json)"
        + (f"; label maps: {args.out_dir}/labels/" if args.save_labels else "")
    )
    if not result["summary"].get("n_cases"):
        print(
            "livertumor evaluate: error: no test patient could be scored (see 'Not evaluated')",
            file=sys.stderr,
        )
        return 1
    # a patient that should have been scored and was not (unreadable, not in the data) is a
    # failed case, as in segment and convert: exit status 1, the others' figures written
    summary = result["summary"]
    not_evaluated = summary.get("not_evaluated") or []
    failed = [n for n in not_evaluated if n.get("failed", True)]
    if failed:
        from ..training.evaluate import not_evaluated_kinds

        # counted as 'Not evaluated' counts them (a scan without a ground truth is named
        # there, and is no failure): "4 could not be scored" under "5 of the 6" read as wrong
        besides = not_evaluated_kinds(not_evaluated)[1:]
        asked = summary.get("test_patients_asked")
        print(
            f"livertumor evaluate: {len(failed)}"
            + (f" of the {asked} test patients" if asked else " test patient(s)")
            + " could not be scored (see 'Not evaluated'"
            + (f"; besides them, {', '.join(besides)}" if besides else "")
            + f"): the figures are over the {summary['n_cases']} scored",
            file=sys.stderr,
        )
        return 1
    return 0


def _written_now(out_dir, started: float) -> str | None:
    """The per-case table this (interrupted) run wrote in ``out_dir`` with its summary
    (``per_case.csv``, or ``per_case.interrupted.csv`` beside an earlier evaluation's), or None."""
    import json

    from ..training.evaluate import INTERRUPTED

    folder = Path(out_dir)
    for suffix in (INTERRUPTED, ""):
        try:
            summary = json.loads((folder / f"summary{suffix}.json").read_text(encoding="utf-8"))
            fresh = (folder / f"per_case{suffix}.csv").stat().st_mtime >= started - 1
        except (OSError, ValueError):
            continue
        if summary.get("interrupted") and fresh:
            return f"per_case{suffix}.csv"
    return None


def _new_folder() -> str:
    """A new folder ``evaluation-<date>-<time>`` in the current folder (a number added if
    taken), made now: two evaluations started in the same second never share it."""
    import time

    from ..errors import InputError

    base = time.strftime("evaluation-%Y%m%d-%H%M%S")
    name, n = base, 1
    while True:
        try:
            Path(name).mkdir()
            return name
        except FileExistsError:
            n += 1
            name = f"{base}-{n}"
        except OSError as exc:
            raise InputError(
                Path.cwd(), f"cannot make the results folder {name} here ({exc.strerror}): give -o"
            ) from exc
