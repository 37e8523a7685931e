"""Landmark regularisation (Yu et al., "Landmark regularization: ranking guided super-net training
in NAS", CVPR 2021): the loss term and its schedule.

Landmarks are architectures whose true order is known (`nasrank.supernet.truth`).  While the supernet
trains, each step also evaluates a pair of them (i better than j) on the same mini-batch and adds
``coef(t) * ReLU(loss_i - loss_j)``: the shared weights are pushed to make the better landmark's loss
lower, which is the order a benchmark would give.  As in the paper's code (`mae_relu`,
`cosine_increase`): the coefficient is 0 for the warm-up epochs, then rises from 0 to `coef` along a
half cosine until the last epoch; pairs are drawn at random (`random_pairwise`) or all pairs are used
(`all`).  We draw a random pair uniformly over distinct pairs (the paper's ``randint`` pair draw
favours pairs of late landmarks).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from nasrank.core import ConfigError

PAIR_MODES = ("random_pairwise", "all")



def rank_spread(values: np.ndarray, num: int) -> np.ndarray:
    """Positions of `num` rows evenly spaced in the order of `values`, best first (spans the range)."""
    values = np.asarray(values, dtype=np.float64)
    if not 2 <= num <= len(values):
        raise ConfigError(f"cannot pick {num} rows spanning {len(values)} values; allowed: 2..{len(values)}")
    order = np.argsort(-values, kind="stable")
    return order[np.round(np.linspace(0, len(values) - 1, num)).astype(np.int64)]


def landmark_pairs(num_landmarks: int, mode: str, rng: np.random.Generator, num_pairs: int = 1) -> np.ndarray:
    """(better, worse) positions into a best-first landmark list: `num_pairs` random distinct pairs,
    or every pair for ``mode="all"``."""
    if mode not in PAIR_MODES:
        raise ConfigError(f"unknown landmark pair sampling {mode!r}; allowed: {', '.join(PAIR_MODES)}")
    if num_landmarks < 2:
        raise ConfigError(f"landmark pairs need at least 2 landmarks, got {num_landmarks}")
    if mode == "all":
        return np.stack(np.triu_indices(num_landmarks, k=1), axis=1)
    return np.sort(np.stack([rng.choice(num_landmarks, 2, replace=False) for _ in range(num_pairs)]), axis=1)


def landmark_loss(loss_better: torch.Tensor, loss_worse: torch.Tensor) -> torch.Tensor:
    """Mean of ReLU(loss_better - loss_worse): zero once every better landmark has the lower loss."""
    return F.relu(loss_better - loss_worse).mean()


def landmark_coef(epoch: float, coef: float, warmup_epochs: float, max_epochs: float) -> float:
    """0 during warm-up, then a half cosine from 0 (end of warm-up) to `coef` (end of training).

    `epoch` is fractional (epoch + batch / batches), so the coefficient rises smoothly every step.
    """
    if epoch < warmup_epochs or coef == 0:
        return 0.0
    span = max(max_epochs - warmup_epochs, 1e-9)
    progress = min((epoch - warmup_epochs) / span, 1.0)
    return coef * 0.5 * (1.0 - math.cos(math.pi * progress))
