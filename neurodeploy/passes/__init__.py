"""Conversion passes: named, pure functions FloatGraph -> FloatGraph.

Each pass's docstring says what it preserves.  Schemes list the passes they run
(neurodeploy/schemes); `run_passes` applies them in order and records their names.
"""
from __future__ import annotations

from .fold_bn import fold_bn
from .fuse_quant_act import fuse_quant_act
from .simplify import drop_redundant_relu
from .bias_shift import bias_shift
from .fold_reverb import fold_reverb
from .qdq import fold_linear_affine, fold_zero_points, strip_output_quantiser
from .layout import drop_output_softmax, select_as_conv

PASSES = {p.__name__: p for p in (fold_bn, fuse_quant_act, drop_redundant_relu, bias_shift,
                                  fold_linear_affine, strip_output_quantiser, fold_zero_points, fold_reverb,
                                  drop_output_softmax, select_as_conv)}

# run on every front end's graph before the scheme's own passes (compiler.compile_graph)
FRONT_END_PASSES = ["drop_output_softmax", "select_as_conv"]


def run_passes(graph, names: list[str]):
    for name in names:
        graph = PASSES[name](graph)
    return graph
