"""Landmark regularisation (Yu et al., "Landmark regularization: ranking guided super-net training
in NAS", CVPR 2021): the loss term, its schedules, the landmark choice and the landmark-pair draws.

Landmarks are architectures whose true order is known (`nasrank.supernet.truth`).  While the supernet
trains, each step also evaluates a pair of them (i better than j) on one mini-batch and adds
``coef(t) * ReLU(loss_i - loss_j)`` (the official ``mae_relu``, no margin): the shared weights are
pushed to make the better landmark's loss lower, which is the order a benchmark would give.

Two schedules of the coefficient, both 0 for the warm-up epochs:
- ``cosine_increase`` (the official code's, `cosine_increase_coef`): set once per epoch; the cosine is
  measured over *all* epochs, not just those after warm-up, so it stops short of `coef`.
- ``cosine_step`` (ours, `landmark_coef`): set every step; a half cosine from 0 at the end of warm-up
  to exactly `coef` at the last step.

Pairs: ``randint`` is the official draw (first landmark uniform, second uniform among those after
it in the worst-first order, which favours pairs of good landmarks); ``random_pairwise`` draws
uniformly over distinct pairs; ``all`` takes every pair.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from nasrank.core import ConfigError

PAIR_MODES = ("random_pairwise", "randint", "all")
SCHEDULES = ("cosine_step", "cosine_increase")
LANDMARK_CHOICES = ("spread", "random")


def rank_spread(values: np.ndarray, num: int) -> np.ndarray:
    """Positions of `num` rows evenly spaced in the order of `values`, best first (spans the range)."""
    values = np.asarray(values, dtype=np.float64)
    if not 2 <= num <= len(values):
        raise ConfigError(f"cannot pick {num} rows spanning {len(values)} values; allowed: 2..{len(values)}")
    order = np.argsort(-values, kind="stable")
    return order[np.round(np.linspace(0, len(values) - 1, num)).astype(np.int64)]


def choose_landmarks(values: np.ndarray, num: int, choice: str, seed: int) -> np.ndarray:
    """Positions of the `num` landmark rows of `values`, best first: evenly spaced in the order of
    `values` (``spread``) or a seeded uniform draw without replacement (``random``, the official way)."""
    if choice not in LANDMARK_CHOICES:
        raise ConfigError(f"unknown landmark choice {choice!r}; allowed: {', '.join(LANDMARK_CHOICES)}")
    if choice == "spread":
        return rank_spread(values, num)
    values = np.asarray(values, dtype=np.float64)
    if not 2 <= num <= len(values):
        raise ConfigError(f"cannot pick {num} landmarks of {len(values)} rows; allowed: 2..{len(values)}")
    rows = np.random.default_rng(seed).choice(len(values), num, replace=False)
    return rows[np.argsort(-values[rows], kind="stable")]


def landmark_pairs(num_landmarks: int, mode: str, rng: np.random.Generator, num_pairs: int = 1) -> np.ndarray:
    """(better, worse) positions into a best-first landmark list: `num_pairs` random distinct pairs
    (``random_pairwise`` uniform, ``randint`` the official draw), or every pair for ``mode="all"``."""
    if mode not in PAIR_MODES:
        raise ConfigError(f"unknown landmark pair sampling {mode!r}; allowed: {', '.join(PAIR_MODES)}")
    if num_landmarks < 2:
        raise ConfigError(f"landmark pairs need at least 2 landmarks, got {num_landmarks}")
    if mode == "all":
        return np.stack(np.triu_indices(num_landmarks, k=1), axis=1)
    if mode == "randint":  # a (worse) then b after it, counted worst-first; as (better, worse) best-first
        worse = rng.integers(0, num_landmarks - 1, num_pairs)
        better = np.array([rng.integers(a + 1, num_landmarks) for a in worse])
        return np.stack([num_landmarks - 1 - better, num_landmarks - 1 - worse], axis=1)
    return np.sort(np.stack([rng.choice(num_landmarks, 2, replace=False) for _ in range(num_pairs)]), axis=1)


def landmark_loss(loss_better: torch.Tensor, loss_worse: torch.Tensor) -> torch.Tensor:
    """Mean of ReLU(loss_better - loss_worse): zero once every better landmark has the lower loss."""
    return F.relu(loss_better - loss_worse).mean()


def landmark_coef(epoch: float, coef: float, warmup_epochs: float, max_epochs: float) -> float:
    """``cosine_step``: 0 during warm-up, then a half cosine from 0 (end of warm-up) to `coef` (end of training).

    `epoch` is fractional (epoch + batch / batches), so the coefficient rises smoothly every step.
    """
    if epoch < warmup_epochs or coef == 0:
        return 0.0
    span = max(max_epochs - warmup_epochs, 1e-9)
    progress = min((epoch - warmup_epochs) / span, 1.0)
    return coef * 0.5 * (1.0 - math.cos(math.pi * progress))


def cosine_increase_coef(epoch: int, coef: float, warmup_epochs: int, max_epochs: int) -> float:
    """``cosine_increase``: the official per-epoch coefficient of (0-based) epoch `epoch`.

    0 before `warmup_epochs`; then ``coef * (1 - cos(pi * (epoch - warmup + 1) / max_epochs)) / 2``:
    the official code passes its default batch index 1 (hence the +1) and divides by all epochs, so
    with 150 warm-up epochs of 400 the last epoch gets ``coef * (1 - cos(0.625 pi)) / 2``.
    """
    if epoch < warmup_epochs:
        return 0.0
    return coef * 0.5 * (1.0 - math.cos(math.pi * (epoch - warmup_epochs + 1) / max_epochs))
