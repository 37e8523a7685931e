"""Pretraining an encoder on the unlabeled cells of a space: it learns to predict each cell's pretext
targets (`nasrank.pretrain.targets`) from its embedding, so a ranker fine-tuned from it starts from an
encoder that already tells cells apart by size, live ops and wiring, which a few dozen labels cannot teach.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from nasrank.core import ConfigError, check_at_least
from nasrank.encodings.archs import EncodedArchs, EncodingSpec
from nasrank.encodings.graph import dense_graphs
from nasrank.models import encoders
from nasrank.pretrain.targets import TARGETS, pretext_targets
from nasrank.spaces import get_space

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretextSettings:
    """What a pretraining run does (`conf/pretrain/`); every field is part of the cache key.

    Args:
        targets: names of `nasrank.pretrain.targets.TARGETS`, predicted together.
        cells: at most this many cells of the space, drawn uniformly without replacement (seeded);
            a space with fewer cells (NB201: 15,625) is used whole.
        epochs, batch_size, lr: Adam on the mean squared error of the standardised targets.
        seed: seed of the cell draw, the initial weights and the batch order.
    """

    targets: tuple[str, ...] = ("cost", "op_counts", "depth", "paths")
    cells: int = 20000
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if not self.targets or any(t not in TARGETS for t in self.targets):
            raise ConfigError(f"pretrain.targets={list(self.targets)}; allowed: a non-empty list of {', '.join(TARGETS)}")
        check_at_least("pretrain", 1, cells=self.cells, epochs=self.epochs, batch_size=self.batch_size)
        check_at_least("pretrain", 0, seed=self.seed)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ConfigError(f"pretrain.lr={self.lr!r}; allowed: a number > 0")

    def to_dict(self) -> dict:
        return {**asdict(self), "targets": list(self.targets)}


def pretext_cells(spec: EncodingSpec, settings: PretextSettings) -> EncodedArchs:
    """The cells pretraining reads, encoded as `spec` says but each as itself (a canonical encoding maps
    cells onto a table's representatives, and pretraining has no table)."""
    space = get_space(spec.space)
    cells = list(space.enumerate())
    if len(cells) > settings.cells:
        rows = np.sort(np.random.default_rng(settings.seed).choice(len(cells), settings.cells, replace=False))
        cells = [cells[i] for i in rows]
    return EncodedArchs(dense_graphs(cells, space), replace(spec, canonical_iso=False))


def check_pretrainable(encoder: nn.Module | None, owner: str) -> None:
    """Refuse encoders the pretext head cannot sit on: it reads one vector per cell, from weights that must
    mean the same after loading (the ReNAS CNN standardises its input on the labelled split only later).
    `owner` names what the user chose (the model, or the encoder) in the error."""
    allowed = "allowed: model=regressor or its presets (renas_flow, renas_gin, renas_dgin) with model/encoder=flow, gin, dgin or mlp"
    if encoder is None or hasattr(encoder, "num_tokens"):
        raise ConfigError(f"pretrain needs a model with one encoder that returns a vector per cell, got {owner}; {allowed}")
    if getattr(encoder, "standardize", False):
        raise ConfigError(f"pretrain cannot start the ReNAS CNN (it standardises its input on the labelled split after "
                          f"the weights are loaded); {allowed}")


def pretrain(factory: Callable[..., nn.Module], data_info: dict, spec: EncodingSpec,
             settings: PretextSettings) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """Fit a fresh encoder (plus a linear head, thrown away) to the pretext targets of the space's cells.

    Returns the encoder's state dict and statistics: `loss` (mean training loss per epoch), `cpu_s`
    (process CPU seconds of the whole pretraining, targets included), `cells`, `targets_dim`.
    """
    start = time.process_time()
    # Built and checked before the targets, which cost most of a refused run; the targets draw no torch
    # random numbers, so the order leaves the weights as they are.
    torch.manual_seed(settings.seed)
    encoder = factory(**encoders.sizes(factory, data_info))  # the bare encoder: zero-cost inputs join after pretraining
    check_pretrainable(encoder, type(encoder).__name__)
    cells = pretext_cells(spec, settings)
    targets = pretext_targets(settings.targets, cells.graphs, cells.space, spec.cost_dataset)
    std = targets.std(0)
    y = torch.from_numpy((targets - targets.mean(0)) / np.where(std > 0, std, 1.0)).float()
    head = nn.Linear(encoder.out_dim, y.shape[1])
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=settings.lr)
    encoder.train()
    losses = []
    for epoch in range(settings.epochs):
        order = np.random.default_rng([settings.seed, epoch]).permutation(len(cells))
        total = 0.0
        for first in range(0, len(order), settings.batch_size):
            rows = order[first:first + settings.batch_size]
            loss = nn.functional.mse_loss(head(encoder(cells.collate(rows))), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(order))
        log.info("pretrain epoch %d/%d: loss %.4f (%.0f s CPU)", epoch + 1, settings.epochs, losses[-1], time.process_time() - start)
    stats = {"loss": np.asarray(losses), "cpu_s": np.asarray([time.process_time() - start]),
             "cells": np.asarray([len(cells)]), "targets_dim": np.asarray([y.shape[1]])}
    return {k: v.detach().clone() for k, v in encoder.state_dict().items()}, stats
