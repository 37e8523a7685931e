"""Each zero-cost proxy against a value worked out by hand on a tiny network or activation pattern."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasrank.zerocost.proxies import jacob_cov_score, naswot_and_jacob_cov, naswot_score, snip_and_grad_norm, synflow


def _linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def test_synflow_of_a_two_layer_net_by_hand():
    """|W1| = [[1, 2], [3, 4]], |W2| = [[1, 2]], input ones: h = [3, 7], output 17.  For a linear net each
    layer's Σ|w · ∂out/∂w| equals the output: layer 2: 1·3 + 2·7 = 17; layer 1: ∂out/∂W1[i, j] = |W2|[i],
    so 1·1 + 2·1 + 3·2 + 4·2 = 17; total 34.  The BatchNorm (weight 2) is bypassed, as the reference
    does; counting it would double every value."""
    bn = nn.BatchNorm1d(2)
    with torch.no_grad():
        bn.weight.fill_(2.0)
    net = nn.Sequential(_linear([[1, -2], [3, 4]]), bn, nn.ReLU(), _linear([[-1, 2]]))
    assert synflow(net, (2,)) == pytest.approx(34.0)


def test_naswot_kernel_by_hand():
    """Two images with complementary codes: K = 2·I, log det = 2 log 2; identical codes: K singular."""
    assert naswot_score(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(2 * math.log(2))
    assert naswot_score(torch.tensor([[1.0, 0.0], [1.0, 0.0]])) == -math.inf


def test_naswot_reads_every_relu_input():
    """A lone ReLU on inputs [1, -1] and [-1, 1] sees the codes of the hand-made case above."""
    naswot, _ = naswot_and_jacob_cov(nn.Sequential(nn.ReLU()), torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    assert naswot == pytest.approx(2 * math.log(2))


def test_jacob_cov_by_hand():
    """Jacobian rows [1, 2, 3] and [3, 2, 1] have correlation -1: eigenvalues 0 and 2 of corrcoef."""
    k = 1e-5
    expected = -(math.log(2 + k) + 1 / (2 + k) + math.log(k) + 1 / k)
    assert jacob_cov_score(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])) == pytest.approx(expected, rel=1e-6)
    assert math.isnan(jacob_cov_score(torch.zeros(2, 3)))  # an output that ignores its input has no Jacobian spread


def test_snip_and_grad_norm_by_hand():
    """W = I, x = [1, 2], label 0: ∂L/∂logits = [p0 - 1, p1] = [-p1, p1] with p1 = e / (1 + e), so
    ∂L/∂W = [[-p1, -2 p1], [p1, 2 p1]]: snip = Σ|W · g| = p1 + 2 p1 = 3 p1; grad_norm = ‖g‖ = p1 √10."""
    p1 = math.e / (1 + math.e)
    snip, grad_norm = snip_and_grad_norm(_linear([[1, 0], [0, 1]]), torch.tensor([[1.0, 2.0]]), torch.tensor([0]))
    assert snip == pytest.approx(3 * p1)
    assert grad_norm == pytest.approx(p1 * math.sqrt(10))


def test_synflow_grows_with_width():
    """A wider layer carries more synaptic flow (all-ones input, |weights|): a sanity check of the sign trick,
    since random signs would otherwise cancel."""
    torch.manual_seed(0)
    narrow = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 1))
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 1))
    assert synflow(wide, (4,)) > synflow(narrow, (4,)) > 0
