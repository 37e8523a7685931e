"""Malicious pickles through every loader that unpickles: each payload (os.system, builtins.eval, a
getattr chain, importlib) is refused with one line naming the refused global, and nothing runs; each
loader's allow-list is pinned, so a widened one fails here."""

from __future__ import annotations

import bz2
import importlib
import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from conftest import compose_train

from nasrank.benchmarks import analognas, nats, nbgraph
from nasrank.benchmarks.nats import load_nats_dir, load_nats_pth
from nasrank.core import cached_arrays, ConfigError, CorruptDataError, fingerprint, UnsafePickleError
from nasrank.ranker import Ranker
from nasrank.spaces.nb201 import SPACE
from nasrank.supernet import images
from nasrank.training import train

ARCH = SPACE.from_index(0).to_str()


class Call:
    """Pickles as `fn(*args)`; `fn` may itself be a `Call`, so payloads can chain calls."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args

    def __call__(self) -> None:  # pickle only saves callables as the function of a reduce
        raise NotImplementedError


#: payload name -> (the first global its pickle names, as a regex: protocol 2 spells builtins `__builtin__`,
#: torch drops the module; builder: (marker file, tmp dir) -> an object whose unpickling creates the marker)
PAYLOADS: dict[str, tuple[str, Callable[[Path, Path], Any]]] = {
    "os.system": (r"posix\.system", lambda marker, tmp: Call(os.system, f"touch {marker}")),
    "builtins.eval": (r"((__builtin__|builtins)\.)?eval", lambda marker, tmp: Call(eval, f"open({str(marker)!r}, 'w').close()")),
    "getattr chain": (r"((__builtin__|builtins)\.)?getattr",
                      lambda marker, tmp: Call(Call(getattr, Call(__import__, "os"), "system"), f"touch {marker}")),
    "importlib": (r"importlib\.import_module", lambda marker, tmp: Call(importlib.import_module, evil_module(marker, tmp))),
}


def evil_module(marker: Path, tmp: Path) -> str:
    """A module under `tmp` (on sys.path) that creates `marker` when imported; its name is unique
    per test, so no earlier import is cached."""
    name = f"nasrank_evil_{tmp.name.replace('-', '_')}"
    (tmp / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    return name


@pytest.fixture
def tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def torch_file(path: Path, obj: Any) -> Path:
    torch.save(obj, path)
    return path


def pickle_file(path: Path, obj: Any, compress: bool = False) -> Path:
    data = pickle.dumps(obj, protocol=2)
    path.write_bytes(bz2.compress(data) if compress else data)
    return path


def cifar_dir(root: Path, payload: Any) -> Path:
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        pickle_file(root / name, {"data": payload, "labels": [0], "label_names": ["a"]})
    return root


def imagenet16_dir(root: Path, payload: Any) -> Path:
    for name in [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]:
        pickle_file(root / name, {"data": payload, "labels": [1]})
    return root


def nats_dir(root: Path, payload: Any, in_meta: bool) -> Path:
    root.mkdir()
    pickle_file(root / "meta.pickle.pbz2", {"meta_archs": payload if in_meta else [ARCH]}, compress=True)
    pickle_file(root / "000000.pickle.pbz2", {"200": payload, "12": None}, compress=True)
    return root


#: loader name -> (call of the loader on a file/dir holding `payload` under `tmp`, error type)
LOADERS: dict[str, tuple[Callable[[Path, Any], Any], type]] = {
    "nb201 .pth": (lambda tmp, p: load_nats_pth(torch_file(tmp / "b.pth", {"meta_archs": [ARCH], "arch2infos": {0: p}}),
                                                cache_dir=tmp / "cache"), UnsafePickleError),
    "nats dir meta": (lambda tmp, p: load_nats_dir(nats_dir(tmp / "nats", p, in_meta=True), cache_dir=tmp / "cache"), UnsafePickleError),
    "nats dir arch file": (lambda tmp, p: load_nats_dir(nats_dir(tmp / "nats", p, in_meta=False), cache_dir=tmp / "cache"),
                           UnsafePickleError),
    "nas-bench-graph": (lambda tmp, p: nbgraph.load_nbgraph("cora", path=pickle_file(tmp / "cora.bench", {0: p}), cache_dir=tmp / "cache"),
                        UnsafePickleError),
    "analognas": (lambda tmp, p: analognas.load_analognas(path=pickle_file(tmp / "data.anb", {(0,) * 6: p}), cache_dir=tmp / "cache"),
                  UnsafePickleError),
    "cifar images": (lambda tmp, p: images.load_cifar(cifar_dir(tmp, p), "cifar10"), UnsafePickleError),
    "imagenet16 images": (lambda tmp, p: images.load_imagenet16(imagenet16_dir(tmp, p)), UnsafePickleError),
    "checkpoint (ckpt_path)": (lambda tmp, p: train(compose_train(["debug=fast", f"ckpt_path={torch_file(tmp / 'e.ckpt', {'state_dict': p})}"],
                                                                  tmp / "run")), ConfigError),
    "checkpoint (init_from)": (lambda tmp, p: train(compose_train(["debug=fast", f"init_from={torch_file(tmp / 'e.ckpt', {'state_dict': p})}"],
                                                                  tmp / "run")), ConfigError),
    "ranker artifact": (lambda tmp, p: Ranker.load(torch_file(tmp / "ranker.pt", {"format": "nasrank.ranker", "format_version": 1, "members": p})), CorruptDataError),
}

#: what the torch-read files (checkpoints, ranker artifacts) say instead of naming the refused global
TORCH_REFUSALS = {ConfigError: "is not a readable nasrank checkpoint (UnpicklingError)",
                  CorruptDataError: "is not a nasrank ranker artifact: torch.load(weights_only=True) refused it"}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_run_under_a_plain_unpickler(payload, tmp) -> None:
    """Each payload is live: a plain `pickle.loads` runs it (so "nothing ran" below means something)."""
    marker = tmp / "pwned"
    pickle.loads(pickle.dumps(PAYLOADS[payload][1](marker, tmp)))
    assert marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("loader", LOADERS)
def test_loader_refuses_payload_in_one_line(loader, payload, tmp) -> None:
    marker = tmp / "pwned"
    call, error = LOADERS[loader]
    refused, build = PAYLOADS[payload]
    with pytest.raises(error) as info:
        call(tmp, build(marker, tmp))
    message = str(info.value)
    assert "\n" not in message, message
    if error is UnsafePickleError:  # our loaders name the refused global; checkpoints and artifacts say the file is refused
        assert re.search(f"refused to load global {refused}: not in the allow-list of this loader", message), message
    else:
        assert TORCH_REFUSALS[error] in message, message
    assert not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_cache_holding_a_pickle_is_rebuilt_not_loaded(payload, tmp) -> None:
    """Caches are read with `allow_pickle=False`: a pickled object planted at the cache's path is
    never unpickled; the cache is rebuilt from its source."""
    marker, src, cache_dir = tmp / "pwned", tmp / "src.txt", tmp / "cache"
    src.write_text("v1")
    cache_dir.mkdir()
    planted = np.array([PAYLOADS[payload][1](marker, tmp)], dtype=object)
    np.savez(cache_dir / f"t-{fingerprint([src])}.npz", __meta__=np.frombuffer(b"{}", dtype=np.uint8), a=planted)
    arrays = cached_arrays("t", [src], lambda: {"a": np.arange(3)}, cache_dir)
    assert arrays["a"].tolist() == [0, 1, 2] and not marker.exists()


NUMPY = {("numpy.core.multiarray", "scalar"), ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
         ("numpy._core.multiarray", "_reconstruct"), ("numpy", "dtype"), ("numpy", "ndarray")}


class Spied(Exception):
    """Stops a loader at its unpickling step, once the spy has recorded the allow-list it passed."""


@pytest.mark.parametrize("module, call, allowed, stand_ins", [
    (nbgraph, lambda tmp: nbgraph.load_nbgraph("cora", path=touch(tmp / "x.bench"), cache_dir=tmp / "c"), NUMPY, set()),
    (analognas, lambda tmp: analognas.load_analognas(path=touch(tmp / "x.anb"), cache_dir=tmp / "c"), NUMPY,
     {("analognasbench.data", "Architecture"), ("analognasbench.data", "DriftMeasurement")}),
    (images, lambda tmp: images.load_cifar(cifar_dir(tmp, None), "cifar10"), NUMPY, set()),
    (nats, lambda tmp: load_nats_dir(nats_dir(tmp / "nats", None, in_meta=True), cache_dir=tmp / "c"),
     NUMPY | {("collections", "OrderedDict")}, set()),
], ids=["nas-bench-graph", "analognas", "images", "nats dir"])
def test_allow_lists_are_pinned(module, call, allowed, stand_ins, tmp, monkeypatch) -> None:
    """The exact globals each loader lets a pickle name: numpy's array/scalar rebuilders (and, for the
    NATS archive, OrderedDict); AnalogNAS's own two classes only as bare stand-ins with no code."""
    seen = {}

    def spy(path, allowed=(), stand_ins=None, **kwargs):
        seen.update(allowed=set(allowed), stand_ins=dict(stand_ins or {}))
        raise Spied

    monkeypatch.setattr(module, "safe_load", spy)
    with pytest.raises(Spied):
        call(tmp)
    assert seen["allowed"] == allowed and set(seen["stand_ins"]) == stand_ins
    for (mod, name), cls in seen["stand_ins"].items():
        assert (cls.__module__, cls.__name__, cls.__bases__) == (mod, name, (object,))
        assert set(vars(cls)) <= {"__module__", "__dict__", "__weakref__", "__doc__"}, "a stand-in defines no methods"


def test_torch_allow_list_of_the_pth_loader_is_pinned() -> None:
    """On top of torch's weights-only defaults, the .pth loader allows numpy's rebuilders and the
    numpy dtype classes a pickled dtype is rebuilt as, nothing else."""
    entries = nats._torch_numpy_globals()
    named = {name for entry in entries if isinstance(entry, tuple) for name in [entry[1]]}
    classes = [entry for entry in entries if not isinstance(entry, tuple)]
    assert named == {f"{m}.{n}" for m, n in NUMPY}
    assert classes == [type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG"]


def touch(path: Path) -> Path:
    path.write_bytes(b"x")
    return path
