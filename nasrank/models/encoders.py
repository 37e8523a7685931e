"""Graph encoders shared by every ranker: each maps a PyG batch to one embedding per graph.

They read only `x`, `edge_index` and `batch`, so one encoder config serves every space and model.
Encoders that read more (NAR's node tokens, ReNAS's tensor) name those encodings in a class
attribute `reads`; `conf/model/encoder/` holds one option per encoder.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from hydra.utils import get_class
from torch import nn
from torch_geometric.nn import DirGNNConv, GINConv, global_add_pool, global_mean_pool
from torch_geometric.utils import to_dense_batch

from nasrank.core import ConfigError
from nasrank.encodings.archs import provides


def mlp(sizes: list[int], dropout: float = 0.0, final_act: bool = False) -> nn.Sequential:
    """Linear-ReLU stack; `final_act` keeps the activation after the last layer."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_act:
            layers += [nn.ReLU(), nn.Dropout(dropout)] if dropout else [nn.ReLU()]
    return nn.Sequential(*layers)


class FlatMLPEncoder(nn.Module):
    """MLP over the node features laid out in node order (the one-hot "adjacency-free" baseline).

    Nodes are padded to `max_nodes` so the same position always means the same node/edge of the cell.
    """

    def __init__(self, in_dim: int, max_nodes: int, hidden: int = 128, layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.max_nodes = max_nodes
        self.net = mlp([in_dim * max_nodes] + [hidden] * layers, dropout, final_act=True)
        self.out_dim = hidden

    def forward(self, batch) -> torch.Tensor:
        dense, _ = to_dense_batch(batch.x, batch.batch, max_num_nodes=self.max_nodes, batch_size=batch.num_graphs)
        return self.net(dense.flatten(1))


class GINEncoder(nn.Module):
    """GIN over the node-op DAG, with sum + mean readout of every layer (jumping knowledge).

    Messages flow both ways, since a cell's quality depends on what feeds a node and what it feeds.
    `directed=True` gives the two directions their own weights (PyG's `DirGNNConv`: one GIN over
    predecessors, one over successors, averaged), so an op that feeds a conv and one fed by it are told apart.
    """

    def __init__(self, in_dim: int, hidden: int = 64, layers: int = 3, dropout: float = 0.0, directed: bool = False) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * layers
        convs = [GINConv(mlp([a, b, b]), train_eps=True) for a, b in zip(dims[:-1], dims[1:])]
        # GINConv has no in/out_channels for DirGNNConv's root linear; GIN's own (1 + eps) x term plays that part
        self.convs = nn.ModuleList(DirGNNConv(c, root_weight=False) for c in convs) if directed else nn.ModuleList(convs)
        self.directed = directed
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * hidden * layers

    def forward(self, batch) -> torch.Tensor:
        h, reads = batch.x, []
        edge_index = batch.edge_index if self.directed else torch.cat([batch.edge_index, batch.edge_index.flip(0)], 1)
        for conv in self.convs:
            h = self.dropout(torch.relu(conv(h, edge_index)))
            reads += [global_add_pool(h, batch.batch, batch.num_graphs), global_mean_pool(h, batch.batch, batch.num_graphs)]
        return torch.cat(reads, 1)


class WithZeroCost(nn.Module):
    """An encoder whose output also carries the cell's zero-cost features (`batch.zc`, standardised).

    A graph encoder's vector gets them appended, so the head reads both; a token encoder (NAR's
    transformer) gets them as one more token, linearly embedded to its width, so NAR's tier decoder
    and readouts see them like any node.  Attributes other models read on encoders (`standardize`,
    `fit_inputs` of the ReNAS CNN) stay reachable on `inner`.
    """

    def __init__(self, inner: nn.Module, zero_cost_dim: int) -> None:
        super().__init__()
        self.inner = inner
        self.tokens = hasattr(inner, "num_tokens")
        if self.tokens:
            self.embed = nn.Linear(zero_cost_dim, inner.out_dim)
            self.num_tokens, self.out_dim = inner.num_tokens + 1, inner.out_dim
        else:
            self.out_dim = inner.out_dim + zero_cost_dim
        self.standardize = getattr(inner, "standardize", False)

    def fit_inputs(self, tensors: torch.Tensor) -> None:
        self.inner.fit_inputs(tensors)

    def forward(self, batch):
        out = self.inner(batch)
        if not self.tokens:
            return torch.cat([out, batch.zc], 1)
        h, pad = out
        extra = self.embed(batch.zc)[:, None]
        return torch.cat([h, extra], 1), torch.cat([pad, pad.new_zeros(pad.shape[0], 1)], 1)


def build(factory, data_info: dict) -> nn.Module:
    """Call a Hydra `_partial_` module factory, filling the data-dependent sizes it asks for.

    Input sizes (`in_dim`, `max_nodes`, `channels`, `token_dim`, …) depend on the benchmark, so
    configs leave them out and the datamodule's `data_info()` supplies them by parameter name.
    Data with zero-cost features (`zero_cost_dim`) wraps the encoder in `WithZeroCost`, so every
    model and encoder reads them alike.
    """
    encoder = factory(**sizes(factory, data_info))
    return WithZeroCost(encoder, data_info["zero_cost_dim"]) if data_info.get("zero_cost_dim") else encoder


def sizes(factory, data_info: dict) -> dict:
    """The entries of `data_info` that `build` passes to this factory: what its module's shape depends on
    beside its config."""
    func = getattr(factory, "func", factory)
    given = getattr(factory, "keywords", {})
    wanted = inspect.signature(func).parameters
    return {k: v for k, v in data_info.items() if k in wanted and k not in given}


def reads(target: str) -> list[str]:
    """The encodings (`model.tensors`) that the encoder class at `target` reads beside the graph.

    Model configs set `tensors: ${encoder_reads:${.encoder._target_}}`, so choosing an encoder
    (`model/encoder=gin`) also drops the NAR tokens or ReNAS tensors nothing would read: the
    datamodule builds them for every cell of the space (423,624 on NB101).
    """
    return list(getattr(get_class(target), "reads", ()))


def check_reads(factory, tensors: Sequence[str] | None) -> None:
    """One clear line when a hand-set `model.tensors` leaves out an encoding the encoder reads
    (None: not declared, as when a module is built in Python around data that has what it needs).

    Checked on the factory, before `build`: without the encoding, the sizes it needs are missing
    from `data_info` and the constructor would fail with a bare TypeError.
    """
    if tensors is None:
        return
    cls = getattr(factory, "func", factory)
    missing = [t for t in getattr(cls, "reads", ()) if not provides(tensors, t)]
    if missing:
        raise ConfigError(f"{cls.__name__} reads the {missing[0]!r} encoding; "
                          f"model.tensors must include {missing[0]!r} (model.tensors=[{missing[0]}]), got {list(tensors)}")
