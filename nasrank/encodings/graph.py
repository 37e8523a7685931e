"""Architectures as graphs: stacked dense node-op arrays, and PyG batches built from them.

Every space is first stacked once into dense arrays (`DenseGraphs`): all spaces have at most 8
nodes, so a whole benchmark (423,624 NB101 cells included) fits in a few arrays and a PyG `Batch`
can be assembled for any set of rows with a few vectorised tensor ops, instead of building and
collating one `Data` object per cell.  Layout: node 0 is the input, the output node is always
the last slot (M - 1), padding (op -1) sits between, as ReNAS pads NB101 cells to 7 nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from nasrank.spaces.base import Arch, Space


@dataclass(frozen=True)
class DenseGraphs:
    """`ops` int8 (N, M): index into `space.node_ops`, -1 = padding; `adj` uint8 (N, M, M)."""

    ops: np.ndarray
    adj: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.ops >= 0


def dense_graphs(archs: Sequence[Arch], space: Space) -> DenseGraphs:
    """Stack `Arch.node_graph()` of every arch (output node moved to the last slot)."""
    m = space.max_nodes
    lookup = {op: i for i, op in enumerate(space.node_ops)}
    ops = np.full((len(archs), m), -1, dtype=np.int8)
    adj = np.zeros((len(archs), m, m), dtype=np.uint8)
    for n, arch in enumerate(archs):
        labels, edges = arch.node_graph()
        slot = list(range(len(labels) - 1)) + [m - 1]
        ops[n, slot] = [lookup[op] for op in labels]
        if edges:
            src, dst = zip(*edges)
            adj[n, [slot[s] for s in src], [slot[d] for d in dst]] = 1
    return DenseGraphs(ops, adj)


def to_batch(ops: torch.Tensor, adj: torch.Tensor, num_ops: int, node_extra: torch.Tensor | None = None, **graph_attrs: torch.Tensor) -> Batch:
    """A PyG `Batch` of B graphs from dense (B, M) ops and (B, M, M) adjacency.

    `x` = op one-hot, with `node_extra` (B, M, F) features appended per node; `graph_attrs` are
    graph-level tensors with leading dim B (targets, tiers, tensor encodings) attached as-is.
    """
    ops = ops.long()
    mask = ops >= 0
    num_nodes = mask.sum(1)
    # global id of each valid node; padding slots keep -1 and never appear in edges
    gid = torch.full_like(ops, -1)
    gid[mask] = torch.arange(int(num_nodes.sum()))
    x = torch.nn.functional.one_hot(ops[mask], num_ops).float()
    if node_extra is not None:
        x = torch.cat([x, node_extra[mask].float()], dim=1)
    b, i, j = adj.nonzero(as_tuple=True)
    edge_index = torch.stack([gid[b, i], gid[b, j]])
    batch_vec = torch.repeat_interleave(torch.arange(len(ops)), num_nodes)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), num_nodes.cumsum(0)])
    out = Batch(x=x, edge_index=edge_index, batch=batch_vec, ptr=ptr, **graph_attrs)
    out._num_graphs = len(ops)
    return out


def arch_to_data(arch: Arch, space: Space, y: float | None = None) -> Data:
    """One arch as a PyG `Data` (same features as `to_batch`; for inspection and single queries)."""
    dense = dense_graphs([arch], space)
    batch = to_batch(torch.from_numpy(dense.ops), torch.from_numpy(dense.adj), len(space.node_ops))
    data = Data(x=batch.x, edge_index=batch.edge_index)
    if y is not None:
        data.y = torch.tensor([y], dtype=torch.float)
    return data
