"""Starting a fit from a pretrained encoder (`pretrain=<option>`, conf/pretrain/): the model's encoder gets
the cached weights of `nasrank.pretrain` before fitting; its head and the optimiser start fresh."""

from __future__ import annotations

import logging

import lightning as L
from omegaconf import DictConfig, OmegaConf

from nasrank.core import ConfigError
from nasrank.models.encoders import WithZeroCost
from nasrank.pretrain import PretextSettings, Pretrained, pretrained_weights
from nasrank.training.checkpoints import check_state

log = logging.getLogger(__name__)


def load_pretrained(model: L.LightningModule, encoder_cfg: DictConfig, datamodule, pretrain_cfg: DictConfig,
                    cache_dir: str | None) -> Pretrained:
    """Load the pretrained weights of this encoder config, space and encoding into `model.encoder`
    (pretraining it first when the cache has no entry); returns the cache entry."""
    encoder = getattr(model, "encoder", None)
    encoder = encoder.inner if isinstance(encoder, WithZeroCost) else encoder  # zero-cost inputs are not pretrained
    if encoder is None or hasattr(encoder, "num_tokens"):
        raise ConfigError(f"pretrain needs a model with one encoder that returns a vector per cell, got {type(model).__name__}; "
                          "allowed: model=regressor or its presets (renas_flow, renas_gin, renas_dgin) with model/encoder=flow, gin, dgin or mlp")
    if getattr(encoder, "standardize", False):
        raise ConfigError("pretrain cannot start the ReNAS CNN: it standardises its input on the labelled split after the "
                          "weights are loaded; use model/encoder=flow, gin, dgin or mlp")
    settings = PretextSettings(**OmegaConf.to_container(pretrain_cfg, resolve=True))
    weights = pretrained_weights(OmegaConf.to_container(encoder_cfg, resolve=True), datamodule.data_info(),
                                 datamodule.encoding, settings, cache_dir)
    encoder.load_state_dict(check_state(weights.state, encoder, f"pretrained encoder weights at {weights.path}"))
    log.info("encoder starts from %s (pretrained in %.0f s CPU)", weights.path, float(weights.stats["cpu_s"][0]))
    return weights
