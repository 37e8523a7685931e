"""Pretraining cost: the one-off pretraining of a recipe's encoder on each benchmark's space (`pretrain=`),
its process CPU time and pretext loss -> `benchmarks/results/pretrain.jsonl` and the section
`benchmarks/results/pretrain.md` that `benchmarks/make_report.py` includes in BENCHMARKS.md.

    OMP_NUM_THREADS=1 python benchmarks/pretrain_cost.py --recipe best_nb201_small_flow --datasets nb201_cifar10 nb201_cifar100

The weights land in the cache the ranking rows read (`paths.cache_dir`), so `benchmarks/ranking.py ... --override
pretrain=cell_stats` only loads them.  An entry already cached is reported with the CPU time of the process that
built it (stored in the entry), so the cost is paid and measured once.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch
from hydra import compose, initialize_config_dir

from nasrank.cli import CONF_DIR
from nasrank.core import NasrankError, REPO_ROOT, write_atomic
from nasrank.pretrain.__main__ import prepare
from command_line import recorded_command

OUT = REPO_ROOT / "benchmarks" / "results"


def row(recipe: str, dataset: str, pretrain: str | None, overrides: list[str], argv: list[str]) -> dict:
    chosen = [f"pretrain={pretrain}"] if pretrain else []
    weights = prepare([f"experiment={recipe}", f"data={dataset}", *chosen, *overrides])
    pretrain = pretrain or recipe_pretrain(recipe)
    loss = weights.stats["loss"]
    return {"recipe": recipe, "benchmark": dataset, "pretrain": pretrain, "overrides": overrides,
            "cells": int(weights.stats["cells"][0]), "epochs": len(loss), "cpu_s": round(float(weights.stats["cpu_s"][0]), 1),
            "loss_first": round(float(loss[0]), 4), "loss_last": round(float(loss[-1]), 4), "threads": torch.get_num_threads(),
            "machine": f"{platform.machine()}, 2 cores", "date": time.strftime("%Y-%m-%d %H:%M"),
            "command": recorded_command("benchmarks/pretrain_cost.py", argv)}


def recipe_pretrain(recipe: str) -> str:
    """The `pretrain=` option the recipe chooses, or `cell_stats` (what `prepare` then pretrains)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        choices = compose("train", overrides=[f"experiment={recipe}"], return_hydra_config=True).hydra.runtime.choices
    return choices.get("pretrain") or "cell_stats"


def section(rows: list[dict]) -> str:
    """The latest row per (recipe, benchmark, pretrain, overrides) as a table."""
    latest = {(r["recipe"], r["benchmark"], r["pretrain"], tuple(r["overrides"])): r for r in rows}
    lines = ["## Pretraining cost (`python benchmarks/pretrain_cost.py`)", "",
             "One-off pretraining of a recipe's encoder on label-free cell statistics (`pretrain=`, docs/methods.md), "
             "cached and reused by every run of that encoder, space and encoding; not part of any row's fit time.  CPU "
             "time is the pretraining process's (`time.process_time`, one thread), measured on a shared, busy machine.", "",
             "| benchmark | recipe | pretrain | cells | epochs | CPU s | pretext loss, first → last epoch |", "|---|---|---|---|---|---|---|"]
    for (recipe, bench, pretrain, overrides), r in sorted(latest.items()):
        extra = f" `{' '.join(overrides)}`" if overrides else ""
        lines.append(f"| {bench} | `{recipe}` | `{pretrain}`{extra} | {r['cells']:,} | {r['epochs']} | {r['cpu_s']:.0f} | "
                     f"{r['loss_first']:.3f} → {r['loss_last']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", required=True, help="a recipe of conf/experiment/, e.g. best_nb201_small_flow")
    p.add_argument("--datasets", nargs="+", required=True, help="data configs, e.g. nb201_cifar10")
    p.add_argument("--pretrain", help="option of conf/pretrain/ (default: the recipe's own, else cell_stats)")
    p.add_argument("--override", nargs="*", default=[], help="more train.py overrides (e.g. pretrain.epochs=5)")
    args = p.parse_args(argv)
    path = OUT / "pretrain.jsonl"
    for dataset in args.datasets:
        try:
            result = row(args.recipe, dataset, args.pretrain, args.override, argv)
        except NasrankError as err:
            print(f"error: {dataset}: {err}", file=sys.stderr)
            return 2
        with open(path, "a") as fh:
            fh.write(json.dumps(result, sort_keys=True) + "\n")
        print(json.dumps(result))
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    write_atomic(OUT / "pretrain.md", section(rows).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
