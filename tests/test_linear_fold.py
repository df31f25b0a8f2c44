"""Linear bottlenecks: a Conv + BN with no activation after it, composed into the weighted layer
that reads it (`passes.fold_linear_layers`), through residual Adds, channel Concats and channel
permutations.

Random QCFS networks (BN statistics from real images, random BN scales and shifts, ReLU6 swapped for QCFS by `relu_to_qcfs` as the
coverage bench does) fed real CIFAR-10 images normalised by mean/std (signed inputs):
* "mobilenet": MobileNetV2's inverted residuals -- a stage of three blocks whose linear 1x1
  projections are summed into a residual stream (x1 = p1(h1), x2 = x1 + p2(h2), x3 = x2 + p3(h3)),
  read by the next block's 1x1 expand conv: it becomes one composed conv per activation source;
* "depthwise": ShuffleNetV2's depthwise 3x3 + BN without activation read by a 1x1 conv (stride 1,
  and stride 2 on a stride-1 depthwise conv: the strides multiply), a linear 1x1 conv read by
  Flatten -> Linear, and ShuffleNet's channel shuffle (Reshape/Transpose) and split (Slice) between
  a Concat and the convs reading it;
* "padded": a linear 1x1 conv + BN read by a 3x3 conv with padding -- refused (the padded border
  would lose the BN's shift), on the command line: exit 2, one line naming the node and the scheme.
Handed over as the TorchScript ONNX export, the dynamo ONNX export, a .pt2 file and the module:
bitplane compiles them with 0 conversion mismatches on every layer, and each lowered layer,
fed the codes of the graph *before* the composition, reproduces that graph's pre-activation to
float64 rounding (so a wrong composition cannot hide behind an exact conversion: the SNN and the
integer reference are both built from the composed graph).
"""
import copy
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import DATA, ROOT
from neurodeploy import api
from neurodeploy.errors import NeurodeployError
from neurodeploy.frontends.onnx import load_onnx
from neurodeploy.ir import float_graph as fg
from neurodeploy.ir.float_eval import evaluate
from neurodeploy.lowering.input_quant import input_quantiser
from neurodeploy.lowering.lower import lower
from neurodeploy.nn import relu_to_qcfs
from neurodeploy.passes import FRONT_END_PASSES, run_passes
from neurodeploy.passes.linear_fold import fold_linear_layers
from test_cli import assert_clean_error, run
from test_concat import _apply_real_chain

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_coverage as coverage  # noqa: E402
from cifar_nets import calibrate_batchnorm  # noqa: E402

CIFAR = DATA / "cifar10_subset.npz"
EXPORTERS = ["onnx-ts", "onnx-dynamo", "pt2", "module"]


def conv_bn(c_in, c_out, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU6()] if act else layers


class InvertedResidual(nn.Module):
    """MobileNetV2's block: [1x1 expand + BN + ReLU6], depthwise 3x3 + BN + ReLU6, 1x1 projection + BN
    (linear), added to the input where shapes allow."""

    def __init__(self, c_in, c_out, expand, stride=1):
        super().__init__()
        h = c_in * expand
        self.residual = stride == 1 and c_in == c_out
        self.conv = nn.Sequential(*(conv_bn(c_in, h, 1) if expand != 1 else []), *conv_bn(h, h, 3, stride, h),
                                  *conv_bn(h, c_out, 1, act=False))

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


def shuffle(x, groups=2):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class DepthwiseNet(nn.Module):
    """stem -> depthwise 3x3/2 + BN (linear) -> 1x1 + BN + ReLU -> ShuffleNet unit (channel split,
    depthwise 3x3 + BN (linear) -> 1x1 + BN + ReLU on one half, Concat, shuffle) -> depthwise 3x3 + BN
    (linear) -> 1x1/2 + BN + ReLU -> 1x1 + BN (linear) -> Flatten -> Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 8, 3, 2))
        self.down = nn.Sequential(*conv_bn(8, 8, 3, 2, 8, act=False), *conv_bn(8, 8, 1))
        self.branch = nn.Sequential(*conv_bn(4, 4, 3, 1, 4, act=False), *conv_bn(4, 4, 1))
        self.tail = nn.Sequential(*conv_bn(8, 8, 3, 1, 8, act=False), *conv_bn(8, 6, 1, 2), *conv_bn(6, 4, 1, act=False),
                                  nn.Flatten(), nn.Linear(4 * 4 * 4, 10))

    def forward(self, x):
        x = self.down(self.stem(x))
        x = shuffle(torch.cat([self.branch(x[:, 4:]), x[:, :4]], 1))
        return self.tail(x)


def _network(kind: str, seed: int = 0):
    """The net with random BN statistics and its ReLU6s as QCFS(7), calibrated on 64 CIFAR images."""
    torch.manual_seed(seed)
    if kind == "mobilenet":
        model = nn.Sequential(*conv_bn(3, 8, 3, 2), InvertedResidual(8, 6, 1), InvertedResidual(6, 6, 2),
                              InvertedResidual(6, 6, 2), InvertedResidual(6, 8, 2, 2), *conv_bn(8, 16, 1),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    elif kind == "depthwise":
        model = DepthwiseNet()
    else:                     # "padded": a linear 1x1 + BN read by a padded 3x3
        model = nn.Sequential(*conv_bn(3, 8, 3, 2), *conv_bn(8, 6, 1, act=False), *conv_bn(6, 8, 3),
                              nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    x, _ = coverage.images(CIFAR, "train", coverage.N_CALIBRATION, 32)
    calibrate_batchnorm(model, torch.from_numpy(x))     # BN statistics from real images, then a random
    with torch.no_grad():                               # affine part (its shift: a bias the composition carries)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.3, 0.3)
    relu_to_qcfs(model, 7, torch.from_numpy(x))
    return model, x


def _source(model, x, exporter, tmp_path):
    if exporter == "module":
        return model
    path = tmp_path / ("model.pt2" if exporter == "pt2" else "model.onnx")
    coverage.export(model, torch.from_numpy(x[:1]), exporter, path)
    return path


# layers fed by several branches: the expand convs reading x2 (2 sources) and x3 (3); the depthwise
# conv after the shuffle, read by a 1x1/2, reads both parts of the Concat (2)
JOINED = {"mobilenet": [2, 3], "depthwise": [2]}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("kind", ["mobilenet", "depthwise"])
def test_linear_layers_compose_and_compile_bitplane_exactly(tmp_path, kind, exporter):
    model, x = _network(kind)
    source = _source(model, x, exporter, tmp_path)
    net = api.compile(source, torch.from_numpy(x[:1]) if exporter == "module" else None, scheme="bitplane",
                      calibration=x)
    assert any("composed" in note for note in net.graph.meta["front_end_notes"])
    # the residual stream x3 = p1(h1) + p2(h2) + p3(h3) read by the next expand conv: 3 branches
    assert [len(l.branches) for l in net.graph.neuron_layers() if len(l.branches) > 1] == JOINED[kind]
    x_test, _ = coverage.images(CIFAR, "test", 16, 32)
    r = api.verify(net, source, x_test, np.zeros(16, dtype=np.int64))
    assert r["guarantee_holds"], r["verdict"]
    assert [l["layer"] for l in r["layers"] if l["conversion_mismatches"] != 0] == []
    assert all(l["spikes"] > 0 for l in r["layers"][1:-1]), r["layers"]    # no silent layer
    assert r["agreement"]["snn_vs_quantised_ann"] == 1.0


def test_composed_depthwise_network_is_sws_exact(tmp_path):
    """sws (stepwise weighted spikes) runs the composed convolutions by its own guarantee: the depthwise
    net is exact on every layer (measured 0 mismatches of all on 8 test images).  (The MobileNet-like
    net's readout after a global pool is sws's known refusal: its weights round to 0.)"""
    model, x = _network("depthwise")
    path = _source(model, x, "onnx-ts", tmp_path)
    net = api.compile(path, scheme="sws", calibration=x)
    x_test, _ = coverage.images(CIFAR, "test", 8, 32)
    r = api.verify(net, path, x_test, np.zeros(8, dtype=np.int64))
    assert r["guarantee_holds"], r["verdict"]
    assert [l["layer"] for l in r["layers"] if l["conversion_mismatches"] != 0] == []
    assert any(len(l.branches) > 1 for l in net.graph.neuron_layers())


def _absolute(branch):
    """The branch with the absolute values of its weights (the magnitude of the products it sums)."""
    branch = copy.deepcopy(branch)
    for op in branch.ops:
        if hasattr(op, "weight"):
            op.weight = np.abs(op.weight)
    return branch


def _chan(a, v):
    return np.asarray(a).reshape((-1,) + (1,) * (v.ndim - 2)) if np.ndim(a) else a


@pytest.mark.parametrize("kind", ["mobilenet", "depthwise"])
def test_lowered_layers_reproduce_the_graph_before_composition(tmp_path, kind):
    """Each lowered layer, fed the codes of its sources as the *uncomposed* graph computes them (the
    graph as the front end read it: channel shuffle and split as Reshape/Transpose/Slice, not as
    convolutions), gives that graph's pre-activation (x·in_scale + offset; the readout's logits) to float64 rounding.
    The composition sums other products than the uncomposed graph (Wc·(Wp·x) vs (Wc·Wp)·x).  Each side
    is a float64 sum (nested, for the uncomposed one) of fewer than 2,000 products (here at most ~100),
    whose round-off is below 2,000·2^-53 < 2^-42 times the sum of its products' absolute values.  That
    magnitude `mag` is measured with the absolute values of the composed weights (|Wc·Wp| <= |Wc|·|Wp|:
    cancellation in Wc·Wp can make it smaller than the uncomposed side's), and 2^-41·mag = 4.5e-13·mag
    is allowed: the worst error / mag measured 1.8e-15 (mobilenet) and 9.2e-16 (depthwise).
    A branch dropped, a bias term left out or the shuffle's permutation inverted changes values by O(1)."""
    model, x = _network(kind)
    read = load_onnx(_source(model, x, "onnx-ts", tmp_path))
    scheme = ["fold_bn", "fuse_quant_act", "drop_redundant_relu", "bias_shift", input_quantiser(x, 8)]
    before = run_passes(read, scheme)      # as read: Slice, Reshape/Transpose, Conv -> BN -> Conv all there
    after = run_passes(read, list(FRONT_END_PASSES) + scheme)
    enc, layers = lower(after)
    origin = {enc.name: enc.float_node, **{l.name: l.float_node for l in layers}}
    values = evaluate(before, x.astype(np.float64))
    codes = {n: values[n] / _chan(before.op(n).out_step, values[n]) for n in origin.values()
             if n in before.g and isinstance(before.op(n), fg.QuantAct)}
    assert len(codes) == len(layers)     # every activation of the uncomposed graph is a layer (and the input)
    worst = 0.0
    for layer in layers:
        u = sum(_apply_real_chain(b, codes[origin[b.source]]) for b in layer.branches).numpy()
        mag = sum(_apply_real_chain(_absolute(b), codes[origin[b.source]]) for b in layer.branches).numpy()
        u = u + layer.bias.reshape((1, -1) + (1,) * (u.ndim - 2))
        mag = mag + np.abs(layer.bias).reshape((1, -1) + (1,) * (u.ndim - 2))
        if layer.quant is None:
            want = values[before.output]
        else:
            q = before.op(layer.float_node)
            (src,) = before.inputs(layer.float_node)
            want = values[src] * _chan(q.in_scale, values[src]) + _chan(q.offset, values[src])
        err = np.abs(u - want)
        assert np.all(err <= 2.0 ** -41 * mag), (layer.name, float(np.max(err - 2.0 ** -41 * mag)))
        worst = max(worst, float(np.max(err / np.maximum(mag, 1e-300))))
    assert worst > 0            # the composition did change the sums (the check is not vacuous)
    assert max(len(l.branches) for l in layers) > 1


@pytest.mark.parametrize("producer, reader", [
    # (kernel, stride, padding, dilation, groups) of the linear producer; (stride, groups) of the 1x1 reader
    ((3, 1, 1, 1, 6), (1, 1)),     # depthwise, read by a dense 1x1
    ((3, 2, 1, 1, 6), (1, 1)),     # depthwise stride 2 (ShuffleNet's branch1)
    ((3, 1, 1, 1, 6), (2, 1)),     # a stride-2 1x1 reader: strides multiply
    ((3, 2, 0, 2, 3), (2, 3)),     # grouped producer and reader, dilated, both strided
    ((1, 1, 0, 1, 1), (1, 2)),     # two 1x1 (MobileNetV2's projection read by the next expand)
])
def test_composition_is_the_two_convolutions(producer, reader):
    """Conv∘Conv composed by the pass == the two convolutions in float64, on a 9x9 and a 10x10 map
    (so both parities of the strided output size are covered): the geometry (stride sp·s, the
    producer's padding and dilation), the grouping and the bias bc + Wc·bp are right.
    float64 round-off of sums of < 60 products of magnitude < 10: < 1e-12."""
    k, s, p, d, g = producer
    s_r, g_r = reader
    rng = np.random.default_rng(0)
    for hw in (9, 10):
        graph = fg.FloatGraph()
        graph.add("x", fg.Input((6, hw, hw)))
        graph.add("p", fg.Conv(rng.normal(size=(6, 6 // g, k, k)), rng.normal(size=6), (s, s), (p, p), (d, d), g), ["x"])
        graph.add("r", fg.Conv(rng.normal(size=(6, 6 // g_r, 1, 1)), rng.normal(size=6), (s_r, s_r), (0, 0), (1, 1), g_r),
                  ["p"])
        graph.output = "r"
        folded = fold_linear_layers(graph)
        assert [type(folded.op(n)).__name__ for n in folded.topo_order()] == ["Input", "Conv"]
        x = rng.normal(size=(2, 6, hw, hw))
        want = evaluate(graph, x)[graph.output]
        got = evaluate(folded, x)[folded.output]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_a_padded_reader_of_a_biased_linear_layer_is_refused(tmp_path):
    model, x = _network("padded")
    path = _source(model, x, "onnx-ts", tmp_path)
    np.save(tmp_path / "cal.npy", x)
    r = run("compile", path, "--scheme", "bitplane", "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "out")
    assert_clean_error(r, "(Conv)", "padded border would lose the bias", "(scheme 'bitplane')",
                       "insert a quantised activation")
    assert not (tmp_path / "out").exists()
    for scheme in ("sws", "rate", "sdnn"):
        with pytest.raises(NeurodeployError) as info:
            api.compile(path, scheme=scheme, calibration=x)
        line = info.value.one_line()
        assert "padded border would lose the bias" in line and f"(scheme '{scheme}')" in line, line


def test_a_linear_layer_read_by_a_pool_stays_refused(tmp_path):
    """Only weighted readers compose: a linear conv read by an average pool and then the readout
    is left as it was, and refused as before (the readout reads a bias through the pool)."""
    torch.manual_seed(0)
    model = nn.Sequential(*conv_bn(3, 8, 3, 2), *conv_bn(8, 6, 1, act=False), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(6 * 8 * 8, 10)).eval()
    x, _ = coverage.images(CIFAR, "train", 16, 32)
    relu_to_qcfs(model, 7, torch.from_numpy(x))
    with pytest.raises(NeurodeployError, match="without an activation") as info:
        api.compile(_source(model, x, "onnx-ts", tmp_path), scheme="bitplane", calibration=x)
    assert "(scheme 'bitplane')" in info.value.one_line()


def test_layers_without_a_linear_producer_are_unchanged():
    """A ResNet-like residual (Add of two activations read by a quantiser) and a Concat of activations
    read by a conv have no linear Conv to compose: the pass returns the graph as it was."""
    graph = fg.FloatGraph()
    graph.add("x", fg.Input((2, 4, 4)))
    q = lambda: fg.QuantAct(np.float64(1.0), np.float64(0.5), 7, np.float64(1.0))  # noqa: E731
    graph.add("a", q(), ["x"])
    graph.add("c1", fg.Conv(np.ones((2, 2, 1, 1)), np.zeros(2)), ["a"])
    graph.add("b", q(), ["c1"])
    graph.add("cat", fg.Concat(0), ["a", "b"])
    graph.add("c2", fg.Conv(np.ones((3, 4, 1, 1)), np.ones(3)), ["cat"])
    graph.output = "c2"
    folded = fold_linear_layers(graph)
    assert sorted(folded.g.edges) == sorted(graph.g.edges) and not folded.notes


@pytest.mark.parametrize("chain, permutes", [
    ([fg.Reshape((2, 3, 2, 3)), fg.Transpose((1, 0, 2, 3)), fg.Reshape((6, 2, 3))], True),   # channel shuffle
    ([fg.Reshape((3, 2, 2, 3)), fg.Transpose((1, 0, 2, 3)), fg.Reshape((6, 2, 3))], True),   # the inverse one
    ([fg.Reshape((6, 6)), fg.Transpose((1, 0)), fg.Reshape((6, 2, 3))], False),              # mixes H, W into C
    ([fg.Transpose((0, 2, 1)), fg.Reshape((6, 2, 3))], False),                               # moves H and W
])
def test_channel_permutations_become_convolutions_that_copy(chain, permutes):
    """select_as_conv makes a Reshape/Transpose chain that moves whole channels one fixed 1x1 Conv
    (0/1 weights: the copy is exact, compared with ==), and leaves any other chain as it is."""
    from neurodeploy.passes import select_as_conv
    graph = fg.FloatGraph()
    graph.add("x", fg.Input((6, 2, 3)))
    prev = "x"
    for k, op in enumerate(chain):
        prev = graph.add(f"l{k}", op, [prev])
    graph.output = prev
    out = select_as_conv(graph)
    ops = [type(out.op(n)).__name__ for n in out.topo_order()]
    assert ops == (["Input", "Conv"] if permutes else ["Input"] + [type(op).__name__ for op in chain])
    x = np.random.default_rng(0).normal(size=(2, 6, 2, 3))
    assert np.array_equal(evaluate(out, x)[out.output], evaluate(graph, x)[graph.output])
