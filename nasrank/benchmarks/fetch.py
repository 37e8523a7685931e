"""Fetching a benchmark table a user lacks from its public source, into a data folder of the cache.

Why each property (the design's "fetched, verified, all or nothing"):
- sources download into a scratch folder beside the table, and the table is written with
  `write_atomic`: an interrupted or failed fetch never leaves a file a loader would read, and the
  scratch left by a killed fetch is removed by the next one;
- each source is checked against its published size and sha256 where they are known (a cut-off or
  altered download is refused), and each recipe checks what it built (a checksum or known values);
- the table's folder is locked while fetching, so of two processes fetching the same table one
  downloads and the other waits, then reuses it;
- every failure is one line naming the URL or folder and how to get the table by hand.

A fetched folder has the layout of a data folder (``nb101/...``, ``nb201/...``), so it can also be
used as `paths.data_dir` / ``NASRANK_DATA_DIR``.
"""

from __future__ import annotations

import http.client
import shutil
import sys
import tempfile
import urllib.error
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from nasrank.core import (
    _locked,
    CorruptDataError,
    DataNotFoundError,
    default_cache_dir,
    DownloadError,
    NasrankError,
    require_file,
    resolve_data_dir,
    sha256_of,
    write_atomic,
)

_SCRATCH = ".fetch-"


@dataclass(frozen=True)
class Source:
    """One file a table is built from; `size` (bytes) and `sha256` are checked when known."""

    url: str
    filename: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Recipe:
    """How one table is fetched: its sources, and `build(downloaded files, scratch folder) -> table bytes`."""

    name: str  #: the name `python -m nasrank.data fetch NAME` takes
    what: str  #: e.g. "NB101 table", as messages name it
    relpath: str  #: the table inside a data folder
    sources: tuple[Source, ...]
    build: Callable[[list[Path], Path], bytes]
    size: str  #: announced before downloading, e.g. "about 1 GB"
    manual: str  #: how to get the table by hand, for error messages

    def from_folder(self, folder: str | Path) -> "Recipe":
        """The same recipe reading its sources from files downloaded by hand into `folder` (same checks)."""
        folder = Path(folder).expanduser().resolve()
        return replace(self, sources=tuple(replace(s, url=(folder / s.filename).as_uri()) for s in self.sources))


def fetched_dir(cache_dir: str | Path | None = None) -> Path:
    """The data folder that fetched tables go to: ``<cache dir>/data``."""
    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "data"


def locate(recipe: Recipe, data_dir: str | Path | None, cache_dir: str | Path | None, download: bool) -> tuple[Path, bool]:
    """The table file, and whether it is a fetched one (checked when it was built, not by file checksum).

    Looked for in the data folder, then among fetched tables; fetched there when `download` is true.
    """
    given = resolve_data_dir(data_dir) / recipe.relpath
    fetched = fetched_dir(cache_dir) / recipe.relpath
    if given.exists():
        return require_file(given, recipe.what, recipe.manual), False
    if fetched.exists():
        return require_file(fetched, recipe.what, recipe.manual), True
    if download:
        return fetch(recipe, fetched_dir(cache_dir)), True
    raise DataNotFoundError(
        f"{recipe.what} not found at {given}; fetch it ({recipe.size}) with `python -m nasrank.data fetch {recipe.name}` "
        f"or data.benchmark.download=true, or {recipe.manual} (set paths.data_dir=... or env NASRANK_DATA_DIR to its folder)")


def fetch(recipe: Recipe, root: str | Path, progress: bool = True) -> Path:
    """Build `recipe`'s table at ``root/relpath`` unless it is there; returns its path."""
    target = Path(root).expanduser() / recipe.relpath
    if target.is_file():
        return target
    folder = target.parent
    try:
        with _locked(folder, waiting=lambda: _say(f"waiting for another process fetching the {recipe.what} into {folder}")):
            if target.is_file():  # the other process finished it while we waited
                return target
            for stale in [*folder.glob(f"{_SCRATCH}*"), *folder.glob(f".{target.name}.*.tmp")]:  # a killed fetch's
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
            scratch = Path(tempfile.mkdtemp(prefix=_SCRATCH, dir=folder))
            try:
                _say(f"fetching the {recipe.what} ({recipe.size}) into {folder}")
                files = [download(source, scratch, recipe.manual, progress) for source in recipe.sources]
                _say(f"building {target.name}")
                write_atomic(target, recipe.build(files, scratch))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    except NasrankError:
        raise
    except OSError as err:
        raise DownloadError(f"cannot write the {recipe.what} into {folder} ({err.strerror or err}); choose a writable "
                            f"folder (--dir, paths.cache_dir=... or env NASRANK_CACHE_DIR), or {recipe.manual}") from None
    _say(f"{recipe.what} ready: {target}")
    return target


def download(source: Source, folder: Path, manual: str, progress: bool = True) -> Path:
    """`source` as ``folder/filename``, complete and verified, or one line saying why not."""
    from torch.hub import download_url_to_file  # temp name, rename when complete, progress bar

    dest = folder / source.filename
    by_hand = f"run the command again, or {manual}"
    try:
        download_url_to_file(source.url, str(dest), progress=progress)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{source.url} answered HTTP {err.code} {err.reason}; {by_hand}") from None
    except urllib.error.URLError as err:
        offline = "; offline?" if source.url.startswith("http") else ""
        raise DownloadError(f"cannot reach {source.url} ({err.reason}{offline}); {by_hand}") from None
    except (OSError, http.client.HTTPException) as err:
        raise DownloadError(f"download of {source.url} failed ({type(err).__name__}: {err}); {by_hand}") from None
    got = dest.stat().st_size
    if source.size is not None and got != source.size:
        raise DownloadError(f"download of {source.url} stopped after {got:,} of {source.size:,} bytes "
                            f"(connection cut, or the file changed); {by_hand}")
    if source.sha256 is not None and (digest := sha256_of(dest)) != source.sha256:
        raise CorruptDataError(f"{source.url} has sha256 {digest[:12]}…, expected {source.sha256[:12]}… "
                               f"(altered or not the published file); {manual}")
    return dest


def _say(message: str) -> None:
    """Progress for the user on stderr (Hydra's log would hide it from `python -m nasrank.data`)."""
    print(f"nasrank: {message}", file=sys.stderr, flush=True)

