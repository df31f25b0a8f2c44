"""The cost report's time schedule: when each layer of a compiled network is active.

A scheme whose neurons have phases (`Scheme.phased`: bitplane) runs layer by layer: a layer
accumulates while its sources emit, then emits its own T planes.  Neuron models without phases
(rate: every layer updates every step) are active in every step of the inference; their windows
are None here and `costs.cost_report` resolves them with the latency.
"""
from __future__ import annotations

from ..ir.spiking import SpikingGraph


def schedule(net: SpikingGraph, phased: bool) -> dict:
    """Per layer: emission window (start, end) or None, steps in which it accumulates, active steps,
    and the step after which its output is complete ("ready")."""
    out, windows = {}, {}
    enc = net.input
    if phased:
        t_in = int(enc.neuron.n_steps)
        windows[enc.name] = (0, t_in)
        out[enc.name] = {"emit": (0, t_in), "accumulate_steps": 0, "active_steps": t_in, "ready": t_in}
    else:
        windows[enc.name] = None
        out[enc.name] = {"emit": None, "accumulate_steps": 0, "active_steps": None, "ready": None}
    for layer in net.neuron_layers():
        src = [windows[b.source] for b in layer.branches]
        if not (phased and all(w is not None for w in src)):
            windows[layer.name] = None
            out[layer.name] = {"emit": None, "accumulate_steps": None, "active_steps": None, "ready": None}
            continue
        acc = set().union(*(range(a, b) for a, b in src))
        start = max(b for _, b in src)
        t = 0 if layer.is_readout else int(layer.neuron.n_steps)
        windows[layer.name] = (start, start + t)
        out[layer.name] = {"emit": None if layer.is_readout else (start, start + t),
                           "accumulate_steps": len(acc), "active_steps": len(acc | set(range(start, start + t))),
                           "ready": start + t}
    return out
