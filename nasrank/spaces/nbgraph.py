"""NAS-Bench-Graph search space (GNN cells of 4 computing nodes).

Each computing node applies one of `OPS` to one earlier node (0 = the input); `LINKS` are the 9
wiring patterns the benchmark kept after removing isomorphic wirings.  The benchmark's integer key is
``link index * 10**4 + the 4 op digits`` (base 10, node order): see ../shared/data/README.md.
The cell output aggregates every computing node that no other node reads (the benchmark's rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from nasrank.core import InvalidArchError
from nasrank.spaces.base import Arch, Space

OPS: tuple[str, ...] = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
#: For each link index, which earlier node (0 = input, k = computing node k) feeds each of the 4 nodes.
LINKS: tuple[tuple[int, ...], ...] = (
    (0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 1, 2), (0, 0, 1, 3),
    (0, 1, 1, 1), (0, 1, 1, 2), (0, 1, 2, 2), (0, 1, 2, 3),
)
#: The only ops of the `proteins` dataset (checked on all its keys).
PROTEINS_OPS: tuple[str, ...] = ("gcn", "sage", "arma", "fc", "skip")
NUM_NODES = 4


@dataclass(frozen=True, slots=True)
class NBGraphArch(Arch):
    """A GNN cell: wiring pattern index into `LINKS` and the op of each of the 4 nodes."""

    link: int
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.link, (int, np.integer)) or not 0 <= self.link < len(LINKS):
            raise InvalidArchError(f"NAS-Bench-Graph link index {self.link!r} out of range; allowed: 0..{len(LINKS) - 1}")
        if len(self.ops) != NUM_NODES:
            raise InvalidArchError(f"NAS-Bench-Graph cell needs {NUM_NODES} ops, got {len(self.ops)}")
        for op in self.ops:
            if op not in OPS:
                raise InvalidArchError(f"unknown NAS-Bench-Graph op {op!r}; allowed: {', '.join(OPS)}")

    @classmethod
    def from_key(cls, key: int) -> "NBGraphArch":
        """Decode the benchmark's integer key."""
        if not isinstance(key, (int, np.integer)) or not 0 <= key < len(LINKS) * 10**NUM_NODES:
            raise InvalidArchError(f"NAS-Bench-Graph key {key!r} out of range; allowed: 0..{len(LINKS) * 10**NUM_NODES - 1}")
        link, digits = divmod(int(key), 10**NUM_NODES)
        ops = []
        for d in f"{digits:0{NUM_NODES}d}":
            if int(d) >= len(OPS):
                raise InvalidArchError(f"NAS-Bench-Graph key {key}: op digit {d} out of range; allowed: 0..{len(OPS) - 1}")
            ops.append(OPS[int(d)])
        return cls(link, tuple(ops))

    @property
    def key(self) -> int:
        return self.link * 10**NUM_NODES + int("".join(str(OPS.index(op)) for op in self.ops))

    def to_str(self) -> str:
        """``link:<i>|op,op,op,op`` e.g. ``link:8|skip,skip,skip,fc``."""
        return f"link:{self.link}|{','.join(self.ops)}"

    def iso_key(self) -> int:
        # The benchmark stores one wiring per isomorphism class already (LINKS are regularised).
        return self.key

    def node_graph(self) -> tuple[list[str], list[tuple[int, int]]]:
        """Node 0 input, nodes 1..4 the computing nodes, node 5 the output (reads the leaves)."""
        wiring = LINKS[self.link]
        edges = [(src, k + 1) for k, src in enumerate(wiring)]
        used = set(wiring)
        edges.extend((k, NUM_NODES + 1) for k in range(1, NUM_NODES + 1) if k not in used)
        return ["input", *self.ops, "output"], edges


class NBGraphSpace(Space):
    """All link × op combinations (9 × 9**4); benchmarks store a deduplicated subset."""

    name = "nbgraph"
    arch_type = NBGraphArch
    node_ops = ("input", *OPS, "output")
    max_nodes = NUM_NODES + 2

    def from_str(self, text: str) -> NBGraphArch:
        if not isinstance(text, str):
            raise InvalidArchError(f"NAS-Bench-Graph arch string must be a str, got {type(text).__name__}")
        head, sep, ops = text.strip().partition("|")
        if not sep or not head.startswith("link:") or not head[5:].isdigit():
            raise InvalidArchError(f"malformed NAS-Bench-Graph arch string {text!r}: expected 'link:<0-8>|op,op,op,op'")
        return NBGraphArch(int(head[5:]), tuple(ops.split(",")))

    def from_key(self, key: int) -> NBGraphArch:
        return NBGraphArch.from_key(key)

    def enumerate(self) -> Iterator[NBGraphArch]:
        for link in range(len(LINKS)):
            for code in range(len(OPS) ** NUM_NODES):
                ops, rest = [], code
                for _ in range(NUM_NODES):
                    rest, d = divmod(rest, len(OPS))
                    ops.append(OPS[d])
                yield NBGraphArch(link, tuple(reversed(ops)))

    def random(self, rng: np.random.Generator) -> NBGraphArch:
        return NBGraphArch(int(rng.integers(len(LINKS))), tuple(OPS[i] for i in rng.integers(0, len(OPS), NUM_NODES)))

    def mutate(self, arch: NBGraphArch, rng: np.random.Generator) -> NBGraphArch:
        """Change one node's op (wiring is kept: links are not a metric space)."""
        node = int(rng.integers(NUM_NODES))
        choices = [op for op in OPS if op != arch.ops[node]]
        ops = list(arch.ops)
        ops[node] = choices[int(rng.integers(len(choices)))]
        return NBGraphArch(arch.link, tuple(ops))


SPACE = NBGraphSpace()
