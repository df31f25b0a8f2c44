"""The state of converting one exported program: the values flowing through it and where each came from.

`Context` (the converter's state: the float graph being built, the environment of fx values, the
module path and source line of every node for error messages), the values it holds (`Value`: a
float-graph node; `Selection`: a pending strided slice / zero channel pad) and the small argument
helpers the op handlers share.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import NeurodeployError, UnsupportedError
from ...ir import float_graph as fg

SUPPORTED_MODULES = ["Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "ReLU", "QCFS", "AvgPool2d",
                     "AdaptiveAvgPool2d", "MaxPool2d", "Flatten", "Identity", "Dropout"]
SUPPORTED_FUNCTIONS = ["a + b (residual add)", "x * c, x / c, x + c, x - c (c a constant)", "F.relu",
                       "torch.floor", "torch.clamp", "torch.flatten", "x.view/x.reshape(N, -1)",
                       "x.squeeze((2, 3)) of (N, C, 1, 1)", "x.mean((2, 3))", "x[:, c0:c1, ::s, ::s]", "F.pad(x, (0, 0, 0, 0, p0, p1)) (zero channels)"]


def supported_hint() -> str:
    return (f"supported modules: {', '.join(SUPPORTED_MODULES)}; "
            f"functions: {'; '.join(SUPPORTED_FUNCTIONS)}")


@dataclass
class Value:
    """A tensor computed by the float graph (node `name`)."""
    name: str


@dataclass
class Selection:
    """A pending strided slice / zero channel pad of graph node `src` (option-A shortcuts).

    Output channel o is input channel chan[o] (-1: a zero channel); rows and columns are
    taken every stride[0] / stride[1] starting at 0.  Materialised as a 1x1 Conv on use.
    """
    src: str
    c_in: int                    # channels of src
    chan: np.ndarray
    stride: tuple
    shape: tuple                 # per-sample output shape (C, H, W)
    fx_name: str                 # the node whose name the Conv takes
    made: str | None = None

    def is_identity(self) -> bool:
        return self.stride == (1, 1) and np.array_equal(self.chan, np.arange(self.c_in))


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
        """The graph node of a tensor value (materialising a pending selection)."""
        if isinstance(v, Selection):
            return self.materialise(v)
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

    def materialise(self, sel: Selection) -> str:
        if sel.made:
            return sel.made
        if sel.is_identity():
            sel.made = sel.src
            return sel.made
        w = np.zeros((len(sel.chan), sel.c_in, 1, 1))
        for o, c in enumerate(sel.chan):
            if c >= 0:
                w[o, c, 0, 0] = 1.0
        conv = fg.Conv(weight=w, bias=np.zeros(len(sel.chan)), stride=tuple(sel.stride), padding=(0, 0))
        sel.made = self.add(conv, [sel.src], fx_name=sel.fx_name).name
        self.graph.origin[sel.made] = "strided slice + zero channel pad as a fixed 1x1 Conv"
        return sel.made


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
