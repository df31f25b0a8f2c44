"""The `cuba` network in Intel's Lava: stock processes (`run_lava`) and its NetX export (`run_netx`),
each bit-exact with our simulator (`kernel.py`).

Absolute imports only: Lava's compiler re-executes the modules in a Process's directory.
"""
from dataclasses import dataclass

import numpy as np
import torch

from neurodeploy.ir.spiking import SpikingGraph
from neurodeploy.sim import core


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
        ("a frame per step", enc.neuron.sequence),
        ("a spiking output layer", getattr(graph.output.neuron, "output", "v") == "spikes")) if on]
    if imported:
        raise NeurodeployError(f"these stock processes do not cover {', '.join(imported)}",
                               "schemes.cuba.lava.build_lava",
                               "run the network's NetX file in Lava instead (neurodeploy.backends.netx_run.run_netx)")
    steps = int(enc.neuron.n_steps)
    k = core.input_codes(enc, torch.as_tensor(np.asarray(x_one)[None])).numpy()[0]
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
    """Export `graph` to a NetX HDF5 file at `path` (`schemes.cuba.export.export_netx`) and run it the
    standard way in Lava (`backends.netx_run`: netx.hdf5.Network, a source on net.inp, fixed_pt):
    per-step spikes of every hidden layer and the last layer's v, as `run_lava` returns them
    (one netx block per IR layer)."""
    import time

    from neurodeploy.backends.netx_run import run_netx as run_file
    from neurodeploy.schemes.cuba.export import export_netx

    t0 = time.perf_counter()
    export_netx(graph, path)
    r = run_file(graph, path, x, int(graph.input.neuron.n_steps))
    spikes = {l.name: r.sent[i].astype(np.uint8) for i, l in enumerate(graph.neuron_layers()) if not l.is_readout}
    start = int(getattr(graph.output.neuron, "window_start", 0))
    v = r.readout_v
    v_start = v[:, start - 1] if start > 0 else np.zeros_like(v[:, 0])
    out = ((v[:, -1] - v_start) * float(graph.output.neuron.output_scale)).astype(np.float32)
    return LavaTrace(spikes, v, out, time.perf_counter() - t0)
