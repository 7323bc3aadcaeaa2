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
  both stages), wherever it is written (a person's notes in ``metadata.json`` too; a range,
  ``HCC_061-065``, as the range of the new names), unless ``keep_ids`` (a public cohort, whose
  IDs are no one's: HCC-TACE-Seg's);
- per-patient figures (weak labels and ratios, the clinical notes) are left out, counted;
- a path becomes its last part (``/data/hospital/cohort`` → ``cohort``), inside text too
  (its folders' names may have spaces there, its last part ends at a space: ``/data/My
  Cohort/HCC_001 scans`` → ``HCC_001 scans``, then renamed; a path in quotes whole);
- ``split.json`` keeps its lists (renamed) and each patient's fingerprint (a hash of its label
  voxels), so ``livertumor evaluate`` still finds a training patient among the receiver's test
  patients by its files;
- the model is checked as ``segment`` checks it first (the stage its folder is for, the weights
  whole, their SHA-1 the metadata's; one without ``weights_sha1`` gets it in the copy), and the
  weights are copied byte for byte; the
  run's other files (``last/``, ``train.log``, ``train_state.pt``) are not copied;
  ``MODEL_CARD.md``, written by a person, is copied as written (:func:`share_model` says so,
  and warns when it names the weights by another SHA-1).

The copy is written whole into a hidden folder inside OUT, checked, then put in place with
Ctrl-C held: a refusal or a failure leaves OUT as it was, and a stop the old share or the new
one whole. ``force`` replaces only a model shared there before (OUT's own model files, its
``liver/`` and ``tumor/`` holding nothing but a model's files), never a person's files, and
leaves no folder of two models' parts. The hidden folder names its process
(:data:`OWNER_FILE`): one a share killed outright left (SIGKILL, a power cut) is removed by
the next share into OUT, never one of a share still going.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..fileio import check_path_lengths, check_writable_folder, pid_alive, read_user_json
from ..signals import HeldStops
from .checkpoint import (
    METADATA_FILE,
    STAGES,
    WEIGHTS_FILE,
    ModelMetadata,
    _weights_there,
    check_model_folder,
    read_metadata,
)

SPLIT_FILE = "split.json"
CARD_FILE = "MODEL_CARD.md"
#: a shared model's files: what ``--force`` may replace
MODEL_FILES = (WEIGHTS_FILE, METADATA_FILE, SPLIT_FILE, CARD_FILE)
#: a training run's own files: a folder holding one is a run's, never replaced
RUN_FILES = ("last", "train.log", "train_state.pt")

#: the hidden folder a share is written into inside OUT first (tempfile's 8 characters), and
#: the file in it that names its process
_STAGING_NAME = re.compile(r"\.share-[a-z0-9_]{8}")
OWNER_FILE = "owner.json"
#: the hidden folders this process is writing now
_WRITING: set[str] = set()  # (absolute paths)
#: a hidden folder is taken for a killed run's only when nothing in it has changed for this
#: many seconds: one that names no process (its run killed before it wrote the file), and one
#: whose process is not seen (a run in a container of its own, its processes hidden from here;
#: not one of this machine's kernel and PID namespace, whose process is known gone at once)
_OWNERLESS_S = 60.0

#: metadata.json's own top-level fields; any other key (a person's note) is scrubbed whole
_MODEL_FIELDS = frozenset(ModelMetadata.__dataclass_fields__)

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
    not_models: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # (what --force removed: a folder's "/")
    #: the hidden folders of shares killed before they ended, removed: (folder, whose, in words)
    killed_removed: list[tuple[Path, str]] = field(default_factory=list)


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


def not_model_stages(folder: str | Path) -> list[str]:
    """The ``liver/`` or ``tumor/`` of ``folder`` that hold no model nor a stopped run's
    ``last/`` (notes, a case): not shared, which :func:`share_model` says."""
    folder = Path(folder)
    return [
        s
        for s in STAGES
        if (folder / s).exists()
        and not (folder / s / METADATA_FILE).is_file()
        and not (folder / s / "last").is_dir()
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
        Replace a model shared into ``out`` before (its model files and model-only
        ``liver/``, ``tumor/``; listed in :attr:`ShareReport.replaced`); other files there are
        left alone, and a stage folder to write that holds any is refused. The hidden folder
        of a share killed before it ended is removed (:attr:`ShareReport.killed_removed`).

    Raises
    ------
    ModelError
        No model in ``source``, one that does not validate, one in the other stage's folder,
        weights cut short or unreadable or not the ones its metadata was written with, or
        ``out`` inside ``source`` or holding files (without ``force``; with it, files of a
        person's or a run's where the copy goes, or a model it does not replace that would
        stay beside it), or the hidden folder of another share still writing there (or of
        one killed while it replaced the share there, holding that share).
    InputError
        ``out`` cannot be written to.
    OSError
        A failure writing ``out`` (a full disk), naming ``out`` or its file.
    """
    source, out = Path(source), Path(out)
    stages = model_stages(source)
    if _inside(out, source) or _inside(source, out):
        raise ModelError(out, f"is inside {source} (or holds it): give a folder apart from it")
    if out.exists() and not out.is_dir():
        raise ModelError(out, "exists and is not a folder")
    # the hidden folders of shares killed (SIGKILL, a power cut) before they could remove
    # them: removed (below), never one of a share still going (refused)
    left = _left_by_killed_shares(out)
    if out.is_dir() and any(p not in left for p in out.iterdir()) and not force:
        raise ModelError(out, "exists and is not empty: give a new folder (or --force)")
    old = _replaced(out, stages)
    check_writable_folder(out)  # (said of OUT, before any work)
    for folder in stages.values():
        _weights_there(folder)  # "missing model.safetensors", as loading says it
    raw, digests = {}, {}
    for stage, folder in stages.items():
        # as segment checks it: the stage its folder is for, the weights whole and readable
        # (an older model's metadata.json, without weights_sha1, checked nothing) and the
        # metadata's SHA-1 (a run stopped mid-save refused)
        check_model_folder(folder, stage or None)
        digests[stage] = hashlib.sha1(
            (folder / WEIGHTS_FILE).read_bytes(), usedforsecurity=False
        ).hexdigest()
        raw[stage] = read_user_json(folder / METADATA_FILE)
        if not raw[stage].get("weights_sha1"):  # the receiver's check of the weights
            raw[stage]["weights_sha1"] = digests[stage]
    report = ShareReport()
    for stage, folder in stages.items():
        report.warnings += _card_warnings(folder / CARD_FILE, digests[stage])
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
    report.not_models = not_model_stages(source) if "" not in stages else []
    renamer = _Renamer(names)
    # written as named into a hidden folder inside OUT (tempfile's 8 characters), then moved
    # in: Windows' path limit (where it applies) is found now, not part-way
    staged = out / f".share-{'x' * 8}" / "new"
    check_path_lengths(
        out,
        direct=[staged / stage / name for stage in stages for name in MODEL_FILES],
        choose="an output folder (-o)",
    )
    # written whole into a hidden folder inside OUT (its file system: a mount point's, not
    # the one above), checked, then moved in: a refusal or a failure part-way leaves OUT as
    # it was (a folder made for it removed again)
    for folder, why in left.items():
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            if folder.exists():  # (not gone with another share's removal meanwhile)
                raise ModelError(
                    folder,
                    f"left by a share-model run that was killed ({why}), and cannot be "
                    f"removed ({exc.strerror or exc}): delete it",
                ) from exc
        report.killed_removed.append((folder, why))
    made = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".share-", dir=out))
        _WRITING.add(os.path.abspath(work))
        try:  # whose it is: a later share removes it once this process is gone (killed)
            (work / OWNER_FILE).write_text(json.dumps(_owner()), encoding="utf-8")
        except BaseException:
            _WRITING.discard(os.path.abspath(work))
            shutil.rmtree(work, ignore_errors=True)
            raise
    except OSError as exc:  # (named as OUT, not the hidden folder)
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(out)) from exc
    staging, aside = work / "new", work / "old"
    report.replaced = [  # (an empty folder: no model, not said)
        f"{p}/" if p.is_dir() and not p.is_symlink() else str(p)
        for p in old
        if p.is_symlink() or not p.is_dir() or any(p.iterdir())
    ]
    done = False
    try:
        staging.mkdir()
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
            try:  # what was written loads as a model
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # (said of the source already)
                    read_metadata(dest)
            except ModelError as exc:  # named as OUT's, not the hidden folder's
                raise ModelError(_shown(exc.path, (staging,), out), exc.problem) from exc
        try:
            with HeldStops():  # a Ctrl-C leaves the old share or the new one whole
                _swap(staging, aside, old, out)
                done = True
        except KeyboardInterrupt as exc:  # held over a swap that ended: the new share stands
            exc.share_written = done  # (the command says so: "interrupted" alone read as none)
            raise
    except OSError as exc:  # a full disk: said of OUT (or its file), not the hidden folder
        said = _out_error(exc, out, (staging, aside))
        if said is exc:
            raise
        raise said from exc
    finally:
        _WRITING.discard(os.path.abspath(work))
        if done or not (aside.is_dir() and any(aside.iterdir())):  # (else: the old share,
            shutil.rmtree(work, ignore_errors=True)  # which could not be put back, kept)
        if not done:
            for folder in made:  # OUT (and the folders above it) made for this share
                try:
                    folder.rmdir()
                except OSError:
                    break
    report.not_copied = sorted(set(report.not_copied))
    return report


#: a SHA-1 a model card names the weights by: right after "SHA-1" (``c487fc95…``, whole or
#: cut). Not any 40 hex digits: a card's git commit ("at commit 4ff468c0…") is no weights'
_CARD_SHA = re.compile(r"SHA-?1\W{0,3}([0-9a-f]{8,40})(?![0-9a-fA-F])", re.IGNORECASE)


def _card_warnings(card: Path, digest: str) -> list[str]:
    """A warning when ``card`` (a ``MODEL_CARD.md``) names the weights by a SHA-1 that is not
    ``digest``'s: a card of other weights (a retrained run's folder kept the shipped card),
    whose scores and notes are not these weights'."""
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    named = [m.group(1).lower() for m in _CARD_SHA.finditer(text)]
    if not named or any(digest.startswith(sha) for sha in named):
        return []
    return [
        f"{card} names the weights SHA-1 {named[0]}, but {card.parent / WEIGHTS_FILE} has "
        f"SHA-1 {digest}: the card describes other weights (update it, or leave it out)"
    ]


def _replaced(out: Path, stages: dict[str, Path]) -> list[Path]:
    """What ``--force`` removes from ``out`` for the copy of ``stages``: a model shared there
    before (OUT's own model files; its ``liver/`` and ``tumor/`` when they hold nothing but a
    model's files), none of whose files may stay beside the new ones. A person's files are
    never removed: a stage folder the copy goes to that holds any, or model files at OUT's top
    beside a training run's, refuse the share (ModelError); other files are left alone. Nor
    is a folder left of two models' parts: a ``liver/`` or ``tumor/`` holding a model or a
    run's files that the copy does not replace (a run's folder, as OUT of a model of one
    stage; a share's ``tumor/`` and a model of ``liver/`` alone) refuses it too."""
    from .checkpoint import is_shipped_model_folder

    if not out.is_dir():
        return []
    old = []
    top = [out / n for n in MODEL_FILES if (out / n).exists() or (out / n).is_symlink()]
    if any(p.name in (WEIGHTS_FILE, METADATA_FILE) for p in top):  # a model at OUT's top
        run = [n for n in RUN_FILES if (out / n).exists()]
        if run:
            raise ModelError(
                out,
                f"holds a training run ({', '.join(run)}): its model is not replaced; give a "
                "new or empty folder (-o)",
            )
        old += top
    elif top and "" in stages:
        raise ModelError(
            top[0],
            "is in the way and belongs to no model: not replaced; give a new or empty folder",
        )
    for stage in STAGES:
        folder = out / stage
        if not (folder.exists() or folder.is_symlink()):
            continue
        if folder.is_dir() and _model_only(folder):
            old.append(folder)
        elif stage in stages:
            others = (
                sorted(
                    p.name + ("/" if p.is_dir() else "")
                    for p in folder.iterdir()
                    if p.name not in MODEL_FILES
                )
                if folder.is_dir()
                else []
            )
            raise ModelError(
                folder,
                (
                    f"holds files that are not a model's ({', '.join(others[:5])}"
                    + (", …" if len(others) > 5 else "")
                    + ")"
                    if others
                    else "is not a folder"
                )
                + ": not replaced (--force replaces only a model shared there before); give a "
                "new or empty folder (-o), or move them",
            )
        else:  # a model the copy does not replace, which would stay beside it
            held = [
                n + ("/" if (folder / n).is_dir() else "")
                for n in (METADATA_FILE, WEIGHTS_FILE, *RUN_FILES)
                if folder.is_dir() and ((folder / n).exists() or (folder / n).is_symlink())
            ]
            if held:
                where = (
                    f"at {out.name}'s top"
                    if "" in stages
                    else "in " + " and ".join(f"{s}/" for s in stages)
                )
                raise ModelError(
                    folder,
                    f"holds a model's or a training run's files ({', '.join(held)}) that this "
                    f"share does not replace: they would stay beside the new model {where}, "
                    "parts of two models in one folder; give a new or empty folder (-o), or "
                    "move them",
                )
    for folder in old:
        if folder.is_dir() and is_shipped_model_folder(folder):
            raise ModelError(
                folder, "is a shipped default model's folder: share the model to another folder"
            )
    return old


def _owner() -> dict:
    """What :data:`OWNER_FILE` holds: this process, its machine, the time."""
    import socket

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "kernel": _kernel(),
    }


def _kernel() -> str | None:
    """This machine's boot and this process's PID namespace (Linux; None elsewhere): a run
    recorded with the same ones whose process does not exist is gone, not one in a container
    of its own (its processes hidden from here) sharing this machine's name."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        return f"{boot} {os.readlink('/proc/self/ns/pid')}"
    except (OSError, ValueError):
        return None


def _left_by_killed_shares(out: Path) -> dict[Path, str]:
    """The hidden folders (``.share-*``) in ``out`` that shares killed before they ended (a
    SIGKILL, a power cut) left there, each with whose it was in words: no process of theirs
    runs. One of a share still going (or of another machine's, which cannot be told) refuses
    the share, as does one holding the share its run was replacing (killed during the swap:
    the user's copy of it); a folder of any other name or content is not ours."""
    if not out.is_dir():
        return {}
    left = {}
    for folder in sorted(out.iterdir()):
        if not _STAGING_NAME.fullmatch(folder.name) or folder.is_symlink() or not folder.is_dir():
            continue
        try:
            if not {p.name for p in folder.iterdir()} <= {OWNER_FILE, "new", "old"}:
                continue  # (not ours)
            held = _staging_holder(folder)
        except OSError:
            continue
        if held is None:
            continue  # (not ours: files in it, and no owner.json, ours' first)
        going, whose, wait = held
        if going and wait:  # (most likely killed: its process is not seen)
            raise ModelError(
                out,
                f"a share-model run that was most likely killed left its hidden folder "
                f"{folder.name} ({whose}); a share removes it once nothing in it has changed "
                f"for a minute: try again in {math.ceil(wait)} s, or delete {folder} now",
            )
        if going:
            raise ModelError(
                out,
                f"another share-model run is writing here ({whose}; its hidden folder "
                f"{folder.name}): wait for it to end (if no such run is going on, delete "
                f"{folder})",
            )
        aside = folder / "old"
        if aside.is_dir() and any(aside.iterdir()):
            raise ModelError(
                folder,
                f"left by a share-model run that was killed ({whose}) while it replaced the "
                f"model shared in {out}: the share it replaced is in {aside}; move back what "
                f"you need of it, delete {folder}, and run again",
            )
        left[folder] = whose
    return left


def _staging_holder(folder: Path) -> tuple[bool, str, float] | None:
    """Whether the share that wrote the hidden ``folder`` is still going, whose it is in
    words (its process, gone or not), and the seconds until it is taken for a killed run's
    where only a change in the last minute keeps it (its process not seen: 0 otherwise);
    None where the folder is none of a share's."""
    import socket

    newest = max(p.lstat().st_mtime for p in (folder, *folder.rglob("*")))
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest))
    quiet = time.time() - newest > _OWNERLESS_S
    try:
        held = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
        pid, host = int(held["pid"]), str(held.get("host", ""))
        started = float(held.get("started") or 0)
    except (OSError, ValueError, KeyError, TypeError):
        # a share writes whose it is first: one killed before it had (or as it did) left
        # nothing else; a folder of this name holding files and no owner is someone else's
        if any(p.name != OWNER_FILE for p in folder.iterdir()):
            return None
        if quiet:  # (gone once nothing changes there)
            return False, f"a run that names no process, untouched since {since}", 0.0
        return True, f"a run that names no process yet, changed at {since}", 0.0
    when = ""
    with contextlib.suppress(ValueError, OverflowError, OSError):
        if started:
            when = f", started {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}"
    if host and host != socket.gethostname():  # (its processes are not seen from here)
        return True, f"process {pid} on {host}{when}", 0.0
    if pid == os.getpid():
        going = os.path.abspath(folder) in _WRITING
    else:
        going = _running(pid, started)
        # changed in the last minute: perhaps a run whose processes are hidden from here (a
        # container of its own with this machine's name), unless it ran on this machine's
        # kernel in this PID namespace, where a process not running is gone
        hidden = not (held.get("kernel") and held["kernel"] == _kernel())
        if not going and not quiet and hidden:
            wait = max(newest + _OWNERLESS_S - time.time(), 1.0)
            return True, f"process {pid}{when}, not running here, last written at {since}", wait
    return going, f"process {pid}{when}" + ("" if going else ", no longer running"), 0.0


def _running(pid: int, started: float) -> bool:
    """Whether process ``pid``, which started no later than ``started`` (a time), runs: not
    one that took its number since, nor one that ended (a zombie)."""
    import psutil

    if not pid_alive(pid):
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return not (started and proc.create_time() > started + 1.0)
    except psutil.ZombieProcess:  # (ended)
        return False
    except psutil.NoSuchProcess:  # (ended since; or another user's, /proc hidden: hidepid)
        return pid_alive(pid)
    except (psutil.Error, OSError):  # (AccessDenied: another user's, running)
        return True


def _model_only(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but a model's files (and hidden files: .DS_Store)."""
    return all(
        p.name in MODEL_FILES or (p.name.startswith(".") and p.is_file()) for p in folder.iterdir()
    )


def _swap(staging: Path, aside: Path, old: list[Path], out: Path) -> None:
    """The new copy moved from ``staging`` into ``out``, the model it replaces (``old``) moved
    ``aside`` first (removed with it afterwards) and put back if a move fails. A move to
    another file system (the hidden folder not on OUT's) copies."""
    aside.mkdir()
    moved: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for path in old:
            os.replace(path, aside / path.name)
            moved.append((path, aside / path.name))
        for item in sorted(staging.iterdir()):
            placed.append(out / item.name)
            _move(item, out / item.name)
    except BaseException:
        for path in reversed(placed):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink()
        for path, gone in reversed(moved):
            os.replace(gone, path)
        raise


def _move(src: Path, dst: Path) -> None:
    """``src`` renamed ``dst``, or copied there where the rename crosses file systems."""
    try:
        os.replace(src, dst)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    if src.is_dir():  # (a stage's folder: its files only)
        dst.mkdir()
        for item in src.iterdir():
            shutil.copyfile(item, dst / item.name)
    else:
        shutil.copyfile(src, dst)


def _out_error(exc: OSError, out: Path, hidden: tuple[Path, ...]) -> OSError:
    """``exc`` naming OUT where it names no file (a full disk), or its file's place in OUT
    where it names one in the ``hidden`` folders the copy is written to first; else ``exc``."""
    if exc.errno is None:
        return exc
    names = [Path(n) for n in (exc.filename, exc.filename2) if n is not None]
    ours = [_shown(n, hidden, out) for n in names if _shown(n, hidden, out) != n]
    if names and not ours:
        return exc  # a source file's (unreadable): named as it is
    return OSError(exc.errno, exc.strerror or str(exc), str(ours[0] if ours else out))


def _shown(path: Path | None, hidden: tuple[Path, ...], out: Path) -> Path | None:
    """``path``, or its place in ``out`` when it lies in one of the ``hidden`` folders."""
    if path is None:
        return None
    for folder in hidden:
        try:
            return out / Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
        except ValueError:
            pass
    return path


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
        one = "|".join(map(re.escape, ordered))
        # an ID alone, or a range of them (HCC_061-065, HCC_061-HCC_065, HCC_061–065): a range's
        # end is read with it, a match followed by "-065" was left whole, IDs and all
        self.pattern = (
            re.compile(rf"(?<![\w-])({one})(?:([-–])({one}|\d+))?(?![\w-])") if ordered else None
        )

    def id(self, value: Any) -> Any:
        """``value`` where it is a patient ID."""
        return self.names.get(str(value), value)

    def __call__(self, text: str) -> str:
        """Free text."""
        if self.pattern is None:
            return text
        return self.pattern.sub(self._renamed, text)

    def _renamed(self, m: re.Match) -> str:
        first, dash, end = m.groups()
        if end is None:
            return self.names[first]
        members = self._range(first, end)
        if members is None:  # not a range of numbered IDs ("liver-HCC_1"): each renamed
            return self.names[first] + dash + self.names.get(end, end)
        # the range's IDs by their new names, runs of consecutive numbers as one range
        # (case-061-065: as many patients as HCC_061-065 said)
        numbers = sorted(int(self.names[p].removeprefix("case-")) for p in members)
        runs: list[list[int]] = []
        for n in numbers:
            if runs and n == runs[-1][-1] + 1:
                runs[-1].append(n)
            else:
                runs.append([n])
        return ", ".join(
            f"case-{r[0]:03d}" + (f"{dash}{r[-1]:03d}" if len(r) > 1 else "") for r in runs
        )

    def _range(self, first: str, end: str) -> list[str] | None:
        """The IDs ``first`` to ``end`` (an ID, or the number that ends the range) name, or None
        where they are no range: IDs of the same prefix numbered from the one to the other."""
        start = re.fullmatch(r"(.*?)(\d+)", first)
        if start is None:
            return None
        prefix = start.group(1)
        if end.isdigit():
            last = int(end)
        else:
            stop = re.fullmatch(re.escape(prefix) + r"(\d+)", end)
            if stop is None:
                return None
            last = int(stop.group(1))
        low, high = sorted((int(start.group(2)), last))
        members = []
        for p in self.names:
            number = re.fullmatch(re.escape(prefix) + r"(\d+)", p)
            if number and low <= int(number.group(1)) <= high:
                members.append(p)
        return members


def _last_part(value: Any, report: ShareReport) -> Any:
    if isinstance(value, list):
        return [_last_part(v, report) for v in value]
    if isinstance(value, str) and value and ("/" in value or "\\" in value):
        report.paths_shortened += 1
        return re.split(r"[\\/]", value.rstrip("/\\"))[-1] or value
    return value


#: where a path in free text starts: a drive letter, a network share, a root or a home
_ROOT = r"(?:[A-Za-z]:[\\/]|\\\\|~?/)"
#: a word of a folder's name in free text: "(x86)" is one, "x)" none ("(see /data/x) or (y/z)")
_WORD = r"(?:[^\s\"'<>|,;()\\/]|\([^\s\"'<>|,;()\\/]*\))+"
#: the words after a folder name's first: capitalised ("/data/My Cohort/", "Program Files
#: (x86)", "Smith John 1962": a number after a capital), as folder names with spaces are; a
#: sentence's words after a path are not ("/data/x and/or /data/y", "/data/x used 1/3 of it",
#: "/data/a with 12/05/2026 scans" lost words taken for a folder's)
_MORE_WORDS = rf"(?: (?=[A-ZÀ-ÖØ-Þ(]){_WORD}(?: (?=[A-ZÀ-ÖØ-Þ0-9(]){_WORD}){{0,2}})?"
#: the quotes a path in text may stand in, opening and closing
_QUOTES = (('"', '"'), ("'", "'"), ("`", "`"), ("“", "”"), ("‘", "’"))
#: a path inside free text (a note's "trained at /data/hospital/cohort"): from its root (a
#: drive letter, a network share's ``\\\\``, ``/``, ``~/``) through its folders, whose names
#: may hold spaces ("/data/My Cohort/", "C:\\Users\\Dr Jones\\": up to four words each, the
#: others than the first capitalised: :data:`_MORE_WORDS`), to its
#: last part, which ends at the next space ("…/HCC_001 scans": the words after it kept); or a
#: path in quotes, whole ("'/data/a b/c d.nii'")
_PATH_IN_TEXT = re.compile(
    r"(?<![\w./\\~:-])(?:"
    + "|".join(rf"{o}(?P<q{i}>{_ROOT}[^{c}\n]*){c}" for i, (o, c) in enumerate(_QUOTES))
    + rf"|{_ROOT}(?:{_WORD}{_MORE_WORDS}[\\/]+)*[^\s\"'<>|,;()]*)"
)


def _paths_in_text(text: str, report: ShareReport) -> str:
    """``text`` with each path in it cut to its last part (counted in ``report``)."""

    def last(m: re.Match) -> str:
        quoted = [i for i in range(len(_QUOTES)) if m.group(f"q{i}") is not None]
        if quoted:  # (its quotes kept around its last part)
            path, (opening, closing) = m.group(f"q{quoted[0]}"), _QUOTES[quoted[0]]
        else:  # (a full stop or colon after it is the sentence's)
            path = m.group(0).rstrip(".:")
            opening, closing = "", m.group(0)[len(path) :]
        part = re.split(r"[\\/]", path.rstrip("/\\"))[-1]
        if not part or part == path:
            return m.group(0)
        report.paths_shortened += 1
        return opening + part + closing

    return _PATH_IN_TEXT.sub(last, text)


def _scrubbed(
    node: Any, rename: _Renamer, report: ShareReport, depth: int = 0, note: bool = False
) -> Any:
    """A metadata tree without per-patient records: at the top level the model's own fields
    (:class:`ModelMetadata`'s) but ``training`` and ``metrics`` are kept as they are (they
    describe the network and its use; a patient named ``liver`` is no stage); every other key,
    a person's notes (``_note``, ``#…``) included, is scrubbed as ``training`` is, its keys too."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if depth == 0 and k in _MODEL_FIELDS and k not in ("training", "metrics"):
                out[k] = v
                continue
            if depth == 0 and k not in _MODEL_FIELDS:  # a note, or a field of a later version
                out[k] = _scrubbed(v, rename, report, depth + 1, note=True)
                continue
            if note:  # a note's own keys may be patients' IDs or paths
                k = rename(_paths_in_text(k, report)) if isinstance(k, str) else k
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
            out[k] = _scrubbed(v, rename, report, depth + 1, note)
        return out
    if isinstance(node, list):
        return [_scrubbed(v, rename, report, depth + 1, note) for v in node]
    if isinstance(node, str):
        return rename(_paths_in_text(node, report))
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
