"""Give the network input a quantiser when the model does not start with one."""
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
    """Insert k = clip(round(x / step) - zero, 0, 2^bits - 1) after the input.

    The range comes from calibration data (min and max over all samples); an input that is
    never negative gets zero point 0.  Preserves: the function up to the input rounding,
    which `verify` reports as quantisation error.  A model whose first op already is a
    quantiser (e.g. QCFS on the pixels) is returned unchanged.
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
    graph = graph.copy()
    (inp,) = graph.input_nodes()
    cons = graph.consumers(inp)
    q = graph.add("input_quant", fg.QuantAct(in_scale=np.asarray(1.0 / step), offset=np.asarray(0.5 - lo / step),
                                              levels=levels, out_step=np.asarray(step)), [inp],
                  origin=f"{bits}-bit input quantiser")
    for c in cons:
        port = graph.g.edges[inp, c]["port"]
        graph.g.remove_edge(inp, c)
        graph.g.add_edge(q, c, port=port)
    if lo < 0:
        # k*step represents x - lo; the consumers must see x, so subtract lo after decoding.
        s = graph.add("input_zero_point", fg.Shift(np.asarray(lo)), [q], origin="input zero point")
        for c in cons:
            port = graph.g.edges[q, c]["port"]
            graph.g.remove_edge(q, c)
            graph.g.add_edge(s, c, port=port)
    return graph
