"""One network, every way torch.onnx.export writes it: each file is read, proven and compiled exactly.

The CIFAR option-A ResNet (BatchNorm, QCFS, strided-slice + channel-pad shortcuts, a global
pool) through the TorchScript exporter (dynamo=False) and the dynamo exporter (dynamo=True,
optimised or not), opsets 13 to 21, with BatchNorm kept (do_constant_folding=False) or folded,
training-mode exports (opsets 9-13 mark BatchNorm's training mode by its extra outputs, 14+ by
an attribute) and a dynamic batch dimension.  Each must compile with bitplane to the
same number of layers and verify with zero conversion mismatches.  A representative subset runs
by default, the whole grid with --runslow.
"""
import contextlib
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodeploy import api

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_torch_frontend import cifar_resnet  # noqa: E402

DEFAULT = {(False, 13, "fold", "eval"), (False, 13, "keep", "train"), (False, 21, "keep", "train"), (True, 18, "raw", "eval"),
           (True, 21, "optimised", "train")}
GRID = [(False, o, bn, mode) for o in (13, 15, 17, 19, 21) for bn in ("fold", "keep") for mode in ("eval", "train")] + \
       [(True, o, bn, mode) for o in (18, 20, 21) for bn in ("optimised", "raw") for mode in ("eval", "train")]


def export(model, shape, path, dynamo, opset, bn, mode):
    kw = dict(opset_version=opset, dynamo=dynamo, input_names=["x"])
    if mode == "train":
        kw["training"] = torch.onnx.TrainingMode.TRAINING
    if dynamo:
        kw["optimize"] = bn == "optimised"
        kw["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=1024)},)
    else:
        kw["do_constant_folding"] = bn == "fold"
        kw["dynamic_axes"] = {"x": {0: "batch"}}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, *shape[1:]),), path, **kw)
    model.eval()          # TrainingMode.TRAINING leaves the module in training mode


@pytest.mark.parametrize("dynamo, opset, bn, mode", [
    pytest.param(*v, marks=() if v in DEFAULT else pytest.mark.slow, id="-".join(map(str, v))) for v in GRID])
def test_exporter_variant_compiles_exactly(tmp_path, dynamo, opset, bn, mode):
    model, shape = cifar_resnet("A")
    path = tmp_path / "m.onnx"
    export(model, shape, path, dynamo, opset, bn, mode)
    x = np.random.default_rng(2).random((16,) + shape[1:]).astype(np.float32)
    net = api.compile(path)
    assert len(net.graph.layers) == 11
    notes = net.graph.meta.get("front_end_notes", [])
    if mode == "train" and not dynamo:
        assert any("BatchNormalization" in n and "training mode" in n for n in notes), notes
    r = api.verify(net, path, x, np.zeros(len(x), dtype=np.int64))
    assert r["guarantee_holds"] and all(l["conversion_mismatches"] == 0 for l in r["layers"])
    assert r["agreement"]["snn_vs_quantised_ann"] == 1.0
