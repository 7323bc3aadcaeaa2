"""The HCC-TACE-Seg clinical table (XLSX "data table" sheet or a CSV export), keyed by TCIA_ID.

Categorical columns are encoded as in the original method (``T_involvment``, ``CLIP_Score``,
``TNM``) and yes/no columns as 0/1; values that fit no category become missing and are reported,
never guessed.
"""

from __future__ import annotations

import datetime
import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

ID_COLUMN = "TCIA_ID"
SHEET_NAME = "data table"

#: Columns holding yes/no (or 1/0) answers.
YES_NO_COLUMNS = (
    "Personal history of cancer",
    "Metastasis",
    "fhx_can",
    "fhx_livc",
    "Alcohol",
    "Smoking",
    "Evidence_of_cirh",
    "Diabetes",
    "Lymphnodes",
    "Vascular invasion",
    "Portal Vein Thrombosis",
)
#: Columns that are plain numbers.
NUMERIC_COLUMNS = ("age", "AFP", "Tr_Size", "Interval_BL", "TTP", "OS", "CLIP")
#: plausible (low, high, unit) per numeric column, in the units of HCC-TACE-Seg's table; values
#: outside are typos or codes such as -1 for "unknown", treated as missing and reported. The
#: upper bounds are generous, beyond any real patient's value: an AFP of 1e12 (a typo) read as a
#: number moved that patient's weak label from 0.12 to 1.0. age: an adult cohort; AFP: no serum
#: AFP reaches 10 million ng/mL (the highest reported are a few million); Tr_Size: no tumor is
#: longer than 40 cm, more than a whole enlarged liver; Interval_BL (days from the baseline scan
#: to TACE): 10 years; TTP and OS: a century in days (36500), so a table giving them in
#: months or in days passes (the units were not checked against TCIA's table)
_PLAUSIBLE = {
    "age": (1.0, 120.0, "years"),
    "afp": (0.0, 1e7, "ng/mL"),
    "tr_size": (0.0, 40.0, "cm"),
    "interval_bl": (0.0, 3650.0, "days"),
    "ttp": (0.0, 36500.0, "(a century in days)"),
    "os": (0.0, 36500.0, "(a century in days)"),
}

_YES = {"1", "1.0", "1,0", "yes", "y", "true", "positive", "present", "pos", "+"}
_NO = {"0", "0.0", "0,0", "no", "n", "false", "negative", "absent", "neg"}
#: cells that say "no value", in any case: missing, as a blank cell (counted, not listed); a dash,
#: "none" or "unknown" in a yes/no column is no answer, never counted as No (pandas already
#: read "None", "NA" and "N/A" so, but not "none" or "-")
_NO_VALUE = {"", "-", "--", "—", "–", "na", "n/a", "n.a.", "nan", "none", "null", "#n/a", "unknown"}


def _blank(value) -> bool:
    """Whether a cell holds no value: empty, or one of :data:`_NO_VALUE`."""
    return pd.isna(value) or str(value).strip().lower() in _NO_VALUE


#: Every column this package encodes or regresses on, as the table spells it (TCIA's own
#: "T_involvment" included); a header written otherwise ("T_involvement", "CLIP Score",
#: "Personal_history_of_cancer", "Tumor nodul") is read as the column it names
KNOWN_COLUMNS = (
    *YES_NO_COLUMNS,
    *NUMERIC_COLUMNS,
    "T_involvment",
    "CLIP_Score",
    "TNM",
    "Sex",
    "tumor_nodul",
    "AFP_group",
    "CPS",
    "Okuda",
    "BCLC",
)
_ROMAN = {"I": 1, "II": 2, "IIIA": 3, "IIIB": 4, "IIIC": 5, "IVA": 6, "IVB": 7}


@dataclass
class ClinicalTable:
    """An encoded clinical table.

    Attributes
    ----------
    frame : DataFrame
        Indexed by ``TCIA_ID`` (``HCC_001`` style), one float column per encoded clinical
        variable; NaN where the value is missing or unrecognised.
    raw : DataFrame
        The table as read (strings kept), indexed the same way.
    report : list of str
        Which sheet was used, unknown categories, missing values, dropped rows.
    source : Path
    """

    frame: pd.DataFrame
    raw: pd.DataFrame
    report: list[str] = field(default_factory=list)
    source: Path | None = None

    def row(self, tcia_id: str) -> pd.Series:
        """Encoded values of one patient (``KeyError`` if absent)."""
        return self.frame.loc[normalise_id(tcia_id)]


def read_clinical(path: str | Path) -> ClinicalTable:
    """Read and encode the HCC-TACE-Seg clinical table.

    A table that cannot be read is refused naming its twin beside it (the same name with
    another table ending: ``clinical.csv`` beside a damaged ``clinical.xlsx``) when that one
    reads: the same table in another format, as TCIA offers it, may be the one to give.

    Parameters
    ----------
    path : str or Path
        ``.xlsx``/``.xlsm``/``.xls`` (the sheet "data table" when it holds patients, else the
        sheet that looks most like the patients' table: an ID column in its header, rows of
        ``HCC_001``-like IDs, clinical column names; said in the report) or ``.csv``/``.tsv``/``.txt`` (separator
        and encoding detected).

    Returns
    -------
    ClinicalTable

    Raises
    ------
    InputError
        The file cannot be read or has no ``TCIA_ID`` column.
    """
    path = Path(path)
    try:
        return _read_clinical(path)
    except InputError as exc:
        twin = _readable_twin(path) if path.is_file() else None
        if twin is None:
            raise
        raise InputError(
            exc.path,
            f"{exc.problem.rstrip('.')}. {twin.name} beside it reads as a clinical table: give "
            f"that file as the clinical table instead ({twin})",
        ) from exc


#: endings a clinical table is read with
TABLE_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".csv", ".tsv", ".txt")


def _readable_twin(path: Path) -> Path | None:
    """A table beside ``path`` with its name and another table ending that reads, or None."""
    import glob

    try:
        twins = sorted(
            p
            for p in path.parent.glob(f"{glob.escape(path.stem)}.*")
            if p != path and p.suffix.lower() in TABLE_SUFFIXES and p.is_file()
        )
    except OSError:
        return None
    for twin in twins:
        try:
            _read_clinical(twin)
        except Exception:  # noqa: BLE001 - only a readable twin is named
            continue
        return twin
    return None


def _read_clinical(path: Path) -> ClinicalTable:
    if path.is_dir():
        raise InputError(path, "is a folder; give the clinical table's file (.xlsx, .csv)")
    if not path.is_file():
        raise InputError(path, "file not found")
    report: list[str] = []
    raw = _read_any(path, report)
    separator = raw.attrs.get("separator")
    raw = _with_id_header(raw, path)
    raw.columns = [str(c).strip() for c in raw.columns]
    # 'AFP' and 'AFP ' (a stray space in a header) are one name once stripped: the later
    # column is left out, said (read as one, the variable became the column names themselves)
    first: dict[str, int] = {}
    keep = []
    for i, name in enumerate(raw.columns):
        keep.append(name.lower() not in first or name.startswith("Unnamed:"))
        first.setdefault(name.lower(), i)
    if not all(keep):
        extra = [name for name, k in zip(raw.columns, keep, strict=True) if not k]
        _note_duplicate_names(extra, report)
        raw = raw.loc[:, keep]
    raw = _known_names(raw, report)
    id_col = next(c for c in raw.columns if _is_id_column(c))

    ids = raw[id_col].map(lambda v: normalise_id(v) if pd.notna(v) else "")
    empty = ids == ""
    if empty.any():
        report.append(f"{int(empty.sum())} row(s) without a TCIA_ID dropped")
    raw = raw.loc[~empty].copy()
    written = [str(v).strip() for v in raw[id_col]]  # as the sheet spells them
    raw.index = pd.Index(ids[~empty], name=ID_COLUMN)
    raw = raw.drop(columns=[id_col])
    # a notes row under the table ("Note: AFP in ng/mL…"): an "ID" with no data is no patient
    notes = [
        pid
        for pid, (_, row) in zip(raw.index, raw.iterrows(), strict=True)
        if all(pd.isna(v) or str(v).strip() == "" for v in row) and not _looks_like_id(pid)
    ]
    if notes:
        shown = ", ".join(repr(n[:40]) for n in notes[:3])
        report.append(f"{len(notes)} row(s) with text in TCIA_ID and no data dropped ({shown})")
        keep_rows = ~raw.index.isin(notes)
        written = [w for w, k in zip(written, keep_rows, strict=True) if k]
        raw = raw.loc[keep_rows]
    duplicated = raw.index.duplicated(keep="first")
    written_kept = written
    if duplicated.any():
        same, differ = [], []
        for pid in sorted(set(raw.index[duplicated])):
            rows = raw.loc[[pid]]
            cols = [
                str(c)
                for c in rows.columns
                if rows[c].map(lambda v: "" if pd.isna(v) else str(v).strip()).nunique() > 1
            ]
            (differ if cols else same).append((pid, cols))

        def spelt(pid: str) -> str:
            """How the sheet writes the rows read as ``pid`` ("HCC 4", "HCC004"), when that is
            not ``pid`` itself: a search of the sheet for HCC_004 found neither row."""
            kept = [w for w, i in zip(written_kept, raw.index, strict=True) if i == pid]
            forms = list(dict.fromkeys(kept))
            if forms == [pid]:
                return pid
            return f"{pid} (written {', '.join(repr(f) for f in forms)})"

        if same:
            report.append(
                f"duplicate TCIA_ID(s) {', '.join(spelt(pid) for pid, _ in same)} with "
                "identical rows: kept one"
            )
        for pid, cols in differ:  # which row is right is the user's call: said as a warning
            shown = ", ".join(cols[:6]) + (f" and {len(cols) - 6} more" if len(cols) > 6 else "")
            report.append(
                f"WARNING: {spelt(pid)} has {int((raw.index == pid).sum())} rows that differ in "
                f"{shown}: kept the first row; fix the table if another is right"
            )
        raw = raw.loc[~duplicated]
    if not len(raw.index):
        raise InputError(path, "the table has a TCIA_ID column but no patient rows")
    if not len(raw.columns):  # (pandas calls a frame of rows and no columns empty too)
        raise InputError(
            path,
            f"the table has {len(raw.index)} patient row(s) but no clinical columns: only the "
            "TCIA_ID column",
        )

    encoded = {}
    text_columns = []
    marks = _mark_counts(raw)  # once: each column's mark is the others' (a 1000-column sheet)
    marks[_WORKBOOK] = path.suffix.lower() in (".xlsx", ".xlsm", ".xls")
    for column in raw.columns:
        encoder = _encoder_for(column)
        values = raw[column]
        if encoder is None:  # a column this package does not list: numbers, or text kept raw
            if any(isinstance(v, str) and _BOUND.match(v.strip()) for v in values):
                text_columns.append(column)  # '<=60', '>60': a group (agegp), not a lab limit
                continue
            numbers, unknown, notes = _apply_numbers(
                values, _file_decimal_mark(marks, separator, column)
            )
            if unknown:  # (words in it: a text column, as Pathology)
                text_columns.append(column)
                continue
            report.extend(_column_notes(column, notes))
            encoded[column] = numbers
            continue
        if encoder is _encode_number:  # the column's own decimal mark
            written = values  # as the sheet has them (unknown ones are said so)
            values, with_unit = _without_own_unit(column, values)
            result, unknown, notes = _apply_numbers(
                values, _file_decimal_mark(marks, separator, column)
            )
            # (those read: '. cm' was counted, then said unknown)
            read = [
                f"{pid} {str(written[pid]).strip()!r}" for pid in with_unit if pd.notna(result[pid])
            ]
            if read:
                shown = _patients(read)
                report.append(
                    f"{column}: {len(read)} value(s) written with the column's unit "
                    f"({shown}) read as numbers"
                )
            values = written
            report.extend(_column_notes(column, notes))
        else:
            result, unknown = _apply(encoder, values)
        if encoder is encode_t_involvment:
            report.extend(_share_notes(column, values))
            # a column of percentage cells: its 100 % cell is the number 1, not the code 1
            # (≤ 50 %) a coded column's 1 is; said
            full = [
                pid
                for pid, v in values.items()
                if _is_number_cell(v) and float(v) == 1.0 and any(_is_share(x) for x in values)
            ]
            for pid in full:
                result[pid] = 2.0
            if full:
                report.append(
                    f"{column}: {_patients([f'{pid} 1' for pid in full])} read as 100 % (>50 %), "
                    "as the column's other number cells are shares"
                )
        # each patient beside its own cell (two sorted lists side by side paired them wrong);
        # a date where a number belongs was said with what it likely is
        cells = [
            f"{pid} {str(v).strip()!r}"
            for pid, v, r in zip(values.index, values, result, strict=True)
            if not _blank(v) and pd.isna(r) and not _is_date(v)
        ]
        if unknown and cells:
            report.append(f"{column}: unknown value(s) {_patients(cells)} treated as missing")
        low, high, unit = _PLAUSIBLE.get(column.strip().lower(), (None, None, ""))
        odd = ((result < low) if low is not None else False) | (
            (result > high) if high is not None else False
        )
        if np.any(odd):
            # each patient beside its own value (sorted values beside the patients in table
            # order paired them wrong)
            where = [f"{pid} {_g(v)}" for pid, v in result[np.asarray(odd, bool)].items()]
            report.append(
                f"{column}: {_patients(where)} outside the plausible {_g(low)}–{_g(high)} {unit} "
                "treated as missing"
            )
            result = result.mask(odd)
        encoded[column] = result
    frame = pd.DataFrame(encoded, index=raw.index)
    missing = {c: int(n) for c, n in frame.isna().sum().items() if n}
    if missing:
        listing = ", ".join(f"{c} ({n})" for c, n in missing.items())
        report.append(f"missing values: {listing}")
    if text_columns:
        report.append(f"text columns kept in .raw only (not encoded): {', '.join(text_columns)}")
    report.insert(0, f"{len(frame)} patients, {frame.shape[1]} encoded columns from {path.name}")
    return ClinicalTable(frame=frame, raw=raw, report=report, source=path)


def _g(value: float) -> str:
    """A number as a note writes it: ``64``, ``0.5``, ``1e12`` (not ``1e+12``)."""
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", f"{value:g}")


def normalise_id(value) -> str:
    """``'hcc_1'``, ``'HCC-001 '``, ``'HCC001'`` -> ``'HCC_001'``; other IDs are only stripped
    and composed (NFC): a folder named on macOS, or unpacked from a Mac's zip, holds é as e + ´,
    which the é typed in a table or split file is not, code point by code point. Invisible
    format characters (a zero-width space or joiner, a soft hyphen, a byte-order mark: pasted
    from a web page or a PDF) are taken out, and a Unicode dash or minus (``–``, ``‑``, ``−``:
    a spreadsheet's autocorrect) reads as ``-``: the ID looked the same as the folder's and
    matched no patient."""
    text = unicodedata.normalize("NFC", _id_characters(str(value)).strip())
    match = re.fullmatch(r"(?i)hcc[\s_\-]*0*(\d+)(\.0)?", text)
    if match:
        return f"HCC_{int(match.group(1)):03d}"
    return text


def _id_characters(text: str) -> str:
    """``text`` without format characters (category Cf), its dashes (category Pd) and minus
    signs read as '-'."""
    if text.isascii():
        return text
    out = []
    for ch in text:
        kind = unicodedata.category(ch)
        if kind != "Cf":
            out.append("-" if kind == "Pd" or ch == "\u2212" else ch)
    return "".join(out)


def shown_id(value) -> str:
    """An ID as a message lists it: as it is, or, where it holds characters that do not show
    (control or format characters, a space other than the plain one, a combining mark or an
    unassigned code point), those written as Python escapes them (``'HCC_00\\xa01'``), so that
    an ID that matched nothing does not look the same as the one it was meant to be."""
    text = str(value)
    if all(ch == " " or not _hidden(ch) for ch in text):
        return text
    return (
        "'"
        + "".join(ch.encode("unicode_escape").decode("ascii") if _hidden(ch) else ch for ch in text)
        + "'"
    )


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "CZM" and ch != " "


def row_ids_for(case_ids, table_ids) -> dict[str, str]:
    """Each patient (folder or file name) → its clinical row's ID, matched as the table's
    IDs are read: a folder renamed ``hcc_001`` or ``HCC-1`` is the table's ``HCC_001``, and
    one whose é macOS stores decomposed is the table's ``é`` (either side's, composed)."""
    rows = {str(t) for t in table_ids}
    composed = {unicodedata.normalize("NFC", t): t for t in sorted(rows)}
    out = {}
    for case in case_ids:
        case = str(case)
        if case in rows:
            out[case] = case
        elif normalise_id(case) in rows:
            out[case] = normalise_id(case)
        elif normalise_id(case) in composed:
            out[case] = composed[normalise_id(case)]
    return out


# --------------------------------------------------------------------------- encoders
def encode_t_involvment(value: str) -> float | None:
    """``'< or = 50%'`` -> 1, ``'>50%'`` -> 2; a share (``'30%'``, or a workbook's number
    between 0 and 1) -> its group."""
    if _is_share(value):  # a percentage cell: Excel stores 30% as the number 0.3
        return 1.0 if value <= 0.5 else 2.0
    text = re.sub(r"\s+", "", str(value).lower())
    if text in {"<or=50%", "<=50%", "≤50%", "=<50%", "1", "1.0", "1,0"}:
        return 1.0
    if text in {">50%", "2", "2.0", "2,0"}:
        return 2.0
    # a share written as a number ("30%", "75 %", "<30%", ">60%"): the group it falls in,
    # when the bound leaves no doubt ("<60%" may be either)
    match = re.fullmatch(r"(<=|≤|=<|<|>=|≥|>)?(\d+(?:[.,]\d+)?)%", text)
    if match:
        bound, share = match.group(1), float(match.group(2).replace(",", "."))
        if not 0 <= share <= 100:
            return None
        if bound is None:
            return 1.0 if share <= 50 else 2.0
        if bound in ("<=", "≤", "=<", "<"):
            return 1.0 if share <= 50 else None
        return 2.0 if share > 50 or (bound == ">" and share == 50) else None
    return None


def _is_number_cell(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _is_share(value) -> bool:
    """Whether a ``T_involvment`` cell is a number cell strictly between 0 and 1: the share a
    percentage cell holds (text such as '0.3' is not one: a CSV writes a percentage as '30%')."""
    return (
        isinstance(value, (int, float, np.number))
        and not isinstance(value, (bool, np.bool_))
        and 0 < float(value) < 1
    )


def _share_notes(column: str, values: pd.Series) -> list[str]:
    """The note, once, on ``T_involvment`` number cells read as shares."""
    cells = [f"{pid} {float(v):g}" for pid, v in values.items() if _is_share(v)]
    if not cells:
        return []
    return [
        f"{column}: number(s) between 0 and 1 ({_patients(cells)}) read as shares "
        "(0.3 as 30%: a spreadsheet stores a percentage cell so) and put in their group"
    ]


def encode_clip_score(value: str) -> float | None:
    """``'Stage_0'`` ... ``'Stage_6'`` -> 0 ... 6 (plain numbers accepted)."""
    match = re.fullmatch(r"(?:stage[\s_\-]*)?([0-6])([.,]0)?", str(value).strip().lower())
    return float(match.group(1)) if match else None


def encode_tnm(value: str) -> float | None:
    """``'Stage-I'`` ... ``'Stage-IVB'`` -> 1 ... 7 (I, II, IIIA, IIIB, IIIC, IVA, IVB)."""
    text = re.sub(r"(?i)^stage[\s_\-]*", "", str(value).strip()).upper().replace(" ", "")
    if text in _ROMAN:
        return float(_ROMAN[text])
    if re.fullmatch(r"[1-7]([.,]0)?", text):
        return float(text[0])
    return None


def encode_yes_no(value) -> float | None:
    text = str(value).strip().lower()
    if text in _YES:
        return 1.0
    if text in _NO:
        return 0.0
    return None


def _mapping(table: dict[str, float]) -> Callable[[str], float | None]:
    def encode(value) -> float | None:
        text = re.sub(r"\s+", "", str(value).strip().lower())
        text = re.sub(r"^stage[_\-]?", "", text)  # "Stage-A", "Stage_I" -> "a", "i"
        if text in table:
            return table[text]
        try:
            number = float(text)
        except ValueError:
            return None
        return number if number in table.values() else None

    return encode


_ENCODERS: dict[str, Callable] = {
    "t_involvment": encode_t_involvment,
    "clip_score": encode_clip_score,
    "tnm": encode_tnm,
    "sex": _mapping({"m": 1.0, "male": 1.0, "f": 0.0, "female": 0.0}),
    "tumor_nodul": _mapping({"uninodular": 0.0, "multinodular": 1.0}),
    "afp_group": _mapping({"<400": 0.0, ">=400": 1.0, "≥400": 1.0, ">400": 1.0}),
    "cps": _mapping({"a": 1.0, "b": 2.0, "c": 3.0}),
    "okuda": _mapping({"i": 1.0, "ii": 2.0, "iii": 3.0}),
    "bclc": _mapping({"0": 0.0, "a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}),
}
_ENCODERS.update({c.lower(): encode_yes_no for c in YES_NO_COLUMNS})


def _encode_number(value) -> float | None:
    try:
        number = float(str(value).strip().replace(",", "."))
    except ValueError:
        return None
    return number if np.isfinite(number) else None


_THOUSANDS = {
    # (a group never starts with 0: "0.500" and "0,500" are decimals whichever the mark)
    ",": re.compile(r"[1-9]\d{0,2}(,\d{3})+(\.\d+)?"),
    ".": re.compile(r"[1-9]\d{0,2}(\.\d{3})+(,\d+)?"),
}


#: a decimal written with each mark (``12,5``; ``0.9``) and a figure that could be a thousand
_DECIMAL = {m: re.compile(rf"\d+\{m}\d+") for m in (",", ".")}
_ONE_GROUP = {m: re.compile(rf"[1-9]\d{{0,2}}\{m}\d{{3}}") for m in (",", ".")}
#: a cell that holds only digits, marks and a sign
_NUMBER_TEXT = re.compile(r"[+-]?[\d.,]+")


@functools.lru_cache(maxsize=1 << 16)  # a tall table repeats its values (20 000 rows: 18 s)
def _own_mark(text: str) -> str | None:
    """The decimal mark a value written as text shows beyond doubt: ``","`` for ``12,5`` or
    ``1.234,5``, ``"."`` for ``0.9`` or ``1,234.5``; None for ``250``, ``1.234`` or ``16,000``
    (a decimal or a thousands separator)."""
    t = text.lstrip("+-")
    if "," in t and "." in t:
        return "," if t.rfind(",") > t.rfind(".") else "."
    for mark in (",", "."):
        if _DECIMAL[mark].fullmatch(t) and not _THOUSANDS[mark].fullmatch(t):
            return mark
    return None


def _decimal_mark(texts) -> str | None:
    """The decimal mark values written as text show: the one most of those that show it beyond
    doubt use (``12,5`` or ``1.234,5`` for a comma, ``0.9`` for a point); None when none shows
    one, or as many show each."""
    marks = [m for m in map(_own_mark, texts) if m]
    if marks.count(",") == marks.count("."):
        return None
    return "," if marks.count(",") > marks.count(".") else "."


def _mark_counts(raw: pd.DataFrame) -> dict:
    """Per column, how many of its number cells written as text show a decimal comma and how
    many a point, beyond doubt (``{column: (commas, points)}``)."""
    counts = {}
    for column in raw.columns:
        shown = [
            _own_mark(str(v).strip())
            for v in raw[column]
            if isinstance(v, str) and _NUMBER_TEXT.fullmatch(str(v).strip())
        ]
        counts[column] = (shown.count(","), shown.count("."))
    counts[_ALL] = (sum(c for c, _ in counts.values()), sum(p for _, p in counts.values()))
    return counts


#: :func:`_mark_counts`' key of the whole table's counts
_ALL = object()
#: the key :func:`read_clinical` adds to :func:`_mark_counts`' dict: whether the table is a
#: workbook
_WORKBOOK = object()


def _file_decimal_mark(marks: dict, separator: str | None, column=None) -> tuple[str, str, bool]:
    """The decimal mark of ``column`` when its own values do not show one, why, and whether
    the table shows it: the mark the other columns' number cells written as text show (True;
    ``marks`` from :func:`_mark_counts`); else a comma for a CSV separated by semicolons (the
    export of a spreadsheet set to a decimal comma); else a point (False: a guess).

    In a workbook the other columns' mark is taken but counts as a guess (False): numbers
    there are number cells, and a few text cells elsewhere ('12,5' in TTP) say little of how
    a column's own text cell ('1,234' in AFP) was meant; read so, it was 1.234 with no word."""
    own = marks.get(column, (0, 0))
    commas, points = marks[_ALL][0] - own[0], marks[_ALL][1] - own[1]
    mark = None if commas == points else ("," if commas > points else ".")
    if mark is not None and marks.get(_WORKBOOK):
        where = [
            str(c)
            for c, n in marks.items()
            if isinstance(c, str) and c != column and n[0 if mark == "," else 1]
        ]
        shown = ", ".join(where[:4]) + (f" and {len(where) - 4} more" if len(where) > 4 else "")
        return mark, f"numbers written as text in {shown} use it", False
    if mark is not None:
        return mark, "the table's other numbers use it", True
    if separator == ";":
        return ",", "the file is separated by semicolons, as a decimal comma's export is", False
    return ".", "no value in the table shows another", False


def _apply_numbers(
    values: pd.Series,
    default: tuple[str, str, bool] = (".", "no value in the table shows another", False),
) -> tuple[pd.Series, set[str], list[str]]:
    """Numbers, with the column's decimal mark: ``"1,234"`` in a column whose decimals are
    points (an English sheet) is 1234, not 1.234 (an AFP read a thousand times too small);
    ``"1.234"`` beside ``"12,5"`` (a European sheet) is 1234. A column whose values show no
    mark takes ``default`` (the mark, and why). Thousands read so are said, and so are values
    that could have been thousands read as decimals."""
    texts = [str(v).strip() for v in values if isinstance(v, str) and str(v).strip()]
    mark = _decimal_mark(texts)
    why = f"the column's decimal mark is '{mark}'"
    # how many of the column's cells show the mark beyond doubt (None: the table's, or a guess)
    n_shown = sum(_own_mark(t) == mark for t in texts) if mark is not None else None
    if mark is not None and default[2] and default[0] == mark:
        n_shown = None  # the table's other numbers show the same mark: no guess
    if mark is None:
        mark = default[0]
        why = f"the column shows no decimal mark; '{mark}' taken, as {default[1]}"
        n_shown = None if default[2] else 0
    sep = "." if mark == "," else ","
    unknown: set[str] = set()
    grouped: list[str] = []
    as_decimal: list[str] = []  # '1.234' read as 1.234: 1234 had the mark been the other
    other: list[str] = []  # cells that show the other mark beyond doubt: read with their own
    censored: list[str] = []  # '>400', '<5': read as their bound
    dated: list[str] = []  # a date where a number belongs (a number cell formatted as a date)
    out = []
    for pid, v in values.items():
        cell = f"{pid} {str(v).strip()!r}"  # the patient beside the cell, as notes name them
        if _blank(v):
            out.append(np.nan)
            continue
        if _is_date(v):  # unknown as a number; said below with what it likely is
            dated.append(_date_note(pid, v))
            unknown.add(str(v).strip())
            out.append(np.nan)
            continue
        if not isinstance(v, str):  # a number cell
            code = _encode_number(v)
            if code is None:
                unknown.add(str(v).strip())
                out.append(np.nan)
            else:
                out.append(code)
            continue
        text = v.strip()
        bound = _BOUND.match(text)
        if bound:  # a lab's limit ('>400', '<5'): the bound is the nearest number it says
            censored.append(cell)
            text = bound.group(2)
        if _own_mark(text) == sep:
            other.append(cell)
            code = _encode_number(
                text.replace(mark, "") if sep == "." else text.replace(".", "").replace(",", ".")
            )
        else:
            if _THOUSANDS[sep].fullmatch(text.lstrip("+-")):
                grouped.append(cell)
                text = text.replace(sep, "")
            elif _ONE_GROUP[mark].fullmatch(text.lstrip("+-")):
                as_decimal.append(cell)
            code = _encode_number(text.replace(mark, ".") if mark == "," else text)
        if code is None:
            unknown.add(str(v).strip())
            out.append(np.nan)
            if bound:
                censored.pop()
        else:
            out.append(code)
    notes = []
    if other:  # one sheet, two conventions: the cells read by the majority's are in doubt
        notes.append(
            "WARNING: decimal marks differ within the column: "
            + (f"most cells use '{mark}'" if n_shown else f"'{mark}' taken ({why})")
            + f", {_patients(other)} use '{sep}' (each read with its own mark)"
            + (
                f"; {_patients(grouped)} could be either and were read "
                f"with '{sep}' as a thousands separator: check those values"
                if grouped
                else ""
            )
        )
    elif grouped:
        shown = _patients(grouped)
        notes.append(
            ("WARNING: " if n_shown == 0 else "")  # read on a guessed mark: could be decimals
            + f"{shown} read with '{sep}' as a thousands separator ({why}); check the values "
            "if that is wrong"
        )
    # values that could be thousands read as decimals: warned of when the mark they were read
    # with is a guess, or fewer of the column's cells show it than could be thousands (one '2,5'
    # beside '1,234' and '16,000' decides the column); 3-decimal figures in a column or table
    # whose decimals show the mark are not
    if as_decimal and n_shown is not None and n_shown < len(as_decimal):
        one = len(as_decimal) == 1
        notes.append(
            f"WARNING: {_patients(as_decimal)} read with '{mark}' as the decimal mark ({why}); "
            f"if {'it is a number' if one else 'they are numbers'} in thousands, write "
            f"{'it' if one else 'them'} without the '{mark}'"
        )
    if censored:
        notes.append(
            f"{_patients(censored)} read as the limit "
            f"{'it gives' if len(censored) == 1 else 'each gives'} (a value beyond a lab's range)"
        )
    if dated:
        notes.append(
            f"WARNING: {_patients(dated)} {'is a date' if len(dated) == 1 else 'are dates'}, "
            "not a number: treated as missing; a number cell formatted as a date or time in the "
            "spreadsheet shows so (an early date's Excel day number is given in brackets): "
            "format the cell as a number if it holds one"
        )
    return pd.Series(out, index=values.index, dtype=float), unknown, notes


def _is_date(value) -> bool:
    """Whether a cell holds a date or a time (a workbook's date-formatted cell), not a number."""
    return isinstance(value, (datetime.date, datetime.time, np.datetime64))


#: day 0 of Excel's (Windows) day numbers, as counted from March 1900 (Excel counts a 29
#: February 1900 that never was)
_EXCEL_EPOCH = datetime.datetime(1899, 12, 30)


def _date_note(pid, value) -> str:
    """A date cell as a note names it: the patient, the date, and for an early date (one a
    number such as 75 days shows when formatted as a date) the number it holds in Excel."""
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, datetime.time):
        seconds = value.hour * 3600 + value.minute * 60 + value.second
        return f"{pid} {value.isoformat()} (day number {seconds / 86400:g})"
    if not isinstance(value, datetime.datetime):
        value = datetime.datetime.combine(value, datetime.time())
    shown = value.date().isoformat() if value.time() == datetime.time() else value.isoformat()
    if value.year >= 1910:  # a real date: no number of days of a clinical interval is so large
        return f"{pid} {shown}"
    delta = value - _EXCEL_EPOCH
    days = delta.days - (1 if 0 < delta.days <= 60 else 0) + delta.seconds / 86400
    return f"{pid} {shown} (day number {days:g})"


#: a value given as a bound: '>400', '>= 400', '≤5', '<0.5'
_BOUND = re.compile(r"^(>=|<=|≥|≤|>|<)\s*(\d[\d.,]*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)$")


#: the unit HCC-TACE-Seg's table gives a column's values in, as a cell may spell it after the
#: number ("63 years", "0.9 ng/mL", "3.6 cm"); another unit ("36 mm") is not converted: such a
#: cell stays unknown, said with its value
_CELL_UNITS = {
    "age": r"(?:y|yrs?|years?(?:\s+old)?|y/?o)",
    "afp": r"(?:ng/ml|[µμu]g/l|mcg/l)",
    "tr_size": r"cm",
}


def _without_own_unit(column: str, values: pd.Series) -> tuple[pd.Series, list]:
    """``values`` with the column's own unit (:data:`_CELL_UNITS`) taken off the cells that
    end in it, and those cells' index labels."""
    unit = _CELL_UNITS.get(column.strip().lower())
    if unit is None:
        return values, []
    pattern = re.compile(
        rf"^\s*((?:>=|<=|≥|≤|>|<)?\s*[+-]?[\d.,]+(?:[eE][+-]?\d+)?)\s*{unit}\.?\s*$", re.I
    )
    taken: list = []
    out = []
    for pid, v in values.items():
        match = pattern.match(v) if isinstance(v, str) else None
        if match:
            taken.append(pid)
            out.append(match.group(1).strip())
        else:
            out.append(v)
    if not taken:
        return values, []
    return pd.Series(out, index=values.index, dtype=object), taken


def _column_notes(column: str, notes: list[str]) -> list[str]:
    """A column's notes as report lines (a warning keeps its mark in front)."""
    return [
        f"WARNING: {column}: {n.removeprefix('WARNING: ')}"
        if n.startswith("WARNING: ")
        else f"{column}: {n}"
        for n in notes
    ]


def _note_duplicate_names(extra: list[str], report: list[str]) -> None:
    report.append(
        f"column name(s) {', '.join(repr(n) for n in dict.fromkeys(extra))} appear more "
        "than once (read without case and surrounding spaces): the first of each is read, "
        "the later ones left out"
    )


#: what a unit in a header's brackets may say ("AFP (ng/mL)", "age [years]"); other words in
#: brackets ("TTP (censored)", "AFP (>=400)") name another variable and keep the name apart
_UNIT = re.compile(
    r"[(\[]\s*(?:ng/ml|[µμu]g/l|iu/ml|kiu/l|u/l|%|cm|mm|ml|y|yrs?\.?|years?|mo\.?|months?|d|days?"
    r"|wks?\.?|weeks?)\s*[)\]]"
)


def _name_key(name: str) -> str:
    """A column name without case, spaces, underscores, hyphens, dots or a unit in brackets,
    with "involvement" spelt as TCIA's table spells it: "AFP (ng/mL)" and "afp" are one key,
    so are "T_involvement" and "T_involvment", "CLIP Score" and "CLIP_Score"."""
    text = _UNIT.sub("", str(name).lower())
    return re.sub(r"[\s_\-.]+", "", text).replace("involvement", "involvment")


_KNOWN_KEYS = {_name_key(c): c for c in KNOWN_COLUMNS}


def _known_names(raw: pd.DataFrame, report: list[str]) -> pd.DataFrame:
    """Headers that name a known column in another spelling take its name (said); one whose
    name is already in the table is left as it is."""
    present = {str(c).lower() for c in raw.columns}
    renames = {}
    for column in raw.columns:
        name = str(column)
        if name.lower() in {c.lower() for c in KNOWN_COLUMNS}:
            continue
        known = _KNOWN_KEYS.get(_name_key(name))
        if known is None or known.lower() in present or known in renames.values():
            continue
        renames[column] = known
    if renames:
        shown = ", ".join(f"{str(a)!r} as {b!r}" for a, b in renames.items())
        report.append(
            f"column(s) read under their usual names: {shown}"
            + (
                " (values as they are: a unit in brackets is not converted)"
                if any(_UNIT.search(str(a).lower()) for a in renames)
                else ""
            )
        )
        raw = raw.rename(columns=renames)
    return raw


def _looks_like_id(value: str) -> bool:
    """A patient ID: short, no sentence (a notes row's text is not one)."""
    text = str(value).strip()
    return bool(re.fullmatch(r"[\w\-. ]{1,32}", text)) and len(text.split()) <= 3


def _encoder_for(column: str):
    key = column.strip().lower()
    if key in _ENCODERS:
        return _ENCODERS[key]
    if key in {c.lower() for c in NUMERIC_COLUMNS}:
        return _encode_number
    return None


def _patients(ids: list[str]) -> str:
    """The rows a note is about, by patient: the cell is found without searching the sheet."""
    return ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")


def _apply(encoder, values: pd.Series) -> tuple[pd.Series, set[str]]:
    unknown: set[str] = set()
    out = []
    for v in values:
        if _blank(v):
            out.append(np.nan)
            continue
        code = encoder(v)
        if code is None:
            unknown.add(str(v).strip())
            out.append(np.nan)
        else:
            out.append(code)
    return pd.Series(out, index=values.index, dtype=float), unknown


# --------------------------------------------------------------------------- reading
def _read_any(path: Path, report: list[str]) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm", ".xls"):
            _check_workbook_bytes(path)
            sheets = pd.read_excel(path, sheet_name=None, header=0, dtype=object)
            if not sheets:
                raise InputError(path, "the workbook has no sheets")
            named = next((n for n in sheets if str(n).strip().lower() == SHEET_NAME), None)
            scores = {n: _sheet_score(sheets[n]) for n in sheets}
            # the sheets that hold patients (a header alone or a data dictionary holds none):
            # where any does, the sheet read is one of them
            held = [n for n in sheets if scores[n][0] and _holds_patients(sheets[n])]
            best = max(scores[n] for n in held or sheets)
            # the sheet so named, unless it holds no patients where another does (the data
            # dictionary named "data table": its variables were read as 5 patients, no warning);
            # a cohort of the user's own IDs (P01: no HCC_001) and columns (a recipe's
            # weak_columns: none this package knows; TCIA_ID and one column) is read by its name
            chosen = named if named is not None and (named in held or not held) else None
            if chosen is None:
                # the sheet that looks most like the patients' table (a notes, README or data
                # dictionary sheet may come first; a dictionary lists TCIA_ID as a value)
                if best[0]:
                    chosen = next(n for n in held or sheets if scores[n] == best)
                else:  # no sheet has the ID column: the one so named, else the first, refused
                    chosen = named if named is not None else next(iter(sheets))
                others = [str(n) for n in sheets if n != chosen]
                if chosen != named:  # (the sheet so named without the ID column: refused)
                    report.append(
                        (
                            f"no sheet named '{SHEET_NAME}'"
                            if named is None
                            else f"the sheet '{named}' has no TCIA_ID column"
                            if not scores[named][0]
                            else f"the sheet '{named}' has no patient rows (only its header)"
                            if not _patient_ids(sheets[named])
                            else f"the sheet '{named}' holds column names or text under its "
                            "TCIA_ID, no patient IDs (a data dictionary?)"
                        )
                        + f"; read the sheet '{chosen}'"
                        + (f" (not {', '.join(repr(o) for o in others[:4])})" if others else "")
                        + (
                            f"; a sheet named '{SHEET_NAME}' is read before the others"
                            if others and named is None
                            else ""
                        )
                    )
                    alike = [str(n) for n in held or sheets if n != chosen and scores[n] == best]
                    if best[0] and alike:  # (two copies, or one per cohort: which is meant?)
                        report.append(
                            f"the sheet{'s' * (len(alike) > 1)} "
                            f"{', '.join(repr(o) for o in alike[:4])} look{'s' * (len(alike) == 1)}"
                            f" as much like the patients' table as '{chosen}', which was read as"
                            " the first of them: if another is meant, name it 'data table' or "
                            "save it alone as .csv"
                        )
            elif not scores[chosen][5]:
                # read by its name, with none of the columns this package knows, beside a sheet
                # with some: said (a notes sheet so named gave a table of no usable column)
                richer = [n for n in held if n != chosen and scores[n][5]]
                if richer:
                    known = [
                        c for c in _id_header(sheets[richer[0]])[1] if _name_key(c) in _KNOWN_KEYS
                    ]
                    report.append(
                        f"the sheet '{chosen}' was read, as the sheet named '{SHEET_NAME}', but "
                        "has none of the clinical columns this package knows; the sheet "
                        f"'{richer[0]}' has {', '.join(known[:4])}"
                        f"{', …' if len(known) > 4 else ''}: if that sheet is meant, name it "
                        f"'{SHEET_NAME}' or save it alone as .csv"
                    )
            if _blank_sheet(sheets[chosen]):
                others = [str(n) for n in sheets if n != chosen]
                raise InputError(
                    path,
                    f"the sheet '{chosen}' is empty"
                    + (
                        f" (and no other sheet, {', '.join(repr(o) for o in others[:4])}, has a "
                        "TCIA_ID column)"
                        if others
                        else ""
                    ),
                )
            if suffix != ".xls" and sheets[chosen].isna().to_numpy().any():
                report.extend(_formulas_without_results(path, chosen))
            return sheets[chosen]
        if suffix in (".csv", ".tsv", ".txt"):
            return _read_csv(path)
    except InputError:
        raise
    except Exception as exc:
        if suffix == ".xls" and isinstance(exc, ImportError):  # pandas reads .xls with xlrd
            raise InputError(
                path,
                "is in the old Excel format (.xls), which needs the xlrd package: save it from "
                "the spreadsheet as .xlsx or .csv (or pip install xlrd)",
            ) from exc
        if suffix in (".xlsx", ".xlsm", ".xls") and not isinstance(exc, (ImportError, OSError)):
            raise InputError(
                path,
                "is not an Excel workbook that can be read (damaged, or another kind of file "
                f"named {suffix}): save it again from the spreadsheet as .xlsx or .csv "
                f"({type(exc).__name__}: {_one_line(exc)})",
            ) from exc
        # a spreadsheet open in Excel on Windows is locked against reading: said, as the
        # likely cause, where "[Errno 13] Permission denied" alone sent users to the file's
        # permissions
        hint = (
            " (is it open in another program, such as Excel? close it there and try again)"
            if isinstance(exc, PermissionError)
            else ""
        )
        raise InputError(
            path, f"cannot be read as a table ({type(exc).__name__}: {_one_line(exc)}){hint}"
        ) from exc
    raise InputError(path, f"unsupported table format '{suffix}' (use .xlsx or .csv)")


def _one_line(exc: Exception) -> str:
    """An exception's text on one line (pandas ends some with a newline: a broken GUI line)."""
    return " ".join(str(exc).split())


#: how a workbook's bytes start: a ZIP (.xlsx, .xlsm) or an OLE2 compound file (.xls, and an
#: .xlsx saved with a password)
_WORKBOOK_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")


def _check_workbook_bytes(path: Path) -> None:
    """Refuse, in plain words, a file named as a workbook that is empty or none (pandas: "Excel
    file format cannot be determined, you must specify an engine manually")."""
    with open(path, "rb") as handle:
        head = handle.read(8192)
    if not head:
        raise InputError(path, "the file is empty (0 bytes)")
    if head.startswith(_WORKBOOK_MAGIC):
        return
    if _looks_binary(head):
        what = "it holds binary content of another kind (an image, a PDF?)"
    elif head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):  # a web system's "Excel" export
        what = "it holds HTML or XML (a web page or an XML spreadsheet given an Excel name)"
    else:
        what = "it holds text (a table saved as text? give it the ending .csv)"
    raise InputError(
        path,
        f"is not an Excel workbook: {what}; save it again from the spreadsheet as .xlsx or .csv",
    )


def _looks_binary(data: bytes) -> bool:
    """Whether bytes are no text: a NUL byte, or many control bytes (a text file in UTF-16,
    whose every other byte is NUL, starts with its byte-order mark and is not asked about)."""
    if b"\x00" in data:
        return True
    control = sum(1 for b in data if b < 32 and b not in (9, 10, 12, 13))
    return control > max(2, len(data) // 20)


def _formulas_without_results(path: Path, sheet) -> list[str]:
    """A note when cells of ``sheet`` hold formulas whose results were never saved (a
    workbook written by a program, not opened in a spreadsheet since): they read as empty,
    and were said only as missing values."""
    try:
        from openpyxl import load_workbook

        def rows(data_only: bool) -> list[tuple]:  # one pass over the sheet (a cell looked
            # up alone in read-only mode reads the sheet again: 4000 rows took 4 minutes)
            book = load_workbook(path, read_only=True, data_only=data_only)
            try:
                return list(book[str(sheet)].iter_rows(values_only=True))
            finally:
                book.close()

        formulas = [
            (i, j)
            for i, row in enumerate(rows(False))
            for j, v in enumerate(row)
            if isinstance(v, str) and v.startswith("=")
        ]
        if not formulas:
            return []
        saved = rows(True)
        from openpyxl.utils import get_column_letter

        empty = [
            f"{get_column_letter(j + 1)}{i + 1}"
            for i, j in formulas
            if i >= len(saved) or j >= len(saved[i]) or saved[i][j] is None
        ]
    except Exception:  # noqa: BLE001 - a courtesy: the table reads without it
        return []
    if not empty:
        return []
    return [
        f"WARNING: {len(empty)} cell(s) hold formulas whose results were never saved ("
        + ", ".join(empty[:5])
        + (", …" if len(empty) > 5 else "")
        + "): read as missing. Open the workbook in a spreadsheet and save it (that computes "
        "them)"
    ]


def _blank_sheet(frame: pd.DataFrame) -> bool:
    """Whether a sheet holds nothing: no cell and no header."""
    return frame.dropna(how="all").empty and all(
        str(c).startswith("Unnamed:") for c in frame.columns
    )


def _sheet_score(frame: pd.DataFrame) -> tuple:
    """How much a sheet looks like the patients' table, compared as a tuple: whether it has an
    ID column (:func:`_has_id_column`), whether its header names two columns or more beside it
    (a side sheet of one variable, ``TCIA_ID | OS``, is read by its name "data table" or where
    no wider sheet holds patients), whether a row below its header holds an ``HCC_001``-like
    ID, the patients (distinct such IDs) times the clinical columns this package knows in its
    header (what it tells of them), the patients, the known columns, whether the header is the
    sheet's first row, how many distinct ID-like values it holds. A data dictionary
    (``TCIA_ID | patient id | text`` as a row) has an ID column by :func:`_has_id_column`'s
    count, but no HCC ID and no known column: its sheet read, no patient matched. A follow-up
    sheet of three visits a patient (``TCIA_ID | Visit | RECIST``) holds the same patients as
    the baseline sheet beside it, and nothing this package reads: counted by rows, it won."""
    if not _has_id_column(frame):
        return (False, False, False, 0, 0, 0, False, 0)
    at, header, _ = _id_header(frame)
    ids = _patient_ids(frame)
    hcc = len({key for key in map(normalise_id, ids) if key.startswith("HCC_")})
    names = [c for c in header if c and c != "nan" and not c.startswith("Unnamed:")]
    named = sum(_name_key(c) in _KNOWN_KEYS for c in names)
    wide = len(names) >= 3
    return (True, wide, hcc > 0, hcc * named, hcc, named, at == 0, sum(map(_looks_like_id, ids)))


def _id_header(frame: pd.DataFrame) -> tuple[int, list[str], int]:
    """Where a sheet with an ID column (:func:`_has_id_column`) has its header: the rows above
    the header's (0 when it is the sheet's first), its names, the ID column's place."""
    rows = [list(frame.columns)] + [list(r) for r in frame.head(_HEADER_ROWS).values]
    at = next(i for i, row in enumerate(rows) if any(_is_id_column(c) for c in row if pd.notna(c)))
    header = [str(c).strip() for c in rows[at]]
    return at, header, next(j for j, c in enumerate(header) if _is_id_column(c))


def _patient_ids(frame: pd.DataFrame) -> set[str]:
    """The distinct values under a sheet's ID column (none in a sheet of a header alone)."""
    if not _has_id_column(frame):
        return set()
    at, _, column = _id_header(frame)
    return {str(v).strip() for v in frame.iloc[at:, column] if pd.notna(v) and str(v).strip()}


def _holds_patients(frame: pd.DataFrame) -> bool:
    """Whether a sheet with an ID column holds patients: rows under its header whose IDs are
    ``HCC_001``-like; or are not the names of columns (a data dictionary's rows are its
    variables: ``TCIA_ID | patient id | text``) and have a value in a clinical column this
    package reads (a number where it reads one: ``63``, ``63 years``, ``>400``; "years" or
    "ng/mL" describe the variable); or are a cohort's own (:func:`_own_rows`: ``P01`` with
    columns of the user's own, as a recipe's weak_columns, or known ones left blank)."""
    ids = _patient_ids(frame)
    if any(normalise_id(v).startswith("HCC_") for v in ids):
        return True
    if not ids or all(_name_key(v) in _KNOWN_KEYS or _is_id_column(v) for v in ids):
        return False
    at, header, _ = _id_header(frame)
    for j, name in enumerate(header):
        known = _KNOWN_KEYS.get(_name_key(name))
        encoder = _encoder_for(known) if known is not None else None
        if encoder is None:
            continue
        values = [v for v in frame.iloc[at:, j] if not _blank(v)]
        if encoder is _encode_number:
            if any(re.match(r"\s*[<>≤≥=]*\s*[-+]?\.?\d", str(v)) for v in values):
                return True
        elif any(encoder(v) is not None for v in values):
            return True
    return _own_rows(frame, ids)


def _own_rows(frame: pd.DataFrame, ids: set[str]) -> bool:
    """Whether a sheet's rows are patients of a cohort's own, in columns this package does not
    know: the IDs are codes (short, most with a digit: ``P01``, ``7``, ``case-3``), or they
    are short names (none a column's: ``alpha``) beside a number in another column. A data
    dictionary's rows are variables, names without a digit (``burden_score``), beside words
    that describe them (``tumour burden score``, ``points``, ``1-4``)."""
    if not all(_looks_like_id(v) for v in ids):  # prose: a dictionary's or a notes row
        return False
    at, header, column = _id_header(frame)
    # a dictionary's own header (variables Q1, Q2 or V01 have digits too: read as patients)
    if any(_name_key(c) in _DICTIONARY_KEYS for j, c in enumerate(header) if j != column):
        return False
    if 2 * sum(any(c.isdigit() for c in v) for v in ids) > len(ids):
        return True
    if any(_name_key(v) in _KNOWN_KEYS for v in ids):
        return False
    rows = frame.iloc[at:]
    rows = rows[[pd.notna(v) and str(v).strip() != "" for v in rows.iloc[:, column]]]
    others = rows.drop(columns=rows.columns[column])
    return any(_is_number(v) for v in others.to_numpy().ravel())


#: column names of a data dictionary's header (``Variable | Description``, ``Min | Max``): a
#: sheet with one beside its TCIA_ID describes columns, it holds no patients of a cohort's own
_DICTIONARY_KEYS = {
    _name_key(c)
    for c in (
        "variable", "variable name", "field", "field name", "description", "definition",
        "meaning", "explanation", "data type", "type", "format", "unit", "units", "min",
        "minimum", "max", "maximum", "range", "coding", "codes", "allowed values", "levels",
    )
}  # fmt: skip


def _is_number(value) -> bool:
    """A cell holding a number (``63``, ``0.4``, ``>400``), not text with a digit in it."""
    if isinstance(value, bool) or _blank(value):
        return False
    if isinstance(value, (int, float, np.number)):
        return True
    return bool(re.fullmatch(r"\s*[<>≤≥=]*\s*[-+]?(\d+([.,]\d*)?|[.,]\d+)\s*", str(value)))


def _has_id_column(frame: pd.DataFrame) -> bool:
    """Whether a sheet is a table with an ID column (``TCIA_ID``): in its header, or in one
    of the first rows (title rows may come first; :func:`_with_id_header` looks as far), beside
    at least one other column name (``TCIA_ID | AFP`` is a table). A data dictionary's row
    ``TCIA_ID | patient id`` counts too: :func:`_holds_patients` tells it from a table."""
    rows = [list(frame.columns)] + [list(r) for r in frame.head(_HEADER_ROWS).values]
    for row in rows:
        cells = [str(v).strip() for v in row if pd.notna(v) and str(v).strip()]
        cells = [c for c in cells if not c.startswith("Unnamed:")]
        if any(_is_id_column(c) for c in cells) and len(cells) >= 2:
            return True
    return False


#: rows looked in for the header row holding TCIA_ID (title rows above it are skipped)
_HEADER_ROWS = 10


def _read_csv(path: Path) -> pd.DataFrame:
    import io

    data = path.read_bytes()
    if data.startswith(b"PK\x03\x04"):  # a ZIP: an .xlsx renamed (pandas: "ParserError")
        raise InputError(
            path,
            f"is a spreadsheet workbook (a ZIP file, as .xlsx and .ods are), not the text its "
            f"name ({path.suffix or 'no ending'}) says: save it from the spreadsheet as .xlsx "
            "or as CSV",
        )
    if not data:
        raise InputError(path, "the file is empty (0 bytes)")
    # UTF-16 (Excel's "Unicode text" export) announces itself with a byte-order mark
    bom16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
    if not bom16 and _looks_binary(data[:8192]):  # an image, an old .xls (pandas: a
        # "ParserError: Error tokenizing data" with a line break in it)
        raise InputError(
            path,
            f"is not a text table (binary content: an image, an old .xls workbook or another "
            f"program's file, named {path.suffix or 'without an ending'}): save the table from "
            "the spreadsheet as .xlsx or as CSV",
        )
    for encoding in ("utf-16",) if bom16 else ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if not text.strip("\ufeff \t\r\n"):
        raise InputError(path, "the file is empty (only blank lines or spaces)")
    lines = text.splitlines()
    # the header is the first line naming TCIA_ID (exports sometimes carry a title row above)
    start = next(
        (i for i, line in enumerate(lines[:20]) if re.search(r"(?i)tcia[\s_\-]*id", line)), 0
    )
    header = lines[start] if lines else ""
    sep = max(("\t", ";", ","), key=header.count) if header else ","
    frame = pd.read_csv(io.StringIO("\n".join(lines[start:])), sep=sep, dtype=object)
    frame.attrs["separator"] = sep
    return frame


def _is_id_column(name) -> bool:
    return re.sub(r"[\s_\-]+", "", _id_characters(str(name)).strip().lower()) == "tciaid"


def _with_id_header(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Use the first row holding ``TCIA_ID`` as the header (title rows above it are skipped)."""
    if any(_is_id_column(c) for c in raw.columns):
        return raw
    for i in range(min(_HEADER_ROWS, len(raw))):
        row = raw.iloc[i]
        if any(_is_id_column(v) for v in row if pd.notna(v)):
            body = raw.iloc[i + 1 :].copy()
            body.columns = [str(v) if pd.notna(v) else f"column_{j}" for j, v in enumerate(row)]
            return body.reset_index(drop=True)
    names = [str(c) for c in list(raw.columns)[:8]]
    # control bytes: not text (an image, a zip); a header cell wrapped in Excel (Alt+Enter)
    # holds a line break, which is text
    if any(not n.translate({9: 32, 10: 32, 13: 32}).isprintable() for n in names):
        raise InputError(
            path, "no TCIA_ID column: the file does not read as a table (binary content?)"
        )
    flat = [" ".join(n.split()) for n in names]  # a wrapped cell on one line of the message
    raise InputError(path, f"no TCIA_ID column (columns: {', '.join(flat)}...)")
