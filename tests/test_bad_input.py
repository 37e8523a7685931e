"""Bad input through the public entry points: one clear line, nothing written or changed.

API cases must raise a `NasrankError` (whose message names the bad part and what is allowed);
CLI cases must exit non-zero with one stderr line, no traceback, and leave no run dir or cache; they run
the entry scripts in this process (`run_entry`), as `python train.py ...` runs them, to spare an
interpreter start per case (the real-process exit codes are checked in test_train_entry).
"""

from __future__ import annotations

import gzip
import os
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import NB101_CSV, NB201_CSV, needs_nb101, needs_nb201, run_entry

from nasrank.benchmarks.analognas import load_analognas
from nasrank.benchmarks.benchmark import Benchmark
from nasrank.benchmarks.nb101 import load_nb101_table
from nasrank.benchmarks.nb201_table import load_nb201_table
from nasrank.benchmarks.nbgraph import default_path, load_nbgraph
from nasrank.benchmarks.safe_pickle import safe_load
from nasrank.core import NasrankError, REPO_ROOT
from nasrank.data import ArchRankDataModule
from nasrank.spaces.nb101 import NB101Arch
from nasrank.spaces.nb201 import SPACE as NB201, NB201Arch
from nasrank.spaces.nbgraph import SPACE as NBG, NBGraphArch

CONV3, CONV1, POOL = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
LINE = [[0, 1], [0, 0]]
TARGET = "cifar10/baseline_acc"


class _Evil:
    """Pickles as os.system(`command`): loading it with a plain unpickler runs the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _nb101(matrix, ops):
    return NB101Arch(tuple(map(tuple, matrix)), tuple(ops))


def _chain(n):
    return [[1 if j == i + 1 else 0 for j in range(n)] for i in range(n)]


@pytest.fixture(scope="module")
def analog(tmp_path_factory):
    return load_analognas(cache_dir=tmp_path_factory.mktemp("c"))


@dataclass
class Inputs:
    """What the API cases read: the embedded table, bad variants of it and bad files under `tmp`."""

    tmp: Path
    analog: Benchmark

    def with_target(self, value: float) -> Benchmark:
        """The table with one target column whose row 3 is `value` (NaN, inf)."""
        column = np.where(np.arange(len(self.analog)) == 3, value, 1.0)
        return replace(self.analog, targets={"cifar10/x": column}, _index=None)

    def file(self, name: str, data: bytes) -> Path:
        (path := self.tmp / name).write_bytes(data)
        return path


#: (name, the call given the `Inputs`, regex its one-line message must match)
API_CASES = [
    ("nb201 unknown op", lambda i: NB201.from_str("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|"), "conv_7x7.*allowed"),
    ("nb201 misspelt op", lambda i: NB201.from_str("|nor_conv3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"), "nor_conv3x3.*allowed"),
    ("nb201 two nodes", lambda i: NB201.from_str("|none~0|+|none~0|none~1|"), "expected 3"),
    ("nb201 wrong edge count in node", lambda i: NB201.from_str("|none~0|+|none~0|+|none~0|none~1|none~2|"), "node 2"),
    ("nb201 bad source index", lambda i: NB201.from_str("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|"), "op~1"),
    ("nb201 index out of range", lambda i: NB201Arch.from_index(15625), "0..15624"),
    ("nb201 op tuple length", lambda i: NB201Arch(("none",) * 5), "6 edge ops"),
    ("nb101 unknown op", lambda i: _nb101(_chain(3), ["input", "conv5x5", "output"]), "conv5x5"),
    ("nb101 cycle", lambda i: _nb101([[0, 1, 0], [0, 0, 1], [0, 1, 0]], ["input", CONV3, "output"]), "triangular|cycl"),
    ("nb101 no path", lambda i: _nb101([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", CONV3, "output"]), "path"),
    ("nb101 eight vertices", lambda i: _nb101(_chain(8), ["input"] + [CONV3] * 6 + ["output"]), "7"),
    ("nb101 ten edges", lambda i: _nb101([[1 if j > k else 0 for j in range(7)] for k in range(7)], ["input"] + [CONV1] * 5 + ["output"]), "9"),
    ("nb101 not square", lambda i: _nb101([[0, 1, 0], [0, 0]], ["input", "output"]), "square|rows"),
    ("nb101 output not last", lambda i: _nb101(LINE, ["output", "input"]), "input|output"),
    ("nbgraph key out of range", lambda i: NBGraphArch.from_key(123456), "out of range"),
    ("nbgraph unknown op", lambda i: NBG.from_str("link:1|gcn,gcn,gcn,mlp"), "mlp.*allowed"),
    ("nbgraph link out of range", lambda i: NBGraphArch(9, ("gcn",) * 4), "0..8"),
    ("unknown nbgraph dataset", lambda i: load_nbgraph("cora2"), "allowed: cora"),
    ("unknown target", lambda i: ArchRankDataModule(i.analog, "cifar10/acc"), "unknown target 'cifar10/acc'.*allowed"),
    ("missing data dir", lambda i: load_nb201_table(data_dir=i.tmp / "none"), "not found at .*NASRANK_DATA_DIR"),
    ("missing nb101 file", lambda i: load_nb101_table(data_dir=i.tmp / "none"), "not found"),
    ("empty table", lambda i: load_nb201_table(path=i.file("empty.csv", b"")), "empty"),
    ("half a pickle", lambda i: load_nbgraph("proteins", path=i.file("half.bench", default_path("proteins").read_bytes()[:1000])),
     "truncated or corrupt"),
    ("disallowed pickle global", lambda i: safe_load(i.file("evil.pkl", pickle.dumps([_Evil(f"touch {i.tmp / 'pwned'}")]))),
     "refused.*system"),
    ("NaN targets", lambda i: ArchRankDataModule(i.with_target(np.nan), "cifar10/x"), "NaN"),
    ("inf targets", lambda i: ArchRankDataModule(i.with_target(np.inf), "cifar10/x"), "NaN/inf"),
    ("n_train larger than space", lambda i: ArchRankDataModule(i.analog, TARGET, n_train=20000), "fewer than 2 test rows"),
    ("n_train zero", lambda i: ArchRankDataModule(i.analog, TARGET, n_train=0), "too small"),
    ("n_val negative", lambda i: ArchRankDataModule(i.analog, TARGET, n_val=-1), "negative"),
    ("n_train bad fraction", lambda i: ArchRankDataModule(i.analog, TARGET, n_train=1.7), "fraction"),
    ("unknown tensor encoding", lambda i: ArchRankDataModule(i.analog, TARGET, tensors=["transformer"]), "allowed: renas, renas_edge, nar"),
    ("zero tiers", lambda i: ArchRankDataModule(i.analog, TARGET, num_tiers=0), "num_tiers"),
]


@pytest.mark.parametrize("call, pattern", [case[1:] for case in API_CASES], ids=[case[0] for case in API_CASES])
def test_api_bad_input(call, pattern, tmp_path, analog):
    with pytest.raises(NasrankError) as info:
        call(Inputs(tmp_path, analog))
    message = str(info.value)
    assert "\n" not in message and re.search(pattern, message), f"{message!r} does not match {pattern!r}"
    assert not (tmp_path / "pwned").exists()


@needs_nb201
def test_nb201_damaged_files(tmp_path):
    lines = NB201_CSV.read_text().splitlines()
    (tmp_path / "nb201").mkdir()
    (tmp_path / "nb201" / NB201_CSV.name).write_text("\n".join(lines[:-1000]) + "\n")
    with pytest.raises(NasrankError, match="sha256"):
        load_nb201_table(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    no_col = tmp_path / "nocol.csv"
    no_col.write_text("\n".join(",".join(line.split(",")[1:]) for line in lines[:10]))
    with pytest.raises(NasrankError, match="lacks column.*CIFAR10TestAccuracy200Epochs"):
        load_nb201_table(path=no_col, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # nothing cached from a refused file


@needs_nb101
def test_nb101_truncated_gzip(tmp_path):
    (tmp_path / "nb101").mkdir()
    data = NB101_CSV.read_bytes()
    (tmp_path / "nb101" / NB101_CSV.name).write_bytes(data[: len(data) // 3])
    with pytest.raises(NasrankError, match=r"has sha256 \w+…, expected \w+… \(truncated or altered copy\); fetch it again"):
        load_nb101_table(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    with gzip.open(tmp_path / "x.csv.gz", "wt") as fh:
        fh.write("hash,ops\nabc,input|output\n")
    with pytest.raises(NasrankError, match="header 'hash,ops'; expected hash,ops,matrix,test_acc,flops"):
        load_nb101_table(path=tmp_path / "x.csv.gz", cache_dir=tmp_path / "cache")


def snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


@pytest.fixture(scope="module")
def gin_checkpoint(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ckpt_run")
    proc = subprocess.run([sys.executable, "train.py", "debug=fast", "model=regressor", "logger=none", "callbacks=default",
                           "callbacks.progress_bar=null", f"hydra.run.dir={run}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run / "checkpoints" / "last.ckpt"


CLI_CASES = [
    (["data=nb201_cifar1000"], "unknown data option"),
    (["model=renass"], "unknown model option"),
    (["trainer=tpu"], "unknown trainer option"),
    (["data.n_train=-3"], "negative"),
    (["data.n_train=20000"], "fewer than 2 test rows"),
    (["data.n_train=0"], "too small"),
    (["data.target=cifar10/acc"], "unknown target"),
    (["data.n_trian=5"], "Could not override 'data.n_trian'"),
    (["seed=x"], "seed must be an integer"),
    (["data=nb201_cifar10", "paths.data_dir=/nonexistent/dir"], "NB201 table not found at /nonexistent/dir"),
    (["ckpt_path=/nonexistent/last.ckpt"], "checkpoint /nonexistent/last.ckpt not found"),
    (["data.n_train=[1"], "override"),
    (["experiment=best_nb201", "ensemble=null"], "ensemble=null: a config group cannot be set to null; drop it with ~ensemble"),
]


@pytest.mark.parametrize("args, expected", CLI_CASES + [("MISMATCH", "does not match this model")])
def test_train_cli_bad_input(args, expected, tmp_path, gin_checkpoint, monkeypatch):
    if args == "MISMATCH":
        args = ["model=regressor", "model/encoder=mlp", "train=false", f"ckpt_path={gin_checkpoint}"]
    cache, run = tmp_path / "cache", tmp_path / "run"
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setenv("NASRANK_CACHE_DIR", str(cache))
    before = snapshot(REPO_ROOT / "outputs")
    code, err = run_entry("train.py", ["debug=fast", *args, f"hydra.run.dir={run}"])
    err = err.strip()
    assert code != 0
    assert expected in err and "Traceback" not in err and err.count("\n") == 0, err[-2000:]
    assert not run.exists()
    # a benchmark parsed before the bad value was found may be cached (it is valid); never a partial file
    assert not [p for p in cache.rglob("*") if p.suffix != ".npz"]
    assert snapshot(REPO_ROOT / "outputs") == before


SEARCH_CASES = [
    (["sampler=bayesopt"], "unknown sampler option"),
    (["budget=0"], "budget=0 is too small for sampler random"),
    (["budget=-5"], "budget=-5 is too small for sampler random"),
    (["constraint.latency_max=0.01"], "analognas has no latency cost on cifar10; available: params, flops"),
    (["constraint.params_max=0.01"], "no cell of analognas satisfies constraint.params_max=0.01 on cifar10; allowed: at least the smallest params"),
    (["constraint.flops_max=-3"], "constraint.flops_max=-3; allowed: a number > 0 (MFLOPs) or null"),
]


@pytest.mark.parametrize("args, expected", SEARCH_CASES)
def test_search_cli_bad_input(args, expected, tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setenv("NASRANK_CACHE_DIR", str(tmp_path / "cache"))
    code, err = run_entry("search.py", ["data=analognas_cifar10", *args, f"hydra.run.dir={run}"])
    err = err.strip()
    assert code != 0
    assert expected in err and "Traceback" not in err and err.count("\n") == 0, err[-2000:]
    assert not run.exists()
