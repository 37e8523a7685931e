"""Flow-aware graph encoder after FlowerFormer (Hwang et al., CVPR 2024): a cell is read the way
data flows through it.

Each layer has two parts, summed as in a GPS layer:
- flow message passing: nodes are updated one topological generation at a time, first from the input
  forwards (a node's state is a GRU update of its own features with the attention-weighted states of
  its already-updated predecessors), then from the output backwards over the forward states, so after
  one layer a node's state has seen every ancestor and every descendant, in order;
- flow attention: global self-attention restricted to node pairs on a common path (one reaches the
  other), since two ops on parallel branches never process each other's output.

It reads only `x`, `edge_index` and `batch` of the node-op DAG, so it serves every space (ops on edges,
as NB201's, are nodes of that DAG) and both model families, like the GIN.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_add_pool, global_mean_pool
from torch_geometric.utils import scatter, softmax, to_dense_adj, to_dense_batch

from nasrank.core import ConfigError

#: Generations after the sources in topological order: (in-edges, nodes) of each.
Steps = list[tuple[Tensor, Tensor]]


def topological_depth(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Length of the longest path from a source to each node (sources 0): nodes of one depth have
    no edge between them and all their predecessors have a smaller depth, so they update together."""
    depth = torch.zeros(num_nodes, dtype=torch.long, device=edge_index.device)
    src, dst = edge_index
    for _ in range(num_nodes):  # the longest path of a DAG has fewer edges than it has nodes
        deeper = depth.scatter_reduce(0, dst, depth[src] + 1, reduce="amax")
        if torch.equal(deeper, depth):
            break
        depth = deeper
    return depth


def flow_mask(edge_index: Tensor, batch: Tensor, num_graphs: int, max_nodes: int) -> Tensor:
    """(B, M, M) bool, True where node i reaches node j or j reaches i (each node reaches itself,
    padding slots included, so no attention row is empty)."""
    reach = to_dense_adj(edge_index, batch, batch_size=num_graphs, max_num_nodes=max_nodes) > 0
    reach |= torch.eye(max_nodes, dtype=torch.bool, device=reach.device)
    for _ in range(max(1, (max_nodes - 1).bit_length())):  # squaring doubles the path length covered
        reach = (reach.float() @ reach.float()) > 0
    return reach | reach.transpose(1, 2)


def schedule(edge_index: Tensor, num_nodes: int) -> Steps:
    """The generations after the sources, in topological order: (in-edges, nodes) of each.  Computed
    once per batch and shared by every layer."""
    depth = topological_depth(edge_index, num_nodes)
    edge_depth = depth[edge_index[1]]
    return [(edge_index[:, edge_depth == g], (depth == g).nonzero().squeeze(1)) for g in range(1, int(depth.max()) + 1)]


class FlowSweep(nn.Module):
    """One pass over the DAG in topological order: generation by generation, each node's state is a
    GRU update of its input features with the attention-weighted sum of its (already updated)
    predecessors' states.  The backward pass is the same module run on the reversed edges' schedule.

    The attention score reads only the sender's state: a term from the receiver would be the same for
    all of its in-edges and cancel in their softmax.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.gru = nn.GRUCell(dim, dim)

    def forward(self, x: Tensor, steps: Steps) -> Tensor:
        h = self.gru(x)  # sources have no predecessors; every other node is overwritten at its generation
        for (src, dst), nodes in steps:
            sent = h[src]
            alpha = softmax(self.score(sent), dst, num_nodes=len(x))
            msg = scatter(alpha * sent, dst, dim=0, dim_size=len(x), reduce="sum")
            h = h.index_put((nodes,), self.gru(x[nodes], msg[nodes]))
        return h


class FlowLayer(nn.Module):
    """Forward + backward flow message passing and flow-masked attention, each with a residual
    connection and batch norm, summed, then a residual feed-forward block (a GPS layer's layout)."""

    def __init__(self, dim: int, heads: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.forward_sweep, self.backward_sweep = FlowSweep(dim), FlowSweep(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=attn_dropout, bias=False, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.norm_local, self.norm_attn, self.norm_ff = nn.BatchNorm1d(dim), nn.BatchNorm1d(dim), nn.BatchNorm1d(dim)
        self.dropout = nn.Dropout(dropout)
        self.heads = heads

    def forward(self, h: Tensor, forward_steps: Steps, backward_steps: Steps, batch: Tensor, blocked: Tensor) -> Tensor:
        local = torch.relu(self.backward_sweep(self.forward_sweep(h, forward_steps), backward_steps))
        local = self.norm_local(h + self.dropout(local))
        dense, real = to_dense_batch(h, batch, batch_size=blocked.shape[0], max_num_nodes=blocked.shape[1])
        att, _ = self.attn(dense, dense, dense, attn_mask=blocked.repeat_interleave(self.heads, 0), need_weights=False)
        att = self.norm_attn(h + self.dropout(att[real]))
        h = local + att
        return self.norm_ff(h + self.dropout(self.ff(h)))


class FlowEncoder(nn.Module):
    """FlowerFormer-style encoder: a linear embedding of the node features, `layers` flow layers,
    sum + mean readout of the last layer (the sum keeps a cell's size, which varies on NB101).

    Args:
        in_dim: node feature size (op one-hot and costs; from the data).
        max_nodes: nodes per cell in the space (from the data), the dense attention's width.
        hidden: state size; must be divisible by `heads`.
        layers: flow layers.
        heads: attention heads.
        dropout: dropout of the residual branches.
        attn_dropout: dropout of the attention weights.
    """

    def __init__(self, in_dim: int, max_nodes: int, hidden: int = 64, layers: int = 3, heads: int = 4,
                 dropout: float = 0.0, attn_dropout: float = 0.0) -> None:
        if hidden % heads:
            raise ConfigError(f"flow encoder: hidden={hidden} must be divisible by heads={heads}")
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.layers = nn.ModuleList(FlowLayer(hidden, heads, dropout, attn_dropout) for _ in range(layers))
        self.max_nodes = max_nodes
        self.out_dim = 2 * hidden

    def forward(self, batch) -> Tensor:
        edge_index, n = batch.edge_index, batch.num_nodes
        steps = schedule(edge_index, n), schedule(edge_index.flip(0), n)
        blocked = ~flow_mask(edge_index, batch.batch, batch.num_graphs, self.max_nodes)
        h = self.embed(batch.x)
        for layer in self.layers:
            h = layer(h, *steps, batch.batch, blocked)
        return torch.cat([global_add_pool(h, batch.batch, batch.num_graphs), global_mean_pool(h, batch.batch, batch.num_graphs)], 1)
