"""The CSV tables the package writes, made safe to open in a spreadsheet.

A text cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or a carriage return) is
read by Excel, LibreOffice and Google Sheets as a formula, and run: a case named after a file
``=HYPERLINK("http://…","x").nii.gz`` gave a link in ``per_case.csv`` that can send the
table's cells to another site when clicked, and ``=cmd|…`` starts a program in older Excel.
Such a cell is written with an apostrophe first (the OWASP advice), which a spreadsheet shows
as text; numbers, negative ones included, are written as they are. A text's own leading
apostrophe gets another one, so that a table read back (:func:`cell_value`) gives the text as
it was (a summary written before 6 Dec 2026 held such text as it is, and an input path there
beginning with an apostrophe and then ``=``, ``+``, ``-`` or ``@`` reads back without the
apostrophe). Used by every CSV writer:
``segment``'s ``summary.csv``, ``evaluate``'s ``per_case.csv`` and ``lesions.csv``, Export's
``<case>_lesions.csv``.
"""

from __future__ import annotations

import re
from typing import Any

#: what a spreadsheet takes as the start of a formula in a cell
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: a number as text ("-12.5", "+3", "1e-05"): read as a number, never a formula (a table read
#: back, whose cells are all text, keeps its negative numbers as numbers)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet will not run: a text that begins like a formula
    gets an apostrophe first; numbers (as text too), and anything that is not text, unchanged.
    """
    if isinstance(value, str) and (
        (value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value))
        or value.startswith("'")  # (its own apostrophe kept: read back, one is taken off)
    ):
        return "'" + value
    return value


def cell_value(text: Any) -> Any:
    """A cell of a table this package wrote as it was before :func:`safe_cell` (the
    apostrophe taken off again), for a table read back and written anew."""
    if isinstance(text, str) and text.startswith("'") and safe_cell(text[1:]) == text:
        return text[1:]
    return text
