"""Label-free pretext targets of a cell: what an encoder is pretrained to predict from its embedding.

Every target is a function of the dense node-op graph alone (`nasrank.encodings.graph.DenseGraphs`), so it
is known for every cell of a space without training any network.  They describe what a ranker has to see
in a cell: its size (analytic FLOPs and params, which track accuracy in NB201/NB101), which ops actually
reach the output (an op whose only paths pass through `none` computes nothing that matters) and how the
live ops are wired (depth, number of input-to-output paths).

`TARGETS` maps a name (`pretrain.targets`) to a function `(graphs, space, cost_dataset) -> (N, k) float64`;
a new label-free statistic joins by adding an entry.  `zero_cost` reads the space's zero-cost table
(`nasrank.zerocost`: scores of the untrained networks), which pretraining then distils into the encoder: a
ranker started from it needs no table at scoring time, unlike `data.zero_cost=true` inputs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from nasrank.core import ConfigError, default_cache_dir
from nasrank.encodings.cost import SPACES_WITH_COSTS, arch_costs
from nasrank.encodings.graph import DenseGraphs
from nasrank.spaces import Space
from nasrank.zerocost.features import cell_indices, space_table, standardized

Target = Callable[[DenseGraphs, Space, str], np.ndarray]
#: ops whose node passes nothing on (NB201's `none`); padding nodes pass nothing either
BLOCKING_OPS = ("none",)
#: node ops that are not operations of the cell
ENDPOINTS = ("input", "output")


def live_paths(graphs: DenseGraphs, space: Space) -> tuple[np.ndarray, np.ndarray]:
    """Path counts over the edges between passing nodes (not padding, not `none`):
    `walks[n, k]` is the number of input-to-output paths of k edges of cell n (k = 0..M-1), and
    `live[n, v]` whether node v lies on at least one of them."""
    ops = graphs.ops.astype(np.int64)
    m = ops.shape[1]
    blocking = [space.node_ops.index(op) for op in BLOCKING_OPS if op in space.node_ops]
    passing = (ops >= 0) & ~np.isin(ops, blocking)
    edges = graphs.adj.astype(np.float64) * passing[:, :, None] * passing[:, None, :]
    power = np.broadcast_to(np.eye(m), edges.shape).copy()
    total = np.zeros_like(edges)
    walks = np.zeros((len(ops), m))
    for k in range(1, m):
        power = power @ edges  # power[n, i, j]: paths of exactly k edges from i to j
        total += power
        walks[:, k] = power[:, 0, m - 1]
    live = (total[:, 0, :] > 0) & (total[:, :, m - 1] > 0)
    return walks, live


def cost(graphs: DenseGraphs, space: Space, cost_dataset: str) -> np.ndarray:
    """log MFLOPs and log M params of the whole network (`nasrank.encodings.cost.arch_costs`)."""
    if space.name not in SPACES_WITH_COSTS:
        raise ConfigError(f"pretext target 'cost' needs analytic costs, which space {space.name!r} lacks "
                          f"(spaces with costs: {', '.join(SPACES_WITH_COSTS)}); drop it from pretrain.targets")
    flops, params = arch_costs(space.name, graphs.ops, graphs.adj, cost_dataset)
    return np.log(np.stack([flops, params], 1))


def op_counts(graphs: DenseGraphs, space: Space, cost_dataset: str) -> np.ndarray:
    """Per operation of the space (endpoints and blocking ops left out), how many live nodes have it."""
    _, live = live_paths(graphs, space)
    kinds = [i for i, op in enumerate(space.node_ops) if op not in ENDPOINTS + BLOCKING_OPS]
    return np.stack([((graphs.ops == i) & live).sum(1) for i in kinds], 1).astype(np.float64)


def depth(graphs: DenseGraphs, space: Space, cost_dataset: str) -> np.ndarray:
    """Operations on the longest and on the shortest input-to-output path (0 and 0 when the output
    is cut off from the input)."""
    walks, _ = live_paths(graphs, space)
    reached = walks > 0
    lengths = np.arange(walks.shape[1])
    longest = np.where(reached, lengths, 0).max(1)
    shortest = np.where(reached, lengths, walks.shape[1]).min(1)
    shortest = np.where(reached.any(1), shortest, 0)
    return np.stack([np.maximum(longest - 1, 0), np.maximum(shortest - 1, 0)], 1).astype(np.float64)


def paths(graphs: DenseGraphs, space: Space, cost_dataset: str) -> np.ndarray:
    """log(1 + number of input-to-output paths through live nodes)."""
    walks, _ = live_paths(graphs, space)
    return np.log1p(walks.sum(1, keepdims=True))


def zero_cost(graphs: DenseGraphs, space: Space, cost_dataset: str) -> np.ndarray:
    """The standardised zero-cost features of each cell's untrained network (`nasrank.zerocost.features`),
    from the space's table in the default cache, where `python -m nasrank.data zerocost` writes it."""
    table = space_table(space.name, default_cache_dir(), reader="zero_cost from pretrain.targets (pretrain=cell_stats needs no table)")
    return standardized(table)[cell_indices(space.name, graphs)]


TARGETS: dict[str, Target] = {"cost": cost, "op_counts": op_counts, "depth": depth, "paths": paths, "zero_cost": zero_cost}


def pretext_targets(names: tuple[str, ...], graphs: DenseGraphs, space: Space, cost_dataset: str) -> np.ndarray:
    """The chosen targets of every cell side by side, (N, total width) float64."""
    if unknown := [n for n in names if n not in TARGETS]:
        raise ConfigError(f"unknown pretext target(s) {unknown}; allowed: {', '.join(TARGETS)}")
    return np.concatenate([TARGETS[n](graphs, space, cost_dataset) for n in names], 1)
