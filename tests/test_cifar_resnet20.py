"""The CIFAR-10 ResNet-20 of models/ (QCFS, trained by models/train_cifar_resnet20_qcfs.py) on real
CIFAR-10 test images: bitplane is error-free at CIFAR scale, and the ONNX export compiles to the
same integer network as the PyTorch module.

The images come from the CIFAR-10 subset beside the clone (`DATA`, never copied into the
repository): 128 test images spread evenly over the 5,000 (the file holds them class by class).
"""
import json
import sys

import numpy as np
import pytest
import torch

from conftest import DATA, MODELS
from neurodeploy import api as nd
from neurodeploy.compiler import compile_model
from neurodeploy.ir import serialize
from neurodeploy.schemes import CompileOptions

sys.path.insert(0, str(MODELS))
import train_cifar_resnet20_qcfs as cifar  # noqa: E402

N_IMAGES = 128
CHIPS = 4           # the network needs 298 Loihi 2 cores at 128 per chip: 3 chips (printed below)


@pytest.fixture(scope="module")
def images():
    path = DATA / "cifar10_subset.npz"
    if not path.is_file():
        pytest.fail(f"{path} is missing: put the shared data beside the clone")
    with np.load(path) as d:
        pick = np.arange(0, len(d["test_y"]), len(d["test_y"]) // N_IMAGES)[:N_IMAGES]
        x = d["test_x"][pick].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(x), d["test_y"][pick].astype(np.int64)


@pytest.fixture(scope="module")
def model():
    return cifar.load_model(str(MODELS / f"{cifar.PREFIX}.pt"))


@pytest.fixture(scope="module")
def bitplane(model, images):
    return nd.compile(model, torch.from_numpy(images[0][:1]), target="loihi2", scheme="bitplane", chips=CHIPS)


def test_images_cover_every_class(images):
    assert np.array_equal(np.bincount(images[1], minlength=10) >= 12, np.ones(10, bool))


@pytest.mark.slow
def test_bitplane_is_error_free_on_real_cifar_images(model, images, bitplane):
    x, y = images
    r = nd.verify(bitplane, model, x, y, batch_size=32)
    alloc = bitplane.graph.meta["allocation"]
    per_chip = bitplane.graph.meta["target_spec"]["chip"]["cores_per_chip"]
    print(f"\nResNet-20 (CIFAR-10) bitplane on {len(x)} real test images: float {r['accuracy']['float']:.4f}, "
          f"quantised ANN {r['accuracy']['quantised_ann']:.4f}, SNN {r['accuracy']['snn']:.4f}; "
          f"{alloc['total_cores']} cores = {-(-alloc['total_cores'] // per_chip)} Loihi 2 chips "
          f"({per_chip} cores each); latency {bitplane.latency_steps} steps, "
          f"{sum(l['spikes_per_sample'] for l in r['layers']):.0f} spikes per image")
    assert [l["layer"] for l in r["layers"] if l["conversion_mismatches"]] == []
    assert r["guarantee_holds"] and r["error_free"]
    assert r["accuracy"]["snn"] == r["accuracy"]["quantised_ann"]
    assert r["agreement"]["snn_vs_quantised_ann"] == 1.0
    assert all(l["spikes"] > 0 for l in r["layers"][:-1])        # every layer is active on real images
    assert -(-alloc["total_cores"] // per_chip) == CHIPS - 1      # 3 chips: the comment above


def _ir(net, directory):
    net.meta.pop("model", None)          # the file name and hash differ by construction
    serialize.save(net, directory)
    layers = json.loads((directory / "ir.json").read_text())["layers"]
    for layer in layers:
        layer.pop("float_node", None)    # node names: module paths vs ONNX names
    return layers, (directory / "params.npz").read_bytes()


def test_onnx_export_compiles_to_the_same_integer_network(bitplane, tmp_path):
    """The committed ONNX file (BatchNormalization kept, torch.onnx.export) and the module (torch.export)
    give the same layers and the same integer parameters, byte for byte."""
    from_onnx = compile_model(MODELS / f"{cifar.PREFIX}.onnx", "loihi2", "bitplane", CompileOptions(chips=CHIPS))
    (tmp_path / "module").mkdir()
    (tmp_path / "onnx").mkdir()
    assert _ir(bitplane.graph, tmp_path / "module") == _ir(from_onnx, tmp_path / "onnx")
