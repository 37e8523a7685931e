"""Weight-sharing NB201 supernet trained with single-path uniform sampling (SPOS, Guo et al. 2020),
optionally with landmark regularisation (`nasrank.supernet.landmarks`), ranked against ground truth.

The network is NB201's own skeleton (`nasrank.supernet.cells.NB201Network`: stem, 3 stages of N cells
with C, 2C, 4C channels, residual reduction blocks, GAP, classifier) with a cell whose 6 edges each
hold all 5 ops.  Every training step samples one cell uniformly (the same cell in every position, as
an NB201 architecture is one repeated cell) and trains only that path.  To score an architecture
the supernet runs it with the inherited weights after re-estimating BatchNorm statistics on a few
fixed training batches (as SPOS does): running statistics gathered while paths changed every step
belong to no single path.

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
from nasrank.supernet.landmarks import PAIR_MODES, landmark_coef, landmark_loss, landmark_pairs, rank_spread

Choice = tuple[int, ...]


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
    """NB201 network whose cells are `SupernetCell`s; `set_arch` picks the active cell everywhere."""

    def __init__(self, num_classes: int, channels: int = 16, cells_per_stage: int = 5) -> None:
        super().__init__()
        self.net = NB201Network(SupernetCell, num_classes, channels, cells_per_stage)
        self.cells = [m for m in self.net.modules() if isinstance(m, SupernetCell)]
        self.bns = [m for m in self.net.modules() if isinstance(m, nn.BatchNorm2d)]

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
        landmarks: how many ground-truth architectures are landmarks, evenly spaced in accuracy.
        landmark_coef: final coefficient of the landmark term; 0 trains plain SPOS (the same
            landmarks are still held out of `val/ktau`, so runs with and without compare on one set).
        landmark_warmup_epochs: epochs with coefficient 0 before the cosine increase.
        landmark_pairs: ``random_pairwise`` (`landmark_num_pairs` random pairs per step) or ``all``.
        calib_batches: training batches used to re-estimate BN statistics per evaluated path.
        sample_seed: seed of the SPOS path and landmark-pair draws.
        optimizer: partial optimiser; scheduler: partial LR scheduler called with ``T_max`` = total
            steps (e.g. `CosineAnnealingLR`), stepped every step.
    """

    def __init__(self, data_info: dict, optimizer: Callable, scheduler: Callable | None = None, channels: int = 16,
                 cells_per_stage: int = 5, landmarks: int = 30, landmark_coef: float = 10.0,
                 landmark_warmup_epochs: float = 5, landmark_pairs: str = "random_pairwise", landmark_num_pairs: int = 1,
                 calib_batches: int = 4, sample_seed: int = 0) -> None:
        super().__init__(loss=nn.CrossEntropyLoss(), optimizer=optimizer, scheduler=scheduler)
        if landmark_pairs not in PAIR_MODES:
            raise ConfigError(f"unknown landmark_pairs {landmark_pairs!r}; allowed: {', '.join(PAIR_MODES)}")
        if landmark_coef < 0 or landmark_warmup_epochs < 0 or landmark_num_pairs < 1 or calib_batches < 1:
            raise ConfigError(f"need landmark_coef ≥ 0, landmark_warmup_epochs ≥ 0, landmark_num_pairs ≥ 1 and calib_batches ≥ 1, got "
                              f"{landmark_coef}, {landmark_warmup_epochs}, {landmark_num_pairs}, {calib_batches}")
        self.supernet = Supernet(int(data_info["num_classes"]), channels, cells_per_stage)
        self.truth_archs = [SPACE.from_str(s).op_indices for s in data_info["truth_archs"]]
        self.truth_values = torch.tensor(list(data_info["truth_values"]), dtype=torch.float64)
        if not 2 <= landmarks <= len(self.truth_archs) - 2:
            raise ConfigError(f"landmarks={landmarks} of {len(self.truth_archs)} ground-truth architectures; allowed: "
                              f"2..{len(self.truth_archs) - 2} (at least 2 must stay held out for val/ktau)")
        #: landmark rows of the ground truth, best first; every other row is held out for ranking
        self.landmarks = rank_spread(self.truth_values.numpy(), landmarks)
        self.heldout = np.setdiff1d(np.arange(len(self.truth_archs)), self.landmarks)
        self.coef, self.warmup, self.pair_mode = landmark_coef, landmark_warmup_epochs, landmark_pairs
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

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = self._path_loss(sample_arch(self.sample_seed, self.global_step), x, y)
        epoch = self.current_epoch + batch_idx / max(self.trainer.num_training_batches, 1)
        coef = landmark_coef(epoch, self.coef, self.warmup, self.trainer.max_epochs)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log("train/landmark_coef", coef, on_step=False, on_epoch=True, batch_size=len(y))
        if coef == 0:
            return loss
        rng = np.random.default_rng([self.sample_seed, self.global_step, 1])
        pairs = landmark_pairs(len(self.landmarks), self.pair_mode, rng, self.num_pairs)
        used = np.unique(pairs)  # each landmark's loss is computed once, however many pairs use it
        losses = torch.stack([self._path_loss(self.truth_archs[self.landmarks[p]], x, y) for p in used])
        better, worse = losses[np.searchsorted(used, pairs[:, 0])], losses[np.searchsorted(used, pairs[:, 1])]
        term = landmark_loss(better, worse)
        self.log("train/landmark_loss", term, on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train/landmark_pair_acc", (better < worse).float().mean(), on_step=False, on_epoch=True, batch_size=len(y))
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
        batches = [(x.to(self.device), y.to(self.device)) for x, y in datamodule.calibration_batches(self.calib_batches)]
        self._bn_stats = [self.supernet.calibrate_bn(choice, batches) for choice in self.truth_archs]
        self._correct = torch.zeros(len(self.truth_archs), device=self.device)
        self._seen = 0

    @torch.no_grad()
    def _rank_batch(self, batch: tuple[Tensor, Tensor]) -> None:
        x, y = batch
        for k, choice in enumerate(self.truth_archs):
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

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer, T_max=max(int(self.trainer.estimated_stepping_batches), 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
