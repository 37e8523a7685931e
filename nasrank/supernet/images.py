"""Image data for weight-sharing supernets: CIFAR-10/100, ImageNet16-120 and an embedded default.

Loaders read the files the benchmarks trained on, in their published formats, and return an
`ImageSet` of uint8 NHWC arrays; every pickle goes through `safe_load` with numpy globals only.

- CIFAR-10 (python version): ``data_batch_1..5``, ``test_batch``, ``batches.meta`` (``label_names``).
- CIFAR-100 (python version): ``train``, ``test``, ``meta`` (``fine_label_names``; fine labels are used).
- ImageNet16-120 (NB201's downsampled ImageNet 16x16): ``train_data_batch_1..10`` and ``val_data``,
  each a dict with ``data`` (N, 3072) and 1-based ``labels``; NB201 keeps labels 1..120.
- ``digits`` (embedded default): scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10
  classes, read from a file inside the package, nothing downloaded).  Grey levels 0..16 become
  0..255 and are copied to 3 channels so the NB201 stem (3 input channels) takes them unchanged; a
  fixed half (seed 0, 898 images) is the test set, since the data ships without one: a large test
  set keeps the standalone ground-truth accuracies precise.

The original files were pickled by Python 2, whose byte strings only load with ``latin1``.
`ImageDataModule` serves seeded train/val splits of the training images plus the test set, and the
ground truth (evaluation architectures with known accuracies) that supernet rankings are judged by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.benchmarks.safe_pickle import NUMPY_GLOBALS, safe_load
from nasrank.core import ConfigError, CorruptDataError, require_file, resolve_data_dir
from nasrank.data.datamodule import EpochSeededSampler
from nasrank.data.splits import Split, resolve_size

DIGITS_TEST = 0.5
IMAGENET16_CLASSES = 120


@dataclass(frozen=True)
class ImageSet:
    """Train and test images (uint8, N x H x W x 3) with int64 labels in 0..num_classes-1.

    `sources` are the files read, so caches built from these images (ground truth) are keyed on them.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    sources: list[Path] = field(default_factory=list)


def _load(path: Path) -> dict:
    """One pickled dict of the official files; keys come back as str under ``latin1``."""
    obj = safe_load(path, NUMPY_GLOBALS, encoding="latin1")
    if not isinstance(obj, dict):
        raise CorruptDataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _field(obj: dict, key: str, path: Path):
    if key not in obj:
        raise CorruptDataError(f"{path}: missing key {key!r}; found {', '.join(map(str, obj)) or 'none'}")
    return obj[key]


def _images(batches: Sequence[tuple[dict, Path]], label_key: str, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack the (N, 3*side*side) channel-major rows of several batches into NHWC uint8 images."""
    xs, ys = [], []
    for obj, path in batches:
        data = np.asarray(_field(obj, "data", path))
        labels = np.asarray(_field(obj, label_key, path), dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * side * side or len(labels) != len(data):
            raise CorruptDataError(f"{path}: 'data' must be uint8 of shape (N, {3 * side * side}) with N labels, "
                                   f"got {data.dtype} {data.shape} and {len(labels)} labels")
        xs.append(data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1))
        ys.append(labels)
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def _files(root: Path, names: Sequence[str], what: str) -> list[Path]:
    how = f"download the python version of {what} and point data_dir at the folder holding {names[0]}"
    return [require_file(root / n, f"{what} file {n}", how) for n in names]


def _check_labels(y: np.ndarray, num_classes: int, path: Path) -> None:
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise CorruptDataError(f"{path}: labels outside 0..{num_classes - 1} (found {y.min()}..{y.max()})")


def load_cifar(root: str | Path, name: str = "cifar10") -> ImageSet:
    """CIFAR-10 or CIFAR-100 from the official python-pickle files in `root`."""
    root = Path(root)
    if name == "cifar10":
        train, test, meta = [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta"
        label_key, names_key = "labels", "label_names"
    elif name == "cifar100":
        train, test, meta = ["train"], "test", "meta"
        label_key, names_key = "fine_labels", "fine_label_names"
    else:
        raise ConfigError(f"unknown CIFAR dataset {name!r}; allowed: cifar10, cifar100")
    paths = _files(root, [*train, test, meta], name.upper())
    num_classes = len(_field(_load(paths[-1]), names_key, paths[-1]))
    train_x, train_y = _images([(_load(p), p) for p in paths[:-2]], label_key, 32)
    test_x, test_y = _images([(_load(paths[-2]), paths[-2])], label_key, 32)
    for y, p in ((train_y, paths[0]), (test_y, paths[-2])):
        _check_labels(y, num_classes, p)
    return ImageSet(train_x, train_y, test_x, test_y, num_classes, paths)


def load_imagenet16(root: str | Path, num_classes: int = IMAGENET16_CLASSES) -> ImageSet:
    """ImageNet16-`num_classes` as NB201 builds it: the first `num_classes` (1-based) labels only."""
    root = Path(root)
    paths = _files(root, [*(f"train_data_batch_{i}" for i in range(1, 11)), "val_data"], "ImageNet16")

    def subset(batches: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        x, y = _images([(_load(p), p) for p in batches], "labels", 16)
        keep = (y >= 1) & (y <= num_classes)
        return x[keep], y[keep] - 1

    train_x, train_y = subset(paths[:-1])
    test_x, test_y = subset(paths[-1:])
    return ImageSet(train_x, train_y, test_x, test_y, num_classes, paths)


def load_digits_images() -> ImageSet:
    """scikit-learn's bundled 8x8 digits as 3-channel uint8 images, with a fixed 50 % test set."""
    import sklearn.datasets

    digits = sklearn.datasets.load_digits()
    source = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
    x = np.repeat(np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None], 3, axis=-1)
    y = digits.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    n_test = int(round(DIGITS_TEST * len(y)))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return ImageSet(x[train], y[train], x[test], y[test], 10, [source])


#: loader of each dataset, given the data dir; the folders are the official archives' (NB201's for ImageNet16)
DATASETS: dict[str, Callable[[Path], ImageSet]] = {
    "digits": lambda root: load_digits_images(),
    "cifar10": lambda root: load_cifar(root / "cifar-10-batches-py", "cifar10"),
    "cifar100": lambda root: load_cifar(root / "cifar-100-python", "cifar100"),
    "imagenet16": lambda root: load_imagenet16(root / "ImageNet16"),
}


class ImageDataModule(L.LightningDataModule):
    """Seeded train/val split of a dataset's training images, its test images, and the ground truth.

    Args:
        dataset: one of `DATASETS`; files are read from ``<data_dir>/cifar-10-batches-py/``,
            ``<data_dir>/cifar-100-python/`` or ``<data_dir>/ImageNet16/`` (nothing for ``digits``).
        n_train, n_val: training / validation images drawn from the training set (counts or fractions);
            `n_train=None` takes every image not in validation.  Validation images rank the supernet
            during training; the test images give the final ranking.
        split_seed: seed of that split and of the fixed BN-calibration batches (keep it fixed across
            runs: a standalone ground truth is trained on this split).
        seed: seed of the training batch order (the run's seed).
        image_size: resize (bilinear) to this side, e.g. to give 8x8 digits more spatial positions.
        augment: random crop (4 px zero padding) and horizontal flip of training batches (CIFAR recipe).
        truth: ``truth(datamodule) -> Benchmark`` of evaluation architectures with known accuracies
            (`nasrank.supernet.truth`); built lazily, since it may train networks or read a table.
    """

    def __init__(self, dataset: str, data_dir: str | Path | None = None, n_train: int | float | None = None,
                 n_val: int | float = 0.1, split_seed: int = 0, seed: int = 0, batch_size: int = 64, eval_batch_size: int = 512,
                 image_size: int | None = None, augment: bool = False,
                 truth: Callable[["ImageDataModule"], Benchmark] | None = None, num_workers: int = 0) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ConfigError(f"unknown image dataset {dataset!r}; allowed: {', '.join(DATASETS)}")
        if batch_size < 1 or eval_batch_size < 1:
            raise ConfigError(f"batch sizes must be ≥ 1, got batch_size={batch_size}, eval_batch_size={eval_batch_size}")
        self.save_hyperparameters(ignore=["truth"])
        self.truth_factory = truth
        self.images = DATASETS[dataset](resolve_data_dir(data_dir))
        pool = len(self.images.train_y)
        n_va = resolve_size(n_val, pool, "n_val")
        n_tr = pool - n_va if n_train is None else resolve_size(n_train, pool, "n_train")
        if n_tr < 1 or n_tr + n_va > pool:
            raise ConfigError(f"n_train + n_val = {n_tr + n_va} images; allowed: 1..{pool} training images of {dataset}")
        perm = np.random.default_rng(split_seed).permutation(pool)
        self.split = Split(np.sort(perm[n_va:n_va + n_tr]), np.sort(perm[:n_va]), np.arange(len(self.images.test_y)))
        self.train_x, self.test_x = self._to_tensor(self.images.train_x), self._to_tensor(self.images.test_x)
        self.train_y, self.test_y = torch.from_numpy(self.images.train_y), torch.from_numpy(self.images.test_y)
        pixels = self.train_x[torch.from_numpy(self.split.train)].float().div_(255)
        self.mean = pixels.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
        self.std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, -1, 1, 1)

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        """NCHW uint8 (kept as bytes: 4x less memory than float; batches are normalised on the fly)."""
        t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        size = self.hparams.image_size
        if size and size != t.shape[-1]:
            t = F.interpolate(t.float(), size=(size, size), mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)
        return t

    @cached_property
    def benchmark(self) -> Benchmark:
        """Evaluation architectures and their true accuracies (what supernet rankings are scored against)."""
        if self.truth_factory is None:
            raise ConfigError("this image data config has no ground truth; set data.truth (see conf/data/images_digits.yaml)")
        return self.truth_factory(self)

    @property
    def dataset_name(self) -> str:
        return self.hparams.dataset

    def data_info(self) -> dict:
        """Sizes the supernet builds itself from, plus the ground truth as plain lists (config-safe)."""
        truth = self.benchmark
        (target,) = truth.targets
        return dict(num_classes=self.images.num_classes, in_channels=int(self.train_x.shape[1]),
                    image_size=int(self.train_x.shape[-1]), space=truth.space.name, truth_target=target,
                    truth_archs=[a.to_str() for a in truth.archs], truth_values=truth.targets[target].tolist())

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float().div_(255) - self.mean) / self.std

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """Random 4-px shifted crop (zero padding) and horizontal flip, per image, vectorised."""
        n, _, h, w = x.shape
        padded = F.pad(x, (4, 4, 4, 4))
        dy, dx = torch.randint(0, 9, (2, n))
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, x.shape[1], h, w + 8)
        x = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, x.shape[1], h, w)
        x = x.gather(3, cols)
        flip = torch.rand(n) < 0.5
        x[flip] = x[flip].flip(-1)
        return x

    def batch(self, rows: Sequence[int] | torch.Tensor, train: bool, augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float images and labels of these rows of the training (or test) images."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        x, y = (self.train_x, self.train_y) if train else (self.test_x, self.test_y)
        x = self.normalise(x[rows])
        return (self._augment(x) if augment else x), y[rows]

    def _loader(self, rows: np.ndarray, train: bool, shuffle: bool) -> DataLoader:
        augment = shuffle and self.hparams.augment
        sampler = EpochSeededSampler(len(rows), self.hparams.seed) if shuffle else None
        size = self.hparams.batch_size if shuffle else self.hparams.eval_batch_size
        return DataLoader(range(len(rows)), batch_size=size, sampler=sampler, num_workers=self.hparams.num_workers,
                          collate_fn=lambda ix: self.batch(rows[np.asarray(ix)], train, augment))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.split.train, train=True, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split.val, train=True, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split.test, train=False, shuffle=False)

    def heldout_batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `index` of an endless stream over the validation images: each pass is a fresh
        seeded shuffle cut into `batch_size` batches (the last one of a pass may be smaller), with
        the training augmentation.  This is the official landmark term's separate batch (its
        ``RepeatedDataLoader`` over the held-out half of the training images); a function of
        (seed, index) only, so a resumed run draws the same batches."""
        rows, size = self.split.val, self.hparams.batch_size
        if len(rows) == 0:
            raise ConfigError("a held-out landmark batch needs validation images; allowed: n_val ≥ 1")
        per_pass = -(-len(rows) // size)
        order = np.random.default_rng([self.hparams.seed, index // per_pass, 2]).permutation(rows)
        start = (index % per_pass) * size
        return self.batch(order[start:start + size], train=True, augment=self.hparams.augment)

    def calibration_batches(self, num_batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A fixed set of training batches (no augmentation) for re-estimating BN statistics.

        Fixed, so evaluating the same weights twice gives the same ranking.
        """
        rows = np.random.default_rng([self.hparams.split_seed, 1]).permutation(self.split.train)
        size = self.hparams.batch_size
        return [self.batch(rows[i:i + size], train=True) for i in range(0, min(len(rows), num_batches * size), size)]
