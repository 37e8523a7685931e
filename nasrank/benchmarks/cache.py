"""Atomic, checksummed, source-keyed array caches.

Parsing a benchmark file (CSV, pickle, tfrecord) is slow; the parsed arrays are saved as one `.npz`
under the cache dir.  Why each property:
- keyed by the source files' path, size and mtime, so an edited/replaced source is re-parsed;
- written to a temp file then `os.replace`d, under an exclusive lock, so two processes building the
  same cache end with one valid file and a crash never leaves a half-written one;
- the payload's sha256 is stored inside and re-checked on load, so a corrupted cache is rebuilt,
  not trusted.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

#: Bump when a loader's array layout changes, so old caches are ignored.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """`$NASRANK_CACHE_DIR`, else `$XDG_CACHE_HOME/nasrank`, else `~/.cache/nasrank`."""
    if env := os.environ.get("NASRANK_CACHE_DIR"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nasrank"


def fingerprint(sources: Sequence[Path], extra: str = "") -> str:
    """Key of a cache entry: version, loader name/options and each source's path, size, mtime."""
    parts = [str(CACHE_VERSION), extra]
    for src in sources:
        st = Path(src).stat()
        parts.append(f"{Path(src).resolve()}|{st.st_size}|{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        h.update(key.encode() + str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _read(path: Path) -> dict[str, np.ndarray] | None:
    """Arrays of a valid cache file, or None when it is absent, unreadable or fails its checksum."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(bytes(arrays.pop("__meta__")).decode())
    except Exception:  # any damage means "rebuild", never "trust"
        return None
    return arrays if meta.get("sha256") == _digest(arrays) else None


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` via a temp file in the same dir + rename: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(folder: Path, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Exclusive lock on the cache folder itself (flock on its fd), so no lock files are left behind.

    `waiting` is called once if another process holds the lock (a fetch may hold it for minutes).
    """
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        if created and not any(folder.iterdir()):  # a failed first build leaves nothing behind
            folder.rmdir()


def cached_arrays(name: str, sources: Sequence[Path], build: Callable[[], dict[str, np.ndarray]],
                  cache_dir: Path | None = None, extra: str = "") -> dict[str, np.ndarray]:
    """Return `build()`'s arrays, from the cache when a valid entry for these sources exists.

    `cache_dir=None` uses `default_cache_dir()`. Callers that must not cache call `build()` directly.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"{name}-{fingerprint(sources, extra)}.npz"
    if (arrays := _read(path)) is not None:
        return arrays
    with _locked(cache_dir):
        if (arrays := _read(path)) is not None:  # another process finished it while we waited
            return arrays
        arrays = build()
        meta = np.frombuffer(json.dumps({"sha256": _digest(arrays), "sources": [str(s) for s in sources]}).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, __meta__=meta, **arrays)
        write_atomic(path, buf.getvalue())
    return arrays
