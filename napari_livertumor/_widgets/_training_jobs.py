"""Training work for the Train widget, outside the GUI thread and, for training itself,
outside the GUI process (no Qt here)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def train_in_subprocess(config, should_cancel):
    """Yield the reports of ``training.train(config)`` run in a child process.

    The training loop's data augmentation (scipy.ndimage) holds Python's global lock for up
    to a second at a time; in a thread of this process that froze the window. A child process
    has its own lock. Cancelling sets an event the child's ``should_cancel`` reads, so the loop
    still saves its last weights; the child is only terminated if it ignores that for 60 s.
    """
    import multiprocessing as mp
    import queue
    import tempfile

    from ._jobs import JobFailed

    ctx = mp.get_context("spawn")  # forking a process that runs Qt threads is unsafe
    reports, cancel = ctx.Queue(), ctx.Event()
    # the child's own last words (a crash's traceback) when it dies without reporting
    fd, crash_log = tempfile.mkstemp(prefix="livertumor-train-", suffix=".log")
    os.close(fd)
    child = ctx.Process(
        target=_train_child, args=(config.to_dict(), reports, cancel, crash_log), daemon=True
    )
    with _main_script_hidden():
        child.start()
    try:
        while True:
            if should_cancel():
                cancel.set()
            try:
                kind, payload = reports.get(timeout=0.1)
            except queue.Empty:
                if not child.is_alive():
                    raise JobFailed(_death_message(child.exitcode, crash_log)) from None
                continue
            if kind == "report":
                yield payload
            elif kind == "error":
                raise JobFailed(payload)
            else:
                return
    finally:
        cancel.set()
        child.join(timeout=60)
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)
        with contextlib.suppress(OSError):
            os.unlink(crash_log)


@contextlib.contextmanager
def _main_script_hidden():
    """Start the child without it importing the script napari was started from.

    A "spawn" child imports the parent's ``__main__`` (by its path, or by name under
    ``python -m``) before it runs anything; a script whose code is not under
    ``if __name__ == "__main__":`` (as in napari's own examples) then opened a second napari
    window, and training waited until it was closed. The child needs nothing from it (the
    target is this module's, its arguments plain data): ``__main__`` shows the child neither
    its path nor its module name while it starts.
    """
    import sys

    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    try:
        main.__dict__.pop("__file__", None)
        main.__spec__ = None
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _death_message(exitcode, crash_log: str) -> str:
    msg = f"the training process ended unexpectedly (exit code {exitcode})"
    if exitcode in (-9, 137):
        msg += "; killed, most often for lack of memory (try a smaller patch or batch)"
    try:
        tail = Path(crash_log).read_text(encoding="utf-8", errors="replace").strip()[-800:]
    except OSError:
        tail = ""
    if "bootstrapping phase" in tail or "freeze_support" in tail:
        # the child re-imported the script that opened napari (its code not under a guard)
        return (
            "training runs in a separate process, which imports the script napari was started "
            "from; that script opens napari again at import. Put its code under "
            "'if __name__ == \"__main__\":' (or start napari with 'napari' or 'livertumor demo')"
        )
    return msg + (f". Its last output:\n{tail}" if tail else "")


def _train_child(config_dict: dict, reports, cancel, crash_log: str | None = None) -> None:
    """Child process: run the training generator and pass its reports back."""
    import faulthandler
    import sys

    from ..errors import LiverTumorError
    from ..training import TrainConfig, train

    if crash_log:  # what the parent shows if this process dies without a report
        # UTF-8 (the parent reads it so): a traceback naming a patient folder in another
        # script could not be written in Windows' code page
        log_file = open(crash_log, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        sys.stderr = log_file
        faulthandler.enable(log_file)

    try:
        os.nice(5)  # the window's process comes first when CPUs are short
    except (AttributeError, OSError):
        pass
    try:
        config = TrainConfig.from_dict(config_dict)
        for report in train(config, should_cancel=cancel.is_set):
            reports.put(("report", report))
    except LiverTumorError as exc:
        reports.put(("error", str(exc)))
    except Exception as exc:  # reported in the widget as one line
        reports.put(("error", f"{type(exc).__name__}: {exc}"))
    else:
        reports.put(("end", None))


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
