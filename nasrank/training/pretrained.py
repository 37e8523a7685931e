"""Starting a fit from a pretrained encoder (`pretrain=<option>`, conf/pretrain/): the model's encoder gets
the cached weights of `nasrank.pretrain` before fitting; its head and the optimiser start fresh."""

from __future__ import annotations

import logging

import lightning as L
from omegaconf import DictConfig, OmegaConf

from nasrank.models.encoders import WithZeroCost
from nasrank.pretrain import PretextSettings, Pretrained, pretrained_weights
from nasrank.pretrain.fit import check_pretrainable
from nasrank.training.checkpoints import check_state

log = logging.getLogger(__name__)


def load_pretrained(model: L.LightningModule, encoder_cfg: DictConfig, datamodule, pretrain_cfg: DictConfig,
                    cache_dir: str | None) -> Pretrained:
    """Load the pretrained weights of this encoder config, space and encoding into `model.encoder`
    (pretraining it first when the cache has no entry); returns the cache entry."""
    encoder = getattr(model, "encoder", None)
    encoder = encoder.inner if isinstance(encoder, WithZeroCost) else encoder  # zero-cost inputs are not pretrained
    check_pretrainable(encoder, type(model).__name__)
    settings = PretextSettings(**OmegaConf.to_container(pretrain_cfg, resolve=True))
    weights = pretrained_weights(OmegaConf.to_container(encoder_cfg, resolve=True), datamodule.data_info(),
                                 datamodule.encoding, settings, cache_dir)
    encoder.load_state_dict(check_state(weights.state, encoder, f"pretrained encoder weights at {weights.path}"))
    log.info("encoder starts from %s (pretrained in %.0f s CPU)", weights.path, float(weights.stats["cpu_s"][0]))
    return weights
