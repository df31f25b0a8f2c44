"""Trainable spiking neurons: a small neuron interface, the LIF neuron, and the time convention.

Time convention
---------------
Every spiking module in neurodeploy takes and returns tensors shaped
``(T, N, ...)``: **time first**, then batch, then the per-sample shape
(``(T, N, C, H, W)`` after a convolution, ``(T, N, F)`` after a linear layer).
Stateless layers (Conv, Linear, BatchNorm, pooling, Flatten) act on each step
independently; :func:`multistep` applies one to all steps at once by folding
time into the batch (``(T*N, ...)``), and :class:`SpikingSequential` does this
for every non-neuron layer it holds.  Consequently a BatchNorm in training
mode normalises over ``T*N*H*W`` jointly (the ``rate_M`` convention of rate-based
backprop).  A network maps ``(T, N, ...)`` to ``(T, N, classes)``; its
prediction is the **mean over T** of that output (for a final Linear layer:
``W @ mean_t(s_t) + b``, i.e. the membrane of a non-leaky, non-firing
read-out integrator after T steps, divided by T).  Neuron state starts at 0 at
the beginning of every call (every sample), unless :attr:`SpikingNeuron.stateful`.

Neuron interface
----------------
A neuron is a :class:`SpikingNeuron` subclass that implements two methods on
**one time step**:

``init_state(current) -> state``
    the state (a tuple of tensors) before the first step, for a batch whose
    step-0 input current is ``current``;
``step(state, current) -> (out, new_state)``
    one step; differentiable (through a surrogate gradient) so BPTT is plain
    autograd through the unrolled loop.

Everything rate-based backprop needs follows from ``step``: its eligibility
``kappa = (1/T) sum_t d out_t / d I`` is the derivative of the mean output with
respect to a *constant* input current, which the base class computes by
forward-mode AD through ``step`` (tangent 1 on the current, the carried
state tangent on the state) -- so whatever ``step`` detaches (e.g. the reset)
is detached in the eligibility too, and a new neuron (ReverB: emits its
membrane value and resets to 0) needs no extra code.  A neuron may override
:meth:`SpikingNeuron.rate_step` with a closed form (as :class:`LIF` does, after
Yu et al.'s eligibility recurrences); the tests check it against the
forward-AD default.

Each neuron runs in one of three modes (set by the trainer, see
``neurodeploy.train.rate_bp``):

``"spike"``  ordinary multi-step forward (evaluation, BPTT);
``"record"`` spiking forward that also accumulates, per neuron, the mean
             output ``rate`` and the eligibility ``kappa`` (no autograd);
``"rate"``   the single spatial pass of rate-based backprop: given the current
             ``I`` computed from rates (shape ``(1, N, ...)``) it returns
             ``rate + (I*kappa - stopgrad(I*kappa))`` -- value = recorded rate,
             ``d out / d I = kappa`` (diagonal).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from .surrogate import Sigmoid, Surrogate, heaviside

__all__ = ["SpikingNeuron", "LIF", "SpikingSequential", "multistep", "reset_net", "set_mode", "neurons",
           "check_time_first"]

State = tuple  # tuple[torch.Tensor, ...]
MODES = ("spike", "record", "rate")


def multistep(layer: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless ``layer`` to every step of ``x`` (T, N, ...) by folding T into the batch."""
    t, n = x.shape[:2]
    y = layer(x.reshape(t * n, *x.shape[2:]))
    return y.reshape(t, n, *y.shape[1:])


class SpikingNeuron(nn.Module):
    """Base class of trainable spiking neurons (see the module docstring for the contract).

    Subclasses implement :meth:`init_state` and :meth:`step`; they may override
    :meth:`rate_step` with a closed form.

    Attributes:
        mode: ``"spike"`` | ``"record"`` | ``"rate"``.
        stateful: keep the state between calls (single-step use, e.g. ``rate_S``)
            until :meth:`reset`; otherwise each call starts from :meth:`init_state`.
        rate, kappa: after ``"record"`` calls, the per-neuron mean output and
            eligibility over all recorded steps, shaped ``(N, ...)``.
    """

    def __init__(self):
        super().__init__()
        self.mode = "spike"
        self.stateful = False
        self.reset()

    # ---- to implement ---------------------------------------------------------------------------
    def init_state(self, current: torch.Tensor) -> State:
        raise NotImplementedError

    def step(self, state: State, current: torch.Tensor) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    # ---- rate-based backprop ---------------------------------------------------------------------
    def init_eligibility(self, state: State) -> State:
        """Tangent of the initial state w.r.t. the input current: zeros (the initial state is constant)."""
        return tuple(torch.zeros_like(s) for s in state)

    def rate_step(self, state: State, elig: State, current: torch.Tensor
                  ) -> tuple[torch.Tensor, State, State, torch.Tensor]:
        """One step plus its constant-input derivative: ``(out, new_state, new_elig, d out/d I)``.

        ``elig`` holds ``d state / d I`` for an input current held constant since
        step 0.  Default: forward-mode AD through :meth:`step`.
        """
        with fwAD.dual_level():
            cur = fwAD.make_dual(current, torch.ones_like(current))
            st = tuple(fwAD.make_dual(s, e) for s, e in zip(state, elig))
            out, new = self.step(st, cur)
            o, do = fwAD.unpack_dual(out)
            unpacked = [fwAD.unpack_dual(s) for s in new]
        do = torch.zeros_like(o) if do is None else do
        new_state = tuple(u.primal for u in unpacked)
        new_elig = tuple(torch.zeros_like(u.primal) if u.tangent is None else u.tangent for u in unpacked)
        return o, new_state, new_elig, do

    # ---- machinery -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the carried state and the rate-BP records."""
        self._state = None
        self._elig = None
        self._out_sum = None
        self._dout_sum = None
        self._steps = 0

    @property
    def rate(self) -> torch.Tensor:
        if not self._steps:
            raise RuntimeError(f"{type(self).__name__}: no recorded steps (run a 'record' pass first)")
        return self._out_sum / self._steps

    @property
    def kappa(self) -> torch.Tensor:
        if not self._steps:
            raise RuntimeError(f"{type(self).__name__}: no recorded steps (run a 'record' pass first)")
        return self._dout_sum / self._steps

    def record_tensors(self) -> list[torch.Tensor]:
        """The rate-BP record tensors (sums of outputs and of eligibilities), if any."""
        return [t for t in (self._out_sum, self._dout_sum) if isinstance(t, torch.Tensor)]

    def record_nbytes(self) -> int:
        """Bytes held by the rate-BP records."""
        return sum(t.numel() * t.element_size() for t in self.record_tensors())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "rate":
            return self._rate_forward(x)
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {MODES}")
        if x.dim() < 2:
            raise ValueError(f"expected (T, N, ...) input, got shape {tuple(x.shape)}")
        state = self._state if (self.stateful and self._state is not None) else self.init_state(x[0])
        outs = []
        if self.mode == "spike":
            for xt in x.unbind(0):  # one backward node for all steps (x[t] would zero-fill T times)
                out, state = self.step(state, xt)
                outs.append(out)
        else:  # record: spiking forward + rate / eligibility accumulation, no autograd
            with torch.no_grad():
                elig = self._elig if (self.stateful and self._elig is not None) else self.init_eligibility(state)
                for xt in x.unbind(0):
                    out, state, elig, dout = self.rate_step(state, elig, xt)
                    outs.append(out)
                    if self._steps == 0:
                        self._out_sum, self._dout_sum = out.clone(), dout.clone()
                    else:
                        self._out_sum += out
                        self._dout_sum += dout
                    self._steps += 1
                self._elig = elig if self.stateful else None
        self._state = state if self.stateful else None
        return torch.stack(outs)

    def _rate_forward(self, current: torch.Tensor) -> torch.Tensor:
        rate = self.rate
        if current.shape[1:] != rate.shape or current.shape[0] != 1:
            raise ValueError(f"rate pass expects a (1, {tuple(rate.shape)}) current, got {tuple(current.shape)}")
        ik = (current * self._dout_sum) / self._steps  # = I * kappa; saves the record itself, no copy
        return rate.unsqueeze(0) + (ik - ik.detach())


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire neuron (no input decay), one state variable ``v``.

    Per step::

        v   = decay * v + I
        s   = H(v - v_th)            # v >= v_th, or v > v_th with strict=True (Loihi)
        v  -= s * v_th               # reset="subtract" (soft)
        v  *= 1 - s                  # reset="zero" (hard, Loihi's stock LIF)

    ``H`` has ``surrogate.grad`` as derivative (default sigmoid, alpha=4).  With
    ``detach_reset`` the reset term carries no gradient (Yu et al.'s default for
    the soft reset); the eligibility always follows the same choice.

    Args:
        decay: membrane decay ``lambda`` in [0, 1] (0.2 in Yu et al.; Loihi:
            ``1 - dv/4096``).
        v_th: firing threshold.
        reset: ``"subtract"`` or ``"zero"``.
        surrogate: a :class:`~neurodeploy.nn.surrogate.Surrogate`.
        strict: fire on ``v > v_th`` (Loihi) instead of ``v >= v_th`` (paper).
        detach_reset: no gradient through the reset.
    """

    def __init__(self, decay: float = 0.2, v_th: float = 1.0, reset: str = "subtract",
                 surrogate: Surrogate | None = None, strict: bool = False, detach_reset: bool = True):
        super().__init__()
        if reset not in ("subtract", "zero"):
            raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")
        if not 0.0 <= float(decay) <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay!r}")
        self.decay = float(decay)
        self.v_th = float(v_th)
        self.reset_mode = reset
        self.surrogate = surrogate if surrogate is not None else Sigmoid(4.0)
        self.strict = bool(strict)
        self.detach_reset = bool(detach_reset)

    def extra_repr(self) -> str:
        return (f"decay={self.decay}, v_th={self.v_th}, reset={self.reset_mode!r}, surrogate={self.surrogate!r}, "
                f"strict={self.strict}, detach_reset={self.detach_reset}")

    def init_state(self, current: torch.Tensor) -> State:
        return (torch.zeros_like(current),)

    def step(self, state: State, current: torch.Tensor) -> tuple[torch.Tensor, State]:
        v = self.decay * state[0] + current
        s = self.surrogate.spike(v - self.v_th, self.strict)
        r = s.detach() if self.detach_reset else s
        if self.reset_mode == "subtract":
            v = v - r * self.v_th
        else:
            v = v * (1.0 - r)
        return s, (v,)

    def init_eligibility(self, state: State) -> State:
        """A 0-d zero: the eligibility stays one scalar for all neurons while no reset term depends on
        the neuron (soft reset with detached reset) and broadcasts to full shape otherwise."""
        return (torch.zeros((), dtype=state[0].dtype, device=state[0].device),)

    def rate_step(self, state, elig, current):
        """Closed form of the eligibility recurrence (Yu et al. 2024, digest §5.2).

        ``e`` is ``d v / d I`` for a constant input; before the reset it is the
        paper's ``epsilon_t`` (``epsilon_{t+1} = 1 + lambda * e_after_reset``);
        ``d s_t / d I = sg_t * epsilon_t``.
        """
        with torch.no_grad():
            v = self.decay * state[0] + current
            e = self.decay * elig[0] + 1.0
            x = v - self.v_th
            s = heaviside(x, self.strict)
            sg = self.surrogate.grad(x)
            dout = sg * e
            if self.reset_mode == "subtract":
                v_new = v - s * self.v_th
                e_new = e if self.detach_reset else e - dout * self.v_th
            else:
                v_new = v * (1.0 - s)
                e_new = e * (1.0 - s) if self.detach_reset else e * (1.0 - s) - v * dout
        return s, (v_new,), (e_new,), dout


class SpikingSequential(nn.Sequential):
    """``nn.Sequential`` over ``(T, N, ...)`` tensors.

    Spiking neurons (and any module with a true ``multistep`` attribute) get the
    whole sequence; every other layer is applied step-wise through
    :func:`multistep`.  Parameter names are those of ``nn.Sequential``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, SpikingNeuron) or getattr(layer, "multistep", False):
                x = layer(x)
            else:
                x = multistep(layer, x)
        return x


def check_time_first(model: nn.Module) -> None:
    """Refuse a plain ``nn.Sequential`` that holds spiking neurons (what PyTorch users write first).

    Such a container hands the whole ``(T, N, ...)`` sequence to every layer (a Conv2d then fails
    deep inside on a 5-D input) or, nested in a :class:`SpikingSequential`, is run step by step so
    that its neurons see one step as if it were a sequence.  :class:`SpikingSequential` is the
    container that does both right; this says so, naming the container."""
    for path, m in model.named_modules():
        if isinstance(m, nn.Sequential) and not isinstance(m, SpikingSequential) \
                and any(isinstance(c, SpikingNeuron) for c in m.children()):
            from ..errors import NeurodeployError
            where = f"module '{path}'" if path else f"the model ({type(m).__name__})"
            raise NeurodeployError("a plain nn.Sequential holds spiking neurons; it would pass the whole "
                                   "time-first (T, N, ...) sequence to every layer", where,
                                   "build it with neurodeploy.nn.SpikingSequential(...) instead of "
                                   "nn.Sequential(...) (same arguments, same parameter names)")


def neurons(model: nn.Module) -> list[SpikingNeuron]:
    """All :class:`SpikingNeuron` modules of ``model``."""
    return [m for m in model.modules() if isinstance(m, SpikingNeuron)]


def reset_net(model: nn.Module) -> None:
    """Reset the state and records of every neuron in ``model``."""
    for m in neurons(model):
        m.reset()


def set_mode(model: nn.Module, mode: str, stateful: bool = False) -> None:
    """Put every neuron of ``model`` in ``mode`` (``"spike"``/``"record"``/``"rate"``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    for m in neurons(model):
        m.mode = mode
        m.stateful = bool(stateful)
