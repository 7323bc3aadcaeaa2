"""Shared message for sub-commands whose core is not built yet."""

from __future__ import annotations

import sys


def not_built(name: str) -> int:
    print(
        f"livertumor {name}: not built yet in this version; nothing was written.",
        file=sys.stderr,
    )
    return 3
