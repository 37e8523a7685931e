"""Analytic FLOPs and parameter counts of NB201 / NB101 networks, per node of every cell, vectorised.

Input is the dense node-op form of `nasrank.encodings.graph`: ``ops`` (N, M) int, the index of each
node's op in ``space.node_ops`` (-1 for padding), ``adj`` (N, M, M) 0/1 with ``adj[n, i, j]`` an edge
i -> j, node 0 the input and node M-1 the output.  Everything is numpy over all N architectures at
once (no per-arch torch model), so the 423,624 NB101 cells take seconds.

Conventions (NB201's own ``get_model_infos``, so NB201 totals equal the benchmark's reported FLOPs):
- FLOPs: one multiply-add = one FLOP; counted for convolutions and the classifier's matmul, plus the
  classifier's bias additions.  BN, ReLU, pooling, sums and concatenations count zero.  Unit: MFLOPs
  (1e6).  This gives 7.78 to 220.11 MFLOPs over NB201 on CIFAR-10 (twice that under a 2-FLOPs-per-MAC
  convention such as ``torch.utils.flop_counter``).
- Params: every trainable parameter, BN weight and bias included.  Unit: M (1e6; xautodl's current
  ``count_parameters_in_MB`` divides by 2**20 instead).
- NB101's shared table counts with thop instead (no classifier bias, 2 FLOPs per BN output element):
  converting ours to that convention reproduces its FLOPs exactly on all 423,624 cells (see tests).
- Where a node's cost lives: NB201 nodes are edge ops (a conv's weights are its node's); an NB101
  vertex also owns the 1x1 projection that feeds it the cell input (the projection's width is the
  vertex's, and ReNAS-style matrices A_ij * cost_j only ever show destination costs); the NB101 output
  node owns the projection of the input straight to the output.  Input and padding nodes cost 0.
  Stem, reduction blocks, final BN and classifier are not in any cell: `arch_costs` adds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from nasrank.core import ConfigError, InvalidArchError
from nasrank.spaces import nb101, nb201

Costs = tuple[np.ndarray, np.ndarray]


class CostScale(NamedTuple):
    """Largest single-node FLOPs (MFLOPs) and params (M) of a space on a dataset (see `node_cost_scale`)."""

    flops: float
    params: float


@dataclass(frozen=True)
class _CellType:
    """Cells that share input/output channels and feature-map side have identical costs."""

    c_in: int
    c_out: int
    side: int


@dataclass(frozen=True)
class _Layout:
    """One space's network on one dataset: its distinct cell types and which type each cell is."""

    cell_types: tuple[_CellType, ...]
    cell_of: tuple[int, ...]  # cell index -> cell type index
    fixed: tuple[float, float]  # MACs and params outside the cells (stem, reductions, head)


def _kernel_table(node_ops: tuple[str, ...], kernels: dict[str, int]) -> np.ndarray:
    """Kernel side per op index (0 = no weights), with a trailing 0 so padding (-1) indexes to 0."""
    return np.array([kernels.get(op, 0) for op in node_ops] + [0], dtype=np.int64)


_NB201_KERNELS = _kernel_table(nb201.SPACE.node_ops, {"nor_conv_1x1": 1, "nor_conv_3x3": 3})
_NB101_KERNELS = _kernel_table(nb101.SPACE.node_ops, {"conv1x1-bn-relu": 1, "conv3x3-bn-relu": 3})
#: dataset -> (input side, classes)
_NB201_DATA = {"cifar10": (32, 10), "cifar100": (32, 100), "imagenet16": (16, 120)}
_NB101_DATA = {"cifar10": (32, 10)}


def _conv(c_in: int, c_out: int, k: int, side: int, bn: bool = True) -> tuple[int, int]:
    """(MACs, params) of a bias-free 'same' k x k conv producing side x side maps, with optional BN."""
    return k * k * c_in * c_out * side * side, k * k * c_in * c_out + (2 * c_out if bn else 0)


def _head(c: int, classes: int) -> tuple[int, int]:
    """Linear classifier: MACs plus bias additions (NB201 counts them), weights plus bias."""
    return c * classes + classes, c * classes + classes


def _sum_costs(*parts: tuple[int, int]) -> tuple[float, float]:
    return float(sum(p[0] for p in parts)), float(sum(p[1] for p in parts))


def _nb201_layout(dataset: str, channels: int = 16, cells_per_stage: int = 5) -> _Layout:
    side, classes = _NB201_DATA[dataset]
    types, parts = [], [_conv(3, channels, 3, side)]
    for stage in range(3):
        c, s = channels * 2**stage, side // 2**stage
        types.append(_CellType(c, c, s))
        if stage > 0:  # ResNet block: strided ReLUConvBN 3x3, ReLUConvBN 3x3, avgpool + 1x1 conv (no BN)
            parts += [_conv(c // 2, c, 3, s), _conv(c, c, 3, s), _conv(c // 2, c, 1, s, bn=False)]
    c_last = channels * 4
    parts += [(0, 2 * c_last), _head(c_last, classes)]  # final BN, classifier
    cell_of = tuple(t for t in range(3) for _ in range(cells_per_stage))
    return _Layout(tuple(types), cell_of, _sum_costs(*parts))


def _nb101_layout(dataset: str, stem: int = 128, cells_per_stack: int = 3) -> _Layout:
    side, classes = _NB101_DATA[dataset]
    types = [_CellType(stem, stem, side)]
    for stack in (1, 2):  # first cell of a stack widens the channels after the 2x2 max-pool
        c, s = stem * 2**stack, side // 2**stack
        types += [_CellType(c // 2, c, s), _CellType(c, c, s)]
    cell_of = (0,) * cells_per_stack + (1,) + (2,) * (cells_per_stack - 1) + (3,) + (4,) * (cells_per_stack - 1)
    return _Layout(tuple(types), cell_of, _sum_costs(_conv(3, stem, 3, side), _head(stem * 4, classes)))


def _nb201_cells(ops: np.ndarray, adj: np.ndarray, types: tuple[_CellType, ...]) -> Costs:
    """(N, T, M) MACs and params: a node's conv is k x k, C -> C, at the cell's resolution (NB201
    costs do not depend on the wiring, `adj` is unused)."""
    k2 = (_NB201_KERNELS[ops] ** 2).astype(np.float64)[:, None, :]
    c = np.array([t.c_out for t in types], dtype=np.float64)[None, :, None]
    area = np.array([t.side**2 for t in types], dtype=np.float64)[None, :, None]
    params = k2 * c * c + np.where(k2 > 0, 2 * c, 0.0)
    return k2 * c * c * area, params


def nb101_vertex_channels(adj: np.ndarray, c_out: int) -> np.ndarray:
    """nasbench ``compute_vertex_channels`` over (N, M, M) dense cells (output at M-1): (N, M) int64
    channels of the interior nodes (input, output and padding get 0; the cell knows those widths).

    The output width is split over the interior nodes feeding the output (the first `c_out % fan_in`
    in node order get one extra); every other interior node takes the max of the nodes it feeds.
    """
    n, m = adj.shape[:2]
    a = adj.astype(bool)
    feeds_out = a[:, 1 : m - 1, m - 1]
    fan_in = feeds_out.sum(1, keepdims=True)
    base, extra = np.divmod(c_out, np.maximum(fan_in, 1))
    rank = np.cumsum(feeds_out, axis=1)
    ch = np.zeros((n, m), dtype=np.int64)
    ch[:, 1 : m - 1] = np.where(feeds_out, base + (rank <= extra), 0)
    # Backwards, as nasbench: node m-2 is either the last interior node (it can only feed the output) or padding.
    for v in range(m - 3, 0, -1):
        widest = np.where(a[:, v, v + 1 : m - 1], ch[:, v + 1 : m - 1], 0).max(1)
        ch[:, v] = np.where(feeds_out[:, v - 1], ch[:, v], widest)
    return ch


def _nb101_cells(ops: np.ndarray, adj: np.ndarray, types: tuple[_CellType, ...]) -> Costs:
    """(N, T, M) MACs and params: conv k x k at the vertex width plus the 1x1 projection (conv + BN)
    of the cell input into the vertex, when the input feeds it."""
    n, m = ops.shape
    k2 = (_NB101_KERNELS[ops] ** 2).astype(np.float64)
    from_input = adj[:, 0, :].astype(np.float64)
    macs = np.empty((n, len(types), m))
    params = np.empty((n, len(types), m))
    for t, ct in enumerate(types):
        ch = nb101_vertex_channels(adj, ct.c_out).astype(np.float64)
        ch[:, m - 1] = ct.c_out
        op_params = k2 * ch * ch + np.where(k2 > 0, 2 * ch, 0.0)
        proj_params = from_input * (ct.c_in * ch + 2 * ch)
        macs[:, t] = (k2 * ch * ch + from_input * ct.c_in * ch) * ct.side**2
        params[:, t] = op_params + proj_params
    return macs, params


@dataclass(frozen=True)
class _SpaceCosts:
    node_ops: tuple[str, ...]
    max_nodes: int
    datasets: tuple[str, ...]
    layout: Callable[[str], _Layout]
    cells: Callable[[np.ndarray, np.ndarray, tuple[_CellType, ...]], Costs]
    #: (ops, adj) of one cell whose largest node is the largest node of the space (see `node_cost_scale`)
    largest: tuple[list[int], list[tuple[int, int]]]


_I201, _I101 = nb201.SPACE.node_ops.index, nb101.SPACE.node_ops.index
_SPACES = {
    "nb201": _SpaceCosts(tuple(nb201.SPACE.node_ops), nb201.SPACE.max_nodes, tuple(_NB201_DATA), _nb201_layout,
                         _nb201_cells, ([_I201("input")] + [_I201("nor_conv_3x3")] * 6 + [_I201("output")], [])),
    # input -> conv3x3 -> output: the conv has the full cell width and owns a full-width projection
    "nb101": _SpaceCosts(tuple(nb101.SPACE.node_ops), nb101.SPACE.max_nodes, tuple(_NB101_DATA), _nb101_layout,
                         _nb101_cells, ([_I101("input"), _I101("conv3x3-bn-relu")] + [-1] * 4 + [_I101("output")],
                                        [(0, 1), (1, 6)])),
}


#: Spaces with an analytic cost model (NAS-Bench-Graph's costs come from the benchmark itself).
SPACES_WITH_COSTS: tuple[str, ...] = tuple(_SPACES)


def _space(space_name: str, dataset: str) -> _SpaceCosts:
    if space_name not in _SPACES:
        raise ConfigError(f"no analytic costs for space {space_name!r}; allowed: {', '.join(SPACES_WITH_COSTS)}")
    space = _SPACES[space_name]
    if dataset not in space.datasets:
        raise ConfigError(f"unknown {space_name} dataset {dataset!r}; allowed: {', '.join(space.datasets)}")
    return space


def _checked(space: _SpaceCosts, name: str, ops: np.ndarray, adj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shapes, op range and the input-first / output-last convention, checked over the whole batch."""
    ops, adj = np.asarray(ops), np.asarray(adj)
    m = space.max_nodes
    if ops.ndim != 2 or ops.shape[1] != m or adj.shape != (ops.shape[0], m, m):
        raise InvalidArchError(f"{name} dense graphs must be ops (N, {m}) and adj (N, {m}, {m}); "
                               f"got ops {ops.shape}, adj {adj.shape}")
    if not (np.issubdtype(ops.dtype, np.integer) and ops.size and ops.min() >= -1 and ops.max() < len(space.node_ops)):
        raise InvalidArchError(f"{name} ops must be integers in -1..{len(space.node_ops) - 1} (node_ops index, -1 = padding)")
    if (ops[:, 0] != space.node_ops.index("input")).any() or (ops[:, -1] != space.node_ops.index("output")).any():
        raise InvalidArchError(f"{name} dense graphs must have the input at node 0 and the output at node {m - 1}")
    return ops.astype(np.int64), adj


def _compact(space_name: str, ops: np.ndarray, adj: np.ndarray, dataset: str) -> tuple[Costs, _Layout]:
    space = _space(space_name, dataset)
    ops, adj = _checked(space, space_name, ops, adj)
    layout = space.layout(dataset)
    return space.cells(ops, adj, layout.cell_types), layout


def node_costs(space_name: str, ops: np.ndarray, adj: np.ndarray, dataset: str) -> Costs:
    """MFLOPs and M params of every node's operation in every cell of the full network.

    Returns two float32 arrays (N, n_cells, M): n_cells is 15 for NB201 (3 stages of 5) and 9 for
    NB101 (3 stacks of 3), in network order.  `dataset`: cifar10 / cifar100 / imagenet16 for NB201
    (16x16 inputs for imagenet16), cifar10 for NB101.  See the module docstring for the conventions.
    """
    (macs, params), layout = _compact(space_name, ops, adj, dataset)
    cell_of = np.array(layout.cell_of)
    return (macs / 1e6).astype(np.float32)[:, cell_of], (params / 1e6).astype(np.float32)[:, cell_of]


def nb201_edge_costs(ops: np.ndarray, adj: np.ndarray, dataset: str) -> Costs:
    """FLOPs and params of every NB201 op node in every cell in the NAR repo's convention (the per-edge
    counts its NB201 tensor reads, unscaled): raw counts, BN included in both, so a conv's FLOPs are its
    params (k x k weights plus BN's 2 per channel) times the map area; pooling, skip and none cost 0.
    Two float32 arrays (N, 15, 8), laid out as `node_costs`.
    """
    (_, params), layout = _compact("nb201", ops, adj, dataset)
    area = np.array([t.side**2 for t in layout.cell_types], dtype=np.float64)[None, :, None]
    cell_of = np.array(layout.cell_of)
    return (params * area).astype(np.float32)[:, cell_of], params.astype(np.float32)[:, cell_of]


def arch_costs(space_name: str, ops: np.ndarray, adj: np.ndarray, dataset: str) -> Costs:
    """Whole-network MFLOPs and M params, (N,) float64 each: every cell plus stem, reduction blocks,
    final BN and classifier.  float64 so that ``params * 1e6`` rounds to the exact parameter count."""
    (macs, params), layout = _compact(space_name, ops, adj, dataset)
    per_type = np.bincount(layout.cell_of, minlength=len(layout.cell_types)).astype(np.float64)
    flops = np.einsum("ntm,t->n", macs, per_type) + layout.fixed[0]
    total = np.einsum("ntm,t->n", params, per_type) + layout.fixed[1]
    return flops / 1e6, total / 1e6


def node_cost_scale(space_name: str, dataset: str) -> CostScale:
    """The space's largest node MFLOPs and M params on `dataset`: fixed normalisers for tensor encodings.

    Fixed per (space, dataset) rather than fitted on data so every architecture is encoded the same
    way whatever the split or batch, and dividing by the maximum keeps every value in [0, 1] on every
    dataset (16x16 inputs shrink all FLOPs 4x; the scale follows).  The maximum is the largest node of
    a known cell (a full-width conv3x3 and, for NB101, its projection), computed with the same formulas.
    """
    space = _space(space_name, dataset)
    op_list, edges = space.largest
    ops = np.array([op_list])
    adj = np.zeros((1, space.max_nodes, space.max_nodes), dtype=np.uint8)
    for i, j in edges:
        adj[0, i, j] = 1
    flops, params = node_costs(space_name, ops, adj, dataset)
    return CostScale(float(flops.max()), float(params.max()))
