"""NAR's tier side: tier embeddings (running means of encoder outputs) and the tier decoder.

A tier embedding is the mean encoder output of the training architectures of that tier, kept per
token position (NAR keeps one (patches, d_model) "bucket" per tier).  The means are buffers, not
parameters: they are refreshed from the data, never by gradients, and checkpoints carry them, so a
reloaded ranker classifies tiers exactly as the trained one did.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from nasrank.core import ConfigError
from nasrank.models.transformer import as_nar_code_layer, sinusoid_table

QUERIES = ("tiers", "arch")


class TierMemory(nn.Module):
    """Per-tier, per-position running means of encoder outputs.

    NAR restarts the means at every training epoch (the encoder has moved since), accumulating over
    the epoch's batches.  `reset(zero=False)` keeps last epoch's mean of a tier until the tier is seen
    in the new epoch, so no batch after the first epoch sees all-zero tiers; the NAR code builds new,
    all-zero buckets each epoch (`reset(zero=True)`).

    `follow()` is the inference mode of NAR's sampler: the memory restarts from all-zero embeddings and
    (`following`) the network adds every batch it scores under the tiers it predicts for it, so each
    batch is matched against the means of the batches scored before it (the NAR code's fresh sampling
    buckets, ``classify_enc_emb_by_pred``).
    """

    def __init__(self, num_tiers: int, length: int, dim: int) -> None:
        super().__init__()
        if num_tiers < 1:
            raise ConfigError(f"num_tiers={num_tiers}; allowed: ≥ 1")
        self.register_buffer("emb", torch.zeros(num_tiers, length, dim))
        self.register_buffer("total", torch.zeros(num_tiers, length, dim))
        self.register_buffer("count", torch.zeros(num_tiers, length))
        #: set by `follow`: scored batches update the means under their predicted tiers
        self.following = False

    @property
    def num_tiers(self) -> int:
        return self.emb.shape[0]

    def reset(self, zero: bool = False) -> None:
        """Start a new epoch's means; the current embeddings stay until replaced unless `zero`."""
        self.total.zero_()
        self.count.zero_()
        if zero:
            self.emb = torch.zeros_like(self.emb)

    def follow(self) -> None:
        """Restart from all-zero embeddings and follow the predicted tiers of the batches scored from now on."""
        self.reset(zero=True)
        self.following = True

    @torch.no_grad()
    def update(self, h: Tensor, pad: Tensor, tier: Tensor, reduce: Callable[[Tensor], Tensor] | None = None) -> None:
        """Add (B, L, D) encoder outputs of tiers (B,) to the means; padding positions are skipped.

        `reduce` sums the batch statistics across processes (DDP), so every rank keeps the same means.
        """
        if tier.numel() and (int(tier.min()) < 0 or int(tier.max()) >= self.num_tiers):
            raise ConfigError(f"tier labels must be in 0..{self.num_tiers - 1}, got {int(tier.min())}..{int(tier.max())}; "
                              "the model's num_tiers must match the datamodule's")
        keep = (~pad).to(h.dtype)
        total = torch.zeros_like(self.total).index_add_(0, tier, h.detach() * keep[..., None])
        count = torch.zeros_like(self.count).index_add_(0, tier, keep)
        if reduce is not None:
            total, count = reduce(total), reduce(count)
        self.total += total
        self.count += count
        seen = self.count > 0
        # a new tensor, not an in-place write: this batch's tier logits still need the old one for backward
        self.emb = torch.where(seen[..., None], self.total / self.count.clamp(min=1.0)[..., None], self.emb)


class TierDecoder(nn.Module):
    """Matches an architecture encoding against the k tier embeddings with a transformer decoder.

    query="tiers" is NAR's public code: each tier's (L, D) embedding is a target sequence that
    attends to the architecture's tokens, and the k decoder outputs are added, so the decoder runs
    on B·k sequences.  query="arch" is the cheaper reading of the paper's description: the
    architecture's tokens attend to all k·L tier tokens (tagged with a learned tier identity, since
    attention alone cannot tell which tier a token came from), one sequence per architecture.
    Both return (B, L, D).  `positional` adds the sinusoidal position of each token to the projected
    tier embeddings, as the NAR code's decoder does with its queries; `nar_code_layers` makes the
    layers the NAR code's (`nasrank.models.transformer.as_nar_code_layer`).
    """

    def __init__(self, dim: int, num_tiers: int, layers: int = 6, heads: int = 4, ffn_mult: int = 4,
                 dropout: float = 0.1, query: str = "tiers", positional: bool = False, nar_code_layers: bool = False) -> None:
        super().__init__()
        if query not in QUERIES:
            raise ConfigError(f"decoder query={query!r}; allowed: {', '.join(QUERIES)}")
        if dim % heads:
            raise ConfigError(f"decoder width {dim} (the encoder's out_dim) must be divisible by decoder_heads={heads}")
        self.query, self.positional = query, positional
        self.proj = nn.Linear(dim, dim)
        self.tier_ids = nn.Parameter(torch.zeros(num_tiers, 1, dim)) if query == "arch" else None
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        layer = nn.TransformerDecoderLayer(dim, heads, ffn_mult * dim, dropout, batch_first=True)
        if nar_code_layers:
            layer = as_nar_code_layer(layer, dim, heads, dropout)
        self.layers = nn.TransformerDecoder(layer, layers)

    def forward(self, tiers: Tensor, h: Tensor, pad: Tensor) -> Tensor:
        """tiers (k, L, D); architecture tokens h (B, L, D) with padding mask (B, L) -> (B, L, D)."""
        k, b = tiers.shape[0], h.shape[0]
        t = self.dropout(self.proj(tiers))
        if self.positional:
            t = t + sinusoid_table(t.shape[1], t.shape[2]).to(t)
        t = self.norm(t)
        if self.tier_ids is not None:
            memory = (t + self.tier_ids).flatten(0, 1)[None].expand(b, -1, -1)
            return self.layers(h, memory, tgt_key_padding_mask=pad)
        query = t[None].expand(b, -1, -1, -1).reshape(b * k, *tiers.shape[1:])
        out = self.layers(query, h.repeat_interleave(k, 0), memory_key_padding_mask=pad.repeat_interleave(k, 0))
        return out.view(b, k, *out.shape[1:]).sum(1)
