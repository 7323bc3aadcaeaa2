"""Evaluation with the original protocol: the full two-stage pipeline on the test patients.

Each test patient's CT goes through :class:`napari_livertumor.pipeline.Segmenter` exactly as
``livertumor segment`` would run it (liver stage, tumor stage in the predicted liver ROI, optional
refinement), and the result is scored against the ground truth on the CT's own grid.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Cancelled, InputError, LiverTumorError, SettingsError
from ..fileio import (
    TEXT_ERRORS,
    atomic_path,
    atomic_write_text,
    check_path_lengths,
    check_writable_folder,
    file_lock,
    remove_stale_temps,
)
from ..progress import case_log_prefix
from ..provenance import file_digest, software
from ..stats import diameter_shown
from ..tables import safe_cell
from .data import NO_LIVER, case_fingerprint, index_cases, load_case, read_split
from .metrics import (
    NSD_TOLERANCE_MM,
    case_scores,
    case_surface_scores,
    class_masks,
    conspicuity_columns,
    crop_box,
    format_table,
    hcc_to_output,
    lesion_detection,
    lesion_table,
    lesions_by_size,
    longest_diameter_mm,
    size_stratum,
    summarize,
)

log = logging.getLogger(__name__)
#: the folder under ``out_dir`` of ``save_labels``' label maps (``labels.interrupted`` those of
#: a run stopped over an earlier evaluation, ``labels.partial`` while a run writes them)
LABELS_DIR = "labels"
LABELS_STAGING = "labels.partial"
#: how lesions are matched (``metrics.lesion_detection``), recorded in the summary
LESION_MATCHING = {"min_ml": 0.1, "min_overlap": 0.1, "connectivity": 26}
_MATCHING = {k: LESION_MATCHING[k] for k in ("min_ml", "min_overlap")}
#: reasons a scan of a folder evaluated whole is left out that are no failure of the run: a
#: copy of a scan that was scored, a second image of a case, no ground truth to score against
_NOT_FAILURES = ("a copy of ", "no label file ")
_NOT_FAILURE_WORDS = ("no DICOM SEG", "a second image of the case")
#: reasons a scan is left out for want of a ground truth (NIfTI's, TCIA's)
_NO_TRUTH = ("no label file ", "no DICOM SEG")


def not_evaluated_kinds(not_evaluated: list[dict[str, Any]]) -> list[str]:
    """The test patients not evaluated, counted by kind: those that could not be scored (the
    run's failures) first, then those without a ground truth, then the others left out
    (copies, beyond --max-cases), e.g. ``["4 could not be scored", "1 has no ground truth"]``.
    Said beside the counts of the run (over the cases with a ground truth, over those asked
    for, over the failures), which read as contradictory without them."""
    failed = sum(1 for n in not_evaluated if n.get("failed", True))
    truthless = sum(
        1
        for n in not_evaluated
        if not n.get("failed", True) and str(n.get("reason", "")).startswith(_NO_TRUTH)
    )
    others = len(not_evaluated) - failed - truthless
    kinds = [f"{failed} could not be scored"] if failed else []
    if truthless:
        kinds.append(f"{truthless} {'has' if truthless == 1 else 'have'} no ground truth")
    if others:
        kinds.append(f"{others} left out")
    return kinds


@contextlib.contextmanager
def _evaluation_lock(out: Path):
    """Hold ``out``'s evaluation lock (:data:`LOCK_FILE`, the OS's lock: a killed run leaves
    none that holds) for the block; refuse when another evaluation holds it. The folder is
    made for it, and removed again when the run leaves nothing in it (refused, say)."""
    made = []  # the folders made for it, deepest first (a new -o deep/a/ev had none: unlocked)
    probe = out
    while not probe.exists() and probe.parent != probe:
        made.append(probe)
        probe = probe.parent
    if made and probe.is_dir():
        try:
            out.mkdir(parents=True)
        except OSError:  # the run says why it cannot write there
            made = []
    else:
        made = []
    try:
        with file_lock(out / LOCK_FILE) as held:
            if not held:
                raise InputError(
                    out,
                    "another evaluation is writing its results into this folder now; nothing "
                    "was changed: wait for it to end, or choose another folder",
                )
            yield
    finally:
        for folder in made:  # those the run left empty (refused, say): not left behind
            try:
                folder.rmdir()
            except OSError:
                break


#: the lock file an evaluation holds in its output folder while it runs
LOCK_FILE = ".livertumor-evaluate.lock"


def _check_path_lengths(out: Path, case_ids=()) -> None:
    """Refuse an output folder where the evaluation's files would pass Windows' path limit
    (where it applies), before anything is written: the results and the state for
    ``--resume`` (their ``.interrupted`` names the longest), and the label maps of
    ``case_ids`` (``save_labels``: written into ``labels.partial/``, then moved); they failed
    once the first patient was scored, or at the end."""
    files = [out / name for name in (*_all_result_files(), RESUME_FILE)]
    files += [out / LABELS_STAGING / f"{case}_labels.nii.gz" for case in case_ids]
    maps = [out / (LABELS_DIR + INTERRUPTED) / f"{case}_labels.nii.gz" for case in case_ids]
    check_path_lengths(out, files, direct=[out / LOCK_FILE, *maps])


def _one_at_a_time(func):
    """``func`` (:func:`evaluate`) under its output folder's lock when it has one."""

    @functools.wraps(func)
    def locked(data, **kwargs):
        out_dir = kwargs.get("out_dir")
        if out_dir is None:
            return func(data, **kwargs)
        # (Windows' path limit: the lock's, before it is taken; the rest once the patients
        # are known, in the function)
        check_path_lengths(out_dir, direct=[Path(out_dir) / LOCK_FILE])
        with _evaluation_lock(Path(out_dir)):
            return func(data, **kwargs)

    return locked


@_one_at_a_time
def evaluate(
    data: str | Path,
    *,
    models: str | Path | None = None,
    split_file: str | Path | None = None,
    out_dir: str | Path | None = None,
    device: str = "auto",
    refine: bool = False,
    tta: str = "none",
    max_cases: int | None = None,
    overwrite: bool = False,
    save_labels: bool = False,
    nsd_tolerance_mm: float = NSD_TOLERANCE_MM,
    resume: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Segment the test patients of ``data`` and score them.

    Parameters
    ----------
    data : path
        Data folder (NIfTI or HCC-TACE-Seg layout) with ground truth.
    models : path, optional
        Folder holding ``liver/`` and ``tumor/`` model folders (default: the shipped models).
    split_file : path, optional
        Split JSON; its ``test`` list is evaluated. Default: the ``split.json`` that training
        wrote beside the models (``<models>/tumor/split.json``), else every case in ``data``.
    out_dir : path, optional
        Where ``per_case.csv`` and ``summary.json`` are written.
    refine, tta
        :class:`~napari_livertumor.pipeline.InferenceConfig` ``refine`` and ``tta`` (the tumor
        stage's mirrored passes), recorded in the summary.
    overwrite : bool
        Replace the results of an earlier evaluation in ``out_dir`` (refused otherwise).
    save_labels : bool
        Also write each patient's predicted label map, as scored, to
        ``out_dir/labels/<case>_labels.nii.gz`` (0/1/2 on the CT's own grid), so that every
        figure can be recomputed.
    nsd_tolerance_mm : float
        Tolerance of the surface Dice (``<class>_nsd``), mm.
    resume : bool
        Go on with the evaluation stopped in ``out_dir`` (its :data:`RESUME_FILE`): the
        patients it scored are kept, not segmented again, and the others are scored; refused
        when the data, models, split, settings or test patients differ from that run's. The
        file is written as the run starts and after each patient scored, so a run killed
        outright (kill -9, the OOM killer, a scheduler's) is resumed as a stopped one is.

    One evaluation at a time writes into an ``out_dir``: another one going on there (another
    terminal, a job resubmitted) is refused with an :class:`InputError`, as results mixed from
    the two runs would pass for one.

    Returns
    -------
    dict
        ``summary`` (see :func:`metrics.summarize`), ``rows`` (per case), ``table`` (text).
    """
    from ..pipeline import InferenceConfig, Segmenter

    _SAID.clear()
    began = time.time()  # (temporary files older than the run are a killed earlier one's)

    # a wrong models folder (or setting) is said first, before any split file is looked for
    # beside it and before the data is read
    if models and not Path(models).exists():
        raise InputError(models, "models folder not found (it should hold liver/ and tumor/)")
    cfg = (
        InferenceConfig.from_models_dir(models, device=device, refine=refine, tta=tta)
        if models
        else InferenceConfig(device=device, refine=refine, tta=tta)
    )
    cfg.validate()
    if max_cases is not None and max_cases < 1:
        raise SettingsError(f"max_cases must be at least 1 (or unset: all), got {max_cases}")
    if not (np.isfinite(nsd_tolerance_mm) and nsd_tolerance_mm > 0):
        raise SettingsError(
            f"the NSD tolerance must be a positive number of mm, got {nsd_tolerance_mm}"
        )
    if save_labels and out_dir is None:
        raise SettingsError("save_labels needs an out_dir to write the label maps into")
    stopped_run = None
    if resume:
        if out_dir is None:
            raise SettingsError("resume needs the out_dir of the evaluation that was stopped")
        stopped_run = _read_resume(Path(out_dir))
    if out_dir is not None and stopped_run is None:  # found out now, not after every case
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError(out, "the output must be a folder, and this is a file")
        earlier = [n for n in _all_result_files() if (out / n).exists()]
        for folder in (LABELS_DIR, LABELS_DIR + INTERRUPTED):  # an earlier run's label maps
            if (out / folder).is_dir() and any((out / folder).iterdir()):
                earlier.append(f"{folder}/")
        # a run killed outright (kill -9, the OOM killer) wrote no results, or some of them:
        # its state names the patients it scored, which --resume keeps (it was refused as "a
        # complete earlier evaluation", or not at all when it had written nothing else, and
        # every patient was scored again)
        resumable = _stopped_here(out)
        if resumable:
            earlier.append(RESUME_FILE)
        if earlier and not overwrite:
            which = "an earlier evaluation"
            stopped = resumable or any(".interrupted." in n for n in earlier)  # (over a whole)
            try:  # a stopped one is said as such: --overwrite is how it is finished
                stopped = stopped or bool(
                    json.loads((out / "summary.json").read_text(encoding="utf-8")).get(
                        "interrupted"
                    )
                )
            except (OSError, ValueError, AttributeError):
                pass
            if stopped:
                which = "an earlier evaluation that was stopped before its end"
            raise InputError(
                out,
                f"already holds {' and '.join(earlier)} of {which}; nothing was "
                + (
                    "overwritten: --resume goes on with it (the patients scored kept), "
                    "--overwrite evaluates every patient again, or choose another folder"
                    if resumable
                    else "overwritten: choose another folder, or --overwrite to replace them "
                    "(every patient is evaluated again)"
                ),
            )
        # writable (or creatable) now, not after every case has run; made when written
        check_writable_folder(out)
        if save_labels and (out / LABELS_DIR).is_dir():  # (the maps go there at the end)
            check_writable_folder(out / LABELS_DIR)
    index_skipped: list = []
    records = index_cases(data, index_skipped)
    by_id = {r.case_id: r for r in records}
    # the cases here without a ground truth: the split's caution counts the others
    truthless = sum(1 for _c, why in index_skipped if str(why).startswith(_NO_TRUTH))
    test_ids, split_source = _test_ids(records, models, split_file, truthless)
    # every test patient asked for and not scored is named with its reason, on screen and in
    # summary.json: a figure over 1 of 3 patients must not pass for one over 3
    why_skipped = {str(c): str(why) for c, why in index_skipped}
    # "failed": a patient that should have been scored and was not (the command's exit status
    # says it); a scan without a ground truth in a folder evaluated whole, a copy of a scan
    # scored, or one beyond --max-cases is only named
    not_evaluated: list[dict[str, Any]] = []
    for c in test_ids:
        if c not in by_id:
            reason = why_skipped.get(c, f"not in {data}")
            not_evaluated.append({"case": c, "reason": reason, "failed": True})
    if split_source.startswith("all cases"):  # every patient was asked for: each unreadable one too
        asked = set(test_ids)
        for c, why in why_skipped.items():
            if c not in asked:
                test_ids = [*test_ids, c]
                failed = not why.startswith(_NOT_FAILURES)
                failed = failed and not any(w in why for w in _NOT_FAILURE_WORDS)
                not_evaluated.append({"case": c, "reason": why, "failed": failed})
    if max_cases is not None:
        # with --max-cases, a patient that could not be read fails the run only when it lies
        # within the cap (the split's order; the folder's, by name, for all cases): any cap
        # had made every unreadable patient "not failed" (exit 0 on a cohort of 3, cap 10)
        in_order = sorted(test_ids) if split_source.startswith("all cases") else test_ids
        for n in not_evaluated:
            if n["failed"] and n["case"] in in_order:
                before = in_order[: in_order.index(n["case"])]
                n["failed"] = sum(1 for c in before if c in by_id) < max_cases
    if not_evaluated:
        log.warning(
            "%d test patient(s)%s cannot be evaluated: %s%s",
            len(not_evaluated),
            "" if split_source.startswith("all cases") else " of the split",
            "; ".join(f"{n['case']} ({n['reason']})" for n in not_evaluated[:8]),
            f" and {len(not_evaluated) - 8} more (summary.json)" if len(not_evaluated) > 8 else "",
        )
    present = [by_id[c] for c in test_ids if c in by_id]
    test = present[: max_cases or None]
    if not test:
        raise InputError(data, "no test patient of the split is in this data folder")
    if out_dir is not None:  # the label maps' names known: before the first is written
        _check_path_lengths(Path(out_dir), [r.case_id for r in test] if save_labels else ())
    for rec in present[len(test) :]:  # named, as every test patient not scored
        not_evaluated.append(
            {"case": rec.case_id, "reason": f"beyond --max-cases {max_cases}", "failed": False}
        )
    # of the patients scored only: with --max-cases 2 it named all 6 of the split as "seen in
    # training" (a caution and summary.json's list), 4 of them never scored
    seen = _seen_in_training([rec.case_id for rec in test], models, by_id)
    seg = Segmenter(cfg)
    rows: list[dict[str, Any]] = []
    lesion_rows: list[dict[str, Any]] = []
    fingerprint = _run_fingerprint(
        data, seg, split_source, split_file, [r.case_id for r in test],
        refine=refine, tta=tta, nsd_tolerance_mm=nsd_tolerance_mm, save_labels=save_labels,
    )  # fmt: skip
    staging = Path(out_dir) / LABELS_STAGING if save_labels else None
    # one label map per patient on a case-insensitive disk too (macOS, Windows, SMB, exFAT):
    # PatA's and pata's were one file there, the second scored overwriting the first, unsaid.
    # Named over the patients to score, who are the stopped run's when resumed (fingerprint)
    map_names = _label_map_names([r.case_id for r in test]) if save_labels else {}
    if stopped_run is not None:  # refused before anything is made when run otherwise
        _check_resume(stopped_run, fingerprint, Path(out_dir))
    # a stop leaves this run's results beside those of a complete evaluation there (replaced
    # by --overwrite only when this run is complete too), a resumed run's as its stopped one
    beside = (
        bool(stopped_run.get("beside"))
        if stopped_run is not None
        else out_dir is not None and any((Path(out_dir) / n).exists() for n in RESULT_FILES)
    )
    resume_file = Path(out_dir) / RESUME_FILE if out_dir is not None else None
    had_state = resume_file is not None and resume_file.is_file()
    unsaved: list[str] = []  # (a state that could not be written: said once)

    def save_state() -> None:
        # what --resume goes on from, kept up to date as the run goes: a kill -9 (the OOM
        # killer, a scheduler's) runs no way out, and a state written only there left such a
        # run nothing to resume (every patient was scored again)
        if resume_file is not None:
            _save_resume(resume_file, fingerprint, rows, lesion_rows, beside, unsaved)

    if stopped_run is None:
        # this run's from the start: an earlier run's state there (--overwrite) no longer
        # describes the folder once the staged maps it may count on are emptied below
        save_state()
    if staging is not None:  # (the stopped run's maps staged there kept: _resumed)
        _fresh(staging, keep=_map_names(stopped_run["rows"], map_names) if stopped_run else ())
    if stopped_run is not None:  # the patients it scored: kept, the others scored now
        rows, lesion_rows = _resumed(stopped_run, Path(out_dir), staging, map_names)
        save_state()  # (without a patient whose map was gone: scored again)
        was_software = stopped_run.get("software")
        if was_software and was_software != software():  # half the rows by another version
            log.warning(
                "the evaluation stopped in %s was run with another version (%s); the patients "
                "it scored are kept as they were (summary.json: software_of_earlier_rows)",
                out_dir,
                was_software,
            )
        done = {r["case"] for r in rows}
        test = [r for r in test if r.case_id not in done]
        log.info(
            "resuming the evaluation in %s: %d patient(s) scored before, %d to go",
            out_dir, len(done), len(test),
        )  # fmt: skip
    interrupted: KeyboardInterrupt | None = None
    try:
        _score_cases(
            test,
            seg,
            rows,
            not_evaluated,
            should_cancel=should_cancel,
            progress=progress,
            # staged apart: a run stopped over an earlier evaluation keeps its maps with its
            # results (the earlier maps were replaced as each patient was scored)
            labels_dir=staging,
            map_names=map_names,
            nsd_tolerance_mm=nsd_tolerance_mm,
            lesions=lesion_rows,
            on_scored=save_state,
        )
    except (KeyboardInterrupt, Exception) as exc:  # Ctrl-C, SIGTERM, a surprise: the cases
        interrupted = exc  # scored are written, then it ends
        done = {r["case"] for r in rows} | {n["case"] for n in not_evaluated}
        why = (
            "stopped (interrupted) before it was scored"
            if isinstance(exc, (KeyboardInterrupt, Cancelled))
            else f"stopped by an error before it was scored ({type(exc).__name__}: {exc})"
        )
        not_evaluated += [{"case": r.case_id, "reason": why} for r in test if r.case_id not in done]
    # a stop asked for between cases (should_cancel) leaves part results too: kept apart as an
    # interruption's are, never in place of an earlier complete evaluation
    stopped = interrupted is not None or any(n["reason"] == STOPPED for n in not_evaluated)
    summary = summarize(rows, nsd_tolerance_mm=nsd_tolerance_mm)
    true_lesions = [t["dice"] for t in lesion_rows if t["kind"] == "true"]
    if true_lesions:  # each true lesion's own Dice (lesions.csv), LiTS's per-lesion figure
        summary["lesions"]["dice_per_true_lesion_mean"] = float(np.mean(true_lesions))
    summary["lesions_by_size"] = lesions_by_size(lesion_rows)
    # the split file as a full path (the data folder is one): a relative one named no file
    # once the summary was read elsewhere
    summary["split"] = (
        str(Path(split_file).absolute())
        if split_file and split_source == str(split_file)
        else split_source
    )
    summary["lesion_matching"] = dict(LESION_MATCHING)
    if save_labels:  # (labels.interrupted beside an earlier evaluation's: see _settle_labels)
        summary["labels"] = str((Path(out_dir) / LABELS_DIR).absolute())
        renamed = {c: _map_name(c, map_names) for c, n in map_names.items() if n != c}
        if renamed:  # the tables name the patient; its map is found by this
            summary["label_files"] = renamed
    summary["models"] = str(models) if models else "shipped defaults"
    # the folders the patients were segmented with (a missing ROOT/liver falls back to the
    # shipped model, said only on screen before), each with what changes its masks
    summary["models_used"] = {
        stage: {
            "path": str(getattr(m, "path", "")),
            "members": m.metadata.members,
            "logit_bias": None if m.metadata.logit_bias is None else list(m.metadata.logit_bias),
        }
        for stage, m in (("liver", seg.liver), ("tumor", getattr(seg, "tumor", None)))
        if m is not None
    }
    for used in summary["models_used"].values():
        if used["path"]:  # the files themselves (a model retrained in place keeps its path)
            used["weights_sha1"] = _file_digest_or_none(Path(used["path"]) / "model.safetensors")
            used["metadata_sha1"] = _file_digest_or_none(Path(used["path"]) / "metadata.json")
    if getattr(seg, "tumor", None) is not None and hasattr(seg, "lesion_filter"):
        min_ml, min_peak = seg.lesion_filter()  # the model's own, as the masks were made
        summary["lesion_filter"] = {"min_ml": min_ml, "min_peak": min_peak}
    summary["data"] = str(Path(data).resolve())
    # the file that named the test patients (--split's or the models' own): it may change after
    used_split = split_file or (
        None if split_source.startswith("all cases") else split_source.split(" (+", 1)[0]
    )
    if used_split is not None:
        summary["split_sha1"] = _file_digest_or_none(Path(used_split))
    summary["refine"] = refine
    summary["tta"] = tta
    summary["device"] = str(seg.device)
    summary["software"] = software()
    if stopped_run is not None and stopped_run.get("software") not in (None, summary["software"]):
        summary["software_of_earlier_rows"] = stopped_run.get("software")
    summary["test_patients_asked"] = len(test_ids)
    summary["not_evaluated"] = not_evaluated
    summary["test_patients_seen_in_training"] = seen
    # what was said about the split and the data (patients named as training ones, a split of
    # other data): on screen only before, where "seen: {}" read as "none seen"
    summary["cautions"] = [message % args if args else message for message, args in _SAID]
    table = format_table(summary)
    for stage, ids in seen.items():
        table += (
            f"\nNot held out: the {stage} model trained or validated on {len(ids)} of the "
            f"{len(test)} test patients evaluated ({', '.join(ids[:8])}"
            f"{', …' if len(ids) > 8 else ''})"
        )
    doubtful = [r for r in rows if r.get("truth_warnings")]
    if doubtful:
        table += (
            f"\nGround truth read with warnings for {len(doubtful)} scored patient(s) (their "
            "scores may cover part of the patient; per_case.csv, truth_warnings): "
            + "; ".join(f"{r['case']} ({r['truth_warnings']})" for r in doubtful[:4])
            + (f" and {len(doubtful) - 4} more" if len(doubtful) > 4 else "")
        )
    # a scan's own warnings (slices filled in, NaNs, a liver cut by the field of view):
    # segment says them on screen, here they were only a CSV column; the run's own (a weak
    # model, CUDA asked for and absent), the same for every patient, are not repeated
    model_notes = list(seg.warnings)
    warned = [(r["case"], _case_own(r.get("warnings") or "", model_notes)) for r in rows]
    warned = [(case, w) for case, w in warned if w]
    if warned:
        table += "\n" + _warned_line(warned)
    if not_evaluated:
        kinds = not_evaluated_kinds(not_evaluated)
        table += (
            f"\nNot evaluated: {len(not_evaluated)} of the {len(test_ids)} test patients asked "
            "for" + (f" ({', '.join(kinds)})" if len(kinds) > 1 else "") + ": "
            + "; ".join(f"{n['case']} ({n['reason']})" for n in not_evaluated[:8])
        )  # fmt: skip
        if len(not_evaluated) > 8:
            table += f" and {len(not_evaluated) - 8} more (summary.json)"
    if stopped:
        summary["interrupted"] = True
    if out_dir is not None and (rows or interrupted is None):
        # an earlier evaluation's results (replaced by --overwrite) give way to complete ones
        # only: a run stopped part-way writes its own beside them (a resumed run's earlier
        # results are its own part ones, unless it was stopped beside a complete evaluation)
        earlier = beside
        if save_labels and stopped and earlier:  # where _settle_labels puts them
            summary["labels"] = str((Path(out_dir) / (LABELS_DIR + INTERRUPTED)).absolute())
        if earlier and not stopped:
            # complete, it takes the earlier evaluation's place from here: killed while its
            # maps and results go in, it is resumed as that (its maps in labels/, the earlier
            # ones' gone), not as results beside the earlier ones
            beside = False
            save_state()
        # the maps first: results written before them described maps not (yet) there when
        # moving them failed, or a stop came in between
        unsettled: OSError | None = None
        try:
            _settle_labels(
                Path(out_dir), save_labels, beside=stopped and earlier, complete=not stopped
            )
        except OSError as exc:
            unsettled = exc
            staged = (Path(out_dir) / LABELS_STAGING).absolute()
            summary["labels"] = str(staged)
            summary["labels_not_moved"] = f"{exc}: the label maps of this run are in {staged}"
        # what a run killed while writing them left (the folder's lock keeps other
        # evaluations out; the files of before this run began are none of this run's)
        for name in (*_all_result_files(), RESUME_FILE):
            remove_stale_temps(Path(out_dir) / name, time.time() - began, ".tmp")
        write_results(
            out_dir,
            rows,
            summary,
            suffix=INTERRUPTED if stopped and earlier else "",
            lesions=lesion_rows,
        )
        if stopped:  # what --resume goes on from: these rows, exactly as scored
            _write_resume(resume_file, fingerprint, rows, lesion_rows, beside=earlier)
        else:
            # a stopped earlier run's part results are replaced with the rest; the state goes
            # last (killed before, the run is resumed: nothing is left to score)
            for name in _all_result_files()[len(RESULT_FILES) :]:
                with contextlib.suppress(FileNotFoundError):
                    (Path(out_dir) / name).unlink()
            resume_file.unlink(missing_ok=True)
        if unsettled is not None and interrupted is None:
            raise InputError(
                getattr(unsettled, "filename", None) or Path(out_dir) / LABELS_DIR,
                f"the label maps could not be moved there ({unsettled.strerror or unsettled}); "
                f"they are in {Path(out_dir) / LABELS_STAGING}, and the results written "
                "(summary.json says where the maps are)",
            ) from unsettled
    elif out_dir is not None:  # nothing scored: nothing kept
        if save_labels:
            shutil.rmtree(Path(out_dir) / LABELS_STAGING, ignore_errors=True)
        if stopped_run is None and not had_state:  # (its state, of no patient: none to resume)
            resume_file.unlink(missing_ok=True)
    if interrupted is not None:
        raise interrupted
    return {"summary": summary, "rows": rows, "table": table, "lesions": lesion_rows}


#: written beside a stopped evaluation's results: its rows as scored and what they were
#: scored with, for ``evaluate --resume``; removed once an evaluation there is complete
RESUME_FILE = "evaluation.resume.json"


def _run_fingerprint(
    data, seg, split_source, split_file, test_ids, *, refine, tta, nsd_tolerance_mm, save_labels
) -> dict[str, Any]:
    """What a resumed evaluation must share with the stopped one for their rows to be one
    evaluation's: the data, each model's files, the split and its test patients, the
    settings."""
    models = {}
    for stage, m in (("liver", seg.liver), ("tumor", getattr(seg, "tumor", None))):
        if m is not None and getattr(m, "path", None):
            models[stage] = {
                "path": str(Path(m.path).resolve()),
                "weights_sha1": _file_digest_or_none(Path(m.path) / "model.safetensors"),
                "metadata_sha1": _file_digest_or_none(Path(m.path) / "metadata.json"),
            }
    return {
        "data": str(Path(data).resolve()),
        "models": models,
        # a file as a full path (the same file given from another folder is the same split)
        "split": str(Path(split_file).resolve()) if split_file else split_source,
        "split_sha1": _file_digest_or_none(Path(split_file)) if split_file else None,
        "test_patients": list(test_ids),
        "refine": bool(refine),
        "tta": str(tta),
        "nsd_tolerance_mm": float(nsd_tolerance_mm),
        "save_labels": bool(save_labels),
    }


def _chosen_by_truth(warning: str) -> bool:
    """Whether ``warning`` is only the reader's note of a study's other series, when the
    series read was the one the ground truth references (no warning: the right scan)."""
    from ..io.dicom import OTHERS_NOT_READ

    # (one naming another study of the patient stays: its ground truth was not scored)
    return (
        OTHERS_NOT_READ in warning
        and "its DICOM SEG references" in warning
        and "another study" not in warning
    )


def _save_resume(path: Path, fingerprint, rows, lesions, beside: bool, unsaved: list) -> None:
    """:func:`_write_resume` as the run goes: a state that cannot be written (a full disk) is
    said once, and the run goes on (only a run killed outright needs it; a stop writes it
    again on the way out)."""
    try:
        _write_resume(path, fingerprint, rows, lesions, beside=beside)
    except OSError as exc:
        if not unsaved:
            log.warning(
                "%s could not be written (%s): a run killed outright now could not be "
                "resumed from the patients it scored",
                path,
                exc.strerror or exc,
            )
        unsaved.append(path)


def _stopped_here(out: Path) -> bool:
    """Whether ``out`` holds a stopped evaluation to resume: its :data:`RESUME_FILE`, listing a
    patient scored (a run killed before its first one has nothing to keep), or one that cannot
    be read (``--resume`` says why)."""
    path = out / RESUME_FILE
    if not path.is_file():
        return False
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(state, dict) or bool(state.get("rows"))


def _map_names(rows, names: dict[str, str]) -> set[str]:
    """The label maps' file names of ``rows`` (a resume file's)."""
    return {_map_name(r["case"], names) for r in rows if isinstance(r, dict) and "case" in r}


def _map_name(case: str, names: dict[str, str]) -> str:
    """The file name of ``case``'s label map (``names``: :func:`_label_map_names`)."""
    return f"{names.get(case, case)}_labels.nii.gz"


def _label_map_names(cases) -> dict[str, str]:
    """Each patient → the name its label map goes by: its own, or ``pata_2`` beside a
    ``PatA`` (one file on a case-insensitive disk), said (the tables keep the patient's ID)."""
    from ..fileio import unique_file_names

    names, notes = unique_file_names(cases, what="patients")
    for note in notes:
        _warn_once("--save-labels: %s_labels.nii.gz", note)
    return names


def _write_resume(path: Path, fingerprint, rows, lesions, *, beside: bool) -> None:
    state = {
        "fingerprint": fingerprint,
        "software": software(),
        "rows": rows,
        "lesions": lesions,
        "beside": bool(beside),  # its results written beside a complete evaluation's
    }
    atomic_write_text(path, json.dumps(state, indent=1, default=str))


def _read_resume(out: Path) -> dict[str, Any]:
    path = out / RESUME_FILE
    if not out.is_dir():
        raise InputError(out, "folder not found: --resume goes on in the folder of a stopped run")
    if not path.is_file():
        try:
            summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
            stopped = bool(summary.get("interrupted"))
        except (OSError, ValueError, AttributeError):
            summary, stopped = None, False
        raise InputError(
            out,
            "holds no stopped evaluation to resume"
            + (
                " (the evaluation there is complete)"
                if summary is not None and not stopped
                else f" (it was stopped by an earlier version, which wrote no {RESUME_FILE}: "
                "--overwrite evaluates every patient again)"
                if stopped
                else ""
            ),
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not (
            isinstance(state, dict)
            and isinstance(state.get("rows"), list)
            and isinstance(state.get("fingerprint"), dict)
        ):
            raise ValueError("not this tool's resume file")
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot be read to resume from ({exc})") from exc
    return state


#: what each part of a resume's fingerprint is, as the refusal names it
_RESUME_WORDS = {
    "data": "data folder",
    "models": "models (their files)",
    "split": "split file",
    "split_sha1": "split file's content",
    "test_patients": "test patients (the split, or --max-cases)",
    "refine": "--refine",
    "tta": "--tta",
    "nsd_tolerance_mm": "--nsd-tolerance",
    "save_labels": "--save-labels",
}


def _check_resume(state, fingerprint, out: Path) -> None:
    """Refuse (naming what differs) a resume run otherwise than the stopped evaluation."""
    was = state.get("fingerprint") or {}
    differ = [k for k in fingerprint if was.get(k) != fingerprint[k]]
    if differ:
        raise InputError(
            out / RESUME_FILE,
            "the evaluation stopped there differs from this one in: "
            + ", ".join(_RESUME_WORDS.get(k, k.replace("_", " ")) for k in differ)
            + "; resume it with the same data, models and options, or start again with "
            "--overwrite",
        )


def _resumed(state, out: Path, staging: Path | None, names: dict[str, str]):
    """The stopped run's rows and lesion rows, its label maps staged again with this run's;
    a patient whose map is gone is scored again (its rows dropped, said)."""
    rows = [r for r in state["rows"] if isinstance(r, dict) and "case" in r]
    lesions = [r for r in state.get("lesions") or [] if isinstance(r, dict)]
    if staging is not None:  # its maps go with this run's into the folder the results go to
        where = out / (LABELS_DIR + INTERRUPTED if state.get("beside") else LABELS_DIR)
        missing = []
        for r in rows:
            name = _map_name(r["case"], names)
            if (staging / name).is_file():  # still staged: a run killed before it moved them
                continue
            if (where / name).is_file():
                # whole or not there (a copy cut short by a kill must not pass for the map)
                with atomic_path(staging / name, suffix=".nii.gz") as tmp:
                    shutil.copy2(where / name, tmp)
            else:
                missing.append(r["case"])
        if missing:
            log.warning(
                "%s lacks the label maps of %d patient(s) the stopped evaluation scored (%s): "
                "they are scored again",
                where,
                len(missing),
                ", ".join(missing[:4]) + (", …" if len(missing) > 4 else ""),
            )
            rows = [r for r in rows if r["case"] not in missing]
            lesions = [r for r in lesions if r.get("case") not in missing]
    return rows, lesions


def _fresh(folder: Path, keep=()) -> Path:
    """``folder`` emptied (a crashed run's leftovers) but for its files named in ``keep``, and
    made."""
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    elif folder.is_dir() and not folder.is_symlink():
        for p in folder.iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.name not in keep or p.is_symlink():
                p.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _settle_labels(out: Path, saved: bool, *, beside: bool, complete: bool) -> None:
    """Put the label maps staged in ``out/labels.partial`` where the results went: beside an
    earlier evaluation's (``labels.interrupted``, when ``beside``) or in ``labels/``, whose maps
    of patients not scored now go with a complete run's (they were the replaced evaluation's,
    with --save-labels or not)."""
    staged = out / LABELS_STAGING
    final = out / (LABELS_DIR + INTERRUPTED if beside else LABELS_DIR)
    if complete:
        keep = {p.name for p in staged.glob("*_labels.nii.gz")} if saved else set()
        old = [p for p in (out / LABELS_DIR).glob("*_labels.nii.gz") if p.name not in keep]
        if old:
            log.info("%d label map(s) of the evaluation replaced removed from %s", len(old),
                     out / LABELS_DIR)  # fmt: skip
        for p in old:
            p.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (out / LABELS_DIR).rmdir()  # (only when left empty)
        shutil.rmtree(out / (LABELS_DIR + INTERRUPTED), ignore_errors=True)
    if not saved:
        if beside:  # the stopped run replaced (its results, beside the earlier ones) had maps
            shutil.rmtree(out / (LABELS_DIR + INTERRUPTED), ignore_errors=True)
        return
    if beside:
        shutil.rmtree(final, ignore_errors=True)
        staged.rename(final)
        return
    final.mkdir(parents=True, exist_ok=True)
    for p in staged.glob("*_labels.nii.gz"):
        p.replace(final / p.name)
    shutil.rmtree(staged, ignore_errors=True)


def _score_cases(
    test,
    seg,
    rows,
    not_evaluated,
    *,
    should_cancel=None,
    progress=None,
    labels_dir: Path | None = None,
    map_names: dict[str, str] | None = None,
    nsd_tolerance_mm: float = NSD_TOLERANCE_MM,
    lesions: list | None = None,
    on_scored: Callable[[], None] | None = None,
) -> None:
    """Segment and score each test record into ``rows`` (unreadable ones into
    ``not_evaluated``); a stop asked for between cases names the rest there. With
    ``labels_dir`` each predicted label map is written there as it is scored (named as
    ``map_names`` says, else after the patient); ``lesions``
    gets each case's :func:`metrics.lesion_table` rows (with its ``case``). ``on_scored()`` is
    called once a case's row (and map) is in."""
    for i, rec in enumerate(test):
        if should_cancel is not None and should_cancel():
            not_evaluated += [{"case": r.case_id, "reason": STOPPED} for r in test[i:]]
            break
        if progress is not None:
            progress("evaluate", i, len(test))
        try:
            ct, hcc = load_case(rec)
        except Exception as exc:
            log.warning("skipping %s: %s", rec.case_id, exc)
            # a file that reads but does not fit its CT, or holds no liver, is no "unreadable"
            # one
            reads = isinstance(exc, InputError) and (
                "another grid" in str(exc) or NO_LIVER in str(exc)
            )
            why = str(exc) if reads else f"unreadable: {exc}"
            not_evaluated.append({"case": rec.case_id, "reason": why})
            continue
        t0 = time.perf_counter()
        try:
            with case_log_prefix(rec.case_id):  # the refinement's notes say whose they are
                result = seg.segment(ct)
        except Cancelled:
            raise
        except InputError as exc:  # one scan the pipeline refuses (a single slice, not CT…)
            log.warning("not segmented %s: %s", rec.case_id, exc)
            not_evaluated.append({"case": rec.case_id, "reason": f"not segmented: {exc}"})
            continue
        except (LiverTumorError, OSError, RuntimeError, ValueError, MemoryError) as exc:
            # one case out of memory (a big scan, the GPU's) costs that case, not the scores
            # of every case before it
            from ..memory import out_of_memory

            oom = out_of_memory(exc)  # (torch's allocator line said in words)
            text = (
                f"out of {'GPU ' if oom[0] else ''}memory ({oom[1]})"
                if oom is not None
                else str(exc)
            )
            log.error("not segmented %s: %s", rec.case_id, text)
            not_evaluated.append({"case": rec.case_id, "reason": f"failed: {text}"})
            continue
        seconds = time.perf_counter() - t0
        truth = hcc_to_output(hcc)
        row: dict[str, Any] = {"case": rec.case_id}
        row.update(case_scores(result.labels, truth))
        # boundaries (HD95, ASSD, NSD), in mm on the CT's own grid
        row.update(
            case_surface_scores(result.labels, truth, ct.spacing, tolerance_mm=nsd_tolerance_mm)
        )
        row.update(lesion_detection(result.labels == 2, truth == 2, ct.spacing, **_MATCHING))
        # how visible each true lesion was: a miss at a CNR under 0.5 is one a reader would
        # hardly see on this phase either
        # (and each lesion's row of lesions.csv: size, diameter, contrast, found, its own Dice)
        axes = np.asarray(ct.affine_lps, float)[:3, :3][:, ::-1].T  # (z, y, x) steps in mm
        table = lesion_table(
            ct.array, truth, result.labels == 2, ct.spacing, axes=axes, **_MATCHING
        )
        row.update(conspicuity_columns([t for t in table if t["kind"] == "true"]))
        if lesions is not None:
            lesions += [{"case": rec.case_id, **t} for t in table]
        diameter = diameter_shown(longest_diameter_mm(truth == 2, ct.spacing, ct.affine_lps))
        # of the true largest lesion; blank without one (a 0 was averaged as a 0-mm lesion)
        row["tumor_longest_diameter_mm"] = diameter if diameter > 0 else None
        axial = _axial_diameter(truth == 2, ct)
        row["tumor_axial_diameter_mm"] = axial if axial > 0 else None
        row["tumor_stratum"] = size_stratum(diameter)  # of the figure shown (100.0 is >=10cm)
        voxel_ml = ct.voxel_volume_ml
        row["liver_ml_true"] = float((truth >= 1).sum()) * voxel_ml
        row["tumor_ml_true"] = float((truth == 2).sum()) * voxel_ml
        row["liver_ml_pred"] = float(result.stats.get("liver_ml", 0.0))
        # blank when the tumor stage never ran (no liver found): not looked for, as segment's
        # stats say (null), not 0 mL found
        tumor_ml = result.stats.get("tumor_ml")
        row["tumor_ml_pred"] = None if tumor_ml is None else float(tumor_ml)
        for cls, pm, tm in class_masks(result.labels, truth):
            # shared volume (the Dice pooled over patients is summed from it) and the relative
            # volume error, as LiTS reports them
            row[f"{cls}_ml_overlap"] = float(np.count_nonzero(pm & tm)) * voxel_ml
            # from the voxel counts: the stats' mL are rounded (296.0004 % for 296 %)
            true_n, pred_n = np.count_nonzero(tm), np.count_nonzero(pm)
            row[f"{cls}_volume_error_pct"] = (
                None
                if row[f"{cls}_ml_pred"] is None or true_n == 0
                else 100.0 * (pred_n - true_n) / true_n
            )
        row["seconds"] = round(seconds, 2)
        # (the other series of a study beside the one its ground truth is drawn on: every
        # HCC-TACE-Seg patient has them, and real warnings were buried under that note)
        row["warnings"] = "; ".join(w for w in result.warnings if not _chosen_by_truth(w))
        row["truth_warnings"] = "; ".join(ct.meta.get("truth_warnings") or [])
        if labels_dir is not None:  # the masks scored, to recompute any figure from
            from ..io.nifti import write_nifti

            labels_dir.mkdir(parents=True, exist_ok=True)
            # on the file's own grid (a RAS-stored NIfTI's too), as `segment` writes it
            stored, grid = ct.to_stored(result.labels)
            name = _map_name(rec.case_id, map_names or {})
            write_nifti(stored, labels_dir / name, reference=grid, labels=True)
        rows.append(row)
        if on_scored is not None:
            on_scored()
        log.info(
            "%s: liver Dice %.3f, tumor Dice %.3f (%.1f s)",
            rec.case_id,
            row["liver_dice"],
            row["tumor_dice"],
            seconds,
        )
    if progress is not None:
        progress("evaluate", len(test), len(test))


def _models_folder(models) -> Path:
    if models:
        return Path(models)
    from ..models import default_model_dir

    return default_model_dir("tumor").parent


def _stage_folder(models, stage: str) -> Path:
    """The folder of the ``stage`` model ``models`` names (where its ``split.json`` is): its
    ``<stage>/``, or for one model's folder that model (its own stage) or the shipped one, as
    :meth:`InferenceConfig.from_models_dir` picks them."""
    folder = _models_folder(models)
    if (folder / "metadata.json").is_file() and not (folder / "liver").is_dir():
        from ..models import default_model_dir, read_metadata

        try:
            own = read_metadata(folder).stage
        except Exception:  # (said when the model is loaded)
            return folder / stage
        return folder if own == stage else default_model_dir(stage)
    return folder / stage


def _test_ids(records, models, split_file, truthless: int = 0) -> tuple[list[str], str]:
    _SAID.clear()  # a new evaluation's cautions (those of the last are said again)
    if split_file:
        split = read_split(split_file, require_train=False)
        if not split.get("test"):
            raise InputError(split_file, "the split file has an empty 'test' list")
        # written as the clinical table may write them ('HCC-3', 'hcc_4'): matched the same way
        test = _named_as_here(split, {r.case_id: r for r in records})["test"]
        return list(dict.fromkeys(test)), str(split_file)
    by_id = {r.case_id: r for r in records}
    everything = [r.case_id for r in records]
    empty = []
    from ..models import default_model_dir

    # the split of a model given first: one liver model's folder (or a liver ensemble) runs
    # beside the shipped tumor model, whose split names another cohort ("other data;
    # evaluating every case": the patients the liver model trained on were scored too)
    given = [s for s in ("tumor", "liver") if _stage_folder(models, s) != default_model_dir(s)]
    for stage in dict.fromkeys([*given, "tumor", "liver"]):
        cand = (_stage_folder(models, stage) / "split.json").absolute()  # (summary: found again)
        if not cand.is_file():
            continue
        split = _named_as_here(read_split(cand), by_id)
        if not split.get("test"):
            empty.append(str(cand))
            continue
        other, new = _split_relation(split, by_id, truthless)
        if other is None:
            tests = list(split["test"])
            if new:  # the same cohort, grown: its new patients were never seen in training
                _warn_once(
                    "%d patient(s) here are in no list of %s (%s): never seen in training, "
                    "evaluated beside its test patients",
                    len(new),
                    cand,
                    ", ".join(new[:5]) + (", …" if len(new) > 5 else ""),
                )
                return tests + new, f"{cand} (+{len(new)} patient(s) new to it)"
            return tests, str(cand)
        # other data than the models were trained on (or another cohort that reuses the
        # names, as HCC_001… do): none of it was seen in training
        used = set(split.get("train") or ()) | set(split.get("val") or ())
        named = [c for c in everything if c in used]
        if named and not any(c in by_id for c in split["test"]):
            # the models' own cohort without its test patients looks just like this: said,
            # not asserted to be other data
            _warn_once(
                "%s: %s, and %d of the cases here have the names of patients the models trained "
                "or validated on (%s): if this is that cohort, their scores are not held-out "
                "scores (give the split with its test patients: --split, or split_file=); "
                "evaluating every case",
                cand,
                other,
                len(named),
                ", ".join(named[:5]) + (", …" if len(named) > 5 else ""),
            )
            return everything, "all cases (the models' test patients are not here)"
        known = _known_by_ground_truth(split, by_id)
        if known:
            # a model shared without its patients' IDs (case-NNN): its split names nobody here,
            # yet the ground truths are its patients'; "this is other data" read as held out
            # beside the fingerprint caution that followed
            _warn_once(
                "%s names its patients otherwise (%s) than the cases here, but %d of the %d "
                "cases here have the ground truth of one of its patients: the same cohort, "
                "whose patient names were removed from the split%s, so its test patients "
                "cannot be picked out by name; evaluating every case (give the split with "
                "its test patients as named here: --split, or split_file=)",
                cand,
                ", ".join(sorted(split["test"])[:3]) + (" …" if len(split["test"]) > 3 else ""),
                len(known),
                len(everything),
                " (a model shared with share-model, without --keep-ids)"
                if _shared_without_ids(cand.parent)
                else "",
            )
            return everything, "all cases (the models' split names its patients otherwise)"
        _warn_once(
            "%s describes the data the models were trained and tested on, but %s: this is "
            "other data; evaluating every case",
            cand,
            other,
        )
        return everything, "all cases (other data than the models' split)"
    if empty:
        _warn_once(
            "%s lists no test patient (every patient was trained or validated on): evaluating "
            "every case in the data folder; scores on patients the models trained on are not "
            "held-out scores",
            " and ".join(empty),
        )
    else:
        _warn_once("no split file: evaluating every case in the data folder")
    return everything, "all cases"


def _known_by_ground_truth(split: dict, by_id: dict) -> list[str]:
    """The cases here whose ground truth is, by its fingerprint, one of ``split``'s patients
    (whatever either is named); none when the split records no fingerprints, or those of the
    other layout (DICOM SEGs against NIfTI label maps cannot be compared)."""
    prints = {fp for fp in (split.get("fingerprints") or {}).values() if fp}
    if not prints:
        return []
    layout = split.get("fingerprint_layout")
    return [
        c
        for c, rec in by_id.items()
        if (not layout or rec.layout == layout) and case_fingerprint(rec) in prints
    ]


def _shared_without_ids(folder: Path) -> bool:
    """Whether the model in ``folder`` was written by share-model with its IDs renamed."""
    from ..fileio import read_user_json

    try:
        meta = read_user_json(folder / "metadata.json")
        shared = (meta.get("training") or {}).get("shared") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(shared, dict) and str(shared.get("patient_ids", "")).startswith("renamed")


def _named_as_here(split: dict, by_id: dict) -> dict:
    """``split`` with each patient named as the case here that is that patient by the
    clinical table's reading of IDs (the split's are read that way: ``HCC_001``), so folders
    renamed ``hcc-1`` or ``HCC 1`` after training are still the patients it lists."""
    from ..io.clinical import normalise_id

    here: dict[str, str] = {}
    for case in by_id:
        here.setdefault(normalise_id(case), case)
    out = dict(split)
    for key in ("train", "val", "test"):
        out[key] = [c if c in by_id else here.get(normalise_id(c), c) for c in split.get(key) or ()]
    prints = split.get("fingerprints")
    if isinstance(prints, dict):
        out["fingerprints"] = {
            (c if c in by_id else here.get(normalise_id(c), c)): v for c, v in prints.items()
        }
    return out


def _seen_in_training(test_ids, models, by_id) -> dict[str, list[str]]:
    """Test patients a model trained or validated on, per stage, by the model's own split
    (when that split describes this data): a liver retrained with another seed or fold, or
    another run's model beside it, has seen some of them."""
    seen: dict[str, list[str]] = {}
    for stage in ("liver", "tumor"):
        cand = _stage_folder(models, stage) / "split.json"
        if not cand.is_file():
            continue
        try:
            split = _named_as_here(read_split(cand, require_train=False), by_id)
        except InputError:
            continue
        both = _same_ground_truth(split, [c for c in test_ids if c in by_id], by_id)
        if not (split.get("test") and _split_relation(split, by_id)[0] is not None):
            # about this data (else its names say nothing about these patients)
            used = set(split.get("train") or ()) | set(split.get("val") or ())
            both = [c for c in test_ids if c in used or c in both]
        if both:
            seen[stage] = both
            _warn_once(
                "the %s model trained or validated on %d of the test patients (%s; %s): its "
                "scores on them are not held-out scores",
                stage,
                len(both),
                ", ".join(both[:5]) + (", …" if len(both) > 5 else ""),
                cand,
            )
    return seen


def _same_ground_truth(split: dict, test_ids: list[str], by_id: dict) -> list[str]:
    """The patients of ``test_ids`` whose ground-truth file is, byte for byte in its voxels,
    that of a patient ``split`` trained or validated on, whatever either is named (a copy of
    the training data under other folder names; training records every listed patient's
    fingerprint since December 2026, earlier splits only their test patients')."""
    prints = split.get("fingerprints") or {}
    used = {str(c) for key in ("train", "val") for c in split.get(key) or ()}
    seen = {fp for c, fp in prints.items() if str(c) in used and fp}
    if not seen:
        return []
    layout = split.get("fingerprint_layout")
    return [
        c
        for c in test_ids
        if (not layout or by_id[c].layout == layout) and case_fingerprint(by_id[c]) in seen
    ]


#: (message, arguments) said in this evaluation: the models' split is looked at twice (for its
#: test list, then for the patients its models saw), and what it has to say is said once
_SAID: dict = {}  # (message, args) -> None, in the order said


def _warn_once(message: str, *args) -> None:
    if (message, args) not in _SAID:
        _SAID[(message, args)] = None
        log.warning(message, *args)


def _split_name(split: dict) -> str:
    """The split file's path as one text however it was reached (the liver's and the tumor's
    models, named relative and absolute, said one warning twice)."""
    path = split.get("_path")
    if not path:
        return "the models' split"
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return str(path)


def _split_relation(split: dict, by_id: dict, truthless: int = 0) -> tuple[str | None, list[str]]:
    """``(why, new)``: why ``split`` (the models' own) is not about this data folder (None
    when it is), and the patients here in none of its lists. ``by_id`` holds the cases with a
    ground truth; ``truthless`` more without one are said apart ("5 of the 5 cases here", of
    a folder of 6 images, read as contradicting the "5 of the 6" not evaluated).

    Patient IDs alone do not tell: every HCC-TACE-Seg-like cohort (ours included) names its
    patients HCC_001…. Training records a fingerprint of each test patient's ground truth
    (:func:`~napari_livertumor.training.data.case_fingerprint`); a test patient here whose
    labels differ is another patient of the same name. Patients in none of its lists are new
    to it (a download that grew): the data is still the data it describes.
    """
    covered = set().union(*(set(split.get(k) or ()) for k in ("train", "val", "test")))
    ids = set(by_id)
    new = sorted(ids - covered)
    present = [c for c in split["test"] if c in by_id]
    not_in = f"{len(new)} of the {len(ids)} cases here are not in it"
    if truthless:
        not_in = (
            f"{len(new)} of the {len(ids)} cases here with a ground truth are not in it "
            f"({truthless} more {'has' if truthless == 1 else 'have'} none)"
        )
    if not present:
        if new:
            return not_in, new
        return "none of its test patients is here", new
    recorded = split.get("fingerprints") or {}
    if not recorded:
        if new:  # names alone, and some unknown to it: not taken for the same data
            return not_in, new
        _warn_once(
            "%s records no fingerprints of its test patients (an older version's split, or "
            "their label files were unreadable when it was written): "
            "assuming patients of the same name here are the same patients",
            _split_name(split),
        )
        return None, new
    layout = split.get("fingerprint_layout")
    here = next(iter(by_id.values())).layout if by_id else None
    if layout and here and layout != here:
        # the same patients written the other way (a NIfTI conversion of the DICOM download)
        # cannot be told from others by their files: the names decide, as without fingerprints
        kinds = {"tcia": "DICOM SEGs", "nifti": "NIfTI label maps"}
        _warn_once(
            "%s fingerprints its test patients' %s and these ground truths are %s: they cannot "
            "be compared, so patients of the same name are taken for the same patients (a "
            "conversion of the training data keeps its split; if this is another cohort, give "
            "its split: --split, or split_file=)",
            _split_name(split),
            kinds.get(layout, layout),
            kinds.get(here, here),
        )
        return None, new
    differ = [c for c in present if c in recorded and case_fingerprint(by_id[c]) != recorded[c]]
    if differ:
        return (
            f"the ground truth here differs from its test patients' for {len(differ)} of the "
            f"{len(present)} found here (of {len(split['test'])}; e.g. {differ[0]})"
        ), new
    return None, new


#: what an evaluation writes in its folder; a run interrupted over an earlier one's results
#: writes them with :data:`INTERRUPTED` before the ending, and leaves the earlier ones
RESULT_FILES = ("per_case.csv", "summary.json", "lesions.csv")
#: the reason given for each test patient a stop (``should_cancel``) came before
STOPPED = "stopped before it"
INTERRUPTED = ".interrupted"


def _all_result_files() -> list[str]:
    stopped = [n.replace(".", INTERRUPTED + ".", 1) for n in RESULT_FILES]
    return [*RESULT_FILES, *stopped]


def write_results(
    out_dir: str | Path,
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    suffix: str = "",
    lesions: list[dict[str, Any]] | None = None,
) -> None:
    """``per_case<suffix>.csv`` and ``summary<suffix>.json`` in ``out_dir``, and with
    ``lesions`` (one row per lesion) ``lesions<suffix>.csv`` (each written atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / f"per_case{suffix}.csv", rows, ["case"])
    if lesions is not None:
        _write_csv(out / f"lesions{suffix}.csv", lesions, list(LESION_COLUMNS))
    atomic_write_text(out / f"summary{suffix}.json", json.dumps(summary, indent=2, default=str))


#: lesions.csv's columns (when no lesion at all was found: the header alone)
LESION_COLUMNS = (
    "case", "lesion", "kind", "ml", "diameter_mm", "slice", "contrast_hu", "sd_hu", "cnr",
    "covered", "found", "dice",
)  # fmt: skip


def _write_csv(path: Path, rows: list[dict[str, Any]], first: list[str]) -> None:
    fields: list[str] = list(first)  # these first (all of them: a header without rows too)
    for r in rows:
        fields += [k for k in r if k not in fields]
    # UTF-8 as every other file the tool writes (the locale's code page on Windows could not
    # hold a patient ID in Chinese, and lost the table after every case had been scored)
    with (
        atomic_path(path) as tmp,
        open(tmp, "w", newline="", encoding="utf-8", errors=TEXT_ERRORS) as fh,
    ):
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            # a case named like a formula (a file "=HYPERLINK(…).nii.gz") is shown as text,
            # not run by the spreadsheet that opens the table
            w.writerow(
                {k: (f"{v:.4f}" if isinstance(v, float) else safe_cell(v)) for k, v in r.items()}
            )


def _file_digest_or_none(path: Path) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None


def _axial_diameter(tumor: np.ndarray, ct) -> float:
    """The largest true lesion's longest diameter within one axial image (the RECIST measure),
    mm; 0 without tumor."""
    from scipy import ndimage as ndi

    from ..stats import axial_diameter_mm

    tumor = tumor[crop_box(tumor, margin=1)]  # its lesions in their box: the same lesions
    if not tumor.any():
        return 0.0
    lab, _ = ndi.label(tumor, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    box = ndi.find_objects(lab)[int(sizes.argmax()) - 1]
    axes = np.asarray(ct.affine_lps, float)[:3, :3][:, ::-1].T  # (z, y, x) steps in mm
    return diameter_shown(axial_diameter_mm(lab[box] == int(sizes.argmax()), ct.spacing, axes))


def _case_own(warnings: str, model_notes: list[str]) -> str:
    """A row's ``"; "``-joined ``warnings`` without the models' own notes."""
    for note in model_notes:
        warnings = warnings.replace(note, "")
    return "; ".join(part for part in _split_warnings(warnings) if part.strip())


def _split_warnings(warnings: str) -> list[str]:
    """A row's ``"; "``-joined warnings, each whole: split only at a ``"; "`` outside brackets
    (the whole-liver tumor warning holds one in its brackets, "a quarter of it or so; the
    largest HCCs …": split there, the summary showed half a sentence, "and more" inside it)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(warnings):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(depth - 1, 0)
        elif depth == 0 and warnings.startswith("; ", i):
            parts.append(warnings[start:i])
            start = i + 2
    return [*parts, warnings[start:]]


def _first(warnings: str, most: int = 160) -> str:
    """``warnings`` cut at ``most`` characters ("…" when more: the CSV holds them whole)."""
    return warnings if len(warnings) <= most else warnings[: most - 1].rstrip() + "…"


def _warned_line(warned: list[tuple[str, str]]) -> str:
    """The summary's line of the patients whose scan or result was warned of: the serious
    warnings (masks and volumes wrong as a whole) first, by patient and within one (only the
    first 160 characters of a patient's first warning were shown: a "no liver found" after a
    note about the field of view was never seen)."""
    warned = sorted(warned, key=lambda cw: not _serious_first(cw[1])[0])  # (stable)
    return (
        f"Scan or result warned of for {len(warned)} scored patient(s) (per_case.csv, "
        "warnings): "
        + "; ".join(f"{case} ({_shown(w)})" for case, w in warned[:4])
        + (f" and {len(warned) - 4} more" if len(warned) > 4 else "")
    )


def _serious_first(warnings: str) -> tuple[list[str], list[str]]:
    """A row's ``"; "``-joined warnings split into the serious ones (see
    :func:`napari_livertumor.pipeline.is_serious`) and the others, each in its order."""
    from ..pipeline import is_serious

    parts = [part for part in _split_warnings(warnings) if part.strip()]
    serious = [part for part in parts if is_serious(part)]
    return serious, [part for part in parts if not is_serious(part)]


def _shown(warnings: str) -> str:
    """A patient's warnings as the summary line shows them: every serious one, else the first,
    each cut at 160 characters, and "and more" where the CSV holds more (not counted)."""
    serious, other = _serious_first(warnings)
    shown = serious or other[:1]
    return "; ".join(_first(w) for w in shown) + (
        "; and more" if other[len(shown) - len(serious) :] else ""
    )
