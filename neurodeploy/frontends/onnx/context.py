"""What every ONNX handler shares: the registry (op type -> handler and the attributes it
understands) and `Ctx`, the handler's view of the node, its constants, the static shapes of the
normalised model, and the float graph being built."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import NeurodeployError, UnsupportedError
from ...ir import float_graph as fg


DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})


@dataclass
class Handler:
    fn: object
    attrs: frozenset        # every attribute the handler reads; any other one is refused
    domains: frozenset = DEFAULT_DOMAINS    # the op domains it reads the op type in


HANDLERS: dict[str, Handler] = {}


def handler(*op_types, attrs=(), domains=DEFAULT_DOMAINS):
    """Register `fn(node, ctx)` for op types; `attrs` are the attributes it understands, `domains`
    the op domains (default: the standard ONNX one; QONNX's `Quant` lives in a custom domain)."""
    def register(fn):
        for t in op_types:
            HANDLERS[t] = Handler(fn, frozenset(attrs), frozenset(domains))
        return fn
    return register


def supported_ops() -> list[str]:
    """Op types read, those of a custom domain with it: 'Quant (qonnx.custom_op.general, ...)'."""
    return sorted(t if h.domains == DEFAULT_DOMAINS else f"{t} ({', '.join(sorted(h.domains))})"
                  for t, h in HANDLERS.items())


def attrs(node) -> dict:
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def ints(values, default=None) -> tuple | None:
    if values is None:
        return default
    return tuple(int(v) for v in values)


class Ctx:
    """A handler's view: the node, its constants, static shapes, the graph being built."""

    def __init__(self, graph: fg.FloatGraph, consts: dict, shapes: dict, batch: int, path: str):
        self.graph, self.consts, self.shapes, self.batch, self.path = graph, consts, shapes, batch, path
        self.alias: dict[str, str] = {}        # ONNX tensor -> graph node that computes it
        # integer tensors of QuantizeLinear on a computed tensor, waiting for their
        # DequantizeLinear (tensor name -> qdq.PendingQuant); they are not graph nodes
        self.pending: dict = {}
        self.uses: dict[str, int] = {}         # ONNX tensor -> number of node inputs reading it
        self.outputs: set[str] = set()         # the graph's output tensors

    # -- where ---------------------------------------------------------------------------
    def where(self, node) -> str:
        return f"{self.path}: node '{node.name or node.output[0]}' ({node.op_type})"

    def refuse(self, node, what: str, hint: str = "") -> UnsupportedError:
        return UnsupportedError(what, self.where(node), hint)

    # -- tensors -------------------------------------------------------------------------
    def tensor(self, name: str) -> str:
        """Graph node that produces ONNX tensor `name`."""
        if name in self.pending:
            q = self.pending[name]
            raise UnsupportedError(
                f"the integer output '{name}' of QuantizeLinear is used by an op other than "
                "DequantizeLinear (an integer/QLinear op)", q.where,
                "export QuantizeLinear -> DequantizeLinear pairs (QDQ format), not QOperator ops")
        return self.alias[name]

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, node, index: int, what: str) -> np.ndarray:
        if index >= len(node.input) or node.input[index] == "":
            raise UnsupportedError(f"missing {what} input", self.where(node), "export with constant parameters")
        name = node.input[index]
        if name not in self.consts:
            raise UnsupportedError(
                f"{what} must be a constant (initializer or Constant), got a computed tensor '{name}'",
                self.where(node), "export the model with its parameters as initializers")
        return self.consts[name]

    def optional_const(self, node, index: int, what: str):
        """A constant input that may be absent (None)."""
        if index >= len(node.input) or node.input[index] == "":
            return None
        return self.const(node, index, what)

    def shape(self, node, name: str) -> tuple:
        """Full static shape (batch first) of ONNX tensor `name` in the normalised model."""
        shape = self.shapes.get(name)
        if shape is None:
            raise UnsupportedError(f"tensor '{name}' has no static shape", self.where(node),
                                   "export with fixed input sizes (only the batch may be dynamic)")
        return shape

    def sample_shape(self, node, name: str) -> tuple:
        """Per-sample shape; refuses a tensor whose first axis is not the batch."""
        shape = self.shape(node, name)
        if not shape or shape[0] != self.batch:
            raise self.refuse(node, f"tensor '{name}' of shape {list(shape)} does not keep the batch as its "
                              f"first axis (the batch is {self.batch} here)",
                              "only ops that act on each sample separately are supported")
        return tuple(shape[1:])

    def per_sample_axis(self, node, axis: int, rank: int, what: str = "axis") -> int:
        """An ONNX axis (batch = 0, negative from the end) as a per-sample axis; refuses the batch."""
        a = int(axis) + rank if int(axis) < 0 else int(axis)
        if not 0 <= a < rank:
            raise NeurodeployError(f"{what} {axis} out of range for rank {rank}", self.where(node), "re-export the model")
        if a == 0:
            raise self.refuse(node, f"{node.op_type} along the batch axis", "only ops within a sample are supported")
        return a - 1

    # -- building ------------------------------------------------------------------------
    def add(self, node, op, inputs: list[str], output: int = 0, suffix: str = "") -> str:
        """Add a graph node computing ONNX output `output` of `node` (or an inner step, `suffix`)."""
        name = (node.name or node.output[0]) + suffix
        base, k = name, 1
        while name in self.graph.g:
            name, k = f"{base}_{k}", k + 1
        self.graph.add(name, op, inputs, origin=node.op_type)
        if not suffix:
            self.alias[node.output[output]] = name
        return name

    def same(self, node, src: str, output: int = 0) -> None:
        """ONNX output `output` of `node` is the value of graph node `src` (an identity)."""
        self.alias[node.output[output]] = src
