"""``livertumor train``: train the liver and/or tumor model (optionally on N processes, DDP)."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from ..devices import DEVICE_HELP, device_arg

log = logging.getLogger(__name__)


#: the built-in defaults, said in --help (importing the training package to read them would
#: slow every command's start; tests check they are the configuration's)
HELP_DEFAULTS = {
    "epochs": 10,
    "steps_per_epoch": 50,
    "lr": 0.002,
    "batch_size": 2,
    "weak_lambda": 0.5,
    "weak_form": "interval",
    "weak_anchor": "patch",
    "seed": 0,
}


def add_arguments(parser) -> None:
    def default(field: str) -> str:
        return f"default {HELP_DEFAULTS[field]}"

    parser.add_argument(
        "--data", required=True, help="training data folder (NIfTI or HCC-TACE-Seg layout)"
    )
    parser.add_argument("--clinical", help="clinical table (XLSX/CSV; default: the one in --data)")
    parser.add_argument(
        "--out", help="output folder; models go to OUT/liver, OUT/tumor (required to train)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only say what --data holds (patients, labels, the clinical table's rows and "
        "columns, patients left out and why), as the Train panel's Check data; trains nothing",
    )
    parser.add_argument(
        "--stage",
        choices=("liver", "tumor", "both"),
        default="both",
        help="the model(s) to train (default both: liver, then tumor)",
    )
    parser.add_argument(
        "--config",
        help="recipe JSON (sections common/liver/tumor), or a built-in recipe's name: "
        "default_cpu, hcc_tace_gpu, … (without it: built-in defaults)",
    )
    parser.add_argument("--epochs", type=int, help=f"epochs per stage ({default('epochs')})")
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        help=f"training steps per epoch ({default('steps_per_epoch')})",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        help="time cap per stage, for the whole run (a resumed run counts its earlier "
        "parts): the minutes of training and validation, not the start-up and data "
        "preparation before the first step; stops cleanly after the step under way, and the "
        "final validation runs on top of it",
    )
    parser.add_argument("--lr", type=float, help=f"peak learning rate ({default('lr')})")
    parser.add_argument(
        "--batch-size", type=int, help=f"patches per training step ({default('batch_size')})"
    )
    parser.add_argument(
        "--weak-lambda",
        type=float,
        help=f"weight of the clinical weak term (tumor stage; default {HELP_DEFAULTS['weak_lambda']})",
    )
    parser.add_argument(
        "--weak-form",
        choices=("mse", "interval"),
        help="clinical weak term: squared error to the tumor-to-liver ratio the table gives "
        "(mse, the original's), or zero within a margin of it and quadratic outside (interval; "
        f"default {HELP_DEFAULTS['weak_form']})",
    )
    parser.add_argument(
        "--weak-anchor",
        choices=("patch", "patient"),
        help="what each patch's tumor ratio is held to: the weak label moved by how far the "
        "patch's own true ratio lies from its patient's (patch), or the weak label itself "
        f"(patient: how runs before 4 Dec 2026 trained; default {HELP_DEFAULTS['weak_anchor']})",
    )
    parser.add_argument(
        "--split", help="split JSON (train/val/test patient IDs); default: seeded 80/20"
    )
    parser.add_argument("--folds", type=int, help="k-fold split instead of 80/20")
    parser.add_argument("--fold", type=int, help="test fold for --folds")
    parser.add_argument(
        "--seed",
        type=int,
        help=f"seed of the split, patch sampling and initial weights ({default('seed')}; with "
        "--init and no --config, the model's own)",
    )
    parser.add_argument("--device", type=device_arg, help=DEVICE_HELP)
    parser.add_argument("--cache-dir", help="preprocessing cache (default OUT/.cache)")
    again = parser.add_mutually_exclusive_group()  # continue, or start over: not both
    again.add_argument("--resume", action="store_true", help="continue from OUT/<stage>/last")
    again.add_argument(
        "--force",
        action="store_true",
        help="replace a model already in OUT/<stage> (without it, or --resume, training there "
        "is refused)",
    )
    parser.add_argument(
        "--init",
        metavar="MODEL_DIR",
        help="fine-tune: start from this model folder's weights ('default': the models that "
        "ship with the plugin; a folder holding liver/ and tumor/ gives each stage its own; "
        "without --config, the model's own training recipe is used)",
    )
    parser.add_argument(
        "--ddp", type=int, default=0, metavar="N", help="run N processes with torchrun (DDP)"
    )


def build_configs(args) -> list:
    """One :class:`TrainConfig` per requested stage, from the recipe and the command line."""
    from ..models import default_model_dir
    from ..models.checkpoint import stage_model_folder
    from ..training.config import load_recipe, make_config, recipe_from_model

    recipe = load_recipe(args.config) if args.config else {}
    if args.folds and args.fold is None and "fold" not in recipe:
        from ..errors import SettingsError

        # said, not defaulted to 0: a job array that forgot it trained fold 0 K times
        raise SettingsError(
            f"--folds {args.folds} needs --fold I (0..{args.folds - 1}): the fold this run "
            "holds out as its test patients (one run per fold)"
        )
    overrides = dict(
        data=args.data,
        out=args.out,
        clinical=args.clinical,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        max_minutes=args.max_minutes,
        lr=args.lr,
        batch_size=args.batch_size,
        weak_lambda=args.weak_lambda,
        weak_form=args.weak_form,
        weak_anchor=args.weak_anchor,
        split_file=args.split,
        folds=args.folds,
        fold=args.fold,
        seed=args.seed,
        device=args.device,
        cache_dir=args.cache_dir,
        resume=True if args.resume else None,
        overwrite=True if args.force else None,
    )
    stages = ("liver", "tumor") if args.stage == "both" else (args.stage,)
    configs = []
    for s in stages:
        init = getattr(args, "init", None)
        if init == "default" and not Path(init).exists():  # the installed models
            init = str(default_model_dir(s))
        elif init and len(stages) > 1:
            if (Path(init) / "metadata.json").is_file() and not (Path(init) / s).is_dir():
                from ..errors import InputError

                raise InputError(
                    init,
                    "is one model; --stage both starts from a folder holding liver/ and "
                    "tumor/ (or give --stage liver or tumor with this model)",
                )
            init = str(Path(init) / s)
        elif init:  # a run's folder (liver/, tumor/) given for one stage: its stage's model
            init = str(stage_model_folder(init, s))
        if init:  # recorded as a full path: a relative one meant nothing from another folder
            init = os.path.abspath(init)
        # fine-tuning without a recipe: the model's own recipe, so its weights fit the network
        stage_recipe = recipe_from_model(init, s) if init and not args.config else recipe
        # the clinical table is the tumor stage's weak supervision: the liver never reads it
        # (and its metadata must not say it was used)
        cfg = make_config(s, stage_recipe, init_from=init, **overrides)
        if cfg.resume and not args.config:
            cfg = _as_the_run_was(cfg, s, overrides, init)
        if cfg.resume and args.weak_anchor is None and s == "tumor":
            from ..training.loop import run_weak_anchor

            anchor = run_weak_anchor(cfg.stage_dir)  # the run's own, as the Train panel does
            if anchor is not None and anchor != cfg.weak_anchor:
                cfg = cfg.with_updates(weak_anchor=anchor)
        if (
            cfg.resume
            and s == "tumor"
            and not any("weak_log_columns" in recipe.get(k, {}) for k in ("common", "tumor"))
        ):
            from ..training.loop import saved_training_config

            # the run's own form of its weak labels (before 7 Dec 2026: AFP as it is), unless
            # the recipe given says which
            was = (saved_training_config(cfg.stage_dir) or {}).get("weak_log_columns")
            if isinstance(was, list) and tuple(was) != cfg.weak_log_columns:
                cfg = cfg.with_updates(weak_log_columns=tuple(was))
        if (
            s == "tumor"
            and args.config
            and args.weak_anchor is None
            and not cfg.resume
            and cfg.weak_lambda > 0
            and not any("weak_anchor" in recipe.get(k, {}) for k in ("common", "tumor"))
        ):
            # a recipe written before the field (4 Dec 2026) trained 'patient' then, 'patch'
            # now: a fold or ablation added mid-project trained another loss, unsaid
            logging.getLogger("livertumor.train").warning(
                "%s sets no weak_anchor: the clinical weak term, where it runs, takes the "
                "default, 'patch' "
                "(each patch's label moved by its own true ratio); runs before 4 Dec 2026 "
                "trained 'patient'. Set \"weak_anchor\" in the recipe's tumor section (or give "
                "--weak-anchor) to choose, and this is not said again",
                args.config,
            )
        if s == "liver" and cfg.clinical:  # also one a recipe file names
            import dataclasses

            cfg = dataclasses.replace(cfg, clinical=None)
        configs.append(cfg)
    if len(configs) == 2:
        _warn_split_differs(*configs)
    return configs


#: a stopped run's settings not taken over by a resume from the command line: this session's
#: (its time budget: a cap carried over trained nothing) or decided by the command itself
_NOT_RESUMED = frozenset({"max_minutes", "resume", "overwrite", "stage", "data", "out", "device"})


def _as_the_run_was(cfg, stage: str, overrides: dict, init):
    """``cfg`` for ``--resume`` without ``--config``: the stopped run's own settings (its
    recipe, batch, losses, augmentation, epochs, learning rate…), with what the command line
    gives on top, as the Train panel's Resume takes them. The defaults had been used for all
    but the recipe: a run made with a recipe file of batch 1 and 2 epochs went on at batch 2
    for 10 epochs, unsaid. A value given that differs from the run's recipe (--seed, --folds,
    --fold) is refused when the run is checked, as before."""
    import logging

    from ..training.config import make_config
    from ..training.loop import recipe_differences, saved_recipe, saved_training_config

    full = saved_training_config(cfg.stage_dir)
    if not full:
        return cfg  # nothing recorded: said when the run is checked
    section = {k: v for k, v in full.items() if k not in _NOT_RESUMED}
    try:
        resumed = make_config(stage, {stage: section}, init_from=init, **overrides)
    except Exception as exc:  # noqa: BLE001 - an earlier version's record: its recipe only
        logging.getLogger("livertumor.train").warning(
            "%s: the run's recorded settings could not be used (%s); the defaults and the "
            "command line's are, and a recipe other than the run's is refused",
            stage,
            exc,
        )
        return cfg
    given = {k for k, v in overrides.items() if v is not None}
    saved = saved_recipe(cfg.stage_dir) or {}
    refused = [k for k in saved if k in given and recipe_differences(resumed, {k: saved[k]})]
    changed = [
        k
        for k in sorted(section)
        if k not in given and _plain(getattr(cfg, k, None)) != _plain(getattr(resumed, k, None))
    ]
    if changed and not refused:  # (a refusal follows otherwise: no "resuming" before it)
        logging.getLogger("livertumor.train").warning(
            "%s: resuming with the run's own settings, not the defaults (%s); the command "
            "line's own options on top",
            stage,
            ", ".join(changed[:12]) + (", …" if len(changed) > 12 else ""),
        )
    return resumed


def _plain(value):
    """``value`` with its lists as tuples, for comparing a setting read back from a run's
    JSON record (a list, [10.0, 40.0]) with the default (a tuple, (10.0, 40.0)): they differed,
    and every resume warned of a setting it had not changed (aug_field_mm)."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


#: what decides a run's split: the two stages differing in one of them split the patients
#: differently, and the liver model trains on the tumor stage's test patients
_SPLIT_FIELDS = ("seed", "split_file", "folds", "fold", "test_fraction", "val_fraction")


def _warn_split_differs(liver, tumor) -> None:
    differ = [f for f in _SPLIT_FIELDS if getattr(liver, f) != getattr(tumor, f)]
    if differ:
        import logging

        logging.getLogger("livertumor.train").warning(
            "the liver and tumor stages are split differently (%s differ between the recipe's "
            "sections): each stage's test patients may be the other's training patients, and "
            "evaluate will say so; set them in the recipe's 'common' section to share one split",
            ", ".join(differ),
        )


def _check_settings(args):
    """The weak term's λ, the clinical table and the config (the tumor stage's, else the
    liver's) a training run of ``args`` would use, for ``--check``: as training resolves them
    (the command line, else the recipe, ``--config`` or the model ``--init`` starts from, else
    the stage's default). A liver-only run reads no table (λ 0); its split is still counted.
    Settings training would refuse (``--folds`` without ``--fold``) are refused here too."""
    configs = build_configs(args)
    tumor = [cfg for cfg in configs if cfg.stage == "tumor"]
    if tumor:
        return tumor[0].weak_lambda, tumor[0].clinical, tumor[0]
    return 0.0, args.clinical, configs[0]


def run(args) -> int:
    from ..training.data import skips_warned_once
    from ..training.loop import (
        check_before_writing,
        check_folds,
        check_run_paths,
        check_weak_table,
    )

    if args.check:  # before hours of training: what the folder holds, and who is left out
        from ..training.check import summarize_data

        weak_lambda, clinical, config = _check_settings(args)
        problems: list[str] = []
        lines = summarize_data(
            args.data, clinical, problems=problems, weak_lambda=weak_lambda, config=config
        )
        print("\n".join(lines))
        # a table training would not read (liver only, or λ 0) fails no check
        return 1 if problems and weak_lambda > 0 else 0
    if not args.out:  # (not an argparse requirement: --check needs no output folder)
        print(
            "livertumor train: error: the following arguments are required: --out "
            "(or --check, to only check the data)",
            file=sys.stderr,
        )
        return 2

    if args.ddp and args.ddp > 0 and sys.platform == "win32":  # before anything is read
        from ..errors import SettingsError

        raise SettingsError(
            "--ddp needs Linux: PyTorch's Windows builds have neither NCCL nor the rendezvous "
            "torchrun uses. Train on one GPU (leave --ddp out)."
        )
    if args.clinical:  # a wrong path stops the command before anything starts, any stage
        from ..errors import InputError

        table = Path(args.clinical)
        if not table.is_file():
            raise InputError(
                table, "clinical table not found" if not table.exists() else "not a file"
            )
        if args.stage == "liver":
            print(
                "livertumor train: note: --clinical is not used by the liver stage (the clinical "
                "weak term is the tumor stage's)",
                file=sys.stderr,
            )
    configs = build_configs(args)
    with skips_warned_once():  # a patient skipped by the checks is not warned of again
        for cfg in configs:  # Windows' path limit: the cache's and the model's files at once
            check_run_paths(cfg)
        for cfg in configs:  # both stages are checked before either starts
            check_before_writing(cfg)
        for cfg in configs:  # the tumor stage's clinical table too: not after the liver trained
            check_weak_table(cfg)
        for cfg in configs:  # --folds K on fewer than K patients: before any is prepared
            check_folds(cfg)
        if args.ddp and args.ddp > 0:
            from ..training.distributed import QUIET_ENV, launch_torchrun

            quiet = bool(getattr(args, "quiet", False))  # (-q reaches each process)
            return launch_torchrun(configs, args.ddp, extra_env={QUIET_ENV: "1"} if quiet else None)
        # -q: the results and warnings, no line per step or patient (a batch job's log)
        return _train_here(configs, quiet=bool(getattr(args, "quiet", False)))


def _print_preparing(done: int, total: int, case: str | None) -> None:
    """Every 10th patient of the preprocessing, and its end (a CT takes seconds to read)."""
    if case is None:
        print(f"   {total} training/validation patient(s) read (any left out are said)", flush=True)
    elif done % 10 == 0:
        print(f"   preparing training/validation patient {done + 1}/{total} ({case})", flush=True)


def _train_here(configs, *, quiet: bool = False) -> int:
    from ..errors import LiverTumorError
    from ..signals import sigterm_as_interrupt
    from ..training.cli_report import print_reports
    from ..training.loop import train, warm_cache

    with sigterm_as_interrupt():
        if len(configs) > 1:
            if not quiet:
                print("== preprocessing (each CT is read once for both stages)", flush=True)
            warm_cache(configs, progress=None if quiet else _print_preparing)
        done: list = []
        for cfg in configs:
            if not quiet:
                print(f"== training the {cfg.stage} model -> {cfg.stage_dir}", flush=True)
            started = time.time()
            try:
                print_reports(train(cfg), sys.stdout, quiet=quiet)
                done.append(cfg)
            except LiverTumorError:
                for d in done:  # what is kept, and how to go on without redoing it
                    print(
                        f"== the {d.stage} model is saved in {d.stage_dir}; once the problem "
                        f"below is fixed, --stage {cfg.stage} trains the {cfg.stage} model alone",
                        file=sys.stderr,
                        flush=True,
                    )
                raise
            except KeyboardInterrupt:
                last = Path(cfg.stage_dir) / "last"
                state = last / "train_state.pt"
                # this run's state, or the one it resumed; not a run --force is replacing
                ours = state.is_file() and (cfg.resume or state.stat().st_mtime >= started)
                print(
                    f"== stopped: the {cfg.stage} run's state is in {last}; the same command "
                    + (
                        "with --resume in place of --force continues it"
                        if cfg.overwrite
                        else "with --resume continues it"
                    )
                    if ours
                    else f"== stopped before the {cfg.stage} run saved anything (while preparing "
                    "the data); the same command starts it again",
                    file=sys.stderr,
                    flush=True,
                )
                raise
    return 0
