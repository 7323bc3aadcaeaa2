"""``python -m napari_livertumor.training`` — the entry point ``torchrun`` launches.

Either ``--run-config FILE`` (a JSON list of TrainConfig dicts, as ``livertumor train --ddp``
writes it) or the same options as ``livertumor train`` (without ``--ddp``)::

    torchrun --nproc_per_node 4 -m napari_livertumor.training \\
        --data /data/HCC-TACE-Seg --out models --config configs/hcc_tace_gpu.json --stage both
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from ..commands import train as train_cmd
    from ..errors import LiverTumorError
    from .cli_report import print_reports
    from .config import TrainConfig
    from .distributed import QUIET_ENV, cleanup, init_from_env
    from .loop import train

    parser = argparse.ArgumentParser(prog="python -m napari_livertumor.training")
    parser.add_argument("--run-config", help="JSON list of TrainConfig dicts")
    if argv is None:
        argv = sys.argv[1:]
    if "--run-config" in argv:
        args = parser.parse_args(argv)
        with open(args.run_config, encoding="utf-8") as fh:
            configs = [TrainConfig.from_dict(d) for d in json.load(fh)]
    else:
        train_cmd.add_arguments(parser)
        args = parser.parse_args(argv)
        configs = train_cmd.build_configs(args)
    rank = int(os.environ.get("RANK", 0))
    quiet = os.environ.get(QUIET_ENV) == "1"  # livertumor -q train --ddp N
    logging.basicConfig(
        level=logging.INFO if rank == 0 and not quiet else logging.WARNING,
        format=f"[rank {rank}] %(levelname)s: %(message)s",
    )
    init_from_env(configs[0].device)
    try:
        for cfg in configs:
            reports = train(cfg)
            if rank == 0:
                if not quiet:
                    print(f"== training the {cfg.stage} model -> {cfg.stage_dir}", flush=True)
                print_reports(reports, sys.stdout, quiet=quiet)
            else:
                for _ in reports:
                    pass
    except LiverTumorError as exc:
        print(f"training: error: {exc}", file=sys.stderr)
        return 1
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
