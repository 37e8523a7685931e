"""NAS-Bench-201 / NATS-Bench topology search space.

A cell has 4 nodes and 6 edges ``j <- i`` (i < j); each edge holds one of 5 ops.  Edges are kept in
arch-string order ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``.  `OPS` is the single op ordering of this
space: every encoder imports it from here.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from nasrank.core import InvalidArchError
from nasrank.spaces.base import Arch, Space

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (dst, src) of each edge, in arch-string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_ARCHS = len(OPS) ** len(EDGES)  # 15,625

_NODE_RE = re.compile(r"^\|(.*)\|$")


@dataclass(frozen=True, slots=True)
class NB201Arch(Arch):
    """One NB201 cell: the op name of each edge, in `EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise InvalidArchError(f"NB201 cell needs {len(EDGES)} edge ops, got {len(self.ops)}")
        for op in self.ops:
            if op not in OPS:
                raise InvalidArchError(f"unknown NB201 op {op!r}; allowed: {', '.join(OPS)}")

    @classmethod
    def from_index(cls, index: int) -> "NB201Arch":
        """Arch at position `index` of `NB201Space.enumerate()` (base-5 digits, first edge most
        significant).  This is the space's own order, not the NATS table's row order."""
        if not isinstance(index, (int, np.integer)) or not 0 <= index < NUM_ARCHS:
            raise InvalidArchError(f"NB201 index {index!r} out of range; allowed: 0..{NUM_ARCHS - 1}")
        digits = []
        for _ in EDGES:
            index, d = divmod(int(index), len(OPS))
            digits.append(d)
        return cls(tuple(OPS[d] for d in reversed(digits)))

    @property
    def op_indices(self) -> tuple[int, ...]:
        return tuple(OPS.index(op) for op in self.ops)

    @property
    def index(self) -> int:
        """Inverse of `from_index`."""
        value = 0
        for d in self.op_indices:
            value = value * len(OPS) + d
        return value

    def to_str(self) -> str:
        parts, k = [], 0
        for node in range(1, 4):
            parts.append("|" + "|".join(f"{self.ops[k + i]}~{i}" for i in range(node)) + "|")
            k += node
        return "+".join(parts)

    def iso_key(self) -> str:
        """Canonical form: NB201's own ``to_unique_str(consider_zero=True)``, reproduced exactly.

        A node is the sorted '+'-join of its incoming terms; a `none` edge, or an edge from a node
        that is exactly zero, gives the zero term ``#``; `skip_connect` passes its input's expression
        through.  This reproduces the NATS table's `UniqueString` (6,466 classes) string for string,
        which is why its quirks (``#`` terms are kept inside sums) are kept too.
        """
        nodes, k = {0: "0"}, 0
        for dst in range(1, 4):
            terms: list[str] = []
            for src in range(dst):
                op, k = self.ops[k], k + 1
                if op == "none" or nodes[src] == "#":
                    terms.append("#")
                elif op == "skip_connect":
                    terms.append(nodes[src])
                else:
                    terms.append(f"({nodes[src]})@{op}")
            nodes[dst] = "+".join(sorted(terms))
        return nodes[3]

    def node_graph(self) -> tuple[list[str], list[tuple[int, int]]]:
        """Node-op view: node 0 input, nodes 1..6 the edge ops (in `EDGES` order), node 7 output.

        Op node of edge (j <- i) reads cell node i, i.e. the outputs of every op node ending in i.
        """
        labels = ["input", *self.ops, "output"]
        edges: list[tuple[int, int]] = []
        for k, (dst, src) in enumerate(EDGES):
            if src == 0:
                edges.append((0, k + 1))
            else:
                edges.extend((m + 1, k + 1) for m, (d2, _) in enumerate(EDGES) if d2 == src)
        edges.extend((m + 1, 7) for m, (d2, _) in enumerate(EDGES) if d2 == 3)
        return labels, edges

    def mutate_edge(self, edge: int, op: str) -> "NB201Arch":
        ops = list(self.ops)
        ops[edge] = op
        return NB201Arch(tuple(ops))


class NB201Space(Space):
    """The 15,625-cell NB201 space."""

    name = "nb201"
    arch_type = NB201Arch
    node_ops = ("input", *OPS, "output")
    max_nodes = 8

    def from_str(self, text: str) -> NB201Arch:
        """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        if not isinstance(text, str):
            raise InvalidArchError(f"NB201 arch string must be a str, got {type(text).__name__}")
        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise InvalidArchError(f"malformed NB201 arch string {text!r}: expected 3 '+'-separated nodes, got {len(nodes)}")
        ops: list[str] = []
        for dst, node in enumerate(nodes, start=1):
            m = _NODE_RE.match(node)
            items = m.group(1).split("|") if m else []
            if len(items) != dst:
                raise InvalidArchError(f"malformed NB201 arch string {text!r}: node {dst} must be '|op~0|...|op~{dst - 1}|' with {dst} edges")
            for src, item in enumerate(items):
                op, sep, idx = item.rpartition("~")
                if not sep or idx != str(src):
                    raise InvalidArchError(f"malformed NB201 edge {item!r} in node {dst}: expected 'op~{src}'")
                ops.append(op)
        return NB201Arch(tuple(ops))

    def from_index(self, index: int) -> NB201Arch:
        return NB201Arch.from_index(index)

    def enumerate(self) -> Iterator[NB201Arch]:
        return (NB201Arch(ops) for ops in itertools.product(OPS, repeat=len(EDGES)))

    def random(self, rng: np.random.Generator) -> NB201Arch:
        return NB201Arch(tuple(OPS[i] for i in rng.integers(0, len(OPS), len(EDGES))))

    def mutate(self, arch: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        """Change one edge to a different op."""
        edge = int(rng.integers(len(EDGES)))
        choices = [op for op in OPS if op != arch.ops[edge]]
        return arch.mutate_edge(edge, choices[int(rng.integers(len(choices)))])


SPACE = NB201Space()
