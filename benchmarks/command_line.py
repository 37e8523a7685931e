"""The command a results row records: how to rerun it from the repository root, with no path of the
machine that ran it (an absolute path becomes relative to the repository, or its file name if outside)."""

from __future__ import annotations

import shlex
from pathlib import Path

from nasrank.core import REPO_ROOT


def portable(arg: str) -> str:
    path = Path(arg)
    if not path.is_absolute():
        return arg
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else path.name


def recorded_command(script: str, argv: list[str]) -> str:
    """E.g. ("benchmarks/ranking.py", ["--out", "/tmp/x.jsonl"]) -> "python benchmarks/ranking.py --out x.jsonl"."""
    return shlex.join(["python", script, *map(portable, argv)])
