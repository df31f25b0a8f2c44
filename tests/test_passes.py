"""The pass manager: each pass's `requires` is checked before it and its `ensures` after it."""

import numpy as np
import pytest

from neurodeploy.frontends.onnx import load_onnx
from neurodeploy.ir import float_graph as fg
from neurodeploy.lowering.input_quant import input_quantiser
from neurodeploy.lowering.lower import lower
from neurodeploy.passes import PASSES, FlowError, Pass, run_passes
from conftest import MODELS  # noqa: E402



def graph():
    return load_onnx(MODELS / "digits_qcfs.onnx")          # BatchNorm nodes, QCFS as floor chains


def test_a_pass_out_of_order_fails_at_that_pass():
    with pytest.raises(FlowError, match="pass 'bias_shift' requires: bn_folded, quantisers_fused"):
        run_passes(graph(), ["bias_shift"])
    with pytest.raises(FlowError, match="pass 'input_quantiser' requires: quantisers_fused"):
        run_passes(graph(), ["fold_bn", input_quantiser(None, 8)])
    with pytest.raises(FlowError, match="lower requires: bn_folded"):
        lower(run_passes(graph(), ["fuse_quant_act"]))


def test_a_pass_that_breaks_its_promise_fails():
    liar = Pass("liar", lambda g: g, ensures=("bn_folded",))
    with pytest.raises(FlowError, match="pass 'liar' ensures: bn_folded"):
        run_passes(graph(), [liar])


def test_the_bitplane_flow_in_order_lowers():
    g = run_passes(graph(), ["fold_bn", "fuse_quant_act", "drop_redundant_relu", "bias_shift",
                             input_quantiser(None, 8)])
    assert not any(isinstance(g.op(n), (fg.BatchNorm, fg.Floor)) for n in g.topo_order())
    enc, layers = lower(g)
    assert enc.name == "input" and layers[-1].name == "readout" and len(layers) >= 3
    assert set(PASSES) >= {"fold_bn", "fuse_quant_act", "bias_shift", "drop_redundant_relu"}
    assert np.all(np.isfinite(layers[0].bias))


def _selection_and_softmax_graph() -> fg.FloatGraph:
    """input (4, 6, 6) -> x[:, :, ::2, ::2] -> zero-pad 2 channels each side -> Flatten -> Dense -> Softmax."""
    g = fg.FloatGraph()
    g.add("input", fg.Input((4, 6, 6)))
    g.add("slice", fg.Slice((0, 0, 0), (4, 6, 6), (1, 2, 2)), ["input"])
    g.add("pad", fg.Pad(((2, 2), (0, 0), (0, 0))), ["slice"])
    g.add("flat", fg.Flatten(), ["pad"])
    g.add("fc", fg.Dense(np.ones((3, 8 * 3 * 3)), np.zeros(3)), ["flat"])
    g.add("softmax", fg.Softmax(0), ["fc"])
    g.output = "softmax"
    return g


def test_front_end_passes_ensure_what_they_promise():
    """drop_output_softmax ensures logits_out, select_as_conv selections_as_conv: both properties
    fail on the graph before the passes and hold after them (checked by run_passes)."""
    from neurodeploy.ir.float_eval import evaluate
    from neurodeploy.passes import FRONT_END_PASSES, PROPERTIES
    g = _selection_and_softmax_graph()
    assert not PROPERTIES["logits_out"](g) and not PROPERTIES["selections_as_conv"](g)
    out = run_passes(g, FRONT_END_PASSES)
    assert PROPERTIES["logits_out"](out) and PROPERTIES["selections_as_conv"](out)
    assert out.output == "fc" and out.notes and "Softmax was dropped" in out.notes[0]
    assert type(out.op("pad")).__name__ == "Conv" and "slice" not in out.g
    x = np.random.default_rng(0).standard_normal((5, 4, 6, 6))
    assert np.array_equal(evaluate(out, x)["fc"], evaluate(g, x)["fc"])    # a 0/1 weight copies exactly
