"""Architectures -> the PyG `Batch` a ranker reads, without labels.

The one encoding step shared by the labelled datamodule (which adds targets and tiers to each batch),
search and a loaded `nasrank.Ranker`: the same `EncodingSpec` gives the same tensors for a cell
whether it is a row of a benchmark table or a string a user typed, so a ranker scores both alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Hashable, Iterable, Sequence

import numpy as np
import torch
from torch_geometric.data import Batch

from nasrank.core import ConfigError, default_cache_dir
from nasrank.encodings.cost import SPACES_WITH_COSTS, CostScale, nb201_edge_costs, node_cost_scale, node_costs
from nasrank.encodings.graph import DenseGraphs, dense_graphs, to_batch
from nasrank.encodings.tensor import nar_tokens, renas_edge_tensor, renas_tensor
from nasrank.spaces import Arch, Space, get_space
from nasrank.zerocost.features import cell_indices, check_space, space_table, standardized

#: tensor encoding -> the batch attribute it fills; the two ReNAS views fill the same one, so an encoder
#: that reads `batch.tensor` reads either
TENSOR_ATTRS = {"renas": "tensor", "renas_edge": "tensor", "nar": "tokens"}
TENSORS = tuple(TENSOR_ATTRS)
#: NB101 cost units of the NAR/ReNAS code's tensor: FLOPs (2 per multiply-add) / 1e7 and params / 1e5,
#: as (MFLOPs of multiply-adds, M params) divisors
NAR_CODE_NB101_SCALE = CostScale(5.0, 0.1)
COST_UNITS = ("max", "nar_code")


def provides(tensors: Sequence[str], wanted: str) -> bool:
    """Whether the encodings `tensors` fill the batch attribute that encoding `wanted` fills."""
    return TENSOR_ATTRS.get(wanted) in {TENSOR_ATTRS.get(t) for t in tensors}


@dataclass(frozen=True)
class EncodingSpec:
    """How a ranker reads a cell; saved with every trained ranker.

    Args:
        space: search space name (`nasrank.spaces.SPACES`).
        tensors: extra encodings: ``"renas"`` (`batch.tensor`, the node view) or ``"renas_edge"``
            (`batch.tensor`, NB201's edge view as the NAR code builds it), and/or ``"nar"`` (`batch.tokens`).
        node_costs: append per-node FLOPs/params (normalised) to the node features `x`.
        cost_dataset: dataset whose network sizes define FLOPs/params (NB201/NB101 only).
        canonical_iso: encode every cell as its isomorphism class's representative, so cells that
            compute the same function get identical features and scores.
        cost_units: what node costs are divided by: ``"max"``, the space's largest node (every value in
            [0, 1]), or ``"nar_code"`` (NB101 only), the NAR/ReNAS code's FLOPs / 1e7 and params / 1e5.
        zero_cost: attach the cell's standardised zero-cost features (`nasrank.zerocost`) as `batch.zc`,
            which every encoder then appends to its embedding (`nasrank.models.encoders.build`).
    """

    space: str
    tensors: tuple[str, ...] = ()
    node_costs: bool = True
    cost_dataset: str = "cifar10"
    canonical_iso: bool = False
    cost_units: str = "max"
    zero_cost: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", tuple(self.tensors))
        if unknown := [t for t in self.tensors if t not in TENSORS]:
            raise ConfigError(f"unknown tensor encoding(s) {unknown}; allowed: {', '.join(TENSORS)}")
        if {"renas", "renas_edge"} <= set(self.tensors):
            raise ConfigError("tensors renas and renas_edge both fill batch.tensor; choose one")
        if "renas_edge" in self.tensors and self.space != "nb201":
            raise ConfigError(f"tensor renas_edge is NB201's edge view; space {self.space!r} has node ops: use renas")
        if self.cost_units not in COST_UNITS:
            raise ConfigError(f"cost_units={self.cost_units!r}; allowed: {', '.join(COST_UNITS)}")
        if self.zero_cost:
            check_space(self.space)
        if self.cost_units == "nar_code" and self.space != "nb101":
            raise ConfigError(f"cost_units=nar_code is NB101's; on {self.space!r} use max (NB201's code tensor, renas_edge, "
                              "has its own units)")
        get_space(self.space)

    def to_dict(self) -> dict:
        return {**asdict(self), "tensors": list(self.tensors)}


def first_members(archs: Sequence[Arch]) -> np.ndarray:
    """Index of the first cell of each cell's isomorphism class within `archs` (itself if first)."""
    first: dict[Hashable, int] = {}
    return np.asarray([first.setdefault(a.iso_key(), i) for i, a in enumerate(archs)], dtype=np.int64)


def as_encoded(archs: Sequence[Arch], space: Space, reps: Iterable[str]) -> list[Arch]:
    """Each cell as a canonical encoding reads it: its class's member in `reps` (strings; a cell whose
    class is not there, as itself), so a cell's encoding never depends on which other cells are encoded
    with it.  No reps: every class had one member in the table (NB101), its own representative."""
    archs, reps = list(archs), list(reps)
    if not reps:
        return archs
    by_key = {a.iso_key(): a for a in map(space.from_str, reps)}
    return [by_key.get(a.iso_key(), a) for a in archs]


def representatives(archs: Sequence[Arch]) -> list[str]:
    """The first member (string form) of every isomorphism class that has more than one member in
    `archs`: what a canonical encoding needs beyond the cells themselves to encode any cell as the
    table it was trained on did (a class met nowhere in the table is encoded as the cell itself)."""
    first = first_members(archs)
    rows = np.unique(first[first != np.arange(len(archs))])
    return [archs[i].to_str() for i in rows.tolist()]


class EncodedArchs:
    """Stacked encodings of a list of cells; `collate(rows)` is a `Batch` of any of them.

    Args:
        graphs: dense node-op graphs of the cells *as encoded* (representatives, if canonical).
        spec: the encoding.
    """

    def __init__(self, graphs: DenseGraphs, spec: EncodingSpec) -> None:
        self.graphs, self.spec = graphs, spec
        self.space: Space = get_space(spec.space)

    @property
    def num_ops(self) -> int:
        return len(self.space.node_ops)

    @property
    def num_node_features(self) -> int:
        return self.num_ops + (2 if self.spec.node_costs else 0)

    def __len__(self) -> int:
        return len(self.graphs.ops)

    @cached_property
    def node_cost_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-cell, per-node (MFLOPs, M params), each (N, cells, M); zeros where the space has no
        analytic cost model (NAS-Bench-Graph), so every model sees the same feature layout."""
        g = self.graphs
        if self.spec.space not in SPACES_WITH_COSTS:
            zeros = np.zeros((len(g.ops), 1, g.ops.shape[1]), dtype=np.float32)
            return zeros, zeros
        return node_costs(self.spec.space, g.ops, g.adj, self.spec.cost_dataset)

    @cached_property
    def edge_cost_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """NB201 per-node FLOPs and params in the NAR code's raw units (`renas_edge` reads them)."""
        return nb201_edge_costs(self.graphs.ops, self.graphs.adj, self.spec.cost_dataset)

    @cached_property
    def cost_scale(self) -> CostScale:
        """Fixed per-(space, dataset) constants (largest single node), not data maxima, so the
        features of a cell do not depend on which other cells are encoded with it."""
        if self.spec.space not in SPACES_WITH_COSTS:
            return CostScale(1.0, 1.0)
        if self.spec.cost_units == "nar_code":
            return NAR_CODE_NB101_SCALE
        return node_cost_scale(self.spec.space, self.spec.cost_dataset)

    @cached_property
    def _node_extra(self) -> np.ndarray:
        flops, params = self.node_cost_arrays
        cells = flops.shape[1]
        return np.stack([flops.sum(1) / (self.cost_scale.flops * cells), params.sum(1) / (self.cost_scale.params * cells)], -1).astype(np.float32)

    @cached_property
    def zero_cost_features(self) -> np.ndarray:
        """(cells, features) standardised zero-cost features, read from the space's cached table."""
        table = standardized(space_table(self.spec.space, default_cache_dir()))
        return table[cell_indices(self.spec.space, self.graphs)]

    def collate(self, rows: Sequence[int], **graph_attrs: torch.Tensor) -> Batch:
        """One PyG `Batch` of these cells (vectorised); `graph_attrs` (targets, tiers, …) ride along."""
        rows = np.asarray(rows, dtype=np.int64)
        ops, adj = torch.from_numpy(self.graphs.ops[rows]), torch.from_numpy(self.graphs.adj[rows])
        attrs = dict(graph_attrs)
        if self.spec.tensors:
            flops, params = (torch.from_numpy(a[rows]) for a in self.node_cost_arrays)
            if "renas" in self.spec.tensors:
                attrs["tensor"] = renas_tensor(ops, adj, flops, params, scale=self.cost_scale)
            if "renas_edge" in self.spec.tensors:
                attrs["tensor"] = renas_edge_tensor(ops, *(torch.from_numpy(a[rows]) for a in self.edge_cost_arrays))
            if "nar" in self.spec.tensors:
                attrs["tokens"], attrs["token_mask"] = nar_tokens(ops, adj, flops, params, n_ops=self.num_ops, scale=self.cost_scale)
        if self.spec.zero_cost:
            attrs["zc"] = torch.from_numpy(self.zero_cost_features[rows])
        extra = torch.from_numpy(self._node_extra[rows]) if self.spec.node_costs else None
        return to_batch(ops, adj, self.num_ops, node_extra=extra, **attrs)

    def data_info(self, num_tiers: int) -> dict:
        """Sizes models need to build themselves (read off a real collated batch, so they always agree)."""
        sample = self.collate(np.arange(min(2, len(self))))
        info = dict(in_dim=self.num_node_features, num_ops=self.num_ops, max_nodes=self.space.max_nodes,
                    num_tiers=num_tiers, space=self.spec.space)
        if "tensor" in sample:
            info["channels"], info["tensor_side"] = sample.tensor.shape[1], sample.tensor.shape[-1]
        if "tokens" in sample:
            info["token_dim"] = sample.tokens.shape[-1]
        if "zc" in sample:
            info["zero_cost_dim"] = sample.zc.shape[-1]
        return info

    def batches(self, batch_size: int = 4096, rows: Sequence[int] | None = None) -> Iterable[Batch]:
        """Batches over `rows` (default: every cell), in order."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        for start in range(0, len(rows), batch_size):
            yield self.collate(rows[start:start + batch_size])


def stack_table(archs: Sequence[Arch], spec: EncodingSpec) -> tuple[DenseGraphs, EncodedArchs, np.ndarray]:
    """A benchmark's raw dense graphs, its encoding and each row's encoded row (itself, or its class's
    first row with `canonical_iso`), sharing the raw arrays where the two coincide."""
    raw = dense_graphs(archs, get_space(spec.space))
    enc_rows = first_members(archs) if spec.canonical_iso else np.arange(len(archs), dtype=np.int64)
    same = bool((enc_rows == np.arange(len(archs))).all())
    graphs = raw if same else DenseGraphs(raw.ops[enc_rows], raw.adj[enc_rows])
    return raw, EncodedArchs(graphs, spec), enc_rows
