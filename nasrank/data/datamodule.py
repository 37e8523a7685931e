"""`ArchRankDataModule`: one benchmark, one target, seeded splits, PyG batches for every model.

The label-free encoding (`nasrank.encodings.archs`, shared with search and a loaded `Ranker`) stacks
the benchmark's cells once; each batch is a slice of it plus targets and tiers, so the same batch type
feeds the GIN/MLP encoders (`x`, `edge_index`), the NAR transformer (`tokens`) and the ReNAS CNN
(`tensor`), and scoring a 423k-cell space needs no per-cell objects.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from functools import cached_property, partial
from typing import Callable, Iterator, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torch_geometric.data import Batch

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.data.splits import Split, assign_tiers, make_split, tier_thresholds

from nasrank.encodings.archs import EncodedArchs, EncodingSpec, stack_table
from nasrank.encodings.graph import DenseGraphs
from nasrank.core import ConfigError, CorruptDataError

log = logging.getLogger(__name__)
#: `fit_on` values: train on `target` itself, or on the same dataset's validation accuracy
FIT_ON = ("target", "valid")


def fit_target(benchmark: Benchmark, target: str, fit_on: str) -> str:
    """The target a ranker is trained (and its checkpoint selected) on: `target`, or with ``fit_on="valid"``
    ``<dataset>/valid_acc`` of the same dataset; a benchmark without it falls back to `target`, with
    one warning, since the shared tables (NB201, NB101 csv) store test accuracy only."""
    if fit_on not in FIT_ON:
        raise ConfigError(f"data.fit_on={fit_on!r}; allowed: target (train on data.target), valid (train on <dataset>/valid_acc, test on data.target)")
    if fit_on == "target":
        return target
    valid = f"{target.split('/')[0]}/valid_acc"
    if valid in benchmark.targets:
        return valid
    log.warning("data.fit_on=valid: benchmark %s has no %s (its targets: %s); training on %s instead",
                benchmark.name, valid, ", ".join(sorted(benchmark.targets)), target)
    return target


class EpochSeededSampler(Sampler[int]):
    """Shuffles with a permutation that depends only on (seed, epoch).

    Lightning calls `set_epoch` at every epoch start, so a run resumed from a checkpoint sees exactly
    the batches the uninterrupted run would have seen (a stateful generator would restart instead).
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist())


class ArchRankDataModule(L.LightningDataModule):
    """Serves train/val/test splits of (architecture, target) as PyG `Batch`es.

    Args:
        benchmark: a `Benchmark` or a zero-argument callable returning one (Hydra `_partial_`).
        target: e.g. ``"cifar100/test_acc"``; must be one of the benchmark's targets.  Test metrics and
            scoring are always against it.
        fit_on: ``"target"``: train, cut tiers and select checkpoints on `target`; ``"valid"``: on the same
            dataset's ``valid_acc`` (what NAS papers train and select on), `target` if the benchmark has none
            (`fit_target` records which).
        n_train, n_val: counts, or fractions in (0, 1) of the pool; test = every remaining row.
        split_seed: seed of the split (independent of the training seed).
        dedup_iso: split over one representative per isomorphism class.
        canonical_iso: encode every row as its isomorphism class's first row, so cells that compute
            the same function (NB201: ops on edges that reach no output, `none` vs. dead paths) get
            identical features and scores, and a ranker need not learn that equivalence from few labels.
        num_tiers: k quantile tiers of the training targets (tier 0 = best) attached to each row.
        tensors: extra encodings to attach: ``"renas"`` (`batch.tensor`) and/or ``"nar"`` (`batch.tokens`).
        node_costs: append per-node FLOPs/params (normalised) to the node features `x`.
        cost_dataset: dataset whose network sizes define FLOPs/params (default: the target's).
        eval_targets: more target keys evaluated on the test split (cross-dataset transfer).
        drop_last: drop each epoch's last, incomplete training batch (the NAR code does).
        cost_units: the units of node costs in the encodings (`EncodingSpec.cost_units`).
        zero_cost: attach each cell's zero-cost features (`EncodingSpec.zero_cost`).
    """

    def __init__(self, benchmark: Benchmark | Callable[[], Benchmark], target: str, n_train: int | float = 0.1,
                 n_val: int | float = 0, split_seed: int = 0, batch_size: int = 128, eval_batch_size: int = 4096,
                 dedup_iso: bool = False, canonical_iso: bool = False, num_tiers: int = 5, tensors: Sequence[str] = (), node_costs: bool = True,
                 cost_dataset: str | None = None, eval_targets: Sequence[str] = (), num_workers: int = 0,
                 fit_on: str = "target", drop_last: bool = False, cost_units: str = "max", zero_cost: bool = False) -> None:
        super().__init__()
        tensors, eval_targets = list(tensors), list(eval_targets)  # plain lists: checkpoints load with weights_only
        self.save_hyperparameters(ignore=["benchmark"])
        self.benchmark = benchmark if isinstance(benchmark, Benchmark) else benchmark()
        self.values = self.benchmark.target(target)
        #: the target the training (and validation) labels come from
        self.fit_target = fit_target(self.benchmark, target, fit_on)
        #: training and validation labels: `values` itself unless `fit_target` differs from `target`
        self.fit_values = self.values if self.fit_target == target else self.benchmark.target(self.fit_target)
        self.extra_values = np.stack([self.benchmark.target(t) for t in eval_targets], 1) if eval_targets else None
        for key, values in {target: self.values, self.fit_target: self.fit_values}.items():
            if not np.isfinite(values).all():
                raise CorruptDataError(f"target {key!r} of {self.benchmark.name} has {int((~np.isfinite(values)).sum())} NaN/inf values")
        self.encoding  # an unknown tensor encoding is refused here, before any split is drawn
        iso = self.benchmark.iso_keys() if dedup_iso else None
        self.split: Split = make_split(len(self.benchmark), n_train, n_val, split_seed, iso)
        train_values = self.fit_values[self.split.train]
        self.y_mean, self.y_std = float(train_values.mean()), float(train_values.std() + 1e-8)
        self.thresholds = tier_thresholds(train_values, num_tiers)
        self.tiers = assign_tiers(self.fit_values, self.thresholds)

    @cached_property
    def encoding(self) -> EncodingSpec:
        """How this datamodule's model reads a cell: what a saved ranker needs to encode any cell alike."""
        h = self.hparams
        return EncodingSpec(self.benchmark.space.name, tuple(h.tensors), h.node_costs,
                            h.cost_dataset or h.target.split("/")[0], h.canonical_iso, h.cost_units, h.zero_cost)

    @cached_property
    def _stacked(self) -> tuple[DenseGraphs, EncodedArchs, np.ndarray]:
        return stack_table(self.benchmark.archs, self.encoding)

    @property
    def graphs(self) -> DenseGraphs:
        """Dense graphs of the benchmark's cells as stored (search computes cell costs from them)."""
        return self._stacked[0]

    @property
    def encoded(self) -> EncodedArchs:
        """The label-free encoding of every row (`collate` adds the labels)."""
        return self._stacked[1]

    @property
    def encoded_rows(self) -> np.ndarray:
        """Row whose graph encodes each row: itself, or its isomorphism class's first row (`canonical_iso`)."""
        return self._stacked[2]

    @property
    def encoded_graphs(self) -> DenseGraphs:
        """The graph each row is encoded by (`graphs` itself unless `canonical_iso`), for table baselines."""
        return self.encoded.graphs

    @property
    def num_node_features(self) -> int:
        return self.encoded.num_node_features

    def data_info(self) -> dict:
        """Sizes models need to build themselves (read off a real collated batch, so they always agree)."""
        return self.encoded.data_info(self.hparams.num_tiers)

    def collate(self, rows: Sequence[int], fit: bool = False) -> Batch:
        """One PyG `Batch` of these benchmark rows: the encoding plus targets (the training labels with
        `fit`, else `target`), tiers and row ids."""
        rows = np.asarray(rows, dtype=np.int64)
        y = torch.from_numpy((self.fit_values if fit else self.values)[rows]).float()
        attrs = dict(y=y, y_norm=(y - self.y_mean) / self.y_std, tier=torch.from_numpy(self.tiers[rows]),
                     idx=torch.from_numpy(rows))
        if self.extra_values is not None:
            attrs["y_extra"] = torch.from_numpy(self.extra_values[rows]).float()
        return self.encoded.collate(rows, **attrs)

    def with_train_targets(self, rows: np.ndarray, targets: np.ndarray, batch_size: int | None = None) -> "ArchRankDataModule":
        """A copy whose training split adds `rows` (cells outside train and val) with these training targets,
        e.g. a teacher's pseudo labels (`nasrank.training.pseudo_labels`).  The tier boundaries, the target
        scaling and every other row keep their values, and the copy's test split drops the new rows, so even
        it never scores against a made-up target; test KTau belongs to this (original) datamodule."""
        rows = np.asarray(rows, dtype=np.int64)
        if np.isin(rows, np.concatenate([self.split.train, self.split.val])).any():
            raise ConfigError("added training rows must come from outside the train and val splits")
        new = copy.copy(self)  # shares the stacked graphs and cost caches
        new.fit_values = self.fit_values.copy()
        new.fit_values[rows] = targets
        new.values = new.fit_values if self.fit_values is self.values else self.values
        new.tiers = assign_tiers(new.fit_values, self.thresholds)
        new.split = replace(self.split, train=np.concatenate([self.split.train, rows]), test=np.setdiff1d(self.split.test, rows))
        new._hparams = copy.deepcopy(self.hparams)
        if batch_size is not None:
            new.hparams.batch_size = int(batch_size)
        return new

    def rows_loader(self, rows: np.ndarray, shuffle: bool = False, batch_size: int | None = None, fit: bool = False,
                    drop_last: bool = False) -> DataLoader:
        """A loader over any benchmark rows (e.g. the whole space, for search); `fit`: with the training labels."""
        sampler = EpochSeededSampler(len(rows), int(self.hparams.split_seed)) if shuffle else None
        return DataLoader(rows.tolist(), batch_size=batch_size or self.hparams.eval_batch_size, sampler=sampler,
                          collate_fn=partial(self.collate, fit=fit), num_workers=self.hparams.num_workers,
                          drop_last=drop_last)

    def train_dataloader(self) -> DataLoader:
        # a training split smaller than one batch still gives its one batch
        drop = self.hparams.drop_last and len(self.split.train) >= self.hparams.batch_size
        return self.rows_loader(self.split.train, shuffle=True, batch_size=self.hparams.batch_size, fit=True,
                                drop_last=drop)

    def val_dataloader(self) -> DataLoader:
        rows = self.split.val if len(self.split.val) >= 2 else self.split.train
        return self.rows_loader(rows, fit=True)  # checkpoints are selected on the training labels' kind

    def test_dataloader(self) -> DataLoader:
        return self.rows_loader(self.split.test)
