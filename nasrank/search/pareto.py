"""Accuracy-vs-cost Pareto fronts: the cells that no other cell beats on both value and cost.

A constrained search answers "the best cell within this bound"; the front of its queries answers it
for every tighter bound at once, at no extra query, and the whole space's front (costs and values are
all in the table) shows what the search missed and what the bound cut off.  Saved next to the
history: `pareto.csv` (the queried cells on the front, cheapest first) and `pareto.png`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nasrank.core import ConfigError, write_atomic
from nasrank.search.constraints import UNITS, Constraint
from nasrank.search.history import History
from nasrank.search.plot import plot_pareto


def pareto_mask(values: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """(N,) bool: the points no other point dominates (value ≥ and cost ≤, one of them strictly).

    Higher value and lower cost are better.  Equal points are on the front together; a point with a
    NaN value or cost never is.  O(N log N): sorted by cost, a point is on the front when it is the
    best of its equal-cost group and beats every strictly cheaper point.
    """
    values, costs = np.asarray(values, dtype=np.float64), np.asarray(costs, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(values) & np.isfinite(costs))
    order = valid[np.lexsort((-values[valid], costs[valid]))]  # cost ascending, then value descending
    v, c = values[order], costs[order]
    group_start = np.searchsorted(c, c, side="left")
    best_cheaper = np.concatenate([[-np.inf], np.maximum.accumulate(v)])[group_start]
    mask = np.zeros(len(values), dtype=bool)
    mask[order[(v == v[group_start]) & (v > best_cheaper)]] = True
    return mask


def front_cost(pareto: str | None, constraint: Constraint) -> str | None:
    """The cost a run's front trades value against: `pareto` when set, else the first constrained
    cost; None (no front) for an unconstrained run that did not ask for one."""
    if pareto is None:
        return next(iter(constraint.bounds), None)
    if pareto not in UNITS:
        raise ConfigError(f"pareto={pareto!r}; allowed: {', '.join(UNITS)} or null (the first constrained cost)")
    return pareto


def _front(values: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Indices of the front, cheapest first."""
    on = np.flatnonzero(pareto_mask(values, costs))
    return on[np.argsort(costs[on], kind="stable")]


def save_front(history: History, space_values: np.ndarray, costs: np.ndarray, cost: str, bound: float | None,
               folder: str | Path) -> list[Path]:
    """Write the front of `history`'s queries on `cost` (`costs`: every row's) as pareto.csv and
    pareto.png, the plot with the whole space's front and `bound` (if any); returns the paths."""
    folder = Path(folder)
    queried = costs[history.rows]
    front = _front(history.values, queried)
    lines = [f"query,row,arch,value,{cost}"]
    lines += [f"{i + 1},{history.rows[i]},{history.archs[i]},{history.values[i]},{queried[i]}" for i in front]
    csv = folder / "pareto.csv"
    write_atomic(csv, ("\n".join(lines) + "\n").encode())
    space = _front(space_values, costs)
    png = plot_pareto((queried, history.values), (queried[front], history.values[front]), (costs[space], space_values[space]),
                      bound, f"{cost} ({UNITS[cost]}) on {history.target.split('/')[0]}", history.target, folder / "pareto.png",
                      f"{history.strategy} on {history.benchmark} {history.target}, seed {history.seed}")
    return [csv, png]
