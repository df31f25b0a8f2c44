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
        return F.max_pool2d(x, op.kernel, op.stride)
    if isinstance(op, syn.Flatten):
        return x.reshape(x.shape[0], -1)
    raise TypeError(f"unknown synapse op {type(op).__name__}")


def apply_ops(ops: list, x: torch.Tensor, weights: dict | None = None) -> torch.Tensor:
    """Run the chain; `weights` may map op index -> a prepared weight tensor."""
    for i, op in enumerate(ops):
        x = apply_op(op, x, None if weights is None else weights.get(i))
    return x


def abs_bound(ops: list, in_shape: tuple, in_max: float) -> np.ndarray:
    """Per-output max of |branch(x)| over all inputs with 0 <= x <= in_max (float64, exact
    for integer weights while the result stays below 2**53)."""
    abs_ops = []
    for op in ops:
        if isinstance(op, syn.WEIGHTED):
            op = type(op)(**{**op.__dict__, "weight": np.abs(np.asarray(op.weight, dtype=np.float64))})
        abs_ops.append(op)
    x = torch.full((1,) + tuple(in_shape), float(in_max), dtype=torch.float64)
    return apply_ops(abs_ops, x)[0].numpy()
