"""A float graph's max pooling as one spiking `MaxPool` op, padding included.

The front ends write ONNX's / PyTorch's max pooling as `fg.MaxPool` with symmetric padding, and
put asymmetric padding (ONNX pads whose begin and end differ, ceil_mode's partial windows at the
end) into a `fg.Pad` of -inf just before it.  Both kinds of padding never win, so they merge
into the one (top, bottom, left, right) padding of `ir.synapses.MaxPool`.  The spiking kernels pad
with 0 instead of -inf: the same max on values >= 0 (quantised codes, spike counts, unsigned
payloads) as long as every window holds a real element, which is checked here (PyTorch's
pad <= kernel / 2 guarantees it; an ONNX file need not).  Whether the values are >= 0 is the
caller's to know: each scheme's lowering says so for its own sources.
"""
from __future__ import annotations

import math

from ..errors import UnsupportedError
from ..ir import float_graph as fg
from ..ir import synapses as syn


def padding_before(graph: fg.FloatGraph, name: str) -> str | None:
    """The -inf `fg.Pad` node (spatial padding only) feeding the MaxPool `name`, or None."""
    (src,) = graph.inputs(name)[:1]
    op = graph.op(src)
    if isinstance(op, fg.Pad) and op.value == -math.inf and len(op.pads) == 3 and tuple(op.pads[0]) == (0, 0):
        return src
    return None


def pooled_source(graph: fg.FloatGraph, name: str) -> str:
    """The node whose values the MaxPool `name` pools, past a -inf padding node."""
    pad = padding_before(graph, name)
    return graph.inputs(pad if pad is not None else name)[0]


def spiking_maxpool(graph: fg.FloatGraph, name: str, src_shape: tuple) -> syn.MaxPool:
    """The `syn.MaxPool` of the float MaxPool `name` on a (C, H, W) source of `src_shape` (the
    shape of `pooled_source`), its -inf padding node merged in.  UnsupportedError for dilation
    and for a window that holds only padding."""
    op = graph.op(name)
    where = graph.where(name)
    if tuple(op.dilation) != (1, 1):
        raise UnsupportedError("dilated max pooling cannot be lowered", where, "use max pooling without dilation")
    ph, pw = op.padding
    top, bottom, left, right = ph, ph, pw, pw
    pad = padding_before(graph, name)
    if pad is not None:
        (_, (t, b), (l, r)) = graph.op(pad).pads
        top, bottom, left, right = top + t, bottom + b, left + l, right + r
    mp = syn.MaxPool(tuple(int(k) for k in op.kernel), tuple(int(s) for s in op.stride),
                     tuple(int(p) for p in (top, bottom, left, right)))
    problem = mp.window_problem(tuple(src_shape[1:]))
    if problem:
        raise UnsupportedError(f"max pooling where {problem}: the window's max is -inf", where,
                               "use padding of at most half the kernel (as PyTorch requires)")
    return mp


def refuse_max_pooling(graph: fg.FloatGraph, real_layers: list, what: str, hint: str) -> None:
    """For a scheme that cannot take a max of its spike trains: UnsupportedError naming the first
    float MaxPool node of the lowered `real_layers` (`RealBranch.max_pool_node`, a node of `graph`)
    and the spiking layer it pools for; nothing where no branch max-pools."""
    for rl in real_layers:
        for b in rl.branches:
            if b.max_pool_node:
                raise UnsupportedError(f"{what} (layer '{rl.name}')", graph.where(b.max_pool_node), hint)
