"""SPOS supernet: path sampling, weight inheritance, BN recalibration or none, landmark batches, training through train.py."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import compose_train
from scipy.stats import kendalltau

from nasrank.core import ConfigError
from nasrank.spaces.nb201 import EDGES, OPS, SPACE
from nasrank.supernet.cells import NB201Network
from nasrank.supernet.images import ImageDataModule
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
    (dict(landmark_pairs="adjacent"), "allowed: random_pairwise, randint, all"),
    (dict(calib_batches=0), "calib_batches ≥ 1"),
    (dict(landmark_batch="valid"), "allowed: train, heldout"),
    (dict(landmark_schedule="cosine"), "allowed: cosine_step, cosine_increase"),
    (dict(scheduler_interval="batch"), "allowed: step, epoch"),
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


def test_paper_bn_has_no_running_statistics_and_normalises_each_batch_by_itself():
    module = SupernetModule(data_info(), optimizer=torch.optim.SGD, channels=4, cells_per_stage=1, landmarks=4, bn_running_stats=False)
    bns = module.supernet.bns
    assert bns and all(not bn.track_running_stats and bn.running_mean is None and bn.running_var is None for bn in bns)
    assert all(bn.affine and bn.weight is not None for bn in bns)  # official: affine=True
    assert not any("running" in k or "num_batches" in k for k in module.state_dict())
    torch.manual_seed(0)
    x = torch.randn(6, 3, 8, 8)
    module.eval()
    with torch.no_grad():  # in evaluation too, an image's output depends on the batch it is in
        assert not torch.allclose(module(x)[:3], module(x[:3]), atol=1e-4)
    ours = SupernetModule(data_info(), optimizer=torch.optim.SGD, channels=4, cells_per_stage=1, landmarks=4).eval()
    with torch.no_grad():
        assert torch.allclose(ours(x)[:3], ours(x[:3]), atol=1e-5)


def test_landmark_term_sees_the_heldout_batch_not_the_training_batch(monkeypatch):
    module = SupernetModule(data_info(), optimizer=torch.optim.SGD, channels=2, cells_per_stage=1, landmarks=4,
                            landmark_batch="heldout", landmark_schedule="cosine_increase", landmark_warmup_epochs=2)
    torch.manual_seed(0)
    train_batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    heldout = {7: (torch.randn(5, 3, 8, 8), torch.randint(0, 10, (5,)))}
    seen = []
    original = module._path_loss
    monkeypatch.setattr(module, "_path_loss", lambda choice, x, y: seen.append(x) or original(choice, x, y))
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(heldout_batch=heldout.__getitem__), current_epoch=1, global_step=7,
                              max_epochs=10, num_training_batches=3)
    monkeypatch.setattr(module, "_trainer", trainer)  # what current_epoch, global_step and trainer read
    module.training_step(train_batch, 0)  # epoch 1 < 2 warm-up epochs: coefficient 0, no landmark forward
    assert len(seen) == 1 and seen[0] is train_batch[0]
    trainer.current_epoch = 2
    loss = module.training_step(train_batch, 0)
    assert len(seen) == 4 and seen[1] is train_batch[0]
    assert seen[2] is heldout[7][0] and seen[3] is heldout[7][0]  # both landmarks of the pair, on held-out batch 7
    assert loss.requires_grad


def test_heldout_batches_cycle_reshuffled_passes_over_the_validation_images():
    dm = ImageDataModule("digits", n_train=64, n_val=20, batch_size=8, seed=5)
    rows = lambda i: dm.heldout_batch(i)  # noqa: E731
    dm.batch = lambda r, train, augment=False: (torch.as_tensor(r), torch.as_tensor(r))
    first = [rows(i)[0].tolist() for i in range(3)]  # one pass: 8 + 8 + 4 images
    assert [len(b) for b in first] == [8, 8, 4] and sorted(sum(first, [])) == dm.split.val.tolist()
    second = sum((rows(i)[0].tolist() for i in range(3, 6)), [])
    assert sorted(second) == dm.split.val.tolist() and second != sum(first, [])
    assert rows(4)[0].tolist() == rows(4)[0].tolist() and not set(sum(first, [])) & set(dm.split.train.tolist())


def test_paper_experiment_holds_the_official_setting(tmp_path):
    cfg = compose_train(["experiment=landmark_paper"], tmp_path)
    m, d, t = cfg.model, cfg.data, cfg.trainer
    assert (m.landmarks, m.landmark_choice, m.landmark_pairs, m.landmark_num_pairs, m.landmark_batch) == (50, "random", "randint", 1, "heldout")
    assert (m.landmark_coef, m.landmark_schedule, m.landmark_warmup_epochs, t.max_epochs) == (10.0, "cosine_increase", 150, 400)
    assert m.bn_running_stats is False and m.scheduler_interval == "epoch" and m.scheduler.eta_min == 0.001
    assert (m.optimizer.lr, m.optimizer.momentum, m.optimizer.nesterov, m.optimizer.weight_decay) == (0.025, 0.9, False, 0.0005)
    assert (d.batch_size, d.eval_batch_size, d.n_train, d.n_val, t.gradient_clip_val) == (256, 256, 300, 300, 5.0)
    assert d.truth.num_archs - m.landmarks >= 50 and d.truth.batch_size == 64
    cifar = compose_train(["experiment=landmark_paper_cifar10"], tmp_path)  # the same setting at the full size
    size_keys = {"channels", "cells_per_stage", "landmark_seed", "sample_seed"}
    assert {k: v for k, v in cifar.model.items() if k not in size_keys} == {k: v for k, v in m.items() if k not in size_keys}
    assert (cifar.model.channels, cifar.model.cells_per_stage, cifar.data.n_val, cifar.data.batch_size) == (16, 5, 0.5, 256)
    assert cifar.data.truth.num_archs - cifar.model.landmarks == 200 and cifar.trainer.max_epochs == 400
    assert (cifar.data.truth.choice, cifar.data.truth.seed) == ("uniform", cifar.seed)  # drawn from every cell, as official
