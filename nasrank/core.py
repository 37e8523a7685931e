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
import sys
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


def _flock(fd: int, waiting: Callable[[], None] | None) -> None:
    """Exclusive flock on `fd`; `waiting` is called once first if another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if waiting is not None:
            waiting()
        fcntl.flock(fd, fcntl.LOCK_EX)


@contextmanager
def _locked(folder: Path, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Exclusive lock on a folder itself (flock on its fd), so no lock files are left behind.

    `waiting` is called once if another process holds the lock (a fetch may hold it for minutes).
    """
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        _flock(fd, waiting)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        if created and not any(folder.iterdir()):  # a failed first build leaves nothing behind
            folder.rmdir()


@contextmanager
def _locked_entry(path: Path, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Exclusive lock on one cache entry: a flock on ``.<name>.lock`` beside it, which its holder removes.

    One lock per entry, not per folder, so that a build of many minutes (an encoder's pretraining) holds
    up no other entry's build.  A lock file that its holder removed while we waited no longer guards the
    entry, so the lock is taken again until the file locked is the one at the lock's path.  Every writer
    of the entry holds its lock, so an entry's `write_atomic` temp file (``.<name>.*.tmp``) found once
    the lock is ours belongs to a writer that was killed: it is removed.
    """
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _flock(fd, waiting)
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)  # closing releases the lock on the removed file
        waiting = None
    try:
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
        if created and not any(path.parent.iterdir()):  # a failed first build leaves nothing behind
            path.parent.rmdir()


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
    if (arrays := _read(path)) is not None:
        return arrays
    with _locked_entry(path, waiting=lambda: print(f"waiting for another process building {path}", file=sys.stderr)):
        if (arrays := _read(path)) is not None:  # another process finished it while we waited
            return arrays
        arrays = build()
        meta = np.frombuffer(json.dumps({"sha256": _digest(arrays), "sources": [str(s) for s in sources]}).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, __meta__=meta, **arrays)
        write_atomic(path, buf.getvalue())
    return arrays
