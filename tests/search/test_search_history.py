"""History (derived curves, ranks, files) and the Oracle's budget rules, on real NB201 data."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_nb201

from nasrank.core import ConfigError, CorruptDataError
from nasrank.search.history import CSV_COLUMNS, History, space_ranks
from nasrank.search.oracle import Oracle, iso_classes


@pytest.fixture(scope="module")
def nb201():
    from nasrank.benchmarks.nb201_table import load_nb201_table

    return load_nb201_table()


def test_space_ranks_count_strictly_better_cells() -> None:
    space = np.array([5.0, 9.0, 9.0, 1.0, 7.0])
    assert space_ranks(space, np.array([9.0, 7.0, 5.0, 1.0, 8.0])).tolist() == [1, 3, 4, 5, 3]


def _history(values: list[float], ranks: list[int]) -> History:
    n = len(values)
    return History("random", "toy", "x/acc", 0, n, np.arange(n), tuple(f"a{i}" for i in range(n)), np.array(values),
                   ("random",) * n, np.array(ranks), optimum=10.0, space_size=100)


def test_derived_curves() -> None:
    h = _history([3.0, 7.0, 5.0, 10.0, 2.0], [50, 9, 20, 1, 80])
    assert h.best.tolist() == [3, 7, 7, 10, 10]
    assert h.regret.tolist() == [7, 3, 3, 0, 0]
    assert h.best_rank.tolist() == [50, 9, 9, 1, 1]
    assert h.best_percentile[-1] == pytest.approx(1.0)
    assert h.queries_to_optimum == 4 and h.best_index == 3
    assert h.at(2) == {"queries": 2, "best": 7.0, "regret": 3.0, "best_rank": 9, "best_percentile": 9.0}
    assert _history([1.0, 2.0], [3, 2]).queries_to_optimum is None


def test_files_round_trip(tmp_path) -> None:
    h = _history([3.0, 7.0, 5.0], [50, 9, 20])
    json_path, csv_path = h.save(tmp_path)
    again = History.from_json(json_path.read_text())
    assert again.values.tolist() == h.values.tolist() and again.archs == h.archs and again.optimum == h.optimum
    lines = csv_path.read_text().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS) and len(lines) == 4
    assert lines[2].split(",")[CSV_COLUMNS.index("regret")] == "3.0"
    with pytest.raises(CorruptDataError, match="not a search history"):
        History.from_json('{"rows": [1]}')
    with pytest.raises(CorruptDataError, match="same length"):
        History("random", "toy", "x", 0, 2, np.arange(2), ("a",), np.ones(2), ("r", "r"), np.ones(2), 1.0, 2)


@needs_nb201
def test_oracle_refuses_repeats_isomorphs_and_overspending(nb201) -> None:
    classes = iso_classes(nb201)
    assert classes.max() + 1 == 6466  # NB201's published number of isomorphism classes
    a, b = np.flatnonzero(classes == np.bincount(classes).argmax())[:2]  # two isomorphic rows
    oracle = Oracle(nb201, "cifar10/test_acc", budget=2)
    assert oracle.query([a], "random") == pytest.approx(nb201.target("cifar10/test_acc")[a])
    assert not oracle.free(np.array([a, b])).any()
    with pytest.raises(RuntimeError, match="isomorphic"):
        oracle.query([b], "random")
    with pytest.raises(RuntimeError, match="never queried"):
        oracle.value(int(b))
    other = int(np.flatnonzero(classes != classes[a])[0])
    oracle.query([other], "random")
    with pytest.raises(RuntimeError, match="budget of 2 queries exhausted"):
        oracle.query([int(np.flatnonzero((classes != classes[a]) & (classes != classes[other]))[0])], "random")
    h = oracle.history("random", seed=0)
    assert h.rows.tolist() == [a, other] and h.ranks.tolist() == space_ranks(nb201.target("cifar10/test_acc"), h.values).tolist()


@needs_nb201
def test_sample_free_gives_distinct_unqueried_classes(nb201) -> None:
    oracle = Oracle(nb201, "cifar100/test_acc", budget=100)
    oracle.query(oracle.sample_free(np.random.default_rng(0), 50), "random")
    rows = oracle.sample_free(np.random.default_rng(1), 3000)
    assert len(rows) == 3000 and oracle.free(rows).all()
    assert len(set(oracle.classes[rows])) == 3000
    assert len(oracle.sample_free(np.random.default_rng(1), 10**6)) == 6466 - 50  # every class not yet queried


@needs_nb201
@pytest.mark.parametrize("budget", [0, -3, 6467, 2.5, True])
def test_oracle_budget_range(nb201, budget) -> None:
    with pytest.raises(ConfigError, match=r"budget=.*allowed: an integer in 1\.\.6466"):
        Oracle(nb201, "cifar10/test_acc", budget)
