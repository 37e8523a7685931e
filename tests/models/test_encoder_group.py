"""The `model/encoder` config group: every model swaps encoders by name, and the encodings the data
builds (`model.tensors`) follow the encoder, so nothing unread is built and nothing read is missing."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_train
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nasrank.cli import check_group_overrides, user_error
from nasrank.core import ConfigError
from nasrank.models.renas import ReNASCNNEncoder
from nasrank.training import train

#: encoder option -> (class name, encodings it reads)
ENCODERS = {"transformer": ("TokenTransformer", ["nar"]), "transformer_paper": ("TokenTransformer", ["nar"]),
            "gin": ("GINEncoder", []), "dgin": ("GINEncoder", []), "mlp": ("FlatMLPEncoder", []),
            "renas_cnn": ("ReNASCNNEncoder", ["renas"]), "flow": ("FlowEncoder", [])}


def resolved(cfg, key: str) -> dict:
    return OmegaConf.to_container(cfg[key], resolve=True)


@pytest.mark.parametrize("model, encoder", [("nar", e) for e in ("transformer", "transformer_paper", "gin", "dgin", "mlp", "flow")]
                         + [(m, e) for m in ("renas", "regressor") for e in ("gin", "dgin", "mlp", "renas_cnn", "flow")])
def test_tensors_follow_the_encoder(model: str, encoder: str, tmp_path) -> None:
    cfg = compose_train(["debug=fast", f"model={model}", f"model/encoder={encoder}"], tmp_path)
    name, reads = ENCODERS[encoder]
    assert cfg.model.encoder._target_.endswith(name)
    assert list(cfg.model.tensors) == reads and list(cfg.data.tensors) == reads


def test_named_variants_are_the_group_choices(tmp_path) -> None:
    def model_cfg(*overrides: str) -> dict:
        return resolved(compose_train(["debug=fast", *overrides], tmp_path), "model")

    assert model_cfg("model=renas", "model/encoder=gin") == model_cfg("model=renas_gin")
    assert model_cfg("model=renas", "model/encoder=dgin") == model_cfg("model=renas_dgin")
    assert model_cfg("model=renas", "model/encoder=flow") == model_cfg("model=renas_flow")
    paper = model_cfg("model=nar_paper")
    assert paper["encoder"]["hidden"] == 256 and paper["encoder"]["layers"] == 6 and paper["rank_weight"] == 9.0
    # the paper's transformer settings go with its encoder, so the paper's NAR over a GIN composes cleanly
    paper_gin = model_cfg("model=nar_paper", "model/encoder=gin")
    assert paper_gin["encoder"] == model_cfg("model=regressor")["encoder"] and paper_gin["tensors"] == []
    assert {k: v for k, v in paper_gin.items() if k not in ("encoder", "tensors")} == \
        {k: v for k, v in paper.items() if k not in ("encoder", "tensors")}


def test_ensemble_members_keep_their_own_encoder(tmp_path) -> None:
    cfg = compose_train(["debug=fast", "model=nar", "model/encoder=gin", "ensemble=renas_dgin"], tmp_path)
    member = resolved(cfg, "ensemble")["members"]["renas_dgin"]
    assert member["encoder"]["directed"] is True and member["encoder"]["layers"] == 5
    assert cfg.model.encoder.directed is False


def test_unknown_encoder_option_is_one_line() -> None:
    assert check_group_overrides(["model/encoder=gat"]) == \
        "unknown model/encoder option 'gat'; allowed: dgin, flow, gin, mlp, patch_paper, renas_cnn, transformer, transformer_paper"
    # the sub-group's options are not model options
    assert check_group_overrides(["model=encoder/gin"]) == ("unknown model option 'encoder/gin'; allowed: nar, nar_paper, "
                                                          "nar_paper_nb201, regressor, renas, renas_dgin, renas_flow, renas_gin, supernet")


@pytest.mark.parametrize("overrides, expected", [
    (["model=regressor", "model/encoder=transformer"], "TokenTransformer returns one embedding per node, which only NAR reads"),
    (["model=nar", "model.tensors=[]"], "model.tensors must include 'nar'"),
])
def test_incompatible_encoders_are_one_line_config_errors(overrides, expected, tmp_path) -> None:
    cfg = compose_train(["debug=fast", "data=analognas_cifar10", *overrides], tmp_path)
    dm = instantiate(cfg.data)
    with pytest.raises(Exception) as info:
        instantiate(cfg.model, data_info=dm.data_info())
    err = user_error(info.value)
    assert isinstance(err, ConfigError) and expected in str(err) and "\n" not in str(err), err


def test_regressor_over_the_renas_cnn_fits_its_standardisation(tmp_path) -> None:
    """The CNN's input standardisation belongs to the regressor body, so a plain regressor over the
    CNN (`model=regressor model/encoder=renas_cnn`) is fitted as ReNAS's is, not left at the identity."""
    cfg = compose_train(["debug=fast", "model=regressor", "model/encoder=renas_cnn", "data=analognas_cifar10"], tmp_path)
    metrics, objs = train(cfg)
    enc = objs["model"].encoder
    assert isinstance(enc, ReNASCNNEncoder) and not torch.equal(enc.in_std, torch.ones_like(enc.in_std))
    assert metrics["test/ktau"] > 0.3, metrics["test/ktau"]  # seed 0: 0.49; untrained: -0.14
