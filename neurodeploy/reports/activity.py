"""The cost report's activity: spikes, synaptic operations and spike messages per sample, from the
bit-exact simulation.

Each scheme says how its layers' spikes are rebuilt from the simulator's decoded codes
(`Scheme.spike_trains`, `spike_counts`, `pooled_spike_counts`: bit-plane neurons emit the binary
digits of their code, MSB first; a rate neuron's code is its spike count).  Each rebuild is
checked against the simulator's spike total before it is used; where there is none, synaptic
operations and messages are spikes x mean fan-out (reported as approximate).
"""
from __future__ import annotations

import numpy as np
import torch

from ..ir.spiking import SpikingGraph
from ..sim import engine
from ..sim.reference import reference


def activity(net: SpikingGraph, scheme, x: np.ndarray, batch_size: int, device: str, branches: dict,
             dest: dict, labels: np.ndarray | None) -> dict:
    """Per-sample counts from the simulation: spikes per layer, synaptic ops and spike messages
    per branch (exact per-neuron fan-out where the planes can be rebuilt, else spikes x mean fan-out)."""
    prep = engine.prepare(net, device)
    n = len(x)
    senders = [net.input.name] + [l.name for l in net.neuron_layers() if not l.is_readout]
    spikes = {k: np.zeros(n) for k in senders}
    synops = {(l, i): np.zeros(n) for l, infos in branches.items() for i in range(len(infos))}
    msgs = {k: np.zeros(n) for k in synops}
    exact = True
    preds, qpreds = [], []
    neuron_of = {l.name: l.neuron for l in net.layers}
    for start, xb in engine.iter_batches(x, batch_size):
        r = engine.run_batch(prep, xb, record_codes=True)
        nb = len(xb)
        sl = slice(start, start + nb)
        trains, counts = {}, {}
        for name in senders:
            codes = r.codes[name]
            tr = scheme.spike_trains(neuron_of[name], codes)
            c = scheme.spike_counts(neuron_of[name], codes, tr)
            if c is not None and int(c.sum()) != r.spikes[name]:
                tr = c = None                             # the rebuild disagrees with the simulator: drop it
            trains[name], counts[name] = tr, c
            spikes[name][sl] = (c.sum(1).cpu().numpy() if c is not None
                                else r.spikes[name] / nb)  # else only the batch total is known
        for lname, infos in branches.items():
            for i, bi in enumerate(infos):
                if bi.maxpool is not None and trains[bi.source] is not None:
                    per_src = scheme.pooled_spike_counts(trains[bi.source], bi.maxpool)
                else:
                    per_src = counts[bi.source] if bi.maxpool is None else None
                if per_src is None:
                    exact = False
                    mean_fan = bi.conn.fan_out.mean() if bi.conn.n_src else 0.0
                    synops[(lname, i)][sl] = spikes[bi.source][sl] * mean_fan
                    msgs[(lname, i)][sl] = spikes[bi.source][sl] * dest[(lname, i)].mean()
                    continue
                per_src = per_src.to(torch.float64).cpu().numpy()
                synops[(lname, i)][sl] = per_src @ bi.conn.fan_out.astype(np.float64)
                msgs[(lname, i)][sl] = per_src @ dest[(lname, i)].astype(np.float64)
        if labels is not None:
            preds.append(r.output.cpu().numpy().argmax(1))
            if "netx" not in net.meta:           # an imported NetX network has no quantised ANN
                _, u = reference(net, xb)
                qpreds.append(u.reshape(nb, -1).argmax(1))
    acc = None
    if labels is not None:
        acc = {"snn": float(np.mean(np.concatenate(preds) == labels)),
               "quantised_ann": float(np.mean(np.concatenate(qpreds) == labels)) if qpreds else None}
    return {"spikes": spikes, "synops": synops, "msgs": msgs, "exact": exact, "accuracy": acc}
