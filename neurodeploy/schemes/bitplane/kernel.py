"""Neuron kernels of the `bitplane` scheme, on torch int64 tensors (exact integers).

Spike trains are stored as planes: a tensor (N, T, *shape) of 0/1, plane t = time step t+1,
most significant bit first.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import NeurodeployError
from .neurons import BitplaneIF
from ...ir.synapse_ops import apply_ops
from ...sim import core


def encode_planes(codes: torch.Tensor, n_steps: int) -> torch.Tensor:
    """BitplaneEncoder: integer codes (N, *shape) -> spike planes (N, T, *shape), MSB first."""
    shifts = torch.arange(n_steps - 1, -1, -1, device=codes.device).reshape((1, n_steps) + (1,) * (codes.ndim - 1))
    return ((codes.unsqueeze(1) >> shifts) & 1).to(torch.uint8)


def horner(plane_currents: torch.Tensor, partials: list | None = None) -> torch.Tensor:
    """Accumulation phase: U <- 2U + I(t) over the planes axis (dim 1), from U = 0.  `partials`,
    if a list, gets every intermediate U (what the membrane holds during accumulation)."""
    u = torch.zeros_like(plane_currents[:, 0])
    for t in range(plane_currents.shape[1]):
        u = 2 * u + plane_currents[:, t]
        if partials is not None:
            partials.append(u)
    return u


def emit(u: torch.Tensor, neuron: BitplaneIF) -> torch.Tensor:
    """Emission phase of BitplaneIF: clamp, then thresholds D*2^(T-1) ... D, subtract on spike."""
    u = torch.minimum(u, torch.as_tensor(neuron.code_max * neuron.v_th_mant, dtype=u.dtype, device=u.device))
    planes = []
    for j in range(neuron.n_steps):
        theta = neuron.v_th_mant << (neuron.n_steps - 1 - j)
        s = u >= theta
        u = u - s.to(u.dtype) * theta
        planes.append(s.to(torch.uint8))
    return torch.stack(planes, dim=1)


def decode_planes(planes: torch.Tensor) -> torch.Tensor:
    """Spike planes (N, T, ...) -> integer codes, weighting plane t by 2^(T-1-t)."""
    t = planes.shape[1]
    w = (1 << torch.arange(t - 1, -1, -1, device=planes.device, dtype=torch.int64))
    w = w.reshape((1, t) + (1,) * (planes.ndim - 2))
    return (planes.to(torch.int64) * w).sum(dim=1)


def bitserial_maxpool(planes: torch.Tensor, kernel: tuple, stride: tuple) -> torch.Tensor:
    """Max pooling of MSB-first spike trains, one plane at a time (exact on the codes).

    A window's output bit is the OR of the bits of inputs still tied for the maximum;
    an input whose bit falls below the output bit drops out of the race.
    """
    n, t, c, h, w = planes.shape
    x = planes.reshape(n * t, c, h, w).to(torch.float32)
    cols = F.unfold(x, kernel, stride=stride)                     # (n*t, c*k, L)
    k = kernel[0] * kernel[1]
    cols = cols.reshape(n, t, c, k, -1)
    alive = torch.ones_like(cols[:, 0])
    out = []
    for step in range(t):
        bits = cols[:, step] * alive
        o = bits.amax(dim=2, keepdim=True)
        alive = alive * (1 - (o - bits).clamp(min=0))             # drop inputs that lost this bit
        out.append(o.squeeze(2))
    oh = (h - kernel[0]) // stride[0] + 1
    ow = (w - kernel[1]) // stride[1] + 1
    return torch.stack(out, dim=1).reshape(n, t, c, oh, ow).to(torch.uint8)


def run_batch(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
              probe: core.Probe | None = None) -> core.BatchResult:
    """One batch of a `bitplane` network: codes = the decoded bit planes of every layer.  `probe`
    gets each layer's membrane peak (branch by branch, as the planes arrive; the readout only
    holds a value after the last plane, so no per-step readout)."""
    graph = prep.graph
    planes: dict[str, torch.Tensor] = {}
    codes, spikes = {}, {}
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)   # copy: x may be a read-only memmap
    enc = graph.input
    k0 = core.input_codes(enc, xt)
    planes[enc.name] = encode_planes(k0, enc.neuron.n_steps)
    spikes[enc.name] = int(planes[enc.name].sum())
    if record_codes:
        codes[enc.name] = k0
    n = xt.shape[0]
    u = None
    for layer in graph.neuron_layers():
        u = None
        for pb in prep.branches[layer.name]:
            p = planes[pb.source]
            if pb.bitserial_maxpool is not None:
                p = bitserial_maxpool(p, pb.bitserial_maxpool.kernel, pb.bitserial_maxpool.stride)
            t = p.shape[1]
            flat = p.reshape((n * t,) + tuple(p.shape[2:])).to(pb.dtype)
            current = apply_ops(pb.ops, flat, pb.weights).to(torch.int64)
            partials = [] if probe is not None else None
            acc = horner(current.reshape((n, t) + tuple(current.shape[1:])), partials) << pb.weight_exp
            if probe is not None:   # the membrane holds the earlier branches' sum plus this one's partials
                base = 0 if u is None else u
                probe.peak(layer.name, *[base + (p << pb.weight_exp) for p in partials])
            u = acc if u is None else u + acc
        u = u + core.layer_bias(layer, u)
        if probe is not None:
            probe.peak(layer.name, u)
        if layer.is_readout:
            break
        if not isinstance(layer.neuron, BitplaneIF):
            raise NeurodeployError(f"the simulator has no kernel for {type(layer.neuron).__name__}",
                                   f"layer '{layer.name}'")
        out = emit(u, layer.neuron)
        planes[layer.name] = out
        spikes[layer.name] = int(out.sum())
        if record_codes:
            codes[layer.name] = decode_planes(out)
    readout = graph.output
    value = (u.to(torch.float64) * float(readout.neuron.output_scale)).to(torch.float32)
    return core.BatchResult(value.reshape(n, -1), u, codes, spikes)
