"""Pick each model's logit shift with the whole pipeline on development phantoms.

    python scripts/calibrate_shift.py --models runs/mine --cases 10 [--write]

Development phantoms are ``full`` phantoms from their own seed range (default 9 000 000 on),
disjoint from the training cohort (checked against its ``synth_manifest.json``; a warning, and a
note in what is written, when none is found) and from the accuracy benchmark's fresh
(7 000 000) and shifted (8 000 000) seeds. They are cached as ``.npz`` in ``--cache`` so a
rerun does not draw them again.

The liver's shift is chosen first (liver Dice); the tumor's is then chosen behind the liver
with its new shift (tumor Dice). ``--write`` stores each shift in the model's
``metadata.json`` (``logit_bias``, and the scores under ``metrics.pipeline_calibration``);
without it nothing is written. See :mod:`napari_livertumor.training.calibrate`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

BENCHMARK_RANGES = ((7_000_000, 7_100_000), (8_000_000, 8_100_000))
#: foreign phantoms for calibration: the benchmark's generator, not its seeds (5 100 000 on)
FOREIGN_BASE = 5_200_000


def main(argv=None) -> int:
    from napari_livertumor.pipeline import InferenceConfig, Segmenter
    from napari_livertumor.training.calibrate import (
        SHIFT_GRID,
        best_shift,
        bias_with,
        score_shifts,
        without_nan,
        write_shift,
    )

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dev_arguments(
        ap,
        cases=10,
        manifests=["data/synth2/synth_manifest.json", "data/synth3/synth_manifest.json"],
    )
    ap.add_argument("--stages", nargs="+", default=["liver", "tumor"], choices=["liver", "tumor"])
    ap.add_argument("--grid", type=float, nargs="+", default=list(SHIFT_GRID))
    ap.add_argument("--write", action="store_true", help="write the chosen shifts")
    ap.add_argument(
        "--foreign",
        type=int,
        default=0,
        metavar="N",
        help="also score N phantoms built by other code (benchmarks/bench_foreign_phantoms.py, "
        f"seeds {FOREIGN_BASE} on: not the benchmark's own) and record their curve",
    )
    ap.add_argument(
        "--set",
        type=float,
        default=None,
        metavar="SHIFT",
        help="write this shift (one stage) instead of the development phantoms' best; --why "
        "says why, and the curves measured are recorded beside it",
    )
    ap.add_argument("--why", default=None, help="with --set: the reason, kept in metadata.json")
    args = ap.parse_args(argv)
    if args.set is not None and (len(args.stages) != 1 or not args.why):
        ap.error("--set needs one --stages and a --why")

    root = models_root(ap, args)
    args.manifest = with_run_manifests(args.manifest, root)
    seeds = dev_seeds(args.seed_base, args.cases, args.manifest)
    models = load_pair(root, "calibrate_shift")
    if "liver" in args.stages and not (root / "liver").exists():  # the shipped one, borrowed
        args.stages = [s for s in args.stages if s != "liver"]
        print(
            f"calibrate_shift: {root} has no liver/ of its own: its tumor model only",
            file=sys.stderr,
        )
        if not args.stages:
            return 0
    seg = Segmenter(InferenceConfig(device="cpu"), models=models)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    how = (
        f"whole pipeline (InferenceConfig defaults, CPU) on {len(seeds)} development phantoms "
        f"(generate_phantom(seed, 'full'), seeds {seeds[0]}-{seeds[-1]}); mean Dice per case"
    )
    not_checked = seed_check_note(args.manifest)
    if not_checked:
        how += f"; {not_checked}"
    found = [str(m) for m in args.manifest if Path(m).is_file()]
    report = {"training_seeds": not_checked or "checked against " + ", ".join(found)}
    for stage in args.stages:
        current = models[stage].metadata.logit_bias
        cur = None if current is None else max(current, key=abs)

        def show(i, row, stage=stage):
            cells = " ".join(f"{v:.3f}" for v in row)
            print(f"  {stage} case {seeds[i]}: {cells}", flush=True)

        scores = score_shifts(seg, _cases(seeds, cache), stage, args.grid, progress=show)
        shift = best_shift(scores, current=cur)
        print(f"{stage}: shifts {scores['grid']}")
        print(f"{stage}: mean Dice {[round(m, 4) for m in scores['mean']]}")
        print(f"{stage}: current shift {cur}, best {shift}")
        report[stage] = {"best": shift, "current": cur, **scores}
        extra: dict = {}
        if args.foreign:
            other = score_shifts(seg, _foreign_cases(args.foreign), stage, args.grid)
            curve = [round(m, 4) for m in other["mean"]]
            print(f"{stage}: mean Dice on {args.foreign} phantoms built by other code {curve}")
            report[stage]["foreign"] = other
            extra["foreign_phantoms"] = {
                "measured_on": f"benchmarks/bench_foreign_phantoms.foreign_phantom(seed), seeds "
                f"{FOREIGN_BASE}-{FOREIGN_BASE + args.foreign - 1}; the same pipeline",
                "mean_dice": [None if np.isnan(m) else round(m, 4) for m in other["mean"]],
                "n_cases": args.foreign,
            }
        if args.set is not None:
            shift = float(args.set)
            extra["chosen_by"] = args.why
            print(f"{stage}: set to {shift} ({args.why})")
        # the next stage is scored behind this one's chosen shift
        models[stage].metadata.logit_bias = bias_with(models[stage].metadata, shift)
        if args.write:
            print("wrote", write_shift(root / stage, shift, scores, how, extra=extra))
    out = cache / "calibration.json"
    out.write_text(json.dumps(without_nan(report), indent=2, default=str))
    print("saved", out)
    return 0


def add_dev_arguments(ap, *, cases: int, manifests: list[str]) -> None:
    """The options every development-phantom script shares: models, seeds, manifests, cache."""
    ap.add_argument(
        "--models",
        default=None,
        help="folder with liver/ and tumor/ (default: the shipped models, resources/models; "
        "--write into them needs the folder named)",
    )
    ap.add_argument("--cases", type=int, default=cases)
    ap.add_argument("--seed-base", type=int, default=9_000_000)
    ap.add_argument("--manifest", nargs="+", default=manifests)
    ap.add_argument("--cache", default="data/dev_phantoms")


def models_root(ap, args) -> Path:
    """The models folder scored (and written with ``--write``). The shipped models are the
    default for scoring only: a write needs its folder named, so that a calibration on a
    handful of phantoms never replaces the shipped thresholds by accident."""
    if args.models is not None:
        return Path(args.models)
    if getattr(args, "write", False):
        ap.error(
            "--write changes the models' metadata.json: name the folder with --models (without "
            "it the shipped models in resources/models are scored, and would be rewritten)"
        )
    from napari_livertumor.models.checkpoint import default_model_dir

    return default_model_dir("liver").parent


def dev_seeds(seed_base: int, cases: int, manifests) -> list[int]:
    """Development seeds, refused if any belongs to a training cohort or a benchmark.

    When none of ``manifests`` exists the training seeds cannot be checked: a warning says so
    (:func:`seed_check_note` gives the line for the report).
    """
    seeds = list(range(seed_base, seed_base + cases))
    from napari_livertumor.synth import manifest_seeds

    used, note = manifest_seeds(manifests)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    clash = [s for s in seeds if s in used or any(lo <= s < hi for lo, hi in BENCHMARK_RANGES)]
    if clash:
        raise SystemExit(f"seeds {clash[:5]} belong to the training cohort or a benchmark")
    return seeds


def with_run_manifests(manifests, root: Path) -> list[str]:
    """``manifests`` and the ``synth_manifest.json`` of the data each model under ``root``
    was trained on (its ``metadata.json``'s ``training.config.data``): a run trained on a
    cohort of its own is checked against that cohort, not only against the default paths."""
    import json

    out = list(manifests or [])
    for stage in ("liver", "tumor"):
        try:
            meta = json.loads((root / stage / "metadata.json").read_text(encoding="utf-8"))
            data = ((meta.get("training") or {}).get("config") or {}).get("data")
        except (OSError, ValueError, AttributeError):
            continue
        if data and (Path(data) / "synth_manifest.json").is_file():
            found = str(Path(data) / "synth_manifest.json")
            if found not in out:
                out.append(found)
    return out


def seed_check_note(manifests) -> str | None:
    """What to say when none of the training manifests is found (nothing was checked)."""
    from napari_livertumor.synth import manifest_seeds

    return manifest_seeds(manifests)[1]


def load_pair(root: Path, prog: str) -> dict:
    """``root/liver`` and ``root/tumor`` as LoadedModels; a clear exit when one is unusable.

    A run folder of a tumor-only fine-tune has no ``liver/``: the shipped liver model crops the
    tumor stage's input then, as ``livertumor segment --models`` does (said on stderr)."""
    from napari_livertumor.errors import ModelError
    from napari_livertumor.models import load_model
    from napari_livertumor.models.checkpoint import default_model_dir

    folders = {st: Path(root) / st for st in ("liver", "tumor")}
    if not folders["liver"].exists() and folders["tumor"].exists():
        folders["liver"] = default_model_dir("liver")
        print(f"{prog}: {root} has no liver/: using the shipped liver model", file=sys.stderr)
    try:
        return {st: load_model(folder, stage=st) for st, folder in folders.items()}
    except ModelError as exc:
        raise SystemExit(f"{prog}: {exc}") from None


def _foreign_cases(n: int):
    """Phantoms from the foreign-phantom benchmark's generator, from a seed range of their own."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_foreign_phantoms import foreign_phantom

    for seed in range(FOREIGN_BASE, FOREIGN_BASE + n):
        ct, truth, spacing, _ = foreign_phantom(seed)
        yield ct, spacing, truth


def _cases(seeds, cache: Path):
    from napari_livertumor.synth import generate_phantom
    from napari_livertumor.training.metrics import hcc_to_output

    for seed in seeds:
        f = cache / f"{seed}.npz"
        if f.is_file():
            z = np.load(f)
            ct, labels, spacing = z["ct"], z["lab"], tuple(float(s) for s in z["sp"])
        else:
            ph = generate_phantom(seed, "full")
            ct, labels, spacing = ph.ct.array, ph.labels, tuple(ph.ct.spacing)
            np.savez(f, ct=ct, lab=labels, sp=np.array(spacing))
        yield ct, spacing, hcc_to_output(labels)


if __name__ == "__main__":
    sys.exit(main())
