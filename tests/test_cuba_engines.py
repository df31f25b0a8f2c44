"""The `cuba` scheme's two engines, bit for bit: the layer-after-layer engine (default,
`kernel.simulate_layers`: time-batched synapse calls, the LIF update in place in float64) against the
lock-step int64 engine (`kernel.simulate_steps`, the one tests/test_cuba.py and tests/test_netx_import.py
check against Lava), on every layer's spikes at every step, spike counts and the readout: random
dense and conv LIF networks, a residual NIR graph, imported NetX networks (LIFReset, graded sequence
input, the input as a bias, a spiking output layer), and weights scaled so that the synaptic sums need float32 channel
groups / limbs, Lava's 24-bit wrap of a convolution's output happens and u wraps."""
import dataclasses

import numpy as np
import pytest
import torch

from neurodeploy.schemes.cuba import Cuba, compile_lif
from neurodeploy.schemes.cuba import kernel as sim_cuba
from neurodeploy.schemes.cuba.neurons import VTH_MAX
from neurodeploy.sim import core, engine
from test_channel_groups import scale_conv_layers
from test_cuba import _random_input, _random_net


def assert_engines_identical(net, x):
    """Every counted layer's spikes at every step, the counts, spike totals and readout equal between the
    engines (through the dispatch, as `simulate` runs them); returns the step engine's trace."""
    spikes = {}
    sim_cuba.simulate_layers(engine.prepare(net), x, spikes)
    tr = sim_cuba.simulate_steps(engine.prepare(net, engine="steps"), x, trace=True)[3]
    assert sorted(spikes) == sorted(tr.spikes)
    for name, s in tr.spikes.items():
        assert np.array_equal(spikes[name].numpy(), s), name
    a = engine.run_batch(engine.prepare(net), x)
    b = engine.run_batch(engine.prepare(net, engine="steps"), x)
    assert torch.equal(a.output_state, b.output_state) and torch.equal(a.output, b.output)
    assert sorted(a.codes) == sorted(b.codes) and a.spikes == b.spikes
    for name in b.codes:
        assert torch.equal(a.codes[name], b.codes[name]), name
    return tr


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("seed", [1, 2])
def test_engines_identical_on_random_networks(kind, seed):
    m = _random_net(kind, seed)
    cal = _random_input(kind, 64, 5)
    net = compile_lif(m, cal[:8], timesteps=6, calibration=cal, input_bits=6)
    tr = assert_engines_identical(net, _random_input(kind, 12, seed + 10))
    assert all(0 < s.mean() < 1 for s in tr.spikes.values())      # the layers do spike, and not always
    assert {p.arith.dtype for p in sim_cuba.layer_plan(engine.prepare(net)).values()} == {torch.float64}


def _scaled(net, k: int):
    """Hidden conv layers' weight mantissas, bias and thresholds times 2^k (thresholds at most Loihi's): large
    currents, wrapped by Lava's Conv and in u, with spikes still."""
    return scale_conv_layers(net, k, lambda n: dataclasses.replace(n, v_th_mant=min(n.v_th_mant << k, VTH_MAX)))


@pytest.mark.parametrize("k", [10, 17])
def test_engines_identical_where_currents_wrap_and_sums_need_limbs(monkeypatch, k):
    monkeypatch.setattr(core, "MIN_GROUP_CHANNELS", 1)
    cal = _random_input("conv", 64, 5)
    net = _scaled(compile_lif(_random_net("conv", 3), cal[:8], timesteps=6, calibration=cal, input_bits=6), k)
    x = _random_input("conv", 12, 9)
    assert_engines_identical(net, x)
    plan = sim_cuba.layer_plan(engine.prepare(net))
    assert any(p.post is not None for p in plan.values())              # Lava's Conv wrap runs
    # and does wrap: without it the counts differ
    unwrapped = engine.prepare(net)
    for p in sim_cuba.layer_plan(unwrapped).values():
        p.post = None
    a = sim_cuba.simulate_layers(unwrapped, x)[1]
    b = sim_cuba.simulate_steps(engine.prepare(net), x)[1]
    assert any(not torch.equal(a[n], b[n]) for n in b)


def test_engines_identical_on_imported_netx_networks(tmp_path):
    """LIFReset (interval 5, offset 2) with an input CUBA neuron (the codes drive its bias); a graded frame
    per step with a spiking output layer."""
    from neurodeploy.frontends.netx import import_netx
    from neurodeploy.frontends.netx.options import NetxOptions
    from test_netx_import import tiny_cuba
    rng = np.random.default_rng(1)
    p = tmp_path / "c.net"
    tiny_cuba(p, input_neuron=True)
    g = import_netx(p, options=NetxOptions(timesteps=12, reset_interval=5, reset_offset=2))
    assert g.input.neuron.drive == "bias"
    assert_engines_identical(g, rng.integers(-30, 120, (3, 2, 9, 9)).astype(np.float32))
    tiny_cuba(p, seed=2)
    g = import_netx(p, options=NetxOptions(timesteps=10, input_message_bits=6))
    assert g.output.neuron.output == "spikes" and g.input.neuron.sequence
    assert_engines_identical(g, rng.integers(-32, 32, (3, 10, 2, 9, 9)).astype(np.float32))


def test_probe_runs_the_step_engine():
    cal = _random_input("dense", 32, 5)
    net = compile_lif(_random_net("dense", 1), cal[:8], timesteps=5, calibration=cal, input_bits=6)
    x = _random_input("dense", 6, 2)
    probe = core.Probe()
    r = Cuba().run_probed(engine.prepare(net), x, probe)
    assert torch.equal(r.output_state, engine.run_batch(engine.prepare(net), x).output_state)
    assert len(probe.readout_steps) == net.input.neuron.n_steps
