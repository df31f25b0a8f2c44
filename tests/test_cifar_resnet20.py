"""The CIFAR-10 ResNet-20 of models/ (QCFS, trained by models/train_cifar_resnet20_qcfs.py) on real
CIFAR-10 test images: bitplane is error-free at CIFAR scale through every door (the nn.Module by
torch.export, a saved `.pt2` program, the committed ONNX file), the three give the same integer
network, and the same network fed mean/std-normalised (signed) pixels is error-free too.  Its
option-A shortcuts (strided Slice + zero channel Pad, as the common CIFAR code writes them), in
the script's network before training, give identical integer parameters through ONNX and
torch.export, and its padded channels are exact zeros in every scheme's compiled weights.

The images come from the CIFAR-10 subset beside the clone (`DATA`, never copied into the
repository): 128 test images spread evenly over the 5,000 (the file holds them class by class);
calibration of the normalised variant uses 256 training images.
"""
import copy
import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from conftest import DATA, MODELS
from neurodeploy import api as nd
from neurodeploy.compiler import compile_model
from neurodeploy.ir import serialize
from neurodeploy.nn import export_onnx
from neurodeploy.schemes import CompileOptions

sys.path.insert(0, str(MODELS))
sys.path.insert(0, str(MODELS.parent / "examples"))
import cifar_resnet20_schemes as schemes  # noqa: E402
import train_cifar_resnet20_qcfs as cifar  # noqa: E402
import train_digits as td  # noqa: E402

N_IMAGES = 128
N_FILE_CHECK = 32   # images per file door (.onnx, .pt2): their integer network is also compared whole
CHIPS = 4           # the network needs at most 298 Loihi 2 cores at 128 per chip: 3 chips (printed below)
# the usual CIFAR-10 channel statistics (of the full 50,000 training images)
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)


def _cifar(split: str, pick=None):
    path = DATA / "cifar10_subset.npz"
    if not path.is_file():
        pytest.fail(f"{path} is missing: put the shared data beside the clone")
    with np.load(path) as d:
        x, y = d[f"{split}_x"], d[f"{split}_y"]
        if pick is not None:
            x, y = x[pick], y[pick]
        x = x.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(x), y.astype(np.int64)


@pytest.fixture(scope="module")
def images():
    n_test = 5000
    return _cifar("test", np.arange(0, n_test, n_test // N_IMAGES)[:N_IMAGES])


@pytest.fixture(scope="module")
def model():
    return cifar.load_model(str(MODELS / f"{cifar.PREFIX}.pt"))


@pytest.fixture(scope="module")
def bitplane(model, images):
    return nd.compile(model, torch.from_numpy(images[0][:1]), target="loihi2", scheme="bitplane", chips=CHIPS)


def _exact(r):
    assert [l["layer"] for l in r["layers"] if l["conversion_mismatches"]] == []
    assert r["guarantee_holds"] and r["error_free"]
    assert r["accuracy"]["snn"] == r["accuracy"]["quantised_ann"]
    assert r["agreement"]["snn_vs_quantised_ann"] == 1.0


def _print(what, net, r, n):
    alloc = net.graph.meta["allocation"]
    per_chip = net.graph.meta["target_spec"]["chip"]["cores_per_chip"]
    print(f"\nResNet-20 (CIFAR-10) bitplane, {what}, on {n} real test images: float {r['accuracy']['float']:.4f}, "
          f"quantised ANN {r['accuracy']['quantised_ann']:.4f}, SNN {r['accuracy']['snn']:.4f}; "
          f"at most {alloc['total_cores']} cores = {-(-alloc['total_cores'] // per_chip)} Loihi 2 chips "
          f"({per_chip} cores each; an upper bound: no weight sharing); latency {net.latency_steps} steps, "
          f"{sum(l['spikes_per_sample'] for l in r['layers']):.0f} spikes per image")


def test_images_cover_every_class(images):
    assert np.array_equal(np.bincount(images[1], minlength=10) >= 12, np.ones(10, bool))


@pytest.mark.slow
def test_bitplane_is_error_free_on_real_cifar_images(model, images, bitplane):
    x, y = images
    r = nd.verify(bitplane, model, x, y, batch_size=32)
    _print("pixels in [0, 1], nn.Module", bitplane, r, len(x))
    _exact(r)
    assert all(l["spikes"] > 0 for l in r["layers"][:-1])        # every layer is active on real images
    alloc = bitplane.graph.meta["allocation"]
    assert alloc["upper_bound"]                                  # convolutions: every connection its own synapse
    assert -(-alloc["total_cores"] // bitplane.graph.meta["target_spec"]["chip"]["cores_per_chip"]) == CHIPS - 1
    # measured on these 128 images (pinned float path): float 80/128 = 0.6250 (the model card: 0.5646 on
    # all 5,000), quantised ANN = SNN 79/128 = 0.6172.  The thresholds leave 5 images of margin (far
    # above chance, 0.10); the 8-bit formats moved 1 image here and 2 in the normalised test: 4 allowed
    assert r["accuracy"]["float"] >= 75 / 128
    assert r["accuracy"]["snn"] >= 74 / 128
    assert r["accuracy"]["snn"] >= r["accuracy"]["float"] - 4 / 128


def _ir(net, directory):
    net.meta.pop("model", None)          # the file name and hash differ by construction
    directory.mkdir()
    serialize.save(net, directory)
    layers = json.loads((directory / "ir.json").read_text())["layers"]
    for layer in layers:
        layer.pop("float_node", None)    # node names: module paths vs ONNX names
    return layers, (directory / "params.npz").read_bytes()


@pytest.mark.parametrize("source", ["onnx", "pt2"])
def test_model_files_compile_to_the_same_integer_network(model, images, bitplane, tmp_path, source):
    """The committed ONNX file (BatchNormalization kept, torch.onnx.export) and a `.pt2` program
    (torch.export.save) give the module's layers and integer parameters byte for byte, and the
    network compiled from each file is error-free against that file (onnxruntime / PyTorch as
    the float reference)."""
    if source == "onnx":
        path = MODELS / f"{cifar.PREFIX}.onnx"
    else:
        path = tmp_path / f"{cifar.PREFIX}.pt2"
        torch.export.save(torch.export.export(model, (torch.from_numpy(images[0][:1]),)), path)
    from_file = compile_model(path, "loihi2", "bitplane", CompileOptions(chips=CHIPS))
    x, y = images[0][:N_FILE_CHECK], images[1][:N_FILE_CHECK]
    r = nd.verify(from_file, path, x, y, batch_size=32)
    _exact(r)
    assert _ir(copy.deepcopy(bitplane.graph), tmp_path / "module") == _ir(from_file, tmp_path / source)


@pytest.fixture(scope="module")
def untrained_option_a():
    """A ResNet-20 with option-A shortcuts as the training script builds it, before training: its
    BatchNorm statistics and QCFS lam measured on 128 real training images (one pass, as training
    starts), so every layer sees real activity."""
    torch.manual_seed(0)
    model = cifar.build_model(shortcut="A")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None        # the running statistics := this one batch's
    with torch.no_grad():
        td.init_lambdas(model, torch.from_numpy(_cifar("train", np.arange(128))[0]))
    return model.eval()


def _ops(path) -> set[str]:
    import onnx
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_option_a_through_onnx_and_torch_export_gives_identical_integer_parameters(untrained_option_a, images,
                                                                                   tmp_path):
    """Issue #14: the option-A ResNet (strided Slice + zero channel Pad, as the common CIFAR code
    writes it) through torch.onnx.export and through torch.export (the module, and a saved .pt2)
    compiles to one integer network, byte for byte, error-free on real images from each file; the
    shortcut's padded channels are exact zeros in the compiled weights."""
    model = untrained_option_a
    assert sum(isinstance(m, cifar.LambdaLayer) for m in model.modules()) == 2
    x1 = torch.from_numpy(images[0][:1])
    onnx_path, pt2_path = tmp_path / "a.onnx", tmp_path / "a.pt2"
    export_onnx(model, x1, onnx_path)
    assert {"Slice", "Pad"} <= _ops(onnx_path)                  # the shortcut as the exporter writes it
    torch.export.save(torch.export.export(model, (x1,)), pt2_path)
    module_net = nd.compile(model, x1, target="loihi2", scheme="bitplane", chips=CHIPS)
    selections = schemes.option_a_selections(module_net)
    assert [w.shape for _, w in selections] == [(32, 16, 1, 1), (64, 32, 1, 1)]
    assert all(schemes.selection_is_exact(w) for _, w in selections)
    reference = _ir(copy.deepcopy(module_net.graph), tmp_path / "module")
    x, y = images[0][:16], images[1][:16]
    for path in (onnx_path, pt2_path):
        net = compile_model(path, "loihi2", "bitplane", CompileOptions(chips=CHIPS))
        r = nd.verify(net, path, x, y, batch_size=16)
        _exact(r)
        assert sum(l["spikes"] for l in r["layers"]) > 0
        assert _ir(net, tmp_path / path.suffix[1:]) == reference


def test_selection_check_can_fail():
    """`selection_is_exact` (used above and by examples/cifar_resnet20_schemes.py) rejects a padded
    channel that is not 0, a copy to the wrong channel and copies of unequal weight."""
    w = np.zeros((8, 4, 1, 1), np.int64)
    w[2 + np.arange(4), np.arange(4)] = 127
    assert schemes.selection_is_exact(w)
    for o, c, v in ((0, 0, 1), (2, 1, 127), (3, 1, 126)):
        bad = w.copy()
        bad[o, c] = v
        if (o, c) == (2, 1):
            bad[2, 0] = 0
        assert not schemes.selection_is_exact(bad), (o, c, v)


def normalised_variant(model: nn.Module) -> nn.Module:
    """The trained network rebuilt for (x - MEAN) / STD inputs, as the common CIFAR code feeds it:
    no input quantiser, the stem convolution's weights times STD per input channel and its
    response to MEAN taken off BatchNorm's running mean.  Away from the image border it computes
    what the original computes; at the border, the zero padding now stands for MEAN (the common
    code's convention), so it is a slightly different network, judged on its own accuracy."""
    m = copy.deepcopy(model).eval()
    m[0] = nn.Identity()
    conv, bn = m[1], m[2]
    with torch.no_grad():
        w = conv.weight.double()
        conv.weight.copy_((w * torch.from_numpy(STD).double()[None, :, None, None]).float())
        bn.running_mean.sub_((w * torch.from_numpy(MEAN).double()[None, :, None, None]).sum((1, 2, 3)).float())
    return m


def _normalise(x):
    return ((x - MEAN[None, :, None, None]) / STD[None, :, None, None]).astype(np.float32)


@pytest.mark.slow
def test_normalised_signed_inputs_are_bitplane_exact(model, images, tmp_path):
    """The issue's third case: the ResNet-20 fed mean/std-normalised (negative) pixels through
    `nd.compile(model, x, calibration=x)`.  The input quantiser's zero point folds into the stem's
    bias and the host pads the codes of 0.0 (lowering/input_quant.py); the ONNX export of the same
    module compiles to the same integer network."""
    signed = normalised_variant(model)
    x, y = _normalise(images[0]), images[1]
    calibration = _normalise(_cifar("train", np.arange(256))[0])
    assert calibration.min() < -1.5 and calibration.max() > 1.5
    net = nd.compile(signed, torch.from_numpy(x[:1]), calibration=calibration, chips=CHIPS)
    enc = net.graph.input
    assert enc.pad == (1, 1, 1, 1) and enc.input_shape == (3, 32, 32)
    assert 0 < int(np.floor(float(enc.offset))) < enc.neuron.code_max          # a real zero point
    r = nd.verify(net, signed, x, y, batch_size=32)
    _print("mean/std-normalised pixels, nn.Module", net, r, len(x))
    _exact(r)
    # measured (pinned float path): float 80/128 = 0.6250, quantised ANN = SNN 78/128 = 0.6094
    # (the [0, 1] network: 80 and 79).  Margins as in the [0, 1] test: 5 images, and 4 for what the
    # 8-bit input and weight formats may cost (2 measured here)
    assert r["accuracy"]["float"] >= 75 / 128
    assert r["accuracy"]["snn"] >= 73 / 128
    assert r["accuracy"]["snn"] >= r["accuracy"]["float"] - 4 / 128
    path = tmp_path / "signed.onnx"
    export_onnx(signed, torch.from_numpy(x[:1]), path)
    from_onnx = compile_model(path, "loihi2", "bitplane", CompileOptions(chips=CHIPS, calibration=calibration))
    assert _ir(copy.deepcopy(net.graph), tmp_path / "module") == _ir(from_onnx, tmp_path / "onnx")


@pytest.mark.parametrize("scheme", ["rate", "sws"])
def test_rate_and_sws_compile_for_loihi2_with_the_pool_as_a_layer(untrained_option_a, images, scheme):
    """Folded into the readout, the 8x8 global average pool gives 4,096 synapses per output at w/64
    each, which rate's 18-bit and sws's 21-bit readout state cannot hold at 8-bit mantissas (rate's
    were refused at 0.000573 code steps); the pool becomes its own layer (lowering.pool_layer) and
    the readout reads 64 pooled codes."""
    net = nd.compile(untrained_option_a, torch.from_numpy(images[0][:1]), target="loihi2", scheme=scheme,
                     chips=CHIPS, calibration=_cifar("train", np.arange(64))[0])
    pool, readout = net.graph.layers[-2], net.graph.output
    assert pool.float_node == net.graph.meta["readout_pool_layer"] + "/pooled_codes"    # the module's pool node
    assert [b.source for b in readout.branches] == [pool.name] and pool.shape == (64, 1, 1)
    assert [w.shape for w in (b.ops[-1].weight for b in readout.branches)] == [(10, 64)]
    # the readout's weights at 8-bit precision (folded: they rounded to 0 or 1-2 code steps); measured
    # relative weight error 0.0053 (both; pool layer: rate 0.0079, sws 0) -- a 4x margin below 0.02
    q = net.graph.meta["quantisation"]
    print(f"\n{scheme}: readout weight error {q['readout']['weight_rel_error']:.4f}, pool layer "
          f"{q[pool.name]['weight_rel_error']:.4f}")
    assert q["readout"]["weight_rel_error"] < 0.02 and q[pool.name]["weight_rel_error"] < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("scheme, target", [("sdnn", "loihi2"), ("rate", "loihi2"), ("sws", "loihi2")])
def test_option_a_zero_channels_are_exact_in_every_scheme(untrained_option_a, images, scheme, target):
    """The option-A shortcut's padded channels are exact zeros, and its copies one equal weight, in
    the integer weights every scheme that compiles the network makes (bitplane: the test above),
    all on Loihi 2 (rate and sws with the global pool as its own layer, the test above)."""
    net = nd.compile(untrained_option_a, torch.from_numpy(images[0][:1]), target=target, scheme=scheme,
                     chips=CHIPS, calibration=_cifar("train", np.arange(64))[0])
    selections = schemes.option_a_selections(net)
    assert len(selections) == 2 and all(schemes.selection_is_exact(w) for _, w in selections)


@pytest.mark.slow
def test_sws_on_the_trained_resnet20_for_loihi2(model, images):
    """The committed ResNet-20 through sws on Loihi 2 (the global pool as its own layer), verified on
    the 128 real test images; calibration: the first 64 training images, as the example script."""
    x, y = images
    net = nd.compile(model, torch.from_numpy(x[:1]), target="loihi2", scheme="sws", chips=CHIPS,
                     calibration=_cifar("train", np.arange(64))[0])
    assert net.graph.meta["readout_pool_layer"]
    r = nd.verify(net, model, x, y, batch_size=64)
    mm = {l["layer"]: l["conversion_mismatches"] for l in r["layers"]}
    print(f"\nsws: float {r['accuracy']['float']:.4f}, quantised ANN {r['accuracy']['quantised_ann']:.4f}, "
          f"SNN {r['accuracy']['snn']:.4f}, agreement {r['agreement']['snn_vs_quantised_ann']:.4f}, "
          f"mismatches {sum(mm.values())} {mm}")
    # measured: float 80/128, quantised ANN = SNN 78/128, SNN vs quantised ANN 128/128; 1,709 of 24.5 M
    # codes differ from the integer reference, all from conv5 on (a TSA neuron falling behind at
    # Ts = 2 < Tc - 1, module docstring of schemes.sws.compile; no state overflow).  Margins: 4
    # images of accuracy, 2 of agreement, 3x the measured mismatch rate
    assert not r["state_overflows"]
    assert [n for n, c in mm.items() if c][:1] == ["conv5"]
    values = sum(l["elements"] for l in r["layers"])
    assert sum(mm.values()) <= 3 * 1709 / 24.5e6 * values
    assert r["accuracy"]["snn"] >= 74 / 128 and r["accuracy"]["float"] >= 76 / 128
    assert r["agreement"]["snn_vs_quantised_ann"] >= 126 / 128
