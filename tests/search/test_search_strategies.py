"""Every strategy on real NB201 data with small budgets and tiny rankers: the History invariants,
the budget (ranker training cells included), determinism, the anytime (prefix) property, errors."""

from __future__ import annotations

import functools

import hydra
import numpy as np
import pytest
import torch
from conftest import compose_train, needs_nb101, needs_nb201

from nasrank.core import ConfigError
from nasrank.search.history import History
from nasrank.search.nar_tier import equal_width_bins, kl_divergence, likely_bins
from nasrank.search.rankers import build_ranker, rows_of
from nasrank.search.runner import build_datamodule

pytestmark = needs_nb201  # nearly every test searches the NB201 table
TINY_NAR = ["model.encoder.hidden=16", "model.encoder.layers=1", "model.tier_hidden=16", "model.score_hidden=16"]
TINY_RENAS = ["+model.encoder.conv_channels=[4]", "+model.encoder.fc=[16]"]
#: small budgets, pools and refits: each run takes a few seconds
FAST = {
    "random": [],
    "evolution": ["sampler.population=10"],
    "topk": ["sampler.n_init=10", "sampler.k=8", "sampler.pool_size=800", *TINY_RENAS],
    "nar_tier": ["sampler.n_init=10", "sampler.k=8", "sampler.pool_size=400", *TINY_NAR],
    "nar_tier_paper": ["sampler.n_init=10", "sampler.k=4", "sampler.iterations=5", *TINY_NAR],  # a 2-epoch NAR predicts few tier-1 cells: fall back soon
    "predictor_evolution": ["sampler.population=10", "sampler.mutants=30", "sampler.k=4", "sampler.refit_every=8", "ranker.name=mlp_ensemble",
                            "+ranker.baseline.epochs=20", "+ranker.baseline.members=1"],
}


class SpyRanker:
    """Wraps a real ranker and records every training set, to check what the ranker was fitted on."""

    def __init__(self, ranker) -> None:
        self.inner, self.fitted_on = ranker, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def fit(self, archs, values: np.ndarray) -> None:
        self.fitted_on.append(rows_of(self.inner.dm.benchmark, archs))
        self.inner.fit(archs, values)


def compose(sampler: str, tmp_path, *extra: str, fast: list[str] | None = None):
    """The search.py config of `sampler` with its FAST overrides (or `fast` instead) and `extra`."""
    fast = FAST[sampler] if fast is None else fast
    return compose_train([f"sampler={sampler}", "data=nb201_cifar10", "ranker.epochs=2", *fast, *extra], tmp_path, "search")


def run(sampler: str, budget: int, seed: int, tmp_path, *extra: str, fast: list[str] | None = None) -> tuple[History, SpyRanker | None]:
    cfg = compose(sampler, tmp_path, *extra, fast=fast)
    strategy = hydra.utils.instantiate(cfg.sampler, target=cfg.data.target)
    dm = build_datamodule(cfg.data)
    ranker = SpyRanker(build_ranker(cfg, dm)) if strategy.uses_ranker else None
    return strategy.run(dm.benchmark, ranker, budget, seed), ranker


@functools.lru_cache(maxsize=1)
def nb201():
    from nasrank.benchmarks.nb201_table import load_nb201_table

    return load_nb201_table()


def assert_valid(h: History, budget: int, ranker: SpyRanker | None) -> None:
    bench = nb201()
    space = bench.target(h.target)
    assert len(h) == budget == h.budget
    assert (np.diff(h.best) >= 0).all() and (h.regret >= 0).all() and (np.diff(h.regret) <= 0).all()
    assert h.optimum == space.max() and h.space_size == len(bench)
    assert h.values.tolist() == space[h.rows].tolist()
    assert h.ranks.tolist() == [int((space > v).sum()) + 1 for v in h.values]
    keys = [bench.archs[r].iso_key() for r in h.rows]
    assert len(set(keys)) == len(keys), "a cell (or an isomorphic one) was queried twice"
    assert h.archs == tuple(bench.archs[r].to_str() for r in h.rows)
    if ranker is not None:  # every training set is exactly the queries made before that fit
        assert ranker.fitted_on and h.extra["ranker_fits"] == len(ranker.fitted_on)
        for rows in ranker.fitted_on:
            assert sorted(rows.tolist()) == sorted(h.rows[: len(rows)].tolist())


@pytest.mark.parametrize("sampler", list(FAST))
def test_invariants_determinism_and_prefix(sampler, tmp_path) -> None:
    budget = 26
    h, ranker = run(sampler, budget, 3, tmp_path)
    assert_valid(h, budget, ranker)
    # same seed, same queries; and anytime: a smaller budget is a prefix of a larger one (19 queries
    # span the random start and two ranker fits)
    shorter, _ = run(sampler, 19, 3, tmp_path)
    assert shorter.rows.tolist() == h.rows[:19].tolist() and shorter.sources == h.sources[:19]
    other, _ = run(sampler, 12, 4, tmp_path)
    assert other.rows.tolist() != h.rows[:12].tolist()


def test_sources_follow_each_strategy(tmp_path) -> None:
    h, _ = run("evolution", 30, 0, tmp_path)
    assert h.sources[:10] == ("random",) * 10 and set(h.sources[10:]) <= {"mutation", "random"} and "mutation" in h.sources[10:]
    h, _ = run("topk", 26, 0, tmp_path)
    assert h.sources == ("random",) * 10 + ("ranker",) * 16 and h.extra["ranker_fits"] == 2


def test_topk_with_the_gin_ranker(tmp_path) -> None:
    """`model=renas_gin` overrides the sampler's default ReNAS CNN (the benchmark's `topk, renas_gin ranker`)."""
    fast = ["sampler.n_init=10", "sampler.k=8", "sampler.pool_size=800"]
    assert compose("topk", tmp_path, "model=renas_gin", fast=fast).model.encoder._target_.endswith("GINEncoder")
    h, ranker = run("topk", 26, 0, tmp_path, "model=renas_gin", fast=fast)
    assert_valid(h, 26, ranker)
    assert type(ranker.inner.model.encoder).__name__ == "GINEncoder"


@pytest.mark.parametrize("sampler, budget, message", [
    ("evolution", 10, "budget=10 is too small for sampler evolution: it needs at least 11 queries (population=10"),
    ("topk", 10, "budget=10 is too small for sampler topk: it needs at least 11 queries (n_init=10"),
    ("nar_tier", 6466 + 1, "budget=6467; allowed: an integer in 1..6466"),
])
def test_budget_errors(sampler, budget, message, tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        run(sampler, budget, 0, tmp_path)
    assert message in str(err.value)


@pytest.mark.parametrize("extra, message", [
    (["ranker.name=gbdt"], "sampler nar_tier ranks by tier-1 probability; ranker gbdt has none"),
    (["model=renas", *TINY_RENAS], "ranker RenasModule has none"),
    (["ranker.name=forest"], "unknown ranker.name 'forest'; allowed: model, mlp_ensemble, gbdt"),
    (["ranker.epochs=0"], "ranker.epochs=0 never trains the ranker"),
    (["sampler.random_fraction=1.5"], "sampler.random_fraction=1.5; allowed: 0..1"),
    (["sampler.k=0"], "sampler.k=0; allowed: an integer ≥ 1"),
])
def test_config_errors(extra, message, tmp_path) -> None:
    with pytest.raises(Exception) as err:
        run("nar_tier", 30, 0, tmp_path, *extra, fast=["sampler.n_init=10"] if "model=renas" in extra else None)
    from nasrank.cli import user_error

    assert isinstance(user_error(err.value), ConfigError) and message in str(user_error(err.value))


def test_checkpoint_must_match_the_space(tmp_path) -> None:
    """A ReNAS checkpoint of NB101's 19x7x7 tensors is refused before any query; a matching one is used as is."""
    from nasrank.models.renas import RenasModule

    cfg = compose("topk", tmp_path)
    nb101_like = hydra.utils.instantiate(cfg.model, data_info={"channels": 19, "max_nodes": 7, "in_dim": 9})
    torch.save({"state_dict": nb101_like.state_dict()}, tmp_path / "nb101.ckpt")
    with pytest.raises(ConfigError, match="does not match this model/benchmark encoding"):
        run("topk", 30, 0, tmp_path, f"+ranker.checkpoint={tmp_path / 'nb101.ckpt'}")
    dm = build_datamodule(cfg.data)
    own: RenasModule = hydra.utils.instantiate(cfg.model, data_info=dm.data_info())
    torch.save({"state_dict": own.state_dict()}, tmp_path / "own.ckpt")
    h, ranker = run("topk", 20, 0, tmp_path, f"ranker.checkpoint={tmp_path / 'own.ckpt'}", "ranker.epochs=0")
    assert_valid(h, 20, ranker)


def test_queried_datamodule_trains_on_exactly_the_queried_rows(tmp_path) -> None:
    dm = build_datamodule(compose("nar_tier", tmp_path).data)
    rows = np.array([7, 3, 11, 4000, 15000, 22, 9, 123, 456, 789])
    dm.set_train_rows(rows)
    assert dm.split.train.tolist() == sorted(rows.tolist()) and len(dm.split.val) == 0
    assert dm.y_mean == pytest.approx(dm.values[rows].mean())
    assert sorted(np.bincount(dm.tiers[rows]).tolist()) == [2] * 5  # quantile tiers of the 10 queried values
    seen = torch.cat([b.idx for b in dm.train_dataloader()])
    assert sorted(seen.tolist()) == sorted(rows.tolist())
    with pytest.raises(ConfigError, match="at least 2 distinct training rows"):
        dm.set_train_rows([5])


def test_tier_histogram_rules() -> None:
    assert equal_width_bins(np.array([0.0, 0.49, 0.5, 1.0, 2.0]), 4).tolist() == [0, 0, 1, 2, 3]  # [lo, hi) bins, max in the last
    assert kl_divergence(np.array([3.0, 1.0]), np.array([3.0, 1.0])) == pytest.approx(0.0)
    assert kl_divergence(np.array([4.0, 0.0]), np.array([0.0, 4.0])) > 1.0
    share = np.array([0.6, 0.35, 0.05])  # bin 2 is rare in the space
    bins = np.array([1, 1, 2, 0, 0, 0, 0, 0, 0, 0])
    tiers = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3, 4])
    likely = likely_bins(bins, tiers, share, num_tiers=5, last_tier=4, threshold=0.3, min_lift=1.0)
    assert likely.tolist() == [False, True, True]
    same = np.zeros(10, dtype=int)  # every tier in one bin: costs tell nothing, no constraint
    assert likely_bins(same, tiers, share, 5, 4, 0.3, 1.0) is None


@needs_nb101
@pytest.mark.slow
def test_evolution_on_nb101_finds_mutants_in_the_table() -> None:
    """NB101 mutants are canonical cells, so `index_of` finds them in the 423,624-row table."""
    from nasrank.benchmarks.nb101 import load_nb101_table
    from nasrank.search.strategies import Evolution

    bench = load_nb101_table()
    h = Evolution("cifar10/test_acc", population=10).run(bench, None, 40, 0)
    assert len(h) == 40 and h.sources.count("mutation") >= 25
    assert len({bench.archs[r].iso_key() for r in h.rows}) == 40
    assert h.values.tolist() == bench.target("cifar10/test_acc")[h.rows].tolist() and (np.diff(h.best) >= 0).all()


def test_spread_keeps_batch_cells_apart() -> None:
    """`spread` picks best-first at pairwise distance ≥ d and tops up best-first when too few are that far."""
    from nasrank.encodings.graph import dense_graphs
    from nasrank.search.strategies import TopK, cell_distances, spread

    bench = nb201()
    graphs = dense_graphs(bench.archs, bench.space)
    one_edge = bench.index_of(bench.archs[0].mutate_edge(0, "nor_conv_3x3" if bench.archs[0].ops[0] != "nor_conv_3x3" else "skip_connect"))
    assert cell_distances(graphs, np.array([one_edge, 0]), 0).tolist() == [1, 0]
    # a best-first order of near-copies (nearest to cell 0 first), as a freshly fitted ranker gives
    ordered = np.argsort(cell_distances(graphs, np.arange(len(bench)), 0), kind="stable")[:500]
    assert (cell_distances(graphs, ordered[1:10], int(ordered[0])) < 3).all()  # a plain top-10 would be one plateau
    picks = spread(ordered, graphs, 10, 3)
    assert picks[0] == ordered[0] and len(set(picks.tolist())) == 10
    assert all((cell_distances(graphs, picks[i + 1:], int(p)) >= 3).all() for i, p in enumerate(picks))
    # greedy: each pick is the best-ranked cell far enough from the earlier ones
    for i in range(1, 10):
        skipped = ordered[: list(ordered).index(picks[i])]
        skipped = skipped[~np.isin(skipped, picks[:i])]
        assert all(min(cell_distances(graphs, picks[:i], int(s))) < 3 for s in skipped)
    too_far = spread(ordered, graphs, 4, 99)  # no two cells that far apart: best first, then the next best
    assert too_far.tolist() == ordered[:4].tolist()
    with pytest.raises(ConfigError, match="sampler.min_distance=-1; allowed: an integer ≥ 0"):
        TopK("cifar10/test_acc", min_distance=-1)


def test_topk_batches_are_spread(tmp_path) -> None:
    h, ranker = run("topk", 26, 0, tmp_path, "sampler.min_distance=2")
    assert_valid(h, 26, ranker)
    from nasrank.search.strategies import cell_distances

    graphs = ranker.graphs
    for batch in (h.rows[10:18], h.rows[18:26]):  # k=8 per refit after 10 random cells
        assert all((cell_distances(graphs, batch[i + 1:], int(r)) >= 2).all() for i, r in enumerate(batch))
