"""`sampler=nar_tier_paper`: the official KL test, histograms and tiers on hand-made numbers, the
per-space official settings, and the tier-1 filter + score-head order on a stub ranker with known outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import compose_train, needs_nb201

from nasrank.core import ConfigError
from nasrank.search.nar_tier_paper import NarTierPaper, SpaceSettings, batch_histogram, official_kl, quintile_tiers, tier1_distribution


def sampler(tmp_path, *overrides: str) -> NarTierPaper:
    import hydra

    cfg = compose_train(["sampler=nar_tier_paper", *overrides], tmp_path, "search")
    return hydra.utils.instantiate(cfg.sampler, target=cfg.data.target)


def test_kl_is_the_official_one() -> None:
    # softmax([2, 0]) vs softmax([0, 2]): KL = 2 tanh(1), over 2 bins
    assert official_kl(np.array([2.0, 0.0]), np.array([0.0, 2.0])) == pytest.approx(math.tanh(1.0), rel=1e-12)
    assert official_kl(np.array([3.0, 1.0, 4.0]), np.array([3.0, 1.0, 4.0])) == 0.0
    # the official compute_kl_div(low, tier1) is torch's kl_div with log targets, reduced by 'batchmean'
    rng = np.random.default_rng(0)
    tier1, low = rng.integers(0, 30, 8).astype(float), rng.integers(0, 30, 8).astype(float)
    official = F.kl_div(F.log_softmax(torch.tensor(low), -1), F.log_softmax(torch.tensor(tier1), -1), reduction="batchmean", log_target=True)
    assert official_kl(tier1, low) == pytest.approx(float(official), rel=1e-9)


def test_tier1_histogram_is_used_only_when_it_passes_the_test() -> None:
    counts = np.array([[2, 0], [2, 0], [2, 0], [0, 2], [0, 2]], dtype=float)  # tiers 2, 3 equal tier 1: not compared
    assert tier1_distribution(counts, last_tier=4, threshold=0.76, batch_factor=0.1).tolist() == [1.0, 0.0]  # KL tanh(1) = 0.7616
    assert tier1_distribution(counts, last_tier=4, threshold=0.77, batch_factor=0.1) is None
    assert tier1_distribution(counts, last_tier=2, threshold=0.76, batch_factor=0.1) is None  # now tier 2 (KL 0) is compared
    thin = counts.copy()
    thin[0], thin[1] = [1, 0], [9, 0]  # tier 1 holds 1 of 16 cells (KL 0.50 from tiers 4, 5: it would pass)
    assert tier1_distribution(thin, last_tier=4, threshold=0.1, batch_factor=0.1) is None
    assert tier1_distribution(thin, last_tier=4, threshold=0.1, batch_factor=0.05).tolist() == [1.0, 0.0]


def test_batch_histogram_and_tiers_follow_the_official_bins() -> None:
    # ceil -> [11, 11, 13, 20]; step ceil(9 / 2) = 5; upper edges 16, 21; the minimum goes to the first bin
    edges, counts = batch_histogram(np.array([10.2, 11.0, 13.0, 20.0]), np.array([0, 1, 0, 0]), num_tiers=2, bins=2)
    assert edges.tolist() == [16.0, 21.0] and counts.tolist() == [[2, 1], [1, 0]]
    edges, counts = batch_histogram(np.full(3, 5.0), np.zeros(3, dtype=int), 1, 4)  # one value: bins of width 1
    assert edges.tolist() == [6.0, 7.0, 8.0, 9.0] and counts.tolist() == [[3, 0, 0, 0]]
    assert quintile_tiers(np.arange(10.0), 5).tolist() == [4, 4, 3, 3, 2, 2, 1, 1, 0, 0]
    assert np.bincount(quintile_tiers(np.arange(11.0), 5)).tolist() == [2, 2, 2, 2, 3]  # the rest goes to the last tier


def test_per_space_official_settings(tmp_path) -> None:
    s = sampler(tmp_path)
    assert s.settings("nb101") == SpaceSettings(bins=8, flops_kl=2.5, params_kl=2.5, force_uniform=False, sample_size=256, batch_size=256)
    assert s.settings("nb201") == SpaceSettings(bins=5, flops_kl=0.35, params_kl=0.3, force_uniform=True, sample_size=128, batch_size=128)
    with pytest.raises(ConfigError, match="no settings for search space 'nbgraph'; allowed: nb101, nb201"):
        s.settings("nbgraph")
    with pytest.raises(ConfigError, match="sampler.noisy_factor=2.0, batch_factor=0.1; allowed: 0..1"):
        NarTierPaper("cifar10/test_acc", spaces={}, noisy_factor=2.0)


class StubRanker:
    """Known outputs: score = -row (low rows first); tier 1 is the argmax for rows divisible by 3, and
    P(tier 1) grows with the row, so ordering by it would differ from ordering by score."""

    name, has_tiers = "stub", True

    def __init__(self, bench, graphs, top_tier_every: int = 3) -> None:
        self.bench, self.graphs, self.every, self.fits, self.pools = bench, graphs, top_tier_every, 0, []
        self.calls: list[str] = []

    def fit(self, archs, values) -> None:
        self.fits += 1
        self.calls.append("fit")

    def follow_predicted_tiers(self) -> None:
        self.calls.append("follow")

    def predict(self, archs, tiers: bool = False):
        rows = np.array([self.bench.index_of(a) for a in archs])
        self.pools.append(rows)
        self.calls.append("predict")
        probs = np.full((len(rows), 5), 0.1)
        probs[:, 0] = np.where(rows % self.every == 0, 0.3 + 0.1 * rows / len(self.bench), 0.05)
        probs[:, 1] = 0.9 - probs[:, 0] - 0.3  # 0.2..0.25 where tier 1 is the argmax, 0.55 elsewhere
        return -rows.astype(float), probs


@pytest.fixture(scope="module")
def nb201_graphs():
    from nasrank.benchmarks.nb201_table import load_nb201_table
    from nasrank.encodings.graph import dense_graphs

    bench = load_nb201_table()
    return bench, dense_graphs(bench.archs, bench.space)


@needs_nb201
def test_trained_once_then_tier1_cells_by_score(tmp_path, nb201_graphs) -> None:
    bench, graphs = nb201_graphs
    ranker = StubRanker(bench, graphs)
    h = sampler(tmp_path, "sampler.n_init=10").run(bench, ranker, 40, seed=0)
    assert ranker.fits == 1 and h.extra["ranker_fits"] == 1
    assert ranker.calls[:3] == ["fit", "follow", "predict"] and ranker.calls.count("follow") == 1  # fresh tier memory once, after training
    assert h.sources == ("random",) * 10 + ("ranker",) * 30 and len(ranker.pools) == 6  # 5 per round
    for i, pool in enumerate(ranker.pools):
        assert len(pool) <= 128
        picked = h.rows[10 + 5 * i: 15 + 5 * i]
        assert picked.tolist() == np.sort(pool[pool % 3 == 0])[:5].tolist()  # argmax tier 1, then highest score (-row)


@needs_nb201
def test_rounds_without_tier1_cells_fall_back_to_scores(tmp_path, nb201_graphs) -> None:
    bench, graphs = nb201_graphs
    ranker = StubRanker(bench, graphs, top_tier_every=10**9)  # only row 0 is ever predicted in tier 1
    h = sampler(tmp_path, "sampler.n_init=10", "sampler.iterations=3").run(bench, ranker, 15, seed=0)
    pools = [p for p in ranker.pools if 0 not in p]
    assert len(h) == 15 and len(ranker.pools) == 3 and len(pools) == 3  # 2 empty rounds, then the third queries
    assert h.rows[10:].tolist() == np.sort(ranker.pools[2])[:5].tolist()


def test_candidates_stay_within_bounds_drawn_from_tier1() -> None:
    s = NarTierPaper("cifar10/test_acc", spaces={}, reuse_step=25)
    costs = {"flops": np.arange(1000.0), "params": np.arange(1000.0)}
    counts = np.array([[10, 0], [5, 5], [5, 5], [0, 10], [0, 10]], dtype=float)  # tier 1 all in the cheap bin
    hist = {q: (np.array([100.0, 1000.0]), counts) for q in costs}
    guided = SpaceSettings(bins=2, flops_kl=0.1, params_kl=0.1, force_uniform=False, sample_size=128, batch_size=128)
    picks = s.guided(64, hist, costs, guided, np.random.default_rng(0))
    assert (costs["flops"][picks] <= 100).all()  # every bound is the cheap bin's upper edge
    uniform = s.guided(64, hist, costs, SpaceSettings(**{**guided.__dict__, "force_uniform": True}), np.random.default_rng(0))
    assert (costs["flops"][uniform] > 100).any()  # bounds drawn uniformly among the edges: 1000 too
