"""The simulator's core, shared by every scheme's kernel: no scheme knowledge here.

Integer state lives in torch int64 tensors.  Synapse ops run as float convolutions /
matmuls on spike planes, which is exact because every partial sum is an integer below
2^24 (float32) or 2^53 (float64): `prepare` bounds each branch statically and picks the
fastest exact dtype.  A kernel (`run_batch` of a scheme) sends the T planes of a layer
through the synapses in one batched call (`branch_current`), decodes the input with
`input_codes`, adds `layer_bias` and returns a `BatchResult`; `sim.engine` picks the kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import NeurodeployError
from ..limits import MAX_BATCH_SIZE
from ..ir import synapses as syn
from ..ir.spiking import InputEncoder, Layer, SpikingGraph
from ..ir.synapse_ops import abs_bound, apply_ops

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
    dev = check_device(device)
    prep = Prepared(graph, dev)
    shapes = {l.name: l.shape for l in graph.layers}
    p_max = {l.name: float(l.neuron.max_payload) for l in graph.layers}
    for layer in graph.neuron_layers():
        out = []
        for b in layer.branches:
            ops = list(b.ops)
            mp = None
            if ops and isinstance(ops[0], syn.MaxPool):
                mp, ops = ops[0], ops[1:]
            bound = float(np.max(abs_bound(ops, shape_after(mp, shapes[b.source]), p_max[b.source])))
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


def check_device(device) -> torch.device:
    """The torch device to simulate on: cpu, or cuda (cuda:N) where PyTorch sees that GPU."""
    hint = "use --device cpu, or cuda on a machine with an NVIDIA GPU"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise NeurodeployError(f"'{device}' is not a device", "--device", hint) from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise NeurodeployError(f"the simulator runs on cpu or cuda, not {dev.type}", "--device", hint)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise NeurodeployError("no CUDA GPU is available here", "--device", hint)
    if dev.index is not None and dev.index >= count:
        raise NeurodeployError(f"there is no GPU {dev.index} (this machine has {count})", "--device",
                               f"use cuda:0..cuda:{count - 1}")
    return dev


def check_batch_size(batch_size) -> int:
    """Samples per batch: an integer 1..MAX_BATCH_SIZE."""
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise NeurodeployError(f"batch size {batch_size!r} is not an integer in 1..{MAX_BATCH_SIZE}",
                               "--batch-size", "use e.g. 256")
    return int(batch_size)


def shape_after(mp: syn.MaxPool | None, shape: tuple) -> tuple:
    """Shape of a (C, H, W) source after a leading max pool split off by `prepare` (None: unchanged)."""
    if mp is None:
        return shape
    c, h, w = shape
    return (c, (h - mp.kernel[0]) // mp.stride[0] + 1, (w - mp.kernel[1]) // mp.stride[1] + 1)


def input_codes(enc: InputEncoder, x: torch.Tensor) -> torch.Tensor:
    """clip(floor(x*in_scale + offset), 0, code_max) in float64, as int64."""
    def chan(a):
        t = torch.as_tensor(np.asarray(a, dtype=np.float64), device=x.device)
        return t if t.ndim == 0 else t.reshape((1, -1) + (1,) * (x.ndim - 2))
    x = x.to(torch.float64)
    if any(enc.pad):          # the first layer's zero padding, in the input's units
        top, bottom, left, right = enc.pad
        x = torch.nn.functional.pad(x, (left, right, top, bottom))
    k = torch.floor(x * chan(enc.in_scale) + chan(enc.offset))
    return torch.clamp(k, 0, enc.neuron.code_max).to(torch.int64)


def layer_bias(layer: Layer, like: torch.Tensor) -> torch.Tensor:
    """The layer's integer bias (bias_mant << bias_exp) shaped to add to `like` (N, C, ...)."""
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


def branch_current(pb: PreparedBranch, spikes: torch.Tensor) -> torch.Tensor:
    """Integer current of one branch for one batch of spike tensors (N, *shape)."""
    return apply_ops(pb.ops, spikes.to(pb.dtype), pb.weights).to(torch.int64) << pb.weight_exp


def iter_batches(x: np.ndarray, batch_size: int):
    batch_size = check_batch_size(batch_size)
    for start in range(0, len(x), batch_size):
        yield start, x[start:start + batch_size]


def depth(graph: SpikingGraph) -> int:
    """Synapse hops on the longest path from the encoder to the readout."""
    hops = {graph.input.name: 0}
    for layer in graph.neuron_layers():
        hops[layer.name] = 1 + max(hops[b.source] for b in layer.branches)
    return hops[graph.output.name]


def fanout(ops: list, src_shape: tuple) -> np.ndarray:
    """Synapses leaving each source element of a branch (paths through the ops with nonzero
    weight; equal to the connection count when pooling windows do not overlap), float64 (*src_shape)."""
    ind = []
    for op in ops:
        if isinstance(op, syn.WEIGHTED):
            op = type(op)(**{**op.__dict__, "weight": (np.asarray(op.weight) != 0).astype(np.float64)})
        ind.append(op)
    x = torch.ones((1,) + tuple(src_shape), dtype=torch.float64, requires_grad=True)
    apply_ops(ind, x).sum().backward()
    return x.grad[0].numpy()
