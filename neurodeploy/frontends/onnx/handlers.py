"""ONNX handlers for the ops that compute: one handler per op type -> float-graph ops.

Handlers run on the normalised model (normalise.py): constant subgraphs are folded to
initializers and every tensor has a static shape (batch first), which they use to resolve
`auto_pad`, `ceil_mode`, broadcasting and reshapes exactly.  Every attribute a handler does
not list is refused by `load_onnx` before the handler runs.  Layout ops are in layout.py, the
QuantizeLinear/DequantizeLinear pairs in qdq.py.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import NeurodeployError
from ...ir import float_graph as fg
from ..constants import BroadcastError, broadcast_constant
from .context import attrs, handler, ints

# Non-linearities (and ops built from them) that no spiking scheme here can run: one clear refusal each.
NONLINEAR = {
    "Sigmoid": "sigmoid", "HardSigmoid": "hard sigmoid", "HardSwish": "hard swish", "Tanh": "tanh",
    "Elu": "ELU", "Selu": "SELU", "Celu": "CELU", "Gelu": "GELU", "Erf": "erf (GELU)",
    "Softplus": "softplus", "Softsign": "softsign", "Mish": "mish", "LeakyRelu": "leaky ReLU",
    "PRelu": "PReLU", "ThresholdedRelu": "thresholded ReLU", "Exp": "exp", "Log": "log", "Pow": "pow",
    "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Abs": "abs", "Sin": "sin", "Cos": "cos",
    "LayerNormalization": "layer normalisation", "InstanceNormalization": "instance normalisation",
    "GroupNormalization": "group normalisation", "LpNormalization": "Lp normalisation",
    "LRN": "local response normalisation", "Einsum": "einsum", "Attention": "attention",
}
NONLINEAR_HINT = ("no spiking scheme here can run it: replace it with ReLU (or QCFS) and fine-tune, "
                   "or keep it on the host after the network")


# --- geometry shared by Conv and the pools -------------------------------------------------
def spatial_pads(node, ctx, a, in_hw, kernel, stride, dilation) -> tuple:
    """(top, left, bottom, right) from `pads` or `auto_pad` (SAME_UPPER/SAME_LOWER/VALID)."""
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("NOTSET", ""):
        pads = ints(a.get("pads"), (0, 0, 0, 0))
        if len(pads) != 4 or any(p < 0 for p in pads):
            raise NeurodeployError(f"pads {list(pads)} for a 2-D op", ctx.where(node), "re-export the model")
        return pads
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.refuse(node, f"unknown auto_pad '{auto}'", "use NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, stride, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def _window(node, ctx, a, w_shape=None):
    """kernel, stride, dilation, (top, left, bottom, right), input (C, H, W) of a Conv or a pool."""
    x_shape = ctx.sample_shape(node, node.input[0])
    if len(x_shape) != 3:
        raise ctx.refuse(node, f"a 2-D {node.op_type} on a tensor of shape {list(x_shape)}",
                         "only 2-D (N, C, H, W) convolutions and pools are supported")
    kernel = ints(a.get("kernel_shape"), tuple(w_shape[2:]) if w_shape is not None else None)
    if kernel is None or len(kernel) != 2 or (w_shape is not None and tuple(kernel) != tuple(w_shape[2:])):
        raise NeurodeployError(f"kernel_shape {kernel} does not fit the op", ctx.where(node), "re-export the model")
    stride = ints(a.get("strides"), (1, 1))
    dilation = ints(a.get("dilations"), (1, 1))
    if len(stride) != 2 or len(dilation) != 2 or min(stride + dilation) < 1:
        raise NeurodeployError(f"strides {stride} / dilations {dilation}", ctx.where(node), "re-export the model")
    pads = spatial_pads(node, ctx, a, x_shape[1:], kernel, stride, dilation)
    return kernel, stride, dilation, pads, x_shape


def _pre_pad(node, ctx, src: str, pads: tuple, value: float) -> str:
    """An explicit Pad node for pads a symmetric op cannot take."""
    top, left, bottom, right = pads
    return ctx.add(node, fg.Pad(((0, 0), (top, bottom), (left, right)), value), [src], suffix="_pad")


# --- linear layers -------------------------------------------------------------------------
@handler("Conv", attrs=("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"))
def _conv(node, ctx):
    a = attrs(node)
    w = ctx.const(node, 1, "weight")
    if w.ndim != 4:
        raise ctx.refuse(node, f"only 2-D convolutions are supported (weight rank {w.ndim})")
    b = ctx.optional_const(node, 2, "bias")
    b = np.zeros(w.shape[0]) if b is None else b
    kernel, stride, dilation, pads, _ = _window(node, ctx, a, w.shape)
    src = ctx.tensor(node.input[0])
    top, left, bottom, right = pads
    if (top, left) != (bottom, right):
        src, top, left = _pre_pad(node, ctx, src, pads, 0.0), 0, 0
    ctx.add(node, fg.Conv(weight=w.astype(np.float64), bias=np.asarray(b, np.float64).reshape(-1),
                          stride=stride, padding=(top, left), dilation=dilation, groups=int(a.get("group", 1))), [src])


@handler("Gemm", attrs=("alpha", "beta", "transA", "transB"))
def _gemm(node, ctx):
    a = attrs(node)
    if a.get("transA", 0):
        raise ctx.refuse(node, "Gemm with transA=1 (the activation transposed)", "export y = x @ W.T + b")
    if len(ctx.sample_shape(node, node.input[0])) != 1:
        raise ctx.refuse(node, "Gemm on a tensor that is not (N, features)")
    w = ctx.const(node, 1, "weight").astype(np.float64) * float(a.get("alpha", 1.0))
    if w.ndim != 2:
        raise NeurodeployError(f"Gemm weight of rank {w.ndim}", ctx.where(node), "re-export the model")
    if not a.get("transB", 0):
        w = w.T
    c = ctx.optional_const(node, 2, "bias")
    bias = np.zeros(w.shape[0])
    if c is not None:
        try:
            bias = broadcast_constant(c.astype(np.float64) * float(a.get("beta", 1.0)), (ctx.batch, w.shape[0]))
        except BroadcastError as exc:
            raise ctx.refuse(node, f"Gemm bias: {exc}") from None
        bias = np.broadcast_to(bias, (w.shape[0],)).copy()
    ctx.add(node, fg.Dense(weight=np.ascontiguousarray(w), bias=bias), [ctx.tensor(node.input[0])])


@handler("MatMul")
def _matmul(node, ctx):
    x, y = node.input[0], node.input[1]
    if not ctx.is_const(y):
        raise ctx.refuse(node, "MatMul of two computed tensors (attention)" if not ctx.is_const(x)
                         else "MatMul with a constant first operand",
                         "only x @ W with a constant 2-D W (a linear layer) is supported")
    w = ctx.consts[y].astype(np.float64)
    if w.ndim != 2 or len(ctx.sample_shape(node, x)) != 1:
        raise ctx.refuse(node, f"MatMul of a tensor of shape {list(ctx.shape(node, x))} by a constant of shape "
                         f"{list(w.shape)}", "only (N, features) @ (features, out) is supported")
    ctx.add(node, fg.Dense(weight=np.ascontiguousarray(w.T), bias=np.zeros(w.shape[1])), [ctx.tensor(x)])


@handler("BatchNormalization", attrs=("epsilon", "momentum", "training_mode"))
def _bn(node, ctx):
    a = attrs(node)
    if a.get("training_mode", 0):          # normalise.inference_mode turns these off first
        raise ctx.refuse(node, "BatchNormalization in training mode (batch statistics)",
                         "export the model in eval mode")
    if len(ctx.sample_shape(node, node.input[0])) not in (1, 3):
        raise ctx.refuse(node, "BatchNormalization of a tensor that is not (N, C) or (N, C, H, W)")
    gamma, beta, mean, var = (ctx.const(node, i, n).astype(np.float64)
                              for i, n in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    ctx.add(node, fg.BatchNorm(gamma, beta, mean, var, float(a.get("epsilon", 1e-5))),
            [ctx.tensor(node.input[0])])


# --- activations ---------------------------------------------------------------------------
@handler("Relu")
def _relu(node, ctx):
    ctx.add(node, fg.Relu(), [ctx.tensor(node.input[0])])


@handler("Floor")
def _floor(node, ctx):
    ctx.add(node, fg.Floor(), [ctx.tensor(node.input[0])])


def _scalar(node, ctx, index: int, what: str) -> float | None:
    v = ctx.optional_const(node, index, what)
    if v is None:
        return None
    if v.size != 1:
        raise ctx.refuse(node, f"{what} of shape {list(v.shape)} (not a scalar)")
    return float(v.reshape(-1)[0])


@handler("Clip")
def _clip(node, ctx):
    if node.input[0] in ctx.pending:       # Q -> Clip -> DQ: a narrower integer range
        from .qdq import clip_quantised
        clip_quantised(node, ctx)
        return
    lo, hi = _scalar(node, ctx, 1, "clip minimum"), _scalar(node, ctx, 2, "clip maximum")
    if ctx.is_const(node.input[0]):        # Q -> Clip -> DQ on a weight (Brevitas' QCDQ: int4 in int8)
        codes = ctx.consts[node.input[0]]
        lo, hi = -np.inf if lo is None else lo, np.inf if hi is None else hi
        ctx.consts[node.output[0]] = np.clip(codes, lo, hi).astype(codes.dtype)
        return
    ctx.add(node, fg.Clip(lo, hi), [ctx.tensor(node.input[0])])


@handler("Max", "Min")
def _max_min(node, ctx):
    """max(x, c) / min(x, c) with a scalar constant: a one-sided Clip (the dynamo exporter's clamp)."""
    computed = [i for i in node.input if not ctx.is_const(i)]
    consts = [i for i in node.input if ctx.is_const(i)]
    if len(computed) != 1 or len(consts) != 1 or ctx.consts[consts[0]].size != 1:
        raise ctx.refuse(node, f"{node.op_type} of {len(computed)} computed tensor(s) and {len(consts)} constant(s)",
                         f"only {node.op_type.lower()}(x, c) with a scalar constant c (a clamp) is supported")
    c = float(ctx.consts[consts[0]].reshape(-1)[0])
    op = fg.Clip(c, None) if node.op_type == "Max" else fg.Clip(None, c)
    ctx.add(node, op, [ctx.tensor(computed[0])])


@handler("Softmax", "LogSoftmax", attrs=("axis",))
def _softmax(node, ctx):
    rank = len(ctx.shape(node, node.input[0]))
    axis = ctx.per_sample_axis(node, attrs(node).get("axis", -1), rank)
    ctx.add(node, fg.Softmax(axis, node.op_type == "LogSoftmax"), [ctx.tensor(node.input[0])])


# --- elementwise arithmetic ----------------------------------------------------------------
def _operand(node, ctx, c, x: str) -> np.ndarray:
    try:
        return broadcast_constant(c, ctx.shape(node, x))
    except BroadcastError as exc:
        raise ctx.refuse(node, str(exc), "use a scalar or per-channel constant") from None


def _negate(node, ctx, src: str) -> str:
    return ctx.add(node, fg.Scale(np.asarray(-1.0)), [src], suffix="_neg")


@handler("Mul", "Div", "Add", "Sub")
def _arith(node, ctx):
    op = node.op_type
    x, y = node.input[0], node.input[1]
    if not ctx.is_const(x) and not ctx.is_const(y):
        if op in ("Mul", "Div"):
            raise ctx.refuse(node, f"{op} of two computed tensors (a gate or attention)",
                             "only multiplication/division by a constant is supported")
        if ctx.shape(node, x) != ctx.shape(node, y):
            raise ctx.refuse(node, f"{op} of tensors of shapes {list(ctx.shape(node, x))} and "
                             f"{list(ctx.shape(node, y))} (broadcast between activations)",
                             "only residual joins of equal shapes are supported")
        b = ctx.tensor(y) if op == "Add" else _negate(node, ctx, ctx.tensor(y))
        ctx.add(node, fg.Add(), [ctx.tensor(x), b])
        return
    const_first = ctx.is_const(x)
    t, c = (y, ctx.consts[x]) if const_first else (x, ctx.consts[y])
    c = np.asarray(c, dtype=np.float64)
    src = ctx.tensor(t)
    if op == "Div":
        if const_first:
            raise ctx.refuse(node, "division of a constant by a tensor (a reciprocal)", NONLINEAR_HINT)
        c = 1.0 / c
    if op == "Sub":
        if const_first:                      # c - x = (-1)·x + c
            src = _negate(node, ctx, src)
        else:
            c = -c
    value = _operand(node, ctx, c, t)
    if op in ("Mul", "Div"):
        ctx.add(node, fg.Scale(value), [src])
        return
    src_op = ctx.graph.op(src)
    # MatMul then Add(bias) is one Dense layer with a bias, when nothing else reads the MatMul
    if (isinstance(src_op, fg.Dense) and ctx.uses.get(t, 0) == 1 and t not in ctx.outputs
            and value.ndim <= 1 and not np.any(src_op.bias)):
        ctx.graph.set_op(src, fg.Dense(src_op.weight, np.broadcast_to(value, src_op.bias.shape).copy()))
        ctx.same(node, src)
        return
    ctx.add(node, fg.Shift(value), [src])


# --- pooling -------------------------------------------------------------------------------
def _floor_out(size, k, s, d, pb, pe) -> int:
    return (size + pb + pe - d * (k - 1) - 1) // s + 1


@handler("AveragePool", attrs=("auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape",
                               "pads", "strides"))
def _avgpool(node, ctx):
    a = attrs(node)
    kernel, stride, dilation, pads, x_shape = _window(node, ctx, a)
    top, left, bottom, right = pads
    include = bool(a.get("count_include_pad", 0))
    out_hw = ctx.sample_shape(node, node.output[0])[1:]
    floor_hw = tuple(_floor_out(n, k, s, d, pb, pe) for n, k, s, d, pb, pe in
                     zip(x_shape[1:], kernel, stride, dilation, (top, left), (bottom, right)))
    if tuple(out_hw) != floor_hw:
        raise ctx.refuse(node, f"AveragePool with ceil_mode=1 adds partial windows ({list(floor_hw)} -> {list(out_hw)})",
                         "export with ceil_mode=0, or pad the input so that the windows tile it")
    src = ctx.tensor(node.input[0])
    symmetric = (top, left) == (bottom, right) and all(p <= k // 2 for p, k in zip((top, left), kernel))
    if not symmetric and any(pads):
        if not include:
            raise ctx.refuse(node, f"AveragePool with asymmetric pads {list(pads)} and count_include_pad=0",
                             "use symmetric padding or count_include_pad=1")
        src, top, left = _pre_pad(node, ctx, src, pads, 0.0), 0, 0
    ctx.add(node, fg.AvgPool(kernel, stride, (top, left), include or not (top or left), dilation), [src])


@handler("MaxPool", attrs=("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"))
def _maxpool(node, ctx):
    a = attrs(node)
    if len(node.output) > 1 and node.output[1] and ctx.uses.get(node.output[1], 0):
        raise ctx.refuse(node, "MaxPool with an indices output", "export without return_indices")
    kernel, stride, dilation, pads, x_shape = _window(node, ctx, a)
    top, left, bottom, right = pads
    out_hw = ctx.sample_shape(node, node.output[0])[1:]
    # ceil_mode: the partial windows at the end are windows over extra padding that never wins
    extra = [max(0, (o - 1) * s + d * (k - 1) + 1 - (n + pb + pe)) for o, n, k, s, d, pb, pe in
             zip(out_hw, x_shape[1:], kernel, stride, dilation, (top, left), (bottom, right))]
    bottom, right = bottom + extra[0], right + extra[1]
    got = tuple(_floor_out(n, k, s, d, pb, pe) for n, k, s, d, pb, pe in
                zip(x_shape[1:], kernel, stride, dilation, (top, left), (bottom, right)))
    if got != tuple(out_hw):
        raise NeurodeployError(f"MaxPool output {list(out_hw)} does not follow from its attributes",
                               ctx.where(node), "re-export the model")
    src = ctx.tensor(node.input[0])
    pads = (top, left, bottom, right)
    if (top, left) != (bottom, right) or any(p > k // 2 for p, k in zip((top, left), kernel)):
        src, top, left = _pre_pad(node, ctx, src, pads, -math.inf), 0, 0
    ctx.add(node, fg.MaxPool(kernel, stride, (top, left), dilation), [src])


@handler("GlobalAveragePool")
def _gap(node, ctx):
    if len(ctx.sample_shape(node, node.input[0])) != 3:
        raise ctx.refuse(node, "global pooling of a tensor that is not (N, C, H, W)")
    ctx.add(node, fg.GlobalAvgPool(), [ctx.tensor(node.input[0])])


@handler("GlobalMaxPool")
def _gmp(node, ctx):
    shape = ctx.sample_shape(node, node.input[0])
    if len(shape) != 3:
        raise ctx.refuse(node, "global pooling of a tensor that is not (N, C, H, W)")
    ctx.add(node, fg.MaxPool(tuple(shape[1:]), tuple(shape[1:])), [ctx.tensor(node.input[0])])


@handler("ReduceMean", attrs=("axes", "keepdims", "noop_with_empty_axes"))
def _reduce_mean(node, ctx):
    a = attrs(node)
    shape = ctx.shape(node, node.input[0])
    axes = ints(a.get("axes"))
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = tuple(int(v) for v in ctx.const(node, 1, "axes").reshape(-1))
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            ctx.same(node, ctx.tensor(node.input[0]))
            return
        axes = tuple(range(len(shape)))
    axes = sorted(int(v) % len(shape) for v in axes)
    if len(shape) != 4 or axes != [2, 3]:
        raise ctx.refuse(node, f"ReduceMean over axes {axes} of a tensor of shape {list(shape)}",
                         "only a global average over H and W is supported")
    pooled = ctx.add(node, fg.GlobalAvgPool(), [ctx.tensor(node.input[0])],
                     suffix="" if a.get("keepdims", 1) else "_pool")
    if not a.get("keepdims", 1):
        ctx.add(node, fg.Flatten(), [pooled])
