"""Pretraining on the unlabeled space: the pretext targets of hand-checked cells, a cache entry that is never
loaded into another encoder, the weights a run starts from, and a ranker with a pretrained encoder as an artifact.
Tiny encoders and a few dozen cells keep every test fast; the models read the embedded AnalogNAS table."""

from __future__ import annotations

import functools
import shutil

import hydra
import numpy as np
import pytest
import torch
from conftest import compose_train

from nasrank import Ranker
from nasrank.benchmarks.analognas import load_analognas
from nasrank.core import ConfigError
from nasrank.encodings.archs import EncodingSpec
from nasrank.encodings.graph import dense_graphs
from nasrank.models.renas import ReNASCNNEncoder
from nasrank.pretrain import PretextSettings, fit, pretext_targets, pretrained_weights
from nasrank.pretrain.__main__ import pretrain_config
from nasrank.spaces import get_space
from nasrank.training import build_model, modes, ranker_of, train

NB201 = get_space("nb201")
TINY_FLOW = {"_target_": "nasrank.models.flow.FlowEncoder", "_partial_": True, "hidden": 8, "layers": 1, "heads": 2,
             "dropout": 0.0, "attn_dropout": 0.0}
NB201_INFO = {"in_dim": 9, "num_ops": 7, "max_nodes": 8, "num_tiers": 5, "space": "nb201"}
TINY_PRETEXT = PretextSettings(cells=48, epochs=1, batch_size=16)
RUN = ["data=analognas_cifar10", "model=renas_flow", "model.encoder.hidden=8", "model.encoder.layers=1", "model.encoder.heads=2",
       "data.n_train=32", "data.n_val=16", "logger=none", "callbacks=none"]
PRETRAIN = ["pretrain=cell_stats", "pretrain.cells=48", "pretrain.epochs=1", "pretrain.batch_size=16"]


@pytest.fixture(scope="module")
def analog():
    return load_analognas()


def datamodule_of(cfg, analog):
    """The run's datamodule over the table already loaded."""
    return hydra.utils.instantiate(cfg.data, _partial_=True)(benchmark=analog)


def targets(space: str, cells: list[str], names=("cost", "op_counts", "depth", "paths")) -> np.ndarray:
    sp = get_space(space)
    return pretext_targets(names, dense_graphs([sp.from_str(c) for c in cells], sp), sp, "cifar10")


def test_pretext_targets_of_known_cells() -> None:
    # columns: log MFLOPs, log M params | live skip, conv1x1, conv3x3, avgpool | longest, shortest path (ops) | log(1 + paths)
    y = targets("nb201", ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
                          "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",  # the conv feeds only `none`s
                          "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # the output is cut off
                          "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
                          "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    np.testing.assert_array_equal(y[:3, 2:], [[1, 0, 5, 0, 3, 1, np.log(5)],  # paths 0-3, 0-1-3, 0-2-3, 0-1-2-3
                                              [1, 0, 0, 0, 1, 1, np.log(2)],
                                              [0, 0, 0, 0, 0, 0, 0]])
    # NB201's reported extremes on CIFAR-10: 220.11 MFLOPs with six 3x3 convs, 7.78 with none (nasrank.encodings.cost)
    np.testing.assert_allclose(np.exp(y[3:, 0]), [220.11, 7.78], atol=0.01)
    assert y[1, 0] > y[2, 0] == y[4, 0]  # a dead conv still costs FLOPs (the network computes it); pooling costs none
    # NB101: input -> conv3x3 -> output plus input -> output: one live conv, paths of 1 and 0 ops
    nb101 = targets("nb101", ["input|conv3x3|output;011|001|000"], ("op_counts", "depth", "paths"))
    np.testing.assert_array_equal(nb101, [[0, 1, 0, 1, 0, np.log(3)]])
    with pytest.raises(ConfigError, match="unknown pretext target.*allowed: cost"):
        targets("nb201", ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"], ("flops",))
    with pytest.raises(ConfigError, match="pretrain.epochs=0"):
        PretextSettings(epochs=0)


def test_cache_never_loads_weights_into_another_encoder(tmp_path, one_thread) -> None:
    spec = EncodingSpec("nb201")
    first = pretrained_weights(TINY_FLOW, NB201_INFO, spec, TINY_PRETEXT, tmp_path)
    again = pretrained_weights(TINY_FLOW, NB201_INFO, spec, TINY_PRETEXT, tmp_path)  # a cache hit: the same file and weights
    assert again.path == first.path and all(torch.equal(first.state[k], again.state[k]) for k in first.state)
    # zero-cost inputs are appended after the encoder, so the same pretraining serves runs with them
    assert pretrained_weights(TINY_FLOW, NB201_INFO, EncodingSpec("nb201", zero_cost=True), TINY_PRETEXT, tmp_path).path == first.path
    wider = {**TINY_FLOW, "hidden": 16}
    other_path = pretrained_weights(wider, NB201_INFO, spec, PretextSettings(cells=48, epochs=2, batch_size=16), tmp_path).path
    assert other_path != first.path  # the key (encoder, pretext) names the file
    # an entry copied over another key's file is refused, not loaded
    shutil.copy(first.path, other_path)
    with pytest.raises(ConfigError, match="made for another encoder / pretext"):
        pretrained_weights(wider, NB201_INFO, spec, PretextSettings(cells=48, epochs=2, batch_size=16), tmp_path)


def test_run_starts_from_the_cached_weights(analog, tmp_path, one_thread) -> None:
    cfg = compose_train([*RUN, *PRETRAIN], tmp_path / "run")
    datamodule = datamodule_of(cfg, analog)
    torch.manual_seed(0)
    fresh = build_model(compose_train(RUN, tmp_path / "plain"), datamodule)
    torch.manual_seed(0)
    model = build_model(cfg, datamodule)
    cached = pretrained_weights(dict(cfg.model.encoder), datamodule.data_info(), datamodule.encoding,
                                PretextSettings(**cfg.pretrain), cfg.paths.cache_dir)
    loaded = model.encoder.state_dict()
    assert set(loaded) == set(cached.state)
    assert all(torch.equal(loaded[k], cached.state[k]) for k in loaded)
    assert not torch.equal(fresh.encoder.embed[0].weight, loaded["embed.0.weight"])  # the same seed without pretraining
    assert torch.equal(fresh.head.weight, model.head.weight)  # the head starts fresh


def test_ranker_with_a_pretrained_encoder_round_trips(analog, tmp_path, one_thread) -> None:
    cfg = compose_train([*RUN, *PRETRAIN], tmp_path / "run")
    datamodule = datamodule_of(cfg, analog)
    model = build_model(cfg, datamodule).eval()
    ranker = ranker_of(cfg, datamodule, model)
    loaded = Ranker.load(ranker.save(tmp_path / "ranker.pt"))
    archs = [datamodule.benchmark.archs[i].to_str() for i in range(0, 400, 7)]
    np.testing.assert_array_equal(loaded.score(archs), ranker.score(archs))
    assert torch.equal(loaded.members[0].module.encoder.embed[0].weight, model.encoder.embed[0].weight)
    assert loaded.meta["pretrain"] == {**PretextSettings(cells=48, epochs=1, batch_size=16).to_dict()}  # what the encoder started from


@pytest.mark.parametrize("model, error", [("nar", "pretrain needs a model with one encoder.*got NARModule"),
                                          ("renas", "pretrain cannot start the ReNAS CNN")])
def test_pretraining_refuses_an_encoder_it_cannot_start(analog, tmp_path, model: str, error: str) -> None:
    cfg = compose_train(["data=analognas_cifar10", f"model={model}", "data.n_train=32", "data.n_val=16", *PRETRAIN], tmp_path)
    with pytest.raises(ConfigError, match=error):
        build_model(cfg, datamodule_of(cfg, analog))


def test_pretrain_refuses_before_it_computes_any_target(monkeypatch) -> None:
    def no_targets(*args, **kwargs):
        raise AssertionError("pretext targets were computed for an encoder pretraining refuses")

    monkeypatch.setattr(fit, "pretext_cells", no_targets)
    cnn = functools.partial(ReNASCNNEncoder, channels=3, conv_channels=(4,), fc=(8,))
    with pytest.raises(ConfigError, match="pretrain cannot start the ReNAS CNN"):
        fit.pretrain(cnn, NB201_INFO, EncodingSpec("nb201"), TINY_PRETEXT)


@pytest.mark.parametrize("overrides, targets", [(["experiment=best_nb201_small_flow_zc"], ["cost", "op_counts", "depth", "paths", "zero_cost"]),
                                                (["experiment=best_nb201_small_flow"], ["cost", "op_counts", "depth", "paths"]),
                                                (["experiment=best_nb201_small_flow_zc", "pretrain=cell_stats"], ["cost", "op_counts", "depth", "paths"])])
def test_pretraining_ahead_keeps_the_recipes_own_option(overrides: list[str], targets: list[str]) -> None:
    assert list(pretrain_config(overrides).pretrain.targets) == targets
    with pytest.raises(ConfigError, match="~pretrain pretrains nothing"):
        pretrain_config([*overrides, "~pretrain"])


def test_twin_ensemble_starts_its_twin_from_the_same_pretrained_encoder(analog, tmp_path, one_thread, monkeypatch) -> None:
    cfg = compose_train([*RUN, *PRETRAIN, "ensemble=twin", "model.optimizer.lr=0.0003", "debug=fast"], tmp_path / "run")
    datamodule = datamodule_of(cfg, analog)
    cached = pretrained_weights(dict(cfg.model.encoder), datamodule.data_info(), datamodule.encoding,
                                PretextSettings(**cfg.pretrain), cfg.paths.cache_dir)
    twins = []

    def recording(member_cfg, view):  # ensemble_of builds each member with build_model
        twins.append(member_cfg.model.optimizer.lr)
        model = build_model(member_cfg, view)
        assert all(torch.equal(model.encoder.state_dict()[k], cached.state[k]) for k in cached.state), "starts pretrained"
        return model

    monkeypatch.setattr(modes, "build_model", recording)
    _, objs = train(cfg)
    assert list(objs["model"].members) == ["model", "twin"]
    assert twins == [0.0003], "one twin, the run's model config with its overrides"
