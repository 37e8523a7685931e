"""The first screen of BENCHMARKS.md: which ranker to use per benchmark and budget (chosen on validation
KTau, never on test) beside the simple baselines, the search summary, and the headline speeds."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

from variant_names import RECIPES, recipe_with_extras, shown_overrides, variant_name
from result_rows import by_size, is_table_baseline, ktaus, mean_std, pick_on_val

#: Benchmarks of the summary, in order, with their display names.
BENCHMARKS = {"nb201_cifar10": "NB201 CIFAR-10", "nb201_cifar100": "NB201 CIFAR-100",
              "nb201_imagenet16": "NB201 ImageNet16-120", "nb101_cifar10": "NB101 CIFAR-10",
              "nbgraph_joint": "NAS-Bench-Graph", "analognas_cifar10": "AnalogNAS CIFAR-10"}
#: Benchmarks of a space other than their name's prefix: AnalogNAS measures NB201 cells.
SPACES = {"analognas": "nb201"}
#: The target a benchmark's name stands for; rows on another target show it beside the name.
NAMED_TARGETS = {"analognas_cifar10": "cifar10/baseline_acc"}
CONF = Path(__file__).resolve().parents[1] / "conf"
#: Labelled-cell budgets of the ranking grid per space (other sizes serve other sections, e.g. transfer at 1,000).
BUDGETS = {"nb201": (78, 156, 469, 781, 1563), "nb101": (424, 4236, 16944, 42362, 211812), "nbgraph": (1000,)}


def run_hint(name: str, row: dict | None = None) -> str:
    """How to run a chosen variant: a recipe, a model config, a recipe plus the variant's extra overrides
    (`row`: one of its result rows), the row's model config plus its overrides, or the variant's name."""
    if name in RECIPES:
        return f"`experiment={name}`"
    if (CONF / "model" / f"{name}.yaml").is_file():
        return f"`model={name}`"
    if row is None:
        return f"`{name}`"
    if found := recipe_with_extras(row["method"], row.get("overrides") or []):
        return f"`experiment={found[0]} {' '.join(found[1])}`"
    if (CONF / "model" / f"{row['method']}.yaml").is_file():
        return f"`model={' '.join([row['method'], *shown_overrides(row.get('overrides') or [])])}`"
    return f"`{name}`"


def space_of(bench: str) -> str:
    prefix = bench.split("_")[0]
    return SPACES.get(prefix, prefix)


def chosen_rankers(rows: list[dict]) -> Iterator[tuple[str, str, int, dict[str, dict[int, dict]], str]]:
    """(benchmark, target, n_train, every variant's rows by seed, the ranker validation chooses) per summary
    benchmark and budget, in the summary's order."""
    groups = by_size(rows)
    order = sorted(groups, key=lambda k: (list(BENCHMARKS).index(k[0]) if k[0] in BENCHMARKS else 99, k[1], k[2]))
    for bench, target, n in order:
        if bench not in BENCHMARKS or n not in BUDGETS[space_of(bench)]:
            continue
        variants = groups[(bench, target, n)]
        chosen = pick_on_val({m: s for m, s in variants.items() if not is_table_baseline(next(iter(s.values()))["method"])})
        if chosen is not None:
            yield bench, target, n, variants, chosen


def summary_rows(rows: list[dict]) -> tuple[list[str], dict[str, list[str]]]:
    """Table lines, and recipe -> the benchmarks outside its own space where validation chose it too."""
    lines, elsewhere = [], defaultdict(list)
    for bench, target, n, variants, chosen in chosen_rankers(rows):
        space = space_of(bench)
        method = {m: next(iter(s.values()))["method"] for m, s in variants.items()}
        mlp = pick_on_val({m: s for m, s in variants.items() if method[m] == "mlp_ensemble"})
        gbdt = variants.get("gbdt")
        base = [float(np.mean(ktaus(variants[mlp]))) if mlp else None, float(np.mean(ktaus(gbdt))) if gbdt else None]
        score = float(np.mean(ktaus(variants[chosen])))
        best = max((b for b in base if b is not None), default=None)
        name = BENCHMARKS[bench] + (f" {target.split('/')[0].capitalize()}" if bench == "nbgraph_joint" else "")
        name += f" ({target.split('/')[1]})" if NAMED_TARGETS.get(bench, target) != target else ""
        if chosen in RECIPES and f"_{space}" not in chosen:
            elsewhere[chosen].append(f"{name} at {n:,} cells")
        fit = np.median([r["fit_s"] for r in variants[chosen].values()])
        lines.append(f"| {name} | {n:,} | {run_hint(chosen, next(iter(variants[chosen].values())))} | {mean_std(ktaus(variants[chosen]))} | "
                     f"{mean_std(ktaus(variants[mlp])) if mlp else '–'} | {mean_std(ktaus(gbdt)) if gbdt else '–'} | "
                     f"{f'{score - best:+.3f}' if best is not None else '–'} | {fit:.0f} |")
    return lines, elsewhere


def load_search():
    """benchmarks/search.py, loaded by path (the repository root has a search.py of its own)."""
    if "bench_search" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_search", Path(__file__).with_name("search.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_search"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_search"]


def search_summary(path: Path) -> list[str]:
    """Median queries to the optimum per strategy (unconstrained runs of the target spaces) at the largest budget."""
    search = load_search()
    groups = search.latest(list(search.read_rows(path)))
    datasets = [d for d in BENCHMARKS if d.split("_")[0] in search.TARGET_SPACES and any(g[0] == d for g in groups)]
    if not datasets:
        return []
    cells: dict[str, dict[str, str]] = {}
    for (dataset, strategy, overrides), runs in groups.items():
        budget = search.budgets_of(dataset)[-1] if dataset in datasets else None
        runs = [r for r in runs if budget and len(r["values"]) >= budget]
        if not runs or "constraint." in overrides:
            continue
        hit = search.stats(runs, budget)["queries_to_opt"]
        cells.setdefault(variant_name(strategy, overrides.split()), {})[dataset] = f"{hit:.0f}" if hit is not None else f"> {budget}"
    head = " | ".join(f"{BENCHMARKS[d]} ({search.budgets_of(d)[-1]})" for d in datasets)
    lines = ["| strategy | " + head + " |", "|---" * (len(datasets) + 1) + "|"]
    strategies = search.STRATEGIES
    for name in sorted(cells, key=lambda s: (strategies.index(s.split(",")[0]) if s.split(",")[0] in strategies else 99, s)):
        lines.append(f"| {name} | " + " | ".join(cells[name].get(d, "–") for d in datasets) + " |")
    return lines


def speed_line(path: Path) -> list[str]:
    if not path.is_file():
        return []
    s = json.loads(path.read_text())
    return [f"Speed ({s['machine']}, {s['threads']} torch threads): NAR fits the NB201 recipe (1,000 cells, 440 steps) in "
            f"{s['nar_nb201_fit_s']:.0f} s and scores all 15,625 NB201 cells in {s['nar_nb201_score_s']:.2f} s; scoring all "
            f"423,624 NB101 cells takes {s['nar_nb101_score_s']:.0f} s (NAR) to {s['renas_ensemble_nb101_score_s']:.0f} s "
            f"(ReNAS CNN + 3 directed GINs); a 150-query search.py run takes {s['search_nar_tier_s']:.0f}-{s['search_topk_s']:.0f} s "
            "(section Speed).", ""]


def fit_time_line(path: Path) -> list[str]:
    if not path.is_file():
        return []
    s = json.loads(path.read_text())
    fits = [r["fit_s"] for r in s["rows"]]
    slowest = max(s["rows"], key=lambda r: r["fit_s"])
    return [f"Fitting each recommended ranker once at its largest budget up to {s['max_cells']:,} cells takes "
            f"{min(fits):.0f}-{max(fits):.0f} s with {s['threads']} torch threads on an idle machine (slowest: "
            f"{slowest['run']} at {slowest['n_train']:,} cells; section Fit time of the recommended rankers).", ""]


def saved_speed_line(path: Path) -> list[str]:
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())["rows"]
    span = {space: [r["load_s"] + r["score_s"] for r in rows if r["space"] == space] for space in ("nb201", "nb101")}
    parts = [f"all {15625 if space == 'nb201' else 423624:,} {space.upper()} cells in {min(v):.0f}-{max(v):.0f} s"
             for space, v in span.items() if v]
    return [f"A saved ranker (`ranker.pt`), loaded in a fresh process, scores {' and '.join(parts)} including the load "
            "(section Saved ranker speed).", ""]


def summary_section(rows: list[dict], results: Path) -> list[str]:
    table, elsewhere = summary_rows(rows)
    lines = ["## Which ranker to use", "",
             "Per benchmark and number of labelled cells: the ranker chosen on validation KTau among the trained rankers "
             "run there with the most seeds (at least 3; compared on the seeds they all ran; never on test), its test "
             "Kendall tau (mean ± std over seeds, seeds in brackets), and two simple baselines fitted on the same splits: an ensemble of MLPs on one-hot cells (the "
             "better on validation of the raw and the canonical cell encoding) and gradient-boosted trees (GBDT).  Run a "
             "recipe by name: `python train.py experiment=best_nb201 data=nb201_cifar100 data.n_train=1563`; "
             "[README.md](README.md#which-ranker-to-use) lists what each holds.  Gain: chosen − the better baseline; fit s: "
             "median seconds to fit the chosen ranker (1 thread).", "",
             "| benchmark | labelled cells | recommended | test KTau | MLP ensemble | GBDT | gain | fit s |",
             "|---|---|---|---|---|---|---|---|", *table, ""]
    if elsewhere:
        lines += ["A recipe is named after the space it was chosen for; validation also chooses "
                  + "; ".join(f"`{name}` on " + ", ".join(where) for name, where in elsewhere.items()) + ".", ""]
    search = search_summary(results / "search.jsonl.gz")
    if search:
        lines += ["### Search: median queries to the optimum", "",
                  "Over seeds, at each space's largest budget (in brackets; \"> B\": half the seeds had not queried the "
                  "optimum by then), every query counted, a ranker's training cells included (section Search).", "",
                  *search, ""]
    return (lines + speed_line(results / "speed.json") + fit_time_line(results / "fit_time.json")
            + saved_speed_line(results / "artifact_speed.json"))
