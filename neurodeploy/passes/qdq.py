"""Passes for quantised (QDQ) ONNX models: what PyTorch's QAT export leaves around the quantisers.

- `fold_linear_affine`: Conv -> Div -> Add -> BatchNormalization (the eval-mode graph of a QAT
  ConvBn(ReLU) module) becomes Conv -> BatchNormalization, so that `fold_bn` applies.
- `strip_output_quantiser`: the QDQ pair on the model output is dropped: the readout is
  non-spiking and reads its potential at full precision.
- `fold_zero_points`: the constant shift s·(qmin − z) that a QDQ pair with a zero point leaves
  after its `QuantAct` moves into the next Dense / unpadded Conv bias (Eq. 17's −Ŵ·Z_i·C_i/C_o).

Each preserves the function of the float graph (up to float rounding), except
`strip_output_quantiser`, which removes the output's 8-bit rounding on purpose.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import float_graph as fg
from ..ir.float_eval import infer_shapes

QDQ_ORIGIN = "QuantizeLinear/DequantizeLinear"      # FloatGraph.origin of a QDQ quantiser (front end)
QDQ_ZERO_POINT_ORIGIN = "QDQ zero point"


def is_qdq(graph: fg.FloatGraph, name: str) -> bool:
    """Whether node `name` is a QuantAct made from a QuantizeLinear/DequantizeLinear pair."""
    return isinstance(graph.op(name), fg.QuantAct) and graph.origin.get(name) == QDQ_ORIGIN


def _channel_factor(arr, ndim: int) -> np.ndarray:
    """A scalar or per-output-channel (C,) array shaped to multiply a weight of rank `ndim`."""
    arr = np.asarray(arr, dtype=np.float64)
    return arr if arr.ndim == 0 else arr.reshape((-1,) + (1,) * (ndim - 1))


def fold_linear_affine(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Fold constant Scale/Shift ops between a Conv/Dense and a BatchNorm into the Conv/Dense.

    PyTorch exports a QAT ConvBn module as conv(x, fq(W·γ/σ)) / (γ/σ) + b, then BN(running
    stats); with the scales and shifts folded, `fold_bn` gives W = fq(W·γ/σ) (up to float
    rounding), which is the quantised model's weight.  Only chains that end in a BatchNorm are
    touched (QCFS chains after a Conv are left to `fuse_quant_act`).  Preserves: the function.
    """
    graph = graph.copy()
    for bn in graph.topo_order():
        if bn not in graph.g or not isinstance(graph.op(bn), fg.BatchNorm):
            continue
        chain, src = [], graph.inputs(bn)[0]
        while (isinstance(graph.op(src), (fg.Scale, fg.Shift)) and len(graph.consumers(src)) == 1
               and fg.is_channel_constant(getattr(graph.op(src), "factor", getattr(graph.op(src), "amount", 0)))):
            chain.insert(0, src)
            src = graph.inputs(src)[0]
        if not chain or not isinstance(graph.op(src), (fg.Conv, fg.Dense)) or len(graph.consumers(src)) != 1:
            continue
        lin = graph.op(src)
        w, b = lin.weight.copy(), np.asarray(lin.bias, dtype=np.float64).copy()
        for n in chain:
            op = graph.op(n)
            if isinstance(op, fg.Scale):
                w, b = w * _channel_factor(op.factor, w.ndim), b * np.asarray(op.factor, dtype=np.float64)
            else:
                b = b + np.asarray(op.amount, dtype=np.float64)
        graph.set_op(src, type(lin)(**{**lin.__dict__, "weight": w,
                                       "bias": np.broadcast_to(b, (w.shape[0],)).copy()}))
        for n in chain:
            graph.bypass(n)
    return graph


def strip_output_quantiser(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Drop a QDQ quantiser (and its zero-point shift) on the model output.

    The SNN's last layer is a non-spiking readout that reads its integer potential; it needs
    no 8-bit output code.  The readout then gives the logits before the QDQ model's output
    rounding (|difference| <= half an output step unless the QDQ model clips), so predictions
    can differ from onnxruntime's only where the 8-bit logits tie or round across each other.
    """
    graph = graph.copy()
    out = graph.output
    if isinstance(graph.op(out), fg.Shift) and graph.origin.get(out) == QDQ_ZERO_POINT_ORIGIN:
        graph.bypass(out)
        out = graph.output
    if is_qdq(graph, out):
        graph.bypass(out)
    return graph


_COMMUTING = (fg.Flatten, fg.MaxPool, fg.GlobalAvgPool)   # f(x + a) = f(x) + a' per channel


def _commutes(op) -> bool:
    return isinstance(op, _COMMUTING) or (isinstance(op, fg.AvgPool) and not any(op.padding))


def _fold_shift_into(lin, amount: np.ndarray, in_shape: tuple):
    """The Conv/Dense `lin` applied to x + amount, as a Conv/Dense on x (new bias).

    amount is a scalar or per-channel (C,) array of the input (C, H, W) or per-feature (F,).
    """
    a = np.asarray(amount, dtype=np.float64)
    if isinstance(lin, fg.Dense):
        n_in = lin.weight.shape[1]
        if a.ndim and a.size != n_in:          # per channel, the Dense sees a flattened (C, H, W)
            a = np.repeat(a, n_in // a.size)
        extra = lin.weight @ np.broadcast_to(a, (n_in,))
    else:
        c_out, cin_g = lin.weight.shape[:2]
        a_in = np.broadcast_to(a, (in_shape[0],)).reshape(lin.groups, cin_g)
        per_group = np.repeat(a_in, c_out // lin.groups, axis=0)        # (C_out, C_in/groups)
        extra = np.einsum("oikl,oi->o", lin.weight, per_group)
    return type(lin)(**{**lin.__dict__, "bias": lin.bias + extra})


def fold_zero_points(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Move a QDQ zero-point Shift into the bias of the Dense/Conv it reaches.

    The SNN carries codes c = k − qmin; the QDQ model's value is s·c + s·(qmin − z).  The
    constant passes unchanged through Flatten, MaxPool and unpadded average pooling and is
    exactly a bias change of the next Dense or unpadded Conv.  A *padded* Conv cannot take it:
    the QDQ model pads with the real value 0 (code z) but the SNN's padding is code 0, so the
    border outputs would need their own bias; that raises an error.  Shifts that reach an Add
    or a quantiser are left to `lower` (it adds them to the layer bias).  Preserves: the function.
    """
    graph = graph.copy()
    shapes = infer_shapes(graph)
    for name in graph.topo_order():
        if name not in graph.g or graph.origin.get(name) != QDQ_ZERO_POINT_ORIGIN:
            continue
        node = name
        while len(graph.consumers(node)) == 1 and node != graph.output:
            nxt = graph.consumers(node)[0]
            if not _commutes(graph.op(nxt)):
                break
            node = nxt
        if len(graph.consumers(node)) != 1 or node == graph.output:
            continue
        lin_name = graph.consumers(node)[0]
        lin = graph.op(lin_name)
        if not isinstance(lin, (fg.Conv, fg.Dense)):
            continue
        if isinstance(lin, fg.Conv) and any(lin.padding):
            q = graph.inputs(name)[0]
            raise UnsupportedError(
                f"an activation with a nonzero zero point feeds the zero-padded convolution '{lin_name}': "
                "the QDQ model pads with the value 0, the SNN with code 0", graph.where(q),
                "quantise that activation with zero point 0 (a ReLU fused before the quantiser, or "
                "non-negative inputs), or pad explicitly")
        graph.set_op(lin_name, _fold_shift_into(lin, graph.op(name).amount, shapes[graph.inputs(lin_name)[0]]))
        graph.bypass(name)
    return graph
