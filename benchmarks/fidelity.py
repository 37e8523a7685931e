"""BENCHMARKS.md's fidelity section: each paper method's official code against our paper variant, aspect by
aspect, and the measured effect of the deviations (paper variant against the improved variant, same seeds).

`benchmarks/fidelity/<method>.yaml` holds the reading of the official code: it is written by hand, because it
is a reading, not a measurement.  The effects are never written there: each names a results file and two
row selectors, and this module averages the metric over the seeds both selections ran.  A selector may carry
``minus: {selector}`` to report a per-seed difference (e.g. a landmark variant's gain over plain SPOS on
the same seed).  Search rows (``search.jsonl.gz``) take a statistic of the search section over the seeds both
ran: ``queries_to_opt`` (median queries to the space's optimum), ``best_rank``, ``median`` (regret), ``found``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from report_summary import load_search

#: status -> how the verdict column reads it
STATUSES = {
    "same": "same",
    "unavoidable": "deviation, unavoidable",
    "improvement": "deviation, an improvement kept under its own name",
    "paper-vs-code": "official code followed (the paper text differs)",
    "open": "deviation, not matched yet",
}
DEVIATIONS = ("unavoidable", "improvement", "open")
HEADER_KEYS = ("method", "official_code", "paper_variant", "improved_variant", "aspects")
ASPECT_KEYS = ("aspect", "official", "ours", "status")
EFFECT_KEYS = ("label", "file", "paper", "improved", "metric")
#: statistics of search runs (`benchmarks/search.py` stats: medians over seeds) -> decimals shown
SEARCH_STATS = {"queries_to_opt": 0, "best_rank": 0, "median": 3, "found": 2}


class FidelityError(ValueError):
    """A fidelity file that does not follow the schema; the message names the file and the entry."""


def _check(entry: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(entry, dict):
        raise FidelityError(f"{where}: expected a mapping with {', '.join(keys)}, got {type(entry).__name__}")
    missing = [k for k in keys if entry.get(k) in (None, "")]
    if missing:
        raise FidelityError(f"{where}: missing {', '.join(missing)}")


def load_fidelity(path: Path) -> dict:
    """One fidelity file, checked: every aspect has a status of `STATUSES`, and every deviation says why."""
    doc = yaml.safe_load(path.read_text())
    _check(doc, HEADER_KEYS, path.name)
    for i, aspect in enumerate(doc["aspects"]):
        where = f"{path.name}, aspect {i + 1}"
        _check(aspect, ASPECT_KEYS, where)
        if aspect["status"] not in STATUSES:
            raise FidelityError(f"{where}: status {aspect['status']!r}; allowed: {', '.join(STATUSES)}")
        if aspect["status"] != "same" and not aspect.get("why"):
            raise FidelityError(f"{where} ({aspect['aspect']}): a deviation needs a 'why'")
    for i, effect in enumerate(doc.get("effects") or []):
        _check(effect, EFFECT_KEYS, f"{path.name}, effect {i + 1}")
    return doc


def read_results(path: Path) -> list[dict]:
    """The successful JSON rows of a results file: ``.jsonl``, or ``.jsonl.gz`` read as the search report reads it."""
    if path.suffix == ".gz":
        rows = list(load_search().read_rows(path))
    else:
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return [r for r in rows if isinstance(r, dict) and "error" not in r]


def select(rows: list[dict], selector: dict) -> dict[int, dict]:
    """seed -> the last row whose fields equal every selector value (`overrides` defaults to none)."""
    wanted = {"overrides": [], **{k: v for k, v in selector.items() if k != "minus"}}

    def field(row: dict, key: str) -> Any:
        value = row.get(key)
        return [] if key == "overrides" and value is None else value

    return {r["seed"]: r for r in rows if all(field(r, k) == v for k, v in wanted.items())}


def _values(rows: list[dict], selector: dict, metric: str) -> dict[int, float]:
    """seed -> metric (minus its `minus` selection's metric on the same seed, where given)."""
    if metric in SEARCH_STATS:
        raise FidelityError(f"{metric} is a statistic over search runs, not a per-seed value")
    chosen = {s: float(r[metric]) for s, r in select(rows, selector).items() if r.get(metric) is not None}
    if "minus" in selector:
        base = _values(rows, selector["minus"], metric)
        chosen = {s: v - base[s] for s, v in chosen.items() if s in base}
    return chosen


def _search_stat(rows: list[dict], selector: dict, seeds: set[int], stat: str) -> tuple[float | None, int]:
    """A search statistic over `seeds`' runs (`benchmarks/search.py` stats), and the budget it is taken at."""
    runs = [r for s, r in select(rows, selector).items() if s in seeds]
    budget = min(len(r["values"]) for r in runs)
    return load_search().stats(runs, budget)[stat], budget


def effect_row(results: Path, effect: dict) -> str:
    """`| label | paper | improved | paper − improved | seeds |`, or the label with "not measured"."""
    path = results / effect["file"]
    rows = read_results(path) if path.is_file() else []
    paper, improved, metric = effect["paper"], effect["improved"], effect["metric"]
    if metric in SEARCH_STATS:
        seeds = set(select(rows, paper)) & set(select(rows, improved))
        if not seeds:
            return f"| {effect['label']} | not measured | | | |"
        (p, budget), (i, _) = (_search_stat(rows, sel, seeds, metric) for sel in (paper, improved))
        show = lambda q: f"{q:.{SEARCH_STATS[metric]}f}" if q is not None else f"> {budget}"  # noqa: E731
        diff = f"{p - i:+.{SEARCH_STATS[metric]}f}" if p is not None and i is not None else "–"
        return f"| {effect['label']} | {show(p)} | {show(i)} | {diff} | {len(seeds)} |"
    p_values, i_values = _values(rows, paper, metric), _values(rows, improved, metric)
    seeds = sorted(set(p_values) & set(i_values))
    if not seeds:
        return f"| {effect['label']} | not measured | | | |"
    p, i = np.array([p_values[s] for s in seeds]), np.array([i_values[s] for s in seeds])
    diff = p - i
    spread = f" ± {diff.std(ddof=1):.3f}" if len(seeds) > 1 else ""
    return f"| {effect['label']} | {p.mean():.3f} | {i.mean():.3f} | {diff.mean():+.3f}{spread} | {len(seeds)} |"


def method_section(doc: dict, results: Path) -> list[str]:
    lines = [f"### {doc['method']}", "",
             f"Official code: {doc['official_code']}.  Paper variant: `{doc['paper_variant']}`; improved "
             f"variant: `{doc['improved_variant']}`.", "",
             "| aspect | official code | our paper variant | verdict |", "|---|---|---|---|"]
    for a in doc["aspects"]:
        verdict = STATUSES[a["status"]] + (f": {a['why']}" if a.get("why") else "")
        lines.append(f"| {a['aspect']} | {a['official']} | {a['ours']} | {verdict} |")
    effects = doc.get("effects") or []
    if effects:
        lines += ["", "Measured effect over the seeds both variants ran (ranking: mean, ± the std of the per-seed "
                  "difference; search: the median over the seeds' runs):", "",
                  "| measured | paper variant | improved variant | paper − improved | seeds |", "|---|---|---|---|---|"]
        lines += [effect_row(results, e) for e in effects]
    return lines + [""]


def fidelity_section(results: Path, folder: Path) -> list[str]:
    """The whole section, one subsection per fidelity file (name order); nothing when there is none."""
    docs = [load_fidelity(p) for p in sorted(folder.glob("*.yaml"))]
    if not docs:
        return []
    deviations = sum(a["status"] in DEVIATIONS for d in docs for a in d["aspects"])
    lines = ["## Fidelity to the papers", "",
             ("Each paper variant against its official code, aspect by aspect.  Where paper text and code "
                  "disagree we follow the code and say so.  A deviation is unavoidable (the row says why), an "
                  "improvement kept under another name, or not matched yet (the row says what is missing); the "
                  "effect of the paper variant against the improved one is measured on the same seeds "
                  f"below each table (`benchmarks/fidelity/*.yaml`, rendered by `benchmarks/fidelity.py`).  Aspects "
                  f"checked: {sum(len(d['aspects']) for d in docs)}; deviations: {deviations}."), ""]
    for doc in docs:
        lines += method_section(doc, results)
    return lines
