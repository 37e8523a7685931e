"""Seeded train/val/test splits and quality tiers: the two pieces of data preparation every
ranker shares, kept free of torch so they are trivially testable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from nasrank.core import ConfigError


@dataclass(frozen=True)
class Split:
    """Row indices into a benchmark; `test` is every pool row not in train or val."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def resolve_size(size: int | float, pool: int, name: str) -> int:
    """A count, or a fraction in (0, 1) of the pool; anything else is a one-line ConfigError."""
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a count or a fraction in (0, 1), got {size!r}")
    if isinstance(size, (float, np.floating)) and not float(size).is_integer():
        if not 0.0 < size < 1.0:
            raise ConfigError(f"{name}={size} is not a valid fraction; allowed: a count ≥ 0 or a fraction in (0, 1)")
        return max(1, int(round(size * pool)))
    size = int(size)
    if size < 0:
        raise ConfigError(f"{name}={size} is negative; allowed: 0..{pool} or a fraction in (0, 1)")
    return size


def make_split(n_rows: int, n_train: int | float, n_val: int | float, seed: int,
               iso_keys: Sequence[Hashable] | None = None) -> Split:
    """Random split of the rows (of one representative per isomorphism class if `iso_keys`).

    The test split is all remaining rows, which is how the literature reports Kendall tau.
    """
    pool = np.arange(n_rows)
    if iso_keys is not None:
        _, first = np.unique(np.asarray([str(k) for k in iso_keys]), return_index=True)
        pool = np.sort(first)
    n_tr = resolve_size(n_train, len(pool), "n_train")
    n_va = resolve_size(n_val, len(pool), "n_val")
    if n_tr < 2:
        raise ConfigError(f"n_train={n_tr} is too small to rank; allowed: 2..{len(pool) - 2}")
    if n_tr + n_va > len(pool) - 2:
        raise ConfigError(f"n_train + n_val = {n_tr + n_va} leaves fewer than 2 test rows out of {len(pool)}; allowed: n_train + n_val ≤ {len(pool) - 2}")
    perm = np.random.default_rng(seed).permutation(pool)
    return Split(np.sort(perm[:n_tr]), np.sort(perm[n_tr:n_tr + n_va]), np.sort(perm[n_tr + n_va:]))


def tier_thresholds(train_values: np.ndarray, k: int) -> np.ndarray:
    """k - 1 descending boundaries at the (1 - q/k) quantiles of the training targets."""
    if k < 1:
        raise ConfigError(f"num_tiers={k}; allowed: ≥ 1")
    return np.quantile(np.asarray(train_values, dtype=np.float64), [1 - q / k for q in range(1, k)])


def assign_tiers(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Tier of each value: 0 = best (at or above the top boundary) … k - 1 = worst.

    A value equal to a boundary goes to the better tier, so ties never split a tier arbitrarily.
    """
    values = np.asarray(values, dtype=np.float64)
    return (values[:, None] < np.asarray(thresholds)[None, :]).sum(1).astype(np.int64)
