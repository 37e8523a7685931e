"""The search pipeline behind search.py: build the sampler, the data, the ranker; search; save.

Kept out of the entry script so tests and benchmarks run exactly what users run.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from nasrank.artifact import FILENAME
from nasrank.core import ConfigError
from nasrank.data.custom import custom_datamodule
from nasrank.ranker import Ranker
from nasrank.search.constraints import Constraint, space_costs
from nasrank.search.data import QueriedDataModule
from nasrank.search.history import History
from nasrank.search.pareto import front_cost, save_front
from nasrank.search.plot import plot_regret
from nasrank.search.rankers import LightningRanker, SavedRanker, build_ranker
from nasrank.search.strategies import Strategy


def build_datamodule(data: DictConfig) -> QueriedDataModule:
    """The data config's datamodule, as the search subclass that trains on queried rows."""
    return hydra.utils.instantiate(data, _target_=f"{QueriedDataModule.__module__}.{QueriedDataModule.__name__}")


def save_final(ranker: LightningRanker | SavedRanker, cfg: DictConfig, datamodule: QueriedDataModule, path: Path) -> Path:
    """The search's last ranker (fitted on every query but the last batch) as a ranker artifact."""
    if isinstance(ranker, SavedRanker):
        return ranker.saved.save(path)
    return Ranker.of_fitted([("model", ranker.model, cfg.model, datamodule)], datamodule, seed=int(cfg.seed)).save(path)


def search(cfg: DictConfig) -> tuple[History, list[Path]]:
    """Run `cfg.sampler` on `cfg.data` with `cfg.budget` queries of cells within `cfg.constraint`; save
    history (JSON, CSV), the regret plot and, for a constrained run or `cfg.pareto`, the Pareto front
    (CSV, PNG) under `cfg.paths.output_dir`.  Returns the history and the files written."""
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    if cfg.data.get("_target_") == f"{custom_datamodule.__module__}.{custom_datamodule.__name__}":
        raise ConfigError("search needs a benchmark that measured every cell; data=custom holds only your measurements: "
                          "train on them with train.py, then rank the rest of the space with rank.py")
    if cfg.data.get("fit_on", "target") != "target":
        raise ConfigError(f"data.fit_on={cfg.data.fit_on} does not apply to a search: its ranker is fitted on what the search "
                          "queries (data.target); search a validation target with data.target=<dataset>/valid_acc instead")
    constraint = Constraint.from_config(cfg.constraint)
    cost = front_cost(cfg.pareto, constraint)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    strategy: Strategy = hydra.utils.instantiate(cfg.sampler, target=cfg.data.target)
    datamodule = build_datamodule(cfg.data)
    benchmark = datamodule.benchmark
    costs = space_costs(benchmark, cfg.data.target.split("/")[0], [cost])[cost] if cost else None  # refused before any query
    ranker = build_ranker(cfg, datamodule) if strategy.uses_ranker else None
    if cfg.get("save_ranker") and not isinstance(ranker, (LightningRanker, SavedRanker)):
        raise ConfigError(f"save_ranker=true needs a ranker-guided sampler with ranker.name=model; "
                          f"{'sampler ' + strategy.name + ' uses no ranker' if ranker is None else 'table baselines are not saveable'}")
    history = strategy.run(benchmark, ranker, cfg.budget, cfg.seed, constraint)
    out = Path(cfg.paths.output_dir)
    paths = history.save(out)
    if cfg.get("save_ranker"):
        paths.append(save_final(ranker, cfg, datamodule, out / FILENAME))
    paths.append(plot_regret([history], out / "regret.png"))
    if cost:
        paths += save_front(history, benchmark.target(history.target), costs, cost, constraint.bounds.get(cost), out)
    return history, paths
