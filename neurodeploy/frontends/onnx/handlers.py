"""ONNX front end: an .onnx file -> `FloatGraph`.

One handler per ONNX op type, registered in `HANDLERS`.  Constants (initializers and
Constant nodes) are not graph nodes: handlers read them as numpy arrays.  Anything outside
the supported list stops compilation with the op, the node and the list.

Quantised (QDQ) models: QuantizeLinear/DequantizeLinear on constants (int8 weights, per tensor
or per axis; int32 biases) fold to their exact dequantised values; a QuantizeLinear ->
DequantizeLinear pair on an activation (uint8/int8, per tensor) becomes one `QuantAct` with 255
levels (plus a `Shift` when the zero point is not the lowest code); a Clip between the two
(PyTorch's reduce_range, codes 0..127) narrows the level count.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...errors import NeurodeployError, UnsupportedError
from ...ir import float_graph as fg
from ...passes.check_shapes import check_shapes
from ...passes.qdq import QDQ_ORIGIN, QDQ_ZERO_POINT_ORIGIN

HANDLERS = {}


def handler(*op_types):
    def register(fn):
        for t in op_types:
            HANDLERS[t] = fn
        return fn
    return register


def supported_ops() -> list[str]:
    return sorted(HANDLERS)


class _Ctx:
    """What a handler sees: the ONNX node, its constants, and the graph being built."""

    def __init__(self, graph: fg.FloatGraph, consts: dict, alias: dict, path: str):
        self.graph, self.consts, self.alias, self.path = graph, consts, alias, path
        # integer tensors of QuantizeLinear on a computed tensor, waiting for their
        # DequantizeLinear (tensor name -> _PendingQuant); they are not graph nodes
        self.pending: dict = {}

    def where(self, node) -> str:
        return f"{self.path}: node '{node.name or node.output[0]}' ({node.op_type})"

    def tensor(self, name: str) -> str:
        """Graph node that produces ONNX tensor `name`."""
        if name in self.pending:
            q = self.pending[name]
            raise UnsupportedError(
                f"the integer output '{name}' of QuantizeLinear is used by an op other than "
                "DequantizeLinear (an integer/QLinear op)", q.where,
                "export QuantizeLinear -> DequantizeLinear pairs (QDQ format), not QOperator ops")
        return self.alias[name]

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, node, index: int, what: str) -> np.ndarray:
        if index >= len(node.input) or node.input[index] == "":
            raise UnsupportedError(f"missing {what} input", self.where(node), "export with constant parameters")
        name = node.input[index]
        if name not in self.consts:
            raise UnsupportedError(
                f"{what} must be a constant (initializer or Constant), got a computed tensor '{name}'",
                self.where(node), "export the model with its parameters as initializers")
        return self.consts[name]

    def add(self, node, op, inputs: list[str]) -> None:
        name = node.name or node.output[0]
        base, k = name, 1
        while name in self.graph.g:
            name, k = f"{base}_{k}", k + 1
        self.graph.add(name, op, inputs, origin=node.op_type)
        self.alias[node.output[0]] = name


def _attrs(node) -> dict:
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pair(values, default):
    if values is None:
        return default
    values = tuple(int(v) for v in values)
    return values


def _pads(node, ctx, attrs) -> tuple:
    pads = attrs.get("pads", [0, 0, 0, 0])
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedError("auto_pad is not supported", ctx.where(node), "export with explicit pads")
    top, left, bottom, right = (int(p) for p in pads)
    if top != bottom or left != right:
        raise UnsupportedError(f"asymmetric padding {list(pads)}", ctx.where(node),
                               "use symmetric padding")
    return (top, left)


@handler("Conv")
def _conv(node, ctx):
    a = _attrs(node)
    w = ctx.const(node, 1, "weight")
    if w.ndim != 4:
        raise UnsupportedError(f"only 2-D convolutions are supported (weight rank {w.ndim})", ctx.where(node))
    b = ctx.const(node, 2, "bias") if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0])
    op = fg.Conv(weight=w.astype(np.float64), bias=b.astype(np.float64),
                 stride=_pair(a.get("strides"), (1, 1)), padding=_pads(node, ctx, a),
                 dilation=_pair(a.get("dilations"), (1, 1)), groups=int(a.get("group", 1)))
    ctx.add(node, op, [ctx.tensor(node.input[0])])


@handler("Gemm")
def _gemm(node, ctx):
    a = _attrs(node)
    if a.get("transA", 0):
        raise UnsupportedError("Gemm with transA=1", ctx.where(node))
    w = ctx.const(node, 1, "weight").astype(np.float64) * float(a.get("alpha", 1.0))
    if not a.get("transB", 0):
        w = w.T
    b = (ctx.const(node, 2, "bias").astype(np.float64) * float(a.get("beta", 1.0))
         if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0]))
    ctx.add(node, fg.Dense(weight=w, bias=np.broadcast_to(b.reshape(-1), (w.shape[0],)).copy()),
            [ctx.tensor(node.input[0])])


@handler("MatMul")
def _matmul(node, ctx):
    w = ctx.const(node, 1, "weight (second MatMul input)").astype(np.float64)
    if w.ndim != 2:
        raise UnsupportedError("MatMul weight must be 2-D", ctx.where(node))
    ctx.add(node, fg.Dense(weight=w.T.copy(), bias=np.zeros(w.shape[1])), [ctx.tensor(node.input[0])])


@handler("BatchNormalization")
def _bn(node, ctx):
    a = _attrs(node)
    gamma, beta, mean, var = (ctx.const(node, i, n).astype(np.float64)
                              for i, n in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    ctx.add(node, fg.BatchNorm(gamma, beta, mean, var, float(a.get("epsilon", 1e-5))),
            [ctx.tensor(node.input[0])])


@handler("Relu")
def _relu(node, ctx):
    ctx.add(node, fg.Relu(), [ctx.tensor(node.input[0])])


@handler("Floor")
def _floor(node, ctx):
    ctx.add(node, fg.Floor(), [ctx.tensor(node.input[0])])


@handler("Clip")
def _clip(node, ctx):
    if node.input[0] in ctx.pending:       # Q -> Clip -> DQ: a narrower integer range
        _clip_quantised(node, ctx)
        return
    a = _attrs(node)
    lo, hi = a.get("min"), a.get("max")
    for i, key in ((1, "lo"), (2, "hi")):
        if len(node.input) > i and node.input[i]:
            v = float(ctx.const(node, i, "clip bound").reshape(-1)[0])
            lo, hi = (v, hi) if key == "lo" else (lo, v)
    ctx.add(node, fg.Clip(None if lo is None else float(lo), None if hi is None else float(hi)),
            [ctx.tensor(node.input[0])])


def _binary_const(node, ctx):
    """(tensor input name, constant array, constant is first operand) of a binary op."""
    x, y = node.input[0], node.input[1]
    if ctx.is_const(y) and not ctx.is_const(x):
        return x, ctx.consts[y].astype(np.float64), False
    if ctx.is_const(x) and not ctx.is_const(y):
        return y, ctx.consts[x].astype(np.float64), True
    return None


def _per_channel(arr, node, ctx) -> np.ndarray:
    """A broadcastable constant as a scalar () or per-channel (C,) array."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size == 1:
        return arr.reshape(())
    squeezed = arr.reshape(arr.shape[1:] if arr.ndim >= 2 and arr.shape[0] == 1 else arr.shape)
    if squeezed.ndim >= 1 and all(d == 1 for d in squeezed.shape[1:]):
        return squeezed.reshape(-1)
    if squeezed.ndim == 1:
        return squeezed
    raise UnsupportedError(f"constant of shape {arr.shape} is neither scalar nor per-channel",
                           ctx.where(node))


@handler("Mul", "Div")
def _mul_div(node, ctx):
    parts = _binary_const(node, ctx)
    if parts is None:
        raise UnsupportedError(f"{node.op_type} of two computed tensors", ctx.where(node),
                               "only multiplication/division by a constant is supported")
    x, c, const_first = parts
    if node.op_type == "Div":
        if const_first:
            raise UnsupportedError("division of a constant by a tensor", ctx.where(node))
        c = 1.0 / c
    ctx.add(node, fg.Scale(_per_channel(c, node, ctx)), [ctx.tensor(x)])


@handler("Add", "Sub")
def _add_sub(node, ctx):
    parts = _binary_const(node, ctx)
    if parts is None:
        if node.op_type == "Sub":
            raise UnsupportedError("Sub of two computed tensors", ctx.where(node))
        ctx.add(node, fg.Add(), [ctx.tensor(node.input[0]), ctx.tensor(node.input[1])])
        return
    x, c, const_first = parts
    if node.op_type == "Sub" and const_first:
        raise UnsupportedError("constant minus tensor", ctx.where(node))
    amount = _per_channel(-c if node.op_type == "Sub" else c, node, ctx)
    src = ctx.tensor(x)
    src_op = ctx.graph.op(src)
    # A MatMul followed by Add(bias) is a Dense layer with a bias.
    if (node.op_type == "Add" and isinstance(src_op, fg.Dense) and not ctx.graph.consumers(src)
            and amount.ndim <= 1 and not np.any(src_op.bias)):
        ctx.graph.set_op(src, fg.Dense(src_op.weight, np.broadcast_to(amount, src_op.bias.shape).copy()))
        ctx.alias[node.output[0]] = src
        return
    ctx.add(node, fg.Shift(amount), [src])


@handler("Flatten")
def _flatten(node, ctx):
    if int(_attrs(node).get("axis", 1)) != 1:
        raise UnsupportedError("Flatten with axis != 1", ctx.where(node))
    ctx.add(node, fg.Flatten(), [ctx.tensor(node.input[0])])


@handler("Reshape")
def _reshape(node, ctx):
    shape = ctx.const(node, 1, "shape").reshape(-1).tolist()
    if len(shape) == 2 and shape[1] != 0 and (shape[0] in (-1, 0, 1) or shape[1] == -1):
        ctx.add(node, fg.Flatten(), [ctx.tensor(node.input[0])])
        return
    raise UnsupportedError(f"Reshape to {shape} is not a flatten", ctx.where(node),
                           "only Reshape(x, [batch, -1]) is supported")


@handler("AveragePool")
def _avgpool(node, ctx):
    a = _attrs(node)
    if a.get("ceil_mode", 0):
        raise UnsupportedError("AveragePool with ceil_mode=1", ctx.where(node))
    k = _pair(a["kernel_shape"], None)
    ctx.add(node, fg.AvgPool(k, _pair(a.get("strides"), k), _pads(node, ctx, a),
                             bool(a.get("count_include_pad", 0))), [ctx.tensor(node.input[0])])


@handler("GlobalAveragePool")
def _gap(node, ctx):
    ctx.add(node, fg.GlobalAvgPool(), [ctx.tensor(node.input[0])])


@handler("MaxPool")
def _maxpool(node, ctx):
    a = _attrs(node)
    if a.get("ceil_mode", 0) or any(a.get("pads", [0])) or any(d != 1 for d in a.get("dilations", [1])):
        raise UnsupportedError("MaxPool with padding, ceil_mode or dilation", ctx.where(node))
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedError("MaxPool with an indices output", ctx.where(node))
    k = _pair(a["kernel_shape"], None)
    ctx.add(node, fg.MaxPool(k, _pair(a.get("strides"), k)), [ctx.tensor(node.input[0])])


@handler("QuantizeLinear")
def _quantize_linear(node, ctx):
    """Constant input: fold to its integer codes.  Computed input: remember the quantiser for
    the DequantizeLinear that must follow (the pair becomes one `QuantAct`)."""
    x, scale, zero, qmin, qmax = _qdq_params(node, ctx)
    if ctx.is_const(node.input[0]):
        ctx.consts[node.output[0]] = _quantize_const(ctx.consts[node.input[0]], scale, zero, qmin, qmax,
                                                     zero.dtype)
        return
    if scale.size != 1:
        raise UnsupportedError(f"per-axis quantisation of an activation ({scale.size} scales)", ctx.where(node),
                               "quantise activations per tensor (one scale and zero point)")
    if zero.dtype not in (np.uint8, np.int8):
        raise UnsupportedError(f"activation quantised to {zero.dtype}; only uint8 and int8 are supported",
                               ctx.where(node), "quantise activations to 8 bits (uint8, or int8)")
    ctx.tensor(node.input[0])      # a clear error if it is itself an integer tensor
    ctx.pending[node.output[0]] = _PendingQuant(node.input[0], float(scale.reshape(())),
                                                int(zero.reshape(())), qmin, qmax, ctx.where(node))


@handler("DequantizeLinear")
def _dequantize_linear(node, ctx):
    """Constant input (int8 weights, int32 biases): fold to exact float64 values.  The integer
    output of a QuantizeLinear: one `QuantAct` for the pair, plus a `Shift` for the zero point."""
    x, scale, zero, _, _ = _qdq_params(node, ctx)
    if ctx.is_const(node.input[0]):
        ints = np.asarray(ctx.consts[node.input[0]])
        if not np.issubdtype(ints.dtype, np.integer):
            raise UnsupportedError(f"DequantizeLinear of a {ints.dtype} constant", ctx.where(node),
                                   "dequantise integer (int8/uint8/int32) constants")
        ctx.consts[node.output[0]] = (ints.astype(np.float64) - zero) * scale
        return
    q = ctx.pending.get(node.input[0])
    if q is None:
        raise UnsupportedError("DequantizeLinear of a computed tensor that no QuantizeLinear produced",
                               ctx.where(node), "export the model in QDQ format (QuantizeLinear -> DequantizeLinear)")
    if scale.size != 1:
        raise UnsupportedError(f"per-axis dequantisation of an activation ({scale.size} scales)",
                               ctx.where(node), "quantise activations per tensor")
    _add_qdq_activation(node, ctx, q, float(scale.reshape(())), int(zero.reshape(())))


@handler("Identity", "Dropout")
def _identity(node, ctx):
    src = node.input[0]
    if ctx.is_const(src):          # torch.onnx repeats shared constants (zero points) this way
        ctx.consts[node.output[0]] = ctx.consts[src]
    elif src in ctx.pending:
        ctx.pending[node.output[0]] = ctx.pending[src]
    else:
        ctx.alias[node.output[0]] = ctx.tensor(src)


@handler("Constant")
def _constant(node, ctx):
    import onnx
    a = node.attribute[0]
    value = onnx.numpy_helper.to_array(a.t) if a.name == "value" else np.asarray(
        onnx.helper.get_attribute_value(a))
    ctx.consts[node.output[0]] = np.asarray(value)


# --- QDQ (QuantizeLinear / DequantizeLinear) -----------------------------------------------
_INT_RANGES = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
               for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32)}


class _PendingQuant:
    """k = clip(round_half_even(x / scale) + zero, qmin, qmax) of computed tensor `src`."""

    def __init__(self, src: str, scale: float, zero: int, qmin: int, qmax: int, where: str):
        self.src, self.scale, self.zero, self.qmin, self.qmax, self.where = src, scale, zero, qmin, qmax, where


def _qdq_params(node, ctx):
    """(x name, scale float64, zero point (integer dtype), qmin, qmax) of a Q/DQ node.

    The zero point's dtype is the integer type (ONNX: uint8 when it is absent); scale and zero
    point broadcast along `axis` when they are 1-D (per-axis, ONNX opset >= 13).
    """
    a = _attrs(node)
    if a.get("block_size", 0):
        raise UnsupportedError("blocked quantisation (block_size)", ctx.where(node),
                               "use per-tensor or per-axis quantisation")
    scale = np.asarray(ctx.const(node, 1, "scale"))
    if len(node.input) > 2 and node.input[2]:
        zero = np.asarray(ctx.const(node, 2, "zero point"))
    else:
        out_dtype = int(a.get("output_dtype", 0) or 0)
        import onnx
        dtype = np.uint8 if not out_dtype else onnx.helper.tensor_dtype_to_np_dtype(out_dtype)
        zero = np.zeros(scale.shape, dtype=dtype)
    if zero.dtype not in _INT_RANGES:
        raise UnsupportedError(f"quantisation to {zero.dtype}", ctx.where(node),
                               "use uint8/int8 activations and int8/uint8/int32 constants")
    if not np.issubdtype(scale.dtype, np.floating) or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise UnsupportedError("the scale must be finite and positive floats", ctx.where(node), "re-export the model")
    if scale.ndim > 1 or zero.ndim > 1 or (scale.size > 1 and zero.size not in (1, scale.size)):
        raise UnsupportedError(f"scale of shape {scale.shape} / zero point of shape {zero.shape}",
                               ctx.where(node), "use scalar or 1-D (per-axis) scales and zero points")
    x = node.input[0]
    if scale.size > 1 and ctx.is_const(x):
        ndim = ctx.consts[x].ndim
        axis = int(a.get("axis", 1))
        axis = axis + ndim if axis < 0 else axis
        if not 0 <= axis < ndim or ctx.consts[x].shape[axis] != scale.size:
            raise UnsupportedError(f"{scale.size} scales along axis {a.get('axis', 1)} of a constant of shape "
                                   f"{ctx.consts[x].shape}", ctx.where(node), "re-export the model")
        shape = [1] * ndim
        shape[axis] = scale.size
        scale = scale.reshape(shape)
        zero = zero.reshape(shape) if zero.size > 1 else zero
    qmin, qmax = _INT_RANGES[zero.dtype]
    return x, scale.astype(np.float64), zero, qmin, qmax


def _quantize_const(x, scale, zero, qmin, qmax, dtype) -> np.ndarray:
    """ONNX QuantizeLinear on a constant, in float32 as onnxruntime does (x / scale, ties to even)."""
    q = np.rint(np.asarray(x, dtype=np.float32) / scale.astype(np.float32)).astype(np.float64)
    return np.clip(q + zero.astype(np.float64), qmin, qmax).astype(dtype)


def _clip_quantised(node, ctx) -> None:
    """Clip of a QuantizeLinear's integer output (PyTorch's reduce_range: codes 0..127)."""
    q = ctx.pending[node.input[0]]
    a = _attrs(node)
    lo, hi = a.get("min"), a.get("max")
    if len(node.input) > 1 and node.input[1]:
        lo = ctx.const(node, 1, "clip bound").reshape(-1)[0]
    if len(node.input) > 2 and node.input[2]:
        hi = ctx.const(node, 2, "clip bound").reshape(-1)[0]
    qmin = q.qmin if lo is None else max(q.qmin, int(np.ceil(float(lo))))
    qmax = q.qmax if hi is None else min(q.qmax, int(np.floor(float(hi))))
    if qmax <= qmin:
        raise UnsupportedError(f"Clip leaves no integer range ({qmin}..{qmax})", ctx.where(node))
    ctx.pending[node.output[0]] = _PendingQuant(q.src, q.scale, q.zero, qmin, qmax, q.where)


def _add_qdq_activation(node, ctx, q: _PendingQuant, scale: float, zero: int) -> None:
    """A QuantizeLinear -> DequantizeLinear pair as  QuantAct (+ Shift).

    ONNX: k = clip(round(x/s_q) + z_q, qmin, qmax), y = s_d·(k − z_d).  QuantAct codes start
    at 0, so code c = k − qmin = clip(floor(x/s_q + (z_q − qmin) + 1/2), 0, qmax − qmin) and
    y = s_d·c + s_d·(qmin − z_d): the second term is a constant Shift (absent for uint8 with
    zero point 0, the ReLU case).  Rounding: ONNX rounds ties to even, QuantAct (and the SNN)
    rounds them up; the codes differ only where x/s_q is exactly a half-integer.
    """
    op = fg.QuantAct(in_scale=np.asarray(1.0 / q.scale), offset=np.asarray(float(q.zero - q.qmin) + 0.5),
                     levels=int(q.qmax - q.qmin), out_step=np.asarray(scale))
    ctx.add(node, op, [ctx.tensor(q.src)])
    name = ctx.alias[node.output[0]]
    ctx.graph.origin[name] = QDQ_ORIGIN
    shift = scale * float(q.qmin - zero)
    if shift != 0.0:
        zp = ctx.graph.add(f"{name}_zero_point", fg.Shift(np.asarray(shift)), [name], origin=QDQ_ZERO_POINT_ORIGIN)
        ctx.alias[node.output[0]] = zp


def _check_finite(name: str, arr: np.ndarray, path: str, users: dict) -> None:
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        node = users.get(name, "?")
        raise NeurodeployError(
            f"parameter '{name}' holds {bad} NaN/Inf value(s)", f"{path}: node '{node}'",
            "retrain or repair the model; the compiler cannot quantise non-finite weights")


def model_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_onnx(path: str | Path) -> fg.FloatGraph:
    """Read and check an ONNX file; return its float graph."""
    import onnx
    from onnx import numpy_helper

    path = str(path)
    if not Path(path).is_file():
        raise NeurodeployError("file not found", path, "check the path to the model")
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf DecodeError and friends
        raise NeurodeployError(f"not a readable ONNX file ({type(exc).__name__})", path,
                               "pass a model saved with torch.onnx.export or onnx.save") from None
    if not model.graph.node:
        raise NeurodeployError("the ONNX graph has no nodes", path, "pass a model saved with onnx.save")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise NeurodeployError(f"invalid ONNX model: {first}", path, "re-export the model") from None

    graph = fg.FloatGraph(source=path)
    users = {}
    for node in model.graph.node:
        for i in node.input:
            users.setdefault(i, node.name or node.output[0])
    consts = {}
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        _check_finite(init.name, arr, path, users)
        consts[init.name] = arr
    alias = {}
    inputs = [i for i in model.graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise UnsupportedError(f"the model has {len(inputs)} inputs; exactly one is supported", path)
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    shape = []
    for k, d in enumerate(dims[1:], start=1):
        if not d.HasField("dim_value") or d.dim_value <= 0:
            raise UnsupportedError(
                f"input '{inp.name}' has a dynamic dimension {k} ('{d.dim_param}')", path,
                "export with a fixed input shape; only the batch dimension may be dynamic")
        shape.append(int(d.dim_value))
    if len(shape) not in (1, 3):
        raise UnsupportedError(f"input '{inp.name}' has shape {[d.dim_value for d in dims]}; "
                               "expected (N, F) or (N, C, H, W)", path)
    graph.add("input", fg.Input(tuple(shape)), origin="graph input")
    alias[inp.name] = "input"

    ctx = _Ctx(graph, consts, alias, path)
    for node in model.graph.node:
        fn = HANDLERS.get(node.op_type)
        if fn is None or node.domain not in ("", "ai.onnx"):
            raise UnsupportedError(
                f"unsupported op {node.op_type}", ctx.where(node),
                f"supported ONNX ops: {', '.join(supported_ops())}")
        if node.op_type != "Constant":
            for i in node.input:
                if i and i not in alias and i not in consts and i not in ctx.pending:
                    raise NeurodeployError(f"input tensor '{i}' is produced by no node", ctx.where(node),
                                           "the model is malformed; re-export it")
        try:
            fn(node, ctx)
        except NeurodeployError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, AttributeError, ZeroDivisionError) as exc:
            # a node whose attributes or constants do not have the form its op requires
            raise NeurodeployError(f"malformed {node.op_type} node ({type(exc).__name__}: {exc})",
                                   ctx.where(node), "re-export the model") from None
        if node.op_type == "Constant":
            _check_finite(node.output[0], consts[node.output[0]], path, users)
    if len(model.graph.output) != 1:
        raise UnsupportedError(f"the model has {len(model.graph.output)} outputs; exactly one is supported",
                               path)
    out = model.graph.output[0].name
    if out in ctx.pending:
        raise UnsupportedError("the model output is the integer output of a QuantizeLinear",
                               ctx.pending[out].where, "end the model with a DequantizeLinear (or no quantiser)")
    if out not in alias:
        raise UnsupportedError("the model output is a constant", path)
    graph.output = alias[out]
    # drop nodes that do not feed the output (e.g. unused branches)
    import networkx as nx
    keep = nx.ancestors(graph.g, graph.output) | {graph.output}
    graph.g.remove_nodes_from([n for n in list(graph.g) if n not in keep])
    return check_shapes(graph)
