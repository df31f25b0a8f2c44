"""QCFS extraction: fuse elementwise chains around a Floor into one `QuantAct`."""
from __future__ import annotations

import math

import numpy as np

from ..errors import UnsupportedError
from ..ir import float_graph as fg

_ELEMENTWISE = (fg.Scale, fg.Shift, fg.Clip)
MAX_LEVELS = (1 << 20) - 1     # codes of at most 20 bits (T <= 20 time steps in bitplane)


class _Monotone:
    """clip(a*x + c, lo, hi) built up one elementwise op at a time (a > 0)."""

    def __init__(self):
        self.a, self.c = np.float64(1.0), np.float64(0.0)
        self.lo, self.hi = np.float64(-np.inf), np.float64(np.inf)

    def apply(self, op, where: str) -> None:
        if isinstance(op, (fg.Scale, fg.Shift)) and not fg.is_channel_constant(
                op.factor if isinstance(op, fg.Scale) else op.amount):
            raise UnsupportedError("a quantiser chain multiplies or shifts by a constant that varies along "
                                   "H or W (not per channel)", where, "use scalar or per-channel constants")
        if isinstance(op, fg.Scale):
            f = np.asarray(op.factor, dtype=np.float64)
            if np.any(f <= 0):
                raise UnsupportedError("quantiser chain multiplies by a non-positive constant", where)
            self.a, self.c, self.lo, self.hi = self.a * f, self.c * f, self.lo * f, self.hi * f
        elif isinstance(op, fg.Shift):
            d = np.asarray(op.amount, dtype=np.float64)
            self.c, self.lo, self.hi = self.c + d, self.lo + d, self.hi + d
        elif isinstance(op, fg.Clip):
            if op.lo is not None:
                self.lo = np.maximum(self.lo, op.lo)
            if op.hi is not None:
                self.hi = np.minimum(self.hi, op.hi)


def _uniform_int(values, what: str, where: str, rounding) -> int:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if not np.all(np.isfinite(arr)):
        raise UnsupportedError(f"quantiser has no finite {what} code", where,
                               "a QCFS activation needs a Clip on both sides")
    near = np.round(arr)
    arr = np.where(np.abs(arr - near) < 1e-6 * np.maximum(1, np.abs(near)), near, arr)
    ints = rounding(arr)
    if not np.all(ints == ints.flat[0]):
        raise UnsupportedError(f"quantiser {what} code differs between channels", where)
    return int(ints.flat[0])


def _chain_back(graph, start):
    chain = []
    node = start
    while True:
        (src,) = graph.inputs(node)
        if isinstance(graph.op(src), _ELEMENTWISE) and len(graph.consumers(src)) == 1:
            chain.insert(0, src)
            node = src
        else:
            return chain, src


def _chain_forward(graph, start):
    chain, node = [], start
    while len(graph.consumers(node)) == 1 and node != graph.output:
        (nxt,) = graph.consumers(node)
        if not isinstance(graph.op(nxt), _ELEMENTWISE):
            break
        chain.append(nxt)
        node = nxt
    return chain


def fuse_quant_act(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Recognise y = lam * clip(floor(x*Q/lam + 1/2)/Q, 0, 1) (and equivalent orders).

    Any chain of positive Mul/Div, Add/Sub of constants and Clips around one Floor is
    composed into code k = clip(floor(x*in_scale + offset), 0, Q), y = k*out_step; λ and Q
    are read off the constants (per channel where the constants are).  The clamp may come
    before or after the floor.  Preserves: the function, exactly on every input (floor is
    monotone, so clipping before or after it is the same on integer boundaries).
    """
    graph = graph.copy()
    for floor in graph.topo_order():
        if floor not in graph.g or not isinstance(graph.op(floor), fg.Floor):
            continue
        where = graph.where(floor)
        pre_chain, src = _chain_back(graph, floor)
        post_chain = _chain_forward(graph, floor)
        pre, post = _Monotone(), _Monotone()
        for n in pre_chain:
            pre.apply(graph.op(n), graph.where(n))
        for n in post_chain:
            post.apply(graph.op(n), graph.where(n))
        p, q = post.a, post.c
        with np.errstate(divide="ignore", invalid="ignore"):
            kmin = _uniform_int(np.maximum(np.floor(pre.lo), (post.lo - q) / p), "lowest", where, np.ceil)
            kmax = _uniform_int(np.minimum(np.floor(pre.hi), (post.hi - q) / p), "highest", where, np.floor)
        if kmax <= kmin:
            raise UnsupportedError(f"quantiser has no range (codes {kmin}..{kmax})", where)
        if kmax - kmin > MAX_LEVELS:
            raise UnsupportedError(f"quantiser with {kmax - kmin} levels (more than {MAX_LEVELS})", where,
                                   "check the QCFS level constant; spiking codes are at most 20 bits")
        zero = p * kmin + q
        if np.any(np.abs(zero) > 1e-9 * np.maximum(np.abs(p), 1e-30)):
            raise UnsupportedError("quantiser does not map its lowest code to 0", where,
                                   "only ReLU-like quantisers (QCFS) are supported")
        out_step = np.asarray(p, dtype=np.float64)
        op = fg.QuantAct(in_scale=np.asarray(pre.a, dtype=np.float64),
                         offset=np.asarray(pre.c - kmin, dtype=np.float64),
                         levels=kmax - kmin, out_step=out_step)
        last = post_chain[-1] if post_chain else floor
        for n in pre_chain + [floor] + post_chain:
            if n != last:
                graph.g.remove_node(n)
        graph.g.remove_edges_from(list(graph.g.in_edges(last)))
        graph.g.add_edge(src, last, port=0)
        graph.set_op(last, op)
        graph.origin[last] = "QCFS" if math.isclose(float(np.mean(op.offset)), 0.5) else "quantiser"
    return graph
