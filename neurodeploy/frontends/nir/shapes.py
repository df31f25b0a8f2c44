"""Shape inference for NIR graphs with gaps: every node's output shape, per sample.

Exporters leave holes that the graph itself fills (issue #15): snnTorch 1.0 and Norse 1.1
write a neuron with scalar parameters (a scalar ``beta``) as a node of shape ``()``; sinabs
leaves Conv2d/pooling/Flatten types empty; snnTorch keeps the batch dimension in the Input
type unless exported with ``ignore_dims=[0]``, sinabs the time dimension of its (batch,
time, ...) input.  Shapes propagate from the Input through the nodes that fix them
(Affine/Linear by their weight, Conv by weight and input, pooling, Flatten); a node whose own
fields are scalars takes its producer's shape.  An Input type with more dimensions than its
first shape-fixing consumer accepts loses the extra *leading* ones (they are the batch or time
axis) when the trailing ones match; each such reading is returned as a note and printed in the
compile summary.  Anything the graph does not determine is refused, naming the node.
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from ...errors import UnsupportedError
from .reader import RawGraph, RawNode

NEURONS = ("LIF", "CubaLIF", "IF", "LI", "I", "CubaLI", "Threshold")
_PARAM_OF = {"LIF": "v_threshold", "CubaLIF": "v_threshold", "IF": "v_threshold", "LI": "tau", "I": "r",
             "CubaLI": "tau_mem", "Threshold": "threshold", "Scale": "scale", "Delay": "delay"}
# nodes that pass a shape through when their own fields are scalars
ELEMENTWISE = NEURONS + ("Scale", "Delay", "Identity", "Output")


def _ints(v) -> tuple:
    return tuple(int(s) for s in np.asarray(v).ravel())


def _pair(v) -> tuple:
    t = _ints(v)
    return t * 2 if len(t) == 1 else t


def _conv_out(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _padding(node: RawNode, dims: int, where: str) -> tuple:
    p = node.get("padding")
    if isinstance(p, str):
        raise UnsupportedError(f"string padding '{p}'", where, "export with numeric padding")
    t = _ints(p) if p is not None else (0,) * dims
    return t * dims if len(t) == 1 else t


def _fits(shape: tuple, pattern: tuple) -> bool:
    """shape matches pattern, where None in the pattern matches any size."""
    return len(shape) == len(pattern) and all(p is None or p == s for s, p in zip(shape, pattern))


def own_shape(node: RawNode) -> tuple | None:
    """The shape a node's own fields fix for its *input* (None entries: sizes they leave open),
    or None when they fix none."""
    t = node.type
    if t in ("Affine", "Linear"):
        w = np.asarray(node.get("weight"))
        return (int(w.shape[-1]),) if w.ndim == 2 else None
    if t in ("Conv2d", "Conv1d"):
        w = np.asarray(node.get("weight"))
        groups = int(np.asarray(node.get("groups", 1)))
        spatial = node.get("input_shape")
        dims = 2 if t == "Conv2d" else 1
        if spatial is None or np.asarray(spatial).size == 0:
            return (int(w.shape[1]) * groups,) + (None,) * dims      # the channels only
        return (int(w.shape[1]) * groups,) + _ints(spatial)
    if t in _PARAM_OF:
        shape = tuple(np.asarray(node.get(_PARAM_OF[t])).shape)
        return shape or None
    if t == "Identity":
        s = node.get("shape")
        return _ints(s) if s is not None and np.asarray(s).size else None
    return None


def _output(node: RawNode, in_shape: tuple, where: str) -> tuple:
    t = node.type
    if t in ("Affine", "Linear"):
        w = np.asarray(node.get("weight"))
        if w.ndim != 2:
            raise UnsupportedError(f"{t} weight of shape {w.shape} (expected (out, in))", where)
        if in_shape != (w.shape[1],):
            raise UnsupportedError(f"{t} expects ({w.shape[1]},) inputs, gets {in_shape}", where,
                                   "flatten before a dense layer")
        return (int(w.shape[0]),)
    if t in ("Conv2d", "Conv1d"):
        dims = 2 if t == "Conv2d" else 1
        w = np.asarray(node.get("weight"))
        groups = int(np.asarray(node.get("groups", 1)))
        if len(in_shape) != dims + 1 or in_shape[0] != w.shape[1] * groups:
            raise UnsupportedError(f"{t} with {w.shape[1] * groups} input channels gets inputs {in_shape}", where)
        k = w.shape[2:]
        s = _ints(node.get("stride", 1)) * (dims if np.asarray(node.get("stride", 1)).size == 1 else 1)
        d = _ints(node.get("dilation", 1)) * (dims if np.asarray(node.get("dilation", 1)).size == 1 else 1)
        p = _padding(node, dims, where)
        return (int(w.shape[0]),) + tuple(_conv_out(in_shape[1 + i], k[i], s[i], p[i], d[i]) for i in range(dims))
    if t in ("SumPool2d", "AvgPool2d"):
        if len(in_shape) != 3:
            raise UnsupportedError(f"{t} gets inputs {in_shape} (expected (C, H, W))", where)
        k, s, p = _pair(node.get("kernel_size")), _pair(node.get("stride")), _pair(node.get("padding", 0))
        return (in_shape[0],) + tuple(_conv_out(in_shape[1 + i], k[i], s[i], p[i], 1) for i in range(2))
    if t == "Flatten":
        start, end = int(np.asarray(node.get("start_dim", 0))), int(np.asarray(node.get("end_dim", -1)))
        n = len(in_shape)
        a, b = start % n if n else 0, end % n if n else 0
        return in_shape[:a] + (int(np.prod(in_shape[a:b + 1])),) + in_shape[b + 1:]
    if t in ELEMENTWISE:
        mine = own_shape(node)
        if mine is not None and not _fits(in_shape, mine):
            raise UnsupportedError(f"{t} of shape {mine} gets inputs {in_shape}", where)
        return in_shape
    raise UnsupportedError(f"NIR node type '{t}' is not supported", where,
                           "supported: Affine, Linear, Conv1d, Conv2d, Flatten, SumPool2d, AvgPool2d, Scale, "
                           "Delay, LIF, CubaLIF, IF, LI, I, Threshold")


def _first_fixing(graph: RawGraph, start: str) -> tuple | None:
    """The input shape fixed by the first node downstream of `start` that fixes one (through
    nodes that only pass shapes on)."""
    seen, todo = set(), list(graph.consumers(start))
    while todo:
        n = todo.pop(0)
        if n in seen:
            continue
        seen.add(n)
        node = graph.nodes[n]
        mine = own_shape(node)
        if mine is not None:
            return mine
        if node.type in ELEMENTWISE:
            todo.extend(graph.consumers(n))
    return None


def topo_order(graph: RawGraph) -> list[str]:
    """The nodes in dependency order; a cycle (a recurrent edge) is refused here, naming it."""
    g = nx.DiGraph()
    g.add_nodes_from(graph.nodes)
    g.add_edges_from(graph.edges)
    try:
        return list(nx.lexicographical_topological_sort(g))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(g)
        path = " -> ".join([a for a, _ in cycle] + [cycle[0][0]])
        raise UnsupportedError(f"a recurrent loop ({path})", f"{graph.source}: node '{cycle[0][0]}'",
                               "the cuba scheme compiles feed-forward graphs; unroll or drop the recurrent "
                               "connection") from None


def infer_shapes(graph: RawGraph) -> tuple[dict, list[str]]:
    """{node: output shape per sample} and the notes on what was inferred (module docstring)."""
    shapes, notes = {}, []
    for name in topo_order(graph):
        node, where = graph.nodes[name], graph.where(name)
        ins = graph.inputs(name)
        if node.type == "Input":
            if ins:
                raise UnsupportedError("an Input node with incoming edges", where)
            declared = _ints(node.get("shape")) if node.get("shape") is not None else ()
            need = _first_fixing(graph, name)
            shape = declared
            if need is not None and not _fits(declared, need):
                tail = declared[len(declared) - len(need):] if len(declared) > len(need) else None
                if tail is not None and _fits(tail, need):
                    shape = tail
                    notes.append(f"input '{name}': the file declares {declared}; its leading "
                                 f"{declared[:len(declared) - len(need)]} is a batch/time axis the exporter kept "
                                 f"(the consumer takes {need}), read as {tail}")
                elif not declared and None not in need:
                    shape = need
                    notes.append(f"input '{name}': no shape in the file; {need} from its consumer")
                else:
                    raise UnsupportedError(f"the input declares {declared} but its consumer takes {need}", where)
            if not shape:
                raise UnsupportedError("the graph does not determine the input's shape", where,
                                       "export with an example input so that the Input node has a shape")
            shapes[name] = tuple(shape)
            continue
        if not ins:
            raise UnsupportedError("a node without inputs", where, "the file is not a complete NIR graph")
        in_shapes = {shapes[i] for i in ins}
        if len(in_shapes) != 1:
            raise UnsupportedError(f"inputs of different shapes {sorted(in_shapes)} meet here", where)
        (in_shape,) = in_shapes
        shapes[name] = _output(node, in_shape, where)
        if node.type in NEURONS and own_shape(node) is None:
            notes.append(f"{name}: {node.type} with scalar parameters; shape {in_shape} from its input")
    return shapes, notes
