"""Residual ReverB networks (`nn.reverb.ReverBBasicBlock`): folding (schemes/reverb/fold.py step 4),
compiling to multi-branch layers (schemes/reverb/compile.py), fixed point vs float, Lava vs our simulator."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

import neurodeploy as nd
from neurodeploy.errors import UnsupportedError
from neurodeploy.schemes.reverb.front import load_reverb_model
from neurodeploy.ir import float_graph as fg
from neurodeploy.schemes.reverb import float_model as rf
from neurodeploy.ir import synapses as syn
from neurodeploy.nn.lif import SpikingSequential
from neurodeploy.nn.reverb import BinaryConv2d, ReverBBasicBlock, ReverBNeuron
from neurodeploy.schemes.reverb.fold import fold_reverb
from neurodeploy.reports.costs import cost_report
from neurodeploy.reports.memory import binary_weight_memory
from neurodeploy.schemes.reverb import kernel as rsim
from neurodeploy.train.fit import predict


def _randomise(m: nn.Module, seed: int) -> nn.Module:
    """Random BN statistics (γ of both signs) and α of both signs, so every fold branch is taken."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                sign = torch.where(torch.rand(n, generator=g) < 0.3, -1.0, 1.0)
                mod.weight.copy_((torch.rand(n, generator=g) + 0.3) * sign)
                mod.bias.copy_(torch.rand(n, generator=g) * 0.6 - 0.2)
                mod.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                mod.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            if isinstance(mod, BinaryConv2d):
                a = torch.rand(mod.alpha.shape, generator=g) + 0.2
                mod.alpha.copy_(a * torch.where(torch.rand(a.shape, generator=g) < 0.3, -1.0, 1.0))
    return m.eval()


def _res_net(seed: int, shortcut: str, v_th: float = 0.05) -> SpikingSequential:
    """stem -> one basic block (identity or 1x1-conv downsample shortcut) -> readout."""
    torch.manual_seed(seed)
    c, stride = (4, 1) if shortcut == "identity" else (6, 2)
    block = ReverBBasicBlock(4, c, stride=stride, v_th=v_th)
    assert isinstance(block.shortcut, nn.Identity) == (shortcut == "identity")
    side = 8 // stride
    m = SpikingSequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), ReverBNeuron(0.25, v_th), block,
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(c * (side // 2) ** 2, 5))
    return _randomise(m, seed)


def _inputs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 2, 8, 8)).astype(np.float32)


# --------------------------------------------------------------------------- folding
@pytest.mark.parametrize("seed,shortcut", [(0, "identity"), (1, "conv"), (2, "identity"), (3, "conv")])
def test_residual_folding_preserves_the_float_network(seed, shortcut):
    m = _res_net(seed, shortcut)
    x = _inputs(16, seed)
    g = load_reverb_model(m, x[:2])
    assert any(isinstance(g.op(n), fg.Add) for n in g.topo_order())
    folded = fold_reverb(g)
    trained = rf.run(g, x, 4)
    ref = predict(m, x, 4)
    assert np.allclose(trained, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    out = rf.run(folded, x, 4)
    assert np.allclose(out, trained, rtol=1e-9, atol=1e-12 * np.abs(trained).max())
    binary = [n for n in folded.topo_order() if isinstance(folded.op(n), rf.BINARY)]
    assert len(binary) == 2
    for n in binary:
        assert np.all(np.abs(folded.op(n).weight) == 1.0)
        assert np.all(folded.op(n).alpha == 1.0)
    (add,) = [n for n in folded.topo_order() if isinstance(folded.op(n), fg.Add)]
    sc = folded.op(folded.inputs(add)[1])
    assert isinstance(sc, fg.Scale if shortcut == "identity" else fg.Conv)
    _, st = rf.run(folded, x, 4, stats=True)
    acts = [n for n in folded.topo_order() if isinstance(folded.op(n), rf.ReverbAct)]
    assert all(st[a].emit_max > 0 for a in acts)            # every neuron layer fired: the test sees spikes


def test_random_blocks_cover_negative_gamma_and_alpha():
    # the folding test above is only meaningful if its blocks hold γ2 < 0 and α1 < 0 somewhere
    blocks = [next(mod for mod in _res_net(s, k).modules() if isinstance(mod, ReverBBasicBlock))
              for s, k in [(0, "identity"), (1, "conv"), (2, "identity"), (3, "conv")]]
    assert any(bool((b.bn2.weight < 0).any()) for b in blocks)
    assert any(bool((b.conv1.alpha < 0).any()) for b in blocks)
    assert any(bool((b.shortcut[1].weight < 0).any()) for b in blocks if not isinstance(b.shortcut, nn.Identity))


# --------------------------------------------------------------------------- refused topologies
class _AddAfterNeuron(nn.Module):
    """y = n2(bn(conv(h))) + x: the add after the second neuron (a spike sum, not a membrane current)."""

    def __init__(self):
        super().__init__()
        self.stem, self.n0 = nn.Conv2d(2, 4, 3, padding=1), ReverBNeuron()
        self.conv, self.bn, self.n2 = BinaryConv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), ReverBNeuron()
        self.out = nn.Sequential(nn.Flatten(), nn.Linear(4 * 64, 3))

    def forward(self, x):                 # one step (the front end swaps the neurons for per-step leaves)
        h = self.n0(self.stem(x))
        return self.out(self.n2(self.bn(self.conv(h))) + h)


class _BinaryShortcut(nn.Module):
    """A basic block whose downsample shortcut is a BinaryConv2d."""

    def __init__(self):
        super().__init__()
        self.stem, self.n0 = nn.Conv2d(2, 4, 3, padding=1), ReverBNeuron()
        self.c1, self.n1 = BinaryConv2d(4, 6, 3, padding=1), ReverBNeuron()
        self.c2, self.n2 = BinaryConv2d(6, 6, 3, padding=1), ReverBNeuron()
        self.sc = BinaryConv2d(4, 6, 1)
        self.out = nn.Sequential(nn.Flatten(), nn.Linear(6 * 64, 3))

    def forward(self, x):
        x = self.n0(self.stem(x))
        return self.out(self.n2(self.c2(self.n1(self.c1(x))) + self.sc(x)))


def test_unsupported_residual_topologies_are_refused_clearly():
    x = _inputs(8, 0)
    with pytest.raises(UnsupportedError, match="before the block's second neuron"):
        nd.compile(_AddAfterNeuron().eval(), x[:2], scheme="reverb", calibration=x)
    with pytest.raises(UnsupportedError, match="binary .*shortcut.*±1") as err:
        nd.compile(_BinaryShortcut().eval(), x[:2], scheme="reverb", calibration=x)
    assert "nn.Conv2d" in str(err.value)
    # a block right after the input: the shortcut would start at the host encoder
    m = SpikingSequential(ReverBBasicBlock(2, 2), nn.Flatten(), nn.Linear(2 * 64, 3)).eval()
    with pytest.raises(UnsupportedError, match="does not start at a ReverB neuron"):
        nd.compile(m, x[:2], scheme="reverb", calibration=x)


# --------------------------------------------------------------------------- compile (trained model)
def _trained_residual():
    """A small residual ReverB CNN trained for a few seeded epochs on sklearn digits."""
    from neurodeploy.train.data import digits
    from neurodeploy.train.fit import fit
    xtr, ytr, xte, yte = digits(0)
    torch.manual_seed(0)
    m = SpikingSequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), ReverBNeuron(),
                          ReverBBasicBlock(8, 8), ReverBBasicBlock(8, 16, stride=2),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 2 * 2, 10))
    fit(m, (xtr, ytr), epochs=6, timesteps=4, method="bptt", lr=3e-3, progress=False, seed=0,
        measure_memory=False)
    m.eval()
    net = nd.compile(m, xtr[:2], target="loihi2", scheme="reverb", timesteps=4, payload_bits=16, calibration=xtr)
    return m, net, xte, yte


@pytest.fixture(scope="module")
def trained_residual():
    return _trained_residual()


def test_trained_residual_model_compiles_and_agrees_with_the_float_snn(trained_residual):
    m, net, xte, yte = trained_residual
    g = net.graph
    res = [l for l in g.neuron_layers() if len(l.branches) == 2]
    assert [l.name for l in res] == ["conv3", "conv5"]            # the second neuron of each block
    start = {l.name: getattr(l.neuron, "start_step", 0) for l in g.layers}
    for l in res:
        main, sc = l.branches
        assert np.all(np.abs(syn.weighted_op(main.ops).weight) == 1)          # still ±1 (<< weight_exp)
        w = np.asarray(syn.weighted_op(sc.ops).weight)
        assert np.max(np.abs(w)) <= 127 and np.max(np.abs(w)) >= 16          # 8-bit mantissas, not degenerate
        assert start[l.name] == 1 + max(start[b.source] for b in l.branches)
    assert isinstance(res[0].branches[1].ops[0], syn.ChannelScale)           # identity shortcut
    assert isinstance(res[1].branches[1].ops[0], syn.Conv)                   # 1x1 stride-2 downsample
    assert g.meta["real_branches"] == {"conv3": [1], "conv5": [1]}
    r = rsim.run(rsim.prepare(g), xte)
    fixed = rsim.readout_value(g, r.readout_state).numpy().argmax(1)
    ref = np.asarray(predict(m, xte, 4)).argmax(1)
    agreement = float(np.mean(fixed == ref))
    assert agreement >= 0.97, agreement
    assert float(np.mean(ref == yte)) > 0.5                                 # it learnt something
    for name in ("conv3", "conv5"):
        assert int((r.trains[name] != 0).sum()) > 0


def test_memory_report_counts_shortcuts_as_non_binary(trained_residual):
    _, net, *_ = trained_residual
    mem = binary_weight_memory(net.graph)
    rows = {r["name"]: r for r in mem["layers"]}
    assert set(mem["binary_layers"]) == {"conv2", "conv3", "conv4", "conv5"}
    for name in ("conv3", "conv5"):
        r = rows[name]
        assert 0 < r["real_synapses"] < r["synapses"]
        binary = r["synapses"] - r["real_synapses"]
        assert r["bytes_1bit"] == -(-(binary * 1 + r["real_synapses"] * 8) // 8)
        assert r["bytes_8bit"] == -(-r["synapses"] * 8 // 8)
    assert "real_synapses" not in rows["conv2"]
    assert rows["conv2"]["bytes_1bit"] == -(-rows["conv2"]["synapses"] // 8)
    # the chip report's per-core synaptic memory stores the shortcut at 8 bits, the ±1 conv at 2
    _, _, xte, _ = trained_residual
    layers = {r["name"]: r for r in cost_report(net.graph, xte[:8])["layers"]}
    r = rows["conv3"]
    want = -(-((r["synapses"] - r["real_synapses"]) * mem["binary_weight_bits_stored"] + r["real_synapses"] * 8) // 8)
    assert layers["conv3"]["synaptic_memory_bytes"] == want


@pytest.mark.lava
def test_residual_model_in_lava_is_bit_exact(trained_residual, lava):
    from neurodeploy.schemes.reverb import lava as reverb_lava
    _, net, xte, _ = trained_residual
    x = xte[:3]
    ours = rsim.run(rsim.prepare(net.graph), x)
    lava = reverb_lava.run_lava(net.graph, x)
    assert set(lava.trains) == set(ours.trains)
    for name, tr in ours.trains.items():
        np.testing.assert_array_equal(lava.trains[name], tr.numpy(), err_msg=f"payload train of {name}")
    assert int((lava.trains["conv3"] != 0).sum()) > 0 and int((lava.trains["conv5"] != 0).sum()) > 0
    np.testing.assert_array_equal(lava.readout_state, ours.readout_state.numpy().reshape(len(x), -1))


# --------------------------------------------------------------------------- engines
@pytest.mark.parametrize("seed,shortcut", [(0, "identity"), (1, "conv")])
def test_residual_engines_identical_on_random_blocks(seed, shortcut):
    """Two-branch layers (±1 main branch + 8-bit shortcut, the shortcut's source a hop earlier): the
    default engine sums both branches' chunked inputs like the `steps` engine's int64 loop."""
    from test_reverb_sim import assert_reverb_engines_identical
    m = _res_net(seed, shortcut)
    x = _inputs(32, seed)
    net = nd.compile(m, x[:2], scheme="reverb", timesteps=4, payload_bits=16, calibration=x)
    assert any(len(l.branches) == 2 for l in net.graph.neuron_layers())
    assert_reverb_engines_identical(net.graph, x)


def test_residual_engines_identical_on_the_trained_model(trained_residual):
    from test_reverb_sim import assert_reverb_engines_identical
    _, net, xte, _ = trained_residual
    assert_reverb_engines_identical(net.graph, xte[:128])
