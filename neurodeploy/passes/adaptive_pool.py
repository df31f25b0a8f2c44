"""Fold adaptive average pooling with non-uniform windows into the weighted layer after it.

torchvision's VGG ends its features with `AdaptiveAvgPool2d((7, 7))` before
`Flatten -> Linear(512*7*7, 4096)`.  At 224x224 the features are 7x7 and the pool is the identity;
at 32x32 they are 1x1 and the pool copies each value 49 times (at 64x64, 2x2 -> 7x7, it averages
overlapping windows of unequal size).  No synapse pools like that, but the pool is linear,
y = P·x per channel with P (oh·ow, H·W) the pooling matrix, and so is the layer after it: a Linear
reading the flattened pool computes W·(P·x) = (W·P)·x, one Linear with weight W' = W·P on the
flattened input (for 1x1 -> 7x7, each channel's 49 columns of W summed); a Conv whose kernel covers
the pooled map exactly (no padding, output 1x1) is a Conv with kernel W'[o, c] = W[o, c]·P over the
input map.

Float rounding.  W' is computed in float64 and sums other products than the model's float32 pool
and Linear do, so the folded graph's float values differ from the source framework's by round-off.
That is why the fold runs *after* the front end's proof (`frontends.proof`, which checks the
graph as read, pool and all, against the source framework) as one of `FRONT_END_PASSES`; the
quantised network, its integer reference and the SNN are all built from the folded graph, so
"exact" (0 conversion mismatches) is exactness relative to the folded graph, as for every other
folding pass (BatchNorm, bias shift).

A pool with any other consumer (a ReLU, an Add, a Conv that slides over the pooled map, a second
reader) is left as it is; the scheme's lowering then refuses it by node and scheme.
"""
from __future__ import annotations

import numpy as np

from ..ir import float_graph as fg
from ..ir.float_eval import infer_shapes


def _axis_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in): output i averages inputs floor(i·n_in/n_out) .. ceil((i+1)·n_in/n_out) - 1,
    as PyTorch's adaptive_avg_pool2d (and ONNX exports of it) define the windows."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        start, stop = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        m[i, start:stop] = 1.0 / (stop - start)
    return m


def pooling_matrix(in_hw: tuple, out_hw: tuple) -> np.ndarray:
    """P (oh·ow, H·W) with pooled[c].ravel() = P @ x[c].ravel() (row-major, as Flatten orders)."""
    return np.kron(_axis_matrix(in_hw[0], out_hw[0]), _axis_matrix(in_hw[1], out_hw[1]))


def _is_flatten(op, shape: tuple) -> bool:
    """A Flatten, or a Reshape of a (C, H, W) tensor to (C·H·W,): the same relabelling."""
    return isinstance(op, fg.Flatten) or (isinstance(op, fg.Reshape) and tuple(op.shape) == (int(np.prod(shape)),))


def _only_consumer(graph: fg.FloatGraph, name: str) -> str | None:
    cons = graph.consumers(name)
    return cons[0] if len(cons) == 1 and name != graph.output else None


def _fold_target(graph: fg.FloatGraph, name: str, shapes: dict) -> tuple[str | None, str | None]:
    """(flatten node or None, the weighted layer) the pool at `name` folds into, or (None, None)."""
    nxt = _only_consumer(graph, name)
    if nxt is None:
        return None, None
    op = graph.op(nxt)
    if isinstance(op, fg.Conv):
        covers = (tuple(op.weight.shape[2:]) == tuple(shapes[name][1:]) and not any(op.padding)
                  and tuple(op.dilation) == (1, 1))
        return (None, nxt) if covers else (None, None)
    if _is_flatten(op, shapes[name]):
        dense = _only_consumer(graph, nxt)
        if dense is not None and isinstance(graph.op(dense), fg.Dense):
            return nxt, dense
    return None, None


def folded_flattens(graph: fg.FloatGraph) -> set[str]:
    """The Flatten nodes `fold_adaptive_pool` makes read the pool's input: their value changes
    (C·H·W values instead of C·oh·ow); the layer after them keeps its value."""
    pools = [n for n in graph.g if isinstance(graph.op(n), fg.AdaptiveAvgPool)]
    shapes = infer_shapes(graph) if pools else {}
    return {flat for flat, _ in (_fold_target(graph, n, shapes) for n in pools) if flat is not None}


def fold_adaptive_pool(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Requires: shapes that infer.  Ensures: no AdaptiveAvgPool whose only reader is a Dense
    (through a Flatten) or a Conv covering its output is left.  Preserves: the function, up to
    float round-off (W' = W·P in float64; see the module docstring)."""
    pools = [n for n in graph.topo_order() if isinstance(graph.op(n), fg.AdaptiveAvgPool)]
    if not pools:
        return graph
    shapes = infer_shapes(graph)
    graph = graph.copy()
    for name in pools:
        flat, layer = _fold_target(graph, name, shapes)
        if layer is None:
            continue
        c, h, w = shapes[(graph.inputs(name))[0]]
        p = pooling_matrix((h, w), graph.op(name).output_size)           # (oh·ow, H·W)
        op = graph.op(layer)
        if isinstance(op, fg.Dense):
            w_pooled = op.weight.reshape(op.weight.shape[0], c, p.shape[0])
            graph.set_op(layer, fg.Dense(np.ascontiguousarray((w_pooled @ p).reshape(op.weight.shape[0], c * h * w)),
                                         op.bias.copy()))
            if isinstance(graph.op(flat), fg.Reshape):
                graph.set_op(flat, fg.Reshape((c * h * w,)))
        else:
            o, c_group = op.weight.shape[:2]
            w_pooled = op.weight.reshape(o, c_group, p.shape[0]) @ p
            graph.set_op(layer, fg.Conv(np.ascontiguousarray(w_pooled.reshape(o, c_group, h, w)), op.bias.copy(),
                                        (1, 1), (0, 0), (1, 1), op.groups))
        oh, ow = graph.op(name).output_size
        graph.bypass(name)
        graph.notes.append(f"the adaptive average pooling '{name}' ({h}x{w} -> {oh}x{ow}) was folded into "
                           f"the {'Flatten -> Linear' if flat else 'Conv'} after it (weights W·P)")
    return graph
