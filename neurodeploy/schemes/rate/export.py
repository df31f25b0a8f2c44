"""Export a compiled `rate` network as a NIR graph (Neuromorphic Intermediate Representation).

NIR (the `nir` package, https://neuroir.org) describes a spiking network as a graph of
continuous-time primitives; simulators (Norse, snnTorch, Sinabs, Rockpool, Lava-dl, ...)
read it with their own discretisation.  `to_nir` writes our integer rate network so that a
discrete-time reader with dt = 1 and the NIR spec's semantics reproduces it as closely as
NIR allows:

Units.  Everything stays in our integer units: weights are the mantissas times
2**weight_exp, thresholds the v_th_mant of each layer, biases the per-step integer bias;
all are stored as float32 (exact: every value is an integer below 2**24).  One NIR time step
is one step of our simulator (dt = 1, r = 1: v <- v + I(t)).

Mapping (IR -> NIR):
  InputEncoder (RateEncoder)  -> nir.Input of the encoder's shape.  The graph's input is the
                                 encoder's spike trains, not the float image: `input_spikes`
                                 (below) makes them, (steps, N, *shape) with steps = T + depth
                                 (T steps of spikes, then `depth` steps of zeros).
  Branch ops                  -> one NIR node each, chained source -> ... -> neuron:
      Conv                    -> nir.Conv2d (input_shape set, zero bias unless it carries the layer's)
      Dense                   -> nir.Affine
      ChannelScale            -> diagonal nir.Conv2d 1x1 on (C, H, W), diagonal nir.Affine on (F,):
                                 every reader has those, few have nir.Scale
      SumPool                 -> nir.SumPool2d (no padding; our avg pooling already has 1/k^2 in the weights)
      Flatten                 -> nir.Flatten(start_dim=0) (NIR shapes have no batch axis)
  Layer with several branches -> several edges into one neuron node (NIR sums a node's inputs);
                                 the layer's bias rides on one branch's weighted node.
  RateIF                      -> nir.IF(r=1, v_threshold=v_th_mant - 1/2, v_reset=0).  NIR fires on
                                 v > v_threshold, we on v >= v_th_mant: on integer potentials these
                                 agree exactly with the half-unit offset.
  Readout                     -> the chain into nir.I(r=1) (an integrator: our non-spiking readout
                                 accumulates its input), -> nir.Output.  Its state after the
                                 run's steps is our readout U; value = U * output_scale
                                 (metadata).  readout="current" leaves the integrator out
                                 (chain -> Output): sum the Output over the steps instead -- for
                                 readers without nir.I (Norse 1.1, snnTorch 1.0).

What is lost (each is recorded in the graph's metadata; tests/test_nir.py measures the effect):
  * Reset.  NIR's IF resets *to* v_reset; it has no subtractive reset.  Networks compiled with
    --reset zero (Loihi's stock LIF) keep their reset exactly; the default --reset subtract keeps the residue
    above threshold at every spike, which a NIR reader drops: strong inputs undercount.
    The node metadata says reset="subtract" for readers that can honour it.
  * Initial potential.  NIR has no initial-state field and readers start at 0 (Norse starts at
    v_reset).  Our IF neurons start at v_init = v_th/2 (so counts round like QCFS).
    v_init="bias" (default) spreads it over the run as extra bias, v_init / steps per step, so
    that the run's total drive is ours (the potential is then no longer an integer);
    v_init="drop" leaves it out (counts round down instead of to nearest);
    both keep v_init in the node metadata.
  * Synaptic delay.  We delay every synapse by one step (as Loihi); NIR edges are
    instantaneous, so a reader that evaluates the graph once per step moves each layer's
    input `depth` steps earlier relative to its constant bias (the totals are unchanged).
    delays=True emits nir.Delay(1) after every spike source, which makes the graph exact in
    time (tests/test_nir.py: an interpreter honouring Delay, v_init and the reset reproduces our
    readout bit for bit), but few readers implement nir.Delay (Norse 1.1 and snnTorch 1.0 do
    not), so it is off by default.
  * The readout's bias is added once in our readout; in NIR it is bias / steps per step.
  * State saturation at state_bits (never reached by compiled networks: the compiler sizes
    the state for the whole run) and the input quantiser (float -> codes) stay on the host.

Measured (tests/test_nir.py, T = 16): Norse 1.1 running the default export agrees with our
simulator on 98.9% (reset zero) / 97.6% (subtract) of the digits model's predictions; on the
residual digits model 73% / 44% (with subtract, mostly the missing subtractive reset).  With
delays=True, v_init="drop" and the metadata's v_init and reset put back, the graph reproduces
our readout bit for bit.

Schemes that cannot be expressed:
  * bitplane: its neurons accumulate T_src bit planes with doubling (U <- 2U + I(t)), then
    emit their code MSB first against halving thresholds v_th * 2^(T-j) -- a time-varying
    threshold and a doubling integrator that no NIR primitive has (NIR's neurons are
    IF / LIF / CubaLIF with constant parameters); approximating it would silently change
    every code.  `to_nir` refuses it with a NeurodeployError.
  * any layer whose neuron is not RateIF (or the final Readout), and max pooling (the rate
    scheme refuses it already).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ... import __version__
from ...errors import NeurodeployError, UnsupportedError
from ...registry import get_scheme
from .neurons import RateEncoder, RateIF
from ...ir import synapses as syn
from ...ir.spiking import InputEncoder, SpikingGraph
from . import kernel as rate_kernels
from ...sim.core import depth
from ...ir.synapse_ops import apply_op

V_INIT_MODES = ("bias", "drop")
READOUT_MODES = ("integrator", "current")


def run_steps(net: SpikingGraph) -> int:
    """Steps one sample takes: the encoder's T plus the synapse hops to the readout."""
    return int(net.input.neuron.n_steps) + depth(net)


def check_expressible(net: SpikingGraph, where: str = "") -> None:
    """Raise a NeurodeployError unless `net` has a NIR equivalent (the `rate` scheme)."""
    where = where or f"scheme '{net.scheme}'"
    if net.scheme != "rate":
        why = get_scheme(net.scheme).why_no_export.get("nir")
        raise UnsupportedError(f"a {net.scheme} network has no NIR equivalent" + (f" ({why})" if why else ""),
                               where, "compile with --scheme rate to export to NIR")
    if not isinstance(net.input.neuron, RateEncoder):
        raise UnsupportedError(f"input encoder {type(net.input.neuron).__name__} has no NIR equivalent",
                               where, "compile with --scheme rate to export to NIR")
    layers = net.neuron_layers()
    for layer in layers:
        last = layer is layers[-1]
        if last and not layer.is_readout:
            raise UnsupportedError("the last layer is not a readout", f"layer '{layer.name}'")
        if not last and not isinstance(layer.neuron, RateIF):
            raise UnsupportedError(f"neuron {type(layer.neuron).__name__} has no NIR equivalent",
                                   f"layer '{layer.name}'", "compile with --scheme rate to export to NIR")
        for b in layer.branches:
            for op in b.ops:
                if isinstance(op, syn.MaxPool):
                    raise UnsupportedError("max pooling of spike trains has no NIR equivalent here",
                                           f"layer '{layer.name}'", "use average pooling")


def input_spikes(net: SpikingGraph, x: np.ndarray) -> np.ndarray:
    """The exported graph's input for float samples x (N, *shape): the rate encoder's spikes,
    float32 (steps, N, *shape) with steps = run_steps(net) (T steps of spikes, then zeros)."""
    from ...sim.core import input_codes
    enc = net.input
    k = input_codes(enc, torch.as_tensor(np.array(x, copy=True)))
    t_in = int(enc.neuron.n_steps)
    v = torch.full_like(k, t_in // 2)
    out = torch.zeros((run_steps(net),) + tuple(k.shape), dtype=torch.float32)
    for t in range(t_in):
        v, s = rate_kernels.encoder_step(v, k, t_in)
        out[t] = s.to(torch.float32)
    return out.numpy()


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64).astype(np.float32))


class _Names:
    """NIR node names: HDF5 group names without '/', '.' (nirtorch turns it into '_') or clashes."""

    def __init__(self):
        self.used: set[str] = set()

    def __call__(self, base: str) -> str:
        name = re.sub(r"[^A-Za-z0-9_]", "_", base) or "node"
        if name[0].isdigit():
            name = "n_" + name
        cand, i = name, 1
        while cand in self.used:
            i += 1
            cand = f"{name}_{i}"
        self.used.add(cand)
        return cand


def _shapes_through(ops: list, in_shape: tuple) -> list[tuple]:
    """Input shape of each op and the final output shape."""
    shapes = [tuple(in_shape)]
    x = torch.zeros((1,) + tuple(in_shape), dtype=torch.float64)
    for op in ops:
        x = apply_op(op, x)
        shapes.append(tuple(x.shape[1:]))
    return shapes


def _bias_site(ops: list, shapes: list[tuple], bias: np.ndarray):
    """(op index, bias for that op's output) such that carrying it there adds `bias` at the
    branch's end; None when the ops after the weighted one do not allow it."""
    idx = max(i for i, op in enumerate(ops) if isinstance(op, syn.WEIGHTED))
    b = np.asarray(bias, dtype=np.float64)
    for j in range(len(ops) - 1, idx, -1):
        op, in_shape = ops[j], shapes[j]
        if isinstance(op, syn.SumPool):      # no padding: every output sums kh*kw copies
            if any(op.padding):
                return None
            b = b / float(op.kernel[0] * op.kernel[1])
        elif isinstance(op, syn.Flatten):    # per-feature -> per-channel, if constant per channel
            c = in_shape[0]
            if b.ndim == 0:
                continue
            per = b.reshape(c, -1) if b.size == int(np.prod(in_shape)) else None
            if per is None or not np.all(per == per[:, :1]):
                return None
            b = per[:, 0]
        else:
            return None
    return idx, b


def _channels(bias: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(bias, dtype=np.float64), (n,)).copy()


def _op_node(op, in_shape: tuple, bias: np.ndarray | None, weight_exp: int):
    """The NIR node of one synapse op (weights in integer units: mantissa * 2**weight_exp)."""
    import nir
    scale = float(2 ** weight_exp)
    if isinstance(op, syn.Conv):
        w = np.asarray(op.weight, dtype=np.float64) * scale
        return nir.Conv2d(input_shape=tuple(int(s) for s in in_shape[1:]), weight=_f32(w),
                          stride=tuple(int(s) for s in op.stride), padding=tuple(int(p) for p in op.padding),
                          dilation=tuple(int(d) for d in op.dilation), groups=int(op.groups),
                          bias=_f32(np.zeros(w.shape[0]) if bias is None else _channels(bias, w.shape[0])))
    if isinstance(op, syn.Dense):
        w = np.asarray(op.weight, dtype=np.float64) * scale
        return nir.Affine(weight=_f32(w), bias=_f32(np.zeros(w.shape[0]) if bias is None
                                                    else _channels(bias, w.shape[0])))
    if isinstance(op, syn.ChannelScale):
        c = int(in_shape[0])
        d = _channels(op.weight, c) * scale
        b = np.zeros(c) if bias is None else _channels(bias, c)
        if len(in_shape) == 3:   # diagonal 1x1 conv (not groups=C: nir 1.0.8's type check ignores groups)
            return nir.Conv2d(input_shape=tuple(int(s) for s in in_shape[1:]),
                              weight=_f32(np.diag(d).reshape(c, c, 1, 1)),
                              stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, bias=_f32(b))
        return nir.Affine(weight=_f32(np.diag(d)), bias=_f32(b))
    if isinstance(op, syn.SumPool):
        return nir.SumPool2d(kernel_size=np.array(op.kernel, dtype=np.int64),
                             stride=np.array(op.stride, dtype=np.int64),
                             padding=np.array(op.padding, dtype=np.int64))
    if isinstance(op, syn.Flatten):
        return nir.Flatten(input_type={"input": np.array(in_shape, dtype=np.int64)}, start_dim=0, end_dim=-1)
    raise UnsupportedError(f"synapse op {type(op).__name__} has no NIR equivalent")


def to_nir(net: SpikingGraph, v_init: str = "bias", readout: str = "integrator", delays: bool = False):
    """The NIR graph (nir.NIRGraph) of a compiled `rate` network; see the module docstring.

    delays=True puts a nir.Delay(1) after the input and after every IF node (our one-step
    synaptic delay, shared by all the node's outgoing branches)."""
    import nir
    if v_init not in V_INIT_MODES:
        raise NeurodeployError(f"unknown v_init handling '{v_init}'", "v_init", f"use one of {V_INIT_MODES}")
    if readout not in READOUT_MODES:
        raise NeurodeployError(f"unknown readout '{readout}'", "readout", f"use one of {READOUT_MODES}")
    check_expressible(net)
    enc: InputEncoder = net.input
    steps = run_steps(net)
    names = _Names()
    nodes, edges = {}, []
    node_of = {enc.name: names(enc.name)}
    nodes[node_of[enc.name]] = nir.Input(input_type={"input": np.array(enc.shape, dtype=np.int64)},
                                         metadata={"neurodeploy_layer": enc.name, "encoding": "rate",
                                                   "code_max": int(enc.neuron.code_max),
                                                   "n_steps": int(enc.neuron.n_steps)})
    shapes = {enc.name: tuple(enc.shape)}
    out_name = None
    delayed: dict[str, str] = {}

    def source_node(src: str) -> str:
        if not delays:
            return node_of[src]
        if src not in delayed:
            delayed[src] = names(f"{src}_delay")
            nodes[delayed[src]] = nir.Delay(delay=np.ones(shapes[src], dtype=np.float32))
            edges.append((node_of[src], delayed[src]))
        return delayed[src]

    for layer in net.neuron_layers():
        is_readout = layer.is_readout
        nb = len(layer.branches)
        # the Output node is called "output" whatever the readout layer's name
        target = names("output" if is_readout and readout == "current" else layer.name)
        if is_readout:
            bias = layer.bias.astype(np.float64) / steps
        else:
            bias = layer.bias.astype(np.float64)
            if v_init == "bias":
                bias = bias + float(layer.neuron.v_init) / steps
        # the branch that carries the bias: preferably one whose weighted op ends the chain (the
        # bias then stays exact), else one where it can be moved back through pools / flatten
        chains = [_shapes_through(b.ops, shapes[b.source]) for b in layer.branches]
        sites = [_bias_site(b.ops, chains[i], bias) for i, b in enumerate(layer.branches)]

        def rank(i):
            if sites[i] is None:
                return (2, i)
            return (0 if sites[i][0] == len(layer.branches[i].ops) - 1 else 1, i)
        carrier = min(range(nb), key=rank)
        if sites[carrier] is None:
            raise UnsupportedError("the layer's bias cannot be placed on any branch in NIR",
                                   f"layer '{layer.name}'")
        for i, b in enumerate(layer.branches):
            prev = source_node(b.source)
            for j, op in enumerate(b.ops):
                op_bias = sites[i][1] if (i == carrier and sites[i][0] == j) else None
                if isinstance(op, syn.WEIGHTED) and op_bias is None:
                    op_bias = np.zeros(1)
                kind = type(op).__name__.lower()
                nm = names(f"{layer.name}_{kind}" if nb == 1 else f"{layer.name}_b{i}_{kind}")
                nodes[nm] = _op_node(op, chains[i][j], op_bias, b.weight_exp)
                edges.append((prev, nm))
                prev = nm
            edges.append((prev, target))
        shape = tuple(int(s) for s in layer.shape)
        if is_readout:
            meta = {"neurodeploy_layer": layer.name, "kind": "Readout",
                    "output_scale": float(layer.neuron.output_scale),
                    "bias_once": _f32(layer.bias), "bias_per_step": "bias_once / time_steps"}
            if readout == "integrator":
                nodes[target] = nir.I(r=np.ones(shape, dtype=np.float32), metadata=meta)
                out_name = names("output")
                nodes[out_name] = nir.Output(output_type={"output": np.array(shape, dtype=np.int64)},
                                             metadata={"value": "state of the integrator after time_steps "
                                                                "steps, times output_scale"})
                edges.append((target, out_name))
            else:   # the chain feeds the Output directly: the reader sums it over the run's steps
                nodes[target] = nir.Output(output_type={"output": np.array(shape, dtype=np.int64)},
                                           metadata={**meta, "value": "sum over time_steps steps, "
                                                                      "times output_scale"})
                out_name = target
        else:
            n = layer.neuron
            th = np.full(shape, float(n.v_th_mant) - 0.5)
            nodes[target] = nir.IF(r=np.ones(shape, dtype=np.float32), v_threshold=_f32(th),
                                   v_reset=np.zeros(shape, dtype=np.float32),
                                   metadata={"neurodeploy_layer": layer.name, "kind": "RateIF",
                                             "v_th_mant": int(n.v_th_mant), "v_init": int(n.v_init),
                                             "v_init_handling": v_init, "reset": n.reset,
                                             "state_bits": int(n.state_bits), "code_max": int(n.code_max),
                                             "fires_on": "v >= v_th_mant (exported as v > v_th_mant - 0.5)"})
        node_of[layer.name] = target
        shapes[layer.name] = shape
    resets = sorted({l.neuron.reset for l in net.neuron_layers() if isinstance(l.neuron, RateIF)})
    meta = {
        "producer": f"neurodeploy {__version__}",
        "scheme": net.scheme, "target": net.target,
        "dt": 1.0, "time_steps": int(steps), "input_steps": int(enc.neuron.n_steps),
        "depth": int(depth(net)),
        "units": "integer: weights = mantissa * 2**weight_exp, thresholds = v_th_mant, per-step biases",
        "input": "rate-encoder spike trains (time_steps, *shape): T steps of spikes then zeros "
                 "(neurodeploy.backends.nir_export.input_spikes)",
        "readout": readout, "output_node": out_name,
        "v_init_handling": v_init, "delays": "nir.Delay(1) after every spike source" if delays else "none",
        "reset": ",".join(resets),
        "lost": "subtractive reset (NIR IF resets to v_reset); initial potential v_init (no NIR field); "
                "one-step synaptic delays (NIR edges are instantaneous); readout bias added once",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def export_nir(net: SpikingGraph, path: str | Path, v_init: str = "bias", readout: str = "integrator",
               delays: bool = False) -> Path:
    """Write to_nir(net, ...) to `path` atomically (temp file in the same folder + rename)."""
    import nir
    graph = to_nir(net, v_init=v_init, readout=readout, delays=delays)
    path = Path(path)
    if path.is_dir():
        raise NeurodeployError("is a directory", str(path), "pass a file name for the NIR graph, e.g. net.nir")
    import io

    from ...fsutil import write_bytes_atomic
    buf = io.BytesIO()                   # built in memory: see fsutil.atomic_hdf5 for why
    nir.write(buf, graph)
    write_bytes_atomic(path, buf.getvalue())
    return path
