"""`RankerModule`: what every ranking LightningModule shares.

Subclasses only define `forward(batch) -> scores` (higher = better) and, if needed, `training_loss`.
Validation and test metrics are computed once per epoch over the whole split (gathered across
ranks), never averaged over batches; the logged names (`val/ktau`, `test/ktau`, `test/p@10`, …) are
the same for every model so sweeps and dashboards compare them directly.
"""

from __future__ import annotations

import inspect
from typing import Callable, Iterable, Sequence

import lightning as L
import numpy as np
import torch
from torch import nn

from nasrank.core import ConfigError
from nasrank.metrics import DEFAULT_KS, RankingMetrics


class RankerModule(L.LightningModule):
    """Base class: loss on standardised targets, whole-split ranking metrics, optimiser from config.

    Args:
        loss: a ranking/regression loss module (`nasrank.models.losses`).
        optimizer: partial optimiser (Hydra `_partial_`), called with the parameters.
        scheduler: optional partial LR scheduler.  One with an unset ``T_max`` argument (`CosineAnnealingLR`) is
            given the run's length, so a cosine decay ends where `trainer.max_epochs` does whatever the data size.
        scheduler_interval: step the scheduler every optimisation ``step`` (``T_max`` = total steps) or
            every ``epoch`` (``T_max`` = `trainer.max_epochs`).
        eval_targets: names of the datamodule's extra targets (`batch.y_extra` columns) to rank too.
        canonical_iso: the model's data encodes isomorphic cells identically; the data config reads it
            from the model config (`data.canonical_iso`), and it is kept here so a checkpoint says so.
    """

    def __init__(self, loss: nn.Module, optimizer: Callable, scheduler: Callable | None = None,
                 eval_targets: Sequence[str] = (), ks: Sequence[int] = DEFAULT_KS, canonical_iso: bool = False,
                 scheduler_interval: str = "step") -> None:
        super().__init__()
        if scheduler_interval not in ("step", "epoch"):
            raise ConfigError(f"unknown scheduler_interval {scheduler_interval!r}; allowed: step, epoch")
        self.scheduler_interval = scheduler_interval
        #: read by the data config (`data.canonical_iso`): the model was trained on canonical encodings
        self.canonical_iso = canonical_iso
        self.loss_fn = loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.eval_targets = list(eval_targets)
        self.val_metrics = RankingMetrics(tuple(ks))
        self.test_metrics = RankingMetrics(tuple(ks))
        self.transfer_metrics = nn.ModuleList(RankingMetrics(tuple(ks)) for _ in self.eval_targets)
        self.last_test: dict[str, float] = {}
        #: (idx, preds, target) of the last test split, for plots (set on the process that computes metrics)
        self.test_predictions: tuple | None = None

    #: extra training values (`training_loss`) whose epoch value is the unweighted mean over batches
    #: rather than Lightning's batch-size-weighted one
    per_batch_means: frozenset[str] = frozenset()

    def forward(self, batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def training_loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss and extra values to log; the default ranks/regresses `forward` against `y_norm`."""
        return self.loss_fn(self(batch), batch.y_norm), {}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, extra = self.training_loss(batch)
        n = batch.num_graphs
        self.log("train/loss", loss, batch_size=n, on_step=False, on_epoch=True, prog_bar=True)
        for name, value in extra.items():
            self.log(f"train/{name}", value, batch_size=1 if name in self.per_batch_means else n, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.val_metrics.update(self(batch), batch.y, batch.idx)

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        self.log("val/ktau", values["ktau"], prog_bar=True)
        self.log("val/spearman", values["spearman"])

    def test_step(self, batch, batch_idx: int) -> None:
        scores = self(batch)
        self.test_metrics.update(scores, batch.y, batch.idx)
        for k, metric in enumerate(self.transfer_metrics):
            metric.update(scores, batch.y_extra[:, k], batch.idx)

    def on_test_epoch_end(self) -> None:
        results = {f"test/{k}": v for k, v in self.test_metrics.compute().items()}
        self.test_predictions = tuple(t.numpy() for t in self.test_metrics.last_gathered)
        for name, metric in zip(self.eval_targets, self.transfer_metrics):
            results.update({f"transfer/{name}/{k}": v for k, v in metric.compute().items()})
            metric.reset()
        self.test_metrics.reset()
        self.log_dict(results)
        self.last_test = results

    def predict_step(self, batch, batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return batch.idx, self(batch)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        horizon = inspect.signature(self.scheduler_factory).parameters.get("T_max")
        if horizon is not None and horizon.default is inspect.Parameter.empty:
            per_step = self.scheduler_interval == "step"
            kwargs["T_max"] = max(int(self.trainer.estimated_stepping_batches if per_step else self.trainer.max_epochs), 1)
        scheduler = self.scheduler_factory(optimizer=optimizer, **kwargs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}


@torch.inference_mode()
def score_batches(model: nn.Module, batches: Iterable, tiers: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The one scoring loop: a model's scores (float64, higher = better) of every batch, in order, and
    with `tiers` (NAR) its tier probabilities (N, k), tier 0 the best; the model is left in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    scores, probs = [], []
    for batch in batches:
        batch = batch.to(device)
        if tiers:
            out = model.outputs(batch)
            scores.append(out.scores.flatten().cpu())
            probs.append(out.tier_probs.cpu())
        else:
            scores.append(model(batch).flatten().cpu())
    as_np = lambda parts: torch.cat(parts).double().numpy() if parts else np.empty(0)  # noqa: E731
    return as_np(scores), as_np(probs) if tiers else None
