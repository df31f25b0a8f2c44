"""QONNX `Quant` (Brevitas' `export_qonnx`, FINN): y = (clip(round(x/s + z), qmin, qmax) − z)·s.

Domains: qonnx.custom_op.general (QONNX), finn.custom_op.general and finn (older FINN files).
Inputs x, scale s, zero point z, bit width b (all but x constants); attributes signed, narrow,
rounding_mode.  Integer range (qonnx.custom_op.general.intquant): unsigned 0..2^b−1 (narrow:
2^b−2), signed −2^(b−1)..2^(b−1)−1 (narrow: from −2^(b−1)+1).

- On a constant (a weight or bias initializer) the op folds to its exact dequantised values:
  the integer codes are computed in float32 as the qonnx executor does, then (k − z)·s in float64.
- On a computed tensor it is the activation quantiser, read as one `QuantAct` with
  qmax − qmin levels where that is exact: unsigned, zero point 0, one scale for the tensor,
  rounding ROUND/HALF_EVEN (ties differ from QuantAct's half-up only exactly on a half code, as
  for QuantizeLinear), HALF_UP or FLOOR.  Anything else (signed activations, a zero point,
  per-channel scales, other rounding modes, 1-bit bipolar) is refused with the node and why.

onnxruntime cannot run `Quant`; the front end proves its reading against the `qonnx` package's
executor instead (`reference_values`).
"""
from __future__ import annotations

import numpy as np

from ...errors import NeurodeployError
from ...ir import float_graph as fg
from ...passes.fuse_quant_act import MAX_LEVELS
from ...passes.qdq import QDQ_ORIGIN
from .context import attrs, handler

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "finn")
# QuantAct computes floor(x/s + offset): the rounding modes that are exactly that for codes >= 0
_ACT_OFFSET = {"ROUND": 0.5, "HALF_EVEN": 0.5, "HALF_UP": 0.5, "FLOOR": 0.0}
_CONST_ROUNDING = {
    "ROUND": np.round, "HALF_EVEN": np.round, "FLOOR": np.floor, "CEIL": np.ceil, "DOWN": np.fix,
    "UP": lambda v: np.sign(v) * np.ceil(np.abs(v)),
    "HALF_UP": lambda v: np.sign(v) * np.floor(np.abs(v) + 0.5),
    "HALF_DOWN": lambda v: np.sign(v) * np.ceil(np.abs(v) - 0.5),
}


def uses_qonnx(model) -> bool:
    """Whether the model holds QONNX ops (onnxruntime cannot run it)."""
    return any(n.domain in QONNX_DOMAINS for n in model.graph.node)


def is_qonnx_file(path) -> bool:
    """Whether the ONNX file at `path` holds QONNX ops (a file that is not readable ONNX: False,
    onnxruntime then names the problem)."""
    import onnx
    try:
        return uses_qonnx(onnx.load(str(path), load_external_data=False))
    except Exception:    # protobuf's DecodeError and friends: not ONNX, let the caller say so
        return False


def run_qonnx(path, x: np.ndarray) -> np.ndarray:
    """The QONNX model's (first) output on x, by the qonnx executor (`neurodeploy verify`)."""
    from . import read_model
    model = read_model(path)
    name = model.graph.output[0].name
    try:
        return reference_values(model, [name], x)[name]
    except NeurodeployError as exc:
        raise NeurodeployError(exc.what, str(path), exc.hint) from None


def int_range(signed: bool, narrow: bool, bits: int) -> tuple[int, int]:
    """(qmin, qmax) of a Quant op (QONNX's min_int/max_int)."""
    if signed:
        return -(1 << (bits - 1)) + (1 if narrow else 0), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - (1 if narrow else 0)


@handler("Quant", attrs=("signed", "narrow", "rounding_mode"), domains=QONNX_DOMAINS)
def _quant(node, ctx):
    a = attrs(node)
    signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
    mode = a.get("rounding_mode", b"ROUND")
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
    scale = np.asarray(ctx.const(node, 1, "scale"), dtype=np.float64)
    zero = np.asarray(ctx.const(node, 2, "zero point"), dtype=np.float64)
    bits_arr = np.asarray(ctx.const(node, 3, "bit width"), dtype=np.float64)
    if bits_arr.size != 1 or bits_arr.reshape(()) != np.round(bits_arr.reshape(())) or not 1 <= bits_arr.reshape(()) <= 32:
        raise ctx.refuse(node, f"bit width {bits_arr.reshape(-1).tolist()} is not one whole number of bits in 1..32",
                         "quantise to an integer bit width")
    bits = int(bits_arr.reshape(()))
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ctx.refuse(node, "the scale must be finite and positive", "re-export the model")
    if mode not in _CONST_ROUNDING:
        raise ctx.refuse(node, f"unknown rounding_mode '{mode}'", f"use one of {', '.join(sorted(_CONST_ROUNDING))}")
    if bits == 1 and signed:
        raise ctx.refuse(node, "1-bit signed (bipolar) quantisation", "use 2 or more bits, or an unsigned quantiser")
    qmin, qmax = int_range(signed, narrow, bits)
    if ctx.is_const(node.input[0]):
        ctx.consts[node.output[0]] = _fold_weight(node, ctx, ctx.consts[node.input[0]], scale, zero, qmin, qmax, mode)
        return
    _activation(node, ctx, scale, zero, signed, qmin, qmax, mode)


def _fold_weight(node, ctx, x, scale, zero, qmin, qmax, mode) -> np.ndarray:
    """The exact dequantised constant: codes as qonnx's int_quant computes them (float32)."""
    x32 = np.asarray(x, dtype=np.float32)
    try:
        s32, z32 = np.broadcast_to(scale.astype(np.float32), x32.shape), np.broadcast_to(zero.astype(np.float32), x32.shape)
    except ValueError:
        raise ctx.refuse(node, f"scale {list(scale.shape)} / zero point {list(zero.shape)} do not broadcast against "
                         f"the constant {list(x32.shape)}", "re-export the model") from None
    codes = np.clip(x32 / s32 + z32, np.float32(qmin), np.float32(qmax))
    codes = _CONST_ROUNDING[mode](codes).astype(np.float64)
    return (codes - zero) * scale


def _activation(node, ctx, scale, zero, signed, qmin, qmax, mode) -> None:
    """The activation quantiser as one `QuantAct` (codes 0..qmax), where that reads it exactly."""
    if signed:
        raise ctx.refuse(node, "signed activation quantiser (signed=1): spikes carry non-negative codes only",
                         "quantise activations unsigned after a ReLU (Brevitas QuantReLU)")
    if scale.size != 1:
        raise ctx.refuse(node, f"per-channel activation scale ({scale.size} scales)",
                         "quantise activations per tensor (one scale)")
    if zero.size != 1 or float(zero.reshape(())) != 0.0:
        raise ctx.refuse(node, f"activation zero point {zero.reshape(-1)[:4].tolist()} (not 0)",
                         "quantise activations with zero point 0 (Brevitas' unsigned activation quantisers)")
    if mode not in _ACT_OFFSET:
        raise ctx.refuse(node, f"rounding_mode {mode} on an activation (QuantAct rounds with floor(x/s + c))",
                         "use ROUND, HALF_UP or FLOOR")
    if qmax > MAX_LEVELS:
        raise ctx.refuse(node, f"{qmax} activation levels (more than {MAX_LEVELS})", "use at most 20 bits")
    s = float(scale.reshape(()))
    op = fg.QuantAct(in_scale=np.asarray(1.0 / s), offset=np.asarray(_ACT_OFFSET[mode]), levels=int(qmax - qmin),
                     out_step=np.asarray(s))
    name = ctx.add(node, op, [ctx.tensor(node.input[0])])
    ctx.graph.origin[name] = QDQ_ORIGIN       # the same role as a QuantizeLinear/DequantizeLinear pair


def shape_stand_ins(model):
    """A copy of `model` in which every QONNX Quant is an Identity of its input x, for onnx's shape
    inference (which knows no custom ops; Quant keeps its input's shape); `model` itself when it
    has none."""
    import onnx
    if not uses_qonnx(model):
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for node in m.graph.node:
        if node.domain in QONNX_DOMAINS and node.op_type == "Quant":
            x, out, name = node.input[0], node.output[0], node.name
            node.Clear()
            node.op_type, node.name = "Identity", name
            node.input.append(x)
            node.output.append(out)
    return m


def reference_values(model, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """The qonnx executor's value of every tensor in `names` on x (one sample at a time when the
    model's batch is fixed)."""
    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.transformation.infer_shapes import InferShapes
    except ImportError:
        raise NeurodeployError("the qonnx package is not installed: a QONNX model cannot be checked without it", "",
                               "pip install qonnx (the version in requirements.txt)") from None
    import onnx
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    batch_dim = model_copy.graph.input[0].type.tensor_type.shape.dim[0]
    if not (batch_dim.HasField("dim_value") and batch_dim.dim_value > 0):
        batch_dim.Clear()          # a dynamic batch: the executor checks the input's shape exactly
        batch_dim.dim_value = len(x)
    step = batch_dim.dim_value
    wrapped = ModelWrapper(model_copy).transform(InferShapes())
    inp = wrapped.graph.input[0].name
    chunks = []
    for start in range(0, len(x), step):
        xb = np.asarray(x[start:start + step], dtype=np.float32)
        n = len(xb)
        if n < step:
            xb = np.concatenate([xb, np.zeros((step - n,) + xb.shape[1:], np.float32)])
        try:
            ctx = execute_onnx(wrapped, {inp: xb}, return_full_exec_context=True)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise NeurodeployError(f"the qonnx executor cannot run the model: {first}", "", "re-export the model") from None
        chunks.append({k: np.asarray(ctx[k])[:n] for k in names if k in ctx and ctx[k] is not None})
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
