"""Front-end passes every scheme runs first: layout ops as today's lowering can take them.

`drop_output_softmax` removes a Softmax/LogSoftmax that is the model's output (the readout
reports logits; argmax is unchanged) and says so in the graph's notes.  `select_as_conv` turns
a chain of Slice/Pad ops that only select channels, subsample H and W from the first row and
column, and pad channels with zeros -- the CIFAR ResNet "option A" shortcut,
F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p)) -- into one fixed 1x1 convolution with stride s and
a 0/1 weight (output channel o copies input channel c(o), or is 0 for a padded channel), no
bias: an op every scheme lowers; so does a channel permutation written as Reshape/Transpose ops
(ShuffleNet's channel shuffle).  `passes.fold_linear_layers` composes such convolutions into the
weighted layer that reads them.  Other layout ops stay, and a scheme that cannot lower them
refuses them by name.
"""
from __future__ import annotations

import numpy as np

from ..ir import float_graph as fg
from ..ir.float_eval import infer_shapes


def output_softmax(graph: fg.FloatGraph) -> bool:
    """The output is a Softmax/LogSoftmax over a sample's features (a classifier head; one inside
    a sample's map is not)."""
    return isinstance(graph.op(graph.output), fg.Softmax) and len(infer_shapes(graph)[graph.output]) == 1


def drop_output_softmax(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Requires: any graph.  Ensures: the output is not a Softmax/LogSoftmax over the features.
    Preserves: the argmax of the output (softmax and log-softmax are increasing per sample)."""
    if not output_softmax(graph):
        return graph
    out = graph.output
    op = graph.op(out)
    graph = graph.copy()
    graph.bypass(out)
    kind = "LogSoftmax" if op.log else "Softmax"
    graph.notes.append(f"the output {kind} was dropped: the network outputs logits (the argmax, the "
                       "predicted class, is unchanged; apply the softmax on the host where probabilities are needed)")
    return graph


class _Selection:
    """Output channel o = input channel chan[o] (-1: zero) of `src`, rows and columns every stride."""

    def __init__(self, src: str, c_in: int):
        self.src, self.c_in = src, c_in
        self.chan = np.arange(c_in)
        self.stride = [1, 1]

    def then(self, op, in_shape: tuple) -> "_Selection | None":
        """This selection followed by `op` (on a tensor of in_shape), or None if not a selection."""
        nxt = _Selection(self.src, self.c_in)
        nxt.chan, nxt.stride = self.chan.copy(), list(self.stride)
        if isinstance(op, fg.Slice):
            (c0, h0, w0), (c1, h1, w1), (cs, hs, ws) = op.starts, op.stops, op.steps
            for axis, (a, b, s) in enumerate(((h0, h1, hs), (w0, w1, ws)), start=1):
                size = in_shape[axis]
                if a != 0 or -(-b // s) != -(-size // s):      # not rows 0, s, 2s, ... to the end
                    return None
                nxt.stride[axis - 1] *= s
            nxt.chan = nxt.chan[c0:c1:cs]
            return nxt
        if isinstance(op, fg.Pad):
            (cb, ca), hp, wp = op.pads
            if op.value != 0.0 or any(hp) or any(wp):
                return None
            nxt.chan = np.concatenate([-np.ones(cb, np.int64), nxt.chan, -np.ones(ca, np.int64)])
            return nxt
        return None

    def conv(self) -> fg.Conv:
        w = np.zeros((len(self.chan), self.c_in, 1, 1))
        for o, c in enumerate(self.chan):
            if c >= 0:
                w[o, c, 0, 0] = 1.0
        return fg.Conv(weight=w, bias=np.zeros(len(self.chan)), stride=tuple(self.stride), padding=(0, 0))


def selections(graph: fg.FloatGraph) -> dict[str, _Selection]:
    """Slice/Pad node -> the selection its chain (up to it) makes, for every Slice/Pad on a
    (C, H, W) tensor that only selects channels, subsamples rows and columns or pads channels
    with zeros."""
    if not any(isinstance(op, fg.Slice) or (isinstance(op, fg.Pad) and op.value == 0.0)
               for op in map(graph.op, graph.g)):
        return {}       # (a max pool's -inf padding selects nothing: no shapes needed)
    shapes = infer_shapes(graph)
    selection: dict[str, _Selection] = {}
    for name in graph.topo_order():
        op = graph.op(name)
        if not isinstance(op, (fg.Slice, fg.Pad)):
            continue
        (src,) = graph.inputs(name)
        if len(shapes[src]) != 3:
            continue
        prev = selection.get(src) if len(graph.consumers(src)) == 1 else None
        start = prev or _Selection(src, shapes[src][0])
        sel = start.then(op, shapes[src])
        if sel is not None:
            selection[name] = sel
    return selection


def _channel_permutation(graph: fg.FloatGraph, name: str, shapes: dict) -> tuple[str, np.ndarray] | None:
    """(source, chan) where the chain of Reshape/Transpose ops ending at `name` (a (C, H, W) tensor)
    moves whole channels of the (C, H, W) tensor `source`: output channel o = source channel
    chan[o] -- ShuffleNet's channel shuffle, Reshape (g, C/g, H, W) -> Transpose (1, 0, 2, 3) ->
    Reshape (C, H, W).  Found by running the chain on the element indices of the source."""
    chain, node = [], name
    while isinstance(graph.op(node), (fg.Reshape, fg.Transpose)) and (node == name or len(graph.consumers(node)) == 1):
        chain.insert(0, node)
        (node,) = graph.inputs(node)
    if len(chain) < 2 or len(shapes[node]) != 3 or len(shapes[name]) != 3 or shapes[node][1:] != shapes[name][1:]:
        return None
    idx = np.arange(int(np.prod(shapes[node]))).reshape(shapes[node])
    for n in chain:
        op = graph.op(n)
        idx = idx.reshape(op.shape) if isinstance(op, fg.Reshape) else idx.transpose(op.perm)
    hw = int(np.prod(shapes[node][1:]))
    chan = idx[:, 0, 0] // hw
    if not np.array_equal(idx, (chan * hw).reshape(-1, 1, 1) + np.arange(hw).reshape(shapes[node][1:])):
        return None
    return node, chan


def _permutations_as_conv(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Every channel permutation made of Reshape/Transpose ops (`_channel_permutation`) as a fixed
    1x1 Conv with a 0/1 weight."""
    if not any(isinstance(graph.op(n), fg.Transpose) for n in graph.g):
        return graph
    shapes = infer_shapes(graph)
    graph = graph.copy()
    for name in graph.topo_order():
        found = _channel_permutation(graph, name, shapes) if isinstance(graph.op(name), fg.Reshape) else None
        if found is None:
            continue
        src, chan = found
        sel = _Selection(src, shapes[src][0])
        sel.chan = chan
        chain = [name]
        while chain[-1] != src:
            chain.append(graph.inputs(chain[-1])[0])
        graph.g.remove_edges_from(list(graph.g.in_edges(name)))
        graph.g.add_edge(src, name, port=0)
        graph.set_op(name, sel.conv())
        graph.origin[name] = "channel permutation (Reshape/Transpose) as a fixed 1x1 Conv"
        for n in chain[1:-1]:
            graph.g.remove_node(n)
    return graph


def select_as_conv(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Requires: shapes that infer.  Ensures: no chain of channel/stride selections and zero channel
    pads on (C, H, W) tensors is left; channel permutations written as Reshape/Transpose chains
    (ShuffleNet's channel shuffle) are 1x1 Convs too.  Preserves: the function, exactly (a 0/1
    weight copies)."""
    graph = _permutations_as_conv(graph)
    selection = selections(graph)
    if not selection:
        return graph
    graph = graph.copy()
    for name in reversed(graph.topo_order()):
        if name not in selection or name not in graph.g:
            continue
        if any(c in selection for c in graph.consumers(name)) and len(graph.consumers(name)) == 1:
            continue                       # not the end of its chain: its consumer absorbs it
        sel = selection[name]
        chain = []
        node = name
        while node != sel.src:
            chain.append(node)
            (node,) = graph.inputs(node)
        graph.g.remove_edges_from(list(graph.g.in_edges(name)))
        graph.g.add_edge(sel.src, name, port=0)
        graph.set_op(name, sel.conv())
        graph.origin[name] = "channel selection / strided slice / zero channel pad as a fixed 1x1 Conv"
        for n in chain[1:]:
            if not graph.consumers(n):
                graph.g.remove_node(n)
    return graph
