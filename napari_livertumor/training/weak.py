"""Clinical weak supervision: out-of-fold TLVR weak labels and the soft-ratio penalty.

Per training patient the target is TLVR = tumor / (liver + portal vein + tumor) voxels of its
ground truth. A ridge regression (numpy least squares; no scikit-learn) maps clinical columns to
TLVR. Unlike the original — which fitted in-sample and used its own fitted values — every weak
label here is predicted **out of fold**: the training patients are dealt into k folds and each
patient's label comes from a model fitted on the other folds only, with median imputation and
standardisation computed on those other folds too. So no patient's own TLVR ever shapes its own
weak label. A column with a long right tail (serum AFP, ng/mL: most patients under 20, a few at
10^3 to 10^5) enters as ``log10(value + 1)`` (``weak_log_columns``, default AFP), as clinical
practice reads it: standardised linearly, one patient's AFP of 50 000 set the fit for all.

The penalty compares the weak label with the network's *soft* tumor ratio, computed from softmax
probabilities (the original used raw logits):

    r = Σ p_tumor / (Σ p_liver + Σ p_tumor)   over the liver voxels of the patch.

A patch is not the whole liver, so r is a noisy estimate of the patient's TLVR. The term is only
applied to patches drawn uniformly inside the liver (not to tumor-centred ones, whose ratio is
biased upwards by construction), and only when the patch holds at least
``weak_min_liver_fraction`` liver, so that r's expectation over patches is the whole-liver TLVR.
``"mse"`` is the original's form ``(r - w)²``; ``"interval"`` is a hinge that is zero inside
``[w - margin, w + margin]`` and quadratic outside — it tolerates the regression's own error, and
only pulls predictions that are clearly inconsistent. A patch's true ratio strays from the whole
liver's by far more than the margin, so by default (``weak_anchor`` "patch") each patch's label
is moved by that patch's own deviation (:func:`~napari_livertumor.training.losses.patch_targets`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .config import DEFAULT_WEAK_LOG_COLUMNS
from .data import IN_REPORT

log = logging.getLogger(__name__)


@dataclass
class WeakLabels:
    """Out-of-fold weak TLVR labels for the training patients that have clinical rows."""

    labels: dict[str, float]
    columns: list[str]
    report: list[str] = field(default_factory=list)
    n_without_clinical: int = 0
    #: the columns of ``columns`` entered as log10(value + 1)
    log_columns: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "n_weak_labels": len(self.labels),
            "n_without_clinical": self.n_without_clinical,
            "columns": self.columns,
            "log10_columns": self.log_columns,
            "report": self.report,
        }


def load_clinical_frame(path: str | Path):
    """The clinical table as a DataFrame indexed by ``TCIA_ID`` with numeric columns.

    Uses :func:`napari_livertumor.io.clinical.read_clinical` (which knows the HCC-TACE-Seg
    encodings and reports unknown categories).
    """
    from ..io.clinical import read_clinical

    table = read_clinical(path)
    # the table's own warnings (rows that differ, values not understood) go with the frame, so
    # the Train panel, which sees only the reports, can show them too
    table.frame.attrs["table_warnings"] = [
        m.removeprefix("WARNING: ") for m in table.report if m.startswith("WARNING: ")
    ]
    try:  # read again for the tumor stage of `--stage both`: its report is said once
        st = Path(path).stat()
        key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    if key is None or key not in _REPORTED:
        for msg in table.report:
            if msg.startswith("WARNING: "):
                log.warning(
                    "clinical table %s: %s", path, msg.removeprefix("WARNING: "), extra=IN_REPORT
                )
            elif "unknown value(s)" in msg or "outside the plausible" in msg:
                # a cell the user wrote that no reading understood ('abc', '4 7'), or a value
                # no patient has (an AFP of 1e12: a typo), read as missing: a warning, so the Train panel's log shows it too (as an INFO line
                # only the command line said it; Check data lists it)
                log.warning("clinical table %s: %s", path, msg)
            else:
                log.info("clinical table: %s", msg)
        if key is not None:
            _REPORTED.add(key)
    return table.frame


#: clinical tables whose report was logged in this process (path, size, time)
_REPORTED: set = set()


def check_weak_inputs(path: str | Path, columns, case_ids) -> None:
    """Refuse now what :func:`out_of_fold_weak_labels` would refuse after hours of training:
    a clinical table none of whose rows is a patient of the data, or none of whose columns is
    one asked for (``--stage both`` trains the liver first)."""
    from ..io.clinical import row_ids_for, shown_id

    frame = load_clinical_frame(path)
    index = {str(i) for i in frame.index}
    ids = sorted(case_ids)
    if ids and not row_ids_for(ids, index):
        raise InputError(
            path,
            f"no clinical row matches any of the {len(ids)} patients of the data (e.g. "
            f"{', '.join(map(shown_id, ids[:3]))}; the table's IDs are e.g. "
            f"{', '.join(map(shown_id, sorted(index)[:3]))}): check the TCIA_ID column",
        )
    by_key = {str(c).strip().lower() for c in frame.columns}
    present = [c for c in columns if str(c).strip().lower() in by_key]
    if columns and not present:
        raise InputError(
            path,
            f"none of the clinical columns asked for ({', '.join(map(str, columns))}) is in the "
            f"table; its columns: {', '.join(map(str, list(frame.columns)[:12]))}",
        )


def weak_term_off(stage: str, weak_lambda: float) -> str | None:
    """Why a run of ``stage`` with λ ``weak_lambda`` trains without the weak term before any
    table is read (the reason its record and the Train panel's log give), or ``None``."""
    if stage != "tumor":
        return "the liver stage has no weak term"
    if weak_lambda <= 0:
        return "λ = 0"
    return None


def no_table_note(data: str | Path) -> str:
    """What a tumor run with the weak term on says when it finds no clinical table in
    ``data`` (and the Train panel's *Check data* says before it: the same words)."""
    from .data import tables_passed_over

    passed = tables_passed_over(data)
    return f"no clinical table found in {data}: training without the weak term" + (
        f" ({', '.join(passed[:4])} at its root: no TCIA_ID column; give one with "
        "--clinical, or under Clinical in the Train panel)"
        if passed
        else ""
    )


#: the fewest patients an out-of-fold fit is made on (fewer: the term is left out)
MIN_FIT_ROWS = 3


def fold_count(n: int, folds: int) -> int:
    """The folds of the out-of-fold fit over ``n`` patients: ``folds`` capped at ``n``, at
    least 2."""
    return max(2, min(int(folds), n))


def smallest_fold_fit(n: int, folds: int) -> int:
    """How many patients the smallest of the out-of-fold fits over ``n`` training patients
    with clinical values is made on (:func:`fold_count` folds)."""
    return n - -(-n // fold_count(n, folds))


@dataclass
class WeakFitInputs:
    """What the out-of-fold fit over the training patients would be made on, or why
    training goes without it (:func:`weak_fit_inputs`)."""

    #: the clinical table, its rows renamed to the patients that take them (HCC-1 → HCC_1)
    frame: Any
    #: the training patients fitted (a clinical row with a value in a column used)
    patients: list[str]
    #: the columns regressed on
    columns: list[str]
    #: the patients' values in those columns (NaN where missing), log-scaled where asked
    x: np.ndarray | None
    report: list[str]
    n_without_clinical: int
    #: the columns asked for that the table lacks
    absent: list[str] = field(default_factory=list)
    #: why training goes without the weak term, in the words it logs; ``None``: it fits
    off: str | None = None
    #: the columns of ``columns`` entered as log10(value + 1)
    log_columns: list[str] = field(default_factory=list)


def weak_fit_inputs(
    frame,
    train_ids,
    columns,
    *,
    folds: int = 5,
    source: str | Path | None = None,
    log_columns=DEFAULT_WEAK_LOG_COLUMNS,
) -> WeakFitInputs:
    """The rows and columns :func:`out_of_fold_weak_labels` fits on for the training patients
    ``train_ids``, or (``off``) why it makes no weak label at all: what the Train panel's
    *Check data* asks before training, so that both say the same, by the same rule.

    The values of ``log_columns`` (named as ``columns`` are: case and surrounding spaces do
    not count) enter as ``log10(value + 1)``; a negative one there is read as missing, said.

    Raises
    ------
    InputError
        No clinical row matches any training patient, or no usable column remains.
    """
    import pandas as pd

    from ..io.clinical import row_ids_for, shown_id

    ids = sorted(map(str, train_ids))
    report: list[str] = []
    index = frame.index.astype(str)
    frame = frame.copy()
    frame.index = index
    # a patient folder renamed hcc_001 or HCC-1 takes the table's HCC_001 row
    rows = row_ids_for(ids, frame.index)
    alias: dict[str, str] = {}
    wanted = set(ids)
    for pid, row in rows.items():  # a row another patient holds by its exact name stays its
        if row != pid and row not in wanted and row not in alias:
            alias[row] = pid
    if alias:
        frame = frame.rename(index=alias)
    matched = [pid for pid in ids if pid in frame.index]
    n_missing = len(ids) - len(matched)
    if not matched:
        # rows there, but none a training patient's: the table may hold only the validation
        # and test patients' rows (said so: "check the TCIA_ID column" alone sent a user whose
        # IDs were right to look for a misspelling)
        others = [str(i) for i in frame.index if str(i).strip() and str(i) != "nan"]
        raise InputError(
            source,
            f"no clinical row matches any of the {len(ids)} training patients "
            f"(e.g. {', '.join(map(shown_id, ids[:3]))})"
            + (
                f"; its {len(others)} row(s) ({', '.join(map(shown_id, others[:4]))}"
                + (" …" if len(others) > 4 else "")
                + ") are other patients' (validation or test patients'?) or spelled otherwise: "
                "the weak term is fitted on the training patients' rows; check the TCIA_ID "
                "column"
                if others
                else "; check the TCIA_ID column"
            ),
        )
    if n_missing:
        absent_ids = [pid for pid in ids if pid not in frame.index]
        shown = ", ".join(map(shown_id, absent_ids[:8])) + (
            f" and {len(absent_ids) - 8} more" if len(absent_ids) > 8 else ""
        )
        report.append(
            f"{n_missing} training patient(s) have no clinical row ({shown}): no weak term for them"
        )
    if len(matched) < 2:  # nothing to fit out of fold: no column can be judged either
        note = (
            f"only {len(matched)} of the {len(ids)} training patients has a clinical row: the "
            "weak term needs at least 4 (each label is fitted on at least 3 other patients); "
            "training without it"
        )
        return WeakFitInputs(frame, [], [], None, [*report, note], n_missing, off=note)
    use: list[str] = []
    # named as the table reader matches them: case and surrounding spaces do not count
    by_key = {str(c).strip().lower(): c for c in frame.columns}
    log_keys = {str(c).strip().lower() for c in log_columns}
    logged: list[str] = []
    values_of: dict[str, np.ndarray] = {}
    absent: list[str] = []
    sparse: list[str] = []  # (columns with under 2 values for these patients)
    for wanted_col in columns:
        col = (
            wanted_col
            if wanted_col in frame.columns
            else by_key.get(str(wanted_col).strip().lower())
        )
        if col is None:
            absent.append(str(wanted_col))
            report.append(f"column {wanted_col!r} not in the clinical table: not used")
            continue
        values = pd.to_numeric(frame.loc[matched, col], errors="coerce").to_numpy(float)
        if str(col).strip().lower() in log_keys:
            negative = [p for p, v in zip(matched, values, strict=True) if v < 0]
            if negative:
                report.append(
                    f"column {col!r} is log-scaled, and {len(negative)} value(s) are negative "
                    f"({', '.join(map(shown_id, negative[:8]))}"
                    + (" …" if len(negative) > 8 else "")
                    + "): read as missing"
                )
            with np.errstate(invalid="ignore"):
                values = np.where(values >= 0, np.log10(np.maximum(values, 0.0) + 1.0), np.nan)
        if np.isfinite(values).sum() < 2:
            report.append(f"column {col!r} has fewer than 2 numeric values: not used")
            sparse.append(str(col))
            continue
        use.append(col)
        values_of[col] = values
        if str(col).strip().lower() in log_keys:
            logged.append(col)
    if not use:
        # said by kind, each column once (the reason repeated for each of 15 columns was a
        # paragraph in Check data's box)
        why = "; ".join(
            f"{what}: {', '.join(names)}"
            for what, names in (
                ("not in the table", absent),
                (
                    f"fewer than 2 numeric values for the {len(matched)} training patient(s) "
                    "with a row",
                    sparse,
                ),
            )
            if names
        )
        raise InputError(
            source,
            f"none of the clinical columns asked for is usable ({why}); the table's "
            f"columns: {', '.join(map(str, list(frame.columns)[:12]))}",
        )
    x_all = np.stack([values_of[c] for c in use], 1)
    # a row with no value in any column used ("NA" throughout) is no clinical row: its label
    # would be the medians' prediction, the same for every such patient
    blank = ~np.isfinite(x_all).any(axis=1)
    if blank.any():
        empty = [p for p, b in zip(matched, blank, strict=True) if b]
        shown = ", ".join(empty[:8]) + (f" and {len(empty) - 8} more" if len(empty) > 8 else "")
        report.append(
            f"{len(empty)} training patient(s) have no value in any of the columns used "
            f"({shown}): no weak term for them"
        )
        matched = [p for p, b in zip(matched, blank, strict=True) if not b]
        x_all = x_all[~blank]
        n_missing += len(empty)
    inputs = WeakFitInputs(
        frame, matched, use, x_all, report, n_missing, absent, log_columns=logged
    )
    # each patient's label is fitted on the other folds; under 3 rows a fit is their mean, which
    # carries nothing of the patient (over 3 patients it ran opposite to the truth: r = -1)
    smallest_fit = smallest_fold_fit(len(matched), folds)
    if smallest_fit < MIN_FIT_ROWS:
        inputs.off = (
            f"{len(matched)} training patient(s) with usable clinical values are too few for "
            f"the out-of-fold regression ({fold_count(len(matched), folds)} folds leave "
            f"{max(smallest_fit, 0)} to fit on; at least 3 are needed): training without the "
            "weak term"
        )
        inputs.report.append(inputs.off)
    return inputs


def out_of_fold_weak_labels(
    frame,
    tlvr: dict[str, float],
    columns,
    *,
    folds: int = 5,
    ridge: float = 1.0,
    seed: int = 0,
    source: str | Path | None = None,
    log_columns=DEFAULT_WEAK_LOG_COLUMNS,
) -> WeakLabels:
    """Weak TLVR labels for the patients in ``tlvr`` (the training patients), out of fold.

    Parameters
    ----------
    frame : pandas.DataFrame
        Clinical table indexed by patient ID (``TCIA_ID``), numeric-encoded columns.
    tlvr : dict
        Training patient ID → ground-truth TLVR. Only these patients are used for fitting.
    columns : sequence of str
        Clinical columns to regress on; absent or non-numeric ones are dropped with a note.
    folds : int
        Number of folds over the training patients (at least 2; capped at the patient count).
    ridge : float
        L2 penalty on the standardised coefficients (the intercept is not penalised).
    source : path, optional
        The clinical file, named in error messages.
    log_columns : sequence of str
        Columns entered as ``log10(value + 1)`` (long right tails: serum AFP), before the
        fitting folds' imputation and standardisation. Default: AFP. ``()``: every column as
        it is (how runs before 7 Dec 2026 entered AFP).

    Raises
    ------
    InputError
        No clinical row matches any training patient, or no usable column remains
        (:func:`weak_fit_inputs`, which also says when too few are left to fit on).
    """
    inputs = weak_fit_inputs(
        frame, list(tlvr), columns, folds=folds, source=source, log_columns=log_columns
    )
    report, matched, use = inputs.report, inputs.patients, inputs.columns
    if use and len(inputs.absent) * 2 > len(columns):
        absent = inputs.absent
        log.warning(
            "weak supervision: only %d of the %d clinical columns asked for are in %s (missing: "
            "%s); the weak term rests on %s",
            len(columns) - len(absent),
            len(columns),
            source,
            ", ".join(absent[:6]) + (" …" if len(absent) > 6 else ""),
            ", ".join(map(str, use)),
        )
    if inputs.off is not None:
        log.warning("weak supervision: %s", inputs.off, extra=IN_REPORT)
        return WeakLabels(
            labels={}, columns=[], report=report, n_without_clinical=inputs.n_without_clinical
        )
    x_all = inputs.x
    y_all = np.array([tlvr[p] for p in matched], dtype=float)
    k = fold_count(len(matched), folds)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(matched), dtype=int)
    fold_of[rng.permutation(len(matched))] = np.arange(len(matched)) % k
    pred = np.empty(len(matched))
    for f in range(k):
        held = fold_of == f
        pred[held] = fit_predict(x_all[~held], y_all[~held], x_all[held], ridge=ridge)
    pred = np.clip(pred, 0.0, 1.0)
    logged = set(inputs.log_columns)
    # which columns, and in which form: a resumed run or a model's record is read against it
    report.append(
        f"regressed on {len(use)} column(s): "
        + ", ".join(f"{c} (log10)" if c in logged else str(c) for c in use)
        + ("; (log10): log10(value + 1)" if logged else "")
    )
    for msg in report:
        log.info("weak supervision: %s", msg)
    return WeakLabels(
        labels={p: float(v) for p, v in zip(matched, pred, strict=False)},
        columns=use,
        report=report,
        n_without_clinical=inputs.n_without_clinical,
        log_columns=list(inputs.log_columns),
    )


def fit_predict(x_fit: np.ndarray, y_fit: np.ndarray, x_new: np.ndarray, *, ridge: float = 1.0):
    """Ridge regression fitted on ``(x_fit, y_fit)`` only, predicted at ``x_new``.

    Missing values (NaN) are replaced by the medians of ``x_fit`` (never of ``x_new``), columns are
    standardised with ``x_fit``'s statistics; with fewer than 3 fitting rows the prediction is the
    mean of ``y_fit``.
    """
    x_fit = np.asarray(x_fit, float)
    x_new = np.asarray(x_new, float)
    y_fit = np.asarray(y_fit, float)
    if len(y_fit) == 0:
        return np.zeros(len(x_new))
    if len(y_fit) < 3:
        return np.full(len(x_new), y_fit.mean())
    with np.errstate(all="ignore"):
        med = np.nanmedian(x_fit, axis=0)
    med = np.where(np.isfinite(med), med, 0.0)
    xf = np.where(np.isnan(x_fit), med, x_fit)
    xn = np.where(np.isnan(x_new), med, x_new)
    mu, sd = xf.mean(0), xf.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    xf = (xf - mu) / sd
    xn = (xn - mu) / sd
    y_mean = y_fit.mean()
    a = xf.T @ xf + ridge * np.eye(xf.shape[1])
    coef = np.linalg.solve(a, xf.T @ (y_fit - y_mean))
    return xn @ coef + y_mean


# --------------------------------------------------------------------------- loss term
def soft_tumor_ratio(probs, liver_mask):
    """Per-sample soft tumor ratio ``Σ p_tumor / (Σ p_liver + Σ p_tumor)`` inside ``liver_mask``.

    Parameters
    ----------
    probs : torch.Tensor, shape (B, 3, Z, Y, X)
        Softmax probabilities (background, liver, tumor).
    liver_mask : torch.Tensor, shape (B, 1, Z, Y, X)
        1 inside the (ground-truth) liver + tumor.
    """
    m = liver_mask.to(probs.dtype)
    tumor = (probs[:, 2:3] * m).flatten(1).sum(1)
    liver = (probs[:, 1:2] * m).flatten(1).sum(1)
    return tumor / (tumor + liver + 1e-6)


def weak_penalty(ratio, target, *, form: str = "interval", margin: float = 0.05):
    """Per-sample penalty between soft ratios and weak labels (tensors of shape (B,))."""
    if form == "mse":
        return (ratio - target) ** 2
    if form == "interval":
        lo = (target - margin).clamp(min=0.0)
        hi = target + margin
        below = (lo - ratio).clamp(min=0.0)
        above = (ratio - hi).clamp(min=0.0)
        return below**2 + above**2
    raise ValueError(f"unknown weak penalty form {form!r}")
