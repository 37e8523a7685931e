"""benchmarks/search.py's summary: statistics read off the stored histories and target verdicts that
cover a strategy's variants (e.g. ``topk, renas_gin ranker``: ``model=renas_gin``) as well as its default."""

from __future__ import annotations

import pytest

from conftest import load_script

bench = load_script("search")


def run(strategy: str, seed: int, ranks: list[int], overrides: tuple[str, ...] = ()) -> dict:
    """A stored run: query i found a cell of rank ranks[i] (value 10 - rank; optimum 9 = rank 1)."""
    ranks = ranks + [ranks[-1]] * (300 - len(ranks))
    return {"strategy": strategy, "dataset": "nb201_cifar10", "seed": seed, "budget": 300, "overrides": list(overrides),
            "values": [10.0 - r for r in ranks], "ranks": ranks, "optimum": 9.0, "wall_s": 1.0}


def test_stats_and_verdicts_cover_variants() -> None:
    hit_late = [5] * 199 + [1]          # optimum at query 200
    hit_early = [5] * 39 + [1]          # optimum at query 40
    never = [3]
    rows = [run("random", s, never) for s in range(3)]
    rows += [run("topk", s, hit_late) for s in range(3)]
    rows += [run("topk", s, hit_early, ("model=renas_gin",)) for s in range(3)]
    text, curves = bench.dataset_section("nb201_cifar10", bench.latest(rows))
    assert set(curves) == {"random", "topk", "topk, renas_gin ranker"}
    assert "- topk: median queries to the optimum 200 (target ≤ 150: missed)" in text
    assert "- topk, renas_gin ranker: median queries to the optimum 40 (target ≤ 150: met)" in text
    # mean regret: random 2 throughout; topk 4 until query 200, then 0; the variant 0 from query 40;
    # evolution (added now) exactly as good as topk everywhere
    rows += [run("evolution", s, hit_late) for s in range(3)]
    text, _ = bench.dataset_section("nb201_cifar10", bench.latest(rows))
    assert "  - lower mean regret than evolution at budgets none of [50, 100, 150, 300]; equal at [50, 100, 150, 300]\n" in text
    # both at regret 0 by 300: the line says which reached the optimum first
    assert ("  - lower mean regret than evolution at budgets [50, 100, 150] of [50, 100, 150, 300]; equal at [300] "
            "(regret 0 for both; median queries to the optimum 40 vs 200)") in text
    lines = [ln for ln in text.splitlines() if "lower mean regret than random" in ln]
    assert lines == ["  - lower mean regret than random at budgets [300] of [50, 100, 150, 300]",
                     "  - lower mean regret than random at budgets [50, 100, 150, 300] of [50, 100, 150, 300]"], lines


@pytest.mark.parametrize("dataset", ["nb201_cifar100", "nb101_cifar10"])
def test_budgets_per_space(dataset: str) -> None:
    assert bench.budgets_of(dataset)[-1] == (300 if dataset.startswith("nb201") else 1000)


def test_results_file_appends_and_survives_a_cut_off_write(tmp_path, capsys) -> None:
    path = tmp_path / "search.jsonl.gz"
    rows = [run("random", s, [3]) for s in range(3)]
    for row in rows:
        bench.append_row(row, path)
    assert list(bench.read_rows(path)) == rows
    whole = path.read_bytes()
    path.write_bytes(whole[:-30])  # the last member cut short, as when a write is killed
    assert list(bench.read_rows(path)) == rows[:2]
    assert "cut-off write" in capsys.readouterr().err


def test_validation_targets_get_their_own_section_without_verdicts() -> None:
    """A ``data.target=`` override names the searched target (a section of its own); validation spaces
    (AnalogNAS, NAS-Bench-Graph) choose sampler settings, so the report checks no target on them."""
    rows = [{**run("topk", s, [5] * 39 + [1], ("data.target=cifar10/analog_acc", "model=renas_gin")), "dataset": "analognas_cifar10"}
            for s in range(3)]
    groups = bench.latest(rows)
    assert set(groups) == {("analognas_cifar10 (cifar10/analog_acc)", "topk", "model=renas_gin")}
    text, curves = bench.dataset_section("analognas_cifar10 (cifar10/analog_acc)", groups)
    assert set(curves) == {"topk, renas_gin ranker"}
    assert text.startswith("### analognas_cifar10 (cifar10/analog_acc) (validation: chooses sampler settings; no target)")
    assert "target ≤" not in text and "| topk, renas_gin ranker | 50 | 3 | 0.000 |" in text
    with pytest.raises(bench.ConfigError, match="no budgets for dataset 'cifar10_x'; allowed: nb201_\\*, nb101_\\*"):
        bench.budgets_of("cifar10_x")
