"""Prove the front-end passes kept the function: the graph after them against the graph as read.

The front end proves its reading of a model (`frontends.proof`); `FRONT_END_PASSES` then rewrite
that graph (selections as 1x1 convs, adaptive pools and linear layers folded into their readers)
before anything else sees it.  `run_proven_passes` runs them and checks the result with the same
comparator: the graph as read is evaluated in float64 on the proof's probe inputs, and every node
of the rewritten graph that kept its name -- the readers a fold rewrote keep theirs -- must equal
it within float64 round-off, teacher-forced node by node (`frontends.proof.prove`, unit round-off
2^-53): our rounding of the rewritten ops plus the graph as read's own rounding of the chain of ops
they replace (a composed W'·x against Wr·(Wp·x + bp): each side bounded by Higham's gamma_k, so
cancellation in W' = Wr·Wp cannot turn round-off into a refusal).  Only nodes a pass rewrote (a new
op object, new inputs) are evaluated: every other node computes the graph as read's value exactly,
and the graph as read is evaluated only as far as they need, on two probe samples.  (Not in the
bound: the float64 rounding of composed weights themselves, W' = fl(Wr·Wp); on the test suite's
nets the largest difference is 1/20 of the bound.)  A node whose value a pass changes on purpose
(`Pass.changes`: the dropped output softmax, the Flatten an adaptive pool was folded through) is not
compared; new nodes (composed terms) are checked through the nodes that read them.  A difference is our bug, named by the first pass whose
output shows it, and stops the compile: exactness downstream is measured against the rewritten
graph, so nothing later would notice it.
"""
from __future__ import annotations

from ..errors import NeurodeployError
from ..ir import float_graph as fg
from . import get_pass, run_passes

U64 = 2.0 ** -53             # the reference (the graph as read) is evaluated in float64 too
RUNNER = "the graph as read"


class PassProofError(NeurodeployError):
    """A front-end pass changed what the network computes: a bug in neurodeploy, not in the model."""


def run_proven_passes(graph: fg.FloatGraph, passes, samples=None) -> fg.FloatGraph:
    """`run_passes(graph, passes)`, proven to compute what `graph` computes on the probe inputs
    (`frontends.proof.probe_inputs` of `samples`, the calibration data); PassProofError otherwise."""
    read, steps, changed = graph, [], set()
    for p in map(get_pass, passes):
        if p.changes is not None:
            changed |= set(p.changes(graph))
        graph = run_passes(graph, [p])
        steps.append((p.name, _named_output(read, graph, changed), set(changed)))
    _prove_steps(read, steps, samples)
    return graph


def _cut(graph: fg.FloatGraph, nodes: set, leaves: set, shapes: dict) -> fg.FloatGraph:
    """The subgraph of `nodes` and `leaves`, each leaf an Input (its value is given)."""
    sub = fg.FloatGraph(graph.g.subgraph(nodes | leaves).copy(), "", graph.source, dict(graph.origin))
    for leaf in leaves:
        sub.set_op(leaf, fg.Input(shapes[leaf]))
    sub.output = sub.topo_order()[-1]
    return sub


def _named_output(read: fg.FloatGraph, g: fg.FloatGraph, changed: set) -> fg.FloatGraph:
    """`g` with its output named as `read`'s where a fold replaced the output node (a composed Gemm
    head): the network's output keeps its meaning, so it is compared too."""
    if g.output in read.g or read.output in g.g or read.output in changed:
        return g
    import networkx as nx
    named = g.copy()
    named.g = nx.relabel_nodes(g.g, {g.output: read.output})
    named.output = read.output
    return named


def _compared(read: fg.FloatGraph, g: fg.FloatGraph, changed: set) -> set:
    """The nodes of `g` compared with `read`'s: those it kept by name whose value no pass changed on purpose."""
    return {n for n in g.g if n in read.g and n not in changed}


def _region(read: fg.FloatGraph, g: fg.FloatGraph, compared: set) -> tuple[set, set]:
    """(the nodes of `g` whose teacher-forced value may differ from `read`'s, the nodes they read
    outside it).  Any other node has the op object and inputs it has in `read`, and its inputs are
    compared (teacher-forced to `read`'s values): it computes `read`'s value exactly, no need to
    evaluate it."""
    def rewritten(n):
        return n not in compared or g.op(n) is not read.op(n) or g.inputs(n) != read.inputs(n) \
            or not all(i in compared for i in g.inputs(n))
    region = {n for n in g.g if not isinstance(g.op(n), fg.Input) and rewritten(n)}
    return region, {i for n in region for i in g.inputs(n) if i not in region}


def _chains(read: fg.FloatGraph, targets: set, compared: set) -> tuple[set, set]:
    """(the nodes of `read` that compute `targets` from compared nodes -- the chains of ops a pass
    replaced --, those compared nodes)."""
    nodes, leaves, stack = set(), set(), list(targets)
    while stack:
        n = stack.pop()
        if n in nodes or n in leaves:
            continue
        if n in compared and n not in targets:
            leaves.add(n)
            continue
        nodes.add(n)
        stack.extend(read.inputs(n))
    return nodes, leaves


def _prove_steps(read: fg.FloatGraph, steps: list, samples) -> None:
    """Prove the last step's graph against `read` where a pass rewrote it (`_region`); on a
    difference, prove each step's in turn to name the first pass whose output differs."""
    import networkx as nx

    from ..frontends.proof import ProofError, probe_inputs, prove
    from ..ir.float_eval import evaluate

    (inp,) = read.input_nodes()
    # one calibration sample (or seeded one) and one seeded standard-normal: a pass maps each
    # sample alone, so two suffice, and the check stays a small part of the compile
    x = probe_inputs(read.op(inp).shape, samples)[[0, -1]]
    cuts = []
    for name, g, changed in steps:
        compared = _compared(read, g, changed)
        region, leaves = _region(read, g, compared)
        targets = region & compared
        cuts.append((name, g, region, leaves, targets) + _chains(read, targets, compared))
    keep = set().union(*(c[3] | c[4] | c[6] for c in cuts))
    if not keep:
        return                                   # no pass rewrote anything
    # the graph as read, evaluated only as far as the compared nodes need
    needed = keep.union(*(nx.ancestors(read.g, n) for n in keep))
    reference = evaluate(_cut(read, needed - {inp}, {inp}, {inp: read.op(inp).shape}), x, keep)

    def prove_step(g, region, leaves, targets, chain, chain_leaves) -> None:
        if not targets:
            return                      # (a rewritten region no compared node reads: nothing to check)
        kept = {n: reference[n] for n in targets}
        # up to each compared node, the graph as read computed another chain of ops (the ones a pass
        # replaced): its own round-off from the same inputs, bounded as ours is, is allowed too
        slack: dict = {}
        prove(_cut(read, chain, chain_leaves, {n: reference[n].shape[1:] for n in chain_leaves}),
              {n: reference[n] for n in chain_leaves}, kept, {}, RUNNER, U64, bounds=slack)
        prove(_cut(g, region, leaves, {n: reference[n].shape[1:] for n in leaves}),
              {n: reference[n] for n in leaves}, kept, {n: n for n in kept}, RUNNER, U64,
              slack={n: slack[n] for n in kept})

    try:
        prove_step(*cuts[-1][1:])
    except ProofError as exc:
        culprit, detail = cuts[-1][0], exc
        for name, *cut in cuts:
            try:
                prove_step(*cut)
            except ProofError as first:
                culprit, detail = name, first
                break
        raise PassProofError(f"the front-end pass '{culprit}' changed what the network computes: {detail.what}",
                             detail.where, "a bug in neurodeploy, not in the model: please report it with "
                             "the model") from None
