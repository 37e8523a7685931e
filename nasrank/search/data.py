"""The training DataModule, trained on the rows a search has queried instead of a random split.

Search refits its ranker many times on a growing set of queried rows; everything else the Lightning
path needs (dense graphs, node costs, tensor encodings, collate) is built once per benchmark and
reused, which is why this subclasses `ArchRankDataModule` rather than building a new one per refit.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from nasrank.core import ConfigError
from nasrank.data.datamodule import ArchRankDataModule
from nasrank.data.splits import Split, assign_tiers, tier_thresholds


class QueriedDataModule(ArchRankDataModule):
    """`ArchRankDataModule` whose training split is set explicitly with `set_train_rows`.

    The constructor takes the data config unchanged (its own seeded split is replaced at the first
    `set_train_rows`).  Targets are standardised and tiers cut on the training rows only, as in the
    base class, so a ranker never sees a value that was not queried.
    """

    def set_train_rows(self, rows: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray | None = None) -> None:
        """Train on exactly these benchmark rows (no validation rows: every label costs a query) and
        their measured `values` (default: the table's training labels, `fit_values`)."""
        rows, first = np.unique(np.asarray(rows, dtype=np.int64), return_index=True)
        if len(rows) < 2 or rows[0] < 0 or rows[-1] >= len(self.benchmark):
            raise ConfigError(f"a ranker needs at least 2 distinct training rows in 0..{len(self.benchmark) - 1}, got {len(rows)}")
        if values is not None:
            values = np.asarray(values, dtype=np.float64)[first]
            if not np.array_equal(self.fit_values[rows], values):
                self.fit_values = self.fit_values.copy()  # never the benchmark's own array
                self.fit_values[rows] = values
        empty = np.empty(0, dtype=np.int64)
        self.split = Split(rows, empty, empty)
        train_values = self.fit_values[rows]
        self.y_mean, self.y_std = float(train_values.mean()), float(train_values.std() + 1e-8)
        self.thresholds = tier_thresholds(train_values, self.hparams.num_tiers)
        self.tiers = assign_tiers(self.fit_values, self.thresholds)
