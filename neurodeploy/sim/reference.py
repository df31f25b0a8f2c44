"""Integer reference of the quantised ANN: no time steps, no spikes, numpy int64 only.

Written independently of the simulator (which works on spike planes with torch float
kernels): here every layer computes U = sum_b (branch_b(codes_src) << weight_exp) + bias in
exact int64 arithmetic with its own im2col convolution, then code = clip(floor(U / D), 0, Q).
`verify` compares the SNN's decoded spikes against these codes layer by layer.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..ir import synapses as syn
from ..ir.spiking import InputEncoder, SpikingGraph


def _windows(x: np.ndarray, kernel, stride, padding=(0, 0), dilation=(1, 1)) -> np.ndarray:
    """(N, C, H, W) -> (N, C, OH, OW, kH, kW) windows of the zero-padded input."""
    ph, pw = padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = kernel
    dh, dw = dilation
    win = sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return win[:, :, ::stride[0], ::stride[1], ::dh, ::dw]


def _conv(x: np.ndarray, op: syn.Conv) -> np.ndarray:
    w = np.asarray(op.weight, dtype=np.int64)
    g = op.groups
    win = _windows(x, w.shape[2:], op.stride, op.padding, op.dilation)
    cin_g, cout_g = x.shape[1] // g, w.shape[0] // g
    outs = [np.einsum("nchwij,ocij->nohw", win[:, i * cin_g:(i + 1) * cin_g],
                      w[i * cout_g:(i + 1) * cout_g], optimize=True) for i in range(g)]
    return np.concatenate(outs, axis=1)


def apply_op_int(op, x: np.ndarray) -> np.ndarray:
    if isinstance(op, syn.Conv):
        return _conv(x, op)
    if isinstance(op, syn.Dense):
        return x @ np.asarray(op.weight, dtype=np.int64).T
    if isinstance(op, syn.ChannelScale):
        w = np.asarray(op.weight, dtype=np.int64)
        return x * w.reshape((1, -1) + (1,) * (x.ndim - 2))
    if isinstance(op, syn.SumPool):
        return _windows(x, op.kernel, op.stride, op.padding).sum(axis=(-2, -1))
    if isinstance(op, syn.MaxPool):
        top, bottom, left, right = op.padding      # padding never wins (as ONNX's -inf)
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), 
                   constant_values=np.iinfo(x.dtype).min if x.dtype.kind in "iu" else -np.inf)
        return _windows(x, op.kernel, op.stride).max(axis=(-2, -1))
    if isinstance(op, syn.Flatten):
        return x.reshape(x.shape[0], -1)
    raise TypeError(type(op).__name__)


def input_codes_ref(enc: InputEncoder, x: np.ndarray) -> np.ndarray:
    def chan(a):
        a = np.asarray(a, dtype=np.float64)
        return a if a.ndim == 0 else a.reshape((1, -1) + (1,) * (x.ndim - 2))
    x = np.asarray(x, dtype=np.float64)
    if any(getattr(enc, "pad", ())):          # the first layer's zero padding, in the input's units
        top, bottom, left, right = enc.pad
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    k = np.floor(x * chan(enc.in_scale) + chan(enc.offset))
    return np.clip(k, 0, enc.neuron.code_max).astype(np.int64)


def pre_activation(layer, codes: dict) -> np.ndarray:
    """A layer's integer pre-activation U = Σ_b (W_b·codes[source_b]) << weight_exp_b + its whole
    run's bias, from its sources' codes."""
    u = 0
    for b in layer.branches:
        v = codes[b.source]
        for op in b.ops:
            v = apply_op_int(op, v)
        u = u + v * (1 << b.weight_exp)
    bias = layer.neuron.total_bias(layer.bias)
    return u + bias.reshape((1, -1) + (1,) * (np.ndim(u) - 2))


def reference(graph: SpikingGraph, x: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(codes per spiking layer incl. the input, readout state U) for a batch x."""
    codes = {graph.input.name: input_codes_ref(graph.input, x)}
    u = None
    for layer in graph.neuron_layers():
        u = pre_activation(layer, codes)
        if layer.is_readout:
            return codes, u
        codes[layer.name] = layer.neuron.reference_code(u)     # floor(U / D), clipped; sws rounds
    return codes, u
