"""Run `reverb` graphs (binary synapses, graded spikes) in Lava's CPU simulation
(Loihi2SimCfg(select_tag="fixed_pt")), bit-exact with `neurodeploy.schemes.reverb.kernel`.

    res = run_lava(graph, x)         # ReverbLavaResult: per-layer payload trains, readout v
    net = build(graph, x); net.run(); res = net.collect(); net.stop()

All N samples run back to back in one Lava network, one window of `period` = D + T steps
each (D = the readout's start_step, the deepest hop depth); every custom model works with
the local step k = (time_step − 1) % period + 1 and restarts its state at the start of its
active window, so the samples do not interact.

Processes (stock where Lava has one):

* input: a stock `lava.proc.io.source.RingBuffer` sends the ReverbEncoder's codes (computed
  on the host, `sim.core.input_codes`) as graded payloads at local steps 1..T, nothing
  (zeros) in the rest of the window;
* synapses: one stock `Dense` / `Conv` per IR branch with num_message_bits = 24 (graded:
  a_accum = W · payload), via `mapping.map_branch` (pooling/flatten folded into the weights).
  Conv kernels are stored as W_mant << weight_exp with weight_exp = 0 (Lava's CPU Conv
  ignores weight_exp) and the Conv output wraps at 24 bits, which `schemes.reverb.kernel` mirrors;
  Dense weights as (2·W_mant, weight_exp − 1), exact through Lava's 8-bit weight clip and
  MIXED-sign LSB truncation (mapping.DenseStage).  Each Dense/Conv delays by one step;
* a leading MaxPool of a branch: `GradedMaxPool` (custom, no delay), the window max of the
  payloads; Lava has no stock max pooling;
* ReverbNeuron: `ReverbNeuronProc` (custom fixed_pt model: the `schemes.reverb.neurons.ReverbNeuron`
  update with the spec's own numpy helpers `decay_toward_zero` / `emit_payload`), active
  at local steps start_step + 1 .. start_step + T, gated off (input ignored, nothing sent,
  no leak) otherwise.  On Loihi 2 a microcode neuron program with one 24-bit state register,
  a threshold and an out_mant per neuron (the IR's per-channel or per-neuron fields,
  broadcast by `schemes.reverb.neurons.neuron_field`), a shared out_shift, sending graded spikes;
* ReverbReadout: `ReverbReadoutProc` (custom): v += a_in + bias in its T active steps; the
  final v of each sample is kept in the Var `v_final` (int32 per sample), read by the host.

A branch whose source sits at a smaller hop depth than the layer's other inputs is delayed
by a `processes.DelayLine` (int32 shift register, graded payloads pass unchanged); a layer's
start_step must equal 1 + the largest start_step of its sources (the encoder is at 0),
which is what the compiler emits; anything else is refused.

Hazards (lava-nc 0.10): a process model that raises deadlocks run(), so the custom models
inherit `processes.GuardedModel` (errors set the `error` Var, zeros are sent, the host
raises); Lava re-executes sibling modules of this package while it looks for models, hence
absolute imports, no `from __future__ import annotations`, and no Var named `start`.
"""
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from neurodeploy.backends.lava.compat import ensure_lava
from neurodeploy.errors import NeurodeployError
from neurodeploy.schemes.reverb import neurons as rv
from neurodeploy.sim import core

ensure_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

from neurodeploy.backends.lava.mapping import from_lava, lava_shape, to_lava  # noqa: E402
from neurodeploy.backends.lava.processes import GuardedModel, pool_windows, scalar_var  # noqa: E402

GRADED_BITS = 24            # num_message_bits of every synapse: payloads are up to 24-bit
INT32_MAX = (1 << 31) - 1


def _field(a, ir_shape: tuple) -> np.ndarray:
    """Scalar / per-channel (C,) / per-neuron (IR layer shape) integers -> int32 array of the
    Lava shape (the broadcasting rule of `schemes.reverb.neurons.neuron_field`; a neuron Var holds one
    value per neuron either way)."""
    full = rv.neuron_field(a, tuple(ir_shape))
    if np.abs(full).max(initial=0) > INT32_MAX:
        raise NeurodeployError("a neuron parameter exceeds 32 bits", "reverb_lava")
    return np.ascontiguousarray(to_lava(full)).astype(np.int32)


# --------------------------------------------------------------------------- neuron
class ReverbNeuronProc(AbstractProcess):
    """`schemes.reverb.neurons.ReverbNeuron` group (Lava shape).  Active at local steps gate+1 .. gate+steps
    of each `period`-step sample window; v restarts at 0 on the first active step.

    Vars: v (24-bit state), bias (bias_mant << bias_exp), vth, out_mant (per neuron);
    dv (12-bit leak), out_shift, payload_max, period, gate (= start_step), steps (= T)."""

    def __init__(self, *, shape: tuple, dv: int, vth: np.ndarray, out_mant: np.ndarray, out_shift: int,
                 payload_max: int, bias: np.ndarray, period: int, gate: int, steps: int, name=None):
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.error = Var(shape=(1,), init=0)
        self.v = Var(shape=shape, init=0)
        self.bias = Var(shape=shape, init=bias)
        self.vth = Var(shape=shape, init=vth)
        self.out_mant = Var(shape=shape, init=out_mant)
        self.dv = scalar_var(dv)
        self.out_shift = scalar_var(out_shift)
        self.payload_max = scalar_var(payload_max)
        self.period = scalar_var(period)
        self.gate = scalar_var(gate)
        self.steps = scalar_var(steps)


def _active_step(model) -> int:
    """1-based local step of the layer (1..T while active, anything else while gated off)."""
    k = (int(model.time_step) - 1) % int(model.period[0]) + 1
    return k - int(model.gate[0])


@implements(proc=ReverbNeuronProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReverbNeuronModelFixed(GuardedModel):
    """Per active step (schemes.reverb.neurons.ReverbNeuron): leak toward 0, add a_in + bias with 24-bit
    saturation, fire where v >= vth, send the rounded, clipped v·out_mant >> out_shift, reset."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    out_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    out_shift: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)
    payload_max: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    period: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    gate: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    steps: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)

    def _step(self, a: np.ndarray) -> np.ndarray:
        t = _active_step(self)
        if not 1 <= t <= int(self.steps[0]):
            return np.zeros(self.v.shape, dtype=np.int32)     # gated off: input ignored, state kept
        v = np.zeros(self.v.shape, dtype=np.int64) if t == 1 else self.v.astype(np.int64)
        v = rv.decay_toward_zero(v, int(self.dv[0]))
        v = np.clip(v + a.astype(np.int64) + self.bias.astype(np.int64), -rv.STATE_MAX, rv.STATE_MAX)
        fired = v >= self.vth.astype(np.int64)
        payload = rv.emit_payload(v, self.out_mant.astype(np.int64), int(self.out_shift[0]), int(self.payload_max[0]))
        self.v[:] = np.where(fired, 0, v).astype(np.int32)
        return np.where(fired, payload, 0)


# --------------------------------------------------------------------------- readout
class ReverbReadoutProc(AbstractProcess):
    """`schemes.reverb.neurons.ReverbReadout` group: v += a_in + bias in its T active steps; after the last
    one the sample's v goes to v_final[sample] (int32, (n_samples, *shape))."""

    def __init__(self, *, shape: tuple, bias: np.ndarray, period: int, gate: int, steps: int,
                 n_samples: int, name=None):
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)       # unconnected; GuardedModel sends every step
        self.error = Var(shape=(1,), init=0)
        self.v = Var(shape=shape, init=0)
        self.v_final = Var(shape=(int(n_samples),) + tuple(shape), init=0)
        self.bias = Var(shape=shape, init=bias)
        self.period = scalar_var(period)
        self.gate = scalar_var(gate)
        self.steps = scalar_var(steps)


@implements(proc=ReverbReadoutProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReverbReadoutModelFixed(GuardedModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)
    v_final: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    period: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    gate: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    steps: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)

    def _step(self, a: np.ndarray) -> np.ndarray:
        t = _active_step(self)
        zeros = np.zeros(self.v.shape, dtype=np.int32)
        if not 1 <= t <= int(self.steps[0]):
            return zeros
        v = (0 if t == 1 else self.v.astype(np.int64)) + a.astype(np.int64) + self.bias.astype(np.int64)
        if np.abs(v).max(initial=0) > INT32_MAX:
            raise OverflowError("readout v exceeds 32 bits")
        self.v[:] = v.astype(np.int32)
        if t == int(self.steps[0]):
            sample = (int(self.time_step) - 1) // int(self.period[0])
            self.v_final[sample] = self.v
        return zeros


# --------------------------------------------------------------------------- max pooling
class GradedMaxPool(AbstractProcess):
    """Window max of graded payloads (Lava layout (W, H, C), zero padding), in the same step.

    Payloads are ≥ 0 and pooled within a channel (one unit), so the max of payloads is the
    max of the values, and zero padding never wins over a window's real payloads.  On Loihi 2: a
    neuron per window whose microcode keeps the running max of its k·k dendritic inputs (a small
    program); no stock Lava process does this."""

    def __init__(self, *, in_shape: tuple, out_shape: tuple, kernel_wh: tuple, stride_wh: tuple,
                 pad_wh: tuple = ((0, 0), (0, 0)), name=None):
        super().__init__(in_shape=in_shape, out_shape=out_shape, kernel_wh=tuple(kernel_wh),
                         stride_wh=tuple(stride_wh), pad_wh=tuple(map(tuple, pad_wh)), name=name)
        self.s_in = InPort(shape=in_shape)
        self.s_out = OutPort(shape=out_shape)
        self.error = Var(shape=(1,), init=0)


@implements(proc=GradedMaxPool, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGradedMaxPoolModelFixed(GuardedModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    _in_name = "s_in"

    def _out_shape(self, x: np.ndarray) -> tuple:
        return tuple(self.proc_params["out_shape"])

    def _step(self, x: np.ndarray) -> np.ndarray:
        pp = self.proc_params
        return pool_windows(x, pp["kernel_wh"], pp["stride_wh"], pp["pad_wh"], pp["out_shape"][:2]).max(axis=(-2, -1))


# --------------------------------------------------------------------------- schedule
def check_graph(graph) -> dict:
    """Validate a reverb graph for Lava and return its schedule: layer -> start_step."""
    enc = graph.input
    if not isinstance(enc.neuron, rv.ReverbEncoder):
        raise NeurodeployError("reverb_lava runs `reverb` graphs only", f"input encoder {type(enc.neuron).__name__}")
    t = int(enc.neuron.timesteps)
    start = {enc.name: 0}
    for layer in graph.neuron_layers():
        n = layer.neuron
        if not isinstance(n, (rv.ReverbNeuron, rv.ReverbReadout)):
            raise NeurodeployError(f"no Lava process for {type(n).__name__} in a reverb network", f"layer '{layer.name}'")
        if int(n.timesteps) != t:
            raise NeurodeployError(f"layer runs {n.timesteps} local steps, the encoder {t}", f"layer '{layer.name}'")
        need = 1 + max(start[b.source] for b in layer.branches)
        if int(n.start_step) != need:
            raise NeurodeployError(f"start_step {n.start_step} but the layer's inputs arrive from step {need}",
                                   f"layer '{layer.name}'", "start_step must be the layer's hop depth")
        if isinstance(n, rv.ReverbNeuron):
            if int(n.payload_bits) > rv.MAX_PAYLOAD_BITS:
                raise NeurodeployError(f"payload_bits {n.payload_bits} > {rv.MAX_PAYLOAD_BITS}", f"layer '{layer.name}'")
            if not 0 <= int(n.dv) < rv.DECAY_UNITY:
                raise NeurodeployError(f"dv {n.dv} is not a 12-bit decay", f"layer '{layer.name}'")
            if np.any(np.asarray(n.v_th_mant) < 0) or np.any(np.asarray(n.out_mant) < 0):
                raise NeurodeployError("negative threshold or out_mant", f"layer '{layer.name}'")
            for f in ("v_th_mant", "out_mant"):
                try:
                    rv.neuron_field(getattr(n, f), tuple(layer.shape))
                except ValueError as exc:
                    raise NeurodeployError(str(exc), f"layer '{layer.name}', {f}") from None
        start[layer.name] = int(n.start_step)
    if graph.output.name not in start or not isinstance(graph.output.neuron, rv.ReverbReadout):
        raise NeurodeployError("the last layer of a reverb network must be a ReverbReadout", graph.output.name)
    return start


def encoder_payloads(graph, x: np.ndarray) -> np.ndarray:
    """Host side of the ReverbEncoder: int64 codes (N, *IR shape), sent at each of the T steps."""
    return core.input_codes(graph.input, torch.as_tensor(np.array(x, copy=True))).numpy()


# --------------------------------------------------------------------------- network
@dataclass
class ReverbLavaResult:
    trains: dict                 # layer -> int64 payloads (N, T, *IR shape), encoder included
    readout_state: np.ndarray    # int64 (N, outputs): readout v after its T steps
    output: np.ndarray           # float32 (N, outputs): v · output_scale
    period: int                  # steps per sample
    steps: int                   # steps simulated
    run_seconds: float           # wall time of run() (Lava compile + simulate)
    total_seconds: float = 0.0   # build + run + read-back


@dataclass
class ReverbLavaNetwork:
    graph: object
    n_samples: int
    period: int
    start: dict                  # layer -> start_step
    source: object               # stock RingBuffer (the encoder)
    source_data: np.ndarray      # int32 (*Lava shape, steps)
    neurons: dict                # layer -> ReverbNeuronProc / ReverbReadoutProc
    sinks: dict                  # ReverbNeuron layer -> stock sink RingBuffer of its payloads
    custom: list = field(default_factory=list)   # every custom process (error flags)
    run_seconds: float = 0.0
    _running: bool = False

    @property
    def steps(self) -> int:
        return self.n_samples * self.period

    def run(self) -> float:
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        t0 = time.perf_counter()
        self._running = True
        try:
            self.source.run(condition=RunSteps(num_steps=self.steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        except Exception as exc:
            self.stop()
            raise NeurodeployError(f"Lava simulation failed ({type(exc).__name__}: {exc})", "reverb_lava") from exc
        self.run_seconds = time.perf_counter() - t0
        return self.run_seconds

    def _check_errors(self) -> None:
        bad = [p.name for p in self.custom if int(np.asarray(p.error.get()).reshape(-1)[0])]
        if bad:
            raise NeurodeployError(f"Lava process model failed in {', '.join(bad)}", "reverb_lava",
                                   "see the traceback printed above")

    def collect(self) -> ReverbLavaResult:
        """Per-layer payload trains (local steps 1..T of each sample) and the readout v."""
        self._check_errors()
        n, period = self.n_samples, self.period
        t = int(self.graph.input.neuron.timesteps)

        def windows(data: np.ndarray, start: int) -> np.ndarray:
            d = np.asarray(data).astype(np.int64).reshape(data.shape[:-1] + (n, period))
            d = np.moveaxis(d[..., start:start + t], [-2, -1], [0, 1])    # (N, T, *Lava shape)
            return from_lava(d, lead=2)

        enc = self.graph.input
        trains = {enc.name: windows(self.source_data, 0)}
        for name, sink in self.sinks.items():
            trains[name] = windows(sink.data.get(), self.start[name])
        readout = self.graph.output
        v = np.asarray(self.neurons[readout.name].v_final.get()).astype(np.int64)
        v = from_lava(v, lead=1).reshape(n, -1)
        out = (v.astype(np.float64) * float(readout.neuron.output_scale)).astype(np.float32)
        return ReverbLavaResult(trains, v, out, period, self.steps, self.run_seconds)

    def stop(self) -> None:
        if self._running:
            self._running = False
            self.source.stop()


def _synapse(st, port, src_shape: tuple, name: str):
    """Stock Conv / Dense for one mapped stage, graded input; returns (process, in-port to connect)."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense

    from neurodeploy.backends.lava.mapping import ConvStage, DenseStage
    if isinstance(st, ConvStage):
        p = Conv(weight=st.lava_weight(), weight_exp=0, input_shape=lava_shape(st.in_shape),
                 padding=(st.padding[1], st.padding[0]), stride=(st.stride[1], st.stride[0]),
                 dilation=(st.dilation[1], st.dilation[0]), groups=int(st.groups),
                 num_message_bits=GRADED_BITS, name=name)
        return p, port
    if isinstance(st, DenseStage):
        w, wexp = st.lava_weights()
        p = Dense(weights=w, weight_exp=wexp, num_message_bits=GRADED_BITS, name=name)
        if len(src_shape) == 3:
            port = port.transpose([2, 1, 0]).flatten()      # Lava (W,H,C) -> PyTorch (C,H,W) flatten order
        return p, port
    raise NeurodeployError(f"unsupported synapse stage {type(st).__name__}", name)


def build(graph, x: np.ndarray) -> ReverbLavaNetwork:
    """Connected Lava processes running the N samples of x back to back (not yet run)."""
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from neurodeploy.backends.lava.mapping import MaxPoolStage, load_graph, map_branch
    from neurodeploy.backends.lava.processes import delayed

    graph = load_graph(graph)
    start = check_graph(graph)
    enc = graph.input
    t = int(enc.neuron.timesteps)
    period = start[graph.output.name] + t
    x = np.asarray(x)
    n = len(x)
    codes = encoder_payloads(graph, x)                               # (N, *IR shape)
    data = np.zeros((n, period) + tuple(enc.shape), dtype=np.int64)
    data[:, :t] = codes[:, None]                                     # local steps 1..T
    data = to_lava(data.reshape((n * period,) + tuple(enc.shape)), lead=1)
    data = np.ascontiguousarray(np.moveaxis(data, 0, -1)).astype(np.int32)   # (*Lava shape, steps)
    source = Source(data=data)
    ports, shapes = {enc.name: source.s_out}, {enc.name: tuple(enc.shape)}
    neurons, sinks, custom = {}, {}, []
    for layer in graph.neuron_layers():
        n_ = layer.neuron
        lshape = lava_shape(layer.shape)
        bias = _field(layer.bias, layer.shape)
        if isinstance(n_, rv.ReverbReadout):
            proc = ReverbReadoutProc(shape=lshape, bias=bias, period=period, gate=int(n_.start_step), steps=t,
                                     n_samples=n, name=layer.name)
        else:
            proc = ReverbNeuronProc(shape=lshape, dv=int(n_.dv), vth=_field(n_.v_th_mant, layer.shape),
                                    out_mant=_field(n_.out_mant, layer.shape), out_shift=int(n_.out_shift),
                                    payload_max=int(n_.max_payload), bias=bias, period=period,
                                    gate=int(n_.start_step), steps=t, name=layer.name)
        custom.append(proc)
        neurons[layer.name] = proc
        for i, b in enumerate(layer.branches):
            plan = map_branch(b, shapes[b.source])
            stages = list(plan.stages)
            port, src_shape = ports[b.source], shapes[b.source]
            delay = int(n_.start_step) - 1 - start[b.source]      # align a shallower source
            port, made = delayed(port, lava_shape(src_shape), delay, f"{layer.name}<{b.source}:delay")
            custom += made
            if stages and isinstance(stages[0], MaxPoolStage):
                mp = stages.pop(0)
                pool = GradedMaxPool(in_shape=lava_shape(mp.in_shape), out_shape=lava_shape(mp.out_shape),
                                     **mp.lava_params(), name=f"{layer.name}<{b.source}:maxpool")
                port.connect(pool.s_in)
                port, src_shape = pool.s_out, tuple(mp.out_shape)
                custom.append(pool)
            if len(stages) != 1:
                raise NeurodeployError("branch does not fold into one Lava synapse (a second stage would add a "
                                       "step of delay)", f"layer '{layer.name}', branch from '{b.source}'")
            st = stages[0]
            if len(st.out_shape) == 1 and len(layer.shape) == 3:
                raise NeurodeployError("dense output into a conv-shaped layer", f"layer '{layer.name}'")
            syn_p, in_port = _synapse(st, port, src_shape, f"{layer.name}<{b.source}:{i}")
            in_port.connect(syn_p.s_in)
            syn_p.a_out.connect(proc.a_in)
        if isinstance(n_, rv.ReverbNeuron):
            sink = Sink(shape=lshape, buffer=n * period)
            proc.s_out.connect(sink.a_in)
            sinks[layer.name] = sink
            ports[layer.name] = proc.s_out
            shapes[layer.name] = tuple(layer.shape)
    return ReverbLavaNetwork(graph, n, period, start, source, data, neurons, sinks, custom)


def run_lava(graph, x: np.ndarray) -> ReverbLavaResult:
    """Run the samples of x through Lava (fixed_pt) back to back: payload trains of every layer
    (encoder included) and the readout v, comparable with `schemes.reverb.kernel.run`."""
    t0 = time.perf_counter()
    net = build(graph, x)
    try:
        net.run()
        res = net.collect()
    finally:
        net.stop()
    res.total_seconds = time.perf_counter() - t0
    return res
