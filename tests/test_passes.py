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
