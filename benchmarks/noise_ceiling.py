"""How well can any ranker do on NB201? Kendall tau between two independent trainings of the same cell.

NATS-Bench trained all 15,625 cells separately, so the members of one isomorphism class (the same network,
listed under several arch strings) are replicate measurements of it.  Drawing two members of every class that
has at least two gives two measurements of 1,350 networks; their Kendall tau is what one measurement
predicts of another, the label-noise limit of the test KTau a ranker can reach on those cells.  Under a
Gaussian model (Greiner: tau = 2/pi arcsin rho, and rho(a, b) = rho(truth, a)^2) a perfect ranker of the
expected accuracy would score the implied ceiling against one measurement.  The replicated classes are not
a random sample of the space (they hold cells with dead edges), so both figures describe that subset.

Writes `benchmarks/results/noise_ceiling.json` and the section `noise_ceiling.md` that make_report.py
includes.  Run: `python benchmarks/noise_ceiling.py` (seconds; needs the NB201 table).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Hashable, Sequence

import numpy as np
from scipy.stats import kendalltau

from nasrank.benchmarks.nb201_table import load_nb201_table
from nasrank.core import write_atomic

OUT = Path(__file__).parent / "results"
TARGETS = {"cifar10/test_acc": "CIFAR-10", "cifar100/test_acc": "CIFAR-100", "imagenet16/test_acc": "ImageNet16-120"}
DRAWS = 20


def replicate_classes(keys: Sequence[Hashable]) -> list[list[int]]:
    """Row indices of every isomorphism class with at least two rows."""
    rows: dict[Hashable, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        rows[key].append(i)
    return [members for members in rows.values() if len(members) >= 2]


def replicate_ktau(values: np.ndarray, classes: list[list[int]], draws: int, seed: int = 0) -> list[float]:
    """Kendall tau between two distinct members drawn per class, once per draw."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        pairs = np.array([rng.choice(members, 2, replace=False) for members in classes])
        out.append(float(kendalltau(values[pairs[:, 0]], values[pairs[:, 1]])[0]))
    return out


def implied_ceiling(tau: float) -> float:
    """KTau of the noise-free value against one measurement, when two measurements have `tau` (Gaussian model)."""
    rho = math.sin(math.pi * tau / 2)
    return 2 / math.pi * math.asin(math.sqrt(rho))


def markdown(result: dict) -> str:
    lines = ["## Label-noise ceiling on NB201 (`python benchmarks/noise_ceiling.py`)", "",
             f"NATS-Bench trained each of the 15,625 cells separately, so the {result['classes']:,} isomorphism classes with "
             "two or more members hold replicate measurements of one network.  Kendall tau between two members drawn per "
             f"class (mean ± std over {result['draws']} draws) is what one measurement predicts of another; the implied "
             "ceiling is what a perfect ranker of the expected accuracy would score against one measurement (Gaussian "
             "model).  These classes hold cells with dead edges, so the figures describe that subset, not the space.", "",
             "| dataset | classes | replicate KTau | implied ceiling |", "|---|---|---|---|"]
    for name, row in result["targets"].items():
        lines.append(f"| {name} | {result['classes']:,} | {row['mean']:.3f} ± {row['std']:.3f} | {row['ceiling']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    bench = load_nb201_table()
    classes = replicate_classes(bench.iso_keys())
    result: dict = {"classes": len(classes), "draws": DRAWS, "targets": {}}
    for key, name in TARGETS.items():
        taus = replicate_ktau(bench.target(key), classes, DRAWS)
        mean = float(np.mean(taus))
        result["targets"][name] = {"mean": mean, "std": float(np.std(taus)), "ceiling": implied_ceiling(mean)}
    write_atomic(OUT / "noise_ceiling.json", (json.dumps(result, indent=1) + "\n").encode())
    write_atomic(OUT / "noise_ceiling.md", markdown(result).encode())
    print(markdown(result))


if __name__ == "__main__":
    main()
