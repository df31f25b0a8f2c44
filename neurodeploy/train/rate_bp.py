"""One training step of a spiking network: BPTT, or rate-based backpropagation (Yu et al., NeurIPS 2024).

Networks follow the time convention of :mod:`neurodeploy.nn.lif`: input
``(T, N, ...)``, output ``(T, N, classes)``, prediction = mean over T.

BPTT (:func:`bptt_step`)
    ordinary autograd through the T unrolled steps; memory grows with T.

Rate-based backprop (:func:`rate_step`)
    1. *Spike phase*, ``torch.no_grad``: the network runs its T steps; every
       neuron records its mean output ``r`` and its eligibility ``kappa`` (the
       derivative of ``r`` w.r.t. a constant input current, accumulated step by
       step with the surrogate gradient), every training-mode BatchNorm records
       the mean and variance of its input.
    2. *Rate pass*, with autograd, once: the network runs on the time-mean of
       its input as a single step ``(1, N, ...)``; every neuron returns
       ``r + (I*kappa - stopgrad(I*kappa))`` and every BatchNorm normalises
       with the spike-phase statistics as values and the rate tensor's own
       batch statistics as gradients (straight-through).
    3. The loss is computed on the spike-phase output (its value) spliced onto
       the rate-pass output (its gradient), and one backward runs.

    ``variant="M"`` (``rate_M``): the spike phase is one multi-step call, so
    BatchNorm statistics are over ``T*N*H*W`` jointly and running statistics
    are updated once per iteration.  ``variant="S"`` (``rate_S``): the spike
    phase calls the network T times on single steps with stateful neurons, so
    each BatchNorm normalises each step with that step's batch statistics (and
    updates its running statistics T times); the rate pass uses the mean of
    the per-step means and the variance ``v`` with
    ``1/(v + eps) = mean_t 1/(var_t + eps)``.

    Unlike the authors' code, the loss gradient is *not* multiplied by 1/T, so
    rate gradients estimate BPTT's on the same scale (equal for T = 1).

Memory: :class:`SavedTensorMeter` counts the bytes of the distinct tensors
autograd saves for the backward (parameters excluded) -- the part of the
training memory that BPTT multiplies by T -- and :func:`record_nbytes` the
rate-BP records (``r``, ``kappa``, BN statistics) that live until the backward.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from neurodeploy.nn.lif import neurons, reset_net, set_mode

__all__ = ["METHODS", "canonical_method", "time_major", "bptt_step", "rate_step", "train_step",
           "SavedTensorMeter", "record_nbytes"]

METHODS = ("bptt", "rate_M", "rate_S")
_ALIASES = {"bptt": "bptt", "rate": "rate_M", "rate_m": "rate_M", "rate_s": "rate_S"}


def canonical_method(method: str) -> str:
    """``"bptt"``, ``"rate_M"`` or ``"rate_S"`` (``"rate"`` means ``"rate_M"``; case-insensitive)."""
    m = _ALIASES.get(str(method).lower())
    if m is None:
        raise ValueError(f"unknown training method {method!r}; expected 'bptt', 'rate', 'rate_M' or 'rate_S'")
    return m


def time_major(x: torch.Tensor, timesteps: int, input_time_dim: int | None = None) -> torch.Tensor:
    """Network input ``(T, N, ...)``: a static batch ``(N, ...)`` is repeated over ``timesteps``;
    with ``input_time_dim`` the batch already holds a sequence along that axis, which is moved to the
    front (and must have length ``timesteps``)."""
    if input_time_dim is None:
        return x.unsqueeze(0).expand(int(timesteps), *x.shape)
    x = x.movedim(input_time_dim, 0)
    if x.shape[0] != timesteps:
        raise ValueError(f"input sequence has {x.shape[0]} steps, timesteps={timesteps}")
    return x


# ---- BatchNorm: spike-phase statistics and the rate-pass forward ----------------------------------------

def _bn_dims(x: torch.Tensor) -> list[int]:
    return [0] + list(range(2, x.dim()))


class _BNStats:
    """Per training-mode BatchNorm: its spike-phase statistics, and the rate-pass forward.

    Inside ``with _BNStats(model, variant)`` each such BN runs its usual training-mode computation
    (``torch.native_batch_norm``, with ``nn.BatchNorm``'s running-statistics bookkeeping) and keeps
    the batch mean and inverse standard deviation the kernel normalised with.
    """

    def __init__(self, model: nn.Module, variant: str):
        self.variant = variant
        self.bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.training]
        self.stats: dict[nn.Module, list] = {}  # bn -> [sum of means, sum of invstd (M) / invstd^2 (S), count]

    def __enter__(self):
        for bn in self.bns:
            bn.forward = self._spike_forward(bn)
        return self

    def __exit__(self, *exc):
        for bn in self.bns:
            bn.__dict__.pop("forward", None)

    def _spike_forward(self, bn: _BatchNorm) -> Callable:
        def forward(x: torch.Tensor) -> torch.Tensor:
            bn._check_input_dim(x)
            momentum = 0.0 if bn.momentum is None else bn.momentum
            if bn.track_running_stats and bn.num_batches_tracked is not None:  # as _BatchNorm.forward
                bn.num_batches_tracked.add_(1)
                momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            y, mean, invstd = torch.native_batch_norm(x, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                                      True, momentum, bn.eps)
            self._add(bn, mean, invstd)
            return y
        return forward

    def _add(self, bn, mean, invstd):
        if bn not in self.stats:
            self.stats[bn] = [mean, invstd.square() if self.variant == "S" else invstd, 1]
        elif self.variant == "S":
            s = self.stats[bn]
            s[0] = s[0] + mean
            s[1] = s[1] + invstd.square()
            s[2] += 1
        else:
            raise RuntimeError("rate_M: a BatchNorm was called twice in one spike phase "
                               "(shared BN modules are not supported)")

    def mean_invstd(self, bn) -> tuple[torch.Tensor, torch.Tensor]:
        """rate_M: the joint statistics; rate_S: mean of the step means and
        ``invstd = sqrt(mean_t 1/(var_t + eps))``."""
        s = self.stats[bn]
        if self.variant == "S":
            return s[0] / s[2], (s[1] / s[2]).sqrt()
        return s[0], s[1]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for s in self.stats.values() for t in s[:2])

    @contextlib.contextmanager
    def rate_pass(self):
        """Temporarily replace each recorded BN's forward by the rate-pass normalisation."""
        patched = []
        try:
            for bn in self.bns:
                if bn in self.stats:
                    mean, invstd = self.mean_invstd(bn)
                    bn.forward = _rate_bn_forward(bn, mean, invstd)
                    patched.append(bn)
            yield
        finally:
            for bn in patched:
                bn.__dict__.pop("forward", None)


class _RateBatchNorm(torch.autograd.Function):
    """``y = weight * (x - mean_s) * invstd_s + bias`` with the spike-phase statistics as values
    (``invstd_s = 1/sqrt(var_s + eps)``); backward as if mean and variance were the rate tensor's own
    batch statistics evaluated at those values, i.e. for ``m = mean_s + (mean(x) - stopgrad)``,
    ``v = var_s + (mean((x - m)^2) - stopgrad)``.  With ``g = dL/dy * weight``, ``rho = invstd_s``
    and per-channel means over the non-channel axes::

        dL/dx = rho * (g - mean(g)) - rho^3 * (x - mean(x)) * mean(g * (x - mean_s))

    Only ``x`` is saved (BatchNorm's own footprint); running statistics are not touched.
    """

    @staticmethod
    def forward(x, weight, bias, mean_s, invstd_s):
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        y = (x - mean_s.view(shape)) * invstd_s.view(shape)
        if weight is not None:
            y = y * weight.view(shape) + bias.view(shape)
        return y

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, mean_s, invstd_s = inputs
        ctx.save_for_backward(x, weight, mean_s, invstd_s)
        ctx.affine = weight is not None

    @staticmethod
    def backward(ctx, gy):
        x, weight, mean_s, invstd_s = ctx.saved_tensors
        dims = _bn_dims(x)
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        rho = invstd_s.view(shape)
        xc = x - mean_s.view(shape)
        g = gy * weight.view(shape) if ctx.affine else gy
        gx = rho * (g - g.mean(dims, keepdim=True)) - rho ** 3 * (x - x.mean(dims, keepdim=True)) * (
            (g * xc).mean(dims, keepdim=True))
        gw = gb = None
        if ctx.affine:
            gw = (gy * xc * rho).sum(dims)
            gb = gy.sum(dims)
        return gx, gw, gb, None, None


def _rate_bn_forward(bn: _BatchNorm, mean_s: torch.Tensor, invstd_s: torch.Tensor) -> Callable:
    """BN on rates: values normalised with the spike-phase statistics; gradients as through the rate
    tensor's own batch statistics (see :class:`_RateBatchNorm`)."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        w, b = (bn.weight, bn.bias) if bn.affine else (None, None)
        return _RateBatchNorm.apply(x, w, b, mean_s, invstd_s)

    return forward


def _rate_bn_reference(x, weight, bias, mean_s, var_s, eps):
    """The same normalisation written with stop-gradients (for tests; saves more tensors)."""
    dims = _bn_dims(x)
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    mx = x.mean(dims, keepdim=True)
    m = mean_s.view(shape) + (mx - mx.detach())
    vx = (x - m).square().mean(dims, keepdim=True)
    v = var_s.view(shape) + (vx - vx.detach())
    y = (x - m) * torch.rsqrt(v + eps)
    return y * weight.view(shape) + bias.view(shape) if weight is not None else y


# ---- memory accounting ---------------------------------------------------------------------------------

class SavedTensorMeter:
    """Counts the bytes of the distinct storages autograd saves for backward while active.

    Parameters (and views of them) are excluded: they exist whatever the method.
    ``nbytes`` is the total at the end of the forward, which is the peak of
    saved activations (they are all alive when the backward starts).
    """

    def __init__(self, model: nn.Module | None = None):
        self._params = set()
        if model is not None:
            self._params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self._seen: dict[int, int] = {}
        self._ignore: set[int] = set()
        self._ctx = None

    def ignore(self, tensors) -> None:
        """Do not count these tensors' storages (already accounted for elsewhere) until ``__exit__``."""
        self._ignore.update(t.untyped_storage().data_ptr() for t in tensors)

    @property
    def nbytes(self) -> int:
        return sum(self._seen.values())

    def _pack(self, t: torch.Tensor):
        try:
            st = t.untyped_storage()
            ptr = st.data_ptr()
            if ptr not in self._params and ptr not in self._ignore:
                self._seen[ptr] = max(self._seen.get(ptr, 0), st.nbytes())
        except (RuntimeError, NotImplementedError):  # e.g. tensors without storage
            self._seen[id(t)] = t.numel() * t.element_size()
        return t

    @staticmethod
    def _unpack(t):
        return t

    def __enter__(self):
        self._seen = {}
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        self._ctx = None
        self._ignore = set()


def record_nbytes(model: nn.Module) -> int:
    """Bytes of the rate-BP neuron records currently held by ``model``'s neurons."""
    return sum(m.record_nbytes() for m in neurons(model))


# ---- training steps ------------------------------------------------------------------------------------

def bptt_step(model: nn.Module, x_seq: torch.Tensor, y: torch.Tensor, loss_fn: Callable,
              meter: SavedTensorMeter | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Forward through the T steps with autograd, then backward.

    Returns ``(loss, output (N, classes), bytes of rate-BP records = 0)``; gradients are accumulated
    into the parameters' ``.grad``.
    """
    reset_net(model)
    set_mode(model, "spike")
    with meter if meter is not None else contextlib.nullcontext():
        out = model(x_seq).mean(0)
        loss = loss_fn(out, y)
    loss.backward()
    return loss.detach(), out.detach(), 0


def rate_step(model: nn.Module, x_seq: torch.Tensor, y: torch.Tensor, loss_fn: Callable,
              variant: str = "M", meter: SavedTensorMeter | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Rate-based backprop: spike phase (no autograd), one rate pass, one backward.

    Returns ``(loss, spiking output (N, classes), bytes of records held until the backward)``;
    gradients are accumulated into the parameters' ``.grad``.
    """
    if variant not in ("M", "S"):
        raise ValueError(f"variant must be 'M' or 'S', got {variant!r}")
    reset_net(model)
    try:
        with torch.no_grad(), _BNStats(model, variant) as bn_stats:
            if variant == "M":
                set_mode(model, "record")
                out_spike = model(x_seq).mean(0)
            else:
                set_mode(model, "record", stateful=True)
                out_spike = torch.stack([model(x_seq[t:t + 1])[0] for t in range(x_seq.shape[0])]).mean(0)
        held = record_nbytes(model) + bn_stats.nbytes()
        if meter is not None:
            meter.ignore(t for n in neurons(model) for t in n.record_tensors())
        set_mode(model, "rate")
        with meter if meter is not None else contextlib.nullcontext(), bn_stats.rate_pass():
            out_rate = model(x_seq.mean(0, keepdim=True)).mean(0)
            out = out_spike + (out_rate - out_rate.detach())
            loss = loss_fn(out, y)
        loss.backward()
    finally:
        set_mode(model, "spike")
        reset_net(model)
    return loss.detach(), out_spike, held


def train_step(model: nn.Module, x_seq: torch.Tensor, y: torch.Tensor, loss_fn: Callable, method: str,
               meter: SavedTensorMeter | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Dispatch to :func:`bptt_step` or :func:`rate_step` by method name (see :func:`canonical_method`)."""
    m = canonical_method(method)
    if m == "bptt":
        return bptt_step(model, x_seq, y, loss_fn, meter)
    return rate_step(model, x_seq, y, loss_fn, variant=m[-1], meter=meter)
