"""Cost report: what a compiled network needs on its target and what it does per inference.

`cost_report(net, x, batch_size)` returns one JSON-ready dict (schema: schema.json) with, per layer
and in total:

- structure (from the IR): neurons; synapses = source-target pairs joined by a branch's op chain,
  pooling folded into the weights (a conv after a 2x2 sum pool gets 4x the synapses of the
  conv); unique weights; synaptic memory as the target stores it; cores from a greedy allocation;
- timing (from the neurons' time steps): each layer's emission window in the layer-by-layer
  schedule, active steps, latency and pipelined throughput (`net.meta`);
- activity (from the bit-exact simulation over `x`, means per sample): spikes sent, spike
  messages (one per spike and destination core), synaptic operations (each spike times its
  fan-out), neuron updates (active, spiking, idle); and for the ANN the multiply-accumulates of
  the same layers;
- energy: these counts priced under every model of `targets/energy/` (energy.py), one model per
  figure, with the target's own statement (Loihi 2: no public per-operation figures).

Assumptions are listed in the report itself (`assumptions`), so that they travel with the numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import __version__
from ..errors import NeurodeployError
from ..ir import synapses as syn
from ..ir.spiking import Layer, SpikingGraph
from ..ir.synapse_ops import apply_op
from ..registry import get_scheme
from ..target.allocation import (UPPER_BOUND_REASON, BranchConnectivity, allocate, branch_connectivity, chip_limits,
                                 counts_are_upper_bounds, ones, shape_after_ops, synapse_bits)
from . import energy as en
from .activity import activity
from .memory import binary_weight_memory
from .schedule import schedule

SCHEMA_VERSION = 1

ASSUMPTIONS = [
    "Synapses: one per (source neuron, target neuron) pair that a branch's op chain joins; pooling "
    "is folded into the weights, zero-padding taps are not synapses, zero-valued weights are "
    "(dense formats store them).",
    "Synaptic memory: every synapse stored explicitly at its target's core with the target file's "
    "weight mantissa bits plus `index_bits` per synapse (default 0: a dense format with no index, no "
    "per-axon or per-core header). Loihi 2's synapse encodings are not public; Loihi 1's sparse "
    "format adds 6-12 index bits per synapse and SANA-FE budgets 16 bits per Loihi 1 synapse. "
    "Shared-weight (convolutional) encodings would need only the unique weights.",
    "Cores: greedy, layer by layer in topological order, each core holds neurons of one layer only; "
    "neurons are taken in flattened (C, H, W) order until the next one would exceed the target's "
    "neurons per core or synaptic memory per core (the target file's limits: see its comments for how "
    "sure each is). The input encoder runs on the host (no core). "
    "Per-core fan-in / fan-out axon limits and neuron state memory are not modelled (not public for "
    "Loihi 2).",
    "Schedule: one sample at a time. Bit-plane layers go layer by layer: a layer accumulates its "
    "sources' planes while they are emitted, then emits its own T planes; the readout only "
    "accumulates. Neuron models without phases (rate) update every layer in every step. Latency is "
    "the scheme's `latency_steps`; pipelined, one sample every `throughput_steps` steps. The "
    "duration of a time step is not given: Loihi's steps end with a barrier whose time depends on "
    "the workload.",
    "Neuron updates: every on-chip neuron is updated in every step of the inference: active while "
    "the scheme uses it (bit-plane: its accumulation and emission steps; rate: every step), "
    "spiking when it spikes (a subset of the active steps, counted apart), inactive otherwise.",
    "Spike messages: one per spike and destination core (the cores of all layers its synapses "
    "reach). Mesh hops are not counted: placement on the mesh is not modelled. Input spikes are "
    "injected by the host and counted like the others.",
    "ANN operations: each weighted op of a layer once on real values: MACs = valid kernel taps "
    "(no zero padding) x input channels per group x outputs; identity/scaled shortcuts count one "
    "MAC per element; sum/average pooling one add per window element, max pooling one compare per "
    "window element; biases and activations are not counted.",
    "Max pooling on spike trains (bit-serial max before the synapses) is not priced: its "
    "comparisons have no published per-op energy on a neuromorphic chip; its synapses are counted "
    "from the pooled trains.",
]


# --- the ANN's operations on each branch ------------------------------------------------------

def _ann_ops(ops: list, src_shape: tuple) -> dict:
    """The ANN's operations for one branch: MACs of its weighted op, pooling adds/compares
    (each op counted on an all-ones input of its own input shape: valid taps only)."""
    counts = {"mac": 0, "pool_add": 0, "pool_compare": 0}
    shape = tuple(src_shape)
    for op in ones(ops):
        x = torch.ones((1,) + shape, dtype=torch.float64)
        if isinstance(op, syn.WEIGHTED):
            counts["mac"] += int(round(float(apply_op(op, x).sum())))
        elif isinstance(op, syn.SumPool):
            counts["pool_add"] += int(round(float(apply_op(op, x).sum())))
        elif isinstance(op, syn.MaxPool):
            taps = torch.nn.functional.avg_pool2d(x, op.kernel, op.stride, divisor_override=1)
            counts["pool_compare"] += int(round(float(taps.sum())))
        shape = shape_after_ops([op], shape)
    return counts


@dataclass
class BranchInfo(BranchConnectivity):
    """A branch's connectivity (`target.allocation`) and the ANN's operations on it."""
    ann: dict = None


def _branches(net: SpikingGraph) -> dict[str, list[BranchInfo]]:
    shapes = {l.name: tuple(l.shape) for l in net.layers}
    return {name: [BranchInfo(bc.source, bc.maxpool, bc.conn, bc.ops, _ann_ops(bc.ops, shapes[bc.source]))
                   for bc in infos]
            for name, infos in branch_connectivity(net).items()}


# --- the report -------------------------------------------------------------------------------

def _stats(a: np.ndarray) -> dict:
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max())}


def cost_report(net: SpikingGraph, x: np.ndarray, batch_size: int = 256, *, device: str = "cpu",
                labels: np.ndarray | None = None, model_path: str | None = None,
                energy_models: list | None = None, index_bits: int = 0) -> dict:
    """Costs of `net` on its target, with activity measured by simulating `x` (N, *input shape).

    `labels` (N,) adds SNN and quantised-ANN accuracy; `model_path` (the ONNX model) adds the float
    ANN's accuracy (needs labels).  `energy_models`: names or paths in targets/energy/ (default all).
    `index_bits`: index/format bits stored per synapse on top of the weight mantissa.
    """
    if batch_size < 1:
        raise NeurodeployError(f"batch size {batch_size} is not positive", "--batch-size", "use 1 or more")
    if index_bits < 0 or index_bits > 64:
        raise NeurodeployError(f"index bits {index_bits} out of range", "--index-bits", "use 0..64")
    x = np.asarray(x)
    if x.ndim < 1 or len(x) == 0:
        raise NeurodeployError("no samples", "inputs", "pass at least one sample")
    from ..arrays import sample_shape
    if tuple(x.shape[1:]) != sample_shape(net):
        raise NeurodeployError(f"input shape {x.shape} does not match the network input (N, "
                               f"{', '.join(map(str, sample_shape(net)))})", "inputs", "reshape the samples")
    if labels is not None and (np.ndim(labels) != 1 or len(labels) != len(x)):
        raise NeurodeployError(f"labels shaped {np.shape(labels)}, expected ({len(x)},)", "labels",
                               "pass one integer label per sample")
    if model_path is not None and labels is None:
        raise NeurodeployError("the float model's accuracy needs labels", "--model", "pass --labels too")
    models = en.load_models(energy_models)
    scheme = get_scheme(net.scheme)
    lim = chip_limits(net)
    bits = lim.weight_bits + int(index_bits)
    branches = _branches(net)
    sched = schedule(net, scheme.phased)
    latency = net.meta.get("latency_steps")
    if latency is None:
        ready = [s["ready"] for s in sched.values() if s["ready"] is not None]
        if len(ready) != len(sched):
            raise NeurodeployError("the network's metadata lacks latency_steps", "ir.json meta",
                                   "compile the model again")
        latency = max(ready)
    latency = int(latency)
    for s in sched.values():            # models without phases: active in every step of the inference
        if s["active_steps"] is None:
            s["accumulate_steps"] = s["active_steps"] = latency
    steps_of = net.meta.get("time_steps_per_layer", {})
    throughput = net.meta.get("throughput_steps")

    # cores, layer by layer
    alloc, problems = {}, []
    for layer in net.neuron_layers():
        fan_in = sum(bi.conn.fan_in for bi in branches[layer.name])
        bounds, problem = allocate(synapse_bits(net, lim, layer, branches[layer.name], index_bits), lim)
        alloc[layer.name] = (bounds, fan_in)
        if problem:
            problems.append(f"layer '{layer.name}': {problem}")
    dest = {(l, i): bi.conn.dest_cores(alloc[l][0]) for l, infos in branches.items() for i, bi in enumerate(infos)}

    act = activity(net, scheme, x, batch_size, device, branches, dest, labels)
    accuracy = act["accuracy"]
    if accuracy is not None:
        accuracy["float_ann"] = None
        from ..frontends.netx import is_netx_path
        if model_path is not None and not is_netx_path(model_path):     # a NetX file has no float model
            from .verify import run_onnx
            try:
                logits = run_onnx(model_path, x, batch_size)
            except NeurodeployError:
                raise
            except Exception as exc:  # onnxruntime raises its own types for unreadable or wrong models
                raise NeurodeployError(f"onnxruntime cannot run the model ({type(exc).__name__})", str(model_path),
                                       "pass the ONNX model the directory was compiled from") from None
            if logits.shape[1] != int(np.prod(net.output.shape)):
                raise NeurodeployError(f"the model has {logits.shape[1]} outputs but the compiled network "
                                       f"{int(np.prod(net.output.shape))}", str(model_path),
                                       "pass the model the directory was compiled from")
            accuracy["float_ann"] = float(np.mean(logits.argmax(1) == labels))
        accuracy["delta_snn_vs_quantised_ann"] = (None if accuracy["quantised_ann"] is None
                                                  else accuracy["snn"] - accuracy["quantised_ann"])
        accuracy["delta_snn_vs_float_ann"] = (None if accuracy["float_ann"] is None
                                              else accuracy["snn"] - accuracy["float_ann"])

    n = len(x)
    layers, sent_msgs = [], {name: np.zeros(n) for name in act["spikes"]}
    for (lname, i), m in act["msgs"].items():
        sent_msgs[branches[lname][i].source] += m
    per_sample_synops = np.zeros(n)
    per_sample_spikes = np.zeros(n)
    for layer in net.layers:
        on_chip = isinstance(layer, Layer)
        neurons = int(np.prod(layer.shape))
        s = sched[layer.name]
        spikes = act["spikes"].get(layer.name)
        row = {"name": layer.name, "kind": type(layer.neuron).__name__, "shape": [int(v) for v in layer.shape],
               "on_chip": on_chip, "sources": [b.source for b in getattr(layer, "branches", [])],
               "neurons": neurons,
               "role": "input" if not on_chip else "readout" if layer.is_readout else "hidden",
               "time_steps": None if getattr(layer, "is_readout", False)
               else int(getattr(layer.neuron, "n_steps", 0) or steps_of.get(layer.name, 0)) or None,
               "emit_window": None if s["emit"] is None else [int(v) for v in s["emit"]],
               "accumulate_steps": int(s["accumulate_steps"]), "active_steps": int(s["active_steps"]) if on_chip else 0,
               "synapses": 0, "unique_weights": 0, "biases": 0, "synaptic_memory_bytes": 0, "cores": 0,
               "spikes_per_sample": 0.0 if spikes is None else float(spikes.mean()),
               "spikes_per_neuron_per_sample": 0.0 if spikes is None else float(spikes.mean() / neurons),
               "spike_messages_per_sample": float(sent_msgs[layer.name].mean()) if layer.name in sent_msgs else 0.0,
               "synaptic_ops_per_sample": 0.0,
               "neuron_updates_per_sample": {"active": 0.0, "spiking": 0.0, "inactive": 0.0},
               "ann_ops": {"mac": 0, "pool_add": 0, "pool_compare": 0}}
        if spikes is not None:
            per_sample_spikes += spikes
        if on_chip:
            bounds, fan_in = alloc[layer.name]
            row["synapses"] = int(fan_in.sum())
            row["unique_weights"] = int(sum(np.size(syn.weighted_op(b.ops).weight) for b in layer.branches))
            row["biases"] = int(np.size(layer.bias_mant))
            nbits = synapse_bits(net, lim, layer, branches[layer.name], index_bits)
            core_bits = [int(nbits[a:b].sum()) for a, b in bounds]
            row["synaptic_memory_bytes"] = int(sum(math.ceil(v / 8) for v in core_bits))
            row["cores"] = len(bounds)
            row["max_core_neurons"] = int(max(b - a for a, b in bounds))
            row["max_core_synaptic_memory_bytes"] = int(max(math.ceil(v / 8) for v in core_bits))
            ops = np.zeros(n)
            for i, bi in enumerate(branches[layer.name]):
                ops += act["synops"][(layer.name, i)]
                for k, v in bi.ann.items():
                    row["ann_ops"][k] += v
            per_sample_synops += ops
            row["synaptic_ops_per_sample"] = float(ops.mean())
            spiking = 0.0 if spikes is None else float(spikes.mean())
            active = neurons * s["active_steps"]
            row["neuron_updates_per_sample"] = {"active": float(active - spiking), "spiking": spiking,
                                                "inactive": float(neurons * max(0, latency - s["active_steps"]))}
        layers.append(row)

    for row in layers:
        row["counts_per_sample"] = _counters(row)
    totals = _totals(layers)
    energy = _energy(models, lim.name, layers, totals)
    for row in layers:
        row["energy_pj"] = {m["name"]: {"snn": m["by_layer"][row["name"]]["snn"],
                                        "ann": m["by_layer"][row["name"]]["ann"]} for m in energy["models"]}
        del row["counts_per_sample"]
    for m in energy["models"]:
        del m["by_layer"]

    cores = sum(l["cores"] for l in layers)
    chips = math.ceil(cores / lim.cores_per_chip) if lim.cores_per_chip else 1
    fits = not problems and (not lim.cores_per_chip or cores <= lim.cores_per_chip)
    unlimited = not lim.neurons_per_core and not lim.memory_bytes_per_core
    upper_bound = counts_are_upper_bounds(net)     # synaptic memory, cores and chips: at most
    params = sum(l["unique_weights"] + l["biases"] for l in layers)
    model = net.meta.get("model", {})
    report = {
        "report": "neurodeploy cost report",
        "schema_version": SCHEMA_VERSION,
        "neurodeploy_version": __version__,
        "network": {"model": model.get("file"), "model_sha256": model.get("sha256"), "scheme": net.scheme,
                    "target": net.target, "target_description": lim.description},
        "samples": int(n),
        "summary": {
            "scheme": net.scheme, "target": net.target, "parameters": int(params),
            "neurons": totals["neurons"], "synapses": totals["synapses"],
            "synaptic_memory_bytes": totals["synaptic_memory_bytes"], "cores": int(cores), "chips": int(chips),
            "fits_target": bool(fits), "upper_bound": upper_bound,
            "latency_steps": latency, "throughput_steps": None if throughput is None else int(throughput),
            "accuracy": accuracy,
            "spikes_per_sample": _stats(per_sample_spikes), "synaptic_ops_per_sample": _stats(per_sample_synops),
            "ann_macs_per_sample": totals["ann_ops"]["mac"],
            "energy_per_inference_pj": {m["name"]: {"snn": m["snn"]["pj"], "ann": m["ann"]["pj"]}
                                        for m in energy["models"]},
            "energy_statement": energy["statement"],
        },
        "memory_model": {"weight_bits": lim.weight_bits, "index_bits": int(index_bits), "bits_per_synapse": bits,
                         "format": "explicit synapses at the target core, weight mantissa + index bits, no headers"},
        "allocation": {"method": "greedy per layer, flattened neuron order, one layer per core",
                       "neurons_per_core": lim.neurons_per_core or None,
                       "synaptic_memory_bytes_per_core": lim.memory_bytes_per_core or None,
                       "cores_per_chip": lim.cores_per_chip or None, "unlimited": bool(unlimited),
                       "cores": int(cores), "chips": int(chips), "fits_target": bool(fits), "problems": problems,
                       "upper_bound": upper_bound, "upper_bound_reason": UPPER_BOUND_REASON if upper_bound else None},
        "timing": {"latency_steps": latency, "throughput_steps": None if throughput is None else int(throughput),
                   "mode": "layer by layer, one sample at a time",
                   "step_duration": None,
                   "step_duration_note": "not given: a Loihi time step ends with a barrier synchronisation whose "
                                         "duration depends on the workload"},
        "activity": {"synaptic_ops_exact": bool(act["exact"]),
                     "note": "Means per sample over the inputs; synaptic ops and messages use each source neuron's own "
                             "spikes and fan-out (exact)."
                             if act["exact"] else
                             "The spike planes of some layer could not be rebuilt: its synaptic ops and messages are "
                             "spikes x mean fan-out (approximate)."},
        "layers": layers,
        "totals": totals,
        "energy": energy,
        "counters": {**{f"snn.{k}": v for k, v in en.SNN_COUNTERS.items()},
                     **{f"ann.{k}": v for k, v in en.ANN_COUNTERS.items()}},
        "assumptions": list(ASSUMPTIONS),
    }
    if "binary_layers" in net.meta:
        report["binary_weights"] = binary_weight_memory(net, index_bits, branches)
    return _jsonable(report)


def _counters(row: dict) -> dict:
    nu = row["neuron_updates_per_sample"]
    return {"snn": {"synaptic_op": row["synaptic_ops_per_sample"], "neuron_update_active": nu["active"],
                    "neuron_update_spiking": nu["spiking"], "neuron_update_inactive": nu["inactive"],
                    "spike_message": row["spike_messages_per_sample"]},
            "ann": dict(row["ann_ops"])}


def _totals(layers: list[dict]) -> dict:
    on = [l for l in layers if l["on_chip"]]
    t = {"neurons": sum(l["neurons"] for l in on),
         "input_neurons": sum(l["neurons"] for l in layers if not l["on_chip"]),
         "synapses": sum(l["synapses"] for l in on),
         "unique_weights": sum(l["unique_weights"] for l in on),
         "synaptic_memory_bytes": sum(l["synaptic_memory_bytes"] for l in on),
         "cores": sum(l["cores"] for l in on),
         "spikes_per_sample": sum(l["spikes_per_sample"] for l in layers),
         "spike_messages_per_sample": sum(l["spike_messages_per_sample"] for l in layers),
         "synaptic_ops_per_sample": sum(l["synaptic_ops_per_sample"] for l in on),
         "neuron_updates_per_sample": {k: sum(l["neuron_updates_per_sample"][k] for l in on)
                                       for k in ("active", "spiking", "inactive")},
         "ann_ops": {k: sum(l["ann_ops"][k] for l in on) for k in ("mac", "pool_add", "pool_compare")}}
    return t


def _energy(models: list, target: str, layers: list[dict], totals: dict) -> dict:
    native = [m for m in models if m.chip == target]
    statements = [m.statement for m in native if m.statement and not m.has_figures]
    if statements:
        statement = statements[0]
    elif any(m.has_figures for m in native):
        statement = None
    else:
        statement = (f"no energy model for target '{target}' in targets/energy/; every energy figure below "
                     "comes from another chip's model and is labelled with it.")
    total_counts = {"snn": {}, "ann": {}}
    for l in layers:
        for side, c in l["counts_per_sample"].items():
            for k, v in c.items():
                total_counts[side][k] = total_counts[side].get(k, 0) + v
    out = []
    for m in models:
        if not m.has_figures:
            continue
        entry = {**m.to_dict(), "role": "target" if m.chip == target else "proxy",
                 "snn": m.price("snn", total_counts["snn"]), "ann": m.price("ann", total_counts["ann"]),
                 "by_layer": {}}
        for l in layers:
            c = l["counts_per_sample"]
            entry["by_layer"][l["name"]] = {"snn": m.price("snn", c["snn"])["pj"],
                                            "ann": m.price("ann", c["ann"])["pj"] if l["on_chip"] else None}
        out.append(entry)
    return {"target": target, "statement": statement,
            "statements": [m.to_dict() for m in native if not m.has_figures],
            "counts_per_sample": total_counts, "models": out,
            "rule": "each figure comes from one model; counts a model has no price for are listed as not counted"}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        if not math.isfinite(v):
            raise ValueError("non-finite number in the cost report")
        return v
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
