"""The `sdnn` scheme's two engines, bit for bit: the layer-after-layer engine (default,
`kernel.run_layers`: time-batched synapse calls, silent steps skipped) against the lock-step int64
engine (`kernel.run_sdnn`, the one checked against Lava in tests/test_sdnn.py), on every hidden layer's
payloads at every step, every layer's codes and spike totals and the readout, on random networks
(dense, conv with pools, residual adds), with a dead zone (vth > 0), and with weights scaled so that
the synaptic sums need float32 channel groups / limbs and Lava's 24-bit wrap of a convolution's
output happens."""
import onnx
import pytest
import torch

import netgen
from neurodeploy.schemes.base import CompileOptions
from neurodeploy.frontends.onnx import load_onnx
from neurodeploy.schemes.sdnn import Sdnn
from neurodeploy.schemes.sdnn import kernel as ssd
from neurodeploy.sim import core, engine
from neurodeploy.target import load_target
from test_bitplane_exact import NETS
from test_channel_groups import scale_conv_layers


def _compile(tmp_path, model, vth=0):
    onnx.save(model, tmp_path / "m.onnx")
    cal = netgen.random_inputs(tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]), 32,
                               seed=3)
    return Sdnn(vth).compile(load_onnx(tmp_path / "m.onnx"), load_target("loihi2"), CompileOptions(calibration=cal))


def assert_engines_identical(net, x):
    """Every hidden layer's payload at every step, codes, spike totals and readout equal between the
    engines; returns the step engine's trace."""
    trace, steps = {}, []
    a = ssd.run_layers(engine.prepare(net), x, trace=trace)
    b = ssd.run_sdnn(engine.prepare(net, engine="steps"), x, trace=steps)
    assert torch.equal(a.output_state, b.output_state) and torch.equal(a.output, b.output)
    assert sorted(a.codes) == sorted(b.codes) and a.spikes == b.spikes
    for name in b.codes:
        assert torch.equal(a.codes[name], b.codes[name]), name
    hidden = [l.name for l in net.neuron_layers() if not l.is_readout]
    assert sorted(trace) == sorted(hidden)
    for name in hidden:
        assert torch.equal(trace[name], torch.stack([s[name] for s in steps])), name
    # the default engine through the dispatch is that engine
    assert torch.equal(engine.run_batch(engine.prepare(net), x).output_state, a.output_state)
    return steps


@pytest.mark.parametrize("kind", ["dense", "conv_bn_avgpool", "residual"])
@pytest.mark.parametrize("vth", [0, 1])
def test_engines_identical_on_random_networks(tmp_path, kind, vth):
    net = _compile(tmp_path, NETS[kind](1), vth)
    x = netgen.random_inputs(net.input.shape, 24, seed=7)
    steps = assert_engines_identical(net, x)
    hidden = [l.name for l in net.neuron_layers() if not l.is_readout]
    # not trivial: every hidden layer sends, and (vth = 0) in more than one step
    assert all(any(bool(s[name].any()) for s in steps) for name in hidden)
    if vth == 0:
        assert all(sum(bool(s[name].any()) for s in steps) > 1 for name in hidden)


def _scaled(net, k: int):
    """Every hidden conv layer's weight mantissas times 2^k: synaptic sums past 2^24, and past Lava's
    24-bit wrap of a convolution's output."""
    return scale_conv_layers(net, k, bias=False)


@pytest.mark.parametrize("kind", ["conv_bn_avgpool", "residual"])
def test_engines_identical_where_lava_wraps_and_sums_need_limbs(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(core, "MIN_GROUP_CHANNELS", 1)
    net = _scaled(_compile(tmp_path, NETS[kind](2)), 12)
    x = netgen.random_inputs(net.input.shape, 16, seed=8)
    assert_engines_identical(net, x)
    plan = ssd.layer_plan(engine.prepare(net))
    assert any(sl.post is not None for sl in plan.values())           # the wrap path runs
    assert any(any(plan[n].arith.limbs) for n in plan)                 # float32 groups / limbs
    # and some current does wrap: without the wrap the readout differs
    unwrapped = engine.prepare(net)
    for sl in ssd.layer_plan(unwrapped).values():
        sl.post = None
    assert not torch.equal(ssd.run_layers(unwrapped, x).output_state, ssd.run_sdnn(engine.prepare(net), x).output_state)


def test_probe_runs_the_step_engine(tmp_path):
    net = _compile(tmp_path, NETS["dense"](0))
    x = netgen.random_inputs(net.input.shape, 8, seed=1)
    probe = core.Probe()
    r = Sdnn().run_probed(engine.prepare(net), x, probe)
    assert torch.equal(r.output_state, engine.run_batch(engine.prepare(net), x).output_state)
    assert len(probe.readout_steps) == ssd.settle_steps(net)
