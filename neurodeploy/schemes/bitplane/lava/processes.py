"""Lava Processes and fixed-point ProcessModels of the `bitplane` scheme.

* `BitplaneIF`       the accumulate-then-emit neuron (`schemes.bitplane.neurons.BitplaneIF`)
* `BitplaneReadout`  the non-spiking output layer (`ir.neurons.Readout`)
* `BitserialMaxPool` max pooling of MSB-first spike trains (`schemes.bitplane.kernel.bitserial_maxpool`)

Every model is tagged ``fixed_pt`` and works on integers only; the time convention, error
handling (`GuardedModel`) and relays are those of `backends.lava.processes`; the schedule (which
local steps a layer accumulates or fires in) comes from `plan.plan_network`.  Absolute imports
only: Lava's compiler re-executes the modules of this directory while it looks for ProcessModels.
"""
from __future__ import annotations

import numpy as np

from neurodeploy.backends.lava.compat import ensure_lava

ensure_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

from neurodeploy.backends.lava.processes import GuardedModel, pool_windows, scalar_var, wrap_signed  # noqa: E402


class BitplaneIF(AbstractProcess):
    """Accumulate-then-emit IF neuron group of the `bitplane` scheme.

    Per sample of `period` steps, with local step k (0-based) and the schedule
    acc_start <= acc_end (set by the planner so that the LSB planes of all incoming branches
    arrive at k = acc_end):

    * k == acc_start:                 U <- a_in                      (reset + first plane)
    * acc_start < k <= acc_end:       U <- 2*U + a_in                (Horner, MSB first)
    * k == acc_end, after the above:  U <- min(U + (bias_mant << bias_exp), code_max*v_th_mant)
    * k == acc_end + j, j = 1..n_steps: theta = v_th_mant << (n_steps - j);
                                      s = [U >= theta]; U <- U - s*theta; emit s
    * any other k: a_in is ignored, nothing is emitted.

    Example (models/digits_qcfs.onnx, period 16): the injector sends the 5 input planes at
    k = 0..4; conv1's Conv synapse delivers them at k = 1..5, so conv1 accumulates at 1..5
    (adds bias and clamps at 5) and fires its 4 bits at 6..9; conv2 accumulates 7..10 and
    fires 11..14; the readout accumulates 12..15.  Accumulating and firing never share a
    step, so one state register suffices.  Negative U simply emits zeros (no lower clamp).

    a_in is the sum over all incoming synapse processes (Lava InPorts add their
    connections); each branch contributes  W_mant . s_src(t) << weight_exp  per plane, so
    after acc_end  U = sum_b W_b . code_b << e_b  + bias, exactly the IR.  The emitted bits
    spell clip(floor(U / v_th_mant), 0, code_max), MSB first.

    On Loihi 2 this is a short microcode neuron program with one 24-bit state register U
    (plus the shared parameters v_th_mant, bias, code_max*v_th_mant and a phase counter):
    the dendritic accumulator delivers a_in each step; the program checks the phase counter
    (accumulate / bias+clamp / emit / idle), does one shift-add (accumulate) or one
    compare-subtract against a threshold it halves every step (emit, a binary spike), and
    advances the counter, wrapping at `period`.  The 24-bit state wraps on overflow
    (modelled here); the compiler's static bound (`meta.quantisation.*.state_bound`)
    guarantees it never does.  A real deployment would replace the local-step counter by
    the chip's time step modulo the period, shared by all cores.
    """

    def __init__(self, *, shape: tuple, v_th_mant: int, code_max: int, n_steps: int,
                 bias_mant: np.ndarray, bias_exp: int, period: int, acc_start: int, acc_end: int,
                 name: str | None = None):
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.error = Var(shape=(1,), init=0)
        self.u = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=np.broadcast_to(np.asarray(bias_mant), shape).astype(np.int32))
        self.bias_exp = scalar_var(bias_exp)
        self.v_th_mant = scalar_var(v_th_mant)
        self.code_max = scalar_var(code_max)
        self.n_steps = scalar_var(n_steps)
        self.period = scalar_var(period)
        self.acc_start = scalar_var(acc_start)
        self.acc_end = scalar_var(acc_end)


class BitplaneReadout(AbstractProcess):
    """Non-spiking output layer: accumulates like `BitplaneIF`, adds the bias, never fires.

    At k == acc_end the final U is stored in `u_final` and sent once as a graded value on
    `s_out` (zero at every other step), so a sink can collect one U per sample.  On Loihi 2
    the host would read U from the neuron state (or the neuron sends it as a 24-bit graded
    spike to an output port).  value = U * output_scale is computed on the host.
    """

    def __init__(self, *, shape: tuple, bias_mant: np.ndarray, bias_exp: int, period: int,
                 acc_start: int, acc_end: int, name: str | None = None):
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.error = Var(shape=(1,), init=0)
        self.u = Var(shape=shape, init=0)
        self.u_final = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=np.broadcast_to(np.asarray(bias_mant), shape).astype(np.int32))
        self.bias_exp = scalar_var(bias_exp)
        self.period = scalar_var(period)
        self.acc_start = scalar_var(acc_start)
        self.acc_end = scalar_var(acc_end)


class _AccumulatorModel(GuardedModel):
    """Shared accumulation phase of BitplaneIF / BitplaneReadout."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    period: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    acc_start: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    acc_end: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)

    def _local_step(self) -> int:
        return (self.time_step - 1) % int(self.period[0])

    def _accumulate(self, k: int, a: np.ndarray) -> bool:
        """Horner step; returns True when k is the last accumulation step (bias added)."""
        start, end = int(self.acc_start[0]), int(self.acc_end[0])
        if not start <= k <= end:
            return False
        a = a.astype(np.int64)
        u = a if k == start else 2 * self.u.astype(np.int64) + a
        last = k == end
        if last:
            u = u + (self.bias_mant.astype(np.int64) << int(self.bias_exp[0]))
            u = self._at_end(u)
        self.u[:] = wrap_signed(u)
        return last

    def _at_end(self, u: np.ndarray) -> np.ndarray:
        return u


@implements(proc=BitplaneIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBitplaneIFModelFixed(_AccumulatorModel):
    """Bit-exact model of `BitplaneIF` (see the Process docstring for the phases)."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    v_th_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    code_max: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    n_steps: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)

    def _at_end(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(u, int(self.code_max[0]) * int(self.v_th_mant[0]))

    def _step(self, a: np.ndarray) -> np.ndarray:
        k = self._local_step()
        if self._accumulate(k, a):
            return np.zeros(self.u.shape, dtype=np.int32)
        j = k - int(self.acc_end[0])                     # 1..n_steps while emitting
        n = int(self.n_steps[0])
        if not 1 <= j <= n:
            return np.zeros(self.u.shape, dtype=np.int32)
        theta = int(self.v_th_mant[0]) << (n - j)
        u = self.u.astype(np.int64)
        fire = u >= theta
        self.u[:] = u - fire * theta
        return fire.astype(np.int32)


@implements(proc=BitplaneReadout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBitplaneReadoutModelFixed(_AccumulatorModel):
    """Bit-exact model of `BitplaneReadout`."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u_final: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def _step(self, a: np.ndarray) -> np.ndarray:
        if self._accumulate(self._local_step(), a):
            self.u_final[:] = self.u
            return self.u.copy()
        return np.zeros(self.u.shape, dtype=np.int32)


class BitserialMaxPool(AbstractProcess):
    """Max pooling of MSB-first spike trains, exact on the codes (no stock Lava process).

    Input/output in Lava layout (W, H, C); pad_wh = ((left, right), (top, bottom)) zero (silent)
    trains around the input, the max of codes >= 0 while every window holds a real input.  At
    local step k == start (the source's first plane, after any delay) all window inputs are
    "alive"; for k in [start, start + n_steps):
    the output bit of a window is the OR of the bits of its alive inputs, and an alive input
    whose bit is 0 while the output bit is 1 drops out.  Same as `neurodeploy.schemes.bitplane.kernel.bitserial_maxpool`.  No delay of its own.
    On Loihi 2: one multi-input neuron per window (k*k dendritic inputs gated by k*k alive
    flags), a small microcode program.
    """

    def __init__(self, *, in_shape: tuple, out_shape: tuple, kernel_wh: tuple, stride_wh: tuple,
                 period: int, start: int, n_steps: int, pad_wh: tuple = ((0, 0), (0, 0)), name: str | None = None):
        super().__init__(in_shape=in_shape, out_shape=out_shape, kernel_wh=tuple(kernel_wh),
                         stride_wh=tuple(stride_wh), pad_wh=tuple(map(tuple, pad_wh)), name=name)
        self.s_in = InPort(shape=in_shape)
        self.s_out = OutPort(shape=out_shape)
        self.error = Var(shape=(1,), init=0)
        k = int(kernel_wh[0]) * int(kernel_wh[1])
        self.alive = Var(shape=tuple(out_shape) + (k,), init=0)
        self.period = scalar_var(period)
        self.window_start = scalar_var(start)   # (`start` would shadow PyLoihiProcessModel.start())
        self.n_steps = scalar_var(n_steps)


@implements(proc=BitserialMaxPool, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBitserialMaxPoolModelFixed(GuardedModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    alive: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    period: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    window_start: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    n_steps: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)
    _in_name = "s_in"

    def _out_shape(self, x: np.ndarray) -> tuple:
        return self.alive.shape[:-1]

    def _step(self, x: np.ndarray) -> np.ndarray:
        k = (self.time_step - 1) % int(self.period[0])
        j = k - int(self.window_start[0])
        out_shape = self.alive.shape[:-1]
        if not 0 <= j < int(self.n_steps[0]):
            return np.zeros(out_shape, dtype=np.int32)
        pp = self.proc_params
        win = pool_windows(x, pp["kernel_wh"], pp["stride_wh"], pp["pad_wh"], out_shape[:2])
        win = win.reshape(out_shape + (-1,)).astype(np.int32)
        alive = np.ones_like(win) if j == 0 else self.alive
        bits = win * alive
        o = bits.max(axis=-1)
        self.alive[:] = alive * (1 - np.clip(o[..., None] - bits, 0, None))
        return o
