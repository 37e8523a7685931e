"""Ranking metrics against scipy/hand-computed values on fixed arrays."""

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau, spearmanr

from nasrank.metrics import RankingMetrics, ranking_metrics


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    target = rng.normal(size=500)
    preds = target + rng.normal(scale=0.8, size=500)
    return torch.tensor(preds), torch.tensor(target)


def test_correlations_match_scipy(arrays):
    preds, target = arrays
    m = ranking_metrics(preds, target)
    assert m["ktau"] == pytest.approx(kendalltau(preds, target).statistic, abs=1e-9)
    assert m["spearman"] == pytest.approx(spearmanr(preds, target).statistic, abs=1e-5)


def test_topk_metrics_by_hand():
    target = torch.tensor([10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0])
    preds = torch.tensor([0.0, 11.0, 10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])  # misses the best
    m = ranking_metrics(preds, target, ks=(10,))
    assert m["p@10"] == pytest.approx(0.9)  # 9 of the true top-10 are in the predicted top-10
    assert m["n@10"] == 2  # best true rank among predicted top-10
    assert m["regret"] == pytest.approx(1.0)  # predicted best has 9.0, true best 10.0
    assert m["n@1pct"] == 2 and m["p@1pct"] == 0.0
    perfect = ranking_metrics(target, target, ks=(10,))
    assert perfect["ktau"] == pytest.approx(1.0) and perfect["ndcg@10"] == pytest.approx(1.0) and perfect["regret"] == 0


def test_metric_dedups_padded_rows_and_ignores_batching(arrays):
    preds, target = arrays
    metric = RankingMetrics()
    idx = torch.arange(len(preds))
    for chunk in torch.split(idx, 64):
        metric.update(preds[chunk], target[chunk], chunk)
    metric.update(preds[:3], target[:3], idx[:3])  # what a DistributedSampler pads in
    assert metric.compute() == ranking_metrics(preds, target)


def test_large_split_kendall_is_exact():
    # torchmetrics' kendall is wrong at this size (see nasrank.metrics); ours must match scipy
    rng = np.random.default_rng(1)
    target = rng.normal(size=200_000)
    preds = target + rng.normal(size=200_000)
    assert ranking_metrics(torch.tensor(preds), torch.tensor(target))["ktau"] == pytest.approx(kendalltau(preds, target).statistic, abs=1e-9)
