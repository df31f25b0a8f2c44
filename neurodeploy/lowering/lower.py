"""Lowering: cut the float graph at its activations into layers with real-valued synapses.

Every quantised activation (and the graph output) becomes one layer; everything linear
between activations (Conv, Dense, pooling, Flatten, residual Add, channel Concat, constant
scales and shifts) becomes that layer's *branches*, one per source activation, with at most
one weighted op each.  A Concat needs no neurons of its own: the Conv/Gemm that reads it is
linear in each part, so each part becomes a branch carrying its slice of that op's weights
(see `Placement`).  Weights come out in units of the target layer's code step: the layer
computes  U_real = sum_b branch_b(code_source) + bias,  code = clip(floor(U_real), 0, Q).
For the readout the unit is the ANN's own output unit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UnsupportedError
from ..ir import float_graph as fg
from ..ir import synapses as syn
from ..ir.spiking import InputEncoder
from ..ir.float_eval import infer_shapes
from ..passes import check, is_input_padding
from ..passes.linear_fold import why_not
from .maxpool import pooled_source, spiking_maxpool


@dataclass(frozen=True)
class Placement:
    """Where a branch's values sit in a Concat's output: elements [start, stop) of its axis 0 (channels,
    or features once flattened) out of `total`; the other elements are other branches' parts.  The
    weighted op after the Concat reads only its slice of input channels/columns, which ends the
    placement."""
    start: int
    stop: int
    total: int
    node: str                       # the (outermost) Concat node, for refusals

    def part(self, arr) -> np.ndarray:
        """This branch's slice of a scalar or axis-0 constant of the concatenated tensor."""
        arr = np.asarray(arr, dtype=np.float64)
        return arr if arr.size == 1 else arr[self.start:self.stop]

    def flattened(self, in_shape: tuple) -> "Placement":
        """The placement after Flatten of a (C, H, W) tensor: channels -> contiguous features."""
        hw = int(np.prod(in_shape[1:]))
        return Placement(self.start * hw, self.stop * hw, self.total * hw, self.node)


@dataclass
class RealBranch:
    source: str
    ops: list                       # synapse ops with float64 weights
    out_scale: np.ndarray = field(default_factory=lambda: np.float64(1.0))  # applied after ops
    weighted: bool = False
    place: Placement | None = None  # set between a Concat and the weighted op that reads it
    read_by: str = ""               # the Conv/Gemm node that read this branch as a Concat's part
    max_pool_node: str = ""         # the float MaxPool node this branch pools by (for refusals)


@dataclass
class RealLayer:
    name: str
    shape: tuple
    branches: list
    bias: np.ndarray                # real, in code-step units (per channel or per feature)
    quant: fg.QuantAct | None       # None for the readout
    float_node: str


@dataclass
class RealInput:
    name: str
    shape: tuple                    # of the codes (padded)
    quant: fg.QuantAct
    float_node: str
    pad: tuple = (0, 0, 0, 0)       # (top, bottom, left, right): zeros the host pads the input with

    def encoder(self, neuron) -> InputEncoder:
        """The IR input encoder of this quantiser, with the scheme's encoder neuron."""
        q = self.quant
        return InputEncoder(self.name, self.shape, np.asarray(q.in_scale), np.asarray(q.offset),
                            np.asarray(q.out_step), neuron, float_node=self.float_node, pad=self.pad)


def _expand_to_features(arr: np.ndarray, shape: tuple) -> np.ndarray:
    """Per-channel (C,) or scalar -> per-feature for a (C, H, W) tensor being flattened."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 0:
        return arr
    c = shape[0]
    return np.repeat(arr.reshape(c), int(np.prod(shape[1:])))


def _conv_input_scale(s: np.ndarray, weight: np.ndarray, groups: int) -> np.ndarray:
    """A per-input-channel scale as a factor on the conv weight (C_out, C_in/groups, 1, 1)."""
    if s.ndim == 0:
        return s
    c_out, c_in_g = weight.shape[:2]
    per_group = s.reshape(groups, c_in_g)                       # input channels by group
    return np.repeat(per_group, c_out // groups, axis=0).reshape(c_out, c_in_g, 1, 1)


def _arity(op) -> int | None:
    """How many inputs an op's terms combine (None: all of them)."""
    return 2 if isinstance(op, fg.Add) else None if isinstance(op, fg.Concat) else 1


def _overlap(branches: list) -> bool:
    """Whether two branches add into the same elements (a residual sum), rather than each filling
    its own part of a Concat."""
    if len(branches) < 2:
        return False
    if any(b.place is None for b in branches):
        return True
    spans = sorted((b.place.start, b.place.stop) for b in branches)
    return any(a_stop > b_start for (_, a_stop), (b_start, _) in zip(spans, spans[1:]))


class _Lowering:
    def __init__(self, graph: fg.FloatGraph):
        self.graph = graph
        self.shapes = infer_shapes(graph)

    def is_source(self, name: str) -> bool:
        return isinstance(self.graph.op(name), fg.QuantAct)

    def terms(self, name: str):
        """(branches, bias) such that value(name) = sum(branch(code_src)) + bias.

        The expression below `name` is walked back to its sources (quantisers) with an explicit
        stack, not by recursion: a chain of thousands of ops must not exhaust Python's stack.  It is
        walked as a tree (a node reached along two paths is expanded once per path), so that each
        path gets its own branch objects, which `_apply` then extends in place."""
        results: list = []                       # the terms of the nodes finished so far, in order
        stack = [(name, False)]
        while stack:
            node, inputs_done = stack.pop()
            op = self.graph.op(node)
            if self.is_source(node) or isinstance(op, fg.Input):
                results.append(self._leaf(node))
            elif not inputs_done:
                stack.append((node, True))
                ins = [pooled_source(self.graph, node)] if isinstance(op, fg.MaxPool) \
                    else self.graph.inputs(node)[:_arity(op)]
                stack.extend((i, False) for i in reversed(ins))      # ins[0] is finished first
            else:
                k = len(self.graph.inputs(node)[:_arity(op)])
                args = results[-k:]
                del results[-k:]
                results.append(self._apply(node, args))
        (out,) = results
        return out

    def _leaf(self, name: str):
        op = self.graph.op(name)
        if isinstance(op, fg.Input):
            raise UnsupportedError("the raw input reaches a layer without a quantiser", self.graph.where(name))
        return [RealBranch(name, [], np.asarray(op.out_step, dtype=np.float64))], np.float64(0.0)

    def _apply(self, name: str, args: list):
        """The terms of `name` from its inputs' terms `args` (one per input)."""
        g, op = self.graph, self.graph.op(name)
        where = g.where(name)
        ins = g.inputs(name)
        if isinstance(op, fg.Add):
            (b1, c1), (b2, c2) = args
            return b1 + b2, np.asarray(c1) + np.asarray(c2)
        if isinstance(op, fg.Concat):
            return self._concat(name, op, args)
        ((branches, bias),) = args
        in_shape = self.shapes[ins[0]]
        if isinstance(op, (fg.Scale, fg.Shift)) and not fg.is_channel_constant(
                op.factor if isinstance(op, fg.Scale) else op.amount):
            raise UnsupportedError(f"{g.origin.get(name, type(op).__name__)} by a constant that varies along H or W "
                                   "(not per channel) cannot be lowered", where,
                                   "use a scalar or per-channel constant")
        if isinstance(op, (fg.Conv, fg.Dense)):
            if np.any(bias) or any(b.weighted for b in branches):
                # passes.fold_linear_layers composed every linear layer it could into its reader
                why = why_not(g, name)
                raise UnsupportedError(("a bias or shift reaches a Conv/Gemm without an activation in between"
                                        if np.any(bias) else "two weighted layers follow each other without an "
                                        "activation") + (f" ({why})" if why else ""), where,
                                       "insert a quantised activation (QCFS) between them, or read the linear "
                                       "layer with a 1x1 unpadded Conv (or Flatten -> Gemm after a 1x1 one), "
                                       "which composes with it")
            for b in branches:
                s = np.asarray(b.out_scale, dtype=np.float64)
                w = op.weight if b.place is None else self._weight_part(name, op, b.place)
                if isinstance(op, fg.Conv):
                    w = w * _conv_input_scale(s, w, op.groups)
                    b.ops.append(syn.Conv(w, tuple(op.stride), tuple(op.padding), tuple(op.dilation), op.groups))
                else:
                    w = w * (s.reshape(1, -1) if s.ndim else s)
                    b.ops.append(syn.Dense(w))
                b.read_by = name if b.place is not None else ""
                b.out_scale, b.weighted, b.place = np.float64(1.0), True, None
            return branches, op.bias.copy()
        if isinstance(op, fg.Flatten):
            for b in branches:
                b.ops.append(syn.Flatten())
                own_shape = in_shape if b.place is None else (b.place.stop - b.place.start,) + tuple(in_shape[1:])
                b.out_scale = _expand_to_features(b.out_scale, own_shape)
                b.place = None if b.place is None else b.place.flattened(in_shape)
            return branches, _expand_to_features(bias, in_shape)
        if isinstance(op, fg.MaxPool) and _overlap(branches):
            raise UnsupportedError("MaxPool of a sum of branches (the max of a sum is not the sum of maxima)",
                                   where, "put a quantised activation between the Add and the MaxPool")
        if isinstance(op, (fg.AvgPool, fg.GlobalAvgPool)):
            if isinstance(op, fg.GlobalAvgPool):
                kernel, stride, pad = tuple(in_shape[1:]), tuple(in_shape[1:]), (0, 0)
            else:
                kernel, stride, pad = op.kernel, op.stride, op.padding
            if any(pad) or tuple(getattr(op, "dilation", (1, 1))) != (1, 1):
                raise UnsupportedError("padded or dilated average pooling cannot be lowered", where,
                                       "use average pooling without padding or dilation")
            for b in branches:
                b.ops.append(syn.SumPool(tuple(kernel), tuple(stride), (0, 0)))
                b.out_scale = b.out_scale / float(np.prod(kernel))
            return branches, bias
        if isinstance(op, fg.MaxPool):
            # directly after a quantised activation the values are codes >= 0 times a positive
            # step, so the window max of the codes is the max of the values, and padding (which
            # never wins) may be zeros (lowering.maxpool)
            mp = spiking_maxpool(g, name, self.shapes[pooled_source(g, name)])
            for b in branches:
                if b.ops or not np.all(np.asarray(b.out_scale) > 0):
                    raise UnsupportedError("MaxPool is exact only directly after a quantised activation",
                                           where, "move the MaxPool after the activation or use AvgPool")
                b.ops.append(mp)
                b.max_pool_node = name
            return branches, bias
        if isinstance(op, fg.Scale):
            f = np.asarray(op.factor, dtype=np.float64)
            for b in branches:
                b.out_scale = b.out_scale * (f if b.place is None else b.place.part(f))
            return branches, np.asarray(bias) * f
        if isinstance(op, fg.Shift):
            return branches, np.asarray(bias) + np.asarray(op.amount)
        if isinstance(op, fg.BatchNorm):
            raise UnsupportedError("BatchNorm left after folding", where)
        if isinstance(op, fg.AdaptiveAvgPool):     # passes.fold_adaptive_pool found no layer to fold it into
            raise UnsupportedError(
                f"adaptive average pooling of a {in_shape[1]}x{in_shape[2]} map to {op.output_size[0]}x"
                f"{op.output_size[1]} (windows not uniform) is not read only by a Linear or a Conv it folds into",
                where, "follow it by Flatten -> Linear (or a Conv whose kernel covers its output), or pool to a size "
                       "that divides the input size")
        raise UnsupportedError(f"{type(op).__name__} cannot be lowered to spiking layers", where,
                               "the network must alternate linear ops (Conv, Gemm, pooling, residual adds) and "
                               "quantised activations; this op is read and proven by the front end but has no "
                               "spiking synapse yet")

    def _concat(self, name: str, op: fg.Concat, args: list):
        """The terms of a Concat: each input's branches placed at its slice of axis 0, biases joined."""
        ins = self.graph.inputs(name)
        if op.axis != 0:
            raise UnsupportedError("a Concat along H or W cannot be lowered", self.graph.where(name),
                                   "concatenate along channels (or flattened features)")
        total = self.shapes[name][0]
        branches, biases, start = [], [], 0
        for src, (part_branches, part_bias) in zip(ins, args):
            n = self.shapes[src][0]
            for b in part_branches:
                inner = b.place or Placement(0, n, n, name)
                b.place = Placement(start + inner.start, start + inner.stop, total, name)
            branches += part_branches
            biases.append(np.broadcast_to(np.asarray(part_bias, dtype=np.float64), (n,)))
            start += n
        return branches, np.concatenate(biases)

    def _weight_part(self, name: str, op, place: Placement) -> np.ndarray:
        """The slice of a Conv's input channels / a Dense's input columns that one Concat part feeds."""
        if isinstance(op, fg.Conv) and op.groups != 1:
            raise UnsupportedError(f"a grouped Conv reading Concat '{place.node}' cannot be lowered",
                                   self.graph.where(name), "use groups=1 for the convolution after a Concat")
        return op.weight[:, place.start:place.stop]

    def layer(self, name: str, value_node: str, quant: fg.QuantAct | None) -> RealLayer:
        """Layer computing the code of `quant` applied to value(value_node)."""
        branches, bias = self.terms(value_node)
        placed = [b.place.node for b in branches if b.place is not None]
        if placed:
            reader, fix = (("the network's output", "end the network with a Conv/Gemm readout after it")
                           if quant is None else ("a quantised activation", "put a Conv/Gemm between them"))
            raise UnsupportedError(f"a Concat reaches {reader} without a Conv/Gemm in between "
                                   "(a Concat is lowered into the Conv/Gemm that reads it)",
                                   self.graph.where(placed[0]), fix)
        shape = self.shapes[value_node]
        a = np.float64(1.0) if quant is None else np.asarray(quant.in_scale, dtype=np.float64)
        c = np.float64(0.0) if quant is None else np.asarray(quant.offset, dtype=np.float64)
        out_ch = shape[0]
        for b in branches:
            if not b.weighted:   # identity-like path: a diagonal weight
                scale = np.broadcast_to(np.asarray(b.out_scale, dtype=np.float64), (out_ch,)) \
                    if np.asarray(b.out_scale).ndim <= 1 and np.asarray(b.out_scale).size in (1, out_ch) else None
                if scale is None:
                    raise UnsupportedError("a skip connection with a non-channel scale", self.graph.where(name))
                b.ops.append(syn.ChannelScale(scale.copy()))
                b.out_scale, b.weighted = np.float64(1.0), True
            total = np.asarray(b.out_scale, dtype=np.float64) * a
            total = np.broadcast_to(total, (out_ch,)) if total.ndim == 0 else total
            if total.shape != (out_ch,):
                raise UnsupportedError("a per-feature scale that is not per channel", self.graph.where(name))
            w = syn.weighted_op(b.ops)
            c_w = w.weight.shape[0]
            if total.size != c_w:
                # a Flatten after the weighted op: per-feature scales must be uniform per channel
                per = total.reshape(c_w, -1) if total.size % c_w == 0 else None
                if per is None or not np.allclose(per, per[:, :1]):
                    raise UnsupportedError("a per-feature scale after a flattened convolution",
                                           self.graph.where(name), "use a per-channel or scalar quantiser")
                total = per[:, 0]
            shape_w = (-1,) + (1,) * (w.weight.ndim - 1)
            w.weight = w.weight * total.reshape(shape_w)
            b.out_scale = np.float64(1.0)
        bias = np.broadcast_to(np.asarray(bias, dtype=np.float64) * a + c, (out_ch,)).copy()
        return RealLayer(name, shape, branches, bias, quant, name)


REQUIRES = ("bn_folded", "quantisers_fused", "input_quantised")


def lower(graph: fg.FloatGraph) -> tuple[RealInput, list[RealLayer]]:
    """Float graph (BN folded, quantisers fused, the input quantised) -> input encoder + layers,
    topologically."""
    check(graph, REQUIRES, "lower requires")
    low = _Lowering(graph)
    (inp,) = graph.input_nodes()
    cons = graph.consumers(inp)
    pad = (0, 0, 0, 0)
    if len(cons) == 1 and is_input_padding(graph.op(cons[0])):   # the host pads (lowering.input_quant)
        (_, (top, bottom), (left, right)) = graph.op(cons[0]).pads
        pad, cons = (top, bottom, left, right), graph.consumers(cons[0])
    if len(cons) != 1 or not isinstance(graph.op(cons[0]), fg.QuantAct):
        raise UnsupportedError("the input is not followed by exactly one quantiser", graph.where(inp))
    enc = RealInput(cons[0], low.shapes[cons[0]], graph.op(cons[0]), cons[0], pad)
    layers = []
    for name in graph.topo_order():
        op = graph.op(name)
        if isinstance(op, fg.QuantAct) and name != enc.name:
            (src,) = graph.inputs(name)
            layers.append(low.layer(name, src, op))
    out = graph.output
    if isinstance(graph.op(out), fg.QuantAct):
        raise UnsupportedError("the model ends in a quantised activation", graph.where(out),
                               "end the model with a linear readout layer (Gemm/Conv)")
    layers.append(low.layer(out, out, None))
    _rename(enc, layers)
    return enc, layers


def _rename(enc: RealInput, layers: list[RealLayer]) -> None:
    """Readable layer names (input, conv1, conv2, dense1, ..., readout); float_node keeps the origin."""
    names = {enc.name: "input"}
    counts: dict[str, int] = {}
    for layer in layers[:-1]:
        kinds = {type(syn.weighted_op(b.ops)).__name__ for b in layer.branches}
        readers = {b.read_by for b in layer.branches}
        summed = len(layer.branches) > 1 and (len(readers) != 1 or "" in readers)   # not one op's Concat parts
        kind = "add" if summed else {"Conv": "conv", "Dense": "dense"}.get(kinds.pop(), "scale")
        counts[kind] = counts.get(kind, 0) + 1
        names[layer.name] = f"{kind}{counts[kind]}"
    names[layers[-1].name] = "readout"
    enc.name = "input"
    for layer in layers:
        layer.name = names[layer.name]
        for b in layer.branches:
            b.source = names[b.source]
