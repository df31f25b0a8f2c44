"""BatchNorm folding."""
from __future__ import annotations

from ..errors import UnsupportedError
from ..ir import float_graph as fg


def fold_bn(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Fold every BatchNormalization into the Conv/Dense that feeds it.

    With s = gamma / sqrt(var + eps): W' = s * W (per output channel), b' = s * (b - mean) + beta.
    Preserves: the function computed by the graph (up to float rounding); a model exported
    with BN nodes and the same model exported with BN folded give the same graph.
    """
    graph = graph.copy()
    for name in graph.topo_order():
        op = graph.op(name)
        if not isinstance(op, fg.BatchNorm):
            continue
        (src,) = graph.inputs(name)
        src_op = graph.op(src)
        if not isinstance(src_op, (fg.Conv, fg.Dense)) or len(graph.consumers(src)) != 1:
            raise UnsupportedError(
                "BatchNormalization does not directly follow a Conv/Gemm with no other consumer",
                graph.where(name), "place BatchNorm right after a convolution or linear layer")
        s, b = op.scale_shift(src_op.bias)
        w = src_op.weight * s.reshape((-1,) + (1,) * (src_op.weight.ndim - 1))
        graph.set_op(src, type(src_op)(**{**src_op.__dict__, "weight": w, "bias": b}))
        graph.bypass(name)
    return graph
