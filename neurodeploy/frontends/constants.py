"""Elementwise constants of a model as float-graph Scale/Shift operands, the same for every front end.

ONNX and PyTorch broadcast a constant against a tensor numpy-style, aligned on the *last*
axis: a constant of shape (4,) on an (N, 4, 4, 4) tensor varies along W, not along the
channels.  `broadcast_constant` turns the constant into the float graph's per-sample form
(see `ir.float_graph.Scale`): a scalar (), a per-channel (C,) array, or an array of the
tensor's per-sample rank where it really varies along other axes -- collapsing every axis
along which it does not vary, so that one network written either way gives one graph.
"""
from __future__ import annotations

import numpy as np


class BroadcastError(ValueError):
    """The constant cannot be an elementwise operand of this tensor (reason in the message)."""


def broadcast_constant(c, full_shape: tuple) -> np.ndarray:
    """Per-sample operand for a constant `c` broadcast against a tensor of `full_shape`
    (batch first).  Raises BroadcastError when broadcasting would grow the tensor or the
    constant differs between samples."""
    c = np.asarray(c, dtype=np.float64)
    rank = len(full_shape)
    if c.ndim > rank:
        raise BroadcastError(f"a constant of shape {list(c.shape)} has more axes than the tensor {list(full_shape)}")
    c = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if any(d not in (1, s) for d, s in zip(c.shape, full_shape)):
        raise BroadcastError(f"a constant of shape {list(c.shape)} does not broadcast to the tensor's shape "
                             f"{list(full_shape)} without enlarging it")
    if c.shape[0] != 1 and not np.all(c == c[:1]):
        raise BroadcastError(f"a constant of shape {list(c.shape)} differs between samples of the batch")
    per = c[0]
    # collapse every axis along which the constant does not vary
    for axis in range(per.ndim):
        if per.shape[axis] > 1 and np.all(per == np.take(per, [0], axis=axis)):
            per = np.take(per, [0], axis=axis)
    if per.size == 1:
        return per.reshape(())
    if per.ndim >= 1 and all(d == 1 for d in per.shape[1:]):
        return per.reshape(-1)          # per channel (C,)
    return per
