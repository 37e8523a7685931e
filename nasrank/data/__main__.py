"""``python -m nasrank.data fetch nb101|nb201 [--dir DIR] [--from FOLDER]``: fetch a benchmark table.

The table is built from its public source (or from the source files downloaded by hand into
FOLDER, with the same checks) into DIR, by default the folder where the data configs look for
fetched tables (``<paths.cache_dir>/data``), so `train.py` / `search.py` use it from then on.
Prints the table's path; a failure is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from nasrank.benchmarks import nb101, nb201_table
from nasrank.benchmarks.fetch import fetch, fetched_dir
from nasrank.cli import CONF_DIR, fail  # nasrank.cli also registers the repo_root resolver of conf/paths
from nasrank.core import NasrankError

RECIPES = {recipe.name: recipe for recipe in (nb101.RECIPE, nb201_table.RECIPE)}


def config_fetched_dir() -> Path:
    """``<paths.cache_dir>/data`` as the configs resolve it (env NASRANK_CACHE_DIR, else the repo's .cache)."""
    paths = OmegaConf.create({"paths": OmegaConf.load(CONF_DIR / "paths" / "default.yaml")})
    return fetched_dir(paths.paths.cache_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nasrank.data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="build a benchmark table from its public source")
    fetch_cmd.add_argument("table", choices=sorted(RECIPES),
                           help="; ".join(f"{name}: {r.size}" for name, r in sorted(RECIPES.items())))
    fetch_cmd.add_argument("--dir", type=Path, help=f"data folder to write into (default: {config_fetched_dir()})")
    fetch_cmd.add_argument("--from", dest="source", type=Path, metavar="FOLDER",
                           help="folder holding the source files downloaded by hand (" +
                                "; ".join(f"{name}: {', '.join(s.filename for s in r.sources)}" for name, r in sorted(RECIPES.items())) + ")")
    args = parser.parse_args(argv)
    recipe = RECIPES[args.table]
    if args.source is not None:
        recipe = recipe.from_folder(args.source)
    try:
        print(fetch(recipe, args.dir or config_fetched_dir()))
    except NasrankError as err:
        fail(str(err))


if __name__ == "__main__":
    main()
