"""Give the network input a quantiser when the model does not start with one.

Signed inputs (images normalised by mean and std, the common case) need a zero point: the
codes 0..2^bits-1 stand for x = k·step + lo with lo < 0.  The consumers must see x, not k·step,
and the SNN only adds non-negative codes through its synapses, so the offset `lo` goes into the
biases of the layers that read the input: W·(k·step + lo) + b = W·(k·step) + (b + lo·ΣW).
That is exact everywhere but at the borders of a zero-padded convolution, where the model pads
x with 0 and the codes would be padded with code 0, i.e. with x = lo.  So the *host* pads: the
input encoder zero-pads the float input by the convolution's padding before encoding
(`InputEncoder.pad`), the padded positions get the code of 0.0, and the convolution runs
unpadded.  For that code to decode to exactly 0, `lo` is rounded to a whole number Z of steps
(lo = -Z·step, Z = round(-lo/step)): the standard "nudged" zero point of asymmetric
quantisation, which moves the range by less than half a step.  Scheme-independent: every
scheme lowers the encoder's codes and the (unpadded) convolution the same way.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from ..errors import NeurodeployError
from ..ir import float_graph as fg
from ..passes import Pass, starts_with_quantiser


def input_quantiser(calibration: np.ndarray | None, bits: int) -> Pass:
    """`insert_input_quantiser` with the compile's calibration data and input width, as a step of a
    scheme's flow (after the quantisers are fused: a QCFS on the pixels is the input's quantiser)."""
    return Pass("input_quantiser", partial(insert_input_quantiser, calibration=calibration, bits=bits),
                requires=("quantisers_fused",), ensures=("input_quantised",))


def insert_input_quantiser(graph: fg.FloatGraph, calibration: np.ndarray | None, bits: int) -> fg.FloatGraph:
    """Insert k = clip(round(x / step) + Z, 0, 2^bits - 1) after the input.

    The range comes from calibration data (min and max over all samples); an input that is
    never negative gets zero point 0; a signed one's zero point is folded into its consumers
    (`fold_input_zero_point`).  Preserves: the function up to the input rounding, which `verify`
    reports as quantisation error.  A model whose first op already is a quantiser (e.g. QCFS on
    the pixels) is returned unchanged.
    """
    if starts_with_quantiser(graph):
        return graph
    if calibration is None:
        raise NeurodeployError(
            "the model's input is not quantised and no calibration data was given", graph.source,
            "pass --calibration x.npy (samples shaped like the input) or start the model with a QCFS quantiser")
    lo, hi = float(np.min(calibration)), float(np.max(calibration))
    lo = min(lo, 0.0)
    if not hi > lo:
        # no range to spread the levels over: any step would be made up (arrays.check_calibration
        # refuses such sets at the door; this guards the API's float graphs too)
        raise NeurodeployError(f"the calibration samples span no range (every value is {hi})", graph.source,
                               "pass representative samples of the deployment data")
    levels = (1 << bits) - 1
    step = (hi - lo) / levels
    zero = int(round(-lo / step))          # the code of 0.0
    lo = -zero * step
    graph = graph.copy()
    (inp,) = graph.input_nodes()
    cons = graph.consumers(inp)
    q = graph.add("input_quant", fg.QuantAct(in_scale=np.asarray(1.0 / step), offset=np.asarray(0.5 + zero),
                                              levels=levels, out_step=np.asarray(step)), [inp],
                  origin=f"{bits}-bit input quantiser")
    for c in cons:
        port = graph.g.edges[inp, c]["port"]
        graph.g.remove_edge(inp, c)
        graph.g.add_edge(q, c, port=port)
    if zero:
        # k*step represents x - lo; the consumers must see x, so add lo after decoding ...
        s = graph.add("input_zero_point", fg.Shift(np.asarray(lo)), [q], origin="input zero point")
        for c in cons:
            port = graph.g.edges[q, c]["port"]
            graph.g.remove_edge(q, c)
            graph.g.add_edge(s, c, port=port)
        # ... and fold it into the layers that read the input, where they allow
        fold_input_zero_point(graph, s)
    return graph


def _reads_flat(graph: fg.FloatGraph, name: str) -> str | None:
    """The Dense layer behind `name` (itself, or through one Flatten), else None."""
    op = graph.op(name)
    if isinstance(op, fg.Flatten) and len(graph.consumers(name)) == 1:
        name = graph.consumers(name)[0]
        op = graph.op(name)
    return name if isinstance(op, fg.Dense) else None


def fold_input_zero_point(graph: fg.FloatGraph, shift: str) -> None:
    """Fold Shift(lo) after the input quantiser into the Conv/Dense layers reading it (in place).

    Every consumer must be a Conv (all with the same padding) or a Dense (possibly behind a
    Flatten); otherwise the graph is left as it is and lowering names the layer the offset
    reaches.  Padded convolutions become unpadded and the input gets a Pad node before its
    quantiser, which lowering hands to the host encoder.
    """
    lo = float(graph.op(shift).amount)
    cons = graph.consumers(shift)
    convs = [c for c in cons if isinstance(graph.op(c), fg.Conv)]
    denses = [d for d in (_reads_flat(graph, c) for c in cons if c not in convs) if d is not None]
    paddings = {tuple(graph.op(c).padding) for c in convs}
    if len(convs) + len(denses) != len(cons) or len(paddings) > 1:
        return
    for c in convs:
        op = graph.op(c)
        graph.set_op(c, fg.Conv(op.weight, op.bias + lo * op.weight.sum(axis=(1, 2, 3)), op.stride, (0, 0),
                                op.dilation, op.groups))
    for d in denses:
        op = graph.op(d)
        graph.set_op(d, fg.Dense(op.weight, op.bias + lo * op.weight.sum(axis=1)))
    graph.bypass(shift)
    (pad_h, pad_w) = paddings.pop() if paddings else (0, 0)
    if pad_h or pad_w:
        (inp,) = graph.input_nodes()
        (q,) = graph.consumers(inp)
        p = graph.add("input_padding", fg.Pad(((0, 0), (pad_h, pad_h), (pad_w, pad_w)), 0.0), [inp],
                      origin="the first layer's zero padding, applied by the host before encoding")
        graph.g.remove_edge(inp, q)
        graph.g.add_edge(p, q, port=0)
