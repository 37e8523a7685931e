"""Speed benchmark of the issue targets: NAR's NB201 recipe fit, and scoring whole spaces.

Measures, in one process with `--threads` torch threads (2 = this project's reference machine):
- fit time of `python train.py experiment=nar_nb201` (1,000 cells, 440 steps = 55 epochs);
- time to score all 15,625 NB201 cells with that NAR;
- time to score all 423,624 NB101 cells with NAR (`experiment=nar_nb101`) and ReNAS
  (`experiment=renas_nb101`), each after one training step (scoring cost does not depend on the weights),
  and with the NB101 ensembles chosen on validation in BENCHMARKS.md (NAR x3 + directed GIN at 424 cells;
  ReNAS CNN + 3 directed GINs at 4,236), every member after one step;
- wall time of `python search.py sampler=<nar_tier|topk> data=nb201_cifar100 budget=150 seed=0` (in process);
- loading the NB201 table from a warm cache, enumerating the 423,624 NB101 cells, and the analytic
  FLOPs/params of every node of every NB201 and NB101 cell (`encodings/cost.py`);
- the process's peak RSS.
Writes `benchmarks/results/speed.json` and `speed.md` (included by make_report.py).

    python benchmarks/speed.py                 # 2 threads; run it on an otherwise idle machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from nasrank.core import write_atomic
from nasrank.benchmarks.nb201_table import load_nb201_table
from nasrank.cli import CONF_DIR
from nasrank.encodings.cost import arch_costs, node_costs
from nasrank.encodings.graph import dense_graphs
from nasrank.spaces import nb101, nb201
from nasrank.training import score_rows, train
from ranking import LIGHTNING_OVERRIDES, RESULTS

TARGETS = {"nar_nb201_fit_s": 60.0, "nar_nb201_score_s": 2.0, "nar_nb101_score_s": 60.0, "renas_nb101_score_s": 60.0,
           "nar_ensemble_nb101_score_s": 60.0, "renas_ensemble_nb101_score_s": 60.0,
           "search_nar_tier_s": 120.0, "search_topk_s": 120.0, "nb201_warm_load_s": 0.5, "nb201_space_costs_s": 2.0,
           "nb101_enumerate_s": 300.0, "nb101_space_costs_s": 60.0,
           "peak_rss_gib": 4.0}


def timed_run(overrides: list[str], out: str) -> tuple[float, float]:
    """(fit seconds, seconds to score every cell) of one train.py config."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, *LIGHTNING_OVERRIDES, f"paths.output_dir={out}"])
    metrics, objs = train(cfg)
    start = time.perf_counter()
    scores = score_rows(objs["model"], objs["datamodule"])
    score_s = time.perf_counter() - start
    assert np.isfinite(scores).all() and len(scores) == len(objs["datamodule"].benchmark)
    return metrics["time/fit_s"], score_s


def timed_search(sampler: str, out: str) -> float:
    """Wall seconds of one search.py run at the headline budget."""
    from nasrank.search.runner import search

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[f"sampler={sampler}", "data=nb201_cifar100", "budget=150", "seed=0", f"paths.output_dir={out}"])
    start = time.perf_counter()
    search(cfg)
    return time.perf_counter() - start


def timed_tables(cache_dir: str) -> dict[str, float]:
    """Seconds to load the NB201 table from a warm cache, to enumerate NB101, and to cost every node
    of every cell of both spaces."""
    load_nb201_table(cache_dir=cache_dir)  # the cold load fills the cache
    start = time.perf_counter()
    load_nb201_table(cache_dir=cache_dir)
    result = {"nb201_warm_load_s": time.perf_counter() - start}
    start = time.perf_counter()
    spaces = {"nb101": list(nb101.SPACE.enumerate())}
    result["nb101_enumerate_s"] = time.perf_counter() - start
    spaces["nb201"] = list(nb201.SPACE.enumerate())
    for name, space in (("nb201", nb201.SPACE), ("nb101", nb101.SPACE)):
        graphs = dense_graphs(spaces[name], space)
        start = time.perf_counter()
        node_costs(name, graphs.ops, graphs.adj, "cifar10")
        arch_costs(name, graphs.ops, graphs.adj, "cifar10")
        result[f"{name}_space_costs_s"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    one_step = ["++trainer.max_steps=1", "callbacks.model_checkpoint=null"]  # ++: the default trainer has no max_steps key
    with tempfile.TemporaryDirectory(prefix="nasrank-speed-") as tmp:
        fit, score201 = timed_run(["experiment=nar_nb201"], f"{tmp}/a")
        _, score101 = timed_run(["experiment=nar_nb101", *one_step], f"{tmp}/b")
        _, renas101 = timed_run(["experiment=renas_nb101", "trainer.max_epochs=1", "callbacks.model_checkpoint=null"], f"{tmp}/c")
        nb101 = ["data=nb101_cifar10", "data.n_val=256", *one_step, "callbacks.early_stopping=null"]  # no val epoch, nothing to stop on
        _, nar_ens = timed_run(["experiment=best_nb101_small", *nb101], f"{tmp}/d")
        _, renas_ens = timed_run(["model=renas", *nb101, "data.n_train=4236", "ensemble=renas_dgin",
                                  *(f"+model@ensemble.members.dgin{i}=renas_dgin" for i in (2, 3))], f"{tmp}/e")
        searches = {f"search_{s}_s": timed_search(s, f"{tmp}/{s}") for s in ("nar_tier", "topk")}
        tables = timed_tables(f"{tmp}/cache")
    result = {"nar_nb201_fit_s": fit, "nar_nb201_score_s": score201, "nar_nb101_score_s": score101, "renas_nb101_score_s": renas101,
              "nar_ensemble_nb101_score_s": nar_ens, "renas_ensemble_nb101_score_s": renas_ens, **searches, **tables,
              "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "threads": args.threads,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_avg_1min": round(os.getloadavg()[0], 2),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    write_atomic(RESULTS / "speed.json", json.dumps(result, indent=1).encode())
    lines = ["## Speed (`python benchmarks/speed.py`)", "",
             f"{result['machine']}, {args.threads} torch threads, 1-min load average {result['load_avg_1min']} at the end; {result['date']}.", "",
             "| measurement | seconds / GiB | target | met |", "|---|---|---|---|"]
    names = {"nar_nb201_fit_s": "NAR fit, NB201 recipe (1,000 cells, 440 steps)", "nar_nb201_score_s": "NAR scores all 15,625 NB201 cells",
             "nar_nb101_score_s": "NAR scores all 423,624 NB101 cells", "renas_nb101_score_s": "ReNAS scores all 423,624 NB101 cells",
             "nar_ensemble_nb101_score_s": "`best_nb101_small` (NAR x3 + directed GIN) scores all 423,624 NB101 cells",
             "renas_ensemble_nb101_score_s": "ReNAS CNN + 3 directed GINs score all 423,624 NB101 cells",
             "search_nar_tier_s": "search.py sampler=nar_tier data=nb201_cifar100 budget=150",
             "search_topk_s": "search.py sampler=topk data=nb201_cifar100 budget=150",
             "nb201_warm_load_s": "NB201 table from a warm cache", "nb201_space_costs_s": "FLOPs/params of every node of all 15,625 NB201 cells",
             "nb101_enumerate_s": "enumerate all 423,624 NB101 cells",
             "nb101_space_costs_s": "FLOPs/params of every node of all 423,624 NB101 cells",
             "peak_rss_gib": "peak RSS of the whole run (GiB)"}
    lines += [f"| {names[k]} | {result[k]:.2f} | ≤ {t:g} | {'yes' if result[k] <= t else 'no'} |" for k, t in TARGETS.items()]
    write_atomic(RESULTS / "speed.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
