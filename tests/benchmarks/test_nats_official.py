"""Format tests for the official NAS-Bench-201 `.pth` and NATS-Bench TSS `-simple` loaders.

The real files are gigabytes, so each test writes a tiny file in exactly the official layout (the
dict/state-dict structure of ``nas_201_api`` / ``nats_bench`` ``ArchResults.state_dict()``, saved
the way the authors' scripts save it) with real arch strings and made-up but plausible numbers.
Both formats pickle only builtin containers, OrderedDicts and numpy scalars, so no stand-in
classes are needed.
"""

from __future__ import annotations

import bz2
import io
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from nasrank.benchmarks import nats
from nasrank.benchmarks.nats import load_nats_dir, load_nats_pth
from nasrank.core import ConfigError, CorruptDataError, DataNotFoundError, UnsafePickleError

#: NATS/NB201 indices 0, 9 and 123 (asserted by the authors' tss-collect.py), used as a 3-arch file.
ARCHS = [
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
]
SEEDS = (777, 888)
#: Official dataset name -> the eval sets its runs record.
EVAL_SETS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
             "cifar100": ("x-valid", "x-test", "ori-test"), "ImageNet16-120": ("x-valid", "x-test", "ori-test")}
DATASET_NO = {name: k for k, name in enumerate(EVAL_SETS)}


def final_acc(arch: int, dataset: str, split: str, seed: int, epochs: int) -> float:
    """Made-up last-epoch accuracy (%), distinct per arch/dataset/split/seed/budget."""
    offset = 2 * DATASET_NO[dataset] + 0.25 * EVAL_SETS[dataset].index(split) + 0.5 * SEEDS.index(seed)
    return 60.0 + 10 * arch + offset - (20 if epochs == 12 else 0)


def result_count(arch: int, dataset: str, seed: int, epochs: int) -> dict:
    """A ResultsCount state dict (``ResultsCount.state_dict()``): every attribute, weights cleared."""
    acc, loss, times = {}, {}, {}
    for split in EVAL_SETS[dataset]:
        for e in range(epochs):  # earlier epochs are worse, so picking the last one is tested
            acc[f"{split}@{e}"] = final_acc(arch, dataset, split, seed, epochs) - (epochs - 1 - e) * 0.1
            loss[f"{split}@{e}"], times[f"{split}@{e}"] = 1.0 / (e + 1), 0.5
    return {
        "name": dataset, "net_state_dict": None,
        "train_acc1es": {e: 50.0 + e * 0.1 for e in range(epochs)}, "train_acc5es": {e: 90.0 for e in range(epochs)},
        "train_losses": {e: 1.0 for e in range(epochs)}, "train_times": OrderedDict((e, 7.5) for e in range(epochs)),
        "arch_config": {"channel": 16, "num_cells": 5, "arch_str": ARCHS[arch], "class_num": 10},
        "params": 0.1 * (arch + 1) + 0.01 * SEEDS.index(seed), "flop": 10.0 * (arch + 1) + SEEDS.index(seed),
        "seed": seed, "epochs": epochs, "latency": [0.01 * (arch + 1), 0.02 * (arch + 1) + 0.01 * SEEDS.index(seed)],
        "eval_names": list(EVAL_SETS[dataset]), "eval_acc1es": acc, "eval_times": times, "eval_losses": loss,
    }


def arch_results(arch: int, epochs: int, datasets=tuple(EVAL_SETS), seeds=SEEDS) -> dict:
    """An ArchResults state dict (``ArchResults.state_dict()``)."""
    return {"arch_index": arch, "arch_str": ARCHS[arch],
            "all_results": {(d, s): result_count(arch, d, s, epochs) for d in datasets for s in seeds},
            "dataset_seed": {d: list(seeds) for d in datasets}, "clear_net_done": True}


def write_pth(path: Path, less_datasets=tuple(EVAL_SETS), legacy: bool = False, infos=None) -> Path:
    """`NAS-Bench-201-v1_*.pth` layout, as `torch.save(final_infos)` in the authors' statistics.py."""
    order = reversed(range(len(ARCHS)))  # dict order must not matter: rows follow the index
    if infos is None:
        infos = {i: {"full": arch_results(i, 200), "less": arch_results(i, 12, less_datasets)} for i in order}
    data = {"meta_archs": list(ARCHS), "total_archs": len(ARCHS), "arch2infos": infos,
            "evaluated_indexes": list(range(len(ARCHS)))}
    torch.save(data, path, _use_new_zipfile_serialization=not legacy)
    return path


def pbz2_dump(obj, path: Path) -> Path:
    """`nats_bench.api_utils.pickle_save`: pickle protocol 4 inside a BZ2File."""
    with bz2.BZ2File(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)
    return path


def write_dir(root: Path) -> Path:
    """`NATS-tss-v1_0-3ffb9-simple/` layout, as written by the authors' tss-collect.py."""
    root.mkdir()
    pbz2_dump({"meta_archs": list(ARCHS), "total_archs": len(ARCHS), "arch2infos": None,
               "evaluated_indexes": set()}, root / "meta.pickle.pbz2")
    for i in range(len(ARCHS)):
        pbz2_dump(OrderedDict({"12": arch_results(i, 12), "200": arch_results(i, 200)}), root / f"{i:06d}.pickle.pbz2")
    return root


def expected_target(key: str, epochs: int) -> np.ndarray:
    dataset, split = nats.TARGETS[key]
    return np.array([np.mean([final_acc(i, dataset, split, s, epochs) for s in SEEDS]) for i in range(len(ARCHS))])


class Evil:
    """Pickles as a call to os.system: loading it must be refused, not run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pth_values_index_order_and_seed_means(tmp_path, cache, legacy):
    bench = load_nats_pth(write_pth(tmp_path / "nb201.pth", legacy=legacy), cache_dir=cache)
    assert [a.to_str() for a in bench.archs] == ARCHS
    assert set(bench.targets) == set(nats.TARGETS)
    for key in nats.TARGETS:
        np.testing.assert_array_equal(bench.target(key), expected_target(key, 200), err_msg=key)
    # hand-checked: arch 1, CIFAR-100 x-test = 60 + 10 + 2*2 + 0.25*1, seeds +0 / +0.5 -> mean 74.5
    assert bench.target("cifar100/test_acc")[1] == 74.5
    # CIFAR-10 test is the 'cifar10' run's ori-test, validation the 'cifar10-valid' run's x-valid
    assert bench.target("cifar10/test_acc")[0] == np.mean([62.0, 62.5])
    assert bench.target("cifar10/valid_acc")[0] == np.mean([60.0, 60.5])
    np.testing.assert_allclose(bench.cost("cifar100/flops"), [10.5, 20.5, 30.5])
    np.testing.assert_allclose(bench.cost("imagenet16/params"), [0.105, 0.205, 0.305])
    # latency: mean of each run's list, then over seeds: arch 1 -> mean(mean(.02, .04), mean(.02, .05))
    np.testing.assert_allclose(bench.cost("cifar10/latency"), [0.0175, 0.0325, 0.0475])
    assert set(bench.costs) == {f"{d}/{c}" for d in ("cifar10", "cifar100", "imagenet16")
                                for c in ("flops", "params", "latency")}


def test_pth_12_epoch_budget(tmp_path, cache):
    bench = load_nats_pth(write_pth(tmp_path / "nb201.pth"), hp="12", cache_dir=cache)
    for key in nats.TARGETS:
        np.testing.assert_array_equal(bench.target(key), expected_target(key, 12), err_msg=key)


def test_pth_v1_0_less_has_only_cifar10_valid(tmp_path, cache):
    """v1_0-e61699's 12-epoch ('less') results cover cifar10-valid only: other keys are left out."""
    bench = load_nats_pth(write_pth(tmp_path / "v1_0.pth", less_datasets=("cifar10-valid",)), hp=12, cache_dir=cache)
    assert set(bench.targets) == {"cifar10/valid_acc"} and bench.costs == {}
    with pytest.raises(ConfigError, match="cifar10/valid_acc"):
        bench.target("cifar100/test_acc")


def test_pth_unevaluated_arch_is_nan(tmp_path, cache):
    infos = {i: {"full": arch_results(i, 200), "less": arch_results(i, 12)} for i in (0, 2)}
    bench = load_nats_pth(write_pth(tmp_path / "nb201.pth", infos=infos), cache_dir=cache)
    values = bench.target("cifar100/valid_acc")
    assert np.isnan(values[1]) and values[0] == expected_target("cifar100/valid_acc", 200)[0]


def test_pth_numpy1_scalars_load(tmp_path, cache):
    """Authors' files hold numpy scalars pickled under numpy 1's module names: allow exactly those."""
    infos = {i: {"full": arch_results(i, 200), "less": arch_results(i, 12)} for i in range(len(ARCHS))}
    for info in infos.values():
        for rc in info["full"]["all_results"].values():
            rc["flop"], rc["params"] = np.float64(rc["flop"]), np.float32(rc["params"])
    path = write_pth(tmp_path / "np.pth", legacy=True, infos=infos)
    raw = path.read_bytes()
    assert b"numpy._core.multiarray" in raw  # legacy files are plain pickles: rename as numpy 1 wrote it
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    bench = load_nats_pth(path, cache_dir=cache)
    np.testing.assert_allclose(bench.cost("cifar10/flops"), [10.5, 20.5, 30.5])
    np.testing.assert_allclose(bench.cost("cifar10/params"), [0.105, 0.205, 0.305], rtol=1e-6)


def test_dir_matches_pth_and_budgets(tmp_path, cache):
    root = write_dir(tmp_path / "NATS-tss-v1_0-3ffb9-simple")
    (root / "000002.pickle.pbz2").rename(root / "2.pickle.pbz2")  # unpadded names are valid too
    pth = load_nats_pth(write_pth(tmp_path / "nb201.pth"), cache_dir=cache)
    for hp, epochs in (("200", 200), ("12", 12)):
        bench = load_nats_dir(root, hp=hp, cache_dir=cache)
        assert [a.to_str() for a in bench.archs] == ARCHS
        for key in nats.TARGETS:
            np.testing.assert_array_equal(bench.target(key), expected_target(key, epochs), err_msg=key)
    bench = load_nats_dir(root, cache_dir=cache)
    assert bench.costs.keys() == pth.costs.keys()
    for key in pth.costs:
        np.testing.assert_array_equal(bench.cost(key), pth.cost(key), err_msg=key)


def test_second_load_comes_from_cache(tmp_path, cache, monkeypatch):
    path = write_pth(tmp_path / "nb201.pth")
    first = load_nats_pth(path, cache_dir=cache)
    assert list(cache.glob("nats_pth-*.npz"))

    def no_parse(_path):
        raise AssertionError("re-parsed despite a valid cache")

    monkeypatch.setattr(nats, "_torch_load", no_parse)
    second = load_nats_pth(path, cache_dir=cache)
    assert second.archs == first.archs
    np.testing.assert_array_equal(second.target("imagenet16/test_acc"), first.target("imagenet16/test_acc"))
    with pytest.raises(AssertionError, match="re-parsed"):
        load_nats_pth(path, hp="12", cache_dir=cache)  # another budget is another cache entry


def test_bad_hp(tmp_path, cache):
    with pytest.raises(ConfigError, match="hp='90'.*12, 200"):
        load_nats_pth(write_pth(tmp_path / "nb201.pth"), hp="90", cache_dir=cache)


def assert_one_line(err: pytest.ExceptionInfo, path: Path) -> None:
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_paths(tmp_path, cache):
    with pytest.raises(DataNotFoundError, match="NAS-Bench-201-v1_1-096897.pth.*github") as err:
        load_nats_pth(tmp_path / "absent.pth", cache_dir=cache)
    assert_one_line(err, tmp_path / "absent.pth")
    with pytest.raises(DataNotFoundError, match="NATS-tss-v1_0-3ffb9-simple.*github"):
        load_nats_dir(tmp_path / "absent", cache_dir=cache)
    root = write_dir(tmp_path / "simple")
    (root / "000001.pickle.pbz2").unlink()
    with pytest.raises(DataNotFoundError, match="arch 1") as err:
        load_nats_dir(root, cache_dir=cache)
    assert_one_line(err, root / "000001.pickle.pbz2")


def test_wrong_kind_or_format(tmp_path, cache):
    with pytest.raises(CorruptDataError, match="is a directory"):
        load_nats_pth(tmp_path, cache_dir=cache)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CorruptDataError, match="not a readable torch file") as err:
        load_nats_pth(tmp_path / "notes.txt", cache_dir=cache)
    assert_one_line(err, tmp_path / "notes.txt")
    torch.save({"archs": ARCHS}, tmp_path / "other.pth")
    with pytest.raises(CorruptDataError, match="meta_archs"):
        load_nats_pth(tmp_path / "other.pth", cache_dir=cache)
    root = write_dir(tmp_path / "simple")
    (root / "meta.pickle.pbz2").write_bytes(pickle.dumps({"meta_archs": ARCHS}))  # not bz2-compressed
    with pytest.raises(CorruptDataError, match="not a bz2-compressed pickle"):
        load_nats_dir(root, cache_dir=cache)


def test_results_not_matching_meta_archs(tmp_path, cache):
    infos = {i: {"full": arch_results(i, 200), "less": arch_results(i, 12)} for i in range(len(ARCHS))}
    infos[0], infos[1] = infos[1], infos[0]
    with pytest.raises(CorruptDataError, match=r"results of arch 0 are for .*none~1\|nor_conv_3x3~2"):
        load_nats_pth(write_pth(tmp_path / "nb201.pth", infos=infos), cache_dir=cache)
    infos = {i: {"full": {"arch_str": ARCHS[i], "all_results": [1, 2]}} for i in range(len(ARCHS))}
    with pytest.raises(CorruptDataError, match="arch 0 is not an ArchResults state dict"):
        load_nats_pth(write_pth(tmp_path / "bad.pth", infos=infos), cache_dir=cache)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_pth(tmp_path, cache, legacy):
    path = write_pth(tmp_path / "nb201.pth", legacy=legacy)
    raw = path.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 5):
        path.write_bytes(raw[:cut])
        with pytest.raises(CorruptDataError, match="truncated or corrupt") as err:
            load_nats_pth(path, cache_dir=cache)
        assert_one_line(err, path)


def test_truncated_pbz2(tmp_path, cache):
    root = write_dir(tmp_path / "simple")
    target = root / "000001.pickle.pbz2"
    target.write_bytes(target.read_bytes()[:-20])
    with pytest.raises(CorruptDataError, match="truncated or corrupt") as err:
        load_nats_dir(root, cache_dir=cache)
    assert_one_line(err, target)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pth_with_disallowed_global_is_refused_unrun(tmp_path, cache, legacy):
    marker = tmp_path / "pwned"
    infos = {i: {"full": arch_results(i, 200), "less": Evil(marker)} for i in range(len(ARCHS))}
    path = write_pth(tmp_path / "evil.pth", legacy=legacy, infos=infos)
    with pytest.raises(UnsafePickleError, match=r"refused to load global posix\.system") as err:
        load_nats_pth(path, cache_dir=cache)
    assert_one_line(err, path)
    assert not marker.exists()


@pytest.mark.parametrize("victim", ["meta.pickle.pbz2", "000002.pickle.pbz2"])
def test_pbz2_with_disallowed_global_is_refused_unrun(tmp_path, cache, victim):
    marker = tmp_path / "pwned"
    root = write_dir(tmp_path / "simple")
    pbz2_dump(OrderedDict({"12": arch_results(2, 12), "200": Evil(marker)}) if victim != "meta.pickle.pbz2"
              else {"meta_archs": ARCHS, "x": Evil(marker)}, root / victim)
    with pytest.raises(UnsafePickleError, match=r"posix\.system") as err:
        load_nats_dir(root, cache_dir=cache)
    assert_one_line(err, root / victim)
    assert not marker.exists()


def test_evil_payload_really_runs_when_unpickled_plainly(tmp_path):
    """Proves the refusal tests above can fail: the same payload does run under plain pickle."""
    marker = tmp_path / "pwned"
    pickle.load(io.BytesIO(pickle.dumps(Evil(marker))))
    assert marker.exists()
