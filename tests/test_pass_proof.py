"""The front-end passes are proven to keep the function (`passes.proof`): a pass that changes what
the network computes stops the compile naming itself; a correct one compiles."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import MODELS
from neurodeploy.compiler import compile_graph, load_model
from neurodeploy import passes
from neurodeploy.passes import layout, linear_fold
from neurodeploy.passes.proof import PassProofError
from test_linear_fold import _network, _source


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """A small MobileNetV2 (linear bottlenecks through residual Adds) as read from ONNX, and its calibration."""
    model, x = _network("mobilenet")
    return load_model(_source(model, x, "onnx", tmp_path_factory.mktemp("pass_proof"))), x


def _without_composed_bias(expand):
    """fold_linear_layers's `expand` with the composed bias Wr·bp (and the BN shifts) dropped: only
    the reader's own bias is kept -- the mutation that no bitplane test noticed."""
    def mutated(graph, r, shapes):
        found = expand(graph, r, shapes)
        if found is None or isinstance(found, str):
            return found
        return found[0], linear_fold._start(graph, r, shapes)[1]
    return mutated


def test_correct_passes_compile(mobilenet):
    graph, x = mobilenet
    net = compile_graph(graph, scheme="bitplane", options={"calibration": x})
    assert any("composed" in note for note in net.meta["front_end_notes"])


def test_dropped_composed_bias_is_refused(mobilenet, monkeypatch):
    graph, x = mobilenet
    monkeypatch.setattr(linear_fold, "expand", _without_composed_bias(linear_fold.expand))
    with pytest.raises(PassProofError, match=r"the front-end pass 'fold_linear_layers' changed what the network "
                       r"computes: the float graph differs from the graph as read .*beyond the float round-off "
                       r"bound .*please report it") as exc:
        compile_graph(graph, scheme="bitplane", options={"calibration": x})
    assert "\n" not in str(exc.value)


def test_broken_selection_permutation_is_refused(monkeypatch):
    """ResNet-20's option-A shortcut as a 1x1 conv copying the wrong channels."""
    conv = layout._Selection.conv

    def rolled(self):
        op = conv(self)
        return dataclasses.replace(op, weight=np.roll(op.weight, 1, axis=0))
    monkeypatch.setattr(layout._Selection, "conv", rolled)
    with pytest.raises(PassProofError, match=r"the front-end pass 'select_as_conv' changed what the network computes"):
        compile_graph(load_model(MODELS / "cifar_resnet20_qcfs.onnx"), scheme="bitplane", options={"chips": "auto"})


def test_a_value_changed_without_declaring_it_is_refused(tmp_path, monkeypatch):
    """fold_adaptive_pool declares the Flatten it makes read the 2x2 map (Pass.changes); without the
    declaration that Flatten's value (4 values a channel, not 49) is compared, and refused in one line."""
    from test_adaptive_pool import _graph, _inputs, vgg_like
    from test_adaptive_pool import _source as pool_source
    x = _inputs(2, 8)
    graph = _graph(pool_source(vgg_like(2, "linear"), x, "pt2", tmp_path), x, "pt2")
    compile_graph(graph, scheme="bitplane", options={"calibration": x})        # declared: compiles
    undeclared = dataclasses.replace(passes.PASSES["fold_adaptive_pool"], changes=None)
    monkeypatch.setitem(passes.PASSES, "fold_adaptive_pool", undeclared)
    with pytest.raises(PassProofError, match=r"the front-end pass 'fold_adaptive_pool' changed what the network "
                       r"computes: the float graph's value has shape \[2, \d+\] where the graph as read computes"):
        compile_graph(graph, scheme="bitplane", options={"calibration": x})
