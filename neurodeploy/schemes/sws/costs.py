"""The `sws` scheme's cost model: operations per frame as the paper counts them (Eq. 10)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...ir.spiking import SpikingGraph
from ...sim import core
from .kernel import run_digits


@dataclass
class OpsPerFrame:
    amplifications: float           # Σ_l steps_l · N_l  (first term of Eq. 10)
    synaptic_ops: float             # Σ_l Σ_τ f_out · n^l(τ)  (second term), mean per frame
    per_layer: dict                 # layer -> {"neurons", "steps", "spikes", "synops"}

    @property
    def total(self) -> float:
        return self.amplifications + self.synaptic_ops


def ops_per_frame(graph: SpikingGraph, x: np.ndarray, batch_size: int = 256, device: str = "cpu",
                  count_encoder: bool = True) -> OpsPerFrame:
    """Operations per frame as the paper's Eq. 10, from a simulation of x.

    Amplifications: every TSA neuron updates (β·u) once per local step, Tc + Ts steps for a
    hidden layer, Tc for the readout (which amplifies but does not spike); the host encoder
    does none.  Synaptic ops: each ±1 spike of a layer (the encoder's digits included when
    count_encoder) costs its fan-out.
    """
    prep = core.prepare(graph, device)
    consumers: dict[str, list] = {}
    for layer in graph.neuron_layers():
        for b in layer.branches:
            consumers.setdefault(b.source, []).append(b)
    fan = {}
    for l in graph.layers:
        if l.name in consumers:
            fan[l.name] = sum(core.fanout(b.ops, l.shape) for b in consumers[l.name])
    tc = int(graph.input.neuron.coding_steps)
    per = {}
    syn_total = {name: 0.0 for name in fan}
    spk_total = {name: 0 for name in fan}
    for _, xb in core.iter_batches(x, batch_size):
        _, _, _, digits = run_digits(prep, xb, record_codes=False, keep_digits=True)
        for name, dg in digits.items():
            cnt = (dg != 0).sum(dim=1).to(torch.float64).cpu().numpy()     # (N, *shape)
            spk_total[name] += int(cnt.sum())
            syn_total[name] += float((cnt * fan[name][None]).sum())
    n = len(x)
    amps = 0.0
    for l in graph.layers:
        neurons = int(np.prod(l.shape))
        if l is graph.input:
            steps = 0
        elif getattr(l, "is_readout", False):
            steps = tc
        else:
            steps = int(l.neuron.steps)
        amps += steps * neurons
        skip = l is graph.input and not count_encoder
        per[l.name] = {"neurons": neurons, "steps": steps,
                       "spikes": spk_total.get(l.name, 0) / n,
                       "synops": 0.0 if skip else syn_total.get(l.name, 0.0) / n}
    synops = sum(v["synops"] for v in per.values())
    return OpsPerFrame(float(amps), float(synops), per)
