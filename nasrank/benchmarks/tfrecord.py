"""TFRecord files and protobuf messages, read without TensorFlow or protobuf.

Why hand-written: TensorFlow is a multi-GB dependency for reading one file format, and the
`protobuf` package would still need generated ``_pb2`` code (protoc) for nasbench's messages.
Both formats are small and frozen:
- a TFRecord is a sequence of ``uint64 length | uint32 masked_crc32c(length) | data |
  uint32 masked_crc32c(data)`` (little endian); every CRC is verified, so a damaged or truncated
  file raises `CorruptDataError` instead of yielding wrong rows;
- the protobuf wire format is (varint key = field << 3 | wire type, value) pairs; `iter_fields`
  decodes one message level, which is all a fixed, known schema needs.

CRC32C (Castagnoli) is computed with numpy over all records at once (one vectorised step per byte
position), because a per-byte Python loop would take minutes on the 500 MB NAS-Bench-101 file.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterator

import numpy as np

from nasrank.core import CorruptDataError

_POLY = 0x82F63B78  # CRC32C (Castagnoli), reflected
_MASK_DELTA = 0xA282EAD8
_HEADER = 12  # uint64 length + uint32 crc
_BATCH = 1 << 14  # ranges per vectorised CRC batch (measured fastest: fits in cache)


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _crc_table()


def crc32c_many(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC32C of the byte ranges ``buf[s:s+n]``, all at once (uint32 array in input order).

    Within a batch of neighbouring ranges (neighbours keep the gathered bytes in cache), ranges are
    sorted by decreasing length so those still running at a byte position are a prefix; each byte
    position is then one table-lookup step over that prefix (~100 MB/s on one core).
    """
    buf = np.asarray(buf, dtype=np.uint8)
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    out = np.empty(len(starts), dtype=np.uint32)
    for lo in range(0, len(starts), _BATCH):
        order = np.argsort(-lengths[lo:lo + _BATCH], kind="stable")
        s, n = starts[lo:lo + _BATCH][order], lengths[lo:lo + _BATCH][order]
        running = np.searchsorted(-n, -np.arange(n[0]), side="left")  # ranges longer than each position
        crc = np.full(len(s), 0xFFFFFFFF, dtype=np.uint32)
        for pos, k in enumerate(running.tolist()):
            c = crc[:k]
            crc[:k] = _TABLE[(c ^ buf[s[:k] + pos]) & 0xFF] ^ (c >> 8)
        out[lo + order] = crc ^ np.uint32(0xFFFFFFFF)
    return out


def crc32c(data: bytes) -> int:
    """CRC32C of one byte string."""
    return int(crc32c_many(np.frombuffer(data, dtype=np.uint8), np.array([0]), np.array([len(data)]))[0])


def mask_crc(crc: np.ndarray | int) -> np.ndarray | int:
    """TFRecord's masked CRC: rotate right by 15 and add a constant (so CRCs of CRCs stay useful)."""
    c = np.asarray(crc, dtype=np.uint64)
    masked = (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF
    return int(masked) if np.ndim(masked) == 0 else masked.astype(np.uint32)


def read_tfrecord(path: str | Path) -> list[bytes]:
    """All records of a TFRecord file, after checking both CRCs of every record."""
    path = Path(path)
    data = path.read_bytes()
    buf = np.frombuffer(data, dtype=np.uint8)
    offsets, lengths, pos = [], [], 0
    while pos < len(data):
        if pos + _HEADER > len(data):
            raise CorruptDataError(f"TFRecord {path}: truncated record header at byte {pos} (file is {len(data)} bytes)")
        (length,) = struct.unpack_from("<Q", data, pos)
        end = pos + _HEADER + length + 4
        if end > len(data):
            _check_crcs(path, buf, np.array([pos]), np.array([0]), header_only=True)
            raise CorruptDataError(f"TFRecord {path}: record at byte {pos} claims {length} bytes but the file ends at {len(data)} (truncated)")
        offsets.append(pos)
        lengths.append(length)
        pos = end
    starts, sizes = np.array(offsets, dtype=np.int64), np.array(lengths, dtype=np.int64)
    _check_crcs(path, buf, starts, sizes, header_only=False)
    return [data[s + _HEADER:s + _HEADER + n] for s, n in zip(offsets, lengths)]


def _check_crcs(path: Path, buf: np.ndarray, starts: np.ndarray, sizes: np.ndarray, header_only: bool) -> None:
    """Compare stored and computed masked CRCs of the length fields (and data unless `header_only`)."""
    checks = [("length", starts, np.full(len(starts), 8), starts + 8)]
    if not header_only:
        checks.append(("data", starts + _HEADER, sizes, starts + _HEADER + sizes))
    for what, begin, size, crc_at in checks:
        stored = buf[crc_at[:, None] + np.arange(4)].astype(np.uint32) @ (np.uint32(1) << (8 * np.arange(4, dtype=np.uint32)))
        bad = np.flatnonzero(stored != mask_crc(crc32c_many(buf, begin, size)))
        if len(bad):
            raise CorruptDataError(f"TFRecord {path}: {what} CRC mismatch in record {bad[0]} at byte {starts[bad[0]]} "
                                   f"({len(bad)} bad record(s)); the file is damaged, fetch it again")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise CorruptDataError("protobuf: truncated or overlong varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of one protobuf message level.

    Values: wire type 0 (varint) and 1/5 (fixed 64/32-bit) as unsigned ints (decode doubles with
    `as_double`), wire type 2 as bytes (a string, bytes or nested message).  Groups (3/4) are
    deprecated and unused by the schemas read here, so they are rejected as corruption.
    """
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(buf):
                raise CorruptDataError(f"protobuf: truncated fixed{width * 8} field {field}")
            value, pos = int.from_bytes(buf[pos:pos + width], "little"), pos + width
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise CorruptDataError(f"protobuf: field {field} claims {size} bytes, only {len(buf) - pos} left")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise CorruptDataError(f"protobuf: unsupported wire type {wire} for field {field}")
        yield field, wire, value


def as_double(bits: int) -> float:
    """The IEEE-754 double whose little-endian bit pattern is `bits` (a wire type 1 value)."""
    return struct.unpack("<d", bits.to_bytes(8, "little"))[0]
