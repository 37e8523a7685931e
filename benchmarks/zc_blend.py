"""Does a trained ranker gain from the zero-cost rank sum as a fixed prior?  Blend weights, chosen on validation.

For each seed, one ranker is trained as `benchmarks/ranking.py` trains the row (same split, same config), and
its scores over the space are blended with the `zc_rank_sum` baseline's (scores of the untrained networks,
no labels): (1 - w) z(ranker) + w z(zc_rank_sum), z-scored over the space.  Each weight's validation and
test KTau is recorded; the report says which weight validation picks (per seed, and pooled over seeds) and
the test KTau it gets, never choosing on test.  Needs the zero-cost table (`python -m nasrank.data zerocost nb201`).

    OMP_NUM_THREADS=1 python benchmarks/zc_blend.py --dataset nb201_cifar10 --size 78 \\
        --method renas_flow --override data.batch_size=16 pretrain=cell_stats

Rows go to `benchmarks/results/zc_blend.jsonl`; the section `zc_blend.md` is rebuilt from all rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from nasrank.core import write_atomic
from nasrank.metrics import ranking_metrics
from nasrank.models.baselines import torch_threads
from command_line import recorded_command
from ranking import Row, baseline_scores_on, compose_cfg, default_n_val, lightning_scores
from variant_names import variant_name

OUT = Path(__file__).parent / "results"
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


def ktau(scores: np.ndarray, values: np.ndarray) -> float:
    return float(ranking_metrics(torch.from_numpy(scores.astype(np.float64)), torch.from_numpy(values.astype(np.float64)))["ktau"])


def blend_row(row: Row, argv: list[str]) -> dict:
    """Val and test KTau of every blend weight, for one seed's ranker."""
    with torch_threads(1), tempfile.TemporaryDirectory(prefix="nasrank-blend-") as tmp:
        scores, dm, _, _ = lightning_scores(compose_cfg(row, tmp))
        prior, _, _, _ = baseline_scores_on("zc_rank_sum", dm, row.seed, 1)
    val, test = dm.split.val, dm.split.test
    blends = {str(w): (1 - w) * zscore(scores) + w * zscore(prior) for w in WEIGHTS}
    return {"method": row.method, "overrides": list(row.overrides), "benchmark": row.benchmark, "n_train": row.n_train,
            "n_val": row.n_val, "seed": row.seed, "target": dm.fit_target, "date": time.strftime("%Y-%m-%d %H:%M"),
            "val_ktau_by_weight": {w: ktau(s[val], dm.fit_values[val]) for w, s in blends.items()},
            "test_ktau_by_weight": {w: ktau(s[test], dm.values[test]) for w, s in blends.items()},
            "command": recorded_command("benchmarks/zc_blend.py", argv)}


def markdown(rows: list[dict]) -> str:
    groups: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in rows:
        groups[(r["benchmark"], r["n_train"], variant_name(r["method"], r["overrides"]))][r["seed"]] = r
    lines = ["## Zero-cost rank sum as a fixed prior (`python benchmarks/zc_blend.py`)", "",
             "A trained ranker's scores blended with the label-free `zc_rank_sum`: (1 − w) z(ranker) + w z(zc_rank_sum). "
             "Mean test KTau per weight over seeds; *val picks* is the weight with the best mean validation KTau over "
             "the seeds, and *per seed* lets each seed's validation pick its own weight (its test KTau, mean over seeds).", "",
             "| benchmark | cells | ranker | seeds | " + " | ".join(f"w {w}" for w in WEIGHTS) + " | val picks | per seed |",
             "|---|---|---|---|" + "---|" * len(WEIGHTS) + "---|---|"]
    for (bench, n, name), seeds in sorted(groups.items()):
        runs = list(seeds.values())
        mean = lambda key, w: float(np.mean([r[key][w] for r in runs]))  # noqa: E731
        weights = [str(w) for w in WEIGHTS]
        pooled = max(weights, key=lambda w: mean("val_ktau_by_weight", w))
        own = float(np.mean([r["test_ktau_by_weight"][max(weights, key=lambda w: r["val_ktau_by_weight"][w])] for r in runs]))
        lines.append(f"| {bench} | {n} | {name} | {len(runs)} | " + " | ".join(f"{mean('test_ktau_by_weight', w):.3f}" for w in weights)
                     + f" | w {pooled}: {mean('test_ktau_by_weight', pooled):.3f} | {own:.3f} |")
    lines += ["", "Commands: " + "; ".join(sorted({f"`{r['command']}`" for r in rows})) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="an NB201 data config, e.g. nb201_cifar10")
    p.add_argument("--size", type=int, required=True, help="labelled cells (n_train)")
    p.add_argument("--method", required=True, help="a ranking.py method, e.g. renas_flow")
    p.add_argument("--override", nargs="*", default=[], help="its overrides, as in ranking.py")
    p.add_argument("--seeds", nargs="+", type=int, default=list(range(5)))
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    path = args.out / "zc_blend.jsonl"
    for seed in args.seeds:
        result = blend_row(Row(args.method, args.dataset, args.size, default_n_val(args.size), seed, tuple(args.override)), argv)
        with open(path, "a") as fh:
            fh.write(json.dumps(result, sort_keys=True) + "\n")
        print(json.dumps({k: result[k] for k in ("benchmark", "n_train", "seed", "test_ktau_by_weight")}), flush=True)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    write_atomic(args.out / "zc_blend.md", markdown(rows).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
