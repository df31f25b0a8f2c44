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

Engines (bit-identical, tests/test_reverb_sim.py): `steps` (`run_steps`) runs `neuron_run` step by
step in int64, the statement of the arithmetic; the default (`_run_layers`) computes each layer's
input for chunks of steps (`sim.core.step_inputs`) and updates the membranes in place in float64,
exact by `layer_plan`'s bounds, the 24-bit wrap only where a branch can reach it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import NeurodeployError
from . import neurons as rv
from ...ir import synapses as syn
from ...ir.spiking import SpikingGraph
from ...sim import core
from ...ir.synapse_ops import apply_ops, max_pool

WRAP_BITS = 24              # Lava's fixed-point Conv sends signed 24-bit sums
# samples run together (`core.sample_groups`): with its few steps (T) a layer's synapse calls batch only
# T planes per sample, so more samples than the other schemes' step loops want (measured on the CIFAR
# ResNet-18, T = 4, 16 samples, one thread: groups of 4 samples 1.25x faster than of 1, of 16 1.2x)
GROUP_STEP_BYTES = 4 * core.STEP_BYTES


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
        p = max_pool(p.to(pb.dtype), mp, 0.0)        # payloads >= 0: zeros as the chip pads
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


def run_steps(prep: core.Prepared, x: np.ndarray, probe: core.Probe | None = None) -> ReverbRun:
    """The `steps` engine: one batch layer by layer (see the module docstring for why that is exact),
    `neuron_run` step by step in int64.  `probe` gets each layer's peak |v| and the readout's value
    after each of its local steps."""
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


# ---------------------------------------------------------------------------- the default engine

@dataclass
class ReverbLayer:
    arith: core.LayerArith      # its synapse calls' types; the membrane v in float64 (int64 if it must)
    wraps: list                 # per branch: can Lava's Conv wrap its 24-bit output (else no wrapping runs)?


def layer_plan(prep: core.Prepared) -> dict[str, ReverbLayer]:
    """Per layer, the arithmetic in which `run_layers` is exact (cached on `prep`).

    A branch's current is Σ|W|·payload_max·2^e at most; where Lava wraps it (`lava_wraps`) and that
    bound reaches 2^23 the wrap runs, else it is skipped (it cannot change anything).  The membrane v
    is a saturating 24-bit value, its leak |v|·(4096 − dv) < 2^35 and its emission v·out_mant < 2^47
    (out_mant ≤ 24 bits), so float64 holds every integer of the neuron exactly when the layer's
    input (Σ of the branch currents + bias) is below 2^53 too; int64 otherwise.  The readout
    without wrapping branches: U = Σ_b (W_b·Σ_t p_b(t)) << e_b + T·bias, one synapse call."""
    if "reverb.layers" in prep.cache:
        return prep.cache["reverb.layers"]
    graph = prep.graph
    t = timesteps(graph)
    shapes = {l.name: tuple(l.shape) for l in graph.layers}
    p_max = {l.name: float(l.neuron.max_payload) for l in graph.layers}
    plan = {}
    for layer in graph.neuron_layers():
        wraps, top = [], float(np.max(np.abs(np.asarray(layer.bias, dtype=np.float64)), initial=0.0))
        for pb in prep.branches[layer.name]:
            ops = ([pb.bitserial_maxpool] if pb.bitserial_maxpool is not None else []) + list(pb.ops)
            b = float(np.max(core.branch_bound(prep, pb, p_max[pb.source], pb.weight_exp)))
            wraps.append(lava_wraps(ops, shapes[pb.source]) and b >= (1 << (WRAP_BITS - 1)))
            top += min(b, 1 << (WRAP_BITS - 1)) if wraps[-1] else b        # a wrapped current is below 2^23
        if layer.is_readout and not any(wraps):
            sums = {name: m * t for name, m in p_max.items()}
            plan[layer.name] = ReverbLayer(core.layer_arith(prep, layer, sums, t * top), wraps)
            continue
        if layer.is_readout:                     # the sum of T wrapped steps
            top = t * top
        else:
            check_fields(layer)
            top = max(top + rv.STATE_MAX, float(rv.STATE_MAX) * float(np.max(layer.neuron.out_mant, initial=1)))
        # float64 at least: the leak and the emission multiply v by up to 12 and 24 bits
        la = core.layer_arith(prep, layer, p_max, max(top, float(core.FLOAT32_EXACT)), fuse=not any(wraps))
        plan[layer.name] = ReverbLayer(la, wraps)
    prep.cache["reverb.layers"] = plan
    return plan


def _lava_wrap(plan_layer: ReverbLayer):
    """post-processing of `core.layer_current`: Lava's 24-bit wrap, in place, on the branches that can wrap."""
    half = 1 << (WRAP_BITS - 1)

    def post(i, cur):        # skipped where no current reaches 2^23 (two reductions instead of three passes)
        if plan_layer.wraps[i] and (float(cur.amax()) >= half or float(cur.amin()) < -half):
            cur.add_(half).remainder_(2 * half).sub_(half)     # exact: fmod of integers below 2^53
    return post if any(plan_layer.wraps) else None


def _neuron_layer(prep, layer, rl: ReverbLayer, trains: dict, busy: dict, t_steps: int):
    """`neuron_run` of one layer in place, its input chunk by chunk: (payloads (T, N, *shape) float32, final v)."""
    neuron, la = layer.neuron, rl.arith
    n = trains[prep.branches[layer.name][0].source].shape[1]
    shape = (n,) + tuple(layer.shape)
    dt = la.dtype
    vth = core.nhwc(torch.as_tensor(np.array(rv.neuron_field(neuron.v_th_mant, tuple(layer.shape))), dtype=dt,
                                    device=prep.device).unsqueeze(0))
    mant = core.nhwc(torch.as_tensor(np.array(rv.neuron_field(neuron.out_mant, tuple(layer.shape))), dtype=dt,
                                     device=prep.device).unsqueeze(0))
    bias = la.bias.reshape((1, -1) + (1,) * (len(layer.shape) - 1))
    keep = rv.DECAY_UNITY - int(neuron.dv)
    shift, p_max = int(neuron.out_shift), int(neuron.max_payload)
    v = core.nhwc(torch.zeros(shape, dtype=dt, device=prep.device))
    fired, p = torch.empty_like(v), torch.empty_like(v)
    train = core.empty_steps(t_steps, shape, torch.float32, prep.device)
    for t, cur in enumerate(core.step_inputs(prep, layer, la, trains, busy, t_steps, post=_lava_wrap(rl))):
        if keep != rv.DECAY_UNITY:                       # sign(v)·(|v|·keep >> 12) = trunc(v·keep/4096)
            if dt == torch.int64:
                v.copy_(decay(v, neuron.dv))
            else:
                v.mul_(keep / rv.DECAY_UNITY).trunc_()
        v.add_(bias if cur is None else cur).clamp_(-rv.STATE_MAX, rv.STATE_MAX)
        torch.ge(v, vth, out=fired)
        torch.mul(v, mant, out=p)                        # clip((v·m + 2^(s−1)) >> s, 0, max) where fired
        if shift:
            p.add_((1 << shift) >> 1)
            if dt == torch.int64:
                p.bitwise_right_shift_(shift)
            else:
                p.mul_(1.0 / (1 << shift)).floor_()
        p.clamp_(0, p_max).mul_(fired)
        v.addcmul_(v, fired, value=-1)                   # reset to 0 where fired: v − v·1
        train[t].copy_(p)
    return train, v


def _run_layers(prep: core.Prepared, x: np.ndarray, keep: bool):
    """The default engine's run: (payload trains time first (T, N, ...) float32 and final membranes in the
    state's type if keep, else {}; readout state int64; nonzero payloads per neuron of every spiking
    layer), a few samples at a time (`core.sample_groups`); without keep a train is dropped as soon as
    its consumers have read it."""
    enc = prep.graph.input
    if not isinstance(enc.neuron, rv.ReverbEncoder):
        raise NeurodeployError("the reverb simulator needs a ReverbEncoder input", f"input '{enc.name}'")
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    k0 = core.nhwc(core.input_codes(enc, xt).to(torch.float32))      # codes ≤ 2^16: exact
    parts = [_group_layers(prep, k0[g], keep) for g in core.sample_groups(prep.graph, k0.shape[0], GROUP_STEP_BYTES)]
    return ({name: torch.cat([p[0][name] for p in parts], dim=1) for name in parts[0][0]},
            torch.cat([p[1] for p in parts]).contiguous(),
            {name: torch.cat([p[2][name] for p in parts]) for name in parts[0][2]},
            {name: torch.cat([p[3][name] for p in parts]).contiguous() for name in parts[0][3]})


def _group_layers(prep: core.Prepared, k0: torch.Tensor, keep: bool):
    """One group of samples: (trains if keep, readout state, final membranes if keep, nonzero payloads
    per neuron (N, *shape) of every spiking layer)."""
    graph = prep.graph
    enc = graph.input
    t = timesteps(graph)
    plan = layer_plan(prep)
    trains = {enc.name: k0.unsqueeze(0).expand((t,) + tuple(k0.shape))}   # the code at every step
    busy = {enc.name: core.busy_steps(trains[enc.name])}
    counts = {enc.name: torch.count_nonzero(trains[enc.name], dim=0)}
    membranes, state, last, kept, remaining = {}, None, None, {}, core.consumers(prep)
    for layer in graph.neuron_layers():
        rl, last = plan[layer.name], layer
        if isinstance(layer.neuron, rv.ReverbReadout):
            bias = core.layer_bias(layer, k0)
            if not any(rl.wraps):      # Σ_t (W·p(t) + b) = W·Σ_t p(t) + T·b
                sums = {pb.source: trains[pb.source].sum(dim=0, dtype=torch.float64) for pb in prep.branches[layer.name]}
                la = dataclasses.replace(rl.arith, bias=rl.arith.bias * t)
                state = core.layer_current(prep, layer, la, sums.__getitem__).to(torch.int64)
            else:
                la = dataclasses.replace(rl.arith, bias=None)
                state = None
                for cur in core.step_inputs(prep, layer, la, trains, busy, t, post=_lava_wrap(rl)):
                    if cur is not None:
                        state = cur.clone() if state is None else state.add_(cur)
                shape = (k0.shape[0],) + tuple(layer.shape)
                state = (torch.zeros(shape, dtype=torch.int64, device=prep.device) if state is None
                         else state.to(torch.int64)) + layer.neuron.total_bias(bias.reshape((1, -1) + (1,) * (len(layer.shape) - 1)))
            break
        if not isinstance(layer.neuron, rv.ReverbNeuron):
            raise NeurodeployError(f"the reverb simulator has no kernel for {type(layer.neuron).__name__}",
                                   f"layer '{layer.name}'")
        train, v = _neuron_layer(prep, layer, rl, trains, busy, t)
        if keep:
            kept.update(trains)
            membranes[layer.name] = v
        core.release_sources(prep, layer, remaining, trains, busy)
        trains[layer.name], busy[layer.name] = train, core.busy_steps(train)
        counts[layer.name] = torch.count_nonzero(train, dim=0)
    if state is None or graph.output.neuron is not last.neuron:
        raise NeurodeployError("the last layer of a reverb network must be a ReverbReadout",
                               f"layer '{graph.output.name}'")
    return ({**kept, **trains} if keep else {}), state, membranes, counts


def run(prep: core.Prepared, x: np.ndarray) -> ReverbRun:
    """One batch with the engine `prep` was prepared for: every layer's payload train (N, T, ...) int64."""
    if prep.engine == "steps":
        return run_steps(prep, x)
    trains, state, membranes, _ = _run_layers(prep, x, keep=True)
    return ReverbRun({name: tr.transpose(0, 1).to(torch.int64).contiguous() for name, tr in trains.items()}, state,
                     {name: v.to(torch.int64).contiguous() for name, v in membranes.items()})


def readout_value(graph: SpikingGraph, state: torch.Tensor) -> torch.Tensor:
    """v · output_scale as float32 (N, outputs), in the float model's units."""
    n = state.shape[0]
    return (state.to(torch.float64) * float(graph.output.neuron.output_scale)).to(torch.float32).reshape(n, -1)


def spike_counts(train: torch.Tensor) -> torch.Tensor:
    """Nonzero payloads (messages) per neuron over the T steps: (N, *shape) int64."""
    return (train != 0).sum(dim=1).to(torch.int64)


def run_batch(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
              probe: core.Probe | None = None) -> core.BatchResult:
    """The `reverb` kernel (sim.engine.run_batch); with a `probe` (as in `run_steps`) the steps
    engine runs (bit-identical; it holds every step's state to read).

    output = readout v · output_scale; output_state = readout v (int64);
    codes[layer] = per-neuron count of nonzero payloads over the T steps (the encoder included:
    T for every nonzero input code), so that codes sum to spikes[layer];
    spikes[layer] = nonzero payloads (graded messages) in the batch.
    """
    if prep.engine == "steps" or probe is not None:
        r = run_steps(prep, x, probe)
        counts, state = {name: spike_counts(tr) for name, tr in r.trains.items()}, r.readout_state
    else:
        _, state, _, counts = _run_layers(prep, x, keep=False)
    spikes = {name: int(c.sum()) for name, c in counts.items()}
    return core.BatchResult(readout_value(prep.graph, state), state, counts if record_codes else {}, spikes)
