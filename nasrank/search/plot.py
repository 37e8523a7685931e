"""Search plots: regret vs queries (one look for every strategy, single runs and seed medians alike)
and value vs cost (a run's Pareto front).

Figures are built without pyplot (no global state, no display: the Agg canvas behind
`Figure.savefig`), so plotting is safe inside sweeps and tests.  Regret uses a symlog axis: linear
near 0, so runs that reach the optimum (regret exactly 0) stay on the plot.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from nasrank.core import write_atomic
from nasrank.search.history import History

LINTHRESH = 0.01  # regret below this is drawn on a linear scale
Points = tuple[np.ndarray, np.ndarray]  # (costs, values)


def _axes(title: str, ylabel: str) -> tuple[Figure, object]:
    fig = Figure(figsize=(6, 4), dpi=110)
    ax = fig.subplots()
    ax.set_xlabel("queries")
    ax.set_ylabel(ylabel)
    ax.set_yscale("symlog", linthresh=LINTHRESH)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return fig, ax


def _save(fig: Figure, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    write_atomic(Path(path), buf.getvalue())
    return Path(path)


def plot_regret(histories: Sequence[History], path: str | Path, title: str | None = None) -> Path:
    """Regret after each query of one or more runs, one step line each, saved as a PNG."""
    h0 = histories[0]
    fig, ax = _axes(title or f"{h0.benchmark} {h0.target}", f"regret (optimum {h0.optimum:.3f} − best so far)")
    for h in histories:
        ax.step(np.arange(1, len(h) + 1), h.regret, where="post", label=f"{h.strategy} (seed {h.seed})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_regret_bands(curves: Mapping[str, np.ndarray], path: str | Path, title: str) -> Path:
    """Median regret over seeds (line) and its 25–75 % band, per strategy; curves: (seeds, queries) arrays."""
    fig, ax = _axes(title, "regret (median over seeds, 25–75 % band)")
    for i, (label, regret) in enumerate(curves.items()):
        x = np.arange(1, regret.shape[1] + 1)
        lo, med, hi = np.percentile(regret, [25, 50, 75], axis=0)
        # tab20 and a dash per ten curves: a benchmark plots more strategies and variants than the 10-colour cycle
        line = ax.step(x, med, where="post", color=colormaps["tab20"](i % 20), linestyle=("-", "--")[i // 10 % 2],
                       label=f"{label} ({len(regret)} seeds)")[0]
        ax.fill_between(x, lo, hi, step="post", alpha=0.15, color=line.get_color())
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_pareto(queried: Points, front: Points, space_front: Points, bound: float | None, xlabel: str, ylabel: str,
                path: str | Path, title: str) -> Path:
    """Every queried cell, their front (cheapest first) highlighted, the whole space's front as a faint
    reference and the cost bound (None: unconstrained) as a vertical line, saved as a PNG."""
    fig = Figure(figsize=(6, 4), dpi=110)
    ax = fig.subplots()
    ax.scatter(*queried, s=10, color="tab:gray", alpha=0.5, label=f"queried ({len(queried[0])})")
    ax.step(*space_front, where="post", color="tab:blue", alpha=0.3, label="front of the whole space")
    ax.step(*front, where="post", color="tab:orange", marker="o", markersize=4, label=f"front of the queries ({len(front[0])})")
    if bound is not None:
        ax.axvline(bound, color="tab:red", linestyle="--", label=f"bound {bound:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
