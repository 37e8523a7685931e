"""ReNAS search on NAS-Bench-101: train on 424 random cells, score all 423,624, keep the predicted top 10.

The ReNAS paper's search experiment (Xu et al., CVPR 2021, Table 2): the best true accuracy among the
10 cells the predictor ranks highest, over repeated runs.  Each seed runs the paper recipe exactly as
`python train.py experiment=renas_nb101 seed=<seed>` (its 424 labelled cells are 382 train + 42
validation, the validation split picking the checkpoint), then scores the whole space with
`trainer.predict` (timed) and appends one JSON line to `benchmarks/results/renas_topk.jsonl`.
Seeds already in that file are skipped, so an interrupted run resumes; `--minutes` stops starting new
seeds once the next one would exceed the time budget.  The summary section
`benchmarks/results/renas_topk.md` is rewritten from every line in the file.

    python benchmarks/renas_topk.py [--seeds 0 1 2 ...] [--minutes 15]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning  # noqa: F401 - imported before its log levels are set (its import resets them)
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from scipy.stats import kendalltau

import nasrank.cli  # noqa: F401 - registers the repo_root resolver used by conf/paths
from nasrank.core import REPO_ROOT, write_atomic
from nasrank.training import train

RESULTS = REPO_ROOT / "benchmarks" / "results"
JSONL, SECTION = RESULTS / "renas_topk.jsonl", RESULTS / "renas_topk.md"
TOP_K = 10
PAPER = "93.95 ± 0.11"
#: the experiment config, minus what a benchmark must not do (log, draw progress bars, test twice)
OVERRIDES = ["experiment=renas_nb101", "logger=none", "~callbacks.progress_bar", "~callbacks.lr_monitor",
             "++trainer.enable_progress_bar=false", "test=false"]


def run_seed(seed: int, output_dir: str) -> dict:
    """Fit one seed of the paper recipe, score every NB101 cell with its best checkpoint, summarise."""
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*OVERRIDES, f"seed={seed}", f"paths.output_dir={output_dir}"])
    metrics, objs = train(cfg)
    dm, trainer = objs["datamodule"], objs["trainer"]
    everything = dm.rows_loader(np.arange(len(dm.benchmark)))
    start, cpu = time.perf_counter(), time.process_time()
    parts = trainer.predict(objs["model"], dataloaders=everything, ckpt_path="best")
    predict_s, predict_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    idx = torch.cat([p[0] for p in parts]).numpy()
    scores = np.empty(len(dm.benchmark))
    scores[idx] = torch.cat([p[1] for p in parts]).double().numpy()
    true = dm.values
    top = np.argsort(-scores, kind="stable")[:TOP_K]
    true_rank = 1 + np.argsort(np.argsort(-true, kind="stable"), kind="stable")
    test = dm.split.test
    return {
        "seed": seed, "n_train": len(dm.split.train), "n_val": len(dm.split.val), "n_scored": len(scores),
        "top10_best_acc": float(true[top].max()), "top10_best_true_rank": int(true_rank[top].min()),
        "top10_in_train": int(np.isin(top, dm.split.train).sum()),
        "test_ktau": float(kendalltau(scores[test], true[test]).statistic), "val_ktau": metrics.get("val/ktau"),
        "fit_s": round(metrics["time/fit_s"], 1), "predict_s": round(predict_s, 1),
        "predict_cpu_s": round(predict_cpu_s, 1), "load_avg": round(os.getloadavg()[0], 1), "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def done_seeds() -> set[int]:
    if not JSONL.is_file():
        return set()
    return {json.loads(line)["seed"] for line in JSONL.read_text().splitlines() if line.strip()}


def write_section() -> None:
    """The markdown section (mean ± std over every seed in the JSON lines)."""
    rows = [json.loads(line) for line in JSONL.read_text().splitlines() if line.strip()]
    acc, ktau = np.array([r["top10_best_acc"] for r in rows]), np.array([r["test_ktau"] for r in rows])
    wall = np.array([r["predict_s"] for r in rows])
    cpu = np.array([r["predict_cpu_s"] for r in rows if "predict_cpu_s" in r])
    cpu_text = f"{cpu.mean():.0f} CPU-s over {len(cpu)} seeds" if len(cpu) else "not recorded"
    best_table = 94.6615  # best single-run test accuracy in the shared NB101 table
    text = f"""## ReNAS top-10 search on NAS-Bench-101 (`python benchmarks/renas_topk.py`)

Paper recipe (`experiment=renas_nb101`): 424 random labelled cells (382 train + 42 validation for
checkpoint selection), CNN on the 19x7x7 tensor, pairwise logistic loss, Adam 1e-3, batch 1,024,
200 epochs; then all 423,624 cells scored and the best true accuracy among the predicted top {TOP_K} kept.

| seeds | best accuracy in predicted top {TOP_K} (%) | test Kendall tau | scoring 423,624 cells, wall (s) |
|---|---|---|---|
| {len(rows)} ({", ".join(str(r["seed"]) for r in sorted(rows, key=lambda r: r["seed"]))}) | {acc.mean():.2f} ± {acc.std():.2f} | {ktau.mean():.3f} ± {ktau.std():.3f} | {wall.mean():.0f} |

Per seed: {", ".join(f"{r['top10_best_acc']:.2f} (true rank {r['top10_best_true_rank']})" for r in sorted(rows, key=lambda r: r["seed"]))}.
Scoring time is `trainer.predict` over the whole space (collate + CNN forward) on {rows[0]["machine"]};
wall time depends on what else runs on the machine (load average in the JSON lines), CPU time does not:
{cpu_text} (two threads, so about half that in wall time on an otherwise idle 2-core machine).

Caveat: our NB101 table holds one training run's CIFAR-10 test accuracy per cell (best {best_table}), so these
numbers are not directly comparable with the paper's {PAPER} %, which comes from its own protocol (its labels
and reported accuracies from the NAS-Bench-101 API, not from this table).
"""
    write_atomic(SECTION, text.encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--minutes", type=float, default=15.0, help="stop starting new seeds past this budget")
    args = parser.parse_args(argv)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning\.")
    start, durations = time.perf_counter(), []
    todo = [s for s in args.seeds if s not in done_seeds()]
    for seed in todo:
        elapsed = time.perf_counter() - start
        if durations and elapsed + max(durations) > 60 * args.minutes:
            print(f"stopping: the next seed would pass {args.minutes} min; rerun to resume", file=sys.stderr)
            break
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            row = run_seed(seed, out)
        durations.append(time.perf_counter() - t0)
        RESULTS.mkdir(parents=True, exist_ok=True)
        with JSONL.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"seed {seed}: top-{TOP_K} best {row['top10_best_acc']:.2f} %, test KTau {row['test_ktau']:.3f}, "
              f"predict {row['predict_s']} s, {durations[-1]:.0f} s total", flush=True)
    if JSONL.is_file():
        write_section()


if __name__ == "__main__":
    main()
