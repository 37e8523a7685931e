"""Report section: the zero-cost-inputs ablation.  Every ranker run both with and without
``data.zero_cost=true`` is compared on the seeds both ran; validation KTau says whether the inputs help."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from result_rows import latest
from variant_names import variant_name

FLAG = "data.zero_cost=true"


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def zerocost_section(rows: list[dict]) -> list[str]:
    """One line per (benchmark, size, ranker) that ran with the flag and without it on common seeds."""
    runs: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in latest(rows):
        overrides = r.get("overrides") or []
        plain = tuple(o for o in overrides if o != FLAG)
        runs[(r["benchmark"], r["target"], r["n_train"], r["method"], plain, FLAG in overrides)][r["seed"]] = r
    lines = []
    for (bench, target, n, method, plain, flagged), with_zc in sorted(runs.items()):
        without = runs.get((bench, target, n, method, plain, False), {})
        seeds = sorted(set(with_zc) & set(without)) if flagged else []
        if not seeds or any(with_zc[s].get("val_ktau") is None for s in seeds):
            continue
        a, b = [without[s] for s in seeds], [with_zc[s] for s in seeds]
        val_a, val_b, test_a, test_b = _mean(a, "val_ktau"), _mean(b, "val_ktau"), _mean(a, "test_ktau"), _mean(b, "test_ktau")
        lines.append(f"| {bench} | {n} | {variant_name(method, plain)} | {len(seeds)} | {val_a:.3f} → {val_b:.3f} | "
                     f"{test_a:.3f} → {test_b:.3f} | {'with' if val_b > val_a else 'without'} |")
    if not lines:
        return []
    return ["### Zero-cost inputs (ablation)", "",
            "Each ranker without and with `data.zero_cost=true` (the cell's zero-cost features of its untrained network, "
            "docs/methods.md, appended to the encoder's output), mean KTau over the seeds both ran; the last column is "
            "what validation KTau chooses (test KTau is shown, never used to choose).", "",
            "| benchmark | n | ranker | seeds | val KTau without → with | test KTau without → with | chosen on val |",
            "|---" * 7 + "|", *lines, ""]
