"""The ONNX front end's proof: the float graph against onnxruntime, tensor by tensor (see
`frontends.proof` for the method and the round-off bound).

onnxruntime runs the file as read (after `normalise.inference_mode`, which the float graph
follows too) with graph optimisations disabled, every tensor that a float-graph node stands for
added as an output, on the probe inputs.
"""
from __future__ import annotations

import numpy as np

from ...errors import NeurodeployError
from ...ir import float_graph as fg
from ..proof import probe_inputs, prove
from . import qonnx, runtime


def reference_values(model, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """onnxruntime's value of every tensor in `names` that the model has, on x (the qonnx
    executor's for a QONNX model)."""
    import onnx
    if qonnx.uses_qonnx(model):
        return qonnx.reference_values(model, names, x)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o for n in m.graph.node for o in n.output}
    current = {o.name for o in m.graph.output}
    wanted = [n for n in dict.fromkeys(names) if n in have]
    for name in wanted:
        if name not in current:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    try:
        sess = runtime.session(m)
        outs = runtime.run(sess, x, wanted, batch_size=len(x))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise NeurodeployError(f"onnxruntime cannot run the model: {first}", "", "re-export the model") from None
    return dict(zip(wanted, outs))


def prove_onnx(graph: fg.FloatGraph, tensor_of: dict[str, str], model, probe: np.ndarray | None = None) -> dict:
    """Raise `ProofError` at the first float-graph node whose value differs from onnxruntime's
    beyond float round-off; returns {node: max |difference|} for the nodes compared."""
    (inp,) = graph.input_nodes()
    x = probe_inputs(graph.op(inp).shape, probe)
    names = {node: t for node, t in tensor_of.items() if node != inp}
    try:
        values = reference_values(model, list(names.values()), x)
    except NeurodeployError as exc:
        raise NeurodeployError(exc.what, graph.source, exc.hint) from None
    reference = {node: values[t] for node, t in names.items() if t in values}
    return prove(graph, x, reference, names, "the qonnx executor" if qonnx.uses_qonnx(model) else "onnxruntime")
