"""NAR's patch encoder: one token per channel of the ReNAS feature tensor (`batch.tensor`).

The NAR code cuts the C x S x S ReNAS tensor into C patches (19 patches of 7 x 7 on NAS-Bench-101; on
NAS-Bench-201 its 31 x 4 x 4 edge view, `tensors=[renas_edge]`), flattens each into an S² vector and
encodes the C tokens with the post-norm transformer of `TokenTransformer`: a shared linear embedding,
input dropout, the sinusoidal position of the channel, layer norm, then the encoder layers.  A token is
thus the type matrix, or one cell's FLOPs or params matrix; every token is real, so nothing is masked.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nasrank.core import ConfigError
from nasrank.models.transformer import TokenTransformer


class PatchTransformer(TokenTransformer):
    """`TokenTransformer` over the channels of the ReNAS tensor (B, C, S, S) -> (B, C, hidden).

    Args:
        channels, tensor_side: C and S (filled from the datamodule's `data_info` when the data
            attaches a ReNAS tensor).
        hidden, layers, heads, ffn_mult, dropout, positional, norm_first, nar_code_layers: as
            `TokenTransformer` (NAR: 6 layers x 4 heads, FFN 4 x hidden, dropout 0.1, sinusoid, post-norm,
            the NAR code's layers).
    """

    reads = ("renas",)  # batch.tensor, either ReNAS view

    def __init__(self, channels: int | None = None, tensor_side: int | None = None, hidden: int = 256, layers: int = 6,
                 heads: int = 4, ffn_mult: int = 4, dropout: float = 0.1, positional: str = "sinusoid",
                 norm_first: bool = False, nar_code_layers: bool = False) -> None:
        if channels is None or tensor_side is None:
            raise ConfigError("the patch encoder reads batch.tensor: the data must attach it "
                              "(model.tensors=[renas], or [renas_edge] on NB201)")
        super().__init__(token_dim=tensor_side * tensor_side, max_nodes=channels, hidden=hidden, layers=layers,
                         heads=heads, ffn_mult=ffn_mult, dropout=dropout, positional=positional, norm_first=norm_first,
                         nar_code_layers=nar_code_layers)
        self.shape = (channels, tensor_side, tensor_side)

    def forward(self, batch) -> tuple[Tensor, Tensor]:
        x = getattr(batch, "tensor", None)
        if x is None or x.shape[1:] != self.shape:
            raise ConfigError(f"the patch encoder was built for a ReNAS tensor of shape {self.shape}, "
                              f"got {None if x is None else tuple(x.shape[1:])}")
        pad = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        return self.encode(x.flatten(2), pad), pad
