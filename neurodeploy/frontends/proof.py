"""The front end proves its reading of a model: our float graph against the source framework.

After a front end has built the float graph, `prove` evaluates it (float64, torch on the CPU)
on a few probe inputs and compares every node that has a counterpart in the source model
(an ONNX tensor run by onnxruntime, an fx node of a torch.export program) with the source
framework's value.  A difference beyond float round-off stops compilation, naming the first
node (in topological order) that differs.

Teacher forcing.  Each node is evaluated on the *reference's* values of its inputs where the
reference has them (our own values otherwise), so every comparison checks one op (or one short
chain of ops without counterparts) and float32 round-off never accumulates along the network:
a quantiser whose input differs by one ulp upstream cannot flip a code and fail the proof
downstream, and the first node that differs is the op we read wrongly.

The bound.  The reference computes in float32 (unit round-off u = 2^-24) from the same inputs.
For an op that sums n products plus a bias, any summation order gives
|fl(y) - y| <= gamma_(n+1) * sum(|w|·|x|) + ..., gamma_k = k·u / (1 - k·u) (Higham, Accuracy
and Stability of Numerical Algorithms, 2nd ed., §3.1); `magnitude` evaluates that sum of
absolute values with the op itself (|W|, |x|, |b|).  Elementwise ops round once (k = 1),
BatchNorm's few ops are counted as k = 8, a Softmax over n as k = n + 8 (exp to a few ulp, the
sum, the division); moves (slices, pads, reshapes), ReLU, Clip, max pooling and floor of the
same input are exact (k = 0).  Our float64 side adds 2^-50 of the same magnitude.  Where an
input of a chain is our own value, its bound is carried through the chain (linear ops by |W|,
1-Lipschitz ops unchanged), and a floor or quantiser whose argument lies within that bound of a
step -- or exactly on one, where QuantizeLinear rounds ties to even and QuantAct up -- may differ
by that one step.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UnsupportedError
from ..ir import float_graph as fg
from ..ir.float_eval import broadcast_against, eval_op

U32 = 2.0 ** -24
U64_MARGIN = 2.0 ** -50
TINY = 1e-30                 # absolute slack for values near float32's underflow
PROBE_SAMPLES = 4


def probe_inputs(input_shape: tuple, samples: np.ndarray | None = None) -> np.ndarray:
    """A few inputs for the proof: the first calibration samples, completed with seeded
    standard-normal ones (at least PROBE_SAMPLES, so that the batch differs from the
    normalised one and a reshape across samples shows)."""
    rng = np.random.default_rng(0)
    # samples shaped otherwise are not used here: compiler.check_calibration_shape refuses them in one line
    usable = samples is not None and tuple(np.shape(samples)[1:]) == tuple(input_shape)
    have = [np.asarray(samples[:PROBE_SAMPLES - 1], dtype=np.float32)] if usable else []
    n = sum(len(h) for h in have)
    extra = rng.standard_normal((max(PROBE_SAMPLES - n, 1),) + tuple(input_shape)).astype(np.float32)
    return np.concatenate(have + [extra]) if have else extra


def _gamma(k: float, unit: float = U32) -> float:
    return k * unit / (1.0 - k * unit)


def _abs_op(op, with_bias: bool):
    """The op with |weights| (and |bias| or no bias): evaluates sums of absolute values."""
    if isinstance(op, fg.Conv):
        return fg.Conv(np.abs(op.weight), np.abs(op.bias) if with_bias else np.zeros_like(op.bias),
                       op.stride, op.padding, op.dilation, op.groups)
    if isinstance(op, fg.Dense):
        return fg.Dense(np.abs(op.weight), np.abs(op.bias) if with_bias else np.zeros_like(op.bias))
    if isinstance(op, fg.Scale):
        return fg.Scale(np.abs(op.factor))
    if isinstance(op, fg.Shift):
        return fg.Shift(np.abs(op.amount) if with_bias else np.zeros_like(op.amount))
    if isinstance(op, fg.Pad):
        return fg.Pad(op.pads, abs(op.value) if with_bias and np.isfinite(op.value) else 0.0)
    return op


def _bn_terms(op: fg.BatchNorm, x: torch.Tensor):
    s = broadcast_against(np.abs(op.gamma) / np.sqrt(op.var + op.eps), x)
    return s, broadcast_against(np.abs(op.mean) * np.abs(op.gamma) / np.sqrt(op.var + op.eps) + np.abs(op.beta), x)


def _roundings(op, x: torch.Tensor) -> float:
    """k in gamma_k: the float32 roundings along the longest path of one output element."""
    if isinstance(op, fg.Conv):
        return op.weight.shape[1] * op.weight.shape[2] * op.weight.shape[3] + 1
    if isinstance(op, fg.Dense):
        return op.weight.shape[1] + 1
    if isinstance(op, fg.AvgPool):
        return op.kernel[0] * op.kernel[1] + 2
    if isinstance(op, fg.GlobalAvgPool):
        return x.shape[2] * x.shape[3] + 2
    if isinstance(op, fg.AdaptiveAvgPool):        # the largest window: ceil(H/oh) + 1 rows by columns
        return (-(-x.shape[2] // op.output_size[0]) + 1) * (-(-x.shape[3] // op.output_size[1]) + 1) + 2
    if isinstance(op, fg.BatchNorm):
        return 8
    if isinstance(op, (fg.Scale, fg.Shift, fg.Add)):
        return 1
    if isinstance(op, fg.Softmax):
        return x.shape[op.axis + 1] + 8
    return 0


def _near_step(t: torch.Tensor, slack: torch.Tensor) -> torch.Tensor:
    """Elements within `slack` of an integer (or on one): where floor may take either side."""
    dist = torch.abs(t - torch.round(t))
    return (dist <= slack) | (dist == 0)


def _bound(op, xs: list[torch.Tensor], errs: list[torch.Tensor], y: torch.Tensor, unit: float = U32) -> torch.Tensor:
    """Elementwise bound on |our value - the reference's| for one op (see the module docstring)."""
    x = xs[0] if xs else None
    e = errs[0] if errs else None
    if isinstance(op, fg.Floor):
        return _near_step(x, e).to(y.dtype) * (e > 0).to(y.dtype)
    if isinstance(op, fg.QuantAct):
        scale = broadcast_against(np.abs(np.asarray(op.in_scale, dtype=np.float64)), x)
        t = x * broadcast_against(op.in_scale, x) + broadcast_against(op.offset, x)
        slack = e * scale + 4 * unit * (torch.abs(x) * scale + torch.abs(t))
        # one step where the code may flip, plus DequantizeLinear's rounding of (k - z)·s
        return (_near_step(t, slack).to(y.dtype) * torch.abs(broadcast_against(op.out_step, x))
                + (_gamma(2, unit) + U64_MARGIN) * torch.abs(y))
    k = _roundings(op, x if x is not None else y)
    if isinstance(op, fg.BatchNorm):
        s, c = _bn_terms(op, x)
        magnitude = torch.abs(x) * s + c
        carried = e * s
    elif isinstance(op, fg.Add):
        magnitude = torch.abs(xs[0]) + torch.abs(xs[1])
        carried = errs[0] + errs[1]
    elif isinstance(op, (fg.Relu, fg.Clip)):          # 1-Lipschitz, exact on the same input
        magnitude, carried = torch.abs(y), e
    elif isinstance(op, fg.Softmax):
        magnitude = torch.abs(y) + (1.0 if op.log else 0.0)
        worst = torch.amax(e, dim=op.axis + 1, keepdim=True)
        carried = (2.0 if op.log else 0.5) * worst.expand_as(y)
    elif isinstance(op, fg.Concat):
        magnitude, carried = torch.zeros_like(y), torch.cat(errs, dim=op.axis + 1)
    else:
        magnitude = eval_op(_abs_op(op, True), [torch.abs(v) for v in xs])
        # an op whose inputs are all the reference's own values (teacher forcing) carries no error:
        # skip evaluating it on zeros (for a convolution, a third of the proof's work)
        carried = eval_op(_abs_op(op, False), errs) if any(bool(torch.any(e != 0)) for e in errs) \
            else torch.zeros_like(y)
        if isinstance(op, fg.Pad):
            carried = torch.nan_to_num(carried, neginf=0.0)
            magnitude = torch.nan_to_num(magnitude, neginf=0.0)
    return carried + (_gamma(k, unit) + U64_MARGIN) * magnitude + (TINY if k else 0.0)


class ProofError(UnsupportedError):
    """Our float graph computes something else than the source model."""


def prove(graph: fg.FloatGraph, x: np.ndarray | dict, reference: dict[str, np.ndarray], label: dict[str, str],
          runner: str, unit_roundoff: float = U32, slack: dict | None = None, bounds: dict | None = None) -> dict:
    """Compare the teacher-forced float graph with `reference` (graph node -> the source's value on
    x, batch first); `label[node]` names the source's tensor; `unit_roundoff` is the reference's
    (float32: 2^-24).  x: the input batch, or {Input node: its batch} for a graph with several
    Input nodes (a region cut out of a larger graph: `passes.proof`).  slack[node]: added to the bound
    at that node (the reference's own round-off where it computed another chain of ops than ours);
    `bounds`, if given, receives the bound at every compared node.  Returns {node: max |difference|}."""
    forced: dict[str, tuple] = {}
    diffs = {}
    remaining = {n: len(graph.consumers(n)) for n in graph.g}
    for name in graph.topo_order():
        op = graph.op(name)
        if isinstance(op, fg.Input):
            y = torch.as_tensor(np.asarray(x[name] if isinstance(x, dict) else x, dtype=np.float64))
            err = torch.zeros_like(y)
        else:
            ins = graph.inputs(name)
            xs = [forced[i][0] for i in ins]
            errs = [forced[i][1] for i in ins]
            y = eval_op(op, xs)
            err = _bound(op, xs, errs, y, unit_roundoff)
            for i in ins:
                remaining[i] -= 1
                if remaining[i] == 0:
                    forced.pop(i, None)
        ref = reference.get(name)
        if ref is not None:
            ref = np.asarray(ref)
            where = graph.where(name)
            if tuple(ref.shape) != tuple(y.shape):
                raise ProofError(f"the float graph's value has shape {list(y.shape)} where {runner} computes "
                                 f"{list(ref.shape)} (tensor '{label.get(name, name)}')", where, _HINT)
            if slack is not None and name in slack:
                err = err + slack[name]
            if bounds is not None:
                bounds[name] = err
            r = torch.as_tensor(np.asarray(ref, dtype=np.float64))
            diff = torch.abs(y - r)
            bad = ~(diff <= err)
            if bool(bad.any()):
                bad &= ~(torch.isinf(y) & (y == r))
            if bool(bad.any()):
                idx = tuple(int(i) for i in torch.nonzero(bad)[0])
                raise ProofError(
                    f"the float graph differs from {runner} (tensor '{label.get(name, name)}'): "
                    f"{int(bad.sum())} of {bad.numel()} values, e.g. at {list(idx)} ours {float(y[idx]):.9g} vs "
                    f"{float(r[idx]):.9g}, beyond the float round-off bound {float(err[idx]):.3g}", where, _HINT)
            diffs[name] = float(diff.max()) if diff.numel() else 0.0
            y, err = r, torch.zeros_like(r)
        forced[name] = (y, err)
    return diffs


_HINT = ("neurodeploy reads this op differently from its definition; the model is refused rather than "
         "compiled wrong -- please report it with the model")
