"""Zero-cost proxies: scores of an *untrained* network from one batch of images (or none), which
rank architectures without training them.

Each follows its reference implementation (SamsungLabs/zero-cost-nas, as NASLib runs it, and
BayesWatch/nas-without-training v2), so the values are the published proxies, not look-alikes:

- ``synflow`` (Tanaka et al. 2020, Abdelfattah et al. 2021): every parameter replaced by its absolute
  value, BatchNorm bypassed, the network in float64, an all-ones input of batch 1;
  sum over conv/linear weights of |w · ∂(Σ output)/∂w|.
- ``snip``: sum over conv/linear weights of |w · ∂L/∂w|, L the cross-entropy of the batch
  (zero-cost-nas's mask gradient is exactly w · ∂L/∂w, since the mask is 1).
- ``grad_norm``: sum over conv/linear layers of the L2 norm of ∂L/∂w (per layer, then summed).
- ``jacob_cov``: J = ∂(Σ output)/∂input per image; the eigenvalues v of corrcoef(J) give
  -Σ log(v + 1e-5) + 1 / (v + 1e-5).
- ``naswot``: for every ReLU, the binary code of its input (> 0) per image; K = Σ codes·codesᵀ +
  (1 - codes)·(1 - codes)ᵀ over all ReLUs; the score is log|det K|.

Networks stay in training mode (BatchNorm on batch statistics) as in the references.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: proxy names in the order `all_proxies` returns them
PROXIES = ("synflow", "snip", "grad_norm", "jacob_cov", "naswot")
_JACOB_EPS = 1e-5


def _weighted(net: nn.Module) -> Iterator[nn.Module]:
    """The layers the references score: convolutions and linear layers."""
    return (m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def naswot_score(codes: Tensor) -> float:
    """log|det K| of NASWOT's kernel for binary activation codes (images × units, one row per image)."""
    codes = codes.double()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    return float(torch.linalg.slogdet(kernel)[1])


def jacob_cov_score(jacobians: Tensor) -> float:
    """jacob_cov of per-image input Jacobians (images × input size); NaN when they have no spread."""
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant row has no correlation: NaN
        corr = np.corrcoef(jacobians.double().cpu().numpy())
    if not np.isfinite(corr).all():
        return float("nan")
    v = np.linalg.eigvalsh(corr)  # symmetric: real eigenvalues (the reference's eig returns the same ones)
    return float(-np.sum(np.log(v + _JACOB_EPS) + 1.0 / (v + _JACOB_EPS)))


def naswot_and_jacob_cov(net: nn.Module, x: Tensor) -> tuple[float, float]:
    """One forward pass (ReLU input codes) and one backward to the input give both proxies."""
    codes: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, inp, _out: codes.append((inp[0].detach() > 0).flatten(1)))
             for m in net.modules() if isinstance(m, nn.ReLU)]
    x = x.clone().requires_grad_(True)
    try:
        out = net(x)
    finally:
        for h in hooks:
            h.remove()
    (grad,) = torch.autograd.grad(out.sum(), x)
    naswot = naswot_score(torch.cat(codes, 1)) if codes else float("nan")
    return naswot, jacob_cov_score(grad.flatten(1))


def snip_and_grad_norm(net: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """One cross-entropy backward gives both (the references run it twice, identically)."""
    layers = list(_weighted(net))
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), [m.weight for m in layers], allow_unused=True)
    snip = sum(float((m.weight.detach() * g).abs().sum()) for m, g in zip(layers, grads) if g is not None)
    grad_norm = sum(float(g.norm()) for g in grads if g is not None)
    return snip, grad_norm


def synflow(net: nn.Module, input_shape: tuple[int, ...]) -> float:
    """SynFlow on `net` itself: its parameters become their absolute values and float64 (callers pass
    a network they no longer need)."""
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.double().eval()  # BatchNorm is bypassed below; eval mode only spares it a batch of 1
    bypass = [m.register_forward_hook(lambda _m, inp, _out: inp[0]) for m in net.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        out = net(torch.ones((1, *input_shape), dtype=torch.float64))
    finally:
        for h in bypass:
            h.remove()
    layers = list(_weighted(net))
    grads = torch.autograd.grad(out.sum(), [m.weight for m in layers], allow_unused=True)
    return sum(float((m.weight.detach() * g).abs().sum()) for m, g in zip(layers, grads) if g is not None)


def all_proxies(net: nn.Module, x: Tensor, y: Tensor) -> np.ndarray:
    """The `PROXIES` of a freshly initialised `net` on images `x` (float, N x C x H x W) with labels `y`;
    synflow runs last because it rewrites the weights."""
    net.train()
    naswot, jacob = naswot_and_jacob_cov(net, x)
    snip, grad_norm = snip_and_grad_norm(net, x, y)
    values = {"synflow": synflow(net, tuple(x.shape[1:])), "snip": snip, "grad_norm": grad_norm,
              "jacob_cov": jacob, "naswot": naswot}
    return np.array([values[name] for name in PROXIES], dtype=np.float64)
