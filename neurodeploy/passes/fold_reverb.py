"""ReverB re-parameterisation (digest §4.3): BatchNorm and α leave the synapses, which stay ±1.

`fold_reverb(graph)` takes the front end's graph of a sequential ReverB network
(`frontends.torch_reverb`) and returns the folded form that the `reverb` scheme quantises:

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
   |α_c|·x).  Pooling and Flatten between them commute with a non-negative channel scale;
   after a Flatten α must be uniform over each channel's features.
Real-valued Conv/Dense layers (allowed first/last layers) fold their BatchNorm into the
weights as usual (`fold_bn`'s formula); their neuron gets threshold V_th, bias b', scale 1.

Preserves: the network's output (mean over T of the last layer) and every neuron's firing
pattern, up to float rounding (~1e-12 relative in float64, `ir.reverb_float.run`).
Guarantees: every binary weight is exactly ±1 afterwards (checked), every emit_scale ≥ 0.
Refuses (UnsupportedError naming the node): a node with several consumers or inputs (α
across a residual fan-out cannot fold into one producer), BatchNorm after the last binary
layer, γ = 0, α varying within a flattened channel, ops other than those listed above.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import float_graph as fg
from ..ir import reverb_float as rf

# ops allowed between a neuron (or the input) and the next weighted layer: they commute with
# a non-negative per-channel scale
_PASS_THROUGH = (fg.AvgPool, fg.GlobalAvgPool, fg.MaxPool, fg.Flatten)


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
                                   "networks only (α of several consumers cannot fold into one producer)",
                                   graph.where(node), "compile a sequential network (no residual connections)")
        (node,) = cons
        if len(graph.inputs(node)) != 1:
            raise UnsupportedError("a node with several inputs (residual join) in a ReverB network",
                                   graph.where(node), "compile a sequential network (no residual connections)")
        order.append(node)
    if order[-1] != graph.output:
        raise UnsupportedError("the output is not the end of the layer chain", graph.where(graph.output))
    return order


def _bn_scale_shift(bn: fg.BatchNorm, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(bn.gamma, np.float64) / np.sqrt(np.asarray(bn.var, np.float64) + bn.eps)
    return s, s * (np.asarray(bias, np.float64) - bn.mean) + bn.beta


def _flip_out(op, flip: np.ndarray):
    """Negate the ±1 weights of the output channels where flip is True."""
    w = np.array(op.weight, dtype=np.float64)
    w[flip] *= -1.0
    return w


def fold_reverb(graph: fg.FloatGraph) -> fg.FloatGraph:
    """Fold BatchNorm and α of a sequential ReverB float graph (see the module docstring)."""
    graph = graph.copy()
    chain = sequential_chain(graph)
    shapes = node_shapes(graph)
    # --- steps 1 and 2: BN into the neuron (binary) or into the weights (real) ------------------
    producer_scale: dict[str, np.ndarray] = {}      # ReverbAct node -> |s| per channel
    for i, name in enumerate(chain):
        op = graph.op(name)
        if isinstance(op, (fg.Input, rf.ReverbAct)) or isinstance(op, _PASS_THROUGH):
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
        s, c = (np.ones_like(bias), bias) if bn is None else _bn_scale_shift(bn, bias)
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
            if not isinstance(graph.op(chain[j]), _PASS_THROUGH):
                raise UnsupportedError("two weighted layers follow each other without a ReverB neuron",
                                       graph.where(name), "insert a ReverBNeuron between them")
            j -= 1
        producer = chain[j]
        flattened = any(isinstance(graph.op(n), fg.Flatten) for n in chain[j + 1:i])
        alpha = np.asarray(op.alpha, np.float64)
        per_channel = _alpha_per_channel(alpha, shapes[producer], flattened, graph.where(name))
        # flip the consumer's weights of negative-α inputs, then move |α| to the producer
        w = np.array(op.weight, dtype=np.float64)
        neg = alpha < 0
        w[:, neg] *= -1.0                     # axis 1 = input channel / feature of both ops
        graph.set_op(name, type(op)(**{**op.__dict__, "weight": w, "alpha": np.ones_like(alpha)}))
        mag = np.abs(per_channel)
        pop = graph.op(producer)
        if isinstance(pop, rf.ReverbAct):
            graph.set_op(producer, rf.ReverbAct(tau=pop.tau, threshold=pop.threshold, bias=pop.bias,
                                                emit_scale=np.asarray(pop.emit_scale, np.float64) * mag))
        else:
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


def node_shapes(graph: fg.FloatGraph) -> dict:
    """Per-sample output shape of every node (binary ops and neurons evaluated by ir.reverb_float)."""
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


def _alpha_per_channel(alpha: np.ndarray, src_shape: tuple, flattened: bool, where: str) -> np.ndarray:
    """α indexed by the producer's channels (C,) (or features (F,) of a dense producer)."""
    if not flattened or len(src_shape) == 1:
        return alpha
    c = src_shape[0]
    per = alpha.reshape(c, -1)
    if not np.all(per == per[:, :1]):
        raise UnsupportedError("α of a binary layer after a Flatten varies within a channel of the flattened "
                               "tensor; the producer can only scale whole channels", where,
                               "share α per channel (or make this layer a real-valued nn.Linear)")
    return per[:, 0].copy()
