"""ReverB re-parameterisation (digest §4.3): BatchNorm and α leave the synapses, which stay ±1.

`fold_reverb(graph)` takes the front end's graph of a sequential ReverB network
(`schemes.reverb.front`) and returns the folded form that the `reverb` scheme quantises:

1. BN into the neuron (step 2).  A binary layer followed by BatchNorm computes
   BN(J) = s·J + c per channel, s = γ/√(var+ε), c = s·(b − μ) + β (b: the layer's bias).
   The neuron then tracks Ũ = U/|s|: Ũ = τ·Ũ + (±J) + c/|s|, fires on Ũ ≥ V_th/|s| and its
   spike U = |s|·Ũ.  So the ReverbAct gets threshold V_th/|s_c|, a per-step bias c_c/|s_c|,
   emit_scale |s_c|, and the layer keeps bias 0.
2. Sign handling (step 4).  Where γ_c < 0 (s_c < 0) the output channel's ±1 weights flip
   (Ũ = −J + c/|s|), which keeps the fire test an "≥"; where α_c < 0 the consumer's weights of
   input channel c flip and |α_c| is what moves.
3. α into the producer (steps 1 and 3).  conv(O, α⊙W^b) = conv(α⊙O, W^b): the consumer's
   |α_c| multiplies the emit_scale of the neuron that produces channel c (κ_c = |s_c|·|α_c|),
   or, for the first layer, a per-channel Scale inserted after the input (the host encodes
   |α_c|·x).  Pooling and Flatten between them commute with a non-negative scale that is
   constant over each pooling window, so |α| is pulled back through them onto the
   producer's neurons (`alpha_at_producer`): a BinaryLinear after a Flatten has one α per
   flattened feature, which lands on the neuron(s) feeding that feature, and the producer's
   emit_scale becomes per neuron (C, H, W); it stays per channel (C,) whenever α is uniform
   over each channel (always for a BinaryConv2d consumer).
Real-valued Conv/Dense layers (allowed first/last layers) fold their BatchNorm into the
weights as usual (`fold_bn`'s formula); their neuron gets threshold V_th, bias b', scale 1.

Preserves: the network's output (mean over T of the last layer) and every neuron's firing
pattern, up to float rounding (~1e-12 relative in float64, `schemes.reverb.float_model.run`).
Guarantees: every binary weight is exactly ±1 afterwards (checked), every emit_scale ≥ 0.
Residual basic blocks (`nn.reverb.ReverBBasicBlock`: h = n1(bn1(conv1(x))),
y = n2(bn2(conv2(h)) + shortcut(x)), digest §4.5 "α folding across branches"):
4. x feeds two consumers but its emitted value can carry only one α: conv1's |α| is folded
   into x's emit_scale as above, so the real-valued shortcut receives |α1_c|·O_x and takes the
   inverse 1/|α1_c| per input channel.  n2 tracks Ũ = U/|s2| (bn2 folded as in step 1), so the
   shortcut's current is divided by |s2_o| per output channel.  No sign flip is needed on the
   shortcut: U/|s2| (not U/s2) keeps the shortcut's own sign; γ2 < 0 only flips conv2's ±1
   weights (step 2).  Folded shortcut: identity -> `Scale` 1/(|α1_c|·|s2_c|) (a per-channel
   diagonal weight); nn.Conv2d (+BN, bias b) -> `Conv` with W·s_sc,o/(|α1_c|·|s2_o|), and its
   shift c_sc = s_sc·(b − μ) + β joins n2's per-step bias as c_sc/|s2|.  The folded graph keeps
   the `Add` (membrane current = conv2 current + shortcut current) right before n2.
   Implementation: each shortcut is cut off, the remaining chain is folded by steps 1-3, and
   the folded shortcut is attached again (`_cut_shortcut`, `_attach_shortcut`).
Refuses (UnsupportedError naming the node): other fan-outs and joins (an add after a neuron,
a shortcut from the network input, x feeding more than conv1 and one shortcut), a binary
shortcut (its ±1 weights would have to carry 1/(|α1|·|s2|): use a real-valued nn.Conv2d),
α = 0 in a channel of conv1 that also feeds a shortcut, BatchNorm after the last binary
layer, γ = 0, overlapping pooling windows whose features carry different α (a neuron in
both would need two scales), α varying within a channel of the network input (the host
encoder scales whole channels), ops other than those listed above.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import UnsupportedError
from ...ir import float_graph as fg
from ...passes import Pass
from . import float_model as rf

# ops allowed between a neuron (or the input) and the next weighted layer: they commute with
# a non-negative per-channel scale
_PASS_THROUGH = (fg.AvgPool, fg.GlobalAvgPool, fg.MaxPool, fg.Flatten)


def _passes_through(op) -> bool:
    """A pass-through op, or a max pool's spatial -inf padding (ceil_mode, asymmetric pads)."""
    return isinstance(op, _PASS_THROUGH) or (isinstance(op, fg.Pad) and op.value == -math.inf
                                             and len(op.pads) == 3 and tuple(op.pads[0]) == (0, 0))
RESIDUAL_HINT = ("compile a sequential network, or write residual connections as "
                 "neurodeploy.nn.reverb.ReverBBasicBlock: y = neuron2(bn2(conv2(h)) + shortcut(x)), x a ReverBNeuron's "
                 "output, the shortcut an identity or a real-valued nn.Conv2d (+BatchNorm)")


def sequential_chain(graph: fg.FloatGraph) -> list[str]:
    """The nodes of a sequential graph, input first; UnsupportedError where it branches."""
    (inp,) = graph.input_nodes()
    order, node = [inp], inp
    while True:
        cons = graph.consumers(node)
        if not cons:
            break
        if len(cons) > 1:
            raise UnsupportedError(f"'{node}' feeds {len(cons)} layers; ReverB folding handles sequential "
                                   "networks and residual basic blocks only (α of several consumers cannot fold "
                                   "into one producer)", graph.where(node), RESIDUAL_HINT)
        (node,) = cons
        if len(graph.inputs(node)) != 1:
            raise UnsupportedError("a node with several inputs (residual join) in a ReverB network that is not a "
                                   "basic block's add before its second neuron", graph.where(node), RESIDUAL_HINT)
        order.append(node)
    if order[-1] != graph.output:
        raise UnsupportedError("the output is not the end of the layer chain", graph.where(graph.output))
    return order


def _flip_out(op, flip: np.ndarray):
    """Negate the ±1 weights of the output channels where flip is True."""
    w = np.array(op.weight, dtype=np.float64)
    w[flip] *= -1.0
    return w


def fold_reverb(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Fold BatchNorm and α of a sequential or residual ReverB float graph (see the module docstring)."""
    joins = [n for n in graph.topo_order() if isinstance(graph.op(n), fg.Add)]
    if not joins:
        return _fold_chain(graph)
    graph = graph.copy()
    cuts = [_cut_shortcut(graph, j) for j in joins]
    folded = _fold_chain(graph)
    for cut in cuts:
        _attach_shortcut(folded, cut)
    return folded


def _fold_chain(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Steps 1-3 on a sequential graph (a residual one with its shortcuts cut off)."""
    graph = graph.copy()
    chain = sequential_chain(graph)
    shapes = node_shapes(graph)
    # --- steps 1 and 2: BN into the neuron (binary) or into the weights (real) ------------------
    producer_scale: dict[str, np.ndarray] = {}      # ReverbAct node -> |s| per channel
    for i, name in enumerate(chain):
        op = graph.op(name)
        if isinstance(op, (fg.Input, rf.ReverbAct)) or _passes_through(op):
            continue
        if isinstance(op, fg.BatchNorm):
            raise UnsupportedError("BatchNorm that does not directly follow a Conv/Linear layer", graph.where(name),
                                   "place BatchNorm right after a convolution or linear layer")
        if not isinstance(op, rf.WEIGHTED):
            raise UnsupportedError(f"{graph.origin.get(name, type(op).__name__)} in a ReverB network",
                                   graph.where(name), "ReverB networks hold Conv2d/Linear (binary or real), "
                                   "BatchNorm, ReverBNeuron, AvgPool/MaxPool and Flatten")
        nxt = chain[i + 1] if i + 1 < len(chain) else None
        bn = graph.op(nxt) if nxt is not None and isinstance(graph.op(nxt), fg.BatchNorm) else None
        bias = np.asarray(op.bias, np.float64)
        s, c = (np.ones_like(bias), bias) if bn is None else bn.scale_shift(bias)
        if bn is not None:
            graph.bypass(nxt)
            chain.remove(nxt)
        act_name = chain[i + 1] if i + 1 < len(chain) else None
        act = graph.op(act_name) if act_name is not None and isinstance(graph.op(act_name), rf.ReverbAct) else None
        if isinstance(op, rf.BINARY):
            if act is None:
                if bn is not None:
                    raise UnsupportedError("BatchNorm after a binary layer that no ReverBNeuron follows directly "
                                           "(its scale cannot leave the ±1 weights without a neuron to carry it)",
                                           graph.where(name),
                                           "end the network with a BatchNorm-free layer or a real-valued nn.Linear")
                continue
            if np.any(s == 0):
                raise UnsupportedError(f"BatchNorm γ = 0 in channel(s) {np.flatnonzero(s == 0).tolist()}",
                                       graph.where(name),
                                       "a channel with zero BN scale is constant: retrain or prune it")
            w = _flip_out(op, s < 0)
            graph.set_op(name, type(op)(**{**op.__dict__, "weight": w, "bias": np.zeros_like(bias)}))
            a = np.abs(s)
            graph.set_op(act_name, rf.ReverbAct(tau=act.tau, threshold=np.asarray(act.threshold) / a,
                                                bias=c / a, emit_scale=a.copy()))
            producer_scale[act_name] = a
        else:
            w = np.asarray(op.weight, np.float64) * s.reshape((-1,) + (1,) * (np.ndim(op.weight) - 1))
            if act is None:
                graph.set_op(name, type(op)(**{**op.__dict__, "weight": w, "bias": c}))
                continue
            graph.set_op(name, type(op)(**{**op.__dict__, "weight": w, "bias": np.zeros_like(c)}))
            graph.set_op(act_name, rf.ReverbAct(tau=act.tau, threshold=np.broadcast_to(
                np.asarray(act.threshold, np.float64), c.shape).copy(), bias=c, emit_scale=np.ones_like(c)))
    # --- step 3 (+ 4 for α): α into the producer's emission -------------------------------------
    for name in list(chain):                 # a snapshot: the input's Scale is inserted into `chain`
        op = graph.op(name)
        if not isinstance(op, rf.BINARY):
            continue
        i = chain.index(name)
        j = i - 1
        while not isinstance(graph.op(chain[j]), (fg.Input, rf.ReverbAct)):
            if not _passes_through(graph.op(chain[j])):
                raise UnsupportedError("two weighted layers follow each other without a ReverB neuron",
                                       graph.where(name), "insert a ReverBNeuron between them")
            j -= 1
        producer = chain[j]
        alpha = np.asarray(op.alpha, np.float64)
        # flip the consumer's weights of negative-α inputs, then move |α| to the producer
        mag = alpha_at_producer(graph, chain[j:i], np.abs(alpha), shapes, graph.where(name))
        w = np.array(op.weight, dtype=np.float64)
        neg = alpha < 0
        w[:, neg] *= -1.0                     # axis 1 = input channel / feature of both ops
        graph.set_op(name, type(op)(**{**op.__dict__, "weight": w, "alpha": np.ones_like(alpha)}))
        pop = graph.op(producer)
        if isinstance(pop, rf.ReverbAct):
            graph.set_op(producer, rf.ReverbAct(tau=pop.tau, threshold=pop.threshold, bias=pop.bias,
                                                emit_scale=_scale_by(pop.emit_scale, mag)))
        else:
            if mag.ndim > 1:
                raise UnsupportedError("α of the first binary layer varies within a channel of the network input "
                                       "(a BinaryLinear after a Flatten of the input); the host encoder scales whole "
                                       "input channels", graph.where(name),
                                       "make the first layer a real-valued nn.Linear (or a BinaryConv2d)")
            s = graph.add("input_alpha", fg.Scale(np.asarray(mag)), [producer], origin="α of the first binary layer")
            nxt = chain[j + 1]
            port = graph.g.edges[producer, nxt]["port"]
            graph.g.remove_edge(producer, nxt)
            graph.g.add_edge(s, nxt, port=port)
            chain.insert(j + 1, s)
    for name in chain:
        op = graph.op(name)
        if isinstance(op, rf.BINARY):
            assert np.all(np.abs(op.weight) == 1.0), f"{name}: folding left a weight that is not ±1"
    return graph


# the reverb scheme's flow runs it as a checked pass: afterwards no BatchNorm is left
FOLD_REVERB = Pass("fold_reverb", fold_reverb, ensures=("bn_folded",))


# --- residual basic blocks (step 4) ---------------------------------------------------------------

def _weighted_behind(graph: fg.FloatGraph, node: str) -> tuple:
    """(weighted op node or None, BatchNorm node or None, source node) of one input of an Add:
    [BatchNorm <-] weighted <- source, or the source itself (an identity shortcut)."""
    bn = node if isinstance(graph.op(node), fg.BatchNorm) else None
    w = graph.inputs(node)[0] if bn is not None else node
    if bn is not None and not isinstance(graph.op(w), rf.WEIGHTED):
        raise UnsupportedError("BatchNorm that does not directly follow a Conv/Linear layer", graph.where(node),
                               "place BatchNorm right after a convolution or linear layer")
    if not isinstance(graph.op(w), rf.WEIGHTED):
        return None, None, node
    if len(graph.consumers(w)) != 1 or (bn is not None and len(graph.consumers(bn)) != 1):
        raise UnsupportedError("a layer of a residual branch feeds several nodes", graph.where(w), RESIDUAL_HINT)
    return w, bn, graph.inputs(w)[0]


def _cut_shortcut(graph: fg.FloatGraph, add: str) -> dict:
    """Check that `add` joins a basic block (see the module docstring), fold its shortcut into
    n2's Ũ units and the inverse of conv1's |α|, and remove the shortcut from `graph` (in place),
    leaving the chain x -> conv1 -> ... -> conv2 [-> bn2] -> n2.  Returns what `_attach_shortcut`
    needs: the folded shortcut op, its source x, n2 and the per-step bias it adds (Ũ units)."""
    ins, cons = graph.inputs(add), graph.consumers(add)
    if len(ins) != 2 or len(cons) != 1 or not isinstance(graph.op(cons[0]), rf.ReverbAct):
        raise UnsupportedError("a residual add that does not feed a ReverB neuron directly (ReverB residual "
                               "connections add membrane currents, before the block's second neuron)",
                               graph.where(add), RESIDUAL_HINT)
    act2 = cons[0]
    legs = [(i, *_weighted_behind(graph, i)) for i in ins]
    main = [leg for leg in legs if leg[1] is not None and isinstance(graph.op(leg[1]), rf.BINARY)
            and isinstance(graph.op(leg[3]), rf.ReverbAct)]
    if len(main) == 2:                       # both binary: the one whose source is upstream is a shortcut
        up = [leg for leg in main if any(leg[3] in _ancestors(graph, o[3]) for o in main if o is not leg)]
        if up:
            raise UnsupportedError("a binary (BinaryConv2d) shortcut: after folding it would carry 1/(|α1|·|s2|) "
                                   "per channel, so its weights could not stay ±1", graph.where(up[0][1]),
                                   "use a real-valued nn.Conv2d (+BatchNorm) as the downsample shortcut")
    if len(main) != 1:
        raise UnsupportedError("a residual add whose inputs are not a binary conv (+BatchNorm) after a ReverB neuron "
                               "and a shortcut", graph.where(add), RESIDUAL_HINT)
    (_, w2, bn2, h), (sc_in, w_sc, bn_sc, x) = main[0], next(leg for leg in legs if leg is not main[0])
    if w_sc is not None and not isinstance(graph.op(w_sc), fg.Conv):
        raise UnsupportedError(f"a {type(graph.op(w_sc)).__name__} shortcut", graph.where(w_sc),
                               "use an identity or a real-valued nn.Conv2d (+BatchNorm) shortcut")
    if not isinstance(graph.op(x), rf.ReverbAct):
        raise UnsupportedError("a shortcut that does not start at a ReverB neuron (e.g. the network input: the "
                               "host encoder cannot send two differently scaled copies)", graph.where(x), RESIDUAL_HINT)
    conv1 = _block_conv1(graph, h, x, add)
    a1 = np.abs(np.asarray(graph.op(conv1).alpha, np.float64)) if isinstance(graph.op(conv1), rf.BINARY) \
        else np.ones(graph.op(conv1).weight.shape[1])
    if np.any(a1 == 0):
        raise UnsupportedError(f"α = 0 in channel(s) {np.flatnonzero(a1 == 0).tolist()} of a block's first conv: "
                               "the block input sends nothing there, which its shortcut would need",
                               graph.where(conv1), "retrain (α must not vanish) or prune those channels")
    op2 = graph.op(w2)
    b2 = np.asarray(op2.bias, np.float64)
    s2 = np.ones_like(b2) if bn2 is None else graph.op(bn2).scale_shift(b2)[0]
    if np.any(s2 == 0):
        raise UnsupportedError(f"BatchNorm γ = 0 in channel(s) {np.flatnonzero(s2 == 0).tolist()}",
                               graph.where(w2), "a channel with zero BN scale is constant: retrain or prune it")
    a2 = np.abs(s2)
    if w_sc is None:                         # identity: U2 += O_x = emitted_x / |α1|
        if a1.shape != a2.shape:
            raise UnsupportedError("an identity shortcut between different channel counts", graph.where(add),
                                   "use a 1x1 nn.Conv2d shortcut")
        op, bias, name = fg.Scale(1.0 / (a1 * a2)), np.zeros_like(a2), f"{add}_shortcut"
    else:
        sop = graph.op(w_sc)
        b = np.asarray(sop.bias, np.float64)
        s, c = (np.ones_like(b), b) if bn_sc is None else graph.op(bn_sc).scale_shift(b)
        w = np.asarray(sop.weight, np.float64) * (s / a2).reshape(-1, 1, 1, 1) / a1.reshape(1, -1, 1, 1)
        op, bias, name = fg.Conv(**{**sop.__dict__, "weight": w, "bias": np.zeros_like(b)}), c / a2, w_sc
    origin = graph.origin.get(w_sc or add, "identity shortcut")
    for n in [n for n in (bn_sc, w_sc) if n is not None]:
        graph.g.remove_node(n)
    if w_sc is None:
        graph.g.remove_edge(x, add)
    graph.bypass(add)
    return {"add": add, "act": act2, "source": x, "name": name, "op": op, "bias": bias, "origin": origin}


def _ancestors(graph: fg.FloatGraph, node: str) -> set:
    """Every node with a path to `node`."""
    import networkx as nx
    return nx.ancestors(graph.g, node)


def _block_conv1(graph: fg.FloatGraph, h: str, x: str, add: str) -> str:
    """conv1 of the block: h <- [bn1 <-] conv1 <- x, and x feeds conv1 and the shortcut only."""
    (j,) = graph.inputs(h)
    conv1 = graph.inputs(j)[0] if isinstance(graph.op(j), fg.BatchNorm) else j
    if not isinstance(graph.op(conv1), rf.WEIGHTED) or graph.inputs(conv1) != [x] or len(graph.consumers(x)) != 2:
        raise UnsupportedError("a residual block whose first conv does not take the shortcut's source x directly "
                               "(or x feeds more than the block)", graph.where(add), RESIDUAL_HINT)
    return conv1


def _attach_shortcut(folded: fg.FloatGraph, cut: dict) -> None:
    """Put the folded shortcut back: n2's input becomes Add(conv2, shortcut(x)); its bias gains c_sc/|s2|."""
    act2 = cut["act"]
    (w2,) = folded.inputs(act2)
    act = folded.op(act2)
    folded.set_op(act2, rf.ReverbAct(tau=act.tau, threshold=act.threshold, bias=np.asarray(act.bias) + cut["bias"],
                                     emit_scale=act.emit_scale))
    folded.g.remove_edge(w2, act2)
    folded.add(cut["name"], cut["op"], [cut["source"]], origin=cut["origin"])
    folded.add(cut["add"], fg.Add(), [w2, cut["name"]], origin="residual add (membrane current)")
    folded.g.add_edge(cut["add"], act2, port=0)


def node_shapes(graph: fg.FloatGraph) -> dict:
    """Per-sample output shape of every node (binary ops and neurons evaluated by schemes.reverb.float_model)."""
    import torch
    out, values = {}, {}
    for name in graph.topo_order():
        op = graph.op(name)
        ins = [values[i] for i in graph.inputs(name)]
        if isinstance(op, fg.Input):
            v = torch.zeros((1,) + tuple(op.shape), dtype=torch.float64)
        elif isinstance(op, rf.ReverbAct):
            v = ins[0]
        else:
            v = rf.eval_stateless(op, ins)
        values[name] = v
        out[name] = tuple(v.shape[1:])
    return out


def _scale_by(emit_scale, mag: np.ndarray) -> np.ndarray:
    """emit_scale (scalar or per channel) times |α| on the producer (per channel or per neuron)."""
    e = np.asarray(emit_scale, np.float64)
    if mag.ndim > 1 and e.ndim == 1:
        e = e.reshape((-1,) + (1,) * (mag.ndim - 1))      # channel c of a per-neuron (C, H, W) scale
    return e * mag


def alpha_at_producer(graph: fg.FloatGraph, path: list, mag: np.ndarray, shapes: dict, where: str) -> np.ndarray:
    """The consumer's |α| moved onto the producer's neurons through the pass-through ops between.

    path = [producer, op_1, ..., op_k]: the producer (a ReverbAct or the input) and the
    pooling/Flatten ops before the consumer; mag = |α| indexed by the consumer's input
    channel (conv) or feature (dense).  Each op is pulled back (`_pull_back`): a Flatten
    reshapes, a pooling window hands its feature's scale to every neuron in it.  Returns |α|
    per channel (C,) (per feature (F,) for a dense producer) when that describes it, else per
    neuron, the producer's full shape (C, H, W).  Neurons that feed no feature (cropped by a
    pooling window grid) get their channel's scale where it is uniform, else 0: what they emit
    is never read, and 0 makes them send nothing.
    """
    cons_in = shapes[path[-1]]
    a = np.asarray(mag, np.float64)
    if len(cons_in) == 3 and a.ndim == 1:                 # a conv consumer: α per input channel
        a = np.broadcast_to(a.reshape(-1, 1, 1), cons_in)
    a = a.reshape(cons_in).astype(np.float64)
    for k in range(len(path) - 1, 0, -1):
        a = _pull_back(graph.op(path[k]), a, shapes[path[k - 1]], where)
    return _compact(a)


def _pull_back(op, a: np.ndarray, in_shape: tuple, where: str) -> np.ndarray:
    """Scale on an op's output -> scale on its input (NaN = the input element feeds nothing).

    Valid because max/average over a window commute with a non-negative scale that is the
    same for the whole window; an input element inside two windows of different scale
    cannot carry both (UnsupportedError)."""
    if isinstance(op, fg.Flatten):
        return a.reshape(in_shape)
    if isinstance(op, fg.GlobalAvgPool):
        return np.broadcast_to(a.reshape(-1, 1, 1), in_shape).copy()
    if isinstance(op, fg.Pad):                   # -inf padding: its positions feed nothing
        (_, (top, _), (left, _)) = op.pads
        return a[:, top:top + in_shape[1], left:left + in_shape[2]].copy()
    kh, kw = op.kernel
    sh, sw = op.stride
    ph, pw = tuple(getattr(op, "padding", (0, 0)))
    out = np.full(in_shape, np.nan)
    _, h, w = in_shape
    for oh in range(a.shape[1]):
        r0, r1 = max(oh * sh - ph, 0), min(oh * sh - ph + kh, h)
        for ow in range(a.shape[2]):
            c0, c1 = max(ow * sw - pw, 0), min(ow * sw - pw + kw, w)
            region = out[:, r0:r1, c0:c1]
            val = np.broadcast_to(a[:, oh, ow].reshape(-1, 1, 1), region.shape)
            clash = ~np.isnan(region) & ~np.isnan(val) & (region != val)
            if np.any(clash):
                raise UnsupportedError(f"overlapping {type(op).__name__} windows (kernel {op.kernel}, stride "
                                       f"{op.stride}) feed features with different α; a neuron in both windows "
                                       "cannot scale its spike twice", where,
                                       "use non-overlapping pooling (stride = kernel) before a binary layer, or a "
                                       "real-valued layer")
            out[:, r0:r1, c0:c1] = np.where(np.isnan(region), val, region)
    return out


def _compact(a: np.ndarray) -> np.ndarray:
    """Per channel (C,) where every channel's defined (non-NaN) entries agree, else per neuron;
    undefined entries (neurons that feed nothing) take the channel value, or 0 per neuron."""
    if a.ndim == 1:
        return np.nan_to_num(a, nan=0.0)
    per = a.reshape(a.shape[0], -1)
    lo, hi = np.where(np.isnan(per), np.inf, per).min(1), np.where(np.isnan(per), -np.inf, per).max(1)
    defined = np.isfinite(lo)
    if np.all(~defined | (lo == hi)):
        return np.where(defined, lo, 0.0)
    return np.nan_to_num(a, nan=0.0)
