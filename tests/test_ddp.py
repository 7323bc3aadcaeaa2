"""Multi-process training (DistributedDataParallel, gloo on CPU) stays in sync and saves once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from napari_livertumor.models import load_model
from napari_livertumor.training.toydata import write_toy_cohort

TINY = {
    "epochs": 1,
    "steps_per_epoch": 3,
    "roi_size": [16, 32, 32],
    "target_spacing": [2.5, 2.0, 2.0],
    "network": {"init_filters": 4, "blocks_down": [1, 1, 1], "blocks_up": [1, 1], "vae_nz": 16},
    "val_fraction": 0.2,
    "weak_columns": ["AFP", "T_involvment", "CLIP_Score", "age"],
    "weak_lambda": 0.5,
    "seed": 5,
    "augment": False,
}

# Each rank trains, then writes the digest of its own weights and its loss curve.
RANK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from napari_livertumor.training import make_config, train
    from napari_livertumor.training.distributed import cleanup, init_from_env

    data, out, stage = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = make_config(stage, data=data, out=out, **json.loads(sys.argv[4]))
    init_from_env("cpu")
    rank = int(os.environ.get("RANK", 0))
    reports = list(train(cfg))
    losses = [r["losses"]["total"] for r in reports if r["event"] == "step"]
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump({"digest": reports[-1]["last_weights_digest"], "losses": losses}, fh)
    cleanup()
    """
)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_toy_cohort(tmp_path_factory.mktemp("toy"), n_cases=6, seed=0)


def torchrun(nproc, script, args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", str(script), *args]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_two_gloo_processes_stay_in_sync_and_write_one_checkpoint(toy_data, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    torchrun(2, script, [str(toy_data), str(out), "tumor", json.dumps(TINY)], tmp_path)
    r0 = json.loads((out / "rank0.json").read_text())
    r1 = json.loads((out / "rank1.json").read_text())
    assert len(r0["losses"]) == 3
    assert r0["digest"] == r1["digest"]  # same weights on both ranks after the steps
    # exactly one model folder and one last checkpoint, written by rank 0
    assert sorted(p.name for p in (out / "tumor").iterdir()) == [
        "last",
        "metadata.json",
        "model.safetensors",
        "split.json",
        "train.log",
    ]
    meta = load_model(out / "tumor", stage="tumor").metadata
    assert meta.training["world_size"] == 2


def test_livertumor_train_ddp_launches_torchrun(toy_data, tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"common": dict(TINY, steps_per_epoch=1)}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "napari_livertumor.cli", "train", "--data", str(toy_data),
           "--out", str(tmp_path / "m"), "--stage", "liver", "--config", str(recipe),
           "--ddp", "2"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("training the liver model") == 1  # rank 0 only
    assert '"world_size": 2' in proc.stdout
    assert (tmp_path / "m" / "liver" / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def quiet_one_process_run(toy_data, tmp_path_factory):
    """``livertumor -q train --ddp 1`` of the liver stage, 2 steps: ``(recipe, out, process)``.

    One torchrun launch (each costs its processes' imports of torch and MONAI, ~10 s) for the
    two tests of it: what it prints, and that it trains as a single process does."""
    tmp = tmp_path_factory.mktemp("ddp1")
    cfg = dict(TINY, steps_per_epoch=2)
    recipe = tmp / "recipe.json"
    recipe.write_text(json.dumps({"common": cfg}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "napari_livertumor.cli", "-q", "train", "--data",
           str(toy_data), "--out", str(tmp / "m"), "--stage", "liver", "--config",
           str(recipe), "--device", "cpu", "--ddp", "1"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    return cfg, tmp / "m", proc


def test_one_process_under_torchrun_matches_single_process_training(
    quiet_one_process_run, toy_data, tmp_path
):
    import torch

    from napari_livertumor.training import make_config, train

    cfg, _, proc = quiet_one_process_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads(proc.stdout.split("[liver] done: ", 1)[1].splitlines()[0])
    assert ddp["step"] == 2
    config = make_config("liver", data=str(toy_data), out=str(tmp_path / "s"), device="cpu", **cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the process torchrun started (OMP_NUM_THREADS=1): the same sums
    try:
        single = list(train(config))
    finally:
        torch.set_num_threads(threads)
    # the same weights after the same steps (the last weights' digest, as each run reports it)
    assert ddp["last_weights_digest"] == single[-1]["last_weights_digest"]


def test_quiet_train_ddp_prints_the_results_only(quiet_one_process_run):
    """``livertumor -q train --ddp N`` printed every step and INFO line: -q did not reach the
    processes torchrun starts."""
    _, out, proc = quiet_one_process_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("[liver] done: "), lines
    assert "INFO" not in proc.stderr, proc.stderr[-2000:]
    assert (out / "liver" / "model.safetensors").is_file()
