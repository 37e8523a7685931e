"""The one table type every loader returns.

Loaders only read files: they never train anything and never build torch modules, so a
Benchmark is cheap to create and safe to cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Sequence

import numpy as np

from nasrank.core import ConfigError, InvalidArchError
from nasrank.spaces.base import Arch, Space


@dataclass
class Benchmark:
    """Architectures of one space with their measured targets and costs.

    `targets` maps ``"<dataset>/<metric>"`` (e.g. ``"cifar100/test_acc"``) to one value per arch,
    accuracies in percent as stored.  `costs` maps ``"<dataset>/<cost>"`` (``flops`` in MFLOPs,
    ``params`` in M, ``latency`` in s) likewise; it holds only what the source provides.
    """

    name: str
    space: Space
    archs: Sequence[Arch]
    targets: dict[str, np.ndarray]
    costs: dict[str, np.ndarray] = field(default_factory=dict)
    _index: dict[Arch, int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.archs)
        for kind, table in (("target", self.targets), ("cost", self.costs)):
            for key, values in table.items():
                if len(values) != n:
                    raise ValueError(f"{self.name}: {kind} {key!r} has {len(values)} values for {n} archs")

    def __len__(self) -> int:
        return len(self.archs)

    @property
    def datasets(self) -> list[str]:
        """Dataset names that have at least one target, in first-seen order."""
        return list(dict.fromkeys(k.split("/")[0] for k in self.targets))

    def index_of(self, arch: Arch) -> int:
        """Row of `arch` in this table (the benchmark's own index order)."""
        if self._index is None:
            self._index = {a: i for i, a in enumerate(self.archs)}
        try:
            return self._index[arch]
        except KeyError:
            raise InvalidArchError(f"{self.name}: architecture {arch.to_str()} is not in this benchmark") from None

    def target(self, key: str) -> np.ndarray:
        """Values of one target; unknown keys get one line listing the allowed ones."""
        return _lookup(self.name, "target", self.targets, key)

    def cost(self, key: str) -> np.ndarray:
        """Values of one cost; unknown keys get one line listing the allowed ones."""
        return _lookup(self.name, "cost", self.costs, key)

    def iso_keys(self) -> list[Hashable]:
        """Canonical form of every row (for dedup of isomorphic cells)."""
        return [a.iso_key() for a in self.archs]


def _lookup(name: str, kind: str, table: dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in table:
        allowed = ", ".join(sorted(table)) or "none"
        raise ConfigError(f"{name}: unknown {kind} {key!r}; allowed: {allowed}")
    return table[key]
