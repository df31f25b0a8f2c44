"""Run `sws` graphs (ternary self-amplifying TSA neurons) in Lava's CPU simulation
(`Loihi2SimCfg(select_tag="fixed_pt")`), bit-exact with `neurodeploy.schemes.sws.kernel`.

Processes (one Lava network for all samples, frames pipelined one every `period` steps):

* input: the TSAEncoder's digits (host expansion, `schemes.sws.kernel.encode_digits`: binary for β = 2,
  balanced ternary for β = 3) injected by a `lava.proc.io.source.RingBuffer`;
* synapses: stock `Dense` / `Conv` per IR branch (`mapping.map_branch`: pooling folded into
  the kernel where exact, otherwise `GradedRelay` stages), `DelayLine` on a skip path;
* `TSANeuron`: the TSA neuron of `schemes.sws.neurons.TSA` as a fixed_pt ProcessModel (defined here):
  β amplification (a left shift for β = 2, shift-and-add for β = 3), per-step bias for the
  Tc input steps, silent period, thresholds compared as 2m against β^Ts·D, subtraction of
  a·D·β^Ts, the relu block of −1 spikes and the +1 block at code_max via the running emitted
  total E.  On Loihi 2 this is a small microcode neuron program; Lava has no stock one (its
  TernaryLIF uses strict thresholds, resets to 0 and cannot amplify).
* `SwsReadout`: the non-spiking output layer: V ← β·V + a_in for its Tc input steps, + bias
  once, exactly as `schemes.sws.kernel` reads the weighted potential; V is sent once per frame as a
  graded spike to a sink (on the chip the host would read the neuron state).

Negative spikes: **graded spikes on one port**, payload a ∈ {−1, 0, +1} (two's complement,
`TERNARY_MESSAGE_BITS` = 2), not two binary ports (pos / neg).  Graded spikes are native on
Loihi 2, and stock `Dense` / `Conv` with `num_message_bits > 0` multiply the weight by the
payload (`weights.dot(s_in)`, `conv(s_in, weight)`), so one synapse matrix per branch
carries both signs.  Two ports would need every synapse matrix twice (W for +1, −W for −1),
twice the synaptic memory and twice the messages for the same arithmetic.  With
`num_message_bits = 0` Lava casts the input to bool (−1 would arrive as +1), so every
stage here is graded.

Schedule (Lava's local steps k = time_step − 1, 0-based): every Dense / Conv delays by one
step (it sends what it received the step before); neurons, relays and the source add none.
The encoder sends digit τ of frame n at k = n·P + τ − 1.  A branch with L synapse stages
delivers a digit sent at k at k + L.  A layer's local step t = 1 (its first input digit)
is `first_step` = max over its branches of (emit_start(source) + L); branches that arrive
earlier get a `DelayLine` of the difference (the skip paths of residual nets: Ts per TSA
layer they skip, as in `schemes.sws.kernel.schedule`, plus one step per synapse stage they skip).  A TSA layer receives z(t) at k = first_step + t − 1 and sends
digit j = t − Ts in the same step, so emit_start = first_step + Ts; the readout's V is
complete at first_step + Tc − 1.  Every layer works with t = (k − first_step) mod P + 1, so
frames enter every P = Tc + max Ts steps (the scheme's throughput) and N samples take
(N − 1)·P + span steps.  This is `schemes.sws.kernel.schedule` plus Lava's one-step synapse delays.

Read-back: the readout's V from a sink on its s_out; each TSA layer's decoded code E and
spike count from probe Vars of the neuron (`TSANeuron`); with record_digits (default) also
every layer's ternary spikes from sinks (slow to read for large layers: the CLI skips them).

State: u, V are the target's `state_bits` signed registers (24 on Loihi 2), wrapped on
overflow like `processes.wrap_signed`.  The static state bound keeps them in range; with the
calibrated one (`schemes.sws`) an input unlike the calibration data can overflow, and
`schemes.sws.kernel` wraps at the same width at the same points (m after amplify + input, u after the
reset, V every step), so the two stay bit-exact either way.  Lava's ports are int32: graphs with
state_bits > 32 (e.g. --target cpu) are refused.

Absolute imports and no `from __future__ import annotations`: Lava's compiler re-executes
sibling modules of this package while it looks for ProcessModels.
"""
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from neurodeploy.backends.lava.compat import ensure_lava
from neurodeploy.backends.lava.mapping import (GRADED_MESSAGE_BITS, ConvStage, DenseStage, target_mant_max,
                                               from_lava, lava_shape, load_graph, map_branch, to_lava)
from neurodeploy.errors import NeurodeployError
from neurodeploy.ir import neurons as nrn
from neurodeploy.schemes.sws import neurons as tsa_ir

ensure_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

from neurodeploy.backends.lava.network import LavaNetwork, adapt_port, lava_bias  # noqa: E402
from neurodeploy.backends.lava.processes import GradedRelay, GuardedModel, delayed, scalar_var, wrap_signed  # noqa: E402

TERNARY_MESSAGE_BITS = 2        # graded payload of a ternary digit: −1, 0, +1 in two's complement
DEFAULT_STATE_BITS = 24         # Loihi 2's neuron state registers when the graph names no target
MAX_STATE_BITS = 32             # Lava's ports and the Vars here are int32


# --------------------------------------------------------------------------- neuron arithmetic
# Pure numpy (no Lava): the process models call these, and the tests check them against
# `schemes.sws.kernel.tsa_run` directly, because an exception inside a running model cannot be seen
# until the run ends (processes.GuardedModel).

@dataclass(frozen=True)
class TSAParams:
    """Integer constants of one TSA layer (`schemes.sws.neurons.TSA`), all small non-negative ints."""
    theta_mant: int             # D, the spike amplitude θ in state units
    code_max: int               # largest decoded value E may reach
    beta: int                   # 2 (shift) or 3 (shift + add)
    coding_steps: int           # Tc
    silent_steps: int           # Ts
    relu: bool
    full_threshold: bool
    state_bits: int             # signed width of u (24 on Loihi 2)

    @property
    def sub(self) -> int:
        """D·β^Ts: subtracted from u after a ±1 spike (θ·β^Ts)."""
        return self.theta_mant * self.beta ** self.silent_steps

    @property
    def h2(self) -> int:
        """Twice the firing threshold, β^Ts·D (θ/2 threshold) or 2·β^Ts·D (ablation)."""
        return self.sub * (2 if self.full_threshold else 1)

    def digit_weight(self, j: int) -> int:
        """β^(Tc−j): what output digit j (1-based) adds to the decoded value E."""
        return self.beta ** (self.coding_steps - j)


def amplify(u: np.ndarray, beta: int) -> np.ndarray:
    """β·u on int64 as the neuron program does it: u << 1 (β = 2) or (u << 1) + u (β = 3)."""
    if beta == 2:
        return u << 1
    if beta == 3:
        return (u << 1) + u
    raise ValueError(f"beta {beta} has no shift/add program")


def local_step(time_step: int, first_step: int, period: int) -> int:
    """Local step t = 1..period of the frame a layer is working on; 0 before its first frame.
    time_step is Lava's (1-based); first_step the 0-based step of the first frame's t = 1."""
    k = int(time_step) - 1 - int(first_step)
    return 0 if k < 0 else k % int(period) + 1


def tsa_update(u: np.ndarray, e_total: np.ndarray, z: np.ndarray, t: int, p: TSAParams):
    """One local step t (1..Tc+Ts) of a TSA layer; int64 arrays in, (a, u, e_total) out.

    u, e_total: state after step t−1 (ignored at t = 1: a new frame starts from 0);
    z: synaptic input + per-step bias (used only for t ≤ Tc; z(t) = 0 afterwards).
    a ∈ {−1, 0, +1} is output digit j = t − Ts (always 0 in the silent period t ≤ Ts).
    """
    if t == 1:
        u = np.zeros_like(u)
        e_total = np.zeros_like(e_total)
    m = amplify(u, p.beta) + (z if t <= p.coding_steps else 0)
    m = wrap_signed(m, p.state_bits)                  # the state register (never wraps in range)
    if t <= p.silent_steps:
        return np.zeros_like(m), m, e_total
    w = p.digit_weight(t - p.silent_steps)
    pos = ((m << 1) >= p.h2) & (e_total + w <= p.code_max)
    neg = (m << 1) < -p.h2
    if p.relu:
        neg &= e_total - w >= 0                       # never let the emitted total go below 0
    a = pos.astype(np.int64) - neg.astype(np.int64)
    return a, wrap_signed(m - a * p.sub, p.state_bits), e_total + a * w


def readout_update(v: np.ndarray, a_in: np.ndarray, bias: np.ndarray, t: int, beta: int, coding_steps: int,
                   state_bits: int) -> np.ndarray:
    """One local step t (1..Tc) of the readout: V ← β·V + a_in (V = a_in at t = 1), + bias at t = Tc."""
    v = a_in if t == 1 else amplify(v, beta) + a_in
    if t == coding_steps:
        v = v + bias
    return wrap_signed(v, state_bits)


# --------------------------------------------------------------------------- processes
class TSANeuron(AbstractProcess):
    """A layer of TSA neurons (`schemes.sws.neurons.TSA`), Lava shape (W, H, C) or (F,).

    a_in: the summed synaptic input (graded); s_out: ternary graded spikes (payload −1/0/+1).
    State u (membrane) and e_total (emitted total E, ≤ code_max); per-neuron bias_mant
    (bias = bias_mant << bias_exp, added at each of the Tc input steps).  `first_step` and
    `period` place the frames in time (module docstring; a Var named `start` would shadow
    PyLoihiProcessModel.start and hang the run).

    Probes for the host (simulation only, not neuron state the chip needs): `code_log`
    (*shape, n_frames) gets E, the layer's decoded code, at the end of each frame, and
    `spike_count` counts the nonzero digits sent.  Reading them is much cheaper than reading
    a spike sink: Lava's Var.get() moves one element per message, and a sink holds
    period x n_frames steps, the log only n_frames.  After n_frames frames the layer idles.
    """

    def __init__(self, *, shape: tuple, bias_mant: np.ndarray, bias_exp: int, params: TSAParams,
                 period: int, first_step: int, n_frames: int, name=None):
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.error = Var(shape=(1,), init=0)
        self.u = Var(shape=shape, init=0)
        self.e_total = Var(shape=shape, init=0)
        self.code_log = Var(shape=tuple(shape) + (int(n_frames),), init=0)
        self.spike_count = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=np.broadcast_to(np.asarray(bias_mant), shape).astype(np.int32))
        self.bias_exp = scalar_var(bias_exp)
        self.theta_mant = scalar_var(params.theta_mant)
        self.code_max = scalar_var(params.code_max)
        self.beta = scalar_var(params.beta)
        self.coding_steps = scalar_var(params.coding_steps)
        self.silent_steps = scalar_var(params.silent_steps)
        self.relu = scalar_var(params.relu)
        self.full_threshold = scalar_var(params.full_threshold)
        self.state_bits = scalar_var(params.state_bits)
        self.period = scalar_var(period)
        self.first_step = scalar_var(first_step)


class SwsReadout(AbstractProcess):
    """Non-spiking output layer of `sws`: reads the weighted potential V of its Tc input
    steps (+ bias once) and sends V as a graded value at its last input step (zero otherwise)."""

    def __init__(self, *, shape: tuple, bias_mant: np.ndarray, bias_exp: int, beta: int, coding_steps: int,
                 state_bits: int, period: int, first_step: int, name=None):
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.error = Var(shape=(1,), init=0)
        self.v = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=np.broadcast_to(np.asarray(bias_mant), shape).astype(np.int32))
        self.bias_exp = scalar_var(bias_exp)
        self.beta = scalar_var(beta)
        self.coding_steps = scalar_var(coding_steps)
        self.state_bits = scalar_var(state_bits)
        self.period = scalar_var(period)
        self.first_step = scalar_var(first_step)


def _int(var) -> int:
    return int(np.asarray(var).reshape(-1)[0])


@implements(proc=TSANeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTSAModelFixed(GuardedModel):
    """Bit-exact TSA layer: `tsa_update` at every local step 1..Tc+Ts, idle afterwards."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=TERNARY_MESSAGE_BITS)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    e_total: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    code_log: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    spike_count: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    theta_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    code_max: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    beta: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=2)
    coding_steps: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)
    silent_steps: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)
    relu: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    full_threshold: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    state_bits: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)
    period: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    first_step: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)

    def _params(self) -> TSAParams:
        return TSAParams(_int(self.theta_mant), _int(self.code_max), _int(self.beta), _int(self.coding_steps),
                         _int(self.silent_steps), bool(_int(self.relu)), bool(_int(self.full_threshold)),
                         _int(self.state_bits))

    def _step(self, a_in: np.ndarray) -> np.ndarray:
        p = self._params()
        t = local_step(self.time_step, _int(self.first_step), _int(self.period))
        frame = (int(self.time_step) - 1 - _int(self.first_step)) // _int(self.period)
        if not 1 <= t <= p.coding_steps + p.silent_steps or frame >= self.code_log.shape[-1]:
            # before the first frame, the idle tail of a frame (Ts < max Ts) or after the last
            # frame (the bias alone would otherwise start a phantom frame)
            return np.zeros(self.u.shape, dtype=np.int32)
        z = a_in.astype(np.int64) + (self.bias_mant.astype(np.int64) << _int(self.bias_exp))
        a, u, e = tsa_update(self.u.astype(np.int64), self.e_total.astype(np.int64), z, t, p)
        self.u[:] = u
        self.e_total[:] = e
        self.spike_count[:] += (a != 0)
        if t == p.coding_steps + p.silent_steps:
            self.code_log[..., frame] = e                       # E = this frame's decoded code
        return a


@implements(proc=SwsReadout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySwsReadoutModelFixed(GuardedModel):
    """Bit-exact `sws` readout: `readout_update` at local steps 1..Tc, V sent at t = Tc."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    beta: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=2)
    coding_steps: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)
    state_bits: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)
    period: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    first_step: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)

    def _step(self, a_in: np.ndarray) -> np.ndarray:
        tc = _int(self.coding_steps)
        t = local_step(self.time_step, _int(self.first_step), _int(self.period))
        if not 1 <= t <= tc:
            return np.zeros(self.v.shape, dtype=np.int32)
        bias = self.bias_mant.astype(np.int64) << _int(self.bias_exp)
        v = readout_update(self.v.astype(np.int64), a_in.astype(np.int64), bias, t, _int(self.beta), tc,
                           _int(self.state_bits))
        self.v[:] = v
        return v if t == tc else np.zeros(self.v.shape, dtype=np.int32)


# --------------------------------------------------------------------------- schedule
@dataclass
class SwsLayerPlan:
    name: str
    shape: tuple                   # IR shape
    kind: str                      # "input" | "tsa" | "readout"
    branches: list = field(default_factory=list)    # mapping.BranchPlan (delay = DelayLine steps)
    first_step: int = 0            # 0-based Lava step of local t = 1 in frame 0 (input: digit 1)
    emit_start: int = 0            # step at which digit 1 leaves (TSA, input); readout: V ready
    steps: int = 0                 # local steps a frame keeps the layer busy


@dataclass
class SwsPlan:
    graph: object
    layers: dict                   # name -> SwsLayerPlan, topological order
    period: int                    # steps between frames: Tc + max Ts
    span: int                      # steps one frame needs from its first input digit to V
    beta: int
    coding_steps: int
    state_bits: int

    def steps_for(self, n: int) -> int:
        """Lava steps for n frames, pipelined."""
        return (int(n) - 1) * self.period + self.span

    def summary(self) -> str:
        lines = [f"frame period {self.period} steps, one frame {self.span} steps"]
        for lp in self.layers.values():
            if lp.kind == "input":
                lines.append(f"{lp.name}: injected, digits at steps {lp.emit_start}..{lp.emit_start + lp.steps - 1}")
                continue
            what = (f"V at {lp.emit_start}" if lp.kind == "readout"
                    else f"digits at {lp.emit_start}..{lp.emit_start + self.coding_steps - 1}")
            lines.append(f"{lp.name}: input from step {lp.first_step}, {what}")
            lines += [f"    {b.describe()}" for b in lp.branches]
        return "\n".join(lines)


def _state_bits(graph) -> int:
    spec = graph.meta.get("target_spec") if isinstance(graph.meta, dict) else None
    try:
        return int(spec["neuron"]["state_bits"])
    except (TypeError, KeyError, ValueError):
        return DEFAULT_STATE_BITS


def check_graph(graph) -> None:
    """Refuse what this back-end cannot run exactly (NeurodeployError naming the layer)."""
    enc = graph.input
    if not isinstance(enc.neuron, tsa_ir.TSAEncoder):
        raise NeurodeployError("sws_lava runs `sws` graphs only", f"input encoder {type(enc.neuron).__name__}")
    beta, tc = int(enc.neuron.beta), int(enc.neuron.coding_steps)
    if beta not in (2, 3):
        raise NeurodeployError(f"beta {beta} has no shift/add neuron program", "sws_lava", "use beta 2 or 3")
    bits = _state_bits(graph)
    if bits > MAX_STATE_BITS:
        raise NeurodeployError(f"state_bits {bits} exceed Lava's int32 ports", "sws_lava",
                               "compile for --target loihi2")
    for layer in graph.neuron_layers():
        n = layer.neuron
        if isinstance(n, nrn.Readout):
            continue
        if not isinstance(n, tsa_ir.TSA):
            raise NeurodeployError(f"no Lava process for {type(n).__name__}", f"layer '{layer.name}'")
        if int(n.beta) != beta or int(n.coding_steps) != tc:
            raise NeurodeployError("all sws layers must share beta and coding steps", f"layer '{layer.name}'")


def plan_sws(graph, fold: bool = True) -> SwsPlan:
    """Synapse stages per branch and the pipelined schedule (module docstring)."""
    check_graph(graph)
    enc = graph.input
    beta, tc = int(enc.neuron.beta), int(enc.neuron.coding_steps)
    mant_max = target_mant_max(graph)
    layers = {enc.name: SwsLayerPlan(enc.name, tuple(enc.shape), "input", [], 0, 0, tc)}
    busy_end, ts_max = tc - 1, 0
    for layer in graph.neuron_layers():
        plans = [map_branch(b, layers[b.source].shape, mant_max, fold) for b in layer.branches]
        if not plans:
            raise NeurodeployError("layer without inputs", f"layer '{layer.name}'")
        for p in plans:
            if not all(isinstance(s, (ConvStage, DenseStage)) for s in p.stages):
                raise NeurodeployError("only Dense/Conv synapse stages carry ternary digits",
                                       f"layer '{layer.name}'", "use average pooling")
        arrival = [layers[p.source].emit_start + p.latency for p in plans]
        first = max(arrival)
        for p, a in zip(plans, arrival):
            p.delay = first - a
        if layer.is_readout:
            lp = SwsLayerPlan(layer.name, tuple(layer.shape), "readout", plans, first, first + tc - 1, tc)
        else:
            ts = int(layer.neuron.silent_steps)
            ts_max = max(ts_max, ts)
            lp = SwsLayerPlan(layer.name, tuple(layer.shape), "tsa", plans, first, first + ts, tc + ts)
        busy_end = max(busy_end, first + lp.steps - 1)
        layers[layer.name] = lp
    return SwsPlan(graph, layers, tc + ts_max, busy_end + 1, beta, tc, _state_bits(graph))


# --------------------------------------------------------------------------- network
def input_digits(graph, x: np.ndarray) -> np.ndarray:
    """TSAEncoder digits (N, Tc, *shape) int8, exactly as `schemes.sws.kernel` computes them."""
    from neurodeploy.sim.core import input_codes
    from neurodeploy.schemes.sws.kernel import encode_digits
    enc = graph.input
    codes = input_codes(enc, torch.as_tensor(np.array(x, copy=True)))
    return encode_digits(codes, int(enc.neuron.beta), int(enc.neuron.coding_steps)).numpy().astype(np.int8)


def _synapse(st, bits: int, name: str):
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    if isinstance(st, ConvStage):
        syn = Conv(weight=st.lava_weight(), weight_exp=0, input_shape=lava_shape(st.in_shape),
                   padding=(st.padding[1], st.padding[0]), stride=(st.stride[1], st.stride[0]),
                   dilation=(st.dilation[1], st.dilation[0]), groups=int(st.groups), num_message_bits=bits, name=name)
        if tuple(syn.output_shape) != lava_shape(st.out_shape):
            raise NeurodeployError(f"Lava Conv output {tuple(syn.output_shape)} != expected "
                                   f"{lava_shape(st.out_shape)}", name)
        return syn
    w, wexp = st.lava_weights()
    return Dense(weights=w, weight_exp=wexp, num_message_bits=bits, name=name)


def _connect_branch(bp, src: SwsLayerPlan, port, neuron, layer) -> list:
    """DelayLine (skip paths), then the synapse stages (graded, relays between stages)."""
    shape = tuple(src.shape)
    port, made = delayed(port, lava_shape(shape), bp.delay, f"{layer.name}<{bp.source}:delay")
    for i, st in enumerate(bp.stages):
        if i:
            relay = GradedRelay(shape=lava_shape(shape), name=f"{layer.name}<{bp.source}:relay{i}")
            port.connect(relay.a_in)
            port = relay.s_out
            made.append(relay)
        # the first stage carries ternary digits, later ones relayed partial sums
        syn = _synapse(st, GRADED_MESSAGE_BITS if i else TERNARY_MESSAGE_BITS, f"{layer.name}<{bp.source}:syn{i}")
        target = (int(np.prod(st.in_shape)),) if isinstance(st, DenseStage) else st.in_shape
        adapt_port(port, shape, target).connect(syn.s_in)
        port, shape = syn.a_out, st.out_shape
        made.append(syn)
    adapt_port(port, shape, layer.shape).connect(neuron.a_in)
    return made


@dataclass
class SwsLavaNetwork(LavaNetwork):
    """`LavaNetwork` (run / stop / error checks) with the sws schedule and read-back.
    `plan` is a `SwsPlan`; `input_planes` the encoder digits (N, Tc, *shape) int8."""

    @property
    def num_steps(self) -> int:
        return self.plan.steps_for(self.n_samples)

    def collect(self) -> tuple:
        """(readout V (N, F) int64, codes per layer (N, *shape) int64, digits per layer
        (N, Tc, *shape) int8 - recorded layers only -, nonzero digits per layer); the encoder
        included in all three."""
        if not self._ran and getattr(self.injector, "runtime", None) is None:
            raise NeurodeployError("the Lava network has not been run", "SwsLavaNetwork.collect", "call run() first")
        self.check_errors()
        plan, n, p, tc = self.plan, self.n_samples, self.plan.period, self.plan.coding_steps
        out_lp = plan.layers[plan.graph.output.name]
        data = np.asarray(self.output_reader.data.get()).astype(np.int64)    # (*lava shape, steps)
        v = from_lava(np.moveaxis(data[..., np.arange(n) * p + out_lp.emit_start], -1, 0), lead=1)
        enc = plan.graph.input.name
        digits = {enc: self.input_planes}
        codes = {enc: decode(self.input_planes, plan.beta)}
        spikes = {enc: int(np.count_nonzero(self.input_planes))}
        for name, proc in self.layers.items():
            if plan.layers[name].kind == "tsa":
                log = np.asarray(proc.code_log.get()).astype(np.int64)          # (*lava shape, N)
                codes[name] = from_lava(np.moveaxis(log, -1, 0), lead=1)
                spikes[name] = int(np.asarray(proc.spike_count.get()).sum())
        for name, sink in self.spike_readers.items():
            lp = plan.layers[name]
            d = np.asarray(sink.data.get())
            idx = (np.arange(n)[:, None] * p + lp.emit_start + np.arange(tc)[None, :]).reshape(-1)
            sel = np.moveaxis(d[..., idx], -1, 0).reshape((n, tc) + d.shape[:-1])
            digits[name] = from_lava(sel, lead=2).astype(np.int8)
        return v.reshape(n, -1), codes, digits, spikes


def build(graph_or_dir, x: np.ndarray, fold: bool = True, record_digits: bool = True) -> SwsLavaNetwork:
    """Connected Lava processes for an `sws` graph with the N samples of x queued.
    Run with ``net.run()``, then ``net.collect()`` and ``net.stop()`` (or use `run_lava`).
    record_digits: a sink on every TSA layer's spikes (the readout always has one)."""
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    graph = load_graph(graph_or_dir)
    plan = plan_sws(graph, fold)
    x = np.asarray(x)
    enc = graph.input
    if x.ndim != len(enc.input_shape) + 1 or tuple(x.shape[1:]) != tuple(enc.input_shape) or len(x) < 1:
        raise NeurodeployError(f"input batch has shape {x.shape}, the network expects (N, "
                               f"{', '.join(map(str, enc.input_shape))}) with N >= 1", "sws_lava")
    n, p, tc = len(x), plan.period, plan.coding_steps
    steps = plan.steps_for(n)
    digits = input_digits(graph, x)                                         # (N, Tc, *shape)
    data = np.zeros(lava_shape(enc.shape) + (steps,), dtype=np.int32)
    for t in range(tc):
        data[..., np.arange(n) * p + t] = np.moveaxis(to_lava(digits[:, t], lead=1), 0, -1)
    injector = Source(data=data)
    procs, ports = {enc.name: injector}, {enc.name: injector.s_out}
    branches, readers = {}, {}
    for layer in graph.neuron_layers():
        lp = plan.layers[layer.name]
        neuron = _neuron(layer, lp, plan, n)
        branches[layer.name] = [_connect_branch(bp, plan.layers[bp.source], ports[bp.source], neuron, layer)
                                for bp in lp.branches]
        procs[layer.name], ports[layer.name] = neuron, neuron.s_out
        if lp.kind == "readout" or record_digits:
            sink = Sink(shape=lava_shape(layer.shape), buffer=steps)
            neuron.s_out.connect(sink.a_in)
            if lp.kind == "tsa":
                readers[layer.name] = sink
            else:
                reader = sink
    return SwsLavaNetwork(plan, n, digits, injector, procs, branches, reader, readers)


def _neuron(layer, lp: SwsLayerPlan, plan: SwsPlan, n_frames: int):
    shape = lava_shape(layer.shape)
    if lp.kind == "readout":
        return SwsReadout(shape=shape, bias_mant=lava_bias(layer), bias_exp=int(layer.bias_exp), beta=plan.beta,
                          coding_steps=plan.coding_steps, state_bits=plan.state_bits, period=plan.period,
                          first_step=lp.first_step, name=layer.name)
    n = layer.neuron
    params = TSAParams(int(n.theta_mant), int(n.code_max), int(n.beta), int(n.coding_steps), int(n.silent_steps),
                       bool(n.relu), bool(n.full_threshold), plan.state_bits)
    return TSANeuron(shape=shape, bias_mant=lava_bias(layer), bias_exp=int(layer.bias_exp), params=params,
                     period=plan.period, first_step=lp.first_step, n_frames=n_frames, name=layer.name)


@dataclass
class SwsLavaResult:
    outputs: np.ndarray            # float32 (N, outputs): V * output_scale (as schemes.sws.kernel.run_batch)
    readout_state: np.ndarray      # int64 (N, outputs): the readout's weighted potential V
    codes: dict                    # layer -> int64 (N, *shape): decoded value E = Σ a_j β^(Tc−j), input included
    digits: dict                   # layer -> int8 (N, Tc, *shape): the ternary spikes sent (input only
                                   # unless record_digits)
    spikes: dict                   # layer -> nonzero (±1) digits, all samples (as schemes.sws.kernel counts them)
    period: int                    # steps between frames
    steps: int                     # steps simulated
    run_seconds: float             # proc.run (Lava compile + simulate)
    total_seconds: float = 0.0     # build + run + read-back


def decode(digits: np.ndarray, beta: int) -> np.ndarray:
    """(N, Tc, ...) ternary digits -> Σ a_j β^(Tc−j), int64 (N, ...)."""
    tc = digits.shape[1]
    w = np.array([beta ** (tc - 1 - j) for j in range(tc)], dtype=np.int64)
    return np.tensordot(w, digits.astype(np.int64), axes=([0], [1]))


def run_lava(graph_or_dir, x: np.ndarray, fold: bool = True, record_digits: bool = True) -> SwsLavaResult:
    """Run the N samples of x through Lava (fixed_pt), frames pipelined; per-layer decoded codes
    (input codes included), spike counts and the readout's V, as `schemes.sws.kernel.run_batch` gives them.
    record_digits=False skips the spike sinks (the slowest part to read back for big layers);
    the codes then come from the neurons' E alone."""
    t0 = time.perf_counter()
    net = build(graph_or_dir, x, fold, record_digits)
    run_s = net.run()                      # stops the runtime itself if the run fails
    try:
        v, codes, digits, spikes = net.collect()
    finally:
        net.stop()
    plan = net.plan
    scale = float(plan.graph.output.neuron.output_scale)
    outputs = (v.astype(np.float64) * scale).astype(np.float32)
    return SwsLavaResult(outputs, v, codes, digits, spikes, plan.period, net.num_steps, run_s,
                         time.perf_counter() - t0)
