"""An average pool before the readout as a layer of its own, where the readout cannot hold it.

Lowering folds an average pool into the weighted op that reads it: ResNet-20's 8x8 global pool
followed by its 64 -> 10 Linear becomes one readout of 4,096 synapses per output, weight w/64
each.  A scheme whose readout accumulates every synaptic input in one state register (`rate`:
Σ_t W·s(t) over T steps; `sws`: the weighted potential Σ β^(Tc−τ)·W·d(τ)) must hold the worst
case Σ_i |W_i| · code_max in that register, and the 64 copies of each weight multiply Σ|W| by
64 while each copy needs its own resolution w/64: on Loihi 2 (a 24-bit state, 8-bit weight
mantissas) the weights then round to a code step or two, or to 0.  Moving the 1/64 into the
weight exponent does not help (the state holds the same sums), and a negative weight exponent
floors every step's partial sum in Lava's Dense (`a_accum >> -weight_exp`), which has no
integer-reference meaning.

What fits is what the QCFS/rate-coding papers' SNNs do with a pool anyway: let the pool's
neurons produce codes.  `split_readout_pool` inserts a quantiser after the pool, with the
pooled activation's own step and level count, so the pool becomes one more spiking layer
(weight 1/64 of a code step per pixel, i.e. a threshold of 64 pixel-codes: code =
floor(mean code + 1/2)), and the readout reads C pooled codes instead of C·H·W pixels.  The
quantised ANN the SNN is compared with then rounds the pooled mean to the activation's step
(at most half a step per channel); nothing is approximated that verify does not measure.

`lower_fitting_readout` is the scheme-independent decision: lower, ask the scheme whether its
readout fits (its own quantiser, `readout_fits`), and only where it does not and such a pool
exists, lower the split graph.  A readout that fits stays folded (no change to any network
that compiled before); one that still does not fit is refused naming the float node.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import TargetLimitError
from ..ir import float_graph as fg
from .lower import RealInput, RealLayer, lower

SUFFIX = "/pooled_codes"


def readout_pool(graph: fg.FloatGraph) -> str | None:
    """The average pool whose values the readout (the graph output, a Conv/Gemm) reads through
    Flatten/Reshape only, pooling a quantised activation and read by nothing else; None if none."""
    node = graph.output
    if not isinstance(graph.op(node), (fg.Dense, fg.Conv)):
        return None
    (node,) = graph.inputs(node)[:1]
    while isinstance(graph.op(node), (fg.Flatten, fg.Reshape)) and len(graph.consumers(node)) == 1:
        (node,) = graph.inputs(node)[:1]
    op = graph.op(node)
    if not isinstance(op, (fg.AvgPool, fg.GlobalAvgPool)) or len(graph.consumers(node)) != 1:
        return None
    (src,) = graph.inputs(node)[:1]
    return node if isinstance(graph.op(src), fg.QuantAct) else None


def split_readout_pool(graph: fg.FloatGraph) -> fg.FloatGraph | None:
    """A copy of `graph` with a quantiser after `readout_pool` (code = floor(pooled / step + 1/2),
    the pooled activation's step and levels: the mean of codes 0..Q stays in 0..Q), or None."""
    pool = readout_pool(graph)
    if pool is None:
        return None
    (src,) = graph.inputs(pool)[:1]
    q = graph.op(src)
    step = np.asarray(q.out_step, dtype=np.float64)
    out = graph.copy()
    name = pool + SUFFIX
    consumers = [(dst, out.g.edges[pool, dst]["port"]) for dst in out.consumers(pool)]
    out.add(name, fg.QuantAct(in_scale=1.0 / step, offset=np.asarray(0.5), levels=int(q.levels), out_step=step),
            [pool], origin="pooled codes (the readout's average pool as a layer)")
    for dst, port in consumers:
        out.g.remove_edge(pool, dst)
        out.g.add_edge(name, dst, port=port)
    return out


def lower_fitting_readout(graph: fg.FloatGraph, readout_fits: Callable[[RealLayer, dict], object],
                          check_layers: Callable[[list[RealLayer]], None] | None = None
                          ) -> tuple[RealInput, list[RealLayer], str | None]:
    """(input, layers, the pool node given its own layer or None): `lower(graph)`, or, where
    `readout_fits(readout, shapes)` raises TargetLimitError and the readout reads an average pool,
    `lower` of `split_readout_pool(graph)`.  `shapes` maps every layer name to its shape.  A
    readout that does not fit either way is refused naming its float node.

    `check_layers(layers)`, the scheme's structural refusals (an op it cannot run, e.g. max
    pooling), runs first: a user who fixed the readout's weights would otherwise meet it next."""
    enc, layers = lower(graph)
    if check_layers is not None:
        check_layers(layers)
    try:
        readout_fits(layers[-1], _shapes(enc, layers))
        return enc, layers, None
    except TargetLimitError as exc:
        first = exc
    split = split_readout_pool(graph)
    if split is None:
        raise _refusal(graph, layers[-1], first, "")
    enc, layers = lower(split)
    try:
        readout_fits(layers[-1], _shapes(enc, layers))
    except TargetLimitError as exc:
        raise _refusal(graph, layers[-1], exc, f", also with its average pool '{readout_pool(graph)}' as a layer")
    return enc, layers, readout_pool(graph)


def _shapes(enc: RealInput, layers: list[RealLayer]) -> dict:
    return {enc.name: enc.shape, **{l.name: l.shape for l in layers}}


def _refusal(graph: fg.FloatGraph, readout: RealLayer, exc: TargetLimitError, tried: str) -> TargetLimitError:
    """The readout's refusal, naming its float node (the user's Gemm/Conv) and the spiking layer."""
    return TargetLimitError(f"layer '{readout.name}'{tried}: {exc.what}", graph.where(readout.float_node),
                            exc.hint)
