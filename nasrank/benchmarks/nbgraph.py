"""NAS-Bench-Graph (PyPI `nas-bench-graph`): GNN cells on 9 node-classification datasets.

The package stores each dataset as a pickle; it is read here through the restricted unpickler
(numpy scalars only), not with the package's plain `pickle.load`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.benchmarks.safe_pickle import NUMPY_GLOBALS, safe_load
from nasrank.core import cached_arrays, ConfigError, CorruptDataError, InvalidArchError, require_file
from nasrank.spaces.nbgraph import SPACE, NBGraphArch

DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")
FIELDS = {"valid_perf": "valid_acc", "perf": "test_acc", "latency": "latency", "para": "params"}
HOW_TO_GET = "install it with `pip install nas-bench-graph`"


def default_path(dataset: str) -> Path:
    """`light/<dataset>.bench` inside the installed package."""
    spec = importlib.util.find_spec("nas_bench_graph")
    root = Path(list(spec.submodule_search_locations)[0]) if spec and spec.submodule_search_locations else Path("nas_bench_graph")
    return root / "light" / f"{dataset}.bench"


def _parse(path: Path) -> dict[str, np.ndarray]:
    table = safe_load(path, NUMPY_GLOBALS)
    if not isinstance(table, dict) or not table:
        raise CorruptDataError(f"NAS-Bench-Graph file {path}: expected a non-empty dict keyed by arch, got {type(table).__name__}")
    keys = sorted(table)
    try:
        for k in keys:
            NBGraphArch.from_key(k)
        out = {name: np.array([float(table[k][f]) for k in keys]) for f, name in FIELDS.items()}
    except (InvalidArchError, KeyError, TypeError, ValueError) as err:
        raise CorruptDataError(f"NAS-Bench-Graph file {path}: unexpected entry ({err})") from None
    return {"keys": np.array(keys, dtype=np.int64), **out}


def load_nbgraph(dataset: str, path: str | Path | None = None, cache_dir: Path | None = None) -> Benchmark:
    """One dataset: targets `<dataset>/test_acc`, `<dataset>/valid_acc` (percent); costs
    `<dataset>/latency` (s) and `<dataset>/params` (M), as the package stores them."""
    if dataset not in DATASETS:
        raise ConfigError(f"unknown NAS-Bench-Graph dataset {dataset!r}; allowed: {', '.join(DATASETS)}")
    src = require_file(Path(path) if path else default_path(dataset), f"NAS-Bench-Graph file for {dataset}", HOW_TO_GET)
    arrays = cached_arrays(f"nbgraph_{dataset}", [src], lambda: _parse(src), cache_dir)
    archs = [NBGraphArch.from_key(k) for k in arrays["keys"].tolist()]
    targets = {f"{dataset}/{m}": arrays[m] * 100.0 for m in ("test_acc", "valid_acc")}
    costs = {f"{dataset}/{m}": arrays[m] for m in ("latency", "params")}
    return Benchmark(f"nbgraph_{dataset}", SPACE, archs, targets, costs)


def load_nbgraph_joint(datasets: list[str] | tuple[str, ...] = DATASETS[:8], cache_dir: Path | None = None) -> Benchmark:
    """Several datasets as one benchmark over the cells they all contain, so a ranker trained on
    one dataset's targets is evaluated on another's (`eval_targets`) with the same rows and encoding."""
    if not datasets:
        raise ConfigError(f"no NAS-Bench-Graph datasets given; allowed: {', '.join(DATASETS)}")
    parts = [load_nbgraph(d, cache_dir=cache_dir) for d in datasets]
    common = set.intersection(*({a.key for a in p.archs} for p in parts))
    archs = [a for a in parts[0].archs if a.key in common]
    targets, costs = {}, {}
    for part in parts:
        rows = [part.index_of(a) for a in archs]
        targets.update({k: v[rows] for k, v in part.targets.items()})
        costs.update({k: v[rows] for k, v in part.costs.items()})
    return Benchmark("nbgraph_joint", SPACE, archs, targets, costs)
