"""The prepared GPU check (benchmarks/gpu_check.py) runs end to end: its CPU dry run."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_figure(tmp_path):
    """Every step but the start-up snippets' (the test below: five more fresh interpreters)."""
    env = {**os.environ, "OUT": str(tmp_path), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu"]
    cmd += ["--n-slices", "12", "--runs", "1", "--batch", "2", "--startup-runs", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the GPU bars are not judged" in proc.stdout
    assert "bar 1.5 s" not in proc.stdout  # a CPU run never claims a GPU bar
    report = json.loads((tmp_path / "gpu_check_cpu_dryrun.json").read_text())
    assert report["in_process"]["runs"][0]["liver"] > 0
    assert report["end_to_end"]["device"] == "cpu"
    assert set(report["end_to_end"]["last_timings_s"]) >= {"read", "liver", "tumor", "write"}
    # the same command with a bytecode cache, in the same run, and what the interpreter does
    assert report["end_to_end"]["bytecode_cached_median_s"] > 0
    assert report["bytecode"]["torch_py_files"] > 0
    assert report["batch"]["cases"] == 2
    # stage grids finer than the CT (5 mm slices; the small phantom's) run on the device too
    assert all(case["liver_ml"] > 0 for case in report["other_grids"].values())
    assert len(report["other_grids"]) == 2
    # only the first case of a batch pays for loading the models
    loads = ["load_models" in t for t in report["batch"]["per_case_timings_s"]]
    assert loads == [True, False]


def test_gpu_check_startup_times_each_snippet_and_every_snippet_runs(tmp_path, monkeypatch):
    """gpu_check's step 4 (the dry run above leaves it out): its figures, each snippet in its own
    process (a stand-in interpreter that notes what it was asked), and every snippet run for real
    in one interpreter (on the GPU machine a failing one ends the check)."""
    gpu_check = _load("benchmarks/gpu_check.py")
    python = sys.executable
    calls = tmp_path / "calls"
    stand_in = tmp_path / "python"
    stand_in.write_text(
        f'#!/bin/sh\nprintf "%s\\t%s\\n" "$PYTHONPYCACHEPREFIX" "$2" >> "{calls}"\nsleep 0.02\n'
        'case "$2" in *print*) echo "numpy torchvision";; esac\n'
    )
    stand_in.chmod(0o755)
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    monkeypatch.setattr(sys, "executable", str(stand_in))
    cached_env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")}
    startup = gpu_check._time_startup(2, True, cached_env)
    monkeypatch.setattr(sys, "executable", python)
    snippets = ["python_torch", "python_torch_monai", "python_torch_monai_lean"]
    snippets += ["python_torch_monai_cuda_context"]
    cached = ["python_torch_bytecode_cached", "python_torch_monai_lean_bytecode_cached"]
    assert list(startup) == snippets + cached + ["optional_packages_monai_imported"]
    assert all(len(startup[k]["runs_s"]) == 2 and startup[k]["median_s"] > 0 for k in snippets)
    assert startup["python_torch_monai"]["median_s"] > 0
    assert startup["python_torch_bytecode_cached"]["median_s"] > 0
    assert startup["optional_packages_monai_imported"] == ["torchvision"]
    rows = [line.split("\t") for line in calls.read_text().splitlines()]
    assert len(rows) == 2 * len(snippets + cached) + 1  # each run a fresh process
    codes = [code for _, code in rows]
    assert [prefix for prefix, _ in rows].count(cached_env["PYTHONPYCACHEPREFIX"]) == 4
    line = gpu_check._startup_line(startup)
    assert line.startswith("fresh-process start-up (medians): python_torch ")
    assert "python_torch_bytecode_cached" in line and "optional" not in line
    # the snippets themselves, but the CUDA context's (no GPU here); the lean import first
    real = sorted(
        (c for c in dict.fromkeys(codes) if "cuda" not in c), key=lambda c: "lean" not in c
    )
    run_all = "\n".join(f"exec({c!r}, {{}})" for c in real)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([python, "-c", run_all], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(dict.fromkeys(codes)) == 5


# --------------------------------------------------------------------------- the scripts' options
def _load(rel: str):
    """A benchmark or script, imported from its file (they are not a package)."""
    import importlib.util

    path = ROOT / rel
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_script(rel: str, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
    env = {**(env or os.environ), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / rel), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _run_main(rel: str, *args, monkeypatch, capsys) -> SimpleNamespace:
    """A script's ``main`` in this process, as :func:`_run_script` would see it (exit status,
    stdout, stderr): no interpreter to start, torch and MONAI imported already."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the scripts put their folder first
    capsys.readouterr()
    try:
        code = _load(rel).main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    if isinstance(code, str):  # SystemExit("message"): printed, status 1
        code, err = 1, err + code + "\n"
    return SimpleNamespace(returncode=code or 0, stdout=out, stderr=err)


@pytest.mark.parametrize(
    "rel",
    [
        "benchmarks/bench_segment.py",
        "benchmarks/bench_segment_accuracy.py",
        "benchmarks/bench_foreign_phantoms.py",
        "benchmarks/bench_noise.py",
    ],
)
def test_out_names_json_and_md_the_same_way(rel, tmp_path):
    out_paths = _load(rel)._out_paths
    assert out_paths(str(tmp_path / "runs" / "v1.2")) == (
        tmp_path / "runs" / "v1.2.json",
        tmp_path / "runs" / "v1.2.md",
    )
    assert out_paths(str(tmp_path / "x.json")) == (tmp_path / "x.json", tmp_path / "x.md")


def _fake_segment_bench(monkeypatch, tmp_path):
    """bench_segment with its measurements replaced by fixed figures (no model is run)."""
    bench = _load("benchmarks/bench_segment.py")
    calls, works = [], []

    def end_to_end(dicom, out, models, runs, no_refine, extra=(), env=None):
        calls.append((tuple(extra), env))
        return {
            "command": "livertumor segment ...",
            "runs_s": [5.0],
            "median_s": 5.0,
            "stages_median_s": {"liver": 1.0, "tumor": 1.5},
            "peak_rss_gb": 1.0,
        }

    def models(given, work):
        works.append(work)
        return tmp_path / "models", "fake"

    monkeypatch.setattr(bench, "_end_to_end", end_to_end)
    monkeypatch.setattr(bench, "_make_dicom", lambda work: work / "dicom")
    monkeypatch.setattr(bench, "_models", models)
    monkeypatch.setattr(bench, "_original", lambda **kw: pytest.fail("original timed"))
    monkeypatch.setattr(bench, "_batch", lambda *a: pytest.fail("batch measured"))
    return bench, calls, works


def test_segment_e2e_only_labels_the_earlier_parts(monkeypatch, tmp_path):
    bench, calls, works = _fake_segment_bench(monkeypatch, tmp_path)
    earlier = json.loads((ROOT / "benchmarks" / "results" / "segment.json").read_text())
    out = tmp_path / "seg.json"
    out.write_text(json.dumps(earlier))
    assert bench.main(["--only", "e2e", "--runs", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    md = (tmp_path / "seg.md").read_text()
    orig = report["original_config"]
    assert orig["original_timed_in_this_run"] is False
    assert orig["earlier_report_date_utc"] == earlier["machine"]["date_utc"]
    assert not [k for k in orig if k.startswith("ratio")]  # no ratio across two runs
    assert orig["projected_total_s"] == earlier["original_config"]["projected_total_s"]
    assert "Timed in another run" in md and "× our end to end" not in md
    assert report["batch"]["measured_in_this_run"] is False
    assert "Not measured in this run" in md
    assert report["end_to_end"]["median_s"] == 5.0
    assert not works[0].exists()  # the temporary work folder is removed
    # copied again from that report: the first date stays
    assert bench.main(["--only", "e2e", "--runs", "1", "--out", str(out)]) == 0
    again = json.loads(out.read_text())["original_config"]
    assert again["earlier_report_date_utc"] == earlier["machine"]["date_utc"]


def test_segment_skip_batch_labels_the_old_batch_and_skips_fast_growth(monkeypatch, tmp_path):
    bench, calls, _ = _fake_segment_bench(monkeypatch, tmp_path)
    earlier = json.loads((ROOT / "benchmarks" / "results" / "segment.json").read_text())
    out = tmp_path / "runs" / "seg.v2"
    out.parent.mkdir()
    (tmp_path / "runs" / "seg.v2.json").write_text(json.dumps(earlier))
    argv = ["--skip-batch", "--skip-original", "--runs", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "runs" / "seg.v2.json").read_text())
    assert report["batch"]["measured_in_this_run"] is False
    # the date it was measured: its own (a batch run alone records one), the earlier report's,
    # or the one before when that had copied it
    batch = earlier["batch"]
    measured = (
        batch.get("earlier_report_date_utc")
        or batch.get("date_utc")
        or earlier["machine"]["date_utc"]
    )
    assert report["batch"]["earlier_report_date_utc"] == measured
    assert "Not measured in this run" in (tmp_path / "runs" / "seg.v2.md").read_text()
    # --fast-growth is off by default: only the plain and the full-imports runs
    assert [extra for extra, _ in calls] == [(), ()]
    assert "end_to_end_fast" not in report


def test_dicom_load_writes_to_out(tmp_path):
    out = tmp_path / "d.json"
    proc = _run_script(
        "benchmarks/bench_dicom_load.py", "--slices", 3, "--size", 32, "--repeats", 1, "--out", out
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())["repeats"] == 1


def test_train_bench_without_cuda_exits_2_and_writes_nothing(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "train.json"
    proc = _run_script("benchmarks/bench_train.py", "--device", "cuda", "--out", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "CUDA is not available" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_panel_open_without_display_reruns_under_xvfb(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "xvfb_args"
    fake = bin_dir / "xvfb-run"
    fake.write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    script = "benchmarks/bench_panel_open.py"
    proc = _run_script(script, "--repeats", 1, env={**env, "PATH": str(bin_dir)})
    assert proc.returncode == 0, proc.stderr
    assert record.read_text().split()[:2] == ["-a", sys.executable]
    assert record.read_text().split()[2:] == [str(ROOT / script), "--repeats", "1"]
    proc = _run_script(script, env={**env, "PATH": str(tmp_path / "empty")})
    assert proc.returncode == 2 and "no xvfb-run" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_gpu_check_sh_names_its_python_and_stops_without_torch(tmp_path):
    bare = tmp_path / "bare_python"  # this Python without its site-packages: no torch
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    bare.chmod(0o755)
    for py, why in ((bare, "has no torch, monai"), (tmp_path / "missing", "not found")):
        proc = subprocess.run(
            ["bash", str(ROOT / "benchmarks" / "gpu_check.sh")],
            capture_output=True,
            text=True,
            env={**os.environ, "PY": str(py)},
            cwd=tmp_path,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stdout.startswith(f"python: {py}")
        assert why in proc.stderr and str(py) in proc.stderr
        assert "Traceback" not in proc.stderr


def test_accuracy_report_says_when_training_seeds_were_not_checked(tmp_path):
    bench = _load("benchmarks/bench_segment_accuracy.py")
    missing = [str(tmp_path / "synth_manifest.json")]
    from napari_livertumor.synth import manifest_seeds

    note = manifest_seeds(missing)[1]
    assert note.startswith("training seeds not checked: no synth_manifest.json found")
    report = {
        "models": {"liver": "l", "tumor": "t"},
        "training_seeds_checked": None,
        "training_seeds_note": note,
        "date_utc": "2026-01-01 00:00",
        "sets": {},
    }
    md = bench._markdown(report)
    assert "Training seeds not checked" in md and "checked against" not in md
    (tmp_path / "synth_manifest.json").write_text(json.dumps([{"seed": 1}]))
    assert manifest_seeds(missing) == ({1}, None)


def test_accuracy_report_breaks_lesions_down_by_how_visible_they_were():
    bench = _load("benchmarks/bench_segment_accuracy.py")

    def case(seed, dice, lesions):
        scores = {"liver_dice": 0.96, "liver_sensitivity": 0.97, "tumor_dice": dice,
                  "tumor_sensitivity": 0.5, "tumor_iou": 0.3}  # fmt: skip
        return {"seed": seed, "shape": [9, 9, 9], "spacing": [1, 1, 1], "phase": "arterial",
                "true_tumor_ml": 1.0, "seconds": 1.0, "model": scores, "refined": scores,
                "lesion_cnr": lesions}  # fmt: skip

    rows = [
        case(1, 0.8, [{"ml": 9, "cnr": 1.6, "covered": 0.9}, {"ml": 1, "cnr": 0.7, "covered": 0}]),
        case(2, 0.1, [{"ml": 50, "cnr": 0.2, "covered": 0.05}]),  # an iso mass: hardly seen
        case(3, 0.6, [{"ml": 5, "cnr": 0.6, "covered": 0.5}, {"ml": 2, "cnr": None}]),
        case(4, float("nan"), []),  # no tumor, none predicted
    ]
    summary = bench._summarize(rows)
    bands = [(b["lesions"], b["found"]) for b in summary["lesions_by_cnr"]]
    assert bands == [(1, 0), (2, 1), (1, 1)]
    assert summary["visible_main_lesion_cases"] == 2
    assert summary["visible_main_lesion_tumor_dice_mean"] == pytest.approx(0.7)
    report = {"models": {"liver": "l", "tumor": "t"}, "training_seeds_checked": 3,
              "date_utc": "2026-01-01 00:00",
              "sets": {"fresh": {"cases": rows, "summary": summary}}}  # fmt: skip
    md = bench._markdown(report)
    assert "| CNR 0–0.5 | CNR 0.5–1 | CNR ≥ 1 |" in md
    assert "| fresh | 0/1 | 1/2 | 1/1 | 0.700 (n=2) |" in md
    assert "| arterial | 1.0 | 0.20 |" in md and "| arterial | 1.0 | - |" in md


@pytest.fixture
def dev_setup(tmp_path):
    """Two untrained models and one small cached development phantom (no phantom drawn)."""
    import numpy as np

    from napari_livertumor.models import make_untrained_model

    make_untrained_model(tmp_path / "m" / "liver", "liver")
    make_untrained_model(tmp_path / "m" / "tumor", "tumor")
    rng = np.random.default_rng(0)
    ct = rng.integers(-100, 200, (16, 48, 48)).astype(np.int16)
    lab = np.zeros(ct.shape, np.uint8)
    lab[4:12, 10:30, 10:30] = 1
    lab[6:9, 15:20, 15:20] = 2
    (tmp_path / "cache").mkdir()
    np.savez(tmp_path / "cache" / "9000000.npz", ct=ct, lab=lab, sp=np.array([2.5, 1.5, 1.5]))
    return tmp_path


def test_calibrate_lesions_puts_the_current_setting_in_the_grid(dev_setup, monkeypatch, capsys):
    t = dev_setup
    args = ["--models", t / "m", "--cases", 1, "--cache", t / "cache"]
    args += ["--manifest", t / "none" / "synth_manifest.json"]
    run = functools.partial(_run_main, monkeypatch=monkeypatch, capsys=capsys)
    proc = run(
        "scripts/calibrate_lesions.py", *args, "--shifts", 0.5, "--peaks", 1, "--min-ml", 0.5
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # said before any phantom is scored
    assert proc.stdout.index("note: added the current setting") < proc.stdout.index("case 9000000")
    assert "<- current" in proc.stdout
    assert "warning: training seeds not checked" in proc.stderr
    saved = json.loads((t / "cache" / "lesion_calibration.json").read_text())
    assert [0.0, 0.0, 0.1] in saved["combos"]
    assert saved["training_seeds_not_checked"].startswith("training seeds not checked")
    # a saved score file without the current setting: a clear exit
    saved["combos"] = [[0.5, 1.0, 0.5]]
    (t / "old.json").write_text(json.dumps(saved))
    proc = run("scripts/calibrate_lesions.py", *args, "--scores", t / "old.json")
    assert proc.returncode == 1 and "is not in the grid of" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_calibration_checks_its_seeds_against_the_runs_own_training_cohort(
    dev_setup, monkeypatch, capsys
):
    """A run trained on a cohort of its own: the scripts looked for data/synth3's manifest
    only, relative to the current folder, and checked nothing."""
    t = dev_setup
    cohort = t / "mycohort"
    cohort.mkdir()
    (cohort / "synth_manifest.json").write_text(json.dumps([{"seed": 9000000}]))
    meta_path = t / "m" / "tumor" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta.setdefault("training", {}).setdefault("config", {})["data"] = str(cohort)
    meta_path.write_text(json.dumps(meta))
    args = ["--models", t / "m", "--cases", 1, "--cache", t / "cache"]
    args += ["--manifest", t / "none" / "synth_manifest.json"]
    proc = _run_main(
        "scripts/calibrate_lesions.py", *args, "--shifts", 0.5, "--peaks", 1,
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "seeds [9000000] belong to the training cohort" in proc.stdout + proc.stderr


def test_calibrate_shift_can_set_a_shift_by_hand_and_keeps_why(dev_setup, monkeypatch, capsys):
    """A shift chosen against the development phantoms' best (the shipped liver's: none, as
    phantoms built by other code disagreed) is written with its reason and the curve measured."""
    t = dev_setup
    args = ["--models", t / "m", "--cases", 1, "--cache", t / "cache", "--stages", "liver"]
    args += ["--manifest", t / "none" / "synth_manifest.json", "--grid", -1, 0]
    run = functools.partial(_run_main, monkeypatch=monkeypatch, capsys=capsys)
    proc = run("scripts/calibrate_shift.py", *args, "--set", 0.5)
    assert proc.returncode == 2 and "--set needs one --stages and a --why" in proc.stderr
    proc = run("scripts/calibrate_shift.py", *args, "--set", 0.5, "--why", "a reason", "--write")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "liver: set to 0.5 (a reason)" in proc.stdout
    meta = json.loads((t / "m" / "liver" / "metadata.json").read_text())
    assert meta["logit_bias"] == [0.0, 0.5]
    cal = meta["metrics"]["pipeline_calibration"]
    assert cal["chosen_by"] == "a reason" and cal["grid"] == [-1.0, 0.0] and cal["n_cases"] == 1
    assert "foreign_phantoms" not in cal  # none were scored
    # --write without --models named: refused before anything is scored (the default is the
    # shipped models, and one phantom's calibration replaced their thresholds)
    no_models = [str(a) for a in args[2:6]]  # cases, cache (options both scripts take)
    for script in ("scripts/calibrate_shift.py", "scripts/calibrate_lesions.py"):
        proc = run(script, *no_models, "--write")
        assert proc.returncode == 2 and "name the folder with --models" in proc.stderr, script


def test_a_lesion_filter_whose_half_of_seeds_has_no_dice_is_written_as_valid_json(tmp_path):
    """An undefined mean (no tumor in the odd seeds' phantoms) was written as a bare NaN."""
    from napari_livertumor.models import make_untrained_model
    from napari_livertumor.training.calibrate import write_lesion_filter

    make_untrained_model(tmp_path / "tumor", "tumor")
    record = {"chosen": {"mean_dice": 0.5, "mean_dice_odd_seeds": float("nan")}}
    write_lesion_filter(tmp_path / "tumor", (0.0, 2.0, 0.1), record)
    text = (tmp_path / "tumor" / "metadata.json").read_text()
    assert "NaN" not in text
    meta = json.loads(text)
    assert meta["metrics"]["lesion_calibration"]["chosen"]["mean_dice_odd_seeds"] is None


def test_a_model_card_says_why_its_shift_was_set_by_hand(tmp_path):
    from types import SimpleNamespace

    from napari_livertumor.models import load_model, make_untrained_model
    from napari_livertumor.training.calibrate import write_shift

    acc = _load("benchmarks/bench_segment_accuracy.py")
    for stage in ("liver", "tumor"):
        make_untrained_model(tmp_path / stage, stage)
    scores = {"grid": [-1.0, 0.0], "mean": [0.95, 0.94], "per_case": [[0.95, 0.94]]}
    other = {"measured_on": "other code", "mean_dice": [0.90, 0.92], "n_cases": 1}
    write_shift(tmp_path / "liver", 0.0, scores, "dev",
                extra={"chosen_by": "no shift: a reason", "foreign_phantoms": other})  # fmt: skip
    seg = SimpleNamespace(**{st: load_model(tmp_path / st, stage=st) for st in ("liver", "tumor")})
    report = json.loads((ROOT / "benchmarks" / "results" / "segment_accuracy.json").read_text())
    acc.write_cards(report, seg)
    card = (tmp_path / "liver" / "MODEL_CARD.md").read_text()
    line = next(x for x in card.splitlines() if x.startswith("Decision threshold:"))
    assert "shifted by +0.0" in line and "no shift: a reason" in line, line
    assert "-1: 0.95, +0: 0.94" in line and "on 1 phantoms built by other code" in line, line
    assert "+0: 0.92" in line, line
    # a card already there (ours are written by hand) is kept: the draft goes beside it
    (tmp_path / "liver" / "MODEL_CARD.md").write_text("written by hand")
    assert (tmp_path / "liver" / "MODEL_CARD.draft.md") in acc.write_cards(report, seg)
    assert (tmp_path / "liver" / "MODEL_CARD.md").read_text() == "written by hand"


def test_accuracy_report_gives_boundary_scores_with_their_medians():
    bench = _load("benchmarks/bench_segment_accuracy.py")
    nan = float("nan")
    scores = {"liver_dice": 0.96, "liver_sensitivity": 0.97, "tumor_dice": 0.5,
              "tumor_sensitivity": 0.5, "tumor_iou": 0.3}  # fmt: skip

    def case(seed, liver_hd95, tumor_hd95, tumor_nsd):
        boundary = {"liver_hd95_mm": liver_hd95, "liver_assd_mm": 1.0, "liver_nsd": 0.9,
                    "tumor_hd95_mm": tumor_hd95, "tumor_assd_mm": tumor_hd95 / 4,
                    "tumor_nsd": tumor_nsd}  # fmt: skip
        return {"seed": seed, "shape": [9, 9, 9], "spacing": [1, 1, 1], "phase": "arterial",
                "true_tumor_ml": 1.0, "seconds": 1.0, "model": scores, "refined": scores,
                "boundary": boundary}  # fmt: skip

    # the third case's tumor was missed: no distance, an NSD of 0
    rows = [case(1, 3.0, 4.0, 0.8), case(2, 5.0, 60.0, 0.4), case(3, 4.0, nan, 0.0)]
    summary = bench._summarize(rows)
    assert summary["model_liver_hd95_mm_mean"] == 4.0
    assert summary["model_tumor_hd95_mm_median"] == 32.0 and summary["model_tumor_hd95_mm_n"] == 2
    assert summary["model_tumor_nsd_n"] == 3 and summary["model_tumor_nsd_median"] == 0.4
    report = {"models": {"liver": "l", "tumor": "t"}, "training_seeds_checked": 3,
              "date_utc": "2026-01-01 00:00",
              "sets": {"fresh": {"cases": rows, "summary": summary}}}  # fmt: skip
    md = bench._markdown(report)
    assert (
        "| fresh | 4.00 (4.00) n=3 | 1.00 (1.00) n=3 | 0.900 (0.900) n=3 | 32.00 (32.00) n=2 |"
        in md
    )


def test_noise_report_compares_each_level_with_the_same_patients_without_noise():
    """bench_noise's summary: changes are per patient against its own noise-free run, the
    worst case's too, and a patient without a tumor Dice is left out of the tumor figures."""
    bench = _load("benchmarks/bench_noise.py")

    def row(seed, level, liver, tumor):
        return {"seed": seed, "added_sd_hu": level, "native_sd_hu": 5.0 + level / 2,
                "model_grid_sd_hu": 5.0 + level / 3, "liver_dice": liver, "tumor_dice": tumor}  # fmt: skip

    rows = [row(1, 0, 0.96, 0.8), row(2, 0, 0.94, 0.6), row(3, 0, 0.95, None),
            row(1, 50, 0.95, 0.7), row(2, 50, 0.94, 0.62), row(3, 50, 0.93, 0.0)]  # fmt: skip
    report = bench._summarize(rows, [0.0, 50.0])
    zero, fifty = report["levels"]
    assert zero["tumor_change"] == 0.0 and zero["tumor_n"] == 2
    assert fifty["tumor_dice"] == pytest.approx(0.66) and fifty["tumor_n"] == 2
    assert fifty["tumor_change"] == pytest.approx(-0.04)  # (-0.1 + 0.02) / 2
    assert fifty["tumor_worst_change"] == pytest.approx(-0.1)
    assert fifty["liver_change"] == pytest.approx(-0.01)
    report.update(models={"liver": "L", "tumor": "T"}, date_utc="d", seeds=[1, 2, 3], grain_px=0.8)
    text = bench._markdown(report)
    assert "| 50 | 30.0 | 21.7 | 0.940 (-0.010) | 0.660 (-0.040; -0.100) n=2 |" in text
