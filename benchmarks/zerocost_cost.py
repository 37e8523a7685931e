"""One-off cost of a space's zero-cost table: process CPU seconds per network, measured on a seeded sample.

`python -m nasrank.data zerocost <space>` scores one network per isomorphism class (NB201: 6,466 of the 15,625
cells; NB101: all 423,624) with `nasrank.zerocost.features.score_cells`.  This script times that same call, one
thread, on `--cells` uniformly drawn cells of each space and multiplies the mean by the number of networks to
score.  NB101 is timed although `nasrank.data` refuses to compute its table: the figure is why it refuses.

Writes `benchmarks/results/zerocost_cost.json` and the section `zerocost_cost.md` that make_report.py includes.

    OMP_NUM_THREADS=1 python benchmarks/zerocost_cost.py            # ~2 minutes (NB201 64 cells, NB101 16 cells)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nasrank.core import write_atomic
from nasrank.encodings.archs import first_members
from nasrank.spaces import get_space
from nasrank.spaces.nb101 import NUM_CELLS as NB101_CELLS
from nasrank.zerocost.features import ZeroCostRecipe, image_batch, score_cells
from command_line import recorded_command

OUT = Path(__file__).parent / "results"
DEFAULT_CELLS = {"nb201": 64, "nb101": 16}


def networks_to_score(space: str) -> int:
    """How many networks the space's table needs: one per isomorphism class."""
    if space == "nb101":
        return NB101_CELLS  # the space lists one cell per class
    return len(np.unique(first_members(list(get_space(space).enumerate()))))


def time_cells(space: str, cells: int, seed: int) -> list[float]:
    """CPU seconds of `score_cells` on each of `cells` seeded random cells of the space."""
    rng = np.random.default_rng(seed)
    sample = [get_space(space).random(rng).to_str() for _ in range(cells)]
    recipe = ZeroCostRecipe()
    image_batch(recipe)  # loading the digits once is not a per-network cost
    seconds = []
    for cell in sample:
        start = time.process_time()
        score_cells(space, [cell], recipe)
        seconds.append(time.process_time() - start)
    return seconds


def markdown(result: dict) -> str:
    lines = ["## Zero-cost features: one-off cost per space (`python benchmarks/zerocost_cost.py`)", "",
             "Process CPU time of scoring one untrained network (`nasrank.zerocost`: synflow, NASWOT, jacob_cov, snip, grad_norm "
             "on 64 embedded 8x8 digits), one thread, on cells drawn uniformly; the space's total is the mean times the "
             "networks its table needs (one per isomorphism class).  `python -m nasrank.data zerocost nb201 --workers 2` "
             "pays it once and caches the table; NB101 is refused on CPU for the total below.", "",
             "| space | cells timed | CPU s per network, mean (min–max) | networks to score | total CPU hours (mean × networks) |",
             "|---|---|---|---|---|"]
    for space, r in result["spaces"].items():
        s = r["cpu_s"]
        lines.append(f"| {space} | {len(s)} | {np.mean(s):.2f} ({min(s):.2f}–{max(s):.2f}) | {r['networks']:,} | "
                     f"{np.mean(s) * r['networks'] / 3600:,.1f} |")
    lines += ["", f"Measured {result['date']} on {result['machine']} ({result['threads']} thread, load average "
              f"{result['load_avg']:.1f}: process time, so other work on the machine changes it little); "
              f"command: `{result['command']}`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spaces", nargs="+", default=list(DEFAULT_CELLS), choices=list(DEFAULT_CELLS))
    p.add_argument("--cells", type=int, help="cells timed per space (default: nb201 64, nb101 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.cells is not None and args.cells < 1:
        p.error(f"--cells {args.cells}: give at least 1")
    torch.set_num_threads(1)
    spaces = {space: {"cpu_s": [round(s, 3) for s in time_cells(space, args.cells or DEFAULT_CELLS[space], args.seed)],
                      "networks": networks_to_score(space)} for space in args.spaces}
    result = {"spaces": spaces, "seed": args.seed, "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_avg": round(os.getloadavg()[0], 2), "command": recorded_command("benchmarks/zerocost_cost.py", argv)}
    write_atomic(args.out / "zerocost_cost.json", (json.dumps(result, indent=1) + "\n").encode())
    write_atomic(args.out / "zerocost_cost.md", markdown(result).encode())
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
