"""Measure the data foundation: load times (cold/cached), enumeration, costs, cross-checks.

Writes `benchmarks/results/data.json` and the section `benchmarks/results/data.md` that
`benchmarks/make_report.py` includes in BENCHMARKS.md.  Run: `python benchmarks/data_loading.py`.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from nasrank.benchmarks.analognas import load_analognas
from nasrank.benchmarks.nb101 import load_nb101_table
from nasrank.benchmarks.nb201_table import load_nb201_table
from nasrank.benchmarks.nbgraph import DATASETS, load_nbgraph
from nasrank.core import write_atomic
from nasrank.encodings.cost import arch_costs, node_costs
from nasrank.encodings.graph import dense_graphs
from nasrank.spaces.nb101 import SPACE as NB101

OUT = Path(__file__).parent / "results"


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def load_times(cache: Path) -> dict[str, dict[str, float]]:
    loaders = {"nb201_table": load_nb201_table, "nb101_table": load_nb101_table, "analognas": load_analognas,
               **{f"nbgraph_{d}": (lambda d=d, **kw: load_nbgraph(d, **kw)) for d in DATASETS}}
    out = {}
    for name, loader in loaders.items():
        bench, cold = timed(lambda: loader(cache_dir=cache))
        _, warm = timed(lambda: loader(cache_dir=cache))
        out[name] = {"rows": len(bench), "cold_s": round(cold, 3), "cached_s": round(warm, 3)}
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        res: dict = {"machine": f"{platform.processor() or platform.machine()}, 2 cores", "load": load_times(cache)}
        nb201, nb101, analog = (f(cache_dir=cache) for f in (load_nb201_table, load_nb101_table, load_analognas))
    cells, t_enum = timed(lambda: sum(1 for _ in NB101.enumerate()))
    res["nb101_enumeration"] = {"cells": cells, "seconds": round(t_enum, 2)}
    res["nb201_iso_classes"] = len({a.iso_key() for a in nb201.archs})
    accs = {k: nb201.target(k) for k in sorted(nb201.targets) if k.endswith("/test_acc")}
    res["nb201_true_cross_dataset_ktau"] = {f"{a} vs {b}": round(float(kendalltau(accs[a], accs[b]).statistic), 3)
                                           for a in accs for b in accs if a < b}
    rows = [nb201.index_of(a) for a in analog.archs]
    res["analognas_vs_nats_spearman"] = round(float(spearmanr(analog.target("cifar10/baseline_acc"), nb201.target("cifar10/test_acc")[rows]).statistic), 4)
    for name, bench, dataset in (("nb201", nb201, "cifar10"), ("nb101", nb101, "cifar10")):
        g, t_dense = timed(lambda: dense_graphs(bench.archs, bench.space))
        _, t_node = timed(lambda: node_costs(bench.space.name, g.ops, g.adj, dataset))
        (flops, params), t_arch = timed(lambda: arch_costs(bench.space.name, g.ops, g.adj, dataset))
        res[f"{name}_costs"] = {"cells": len(bench), "dense_graphs_s": round(t_dense, 2), "node_costs_s": round(t_node, 2),
                                "arch_costs_s": round(t_arch, 2), "mflops_range": [round(float(flops.min()), 3), round(float(flops.max()), 3)],
                                "mparams_range": [round(float(params.min()), 4), round(float(params.max()), 4)]}
        if name == "nb101":
            table = bench.cost("cifar10/flops")
            res["nb101_flops_vs_table"] = {"spearman": round(float(spearmanr(flops, table).statistic), 6),
                                           "median_ratio_table_over_ours": round(float(np.median(table / flops)), 4)}
    write_atomic(OUT / "data.json", (json.dumps(res, indent=1) + "\n").encode())
    lines = ["## Data foundation (`python benchmarks/data_loading.py`)", "", f"Machine: {res['machine']}.", "",
             "| benchmark | rows | cold load (s) | cached load (s) |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['rows']:,} | {v['cold_s']} | {v['cached_s']} |" for k, v in res["load"].items()]
    e, c1, c2, fl = res["nb101_enumeration"], res["nb201_costs"], res["nb101_costs"], res["nb101_flops_vs_table"]
    lines += ["", f"- NB101 enumeration: {e['cells']:,} unique cells in {e['seconds']} s.",
              f"- NB201 canonical (isomorphism) classes: {res['nb201_iso_classes']:,}.",
              "- Kendall tau between NB201's true test accuracies of two datasets over all 15,625 cells (what a perfect "
              "ranker of one dataset scores on the other; the ceiling of cross-dataset transfer): "
              + ", ".join(f"{k.replace('/test_acc', '')} {v}" for k, v in res["nb201_true_cross_dataset_ktau"].items()) + ".",
              f"- AnalogNAS baseline accuracy vs NATS CIFAR-10 test accuracy on the mapped cells: Spearman {res['analognas_vs_nats_spearman']}.",
              f"- Analytic costs, NB201 (CIFAR-10, {c1['cells']:,} cells): node {c1['node_costs_s']} s + totals {c1['arch_costs_s']} s; "
              f"{c1['mflops_range'][0]}–{c1['mflops_range'][1]} MFLOPs, {c1['mparams_range'][0]}–{c1['mparams_range'][1]} M params.",
              f"- Analytic costs, NB101 ({c2['cells']:,} cells): dense graphs {c2['dense_graphs_s']} s, node {c2['node_costs_s']} s + totals {c2['arch_costs_s']} s; "
              f"FLOPs vs the table's thop counts: Spearman {fl['spearman']}, median ratio table/ours {fl['median_ratio_table_over_ours']} "
              "(thop also counts BN and omits the classifier bias).", ""]
    write_atomic(OUT / "data.md", "\n".join(lines).encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
