"""Small clean-ups that keep the function and remove ops a scheme need not see."""
from __future__ import annotations

import numpy as np

from ..ir import float_graph as fg


def drop_redundant_relu(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Remove a ReLU right before or after a quantised activation.

    Preserves: the function.  A QuantAct's codes are >= 0, so ReLU after it is the identity;
    ReLU before it only maps negative inputs to 0, which the QuantAct already sends to code 0
    when its offset lies in [0, 1).
    """
    graph = graph.copy()
    for name in graph.topo_order():
        if not isinstance(graph.op(name), fg.Relu):
            continue
        (src,) = graph.inputs(name)
        after_quant = isinstance(graph.op(src), fg.QuantAct)
        consumers = graph.consumers(name)
        before_quant = consumers and all(
            isinstance(graph.op(c), fg.QuantAct)
            and np.all((np.asarray(graph.op(c).offset) >= 0) & (np.asarray(graph.op(c).offset) < 1))
            for c in consumers)
        if after_quant or before_quant:
            graph.bypass(name)
    return graph
