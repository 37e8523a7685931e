"""The zero-cost blend report: weights chosen on validation (pooled and per seed), test KTau only reported."""

from __future__ import annotations

import numpy as np
from conftest import load_script

blend = load_script("zc_blend")
WEIGHTS = [str(w) for w in blend.WEIGHTS]


def row(seed: int, val: dict[str, float], test: dict[str, float]) -> dict:
    return {"method": "renas_flow", "overrides": ["data.batch_size=16"], "benchmark": "nb201_cifar10", "n_train": 78,
            "seed": seed, "val_ktau_by_weight": {w: val.get(w, 0.0) for w in WEIGHTS},
            "test_ktau_by_weight": {w: test.get(w, 0.0) for w in WEIGHTS},
            "command": "python benchmarks/zc_blend.py"}


def test_validation_picks_the_weight_and_test_is_only_reported():
    rows = [row(0, {"0.1": 0.9, "0.5": 0.1}, {"0.1": 0.70, "0.5": 0.99}),   # test prefers 0.5: never picked
            row(1, {"0.1": 0.5, "0.3": 0.8}, {"0.1": 0.60, "0.3": 0.62})]   # its own pick is 0.3
    line = next(ln for ln in blend.markdown(rows).splitlines() if ln.startswith("| nb201_cifar10"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "2" and cells[4 + WEIGHTS.index("0.5")] == "0.495"  # (0.99 + 0) / 2
    assert cells[-2] == "w 0.1: 0.650"   # pooled val: 0.1 -> 0.7, 0.3 -> 0.4
    assert cells[-1] == "0.660"          # per seed: 0.70 (seed 0 at 0.1), 0.62 (seed 1 at 0.3)


def test_zscore_blend_is_scale_free():
    x = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(blend.zscore(100 * x + 7), blend.zscore(x))
