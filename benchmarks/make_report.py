"""Rebuild BENCHMARKS.md from `benchmarks/results/`: never edit numbers by hand, rerun this.

The report opens with the summary (`report_summary.py`: which ranker to use per benchmark and budget, search,
speed); then ranking rows (`*.jsonl` lines with `method`, `benchmark`, `n_train`, `test_ktau`, as written by
`benchmarks/ranking.py`) become one table per (benchmark, target): rows = variant (named by `variant_names.py`),
columns = training size, cells = test Kendall tau mean ± std over seeds.  Every `*.md` file in the results
folder is a section another script wrote; they follow in name order after the fidelity section (`fidelity.py`:
each paper variant against its official code), and the commands behind every stored row close the report.

    python benchmarks/make_report.py [--results benchmarks/results] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasrank.core import write_atomic
from result_rows import by_size, label, latest, load_rows, mean_std, para, pick_on_val
from fidelity import fidelity_section
from report_summary import summary_section
from report_zerocost import zerocost_section

ROOT = Path(__file__).resolve().parents[1]


def table(rows: list[dict]) -> list[str]:
    """Markdown table of one (benchmark, target): KTau per size, then time/memory at the largest size."""
    sizes = sorted({(r["n_train"], r["n_val"]) for r in rows})
    cells: dict[str, dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        cells[label(r)][(r["n_train"], r["n_val"])].append(r["test_ktau"])
    head = [f"n={n} (val {v})" for n, v in sizes]
    lines = ["| ranker | " + " | ".join(head) + " | fit s | score-all s | peak RSS MB |", "|---" * (len(head) + 4) + "|"]
    for name in sorted(cells, key=lambda m: -np.mean(cells[m][max(cells[m])])):
        biggest = max(cells[name])
        at_max = [r for r in rows if label(r) == name and (r["n_train"], r["n_val"]) == biggest]
        row = [mean_std(cells[name][s]) if s in cells[name] else "–" for s in sizes]
        row += [f"{np.median([r['fit_s'] for r in at_max]):.1f}", f"{np.median([r['score_s'] for r in at_max]):.2f}",
                f"{max(r['peak_rss_mb'] for r in at_max):.0f}"]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return lines


def recorded(rows: list[dict], key: str, what: str, fmt: str, unit: str) -> str:
    """A sentence giving the median of a field only some rows record (older rows predate it)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return f"  Median of {what} over the {len(values)} rows that record it: {np.median(values):{fmt}}{unit}." if values else ""


def ranking_section(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    ok = latest(rows)
    lines = ["## Ranking quality (`benchmarks/ranking.py`)", "",
             "Test Kendall tau between predicted scores and true accuracy over every cell outside the train and "
             "validation splits, mean ± std over seeds (number of seeds).  Seed s fixes both the split and the "
             "training seed, so every method sees the same cells.  Lightning methods keep their best val/ktau epoch; "
             "the table baselines (`mlp_ensemble`, `gbdt`) ignore the validation split, and the zero-cost baselines "
             "(`zc_<proxy>`, `zc_rank_sum`: scores of the untrained networks, docs/methods.md) train on nothing.  Rankers are named by their "
             "recipe (`best_*`, conf/experiment/) or by method and settings (benchmarks/variant_names.py spells each name's "
             "overrides).  Time and memory columns are "
             "at the largest training size of each row (median fit seconds, median seconds to score the whole space, "
             "max peak RSS of the row's process).", ""]
    setups = sorted({f"{r.get('machine', '?')}, {r.get('threads', '?')} thread(s) per row, accelerator {r.get('accelerator', 'cpu')}" for r in ok})
    if setups:
        load = recorded(ok, "load_avg", "the 1-min load average (timings are only comparable at similar load)", ".1f", "")
        rss = recorded(ok, "rss_start_mb", "the RSS before training (imported libraries, included in peak RSS)", ".0f", " MB")
        lines += [f"Machine: {'; '.join(setups)}.{load}{rss}", ""]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in ok:
        groups[(r["benchmark"], r["target"])].append(r)
    for (bench, target), group in sorted(groups.items()):
        lines += [f"### {bench} — {target}", "", *table(group), ""]
    done = {(label(r), r["benchmark"]) for r in ok}
    failed = {(label(r), r["benchmark"]): r["error"] for r in rows if "error" in r and (label(r), r["benchmark"]) not in done}
    if failed:
        lines += ["Methods with no successful row yet (last error):", ""]
        lines += [f"- `{m}` on {b}: {err}" for (m, b), err in sorted(failed.items())] + [""]
    return lines


@dataclass(frozen=True)
class Targets:
    """A method family's issue targets: its variants (chosen among on validation KTau), the overrides a
    variant may carry (hyperparameters chosen on validation), and test KTau targets per space and size."""

    title: str
    variants: tuple[str, ...]
    override_prefixes: tuple[str, ...]
    targets: dict[str, dict[int, float]]
    description: str


BASELINE_METHODS = ("mlp_ensemble", "gbdt", "gin_regressor", "mlp_regressor")
#: An ensemble config and the members / member trainers added to it on the command line.
ENSEMBLE_PREFIXES = ("ensemble=", "+model@ensemble.members.", "+ensemble.trainer.")
NAR = Targets(  # issue #5
    "NAR", ("nar", "nar_recipe", "nar_gin", "nar_mixed"), ("model.", "data.batch_size=", "self_training=", *ENSEMBLE_PREFIXES),
    {"nb201": {78: 0.64, 156: 0.72, 469: 0.80, 781: 0.83, 1563: 0.87}, "nb101": {424: 0.75, 4236: 0.85}},
    "`nar_recipe` (the paper's recipe, `experiment=nar_nb201` / `nar_nb101`: a fixed step budget, no early "
    "stopping), `nar` (`model=nar` with the default trainer: 100 epochs, early stopping on val), `nar_gin` (NAR with "
    "the GIN encoder), `nar_mixed` (NAR transformer and GIN nets trained together), and NAR with more members (×3), "
    "batch 16 or 32 for small training sets, a member fitted apart (`+ renas_gin`, `+ renas_dgin`: each at its own "
    "best val epoch, scores averaged; the `best_*` recipes) or self-training (a NAR teacher labels 1,000 unlabeled "
    "cells and the reported student is fitted on both)")
RENAS = Targets(  # issue #6
    "ReNAS", ("renas", "renas_gin", "renas_dgin"), ("model.", "data.batch_size=", "trainer.max_epochs=", *ENSEMBLE_PREFIXES),
    {"nb101": {424: 0.66, 4236: 0.82}},
    "`renas` (the CNN over the ReNAS tensor, `model=renas` with the default trainer), `renas_gin` (ReNAS's pairwise "
    "objective over a GIN), `renas_dgin` (the same over a directed 5-layer GIN), their variants with a batch size / "
    "epoch budget chosen on validation, and `renas + ...` (the CNN and the GIN(s) fitted apart, each at its own best "
    "val epoch, scores averaged)")


def target_section(rows: list[dict], spec: Targets) -> list[str]:
    """A method family against its targets and the best baseline.

    Where several variants ran, the one with the higher mean *validation* KTau is the verdict's (model
    selection on the validation split, never on test)."""
    def shown(r: dict) -> bool:  # defaults, the canonical MLP ensemble, the family's variants
        extra = r.get("overrides") or []
        if r["method"] in BASELINE_METHODS:
            return not extra or r["method"] == "mlp_ensemble"
        return r["method"] in spec.variants and all(o.startswith(spec.override_prefixes) for o in extra)

    ok = [r for r in latest(rows) if r["benchmark"].split("_")[0] in spec.targets and shown(r)]
    lines = [f"### {spec.title} against its targets and the baselines", "",
             f"Per size of the targets, the {spec.title} variant with the higher mean validation KTau (among those with "
             "the most seeds there, at least 3, over the seeds they all ran) and its mean test KTau (seeds in brackets), "
             "against the target and the best baseline there with at least 3 seeds (GIN/MLP regressors, GBDT, MLP "
             f"ensemble on raw or canonical cells).  Variants compared: {spec.description}; every variant's numbers are "
             "in the tables above.", "",
             "| benchmark | n | chosen on val | test KTau | target | met | best baseline | its test KTau | chosen − baseline |",
             "|---" * 9 + "|"]
    header = len(lines)
    for (bench, _, n), variants in sorted(by_size(ok).items()):
        target = spec.targets.get(bench.split("_")[0], {}).get(n)
        family = {m: s for m, s in variants.items() if next(iter(s.values()))["method"] in spec.variants}
        chosen = pick_on_val(family)
        if target is None or chosen is None:
            continue
        score = float(np.mean([r["test_ktau"] for r in family[chosen].values()]))
        others = {m: float(np.mean([r["test_ktau"] for r in s.values()])) for m, s in variants.items() if m not in family and len(s) >= 3}
        best = max(others, key=others.get) if others else None
        versus = f"{best} | {others[best]:.3f} | {score - others[best]:+.3f}" if best else "– | – | –"
        lines.append(f"| {bench} | {n} | {chosen} | {score:.3f} ({len(family[chosen])}) | {target:.2f} | "
                     f"{'yes' if score >= target else 'no'} | {versus} |")
    return lines + [""] if len(lines) > header else []


def transfer_section(rows: list[dict], n_train: int = 1000) -> list[str]:
    """Train dataset × evaluation dataset test KTau (rows with `transfer`, at n_train), per space and method."""
    groups: dict[tuple[str, str], dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in latest(rows):
        if r["n_train"] != n_train or "transfer" not in r:
            continue
        space, source = r["benchmark"].split("_")[0], r["target"]
        for evaluated, ktau in {source: r["test_ktau"], **r["transfer"]}.items():
            groups[(space, r["method"])][source][evaluated].append(ktau)
    if not groups:
        return []
    lines = ["## Cross-dataset transfer (`benchmarks/ranking.py --sizes 1000`, rows' `transfer` field)", "",
             f"Each ranker is trained on one dataset's targets (n_train = {n_train}, val 256) and its scores of every test cell "
             "are compared with each dataset's targets (test KTau, mean ± std (seeds)); the diagonal is the model trained "
             "on that dataset directly, the honest reference for the column.", ""]
    for (space, method), by_source in sorted(groups.items()):
        sources = sorted(by_source)
        lines += [f"### {space}: {method}", "", "| trained on ↓ / ranked for → | " + " | ".join(s.split("/")[0] for s in sources) + " |",
                  "|---" * (len(sources) + 1) + "|"]
        for src in sources:
            lines.append(f"| {src.split('/')[0]} | " + " | ".join(mean_std(by_source[src][dst]) if by_source[src][dst] else "–" for dst in sources) + " |")
        lines.append("")
    return lines


def commands(results: Path) -> dict[str, list[str]]:
    """Results file -> the distinct commands its stored rows record."""
    out: dict[str, set[str]] = defaultdict(set)
    for path in sorted(results.glob("*.jsonl")) + sorted(results.glob("*.jsonl.gz")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and row.get("command"):
                    out[path.name].add(row["command"])
    return {name: sorted(cmds) for name, cmds in out.items()}


def appendix(results: Path) -> list[str]:
    lines = ["## Appendix: commands", "",
             "Each results file was written by these commands (each appends to its file; `benchmarks/ranking.py` and "
             "`benchmarks/search.py` resume, skipping rows already done); `--out` paths name where a run on another "
             "machine wrote before its rows were merged into the file.  Sections without rows name their script in "
             "their heading.  Then `python benchmarks/make_report.py`.", ""]
    lines = [para(line) for line in lines]
    for name, cmds in commands(results).items():
        lines += [f"`{name}`:", "", "```", *cmds, "```", ""]
    return lines


def render(results: Path) -> str:
    rows = load_rows(results)
    source = results.relative_to(ROOT) if results.is_relative_to(ROOT) else results.name
    lines = ["# nasrank benchmarks", "",
             f"Generated by `python benchmarks/make_report.py` from `{source}/`; do not edit by hand.  "
             "The commands that produced every row are in the appendix at the end.", ""]
    lines += summary_section(rows, results)
    lines += ranking_section(rows) + zerocost_section(rows) + target_section(rows, NAR) + target_section(rows, RENAS)
    lines += fidelity_section(results, ROOT / "benchmarks" / "fidelity") + transfer_section(rows)
    lines = [para(line) if line[:1].isalpha() else line for line in lines]  # prose; tables and headings stay one line
    for path in sorted(results.glob("*.md")):
        lines += [path.read_text().rstrip(), ""]
    lines += appendix(results)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = p.parse_args(argv)
    if not args.results.is_dir():
        print(f"error: results folder {args.results} does not exist", file=sys.stderr)
        return 2
    write_atomic(args.out, render(args.results.resolve()).encode())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
