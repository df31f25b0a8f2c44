"""Kernels of the `sdnn` scheme: sigma-delta neurons with graded spikes, bit-exact with Lava.

Lock-step like Loihi's cores: at step t every layer receives W . payload_src(t-1) (each
synapse delays by one step) and updates as `schemes.sdnn.neurons.SigmaDelta` documents.  The input
encoder sends its codes once, at step 0.  A feed-forward network has settled after
depth + 1 steps (depth = synapse hops on the longest path): nothing changes afterwards.
`codes` per layer = the sum of its payloads (its settled activation), the input's codes
for the input; the readout's `output_state` = its sigma plus the host-added bias.
"""
from __future__ import annotations

import numpy as np
import torch

from . import neurons as sd
from ...ir.spiking import SpikingGraph
from ...sim import core


def settle_steps(graph: SpikingGraph) -> int:
    """Steps after which every layer has settled (input sent at step 0)."""
    return core.depth(graph) + 1


def sigma_delta_step(state: dict, a_in: torch.Tensor, bias: torch.Tensor, neuron: sd.SigmaDelta) -> torch.Tensor:
    """One PySigmaDeltaModelFixed update; returns the payload (s >> state_exp)."""
    k = neuron.spike_exp + neuron.state_exp
    state["sigma"] = state["sigma"] + a_in
    act = torch.clamp(state["sigma"] + (bias << k), min=0)
    delta = act - state["act"] + state["residue"]
    s = torch.where(delta.abs() >= (int(neuron.vth) << k), delta, torch.zeros_like(delta))
    state["residue"] = delta - s
    state["act"] = act
    return s >> neuron.state_exp


wrap24 = core.wrap24
branch_current = core.lava_branch_current     # a convolution's output wraps at 24 bits, as in Lava


def run_sdnn(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
             n_steps: int | None = None, trace: list | None = None,
             states: dict | None = None, probe: core.Probe | None = None) -> core.BatchResult:
    """Run one batch for `n_steps` (default: until settled).  `trace`, if a list, receives
    per step a dict layer -> payload tensor; `states`, if a dict, receives per layer the final
    {"sigma", "act", "residue"} tensors (for comparisons with Lava); `probe` gets each layer's
    peak |sigma| and |act| (24-bit registers on the chip) and the readout's value after every step."""
    graph = prep.graph
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    enc = graph.input
    k0 = core.input_codes(enc, xt)
    if enc.neuron.vth:                  # Lava's Delta: a first delta below its threshold is never sent
        k0 = torch.where(k0.abs() >= enc.neuron.vth, k0, torch.zeros_like(k0))
    n = xt.shape[0]
    layers = graph.neuron_layers()
    dev = prep.device

    def zeros(shape):
        return torch.zeros((n,) + tuple(shape), dtype=torch.int64, device=dev)

    state = {l.name: {"sigma": zeros(l.shape), "act": zeros(l.shape), "residue": zeros(l.shape)}
             for l in layers}
    bias = {l.name: core.layer_bias(l, zeros(l.shape)) for l in layers}
    prev = {l.name: zeros(l.shape) for l in layers}
    prev[enc.name] = torch.zeros_like(k0)
    codes = {name: torch.zeros_like(t) for name, t in prev.items()}
    spikes = {name: 0 for name in prev}
    steps = settle_steps(graph) if n_steps is None else n_steps
    for t in range(steps):
        now = {enc.name: k0 if t == 0 else torch.zeros_like(k0)}
        for layer in layers:
            a_in = sum(branch_current(pb, prev[pb.source]) for pb in prep.branches[layer.name])
            if layer.is_readout:
                state[layer.name]["sigma"] = state[layer.name]["sigma"] + a_in
                if probe is not None:
                    probe.peak(layer.name, state[layer.name]["sigma"])
                    probe.readout(state[layer.name]["sigma"] + bias[layer.name], layer.neuron.output_scale)
                continue
            now[layer.name] = sigma_delta_step(state[layer.name], a_in, bias[layer.name], layer.neuron)
            if probe is not None:
                probe.peak(layer.name, state[layer.name]["sigma"], state[layer.name]["act"])
        for name, p in now.items():
            codes[name] += p
            spikes[name] += int(torch.count_nonzero(p))
        if trace is not None:
            trace.append({k: v.clone() for k, v in now.items()})
        prev.update(now)
    if states is not None:
        states.update(state)
    out = graph.output
    u = state[out.name]["sigma"] + bias[out.name]
    value = (u.to(torch.float64) * float(out.neuron.output_scale)).to(torch.float32)
    codes.pop(out.name, None)
    spikes.pop(out.name, None)
    return core.BatchResult(value.reshape(n, -1), u, codes if record_codes else {}, spikes)

