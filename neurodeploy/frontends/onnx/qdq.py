"""ONNX QuantizeLinear/DequantizeLinear (QDQ) handlers.

QuantizeLinear/DequantizeLinear on constants (int8 weights, per tensor or per axis; int32
biases) fold to their exact dequantised values; a QuantizeLinear -> DequantizeLinear pair on an
activation (uint8/int8, per tensor) becomes one `QuantAct` with 255 levels (plus a `Shift` when
the zero point is not the lowest code); a Clip between the two (PyTorch's reduce_range, codes
0..127) narrows the level count (see handlers.py's Clip).
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...ir import float_graph as fg
from ...passes.qdq import QDQ_ORIGIN, QDQ_ZERO_POINT_ORIGIN
from .context import attrs, handler


@handler("QuantizeLinear", attrs=("axis", "block_size", "output_dtype", "saturate", "precision"))
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
    ctx.pending[node.output[0]] = PendingQuant(node.input[0], float(scale.reshape(())),
                                                int(zero.reshape(())), qmin, qmax, ctx.where(node))


@handler("DequantizeLinear", attrs=("axis", "block_size", "output_dtype"))
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


# --- QDQ (QuantizeLinear / DequantizeLinear) -----------------------------------------------
_INT_RANGES = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
               for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32)}


class PendingQuant:
    """k = clip(round_half_even(x / scale) + zero, qmin, qmax) of computed tensor `src`."""

    def __init__(self, src: str, scale: float, zero: int, qmin: int, qmax: int, where: str):
        self.src, self.scale, self.zero, self.qmin, self.qmax, self.where = src, scale, zero, qmin, qmax, where


def _qdq_params(node, ctx):
    """(x name, scale float64, zero point (integer dtype), qmin, qmax) of a Q/DQ node.

    The zero point's dtype is the integer type (ONNX: uint8 when it is absent); scale and zero
    point broadcast along `axis` when they are 1-D (per-axis, ONNX opset >= 13).
    """
    a = attrs(node)
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


def clip_quantised(node, ctx) -> None:
    """Clip of a QuantizeLinear's integer output (PyTorch's reduce_range: codes 0..127)."""
    q = ctx.pending[node.input[0]]
    a = attrs(node)
    lo, hi = a.get("min"), a.get("max")
    if len(node.input) > 1 and node.input[1]:
        lo = ctx.const(node, 1, "clip bound").reshape(-1)[0]
    if len(node.input) > 2 and node.input[2]:
        hi = ctx.const(node, 2, "clip bound").reshape(-1)[0]
    qmin = q.qmin if lo is None else max(q.qmin, int(np.ceil(float(lo))))
    qmax = q.qmax if hi is None else min(q.qmax, int(np.floor(float(hi))))
    if qmax <= qmin:
        raise UnsupportedError(f"Clip leaves no integer range ({qmin}..{qmax})", ctx.where(node))
    ctx.pending[node.output[0]] = PendingQuant(q.src, q.scale, q.zero, qmin, qmax, q.where)


def _add_qdq_activation(node, ctx, q: PendingQuant, scale: float, zero: int) -> None:
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
