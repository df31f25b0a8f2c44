"""Kernels of the `cuba` scheme: Loihi's stock CUBA LIF, bit-exact with Lava's `PyLifModelBitAcc`.

Time runs in lock step like Loihi's cores (and Lava's LoihiProtocol): at step t a layer
receives a_in = sum over branches of (W_mant . s_src(t-1)) << weight_exp, what its sources
emitted one step earlier (each Dense/Conv synapse delays by one step), then updates u, v
(`ir.cuba.CubaLIF`) and emits.  The encoder sends its graded codes k at every step
1..n_steps.  The readout is a CubaReadout (a LIF that never fires); its v after n_steps
steps minus its v after window_start steps, times output_scale, is the output.

Engine dispatch (sim/engine.run_batch):
    from ..ir.cuba import CubaEncoder
    if isinstance(prep.graph.input.neuron, CubaEncoder):
        from . import cuba
        return cuba.run_batch(prep, x, record_codes)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..ir import cuba as cb
from ..ir.spiking import SpikingGraph
from . import engine
from .sdnn import branch_current     # Lava's Dense/Conv: a convolution's output wraps at 24 bits


def _decay(x: torch.Tensor, d: int) -> torch.Tensor:
    """sign(x*(4096-d)) * (|x*(4096-d)| >> 12): Lava's decay, rounding toward zero."""
    p = x * (cb.DECAY_UNITY - d)
    return torch.sign(p) * (torch.abs(p) >> cb.DECAY_SHIFT)


def lif_step(u: torch.Tensor, v: torch.Tensor, a_in: torch.Tensor, bias: torch.Tensor, neuron):
    """One CubaLIF / CubaReadout update on int64 tensors; returns (u, v, spikes bool)."""
    u = _decay(u, neuron.du + cb.DS_OFFSET) + (a_in << cb.ACT_SHIFT)
    u = torch.where(u > cb.MAX_UV, u - 2 * cb.MAX_UV, u)
    u = torch.where(u <= -cb.MAX_UV, u + 2 * cb.MAX_UV, u)
    v = _decay(v, neuron.dv + cb.DM_OFFSET) + u + bias
    v = torch.clamp(v, -cb.MAX_UV + 1, cb.MAX_UV - 1)
    s = v > (int(neuron.v_th_mant) << cb.VTH_SHIFT)
    v = torch.where(s, torch.zeros_like(v), v)
    return u, v, s


def reset_due(neuron, step: int) -> bool:
    """Lava's LIFReset zeroes u and v before the update of this step (time steps from 1)."""
    every = int(getattr(neuron, "reset_interval", 0))
    return every > 0 and step % every == int(neuron.reset_offset) % every


@dataclass
class Trace:
    """Everything a step-by-step comparison needs (IR layouts, numpy)."""
    spikes: dict          # layer -> uint8 (N, n_steps, *shape): spikes emitted at each step
    readout_v: np.ndarray  # int64 (N, n_steps, outputs): readout v after each step
    codes: np.ndarray     # int64 input codes (N, *shape)


def simulate_steps(prep: engine.Prepared, x: np.ndarray, trace: bool = False, probe=None):
    """Run the whole sample (n_steps steps); returns (readout value v(R) - v(window_start), spike
    counts per layer, input codes, Trace or None).  A readout whose `output` is "spikes" is
    counted (and traced) like a hidden layer.  `probe(step, u, v)`, if given, sees every
    layer's u and v (dicts of int64 tensors) after each step."""
    graph: SpikingGraph = prep.graph
    enc = graph.input
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    k = engine.input_codes(enc, xt)
    n = xt.shape[0]
    layers = graph.neuron_layers()
    dev = prep.device
    zeros = {l.name: torch.zeros((n,) + tuple(l.shape), dtype=torch.int64, device=dev) for l in layers}
    u = dict(zeros)
    v = dict(zeros)
    bias = {l.name: engine._bias(l, zeros[l.name]) for l in layers}
    prev = {l.name: torch.zeros_like(zeros[l.name], dtype=torch.uint8) for l in layers}
    sequence = bool(getattr(enc.neuron, "sequence", False))          # x: (N, n_steps, *shape)
    prev[enc.name] = torch.zeros_like(k[:, 0] if sequence else k)
    by_bias = getattr(enc.neuron, "drive", "spikes") == "bias"       # the codes are the fed layers' bias
    for l in layers:
        if by_bias and any(b.source == enc.name for b in l.branches):
            bias[l.name] = bias[l.name] + (k << int(l.bias_exp))
    counted = [l for l in layers if not l.is_readout or getattr(l.neuron, "output", "v") == "spikes"]
    counts = {l.name: torch.zeros_like(zeros[l.name]) for l in counted}
    rec = {l.name: [] for l in counted} if trace else None
    rv = [] if trace else None
    out = graph.output.name
    start = int(getattr(graph.output.neuron, "window_start", 0))
    v_start = zeros[out]
    for step in range(1, enc.neuron.n_steps + 1):
        now = {enc.name: k[:, step - 1] if sequence else k}
        for layer in layers:
            a_in = sum(branch_current(pb, prev[pb.source]) for pb in prep.branches[layer.name]
                       if not (by_bias and pb.source == enc.name))
            if reset_due(layer.neuron, step):
                u[layer.name], v[layer.name] = zeros[layer.name], zeros[layer.name]
            u[layer.name], v[layer.name], s = lif_step(u[layer.name], v[layer.name], a_in, bias[layer.name],
                                                       layer.neuron)
            if layer.name in counts:
                counts[layer.name] += s
                if trace:
                    rec[layer.name].append(s.to(torch.uint8))
            if layer.is_readout:
                if step == start:
                    v_start = v[layer.name].clone()
                if trace:
                    rv.append(v[layer.name].clone())
                continue
            now[layer.name] = s.to(torch.uint8)
        if probe is not None:
            probe(step, u, v)
        prev = now
    tr = None
    if trace:
        tr = Trace({name: torch.stack(p, 1).cpu().numpy() for name, p in rec.items()},
                   torch.stack(rv, 1).reshape(n, enc.neuron.n_steps, -1).cpu().numpy(), k.cpu().numpy())
    return v[out] - v_start, counts, k, tr


def run_batch(prep: engine.Prepared, x: np.ndarray, record_codes: bool = True) -> engine.BatchResult:
    """engine.run_batch for cuba graphs: output = readout v (or, for `output` "spikes", its spike
    count) * output_scale; codes = spike counts."""
    graph = prep.graph
    vout, counts, k, _ = simulate_steps(prep, x)
    n = vout.shape[0]
    if graph.output.name in counts:
        vout = counts.pop(graph.output.name)
    value = (vout.to(torch.float64) * float(graph.output.neuron.output_scale)).to(torch.float32)
    codes = {}
    if record_codes:
        codes = {graph.input.name: k, **counts}
    spikes = {name: int(c.sum()) for name, c in counts.items()}
    enc = graph.input.neuron
    sent = int((k != 0).sum())                                 # graded messages sent (or input spikes)
    if getattr(enc, "drive", "spikes") == "bias":
        sent = 0                                               # the codes are biases: no messages
    spikes[graph.input.name] = sent if getattr(enc, "sequence", False) else sent * enc.n_steps
    return engine.BatchResult(value.reshape(n, -1), vout, codes, spikes)


def trace(graph: SpikingGraph, x: np.ndarray, device: str = "cpu") -> Trace:
    """Per-step spikes of every layer and the readout's v after every step."""
    prep = engine.prepare(graph, device)
    return simulate_steps(prep, x, trace=True)[3]


def simulate(graph: SpikingGraph, x: np.ndarray, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Outputs (N, outputs) float32, without going through engine.run_batch's dispatch."""
    prep = engine.prepare(graph, device)
    outs = [run_batch(prep, x[i:i + batch_size], record_codes=False).output.cpu().numpy()
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs, axis=0)


# --------------------------------------------------------------------------- stock Lava cross-check
@dataclass
class LavaTrace:
    spikes: dict           # layer -> uint8 (N, n_steps, *shape), IR layout
    readout_v: np.ndarray  # int64 (N, n_steps, outputs)
    output: np.ndarray     # float32 (N, outputs): (v(R) - v(window_start)) * output_scale
    seconds: float


def _lava_shape(shape) -> tuple:
    shape = tuple(int(s) for s in shape)
    return shape[::-1] if len(shape) == 3 else shape


def _from_lava(a: np.ndarray, lead: int) -> np.ndarray:
    """(lead dims, W, H, C) -> (lead dims, C, H, W); (F,) unchanged."""
    if a.ndim - lead == 3:
        return np.moveaxis(a, [lead, lead + 1, lead + 2], [lead + 2, lead + 1, lead])
    return a


def build_lava(graph: SpikingGraph, x_one: np.ndarray):
    """Stock Lava processes (RingBuffer source -> Dense/Conv -> LIF ...) for one sample.

    One Lava synapse per IR branch (`backends.lava.mapping.map_branch` folds pooling/flatten
    into the Conv/Dense; anything it cannot fold into one stage is refused, since a second
    stage would add a step of delay).  Input-source synapses take graded spikes
    (num_message_bits 24); Dense weights are stored as (2 W_mant, weight_exp - 1), exact
    through Lava's 8-bit clip and LSB truncation; Conv kernels as W_mant << weight_exp (the
    CPU Conv model ignores weight_exp).  Returns (source, {layer: LIF}, {layer: sink}, monitor).
    """
    from neurodeploy.backends.lava.compat import ensure_lava
    ensure_lava()
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    from neurodeploy.backends.lava.mapping import ConvStage, DenseStage, map_branch
    from neurodeploy.errors import NeurodeployError

    enc = graph.input
    imported = [what for what, on in (
        ("LIFReset", any(getattr(l.neuron, "reset_interval", 0) for l in graph.neuron_layers())),
        ("input by bias", getattr(enc.neuron, "drive", "spikes") == "bias"),
        ("a frame per step", getattr(enc.neuron, "sequence", False)),
        ("a spiking output layer", getattr(graph.output.neuron, "output", "v") == "spikes")) if on]
    if imported:
        raise NeurodeployError(f"these stock processes do not cover {', '.join(imported)}", "sim.cuba.build_lava",
                               "run the network's NetX file in Lava instead (neurodeploy.backends.netx_run.run_netx)")
    steps = int(enc.neuron.n_steps)
    k = engine.input_codes(enc, torch.as_tensor(np.asarray(x_one)[None])).numpy()[0]
    kl = k.transpose(2, 1, 0) if k.ndim == 3 else k
    source = Source(data=np.repeat(kl[..., None], steps, axis=-1).astype(np.int32))
    ports, shapes, lifs, sinks = {enc.name: source.s_out}, {enc.name: tuple(enc.shape)}, {}, {}
    for layer in graph.neuron_layers():
        n = layer.neuron
        lshape = _lava_shape(layer.shape)
        bm = np.asarray(layer.bias_mant, dtype=np.int64)
        if len(layer.shape) == 3:
            bm = bm.reshape(1, 1, -1) if bm.ndim == 1 else bm
        bm = np.broadcast_to(bm, lshape).astype(np.int32).copy()
        lif = LIF(shape=lshape, du=int(n.du), dv=int(n.dv), vth=int(n.v_th_mant), bias_mant=bm,
                  bias_exp=int(layer.bias_exp), name=layer.name)
        for b in layer.branches:
            plan = map_branch(b, shapes[b.source])
            if len(plan.stages) != 1 or plan.delay:
                raise NeurodeployError("branch does not fold into one Lava synapse", f"layer '{layer.name}'")
            st = plan.stages[0]
            bits = 24 if b.source == enc.name else 0
            port, src_shape = ports[b.source], shapes[b.source]
            if isinstance(st, ConvStage):
                syn_p = Conv(weight=st.lava_weight(), weight_exp=0, input_shape=_lava_shape(st.in_shape),
                             padding=(st.padding[1], st.padding[0]), stride=(st.stride[1], st.stride[0]),
                             dilation=(st.dilation[1], st.dilation[0]), groups=int(st.groups), num_message_bits=bits)
            elif isinstance(st, DenseStage):
                w, wexp = st.lava_weights()
                syn_p = Dense(weights=w, weight_exp=wexp, num_message_bits=bits)
                if len(src_shape) == 3:
                    port = port.transpose([2, 1, 0]).flatten()     # (W,H,C) -> PyTorch (C,H,W) flatten order
            else:
                raise NeurodeployError(f"unsupported stage {type(st).__name__}", f"layer '{layer.name}'")
            port.connect(syn_p.s_in)
            out = syn_p.a_out
            if len(st.out_shape) == 1 and len(layer.shape) == 3:
                raise NeurodeployError("dense output into a conv-shaped layer", f"layer '{layer.name}'")
            out.connect(lif.a_in)
        lifs[layer.name] = lif
        ports[layer.name] = lif.s_out
        shapes[layer.name] = tuple(layer.shape)
        if not layer.is_readout:
            sink = Sink(shape=lshape, buffer=steps)
            lif.s_out.connect(sink.a_in)
            sinks[layer.name] = sink
    mon = Monitor()
    mon.probe(lifs[graph.output.name].v, steps)
    return source, lifs, sinks, mon


def run_lava(graph: SpikingGraph, x: np.ndarray) -> LavaTrace:
    """Run each sample of x through stock Lava (Loihi2SimCfg(select_tag="fixed_pt")), one network
    per sample (fresh state); per-step spikes of every layer and the readout's v."""
    import time
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    t0 = time.perf_counter()
    steps = int(graph.input.neuron.n_steps)
    spikes = {l.name: [] for l in graph.neuron_layers() if not l.is_readout}
    vs = []
    for xi in np.asarray(x):
        source, lifs, sinks, mon = build_lava(graph, xi)
        readout = lifs[graph.output.name]
        try:
            source.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            for name, sink in sinks.items():
                d = np.asarray(sink.data.get()).astype(np.uint8)            # (*lava shape, steps)
                spikes[name].append(_from_lava(np.moveaxis(d, -1, 0), 1))
            data = mon.get_data()[readout.name]["v"]
            vs.append(np.asarray(data).astype(np.int64).reshape(steps, -1))
        finally:
            source.stop()
    start = int(getattr(graph.output.neuron, "window_start", 0))
    v = np.stack(vs)
    v_start = v[:, start - 1] if start > 0 else np.zeros_like(v[:, 0])
    out = ((v[:, -1] - v_start) * float(graph.output.neuron.output_scale)).astype(np.float32)
    return LavaTrace({k: np.stack(s) for k, s in spikes.items()}, v, out, time.perf_counter() - t0)


def run_netx(graph: SpikingGraph, x: np.ndarray, path) -> LavaTrace:
    """Export `graph` to a NetX HDF5 file at `path` (`schemes.cuba.export_netx`) and run it the
    standard way in Lava (`backends.netx_run`: netx.hdf5.Network, a source on net.inp, fixed_pt):
    per-step spikes of every hidden layer and the last layer's v, as `run_lava` returns them
    (one netx block per IR layer)."""
    import time

    from ..backends.netx_run import run_netx as run_file
    from ..schemes.cuba import export_netx

    t0 = time.perf_counter()
    export_netx(graph, path)
    r = run_file(graph, path, x, int(graph.input.neuron.n_steps))
    spikes = {l.name: r.sent[i].astype(np.uint8) for i, l in enumerate(graph.neuron_layers()) if not l.is_readout}
    start = int(getattr(graph.output.neuron, "window_start", 0))
    v = r.readout_v
    v_start = v[:, start - 1] if start > 0 else np.zeros_like(v[:, 0])
    out = ((v[:, -1] - v_start) * float(graph.output.neuron.output_scale)).astype(np.float32)
    return LavaTrace(spikes, v, out, time.perf_counter() - t0)
