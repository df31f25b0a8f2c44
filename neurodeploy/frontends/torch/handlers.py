"""The PyTorch front end's op handlers: one per ATen op, registered by name (`handler`).

A handler takes (fx node, `Context`, arguments by schema name) and returns the value of the node:
a `Value` (a float-graph node it added) or a constant.  Scheme front ends register their own (the
LIF and ReverB custom ops) through the same `handler` decorator.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from ...ir import float_graph as fg
from ..constants import BroadcastError, broadcast_constant
from .context import Value, pair, rank, supported_hint

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


@handler("relu6", "relu6_")
def _relu6(node, ctx, a):
    return ctx.add(fg.Clip(0.0, 6.0), [ctx.tensor(ctx.resolve(a["self"]))])


def _is_tensor_value(v) -> bool:
    return isinstance(v, Value) or v is None


def _operand(ctx, c, t_arg) -> np.ndarray:
    """A constant operand broadcast against the tensor `t_arg` (as the ONNX front end does)."""
    full = tuple(1 if d is None else d for d in ctx.shape(t_arg))
    try:
        return broadcast_constant(c, full)
    except BroadcastError as exc:
        raise ctx.unsupported(str(exc), "use a scalar or per-channel constant") from None


def _negate(ctx, src: str) -> str:
    """-x as Scale(-1), named after the current node (the ONNX front end writes the same)."""
    name = ctx.node.name + "_neg"
    ctx.info[name] = ctx.info[ctx.node.name]
    return ctx.add(fg.Scale(np.asarray(-1.0)), [src], fx_name=name).name


@handler("mul", "mul_", "div", "div_")
def _mul_div(node, ctx, a):
    op = node.target.overloadpacket.__name__.rstrip("_")
    x, y = ctx.resolve(a["self"]), ctx.resolve(a["other"])
    if a.get("rounding_mode") is not None:
        raise ctx.unsupported(f"division with rounding_mode='{a['rounding_mode']}'")
    if _is_tensor_value(x) and _is_tensor_value(y):
        raise ctx.unsupported(f"{op} of two computed tensors (a gate or attention)",
                              "only multiplication/division by a constant is supported")
    const_first = not _is_tensor_value(x)
    t_arg, c = (a["other"], x) if const_first else (a["self"], y)
    c = ctx.const(c, f"{op} operand")
    if op == "div":
        if const_first:
            raise ctx.unsupported("division of a constant by a tensor (a reciprocal)", NONLINEAR_HINT)
        c = 1.0 / c
    src = ctx.tensor(ctx.resolve(t_arg))
    return ctx.add(fg.Scale(_operand(ctx, c, t_arg)), [src])


@handler("add", "add_", "sub", "sub_", "rsub")
def _add_sub(node, ctx, a):
    op = node.target.overloadpacket.__name__.rstrip("_")
    x_arg, y_arg = a["self"], a["other"]
    if op == "rsub":                       # rsub(x, c) = c - x
        op, x_arg, y_arg = "sub", y_arg, x_arg
    x, y = ctx.resolve(x_arg), ctx.resolve(y_arg)
    alpha = a.get("alpha", 1)
    if _is_tensor_value(x) and _is_tensor_value(y):
        if alpha != 1:
            raise ctx.unsupported(f"{op} of two computed tensors with alpha={alpha}")
        if ctx.shape(x_arg) != ctx.shape(y_arg):
            raise ctx.unsupported(f"{op} of tensors of shapes {list(ctx.shape(x_arg))} and "
                                  f"{list(ctx.shape(y_arg))} (broadcast between activations)",
                                  "only residual joins of equal shapes are supported")
        b = ctx.tensor(y, "second operand")
        if op == "sub":
            b = _negate(ctx, b)
        return ctx.add(fg.Add(), [ctx.tensor(x, "first operand"), b])
    const_first = not _is_tensor_value(x)
    t_val, c = (y, x) if const_first else (x, y)
    t_arg = y_arg if const_first else x_arg
    c = ctx.const(c, f"{op} operand")
    if alpha != 1:
        c = c * float(alpha)
    src = ctx.tensor(t_val)
    if op == "sub":
        if const_first:                    # c - x = (-1)·x + c
            src = _negate(ctx, src)
        else:
            c = -c
    amount = _operand(ctx, c, t_arg)
    src_op = ctx.graph.op(src)
    # A MatMul followed by Add(bias) is a Dense layer with a bias (as in the ONNX front end).
    if (op == "add" and isinstance(src_op, fg.Dense) and not ctx.graph.consumers(src)
            and len(getattr(t_arg, "users", ())) == 1 and amount.ndim <= 1 and not np.any(src_op.bias)):
        ctx.graph.set_op(src, fg.Dense(src_op.weight, np.broadcast_to(amount, src_op.bias.shape).copy()))
        return Value(src)
    return ctx.add(fg.Shift(amount), [src])


def _relabel(ctx, x_arg):
    """A reshape within each sample: Flatten to (N, F), Reshape otherwise, nothing if the same."""
    ins, outs = ctx.shape(x_arg), ctx.out_shape()
    v = ctx.resolve(x_arg)
    if not ins or not outs or None in ins[1:] or None in outs[1:] or len(outs) < 2 or ins[0] != outs[0] \
            or math.prod(ins[1:]) != math.prod(outs[1:]):
        raise ctx.unsupported(f"reshape {list(ins)} -> {list(outs)} moves values between samples",
                              "reshape each sample: keep the batch as the first dimension")
    if tuple(outs[1:]) == tuple(ins[1:]):
        return v
    if len(outs) == 2:
        return ctx.add(fg.Flatten(), [ctx.tensor(v)])
    return ctx.add(fg.Reshape(tuple(outs[1:])), [ctx.tensor(v)])


@handler("flatten")
def _flatten(node, ctx, a):
    x_arg = a["self"] if "self" in a else a["input"]
    r = rank(ctx, x_arg)
    start = int(a.get("start_dim", 0)) % max(r, 1)
    if r >= 2 and start == 0:
        raise ctx.unsupported(f"flatten(start_dim={a.get('start_dim', 0)}) mixes the batch with other axes",
                              "flatten from dimension 1: torch.flatten(x, 1)")
    return _relabel(ctx, x_arg)


@handler("view", "reshape", "_unsafe_view", "_reshape_alias", "view_copy", "squeeze", "squeeze_copy",
         "unsqueeze", "unsqueeze_copy", "unflatten")
def _reshape(node, ctx, a):
    return _relabel(ctx, a["self"])


@handler("permute", "permute_copy", "transpose", "transpose_copy", "t", "swapaxes", "movedim")
def _permute(node, ctx, a):
    import torch
    x_arg = node.args[0]
    r = rank(ctx, x_arg)
    # the permutation: run the op on an empty tensor whose dimensions all differ in size
    sizes = list(range(2, r + 2))
    perm = tuple(sizes.index(d) for d in node.target(torch.empty(sizes), *node.args[1:], **node.kwargs).shape)
    if perm[0] != 0:
        raise ctx.unsupported(f"a permutation {list(perm)} that moves the batch dimension",
                              "only permutations within a sample are supported")
    v = ctx.resolve(x_arg)
    if list(perm) == list(range(r)):
        return v
    return ctx.add(fg.Transpose(tuple(p - 1 for p in perm[1:])), [ctx.tensor(v)])


@handler("cat", "concat", "concatenate")
def _cat(node, ctx, a):
    tensors = ctx.resolve(a["tensors"])
    r = rank(ctx, node)
    dim = int(a.get("dim", 0)) % max(r, 1)
    if dim == 0:
        raise ctx.unsupported("concatenating along the batch dimension")
    if not all(isinstance(t, Value) for t in tensors):
        raise ctx.unsupported("concatenating a constant with computed tensors")
    if len(tensors) == 1:
        return tensors[0]
    return ctx.add(fg.Concat(dim - 1), [t.name for t in tensors])


@handler("split", "split_with_sizes", "chunk", "tensor_split", "unsafe_split", "unsafe_split_with_sizes")
def _split(node, ctx, a):
    shape = ctx.shape(a["self"])
    dim = int(a.get("dim", 0)) % max(len(shape), 1)
    if dim == 0:
        raise ctx.unsupported("splitting the batch dimension")
    src = ctx.tensor(ctx.resolve(a["self"]))
    outs, start = [], 0
    for k, val in enumerate(ctx.node.meta["val"]):
        size = int(val.shape[dim])
        lo, hi, steps = _full_range(shape[1:])
        lo[dim - 1], hi[dim - 1] = start, start + size
        name = f"{ctx.node.name}_{k}"
        ctx.info[name] = ctx.info[ctx.node.name]
        outs.append(ctx.add(fg.Slice(tuple(lo), tuple(hi), tuple(steps)), [src], fx_name=name))
        start += size
    return outs


@handler("softmax", "_softmax", "log_softmax", "_log_softmax", "special_softmax", "special_log_softmax")
def _softmax(node, ctx, a):
    x_arg = a["self"] if "self" in a else a["input"]
    r = rank(ctx, x_arg)
    dim = int(a["dim"]) % max(r, 1)
    if dim == 0:
        raise ctx.unsupported("softmax over the batch dimension")
    log = "log" in node.target.overloadpacket.__name__
    return ctx.add(fg.Softmax(dim - 1, log), [ctx.tensor(ctx.resolve(x_arg))])


def _pool_window(ctx, a, kernel) -> tuple:
    """stride, padding, dilation of a 2-D pooling call."""
    return (pair(a.get("stride"), kernel), pair(a.get("padding"), (0, 0)), pair(a.get("dilation"), (1, 1)))


def _ceil_extra(ctx, in_hw, kernel, stride, padding, dilation) -> tuple:
    """Extra end padding that makes floor-mode windows give export's (ceil-mode) output size."""
    out_hw = ctx.out_shape()[2:]
    return tuple(max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p))
                 for o, n, k, s, p, d in zip(out_hw, in_hw, kernel, stride, padding, dilation))


def _pre_pad(ctx, src: str, pads: tuple, value: float) -> str:
    """(top, left, bottom, right) padding as its own node, named after the current node."""
    name = ctx.node.name + "_pad"
    ctx.info[name] = ctx.info[ctx.node.name]
    top, left, bottom, right = pads
    return ctx.add(fg.Pad(((0, 0), (top, bottom), (left, right)), value), [src], fx_name=name).name


@handler("avg_pool2d")
def _avgpool(node, ctx, a):
    if a.get("divisor_override") is not None:
        raise ctx.unsupported("AvgPool2d with divisor_override")
    k = pair(a["kernel_size"])
    stride, padding, _ = _pool_window(ctx, a, k)
    in_hw = ctx.shape(a["self"])[2:]
    if any(_ceil_extra(ctx, in_hw, k, stride, padding, (1, 1))):
        raise ctx.unsupported("AvgPool2d with ceil_mode=True adding partial windows",
                              "use ceil_mode=False, or pad the input so that the windows tile it")
    include = bool(a.get("count_include_pad", True)) or not any(padding)
    return ctx.add(fg.AvgPool(k, stride, padding, include), [ctx.tensor(ctx.resolve(a["self"]))])


@handler("adaptive_avg_pool2d", "_adaptive_avg_pool2d")
def _adaptive(node, ctx, a):
    ins = ctx.shape(a["self"])
    out = pair(a["output_size"])
    x = ctx.tensor(ctx.resolve(a["self"]))
    if out == (1, 1):
        return ctx.add(fg.GlobalAvgPool(), [x])
    if len(ins) == 4 and None not in ins[2:] and all(o and i % o == 0 for i, o in zip(ins[2:], out)):
        k = tuple(i // o for i, o in zip(ins[2:], out))
        return ctx.add(fg.AvgPool(k, k, (0, 0), True), [x])
    if len(ins) == 4 and None not in ins[2:] and None not in out:
        # windows of unequal size or overlapping (e.g. VGG's 1x1 -> 7x7 at 32x32): read as it is;
        # passes.fold_adaptive_pool folds it into the weighted layer that follows
        return ctx.add(fg.AdaptiveAvgPool(tuple(int(o) for o in out)), [x])
    raise ctx.unsupported(f"AdaptiveAvgPool2d to {out} on an input of {ins[2:]}",
                          "give the pooling a static input shape and output size")


@handler("mean")
def _mean(node, ctx, a):
    x_arg = a["self"]
    r = rank(ctx, x_arg)
    dims = a.get("dim")
    if r != 4 or not dims or sorted(int(d) % r for d in dims) != [2, 3]:
        raise ctx.unsupported(f"mean over dims {dims} of a rank-{r} tensor",
                              "only a global average over H and W, x.mean((2, 3)), is supported")
    if not a.get("keepdim"):               # (N, C, 1, 1) -> (N, C), named as the ONNX front end's
        name = ctx.node.name + "_pool"
        ctx.info[name] = ctx.info[ctx.node.name]
        y = ctx.add(fg.GlobalAvgPool(), [ctx.tensor(ctx.resolve(x_arg))], fx_name=name)
        return ctx.add(fg.Flatten(), [y.name])
    return ctx.add(fg.GlobalAvgPool(), [ctx.tensor(ctx.resolve(x_arg))])


def _maxpool(node, ctx, a):
    k = pair(a["kernel_size"])
    stride, padding, dilation = _pool_window(ctx, a, k)
    in_hw = ctx.shape(a["self"])[2:]
    extra = _ceil_extra(ctx, in_hw, k, stride, padding, dilation) if a.get("ceil_mode") else (0, 0)
    src = ctx.tensor(ctx.resolve(a["self"]))
    if any(extra):
        pads = (padding[0], padding[1], padding[0] + extra[0], padding[1] + extra[1])
        src, padding = _pre_pad(ctx, src, pads, -math.inf), (0, 0)
    return ctx.add(fg.MaxPool(k, stride, padding, dilation), [src])


@handler("max_pool2d")
def _max_pool2d(node, ctx, a):
    return _maxpool(node, ctx, a)


@handler("max_pool2d_with_indices")
def _max_pool2d_idx(node, ctx, a):
    if len(node.users) and any(u.target is operator.getitem and u.args[1] == 1 for u in node.users):
        raise ctx.unsupported("MaxPool2d with return_indices=True", "pool without returning indices")
    return (_maxpool(node, ctx, a), None)


# Non-linearities no spiking scheme here can run: one clear refusal each (as the ONNX front end).
NONLINEAR = {"sigmoid": "sigmoid", "hardsigmoid": "hard sigmoid", "hardswish": "hard swish", "silu": "SiLU",
             "gelu": "GELU", "tanh": "tanh", "elu": "ELU", "selu": "SELU", "celu": "CELU", "mish": "mish",
             "softplus": "softplus", "leaky_relu": "leaky ReLU", "prelu": "PReLU", "_prelu_kernel": "PReLU",
             "rrelu": "RReLU", "exp": "exp", "log": "log", "pow": "pow", "sqrt": "sqrt", "rsqrt": "rsqrt",
             "reciprocal": "reciprocal", "abs": "abs", "sin": "sin", "cos": "cos", "erf": "erf",
             "layer_norm": "layer normalisation", "native_layer_norm": "layer normalisation",
             "group_norm": "group normalisation", "native_group_norm": "group normalisation",
             "instance_norm": "instance normalisation", "bmm": "batched matmul (attention)",
             "baddbmm": "batched matmul (attention)",
             "scaled_dot_product_attention": "attention", "_scaled_dot_product_flash_attention": "attention",
             "_scaled_dot_product_efficient_attention": "attention",
             "_scaled_dot_product_flash_attention_for_cpu": "attention"}
NONLINEAR_HINT = ("no spiking scheme here can run it: replace it with ReLU (or QCFS) and fine-tune, "
                  "or keep it on the host after the network")


def _nonlinear(node, ctx, a):
    name = node.target.overloadpacket.__name__.rstrip("_")
    raise ctx.unsupported(f"unsupported op aten.{name} ({NONLINEAR[name]}, a non-linearity)",
                          f"{NONLINEAR_HINT}; {supported_hint()}")


for _name in NONLINEAR:
    HANDLERS[_name] = HANDLERS[_name + "_"] = _nonlinear


def _full_range(shape) -> tuple[list, list, list]:
    return [0] * len(shape), list(shape), [1] * len(shape)


@handler("slice")
def _slice(node, ctx, a):
    shape = ctx.shape(a["self"])
    r = len(shape)
    dim = int(a.get("dim", 0)) % max(r, 1)
    start, end, step = a.get("start"), a.get("end"), int(a.get("step", 1))
    v = ctx.resolve(a["self"])
    if dim == 0:
        size = shape[0]
        full = (slice(start, end, step).indices(size) == (0, size, 1) if size is not None
                else start in (None, 0) and (end is None or end >= 2 ** 62) and step == 1)
        if not full:
            raise ctx.unsupported("slicing the batch dimension", "only slices within a sample are supported")
        return v
    if None in shape[1:]:
        raise ctx.unsupported(f"slicing a tensor of dynamic shape {list(shape)}")
    lo, hi, steps = _full_range(shape[1:])
    a0, b0, _ = slice(start, end, step).indices(shape[dim])
    if (a0, max(a0, b0), step) == (0, shape[dim], 1):
        return v
    lo[dim - 1], hi[dim - 1], steps[dim - 1] = a0, max(a0, b0), step
    return ctx.add(fg.Slice(tuple(lo), tuple(hi), tuple(steps)), [ctx.tensor(v)])


def _pad(node, ctx, a, value):
    pad = [int(p) for p in a["pad"]]
    value = 0.0 if value is None else float(value)
    shape = ctx.shape(a["self"])
    pairs = [tuple(pad[i:i + 2]) for i in range(0, len(pad), 2)]    # last dim first
    per_axis = [(0, 0)] * len(shape)
    for i, pair in enumerate(pairs):
        per_axis[len(shape) - 1 - i] = pair
    if per_axis[0] != (0, 0):
        raise ctx.unsupported("padding the batch dimension")
    if any(p < 0 for pair in per_axis for p in pair):
        raise ctx.unsupported(f"negative (cropping) padding {pad}", "crop with a slice")
    v = ctx.resolve(a["self"])
    if all(pair == (0, 0) for pair in per_axis):
        return v
    return ctx.add(fg.Pad(tuple(per_axis[1:]), value), [ctx.tensor(v)])


@handler("constant_pad_nd")
def _constant_pad(node, ctx, a):
    return _pad(node, ctx, a, a.get("value", 0))


@handler("pad")
def _pad_op(node, ctx, a):
    if a.get("mode", "constant") != "constant":
        raise ctx.unsupported(f"padding mode '{a.get('mode')}'", "only constant padding is supported")
    return _pad(node, ctx, a, a.get("value"))

