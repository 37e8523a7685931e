"""The search pipeline behind search.py: build the sampler, the data, the ranker; search; save.

Kept out of the entry script so tests and benchmarks run exactly what users run.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from nasrank.errors import ConfigError
from nasrank.search.data import QueriedDataModule
from nasrank.search.history import History
from nasrank.search.plot import plot_regret
from nasrank.search.rankers import build_ranker
from nasrank.search.strategies import Strategy


def build_datamodule(data: DictConfig) -> QueriedDataModule:
    """The data config's datamodule, as the search subclass that trains on queried rows."""
    return hydra.utils.instantiate(data, _target_=f"{QueriedDataModule.__module__}.{QueriedDataModule.__name__}")


def search(cfg: DictConfig) -> tuple[History, list[Path]]:
    """Run `cfg.sampler` on `cfg.data` with `cfg.budget` queries; save history (JSON, CSV) and the
    regret plot under `cfg.paths.output_dir`.  Returns the history and the files written."""
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    strategy: Strategy = hydra.utils.instantiate(cfg.sampler, target=cfg.data.target)
    datamodule = build_datamodule(cfg.data)
    ranker = build_ranker(cfg, datamodule) if strategy.uses_ranker else None
    history = strategy.run(datamodule.benchmark, ranker, cfg.budget, cfg.seed)
    out = Path(cfg.paths.output_dir)
    paths = history.save(out)
    paths.append(plot_regret([history], out / "regret.png"))
    return history, paths
