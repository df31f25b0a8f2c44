"""Padded and ceil_mode max pooling (issue #14): lowered exactly where the pooled values are >= 0.

ONNX and PyTorch pad max pooling with -inf; our spiking kernels and Lava processes pad with 0
(silent trains / payloads).  On codes >= 0 both give the same max whenever every window holds a
real element, which PyTorch's pad <= kernel / 2 guarantees.  A random QCFS network with
ResNet's stem pool (3x3/2, padding 1) and ceil_mode pools, given as the TorchScript ONNX export,
as torch.export's .pt2 and as the module itself, compiles with bitplane to an SNN equal to the
integer reference on every layer; the schemes whose values entering a max pool are not a code
(rate, sws, sdnn) refuse it on the command line: exit 2, one line naming the layer and scheme.
(Our simulator == Lava fixed_pt on padded pools: tests/test_lava_backend.py, test_reverb_lava.py.)
"""
import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from netgen import NetBuilder

from neurodeploy import api
from neurodeploy.ir import serialize
from neurodeploy.ir import synapses as syn
from neurodeploy.ir.validate import _Invalid, op_shape
from neurodeploy.nn import QCFS, export_onnx
from test_cli import assert_clean_error, run
from test_torch_frontend import _randomise

SHAPE = (3, 10, 9)


class PoolNet(nn.Module):
    """conv-BN-QCFS, a 3x3/2 max pool with padding 1, conv-QCFS, a ceil_mode max pool, readout.

    ceil=False: 10x9 -pool-> 5x5 -pool(2x2/2, ceil_mode: a partial last window)-> 3x3;
    ceil=True:  10x9 -pool(ceil_mode: a partial last row of windows over the bottom padding)-> 6x5
                -pool(3x3/2, ceil_mode: the same)-> 3x2."""

    def __init__(self, ceil: bool):
        super().__init__()
        self.q0 = QCFS(15, 1.0, trainable=False)
        self.conv1, self.bn1, self.act1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), QCFS(7)
        self.pool1 = nn.MaxPool2d(3, 2, padding=1, ceil_mode=ceil)
        self.conv2, self.act2 = nn.Conv2d(6, 6, 3, padding=1), QCFS(7)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True) if ceil else nn.MaxPool2d(2, 2, ceil_mode=True)
        self.fc = nn.LazyLinear(5)

    def forward(self, x):
        x = self.pool1(self.act1(self.bn1(self.conv1(self.q0(x)))))
        x = self.pool2(self.act2(self.conv2(x)))
        return self.fc(x.flatten(1))


# the spiking IR's max pools, (top, bottom, left, right): ceil_mode's partial windows pad the end
WANT_PADDING = {False: [(1, 1, 1, 1), (0, 1, 0, 1)], True: [(1, 2, 1, 1), (0, 1, 0, 0)]}


def _model(ceil: bool) -> nn.Module:
    torch.manual_seed(14)
    model = _randomise(PoolNet(ceil), 14)
    with torch.no_grad():
        model(torch.zeros((1,) + SHAPE))
    return model


def _source(tmp_path, model, exporter: str):
    example = torch.rand((2,) + SHAPE, generator=torch.Generator().manual_seed(0))
    if exporter == "module":
        return model
    if exporter == "onnx-ts":
        path = tmp_path / "pool.onnx"
        export_onnx(model, example, path)
    else:
        path = tmp_path / "pool.pt2"
        torch.export.save(torch.export.export(model, (example,)), path)
    return path


def _inputs(n: int = 32) -> np.ndarray:
    # a few values outside [0, 1] so that the input quantiser clips at both ends
    return np.random.default_rng(5).uniform(-0.05, 1.05, (n,) + SHAPE).astype(np.float32)


def _pools(net) -> list:
    return [op for layer in net.graph.neuron_layers() for b in layer.branches for op in b.ops
            if isinstance(op, syn.MaxPool)]


@pytest.mark.parametrize("exporter", ["onnx-ts", "pt2", "module"])
@pytest.mark.parametrize("ceil", [False, True], ids=["padded", "ceil_mode"])
def test_padded_maxpool_compiles_bitplane_exactly(tmp_path, ceil, exporter):
    model = _model(ceil)
    source = _source(tmp_path, model, exporter)
    example = torch.zeros((1,) + SHAPE)
    net = api.compile(source, example if exporter == "module" else None, scheme="bitplane")
    assert [tuple(mp.padding) for mp in _pools(net)] == WANT_PADDING[ceil]
    x = _inputs()
    r = api.verify(net, source, x, np.zeros(len(x), dtype=np.int64))
    assert r["guarantee_holds"], r["verdict"]
    assert [l["layer"] for l in r["layers"] if l["conversion_mismatches"] != 0] == []
    assert r["agreement"]["snn_vs_quantised_ann"] == 1.0
    # the float model's own outputs agree with the SNN's classes on these inputs (nothing dropped silently)
    assert r["agreement"]["snn_vs_float"] >= 0.9, r["agreement"]


def test_ir_without_padding_field_loads_unpadded(tmp_path):
    """An ir.json from before the padding field: its unpadded MaxPool loads with (0, 0, 0, 0)."""
    b = NetBuilder((2, 8, 8), 3)
    x = b.qcfs(b.conv(b.qcfs("input", 15, 1.0), 2, 4, scale=2.0), 7, 1.0)
    x = b.maxpool(x)
    m = b.model(b.gemm(b.flatten(x), 4 * 4 * 4, 3), 3)
    onnx.save(m, tmp_path / "m.onnx")
    net = api.compile(tmp_path / "m.onnx", scheme="bitplane")
    out = tmp_path / "net"
    out.mkdir()
    serialize.save(net.graph, out)
    doc = json.loads((out / serialize.IR_FILE).read_text())
    ops = [op for layer in doc["layers"] for br in layer.get("branches", []) for op in br["ops"]
           if op["type"] == "MaxPool"]
    assert len(ops) == 1 and ops[0].pop("padding") == {"tuple": [0, 0, 0, 0]}
    doc["checksums"][serialize.IR_FILE] = serialize.content_sha256(doc)
    (out / serialize.IR_FILE).write_text(json.dumps(doc))
    old = serialize.load(out)
    (mp,) = [op for layer in old.neuron_layers() for br in layer.branches for op in br.ops
             if isinstance(op, syn.MaxPool)]
    assert tuple(mp.padding) == (0, 0, 0, 0) and tuple(mp.kernel) == (2, 2)


@pytest.mark.parametrize("mp, hw, problem", [
    (syn.MaxPool((2, 2), (2, 2), (2, 0, 0, 0)), (6, 6), "a window over rows holds only padding"),
    (syn.MaxPool((3, 3), (1, 1), (0, 0, 0, 3)), (6, 6), "a window over columns holds only padding"),
    (syn.MaxPool((3, 3), (2, 2), (1, 2, 1, 2)), (10, 10), None),         # ceil_mode's partial windows: fine
])
def test_validate_refuses_windows_of_padding_only(mp, hw, problem):
    if problem is None:
        assert op_shape(mp, (4,) + hw, "op") == (4, 6, 6)
        return
    with pytest.raises(_Invalid, match=problem):
        op_shape(mp, (4,) + hw, "op")


@pytest.mark.parametrize("scheme, needle", [
    ("rate", "max pooling of spike trains is not the max of their rates"),
    ("sws", "max pooling of ternary digit trains"),
    ("sdnn", "max pooling of sigma-delta payloads"),
])
def test_schemes_without_codes_refuse_padded_maxpool(tmp_path, scheme, needle):
    path = _source(tmp_path, _model(True), "onnx-ts")
    out = tmp_path / scheme
    r = run("compile", path, "--scheme", scheme, "-o", out)
    # the float MaxPool node the user knows (its ONNX name and op), then the spiking layer it pools for
    assert_clean_error(r, f"(MaxPool): {needle}", "(layer '", f"scheme '{scheme}'")
    assert not out.exists()
