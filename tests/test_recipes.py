"""Named recipes (`conf/experiment/best_*.yaml`) are exactly the variants the benchmark rows measured:
the row's method plus overrides and the recipe by name resolve to the same model, data and trainer."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from conftest import load_script

from nasrank.core import REPO_ROOT

ranking = load_script("ranking")
variant_names = load_script("variant_names")

#: groups of the resolved train config that decide what a row measures
MEASURED = ("model", "data", "trainer", "ensemble", "self_training", "callbacks", "seed")
#: a benchmark and size the recommendation covers, per recipe space
WHERE = {"nb201": ("nb201_cifar100", 156, 64), "nb101": ("nb101_cifar10", 424, 256)}


def resolved(row, tmp_path) -> dict:
    cfg = OmegaConf.to_container(ranking.compose_cfg(row, str(tmp_path)), resolve=True)
    return {key: cfg.get(key) for key in MEASURED}


@pytest.mark.parametrize("recipe", sorted(variant_names.RECIPES))
def test_recipe_resolves_as_the_rows_it_names(recipe: str, tmp_path) -> None:
    method, overrides = variant_names.RECIPES[recipe]
    benchmark, n_train, n_val = WHERE[recipe.split("_")[1]]
    spelled = ranking.Row(method, benchmark, n_train, n_val, 3, overrides)
    named = ranking.Row(recipe, benchmark, n_train, n_val, 3)
    assert ranking.method_overrides(recipe) == [f"experiment={recipe}"]
    assert resolved(named, tmp_path) == resolved(spelled, tmp_path)
    assert variant_names.variant_name(method, overrides) == recipe  # the report names those rows after the recipe


def test_every_best_recipe_is_named_in_the_report() -> None:
    files = {p.stem for p in (REPO_ROOT / "conf" / "experiment").glob("best_*.yaml")}
    assert files == set(variant_names.RECIPES)


def test_variant_names_read_as_settings() -> None:
    assert variant_names.variant_name("nar", ["data.batch_size=32", "model.members=3", "ensemble=renas_gin"]) == "nar ×3 + renas_gin, batch 32"
    extra = ["ensemble=renas_dgin", "+model@ensemble.members.dgin2=renas_dgin", "+ensemble.trainer.dgin2.max_epochs=200"]
    assert variant_names.variant_name("renas", extra) == "renas + renas_dgin ×2"
    assert variant_names.variant_name("nar", ["data.target=cora/test_acc"]) == "nar"  # the target is the table's, not a variant
    assert variant_names.variant_name("topk", ["model=renas_gin", "sampler.min_distance=2"]) == "topk, renas_gin ranker, min distance 2"
    assert variant_names.variant_name("nar", ["model.dropout=0.3"]) == "nar, `model.dropout=0.3`"  # no phrase: the override itself
    assert variant_names.variant_name("renas_flow", ["pretrain=cell_stats"]) == "renas_flow, encoder pretrained on cell_stats"
    # the report's run hint: the recipe the variant adds to (the one it adds least to), and what it adds
    pretrained = ["data.batch_size=16", "pretrain=cell_stats", "pretrain.epochs=5"]
    assert variant_names.recipe_with_extras("renas_flow", pretrained) == ("best_nb201_small_flow_pretrained", ["pretrain.epochs=5"])
    assert variant_names.recipe_with_extras("renas_flow", ["pretrain=cell_stats"]) is None
    deeper = ["data.batch_size=16", "pretrain=cell_stats_zc", "model.optimizer.lr=0.0003", "model.encoder.layers=12"]
    assert variant_names.recipe_with_extras("renas_flow", deeper) == ("best_nb201_small_flow_zc", ["model.encoder.layers=12"])
    assert variant_names.variant_name("renas_flow", deeper).endswith(", 12 encoder layers")
    # a variant that changes a recipe's value adds that override to it, as the command line would
    slower = ["data.batch_size=16", "pretrain=cell_stats_zc", "model.optimizer.lr=0.0002", "model.encoder.layers=9",
              "trainer.max_epochs=90"]
    assert variant_names.recipe_with_extras("renas_flow", slower) == ("best_nb201_small_flow_deep", ["model.optimizer.lr=0.0002"])
    assert variant_names.recipe_with_extras("renas_flow", ["data.batch_size=16", "pretrain=cell_stats"]) == (
        "best_nb201_small_flow_pretrained", [])  # a group choice (pretrain=) is never read as a changed value
