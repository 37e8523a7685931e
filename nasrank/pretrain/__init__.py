"""Pretraining an encoder on the unlabeled cells of a space (`pretrain=` in train.py, `python -m nasrank.pretrain`)."""

from nasrank.pretrain.fit import PretextSettings, pretrain
from nasrank.pretrain.targets import TARGETS, pretext_targets
from nasrank.pretrain.weights import Pretrained, cache_key, pretrained_weights

__all__ = ["PretextSettings", "Pretrained", "TARGETS", "cache_key", "pretext_targets", "pretrain", "pretrained_weights"]
