"""Pretrained encoder weights in the cache: computed once per (space, encoder, encoding, pretext) and
reused by every run that asks for the same.

The cache key holds everything the weights depend on: the resolved encoder config, the data-dependent
sizes the encoder is built with, the encoding (node costs and their dataset) and the pretext settings.
It names the cache file, so a different encoder finds no file and is pretrained anew, and it is stored
inside the file too, so an entry that does not match (copied or renamed by hand) is refused, never loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import hydra
import numpy as np
import torch

from nasrank.core import ConfigError, cache_path, cached_arrays
from nasrank.encodings.archs import EncodingSpec
from nasrank.models import encoders
from nasrank.pretrain.fit import PretextSettings, pretrain

#: Bump when pretraining changes what it computes for the same settings, so old entries are ignored.
PRETRAIN_VERSION = 1


@dataclass(frozen=True)
class Pretrained:
    """A cache entry: the encoder's weights, the pretraining's statistics (`pretrain`) and where it lives."""

    state: dict[str, torch.Tensor]
    stats: dict[str, np.ndarray]
    path: Path
    key: dict


def cache_key(encoder_cfg: Mapping, data_info: Mapping, spec: EncodingSpec, settings: PretextSettings) -> dict:
    """Everything the pretrained weights depend on, as plain JSON values."""
    factory = hydra.utils.instantiate(dict(encoder_cfg))
    return {"version": PRETRAIN_VERSION, "space": spec.space, "encoder": dict(encoder_cfg),
            "sizes": encoders.sizes(factory, dict(data_info)),
            "encoding": replace(spec, canonical_iso=False).to_dict(), "pretext": settings.to_dict()}


def _entry(arrays: dict[str, np.ndarray], key: dict, path: Path) -> Pretrained:
    """The entry's weights, after checking that it was made for exactly `key`."""
    stored = json.loads(bytes(arrays["key"]).decode()) if "key" in arrays else None
    if stored != key:
        differs = sorted(k for k in key if (stored or {}).get(k) != key[k])
        raise ConfigError(f"pretrained weights at {path} were made for another {' / '.join(differs) or 'setting'} than this run's; "
                          "delete that file and the weights are pretrained again for this config")
    state = {k.removeprefix("encoder."): torch.from_numpy(v) for k, v in arrays.items() if k.startswith("encoder.")}
    stats = {k.removeprefix("stats."): v for k, v in arrays.items() if k.startswith("stats.")}
    return Pretrained(state, stats, path, key)


def pretrained_weights(encoder_cfg: Mapping, data_info: Mapping, spec: EncodingSpec, settings: PretextSettings,
                       cache_dir: str | Path | None = None) -> Pretrained:
    """The pretrained encoder of this config from the cache, pretrained now (and cached) if absent.

    `encoder_cfg` is the resolved `model.encoder` config (a Hydra `_partial_` factory), `data_info` the
    datamodule's sizes and `spec` its encoding; `cache_dir=None` is `nasrank.core.default_cache_dir()`.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else None
    spec = replace(spec, zero_cost=False)  # zero-cost inputs join after the encoder: one pretraining serves both
    key = cache_key(encoder_cfg, data_info, spec, settings)
    extra = json.dumps(key, sort_keys=True)
    name = f"pretrained_{spec.space}"

    def build() -> dict[str, np.ndarray]:
        state, stats = pretrain(hydra.utils.instantiate(dict(encoder_cfg)), dict(data_info), spec, settings)
        return {**{f"encoder.{k}": v.numpy() for k, v in state.items()}, **{f"stats.{k}": v for k, v in stats.items()},
                "key": np.frombuffer(extra.encode(), dtype=np.uint8)}

    return _entry(cached_arrays(name, [], build, cache_dir, extra), key, cache_path(name, [], cache_dir, extra))
