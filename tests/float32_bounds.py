"""A bound on the float32 rounding error of a forward pass: tolerances for PyTorch vs onnxruntime.

Two float32 implementations of one network (PyTorch's kernels, onnxruntime's MLAS kernels) differ
only in rounding, and onnxruntime chooses its kernels per CPU, so a tolerance measured on one
machine says nothing about the next.  `forward_bound` runs the network in float64 (the reference;
its own error is 2^29 times smaller and covered by rounding every n up by one) and propagates a
bound E on |float32 result − float64 result| layer by layer, with the standard bounds (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1, §2.2), u = 2^-24:

- a sum of n products in any order, with or without FMA: |fl(Σ w·x) − Σ w·x| ≤ γ_n·Σ|w·x|,
  γ_n = n·u/(1 − n·u); an input already off by e adds Σ|w|·e (Conv2d, Linear: n = fan-in + 1
  for the bias, + 1 for the float64 reference);
- BatchNorm (eval) as either library computes it, per channel s = γ/√(σ² + ε), b = β − μ·s,
  then x·s + b: at most 7 roundings, bounded by 8u·(|x·s| + |μ·s| + |β|), plus |s|·e; folded
  into the preceding convolution (weights fl(w·s)) it is off by u·Σ|w·s·x| instead, so |x| is
  taken as that convolution's Σ|w·x| (`mag`), which covers both;
- ReLU and max pooling are 1-Lipschitz: e passes unchanged; average pooling over k values:
  mean(e) + γ_(k+1)·mean(|x| + e) (adaptive pooling: k the largest window); a residual add: e_a + e_b + u·|a + b|;
- QCFS λ·clip(floor(x·Q/λ + 1/2)/Q, 0, 1): its floor input t is computed with 3 roundings, so it is
  within δ = (Q/λ)·e + 4u·(|t| + (Q/λ)·e) of the float64 t; where t is further than δ from an
  integer both implementations take the same level and the output is off by its own 2 roundings,
  2u·|y|; elsewhere the element is *ambiguous* (counted per sample) and may be one level λ/Q off.

Two implementations are then within 2E of each other elementwise, on any CPU.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurodeploy.nn import QCFS

U = 2.0 ** -24


def gamma(n: int) -> float:
    return n * U / (1 - n * U)


class Bound:
    """float64 values `v`, the float32 error bound `e` and `mag` ≥ |v| + e (for a Conv/Linear
    output: Σ|w|·(|x| + e) + |bias|, before any cancellation), all torch float64 tensors (N, ...);
    `ambiguous` (N,): each sample's count of quantiser elements within rounding of a level step."""

    def __init__(self, v: torch.Tensor, e: torch.Tensor, ambiguous: torch.Tensor, mag: torch.Tensor | None = None):
        self.v, self.e, self.ambiguous = v, e, ambiguous
        self.mag = v.abs() + e if mag is None else mag


def _affine(b: Bound, op, weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int, **kw) -> Bound:
    w = weight.detach().double()
    bias64 = None if bias is None else bias.detach().double()
    v = op(b.v, w, bias64, **kw)
    mag = op(b.v.abs() + b.e, w.abs(), None, **kw) + (0 if bias64 is None else _chan(bias64.abs(), v))
    e = op(b.e, w.abs(), None, **kw) + gamma(fan_in + 2) * mag
    return Bound(v, e, b.ambiguous, mag)


def _chan(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return a.view((1, -1) + (1,) * (like.dim() - 2))


def _step(m: nn.Module, b: Bound, handlers: dict) -> Bound:
    for kind, handler in handlers.items():
        if isinstance(m, kind):
            return handler(m, b, lambda mod, bb: _step(mod, bb, handlers))
    if isinstance(m, nn.Sequential):
        for child in m:
            b = _step(child, b, handlers)
        return b
    if isinstance(m, nn.Conv2d):
        fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        return _affine(b, F.conv2d, m.weight, m.bias, fan_in, stride=m.stride, padding=m.padding,
                       dilation=m.dilation, groups=m.groups)
    if isinstance(m, nn.Linear):
        return _affine(b, F.linear, m.weight, m.bias, m.in_features)
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        assert not m.training, "eval-mode BatchNorm only"
        s = m.weight.detach().double() / torch.sqrt(m.running_var.double() + m.eps)
        mu, beta = m.running_mean.double(), m.bias.detach().double()
        v = (b.v - _chan(mu, b.v)) * _chan(s, b.v) + _chan(beta, b.v)
        e = _chan(s.abs(), b.v) * b.e + 8 * U * (b.mag * _chan(s.abs(), b.v)
                                                 + _chan((mu * s).abs() + beta.abs(), b.v))
        return Bound(v, e, b.ambiguous)
    if isinstance(m, (nn.ReLU, nn.Flatten, nn.Identity, nn.MaxPool2d)):
        return Bound(m(b.v), b.e if isinstance(m, nn.ReLU) else m(b.e), b.ambiguous)
    if isinstance(m, nn.AvgPool2d):
        k = m.kernel_size * m.kernel_size if isinstance(m.kernel_size, int) else int(np.prod(m.kernel_size))
        return Bound(m(b.v), m(b.e) + gamma(k + 1) * m(b.v.abs() + b.e), b.ambiguous)
    if isinstance(m, nn.AdaptiveAvgPool2d):     # windows of up to k values (ceil(H/oh) + 1 rows by columns)
        (h, w), (oh, ow) = b.v.shape[2:], m(b.v).shape[2:]
        k = (-(-h // oh) + 1) * (-(-w // ow) + 1)
        return Bound(m(b.v), m(b.e) + gamma(k + 1) * m(b.v.abs() + b.e), b.ambiguous)
    if isinstance(m, QCFS):
        lam, q = float(m.lam.detach()), float(m.levels)
        t = b.v * (q / lam) + 0.5
        delta = (q / lam) * b.e + 4 * U * (t.abs() + (q / lam) * b.e)
        frac = t - torch.floor(t)
        ambiguous = (torch.minimum(frac, 1 - frac) <= delta)
        v = lam * torch.clamp(torch.floor(t) / q, 0, 1)
        e = 2 * U * v.abs() + ambiguous.double() * (lam / q)
        return Bound(v, e, b.ambiguous + ambiguous.flatten(1).sum(1))
    raise NotImplementedError(f"no float32 error bound for {type(m).__name__}")


def forward_bound(model: nn.Module, x, handlers: dict | None = None) -> Bound:
    """float64 output, its float32 error bound and each sample's count of ambiguous quantiser
    elements (`Bound`).

    handlers: {module type: f(module, Bound, step) -> Bound} for modules with their own forward
    (e.g. a residual block: step the inner modules, then add)."""
    x = torch.as_tensor(np.asarray(x)).double()
    with torch.no_grad():
        return _step(model.eval(), Bound(x, torch.zeros_like(x), torch.zeros(len(x), dtype=torch.int64)),
                     handlers or {})


def argmax_is_certain(b: Bound) -> np.ndarray:
    """(N,) True where every float32 implementation within the bound has the same argmax: the top
    value exceeds each other one by more than both their error bounds."""
    v, e = b.v.flatten(1), b.e.flatten(1)
    top = v.argmax(1, keepdim=True)
    margin = v.gather(1, top) - v - e.gather(1, top) - e
    margin.scatter_(1, top, float("inf"))
    return (margin.min(1).values > 0).numpy()


def residual_add(main: Bound, shortcut: Bound) -> Bound:
    """main + shortcut, `main` computed from `shortcut` (its ambiguous count already includes the
    shortcut's)."""
    v = main.v + shortcut.v
    return Bound(v, main.e + shortcut.e + U * v.abs(), main.ambiguous)
