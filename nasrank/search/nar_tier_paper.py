"""NAR's tier-based sampler as its public code runs it (Guo et al., 2022; AlbertiPot/nar:
``sampler/arch_sampler.py``, ``sampler/arch_sampler201.py``, ``sampler/prob_calculate.py``,
``process/sample.py``, ``process/train_utils.py``, ``train.py``, ``config/config*.yml``).

The ranker is trained once, on the first `n_init` (random) queries.  Their FLOPs/params histograms
per tier (tiers: quintiles of the training set, tier 1 = best) are built per training batch over
the batch's own range; each search round uses one batch's histograms (shuffled, each reused for
``ceil(iterations / batches)`` rounds).  A round draws `sample_size` candidates: a `noisy_factor`
share uniformly, the rest by drawing an upper bound on FLOPs and one on params (redrawn every
`reuse_step` candidates) and proposing uniform cells until one is within both bounds (after
`max_trials` misses the last proposal is kept).  A bound is drawn from tier 1's histogram when tier
1 holds at least `batch_factor` of the batch and its KL divergence from each of tiers
`last_tier`..k is at least the space's threshold, else uniformly among the bins' upper edges (always
so with the space's `force_uniform`, which the official NB201 config sets).  The ranker keeps the
candidates whose most likely tier is tier 1 and the `k` with the highest score-head output are queried.
While sampling, the ranker's tier embeddings restart from zero and follow its predictions: each round's
pool, scored as one batch (the official ``search_size`` equals ``sample_size``), is matched against the
means of the earlier rounds' cells per predicted tier, then joins them (`TierMemory.follow`).

Where this differs from the public code, and why:
- cells are proposed uniformly over the benchmark's rows: on NB201 that is the official proposal
  (one uniform op per edge); NB101's official generator (uniform node count, random edges, invalid
  cells retried) is not uniform over cells, and a table search can only propose cells it holds;
- candidates never repeat a queried (or isomorphic) cell, since a query cannot be spent twice;
- a round whose pool holds no predicted tier-1 cell queries nothing (the official iteration reports
  nothing); after `iterations` such rounds in a row the pool's best-scored cells are queried, so a
  budget is always spent;
- tiers and the bounds' KL test use the searched target (`data.target`); the official code uses
  validation accuracy (search with ``data.target=<dataset>/valid_acc`` where a benchmark has it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.special import softmax
from scipy.stats import entropy

from nasrank.core import ConfigError, check_at_least
from nasrank.search.nar_tier import cell_costs
from nasrank.search.oracle import Oracle
from nasrank.search.rankers import Ranker
from nasrank.search.strategies import TopK

#: official units: ``ceil(flops / 1e6)`` and ``ceil(params / 1e3)``; `cell_costs` gives MFLOPs and M params
UNIT_SCALE = {"flops": 1.0, "params": 1e3}


@dataclass(frozen=True)
class SpaceSettings:
    """One space's official sampler settings (``config/config.yml``: NB101, ``config/config201.yml``: NB201)."""

    bins: int
    flops_kl: float
    params_kl: float
    force_uniform: bool
    sample_size: int
    batch_size: int


def official_kl(tier1_counts: np.ndarray, low_counts: np.ndarray) -> float:
    """NAR's ``compute_kl_div(low, tier1)``: KL(softmax(tier-1 counts) ‖ softmax(low-tier counts)) over
    raw counts, divided by the number of bins (``F.kl_div(..., reduction='batchmean')`` on one row)."""
    return float(entropy(softmax(np.asarray(tier1_counts, dtype=np.float64)), softmax(np.asarray(low_counts, dtype=np.float64))) / len(tier1_counts))


def tier1_distribution(counts: np.ndarray, last_tier: int, threshold: float, batch_factor: float) -> np.ndarray | None:
    """NAR's ``select_distri`` with top_tier 1: tier 1's normalised histogram (`counts`: (k, bins), row 0
    the best tier), or None when tier 1 holds under `batch_factor` of the batch or is closer than
    `threshold` to any of tiers `last_tier`..k (1-based)."""
    if counts[0].sum() < batch_factor * counts.sum():
        return None
    if any(official_kl(counts[0], counts[j]) < threshold for j in range(last_tier - 1, len(counts))):
        return None
    return counts[0] / counts[0].sum()


def batch_histogram(values: np.ndarray, tiers: np.ndarray, num_tiers: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """NAR's ``build_counts_dict`` for every tier of one batch: the bins' upper edges (official units)
    and the (num_tiers, bins) counts.  Values are ceiled to integers; bins are `step` = ceil(range / bins)
    wide from the batch minimum, which falls in the first bin."""
    values = np.ceil(values)
    low, high = int(values.min()), int(values.max())
    step = max(math.ceil((high - low) / bins), 1)  # 1: a batch of equal values (the official code divides by 0)
    index = np.clip(np.ceil((values - low) / step).astype(np.int64), 1, bins) - 1
    counts = np.stack([np.bincount(index[tiers == t], minlength=bins) for t in range(num_tiers)]).astype(np.float64)
    return low + step * np.arange(1, bins + 1, dtype=np.float64), counts


def quintile_tiers(values: np.ndarray, num_tiers: int) -> np.ndarray:
    """NAR's ``SplitSubet._sort``: by value, best first, `len // num_tiers` cells per tier, the rest in the last."""
    step = len(values) // num_tiers
    tiers = np.empty(len(values), dtype=np.int64)
    tiers[np.argsort(-values, kind="stable")] = np.minimum(np.arange(len(values)) // max(step, 1), num_tiers - 1)
    return tiers


class NarTierPaper(TopK):
    """NAR's tier sampler as the public code runs it (see the module docstring).

    Args:
        n_init: random queries the ranker is trained on, once.
        k: queries per round (the official results are the best of each round's top 5).
        iterations: the official number of sampling rounds (it sets how long each batch's histograms are used).
        num_tiers, last_tier, batch_factor, reuse_step, max_trials, noisy_factor: as the official ``sampler`` config.
        spaces: per search space (``nb101``, ``nb201``, ...), its `SpaceSettings` fields.
    """

    name = "nar_tier_paper"

    def __init__(self, target: str, spaces: Mapping[str, Mapping], n_init: int = 50, k: int = 5, iterations: int = 50,
                 num_tiers: int = 5, last_tier: int = 4, batch_factor: float = 0.1, reuse_step: int = 25, max_trials: int = 100,
                 noisy_factor: float = 0.5) -> None:
        super().__init__(target, n_init, k)
        check_at_least("sampler", 1, iterations=iterations, reuse_step=reuse_step)
        check_at_least("sampler", 0, max_trials=max_trials)
        if not 2 <= last_tier <= num_tiers:
            raise ConfigError(f"sampler.last_tier={last_tier} with num_tiers={num_tiers}; allowed: 2 ≤ last_tier ≤ num_tiers")
        if not (0.0 <= noisy_factor <= 1.0 and 0.0 <= batch_factor <= 1.0):
            raise ConfigError(f"sampler.noisy_factor={noisy_factor}, batch_factor={batch_factor}; allowed: 0..1")
        self.spaces = {name: SpaceSettings(**dict(s)) for name, s in spaces.items()}
        self.iterations, self.num_tiers, self.last_tier, self.batch_factor = iterations, num_tiers, last_tier, batch_factor
        self.reuse_step, self.max_trials, self.noisy_factor = reuse_step, max_trials, noisy_factor

    def check(self, ranker: Ranker | None) -> None:
        super().check(ranker)
        if not ranker.has_tiers:
            raise ConfigError(f"sampler {self.name} keeps cells predicted in tier 1; ranker {ranker.name} has no tiers (use ranker.name=model model=nar or nar_paper)")

    def settings(self, space: str) -> SpaceSettings:
        """The official settings of `space`, refused in one line for a space the sampler has none for."""
        if space not in self.spaces:
            raise ConfigError(f"sampler {self.name} has no settings for search space {space!r}; allowed: {', '.join(sorted(self.spaces))} "
                              f"(add them with +sampler.spaces.{space}={{bins: ..., flops_kl: ..., params_kl: ..., force_uniform: ..., sample_size: ..., batch_size: ...}})")
        return self.spaces[space]

    def histograms(self, values: np.ndarray, costs: dict[str, np.ndarray], rows: np.ndarray, s: SpaceSettings,
                   rng: np.random.Generator) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Per training batch (shuffled, drop_last; one batch of all when fewer cells than a batch), the
        upper edges and per-tier counts of each cost, in the order the rounds use them."""
        tiers = quintile_tiers(values, self.num_tiers)
        order = rng.permutation(len(rows))
        n_batches = max(len(rows) // s.batch_size, 1)
        size = min(s.batch_size, len(rows))
        batches = [order[b * size:(b + 1) * size] for b in range(n_batches)]
        return [{q: batch_histogram(c[rows[b]], tiers[b], self.num_tiers, s.bins) for q, c in costs.items()} for b in batches]

    def bound(self, edges: np.ndarray, counts: np.ndarray, threshold: float, force_uniform: bool, rng: np.random.Generator) -> float:
        """An upper bound: a bin edge drawn from tier 1's histogram when it passes the KL test, else uniformly."""
        dist = None if force_uniform else tier1_distribution(counts, self.last_tier, threshold, self.batch_factor)
        return float(rng.choice(edges, p=dist))

    def guided(self, n: int, hist: dict, costs: dict[str, np.ndarray], s: SpaceSettings, rng: np.random.Generator) -> np.ndarray:
        """`n` rows proposed within drawn FLOPs/params bounds (NAR's ``sample_arch``)."""
        thresholds = {"flops": s.flops_kl, "params": s.params_kl}
        picks = np.empty(n, dtype=np.int64)
        for i in range(n):
            if i % self.reuse_step == 0:
                bounds = {q: self.bound(*hist[q], thresholds[q], s.force_uniform, rng) for q in costs}
            trials = rng.integers(0, len(costs["flops"]), self.max_trials + 1)
            within = np.logical_and.reduce([costs[q][trials] <= bounds[q] for q in costs])
            picks[i] = trials[np.argmax(within)] if within.any() else trials[-1]
        return picks

    def search(self, oracle: Oracle, ranker: Ranker | None, rng: np.random.Generator) -> None:
        s = self.settings(oracle.benchmark.space.name)
        costs = {q: v * UNIT_SCALE[q] for q, v in cell_costs(oracle.benchmark.space.name, ranker.graphs, self.target).items()}
        oracle.query(oracle.sample_free(rng, self.n_init), "random")
        ranker.fit(*oracle.labelled())
        ranker.follow_predicted_tiers()  # the official sampling phase starts from fresh (zero) tier buckets
        hists = self.histograms(oracle.values(oracle.queried), costs, oracle.queried, s, rng)
        per_batch = math.ceil(self.iterations / len(hists))
        n_guided = int(s.sample_size * (1 - self.noisy_factor))
        rounds = empty = 0
        while oracle.remaining:
            hist = hists[(rounds // per_batch) % len(hists)]
            rounds += 1
            guided = self.guided(n_guided, hist, costs, s, rng)
            pool = oracle.distinct_free(np.concatenate([guided, rng.integers(0, len(oracle), s.sample_size - n_guided)]))
            if len(pool) == 0:
                pool = oracle.sample_free(rng, s.sample_size)
            scores, probs = ranker.predict(oracle.archs(pool), tiers=True)
            tier1 = probs.argmax(1) == 0
            empty = 0 if tier1.any() else empty + 1
            if empty == 0 or empty >= self.iterations:
                keep = tier1 if empty == 0 else np.ones(len(pool), dtype=bool)
                ordered = pool[keep][np.argsort(-scores[keep], kind="stable")]
                oracle.query(ordered[: min(self.k, oracle.remaining)], "ranker")
                empty = 0
