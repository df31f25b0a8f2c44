"""The `reverb` scheme in Lava's fixed_pt CPU simulation (schemes/reverb/lava/):
bit-exact with our simulator (schemes/reverb/kernel.py) on every layer's payload train and the
readout state, on random reverb graphs and on a small compiled model."""
import copy

import numpy as np
import pytest

import reverb_netgen
from neurodeploy.errors import NeurodeployError
from neurodeploy.ir import synapses as syn
from neurodeploy.ir.spiking import Branch
from neurodeploy.schemes.reverb import kernel as rsim

pytestmark = [pytest.mark.lava, pytest.mark.usefixtures("lava")]


def _assert_exact(graph, x):
    from neurodeploy.schemes.reverb import lava as reverb_lava
    ours = rsim.run(rsim.prepare(graph), x)
    lava = reverb_lava.run_lava(graph, x)
    assert set(lava.trains) == set(ours.trains)
    sent = 0
    for name, tr in ours.trains.items():
        np.testing.assert_array_equal(lava.trains[name], tr.numpy(), err_msg=f"payload train of {name}")
        if name != graph.input.name:
            sent += int((lava.trains[name] != 0).sum())
    assert sent > 0                                         # hidden layers sent graded spikes
    np.testing.assert_array_equal(lava.readout_state, ours.readout_state.numpy().reshape(len(x), -1))
    np.testing.assert_array_equal(lava.output, rsim.readout_value(graph, ours.readout_state).numpy())
    return lava


@pytest.mark.parametrize("seed,t,bits,pool,real", [(0, 1, 8, "sum", False), (1, 2, 16, "max", True),
                                                   (2, 4, 8, "max", False), (3, 4, 16, "sum", True),
                                                   (4, 3, 8, "max_padded", False)])
def test_random_graphs_bit_exact(seed, t, bits, pool, real):
    graph = reverb_netgen.random_graph(seed, t, bits, pool, real)
    _assert_exact(graph, reverb_netgen.random_inputs(graph, 3, seed))


@pytest.mark.parametrize("seed,t,bits,pool", [(23, 4, 8, "sum"), (21, 3, 16, "max")])
def test_per_neuron_fields_bit_exact(seed, t, bits, pool):
    # conv1's v_th_mant and out_mant hold one value per neuron (C, H, W), not per channel
    graph = reverb_netgen.random_graph(seed, t, bits, pool, per_neuron=True)
    assert np.asarray(graph.layers[1].neuron.out_mant).shape == tuple(graph.layers[1].shape)
    lava = _assert_exact(graph, reverb_netgen.random_inputs(graph, 3, seed))
    assert int((lava.trains["conv1"] != 0).sum()) > 0


def _with_skip(graph):
    """Add a second readout branch straight from conv1 (hop depth 1 instead of 2): Lava must
    delay it by one step (DelayLine) to stay layer-synchronous."""
    g = copy.deepcopy(graph)
    conv1, readout = g.layers[1], g.layers[-1]
    rng = np.random.default_rng(5)
    c, h, w = conv1.shape
    wt = np.where(rng.random((readout.shape[0], c * (h // 2) * (w // 2))) < 0.5, -1, 1)
    readout.branches.append(Branch("conv1", [syn.SumPool((2, 2), (2, 2)), syn.Flatten(), syn.Dense(wt)], 0))
    return g


def test_skip_branch_is_delayed_to_stay_layer_synchronous():
    graph = _with_skip(reverb_netgen.random_graph(4, 2, 8, "sum"))
    _assert_exact(graph, reverb_netgen.random_inputs(graph, 2, 4))


def test_wrong_start_step_is_refused_before_running():
    from neurodeploy.schemes.reverb import lava as reverb_lava
    graph = reverb_netgen.random_graph(0, 2, 8)
    graph.layers[2].neuron.start_step = 1                      # fc1 reads conv1 (depth 1): must be 2
    with pytest.raises(NeurodeployError, match="start_step"):
        reverb_lava.build(graph, reverb_netgen.random_inputs(graph, 1))


@pytest.mark.parametrize("seed,t,bits,pool", [(10, 4, 16, "max"), (11, 2, 8, "sum"), (12, 1, 16, "sum")])
def test_more_random_graphs_bit_exact(seed, t, bits, pool):
    graph = reverb_netgen.random_graph(seed, t, bits, pool, seed % 2 == 0, in_shape=(3, 8, 8), c1=4, hidden=9)
    _assert_exact(graph, reverb_netgen.random_inputs(graph, 4, seed))


def _small_model(seed: int, binary_last: bool = False):
    """The digits CNN in small; binary_last: a BinaryLinear read-out whose α (per flattened feature,
    both signs) folds into per-neuron out_mant of the second ReverB layer."""
    import torch
    from torch import nn

    from neurodeploy.nn.lif import SpikingSequential
    from neurodeploy.nn.reverb import BinaryConv2d, BinaryLinear, ReverBNeuron
    torch.manual_seed(seed)
    model = SpikingSequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), ReverBNeuron(0.25, 0.05), nn.AvgPool2d(2),
        BinaryConv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), ReverBNeuron(0.25, 0.0), nn.AvgPool2d(2),
        nn.Flatten(), (BinaryLinear if binary_last else nn.Linear)(6 * 2 * 2, 3))
    with torch.no_grad():                                   # BN statistics as after training
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.3)
    return model.eval()


@pytest.mark.parametrize("t,bits,binary_last", [(2, 8, False), (4, 16, False), (3, 12, True)])
def test_compiled_model_bit_exact(t, bits, binary_last):
    import neurodeploy as nd
    model = _small_model(t, binary_last)
    if binary_last:
        import torch
        with torch.no_grad():
            a = model[9].alpha
            a.copy_(torch.rand(a.shape, generator=torch.Generator().manual_seed(t)) + 0.2)
            a[0, ::5] *= -1.0
    rng = np.random.default_rng(t)
    x = rng.uniform(0, 1, (16, 1, 8, 8)).astype(np.float32)
    net = nd.compile(model, x[:8], target="loihi2", scheme="reverb", timesteps=t, payload_bits=bits, calibration=x)
    graph = net.graph
    assert graph.scheme == "reverb"
    out_mant = np.asarray(graph.layers[2].neuron.out_mant)
    assert out_mant.shape == ((6, 4, 4) if binary_last else (6,))
    lava = _assert_exact(graph, x[:2])
    np.testing.assert_array_equal(lava.output, nd.simulate(net, x[:2]))


def test_conv_sum_wraps_at_24_bits_like_lava(monkeypatch):
    # 8-bit first-layer weights << 8 on 8-bit codes: conv sums reach ~2^27, past Lava Conv's
    # signed 24-bit output; the simulator wraps the same way (and it matters here)
    graph = reverb_netgen.random_graph(6, 2, 16, "sum", True)
    graph.layers[1].branches[0].weight_exp = 8
    assert reverb_netgen.max_branch_sum(graph) > 1 << 23
    x = reverb_netgen.random_inputs(graph, 2, 6)
    _assert_exact(graph, x)
    wrapped = rsim.run(rsim.prepare(graph), x)
    monkeypatch.setattr(rsim, "lava_wraps", lambda ops, shape: False)
    unwrapped = rsim.run(rsim.prepare(graph), x)
    assert not (np.array_equal(wrapped.trains["conv1"], unwrapped.trains["conv1"])
                and np.array_equal(wrapped.membranes["conv1"], unwrapped.membranes["conv1"]))
