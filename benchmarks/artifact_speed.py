"""Speed of a saved ranker: a fresh process loads `ranker.pt` and scores a whole space.

For each model kind a ranker is trained for one step (scoring cost does not depend on the weights) and
saved by train.py; then a new interpreter with `--threads` torch threads runs
`Ranker.load(path).score_space()` and reports its wall time from start to finish (interpreter and
imports included), the load and scoring parts, and its peak RSS.  Targets (issue: a trained ranker is a
product): all 15,625 NB201 cells ≤ 2 s of scoring, all 423,624 NB101 cells ≤ 60 s including the load,
peak RSS ≤ 2 GiB.  Writes `benchmarks/results/artifact_speed.json` and `.md`.

    python benchmarks/artifact_speed.py              # on an otherwise idle machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from nasrank.artifact import FILENAME
from nasrank.core import write_atomic
from nasrank.cli import CONF_DIR
from nasrank.training import train
from ranking import LIGHTNING_OVERRIDES, RESULTS

KINDS = {"nar": ["model=nar"], "renas": ["model=renas"], "renas_dgin": ["model=renas_dgin"],
         "nar+renas_dgin": ["model=nar", "ensemble=renas_dgin"]}
DATA = {"nb201": ["data=nb201_cifar10", "data.n_train=100", "data.n_val=50"],
        "nb101": ["data=nb101_cifar10", "data.n_train=424", "data.n_val=256"]}
TARGET_S = {"nb201": 2.0, "nb101": 60.0}
TARGET_RSS_GIB = 2.0
ONE_STEP = ["++trainer.max_steps=1", "callbacks.model_checkpoint=null", "callbacks.early_stopping=null",
            "++ensemble.trainer.renas_dgin.max_steps=1"]
SCORER = """
import resource, sys, time
start = time.perf_counter()
import torch
torch.set_num_threads(int(sys.argv[2]))
from nasrank import Ranker
ranker = Ranker.load(sys.argv[1])
loaded = time.perf_counter()
archs, scores = ranker.score_space()
done = time.perf_counter()
assert len(scores) == len(archs) and bool((scores == scores).all())
print(len(archs), loaded - start, done - loaded, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def saved_ranker(kind: str, space: str, out: str) -> Path:
    """Train `kind` on `space` for one step with train.py's pipeline; the ranker.pt it leaves."""
    overrides = [*KINDS[kind], *DATA[space], *LIGHTNING_OVERRIDES, *ONE_STEP, f"paths.output_dir={out}"]
    if "ensemble=renas_dgin" not in overrides:
        overrides.remove("++ensemble.trainer.renas_dgin.max_steps=1")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        train(compose("train", overrides=overrides))
    return Path(out) / FILENAME


def score_fresh(path: Path, threads: int) -> dict:
    """Wall time of a fresh interpreter that loads `path` and scores the space, and its own report."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", SCORER, str(path), str(threads)], capture_output=True, text=True,
                          check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    wall = time.perf_counter() - start
    cells, load_s, score_s, rss_gib = proc.stdout.split()
    return dict(cells=int(cells), wall_s=wall, load_s=float(load_s), score_s=float(score_s), peak_rss_gib=float(rss_gib),
                artifact_mb=path.stat().st_size / 2**20)


def met(row: dict) -> str:
    """Whether a row meets its targets: NB201 scoring ≤ 2 s, NB101 load + scoring ≤ 60 s, peak RSS ≤ 2 GiB."""
    seconds = row["score_s"] if row["space"] == "nb201" else row["load_s"] + row["score_s"]
    return "yes" if seconds <= TARGET_S[row["space"]] and row["peak_rss_gib"] <= TARGET_RSS_GIB else "no"


def markdown(result: dict) -> str:
    lines = ["## Saved ranker speed (`python benchmarks/artifact_speed.py`)", "",
             f"A fresh process loads `ranker.pt` and scores every cell of the space; {result['machine']}, {result['threads']} torch "
             f"threads, 1-min load average {result['load_avg_1min']:.2f} at the end; {result['date']}.  Targets: NB201 scoring "
             f"≤ {TARGET_S['nb201']:.0f} s, NB101 load + scoring ≤ {TARGET_S['nb101']:.0f} s, peak RSS ≤ {TARGET_RSS_GIB:.0f} GiB; "
             "the total also counts starting Python and importing torch.", "",
             "| space | ranker | cells | total (s) | load (s) | score (s) | peak RSS (GiB) | artifact (MB) | met |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['space']} | {r['kind']} | {r['cells']:,} | {r['wall_s']:.1f} | {r['load_s']:.1f} | {r['score_s']:.1f} | "
              f"{r['peak_rss_gib']:.2f} | {r['artifact_mb']:.2f} | {met(r)} |" for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--spaces", nargs="+", default=list(DATA), choices=list(DATA))
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nasrank-artifact-") as tmp:
        for space in args.spaces:
            for kind in args.kinds:
                path = saved_ranker(kind, space, f"{tmp}/{space}_{kind}")
                rows.append(dict(space=space, kind=kind, threads=args.threads, **score_fresh(path, args.threads)))
                print(rows[-1], flush=True)
    result = {"threads": args.threads, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load_avg_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}
    out = RESULTS / "artifact_speed.json"
    write_atomic(out, json.dumps(result, indent=1).encode())
    write_atomic(out.with_suffix(".md"), markdown(result).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
