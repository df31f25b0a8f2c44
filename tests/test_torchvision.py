"""torchvision's architectures as users build them (slow suite): random weights, QCFS, 3x32x32.

Each network is built exactly as `benchmarks/bench_coverage.py` builds the README's coverage table
(torchvision, seed 0, 10 classes, BatchNorm statistics from real CIFAR-10 images normalised by
mean/std -- signed inputs --, every ReLU swapped for QCFS(7) by `relu_to_qcfs`), exported through
the TorchScript ONNX exporter and through torch.export, compiled with bitplane and verified on
real CIFAR-10 test images: the SNN must equal the integer reference on every layer.  ImageNet's
ResNet-18 stem (conv 7x7/2, then a 3x3/2 max pool with padding 1) is among them: bitplane pools the
codes, padding with zeros (exact: codes are >= 0).  The schemes whose spikes do not carry the
codes (sws, rate, sdnn) refuse that pool on the command line: exit 2, one line naming the layer
and the scheme.  SqueezeNet 1.0 (eight Fire Concats, ceil_mode pools) is exact too, and VGG-11-BN
at 32x32 (its 1x1 -> 7x7 adaptive pool folded into the first Linear) through the dynamo exporter
and .pt2.  MobileNetV2 (linear bottlenecks summed into residual streams) and ShuffleNetV2 x0.5
(depthwise convs without activation, channel shuffle and split) compose their linear layers into
the convs that read them (`passes.fold_linear_layers`) and are exact through three exporters.
"""
import sys

import numpy as np
import pytest
import torch

from conftest import DATA, ROOT
from neurodeploy import api
from neurodeploy.ir import synapses as syn
from test_cli import assert_clean_error, run

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_coverage as coverage  # noqa: E402

CIFAR = DATA / "cifar10_subset.npz"
# of the coverage table's bitplane-exact architectures at 3x32x32: RegNet-X-400MF (5.5 M weights,
# grouped convolutions, 1 chip), ResNet-18 with the CIFAR stem (11 M weights, 29 chips) and with
# ImageNet's stem (a padded max pool)
EXACT_ARCHS = ["regnet_x_400mf", "resnet18_cifar", "resnet18"]


def _network(arch: str):
    x_cal, _ = coverage.images(CIFAR, "train", coverage.N_CALIBRATION, 32)
    model, note = coverage.build(arch, 32, x_cal)
    assert note is None, note             # every activation is a QCFS
    return model, x_cal


def compile_exact(arch: str, exporter: str, tmp_path, n_test: int = 8, model_and_data=None):
    """Export `arch` (as the coverage table builds it) through `exporter`, compile it with bitplane and
    verify it on `n_test` real CIFAR-10 test images: the SNN equals the integer reference on every
    layer and agrees with the quantised ANN.  Returns the compiled network."""
    model, x_cal = model_and_data or _network(arch)
    path = tmp_path / ("model.pt2" if exporter == "pt2" else "model.onnx")
    coverage.export(model, torch.from_numpy(x_cal[:1]), exporter, path)
    net = api.compile(path, scheme="bitplane", calibration=x_cal, chips="auto")
    x, y = coverage.images(CIFAR, "test", n_test, 32)
    r = api.verify(net, path, x, y)
    assert r["guarantee_holds"], r["verdict"]
    assert [l["layer"] for l in r["layers"] if l["conversion_mismatches"] != 0] == []
    assert r["agreement"]["snn_vs_quantised_ann"] == 1.0
    assert net.graph.meta["allocation"]["chips"] >= 1
    return net


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["onnx-ts", "pt2"])
@pytest.mark.parametrize("arch", EXACT_ARCHS)
def test_torchvision_network_compiles_bitplane_exactly(tmp_path, arch, exporter):
    net = compile_exact(arch, exporter, tmp_path)
    if arch == "resnet18":                # the stem's 3x3/2 pool, padding 1 on every side: 16x16 -> 8x8,
        pools = [op for l in net.graph.neuron_layers() for b in l.branches for op in b.ops   # read by the
                 if isinstance(op, syn.MaxPool)]                 # first block's conv and its identity shortcut
        stem = ((3, 3), (2, 2), (1, 1, 1, 1))
        assert [(tuple(p.kernel), tuple(p.stride), tuple(p.padding)) for p in pools] == [stem] * 2


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["onnx-ts", "pt2"])
def test_squeezenet_fire_concats_compile_bitplane_exactly(tmp_path, exporter):
    """SqueezeNet 1.0: eight Fire modules, each a channel Concat of two QCFS expand convs, read by a
    max pool and the next squeeze conv (or the classifier conv).  Its three max pools use ceil_mode,
    which at 32x32 pads the last window of a row (a padded max pool: 13 -> 6 -> 3 -> 1)."""
    model, x_cal = _network("squeezenet1_0")
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 3 and all(p.ceil_mode for p in pools)
    net = compile_exact("squeezenet1_0", exporter, tmp_path, 4, (model, x_cal))
    assert sum(len(l.branches) == 2 for l in net.graph.neuron_layers()) == 8     # one layer per Fire's Concat


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["onnx-dynamo", "pt2"])
def test_vgg11_bn_at_32_folds_its_adaptive_pool_and_is_exact(tmp_path, exporter):
    """VGG-11-BN at 32x32: its features end at 1x1 and AdaptiveAvgPool2d((7, 7)) copies each value 49
    times before Linear(512*49, 4096); the pool is folded into that Linear (512 inputs), exactly.
    (The TorchScript exporter cannot export that pool at all.)"""
    net = compile_exact("vgg11_bn", exporter, tmp_path)
    assert any("(1x1 -> 7x7) was folded into the Flatten -> Linear" in n for n in net.graph.meta["front_end_notes"])


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["onnx-ts", "onnx-dynamo", "pt2"])
def test_mobilenet_v2_linear_bottlenecks_compose_and_are_exact(tmp_path, exporter):
    """MobileNetV2 at 32x32: every inverted residual ends in a linear 1x1 projection + BN summed into
    the residual stream; `passes.fold_linear_layers` composes each projection into the 1x1 expand
    conv (or the last 1x1 conv) that reads the stream, one branch per block of the stage (a stage of
    four blocks: a layer of four branches)."""
    net = compile_exact("mobilenet_v2", exporter, tmp_path, 4)
    assert sorted({len(l.branches) for l in net.graph.neuron_layers()}) == [1, 2, 3, 4]
    assert any("composed" in n for n in net.graph.meta["front_end_notes"])


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["onnx-ts", "onnx-dynamo", "pt2"])
def test_shufflenet_v2_shuffles_and_depthwise_convs_compose_and_are_exact(tmp_path, exporter):
    """ShuffleNetV2 x0.5 at 32x32: depthwise 3x3 + BN without activation read by a 1x1 conv, and the
    channel shuffle (Reshape/Transpose) and split (Slice) between each unit's Concat and the convs
    that read it: all composed into those convs."""
    net = compile_exact("shufflenet_v2_x0_5", exporter, tmp_path, 4)
    assert any(len(l.branches) > 1 for l in net.graph.neuron_layers())
    assert any("composed" in n for n in net.graph.meta["front_end_notes"])


@pytest.mark.slow
def test_padded_stem_pool_refused_by_schemes_without_codes(tmp_path):
    model, x_cal = _network("resnet18")
    path = tmp_path / "resnet18.onnx"
    coverage.export(model, torch.from_numpy(x_cal[:1]), "onnx-ts", path)
    np.save(tmp_path / "cal.npy", x_cal)
    for scheme, needle in (("sws", "max pooling of ternary digit trains"),
                           ("rate", "max pooling of spike trains is not the max of their rates"),
                           ("sdnn", "max pooling of sigma-delta payloads")):
        r = run("compile", path, "--scheme", scheme, "--calibration", tmp_path / "cal.npy", "--chips", "auto",
                "-o", tmp_path / scheme)
        assert_clean_error(r, f"(MaxPool): {needle}", "(layer 'conv2')", f"(scheme '{scheme}')")
        assert not (tmp_path / scheme).exists()
