"""Our own tier-guided search (`sampler=nar_tier`), after NAR's sampler (Guo et al., 2022; public code
AlbertiPot/nar, `sampler/`); the official algorithm is `sampler=nar_tier_paper` (`nar_tier_paper.py`).
This one refits the ranker every round on every query so far and ranks candidates by P(tier 1).

Each round: tiers are cut on the values queried so far (quantiles, tier 1 = best); a histogram of
whole-network FLOPs and one of params is built per tier over fixed equal-width bins of the space's
range.  A quantity constrains sampling only when tier 1's histogram differs from every low tier's
(KL divergence of tier 1 from tiers `last_tier`..k at least the threshold, as NAR's
``select_distri``); then only cells in bins where tier 1 is over-represented relative to the whole
space (P(bin | tier 1) ≥ `min_lift` × P(bin)) are tier-guided candidates.  Half the candidate pool
(`random_fraction`) is uniform instead (NAR's ``noisy_factor``), the NAR ranker scores all of them and
the cells with the highest tier-1 probability (ties: higher score) are queried.

Differences from the public code, on purpose:
- the KL is between normalised histograms (0.5 pseudo-counts per bin), not between softmaxes of raw
  counts, so thresholds do not depend on how many cells were queried;
- cells are kept by bin instead of by NAR's upper bounds ``flops ≤ f, params ≤ p`` with f, p drawn from
  tier 1's histogram, and a bin counts as likely by its lift over the space, not by its share of tier
  1: NB201's best cells sit in the rare high-FLOPs bins (1.7 % of the space), which hold a small share
  of tier 1 (few random queries land there) but a high lift; a share rule (or NAR's upper bounds)
  excludes the optimum on all three NB201 datasets.
"""

from __future__ import annotations

import numpy as np

from nasrank.core import ConfigError
from nasrank.data.splits import assign_tiers, tier_thresholds
from nasrank.encodings.cost import arch_costs
from nasrank.encodings.graph import DenseGraphs
from nasrank.search.oracle import Oracle
from nasrank.search.rankers import Ranker
from nasrank.search.strategies import TopK

PSEUDO_COUNT = 0.5


def cell_costs(space_name: str, graphs: DenseGraphs, target: str) -> dict[str, np.ndarray]:
    """Whole-network MFLOPs and M params of every row, on the target's dataset (analytic, free of queries)."""
    flops, params = arch_costs(space_name, graphs.ops, graphs.adj, target.split("/")[0])
    return {"flops": flops, "params": params}


def equal_width_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin index (0..bins-1) of each value over `bins` equal-width bins spanning min..max."""
    edges = np.linspace(values.min(), values.max(), bins + 1)
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)


def kl_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """KL(p ‖ q) of two histograms, each smoothed with `PSEUDO_COUNT` per bin."""
    p = (p_counts + PSEUDO_COUNT) / (p_counts.sum() + PSEUDO_COUNT * len(p_counts))
    q = (q_counts + PSEUDO_COUNT) / (q_counts.sum() + PSEUDO_COUNT * len(q_counts))
    return float(np.sum(p * np.log(p / q)))


def likely_bins(bin_of: np.ndarray, tiers: np.ndarray, space_share: np.ndarray, num_tiers: int, last_tier: int,
                threshold: float, min_lift: float) -> np.ndarray | None:
    """Bins likely for tier 1 (bool, (bins,)), or None when tier 1 is not told apart from the low tiers.

    `bin_of` and `tiers` (0 = best) describe the queried cells; `space_share` is each bin's share of
    the whole space.  A bin is likely when tier 1's smoothed share of it is at least `min_lift` times
    the space's (a bin no tier-1 cell fell in yet stays likely only if it is rare in the space).
    """
    bins = len(space_share)
    counts = np.stack([np.bincount(bin_of[tiers == t], minlength=bins) for t in range(num_tiers)]).astype(np.float64)
    if counts[0].sum() == 0 or any(kl_divergence(counts[0], counts[j]) < threshold for j in range(last_tier - 1, num_tiers)):
        return None
    top_share = (counts[0] + PSEUDO_COUNT) / (counts[0].sum() + PSEUDO_COUNT * bins)
    return top_share >= min_lift * space_share


class NarTier(TopK):
    """NAR tier sampler (see the module docstring).

    Args:
        n_init, k, pool_size: as `TopK` (pool_size: candidates scored per round).
        random_fraction: share of the pool drawn uniformly instead of tier-guided (NAR: 0.5).
        num_tiers: quantile tiers of the queried values (tier 1 = best).
        last_tier: tier 1 must differ from tiers last_tier..num_tiers (1-based, NAR: 4 of 5).
        bins: equal-width FLOPs/params bins over the space (NAR: 5 on NB201, 8 on NB101).
        flops_kl, params_kl: KL thresholds above which FLOPs / params constrain the candidates.
        min_lift: a bin is likely for tier 1 when tier 1's share of it is at least this many times the space's.
    """

    name = "nar_tier"

    def __init__(self, target: str, n_init: int = 20, k: int = 10, pool_size: int = 1000, random_fraction: float = 0.5,
                 num_tiers: int = 5, last_tier: int = 4, bins: int = 5, flops_kl: float = 0.35, params_kl: float = 0.3,
                 min_lift: float = 1.0) -> None:
        super().__init__(target, n_init, k, pool_size)
        if not 0.0 <= random_fraction <= 1.0:
            raise ConfigError(f"sampler.random_fraction={random_fraction}; allowed: 0..1")
        if not 2 <= last_tier <= num_tiers:
            raise ConfigError(f"sampler.last_tier={last_tier} with num_tiers={num_tiers}; allowed: 2 ≤ last_tier ≤ num_tiers")
        if bins < 2 or min_lift < 0:
            raise ConfigError(f"sampler.bins={bins}, min_lift={min_lift}; allowed: bins ≥ 2, min_lift ≥ 0")
        self.random_fraction, self.num_tiers, self.last_tier, self.bins = random_fraction, num_tiers, last_tier, bins
        self.thresholds = {"flops": flops_kl, "params": params_kl}
        self.min_lift = min_lift

    def check(self, ranker: Ranker | None) -> None:
        super().check(ranker)
        if not ranker.has_tiers:
            raise ConfigError(f"sampler nar_tier ranks by tier-1 probability; ranker {ranker.name} has none (use ranker.name=model model=nar)")

    def guided(self, oracle: Oracle, bin_of: dict[str, np.ndarray], space_share: dict[str, np.ndarray]) -> np.ndarray:
        """Rows whose FLOPs and params bins are both likely for tier 1 (a quantity that does not
        separate tier 1 from the low tiers constrains nothing)."""
        rows = oracle.queried
        values = oracle.values(rows)
        tiers = assign_tiers(values, tier_thresholds(values, self.num_tiers))
        keep = np.ones(len(oracle), dtype=bool)
        for quantity, bins in bin_of.items():
            likely = likely_bins(bins[rows], tiers, space_share[quantity], self.num_tiers, self.last_tier, self.thresholds[quantity], self.min_lift)
            if likely is not None:
                keep &= likely[bins]
        return np.flatnonzero(keep)

    def search(self, oracle: Oracle, ranker: Ranker | None, rng: np.random.Generator) -> None:
        costs = cell_costs(oracle.benchmark.space.name, ranker.graphs, self.target)
        bin_of = {q: equal_width_bins(v, self.bins) for q, v in costs.items()}
        space_share = {q: np.bincount(b, minlength=self.bins) / len(b) for q, b in bin_of.items()}
        n_random = int(round(self.pool_size * self.random_fraction))
        oracle.query(oracle.sample_free(rng, self.n_init), "random")
        while oracle.remaining:
            ranker.fit(*oracle.labelled())
            guided = oracle.sample_free(rng, self.pool_size - n_random, self.guided(oracle, bin_of, space_share))
            pool = oracle.distinct_free(np.concatenate([guided, oracle.sample_free(rng, n_random)]))
            scores, probs = ranker.predict(oracle.archs(pool), tiers=True)
            oracle.query(self.best(oracle, pool[np.lexsort((-scores, -probs[:, 0]))], ranker.graphs), "ranker")
