"""PyTorch front end: an `nn.Module` (or a `.pt2` file from `torch.export.save`) -> `FloatGraph`.

The result is the same float graph the ONNX front end builds from the model's ONNX export
(same ops, same float64 parameters; only node names differ): BatchNorm stays a `BatchNorm`
node (the `fold_bn` pass folds it, as for ONNX), a QCFS activation comes out as its
elementwise chain Scale(1/λ) Scale(Q) Shift(½) Floor Scale(1/Q) Clip(0, 1) Scale(λ), which
the `fuse_quant_act` pass turns into one quantiser, exactly as it does for the ONNX chain
Div Mul Add Floor Div Clip Mul.

Why torch.export and not torch.fx.symbolic_trace
-----------------------------------------------
- One small, closed op set.  torch.export lowers everything a user can write (modules,
  `F.relu`, `torch.relu`, `x.relu()`, `x.view`, `torch.flatten`, operators, slicing) to
  ATen ops, so the front end has one handler per ATen op (like the ONNX front end has one per
  ONNX op) instead of one per module class *and* per function *and* per tensor method.
- Complete and sound capture.  fx's symbolic tracing silently bakes in Python control flow
  and fails on shape arithmetic (`x.view(x.size(0), -1)`); export either traces the exact
  computation for the example input's shapes (every tensor has a known shape in
  `node.meta["val"]`, which the handlers use to recognise flattens and global pools) or
  refuses with a reason.  Custom autograd functions (QCFS's straight-through floor) are
  inlined to their forward ops.
- Readable names survive: every node carries `nn_module_stack`, the module path
  (`layer2.0.conv1`) and class it came from.  We name float-graph nodes after it and
  name it in every error.
- Parameters are lifted to named inputs (`graph_signature`), so weights are read as
  constants without executing the model, and everything computed from constants only
  (e.g. a transposed weight after `run_decompositions`) is folded by running the op.
- A program can be saved (`torch.export.save`, `.pt2`), which is what the command line
  compiles; fx graphs have no file format.
Both the default (training) ATen IR of `torch.export.export` and the core ATen IR after
`run_decompositions()` are accepted (conv2d/convolution, linear/addmm/mm, batch_norm/
_native_batch_norm_legit_no_training, adaptive_avg_pool2d/mean, flatten/view, ...).

Supported (see `SUPPORTED_MODULES`, `SUPPORTED_FUNCTIONS`, `supported_ops()`)
-----------------------------------------------------------------------------
Conv2d (grouped, depthwise), Linear, BatchNorm1d/2d (eval mode), ReLU, ReLU6 / Hardtanh / clamp
(Clip), `neurodeploy.nn.QCFS` (via its ops), AvgPool2d, AdaptiveAvgPool2d (output 1, or dividing
the input), MaxPool2d (padding, dilation, ceil_mode), Flatten / view / reshape / squeeze /
unsqueeze / permute / transpose within a sample, `x.mean((2, 3))`, slicing `x[:, c0:c1, a::s]`,
F.pad (constant), torch.cat, split/chunk, softmax/log_softmax, residual `+` and `-`,
multiplication, division, addition and subtraction by constants (broadcast as numpy does:
aligned on the last axis), `torch.floor`, Identity, Dropout (eval).  These become the float-graph
ops the ONNX front end makes of the same network's export (`frontends/onnx`), so both give one
graph; the option-A shortcut of CIFAR ResNets, `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))`,
is Slice, Slice, Pad here as there, and the `select_as_conv` pass makes it a fixed 1x1 conv.
After conversion the graph is proven against the exported program itself (`frontends.proof`).

Errors
------
Anything else raises `neurodeploy.errors.UnsupportedError` (one line) naming the source, the
module path and class (or "top-level forward"), the user's source line, the ATen op, and the
supported modules and functions, e.g.
``Net: module 'layer2.0.act' (GELU) at net.py:12: unsupported op aten.gelu -- supported modules: ...``.
A model that torch.export cannot trace raises `UnsupportedError` with export's first line.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NeurodeployError, UnsupportedError
from ..ir import float_graph as fg
from .constants import BroadcastError, broadcast_constant

SUPPORTED_MODULES = ["Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "ReLU", "ReLU6", "Hardtanh", "QCFS",
                     "AvgPool2d", "AdaptiveAvgPool2d", "MaxPool2d", "Flatten", "Identity", "Dropout", "Softmax"]
SUPPORTED_FUNCTIONS = ["a + b, a - b (residual joins)", "x * c, x / c, x + c, x - c (c a constant)", "F.relu",
                       "torch.floor", "torch.clamp", "torch.flatten", "x.view/x.reshape within a sample",
                       "x.squeeze/x.unsqueeze/x.permute/x.transpose within a sample", "x.mean((2, 3))",
                       "x[:, c0:c1, a::s, b::s]", "F.pad(x, ..., value=c)", "torch.cat", "torch.split/chunk",
                       "F.softmax/F.log_softmax"]

HANDLERS: dict = {}
# ops that do nothing to the value (eval mode) and ops without a value (assertions)
_IDENTITY = {"clone", "contiguous", "alias", "detach", "lift_fresh_copy", "_to_copy", "to", "type_as",
             "dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout",
             "identity"}
_NO_VALUE = {"_assert_tensor_metadata", "_assert_scalar", "_assert_async", "sym_constrain_range",
             "sym_constrain_range_for_size", "_functional_assert_async", "_functional_sym_constrain_range"}


def handler(*names):
    def register(fn):
        for n in names:
            HANDLERS[n] = fn
        return fn
    return register


def supported_ops() -> list[str]:
    return sorted(f"aten.{n}" for n in set(HANDLERS) | _IDENTITY)


def _supported_hint() -> str:
    return (f"supported modules: {', '.join(SUPPORTED_MODULES)}; "
            f"functions: {'; '.join(SUPPORTED_FUNCTIONS)}")


# --- values flowing through the exported graph ------------------------------------------
@dataclass
class _T:
    """A tensor computed by the float graph (node `name`)."""
    name: str


@dataclass
class _NodeInfo:
    path: str            # module path ("" = the top-level forward)
    cls: str             # module class, short ("Conv2d")
    op: str              # ATen op, short ("conv2d")
    leaf: bool           # the module has no submodules in the graph
    run: int             # index of the contiguous run of nodes from one module call
    line: str = ""       # user source "file.py:12"


class _Ctx:
    def __init__(self, graph: fg.FloatGraph, consts: dict, source: str):
        self.graph, self.consts, self.source = graph, consts, source
        self.env: dict = {}
        self.info: dict[str, _NodeInfo] = {}
        self.node = None                    # fx node being converted
        self.created: list[str] = []        # graph nodes in creation order
        self.node_fx: dict[str, str] = {}   # graph node -> fx node it came from

    # -- where --------------------------------------------------------------------------
    def where(self, node=None) -> str:
        node = node or self.node
        inf = self.info.get(node.name)
        if inf is None:
            return self.source
        loc = f"module '{inf.path}' ({inf.cls})" if inf.path else f"top-level forward ({inf.cls})"
        if inf.line:
            loc += f" at {inf.line}"
        return f"{self.source}: {loc}"

    def unsupported(self, what: str, hint: str = "") -> UnsupportedError:
        return UnsupportedError(what, self.where(), hint or _supported_hint())

    # -- arguments ----------------------------------------------------------------------
    def resolve(self, a):
        import torch.fx
        if isinstance(a, torch.fx.Node):
            if a.name not in self.env:
                raise NeurodeployError(f"value '{a.name}' is used before it is computed", self.where(),
                                       "the exported program is malformed; export it again")
            return self.env[a.name]
        if isinstance(a, (list, tuple)):
            return type(a)(self.resolve(v) for v in a)
        return a

    def tensor(self, v, what: str = "input") -> str:
        """The graph node of a tensor value."""
        if isinstance(v, _T):
            return v.name
        if v is None:
            raise self.unsupported(f"{what} is an unused output of another op (e.g. MaxPool indices)")
        raise self.unsupported(f"{what} must be a computed tensor, got a constant",
                               "only ops on the network's activations are converted")

    def const(self, v, what: str) -> np.ndarray:
        import torch
        if isinstance(v, torch.Tensor):
            return v.detach().cpu().to(torch.float64).numpy() if v.is_floating_point() else \
                v.detach().cpu().numpy().astype(np.float64)
        if isinstance(v, (bool, int, float)):
            return np.asarray(float(v), dtype=np.float64)
        raise self.unsupported(f"{what} must be a constant (a parameter, buffer or number), "
                               "got a computed tensor", "only weights fixed at compile time are supported")

    def shape(self, fx_arg) -> tuple:
        """Full shape (with batch) of an fx argument from export's metadata; None where symbolic."""
        val = fx_arg.meta.get("val") if hasattr(fx_arg, "meta") else None
        if val is None or not hasattr(val, "shape"):
            return ()
        return tuple(int(d) if isinstance(d, int) else None for d in val.shape)

    def out_shape(self) -> tuple:
        return self.shape(self.node)

    # -- building -----------------------------------------------------------------------
    def add(self, op, inputs: list[str], fx_name: str | None = None) -> _T:
        name = fx_name or self.node.name
        base, k = name, 1
        while name in self.graph.g:
            name, k = f"{base}_{k}", k + 1
        inf = self.info.get(fx_name or self.node.name)
        origin = f"aten.{inf.op}" if inf else type(op).__name__
        if inf and inf.cls:
            origin = f"{inf.cls}, {origin}"
        self.graph.add(name, op, inputs, origin=origin)
        self.created.append(name)
        self.node_fx[name] = fx_name or self.node.name
        return _T(name)

def _pair(v, default=None) -> tuple:
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        return default
    if isinstance(v, int):
        return (int(v), int(v))
    v = tuple(int(x) for x in v)
    return v * 2 if len(v) == 1 else v


def _bind(node) -> dict:
    """Arguments of an ATen call by schema name, defaults filled in (unresolved)."""
    schema = node.target._schema
    out = {}
    pos = [a for a in schema.arguments if not a.kwarg_only]
    for a, v in zip(pos, node.args):
        out[a.name] = v
    for a in schema.arguments:
        if a.name in node.kwargs:
            out[a.name] = node.kwargs[a.name]
        elif a.name not in out and a.has_default_value():
            out[a.name] = a.default_value
    return out


def _rank(ctx, fx_arg) -> int:
    return len(ctx.shape(fx_arg))


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
    stride, dilation = _pair(a.get("stride"), (1, 1)), _pair(a.get("dilation"), (1, 1))
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
        padding = _pair(padding, (0, 0))
    return ctx.add(fg.Conv(weight=w, bias=b, stride=stride, padding=padding, dilation=dilation,
                           groups=int(a.get("groups", 1))), [x])


@handler("conv2d")
def _conv2d(node, ctx, a):
    return _conv(node, ctx, a)


@handler("convolution")
def _convolution(node, ctx, a):
    return _conv(node, ctx, a, transposed=bool(a.get("transposed")))


def _dense(node, ctx, x_arg, w: np.ndarray, b: np.ndarray | None):
    if _rank(ctx, x_arg) != 2:
        raise ctx.unsupported(f"a linear layer on a rank-{_rank(ctx, x_arg)} tensor",
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
    if _rank(ctx, x_arg) not in (2, 4):
        raise ctx.unsupported(f"BatchNorm on a rank-{_rank(ctx, x_arg)} tensor", "use BatchNorm1d on (N, F) "
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
    return isinstance(v, _T) or v is None


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
        return _T(src)
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
    r = _rank(ctx, x_arg)
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
    r = _rank(ctx, x_arg)
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
    r = _rank(ctx, node)
    dim = int(a.get("dim", 0)) % max(r, 1)
    if dim == 0:
        raise ctx.unsupported("concatenating along the batch dimension")
    if not all(isinstance(t, _T) for t in tensors):
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
    r = _rank(ctx, x_arg)
    dim = int(a["dim"]) % max(r, 1)
    if dim == 0:
        raise ctx.unsupported("softmax over the batch dimension")
    log = "log" in node.target.overloadpacket.__name__
    return ctx.add(fg.Softmax(dim - 1, log), [ctx.tensor(ctx.resolve(x_arg))])


def _pool_window(ctx, a, kernel) -> tuple:
    """stride, padding, dilation of a 2-D pooling call."""
    return (_pair(a.get("stride"), kernel), _pair(a.get("padding"), (0, 0)), _pair(a.get("dilation"), (1, 1)))


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
    k = _pair(a["kernel_size"])
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
    out = _pair(a["output_size"])
    x = ctx.tensor(ctx.resolve(a["self"]))
    if out == (1, 1):
        return ctx.add(fg.GlobalAvgPool(), [x])
    if len(ins) == 4 and None not in ins[2:] and all(o and i % o == 0 for i, o in zip(ins[2:], out)):
        k = tuple(i // o for i, o in zip(ins[2:], out))
        return ctx.add(fg.AvgPool(k, k, (0, 0), True), [x])
    raise ctx.unsupported(f"AdaptiveAvgPool2d to {out} on an input of {ins[2:]} (not a uniform window)",
                          "use an output size that divides the input size, or 1")


@handler("mean")
def _mean(node, ctx, a):
    x_arg = a["self"]
    r = _rank(ctx, x_arg)
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
    k = _pair(a["kernel_size"])
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
                          f"{NONLINEAR_HINT}; {_supported_hint()}")


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


# --- building the graph ----------------------------------------------------------------
def _op_short(target) -> str:
    if target is operator.getitem:
        return "getitem"
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return packet.__name__
    return getattr(target, "__name__", str(target))


def _user_line(meta) -> str:
    trace = meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
    user = [(f, l) for f, l in frames if "/torch/" not in f and "/neurodeploy/nn/" not in f]
    if not user:
        return ""
    f, l = user[-1]
    return f"{Path(f).name}:{l}"


def _module_info(nodes) -> dict[str, _NodeInfo]:
    stacks = {}
    all_paths = set()
    for n in nodes:
        st = n.meta.get("nn_module_stack") or {}
        entries = list(st.values())
        if entries:
            path, cls = entries[-1][0], entries[-1][1]
        else:
            path, cls = "", ""
        cls = cls if isinstance(cls, str) else getattr(cls, "__qualname__", str(cls))
        stacks[n.name] = (path, cls.rsplit(".", 1)[-1])
        all_paths.update(e[0] for e in entries)
    info, run, prev = {}, -1, None
    for n in nodes:
        path, cls = stacks[n.name]
        if path != prev:
            run, prev = run + 1, path
        leaf = bool(path) and not any(p.startswith(path + ".") for p in all_paths)
        info[n.name] = _NodeInfo(path, cls, _op_short(n.target), leaf, run, _user_line(n.meta))
    return info


def _readable_names(ctx: _Ctx) -> dict[str, str]:
    """Graph node -> module-path name: a leaf module's output node is named by its path
    (`layer1.0.conv1`, `layer1.0.act1`), other nodes `<path>.<op>` (`layer1.0.add`)."""
    by_run: dict[int, list[str]] = {}
    for name in ctx.created:
        if name in ctx.graph.g:
            by_run.setdefault(ctx.info[ctx.node_fx[name]].run, []).append(name)
    want = {}
    for run, names in by_run.items():
        for i, name in enumerate(names):
            inf = ctx.info[ctx.node_fx[name]]
            if inf.leaf and i == len(names) - 1:
                want[name] = inf.path
            else:
                want[name] = f"{inf.path}.{inf.op}" if inf.path else inf.op
    taken, out = {"input"}, {}
    for name in ctx.created:
        if name not in want:
            continue
        base, new, k = want[name], want[name], 1
        while new in taken:
            new, k = f"{base}_{k}", k + 1
        taken.add(new)
        out[name] = new
    return out


def _check_finite(name: str, t, source: str) -> None:
    import torch
    if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise NeurodeployError(f"parameter '{name}' holds {bad} NaN/Inf value(s)", source,
                               "retrain or repair the model; the compiler cannot quantise non-finite weights")


def graph_from_program(ep, source: str = "", probe=None, prove: bool = True) -> fg.FloatGraph:
    """An `ExportedProgram` -> `FloatGraph` (one input, one output, ops as in the ONNX front end);
    with `prove`, checked against the program itself on `probe` (samples shaped like the input;
    default: seeded random inputs) -- see `frontends.proof`."""
    import networkx as nx
    from torch.export.graph_signature import InputKind, OutputKind

    sig = ep.graph_signature
    consts, user_inputs = {}, []
    for spec in sig.input_specs:
        arg = getattr(spec.arg, "name", None)
        if spec.kind == InputKind.USER_INPUT:
            user_inputs.append(arg)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            t = ep.state_dict[spec.target] if spec.target in ep.state_dict else ep.constants[spec.target]
            _check_finite(spec.target, t, source)
            consts[arg] = t.detach()
        else:
            raise UnsupportedError(f"the exported program has a {spec.kind.name} input '{spec.target}'", source,
                                   "export a model whose only inputs are the data and its parameters")
    if len(user_inputs) != 1:
        raise UnsupportedError(f"the model has {len(user_inputs)} inputs; exactly one is supported", source)
    bad_out = [s for s in sig.output_specs if s.kind != OutputKind.USER_OUTPUT]
    if bad_out:
        raise UnsupportedError(f"the exported program updates state ({bad_out[0].kind.name} of "
                               f"'{bad_out[0].target}'): a BatchNorm or a module in training mode?", source,
                               "call model.eval() before torch.export.export")
    user_outputs = [s for s in sig.output_specs if s.kind == OutputKind.USER_OUTPUT]
    if len(user_outputs) != 1:
        raise UnsupportedError(f"the model has {len(user_outputs)} outputs; exactly one is supported", source)

    graph = fg.FloatGraph(source=source)
    ctx = _Ctx(graph, consts, source)
    nodes = list(ep.graph.nodes)
    ctx.info = _module_info([n for n in nodes if n.op == "call_function"])
    out_node = None
    for n in nodes:
        if n.op == "placeholder":
            if n.name in consts:
                ctx.env[n.name] = consts[n.name]
            elif n.name == user_inputs[0]:
                shape = ctx.shape(n)
                if any(d is None for d in shape[1:]):
                    raise UnsupportedError(f"input '{n.name}' has a dynamic dimension other than the batch", source,
                                           "export with fixed sizes; only the batch dimension may be dynamic")
                if len(shape) not in (2, 4):
                    raise UnsupportedError(f"input '{n.name}' has shape {list(shape)}; expected (N, F) or (N, C, H, W)",
                                           source)
                graph.add("input", fg.Input(tuple(shape[1:])), origin="graph input")
                ctx.env[n.name] = _T("input")
            else:
                ctx.env[n.name] = None
            continue
        if n.op == "output":
            out_node = n
            continue
        if n.op != "call_function":
            raise UnsupportedError(f"unsupported node kind '{n.op}' ({n.target})", source)
        ctx.node = n
        ctx.env[n.name] = _convert(n, ctx)
    outs = out_node.args[0]
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    idx = sig.output_specs.index(user_outputs[0])
    result = ctx.resolve(outs[idx])
    ctx.node = out_node
    if not isinstance(result, _T):
        raise UnsupportedError("the model output is a constant (or not a tensor)", source)
    graph.output = ctx.tensor(result)
    if graph.output == "input":
        raise UnsupportedError("the model returns its input", source)
    keep = nx.ancestors(graph.g, graph.output) | {graph.output}
    graph.g.remove_nodes_from([n for n in list(graph.g) if n not in keep])
    mapping = _readable_names(ctx)
    nx.relabel_nodes(graph.g, mapping, copy=False)
    graph.origin = {mapping.get(k, k): v for k, v in graph.origin.items() if mapping.get(k, k) in graph.g}
    graph.output = mapping.get(graph.output, graph.output)
    if prove and all(type(graph.op(n)).__name__ in fg.OP_TYPES for n in graph.g):
        # (trained SNNs' graphs hold their neurons as opaque ops: their own verification covers them)
        fx_of = {}
        for n in nodes:                    # the last fx node standing for a graph node holds its value
            v = ctx.env.get(n.name)
            if isinstance(v, _T) and v.name in mapping:
                fx_of[mapping[v.name]] = n.name
        _prove_program(ep, graph, fx_of, probe)
    return graph


def _program_values(ep, x: np.ndarray, names: set) -> dict:
    """The program's value of every fx node in `names` on x (batch first), in chunks of a fixed
    batch size where the program was exported with one."""
    import torch
    from torch.export.graph_signature import InputKind
    user = [s.arg.name for s in ep.graph_signature.input_specs if s.kind == InputKind.USER_INPUT][0]
    val = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == user).meta.get("val")
    fixed = int(val.shape[0]) if val is not None and isinstance(val.shape[0], int) else None
    dtype = val.dtype if val is not None else torch.float32
    module = ep.module()
    device = next((p.device for p in module.parameters()), torch.device("cpu"))

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in names and isinstance(out, torch.Tensor):
                self.values.setdefault(n.name, []).append(out.detach().to("cpu", torch.float64).numpy())
            return out
    rec = Recorder(module)
    rec.values = {}
    step = fixed or len(x)
    with torch.no_grad():
        for start in range(0, len(x), step):
            xb = np.asarray(x[start:start + step], dtype=np.float32)
            n = len(xb)
            if fixed and n < fixed:
                xb = np.concatenate([xb, np.zeros((fixed - n,) + xb.shape[1:], np.float32)])
            before = {k: len(v) for k, v in rec.values.items()}
            rec.run(torch.from_numpy(xb).to(device=device, dtype=dtype))
            for k, v in rec.values.items():
                if len(v) > before.get(k, 0):
                    v[-1] = v[-1][:n]
    return {k: np.concatenate(v) for k, v in rec.values.items()}, dtype


def _prove_program(ep, graph: fg.FloatGraph, fx_of: dict, probe) -> None:
    import torch

    from .proof import probe_inputs, prove
    (inp,) = graph.input_nodes()
    x = probe_inputs(graph.op(inp).shape, None if probe is None else np.asarray(probe, dtype=np.float32))
    try:
        values, dtype = _program_values(ep, x, set(fx_of.values()))
    except Exception as exc:
        raise NeurodeployError(f"the exported program cannot run on {len(x)} probe samples "
                               f"({type(exc).__name__}: {_first_line(exc)[:160]})", graph.source,
                               "export with a dynamic batch dimension, or pass calibration samples") from None
    reference = {node: values[fx] for node, fx in fx_of.items() if fx in values}
    unit = float(torch.finfo(dtype).eps) / 2 if dtype.is_floating_point else 2.0 ** -24
    prove(graph, x, reference, fx_of, "the exported program", unit_roundoff=unit)


def _has_graph_value(v) -> bool:
    if isinstance(v, _T):
        return True
    if isinstance(v, (list, tuple)):
        return any(_has_graph_value(x) for x in v)
    if isinstance(v, dict):
        return any(_has_graph_value(x) for x in v.values())
    return False


def _convert(n, ctx: _Ctx):
    import torch
    op = _op_short(n.target)
    if not n.users and op in _NO_VALUE | {"sym_size", "sym_numel", "sym_stride"}:
        return None
    if n.target is operator.getitem:
        seq, i = ctx.resolve(n.args[0]), n.args[1]
        return seq[i] if isinstance(seq, (list, tuple)) else None
    args = ctx.resolve(list(n.args))
    kwargs = {k: ctx.resolve(v) for k, v in n.kwargs.items()}
    if op.startswith("sym_") or op in _NO_VALUE:
        return n.meta.get("val")
    if not _has_graph_value(args) and not _has_graph_value(kwargs):
        # everything is constant (weights, numbers): fold by running the op
        try:
            with torch.no_grad():
                return n.target(*args, **kwargs)
        except Exception as exc:
            raise UnsupportedError(f"could not evaluate the constant expression aten.{op} "
                                   f"({type(exc).__name__})", ctx.where(n)) from None
    if not hasattr(n.target, "_schema"):
        raise ctx.unsupported(f"unsupported function {getattr(n.target, '__name__', n.target)}")
    if op in _IDENTITY:
        a = _bind(n)
        if op in ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout") \
                and a.get("train"):
            raise ctx.unsupported("dropout in training mode", "call model.eval() before exporting / compiling")
        val = n.meta.get("val")
        if op in ("_to_copy", "to", "type_as") and val is not None and not val.is_floating_point():
            raise ctx.unsupported("conversion to a non-float dtype")
        first = ctx.resolve(n.args[0])
        return (first, None) if op == "native_dropout" else first
    fn = HANDLERS.get(op)
    if fn is None:
        raise ctx.unsupported(f"unsupported op aten.{op}")
    return fn(n, ctx, _bind(n))


# --- entry points ------------------------------------------------------------------------
def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:300]


def export_module(model, example_input, source: str = ""):
    """torch.export the model in eval mode (its train/eval flags are restored afterwards)."""
    import torch
    source = source or _module_source(model)
    if not isinstance(model, torch.nn.Module):
        raise NeurodeployError(f"expected a torch.nn.Module, got {type(model).__name__}", source)
    if example_input is None:
        raise NeurodeployError("a PyTorch model needs an example input", source,
                               "pass example_input, a tensor shaped like a batch of inputs (N, C, H, W) or (N, F)")
    if isinstance(example_input, (tuple, list)):
        if len(example_input) != 1:
            raise UnsupportedError(f"{len(example_input)} example inputs; exactly one is supported", source)
        example_input = example_input[0]
    if not isinstance(example_input, torch.Tensor):
        example_input = torch.as_tensor(np.asarray(example_input, dtype=np.float32))
    param = next(iter(model.parameters()), None)
    if param is not None:
        example_input = example_input.to(param.device)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if example_input.is_floating_point() and example_input.dtype != dtype:
        example_input = example_input.to(dtype)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        return torch.export.export(model, (example_input,))
    except NeurodeployError:
        raise
    except Exception as exc:
        raise UnsupportedError(f"torch.export could not trace the model ({type(exc).__name__}: {_first_line(exc)})",
                               source, "make forward() traceable by torch.export (no data-dependent Python "
                               "control flow, one tensor in and one tensor out)") from None
    finally:
        for m, t in modes:
            m.training = t


def _module_source(model) -> str:
    return f"{type(model).__name__} (torch.nn.Module)"


def load_torch(model, example_input, source: str = "", probe=None, prove: bool = True) -> fg.FloatGraph:
    """An `nn.Module` (exported with torch.export on `example_input`) -> `FloatGraph`, proven against
    the exported program on `probe` (default: the example input and seeded random inputs)."""
    import torch
    if isinstance(model, torch.export.ExportedProgram):
        return graph_from_program(model, source or "ExportedProgram", probe, prove)
    source = source or _module_source(model)
    if probe is None and example_input is not None:
        probe = example_input.detach().cpu().numpy() if isinstance(example_input, torch.Tensor) else example_input
    return graph_from_program(export_module(model, example_input, source), source, probe, prove)


def load_program(path: str | Path):
    """Read a `.pt2` file written by `torch.export.save`, with clear errors."""
    import torch

    from .per_step import register_spiking_ops
    path = str(path)
    if not Path(path).is_file():
        raise NeurodeployError("file not found", path, "check the path to the model")
    register_spiking_ops()          # a trained SNN's program calls neurodeploy's custom ops
    try:
        return torch.export.load(path)
    except Exception as exc:
        raise NeurodeployError(f"not a readable .pt2 program ({type(exc).__name__}: {_first_line(exc)[:120]})", path,
                               "save the model with torch.export.save(torch.export.export(model.eval(), (x,)), path)") \
            from None


def load_pt2(path: str | Path, probe=None, prove: bool = True) -> fg.FloatGraph:
    """A `.pt2` file (torch.export.save) -> `FloatGraph`, proven against the program."""
    return graph_from_program(load_program(path), str(path), probe, prove)
