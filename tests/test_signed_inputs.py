"""Signed inputs (mean/std-normalised images): the input quantiser's zero point is exact.

The zero point goes into the biases of the layers that read the input, and the first
convolution's zero padding is applied by the host encoder before encoding (InputEncoder.pad),
so that padded positions carry the code of 0.0 (lowering/input_quant.py).  Every layer of the SNN
must then equal the integer reference (0 conversion mismatches) and the quantised ANN must follow
the float model up to the input rounding.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy import api
from neurodeploy.errors import UnsupportedError
from neurodeploy.nn import QCFS, export_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_torch_frontend import _randomise, cifar_resnet  # noqa: E402


def normalised_resnet():
    """The CIFAR option-A ResNet without an input quantiser: it reads normalised (signed) pixels."""
    model, shape = cifar_resnet("A")
    model.quant = nn.Identity()
    return model.eval(), shape


def signed_samples(shape, n=48, seed=0):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape[1:])).astype(np.float32)


def _exact(r):
    assert r["guarantee_holds"]
    assert all(l["conversion_mismatches"] == 0 for l in r["layers"]), r["layers"]
    assert r["agreement"]["snn_vs_quantised_ann"] == 1.0


@pytest.mark.parametrize("source", ["module", "onnx"])
def test_normalised_input_resnet_is_bitplane_exact(tmp_path, source):
    model, shape = normalised_resnet()
    x = signed_samples(shape)
    assert x.min() < -2 and x.max() > 2
    if source == "onnx":
        path = tmp_path / "signed.onnx"
        export_onnx(model, torch.zeros(shape), path)
        net = api.compile(path, calibration=x)
        r = api.verify(net, path, x, np.zeros(len(x), dtype=np.int64))
    else:
        net = api.compile(model, torch.from_numpy(x[:2]), calibration=x)
        r = api.verify(net, model, x, np.zeros(len(x), dtype=np.int64))
    enc = net.graph.input
    assert enc.pad == (1, 1, 1, 1) and tuple(enc.shape) == (3, 10, 10) and enc.input_shape == (3, 8, 8)
    assert net.input_shape == (3, 8, 8)
    _exact(r)
    # the zero point is a whole number of steps, so padded positions decode to exactly 0.0
    zero = int(np.floor(float(enc.offset)))
    assert 0 < zero < enc.neuron.code_max and float(enc.offset) == zero + 0.5
    # SNN (= quantised ANN) vs float model: the 8-bit input and weight formats separate them (measured
    # on the session's pinned float path, both sources: 45/48 predictions agree on this random-weight
    # network, whose logits lie close together)
    assert r["agreement"]["snn_vs_float"] >= 44 / 48


def test_signed_input_mlp_folds_the_zero_point_into_the_first_dense_layer():
    torch.manual_seed(3)
    model = _randomise(nn.Sequential(nn.Flatten(), nn.Linear(12, 16), QCFS(7), nn.Linear(16, 4)), 3)
    x = signed_samples((1, 3, 2, 2), seed=3)
    net = api.compile(model, torch.from_numpy(x[:2]), calibration=x)
    assert net.graph.input.pad == (0, 0, 0, 0)
    _exact(api.verify(net, model, x, np.zeros(len(x), dtype=np.int64)))


def test_signed_input_read_by_convolutions_with_different_paddings_is_refused():
    class TwoPaths(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(2, 4, 1)
            self.act, self.fc = QCFS(3), nn.Linear(4 * 5 * 5, 2)

        def forward(self, x):
            return self.fc(self.act(self.a(x) + self.b(x)).flatten(1))
    model = TwoPaths().eval()
    x = signed_samples((1, 2, 5, 5), seed=4)
    with pytest.raises(UnsupportedError, match="bias or shift reaches a Conv") as info:
        api.compile(model, torch.from_numpy(x[:2]), calibration=x)
    assert "scheme 'bitplane'" in str(info.value) and len(str(info.value).splitlines()) == 1


def test_zero_point_folding_is_exact_on_the_quantisation_grid():
    """On inputs that lie on the input quantiser's grid, the float graph with the zero point folded
    (host padding + unpadded first conv with the shifted bias) computes what the model computes, at
    every node and at the borders too (where code 0 would stand for x = lo, not 0)."""
    from neurodeploy.frontends.torch import load_torch
    from neurodeploy.passes import run_passes
    from neurodeploy.lowering.input_quant import insert_input_quantiser
    from neurodeploy.ir.float_eval import evaluate
    model, shape = normalised_resnet()
    x = signed_samples(shape)
    graph = run_passes(load_torch(model, torch.from_numpy(x[:2])), ["fold_bn"])
    folded = insert_input_quantiser(graph, x, 8)
    assert "input_padding" in folded.g and not any(folded.op(n).padding != (0, 0) for n in folded.consumers("input_quant"))
    lo, hi = min(float(x.min()), 0.0), float(x.max())
    step = (hi - lo) / 255
    zero = round(-lo / step)
    on_grid = np.clip(np.round(x.astype(np.float64) / step), -zero, 255 - zero) * step   # float64 throughout
    want, got = evaluate(graph, on_grid, keep={"conv1"}), evaluate(folded, on_grid, keep={"conv1"})
    # the first convolution, border rows and columns included (later nodes hold floors, which any
    # 1e-16 difference of summation order could flip: they are covered by the SNN tests above)
    assert np.abs(want["conv1"] - got["conv1"]).max() <= 1e-9 * max(1.0, float(np.abs(want["conv1"]).max()))


def test_normalised_input_with_padded_stem_compiles_sdnn_exact():
    """sdnn found its input quantiser as the input's direct consumer; with a signed input and a padded
    first convolution the host's zero padding sits in between, so the input quantiser was taken for
    a hidden activation and its 255 levels replaced by the unit quantiser's 2^30 (compile then
    failed its own range check: "DeltaEncoder.code_max = 1073741824 ... a neurodeploy bug")."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), QCFS(7), nn.Conv2d(8, 8, 3, padding=1), QCFS(7),
                          nn.Flatten(), nn.Linear(8 * 8 * 8, 10)).eval()
    x = signed_samples((1, 3, 8, 8), n=32)
    net = api.compile(model, torch.from_numpy(x[:1]), scheme="sdnn", calibration=x)
    assert net.graph.layers[0].neuron.code_max == 255          # the 8-bit input quantiser's levels
    r = api.verify(net, model, x[:16], np.zeros(16, dtype=np.int64))
    assert all(l["conversion_mismatches"] == 0 for l in r["layers"]), r["layers"]
    assert r["verdict"]["word"] == "EXACT"
