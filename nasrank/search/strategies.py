"""Search strategies: `Strategy.run(benchmark, ranker, budget, seed) -> History` for every one of them.

All strategies are *anytime*: the budget only decides when they stop, never what they do before
(fixed initial sizes, refit points and batch sizes), so the first q queries of a run with budget B
are exactly a run with budget q.  Every query goes through an `Oracle`, which enforces the budget and
the cost constraint and refuses repeated or isomorphic cells; every random choice comes from one
seeded generator.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Sequence

import numpy as np

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.core import ConfigError, InvalidArchError, check_at_least
from nasrank.encodings.graph import DenseGraphs
from nasrank.search.constraints import Constraint
from nasrank.search.history import History
from nasrank.search.oracle import Oracle
from nasrank.search.rankers import Ranker


class Strategy(ABC):
    """Base: budget checks, the oracle, the seeded generator, the history.

    Args:
        target: the benchmark target searched, e.g. ``"cifar100/test_acc"`` (higher is better).
    """

    name: str = ""
    #: whether `run` needs a ranker
    uses_ranker: bool = False

    def __init__(self, target: str) -> None:
        self.target = target

    @property
    def min_budget(self) -> int:
        """Smallest budget this strategy can use as configured."""
        return 1

    def check(self, ranker: Ranker | None) -> None:
        """Refuse a missing or unsuitable ranker before any query is spent."""
        if self.uses_ranker and ranker is None:
            raise ConfigError(f"sampler {self.name} needs a ranker")

    def run(self, benchmark: Benchmark, ranker: Ranker | None, budget: int, seed: int, constraint: Constraint | None = None) -> History:
        """Search `benchmark` with at most `budget` queries, of cells within `constraint` only; same seed, same history."""
        if isinstance(budget, (int, np.integer)) and not isinstance(budget, bool) and budget < self.min_budget:
            raise ConfigError(f"budget={budget} is too small for sampler {self.name}: it needs at least {self.min_budget} {self.budget_reason()}")
        self.check(ranker)
        oracle = Oracle(benchmark, self.target, budget, constraint)
        start, fits = time.perf_counter(), ranker.fits if ranker is not None else 0
        self.search(oracle, ranker, np.random.default_rng(seed))
        extra = {"time_s": round(time.perf_counter() - start, 2)}
        if ranker is not None:
            extra.update(ranker=ranker.name, ranker_fits=ranker.fits - fits)
        return oracle.history(self.name, seed, **extra)

    def budget_reason(self) -> str:
        return "query"

    @abstractmethod
    def search(self, oracle: Oracle, ranker: Ranker | None, rng: np.random.Generator) -> None:
        """Spend the oracle's budget (every query through `oracle.query`)."""


class RandomSearch(Strategy):
    """Uniformly random cells (rows of the benchmark), never two isomorphic ones."""

    name = "random"

    def search(self, oracle: Oracle, ranker: Ranker | None, rng: np.random.Generator) -> None:
        oracle.query(oracle.sample_free(rng, oracle.remaining), "random")


def tournament(population: Sequence[int], oracle: Oracle, rng: np.random.Generator, size: int) -> int:
    """Best of `size` random members of the population (REA's parent selection)."""
    picks = rng.choice(len(population), size=min(size, len(population)), replace=False)
    members = [population[i] for i in picks]
    return members[int(np.argmax(oracle.values(members)))]


def mutant(oracle: Oracle, row: int, rng: np.random.Generator, max_tries: int) -> int | None:
    """Row of a random mutation of `row` that may still be queried; None after `max_tries` misses.

    Mutants that are not in the benchmark or repeat a queried (or isomorphic) cell are resampled.
    """
    bench = oracle.benchmark
    for _ in range(max_tries):
        try:
            child = bench.index_of(bench.space.mutate(bench.archs[row], rng))
        except InvalidArchError:
            continue
        if oracle.free(np.array([child]))[0]:
            return child
    return None


class Evolution(Strategy):
    """Regularised evolution (Real et al., 2019): tournament parent, one mutation, the oldest dies.

    Args:
        population: population size (the first `population` queries are random).
        tournament: members drawn per parent selection.
        max_tries: mutations tried before a random cell replaces an unusable mutant.
    """

    name = "evolution"

    def __init__(self, target: str, population: int = 20, tournament: int = 5, max_tries: int = 100) -> None:
        super().__init__(target)
        check_at_least("sampler", 1, population=population, tournament=tournament, max_tries=max_tries)
        self.population, self.tournament, self.max_tries = population, tournament, max_tries

    @property
    def min_budget(self) -> int:
        return self.population + 1

    def budget_reason(self) -> str:
        return f"queries (population={self.population} random cells, then at least one mutant)"

    def initial(self, oracle: Oracle, rng: np.random.Generator) -> deque[int]:
        pop = deque(int(r) for r in oracle.sample_free(rng, self.population))
        oracle.query(pop, "random")
        return pop

    def child_or_random(self, oracle: Oracle, pop: Sequence[int], rng: np.random.Generator) -> tuple[int, str]:
        child = mutant(oracle, tournament(pop, oracle, rng, self.tournament), rng, self.max_tries)
        return (child, "mutation") if child is not None else (int(oracle.sample_free(rng, 1)[0]), "random")

    def search(self, oracle: Oracle, ranker: Ranker | None, rng: np.random.Generator) -> None:
        pop = self.initial(oracle, rng)
        while oracle.remaining:
            child, source = self.child_or_random(oracle, pop, rng)
            oracle.query([child], source)
            pop.append(child)
            pop.popleft()


class PredictorEvolution(Evolution):
    """Regularised evolution whose mutants are screened by the ranker: each generation makes
    `mutants` candidate children (tournament parents), the ranker scores them and only the best `k`
    are queried (NPENAS-style).  The ranker is refitted on every query so far every `refit_every` queries.
    """

    name = "predictor_evolution"
    uses_ranker = True

    def __init__(self, target: str, population: int = 20, tournament: int = 5, max_tries: int = 100,
                 mutants: int = 100, k: int = 5, refit_every: int = 10) -> None:
        super().__init__(target, population, tournament, max_tries)
        check_at_least("sampler", 1, mutants=mutants, k=k, refit_every=refit_every)
        self.mutants, self.k, self.refit_every = mutants, k, refit_every

    def search(self, oracle: Oracle, ranker: Ranker | None, rng: np.random.Generator) -> None:
        pop = self.initial(oracle, rng)
        fitted_at = None
        while oracle.remaining:
            if fitted_at is None or len(oracle.rows) - fitted_at >= self.refit_every:
                ranker.fit(*oracle.labelled())
                fitted_at = len(oracle.rows)
            children = oracle.distinct_free(np.array([self.child_or_random(oracle, pop, rng)[0] for _ in range(self.mutants)]))
            scores, _ = ranker.predict(oracle.archs(children))
            picks = children[np.argsort(-scores, kind="stable")][: min(self.k, oracle.remaining)]
            oracle.query(picks, "ranker")
            pop.extend(int(r) for r in picks)
            while len(pop) > self.population:
                pop.popleft()


def candidate_pool(oracle: Oracle, rng: np.random.Generator, pool_size: int) -> np.ndarray:
    """Rows a ranker scores, one per isomorphism class not yet queried: all of them (the first row of
    each class) when there are at most `pool_size` rows, else `pool_size` random ones (NB101's 423k
    cells).  Isomorphic cells can be queried only once anyway, and NB201 has 6,466 classes in 15,625
    rows, so this scores 2.4x fewer cells per round."""
    if len(oracle) <= pool_size:
        return oracle.distinct_free(np.arange(len(oracle)))
    return oracle.sample_free(rng, pool_size)


class TopK(Strategy):
    """ReNAS-style top-k: `n_init` random queries, then repeatedly fit the ranker on every query so far,
    score the space (or a random pool of it) and query the `k` best-scored cells not yet queried.

    Args:
        n_init: random queries before the first fit.
        k: queries per refit.
        pool_size: largest number of cells scored per round (the whole space when it is smaller).
        min_distance: least graph edit distance (`cell_distances`) between two cells of one batch (0: the
            plain top-k).  A ranker fitted on few cells scores a whole neighbourhood of near-copies
            highest, so a plain top-k spends batch after batch on one plateau while cells it ranks
            a little lower, elsewhere in the space, wait (seen on NB201 CIFAR-100: the true top cells
            sat at predicted ranks 30-300 for 100 queries); a spread batch queries several of them.
    """

    name = "topk"
    uses_ranker = True

    def __init__(self, target: str, n_init: int = 20, k: int = 10, pool_size: int = 50_000, min_distance: int = 0) -> None:
        super().__init__(target)
        check_at_least("sampler", 1, n_init=n_init, k=k, pool_size=pool_size)
        if n_init < 2:
            raise ConfigError(f"sampler.n_init={n_init}; allowed: ≥ 2 (a ranker needs two labelled cells)")
        check_at_least("sampler", 0, min_distance=min_distance)
        self.n_init, self.k, self.pool_size, self.min_distance = n_init, k, pool_size, int(min_distance)

    @property
    def min_budget(self) -> int:
        return self.n_init + 1

    def budget_reason(self) -> str:
        return f"queries (n_init={self.n_init} random cells to fit the ranker on, then at least one ranked query)"

    def search(self, oracle: Oracle, ranker: Ranker | None, rng: np.random.Generator) -> None:
        oracle.query(oracle.sample_free(rng, self.n_init), "random")
        while oracle.remaining:
            ranker.fit(*oracle.labelled())
            pool = candidate_pool(oracle, rng, self.pool_size)
            scores, _ = ranker.predict(oracle.archs(pool))
            oracle.query(self.best(oracle, pool[np.argsort(-scores, kind="stable")], ranker.graphs), "ranker")

    def best(self, oracle: Oracle, ordered: np.ndarray, graphs: DenseGraphs) -> np.ndarray:
        """The next batch: the first `k` cells of a best-first order, no two isomorphic, each at least
        `min_distance` from the batch's earlier picks (topped up best-first if too few are that far apart)."""
        ordered, n = oracle.distinct_free(ordered), min(self.k, oracle.remaining)
        if self.min_distance == 0:
            return ordered[:n]
        return spread(ordered, graphs, n, self.min_distance)


def cell_distances(graphs: DenseGraphs, rows: np.ndarray, row: int) -> np.ndarray:
    """Edit distance of `rows` to `row` on the dense node-op graphs: differing node ops plus differing
    edges (a changed NB201 edge op is 1, an added NB101 edge is 1; labelled, so an upper bound for
    isomorphic layouts)."""
    return (graphs.ops[rows] != graphs.ops[row]).sum(1) + (graphs.adj[rows] != graphs.adj[row]).sum((1, 2))


def spread(ordered: np.ndarray, graphs: DenseGraphs, n: int, min_distance: int, window: int = 4096) -> np.ndarray:
    """Greedy best-first picks of `ordered` at pairwise distance ≥ `min_distance`, looking at its first
    `window` cells; short batches are topped up with the best cells not picked yet."""
    head = ordered[:window]
    open_ = np.ones(len(head), dtype=bool)
    picks: list[int] = []
    while len(picks) < n and open_.any():
        i = int(np.argmax(open_))
        picks.append(i)
        open_ &= cell_distances(graphs, head, int(head[i])) >= min_distance
    rest = np.setdiff1d(np.arange(len(ordered)), picks)[: n - len(picks)]  # ascending = best-first
    return ordered[np.concatenate([np.array(picks, dtype=np.int64), rest])]
