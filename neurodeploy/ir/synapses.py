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

from .fields import int_array, integer, ints, pair

# In a compiled network every weight is an integer mantissa within the target's signed width.
_mantissas = lambda: int_array("-weight_mant_max", "weight_mant_max")    # noqa: E731


@dataclass
class Conv:
    """2-D cross-correlation with zero padding (no bias: biases live in the layer)."""
    weight: np.ndarray = _mantissas()
    stride: tuple = pair(1, default=(1, 1))
    padding: tuple = pair(0, default=(0, 0))
    dilation: tuple = pair(1, default=(1, 1))
    groups: int = integer(1, 1 << 16, default=1)


@dataclass
class Dense:
    """y = weight @ x."""
    weight: np.ndarray = _mantissas()


@dataclass
class ChannelScale:
    """y[c] = weight[c] * x[c] (a diagonal weight: identity shortcuts, scaled skips)."""
    weight: np.ndarray = _mantissas()


@dataclass
class SumPool:
    """Sum over kernel windows (average pooling with its 1/k^2 folded into the weights)."""
    kernel: tuple = pair(1)
    stride: tuple = pair(1)
    padding: tuple = pair(0, default=(0, 0))


@dataclass
class MaxPool:
    """Max over kernel windows of a source's values (exact on quantised codes).

    padding: (top, bottom, left, right) rows/columns around the source that never win (as ONNX's
    and PyTorch's -inf); the bottom/right ones also hold ceil_mode's partial windows.  Every window
    must hold at least one real element (`ir.validate` checks it), so on values >= 0 (codes, spike
    trains) padding with 0 gives the same max: that is how the spiking kernels pad."""
    kernel: tuple = pair(1)
    stride: tuple = pair(1)
    padding: tuple = ints(4, default=(0, 0, 0, 0),
                          doc="(top, bottom, left, right) that never win; every window holds a real element")

    def out_hw(self, hw: tuple) -> tuple:
        """(H, W) of the output for an (H, W) source (floor of the padded windows)."""
        top, bottom, left, right = self.padding
        return tuple((n + pb + pe - k) // s + 1 for n, k, s, pb, pe in
                     zip(hw, self.kernel, self.stride, (top, left), (bottom, right)))

    def window_problem(self, hw: tuple) -> str | None:
        """None when every window over an (H, W) source holds at least one real element (then zero
        padding of values >= 0 gives the true max), else what is wrong."""
        top, bottom, left, right = self.padding
        for axis, n, k, s, pb, o in zip(("rows", "columns"), hw, self.kernel, self.stride, (top, left),
                                        self.out_hw(hw)):
            if pb >= k or (o - 1) * s >= pb + n:    # the first window ends before, the last starts after the data
                return f"a window over {axis} holds only padding (padding {tuple(self.padding)}, " \
                       f"kernel {tuple(self.kernel)})"
        return None


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
