"""Image loaders on tiny files written in the official formats, the embedded digits, the DataModule."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch
from conftest import compose_train, needs_nb201

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.core import ConfigError, CorruptDataError, DataNotFoundError, UnsafePickleError
from nasrank.spaces.nb201 import SPACE
from nasrank.supernet.images import ImageDataModule, load_cifar, load_digits_images, load_imagenet16
from nasrank.training import train

# ------------------------------------------------------------------ Python-2 pickles, as the originals were written


def _str(b: bytes) -> bytes:
    """A Python-2 `str` (SHORT_BINSTRING / BINSTRING): raw bytes that Python 3 must decode."""
    return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b


def _int(v: int) -> bytes:
    return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)


def _dump(obj) -> bytes:
    if isinstance(obj, str):
        return _str(obj.encode())
    if isinstance(obj, (int, np.integer)):
        return _int(int(obj))
    if isinstance(obj, list):
        return b"](" + b"".join(map(_dump, obj)) + b"e"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_dump(k) + _dump(v) for k, v in obj.items()) + b"u"
    assert isinstance(obj, np.ndarray) and obj.dtype == np.uint8
    shape = b"(" + b"".join(_int(d) for d in obj.shape) + b"t"
    dtype = b"cnumpy\ndtype\n" + _str(b"u1") + b"K\x00K\x01\x87R(K\x03" + _str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _str(b"b") + b"\x87R(K\x01" + shape + dtype
            + b"\x89" + _str(obj.tobytes()) + b"tb")


def py2_pickle(obj) -> bytes:
    """What Python 2's cPickle (protocol 2) wrote for the CIFAR / ImageNet16 batch dicts."""
    return b"\x80\x02" + _dump(obj) + b"."


def rows(n: int, side: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3 * side * side), dtype=np.uint8)


@pytest.fixture
def cifar10(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(py2_pickle({"batch_label": f"training batch {i} of 5", "data": rows(4, 32, i),
                                                           "labels": [i, 0, 9, 3], "filenames": ["a.png"] * 4}))
    (root / "test_batch").write_bytes(py2_pickle({"data": rows(3, 32, 9), "labels": [1, 2, 3]}))
    (root / "batches.meta").write_bytes(py2_pickle({"label_names": [f"c{k}" for k in range(10)], "num_vis": 3072}))
    return root


def test_py2_batches_need_latin1():
    """The helper really writes Python-2 byte strings: the default ASCII decoding refuses them."""
    with pytest.raises(UnicodeDecodeError, match="'ascii' codec can't decode byte"):
        pickle.loads(py2_pickle({"data": np.full((1, 3), 200, dtype=np.uint8)}))


def test_cifar10_batches_load_as_nhwc(cifar10):
    images = load_cifar(cifar10, "cifar10")
    assert images.train_x.shape == (20, 32, 32, 3) and images.train_x.dtype == np.uint8
    assert images.test_x.shape == (3, 32, 32, 3) and images.num_classes == 10
    assert images.train_y[:4].tolist() == [1, 0, 9, 3] and images.test_y.tolist() == [1, 2, 3]
    # channel-major rows: the first 1024 values are the red plane
    assert (images.train_x[0, :, :, 0].ravel() == rows(4, 32, 1)[0, :1024]).all()
    assert (images.train_x[0, :, :, 2].ravel() == rows(4, 32, 1)[0, 2048:]).all()


def test_cifar100_uses_fine_labels(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    for name, n in (("train", 5), ("test", 2)):
        (root / name).write_bytes(py2_pickle({"data": rows(n, 32, n), "fine_labels": list(range(95, 95 + n)), "coarse_labels": [0] * n}))
    (root / "meta").write_bytes(py2_pickle({"fine_label_names": [f"f{k}" for k in range(100)], "coarse_label_names": ["c"] * 20}))
    images = load_cifar(root, "cifar100")
    assert images.num_classes == 100 and images.train_y.tolist() == [95, 96, 97, 98, 99]
    assert images.test_x.shape == (2, 32, 32, 3)


def test_imagenet16_keeps_first_120_classes_zero_based(tmp_path):
    root = tmp_path / "ImageNet16"
    root.mkdir()
    for i in range(1, 11):
        (root / f"train_data_batch_{i}").write_bytes(py2_pickle({"data": rows(3, 16, i), "labels": [1, 120, 121], "mean": rows(1, 16, 0)}))
    (root / "val_data").write_bytes(py2_pickle({"data": rows(2, 16, 0), "labels": [500, 7]}))
    images = load_imagenet16(root)
    assert images.train_x.shape == (20, 16, 16, 3) and set(images.train_y.tolist()) == {0, 119}
    assert images.test_y.tolist() == [6] and images.num_classes == 120
    assert (images.train_x[1].transpose(2, 0, 1).ravel() == rows(3, 16, 1)[1]).all()


def test_missing_file_names_it(cifar10):
    (cifar10 / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_3"):
        load_cifar(cifar10, "cifar10")


@pytest.mark.parametrize("content, error, match", [
    (py2_pickle({"data": rows(2, 32, 0)}), CorruptDataError, "missing key 'labels'"),
    (py2_pickle({"data": rows(2, 16, 0), "labels": [0, 1]}), CorruptDataError, r"shape \(N, 3072\)"),
    (py2_pickle({"data": rows(2, 32, 0), "labels": [0, 10]}), CorruptDataError, "labels outside 0..9"),
    (b"\x80\x02cposix\nsystem\n.", UnsafePickleError, "posix.system"),
    (b"\x80\x02}(U\x04data", CorruptDataError, "not a readable pickle"),
])
def test_bad_batch_is_one_clear_error(cifar10, content, error, match):
    (cifar10 / "data_batch_1").write_bytes(content)
    with pytest.raises(error, match=match):
        load_cifar(cifar10, "cifar10")


def test_unknown_dataset_names_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed: digits, cifar10"):
        ImageDataModule("mnist")


def test_digits_embedded_default():
    images = load_digits_images()
    assert images.train_x.shape[1:] == (8, 8, 3) and len(images.train_y) + len(images.test_y) == 1797
    assert images.train_x.max() == 255 and (images.train_x[..., 0] == images.train_x[..., 2]).all()
    assert set(images.train_y.tolist()) == set(range(10)) and images.sources[0].name == "digits.csv.gz"
    again = load_digits_images()
    assert (again.test_y == images.test_y).all()  # a fixed test set: the ground truth is measured on it


def fake_truth(datamodule: ImageDataModule) -> Benchmark:
    archs = [SPACE.from_index(i) for i in (0, 100, 2000, 15624)]
    return Benchmark("fake", SPACE, archs, {"digits/test_acc": np.array([10.0, 50.0, 70.0, 90.0])})


def test_datamodule_split_batches_and_info():
    dm = ImageDataModule("digits", n_train=200, n_val=100, batch_size=32, image_size=16, truth=fake_truth)
    assert (len(dm.split.train), len(dm.split.val)) == (200, 100) and not set(dm.split.train) & set(dm.split.val)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.long
    full = torch.cat([b[0] for b in dm.train_dataloader()])
    assert full.mean(dim=(0, 2, 3)).abs().max() < 1e-4  # normalised with the training split's own statistics
    info = dm.data_info()
    assert info["num_classes"] == 10 and info["image_size"] == 16 and info["truth_values"] == [10.0, 50.0, 70.0, 90.0]
    assert SPACE.from_str(info["truth_archs"][1]) == SPACE.from_index(100)
    calib = dm.calibration_batches(3)
    assert len(calib) == 3 and all(torch.equal(a[0], b[0]) for a, b in zip(calib, dm.calibration_batches(3)))
    assert sum(len(b[1]) for b in dm.test_dataloader()) == len(dm.split.test)


def test_augmentation_shifts_and_flips_but_keeps_shape():
    dm = ImageDataModule("digits", n_val=10, augment=True, batch_size=64)
    torch.manual_seed(0)
    x, _ = dm.batch(np.arange(64), train=True, augment=True)
    plain, _ = dm.batch(np.arange(64), train=True)
    assert x.shape == plain.shape and not torch.equal(x, plain)


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="n_train \\+ n_val"):
        ImageDataModule("digits", n_train=800, n_val=300)
    with pytest.raises(ConfigError, match="no ground truth"):
        ImageDataModule("digits").data_info()


@needs_nb201
def test_cifar10_experiment_wires_files_table_truth_and_supernet(cifar10, tmp_path):
    """The full-size CIFAR-10 setting end to end on tiny official-format files (a tiny network, one step)."""
    cfg = compose_train(["experiment=landmark_nb201_cifar10", f"data.data_dir={cifar10.parent}", "data.n_val=4", "data.batch_size=8",
                         "data.truth.num_archs=10", "model.landmarks=4", "model.channels=2", "model.cells_per_stage=1",
                         "logger=none", "+trainer.fast_dev_run=true"], tmp_path)
    metrics, objects = train(cfg)
    truth = objects["datamodule"].benchmark
    assert len(truth) == 10 and truth.targets["cifar10/test_acc"][0] == pytest.approx(94.373, abs=1e-3)
    idx, _, target = objects["model"].test_predictions  # one step of a 2-channel net: scores may all tie (ktau NaN)
    assert "test/ktau" in metrics and idx.tolist() == objects["model"].heldout.tolist()
    assert target.tolist() == pytest.approx(truth.targets["cifar10/test_acc"][idx].tolist())
