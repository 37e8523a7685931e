"""How `train()` fits the run's ranker: one model, a self-trained student, or an ensemble.

Each mode is a small object that `train()` dispatches to at three points — what the model fits on,
what the fitted result is, and the `Ranker` that result saves as — and whose config is checked once,
before anything is loaded or fitted.
"""

from __future__ import annotations

import copy
from pathlib import Path

import hydra
import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from nasrank.core import ConfigError, check_at_least
from nasrank.models.ensemble import ScoreEnsemble
from nasrank.ranker import Ranker
from nasrank.training.build import build_model, build_trainer, score_rows
from nasrank.training.checkpoints import load_best
from nasrank.training.pseudo_labels import pseudo_labelled


class SingleFit:
    """One model fitted on the split; the result is the model at its best validation epoch."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    def check(self) -> None:
        """Refuse, before any fit, a config this mode cannot run."""

    def fit_datamodule(self, datamodule) -> tuple[object, dict]:
        """What the run's model fits on, and trainer overrides for that fit."""
        return datamodule, {}

    def finish(self, datamodule, model: L.LightningModule, trainer: L.Trainer) -> tuple[L.LightningModule, str | None, bool]:
        """The fitted result, the checkpoint its test loads (None: as it is) and whether it needs its own validation."""
        # The test scores the model as loaded here, which the saved ranker holds too; re-reading the checkpoint
        # in trainer.test would let a weight-averaging callback restore its raw (not averaged) weights instead.
        load_best(trainer, model)
        return model, None, False

    def ranker(self, datamodule, model: L.LightningModule) -> Ranker:
        return Ranker.of_fitted([("model", model, self.cfg.model, datamodule)], datamodule, **provenance(self.cfg))


class SelfTraining(SingleFit):
    """A teacher fitted on the labelled split labels unlabeled cells; the run's model is the student.

    The teacher never sees the validation split (no val epochs, no best-epoch choice, no early
    stopping): were it chosen on val, the student would inherit that choice and its val KTau would
    no longer be a clean hold-out score (measured: val rose while test did not).  It logs nothing
    either (the run's loggers and step counter belong to the student)."""

    def check(self) -> None:
        st = self.cfg.self_training
        if self.cfg.get("ckpt_path"):
            raise ConfigError("ckpt_path resumes a single fit; with self_training the teacher is refitted, so run again without ckpt_path")
        check_at_least("self_training", 1, teacher_epochs=st.get("teacher_epochs"), max_epochs=st.get("max_epochs"))

    def fit_datamodule(self, datamodule) -> tuple[object, dict]:
        cfg, st = self.cfg, self.cfg.self_training
        teacher = build_model(cfg, datamodule)
        trainer = build_trainer(cfg, [], monitored=False, max_epochs=st.teacher_epochs, max_steps=-1, limit_val_batches=0,
                                enable_checkpointing=False)  # Lightning's default checkpoint would land in the student's dir
        trainer.fit(teacher, datamodule=datamodule)
        student_dm = pseudo_labelled(datamodule, lambda rows: score_rows(teacher, datamodule, rows), st.count, cfg.seed,
                                     st.get("batch_size"))
        return student_dm, {"max_epochs": st.max_epochs}


class Ensemble(SingleFit):
    """The model plus each `ensemble.members` ranker, fitted apart; the result is their `ScoreEnsemble`."""

    def check(self) -> None:
        cfg = self.cfg
        if cfg.get("ckpt_path") or cfg.get("self_training") or not cfg.get("train", True):
            raise ConfigError("ensemble fits every member in this run; it cannot be combined with ckpt_path, self_training or train=false")
        names = sorted(cfg.ensemble.get("members") or {})
        if "model" in names:
            raise ConfigError("ensemble member name 'model' is reserved for the run's model; rename it")
        if unknown := sorted(set(cfg.ensemble.get("trainer") or {}) - set(names)):
            raise ConfigError(f"ensemble.trainer names {unknown}, which are not ensemble members; allowed: {names}")

    def finish(self, datamodule, model: L.LightningModule, trainer: L.Trainer) -> tuple[L.LightningModule, str | None, bool]:
        return ensemble_of(self.cfg, datamodule, model, trainer), None, True

    def ranker(self, datamodule, model: ScoreEnsemble) -> Ranker:
        views = model.views or {}
        parts = [(name, module, self.cfg.model if name == "model" else self.cfg.ensemble.members[name], views.get(name) or datamodule)
                 for name, module in model.members.items()]
        return Ranker.of_fitted(parts, datamodule, (model.score_mean, model.score_std), **provenance(self.cfg))


def provenance(cfg: DictConfig) -> dict:
    """What a saved ranker's `meta` records of the run beside its data: the seed and, if the model's encoder
    started from pretrained weights, the pretext settings (the weights themselves are in the artifact)."""
    pretrain = cfg.get("pretrain")
    return {"seed": int(cfg.seed), **({"pretrain": OmegaConf.to_container(pretrain, resolve=True)} if pretrain else {})}


def mode_of(cfg: DictConfig) -> SingleFit:
    """The checked fit mode of a train.py config."""
    mode = (Ensemble if cfg.get("ensemble") else SelfTraining if cfg.get("self_training") else SingleFit)(cfg)
    mode.check()
    return mode


def ensemble_of(cfg: DictConfig, datamodule, model: L.LightningModule, trainer: L.Trainer) -> ScoreEnsemble:
    """The fitted model (at its best val epoch) plus each `ensemble.members` ranker, fitted one after
    another with its own trainer, output dir (`members/<member>/`, checkpoints included) and best epoch, on its own view
    of the same split (the data config resolved with the member as model: its encodings; the benchmark
    table is shared, not reloaded).  `init_from` starts only the run's model; `pretrain` starts the members too
    with `ensemble.pretrained` (ensemble=twin), which keeps a twin of a pretrained model as strong as it."""
    load_best(trainer, model)
    members, views = {"model": model}, {"model": None}  # the run's model reads the run's batches as they are
    for name, member_model in cfg.ensemble.members.items():
        member_cfg = copy.deepcopy(cfg)
        with open_dict(member_cfg):
            member_cfg.model, member_cfg.init_from = member_model, None
            member_cfg.pretrain = cfg.get("pretrain") if cfg.ensemble.get("pretrained") else None
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
