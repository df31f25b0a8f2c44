"""ReverB-SNN building blocks: binary (±1) weights with a channel scale α, graded-spike neurons.

ReverB-SNN (Guo et al., ICML 2025, arXiv 2506.07720; digest §4) moves the information from
the weights to the spikes: every synapse is +1 or −1 and every spike carries a real value,
the membrane potential of the neuron that emitted it.

* :class:`BinaryConv2d`, :class:`BinaryLinear` -- drop-in for ``nn.Conv2d`` / ``nn.Linear``
  (same arguments).  The forward pass uses ``α ⊙ sign(W)`` with sign(0) = +1 and a
  trainable α indexed by the **input** channel (shape 1×C_in×1×1 for a convolution, 1×F_in
  for a linear layer, the paper's rebuttal correction): ``conv(O, α⊙sign W) =
  conv(α⊙O, sign W)``, so after training α moves into the previous layer's spikes and the
  synapses stay ±1 (`schemes.reverb.fold`).  The latent real W learns through the clipped
  straight-through estimator ``d sign(W)/dW = 1{|W| ≤ 1}`` (the BNN standard; the paper does
  not say which STE).
* :class:`ReverBNeuron` -- ``U = τ·U + I``; where ``U ≥ V_th`` the neuron emits ``U`` (not 1)
  and resets to 0.  Defaults τ = 0.25 (the authors' code), V_th = 0 (the paper's setting for
  static data).  The gradient of the emitted value is ``dO/dU = 1`` where it fired and 0
  elsewhere (the paper's ReLU-like derivative, R6); the reset carries no gradient.
* :class:`ReverBBasicBlock` -- the spiking ResNet basic block of the paper's ResNets,
  ``h = neuron1(bn1(conv1(x)));  y = neuron2(bn2(conv2(h)) + shortcut(x))`` with binary 3x3
  convolutions and a real-valued shortcut (identity, or a 1x1 ``nn.Conv2d`` + BatchNorm
  downsample when the stride or the channel count changes).  The add is a membrane current
  (before neuron2).  x must be the graded spikes of a ReverB neuron (`schemes.reverb.fold`).

Time convention: the one of :mod:`neurodeploy.nn.lif` -- tensors are ``(T, N, ...)``, time
first; the binary layers are stateless and run step-wise inside
:class:`~neurodeploy.nn.lif.SpikingSequential`; the neuron implements the
``init_state``/``step`` interface, so ``neurodeploy.train.fit`` trains these networks with
BPTT and with rate-based backprop (its eligibility comes from forward-mode AD through
``step``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .lif import SpikingNeuron, State, multistep

__all__ = ["BinaryConv2d", "BinaryLinear", "ReverBNeuron", "ReverBBasicBlock", "binary_sign"]


class _SignSTE(torch.autograd.Function):
    """sign(W) with sign(0) = +1; backward: clipped straight-through 1{|W| ≤ 1}."""

    @staticmethod
    def forward(w):
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


def binary_sign(w: torch.Tensor) -> torch.Tensor:
    """±1 weights: +1 where w ≥ 0, −1 elsewhere; gradient by the clipped straight-through estimator."""
    return _SignSTE.apply(w)


def _alpha_init(weight: torch.Tensor) -> torch.Tensor:
    """α_c = mean |W| over everything but the input-channel axis (1): the scale that keeps
    α·sign(W) close to W at initialisation (XNOR-Net's choice, per input channel here)."""
    dims = [d for d in range(weight.dim()) if d != 1]
    return weight.detach().abs().mean(dim=dims).clamp_min(1e-3)


class BinaryConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose effective weight is ``α ⊙ sign(W)``, α of shape (1, C_in, 1, 1).

    ``groups`` must be 1 (α is indexed by input channel of the whole kernel).  ``alpha``
    is a trainable parameter; ``binary_weight()`` is the ±1 tensor the chip stores.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1:
            raise ValueError("BinaryConv2d supports groups=1 only (α is per input channel)")
        self.alpha = nn.Parameter(_alpha_init(self.weight).view(1, -1, 1, 1))

    def binary_weight(self) -> torch.Tensor:
        return binary_sign(self.weight)

    def effective_weight(self) -> torch.Tensor:
        return self.alpha * self.binary_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


class BinaryLinear(nn.Linear):
    """``nn.Linear`` whose effective weight is ``α ⊙ sign(W)``, α of shape (1, in_features)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpha = nn.Parameter(_alpha_init(self.weight).view(1, -1))

    def binary_weight(self) -> torch.Tensor:
        return binary_sign(self.weight)

    def effective_weight(self) -> torch.Tensor:
        return self.alpha * self.binary_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


class ReverBNeuron(SpikingNeuron):
    """Leaky integrator that emits its membrane value as a graded spike, then resets to 0.

    Per step::

        U = tau * U + I
        f = U >= v_th
        O = U * f          # the graded spike (0 where it did not fire)
        U = U * (1 - f)    # hard reset

    ``dO/dU = f`` (1 where fired, 0 elsewhere); f and the reset are constants for autograd.

    Args:
        tau: membrane decay in [0, 1] (default 0.25, the authors' code).
        v_th: firing threshold, ≥ 0 (default 0, the paper's choice on static data).
    """

    def __init__(self, tau: float = 0.25, v_th: float = 0.0):
        super().__init__()
        if not 0.0 <= float(tau) <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {tau!r}")
        if not float(v_th) >= 0.0:
            raise ValueError(f"v_th must be >= 0 (graded spikes are unsigned payloads), got {v_th!r}")
        self.tau = float(tau)
        self.v_th = float(v_th)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_th={self.v_th}"

    def init_state(self, current: torch.Tensor) -> State:
        return (torch.zeros_like(current),)

    def step(self, state: State, current: torch.Tensor) -> tuple[torch.Tensor, State]:
        u = self.tau * state[0] + current
        fired = (u >= self.v_th).to(u.dtype).detach()
        out = u * fired
        return out, (u * (1.0 - fired),)


class ReverBBasicBlock(nn.Module):
    """Spiking ResNet basic block with binary convolutions (the ReverB paper's ResNets)::

        h = neuron1(bn1(conv1(x)))                        # conv1: BinaryConv2d 3x3, stride
        y = neuron2(bn2(conv2(h)) + shortcut(x))          # conv2: BinaryConv2d 3x3

    shortcut = identity when ``stride == 1`` and the channel counts agree, else a real-valued
    1x1 ``nn.Conv2d`` (stride ``stride``, no bias) + ``nn.BatchNorm2d``.  The shortcut stays
    real-valued because after folding it must carry the inverse of conv1's α and of bn2's
    scale (`schemes.reverb.fold`); on the chip it is an 8-bit synapse branch.

    Takes ``(T, N, C, H, W)`` sequences (stateless layers step-wise, ``multistep = True`` so
    that `SpikingSequential` hands it the whole sequence) and, inside the compiler's per-step
    copy (`schemes.reverb.front`), single steps ``(N, C, H, W)``.
    """
    multistep = True

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, tau: float = 0.25, v_th: float = 0.0):
        super().__init__()
        self.conv1 = BinaryConv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.neuron1 = ReverBNeuron(tau, v_th)
        self.conv2 = BinaryConv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        self.neuron2 = ReverBNeuron(tau, v_th)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 5-D: a (T, N, C, H, W) sequence (training); 4-D: one step (the per-step copy, whose
        # neurons are leaves that take one step)
        apply = multistep if x.dim() == 5 else (lambda layer, t: layer(t))
        h = self.neuron1(apply(self.bn1, apply(self.conv1, x)))
        return self.neuron2(apply(self.bn2, apply(self.conv2, h)) + apply(self.shortcut, x))
