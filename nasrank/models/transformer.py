"""Transformer encoder over NAR node tokens (`batch.tokens`, `batch.token_mask`).

NAR (Guo et al.) cuts an architecture into patches and encodes them with a post-norm transformer
(input dropout, positional encoding, layer norm, then standard encoder layers).  Here a patch is a
node token from `nasrank.encodings.tensor.nar_tokens` (op one-hot, adjacency row and column,
per-cell FLOPs/params), so one encoder serves every space.  Padding nodes are masked out of
attention and zeroed in the output: a cell's encoding never depends on what fills its padding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nasrank.core import ConfigError

POSITIONAL = ("sinusoid", "learned", "none")


def as_nar_code_layer(layer: nn.Module, dim: int, heads: int, dropout: float) -> nn.Module:
    """Make a PyTorch transformer encoder/decoder layer compute what the NAR code's layers compute:
    attention projections without biases, no dropout between the feed-forward's two linears (only
    after them), layer norms with eps 1e-6.  The attention-probability and residual dropouts are the
    same in both.  Returns `layer`, changed in place."""
    for name in ("self_attn", "multihead_attn"):
        if hasattr(layer, name):
            setattr(layer, name, nn.MultiheadAttention(dim, heads, dropout=dropout, bias=False, batch_first=True))
    layer.dropout = nn.Identity()
    for module in layer.modules():
        if isinstance(module, nn.LayerNorm):
            module.eps = 1e-6
    return layer


def sinusoid_table(length: int, dim: int) -> Tensor:
    """The fixed (length, dim) sin/cos table of "Attention is all you need" (NAR's choice)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * (torch.arange(dim) // 2 * 2).float() / dim)
    angles = pos * freq
    return torch.where(torch.arange(dim) % 2 == 0, torch.sin(angles), torch.cos(angles))


class TokenTransformer(nn.Module):
    """Post-norm transformer encoder returning one embedding per node token.

    Token i's adjacency features refer to other nodes by position, so a positional encoding is what
    lets attention resolve "i feeds j"; `positional="none"` makes the encoder a set function
    (equivariant to any token permutation), which is what the permutation tests check.

    Args:
        token_dim, max_nodes: token size and sequence length (filled from the datamodule's `data_info`).
        hidden: model width (d_model); layers: encoder layers; heads: attention heads;
        ffn_mult: feed-forward width / hidden (NAR: 4); dropout: everywhere, as in NAR;
        positional: "sinusoid" (NAR), "learned" or "none".
        norm_first: pre-norm layers (NAR: post-norm, False); pre-norm trains more easily from few samples.
        nar_code_layers: layers exactly as the NAR code's (see `as_nar_code_layer`); PyTorch's own
            layers add attention biases and a feed-forward dropout.
    """

    reads = ("nar",)  # batch.tokens

    def __init__(self, token_dim: int, max_nodes: int, hidden: int = 256, layers: int = 6, heads: int = 4,
                 ffn_mult: int = 4, dropout: float = 0.1, positional: str = "sinusoid", norm_first: bool = False,
                 nar_code_layers: bool = False) -> None:
        super().__init__()
        if positional not in POSITIONAL:
            raise ConfigError(f"positional={positional!r}; allowed: {', '.join(POSITIONAL)}")
        if hidden % heads:
            raise ConfigError(f"encoder hidden={hidden} must be divisible by heads={heads}")
        self.num_tokens, self.out_dim = max_nodes, hidden
        self.proj = nn.Linear(token_dim, hidden)
        table = sinusoid_table(max_nodes, hidden) if positional == "sinusoid" else torch.zeros(max_nodes, hidden)
        self.positions = nn.Parameter(table, requires_grad=positional == "learned")
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=1e-6)
        layer = nn.TransformerEncoderLayer(hidden, heads, ffn_mult * hidden, dropout, batch_first=True, norm_first=norm_first)
        if nar_code_layers:
            layer = as_nar_code_layer(layer, hidden, heads, dropout)
        # nested tensors would change the padded outputs between train and eval; they are zeroed anyway
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def encode(self, tokens: Tensor, pad: Tensor) -> Tensor:
        """(B, M, F) tokens and (B, M) padding mask (True = padding) -> (B, M, hidden), zero on padding."""
        h = self.norm(self.dropout(self.proj(tokens)) + self.positions)
        h = self.layers(h, src_key_padding_mask=pad)
        return h.masked_fill(pad[..., None], 0.0)

    def forward(self, batch) -> tuple[Tensor, Tensor]:
        return self.encode(batch.tokens, batch.token_mask), batch.token_mask
