"""The `reverb` compiler: ReverB front end, the α/BN folding (digest §4.3), the scheme, the memory report."""
from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
import torch
from torch import nn

import neurodeploy as nd
from neurodeploy.errors import NeurodeployError, UnsupportedError
from neurodeploy.schemes.reverb.front import load_reverb_model
from neurodeploy.ir import float_graph as fg
from neurodeploy.schemes.reverb import neurons as rv
from neurodeploy.schemes.reverb import float_model as rf
from neurodeploy.ir import serialize
from neurodeploy.ir import synapses as syn
from neurodeploy.ir.spiking import InputEncoder, Layer
from neurodeploy.nn.lif import LIF, SpikingSequential
from neurodeploy.nn.reverb import BinaryConv2d, BinaryLinear, ReverBNeuron
from neurodeploy.schemes.reverb.fold import fold_reverb
from neurodeploy.reports.memory import binary_weight_memory
from neurodeploy.train.fit import predict
from conftest import ROOT  # noqa: E402



def _randomise(m: nn.Module, seed: int) -> nn.Module:
    """BN statistics with both signs of γ, α with both signs, so that every fold branch is taken."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = mod.num_features
                mod.weight.copy_((torch.rand(n, generator=g) + 0.3) * torch.where(torch.arange(n) % 3 == 1, -1.0, 1.0))
                mod.bias.copy_(torch.rand(n, generator=g) * 0.6 - 0.2)
                mod.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                mod.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            if isinstance(mod, (BinaryConv2d, BinaryLinear)):
                a = torch.rand(mod.alpha.shape, generator=g) + 0.2
                sign = torch.where(torch.arange(a.numel()).reshape(a.shape) % 4 == 2, -1.0, 1.0)
                mod.alpha.copy_(a * sign)
    return m.eval()


def _conv_net(seed: int, v_th: float = 0.1) -> SpikingSequential:
    torch.manual_seed(seed)
    m = SpikingSequential(
        BinaryConv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), ReverBNeuron(0.25, v_th), nn.AvgPool2d(2),
        BinaryConv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), ReverBNeuron(0.5, v_th),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32, 5))
    return _randomise(m, seed)


def _dense_net(seed: int, v_th: float = 0.05) -> SpikingSequential:
    torch.manual_seed(seed)
    m = SpikingSequential(
        nn.Linear(12, 16), nn.BatchNorm1d(16), ReverBNeuron(0.25, v_th),
        BinaryLinear(16, 20), nn.BatchNorm1d(20), ReverBNeuron(0.25, v_th),
        BinaryLinear(20, 5))
    return _randomise(m, seed)


def _inputs(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 12) if kind == "dense" else (n, 2, 8, 8)).astype(np.float32)


NETS = {"conv": _conv_net, "dense": _dense_net}


# --------------------------------------------------------------------------- front end + folding
@pytest.mark.parametrize("kind,seed", [("conv", 0), ("conv", 1), ("dense", 2), ("dense", 3)])
def test_folded_equals_trained(kind, seed):
    m = NETS[kind](seed)
    x = _inputs(kind, 32, seed)
    g = load_reverb_model(m, x[:2])
    folded = fold_reverb(g)
    trained = rf.run(g, x, 4)
    out = rf.run(folded, x, 4)
    # the front end's graph is the model (float32 torch vs float64 numpy)
    torch_out = predict(m, x, 4)
    assert np.allclose(trained, torch_out, rtol=1e-4, atol=1e-5 * np.abs(torch_out).max())
    assert np.allclose(out, trained, rtol=1e-9, atol=1e-12 * np.abs(trained).max())
    # the layers really fire and the folded thresholds/biases really differ per channel
    acts = [folded.op(n) for n in folded.topo_order() if isinstance(folded.op(n), rf.ReverbAct)]
    assert len(acts) == 2 and all(np.ptp(a.emit_scale) > 0 for a in acts)      # |s|·|α| per channel
    assert np.ptp(acts[1].threshold) > 0                                        # V_th/|s| after a binary layer
    _, st = rf.run(folded, x, 4, stats=True)
    assert all(st[n].emit_max > 0 for n in folded.topo_order() if isinstance(folded.op(n), rf.ReverbAct))


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_folding_keeps_binary_weights_pm1_and_flips_signs(kind):
    m = NETS[kind](5)
    g = load_reverb_model(m, _inputs(kind, 2, 5))
    folded = fold_reverb(g)
    before = {n: g.op(n).weight for n in g.topo_order() if isinstance(g.op(n), rf.BINARY)}
    after = {n: folded.op(n) for n in folded.topo_order() if isinstance(folded.op(n), rf.BINARY)}
    assert before.keys() == after.keys() and before
    flipped = 0
    for n, op in after.items():
        assert np.all(np.abs(op.weight) == 1.0) and np.all(op.alpha == 1.0)
        assert n == folded.output or np.all(op.bias == 0.0)     # the bias moved into the neuron
        flipped += int(np.sum(op.weight != before[n]))
    assert flipped > 0          # negative γ and negative α flipped some synapses
    for n in folded.topo_order():
        if isinstance(folded.op(n), rf.ReverbAct):
            assert np.all(folded.op(n).emit_scale >= 0) and np.all(folded.op(n).threshold >= 0)


def _single_binary_graph(w, alpha, bn=None):
    g = fg.FloatGraph(source="digest §4.6")
    g.add("input", fg.Input((len(w),)))
    g.add("fc", rf.BinaryDense(weight=np.sign(np.asarray([w])) + (np.asarray([w]) == 0),
                               alpha=np.asarray(alpha, float), bias=np.zeros(1)), ["input"])
    prev = "fc"
    if bn is not None:
        g.add("bn", bn, ["fc"])
        prev = "bn"
    g.add("act", rf.ReverbAct(tau=0.25, threshold=np.asarray(0.25)), [prev])
    g.output = "act"
    return g


def _per_step(graph, seq):
    """Spikes of the output node at each step (from the means over the first k steps)."""
    means = [float(rf.run(graph, seq, k, sequence=True).reshape(-1)[0]) * k for k in range(1, len(seq) + 1)]
    return np.diff([0.0] + means)


def test_digest_vectors_alpha_fold():
    g = _single_binary_graph([0.3, -0.7, 0.1], [0.5, 2.0, 1.0])
    seq = np.asarray([[[1.2, 0.1, 0]], [[0.4, 0, 0.3]], [[0.2, 0, 0]], [[0, 0, 0.2]]])
    want = [0.4, 0.5, 0.0, 0.0]
    assert np.allclose(_per_step(g, seq), want)
    folded = fold_reverb(g)
    scale = [folded.op(n) for n in folded.topo_order() if isinstance(folded.op(n), fg.Scale)]
    assert len(scale) == 1 and np.allclose(scale[0].factor, [0.5, 2.0, 1.0])
    assert np.allclose(_per_step(folded, seq), want)


def test_digest_vectors_bn_fold():
    bn = fg.BatchNorm(gamma=np.asarray([2.0]), beta=np.asarray([0.1]), mean=np.asarray([0.2]),
                      var=np.asarray([0.25]), eps=0.0)
    g = _single_binary_graph([1.0], [1.0], bn)
    seq = np.asarray([0.15, 0.3, -0.1, 0.25]).reshape(4, 1, 1)
    want = [0.0, 0.475, 0.0, 0.0]
    assert np.allclose(_per_step(g, seq), want)
    folded = fold_reverb(g)
    act = folded.op("act")
    assert np.allclose(act.threshold, 0.0625) and np.allclose(act.bias, -0.175) and np.allclose(act.emit_scale, 4.0)
    assert np.allclose(_per_step(folded, seq), want)


# --------------------------------------------------------------------------- compile
def _compile(kind="conv", seed=0, **kw):
    m = NETS[kind](seed)
    x = _inputs(kind, 64, seed)
    opts = dict(target="loihi2", scheme="reverb", timesteps=4, calibration=x)
    opts.update(kw)
    return m, x, nd.compile(m, x[:2], **opts)


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_compile_gives_a_valid_spiking_graph_that_round_trips(kind, tmp_path):
    m, x, net = _compile(kind, payload_bits=12)
    g = net.graph
    assert g.scheme == "reverb" and isinstance(g.input, InputEncoder)
    assert isinstance(g.input.neuron, rv.ReverbEncoder) and g.input.neuron.timesteps == 4
    hidden, readout = g.layers[1:-1], g.layers[-1]
    assert len(hidden) == 2 and isinstance(readout.neuron, rv.ReverbReadout)
    for depth, layer in enumerate(g.neuron_layers(), start=1):
        assert isinstance(layer, Layer) and layer.neuron.start_step == depth
        w = syn.weighted_op(layer.branches[0].ops).weight
        assert np.issubdtype(np.asarray(w).dtype, np.integer)
        if layer.name in g.meta["binary_layers"]:
            assert np.all(np.abs(w) == 1) and layer.branches[0].weight_exp == 0
        else:
            assert np.max(np.abs(w)) <= 127
        assert np.all(np.abs(layer.bias_mant) <= 4095) and 0 <= layer.bias_exp <= 7
    assert len(g.meta["binary_layers"]) == 2
    for layer in hidden:
        n = layer.neuron
        assert n.payload_bits == 12 and n.dv in (3072, 2048)         # tau 0.25 / 0.5
        assert np.all(n.v_th_mant >= 0) and np.all(n.v_th_mant <= rv.STATE_MAX)
        assert np.all(n.out_mant >= 0) and np.asarray(n.out_mant).shape == (layer.shape[0],)
        assert g.meta["quantisation"][layer.name]["out_mant_min_bits"] >= 16
    net.save(tmp_path / "net")
    back = serialize.load(tmp_path / "net")
    assert [type(l.neuron) for l in back.layers] == [type(l.neuron) for l in g.layers]
    for a, b in zip(g.neuron_layers(), back.neuron_layers()):
        assert np.array_equal(a.bias_mant, b.bias_mant) and a.bias_exp == b.bias_exp
        for f in ("v_th_mant", "out_mant", "out_shift", "dv", "output_scale"):
            if hasattr(a.neuron, f):
                assert np.array_equal(np.asarray(getattr(a.neuron, f)), np.asarray(getattr(b.neuron, f)))
        for oa, ob in zip(a.branches[0].ops, b.branches[0].ops):
            assert type(oa) is type(ob)
            if isinstance(oa, syn.WEIGHTED):
                assert np.array_equal(oa.weight, ob.weight)


def test_threshold_is_the_ceiling_of_the_float_threshold_in_v_units():
    _, _, net = _compile("dense", 4, payload_bits=16)
    g = net.graph
    layer = g.layers[2]                                   # the binary hidden layer: in_unit = the source unit
    q = g.meta["quantisation"][layer.name]
    folded = fold_reverb(load_reverb_model(_dense_net(4), _inputs("dense", 2, 4)))
    act = [folded.op(n) for n in folded.topo_order() if isinstance(folded.op(n), rf.ReverbAct)][1]
    theta = np.asarray(act.threshold) / q["in_unit"]
    assert np.array_equal(layer.neuron.v_th_mant, np.ceil(theta - 1e-9 * np.maximum(1, theta)).astype(np.int64))
    # v >= v_th_mant  <=>  v * in_unit >= theta for every integer v near the threshold
    for v_th, th in zip(layer.neuron.v_th_mant, theta):
        assert v_th >= th - 1e-6 and v_th - 1 < th


@pytest.mark.slow
def test_fixed_point_agrees_with_the_float_snn_on_a_trained_model():
    from neurodeploy.train.data import digits
    from neurodeploy.train.fit import fit
    xtr, ytr, xte, yte = digits(0)[:4]
    torch.manual_seed(0)
    m = SpikingSequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), ReverBNeuron(), nn.AvgPool2d(2),
                          BinaryConv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), ReverBNeuron(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    fit(m, (xtr, ytr), epochs=3, timesteps=4, lr=5e-3, progress=False, measure_memory=False)
    net = nd.compile(m, xtr[:2], target="loihi2", scheme="reverb", timesteps=4, calibration=xtr)
    r = nd.verify(net, m, xte, yte)
    assert r["scheme"] == "reverb" and r["accuracy"]["float_snn"] > 0.5
    assert r["agreement"]["fixed_vs_float_snn"] >= 0.97
    assert abs(r["accuracy"]["fixed_point_snn"] - r["accuracy"]["float_snn"]) <= 0.03


def test_fixed_point_output_tracks_the_float_snn():
    m, x, net = _compile("conv", 7, payload_bits=16)
    float_out = predict(m, x, 4)
    fixed = nd.simulate(net, x)
    scale = np.abs(float_out).max()
    assert np.abs(fixed - float_out).max() <= 0.05 * scale
    assert np.mean(fixed.argmax(1) == float_out.argmax(1)) >= 0.9


@pytest.mark.parametrize("ceil", [False, True], ids=["padded", "ceil_mode"])
def test_padded_max_pool_of_payloads(ceil):
    """A 3x3/2 max pool with padding 1 (ceil_mode: a partial last row and column of windows over
    extra bottom/right padding) after a ReverB neuron: payloads are >= 0, so the zero-padded max
    of payloads is the max of the values; the folded graph equals the trained one and the
    fixed-point SNN tracks the float SNN as the unpadded nets do."""
    torch.manual_seed(3)
    m = _randomise(SpikingSequential(
        BinaryConv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), ReverBNeuron(0.25, 0.1), nn.AvgPool2d(2),
        BinaryConv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), ReverBNeuron(0.5, 0.1),
        nn.MaxPool2d(3, 2, padding=1, ceil_mode=ceil), nn.Flatten(), nn.Linear(8 * (9 if ceil else 4), 5)), 3)
    x = _inputs("conv", 64, 3)
    g = load_reverb_model(m, x[:2])
    folded = fold_reverb(g)
    trained = rf.run(g, x, 4)
    assert np.allclose(trained, predict(m, x, 4), rtol=1e-4, atol=1e-5 * np.abs(trained).max())
    assert np.allclose(rf.run(folded, x, 4), trained, rtol=1e-9, atol=1e-12 * np.abs(trained).max())
    net = nd.compile(m, x[:2], target="loihi2", scheme="reverb", timesteps=4, payload_bits=16, calibration=x)
    (mp,) = [op for l in net.graph.neuron_layers() for b in l.branches for op in b.ops if isinstance(op, syn.MaxPool)]
    assert tuple(mp.padding) == ((1, 2, 1, 2) if ceil else (1, 1, 1, 1))      # (top, bottom, left, right)
    fixed, float_out = nd.simulate(net, x), predict(m, x, 4)
    assert np.abs(fixed - float_out).max() <= 0.05 * np.abs(float_out).max()
    assert np.mean(fixed.argmax(1) == float_out.argmax(1)) >= 0.9


# --------------------------------------------------------------------------- memory report
def test_binary_memory_report_counts_bits_per_layer():
    _, _, net = _compile("dense", 0)
    rep = binary_weight_memory(net.graph)
    spec = tomllib.loads((ROOT / "targets" / "loihi2.toml").read_text())
    stored, wbits = spec["synapse_formats"]["binary_weight_bits"], spec["weights"]["mant_bits"]
    sizes = {"dense1": (12, 16, False), "dense2": (16, 20, True), "readout": (20, 5, True)}
    rows = {r["name"]: r for r in rep["layers"]}
    assert rows.keys() == sizes.keys()
    tot = {"1": 0, "s": 0, "8": 0}
    for name, (fin, fout, binary) in sizes.items():
        n = fin * fout
        r = rows[name]
        assert r["binary"] is binary and r["synapses"] == n and r["unique_weights"] == n
        b1, bs, b8 = (math.ceil(n / 8), math.ceil(n * stored / 8), math.ceil(n * wbits / 8)) if binary else \
            (math.ceil(n * wbits / 8),) * 3
        assert (r["bytes_1bit"], r["bytes_stored"], r["bytes_8bit"]) == (b1, bs, b8)
        tot["1"] += b1
        tot["s"] += bs
        tot["8"] += b8
    assert rep["ratio_8bit_over_1bit"] == pytest.approx(tot["8"] / tot["1"])
    assert rep["ratio_8bit_over_stored"] == pytest.approx(tot["8"] / tot["s"])
    assert "not public" in rep["statement"]


# --------------------------------------------------------------------------- errors
class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.n1 = BinaryLinear(8, 8), ReverBNeuron()
        self.b, self.n2 = BinaryLinear(8, 8), ReverBNeuron()
        self.out = nn.Linear(8, 3)

    def forward(self, x):                 # one step (the front end swaps the neurons for per-step leaves)
        h = self.n1(self.a(x))
        return self.out(self.n2(self.b(h)) + h)


def test_residual_network_is_refused():
    x = _inputs("dense", 4, 0)[:, :8]
    with pytest.raises(UnsupportedError, match="sequential"):
        nd.compile(_Residual().eval(), x[:2], scheme="reverb", calibration=x)


def test_unsupported_module_is_refused_with_its_name():
    m = SpikingSequential(nn.Linear(12, 8), ReverBNeuron(), nn.Linear(8, 8), LIF(), nn.Linear(8, 3)).eval()
    x = _inputs("dense", 4, 0)
    with pytest.raises(UnsupportedError, match="LIF"):
        nd.compile(m, x[:2], scheme="reverb", calibration=x)
    m = SpikingSequential(nn.Linear(12, 8), ReverBNeuron(), nn.GELU(), nn.Linear(8, 3)).eval()
    with pytest.raises(UnsupportedError, match="gelu"):
        nd.compile(m, x[:2], scheme="reverb", calibration=x)


@pytest.mark.parametrize("bits", [0, 25])
def test_payload_bits_out_of_range(bits):
    with pytest.raises(NeurodeployError, match="payload_bits"):
        _compile("dense", 0, payload_bits=bits)


def test_negative_threshold_is_refused():
    m = _dense_net(0)
    m[2].v_th = -0.1                      # ReverBNeuron refuses it at construction; a loaded model may not
    with pytest.raises(UnsupportedError, match="v_th"):
        nd.compile(m, _inputs("dense", 2, 0), scheme="reverb", calibration=_inputs("dense", 8, 0))


def test_negative_inputs_and_missing_calibration_are_refused():
    m = _dense_net(0)
    x = _inputs("dense", 8, 0)
    with pytest.raises(UnsupportedError, match=">= 0"):
        nd.compile(m, x[:2], scheme="reverb", calibration=x - 0.5)
    with pytest.raises(NeurodeployError, match="calibration"):
        nd.compile(m, x[:2], scheme="reverb")


# --------------------------------------------------------------------------- α per feature after a Flatten
def _flatten_net(seed: int, pool: nn.Module | None, feat: int, v_th: float = 0.05) -> SpikingSequential:
    """BinaryConv - BN - ReverB - [pool] - Flatten - BinaryLinear (α per flattened feature) - BN - ReverB
    - BinaryLinear: the read-out α of the paper (1×F_in), which the producer can only carry per neuron."""
    torch.manual_seed(seed)
    layers = [BinaryConv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), ReverBNeuron(0.25, v_th)]
    layers += ([pool] if pool is not None else []) + [nn.Flatten(), BinaryLinear(feat, 6), nn.BatchNorm1d(6),
                                                      ReverBNeuron(0.5, v_th), BinaryLinear(6, 3)]
    return _randomise(SpikingSequential(*layers), seed)


FLATTEN_CASES = {"none": (None, 256), "avg2": (nn.AvgPool2d(2), 64), "max2": (nn.MaxPool2d(2), 64),
                 "max3_cropped": (nn.MaxPool2d(3), 16)}     # 8x8 -> 2x2 windows leave rows/cols 6, 7 unread


@pytest.mark.parametrize("case,seed", [("none", 0), ("avg2", 1), ("max2", 2), ("max3_cropped", 3)])
def test_per_feature_alpha_after_flatten_folds_into_per_neuron_emission(case, seed):
    pool, feat = FLATTEN_CASES[case]
    m = _flatten_net(seed, pool, feat)
    alpha = m[5 if pool is not None else 4].alpha.detach().numpy().reshape(-1)
    assert np.any(alpha < 0) and np.ptp(np.abs(alpha).reshape(4, -1), axis=1).min() > 0   # varies in every channel
    x = _inputs("conv", 32, seed)
    g = load_reverb_model(m, x[:2])
    folded = fold_reverb(g)
    trained = rf.run(g, x, 4)
    assert np.allclose(trained, predict(m, x, 4), rtol=1e-4, atol=1e-5 * np.abs(trained).max())
    assert np.allclose(rf.run(folded, x, 4), trained, rtol=1e-9, atol=1e-12 * np.abs(trained).max())
    act = [folded.op(n) for n in folded.topo_order() if isinstance(folded.op(n), rf.ReverbAct)][0]
    kappa = np.asarray(act.emit_scale)
    assert kappa.shape == (4, 8, 8)                           # per neuron: |s_c|·|α_f| of the feature it feeds
    s = np.abs(m[1].weight.detach().numpy().astype(np.float64)) / np.sqrt(m[1].running_var.numpy() + m[1].eps)
    pooled = np.abs(alpha).reshape(4, *((8, 8) if pool is None else (8 // pool.kernel_size,) * 2))
    k = 1 if pool is None else pool.kernel_size
    covered = (8 // k) * k
    want = s[:, None, None] * np.repeat(np.repeat(pooled, k, 1), k, 2)
    np.testing.assert_allclose(kappa[:, :covered, :covered], want, rtol=1e-6)
    assert np.all(kappa[:, covered:, :] == 0) and np.all(kappa[:, :, covered:] == 0)   # unread neurons send nothing
    for n in folded.topo_order():
        if isinstance(folded.op(n), rf.BINARY):
            assert np.all(np.abs(folded.op(n).weight) == 1.0) and np.all(folded.op(n).alpha == 1.0)


def test_per_feature_alpha_compiles_to_per_neuron_out_mant(tmp_path):
    m = _flatten_net(4, nn.AvgPool2d(2), 64)
    x = _inputs("conv", 64, 4)
    net = nd.compile(m, x[:2], target="loihi2", scheme="reverb", timesteps=4, payload_bits=16, calibration=x)
    g = net.graph
    conv1, dense1 = g.layers[1], g.layers[2]
    assert np.asarray(conv1.neuron.out_mant).shape == tuple(conv1.shape)    # per neuron
    assert np.asarray(conv1.neuron.v_th_mant).shape == (4,)                  # BN is per channel: stays (C,)
    assert np.asarray(dense1.neuron.out_mant).shape == (6,)
    q = g.meta["quantisation"]["conv1"]
    # one out_shift per layer, the smallest non-zero multiplier with >= 16 bits
    nz = np.asarray(conv1.neuron.out_mant)[np.asarray(conv1.neuron.out_mant) > 0]
    assert q["out_mant_min_bits"] == int(nz.min()).bit_length() >= 16
    assert int(nz.max()).bit_length() <= 24 and int(nz.min()) < 2 ** 17   # the shift is no larger than needed
    float_out = predict(m, x, 4)
    fixed = nd.simulate(net, x)
    assert np.abs(fixed - float_out).max() <= 0.05 * np.abs(float_out).max()
    assert np.mean(fixed.argmax(1) == float_out.argmax(1)) >= 0.9
    # the per-neuron field survives the file format
    net.save(tmp_path / "net")
    back = serialize.load(tmp_path / "net")
    assert np.array_equal(back.layers[1].neuron.out_mant, conv1.neuron.out_mant)
    np.testing.assert_array_equal(nd.simulate(back, x), fixed)


def test_overlapping_pool_windows_with_different_alpha_are_refused():
    torch.manual_seed(0)
    m = _flatten_net(5, nn.AvgPool2d(3, stride=1), 4 * 6 * 6)
    x = _inputs("conv", 4, 0)
    with pytest.raises(UnsupportedError, match="overlapping"):
        nd.compile(m, x[:2], scheme="reverb", calibration=x)
    # with α uniform per channel the overlap is harmless: it folds into per-channel scales
    with torch.no_grad():
        a = m[5].alpha.view(4, 36)
        a.copy_(a[:, :1].expand(4, 36))
    net = nd.compile(m, x[:2], scheme="reverb", calibration=x)
    assert np.asarray(net.graph.layers[1].neuron.out_mant).shape == (4,)


def test_alpha_varying_within_an_input_channel_is_refused():
    torch.manual_seed(0)
    m = SpikingSequential(nn.Flatten(), BinaryLinear(128, 8), ReverBNeuron(), nn.Linear(8, 3)).eval()
    x = _inputs("conv", 4, 0)
    with pytest.raises(UnsupportedError, match="network input"):
        nd.compile(m, x[:2], scheme="reverb", calibration=x)
