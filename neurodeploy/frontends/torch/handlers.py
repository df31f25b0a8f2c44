"""The PyTorch front end's op handlers: one per ATen op, registered by name (`handler`).

A handler takes (fx node, `Context`, arguments by schema name) and returns the value of the node:
a `Value` (a float-graph node it added), a `Selection`, or a constant.  Scheme front ends register
their own (the LIF and ReverB custom ops) through the same `handler` decorator.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir import float_graph as fg
from .context import Selection, Value, pair, rank

HANDLERS: dict = {}
# ops that do nothing to the value (eval mode) and ops without a value (assertions)
IDENTITY_OPS = {"clone", "contiguous", "alias", "detach", "lift_fresh_copy", "_to_copy", "to", "type_as",
             "dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout",
             "identity"}
NO_VALUE_OPS = {"_assert_tensor_metadata", "_assert_scalar", "_assert_async", "sym_constrain_range",
             "sym_constrain_range_for_size", "_functional_assert_async", "_functional_sym_constrain_range"}


def handler(*names):
    def register(fn):
        for n in names:
            HANDLERS[n] = fn
        return fn
    return register


def supported_ops() -> list[str]:
    return sorted(f"aten.{n}" for n in set(HANDLERS) | IDENTITY_OPS)


# --- handlers: (node, ctx, args) -> value --------------------------------------------------
def _conv(node, ctx, a, transposed=False):
    if transposed:
        raise ctx.unsupported("transposed convolution")
    x = ctx.tensor(ctx.resolve(a["input"]))
    w = ctx.const(ctx.resolve(a["weight"]), "convolution weight")
    if w.ndim != 4:
        raise ctx.unsupported(f"only 2-D convolutions are supported (weight rank {w.ndim})")
    b = ctx.resolve(a.get("bias"))
    b = np.zeros(w.shape[0]) if b is None else ctx.const(b, "convolution bias")
    stride, dilation = pair(a.get("stride"), (1, 1)), pair(a.get("dilation"), (1, 1))
    padding = a.get("padding")
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same" and stride == (1, 1) and all((d * (k - 1)) % 2 == 0
                                                             for d, k in zip(dilation, w.shape[2:])):
            padding = tuple(d * (k - 1) // 2 for d, k in zip(dilation, w.shape[2:]))
        else:
            raise ctx.unsupported(f"padding='{padding}' with an even kernel or a stride",
                                  "use explicit symmetric padding")
    else:
        padding = pair(padding, (0, 0))
    return ctx.add(fg.Conv(weight=w, bias=b, stride=stride, padding=padding, dilation=dilation,
                           groups=int(a.get("groups", 1))), [x])


@handler("conv2d")
def _conv2d(node, ctx, a):
    return _conv(node, ctx, a)


@handler("convolution")
def _convolution(node, ctx, a):
    return _conv(node, ctx, a, transposed=bool(a.get("transposed")))


def _dense(node, ctx, x_arg, w: np.ndarray, b: np.ndarray | None):
    if rank(ctx, x_arg) != 2:
        raise ctx.unsupported(f"a linear layer on a rank-{rank(ctx, x_arg)} tensor",
                              "flatten to (N, features) before nn.Linear")
    if w.ndim != 2:
        raise ctx.unsupported("a linear layer with a weight that is not 2-D")
    x = ctx.tensor(ctx.resolve(x_arg))
    b = np.zeros(w.shape[0]) if b is None else np.broadcast_to(b.reshape(-1), (w.shape[0],)).copy()
    return ctx.add(fg.Dense(weight=w, bias=b), [x])


@handler("linear")
def _linear(node, ctx, a):
    w = ctx.const(ctx.resolve(a["weight"]), "linear weight")
    b = ctx.resolve(a.get("bias"))
    return _dense(node, ctx, a["input"], w, None if b is None else ctx.const(b, "linear bias"))


@handler("addmm")
def _addmm(node, ctx, a):
    w = ctx.const(ctx.resolve(a["mat2"]), "matmul weight (second operand)")
    alpha, beta = float(a.get("alpha", 1)), float(a.get("beta", 1))
    if alpha != 1:
        w = w * alpha
    b = ctx.const(ctx.resolve(a["self"]), "addmm bias")
    if beta != 1:
        b = b * beta
    return _dense(node, ctx, a["mat1"], w.T.copy(), b)


@handler("mm", "matmul")
def _mm(node, ctx, a):
    second = a.get("mat2", a.get("other"))
    w = ctx.const(ctx.resolve(second), "matmul weight (second operand)")
    if w.ndim != 2:
        raise ctx.unsupported("a matmul weight that is not 2-D")
    return _dense(node, ctx, a["self"], w.T.copy(), None)


def _bn(node, ctx, a):
    if a.get("training", False):
        raise ctx.unsupported("BatchNorm in training mode (it would use batch statistics)",
                              "call model.eval() before exporting / compiling")
    x_arg = a["input"]
    x = ctx.tensor(ctx.resolve(x_arg))
    mean, var = ctx.resolve(a.get("running_mean")), ctx.resolve(a.get("running_var"))
    if mean is None or var is None:
        raise ctx.unsupported("BatchNorm without running statistics (track_running_stats=False)")
    mean, var = ctx.const(mean, "BatchNorm running_mean"), ctx.const(var, "BatchNorm running_var")
    w, b = ctx.resolve(a.get("weight")), ctx.resolve(a.get("bias"))
    gamma = np.ones_like(mean) if w is None else ctx.const(w, "BatchNorm weight")
    beta = np.zeros_like(mean) if b is None else ctx.const(b, "BatchNorm bias")
    if rank(ctx, x_arg) not in (2, 4):
        raise ctx.unsupported(f"BatchNorm on a rank-{rank(ctx, x_arg)} tensor", "use BatchNorm1d on (N, F) "
                              "or BatchNorm2d on (N, C, H, W)")
    # ONNX stores epsilon as a float32 attribute, and PyTorch adds it to the float32 running
    # variance in float32: round it the same way so that both front ends fold identically.
    eps = float(np.float32(a.get("eps", 1e-5)))
    return ctx.add(fg.BatchNorm(gamma, beta, mean, var, eps), [x])


@handler("batch_norm")
def _batch_norm(node, ctx, a):
    return _bn(node, ctx, a)


@handler("_native_batch_norm_legit_no_training")
def _bn_legit(node, ctx, a):
    return (_bn(node, ctx, a), None, None)


_BN_TRAINING = {"_native_batch_norm_legit", "_native_batch_norm_legit_functional", "_batch_norm_with_update"}


@handler("native_batch_norm", "cudnn_batch_norm", "miopen_batch_norm", "_batch_norm_no_update", *_BN_TRAINING)
def _bn_tuple(node, ctx, a):
    if node.target.overloadpacket.__name__ in _BN_TRAINING:
        a = {**a, "training": True}
    return (_bn(node, ctx, a), None, None, None)


@handler("relu", "relu_")
def _relu(node, ctx, a):
    return ctx.add(fg.Relu(), [ctx.tensor(ctx.resolve(a["self"]))])


@handler("floor", "floor_")
def _floor(node, ctx, a):
    return ctx.add(fg.Floor(), [ctx.tensor(ctx.resolve(a["self"]))])


def _bound(ctx, v, what):
    if v is None:
        return None
    arr = ctx.const(v, what)
    if arr.size != 1:
        raise ctx.unsupported(f"{what} is not a scalar")
    return float(arr.reshape(-1)[0])


@handler("clamp", "clamp_", "clip", "clip_")
def _clamp(node, ctx, a):
    lo = _bound(ctx, ctx.resolve(a.get("min")), "clamp minimum")
    hi = _bound(ctx, ctx.resolve(a.get("max")), "clamp maximum")
    return ctx.add(fg.Clip(lo, hi), [ctx.tensor(ctx.resolve(a["self"]))])


@handler("clamp_min", "clamp_min_")
def _clamp_min(node, ctx, a):
    return ctx.add(fg.Clip(_bound(ctx, ctx.resolve(a["min"]), "clamp minimum"), None),
                   [ctx.tensor(ctx.resolve(a["self"]))])


@handler("clamp_max", "clamp_max_")
def _clamp_max(node, ctx, a):
    return ctx.add(fg.Clip(None, _bound(ctx, ctx.resolve(a["max"]), "clamp maximum")),
                   [ctx.tensor(ctx.resolve(a["self"]))])


@handler("hardtanh", "hardtanh_")
def _hardtanh(node, ctx, a):
    return ctx.add(fg.Clip(float(a.get("min_val", -1.0)), float(a.get("max_val", 1.0))),
                   [ctx.tensor(ctx.resolve(a["self"]))])


def _is_tensor_value(v) -> bool:
    return isinstance(v, (Value, Selection)) or v is None


def _per_channel(ctx, arr: np.ndarray, x_rank: int) -> np.ndarray:
    """A broadcastable constant as a scalar () or per-channel (C,) array (as ONNX's front end)."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size == 1:
        return arr.reshape(())
    full = (1,) * (x_rank - arr.ndim) + arr.shape if arr.ndim <= x_rank else None
    if full is None or any(d != 1 for i, d in enumerate(full) if i != 1):
        raise ctx.unsupported(f"constant of shape {tuple(arr.shape)} is neither scalar nor per-channel")
    return arr.reshape(-1)


@handler("mul", "mul_", "div", "div_")
def _mul_div(node, ctx, a):
    op = node.target.overloadpacket.__name__.rstrip("_")
    x, y = ctx.resolve(a["self"]), ctx.resolve(a["other"])
    if a.get("rounding_mode") is not None:
        raise ctx.unsupported(f"division with rounding_mode='{a['rounding_mode']}'")
    if _is_tensor_value(x) and _is_tensor_value(y):
        raise ctx.unsupported(f"{op} of two computed tensors",
                              "only multiplication/division by a constant is supported")
    const_first = not _is_tensor_value(x)
    t_arg, c = (a["other"], x) if const_first else (a["self"], y)
    c = ctx.const(c, f"{op} operand")
    if op == "div":
        if const_first:
            raise ctx.unsupported("division of a constant by a tensor")
        c = 1.0 / c
    src = ctx.tensor(ctx.resolve(t_arg))
    return ctx.add(fg.Scale(_per_channel(ctx, c, rank(ctx, t_arg))), [src])


@handler("add", "add_", "sub", "sub_")
def _add_sub(node, ctx, a):
    op = node.target.overloadpacket.__name__.rstrip("_")
    x, y = ctx.resolve(a["self"]), ctx.resolve(a["other"])
    alpha = a.get("alpha", 1)
    if _is_tensor_value(x) and _is_tensor_value(y):
        if op == "sub" or alpha != 1:
            raise ctx.unsupported(f"{op} of two computed tensors" + (f" with alpha={alpha}" if alpha != 1 else ""),
                                  "only a + b of two tensors (a residual join) is supported")
        return ctx.add(fg.Add(), [ctx.tensor(x, "first operand"), ctx.tensor(y, "second operand")])
    const_first = not _is_tensor_value(x)
    if op == "sub" and const_first:
        raise ctx.unsupported("constant minus tensor")
    t_arg, c = (a["other"], x) if const_first else (a["self"], y)
    c = ctx.const(c, f"{op} operand")
    if alpha != 1:
        c = c * float(alpha)
    amount = _per_channel(ctx, -c if op == "sub" else c, rank(ctx, t_arg))
    src = ctx.tensor(ctx.resolve(t_arg))
    src_op = ctx.graph.op(src)
    # A MatMul followed by Add(bias) is a Dense layer with a bias (as in the ONNX front end).
    if (op == "add" and isinstance(src_op, fg.Dense) and not ctx.graph.consumers(src)
            and amount.ndim <= 1 and not np.any(src_op.bias)):
        ctx.graph.set_op(src, fg.Dense(src_op.weight, np.broadcast_to(amount, src_op.bias.shape).copy()))
        return Value(src)
    return ctx.add(fg.Shift(amount), [src])


@handler("flatten")
def _flatten(node, ctx, a):
    x_arg = a["self"] if "self" in a else a["input"]
    r = rank(ctx, x_arg)
    start, end = int(a.get("start_dim", 0)), int(a.get("end_dim", -1))
    start, end = start % max(r, 1), end % max(r, 1)
    if r < 2 or start != 1 or end != r - 1:
        raise ctx.unsupported(f"flatten(start_dim={a.get('start_dim', 0)}, end_dim={a.get('end_dim', -1)}) "
                              f"of a rank-{r} tensor", "only flattening all but the batch dimension is supported")
    return ctx.add(fg.Flatten(), [ctx.tensor(ctx.resolve(x_arg))])


@handler("view", "reshape", "_unsafe_view", "_reshape_alias", "view_copy", "squeeze")
def _reshape(node, ctx, a):
    x_arg = a["self"]
    ins, outs = ctx.shape(x_arg), ctx.out_shape()
    if (len(ins) >= 2 and len(outs) == 2 and None not in ins[1:] and outs[1] is not None
            and outs[1] == math.prod(ins[1:])):
        return ctx.add(fg.Flatten(), [ctx.tensor(ctx.resolve(x_arg))])
    raise ctx.unsupported(f"reshape {list(ins)} -> {list(outs)} is not a flatten",
                          "only x.view(N, -1) / x.reshape(N, -1) / torch.flatten(x, 1) is supported")


@handler("avg_pool2d")
def _avgpool(node, ctx, a):
    if a.get("ceil_mode"):
        raise ctx.unsupported("AvgPool2d with ceil_mode=True")
    if a.get("divisor_override") is not None:
        raise ctx.unsupported("AvgPool2d with divisor_override")
    k = pair(a["kernel_size"])
    return ctx.add(fg.AvgPool(k, pair(a.get("stride"), k), pair(a.get("padding"), (0, 0)),
                              bool(a.get("count_include_pad", True))), [ctx.tensor(ctx.resolve(a["self"]))])


@handler("adaptive_avg_pool2d", "_adaptive_avg_pool2d")
def _adaptive(node, ctx, a):
    ins = ctx.shape(a["self"])
    out = pair(a["output_size"])
    x = ctx.tensor(ctx.resolve(a["self"]))
    if out == (1, 1):
        return ctx.add(fg.GlobalAvgPool(), [x])
    if len(ins) == 4 and None not in ins[2:] and all(o and i % o == 0 for i, o in zip(ins[2:], out)):
        k = tuple(i // o for i, o in zip(ins[2:], out))
        return ctx.add(fg.AvgPool(k, k, (0, 0), False), [x])
    raise ctx.unsupported(f"AdaptiveAvgPool2d to {out} on an input of {ins[2:]} (not a uniform window)",
                          "use an output size that divides the input size, or 1")


@handler("mean")
def _mean(node, ctx, a):
    x_arg = a["self"]
    r = rank(ctx, x_arg)
    dims = a.get("dim")
    if r != 4 or not dims or sorted(int(d) % r for d in dims) != [2, 3]:
        raise ctx.unsupported(f"mean over dims {dims} of a rank-{r} tensor",
                              "only a global average over H and W, x.mean((2, 3)), is supported")
    y = ctx.add(fg.GlobalAvgPool(), [ctx.tensor(ctx.resolve(x_arg))])
    if a.get("keepdim"):
        return y
    name = ctx.node.name + "_flatten"          # (N, C, 1, 1) -> (N, C)
    ctx.info[name] = ctx.info[ctx.node.name]
    return ctx.add(fg.Flatten(), [y.name], fx_name=name)


def _maxpool(node, ctx, a):
    if any(pair(a.get("padding"), (0, 0))) or any(d != 1 for d in pair(a.get("dilation"), (1, 1))) \
            or a.get("ceil_mode"):
        raise ctx.unsupported("MaxPool2d with padding, dilation or ceil_mode",
                              "max pooling is exact only without padding (use padding=0)")
    k = pair(a["kernel_size"])
    return ctx.add(fg.MaxPool(k, pair(a.get("stride"), k)), [ctx.tensor(ctx.resolve(a["self"]))])


@handler("max_pool2d")
def _max_pool2d(node, ctx, a):
    return _maxpool(node, ctx, a)


@handler("max_pool2d_with_indices")
def _max_pool2d_idx(node, ctx, a):
    return (_maxpool(node, ctx, a), None)


def _as_select(ctx, v, fx_arg) -> Selection:
    if isinstance(v, Selection):
        return v
    name = ctx.tensor(v)
    shape = ctx.shape(fx_arg)
    if len(shape) != 4 or None in shape[1:]:
        raise ctx.unsupported(f"slicing / padding a rank-{len(shape)} tensor",
                              "only slices and channel padding of (N, C, H, W) activations are supported")
    return Selection(name, shape[1], np.arange(shape[1]), (1, 1), tuple(shape[1:]), ctx.node.name)


@handler("slice")
def _slice(node, ctx, a):
    shape = ctx.shape(a["self"])
    r = len(shape)
    dim = int(a.get("dim", 0)) % max(r, 1)
    size = shape[dim]
    start, end, step = a.get("start"), a.get("end"), int(a.get("step", 1))
    v = ctx.resolve(a["self"])
    if dim == 0:
        full = (slice(start, end, step).indices(size) == (0, size, 1) if size is not None
                else start in (None, 0) and (end is None or end >= 2 ** 62) and step == 1)
        if not full:
            raise ctx.unsupported("slicing the batch dimension")
        return v
    if size is not None and slice(start, end, step).indices(size) == (0, size, 1):
        return v
    sel = _as_select(ctx, v, a["self"])
    sel = Selection(sel.src, sel.c_in, sel.chan.copy(), sel.stride, sel.shape, node.name)
    s0, s1, st = slice(start, end, step).indices(size)
    if dim == 1:
        sel.chan = sel.chan[s0:s1:st]
    else:
        if s0 != 0 or s1 != size:
            raise ctx.unsupported(f"a spatial slice [{start}:{end}:{step}] that does not start at 0 and run to the end",
                                  "only x[:, :, ::s, ::s] is supported")
        stride = list(sel.stride)
        stride[dim - 2] *= st
        sel.stride = tuple(stride)
    sel.shape = tuple(ctx.out_shape()[1:])
    return sel


def _pad(node, ctx, a, value):
    pad = [int(p) for p in a["pad"]]
    if value not in (None, 0, 0.0):
        raise ctx.unsupported(f"padding with the value {value}", "only zero padding is supported")
    v = ctx.resolve(a["self"])
    shape = ctx.shape(a["self"])
    pairs = [pad[i:i + 2] for i in range(0, len(pad), 2)]    # last dim first
    dims = [len(shape) - 1 - i for i in range(len(pairs))]
    if len(shape) != 4 or any(p != [0, 0] for p, d in zip(pairs, dims) if d != 1):
        raise ctx.unsupported(f"padding {pad} of a rank-{len(shape)} tensor",
                              "only zero padding of the channel dimension, F.pad(x, (0, 0, 0, 0, p0, p1)), "
                              "is supported (pad H/W with the convolution's padding)")
    (c0, c1), = [p for p, d in zip(pairs, dims) if d == 1] or [[0, 0]]
    if c0 < 0 or c1 < 0:
        raise ctx.unsupported("negative (cropping) channel padding")
    sel = _as_select(ctx, v, a["self"])
    chan = np.concatenate([-np.ones(c0, dtype=np.int64), sel.chan, -np.ones(c1, dtype=np.int64)])
    return Selection(sel.src, sel.c_in, chan, sel.stride, tuple(ctx.out_shape()[1:]), node.name)


@handler("constant_pad_nd")
def _constant_pad(node, ctx, a):
    return _pad(node, ctx, a, a.get("value", 0))


@handler("pad")
def _pad_op(node, ctx, a):
    if a.get("mode", "constant") != "constant":
        raise ctx.unsupported(f"padding mode '{a.get('mode')}'", "only zero (constant) padding is supported")
    return _pad(node, ctx, a, a.get("value"))
