"""Building what a fit needs from its config: callbacks and loggers, the model, the trainer; scoring rows."""

from __future__ import annotations

from typing import Any

import hydra
import lightning as L
import numpy as np
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig

from nasrank.callbacks import TestMediaLogger
from nasrank.models.ranker import score_batches
from nasrank.training.checkpoints import check_checkpoint, resolve_ckpt
from nasrank.training.pretrained import load_pretrained


def instantiate_list(cfg: DictConfig | None, unmonitored_only: bool = False) -> list[Any]:
    """Instantiate every `_target_` entry of a dict-of-configs group (callbacks, loggers); with
    `unmonitored_only`, skip those that watch a metric (checkpointing, early stopping)."""
    return [hydra.utils.instantiate(c) for c in (cfg or {}).values()
            if isinstance(c, DictConfig) and "_target_" in c and not (unmonitored_only and c.get("monitor"))]


def score_rows(model: L.LightningModule, datamodule, rows: np.ndarray | None = None) -> np.ndarray:
    """The model's scores (float64, higher = better) of these benchmark rows (default: all of them)."""
    rows = np.arange(len(datamodule.benchmark)) if rows is None else np.asarray(rows)
    return score_batches(model, datamodule.rows_loader(rows))[0]


def build_model(cfg: DictConfig, datamodule) -> L.LightningModule:
    """The configured model, sized by the datamodule, its encoder pretrained on the space (`pretrain`) and
    its weights loaded from `init_from`, each if given."""
    model = hydra.utils.instantiate(cfg.model, data_info=datamodule.data_info())
    if cfg.get("pretrain"):
        load_pretrained(model, cfg.model.encoder, datamodule, cfg.pretrain, cfg.paths.get("cache_dir"))
    if cfg.get("init_from"):  # fine-tuning (e.g. few-shot transfer): weights only, fresh optimiser and epochs
        model.load_state_dict(check_checkpoint(resolve_ckpt(cfg.init_from, cfg.paths.output_dir), model))
    return model


def build_trainer(cfg: DictConfig, loggers: list, monitored: bool = True, **overrides) -> L.Trainer:
    """The configured trainer; `monitored=False` leaves out every callback that watches a metric
    (checkpointing and early stopping on val/ktau), for a fit that must never look at validation."""
    callbacks = instantiate_list(cfg.get("callbacks"), unmonitored_only=not monitored)
    callbacks += [TestMediaLogger(cfg.paths.output_dir)] if monitored else []
    if not loggers:  # LearningRateMonitor refuses to run without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)
