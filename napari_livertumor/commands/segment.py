"""``livertumor segment``: one CT or a whole cohort, resumable and shardable.

Inputs (any number, mixed): a DICOM series folder (a folder holding several series of one
study: the CT series a DICOM SEG there references, else an axial original one (not a reformat or
a derived series) with the most slices, unless
``--series``), a ``.nii``/``.nii.gz`` CT, a
folder of patient folders (each subfolder, or each NIfTI file in it, is a case), or a CSV list
with a ``path`` column (relative paths are relative to the CSV) and an optional ``case`` column.

For each case it writes ``OUTDIR/<case>_labels.nii.gz`` (uint8 0/1/2 on the CT's own grid and
affine) and then ``OUTDIR/<case>_stats.json``; both are written to a temporary name and renamed,
and the stats file is written last, so a case whose stats file exists is complete. ``--dicom-seg``
adds ``OUTDIR/<case>_seg.dcm`` (a DICOM SEG of the liver and tumor referencing the CT's slices,
for a PACS or a DICOM viewer; DICOM inputs only) and ``--preview`` ``OUTDIR/<case>_preview.png``
(axial and coronal slices with the outlines, to check a batch at a glance); asked for on a
complete case, they are added from its labels file without segmenting again. Re-running the
same command skips complete cases (``--overwrite`` redoes them). ``--shard i/n`` (0 <= i < n)
processes every n-th case of the sorted case list starting at i, so n independent jobs (a SLURM
array) cover every case exactly once. Models are loaded once per process. A case that fails is
recorded in the summary CSV with its reason; the others go on, and the exit status is 1 at the end.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import dataclasses
import functools
import glob
import io
import json
import logging
import os
import re
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import memory
from ..devices import DEVICE_HELP, device_arg
from ..errors import Cancelled, InputError, LiverTumorError, ModelError, SettingsError
from ..fileio import (
    all_paths,
    atomic_write_text,
    check_path_lengths,
    check_writable_folder,
    file_lock,
    listed_path,
    name_clash_text,
    name_key,
    publish,
    remove_stale_temps,
    resolved,
    same_file,
    temp_prefix,
    walk,
    windows_path_limit,
)
from ..progress import case_log_prefix
from ..provenance import array_digest, software
from ..signals import HeldStops
from ..tables import cell_value, safe_cell
from . import acquisition_arg, models_folder

log = logging.getLogger("livertumor.segment")

SUMMARY_FIELDS = [
    "case",
    "input",
    "status",
    "error",
    "warnings",
    "liver_ml",
    "tumor_ml",
    "tumor_to_liver_ratio",
    "lesion_count",
    "unsure_lesion_count",
    "liver_mean_hu",
    "tumor_mean_hu",
    "device",
    "settings",
    "seconds",
    "labels",
    "stats",
    "dicom_seg",
    "preview",
    "lesion_map",
    # (added last: a script reading columns by place reads the others as before)
    "study_date",  # (a baseline and a follow-up of one patient told apart: blank for a NIfTI)
    "series_number",
]

#: Optional outputs of a case: the option's name in ``stats["outputs"]`` and the file's ending.
EXTRA_OUTPUTS = {
    "dicom_seg": "_seg.dcm",
    "preview": "_preview.png",
    "lesion_map": "_lesions.nii.gz",
}


@dataclass(frozen=True)
class Case:
    """One CT to segment: its output name and where to read it."""

    name: str
    path: Path
    #: of a DICOM folder holding several patients' scans, the PatientID this case reads
    patient: str | None = None
    #: named by a CSV list's ``case`` column: that name is kept (not the one outputs of this
    #: input in the output folder have, :func:`_names_its_outputs_have`)
    named: bool = dataclasses.field(default=False, compare=False, repr=False)


def add_arguments(parser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="DICOM series or study folder (or one file of a series), .nii/.nii.gz CT, folder of "
        "patient folders, folder of NIfTI files, NIfTI dataset folder (imagesTr/) or CSV list "
        "(column 'path')",
    )
    parser.add_argument(
        "-o", "--outdir", default=".", help="output folder (default: the current folder)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        type=device_arg,
        help=DEVICE_HELP,
    )
    parser.add_argument(
        "--strict-device",
        action="store_true",
        help="with --device cuda: stop when no GPU is usable, instead of running on the CPU "
        "with a warning",
    )
    parser.add_argument(
        "--models",
        metavar="DIR",
        type=models_folder,
        help="folder holding liver/ and tumor/ model folders, or one model's folder (used with "
        "the shipped model for the other stage) (default, or 'default': the shipped models)",
    )
    parser.add_argument(
        "--stages",
        default="both",
        choices=["liver", "both"],
        help="liver only, or liver + tumor (default)",
    )
    parser.add_argument(
        "--no-refine", action="store_true", help="skip the active-contour tumor refinement"
    )
    parser.add_argument("--refine-config", metavar="FILE", help="RefineConfig JSON file")
    parser.add_argument(
        "--series",
        metavar="UID",
        help="SeriesInstanceUID to segment (`livertumor convert FOLDER --list` shows each "
        "series' UID)",
    )
    parser.add_argument(
        "--acquisition",
        type=acquisition_arg,
        metavar="N",
        help="AcquisitionNumber to segment when one series stacks several phases, or the pass "
        "number (1..n) of passes stacked with no AcquisitionNumber; 'pass N' for pass N where "
        "passes are numbered apart from their AcquisitionNumbers (an acquisition holding two "
        "reconstructions, a step-and-shoot scan's chunks joined: a number that is one pass's "
        "number and another's AcquisitionNumber is refused, the passes listed); of a series "
        "stacking none, the AcquisitionNumber all its slices carry reads it whole, and of one "
        "joining parts at a seam, one part alone; '1+2' for parts of one scan joined at their "
        "seams beside passes within their stretch (their row's label, 'acq 1+2'); 'none' for "
        "the slices with no AcquisitionNumber stacked beside numbered ones (default: the "
        "one a DICOM SEG there references, else such joined parts, else the one with the most "
        "slices)",
    )
    parser.add_argument(
        "--shard",
        metavar="i/n",
        default="0/1",
        type=_shard_form,  # the form is a usage error (exit 2); the range is checked later
        help="process only shard i of n (0 <= i < n) of the sorted case list",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="redo cases whose outputs already exist"
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="print the cases found, their names and what a run would do with each (segment, "
        "skip as complete, redo, refuse), then stop: no scan is read, nothing written",
    )
    parser.add_argument(
        "--min-tumor-ml",
        type=float,
        default=None,
        metavar="ML",
        help="drop tumor components below this volume (default: the tumor model's lesion "
        "filter, else 0.1)",
    )
    parser.add_argument(
        "--min-lesion-peak",
        type=float,
        default=None,
        metavar="M",
        help="drop tumor components whose most confident voxel has a tumor logit margin "
        "below M; 0 keeps all (default: the tumor model's lesion filter, else 0)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: torch's own, OMP_NUM_THREADS where it is set, "
        "else the machine's cores; 0: every core this process may use; more than those are "
        "cut to them, with a warning)",
    )
    parser.add_argument(
        "--window-growth",
        type=float,
        default=4.0,
        metavar="G",
        help="liver stage: let sliding windows grow up to G x the trained size to cover short "
        "axes (fewer windows: faster on CPU; 1 = the trained window size; default 4)",
    )
    parser.add_argument(
        "--tumor-window-growth",
        type=float,
        nargs="+",
        default=[1.0, 4.0],
        metavar="G",
        help="the same for the tumor stage; several values average the logits of each "
        "(default 1 4: the trained window and a grown one)",
    )
    parser.add_argument(
        "--tta",
        default="none",
        choices=["none", "inplane", "all"],
        help="test-time mirroring of the tumor stage: one pass (none, the default), or the "
        "mean of each window and its left-right / front-back mirrors (inplane: 4 passes, the "
        "tumor stage about 3.4x slower on a CPU), also head-feet (all: 8)",
    )
    parser.add_argument(
        "--allow-non-ct", action="store_true", help="segment series whose modality is not CT"
    )
    parser.add_argument(
        "--dicom-seg",
        action="store_true",
        help="also write <case>_seg.dcm: a DICOM SEG of the liver and tumor that references "
        "the CT's slices, for a PACS or DICOM viewer (DICOM inputs only)",
    )
    parser.add_argument(
        "--preview",
        action="store_true",
        help="also write <case>_preview.png: axial and coronal slices with the liver and "
        "tumor outlined, to check a batch at a glance",
    )
    parser.add_argument(
        "--lesion-map",
        action="store_true",
        help="also write <case>_lesions.nii.gz: each lesion marked with its number in the "
        "stats (1 the largest), 0 elsewhere, to find lesion N in a viewer",
    )


#: InferenceConfig fields set by an option of this command: its errors name the option
_OPTION_OF = {
    "tumor_window_growth": "--tumor-window-growth",
    "window_growth": "--window-growth",
    "min_tumor_ml": "--min-tumor-ml",
    "min_lesion_peak": "--min-lesion-peak",
    "num_threads": "--threads",
}


def run(args) -> int:
    from ..pipeline import InferenceConfig

    began = time.time()  # (a summary's temporary files older than the run: a killed one's)
    shard = parse_shard(args.shard)
    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():  # said before any input is looked at
        raise InputError(outdir, "is a file: -o takes the folder to write the outputs in")
    refine_cfg = None
    if args.refine_config and args.no_refine:  # not read: said, not silently dropped
        log.warning(
            "--no-refine: --refine-config %s is not used (not even read)", args.refine_config
        )
    if args.refine_config and not args.no_refine:
        from ..refine import RefineConfig

        refine_cfg = RefineConfig.load(args.refine_config)
        # a value that is wrong or out of range is refused, like an unknown key: a run of
        # hundreds of cases must not go on with a method or number nobody asked for (a
        # max_shift_mm of -1 became 0, no limit at all; iterations -5 refined nothing, with
        # the summary saying refine=custom; a 5 HU window became the default one)
        wrong_words = (
            "unknown", "not a number", "not finite", "not a pair", "out of range",
            "narrower than", "clamped to",
        )  # fmt: skip
        wrong = [n for n in refine_cfg.validated()[1] if any(w in n for w in wrong_words)]
        if wrong:
            # no default nor clamped value is used: it stops (said as what was given)
            from ..refine.config import HU_LIMITS

            given = f"hu_window {list(refine_cfg.hu_window)} reaches outside " + (
                f"[{HU_LIMITS[0]:g}, {HU_LIMITS[1]:g}] HU"
            )
            wrong = [
                given
                if n.startswith("hu_window clamped to")
                else n.split("; using ")[0].split("; clamped")[0]
                for n in wrong
            ]
            raise InputError(
                args.refine_config,
                "; ".join(wrong) + ": fix the file (a batch does not go on with a value nobody "
                "asked for)",
            )
    kwargs = dict(
        device=args.device,
        strict_device=args.strict_device,
        stages=args.stages,
        refine=not args.no_refine,
        refine_config=refine_cfg,
        min_tumor_ml=args.min_tumor_ml,
        min_lesion_peak=args.min_lesion_peak,
        num_threads=args.threads,
        window_growth=args.window_growth,
        tumor_window_growth=tuple(args.tumor_window_growth),
        tta=args.tta,
        allow_non_ct=args.allow_non_ct,
    )
    if args.models:
        config = InferenceConfig.from_models_dir(args.models, **kwargs)
    else:
        config = InferenceConfig(**kwargs)
    try:
        config.validate()  # a bad option fails before anything is created
    except SettingsError as exc:  # named as the user typed it, not as the config field
        text = str(exc)
        for field, option in _OPTION_OF.items():
            text = text.replace(f"{field} must", f"{option} must")
        raise SettingsError(text) from None
    said = _models_used(config)
    if said:  # (only -v named them; a shipped model one stage falls back to is warned of)
        log.info("models used: %s", said)
    # dcm2niix's files a folder's search passed over; folders whose DICOM files beside NIfTI
    # files are not read; folders beside NIfTI files holding no image series (a SEG)
    passed: list[tuple[Path, str]] = []
    cases = discover_cases(
        args.inputs,
        per_patient=not args.series,
        outdir=outdir,
        passed_over=passed,
        series_uid=args.series,
        acquisition=args.acquisition,
        any_modality=args.allow_non_ct,
    )
    mine = shard_cases(cases, *shard)
    files, folders, no_series = _passed_files_and_folders(passed)
    found = f"{len(cases)} case(s) found" + (
        f"; {len(files)} file(s) passed over, not cases" if files else ""
    )
    if folders:
        found += f"; DICOM files in {len(folders)} folder(s) not read (beside NIfTI files)"
    if no_series:
        found += f"; {len(no_series)} folder(s) with no CT series passed over, not cases"
    if shard[1] > 1:  # (shard 0/1 of a plain run read as a slip)
        log.info("%s; shard %d/%d has %d", found, *shard, len(mine))
    else:
        log.info("%s", found)
    if getattr(args, "list", False):
        # the run stops here before any case (a read-only folder of complete outputs was
        # listed "skip: complete", and the run refused it)
        check_writable_folder(outdir)
        _print_plan(mine, outdir, config, args, passed)
        return 0
    name = "summary.csv" if shard[1] == 1 else f"summary_shard-{shard[0]}-of-{shard[1]}.csv"
    extras = tuple(k for k in EXTRA_OUTPUTS if getattr(args, k, False))
    _check_path_lengths(outdir, mine, extras, name)  # (not after each case is computed)
    created = not outdir.exists()
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            outdir, f"cannot create the output folder ({exc.strerror or exc})"
        ) from exc
    rows: list[dict] = []

    last_write, last_cost = [0.0], [0.0]
    printed: set[int] = set()  # the rows whose result line is on stdout

    def summary_as_it_goes(rows: list[dict]) -> None:
        # each case's line as it ends (a batch killed outright said none of them)
        _print_results(rows, outdir, printed, final=False)
        # a batch killed outright (kill -9, a node lost) leaves the summary of the cases it
        # finished; Ctrl-C and SIGTERM write it on the way out as well. A case skipped as
        # complete changes nothing on disk: those are gathered (every few seconds at most;
        # the whole file rewritten after each of 2000 skips cost a minute)
        skipped = str(rows[-1].get("status", "")).startswith("skipped")
        since = time.monotonic() - last_write[0]
        if skipped and since < 5.0:
            return
        # a summary of thousands of rows costs a noticeable part of a case to rewrite
        # (20 000 rows: 0.25 s, 40 minutes of a 20 000-case run): at most a twentieth of
        # the run goes to it, rows of the last few seconds waiting for the next write
        # (a write of tens of ms, a summary of a thousand rows, always goes out at once)
        if last_cost[0] > 0.05 and since < min(20 * last_cost[0], 30.0):
            return
        try:
            spent: dict = {}
            write_summary(rows, outdir / name, spent=spent, began=began)
            last_write[0] = time.monotonic()
            last_cost[0] = spent.get("seconds", 0.0)  # (the writing, not a wait for the lock)
        except OSError as exc:  # said once at the end if it still fails then
            log.debug("summary not written yet: %s", exc)

    try:
        check_writable_folder(outdir)  # before any case is computed, not after each
        from ..signals import sigterm_as_interrupt

        with sigterm_as_interrupt():  # a scheduler's stop ends like Ctrl-C: summary written
            run_cases(
                mine,
                outdir,
                config,
                series_uid=args.series,
                acquisition=args.acquisition,
                overwrite=args.overwrite,
                progress=_printer({c.name: (k + 1, len(mine)) for k, c in enumerate(mine)}),
                rows=rows,
                extras=extras,
                after_case=summary_as_it_goes,
            )
    except (KeyboardInterrupt, Cancelled):
        # interrupted (Ctrl-C, a job scheduler's stop): the cases finished so far are in the
        # summary too; the one being segmented left nothing (its files are written last)
        if rows and (len(cases) > 1 or _read_summary(outdir / name) is not None):
            try:
                log.warning(
                    "interrupted: %s lists the %d case(s) finished or found complete",
                    name,
                    len(rows),
                )
                write_summary(rows, outdir / name, began=began)
            except OSError:
                pass
        _print_results(rows, outdir, printed)  # the cases finished before the stop
        raise
    finally:
        if created and not any(outdir.iterdir()):  # nothing written: leave no empty folder
            outdir.rmdir()
    # one case alone writes no summary, but one already there (an earlier batch's) is kept
    # true: its row of a case redone here would otherwise tell the old figures
    written = None
    try:
        if len(cases) > 1 or _read_summary(outdir / name) is not None:
            written = write_summary(rows, outdir / name, began=began)
        _refresh_other_summaries(outdir, name, rows, began=began)
    finally:  # (a summary that cannot be written, a full disk: the cases are still said)
        _print_results(rows, outdir, printed)
        if written is not None:  # after the last case's line (it came before it)
            log.info("summary: %s", written)
        if files:  # said when the cases were found, hours before in a long batch's log
            log.warning(
                "%d file(s) passed over, not segmented (said above; --list shows why): %s",
                len(files),
                _first_few([p.name for p in files]),
            )
        if folders:
            log.warning(
                "DICOM files beside NIfTI files not read in %d folder(s) (said above; --list "
                "shows them): %s",
                len(folders),
                _first_few(folders),
            )
        if no_series:
            log.warning(
                "%d folder(s) with no CT series passed over, not segmented (said above; --list "
                "shows why): %s",
                len(no_series),
                _first_few(no_series),
            )
        failed = [r for r in rows if r["status"] == "failed"]
        if len(rows) > 1:  # a batch's failures, below its progress (one case: said above)
            for r in failed[:RESULT_LINES]:
                # a case whose earlier outputs stay (another input's, edited) was refused
                word = "refused (earlier outputs kept)" if r.get("untouched") else "failed"
                print(f"livertumor segment: {r['case']} {word}: {r['error']}", file=sys.stderr)
            if len(failed) > RESULT_LINES:
                print(
                    f"livertumor segment: … and {len(failed) - RESULT_LINES} more case(s) failed "
                    "or were refused: see the summary",
                    file=sys.stderr,
                )
        # a requested file (--dicom-seg...) not made for a reason of the system's (a full
        # disk): the case's masks and stats are written, but a script that goes on to send
        # the SEG must not read the run as complete (it exited 0, said only in a warning)
        wanted_extras = [k for k in EXTRA_OUTPUTS if getattr(args, k, False)]
        short = [
            r for r in rows
            if str(r.get("status")).startswith(("done", "skipped"))
            and any(r.get(k) == "" for k in wanted_extras if k not in r.get("cannot_have", ()))
        ]  # fmt: skip
        for r in short[:RESULT_LINES]:
            lost = [
                k.replace("_", "-")
                for k in wanted_extras
                if r.get(k) == "" and k not in r.get("cannot_have", ())
            ]
            print(
                f"livertumor segment: {r['case']}: --{', --'.join(lost)} not made (see the "
                "warnings above); run the command again to make it",
                file=sys.stderr,
            )
        if len(short) > RESULT_LINES:
            print(
                f"livertumor segment: … and {len(short) - RESULT_LINES} more case(s) without "
                "a file asked for: see the summary's warnings",
                file=sys.stderr,
            )
    return 1 if failed or short else 0


def _models_used(config) -> str:
    """The model folders each stage uses that are not the shipped ones ("the liver model
    /m/liver, the tumor model /m/tumor"); "" when every stage used is the shipped model's."""
    from ..models.checkpoint import default_model_dir

    stages = ("liver",) if config.stages == "liver" else ("liver", "tumor")
    named = []
    for stage in stages:
        folder = getattr(config, f"{stage}_model")
        if folder is None:
            continue
        try:
            shipped = Path(folder).resolve() == Path(default_model_dir(stage)).resolve()
        except OSError:
            shipped = False
        if not shipped:
            named.append(f"the {stage} model {folder}")
    return ", ".join(named)


#: seconds a case another run is writing is waited for (after the batch's other cases)
BUSY_WAIT_S = 600.0


#: the input stamps of one run, by folder (None outside a run: each looked at afresh)
_RUN_STAMPS: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "livertumor_run_stamps", default=None
)


def _stamps_of_one_run(func):
    """``func`` (a run over many cases) looks at each input folder's files once: its cases share
    the stamp (120 patients of one folder had it walked 120 times, 0.3 s each, for ``--list``)."""

    @functools.wraps(func)
    def once(*args, **kwargs):
        token = _RUN_STAMPS.set({}) if _RUN_STAMPS.get() is None else None
        try:
            return func(*args, **kwargs)
        finally:
            if token is not None:
                _RUN_STAMPS.reset(token)

    return once


def _first_few(items) -> str:
    """The first :data:`RESULT_LINES` of ``items``, comma-separated, "…" after them where there
    are more (a batch's end naming what it passed over)."""
    return ", ".join(map(str, items[:RESULT_LINES])) + (", …" if len(items) > RESULT_LINES else "")


@_stamps_of_one_run
def _print_plan(
    cases: list[Case], outdir: Path, config, args, passed: list[tuple[Path, str]] = ()
) -> None:
    """``--list``: each case's name, input and what a run would do with it (tab-separated),
    decided as the run decides (:func:`_decide`); then each file ``passed`` over (dcm2niix's
    original beside its corrected copy, its overlay masks), or folder whose DICOM files beside
    NIfTI files are not read, or which holds no image series beside them (a SEG), with an empty
    name, no case, and the words the run's log says of it: said in the log only, a plan checked
    before a long batch never showed that ``X.nii.gz`` would not be segmented, nor why."""
    extras = tuple(k for k in EXTRA_OUTPUTS if getattr(args, k, False))
    refusal: list[str | None] = []  # the models' (looked at once, when a case needs them)
    for case in cases:
        # what fails the case before anything is decided (a folder with an output's name:
        # --list said "segment again (--overwrite)", and the run failed)
        own_extras = _wanted_extras(case, extras)
        paths = (*output_paths(outdir, case), *extra_paths(outdir, case, own_extras).values())
        too_long = _name_too_long(outdir, paths)
        in_the_way = [] if too_long else [q for q in paths if q.is_dir()]
        if too_long or in_the_way:
            why = too_long or f"{in_the_way[0].name} is a folder, not a file (move it)"
            print(f"{case.name}\t{case.path}\tfail: {why}", flush=True)
            continue
        old = _complete_stats(outdir, case)
        # the files a run stopped while putting them in place left: the run removes them first
        # (or, added to a complete case, puts them in place with their stats)
        finished: list[str] = []
        if old is None:
            cleared = _clear_interrupted_publish(outdir, case, dry=True)
        else:
            old, finished, cleared = _finish_interrupted_add(outdir, case, old, dry=True)
        wanted = run_settings(case, config, args.series, args.acquisition)
        decision = _decide(
            outdir, case, old, wanted, own_extras, overwrite=args.overwrite,
            absent=set(cleared), present=set(finished),
        )  # fmt: skip
        plan = decision.plan
        locked = _cannot_read(Path(case.path)) if decision.action in ("segment", "add") else None
        if locked:  # (its read fails so: not "segment")
            print(
                f"{case.name}\t{case.path}\tfail: this folder cannot be read ({locked})", flush=True
            )
            continue
        if decision.action == "segment":  # the models are loaded for it: refused as the run is
            if not refusal:
                refusal.append(_model_refusal(config))
            if refusal[0]:
                print(f"{case.name}\t{case.path}\tfail: {refusal[0]}", flush=True)
                continue
        if cleared:
            plan += f" (a stopped run's {', '.join(cleared)} removed first)"
        if finished:
            plan += f" (a stopped run's {', '.join(finished)} put in place first)"
        print(f"{case.name}\t{case.path}\t{plan}", flush=True)
    for path, why in passed:
        print(f"\t{path}\t{why}", flush=True)


def _passed_files_and_folders(
    passed: list[tuple[Path, str]],
) -> tuple[list[Path], list[Path], list[Path]]:
    """Of what a folder's search passed over: the files (dcm2niix's), the folders whose DICOM
    files beside NIfTI files are not read (:func:`_say_loose_files`), and the folders beside
    NIfTI files holding no image series (:func:`_say_no_series`)."""
    no_series = [p for p, why in passed if why.startswith(_NO_SERIES)]
    folders = [p for p, _why in passed if p.is_dir() and p not in no_series]
    files = [p for p, _why in passed if p not in folders and p not in no_series]
    return files, folders, no_series


def _model_refusal(config) -> str | None:
    """Why the run's models would be refused, as the run says it, told without torch or
    building a network (metadata.json, the stage, the weights file whole, its tensor names,
    values and SHA-1): ``--list`` said "segment" of cases whose run was refused at once.
    None when nothing is seen."""
    from ..models.checkpoint import check_model_folder
    from ..pipeline import check_stage_folder

    for stage in ("liver",) if config.stages == "liver" else ("liver", "tumor"):
        try:
            folder = check_stage_folder(getattr(config, f"{stage}_model"), stage)
            check_model_folder(folder, stage)
        except ModelError as exc:
            return str(exc)
    return None


#: a batch prints the figures of at most this many cases (summary.csv holds them all)
RESULT_LINES = 20


def _print_results(
    rows: list[dict], outdir: Path, printed: set[int] | None = None, *, final: bool = True
) -> None:
    """One line per case segmented (or found complete): its figures and its labels file, on
    stdout (they were only in the JSON; the log lines above them are progress). Rows whose
    index is in ``printed`` were said already (as their case ended); ``final`` adds the count
    of those beyond :data:`RESULT_LINES`."""
    printed = set() if printed is None else printed
    done = [
        (k, r) for k, r in enumerate(rows) if str(r.get("status")).startswith(("done", "skipped"))
    ]
    for k, r in done[:RESULT_LINES]:
        if k in printed:
            continue
        printed.add(k)
        kept = ""
        status = str(r.get("status"))
        if status.startswith("done (added"):  # figures of the earlier run, a file added
            kept = f" (already complete; {status[len('done (') : -1]})"
        elif status.startswith("done (nothing added"):
            kept = " (already complete; nothing added: see the warnings)"
        elif status.startswith("skipped"):
            kept = " (already complete)"
            if r.get("edited"):  # (its words: :func:`_edited_since`)
                kept = f" (already complete; {r['edited']}: these are the model's)"
            if r.get("made_by"):  # (an "added" one's status says it above)
                kept = f"{kept[:-1]}; made by another version: {r['made_by']})"
        print(f"{r['case']}: {_figures(r)}{kept} -> {outdir / r['labels']}", flush=True)
    if final and len(done) > RESULT_LINES:
        print(f"… and {len(done) - RESULT_LINES} more case(s): see the summary", flush=True)


def _figures(row: dict) -> str:
    from ..stats import volume_shown

    def ml(v) -> str:
        return f"{volume_shown(v)} mL"

    warnings = row.get("warnings") or ""
    said = f"; {warnings.count(' | ') + 1} warning(s) in its stats" if warnings else ""
    if not row.get("liver_ml"):
        return "no liver found" + said
    text = f"liver {ml(row['liver_ml'])}"
    if row.get("tumor_ml") is None:
        return text + ", tumor not computed (liver only)" + said
    n = row.get("lesion_count") or 0
    ratio = row.get("tumor_to_liver_ratio")
    text += f", tumor {ml(row['tumor_ml'])}"
    if ratio is not None:
        text += f" ({100 * ratio:.1f} % of the liver)"
    return text + f", {n} lesion{'s' if n != 1 else ''}" + said


# --------------------------------------------------------------------------- cases
def discover_cases(
    inputs: list[str | Path],
    *,
    per_patient: bool = True,
    outdir: str | Path | None = None,
    passed_over: list[tuple[Path, str]] | None = None,
    series_uid: str | None = None,
    acquisition: int | str | None = None,
    any_modality: bool = False,
) -> list[Case]:
    """Expand the command's INPUTs into a sorted list of uniquely named cases. A DICOM folder
    holding several patients' scans is a case per patient unless ``per_patient`` is False
    (``--series`` names one series: its patient's folder is one case, as before). Of inputs of
    one name, the one whose outputs in ``outdir`` hold the name keeps it. ``passed_over``, when
    given, receives the NIfTI files a folder's search passed over as dcm2niix's (the original
    beside its corrected copy, an overlay mask), the folders whose DICOM files beside NIfTI
    files are not read, and the subfolders beside NIfTI files that hold no image series, only a
    SEG or other such objects (:func:`_no_series_in`), with what the log said of each, sorted
    by path (``--list`` shows them: said in the log only, a user checking the plan never saw
    them). A subfolder holding a NIfTI scan gives the cases it gives on its own
    (:func:`_nested_cases`).
    ``series_uid``, ``acquisition``, ``any_modality``: how the cases are read, where an input
    inside another reads the same series (:func:`_same_series_read`)."""
    found: list[Case] = []
    passed: dict[Path, str] = {}
    read: dict[str, Path] = {}  # the folders read, by where they are
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise InputError(path, "file or folder not found")
        if path.is_file() and path.suffix.lower() == ".csv":
            found += _cases_from_csv(path, per_patient=per_patient)
        elif path.is_file() and path.suffix.lower() in (".txt", ".lst", ".list", ".tsv"):
            # a list of inputs in a text file: read as a DICOM file, it said only "not a
            # readable DICOM file"
            raise InputError(
                path,
                "is a text file, not a scan: a list of inputs is a CSV file (.csv) with a "
                "'path' column (and optionally 'case'), one scan per row",
            )
        elif path.is_file():
            from ..io.nifti import is_nifti_path

            # one DICOM file stands for its series: named after the series' folder, not
            # "1-001.dcm" (NBIA names every series' files alike)
            named = path if is_nifti_path(path) else path.parent
            found.append(Case(_case_name(named), path))
            if is_nifti_path(path):
                _say_corrected_copy(path)
        else:
            from ..io.tcia import collection_folder

            inner = collection_folder(path)
            # one folder given twice (scans and $PWD/scans): read once (each case was said as
            # "listed twice", each file it passes over said twice, and counted twice)
            first = read.get(os.path.realpath(inner))
            if first is not None:
                log.warning(
                    "%s: given more than once%s: read once",
                    path,
                    "" if str(first) == str(path) else f" (also as {first})",
                )
                continue
            read[os.path.realpath(inner)] = path
            if inner != path:  # an NBIA download given above its collection folder
                log.info("reading the patient folders in %s (the download's collection)", inner)
            found += _cases_from_folder(inner, per_patient=per_patient, passed=passed)
    if not found:
        raise InputError(None, f"no CT found in {', '.join(str(i) for i in inputs)}")
    found, read_once = _same_series_read(found, outdir, series_uid, acquisition, any_modality)
    if passed_over is not None and passed:  # (a file also given by name is a case)
        given = {os.path.realpath(c.path) for c in found}
        passed_over += [
            (p, why) for p, why in sorted(passed.items()) if os.path.realpath(p) not in given
        ]
    if outdir is not None:
        found = _names_its_outputs_have(found, Path(outdir))
    found = _unique_sorted(found, outdir=outdir)
    _say_read_once(read_once, found)
    return found


def _same_series_read(
    cases: list[Case], outdir, series_uid=None, acquisition=None, any_modality=False
) -> tuple[list[Case], list[tuple[Case, Path, str]]]:
    """``cases`` less those inside another case's folder (a patient folder and one of its
    study or series folders, or a file of its series, given beside it; a link to one) that
    read the same series as it: one CT had been segmented twice, under two names. Decided by
    the series each reads (the headers, not the paths: of a patient folder holding a baseline
    and a follow-up, the study it does not read is a case of its own). The first given keeps
    the case, unless the other's outputs in ``outdir`` are of it (as :func:`_unique_sorted`
    keeps one scan reached by two names). With them, each input left out: ``(the case kept,
    the input, the series both read)``, said by :func:`_say_read_once` once the names are
    final (said here, it named HCC_001 a case then written as HCC_001_2)."""
    from ..io.dicom import series_read
    from ..io.nifti import is_nifti_path

    at: dict[str, list[int]] = {}  # the DICOM cases, by where they are
    for k, c in enumerate(cases):
        if not is_nifti_path(c.path):
            at.setdefault(os.path.realpath(c.path), []).append(k)
    pairs = []  # (a case, a case inside its folder)
    for real, inner in at.items():
        up, parent = real, os.path.dirname(real)
        while parent != up:
            up, parent = parent, os.path.dirname(parent)
            pairs += [(o, k) for o in at.get(up, ()) for k in inner]
    # a case's folder holding a link to another case's folder, or to one holding it or inside
    # it (HCC_001/sib_link -> ../HCC_002; self -> . beside links to patient folders): one
    # scan read through the link too, segmented twice (as HCC_002 and HCC_002_2)
    via: dict[frozenset[int], Path] = {}  # of such a pair, the link
    linked: set[int] = set()  # the cases reading through such a link
    for real, outer in at.items():
        for link, target in _folder_links(cases[outer[0]].path):
            for other, inner in at.items():
                if other != real and (
                    target == other or _is_under(other, target) or _is_under(target, other)
                ):
                    pairs += [(o, k) for o in outer for k in inner]
                    via.update({frozenset((o, k)): link for o in outer for k in inner})
                    linked.update(outer)
    if not pairs:
        return cases, []
    read: dict[int, object] = {}

    def key(k: int):
        if k not in read:
            info = series_read(cases[k].path, series_uid, acquisition=acquisition,
                               any_modality=any_modality, patient_id=cases[k].patient)  # fmt: skip
            # of a series stacking passes, the pass read too: "#4 'LIVER', acq 1"
            said = info and info.label + (
                f", {info.acquisition_label}"
                if info.acquisition is not None or info.unnumbered
                else ""
            )
            read[k] = info and (info.uid, info.acquisition, info.sop_instance_uids, said)
        return read[k]

    same: dict[object, set[int]] = {}
    for o, k in pairs:
        if key(o) is not None and key(o) == key(k):
            same.setdefault(key(o), set()).update((o, k))

    def done_here(c: Case) -> bool:
        made = _recorded_input(Path(outdir), c.name) if outdir is not None else None
        return made == (str(Path(c.path).resolve()), c.patient)

    dropped: dict[int, tuple[Case, Path, str]] = {}
    for series, group in same.items():
        ks = sorted(group)
        kept = next((k for k in ks if done_here(cases[k])), None)
        if kept is None:  # (one read through a link: the case reading it in its folder)
            kept = next((k for k in ks if k not in linked), ks[0])
        for k in ks:
            if k != kept:
                link = via.get(frozenset((k, kept)))
                said = series[3] + (f", through the link {link}" if link is not None else "")
                dropped[k] = (cases[kept], cases[k].path, said)
    kept_cases = [c for k, c in enumerate(cases) if k not in dropped]
    return kept_cases, [dropped[k] for k in sorted(dropped)]


def _folder_links(path: str | Path) -> list[tuple[Path, str]]:
    """The links to folders in the folder ``path`` (none of a file), each with the real path
    it leads to."""
    if not os.path.isdir(path):
        return []
    found = []
    for dirpath, dirnames, _ in walk(path):
        for name in sorted(dirnames):
            link = Path(dirpath, name)
            if link.is_symlink():
                found.append((link, os.path.realpath(link)))
    return found


def _is_under(path: str, folder: str) -> bool:
    """Whether the real path ``path`` lies inside the real folder ``folder``."""
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _say_read_once(read_once: list[tuple[Case, Path, str]], cases: list[Case]) -> None:
    """Says each input :func:`_same_series_read` left out, naming the case that reads its
    series as ``cases`` (the final ones, names made unique) name it."""
    for kept, path, series in read_once:
        # its name made unique (HCC_001_2), or the case of one scan kept in its place
        mine = [c for c in cases if (c.path, c.patient) == (kept.path, kept.patient)] or [
            c
            for c in cases
            if c.patient == kept.patient and _scan_of(c.path) == _scan_of(kept.path)
        ]
        log.warning(
            "%s and %s read one series (%s): segmented once, as %s",
            kept.path,
            path,
            series,
            mine[0].name if mine else kept.name,
        )


def _say_corrected_copy(path: Path) -> None:
    """A NIfTI file named on the command line is segmented as given; said when dcm2niix wrote
    a corrected copy of it beside it (which a folder's search would segment instead)."""
    from ..io.nifti import dcm2niix_copy_of

    found = dcm2niix_copy_of(path)
    if found is not None:
        log.info(
            "%s: segmented as given; dcm2niix's corrected copy of the same series, %s, is "
            "beside it (%s)",
            path,
            found[0].name,
            found[1],
        )


def _names_its_outputs_have(cases: list[Case], outdir: Path) -> list[Case]:
    """A NIfTI file of a generic name segmented into ``outdir`` before such files were named by
    their folders (``ct``, ``ct_2``): it keeps the name its outputs there have (it was segmented
    again under its folder's name, and summary.csv listed it twice)."""
    from ..io.nifti import is_nifti_path, stem_of

    out = []
    for c in cases:
        path = Path(c.path)
        stem = _safe(stem_of(path)) if is_nifti_path(path) else c.name
        # (a name a CSV list gives is the user's: kept, a new case in the folder)
        if stem != c.name and outdir.is_dir() and not c.named:
            mine = (str(path.resolve()), c.patient)
            for name in _names_in(outdir, stem):
                if _recorded_input(outdir, name) == mine:
                    log.info("%s: named %s, as its outputs in %s are", path, name, outdir)
                    c = dataclasses.replace(c, name=name)
                    break
        out.append(c)
    return out


def shard_cases(cases: list[Case], index: int, count: int) -> list[Case]:
    """Cases ``index, index + count, ...`` of the (already sorted) list."""
    return [c for k, c in enumerate(cases) if k % count == index]


def _shard_form(text: str) -> str:
    """``--shard``'s form, for argparse: ``x`` is a usage error (exit 2) like ``--device gpu``;
    ``3/2`` has the form and is refused by :func:`parse_shard` (exit 1)."""
    import argparse

    try:
        _i, _n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like i/n (e.g. 0/4), got {text!r}") from None
    return text


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise InputError(None, f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1:
        raise InputError(None, f"--shard {text}: need n >= 1 (the number of shards)")
    if not 0 <= i < n:
        raise InputError(
            None,
            f"--shard {text}: need 0 <= i < n: shards are numbered from 0 (with SLURM use "
            f"--array=0-{n - 1} for {n} shard{'s' if n > 1 else ''}, and --shard "
            f"$SLURM_ARRAY_TASK_ID/{n})",
        )
    return i, n


def _csv_text(path: Path) -> str:
    """The list's text: UTF-8 (a BOM is fine), UTF-16 with its BOM, else Windows' cp1252
    (Excel's "CSV" on Windows), as the clinical table is read."""
    from ..fileio import read_user_text

    try:
        return read_user_text(path)
    except UnicodeDecodeError:
        try:
            text = path.read_bytes().decode("cp1252")
        except UnicodeDecodeError as exc:
            raise InputError(
                path, f"unreadable CSV list: neither UTF-8 nor cp1252 ({exc})"
            ) from exc
        log.info("%s: not UTF-8; read as Windows cp1252 (Excel's CSV)", path)
        return text


def _blank_row(row: dict) -> bool:
    """Whether a CSV row holds nothing but empty cells (extra cells come as a list)."""
    cells = [c for v in row.values() for c in (v if isinstance(v, list) else [v])]
    return not any(str(c or "").strip() for c in cells)


def _cases_from_csv(path: Path, *, per_patient: bool = True) -> list[Case]:
    """The cases a list names; a listed DICOM folder holding several patients' scans is a case
    per patient, as on the command line (named ``<case>_<PatientID>`` when the row names the
    case)."""
    try:
        text = _csv_text(path)
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except (OSError, csv.Error) as exc:
        raise InputError(path, f"unreadable CSV list ({exc})") from exc
    try:
        header = next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error:
        header = []
    columns = [c.strip() for c in header]
    if "path" not in columns:
        found = ", ".join(repr(c) for c in columns[:6]) or "none"
        hint = ""
        if any(c.lower() == "path" for c in columns):
            hint = " (column names are lower case: 'path', 'case')"
        elif len(columns) == 1 and any(d in columns[0] for d in ";\t|"):
            hint = " (the columns must be separated by commas; this file uses another separator)"
        raise InputError(
            path,
            f"a case list needs a 'path' column (and optionally 'case'); columns found: "
            f"{found}{hint}",
        )
    if all(_blank_row(row) for row in rows):
        raise InputError(path, "the case list has a 'path' column but no cases under it")
    cases = []
    for k, row in enumerate(rows, start=2):
        row = {(key or "").strip(): v for key, v in row.items()}
        if _blank_row(row):
            continue  # a row of only commas (a spreadsheet's cleared cells): no case
        raw = (row.get("path") or "").strip()
        if not raw:
            raise InputError(path, f"line {k}: empty path")
        # (a list made on Windows: scans\x.nii.gz is scans/x.nii.gz; C:\... is refused)
        p = listed_path(raw, path.parent, source=path, where=f"line {k}: ")
        given = (row.get("case") or "").strip()
        case = Case(_safe(given or _case_name(p)), p, named=bool(given))
        split = _split(per_patient, case) if p.is_dir() else [case]
        if given and len(split) > 1:
            # (a case without a PatientID is already named after the row's)
            split = [
                dataclasses.replace(c, name=_safe(f"{given}_{c.name}")) if c.patient else c
                for c in split
            ]
        cases += split
    return cases


#: image files of other formats that a folder of CTs may hold; never read here
OTHER_IMAGE_SUFFIXES = (".hdr", ".img", ".mha", ".mhd", ".nrrd", ".nhdr")


def _say_loose_files(
    files: list[Path], folder: Path, passed: dict[Path, str] | None = None
) -> None:
    """Warn of scans beside NIfTI files that are not read: DICOM files loose in the folder (a
    series is read from a folder of its own) and images of other formats. They had vanished
    from the batch without a word. ``passed`` receives the folder of such DICOM files with the
    words said (``--list`` says them too: the NIfTI files are its scans, whether the folder is
    given or found in another)."""
    files = [p for p in files if not p.name.lower().endswith(_OUTPUT_ENDINGS)]  # (ours)
    dicom = [p for p in files if _looks_dicom(p)]
    # (a folder read again as part of another one given: said once)
    if dicom and not any(os.path.realpath(q) == os.path.realpath(folder) for q in passed or ()):
        text = (
            f"{len(dicom)} DICOM file(s) beside the NIfTI files are not read ({dicom[0].name}"
            f"{', ...' if len(dicom) > 1 else ''}): put a DICOM series in a folder of its own, "
            "which is then a case"
        )
        log.warning("%s: %s", folder, text)
        if passed is not None:
            passed[folder] = text
    names = {p.name.lower() for p in files}
    other = [  # (an .img is an Analyze image only beside its .hdr)
        p.name
        for p in files
        if p.suffix.lower() in OTHER_IMAGE_SUFFIXES
        and (p.suffix.lower() != ".img" or f"{p.stem.lower()}.hdr" in names)
    ]
    if other:
        log.warning(
            "%s: %s not read: only NIfTI and DICOM are (convert them to NIfTI)",
            folder,
            ", ".join(other[:4]) + (", ..." if len(other) > 4 else ""),
        )
    archives = [
        p.name for p in files if p.name.lower().endswith((".zip", ".tar", ".tgz", ".tar.gz"))
    ]
    if archives:
        log.warning(
            "%s: %s not read: an archive (extract it; a DICOM series then in a folder of its own)",
            folder,
            ", ".join(archives[:3]) + (", ..." if len(archives) > 3 else ""),
        )


def _cases_from_folder(
    folder: Path, *, per_patient: bool = True, passed: dict[Path, str] | None = None
) -> list[Case]:
    """The cases of a folder given (``passed``: :func:`_dcm2niix_passed_over`'s)."""
    from ..io.nifti import is_nifti_path

    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for debris in [p for p in entries if _passed_over(p)]:  # (it was a case: "no DICOM files")
        log.info("%s: a macOS zip's folder of AppleDouble (._*) files, no scans; skipped", debris)
        entries.remove(debris)
    niftis = [p for p in entries if p.is_file() and is_nifti_path(p)]
    # this command's own outputs (segmented into the input folder): label maps, not CTs
    ours = [p for p in niftis if _is_our_labels(p)]
    # and such a name stored as uint8 (no CT's type), beside something else to segment: a
    # label map the Python API wrote beside the patients' folders (the README's example
    # did), taken for one more case (alone in its folder it stays one, and fails naming it)
    loose = [p for p in niftis if p not in ours and _is_our_labels(p, by_type=True)]
    if loose and (
        any(p not in ours and p not in loose for p in niftis) or any(p.is_dir() for p in entries)
    ):
        ours += loose
    if ours:
        log.info(
            "%s: %d label map(s) (<case>_labels or _lesions files) skipped, not scans (%s)",
            folder,
            len(ours),
            ", ".join(p.name for p in ours[:3]) + (", ..." if len(ours) > 3 else ""),
        )
        niftis = [p for p in niftis if p not in ours]
        entries = [p for p in entries if p not in ours]
    # label maps named so beside their scans (LiTS's segmentation-N.nii): no CT to segment;
    # and a series dcm2niix wrote beside its corrected copy: the copy is the case
    masks = _label_map_files(niftis, folder)
    masks += _dcm2niix_passed_over([p for p in niftis if p not in masks], passed)
    niftis = [p for p in niftis if p not in masks]
    entries = [p for p in entries if p not in masks]
    subdirs = [p for p in entries if p.is_dir()]
    # an output folder of this command inside the input (no scan of its own) is no patient
    for sub in [d for d in subdirs if _is_output_folder(d) and not _holds_a_scan(d)]:
        log.info("%s: an output folder of this command; skipped", sub)
        subdirs.remove(sub)
        entries.remove(sub)
    # a dataset `convert` wrote inside the DICOM folder it converted (its convert.json beside
    # imagesTs/): a copy of the scans beside it, not more of them
    copies = [d for d in subdirs if _is_file(d / "convert.json")]
    if copies and (
        any(_looks_dicom(p) for p in entries if p.is_file())
        or any(_has_dicom(d) for d in subdirs if d not in copies)
    ):
        for sub in copies:
            log.info("%s: a dataset `convert` wrote of the DICOM beside it; skipped", sub)
            subdirs.remove(sub)
            entries.remove(sub)
    # a NIfTI dataset (imagesTr/ + labelsTr/, as `livertumor synth --layout nifti` writes): its
    # images are the cases, never the label maps
    dataset = [d for d in subdirs if d.name in ("imagesTr", "imagesTs")]
    if dataset and not niftis:
        return [
            Case(_case_name(p), p)
            for d in dataset
            for p in sorted(d.iterdir())
            # (not a hidden file: the temporary file of a write a kill -9 cut short)
            if p.is_file() and is_nifti_path(p) and not p.name.startswith(".")
        ]
    # a subfolder holding a NIfTI scan (beside DICOM or not, at any depth) is read as it is
    # when given on its own, its scans each a case: read as one DICOM case, its NIfTI files
    # had been left out without a word (a site's folder of patient folders and NIfTI files)
    nested = {
        sub: _nested_cases(sub, per_patient=per_patient, passed=passed)
        for sub in subdirs
        if _holds_nifti_scan(sub)
    }
    if niftis:  # NIfTI files here, and any subfolder that holds a scan is a case of its own
        _say_loose_files([p for p in entries if p.is_file() and p not in niftis], folder, passed)
        cases = [Case(_case_name(p), p) for p in niftis]
        for sub in subdirs:
            if sub in nested:
                cases += nested[sub]
            elif not _has_dicom(sub):
                log.info("%s: no DICOM or NIfTI scan in it; skipped", sub)
            elif not _say_no_series(sub, passed):  # (a SEG of a scan beside it: no case)
                cases.append(Case(_case_name(sub), sub))
        return cases
    has_own_dicom = any(_looks_dicom(p) for p in entries if p.is_file())
    if has_own_dicom or not subdirs:
        cases = _split(per_patient, Case(_case_name(folder), folder))
        return cases + [c for sub in nested for c in nested[sub]]
    if len(subdirs) == 1:
        # one patient's folder of NIfTI files (KiTS's case_00000/imaging + segmentation): its scan
        if subdirs[0] in nested:
            return nested[subdirs[0]]
        # one patient's folder named after its PatientID (a one-patient download): that patient,
        # named as convert and the training data name it; else one patient's study in a folder
        key = _owner(subdirs[0])
        if key is not None and subdirs[0].name == key[0]:
            return _split(per_patient, Case(_case_name(subdirs[0]), subdirs[0]))
        # (a folder of one site's folder of patient folders: those patients)
        return _split(per_patient, Case(_case_name(folder), folder), within=folder, passed=passed)
    # Several subfolders: one patient's series (same patient and study) or one per patient?
    owners: dict[Path, tuple[str, str]] = {}
    unreadable: list[Path] = []  # DICOM-looking files, none readable: a case that will fail
    for sub in subdirs:
        if sub in nested:
            continue
        key = _owner(sub)
        if key is not None:
            owners[sub] = key
        elif _has_dicom(sub):
            unreadable.append(sub)
    # a subfolder named after its patient (HCC_001/ holding PatientID HCC_001, as TCIA and most
    # PACS exports name them) makes this a folder of patients even with one patient in it
    named_for_patient = any(sub.name == key[0] for sub, key in owners.items())
    if len(set(owners.values())) <= 1 and not nested and not unreadable and not named_for_patient:
        # one patient's study (its series in subfolders); a sibling with no scan in it may be a
        # patient folder left empty: said, since it is not a case of its own here
        others = [sub for sub in subdirs if sub not in owners]
        if owners and others:
            log.warning(
                "%s: read as one patient's scan (%s); no scan in %s",
                folder,
                ", ".join(sub.name for sub in owners),
                ", ".join(
                    sub.name
                    + (f" (it cannot be read: {why})" if (why := _cannot_read(sub)) else "")
                    for sub in others
                ),
            )
        return _split(per_patient, Case(_case_name(folder), folder))
    # (a site's folder of patient folders among them: its patients, as when it is given)
    cases = [
        c
        for sub in owners
        for c in _split(per_patient, Case(_case_name(sub), sub), within=folder, passed=passed)
    ]
    cases += [Case(_case_name(sub), sub) for sub in unreadable]
    cases += [c for sub in nested for c in nested[sub]]
    # a patient's folder with no scan in it (empty, a report, pictures) is a case that fails
    # with its reason in the summary, not one that vanishes; an output folder is no patient
    for sub in subdirs:
        if sub in owners or sub in unreadable or sub in nested:
            continue
        why = _cannot_read(sub)
        if why:  # (mode 000: looked into, it stopped the whole batch, "Permission denied")
            log.warning("%s: this folder cannot be read (%s): a case that fails", sub, why)
        cases.append(Case(_case_name(sub), sub))
    return cases


def _split(
    per_patient: bool,
    case: Case,
    *,
    within: Path | None = None,
    passed: dict[Path, str] | None = None,
) -> list[Case]:
    """``case``, or a case per patient (:func:`_per_patient`) when its folder, or its one
    subfolder, holds DICOM files itself, as an export of several studies into one folder does.
    A TCIA-style patient folder (study/series/files) is read whole only when the first image
    of two of its studies name different patients (its files are otherwise read once, when it
    is segmented): two patients' study folders side by side had made one case, the second
    patient left out with a warning. ``within``: the folder being searched, ``case`` a folder
    in it: a folder of patient folders (a site's, :func:`_of_patient_folders`) gives the cases
    it gives when given (``passed``: :func:`_cases_from_folder`'s), not a case per PatientID
    read from every header in it (a cohort's sites/siteA/PAT_*/study/series/ took minutes,
    its patients named by PatientID, not by their folders)."""
    if not per_patient:
        return [case]
    folder = Path(case.path)
    subs = [p for p in folder.iterdir() if p.is_dir() and not _passed_over(p)]
    flat = _holds_dicom_itself(folder) or (len(subs) == 1 and _holds_dicom_itself(subs[0]))
    if flat:
        return _per_patient(case)
    level, firsts = _sampled_patients(folder)
    if len({pid for pid, _ in firsts.values()}) > 1:
        # (not the folder searched, nor one above it: a link back up, `self -> .`)
        real = os.path.realpath(level)
        searched = within is None or Path(os.path.realpath(within)).is_relative_to(real)
        if not searched and _of_patient_folders(level, firsts):
            return _cases_from_folder(level, per_patient=per_patient, passed=passed)
        return _per_patient(case)
    return [case]


def _of_patient_folders(level: Path, firsts: dict[Path, tuple[str, Path]]) -> bool:
    """Whether ``level`` (its subfolders sampled, :func:`_sampled_patients`) is a folder of
    patient folders: each subfolder with a scan named after its PatientID (TCIA's HCC_001/) or
    holding it in study folders (``PAT/study/series/*.dcm``), not a study folder itself (two
    patients' study folders side by side, ``study/series/*.dcm``, are read by PatientID)."""
    if not firsts or _holds_dicom_itself(level):
        return False
    return all(
        sub.name == pid or len(first.relative_to(sub).parts) > 2
        for sub, (pid, first) in firsts.items()
    )


def _sampled_patient_ids(folder: Path) -> set[str]:
    """The PatientIDs of the first DICOM file of each study folder under ``folder`` (one
    header per folder: a patient's studies name one patient)."""
    return {pid for pid, _ in _sampled_patients(folder)[1].values()}


def _sampled_patients(folder: Path) -> tuple[Path, dict[Path, tuple[str, Path]]]:
    """:func:`_sampled_patient_ids` with where each was read: the folder whose subfolders
    were sampled (``folder``, or the single folders of a download below it) and, of each
    subfolder, the PatientID of its first DICOM scan file and that file."""
    import pydicom

    from ..io.dicom import refuse_deflate_bomb

    level = base = folder
    subs: list[Path] = []
    for _ in range(3):  # a download's single folders down to the studies
        try:
            subs = [p for p in sorted(level.iterdir()) if p.is_dir() and not _passed_over(p)]
        except OSError:  # (a study folder of mode 000: the case's read says so)
            break
        base = level
        if len(subs) != 1 or _holds_dicom_itself(level):
            break
        level = subs[0]
    ids: dict[Path, tuple[str, Path]] = {}
    for sub in subs:
        first = next(
            (p for p in sorted(all_paths(sub)) if p.is_file() and not p.name.startswith(".")
             and _looks_dicom(p)),
            None,
        )  # fmt: skip
        if first is None:
            continue
        try:
            refuse_deflate_bomb(first)  # (pydicom would inflate it whole first)
            ds = pydicom.dcmread(
                first, stop_before_pixels=True, specific_tags=["PatientID", "Modality"]
            )
        except Exception:  # noqa: BLE001 - unreadable: the case's read says so
            continue
        if str(ds.get("Modality", "")).upper() in _NOT_SCANS:
            continue  # another tool's SEG or report (its PatientID written otherwise)
        ids[sub] = (str(ds.get("PatientID", "")).strip(), first)
    return base, ids


#: modalities of a series folder that holds no scan: the patient's scans decide
_NOT_SCANS = frozenset({"SEG", "SR", "RTSTRUCT", "PR", "KO", "DOC", "REG", "RTPLAN", "RTDOSE"})

#: each of those in a few words, as a folder holding only such files is said to
_NOT_SCAN_WORDS = {
    "SEG": "a DICOM SEG (segmentation)",
    "RTSTRUCT": "a DICOM RTSTRUCT (contours)",
    "SR": "a DICOM SR (structured report)",
    "PR": "a DICOM presentation state",
    "KO": "a DICOM key object selection",
    "DOC": "a DICOM encapsulated document",
    "REG": "a DICOM registration",
    "RTPLAN": "a DICOM RT plan",
    "RTDOSE": "a DICOM RT dose",
}

#: how the words said of a folder holding no image series begin (told from the others passed
#: over by them: :func:`_passed_files_and_folders`)
_NO_SERIES = "holds only "


def _no_series_in(folder: Path) -> str | None:
    """What ``folder``'s DICOM files are where each is read and none is an image (a SEG, a
    report: ``"a DICOM SEG (segmentation)"``); None where one is an image or cannot be read (a
    series that is broken is a case, which fails saying why)."""
    import pydicom

    from ..io.dicom import refuse_deflate_bomb

    kinds: set[str] = set()
    for p in sorted(all_paths(folder)):
        if not p.is_file() or p.name.startswith(".") or not _looks_dicom(p):
            continue
        try:
            refuse_deflate_bomb(p)  # (pydicom would inflate it whole first)
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:  # noqa: BLE001 - unreadable: the case's read says why
            return None
        modality = str(ds.get("Modality", "")).strip().upper()
        if modality not in _NOT_SCANS:
            return None
        kinds.add(modality)
    if not kinds:
        return None
    return " and ".join(_NOT_SCAN_WORDS[k] for k in sorted(kinds))


def _say_no_series(folder: Path, passed: dict[Path, str] | None = None) -> bool:
    """Whether ``folder``, beside NIfTI files, holds no image series (:func:`_no_series_in`):
    then said, and put in ``passed`` with the words (``HCC_001_seg/`` holding the SEG of
    ``HCC_001.nii.gz`` beside it was a case that failed: "no CT here")."""
    held = _no_series_in(folder)
    if held is None:
        return False
    text = f"{_NO_SERIES}{held}, no CT series: passed over, not a case"
    # (a folder read again as part of another one given: said once)
    if not any(os.path.realpath(q) == os.path.realpath(folder) for q in passed or ()):
        log.warning("%s: %s", folder, text)
        if passed is not None:
            passed[folder] = text
    return True


def _holds_dicom_itself(folder: Path) -> bool:
    try:
        return any(p.is_file() and _looks_dicom(p) for p in folder.iterdir())
    except OSError:  # cannot be read: the case's read says why
        return False


def _passed_over(path: Path) -> bool:
    """A hidden file or folder, or a macOS zip's ``__MACOSX`` folder (AppleDouble ``._*``
    copies of the files beside it, no scans), as the reader passes them over."""
    from ..io.dicom import MACOS_ZIP_FOLDER

    return path.name.startswith(".") or path.name == MACOS_ZIP_FOLDER


def _is_file(path: Path) -> bool:
    """``path.is_file()``; False where it cannot be looked at (inside a folder of mode 000,
    Python 3.11 raises "Permission denied": it stopped a whole batch)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _cannot_read(folder: Path) -> str | None:
    """Why the folder ``folder`` cannot be read ("permission denied": mode 000, or a folder
    that is listed but not entered), or None (a file; a folder that can be)."""
    from ..io.dicom import os_problem

    try:
        if not folder.is_dir():
            return None
        with os.scandir(folder) as listing:
            first = next(listing, None)
            if first is not None:
                os.stat(first.path, follow_symlinks=False)
    except OSError as exc:
        return os_problem(exc)
    return None


def _per_patient(case: Case) -> list[Case]:
    """``case``, or one case per patient when its DICOM folder holds several patients' scans
    (a PACS export of many studies into one folder): each named by its PatientID and reading
    that patient's scan only. One patient had been read and the others left with a warning
    (``convert`` then advised a dataset folder, which did the same). The headers read here are
    kept (:mod:`napari_livertumor.io.dicom`): reading the case parses none of them again."""
    ids = _patient_ids(case.path)
    if len(ids) <= 1:
        return [case]
    log.warning(
        "%s holds the scans of %d patients (%s): each is a case of its own, named by its PatientID",
        case.path,
        len(ids),
        ", ".join(repr(i) for i in ids[:6]) + (" …" if len(ids) > 6 else ""),
    )
    return [
        Case(_safe(pid) if pid else f"{case.name}_no_patient_id", case.path, patient=pid)
        for pid in ids
    ]


def _patient_ids(folder: Path) -> list[str]:
    """The PatientIDs of the image series in ``folder``'s tree, sorted, as the reader groups
    them (a series is its first image's patient's: a few files re-sent under another ID, or
    another patient's SEG or report, make no case of their own)."""
    from ..io.dicom import discover_series

    try:
        return sorted({s.patient_id for s in discover_series(folder) if s.is_image})
    except LiverTumorError:  # unreadable: the case fails with the reader's message
        return []


def _holds_a_scan(folder: Path) -> bool:
    """Any DICOM image or NIfTI CT in ``folder``'s tree? Not this command's (or Export's) own
    files: masks named ``*_labels``, ``*_liver``, ``*_tumor``, DICOM SEGs, hidden temporary
    files a stopped run left."""
    import pydicom

    from ..io.dicom import refuse_deflate_bomb
    from ..io.nifti import is_nifti_path

    ours = re.compile(r".*_(labels|liver|tumor)\.nii(\.gz)?$", re.IGNORECASE)
    for p in sorted(all_paths(folder)):
        if not p.is_file() or p.name.startswith("."):
            continue
        if is_nifti_path(p) and not ours.match(p.name):
            return True
        if _looks_dicom(p):
            try:
                refuse_deflate_bomb(p)  # (pydicom would inflate it whole first)
                ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["Modality"])
            except Exception:  # noqa: BLE001 - unreadable: not a scan we could use
                continue
            if str(ds.get("Modality", "")) not in ("SEG", "SR", "RTSTRUCT", "PR", "KO"):
                return True
    return False


def _is_output_folder(folder: Path) -> bool:
    """A folder ``livertumor segment`` wrote into: a case's stats, or a batch summary."""
    return (
        any(folder.glob("*_stats.json"))
        or _is_file(folder / "summary.csv")  # (False in a folder that cannot be read)
        or any(folder.glob("summary_shard-*-of-*.csv"))
    )


def _is_our_labels(path: Path, by_type: bool = False) -> bool:
    """``<case>_labels.nii[.gz]`` (or ``--lesion-map``'s ``<case>_lesions.nii[.gz]``) beside
    its ``<case>_stats.json`` (or, from a run killed between its writes, beside the case's own
    input): an output of this command. (A lesion map written into the input folder was read
    back as a case: a CT of 40 lesions segmented as a 1 L liver.) ``by_type``: or so named
    and stored as uint8, a label map's type (one the Python API wrote)."""
    for suffix in ("_labels.nii.gz", "_labels.nii", "_lesions.nii.gz", "_lesions.nii"):
        if path.name.endswith(suffix):
            stem = path.name[: -len(suffix)]
            folder = path.parent
            return (
                (folder / f"{stem}_stats.json").is_file()
                or any((folder / f"{stem}{ext}").is_file() for ext in (".nii.gz", ".nii"))
                or folder.name == stem  # segmented into its own DICOM folder
                or (by_type and _stored_as_uint8(path))  # (``by_type``: the name and uint8)
            )
    return False


def _stored_as_uint8(path: Path) -> bool:
    """Whether the NIfTI file's header stores uint8 voxels (its header only is read)."""
    try:
        import nibabel as nib

        return nib.load(str(path)).header.get_data_dtype() == "uint8"
    except Exception:  # unreadable here: the case's own read says why
        return False


def _holds_nifti_scan(folder: Path) -> bool:
    """Whether a NIfTI file a folder's search reads as a scan lies in ``folder``'s tree: not
    this command's or Export's masks, nor, in a tree holding DICOM, one named as a label map
    (a patient's DICOM folder with its ``liver_mask.nii.gz`` stays a DICOM case) or one of a
    dataset ``convert`` wrote there (its ``convert.json`` beside ``imagesTs/``: a copy)."""
    from ..io.nifti import is_nifti_path, named_as_label_map

    ours = re.compile(r".*_(labels|liver|tumor)\.nii(\.gz)?$", re.IGNORECASE)
    nii = [
        p
        for p in all_paths(folder)
        if p.is_file() and not p.name.startswith(".") and is_nifti_path(p)
        and not ours.match(p.name) and not _is_our_labels(p)
    ]  # fmt: skip
    if not nii or not _has_dicom(folder):
        return bool(nii)

    def converted(p: Path) -> bool:
        up = p.parent
        while up != folder and folder in up.parents:
            if (up / "convert.json").is_file():
                return True
            up = up.parent
        return (folder / "convert.json").is_file()

    return any(not named_as_label_map(p) and not converted(p) for p in nii)


def _nested_cases(
    sub: Path, *, per_patient: bool = True, passed: dict[Path, str] | None = None
) -> list[Case]:
    """The cases of a subfolder holding a NIfTI scan (:func:`_holds_nifti_scan`): those it
    gives on its own (:func:`_cases_from_folder`), a patient's folder of one NIfTI scan named
    by the folder (``P001/scan.nii.gz``, ``P001/images/scan.nii.gz``: ``P001``), as a DICOM
    patient folder is; not by a folder of a generic name (``images/``, ``scans/``: the file's
    own name, :func:`io.nifti.case_name`'s; ``P1`` given, its ``images/ct.nii.gz`` was
    ``images``)."""
    from ..io.nifti import GENERIC_NAMES, is_nifti_path

    cases = _cases_from_folder(sub, per_patient=per_patient, passed=passed)
    if len(cases) == 1 and is_nifti_path(cases[0].path) and sub.name.lower() not in GENERIC_NAMES:
        return [dataclasses.replace(cases[0], name=_case_name(sub))]
    return cases


def _label_map_files(niftis: list[Path], folder: Path) -> list[Path]:
    """Of a folder's NIfTI files, those named as label maps (:func:`io.nifti.named_as_label_map`:
    LiTS's ``segmentation-0.nii``, KiTS's ``segmentation.nii.gz``) where a scan is beside them;
    said once (they were segmented as CTs, each a failed case)."""
    from ..io.nifti import named_as_label_map

    masks = [p for p in niftis if named_as_label_map(p) and not p.name.startswith(".")]
    if not masks or len(masks) == len(niftis):  # only label maps: left to fail, named
        return []
    log.warning(
        "%s: %d file(s) named as label maps skipped, not scans (%s)",
        folder,
        len(masks),
        ", ".join(p.name for p in masks[:3]) + (", ..." if len(masks) > 3 else ""),
    )
    return masks


def _dcm2niix_passed_over(niftis: list[Path], said: dict[Path, str] | None = None) -> list[Path]:
    """Of a folder's NIfTI files, those dcm2niix wrote beside a corrected copy of the same
    series (``X`` beside ``X_Tilt_1`` or ``X_Eq_1``: :func:`io.nifti.dcm2niix_passed_over`),
    each said with why: the tilted original and its corrected copy had been segmented as two
    patients. Named on the command line, such a file is segmented as given. ``said`` receives
    each file with the words said of it (``--list`` and the batch's end say them too)."""
    from ..io.nifti import dcm2niix_passed_over

    passed = dcm2niix_passed_over(niftis)
    # a file already said (a folder read again as part of another one given): said once
    before = {os.path.realpath(q) for q in said} if said else set()
    for p, (kept, why) in passed.items():
        if os.path.realpath(p) in before:
            continue
        if kept is None:
            text = f"passed over: {why}, not a scan"
        else:
            text = (
                f"passed over: dcm2niix's corrected copy of the same series, {kept.name}, is "
                f"segmented instead ({why}); give this file by name to segment it"
            )
        log.warning("%s: %s", p, text)
        if said is not None:
            said[p] = text
    return list(passed)


def _has_dicom(folder: Path) -> bool:
    return any(p.is_file() and _looks_dicom(p) for p in all_paths(folder))


def _owner(folder: Path) -> tuple[str, str] | None:
    """(PatientID, StudyInstanceUID) of the first readable DICOM file under ``folder``."""
    import pydicom

    from ..io.dicom import refuse_deflate_bomb

    for p in sorted(all_paths(folder)):
        if p.is_file() and _looks_dicom(p):
            try:
                refuse_deflate_bomb(p)  # (pydicom would inflate it whole first)
                ds = pydicom.dcmread(
                    p, stop_before_pixels=True, specific_tags=["PatientID", "StudyInstanceUID"]
                )
            except Exception:  # noqa: BLE001 - any unreadable file: try the next one
                continue
            return (str(ds.get("PatientID", "")), str(ds.get("StudyInstanceUID", "")))
    return None


def _looks_dicom(path: Path) -> bool:
    """What the reader takes for DICOM (old exports without a preamble too), or a .dcm name;
    not what it passes over: a DICOMDIR (a CD's index: beside the patients' folders, it made
    their folder one case) nor a hidden file (macOS's AppleDouble ``._1-001.dcm``)."""
    from ..io.dicom import is_dicom_file

    if path.name.startswith(".") or path.name.upper() == "DICOMDIR":
        return False
    return is_dicom_file(path) or path.suffix.lower() == ".dcm"


def _case_name(path: Path) -> str:
    """A folder's name; a NIfTI file's name without its suffix, or its folder's where the
    file's name says nothing of whose scan it is (TotalSegmentator's ``s0001/ct.nii.gz``:
    ``s0001``, as the panels name it; several were ``ct``, ``ct_2``..., and a loop giving one
    at a time found the second's name taken by the first's outputs)."""
    from ..io.nifti import case_name, is_nifti_path

    name = case_name(path) if is_nifti_path(path) else path.name
    return _safe(name or "case")


def _safe(name: str) -> str:
    from ..fileio import safe_name

    return safe_name(name)


def _scan_of(path: str | Path) -> str:
    """What a case's input is, whatever path names it: the real path of a NIfTI file or a
    folder; for a DICOM file, which stands for its series, its folder and series UID (two
    files of one series are one scan; of two series sharing a folder, two)."""
    real = os.path.realpath(path)
    if os.path.isdir(real):
        # a series folder (files, no folders): the scan of its files (a file of it given
        # beside it is that scan)
        try:
            entries = sorted(os.scandir(real), key=lambda e: e.name)
        except OSError:
            return real
        if entries and not any(e.is_dir() for e in entries):
            first = next((e.path for e in entries if not e.name.startswith(".")), None)
            return _series_key(first) or real if first else real
        return real
    if os.path.isfile(real):
        from ..io.nifti import is_nifti_path

        if not is_nifti_path(real):
            return _series_key(real) or real
    return real


def _series_key(path: str) -> str | None:
    """``"<folder> (series <UID>)"`` of a DICOM file, or None (not DICOM, no UID)."""
    import pydicom

    from ..io.dicom import refuse_deflate_bomb

    try:
        refuse_deflate_bomb(path)  # (pydicom would inflate it whole first)
        uid = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"]
        ).get("SeriesInstanceUID")
    except Exception:  # noqa: BLE001 - unreadable: the file itself (said when read)
        return None
    return f"{os.path.dirname(os.path.realpath(path))} (series {uid})" if uid else None


def _unique_sorted(cases: list[Case], outdir: str | Path | None = None) -> list[Case]:
    """Sorted, each name once: a second input of a name gets ``_2`` (``_3``…), never a name
    another input has (``x_2.nii.gz`` beside two inputs named ``x``). The input whose stats
    in ``outdir`` record it keeps its name (a run given one more input of a finished folder's
    names renamed the finished cases, segmented them again, and refused the new input).

    Names are compared as a case-insensitive file system does (macOS, Windows: ``HCC_001``
    and ``hcc_001`` are one file there), after Unicode normalisation (macOS stores é as e + ´).
    """

    key = name_key

    # of two inputs of one name, the folder or file named so keeps it before a patient's scans
    # found in a folder named otherwise (a study misfiled into HCC_005's folder took the name
    # HCC_006, and the real HCC_006, with its labels and clinical row, became HCC_006_2)
    def named_after(c: Case) -> bool:
        return key(_case_name(Path(c.path))) == key(c.name)

    cases = list(set(cases))

    # one scan reached by two names (links to one patient folder, a list naming it twice, a
    # series given by one of its files and by its folder): segmented once, said. The one whose
    # outputs the folder holds keeps them (the other name's would segment it again)
    def done_here(c: Case) -> bool:  # (by the scan: another file of its series is it too)
        made = _recorded_input(Path(outdir), c.name) if outdir is not None else None
        return made is not None and made[1] == c.patient and _scan_of(made[0]) == _scan_of(c.path)

    by_target: dict[tuple[str, str | None], list[Case]] = {}
    for c in cases:
        by_target.setdefault((_scan_of(c.path), c.patient), []).append(c)
    cases = []
    for (target, _), group in by_target.items():
        group.sort(key=lambda c: (not done_here(c), not named_after(c), key(c.name), str(c.path)))
        cases.append(group[0])
        for other in group[1:]:
            if os.path.abspath(other.path) != os.path.abspath(group[0].path):
                how = f"{group[0].path} and {other.path} are one scan ({target})"
            elif other.name != group[0].name:
                how = f"listed twice (as {group[0].name} and {other.name})"
            else:  # ("listed twice (as D_Eq_1 and D_Eq_1)" of D_Eq_1.nii and of D_Eq_1.nii.gz)
                log.warning("%s: listed twice: segmented once", group[0].path)
                continue
            log.warning("%s: segmented once, as %s", how, group[0].name)
    counts: dict[str, int] = {}
    for c in cases:
        counts[key(c.name)] = counts.get(key(c.name), 0) + 1
    # of a name several inputs have: the names the folder's outputs record for each input
    # (x, x_2, x_3…), so every input keeps the name its finished outputs have
    recorded: dict[tuple[str, str | None], str] = {}
    for base in sorted({c.name for c in cases if counts[key(c.name)] > 1}):
        for name in _names_in(outdir, base) if outdir is not None else []:
            made = _recorded_input(Path(outdir), name)
            if made is not None:
                recorded.setdefault(made, name)

    def own_name(c: Case) -> str | None:
        return recorded.get((str(Path(c.path).resolve()), c.patient))

    cases = sorted(
        cases,
        key=lambda c: (
            key(c.name),
            own_name(c) != c.name,
            not named_after(c),
            c.name,
            str(c.path),
            c.patient or "",
        ),
    )
    taken = {key(c.name) for c in cases}
    used: set[str] = {key(n) for c in cases if (n := own_name(c)) is not None}
    first: dict[str, str] = {}  # the name that holds a key
    inputs_named: dict[str, int] = {}
    for c in cases:
        inputs_named[key(c.name)] = inputs_named.get(key(c.name), 0) + 1
    out = []
    for c in cases:
        mine = own_name(c)
        if mine is not None and mine == c.name:  # its outputs there: it keeps its name
            first.setdefault(key(c.name), c.name)
            out.append(c)
            continue
        if mine is None and key(c.name) not in used:
            used.add(key(c.name))
            first.setdefault(key(c.name), c.name)
            out.append(c)
            continue
        if mine is not None:  # written as x_2 before: x_2 again
            new = mine
        else:
            n = 2
            while key(f"{c.name}_{n}") in taken or key(f"{c.name}_{n}") in used:
                n += 1
            new = f"{c.name}_{n}"
            used.add(key(new))
        other = first.get(key(c.name), c.name)
        # one patient of a folder holding several: which one (their folder names them all)
        which = f"{c.path} (PatientID {c.patient!r})" if c.patient is not None else c.path
        log.warning(name_clash_text(inputs_named[key(c.name)], other, c.name, which, new))
        out.append(dataclasses.replace(c, name=new))  # its patient too
    return sorted(out, key=lambda c: (c.name, str(c.path), c.patient or ""))


def _names_in(outdir: str | Path, base: str) -> list[str]:
    """The case names ``base``, ``base_2``, ``base_3``… whose stats are in ``outdir``."""
    folder = Path(outdir)
    if not folder.is_dir():
        return []
    names = []
    for stats in folder.glob(f"{glob.escape(base)}*_stats.json"):
        name = stats.name[: -len("_stats.json")]
        if name == base or re.fullmatch(re.escape(base) + r"_\d+", name):
            names.append(name)
    return sorted(names, key=lambda n: (len(n), n))


def _recorded_input(outdir: Path, name: str) -> tuple[str, str | None] | None:
    """``(input, patient)`` a case's stats in ``outdir`` were made from; None if unknown."""
    try:
        stats = json.loads((outdir / f"{name}_stats.json").read_text(encoding="utf-8"))
        made = stats.get("run_settings") or {}
        path = made.get("input") or stats.get("input")
        return (str(Path(path).resolve()), made.get("patient")) if path else None
    except (OSError, ValueError, AttributeError, TypeError):
        return None


# --------------------------------------------------------------------------- running
def output_paths(outdir: Path, case: Case) -> tuple[Path, Path]:
    return outdir / f"{case.name}_labels.nii.gz", outdir / f"{case.name}_stats.json"


def extra_paths(outdir: Path, case: Case, extras=tuple(EXTRA_OUTPUTS)) -> dict[str, Path]:
    """``{"dicom_seg": OUTDIR/<case>_seg.dcm, "preview": OUTDIR/<case>_preview.png}`` (those
    in ``extras``)."""
    return {k: outdir / f"{case.name}{EXTRA_OUTPUTS[k]}" for k in extras}


def _wanted_extras(case: Case, extras) -> tuple[str, ...]:
    """The optional outputs this case can have: no DICOM SEG of a NIfTI input."""
    from ..io.nifti import is_nifti_path

    nifti = Path(case.path).is_file() and is_nifti_path(case.path)
    return tuple(k for k in extras if not (k == "dicom_seg" and nifti))


def _complete_stats(outdir: Path, case: Case) -> dict | None:
    """The stats of a case whose outputs are complete (both files, the stats written last and
    saying complete), else None."""
    labels, stats = output_paths(outdir, case)
    if not (labels.is_file() and stats.is_file()):
        return None
    try:
        data = json.loads(stats.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("complete") else None


#: InferenceConfig fields that change the masks (device, threads and batch size do not).
_RESULT_SETTINGS = (
    "liver_model",
    "tumor_model",
    "stages",
    "refine",
    "refine_config",
    "min_tumor_ml",
    "min_lesion_peak",
    "min_liver_ml",
    "sw_overlap",
    "window_growth",
    "tumor_window_growth",
    "tta",
    "fill_holes",
    "allow_non_ct",
)


def run_settings(case: Case, config, series_uid=None, acquisition=None) -> dict:
    """What a case's outputs were made from: the input (absolute) and the settings that matter.

    Recorded in ``<case>_stats.json``: a later run skips the case when they are equal, redoes it
    (with a warning) when only the settings differ, and refuses outputs of another input.
    """
    import dataclasses

    from ..models.checkpoint import default_model_dir

    settings = {}
    liver_only = config.stages == "liver"
    for name in _RESULT_SETTINGS:
        value = getattr(config, name)
        if liver_only and name in _TUMOR_ONLY_SETTINGS:
            value = None  # no tumor stage: these change nothing
        elif name.endswith("_model") and value is not None:
            value = str(Path(value).resolve())
        elif dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        settings[name] = value
    from ..io.nifti import is_nifti_path

    if Path(case.path).is_file() and is_nifti_path(case.path):
        # --series / --acquisition pick among DICOM series: on a NIfTI file they change
        # nothing (a NIfTI case of a batch run with them was redone when run without)
        series_uid = acquisition = None
    record = {"input": str(Path(case.path).resolve()), "series_uid": series_uid}
    if acquisition is not None:  # absent when not asked: earlier runs' records stay equal
        record["acquisition"] = acquisition
    if case.patient is not None:  # one patient of a folder holding several
        record["patient"] = case.patient
    record.update(settings)
    # the liver stage's mirror at the image's edge (Python API only): recorded when not the
    # default, so earlier runs' records (made before it) stay equal to a default run's
    from ..pipeline import InferenceConfig

    mirror = getattr(config, "border_mirror_mm", None)
    if mirror is not None and mirror != InferenceConfig.border_mirror_mm:
        record["border_mirror_mm"] = mirror
    # what the files were when the outputs were made: a CT replaced at the same path, or a
    # model retrained in place, makes the outputs stale
    record["input_stamp"] = _content_stamp(Path(case.path))
    stages = ("liver",) if liver_only else ("liver", "tumor")
    record["model_stamps"] = {
        stage: _model_stamp(Path(getattr(config, f"{stage}_model") or default_model_dir(stage)))
        for stage in stages
    }
    # as it reads back from the file, and in the one form every record is compared in (the
    # shipped models as None, the refinement's values as they ran)
    return _as_recorded_now(json.loads(json.dumps(record, default=str)))


#: Settings of the tumor stage and its refinement: not recorded for a liver-only run.
_TUMOR_ONLY_SETTINGS = (
    "tumor_model",
    "refine",
    "refine_config",
    "min_tumor_ml",
    "min_lesion_peak",
    "tumor_window_growth",
    "tta",
)

#: Recorded since 0.x: an older record without them is not taken for a change.
_STAMPS = ("input_stamp", "model_stamps")


def _content_stamp(path: Path, *, every_file: bool = False) -> str | None:
    """Size and modification time of a file, or of the files a folder's case reads (count, total
    size, latest time: the DICOM files of its tree, as the reader finds them; this command's own
    outputs left out); None when it cannot be read. A note, a spreadsheet or a screenshot added
    beside the slices changes nothing read, so it is no change ("segment again" for a whole
    cohort). ``every_file``: every file of the tree counted, as the stamps recorded before
    (``"N files, …"``) were, to compare them like with like. Each folder is looked at once in a
    run (:func:`_stamps_of_one_run`): a folder of many patients' scans is a case per patient."""
    stamps = _RUN_STAMPS.get()
    key = (os.fspath(path), every_file)
    if stamps is not None and key in stamps:
        return stamps[key]
    stamp = _stamp_files(path, every_file)
    if stamps is not None:
        stamps[key] = stamp
    return stamp


def _stamp_files(path: Path, every_file: bool) -> str | None:
    try:
        if path.is_file():
            st = path.stat()
            return f"{st.st_size}:{st.st_mtime_ns}"
        if not path.is_dir():
            return None
        count = size = latest = 0
        for p in all_paths(path):
            name = p.name
            if name.startswith(".") or name.endswith(_OUTPUT_ENDINGS) or ".tmp" in name:
                continue
            if not every_file and name.upper() == "DICOMDIR":  # (an index: the reader skips it)
                continue
            # (a .dcm name is not opened: _looks_dicom reads the others' first bytes)
            if p.is_file() and (every_file or p.suffix.lower() == ".dcm" or _looks_dicom(p)):
                st = p.stat()
                count, size, latest = count + 1, size + st.st_size, max(latest, st.st_mtime_ns)
        return f"{count} {'files' if every_file else 'DICOM files'}, {size}:{latest}"
    except OSError:
        return None


def _stamped_every_file(stamp) -> bool:
    """Whether a recorded input stamp is of a folder's every file (recorded before 7 Dec 2026)."""
    return isinstance(stamp, str) and re.fullmatch(r"\d+ files, \d+:\d+", stamp) is not None


_OUTPUT_ENDINGS = (
    "_labels.nii.gz",
    "_labels.nii",
    "_stats.json",
    ".csv",
    "_seg.dcm",
    "_preview.png",
)


def _model_stamp(folder: Path) -> str | None:
    """A digest of a model's weights and metadata (its calibration: logit bias, lesion filter,
    HU window live there): the same model copied or reinstalled is no change, one retrained or
    recalibrated in place is."""
    parts = []
    for name in ("model.safetensors", "metadata.json"):
        path = folder / name
        try:
            st = path.stat()
        except OSError:
            return None
        parts.append(_digest(str(path.resolve()), st.st_size, st.st_mtime_ns))
    return ":".join(parts)


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-1 of a file, once per (path, size, time) in a run of many cases."""
    import hashlib

    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _as_recorded_now(made: dict) -> dict:
    """An earlier run's settings as :func:`run_settings` records them today: the shipped
    models as None (recorded by their path before), the refinement's values as they ran
    (clamped; recorded as the file had them before). An unchanged command then finds its
    cases complete, not "made with other settings" (every case was redone once, and a case
    whose labels were edited refused)."""
    import dataclasses

    from ..models.checkpoint import default_model_dir

    made = dict(made)
    for stage in ("liver", "tumor"):
        value = made.get(f"{stage}_model")
        if value is not None and value == str(default_model_dir(stage).resolve()):
            made[f"{stage}_model"] = None
    raw = made.get("refine_config")
    if isinstance(raw, dict):
        from ..refine import RefineConfig

        try:
            ran = RefineConfig.from_dict(raw).validated()[0]
        except (LiverTumorError, TypeError, ValueError, OverflowError):  # another version's
            pass
        else:
            made["refine_config"] = json.loads(json.dumps(dataclasses.asdict(ran), default=str))
    return made


def _compare_run(old: dict, wanted: dict) -> tuple[str, str]:
    """How complete ``old`` stats relate to the run ``wanted``: ``("same", "")``,
    ``("other input", what)`` or ``("other settings", which)``."""
    made = old.get("run_settings")
    if made is None:  # written before settings were recorded: the input alone decides
        same = same_file(Path(str(old.get("input", ""))).resolve(), wanted["input"])
        return ("same", "") if same else ("other input", str(old.get("input")))
    if not same_file(made.get("input"), wanted["input"]):  # (another spelling of its name)
        return "other input", str(made.get("input"))
    made = _as_recorded_now(made)
    # an acquisition asked for before and left to the default now is a change too
    keys = set(wanted) | ({"acquisition", "border_mirror_mm"} & set(made))
    keys.discard("input")  # (compared above: one file, perhaps spelled otherwise)
    keys -= {k for k in _STAMPS if k not in made}  # recorded before stamps were
    if _stamped_every_file(made.get("input_stamp")) and not _stamped_every_file(
        wanted.get("input_stamp")
    ):  # recorded when every file counted: compared with every file's stamp now
        every = _content_stamp(Path(wanted["input"]), every_file=True)
        wanted = {**wanted, "input_stamp": every}
    if wanted.get("stages") == "liver" == made.get("stages"):
        keys -= set(_TUMOR_ONLY_SETTINGS)  # no tumor stage: earlier records hold their values
    from ..io.nifti import is_nifti_path

    if is_nifti_path(wanted["input"]):  # DICOM choices: earlier records of a NIfTI hold them
        keys -= {"series_uid", "acquisition"}
    changed = sorted(k for k in keys if made.get(k) != wanted.get(k))
    if "stages" in changed:  # the tumor stage's settings and model came or went with it
        changed = [k for k in changed if k not in (*_TUMOR_ONLY_SETTINGS, "model_stamps")]
    words = {  # as the user set them: the command's options
        "input_stamp": "the input's files changed",
        "model_stamps": "a model changed (its weights or metadata.json)",
        "liver_model": "--models (liver)",
        "tumor_model": "--models (tumor)",
        "stages": "--stages",
        # which side had the flag: "(--no-refine)" alone read as this run's when it was the
        # earlier one's
        "refine": (
            "--no-refine: the outputs were made with it, this run refines"
            if made.get("refine") is False
            else "--no-refine: this run asks for it, the outputs were refined"
        ),
        "refine_config": "--refine-config",
        "min_tumor_ml": "--min-tumor-ml",
        "min_lesion_peak": "--min-lesion-peak",
        "min_liver_ml": "the liver size floor",
        "window_growth": "--window-growth",
        "tumor_window_growth": "--tumor-window-growth",
        "tta": "--tta",
        "allow_non_ct": (
            "--allow-non-ct: the outputs were made with it, this run leaves it out"
            if made.get("allow_non_ct")
            else "--allow-non-ct: this run asks for it, the outputs were made without"
        ),
        "border_mirror_mm": "border_mirror_mm",
        "acquisition": "--acquisition",
        "series_uid": "--series",
        "patient": "the folder now holds several patients' scans (this case reads one)",
    }
    if "model_stamps" in changed:
        words["model_stamps"] = _model_change_words(made, wanted)
        if not words["model_stamps"]:  # its folder changed (--models): said as that alone
            changed.remove("model_stamps")
    if "series_uid" in changed:  # another scan's outputs replace these: say which these are of
        from ..stats import scan_words

        were = scan_words(old)
        if were:
            words["series_uid"] = f"--series: those are of {were}"
    return (
        # (each flag's words hold commas: "; " tells one from the next)
        ("other settings", "; ".join(words.get(k, k) for k in changed)) if changed else ("same", "")
    )


def _model_change_words(made: dict, wanted: dict) -> str:
    """Which model changed and how, from the stamps ("weights:metadata" digests per stage):
    "a model changed" read as if the user had changed something, where an upgrade of
    livertumor had changed the shipped model's metadata.json (its weights the same). A stage
    whose model folder changed is said by ``--models`` (""; nothing else changed)."""
    old = made.get("model_stamps") or {}
    new = wanted.get("model_stamps") or {}
    said, moved = [], False
    for stage in sorted(set(old) | set(new), key=("liver", "tumor").index):
        a, b = str(old.get(stage) or ""), str(new.get(stage) or "")
        if a == b:
            continue
        if made.get(f"{stage}_model") != wanted.get(f"{stage}_model"):
            # another folder (--models given or dropped: QA rev59 read "the shipped model's
            # metadata.json changed; an upgrade?"): said as --models, not as a change
            moved = True
            continue
        if not a or not b:
            continue
        shipped = "the shipped " if wanted.get(f"{stage}_model") is None else "the "
        if a.split(":")[0] == b.split(":")[0]:
            what = "metadata.json changed (its weights are the same"
            what += "; an upgrade of livertumor?)" if shipped == "the shipped " else ")"
        else:
            what = "weights changed"
        said.append(f"{shipped}{stage} model's {what}")
    if not said and moved:
        return ""
    return "; ".join(said) or "a model changed (its weights or metadata.json)"


#: said of a case whose outputs an earlier version made without recording its models (kept as
#: complete; a file added to them, a SEG, is made from those masks)
UNCHECKED_TEXT = (
    "%s: its outputs were made by an earlier version of livertumor that did not record the "
    "models it used (the shipped models have changed since): kept, not checked against "
    "today's; --overwrite segments again"
)


#: the day segment's stats began to record the software that made them (``software``)
SOFTWARE_RECORDED_SINCE = "5 Dec 2026"


def _made_by_another_version(old: dict | None) -> str:
    """What made complete outputs (their stats ``old``) where that is known to be another
    version of livertumor than this one: ``"commit 9a4df72c1d2e"``, ``"version 0.0.9"``, or
    one from before the software was recorded; "" when it is this one, or when it cannot be
    told (the same version number, one side's commit unknown: a release install records none,
    and "0.1.0" named every version so far). The settings and model stamps can match while the code that
    turned them into masks changed (an upgrade gave a case a second lesion): said, not redone."""
    if old is None:
        return ""
    made = old.get("software")
    if "software" not in old:  # (this version records it, so that one was an earlier one)
        return f"a version from before {SOFTWARE_RECORDED_SINCE}, which recorded none"
    if not isinstance(made, dict):
        return ""
    now = software()
    commit = made.get("commit")
    version = made.get("napari_livertumor")
    if version and version != now.get("napari_livertumor"):
        return f"version {version}" + (f", commit {commit}" if commit else "")
    if commit and now.get("commit") and commit != now.get("commit"):
        return f"commit {commit}"
    return ""


def _this_version() -> str:
    """This version of livertumor, as :func:`_made_by_another_version` names the other."""
    now = software()
    version = f"version {now['napari_livertumor']}"
    return f"{version}, commit {now['commit']}" if now.get("commit") else version


#: said of the first case of a batch kept as complete that another version made
OTHER_VERSION_FIRST = (
    "%s: kept as complete, made by another version of livertumor (%s; this is %s): not "
    "redone, so its figures are that version's and may differ from this one's (its status "
    "says 'made by another version'); --overwrite segments it again"
)
#: said at a batch's end of the cases kept as complete that another version of livertumor made
OTHER_VERSION_TEXT = (
    "%d case(s) kept as complete were made by another version of livertumor than this one "
    "(%s): %s. Not redone, so their figures are that version's and may differ from this "
    "one's (their status says 'made by another version'); --overwrite segments them again"
)


@dataclass(frozen=True)
class _Decision:
    """What a run does with a case, given the outputs there (:func:`_decide`)."""

    #: "segment" (for the first time, or again: ``said`` tells why), "add" (the optional
    #: outputs in ``missing``, made from the labels there), "skip" or "refuse" (``said``: why)
    action: str
    #: the run's log line: a refusal's reason, or why the case is segmented again
    said: str = ""
    #: the same in brief, as ``--list`` prints it
    plan: str = "segment"
    #: refused, the files there stay (another input's, edited): their summary row is kept
    untouched: bool = False
    missing: tuple[str, ...] = ()
    #: of a case skipped, its output files changed since they were written (kept)
    edited: tuple[str, ...] = ()
    #: of a case skipped, its labels told edited by the files' times, not by digests
    #: (:func:`_newer_than_its_stats`): said as asked, as the refusals say it
    by_time: bool = False
    #: of a case skipped, its outputs were made by an earlier version that recorded no
    #: models: whether today's models would give the same masks is not known
    unchecked: bool = False
    #: of a case kept (skipped, or a file added), what made its outputs where that is another
    #: version of livertumor than this one (:func:`_made_by_another_version`), else ""
    other_version: str = ""


def _decide(
    outdir: Path,
    case: Case,
    old,
    wanted: dict,
    own_extras,
    *,
    overwrite: bool,
    absent=(),
    present=(),
) -> _Decision:
    """What a run does with ``case`` (its complete stats there ``old``, or None; ``wanted``:
    this run's :func:`run_settings`; ``own_extras``: the optional outputs asked for that it can
    have). The run and ``--list`` both decide here (``--list`` said "skip" or "segment again"
    of a case whose labels were edited, which the run refused). ``absent``: names of files
    there that the run removes first (a stopped run's, :func:`_clear_interrupted_publish`);
    ``present``: of files it puts in place first (:func:`_finish_interrupted_add`)."""

    def there(path: Path) -> bool:
        return path.name in present or (path.name not in absent and path.exists())

    labels_path, stats_path = output_paths(outdir, case)
    extra_files = extra_paths(outdir, case, own_extras)
    # the optional files its last complete run wrote (none recorded before 0.x)
    made_before = dict((old or {}).get("outputs") or {})
    # an optional file of the case's last run that is there (or that could not be made:
    # None, said in its warnings) is not made again; one deleted since is
    listed = {name for name in made_before.values() if name}
    missing = [
        k
        for k in own_extras
        if k not in made_before
        or (made_before[k] and made_before[k] not in present
            and not (outdir / str(made_before[k])).is_file())
    ]  # fmt: skip
    # a file of an optional output's name that the case's last run did not write
    foreign = [q for q in extra_files.values() if there(q) and q.name not in listed]
    # its outputs that hold something else now (labels corrected by hand)
    edited = _changed_since_written(outdir, old, stats_path.name)
    by_time = _newer_than_its_stats(old, labels_path, stats_path)
    if by_time:
        edited.append(labels_path.name)
    since = _edited_since(labels_path.name, by_time=by_time)  # (--list's words)
    damaged = _damaged_labels(labels_path) if labels_path.name in edited else None
    if damaged:  # not a hand edit: a file cut short or emptied (a full disk, a copy)
        edited.remove(labels_path.name)
    if overwrite:
        again = old is not None or there(labels_path) or there(stats_path)
        return _Decision("segment", plan="segment again (--overwrite)" if again else "segment")
    relation, what = ("none", "") if old is None else _compare_run(old, wanted)
    if damaged and relation == "same":  # its own, broken: made again (said)
        relation, missing = "redo", []
    redo = "(--overwrite to redo)"
    if stats_path.name in edited and relation != "other input":
        # its figures are not the run's: never shown as the model's, nor replaced
        return _Decision(
            "refuse",
            f"{stats_path}: its contents differ from what this command wrote (edited "
            "since?), so its figures are not known to be the run's; it was not "
            "overwritten: move it away (with the case's other outputs) to segment "
            "this case again, or use --overwrite",
            f"refuse: {stats_path.name} edited since it was written {redo}",
            untouched=True,
        )
    if relation == "same" and labels_path.name in edited and missing:
        # a SEG or preview of the edited labels would be marked as the model's output,
        # beside stats of the model's masks
        return _Decision(
            "refuse",
            _edited_text(
                labels_path,
                f"nothing was added from it: a {extra_files[missing[0]].name} made now "
                "would call the edited masks the model's. Export the edited labels "
                "from napari (marked as edited), or use --overwrite to segment again",
                by_time=by_time,
            ),
            f"refuse: {since}: "
            f"{', '.join(extra_files[k].name for k in missing)} not added from it {redo}",
            untouched=True,
        )
    if relation == "other settings" and edited and not foreign:
        return _Decision(
            "refuse",
            _edited_text(
                outdir / edited[0],
                f"the run with other settings ({what}) would replace it; nothing was "
                "overwritten: use another output folder, or --overwrite to replace it",
                by_time=by_time and edited[0] == labels_path.name,
            ),
            f"refuse: {since if edited[0] == labels_path.name else _edited_since(edited[0])}; "
            "a run with other settings "
            f"({what}) would replace it {redo}",
            untouched=True,
        )
    # a record from before the models were stamped: the shipped models have changed since
    # (an upgrade mid-project mixed the old figures with new ones in one summary, unsaid)
    unchecked = old is not None and "model_stamps" not in (old.get("run_settings") or {})
    older = "; made by an earlier version that recorded no models" if unchecked else ""
    # kept with figures another version's code made (the models and settings the same): said
    # (that version's record says it all: not also said when it recorded no models)
    other = "" if unchecked or relation != "same" else _made_by_another_version(old)
    if other:
        older = f"; made by another version: {other}; this is {_this_version()}"
    if relation == "same" and missing and not foreign:
        names = ", ".join(extra_files[k].name for k in missing)
        return _Decision(
            "add",
            plan=f"add {names} (complete otherwise{older})",
            missing=tuple(missing),
            unchecked=unchecked,
            other_version=other,
        )
    if relation == "same" and not foreign:
        notes = []
        if labels_path.name in edited:  # the figures are the model's, not the edited file's
            said = _edited_since("labels", by_time=by_time, fact="edited since")
            notes.append(f"{said}: figures are the model's")
        elif edited:
            notes.append(f"{', '.join(edited)} edited since: kept")
        if unchecked:
            notes.append("made by an earlier version that recorded no models; --overwrite to redo")
        if other:
            notes.append(f"{older[2:]}; --overwrite to redo")
        note = f" ({'; '.join(notes)})" if notes else ""
        return _Decision(
            "skip",
            plan=f"skip: complete{note}",
            edited=tuple(edited),
            by_time=by_time,
            unchecked=unchecked,
            other_version=other,
        )
    if relation == "other settings" and not foreign:  # its own outputs: redone
        return _Decision(
            "segment",
            f"redoing outputs made with other settings ({what})",
            f"segment again: made with other settings ({what})",
        )
    if relation == "redo" and not foreign:
        return _Decision(
            "segment",
            f"{labels_path.name} is {damaged}: segmented again",
            f"segment again: {labels_path.name} is {damaged}",
        )
    if relation != "none" or there(labels_path) or there(stats_path) or foreign:
        if relation == "other input":
            made = (
                f"{labels_path} and its stats were made from another input ({what}), "
                f"not {case.path}"
            )
            brief = f"its outputs there were made from {what}"
        elif old is None and there(stats_path) and not there(labels_path):
            made = f"{stats_path} exists without its labels file"
            brief = f"{stats_path.name} exists without its labels file"
        elif old is None and there(labels_path):
            how = (
                "without its stats file"
                if not there(stats_path)
                else f"with an incomplete or unreadable {stats_path.name}"
            )
            made = f"{labels_path} exists {how}"
            brief = f"{labels_path.name} exists {how}"
        else:
            made = f"{foreign[0]} exists and is not an output of this case's last run"
            brief = f"{foreign[0].name} exists and is not an output of this case's last run"
        # the case's own labels and stats there, whole beside a file of no run of it (a
        # stray preview): its earlier row tells of them ("failed" with blank figures did not)
        whole = relation in ("same", "other settings") and there(labels_path) and there(stats_path)
        if relation != "other input":
            made += " (a stopped run, a napari Export, or another tool's file)"
            brief += " (--overwrite to replace)"
        msg = (
            (
                f"{made}; nothing was overwritten: two inputs of one name: give this "
                "one another output folder (--overwrite would replace the other "
                "input's outputs with this one's)"
            )
            if relation == "other input"
            else (
                f"{made}; nothing was overwritten: use another output folder, or "
                "--overwrite to replace them"
            )
        )
        if relation != "other input":  # --overwrite redoes every case of a batch
            msg += " (or move the files named away to redo only this case)"
        # the files there are not this run's: the row names none, and an earlier summary's
        # row of them stays (it tells what is on disk)
        return _Decision(
            "refuse", msg, f"refuse: {brief}", untouched=relation == "other input" or whole
        )
    return _Decision("segment")


#: said once per output folder where file locks do not work (NFS mounted ``nolock``, Lustre
#: without ``flock``): runs into one folder cannot tell which cases another run is writing
UNLOCKED_CONSEQUENCE = (
    "parallel runs into it will each do every case; use --shard I/N (one shard per job) to "
    "split a batch between jobs"
)


@_stamps_of_one_run
def run_cases(
    cases,
    outdir: Path,
    config,
    *,
    series_uid=None,
    acquisition=None,
    overwrite=False,
    progress=None,
    rows: list[dict] | None = None,
    extras=(),
    after_case=None,
):
    """Segment ``cases`` into ``outdir`` with one model load; returns one summary row per case
    (appended to ``rows`` as each case ends, when given: an interrupted run keeps them).
    ``extras``: optional outputs (:data:`EXTRA_OUTPUTS`) to write too. ``after_case(rows)`` is
    called when a case's row is in (the summary written as the batch goes)."""
    from ..pipeline import Segmenter

    segmenter = None
    rows = [] if rows is None else rows
    said = len(rows)
    unchecked_said = False  # outputs of a version that recorded no models: warned of once
    other_versions: dict[str, int] = {}  # cases kept that another version made, by that version
    from . import say_repeats_again

    queue = list(cases)  # a case another run is writing goes to the end, once
    deferred: set[tuple[str, str]] = set()
    for index, case in enumerate(queue):
        say_repeats_again()
        if len(rows) > said:  # the case before this one ended
            if after_case is not None:
                after_case(rows)
            said = len(rows)
            from ..memory import return_freed_memory

            return_freed_memory()  # its arrays' memory back (a batch's size stays level)
        labels_path, stats_path = output_paths(outdir, case)
        own_extras = _wanted_extras(case, extras)
        not_possible = {
            k: "the input is a NIfTI file (a DICOM SEG refers to the DICOM slices it was drawn on)"
            for k in extras
            if k not in own_extras
        }
        for why in not_possible.values():  # asked for, so said on every run that asks
            log.warning("%s: no DICOM SEG: %s", case.name, why)
        extra_files = extra_paths(outdir, case, own_extras)
        row = {"case": case.name, "input": str(case.path), "labels": labels_path.name}
        row["stats"] = stats_path.name
        # asked for and impossible for this input (no SEG of a NIfTI): never "not made" for
        # exit 1 (a skipped NIfTI case's row names no SEG; not a summary column)
        row["cannot_have"] = tuple(not_possible)
        wanted = run_settings(case, config, series_uid, acquisition)
        too_long = _name_too_long(outdir, (labels_path, stats_path, *extra_files.values()))
        if too_long:  # (is_dir() below raised "File name too long" and ended the batch)
            log.error("%s: %s", case.name, too_long)
            rows.append({**row, "labels": "", "stats": "", "status": "failed", "error": too_long})
            continue
        in_the_way = [q for q in (labels_path, stats_path, *extra_files.values()) if q.is_dir()]
        if in_the_way:  # found before the work, not when renaming onto it after
            msg = f"{in_the_way[0]} is a folder, not a file: move it, or use another output folder"
            log.error("%s: %s", case.name, msg)
            rows.append({**row, "labels": "", "stats": "", "status": "failed", "error": msg})
            continue
        # one run at a time writes a case's outputs: two runs into one folder (two terminals,
        # a job resubmitted) each checked, then each wrote, the second replacing the first's
        # files unsaid, or mixing one's labels with the other's stats
        again = (case.name, str(case.path)) in deferred
        if again:
            log.info(
                "%s: taken up again (if the other run still writes it: waiting up to %g min)",
                case.name,
                BUSY_WAIT_S / 60,
            )
        lock = outdir / f"{temp_prefix(outdir / case.name)}lock"
        with contextlib.ExitStack() as locked:
            try:
                held = locked.enter_context(
                    file_lock(
                        lock, wait_s=BUSY_WAIT_S if again else 0.0, unlocked=UNLOCKED_CONSEQUENCE
                    )
                )
            except OSError as exc:
                # a link planted at the lock's name, refused (file_lock's only error): this
                # case fails, the others go on (it ended the batch, and no summary was written)
                msg = f"{exc.filename}: {exc.strerror}"
                log.error("%s: %s", case.name, msg)
                rows.append({**row, "labels": "", "stats": "", "status": "failed", "error": msg})
                continue
            if not held and not again:
                # two runs into one folder (a job resubmitted, shards of one list): the others
                # first, then this one, once the other run has finished it (then complete)
                log.info(
                    "%s: another run is writing it now: back to it after the others", case.name
                )
                deferred.add((case.name, str(case.path)))
                queue.append(case)
                continue
            if not held:
                msg = (
                    f"another livertumor run is writing this case's outputs in {outdir} now "
                    f"(waited {BUSY_WAIT_S / 60:g} min); nothing was overwritten: run again when "
                    "it has finished"
                )
                log.error("%s: %s", case.name, msg)
                # the other run's files: its summary row of them stays, as that run wrote it
                # (it is writing them now: not "refused (earlier outputs kept)")
                rows.append(_refused(row, msg, untouched=True) | {"busy": True})
                continue
            old = _complete_stats(outdir, case)
            if old is None:  # a run killed while it put this case's files in place
                cleared = _clear_interrupted_publish(outdir, case)
                if cleared:
                    log.warning(
                        "%s: a run was stopped while it put %s in place (its stats were not "
                        "yet): removed",
                        case.name,
                        ", ".join(cleared),
                    )
            else:  # ... or the files it added to the complete case (--dicom-seg added later)
                old, finished, cleared = _finish_interrupted_add(outdir, case, old)
                if finished or cleared:
                    log.warning(
                        "%s: a run was stopped while it put %s in place (its stats were not "
                        "yet): %s",
                        case.name,
                        ", ".join(finished or cleared),
                        "finished, its stats now list them" if finished else "removed",
                    )
            made_before = dict((old or {}).get("outputs") or {})
            decision = _decide(outdir, case, old, wanted, own_extras, overwrite=overwrite)
            if decision.action == "refuse":
                log.error("%s: %s", case.name, decision.said)
                rows.append(_refused(row, decision.said, untouched=decision.untouched))
                continue
            if decision.action == "add":  # no second segmentation
                if decision.unchecked:  # the file added shows masks of models not recorded
                    (log.info if unchecked_said else log.warning)(UNCHECKED_TEXT, case.name)
                    unchecked_said = True
                try:
                    old = add_extras(case, outdir, old, decision.missing, series_uid, acquisition)
                    added = [extra_files[k].name for k in decision.missing
                             if (old.get("outputs") or {}).get(k)]  # fmt: skip
                    status = (
                        "done (added " + ", ".join(added) + ")"
                        if added
                        else ("done (nothing added: see warnings)")
                    )
                    if decision.unchecked:
                        status = status[:-1] + "; models not recorded)"
                    if decision.other_version:
                        status = status[:-1] + "; made by another version)"
                        _kept_from(other_versions, case, decision.other_version)
                    rows.append({**row, **_summary_values(old), "status": status})
                    rows[-1]["made_by"] = decision.other_version  # printed, not a column
                except KeyboardInterrupt:
                    # a stop held over the renames: what they put in is said in the summary
                    now = _complete_stats(outdir, case) or old
                    added = [extra_files[k].name for k in decision.missing
                             if (now.get("outputs") or {}).get(k)]  # fmt: skip
                    if added:
                        rows.append({**row, **_summary_values(now),
                                     "status": "done (added " + ", ".join(added) + ")"})  # fmt: skip
                    raise
                except Cancelled:
                    raise
                except Exception as exc:  # noqa: BLE001 - the case's outputs stay as they were
                    msg = _error_text(exc, case)
                    log.error(
                        "%s: adding %s failed: %s", case.name, ", ".join(decision.missing), msg
                    )
                    rows.append({**row, **_summary_values(old), "status": "failed",
                                 "error": msg})  # fmt: skip
                # ``seconds`` stays the segmentation's, from its stats (as a skipped case's):
                # the few seconds of the file added had replaced a run's minutes (the stats
                # keep the adding's own time in timings_s.extras)
                continue
            if decision.action == "skip":
                edited = decision.edited
                rows.append({**row, **_summary_values(old), "status": "skipped (complete)"})
                by_time = decision.by_time  # (told by the files' times: asked, as --list)
                if labels_path.name in edited:
                    # printed (its words), not a summary column
                    rows[-1]["edited"] = _edited_since(
                        "the labels file", by_time=by_time, fact="was edited since"
                    )
                    # the figures are the model's, not the edited file's beside them
                    labels = _edited_since("labels", by_time=by_time, fact="edited since")
                    rows[-1]["status"] = f"skipped (complete; {labels}: figures are the model's)"
                kept = _edited_since(", ".join(edited), by_time=by_time, fact="edited since")
                log.info("%s: already complete, skipped%s", case.name,
                         f" ({kept}: kept)" if edited else "")  # fmt: skip
                if decision.unchecked:
                    rows[-1]["status"] = rows[-1]["status"][:-1] + "; models not recorded)"
                    (log.info if unchecked_said else log.warning)(UNCHECKED_TEXT, case.name)
                    unchecked_said = True  # (once a batch as a warning)
                if decision.other_version:
                    rows[-1]["status"] = rows[-1]["status"][:-1] + "; made by another version)"
                    rows[-1]["made_by"] = decision.other_version  # printed, not a column
                    _kept_from(other_versions, case, decision.other_version)
                continue
            if decision.said:  # segmented again: why (made with other settings, damaged)
                log.warning("%s: %s", case.name, decision.said)
            _remove_stale_temps(outdir, case)
            load_s = 0.0
            if segmenter is None:  # errors here (model missing...) would fail every case: raise
                from ..models.lean_import import import_monai_lean

                import_monai_lean()  # a command-line process: MONAI without what it never uses
                segmenter = _load_segmenter(Segmenter, config)
                load_s = segmenter.load_seconds
            t0 = time.perf_counter()
            try:
                stats = segment_one(
                    case, outdir, segmenter, series_uid=series_uid, acquisition=acquisition,
                    progress=progress, load_seconds=load_s, settings=wanted, extras=own_extras,
                    not_possible=not_possible,
                )  # fmt: skip
                _remove_stale_extras(outdir, case, made_before, stats.get("outputs") or {})
                rows.append({**row, **_summary_values(stats), "status": "done"})
            except KeyboardInterrupt:
                # a stop held over the case's renames is raised once they are done: the case
                # is complete on disk, and the summary says so
                done = _complete_stats(outdir, case)
                if done is not None and done.get("run_settings") == wanted:
                    rows.append({**row, **_summary_values(done), "status": "done"})
                    rows[-1]["seconds"] = round(time.perf_counter() - t0, 2)
                raise
            except Cancelled:
                raise
            except (LiverTumorError, OSError, ValueError, RuntimeError, MemoryError) as exc:
                text = _out_of_memory_text(exc) or str(exc)  # an input error names its path
                if str(case.path) not in text:  # the summary's row names its input too
                    text += f" (input {case.path})"
                if text.startswith(str(case.path)):
                    log.error("%s", text)
                else:
                    log.error("%s: %s", case.name, text)
                if not isinstance(exc, LiverTumorError):  # numpy's, torch's: a bug's, maybe
                    log.debug("%s", case.name, exc_info=True)
                rows.append({**row, "labels": "", "stats": "", "status": "failed", "error": text})
                if _disk_full(exc):  # every case after it would be segmented for nothing
                    rows[-1]["seconds"] = round(time.perf_counter() - t0, 2)
                    _not_attempted(queue[index + 1 :], rows, outdir, exc)
                    break
            except Exception as exc:  # noqa: BLE001 - one patient's surprise must not end the batch
                msg = f"unexpected error ({type(exc).__name__}: {exc}); input {case.path}"
                log.error("%s: %s", case.name, msg)
                log.debug("%s", case.name, exc_info=True)
                rows.append({**row, "labels": "", "stats": "", "status": "failed", "error": msg})
            row_time = time.perf_counter() - t0
            rows[-1]["seconds"] = round(row_time, 2)
    if sum(other_versions.values()) > 1:  # with the count: a line per case is lost in a batch
        made = "; ".join(
            f"{version} ({n} case{'s' if n != 1 else ''})" for version, n in other_versions.items()
        )
        log.warning(OTHER_VERSION_TEXT, sum(other_versions.values()), _this_version(), made)
    return rows


def _kept_from(counts: dict[str, int], case, version: str) -> None:
    """Count a case kept as complete that ``version`` (another one) made; said in the log, the
    batch's first as a warning (a batch stopped before its end said nothing of them: the
    count comes after the last case)."""
    first = not counts
    counts[version] = counts.get(version, 0) + 1
    if first:
        log.warning(OTHER_VERSION_FIRST, case.name, version, _this_version())
    else:
        log.info("%s: kept; made by another version of livertumor (%s)", case.name, version)


def _load_segmenter(make, config):
    """``make(config)``: the models loaded. Running out of memory there (``ulimit -v``, a
    small machine) is said as a case's is, with what to do (it was "unexpected error:
    RuntimeError: [enforce fail at alloc_cpu.cpp:127] … this is a bug")."""
    from ..errors import ModelError
    from ..memory import out_of_memory_text

    try:
        return make(config)
    except (LiverTumorError, RuntimeError, MemoryError) as exc:
        oom = out_of_memory_text(exc, causes=True)  # (a ModelError raised from torch's too)
        if oom is None:
            raise
        raise ModelError(None, f"loading the models: {oom}") from exc


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the output's disk is full (or its quota reached). A file-size
    limit (``ulimit -f``, EFBIG) is not: a smaller case may still fit under it."""
    import errno

    codes = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
    inner: BaseException | None = exc
    while inner is not None:
        if isinstance(inner, OSError) and inner.errno in codes:
            return True
        inner = inner.__cause__
    return False


def _not_attempted(left, rows: list[dict], outdir: Path, exc: BaseException) -> None:
    """The batch stopped at a full disk: the cases ``left`` get rows saying so (each once; a
    case deferred earlier is in the queue twice), and the log says how to go on."""
    seen = {r.get("case") for r in rows}
    names = []
    for case in left:
        if case.name in seen:
            continue
        seen.add(case.name)
        names.append(case.name)
        rows.append(
            {
                "case": case.name,
                "input": str(case.path),
                "labels": "",
                "stats": "",
                "status": "failed",
                "error": "not attempted: the output disk was full",
            }
        )
    log.error(
        "stopped: no room to write in %s (%s)%s: free some space and run the same command "
        "again (finished cases are skipped)",
        outdir,
        _os_reason(exc) if isinstance(exc, OSError) else exc,
        f"; {len(names)} case(s) not attempted" if names else "",
    )


def _out_of_memory_text(exc: BaseException) -> str | None:
    """The message of a step that ran out of memory (:func:`memory.out_of_memory_text`); None
    for any other error. A batch's later case under ``ulimit -v`` whose check counted what
    the earlier cases reserved (:func:`memory.credited`) says what a process of its own does."""
    from ..memory import address_space_limit, credited, out_of_memory_text

    text = out_of_memory_text(exc)
    if text is not None and credited() and address_space_limit() is not None:
        if not text.startswith("out of GPU memory"):
            text += (
                "; cases run one after another in one process hold more address space: use "
                "--shard, or raise the limit"
            )
    return text


def _error_text(exc: BaseException, case) -> str:
    """What a failure says: an input error names its file; anything else its kind and case."""
    oom = _out_of_memory_text(exc)
    if oom:
        return oom
    if isinstance(exc, (LiverTumorError, OSError, ValueError, RuntimeError)):
        return str(exc)
    return f"unexpected error ({type(exc).__name__}: {exc}); input {case.path}"


def _refused(row: dict, msg: str, *, untouched: bool) -> dict:
    """The summary row of a case not written: no files named, the reason; ``untouched``: the
    files there are another run's or input's, whose earlier row the summary keeps."""
    return {**row, "labels": "", "stats": "", "status": "failed", "error": msg} | {
        "untouched": untouched
    }


def segment_one(
    case: Case,
    outdir: Path,
    segmenter,
    *,
    series_uid=None,
    acquisition=None,
    progress=None,
    load_seconds=0.0,
    settings: dict | None = None,
    extras=(),
    not_possible: dict[str, str] | None = None,
) -> dict:
    """Read, segment and write one case; returns the stats written. ``settings``: its
    :func:`run_settings`, when the caller has them already (a folder's files are not listed
    twice). ``extras``: optional outputs (:data:`EXTRA_OUTPUTS`) written with them;
    ``not_possible``: those asked for that this input cannot have, with why (recorded null in
    the stats' ``outputs`` and said in its warnings)."""
    from ..io import load_ct
    from ..io.nifti import write_nifti

    labels_path, stats_path = output_paths(outdir, case)
    if settings is None:
        settings = run_settings(case, segmenter.config, series_uid, acquisition)
    t0 = time.perf_counter()
    # (the virtual size before this case's CT is read: what an earlier case left reserved is
    # measured from there, under ulimit -v; memory.require)
    memory.before_input()
    volume = load_ct(
        case.path,
        series_uid=series_uid,
        acquisition=acquisition,
        any_modality=bool(segmenter.config.allow_non_ct),
        patient_id=case.patient,
    )
    t_read = time.perf_counter() - t0

    def prog(stage, done, total):
        if progress is not None:
            progress(case.name, stage, done, total)

    with _case_prefix(case.name):
        result = segmenter.segment(volume, progress=prog)
    memory.segmentation_done()  # (the models loaded and run once: their reserve is credited)
    t1 = time.perf_counter()
    # Both files are written aside first, then renamed into place one after the other: a run
    # stopped or failing (a full disk) while writing leaves the old outputs as they were
    # (redone next time, their settings differ), never new labels without their stats
    # (refused next time) nor beside old stats that say complete (skipped next time).
    partial = outdir / f"{temp_prefix(labels_path)}new.nii.gz"
    partial_stats = outdir / f"{temp_prefix(stats_path)}new.json"
    finals = extra_paths(outdir, case, extras)
    asides = {k: _aside(outdir, p) for k, p in finals.items()}
    try:
        write_nifti(result.labels, partial, reference=volume, shown_as=labels_path, labels=True)
        t_write = time.perf_counter() - t1
        stats = _case_stats(
            case, volume, result, segmenter, settings, timings=(t0, t_read, t_write, load_seconds)
        )
        not_made = _write_extras(case, volume, result.labels, stats, asides, finals)
        notes = list(not_made)
        for kind, why in (not_possible or {}).items():  # (said before the case was run)
            stats.setdefault("outputs", {})[kind] = None
            notes.append(f"no {case.name}{EXTRA_OUTPUTS[kind]}: {why}")
        stats["warnings"] = [*(stats.get("warnings") or []), *notes]
        stats["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
        _record_digests(stats, {labels_path.name: partial, **_made(asides, finals, stats)})
        text = json.dumps(stats, indent=2, default=str)
        atomic_write_text(partial_stats, text, shown_as=stats_path)
        with HeldStops():  # a Ctrl-C here left the old labels without stats (refused next time)
            # (through links, permissions kept: fileio.publish)
            stats_target = resolved(stats_path)
            old_mode = stats_target.stat().st_mode if stats_target.exists() else None
            stats_target.unlink(missing_ok=True)
            for k, aside in asides.items():
                publish(aside, finals[k])
            publish(partial, labels_path)
            # to the linked file itself: the link, left dangling by the unlink above, was
            # then replaced by a plain file and the linked stats lost
            written = publish(partial_stats, stats_target)
            if old_mode is not None:  # (gone before the rename: its mode taken first)
                os.chmod(written, stat.S_IMODE(old_mode))
    finally:
        for leftover in (partial, partial_stats, *asides.values()):
            leftover.unlink(missing_ok=True)
    said = set(segmenter.warnings)  # said once when the models were loaded (no GPU...)
    for w in result.warnings:
        if w not in said:
            log.warning("%s: %s", case.name, w)
    for note in not_made:  # an optional output not made, and why (in the stats' warnings too)
        log.warning("%s: %s", case.name, note)
    return stats


#: the pipeline's log lines prefixed with the case's name (shared with ``evaluate``)
_case_prefix = case_log_prefix


def _write_extras(case, volume, labels, stats, asides: dict, finals: dict) -> list[str]:
    """Write the optional outputs to their ``asides`` paths (renamed to ``finals`` by the
    caller); records each in ``stats["outputs"]`` (its file name, or None when it could not be
    made: the masks and stats are never lost for it) and returns notes for the case's warnings."""
    notes: list[str] = []
    outputs = stats.setdefault("outputs", {})
    t0 = time.perf_counter()
    for kind in list(asides):
        said: list[str] = []
        # of the case's own (no liver found, no tumor looked for): not made, and not said to
        # be written first ("writing X_lesions.nii.gz", then "no X_lesions.nii.gz: ...")
        impossible = _cannot_make(kind, labels, stats)
        if impossible is None:
            # (a 900-slice scan's SEG and preview took 15 s, the longest silence of its run)
            log.info("%s: writing %s", case.name, finals[kind].name)
        try:
            if impossible is not None:
                raise InputError(None, impossible)
            if kind == "dicom_seg":
                _write_seg(volume, labels, stats, asides[kind], said, finals[kind])
            elif kind == "lesion_map":
                _write_lesion_map(volume, labels, stats, asides[kind], finals[kind])
            else:
                from ..preview import write_preview

                write_preview(volume, labels, asides[kind], title=_preview_title(case, stats))
            outputs[kind] = finals[kind].name
        except (OSError, MemoryError) as exc:
            # a full disk, a file-size limit, a folder closed meanwhile, memory other programs
            # held: not this case's own (as "no liver" is), so not recorded as made or
            # impossible: the next run makes it
            outputs.pop(kind, None)
            why = (
                _os_reason(exc)
                if isinstance(exc, OSError)
                else _out_of_memory_text(exc) or str(exc) or "out of memory"
            )
            said.append(f"no {finals[kind].name}: {why}; run the command again to make it")
        except (LiverTumorError, ValueError, RuntimeError) as exc:
            outputs[kind] = None
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            said.append(f"no {finals[kind].name}: {why}")
        # the files by the names the user sees, not the temporary ones written first
        aside = asides[kind] if outputs.get(kind) is not None else asides.pop(kind)
        if aside is not asides.get(kind):  # not made: what a failed write left of it goes
            # (the caller's clean-up sees only the asides still listed)
            aside.unlink(missing_ok=True)
        notes += [n.replace(str(aside), finals[kind].name).replace(aside.name, finals[kind].name)
                  for n in said]  # fmt: skip
    stats.setdefault("timings_s", {})["extras"] = round(time.perf_counter() - t0, 3)
    return notes


def _os_reason(exc: OSError) -> str:
    """What the operating system said, with the file: pydicom wraps a failed write in an error
    of the same type whose text is a whole traceback (``With tag (7FE0,0010) got exception:
    [Errno 28] No space left on device`` and the stack); the error it wraps is said instead."""
    inner: BaseException = exc
    while isinstance(inner.__cause__, OSError):
        inner = inner.__cause__
    if isinstance(inner, OSError) and inner.strerror:
        return f"{inner.strerror} ({inner.filename})" if inner.filename else inner.strerror
    return str(inner).splitlines()[0] if str(inner) else type(inner).__name__


#: memory highdicom takes per pixel of the frames of a DICOM SEG it builds (measured: 0.3 GB
#: for 509 frames of 512 × 512, 2.3 bytes; with a margin)
SEG_BYTES_PER_FRAME_PIXEL = 3


def _cannot_make(kind: str, labels, stats: dict) -> str | None:
    """Why the case's optional output ``kind`` cannot be made of its masks (recorded null in
    its stats, said in its warnings), or None."""
    if kind == "dicom_seg" and not (labels > 0).any():
        return "nothing was segmented (no liver found), so there is nothing to send"
    if kind == "lesion_map" and stats.get("tumor_ml") is None:
        return "no tumor was looked for (no liver found, or --stages liver)"
    return None


def _write_seg(volume, labels, stats: dict, path: Path, notes: list[str], shown: Path) -> None:
    from ..io.seg import model_seg_description, write_dicom_seg

    liver_only = stats.get("tumor_ml") is None
    # highdicom builds every frame holding a mask (a slice per segment) before packing them:
    # 0.3 GB over the segmentation's peak for a 900-slice scan, which the pipeline's own
    # check did not count
    frames = sum(int((plane == 1).any()) + int((plane == 2).any()) for plane in labels)
    try:
        memory.require(
            frames * labels.shape[1] * labels.shape[2] * SEG_BYTES_PER_FRAME_PIXEL,
            f"writing its DICOM SEG ({frames} frames)",
        )
    except InputError as exc:
        raise MemoryError(exc.problem) from None
    write_dicom_seg(
        labels,
        volume,
        path,
        segments=[(1, "Liver")] if liver_only else [(1, "Liver"), (2, "Tumor")],
        series_description=model_seg_description("liver" if liver_only else "liver+tumor"),
        notes=notes,
        shown_as=shown,
    )


def _write_lesion_map(volume, labels, stats: dict, path: Path, shown: Path) -> None:
    from ..io.nifti import write_nifti
    from ..stats import lesion_id_map

    ids = lesion_id_map(labels, affine_lps=getattr(volume, "affine_lps", None))
    if int(ids.max()) != len(stats.get("lesions") or []):  # numbered as the stats, or not made
        raise RuntimeError(
            f"{int(ids.max())} lesions in the map, {len(stats.get('lesions') or [])} in the stats"
        )
    write_nifti(ids, path, reference=volume, shown_as=shown, labels=True)


def _preview_title(case, stats: dict) -> str:
    if not stats.get("liver_ml"):
        return f"{case.name}: no liver found"
    text = f"{case.name}: liver {stats.get('liver_ml') or 0:.0f} mL"
    if stats.get("tumor_ml") is not None:
        n = stats.get("lesion_count") or 0
        text += f", tumor {stats['tumor_ml']:.1f} mL ({n} lesion{'s' if n != 1 else ''})"
    return text


def add_extras(case, outdir: Path, stats: dict, extras, series_uid=None, acquisition=None) -> dict:
    """Add optional outputs to a complete case from its labels file, without segmenting again;
    returns its stats, rewritten to list them. The CT is read again (the DICOM SEG references
    its slices; the preview shows it)."""
    from ..io import load_ct
    from ..io.nifti import read_nifti

    labels_path, stats_path = output_paths(outdir, case)
    made = stats.get("run_settings") or {}
    memory.before_input()  # (no earlier case's credit said of this one's out of memory)
    volume = load_ct(
        case.path,
        series_uid=made.get("series_uid", series_uid),
        acquisition=made.get("acquisition", acquisition),
        any_modality=bool(made.get("allow_non_ct")),
        patient_id=made.get("patient", case.patient),  # a folder holding several patients
    )
    labels = read_nifti(labels_path)
    was, now = stats.get("series_uid"), volume.meta.get("series_uid")
    if was and now and was != now:  # the SEG would reference, and the preview show, another scan
        raise InputError(
            case.path,
            f"the series read now ({now}) is not the one {case.name}'s labels were made from "
            f"({was}): redo the case with --overwrite",
        )
    if not labels.same_grid(volume, atol=1e-2):
        raise InputError(labels_path, "does not lie on the grid of the CT read now: redo the case "
                         "with --overwrite")  # fmt: skip
    finals = extra_paths(outdir, case, extras)
    asides = {k: _aside(outdir, p) for k, p in finals.items()}
    stats = {
        **stats,
        "timings_s": dict(stats.get("timings_s") or {}),
        "outputs": dict(stats.get("outputs") or {}),
    }
    partial_stats = outdir / f"{temp_prefix(stats_path)}new.json"
    try:
        notes = _write_extras(case, volume, labels.array, stats, asides, finals)
        # an earlier run's "no <file>: …" of the files tried now goes: made now, or said anew
        # (a SEG lost to a full disk and added since was still said missing)
        tried = tuple(f"no {p.name}: " for p in finals.values())
        earlier = [w for w in stats.get("warnings") or [] if not str(w).startswith(tried)]
        stats["warnings"] = [*earlier, *notes]
        _record_digests(stats, _made(asides, finals, stats))
        atomic_write_text(
            partial_stats, json.dumps(stats, indent=2, default=str), shown_as=stats_path
        )
        # a Ctrl-C is held over these renames; a kill -9 between them leaves the stats aside,
        # and the next run finishes them (_finish_interrupted_add)
        with HeldStops():
            for k, aside in asides.items():
                publish(aside, finals[k])
            publish(partial_stats, stats_path)
    finally:
        for leftover in (partial_stats, *asides.values()):
            leftover.unlink(missing_ok=True)
    made = [finals[k].name for k in finals if stats["outputs"].get(k)]
    if made:
        log.info("%s: added %s", case.name, ", ".join(made))
    for note in notes:  # what could not be made, and why (also in the stats' warnings)
        log.warning("%s: %s", case.name, note)
    return stats


def _aside(outdir: Path, final: Path) -> Path:
    """Where an optional output is written before it is renamed to ``final`` (with its
    ending: a NIfTI aside must end in .nii.gz too)."""
    ending = ".nii.gz" if final.name.endswith(".nii.gz") else final.suffix
    return outdir / f"{temp_prefix(final)}new{ending}"


def _made(asides: dict, finals: dict, stats: dict) -> dict[str, Path]:
    """``{final name: written file}`` of the optional outputs that were made."""
    outputs = stats.get("outputs") or {}
    return {finals[k].name: asides[k] for k in asides if outputs.get(k)}


def _record_digests(stats: dict, files: dict[str, Path]) -> None:
    """Record in ``stats["digests"]`` what each output file held when written (by its final
    name): a later run tells a file edited since (labels corrected by hand) from its own."""
    digests = dict(stats.get("digests") or {})
    for name, path in files.items():
        st = path.stat()
        digests[name] = _digest(str(path.resolve()), st.st_size, st.st_mtime_ns)
    stats["digests"] = digests
    stats["stats_digest"] = _stats_digest(stats)  # the file's own figures, edited or not


def _stats_digest(stats: dict) -> str:
    """A digest of a stats file's figures (all but its digests), as JSON writes and reads
    them: a later run tells figures edited by hand from the run's."""
    import hashlib

    body = {k: v for k, v in stats.items() if k not in ("digests", "stats_digest")}
    text = json.dumps(json.loads(json.dumps(body, default=str)), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


#: seconds by which a labels file is newer than its stats (the run wrote them in that order)
#: that make it edited since, for outputs whose stats recorded no digests
EDITED_AFTER_S = 2.0


def _newer_than_its_stats(old: dict | None, labels_path: Path, stats_path: Path) -> bool:
    """Outputs of a version that kept no digests of its files (before 2 Dec 2026): their labels
    edited since, as their modification times tell (written before their stats, a labels file
    saved later is newer). A rerun with other settings (an upgrade changes the shipped models)
    replaced hand-corrected labels without a copy, saying only "redoing"."""
    if old is None or old.get("digests") is not None:
        return False
    try:
        return labels_path.stat().st_mtime > stats_path.stat().st_mtime + EDITED_AFTER_S
    except OSError:
        return False


def _edited_since(
    name: str, *, by_time: bool = False, fact: str = "edited since it was written"
) -> str:
    """``name`` (its output files, or "labels") edited since, in brief: ``--list``'s plans and
    a skipped case's lines. ``fact`` where digests told it; asked where the files' times did
    (``by_time``: :func:`_newer_than_its_stats`, as :func:`_edited_text` says it), since a
    copy that renewed the times looks so too (``--list`` said "labels edited since" of such a
    case as a fact, where the run refusing it asked: QA adv60)."""
    if by_time:
        return f"{name} newer than its stats, so maybe edited since, as file times tell"
    return f"{name} {fact}"


def _edited_text(path: Path, consequence: str, *, by_time: bool = False) -> str:
    if by_time:  # outputs without digests: told by file times, which a copy may renew too
        return (
            f"{path} is newer than its stats (edited since?: these outputs are of a version "
            "before 2 Dec 2026, which kept no digests of its files, so an edit is told by the "
            "files' times; a copy that did not keep them can look so too); "
            f"{consequence}"
        )
    return (
        f"{path} was changed after this command wrote it (edited?) or cannot be read; {consequence}"
    )


def _name_too_long(outdir: Path, paths) -> str | None:
    """Why an output's file name is too long for the output folder's file system (its hidden
    temporary name is shortened to fit: ``fileio.temp_prefix``); None when all fit."""
    try:
        limit = os.pathconf(outdir if outdir.is_dir() else outdir.parent, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # Windows, or a folder not made yet
        limit = 255
    for path in paths:
        if sys.platform == "win32":  # NTFS counts UTF-16 units, not bytes
            size, unit = len(path.name.encode("utf-16-le")) // 2, "characters"
        else:
            size, unit = len(os.fsencode(path.name)), "bytes"
        if size > limit:
            return (
                f"the output file name {path.name[:40]}… is too long for the file system "
                f"({size} {unit}; at most {limit}): rename the input, or give the case a "
                "shorter name in a CSV list's 'case' column"
            )
    return None


def _check_path_lengths(outdir: Path, cases: list[Case], extras, summary: str) -> None:
    """Refuse (``InputError``) a run whose longest path, a temporary file's, is more than
    Windows allows (MAX_PATH, where it applies): every case failed after it was computed,
    "No such file or directory" naming a hidden file."""
    if windows_path_limit() is None or not cases:
        return
    finals = [outdir / summary]
    for case in cases:
        finals += output_paths(outdir, case)
        finals += extra_paths(outdir, case, _wanted_extras(case, extras)).values()
    # each written as ".X_labels.nii.gz.new.nii.gz" (_aside), itself through a temporary file
    check_path_lengths(outdir, finals, via=lambda f: _aside(outdir, f))


def _damaged_labels(path: Path) -> str | None:
    """Why a labels file that changed since its run wrote it is no hand edit but broken
    (empty, cut short, not a NIfTI); None when it reads as a label map."""
    import nibabel as nib
    import numpy as np

    try:
        if path.stat().st_size == 0:
            return "empty"
        img = nib.load(str(path))
        np.asanyarray(img.dataobj)  # the whole (gzip) stream: a cut-short file fails here
    except PermissionError:  # unreadable for permissions: not known to be broken
        return None
    except Exception as exc:  # noqa: BLE001 - nibabel's and zlib's many ways of saying it
        return f"damaged ({type(exc).__name__}: {exc})"
    return None


def _changed_since_written(
    outdir: Path, stats: dict | None, stats_name: str | None = None
) -> list[str]:
    """The output files of a complete case that no longer hold what its run wrote (edited, or
    replaced by another file), by name; none for stats written before digests were kept. The
    stats file itself (``stats_name``) is among them when its figures were edited."""
    changed = []
    recorded = (stats or {}).get("stats_digest")
    if stats_name and recorded and _stats_digest(stats) != recorded:
        changed.append(stats_name)
    for name, digest in ((stats or {}).get("digests") or {}).items():
        path = outdir / Path(name).name
        try:
            st = path.stat()
        except OSError:  # deleted: a missing optional output is made again, labels refused
            continue
        try:
            now = _digest(str(path.resolve()), st.st_size, st.st_mtime_ns)
        except OSError:  # unreadable now (permissions, deleted meanwhile): not known to be ours
            now = None
        if now != digest:
            changed.append(path.name)
    return changed


def _remove_stale_extras(outdir: Path, case, made_before: dict, made_now: dict) -> None:
    """Optional outputs of the case's earlier run that this run did not write again (not asked
    for, or not possible now): they show the old masks, so they go (said)."""
    for kind, name in made_before.items():
        if kind in EXTRA_OUTPUTS and name and made_now.get(kind) != name:
            stale = outdir / Path(name).name
            if stale.is_file():
                try:
                    stale.unlink()
                except OSError as exc:  # the case is done; the old file is said, not fatal
                    log.warning("%s: %s shows the earlier masks and could not be removed (%s)",
                                case.name, stale, exc.strerror or exc)  # fmt: skip
                    continue
                # a warning (-q says it too): a file the user had, gone without a word on
                # screen in a quiet batch
                log.warning(
                    "%s: removed %s (made from the earlier masks; this run did not make it "
                    "again: ask for it to have it)",
                    case.name,
                    stale.name,
                )


def _case_stats(case, volume, result, segmenter, settings, *, timings) -> dict:
    """What ``<case>_stats.json`` says of one case segmented."""
    from .. import __version__
    from ..stats import scan_identity

    t0, t_read, t_write, load_seconds = timings
    timings = {"read": round(t_read, 3), **result.timings, "write": round(t_write, 3)}
    timings["segment"] = timings.pop("total", None)
    timings["total"] = round(time.perf_counter() - t0, 3)
    if load_seconds:  # the first case of a run also paid for loading the models
        timings["load_models"] = round(load_seconds, 3)
    cfg = segmenter.config
    stats = {
        "case": case.name,
        "input": str(case.path),
        "series_uid": volume.meta.get("series_uid"),
        "acquisition_number": volume.meta.get("acquisition_number"),
        # which of a series' stacked passes, as said ("pass 3, acq 2, kernel B70f": the
        # number above is the pass's, 1..n, where the reader split them), else None
        "acquisition": volume.meta.get("acquisition_label") or None,
        **scan_identity(volume.meta),  # (a baseline and a follow-up told apart by date)
        **result.stats,
        "timings_s": timings,
        "device": result.device,
        "shape_zyx": list(volume.shape),
        "models": {
            "liver": str(Path(segmenter.liver.path).resolve()),
            "tumor": str(Path(segmenter.tumor.path).resolve()) if segmenter.tumor else None,
        },
        # an ensemble's networks (1: a single model), which its path does not tell
        "model_members": {
            "liver": int(segmenter.liver.metadata.members),
            "tumor": int(segmenter.tumor.metadata.members) if segmenter.tumor else None,
        },
        "refine": bool(cfg.refine) and cfg.stages != "liver",  # no tumor: nothing refined
        "run_settings": settings,
        "version": __version__,
        # what made it (the package's commit in a checkout: "0.1.0" named many), and the
        # voxels it was made of (the same CT as DICOM or as a NIfTI written of it: one digest)
        "software": software(),
        "ct_digest": array_digest(volume.array),
        "complete": True,
    }
    return stats


def write_summary(
    rows: list[dict], path: Path, *, spent: dict | None = None, began: float | None = None
) -> Path:
    """Write the batch summary; rows of earlier runs for other cases are kept.

    A summary already there from another batch into the same folder keeps its rows of cases
    this run did not touch (this run's rows replace the others). A file of that name this
    command did not write is left alone: the summary goes to ``summary-1.csv`` (or -2...).
    Two batches ending at once take turns (each read the file, then each wrote it: one's rows
    were lost). ``began``: when the run began (``time.time()``): the summary's temporary
    files last written before it, a killed earlier run's, go at once.
    """
    asked = time.monotonic()
    with file_lock(
        path.with_name(f"{temp_prefix(path)}lock"), wait_s=60.0, unlocked=UNLOCKED_CONSEQUENCE
    ) as held:
        if not held:
            log.warning("%s: another run held it for over a minute; written anyway", path.name)
        started = time.monotonic()
        written = _write_summary(rows, path)
        if spent is not None:  # how long the writing took: the lock's wait left out, unless
            # the lock was never had (another run holding it on: each case waited a minute)
            spent["seconds"] = time.monotonic() - (started if held else asked)
        if held:  # a killed run's temporary copies: those of before this run began at once
            # (a batch resumed right after a kill -9 kept them a minute more), the others once
            # a minute old (no run's at work: where the file system has no locks, held says so
            # all the same, and another run may be writing one now)
            older = 60.0 if began is None else min(60.0, max(time.time() - began, 0.0))
            for final in {path, written}:
                remove_stale_temps(final, older, ".tmp")
        return written


def _write_summary(rows: list[dict], path: Path) -> Path:
    kept: list[dict] = []
    taken = path
    path = _summary_name(path)
    if path != taken:
        log.warning("%s is not a summary of this command: kept; writing %s", taken, path)
    if path.exists():
        earlier = _read_summary(path) or []
        # a case refused because its outputs there are another input's keeps the row that
        # tells of those outputs; its refusal is said on the console
        done = {r.get("case"): r for r in earlier if r.get("status") != "failed"}
        # ... and says it was refused (the summary read "done", the console "failed")
        rows = [
            done[r["case"]]
            if r.get("busy") and r["case"] in done
            else {
                **done[r["case"]],
                "status": "refused (earlier outputs kept)",
                "error": r.get("error", ""),
            }
            if r.get("untouched") and r["case"] in done
            else r
            for r in rows
        ]
        mine = {r["case"] for r in rows}
        kept = [r for r in earlier if r.get("case") not in mine]
        # rows of cases whose outputs were deleted since, or whose failed input is gone (an
        # empty folder removed), no longer describe the folder: dropped (a clean rerun's
        # summary still listed a failure, or files that were not there)
        gone = [r for r in kept if _row_gone(r, path.parent)]
        if gone:
            log.info(
                "%s: %d row(s) of earlier runs dropped, their outputs or input gone: %s",
                path.name,
                len(gone),
                ", ".join(str(r.get("case")) for r in gone[:5]) + (", …" if len(gone) > 5 else ""),
            )
            dropped = {id(r) for r in gone}  # (by identity: rows compared field by field
            kept = [r for r in kept if id(r) not in dropped]  # cost n² on a long summary)
        if kept:  # (each time it is written: not said at every case of a batch)
            log.debug("%s keeps %d row(s) of earlier runs", path.name, len(kept))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in sorted([*rows, *kept], key=lambda r: str(r.get("case", ""))):
        # an input path or an error that begins like a formula ("=HYPERLINK(…).nii.gz",
        # "@SUM(1+1)bad.nii.gz: not a NIfTI file") is shown as text, not run by a spreadsheet
        w.writerow({k: safe_cell(r.get(k, "")) for k in SUMMARY_FIELDS})
    return atomic_write_text(path, buf.getvalue())


def _row_gone(row: dict, outdir: Path) -> bool:
    """Whether an earlier summary row no longer describes anything: a case whose labels and
    stats files are both gone, or a failed case whose input is not there any more."""
    if row.get("status") == "failed":
        given = str(row.get("input") or "")
        return bool(given) and not Path(given).exists()
    files = [str(row.get(k) or "") for k in ("labels", "stats")]
    named = [f for f in files if f]
    return bool(named) and not any((outdir / f).exists() for f in named)


#: the names this command gives its summaries (a batch's, a shard's, one beside a user's file)
_OWN_SUMMARY = re.compile(r"summary(-\d+|_shard-\d+-of-\d+)?\.csv")


def _refresh_other_summaries(
    outdir: Path, name: str, rows: list[dict], *, began: float | None = None
) -> None:
    """The rows of the cases this run wrote, in the folder's other summaries that list them
    (a plain run's summary.csv after shards, the shards' after a plain run, another split):
    they told the earlier run's figures and settings. A summary is only brought up to date,
    never given rows of cases it did not list."""
    written = {r["case"]: r for r in rows if str(r.get("status", "")).startswith("done")}
    if not written:
        return
    own = _summary_name(outdir / name).name  # (summary-1.csv when summary.csv is a user's)
    for other in sorted(outdir.glob("summary*.csv")):
        # this command's names only: a user's copy (summary_before_retrain.csv) is theirs
        if other.name == own or not _OWN_SUMMARY.fullmatch(other.name):
            continue
        earlier = _read_summary(other)
        update = [written[r["case"]] for r in earlier or [] if r.get("case") in written]
        if update:
            try:
                write_summary(update, other, began=began)
            except OSError as exc:  # the cases are done: an old summary is said, not fatal
                log.warning("%s could not be brought up to date (%s)", other, exc)
                continue
            log.info("%s: %d row(s) brought up to date (cases this run wrote)", other.name,
                     len(update))  # fmt: skip


def _read_summary(path: Path) -> list[dict] | None:
    """The rows of a summary this command wrote, or None for any other file."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            fields = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if not {"case", "input", "status", "labels", "stats"} <= set(fields):
        return None
    # the cells as they were before a spreadsheet's apostrophe was put in front: a case
    # "-x" (its input, its files) read back as "'-x" was taken for another case
    return [{k: cell_value(v) for k, v in r.items()} for r in rows]


def _summary_name(path: Path) -> Path:
    """``path``, or ``summary-1.csv``, ``-2``...: the first that is absent or this command's."""
    cand, k = path, 0
    while cand.exists() and _read_summary(cand) is None:
        k += 1
        cand = path.with_name(f"{path.stem}-{k}{path.suffix}")
    return cand


def _seconds(total):
    """A run's time as summary.csv writes a case segmented now: to 2 decimals (a skipped or
    added-to case's, from its stats, showed 3)."""
    try:
        return round(float(total), 2)
    except (TypeError, ValueError):
        return total


def _summary_values(stats: dict) -> dict:
    return {
        "study_date": stats.get("study_date"),
        "series_number": stats.get("series_number"),
        "liver_ml": stats.get("liver_ml"),
        "tumor_ml": stats.get("tumor_ml"),
        "tumor_to_liver_ratio": stats.get("tumor_to_liver_ratio"),
        "lesion_count": stats.get("lesion_count"),
        "unsure_lesion_count": (
            None if stats.get("tumor_ml") is None else len(stats.get("unsure_lesions") or [])
        ),
        "liver_mean_hu": stats.get("liver_mean_hu"),
        "tumor_mean_hu": stats.get("tumor_mean_hu"),
        "device": stats.get("device"),
        # (an earlier version's record as today's: the shipped models read "shipped" in both)
        "settings": _settings_text(_as_recorded_now(stats.get("run_settings") or {})),
        "seconds": _seconds((stats.get("timings_s") or {}).get("total")),
        "error": "",
        "warnings": " | ".join(stats.get("warnings") or []),
        **{k: (stats.get("outputs") or {}).get(k, "") for k in EXTRA_OUTPUTS},
    }


def _settings_text(settings: dict) -> str:
    """``stages=both; refine=on; tta=none; models=/…/models``: the settings that change the
    masks, so rows of runs made with other settings in one summary can be told apart."""
    if not settings:
        return ""
    import dataclasses

    from ..pipeline import InferenceConfig

    parts = [f"stages={settings.get('stages')}"]
    if settings.get("stages") != "liver":  # refinement and mirroring are the tumor stage's
        refine = "off"
        if settings.get("refine"):  # custom: a --refine-config of its own
            refine = "custom" if settings.get("refine_config") is not None else "on"
        parts += [f"refine={refine}", f"tta={settings.get('tta') or 'none'}"]
    liver, tumor = settings.get("liver_model"), settings.get("tumor_model")
    if settings.get("stages") == "liver":
        tumor = None
    folders = list(dict.fromkeys(str(Path(m).parent) for m in (liver, tumor) if m))
    if not folders:
        parts.append("models=shipped")
    elif len(folders) == 1:  # a tumor/ alone (an ensemble's folder): the liver is the shipped
        both = settings.get("stages") != "liver"
        shipped = "liver" if liver is None and both else "tumor" if tumor is None and both else ""
        parts.append(f"models={folders[0]}" + (f" ({shipped}: shipped)" if shipped else ""))
    else:
        parts.append(f"models=liver {folders[0]}, tumor {folders[1]}")
    # the other settings that change the masks, when not the defaults (two rows of one summary
    # with other lesion filters read the same)
    default = json.loads(
        json.dumps({f.name: f.default for f in dataclasses.fields(InferenceConfig)}, default=str)
    )  # as the settings read back from a stats file (a tuple is a list there)
    for name in ("min_tumor_ml", "min_lesion_peak", "min_liver_ml", "sw_overlap",
                 "window_growth", "tumor_window_growth", "fill_holes", "allow_non_ct",
                 "border_mirror_mm"):  # fmt: skip
        value = settings.get(name)
        if name in settings and value is not None and value != default.get(name):
            parts.append(f"{name}={value}")
    return "; ".join(parts)


def _clear_interrupted_publish(outdir: Path, case: Case, *, dry: bool = False) -> list[str]:
    """The outputs a run killed while putting them in place left without their stats (written
    aside, complete, they say what each new file holds): removed, so that the case is
    segmented again instead of refused for files "not of its last run"; their names. Called
    holding the case's lock, with no complete stats there. Only when every output file of the
    case there holds exactly what those stats recorded: anything else (an older file the run
    had not replaced yet, a file edited since) leaves all in place, for the usual refusal.
    ``dry``: the names only, nothing removed (``--list``)."""
    labels_path, stats_path = output_paths(outdir, case)
    pending = outdir / f"{temp_prefix(stats_path)}new.json"
    try:
        digests = json.loads(pending.read_text(encoding="utf-8")).get("digests") or {}
    except (OSError, ValueError, AttributeError):
        return []
    there = [p for p in (labels_path, *extra_paths(outdir, case).values()) if p.is_file()]
    try:
        for path in there:
            st = path.stat()
            now = _digest(str(path.resolve()), st.st_size, st.st_mtime_ns)
            if digests.get(path.name) != now:
                return []
        for path in there if not dry else ():
            path.unlink()
    except OSError:  # unreadable, or gone meanwhile: left to the checks that follow
        return []
    return [p.name for p in there]


def _finish_interrupted_add(
    outdir: Path, case: Case, old: dict, *, dry: bool = False
) -> tuple[dict, list[str], list[str]]:
    """Optional outputs added to a complete case (:func:`add_extras`) by a run killed while it
    put them in place, before its stats (written aside, complete: they record what each file
    holds): put in place with those stats, as that run would have ended, when every output file
    they record is there (at its name, or still aside) holding exactly that, the labels the
    ones ``old`` (the case's stats there) recorded; otherwise the files that run put in place
    go, with its stats aside and temporary files, and the case is as ``old`` says (a SEG of
    the killed run, listed by no stats, had the case refused for good as "not an output of this
    case's last run"). Returns the case's stats now and the names of the files finished, and
    of those removed. Called holding the case's lock. ``dry``: the same, nothing changed
    (``--list``)."""
    labels_path, stats_path = output_paths(outdir, case)
    pending = outdir / f"{temp_prefix(stats_path)}new.json"
    try:
        new = json.loads(pending.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return old, [], []
    new = new if isinstance(new, dict) else {}
    digests = new.get("digests") if isinstance(new.get("digests"), dict) else {}
    listed = {name for name in (old.get("outputs") or {}).values() if name}
    made = new.get("outputs") if isinstance(new.get("outputs"), dict) else {}
    added = [p for k, p in extra_paths(outdir, case).items()
             if made.get(k) == p.name and p.name not in listed]  # fmt: skip

    def holds(path: Path, name: str) -> bool:  # what the stats aside recorded of ``name``
        try:
            st = path.stat()
            return digests.get(name) == _digest(str(path.resolve()), st.st_size, st.st_mtime_ns)
        except OSError:
            return False

    recorded = old.get("stats_digest")
    ours = bool(
        added
        and new.get("complete")
        and new.get("stats_digest") == _stats_digest(new)
        and new.get("run_settings") == old.get("run_settings")
        # the same labels (an add never writes them), and stats not edited since
        and digests.get(labels_path.name)
        and digests.get(labels_path.name) == (old.get("digests") or {}).get(labels_path.name)
        and recorded in (None, _stats_digest(old))
    )
    still_aside: dict[Path, Path] = {}
    for name in digests if ours else ():
        final = outdir / Path(name).name
        if holds(final, name):
            continue
        aside = _aside(outdir, final)
        if final in added and not final.exists() and holds(aside, name):
            still_aside[aside] = final
        else:  # gone, or edited since: not finished
            ours = False
            break
    if ours:
        if not dry:
            try:
                with HeldStops():  # (as add_extras puts them in place)
                    for aside, final in still_aside.items():
                        publish(aside, final)
                    publish(pending, stats_path)
            except OSError as exc:  # (a folder closed meanwhile): the case as it is, refused
                log.warning("%s: %s", case.name, _os_reason(exc))
                return _complete_stats(outdir, case) or old, [], []
        return new, [p.name for p in added], []
    # put in place by the killed run, listed by no stats there
    removed = [path for path in added if holds(path, path.name)]
    if not dry:
        for path in removed:
            path.unlink(missing_ok=True)
        _remove_stale_temps(outdir, case)
    return old, [], [p.name for p in removed]


def _remove_stale_temps(outdir: Path, case: Case) -> None:
    """Temporary files a killed run left for this case (called holding the case's lock: no
    other run is writing them)."""
    for final in (*output_paths(outdir, case), *extra_paths(outdir, case).values()):
        # its temporary files, the files written aside (".X_labels.nii.gz.new.nii.gz") and
        # those ones' own temporary files
        prefix = glob.escape(temp_prefix(final))  # a case named "X[1]"
        for pattern in (f"{prefix}*", f".{prefix}*"):
            for tmp in outdir.glob(pattern):
                tmp.unlink(missing_ok=True)


#: when stderr is no terminal (a log file), a stage's progress is logged at most this often (s)
LOG_EVERY_S = 10.0


def _printer(positions: dict[str, tuple[int, int]] | None = None):
    """Progress on stderr; with ``positions`` (case name → (k, of)) a batch's lines say how
    far it is (``[3/50] HCC_003: liver …``)."""
    tty = sys.stderr.isatty()
    last = {"key": None, "at": 0.0}
    positions = positions or {}

    def show(case, stage, done, total):
        key = (case, stage)
        k, of = positions.get(case, (0, 1))
        where = f"[{k}/{of}] " if of > 1 else ""
        now = time.monotonic()
        if tty:
            end = "\n" if done >= total else ""
            print(f"\r{where}{case}: {stage} {done}/{total}", end=end, file=sys.stderr, flush=True)
        elif key != last["key"]:
            log.info("%s%s: %s …", where, case, stage)
            last["at"] = now
        elif now - last["at"] >= LOG_EVERY_S and 0 < done < total:
            # a log file (a cluster job's) heard nothing for a stage's whole length (14 s of
            # one tumor stage on a laptop, minutes on a large scan): how far it is, now and then
            log.info("%s%s: %s %d/%d …", where, case, stage, done, total)
            last["at"] = now
        last["key"] = key

    return show
