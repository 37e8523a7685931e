"""`History`: what every search strategy returns, in one type, so runs compare and plot alike.

A history holds only what was queried (rows in order, their true values, where each came from) plus
two facts about the space (its optimum and size) and each query's rank in it; best-so-far, regret
and rank percentile are derived from those, so they can never disagree with the queries.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
import numpy as np

from nasrank.core import CorruptDataError, write_atomic

CSV_COLUMNS = ("query", "row", "arch", "value", "source", "best", "regret", "best_rank", "best_percentile")


def space_ranks(space_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """1-based rank of each value among the space's values: 1 + the number of strictly better cells
    (ties share the better rank, so two cells tied for the optimum both have rank 1)."""
    negated = np.sort(-np.asarray(space_values, dtype=np.float64))  # ascending = best first
    return np.searchsorted(negated, -np.asarray(values, dtype=np.float64), side="left").astype(np.int64) + 1


@dataclass(frozen=True)
class History:
    """The queries of one search run, in order.

    Args:
        strategy: sampler name (``random``, ``evolution``, ``topk``, ``nar_tier``, ...).
        benchmark: benchmark name (``nb201``, ``nb101``, ...).
        target: the queried target key, e.g. ``"cifar100/test_acc"`` (values in its units: %).
        seed: the run's seed.
        budget: queries allowed (every query counts, including a ranker's training set).
        rows: benchmark row of each query.
        archs: each query's architecture string (`Arch.to_str()`), so a history is readable alone.
        values: true target value of each query.
        sources: why each cell was queried (``random``, ``mutation``, ``ranker``, ...).
        ranks: 1-based rank of each queried value in the searched space (see `space_ranks`).
        optimum: best value in the searched space.
        space_size: number of cells in the searched space.
        extra: facts about the run that are not queries (ranker, wall time, number of ranker fits; for
            a constrained run ``constraint``, ``feasible_cells`` and ``all_cells``).

    The searched space is the whole benchmark, or only its cells within the cost constraint when one
    is set (``extra["constraint"]``): a constrained search is judged against the best feasible cell.
    """

    strategy: str
    benchmark: str
    target: str
    seed: int
    budget: int
    rows: np.ndarray
    archs: tuple[str, ...]
    values: np.ndarray
    sources: tuple[str, ...]
    ranks: np.ndarray
    optimum: float
    space_size: int
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.rows)
        if not (len(self.archs) == len(self.values) == len(self.sources) == len(self.ranks) == n):
            raise CorruptDataError(f"history of {self.strategy}: rows, archs, values, sources and ranks must have the same length")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def best(self) -> np.ndarray:
        """Best value found after each query (non-decreasing)."""
        return np.maximum.accumulate(self.values) if len(self) else np.empty(0)

    @property
    def regret(self) -> np.ndarray:
        """Space optimum minus best so far, after each query (≥ 0, non-increasing)."""
        return self.optimum - self.best

    @property
    def best_rank(self) -> np.ndarray:
        """Space rank of the best cell so far (1 = an optimum)."""
        return np.minimum.accumulate(self.ranks) if len(self) else np.empty(0, dtype=np.int64)

    @property
    def best_percentile(self) -> np.ndarray:
        """Best rank so far as a percentage of the space (lower is better; NAR's "top x %")."""
        return 100.0 * self.best_rank / self.space_size

    @property
    def best_index(self) -> int:
        """Query index of the best cell found (the first, if tied)."""
        return int(np.argmax(self.values))

    @property
    def queries_to_optimum(self) -> int | None:
        """Number of queries until an optimal cell was first queried; None if never."""
        hit = np.flatnonzero(self.ranks == 1)
        return int(hit[0]) + 1 if len(hit) else None

    def at(self, queries: int) -> dict[str, float | int | None]:
        """Best value, regret, rank and percentile after the first `queries` queries."""
        i = min(queries, len(self)) - 1
        return {"queries": i + 1, "best": float(self.best[i]), "regret": float(self.regret[i]),
                "best_rank": int(self.best_rank[i]), "best_percentile": float(self.best_percentile[i])}

    # -- files ---------------------------------------------------------------------------------
    def to_json(self) -> str:
        data = asdict(self)
        data.update(rows=self.rows.tolist(), values=self.values.tolist(), ranks=self.ranks.tolist(),
                    archs=list(self.archs), sources=list(self.sources))
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "History":
        try:
            data = json.loads(text)
            data.update(rows=np.asarray(data["rows"], dtype=np.int64), values=np.asarray(data["values"], dtype=np.float64),
                        ranks=np.asarray(data["ranks"], dtype=np.int64), archs=tuple(data["archs"]), sources=tuple(data["sources"]))
            return cls(**data)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise CorruptDataError(f"not a search history ({type(err).__name__}: {err})") from None

    def to_csv(self) -> str:
        """One line per query with the derived columns (arch strings contain no commas or quotes)."""
        lines = [",".join(CSV_COLUMNS)]
        columns = (self.rows, self.archs, self.values, self.sources, self.best, self.regret, self.best_rank, self.best_percentile)
        for i, row in enumerate(zip(*columns), start=1):
            lines.append(",".join(map(str, (i, *(v.item() if isinstance(v, np.generic) else v for v in row)))))
        return "\n".join(lines) + "\n"

    def save(self, folder: str | Path, stem: str = "history") -> list[Path]:
        """Write `<stem>.json` (lossless, reloadable) and `<stem>.csv` (one row per query); returns the paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{stem}.json", folder / f"{stem}.csv"]
        write_atomic(paths[0], self.to_json().encode())
        write_atomic(paths[1], self.to_csv().encode())
        return paths

    def summary(self) -> str:
        """The few lines `search.py` prints (a constrained run's say "feasible" where it matters)."""
        b = self.best_index
        hit = self.queries_to_optimum
        bounds = self.extra.get("constraint")
        feasible = "feasible " if bounds else ""
        lines = [f"sampler {self.strategy} on {self.benchmark} {self.target}, seed {self.seed}: {len(self)} queries used (budget {self.budget})"]
        if bounds:
            constraint = ", ".join(f"{key}={value:g}" for key, value in bounds.items())
            lines.append(f"constraint {constraint}: {self.space_size} of {self.extra['all_cells']} cells feasible")
        return "\n".join(lines + [
            f"best {feasible}cell: {self.archs[b]}",
            f"true {self.target}: {self.values[b]:.4f} ({feasible or 'space '}optimum {self.optimum:.4f}, regret {self.regret[-1]:.4f})",
            f"rank {'among feasible cells' if bounds else 'in the space'}: {self.ranks[b]} of {self.space_size} "
            f"(top {self.best_percentile[-1]:.3g} %), found at query {b + 1}",
            f"{feasible}optimum reached at query {hit}" if hit else f"{feasible}optimum not reached",
        ])

