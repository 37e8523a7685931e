"""The training pipeline behind train.py: instantiate, fit, test, report.

Kept out of the entry script so tests and sweeps call the same function (lightning-hydra-template).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from nasrank.benchmarks.cache import write_atomic
from nasrank.callbacks import TestMediaLogger
from nasrank.errors import ConfigError

log = logging.getLogger(__name__)


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a dict-of-configs group (callbacks, loggers)."""
    return [hydra.utils.instantiate(c) for c in (cfg or {}).values() if isinstance(c, DictConfig) and "_target_" in c]


def resolve_ckpt(ckpt_path: str | None, output_dir: str) -> str | None:
    """`last` means this run dir's `checkpoints/last.ckpt` (resume with `hydra.run.dir=<old run>`)."""
    if ckpt_path in (None, ""):
        return None
    path = Path(output_dir) / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} not found; pass ckpt_path=<file> or ckpt_path=last with hydra.run.dir=<the run to resume>")
    return str(path)


def check_checkpoint(path: str, model: L.LightningModule) -> dict:
    """Refuse a checkpoint whose weights do not fit this model/encoding, before Lightning would
    fail deep inside `load_state_dict`.  Loaded with `weights_only=True`: checkpoints are untrusted.
    Returns the checkpoint's state dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is the user's file
        raise ConfigError(f"checkpoint {path} is not a readable nasrank checkpoint ({type(exc).__name__})") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:2]
        raise ConfigError(f"checkpoint {path} does not match this model/benchmark encoding (first differences: {diff}); "
                          "use the model, data and encoding it was trained with")
    return state


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit and test one ranker; returns (metrics, objects) so callers can inspect what ran."""
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model, data_info=datamodule.data_info())
    ckpt_path = resolve_ckpt(cfg.get("ckpt_path"), cfg.paths.output_dir)
    if ckpt_path:
        check_checkpoint(ckpt_path, model)
    if cfg.get("init_from"):  # fine-tuning (e.g. few-shot transfer): weights only, fresh optimiser and epochs
        model.load_state_dict(check_checkpoint(resolve_ckpt(cfg.init_from, cfg.paths.output_dir), model))
    loggers = instantiate_list(cfg.get("logger"))
    callbacks = instantiate_list(cfg.get("callbacks")) + [TestMediaLogger(cfg.paths.output_dir)]
    if not loggers:  # LearningRateMonitor refuses to run without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict[str, float] = {}
    try:
        if cfg.get("train", True):
            start = time.perf_counter()
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
            metrics["time/fit_s"] = time.perf_counter() - start
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
            ckpt_path = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
        if cfg.get("test"):
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("test/", "transfer/"))})
    finally:
        for lg in loggers:  # close every run, so multirun jobs never merge into one W&B run
            if hasattr(lg, "experiment") and hasattr(lg.experiment, "finish"):
                lg.experiment.finish()
    if trainer.is_global_zero:
        clean = {k: v for k, v in metrics.items() if not math.isnan(v)}
        write_atomic(Path(cfg.paths.output_dir) / "metrics.json", json.dumps(clean, indent=1, sort_keys=True).encode())
    return metrics, {"datamodule": datamodule, "model": model, "trainer": trainer}


def summary(metrics: dict[str, float]) -> str:
    """The short result table printed at the end of a run."""
    keys = [k for k in ("val/ktau", "test/ktau", "test/spearman", "test/p@10", "test/p@1pct", "test/n@10", "test/regret", "time/fit_s") if k in metrics]
    keys += sorted(k for k in metrics if k.startswith("transfer/") and k.endswith(("/ktau", "/spearman")))
    width = max(map(len, keys), default=0)
    return "\n".join(f"{k:<{width}}  {metrics[k]:.4f}" for k in keys)
