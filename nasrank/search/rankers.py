"""Rankers a search refits on the cells it has queried: any Hydra model config, a table baseline, or
a saved ranker (`ranker.checkpoint=<ranker.pt>` with `ranker.epochs=0`).

All answer the same two calls on architectures, `fit(archs, values)` and `predict(archs)`, so
strategies never know which one they drive, and a user's own search loop can drive them too.  A Lightning ranker is a fresh model per refit (seeded by the refit count, so a run is
reproducible), trained through the datamodule/Lightning path for a few epochs without validation:
in a search every label costs a query, so none is spent on a validation split.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import hydra
import lightning as L
import numpy as np
from omegaconf import DictConfig, OmegaConf

from nasrank import artifact
from nasrank.benchmarks.benchmark import Benchmark
from nasrank.core import ConfigError
from nasrank.encodings.graph import DenseGraphs
from nasrank.models.baselines import BASELINES, torch_threads
from nasrank.models.ranker import score_batches
from nasrank.ranker import Ranker as PublicRanker
from nasrank.search.data import QueriedDataModule
from nasrank.spaces import Arch
from nasrank.training import check_checkpoint, check_state

RANKERS = ("model", *BASELINES)


class Ranker(Protocol):
    """What strategies need from a ranker."""

    name: str
    #: whether `predict(rows, tiers=True)` gives tier probabilities (NAR)
    has_tiers: bool
    #: the benchmark's dense graphs (strategies compute cell costs from them)
    graphs: DenseGraphs
    #: number of `fit` calls so far
    fits: int

    def fit(self, archs: Sequence[Arch], values: np.ndarray) -> None:
        """Fit on these queried cells and their measured values (replacing any earlier fit)."""

    def predict(self, archs: Sequence[Arch], tiers: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores of `archs` (higher = better) and, if `tiers`, their tier probabilities (N, k), tier 0 the best."""

    def follow_predicted_tiers(self) -> None:
        """(Rankers with tiers) NAR's sampling mode: tier embeddings restart from zero and follow the tiers
        predicted for the cells scored from now on, until the next `fit`."""


def rows_of(benchmark: Benchmark, archs: Sequence[Arch]) -> np.ndarray:
    """Benchmark rows of these cells (a ranker trained through a table reads its rows)."""
    return np.fromiter((benchmark.index_of(a) for a in archs), dtype=np.int64, count=len(archs))


class LightningRanker:
    """A `RankerModule` from a Hydra model config, refitted with Lightning on the queried rows.

    Args:
        datamodule: the benchmark's `QueriedDataModule` (built once, reused by every refit).
        model: the Hydra model config (``conf/model/*.yaml``).
        trainer: the Hydra trainer config; logging, checkpointing and validation are switched off.
        epochs: training epochs per refit (0: use `checkpoint` as is, never train).
        seed: seeds every refit (refit i uses seed * 1000 + i).
        checkpoint: weights every refit starts from: a train.py run dir or its ranker.pt (a saved
            ranker of one model), or a Lightning .ckpt; checked against this benchmark's model before
            the search spends any query.
        threads: torch threads while fitting and scoring (None: unchanged).  Refits are small, so
            one thread is the default: on 2 busy cores, 2 threads made a ReNAS refit 6x slower.
    """

    def __init__(self, datamodule: QueriedDataModule, model: DictConfig, trainer: DictConfig, epochs: int, seed: int,
                 checkpoint: str | None = None, threads: int | None = 1) -> None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ConfigError(f"ranker.epochs={epochs!r}; allowed: an integer ≥ 0 (0 only with ranker.checkpoint)")
        if epochs == 0 and not checkpoint:
            raise ConfigError("ranker.epochs=0 never trains the ranker: give ranker.checkpoint=<file> or epochs ≥ 1")
        self.dm, self.model_cfg, self.trainer_cfg = datamodule, model, trainer
        self.epochs, self.seed, self.fits, self.threads = epochs, seed, 0, threads
        self.name = str(model.get("_target_", "model")).rsplit(".", 1)[-1]
        self.model = self._new_model()
        self.has_tiers = hasattr(self.model, "outputs")
        self.state = starting_weights(checkpoint, self.model) if checkpoint else None

    @property
    def graphs(self) -> DenseGraphs:
        return self.dm.graphs

    def _new_model(self) -> L.LightningModule:
        return hydra.utils.instantiate(self.model_cfg, data_info=self.dm.data_info())

    def fit(self, archs: Sequence[Arch], values: np.ndarray) -> None:
        self.dm.set_train_rows(rows_of(self.dm.benchmark, archs), values)
        L.seed_everything(self.seed * 1000 + self.fits, workers=True, verbose=False)
        self.fits += 1
        self.model = self._new_model()
        if self.state is not None:
            self.model.load_state_dict(self.state)
        if self.epochs == 0:
            return
        with quiet_lightning(), torch_threads(self.threads):
            trainer = hydra.utils.instantiate(self.trainer_cfg, max_epochs=self.epochs, min_epochs=None, logger=False, callbacks=[],
                                              enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                              limit_val_batches=0, num_sanity_val_steps=0)
            trainer.fit(self.model, datamodule=self.dm)

    def follow_predicted_tiers(self) -> None:
        self.model.follow_predicted_tiers()

    def predict(self, archs: Sequence[Arch], tiers: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        if tiers and not self.has_tiers:
            raise ConfigError(f"{self.name} gives no tier probabilities; use a NAR model (model=nar)")
        with torch_threads(self.threads):
            return score_batches(self.model, self.dm.rows_loader(rows_of(self.dm.benchmark, archs)), tiers)


def is_artifact(path: str) -> bool:
    """A saved ranker (a run dir or a .pt file) rather than a Lightning .ckpt."""
    return Path(path).is_dir() or Path(path).suffix == ".pt"


def starting_weights(checkpoint: str, model: L.LightningModule) -> dict:
    """The weights in `checkpoint` (see `LightningRanker`), refused with one line unless they fit `model`."""
    if not is_artifact(checkpoint):
        return check_checkpoint(checkpoint, model)
    saved = artifact.read(checkpoint)
    if len(saved["members"]) != 1:
        raise ConfigError(f"ranker.checkpoint {checkpoint} is an ensemble of {len(saved['members'])} models: it can "
                          "only be used as it is (ranker.epochs=0), not as starting weights")
    return check_state(saved["members"][0]["state_dict"], model, f"ranker.checkpoint {checkpoint}")


class SavedRanker:
    """A saved `nasrank.Ranker` used as it is (`ranker.checkpoint=<ranker.pt>`, `ranker.epochs=0`):
    `fit` only counts, so every query the search spends is ranked by the same model."""

    has_tiers = False

    def __init__(self, path: str, datamodule: QueriedDataModule) -> None:
        self.saved, self.dm, self.fits = PublicRanker.load(path), datamodule, 0
        self.name = "saved:" + "+".join(self.saved.meta.get("members", ["model"]))
        if self.saved.space.name != datamodule.benchmark.space.name:
            raise ConfigError(f"ranker.checkpoint {path} ranks {self.saved.space.name} cells; this search runs on "
                              f"{datamodule.benchmark.name} ({datamodule.benchmark.space.name}): use a ranker of that space")

    @property
    def graphs(self) -> DenseGraphs:
        return self.dm.graphs

    def fit(self, archs: Sequence[Arch], values: np.ndarray) -> None:
        self.fits += 1

    def predict(self, archs: Sequence[Arch], tiers: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        if tiers:
            raise ConfigError("a saved ranker used as it is gives no tier probabilities; drop ranker.epochs=0 to refit a NAR model")
        return self.saved.score(archs), None


class BaselineRanker:
    """A table baseline of `nasrank.models.baselines` (MLP ensemble, LightGBM) behind the same calls."""

    has_tiers = False

    def __init__(self, name: str, datamodule: QueriedDataModule, seed: int, **options) -> None:
        self.name, self.fits, self.dm = name, 0, datamodule
        self.model = BASELINES[name](datamodule.benchmark, datamodule.hparams.target, seed=seed, graphs=datamodule.encoded_graphs, **options)

    @property
    def graphs(self) -> DenseGraphs:
        return self.dm.graphs

    def fit(self, archs: Sequence[Arch], values: np.ndarray) -> None:
        self.fits += 1
        self.model.fit(rows_of(self.dm.benchmark, archs), values)

    def predict(self, archs: Sequence[Arch], tiers: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        if tiers:
            raise ConfigError(f"the {self.name} baseline gives no tier probabilities; use ranker.name=model with model=nar")
        return self.model.score(rows_of(self.dm.benchmark, archs)), None


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-fit banners and dataloader hints: a search refits dozens of times."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"lightning\.")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def build_ranker(cfg: DictConfig, datamodule: QueriedDataModule) -> Ranker:
    """The ranker `cfg.ranker` names: ``model`` (cfg.model through Lightning) or a table baseline."""
    name = cfg.ranker.name
    if name not in RANKERS:
        raise ConfigError(f"unknown ranker.name {name!r}; allowed: {', '.join(RANKERS)}")
    checkpoint = cfg.ranker.get("checkpoint")
    if name == "model" and checkpoint and cfg.ranker.epochs == 0 and is_artifact(checkpoint):
        return SavedRanker(checkpoint, datamodule)
    if name == "model":
        return LightningRanker(datamodule, cfg.model, cfg.trainer, cfg.ranker.epochs, cfg.seed, cfg.ranker.get("checkpoint"),
                               cfg.ranker.get("threads", 1))
    options = OmegaConf.to_container(cfg.ranker.baseline, resolve=True) if cfg.ranker.get("baseline") else {}
    thread_option = "n_jobs" if name == "gbdt" else "threads"
    options.setdefault(thread_option, cfg.ranker.get("threads", 1))
    return BaselineRanker(name, datamodule, cfg.seed, **options)
