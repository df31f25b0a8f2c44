"""The float graph: what every front end produces and the conversion passes rewrite.

A `FloatGraph` is a networkx DiGraph whose nodes carry one small op dataclass each (`op`
attribute) and whose edges carry the input position (`port`).  Tensors are per sample, the
batch dimension is implicit: shapes are (C, H, W) or (F,).  Parameters are float64 numpy
arrays in PyTorch layout (Conv weight OIHW, Dense weight (out, in)).

The front end does not know about schemes; passes (neurodeploy/passes) fold and fuse ops
until only the ops a scheme can lower remain.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np


# --- ops --------------------------------------------------------------------------------
@dataclass
class Input:
    """The network input, shape without the batch dimension."""
    shape: tuple


@dataclass
class Conv:
    """y = conv2d(x, weight, stride, padding, dilation, groups) + bias (cross-correlation)."""
    weight: np.ndarray                 # (C_out, C_in/groups, kH, kW)
    bias: np.ndarray                   # (C_out,)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)            # symmetric (top/bottom, left/right)
    dilation: tuple = (1, 1)
    groups: int = 1


@dataclass
class Dense:
    """y = weight @ x + bias."""
    weight: np.ndarray                 # (out, in)
    bias: np.ndarray                   # (out,)


@dataclass
class BatchNorm:
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel (axis 0)."""
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def scale_shift(self, bias=0.0) -> tuple[np.ndarray, np.ndarray]:
        """(s, c) with BN(y + bias) = s·y + c per channel: s = gamma / sqrt(var + eps) and
        c = s·(bias − mean) + beta, in float64.  The one BatchNorm folding formula (passes.fold_bn,
        reverb's fold, the float evaluation, nn.export.fold_batchnorm)."""
        s = np.asarray(self.gamma, np.float64) / np.sqrt(np.asarray(self.var, np.float64) + self.eps)
        return s, s * (np.asarray(bias, np.float64) - self.mean) + self.beta


@dataclass
class Relu:
    """y = max(x, 0)."""


@dataclass
class QuantAct:
    """A uniform quantised activation (QCFS and its relatives).

    code k = clip(floor(x * in_scale + offset), 0, levels);  y = k * out_step.
    QCFS with threshold lam and Q levels is in_scale = Q/lam, offset = 1/2, out_step = lam/Q.
    `in_scale` and `out_step` are scalars or per-channel arrays (C,).
    """
    in_scale: np.ndarray
    offset: np.ndarray
    levels: int
    out_step: np.ndarray


@dataclass
class Flatten:
    """(C, H, W) -> (C*H*W,) in C, H, W order (PyTorch's flatten)."""


@dataclass
class AvgPool:
    """Average over kernel windows (zero padding, symmetric); count_include_pad as in ONNX/PyTorch:
    the divisor is the window size, or only the window's elements inside the input."""
    kernel: tuple
    stride: tuple
    padding: tuple = (0, 0)
    count_include_pad: bool = True
    dilation: tuple = (1, 1)


@dataclass
class AdaptiveAvgPool:
    """(C, H, W) -> (C, oh, ow), PyTorch's adaptive_avg_pool2d: output row i averages input rows
    floor(i·H/oh) .. ceil((i+1)·H/oh) - 1 (columns alike).  Front ends use it only where the
    windows are not uniform (upsampling 1x1 -> 7x7, overlapping 5x5 -> 7x7); uniform ones are an
    AvgPool or a GlobalAvgPool.  `passes.fold_adaptive_pool` folds it into the weighted layer after it."""
    output_size: tuple


@dataclass
class GlobalAvgPool:
    """(C, H, W) -> (C, 1, 1) mean over H and W."""


@dataclass
class MaxPool:
    """Max over kernel windows; padded positions never win (padding with -inf, as ONNX/PyTorch)."""
    kernel: tuple
    stride: tuple
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)


@dataclass
class Add:
    """Elementwise sum of two inputs of equal shape (a residual join)."""


@dataclass
class Scale:
    """y = x * factor (a Mul/Div by a constant).

    factor: a scalar (), per channel (C,) (axis 0), or, for a constant that varies along other
    axes, an array of the tensor's per-sample rank broadcast numpy-style (e.g. (1, 1, W))."""
    factor: np.ndarray


@dataclass
class Shift:
    """y = x + amount (an Add of a constant); amount shaped as Scale.factor."""
    amount: np.ndarray


def is_channel_constant(a) -> bool:
    """A Scale/Shift constant that is a scalar or per channel (what lowering and the passes fold)."""
    return np.ndim(a) <= 1


@dataclass
class Floor:
    """y = floor(x)."""


@dataclass
class Clip:
    """y = clip(x, lo, hi); None = unbounded."""
    lo: float | None
    hi: float | None


# --- layout ops: they move or select values, never compute new ones ------------------------
# Axes are per-sample axes (0 = channels of a (C, H, W) tensor); the batch axis never appears.
@dataclass
class Slice:
    """y = x[start0:stop0:step0, start1:stop1:step1, ...]: one (start, stop, step) per axis,
    resolved against the input shape (0 <= start <= stop <= size, step >= 1)."""
    starts: tuple
    stops: tuple
    steps: tuple


@dataclass
class Pad:
    """Constant padding: pads[axis] = (before, after) >= 0 elements of `value` per axis."""
    pads: tuple
    value: float = 0.0


@dataclass
class Concat:
    """Join the inputs (in port order) along `axis`."""
    axis: int


@dataclass
class Reshape:
    """Relabel the per-sample tensor to `shape` (C order, as numpy/ONNX/PyTorch)."""
    shape: tuple


@dataclass
class Transpose:
    """y = x.transpose(perm) over the per-sample axes."""
    perm: tuple


@dataclass
class Softmax:
    """y = softmax(x) along `axis` (log=True: log_softmax)."""
    axis: int = 0
    log: bool = False


LAYOUT_OPS = (Flatten, Slice, Pad, Concat, Reshape, Transpose)

OP_TYPES = {cls.__name__: cls for cls in (
    Input, Conv, Dense, BatchNorm, Relu, QuantAct, Flatten, AvgPool, AdaptiveAvgPool, GlobalAvgPool, MaxPool,
    Add, Scale, Shift, Floor, Clip, Slice, Pad, Concat, Reshape, Transpose, Softmax)}


# --- graph ------------------------------------------------------------------------------
@dataclass
class FloatGraph:
    """Ops connected by tensors; `output` names the node whose value the model returns."""
    g: nx.DiGraph = field(default_factory=nx.DiGraph)
    output: str = ""
    source: str = ""            # where it came from (file path), for error messages
    origin: dict = field(default_factory=dict)   # node name -> original op name (e.g. ONNX op_type)
    notes: list = field(default_factory=list)    # what the front end or a pass changed that users
                                                 # should read (e.g. an output Softmax dropped)

    def add(self, name: str, op, inputs: list[str] = (), origin: str = "") -> str:
        if name in self.g:
            raise ValueError(f"duplicate node name {name}")
        inputs = list(inputs)
        for port, src in enumerate(inputs):
            if src in inputs[:port]:
                # one edge per pair of nodes: a repeated input (x + x, concat(x, x)) goes through
                # an identity relay
                relay = f"{name}_in{port}"
                self.add(relay, Scale(np.asarray(1.0)), [src], origin="repeated input")
                inputs[port] = relay
        self.g.add_node(name, op=op)
        for port, src in enumerate(inputs):
            self.g.add_edge(src, name, port=port)
        if origin:
            self.origin[name] = origin
        return name

    def op(self, name: str):
        return self.g.nodes[name]["op"]

    def set_op(self, name: str, op) -> None:
        self.g.nodes[name]["op"] = op

    def inputs(self, name: str) -> list[str]:
        preds = [(d["port"], p) for p, _, d in self.g.in_edges(name, data=True)]
        return [p for _, p in sorted(preds)]

    def consumers(self, name: str) -> list[str]:
        return sorted(self.g.successors(name))

    def topo_order(self) -> list[str]:
        return list(nx.lexicographical_topological_sort(self.g))

    def input_nodes(self) -> list[str]:
        return [n for n in self.topo_order() if isinstance(self.op(n), Input)]

    def where(self, name: str) -> str:
        origin = self.origin.get(name)
        label = f"node '{name}'" + (f" ({origin})" if origin else "")
        return f"{self.source}: {label}" if self.source else label

    def bypass(self, name: str) -> None:
        """Remove a single-input node, connecting its input to all its consumers."""
        (src,) = self.inputs(name)
        for dst in self.consumers(name):
            port = self.g.edges[name, dst]["port"]
            self.g.add_edge(src, dst, port=port)
        if self.output == name:
            self.output = src
        self.g.remove_node(name)

    def copy(self) -> "FloatGraph":
        return FloatGraph(self.g.copy(), self.output, self.source, dict(self.origin), list(self.notes))
