"""Aggregate a Hydra multirun into a markdown table: `python -m nasrank.report <multirun dir>`.

Each job dir holds `.hydra/overrides.yaml` (its setting) and `metrics.json` (written by train.py);
jobs that differ only in `seed` are one setting, reported as mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from nasrank.core import NasrankError

DEFAULT_METRICS = ("test/ktau", "test/spearman", "val/ktau", "test/p@10", "time/fit_s")


def collect(sweep_dir: Path) -> dict[str, list[dict[str, float]]]:
    """Setting (overrides without seed) -> metrics of each finished job."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise NasrankError(f"multirun dir {sweep_dir} does not exist")
    runs: dict[str, list[dict[str, float]]] = defaultdict(list)
    for metrics_file in sorted(sweep_dir.glob("**/metrics.json")):
        overrides_file = metrics_file.parent / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        setting = " ".join(o for o in overrides if not o.startswith("seed=")) or "(defaults)"
        runs[setting].append(json.loads(metrics_file.read_text()))
    if not runs:
        raise NasrankError(f"no finished jobs (metrics.json) under {sweep_dir}")
    return dict(runs)


def table(runs: dict[str, list[dict[str, float]]], metrics: tuple[str, ...] = DEFAULT_METRICS) -> str:
    """Markdown: one row per setting, `mean ± std (n)` per metric."""
    lines = ["| setting | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for setting, jobs in sorted(runs.items()):
        cells = []
        for m in metrics:
            vals = np.array([j[m] for j in jobs if m in j], dtype=float)
            cells.append(f"{vals.mean():.4f} ± {vals.std():.4f} ({len(vals)})" if len(vals) else "–")
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    args = parser.parse_args(argv)
    try:
        print(table(collect(args.sweep_dir), tuple(args.metrics)))
    except NasrankError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
