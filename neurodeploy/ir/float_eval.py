"""Evaluate a `FloatGraph` in float64 (torch on the CPU): shapes, per-node values, codes.

This is the float model *after* the front end, used to infer shapes and to measure how far
quantisation moves each layer.  The user's original model is run by onnxruntime instead.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import NeurodeployError
from ..ir import float_graph as fg


def _t(a, like: torch.Tensor | None = None) -> torch.Tensor:
    """A float64 tensor of `a`, on the device of `like` (the "meta" device for shape inference)."""
    t = torch.as_tensor(np.asarray(a, dtype=np.float64))
    return t if like is None or like.device == t.device else t.to(like.device)


def broadcast_against(a, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar, a per-channel (C,) array or a per-sample-rank array against x (N, C, ...)."""
    t = _t(a, x)
    if t.ndim == 0:
        return t
    if t.ndim == 1:
        return t.reshape((1, -1) + (1,) * (x.ndim - 2))
    if t.ndim != x.ndim - 1:
        raise ValueError(f"constant of shape {tuple(t.shape)} for a tensor of shape {tuple(x.shape[1:])}")
    return t.unsqueeze(0)


def _avg_pool(op: fg.AvgPool, x: torch.Tensor) -> torch.Tensor:
    """Average pooling with dilation (which F.avg_pool2d lacks): window sums over unfolded
    patches, divided by the window size or by the count of its elements inside the input."""
    if tuple(op.dilation) == (1, 1):
        return F.avg_pool2d(x, op.kernel, op.stride, op.padding, count_include_pad=op.count_include_pad)
    n, c, h, w = x.shape
    oh = (h + 2 * op.padding[0] - op.dilation[0] * (op.kernel[0] - 1) - 1) // op.stride[0] + 1
    ow = (w + 2 * op.padding[1] - op.dilation[1] * (op.kernel[1] - 1) - 1) // op.stride[1] + 1

    def window_sums(t):
        cols = F.unfold(t, op.kernel, op.dilation, op.padding, op.stride)      # (N, C*k, L)
        return cols.reshape(t.shape[0], t.shape[1], -1, oh * ow).sum(2).reshape(t.shape[0], t.shape[1], oh, ow)
    if op.count_include_pad:
        return window_sums(x) / float(op.kernel[0] * op.kernel[1])
    return window_sums(x) / window_sums(torch.ones((1, 1, h, w), dtype=x.dtype, device=x.device))


def _slice(op: fg.Slice, x: torch.Tensor) -> torch.Tensor:
    index = (slice(None),) + tuple(slice(a, b, s) for a, b, s in zip(op.starts, op.stops, op.steps))
    return x[index]


def _pad(op: fg.Pad, x: torch.Tensor) -> torch.Tensor:
    flat = [int(p) for pair in reversed(op.pads) for p in pair]        # F.pad: last axis first
    return F.pad(x, flat, value=float(op.value))


def quant_codes(op: fg.QuantAct, x: torch.Tensor) -> torch.Tensor:
    """Integer codes k = clip(floor(x * in_scale + offset), 0, levels), as float64."""
    return torch.clamp(torch.floor(x * broadcast_against(op.in_scale, x) + broadcast_against(op.offset, x)), 0, op.levels)


def eval_op(op, xs: list[torch.Tensor]) -> torch.Tensor:
    x = xs[0] if xs else None
    if isinstance(op, fg.Conv):
        return F.conv2d(x, _t(op.weight, x), _t(op.bias, x), op.stride, op.padding, op.dilation, op.groups)
    if isinstance(op, fg.Dense):
        return x @ _t(op.weight, x).T + _t(op.bias, x)
    if isinstance(op, fg.BatchNorm):
        s, c = op.scale_shift()
        return x * broadcast_against(s, x) + broadcast_against(c, x)
    if isinstance(op, fg.Relu):
        return torch.relu(x)
    if isinstance(op, fg.QuantAct):
        return quant_codes(op, x) * broadcast_against(op.out_step, x)
    if isinstance(op, fg.Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(op, fg.AvgPool):
        return _avg_pool(op, x)
    if isinstance(op, fg.AdaptiveAvgPool):
        return F.adaptive_avg_pool2d(x, tuple(op.output_size))
    if isinstance(op, fg.GlobalAvgPool):
        return x.mean(dim=(2, 3), keepdim=True)
    if isinstance(op, fg.MaxPool):
        return F.max_pool2d(x, op.kernel, op.stride, op.padding, op.dilation)
    if isinstance(op, fg.Slice):
        return _slice(op, x)
    if isinstance(op, fg.Pad):
        return _pad(op, x)
    if isinstance(op, fg.Concat):
        return torch.cat(xs, dim=op.axis + 1)
    if isinstance(op, fg.Reshape):
        return x.reshape((x.shape[0],) + tuple(op.shape))
    if isinstance(op, fg.Transpose):
        return x.permute((0,) + tuple(p + 1 for p in op.perm))
    if isinstance(op, fg.Softmax):
        fn = torch.log_softmax if op.log else torch.softmax
        return fn(x, dim=op.axis + 1)
    if isinstance(op, fg.Add):
        return xs[0] + xs[1]
    if isinstance(op, fg.Scale):
        return x * broadcast_against(op.factor, x)
    if isinstance(op, fg.Shift):
        return x + broadcast_against(op.amount, x)
    if isinstance(op, fg.Floor):
        return torch.floor(x)
    if isinstance(op, fg.Clip):
        return torch.clamp(x, op.lo, op.hi)
    raise TypeError(f"no float evaluation for {type(op).__name__}")


def evaluate(graph: fg.FloatGraph, x: np.ndarray, keep: set[str] | None = None) -> dict[str, np.ndarray]:
    """Values of every node (or of `keep` and the output) for a batch x (N, ...)."""
    values: dict[str, torch.Tensor] = {}
    order = graph.topo_order()
    remaining = {n: len(graph.consumers(n)) for n in order}
    out = {}
    for name in order:
        op = graph.op(name)
        if isinstance(op, fg.Input):
            v = _t(x)
        else:
            try:
                v = eval_op(op, [values[i] for i in graph.inputs(name)])
            except (RuntimeError, ValueError, IndexError) as exc:
                # shapes that do not fit together (e.g. a weight for another channel count)
                first = str(exc).strip().splitlines()[0][:200]
                raise NeurodeployError(f"cannot evaluate this op on its input ({first})", graph.where(name),
                                       "check the layer's weight shape against its input") from None
            for i in graph.inputs(name):
                remaining[i] -= 1
                if remaining[i] == 0 and i != graph.output:
                    values.pop(i, None)
        values[name] = v
        if keep is None or name in keep or name == graph.output:
            out[name] = v.numpy()
    return out


def output_shape(op, in_shapes: list[tuple]) -> tuple:
    """Per-sample output shape of `op` on inputs of these per-sample shapes, computed on torch's
    "meta" device: shapes only, nothing the size of the tensors is allocated (a model that declares
    a 100000x100000 input is checked in microseconds).  Raises what the op raises on a misfit."""
    xs = [torch.empty((1,) + tuple(s), dtype=torch.float64, device="meta") for s in in_shapes]
    return tuple(eval_op(op, xs).shape[1:])


def infer_shapes(graph: fg.FloatGraph) -> dict[str, tuple]:
    """Per-sample output shape of every node (on the meta device, see `output_shape`); a node over
    `limits.MAX_LAYER_NEURONS` values is refused, whichever front end made the graph."""
    from ..limits import check_layer_size
    shapes: dict[str, tuple] = {}
    for name in graph.topo_order():
        op = graph.op(name)
        shapes[name] = tuple(op.shape) if isinstance(op, fg.Input) else \
            output_shape(op, [shapes[i] for i in graph.inputs(name)])
        check_layer_size(shapes[name], graph.where(name), "the input" if isinstance(op, fg.Input) else "the output")
    return shapes
