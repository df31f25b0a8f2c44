"""Apply a branch's synapse ops to a batch of tensors (torch, any float dtype).

Used by the simulator (on spike planes) and by the compiler (to bound accumulators).
Tensors are (N, C, H, W) or (N, F).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..ir import synapses as syn


def apply_op(op, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(op, syn.Conv):
        w = weight if weight is not None else torch.as_tensor(np.asarray(op.weight), dtype=x.dtype)
        return F.conv2d(x, w, None, op.stride, op.padding, op.dilation, op.groups)
    if isinstance(op, syn.Dense):
        w = weight if weight is not None else torch.as_tensor(np.asarray(op.weight), dtype=x.dtype)
        return x @ w.T
    if isinstance(op, syn.ChannelScale):
        w = weight if weight is not None else torch.as_tensor(np.asarray(op.weight), dtype=x.dtype)
        return x * w.reshape((1, -1) + (1,) * (x.ndim - 2))
    if isinstance(op, syn.SumPool):
        k = op.kernel[0] * op.kernel[1]
        return F.avg_pool2d(x, op.kernel, op.stride, op.padding, divisor_override=1) if k > 1 else x
    if isinstance(op, syn.MaxPool):
        return max_pool(x, op)
    if isinstance(op, syn.Flatten):
        return x.reshape(x.shape[0], -1)
    raise TypeError(f"unknown synapse op {type(op).__name__}")


def max_pool(x: torch.Tensor, op: syn.MaxPool, pad_value: float | None = None) -> torch.Tensor:
    """A MaxPool op on (N, C, H, W): its padding holds `pad_value` (None: a value that never wins,
    -inf or the dtype's minimum).  Spiking kernels pad spike planes with 0, the same max on values
    >= 0 because every window holds a real element."""
    top, bottom, left, right = op.padding
    if top or bottom or left or right:
        if pad_value is None:
            pad_value = float("-inf") if x.dtype.is_floating_point else torch.iinfo(x.dtype).min
        x = F.pad(x, (left, right, top, bottom), value=pad_value)
    return F.max_pool2d(x, op.kernel, op.stride)


def apply_ops(ops: list, x: torch.Tensor, weights: dict | None = None) -> torch.Tensor:
    """Run the chain; `weights` may map op index -> a prepared weight tensor."""
    for i, op in enumerate(ops):
        x = apply_op(op, x, None if weights is None else weights.get(i))
    return x


def _window_out(size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a sliding window (PyTorch's formula, floor mode)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_shape(ops: list, shape: tuple) -> tuple:
    """The shape (without batch) after the chain, from the ops' parameters alone (what
    `apply_ops` would return, without computing it)."""
    shape = tuple(int(s) for s in shape)
    for op in ops:
        if isinstance(op, syn.Conv):
            kh, kw = np.shape(op.weight)[2:]
            shape = (int(np.shape(op.weight)[0]),
                     *(_window_out(n, k, s, p, d) for n, k, s, p, d in
                       zip(shape[1:], (kh, kw), op.stride, op.padding, op.dilation)))
        elif isinstance(op, syn.Dense):
            shape = (int(np.shape(op.weight)[0]),)
        elif isinstance(op, syn.MaxPool):
            shape = (shape[0], *op.out_hw(shape[1:]))
        elif isinstance(op, syn.SumPool):
            if op.kernel[0] * op.kernel[1] == 1:
                continue                                   # apply_op passes x through unchanged
            shape = (shape[0], *(_window_out(n, k, s, p) for n, k, s, p in
                                 zip(shape[1:], op.kernel, op.stride, op.padding)))
        elif isinstance(op, syn.Flatten):
            shape = (int(np.prod(shape)),)
        elif not isinstance(op, syn.ChannelScale):
            raise TypeError(f"unknown synapse op {type(op).__name__}")
    return shape


def abs_bound(ops: list, in_shape: tuple, in_max: float, exact: bool = True) -> np.ndarray:
    """Per-output max of |branch(x)| over all inputs with 0 <= x <= in_max (float64, exact
    for integer weights while the result stays below 2**53).  exact=False: real weights may take the
    channel-summed convolution too (another order of float64 sums: the same value up to rounding)."""
    abs_ops = []
    for op in ops:
        if isinstance(op, syn.WEIGHTED):
            op = type(op)(**{**op.__dict__, "weight": _abs_float64(op.weight)})
        abs_ops.append(op)
    summed = _channel_summed_conv(abs_ops, in_shape, in_max, exact)
    if summed is not None:
        return summed
    x = torch.full((1,) + tuple(in_shape), float(in_max), dtype=torch.float64)
    return apply_ops(abs_ops, x)[0].numpy()


def _abs_float64(weight) -> np.ndarray:
    """|weight| as a new float64 array: in the converted copy where the weight is not float64 already
    (integer mantissas: one temporary of the weight's size, not two)."""
    w = np.asarray(weight)
    if w.dtype == np.float64:
        return np.abs(w)
    a = w.astype(np.float64)
    return np.abs(a, out=a)


def _channel_summed_conv(abs_ops: list, in_shape: tuple, in_max: float, exact: bool = True) -> np.ndarray | None:
    """abs_bound of [sum pools..., Conv, Flatten...] with integer weights and bound, in work per
    output and kernel tap rather than per connection; None for any other chain.

    The input is in_max everywhere, and pools act per channel, so the convolution sees the same
    plane s in every input channel: out[o] = Σ_taps (Σ_i |W[o, i, tap]|) · s, one single-input
    convolution with the channel-summed kernel.  Integer terms make every partial sum exact in
    float64 (below 2**53), so the result equals the full convolution's bit for bit (exact=False: real
    weights and bounds too, equal up to float64 rounding)."""
    at = [i for i, op in enumerate(abs_ops) if isinstance(op, syn.WEIGHTED)]
    if len(at) != 1 or len(in_shape) != 3 or not isinstance(abs_ops[at[0]], syn.Conv) \
            or not all(isinstance(op, syn.SumPool) for op in abs_ops[:at[0]]) \
            or not all(isinstance(op, syn.Flatten) for op in abs_ops[at[0] + 1:]) \
            or (exact and not float(in_max).is_integer()):
        return None
    conv = abs_ops[at[0]]
    w = conv.weight
    if exact and not np.array_equal(w, np.floor(w)):
        return None
    plane = apply_ops(abs_ops[:at[0]], torch.full((1, 1) + tuple(in_shape[1:]), float(in_max), dtype=torch.float64))
    kernel = torch.from_numpy(w.sum(axis=1, keepdims=True))
    out = F.conv2d(plane, kernel, None, conv.stride, conv.padding, conv.dilation)
    if exact and out.numel() and float(out.max()) >= 2.0 ** 53:
        return None
    return apply_ops(abs_ops[at[0] + 1:], out)[0].numpy()
