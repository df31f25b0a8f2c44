"""Kernels of the `rate` scheme: every layer updates once per time step, synapses delay by one.

Layers run in lock step like Loihi's cores: at step t a layer receives what its sources
emitted at step t-1.  The input encoder emits during steps 1..T; the network runs
T + depth steps so that the last input spikes reach the readout (depth = synapse hops on
the longest path).
"""
from __future__ import annotations

import numpy as np
import torch

from .neurons import RateIF
from ...sim import core


def encoder_step(v: torch.Tensor, codes: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RateEncoder: v <- v + k; spike when v >= T; subtract T."""
    v = v + codes
    s = v >= n_steps
    return v - s.to(v.dtype) * n_steps, s


def if_step(v: torch.Tensor, current: torch.Tensor, neuron: RateIF,
            unclamped: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RateIF: integrate, saturate to the state range, fire on v >= v_th_mant, reset.  `unclamped`,
    if a list, gets v + current before saturation."""
    limit = (1 << (neuron.state_bits - 1)) - 1
    if unclamped is not None:
        unclamped.append(v + current)
    v = torch.clamp(v + current, -limit, limit)
    s = v >= neuron.v_th_mant
    if neuron.reset == "subtract":
        v = v - s.to(v.dtype) * neuron.v_th_mant
    else:
        v = torch.where(s, torch.zeros_like(v), v)
    return v, s


def run_batch(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
              probe: core.Probe | None = None) -> core.BatchResult:
    """One batch of a `rate` network, step by step: codes = spike counts.  `probe` gets each layer's
    membrane peak (before saturation) and the readout's value after every step."""
    graph = prep.graph
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    enc = graph.input
    k0 = core.input_codes(enc, xt)
    n = xt.shape[0]
    t_in = enc.neuron.n_steps
    layers = graph.neuron_layers()
    zeros = {l.name: torch.zeros((n,) + tuple(l.shape), dtype=torch.int64, device=prep.device) for l in layers}
    # the readout starts at its bias; IF neurons at v_init and add their bias every step
    v = {l.name: (zeros[l.name] + core.layer_bias(l, zeros[l.name])) if l.is_readout else zeros[l.name] + l.neuron.v_init
         for l in layers}
    step_bias = {l.name: core.layer_bias(l, zeros[l.name]) for l in layers if not l.is_readout}
    v_enc = torch.full_like(k0, t_in // 2)
    prev = {l.name: torch.zeros((n,) + tuple(l.shape), dtype=torch.uint8, device=prep.device) for l in layers}
    prev[enc.name] = torch.zeros_like(k0, dtype=torch.uint8)
    counts = {name: torch.zeros_like(t, dtype=torch.int64) for name, t in prev.items()}
    for t in range(t_in + core.depth(graph)):
        now = {}
        if t < t_in:
            v_enc, s = encoder_step(v_enc, k0, t_in)
            now[enc.name] = s.to(torch.uint8)
        else:
            now[enc.name] = torch.zeros_like(prev[enc.name])
        for layer in layers:
            current = sum(core.branch_current(pb, prev[pb.source]) for pb in prep.branches[layer.name])
            if layer.is_readout:
                v[layer.name] = v[layer.name] + current
                if probe is not None:
                    probe.peak(layer.name, v[layer.name])
                    probe.readout(v[layer.name], layer.neuron.output_scale)
                continue
            raw = [] if probe is not None else None
            v[layer.name], s = if_step(v[layer.name], current + step_bias[layer.name], layer.neuron, raw)
            if probe is not None:
                probe.peak(layer.name, raw[0])
            now[layer.name] = s.to(torch.uint8)
        for name, s in now.items():
            counts[name] += s
        prev.update(now)
    u = v[graph.output.name]
    value = (u.to(torch.float64) * float(graph.output.neuron.output_scale)).to(torch.float32)
    codes = {name: c for name, c in counts.items() if name != graph.output.name} if record_codes else {}
    spikes = {name: int(c.sum()) for name, c in counts.items() if name != graph.output.name}
    return core.BatchResult(value.reshape(n, -1), u, codes, spikes)
