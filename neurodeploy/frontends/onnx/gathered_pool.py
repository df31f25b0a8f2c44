"""The dynamo exporter's form of an adaptive average pool with non-uniform windows, read as one op.

`torch.onnx.export(dynamo=True)` decomposes `adaptive_avg_pool2d` whose output size does not divide
the input (VGG's 1x1 -> 7x7 at 32x32) into index arithmetic over the whole batch:

    Transpose(perm [2, 3, 0, 1]) -> GatherND(window indices) -> Transpose(perm [4, 5, 0, 1, 2, 3])
      -> Where(mask, 0, .) x 2 -> Gather / Add over the window elements -> Div(window sizes)

The first Transpose moves the batch axis (H, W, N, C), so no single node of it is an op on one sample.
The region as a whole is: every node in it reads, besides the region's own tensors, only constants,
and it ends in one tensor (N, C, oh, ow).  `find_regions` looks for such a region after each
Transpose that moves the batch axis of a 4-D tensor, runs it alone in onnxruntime on a one-hot input
(one channel per input position) to read its matrix, and accepts it only where that matrix is
PyTorch's adaptive average pooling to (oh, ow) (`passes.adaptive_pool.pooling_matrix`).  The front
end then reads the region as one `AdaptiveAvgPool` node standing for the region's last tensor, which
the proof compares with onnxruntime's value of that tensor in the model as exported, like every node.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...passes.adaptive_pool import pooling_matrix

MAX_REGION_NODES = 64           # the exporter's form has about 20 nodes for a 7x7 output


@dataclass
class Region:
    """Nodes (by index in the model) read as one adaptive pool of tensor `source` to `output_size`."""
    nodes: list[int]
    source: str
    output_size: tuple


def _consumers(model) -> dict[str, list[int]]:
    cons: dict[str, list[int]] = {}
    for i, node in enumerate(model.graph.node):
        for name in node.input:
            if name:
                cons.setdefault(name, []).append(i)
    return cons


def _closures(model, start: int, consts: dict, cons: dict, outputs: set, shapes: dict) -> list[list[int]]:
    """Regions from the Transpose at `start`, shortest first: node indices up to each node that
    closes one (every tensor made inside is read only inside, but that node's output, shaped
    (N, C, oh, ow) as the Transpose's input is (N, C, H, W)).  Growth stops at a node that reads
    another computed tensor."""
    nodes = model.graph.node
    n_c = tuple(shapes[nodes[start].input[0]][:2])
    region, made, found = [start], set(nodes[start].output), []
    for j in range(start + 1, min(len(nodes), start + MAX_REGION_NODES)):
        node = nodes[j]
        if not any(i in made for i in node.input):
            continue
        if any(i and i not in made and i not in consts for i in node.input):
            break                      # mixes the region with another computed tensor
        region.append(j)
        made.update(node.output)
        inside = set(region)
        open_tensors = {t for t in made if t in outputs or any(c not in inside for c in cons.get(t, []))}
        shape = shapes.get(node.output[0]) or ()
        if open_tensors == {node.output[0]} and len(node.output) == 1 and len(shape) == 4 and tuple(shape[:2]) == n_c:
            found.append(list(region))
    return found


def _matrix(model, region: list[int], source: str, in_shape: tuple, consts: dict) -> np.ndarray | None:
    """The region's output on a one-hot input (1, H·W, H, W), channel p one at position p:
    (H·W, oh, ow), or None."""
    import onnx
    from onnx import helper, numpy_helper

    from . import runtime
    nodes = [model.graph.node[j] for j in region]
    used = {i for n in nodes for i in n.input if i in consts}
    h, w = in_shape[2:]
    out = nodes[-1].output[0]
    graph = helper.make_graph(
        nodes, "region", [helper.make_tensor_value_info(source, onnx.TensorProto.FLOAT, [1, h * w, h, w])],
        [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(consts[name]), name) for name in sorted(used)])
    sub = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    x = np.eye(h * w, dtype=np.float32).reshape(1, h * w, h, w)
    try:
        (y,) = runtime.run(runtime.session(sub, threads=1), x, [out])
    except Exception:  # noqa: BLE001 -- not runnable alone (e.g. a reshape to the exported batch): not this form
        return None
    return y[0] if y.ndim == 4 else None


def find_regions(model, shapes: dict, consts: dict, batch: int) -> list[Region]:
    """Every region of a normalised model that computes an adaptive average pool through a
    Transpose of the batch axis (see the module docstring)."""
    cons = _consumers(model)
    outputs = {o.name for o in model.graph.output}
    regions = []
    for k, node in enumerate(model.graph.node):
        if node.op_type != "Transpose" or node.input[0] in consts:
            continue
        in_shape = shapes.get(node.input[0])
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        if in_shape is None or len(in_shape) != 4 or in_shape[0] != batch or perm is None or perm[0] == 0:
            continue
        h, w = in_shape[2:]
        for region in _closures(model, k, consts, cons, outputs, shapes):
            out_hw = tuple(int(s) for s in shapes[model.graph.node[region[-1]].output[0]][2:])
            m = _matrix(model, region, node.input[0], in_shape, consts)
            if m is None or m.shape != (h * w,) + out_hw:
                continue
            pooled = m.reshape(h * w, -1).T           # channel p held the one-hot at p: column p of P
            if np.allclose(pooled, pooling_matrix((h, w), out_hw), rtol=4 * 2.0 ** -24, atol=0.0):
                regions.append(Region(region, node.input[0], out_hw))
                break
    return regions
