"""ReNAS tensors and NAR tokens: exact values on a hand-checked cell, shapes on real costs, padding,
the output-last convention and batch/single consistency."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasrank.core import ConfigError, InvalidArchError
from nasrank.encodings.cost import CostScale, node_cost_scale, node_costs
from nasrank.encodings.tensor import nar_tokens, renas_tensor
from nasrank.spaces import nb101, nb201

SCALE = CostScale(2.0, 4.0)


def hand_cell() -> tuple[torch.Tensor, ...]:
    """NB101 cell input -> conv3x3 -> maxpool -> output plus input -> output, padded to 7 nodes
    (nodes 3..5 padding), with 2 cells of made-up node costs."""
    ops = torch.tensor([[0, 2, 3, -1, -1, -1, 4]])
    adj = torch.zeros(1, 7, 7, dtype=torch.uint8)
    for i, j in [(0, 1), (1, 2), (2, 6), (0, 6)]:
        adj[0, i, j] = 1
    flops = torch.tensor([[[0, 6, 0, 0, 0, 0, 2], [0, 3, 0, 0, 0, 0, 1]]], dtype=torch.float32)
    params = torch.tensor([[[0, 8, 0, 0, 0, 0, 4], [0, 4, 0, 0, 0, 0, 2]]], dtype=torch.float32)
    return ops, adj, flops, params


def matrix(entries: dict[tuple[int, int], float], m: int = 7) -> torch.Tensor:
    out = torch.zeros(m, m)
    for (i, j), v in entries.items():
        out[i, j] = v
    return out


def test_renas_hand_checked_values() -> None:
    t = renas_tensor(*hand_cell(), scale=SCALE)
    assert t.shape == (1, 5, 7, 7) and t.dtype == torch.float32
    # codes: op index + 1 of the destination (conv3x3 3, maxpool 4, output 5)
    torch.testing.assert_close(t[0, 0], matrix({(0, 1): 3, (1, 2): 4, (2, 6): 5, (0, 6): 5}))
    # cell 0 FLOPs / 2, cell 0 params / 4, cell 1 FLOPs / 2, cell 1 params / 4: A_ij * cost_j
    torch.testing.assert_close(t[0, 1], matrix({(0, 1): 3, (2, 6): 1, (0, 6): 1}))
    torch.testing.assert_close(t[0, 2], matrix({(0, 1): 2, (2, 6): 1, (0, 6): 1}))
    torch.testing.assert_close(t[0, 3], matrix({(0, 1): 1.5, (2, 6): 0.5, (0, 6): 0.5}))
    torch.testing.assert_close(t[0, 4], matrix({(0, 1): 1, (2, 6): 0.5, (0, 6): 0.5}))


def test_renas_custom_codes() -> None:
    codes = torch.tensor([0, 10, 20, 30, 40, 50])  # codes[0] is padding's
    t = renas_tensor(*hand_cell(), codes, scale=SCALE)
    torch.testing.assert_close(t[0, 0], matrix({(0, 1): 30, (1, 2): 40, (2, 6): 50, (0, 6): 50}))


def test_nar_hand_checked_tokens() -> None:
    tokens, pad = nar_tokens(*hand_cell(), n_ops=5, scale=SCALE)
    assert tokens.shape == (1, 7, 5 + 2 * 7 + 2 * 2)
    assert pad.tolist() == [[False, False, False, True, True, True, False]]
    e = torch.eye(7)
    conv = torch.cat([torch.tensor([0, 0, 1, 0, 0.0]), e[2], e[0], torch.tensor([3, 1.5, 2, 1])])
    out = torch.cat([torch.tensor([0, 0, 0, 0, 1.0]), torch.zeros(7), e[0] + e[2], torch.tensor([1, 0.5, 1, 0.5])])
    inp = torch.cat([torch.tensor([1, 0, 0, 0, 0.0]), e[1] + e[6], torch.zeros(7), torch.zeros(4)])
    torch.testing.assert_close(tokens[0, 1], conv)
    torch.testing.assert_close(tokens[0, 6], out)
    torch.testing.assert_close(tokens[0, 0], inp)
    assert not tokens[0, 3:6].any()


def nb201_dense(archs: list[nb201.NB201Arch]) -> tuple[np.ndarray, np.ndarray]:
    ops = np.array([[nb201.SPACE.node_ops.index(x) for x in a.node_graph()[0]] for a in archs], dtype=np.int8)
    adj = np.zeros((len(archs), 8, 8), dtype=np.uint8)
    for n, arch in enumerate(archs):
        for i, j in arch.node_graph()[1]:
            adj[n, i, j] = 1
    return ops, adj


def nb101_dense() -> tuple[np.ndarray, np.ndarray]:
    """The hand cell, a 7-vertex cell and the 2-vertex cell, all in the padded layout."""
    ops = np.array([[0, 2, 3, -1, -1, -1, 4], [0, 1, 2, 2, 3, 1, 4], [0, -1, -1, -1, -1, -1, 4]], dtype=np.int8)
    adj = np.zeros((3, 7, 7), dtype=np.uint8)
    for n, edges in enumerate([[(0, 1), (1, 2), (2, 6), (0, 6)],
                               [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 6), (1, 6)],
                               [(0, 6)]]):
        for i, j in edges:
            adj[n, i, j] = 1
    return ops, adj


def real_inputs(space: str) -> tuple[torch.Tensor, ...]:
    if space == "nb201":
        ops, adj = nb201_dense([nb201.SPACE.random(np.random.default_rng(s)) for s in range(4)])
    else:
        ops, adj = nb101_dense()
    flops, params = node_costs(space, ops, adj, "cifar10")
    return tuple(map(torch.from_numpy, (ops, adj, flops, params)))


@pytest.mark.parametrize(("space", "shape"), [("nb101", (19, 7, 7)), ("nb201", (31, 8, 8))])
def test_shapes_and_scale_on_real_costs(space: str, shape: tuple[int, int, int]) -> None:
    inputs = real_inputs(space)
    scale = node_cost_scale(space, "cifar10")
    t = renas_tensor(*inputs, scale=scale)
    assert t.shape == (len(inputs[0]), *shape)
    assert 0 <= float(t[:, 1:].min()) and float(t[:, 1:].max()) <= 1.0  # costs normalised to [0, 1]
    n_ops = len(nb101.SPACE.node_ops if space == "nb101" else nb201.SPACE.node_ops)
    tokens, pad = nar_tokens(*inputs, n_ops=n_ops, scale=scale)
    m, n_cells = shape[1], (shape[0] - 1) // 2
    assert tokens.shape == (len(inputs[0]), m, n_ops + 2 * m + 2 * n_cells) and pad.shape == (len(inputs[0]), m)
    assert float(tokens[..., n_ops + 2 * m :].max()) <= 1.0


@pytest.mark.parametrize("space", ["nb101", "nb201"])
def test_output_node_is_last(space: str) -> None:
    ops, adj, flops, params = real_inputs(space)
    n_ops = len(nb101.SPACE.node_ops if space == "nb101" else nb201.SPACE.node_ops)
    t = renas_tensor(ops, adj, flops, params, scale=(1.0, 1.0))
    # every edge into the last node carries the output code (n_ops = index + 1 of the last op)
    into_out = adj[:, :, -1].bool()
    assert into_out.any(1).all()
    assert (t[:, 0, :, -1][into_out] == n_ops).all() and (t[:, 0, :, -1][~into_out] == 0).all()
    tokens, pad = nar_tokens(ops, adj, flops, params, n_ops=n_ops, scale=(1.0, 1.0))
    assert (tokens[:, -1, :n_ops].argmax(1) == n_ops - 1).all() and not pad[:, -1].any()


def test_padding_is_zero_everywhere() -> None:
    ops, adj, flops, params = real_inputs("nb101")
    flops[ops[:, None, :].expand_as(flops) < 0] = 99.0  # costs leaking into padding must not show up
    t = renas_tensor(ops, adj, flops, params, scale=(1.0, 1.0))
    tokens, pad = nar_tokens(ops, adj, flops, params, n_ops=5, scale=(1.0, 1.0))
    assert torch.equal(pad, ops < 0)
    for b in range(len(ops)):
        padding = (ops[b] < 0).nonzero().flatten()
        assert not t[b][:, padding].any() and not t[b][:, :, padding].any()
        assert not tokens[b, padding].any()


@pytest.mark.parametrize("space", ["nb101", "nb201"])
def test_batch_equals_single(space: str) -> None:
    inputs = real_inputs(space)
    scale = node_cost_scale(space, "cifar10")
    n_ops = len(nb101.SPACE.node_ops if space == "nb101" else nb201.SPACE.node_ops)
    batch_t = renas_tensor(*inputs, scale=scale)
    batch_tok, batch_pad = nar_tokens(*inputs, n_ops=n_ops, scale=scale)
    for b in range(len(inputs[0])):
        single = tuple(x[b : b + 1] for x in inputs)
        torch.testing.assert_close(renas_tensor(*single, scale=scale), batch_t[b : b + 1])
        tok, pad = nar_tokens(*single, n_ops=n_ops, scale=scale)
        torch.testing.assert_close(tok, batch_tok[b : b + 1])
        assert torch.equal(pad, batch_pad[b : b + 1])


def test_bad_input_raises() -> None:
    ops, adj, flops, params = hand_cell()
    with pytest.raises(InvalidArchError, match="adj must be"):
        renas_tensor(ops, adj[:, :6, :6], flops, params, scale=SCALE)
    with pytest.raises(InvalidArchError, match="node_flops and node_params"):
        nar_tokens(ops, adj, flops, params[:, :1], n_ops=5, scale=SCALE)
    with pytest.raises(InvalidArchError, match="n_ops is 4"):
        nar_tokens(ops, adj, flops, params, n_ops=4, scale=SCALE)
    with pytest.raises(InvalidArchError, match="-1 for padding"):
        renas_tensor(ops - 2, adj, flops, params, scale=SCALE)
    with pytest.raises(ConfigError, match="positive"):
        renas_tensor(ops, adj, flops, params, scale=(0.0, 1.0))
