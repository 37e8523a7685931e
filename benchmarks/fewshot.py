"""Few-shot adaptation benchmark: a ranker trained on one dataset, fine-tuned with k cells of another.

Per seed: NAR is trained on the source dataset (n_train 1000, n_val 256, as `python train.py model=nar
data=nb201_cifar10`); then, for each target dataset and k, three rankers are scored on the same test
cells (every target cell except the k): the source model as is ("transfer"), the source model
fine-tuned on the k target cells (`init_from=`, a fixed recipe: `--steps` steps, no checkpoint
selection, since k cells leave nothing to validate on), and the same recipe from scratch on the k cells.
Rows (one per seed × target × k) go to `benchmarks/results/fewshot.jsonl`; a rerun skips seeds already
there; `benchmarks/results/fewshot.md` (included by make_report.py) is rewritten from the file.

    python benchmarks/fewshot.py                                   # cifar10 -> cifar100, imagenet16; seeds 0-4
    python benchmarks/fewshot.py --seeds 0 1 --workers 2 --ks 10 50
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np
import torch

from nasrank.core import write_atomic
from nasrank.metrics import ranking_metrics
from nasrank.models.baselines import torch_threads
from command_line import recorded_command
from parallel import run_forked
from ranking import RESULTS, Row, compose_cfg, read_rows

JSONL = RESULTS / "fewshot.jsonl"


def fit_and_score(row: Row, tmp: str, accelerator: str) -> tuple[np.ndarray, object, str]:
    """Train one row's config, reload its best checkpoint (if any), score every cell."""
    from nasrank.training import load_best, score_rows, train

    _, objs = train(compose_cfg(row, tmp, accelerator))
    best = load_best(objs["trainer"], objs["model"])
    return score_rows(objs["model"], objs["datamodule"]), objs["datamodule"], best


def run_seed(seed: int, source: str, targets: list[str], ks: list[int], steps: int, finetune_lr: float, accelerator: str) -> dict:
    """All rows of one seed (one source model, its transfers and adaptations)."""
    ktau = lambda scores, dm: ranking_metrics(torch.from_numpy(scores[dm.split.test]), torch.from_numpy(dm.values[dm.split.test]))["ktau"]  # noqa: E731
    recipe = (f"+trainer.max_steps={steps}", "trainer.max_epochs=-1", "callbacks.model_checkpoint=null", "callbacks.early_stopping=null")
    rows = []
    with torch_threads(1), tempfile.TemporaryDirectory(prefix="nasrank-fewshot-") as tmp:
        start = time.perf_counter()
        src_scores, _, ckpt = fit_and_score(Row("nar", f"nb201_{source}", 1000, 256, seed), f"{tmp}/source", accelerator)
        source_s = time.perf_counter() - start
        for target in targets:
            for k in ks:
                base = Row("nar", f"nb201_{target}", k, 0, seed, recipe)
                scratch, dm, _ = fit_and_score(base, f"{tmp}/{target}{k}s", accelerator)
                tuned, _, _ = fit_and_score(Row(**{**base.__dict__, "overrides": (*recipe, f"init_from={ckpt}", f"model.optimizer.lr={finetune_lr}")}), f"{tmp}/{target}{k}t", accelerator)
                rows.append({"seed": seed, "source": source, "target": target, "k": k, "steps": steps, "finetune_lr": finetune_lr, "n_test": len(dm.split.test),
                             "transfer_ktau": ktau(src_scores, dm), "finetune_ktau": ktau(tuned, dm), "scratch_ktau": ktau(scratch, dm)})
    meta = {"machine": f"{platform.machine()}, accelerator {accelerator}", "date": time.strftime("%Y-%m-%d %H:%M"), "source_fit_s": round(source_s, 1)}
    return {"seed": seed, "rows": [{**r, **meta} for r in rows]}


def report(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in {(r["seed"], r["source"], r["target"], r["k"]): r for r in rows}.values():
        groups[(r["source"], r["target"], r["k"])].append(r)
    stat = lambda v: f"{np.mean(v):.3f} ± {np.std(v):.3f}"  # noqa: E731
    lines = ["## Few-shot adaptation across NB201 datasets (`python benchmarks/fewshot.py`)", "",
             "NAR trained on the source dataset (n = 1000 + 256 val), then scored on the target dataset's test cells "
             "(all cells but the k): as is (transfer), fine-tuned on k target cells, and trained from scratch on the same "
             f"k cells with the same recipe ({rows[0]['steps']} steps, no checkpoint selection; fine-tuning at peak lr "
             f"{rows[0]['finetune_lr']:g}, scratch at NAR's default). Test KTau, mean ± std over seeds.", "",
             "| source → target | k | seeds | transfer (no adaptation) | fine-tuned on k | from scratch on k | fine-tune gain over transfer |",
             "|---|---|---|---|---|---|---|"]
    for (source, target, k), rs in sorted(groups.items()):
        col = lambda name: [r[f"{name}_ktau"] for r in rs]  # noqa: E731
        gain = np.subtract(col("finetune"), col("transfer"))
        lines.append(f"| {source} → {target} | {k} | {len(rs)} | {stat(col('transfer'))} | {stat(col('finetune'))} | "
                     f"{stat(col('scratch'))} | {gain.mean():+.3f} |")
    return "\n".join(lines + ["", f"Machine: {rows[-1]['machine']}; source fit {np.median([r['source_fit_s'] for r in rows]):.0f} s (median).", ""])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default="cifar10", choices=["cifar10", "cifar100", "imagenet16"])
    p.add_argument("--targets", nargs="+", default=["cifar100", "imagenet16"], choices=["cifar10", "cifar100", "imagenet16"])
    p.add_argument("--ks", nargs="+", type=int, default=[10, 20, 50])
    p.add_argument("--seeds", nargs="+", type=int, default=list(range(5)))
    p.add_argument("--steps", type=int, default=100, help="fine-tuning / scratch steps on the k cells")
    p.add_argument("--finetune-lr", type=float, default=2e-4, help="peak lr of fine-tuning (a tenth of NAR's: k cells must nudge, not overwrite)")
    p.add_argument("--workers", type=int, default=1, help="seeds run at once, each in its own process")
    p.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--out", type=Path, default=JSONL)
    args = p.parse_args(argv)
    if min(args.ks) < 2 or args.source in args.targets:
        p.error(f"each k must be ≥ 2 and the targets must differ from the source; got ks {args.ks}, source {args.source}, targets {args.targets}")
    done = {r["seed"] for r in read_rows(args.out) if r["source"] == args.source}
    todo = [s for s in args.seeds if s not in done]
    print(f"{len(todo)} seeds to run", flush=True)
    job = partial(run_seed, source=args.source, targets=args.targets, ks=args.ks, steps=args.steps, finetune_lr=args.finetune_lr, accelerator=args.accelerator)
    command = recorded_command("benchmarks/fewshot.py", argv)
    for seed, result in run_forked(job, todo, args.workers):
        if "error" in result:
            print(f"seed {seed}: {result['error']}", flush=True)
            continue
        with args.out.open("a") as fh:
            fh.writelines(json.dumps({**r, "command": command}) + "\n" for r in result["rows"])
        print(f"seed {seed}: " + ", ".join(f"{r['target']} k={r['k']} {r['transfer_ktau']:.3f}/{r['finetune_ktau']:.3f}/{r['scratch_ktau']:.3f}"
                                           for r in result["rows"]), flush=True)
    rows = list(read_rows(args.out))
    if rows:
        text = report(rows)
        write_atomic(args.out.with_suffix(".md"), text.encode())
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
