"""What the benchmarks share: how ``--out`` names their JSON and Markdown results."""

from __future__ import annotations

from pathlib import Path


def out_paths(out: str) -> tuple[Path, Path]:
    """``--out``: a name ending in .json is the JSON, the .md beside it; else both appended."""
    p = Path(out)
    if p.suffix == ".json":
        return p, p.with_suffix(".md")
    return p.with_name(p.name + ".json"), p.with_name(p.name + ".md")
