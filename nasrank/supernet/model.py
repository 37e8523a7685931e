"""Weight-sharing NB201 supernet trained with single-path uniform sampling (SPOS, Guo et al. 2020),
optionally with landmark regularisation (`nasrank.supernet.landmarks`), ranked against ground truth.

The network is NB201's own skeleton (`nasrank.supernet.cells.NB201Network`: stem, 3 stages of N cells
with C, 2C, 4C channels, residual reduction blocks, GAP, classifier) with a cell whose 6 edges each
hold all 5 ops.  Every training step samples one cell uniformly (the same cell in every position, as
an NB201 architecture is one repeated cell) and trains only that path.  To score an architecture
the supernet runs it with the inherited weights.  BatchNorm has two settings: with running
statistics (ours), they are re-estimated per architecture on a few fixed training batches (as SPOS
does), since statistics gathered while paths changed every step belong to no single path; without
them (``bn_running_stats=False``, the landmark paper's code: ``track_running_stats=False``, affine
kept), every BN normalises with the statistics of the batch it sees, in training and evaluation.

Validation/test rank the ground truth's evaluation architectures by supernet accuracy on the
validation/test images; `val/ktau` and `test/*` use the architectures that are *not* landmarks,
so the landmark term cannot score by memorising its own training pairs.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import Tensor, nn

from nasrank.core import ConfigError
from nasrank.models.ranker import RankerModule
from nasrank.spaces.nb201 import EDGES, OPS, SPACE
from nasrank.supernet.cells import NB201Network, nb201_op
from nasrank.supernet.landmarks import (PAIR_MODES, SCHEDULES, choose_landmarks, cosine_increase_coef, landmark_coef,
                                        landmark_loss, landmark_pairs)

Choice = tuple[int, ...]
LANDMARK_BATCHES = ("train", "heldout")


def sample_arch(seed: int, step: int) -> Choice:
    """The SPOS path of one step: an op index per edge, uniform and independent.

    A function of (seed, step) only, so a resumed run samples exactly the paths of an unbroken one.
    """
    return tuple(int(i) for i in np.random.default_rng([seed, step]).integers(0, len(OPS), len(EDGES)))


class MixedEdge(nn.Module):
    """One NB201 edge holding every op of `OPS` (the same modules NB201 builds); runs one of them."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(nb201_op(op, channels) for op in OPS)

    def forward(self, x: Tensor, op: int) -> Tensor:
        return self.ops[op](x)


class SupernetCell(nn.Module):
    """NB201 cell over `MixedEdge`s: node j = sum over i < j of edge (j<-i) with its chosen op."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(channels) for _ in EDGES)
        self.choice: Choice = (OPS.index("skip_connect"),) * len(EDGES)

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]
        for dst in range(1, 4):
            nodes.append(sum(self.edges[k](nodes[src], self.choice[k]) for k, (d, src) in enumerate(EDGES) if d == dst))
        return nodes[3]


class Supernet(nn.Module):
    """NB201 network whose cells are `SupernetCell`s; `set_arch` picks the active cell everywhere.

    ``running_stats=False`` turns every BN into ``BatchNorm2d(track_running_stats=False)`` (no
    running buffers: batch statistics always), keeping its affine weights.
    """

    def __init__(self, num_classes: int, channels: int = 16, cells_per_stage: int = 5, running_stats: bool = True) -> None:
        super().__init__()
        self.net = NB201Network(SupernetCell, num_classes, channels, cells_per_stage)
        self.cells = [m for m in self.net.modules() if isinstance(m, SupernetCell)]
        self.bns = [m for m in self.net.modules() if isinstance(m, nn.BatchNorm2d)]
        self.running_stats = running_stats
        if not running_stats:
            for bn in self.bns:  # the state BatchNorm2d(track_running_stats=False) is built in
                bn.track_running_stats = False
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    bn.register_buffer(name, None)

    def set_arch(self, choice: Choice) -> None:
        if len(choice) != len(EDGES) or not all(0 <= c < len(OPS) for c in choice):
            raise ConfigError(f"a supernet path needs {len(EDGES)} op indices in 0..{len(OPS) - 1}, got {choice}")
        for cell in self.cells:
            cell.choice = tuple(choice)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @torch.no_grad()
    def calibrate_bn(self, choice: Choice, batches: Sequence[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor]]:
        """Re-estimate every BN's running mean/var for path `choice` as the exact average over
        `batches` (momentum None), and return them so evaluation can switch paths cheaply."""
        self.set_arch(choice)
        momenta = [bn.momentum for bn in self.bns]
        was_training = self.training
        for bn in self.bns:
            bn.reset_running_stats()
            bn.momentum = None
        self.train()
        for x, _ in batches:
            self.net(x)
        for bn, momentum in zip(self.bns, momenta):
            bn.momentum = momentum
        self.train(was_training)
        return [(bn.running_mean.clone(), bn.running_var.clone()) for bn in self.bns]

    @torch.no_grad()
    def load_bn(self, stats: Sequence[tuple[Tensor, Tensor]]) -> None:
        for bn, (mean, var) in zip(self.bns, stats):
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


class SupernetModule(RankerModule):
    """SPOS supernet (+ landmark term) whose rankings of the ground truth's architectures are scored.

    Args:
        data_info: from `ImageDataModule.data_info()`: ``num_classes`` and the ground truth
            (``truth_archs`` NB201 strings, ``truth_values`` accuracies).
        channels, cells_per_stage: C and N of the NB201 network (NB201 itself: 16 and 5).
        landmarks: how many ground-truth architectures are landmarks.
        landmark_choice: ``spread`` (evenly spaced in accuracy) or ``random`` (seeded by `landmark_seed`).
        landmark_coef: coefficient of the landmark term; 0 trains plain SPOS (the same
            landmarks are still held out of `val/ktau`, so runs with and without compare on one set).
        landmark_schedule: ``cosine_step`` or ``cosine_increase`` (see `nasrank.supernet.landmarks`).
        landmark_warmup_epochs: epochs with coefficient 0 before the cosine increase.
        landmark_pairs: ``random_pairwise`` / ``randint`` (`landmark_num_pairs` random pairs per step) or ``all``.
        landmark_batch: ``train`` (the step's training batch) or ``heldout`` (a separate batch of the
            validation images, `ImageDataModule.heldout_batch`: the official ``landmark_use_valid``).
        bn_running_stats: False for BN without running statistics (see `Supernet`).
        calib_batches: training batches used to re-estimate BN statistics per evaluated path.
        sample_seed: seed of the SPOS path and landmark-pair draws.
        optimizer: partial optimiser; scheduler: partial LR scheduler called with ``T_max`` = total
            steps (``scheduler_interval=step``) or epochs (``epoch``), e.g. `CosineAnnealingLR`.
    """

    def __init__(self, data_info: dict, optimizer: Callable, scheduler: Callable | None = None, channels: int = 16,
                 cells_per_stage: int = 5, landmarks: int = 30, landmark_choice: str = "spread", landmark_seed: int = 0,
                 landmark_coef: float = 10.0, landmark_schedule: str = "cosine_step", landmark_warmup_epochs: float = 5,
                 landmark_pairs: str = "random_pairwise", landmark_num_pairs: int = 1, landmark_batch: str = "train",
                 bn_running_stats: bool = True, calib_batches: int = 4, sample_seed: int = 0,
                 scheduler_interval: str = "step") -> None:
        super().__init__(loss=nn.CrossEntropyLoss(), optimizer=optimizer, scheduler=scheduler,
                         scheduler_interval=scheduler_interval)
        for name, value, allowed in (("landmark_pairs", landmark_pairs, PAIR_MODES), ("landmark_schedule", landmark_schedule, SCHEDULES),
                                     ("landmark_batch", landmark_batch, LANDMARK_BATCHES)):
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        if landmark_coef < 0 or landmark_warmup_epochs < 0 or landmark_num_pairs < 1 or calib_batches < 1:
            raise ConfigError(f"need landmark_coef ≥ 0, landmark_warmup_epochs ≥ 0, landmark_num_pairs ≥ 1 and calib_batches ≥ 1, got "
                              f"{landmark_coef}, {landmark_warmup_epochs}, {landmark_num_pairs}, {calib_batches}")
        self.supernet = Supernet(int(data_info["num_classes"]), channels, cells_per_stage, bn_running_stats)
        self.truth_archs = [SPACE.from_str(s).op_indices for s in data_info["truth_archs"]]
        self.truth_values = torch.tensor(list(data_info["truth_values"]), dtype=torch.float64)
        if not 2 <= landmarks <= len(self.truth_archs) - 2:
            raise ConfigError(f"landmarks={landmarks} of {len(self.truth_archs)} ground-truth architectures; allowed: "
                              f"2..{len(self.truth_archs) - 2} (at least 2 must stay held out for val/ktau)")
        #: landmark rows of the ground truth, best first; every other row is held out for ranking
        self.landmarks = choose_landmarks(self.truth_values.numpy(), landmarks, landmark_choice, landmark_seed)
        self.heldout = np.setdiff1d(np.arange(len(self.truth_archs)), self.landmarks)
        self.coef, self.warmup, self.pair_mode = landmark_coef, landmark_warmup_epochs, landmark_pairs
        self.schedule, self.landmark_batch = landmark_schedule, landmark_batch
        self.num_pairs, self.calib_batches, self.sample_seed = landmark_num_pairs, calib_batches, sample_seed
        self._bn_stats: list = []
        self._correct = torch.zeros(0)
        self._seen = 0
        self._train_seconds, self._batch_start = 0.0, 0.0
        #: seconds of training batches of each finished epoch (validation excluded), for benchmarks
        self.epoch_times: list[float] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.supernet(x)

    def _path_loss(self, choice: Choice, x: Tensor, y: Tensor) -> Tensor:
        self.supernet.set_arch(choice)
        return self.loss_fn(self.supernet(x), y)

    def coefficient(self, batch_idx: int) -> float:
        """The landmark coefficient of this step under `landmark_schedule`."""
        if self.schedule == "cosine_increase":
            return cosine_increase_coef(self.current_epoch, self.coef, self.warmup, self.trainer.max_epochs)
        epoch = self.current_epoch + batch_idx / max(self.trainer.num_training_batches, 1)
        return landmark_coef(epoch, self.coef, self.warmup, self.trainer.max_epochs)

    def landmark_inputs(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """The batch the landmark pair is evaluated on: the step's own or a held-out one."""
        if self.landmark_batch == "train":
            return batch
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "heldout_batch"):
            raise ConfigError("landmark_batch=heldout needs an image datamodule (data=images_*); allowed otherwise: train")
        x, y = datamodule.heldout_batch(self.global_step)
        return x.to(self.device), y.to(self.device)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = self._path_loss(sample_arch(self.sample_seed, self.global_step), x, y)
        coef = self.coefficient(batch_idx)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log("train/landmark_coef", coef, on_step=False, on_epoch=True, batch_size=len(y))
        if coef == 0:
            return loss
        rng = np.random.default_rng([self.sample_seed, self.global_step, 1])
        pairs = landmark_pairs(len(self.landmarks), self.pair_mode, rng, self.num_pairs)
        used = np.unique(pairs)  # each landmark's loss is computed once, however many pairs use it
        lx, ly = self.landmark_inputs(batch)
        losses = torch.stack([self._path_loss(self.truth_archs[self.landmarks[p]], lx, ly) for p in used])
        better, worse = losses[np.searchsorted(used, pairs[:, 0])], losses[np.searchsorted(used, pairs[:, 1])]
        term = landmark_loss(better, worse)
        self.log("train/landmark_loss", term, on_step=False, on_epoch=True, batch_size=len(ly))
        self.log("train/landmark_pair_acc", (better < worse).float().mean(), on_step=False, on_epoch=True, batch_size=len(ly))
        return loss + coef * term

    # timing of the training batches only (validation runs inside Lightning's train epoch)
    def on_train_epoch_start(self) -> None:
        self._train_seconds = 0.0

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self._train_seconds += time.perf_counter() - self._batch_start

    def on_train_epoch_end(self) -> None:
        self.epoch_times.append(self._train_seconds)
        self.log("train/epoch_time_s", self._train_seconds)

    # ranking: per-architecture accuracy of the inherited weights, with recalibrated BN
    def _start_ranking(self) -> None:
        datamodule = self.trainer.datamodule if self.trainer else None
        if datamodule is None or not hasattr(datamodule, "calibration_batches"):
            raise ConfigError("the supernet needs an image datamodule (data=images_*) for BN calibration batches")
        if self.supernet.running_stats:
            batches = [(x.to(self.device), y.to(self.device)) for x, y in datamodule.calibration_batches(self.calib_batches)]
            self._bn_stats = [self.supernet.calibrate_bn(choice, batches) for choice in self.truth_archs]
        self._correct = torch.zeros(len(self.truth_archs), device=self.device)
        self._seen = 0

    @torch.no_grad()
    def _rank_batch(self, batch: tuple[Tensor, Tensor]) -> None:
        x, y = batch
        for k, choice in enumerate(self.truth_archs):
            if self.supernet.running_stats:
                self.supernet.load_bn(self._bn_stats[k])
            self.supernet.set_arch(choice)
            self._correct[k] += (self.supernet(x).argmax(1) == y).sum()
        self._seen += len(y)

    def _accuracies(self) -> np.ndarray:
        """Accuracy (%) of every ground-truth architecture, summed over all ranks' images."""
        correct = self.trainer.strategy.reduce(self._correct, reduce_op="sum")
        seen = self.trainer.strategy.reduce(torch.tensor(float(self._seen), device=self.device), reduce_op="sum")
        return (100.0 * correct / seen.clamp_min(1)).double().cpu().numpy()

    def _update(self, metrics) -> np.ndarray:
        acc = self._accuracies()
        rows = torch.from_numpy(self.heldout)
        metrics.update(torch.from_numpy(acc[self.heldout]), self.truth_values[rows], rows)
        return acc

    def on_validation_epoch_start(self) -> None:
        self._start_ranking()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._rank_batch(batch)

    def on_validation_epoch_end(self) -> None:
        acc = self._update(self.val_metrics)
        landmark_tau = kendalltau(acc[self.landmarks], self.truth_values.numpy()[self.landmarks]).statistic
        self.log("val/landmark_ktau", float(np.nan_to_num(landmark_tau)))
        super().on_validation_epoch_end()

    def on_test_epoch_start(self) -> None:
        self._start_ranking()

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._rank_batch(batch)

    def on_test_epoch_end(self) -> None:
        self._update(self.test_metrics)
        super().on_test_epoch_end()
