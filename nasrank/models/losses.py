"""Ranking losses, vectorised over all pairs/lists of a batch (no Python loops over pairs).

Each loss is a small `nn.Module` taking (scores, targets) with higher = better, so any model
can be combined with any loss by config (`conf/loss/`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasrank.core import ConfigError


def _pairs(scores: torch.Tensor, target: torch.Tensor, ties: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Score differences o_i - o_j and signs sign(y_i - y_j) over all ordered pairs i != j with
    y_i != y_j, or with `ties` over every ordered pair i != j (a tied pair has sign 0)."""
    diff = scores[:, None] - scores[None, :]
    sign = torch.sign(target[:, None] - target[None, :])
    keep = ~torch.eye(len(scores), dtype=torch.bool, device=scores.device) if ties else sign != 0
    return diff[keep], sign[keep]


class PairwiseLogistic(nn.Module):
    """ReNAS / NAR ranking loss: mean log(1 + exp(-(o_i - o_j) · sign(y_i - y_j))) over pairs.

    By default the mean runs over the pairs with different targets: a tied pair says nothing about
    the order.  `ties` averages over all n (n - 1) ordered pairs i != j as the released ReNAS and NAR
    code (``pair_loss`` / ``RankLoss``) does: each tied pair adds the constant log 2, so the gradient
    is scaled by the share of untied pairs (the paper variants set it).
    """

    def __init__(self, ties: bool = False) -> None:
        super().__init__()
        self.ties = ties

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff, sign = _pairs(scores.flatten(), target.flatten(), self.ties)
        return F.softplus(-diff * sign).mean() if diff.numel() else scores.sum() * 0.0


class PairwiseHinge(nn.Module):
    """Margin ranking: mean max(0, margin - (o_i - o_j) · sign(y_i - y_j))."""

    def __init__(self, margin: float = 0.1) -> None:
        super().__init__()
        if not margin >= 0:
            raise ConfigError(f"PairwiseHinge margin={margin}; allowed: ≥ 0")
        self.margin = margin

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff, sign = _pairs(scores.flatten(), target.flatten())
        return F.relu(self.margin - diff * sign).mean() if diff.numel() else scores.sum() * 0.0


class ListNet(nn.Module):
    """ListNet top-1: cross-entropy between softmax(targets / temperature) and softmax(scores).

    Targets are standardised within the batch first, so the loss is invariant to target shifts and
    the temperature means the same on every benchmark.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"ListNet temperature={temperature}; allowed: > 0")
        self.temperature = temperature

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.flatten()
        # population std: a batch of one (a last partial batch) must not give NaN
        t = (target - target.mean()) / (target.std(correction=0) + 1e-8)
        return -(F.softmax(t / self.temperature, 0) * F.log_softmax(scores.flatten(), 0)).sum()


class ListMLE(nn.Module):
    """ListMLE: negative log-likelihood of the true order under the Plackett-Luce model of scores.

    Tied targets are ordered at random on every call (Plackett-Luce has no ties): a fixed tie order
    would teach the model that the tied row met first in the batch is the better one.
    """

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        shuffle = torch.randperm(scores.numel(), device=scores.device)
        order = shuffle[torch.argsort(target.flatten()[shuffle], descending=True, stable=True)]
        s = scores.flatten()[order]
        # log sum_{k >= i} exp(s_k), via a reversed cumulative logsumexp
        tail = torch.logcumsumexp(s.flip(0), 0).flip(0)
        return (tail - s).mean()


class MSE(nn.Module):
    """Regression (the baseline predictors' loss); modules pass targets standardised with the
    training split's mean/std, so scores are on that scale."""

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(scores.flatten(), target.flatten())
