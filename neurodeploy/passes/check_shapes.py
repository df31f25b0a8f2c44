"""Shape checks on a fresh float graph, so that malformed models fail with a clear error."""
from __future__ import annotations

import numpy as np

from ..errors import NeurodeployError
from ..ir import float_graph as fg
from ..limits import check_layer_size


def _expect(cond: bool, graph: fg.FloatGraph, name: str, what: str) -> None:
    if not cond:
        raise NeurodeployError(what, graph.where(name), "re-export the model; its parameters do not fit together")


def _constant_ok(arr, shape: tuple) -> bool:
    """Scalar, per channel, or of the tensor's rank and broadcasting to it without growing it."""
    a = np.asarray(arr)
    if a.ndim <= 1:
        return a.ndim == 0 or a.shape == (shape[0],)
    return a.ndim == len(shape) and all(d in (1, s) for d, s in zip(a.shape, shape))


def check_shapes(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Check every op's parameters against its input's shape; raise on the first misfit.

    Shapes only (torch's meta device): nothing the size of a tensor is allocated, and no input or
    node output may exceed `limits.MAX_LAYER_NEURONS` values.

    Preserves: the graph (it is returned unchanged).
    """
    order = graph.topo_order()
    shapes = {}
    for name in order:
        op = graph.op(name)
        ins = graph.inputs(name)
        expected_inputs = (0 if isinstance(op, fg.Input) else 2 if isinstance(op, fg.Add)
                           else max(1, len(ins)) if isinstance(op, fg.Concat) else 1)
        _expect(len(ins) == expected_inputs, graph, name, f"has {len(ins)} inputs, expected {expected_inputs}")
        shape = shapes[ins[0]] if ins else None
        if isinstance(op, fg.Conv):
            w = op.weight
            _expect(shape is not None and len(shape) == 3, graph, name, "convolution of a non-image tensor")
            _expect(w.ndim == 4 and op.groups >= 1 and w.shape[0] % op.groups == 0
                    and w.shape[1] * op.groups == shape[0], graph, name,
                    f"weight {w.shape} does not fit {shape[0]} input channels (groups={op.groups})")
            _expect(op.bias.shape == (w.shape[0],), graph, name, f"bias {op.bias.shape} for {w.shape[0]} outputs")
            _expect(all(v >= 1 for v in (*op.stride, *op.dilation)) and all(v >= 0 for v in op.padding),
                    graph, name, "non-positive stride/dilation or negative padding")
        elif isinstance(op, fg.Dense):
            feats = int(np.prod(shape))
            _expect(len(shape) == 1, graph, name, f"Gemm/MatMul on a {len(shape)}-D tensor; flatten first")
            _expect(op.weight.ndim == 2 and op.weight.shape[1] == feats, graph, name,
                    f"weight {op.weight.shape} does not fit {feats} input features")
            _expect(op.bias.shape == (op.weight.shape[0],), graph, name, f"bias {op.bias.shape}")
        elif isinstance(op, fg.BatchNorm):
            for p in (op.gamma, op.beta, op.mean, op.var):
                _expect(np.shape(p) == (shape[0],), graph, name, f"BatchNorm parameter {np.shape(p)} "
                        f"for {shape[0]} channels")
            _expect(bool(np.all(op.var + op.eps > 0)), graph, name, "BatchNorm variance + eps is not positive")
        elif isinstance(op, (fg.Scale, fg.Shift)):
            val = op.factor if isinstance(op, fg.Scale) else op.amount
            _expect(_constant_ok(val, shape), graph, name, f"constant {np.shape(val)} does not broadcast "
                    f"to the tensor's shape {shape}")
        elif isinstance(op, (fg.AvgPool, fg.MaxPool)):
            _expect(len(shape) == 3 and all(k >= 1 for k in op.kernel) and all(s >= 1 for s in op.stride),
                    graph, name, "pooling needs an image input and positive kernel/stride")
        elif isinstance(op, fg.GlobalAvgPool):
            _expect(len(shape) == 3, graph, name, "global pooling of a non-image tensor")
        elif isinstance(op, fg.AdaptiveAvgPool):
            _expect(len(shape) == 3 and len(op.output_size) == 2 and all(o >= 1 for o in op.output_size),
                    graph, name, "adaptive pooling needs an image input and a positive output size")
        elif isinstance(op, fg.Add):
            _expect(shapes[ins[0]] == shapes[ins[1]], graph, name,
                    f"adds shapes {shapes[ins[0]]} and {shapes[ins[1]]}")
        if isinstance(op, fg.Input):
            shapes[name] = tuple(op.shape)
            _expect(all(d > 0 for d in op.shape), graph, name, "input has a zero-sized dimension")
            check_layer_size(op.shape, graph.where(name), "the input")
        else:
            shapes.update(_one(graph, name, shapes))
            check_layer_size(shapes[name], graph.where(name), "the output")
    return graph


def _one(graph: fg.FloatGraph, name: str, shapes: dict) -> dict:
    """Shape of one node from its inputs' shapes (via a tiny float evaluation)."""
    sub = fg.FloatGraph(source=graph.source, origin=graph.origin)
    ins = graph.inputs(name)
    for i, src in enumerate(ins):
        sub.add(f"__in{i}", fg.Input(shapes[src]))
    sub.add(name, graph.op(name), [f"__in{i}" for i in range(len(ins))])
    sub.output = name
    out = _eval_multi(sub, [shapes[s] for s in ins])
    _expect(all(d > 0 for d in out), graph, name, f"output shape {out} is empty (kernel larger than input?)")
    return {name: out}


def _eval_multi(sub: fg.FloatGraph, in_shapes: list) -> tuple:
    from ..ir.float_eval import output_shape
    name = sub.output
    try:
        return output_shape(sub.op(name), in_shapes)
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise NeurodeployError(f"cannot evaluate this op on its input ({first})", sub.where(name),
                               "check the layer's parameters against its input shape") from None
