"""ReNAS's released training loop in the paper recipes: the extra optimiser step at the start of every
epoch, and the epoch's training KTau as the unweighted mean of the batches' KTau."""

from __future__ import annotations

import itertools
from functools import partial

import lightning as L
import numpy as np
import pytest
import torch

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.data import ArchRankDataModule
from nasrank.models.losses import PairwiseLogistic
from nasrank.models.renas import ReNASCNNEncoder, RenasModule
from nasrank.spaces import nb201


def fit_two_epochs(paper: bool) -> tuple[RenasModule, L.Trainer, list[tuple[float, int]]]:
    """Two epochs on 12 cells in batches of 8 and 4; returns the (KTau, batch size) of every batch."""
    L.seed_everything(0, verbose=False)
    archs = list(itertools.islice(nb201.SPACE.enumerate(), 40))
    bench = Benchmark("nb201_tiny", nb201.SPACE, archs, {"cifar10/test_acc": np.random.default_rng(0).uniform(80, 94, 40)})
    dm = ArchRankDataModule(bench, "cifar10/test_acc", n_train=12, n_val=0, tensors=["renas"], batch_size=8)
    model = RenasModule(encoder=partial(ReNASCNNEncoder, conv_channels=(4,), fc=(8,)), data_info=dm.data_info(),
                        loss=PairwiseLogistic(ties=paper), optimizer=partial(torch.optim.Adam, lr=1e-3),
                        extra_epoch_step=paper, batch_mean_train_ktau=paper)
    seen: list[tuple[float, int]] = []
    loss = model.training_loss

    def recording(batch):
        value, extra = loss(batch)
        seen.append((float(extra["ktau"]), batch.num_graphs))
        return value, extra

    model.training_loss = recording
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    return model, trainer, seen


@pytest.mark.parametrize("paper", [False, True])
def test_renas_paper_loop_steps_once_more_per_epoch_and_averages_ktau_per_batch(paper) -> None:
    """2 epochs x 2 batches = 4 Adam steps, + 1 with the released loop (epoch 2's extra step; epoch 1's finds
    no gradient); train/ktau of epoch 2 = mean of its two batches' KTau, unweighted (released) or by size."""
    _, trainer, seen = fit_two_epochs(paper)
    steps = {int(state["step"]) for state in trainer.optimizers[0].state.values()}
    assert steps == {5 if paper else 4}
    (k1, n1), (k2, n2) = seen[-2:]
    assert (n1, n2) == (8, 4) and abs(k1 - k2) > 0.05  # unequal batches with different KTau tell the means apart
    expected = (k1 + k2) / 2 if paper else (k1 * n1 + k2 * n2) / (n1 + n2)
    assert float(trainer.callback_metrics["train/ktau"]) == pytest.approx(expected, abs=1e-6)


def test_extra_step_reapplies_the_last_gradient() -> None:
    """The extra step moves the weights with the gradient the last batch left (as the released loop's
    optimizer.step() before zero_grad): stepping again from the trained state changes every weight."""
    model, trainer, _ = fit_two_epochs(True)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    before = [p.detach().clone() for p in model.parameters()]
    model.on_train_epoch_start()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()) if p.requires_grad)
