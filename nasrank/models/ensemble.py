"""`ScoreEnsemble`: rankers fitted separately, ranked by the mean of their standardised scores.

Why separately: members of different families (the NAR transformer, a pairwise-trained GIN) make
less correlated errors than re-seeded copies of one model, and each one keeping its own best
validation epoch matters — fitting the same families jointly in one module with one shared epoch
(`NARModule.extra_encoders`) gained less (both measured in BENCHMARKS.md).  Each member reads the
cells through its own data view (its model config's encoding: NAR's canonical isomorphism-class
encoding, the GIN's raw cell), which also decorrelates them.  Each member's scores are z-scored with
constants fixed on the training rows, so members on different scales weigh equally and a row's score
never depends on which other rows are scored.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from nasrank.core import ConfigError
from nasrank.models.ranker import RankerModule


class ScoreEnsemble(RankerModule):
    """Mean of the members' z-scored scores; built from fitted members, never trained itself.

    Args:
        members: fitted rankers by name (their `forward` gives scores, higher = better).
        views: per member, what turns the rows of a batch (`batch.idx`) into that member's input
            (its datamodule, by `collate(rows)`), or None for a member that reads the batch as given
            (the run's model, whose datamodule made the batch); no mapping: every member reads it.
        **kwargs: `eval_targets`, `ks` of `RankerModule` (no loss or optimiser: nothing is fitted here).
    """

    def __init__(self, members: Mapping[str, RankerModule], views: Mapping[str, Any] | None = None, **kwargs) -> None:
        if len(members) < 2:
            raise ConfigError(f"an ensemble needs at least 2 members, got {len(members)} ({', '.join(members)})")
        if views is not None and set(views) != set(members):
            raise ConfigError(f"ensemble views {sorted(views)} must name exactly the members {sorted(members)}")
        super().__init__(loss=None, optimizer=None, **kwargs)
        self.members = nn.ModuleDict(members)
        self.views = dict(views) if views is not None else None  # datamodules: plain attributes, not weights
        self.register_buffer("score_mean", torch.zeros(len(members)))
        self.register_buffer("score_std", torch.ones(len(members)))

    def member_scores(self, batch) -> Tensor:
        """(M, B) raw scores of every member, each on its own view of the batch's rows."""
        views = self.views or {}
        rows = batch.idx.cpu().numpy() if any(v is not None for v in views.values()) else None
        return torch.stack([member(batch if views.get(name) is None else views[name].collate(rows).to(self.device))
                            for name, member in self.members.items()])

    @torch.no_grad()
    def standardize(self, scores: Tensor) -> None:
        """Fix each member's mean and std from its (M, N) scores of the training cells."""
        if scores.ndim != 2 or scores.shape[0] != len(self.members) or scores.shape[1] < 2:
            raise ConfigError(f"standardize needs ({len(self.members)}, N ≥ 2) member scores, got {tuple(scores.shape)}")
        self.score_mean.copy_(scores.mean(1))
        self.score_std.copy_(scores.std(1).clamp(min=1e-8))

    def forward(self, batch) -> Tensor:
        return ((self.member_scores(batch) - self.score_mean[:, None]) / self.score_std[:, None]).mean(0)

    def configure_optimizers(self):
        raise ConfigError("ScoreEnsemble is assembled from fitted members and cannot be trained itself")
