"""Baseline predictor: a graph or flat encoder with a scalar head (MSE by default, any loss by config)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from nasrank.core import ConfigError
from nasrank.models import encoders
from nasrank.models.ranker import RankerModule


class RegressorModule(RankerModule):
    """Encoder (GIN, flat MLP, ReNAS CNN) + linear head scoring each architecture.

    Args:
        encoder: partial encoder factory returning one vector per cell (`conf/model/encoder/`).
        data_info: the datamodule's sizes.
        tensors: the encodings the data attaches (`model.tensors`), checked against what the encoder reads
            (None: unchecked).
        **kwargs: loss, optimizer, scheduler, ... of `RankerModule`.
    """

    def __init__(self, encoder: Callable[..., nn.Module], data_info: dict, tensors: Sequence[str] | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        encoders.check_reads(encoder, tensors)
        self.encoder = encoders.build(encoder, data_info)
        if hasattr(self.encoder, "num_tokens"):
            raise ConfigError(f"{type(self.encoder).__name__} returns one embedding per node, which only NAR reads "
                              "(model=nar); allowed here: model/encoder=gin, dgin, mlp or renas_cnn")
        self.head = nn.Linear(self.encoder.out_dim, 1)

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.encoder(batch)).squeeze(-1)

    def on_fit_start(self) -> None:
        """Fit the encoder's input standardisation (the ReNAS CNN's) on the whole training split
        (every rank reads the full split from the datamodule, so all ranks agree without communication)."""
        if not getattr(self.encoder, "standardize", False):
            return
        datamodule = self.trainer.datamodule
        if datamodule is None:
            raise ConfigError("ReNAS input standardisation needs a datamodule; pass one to fit() "
                              "or set model.encoder.standardize=false")
        tensors = torch.cat([batch.tensor for batch in datamodule.train_dataloader()])
        self.encoder.fit_inputs(tensors.to(self.device))
