"""ReNAS feature tensors (node and NB201 edge views) and NAR node tokens, computed in torch over a
batch of dense graphs.

Both are built in the collate from the dense node-op arrays of `nasrank.encodings.graph` (``ops``
(B, M) node_ops index or -1 for padding, ``adj`` (B, M, M) with ``adj[b, i, j]`` an edge i -> j,
output at node M-1) and the per-cell node costs of `nasrank.encodings.cost.node_costs`
(``node_flops`` / ``node_params`` (B, n_cells, M)).  Costs are divided by fixed per-space constants
(`nasrank.encodings.cost.node_cost_scale`: the space's largest node), which keeps every cost feature in
[0, 1] next to the O(1) op codes and one-hots, and encodes an architecture identically in every batch
and split (batch statistics would not).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nasrank.core import ConfigError, InvalidArchError
from nasrank.encodings.cost import CostScale
from nasrank.spaces.nb201 import EDGES


def _checked(ops: Tensor, adj: Tensor, node_flops: Tensor, node_params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Long ops and float adjacency/costs, with the shapes the encodings need."""
    ops, adj = torch.as_tensor(ops).long(), torch.as_tensor(adj).float()
    node_flops, node_params = torch.as_tensor(node_flops).float(), torch.as_tensor(node_params).float()
    if ops.dim() != 2:
        raise InvalidArchError(f"ops must be (B, M) node op indices, got shape {tuple(ops.shape)}")
    b, m = ops.shape
    if adj.shape != (b, m, m):
        raise InvalidArchError(f"adj must be (B, M, M) = {(b, m, m)} to match ops, got {tuple(adj.shape)}")
    if node_flops.dim() != 3 or node_flops.shape[0] != b or node_flops.shape[2] != m or node_params.shape != node_flops.shape:
        raise InvalidArchError(f"node_flops and node_params must both be (B, n_cells, M) with B={b}, M={m}; "
                               f"got {tuple(node_flops.shape)} and {tuple(node_params.shape)}")
    if ops.numel() and int(ops.min()) < -1:
        raise InvalidArchError(f"ops must be node_ops indices or -1 for padding, got {int(ops.min())}")
    return ops, adj, node_flops, node_params


def _scaled(node_flops: Tensor, node_params: Tensor, scale: CostScale | tuple[float, float]) -> tuple[Tensor, Tensor]:
    flops_scale, params_scale = scale
    if not (flops_scale > 0 and params_scale > 0):
        raise ConfigError(f"cost scale must be positive (flops, params), got {tuple(scale)}")
    return node_flops / flops_scale, node_params / params_scale


def renas_tensor(ops: Tensor, adj: Tensor, node_flops: Tensor, node_params: Tensor, codes: Tensor | None = None, *,
                 scale: CostScale | tuple[float, float]) -> Tensor:
    """ReNAS's (B, 1 + 2 * n_cells, M, M) feature tensor (19 x 7 x 7 for NB101, 31 x 8 x 8 for NB201).

    Channel 0 is the adjacency with each edge i -> j carrying the op code of its destination j;
    then for each cell c, in network order, ``A_ij * flops[c, j]`` and ``A_ij * params[c, j]``
    (scaled by `scale`).  `codes[k + 1]` is the code of node op k and `codes[0]` that of padding;
    by default code = node_ops index + 1 (ReNAS's NB101 codes: input 1, conv1x1 2, conv3x3 3,
    maxpool 4, output 5) and 0 for padding.
    """
    ops, adj, node_flops, node_params = _checked(ops, adj, node_flops, node_params)
    code = (ops + 1).float() if codes is None else torch.as_tensor(codes).float()[ops + 1]
    flops, params = _scaled(node_flops, node_params, scale)
    b, n_cells, m = flops.shape
    costs = torch.stack((flops, params), dim=2).reshape(b, 2 * n_cells, 1, m)  # [f_0, p_0, f_1, p_1, ...]
    return torch.cat(((adj * code[:, None, :])[:, None], adj[:, None] * costs), dim=1)


def nar_tokens(ops: Tensor, adj: Tensor, node_flops: Tensor, node_params: Tensor, n_ops: int, *,
               scale: CostScale | tuple[float, float]) -> tuple[Tensor, Tensor]:
    """NAR's per-node patches: tokens (B, M, F) and a padding mask (B, M), True on padding nodes.

    Token i = [one-hot of node i's op (n_ops), row i of A (M: whom i feeds), column i of A (M: who
    feeds i), node i's scaled FLOPs in each cell (n_cells), its scaled params in each cell
    (n_cells)], so F = n_ops + 2 M + 2 n_cells.  Padding tokens are all zero; the mask follows
    ``nn.MultiheadAttention``'s ``key_padding_mask`` convention (True = ignore).
    """
    ops, adj, node_flops, node_params = _checked(ops, adj, node_flops, node_params)
    if ops.numel() and int(ops.max()) >= n_ops:
        raise InvalidArchError(f"ops hold index {int(ops.max())} but n_ops is {n_ops}; indices must be < n_ops")
    pad = ops < 0
    one_hot = torch.nn.functional.one_hot(ops.clamp(min=0), n_ops).float() * (~pad)[..., None]
    flops, params = _scaled(node_flops, node_params, scale)
    tokens = torch.cat((one_hot, adj, adj.transpose(1, 2), flops.transpose(1, 2), params.transpose(1, 2)), dim=2)
    return tokens * (~pad)[..., None], pad


def renas_edge_tensor(ops: Tensor, edge_flops: Tensor, edge_params: Tensor) -> Tensor:
    """The NAR repo's NB201 port of the ReNAS tensor: (B, 1 + 2 * n_cells, 4, 4), 31 x 4 x 4.

    NB201 ops live on the edges of a 4-node cell, so the tensor is the cell-node matrix: channel 0
    holds at [i, j] the op code of edge i -> j (none 0, skip_connect 1, nor_conv_1x1 2, nor_conv_3x3 3,
    avg_pool_3x3 4; 0 where no edge), then for each cell c, in network order, the FLOPs and the params
    of each edge's op at the same [i, j].  `ops` is the node-op view (B, 8) of
    `nasrank.encodings.graph` (node k + 1 = edge k of `nasrank.spaces.nb201.EDGES`, node_ops index - 1 =
    op code); `edge_flops` / `edge_params` are per-node costs (B, n_cells, 8) in the units the tensor
    should carry (the NAR code: raw counts, see `nasrank.encodings.cost.nb201_edge_costs`).
    """
    ops = torch.as_tensor(ops).long()
    flops, params = torch.as_tensor(edge_flops).float(), torch.as_tensor(edge_params).float()
    n_edges = len(EDGES)
    if ops.dim() != 2 or ops.shape[1] != n_edges + 2:
        raise InvalidArchError(f"NB201 node-op view must be (B, {n_edges + 2}), got {tuple(ops.shape)}")
    if flops.dim() != 3 or flops.shape[0] != ops.shape[0] or flops.shape[2] != n_edges + 2 or params.shape != flops.shape:
        raise InvalidArchError(f"edge_flops and edge_params must both be (B, n_cells, {n_edges + 2}); "
                               f"got {tuple(flops.shape)} and {tuple(params.shape)}")
    b, n_cells = flops.shape[:2]
    dst, src = (torch.tensor(side) for side in zip(*EDGES))
    out = torch.zeros(b, 1 + 2 * n_cells, 4, 4)
    out[:, 0, src, dst] = (ops[:, 1:-1] - 1).float()
    costs = torch.stack((flops[..., 1:-1], params[..., 1:-1]), dim=2).reshape(b, 2 * n_cells, n_edges)
    out[:, 1:, src, dst] = costs
    return out
