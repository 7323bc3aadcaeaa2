"""The training loop: a generator of small reports, single-process or under ``torchrun``.

``train(config)`` yields a dict per step (``event="step"``) and per epoch (``event="epoch"``),
then one ``event="done"`` or ``event="cancelled"``. The model folder ``<out>/<stage>/`` holds the
best checkpoint (``model.safetensors`` + ``metadata.json``, trunk only); ``<out>/<stage>/last/``
the latest full checkpoint plus ``train_state.pt`` for ``resume``. Every file is written to a
temporary name and renamed, and ``last/`` is swapped in as a whole, so an interruption or a full
disk never leaves a half-written checkpoint.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the network is wrapped in ``DistributedDataParallel``,
patients are dealt to ranks by a ``DistributedSampler``, and only rank 0 validates, writes
checkpoints and logs. With one process the code path is the same.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Cancelled, InputError, LiverTumorError, ModelError, SettingsError
from ..fileio import (
    check_path_lengths,
    check_writable_folder,
    pid_alive,
    same_file,
    windows_path_limit,
)
from ..models import ModelMetadata, build_training_network, save_model
from ..progress import Reporter
from ..signals import HeldStops
from .config import TrainConfig
from .data import (
    IN_REPORT,
    case_fingerprint,
    find_clinical,
    index_cases,
    load_or_prepare,
    make_split,
    preprocess_params,
    read_split,
    write_split,
)
from .losses import compute_losses
from .patches import PatchDataset, epoch_plan

log = logging.getLogger(__name__)
STATE_FILE = "train_state.pt"


def train(
    config: TrainConfig, *, should_cancel: Callable[[], bool] | None = None
) -> Iterator[dict[str, Any]]:
    """Train one stage; a generator of report dicts (see the module docstring).

    Cancelling (``should_cancel()`` returning True) stops before the next step, writes ``last/``
    and yields ``event="cancelled"``. ``KeyboardInterrupt`` also saves ``last/`` first.

    A loop left early (``break``, an exception in the caller's loop body) leaves the run open
    (its lock on the stage folder, its ``train.log``) until the generator is closed: close it,
    ``with contextlib.closing(train(cfg)) as reports: for r in reports: ...``, or
    ``reports.close()`` (closing saves nothing more: stop with ``should_cancel`` to keep
    ``last/``). While it is open, only what the run itself logs goes to its ``train.log``. Its
    warnings are printed on stderr too when logging is not configured (as Python's last
    resort would print them).

    For reproducible runs it seeds Python's ``random`` and torch's global generator (and
    torch's again before building the network) from ``config.seed``: seed them again
    afterwards where the caller's own code needs its own sequence.
    """
    run = _Run(config)
    yield from run.execute(should_cancel)


def check_weak_table(
    cfg: TrainConfig,
    case_ids: list[str] | None = None,
    *,
    records=None,
    split: dict[str, Any] | None = None,
) -> None:
    """A tumor run's clinical table must match the data's patients and hold a column asked
    for, and hold, for the split's training patients, a row and a value the weak term's fit
    can use (:func:`~.weak.weak_fit_inputs`, the rule the tumor stage stops on once its
    patients are prepared: a table with rows or values only for the validation and test
    patients passed a check over all the patients, and stopped the tumor stage after the
    liver had trained). Checked before any training (with ``--stage both`` the liver trains
    first), and again by every run once its patients are indexed, before their scans are
    prepared (the Train panel's runs, which the command's check does not cover).

    ``case_ids`` (``records``: their :class:`~.data.CaseRecord`): the patients, when already
    indexed; ``split``: the run's split, when already resolved. Else it is resolved as the run
    resolves it (:func:`resolve_split`: ``--split``, ``--folds``/``--fold``, the seeded
    default, a resumed run's stored lists, as they are now: call it after
    :func:`check_before_writing` has recovered an interrupted save), its warnings left to the
    run. A split the run refuses (a split file naming none of the patients, too few patients
    for ``--folds``) leaves the check over all the patients only, as before: the run, or
    :func:`check_folds`, says what is wrong with it. Patients whose scans turn out unreadable
    when prepared count as training patients here, so the check refuses no table the run
    would take.
    """
    from .weak import check_weak_inputs, load_clinical_frame, weak_fit_inputs, weak_term_off

    if weak_term_off(cfg.stage, cfg.weak_lambda) is not None:
        return
    path = Path(cfg.clinical) if cfg.clinical else find_clinical(cfg.data)
    if path is None:
        return  # trained without the weak term, said when it starts

    if case_ids is None:
        from .data import index_cases

        records = index_cases(cfg.data)
        case_ids = [r.case_id for r in records]
    # the table's IDs and the data's named, when no patient at all has a row
    check_weak_inputs(path, cfg.weak_columns, case_ids)
    if split is None:
        try:
            with _unsaid():
                split = resolve_split(cfg, case_ids, records)
        except LiverTumorError:
            return  # refused by the run (or check_folds) in its own words
    here = set(case_ids)
    train_ids = [c for c in split.get("train") or () if c in here]
    if train_ids:  # (none: the run stops on that first)
        # raises as the tumor stage's fit would, in its words
        weak_fit_inputs(
            load_clinical_frame(path),
            train_ids,
            cfg.weak_columns,
            folds=cfg.weak_folds,
            source=path,
            log_columns=cfg.weak_log_columns,
        )


@contextlib.contextmanager
def _unsaid() -> Iterator[None]:
    """What this module logs from this thread meanwhile is not said (a check resolving the
    split the run resolves again, and warns of then, in its order)."""
    import threading

    me = threading.get_ident()

    def others(record: logging.LogRecord) -> bool:
        return record.thread != me

    log.addFilter(others)
    try:
        yield
    finally:
        log.removeFilter(others)


def check_folds(cfg: TrainConfig, case_ids: list[str] | None = None) -> None:
    """``--folds K`` needs at least K patients (docs/training.md): checked before anything is
    prepared, as the split is drawn (a run resumed, or given ``--split``, keeps its lists).
    ``case_ids``: the patients, when already indexed."""
    if not cfg.folds or cfg.folds < 2 or cfg.split_file or cfg.resume:
        return
    if case_ids is None:
        from .data import index_cases

        case_ids = [r.case_id for r in index_cases(cfg.data)]
    _check_folds_fit(cfg, len(set(case_ids)))


def _check_folds_fit(cfg: TrainConfig, n: int) -> None:
    # patients are dealt into the folds one by one: a fold past the last patient is empty, and
    # a model "tested" on nobody has no held-out score to give. Every fold is refused, not the
    # empty ones only: `--folds 10` on 6 patients trained folds 0..5 of a job array, then
    # failed 6..9 after their data was prepared
    if cfg.folds and cfg.folds > 1 and n < cfg.folds:
        raise SettingsError(
            f"--folds {cfg.folds} needs at least {cfg.folds} patients and {cfg.data} holds "
            f"{n}: folds {n}..{cfg.folds - 1} would have no test patient; use at most {n} "
            "folds (or --split with your own lists)"
        )


def check_output_folder(cfg: TrainConfig) -> None:
    """Refuse a fine-tune written into the model it starts from (or a folder inside it):
    replacing it would lose the start model, and the shipped models live in such a folder.
    Refuse an output folder that is itself a model's folder (``--out models/liver``: the model
    went to ``models/liver/liver``, beside a cache, without a word)."""
    out = Path(cfg.out)
    if (out / "metadata.json").is_file() and (out / "model.safetensors").is_file():
        raise SettingsError(
            f"{out} is a model's own folder; the output folder is the one that holds liver/ "
            f"and tumor/ (here, {out.parent})"
        )
    from ..models.checkpoint import is_shipped_model_folder

    if is_shipped_model_folder(cfg.stage_dir):  # a Replace (--force) would lose them
        raise SettingsError(
            f"{out} holds the shipped default models (the ones Segment uses when no other is "
            "chosen); train into another output folder, and choose it in Segment (its models "
            "list or Folder…; --models on the command line)"
        )
    check_run_paths(cfg, [])  # (Windows' path limit: the patients' cache once indexed)
    if not cfg.init_from:
        return
    init = Path(cfg.init_from).resolve()
    stage_dir = Path(cfg.stage_dir).resolve()
    # (same_file: the letter case typed may differ, on macOS, from the folder's own)
    if any(same_file(folder, stage_dir) for folder in (init, *init.parents)):
        raise SettingsError(
            f"{stage_dir}: the fine-tune would write over the model it starts from ({init}); "
            "choose another output folder"
        )


#: the output folder as the command line and the Train panel name it
_OUT_NAMED = "an output folder (--out; the Train panel's Output)"


def check_run_paths(cfg: TrainConfig, case_ids: list[str] | None = None) -> None:
    """Refuse a run whose files would pass Windows' path limit (where it applies), before
    anything is written: its checkpoints, each written whole into ``.best-new/`` or
    ``.last-new/`` (the longer) through temporary names, then moved in, and its preprocessing
    cache (``<cache>/<stage>/<patient>-<key>.npz``, through temporary names too). They failed
    at the first patient's cache file (for ``--stage both``, before either stage trained), or
    at the first epoch's save.

    ``case_ids``: the patients whose cache is written (every run checks them once indexed);
    None: every patient of the data, indexed here (the command, before anything is prepared:
    the split is drawn later); ``[]``: the checkpoints only (the Train panel's start)."""
    if windows_path_limit() is None:
        return
    if case_ids is None:
        from .data import index_cases

        case_ids = [r.case_id for r in index_cases(cfg.data)]
    new = Path(cfg.stage_dir) / ".last-new"
    saved = [new / name for name in ("model.safetensors", "metadata.json", "split.json")]
    cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out) / ".cache"
    key = "0" * 16  # (data.cache_key: 16 hex digits)
    cached = [cache / cfg.stage / f"{case}-{key}.npz" for case in case_ids]
    # (the temporary names end in .tmp, the cache's in .npz: one length)
    if cfg.cache_dir:  # each folder said with its own option
        check_path_lengths(cfg.out, saved, ending=".tmp", choose=_OUT_NAMED)
        check_path_lengths(cache, cached, ending=".npz", choose="a cache folder (--cache-dir)")
    else:
        check_path_lengths(cfg.out, [*saved, *cached], ending=".tmp", choose=_OUT_NAMED)


class RunLock:
    """A file in a stage's output folder held while a run writes there.

    Two runs into one folder at once (the panel and the command line, two napari windows)
    both trained, and the last to write replaced the other's model and state without a word.
    The file names the process (and host) holding it; one whose process is gone (killed) is
    taken over."""

    NAME = ".livertumor-run.lock"

    def __init__(self, path: Path, made: list[Path] | None = None):
        self.path = path
        self.made = list(made or [])  # folders it created, deepest first: removed if left empty

    @classmethod
    def acquire(cls, stage_dir: Path) -> RunLock:
        import json
        import socket

        made = []  # the folders mkdir creates, deepest first
        probe = stage_dir
        while not probe.exists() and probe.parent != probe:
            made.append(probe)
            probe = probe.parent
        check_writable_folder(stage_dir)  # (a file where a folder goes: said as such)
        try:
            stage_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(stage_dir, f"cannot create the output folder: {exc.strerror}") from exc
        path = stage_dir / cls.NAME
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except PermissionError as exc:
                raise InputError(
                    stage_dir, f"cannot write in the output folder: {exc.strerror}"
                ) from exc
            except FileExistsError:
                holder = cls._holder(path)
                if holder is None:  # its process is gone: a stale lock, taken over
                    with contextlib.suppress(OSError):
                        path.unlink()
                    continue
                raise SettingsError(
                    f"{stage_dir}: another training run is writing here ({holder}); wait for "
                    "it to end, or choose another output folder (if no such run is going on, "
                    f"delete {path})"
                ) from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(me, fh)
            return cls(path, made=made)
        raise SettingsError(f"{path}: could not take this folder's run lock")

    @classmethod
    def check_free(cls, stage_dir: Path) -> None:
        """Refuse (``SettingsError``) when another live run holds ``stage_dir``'s lock: before
        any check that touches the folder's files (the recovery of an interrupted save)."""
        path = Path(stage_dir) / cls.NAME
        holder = cls._holder(path) if path.is_file() else None
        if holder is not None:
            raise SettingsError(
                f"{stage_dir}: another training run is writing here ({holder}); wait for it "
                f"to end, or choose another output folder (if no such run is going on, delete "
                f"{path})"
            )

    @staticmethod
    def _holder(path: Path) -> str | None:
        """Who holds the lock, in words; None when its process is gone (or the file is not
        readable as one: written by a run killed mid-write)."""
        import json
        import socket

        try:
            held = json.loads(path.read_text(encoding="utf-8"))
            pid, host = int(held["pid"]), str(held.get("host", ""))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        since = ""
        with contextlib.suppress(TypeError, ValueError, OverflowError, OSError):
            if held.get("started"):
                when = time.localtime(float(held["started"]))
                since = f", since {time.strftime('%Y-%m-%d %H:%M', when)}"
        if host and host != socket.gethostname():
            return f"process {pid} on {host}{since}"
        if pid == os.getpid():  # this process's own earlier run, never closed: ended
            return None
        if not pid_alive(pid):
            return None
        with contextlib.suppress(OSError, IndexError):  # a zombie has ended
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        return f"process {pid}{since}"

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        for folder in self.made:  # a run refused before it wrote anything leaves no empty
            try:  # folder (the output folder above the stage's too, when it made it)
                folder.rmdir()  # (only when empty)
            except OSError:
                break


def check_writable_outputs(cfg: TrainConfig) -> None:
    """Refuse (``InputError``) an output folder, or a cache folder given, that cannot be made
    or written: a file in its place, a read-only or forbidden folder. Said before anything
    starts, by the command (:func:`check_before_writing`) and the Train panel's Start in the
    same words (the panel started a run that failed on a file as its Output a minute later)."""
    check_writable_folder(cfg.out)
    if cfg.cache_dir:
        check_writable_folder(cfg.cache_dir)


def check_before_writing(cfg: TrainConfig, *, check_lock: bool = True) -> None:
    """Refuse a run that would silently replace work, before anything is written.

    ``out/<stage>`` holding a model or a stopped run's state is only trained into with
    ``resume`` (there must be a state to resume) or ``overwrite``. A fine-tune's start model
    must exist and be of the right stage (checked here, not after the split is written).
    """
    from ..models import load_model

    stage_dir = Path(cfg.stage_dir)
    check_output_folder(cfg)
    if check_lock:  # (not by the other ranks of a torchrun: rank 0 holds it)
        RunLock.check_free(stage_dir)  # a running run's save in progress is not "recovered"
    if cfg.clinical and cfg.stage == "tumor" and cfg.weak_lambda > 0:
        # found now, not after the liver stage has trained for hours (--stage both)
        clinical = Path(cfg.clinical)
        if not clinical.is_file():
            raise InputError(
                clinical, "clinical table not found" if not clinical.exists() else "not a file"
            )
        from ..io.clinical import read_clinical

        read_clinical(clinical)  # a table that is no clinical table: said before anything
    check_writable_outputs(cfg)
    if not cfg.overwrite and replacing_cut(stage_dir):
        # (before the recovery, which takes its part-written last/ for debris)
        raise InputError(
            stage_dir,
            "holds a run that replaced the one here (--force, overwrite=True), stopped while "
            "saving its first checkpoint, before it saved a model or state of its own: the "
            "model and state here are still the replaced run's, and --resume would go on with "
            "the run it was replacing. Start the new run again with --force (overwrite=True; "
            "Replace in the Train panel), or choose another output folder",
        )
    recover_interrupted_save(stage_dir)
    has_state = (stage_dir / "last" / STATE_FILE).is_file()
    has_model = (stage_dir / "model.safetensors").is_file()
    # killed in its first save of last/, after its first best model: no state, and --resume
    # was refused for it while the plain command sent the user to --resume
    restart = first_save_cut(stage_dir)
    if not cfg.overwrite:
        if cfg.resume and has_model and not has_state and not restart:
            raise InputError(
                stage_dir,
                "holds a trained model but no last/ state to resume; replace it (--force, "
                "overwrite=True; Replace in the Train panel) or choose another output folder",
            )
        if not cfg.resume and has_model and not has_state and not restart:
            # --resume is refused here (nothing to resume): offered, it sent the user round
            raise InputError(
                stage_dir,
                f"already holds a {cfg.stage} model and no last/ state to resume: --force "
                "(overwrite=True; Replace in the Train panel) replaces it, or choose another "
                "output folder",
            )
        if not cfg.resume and (has_model or has_state):
            held = (
                f"a {cfg.stage} model and a run to resume"
                if has_model and has_state
                else f"a {cfg.stage} model of a run stopped while saving its first checkpoint "
                "(resumed, it starts again from step 0 with its split)"
                if has_model
                else f"a {cfg.stage} run to resume (stopped before its first best model)"
            )
            raise InputError(
                stage_dir,
                f"already holds {held}: --resume (resume=True; Resume in the Train panel) "
                "continues it, --force (overwrite=True; Replace in the Train panel) replaces it, "
                "or choose another output folder",
            )
    if cfg.resume and restart and has_model and not cfg.overwrite:
        # started again with the split of the model it saved: a recipe given now that draws
        # another one (seed, folds, fold) or trains another network is another run
        saved = saved_recipe(stage_dir)
        differ = recipe_differences(cfg, saved) if saved else []
        if differ:
            raise InputError(
                stage_dir,
                "holds the model of a run stopped while saving its first checkpoint, trained "
                "with another recipe than the settings given now ("
                + "; ".join(differ)
                + "): resume with the run's own settings to start it again from step 0, or "
                "--force (overwrite=True; Replace in the Train panel) to start a new run",
            )
    if cfg.resume and has_state and not cfg.overwrite:
        if saved_training_config(stage_dir) is None:
            # an unreadable record let a resume go on with another HU window or spacing
            # without a word
            raise InputError(
                stage_dir / "last" / "metadata.json",
                "is missing, unreadable or records no training settings, so the recipe this "
                "run was trained with is not known and a resume could go on with other "
                "settings: put the file back, or start a new run (--force, overwrite=True; "
                "Replace in the Train panel)",
            )
        # another starting model named on resume: the run goes on from its own last/ state,
        # and its metadata named the other folder as its start beside the one it had
        was = (saved_training_config(stage_dir) or {}).get("init_from")
        if cfg.init_from and not _same_folder(cfg.init_from, was):
            raise InputError(
                stage_dir / "last",
                f"this run started from {was or 'scratch (no --init / init_from)'}, not "
                f"{cfg.init_from}: a resumed run goes on from its own last/ state; leave --init "
                "(init_from) out (in the Train panel, Start from: a new model), or start a new "
                "run in another folder to fine-tune from that model",
            )
        saved = saved_recipe(stage_dir)
        differ = recipe_differences(cfg, saved) if saved else []
        if differ:
            raise InputError(
                stage_dir / "last",
                "this run was trained with another recipe than the settings given now ("
                + "; ".join(differ)
                + "): resume with the run's own settings, or --force (overwrite=True; Replace "
                "in the Train panel) to start a new run",
            )
    if cfg.init_from and not (cfg.resume and has_state):
        # missing, corrupt, wrong stage (ModelError), or another network: found now, not after
        # the data is prepared or the liver stage has trained (--stage both)
        check_init_fits(cfg, load_model(cfg.init_from, stage=cfg.stage), cfg.init_from)
    check_device(cfg.device)


def _same_folder(a, b) -> bool:
    """Two model folders named (``default`` resolved alike), the same on disk. A relative
    ``b`` (a run started with ``--init runs/x`` from another folder) is the same when ``a``
    ends with it."""
    if not a or not b:
        return not a and not b
    try:
        if Path(a).resolve() == Path(b).resolve() or Path(a).samefile(b):
            return True
    except OSError:
        pass
    if not Path(b).is_absolute():
        tail = Path(b).parts
        return Path(a).resolve().parts[-len(tail) :] == tail
    return str(a) == str(b)


def saved_training_config(stage_dir: str | Path) -> dict[str, Any] | None:
    """The training config a stopped run recorded in ``stage_dir/last/metadata.json`` (or
    where :func:`_run_record` finds it after a kill) (None when there is none or it cannot be
    read)."""

    try:
        from ..fileio import read_user_json

        meta = read_user_json(_run_record(Path(stage_dir)) / "metadata.json")
        config = (meta.get("training") or {}).get("config")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(config, dict) or not config:
        return None
    config = dict(config)
    if "weak_lambda" in config and "weak_log_columns" not in config:
        # recorded before the field (7 Dec 2026): its weak labels entered AFP as it is, and a
        # resume goes on so
        config["weak_log_columns"] = []
    return config


def saved_run_minutes(stage_dir: str | Path) -> float | None:
    """The minutes a stopped run in ``stage_dir`` has trained (``training.minutes`` of the
    ``metadata.json`` :func:`saved_training_config` reads: what ``--max-minutes``, the whole
    run's, counts), or None where none is recorded. The Train panel's Resume question says it
    (a resume under a budget it had spent prepared the data, then trained nothing)."""
    try:
        from ..fileio import read_user_json

        meta = read_user_json(_run_record(Path(stage_dir)) / "metadata.json")
        minutes = (meta.get("training") or {}).get("minutes")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)):
        return None
    return float(minutes) if math.isfinite(minutes) and minutes >= 0 else None


def run_weak_anchor(stage_dir: str | Path) -> str | None:
    """The ``weak_anchor`` a stopped run in ``stage_dir/last`` trained with ("patient" for a
    run from before the field that used the weak term), or None (no run, or no weak term).
    Resuming keeps it unless asked otherwise (the Train panel's Resume, ``train --resume``)."""
    config = saved_training_config(stage_dir) or {}
    if "weak_lambda" not in config:
        return None
    anchor = config.get("weak_anchor", "patient")
    return anchor if anchor in ("patch", "patient") else None


def check_init_fits(cfg: TrainConfig, loaded, folder) -> None:
    """Refuse a start model (``--init``) whose network is not the recipe's, or an ensemble."""
    meta = loaded.metadata
    if meta.members > 1:
        raise LiverTumorError(
            f"cannot start from {folder}: it is an ensemble of {meta.members} networks; "
            "start from one of its members (listed under training.ensemble_of)"
        )
    theirs, mine = meta.network.to_dict(), cfg.network.to_dict()
    if theirs != mine:
        differ = "; ".join(
            f"{k}: model {theirs.get(k)}, recipe {mine.get(k)}"
            for k in sorted(set(theirs) | set(mine))
            if theirs.get(k) != mine.get(k)
        )
        raise LiverTumorError(
            f"cannot start from {folder}: its network differs from the recipe's ({differ}); "
            "leave the network out of --config to train the model's own"
        )


def check_device(device: str) -> None:
    """CUDA asked for where there is none: said before the data is prepared (which takes
    long on a real cohort), not after."""
    if not str(device).startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(
            None,
            "CUDA was asked for but no CUDA device is available; choose the CPU (--device cpu "
            "on the command line, cpu or auto under Device in the Train panel)",
        )
    index = torch.device(str(device)).index
    if index is not None and index >= torch.cuda.device_count():
        raise InputError(
            None,
            f"{device} was asked for but this machine has {torch.cuda.device_count()} GPU(s), "
            "numbered from cuda:0",
        )


#: where the best model is written before it is moved into the stage folder, and the mark of a
#: whole one there
BEST_NEW = ".best-new"
COMPLETE_MARK = ".complete"
#: in ``.last-new/`` while a run that replaces the folder's run (``--force``) writes its first
#: ``last/`` before any model of its own: killed then, the model and state beside it are the
#: replaced run's, and a resume took them for its own (its split, its recipe, its state)
REPLACING_MARK = ".replacing"
_MODEL_FILES = ("model.safetensors", "metadata.json", "split.json")


def _move_best_in(stage_dir: Path) -> None:
    """Move a complete ``.best-new/`` into ``stage_dir`` file by file (also to finish one)."""
    new = stage_dir / BEST_NEW
    for name in _MODEL_FILES:
        if (new / name).is_file():
            os.replace(new / name, stage_dir / name)
    shutil.rmtree(new, ignore_errors=True)


def _whole_state(folder: Path) -> bool:
    """Whether ``folder`` holds a resume state written whole (its ``split.json`` is written
    last)."""
    return (folder / STATE_FILE).is_file() and (folder / "split.json").is_file()


def first_save_cut(stage_dir: str | Path) -> bool:
    """Whether the run in ``stage_dir`` was killed while it wrote its first ``last/``: a
    ``.last-new/`` written in part, and no state to resume, there or to put back. Such a run
    is started again from step 0 by a resume (its model, saved just before, held the folder
    and no command went on: --resume found no state, the plain command a model to resume)."""
    stage_dir = Path(stage_dir)
    new, old = stage_dir / ".last-new", stage_dir / ".last-old"
    return (
        not (stage_dir / "last" / STATE_FILE).is_file()
        and new.is_dir()
        and not _whole_state(new)
        and not _whole_state(old)
        and not replacing_cut(stage_dir)
    )


def replacing_cut(stage_dir: str | Path) -> bool:
    """Whether a run replacing the folder's run (``--force``) was killed while it wrote its
    first ``last/``, before any model of its own, beside the replaced run's model or state.
    Nothing of the killed run can be resumed, and a resume would go on with the replaced one
    (restarted from its model's split and recipe, or continued from its ``last/``)."""
    stage_dir = Path(stage_dir)
    new = stage_dir / ".last-new"
    return (
        (new / REPLACING_MARK).is_file()
        and not _whole_state(new)
        and (
            (stage_dir / "model.safetensors").is_file()
            or (stage_dir / "last" / STATE_FILE).is_file()
            or _whole_state(stage_dir / ".last-old")
        )
    )


def resumable(stage_dir: str | Path) -> bool:
    """Whether a resume has a run to go on with in ``stage_dir``: a state in ``last/``, one a
    killed save left whole beside it, or a run killed in its first save of ``last/``
    (:func:`first_save_cut`, started again). The Train panel offers Resume by it (it looked at
    ``last/`` alone, and offered only Replace after a kill there)."""
    stage_dir = Path(stage_dir)
    return not replacing_cut(stage_dir) and (
        (stage_dir / "last" / STATE_FILE).is_file()
        or _whole_state(stage_dir / ".last-new")
        or _whole_state(stage_dir / ".last-old")
        or first_save_cut(stage_dir)
    )


def _run_record(stage_dir: Path) -> Path:
    """The folder whose ``metadata.json`` records the run a resume continues: ``last/``; the
    state a killed save left whole, which :func:`recover_interrupted_save` puts there when the
    run starts (``--resume`` without ``--config`` reads it before: it went on with the defaults,
    refused as another recipe); for a run killed in its first save of ``last/``, its model's."""
    last, new, old = stage_dir / "last", stage_dir / ".last-new", stage_dir / ".last-old"
    if (last / STATE_FILE).is_file():
        return new if _whole_state(new) else last
    for candidate in (new, old):
        if _whole_state(candidate):
            return candidate
    if first_save_cut(stage_dir) and (stage_dir / "metadata.json").is_file():
        return stage_dir
    return last


def recover_interrupted_save(stage_dir: Path) -> None:
    """Finish or undo a save that a killed run left half done.

    The best model: a whole ``.best-new/`` is moved in, a partial one removed.

    ``last/`` is written as ``.last-new/`` and swapped in by two renames (``last`` →
    ``.last-old``, ``.last-new`` → ``last``). Killed between them, the folder held no ``last/``
    and ``--resume`` refused the run. The newer state is taken when it was written whole (its
    ``split.json`` is written last), else the older one. A ``.last-new/`` written in part with
    no state beside it (killed in the run's first save, :func:`first_save_cut`) is left: it
    tells a resume to start the run again, and the run's first save replaces it.
    """
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return  # one process of a distributed run puts things right (the one that saves)
    best = stage_dir / BEST_NEW
    if (best / COMPLETE_MARK).is_file():  # killed while moving a whole model in: finish
        _move_best_in(stage_dir)
        log.warning("%s: the run was stopped while saving its best model; finished that", stage_dir)
    elif best.exists():  # killed while writing it: the folder's model is the previous one
        shutil.rmtree(best, ignore_errors=True)
    last = stage_dir / "last"
    new, old = stage_dir / ".last-new", stage_dir / ".last-old"
    if (last / STATE_FILE).is_file():
        if _whole_state(new):
            # killed after writing the newer state whole, before the renames: it is taken
            shutil.rmtree(old, ignore_errors=True)
            os.replace(last, old)
            os.replace(new, last)
            log.warning(
                "%s: the run was stopped while saving its checkpoint; put back the newer state "
                "as last/",
                stage_dir,
            )
        # a state written in part (a full disk, a kill) is debris: on a full disk it kept the
        # space the next save needed
        shutil.rmtree(new, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        return
    for candidate in (new, old):
        if not _whole_state(candidate):
            continue
        if last.exists():
            shutil.rmtree(last, ignore_errors=True)
        os.replace(candidate, last)
        log.warning(
            "%s: the run was stopped while saving its checkpoint; put back %s as last/",
            stage_dir,
            "the newer state" if candidate is new else "the previous state",
        )
        break


#: what a resumed run must share with the run it continues: the network, what it is fed and
#: the split it keeps (``last/split.json``: another fold or seed given on a resume was not
#: used, while the metadata said it was); learning rate, epochs, data and augmentation may
#: change between parts of one run
RECIPE_FIELDS = (
    "folds",
    "fold",
    "seed",
    "network",
    "optimizer",
    "roi_size",
    "target_spacing",
    "hu_window",
    "mask_outside_liver",
    "outside_hu",
    "roi_margin_mm",
)


def saved_recipe(stage_dir: str | Path) -> dict[str, Any] | None:
    """The :data:`RECIPE_FIELDS` of the run stopped in ``stage_dir/last`` (None if unreadable)."""
    config = saved_training_config(stage_dir) or {}
    recipe = {k: config[k] for k in RECIPE_FIELDS if k in config}
    return recipe or None


def recipe_differences(cfg: TrainConfig, saved: dict[str, Any]) -> list[str]:
    """``"field: run X, now Y"`` for each recipe field where ``cfg`` differs from ``saved``."""
    now = cfg.to_dict()
    out = []
    for k, was in saved.items():
        if k == "network":
            keys = set(was) | set(now[k])
            changed = {n: (was.get(n), now[k].get(n)) for n in keys if was.get(n) != now[k].get(n)}
            out += [f"network {n}: run {a}, now {b}" for n, (a, b) in sorted(changed.items())]
        elif _as_plain(was) != _as_plain(now[k]):
            out.append(f"{k}: run {_as_plain(was)}, now {_as_plain(now[k])}")
    return out


def apply_recipe(cfg: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """``cfg`` with the recipe fields of a stopped run (what Resume in the Train widget uses)."""
    import dataclasses

    from ..models.factory import NetworkConfig

    changes: dict[str, Any] = {}
    for k, v in saved.items():
        if k == "network":
            changes[k] = NetworkConfig.from_dict(v)
        elif isinstance(v, list):
            changes[k] = tuple(v)
        else:
            changes[k] = v
    return dataclasses.replace(cfg, **changes)


def _as_plain(v):
    return [float(x) for x in v] if isinstance(v, list | tuple) else v


class _Run:
    def __init__(self, config: TrainConfig):
        import torch
        import torch.distributed as dist

        self.config = config
        self.init_info: dict[str, Any] | None = None
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.is_main = self.rank == 0
        self.device = resolve_device(config.device)
        self.use_amp = bool(config.amp) and self.device.type == "cuda"
        batch_voxels = config.batch_size * int(np.prod(config.roi_size))
        if config.device == "auto" and self.device.type == "cpu" and batch_voxels > _GPU_SIZED:
            # a GPU recipe (hcc_tace_gpu) on a machine without one ran on, slowly and unsaid
            log.warning(
                "%s: no CUDA device, so training runs on the CPU; this recipe's batches "
                "(%d x %s voxels) are sized for a GPU: expect minutes per step. Use a "
                "CPU recipe (--config default_cpu; in the Train panel, a new model with a "
                "smaller Patch) or a machine with a GPU",
                config.stage,
                config.batch_size,
                "x".join(str(n) for n in config.roi_size),
            )
        self.stage_dir = config.stage_dir
        self.torch = torch
        self.should_cancel: Callable[[], bool] | None = None
        self.split_out: dict[str, Any] = {}
        self.unmeasured = False  # no validation patient has the stage's class
        # whether this run has saved a model or state of its own (a --force run's first save
        # of last/ is marked till then: see REPLACING_MARK)
        self._saved_own = False
        # whether last/ holds this run's state (resumed from, or saved): else a replaced run's
        self._last_is_own = False
        self._records = _RunRecords()

    # ------------------------------------------------------------------ setup
    def _prepare_data(self, progress=None) -> dict[str, Any]:
        """Index, split and preprocess the patients. ``progress(phase, done, total, case)``
        (phase ``"index"`` or ``"prepare"``) is told how far it got."""
        cfg = self.config
        index_skips: list = []

        def indexed(_what, done, total):
            if progress is not None:
                progress("index", done, total, None)

        records = index_cases(
            cfg.data, skipped=index_skips, reporter=Reporter(indexed, self.should_cancel)
        )
        ids = [r.case_id for r in records]
        split = resolve_split(cfg, ids, records)
        # a clinical table that matches no patient, or no training patient: refused now, not
        # after every scan was prepared (minutes to hours on a real cohort)
        check_weak_table(cfg, ids, records=records, split=split)
        wanted = set(split["train"]) | set(split["val"])
        use = [r for r in records if r.case_id in wanted]
        check_run_paths(cfg, [r.case_id for r in use])  # (before the first is written)
        cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out) / ".cache"
        params = preprocess_params(cfg)
        if self.is_main:
            prepared, skipped = load_or_prepare(
                use,
                [params],
                cache,
                should_cancel=self.should_cancel,
                progress=None
                if progress is None
                else (lambda done, total, case: progress("prepare", done, total, case)),
            )
        if self.distributed:
            self.torch.distributed.barrier()  # rank 0 filled the cache; the others read it
        if not self.is_main:
            prepared, skipped = load_or_prepare(use, [params], cache)
        skipped = [*index_skips, *skipped]  # left out while indexing, then while preparing
        cases = prepared[0]
        train_cases = [cases[c] for c in split["train"] if c in cases]
        listed_val = [cases[c] for c in split["val"] if c in cases]
        val_cases = listed_val[: cfg.max_val_cases]
        self.val_note = "validation patients (split.json 'val')"
        if len(val_cases) < len(listed_val) and self.is_main:
            # the rest are neither trained nor validated on: said, and in the model's metrics
            self.val_note = (
                f"the first {len(val_cases)} of the {len(listed_val)} validation patients "
                "(split.json 'val'; max_val_cases)"
            )
            log.warning(
                "validating on %s: the other %d are neither trained nor validated on",
                self.val_note,
                len(listed_val) - len(val_cases),
            )
        if not train_cases:
            why = "; ".join(f"{c}: {r}" for c, r in skipped[:5])
            raise InputError(
                cfg.data, f"no usable training patient{(' (' + why + ')') if why else ''}"
            )
        if not val_cases and self.is_main:
            gone = [c for c in split["val"] if c not in cases]
            validated = cfg.resume and _validated_model_in(Path(cfg.stage_dir))
            log.warning(
                "no validation patients%s: no model is checked during training; %s",
                f" (all {len(gone)} left out: {', '.join(gone[:5])})" if gone else "",
                "the model validated earlier in this run stays the folder's model, and the "
                "latest weights go to last/ only"
                if validated
                else "the one kept is the last weights, not the best validated",
            )
        split_out = dict(split)
        # the lists name the patients trained and validated on: one left out is under skipped
        left_out = {c for c, _ in skipped}
        for key in ("train", "val"):
            split_out[key] = [c for c in split[key] if c not in left_out]
        # with the list each was drawn into: a resumed run tries it there again
        where = {c: key for key in ("train", "val") for c in split[key]}
        split_out["skipped"] = [
            {"case": c, "reason": r} | ({"list": where[c]} if c in where else {})
            for c, r in skipped
        ]
        by_id = {r.case_id: r for r in records}
        # every listed patient's ground truth: evaluation tells this cohort from another that
        # reuses the names by its test patients', and a training patient under another name
        # (a renamed copy of the data) by the others' (livertumor evaluate without --split)
        listed = [*split_out["train"], *split_out["val"], *split["test"]]
        split_out["fingerprints"] = {
            c: fp for c in listed if c in by_id and (fp := case_fingerprint(by_id[c]))
        }
        # a fingerprint is of the labels file: a DICOM SEG's and a NIfTI's of the same patient
        # differ, so evaluation must know which kind these were taken from
        split_out["fingerprint_layout"] = records[0].layout if records else None
        # written with the model it belongs to (_save_best, _save_last), never before: a run
        # that fails or is replaced before saving leaves the folder's model and split together
        self.split_out = split_out
        return {
            "split": split_out,
            "train": train_cases,
            "val": val_cases,
            "skipped": skipped,
            "n_cases": len(records),
        }

    def _prepare_data_reporting(self) -> Iterator[dict[str, Any]]:
        """:meth:`_prepare_data`, yielding ``event="prepare"`` reports while it works
        (``phase`` "index" or "prepare", ``done``, ``total``, ``case``); returns its data.

        Reading and resampling 100 patients' CT takes many minutes before the first step: the
        panel and the console said nothing meanwhile. The work runs in a thread so that this
        generator can report it; Ctrl-C (or SIGTERM) stops it between patients.
        """
        import queue
        import threading

        if self.distributed:  # the ranks meet at a barrier inside: no thread there
            return self._prepare_data()
        reports: queue.Queue = queue.Queue()
        stop = threading.Event()
        outcome: dict[str, Any] = {}
        asked = self.should_cancel

        def cancel() -> bool:
            return stop.is_set() or (asked is not None and bool(asked()))

        def work() -> None:
            try:
                with self._records.inside():  # the run's work: its warnings in its train.log
                    outcome["data"] = self._prepare_data(
                        lambda phase, done, total, case: reports.put((phase, done, total, case))
                    )
            except BaseException as exc:  # given to the generator's thread
                outcome["error"] = exc

        self.should_cancel = cancel
        worker = threading.Thread(target=work, name="livertumor-prepare", daemon=True)
        worker.start()
        try:
            while worker.is_alive() or not reports.empty():
                try:
                    phase, done, total, case = reports.get(timeout=0.2)
                except queue.Empty:
                    continue
                yield {
                    "event": "prepare",
                    "stage": self.config.stage,
                    "phase": phase,
                    "done": done,
                    "total": total,
                    "case": case,
                }
        finally:  # also on Ctrl-C or a closed generator: the thread stops between patients
            stop.set()
            if worker.is_alive() and "data" not in outcome:
                log.info("stopping after the patient being prepared…")
            worker.join()
            self.should_cancel = asked
        if "error" in outcome:
            raise outcome["error"]
        return outcome["data"]

    def _weak_labels(self, train_cases) -> tuple[dict[str, float], dict[str, Any]]:
        from .weak import load_clinical_frame, no_table_note, out_of_fold_weak_labels, weak_term_off

        cfg = self.config
        # (each reason the term is off is a function Check data calls too: said before the run)
        off = weak_term_off(cfg.stage, cfg.weak_lambda)
        if off is not None:
            return {}, {"enabled": False, "reason": off}
        path = Path(cfg.clinical) if cfg.clinical else find_clinical(cfg.data)
        if path is None:
            log.warning("%s", no_table_note(cfg.data))
            return {}, {"enabled": False, "reason": "no clinical table"}

        frame = load_clinical_frame(path)
        weak = out_of_fold_weak_labels(
            frame,
            {c.case_id: c.tlvr for c in train_cases},
            cfg.weak_columns,
            folds=cfg.weak_folds,
            ridge=cfg.weak_ridge,
            seed=cfg.seed,
            source=path,
            log_columns=cfg.weak_log_columns,
        )
        tl = np.array([c.tlvr for c in train_cases if c.case_id in weak.labels])
        wl = np.array([weak.labels[c.case_id] for c in train_cases if c.case_id in weak.labels])
        corr = float(np.corrcoef(tl, wl)[0, 1]) if len(tl) > 2 and tl.std() and wl.std() else None
        summary = {
            "enabled": bool(weak.labels),
            # absolute, as training.data.clinical beside it (a path as typed named another
            # file once the run's record was read from elsewhere)
            "clinical": str(Path(path).resolve()),
            "oof_corr_with_tlvr": corr,
            **weak.summary(),
        }
        if not weak.labels:  # the report says which (no row, no value, too few to fit)
            summary["reason"] = "no weak labels: see the clinical notes"
        # the table's own warnings first (the panel shows only what the reports carry)
        table_warnings = list(frame.attrs.get("table_warnings") or [])
        summary["report"] = [*table_warnings, *summary["report"]]
        if corr is not None and corr <= 0:
            note = (
                f"the weak labels do not follow the training patients' tumor-to-liver ratios "
                f"(out-of-fold correlation {corr:.2f} over {len(tl)} patients): the weak term "
                "adds noise here; --weak-lambda 0 (Train panel: λ 0) may train better"
            )
            log.warning("weak supervision: %s", note, extra=IN_REPORT)
            summary["report"].append(note)
        return weak.labels, summary

    # ------------------------------------------------------------------ main
    def execute(self, should_cancel) -> Iterator[dict[str, Any]]:
        self._lock: RunLock | None = None
        self._log_file: logging.Handler | None = None
        self._log_stderr: logging.Handler | None = None
        ended = "run ended"
        inner = self._execute(should_cancel)
        end = object()
        try:
            while True:
                with self._records.inside():  # (what it logs meanwhile goes to train.log)
                    report = next(inner, end)
                if report is end:
                    break
                event = report.get("event") if isinstance(report, dict) else None
                if event == "done":
                    ended = f"run ended: finished, model saved (at step {report.get('step')}" + (
                        f"; model kept: {kept_model_text(report['kept'])})"
                        if report.get("kept")
                        else ")"
                    )
                elif event == "cancelled":
                    ended = f"run ended: stopped at step {report.get('step')}, state in last/"
                yield report
        except BaseException as exc:  # the end of the run, in its log too
            ended = f"run ended: {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
            raise
        finally:
            # closed (a consumer that stops reading): the run's own clean-up at once, as
            # `yield from` delegated it
            with self._records.inside():
                inner.close()
            if self._log_file is not None:
                self._log_line(ended)
                package = logging.getLogger("napari_livertumor")
                package.removeHandler(self._log_file)
                if self._log_stderr is not None:
                    package.removeHandler(self._log_stderr)
                    self._log_stderr.close()
                self._log_file.close()
                self._drop_lone_log()
            if self._lock is not None:
                self._lock.release()

    def _drop_lone_log(self) -> None:
        """A run refused before it wrote anything (a fold with no test patient, no usable
        patient) leaves no folder holding only its log: the log goes, and the folder with it
        when the run made it."""
        stage = Path(self.config.stage_dir)
        if not getattr(self, "_log_is_new", False):
            return
        try:
            left = [p.name for p in stage.iterdir() if p.name not in (RUN_LOG, RunLock.NAME)]
        except OSError:
            return
        if not left:
            (stage / RUN_LOG).unlink(missing_ok=True)

    def _open_run_log(self) -> None:
        """The run's warnings (and its start and end) appended to ``<stage>/train.log``: they
        were on the terminal or the panel's log only, gone with it."""
        cfg = self.config
        self._log_is_new = not (Path(cfg.stage_dir) / RUN_LOG).exists()
        try:
            handler = logging.FileHandler(
                Path(cfg.stage_dir) / RUN_LOG, encoding="utf-8", errors="backslashreplace"
            )
        except OSError as exc:  # a log that cannot be written costs the run nothing
            log.warning("the run's log %s cannot be written (%s)", RUN_LOG, exc)
            return
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        # only the run's own records: not those of other work in the process (a notebook's
        # segmentation while the generator waits, one left open after a `break`)
        handler.addFilter(self._records)
        package = logging.getLogger("napari_livertumor")
        # with no handler anywhere (a script or notebook that configured no logging), Python's
        # last resort printed the warnings on stderr; this handler found, it no longer would:
        # the run's warnings reached its train.log only. Printed as it did, for the run
        if _only_the_last_resort_listens():
            self._log_stderr = _StderrNow(logging.WARNING)
            package.addHandler(self._log_stderr)
        package.addHandler(handler)
        self._log_file = handler
        self._log_line(
            f"run started: {cfg.stage} stage, data {cfg.data}, "
            + ("resumed" if cfg.resume else "new run")
            + (f", from {cfg.init_from}" if cfg.init_from else "")
        )

    def _log_line(self, text: str) -> None:
        """One line in the run's log whatever the logger's level (its warnings go there too)."""
        if self._log_file is not None:
            record = logging.LogRecord(__name__, logging.INFO, __file__, 0, text, None, None)
            self._log_file.emit(record)

    def _execute(self, should_cancel) -> Iterator[dict[str, Any]]:
        torch = self.torch
        cfg = self.config
        check_output_folder(cfg)  # (a model's own folder: refused before anything is made)
        if self.is_main:  # one run at a time writes a stage's folder: taken before the
            # checks, whose recovery of an interrupted save would touch a running run's files
            self._lock = RunLock.acquire(Path(cfg.stage_dir))
        check_before_writing(cfg, check_lock=self.is_main)
        if self.is_main:  # (after the checks: a refused run leaves no log behind)
            self._open_run_log()
        seed_everything(cfg.seed)
        self.should_cancel = should_cancel
        try:
            data = yield from self._prepare_data_reporting()
        except Cancelled:  # stopped while the data was being prepared: nothing to save
            yield {"event": "cancelled", "stage": cfg.stage, "step": 0, "last": None}
            return
        weak_labels, weak_summary = self._weak_labels(data["train"])
        yield {
            "event": "info",
            "stage": cfg.stage,
            "n_train": len(data["train"]),
            "n_val": len(data["val"]),
            "n_test": len(data["split"].get("test") or []),  # held out for `evaluate`
            "n_skipped": len(data["skipped"]),
            # who and why: the panel's log is all a GUI user sees of the run
            "skipped": [list(map(str, item)) for item in data["skipped"]][:50],
            "weak": weak_summary,
            "device": str(self.device),
            "world_size": self.world,
        }
        unmeasurable = _validation_without_the_class(data["val"], cfg)
        self.unmeasured = bool(unmeasurable)
        if unmeasurable and self.is_main:
            log.warning("%s", unmeasurable, extra=IN_REPORT)
            yield {"event": "note", "text": unmeasurable}
        torch.manual_seed(cfg.seed)
        net = build_training_network(cfg.network, cfg.roi_size).to(self.device)
        opt = _optimizer(net, cfg)
        total_steps = max(1, cfg.epochs * cfg.steps_per_epoch)
        state = {"step": 0, "best": -1.0, "history": [], "elapsed_s": 0.0}
        if cfg.resume:
            fresh = state
            state = self._load_resume(net, opt, state)  # restores init_info of a fine-tune
            self._last_is_own = state is not fresh
            # no checkpoint there: "starting from scratch" was said; not also "resumed at 0"
            if self.is_main and state is not fresh:  # the run so far, so a plot goes on
                history = [dict(h) for h in state["history"]]
                for h in history if self.unmeasured else []:  # a 0 by convention, not a Dice
                    h["val_score"] = None
                yield {"event": "resumed", "stage": cfg.stage, "step": state["step"],
                       "total_steps": total_steps,
                       "best": None if self.unmeasured or state["best"] < 0 else state["best"],
                       # whether the run has saved a best model (the one in the folder is its
                       # own; else an earlier run's, e.g. one a Replace had not yet replaced);
                       # None without validation patients (its final weights are saved with
                       # no score: not known)
                       "has_best": (state["best"] >= 0) if data["val"] else None,
                       # the validation a stop interrupted is redone first
                       "val_pending": bool(state.get("val_pending") and data["val"]),
                       "history": history}  # fmt: skip
        if cfg.init_from and state["step"] == 0:
            self.init_info = self._load_init(net)
        model = net
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # vae_fc2 (the std head) is unused when vae_estimate_std is False
            model = DDP(net, device_ids=ids, find_unused_parameters=True)
        self.net, self.opt, self.state = net, opt, state
        summary = self._data_summary(data)
        if summary["clinical"] is None and weak_summary.get("clinical"):  # found in --data
            summary["clinical"] = str(Path(weak_summary["clinical"]).resolve())
        # each training patient's weak label beside the ratio it stands for, so a model's weak
        # supervision can be checked afterwards (rounded: the metadata stays small; not in
        # the info report, whose line the CLI prints)
        weak_meta = dict(weak_summary)
        if weak_labels:
            tlvr = {c.case_id: c.tlvr for c in data["train"]}
            weak_meta["labels"] = {
                pid: {"weak": round(float(w), 4), "tlvr": round(float(tlvr[pid]), 4)}
                for pid, w in sorted(weak_labels.items())
                if pid in tlvr
            }
        self.meta_base = {"data": summary, "weak": weak_meta}
        t_start = time.perf_counter() - state["elapsed_s"]
        self.t_start = t_start
        # a validation a stop cut short is redone first (below): the run has that to finish,
        # and "nothing to train" was said of one stopped in its last validation (QA rev59c)
        pending = bool(state.get("val_pending") and data["val"])
        if cfg.resume and state["step"] >= total_steps and not pending:
            log.warning(
                "the run already reached its %d epochs (step %d): nothing to train; raise the "
                "epochs to train on",
                cfg.epochs,
                state["step"],
                extra=IN_REPORT,
            )
            yield {"event": "note", "text": f"the run already reached its {cfg.epochs} epochs "
                   f"(step {state['step']}): nothing to train; raise Epochs to train on"}  # fmt: skip
        if (
            cfg.resume
            and cfg.max_minutes
            and state["elapsed_s"] >= 60 * cfg.max_minutes
            and not pending
        ):
            trained = state["elapsed_s"]
            log.warning(
                "the run has already trained %s and --max-minutes %g counts the whole run "
                "(resumed parts included): no step will run; raise --max-minutes to train on",
                f"{trained / 60:.1f} min" if trained >= 60 else f"{trained:.2g} s",
                cfg.max_minutes,
                extra=IN_REPORT,
            )
            spent = f"{trained / 60:.1f} min" if trained >= 60 else f"{trained:.2g} s"
            yield {"event": "note", "text": f"the run has already trained {spent}, its time "
                   f"budget of {cfg.max_minutes:g} min (the whole run's): nothing to train; "
                   "raise Time budget to train on"}  # fmt: skip
        step = state["step"]
        part_start = step  # (this part's first step: the time budget is read before it)
        cancelled = False
        planned_steps = total_steps
        # a budget spent before this part began is said above; one running out in it, below
        # (also one spent before a validation a stop cut short: that is redone, so the note
        # above is not said, and the run ended short of its steps with no word of why)
        spent_before = bool(
            cfg.resume
            and cfg.max_minutes
            and state["elapsed_s"] >= 60 * cfg.max_minutes
            and not pending
        )
        epoch_losses: list[float] = []
        plan_of, loader = PlanSampler(), None
        try:
            pending = self._pending_validation(data, total_steps)
            if pending is not None:
                yield pending
            cancelled = bool(state.get("val_pending"))  # stopped again
            while step < total_steps and not cancelled:
                epoch = step // cfg.steps_per_epoch
                plan = epoch_plan(
                    len(data["train"]),
                    epoch,
                    cfg.steps_per_epoch * cfg.batch_size,
                    seed=cfg.seed,
                    rank=self.rank,
                    world=self.world,
                )
                first = (step % cfg.steps_per_epoch) * cfg.batch_size
                if loader is None:  # one loader, its workers kept: each epoch only its plan
                    loader = _loader(
                        PatchDataset(data["train"], [], cfg, weak_labels), cfg, plan_of
                    )
                plan_of.plan = plan[first:]
                model.train()
                # a run resumed mid-epoch carries the losses of the epoch's steps before the
                # stop (its recorded loss was the mean of the steps after it only)
                before = state.pop("epoch_losses_before", [])
                epoch_losses = list(before) if step % cfg.steps_per_epoch else []
                state["epoch_losses"] = epoch_losses
                announced = False  # whether this epoch's last step report said a validation comes
                ready = time.perf_counter()  # (a step's wall time counts its batch's loading)
                for batch in loader:
                    stop = self._should_stop(should_cancel, t_start)
                    if stop == "cancel":
                        cancelled = True
                        break
                    if stop == "time" and (step == part_start or step % cfg.steps_per_epoch == 0):
                        total_steps = step  # ends the outer loop too
                        break
                    # (mid-epoch the clock was read after the last step, below: its report
                    # said no validation comes, so the run takes this step and reads it again)
                    t0 = time.perf_counter()
                    # a Ctrl-C or SIGTERM waits for the step to end: cut half-way, the saved
                    # state mixed this step's random draws (dropout) with the last step's count
                    # (a resumed run then differed from one never stopped), or half-updated
                    # weights with the optimizer's old moments
                    with HeldStops():
                        losses, train_dice = self._step(model, opt, batch, step, total_steps)
                        step += 1
                        state["step"] = step
                        epoch_losses.append(losses["total"])
                    now = time.perf_counter()
                    dt, interval = now - t0, now - ready
                    # the time budget is read before the step's report, so a budget that ends
                    # the run here says the final validation comes next: read after it, the
                    # report said none and the panel's bar sat still through the validation
                    out_of_time = bool(
                        cfg.max_minutes
                        and step < total_steps
                        and self._should_stop(None, t_start) == "time"
                    )
                    ends_epoch = step % cfg.steps_per_epoch == 0 or step >= total_steps
                    announced = bool(
                        (ends_epoch or out_of_time)
                        and self._validation_due(epoch, step >= total_steps or out_of_time, data)
                    )
                    yield {
                        "event": "step",
                        "stage": cfg.stage,
                        "step": step,
                        "epoch": epoch,
                        "total_steps": total_steps,
                        "losses": losses,
                        "train_dice": train_dice,
                        "lr": opt.param_groups[0]["lr"],
                        "seconds": dt,
                        "samples_per_s": cfg.batch_size * self.world / dt,
                        # the wall time since the step before, its batch's loading (data
                        # augmentation, in this process without loader workers) included: what
                        # the time left is worked out from (cli_report.StepClock)
                        "interval_s": interval,
                        # what is left of the time budget (the whole run's), None without one;
                        # 0 where it has run out and ends the run here (not a second: "~1 s
                        # left" was said of a run that had reached its budget)
                        "budget_s": (
                            0.0
                            if out_of_time
                            else 60 * cfg.max_minutes - (now - t_start)
                            if cfg.max_minutes
                            else None
                        ),
                        # a validation comes after every so many steps, and after the last
                        # (0: none, no validation patients): the time left counts them
                        "val_every_steps": (
                            cfg.steps_per_epoch * cfg.val_every
                            if self.is_main and data["val"]
                            else 0
                        ),
                        # the epoch's validation comes next (unless a stop comes first): the
                        # panel says so, and that a stop meanwhile ends the validation
                        "validates_next": announced,
                    }
                    ready = time.perf_counter()
                    if out_of_time:
                        total_steps = step  # ends the outer loop too
                    if ends_epoch or out_of_time:
                        break
                if cancelled:
                    break
                state["elapsed_s"] = time.perf_counter() - t_start
                if not self.distributed and should_cancel is not None and should_cancel():
                    # Stop came during the epoch's last step: no validation now (one process
                    # only; several ranks agree on stopping at the next step's check), but the
                    # epoch is recorded and a validation it was due is redone on resume
                    self._record_epoch(epoch, step, epoch_losses)
                    if self._validation_due(epoch, step >= total_steps, data):
                        state["val_pending"] = True
                    cancelled = True
                    break
                done = state["history"][-1] if state["history"] else {}
                recorded = done.get("step") == step
                due = (
                    done.get("val_score") is None and self._validation_due(epoch, True, data)
                    if recorded
                    else self._validation_due(epoch, step >= total_steps, data)
                )
                if due and not announced:
                    # the time budget ran out before this part's or this epoch's first step
                    # (during the last epoch's checkpoint save, or before a resume's first
                    # step): no step report said the final validation comes, and the panel's
                    # bar and the command line sat still through it
                    yield {"event": "validating", "stage": cfg.stage, "step": step,
                           "total_steps": planned_steps, "final": step >= total_steps}  # fmt: skip
                if recorded:
                    # the time budget ran out before this part's first step, or this epoch's
                    # (in the last one's checkpoint save): the epoch that ended here is
                    # recorded already (a resume mid-epoch carries that epoch's losses, so they
                    # do not tell); only a validation it missed is run
                    if due:
                        report = {"event": "epoch", "stage": cfg.stage, "epoch": done.get("epoch"),
                                  "step": step, "total_steps": total_steps,
                                  "train_loss": done.get("train_loss"),
                                  "seconds": state["elapsed_s"]}  # fmt: skip
                        self._validate_into(report, data)
                        self._save_last(reason="validation")
                        report["val_dice"] = _measured_score(report.get("val"))
                        yield report
                    break
                report = self._end_of_epoch(epoch, step, total_steps, epoch_losses, data)
                yield report
                if state.get("val_pending"):  # the validation was stopped
                    cancelled = True
                    break
        except KeyboardInterrupt:
            state["elapsed_s"] = time.perf_counter() - t_start
            # the step held for the interrupt ended an epoch: the epoch is recorded and its
            # validation left for the resume, as a stop from the panel does (it was skipped,
            # and the resumed run differed from one never stopped)
            ended = step % cfg.steps_per_epoch == 0 or step >= total_steps
            recorded = bool(state["history"]) and state["history"][-1].get("step") == step
            if step > 0 and ended and epoch_losses and not recorded:
                last_epoch = (step - 1) // cfg.steps_per_epoch
                self._record_epoch(last_epoch, step, epoch_losses)
                if self._validation_due(last_epoch, step >= total_steps, data):
                    state["val_pending"] = True
            self._save_last(reason="interrupted")
            raise
        state["elapsed_s"] = time.perf_counter() - t_start
        if cancelled:
            self._save_last(reason="cancelled")
            yield {
                "event": "cancelled",
                "stage": cfg.stage,
                "step": step,
                "last": str(self._last_dir()),
            }
            return
        if self.is_main and state["best"] < 0:  # never validated (no val patients): best = last
            if getattr(self, "_best_lost", False):  # validated before; its model was broken
                log.warning(
                    "no validation ran after the resume: the final weights replace the best "
                    "model that could not be loaded",
                    extra=IN_REPORT,
                )
                self._save_best({"note": "the best model was unreadable on resume; final weights"})
            else:
                self._save_best({"note": "no validation patients; final weights"})
        if step < planned_steps and not spent_before:  # the time budget ended it
            note = (
                f"the time budget ({cfg.max_minutes:g} min, the whole run's) stopped the run at "
                f"step {step} of {planned_steps}; its state is in {self._last_dir()}"
            )
            log.warning("%s: --resume with a larger --max-minutes trains on", note, extra=IN_REPORT)
            # (the note is the Train panel's: said in its words)
            yield {"event": "note", "text": f"{note}: Start again with a larger Time budget, "
                   "then Resume, to train on"}  # fmt: skip
        kept = kept_model(self.stage_dir) if self.is_main else None
        yield {
            "event": "done",
            "stage": cfg.stage,
            # which weights the folder's model is: a resumed run said "done: step 24" while
            # its model was step 4's, the best validated (every later epoch scored lower)
            "model_kept": kept_model_text(kept) if kept else None,
            "kept": kept,
            "step": step,
            "best_val_dice": state["best"] if state["best"] >= 0 and not self.unmeasured else None,
            "model": str(self.stage_dir),
            "planned_steps": planned_steps,
            "minutes": state["elapsed_s"] / 60,
            "last_weights_digest": weights_digest(
                net
            ),  # (of the final weights, not the model kept)
        }

    def _should_stop(self, should_cancel, t_start) -> str | None:
        torch = self.torch
        flag = 0
        if should_cancel is not None and should_cancel():
            flag = 2
        elif (
            self.config.max_minutes and time.perf_counter() - t_start > 60 * self.config.max_minutes
        ):
            flag = 1
        if self.distributed:
            t = torch.tensor([flag], device=self.device if self.device.type == "cuda" else "cpu")
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            flag = int(t.item())
        return {0: None, 1: "time", 2: "cancel"}[flag]

    def _step(self, model, opt, batch, step: int, total_steps: int):
        torch = self.torch
        cfg = self.config
        time_frac = None
        if cfg.max_minutes:
            time_frac = (time.perf_counter() - self.t_start) / (60 * cfg.max_minutes)
        lr = lr_at(step, total_steps, cfg.lr, cfg.warmup_steps, time_frac=time_frac)
        for g in opt.param_groups:
            g["lr"] = lr
        x = batch["image"].to(self.device, non_blocking=True)
        y = batch["label"].to(self.device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            logits, vae_loss = model(x)
        terms = compute_losses(logits, vae_loss, y, batch, cfg)
        total = terms["total"]
        if not torch.isfinite(total):
            raise LiverTumorError(
                f"{cfg.stage} training diverged at step {step + 1} (loss {float(total)}); "
                "lower the learning rate"
            )
        total.backward()
        try:  # a finite loss can still give NaN gradients: never stepped into the weights
            torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0, error_if_nonfinite=True)
        except RuntimeError as exc:
            raise LiverTumorError(
                f"{cfg.stage} training diverged at step {step + 1} (the loss was finite, its "
                "gradients were not); lower the learning rate, or check the loss settings "
                "(focal_gamma, class_weights)"
            ) from exc
        opt.step()
        with torch.no_grad():
            pred = logits.argmax(1)
            fg = cfg.n_classes - 1  # liver for the liver stage, tumor for the tumor stage
            inter = ((pred == fg) & (y == fg)).sum().item()
            denom = (pred == fg).sum().item() + (y == fg).sum().item()
            train_dice = 2 * inter / denom if denom else None
        losses = {k: float(v.detach()) for k, v in terms.items() if k != "n_weak"}
        losses["n_weak"] = terms["n_weak"]
        return losses, train_dice

    def _end_of_epoch(self, epoch, step, total_steps, epoch_losses, data) -> dict[str, Any]:
        cfg = self.config
        report: dict[str, Any] = {
            "event": "epoch",
            "stage": cfg.stage,
            "epoch": epoch,
            "step": step,
            "total_steps": total_steps,
            "train_loss": float(np.mean(epoch_losses)) if epoch_losses else None,
            "seconds": self.state["elapsed_s"],
        }
        self._record_epoch(epoch, step, epoch_losses)
        if self._validation_due(epoch, step >= total_steps, data):
            self._validate_into(report, data)
        self._save_last(reason="epoch")
        report["val_dice"] = _measured_score(report.get("val"))
        return report

    def _record_epoch(self, epoch: int, step: int, epoch_losses: list[float]) -> None:
        self.state["history"].append(
            {
                "epoch": epoch,
                "step": step,
                "train_loss": float(np.mean(epoch_losses)) if epoch_losses else None,
                "val_score": None,
            }
        )

    def _validation_due(self, epoch: int, last_epoch: bool, data) -> bool:
        cfg = self.config
        return bool(
            self.is_main and data["val"] and ((epoch + 1) % cfg.val_every == 0 or last_epoch)
        )

    def _validate_into(self, report: dict[str, Any], data) -> None:
        """Validate the current weights; keep them as best/ when they score best.

        A validation stopped part-way is remembered (``val_pending`` in the resume state) and
        run first when the run resumes, so a stop never skips a scheduled check (nor, at the
        run's end, the only one)."""
        started = time.perf_counter()
        try:
            scores = validate(
                self.net, data["val"], self.config, self.device, should_cancel=self.should_cancel
            )
        except Cancelled:
            self.state["val_pending"] = True
            return
        except KeyboardInterrupt:  # Ctrl-C in the CLI: last/ is saved on the way out
            self.state["val_pending"] = True
            raise
        report["val"] = scores
        self.state["history"][-1]["val_score"] = scores["score"]
        if scores["score"] >= self.state["best"]:  # ties: the later (longer-trained) weights
            try:
                self._save_best(scores)
            except KeyboardInterrupt:  # stopped while saving: the best score is not its yet
                self.state["val_pending"] = True
                raise
            self.state["best"] = scores["score"]
            report["saved_best"] = True
        # the validation's wall time (the best model's save included): the time left counts
        # the validations still to come at it (cli_report.StepClock)
        report["val_s"] = time.perf_counter() - started
        self.state["val_pending"] = False

    def _pending_validation(self, data, total_steps: int) -> dict[str, Any] | None:
        """On resume: the validation a stop interrupted, run before training goes on."""
        if not (self.state.get("val_pending") and self.is_main and data["val"]):
            self.state["val_pending"] = False  # nothing to redo here (or not this rank's job)
            return None
        log.info("resume: running the validation stopped at step %d", self.state["step"])
        last = self.state["history"][-1] if self.state["history"] else {}
        report: dict[str, Any] = {
            "event": "epoch",
            "stage": self.config.stage,
            "epoch": max(0, self.state["step"] - 1) // self.config.steps_per_epoch,
            "step": self.state["step"],
            "total_steps": total_steps,
            "train_loss": last.get("train_loss"),
            "seconds": self.state["elapsed_s"],
            "resumed_validation": True,
        }
        if not self.state["history"]:
            self.state["history"].append({"epoch": None, "step": self.state["step"]})
        self._validate_into(report, data)
        if self.state.get("val_pending"):  # stopped again
            return None
        self._save_last(reason="validation")
        report["val_dice"] = _measured_score(report.get("val"))
        return report

    # ------------------------------------------------------------------ checkpoints
    def _last_dir(self) -> Path:
        return self.stage_dir / "last"

    def _metadata(self, metrics: dict[str, Any]) -> ModelMetadata:
        cfg = self.config
        return ModelMetadata(
            stage=cfg.stage,
            network=cfg.network,
            hu_window=cfg.hu_window,
            target_spacing=cfg.target_spacing,
            roi_size=cfg.roi_size,
            label_map=cfg.label_map,
            mask_outside_liver=cfg.mask_outside_liver if cfg.stage == "tumor" else False,
            outside_hu=cfg.outside_hu,
            roi_margin_mm=cfg.roi_margin_mm,
            training={
                **self.meta_base,
                "config": cfg.to_dict(),
                "seed": cfg.seed,
                "steps": self.state["step"],
                "minutes": round(self.state["elapsed_s"] / 60, 2),
                "world_size": self.world,
                "device": str(self.device),
                "history": self.state["history"],
                **({"init_from": self.init_info} if self.init_info else {}),
            },
            metrics=metrics,
            logit_bias=_bias_vector(cfg.n_classes, metrics.get("logit_bias")),
            lesion_filter=(self.init_info or {}).get("lesion_filter"),
        )

    def _save_best(self, metrics: dict[str, Any]) -> None:
        if not self.is_main:
            return
        self._say_shift(metrics)
        metrics = dict(metrics)
        metrics.setdefault(
            "measured_on",
            f"{getattr(self, 'val_note', 'validation patients')} at the stage grid, sliding "
            "windows as inference's defaults"
            + ("; ground-truth liver ROI" if self.config.stage == "tumor" else ""),
        )
        # the weights, metadata and split are one model: written whole into .best-new/, marked
        # complete, then moved in; killed in between, the folder keeps the previous model (or,
        # once the move began, recover_interrupted_save finishes it), never a mix of the two
        new = self.stage_dir / BEST_NEW
        try:
            shutil.rmtree(new, ignore_errors=True)
            save_model(
                new,
                self.net.state_dict(),
                self._metadata(metrics),
                half=self.config.save_half,
                trunk_only=True,
            )
            write_split(self.split_out, new / "split.json")
            (new / COMPLETE_MARK).write_text("", encoding="utf-8")
            _move_best_in(self.stage_dir)
            self._saved_own = True
        except OSError as exc:
            complete = (new / COMPLETE_MARK).is_file()
            # the files of the new model already moved in: beside the previous model's others,
            # the folder is refused (models.checkpoint.read_metadata) until a resume finishes
            # the move; it said "the folder's model is still step 3's" of new weights there
            moved = [n for n in _MODEL_FILES if complete and not (new / n).is_file()]
            if not moved:  # written in part, or none of it moved: the space it took back
                shutil.rmtree(new, ignore_errors=True)
            said = f"cannot write the model to {self.stage_dir}: {exc}"
            if moved:
                said += (
                    (f"; {self._room_text(self._model_bytes(), exc)}" if _disk_full(exc) else "")
                    + f"; the new model (step {self.state['step']}'s) was moved into the "
                    f"folder in part ({', '.join(moved)}; the rest is still in {BEST_NEW}/): "
                    "segment and evaluate refuse the folder until the same `livertumor train` "
                    "command with --resume (Start then Resume in the Train panel) finishes the "
                    "save; "
                    f"{self._kept_checkpoint_text()}"
                )
            elif _disk_full(exc):
                kept = kept_model(self.stage_dir)
                model = (
                    "the folder has no model yet"
                    if not kept
                    else f"the folder's model is still the replaced run's (step {kept['step']})"
                    if self.config.overwrite and not self._saved_own
                    else f"the folder's model is still step {kept['step']}'s"
                )
                said += (
                    f"; {self._room_text(self._model_bytes(), exc)}; {model}; "
                    f"{self._kept_checkpoint_text()}"
                )
            raise LiverTumorError(said) from exc

    def _save_last(self, reason: str) -> None:
        """Write ``last/`` (full weights + resume state) into a new folder, then swap it in."""
        if not self.is_main:
            return
        torch = self.torch
        last = self._last_dir()
        new = self.stage_dir / ".last-new"
        old = self.stage_dir / ".last-old"
        if getattr(self, "t_start", None) is not None:  # up to now: the epoch's validation
            # counts towards --max-minutes (each resumed part had under-counted it)
            self.state["elapsed_s"] = time.perf_counter() - self.t_start
        # a --force run with nothing of its own saved yet: its part-written last/ says so
        replacing = bool(self.config.overwrite and not self._saved_own)
        try:
            shutil.rmtree(new, ignore_errors=True)
            if replacing:
                new.mkdir(parents=True)
                (new / REPLACING_MARK).write_text("", encoding="utf-8")
            save_model(
                new,
                self.net.state_dict(),
                self._metadata({"note": f"last checkpoint ({reason})"}),
                half=False,
                trunk_only=False,
            )
            resume = {
                "step": int(self.state["step"]),
                "best": float(self.state["best"]),
                "elapsed_s": float(self.state["elapsed_s"]),
                "history": self.state["history"],
                "val_pending": bool(self.state.get("val_pending", False)),
                "epoch_losses": [float(x) for x in self.state.get("epoch_losses", [])],
                "init_from": self.init_info,
                "optimizer": self.opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
                # dropout and the VAE's noise draw on the GPU's own generator, which the seed
                # had reset to its start on every resume
                "cuda_rng": (
                    torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
                ),
                "weights": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            }
            tmp = new / f".{STATE_FILE}.tmp"
            handled = sys.exc_info()[1]  # (an error this save is made on the way out of)
            try:
                torch.save(resume, tmp)
            except RuntimeError as exc:  # a full disk, as torch's writer says it
                why = _write_failure(tmp, exc)
                # torch's writer keeps the part written open until its frames go: removed
                # while open, it still held the room the message then said was free
                _release_frames(exc, handled)
                raise OSError(f"writing {STATE_FILE} failed: {why}") from exc
            os.replace(tmp, new / STATE_FILE)
            write_split(self.split_out, new / "split.json")
            (new / REPLACING_MARK).unlink(missing_ok=True)  # whole: the state is its own
            shutil.rmtree(old, ignore_errors=True)
            if last.exists():
                os.replace(last, old)
            os.replace(new, last)
            shutil.rmtree(old, ignore_errors=True)
            self._saved_own = self._last_is_own = True
        except OSError as exc:
            shutil.rmtree(new, ignore_errors=True)
            # what is kept is what last/ holds (it said "the previous checkpoint is kept" also
            # of a run with none yet), and a full disk says how much room a save needs
            said = f"cannot write the checkpoint in {self.stage_dir} ({exc})"
            if _disk_full(exc):
                said += f"; {self._room_text(self._checkpoint_bytes(), exc)}"
            raise LiverTumorError(f"{said}; {self._kept_checkpoint_text()}") from exc

    def _checkpoint_bytes(self) -> int:
        """About what ``last/`` takes: the weights twice (``model.safetensors`` and the copy in
        the resume state) and the optimizer's moments (the rest is a few kB)."""
        torch = self.torch
        weights = sum(t.numel() * t.element_size() for t in self.net.state_dict().values())
        moments = sum(
            v.numel() * v.element_size()
            for per_param in self.opt.state_dict()["state"].values()
            for v in per_param.values()
            if torch.is_tensor(v)
        )
        return 2 * weights + moments

    def _model_bytes(self) -> int:
        """About what the best model's weights take (the trunk, in half precision if so saved)."""
        from ..models.factory import trunk_state_dict

        trunk = trunk_state_dict(self.net.state_dict(), self.config.network)
        half = self.config.save_half
        return sum(
            t.numel() * (2 if half and t.is_floating_point() else t.element_size())
            for t in trunk.values()
        )

    def _room_text(self, needed: int, exc: BaseException) -> str:
        """A full disk, in figures: what a save needs beside what is free in the stage folder
        (read after the part written was removed). "The disk is full" only where ``exc``'s
        words do not already say so ("No space left on device")."""
        try:
            free = _bytes_text(shutil.disk_usage(self.stage_dir).free)
        except OSError:
            free = "an unknown amount"
        said = f"a save there needs about {_bytes_text(needed)}, {free} is free"
        return said if "No space left on device" in str(exc) else f"the disk is full: {said}"

    def _kept_checkpoint_text(self) -> str:
        """Which checkpoint ``last/`` holds after a failed save: the step a resume goes on
        from, or that there is none of this run's."""
        last = self._last_dir()
        kept = kept_model(last) if (last / STATE_FILE).is_file() else None
        if kept is None:
            return "no checkpoint is kept (the run had written none yet)"
        if not self._last_is_own:  # the run --force replaces
            return (
                f"no checkpoint of this run is kept ({last} still holds the replaced run's, "
                f"step {kept['step']})"
            )
        return (
            f"the previous checkpoint is kept: step {kept['step']}'s, in {last} (--resume goes "
            "on from it)"
        )

    def _say_shift(self, metrics: dict[str, Any]) -> None:
        """Warn (once per shift) when a fine-tuned model's decision threshold replaces its
        starting model's on the word of few validation patients, or at the grid's end."""
        if not self.init_info or "logit_bias" not in metrics:
            return
        bias = float(metrics.get("logit_bias") or 0.0)
        start = self.init_info.get("logit_bias")
        start_main = float(start[-1]) if start else 0.0
        n = metrics.get("n_val_with_class", metrics.get("n_val"))
        few = n is not None and n < MIN_SHIFT_PATIENTS
        edge = bias in (min(BIAS_GRID), max(BIAS_GRID))
        if abs(bias - start_main) < 1e-9 or not (few or edge):
            return
        if getattr(self, "_shift_said", None) == bias:
            return
        self._shift_said = bias
        why = [f"on {n} validation patient(s) with the class"] if few else []
        if edge:
            why.append("at the end of the shifts tried")
        log.warning(
            "the %s model's decision threshold (logit shift) is %+g, chosen %s; the starting "
            "model's was %+g. Its masks may differ from the starting model's by more than the "
            "weights do: compare with livertumor evaluate on your own patients "
            "(docs/training.md, fine-tuning, says how to keep the starting model's)",
            self.config.stage,
            bias,
            " and ".join(why),
            start_main,
            extra=IN_REPORT,
        )

    def _load_init(self, net) -> dict[str, Any]:
        """Load the trunk of the model folder ``init_from`` into ``net`` (fine-tuning)."""
        from ..models import load_model
        from ..models.factory import trunk_state_dict

        cfg = self.config
        folder = Path(cfg.init_from)
        loaded = load_model(folder, stage=cfg.stage)  # ModelError: missing, corrupt, wrong stage
        meta = loaded.metadata
        check_init_fits(cfg, loaded, folder)
        for name in ("target_spacing", "hu_window"):
            mine, theirs = tuple(getattr(cfg, name)), tuple(getattr(meta, name))
            if not np.allclose(mine, theirs):
                log.warning(
                    "init: %s of %s is %s, the recipe's is %s; fine-tuning re-learns it",
                    name,
                    folder,
                    theirs,
                    mine,
                )
        trunk = loaded.network.state_dict()
        expected = trunk_state_dict(net.state_dict(), cfg.network)
        if set(trunk) != set(expected):
            raise LiverTumorError(f"cannot start from {folder}: its weights do not fit the network")
        net.load_state_dict(trunk, strict=False)
        log.info("starting the %s model from the weights in %s", cfg.stage, folder)
        from ..provenance import file_digest

        info = {
            "folder": str(folder),
            # the files themselves: --init default names the installed package's, which a
            # later version replaces
            "weights_sha1": _digest_or_none(file_digest, folder / "model.safetensors"),
            "steps": (meta.training or {}).get("steps"),
            # its decision threshold (the main class's logit shift): validation picks the
            # fine-tuned model's own, said when that rests on few patients
            "logit_bias": None if meta.logit_bias is None else list(meta.logit_bias),
            # the starting model's validation figures (val_dice_liver, val_dice_tumor, score)
            "metrics": {
                k: v
                for k, v in (meta.metrics or {}).items()
                if (k.startswith("val_dice") or k == "score") and isinstance(v, (int, float))
            },
        }
        if meta.lesion_filter:  # a post-processing setting: kept, not silently dropped
            info["lesion_filter"] = dict(meta.lesion_filter)
            log.info(
                "the lesion filter of %s (%s) is kept for the fine-tuned model; it was chosen "
                "for the old weights (docs/training.md, fine-tuning, says how to choose it again)",
                folder,
                meta.lesion_filter,
            )
        return info

    def _load_resume(self, net, opt, state):
        torch = self.torch
        last = self._last_dir()
        if (
            not (last / STATE_FILE).is_file()
            and (self.stage_dir / ".last-old" / STATE_FILE).is_file()
        ):
            last = self.stage_dir / ".last-old"  # interrupted during the swap
        path = last / STATE_FILE
        if not path.is_file() and first_save_cut(self.stage_dir):
            # as a run killed before its first best model: started again, with its split
            log.warning(
                "resume: %s: the run was stopped while saving its first checkpoint, before any "
                "state to resume was written; starting it again from step 0 with its split",
                self.stage_dir,
            )
            return state
        if not path.is_file():
            if getattr(self, "_log_is_new", False) and not _any_run_in(self.stage_dir):
                # never run here (`--stage both` stopped in its liver stage, resumed): nothing
                # was lost, and a WARNING for the tumor stage that never began alarmed
                log.info(
                    "resume: the %s stage has not run in %s before: it starts fresh (its first "
                    "run)",
                    self.config.stage,
                    self.stage_dir,
                )
            else:  # a run began here (its train.log, a model) but left no state to go on from
                log.warning("resume: no checkpoint in %s; starting from scratch", last)
            return state
        if _unsafe_weights_only(torch.__version__):
            # a run folder from someone else is a file that can run code here: said, not refused
            # (a user's own runs resume as before on the older torch an Intel Mac must keep)
            log.warning(
                "resume: %s is read with torch %s, whose safe loader (weights_only) a crafted "
                "file can get past to run code (%s): resume only runs made by you or someone you "
                "trust, or update torch",
                path,
                torch.__version__,
                _unsafe_weights_only(torch.__version__),
            )
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(saved["weights"])
            opt.load_state_dict(saved["optimizer"])
            # the saved groups bring back the weight decay they had; the recipe's now holds (as
            # the learning rate does), so the metadata's value is the one trained with
            for group in opt.param_groups:
                group["weight_decay"] = self.config.weight_decay
            torch.set_rng_state(saved["torch_rng"])
            if saved.get("cuda_rng") is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(saved["cuda_rng"], self.device)
        except Exception as exc:
            raise LiverTumorError(f"cannot resume from {path}: {exc}") from exc
        log.info("resuming %s training from step %d", self.config.stage, saved["step"])
        self.init_info = saved.get("init_from")
        best = float(saved["best"])
        if best >= 0 and self.is_main:
            best = self._best_still_there(best)
        return {
            "step": int(saved["step"]),
            "best": best,
            "history": list(saved["history"]),
            "elapsed_s": float(saved["elapsed_s"]),
            "val_pending": bool(saved.get("val_pending", False)),
            "epoch_losses_before": [float(x) for x in saved.get("epoch_losses", [])],
        }

    def _best_still_there(self, best: float) -> float:
        """``best``, or -1 when the best model it scored is gone or cannot be loaded (a file
        cut short, edited): the next validation then saves its model in its place (a resumed
        run that never beat the old score kept the broken file and said "done")."""
        from ..models import load_model

        try:  # (building its network draws on the random state just restored: kept apart)
            with self.torch.random.fork_rng(devices=[]):
                load_model(self.stage_dir, stage=self.config.stage)
        except ModelError as exc:
            log.warning(
                "resume: the best model in %s cannot be loaded (%s); the next validation's "
                "model is saved in its place",
                self.stage_dir,
                exc,
                extra=IN_REPORT,
            )
            self._best_lost = True
            return -1.0
        return best

    def _data_summary(self, data) -> dict[str, Any]:
        cfg = self.config
        return {
            "data": str(Path(cfg.data).resolve()),
            "n_cases_found": data["n_cases"],
            "n_train": len(data["train"]),
            "n_val": len(data["val"]),
            "skipped": data["split"].get("skipped", []),
            "split": {
                k: data["split"][k]
                for k in ("train", "val", "test", "seed", "method")
                if k in data["split"]
            },
            "clinical": str(Path(cfg.clinical).resolve()) if cfg.clinical else None,
        }


# ---------------------------------------------------------------------- helpers
def _named_as_data(split: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """``split``'s lists with each ID written as the data names that patient.

    :func:`read_split` reads IDs as the clinical table reads them ('hcc-3' is HCC_003); a
    cohort whose folders are named 'hcc-3' would otherwise find none of its patients listed
    (and, resumed, send its test patients to training as new ones).
    """
    from ..io.clinical import normalise_id

    by_norm = {normalise_id(i): i for i in ids}
    for key in ("train", "val", "test"):
        split[key] = [
            c if c in ids else by_norm.get(normalise_id(c), c) for c in split.get(key) or ()
        ]
    return split


def _renamed_held_out(split: dict[str, Any], added: list[str], records) -> dict[str, tuple]:
    """``{new ID: (list, old ID)}`` of the patients ``added`` to a resumed run's data whose
    ground truth has the fingerprint the run's split records for one of its test or validation
    patients (the same kind of labels file)."""
    if not added or not records:
        return {}
    from .data import case_fingerprint

    prints = split.get("fingerprints") or {}
    layout = split.get("fingerprint_layout")
    held = {
        fp: (key, c)
        for key in ("test", "val")
        for c in split.get(key) or ()
        if (fp := prints.get(c))
    }
    if not held:
        return {}
    by_id = {r.case_id: r for r in records}
    out = {}
    for c in added:
        rec = by_id.get(c)
        if rec is None or (layout and getattr(rec, "layout", layout) != layout):
            continue
        fp = case_fingerprint(rec)
        if fp in held:
            out[c] = held[fp]
    return out


def _check_resumed_split(path, started: dict[str, Any], given: dict[str, Any]) -> None:
    """Refuse a split file that moves a patient of the run's own split to another list: a
    resumed run's test patient would have been trained on (or its training patient scored as
    unseen). New patients, in any list, are fine (a cohort grown since)."""
    where = {c: key for key in ("train", "val", "test") for c in started.get(key) or ()}
    moved = [
        f"{c} ({where[c]} → {key})"
        for key in ("train", "val", "test")
        for c in given.get(key) or ()
        if c in where and where[c] != key
    ]
    if moved:
        raise SettingsError(
            f"{path} moves {len(moved)} patient(s) of the split this run started with (last/"
            f"split.json) to another list: {', '.join(moved[:6])}{' …' if len(moved) > 6 else ''}"
            ". A resumed run keeps its test and validation patients: leave --split out, give "
            "one that keeps them, or start a new run in another folder"
        )


def resolve_split(cfg: TrainConfig, ids: list[str], records=None) -> dict[str, Any]:
    """The split file's split; for a resumed run, the split it was started with; else the
    seeded one the config describes. With ``records`` (the data's :class:`CaseRecord`), a
    resumed run's patient renamed since is known by its ground truth's fingerprint and stays
    in its list."""
    resumed = Path(cfg.stage_dir) / "last" / "split.json"
    if cfg.resume and not resumed.is_file() and first_save_cut(cfg.stage_dir):
        # killed in its first save of last/: the split its model was saved with is the run's
        resumed = Path(cfg.stage_dir) / "split.json"
    if cfg.resume and not cfg.split_file and resumed.is_file():
        # drawn again over a grown cohort, the seeded split moved patients between lists: a
        # first part's test patient trained on in the second, its training patient scored
        split = _named_as_data(read_split(resumed), ids)  # a skipped patient back in its list
        listed = set(split["train"]) | set(split["val"]) | set(split["test"])
        added = [c for c in ids if c not in listed]
        # a test or validation patient renamed since (a copy of the data under other names):
        # it was trained on as a new patient, and the model had seen its test patient
        renamed = _renamed_held_out(split, added, records)
        for new_id, (key, _old) in renamed.items():
            split[key] = [*split[key], new_id]
            added.remove(new_id)
        if renamed:
            log.warning(
                "resume: %d patient(s) new by name are the run's %s by their ground truth "
                "(renamed since): kept there, not trained on: %s",
                len(renamed),
                " and ".join(sorted({k for k, _ in renamed.values()})) + " patient(s)",
                ", ".join(f"{n} (was {o}, {k})" for n, (k, o) in list(renamed.items())[:6]),
            )
        if not (listed & set(ids)) and not renamed:
            raise SettingsError(
                f"none of the {len(listed)} patients of the split this run started with "
                f"(last/split.json) is in {cfg.data}: a resumed run goes on with the data it "
                "started with. For other data start a new run in another folder (--init "
                f"{cfg.stage_dir} fine-tunes this run's model on it; in the Train panel, Start "
                "from: a model folder (fine-tune)… with that folder)"
            )
        gone = sorted(listed - set(ids))
        if added:
            split["train"] = list(split["train"]) + added
            log.warning(
                "resume: %d patient(s) new since the run started go to training (the test and "
                "validation patients stay as they were): %s",
                len(added),
                ", ".join(added[:8]) + (" …" if len(added) > 8 else ""),
            )
        if gone:
            log.warning(
                "resume: %d patient(s) of the run's split are no longer in the data: %s",
                len(gone),
                ", ".join(gone[:8]) + (" …" if len(gone) > 8 else ""),
            )
        return split
    if cfg.split_file:
        split = _named_as_data(read_split(cfg.split_file), ids)
        if cfg.resume and resumed.is_file():
            started = _named_as_data(read_split(resumed), ids)
            _check_resumed_split(cfg.split_file, started, split)
            # a held-out patient renamed since, put in another list by the file given
            listed = set(started["train"]) | set(started["val"]) | set(started["test"])
            renamed = _renamed_held_out(started, [c for c in ids if c not in listed], records)
            moved = [
                f"{new} (the run's {key} patient {old} by its ground truth) in {other}"
                for new, (key, old) in renamed.items()
                for other in ("train", "val", "test")
                if other != key and new in (split.get(other) or ())
            ]
            if moved:
                raise SettingsError(
                    f"{cfg.split_file} puts patients of the split this run started with, "
                    f"renamed since, in another list: {', '.join(moved[:4])}. A resumed run "
                    "keeps its test and validation patients: give a split that keeps them, or "
                    "start a new run in another folder"
                )
        for key in ("train", "val", "test"):
            unknown = [c for c in split[key] if c not in ids]
            if unknown:
                log.warning(
                    "%s: its %s list names %d patient(s) not in the data: %s",
                    cfg.split_file,
                    key,
                    len(unknown),
                    ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else ""),
                )
        if not any(c in ids for c in split["train"]):
            raise InputError(
                cfg.split_file,
                f"no patient of its train list is in the data ({cfg.data}; e.g. "
                f"{', '.join(sorted(ids)[:3])})",
            )
        listed = set(split["train"]) | set(split["val"]) | set(split["test"])
        left = [c for c in ids if c not in listed]
        if left:
            log.warning(
                "%d patient(s) of the data are in no list of %s: not used (%s)",
                len(left),
                cfg.split_file,
                ", ".join(left[:5]) + (" …" if len(left) > 5 else ""),
            )
        return split
    _check_folds_fit(cfg, len(set(ids)))
    return make_split(
        ids,
        cfg.seed,
        test_fraction=cfg.test_fraction,
        val_fraction=cfg.val_fraction,
        folds=cfg.folds,
        fold=cfg.fold,
    )


def warm_cache(configs: list[TrainConfig], progress=None) -> list[tuple[str, str]]:
    """Preprocess every training/validation case for all ``configs`` reading each source once.

    Training both stages otherwise reads every CT twice (once per stage). Returns skipped cases.
    ``progress(done, total, case_id)`` as in :func:`~.data.load_or_prepare`.
    """
    cfg = configs[0]
    records = index_cases(cfg.data)
    split = resolve_split(cfg, [r.case_id for r in records], records)
    wanted = set(split["train"]) | set(split["val"])
    cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out) / ".cache"
    _, skipped = load_or_prepare(
        [r for r in records if r.case_id in wanted],
        [preprocess_params(c) for c in configs],
        cache,
        progress=progress,
    )
    return skipped


#: shifts of the stage's main class logit tried on the validation patients (0 = plain argmax)
#: (up to +3: the shipped tumor model's calibrated shift is +2, beyond the +1 this stopped at)
BIAS_GRID = (0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def validate(net, cases, config, device, should_cancel=None) -> dict[str, Any]:
    """Dice per class on whole validation cases at the stage grid (sliding window).

    The stage's main class (liver, or tumor) is also scored with its logit shifted by each of
    :data:`BIAS_GRID`; ``score`` and ``val_dice_<class>`` are those at the shift with the best mean
    Dice (``logit_bias``; ties go to the smaller shift), ``val_dice_<class>_unshifted`` at 0.
    Class weights and foreground-heavy sampling move a network's class boundary; this picks it
    back on patients the network did not train on, and inference applies it from
    ``metadata.json``.

    The windows are the ones inference uses by default (:class:`~napari_livertumor.pipeline.
    InferenceConfig` ``window_growth`` for the liver, ``tumor_window_growth`` for the tumor,
    logits of several sizes averaged), capped at 256 voxels per axis: the best shift depends on
    the window a network sees (measured on the shipped liver model: -4 with the trained size,
    -2 through the pipeline's grown windows).

    ``should_cancel()`` is asked before each window (and each shifted score), not only between
    patients: with the one validation patient of a small cohort, a Stop, a close of napari or
    the panel waited for the whole validation (20-33 s, where a step took 0.17 s). A stop raises
    :class:`Cancelled`, which the run remembers (``val_pending``) and redoes on resume.
    """
    import torch
    from monai.inferers import sliding_window_inference

    from ..pipeline import InferenceConfig, _as_growths, window_size

    net_was_training = net.training
    net.eval()
    f = config.network.downsample_factor
    defaults = InferenceConfig()
    growths = _as_growths(
        defaults.tumor_window_growth if config.stage == "tumor" else defaults.window_growth
    )
    fg = config.n_classes - 1
    names = {1: "liver", 2: "tumor"}
    # per_bias[b][c]: Dice of class c on each case with the main class shifted by b
    per_bias: dict[float, dict[int, list[float]]] = {
        b: {c: [] for c in range(1, config.n_classes)} for b in BIAS_GRID
    }
    with_class = 0  # validation patients that have the main class at all

    def check() -> None:
        if should_cancel is not None and should_cancel():
            raise Cancelled("validation stopped")

    def predictor(t):
        check()  # before each window (sw_batch_size 1): a stop waits for one window at most
        return net(t)[0]

    with torch.no_grad():
        for case in cases:
            check()
            with_class += bool((case.labels == fg).any())
            x = torch.from_numpy(case.image.astype(np.float32))[None, None].to(device)
            rois = dict.fromkeys(
                tuple(min(v, 256) for v in window_size(config.roi_size, x.shape[2:], f, g))
                for g in growths
            )
            logits = sum(
                sliding_window_inference(
                    x, roi, 1, predictor, overlap=config.val_overlap, mode="gaussian"
                )[0]
                for roi in rois
            ) / len(rois)
            for b in BIAS_GRID:
                check()  # (13 argmaxes of a whole patient: seconds on a large one)
                shifted = logits.clone()
                shifted[fg] += b
                pred = shifted.argmax(0).cpu().numpy()
                for c in per_bias[b]:
                    g, p = case.labels == c, pred == c
                    if config.stage == "tumor" and c == 1:
                        g, p = case.labels >= 1, pred >= 1  # whole liver incl. tumor
                    denom = g.sum() + p.sum()
                    if denom:
                        per_bias[b][c].append(2 * float((g & p).sum()) / denom)
    net.train(net_was_training)

    def mean(v):
        return float(np.mean(v)) if v else None

    best = 0.0
    for b in sorted(BIAS_GRID, key=abs):
        m, m_best = mean(per_bias[b][fg]), mean(per_bias[best][fg])
        if m is not None and (m_best is None or m > m_best + 1e-9):
            best = b
    scores: dict[str, Any] = {f"val_dice_{names[c]}": mean(v) for c, v in per_bias[best].items()}
    scores[f"val_dice_{names[fg]}_unshifted"] = mean(per_bias[0.0][fg])
    scores["logit_bias"] = best
    main = scores[f"val_dice_{names[fg]}"]
    scores["score"] = main if main is not None else 0.0
    scores["n_val"] = len(cases)
    # 0: the score above is no measurement (no patient has the class; ties keep the latest)
    scores["n_val_with_class"] = with_class
    return scores


def _measured_score(scores: dict[str, Any] | None) -> float | None:
    """The validation Dice to show: None when not validated, or when no validation patient
    has the stage's class (the score is then 0 by convention, not a measurement)."""
    if not scores or scores.get("n_val_with_class") == 0:
        return None
    return scores.get("score")


def _any_run_in(stage_dir: Path) -> bool:
    """Whether a run has left anything of its own in ``stage_dir`` (a model, a checkpoint or
    one being written), its ``train.log`` aside."""
    names = ("model.safetensors", "metadata.json", "last", ".last-old", ".last-new", BEST_NEW)
    return any((stage_dir / name).exists() for name in names)


def kept_model(stage_dir: str | Path) -> dict[str, Any] | None:
    """Which weights the model in ``stage_dir`` is, from its ``metadata.json``: ``{"step",
    "epoch" (from 0, as stored; said from 1), "val_dice" (None when not measured), "validated"}``; None when there is
    no readable model record."""
    import json

    try:
        meta = json.loads((Path(stage_dir) / "metadata.json").read_text(encoding="utf-8"))
        training = meta.get("training") or {}
        metrics = meta.get("metrics") or {}
        step = int(training["steps"])
        per_epoch = int((training.get("config") or {})["steps_per_epoch"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    validated = "final weights" not in str(metrics.get("note", ""))
    score = metrics.get("score")
    measured = validated and metrics.get("n_val_with_class") != 0 and score is not None
    return {
        "step": step,
        "epoch": max(0, step - 1) // max(1, per_epoch),
        "val_dice": float(score) if measured else None,
        "validated": validated,
    }


def kept_model_text(kept: dict[str, Any]) -> str:
    """``kept`` (:func:`kept_model`) as the run's lines say it (the command's done line,
    ``train.log``, the Train panel), its epoch counted from 1 as every line a user reads
    (:func:`~.cli_report.epoch_said`): train.log said "epoch 2" of a 3-epoch run's last
    epoch, which the panel called "epoch 3"."""
    from .cli_report import epoch_said

    where = f"step {kept['step']} (epoch {epoch_said(kept['epoch'])})"
    if kept.get("val_dice") is not None:
        return f"{where}, validation Dice {kept['val_dice']:.3f}"
    if kept.get("validated"):
        return f"{where}, validation Dice not measured (no validation patient has the class)"
    return f"{where}, the final weights (not validated)"


def _validated_model_in(stage_dir: Path) -> bool:
    """Whether the folder's model was saved by a validation (not as a run's final weights)."""
    import json

    try:
        meta = json.loads((stage_dir / "metadata.json").read_text(encoding="utf-8"))
        metrics = meta.get("metrics") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return (stage_dir / "model.safetensors").is_file() and "final weights" not in str(
        metrics.get("note", "")
    )


def _validation_without_the_class(cases, config) -> str | None:
    """What to tell the user when no validation patient has the stage's main class."""
    if not cases:
        return None
    fg = config.n_classes - 1
    if any(bool((case.labels == fg).any()) for case in cases):
        return None
    name = "tumor" if config.stage == "tumor" else "liver"
    return (
        f"none of the {len(cases)} validation patients has a {name}: validation cannot measure "
        f"the {name} Dice, so the model kept is the last weights, not the best validated; "
        f"give a split with {name} patients in validation (--split; the Train panel draws "
        f"its own split, so give it more patients with a {name})"
    )


#: the run's log in its stage folder (warnings, start and end), appended run after run
RUN_LOG = "train.log"


class _RunRecords(logging.Filter):
    """Passes the records a run's own work logs: those of a thread while it runs the run's
    generator (from a resume to the next report) or a thread the run started (its data
    preparation). A generator waits between reports in its caller's thread: a notebook's
    segmentation then, or with a run left open (a ``break`` without closing it), logged into
    that run's ``train.log``."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        import threading

        ident = threading.get_ident()
        entered = ident not in self.threads
        self.threads.add(ident)
        try:
            yield
        finally:
            if entered:
                self.threads.discard(ident)

    def filter(self, record: logging.LogRecord) -> bool:
        import threading

        # (no thread in the record with logging.logThreads off: a handler's filters run in
        # the thread that logs)
        thread = record.thread if record.thread is not None else threading.get_ident()
        return thread in self.threads


class _StderrNow(logging.StreamHandler):
    """Prints on the ``sys.stderr`` of the moment, as Python's last resort does (a notebook
    replaces it per cell)."""

    def __init__(self, level: int) -> None:
        logging.Handler.__init__(self, level)

    @property
    def stream(self):  # type: ignore[override]
        import sys

        return sys.stderr


def _only_the_last_resort_listens() -> bool:
    """Whether a warning of this package would reach no handler but Python's last resort (no
    logging configured: no handler on the root logger or the package's loggers)."""
    if logging.lastResort is None or logging.getLogger().handlers:
        return False
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (name == "napari_livertumor" or name.startswith("napari_livertumor.")) and getattr(
            logger, "handlers", None
        ):
            return False
    return True


#: a fine-tuned model's shift chosen on fewer validation patients (with the class) is said
MIN_SHIFT_PATIENTS = 3


def _unsafe_weights_only(version: str) -> str:
    """The advisories under which ``torch.load(..., weights_only=True)`` of this torch version
    can be made to run code by a crafted file, or "" (the resume state is the only file the
    package reads with torch.load): CVE-2025-32434 (torch before 2.6), CVE-2026-24747 (its
    unpickler corrupting memory: before 2.10)."""
    import re

    m = re.match(r"(\d+)\.(\d+)", version)
    if m is None:
        return ""
    v = (int(m[1]), int(m[2]))
    advisories = (("CVE-2025-32434", (2, 6)), ("CVE-2026-24747", (2, 10)))
    return "; ".join(
        f"{cve}, fixed in torch {fixed[0]}.{fixed[1]}" for cve, fixed in advisories if v < fixed
    )


def _digest_or_none(digest, path: Path) -> str | None:
    try:
        return digest(path)
    except OSError:
        return None


def _bias_vector(n_classes: int, bias: float | None) -> tuple[float, ...] | None:
    """Per-channel logit shifts with ``bias`` on the stage's main (last) class; None if 0."""
    if not bias:
        return None
    return tuple([0.0] * (n_classes - 1) + [float(bias)])


def weights_digest(net) -> str:
    """SHA-1 of all parameters and buffers (ranks in sync have the same digest)."""
    import hashlib

    h = hashlib.sha1()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def lr_at(
    step: int, total: int, base: float, warmup: int, *, time_frac: float | None = None
) -> float:
    """Linear warm-up, then cosine decay to 1 % of ``base``.

    With a wall-time cap, progress is the larger of the step fraction and ``time_frac`` (the
    fraction of the time budget used), so a run stopped by the clock still ends at a low rate.
    """
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    if time_frac is not None:
        t = max(t, time_frac)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


#: voxels per batch above which a recipe is meant for a GPU (the CPU recipes use ~0.6-0.8 M, the
#: HCC-TACE-Seg GPU one 9.4 M)
_GPU_SIZED = 2_000_000


def resolve_device(device: str):
    """``auto`` → CUDA when available (the local rank's GPU under torchrun), else CPU."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        check_device(device)
        if device == "cuda":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(torch.device(device))
    return torch.device(device)


def seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _optimizer(net, cfg):
    import torch

    if cfg.optimizer == "adam":
        return torch.optim.Adam(
            net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, amsgrad=True
        )
    return torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


class PlanSampler:
    """The items of the epoch now running: ``(case index, sample seed)`` pairs, set per epoch.

    The data loader is made once with this as its sampler, so its worker processes live for
    the whole run. Made anew each epoch (as it was), the loader started new workers every
    epoch, and under the ``spawn`` start method (Windows, macOS) each was sent the whole
    training set again: 1.8 GB per worker on 40 patients at the GPU recipe's grid.
    """

    def __init__(self) -> None:
        self.plan: list[tuple[int, int]] = []

    def __iter__(self):
        return iter(list(self.plan))

    def __len__(self) -> int:
        return len(self.plan)


def _loader(dataset, cfg, sampler: PlanSampler):
    import torch
    from torch.utils.data import DataLoader

    # a GPU recipe's workers on a small machine: no more worker processes than cores (PyTorch
    # warns, and they only compete); the patches drawn do not depend on the number of workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(int(cfg.num_workers), max(1, (cores or 1) - 1)) if cfg.num_workers else 0
    if workers != cfg.num_workers:
        log.info("data loader: %d worker processes (the recipe asks %d; %s cores here)",
                 workers, cfg.num_workers, cores)  # fmt: skip
    # a private generator: creating the loader must not advance the global RNG (dropout), or a
    # resumed run would drift from the uninterrupted one
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=False,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
        worker_init_fn=_worker_ignores_stops if workers else None,
    )


def _worker_ignores_stops(_worker_id: int) -> None:
    """A data-loader worker leaves SIGTERM and SIGINT to the main process: a scheduler's (or
    ``timeout``'s) SIGTERM to the whole process group killed the workers, and the main
    process's save of ``last/`` then failed on them. (Module-level: picklable for the spawn
    start method. The workers still end with the main process: PyTorch's watchdog.)"""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _write_failure(path: Path, exc: BaseException) -> str:
    """Why torch's writer failed on ``path``, in words where they can be found: it says a full
    disk as "[enforce fail at inline_container.cc:672] . unexpected pos 8819264 vs 8819156"
    (its own error, no errno), so the folder's free space and the file size limit are looked
    at; ``exc``'s text when neither explains it."""
    try:
        written = path.stat().st_size
    except OSError:
        written = 0
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, ValueError, OSError):  # no such limit (Windows)
        limit = None
    if limit is not None and limit != resource.RLIM_INFINITY and written >= limit - 65536:
        return (
            f"File too large: files are limited to {limit / 1e6:.0f} MB here (ulimit -f), "
            f"and {STATE_FILE} is larger"
        )
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return str(exc)
    # little room left: the write ran out of it (another failure, a value torch cannot save,
    # leaves the disk as it was and is said in torch's words). No figure: read while the part
    # written is there, it is not what is free once it is removed (the caller says that)
    if free < _FULL_DISK_BYTES:
        return "No space left on device"
    return str(exc)


def _release_frames(exc: BaseException, handled: BaseException | None) -> None:
    """Let go of what the finished frames of ``exc`` and the errors it chains down to
    ``handled`` (the one being handled before the call that raised ``exc``, left as it is)
    hold: torch's writer, with its file still open."""
    import traceback

    seen: BaseException | None = exc
    for _ in range(8):  # (a chain of causes, never a loop)
        if seen is None or seen is handled:
            break
        traceback.clear_frames(seen.__traceback__)  # (a frame still running is passed over)
        seen = seen.__cause__ or seen.__context__


def _disk_full(exc: BaseException) -> bool:
    """Whether a failed save ran out of room: ENOSPC, or torch's writer said so by
    :func:`_write_failure` (its own error carries no errno)."""
    seen: BaseException | None = exc
    for _ in range(8):  # (a chain of causes, never a loop)
        if seen is None:
            break
        if getattr(seen, "errno", None) == errno.ENOSPC or "No space left on device" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _bytes_text(n: float) -> str:
    """A size in words: ``1.5 GB``, ``120.0 MB``, ``40.3 kB``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


#: free space under which a failed write of torch's is said to have found the disk full
_FULL_DISK_BYTES = 64 * 2**20
