"""Adaptive average pooling with non-uniform windows (VGG's 1x1 -> 7x7 at 32x32): read by every
front end, proven, folded into the weighted layer after it (`passes.fold_adaptive_pool`), exact.

A random QCFS VGG-like network -- conv, BN, QCFS, max pool to a 1x1 or 2x2 map, AdaptiveAvgPool2d
((7, 7)), Flatten, Linear, QCFS, Linear readout (and a variant whose pool is read by a Conv that
covers the pooled map) -- given as the nn.Module, as a .pt2 file and as the dynamo exporter's ONNX
(whose gather-based decomposition of the pool is read as one op): the folded graph computes what
PyTorch computes within the float32 round-off bound of `float32_bounds` (nothing is approximated
by the fold), and bitplane compiles it with 0 conversion mismatches.  A pool that no weighted layer
reads is refused by the scheme in one line naming the node.
"""
import contextlib
import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from float32_bounds import forward_bound
from neurodeploy import api
from neurodeploy.frontends.onnx import load_onnx
from neurodeploy.frontends.torch import load_pt2, load_torch
from neurodeploy.ir import float_graph as fg
from neurodeploy.ir.float_eval import evaluate
from neurodeploy.nn import QCFS
from neurodeploy.passes import FRONT_END_PASSES, run_passes
from neurodeploy.passes.adaptive_pool import pooling_matrix
from test_cli import assert_clean_error, run

C = 4                       # channels of the pooled map
U64 = 2.0 ** -53


def vgg_like(map_hw: int, head: str = "linear", seed: int = 0) -> nn.Module:
    """3 x 2m x 2m -> conv, BN, QCFS, 2x2 max pool -> m x m -> adaptive pool (7, 7) -> head."""
    torch.manual_seed(seed)
    if head == "linear":
        tail = [nn.Flatten(), nn.Linear(C * 49, 8)]
    else:                   # a Conv whose kernel covers the 7x7 pooled map (output 1x1)
        tail = [nn.Conv2d(C, 8, 7), nn.Flatten()]
    model = nn.Sequential(nn.Conv2d(3, C, 3, padding=1), nn.BatchNorm2d(C), QCFS(C, 7), nn.MaxPool2d(2),
                          nn.AdaptiveAvgPool2d((7, 7)), *tail, QCFS(8, 7), nn.Linear(8, 5))
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
        for m in model.modules():
            if isinstance(m, QCFS):
                m.lam.fill_(0.8)
    return model.eval()


def _inputs(map_hw: int, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, 2 * map_hw, 2 * map_hw)).astype(np.float32)


def _source(model: nn.Module, x: np.ndarray, kind: str, tmp_path):
    """The model as the front end `kind` reads it: the module itself, a .pt2 file, or a dynamo ONNX file."""
    example = torch.from_numpy(x[:1])
    if kind == "module":
        return model
    if kind == "pt2":
        path = tmp_path / "m.pt2"
        torch.export.save(torch.export.export(model, (example,)), str(path))
        return path
    path = tmp_path / "m.onnx"
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True)
    return path


def _graph(source, x: np.ndarray, kind: str) -> fg.FloatGraph:
    """The front end's (proven) float graph of `source`."""
    if kind == "module":
        return load_torch(source, torch.from_numpy(x[:1]), probe=x)
    return load_pt2(source, probe=x) if kind == "pt2" else load_onnx(source, probe=x)


@pytest.mark.parametrize("hw_in, hw_out", [((1, 1), (7, 7)), ((2, 2), (7, 7)), ((5, 5), (7, 7)), ((3, 5), (2, 3)),
                                           ((7, 3), (3, 7)), ((6, 6), (4, 4))])
def test_pooling_matrix_is_pytorchs_adaptive_pool(hw_in, hw_out):
    x = torch.randn(2, 3, *hw_in, dtype=torch.float64)
    ours = (torch.from_numpy(pooling_matrix(hw_in, hw_out)) @ x.reshape(2, 3, -1, 1)).reshape(2, 3, *hw_out)
    # float64 round-off of a mean of at most 9 values in either order: (9 + 2)·2^-53·mean(|x|) < 16·2^-53·mean(|x|)
    tol = 16 * U64 * F.adaptive_avg_pool2d(x.abs(), hw_out)
    assert torch.all(torch.abs(ours - F.adaptive_avg_pool2d(x, hw_out)) <= tol)


@pytest.mark.parametrize("kind", ["module", "pt2", "onnx-dynamo"])
@pytest.mark.parametrize("map_hw, head", [(1, "linear"), (2, "linear"), (2, "conv")])
def test_adaptive_pool_folds_and_compiles_exactly(tmp_path, kind, map_hw, head):
    model = vgg_like(map_hw, head)
    x = _inputs(map_hw, 32)
    source = _source(model, x, kind, tmp_path)
    read = _graph(source, x, kind)
    pools = [n for n in read.g if isinstance(read.op(n), fg.AdaptiveAvgPool)]
    assert len(pools) == 1 and read.op(pools[0]).output_size == (7, 7)       # read as one op, proven
    folded = run_passes(read, FRONT_END_PASSES)
    assert not any(isinstance(folded.op(n), fg.AdaptiveAvgPool) for n in folded.g)
    weighted = [folded.op(n) for n in folded.topo_order() if isinstance(folded.op(n), (fg.Conv, fg.Dense))]
    assert weighted[1].weight.reshape(8, -1).shape == (8, C * map_hw * map_hw)   # W·P reads the m x m map
    assert any("folded into" in note for note in folded.notes)

    # the folded graph (float64) vs PyTorch (float32): within the float32 round-off bound E of the
    # forward pass on every sample with no quantiser element within rounding of a step (measured: all
    # 32 of them), plus the float64 round-off of the fold's own sums (2^-53 per term, < 2^-40 here)
    bound = forward_bound(model, x)
    ours = evaluate(folded, x)[folded.output]
    with torch.no_grad():
        theirs = model(torch.from_numpy(x)).numpy()
    sure = bound.ambiguous.numpy() == 0
    assert sure.sum() >= 30, bound.ambiguous
    tol = bound.e.numpy() + 2.0 ** -40 * bound.mag.numpy()
    assert np.all(np.abs(ours - theirs)[sure] <= tol[sure])
    assert np.all(np.abs(ours - bound.v.numpy())[sure] <= tol[sure])

    net = api.compile(source, torch.from_numpy(x[:1]) if kind == "module" else None, scheme="bitplane",
                      calibration=x)
    r = api.verify(net, source, x, np.zeros(len(x), dtype=np.int64))
    assert r["guarantee_holds"], r["verdict"]
    assert [l["conversion_mismatches"] for l in r["layers"]] == [0] * len(r["layers"])
    assert r["agreement"]["snn_vs_quantised_ann"] == 1.0


def test_a_pool_no_weighted_layer_reads_is_refused_naming_node_and_scheme(tmp_path):
    """2x2 -> 3x3 read by a quantiser (not a Linear/Conv): nothing to fold it into."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, C, 3, padding=1), QCFS(C, 7), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d((3, 3)),
                          QCFS(C, 7), nn.Flatten(), nn.Linear(C * 9, 5)).eval()
    x = _inputs(2, 8)
    path = _source(model, x, "pt2", tmp_path)
    np.save(tmp_path / "cal.npy", x)
    for scheme in ("bitplane", "rate"):
        r = run("compile", path, "--scheme", scheme, "--calibration", tmp_path / "cal.npy", "-o", tmp_path / scheme)
        assert_clean_error(r, "'3' (AdaptiveAvgPool2d", "adaptive average pooling of a 2x2 map to 3x3",
                           "not read only by a Linear or a Conv", f"(scheme '{scheme}')")
        assert not (tmp_path / scheme).exists()
