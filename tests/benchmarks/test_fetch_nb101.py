"""The NB101 table built from ObfuNAS's two arrays, served over HTTP and fetched by two processes at once.

With the shared table present, the arrays served are its own columns (test_acc / 100 and flops, in
its hash order) and the build must reproduce it row for row, through the pinned checksum of its
text; without it, synthetic arrays of the real length.  One build (about a minute) serves all tests.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import NB101_CSV, require_data
from served import FileServer

from nasrank.benchmarks import nb101
from nasrank.core import REPO_ROOT
from nasrank.spaces.nb101 import NUM_CELLS

#: One fetch of the real recipe with the sources moved to the test server.
FETCH = """
import functools, json, sys
from dataclasses import replace
from nasrank.benchmarks import nb101
from nasrank.benchmarks.fetch import fetch
base, root, shas, csv_sha = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
sources = tuple(replace(s, url=base + s.filename, sha256=shas[s.filename]) for s in nb101.SOURCES)
recipe = replace(nb101.RECIPE, sources=sources, build=functools.partial(nb101.build_table, csv_sha256=csv_sha))
print(fetch(recipe, root, progress=False))
"""


def source_arrays() -> tuple[dict[str, np.ndarray], str | None]:
    """The shared table's columns and its text checksum, else synthetic values and no checksum."""
    if NB101_CSV.is_file():
        with gzip.open(NB101_CSV, "rt", newline="") as fh:
            rows = list(csv.DictReader(fh))
        return ({"test.npy": np.array([float(r["test_acc"]) for r in rows]) / 100,
                 "flops.npy": np.array([float(r["flops"]) for r in rows])}, nb101.TABLE_CSV_SHA256)
    rng = np.random.default_rng(1)
    return {"test.npy": rng.integers(0, 9985, NUM_CELLS) / 9984,
            "flops.npy": rng.integers(10**7, 10**10, NUM_CELLS).astype(np.float64)}, None


def start(server: FileServer, root, shas: dict[str, str], csv_sha: str | None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", FETCH, server.url(), str(root), json.dumps(shas), json.dumps(csv_sha)],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """Two processes fetch into one folder; the first is held in its download until the second waits."""
    arrays, csv_sha = source_arrays()
    server = FileServer()
    for name, values in arrays.items():
        buf = io.BytesIO()
        np.save(buf, values)
        server.files[name] = buf.getvalue()
    shas = {name: hashlib.sha256(data).hexdigest() for name, data in server.files.items()}
    root = tmp_path_factory.mktemp("fetched")
    server.gate.clear()
    first = start(server, root, shas, csv_sha)
    try:
        assert server.requested.wait(300), "the first fetch never downloaded"
        second = start(server, root, shas, csv_sha)
        seen = []
        while line := second.stderr.readline():  # the second one says it waits before it blocks on the lock
            seen.append(line)
            if "waiting for another process" in line or "fetching the" in line:
                break
        server.gate.set()
        (out1, err1), (out2, err2) = first.communicate(timeout=1200), second.communicate(timeout=1200)
    finally:
        server.close()
        first.kill()
    yield {"arrays": arrays, "root": root, "requests": dict(server.requests), "codes": (first.returncode, second.returncode),
           "out": (out1, out2), "err": (err1, "".join(seen) + err2)}


def test_two_fetches_download_and_build_once(fetched):
    assert fetched["codes"] == (0, 0), fetched["err"]
    table = fetched["root"] / nb101.TABLE_RELPATH
    assert fetched["out"] == (f"{table}\n", f"{table}\n")
    assert fetched["requests"] == {"test.npy": 1, "flops.npy": 1}
    assert "waiting for another process fetching the NB101 table" in fetched["err"][1]
    assert "fetching the NB101 table" in fetched["err"][0] and "fetching the" not in fetched["err"][1].replace("process fetching", "")
    assert [p.name for p in table.parent.iterdir()] == [table.name]  # downloads and scratch are gone


def test_each_value_lands_on_its_hash(fetched):
    """Entry i of the arrays belongs to the i-th hash of the enumerated space in ascending order."""
    with gzip.open(fetched["root"] / nb101.TABLE_RELPATH, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == nb101.TABLE_COLUMNS and len(rows) == 1 + NUM_CELLS
    hashes = [r[0] for r in rows[1:]]
    assert hashes == sorted(set(hashes))
    best = rows[1 + hashes.index("ba0a27cafe7d648aa57f7d5dd64c0b48")]  # the shared README's best single run
    assert best[1:3] == ["input|conv3x3|conv3x3|conv3x3|conv3x3|conv1x1|output",
                         "0110101|0000010|0001000|0000100|0000010|0000001|0000000"]
    acc, flops = fetched["arrays"]["test.npy"], fetched["arrays"]["flops.npy"]
    np.testing.assert_allclose([float(r[3]) for r in rows[1:]], 100 * acc, atol=5e-5)
    assert [int(r[4]) for r in rows[1:]] == flops.astype(np.int64).tolist()


def test_build_reproduces_the_shared_table(fetched):
    shared = require_data(NB101_CSV, "shared NB101 table")
    built = fetched["root"] / nb101.TABLE_RELPATH
    assert gzip.decompress(built.read_bytes()) == gzip.decompress(shared.read_bytes())  # row for row, byte for byte
