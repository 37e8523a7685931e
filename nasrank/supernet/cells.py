"""Reference PyTorch networks of NAS-Bench-201 and NAS-Bench-101, built exactly as the benchmarks built them.

They exist so the analytic costs of `nasrank.encodings.cost` can be checked against real modules
(parameter counts, counted FLOPs), and so a weight-sharing supernet can reuse the NB201 ops, cell and
network skeleton (`nb201_op`, `NB201Cell`, `NB201Network(cell_factory=...)`) instead of re-deriving them.

- NB201 follows xautodl's ``TinyNetwork`` / ``InferCell`` / ``cell_operations`` (``C=16, N=5``).
- NB101 follows google-research/nasbench ``model_builder.py`` / ``base_ops.py``: convolutions without
  bias, BN with nasbench's momentum and epsilon, 1x1 projections of the cell input, truncation of
  wider inputs, concatenation at the output (plus the projected input when it feeds the output).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from nasrank.core import ConfigError, InvalidArchError
from nasrank.spaces import nb101
from nasrank.spaces.nb201 import EDGES, OPS as NB201_OPS, NB201Arch

# ---------------------------------------------------------------------------------------------- NB201


class ReLUConvBN(nn.Sequential):
    """NB201's ``nor_conv_kxk``: ReLU -> conv (no bias, BN follows) -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """NB201's ``none``: an all-zero output (kept as a module so the cell's sum keeps its shape)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


def nb201_op(name: str, channels: int) -> nn.Module:
    """One NB201 edge op inside a normal cell (stride 1, equal in/out channels, as in every NB201 cell).

    With equal channels NB201's ``avg_pool_3x3`` has no 1x1 preprocessing and ``skip_connect`` is
    the identity, so only the two convolutions carry weights.
    """
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise InvalidArchError(f"unknown NB201 op {name!r}; allowed: {', '.join(NB201_OPS)}")


class NB201Cell(nn.Module):
    """NB201 ``InferCell``: node j = sum over i < j of op_(j<-i)(node i); the cell outputs node 3."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        if len(ops) != len(EDGES):
            raise InvalidArchError(f"NB201 cell needs {len(EDGES)} edge ops, got {len(ops)}")
        self.edges = nn.ModuleList(nb201_op(op, channels) for op in ops)

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]
        for dst in range(1, 4):
            nodes.append(sum(self.edges[k](nodes[src]) for k, (d, src) in enumerate(EDGES) if d == dst))
        return nodes[3]


class ResNetBasicBlock(nn.Module):
    """NB201's reduction block between stages: two ReLUConvBN 3x3 (first one strided) plus an
    avg-pool + 1x1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """NB201 ``TinyNetwork``: stem conv3x3 + BN, 3 stages of `cells_per_stage` cells with C, 2C, 4C
    channels separated by `ResNetBasicBlock`s, then BN-ReLU, global average pool and a linear classifier.

    `cell_factory(channels)` builds each cell, so a supernet can plug its own mixed-op cell into the
    same skeleton; `from_arch` gives the benchmark's fixed network.
    """

    def __init__(self, cell_factory: Callable[[int], nn.Module], num_classes: int, channels: int = 16,
                 cells_per_stage: int = 5) -> None:
        super().__init__()
        if num_classes < 1 or channels < 1 or cells_per_stage < 1:
            raise ConfigError(f"NB201 network needs positive num_classes/channels/cells_per_stage, got "
                              f"{num_classes}/{channels}/{cells_per_stage}")
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        for stage in range(3):
            c = channels * 2**stage
            if stage > 0:
                layers.append(ResNetBasicBlock(c // 2, c))
            layers.extend(cell_factory(c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        c_last = channels * 4
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_last), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, num_classes)

    @classmethod
    def from_arch(cls, arch: NB201Arch, num_classes: int, channels: int = 16, cells_per_stage: int = 5) -> "NB201Network":
        return cls(lambda c: NB201Cell(arch.ops, c), num_classes, channels, cells_per_stage)

    def forward(self, x: Tensor) -> Tensor:
        out = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.global_pooling(out).flatten(1))


# ---------------------------------------------------------------------------------------------- NB101

#: nasbench ``base_ops``: BN_MOMENTUM 0.997 (TF decay) is PyTorch momentum 0.003; BN_EPSILON 1e-5.
_NB101_BN = {"momentum": 1.0 - 0.997, "eps": 1e-5}
_NB101_KERNEL = {"conv1x1-bn-relu": 1, "conv3x3-bn-relu": 3}


class ConvBnRelu(nn.Sequential):
    """nasbench ``conv_bn_relu``: 'same' conv without bias, BN, ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, **_NB101_BN),
            nn.ReLU(inplace=False),
        )


def compute_vertex_channels(c_in: int, c_out: int, matrix: np.ndarray) -> list[int]:
    """nasbench ``compute_vertex_channels``: the output channels are split evenly over the vertices
    feeding the output (the first `c_out % fan_in` of them get one more); every other interior vertex
    takes the max of the vertices it feeds."""
    n = len(matrix)
    channels = [c_in] + [0] * (n - 2) + [c_out]
    if n == 2:
        return channels
    fan_in = int(matrix[1:, n - 1].sum())
    base, extra = divmod(c_out, fan_in)
    for v in range(1, n - 1):
        if matrix[v, n - 1]:
            channels[v] = base + (1 if extra > 0 else 0)
            extra -= 1
    for v in range(n - 3, 0, -1):
        if not matrix[v, n - 1]:
            channels[v] = max([channels[v]] + [channels[d] for d in range(v + 1, n - 1) if matrix[v, d]])
    return channels


def _nb101_op(name: str, channels: int) -> nn.Module:
    if name == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    return ConvBnRelu(channels, channels, _NB101_KERNEL[name])


class NB101Cell(nn.Module):
    """nasbench ``build_module``: vertex t = op(sum of earlier vertices truncated to its width + 1x1
    projection of the cell input); the output concatenates the vertices feeding it and adds the
    projected input when the input feeds the output directly."""

    def __init__(self, matrix: np.ndarray, ops: Sequence[str], c_in: int, c_out: int) -> None:
        super().__init__()
        self.matrix = np.asarray(matrix, dtype=np.int64)
        n = len(ops)
        self.channels = compute_vertex_channels(c_in, c_out, self.matrix)
        self.vertex_ops = nn.ModuleDict({str(t): _nb101_op(ops[t], self.channels[t]) for t in range(1, n - 1)})
        self.projections = nn.ModuleDict(
            {str(t): ConvBnRelu(c_in, self.channels[t], 1) for t in range(1, n) if self.matrix[0, t]})

    def forward(self, x: Tensor) -> Tensor:
        n = len(self.matrix)
        tensors, concat = [x], []
        for t in range(1, n - 1):
            fan_in = [tensors[s][:, : self.channels[t]] for s in range(1, t) if self.matrix[s, t]]
            if self.matrix[0, t]:
                fan_in.append(self.projections[str(t)](x))
            tensors.append(self.vertex_ops[str(t)](sum(fan_in)))
            if self.matrix[t, n - 1]:
                concat.append(tensors[t])
        if not concat:
            return self.projections[str(n - 1)](x)
        out = torch.cat(concat, dim=1)
        if self.matrix[0, n - 1]:
            out = out + self.projections[str(n - 1)](x)
        return out


def _check_nb101_spec(matrix: np.ndarray, ops: Sequence[str]) -> None:
    """A pruned NB101 spec is what `NB101Arch` accepts; reuse its validation for one error vocabulary."""
    nb101.NB101Arch(tuple(map(tuple, matrix.tolist())), tuple(ops))


class NB101Network(nn.Module):
    """nasbench's network: stem conv3x3-BN-ReLU (128), 3 stacks of 3 cells, 2x2 max-pool and channel
    doubling before stacks 2 and 3, global average pool, linear classifier."""

    def __init__(self, matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str], num_classes: int = 10,
                 stem_channels: int = 128, num_stacks: int = 3, cells_per_stack: int = 3) -> None:
        super().__init__()
        matrix = np.asarray(matrix, dtype=np.int64)
        _check_nb101_spec(matrix, ops)
        layers: list[nn.Module] = [ConvBnRelu(3, stem_channels, 3)]
        c_in = c_out = stem_channels
        for stack in range(num_stacks):
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2))
                c_out *= 2
            for _ in range(cells_per_stack):
                layers.append(NB101Cell(matrix, ops, c_in, c_out))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_out, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.layers(x).mean(dim=(2, 3)))
