"""The `rate` scheme: dynamics checked against an independent loop, accuracy on digits."""
import numpy as np
import onnx
import pytest
import torch

import netgen
from neurodeploy.compiler import compile_model
from neurodeploy.errors import NeurodeployError
from neurodeploy.schemes.rate.neurons import RateIF
from neurodeploy.ir import synapses as syn
from neurodeploy.reports.verify import verify
from neurodeploy.schemes import CompileOptions
from neurodeploy.sim import engine


def _relu_mlp(path, seed=0):
    b = netgen.NetBuilder((10,), seed)
    x = b.node("Relu", [b.gemm("input", 10, 12, scale=2.0)])
    x = b.node("Relu", [b.gemm(x, 12, 8, scale=2.0)])
    onnx.save(b.model(b.gemm(x, 8, 3), 3), path)


def _loop(net, x):
    """Plain per-sample, per-step numpy loop of the rate IR semantics (dense layers only)."""
    enc = net.input
    t_in = enc.neuron.n_steps
    layers = net.neuron_layers()
    hops = {enc.name: 0}
    for l in layers:
        hops[l.name] = 1 + max(hops[b.source] for b in l.branches)
    outs = []
    for sample in x:
        k = np.clip(np.floor(sample.astype(np.float64) * enc.in_scale + enc.offset), 0, t_in).astype(np.int64)
        ve = np.full_like(k, t_in // 2)
        prev = {enc.name: np.zeros_like(k)} | {l.name: np.zeros(l.shape, np.int64) for l in layers}
        v = {l.name: (l.bias.copy() if l.is_readout else np.full(l.shape, l.neuron.v_init, np.int64)) for l in layers}
        for t in range(t_in + hops[net.output.name]):
            now = {}
            if t < t_in:
                ve = ve + k
                now[enc.name] = (ve >= t_in).astype(np.int64)
                ve = ve - now[enc.name] * t_in
            else:
                now[enc.name] = np.zeros_like(k)
            for l in layers:
                cur = sum((syn.weighted_op(b.ops).weight.astype(np.int64) @ prev[b.source]) << b.weight_exp
                          for b in l.branches)
                if l.is_readout:
                    v[l.name] = v[l.name] + cur
                    continue
                lim = (1 << (l.neuron.state_bits - 1)) - 1
                vv = np.clip(v[l.name] + cur + l.bias, -lim, lim)
                s = (vv >= l.neuron.v_th_mant).astype(np.int64)
                vv = vv - s * l.neuron.v_th_mant if l.neuron.reset == "subtract" else np.where(s == 1, 0, vv)
                v[l.name], now[l.name] = vv, s
            prev.update(now)
        outs.append(v[net.output.name])
    return np.stack(outs)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("timesteps", [4, 13])
def test_rate_engine_equals_independent_loop(tmp_path, reset, timesteps):
    _relu_mlp(tmp_path / "m.onnx")
    cal = netgen.random_inputs((10,), 64, seed=3)
    net = compile_model(tmp_path / "m.onnx", "loihi2", "rate",
                        CompileOptions(calibration=cal, timesteps=timesteps, reset=reset))
    assert all(isinstance(l.neuron, RateIF) for l in net.neuron_layers()[:-1])
    x = netgen.random_inputs((10,), 16, seed=4)
    for eng in ("neurodeploy", "steps"):
        r = engine.run_batch(engine.prepare(net, engine=eng), x)
        assert np.array_equal(r.output_state.numpy(), _loop(net, x))
        assert r.spikes[net.neuron_layers()[0].name] > 0


def assert_engines_identical(net, x):
    """The layer-after-layer engine (default) and the lock-step one give the same readout, spike
    counts of every layer and spike totals; returns the layer plan the default engine used."""
    from neurodeploy.schemes.rate.kernel import layer_plan
    from neurodeploy.sim.core import depth
    prep = engine.prepare(net)
    a = engine.run_batch(prep, x)
    b = engine.run_batch(engine.prepare(net, engine="steps"), x)
    assert torch.equal(a.output_state, b.output_state) and torch.equal(a.output, b.output)
    assert sorted(a.codes) == sorted(b.codes) and a.spikes == b.spikes
    for name in b.codes:
        assert torch.equal(a.codes[name], b.codes[name]), name
    assert all(v > 0 for v in a.spikes.values()), a.spikes
    return layer_plan(prep, net.input.neuron.n_steps + depth(net))


@pytest.mark.parametrize("kind", ["conv_bn_avgpool", "residual", "dense"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("target", ["loihi2", "cpu"])
def test_rate_engines_identical_on_random_networks(tmp_path, kind, reset, target):
    from test_bitplane_exact import NETS
    onnx.save(NETS[kind](1), tmp_path / "m.onnx")
    net = compile_model(tmp_path / "m.onnx", target, "rate", CompileOptions(timesteps=12, reset=reset))
    plan = assert_engines_identical(net, netgen.random_inputs(net.input.shape, 24, seed=7))
    # loihi2's 8-bit weights keep every state in float32; the cpu target's 16-bit ones need float64
    dtypes = {p.arith.dtype for name, p in plan.items() if name != net.output.name}
    assert dtypes == {torch.float32} if target == "loihi2" else torch.float64 in dtypes


@pytest.mark.parametrize("stem", ["digits_qcfs", "digits_resnet_qcfs"])
@pytest.mark.parametrize("timesteps", [8, 32])
def test_rate_engines_identical_on_digits(stem, timesteps, digits):
    """On loihi2 the digits ResNet's states can reach the saturation limit (the clamp is kept)."""
    net = compile_model(f"models/{stem}.onnx", "loihi2", "rate", CompileOptions(timesteps=timesteps))
    plan = assert_engines_identical(net, digits[0][:160])
    if stem == "digits_resnet_qcfs":
        assert any(p.saturates for p in plan.values())


def test_rate_engines_identical_in_int64(digits):
    """A layer whose state bound exceeds 2^53 (its weights, bias, threshold and v_init scaled by 2^28
    and a 63-bit state) runs in int64."""
    import dataclasses
    net = compile_model("models/digits_qcfs.onnx", "cpu", "rate", CompileOptions(timesteps=8))
    layers = [dataclasses.replace(l, branches=[dataclasses.replace(b, weight_exp=b.weight_exp + 28) for b in l.branches],
                                  bias_exp=l.bias_exp + 28,
                                  neuron=dataclasses.replace(l.neuron, v_th_mant=l.neuron.v_th_mant << 28,
                                                             v_init=l.neuron.v_init << 28, state_bits=63))
              if l.name == "conv2" else l for l in net.layers]
    net = dataclasses.replace(net, layers=layers)
    plan = assert_engines_identical(net, digits[0][:64])
    assert plan["conv2"].arith.dtype == torch.int64 and plan["conv1"].arith.dtype == torch.float64


def test_rate_engines_identical_with_split_weights(digits):
    """conv2's weight mantissas, bias, threshold and v_init scaled by 2^12 (the same spikes; sums past
    2^24 on single spikes): the default engine splits the weights in two float32 limbs
    (W·s = W_lo·s + 2^b·W_hi·s) instead of one float64 convolution, with the same integers."""
    import dataclasses
    from neurodeploy.ir import synapses as syn
    net = compile_model("models/digits_qcfs.onnx", "cpu", "rate", CompileOptions(timesteps=8))

    def scaled(b):
        k = syn.weighted_op(b.ops)
        return dataclasses.replace(b, ops=[dataclasses.replace(op, weight=np.asarray(op.weight) << 12) if op is k else op
                                           for op in b.ops])
    layers = [dataclasses.replace(l, branches=[scaled(b) for b in l.branches], bias_exp=l.bias_exp + 12,
                                  neuron=dataclasses.replace(l.neuron, v_th_mant=l.neuron.v_th_mant << 12,
                                                             v_init=l.neuron.v_init << 12, state_bits=63))
              if l.name == "conv2" else l for l in net.layers]
    net = dataclasses.replace(net, layers=layers)
    plan = assert_engines_identical(net, digits[0][:64])
    assert plan["conv2"].arith.limbs[0][0] == "weight" and plan["conv2"].arith.branch_dtypes == [torch.float32]


def test_relu_model_needs_calibration(tmp_path):
    _relu_mlp(tmp_path / "m.onnx")
    with pytest.raises(NeurodeployError, match="--calibration"):
        compile_model(tmp_path / "m.onnx", "loihi2", "rate", CompileOptions(timesteps=8))


def test_rate_on_digits_converges_with_time_steps():
    x, y = np.load("models/digits_test_x.npy"), np.load("models/digits_test_y.npy")
    acc = {}
    for t, reset in ((4, "subtract"), (16, "subtract"), (16, "zero")):
        net = compile_model("models/digits_qcfs.onnx", "loihi2", "rate", CompileOptions(timesteps=t, reset=reset))
        r = verify(net, "models/digits_qcfs.onnx", x, y)
        assert r["layers"][0]["conversion_mismatches"] == 0      # the input encoder is exact
        acc[t, reset] = r["accuracy"]["snn"]
    # measured: T=4 0.880, T=16 0.987 (subtract), T=16 0.951 (reset to zero loses the residue)
    assert acc[16, "subtract"] >= 0.97
    assert acc[16, "zero"] >= 0.93
    assert acc[4, "subtract"] < acc[16, "subtract"]


def test_verify_relu_model_reports_quantisation_and_conversion_apart(tmp_path):
    _relu_mlp(tmp_path / "m.onnx")
    cal = netgen.random_inputs((10,), 64, seed=3)
    net = compile_model(tmp_path / "m.onnx", "loihi2", "rate", CompileOptions(calibration=cal, timesteps=16))
    r = verify(net, tmp_path / "m.onnx", cal, np.zeros(64, dtype=np.int64))
    hidden = r["layers"][1:-1]
    assert all(l["quantisation_mismatches"] is not None for l in hidden)
    assert r["exact_scheme"] is False and r["guarantee_holds"]
