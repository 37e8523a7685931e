"""Cheap predictors every learned ranker must beat: an MLP ensemble and a GBDT on one-hot cells, and
zero-cost proxies of the untrained networks, which need no labelled cell at all.

They work directly on a `Benchmark` table (no Lightning, no PyG) so the ranking benchmark and the
search strategies can fit one on the rows queried so far and score the whole space in a second.
Features are `nasrank.encodings.onehot.onehot_features` of the benchmark's cells.  Its constant
columns are dropped per table, so a fitted baseline belongs to its table and is not saved as a ranker
artifact.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.core import ConfigError, default_cache_dir
from nasrank.encodings.graph import DenseGraphs, dense_graphs
from nasrank.encodings.onehot import onehot_features
from nasrank.models.encoders import mlp
from nasrank.models.losses import PairwiseLogistic
from nasrank.zerocost.features import FEATURES, cell_indices, space_table, standardized


class TableRanker:
    """Base of the table baselines: `fit(rows)` on a benchmark's target, `score(rows)` (higher = better).

    Args:
        benchmark: the table whose rows are fitted and scored.
        target: target key, e.g. ``"cifar10/test_acc"``.
        seed: seeds every random choice, so the same call gives the same scores.
        graphs: the benchmark's stacked dense graphs, if already built.
    """

    def __init__(self, benchmark: Benchmark, target: str, seed: int = 0, graphs: DenseGraphs | None = None) -> None:
        self.values = np.asarray(benchmark.target(target), dtype=np.float64)
        self.features = onehot_features(benchmark, graphs)
        self.seed = seed
        self.fitted = False

    def _rows(self, rows: Sequence[int] | np.ndarray | None) -> np.ndarray:
        if rows is None:
            return np.arange(len(self.values))
        rows = np.asarray(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer) or (len(rows) and (rows.min() < 0 or rows.max() >= len(self.values))):
            raise ConfigError(f"rows must be a 1-D array of row indices in 0..{len(self.values) - 1}, got shape {rows.shape} {rows.dtype}")
        return rows

    def fit(self, rows: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray | None = None) -> "TableRanker":
        """Fit on these benchmark rows and their measured values (default: the table's); returns self."""
        rows = self._rows(rows)
        values = self.values[rows] if values is None else np.asarray(values, dtype=np.float64)
        if values.shape != rows.shape:
            raise ConfigError(f"fit needs one value per row: {len(rows)} rows, values of shape {values.shape}")
        if len(np.unique(values)) < 2:
            raise ConfigError(f"fit needs at least 2 rows with different target values, got {len(rows)} rows")
        self._fit(self.features[rows], values)
        self.fitted = True
        return self

    def score(self, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Scores of these rows (all rows if None); a row's score does not depend on the other rows asked."""
        if not self.fitted:
            raise ConfigError(f"{type(self).__name__}.score called before fit")
        return self._score(self.features[self._rows(rows)])

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with n torch threads (None: unchanged), restoring the caller's setting after."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class MLPEnsemble(TableRanker):
    """Small MLPs trained with the pairwise logistic ranking loss; member scores z-scored, then averaged.

    Each member is z-scored with its own mean/std on the training rows (fixed at fit time), so that
    members on different scales weigh equally and a row's score never depends on which rows are scored.
    Training uses `threads` torch threads (default 1): its matrices are tiny, so more threads only add
    synchronisation (measured on 2 busy cores: 0.6 s with 1 thread, 11.8 s with 2).
    """

    def __init__(self, benchmark: Benchmark, target: str, seed: int = 0, graphs: DenseGraphs | None = None,
                 members: int = 3, hidden: int = 128, layers: int = 2, epochs: int = 300, batch_size: int = 256,
                 lr: float = 1e-3, weight_decay: float = 1e-4, threads: int | None = 1) -> None:
        super().__init__(benchmark, target, seed, graphs)
        if members < 1 or epochs < 1 or batch_size < 2:
            raise ConfigError(f"MLPEnsemble needs members ≥ 1, epochs ≥ 1, batch_size ≥ 2; got {members}, {epochs}, {batch_size}")
        self.members, self.hidden, self.layers = members, hidden, layers
        self.epochs, self.batch_size, self.lr, self.weight_decay, self.threads = epochs, batch_size, lr, weight_decay, threads
        self.nets: list[tuple[nn.Module, float, float]] = []

    def _train_one(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():  # weight init from our seed without touching the caller's RNG
            torch.manual_seed(seed)
            net = mlp([x.shape[1]] + [self.hidden] * self.layers + [1])
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = PairwiseLogistic()
        for _ in range(self.epochs):
            for idx in torch.randperm(len(x), generator=gen).split(self.batch_size):
                opt.zero_grad()
                loss_fn(net(x[idx]).squeeze(-1), y[idx]).backward()
                opt.step()
        return net.eval()

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y).float()
        self.nets = []
        with torch_threads(self.threads):
            for k in range(self.members):
                net = self._train_one(xt, yt, self.seed * 1000 + k)
                with torch.no_grad():
                    s = net(xt).squeeze(-1)
                self.nets.append((net, float(s.mean()), float(s.std()) + 1e-8))

    def _score(self, x: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(x)
        with torch.no_grad():
            z = [(net(xt).squeeze(-1) - mu) / sd for net, mu, sd in self.nets]
        return torch.stack(z).mean(0).double().numpy()


class GBDT(TableRanker):
    """LightGBM regressor on the same features (pointwise: predicts the target itself).

    Defaults are tuned for the small training sets of ranking benchmarks (78–1563 cells): small leaves
    and child sizes, many slow trees; LightGBM's own defaults (min 20 rows per leaf) give KTau 0.17 at
    n = 78 on NB201 CIFAR-10 instead of 0.34.
    """

    def __init__(self, benchmark: Benchmark, target: str, seed: int = 0, graphs: DenseGraphs | None = None,
                 n_estimators: int = 1000, learning_rate: float = 0.03, num_leaves: int = 15,
                 min_child_samples: int = 3, subsample: float = 0.8, colsample_bytree: float = 0.8, n_jobs: int = 1) -> None:
        super().__init__(benchmark, target, seed, graphs)
        try:
            from lightgbm import LGBMRegressor
        except ImportError:
            raise ConfigError("the gbdt baseline needs lightgbm: pip install lightgbm") from None
        self.model = LGBMRegressor(n_estimators=n_estimators, learning_rate=learning_rate, num_leaves=num_leaves,
                                   min_child_samples=min_child_samples, subsample=subsample, subsample_freq=1,
                                   colsample_bytree=colsample_bytree, random_state=seed, n_jobs=n_jobs, verbose=-1)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        self.model.fit(x, y)

    def _score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(x), dtype=np.float64)


class ZeroCostRanker(TableRanker):
    """No training at all: one zero-cost feature of the untrained network as the score, or ``rank_sum``,
    the sum of each feature's rank over the whole space (the literature's no-training combination).

    Features come from the space's cached table (`nasrank.zerocost.features`), standardised, so a network
    whose output ignores its input ranks last; ranks are over the space, not the rows asked, so a row's
    score never depends on the other rows.  `fit` only checks its rows: nothing is learned from them.
    """

    def __init__(self, benchmark: Benchmark, target: str, seed: int = 0, graphs: DenseGraphs | None = None,
                 feature: str = "rank_sum", threads: int | None = None) -> None:
        super().__init__(benchmark, target, seed, graphs)
        if feature not in (*FEATURES, "rank_sum"):
            raise ConfigError(f"zero-cost feature {feature!r}; allowed: {', '.join(FEATURES)}, rank_sum")
        space = benchmark.space.name
        table = standardized(space_table(space, default_cache_dir()))
        column = rankdata(table, axis=0).sum(1) if feature == "rank_sum" else table[:, FEATURES.index(feature)]
        cells = graphs if graphs is not None else dense_graphs(benchmark.archs, benchmark.space)
        self.features = np.asarray(column, dtype=np.float64)[cell_indices(space, cells)][:, None]

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        return None

    def _score(self, x: np.ndarray) -> np.ndarray:
        return x[:, 0].copy()


#: Zero-cost baselines by name: ``zc_<feature>`` and ``zc_rank_sum``.
ZERO_COST = (*FEATURES, "rank_sum")
BASELINES: dict[str, Callable[..., TableRanker]] = {
    "mlp_ensemble": MLPEnsemble, "gbdt": GBDT, **{f"zc_{f}": partial(ZeroCostRanker, feature=f) for f in ZERO_COST}}
