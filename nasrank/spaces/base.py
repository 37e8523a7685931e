"""What every search space provides, so benchmarks, encoders and search stay space-agnostic.

An architecture object is immutable and hashable by its exact (labelled) form; `iso_key()` gives
the canonical form shared by all cells that compute the same function, so isomorphic duplicates can
be removed or never queried twice without collapsing a benchmark's table rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Hashable, Iterator, Sequence

import numpy as np


class Arch(ABC):
    """An architecture of one search space."""

    @abstractmethod
    def to_str(self) -> str:
        """The space's string form; `Space.from_str(arch.to_str()) == arch`."""

    @abstractmethod
    def iso_key(self) -> Hashable:
        """Canonical form: equal for exactly the cells that compute the same function."""

    @abstractmethod
    def node_graph(self) -> tuple[list[str], list[tuple[int, int]]]:
        """Node-op DAG view: op name per node (input first, output last) and (src, dst) edges.

        This is the single view every graph/tensor encoder consumes, which is why encoders work for
        every space without special cases.
        """


class Space(ABC):
    """A search space: its op vocabulary, parsing, enumeration and mutation."""

    name: str
    #: The `Arch` subclass of this space's cells.
    arch_type: type[Arch]
    #: Node-op vocabulary of `Arch.node_graph()`, in one fixed order (one-hot column order).
    node_ops: Sequence[str]
    #: Maximum number of nodes of `node_graph()`; encoders pad to it.
    max_nodes: int

    @abstractmethod
    def from_str(self, text: str) -> Arch:
        """Parse `Arch.to_str()` output; raises `InvalidArchError` naming the bad part."""

    @abstractmethod
    def enumerate(self) -> Iterator[Arch]:
        """Every architecture of the space (for NB101: one per isomorphism class)."""

    @abstractmethod
    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """A random neighbour that differs from `arch` (used by evolution)."""

    @abstractmethod
    def random(self, rng: np.random.Generator) -> Arch:
        """A uniformly random valid architecture."""
