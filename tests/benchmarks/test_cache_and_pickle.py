"""Caches are atomic, keyed by the source and never trusted when damaged; pickles are allow-listed."""

import os
import pickle
from multiprocessing import get_context

import numpy as np
import pytest

from nasrank.benchmarks.cache import cached_arrays
from nasrank.benchmarks.safe_pickle import safe_load
from nasrank.errors import CorruptDataError, UnsafePickleError


def _build_counter(marker):
    def build():
        with open(marker, "a") as fh:
            fh.write("x")
        return {"a": np.arange(5), "s": np.array(["ab", "cd"])}
    return build


def test_cache_hit_and_rebuild_on_source_change(tmp_path):
    src, marker = tmp_path / "src.txt", tmp_path / "builds"
    src.write_text("v1")
    out = cached_arrays("t", [src], _build_counter(marker), tmp_path / "c")
    again = cached_arrays("t", [src], _build_counter(marker), tmp_path / "c")
    assert marker.read_text() == "x" and np.array_equal(out["a"], again["a"]) and list(again["s"]) == ["ab", "cd"]
    src.write_text("v2 longer")
    cached_arrays("t", [src], _build_counter(marker), tmp_path / "c")
    assert marker.read_text() == "xx"


def test_corrupted_cache_is_rebuilt(tmp_path):
    src, marker = tmp_path / "src.txt", tmp_path / "builds"
    src.write_text("v1")
    cached_arrays("t", [src], _build_counter(marker), tmp_path / "c")
    (cache,) = (tmp_path / "c").glob("*.npz")
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache.write_bytes(bytes(data))
    out = cached_arrays("t", [src], _build_counter(marker), tmp_path / "c")
    assert marker.read_text() == "xx" and list(out["a"]) == [0, 1, 2, 3, 4]


def test_failed_build_leaves_no_file(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("v1")

    def boom():
        raise CorruptDataError("bad source")

    with pytest.raises(CorruptDataError, match="bad source"):
        cached_arrays("t", [src], boom, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def _race(args):
    src, cache_dir, marker = args
    return int(cached_arrays("t", [src], _build_counter(marker), cache_dir)["a"].sum())


def test_two_processes_build_one_valid_cache(tmp_path):
    src, marker = tmp_path / "src.txt", tmp_path / "builds"
    src.write_text("v1")
    with get_context("spawn").Pool(2) as pool:
        results = pool.map(_race, [(src, tmp_path / "c", marker)] * 4)
    assert results == [10] * 4
    assert marker.read_text() == "x"  # the lock made the others wait and reuse it
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_disallowed_global_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": evil}))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        safe_load(path)
    assert not marker.exists()


def test_truncated_pickle_is_corrupt(tmp_path):
    path = tmp_path / "half.pkl"
    path.write_bytes(pickle.dumps({"a": list(range(1000))})[:50])
    with pytest.raises(CorruptDataError, match="truncated or corrupt"):
        safe_load(path)
