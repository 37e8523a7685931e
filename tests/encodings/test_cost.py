"""Analytic costs checked against the real reference networks (parameters exactly, FLOPs against
torch's counter) and against the NAS-Bench-101 table's published FLOPs."""

from __future__ import annotations

import csv
import gzip
import itertools

import numpy as np
import pytest
import torch
from conftest import require_data
from scipy.stats import spearmanr
from torch.utils.flop_counter import FlopCounterMode

from nasrank.core import ConfigError, InvalidArchError, resolve_data_dir
from nasrank.encodings.cost import arch_costs, nb101_vertex_channels, node_cost_scale, node_costs
from nasrank.spaces import nb101, nb201
from nasrank.supernet.cells import NB101Cell, NB101Network, NB201Cell, NB201Network, compute_vertex_channels

NB201_DATA = {"cifar10": (32, 10), "cifar100": (32, 100), "imagenet16": (16, 120)}
NB101_SHORT = {"input": "input", "conv3x3": "conv3x3-bn-relu", "conv1x1": "conv1x1-bn-relu",
               "maxpool3x3": "maxpool3x3", "output": "output"}
RTOL = 1e-6  # float32 node costs; totals are float64 and compared exactly


def dense_nb201(archs: list[nb201.NB201Arch]) -> tuple[np.ndarray, np.ndarray]:
    ops = np.zeros((len(archs), 8), dtype=np.int8)
    adj = np.zeros((len(archs), 8, 8), dtype=np.uint8)
    for n, arch in enumerate(archs):
        labels, edges = arch.node_graph()
        ops[n] = [nb201.SPACE.node_ops.index(label) for label in labels]
        for i, j in edges:
            adj[n, i, j] = 1
    return ops, adj


def dense_nb101(specs: list[tuple[np.ndarray, list[str]]]) -> tuple[np.ndarray, np.ndarray]:
    """Vertex i -> node i, except the output vertex -> node 6 (padding in between)."""
    ops = np.full((len(specs), 7), -1, dtype=np.int8)
    adj = np.zeros((len(specs), 7, 7), dtype=np.uint8)
    for n, (matrix, names) in enumerate(specs):
        place = [*range(len(names) - 1), 6]
        ops[n, place] = [nb101.OPS.index(op) for op in names]
        adj[n][np.ix_(place, place)] = matrix
    return ops, adj


def read_nb101_table(limit: int | None) -> tuple[list[tuple[np.ndarray, list[str]]], np.ndarray]:
    path = resolve_data_dir() / "nb101" / "nb101_test_acc_flops.csv.gz"
    require_data(path, "shared NB101 table")
    specs, flops = [], []
    with gzip.open(path, "rt", newline="") as fh:
        for row in itertools.islice(csv.DictReader(fh), limit):
            matrix = np.array([[int(c) for c in r] for r in row["matrix"].split("|")], dtype=np.uint8)
            specs.append((matrix, [NB101_SHORT[o] for o in row["ops"].split("|")]))
            flops.append(int(row["flops"]))
    return specs, np.array(flops, dtype=np.float64)


def counted(net: torch.nn.Module, side: int) -> tuple[dict[str, int], dict[str, int]]:
    """Per-module MACs (torch counts 2 FLOPs per multiply-add) and parameters, run on the meta device."""
    with FlopCounterMode(display=False, depth=None) as counter:
        net(torch.empty(1, 3, side, side, device="meta"))
    root = type(net).__name__
    macs = {name.removeprefix(root).lstrip("."): sum(v.values()) // 2 for name, v in counter.get_flop_counts().items()}
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in net.named_modules()}
    return macs, params


def check_close(actual: float, expected: float, rtol: float, errors: list[float]) -> None:
    errors.append(abs(actual - expected) / max(abs(expected), 1.0))
    assert actual == pytest.approx(expected, rel=rtol, abs=rtol)


# ------------------------------------------------------------------------------------------------ NB201


def test_nb201_hand_counted_extremes() -> None:
    """All-`none` is stem + reductions + head only; all-conv3x3 adds 6 convs of 9*C^2*HW per cell
    (the same 2,359,296 MACs in every stage): NB201's published 7.78305 / 220.11969 MFLOPs."""
    ops, adj = dense_nb201([nb201.NB201Arch(("none",) * 6), nb201.NB201Arch(("nor_conv_3x3",) * 6)])
    flops, params = arch_costs("nb201", ops, adj, "cifar10")
    fixed = 27 * 16 * 1024 + 2 * (9 * 16 * 32 * 256 + 9 * 32 * 32 * 256 + 16 * 32 * 256) + 64 * 10 + 10
    assert flops[0] * 1e6 == pytest.approx(fixed) and flops[0] == pytest.approx(7.78305)
    assert flops[1] * 1e6 == pytest.approx(fixed + 15 * 6 * 9 * 16 * 16 * 1024) and flops[1] == pytest.approx(220.11969)
    node_f, node_p = node_costs("nb201", ops, adj, "cifar10")
    assert node_f.shape == node_p.shape == (2, 15, 8) and node_f.dtype == np.float32
    assert not node_f[0].any() and not node_p[0].any()
    assert node_f[1, :, 1:7] == pytest.approx(2.359296)
    assert node_p[1, 0, 1] == pytest.approx((9 * 16 * 16 + 32) / 1e6) and node_p[1, 14, 1] == pytest.approx((9 * 64 * 64 + 128) / 1e6)
    assert params[1] * 1e6 - params[0] * 1e6 == pytest.approx(node_p[1].astype(np.float64).sum() * 1e6, rel=RTOL)


@pytest.mark.parametrize("dataset", sorted(NB201_DATA))
def test_nb201_matches_reference_network(dataset: str) -> None:
    side, classes = NB201_DATA[dataset]
    rng = np.random.default_rng(0)
    archs = [nb201.SPACE.random(rng) for _ in range(20)]
    ops, adj = dense_nb201(archs)
    node_f, node_p = node_costs("nb201", ops, adj, dataset)
    flops, params = arch_costs("nb201", ops, adj, dataset)
    errors: list[float] = []
    for n, arch in enumerate(archs):
        net = NB201Network.from_arch(arch, classes).to("meta")
        macs, n_params = counted(net, side)
        assert round(params[n] * 1e6) == n_params[""]  # exact
        assert round(flops[n] * 1e6) == macs[""] + classes  # NB201 also counts the classifier's bias additions
        cells = [name for name, m in net.named_modules() if isinstance(m, NB201Cell)]
        assert len(cells) == 15
        for c, name in enumerate(cells):
            for k in range(6):  # node k + 1 is edge k
                edge = f"{name}.edges.{k}"
                check_close(float(node_f[n, c, k + 1]) * 1e6, macs.get(edge, 0), RTOL, errors)
                check_close(float(node_p[n, c, k + 1]) * 1e6, n_params[edge], RTOL, errors)
    print(f"NB201 {dataset}: {len(archs)} networks, {len(errors)} node costs, max rel error {max(errors):.2e}")
    assert max(errors) < RTOL


def test_nb201_whole_space() -> None:
    """Its speed is a row of benchmarks/speed.py (nb201_space_costs_s), not a bound here."""
    ops, adj = dense_nb201(list(nb201.SPACE.enumerate()))
    node_f, _ = node_costs("nb201", ops, adj, "cifar10")
    flops, _ = arch_costs("nb201", ops, adj, "cifar10")
    assert node_f.shape == (15_625, 15, 8)
    assert flops.min() == pytest.approx(7.78305) and flops.max() == pytest.approx(220.11969)


# ------------------------------------------------------------------------------------------------ NB101


def nb101_sample() -> list[tuple[np.ndarray, list[str]]]:
    """10 table cells plus the two edge cases: input -> output only, and the input feeding the output
    next to interior vertices (projection added to the concatenation)."""
    specs, _ = read_nb101_table(200)
    picked = [specs[i] for i in np.random.default_rng(1).choice(len(specs), 10, replace=False)]
    picked.append((np.array([[0, 1], [0, 0]]), ["input", "output"]))
    picked.append((np.array([[0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]),
                   ["input", "conv1x1-bn-relu", "maxpool3x3", "output"]))
    return picked


def test_nb101_matches_reference_network() -> None:
    specs = nb101_sample()
    ops, adj = dense_nb101(specs)
    node_f, node_p = node_costs("nb101", ops, adj, "cifar10")
    flops, params = arch_costs("nb101", ops, adj, "cifar10")
    errors: list[float] = []
    for n, (matrix, names) in enumerate(specs):
        net = NB101Network(matrix, names).to("meta")
        macs, n_params = counted(net, 32)
        assert round(params[n] * 1e6) == n_params[""]
        assert round(flops[n] * 1e6) == macs[""] + 10
        cells = [name for name, m in net.named_modules() if isinstance(m, NB101Cell)]
        assert len(cells) == 9
        place = [*range(len(names) - 1), 6]
        for c, name in enumerate(cells):
            for v in range(1, len(names)):  # a vertex's own op plus the projection that feeds it
                parts = [f"{name}.vertex_ops.{v}", f"{name}.projections.{v}"]
                check_close(float(node_f[n, c, place[v]]) * 1e6, sum(macs.get(p, 0) for p in parts), RTOL, errors)
                check_close(float(node_p[n, c, place[v]]) * 1e6, sum(n_params.get(p, 0) for p in parts), RTOL, errors)
    print(f"NB101: {len(specs)} networks, {len(errors)} node costs, max rel error {max(errors):.2e}")
    assert max(errors) < RTOL


def test_nb101_vertex_channels_match_nasbench_rule() -> None:
    specs, _ = read_nb101_table(200)
    ops, adj = dense_nb101(specs)
    for c_out in (128, 256, 512):
        channels = nb101_vertex_channels(adj, c_out)
        for n, (matrix, names) in enumerate(specs):
            expected = compute_vertex_channels(c_out // 2, c_out, matrix)
            assert channels[n, 1 : len(names) - 1].tolist() == expected[1:-1]
            assert not channels[n, len(names) - 1 : 6].any()


def thop_flops(ops: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """The table's counter (thop on ObfuNAS's PyTorch nasbench): conv and linear MACs without bias,
    plus 2 FLOPs per BatchNorm output element (stem, every conv vertex, every projection)."""
    flops, _ = arch_costs("nb101", ops, adj, "cifar10")
    convs = np.isin(ops, [nb101.OPS.index("conv1x1-bn-relu"), nb101.OPS.index("conv3x3-bn-relu")])
    bn = 128 * 32 * 32
    for c_in, c_out, side, count in [(128, 128, 32, 3), (128, 256, 16, 1), (256, 256, 16, 2), (256, 512, 8, 1), (512, 512, 8, 2)]:
        channels = nb101_vertex_channels(adj, c_out)
        channels[:, 6] = c_out
        bn += count * side * side * (channels * (convs + adj[:, 0, :])).sum(1)
    return np.round(flops * 1e6) - 10 + 2 * bn


def test_nb101_reproduces_table_flops_on_first_rows() -> None:
    specs, table = read_nb101_table(200)
    ops, adj = dense_nb101(specs)
    np.testing.assert_array_equal(thop_flops(ops, adj), table)


@pytest.mark.slow
def test_nb101_whole_table() -> None:
    specs, table = read_nb101_table(None)
    ops, adj = dense_nb101(specs)
    node_f, _ = node_costs("nb101", ops, adj, "cifar10")  # its speed: benchmarks/speed.py, nb101_space_costs_s
    flops, _ = arch_costs("nb101", ops, adj, "cifar10")
    rho = spearmanr(flops, table).statistic
    ratio = np.median(table / (flops * 1e6))
    print(f"NB101 {len(table)} cells: Spearman {rho:.6f}, median table/ours {ratio:.4f}")
    assert node_f.shape == (423_624, 9, 7)
    assert rho >= 0.999
    np.testing.assert_array_equal(thop_flops(ops, adj), table)


# ------------------------------------------------------------------------------------------ scale, errors


def test_node_cost_scale_is_the_largest_node() -> None:
    ops, adj = dense_nb201(list(nb201.SPACE.enumerate()))
    for dataset in NB201_DATA:
        node_f, node_p = node_costs("nb201", ops, adj, dataset)
        assert node_cost_scale("nb201", dataset) == (node_f.max(), node_p.max())
    scale = node_cost_scale("nb101", "cifar10")
    assert scale.flops == pytest.approx((9 * 128 * 128 + 128 * 128) * 1024 / 1e6)
    assert scale.params == pytest.approx((9 * 512 * 512 + 512 * 512 + 4 * 512) / 1e6)
    node_f, node_p = node_costs("nb101", *dense_nb101(read_nb101_table(200)[0]), "cifar10")
    assert node_f.max() <= scale.flops and node_p.max() <= scale.params


def test_bad_input_raises_one_line_errors() -> None:
    ops, adj = dense_nb201([nb201.NB201Arch(("none",) * 6)])
    with pytest.raises(ConfigError, match="allowed: nb201, nb101"):
        node_costs("nb301", ops, adj, "cifar10")
    with pytest.raises(ConfigError, match="allowed: cifar10, cifar100, imagenet16"):
        arch_costs("nb201", ops, adj, "imagenet")
    with pytest.raises(ConfigError, match="allowed: cifar10"):
        node_costs("nb101", *dense_nb101([(np.array([[0, 1], [0, 0]]), ["input", "output"])]), "cifar100")
    with pytest.raises(InvalidArchError, match=r"ops \(N, 7\)"):
        node_costs("nb101", ops, adj, "cifar10")
    with pytest.raises(InvalidArchError, match="-1..6"):
        node_costs("nb201", np.where(ops == 1, 9, ops), adj, "cifar10")
    with pytest.raises(InvalidArchError, match="output at node 7"):
        node_costs("nb201", ops[:, ::-1].copy(), adj, "cifar10")


def test_reference_networks_run_on_real_tensors() -> None:
    """The meta-device counts above never execute kernels: run each network once for real (small)."""
    x = torch.randn(2, 3, 16, 16)
    assert NB201Network.from_arch(nb201.SPACE.random(np.random.default_rng(0)), 7, channels=4)(x).shape == (2, 7)
    matrix = np.array([[0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    net = NB101Network(matrix, ["input", "conv3x3-bn-relu", "maxpool3x3", "output"], stem_channels=6)
    assert net(x).shape == (2, 10)
    with pytest.raises(InvalidArchError, match="unknown NB101 op 'conv5x5'; allowed: input"):
        NB101Network(matrix, ["input", "conv5x5", "maxpool3x3", "output"])
