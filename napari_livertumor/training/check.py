"""What a training data folder holds, said before hours of training (no Qt): the Train
panel's *Check data* and ``livertumor train --check``."""

from __future__ import annotations

from pathlib import Path


def summarize_data(
    data: str, clinical: str | None = None, progress=None, should_cancel=None
) -> list[str]:
    """Lines describing a training folder: patients, labels, clinical rows and columns matched.

    ``progress(stage, done, total)`` gets one step per patient folder scanned, and
    ``should_cancel()`` is asked between patients and between DICOM files.

    Raises :class:`~napari_livertumor.errors.InputError` when nothing in it is usable, and
    :class:`~napari_livertumor.errors.Cancelled` when told to stop.
    """
    import pandas as pd

    from ..io.clinical import read_clinical
    from ..progress import Reporter
    from ..training.config import DEFAULT_WEAK_COLUMNS
    from ..training.data import find_clinical, index_cases

    skipped: list = []
    records = index_cases(data, skipped=skipped, reporter=Reporter(progress, should_cancel))
    layouts = sorted({r.layout for r in records})
    lines = [f"{len(records)} patient(s) with ground-truth labels ({', '.join(layouts)} layout)"]
    if skipped:
        lines.append(f"{len(skipped)} patient(s) left out:")
        lines += [f"  {case}: {reason}" for case, reason in skipped]
    path = Path(clinical) if clinical else find_clinical(data)
    if path is None:
        lines.append("No clinical table: the tumor stage trains without weak supervision.")
        return lines
    table = read_clinical(path)
    frame = table.frame
    from ..io.clinical import row_ids_for

    rows_of = row_ids_for(sorted({r.case_id for r in records}), frame.index)
    matched = sorted(rows_of.values())  # table IDs, as training matches them
    unmatched = sorted({r.case_id for r in records} - set(rows_of))
    by_key = {str(c).strip().lower(): c for c in frame.columns}  # as training matches them
    found = {c: by_key.get(c.lower()) for c in DEFAULT_WEAK_COLUMNS}
    cols = [col for col in found.values() if col is not None]
    wanted = set(matched)
    rows = frame.loc[[i for i in frame.index if str(i) in wanted]]
    usable = {
        c: int(pd.to_numeric(rows[c], errors="coerce").notna().sum()) if len(rows) else 0
        for c in cols
    }
    good = [c for c in cols if usable[c] > 0]
    lines.append(
        f"Clinical table {path.name}: {len(matched)}/{len(records)} patients matched, "
        f"{len(cols)}/{len(DEFAULT_WEAK_COLUMNS)} weak-supervision columns found, "
        f"{len(good)} with usable values"
    )
    if unmatched:  # named: they train without a weak label
        shown = ", ".join(unmatched[:8]) + (
            f" and {len(unmatched) - 8} more" if len(unmatched) > 8 else ""
        )
        lines.append(f"Without a clinical row (no weak term for them): {shown}")
    if cols and not good:
        lines.append("No usable clinical value: the tumor stage cannot use weak supervision.")
    empty = [c for c in cols if usable[c] == 0]
    if empty:
        lines.append("Columns without a usable value: " + ", ".join(empty))
    sparse = [f"{c} {usable[c]}/{len(matched)}" for c in good if usable[c] < len(matched)]
    if sparse:
        lines.append("Some values missing (usable / patients): " + ", ".join(sparse))
    missing = [c for c, col in found.items() if col is None]
    if missing:
        lines.append("Missing columns: " + ", ".join(missing))
    lines += [f"Table: {msg.replace('WARNING: ', '⚠ ', 1)}" for msg in table.report]
    return lines
