"""The state of converting one exported program: the values flowing through it and where each came from.

`Context` (the converter's state: the float graph being built, the environment of fx values, the
module path and source line of every node for error messages), the values it holds (`Value`: a
float-graph node) and the small argument helpers the op handlers share.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import NeurodeployError, UnsupportedError
from ...ir import float_graph as fg

SUPPORTED_MODULES = ["Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "ReLU", "ReLU6", "Hardtanh", "QCFS",
                     "AvgPool2d", "AdaptiveAvgPool2d", "MaxPool2d", "Flatten", "Identity", "Dropout", "Softmax"]
SUPPORTED_FUNCTIONS = ["a + b, a - b (residual joins)", "x * c, x / c, x + c, x - c (c a constant)", "F.relu",
                       "torch.floor", "torch.clamp", "torch.flatten", "x.view/x.reshape within a sample",
                       "x.squeeze/x.unsqueeze/x.permute/x.transpose within a sample", "x.mean((2, 3))",
                       "x[:, c0:c1, a::s, b::s]", "F.pad(x, ..., value=c)", "torch.cat", "torch.split/chunk",
                       "F.softmax/F.log_softmax"]

def supported_hint() -> str:
    return (f"supported modules: {', '.join(SUPPORTED_MODULES)}; "
            f"functions: {'; '.join(SUPPORTED_FUNCTIONS)}")


# --- values flowing through the exported graph ------------------------------------------
@dataclass
class Value:
    """A tensor computed by the float graph (node `name`)."""
    name: str


@dataclass
class NodeInfo:
    path: str            # module path ("" = the top-level forward)
    cls: str             # module class, short ("Conv2d")
    op: str              # ATen op, short ("conv2d")
    leaf: bool           # the module has no submodules in the graph
    run: int             # index of the contiguous run of nodes from one module call
    line: str = ""       # user source "file.py:12"


class Context:
    def __init__(self, graph: fg.FloatGraph, consts: dict, source: str):
        self.graph, self.consts, self.source = graph, consts, source
        self.env: dict = {}
        self.info: dict[str, NodeInfo] = {}
        self.node = None                    # fx node being converted
        self.created: list[str] = []        # graph nodes in creation order
        self.node_fx: dict[str, str] = {}   # graph node -> fx node it came from

    # -- where --------------------------------------------------------------------------
    def where(self, node=None) -> str:
        node = node or self.node
        inf = self.info.get(node.name)
        if inf is None:
            return self.source
        loc = f"module '{inf.path}' ({inf.cls})" if inf.path else f"top-level forward ({inf.cls})"
        if inf.line:
            loc += f" at {inf.line}"
        return f"{self.source}: {loc}"

    def unsupported(self, what: str, hint: str = "") -> UnsupportedError:
        return UnsupportedError(what, self.where(), hint or supported_hint())

    # -- arguments ----------------------------------------------------------------------
    def resolve(self, a):
        import torch.fx
        if isinstance(a, torch.fx.Node):
            if a.name not in self.env:
                raise NeurodeployError(f"value '{a.name}' is used before it is computed", self.where(),
                                       "the exported program is malformed; export it again")
            return self.env[a.name]
        if isinstance(a, (list, tuple)):
            return type(a)(self.resolve(v) for v in a)
        return a

    def tensor(self, v, what: str = "input") -> str:
        """The graph node of a tensor value."""
        if isinstance(v, Value):
            return v.name
        if v is None:
            raise self.unsupported(f"{what} is an unused output of another op (e.g. MaxPool indices)")
        raise self.unsupported(f"{what} must be a computed tensor, got a constant",
                               "only ops on the network's activations are converted")

    def const(self, v, what: str) -> np.ndarray:
        import torch
        if isinstance(v, torch.Tensor):
            return v.detach().cpu().to(torch.float64).numpy() if v.is_floating_point() else \
                v.detach().cpu().numpy().astype(np.float64)
        if isinstance(v, (bool, int, float)):
            return np.asarray(float(v), dtype=np.float64)
        raise self.unsupported(f"{what} must be a constant (a parameter, buffer or number), "
                               "got a computed tensor", "only weights fixed at compile time are supported")

    def shape(self, fx_arg) -> tuple:
        """Full shape (with batch) of an fx argument from export's metadata; None where symbolic."""
        val = fx_arg.meta.get("val") if hasattr(fx_arg, "meta") else None
        if val is None or not hasattr(val, "shape"):
            return ()
        return tuple(int(d) if isinstance(d, int) else None for d in val.shape)

    def out_shape(self) -> tuple:
        return self.shape(self.node)

    # -- building -----------------------------------------------------------------------
    def add(self, op, inputs: list[str], fx_name: str | None = None) -> Value:
        name = fx_name or self.node.name
        base, k = name, 1
        while name in self.graph.g:
            name, k = f"{base}_{k}", k + 1
        inf = self.info.get(fx_name or self.node.name)
        origin = f"aten.{inf.op}" if inf else type(op).__name__
        if inf and inf.cls:
            origin = f"{inf.cls}, {origin}"
        self.graph.add(name, op, inputs, origin=origin)
        self.created.append(name)
        self.node_fx[name] = fx_name or self.node.name
        return Value(name)

def pair(v, default=None) -> tuple:
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        return default
    if isinstance(v, int):
        return (int(v), int(v))
    v = tuple(int(x) for x in v)
    return v * 2 if len(v) == 1 else v


def bind_args(node) -> dict:
    """Arguments of an ATen call by schema name, defaults filled in (unresolved)."""
    schema = node.target._schema
    out = {}
    pos = [a for a in schema.arguments if not a.kwarg_only]
    for a, v in zip(pos, node.args):
        out[a.name] = v
    for a in schema.arguments:
        if a.name in node.kwargs:
            out[a.name] = node.kwargs[a.name]
        elif a.name not in out and a.has_default_value():
            out[a.name] = a.default_value
    return out


def rank(ctx, fx_arg) -> int:
    return len(ctx.shape(fx_arg))
