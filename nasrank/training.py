"""The training pipeline behind train.py: instantiate, fit, test, report.

Kept out of the entry script so tests and sweeps call the same function (lightning-hydra-template).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf, open_dict

from nasrank.artifact import FILENAME
from nasrank.benchmarks.cache import write_atomic
from nasrank.callbacks import TestMediaLogger
from nasrank.errors import ConfigError, check_at_least
from nasrank.models.ensemble import ScoreEnsemble
from nasrank.models.ranker import score_batches
from nasrank.ranker import Ranker

log = logging.getLogger(__name__)


def instantiate_list(cfg: DictConfig | None, unmonitored_only: bool = False) -> list[Any]:
    """Instantiate every `_target_` entry of a dict-of-configs group (callbacks, loggers); with
    `unmonitored_only`, skip those that watch a metric (checkpointing, early stopping)."""
    return [hydra.utils.instantiate(c) for c in (cfg or {}).values()
            if isinstance(c, DictConfig) and "_target_" in c and not (unmonitored_only and c.get("monitor"))]


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
    return check_state(state, model, f"checkpoint {path}")


def check_state(state: dict, model: L.LightningModule, what: str) -> dict:
    """`state` if its tensor names and shapes are exactly this model's, else one line naming the first differences."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:2]
        raise ConfigError(f"{what} does not match this model/benchmark encoding (first differences: {diff}); "
                          "use the model, data and encoding it was trained with")
    return state


def score_rows(model: L.LightningModule, datamodule, rows: np.ndarray | None = None) -> np.ndarray:
    """The model's scores (float64, higher = better) of these benchmark rows (default: all of them)."""
    rows = np.arange(len(datamodule.benchmark)) if rows is None else np.asarray(rows)
    return score_batches(model, datamodule.rows_loader(rows))[0]


def load_best(trainer: L.Trainer, model: L.LightningModule) -> str:
    """Load the best checkpoint (val/ktau) of a fit into its model; its path ('' if none was kept)."""
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best:
        model.load_state_dict(check_checkpoint(best, model))
    return best


def build_model(cfg: DictConfig, datamodule) -> L.LightningModule:
    """The configured model, sized by the datamodule (and loaded from `init_from` if given)."""
    model = hydra.utils.instantiate(cfg.model, data_info=datamodule.data_info())
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


def pseudo_labelled(cfg: DictConfig, datamodule):
    """Self-training's first stage: fit a teacher on the labelled split for a fixed budget, let it
    label `self_training.count` unlabeled cells; returns the student's datamodule.

    The teacher never sees the validation split (no val epochs, no best-epoch choice, no early
    stopping): were it chosen on val, the student would inherit that choice and its val KTau would
    no longer be a clean hold-out score (measured: val rose while test did not).  It logs nothing
    either (the run's loggers and step counter belong to the student)."""
    st = cfg.self_training
    check_at_least("self_training", 1, teacher_epochs=st.get("teacher_epochs"), max_epochs=st.get("max_epochs"))
    teacher = build_model(cfg, datamodule)
    trainer = build_trainer(cfg, [], monitored=False, max_epochs=st.teacher_epochs, max_steps=-1, limit_val_batches=0,
                            enable_checkpointing=False)  # Lightning's default checkpoint would land in the student's dir
    trainer.fit(teacher, datamodule=datamodule)
    return datamodule.with_pseudo_labels(lambda rows: score_rows(teacher, datamodule, rows), st.count, cfg.seed, st.get("batch_size"))


def check_ensemble(cfg: DictConfig) -> None:
    """Refuse an ensemble config that would fail only after the run's model has been fitted."""
    if cfg.get("ckpt_path") or cfg.get("self_training") or not cfg.get("train", True):
        raise ConfigError("ensemble fits every member in this run; it cannot be combined with ckpt_path, self_training or train=false")
    names = sorted(cfg.ensemble.get("members") or {})
    if "model" in names:
        raise ConfigError("ensemble member name 'model' is reserved for the run's model; rename it")
    if unknown := sorted(set(cfg.ensemble.get("trainer") or {}) - set(names)):
        raise ConfigError(f"ensemble.trainer names {unknown}, which are not ensemble members; allowed: {names}")


def ensemble_of(cfg: DictConfig, datamodule, model: L.LightningModule, trainer: L.Trainer) -> ScoreEnsemble:
    """The fitted model (at its best val epoch) plus each `ensemble.members` ranker, fitted one after
    another with its own trainer, output dir (`members/<member>/`, checkpoints included) and best epoch, on its own view
    of the same split (the data config resolved with the member as model: its encodings; the benchmark
    table is shared, not reloaded)."""
    load_best(trainer, model)
    members, views = {"model": model}, {"model": None}  # the run's model reads the run's batches as they are
    for name, member_model in cfg.ensemble.members.items():
        member_cfg = copy.deepcopy(cfg)
        with open_dict(member_cfg):
            member_cfg.model, member_cfg.init_from = member_model, None
            # everything the member's trainer writes (its checkpoints, or Lightning's default one) stays out of the run's own
            member_cfg.paths.output_dir = str(Path(cfg.paths.output_dir) / "members" / name)
        same = OmegaConf.to_container(member_cfg.data, resolve=True) == OmegaConf.to_container(cfg.data, resolve=True)
        view = datamodule if same else hydra.utils.instantiate(member_cfg.data, _partial_=True)(benchmark=datamodule.benchmark)
        views[name] = None if same else view  # a member encoded like the run's model reads the run's batches as they are
        member = build_model(member_cfg, view)
        member_trainer = build_trainer(member_cfg, [], **cfg.ensemble.get("trainer", {}).get(name, {}))
        member_trainer.fit(member, datamodule=view)
        load_best(member_trainer, member)
        members[name] = member
    ensemble = ScoreEnsemble(members, views, eval_targets=list(cfg.get("eval_targets", [])))
    rows = datamodule.split.train
    ensemble.standardize(torch.from_numpy(np.stack([score_rows(members[n], views[n] or datamodule, rows) for n in members])).float())
    return ensemble


def ranker_of(cfg: DictConfig, datamodule, model: L.LightningModule) -> Ranker:
    """The fitted `model` (one module, or a `ScoreEnsemble`) as a `Ranker` that scores any cell of the space."""
    if not isinstance(model, ScoreEnsemble):
        return Ranker.of_fitted([("model", model, cfg.model, datamodule)], datamodule, seed=int(cfg.seed))
    views = model.views or {}
    parts = [(name, module, cfg.model if name == "model" else cfg.ensemble.members[name], views.get(name) or datamodule)
             for name, module in model.members.items()]
    return Ranker.of_fitted(parts, datamodule, (model.score_mean, model.score_std), seed=int(cfg.seed))


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit and test one ranker; returns (metrics, objects) so callers can inspect what ran.

    With `self_training` set, a teacher is fitted first and the returned model is the student fitted on
    the labelled split plus the teacher's pseudo-labelled cells (see `ArchRankDataModule.with_pseudo_labels`).
    With `ensemble` set, the members are fitted after the model and the returned model is their
    `ScoreEnsemble`, validated and tested as one ranker.  A trained run leaves its ranker as one
    artifact, `<output_dir>/ranker.pt` (`nasrank.Ranker.load`).
    """
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    self_training = cfg.get("self_training")
    if self_training and cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path resumes a single fit; with self_training the teacher is refitted, so run again without ckpt_path")
    if cfg.get("ensemble"):
        check_ensemble(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = build_model(cfg, datamodule)  # with self_training: the student (the teacher is built later)
    ckpt_path = resolve_ckpt(cfg.get("ckpt_path"), cfg.paths.output_dir)
    if ckpt_path:
        check_checkpoint(ckpt_path, model)
    loggers = instantiate_list(cfg.get("logger"))
    metrics: dict[str, float] = {}
    try:
        fit_dm, student_trainer = datamodule, {}
        start = time.perf_counter()
        if self_training and cfg.get("train", True):
            fit_dm = pseudo_labelled(cfg, datamodule)
            student_trainer = {"max_epochs": self_training.max_epochs}
        trainer = build_trainer(cfg, loggers, **student_trainer)
        for lg in loggers:
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        if cfg.get("train", True):
            trainer.fit(model, datamodule=fit_dm, ckpt_path=ckpt_path)
            metrics["time/fit_s"] = time.perf_counter() - start
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
            ckpt_path = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
            if cfg.get("ensemble"):
                model, ckpt_path = ensemble_of(cfg, datamodule, model, trainer), None
                metrics["time/fit_s"] = time.perf_counter() - start
                trainer.validate(model, datamodule=datamodule, verbose=False)
                metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
            else:
                load_best(trainer, model)  # the artifact holds the weights the test scores (the best val epoch)
            if trainer.is_global_zero:
                ranker_of(cfg, datamodule, model).save(Path(cfg.paths.output_dir) / FILENAME)
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
