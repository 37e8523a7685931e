"""SPOS supernet: path sampling, weight inheritance, BN recalibration, training through train.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import compose_train
from scipy.stats import kendalltau

from nasrank.core import ConfigError
from nasrank.spaces.nb201 import EDGES, OPS, SPACE
from nasrank.supernet.cells import NB201Network
from nasrank.supernet.model import Supernet, SupernetModule, sample_arch
from nasrank.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

#: a tiny ground truth for the experiment config: 8 cells, 1 epoch each, 4 landmarks
TINY = ["experiment=landmark_nb201", "data.truth.num_archs=8", "data.truth.epochs=1", "data.truth.repeats=1",
        "data.n_train=128", "model.landmarks=4", "model.calib_batches=2", "logger=none"]


def test_spos_sampling_covers_every_op_on_every_edge():
    paths = np.array([sample_arch(0, step) for step in range(300)])
    assert paths.shape == (300, len(EDGES))
    for edge in range(len(EDGES)):
        counts = np.bincount(paths[:, edge], minlength=len(OPS))
        assert counts.min() > 30, f"edge {edge}: {counts}"  # 60 expected per op
    assert sample_arch(0, 17) == sample_arch(0, 17) and [sample_arch(1, s) for s in range(5)] != paths[:5].tolist()


def test_a_path_of_the_supernet_is_the_standalone_network_with_inherited_weights():
    torch.manual_seed(0)
    supernet = Supernet(num_classes=10, channels=4, cells_per_stage=2)
    arch = SPACE.from_str("|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    standalone = NB201Network.from_arch(arch, num_classes=10, channels=4, cells_per_stage=2)
    source = supernet.net.state_dict()
    inherited = {}
    for key in standalone.state_dict():
        m = re.match(r"cells\.(\d+)\.edges\.(\d+)\.(.*)", key)
        inherited[key] = source[f"cells.{m[1]}.edges.{m[2]}.ops.{arch.op_indices[int(m[2])]}.{m[3]}" if m else key]
    standalone.load_state_dict(inherited)
    supernet.set_arch(arch.op_indices)
    supernet.eval(), standalone.eval()
    x = torch.randn(3, 3, 8, 8)
    assert torch.allclose(supernet(x), standalone(x), atol=1e-6)
    with pytest.raises(ConfigError, match="6 op indices"):
        supernet.set_arch((0, 1, 2))


def test_bn_recalibration_replaces_running_stats_with_the_paths_own():
    torch.manual_seed(0)
    supernet = Supernet(num_classes=10, channels=4, cells_per_stage=1)
    batches = [(torch.randn(16, 3, 8, 8) * 2 + 1, torch.zeros(16, dtype=torch.long)) for _ in range(3)]
    edge = supernet.net.cells[0].edges[0]
    active, idle = edge.ops[OPS.index("nor_conv_3x3")][2], edge.ops[OPS.index("nor_conv_1x1")][2]
    idle.running_mean.fill_(5.0)  # stale statistics from training other paths
    conv3 = (OPS.index("nor_conv_3x3"),) * len(EDGES)
    stats = supernet.calibrate_bn(conv3, batches)
    assert active.running_mean.abs().sum() > 0 and idle.running_mean.abs().sum() == 0  # only the path's BNs gather
    # momentum None: the exact average over the calibration batches (stem BN: mean of the stem conv's outputs)
    with torch.no_grad():
        stem = torch.stack([supernet.net.stem[0](x).mean(dim=(0, 2, 3)) for x, _ in batches]).mean(0)
    assert torch.allclose(supernet.bns[0].running_mean, stem, atol=1e-5)
    assert all(bn.momentum == 0.1 for bn in supernet.bns) and supernet.training
    conv1 = (OPS.index("nor_conv_1x1"),) * len(EDGES)
    other = supernet.calibrate_bn(conv1, batches)
    assert not torch.equal(stats[-1][0], other[-1][0])  # the last BN sees a different path's features
    supernet.load_bn(stats)
    assert torch.equal(supernet.bns[-1].running_mean, stats[-1][0])


def data_info(n: int = 8) -> dict:
    archs = [SPACE.from_index(i * 1000) for i in range(n)]
    return dict(num_classes=10, truth_archs=[a.to_str() for a in archs], truth_values=list(np.linspace(90, 10, n)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(landmarks=7), "allowed: 2..6"),
    (dict(landmark_pairs="adjacent"), "allowed: random_pairwise, all"),
    (dict(calib_batches=0), "calib_batches ≥ 1"),
])
def test_bad_supernet_settings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SupernetModule(data_info(), optimizer=torch.optim.SGD, **kwargs)


def test_landmarks_span_the_truth_and_the_rest_is_held_out():
    module = SupernetModule(data_info(), optimizer=torch.optim.SGD, channels=4, cells_per_stage=1, landmarks=3)
    assert module.landmarks.tolist() == [0, 4, 7] and module.heldout.tolist() == [1, 2, 3, 5, 6]


def test_fast_dev_run_through_train_py(tmp_path):
    """After one step the supernet's ranking is noise (no floor exists), so the test checks what it
    ranks by: each held-out cell's test accuracy, recomputed here path by path on the one test batch
    fast_dev_run evaluates, after BN calibration on the datamodule's fixed calibration batches."""
    metrics, objects = train(compose_train([*TINY, "+trainer.fast_dev_run=true"], tmp_path))
    model, dm = objects["model"], objects["datamodule"]
    assert "train/loss" in metrics and model.supernet.net.classifier.out_features == 10
    idx, preds, target = model.test_predictions
    assert idx.tolist() == model.heldout.tolist() and np.array_equal(target, model.truth_values.numpy()[model.heldout])
    x, y = next(iter(dm.test_dataloader()))
    calibration = dm.calibration_batches(model.calib_batches)
    model.eval()
    with torch.no_grad():
        accuracies = []
        for k in model.heldout:
            model.supernet.load_bn(model.supernet.calibrate_bn(model.truth_archs[k], calibration))
            model.supernet.set_arch(model.truth_archs[k])
            accuracies.append(100.0 * (model.supernet(x).argmax(1) == y).double().mean().item())
    assert np.allclose(preds, accuracies, atol=1e-4), (preds, accuracies)
    expected = kendalltau(accuracies, target).statistic
    assert np.isnan(metrics["test/ktau"]) if np.isnan(expected) else metrics["test/ktau"] == pytest.approx(expected, abs=1e-6)


def test_landmark_term_trains_and_is_logged_only_when_on(tmp_path):
    common = [*TINY, "model.landmark_warmup_epochs=0", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
              "+trainer.limit_train_batches=2", "callbacks=none", "test=false"]
    on, objects = train(compose_train(common, tmp_path / "on"))
    assert {"train/landmark_loss", "train/landmark_pair_acc", "val/ktau", "val/landmark_ktau"} <= set(on)
    assert on["train/landmark_coef"] > 0 and len(objects["model"].epoch_times) == 2
    off, _ = train(compose_train([*common, "model.landmark_coef=0"], tmp_path / "off"))
    assert "train/landmark_loss" not in off and off["train/landmark_coef"] == 0.0
