"""One module per ``livertumor`` sub-command: ``add_arguments(parser)`` and ``run(args)``."""

import logging


class OnceFilter(logging.Filter):
    """Lets each distinct message through once (the rest of a case's repeats are dropped;
    :func:`say_repeats_again` starts anew for the next case)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, record.getMessage())
        if key in self._seen:
            return False
        if len(self._seen) < 10_000:  # a long case's distinct lines: a bounded memory
            self._seen.add(key)
        return True


def say_repeats_again() -> None:
    """A new case of a batch: pydicom's warnings said once more (under the case's own line;
    a repeat hidden for the rest of the batch left the later patients that had it unnamed)."""
    for f in logging.getLogger("pydicom").filters:
        if isinstance(f, OnceFilter):
            f._seen.clear()


def models_folder(value: str) -> str:
    """``--models``: a folder holding ``liver/`` and ``tumor/``; ``default`` (when no folder of
    that name is here) names the models installed with the package, as ``train --init``."""
    from pathlib import Path

    if value == "default" and not Path(value).exists():
        from ..models import default_model_dir

        return str(default_model_dir("liver").parent)
    return value


def acquisition_arg(text: str) -> int | str:
    """``--acquisition``: an AcquisitionNumber (or a pass's number where passes have none),
    ``3``; or a pass's number where a series' passes are numbered apart from their
    AcquisitionNumbers, ``pass 3`` (also ``pass3``); or parts of one scan joined at their seams
    beside passes within them, ``1+2`` (their row's label, "acq 1+2"); or the slices with no
    AcquisitionNumber stacked beside numbered ones, ``none`` (their row's label, "acq none").
    Another form is a usage error (exit 2)."""
    import argparse
    import re

    if re.fullmatch(r"\s*(acq\s*)?none\s*", text, flags=re.IGNORECASE):
        return "none"

    joined = re.fullmatch(r"\s*(\d+(?:\s*\+\s*\d+)+)\s*", text)
    if joined is not None:
        return re.sub(r"\s+", "", joined[1])
    match = re.fullmatch(r"\s*(pass\s*)?(\d+)\s*", text, flags=re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"must be a number (3), a pass (pass 3), parts joined (1+2) or none (the slices "
            f"with no AcquisitionNumber), got {text!r}"
        )
    return f"pass {match[2]}" if match[1] else int(match[2])
