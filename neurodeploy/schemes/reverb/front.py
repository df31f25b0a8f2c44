"""PyTorch front end for ReverB networks (`neurodeploy.nn.reverb`, time-first models) -> `FloatGraph`.

Like `schemes.cuba.front`: the compiler needs the per-step network, so `per_step_model` copies the
model (a `SpikingSequential` becomes an `nn.Sequential`) and swaps

* each `ReverBNeuron` for a leaf calling the custom op ``neurodeploy::reverb`` -> a
  `ReverbAct` node carrying τ and V_th (opaque: its value is never computed during export);
* each `BinaryConv2d` / `BinaryLinear` for a leaf calling ``neurodeploy::binary_conv2d`` /
  ``neurodeploy::binary_linear`` with sign(W) and α as separate constants -> a `BinaryConv`
  / `BinaryDense` node whose weight is exactly ±1 and whose α stays apart.  (Traced as the
  module's own forward, export would fold α·sign(W) into one real weight and the folding
  could no longer show that the synapses stay ±1.)

Everything else (nn.Conv2d / nn.Linear as real-valued layers, BatchNorm, AvgPool, MaxPool,
Flatten, the `+` of a residual block -> `fg.Add`) goes through the ordinary `frontends.torch`
handlers (`nn.reverb.ReverBBasicBlock` runs its layers one step at a time on 4-D input, so its
per-step copy traces like any residual CNN); the three handlers below are
registered through its `handler` registry.  `api._float_graph` routes a module to
`load_reverb_model` when `is_reverb_model` says so.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...errors import UnsupportedError
from . import float_model as rf
from ...frontends import torch as tf
from ...frontends.per_step import per_step_copy


@torch.library.custom_op("neurodeploy::reverb", mutates_args=())
def _reverb_op(x: torch.Tensor, tau: float, v_th: float) -> torch.Tensor:
    """Stand-in for one ReverB neuron layer during export (the value is never used)."""
    return x.clone()


@_reverb_op.register_fake
def _(x, tau, v_th):
    return torch.empty_like(x)


@torch.library.custom_op("neurodeploy::binary_conv2d", mutates_args=())
def _binary_conv_op(x: torch.Tensor, sign: torch.Tensor, alpha: torch.Tensor, bias: torch.Tensor,
                    stride: list[int], padding: list[int], dilation: list[int]) -> torch.Tensor:
    """conv2d(x, α ⊙ sign) + bias (α of shape (C_in,))."""
    return nn.functional.conv2d(x, sign * alpha.reshape(1, -1, 1, 1), bias, stride, padding, dilation)


@_binary_conv_op.register_fake
def _(x, sign, alpha, bias, stride, padding, dilation):
    return nn.functional.conv2d(x, sign, bias, stride, padding, dilation)


@torch.library.custom_op("neurodeploy::binary_linear", mutates_args=())
def _binary_linear_op(x: torch.Tensor, sign: torch.Tensor, alpha: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(α ⊙ sign) @ x + bias (α of shape (in,))."""
    return nn.functional.linear(x, sign * alpha.reshape(1, -1), bias)


@_binary_linear_op.register_fake
def _(x, sign, alpha, bias):
    return x.new_empty(x.shape[:-1] + (sign.shape[0],))


class ReverbLeaf(nn.Module):
    """A ReverBNeuron as an opaque per-step op (for tracing only)."""

    def __init__(self, neuron):
        super().__init__()
        self.tau, self.v_th = float(neuron.tau), float(neuron.v_th)

    def forward(self, x):
        return torch.ops.neurodeploy.reverb(x, self.tau, self.v_th)


def _same_padding(mod) -> tuple:
    if isinstance(mod.padding, str):
        if mod.padding == "valid":
            return (0, 0)
        k, d = mod.kernel_size, mod.dilation
        if mod.stride == (1, 1) and all((di * (ki - 1)) % 2 == 0 for di, ki in zip(d, k)):
            return tuple(di * (ki - 1) // 2 for di, ki in zip(d, k))
        raise UnsupportedError(f"padding='{mod.padding}' with an even kernel or a stride", type(mod).__name__,
                               "use explicit symmetric padding")
    return tuple(int(p) for p in mod.padding)


class BinaryConvLeaf(nn.Module):
    """A BinaryConv2d with sign(W) and α as separate buffers (for tracing only)."""

    def __init__(self, mod):
        super().__init__()
        if mod.padding_mode != "zeros":
            raise UnsupportedError(f"padding_mode '{mod.padding_mode}'", type(mod).__name__, "use zero padding")
        with torch.no_grad():
            self.register_buffer("sign", mod.binary_weight().detach().float().clone())
            self.register_buffer("alpha", mod.alpha.detach().float().reshape(-1).clone())
            b = mod.bias.detach().float().clone() if mod.bias is not None else torch.zeros(mod.out_channels)
            self.register_buffer("bias", b)
        self.stride, self.dilation = [int(s) for s in mod.stride], [int(d) for d in mod.dilation]
        self.padding = list(_same_padding(mod))

    def forward(self, x):
        return torch.ops.neurodeploy.binary_conv2d(x, self.sign, self.alpha, self.bias,
                                                   self.stride, self.padding, self.dilation)


class BinaryLinearLeaf(nn.Module):
    """A BinaryLinear with sign(W) and α as separate buffers (for tracing only)."""

    def __init__(self, mod):
        super().__init__()
        with torch.no_grad():
            self.register_buffer("sign", mod.binary_weight().detach().float().clone())
            self.register_buffer("alpha", mod.alpha.detach().float().reshape(-1).clone())
            b = mod.bias.detach().float().clone() if mod.bias is not None else torch.zeros(mod.out_features)
            self.register_buffer("bias", b)

    def forward(self, x):
        return torch.ops.neurodeploy.binary_linear(x, self.sign, self.alpha, self.bias)


def is_reverb_model(model) -> bool:
    """True when `model` holds a ReverB neuron or a binary layer (`neurodeploy.nn.reverb`)."""
    from ...nn.reverb import BinaryConv2d, BinaryLinear, ReverBNeuron
    return isinstance(model, nn.Module) and any(
        isinstance(m, (ReverBNeuron, BinaryConv2d, BinaryLinear)) for m in model.modules())


def per_step_model(model: nn.Module) -> nn.Module:
    """A copy of `model` that runs one time step on (N, ...) tensors, with the ReverB modules as leaves."""
    from ...nn.reverb import BinaryConv2d, BinaryLinear, ReverBNeuron
    leaves = ((ReverBNeuron, ReverbLeaf), (BinaryConv2d, BinaryConvLeaf), (BinaryLinear, BinaryLinearLeaf))
    return per_step_copy(model, lambda m: next((leaf(m) for cls, leaf in leaves if isinstance(m, cls)), None),
                         "use neurodeploy.nn.ReverBNeuron (or compile LIF networks with --scheme cuba)")


@tf.handler("reverb")
def _reverb_handler(node, ctx, a):
    x = ctx.tensor(ctx.resolve(a["x"]))
    tau, v_th = float(a["tau"]), float(a["v_th"])
    if not 0.0 <= tau <= 1.0:
        raise ctx.unsupported(f"ReverB decay tau={tau} outside [0, 1]", "train with 0 <= tau <= 1")
    if not v_th >= 0.0:
        raise ctx.unsupported(f"ReverB threshold v_th={v_th} is negative",
                              "graded spikes are unsigned payloads: use v_th >= 0")
    return ctx.add(rf.ReverbAct(tau=tau, threshold=np.asarray(v_th)), [x])


def _sign_alpha(ctx, a, what: str):
    sign = ctx.const(ctx.resolve(a["sign"]), f"{what} sign weight")
    if not np.all(np.abs(sign) == 1.0):
        raise ctx.unsupported(f"{what} weights are not all ±1")
    alpha = ctx.const(ctx.resolve(a["alpha"]), f"{what} alpha").reshape(-1)
    if alpha.size != sign.shape[1]:
        raise ctx.unsupported(f"{what} alpha has {alpha.size} entries for {sign.shape[1]} input channels")
    if not np.all(np.isfinite(alpha)):
        raise ctx.unsupported(f"{what} alpha holds NaN/Inf", "retrain or repair the model")
    return sign, alpha, ctx.const(ctx.resolve(a["bias"]), f"{what} bias").reshape(-1)


@tf.handler("binary_conv2d")
def _binary_conv_handler(node, ctx, a):
    x = ctx.tensor(ctx.resolve(a["x"]))
    sign, alpha, bias = _sign_alpha(ctx, a, "BinaryConv2d")
    op = rf.BinaryConv(weight=sign, alpha=alpha, bias=bias, stride=tuple(a["stride"]), padding=tuple(a["padding"]),
                       dilation=tuple(a["dilation"]))
    return ctx.add(op, [x])


@tf.handler("binary_linear")
def _binary_linear_handler(node, ctx, a):
    if len(ctx.shape(a["x"])) != 2:
        raise ctx.unsupported("a BinaryLinear on a tensor that is not (N, features)", "flatten before the layer")
    x = ctx.tensor(ctx.resolve(a["x"]))
    sign, alpha, bias = _sign_alpha(ctx, a, "BinaryLinear")
    return ctx.add(rf.BinaryDense(weight=sign, alpha=alpha, bias=bias), [x])


def load_reverb_model(model: nn.Module, example_input, source: str = ""):
    """A ReverB network (time-first, `neurodeploy.nn.reverb`) -> FloatGraph with ReverB ops.

    `example_input`: one step's input (N, C, H, W) or (N, F) (not the (T, N, ...) sequence).
    """
    source = source or f"{type(model).__name__} (ReverB network)"
    x = example_input.detach().cpu().float() if isinstance(example_input, torch.Tensor) \
        else torch.as_tensor(np.asarray(example_input, dtype=np.float32))
    step = per_step_model(model)
    return tf.graph_from_program(tf.export_module(step, x, source), source)


load_model = load_reverb_model      # the name frontends.per_step's callers use
claims = is_reverb_model
