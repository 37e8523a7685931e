"""Cost-constrained search: feasibility, regret against the best feasible cell, Pareto fronts, errors."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import needs_nb201

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.core import ConfigError
from nasrank.encodings.cost import arch_costs
from nasrank.encodings.graph import dense_graphs
from nasrank.search.constraints import Constraint
from nasrank.search.oracle import Oracle, iso_classes
from nasrank.search.pareto import front_cost, pareto_mask
from nasrank.search.strategies import Evolution, RandomSearch
from nasrank.spaces.nb201 import SPACE as NB201


def dominated_by_any(values: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """The definition, O(N²): some other point has value ≥ and cost ≤, one strictly."""
    better = (values[None, :] >= values[:, None]) & (costs[None, :] <= costs[:, None])
    strictly = (values[None, :] > values[:, None]) | (costs[None, :] < costs[:, None])
    return (better & strictly).any(axis=1)


def test_pareto_mask_hand_made() -> None:
    values = np.array([1.0, 3.0, 3.0, 2.0, 5.0, 5.0, 4.0, np.nan, 6.0, 7.0])
    costs = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 5.0, 0.0, np.nan, 9.0])
    # (1,1) and (2,2) lose to (3,1); (3,2) ties its value at a higher cost; (5,3) twice: both; NaN: never
    assert np.flatnonzero(pareto_mask(values, costs)).tolist() == [1, 4, 5, 9]


def test_pareto_mask_matches_the_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        values, costs = rng.integers(0, 6, 40).astype(float), rng.integers(0, 6, 40).astype(float)
        assert pareto_mask(values, costs).tolist() == (~dominated_by_any(values, costs)).tolist()


def toy_benchmark() -> Benchmark:
    archs = [NB201.from_index(i) for i in (0, 1, 2)]
    return Benchmark("toy", NB201, archs, {"cifar10/acc": np.array([1.0, 2.0, 3.0])},
                     {"cifar10/params": np.array([1.0, 2.0, 3.0]), "cifar10/flops": np.array([3.0, 2.0, 1.0])})


@pytest.mark.parametrize("node, message", [
    ({"params_max": 0}, "constraint.params_max=0; allowed: a number > 0 (M) or null"),
    ({"flops_max": -5.0}, "constraint.flops_max=-5.0; allowed: a number > 0 (MFLOPs) or null"),
    ({"latency_max": True}, "constraint.latency_max=True; allowed: a number > 0"),
    ({"size_max": 3}, "unknown constraint.size_max; allowed: params_max, flops_max, latency_max"),
])
def test_bad_bounds(node, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Constraint.from_config(node)


def test_feasible_rows_and_errors_on_a_table_with_costs() -> None:
    bench = toy_benchmark()  # its own costs win over the analytic NB201 ones
    assert Constraint({"params": 2.0}).feasible(bench, "cifar10").tolist() == [True, True, False]
    with pytest.raises(ConfigError, match=r"no cell of toy satisfies constraint.params_max=0.5 on cifar10; .* smallest params .*, 1 M"):
        Constraint({"params": 0.5}).feasible(bench, "cifar10")
    with pytest.raises(ConfigError, match="satisfies params_max=1.5, flops_max=1.5 together"):
        Constraint({"params": 1.5, "flops": 1.5}).feasible(bench, "cifar10")
    with pytest.raises(ConfigError, match="toy has no latency cost on cifar10; available: params, flops"):
        Constraint({"latency": 1.0}).feasible(bench, "cifar10")
    assert front_cost(None, Constraint()) is None and front_cost(None, Constraint({"flops": 1.0})) == "flops"
    with pytest.raises(ConfigError, match="pareto='size'; allowed: params, flops, latency or null"):
        front_cost("size", Constraint())


def test_oracle_never_offers_or_answers_an_infeasible_cell() -> None:
    oracle = Oracle(toy_benchmark(), "cifar10/acc", 2, Constraint({"params": 2.0}))
    assert oracle.free(np.arange(3)).tolist() == [True, True, False]
    assert sorted(oracle.sample_free(np.random.default_rng(0), 3).tolist()) == [0, 1]
    with pytest.raises(RuntimeError, match="row 2 breaks the constraint params_max=2"):
        oracle.query([2], "random")
    with pytest.raises(ConfigError, match=r"budget=3; allowed: an integer in 1..2"):
        Oracle(toy_benchmark(), "cifar10/acc", 3, Constraint({"params": 2.0}))


@functools.lru_cache(maxsize=1)
def nb201():
    from nasrank.benchmarks.nb201_table import load_nb201_table

    return load_nb201_table()


def analytic_params(dataset: str) -> np.ndarray:
    graphs = dense_graphs(nb201().archs, NB201)
    return arch_costs("nb201", graphs.ops, graphs.adj, dataset)[1]


@needs_nb201
@pytest.mark.parametrize("strategy, budget", [(RandomSearch("cifar100/test_acc"), 60), (Evolution("cifar100/test_acc", population=10), 60)])
def test_constrained_search_queries_feasible_cells_only(strategy, budget) -> None:
    bench, bound = nb201(), 0.3
    feasible = analytic_params("cifar100") <= bound
    space = bench.target("cifar100/test_acc")
    assert space[feasible].max() < space.max()  # the bound excludes the space's optimum
    h = strategy.run(bench, None, budget, seed=1, constraint=Constraint({"params": bound}))
    assert len(h) == budget and feasible[h.rows].all()
    assert h.optimum == space[feasible].max() and h.space_size == feasible.sum()
    assert h.regret[-1] == pytest.approx(space[feasible].max() - h.values.max())
    assert h.ranks.tolist() == [int((space[feasible] > v).sum()) + 1 for v in h.values]
    assert h.extra["constraint"] == {"params_max": bound} and h.extra["feasible_cells"] == feasible.sum() == 4096
    assert "constraint params_max=0.3: 4096 of 15625 cells feasible" in h.summary()


@needs_nb201
def test_budget_of_every_feasible_class_queries_each_once() -> None:
    """params ≤ 0.08 M keeps 729 cells in 127 isomorphism classes: 127 queries see each class once."""
    tight = Constraint({"params": 0.08})
    h = RandomSearch("cifar10/test_acc").run(nb201(), None, 127, seed=0, constraint=tight)
    classes = iso_classes(nb201())
    assert sorted(classes[h.rows].tolist()) == sorted(set(classes[analytic_params("cifar10") <= 0.08].tolist()))
    with pytest.raises(ConfigError, match=r"budget=128; allowed: an integer in 1..127 \(.* within params_max=0.08\)"):
        RandomSearch("cifar10/test_acc").run(nb201(), None, 128, seed=0, constraint=tight)
