"""Run `rate`-scheme graphs in Lava's CPU simulation (Loihi2SimCfg(select_tag="fixed_pt")), bit-exact
with `neurodeploy.schemes.rate.kernel.run_batch`.

One Lava network per sample (fresh state), stock processes except where noted:

* input: the RateEncoder's spike trains (v <- v + k; s = [v >= T]; v <- v - s*T, v starting at
  T // 2: exactly `schemes.rate.kernel.encoder_step`) are precomputed on the host and injected by a
  `lava.proc.io.source.RingBuffer` (steps 1..T, zeros for the remaining `depth` steps);
* synapses: one stock Dense / Conv per IR branch (`mapping.map_branch` folds pooling/flatten);
  like our simulator, each Dense/Conv delays by one step;
* RateIF with reset="zero": stock `lava.proc.lif.process.LIF` (PyLifModelBitAcc) with du=4095
  (u is just the input a_in << 6), dv=0 (no leak), vth = v_th_mant - 1, v initialised to
  64*v_init, bias_mant << bias_exp = 64 * our per-step bias.  Lava's v is then exactly 64 x our v
  and  v_lava > (vth << 6)  <=>  v >= v_th_mant;  the reset to 0 is the same.
* RateIF with reset="subtract" (or any RateIF with neuron_model="custom"): `RateIFProc`, a small
  fixed_pt ProcessModel defined here that runs `schemes.rate.kernel.if_step` in our units, saturation
  included (an emulation on Lava's CPU backend, not a Loihi 2 microcode neuron);
* readout: the readout's branches feed a `lava.proc.io.sink.RingBuffer` (int32 per step); U is
  the readout bias plus the sum over all T + depth steps of what arrives, exactly our readout's
  accumulation (and free of the 24-bit range of a LIF's v).

With the stock LIF, exact as long as nothing saturates or wraps: Lava wraps u at +-2^23 (so |a_in| < 2^17 per step)
and clips v at +-(2^23 - 1), while our RateIF clips at +-(2^(state_bits-1) - 1); with
state_bits = 18 that is +-(2^23 - 64) in Lava's units, so the clip points differ by 63/64 of a
unit and a neuron that saturates is NOT bit-exact (nothing checks this; the tests use networks
that stay in range, and neuron_model="custom" reproduces our clip exactly).  Lava's CPU model
also does not enforce the hardware's 13-bit bias mantissa / 3-bit bias_exp / 17-bit vth; this
module keeps the mantissa within 13 bits and vth within 17 bits, but bias_exp may exceed 7.

Absolute imports and no `from __future__ import annotations`: Lava's compiler may re-execute
sibling modules of this package while it looks for ProcessModels.
"""
import time
from dataclasses import dataclass

import numpy as np
import torch

from neurodeploy.backends.lava.compat import ensure_lava
from neurodeploy.errors import NeurodeployError
from neurodeploy.schemes.rate.neurons import RateEncoder, RateIF
from neurodeploy.sim import core
from neurodeploy.schemes.rate import kernel as rate

ensure_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

ACT_SHIFT = 6           # Lava/Loihi MSB-align synaptic input and thresholds by 6 bits
BIAS_MANT_MAX = 4095    # 13-bit signed mantissa
BIAS_EXP_MAX = 7        # 3-bit exponent on hardware (Lava's CPU model does not clip it)


@dataclass
class RateLavaResult:
    counts: dict           # layer -> int64 spike counts (N, *IR shape), encoder included
    output_state: np.ndarray  # int64 (N, outputs): readout U
    output: np.ndarray     # float32 (N, outputs): U * output_scale
    seconds: float


# --------------------------------------------------------------------------- custom RateIF
class RateIFProc(AbstractProcess):
    """`neurodeploy.ir.neurons.RateIF` in our own units (no 64x scaling): per step
    v <- clip(v + a_in + bias, -limit, limit); s = [v >= vth]; v <- v - s*vth (subtract) or 0 (zero).
    Used for reset="subtract" (Lava's stock LIF only resets to zero) and, on request, for "zero"
    (it also reproduces our saturation exactly)."""

    def __init__(self, shape, vth: int, v_init: int, bias: np.ndarray, limit: int, subtract: bool, name=None):
        super().__init__(shape=shape, vth=int(vth), limit=int(limit), subtract=bool(subtract), name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.v = Var(shape=shape, init=np.full(shape, int(v_init), dtype=np.int32))
        self.bias = Var(shape=shape, init=np.broadcast_to(np.asarray(bias, dtype=np.int32), shape).copy())


@implements(proc=RateIFProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRateIFModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self):
        vth = int(self.proc_params["vth"])
        limit = int(self.proc_params["limit"])
        a = np.asarray(self.a_in.recv()).astype(np.int64)
        v = np.clip(self.v.astype(np.int64) + a + self.bias.astype(np.int64), -limit, limit)
        s = v >= vth
        if self.proc_params["subtract"]:
            v = v - s.astype(np.int64) * vth
        else:
            v = np.where(s, 0, v)
        self.v[:] = v.astype(np.int32)
        self.s_out.send(s.astype(np.int32))


def _lava_shape(shape) -> tuple:
    shape = tuple(int(s) for s in shape)
    return shape[::-1] if len(shape) == 3 else shape


def _to_lava(a: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (W, H, C); (F,) unchanged."""
    return a.transpose(2, 1, 0) if a.ndim == 3 else a


def _from_lava(a: np.ndarray) -> np.ndarray:
    return a.transpose(2, 1, 0) if a.ndim == 3 else a


def bias_for_lava(bias: np.ndarray) -> tuple:
    """(bias_mant, bias_exp) with bias_mant << bias_exp == 64 * bias exactly, the mantissa within
    13 bits where possible (exponent as small as possible)."""
    b64 = np.asarray(bias, dtype=np.int64) << ACT_SHIFT
    for e in range(0, 31):
        if np.all((b64 & ((1 << e) - 1)) == 0) and np.all(np.abs(b64 >> e) <= BIAS_MANT_MAX):
            return (b64 >> e).astype(np.int64), e
        if np.any((b64 & ((1 << e) - 1)) != 0):
            break
    raise NeurodeployError("per-step bias does not fit a 13-bit mantissa with a power-of-two exponent "
                           "in Lava's units (64x)", hint="use a coarser bias quantisation")


def encoder_trains(graph, x_one: np.ndarray) -> np.ndarray:
    """The RateEncoder's spikes of one sample, uint8 (T, *IR shape): exactly `schemes.rate.kernel.encoder_step`."""
    enc = graph.input
    t_in = int(enc.neuron.n_steps)
    k = core.input_codes(enc, torch.as_tensor(np.asarray(x_one)[None]))[0]
    v = torch.full_like(k, t_in // 2)
    out = []
    for _ in range(t_in):
        v, s = rate.encoder_step(v, k, t_in)
        out.append(s.to(torch.uint8))
    return torch.stack(out).numpy()


def check_graph(graph, neuron_model: str = "auto") -> None:
    if not isinstance(graph.input.neuron, RateEncoder):
        raise NeurodeployError("rate_lava runs `rate` graphs only", f"input encoder {type(graph.input.neuron).__name__}")
    for layer in graph.neuron_layers():
        if layer.is_readout:
            continue
        n = layer.neuron
        if not isinstance(n, RateIF):
            raise NeurodeployError(f"no stock Lava model for {type(n).__name__}", f"layer '{layer.name}'")
        if n.reset not in ("zero", "subtract"):
            raise NeurodeployError(f"unknown reset {n.reset!r}", f"layer '{layer.name}'")
        if n.reset == "subtract" and neuron_model == "lif":
            raise NeurodeployError("reset='subtract' has no stock Lava LIF (it resets to zero)",
                                   f"layer '{layer.name}'", "use neuron_model='auto' or 'custom'")
        if n.state_bits > 32:
            raise NeurodeployError(f"state_bits {n.state_bits} exceed the custom model's int32 state",
                                   f"layer '{layer.name}'")
        if _use_lif(n, neuron_model) and not 1 <= int(n.v_th_mant) <= (1 << 17):
            raise NeurodeployError(f"v_th_mant {n.v_th_mant} outside Lava's 17-bit vth + 1", f"layer '{layer.name}'")


def _use_lif(neuron, neuron_model: str) -> bool:
    """Stock LIF for reset="zero" unless neuron_model == "custom"; RateIFProc otherwise."""
    if neuron_model not in ("auto", "lif", "custom"):
        raise NeurodeployError(f"unknown neuron_model {neuron_model!r}", hint="auto, lif or custom")
    return neuron.reset == "zero" and neuron_model != "custom"


def build_lava(graph, x_one: np.ndarray, neuron_model: str = "auto"):
    """Lava processes for one sample; returns (source, {layer: sink of spikes}, readout sink, steps).
    neuron_model: "auto" (stock LIF for reset="zero", RateIFProc for "subtract"), "lif" (stock LIF
    only), "custom" (RateIFProc for every layer)."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    from neurodeploy.backends.lava.mapping import ConvStage, DenseStage, map_branch

    check_graph(graph, neuron_model)
    enc = graph.input
    t_in = int(enc.neuron.n_steps)
    steps = t_in + core.depth(graph)
    trains = encoder_trains(graph, x_one)                               # (T, C, H, W) / (T, F)
    data = np.zeros(_lava_shape(enc.shape) + (steps,), dtype=np.int32)
    for t in range(t_in):
        data[..., t] = _to_lava(trains[t])
    source = Source(data=data)
    ports, shapes = {enc.name: source.s_out}, {enc.name: tuple(enc.shape)}
    sinks = {}
    src_sink = Sink(shape=_lava_shape(enc.shape), buffer=steps)
    source.s_out.connect(src_sink.a_in)
    sinks[enc.name] = src_sink
    readout_sink = None
    for layer in graph.neuron_layers():
        lshape = _lava_shape(layer.shape)
        if layer.is_readout:
            target = Sink(shape=lshape, buffer=steps)
            readout_sink = target
            in_port = target.a_in
        else:
            n = layer.neuron
            bias = np.asarray(layer.bias, dtype=np.int64)
            if len(layer.shape) == 3 and bias.ndim == 1:
                bias = bias.reshape(-1, 1, 1)
            bias = np.broadcast_to(bias, tuple(layer.shape))
            if _use_lif(n, neuron_model):
                bm, be = bias_for_lava(_to_lava(np.ascontiguousarray(bias)))
                v0 = np.full(lshape, int(n.v_init) << ACT_SHIFT, dtype=np.int32)
                lif = LIF(shape=lshape, du=4095, dv=0, vth=int(n.v_th_mant) - 1, bias_mant=bm.astype(np.int32),
                          bias_exp=int(be), v=v0, name=layer.name)
            else:
                lif = RateIFProc(lshape, int(n.v_th_mant), int(n.v_init), _to_lava(np.ascontiguousarray(bias)),
                                 (1 << (int(n.state_bits) - 1)) - 1, n.reset == "subtract", name=layer.name)
            in_port = lif.a_in
        for b in layer.branches:
            plan = map_branch(b, shapes[b.source])
            if len(plan.stages) != 1 or plan.delay:
                raise NeurodeployError("branch does not fold into one Lava synapse", f"layer '{layer.name}'")
            st = plan.stages[0]
            port, src_shape = ports[b.source], shapes[b.source]
            if isinstance(st, ConvStage):
                syn_p = Conv(weight=st.lava_weight(), weight_exp=0, input_shape=_lava_shape(st.in_shape),
                             padding=(st.padding[1], st.padding[0]), stride=(st.stride[1], st.stride[0]),
                             dilation=(st.dilation[1], st.dilation[0]), groups=int(st.groups), num_message_bits=0)
            elif isinstance(st, DenseStage):
                w, wexp = st.lava_weights()
                syn_p = Dense(weights=w, weight_exp=wexp, num_message_bits=0)
                if len(src_shape) == 3:
                    port = port.transpose([2, 1, 0]).flatten()     # (W,H,C) -> PyTorch (C,H,W) flatten order
            else:
                raise NeurodeployError(f"unsupported stage {type(st).__name__}", f"layer '{layer.name}'")
            if len(st.out_shape) == 1 and len(layer.shape) == 3:
                raise NeurodeployError("dense output into a conv-shaped layer", f"layer '{layer.name}'")
            port.connect(syn_p.s_in)
            syn_p.a_out.connect(in_port)
        if not layer.is_readout:
            sink = Sink(shape=lshape, buffer=steps)
            lif.s_out.connect(sink.a_in)
            sinks[layer.name] = sink
            ports[layer.name] = lif.s_out
            shapes[layer.name] = tuple(layer.shape)
    return source, sinks, readout_sink, steps


def run_lava(graph, x: np.ndarray, neuron_model: str = "auto") -> RateLavaResult:
    """Run each sample of x through stock Lava (fixed_pt), T + depth steps, fresh network per sample:
    spike counts of every layer (encoder included) and the readout U, as `engine.run_batch` gives
    them (codes, output_state).  neuron_model: see `build_lava`."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    t0 = time.perf_counter()
    counts = {}
    us = []
    readout = graph.output
    for xi in np.asarray(x):
        source, sinks, rsink, steps = build_lava(graph, xi, neuron_model)
        try:
            source.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            for name, sink in sinks.items():
                d = np.asarray(sink.data.get()).astype(np.int64).sum(axis=-1)
                counts.setdefault(name, []).append(_from_lava(d))
            a = np.asarray(rsink.data.get()).astype(np.int64).sum(axis=-1)
            u = _from_lava(a).reshape(-1) + np.broadcast_to(
                _bias_ir(readout), tuple(readout.shape)).reshape(-1)
            us.append(u)
        finally:
            source.stop()
    u = np.stack(us)
    out = (u.astype(np.float64) * float(readout.neuron.output_scale)).astype(np.float32)
    return RateLavaResult({k: np.stack(v) for k, v in counts.items()}, u, out, time.perf_counter() - t0)


def _bias_ir(layer) -> np.ndarray:
    b = np.asarray(layer.bias, dtype=np.int64)
    if len(layer.shape) == 3 and b.ndim == 1:
        b = b.reshape(-1, 1, 1)
    return b
