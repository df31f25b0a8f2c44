"""The vectorised fixed-point simulator: runs a `SpikingGraph` on batches of inputs.

Integer state lives in torch int64 tensors.  Synapse ops run as float convolutions /
matmuls on spike planes, which is exact because every partial sum is an integer below
2^24 (float32) or 2^53 (float64): `prepare` bounds each branch statically and picks the
fastest exact dtype.  The T planes of a layer go through the synapses in one batched call.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import NeurodeployError
from ..ir import neurons as nrn
from ..ir.cuba import CubaEncoder
from ..ir.tsa import TSAEncoder
from ..ir import synapses as syn
from ..ir.spiking import InputEncoder, Layer, SpikingGraph
from . import bitplane as bp
from . import rate
from .synapse_ops import abs_bound, apply_ops

FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53


@dataclass
class PreparedBranch:
    source: str
    ops: list
    weight_exp: int
    dtype: torch.dtype
    weights: dict                 # op index -> weight tensor in `dtype`
    bitserial_maxpool: syn.MaxPool | None = None


@dataclass
class Prepared:
    graph: SpikingGraph
    device: torch.device
    branches: dict = field(default_factory=dict)   # layer name -> [PreparedBranch]


def prepare(graph: SpikingGraph, device: str = "cpu") -> Prepared:
    """Weights on `device`, each branch in the narrowest float dtype whose synaptic sums are exact
    (|Σ W·p| ≤ Σ|W|·p_max below 2^24: float32, below 2^53: float64).  p_max is the source's
    `max_payload` (graded spikes: input codes, sigma-delta or ReverB payloads) or 1 (binary and
    ternary spikes)."""
    dev = torch.device(device)
    prep = Prepared(graph, dev)
    shapes = {l.name: l.shape for l in graph.layers}
    p_max = {l.name: float(getattr(l.neuron, "max_payload", 1)) for l in graph.layers}
    for layer in graph.neuron_layers():
        out = []
        for b in layer.branches:
            ops = list(b.ops)
            mp = None
            if ops and isinstance(ops[0], syn.MaxPool):
                mp, ops = ops[0], ops[1:]
            bound = float(np.max(abs_bound(ops, _shape_after(mp, shapes[b.source]), p_max[b.source])))
            if bound < FLOAT32_EXACT:
                dtype = torch.float32
            elif bound < FLOAT64_EXACT:
                dtype = torch.float64
            else:
                raise NeurodeployError(f"synaptic sums up to {bound:.3g} exceed exact float64 range",
                                       f"layer '{layer.name}'", "use smaller weights or payloads")
            weights = {i: torch.as_tensor(np.asarray(op.weight), dtype=dtype, device=dev)
                       for i, op in enumerate(ops) if isinstance(op, syn.WEIGHTED)}
            out.append(PreparedBranch(b.source, ops, b.weight_exp, dtype, weights, mp))
        prep.branches[layer.name] = out
    return prep


def _shape_after(mp, shape):
    if mp is None:
        return shape
    c, h, w = shape
    return (c, (h - mp.kernel[0]) // mp.stride[0] + 1, (w - mp.kernel[1]) // mp.stride[1] + 1)


def input_codes(enc: InputEncoder, x: torch.Tensor) -> torch.Tensor:
    """clip(floor(x*in_scale + offset), code_min, code_max) in float64, as int64 (code_min: 0 unless
    the encoder has one: signed inputs of imported NetX networks)."""
    def chan(a):
        t = torch.as_tensor(np.asarray(a, dtype=np.float64), device=x.device)
        return t if t.ndim == 0 else t.reshape((1, -1) + (1,) * (x.ndim - 2))
    k = torch.floor(x.to(torch.float64) * chan(enc.in_scale) + chan(enc.offset))
    return torch.clamp(k, getattr(enc.neuron, "code_min", 0), enc.neuron.code_max).to(torch.int64)


def _bias(layer: Layer, like: torch.Tensor) -> torch.Tensor:
    b = torch.as_tensor(layer.bias, dtype=torch.int64, device=like.device)
    return b.reshape((1, -1) + (1,) * (like.ndim - 2))


@dataclass
class BatchResult:
    output: torch.Tensor                        # float32 (N, outputs) in the ANN's units
    output_state: torch.Tensor                  # int64 readout U
    codes: dict                                 # layer -> int64 decoded codes (N, *shape)
    spikes: dict                                # layer -> total spikes in the batch
    overflows: dict = field(default_factory=dict)   # layer -> neurons whose state register wrapped
                                                    # (schemes whose bound can be exceeded: sws calibrated)


def run_batch(prep: Prepared, x: np.ndarray, record_codes: bool = True) -> BatchResult:
    """Run one batch; codes are the decoded value of each layer's spikes (bit planes -> code,
    rate -> spike count)."""
    from ..ir import sdnn as _sd          # here, not at the top: sim.sdnn imports this module
    if isinstance(prep.graph.input.neuron, _sd.DeltaEncoder):
        from .sdnn import run_sdnn
        return run_sdnn(prep, x, record_codes)
    if isinstance(prep.graph.input.neuron, nrn.RateEncoder):
        return _run_rate(prep, x, record_codes)
    if isinstance(prep.graph.input.neuron, CubaEncoder):
        from . import cuba
        return cuba.run_batch(prep, x, record_codes)
    if isinstance(prep.graph.input.neuron, TSAEncoder):
        from . import sws
        return sws.run_batch(prep, x, record_codes)
    from ..ir.reverb import ReverbEncoder
    if isinstance(prep.graph.input.neuron, ReverbEncoder):
        from . import reverb
        return reverb.run_batch(prep, x, record_codes)
    return _run_bitplane(prep, x, record_codes)


def _branch_current(pb: PreparedBranch, spikes: torch.Tensor) -> torch.Tensor:
    """Integer current of one branch for one batch of spike tensors (N, *shape)."""
    return apply_ops(pb.ops, spikes.to(pb.dtype), pb.weights).to(torch.int64) << pb.weight_exp


def _run_rate(prep: Prepared, x: np.ndarray, record_codes: bool) -> BatchResult:
    graph = prep.graph
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    enc = graph.input
    k0 = input_codes(enc, xt)
    n = xt.shape[0]
    t_in = enc.neuron.n_steps
    layers = graph.neuron_layers()
    zeros = {l.name: torch.zeros((n,) + tuple(l.shape), dtype=torch.int64, device=prep.device) for l in layers}
    # the readout starts at its bias; IF neurons at v_init and add their bias every step
    v = {l.name: (zeros[l.name] + _bias(l, zeros[l.name])) if l.is_readout else zeros[l.name] + l.neuron.v_init
         for l in layers}
    step_bias = {l.name: _bias(l, zeros[l.name]) for l in layers if not l.is_readout}
    v_enc = torch.full_like(k0, t_in // 2)
    prev = {l.name: torch.zeros((n,) + tuple(l.shape), dtype=torch.uint8, device=prep.device) for l in layers}
    prev[enc.name] = torch.zeros_like(k0, dtype=torch.uint8)
    counts = {name: torch.zeros_like(t, dtype=torch.int64) for name, t in prev.items()}
    for t in range(t_in + rate.depth(graph)):
        now = {}
        if t < t_in:
            v_enc, s = rate.encoder_step(v_enc, k0, t_in)
            now[enc.name] = s.to(torch.uint8)
        else:
            now[enc.name] = torch.zeros_like(prev[enc.name])
        for layer in layers:
            current = sum(_branch_current(pb, prev[pb.source]) for pb in prep.branches[layer.name])
            if layer.is_readout:
                v[layer.name] = v[layer.name] + current
                continue
            v[layer.name], s = rate.if_step(v[layer.name], current + step_bias[layer.name], layer.neuron)
            now[layer.name] = s.to(torch.uint8)
        for name, s in now.items():
            counts[name] += s
        prev.update(now)
    u = v[graph.output.name]
    value = (u.to(torch.float64) * float(graph.output.neuron.output_scale)).to(torch.float32)
    codes = {name: c for name, c in counts.items() if name != graph.output.name} if record_codes else {}
    spikes = {name: int(c.sum()) for name, c in counts.items() if name != graph.output.name}
    return BatchResult(value.reshape(n, -1), u, codes, spikes)


def _run_bitplane(prep: Prepared, x: np.ndarray, record_codes: bool = True) -> BatchResult:
    graph = prep.graph
    planes: dict[str, torch.Tensor] = {}
    codes, spikes = {}, {}
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)   # copy: x may be a read-only memmap
    enc = graph.input
    k0 = input_codes(enc, xt)
    planes[enc.name] = bp.encode_planes(k0, enc.neuron.n_steps)
    spikes[enc.name] = int(planes[enc.name].sum())
    if record_codes:
        codes[enc.name] = k0
    n = xt.shape[0]
    u = None
    for layer in graph.neuron_layers():
        u = None
        for pb in prep.branches[layer.name]:
            p = planes[pb.source]
            if pb.bitserial_maxpool is not None:
                p = bp.bitserial_maxpool(p, pb.bitserial_maxpool.kernel, pb.bitserial_maxpool.stride)
            t = p.shape[1]
            flat = p.reshape((n * t,) + tuple(p.shape[2:])).to(pb.dtype)
            current = apply_ops(pb.ops, flat, pb.weights).to(torch.int64)
            acc = bp.horner(current.reshape((n, t) + tuple(current.shape[1:]))) << pb.weight_exp
            u = acc if u is None else u + acc
        u = u + _bias(layer, u)
        if isinstance(layer.neuron, nrn.Readout):
            break
        if not isinstance(layer.neuron, nrn.BitplaneIF):
            raise NeurodeployError(f"the simulator has no kernel for {type(layer.neuron).__name__}",
                                   f"layer '{layer.name}'")
        out = bp.emit(u, layer.neuron)
        planes[layer.name] = out
        spikes[layer.name] = int(out.sum())
        if record_codes:
            codes[layer.name] = bp.decode_planes(out)
    readout = graph.output
    value = (u.to(torch.float64) * float(readout.neuron.output_scale)).to(torch.float32)
    return BatchResult(value.reshape(n, -1), u, codes, spikes)


def iter_batches(x: np.ndarray, batch_size: int):
    for start in range(0, len(x), batch_size):
        yield start, x[start:start + batch_size]


def simulate(graph: SpikingGraph, x: np.ndarray, batch_size: int = 256, device: str = "cpu",
             progress: bool = False) -> tuple[np.ndarray, dict]:
    """Outputs (N, outputs) float32 and total spikes per layer, streaming in batches."""
    from ..progress import progress_bar
    prep = prepare(graph, device)
    outs, totals = [], {}
    with progress_bar(total=len(x), desc="simulate", unit="sample", enabled=progress) as bar:
        for _, xb in iter_batches(x, batch_size):
            r = run_batch(prep, xb, record_codes=False)
            outs.append(r.output.cpu().numpy())
            for k, v in r.spikes.items():
                totals[k] = totals.get(k, 0) + v
            bar.update(len(xb))
    return np.concatenate(outs, axis=0), totals
