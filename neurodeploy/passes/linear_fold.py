"""Compose linear weighted layers (Conv + BatchNorm with no activation after it) into their readers.

MobileNetV2's inverted residual ends in a *linear* bottleneck: a 1x1 projection Conv + BN with no
activation, summed into a residual stream x_{k+1} = x_k + proj_k(h_k) that the next block's 1x1
expand Conv (+BN+ReLU6) reads.  ShuffleNetV2's depthwise 3x3 Conv + BN has no activation either and
is read by a 1x1 Conv + BN + ReLU.  A spiking layer is a set of weighted branches from activations
(`lowering.lower`), so a weighted layer reading another weighted layer has no neurons to put between
them.  But both are linear, and so is everything between them (BN, residual Add): the reader's
value is a sum of one weighted op per activation source, each the *composition* of the reader with
the producer on that path, computed exactly in real arithmetic:

* reader 1x1 (stride s, no padding), producer (k, stride sp, padding p, dilation d, groups):
  W[o, i, :, :] = sum_c Wr[o, c]·Wp[c, i, :, :], a conv with the producer's kernel, padding and
  dilation and stride sp·s (the reader at position j reads the producer at s·j, which reads the
  input at sp·s·j - p + d·t; the output sizes agree since floor(floor(A/sp)/s) = floor(A/(sp·s)));
* reader k x k (or a Gemm after Flatten: a kernel covering the map), producer 1x1 with stride 1 and
  no padding: W[o, i, :, :] = sum_c Wr[o, c, :, :]·Wp[c, i], the reader's geometry;
* bias: br + sum over the reader's kernel of Wr·(bp + the BN shifts on the path) -- exact where the
  reader has no padding (every tap it sums is a producer output, bias included); a padded reader
  composes only with producers and BNs that add nothing (a pointwise producer maps its zero padding
  to zeros): the fixed selection and permutation convolutions of `passes.layout`, bias-free convs;
* grouped and depthwise weights are expanded to dense ones, composed, and regrouped into the
  largest grouping that holds their nonzero weights (a depthwise producer read by a dense 1x1 gives
  a dense k x k conv); a term no output reads (all zeros) is dropped;
* a residual Add splits the path (nested Adds recursively), a channel Concat too (each part with its
  columns of the weight): one composed op per source reached; a BatchNorm on the path is a
  per-channel scale and shift; the walk goes on through composed producers (ShuffleNet: a 1x1 reading
  a channel split of a channel shuffle of a Concat of a depthwise conv's input and an activation) and
  ends at any other op, the term's source.

The reader becomes the sum of its terms (`Add` nodes: the lowering makes them one layer's branches);
the linear layers no other op reads are removed.  Everything else stays as it is, and the lowering
refuses it naming the node and what to do (`why_not`): a padded k x k reader of a linear layer with a
bias (its padded border would see zeros where the composed op sees the bias) or another geometry, a
linear value read by a pool, a non-linear op or the network output.  The composed weights are
computed in float64 and sum other products than the source framework does, so the pass runs after
the front end's proof (`FRONT_END_PASSES`), like `fold_adaptive_pool`; exactness is relative to the
composed graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import float_graph as fg
from ..ir.float_eval import infer_shapes


@dataclass
class Term:
    """One weighted op of the composition: `weight` (O, I, kh, kw), dense, in float64, reading
    `source` with the given geometry."""
    source: str
    weight: np.ndarray
    stride: tuple
    padding: tuple
    dilation: tuple

    def reading(self, source: str, weight: np.ndarray | None = None) -> "Term":
        return Term(source, self.weight if weight is None else weight, self.stride, self.padding, self.dilation)


def dense_weight(op: fg.Conv) -> np.ndarray:
    """A (grouped) conv's weight as a dense (O, I, kh, kw) array (zeros across groups)."""
    o, i_g = op.weight.shape[:2]
    g, o_g = op.groups, o // op.groups
    w = np.zeros((o, i_g * g) + op.weight.shape[2:])
    for k in range(g):
        w[k * o_g:(k + 1) * o_g, k * i_g:(k + 1) * i_g] = op.weight[k * o_g:(k + 1) * o_g]
    return w


def regroup(weight: np.ndarray) -> tuple[np.ndarray, int]:
    """(grouped weight (O, I/g, kh, kw), g): the largest g whose block diagonal holds every nonzero
    weight (exact: the weights left out are zeros)."""
    mask = np.any(weight != 0, axis=(2, 3))
    o, i = mask.shape
    for g in sorted((d for d in range(1, np.gcd(o, i) + 1) if o % d == 0 and i % d == 0), reverse=True):
        blocks = mask.reshape(g, o // g, g, i // g).any(axis=(1, 3))
        if not np.any(blocks & ~np.eye(g, dtype=bool)):
            o_g, i_g = o // g, i // g
            parts = [weight[k * o_g:(k + 1) * o_g, k * i_g:(k + 1) * i_g] for k in range(g)]
            return np.ascontiguousarray(np.concatenate(parts)), g
    raise AssertionError("g = 1 always holds")


@dataclass
class Reader:
    """A weighted node and the value it reads: `end` is where its value is complete (its BN, if
    its only reader is one), `value` the node whose output its weights read."""
    node: str
    end: str
    value: str


def _reader(graph: fg.FloatGraph, name: str) -> Reader | None:
    """The weighted node `name` as a reader whose path leads to a linear Conv, or None."""
    op = graph.op(name)
    if not isinstance(op, (fg.Conv, fg.Dense)):
        return None
    (src,) = graph.inputs(name)
    if isinstance(op, fg.Dense):
        flat = graph.op(src)         # a Flatten, or a Reshape to one axis (of a (C, H, W) tensor: `expand`)
        if not (isinstance(flat, fg.Flatten) or (isinstance(flat, fg.Reshape) and len(flat.shape) == 1)):
            return None
        (src,) = graph.inputs(src)
    if not _reaches_producer(graph, src):
        return None
    cons = graph.consumers(name)
    end = cons[0] if (len(cons) == 1 and name != graph.output and isinstance(graph.op(cons[0]), fg.BatchNorm)) \
        else name
    return Reader(name, end, src)


def _start(graph: fg.FloatGraph, r: Reader, shapes: dict) -> tuple[Term, np.ndarray]:
    """The reader's own weights (with its BN folded) as a term reading `r.value`, and its bias."""
    op = graph.op(r.node)
    if isinstance(op, fg.Dense):                 # a Gemm after Flatten: a conv whose kernel covers the map
        c, h, w = shapes[r.value]
        term = Term(r.value, op.weight.reshape(-1, c, h, w).astype(np.float64), (1, 1), (0, 0), (1, 1))
    else:
        term = Term(r.value, dense_weight(op), tuple(op.stride), tuple(op.padding), tuple(op.dilation))
    bias = np.asarray(op.bias, dtype=np.float64)
    if r.end != r.node:
        s, bias = graph.op(r.end).scale_shift(bias)
        term.weight = term.weight * s.reshape(-1, 1, 1, 1)
    return term, bias


def _compose(term: Term, p: fg.Conv, source: str) -> Term | str:
    """The term with producer `p` (reading `source`) composed into it, or why it cannot be.  (A
    producer's bias under a padded reader is refused before: `expand`.)"""
    wp = dense_weight(p)
    k_reader = term.weight.shape[2:]
    if k_reader == (1, 1) and not any(term.padding):
        w = np.einsum("oc,cikl->oikl", term.weight[:, :, 0, 0], wp)
        stride = (p.stride[0] * term.stride[0], p.stride[1] * term.stride[1])
        return Term(source, w, stride, tuple(p.padding), tuple(p.dilation))
    if wp.shape[2:] == (1, 1) and tuple(p.stride) == (1, 1) and not any(p.padding):
        # a pointwise producer without bias maps the reader's zero padding to zeros: padding is fine
        return term.reading(source, np.einsum("ockl,ci->oikl", term.weight, wp[:, :, 0, 0]))
    return (f"a {k_reader[0]}x{k_reader[1]} reader{' with padding' if any(term.padding) else ''} of a "
            f"{wp.shape[2]}x{wp.shape[3]} convolution with stride {tuple(p.stride)} and padding {tuple(p.padding)} "
            "does not compose into one convolution (only a 1x1 unpadded reader, or a 1x1 stride-1 unpadded "
            "producer, does)")


_LINEAR = (fg.Conv, fg.BatchNorm, fg.Add, fg.Concat)


def _reaches_producer(graph: fg.FloatGraph, value: str) -> bool:
    """Whether a Conv is reached from `value` through BatchNorms, Adds and Concats only (cheap:
    before any weights are expanded)."""
    stack = [value]
    while stack:
        op = graph.op(stack[-1])
        if isinstance(op, fg.Conv):
            return True
        node = stack.pop()
        if isinstance(op, _LINEAR):
            stack.extend(graph.inputs(node))
    return False


def expand(graph: fg.FloatGraph, r: Reader, shapes: dict) -> tuple[list[Term], np.ndarray] | str | None:
    """The reader's value as terms (one weighted op per source) + a bias; a reason (str) where a
    linear producer on its path cannot be composed into it; None where none is on its path.

    The path is walked back from the reader through BatchNorms (a per-channel scale and shift),
    residual Adds (each input its own path), channel Concats (each part with its columns of the
    weight) and linear Convs (composed: channel selections, permutations, projections, depthwise
    convolutions), as far as these go; the node where it stops is the term's source."""
    if isinstance(graph.op(r.node), fg.Dense) and len(shapes[r.value]) != 3:
        return None                              # a Flatten of features: nothing to compose into
    term, bias = _start(graph, r, shapes)
    terms, stack = [], [(r.value, term)]
    while stack:
        node, t = stack.pop()
        op = graph.op(node)
        ins = graph.inputs(node)
        if isinstance(op, fg.Add):
            stack.extend((src, t.reading(src)) for src in reversed(ins))
        elif isinstance(op, fg.Concat) and op.axis == 0 and len(shapes[node]) == 3:
            bounds = np.cumsum([0] + [shapes[src][0] for src in ins])
            stack.extend((src, t.reading(src, t.weight[:, a:b])) for src, a, b in
                         reversed(list(zip(ins, bounds[:-1], bounds[1:]))))
        elif isinstance(op, (fg.BatchNorm, fg.Conv)):
            shift = op.scale_shift()[1] if isinstance(op, fg.BatchNorm) else np.asarray(op.bias, dtype=np.float64)
            if np.any(shift) and any(t.padding):
                return _padding_reason(t, node)
            bias = bias + np.einsum("ockl,c->o", t.weight, shift)
            if isinstance(op, fg.BatchNorm):
                stack.append((ins[0], t.reading(ins[0], t.weight * op.scale_shift()[0].reshape(1, -1, 1, 1))))
                continue
            composed = _compose(t, op, ins[0])
            if isinstance(composed, str):
                return f"the linear layer '{node}' (no activation after it) cannot be composed into it: {composed}"
            stack.append((ins[0], composed))
        else:
            terms.append(t.reading(node))
    return terms, bias


def _padding_reason(t: Term, node: str) -> str:
    kh, kw = t.weight.shape[2:]
    return (f"the linear layer '{node}' (no activation after it) has a bias or shift and is read by a {kh}x{kw} "
            f"convolution with padding {tuple(t.padding)}: the padded border would lose the bias term, so the two "
            "do not compose into one convolution")


def why_not(graph: fg.FloatGraph, name: str) -> str:
    """Why `fold_linear_layers` left the weighted node `name` reading a linear layer ('' if unknown)."""
    r = _reader(graph, name)
    found = expand(graph, r, infer_shapes(graph)) if r is not None else None
    return found if isinstance(found, str) else ""


def _rewire(graph: fg.FloatGraph, r: Reader, terms: list[Term], bias: np.ndarray) -> int:
    """Replace the reader (through its end node) by the sum of the composed terms; how many there are."""
    op = graph.op(r.node)
    terms = [t for t in terms if np.any(t.weight)] or terms[:1]     # a part no output channel reads adds 0
    outs = []
    for k, t in enumerate(terms):
        name = f"{r.node}#{k}" if len(terms) > 1 else f"{r.node}#composed"
        b = bias if k == 0 else np.zeros_like(bias)
        if isinstance(op, fg.Dense):
            flat = graph.add(f"{name}/flatten", fg.Flatten(), [t.source], origin="Flatten")
            graph.add(name, fg.Dense(np.ascontiguousarray(t.weight.reshape(t.weight.shape[0], -1)), b.copy()),
                      [flat], origin=graph.origin.get(r.node, ""))
        else:
            w, groups = regroup(t.weight)
            graph.add(name, fg.Conv(w, b.copy(), t.stride, t.padding, t.dilation, groups), [t.source],
                      origin=graph.origin.get(r.node, ""))
        outs.append(name)
    total = outs[0]
    for k, name in enumerate(outs[1:], 1):
        total = graph.add(f"{r.node}#sum{k}", fg.Add(), [total, name], origin="Add")
    for dst in graph.consumers(r.end):
        graph.g.add_edge(total, dst, port=graph.g.edges[r.end, dst]["port"])
        graph.g.remove_edge(r.end, dst)
    if graph.output == r.end:
        graph.output = total
    dead = [r.end]
    while dead:
        node = dead.pop()
        if node in graph.g and not graph.consumers(node) and node != graph.output \
                and not isinstance(graph.op(node), fg.Input):
            dead.extend(graph.inputs(node))
            graph.g.remove_node(node)
    return len(outs)


def fold_linear_layers(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Requires: shapes that infer.  Ensures: no Conv/Gemm reads a linear Conv (through BN and
    residual Adds) where the two compose into one convolution per source (see the module
    docstring).  Preserves: the function, up to float round-off (compositions in float64)."""
    shapes = None
    graph = graph.copy()
    composed = []
    for name in graph.topo_order():
        if name not in graph.g:
            continue
        r = _reader(graph, name)
        if r is None:
            continue
        shapes = shapes or infer_shapes(graph)     # (only where needed: scheme-specific ops have no shapes)
        found = expand(graph, r, shapes)
        if found is None or isinstance(found, str):
            continue
        terms, bias = found
        composed.append((name, _rewire(graph, r, terms, bias)))
        shapes = None                   # new nodes: infer again before the next reader
    if composed:
        branches = sum(n for _, n in composed)
        graph.notes.append(f"{len(composed)} Conv/Gemm layer(s) reading a linear layer (no activation between them: "
                           f"linear bottlenecks, residual streams) were composed with it into {branches} "
                           "convolution(s), one per activation source (weights Wr·Wp in float64)")
    return graph
