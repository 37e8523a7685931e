"""Caches are atomic, keyed by the source and never trusted when damaged; pickles are allow-listed."""

import os
import pickle
import subprocess
import sys
import time
from multiprocessing import get_context

import numpy as np
import pytest
from conftest import kill_once_marked

from nasrank.benchmarks.safe_pickle import safe_load
from nasrank.core import cached_arrays, CorruptDataError, REPO_ROOT, UnsafePickleError


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


def _race(src, cache_dir, marker, barrier) -> None:
    """One worker: wait for the other, then build a cache whose build takes a second."""

    def slow_build():
        arrays = _build_counter(marker)()
        time.sleep(1.0)  # the other worker reaches the cache (ms after the barrier) long before this ends
        return arrays

    barrier.wait(timeout=60)
    arrays = cached_arrays("t", [src], slow_build, cache_dir)
    sys.exit(0 if int(arrays["a"].sum()) == 10 and list(arrays["s"]) == ["ab", "cd"] else 1)


def test_two_processes_build_one_valid_cache(tmp_path):
    """Both workers always overlap (a barrier, then a build far longer than the skew), so without the
    lock both would build; with it the second waits and reuses the first one's file."""
    src, marker = tmp_path / "src.txt", tmp_path / "builds"
    src.write_text("v1")
    ctx = get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [ctx.Process(target=_race, args=(src, tmp_path / "c", marker, barrier)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert marker.read_text() == "x", "both workers built the cache"
    assert [p.name for p in (tmp_path / "c").iterdir()] == [p.name for p in (tmp_path / "c").glob("t-*.npz")]
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1


def _hold_build(src, cache_dir, started, release) -> None:
    """A build of entry "long" that runs until the test creates `release`."""

    def build():
        started.write_text("")
        deadline = time.monotonic() + 30  # past it, a lock that serialises both builds lets the short one go
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"a": np.arange(3)}

    cached_arrays("long", [src], build, cache_dir)


def test_a_long_build_holds_up_no_other_entry(tmp_path):
    """Another process pretraining for minutes must not block a different entry of the same cache."""
    src, cache_dir, started, release = tmp_path / "src.txt", tmp_path / "c", tmp_path / "started", tmp_path / "release"
    src.write_text("v1")
    worker = get_context("spawn").Process(target=_hold_build, args=(src, cache_dir, started, release))
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert worker.is_alive() and time.monotonic() < deadline, "the long build never started"
            time.sleep(0.05)
        out = cached_arrays("short", [src], _build_counter(tmp_path / "builds"), cache_dir)
        assert list(out["a"]) == [0, 1, 2, 3, 4]
        assert not list(cache_dir.glob("long-*.npz")), "the short build waited for the long one to finish"
    finally:
        release.write_text("")
        worker.join(timeout=60)
    assert worker.exitcode == 0
    assert sorted(p.name.split("-")[0] for p in cache_dir.iterdir()) == ["long", "short"], "lock files are left behind"


#: A child that builds a cache and is SIGKILLed halfway through writing it: its file write stops after
#: half the bytes and touches argv[3] so the test knows the kill lands mid-write.
HALF_WRITE_CHILD = """
import os, sys, time
import numpy as np
from nasrank.core import cached_arrays

real_fdopen = os.fdopen

class HalfThenHang:
    def __init__(self, fh):
        self.fh = fh
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.fh.__exit__(*exc)
    def write(self, data):
        self.fh.write(data[: len(data) // 2])
        self.fh.flush()
        open(sys.argv[3], "w").close()
        time.sleep(600)

os.fdopen = lambda fd, mode="r", *a, **k: HalfThenHang(real_fdopen(fd, mode, *a, **k))
cached_arrays("t", [sys.argv[1]], lambda: {"a": np.arange(5), "s": np.array(["ab", "cd"])}, sys.argv[2])
"""


def test_kill_during_cache_write_leaves_no_cache_and_next_load_rebuilds(tmp_path):
    src, cache_dir, writing, marker = tmp_path / "src.txt", tmp_path / "c", tmp_path / "writing", tmp_path / "builds"
    src.write_text("v1")
    child = subprocess.Popen([sys.executable, "-c", HALF_WRITE_CHILD, str(src), str(cache_dir), str(writing)], cwd=REPO_ROOT)
    kill_once_marked(child, writing, 120, "the child never started writing its cache")
    (partial,) = list(cache_dir.glob("*.tmp"))  # beside the killed writer's lock file
    assert partial.stat().st_size > 0, "the kill landed mid-write of a temp file"
    assert not list(cache_dir.glob("*.npz")), "a half-written file sits where the cache is read from"
    out = cached_arrays("t", [src], _build_counter(marker), cache_dir)
    again = cached_arrays("t", [src], _build_counter(marker), cache_dir)
    assert marker.read_text() == "x", "the load after the kill rebuilt once, then reused the rebuilt cache"
    assert list(out["a"]) == list(again["a"]) == [0, 1, 2, 3, 4] and list(again["s"]) == ["ab", "cd"]
    assert not partial.exists() and [p.suffix for p in cache_dir.iterdir()] == [".npz"], \
        "the killed writer's temp and lock files are removed once the entry is rebuilt"


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
