"""The pipeline behind rank.py: read candidate architectures, score them with a saved ranker, write
`ranking.csv`, print the best k.  Every check runs before anything is written."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from nasrank.core import ConfigError, CorruptDataError, require_file, write_atomic
from nasrank.ranker import Ranker

OUTPUT = "ranking.csv"


def read_candidates(path: str | Path, column: str | None = None) -> list[str]:
    """Architecture strings of a file: a CSV column (`column`, default ``arch`` for .csv files), else one
    per line, blank lines and ``#`` comments skipped."""
    path = require_file(Path(path), "candidate architectures file", "give archs=space or a file with one architecture per line")
    if column or path.suffix.lower() == ".csv":
        column = column or "arch"
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise CorruptDataError(f"{path} is not a readable CSV ({str(err).splitlines()[0]})") from None
        if column not in frame.columns:
            raise CorruptDataError(f"{path} has no column {column!r}; it has {', '.join(map(repr, frame.columns))} (set column=<name>)")
        items = [s.strip() for s in frame[column].tolist()]
    else:
        items = [line.strip() for line in path.read_text().splitlines()]
    items = [s for s in items if s and not s.startswith("#")]
    if not items:
        raise CorruptDataError(f"{path} holds no architectures; write one per line (or give archs=space)")
    return items


def rank(cfg: DictConfig) -> tuple[pd.DataFrame, Path]:
    """Score `cfg.archs` with `cfg.ranker`; returns the ranking (best first) and the CSV written."""
    if not cfg.get("ranker"):
        raise ConfigError("rank.py needs a trained ranker: ranker=<train.py run dir or its ranker.pt>")
    k = cfg.k
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k={k!r}; allowed: an integer ≥ 1")
    ranker = Ranker.load(cfg.ranker)
    if cfg.archs == "space":
        cells, scores = ranker.score_space(cfg.batch_size)
    else:
        cells = ranker.archs(read_candidates(cfg.archs, cfg.get("column")))
        scores = ranker.score(cells, cfg.batch_size)
    if k > len(cells):
        raise ConfigError(f"k={k} but there are only {len(cells)} candidates; allowed: 1..{len(cells)}")
    order = np.argsort(-scores, kind="stable")
    table = pd.DataFrame({"rank": np.arange(1, len(order) + 1), "arch": [cells[i].to_str() for i in order], "score": scores[order]})
    out = Path(cfg.paths.output_dir) / OUTPUT
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    write_atomic(out, buffer.getvalue().encode())
    return table, out
