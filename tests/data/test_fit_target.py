"""`data.fit_on`: train and select on validation accuracy, test on `data.target`; a benchmark without
validation accuracy falls back to the target with one warning, and records what it trained on."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import torch

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.core import ConfigError
from nasrank.data import ArchRankDataModule
from nasrank.spaces import get_space

N = 60


def tiny(valid: bool) -> Benchmark:
    """60 NB201 cells whose validation accuracy ranks them in reverse of their test accuracy."""
    space = get_space("nb201")
    archs = list(itertools.islice(space.enumerate(), N))
    targets = {"cifar10/test_acc": np.linspace(80.0, 94.0, N)}
    if valid:
        targets["cifar10/valid_acc"] = np.linspace(90.0, 70.0, N)
    return Benchmark("tiny", space, archs, targets)


def labels(loader) -> tuple[np.ndarray, np.ndarray]:
    batches = list(loader)
    return torch.cat([b.idx for b in batches]).numpy(), torch.cat([b.y for b in batches]).numpy()


def test_valid_trains_and_selects_on_valid_and_tests_on_the_target() -> None:
    bench = tiny(valid=True)
    test_acc, valid_acc = bench.target("cifar10/test_acc"), bench.target("cifar10/valid_acc")
    dm = ArchRankDataModule(bench, "cifar10/test_acc", n_train=20, n_val=10, batch_size=8, fit_on="valid")
    assert dm.fit_target == "cifar10/valid_acc"
    for loader, split in ((dm.train_dataloader(), dm.split.train), (dm.val_dataloader(), dm.split.val)):
        rows, y = labels(loader)
        assert sorted(rows.tolist()) == sorted(split.tolist()) and np.allclose(y, valid_acc[rows])
    rows, y = labels(dm.test_dataloader())
    assert np.allclose(y, test_acc[rows]) and np.array_equal(dm.values, test_acc)
    assert dm.y_mean == pytest.approx(valid_acc[dm.split.train].mean())
    best_valid = dm.split.train[np.argmax(valid_acc[dm.split.train])]  # the worst test cell of the training split
    assert dm.tiers[best_valid] == 0 and dm.tiers[dm.split.train[np.argmax(test_acc[dm.split.train])]] == 4


def test_default_is_the_target_itself() -> None:
    dm = ArchRankDataModule(tiny(valid=True), "cifar10/test_acc", n_train=20, n_val=10)
    assert dm.fit_target == "cifar10/test_acc" and dm.fit_values is dm.values
    rows, y = labels(dm.train_dataloader())
    assert np.allclose(y, dm.values[rows])


def test_missing_valid_falls_back_with_one_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="nasrank.data.datamodule"):
        dm = ArchRankDataModule(tiny(valid=False), "cifar10/test_acc", n_train=20, n_val=10, fit_on="valid")
    assert dm.fit_target == "cifar10/test_acc" and dm.fit_values is dm.values
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["data.fit_on=valid: benchmark tiny has no cifar10/valid_acc (its targets: cifar10/test_acc); training on cifar10/test_acc instead"]


def test_bad_value_is_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        ArchRankDataModule(tiny(valid=True), "cifar10/test_acc", n_train=20, n_val=10, fit_on="test")
    assert str(err.value) == ("data.fit_on='test'; allowed: target (train on data.target), valid (train on <dataset>/valid_acc, "
                              "test on data.target)")


def test_train_run_records_the_fit_target(tmp_path, one_thread) -> None:
    """Through train.py's path on NAS-Bench-Graph (embedded, with valid_perf): the saved ranker says what it was fitted on."""
    from conftest import compose_train

    from nasrank.ranker import Ranker
    from nasrank.training import train

    cfg = compose_train(["debug=fast", "model=regressor", "data=nbgraph_cora", "data.fit_on=valid", "trainer.max_epochs=1"], tmp_path)
    metrics, objs = train(cfg)
    assert objs["datamodule"].fit_target == "cora/valid_acc" and "test/ktau" in metrics
    meta = Ranker.load(tmp_path).meta
    assert (meta["target"], meta["fit_target"]) == ("cora/test_acc", "cora/valid_acc")
