"""What every layer of nasrank may import: user-facing errors, where files are looked for, and the
atomic, checksummed cache.

Errors: every error a user can cause (bad arch string, missing file, bad override) is a `NasrankError`,
so the entry points print it as one line instead of a traceback; subclasses that describe bad values
also derive from `ValueError`, so library callers can catch the standard type.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import numbers
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np


class NasrankError(Exception):
    """Base class of every error meant to be shown to a user as one line."""


class InvalidArchError(NasrankError, ValueError):
    """An architecture (string, index, matrix, key) is not a member of its search space."""


class ConfigError(NasrankError, ValueError):
    """A configuration value is out of range or unknown."""


class DataNotFoundError(NasrankError, FileNotFoundError):
    """A benchmark file is missing: the message names the path and how to get it."""


class DownloadError(DataNotFoundError):
    """A missing benchmark file could not be fetched (offline, HTTP error, cut-off download, unwritable
    folder): the message names the URL or folder and how to get the file by hand."""


class CorruptDataError(NasrankError, ValueError):
    """A benchmark or cache file exists but cannot be read as what it claims to be."""


class UnsafePickleError(CorruptDataError):
    """A pickle asked for a class outside the loader's allow-list; nothing was executed."""


def check_at_least(group: str, minimum: int, **values: object) -> None:
    """One-line `ConfigError` unless every value is an integer ≥ minimum (booleans are not integers),
    named as the user writes it: `<group>.<name>`."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ConfigError(f"{group}.{name}={value!r}; allowed: an integer ≥ {minimum}")


#: The repository root (the folder holding `nasrank/`); shared data sits beside it.
REPO_ROOT = Path(__file__).resolve().parents[1]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Explicit argument, else env `NASRANK_DATA_DIR`, else `<repo root>/../shared/data`.

    The env var wins over the default so a user can point every entry point at their own copy.
    """
    if data_dir not in (None, ""):
        return Path(data_dir).expanduser()
    if env := os.environ.get("NASRANK_DATA_DIR"):
        return Path(env).expanduser()
    return REPO_ROOT.parent / "shared" / "data"


def require_file(path: Path, what: str, how_to_get: str) -> Path:
    """Return `path` if it is a non-empty file, else raise one line saying what and how to get it."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"{what} not found at {path}; {how_to_get} (set paths.data_dir=... or env NASRANK_DATA_DIR to its folder)"
        )
    if path.stat().st_size == 0:
        raise CorruptDataError(f"{what} at {path} is empty; {how_to_get}")
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str, what: str) -> None:
    """Refuse a source file whose content is not the published one (truncated or altered)."""
    if (digest := sha256_of(path)) != expected:
        raise CorruptDataError(
            f"{what} at {path} has sha256 {digest[:12]}…, expected {expected[:12]}… (truncated or altered copy); fetch it again"
        )


#: Bump when a loader's array layout changes, so old caches are ignored.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """`$NASRANK_CACHE_DIR`, else the checkout's `.cache/`, beside the `outputs/` the runs write.

    The configs' `paths.cache_dir` resolves through this function, so the library's callers
    (`cache_dir=None`) and `train.py` share one cache unless a run names another.
    """
    if env := os.environ.get("NASRANK_CACHE_DIR"):
        return Path(env)
    return REPO_ROOT / ".cache"


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

    Every writer into a locked folder holds its lock, so once the lock is ours a `write_atomic` temp
    file there (``.<name>.*.tmp``) belongs to a writer that was killed: it is removed.
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
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        if created and not any(folder.iterdir()):  # a failed first build leaves nothing behind
            folder.rmdir()


def cache_path(name: str, sources: Sequence[Path], cache_dir: Path | None = None, extra: str = "") -> Path:
    """Where `cached_arrays` keeps the entry of these arguments (`cache_dir=None`: `default_cache_dir()`)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cache_dir / f"{name}-{fingerprint(sources, extra)}.npz"


def read_cached(name: str, sources: Sequence[Path], cache_dir: Path | None = None, extra: str = "") -> dict[str, np.ndarray] | None:
    """The arrays `cached_arrays` would return from its cache, or None when no valid entry exists
    (nothing is built or written)."""
    return _read(cache_path(name, sources, cache_dir, extra))


def cached_arrays(name: str, sources: Sequence[Path], build: Callable[[], dict[str, np.ndarray]],
                  cache_dir: Path | None = None, extra: str = "") -> dict[str, np.ndarray]:
    """Return `build()`'s arrays, from the cache when a valid entry for these sources exists.

    `cache_dir=None` uses `default_cache_dir()`. Callers that must not cache call `build()` directly.
    """
    path = cache_path(name, sources, cache_dir, extra)
    cache_dir = path.parent
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
