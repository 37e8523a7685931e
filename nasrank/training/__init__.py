"""The training pipeline behind train.py: instantiate, fit (in one of `modes`), save the ranker, test, report.

Kept out of the entry script so tests and sweeps call the same function (lightning-hydra-template).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from nasrank.artifact import FILENAME
from nasrank.core import ConfigError, write_atomic
from nasrank.data.datamodule import ArchRankDataModule
from nasrank.ranker import Ranker
from nasrank.training.build import build_model, build_trainer, instantiate_list, score_rows
from nasrank.training.checkpoints import check_checkpoint, check_state, load_best, resolve_ckpt
from nasrank.training.modes import mode_of

__all__ = ["build_model", "build_trainer", "check_checkpoint", "check_state", "instantiate_list", "load_best", "ranker_of",
           "resolve_ckpt", "score_rows", "summary", "train"]


def ranker_of(cfg: DictConfig, datamodule, model: L.LightningModule) -> Ranker:
    """The fitted result of a train.py config (one module, or its `ScoreEnsemble`) as a `Ranker`."""
    return mode_of(cfg).ranker(datamodule, model)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit and test one ranker; returns (metrics, objects) so callers can inspect what ran.

    The fit mode (`nasrank.training.modes`) follows the config: with `self_training` the returned model
    is the student fitted on the labelled split plus a teacher's pseudo-labelled cells; with `ensemble`
    it is the `ScoreEnsemble` of the model and the members fitted after it, validated and tested as one
    ranker.  A trained run leaves its ranker as one artifact, `<output_dir>/ranker.pt` (`nasrank.Ranker`).
    """
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    mode = mode_of(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = build_model(cfg, datamodule)  # with self_training: the student (the teacher is built later)
    ckpt_path = resolve_ckpt(cfg.get("ckpt_path"), cfg.paths.output_dir)
    if ckpt_path:
        check_checkpoint(ckpt_path, model)
    loggers = instantiate_list(cfg.get("logger"))
    metrics: dict[str, float] = {}
    try:
        start = time.perf_counter()
        fit_dm, overrides = mode.fit_datamodule(datamodule) if cfg.get("train", True) else (datamodule, {})
        trainer = build_trainer(cfg, loggers, **overrides)
        for lg in loggers:
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        if cfg.get("train", True):
            trainer.fit(model, datamodule=fit_dm, ckpt_path=ckpt_path)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
            model, ckpt_path, revalidate = mode.finish(datamodule, model, trainer)
            metrics["time/fit_s"] = time.perf_counter() - start
            if revalidate:
                trainer.validate(model, datamodule=datamodule, verbose=False)
                metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
            if trainer.is_global_zero and isinstance(datamodule, ArchRankDataModule):  # a supernet run ranks no table
                mode.ranker(datamodule, model).save(Path(cfg.paths.output_dir) / FILENAME)
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
