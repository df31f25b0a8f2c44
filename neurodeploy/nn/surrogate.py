"""Surrogate gradients for the spike non-linearity.

A spiking neuron emits ``s = H(v - v_th)`` (Heaviside step).  Its derivative
is zero almost everywhere, so training replaces it, in the backward pass
only, by the derivative of a smooth function.  A surrogate object supplies

* :meth:`Surrogate.spike` -- ``H(x)`` in the forward pass (``x >= 0``, or
  ``x > 0`` with ``strict=True`` as Loihi's ``v > vth``) whose backward (and
  forward-mode tangent) is ``grad(x)``;
* :meth:`Surrogate.grad` -- the surrogate derivative itself, a plain tensor
  function.  Rate-based backpropagation evaluates it during the (no-autograd)
  spiking forward pass to build the neurons' eligibilities, so BPTT and
  rate-BP use the very same derivative.

:class:`Sigmoid` with ``alpha = 4`` is the default everywhere, as in the
rate-based backprop authors' code:
``grad(x) = alpha * sigmoid(alpha x) * (1 - sigmoid(alpha x))``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["Surrogate", "Sigmoid", "ATan", "Rectangle", "heaviside"]


def heaviside(x: torch.Tensor, strict: bool = False) -> torch.Tensor:
    """``1.0`` where ``x >= 0`` (``x > 0`` if ``strict``), else ``0.0``; dtype of ``x``."""
    return (x > 0 if strict else x >= 0).to(x.dtype)


class _SpikeFn(torch.autograd.Function):
    """Heaviside forward; ``surrogate.grad`` as derivative, in reverse and forward mode."""

    @staticmethod
    def forward(x, surrogate, strict):
        return heaviside(x, strict)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, surrogate, _ = inputs
        ctx.surrogate = surrogate
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.grad(x), None, None

    @staticmethod
    def jvp(ctx, x_tangent, *_):
        (x,) = ctx.saved_tensors
        return x_tangent * ctx.surrogate.grad(x)


class Surrogate:
    """Base class: subclasses implement :meth:`grad` (the pseudo-derivative of H at ``x``)."""

    def grad(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def spike(self, x: torch.Tensor, strict: bool = False) -> torch.Tensor:
        """``H(x)`` with this surrogate as its derivative (autograd and forward AD)."""
        return _SpikeFn.apply(x, self, strict)

    def __call__(self, x: torch.Tensor, strict: bool = False) -> torch.Tensor:
        return self.spike(x, strict)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))


class Sigmoid(Surrogate):
    """``grad(x) = alpha * sigmoid(alpha x) * (1 - sigmoid(alpha x))``; peak ``alpha / 4`` at 0."""

    def __init__(self, alpha: float = 4.0):
        self.alpha = float(alpha)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        sx = torch.sigmoid(self.alpha * x)
        return self.alpha * sx * (1.0 - sx)


class ATan(Surrogate):
    """``grad(x) = (alpha / 2) / (1 + (pi/2 * alpha * x)^2)`` (SpikingJelly's default shape)."""

    def __init__(self, alpha: float = 2.0):
        self.alpha = float(alpha)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x) ** 2)


class Rectangle(Surrogate):
    """``grad(x) = 1/width`` for ``|x| < width/2``, else 0 (straight-through window)."""

    def __init__(self, width: float = 1.0):
        self.width = float(width)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return (x.abs() < self.width / 2).to(x.dtype) / self.width
