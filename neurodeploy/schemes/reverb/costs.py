"""The `reverb` scheme's cost model: spikes and synaptic additions per sample, from a simulation."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...ir.spiking import SpikingGraph
from ...sim import core
from ...ir.synapse_ops import max_pool
from .kernel import prepare, run, timesteps


@dataclass
class Activity:
    """Mean per-sample activity of a reverb network (what the cost reports need).

    per_layer[name] = {"neurons", "steps", "spikes", "synops"}: spikes = nonzero payloads sent
    by the layer; synops = synaptic additions its payloads cause (each nonzero payload on a ±1
    synapse is one add/subtract; after a MaxPool only the window winners travel on).
    """
    per_layer: dict
    samples: int

    @property
    def spikes(self) -> float:
        return float(sum(v["spikes"] for v in self.per_layer.values()))

    @property
    def synaptic_ops(self) -> float:
        return float(sum(v["synops"] for v in self.per_layer.values()))


def activity(graph: SpikingGraph, x: np.ndarray, batch_size: int = 256, device: str = "cpu") -> Activity:
    """Spikes and synaptic operations per sample, from a simulation of x (exact per neuron)."""
    prep = prepare(graph, device)
    shapes = {l.name: tuple(l.shape) for l in graph.layers}
    consumers = [(pb, layer) for layer in graph.neuron_layers() for pb in prep.branches[layer.name]]
    fans = [core.fanout(pb.ops, core.shape_after(pb.bitserial_maxpool, shapes[pb.source])) for pb, _ in consumers]
    spikes, synops = {}, {}
    for _, xb in core.iter_batches(x, batch_size):
        r = run(prep, xb)
        for name, tr in r.trains.items():
            spikes[name] = spikes.get(name, 0.0) + float((tr != 0).sum())
        for (pb, _), fan in zip(consumers, fans):
            tr = r.trains[pb.source]
            if pb.bitserial_maxpool is not None:
                mp = pb.bitserial_maxpool
                flat = tr.reshape((-1,) + tuple(tr.shape[2:])).to(torch.float64)
                tr = max_pool(flat, mp, 0.0)
            cnt = (tr != 0).reshape(-1, int(np.prod(fan.shape))).sum(dim=0).to(torch.float64).cpu().numpy()
            synops[pb.source] = synops.get(pb.source, 0.0) + float(cnt @ fan.reshape(-1))
    n = max(len(x), 1)
    t = timesteps(graph)
    per = {}
    for l in graph.layers:
        steps = 0 if l is graph.input else t
        per[l.name] = {"neurons": int(np.prod(l.shape)), "steps": steps,
                       "spikes": spikes.get(l.name, 0.0) / n, "synops": synops.get(l.name, 0.0) / n}
    return Activity(per, len(x))
