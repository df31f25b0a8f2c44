"""An average pool before the readout as its own layer (`lowering.pool_layer`), where `rate` or `sws`
cannot hold the pool folded into the readout in Loihi 2's formats (ResNet-20's 8x8 global pool:
4,096 synapses per output at w/64 each).  The split is taken only where the folded readout does
not fit, the pool layer computes code = floor(mean code + 1/2), and our simulator equals Lava's
fixed_pt run of it, layer by layer, bit for bit."""
import numpy as np
import onnx
import pytest

import netgen
from neurodeploy.compiler import compile_model
from neurodeploy.errors import TargetLimitError, UnsupportedError
from neurodeploy.frontends.onnx import load_onnx
from neurodeploy.ir import synapses as syn
from neurodeploy.lowering import pool_layer
from neurodeploy.passes import run_passes
from neurodeploy.registry import get_scheme
from neurodeploy.schemes import CompileOptions
from neurodeploy.sim import engine
from neurodeploy.sim.reference import reference


def gap_net(path, channels: int, hw: int, seed: int = 0) -> None:
    """input 3 x hw x hw -> QCFS -> conv 3->channels -> QCFS(7) -> global average pool -> Linear -> 4."""
    b = netgen.NetBuilder((3, hw, hw), seed)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.conv(x, 3, channels, bn=True, scale=2.0), 7, 1.5)
    x = b.flatten(b.gap(x))
    onnx.save(b.model(b.gemm(x, channels, 4, scale=2.0), 4), path)


def _graph(path, scheme="sws"):
    from neurodeploy.lowering.input_quant import input_quantiser
    return run_passes(load_onnx(str(path), prove=False), [*get_scheme(scheme).passes, input_quantiser(None, 8)])


def _refuse(rl, shapes):
    raise TargetLimitError("does not fit", f"layer '{rl.name}'", "do something")


def test_split_only_where_the_folded_readout_does_not_fit(tmp_path):
    gap_net(tmp_path / "m.onnx", 8, 4)
    graph = _graph(tmp_path / "m.onnx")
    enc, layers, pool = pool_layer.lower_fitting_readout(graph, lambda rl, shapes: None)
    assert pool is None and [l.name for l in layers] == ["conv1", "readout"]
    assert isinstance(layers[-1].branches[0].ops[0], syn.SumPool)      # folded: 8 x 16 pixels per output
    seen = []

    def folded_does_not_fit(rl, shapes):             # the first readout asked about is the folded one
        seen.append(rl)
        if len(seen) == 1:
            _refuse(rl, shapes)

    enc, layers, pool = pool_layer.lower_fitting_readout(graph, folded_does_not_fit)
    assert pool == pool_layer.readout_pool(graph) and graph.origin[pool] == "GlobalAveragePool"
    assert [l.name for l in layers] == ["conv1", "scale1", "readout"]
    p, readout = layers[1], layers[2]
    assert [type(op) for op in p.branches[0].ops] == [syn.SumPool, syn.ChannelScale]
    # in code steps of the pooled activation (its own step): 1/16 per pixel, rounding offset 1/2
    np.testing.assert_allclose(p.branches[0].ops[1].weight, 1 / 16)
    np.testing.assert_allclose(p.bias, 0.5)
    assert p.quant.levels == graph.op(graph.inputs(pool)[0]).levels
    assert readout.branches[0].source == "scale1" and syn.weighted_op(readout.branches[0].ops).weight.shape == (4, 8)
    assert seen[1].name == "readout" and len(seen) == 2


def test_readout_that_never_fits_names_its_float_node(tmp_path):
    gap_net(tmp_path / "m.onnx", 8, 4)
    graph = _graph(tmp_path / "m.onnx")
    with pytest.raises(TargetLimitError) as info:
        pool_layer.lower_fitting_readout(graph, _refuse)
    text = str(info.value)
    assert len(text.splitlines()) == 1
    assert text.startswith(f"{tmp_path / 'm.onnx'}: node '{graph.output}' (Gemm): layer 'readout', also with its "
                           f"average pool '{pool_layer.readout_pool(graph)}' as a layer: does not fit -- do something")


def _rate(path, t, reset):
    return compile_model(path, "loihi2", "rate", CompileOptions(timesteps=t, reset=reset))


def _assert_rate_exact(net, x):
    from neurodeploy.schemes.rate import lava as rate_lava
    ours = engine.run_batch(engine.prepare(net), x)
    lava = rate_lava.run_lava(net, x)
    names = [net.input.name] + [l.name for l in net.neuron_layers() if not l.is_readout]
    assert names == ["input", "conv1", "scale1"]
    for name in names:
        np.testing.assert_array_equal(lava.counts[name], ours.codes[name].numpy(), err_msg=f"spike counts of {name}")
        assert lava.counts[name].sum() > 0, name
    np.testing.assert_array_equal(lava.output_state, ours.output_state.numpy().reshape(len(x), -1))
    np.testing.assert_array_equal(lava.output, ours.output.numpy())


@pytest.mark.lava
@pytest.mark.parametrize("channels, hw, t, reset", [(32, 16, 8, "zero"),      # stock LIF
                                                    (32, 8, 32, "subtract")])  # RateIFProc
def test_rate_pool_layer_bit_exact_with_lava(tmp_path, lava, channels, hw, t, reset):
    """The folded readout (channels x hw x hw synapses per output) does not fit loihi2's 18-bit
    rate state at this T; the pool layer does, and Lava's fixed_pt run equals ours."""
    gap_net(tmp_path / "m.onnx", channels, hw)
    net = _rate(tmp_path / "m.onnx", t, reset)
    assert load_onnx(str(tmp_path / "m.onnx")).origin[net.meta["readout_pool_layer"]] == "GlobalAveragePool"
    _assert_rate_exact(net, netgen.random_inputs((3, hw, hw), 2, seed=5))


@pytest.mark.lava
def test_sws_pool_layer_bit_exact_with_lava(tmp_path, lava):
    from test_sws_lava import _assert_exact
    from neurodeploy.schemes.sws import lava as sws_lava
    gap_net(tmp_path / "m.onnx", 16, 8)
    net = compile_model(tmp_path / "m.onnx", "loihi2", "sws", CompileOptions(coding_steps=8, silent_steps=2))
    assert net.meta["readout_pool_layer"] and [l.name for l in net.layers] == ["input", "conv1", "scale1", "readout"]
    _assert_exact(sws_lava, net, netgen.random_inputs((3, 8, 8), 2, seed=5))


def test_sws_pool_layer_is_exact_and_rounds_the_mean(tmp_path):
    """sws stays error-free with the pool layer: every code equals the integer reference, and the
    pool layer's code is the rounded mean of its source's codes at the weight the formats allow:
    round(m·Σ codes / D), m/D within 1% of 1/64 (measured: m = 54, D = 3429, 0.79%: the state bound
    shrinks D below 127·64 and D need not be a multiple of 64)."""
    gap_net(tmp_path / "m.onnx", 16, 8)
    net = compile_model(tmp_path / "m.onnx", "loihi2", "sws", CompileOptions(coding_steps=8, silent_steps=2))
    x = netgen.random_inputs((3, 8, 8), 64, seed=6)
    ours = engine.run_batch(engine.prepare(net), x)
    ref, ref_u = reference(net, x)
    for name in ("input", "conv1", "scale1"):
        np.testing.assert_array_equal(ours.codes[name].numpy(), ref[name], err_msg=name)
    np.testing.assert_array_equal(ours.output_state.numpy().reshape(len(x), -1), ref_u.reshape(len(x), -1))
    pool = next(l for l in net.layers if l.name == "scale1")
    (m,) = np.unique(pool.branches[0].ops[1].weight)
    d = pool.neuron.theta_mant
    assert pool.branches[0].weight_exp == 0 and not np.any(pool.bias_mant) and abs(m * 64 / d - 1) < 0.01
    total = ref["conv1"].reshape(len(x), 16, -1).sum(-1).astype(np.int64)
    np.testing.assert_array_equal(ref["scale1"].reshape(len(x), 16), (2 * m * total + d) // (2 * d))
    assert np.abs(ref["scale1"].reshape(len(x), 16) - np.floor(total / 64 + 0.5)).max() <= 2
    assert len(np.unique(ref["scale1"])) > 10                 # a real range of pooled codes



@pytest.mark.parametrize("scheme", ["rate", "sws"])
def test_max_pooling_is_refused_before_the_readout_is_sized(tmp_path, monkeypatch, scheme):
    """The scheme's structural refusal (max pooling) comes before its readout's format check: a
    user who fixed the readout's weights would otherwise meet the max pool next.  Every layer is
    made not to fit (the scheme's quantiser refuses), so only the order decides the message."""
    b = netgen.NetBuilder((3, 8, 8), 0)
    x = b.qcfs("input", 15, 1.0)
    x = b.maxpool(b.qcfs(b.conv(x, 3, 8, bn=True, scale=2.0), 7, 1.5))
    onnx.save(b.model(b.gemm(b.flatten(b.gap(x)), 8, 4, scale=2.0), 4), tmp_path / "m.onnx")
    monkeypatch.setattr(f"neurodeploy.schemes.{scheme}.compile.quantise_layer", _refuse_layer)
    with pytest.raises(UnsupportedError) as info:
        compile_model(tmp_path / "m.onnx", "loihi2", scheme, CompileOptions())
    assert "(MaxPool): max pooling" in str(info.value) and "does not fit" not in str(info.value)


def _refuse_layer(name, *args, **kwargs):
    raise TargetLimitError("does not fit", f"layer '{name}'", "do something")
