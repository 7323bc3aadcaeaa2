"""Running the training loop under ``torchrun`` (DistributedDataParallel).

``livertumor train --ddp N`` writes the stage configs to a JSON file and launches
``python -m torch.distributed.run --standalone --nproc_per_node N -m napari_livertumor.training
--run-config FILE``. Each process joins the group (``nccl`` on GPUs, ``gloo`` on CPU) and runs
:func:`~napari_livertumor.training.loop.train`; only rank 0 validates, saves and prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: set to "1" in the processes ``launch_torchrun`` starts for ``livertumor -q train --ddp N``:
#: the results and warnings only, as without ``--ddp``
QUIET_ENV = "LIVERTUMOR_QUIET"


def launch_torchrun(configs, nproc: int, *, extra_env: dict[str, str] | None = None) -> int:
    """Run ``configs`` (TrainConfig list, in order) on ``nproc`` processes; returns the exit code."""
    out = Path(configs[0].out)
    out.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=".ddp-run-", suffix=".json", dir=out)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:  # (read as UTF-8: a path's accents)
        json.dump([c.to_dict() for c in configs], fh)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={int(nproc)}",
        "-m",
        "napari_livertumor.training",
        "--run-config",
        path,
    ]
    env = dict(os.environ)
    if "cuda" not in str(configs[0].device) and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(nproc)))
    env.update(extra_env or {})
    try:
        return subprocess.run(cmd, env=env, check=False).returncode
    finally:
        Path(path).unlink(missing_ok=True)


def init_from_env(device: str = "auto") -> bool:
    """Join the process group torchrun describes in the environment; False when not launched so."""
    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    if dist.is_initialized():
        return True
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def cleanup() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
