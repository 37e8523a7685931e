"""`Oracle`: the only way a strategy learns a true value, so the budget rules hold for every strategy.

Every query goes through `Oracle.query`, which counts it against the budget and refuses a cell that
was already queried or is isomorphic to one that was (`Arch.iso_key`), or that breaks the search's
cost constraint: strategies cannot cheat by construction, and the rules are tested once, here,
instead of once per strategy.  Strategies pick cells through `free` / `sample_free` /
`distinct_free`, so under a constraint they propose feasible cells only, without knowing it.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.core import ConfigError
from nasrank.search.constraints import Constraint
from nasrank.search.history import History, space_ranks
from nasrank.spaces import Arch


def iso_classes(benchmark: Benchmark) -> np.ndarray:
    """(N,) int class id of each row: equal exactly for isomorphic cells."""
    _, inverse = np.unique(np.asarray([str(k) for k in benchmark.iso_keys()]), return_inverse=True)
    return inverse.astype(np.int64)


class Oracle:
    """Answers queries on one benchmark target within a budget.

    Args:
        benchmark: the table queried.
        target: target key, e.g. ``"cifar10/test_acc"``.
        budget: number of queries allowed; at most the number of non-isomorphic (feasible) cells.
        constraint: cost bounds on the target's dataset; only cells within them may be queried.
    """

    def __init__(self, benchmark: Benchmark, target: str, budget: int, constraint: Constraint | None = None) -> None:
        self.benchmark, self.target = benchmark, target
        self.constraint = constraint or Constraint()
        self._values = np.asarray(benchmark.target(target), dtype=np.float64)
        #: (N,) bool: rows within the constraint (all rows when unconstrained)
        self.feasible = self.constraint.feasible(benchmark, target.split("/")[0]) if self.constraint else np.ones(len(benchmark), dtype=bool)
        self.classes = iso_classes(benchmark)
        n_classes = int(self.classes.max()) + 1 if len(self.classes) else 0
        n_open = len(np.unique(self.classes[self.feasible]))
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or not 1 <= budget <= n_open:
            within = f" within {self.constraint}" if self.constraint else ""
            raise ConfigError(f"budget={budget!r}; allowed: an integer in 1..{n_open} (the non-isomorphic cells of {benchmark.name}{within})")
        self.budget = int(budget)
        self._seen = np.zeros(n_classes, dtype=bool)
        self.rows: list[int] = []
        self.sources: list[str] = []
        self._known: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.benchmark)

    @property
    def remaining(self) -> int:
        return self.budget - len(self.rows)

    @property
    def queried(self) -> np.ndarray:
        return np.asarray(self.rows, dtype=np.int64)

    def archs(self, rows: Iterable[int]) -> list[Arch]:
        """The cells of these rows (what a ranker is asked about)."""
        return [self.benchmark.archs[r] for r in rows]

    def labelled(self) -> tuple[list[Arch], np.ndarray]:
        """Every queried cell and its measured value, in query order (what a ranker is fitted on)."""
        rows = self.queried
        return self.archs(rows), self.values(rows)

    def free(self, rows: np.ndarray) -> np.ndarray:
        """Bool mask: which of `rows` may still be queried (feasible, and no queried cell is isomorphic to them)."""
        return ~self._seen[self.classes[rows]] & self.feasible[rows]

    def value(self, row: int) -> float:
        """True value of a row that was already queried (reading it again is free)."""
        if row not in self._known:
            raise RuntimeError(f"row {row} was never queried; query it first")
        return self._known[row]

    def values(self, rows: Iterable[int]) -> np.ndarray:
        return np.array([self.value(r) for r in rows], dtype=np.float64)

    def query(self, rows: Iterable[int], source: str) -> np.ndarray:
        """Query these rows in order; returns their true values.

        Raises `RuntimeError` (a strategy bug, not user input) past the budget, on an infeasible cell
        or on a repeated or isomorphic cell, including two isomorphic cells in the same call.
        """
        rows = [int(r) for r in rows]
        for row in rows:
            if self.remaining <= 0:
                raise RuntimeError(f"budget of {self.budget} queries exhausted")
            if not self.feasible[row]:
                raise RuntimeError(f"row {row} breaks the constraint {self.constraint}")
            if self._seen[self.classes[row]]:
                raise RuntimeError(f"row {row} repeats an already queried (or isomorphic) cell")
            self._seen[self.classes[row]] = True
            self.rows.append(row)
            self.sources.append(source)
            self._known[row] = float(self._values[row])
        return self._values[rows]

    def sample_free(self, rng: np.random.Generator, n: int, candidates: np.ndarray | None = None) -> np.ndarray:
        """Up to `n` random rows (of `candidates`, default all rows) that may be queried, no two isomorphic."""
        pool = rng.permutation(len(self) if candidates is None else candidates)
        return self.distinct_free(pool)[:n]

    def distinct_free(self, ordered: np.ndarray) -> np.ndarray:
        """`ordered` without rows that may not be queried and without later isomorphs of earlier rows."""
        ordered = np.asarray(ordered, dtype=np.int64)
        ordered = ordered[self.free(ordered)]
        _, first = np.unique(self.classes[ordered], return_index=True)
        return ordered[np.sort(first)]

    def history(self, strategy: str, seed: int, **extra) -> History:
        """The queries so far; optimum, ranks and space size are those of the feasible cells."""
        rows, space = self.queried, self._values[self.feasible]
        if self.constraint:
            extra = {**extra, "constraint": self.constraint.as_config(), "feasible_cells": len(space), "all_cells": len(self)}
        return History(strategy=strategy, benchmark=self.benchmark.name, target=self.target, seed=int(seed),
                       budget=self.budget, rows=rows, archs=tuple(self.benchmark.archs[r].to_str() for r in rows),
                       values=self._values[rows], sources=tuple(self.sources), ranks=space_ranks(space, self._values[rows]),
                       optimum=float(space.max()), space_size=len(space), extra=extra)
