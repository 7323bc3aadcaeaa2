"""``livertumor convert`` (not built yet)."""

from __future__ import annotations

from ._unbuilt import not_built


def add_arguments(parser) -> None:
    parser.add_argument("args", nargs="*", help="(not built yet)")


def run(args) -> int:
    return not_built("convert")
