"""Linear synapse ops of the spiking IR.

A branch of a layer is a chain of these ops applied to the spikes (or codes) of a source
layer.  Before quantisation the weights are float64 ("real weights", in units of the
target neuron's threshold step); after quantisation they are integer mantissas and the
branch's `weight_exp` scales the result by 2**weight_exp.  Layouts follow PyTorch:
Conv weight (C_out, C_in/groups, kH, kW), Dense weight (out, in), tensors (C, H, W) or (F,).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Conv:
    """2-D cross-correlation with zero padding (no bias: biases live in the layer)."""
    weight: np.ndarray
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1


@dataclass
class Dense:
    """y = weight @ x."""
    weight: np.ndarray


@dataclass
class ChannelScale:
    """y[c] = weight[c] * x[c] (a diagonal weight: identity shortcuts, scaled skips)."""
    weight: np.ndarray


@dataclass
class SumPool:
    """Sum over kernel windows (average pooling with its 1/k^2 folded into the weights)."""
    kernel: tuple
    stride: tuple
    padding: tuple = (0, 0)


@dataclass
class MaxPool:
    """Max over kernel windows of a source's values (exact on quantised codes)."""
    kernel: tuple
    stride: tuple


@dataclass
class Flatten:
    """(C, H, W) -> (C*H*W,) in PyTorch order."""


WEIGHTED = (Conv, Dense, ChannelScale)
SYNAPSE_TYPES = {c.__name__: c for c in (Conv, Dense, ChannelScale, SumPool, MaxPool, Flatten)}


def weighted_op(ops: list):
    """The one weighted op of a branch."""
    found = [op for op in ops if isinstance(op, WEIGHTED)]
    assert len(found) == 1, ops
    return found[0]
