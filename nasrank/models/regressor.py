"""Baseline predictor: a graph or flat encoder with a scalar head (MSE by default, any loss by config)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from nasrank.models import encoders
from nasrank.models.ranker import RankerModule


class RegressorModule(RankerModule):
    """Encoder (GIN or flat MLP over the PyG encoding) + linear head scoring each architecture."""

    def __init__(self, encoder: Callable[..., nn.Module], data_info: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoder = encoders.build(encoder, data_info)
        self.head = nn.Linear(self.encoder.out_dim, 1)

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.encoder(batch)).squeeze(-1)
