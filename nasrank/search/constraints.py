"""Cost constraints of a search (`constraint.params_max`, `flops_max`, `latency_max`): which cells count.

A cell's cost is known without training it, so a constrained search never spends a query on a cell
that breaks a bound: the `Oracle` refuses such cells as it refuses already-queried ones, and the
history's regret and ranks are taken against the best *feasible* cell, the only optimum a
constrained search can reach.  Costs are the benchmark's own measurements of the searched dataset,
else the analytic counts of the space's network (`nasrank.encodings.cost`: FLOPs and params of
NB201 and NB101 cells), so the shared NB201 table, which stores no costs, can be constrained too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.core import ConfigError
from nasrank.encodings.cost import SPACES_WITH_COSTS, arch_costs
from nasrank.encodings.graph import dense_graphs

#: cost name -> unit (as `Benchmark.costs` stores them)
UNITS = {"params": "M", "flops": "MFLOPs", "latency": "s"}


def _analytic(benchmark: Benchmark, dataset: str) -> dict[str, np.ndarray]:
    """Analytic MFLOPs and M params of every row on `dataset`; empty where no analytic model exists."""
    if benchmark.space.name not in SPACES_WITH_COSTS:
        return {}
    graphs = dense_graphs(benchmark.archs, benchmark.space)
    try:
        flops, params = arch_costs(benchmark.space.name, graphs.ops, graphs.adj, dataset)
    except ConfigError:  # a dataset the analytic network does not model
        return {}
    return {"flops": flops, "params": params}


def space_costs(benchmark: Benchmark, dataset: str, names: Iterable[str]) -> dict[str, np.ndarray]:
    """Each named cost of every row on `dataset` (measured, else analytic; NaN where unmeasured).

    Raises `ConfigError` naming the costs available when one is neither measured nor computable.
    """
    table = {k.split("/", 1)[1]: np.asarray(v, dtype=np.float64) for k, v in benchmark.costs.items() if k.split("/", 1)[0] == dataset}
    names = list(names)
    costs = {**_analytic(benchmark, dataset), **table} if set(names) - set(table) else table
    for name in names:
        if name not in costs:
            available = ", ".join(n for n in UNITS if n in costs) or "none"
            raise ConfigError(f"{benchmark.name} has no {name} cost on {dataset}; available: {available}")
    return {name: costs[name] for name in names}


@dataclass(frozen=True)
class Constraint:
    """Upper bounds on cell costs; no bounds (the default) constrains nothing.

    Args:
        bounds: cost name (a key of `UNITS`) -> largest allowed value, in that cost's unit.
    """

    bounds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, bound in self.bounds.items():
            if name not in UNITS:
                raise ConfigError(f"unknown constraint {name}_max; allowed: {', '.join(f'{n}_max' for n in UNITS)}")
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound) or bound <= 0:
                raise ConfigError(f"constraint.{name}_max={bound!r}; allowed: a number > 0 ({UNITS[name]}) or null")

    @classmethod
    def from_config(cls, node: Mapping[str, object] | None) -> "Constraint":
        """From the config's ``constraint`` node (``<cost>_max: value | null``)."""
        bounds = {}
        for key, value in (node or {}).items():
            if not key.endswith("_max") or key.removesuffix("_max") not in UNITS:
                raise ConfigError(f"unknown constraint.{key}; allowed: {', '.join(f'{n}_max' for n in UNITS)}")
            if value is not None:
                bounds[key.removesuffix("_max")] = value
        return cls(bounds)

    def __bool__(self) -> bool:
        return bool(self.bounds)

    def __str__(self) -> str:
        return ", ".join(f"{name}_max={bound:g}" for name, bound in self.bounds.items())

    def as_config(self) -> dict[str, float]:
        """The bounds as config keys, e.g. ``{"params_max": 0.5}`` (for saved histories)."""
        return {f"{name}_max": float(bound) for name, bound in self.bounds.items()}

    def feasible(self, benchmark: Benchmark, dataset: str) -> np.ndarray:
        """(N,) bool: the rows within every bound (unmeasured costs never are).

        Raises `ConfigError` when no row is: naming the bound and the smallest cost in the space.
        """
        costs = space_costs(benchmark, dataset, self.bounds)
        mask = np.ones(len(benchmark), dtype=bool)
        for name, bound in self.bounds.items():
            within = costs[name] <= bound
            if not within.any():
                raise ConfigError(f"no cell of {benchmark.name} satisfies constraint.{name}_max={bound:g} on {dataset}; "
                                  f"allowed: at least the smallest {name} in the space, {np.nanmin(costs[name]):.4g} {UNITS[name]}")
            mask &= within
        if not mask.any():
            raise ConfigError(f"no cell of {benchmark.name} satisfies {self} together on {dataset}; allowed: looser bounds (each alone is satisfiable)")
        return mask
