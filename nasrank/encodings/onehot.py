"""The flat one-hot encoding of cells that the table baselines (MLP ensemble, GBDT) read.

The padded op one-hot of each node slot plus the flattened upper-triangular adjacency, with columns
that never vary across the benchmark dropped: for NB201 that leaves exactly the 6 edges × 5 ops = 30
dims (its node graph's wiring is fixed), for NB101 the 5 inner slots × 3 ops plus the free adjacency bits.
"""

from __future__ import annotations

import numpy as np

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.encodings.graph import DenseGraphs, dense_graphs


def onehot_features(benchmark: Benchmark, graphs: DenseGraphs | None = None) -> np.ndarray:
    """(N, D) float32 one-hot op + adjacency encoding of every row, constant columns dropped.

    Dropping uses the architectures only (never targets), so it leaks nothing about the test rows;
    pass `graphs` when the caller already stacked them (the datamodule caches them).
    """
    g = graphs if graphs is not None else dense_graphs(benchmark.archs, benchmark.space)
    num_ops = len(benchmark.space.node_ops)
    ops = (g.ops[:, :, None] == np.arange(num_ops)[None, None, :]).reshape(len(g.ops), -1)  # padding (-1) → zeros
    iu, ju = np.triu_indices(g.adj.shape[1], 1)
    feats = np.concatenate([ops, g.adj[:, iu, ju].astype(bool)], 1)
    varying = feats.min(0) != feats.max(0)
    return feats[:, varying].astype(np.float32)
