"""Report names of benchmark variants: a method (or search strategy) plus its command-line overrides.

A variant that a recipe of `conf/experiment/` reproduces is named after the recipe
(`tests/test_recipes.py` checks that both resolve to the same config); any other variant is its method
name followed by a short phrase per override, so a table never shows a raw override string unless no
phrase is known for it.
"""

from __future__ import annotations

from collections import Counter

#: Recipe name -> (method, overrides) of the benchmark rows it reproduces.
RECIPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "best_nb201_small": ("nar", ("data.batch_size=16", "ensemble=renas_gin")),
    "best_nb201_small_flow": ("renas_flow", ("data.batch_size=16",)),
    "best_nb201_small_flow_pretrained": ("renas_flow", ("data.batch_size=16", "pretrain=cell_stats")),
    "best_nb201_small_flow_zc": ("renas_flow", ("data.batch_size=16", "pretrain=cell_stats_zc", "model.optimizer.lr=0.0003")),
    "best_nb201_small_flow_deep": ("renas_flow", ("data.batch_size=16", "pretrain=cell_stats_zc", "model.optimizer.lr=0.0003",
                                                  "model.encoder.layers=9", "trainer.max_epochs=90")),
    "best_nb201_flow_pretrained": ("renas_flow", ("data.batch_size=64", "pretrain=cell_stats", "trainer.max_epochs=60")),
    "best_nb201_flow_zc": ("renas_flow", ("data.batch_size=64", "pretrain=cell_stats_zc", "trainer.max_epochs=60",
                                           "+model/scheduler=cosine")),
    "best_nb201": ("nar", ("ensemble=renas_gin",)),
    "best_nb101_small": ("nar", ("data.batch_size=32", "model.members=3", "ensemble=renas_dgin")),
    "best_nb101_small_flow": ("renas_flow", ("data.batch_size=32",)),
    "best_nb101": ("nar", ("ensemble=renas_dgin",)),
    "best_nb101_large": ("renas_dgin", ("trainer.max_epochs=200",)),
}
_BY_VARIANT = {(method, frozenset(overrides)): name for name, (method, overrides) in RECIPES.items()}

#: Override prefix -> phrase (`{}` is the value).
PHRASES = {
    "data.batch_size=": "batch {}",
    "trainer.max_epochs=": "{} epochs",
    "self_training=pseudo_labels": "self-trained",
    "data.canonical_iso=true": "canonical cells",
    "+model.canonical_iso=true": "canonical cells",
    "model.encoder.layers=": "{} encoder layers",
    "+model/scheduler=": "{} learning-rate decay",
    "model=": "{} ranker",
    "sampler.min_distance=": "min distance {}",
    "sampler.k=": "k {}",
    "sampler.refit_every=": "refit every {}",
    "constraint.params_max=": "params ≤ {} M",
    "+model.encoder.standardize=false": "unstandardised CNN input",
    "pretrain=": "encoder pretrained on {}",
    "pretrain.": "pretrain {}",
    "data.zero_cost=true": "zero-cost inputs",
    "model.optimizer.lr=": "lr {}",
    "callbacks=ema": "weight EMA",
    "callbacks.ema.decay=": "EMA decay {}",
}
#: Overrides that name the benchmark's target or a member's trainer, not a different variant.
SILENT = ("data.target=", "+ensemble.trainer.")


def shown_overrides(overrides: list[str] | tuple[str, ...]) -> list[str]:
    """The overrides that make a variant (those naming the target or a member's trainer left out)."""
    return [o for o in overrides if not o.startswith(SILENT)]


def phrase(override: str) -> str:
    for prefix, text in PHRASES.items():
        if override.startswith(prefix):
            return text.format(override[len(prefix):])
    return f"`{override}`"


def recipe_with_extras(method: str, overrides: list[str] | tuple[str, ...]) -> tuple[str, list[str]] | None:
    """The recipe a variant adds overrides to, and those overrides (the recipe needing the fewest, then the one
    whose values it changes least), or None; an override of a config value (`model.optimizer.lr=...`, not a
    group) may change the recipe's value, as it does on the command line after `experiment=`.
    E.g. ("nar", ["data.batch_size=16", "ensemble=renas_gin", "model.dropout=0.3"]) -> ("best_nb201_small", ["model.dropout=0.3"])."""
    shown = shown_overrides(overrides)
    values = {_value_key(o) for o in shown} - {None}
    fits = []
    for name, (m, recipe) in RECIPES.items():
        changed = [o for o in recipe if o not in shown and _value_key(o) in values]
        extras = len([o for o in shown if o not in recipe])
        # a recipe whose values the variant changes is named only where that is still shorter than spelling the
        # variant out (each changed value counted twice: it contradicts the recipe)
        if m == method and set(recipe) - set(changed) <= set(shown) and (not changed or extras + len(changed) < len(shown)):
            fits.append((extras, len(changed), name))
    if not fits:
        return None
    name = min(fits)[2]
    return name, [o for o in shown if o not in RECIPES[name][1]]


def _value_key(override: str) -> str | None:
    """`model.optimizer.lr` for "model.optimizer.lr=3e-4"; None for a group choice or an addition (`pretrain=`, `+x=`)."""
    key = override.split("=", 1)[0]
    return key if "." in key and not key.startswith(("+", "~")) and "/" not in key and "@" not in key else None


def variant_name(method: str, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """E.g. ("nar", ["data.batch_size=32", "model.members=3", "ensemble=renas_gin"]) -> "nar ×3 + renas_gin, batch 32"."""
    shown = shown_overrides(overrides)
    if recipe := _BY_VARIANT.get((method, frozenset(shown))):
        return recipe
    members: Counter[str] = Counter()
    name, rest = method, []
    for o in shown:
        if o.startswith("model.members="):
            name += f" ×{o.split('=', 1)[1]}"
        elif o.startswith(("ensemble=", "+model@ensemble.members.")):
            members[o.split("=", 1)[1]] += 1
        else:
            rest.append(phrase(o))
    name += "".join(f" + {m}" + (f" ×{k}" if k > 1 else "") for m, k in members.items())
    return ", ".join([name, *rest])
