"""Lava Processes and fixed-point ProcessModels that every scheme's Lava network may use.

Synapses are Lava's stock `Dense` / `Conv` (see `mapping.py`); the neurons are each scheme's
own (`schemes/<name>/lava/`).  This module holds what they share:

* `GuardedModel`   the base of our process models: an exception sets an `error` Var instead
                   of deadlocking Lava (the host checks it)
* `GradedRelay`    passes its dendritic input on as a graded spike (between two synapse
                   stages of one branch, when a pooling op cannot be folded into a kernel)
* `DelayLine`      delays spikes by a fixed number of steps (residual alignment), `delayed`
* `wrap_signed`, `scalar_var`   a register's two's-complement wrap, a one-element Var

Every model is tagged ``fixed_pt`` and works on integers only (no torch: Lava runs the
models in forked processes).  Time: Lava's `time_step` counts 1, 2, ...; every model works
with the *local step* ``k = (time_step - 1) % period`` of a sample that lasts `period`
steps, so samples run back to back and all state is re-initialised at the start of each
sample's window.  The schedule (which local steps a layer accumulates or fires in) comes
from each scheme's planner (e.g. `schemes.bitplane.lava.plan.plan_network`).

All modules of this package must import cleanly: Lava's compiler imports (and even
re-executes as bare modules) every sibling module of a Process's module while it looks
for ProcessModels.  Hence the absolute imports.
"""
from __future__ import annotations

import numpy as np

from neurodeploy.backends.lava.compat import ensure_lava

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

STATE_BITS = 24                     # Loihi 2 neuron state registers (u, v) are 24-bit signed


def wrap_signed(x: np.ndarray, bits: int = STATE_BITS) -> np.ndarray:
    """Two's-complement wrap to `bits` (what a 24-bit register does on overflow)."""
    base = 1 << bits
    return (x + (base >> 1)) % base - (base >> 1)


def pool_windows(x: np.ndarray, kernel_wh: tuple, stride_wh: tuple, pad_wh: tuple, out_wh: tuple) -> np.ndarray:
    """The (W_out, H_out, C, kW, kH) windows of a max pool over x in Lava layout (W, H, C), padded
    with zeros by pad_wh = ((left, right), (top, bottom)): silent inputs, which never win over
    the payloads / spike trains of values >= 0 a compiled max pool reads."""
    x = np.pad(x, (tuple(pad_wh[0]), tuple(pad_wh[1]), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel_wh), axis=(0, 1))
    return win[::stride_wh[0], ::stride_wh[1]][:out_wh[0], :out_wh[1]]


def scalar_var(init) -> Var:
    """A one-element integer Var (a process parameter)."""
    return Var(shape=(1,), init=int(init))


class GuardedModel(PyLoihiProcessModel):
    """One in-port, one out-port, lock-step: recv, compute, send - even after an error.

    Lava (0.10.0) deadlocks when a ProcessModel raises in the middle of a network: the
    processes downstream wait forever for its message and `run()` never returns.  So the
    models here catch their own exceptions: they print the traceback, set the `error` Var,
    and from then on send zeros every step (keeping every channel in step).  The host
    (`LavaNetwork.collect`) checks `error` and raises.
    """

    error: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    _in_name = "a_in"

    def run_spk(self) -> None:
        x = getattr(self, self._in_name).recv()
        out = None
        if not self.error[0]:
            try:
                out = self._step(x)
            except Exception:                      # noqa: BLE001 - reported through `error`
                import traceback
                traceback.print_exc()
                self.error[0] = 1
        self.s_out.send(np.zeros(self._out_shape(x), dtype=np.int32) if out is None else out.astype(np.int32))

    def _step(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _out_shape(self, x: np.ndarray) -> tuple:
        return x.shape                             # same shape in and out unless overridden


# --------------------------------------------------------------------------- relays
class GradedRelay(AbstractProcess):
    """Sends its dendritic input a_in on as a graded spike in the same step (no state).

    Sits between two synapse stages of one branch (e.g. a sum-pool conv and the following
    weighted conv when they cannot be folded into one kernel).  On Loihi 2: a neuron whose
    microcode emits its 24-bit dendritic sum as a graded-spike payload each step; like any
    neuron it adds no delay of its own (the next synapse adds its usual one step).
    """

    def __init__(self, *, shape: tuple, name: str | None = None):
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.error = Var(shape=(1,), init=0)


@implements(proc=GradedRelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGradedRelayModelFixed(GuardedModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def _step(self, a: np.ndarray) -> np.ndarray:
        return wrap_signed(a.astype(np.int64))


class DelayLine(AbstractProcess):
    """Delays binary spikes by `delay` >= 1 steps (a shift register of `delay` planes).

    Used to align residual branches: the planner delays the earlier source's spikes so
    that the LSB planes of all branches of a layer arrive in the same step.  On Loihi 2 this
    is the synaptic (Dense/Sparse, 6-bit: 0..62 steps) or axonal delay of the branch's
    first synapse; Lava's CPU `Conv` has no delayed variant, so it is a separate process here.
    """

    def __init__(self, *, shape: tuple, delay: int, name: str | None = None):
        super().__init__(shape=shape, delay=delay, name=name)
        if delay < 1:
            raise ValueError("DelayLine needs delay >= 1")
        self.s_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.error = Var(shape=(1,), init=0)
        self.buffer = Var(shape=tuple(shape) + (int(delay),), init=0)


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDelayLineModelFixed(GuardedModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    buffer: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    _in_name = "s_in"

    def _step(self, x: np.ndarray) -> np.ndarray:
        slot = (self.time_step - 1) % self.buffer.shape[-1]
        out = self.buffer[..., slot].copy()          # written `delay` steps ago
        self.buffer[..., slot] = x
        return out


def delayed(port, lava_shape: tuple, delay: int, name: str) -> tuple:
    """`port` seen through a `DelayLine` of `delay` steps when delay > 0 (a skip path aligned
    with a longer one): (the port to connect on, [the DelayLine made, if any])."""
    if delay <= 0:
        return port, []
    line = DelayLine(shape=tuple(lava_shape), delay=int(delay), name=name)
    port.connect(line.s_in)
    return line.s_out, [line]
