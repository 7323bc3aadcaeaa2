"""The device names the commands, the pipeline and training take: ``auto``, ``cpu``, ``cuda``
or ``cuda:N`` (one GPU of several). No torch import: checked before anything heavy loads."""

from __future__ import annotations

import re

#: the names without an index; ``cuda:N`` is taken too
DEVICES = ("auto", "cpu", "cuda")
DEVICE_HELP = "auto (default: the GPU when there is one) | cpu | cuda | cuda:N (GPU number N)"
_NAME = re.compile(r"(auto|cpu|cuda(:\d+)?)")


def is_device_name(name: object) -> bool:
    """Whether ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (N a GPU number)."""
    return _NAME.fullmatch(str(name)) is not None


def device_arg(value: str) -> str:
    """argparse ``type=`` for ``--device``: a wrong name is a usage error (exit 2) that says
    what is taken, before any model or data is read."""
    import argparse

    name = value.strip().lower()
    if not is_device_name(name):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a device: auto, cpu, cuda or cuda:N (such as cuda:1)"
        )
    return name
