"""Kernels of the `rate` scheme: every layer updates once per time step, synapses delay by one.

Layers run in lock step like Loihi's cores: at step t a layer receives what its sources
emitted at step t-1.  The input encoder emits during steps 1..T; the network runs
T + depth steps so that the last input spikes reach the readout (depth = synapse hops on
the longest path).
"""
from __future__ import annotations

import torch

from ..ir import neurons as nrn


def encoder_step(v: torch.Tensor, codes: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RateEncoder: v <- v + k; spike when v >= T; subtract T."""
    v = v + codes
    s = v >= n_steps
    return v - s.to(v.dtype) * n_steps, s


def if_step(v: torch.Tensor, current: torch.Tensor, neuron: nrn.RateIF) -> tuple[torch.Tensor, torch.Tensor]:
    """RateIF: integrate, saturate to the state range, fire on v >= v_th_mant, reset."""
    limit = (1 << (neuron.state_bits - 1)) - 1
    v = torch.clamp(v + current, -limit, limit)
    s = v >= neuron.v_th_mant
    if neuron.reset == "subtract":
        v = v - s.to(v.dtype) * neuron.v_th_mant
    else:
        v = torch.where(s, torch.zeros_like(v), v)
    return v, s


def depth(graph) -> int:
    """Synapse hops on the longest path from the encoder to the readout."""
    hops = {graph.input.name: 0}
    for layer in graph.neuron_layers():
        hops[layer.name] = 1 + max(hops[b.source] for b in layer.branches)
    return hops[graph.output.name]
