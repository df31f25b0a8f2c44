"""The `rate` scheme (reset="zero") in Lava's fixed_pt CPU simulation: bit-exact with our simulator."""
import numpy as np
import onnx
import pytest

import netgen
from neurodeploy.compiler import compile_model
from neurodeploy.schemes import CompileOptions
from neurodeploy.sim import engine


def _relu_conv(path, seed=0):
    b = netgen.NetBuilder((2, 6, 6), seed)
    x = b.node("Relu", [b.conv("input", 2, 4, scale=2.0)])
    x = b.avgpool(x)
    x = b.node("Relu", [b.conv(x, 4, 5, scale=2.0)])
    x = b.flatten(x)
    onnx.save(b.model(b.gemm(x, 5 * 3 * 3, 3), 3), path)


def _relu_mlp(path, seed=0):
    b = netgen.NetBuilder((10,), seed)
    x = b.node("Relu", [b.gemm("input", 10, 12, scale=2.0)])
    x = b.node("Relu", [b.gemm(x, 12, 8, scale=2.0)])
    onnx.save(b.model(b.gemm(x, 8, 3), 3), path)


def _assert_exact(net, x, neuron_model="auto"):
    from neurodeploy.schemes.rate import lava as rate_lava
    ours = engine.run_batch(engine.prepare(net), x)
    lava = rate_lava.run_lava(net, x, neuron_model)
    names = [net.input.name] + [l.name for l in net.neuron_layers() if not l.is_readout]
    assert set(lava.counts) == set(names)
    total = 0
    for name in names:
        np.testing.assert_array_equal(lava.counts[name], ours.codes[name].numpy(), err_msg=f"spike counts of {name}")
        total += int(lava.counts[name].sum())
    assert total > 0
    np.testing.assert_array_equal(lava.output_state, ours.output_state.numpy().reshape(len(x), -1))
    np.testing.assert_array_equal(lava.output, ours.output.numpy())


def _build(kind, path):
    if kind == "relu_mlp":
        _relu_mlp(path)
        return netgen.random_inputs((10,), 32, seed=3), netgen.random_inputs((10,), 2, seed=4)
    if kind == "relu_conv":
        _relu_conv(path)
        return netgen.random_inputs((2, 6, 6), 32, seed=3), netgen.random_inputs((2, 6, 6), 2, seed=4)
    if kind == "qcfs_dense":
        onnx.save(netgen.dense_net(1), path)
        return None, netgen.random_inputs((12,), 2, seed=4)
    onnx.save(netgen.conv_net(2), path)
    return None, netgen.random_inputs((2, 8, 8), 2, seed=4)


@pytest.mark.lava
@pytest.mark.parametrize("kind", ["relu_mlp", "relu_conv", "qcfs_dense", "qcfs_conv"])
def test_random_rate_net_bit_exact_with_lava(tmp_path, kind, lava):
    cal, x = _build(kind, tmp_path / "m.onnx")
    net = compile_model(tmp_path / "m.onnx", "loihi2", "rate",
                        CompileOptions(timesteps=8, reset="zero", calibration=cal))
    _assert_exact(net, x)


@pytest.mark.lava
def test_digits_rate_bit_exact_with_lava(lava):
    net = compile_model("models/digits_qcfs.onnx", "loihi2", "rate", CompileOptions(timesteps=8, reset="zero"))
    x = np.load("models/digits_test_x.npy")[:2]
    _assert_exact(net, x)


def test_subtract_reset_refused_by_stock_lif(tmp_path, lava):
    from neurodeploy.schemes.rate import lava as rate_lava
    from neurodeploy.errors import NeurodeployError
    _relu_mlp(tmp_path / "m.onnx")
    net = compile_model(tmp_path / "m.onnx", "loihi2", "rate",
                        CompileOptions(timesteps=8, reset="subtract", calibration=netgen.random_inputs((10,), 32)))
    rate_lava.check_graph(net)                      # auto: custom RateIFProc
    with pytest.raises(NeurodeployError, match="subtract"):
        rate_lava.check_graph(net, "lif")


@pytest.mark.lava
@pytest.mark.parametrize("kind", ["relu_mlp", "qcfs_conv"])
@pytest.mark.parametrize("reset,model", [("subtract", "auto"), ("zero", "custom")])
def test_custom_rate_if_bit_exact_with_lava(tmp_path, kind, reset, model, lava):
    """reset="subtract" (custom RateIFProc) and the custom model for reset="zero"."""
    cal, x = _build(kind, tmp_path / "m.onnx")
    net = compile_model(tmp_path / "m.onnx", "loihi2", "rate",
                        CompileOptions(timesteps=8, reset=reset, calibration=cal))
    _assert_exact(net, x, model)
