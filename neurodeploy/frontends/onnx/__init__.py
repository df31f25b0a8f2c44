"""ONNX front end: an .onnx file -> `FloatGraph`, proven against onnxruntime.

    read (checker) -> inference mode -> normalise (normalise.py: opset, static batch, folded
    constants, static shapes) -> handlers (handlers.py, layout.py, qdq.py, qonnx.py; one per op
    type; gathered_pool.py reads the dynamo exporter's index arithmetic for a non-uniform adaptive
    average pool as one op) -> check_shapes -> proof (proof.py: our float graph vs onnxruntime -- or, for QONNX
    files, which onnxruntime cannot run, the qonnx package's executor -- tensor by tensor)

Anything outside the supported ops and attributes stops compilation with the op, the node and
what to do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import NeurodeployError, UnsupportedError
from ...ir import float_graph as fg
from ...passes.check_shapes import check_shapes
from . import handlers as _handlers, layout as _layout, qdq as _qdq, qonnx as _qonnx  # noqa: F401  (register the handlers)
from .context import HANDLERS, Ctx, supported_ops
from .gathered_pool import find_regions
from .normalise import inference_mode, normalise

__all__ = ["HANDLERS", "load_onnx", "read_model", "model_sha256", "supported_ops", "build_graph"]


def model_sha256(path: str | Path) -> str:
    from ...fsutil import file_sha256
    return file_sha256(path)


def read_model(path: str | Path):
    """Read and check an ONNX file (no normalisation)."""
    import onnx
    path = str(path)
    if not Path(path).is_file():
        raise NeurodeployError("file not found", path, "check the path to the model")
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf DecodeError and friends
        raise NeurodeployError(f"not a readable ONNX file ({type(exc).__name__})", path,
                               "pass a model saved with torch.onnx.export or onnx.save") from None
    if not model.graph.node:
        raise NeurodeployError("the ONNX graph has no nodes", path, "pass a model saved with onnx.save")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise NeurodeployError(f"invalid ONNX model: {first}", path, "re-export the model") from None
    return model


def _check_finite(name: str, arr: np.ndarray, path: str, users: dict) -> None:
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        raise NeurodeployError(
            f"parameter '{name}' holds {bad} NaN/Inf value(s)", f"{path}: node '{users.get(name, '?')}'",
            "retrain or repair the model; the compiler cannot quantise non-finite weights")


def _check_node(node, ctx) -> None:
    entry = HANDLERS.get(node.op_type)
    if entry is None or node.domain not in entry.domains:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        what = f"unsupported op {op}"
        hint = f"supported ONNX ops: {', '.join(supported_ops())}"
        if node.domain in ("", "ai.onnx") and node.op_type in _handlers.NONLINEAR:
            what += f" ({_handlers.NONLINEAR[node.op_type]}, a non-linearity)"
            hint = f"{_handlers.NONLINEAR_HINT}; {hint}"
        raise UnsupportedError(what, ctx.where(node), hint)
    unknown = sorted(a.name for a in node.attribute if a.name not in entry.attrs)
    if unknown:
        raise UnsupportedError(f"unknown attribute(s) {', '.join(unknown)} on {node.op_type}", ctx.where(node),
                               f"{node.op_type} is read with {', '.join(sorted(entry.attrs)) or 'no attributes'}; "
                               "re-export without the others")
    for i in node.input:
        if i and i not in ctx.alias and i not in ctx.consts and i not in ctx.pending:
            raise NeurodeployError(f"input tensor '{i}' is produced by no node", ctx.where(node),
                                   "the model is malformed; re-export it")


def build_graph(model, shapes: dict, batch: int, path: str) -> tuple[fg.FloatGraph, dict]:
    """The float graph of a normalised model, and {graph node: ONNX tensor whose value it holds}."""
    import networkx as nx
    from onnx import numpy_helper

    graph = fg.FloatGraph(source=path)
    users = {}
    for node in model.graph.node:
        for i in node.input:
            users.setdefault(i, node.name or node.output[0])
    consts = {}
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        _check_finite(init.name, arr, path, users)
        consts[init.name] = arr
    ctx = Ctx(graph, consts, shapes, batch, path)
    for node in model.graph.node:
        for i in node.input:
            ctx.uses[i] = ctx.uses.get(i, 0) + 1
    ctx.outputs = {o.name for o in model.graph.output}
    (inp,) = [i for i in model.graph.input if i.name not in consts]
    graph.add("input", fg.Input(tuple(shapes[inp.name][1:])), origin="graph input")
    ctx.alias[inp.name] = "input"
    # the dynamo exporter's gather-based adaptive pools, each read as one node (gathered_pool.py)
    pools = {r.nodes[-1]: r for r in find_regions(model, shapes, consts, batch)}
    inside = {j for r in pools.values() for j in r.nodes}
    for j, node in enumerate(model.graph.node):
        if j in pools:
            r = pools[j]
            name = ctx.add(node, fg.AdaptiveAvgPool(r.output_size), [ctx.tensor(r.source)])
            graph.origin[name] = f"adaptive average pooling, {len(r.nodes)} index/gather nodes of the export"
            continue
        if j in inside:
            continue
        _check_node(node, ctx)
        try:
            HANDLERS[node.op_type].fn(node, ctx)
        except NeurodeployError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, AttributeError, ZeroDivisionError) as exc:
            # a node whose attributes or constants do not have the form its op requires
            raise NeurodeployError(f"malformed {node.op_type} node ({type(exc).__name__}: {exc})",
                                   ctx.where(node), "re-export the model") from None
        for out in node.output:
            if out in consts:
                _check_finite(out, consts[out], path, users)
            elif out and (ctx.uses.get(out) or out in ctx.outputs) and out not in shapes:
                raise UnsupportedError(f"tensor '{out}' has no static shape after shape inference", ctx.where(node),
                                       "export with fixed input sizes (only the batch may be dynamic)")
    if len(model.graph.output) != 1:
        raise UnsupportedError(f"the model has {len(model.graph.output)} outputs; exactly one is supported", path)
    out = model.graph.output[0].name
    if out in ctx.pending:
        raise UnsupportedError("the model output is the integer output of a QuantizeLinear",
                               ctx.pending[out].where, "end the model with a DequantizeLinear (or no quantiser)")
    if out not in ctx.alias:
        raise UnsupportedError("the model output is a constant", path)
    graph.output = ctx.alias[out]
    if graph.output == "input":
        raise UnsupportedError("the model returns its input", path)
    # drop nodes that do not feed the output (e.g. unused branches)
    keep = nx.ancestors(graph.g, graph.output) | {graph.output}
    graph.g.remove_nodes_from([n for n in list(graph.g) if n not in keep])
    tensor_of = {}
    for tensor, name in ctx.alias.items():     # the last ONNX tensor aliasing a node holds its final value
        if name in graph.g:
            tensor_of[name] = tensor
    return graph, tensor_of


def load_onnx(path: str | Path, probe: np.ndarray | None = None, prove: bool = True) -> fg.FloatGraph:
    """Read, normalise and convert an ONNX file; with `prove`, check the float graph against
    onnxruntime on `probe` (samples shaped like the input; default: seeded random inputs)."""
    path = str(path)
    model = read_model(path)
    notes = inference_mode(model)
    normalised, shapes, batch = normalise(model, path)
    graph, tensor_of = build_graph(normalised, shapes, batch, path)
    graph.notes.extend(notes)
    graph = check_shapes(graph)
    if prove:
        from .proof import prove_onnx
        prove_onnx(graph, tensor_of, model, probe)
    return graph
