"""Search benchmark: strategy × dataset × seed → one JSON line each, then a markdown section and plots.

Each run is exactly `python search.py sampler=<strategy> data=<dataset> budget=<B> seed=<seed>` (same
config composition, same code), at the largest budget of its dataset; smaller budgets are read off
its first queries, which is exact because every strategy is anytime (the budget only decides when it
stops; `tests/search/test_strategies.py` checks prefixes).  Budgets: NB201 300 (reported at
50/100/150/300), NB101 1000 (reported at 424/1000).  Validation spaces (AnalogNAS, NAS-Bench-Graph,
with e.g. ``--override data.target=cifar10/analog_acc``) use the NB201 budgets: sampler settings
are chosen on them, never on the NB201/NB101 targets the report checks.

Lines go to `benchmarks/results/search.jsonl.gz` (gzip: full histories are megabytes of JSON); a
rerun skips runs already there (failed runs are retried), so an interrupted grid resumes.  `benchmarks/results/search.md` (included by
`benchmarks/make_report.py`) and one regret plot per dataset (`search_<dataset>.png`) are rewritten
from every line of the file after each run.

    python benchmarks/search.py                                    # 5 strategies × NB201 × seeds 0 1 2
    python benchmarks/search.py --datasets nb101_cifar10 --strategies random evolution topk
    python benchmarks/search.py --datasets analognas_cifar10 --strategies topk \
        --override data.target=cifar10/analog_acc model=renas_gin sampler.min_distance=2   # validation
    python benchmarks/search.py --report                           # rewrite search.md and plots only
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import json
import os
import platform
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np
from hydra import compose, initialize_config_dir

import nasrank.cli  # noqa: F401 - registers the repo_root resolver used by conf/paths
from nasrank.core import ConfigError, REPO_ROOT, write_atomic
from nasrank.cli import CONF_DIR, check_compose, check_group_overrides, user_error
from nasrank.search.plot import plot_regret_bands
from nasrank.search.runner import search
from command_line import recorded_command
from variant_names import variant_name

RESULTS = REPO_ROOT / "benchmarks" / "results"
JSONL, SECTION = RESULTS / "search.jsonl.gz", RESULTS / "search.md"
STRATEGIES = ["random", "evolution", "topk", "nar_tier", "predictor_evolution"]
NB201 = ["nb201_cifar10", "nb201_cifar100", "nb201_imagenet16"]
#: budgets reported per space; runs use the largest
BUDGETS = {"nb201": [50, 100, 150, 300], "nb101": [424, 1000], "analognas": [50, 100, 150, 300], "nbgraph": [50, 100, 150, 300]}
#: spaces whose targets #7 sets; the others only serve to choose sampler settings (validation)
TARGET_SPACES = ("nb201", "nb101")
GUIDED, BASELINES = ("nar_tier", "nar_tier_paper", "topk"), ("random", "evolution")


def space_of(dataset: str) -> str:
    """The search space a data config name (or report section) belongs to: ``nb201_cifar10`` -> ``nb201``."""
    return dataset.split("_")[0]


def budgets_of(dataset: str) -> list[int]:
    space = space_of(dataset)
    if space not in BUDGETS:
        raise ConfigError(f"no budgets for dataset {dataset!r}; allowed: {', '.join(f'{k}_*' for k in BUDGETS)} data configs")
    return BUDGETS[space]


def key(row: dict) -> str:
    return json.dumps([row["strategy"], row["dataset"], row["seed"], row["budget"], list(row.get("overrides", []))])


def read_rows(path: Path = JSONL) -> Iterator[dict]:
    """Rows of the results file; a line, or a gzip member, cut off by an interrupted write is skipped."""
    if not path.is_file():
        return
    with gzip.open(path, "rt") as fh:
        try:
            for line in fh:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    print(f"warning: skipping an unreadable line of {path}", file=sys.stderr)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            print(f"warning: {path} ends in a cut-off write; its last row is ignored", file=sys.stderr)


def append_row(row: dict, path: Path = JSONL) -> None:
    """Append one row as its own gzip member: earlier rows are never rewritten, so a crash loses at most this one.

    The member is compressed in memory and written with one call under an exclusive lock, so two grids
    appending to the same file at once (one per core) cannot interleave their bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    member = gzip.compress((json.dumps(row) + "\n").encode(), mtime=0)
    with open(path, "ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(member)


def run_one(strategy: str, dataset: str, seed: int, overrides: list[str]) -> dict:
    """One search at the dataset's largest budget; an error becomes an `error` field."""
    budget = budgets_of(dataset)[-1]
    row = {"strategy": strategy, "dataset": dataset, "seed": seed, "budget": budget, "overrides": overrides,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d %H:%M"),
           "load_avg_1min": round(os.getloadavg()[0], 1)}
    args = [f"sampler={strategy}", f"data={dataset}", f"budget={budget}", f"seed={seed}", *overrides]
    try:
        if msg := check_group_overrides(args) or check_compose("search", args):
            raise ConfigError(msg)
        with tempfile.TemporaryDirectory(prefix="nasrank-search-") as tmp:
            with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
                cfg = compose("search", overrides=[*args, f"paths.output_dir={tmp}"])
            start = time.perf_counter()
            history, _ = search(cfg)
            wall = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - the row records what failed; the grid goes on
        if user_error(exc) is None and os.environ.get("NASRANK_BENCH_RAISE") == "1":
            raise
        return {**row, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    return {**row, "values": history.values.tolist(), "ranks": history.ranks.tolist(), "sources": list(history.sources),
            "optimum": history.optimum, "space_size": history.space_size, "wall_s": round(wall, 1), **history.extra}


# -- summary -------------------------------------------------------------------------------------
def regret_curve(row: dict) -> np.ndarray:
    return row["optimum"] - np.maximum.accumulate(np.asarray(row["values"]))


def hit_at(row: dict) -> float:
    """Queries until an optimum was queried (inf if never)."""
    hits = np.flatnonzero(np.asarray(row["ranks"]) == 1)
    return float(hits[0] + 1) if len(hits) else float("inf")


def latest(rows: list[dict]) -> dict[tuple, list[dict]]:
    """(dataset, strategy, overrides) -> the successful runs, one per seed (the last written).

    A ``data.target=`` override names another target of the dataset, so it joins the dataset's name
    ("analognas_cifar10 (cifar10/analog_acc)"): a section per searched target, not a variant.
    """
    by_key = {key(r): r for r in rows if "error" not in r}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in by_key.values():
        overrides = list(r.get("overrides", []))
        targets = [o.split("=", 1)[1] for o in overrides if o.startswith("data.target=")]
        dataset = r["dataset"] + "".join(f" ({t})" for t in targets)
        groups[(dataset, r["strategy"], " ".join(o for o in overrides if not o.startswith("data.target=")))].append(r)
    return groups


def label(strategy: str, overrides: str) -> str:
    return variant_name(strategy, overrides.split())


def stats(runs: list[dict], budget: int) -> dict:
    final = np.array([regret_curve(r)[budget - 1] for r in runs])
    hits = np.array([hit_at(r) for r in runs])
    ranks = np.array([min(r["ranks"][:budget]) for r in runs])
    med_hit = float(np.median(hits))
    return {"median": float(np.median(final)), "mean": float(final.mean()), "found": float((hits <= budget).mean()),
            "queries_to_opt": med_hit if med_hit <= budget else None, "best_rank": float(np.median(ranks))}


def dataset_section(dataset: str, groups: dict[tuple, list[dict]]) -> tuple[str, dict[str, np.ndarray]]:
    """Markdown table (and regret curves for the plot) of one dataset."""
    budgets = budgets_of(dataset)
    lines = [f"### {dataset}", "", "| strategy | budget | seeds | median regret | mean regret | found optimum | "
             "median queries to optimum | median best rank | median time (s) |", "|---|---|---|---|---|---|---|---|---|"]
    curves, table, guided = {}, {}, []  # guided: names of guided strategies' rows, variants included
    for (ds, strategy, overrides), runs in sorted(groups.items(), key=lambda kv: (STRATEGIES.index(kv[0][1]) if kv[0][1] in STRATEGIES else 99, kv[0][2])):
        if ds != dataset:
            continue
        name = label(strategy, overrides)
        runs = [r for r in runs if len(r["values"]) >= budgets[-1]]
        if not runs:
            continue
        guided += [name] if strategy in GUIDED else []
        curves[name] = np.stack([regret_curve(r)[: budgets[-1]] for r in runs])
        wall = np.median([r["wall_s"] for r in runs])
        for b in budgets:
            s = table[(name, b)] = stats(runs, b)
            to_opt = f"{s['queries_to_opt']:.0f}" if s["queries_to_opt"] is not None else f"> {b}"
            lines.append(f"| {name} | {b} | {len(runs)} | {s['median']:.3f} | {s['mean']:.3f} | {s['found']:.0%} | {to_opt} | "
                         f"{s['best_rank']:.0f} | {wall:.0f} |")
    if space_of(dataset) in TARGET_SPACES:
        lines += ["", *verdicts(dataset, budgets, table, guided)]
    else:
        lines[0] += " (validation: chooses sampler settings; no target)"
    lines.append("")
    return "\n".join(lines), curves


def verdicts(dataset: str, budgets: list[int], table: dict[tuple, dict], guided: list[str]) -> list[str]:
    """The targets of the `guided` rows of `table` (a guided strategy's variants too), checked on the
    numbers above (never asserted by hand)."""
    out = []
    for g in guided:
        s = table[(g, budgets[-1])]
        if dataset.startswith("nb201"):
            hit = s["queries_to_opt"]
            out.append(f"- {g}: median queries to the optimum {hit:.0f}" if hit is not None else f"- {g}: median queries to the optimum > {budgets[-1]}")
            out[-1] += " (target ≤ 150: " + ("met" if hit is not None and hit <= 150 else "missed") + ")"
        else:
            rank = table[(g, budgets[0])]["best_rank"]
            out.append(f"- {g}: median best rank with {budgets[0]} queries {rank:.0f} (target ≤ 42: {'met' if rank <= 42 else 'missed'})")
        for base in BASELINES:
            if (base, budgets[0]) not in table:
                continue
            beat = [b for b in budgets if table[(g, b)]["mean"] < table[(base, b)]["mean"]]
            tied = [b for b in budgets if table[(g, b)]["mean"] == table[(base, b)]["mean"]]  # e.g. both at the optimum
            out.append(f"  - lower mean regret than {base} at budgets {beat or 'none'} of {budgets}" + (f"; equal at {tied}" if tied else ""))
            if tied and all(table[(g, b)]["mean"] == 0 for b in tied):  # no regret left to beat: who got there first
                first = [table[(name, budgets[-1])]["queries_to_opt"] for name in (g, base)]
                out[-1] += f" (regret 0 for both; median queries to the optimum {first[0]:.0f} vs {first[1]:.0f})"
    return out


def write_report(rows: list[dict]) -> None:
    groups = latest(rows)
    datasets = sorted({ds for ds, _, _ in groups}, key=lambda d: (d not in NB201, space_of(d) not in TARGET_SPACES, d))
    parts = ["## Search with query budgets (`python benchmarks/search.py`)", "",
             "Each run is `python search.py sampler=<strategy> data=<dataset> budget=<largest> seed=<seed>`; smaller budgets",
             "are its first queries (strategies are anytime).  Regret = space optimum − best queried value (test accuracy, %);",
             "\"found optimum\" = share of seeds that queried a cell of rank 1; queries to optimum: median over seeds",
             "(\"> B\": not reached by half the seeds within B).  Every query counts, a ranker's training cells included.", ""]
    for ds in datasets:
        text, curves = dataset_section(ds, groups)
        parts.append(text)
        if curves and space_of(ds) in TARGET_SPACES:
            png = plot_regret_bands(curves, RESULTS / f"search_{ds}.png", f"{ds}: regret vs queries")
            parts += [f"![regret curves {ds}](benchmarks/results/{png.name})", ""]
    machines = sorted({r["machine"] for rs in groups.values() for r in rs})
    loads = [r["load_avg_1min"] for rs in groups.values() for r in rs]
    if loads:
        parts.append(f"Machine: {', '.join(machines)}; 1-minute load average during runs {min(loads)}–{max(loads)} (times are wall-clock).")
    write_atomic(SECTION, ("\n".join(parts) + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategies", nargs="+", default=STRATEGIES)
    p.add_argument("--datasets", nargs="+", default=NB201)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--override", nargs="+", default=[], help="extra Hydra overrides of every run (part of its key)")
    p.add_argument("--minutes", type=float, default=float("inf"), help="start no run after this many minutes")
    p.add_argument("--report", action="store_true", help="only rewrite search.md and the plots")
    args = p.parse_args(argv)
    try:
        for ds in args.datasets:
            budgets_of(ds)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.report:
        command = recorded_command("benchmarks/search.py", argv)
        done = {key(r) for r in read_rows() if "error" not in r}
        todo = [(s, d, seed) for seed in args.seeds for d in args.datasets for s in args.strategies
                if key({"strategy": s, "dataset": d, "seed": seed, "budget": budgets_of(d)[-1], "overrides": args.override}) not in done]
        print(f"{len(todo)} runs to do", flush=True)
        start = time.perf_counter()
        for i, (strategy, dataset, seed) in enumerate(todo, 1):
            if time.perf_counter() - start > 60 * args.minutes:
                print(f"stopping: past {args.minutes} min; rerun to resume", file=sys.stderr)
                break
            row = {**run_one(strategy, dataset, seed, args.override), "command": command}
            append_row(row)
            done_msg = row.get("error") or f"final regret {regret_curve(row)[-1]:.3f}, optimum at {hit_at(row):.0f}, {row['wall_s']} s"
            print(f"[{i}/{len(todo)}] {strategy} {dataset} seed {seed}: {done_msg}", flush=True)
            write_report(list(read_rows()))
    write_report(list(read_rows()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
