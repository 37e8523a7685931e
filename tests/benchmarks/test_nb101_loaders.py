"""NB101 loaders: the shared CSV table (real file when present) and official-format tfrecords.

The tfrecord tests write their own files with an encoder kept in this file (TFRecord framing with a
bitwise CRC32C, hand-encoded ModelMetrics protobufs, nasbench's JSON rows), so the reader is
checked against an independent implementation of the format, not against itself.
"""

from __future__ import annotations

import base64
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import require_data

from nasrank.benchmarks import nb101
from nasrank.benchmarks.nb101 import TABLE_RELPATH, load_nb101_table, load_nb101_tfrecord
from nasrank.benchmarks.tfrecord import as_double, crc32c, crc32c_many, iter_fields, mask_crc
from nasrank.core import CorruptDataError, DataNotFoundError, resolve_data_dir
from nasrank.spaces.nb101 import NUM_CELLS, SPACE, NB101Arch, spec_hash

CELLS = [SPACE.from_str(s) for s in (
    "input|conv3x3|output;010|001|000",
    "input|conv1x1|maxpool3x3|output;0110|0001|0001|0000",
    "input|conv3x3|conv3x3|conv3x3|conv3x3|conv1x1|output;0110101|0000010|0001000|0000100|0000010|0000001|0000000",
)]
REAL_TABLE = resolve_data_dir() / TABLE_RELPATH
needs_table = pytest.mark.needs_data(REAL_TABLE, "shared NB101 table")


# --- an independent writer of the official format -------------------------------------------------

def bitwise_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data: bytes) -> bytes:
    crc = bitwise_crc32c(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def frame(record: bytes) -> bytes:
    length = struct.pack("<Q", len(record))
    return length + masked(length) + record + masked(record)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def double(field: int, value: float) -> bytes:
    return varint(field << 3 | 1) + struct.pack("<d", value)


def message(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def model_metrics(final: tuple[float, float, float], params: int, evaluations: int = 3) -> bytes:
    """ModelMetrics with `evaluations` EvaluationData (init, halfway, final): final = (time, valid, test)."""
    blob = b""
    for k in range(evaluations):
        scale = k / (evaluations - 1)
        time, valid, test = (final[0] * scale, 0.1 + (final[1] - 0.1) * scale, 0.1 + (final[2] - 0.1) * scale)
        blob += message(1, double(1, 108 * scale) + double(2, time) + double(3, 0.99 * scale) + double(4, valid)
                        + double(5, test) + message(6, b"/ckpt/model.ckpt-%d" % k))
    return blob + varint(2 << 3) + varint(params) + double(3, 9999.0)


def row(arch: NB101Arch, epochs: int, metrics: bytes) -> bytes:
    adjacency = "".join(str(x) for r in arch.matrix for x in r)
    return json.dumps([spec_hash(arch.matrix, arch.ops), epochs, adjacency, ",".join(arch.ops),
                       base64.b64encode(metrics).decode()]).encode()


def run_values(cell: int, run: int) -> tuple[float, float, float]:
    """Made-up (train time s, valid acc, test acc) of one run, distinct per cell and run."""
    return 1000.0 + 100 * cell + run, 0.80 + 0.05 * cell + 0.01 * run, 0.79 + 0.05 * cell + 0.005 * run


@pytest.fixture
def tfrecord(tmp_path) -> Path:
    records = []
    for run in range(3):
        for c, arch in enumerate(CELLS):
            records.append(row(arch, 108, model_metrics(run_values(c, run), 1_000_000 * (c + 1))))
    records.insert(1, row(CELLS[0], 12, model_metrics((1.0, 0.5, 0.5), 1_000_000)))  # nasbench_full's shorter budget
    path = tmp_path / "nasbench_tiny.tfrecord"
    path.write_bytes(b"".join(frame(r) for r in records))
    return path


# --- TFRecord / protobuf primitives -----------------------------------------------------------------

def test_crc32c_matches_the_bitwise_definition():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    rng = np.random.default_rng(0)
    chunks = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (0, 1, 7, 8, 300, 1000)]
    buf = b"".join(chunks)
    starts = np.cumsum([0] + [len(c) for c in chunks[:-1]])
    got = crc32c_many(np.frombuffer(buf, dtype=np.uint8), starts, [len(c) for c in chunks])
    assert got.tolist() == [bitwise_crc32c(c) for c in chunks]
    assert mask_crc(crc32c(b"abc")) == struct.unpack("<I", masked(b"abc"))[0]


def test_protobuf_fields():
    blob = varint(2 << 3) + varint(300) + double(3, 1.5) + message(6, b"xyz") + varint(4 << 3 | 5) + b"\x01\x00\x00\x00"
    fields = list(iter_fields(blob))
    assert [(f, w) for f, w, _ in fields] == [(2, 0), (3, 1), (6, 2), (4, 5)]
    assert fields[0][2] == 300 and as_double(fields[1][2]) == 1.5 and fields[2][2] == b"xyz" and fields[3][2] == 1
    for bad, error in ((varint(1 << 3 | 3), "unsupported wire type 3 for field 1"), (varint(2 << 3) + b"\x80", "truncated or overlong varint"),
                       (message(6, b"xyz")[:-1], "field 6 claims 3 bytes, only 2 left"), (varint(3 << 3 | 1) + b"\x00", "truncated fixed64 field 3")):
        with pytest.raises(CorruptDataError, match=error):
            list(iter_fields(bad))


# --- official tfrecord -------------------------------------------------------------------------------

def test_tfrecord_aggregates_108_epoch_runs(tfrecord, tmp_path):
    bench = load_nb101_tfrecord(tfrecord, cache_dir=tmp_path / "cache")
    order = sorted(range(len(CELLS)), key=lambda c: spec_hash(CELLS[c].matrix, CELLS[c].ops))
    assert bench.archs == [CELLS[c] for c in order] and bench.name == "nb101_tfrecord"
    for row_i, c in enumerate(order):
        runs = np.array([run_values(c, r) for r in range(3)])
        assert bench.target("cifar10/valid_acc")[row_i] == pytest.approx(100 * runs[:, 1].mean())
        assert bench.target("cifar10/test_acc")[row_i] == pytest.approx(100 * runs[:, 2].mean())
        assert bench.cost("cifar10/train_time")[row_i] == pytest.approx(runs[:, 0].mean())
        assert bench.cost("cifar10/params")[row_i] == pytest.approx(c + 1)
        assert bench.archs[row_i].iso_key() == spec_hash(CELLS[c].matrix, CELLS[c].ops)
    again = load_nb101_tfrecord(tfrecord, cache_dir=tmp_path / "cache")
    assert again.archs == bench.archs and np.array_equal(again.targets["cifar10/test_acc"], bench.targets["cifar10/test_acc"])


def _damaged(path: Path, edit) -> Path:
    data = bytearray(path.read_bytes())
    out = path.with_name("damaged.tfrecord")
    out.write_bytes(bytes(edit(data)))
    return out


def _flip(data: bytearray, at: int) -> bytearray:
    data[at] ^= 0x01
    return data


@pytest.mark.parametrize("edit, message", [
    (lambda d: _flip(d, 40), "data CRC mismatch in record 0"),
    (lambda d: _flip(d, 9), "length CRC mismatch in record 0"),
    (lambda d: _flip(d, 2), "length CRC mismatch"),  # a corrupted length is caught before it is trusted
    (lambda d: d[:-10], "truncated"),
    (lambda d: d + b"\x05\x00", "truncated record header"),
])
def test_tfrecord_damage_is_detected(tfrecord, tmp_path, edit, message):
    with pytest.raises(CorruptDataError, match=message):
        load_nb101_tfrecord(_damaged(tfrecord, edit), cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("record, message", [
    (b"not json", "record 0 is not a nasbench row"),
    (row(CELLS[0], 108, model_metrics((1.0, 0.5, 0.5), 10, evaluations=2)), "2 evaluations"),
    (row(CELLS[0], 108, b"\x0b"), "wire type 3"),
    (json.dumps(["ab" * 16, 108, "0110", "input,conv3x3-bn-relu,output", ""]).encode(), "0 evaluations"),
    (json.dumps([7, 108, "0110", "input,output", ""]).encode(), "must be strings"),
    (row(CELLS[0], 108, model_metrics((1.0, 0.5, 0.5), 10)).replace(b"input,", b"input,conv5x5-bn-relu,"), "bad op list"),
])
def test_tfrecord_bad_rows(tmp_path, record, message):
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(frame(record))
    with pytest.raises(CorruptDataError, match=message):
        load_nb101_tfrecord(path, cache_dir=tmp_path / "cache")


def test_tfrecord_missing(tmp_path):
    with pytest.raises(DataNotFoundError, match="storage.googleapis.com/nasbench"):
        load_nb101_tfrecord(tmp_path / "nasbench_only108.tfrecord", cache_dir=tmp_path)


# --- shared CSV table --------------------------------------------------------------------------------

def write_table(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(["hash,ops,matrix,test_acc,flops", *lines]) + "\n").encode(), mtime=0))
    return path


def table_line(arch: NB101Arch, acc: float, flops: int) -> str:
    ops, matrix = arch.to_str().split(";")
    return f"{spec_hash(arch.matrix, arch.ops)},{ops},{matrix},{acc},{flops}"


def test_tiny_table_via_path(tmp_path):
    path = write_table(tmp_path / "t.csv.gz", [table_line(a, 90.0 + k, 10**8 * (k + 1)) for k, a in enumerate(CELLS)])
    bench = load_nb101_table(path=path, cache_dir=tmp_path / "cache")
    assert bench.archs == CELLS and bench.space is SPACE
    assert bench.target("cifar10/test_acc").tolist() == [90.0, 91.0, 92.0]
    assert bench.cost("cifar10/flops").tolist() == [100.0, 200.0, 300.0]  # MFLOPs
    assert [a.iso_key() for a in bench.archs] == [spec_hash(a.matrix, a.ops) for a in CELLS]


@pytest.mark.parametrize("line, message", [
    ("x" * 32 + ",input|conv3x3|output,010|001|000,90,1", "bad hash"),
    ("a" * 32 + ",input|conv9x9|output,010|001|000,90,1", "bad op list"),
    ("a" * 32 + ",input|conv3x3|output,010|001|010,90,1", "bad matrix"),  # a backward edge
    ("a" * 32 + ",input|conv3x3|output,011|000|000,90,1", "bad matrix"),  # not pruned
    ("a" * 32 + ",input|conv3x3|output,01|00,90,1", "2 matrix rows"),
    ("a" * 32 + ",input|conv3x3|output,010|001|000,ninety,1", "non-numeric"),
    ("a" * 32 + ",input|conv3x3|output,010|001|000,190,1", "0..100"),
    ("a" * 32 + ",input|conv3x3|output,010|001|000,90", "fields"),
])
def test_bad_table_rows(tmp_path, line, message):
    path = write_table(tmp_path / "t.csv.gz", [table_line(CELLS[1], 90.0, 10), line])
    with pytest.raises(CorruptDataError, match=message):
        load_nb101_table(path=path, cache_dir=tmp_path / "cache")


def test_table_missing_truncated_or_altered(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"nb101_test_acc_flops\.csv\.gz.*NASRANK_DATA_DIR"):
        load_nb101_table(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    # at the default location, any content but the published one is refused
    write_table(tmp_path / TABLE_RELPATH, [table_line(a, 90.0, 10) for a in CELLS])
    with pytest.raises(CorruptDataError, match="sha256"):
        load_nb101_table(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    # a truncated gzip given explicitly (no checksum) fails while decompressing
    whole = write_table(tmp_path / "t.csv.gz", [table_line(a, 90.0, 10) for a in CELLS]).read_bytes()
    (tmp_path / "t.csv.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorruptDataError, match="not a readable gzip"):
        load_nb101_table(path=tmp_path / "t.csv.gz", cache_dir=tmp_path / "cache")


# --- the real table ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real(tmp_path_factory):
    require_data(REAL_TABLE, "shared NB101 table")
    cache = tmp_path_factory.mktemp("cache")
    return load_nb101_table(cache_dir=cache), cache


def test_real_table_known_values(real):
    bench, _ = real
    acc, flops = bench.target("cifar10/test_acc"), bench.cost("cifar10/flops")
    assert len(bench) == NUM_CELLS and len(set(bench.archs)) == NUM_CELLS
    best = int(np.argmax(acc))
    assert acc[best] == pytest.approx(94.6615) and bench.archs[best].iso_key() == "ba0a27cafe7d648aa57f7d5dd64c0b48"
    assert bench.archs[best].to_str().startswith("input|conv3x3|conv3x3|conv3x3|conv3x3|conv1x1|output;")
    assert acc.mean() == pytest.approx(89.68, abs=0.005) and int((acc < 50).sum()) == 2940
    assert flops.max() == pytest.approx(7347.835904) and flops.min() == pytest.approx(37.704704)
    assert bench.archs[int(np.argmax(flops))].iso_key() == "012534f1e7781c0ac3ef57bfcc4dff91"
    keys = [a.iso_key() for a in bench.archs]
    assert keys == sorted(keys)  # the file's row order
    assert bench.index_of(SPACE.from_str(bench.archs[1234].to_str())) == 1234


def test_real_table_reloads_from_cache(real, monkeypatch):
    bench, cache = real
    monkeypatch.setattr(nb101, "_parse_table", lambda *a: pytest.fail("cache not used"))
    again = load_nb101_table(cache_dir=cache)
    assert again.archs == bench.archs
    assert np.array_equal(again.target("cifar10/test_acc"), bench.target("cifar10/test_acc"))


@needs_table
def test_real_table_truncated_copy(tmp_path):
    data = REAL_TABLE.read_bytes()
    write = tmp_path / TABLE_RELPATH
    write.parent.mkdir(parents=True)
    write.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CorruptDataError, match=r"sha256 .*expected 25bf28e60620"):
        load_nb101_table(data_dir=tmp_path, cache_dir=tmp_path / "cache")
