"""Kernels and run loop of the `reverb` scheme (binary synapses, graded spikes; digest §4).

The integer arithmetic is specified by `neurodeploy.schemes.reverb.neurons` (ReverbEncoder,
ReverbNeuron, ReverbReadout); this module runs it vectorised over a batch, int64 state in
torch tensors.

Payload trains.  Every spiking layer (the encoder included) produces a payload train: an
int64 tensor (N, T, *shape) whose entry [n, t] is the graded spike the neuron sent at its
local step t (0 = no message).  Payloads are unsigned, at most `payload_bits` (≤ 24) bits.

Synapses.  A branch's ops (`ir.synapses`) act linearly on payloads: Conv / Dense /
ChannelScale multiply by the integer mantissas, SumPool adds window payloads, Flatten
reorders; a leading MaxPool takes the window max of the *payloads* (per channel, so of
values in one unit; payloads are ≥ 0, so zero padding never wins).  The branch result is
shifted left by weight_exp.  All T steps of a layer go through the synapses in one batched
call (N·T samples), exact in float32/float64 by a static bound (`prepare`).  Where Lava maps
a branch to its fixed-point `Conv` process (a 3-D source and no Dense op in the chain, see
`backends.lava.mapping.map_branch`), that process wraps its output to a signed 24-bit value
(`lava/proc/conv/models.py` `signed_clamp(a_out, 24)`); we wrap the same way so that even an
overflowing network stays bit-exact with Lava.  A compiler that keeps every branch sum below
2^23 never sees the wrap.

Time: layer-synchronous in local time.  On the chip, a layer at hop depth d runs its local
step t at absolute step d + t and is gated off before (ReverbNeuron.start_step = d): each
Dense/Conv hop delays by exactly one step, so the payload its source sent at the source's
local step t (absolute step (d−1) + t) arrives at absolute step d + t, i.e. at the layer's
own local step t.  Every neuron therefore sees exactly the input sequence of the float
model's same-step recurrence, only shifted; as no state changes while a layer is gated, the
integers are identical.  Hence we may simulate layer after layer, each over its T local
steps, without ever looking at start_step (it only matters to the chip schedule:
`schemes/reverb/lava/` uses it).  A layer whose branches come from sources at
different hop depths (a residual block's shortcut; `layer_input` sums every branch's
current into the one membrane unit) needs a delay on the shorter branches on the chip
(`schemes/reverb/lava/` inserts a DelayLine); the simulator computes the
layer-synchronous (float-model) function regardless.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import NeurodeployError
from . import neurons as rv
from ...ir import synapses as syn
from ...ir.spiking import SpikingGraph
from ...sim import core
from ...ir.synapse_ops import apply_ops

WRAP_BITS = 24              # Lava's fixed-point Conv sends signed 24-bit sums


# ---------------------------------------------------------------------------- neuron

def _per_neuron(a, like: torch.Tensor) -> torch.Tensor:
    """A scalar, per-channel (C,) or per-neuron (layer shape) int64 field, broadcast by the rule
    of `schemes.reverb.neurons.neuron_field` to one step's shape and given a batch axis: (1, *shape)."""
    full = np.array(rv.neuron_field(a, tuple(like.shape[1:])))      # a writable copy for torch
    return torch.as_tensor(full, device=like.device).unsqueeze(0)


def check_fields(layer) -> None:
    """NeurodeployError naming the layer when v_th_mant / out_mant fit neither its channels nor its shape."""
    for f in ("v_th_mant", "out_mant"):
        try:
            rv.neuron_field(getattr(layer.neuron, f), tuple(layer.shape))
        except ValueError as exc:
            raise NeurodeployError(str(exc), f"layer '{layer.name}', {f}",
                                   "store it per channel (C,) or per neuron (the layer shape)") from None


def decay(v: torch.Tensor, dv: int) -> torch.Tensor:
    """sign(v)·(|v|·(4096 − dv) >> 12): Loihi's 12-bit leak, rounding toward zero (int64)."""
    return torch.sign(v) * ((v.abs() * (rv.DECAY_UNITY - int(dv))) >> rv.DECAY_SHIFT)


def emit(v: torch.Tensor, out_mant: torch.Tensor, out_shift: int, payload_max: int) -> torch.Tensor:
    """clip((v·out_mant + 2^(out_shift−1)) >> out_shift, 0, payload_max) (round half up)."""
    half = (1 << int(out_shift)) >> 1
    return torch.clamp((v * out_mant + half) >> int(out_shift), 0, int(payload_max))


def neuron_run(a_in: torch.Tensor, bias: torch.Tensor, neuron: rv.ReverbNeuron,
               v0: torch.Tensor | None = None, raw: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a ReverbNeuron layer over its T local steps.

    a_in: int64 synaptic input (N, T, *shape), one slice per local step.
    bias: int64 bias_mant << bias_exp, broadcastable to one step (N, *shape).
    Returns (payloads int64 (N, T, *shape), final membrane v (N, *shape)).  Per step
    (schemes.reverb.neurons.ReverbNeuron): leak toward 0, add input + bias with 24-bit saturation, fire
    where v ≥ v_th_mant, emit the rounded, clipped v·out_mant >> out_shift, reset to 0.
    `raw`, if a list, gets v before the saturation of every step.
    """
    a_in = a_in.to(torch.int64)
    step0 = a_in[:, 0]
    vth = _per_neuron(neuron.v_th_mant, step0)
    mant = _per_neuron(neuron.out_mant, step0)
    v = torch.zeros_like(step0) if v0 is None else v0.to(torch.int64)
    zero = torch.zeros_like(step0)
    out = []
    for t in range(a_in.shape[1]):
        v = decay(v, neuron.dv)
        if raw is not None:
            raw.append(v + a_in[:, t] + bias)
        v = torch.clamp(v + a_in[:, t] + bias, -rv.STATE_MAX, rv.STATE_MAX)
        fired = v >= vth
        out.append(torch.where(fired, emit(v, mant, neuron.out_shift, neuron.max_payload), zero))
        v = torch.where(fired, zero, v)
    return torch.stack(out, dim=1), v


def reference_neuron(currents: list, dv: int, v_th: int, out_mant: int = 1, out_shift: int = 0,
                     payload_bits: int = 24, bias: int = 0) -> tuple[list, list]:
    """One neuron on a list of integer input currents (hand checks): (payloads, membranes after
    each step, post-reset)."""
    neuron = rv.ReverbNeuron(dv=int(dv), v_th_mant=np.asarray(v_th), out_mant=np.asarray(out_mant),
                             out_shift=int(out_shift), payload_bits=int(payload_bits), timesteps=len(currents))
    a = torch.tensor(currents, dtype=torch.int64).reshape(1, len(currents), 1)
    payloads, vs = [], []
    v = None
    for t in range(len(currents)):               # one step at a time to expose every membrane value
        p, v = neuron_run(a[:, t:t + 1], torch.tensor(int(bias)), neuron, v)
        payloads.append(int(p[0, 0, 0]))
        vs.append(int(v[0, 0]))
    return payloads, vs


# ---------------------------------------------------------------------------- preparation

def timesteps(graph: SpikingGraph) -> int:
    """T shared by every layer (the encoder's timesteps); refuses graphs that disagree."""
    t = int(graph.input.neuron.timesteps)
    for layer in graph.neuron_layers():
        lt = int(getattr(layer.neuron, "timesteps", t))
        if lt != t:
            raise NeurodeployError(f"layer runs {lt} local steps, the encoder {t}", f"layer '{layer.name}'",
                                   "all reverb layers must share the timesteps T")
    return t


def prepare(graph: SpikingGraph, device: str = "cpu") -> core.Prepared:
    """core.prepare (its dtypes are sized by each source's `max_payload`)."""
    return core.prepare(graph, device)


def lava_wraps(ops: list, src_shape: tuple) -> bool:
    """True when Lava runs this branch as its fixed-point Conv (24-bit wrapped output): a 3-D
    source and no Dense in the chain (`backends.lava.mapping.map_branch` then folds the chain
    into one Conv stage; with a Dense it becomes one Dense matrix, which does not wrap)."""
    return len(src_shape) == 3 and not any(isinstance(op, syn.Dense) for op in ops)


def wrap(x: torch.Tensor, bits: int = WRAP_BITS) -> torch.Tensor:
    """Two's-complement wrap to `bits` (Lava's utils.signed_clamp)."""
    return torch.remainder(x + (1 << (bits - 1)), 1 << bits) - (1 << (bits - 1))


def branch_current(pb: core.PreparedBranch, payloads: torch.Tensor, src_shape: tuple) -> torch.Tensor:
    """(W_mant · payload) << weight_exp of one branch for a batch of payload tensors (M, *shape)."""
    p = payloads
    if pb.bitserial_maxpool is not None:          # core.prepare splits a leading MaxPool off
        mp = pb.bitserial_maxpool
        p = F.max_pool2d(p.to(pb.dtype), mp.kernel, mp.stride)
    c = apply_ops(pb.ops, p.to(pb.dtype), pb.weights).to(torch.int64) << int(pb.weight_exp)
    ops = ([pb.bitserial_maxpool] if pb.bitserial_maxpool is not None else []) + list(pb.ops)
    return wrap(c) if lava_wraps(ops, src_shape) else c


def layer_input(prep: core.Prepared, layer, trains: dict, n: int, t: int) -> torch.Tensor:
    """Σ_branches (W · payload_src(τ)) << weight_exp for every local step τ: (N, T, *shape) int64."""
    shapes = {l.name: tuple(l.shape) for l in prep.graph.layers}
    total = None
    for pb in prep.branches[layer.name]:
        p = trains[pb.source]
        flat = p.reshape((n * t,) + tuple(p.shape[2:]))
        c = branch_current(pb, flat, shapes[pb.source])
        c = c.reshape((n, t) + tuple(c.shape[1:]))
        total = c if total is None else total + c
    if total is None:
        raise NeurodeployError("layer without inputs", f"layer '{layer.name}'")
    return total.reshape((n, t) + tuple(layer.shape))


# ---------------------------------------------------------------------------- run loop

@dataclass
class ReverbRun:
    """Everything one batch produced (int64 tensors on the simulation device)."""
    trains: dict            # spiking layer (encoder included) -> payloads (N, T, *shape)
    readout_state: torch.Tensor   # readout v after its T local steps (N, *shape)
    membranes: dict         # ReverbNeuron layer -> final v (N, *shape)


def run(prep: core.Prepared, x: np.ndarray, probe: core.Probe | None = None) -> ReverbRun:
    """Simulate one batch layer by layer (see the module docstring for why that is exact).  `probe`
    gets each layer's peak |v| and the readout's value after each of its local steps."""
    graph = prep.graph
    enc = graph.input
    if not isinstance(enc.neuron, rv.ReverbEncoder):
        raise NeurodeployError("the reverb simulator needs a ReverbEncoder input", f"input '{enc.name}'")
    t = timesteps(graph)
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)   # copy: x may be a read-only memmap
    n = xt.shape[0]
    k0 = core.input_codes(enc, xt)
    trains = {enc.name: k0.unsqueeze(1).expand((n, t) + tuple(k0.shape[1:]))}   # the code at every step
    membranes = {}
    state = None
    for layer in graph.neuron_layers():
        a_in = layer_input(prep, layer, trains, n, t)
        bias = core.layer_bias(layer, a_in[:, 0])
        if isinstance(layer.neuron, rv.ReverbReadout):
            state = a_in.sum(dim=1) + layer.neuron.total_bias(bias)   # v += a_in + b at each of the T steps
            if probe is not None:
                partial = torch.cumsum(a_in, dim=1) + bias.unsqueeze(1) * torch.arange(
                    1, t + 1, device=a_in.device).reshape((1, t) + (1,) * (a_in.ndim - 2))
                probe.peak(layer.name, partial)
                for step in range(t):
                    probe.readout(partial[:, step], layer.neuron.output_scale)
            break
        if not isinstance(layer.neuron, rv.ReverbNeuron):
            raise NeurodeployError(f"the reverb simulator has no kernel for {type(layer.neuron).__name__}",
                                   f"layer '{layer.name}'")
        check_fields(layer)
        raw = [] if probe is not None else None
        trains[layer.name], membranes[layer.name] = neuron_run(a_in, bias, layer.neuron, raw=raw)
        if probe is not None:
            probe.peak(layer.name, *raw)
    if state is None or graph.output.neuron is not layer.neuron:
        raise NeurodeployError("the last layer of a reverb network must be a ReverbReadout",
                               f"layer '{graph.output.name}'")
    return ReverbRun(trains, state, membranes)


def readout_value(graph: SpikingGraph, state: torch.Tensor) -> torch.Tensor:
    """v · output_scale as float32 (N, outputs), in the float model's units."""
    n = state.shape[0]
    return (state.to(torch.float64) * float(graph.output.neuron.output_scale)).to(torch.float32).reshape(n, -1)


def spike_counts(train: torch.Tensor) -> torch.Tensor:
    """Nonzero payloads (messages) per neuron over the T steps: (N, *shape) int64."""
    return (train != 0).sum(dim=1).to(torch.int64)


def run_batch(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
              probe: core.Probe | None = None) -> core.BatchResult:
    """The `reverb` kernel (sim.engine.run_batch); `probe` as in `run`.

    output = readout v · output_scale; output_state = readout v (int64);
    codes[layer] = per-neuron count of nonzero payloads over the T steps (the encoder included:
    T for every nonzero input code), so that codes sum to spikes[layer];
    spikes[layer] = nonzero payloads (graded messages) in the batch.
    """
    r = run(prep, x, probe)
    counts = {name: spike_counts(tr) for name, tr in r.trains.items()}
    spikes = {name: int(c.sum()) for name, c in counts.items()}
    return core.BatchResult(readout_value(prep.graph, r.readout_state), r.readout_state,
                              counts if record_codes else {}, spikes)
