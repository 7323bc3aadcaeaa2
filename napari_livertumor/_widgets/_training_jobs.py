"""Training work for the Train widget, outside the GUI thread and, for training itself,
outside the GUI process (no Qt here)."""

from __future__ import annotations

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

    from ._jobs import JobFailed

    ctx = mp.get_context("spawn")  # forking a process that runs Qt threads is unsafe
    reports, cancel = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_train_child, args=(config.to_dict(), reports, cancel), daemon=True)
    child.start()
    try:
        while True:
            if should_cancel():
                cancel.set()
            try:
                kind, payload = reports.get(timeout=0.1)
            except queue.Empty:
                if not child.is_alive():
                    raise JobFailed(
                        f"the training process ended unexpectedly (exit code {child.exitcode})"
                    ) from None
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


def _train_child(config_dict: dict, reports, cancel) -> None:
    """Child process: run the training generator and pass its reports back."""
    from ..errors import LiverTumorError
    from ..training import TrainConfig, train

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


def summarize_data(data: str, clinical: str | None = None) -> list[str]:
    """Lines describing a training folder: patients, labels, clinical rows and columns matched.

    Raises :class:`~napari_livertumor.errors.InputError` when nothing in it is usable.
    """
    from ..training.config import DEFAULT_WEAK_COLUMNS
    from ..training.data import find_clinical, index_cases

    records = index_cases(data)
    layouts = sorted({r.layout for r in records})
    lines = [f"{len(records)} patient(s) with ground-truth labels ({', '.join(layouts)} layout)"]
    path = Path(clinical) if clinical else find_clinical(data)
    if path is None:
        lines.append("No clinical table: the tumor stage trains without weak supervision.")
        return lines
    from ..training.weak import load_clinical_frame

    frame = load_clinical_frame(path)
    ids = {r.case_id for r in records}
    matched_rows = len(ids & {str(i) for i in frame.index})
    cols = [c for c in DEFAULT_WEAK_COLUMNS if c in frame.columns]
    lines.append(
        f"Clinical table {path.name}: {matched_rows}/{len(records)} patients matched, "
        f"{len(cols)}/{len(DEFAULT_WEAK_COLUMNS)} weak-supervision columns found"
    )
    missing = [c for c in DEFAULT_WEAK_COLUMNS if c not in frame.columns]
    if missing:
        lines.append("Missing columns: " + ", ".join(missing))
    return lines
