"""The flow encoder's two structural promises on a hand-made DAG: states follow the topological order
(a node hears its ancestors, never a parallel branch), and attention joins only nodes on a common path."""

import torch
from torch_geometric.data import Batch, Data

from nasrank.models.flow import FlowEncoder, FlowSweep, flow_mask, schedule, topological_depth

#: two parallel branches 0 -> 1 -> 3 -> 5 and 0 -> 2 -> 4 -> 5
EDGES = torch.tensor([[0, 1, 3, 0, 2, 4], [1, 3, 5, 2, 4, 5]])


def test_depth_is_the_longest_path_from_the_input() -> None:
    skip = torch.cat([EDGES, torch.tensor([[0], [3]])], 1)  # a shortcut does not make node 3 shallower
    assert topological_depth(skip, 6).tolist() == [0, 1, 1, 2, 2, 3]
    assert topological_depth(EDGES.flip(0), 6).tolist() == [3, 2, 2, 1, 1, 0]


def test_flow_mask_joins_only_nodes_on_a_common_path() -> None:
    # graph 0: the two branches; graph 1: a 3-node chain, padded to the width of 6
    edge_index = torch.cat([EDGES, torch.tensor([[6, 7], [7, 8]])], 1)
    batch = torch.tensor([0] * 6 + [1] * 3)
    mask = flow_mask(edge_index, batch, num_graphs=2, max_nodes=6)
    parallel = {(1, 2), (1, 4), (3, 2), (3, 4)}
    for i in range(6):
        for j in range(6):
            assert mask[0, i, j] == ((i, j) not in parallel and (j, i) not in parallel), (i, j)
    assert mask[1, :3, :3].all()  # a chain: every pair is on the one path
    assert not mask[1, :3, 3:].any() and torch.equal(mask[1, 3:, 3:], torch.eye(3, dtype=torch.bool))  # padding: itself only


def test_forward_sweep_hears_ancestors_only() -> None:
    torch.manual_seed(0)
    sweep = FlowSweep(4)
    x = torch.randn(6, 4)
    steps = schedule(EDGES, 6)
    before = sweep(x, steps)
    changed = x.clone()
    changed[2] += 1.0  # node 2: ancestor of 4 and 5, parallel to 1 and 3
    after = sweep(changed, steps)
    moved = [not torch.allclose(before[i], after[i]) for i in range(6)]
    assert moved == [False, False, True, False, True, True]
    # backwards (reversed edges, depth from the output) node 2 hears its descendants instead
    steps = schedule(EDGES.flip(0), 6)
    changed = x.clone()
    changed[4] += 1.0
    before, after = sweep(x, steps), sweep(changed, steps)
    assert [not torch.allclose(before[i], after[i]) for i in range(6)] == [True, False, True, False, True, False]


def test_encoder_tells_a_dag_from_its_reverse_and_ignores_node_order() -> None:
    torch.manual_seed(0)
    enc = FlowEncoder(in_dim=3, max_nodes=6, hidden=8, layers=2, heads=2).eval()
    x = torch.eye(3)[[0, 1, 2, 0, 2, 1]]  # branch op sequences (1, 0) and (2, 2); reversed: (0, 1) and (1, 2)
    perm = torch.tensor([3, 0, 5, 1, 2, 4])  # new position of each old node
    renumbered = torch.empty_like(x)
    renumbered[perm] = x
    graphs = [Data(x=x, edge_index=EDGES), Data(x=renumbered, edge_index=perm[EDGES]), Data(x=x, edge_index=EDGES.flip(0))]
    out = enc(Batch.from_data_list(graphs))
    assert out.shape == (3, enc.out_dim)
    assert torch.allclose(out[0], out[1], atol=1e-5)
    assert not torch.allclose(out[0], out[2], atol=1e-3)
