"""Float-graph ops of ReverB networks and their float semantics over T time steps.

The PyTorch front end (`schemes.reverb.front`) turns `nn.reverb.BinaryConv2d` /
`BinaryLinear` / `ReverBNeuron` into the ops below; `schemes.reverb.fold` rewrites them into
the folded form the `reverb` scheme quantises.  Both forms run on :func:`run`, the float
reference of the scheme: the same (T, N, ...) semantics as `nn.lif.SpikingSequential`
(every stateless op applied to each step alike, layer-synchronous, static input repeated
at every step, network output = mean over the T steps of the last op's output).

Binary layers keep their ±1 weights and their input-channel scale α apart
(``weight`` holds sign(W) exactly, ``alpha`` the trained α), so that the folding can show
that what the chip stores stays ±1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...ir import float_graph as fg


@dataclass
class BinaryConv:
    """y = conv2d(x, α ⊙ weight) + bias = conv2d(α ⊙ x, weight) + bias.

    weight (C_out, C_in, kH, kW): exactly ±1 (sign(W), sign(0) = +1); alpha (C_in,) the
    per-input-channel scale (all ones once folded); bias (C_out,).  groups = 1 only.
    """
    weight: np.ndarray
    alpha: np.ndarray
    bias: np.ndarray
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)


@dataclass
class BinaryDense:
    """y = (α ⊙ weight) @ x + bias = weight @ (α ⊙ x) + bias; weight (out, in) ±1, alpha (in,)."""
    weight: np.ndarray
    alpha: np.ndarray
    bias: np.ndarray


@dataclass
class ReverbAct:
    """ReverB neuron layer (graded spikes, hard reset), per step with input x_t::

        U = tau·U + x_t + bias
        f = U ≥ threshold
        y_t = emit_scale · U · f        # the graded spike
        U = U · (1 − f)                 # hard reset to 0

    Trained form (front end): bias 0, threshold = V_th (scalar), emit_scale 1.  Folded form
    (`schemes.reverb.fold`): U is Ũ = U/|s| of digest §4.3, threshold V_th/|s_c|, bias c_c/|s_c|
    and emit_scale κ_c = |s_c|·|α_c| per channel (C,) (per feature (F,) after a dense layer).
    Where the consumer's α varies within a channel (a BinaryLinear after a Flatten: α per
    flattened feature) emit_scale is per neuron, the layer's full shape (C, H, W).  Every
    field broadcasts by the rule of `schemes.reverb.neurons.neuron_field`.
    """
    tau: float
    threshold: np.ndarray
    bias: np.ndarray = field(default_factory=lambda: np.zeros(()))
    emit_scale: np.ndarray = field(default_factory=lambda: np.ones(()))


BINARY = (BinaryConv, BinaryDense)
WEIGHTED = (fg.Conv, fg.Dense, BinaryConv, BinaryDense)


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _chan(a, x: torch.Tensor) -> torch.Tensor:
    """A scalar, per-channel (C,) or per-neuron (one sample's shape) array shaped to broadcast
    against the batch x (N, ...): the rule of `schemes.reverb.neurons.neuron_field`."""
    t = _t(a)
    if t.ndim == 0:
        return t
    if t.ndim == x.ndim - 1 and tuple(t.shape) == tuple(x.shape[1:]):
        return t.unsqueeze(0)
    return t.reshape((1, -1) + (1,) * (x.ndim - 2))


def eval_stateless(op, xs: list[torch.Tensor]) -> torch.Tensor:
    """One step of a stateless op (binary layers here, the rest by `ir.float_eval.eval_op`)."""
    from ...ir.float_eval import eval_op
    x = xs[0] if xs else None
    if isinstance(op, BinaryConv):
        w = _t(op.weight) * _t(op.alpha).reshape(1, -1, 1, 1)
        return F.conv2d(x, w, _t(op.bias), tuple(op.stride), tuple(op.padding), tuple(op.dilation))
    if isinstance(op, BinaryDense):
        return x @ (_t(op.weight) * _t(op.alpha).reshape(1, -1)).T + _t(op.bias)
    return eval_op(op, xs)


@dataclass
class Stats:
    """Calibration statistics of one node over a run (maxima over samples, steps, neurons)."""
    emit_max: float = 0.0      # ReverbAct: largest graded spike; others: largest |value|
    u_max: float = 0.0         # ReverbAct: largest |U| after integration (before reset)
    sum_max: float = 0.0       # largest |running sum over steps| of the value (readout state)
    emit_max_per_channel: np.ndarray | None = None


def _update(st: Stats, value: torch.Tensor, u: torch.Tensor | None, running: torch.Tensor) -> None:
    st.emit_max = max(st.emit_max, float(value.abs().max()) if value.numel() else 0.0)
    st.sum_max = max(st.sum_max, float(running.abs().max()) if running.numel() else 0.0)
    if u is not None and u.numel():
        st.u_max = max(st.u_max, float(u.abs().max()))
    if value.ndim >= 2 and value.numel():
        per = value.abs().transpose(0, 1).reshape(value.shape[1], -1).max(1).values.numpy()
        st.emit_max_per_channel = per if st.emit_max_per_channel is None else np.maximum(st.emit_max_per_channel, per)


def run(graph: fg.FloatGraph, x: np.ndarray, timesteps: int, stats: bool = False, sequence: bool = False):
    """Run a (trained or folded) ReverB float graph on static inputs x (N, ...) for T steps
    (with `sequence`, x is (T, N, ...): one input per step).

    Returns the mean over the T steps of the output node's value, float64 (N, ...), and with
    `stats` also {node: Stats} for every node (what the scheme calibrates its units from).
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    order = graph.topo_order()
    xs = _t(x)
    if sequence and xs.shape[0] < timesteps:
        raise ValueError(f"{xs.shape[0]} input steps for {timesteps} time steps")
    state: dict[str, torch.Tensor] = {}
    running: dict[str, torch.Tensor] = {}
    rec = {n: Stats() for n in order} if stats else None
    total = None
    for step in range(timesteps):
        xin = xs[step] if sequence else xs
        values: dict[str, torch.Tensor] = {}
        for name in order:
            op = graph.op(name)
            ins = [values[i] for i in graph.inputs(name)]
            u = None
            if isinstance(op, fg.Input):
                v = xin
            elif isinstance(op, ReverbAct):
                prev = state.get(name)
                u = ins[0] + _chan(op.bias, ins[0]) + (0.0 if prev is None else op.tau * prev)
                fired = u >= _chan(op.threshold, u)
                v = torch.where(fired, u * _chan(op.emit_scale, u), torch.zeros_like(u))
                state[name] = torch.where(fired, torch.zeros_like(u), u)
            else:
                v = eval_stateless(op, ins)
            values[name] = v
            if rec is not None:
                running[name] = v if name not in running else running[name] + v
                _update(rec[name], v, u, running[name])
        out = values[graph.output]
        total = out if total is None else total + out
    mean = (total / timesteps).numpy()
    return (mean, rec) if stats else mean
