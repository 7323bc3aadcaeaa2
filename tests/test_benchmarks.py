"""The prepared GPU check (benchmarks/gpu_check.py) runs end to end: its CPU dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_figure(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu"]
    cmd += ["--n-slices", "12", "--runs", "1", "--batch", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the GPU bars are not judged" in proc.stdout
    assert "bar 1.5 s" not in proc.stdout  # a CPU run never claims a GPU bar
    report = json.loads((tmp_path / "gpu_check_cpu_dryrun.json").read_text())
    assert report["in_process"]["runs"][0]["liver"] > 0
    assert report["end_to_end"]["device"] == "cpu"
    assert set(report["end_to_end"]["last_timings_s"]) >= {"read", "liver", "tumor", "write"}
    assert report["startup"]["python_torch_monai"]["median_s"] > 0
    assert report["batch"]["cases"] == 2
    # only the first case of a batch pays for loading the models
    loads = ["load_models" in t for t in report["batch"]["per_case_timings_s"]]
    assert loads == [True, False]
