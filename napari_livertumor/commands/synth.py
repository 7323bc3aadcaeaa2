"""``livertumor synth``: write a synthetic HCC-TACE-Seg-like cohort."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument(
        "-o", "--out", required=True, help="output folder: new or empty (see --force)"
    )
    parser.add_argument("--cases", type=int, default=10, help="number of patients (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument(
        "--layout",
        choices=["tcia", "nifti"],
        default="tcia",
        help="tcia (default): HCC-TACE-Seg download layout (DICOM CT + DICOM SEG); nifti: "
        "imagesTr/labelsTr",
    )
    parser.add_argument(
        "--shape",
        choices=["small", "medium", "full"],
        default="small",
        help="small (default) 96x96x32, for fast tests; medium 256x256; full 512x512 with "
        "60-200 slices",
    )
    parser.add_argument(
        "--phase",
        choices=["non-contrast", "arterial", "portal venous"],
        default=None,
        help="force one contrast phase (default: drawn per case)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that is not empty: replace the synthetic cohort there "
        "(its cases and tables; nothing else is touched)",
    )
    parser.add_argument(
        "--quirks",
        action="store_true",
        help="tcia layout: include the real download's quirks (a second phase stacked in the "
        "series, a duplicate slice, slice positions with rounding errors, SEG frames reversed, "
        "segments numbered in another order, a PRE LIVER series beside the CT)",
    )


def run(args) -> int:
    from ..progress import Reporter
    from ..synth import make_cohort

    if args.cases < 1:
        print("livertumor synth: error: --cases must be at least 1", file=sys.stderr)
        return 2
    if args.seed < 0:
        print("livertumor synth: error: --seed must be >= 0", file=sys.stderr)
        return 2
    if args.quirks and args.layout != "tcia":
        print(
            "livertumor synth: error: --quirks are those of the DICOM download: use them with "
            "--layout tcia",
            file=sys.stderr,
        )
        return 2
    t0 = time.perf_counter()
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # one INFO line per copied module

    tty = sys.stderr.isatty()

    def progress(stage: str, done: int, total: int) -> None:
        if done < total:
            line = f"synth: case {done + 1}/{total}"
            print(
                f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True
            )

    from ..signals import exit_status, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            out = make_cohort(
                args.out,
                args.cases,
                seed=args.seed,
                layout=args.layout,
                shape=args.shape,
                quirks=args.quirks,
                phase=args.phase,
                reporter=Reporter(progress=progress),
                overwrite=args.force,
            )
    except KeyboardInterrupt as exc:
        # the patient being written is incomplete (its CT without its labels): said, with the
        # way back (the cohort is written whole again; nothing else in the folder is touched)
        if tty:
            print(file=sys.stderr)
        out = Path(args.out)
        if not out.is_dir() or not any(out.iterdir()):
            print("livertumor synth: interrupted before anything was written", file=sys.stderr)
            return exit_status(exc)
        print(
            f"livertumor synth: interrupted; {args.out} holds an incomplete cohort (the last "
            "patient may lack its labels): the same command with --force writes it again",
            file=sys.stderr,
        )
        return exit_status(exc)
    except OSError as exc:  # a full disk, a folder made read-only meanwhile: said with the way back
        if tty:
            print(file=sys.stderr)
        from ..cli import _os_error_path

        path = _os_error_path(exc)
        print(
            f"livertumor synth: error: {f'{path}: ' if path else ''}{exc.strerror or exc}",
            file=sys.stderr,
        )
        out = Path(args.out)
        if out.is_dir() and any(out.iterdir()):
            print(
                f"livertumor synth: {args.out} holds an incomplete cohort (the last patient may "
                "lack its labels): the same command with --force writes it again",
                file=sys.stderr,
            )
        return 1
    if tty:
        print(file=sys.stderr)
    print(
        f"wrote {args.cases} {args.shape} case{'s' if args.cases != 1 else ''} ({args.layout} layout) to {out} in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0
