"""BENCHMARKS.md's first table: the ranker is chosen on validation KTau only, over the seeds all candidates ran."""

from __future__ import annotations

from conftest import load_script

summary = load_script("report_summary")


def rows(method: str, vals: list[float], tests: list[float], bench: str = "analognas_cifar10",
         target: str = "cifar10/baseline_acc", overrides: tuple[str, ...] = ()) -> list[dict]:
    return [{"method": method, "overrides": list(overrides), "benchmark": bench, "target": target, "n_train": 78,
             "n_val": 64, "seed": seed, "val_ktau": v, "test_ktau": t, "fit_s": 10.0 + seed}
            for seed, (v, t) in enumerate(zip(vals, tests))]


def test_chosen_on_validation_not_test():
    table = [*rows("nar", [0.70, 0.72, 0.71], [0.60, 0.61, 0.62]),          # better on validation
             *rows("renas", [0.60, 0.62, 0.61], [0.80, 0.81, 0.82]),        # better on test: never chosen
             *rows("mlp_ensemble", [0.5, 0.5, 0.5], [0.50, 0.52, 0.54]), *rows("gbdt", [0.4] * 3, [0.40, 0.40, 0.40])]
    lines, _ = summary.summary_rows(table)
    assert lines == ["| AnalogNAS CIFAR-10 | 78 | `model=nar` | 0.610 ± 0.010 (3) | 0.520 ± 0.020 (3) | 0.400 ± 0.000 (3) | "
                     "+0.090 | 11 |"]


def test_only_variants_with_the_most_seeds_compete():
    table = [*rows("nar", [0.70, 0.72, 0.71, 0.60, 0.60], [0.6] * 5),
             *rows("renas", [0.69, 0.71, 0.70, 0.70, 0.70], [0.8] * 5),  # 0.700 over 5 seeds beats nar's 0.666
             *rows("gin_regressor", [0.99] * 3, [0.9] * 3)]              # a 3-seed probe: does not compete
    assert "`model=renas`" in summary.summary_rows(table)[0][0]
    # with no 5-seed variant beside it, the 3-seed ones compete on their common seeds: nar 0.710 > renas 0.700
    assert "`model=nar`" in summary.summary_rows([r for r in table if r["seed"] < 3 and r["method"] != "gin_regressor"])[0][0]


def test_a_recipe_wins_a_tie_on_validation():
    """A recipe whose epoch cap is past every best epoch scores exactly as the run it was cut from."""
    uncapped = ("data.batch_size=16",)
    capped = (*uncapped, "trainer.max_epochs=60")
    for first, second in ((uncapped, capped), (capped, uncapped)):
        table = [*rows("renas_flow", [0.7, 0.8, 0.9], [0.6] * 3, overrides=first),
                 *rows("renas_flow", [0.7, 0.8, 0.9], [0.6] * 3, overrides=second)]
        assert "`experiment=best_nb201_small_flow trainer.max_epochs=60`" not in summary.summary_rows(table)[0][0]
        assert "`experiment=best_nb201_small_flow`" in summary.summary_rows(table)[0][0]
    # and a recipe plus one override beats the same run spelled out with more
    deep = ("data.batch_size=16", "pretrain=cell_stats_zc", "model.optimizer.lr=0.0003", "model.encoder.layers=9")
    for first, second in ((deep, (*deep, "trainer.max_epochs=90")), ((*deep, "trainer.max_epochs=90"), deep)):
        table = [*rows("renas_flow", [0.7, 0.8, 0.9], [0.6] * 3, overrides=(*first, "pretrain.epochs=40")),
                 *rows("renas_flow", [0.7, 0.8, 0.9], [0.6] * 3, overrides=(*second, "pretrain.epochs=40"))]
        assert "`experiment=best_nb201_small_flow_deep pretrain.epochs=40`" in summary.summary_rows(table)[0][0]


def test_another_target_is_named():
    table = rows("nar", [0.7] * 3, [0.6] * 3, target="cifar10/analog_acc")
    assert summary.summary_rows(table)[0][0].startswith("| AnalogNAS CIFAR-10 (analog_acc) | 78 |")


def test_every_chosen_variant_gets_a_command_it_runs_as():
    recipe = [*rows("renas_flow", [0.8] * 3, [0.7] * 3, overrides=("data.batch_size=16", "pretrain=cell_stats", "model.optimizer.lr=0.1"))]
    assert "`experiment=best_nb201_small_flow_pretrained model.optimizer.lr=0.1`" in summary.summary_rows(recipe)[0][0]
    # no recipe holds it (batch 64 without the recipe's epoch cap): the model config plus the row's overrides
    plain = rows("renas_flow", [0.8] * 3, [0.7] * 3, overrides=("data.batch_size=64", "pretrain=cell_stats", "data.target=x/y"))
    assert "`model=renas_flow data.batch_size=64 pretrain=cell_stats`" in summary.summary_rows(plain)[0][0]
