"""Training step time and samples/s per stage, for a recipe's networks and patch sizes.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_train.py [--config configs/default_cpu.json]
        [--steps 5] [--device cpu|cuda|all]

Runs full training steps (forward incl. the VAE branch, Dice + focal + VAE + weak loss, backward,
AdamW update) on random patches of the recipe's ``roi_size`` and batch size, after one warm-up
step, and prints the median. On the CPU it also runs each stage with a batch of one, in the same
run: PyTorch sends a 3-D convolution of a batch of one to its native im2col kernel rather than
oneDNN, which is why the recipes train with batches of two. Writes
``benchmarks/results/train.json``. On a shared machine the
figures vary with the load; the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from napari_livertumor.models import build_training_network
from napari_livertumor.training.config import load_recipe, make_config
from napari_livertumor.training.losses import compute_losses


def bench_stage(cfg, device: str, steps: int, batch_size: int | None = None) -> dict:
    if batch_size is not None:
        cfg = cfg.with_updates(batch_size=batch_size)
    torch.manual_seed(0)
    net = build_training_network(cfg.network, cfg.roi_size).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    b = cfg.batch_size
    x = torch.rand(b, 1, *cfg.roi_size, device=device)
    y = torch.randint(0, cfg.n_classes, (b, *cfg.roi_size), device=device)
    extra = {"weak_target": torch.full((b,), 0.1), "weak_ok": torch.ones(b, dtype=torch.bool)}
    amp = device == "cuda" and cfg.amp
    times = []
    for i in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            logits, vae = net(x)
        loss = compute_losses(logits, vae, y, extra, cfg)["total"]
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step pays one-off allocation costs
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "stage": cfg.stage,
        "device": device,
        "roi_size": list(cfg.roi_size),
        "batch_size": b,
        "init_filters": cfg.network.init_filters,
        "params": sum(p.numel() for p in net.parameters()),
        "step_s_median": round(med, 4),
        "step_s_all": [round(t, 4) for t in times],
        "samples_per_s": round(b / med, 3),
    }


def _print(r: dict) -> None:
    print(
        f"{r['stage']:5s} {r['device']:4s} roi {tuple(r['roi_size'])} batch {r['batch_size']}: "
        f"{r['step_s_median']:.3f} s/step, {r['samples_per_s']:.2f} samples/s",
        flush=True,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/default_cpu.json")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument(
        "--device",
        default="all",
        choices=["cpu", "cuda", "all"],
        help="cpu, cuda or all (cpu + cuda when present)",
    )
    p.add_argument("--out", default="benchmarks/results/train.json")
    args = p.parse_args(argv)
    recipe = load_recipe(args.config)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    if not devices:
        print(
            f"bench_train: --device {args.device} asked for, but CUDA is not available "
            f"(torch {torch.__version__}); nothing measured, nothing written",
            file=sys.stderr,
        )
        return 2
    rows = []
    for device in devices:
        for stage in ("liver", "tumor"):
            cfg = make_config(stage, recipe, data=".")
            r = bench_stage(cfg, device, args.steps)
            rows.append(r)
            _print(r)
            if device == "cpu" and cfg.batch_size != 1:
                one = bench_stage(cfg, device, args.steps, batch_size=1)
                rows.append(one)
                _print(one)
                print(
                    f"      batch {cfg.batch_size} vs 1: "
                    f"{r['samples_per_s'] / one['samples_per_s']:.1f}x the samples/s",
                    flush=True,
                )
    result = {
        "config": args.config,
        "steps": args.steps,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": os.getloadavg(),
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out} (load average {result['load_average'][0]:.1f}: figures are noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
