"""The training pipeline behind train.py: instantiate, fit, test, report.

Kept out of the entry script so tests and sweeps call the same function (lightning-hydra-template).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a dict-of-configs group (callbacks, loggers)."""
    return [hydra.utils.instantiate(c) for c in (cfg or {}).values() if isinstance(c, DictConfig) and "_target_" in c]


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit and test one ranker; returns (metrics, objects) so callers can inspect what ran."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model, data_info=datamodule.data_info())
    loggers = instantiate_list(cfg.get("logger"))
    callbacks = instantiate_list(cfg.get("callbacks"))
    if not loggers:  # LearningRateMonitor refuses to run without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    fit_seconds = time.perf_counter() - start
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test"):
        ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
        trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
        metrics.update(model.last_test)
    metrics["time/fit_s"] = fit_seconds
    return metrics, {"datamodule": datamodule, "model": model, "trainer": trainer}


def summary(metrics: dict[str, float]) -> str:
    """The short result table printed at the end of a run."""
    keys = [k for k in ("val/ktau", "test/ktau", "test/spearman", "test/p@10", "test/p@1pct", "test/n@10", "test/regret", "time/fit_s") if k in metrics]
    keys += sorted(k for k in metrics if k.startswith("transfer/") and k.endswith(("/ktau", "/spearman")))
    width = max(map(len, keys), default=0)
    return "\n".join(f"{k:<{width}}  {metrics[k]:.4f}" for k in keys)
