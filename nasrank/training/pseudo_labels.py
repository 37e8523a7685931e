"""Pseudo labels for self-training (`self_training=pseudo_labels`, as SemiNAS): a small labelled set teaches a
ranker that then labels many cells the search space gives for free, and a student is fitted on both.  Whether
the student ranks better than the teacher depends on the space and size (conf/self_training/pseudo_labels.yaml).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from nasrank.core import ConfigError, check_at_least
from nasrank.data.datamodule import ArchRankDataModule


def pseudo_labelled(datamodule: ArchRankDataModule, score: Callable[[np.ndarray], np.ndarray], count: int, seed: int,
                    batch_size: int | None = None) -> ArchRankDataModule:
    """A copy of `datamodule` whose training split adds `count` unlabeled cells labelled by a teacher
    (`score(rows)`: its scores of those benchmark rows, asked only for the chosen cells, not the whole space).

    Pseudo cells are drawn (seeded) one per isomorphism class among classes with no train or val cell, so the
    validation split stays a clean hold-out.  Their targets are the teacher's ranks mapped onto the quantiles of
    the real training targets, so the targets keep the real ones' scale and spread.
    """
    check_at_least("self_training", 1, count=count)
    dm = datamodule
    enc = dm.encoded_rows
    labelled = np.isin(enc, enc[np.concatenate([dm.split.train, dm.split.val])])
    pool = np.unique(enc[~labelled])
    pseudo = np.sort(np.random.default_rng(seed).choice(pool, size=min(int(count), len(pool)), replace=False))
    scores = np.asarray(score(pseudo), dtype=np.float64)
    if scores.shape != pseudo.shape or not np.isfinite(scores).all():
        raise ConfigError(f"teacher scores must be {len(pseudo)} finite values (one per row asked for), got shape {scores.shape}")
    quantile = scores.argsort().argsort() / max(len(pseudo) - 1, 1)
    return dm.with_train_targets(pseudo, np.quantile(dm.fit_values[dm.split.train], quantile), batch_size)
