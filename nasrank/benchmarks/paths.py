"""Where benchmark files are looked for, and the one-line errors when they are not there."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nasrank.errors import CorruptDataError, DataNotFoundError

#: The repository root (the folder holding `nasrank/`); shared data sits beside it.
REPO_ROOT = Path(__file__).resolve().parents[2]


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
