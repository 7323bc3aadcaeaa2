"""What a training data folder holds, said before hours of training (no Qt): the Train
panel's *Check data* and ``livertumor train --check``."""

from __future__ import annotations

from pathlib import Path


def summarize_data(
    data: str,
    clinical: str | None = None,
    progress=None,
    should_cancel=None,
    problems=None,
    weak_lambda: float | None = None,
    weak_columns=None,
    config=None,
    stage: str | None = None,
) -> list[str]:
    """Lines describing a training folder: patients, labels, clinical rows and columns matched.

    ``progress(stage, done, total)`` gets one step per patient folder scanned, and
    ``should_cancel()`` is asked between patients and between DICOM files.

    A clinical table that cannot be read is said in the lines, after the patients' (and added
    to ``problems``, a list, when given: training would stop on it, unless ``weak_lambda``, the
    weak term's λ of the run, is 0). ``weak_columns`` are the clinical columns the run's recipe
    regresses on (by default the tumor stage's default columns). ``config``, the run's
    :class:`~napari_livertumor.training.TrainConfig` (the tumor stage's when it trains), gives
    them (and λ) when they are not given, and the split and weak-term folds the check then
    counts with. ``stage`` (else ``config``'s, else "tumor"): the stage the run trains.

    Where the tumor stage would train without the weak term (λ 0, the liver stage, no table,
    too few training patients with clinical values to fit on…), or stop on the table once
    its patients are prepared, a line says so, in the words training logs: it is asked of the
    same functions training asks (:func:`~napari_livertumor.training.weak.weak_term_off`,
    :func:`~napari_livertumor.training.weak.weak_fit_inputs`), for the split's training
    patients.

    Raises :class:`~napari_livertumor.errors.InputError` when nothing in it is usable, and
    :class:`~napari_livertumor.errors.Cancelled` when told to stop.
    """
    import pandas as pd

    from ..io.clinical import read_clinical
    from ..progress import Reporter
    from ..training.config import DEFAULT_WEAK_COLUMNS
    from ..training.data import find_clinical, index_cases, tables_passed_over
    from ..training.weak import no_table_note, weak_term_off

    if config is not None:
        weak_columns = weak_columns or config.weak_columns
        weak_lambda = config.weak_lambda if weak_lambda is None else weak_lambda
        stage = stage or config.stage
    # why the run trains without the weak term whatever the table holds (λ not given: on)
    off = weak_term_off(stage or "tumor", 1.0 if weak_lambda is None else weak_lambda)
    if off is not None:
        weak_lambda = 0  # the table is described, not refused: training does not read it
    weak_columns = list(weak_columns) if weak_columns else list(DEFAULT_WEAK_COLUMNS)
    skipped: list = []
    records = index_cases(data, skipped=skipped, reporter=Reporter(progress, should_cancel))
    layouts = sorted({r.layout for r in records})
    lines = [
        f"{len(records)} patient(s) with ground-truth labels ({', '.join(layouts)} layout); "
        "their scans are read when training prepares them (missing slices, a misfiled series "
        "and the like are said then)"
    ]
    if skipped:
        lines.append(f"{len(skipped)} patient(s) left out:")
        lines += [f"  {case}: {reason}" for case, reason in skipped]
    several = [r for r in records if r.other_series]
    if several:  # which of a patient's scans is read: the one its SEG was drawn on
        lines.append(
            f"{len(several)} patient(s) with other CT series beside the one their SEG was drawn "
            "on (only that one is read):"
        )
        lines += [
            f"  {r.case_id}: reads {r.used_series}; not {', '.join(r.other_series[:3])}"
            + (" …" if len(r.other_series) > 3 else "")
            for r in several[:10]
        ]
        if len(several) > 10:
            lines.append(f"  and {len(several) - 10} more")
    split_line, train_ids = _split_line(sorted({r.case_id for r in records}), config, records)
    lines.append(split_line)
    if off is not None:  # as the run's record and the Train panel's log say it
        lines.append(f"Weak supervision off ({off})")
    path = Path(clinical) if clinical else find_clinical(data)
    if path is None:
        if off is None:  # training's own words, before the hours it would take to say them
            lines.append(f"⚠ Weak supervision off: {no_table_note(data)}")
            return lines
        lines.append("No clinical table.")
        passed = tables_passed_over(data)
        if passed:  # a table whose ID column is named otherwise: said, not silently left out
            lines.append(
                f"Not taken for the clinical table (no TCIA_ID column): {_some(passed, 4)}; "
                "rename its patient ID column TCIA_ID, or give it as the clinical table"
            )
        return lines
    from ..errors import InputError

    try:
        table = read_clinical(path)
    except InputError as exc:  # the patients' lines above are still worth seeing
        problem = f"⚠ Clinical table {path}: {exc.problem}"
        lines.append(problem)
        lines.append(
            "Training does not read the table (λ 0, or the liver stage only): fix it to use "
            "the weak term."
            if weak_lambda == 0
            else "The tumor stage will not start with this table: fix it, or train with λ 0 "
            "(the Train panel's λ weak; --weak-lambda 0 on the command line) to leave the weak "
            "term out."
        )
        if problems is not None:
            problems.append(problem)
        return lines
    frame = table.frame
    from ..io.clinical import normalise_id, row_ids_for, shown_id

    rows_of = row_ids_for(sorted({r.case_id for r in records}), frame.index)
    matched = sorted(rows_of.values())  # table IDs, as training matches them
    unmatched = sorted({r.case_id for r in records} - set(rows_of))
    by_key = {str(c).strip().lower(): c for c in frame.columns}  # as training matches them
    found = {c: by_key.get(c.lower()) for c in weak_columns}
    cols = [col for col in found.values() if col is not None]
    wanted = set(matched)
    rows = frame.loc[[i for i in frame.index if str(i) in wanted]]
    usable = {
        c: int(pd.to_numeric(rows[c], errors="coerce").notna().sum()) if len(rows) else 0
        for c in cols
    }
    good = [c for c in cols if usable[c] > 0]
    counted = f"{len(good)} of them with usable values"
    if off is None and train_ids:  # counted as the weak term's fit counts them: 2 values or
        # more among the training patients (over all patients, "15 of them with usable values"
        # stood above "none of the clinical columns asked for is usable" of a table with values
        # for the validation and test patients only)
        theirs = [rows_of[c] for c in train_ids if c in rows_of]
        fit_rows = frame.loc[[i for i in frame.index if str(i) in set(theirs)]]
        fits = [c for c in cols if pd.to_numeric(fit_rows[c], errors="coerce").notna().sum() > 1]
        counted = (
            f"{len(fits)} of them with usable values for the {len(train_ids)} training patient(s)"
        )
    lines.append(
        f"Clinical table {path.name}: {len(matched)}/{len(records)} patients matched, "
        f"{len(cols)}/{len(weak_columns)} weak-supervision columns found, {counted}"
    )
    runs = None  # whether the weak term runs (None: not known before the split is)
    if off is not None:
        runs = False
    elif matched and cols:  # (else refused below, as training refuses it)
        if train_ids:  # (none: the split's own ⚠ above, or no training patient to train)
            runs = _weak_fit(lines, problems, frame, path, train_ids, weak_columns, config)
        elif split_line.startswith("⚠"):
            lines.append(
                "⚠ Weak supervision: whether it runs is not known until the split is (see above)"
            )
    else:
        runs = False
    if records and not matched:  # nothing to compare columns on: why, by what each side holds
        problem = (
            f"⚠ No patient here has a row in {path.name}: its IDs read like "
            f"{_some([shown_id(i) for i in sorted(map(str, frame.index))], 3)}, the patients "
            f"here like {_some([shown_id(c) for c in sorted({r.case_id for r in records})], 3)}"
        )
        _refused(lines, problems, weak_lambda, problem)
        lines += [f"Table: {msg.replace('WARNING: ', '⚠ ', 1)}" for msg in table.report]
        return lines
    if not cols:  # training refuses such a table (weak.check_weak_inputs)
        _refused(
            lines,
            problems,
            weak_lambda,
            f"⚠ None of the clinical columns the run asks for ({_some(weak_columns, 5)}) is in "
            f"{path}; its columns: {_some([str(c) for c in frame.columns], 8)}",
        )
    if unmatched:  # named: they train without a weak label (said only where others train
        # with one: under "Weak supervision off" for all, it read as if others had it)
        lines.append(
            f"Without a clinical row{' (no weak term for them)' if runs else ''}: "
            f"{_some([shown_id(c) for c in unmatched])}"
        )
    extra = sorted({str(i) for i in frame.index} - set(matched))
    # the rows of patients left out above (no SEG...) are theirs, not rows of no patient here
    left_out = set(row_ids_for(sorted({str(case) for case, _ in skipped}), frame.index).values())
    theirs = [i for i in extra if i in left_out]
    extra = [i for i in extra if i not in left_out]
    if theirs:
        lines.append(f"Rows of patients left out above: {_some(theirs)}")
    if extra:  # a typo in an ID is the usual cause
        # (an ID with a character that does not show is written escaped: it looked the
        # same as the patient's it was meant to be)
        lines.append(
            f"Rows of the table with no patient here: {_some([shown_id(i) for i in extra])}"
        )
        # a bare number ("3", "005") beside a patient HCC_003 without a row: most likely that
        # patient, written as a number (not matched: a number may be a record number)
        # (named as the patient's folder or file is: 'hcc-3', not an HCC_003 nowhere here)
        without = {normalise_id(c): c for c in unmatched}
        guesses = [
            (i, without[f"HCC_{int(i):03d}"])
            for i in extra
            if i.isdigit() and f"HCC_{int(i):03d}" in without
        ]
        if guesses:
            lines.append(
                f"  {_some([f'{i} may be {pid}' for i, pid in guesses])}, written as a number "
                "(not matched: a number may be another record's): write the ID as the patient's "
                "folder (or file) is named"
            )
    if cols and not good:
        lines.append(
            "No usable clinical value: the tumor stage cannot use weak supervision."
            if off is None  # (under λ 0 or for the liver stage, this run does not read them)
            else "No usable clinical value (this run does not read them)."
        )
    empty = [c for c in cols if usable[c] == 0]
    if empty and (good or weak_lambda == 0):  # (none usable: the refusal above names them)
        lines.append("Columns without a usable value: " + ", ".join(empty))
    sparse = [f"{c} {usable[c]}/{len(matched)}" for c in good if usable[c] < len(matched)]
    if sparse:
        lines.append(
            "Weak-supervision values missing (usable / matched patients): " + ", ".join(sparse)
        )
    missing = [c for c, col in found.items() if col is None]
    if missing:
        lines.append("Missing columns: " + ", ".join(missing))
    lines += [f"Table: {msg.replace('WARNING: ', '⚠ ', 1)}" for msg in table.report]
    return lines


def _weak_fit(lines, problems, frame, path, train_ids, columns, config) -> bool:
    """Say what training would say of the weak term's out-of-fold fit over the split's
    training patients: that it goes without it (too few with values to fit on), or stops on
    the table (no training patient has a row, or no column a value) once they are prepared.
    Whether the term runs.
    Asked of the function training asks, :func:`~napari_livertumor.training.weak.weak_fit_inputs`:
    the rule is that one, not a copy of it that drifts."""
    from ..errors import InputError
    from .config import DEFAULT_WEAK_LOG_COLUMNS
    from .weak import weak_fit_inputs

    folds = config.weak_folds if config is not None else 5
    logs = config.weak_log_columns if config is not None else DEFAULT_WEAK_LOG_COLUMNS
    try:
        fit = weak_fit_inputs(frame, train_ids, columns, folds=folds, source=path, log_columns=logs)
    except InputError as exc:  # training stops on it, after the patients are prepared
        _refused(lines, problems, 1.0, f"⚠ Clinical table {exc}")
        return False
    if fit.off is not None:  # the words training logs as it turns the term off
        lines.append(f"⚠ Weak supervision off: {fit.off}")
        return False
    return True


def _refused(lines: list[str], problems, weak_lambda, problem: str) -> None:
    """Say a table problem training would stop on (unless λ is 0)."""
    lines.append(problem)
    if weak_lambda == 0:
        lines.append("Training does not read the table (λ 0, or the liver stage only).")
        return
    lines.append(
        "The tumor stage will not start with this table: fix it, or train with λ 0 (the Train "
        "panel's λ weak; --weak-lambda 0 on the command line) to leave the weak term out."
    )
    if problems is not None:
        problems.append(problem)


def _some(names: list[str], most: int = 8) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _split_line(case_ids: list[str], config=None, records=None) -> tuple[str, list[str]]:
    """How the run's split (``config``'s, else the default one) shares the patients out, and
    which it trains on."""
    import dataclasses

    from ..errors import LiverTumorError
    from .config import make_config
    from .loop import resolve_split

    cfg = config if config is not None else make_config("tumor", data=".", out=".")
    cfg = dataclasses.replace(cfg, out=cfg.out or ".")
    if cfg.split_file:
        label = f"Split of {Path(cfg.split_file).name}"
    elif cfg.resume and (Path(cfg.stage_dir) / "last" / "split.json").is_file():
        label = "Split of the run being resumed (last/split.json)"
    elif cfg.folds:
        label = f"Split (fold {cfg.fold} of {cfg.folds})"
    else:
        label = "Default split"
    try:
        split = resolve_split(cfg, case_ids, records)
    except LiverTumorError as exc:
        return f"⚠ {label}: {exc}", []
    here = set(case_ids)
    parts = {k: [c for c in split.get(k) or () if c in here] for k in ("train", "val", "test")}
    counts = {k: len(v) for k, v in parts.items()}
    line = (
        f"{label}: {counts['train']} training / {counts['val']} validation / "
        f"{counts['test']} test patient(s)"
    )
    if not counts["val"]:
        line += (
            " — no validation patient: no validation Dice is measured and the last weights are kept"
        )
    if not counts["test"]:
        line += " — no test patient: livertumor evaluate has none held out"
    return line, parts["train"]
