"""The bitplane SNN equals the integer reference of the quantised ANN, on every layer."""
import numpy as np
import onnx
import pytest

import netgen
from neurodeploy.compiler import compile_model
from neurodeploy.reports.verify import verify

NETS = {
    "dense": lambda s: netgen.dense_net(s),
    "dense_q3_5": lambda s: netgen.dense_net(s, levels=(3, 5)),
    "conv_bn_avgpool": lambda s: netgen.conv_net(s),
    "conv_clamp_first": lambda s: netgen.conv_net(s, levels=(15, 7), bn=False, clamp_first=True),
    "conv_maxpool": lambda s: netgen.conv_net(s, levels=(8, 15), pool="max"),
    "conv_maxpool_padded": lambda s: netgen.conv_net(s, levels=(8, 15), pool="max_padded"),
    "conv_maxpool_ceil": lambda s: netgen.conv_net(s, levels=(8, 15), pool="max_ceil"),
    "residual": lambda s: netgen.residual_net(s),
}


def _compile(tmp_path, model, target):
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path, compile_model(path, target, "bitplane")


@pytest.mark.parametrize("kind", sorted(NETS))
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("target", ["loihi2", "cpu"])
def test_random_networks_exact_on_every_layer(tmp_path, kind, seed, target):
    model = NETS[kind](seed)
    path, net = _compile(tmp_path, model, target)
    shape = net.input.shape
    x = netgen.random_inputs(shape, 64, seed=seed + 10)
    y = np.zeros(len(x), dtype=np.int64)
    r = verify(net, path, x, y, batch_size=32)
    for layer in r["layers"]:
        assert layer["conversion_mismatches"] == 0, layer
    assert r["guarantee_holds"]
    assert r["agreement"]["snn_vs_quantised_ann"] == 1.0
    # the network must actually spike, or the test proves nothing
    assert all(l["spikes"] > 0 for l in r["layers"][:-1]), r["layers"]


@pytest.mark.parametrize("kind", ["dense", "conv_bn_avgpool", "residual"])
def test_quantised_reference_tracks_float_model(tmp_path, kind):
    """With wide formats the integer reference is the float QCFS network up to rare ties:
    it is a faithful quantised ANN, not just something the SNN happens to agree with."""
    path, net = _compile(tmp_path, NETS[kind](3), "cpu")
    x = netgen.random_inputs(net.input.shape, 128, seed=5)
    r = verify(net, path, x, np.zeros(len(x), dtype=np.int64))
    first, *deeper = r["layers"][1:-1]
    # the first layer sees exact input codes: only its own weight rounding can flip a code
    assert first["quantisation_mismatches"] <= 0.002 * first["elements"], first
    # deeper layers also inherit upstream flips, which spread through their fan-in
    for layer in deeper:
        assert layer["quantisation_mismatches"] <= 0.01 * layer["elements"], layer
    assert r["agreement"]["snn_vs_float"] >= 0.97


def test_bn_kept_and_bn_folded_compile_identically(tmp_path):
    from neurodeploy.ir import serialize
    for stem in ("digits_qcfs", "digits_resnet_qcfs"):
        kept = compile_model(f"models/{stem}.onnx")
        folded = compile_model(f"models/{stem}_folded.onnx")
        a, b = tmp_path / f"{stem}_kept", tmp_path / f"{stem}_folded"
        for d, net in ((a, kept), (b, folded)):
            net.meta.pop("model")          # file name and hash differ by construction
            d.mkdir()
            serialize.save(net, d)
        assert (a / "params.npz").read_bytes() == (b / "params.npz").read_bytes()
        # the network (layers, integer parameters) is identical; only the float error
        # statistics in meta differ in the last digits (float32 vs float64 folding)
        import json
        assert json.loads((a / "ir.json").read_text())["layers"] == json.loads((b / "ir.json").read_text())["layers"]


def test_digits_model_zero_mismatches_on_whole_test_split():
    x = np.load("models/digits_test_x.npy")
    y = np.load("models/digits_test_y.npy")
    net = compile_model("models/digits_qcfs.onnx", "loihi2", "bitplane")
    r = verify(net, "models/digits_qcfs.onnx", x, y)
    assert r["samples"] == 450
    assert all(l["conversion_mismatches"] == 0 for l in r["layers"])
    assert r["accuracy"]["snn"] == r["accuracy"]["quantised_ann"]
    assert r["accuracy"]["float"] > 0.95 and r["accuracy"]["snn"] > 0.95
    assert r["guarantee_holds"]


@pytest.mark.slow
def test_digits_resnet_zero_mismatches():
    x = np.load("models/digits_resnet_test_x.npy")
    y = np.load("models/digits_resnet_test_y.npy")
    net = compile_model("models/digits_resnet_qcfs.onnx", "loihi2", "bitplane")
    r = verify(net, "models/digits_resnet_qcfs.onnx", x, y)
    assert all(l["conversion_mismatches"] == 0 for l in r["layers"])
    assert r["accuracy"]["snn"] > 0.95


@pytest.mark.parametrize("timesteps", [1, 2, 3])
def test_lossy_network_is_itself_an_exact_bitplane_network(timesteps):
    """--lossy re-quantises every layer to fewer bits; the SNN must still equal the integer
    reference of *that* network exactly (the loss is in the quantisation, not the conversion)."""
    from neurodeploy.schemes import CompileOptions
    from neurodeploy.sim import engine
    from neurodeploy.sim.reference import reference
    net = compile_model("models/digits_qcfs.onnx", "loihi2", "bitplane",
                        CompileOptions(timesteps=timesteps, lossy=True))
    assert all(l.neuron.n_steps <= timesteps for l in net.layers if hasattr(l.neuron, "n_steps"))
    x = np.load("models/digits_test_x.npy")[:100]
    snn = engine.run_batch(engine.prepare(net), x)
    codes, u = reference(net, x)
    for name, c in codes.items():
        assert np.array_equal(snn.codes[name].numpy(), c), name
    assert np.array_equal(snn.output_state.numpy(), u)


def test_conv_flatten_then_quantiser(tmp_path):
    """A QCFS on the flattened output of a convolution (scalar λ) lowers and stays exact."""
    b = netgen.NetBuilder((2, 4, 4), 7)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.flatten(b.conv(x, 2, 3, scale=2.0)), 7, 1.5)
    model = b.model(b.gemm(x, 3 * 4 * 4, 4), 4)
    path, net = _compile(tmp_path, model, "loihi2")
    xs = netgen.random_inputs((2, 4, 4), 32, seed=2)
    r = verify(net, path, xs, np.zeros(32, dtype=np.int64))
    assert r["guarantee_holds"] and all(l["conversion_mismatches"] == 0 for l in r["layers"])
