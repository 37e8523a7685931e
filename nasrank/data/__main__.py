"""``python -m nasrank.data fetch nb101|nb201 [--dir DIR] [--from FOLDER]``: fetch a benchmark table;
``python -m nasrank.data zerocost nb201 [--workers N]``: compute a space's zero-cost features.

The table is built from its public source (or from the source files downloaded by hand into
FOLDER, with the same checks) into DIR, by default the folder where the data configs look for
fetched tables (``<paths.cache_dir>/data``), so `train.py` / `search.py` use it from then on.
Zero-cost features (`nasrank.zerocost.features`) go into the default cache (env NASRANK_CACHE_DIR, else the
repo's .cache), where every run and saved ranker reads them, chunk by chunk, so an
interrupted run resumes; the command prints the CPU time it spent.
Prints the table's path; a failure is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nasrank.benchmarks import nb101, nb201_table
from nasrank.benchmarks.fetch import fetch, fetched_dir
from nasrank.cli import fail
from nasrank.core import NasrankError, default_cache_dir

RECIPES = {recipe.name: recipe for recipe in (nb101.RECIPE, nb201_table.RECIPE)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nasrank.data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="build a benchmark table from its public source")
    fetch_cmd.add_argument("table", choices=sorted(RECIPES),
                           help="; ".join(f"{name}: {r.size}" for name, r in sorted(RECIPES.items())))
    fetch_cmd.add_argument("--dir", type=Path, help=f"data folder to write into (default: {fetched_dir()})")
    fetch_cmd.add_argument("--from", dest="source", type=Path, metavar="FOLDER",
                           help="folder holding the source files downloaded by hand (" +
                                "; ".join(f"{name}: {', '.join(s.filename for s in r.sources)}" for name, r in sorted(RECIPES.items())) + ")")
    zc_cmd = commands.add_parser("zerocost", help="compute the zero-cost features of every cell of a space (cached, resumable)")
    zc_cmd.add_argument("space", help="search space: nb201 (NB101 is refused: too many networks for a CPU)")
    zc_cmd.add_argument("--workers", type=int, default=1, help="processes, one torch thread each (default 1)")
    args = parser.parse_args(argv)
    if args.command == "zerocost":
        zerocost(args.space, args.workers)
        return
    recipe = RECIPES[args.table]
    if args.source is not None:
        recipe = recipe.from_folder(args.source)
    try:
        print(fetch(recipe, args.dir or fetched_dir()))
    except NasrankError as err:
        fail(str(err))


def zerocost(space: str, workers: int) -> None:
    """Compute (or resume) a space's zero-cost table; print its path and the CPU time of this run."""
    from nasrank.core import check_at_least
    from nasrank.zerocost.features import compute_space, table_path

    start = time.process_time()
    cache_dir = default_cache_dir()
    progress = lambda done, total: print(f"chunk {done}/{total}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        check_at_least("zerocost", 1, workers=workers)
        compute_space(space, cache_dir, workers=workers, progress=progress)
    except NasrankError as err:
        fail(str(err))
    own = time.process_time() - start
    children = sum(getattr(os.times(), k) for k in ("children_user", "children_system"))
    print(f"CPU time: {own:.0f} s in this process + {children:.0f} s in workers", file=sys.stderr)
    print(table_path(space, cache_dir))


if __name__ == "__main__":
    main()
