"""The loss zoo: right order = low loss, reversed = high, invariances, ties, edge batches, speed, gradients."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

from nasrank.core import ConfigError
from nasrank.models.losses import MSE, ListMLE, ListNet, PairwiseHinge, PairwiseLogistic

RANKING = [PairwiseLogistic, PairwiseHinge, ListNet, ListMLE]
ALL = [*RANKING, MSE]


def targets(n: int = 32, seed: int = 0) -> torch.Tensor:
    """Distinct, unevenly spaced targets in accuracy-like units (percent)."""
    g = torch.Generator().manual_seed(seed)
    return 90 + 3 * torch.randn(n, generator=g)


def perfect_scores(loss: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
    """Scores each loss considers a perfect fit: the targets themselves for MSE, the exact target
    distribution's logits for ListNet, and a widely separated order for the others."""
    if isinstance(loss, MSE):
        return y.clone()
    z = (y - y.mean()) / y.std(correction=0)
    if isinstance(loss, ListNet):
        return z / loss.temperature
    return 50 * torch.argsort(torch.argsort(y)).float()


@pytest.mark.parametrize("cls", ALL)
def test_perfect_order_is_low_and_reversed_is_high(cls) -> None:
    loss, y = cls(), targets()
    good = perfect_scores(loss, y)
    bad = -good + 2 * good.mean()  # the same spread, order reversed
    low, high = float(loss(good, y)), float(loss(bad, y))
    floor = 0.0
    if isinstance(loss, ListNet):  # cross-entropy: its minimum is the entropy of the target distribution
        p = F.softmax((y - y.mean()) / y.std(correction=0), 0)
        floor = float(-(p * p.log()).sum())
    assert low == pytest.approx(floor, abs=1e-4)
    assert high > floor + 1.0, (low, high)


@pytest.mark.parametrize("cls", RANKING)
def test_ranking_losses_ignore_target_shift(cls) -> None:
    y, s = targets(), torch.randn(32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    base = cls()(s, y)
    torch.manual_seed(0)  # ListMLE breaks ties at random: same draws for both calls
    assert cls()(s, y + 123.0) == pytest.approx(float(base), rel=1e-5)


@pytest.mark.parametrize("cls", [PairwiseLogistic, PairwiseHinge, ListMLE])
def test_order_based_losses_ignore_any_monotone_target_transform(cls) -> None:
    y, s = targets(), torch.randn(32, generator=torch.Generator().manual_seed(2))
    assert cls()(s, torch.exp(y / 10)) == pytest.approx(float(cls()(s, y)), rel=1e-5)


def test_mse_is_not_shift_invariant() -> None:
    """MSE regresses values (the datamodule standardises them); it must see a shift."""
    y, s = targets(), torch.randn(32)
    assert float(MSE()(s, y + 5.0)) > float(MSE()(s, y)) + 1.0


def test_pairwise_logistic_matches_the_definition_over_pairs() -> None:
    """Mean of log(1 + exp(-(o_i - o_j) sign(y_i - y_j))) over ordered pairs with y_i != y_j (ReNAS eq.)."""
    y = torch.tensor([1.0, 3.0, 2.0, 3.0, 0.5])
    s = torch.tensor([0.2, -1.0, 0.7, 1.5, 0.0])
    terms = [torch.log1p(torch.exp(-(s[i] - s[j]) * torch.sign(y[i] - y[j])))
             for i in range(5) for j in range(5) if y[i] != y[j]]
    assert float(PairwiseLogistic()(s, y)) == pytest.approx(float(torch.stack(terms).mean()), rel=1e-6)
    hinge = [torch.relu(0.1 - (s[i] - s[j]) * torch.sign(y[i] - y[j])) for i in range(5) for j in range(5) if y[i] != y[j]]
    assert float(PairwiseHinge(0.1)(s, y)) == pytest.approx(float(torch.stack(hinge).mean()), rel=1e-6)


@pytest.mark.parametrize("cls", [PairwiseLogistic, PairwiseHinge])
def test_pairwise_losses_skip_tied_pairs(cls) -> None:
    s = torch.randn(6, requires_grad=True)
    loss = cls()(s, torch.full((6,), 91.5))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(s.grad, torch.zeros(6))


def test_listmle_breaks_ties_at_random_not_by_position() -> None:
    """Two tied rows: over many calls each is placed first about half the time, so the expected
    gradient does not favour the row met first in the batch."""
    torch.manual_seed(0)
    s = torch.zeros(2, requires_grad=True)
    grads = []
    for _ in range(400):
        s.grad = None
        ListMLE()(s, torch.tensor([1.0, 1.0])).backward()
        grads.append(s.grad[0].item())
    first = sum(g < 0 for g in grads) / len(grads)  # negative gradient = pushed up = ranked first
    assert 0.4 < first < 0.6


@pytest.mark.parametrize("cls", ALL)
def test_single_row_batch(cls) -> None:
    """A last partial batch can hold one row: it holds no order, so a ranking loss is 0 with no gradient
    (not NaN from a one-row std); MSE is the squared error, (3 - 93)^2."""
    s = torch.full((1,), 3.0, requires_grad=True)
    loss = cls()(s, torch.tensor([93.0]))
    loss.backward()
    expected, grad = (8100.0, -180.0) if cls is MSE else (0.0, 0.0)
    assert loss.item() == expected and s.grad.tolist() == [grad]


@pytest.mark.parametrize("cls", ALL)
def test_gradients_finite_on_extreme_scores_and_ties(cls) -> None:
    y = torch.cat([targets(30), torch.full((10,), 90.0)])
    s = torch.cat([torch.linspace(-1e4, 1e4, 20), torch.randn(20)]).requires_grad_()
    loss = cls()(s, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", ALL)
def test_column_shaped_inputs_give_the_same_loss(cls) -> None:
    """(B, 1) scores/targets (a head without squeeze) must not broadcast into a (B, B) loss."""
    y, s = targets(16), torch.randn(16)
    torch.manual_seed(0)
    flat = cls()(s, y)
    torch.manual_seed(0)
    assert float(cls()(s[:, None], y[:, None])) == pytest.approx(float(flat), rel=1e-6)


@pytest.mark.parametrize("cls", ALL)
def test_a_2048_batch_is_vectorised(cls) -> None:
    """4.2M ordered pairs: a Python loop over pairs takes minutes; vectorised, a fraction of a second
    (the bound leaves room for a busy CI machine)."""
    y, s = targets(2048), torch.randn(2048, requires_grad=True)
    start = time.process_time()
    cls()(s, y).backward()
    assert time.process_time() - start < 5.0


def test_bad_hyperparameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        ListNet(temperature=0.0)
    with pytest.raises(ConfigError, match="margin"):
        PairwiseHinge(margin=-1.0)


def test_pairwise_logistic_with_ties_averages_over_every_ordered_pair() -> None:
    """Released ReNAS/NAR code: sum over all i != j (a tied pair adds log 2) / n (n - 1).  By hand, for
    scores (0, ln 3, ln 3, 2 ln 3) in the order of targets (1, 2, 2, 3): the 10 untied ordered pairs give
    8 x ln(4/3) + 2 x ln(10/9), the 2 tied ones 2 x ln 2."""
    y = torch.tensor([1.0, 2.0, 2.0, 3.0])
    s = torch.tensor([0.0, 1.0, 1.0, 2.0]) * math.log(3.0)
    untied = 8 * math.log(4 / 3) + 2 * math.log(10 / 9)
    assert float(PairwiseLogistic()(s, y)) == pytest.approx(untied / 10, rel=1e-6)  # 0.25122
    assert float(PairwiseLogistic(ties=True)(s, y)) == pytest.approx((untied + 2 * math.log(2.0)) / 12, rel=1e-6)  # 0.32487
    grads = []
    for ties in (False, True):
        x = s.clone().requires_grad_()
        PairwiseLogistic(ties=ties)(x, y).backward()
        grads.append(x.grad)
    assert torch.allclose(grads[1], grads[0] * 10 / 12)  # ties only dilute the gradient
    assert float(PairwiseLogistic(ties=True)(torch.tensor([0.3]), torch.tensor([1.0]))) == 0.0  # no pair
