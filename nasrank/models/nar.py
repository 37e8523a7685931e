"""NAR, the Neural Architecture Ranker (Guo et al., 2022) as a `RankerModule`.

An encoder (the node-token transformer of the paper, or any graph encoder) embeds each architecture;
tier embeddings (running means of the embeddings of each quality tier) query that embedding through
a decoder and a tier head classifies the architecture into k tiers; a score head gives the scalar
used for ranking.  Training minimises tier cross-entropy + λ × a ranking loss on the score head.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from nasrank.core import ConfigError
from nasrank.models import encoders
from nasrank.models.ranker import RankerModule
from nasrank.models.tiers import TierDecoder, TierMemory

log = logging.getLogger(__name__)
READOUTS = ("flatten", "mean")


class NoamWarmup:
    """`LambdaLR` factor of the transformer ("Noam") schedule, normalised to peak at 1.

    NAR's rate is lr_mul · d_model^-0.5 · min(s^-0.5, s · w^-1.5) at step s ≥ 1: linear warm-up for
    w steps, then decay as 1/√s.  Dividing by its peak (lr_mul · (d_model · w)^-0.5, reached at s = w)
    lets the optimiser's `lr` be the peak rate, so the schedule does not depend on the model width.
    `decay_power` generalises the decay to (w/s)^power: 0.5 is NAR's, 0 keeps the peak rate after
    warm-up (a few hundred steps are too few for NAR's decay on small training sets).
    """

    def __init__(self, warmup_steps: int, decay_power: float = 0.5) -> None:
        if warmup_steps < 1:
            raise ConfigError(f"warmup_steps={warmup_steps}; allowed: ≥ 1")
        if decay_power < 0:
            raise ConfigError(f"decay_power={decay_power}; allowed: ≥ 0 (0.5 = NAR, 0 = constant after warm-up)")
        self.warmup_steps, self.decay_power = warmup_steps, decay_power

    def __call__(self, step: int) -> float:
        s, w = step + 1, self.warmup_steps  # LambdaLR counts from 0, NAR from 1
        return min(s / w, (w / s) ** self.decay_power)


class TierRankLoss(nn.Module):
    """NAR's objective: tier_weight · CE(tier logits, tiers) + rank_weight · rank(scores, targets).

    `rank` is any (scores, targets) loss of `nasrank.models.losses` (NAR: pairwise logistic, with
    rank_weight 9 on NB101 and 1 on NB201).
    """

    def __init__(self, rank: nn.Module, rank_weight: float = 1.0, tier_weight: float = 1.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if rank_weight < 0 or tier_weight < 0 or rank_weight + tier_weight == 0:
            raise ConfigError(f"loss weights rank_weight={rank_weight}, tier_weight={tier_weight}; allowed: ≥ 0, not both 0")
        self.rank, self.rank_weight, self.tier_weight = rank, rank_weight, tier_weight
        self.label_smoothing = label_smoothing

    def forward(self, tier_logits: Tensor, tiers: Tensor, scores: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        ce = F.cross_entropy(tier_logits, tiers, label_smoothing=self.label_smoothing)
        rank = self.rank(scores, target)
        return self.tier_weight * ce + self.rank_weight * rank, {"tier_ce": ce.detach(), "rank_loss": rank.detach()}


class NAROutputs(NamedTuple):
    """Everything NAR says about a batch: scores (B,) (higher = better), tier probabilities (B, k)
    (tier 0 = best) and the embedding (B, D · members) the heads read."""

    scores: Tensor
    tier_probs: Tensor
    embedding: Tensor

    @property
    def top_tier_prob(self) -> Tensor:
        """Probability of the best tier (B,), what NAR's tier sampler draws from."""
        return self.tier_probs[:, 0]


class NARNet(nn.Module):
    """One NAR network: encoder, tier memory + decoder + tier head, score head (see `NARModule`)."""

    def __init__(self, encoder: nn.Module, num_tiers: int, decoder_layers: int, decoder_heads: int, decoder_query: str,
                 tier_hidden: int, score_hidden: int, readout: str, scale_logits: bool, dropout: float,
                 decoder_positional: bool = False, tier_head_bias: bool = True, nar_code_layers: bool = False) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ConfigError(f"readout={readout!r}; allowed: {', '.join(READOUTS)}")
        self.encoder = encoder
        dim, length = encoder.out_dim, getattr(encoder, "num_tokens", 1)
        self.readout, self.logit_scale = readout, dim ** -0.5 if scale_logits else 1.0
        self.tiers = TierMemory(num_tiers, length, dim)
        self.decoder = TierDecoder(dim, num_tiers, decoder_layers, decoder_heads, dropout=dropout, query=decoder_query,
                                   positional=decoder_positional, nar_code_layers=nar_code_layers) if decoder_layers else None
        read_dim = dim * length if readout == "flatten" else dim
        self.tier_head = encoders.mlp([read_dim, tier_hidden, num_tiers])
        if not tier_head_bias:  # the NAR code's tier projection has no bias in its hidden layer
            self.tier_head[0] = nn.Linear(read_dim, tier_hidden, bias=False)
        self.score_head = encoders.mlp([read_dim, score_hidden, 1])

    def encode(self, batch) -> tuple[Tensor, Tensor]:
        """(B, L, D) token embeddings (zero on padding) and the (B, L) padding mask."""
        out = self.encoder(batch)
        if isinstance(out, tuple):
            return out
        return out[:, None], torch.zeros(out.shape[0], 1, dtype=torch.bool, device=out.device)

    def pool(self, h: Tensor, pad: Tensor) -> Tensor:
        if self.readout == "flatten":
            return h.flatten(1)
        keep = (~pad).to(h.dtype)[..., None]
        return (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)

    def tier_logits(self, h: Tensor, pad: Tensor) -> Tensor:
        matched = self.decoder(self.tiers.emb, h, pad).masked_fill(pad[..., None], 0.0) if self.decoder else h
        logits = self.tier_head(self.pool(matched, pad)) * self.logit_scale
        if self.tiers.following and not self.training:
            self.tiers.update(h, pad, logits.argmax(-1))
        return logits

    def score(self, h: Tensor, pad: Tensor) -> Tensor:
        return self.score_head(self.pool(h, pad)).squeeze(-1)


class NARModule(RankerModule):
    """NAR ranker: an ensemble of `members` independently initialised `NARNet`s (NAR: 1) per encoder.

    Members see the same batches and are averaged (scores, tier probabilities); each keeps its own
    tier embeddings, since every encoder embeds architectures in its own space.  `extra_encoders`
    mixes encoder families (e.g. the token transformer and a GIN): their errors are less correlated
    than those of re-seeded copies of one encoder, so their average can rank better (benchmarks/ranking.py's `nar_mixed`).

    Args:
        encoder: Hydra partial of the encoder.  Token encoders (`TokenTransformer`) return
            ((B, L, D) token embeddings, (B, L) padding mask); graph encoders (`GINEncoder`, ...)
            return (B, D), treated as a single token.
        data_info: the datamodule's sizes (`num_tiers`, `token_dim`, `max_nodes`, `in_dim`, ...).
        tensors: the encodings the data config attaches (`model.tensors`), checked against what the encoders read
            (None: unchecked).
        members: ensemble size per encoder.
        extra_encoders: more encoder partials by name (Hydra: a mapping), each adding `members` nets
            with their own heads next to those of `encoder`.
        decoder_layers, decoder_heads, decoder_query: the tier decoder (see `TierDecoder`; 0 layers:
            the tier head reads the encoding and the tier embeddings are unused).
        tier_hidden, score_hidden: hidden widths of the tier and score MLP heads.
        readout: how the heads see the L token embeddings: "flatten" (NAR: concatenated in node
            order, padding zero) or "mean" (masked mean over real nodes).
        scale_logits: multiply tier logits by D^-0.5 (NAR's `scale_prj`).
        dropout: dropout of the decoder.
        rank_weight, tier_weight, label_smoothing: NAR's objective, tier_weight · CE(tiers) +
            rank_weight · `loss`(scores) (λ = rank_weight: 9 on NB101, 1 on NB201 in the paper).
        decoder_positional: add sinusoidal positions to the decoder's tier queries (the NAR code does).
        nar_code_layers: decoder layers exactly as the NAR code's (`TierDecoder`).
        tier_head_bias: a bias in the tier head's hidden layer (the NAR code has none).
        reset_tiers_to_zero: every epoch starts from all-zero tier embeddings (the NAR code's fresh
            buckets) instead of keeping last epoch's until a tier is seen again.
        xavier_init: Xavier-uniform init of every trainable weight matrix (the NAR code's init).
        paper_space: the space whose published settings these are (`model=nar_paper`: nb101): other
            data is refused in one line naming the space's recipe, so NB101 sizes never run on NB201.

    Validation logs ``val/tier_acc``, the tier accuracy of the validation split against the tier
    embeddings of the last training epoch (the NAR code keeps the epoch where its validation tier
    accuracy is highest: `experiment=nar_paper_*` checkpoints on it).
    """

    def __init__(self, encoder: Callable[..., nn.Module], data_info: dict, tensors: Sequence[str] | None = None, members: int = 1,
                 extra_encoders: Mapping[str, Callable[..., nn.Module]] | None = None,
                 decoder_layers: int = 6, decoder_heads: int = 4, decoder_query: str = "tiers", tier_hidden: int = 256,
                 score_hidden: int = 1024, readout: str = "flatten", scale_logits: bool = True, dropout: float = 0.1,
                 rank_weight: float = 1.0, tier_weight: float = 1.0, label_smoothing: float = 0.0,
                 decoder_positional: bool = False, tier_head_bias: bool = True, reset_tiers_to_zero: bool = False,
                 xavier_init: bool = False, paper_space: str | None = None, nar_code_layers: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if paper_space is not None and data_info.get("space") != paper_space:
            raise ConfigError(f"these are NAR's published {paper_space} settings but the data is {data_info.get('space')}; "
                              f"use experiment=nar_paper_{data_info.get('space')} (or model=nar for any space)")
        # `loss` is the ranking term, like every model's (so `loss=listnet` works for NAR too); NAR adds the tier CE
        self.loss_fn = TierRankLoss(self.loss_fn, rank_weight, tier_weight, label_smoothing)
        if members < 1:
            raise ConfigError(f"members={members}; allowed: ≥ 1")
        k = int(data_info["num_tiers"])
        factories = [encoder, *(extra_encoders or {}).values()]
        for factory in factories:
            encoders.check_reads(factory, tensors)
        self.nets = nn.ModuleList(
            NARNet(encoders.build(factory, data_info), k, decoder_layers, decoder_heads, decoder_query, tier_hidden,
                   score_hidden, readout, scale_logits, dropout, decoder_positional, tier_head_bias, nar_code_layers)
            for factory in factories for _ in range(members))
        if xavier_init:
            for p in self.nets.parameters():
                if p.dim() > 1 and p.requires_grad:  # a fixed sinusoid table is not a weight
                    nn.init.xavier_uniform_(p)
        self.reset_tiers_to_zero = reset_tiers_to_zero
        self.val_tier_acc = MulticlassAccuracy(num_classes=k, average="micro")
        self.tier_confusion = MulticlassConfusionMatrix(num_classes=k)
        #: (k, k) confusion matrix (rows: true tier, columns: predicted) of the last test run
        self.test_tier_confusion: Tensor | None = None

    def forward(self, batch) -> Tensor:
        """Ranking scores (B,), higher = better; the tier branch is skipped, so scoring is cheap."""
        return torch.stack([net.score(*net.encode(batch)) for net in self.nets]).mean(0)

    def outputs(self, batch) -> NAROutputs:
        """Scores, tier probabilities and embedding, from one encoder pass per member."""
        scores, probs, embeddings = [], [], []
        for net in self.nets:
            h, pad = net.encode(batch)
            scores.append(net.score(h, pad))
            probs.append(net.tier_logits(h, pad).softmax(-1))
            embeddings.append(net.pool(h, pad))
        return NAROutputs(torch.stack(scores).mean(0), torch.stack(probs).mean(0), torch.cat(embeddings, -1))

    def follow_predicted_tiers(self) -> None:
        """NAR's sampling mode: every net's tier memory restarts from zero and, while the model is in eval
        mode, takes in each scored batch under the tiers that net predicts (`TierMemory.follow`)."""
        for net in self.nets:
            net.tiers.follow()

    # -- training -------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        for net in self.nets:
            net.tiers.reset(zero=self.reset_tiers_to_zero)

    def training_loss(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        losses, parts, probs = [], [], []
        for net in self.nets:
            h, pad = net.encode(batch)
            logits = net.tier_logits(h, pad)
            loss, part = self.loss_fn(logits, batch.tier, net.score(h, pad), batch.y_norm)
            # tiers are matched against the means of earlier batches, then this batch joins them (as NAR)
            net.tiers.update(h, pad, batch.tier, reduce=self._sum_across_processes)
            losses.append(loss), parts.append(part), probs.append(logits.detach().softmax(-1))
        extra = {name: torch.stack([p[name] for p in parts]).mean() for name in parts[0]}
        extra["tier_acc"] = (torch.stack(probs).mean(0).argmax(-1) == batch.tier).float().mean()
        return torch.stack(losses).mean(), extra

    def _sum_across_processes(self, t: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(t, reduce_op="sum") if self._trainer is not None else t

    # -- validation: ranking metrics (base class) + tier accuracy -------------------------------
    def validation_step(self, batch, batch_idx: int) -> None:
        out = self.outputs(batch)
        self.val_metrics.update(out.scores, batch.y, batch.idx)
        self.val_tier_acc.update(out.tier_probs, batch.tier)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.log("val/tier_acc", self.val_tier_acc.compute())
        self.val_tier_acc.reset()

    # -- testing: ranking metrics (base class) + tier confusion matrix ---------------------------
    def test_step(self, batch, batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        self.tier_confusion.update(self.outputs(batch).tier_probs, batch.tier)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        cm = self.tier_confusion.compute().cpu()
        self.tier_confusion.reset()
        self.test_tier_confusion = cm
        acc = float(cm.diagonal().sum() / cm.sum().clamp(min=1))
        self.log("test/tier_acc", acc)
        self.last_test["test/tier_acc"] = acc
        rows = [[f"tier {i}"] + [int(v) for v in row] for i, row in enumerate(cm.tolist())]
        columns = ["true \\ pred"] + [f"tier {j}" for j in range(cm.shape[0])]
        log.info("test tier confusion (rows: true tier, 0 = best):\n%s", "\n".join("\t".join(map(str, r)) for r in [columns] + rows))
        for logger in self.loggers:
            if hasattr(logger, "log_text"):  # W&B: a table next to the curves
                logger.log_text(key="text/test_tier_confusion", columns=columns, data=rows)
