"""Landmark term math, pair sampling, coefficient schedule, landmark/evaluation-cell choice, ground truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import needs_nb201

from nasrank.core import ConfigError
from nasrank.spaces.nb201 import OPS, SPACE
from nasrank.supernet import landmarks as lm, truth as gt
from nasrank.supernet.images import ImageDataModule

pytestmark = pytest.mark.usefixtures("one_thread")


def test_landmark_loss_penalises_only_inverted_pairs():
    better = torch.tensor([1.0, 3.0, 2.0], requires_grad=True)
    worse = torch.tensor([2.0, 1.0, 2.0], requires_grad=True)
    loss = lm.landmark_loss(better, worse)
    assert loss.item() == pytest.approx((0.0 + 2.0 + 0.0) / 3)
    loss.backward()
    # only the inverted pair (3.0 vs 1.0) pushes: its better arch's loss down, its worse arch's loss up
    assert better.grad.tolist() == pytest.approx([0.0, 1 / 3, 0.0])
    assert worse.grad.tolist() == pytest.approx([0.0, -1 / 3, 0.0])
    assert lm.landmark_loss(torch.tensor([0.1, 0.2]), torch.tensor([0.5, 0.9])).item() == 0.0


def test_all_pairs_and_random_pairs():
    rng = np.random.default_rng(0)
    pairs = lm.landmark_pairs(5, "all", rng)
    assert len(pairs) == 10 and (pairs[:, 0] < pairs[:, 1]).all() and len({tuple(p) for p in pairs}) == 10
    draws = np.concatenate([lm.landmark_pairs(5, "random_pairwise", rng) for _ in range(2000)])
    assert (draws[:, 0] < draws[:, 1]).all()
    counts = np.unique(draws, axis=0, return_counts=True)[1]
    assert len(counts) == 10 and counts.min() > 150  # every pair, about uniformly (200 expected)
    assert lm.landmark_pairs(30, "random_pairwise", rng, num_pairs=4).shape == (4, 2)
    with pytest.raises(ConfigError, match="allowed: random_pairwise, randint, all"):
        lm.landmark_pairs(5, "adjacent", rng)


def test_coefficient_warms_up_then_rises_along_a_cosine():
    coef = lambda e: lm.landmark_coef(e, 10.0, warmup_epochs=5, max_epochs=25)  # noqa: E731
    assert coef(0) == coef(4.99) == 0.0 == coef(5)
    assert coef(15) == pytest.approx(5.0) and coef(25) == pytest.approx(10.0)
    values = [coef(e) for e in np.linspace(5, 25, 41)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert lm.landmark_coef(20, 0.0, 0, 25) == 0.0


def test_rank_spread_spans_best_to_worst():
    values = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 2.0])
    picked = lm.rank_spread(values, 3)
    assert values[picked].tolist() == [9.0, 5.0, 1.0]
    with pytest.raises(ConfigError, match="allowed: 2..6"):
        lm.rank_spread(values, 7)


def test_spanning_archs_cover_every_conv_count_once_per_class():
    archs = gt.spanning_archs(14, seed=3)
    counts = np.bincount([sum(op.startswith("nor_conv") for op in a.ops) for a in archs], minlength=7)
    assert counts.tolist() == [2] * 7
    assert len({a.iso_key() for a in archs}) == 14
    assert archs == gt.spanning_archs(14, seed=3) and archs != gt.spanning_archs(14, seed=4)


def test_standalone_truth_trains_once_then_reads_the_cache(tmp_path, monkeypatch):
    dm = ImageDataModule("digits", n_train=64, n_val=32)
    recipe = dict(num_archs=2, channels=2, cells_per_stage=1, epochs=1, repeats=2, cache_dir=str(tmp_path))
    first = gt.standalone_table(dm, **recipe)
    assert first["acc"].shape == (2, 2) and ((0 <= first["acc"]) & (first["acc"] <= 100)).all()
    monkeypatch.setattr(gt, "train_standalone", lambda *a, **k: pytest.fail("retrained although cached"))
    truth = gt.standalone_truth(dm, **recipe)
    assert truth.targets["digits/test_acc"].tolist() == pytest.approx(first["acc"].mean(1).tolist())
    assert [list(a.op_indices) for a in truth.archs] == first["ops"].tolist()
    with pytest.raises(ConfigError, match="epochs ≥ 1"):
        gt.standalone_table(dm, **{**recipe, "epochs": 0})


@needs_nb201
def test_nb201_table_truth_spans_accuracy():
    truth = gt.nb201_table_truth(SimpleNamespace(dataset_name="cifar100"), num_archs=20)
    values = truth.targets["cifar100/test_acc"]
    assert len(truth) == 20 and (np.diff(values) <= 0).all()
    assert values[0] == pytest.approx(73.513, abs=1e-3) and values[-1] < 5
    assert len({a.iso_key() for a in truth.archs}) == 20 and all(op in OPS for a in truth.archs for op in a.ops)


def test_truth_rows_spread_one_per_class_or_drawn_uniformly_from_every_row():
    """Row i has accuracy i; rows 0-1 and 3-4 are isomorphic.  ``spread`` keeps the first row of each of the
    10 classes and takes positions 0, 3, 6, 9 of them best first: rows 11, 8, 5, 0 (never 1 or 4);
    ``uniform`` (the official draw) reaches every row, each about 4/12 of the time."""
    values, keys = np.arange(12.0), ["a", "a", "b", "c", "c", "d", "e", "f", "g", "h", "i", "j"]
    assert gt.table_rows(values, keys, 4, "spread", seed=0).tolist() == [11, 8, 5, 0]
    draws = [gt.table_rows(values, keys, 4, "uniform", seed=s) for s in range(300)]
    assert all(len(set(d.tolist())) == 4 and (np.diff(d) < 0).all() for d in draws)  # distinct, best first
    counts = np.bincount(np.concatenate(draws), minlength=12)
    assert counts.min() > 70 and counts.max() < 130  # 100 expected per row
    assert gt.table_rows(values, keys, 4, "uniform", seed=7).tolist() == draws[7].tolist()
    with pytest.raises(ConfigError, match=r"data.truth.choice='evenly'; allowed: spread, uniform"):
        gt.table_rows(values, keys, 4, "evenly", seed=0)
    with pytest.raises(ConfigError, match="cannot draw 13 ground-truth cells of 12"):
        gt.table_rows(values, keys, 13, "uniform", seed=0)


def test_nb201_table_truth_refuses_other_data():
    with pytest.raises(ConfigError, match="no 'digits' accuracies"):
        gt.nb201_table_truth(SimpleNamespace(dataset_name="digits"))


def test_official_cosine_increase_is_zero_for_150_of_400_epochs_then_a_per_epoch_cosine():
    coef = lambda e: lm.cosine_increase_coef(e, 10.0, warmup_epochs=150, max_epochs=400)  # noqa: E731
    assert coef(0) == coef(149) == 0.0
    # the official code's T_cur = (epoch - 150) + batch_idx 1, T_total = all 400 epochs
    assert coef(150) == pytest.approx(5.0 * (1 - np.cos(np.pi / 400)))
    assert coef(349) == pytest.approx(5.0)
    assert coef(399) == pytest.approx(5.0 * (1 - np.cos(0.625 * np.pi))) == pytest.approx(6.9134, abs=1e-4)
    values = [coef(e) for e in range(150, 400)]
    assert all(b > a for a, b in zip(values, values[1:]))


def test_randint_pairs_are_the_official_draw():
    """Official: a = randint(0, n-2), b = randint(a+1, n-1) over landmarks sorted worst first; the pair
    (worst-first b, a) is (better, worse).  Pairs of the best landmarks are the likeliest."""
    rng = np.random.default_rng(0)
    draws = np.concatenate([lm.landmark_pairs(4, "randint", rng) for _ in range(6000)])
    assert (draws[:, 0] < draws[:, 1]).all()
    freq = {tuple(p): c / len(draws) for p, c in zip(*np.unique(draws, axis=0, return_counts=True))}
    # best-first positions: (0, 1) is worst-first (2, 3): P = 1/3 * 1; (2, 3) is worst-first (0, 1): P = 1/3 * 1/3
    assert freq[(0, 1)] == pytest.approx(1 / 3, abs=0.02) and freq[(2, 3)] == pytest.approx(1 / 9, abs=0.02)
    assert freq[(0, 3)] == pytest.approx(1 / 9, abs=0.02) and len(freq) == 6


def test_random_landmarks_are_seeded_best_first_and_of_the_right_size():
    values = np.linspace(90.0, 10.0, 100)
    picked = lm.choose_landmarks(values, 50, "random", seed=3)
    assert len(picked) == len(set(picked.tolist())) == 50 and (np.diff(values[picked]) < 0).all()
    assert picked.tolist() == lm.choose_landmarks(values, 50, "random", seed=3).tolist()
    assert set(picked.tolist()) != set(lm.choose_landmarks(values, 50, "random", seed=4).tolist())
    assert lm.choose_landmarks(values, 3, "spread", seed=3).tolist() == [0, 50, 99]
    with pytest.raises(ConfigError, match="allowed: spread, random"):
        lm.choose_landmarks(values, 3, "fixed", seed=0)
