"""Fetching tables from their public sources: every fault is one line and leaves nothing behind.

Sources are served by a real HTTP server on localhost (`served.FileServer`); the recipes are the
real ones with only their URLs (and, for synthetic files, checksums and expected values) replaced.
The full NB101 build and two concurrent fetches are in test_fetch_nb101.py.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

import hydra
import numpy as np
import pytest
from conftest import NB201_CSV, compose_train, needs_nb201
from served import FileServer
from test_nats_official import ARCHS, expected_target, write_dir

from nasrank.benchmarks import nb101, nb201_table
from nasrank.benchmarks.fetch import Source, fetch, locate
from nasrank.core import CorruptDataError, DataNotFoundError, DownloadError, REPO_ROOT
from nasrank.spaces.nb101 import NUM_CELLS

TAR = nb201_table.ARCHIVE_SOURCE.filename


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


def npy(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, values)
    return buf.getvalue()


def serve_arrays(server: FileServer) -> dict[str, str]:
    """Synthetic ObfuNAS arrays of the real length (so of the real byte size); returns their sha256."""
    rng = np.random.default_rng(0)
    arrays = {"test.npy": rng.integers(0, 9985, NUM_CELLS) / 9984, "flops.npy": rng.integers(10**7, 10**10, NUM_CELLS).astype(np.float64)}
    for name, values in arrays.items():
        server.files[name] = npy(values)
    return {name: hashlib.sha256(data).hexdigest() for name, data in server.files.items()}


def nb101_recipe(server: FileServer, shas: dict[str, str]):
    sources = tuple(replace(s, url=server.url(s.filename), sha256=shas[s.filename]) for s in nb101.SOURCES)
    return replace(nb101.RECIPE, sources=sources)


def nb201_recipe(server: FileServer, **checks):
    return replace(nb201_table.RECIPE, sources=(replace(nb201_table.ARCHIVE_SOURCE, url=server.url(TAR)),),
                   build=partial(nb201_table.convert_archive, **checks))


def archive(tmp_path: Path, drop: str | None = None) -> bytes:
    """The 3-arch NATS-Bench TSS `-simple` folder of test_nats_official as the official tar (minus `drop`)."""
    root = write_dir(Path(tempfile.mkdtemp(dir=tmp_path)) / nb201_table.ARCHIVE)
    if drop:
        (root / drop).unlink()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root, arcname=nb201_table.ARCHIVE)
    return buf.getvalue()


SMALL_BEST = {key: round(float(expected_target(key, 200).max()), 3) for key in nb201_table.COLUMNS}


def files_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if not p.is_dir()] if root.exists() else []


# --- success ------------------------------------------------------------------------------------

def test_nb201_archive_is_converted_verified_and_cleaned_up(tmp_path, server):
    server.files[TAR] = archive(tmp_path)
    cache = tmp_path / "cache"
    path = fetch(nb201_recipe(server, num_archs=3, best=SMALL_BEST), cache / "data", progress=False)
    assert path == cache / "data" / nb201_table.RELPATH
    assert files_in(cache) == [path]  # no archive, extraction or parse cache left
    bench = nb201_table.load_nb201_table(data_dir=tmp_path / "empty", cache_dir=cache)  # found among fetched tables
    assert [a.to_str() for a in bench.archs] == ARCHS
    for key in nb201_table.COLUMNS:
        np.testing.assert_array_equal(bench.target(key), expected_target(key, 200), err_msg=key)
    assert fetch(nb201_recipe(server, num_archs=3, best=SMALL_BEST), cache / "data") == path
    assert server.requests[TAR] == 1  # a present table is not fetched again


@needs_nb201
def test_known_nb201_values_hold_for_the_real_table():
    """The checks a converted archive must pass are those of the real table (NB201 paper: 94.373 / 73.513 / 47.311)."""
    arrays = nb201_table._parse(NB201_CSV, nb201_table.SHA256)
    nb201_table._check_converted(arrays, "the shared table", nb201_table.NUM_ARCHS, nb201_table.BEST)
    with pytest.raises(CorruptDataError, match=r"best cifar100/test_acc is 73\.513, expected 73\.6"):
        nb201_table._check_converted(arrays, "x", nb201_table.NUM_ARCHS, {**nb201_table.BEST, "cifar100/test_acc": 73.6})


def test_loader_downloads_when_asked_and_finds_fetched_tables(tmp_path, server):
    shas = serve_arrays(server)
    empty, cache = tmp_path / "empty", tmp_path / "cache"
    with pytest.raises(DataNotFoundError, match=r"NB101 table not found at .*fetch nb101.*NASRANK_DATA_DIR") as err:
        nb101.load_nb101_table(data_dir=empty, cache_dir=cache)
    assert not isinstance(err.value, DownloadError) and server.requests.total() == 0  # download=False never downloads
    with pytest.raises(DownloadError, match=r"cannot reach https://raw\.githubusercontent\.com/Tongzhou0101/ObfuNAS/c8d9c71"):
        nb101.load_nb101_table(data_dir=empty, cache_dir=cache, download=True)  # the pinned source; tests are offline
    assert files_in(cache) == []
    table = cache / "data" / nb101.TABLE_RELPATH
    table.parent.mkdir(parents=True)
    table.write_bytes(b"fetched")
    assert locate(nb101.RECIPE, empty, cache, download=True) == (table, True)
    assert shas and server.requests.total() == 0


# --- faults: one line, nothing left ---------------------------------------------------------------

def test_connection_refused_names_url_and_manual_way(tmp_path, server):
    shas = serve_arrays(server)
    server.close()  # nothing listens on its port any more
    with pytest.raises(DownloadError, match=r"cannot reach http://127\.0\.0\.1:\d+/test\.npy \(.*refused; offline\?\); "
                                            r"run the command again, or download test\.npy and flops\.npy from https://github"):
        fetch(nb101_recipe(server, shas), tmp_path / "data", progress=False)
    assert files_in(tmp_path) == [] and not (tmp_path / "data" / "nb101").exists()


def test_http_error(tmp_path, server):
    shas = serve_arrays(server)
    del server.files["flops.npy"]
    with pytest.raises(DownloadError, match=r"http://127\.0\.0\.1:\d+/flops\.npy answered HTTP 404 Not Found; run the command again"):
        fetch(nb101_recipe(server, shas), tmp_path / "data", progress=False)
    assert files_in(tmp_path) == [] and server.requests["test.npy"] == 1


def test_download_cut_off_half_way(tmp_path, server):
    shas = serve_arrays(server)
    server.cut.add("test.npy")
    with pytest.raises(DownloadError, match=r"test\.npy stopped after 1,694,560 of 3,389,120 bytes \(connection cut"):
        fetch(nb101_recipe(server, shas), tmp_path / "data", progress=False)
    assert files_in(tmp_path) == []


def test_checksum_mismatch(tmp_path, server):
    shas = serve_arrays(server)
    with pytest.raises(CorruptDataError, match=rf"flops\.npy has sha256 {shas['flops.npy'][:12]}…, expected b4fef45e66f9… "
                                               r"\(altered or not the published file\); download test\.npy"):
        fetch(nb101_recipe(server, {**shas, "flops.npy": nb101.SOURCES[0].sha256}), tmp_path / "data", progress=False)
    assert files_in(tmp_path) == []


def test_arrays_of_the_wrong_kind_are_refused(tmp_path, server):
    shas = serve_arrays(server)
    server.files["test.npy"] = npy(np.full(NUM_CELLS, 50.0))  # percent, not fractions
    with pytest.raises(CorruptDataError, match=r"test\.npy: accuracies outside 0\.\.1"):
        fetch(nb101_recipe(server, {**shas, "test.npy": hashlib.sha256(server.files["test.npy"]).hexdigest()}), tmp_path / "d", progress=False)
    server.files["test.npy"] = npy(np.zeros(NUM_CELLS - 1))
    recipe = nb101_recipe(server, {**shas, "test.npy": hashlib.sha256(server.files["test.npy"]).hexdigest()})
    with pytest.raises(CorruptDataError, match=r"test\.npy: float64 array of shape \(423623,\); expected 423,624"):
        fetch(replace(recipe, sources=(replace(recipe.sources[0], size=None), recipe.sources[1])), tmp_path / "d", progress=False)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("fault, message", [
    ("no_meta", r"has no NATS-tss-v1_0-3ffb9-simple/meta\.pickle\.pbz2; not the NATS-Bench TSS archive\? download NATS-tss"),
    ("missing_arch", r"is incomplete or damaged: .*000002\.pickle\.pbz2: not found \(arch 2\)"),
    ("html", r"NATS-tss-v1_0-3ffb9-simple\.tar is not a complete tar archive \("),
    ("cut", r"NATS-tss-v1_0-3ffb9-simple\.tar is not a complete tar archive \("),
    ("wrong_values", r"best cifar10/test_acc is 82\.250, expected 94\.373 \(the NB201 paper's\)"),
])
def test_archive_faults(tmp_path, server, fault, message):
    server.files[TAR] = {
        "no_meta": lambda: archive(tmp_path, drop="meta.pickle.pbz2"),
        "missing_arch": lambda: archive(tmp_path, drop="000002.pickle.pbz2"),
        "html": lambda: b"<html>Google Drive - quota exceeded</html>" * 100,
        "cut": lambda: archive(tmp_path),
        "wrong_values": lambda: archive(tmp_path),
    }[fault]()
    if fault == "cut":
        server.cut.add(TAR)
    best = nb201_table.BEST if fault == "wrong_values" else SMALL_BEST
    with pytest.raises(CorruptDataError, match=message):
        fetch(nb201_recipe(server, num_archs=3, best=best), tmp_path / "cache" / "data", progress=False)
    assert files_in(tmp_path / "cache") == []


def test_folder_in_the_way(tmp_path, server):
    shas = serve_arrays(server)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(DownloadError, match=r"cannot write the NB101 table into .*a_file/nb101 \(Not a directory\); choose a writable folder"):
        fetch(nb101_recipe(server, shas), blocker, progress=False)
    assert server.requests.total() == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path, server):
    shas = serve_arrays(server)
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    with pytest.raises(DownloadError, match=r"cannot write the NB101 table into .*ro/nb101 \(Permission denied\)"):
        fetch(nb101_recipe(server, shas), locked, progress=False)
    assert server.requests.total() == 0


def test_leftovers_of_a_killed_fetch_are_removed(tmp_path, server):
    server.files[TAR] = archive(tmp_path)
    folder = tmp_path / "data" / "nb201"
    (folder / ".fetch-killed" / nb201_table.ARCHIVE).mkdir(parents=True)
    (folder / f".{Path(nb201_table.RELPATH).name}.x1y2.tmp").write_text("half a table")
    path = fetch(nb201_recipe(server, num_archs=3, best=SMALL_BEST), tmp_path / "data", progress=False)
    assert sorted(p.name for p in folder.iterdir()) == [path.name]
    assert len(path.read_text().splitlines()) == 1 + len(ARCHS)


def test_source_from_a_folder_keeps_the_checks(tmp_path):
    by_hand = tmp_path / "by_hand"
    by_hand.mkdir()
    (by_hand / "test.npy").write_bytes(b"x" * 10)
    recipe = nb101.RECIPE.from_folder(by_hand)
    assert [s.url for s in recipe.sources] == [(by_hand / "test.npy").as_uri(), (by_hand / "flops.npy").as_uri()]
    assert [(s.sha256, s.size) for s in recipe.sources] == [(s.sha256, s.size) for s in nb101.SOURCES]
    with pytest.raises(DownloadError, match=r"download of file://.*test\.npy stopped after 10 of 3,389,120 bytes"):
        fetch(recipe, tmp_path / "data", progress=False)
    with pytest.raises(DownloadError, match=r"cannot reach file://.*nothing/test\.npy \(.*No such file"):
        fetch(nb101.RECIPE.from_folder(tmp_path / "nothing"), tmp_path / "data", progress=False)
    assert files_in(tmp_path / "data") == []


# --- the command and the configs ------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasrank.data", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=300)


def test_cli_offline_and_by_hand(tmp_path):
    proc = run_cli("fetch", "nb101", "--dir", str(tmp_path / "d"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and proc.stdout == ""
    assert lines[0].startswith("nasrank: fetching the NB101 table (2 arrays of 3.4 MB from GitHub")
    assert lines[-1].startswith("error: cannot reach https://raw.githubusercontent.com/Tongzhou0101/ObfuNAS/"
                                "c8d9c7153f098f97fde65e007594fd87202f298d/data/test.npy")
    assert "--from <their folder>" in lines[-1] and len(lines) == 2
    # the real NB201 recipe from an archive downloaded by hand: converted, then refused by its checks
    (tmp_path / "by_hand").mkdir()
    (tmp_path / "by_hand" / TAR).write_bytes(archive(tmp_path))
    proc = run_cli("fetch", "nb201", "--dir", str(tmp_path / "d"), "--from", str(tmp_path / "by_hand"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {TAR} converts to 3 cells, expected 15,625; download {TAR}")
    assert files_in(tmp_path / "d") == []


def test_data_configs_download_nb101_only(tmp_path):
    assert compose_train(["data=nb101_cifar10"], tmp_path).data.benchmark.download is True
    for data in ("nb201_cifar10", "nb201_cifar100", "nb201_imagenet16"):
        assert compose_train([f"data={data}"], tmp_path).data.benchmark.download is False
    # the official-file overrides of the configs' comments and docs/data.md reach the loader (no TypeError)
    for data, loader, name in [("nb101_cifar10", "nb101.load_nb101_tfrecord", "x.tfrecord"),
                               ("nb201_cifar100", "nats.load_nats_pth", "x.pth"), ("nb201_cifar100", "nats.load_nats_dir", "x")]:
        cfg = compose_train([f"data={data}", f"data.benchmark._target_=nasrank.benchmarks.{loader}", "~data.benchmark.data_dir",
                             "~data.benchmark.download", f"+data.benchmark.path={tmp_path / name}"], tmp_path)
        with pytest.raises(DataNotFoundError, match=name):
            hydra.utils.instantiate(cfg.data.benchmark)()


def test_sources_are_pinned():
    assert [s.url for s in nb101.SOURCES] == [
        f"https://raw.githubusercontent.com/Tongzhou0101/ObfuNAS/c8d9c7153f098f97fde65e007594fd87202f298d/data/{n}"
        for n in ("test.npy", "flops.npy")]
    assert all(s.size == 3_389_120 and len(s.sha256) == 64 for s in nb101.SOURCES)
    assert nb201_table.ARCHIVE_SOURCE == Source(
        "https://drive.usercontent.google.com/download?id=17_saCsj_krKjlCBLOJEpNtzPXArMCqxU&confirm=t", "NATS-tss-v1_0-3ffb9-simple.tar")
