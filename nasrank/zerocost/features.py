"""Zero-cost features of every cell of a space: computed once on the real networks, cached, looked up.

`space_table(space)` gives one row per cell of the space in index order: the `PROXIES` of the cell's
untrained network (`nasrank.supernet.cells`, built as the benchmark built it) and its analytic
params (M) and FLOPs (MFLOPs, `nasrank.encodings.cost`, on CIFAR-10's network).  It reads the cache
that ``python -m nasrank.data zerocost <space>`` fills and never computes: a training run that
finds no table stops with one line naming that command.

How they are computed (`ZeroCostRecipe`): one fixed batch of the embedded digits (8x8, 3 channels,
64 images drawn with the recipe's seed from the training half), the network initialised from
``torch.manual_seed(seed)`` before it is built, so every cell's values depend on the recipe and the
cell only, never on the order, chunk or worker.  The references used CIFAR at 32x32; the digits are
what every install has, and 8x8 inputs make the 15,625 NB201 cells cheap (the networks end in global
pooling, so any side works).  Isomorphic cells (`Arch.iso_key`) compute the same function, so one
network per class is scored, its first member in space order, and every member gets its values.

Chunks of classes are cached one by one (atomic, checksummed; `nasrank.core.cached_arrays`), so a
killed run keeps every finished chunk and a rerun computes only the rest; the assembled table is one
more cache entry.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from nasrank.core import ConfigError, cache_path, cached_arrays, read_cached
from nasrank.encodings.cost import arch_costs
from nasrank.encodings.graph import DenseGraphs, dense_graphs
from nasrank.spaces import Arch, get_space
from nasrank.zerocost.proxies import PROXIES, all_proxies

FEATURES = (*PROXIES, "params", "flops")
#: features that span orders of magnitude and are compared as log(1 + value)
_LOG_FEATURES = ("synflow", "snip", "grad_norm", "params", "flops")
#: spaces whose whole table this CPU code computes (their one-off cost: benchmarks/zerocost_cost.py)
CPU_SPACES = ("nb201",)
NUM_CLASSES = 10


@dataclass(frozen=True)
class ZeroCostRecipe:
    """What a table's values depend on (part of its cache key)."""

    batch_size: int = 64
    seed: int = 0
    images: str = "digits"

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@lru_cache(maxsize=2)
def image_batch(recipe: ZeroCostRecipe) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe's fixed batch: images (N, 3, 8, 8), standardised with the training half's mean/std, and labels."""
    from nasrank.supernet.images import load_digits_images

    images = load_digits_images()
    rows = np.random.default_rng(recipe.seed).choice(len(images.train_x), recipe.batch_size, replace=False)
    train = torch.from_numpy(images.train_x).float() / 255
    x = (torch.from_numpy(images.train_x[rows]).float() / 255 - train.mean()) / train.std()
    return x.permute(0, 3, 1, 2).contiguous(), torch.from_numpy(images.train_y[rows])


def network(space: str, arch: Arch) -> nn.Module:
    """The cell's benchmark network (10 classes, the digits' count)."""
    from nasrank.supernet.cells import NB101Network, NB201Network

    if space == "nb201":
        return NB201Network.from_arch(arch, NUM_CLASSES)
    if space == "nb101":
        return NB101Network(arch.matrix, arch.ops, NUM_CLASSES)
    raise ConfigError(f"zero-cost features need the cell's network; space {space!r} has none here; allowed: nb201, nb101")


def score_cells(space: str, cells: Sequence[str], recipe: ZeroCostRecipe) -> np.ndarray:
    """`PROXIES` (len(cells), 5) of these cells (strings), each network built from the recipe's seed."""
    parse = get_space(space).from_str
    x, y = image_batch(recipe)
    out = np.empty((len(cells), len(PROXIES)))
    for i, cell in enumerate(cells):
        torch.manual_seed(recipe.seed)
        out[i] = all_proxies(network(space, parse(cell)), x, y)  # dead networks give NaN / -inf, kept as such
    return out


def _one_thread_scores(args: tuple[str, list[str], ZeroCostRecipe]) -> np.ndarray:
    torch.set_num_threads(1)  # one process per core: more threads per process only contend
    return score_cells(*args)


def chunked_scores(space: str, cells: Sequence[str], recipe: ZeroCostRecipe, cache_dir: Path, chunk_size: int = 256,
                   workers: int = 1, progress: Callable[[int, int], None] | None = None,
                   scorer: Callable[[tuple[str, list[str], ZeroCostRecipe]], np.ndarray] = _one_thread_scores) -> np.ndarray:
    """Scores of `cells`, chunk by chunk through the cache: finished chunks are read, the others
    computed (by `workers` processes) and each written as soon as it is done."""
    chunks = [list(cells[i:i + chunk_size]) for i in range(0, len(cells), chunk_size)]
    keys = [f"{recipe.key()}|{space}|{json.dumps(chunk)}" for chunk in chunks]
    folder = cache_dir / f"zerocost-{space}-chunks"
    done = {i: arrays["scores"] for i, key in enumerate(keys)
            if (arrays := read_cached("chunk", [], folder, key)) is not None}
    todo = [i for i in range(len(chunks)) if i not in done]
    jobs = [(space, chunks[i], recipe) for i in todo]
    with get_context("fork").Pool(workers) if workers > 1 else _Serial() as pool:
        for i, scores in zip(todo, pool.imap(scorer, jobs)):
            done[i] = cached_arrays("chunk", [], lambda: {"scores": scores}, folder, keys[i])["scores"]
            if progress is not None:
                progress(len(done), len(chunks))
    return np.concatenate([done[i] for i in range(len(chunks))]) if chunks else np.empty((0, len(PROXIES)))


class _Serial:
    """`Pool`'s `imap` in this process (no fork for one worker)."""

    def __enter__(self) -> "_Serial":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap(self, func, jobs):
        return map(func, jobs)


def _table_key(space: str, recipe: ZeroCostRecipe) -> str:
    return f"{recipe.key()}|{space}"


def table_path(space: str, cache_dir: Path, recipe: ZeroCostRecipe = ZeroCostRecipe()) -> Path:
    """The cache file of a space's table."""
    return cache_path(f"zerocost-{space}", [], cache_dir, _table_key(space, recipe))


def check_space(space: str) -> None:
    """One line unless this code computes the space's table."""
    if space not in CPU_SPACES:
        raise ConfigError(
            f"zero-cost features of space {space!r} are not computed here; allowed: {', '.join(CPU_SPACES)} "
            "(NB101 needs all 423,624 networks scored: CPU-hours per BENCHMARKS.md, 'Zero-cost features: one-off cost')")


def compute_space(space: str, cache_dir: Path, recipe: ZeroCostRecipe = ZeroCostRecipe(), workers: int = 1,
                  chunk_size: int = 256, progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Compute (or resume) the whole space's table and cache it; what `space_table` then reads."""
    check_space(space)

    def build() -> dict[str, np.ndarray]:
        from nasrank.encodings.archs import first_members  # archs reads this module's tables

        archs = list(get_space(space).enumerate())
        first = first_members(archs)
        reps = np.unique(first)
        scores = chunked_scores(space, [archs[i].to_str() for i in reps], recipe, cache_dir, chunk_size, workers, progress)
        per_cell = scores[np.searchsorted(reps, first)]
        graphs = dense_graphs(archs, get_space(space))
        flops, params = arch_costs(space, graphs.ops, graphs.adj, "cifar10")
        return {"raw": np.concatenate([per_cell, params[:, None], flops[:, None]], 1), "representative": first}

    return cached_arrays(f"zerocost-{space}", [], build, cache_dir, _table_key(space, recipe))


def space_table(space: str, cache_dir: Path, recipe: ZeroCostRecipe = ZeroCostRecipe(), reader: str = "data.zero_cost") -> np.ndarray:
    """Raw `FEATURES` (cells of the space in index order, 7) from the cache; one line naming the command
    that fills it, and the option that asked for it (`reader`), when it is absent."""
    check_space(space)
    arrays = read_cached(f"zerocost-{space}", [], cache_dir, _table_key(space, recipe))
    if arrays is None:
        raise ConfigError(f"no zero-cost features of space {space!r} in {cache_dir}; compute them once with "
                          f"`python -m nasrank.data zerocost {space}` (its cost: BENCHMARKS.md, 'Zero-cost features: one-off cost'), "
                          f"or drop {reader}")
    return arrays["raw"]


def standardized(raw: np.ndarray) -> np.ndarray:
    """Model inputs: log(1 + v) for the wide-ranged features, non-finite values (networks whose output
    ignores the input) set to the column's worst finite value, then z-scores over the whole space, so a
    cell's features never depend on which other cells are encoded with it."""
    x = raw.astype(np.float64).copy()
    for j, name in enumerate(FEATURES):
        if name in _LOG_FEATURES:
            x[:, j] = np.log1p(np.clip(x[:, j], 0, None))
        finite = np.isfinite(x[:, j])
        x[~finite, j] = x[finite, j].min() if finite.any() else 0.0
    return ((x - x.mean(0)) / (x.std(0) + 1e-12)).astype(np.float32)


def cell_indices(space: str, graphs: DenseGraphs) -> np.ndarray:
    """Index in the space of each dense graph's cell (NB201: the 6 edge ops in base 5)."""
    if space != "nb201":
        raise ConfigError(f"zero-cost features are looked up for nb201 cells only, not {space!r}")
    ops = graphs.ops[:, 1:7].astype(np.int64) - 1  # node ops are ("input", *OPS, "output")
    return ops @ (5 ** np.arange(5, -1, -1))
