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
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .. import __version__
from ..errors import NeurodeployError
from ..ir import neurons as nrn
from ..ir import synapses as syn
from ..ir.spiking import Layer, SpikingGraph
from ..sim import bitplane as bp
from ..sim import engine
from ..sim.reference import reference
from ..sim.synapse_ops import apply_op, apply_ops
from . import energy as en

SCHEMA_VERSION = 1
EXPLICIT_LIMIT = 50_000_000        # one-hot probe elements per chunk when paths are not unique

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


# --- structure --------------------------------------------------------------------------------

def _ones(ops: list) -> list:
    """The op chain with every weight replaced by 1: its linear map counts paths."""
    return [replace(op, weight=np.ones(np.shape(op.weight))) if isinstance(op, syn.WEIGHTED) else op
            for op in ops]


def _paths_unique(ops: list) -> bool:
    """True when no source-target pair is joined by more than one path, so that the path-count
    map of the chain is the 0/1 connectivity: pooling windows that do not overlap before the
    one weighted op, nothing but Flatten after it."""
    weighted_seen = False
    for op in ops:
        if isinstance(op, syn.Flatten):
            continue
        if isinstance(op, syn.WEIGHTED):
            if weighted_seen:
                return False
            weighted_seen = True
        elif weighted_seen or isinstance(op, syn.MaxPool):
            return False
        elif isinstance(op, syn.SumPool) and (op.stride[0] < op.kernel[0] or op.stride[1] < op.kernel[1]):
            return False
    return True


@dataclass
class Connectivity:
    """0/1 connectivity of one branch between its (possibly max-pooled) sources and its targets."""
    ops: list                      # ones-weight chain
    src_shape: tuple
    n_tgt: int
    unique_paths: bool
    fan_in: np.ndarray = field(default=None)    # (n_tgt,) synapses into each target neuron
    fan_out: np.ndarray = field(default=None)   # (n_src,) synapses out of each source neuron
    _pairs: tuple = None                         # (src idx, tgt idx) when paths are not unique

    @property
    def n_src(self) -> int:
        return int(np.prod(self.src_shape))

    def build(self) -> "Connectivity":
        if self.unique_paths:
            x = torch.ones((1,) + tuple(self.src_shape), dtype=torch.float64, requires_grad=True)
            y = apply_ops(self.ops, x).reshape(-1)
            (g,) = torch.autograd.grad(y.sum(), x)
            self.fan_in = np.rint(y.detach().numpy()).astype(np.int64)
            self.fan_out = np.rint(g.reshape(-1).numpy()).astype(np.int64)
        else:
            rows, cols = [], []
            chunk = max(1, EXPLICIT_LIMIT // max(1, self.n_src + self.n_tgt))
            for start in range(0, self.n_src, chunk):
                b = min(chunk, self.n_src - start)
                x = torch.zeros((b, self.n_src), dtype=torch.float64)
                x[torch.arange(b), start + torch.arange(b)] = 1.0
                with torch.no_grad():
                    y = apply_ops(self.ops, x.reshape((b,) + tuple(self.src_shape))).reshape(b, -1)
                nz = torch.nonzero(y > 0).numpy()
                rows.append(nz[:, 0] + start)
                cols.append(nz[:, 1])
            src, tgt = np.concatenate(rows), np.concatenate(cols)
            self._pairs = (src, tgt)
            self.fan_in = np.bincount(tgt, minlength=self.n_tgt).astype(np.int64)
            self.fan_out = np.bincount(src, minlength=self.n_src).astype(np.int64)
        return self

    def dest_cores(self, bounds: list[tuple[int, int]]) -> np.ndarray:
        """(n_src,) number of target cores (flattened target ranges) each source reaches."""
        if len(bounds) <= 1:
            return (self.fan_out > 0).astype(np.int64)
        out = np.zeros(self.n_src, np.int64)
        if self._pairs is not None:
            src, tgt = self._pairs
            core_of = np.zeros(self.n_tgt, np.int64)
            for c, (a, b) in enumerate(bounds):
                core_of[a:b] = c
            pairs = np.unique(src * len(bounds) + core_of[tgt])
            np.add.at(out, pairs // len(bounds), 1)
            return out
        x = torch.ones((1,) + tuple(self.src_shape), dtype=torch.float64, requires_grad=True)
        y = apply_ops(self.ops, x).reshape(-1)
        for a, b in bounds:
            (g,) = torch.autograd.grad(y[a:b].sum(), x, retain_graph=True)
            out += (g.reshape(-1).numpy() > 0.5)
        return out


def _shape_after(ops: list, shape: tuple) -> tuple:
    x = torch.zeros((1,) + tuple(shape), dtype=torch.float64)
    return tuple(apply_ops(_ones(ops), x).shape[1:])


def _ann_ops(ops: list, src_shape: tuple) -> dict:
    """The ANN's operations for one branch: MACs of its weighted op, pooling adds/compares
    (each op counted on an all-ones input of its own input shape: valid taps only)."""
    counts = {"mac": 0, "pool_add": 0, "pool_compare": 0}
    shape = tuple(src_shape)
    for op in _ones(ops):
        x = torch.ones((1,) + shape, dtype=torch.float64)
        if isinstance(op, syn.WEIGHTED):
            counts["mac"] += int(round(float(apply_op(op, x).sum())))
        elif isinstance(op, syn.SumPool):
            counts["pool_add"] += int(round(float(apply_op(op, x).sum())))
        elif isinstance(op, syn.MaxPool):
            taps = torch.nn.functional.avg_pool2d(x, op.kernel, op.stride, divisor_override=1)
            counts["pool_compare"] += int(round(float(taps.sum())))
        shape = _shape_after([op], shape)
    return counts


@dataclass
class BranchInfo:
    source: str
    maxpool: syn.MaxPool | None
    conn: Connectivity
    ann: dict


def _branches(net: SpikingGraph) -> dict[str, list[BranchInfo]]:
    shapes = {l.name: tuple(l.shape) for l in net.layers}
    out = {}
    for layer in net.neuron_layers():
        infos = []
        n_tgt = int(np.prod(layer.shape))
        for b in layer.branches:
            ops = list(b.ops)
            mp = ops.pop(0) if ops and isinstance(ops[0], syn.MaxPool) else None
            src_shape = shapes[b.source] if mp is None else _shape_after([mp], shapes[b.source])
            conn = Connectivity(_ones(ops), src_shape, n_tgt, _paths_unique(ops)).build()
            if int(np.prod(_shape_after(ops, src_shape))) != n_tgt:
                raise NeurodeployError(f"branch from '{b.source}' yields {int(np.prod(_shape_after(ops, src_shape)))} "
                                       f"values for {n_tgt} neurons", f"layer '{layer.name}'",
                                       "the compiled network is inconsistent: compile it again")
            infos.append(BranchInfo(b.source, mp, conn, _ann_ops(list(b.ops), shapes[b.source])))
        out[layer.name] = infos
    return out


# --- target, memory and cores -----------------------------------------------------------------

@dataclass
class ChipLimits:
    name: str
    description: str
    weight_bits: int
    cores_per_chip: int            # 0 = unlimited
    neurons_per_core: int
    memory_bytes_per_core: int
    binary_weight_bits: int = 0    # bits the target stores per ±1 weight (0: the file gives none)


def _limits(net: SpikingGraph) -> ChipLimits:
    spec = net.meta.get("target_spec")
    if not spec:
        from ..target import load_target
        spec = load_target(net.target).to_dict()
    try:
        c = spec["chip"]
        return ChipLimits(spec.get("name", net.target), spec.get("description", ""), int(spec["weights"]["mant_bits"]),
                          int(c["cores_per_chip"]), int(c["neurons_per_core"]),
                          int(c["synaptic_memory_bytes_per_core"]),
                          int(spec.get("synapse_formats", {}).get("binary_weight_bits", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise NeurodeployError(f"the target description lacks {exc}", f"target '{net.target}'",
                               "compile the model again with a complete target file") from None


def _layer_bits(net: SpikingGraph, lim: ChipLimits, layer: str, index_bits: int) -> int:
    """Bits stored per synapse of `layer`: the target's ±1 format for the binary (±1) layers a
    scheme lists in meta["binary_layers"] (reverb), its weight mantissa otherwise; plus index bits."""
    binary = layer in net.meta.get("binary_layers", ()) and lim.binary_weight_bits
    return (lim.binary_weight_bits if binary else lim.weight_bits) + int(index_bits)


def _synapse_bits(net: SpikingGraph, lim: ChipLimits, layer, infos: list, index_bits: int) -> np.ndarray:
    """Synapse bits stored per target neuron of `layer` (int64, flattened): Σ over its branches of
    fan-in × bits per synapse, where a real-valued branch of a binary layer (meta["real_branches"]:
    a residual shortcut) counts at the weight mantissa, not the ±1 format."""
    real = net.meta.get("real_branches", {}).get(layer.name, ())
    full = _layer_bits(net, lim, layer.name, index_bits)
    return sum(bi.conn.fan_in.astype(np.int64) * (lim.weight_bits + int(index_bits) if i in real else full)
               for i, bi in enumerate(infos))


def _allocate(bits_per_neuron: np.ndarray, lim: ChipLimits) -> tuple[list, str | None]:
    """Greedy cores for one layer: list of (start, end) flattened neuron ranges, or a problem."""
    n = len(bits_per_neuron)
    per_core = lim.neurons_per_core or n
    cap = lim.memory_bytes_per_core * 8 if lim.memory_bytes_per_core else math.inf
    worst = int(bits_per_neuron.max()) if n else 0
    if worst > cap:
        return [(0, n)], (f"one neuron needs {math.ceil(worst / 8)} bytes of synapses, more than the "
                          f"{lim.memory_bytes_per_core} bytes of a core")
    bounds, start = [], 0
    cum = np.concatenate([[0], np.cumsum(bits_per_neuron, dtype=np.float64)])
    while start < n:
        end = min(n, start + per_core)
        end = min(end, int(np.searchsorted(cum, cum[start] + cap, side="right")) - 1)
        bounds.append((start, end))
        start = end
    return bounds, None


def core_allocation(net: SpikingGraph, index_bits: int = 0) -> tuple[dict, list[str], int, ChipLimits]:
    """Cores per layer (greedy, one layer per core), the per-layer problems, total cores, limits."""
    lim = _limits(net)
    bits = lim.weight_bits + int(index_bits)
    branches = _branches(net)
    cores, problems = {}, []
    for layer in net.neuron_layers():
        fan_in = sum(bi.conn.fan_in for bi in branches[layer.name])
        bounds, problem = _allocate(_synapse_bits(net, lim, layer, branches[layer.name], index_bits), lim)
        cores[layer.name] = len(bounds)
        if problem:
            problems.append(f"layer '{layer.name}': {problem}")
    return cores, problems, sum(cores.values()), lim


def check_fits(net: SpikingGraph, chips: int = 1) -> dict:
    """Raise TargetLimitError naming the offending layers when the network does not fit `chips`
    chips of its target; return the allocation otherwise."""
    from ..errors import TargetLimitError
    cores, problems, total, lim = core_allocation(net)
    if problems:
        raise TargetLimitError("; ".join(problems), f"target '{lim.name}'",
                               "shrink those layers' fan-in or use a target with more synaptic memory per core")
    if lim.cores_per_chip and total > lim.cores_per_chip * chips:
        worst = sorted(cores.items(), key=lambda kv: -kv[1])[:3]
        raise TargetLimitError(
            f"the network needs {total} cores but {chips} chip(s) have {lim.cores_per_chip * chips} "
            f"({total - lim.cores_per_chip * chips} too many; largest layers: "
            + ", ".join(f"{n} {c} cores" for n, c in worst) + ")",
            f"target '{lim.name}'", "pass --chips N for a multi-chip system or make the network smaller")
    return {"cores": cores, "total_cores": total}


# --- timing -----------------------------------------------------------------------------------

PHASED = (nrn.BitplaneEncoder, nrn.BitplaneIF)    # accumulate, then emit T planes, layer by layer


def _schedule(net: SpikingGraph) -> dict:
    """Per layer: emission window (start, end) or None, steps in which it accumulates, active steps,
    and the step after which its output is complete ("ready").

    Bit-plane neurons have phases: a layer accumulates while its sources emit, then emits its own
    T planes.  Neuron models without phases (rate: every layer updates every step) are active in
    every step of the inference; their windows are None and they are resolved in cost_report."""
    out, windows = {}, {}
    enc = net.input
    if isinstance(enc.neuron, PHASED):
        t_in = int(enc.neuron.n_steps)
        windows[enc.name] = (0, t_in)
        out[enc.name] = {"emit": (0, t_in), "accumulate_steps": 0, "active_steps": t_in, "ready": t_in}
    else:
        windows[enc.name] = None
        out[enc.name] = {"emit": None, "accumulate_steps": 0, "active_steps": None, "ready": None}
    for layer in net.neuron_layers():
        src = [windows[b.source] for b in layer.branches]
        phased = all(w is not None for w in src) and (layer.is_readout or isinstance(layer.neuron, PHASED))
        if not phased:
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


# --- activity ---------------------------------------------------------------------------------

# How each neuron model's spikes are rebuilt from the simulator's decoded codes (N, *shape):
# bit-plane neurons emit the binary digits of their code, MSB first (exact spike trains); for the
# models named in COUNT_CODED the code is the neuron's spike count (no timing).  Each rebuild is
# checked against the simulator's spike total before it is used.
COUNT_CODED = {"RateEncoder", "RateIF"}


def _spike_trains(neuron, codes: torch.Tensor) -> torch.Tensor | None:
    """(N, T, *shape) 0/1 spike planes, where the neuron model makes that exact."""
    if isinstance(neuron, PHASED):
        return bp.encode_planes(codes, neuron.n_steps)
    return None


def _spike_counts(neuron, codes: torch.Tensor, trains: torch.Tensor | None) -> torch.Tensor | None:
    """(N, n_neurons) spikes of each neuron."""
    n = codes.shape[0]
    if trains is not None:
        return trains.reshape(n, trains.shape[1], -1).sum(1)
    if type(neuron).__name__ in COUNT_CODED:
        return codes.reshape(n, -1)
    return None


def _activity(net: SpikingGraph, x: np.ndarray, batch_size: int, device: str, branches: dict,
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
            tr = _spike_trains(neuron_of[name], codes)
            c = _spike_counts(neuron_of[name], codes, tr)
            if c is not None and int(c.sum()) != r.spikes[name]:
                tr = c = None                             # the rebuild disagrees with the simulator: drop it
            trains[name], counts[name] = tr, c
            spikes[name][sl] = (c.sum(1).cpu().numpy() if c is not None
                                else r.spikes[name] / nb)  # else only the batch total is known
        for lname, infos in branches.items():
            for i, bi in enumerate(infos):
                if bi.maxpool is not None and trains[bi.source] is not None:
                    p = bp.bitserial_maxpool(trains[bi.source], bi.maxpool.kernel, bi.maxpool.stride)
                    per_src = p.reshape(nb, p.shape[1], -1).sum(1)
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
    lim = _limits(net)
    bits = lim.weight_bits + int(index_bits)
    branches = _branches(net)
    sched = _schedule(net)
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
        bounds, problem = _allocate(_synapse_bits(net, lim, layer, branches[layer.name], index_bits), lim)
        alloc[layer.name] = (bounds, fan_in)
        if problem:
            problems.append(f"layer '{layer.name}': {problem}")
    dest = {(l, i): bi.conn.dest_cores(alloc[l][0]) for l, infos in branches.items() for i, bi in enumerate(infos)}

    act = _activity(net, x, batch_size, device, branches, dest, labels)
    accuracy = act["accuracy"]
    if accuracy is not None:
        accuracy["float_ann"] = None
        from ..frontends.netx import is_netx_path
        if model_path is not None and not is_netx_path(model_path):     # a NetX file has no float model
            from .verify import run_onnx
            try:
                logits = run_onnx(model_path, x, batch_size)
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
            nbits = _synapse_bits(net, lim, layer, branches[layer.name], index_bits)
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
            "fits_target": bool(fits),
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
                       "cores": int(cores), "chips": int(chips), "fits_target": bool(fits), "problems": problems},
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


# --- binary (±1) synapses --------------------------------------------------------------------

BINARY_STATEMENT = (
    "'1 bit' is the information content of a ±1 weight (the ReverB paper's count); 'stored' uses the bits the "
    "target file says the chip stores per ±1 weight (synapse_formats.binary_weight_bits); '8 bit' is the same "
    "synapses at the target's weight mantissa. Index bits per synapse and per-axon headers of sparse formats are "
    "not counted unless --index-bits is given; convolutional layers are counted as explicit synapses (as everywhere "
    "in this report), their unique weights apart.")


def binary_weight_memory(net: SpikingGraph, index_bits: int = 0, branches: dict | None = None) -> dict:
    """Synaptic memory of a network with ±1 layers (meta["binary_layers"]), by layer and in total, at three
    weight widths: 1 bit (information content), as the target stores a ±1 weight
    (`synapse_formats.binary_weight_bits` of the target file, Loihi 2: 2 bits, see BINARY_STATEMENT), and
    the target's weight mantissa (8 bits on Loihi 2) for every layer.  Non-binary layers, and the
    real-valued branches of binary layers (meta["real_branches"]: residual shortcuts), count at the
    weight mantissa in all three.  Bytes are ceil(bits / 8) per layer; `index_bits` is added per synapse."""
    lim = _limits(net)
    branches = branches if branches is not None else _branches(net)
    binary = set(net.meta.get("binary_layers", ()))
    real = net.meta.get("real_branches", {})      # {layer: [branch index]}: real-valued branches of a binary layer
    stored_bits = lim.binary_weight_bits or lim.weight_bits
    rows = []
    for layer in net.neuron_layers():
        is_bin = layer.name in binary
        # per branch: a residual layer's ±1 conv branch counts as binary, its real shortcut at the mantissa width
        bin_of = [is_bin and i not in real.get(layer.name, ()) for i in range(len(layer.branches))]
        syn_n = [int(bi.conn.fan_in.sum()) for bi in branches[layer.name]]
        uniq_n = [int(np.size(syn.weighted_op(b.ops).weight)) for b in layer.branches]
        synapses, unique = int(sum(syn_n)), int(sum(uniq_n))
        row = {"name": layer.name, "binary": is_bin, "synapses": synapses, "unique_weights": unique}
        if layer.name in real:
            row["real_synapses"] = int(sum(n for n, b in zip(syn_n, bin_of) if not b))
        for k in ("1bit", "stored", "8bit"):
            bits = [lim.weight_bits if not b or k == "8bit" else (1 if k == "1bit" else stored_bits) for b in bin_of]
            row[f"bytes_{k}"] = math.ceil(sum(n * (w + int(index_bits)) for n, w in zip(syn_n, bits)) / 8)
            row[f"unique_bytes_{k}"] = math.ceil(sum(n * w for n, w in zip(uniq_n, bits)) / 8)
        rows.append(row)
    tot = {k: sum(r[k] for r in rows) for k in ("synapses", "unique_weights", "bytes_1bit", "bytes_stored",
                                                "bytes_8bit", "unique_bytes_1bit", "unique_bytes_stored",
                                                "unique_bytes_8bit")}
    ratio = (lambda a, b: float(a) / float(b) if b else None)
    spec = net.meta.get("target_spec") or {}
    if not spec:
        from ..target import load_target
        spec = load_target(net.target).to_dict()
    note = spec.get("synapse_formats", {}).get("binary_note", "the target file does not say how it stores ±1 weights")
    return {"binary_layers": sorted(binary), "weight_bits": lim.weight_bits, "binary_weight_bits_stored": stored_bits,
            "index_bits": int(index_bits), "layers": rows, "totals": tot,
            "ratio_8bit_over_stored": ratio(tot["bytes_8bit"], tot["bytes_stored"]),
            "ratio_8bit_over_1bit": ratio(tot["bytes_8bit"], tot["bytes_1bit"]),
            "statement": f"{BINARY_STATEMENT} Target {lim.name}: {note}"}


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
