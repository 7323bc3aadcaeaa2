"""A copy of a model folder fit to share: no patient names, per-patient figures or local paths.

A model folder written by ``livertumor train`` records where it came from, for its own user:
the training, validation and test patients by ID (``metadata.json``'s ``training.data.split``
and ``split.json``), each training patient's clinical weak label beside its true
tumor-to-liver ratio (``training.weak.labels``), the clinical notes that name patients, and the
full paths of the data, the clinical table and the run. In a hospital those IDs are folder
names, often record numbers or names. :func:`share_model` writes a copy that keeps what
inference needs and what describes the recipe (the network, its geometry, its calibration, the
training settings, the loss history, the scores) and leaves the rest out:

- each patient ID becomes ``case-NNN`` (numbered in the order of the IDs, one numbering over
  both stages), wherever it is written, unless ``keep_ids`` (a public cohort, whose IDs are no
  one's: HCC-TACE-Seg's);
- per-patient figures (weak labels and ratios, the clinical notes) are left out, counted;
- a path becomes its last part (``/data/hospital/cohort`` → ``cohort``);
- ``split.json`` keeps its lists (renamed) and each patient's fingerprint (a hash of its label
  voxels), so ``livertumor evaluate`` still finds a training patient among the receiver's test
  patients by its files;
- the weights are copied byte for byte (their SHA-1 is checked against the metadata's); the
  run's other files (``last/``, ``train.log``, ``train_state.pt``) are not copied;
  ``MODEL_CARD.md``, written by a person, is copied as written (:func:`share_model` says so).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..fileio import check_path_lengths, read_user_json
from .checkpoint import METADATA_FILE, STAGES, WEIGHTS_FILE, read_metadata

SPLIT_FILE = "split.json"
CARD_FILE = "MODEL_CARD.md"

#: keys whose value is a path (anywhere in the metadata): reduced to its last part
PATH_KEYS = frozenset(
    {"data", "out", "clinical", "split_file", "cache_dir", "init_from", "folder", "ensemble_of"}
)


@dataclass
class ShareReport:
    """What :func:`share_model` wrote and what it left out."""

    written: list[Path] = field(default_factory=list)
    patients_renamed: int = 0
    weak_labels_dropped: int = 0
    notes_dropped: int = 0
    paths_shortened: int = 0
    cards_copied: list[Path] = field(default_factory=list)
    not_copied: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)


def model_stages(folder: str | Path) -> dict[str, Path]:
    """The model folders ``folder`` holds: itself (one stage's), or its ``liver/`` and
    ``tumor/``. Raises :class:`ModelError` when it holds none."""
    folder = Path(folder)
    if (folder / METADATA_FILE).is_file():
        return {"": folder}
    found = {s: folder / s for s in STAGES if (folder / s / METADATA_FILE).is_file()}
    if not found:
        for stage in STAGES:  # a run stopped before its first model: said as loading says it
            if (folder / stage / "last").is_dir():
                read_metadata(folder / stage)
        read_metadata(folder)  # its own words (not found, a stopped run, no metadata.json)
        raise ModelError(folder, "no model here (no metadata.json, nor liver/ or tumor/)")
    return found


def stopped_stages(folder: str | Path) -> list[str]:
    """The stages of a run's folder that hold no model yet (stopped before their first:
    only ``last/``), which :func:`share_model` does not share."""
    folder = Path(folder)
    return [
        s
        for s in STAGES
        if (folder / s / "last").is_dir() and not (folder / s / METADATA_FILE).is_file()
    ]


def share_model(
    source: str | Path, out: str | Path, *, keep_ids: bool = False, force: bool = False
) -> ShareReport:
    """Write a copy of the model folder(s) ``source`` into ``out`` fit to share (module doc).

    Parameters
    ----------
    source : path
        A model folder, or a folder holding ``liver/`` and ``tumor/`` (as ``--models``).
    out : path
        Written with the same layout; must not exist (or be empty) unless ``force``.
    keep_ids : bool
        Keep the patients' IDs (a public cohort's); per-patient figures and paths still go.
    force : bool
        Replace the model files already in ``out``.

    Raises
    ------
    ModelError
        No model in ``source``, one that does not validate, weights that are not the ones
        its metadata was written with, or ``out`` inside ``source`` or holding files.
    """
    source, out = Path(source), Path(out)
    stages = model_stages(source)
    if _inside(out, source) or _inside(source, out):
        raise ModelError(out, f"is inside {source} (or holds it): give a folder apart from it")
    if out.exists() and not out.is_dir():
        raise ModelError(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ModelError(out, "exists and is not empty: give a new folder (or --force)")
    raw = {}
    for stage, folder in stages.items():
        meta = read_metadata(folder)  # validated (and a run stopped mid-save refused)
        digest = hashlib.sha1((folder / WEIGHTS_FILE).read_bytes(), usedforsecurity=False)
        if meta.weights_sha1 and digest.hexdigest() != meta.weights_sha1:
            raise ModelError(
                folder / WEIGHTS_FILE,
                "is not the weights its metadata.json was written with (SHA-1 differs): not copied",
            )
        raw[stage] = read_user_json(folder / METADATA_FILE)
    report = ShareReport()
    splits = {}
    for stage, folder in stages.items():
        if (folder / SPLIT_FILE).is_file():
            try:
                splits[stage] = read_user_json(folder / SPLIT_FILE)
            except (OSError, ValueError) as exc:
                raise ModelError(folder / SPLIT_FILE, f"unreadable ({exc})") from exc
    ids: set[str] = set()
    for stage in stages:
        _collect_ids(raw[stage], ids)
        _collect_split_ids(splits.get(stage) or {}, ids)
    names = {} if keep_ids else {p: f"case-{i:03d}" for i, p in enumerate(sorted(ids), 1)}
    report.patients_renamed = len(names)
    report.stopped = stopped_stages(source) if "" not in stages else []
    renamer = _Renamer(names)
    # written as named into the folder beside OUT (its name and tempfile's 8 characters),
    # then moved in: Windows' path limit (where it applies) is found now, not part-way
    staged = out.parent / f".{out.name}.share-{'x' * 8}"
    check_path_lengths(
        out,
        direct=[
            staged / stage / name
            for stage in stages
            for name in (WEIGHTS_FILE, METADATA_FILE, SPLIT_FILE, CARD_FILE)
        ],
        choose="an output folder (-o)",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    # written whole into a folder beside OUT, checked, then moved in: a refusal or a failure
    # part-way leaves OUT as it was
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.share-", dir=out.parent))
    try:
        for stage, folder in stages.items():
            dest = staging / stage if stage else staging
            meta = _scrubbed(raw[stage], renamer, report)
            meta.setdefault("training", {})["shared"] = {
                "by": "livertumor share-model",
                "patient_ids": "kept" if keep_ids else "renamed case-NNN",
                "left_out": "per-patient weak labels and ratios, clinical notes, paths (last "
                "part kept), the run's other files",
            }
            dest.mkdir(parents=True, exist_ok=True)
            (dest / WEIGHTS_FILE).write_bytes((folder / WEIGHTS_FILE).read_bytes())
            (dest / METADATA_FILE).write_text(
                json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8"
            )
            written = [WEIGHTS_FILE, METADATA_FILE]
            if stage in splits:
                split = _scrubbed_split(splits[stage], renamer)
                (dest / SPLIT_FILE).write_text(json.dumps(split, indent=2), encoding="utf-8")
                written.append(SPLIT_FILE)
            if (folder / CARD_FILE).is_file():
                shutil.copyfile(folder / CARD_FILE, dest / CARD_FILE)
                written.append(CARD_FILE)
                report.cards_copied.append(out / stage / CARD_FILE)
            report.written += [out / stage / name for name in written]
            report.not_copied += sorted(
                p.name + ("/" if p.is_dir() else "")
                for p in folder.iterdir()
                if p.name not in (WEIGHTS_FILE, METADATA_FILE, SPLIT_FILE, CARD_FILE)
                and not (stage == "" and p.name in STAGES)
            )
            read_metadata(dest)  # what was written loads as a model
        out.mkdir(exist_ok=True)
        # a model shared into OUT before (--force): none of its files stays beside these
        for name in (WEIGHTS_FILE, METADATA_FILE, SPLIT_FILE, CARD_FILE, *STAGES):
            old = out / name
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            elif old.exists() or old.is_symlink():
                old.unlink()
        for item in staging.iterdir():
            item.replace(out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.not_copied = sorted(set(report.not_copied))
    return report


def _inside(a: Path, b: Path) -> bool:
    try:
        a, b = a.resolve(), b.resolve()
    except (OSError, RuntimeError):
        return False
    return a == b or b in a.parents


def _collect_ids(node: Any, ids: set[str]) -> None:
    """Patient IDs a metadata tree names: its split lists, skipped cases, weak labels' keys."""
    if isinstance(node, dict):
        split = node.get("split")
        if isinstance(split, dict):
            for key in ("train", "val", "test"):
                ids.update(str(c) for c in split.get(key) or () if isinstance(c, (str, int)))
        for entry in node.get("skipped") or () if isinstance(node.get("skipped"), list) else ():
            if isinstance(entry, dict) and entry.get("case"):
                ids.add(str(entry["case"]))
            elif isinstance(entry, (list, tuple)) and entry:
                ids.add(str(entry[0]))
            elif isinstance(entry, str):
                ids.add(entry)
        labels = node.get("labels")
        if isinstance(labels, dict) and "enabled" in node:  # training.weak.labels
            ids.update(map(str, labels))
        for value in node.values():
            _collect_ids(value, ids)
    elif isinstance(node, list):
        for value in node:
            _collect_ids(value, ids)


def _collect_split_ids(split: dict, ids: set[str]) -> None:
    if not isinstance(split, dict):
        return
    for key in ("train", "val", "test"):
        ids.update(str(c) for c in split.get(key) or () if isinstance(c, (str, int)))
    if isinstance(split.get("fingerprints"), dict):
        ids.update(map(str, split["fingerprints"]))
    _collect_ids({"skipped": split.get("skipped")}, ids)


class _Renamer:
    """Renames patient IDs: exactly where a value is an ID (a split's lists, a skipped case),
    and inside free text (a split's ``method``, a note) only as whole words with a letter and
    3 characters or more: a patient named ``4`` or ``19`` would rename every number of a text
    ("-0.19 over 4 patients"), and field names, stages and versions are never touched."""

    def __init__(self, names: dict[str, str]):
        self.names = names
        wordy = [p for p in names if len(p) >= 3 and re.search(r"[^\W\d_]", p)]
        ordered = sorted(wordy, key=len, reverse=True)
        self.pattern = (
            re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, ordered)) + r")(?![\w-])")
            if ordered
            else None
        )

    def id(self, value: Any) -> Any:
        """``value`` where it is a patient ID."""
        return self.names.get(str(value), value)

    def __call__(self, text: str) -> str:
        """Free text."""
        if self.pattern is None:
            return text
        return self.pattern.sub(lambda m: self.names[m.group(1)], text)


def _last_part(value: Any, report: ShareReport) -> Any:
    if isinstance(value, list):
        return [_last_part(v, report) for v in value]
    if isinstance(value, str) and value and ("/" in value or "\\" in value):
        report.paths_shortened += 1
        return re.split(r"[\\/]", value.rstrip("/\\"))[-1] or value
    return value


def _scrubbed(node: Any, rename: _Renamer, report: ShareReport, depth: int = 0) -> Any:
    """A metadata tree without per-patient records: at the top level only ``training`` and
    ``metrics`` are looked into (the others describe the network and its use)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if depth == 0 and k not in ("training", "metrics"):
                out[k] = v
                continue
            if k == "labels" and "enabled" in node and isinstance(v, dict):  # weak labels
                report.weak_labels_dropped += len(v)
                out["n_labels_left_out"] = len(v)
                continue
            if k == "report" and "enabled" in node and isinstance(v, list):  # clinical notes
                report.notes_dropped += len(v)
                out["n_notes_left_out"] = len(v)
                continue
            if k == "skipped" and isinstance(v, list):  # a reason names the patient's files
                out[k] = [_skipped_entry(e, rename) for e in v]
                continue
            if k == "split" and isinstance(v, dict):
                out[k] = _scrubbed_split(v, rename)
                continue
            if k in PATH_KEYS and isinstance(v, (str, list)):
                v = _last_part(v, report)
            out[k] = _scrubbed(v, rename, report, depth + 1)
        return out
    if isinstance(node, list):
        return [_scrubbed(v, rename, report, depth + 1) for v in node]
    if isinstance(node, str):
        return rename(node)
    return node


def _skipped_entry(entry: Any, rename: _Renamer) -> Any:
    """A skipped patient (``{"case", "reason", "list"}`` or ``[case, reason]``) without its
    reason, which names its files."""
    if isinstance(entry, dict):
        return {
            k: (rename.id(v) if k == "case" else v)
            for k, v in entry.items()
            if k in ("case", "list")
        }
    if isinstance(entry, (list, tuple)) and entry:
        return [rename.id(entry[0])]
    return rename.id(entry)


def _scrubbed_split(split: dict, rename: _Renamer) -> dict:
    out = {}
    for key, value in split.items():
        if key in ("train", "val", "test") and isinstance(value, list):
            out[key] = [rename.id(c) for c in value]
        elif key == "fingerprints" and isinstance(value, dict):
            out[key] = {rename.id(c): fp for c, fp in value.items()}
        elif key == "skipped" and isinstance(value, list):
            out[key] = [_skipped_entry(e, rename) for e in value]
        elif key in PATH_KEYS and isinstance(value, (str, list)):
            out[key] = _last_part(value, ShareReport())
        else:
            out[key] = _scrubbed(value, rename, ShareReport(), depth=1)
    return out
