"""The `cuba` scheme: LIF SNN (neurodeploy.nn.LIF) -> Loihi 2 stock CUBA LIF, bit-exact with Lava."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.errors import NeurodeployError
from neurodeploy.schemes.cuba.front import LIFAct, load_lif_model
from neurodeploy.schemes.cuba import neurons as cb
from neurodeploy.ir import synapses as syn
from neurodeploy.nn.lif import LIF, SpikingSequential
from neurodeploy.schemes.base import CompileOptions
from neurodeploy.reports.verify import compare_accuracy
from neurodeploy.schemes.cuba import Cuba, compile_lif
from neurodeploy.schemes.cuba import kernel as sim_cuba
from neurodeploy.sim import engine
from neurodeploy.target import load_target
from neurodeploy.train.data import digits
from conftest import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "models"))


@pytest.fixture(scope="module")
def digits_lif():
    from train_digits_lif import build_model
    torch.manual_seed(0)
    m = build_model()
    m.load_state_dict(torch.load(ROOT / "models" / "digits_lif.pt"))
    return m.eval()


@pytest.fixture(scope="module")
def data():
    return digits(0)


@pytest.fixture(scope="module")
def digits_graph(digits_lif, data):
    xtr = data[0]
    return compile_lif(digits_lif, xtr[:8], timesteps=4, calibration=xtr, input_bits=4)


def _random_net(kind: str, seed: int) -> SpikingSequential:
    torch.manual_seed(seed)
    if kind == "dense":
        m = SpikingSequential(nn.Linear(12, 20), nn.BatchNorm1d(20), LIF(0.5, 1.0, "zero", strict=True),
                              nn.Linear(20, 16, bias=False), LIF(0.9, 0.7, "zero", strict=True),
                              nn.Linear(16, 5))
    else:
        m = SpikingSequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), LIF(0.2, 1.0, "zero", strict=True),
                              nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 8), LIF(0.75, 0.5, "zero", strict=True),
                              nn.Linear(8, 5))
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Linear, nn.Conv2d)):
                mod.weight.mul_(3.0)
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.5)
    return m.eval()


def _random_input(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, 12) if kind == "dense" else (n, 2, 8, 8)
    return rng.uniform(0, 1, shape).astype(np.float32)


# --------------------------------------------------------------------------- front end
def test_front_end_marks_every_lif(digits_lif):
    g = load_lif_model(digits_lif, torch.zeros(2, 1, 8, 8))
    lifs = [g.op(n) for n in g.topo_order() if isinstance(g.op(n), LIFAct)]
    assert len(lifs) == 2
    assert all(l.decay == 0.2 and l.v_th == 1.0 and l.reset == "zero" and l.strict for l in lifs)
    assert all(float(l.in_scale) == 1.0 and l.levels == 1 for l in lifs)


def test_front_end_keeps_the_model_intact(digits_lif):
    before = {k: v.clone() for k, v in digits_lif.state_dict().items()}
    load_lif_model(digits_lif, torch.zeros(1, 1, 8, 8))
    assert sum(isinstance(m, LIF) for m in digits_lif.modules()) == 2
    for k, v in digits_lif.state_dict().items():
        assert torch.equal(v, before[k])


# --------------------------------------------------------------------------- the neuron kernel
def _lava_numpy_step(u, v, a_in, bias, du, dv, vth):
    """Lava's PyLifModelBitAcc.subthr_dynamics + spiking_activation + reset, transcribed with its dtypes."""
    u, v = u.astype(np.int32), v.astype(np.int32)
    dc = np.int64(u) * (4096 - (du + 1))
    dc = np.int32(np.sign(dc) * np.right_shift(np.abs(dc), 12))
    dc = dc + np.left_shift(a_in.astype(np.int32), 6)
    w = np.where(dc > 2 ** 23, dc - 2 ** 24, dc)
    w = np.where(w <= -2 ** 23, dc + 2 ** 24, w)
    u = w
    dvv = np.int64(v) * (4096 - dv)
    dvv = np.int32(np.sign(dvv) * np.right_shift(np.abs(dvv), 12))
    v = np.clip(dvv + u + bias, -(2 ** 23) + 1, 2 ** 23 - 1)
    s = v > (vth << 6)
    v = np.where(s, 0, v)
    return u, v, s


@pytest.mark.parametrize("du,dv", [(4095, 3277), (0, 0), (1024, 128), (4095, 0), (100, 4095)])
def test_lif_step_matches_lava_arithmetic(du, dv):
    rng = np.random.default_rng(du + dv)
    n = 4000
    u = rng.integers(-2 ** 23 + 1, 2 ** 23, n)
    v = rng.integers(-2 ** 23 + 1, 2 ** 23, n)
    a_in = rng.integers(-2 ** 17 - 5000, 2 ** 17 + 5000, n)      # some wrap u
    bias = rng.integers(-4096, 4096, n) << 6
    neuron = cb.CubaLIF(du=du, dv=dv, v_th_mant=int(rng.integers(1, cb.VTH_MAX)))
    tu, tv, ts = sim_cuba.lif_step(torch.as_tensor(u), torch.as_tensor(v), torch.as_tensor(a_in),
                                   torch.as_tensor(bias), neuron)
    eu, ev, es = _lava_numpy_step(u, v, a_in, bias, du, dv, neuron.v_th_mant)
    np.testing.assert_array_equal(tu.numpy(), eu)
    np.testing.assert_array_equal(tv.numpy(), ev)
    np.testing.assert_array_equal(ts.numpy(), es)


# --------------------------------------------------------------------------- compile
def test_compiled_formats(digits_graph):
    g = digits_graph
    assert g.scheme == "cuba"
    enc = g.input
    assert isinstance(enc.neuron, cb.CubaEncoder)
    assert enc.neuron.timesteps == 4 and enc.neuron.n_steps == 4 + g.meta["depth"] == 7
    hidden = [l for l in g.neuron_layers() if not l.is_readout]
    assert [l.name for l in hidden] == ["conv1", "conv2"]
    for l in g.neuron_layers():
        n = l.neuron
        assert l.bias_exp == cb.NETX_BIAS_EXP
        assert np.all(np.abs(l.bias_mant) <= cb.BIAS_MANT_MAX)
        assert 1 <= n.v_th_mant <= cb.VTH_MAX
        assert n.du == 4095
        for b in l.branches:
            w = syn.weighted_op(b.ops).weight
            assert w.dtype == np.int64 and np.abs(w).max() <= 127 and 0 <= b.weight_exp <= 7
        assert g.meta["quantisation"][l.name]["a_in_bound"] <= cb.A_IN_MAX
    assert all(l.neuron.dv == 3277 for l in hidden)              # round(4096 * 0.8)
    ro = g.output.neuron
    assert isinstance(ro, cb.CubaReadout) and ro.dv == 0 and ro.v_th_mant == cb.VTH_MAX
    assert ro.window_start == g.meta["depth"] == 3


def test_readout_never_fires_and_codes_count_spikes(digits_graph, data):
    x = data[2][:32]
    tr = sim_cuba.trace(digits_graph, x)
    assert np.abs(tr.readout_v).max() <= cb.VTH_MAX << cb.VTH_SHIFT
    prep = engine.prepare(digits_graph)
    res = sim_cuba.run_batch(prep, x)
    for name, s in tr.spikes.items():
        np.testing.assert_array_equal(res.codes[name].numpy(), s.sum(1))
    v = tr.readout_v
    expect = (v[:, -1] - v[:, digits_graph.output.neuron.window_start - 1]) * digits_graph.output.neuron.output_scale
    np.testing.assert_allclose(res.output.numpy(), expect, rtol=1e-6)
    # the first layer sees nothing but its bias in step 1 (the synapse delays by one step)
    first = tr.spikes["conv1"][:, 0]
    bias_only = (np.asarray(digits_graph.layer("conv1").bias) > digits_graph.layer("conv1").neuron.v_th_mant << 6)
    np.testing.assert_array_equal(first, np.broadcast_to(bias_only.reshape(1, -1, 1, 1), first.shape))


def test_needs_timesteps(digits_lif, data):
    g = load_lif_model(digits_lif, data[0][:2])
    with pytest.raises(NeurodeployError, match="time steps"):
        Cuba().compile(g, load_target("loihi2"), CompileOptions(calibration=data[0]))


def test_float_vs_fixed_point_accuracy(digits_lif, digits_graph, data):
    _, _, xte, yte = data
    r = compare_accuracy(digits_lif, digits_graph, xte[:300], yte[:300])
    assert r["float_accuracy"] >= 0.97
    assert r["fixed_accuracy"] >= r["float_accuracy"] - 0.03
    assert r["agreement"] >= 0.95


def test_random_nets_compile_and_spike():
    for kind in ("dense", "conv"):
        m = _random_net(kind, 1)
        x = _random_input(kind, 16, 2)
        g = compile_lif(m, x, timesteps=5, calibration=x, input_bits=6)
        tr = sim_cuba.trace(g, x)
        for name, s in tr.spikes.items():
            assert 0 < s.mean() < 1, (kind, name)        # the test nets do spike, and not always


def test_engine_dispatch(digits_graph, data):
    x = data[2][:20]
    out, spikes = engine.simulate(digits_graph, x, batch_size=7)
    np.testing.assert_array_equal(out, sim_cuba.simulate(digits_graph, x))
    assert spikes["conv1"] > 0


def test_serialize_round_trip(digits_graph, data, tmp_path):
    from neurodeploy.ir import serialize
    assert "CubaLIF" in serialize.known_types()
    (tmp_path / "net").mkdir()
    serialize.save(digits_graph, tmp_path / "net")
    back = serialize.load(tmp_path / "net")
    assert back.output.neuron == digits_graph.output.neuron
    x = data[2][:10]
    np.testing.assert_array_equal(sim_cuba.simulate(back, x), sim_cuba.simulate(digits_graph, x))


# --------------------------------------------------------------------------- bit-exact against stock Lava
def _assert_bit_exact(graph, x, netx_path=None):
    ours = sim_cuba.trace(graph, x)
    from neurodeploy.schemes.cuba import lava as cuba_lava
    lava = cuba_lava.run_lava(graph, x) if netx_path is None else cuba_lava.run_netx(graph, x, netx_path)
    for name, s in ours.spikes.items():
        np.testing.assert_array_equal(lava.spikes[name], s, err_msg=f"spikes of {name}")
    np.testing.assert_array_equal(lava.readout_v, ours.readout_v)
    np.testing.assert_array_equal(lava.output, sim_cuba.simulate(graph, x))
    return ours


@pytest.mark.lava
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_random_net_bit_exact_with_lava(kind, lava):
    m = _random_net(kind, 3)
    x = _random_input(kind, 3, 4)
    g = compile_lif(m, x, timesteps=5, calibration=_random_input(kind, 64, 5), input_bits=6)
    ours = _assert_bit_exact(g, x)
    assert all(s.any() for s in ours.spikes.values())


@pytest.mark.lava
def test_digits_lif_bit_exact_with_lava(digits_graph, data, lava):
    _assert_bit_exact(digits_graph, data[2][:2])


@pytest.mark.lava
def test_digits_lif_netx_hdf5_bit_exact(digits_graph, data, tmp_path, netx):
    """The NetX export loads in lava.lib.dl.netx and runs bit-exactly like our simulator."""
    _assert_bit_exact(digits_graph, data[2][2:4], tmp_path / "digits_lif.net")


@pytest.mark.lava
def test_random_dense_net_netx_bit_exact(tmp_path, netx):
    m = _random_net("dense", 7)
    x = _random_input("dense", 2, 8)
    g = compile_lif(m, x, timesteps=5, calibration=_random_input("dense", 64, 9), input_bits=6)
    _assert_bit_exact(g, x, tmp_path / "dense.net")


def test_cli_export_netx_of_a_cuba_network(digits_graph, tmp_path):
    """`neurodeploy export DIR --format netx` writes the HDF5 file atomically; other schemes are refused."""
    import h5py

    from neurodeploy.cli import main
    from neurodeploy.compiler import compile_model, save_artifact
    save_artifact(digits_graph, tmp_path / "cuba")
    assert main(["export", str(tmp_path / "cuba"), "--format", "netx", "-o", str(tmp_path / "net.h5")]) == 0
    with h5py.File(tmp_path / "net.h5") as h:
        kinds = [h["layer"][k]["type"][0].decode() for k in sorted(h["layer"], key=int)]
    assert kinds[0] == "input" and kinds[-1] == "dense"
    save_artifact(compile_model(ROOT / "models" / "digits_qcfs.onnx"), tmp_path / "bp")
    assert main(["export", str(tmp_path / "bp"), "--format", "netx", "-o", str(tmp_path / "bp.h5")]) == 2
    assert not (tmp_path / "bp.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bp", "cuba", "net.h5"]


def test_api_verify_of_a_cuba_network_reports_float_and_fixed_point_snn(digits_lif, digits_graph, data):
    from neurodeploy import api
    x, y = data[2][:100], data[3][:100]
    r = api.verify(api.CompiledNet(digits_graph), digits_lif, x, y)
    assert r["scheme"] == "cuba"
    assert r["accuracy"]["float_snn"] > 0.9 and r["accuracy"]["fixed_point_snn"] > 0.9
    assert r["agreement"]["fixed_vs_float_snn"] > 0.9
