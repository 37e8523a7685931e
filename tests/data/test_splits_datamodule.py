"""Split sizes, seeding, tiers and batches of the DataModule on real benchmarks."""

import numpy as np
import pytest
import torch

from nasrank.benchmarks.analognas import load_analognas
from nasrank.core import ConfigError, CorruptDataError
from nasrank.data import ArchRankDataModule
from nasrank.data.splits import assign_tiers, make_split, tier_thresholds
from nasrank.training.pseudo_labels import pseudo_labelled


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return load_analognas(cache_dir=tmp_path_factory.mktemp("cache"))


def test_split_sizes_counts_fractions_and_seeds():
    s = make_split(1000, 100, 0.05, seed=3)
    assert (len(s.train), len(s.val), len(s.test)) == (100, 50, 850)
    assert len(np.intersect1d(s.train, s.test)) == 0 and len(np.union1d(np.union1d(s.train, s.val), s.test)) == 1000
    again = make_split(1000, 100, 0.05, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((s.train, s.val, s.test), (again.train, again.val, again.test)))
    assert not np.array_equal(make_split(1000, 100, 50, seed=4).train, s.train)


@pytest.mark.parametrize("n_train, n_val, msg", [(2000, 0, "leaves fewer than 2"), (-5, 0, "negative"), (1.5, 0, "fraction"),
                                                 (1, 0, "too small"), ("ten", 0, "count or a fraction"), (10, 995, "leaves fewer")])
def test_bad_sizes(n_train, n_val, msg):
    with pytest.raises(ConfigError, match=msg):
        make_split(1000, n_train, n_val, seed=0)


def test_iso_dedup_splits_over_classes():
    keys = ["a", "a", "b", "c", "c", "d", "e", "f"]
    s = make_split(len(keys), 2, 1, seed=0, iso_keys=keys)
    rows = np.concatenate([s.train, s.val, s.test])
    assert len(rows) == 6 and len({keys[r] for r in rows}) == 6


def test_tiers_boundaries_ties_and_k():
    train = np.arange(1, 11, dtype=float)  # 1..10
    th = tier_thresholds(train, 5)
    tiers = assign_tiers(train, th)
    assert list(np.bincount(tiers)) == [2, 2, 2, 2, 2] and tiers[-1] == 0 and tiers[0] == 4
    assert assign_tiers(np.array([th[0]]), th)[0] == 0  # a value on a boundary goes to the better tier
    assert assign_tiers(np.array([5.0, 5.0, 5.0]), tier_thresholds(np.full(10, 5.0), 5)).tolist() == [0, 0, 0]
    assert set(assign_tiers(train, tier_thresholds(train, 3))) == {0, 1, 2}
    with pytest.raises(ConfigError, match="num_tiers=0; allowed: ≥ 1"):
        tier_thresholds(train, 0)


def test_datamodule_batches(bench):
    dm = ArchRankDataModule(bench, "cifar10/baseline_acc", n_train=100, n_val=20, batch_size=32, tensors=["renas", "nar"])
    assert len(dm.split.test) == 15625 - 120
    batch = next(iter(dm.train_dataloader()))
    assert batch.num_graphs == 32 and batch.x.shape == (32 * 8, dm.num_node_features)
    assert batch.tensor.shape == (32, 31, 8, 8) and batch.tokens.shape[:2] == (32, 8)
    rows = batch.idx.numpy()
    assert torch.allclose(batch.y, torch.tensor(bench.target("cifar10/baseline_acc")[rows], dtype=torch.float32))
    assert set(batch.tier.tolist()) <= set(range(5))
    # the training split's tiers are quintiles
    counts = np.bincount(dm.tiers[dm.split.train], minlength=5)
    assert counts.min() >= 19 and counts.max() <= 21
    test_rows = np.concatenate([b.idx.numpy() for b in dm.test_dataloader()])
    assert np.array_equal(test_rows, dm.split.test)


def test_datamodule_rejects_bad_target_and_nan(bench):
    with pytest.raises(ConfigError, match="unknown target 'cifar10/acc'"):
        ArchRankDataModule(bench, "cifar10/acc")
    from dataclasses import replace

    broken = replace(bench, targets={"cifar10/x": np.where(np.arange(len(bench)) == 5, np.nan, 1.0)}, _index=None)
    with pytest.raises(CorruptDataError, match="NaN"):
        ArchRankDataModule(broken, "cifar10/x")


def test_canonical_iso_encodes_isomorphic_cells_alike(bench):
    """Cells of one isomorphism class get the class's first row's features but keep their own targets."""
    plain = ArchRankDataModule(bench, "cifar10/baseline_acc", n_train=100, tensors=["renas", "nar"])
    canon = ArchRankDataModule(bench, "cifar10/baseline_acc", n_train=100, tensors=["renas", "nar"], canonical_iso=True)
    keys = bench.iso_keys()
    first = {}
    a, b = next((first[k], i) for i, k in enumerate(keys) if first.setdefault(k, i) != i)  # two rows of one class
    assert bench.archs[a] != bench.archs[b]
    pa, pb = plain.collate([a]), plain.collate([b])
    assert not torch.equal(pa.tokens, pb.tokens)  # different raw cells...
    ca, cb = canon.collate([a]), canon.collate([b])
    for name in ("x", "tensor", "tokens", "edge_index"):
        assert torch.equal(ca[name], cb[name]) and torch.equal(ca[name], pa[name])  # ...encoded as the class's first row
    assert cb.y.item() == pytest.approx(bench.target("cifar10/baseline_acc")[b]) and cb.idx.item() == b
    assert len(set(canon.encoded_rows.tolist())) == len(set(keys)) == 6466


def test_pseudo_labels_extend_train_only(bench):
    dm = ArchRankDataModule(bench, "cifar10/baseline_acc", n_train=100, n_val=20, split_seed=1, canonical_iso=True, batch_size=16)
    scores = -bench.target("cifar10/baseline_acc")  # a teacher that ranks every cell backwards
    asked = []
    st = pseudo_labelled(dm, lambda rows: asked.append(rows) or scores[rows], count=300, seed=0, batch_size=64)
    pseudo = np.setdiff1d(st.split.train, dm.split.train)
    assert len(pseudo) == 300 and np.array_equal(st.split.train[:100], dm.split.train)
    assert len(asked) == 1 and np.array_equal(asked[0], pseudo)  # the teacher scores only the chosen cells
    assert np.array_equal(st.split.val, dm.split.val) and np.array_equal(st.values[dm.split.val], dm.values[dm.split.val])
    assert len(np.intersect1d(st.split.test, pseudo)) == 0 and len(st.split.test) == len(dm.split.test) - 300
    # one cell per isomorphism class, none sharing a class with a labelled cell
    enc = dm.encoded_rows
    assert len(np.unique(enc[pseudo])) == 300 and not np.isin(enc[pseudo], enc[np.concatenate([dm.split.train, dm.split.val])]).any()
    # targets: the teacher's order on the training targets' scale; the original is untouched
    order = np.argsort(scores[pseudo])
    assert np.all(np.diff(st.values[pseudo][order]) >= 0)
    train_values = dm.values[dm.split.train]
    assert st.values[pseudo].min() == train_values.min() and st.values[pseudo].max() == train_values.max()
    assert np.array_equal(dm.values, bench.target("cifar10/baseline_acc")) and len(dm.split.train) == 100
    assert (st.hparams.batch_size, dm.hparams.batch_size) == (64, 16)
    assert np.array_equal(st.tiers, assign_tiers(st.values, dm.thresholds))
    with pytest.raises(ConfigError, match="one per row"):
        pseudo_labelled(dm, lambda rows: scores[rows][:-1], count=5, seed=0)
    with pytest.raises(ConfigError, match="self_training.count"):
        pseudo_labelled(dm, lambda rows: scores[rows], count=0, seed=0)
    with pytest.raises(ConfigError, match="outside the train and val splits"):
        dm.with_train_targets(dm.split.val[:1], np.zeros(1))
