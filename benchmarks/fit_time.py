"""Fit time of every recommended ranker at the largest budget of at most 1,563 cells it is recommended for.

The summary's "fit s" column is the median over benchmark rows run one thread each, often side by side, so
it says little about the fit a user waits for.  This script fits each ranker that validation chooses in the
summary (`report_summary.chosen_rankers`) once, seed 0, with `--threads` torch threads (2: this project's
reference machine) on the benchmark and budget where it is chosen with the most cells, up to `--max-cells`;
run it on an otherwise idle machine.  Pretrained encoder weights and zero-cost tables are one-off and cached
(their costs are in sections Pretraining and Zero-cost features), so an untimed one-epoch run of each fills
the caches first.  The limit is #24's: 2 minutes at n <= 1,563.

    python benchmarks/fit_time.py            # writes benchmarks/results/fit_time.{json,md}
    python benchmarks/fit_time.py --missing  # times only chosen rankers fit_time.json lacks, keeps the others' rows
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from nasrank.core import write_atomic
from ranking import RESULTS, Row, compose_cfg, default_n_val
from report_summary import chosen_rankers, run_hint
from result_rows import load_rows

LIMIT_S = 120.0


def cases(rows: list[dict], max_cells: int) -> list[tuple[str, Row]]:
    """(run hint, row to time) per chosen ranker: its largest budget <= max_cells, seed 0."""
    largest: dict[str, Row] = {}
    hints: dict[str, str] = {}
    for bench, _, n, variants, chosen in chosen_rankers(rows):
        if n > max_cells or (chosen in largest and largest[chosen].n_train >= n):
            continue
        row = next(iter(variants[chosen].values()))
        largest[chosen] = Row(row["method"], bench, n, default_n_val(n), 0, tuple(row.get("overrides") or ()))
        hints[chosen] = run_hint(chosen, row)
    return [(hints[name], row) for name, row in largest.items()]


def timed_fit(row: Row, out: str) -> dict:
    """Seconds of `Trainer.fit` (every ensemble member included), epochs and optimiser steps of one row."""
    from nasrank.training import train

    metrics, objs = train(compose_cfg(row, out))
    trainer = objs["trainer"]
    return {"fit_s": metrics["time/fit_s"], "epochs": trainer.current_epoch, "steps": trainer.global_step}


def _span(rows: list[dict], key: str) -> str:
    """`min`, or `min to max`, of a field the rows record ("–" where none does)."""
    values = sorted(r[key] for r in rows if key in r)
    if not values:
        return "–"
    return f"{values[0]}" if values[0] == values[-1] else f"{values[0]} to {values[-1]}"


def markdown(result: dict) -> str:
    lines = ["## Fit time of the recommended rankers (`python benchmarks/fit_time.py`)", "",
             f"Each ranker validation chooses in the summary, fitted once (seed 0) at the largest budget of at most "
             f"{result['max_cells']:,} cells where it is chosen; {result['machine']}, {result['threads']} torch threads; "
             f"measured {_span(result['rows'], 'date')}, 1-min load average {_span(result['rows'], 'load_avg_1min')} "
             f"after each fit.  Steps: optimiser steps of "
             f"the ranker (an ensemble's members fit after it).  Limit: {LIMIT_S:.0f} s (#24).", "",
             "| recommended | benchmark | labelled cells | fit s | epochs | steps | ≤ limit |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['benchmark']} | {r['n_train']:,} | {r['fit_s']:.0f} | {r['epochs']} | {r['steps']} | "
              f"{'yes' if r['fit_s'] <= LIMIT_S else 'no'} |" for r in result["rows"]]
    return "\n".join(lines) + "\n"


def stored_rows(path: Path, threads: int) -> dict[str, dict]:
    """Run hint -> stored row of `path` (none if it does not exist); rows timed with other thread counts are
    not comparable, so they are refused rather than mixed into one table."""
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text())
    if stored["threads"] != threads:
        raise SystemExit(f"error: {path} was timed with {stored['threads']} threads, this run uses {threads}; "
                         f"pass --threads {stored['threads']} or run without --missing")
    return {r["run"]: r for r in stored["rows"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-cells", type=int, default=1563)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--missing", action="store_true", help="time only the chosen rankers the stored fit_time.json lacks; "
                   "keep the stored rows of those still chosen (a new choice then costs one fit, not all of them)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    todo = cases(load_rows(args.results), args.max_cells)
    stored = stored_rows(args.results / "fit_time.json", args.threads) if args.missing else {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="nasrank-fit-time-") as tmp:
        for i, (hint, row) in enumerate(todo):
            if hint in stored:
                rows.append(stored[hint])
                continue
            timed_fit(replace(row, overrides=(*row.overrides, "trainer.max_epochs=1")), f"{tmp}/warm{i}")  # fills the caches
            rows.append({"run": hint, "benchmark": row.benchmark, "n_train": row.n_train, **timed_fit(row, f"{tmp}/{i}"),
                         "date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_1min": round(os.getloadavg()[0], 2)})
            print(json.dumps(rows[-1]), flush=True)
    result = {"rows": rows, "threads": args.threads, "max_cells": args.max_cells, "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    write_atomic(args.results / "fit_time.json", json.dumps(result, indent=1).encode())
    write_atomic(args.results / "fit_time.md", markdown(result).encode())
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
