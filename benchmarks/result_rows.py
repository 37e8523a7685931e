"""Ranking result rows as the report reads them: loading, one row per variant and seed, the
validation-KTau choice between variants, and the formats every table and paragraph uses."""

from __future__ import annotations

import json
import sys
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np

from variant_names import recipe_with_extras, shown_overrides, variant_name

KEYS = ("method", "benchmark", "n_train", "n_val", "seed")
#: Table baselines: they ignore the validation split, so they are shown beside the choice, never chosen.
TABLE_BASELINES = ("mlp_ensemble", "gbdt")
#: Zero-cost baselines (`zc_<feature>`) train nothing, so they are table baselines too.
ZERO_COST_PREFIX = "zc_"


def is_table_baseline(method: str) -> bool:
    return method in TABLE_BASELINES or method.startswith(ZERO_COST_PREFIX)


def load_rows(results: Path) -> list[dict]:
    """Every JSON line of every `*.jsonl` in `results` that looks like a ranking row (or its error)."""
    rows = []
    for path in sorted(results.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                print(f"warning: skipping an unreadable line of {path}", file=sys.stderr)
                continue
            if isinstance(row, dict) and all(k in row for k in KEYS) and (isinstance(row.get("test_ktau"), float) or "error" in row):
                rows.append(row)
    return rows


def label(row: dict) -> str:
    """The row's variant name (`variant_names.variant_name`)."""
    return variant_name(row["method"], row.get("overrides") or [])


def latest(rows: Iterable[dict]) -> list[dict]:
    """One row per (variant, target, benchmark, size, seed): the last successful one written."""
    out: dict[tuple, dict] = {}
    for row in rows:
        if "error" not in row:
            out[(label(row), row.get("target"), *(row[k] for k in KEYS[1:]))] = row
    return list(out.values())


def by_size(rows: Iterable[dict]) -> dict[tuple[str, str, int], dict[str, dict[int, dict]]]:
    """(benchmark, target, n_train) -> variant name -> seed -> row, over `latest(rows)`."""
    out: dict[tuple, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in latest(rows):
        out[(r["benchmark"], r["target"], r["n_train"])][label(r)][r["seed"]] = r
    return out


def pick_on_val(variants: dict[str, dict[int, dict]]) -> str | None:
    """The variant with the higher mean validation KTau among those run with the most seeds there, compared
    over the seeds they all ran.  A variant probed with fewer seeds (a one-seed probe, a 3-seed paper variant
    beside 5-seed ones) neither competes nor shrinks the others' comparison to its seeds; below 3 seeds
    anywhere, every variant competes.  On equal validation KTau the variant closest to a named recipe wins (a
    recipe, then a recipe plus the fewest overrides): a recipe and the run it was cut from (an epoch cap past
    every best epoch) score the same, and the recipe is what a user runs."""
    present = {m: seeds for m, seeds in variants.items() if seeds}
    if not present:
        return None
    most = max(len(s) for s in present.values())
    if most >= 3:
        present = {m: s for m, s in present.items() if len(s) == most}
    common = set.intersection(*(set(s) for s in present.values()))

    def val(m: str) -> float:
        values = [present[m][s].get("val_ktau") for s in common]
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else -1.0

    def overrides_beyond_a_recipe(m: str) -> int:
        row = next(iter(present[m].values()))
        shown = shown_overrides(row.get("overrides") or ())
        fit = recipe_with_extras(row.get("method", ""), shown)
        return len(fit[1]) if fit else len(shown) + 1

    return max(present, key=lambda m: (val(m), -overrides_beyond_a_recipe(m)))


def mean_std(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f} ({len(v)})" if len(v) > 1 else f"{v.mean():.3f} (1)"


def ktaus(seeds: dict[int, dict]) -> list[float]:
    return [r["test_ktau"] for r in seeds.values()]


def para(text: str) -> str:
    """A generated paragraph, wrapped so that the markdown source stays readable."""
    return textwrap.fill(text, 110, break_on_hyphens=False, break_long_words=False)
