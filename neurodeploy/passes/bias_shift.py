"""The error-free conversion's BN bias shift (Theorem I of Datta et al.)."""
from __future__ import annotations

import numpy as np

from ..ir import float_graph as fg


def bias_shift(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Move each quantiser's rounding offset into the bias of the layer that feeds it.

    QCFS rounds (floor(x/Δ + 1/2)) while the SNN's threshold ladder truncates
    (floor(U/Δ)); adding Δ/2 = offset/in_scale to the (BN-folded) bias makes them agree.
    Preserves: the function (floor(x*a + c) = floor((x + c/a)*a)).  Quantisers fed by
    anything other than a Conv/Dense keep their offset; lowering folds it the same way.
    """
    graph = graph.copy()
    for name in graph.topo_order():
        op = graph.op(name)
        if not isinstance(op, fg.QuantAct) or not np.any(op.offset):
            continue
        (src,) = graph.inputs(name)
        src_op = graph.op(src)
        if not isinstance(src_op, (fg.Conv, fg.Dense)) or len(graph.consumers(src)) != 1:
            continue
        shift = np.broadcast_to(np.asarray(op.offset) / np.asarray(op.in_scale), src_op.bias.shape)
        graph.set_op(src, type(src_op)(**{**src_op.__dict__, "bias": src_op.bias + shift}))
        graph.set_op(name, fg.QuantAct(op.in_scale, np.zeros_like(np.asarray(op.offset)),
                                       op.levels, op.out_step))
    return graph
