"""Ranking-quality benchmark: method × benchmark × n_train × seed → one JSON line each.

Every row trains one ranker on `n_train` labelled cells (plus `n_val` validation cells that Lightning
models use to keep their best epoch), scores the whole space, and reports test metrics over all
remaining cells.  Rows are appended to `benchmarks/results/ranking_<benchmark>.jsonl` (one file per
benchmark keeps each small enough to review as text), or all to `--out`; a rerun skips rows already there
(rows that failed are retried), so an interrupted grid resumes where it stopped.
`python benchmarks/make_report.py` turns the files into BENCHMARKS.md.

    python benchmarks/ranking.py --quick                       # NAR, GIN, baselines; ~6 min on 2 busy cores
    python benchmarks/ranking.py --grid baseline               # GIN regressor, NB201 CIFAR-10
    python benchmarks/ranking.py --grid nar --methods mlp_ensemble gbdt --datasets nb201_cifar10
    python benchmarks/ranking.py --methods nar gin+listnet --datasets nb201_cifar100 --sizes 156 --seeds 0 1

Methods: `mlp_ensemble`, `gbdt`, `zc_<feature>` / `zc_rank_sum` (table baselines, `nasrank.models.baselines`; the
zero-cost ones need `python -m nasrank.data zerocost nb201` once), `nar_recipe` /
`renas_recipe` (the paper's recipe: `experiment=<model>_<space>`), a recipe of `conf/experiment/` by its
name (e.g. `best_nb201`: `experiment=best_nb201`; the methods exactly as their public code: `nar_paper_nb201`),
the named Hydra methods in `METHODS`, `<model>+<loss>` (e.g. `gin+pairwise_logistic`: model=regressor
loss=pairwise_logistic), and any other name X as `model=X`.
A method whose config does not exist yields an error row, not a crash.
Each row runs in a forked child, so its peak RSS is its own and a crash cannot stop the grid;
`NASRANK_BENCH_RAISE=1` re-raises unexpected (non-user) errors with their traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

import lightning  # noqa: F401 - imported before its log levels are set (its import resets them)
import numpy as np
import torch

from nasrank.core import ConfigError, REPO_ROOT
from nasrank.cli import CONF_DIR, check_compose, check_group_overrides, user_error
from nasrank.metrics import ranking_metrics
from nasrank.models.baselines import BASELINES, torch_threads
from command_line import recorded_command
from parallel import run_forked

RESULTS = REPO_ROOT / "benchmarks" / "results"
NB201 = ["nb201_cifar10", "nb201_cifar100", "nb201_imagenet16"]
NB201_SIZES = [78, 156, 469, 781, 1563]  # 0.5 / 1 / 3 / 5 / 10 % of the 15,625 cells
#: Hydra methods that are not simply `model=<name>`.
METHODS: dict[str, list[str]] = {
    "gin": ["model=regressor"],
    "gin_regressor": ["model=regressor"],
    "mlp_regressor": ["model=regressor", "model/encoder=mlp"],
    "nar_gin": ["model=nar", "model/encoder=gin"],
    # NAR over the FlowerFormer-style encoder (conf/model/encoder/flow.yaml); model=renas_flow is it under ReNAS's loss
    "flow_nar": ["model=nar", "model/encoder=flow"],
    # NAR's transformer nets and as many GIN nets trained together (NARModule.extra_encoders)
    "nar_mixed": ["model=nar", "+model/encoder@model.extra_encoders.gin=gin"],
}
NAR_GRID_METHODS = ["nar_recipe", "nar", "nar_gin", "renas", "renas_gin", "gin_regressor", "mlp_regressor", "mlp_ensemble", "gbdt"]
#: Trainer settings every Lightning row shares: keep the best val/ktau epoch, write nothing into the repo.
LIGHTNING_OVERRIDES = ["logger=none", "callbacks=default", "~callbacks.progress_bar", "~callbacks.lr_monitor",
                       "++trainer.enable_progress_bar=false", "test=false"]


#: Data settings of a table baseline, which no model config derives: raw cells, graphs only (no NAR tokens).
TABLE_DATA = ["data.canonical_iso=false", "data.tensors=[]"]

#: Methods trained with their paper's recipe: the experiment config `<model>_<space>` sets trainer and loss
#: (e.g. NAR on NB201: a 440-step budget, no early stopping); the row still sets the data and its sizes.
#: The paper variants are rows of their recipe's own name (`nar_paper_nb201`), one name per result.
RECIPES = {"nar_recipe": "nar", "renas_recipe": "renas"}


def is_recipe(name: str) -> bool:
    return (CONF_DIR / "experiment" / f"{name}.yaml").is_file()


def method_overrides(method: str, benchmark: str = "") -> list[str] | None:
    """Hydra overrides of a Lightning method on a data config; None for a table baseline."""
    if method in BASELINES:
        return None
    if method in RECIPES:
        name = f"{RECIPES[method]}_{benchmark.split('_')[0]}"
        if not is_recipe(name):
            raise ConfigError(f"method {method} has no recipe for {benchmark!r}; looked for conf/experiment/{name}.yaml")
        return [f"experiment={name}"]
    if is_recipe(method):
        return [f"experiment={method}"]
    if method in METHODS:
        return list(METHODS[method])
    model, plus, loss = method.partition("+")
    if not model or (plus and not loss):
        raise ConfigError(f"bad method name {method!r}; allowed: a name, or <model>+<loss> like gin+pairwise_logistic")
    base = METHODS.get(model, [f"model={model}"])
    return base + ([f"loss={loss}"] if plus else [])


def default_n_val(n_train: int) -> int:
    """Validation cells beside the training set: small budgets get a small val split."""
    return 64 if n_train <= 200 else 256


def losses() -> list[str]:
    """Every loss config (new ones join the loss grid without editing this file)."""
    return sorted(p.stem for p in (CONF_DIR / "loss").glob("*.yaml"))


@dataclass(frozen=True)
class Row:
    """What identifies one result line (the resume key)."""

    method: str
    benchmark: str
    n_train: int
    n_val: int
    seed: int
    overrides: tuple[str, ...] = ()

    def key(self) -> str:
        return json.dumps([self.method, self.benchmark, self.n_train, self.n_val, self.seed, list(self.overrides)])


def grid(name: str) -> list[tuple[list[str], list[str], list[int], list[int]]]:
    """Blocks of (methods, datasets, sizes, seeds) of a preset."""
    five = list(range(5))
    presets = {
        "quick": [(["nar", "gin_regressor", "mlp_ensemble", "gbdt"], ["nb201_cifar10"], [156, 1563], [0])],
        "baseline": [(["gin_regressor"], ["nb201_cifar10"], [156, 1563], [0, 1, 2])],
        "nar": [([*NAR_GRID_METHODS, "nar_paper_nb201"], NB201, NB201_SIZES, five),
                ([*NAR_GRID_METHODS, "nar_paper_nb101"], ["nb101_cifar10"], [424, 4236], five)],
        "losses": [([f"{m}+{loss}" for m in ("gin", "nar", "renas") for loss in losses()], ["nb201_cifar100"], [156, 1563], [0, 1, 2])],
    }
    if name not in presets:
        raise ConfigError(f"unknown grid {name!r}; allowed: {', '.join(presets)}")
    return presets[name]


def select_rows(args: argparse.Namespace) -> list[Row]:
    """Rows of the preset filtered by --methods/--datasets/--sizes/--seeds, or the grid those options span."""
    if args.grid:
        blocks = grid(args.grid)
        for axis, name in enumerate(("methods", "datasets", "sizes", "seeds")):
            offered = list(dict.fromkeys(v for block in blocks for v in block[axis]))
            if missing := [v for v in getattr(args, name) or [] if v not in offered]:
                raise ConfigError(f"--{name} {' '.join(map(str, missing))} not in grid {args.grid!r}; allowed: {' '.join(map(str, offered))}")
        keep = lambda values, chosen: [v for v in values if chosen is None or v in chosen]  # noqa: E731
        blocks = [(keep(m, args.methods), keep(d, args.datasets), keep(n, args.sizes), keep(s, args.seeds)) for m, d, n, s in blocks]
    else:
        if not args.methods:
            raise ConfigError("give --grid {quick,baseline,nar,losses}, --quick, or --methods")
        blocks = [(args.methods, args.datasets or ["nb201_cifar10"], args.sizes or [156, 1563], args.seeds or [0])]
    rows = [Row(m, d, n, args.n_val if args.n_val is not None else default_n_val(n), s, tuple(args.override))
            for methods, datasets, sizes, seeds in blocks for d in datasets for n in sizes for m in methods for s in seeds]
    for row in rows:
        method_overrides(row.method, row.benchmark)  # bad names fail before anything runs
    if not rows:
        raise ConfigError("the options select no rows of this grid")
    return rows


def compose_cfg(row: Row, output_dir: str, accelerator: str = "cpu"):
    """The train config of this row (data, split sizes, seed, method overrides), writing under output_dir."""
    from hydra import compose, initialize_config_dir

    method = method_overrides(row.method, row.benchmark)
    lightning = LIGHTNING_OVERRIDES + [f"trainer.accelerator={accelerator}"]
    overrides = [f"data={row.benchmark}"] + (method + lightning if method is not None else TABLE_DATA)
    overrides += [f"data.n_train={row.n_train}", f"data.n_val={row.n_val}", f"seed={row.seed}",
                  f"paths.output_dir={output_dir}", *row.overrides]
    if msg := check_group_overrides(overrides) or check_compose("train", overrides):
        raise ConfigError(msg)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def lightning_scores(cfg) -> tuple[np.ndarray, object, float, dict]:
    """Fit through `nasrank.training.train`, reload the best val/ktau epoch, score every row."""
    from nasrank.training import load_best, score_rows, train

    metrics, objs = train(cfg)
    trainer = objs["trainer"]
    best = "" if cfg.get("ensemble") else load_best(trainer, objs["model"])  # an ensemble's members are already at their best
    start = time.perf_counter()
    scores = score_rows(objs["model"], objs["datamodule"])
    info = {"epochs": trainer.current_epoch, "best_epoch": int(Path(best).stem.split("_")[-1]) if best else None}
    return scores, objs["datamodule"], metrics["time/fit_s"], {"score_s": time.perf_counter() - start, **info}


def baseline_scores(method: str, cfg, threads: int) -> tuple[np.ndarray, object, float, dict]:
    """Fit a table baseline on the same split the Lightning methods get, score every row."""
    import hydra

    dm = hydra.utils.instantiate(cfg.data)
    return baseline_scores_on(method, dm, cfg.seed, threads)


def baseline_scores_on(method: str, dm, seed: int, threads: int) -> tuple[np.ndarray, object, float, dict]:
    """`baseline_scores` on a datamodule already built (its split is the one the baseline fits)."""
    extra = {"n_jobs": threads} if method == "gbdt" else {"threads": threads}
    model = BASELINES[method](dm.benchmark, dm.fit_target, seed=seed, graphs=dm.encoded_graphs, **extra)
    start = time.perf_counter()
    model.fit(dm.split.train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = model.score()
    return scores, dm, fit_s, {"score_s": time.perf_counter() - start}


def error_line(exc: BaseException) -> str:
    """One line naming the innermost cause (Hydra wraps the real error in an InstantiationException)."""
    root = user_error(exc) or exc
    while root.__cause__ is not None:
        root = root.__cause__
    lines = [ln.strip() for ln in str(root).splitlines() if ln.strip()]
    return f"{type(root).__name__}: {lines[0] if lines else ''}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_row(row: Row, threads: int = 1, accelerator: str = "cpu") -> dict:
    """One result line; any error becomes an `error` field instead of an exception.

    One thread by default: every model here is small, and on a shared machine extra threads cost far
    more than they give (GIN regressor, n = 1563, on 2 cores shared with other jobs: 16-45 s with 1 thread,
    726 s with 2).
    """
    for name in ("lightning.pytorch", "lightning.fabric"):  # one progress line per row, not Lightning's banners
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"lightning\.")  # torch 2.13's LeafSpec notice
    out = {**asdict(row), "overrides": list(row.overrides), "threads": threads, "accelerator": accelerator,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d %H:%M"),
           "load_avg": round(os.getloadavg()[0], 2),  # timings are only comparable at similar load
           "rss_start_mb": peak_rss_mb()}  # what the process held before the row (imported libraries)
    try:
        with torch_threads(threads), tempfile.TemporaryDirectory(prefix="nasrank-ranking-") as tmp:
            cfg = compose_cfg(row, tmp, accelerator)
            if method_overrides(row.method, row.benchmark) is None:
                scores, dm, fit_s, info = baseline_scores(row.method, cfg, threads)
            else:
                scores, dm, fit_s, info = lightning_scores(cfg)
    except Exception as exc:  # noqa: BLE001 - the row records what failed; the grid goes on
        if user_error(exc) is None and os.environ.get("NASRANK_BENCH_RAISE") == "1":
            raise
        return {**out, "error": error_line(exc)}
    values = dm.values
    test = ranking_metrics(torch.from_numpy(scores[dm.split.test]), torch.from_numpy(values[dm.split.test]))
    val_rows = dm.split.val
    val_ktau = ranking_metrics(torch.from_numpy(scores[val_rows]), torch.from_numpy(dm.fit_values[val_rows]))["ktau"] if len(val_rows) >= 2 else None
    out.update(target=str(cfg.data.target), fit_target=dm.fit_target, n_test=len(dm.split.test), test_ktau=test["ktau"], test_spearman=test["spearman"],
               **{f"test_{k}": test[k] for k in ("p@10", "n@10", "ndcg@10", "p@1pct", "regret")}, val_ktau=val_ktau,
               fit_s=fit_s, score_rows=len(scores), peak_rss_mb=peak_rss_mb(), transfer=transfer_ktau(dm, scores), **info)
    return out


def transfer_ktau(dm, scores: np.ndarray) -> dict[str, float]:
    """Test KTau of the same scores against the benchmark's other datasets' targets of the same kind
    (e.g. cifar100/test_acc for a cifar10/test_acc row): the cross-dataset transfer matrix's entries."""
    dataset, _, kind = dm.hparams.target.partition("/")
    test = dm.split.test
    return {key: ranking_metrics(torch.from_numpy(scores[test]), torch.from_numpy(dm.benchmark.target(key)[test]))["ktau"]
            for key in dm.benchmark.targets if key.endswith(f"/{kind}") and key != dm.hparams.target}


def read_rows(path: Path) -> Iterator[dict]:
    """Rows of a results file; a line cut off by an interrupted write is skipped."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            print(f"warning: skipping an unreadable line of {path}", file=sys.stderr)


def results_file(benchmark: str, out: Path | None) -> Path:
    """Where a row of `benchmark` is appended: `out` when given, else that benchmark's file in RESULTS."""
    return out if out is not None else RESULTS / f"ranking_{benchmark}.jsonl"


def done_keys(path: Path) -> set[str]:
    """Keys of rows that finished without error (failed rows are run again)."""
    return {Row(r["method"], r["benchmark"], r["n_train"], r["n_val"], r["seed"], tuple(r.get("overrides", []))).key()
            for r in read_rows(path) if "error" not in r}


def append(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(result, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def summary_line(result: dict) -> str:
    head = f"{result['method']} {result['benchmark']} n={result['n_train']} seed={result['seed']}"
    if "error" in result:
        return f"{head}: {result['error']}"
    return f"{head}: ktau {result['test_ktau']:.3f} (fit {result['fit_s']:.1f} s, score {result['score_s']:.1f} s, {result['peak_rss_mb']:.0f} MB)"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", choices=["quick", "baseline", "nar", "losses"], help="preset grid (the options below then filter it)")
    p.add_argument("--quick", action="store_true", help="same as --grid quick: nar, gin_regressor, mlp_ensemble, gbdt; 1 seed, n = 156/1563, NB201 CIFAR-10")
    p.add_argument("--methods", nargs="+")
    p.add_argument("--datasets", nargs="+", help="data config names, e.g. nb201_cifar100 nb101_cifar10")
    p.add_argument("--sizes", nargs="+", type=int, help="n_train values")
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument("--n-val", type=int, help="fixed validation size (default: 64 for n_train ≤ 200, else 256)")
    p.add_argument("--override", nargs="+", default=[], help="extra Hydra overrides for every row (part of the row key)")
    p.add_argument("--threads", type=int, default=1, help="torch/LightGBM threads per row (default 1, see run_row)")
    p.add_argument("--workers", type=int, default=1, help="rows run at once, each in its own process (machines with spare cores)")
    p.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu", help="Lightning accelerator (recorded in each row, not part of its key)")
    p.add_argument("--out", type=Path, help="one results file for every row (default: benchmarks/results/ranking_<benchmark>.jsonl)")
    p.add_argument("--list", action="store_true", help="print the pending rows and exit")
    p.add_argument("--in-process", action="store_true", help="run rows in this process (debugging; RSS then accumulates)")
    args = p.parse_args(argv)
    if args.threads < 1 or args.workers < 1:
        p.error(f"--threads and --workers must be at least 1, got {args.threads} and {args.workers}")
    if args.quick:
        args.grid = args.grid or "quick"
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    command = recorded_command("benchmarks/ranking.py", argv)
    try:
        rows = select_rows(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    files = sorted({results_file(r.benchmark, args.out) for r in rows})
    done = set().union(*map(done_keys, files))
    pending = [r for r in rows if r.key() not in done]
    where = ", ".join(str(f) for f in files) or str(args.out or RESULTS)
    print(f"{len(rows)} rows, {len(rows) - len(pending)} already in {where}, {len(pending)} to run", flush=True)
    if args.list:
        print("\n".join(map(str, pending)))
        return 0
    job = partial(run_row, threads=args.threads, accelerator=args.accelerator)
    died = lambda row, reason: {**asdict(row), "overrides": list(row.overrides), "error": reason}  # noqa: E731
    results = ((row, job(row)) for row in pending) if args.in_process else run_forked(job, pending, args.workers, died)
    for i, (row, result) in enumerate(results, 1):
        append(results_file(row.benchmark, args.out), {**result, "command": command})
        print(f"[{i}/{len(pending)}] {summary_line(result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
