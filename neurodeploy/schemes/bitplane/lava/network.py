"""Build a Lava process graph from a bitplane `SpikingGraph` and run it on Lava's CPU simulator."""

import time
from dataclasses import dataclass

import numpy as np
import torch

from neurodeploy.backends.lava.compat import ensure_lava
from neurodeploy.backends.lava.mapping import (GRADED_MESSAGE_BITS, ConvStage, DenseStage, MaxPoolStage,
                                               NetworkPlan, lava_shape, load_graph, to_lava)
from neurodeploy.errors import NeurodeployError
from neurodeploy.schemes.bitplane.lava.plan import plan_network

ensure_lava()

from lava.proc.conv.process import Conv  # noqa: E402
from lava.proc.dense.process import Dense  # noqa: E402
from lava.proc.io.sink import RingBuffer as SinkBuffer  # noqa: E402
from lava.proc.io.source import RingBuffer as SourceBuffer  # noqa: E402

from neurodeploy.backends.lava.network import LavaNetwork, adapt_port, lava_bias  # noqa: E402
from neurodeploy.backends.lava.processes import GradedRelay, delayed  # noqa: E402
from neurodeploy.schemes.bitplane.lava.processes import BitplaneIF, BitplaneReadout, BitserialMaxPool  # noqa: E402


@dataclass
class LavaResult:
    outputs: np.ndarray            # float32 (N, outputs): readout U * output_scale
    readout_state: np.ndarray      # int64 (N, outputs)
    planes: dict                   # layer -> uint8 (N, T, *shape) spikes it emitted (IR layout)
    period: int                    # steps per sample
    steps: int                     # steps simulated
    run_seconds: float             # wall time of proc.run (compile + simulate)
    total_seconds: float = 0.0     # build + run + read-back


def input_planes(graph, x: np.ndarray) -> np.ndarray:
    """BitplaneEncoder planes (N, T, *shape) uint8, codes exactly as the simulator computes them."""
    from neurodeploy.schemes.bitplane.kernel import encode_planes
    from neurodeploy.sim.core import input_codes
    enc = graph.input
    codes = input_codes(enc, torch.as_tensor(np.asarray(x)))
    return encode_planes(codes, enc.neuron.n_steps).numpy().astype(np.uint8)


def build(compiled_dir_or_graph, x: np.ndarray, fold: bool = True, record_planes: bool = True) -> LavaNetwork:
    """Lava processes for the network, with the N samples of `x` queued in the injector.

    Run with ``net.run()`` (i.e. ``net.injector.run(RunSteps(net.num_steps),
    Loihi2SimCfg(select_tag="fixed_pt"))``), then ``net.collect()`` and ``net.stop()``.
    """
    graph = load_graph(compiled_dir_or_graph)
    plan = plan_network(graph, fold=fold)
    x = np.asarray(x)
    enc = graph.input
    if x.ndim != len(enc.input_shape) + 1 or tuple(x.shape[1:]) != tuple(enc.input_shape):
        raise NeurodeployError(f"input batch has shape {x.shape}, the network expects (N, {', '.join(map(str, enc.input_shape))})",
                               "run_lava")
    n = int(x.shape[0])
    if n < 1:
        raise NeurodeployError("no samples to run", "run_lava")
    p = plan.period
    planes = input_planes(graph, x)                                          # (N, T, *shape)
    lp_in = plan.layers[enc.name]
    data = np.zeros(lava_shape(enc.shape) + (n * p,), dtype=np.int32)
    for t in range(lp_in.n_steps):
        plane = np.moveaxis(to_lava(planes[:, t], lead=1), 0, -1)            # (*lava shape, N)
        data[..., np.arange(n) * p + lp_in.emit_start + t] = plane
    injector = SourceBuffer(data=data)

    procs = {enc.name: injector}
    ports = {enc.name: injector.s_out}
    branches, spike_readers = {}, {}
    for layer in graph.neuron_layers():
        lp = plan.layers[layer.name]
        shape = lava_shape(layer.shape)
        if lp.kind == "if":
            neuron = BitplaneIF(shape=shape, v_th_mant=layer.neuron.v_th_mant, code_max=layer.neuron.code_max,
                                n_steps=layer.neuron.n_steps, bias_mant=lava_bias(layer), bias_exp=layer.bias_exp,
                                period=p, acc_start=lp.acc_start, acc_end=lp.acc_end, name=layer.name)
        else:
            neuron = BitplaneReadout(shape=shape, bias_mant=lava_bias(layer), bias_exp=layer.bias_exp,
                                     period=p, acc_start=lp.acc_start, acc_end=lp.acc_end, name=layer.name)
        branches[layer.name] = [_connect_branch(bp, plan, ports[bp.source], neuron, layer) for bp in lp.branches]
        procs[layer.name] = neuron
        ports[layer.name] = neuron.s_out
        if lp.kind == "if" and record_planes:
            sink = SinkBuffer(shape=shape, buffer=n * p)
            neuron.s_out.connect(sink.a_in)
            spike_readers[layer.name] = sink
    readout = procs[graph.output.name]
    reader = SinkBuffer(shape=lava_shape(graph.output.shape), buffer=n * p)
    readout.s_out.connect(reader.a_in)
    return LavaNetwork(plan, n, planes, injector, procs, branches, reader, spike_readers)


def _connect_branch(bp, plan: NetworkPlan, port, neuron, layer) -> list:
    src = plan.layers[bp.source]
    shape = tuple(src.shape)
    port, made = delayed(port, lava_shape(shape), bp.delay, f"{layer.name}<{bp.source}:delay")
    after_synapse = False
    for i, st in enumerate(bp.stages):
        if isinstance(st, MaxPoolStage):
            mp = BitserialMaxPool(in_shape=lava_shape(st.in_shape), out_shape=lava_shape(st.out_shape),
                                  **st.lava_params(), period=plan.period, start=src.emit_start + bp.delay,
                                  n_steps=src.n_steps,
                                  name=f"{layer.name}<{bp.source}:maxpool")
            adapt_port(port, shape, st.in_shape).connect(mp.s_in)
            port, shape, after_synapse = mp.s_out, st.out_shape, False
            made.append(mp)
            continue
        if after_synapse:
            relay = GradedRelay(shape=lava_shape(shape), name=f"{layer.name}<{bp.source}:relay{i}")
            port.connect(relay.a_in)
            port = relay.s_out
            made.append(relay)
        bits = GRADED_MESSAGE_BITS if st.graded_in else 0
        if isinstance(st, ConvStage):
            syn = Conv(weight=st.lava_weight(), weight_exp=0, input_shape=lava_shape(st.in_shape),
                       padding=(st.padding[1], st.padding[0]), stride=(st.stride[1], st.stride[0]),
                       dilation=(st.dilation[1], st.dilation[0]), groups=int(st.groups),
                       num_message_bits=bits, name=f"{layer.name}<{bp.source}:conv{i}")
            if tuple(syn.output_shape) != lava_shape(st.out_shape):
                raise NeurodeployError(f"Lava Conv output {tuple(syn.output_shape)} != expected "
                                       f"{lava_shape(st.out_shape)}", layer.name)
        elif isinstance(st, DenseStage):
            w, wexp = st.lava_weights()
            syn = Dense(weights=w, weight_exp=wexp, num_message_bits=bits, name=f"{layer.name}<{bp.source}:dense{i}")
        else:                                                        # pragma: no cover
            raise NeurodeployError(f"unknown stage {type(st).__name__}", layer.name)
        target = (int(np.prod(st.in_shape)),) if isinstance(st, DenseStage) else st.in_shape
        adapt_port(port, shape, target).connect(syn.s_in)
        port, shape, after_synapse = syn.a_out, st.out_shape, True
        made.append(syn)
    adapt_port(port, shape, layer.shape).connect(neuron.a_in)
    return made


def run_lava(graph_or_dir, x: np.ndarray, fold: bool = True, record_planes: bool = True) -> LavaResult:
    """Run N samples through Lava's CPU simulation (fixed_pt models), one after another."""
    t0 = time.perf_counter()
    net = build(graph_or_dir, x, fold=fold, record_planes=record_planes)
    run_s = net.run()                     # stops the runtime itself if the run fails
    try:
        state, planes = net.collect()
    finally:
        net.stop()
    graph = net.plan.graph
    scale = float(graph.output.neuron.output_scale)
    outputs = (state.astype(np.float64) * scale).astype(np.float32)
    return LavaResult(outputs, state, planes, net.plan.period, net.num_steps, run_s, time.perf_counter() - t0)
