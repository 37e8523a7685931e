"""A user's own measurements as a `Benchmark`: a CSV of architectures and the accuracy measured for each.

Columns: the architecture in its space's string form (default column ``arch``; NB101 also as JSON
``{"matrix": ..., "ops": ...}``, NAS-Bench-Graph also as its integer key), the measured value (default
``accuracy``), and optionally ``flops`` (MFLOPs), ``params`` (M) and ``latency`` (s).  Every problem
is one line naming the file, the line and what is allowed; nothing is cached or written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.core import ConfigError, CorruptDataError, require_file
from nasrank.spaces import as_arch, get_space

log = logging.getLogger(__name__)
DATASET = "custom"
COST_COLUMNS = ("flops", "params", "latency")
DUPLICATES = ("error", "mean", "first")


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        raw = frame[column].iloc[i]
        shown = "(empty)" if pd.isna(raw) else repr(str(raw))
        raise CorruptDataError(f"{path} line {i + 2}: {column} value {shown} is not a finite number "
                               f"({len(bad)} such row(s)); every row needs a measured {column}")
    return values


def _merge_duplicates(keys: list[str], values: np.ndarray, path: Path, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """Which rows to keep (the first of each architecture) and their values; the same cell listed with
    different values is refused, or resolved by `policy`."""
    frame = pd.DataFrame({"key": keys, "value": values})
    groups = frame.groupby("key", sort=False)["value"]
    spread = groups.transform("max") - groups.transform("min")
    clash = frame[spread > 0]
    if len(clash) and policy == "error":
        first = clash.iloc[0]
        lines = [str(i + 2) for i in clash.index[clash["key"] == first["key"]]]
        raise CorruptDataError(f"{path}: {clash['key'].nunique()} architecture(s) listed more than once with different values "
                               f"(first: {first['key']} on lines {', '.join(lines)}); fix the file, or set "
                               f"data.duplicates=mean (average them) or data.duplicates=first (keep the first)")
    if len(clash):
        log.warning("%s: %d architecture(s) listed more than once with different values; resolved by data.duplicates=%s",
                    path, clash["key"].nunique(), policy)
    values = groups.transform("mean").to_numpy() if policy == "mean" else values
    return np.asarray(~frame["key"].duplicated().to_numpy()), values


def load_custom_csv(path: str | Path | None, space: str, arch_column: str = "arch", target_column: str = "accuracy",
                    duplicates: str = "error") -> Benchmark:
    """Read a measurements CSV of `space` (see the module docstring); target ``custom/<target_column>``."""
    if not path:
        raise ConfigError("data=custom needs the measurements file: data.path=<csv> (columns arch, accuracy)")
    if duplicates not in DUPLICATES:
        raise ConfigError(f"data.duplicates={duplicates!r}; allowed: {', '.join(DUPLICATES)}")
    the_space = get_space(space)
    path = require_file(Path(path), "measurements CSV", "write one with columns arch,accuracy")
    try:
        frame = pd.read_csv(path, dtype={arch_column: str}, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CorruptDataError(f"{path} is not a readable CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in (arch_column, target_column) if c not in frame.columns]
    if missing:
        raise CorruptDataError(f"{path} lacks column(s) {', '.join(map(repr, missing))}; it has {', '.join(map(repr, frame.columns))} "
                               "(name them with data.arch_column= / data.target_column=)")
    if frame.empty:
        raise CorruptDataError(f"{path} has a header but no measurements")
    archs = []
    for i, text in enumerate(frame[arch_column].tolist()):
        try:
            archs.append(as_arch(the_space, text if isinstance(text, str) else ""))
        except ValueError as err:
            raise type(err)(f"{path} line {i + 2}: {err}") from None
    values = _numbers(frame, target_column, path)
    costs = {f"{DATASET}/{c}": _numbers(frame, c, path) for c in COST_COLUMNS if c in frame.columns}
    keep, values = _merge_duplicates([a.to_str() for a in archs], values, path, duplicates)
    rows = np.flatnonzero(keep)
    return Benchmark(f"custom:{path.name}", the_space, [archs[i] for i in rows], {f"{DATASET}/{target_column}": values[rows]},
                     {k: v[rows] for k, v in costs.items()})
