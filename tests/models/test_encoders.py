"""The GIN's edge direction option: what `directed` must and must not tell apart."""

import pytest
import torch
from torch_geometric.data import Batch, Data

from nasrank.models.encoders import GINEncoder


def chain(ops: list[int], reverse: bool = False) -> Data:
    """A path cell over one-hot ops; `reverse` flips every edge (same undirected graph)."""
    src, dst = torch.arange(len(ops) - 1), torch.arange(1, len(ops))
    edge_index = torch.stack([dst, src] if reverse else [src, dst])
    return Data(x=torch.eye(3)[ops], edge_index=edge_index)


@pytest.mark.parametrize("directed", [False, True])
def test_only_the_directed_gin_tells_a_dag_from_its_reverse(directed: bool) -> None:
    torch.manual_seed(0)
    enc = GINEncoder(in_dim=3, hidden=8, layers=2, directed=directed).eval()
    ops = [0, 1, 2, 2, 1]
    out = enc(Batch.from_data_list([chain(ops), chain(ops, reverse=True)]))
    assert out.shape == (2, enc.out_dim)
    assert torch.allclose(out[0], out[1], atol=1e-6) != directed


def test_directed_gin_is_invariant_to_node_order() -> None:
    """Renumbering the nodes (and the edges with them) must not change a cell's embedding."""
    torch.manual_seed(0)
    enc = GINEncoder(in_dim=3, hidden=8, layers=3, directed=True).eval()
    cell = chain([0, 1, 2, 2, 1])
    perm = torch.tensor([3, 0, 4, 1, 2])  # new position of each old node
    x = torch.empty_like(cell.x)
    x[perm] = cell.x
    renumbered = Data(x=x, edge_index=perm[cell.edge_index])
    out = enc(Batch.from_data_list([cell, renumbered]))
    assert torch.allclose(out[0], out[1], atol=1e-5)
