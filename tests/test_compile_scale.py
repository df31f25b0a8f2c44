"""The compiler's work grows with weights and neurons, not with expanded connections, and the
shortcuts that make it so give the same numbers as the direct computation, bit for bit.

(Wall-clock time is never asserted: `benchmarks/` prints it.  What is checked here is that each
shortcut equals the computation it replaces, on chains that exercise its cases.)
"""
import unittest.mock

import numpy as np
import pytest
import torch

from neurodeploy.ir import synapses as syn
from neurodeploy.ir.synapse_ops import abs_bound, apply_ops
from neurodeploy.lowering.quantize import bias_format, round_half_away
from neurodeploy.target import load_target


def _direct_abs_bound(ops, in_shape, in_max):
    """abs_bound's definition: the |W| chain applied to a constant input."""
    abs_ops = [type(op)(**{**op.__dict__, "weight": np.abs(op.weight)}) if isinstance(op, syn.WEIGHTED) else op
               for op in ops]
    return apply_ops(abs_ops, torch.full((1,) + in_shape, float(in_max), dtype=torch.float64))[0].numpy()


def _int_weight(shape, seed, lo=-127, hi=128):
    return np.random.default_rng(seed).integers(lo, hi, size=shape).astype(np.float64)


@pytest.mark.parametrize("ops,shape,in_max", [
    ([syn.Conv(_int_weight((8, 4, 3, 3), 0), (1, 1), (1, 1))], (4, 9, 9), 7),
    ([syn.Conv(_int_weight((6, 2, 3, 3), 1), (2, 2), (2, 2), (2, 2), 3)], (6, 11, 10), 255),   # groups, dilation
    ([syn.Conv(_int_weight((16, 8, 1, 1), 2), (2, 2))], (8, 8, 8), 7),                        # option-B shortcut
    ([syn.SumPool((2, 2), (2, 2)), syn.Conv(_int_weight((5, 3, 3, 3), 3), (1, 1), (1, 1)), syn.Flatten()],
     (3, 8, 8), 15),
    ([syn.SumPool((3, 3), (1, 1), (1, 1)), syn.Conv(_int_weight((4, 2, 3, 3), 4), (1, 1), (1, 1))], (2, 6, 6), 3),
    ([syn.Conv(_int_weight((3, 2, 3, 3), 5), (1, 1), (1, 1)), syn.SumPool((2, 2), (2, 2))], (2, 6, 6), 3),  # pool after
    ([syn.Conv(np.random.default_rng(6).normal(size=(4, 3, 3, 3)), (1, 1), (1, 1))], (3, 5, 5), 7),  # real weights
    ([syn.Conv(_int_weight((4, 3, 3, 3), 7), (1, 1), (1, 1))], (3, 5, 5), 0.5),                       # real bound
    ([syn.SumPool((2, 2), (2, 2)), syn.Flatten(), syn.Dense(_int_weight((10, 8), 8))], (2, 4, 4), 7),
    ([syn.ChannelScale(_int_weight((3,), 9))], (3, 4, 4), 7),
])
def test_abs_bound_equals_the_direct_chain(ops, shape, in_max):
    got, want = abs_bound(ops, shape, in_max), _direct_abs_bound(ops, shape, in_max)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)


def test_abs_bound_of_a_wide_conv_sums_channels_first():
    """A 256-channel 3x3 convolution: the channel-summed kernel (one input plane) gives what the
    whole convolution gives -- exactly, since every partial sum is an integer below 2**53."""
    w = _int_weight((32, 256, 3, 3), 10)
    ops = [syn.Conv(w, (1, 1), (1, 1))]
    convs = []
    real = torch.nn.functional.conv2d

    def spy(x, weight, *a, **k):
        convs.append(tuple(weight.shape))
        return real(x, weight, *a, **k)
    with unittest.mock.patch.object(torch.nn.functional, "conv2d", spy):
        got = abs_bound(ops, (256, 8, 8), 255)
    assert convs == [(32, 1, 3, 3)]                 # one input plane, not 256
    assert np.array_equal(got, _direct_abs_bound(ops, (256, 8, 8), 255))


def test_round_half_away_is_sign_symmetric_round_half_up():
    rng = np.random.default_rng(0)
    ties = np.arange(-1000, 1000) + 0.5
    x = np.concatenate([rng.normal(size=100_000) * 300, ties, np.nextafter(ties, 0), np.nextafter(ties, 2 * ties),
                        [0.0, -0.0, 0.49999999999999994, -0.49999999999999994, 2.0 ** 52 + 1, -(2.0 ** 52 + 1),
                         2.0 ** 53, -2.0 ** 53]])
    want = (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)
    assert np.array_equal(round_half_away(x), want)
    assert np.array_equal(round_half_away(ties), np.where(ties > 0, np.ceil(ties), np.floor(ties)).astype(np.int64))


def test_round_half_away_saturates_instead_of_wrapping():
    """A value beyond int64 (a fuzzed bias of -1e30) used to cast to -2^63, whose |.| overflows to a
    negative number that passed bias_format's `<= mant_max`; now it saturates at ±2^62 and every
    format refuses it.  NaN is refused outright."""
    big = np.array([1e30, -1e30, np.inf, -np.inf, 2.0 ** 63, -(2.0 ** 64)])
    assert np.array_equal(round_half_away(big), np.array([1, -1, 1, -1, 1, -1]) << 62)
    target = load_target("loihi2")
    assert bias_format(round_half_away(np.array([3.0, -1e30])), target) == (None, None)
    with pytest.raises(ValueError, match="NaN"):
        round_half_away(np.array([1.0, np.nan]))
