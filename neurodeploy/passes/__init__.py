"""Conversion passes: named, pure functions FloatGraph -> FloatGraph, and the pass manager.

Each pass's docstring says what it preserves.  A `Pass` also states what it requires of its input
graph and what it ensures of its output, as names of graph properties (`PROPERTIES`); `run_passes`
checks both around every pass (as torch.fx's PassBase does), so that a flow in the wrong order
fails at the pass that was misplaced, not three stages later with wrong numbers.  The shared
passes are registered by name in `PASSES`; a scheme lists them by name (`Scheme.passes`) and may
add its own `Pass` objects (reverb's `fold_reverb`) and the lowering steps that read calibration
data (`lowering.input_quant.input_quantiser`, `lowering.threshold_balance.balance_thresholds`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..ir import float_graph as fg
from .adaptive_pool import fold_adaptive_pool, folded_flattens
from .bias_shift import bias_shift
from .fold_bn import fold_bn
from .fuse_quant_act import fuse_quant_act
from .linear_fold import fold_linear_layers
from .qdq import fold_linear_affine, fold_zero_points, strip_output_quantiser
from .layout import drop_output_softmax, output_softmax, select_as_conv, selections
from .simplify import drop_redundant_relu


def _none_of(*types) -> Callable[[fg.FloatGraph], bool]:
    return lambda g: not any(isinstance(g.op(n), types) for n in g.topo_order())


def is_input_padding(op) -> bool:
    """A zero Pad of H and W only, between the input and its quantiser: the host encoder applies it
    (InputEncoder.pad; see lowering.input_quant)."""
    return isinstance(op, fg.Pad) and op.value == 0.0 and len(op.pads) == 3 and op.pads[0] == (0, 0)


def input_quantiser(graph: fg.FloatGraph) -> str | None:
    """The quantiser the network input feeds (the input encoder's codes), directly or through the
    host's zero padding (`is_input_padding`); None when the input feeds anything else."""
    (inp,) = graph.input_nodes()
    cons = graph.consumers(inp)
    if len(cons) == 1 and is_input_padding(graph.op(cons[0])):
        cons = graph.consumers(cons[0])
    return cons[0] if len(cons) == 1 and isinstance(graph.op(cons[0]), fg.QuantAct) else None


def starts_with_quantiser(graph: fg.FloatGraph) -> bool:
    """The network input feeds exactly one quantiser (`input_quantiser`)."""
    return input_quantiser(graph) is not None


# graph property -> predicate; what passes require and ensure
PROPERTIES: dict[str, Callable[[fg.FloatGraph], bool]] = {
    "bn_folded": _none_of(fg.BatchNorm),                 # no BatchNorm left (folded into weights)
    "quantisers_fused": _none_of(fg.Floor),              # every floor chain is one QuantAct
    "activations_quantised": _none_of(fg.Relu),          # every activation is a quantiser (ReLUs balanced)
    "input_quantised": starts_with_quantiser,            # the input feeds one quantiser
    "logits_out": lambda g: not output_softmax(g),       # no Softmax head: the readout gives logits
    "selections_as_conv": lambda g: not selections(g),   # no channel/stride selection left as Slice/Pad
}


class FlowError(RuntimeError):
    """A scheme's flow runs a pass whose requirement does not hold, or a pass broke its promise: a
    bug in neurodeploy (a mis-ordered flow), not in the user's model."""


@dataclass(frozen=True)
class Pass:
    """A graph -> graph function with the properties it requires of its input and ensures of its output."""
    name: str
    fn: Callable[[fg.FloatGraph], fg.FloatGraph]
    requires: tuple[str, ...] = ()
    ensures: tuple[str, ...] = ()
    # the nodes of its input graph whose value it changes on purpose (None: none); every other node
    # it keeps keeps its value (`passes.proof.run_proven_passes` checks this for FRONT_END_PASSES)
    changes: Callable[[fg.FloatGraph], set[str]] | None = None

    def __call__(self, graph: fg.FloatGraph) -> fg.FloatGraph:
        return self.fn(graph)


def check(graph: fg.FloatGraph, properties, what: str) -> None:
    """Raise FlowError unless every named property holds for `graph` (`what`: who needs them)."""
    missing = [p for p in properties if not PROPERTIES[p](graph)]
    if missing:
        raise FlowError(f"{what}: {', '.join(missing)} does not hold (a pass that ensures it must run first)")


PASSES: dict[str, Pass] = {p.name: p for p in (
    Pass("fold_linear_affine", fold_linear_affine),
    Pass("fold_bn", fold_bn, ensures=("bn_folded",)),
    Pass("fuse_quant_act", fuse_quant_act, ensures=("quantisers_fused",)),
    Pass("drop_redundant_relu", drop_redundant_relu, requires=("quantisers_fused",)),
    Pass("bias_shift", bias_shift, requires=("bn_folded", "quantisers_fused")),
    Pass("strip_output_quantiser", strip_output_quantiser),
    Pass("fold_zero_points", fold_zero_points),
    Pass("drop_output_softmax", drop_output_softmax, ensures=("logits_out",),
         changes=lambda g: {g.output} if output_softmax(g) else set()),
    Pass("select_as_conv", select_as_conv, ensures=("selections_as_conv",)),
    Pass("fold_adaptive_pool", fold_adaptive_pool, changes=folded_flattens),
    Pass("fold_linear_layers", fold_linear_layers),
)}

# run on every front end's graph before the scheme's own passes (compiler.compile_graph), and proven
# there to keep what the graph as read computes (passes.proof.run_proven_passes)
# (after the front end's proof: fold_adaptive_pool and fold_linear_layers change float round-off, see
# passes.adaptive_pool; fold_linear_layers last, so that a Gemm an adaptive pool folded into composes too)
FRONT_END_PASSES = ("drop_output_softmax", "select_as_conv", "fold_adaptive_pool", "fold_linear_layers")


def get_pass(p) -> Pass:
    """A registered pass by name, or a Pass (or a plain graph -> graph function) as it is."""
    if isinstance(p, str):
        return PASSES[p]
    return p if isinstance(p, Pass) else Pass(getattr(p, "__name__", "pass"), p)


def run_passes(graph: fg.FloatGraph, passes) -> fg.FloatGraph:
    """Run `passes` (names of registered passes, Pass objects) in order, checking each one's
    `requires` before and `ensures` after it."""
    for p in passes:
        p = get_pass(p)
        check(graph, p.requires, f"pass '{p.name}' requires")
        graph = p(graph)
        check(graph, p.ensures, f"pass '{p.name}' ensures")
    return graph
