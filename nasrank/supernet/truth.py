"""Ground truth for landmark regularisation: the true order of evaluation (and landmark) cells.

`truth(datamodule) -> Benchmark`, set as ``data.truth``, comes from the NB201 table for CIFAR-10/100 and
ImageNet16-120 at the full NB201 size, or from training each evaluation architecture standalone with
one fixed short recipe (`standalone_truth`, cached) for any other data.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.core import cached_arrays, ConfigError
from nasrank.spaces.nb201 import OPS, SPACE, NB201Arch
from nasrank.supernet.cells import NB201Network
from nasrank.supernet.landmarks import rank_spread

if TYPE_CHECKING:
    from nasrank.supernet.images import ImageDataModule

log = logging.getLogger(__name__)
#: the NB201 table's target for each image dataset it was trained on
NB201_TARGETS = {"cifar10": "cifar10/test_acc", "cifar100": "cifar100/test_acc", "imagenet16": "imagenet16/test_acc"}
_CONVS = {"nor_conv_1x1", "nor_conv_3x3"}
#: part of the standalone-truth cache key: bump when `train_standalone` changes what it measures
TRUTH_VERSION = 1
#: how `nb201_table_truth` picks its cells (`table_rows`)
TRUTH_CHOICES = ("spread", "uniform")


def spanning_archs(num: int, seed: int = 0) -> list[NB201Arch]:
    """`num` non-isomorphic NB201 cells spanning the space: an equal share for each count of
    convolutions on the cell (0..6), drawn at random (seeded) inside each count.

    Stratifying by convolutions spreads parameter counts and depth, hence accuracies; one cell per
    isomorphism class avoids duplicate rows (all cells with a disconnected output are one class).
    """
    if num < 2:
        raise ConfigError(f"need at least 2 evaluation architectures, got {num}")
    rng = np.random.default_rng(seed)
    groups: dict[int, list[NB201Arch]] = {}
    seen: set[str] = set()
    for arch in SPACE.enumerate():
        if (key := arch.iso_key()) not in seen:
            seen.add(key)
            groups.setdefault(sum(op in _CONVS for op in arch.ops), []).append(arch)
    pools = [list(rng.permutation(len(g))) for _, g in sorted(groups.items())]
    chosen: list[NB201Arch] = []
    while len(chosen) < num:
        for (_, g), pool in zip(sorted(groups.items()), pools):
            if pool and len(chosen) < num:
                chosen.append(g[pool.pop()])
    return chosen


def table_rows(values: np.ndarray, iso_keys: list, num: int, choice: str, seed: int) -> np.ndarray:
    """Rows of a table to use as ground truth, best first: ``spread``, `num` rows evenly spaced in `values`,
    one per isomorphism class; ``uniform``, a seeded uniform draw without replacement from every row,
    isomorphic ones included, as the official landmark code draws its landmarks and evaluation pool."""
    if choice not in TRUTH_CHOICES:
        raise ConfigError(f"data.truth.choice={choice!r}; allowed: {', '.join(TRUTH_CHOICES)}")
    values = np.asarray(values)
    if choice == "uniform":
        if not 2 <= num <= len(values):
            raise ConfigError(f"cannot draw {num} ground-truth cells of {len(values)}; allowed: 2..{len(values)}")
        rows = np.random.default_rng(seed).choice(len(values), num, replace=False)
        return rows[np.argsort(-values[rows], kind="stable")]
    _, first = np.unique(np.asarray(iso_keys), return_index=True)
    return first[rank_spread(values[first], num)]


def nb201_table_truth(images: ImageDataModule, num_archs: int = 100, data_dir: str | None = None,
                      cache_dir: str | None = None, choice: str = "spread", seed: int = 0) -> Benchmark:
    """`num_archs` cells of the NB201 table (`table_rows`: evenly spaced in accuracy, or a uniform draw
    seeded by `seed`) with their 200-epoch test accuracy on the datamodule's dataset (valid at C=16, N=5)."""
    from nasrank.benchmarks.nb201_table import load_nb201_table

    target = NB201_TARGETS.get(images.dataset_name)
    if target is None:
        raise ConfigError(f"the NB201 table has no {images.dataset_name!r} accuracies; allowed datasets: "
                          f"{', '.join(NB201_TARGETS)} (use standalone_truth for other data)")
    table = load_nb201_table(data_dir, cache_dir)
    rows = table_rows(table.target(target), table.iso_keys(), num_archs, choice, seed)
    return Benchmark(f"nb201-{images.dataset_name}", SPACE, [table.archs[i] for i in rows], {target: table.target(target)[rows]})


def train_standalone(arch: NB201Arch, images: ImageDataModule, seed: int, channels: int, cells_per_stage: int,
                     epochs: int, lr: float, weight_decay: float, batch_size: int) -> float:
    """Test accuracy (%) of `arch` trained alone on the training split: SGD (momentum 0.9, Nesterov),
    cosine learning rate to 0, cross-entropy; the same recipe for every architecture."""
    torch.manual_seed(seed)
    net = NB201Network.from_arch(arch, images.images.num_classes, channels, cells_per_stage)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    size = batch_size
    steps_per_epoch = math.ceil(len(images.split.train) / size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    net.train()
    for epoch in range(epochs):  # batch order from (seed, epoch) only: the truth ignores the run's seed
        order = np.random.default_rng([seed, epoch]).permutation(images.split.train)
        for start in range(0, len(order), size):
            x, y = images.batch(order[start:start + size], train=True, augment=images.hparams.augment)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in images.test_dataloader():
            correct += int((net(x).argmax(1) == y).sum())
    return 100.0 * correct / len(images.split.test)


def standalone_table(images: ImageDataModule, num_archs: int = 50, arch_seed: int = 0, channels: int = 8,
                     cells_per_stage: int = 1, epochs: int = 10, lr: float = 0.05, weight_decay: float = 5e-4,
                     repeats: int = 1, batch_size: int | None = None, cache_dir: str | None = None) -> dict[str, np.ndarray]:
    """Train `spanning_archs(num_archs)` standalone, `repeats` seeds each; cached per dataset files,
    split and recipe, so it is paid once.  `batch_size` defaults to the datamodule's, so a supernet
    recipe can change its own batch size and keep the same truth.  Arrays: ``ops`` (archs x 6 op indices), ``acc`` (archs x
    repeats, test accuracy %), ``seconds`` (total training time of the build)."""
    if epochs < 1 or repeats < 1:
        raise ConfigError(f"standalone truth needs epochs ≥ 1 and repeats ≥ 1, got {epochs} and {repeats}")
    archs = spanning_archs(num_archs, arch_seed)
    size = batch_size or images.hparams.batch_size
    split = {k: images.hparams[k] for k in ("n_train", "n_val", "split_seed", "image_size", "augment")} | {"batch_size": size}
    recipe = dict(version=TRUTH_VERSION, dataset=images.dataset_name, split=split,
                  archs=[a.to_str() for a in archs], channels=channels, cells_per_stage=cells_per_stage, epochs=epochs,
                  lr=lr, weight_decay=weight_decay, repeats=repeats)

    def build() -> dict[str, np.ndarray]:
        acc = np.zeros((len(archs), repeats))
        start = time.perf_counter()
        for i, arch in enumerate(archs):
            for r in range(repeats):
                acc[i, r] = train_standalone(arch, images, r, channels, cells_per_stage, epochs, lr, weight_decay, size)
            log.info("standalone %d/%d %s: %.2f%% (%.0f s so far)", i + 1, len(archs), arch.to_str(), acc[i].mean(), time.perf_counter() - start)
        return {"ops": np.array([a.op_indices for a in archs], dtype=np.int8), "acc": acc,
                "seconds": np.array([time.perf_counter() - start])}

    return cached_arrays("landmark_truth", images.images.sources, build, cache_dir, extra=json.dumps(recipe, sort_keys=True))


def standalone_truth(images: ImageDataModule, **recipe) -> Benchmark:
    """Ground truth from `standalone_table` (same arguments): mean test accuracy over the repeats."""
    arrays = standalone_table(images, **recipe)
    key = f"{images.dataset_name}/test_acc"
    return Benchmark(f"standalone-{images.dataset_name}", SPACE, [NB201Arch(tuple(OPS[i] for i in row)) for row in arrays["ops"]],
                     {key: arrays["acc"].mean(1)})
