"""The report's zero-cost ablation: each ranker with and without the inputs, on the seeds both ran."""

from __future__ import annotations

from conftest import load_script


def test_ablation_pairs_common_seeds_and_chooses_on_validation():
    section = load_script("report_zerocost").zerocost_section
    base = dict(method="renas_flow", benchmark="nb201_cifar10", target="cifar10/test_acc", n_train=78, n_val=64)
    rows = [dict(base, seed=s, overrides=["data.batch_size=16"], val_ktau=0.70, test_ktau=0.70 + s / 100) for s in range(3)]
    rows += [dict(base, seed=s, overrides=["data.batch_size=16", "data.zero_cost=true"], val_ktau=0.65, test_ktau=0.80)
             for s in range(2)]
    line = section(rows)[-2]
    # seeds 0 and 1 only; test is better with the inputs, but validation (which decides) is not
    assert line == "| nb201_cifar10 | 78 | best_nb201_small_flow | 2 | 0.700 → 0.650 | 0.705 → 0.800 | without |"
    assert section(rows[:3]) == []  # nothing ran with the inputs: no section
