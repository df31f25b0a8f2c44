"""The `sdnn` scheme: sigma-delta neurons with graded spikes, and its NetX HDF5 export.

Fast tests: our simulator against the integer ReLU reference once settled (digits QCFS model,
random conv / dense / ReLU nets from netgen), the NetX file's structure.  Tests marked
`lava` load the exported file in lava-dl's NetX and run it in Lava (Loihi2SimCfg fixed_pt);
they skip when lava-nc or lava-dl's netx cannot be imported.
"""
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netgen  # noqa: E402

from neurodeploy.errors import NeurodeployError, UnsupportedError  # noqa: E402
from neurodeploy.frontends.onnx import load_onnx  # noqa: E402
from neurodeploy.schemes.sdnn import neurons as sd  # noqa: E402
from neurodeploy.schemes.base import CompileOptions  # noqa: E402
from neurodeploy.schemes.sdnn import Sdnn  # noqa: E402
from neurodeploy.schemes.sdnn.compile import exact_layers  # noqa: E402
from neurodeploy.sim import engine  # noqa: E402
from neurodeploy.schemes.sdnn import kernel as ssd  # noqa: E402
from neurodeploy.sim.engine import input_codes  # noqa: E402
from neurodeploy.sim.reference import reference  # noqa: E402
from neurodeploy.target import load_target  # noqa: E402
from conftest import MODELS  # noqa: E402



def _compile(model, cal, vth=0, tmp_path=None, target="loihi2"):
    if isinstance(model, onnx.ModelProto):
        p = tmp_path / "m.onnx"
        onnx.save(model, p)
        model = p
    return Sdnn(vth).compile(load_onnx(model), load_target(target), CompileOptions(calibration=cal))


@pytest.fixture(scope="module")
def digits():
    cal = np.load(MODELS / "digits_calib_x.npy")
    return _compile(MODELS / "digits_qcfs.onnx", cal)


def _mismatches(net, x):
    r = ssd.run_sdnn(engine.prepare(net), x)
    codes, u = reference(net, x)
    mm = {k: int(np.count_nonzero(r.codes[k].numpy() != codes[k])) for k in r.codes}
    mm[net.output.name] = int(np.count_nonzero(r.output_state.numpy() != u))
    return r, mm, codes


def _relu_net(seed=5):
    b = netgen.NetBuilder((2, 8, 8), seed)
    x = b.node("Relu", [b.conv("input", 2, 6, scale=2.0)])
    x = b.avgpool(x)
    x = b.node("Relu", [b.conv(x, 6, 8, scale=2.0)])
    x = b.node("Relu", [b.conv(x, 8, 8, scale=2.0)])
    return b.model(b.gemm(b.flatten(b.avgpool(x)), 32, 4), 4)


def _set_bias(b: "netgen.NetBuilder", values) -> None:
    """Replace the bias of the node `b` added last (a Conv or Gemm)."""
    name = b.nodes[-1].input[2]
    i = next(i for i, t in enumerate(b.inits) if t.name == name)
    b.inits[i] = onnx.numpy_helper.from_array(np.asarray(values, np.float32), name)


def _big_bias_net(seed=11):
    """QCFS net (no calibration needed) whose biases are far larger than its weights allow at the
    finest scale: conv1's first two channels' biases are -300 and -200 with range lambda = 1 (dead
    channels, as BatchNorm folded into a stem gives: > 128 lambda overflows the 16-bit SigmaDelta
    bias at s = lambda * 8 / code_max, and the 24-bit act register before that), and the readout's
    biases are ~1e6x its weights times its source's value step (> 2^23 / 254 overflowed the 24-bit
    field at its finest unit w_abs / 254 without --calibration: the CIFAR ResNet-18's 8,808,039)."""
    b = netgen.NetBuilder((2, 8, 8), seed)
    x = b.qcfs("input", 15, 1.0)
    conv1 = b.conv(x, 2, 4, scale=2.0)
    _set_bias(b, [-300.0, -200.0, 0.05, -0.02])
    x = b.qcfs(conv1, 15, 1.0)
    x = b.qcfs(b.conv(b.avgpool(x), 4, 6, scale=2.0), 15, 1.0)
    out = b.gemm(b.flatten(b.avgpool(x)), 6 * 2 * 2, 3)
    _set_bias(b, [40.0, -30.0, 0.5])
    return b.model(out, 3)


# --------------------------------------------------------------------------- simulator vs reference
def test_digits_settles_to_integer_relu_reference(digits):
    x, y = np.load(MODELS / "digits_test_x.npy"), np.load(MODELS / "digits_test_y.npy")
    r, mm, _ = _mismatches(digits, x)
    assert all(v == 0 for v in mm.values()), mm
    assert exact_layers(digits) == {l.name for l in digits.layers}
    assert Sdnn().guarantee_holds(digits, mm)
    acc = float((r.output.numpy().argmax(1) == y).mean())
    assert acc >= 0.97, acc                          # float model: 0.987
    # settled after depth + 1 steps: running longer changes nothing
    longer = ssd.run_sdnn(engine.prepare(digits), x[:50], n_steps=ssd.settle_steps(digits) + 5)
    assert torch.equal(longer.output_state, r.output_state[:50])
    assert ssd.settle_steps(digits) == 4
    assert digits.meta["latency_steps"] == 4


def test_digits_units_and_formats(digits):
    assert isinstance(digits.input.neuron, sd.DeltaEncoder)
    assert isinstance(digits.output.neuron, sd.Sigma) and digits.output.is_readout
    for layer in digits.neuron_layers():
        for b in layer.branches:
            for op in b.ops:
                if hasattr(op, "weight"):
                    w = np.asarray(op.weight)
                    assert w.dtype == np.int64 and np.all(w % 2 == 0) and np.abs(w).max() <= 254
        if not layer.is_readout:
            assert layer.neuron.v_th_mant == 64 and layer.neuron.vth == 0
            assert np.abs(layer.bias).max() < 1 << 15


@pytest.mark.parametrize("seed", [0, 1])
def test_random_conv_net_exact(tmp_path, seed):
    m = netgen.conv_net(seed)
    cal, x = netgen.random_inputs((2, 8, 8), 64, seed=3), netgen.random_inputs((2, 8, 8), 64, seed=4)
    net = _compile(m, cal, tmp_path=tmp_path)
    _, mm, codes = _mismatches(net, x)
    assert all(v == 0 for v in mm.values()), mm
    assert all(codes[l.name].max() > 1000 for l in net.neuron_layers() if not l.is_readout)


@pytest.mark.parametrize("target", ["loihi2", "cpu"])
def test_big_biases_choose_coarser_scales(tmp_path, target):
    """Without calibration, a bias too large for the layer's finest scale coarsens the scale
    (never an out-of-range field for ir.validate, which once reported "a neurodeploy bug" on
    loihi2, nor a refusal of conv1's 16-bit bias on cpu); on loihi2 the network stays exact:
    every layer equals the integer reference (the cpu target's 2^41 codes exceed the
    simulator's exact float64 range on conv2, a refusal of its own)."""
    net = _compile(_big_bias_net(), None, tmp_path=tmp_path, target=target)
    conv1, readout = net.neuron_layers()[0], net.output
    if target == "loihi2":
        # conv1's range is its |bias| 300 (> lambda = 1) with 8x headroom: 300 / 64 / (300 * 8 / 2^17)
        assert np.abs(conv1.bias).max() == 256
    else:
        # 48-bit states: the 16-bit bias is the bound, used to its edge
        assert np.abs(conv1.bias).max() == sd.SIGMA_DELTA_BIAS_MAX
    # the readout's unit is the coarsest its bias needs, no coarser
    assert np.abs(readout.bias).max() == load_target(target).state_max
    if target == "cpu":
        return
    r, mm, codes = _mismatches(net, netgen.random_inputs((2, 8, 8), 64, seed=4))
    assert exact_layers(net) >= set(mm) and all(v == 0 for v in mm.values()), mm
    assert codes[conv1.name][:, :2].max() == 0 and codes[conv1.name][:, 2:].max() > 0   # dead, alive
    # the coarser readout unit keeps its weights: the outputs still depend on the input
    assert np.ptp(r.output_state.numpy().reshape(64, -1), axis=0).min() > 0


def test_deep_nets_within_one_lsb_where_not_guaranteed(tmp_path):
    """Three hidden layers with positive biases: layers 1-2 exact, layer 3 may lose 1 LSB to
    a transient spike's s >> 6 (and the readout inherits it).  Both seeds here do lose LSBs (measured:
    dense 419 + 320 readout, conv 2,753 + 255 of 64 samples), so the verdict is NOT EXACT and the
    guarantee does not hold (issue 18: a verdict follows from the counts), naming those layers as
    beyond the proven ones."""
    for model, shape in ((netgen.dense_net(0), (12,)), (_relu_net(), (2, 8, 8))):
        cal, x = netgen.random_inputs(shape, 64, seed=3), netgen.random_inputs(shape, 64, seed=4)
        net = _compile(model, cal, tmp_path=tmp_path)
        r, mm, codes = _mismatches(net, x)
        exact = exact_layers(net)
        hidden = [l.name for l in net.neuron_layers() if not l.is_readout]
        assert set(hidden[:2]) <= exact and hidden[2] not in exact
        assert all(mm[n] == 0 for n in exact), mm
        assert np.abs(r.codes[hidden[2]].numpy() - codes[hidden[2]]).max() <= 1
        assert mm[hidden[2]] > 0 and mm[net.output.name] > 0, mm
        v = Sdnn().verdict(net, mm, {k: 64 for k in mm})
        assert v.word == "NOT EXACT" and not v.holds and not Sdnn().guarantee_holds(net, mm)
        assert "beyond those proven exact" in v.reason and f"{hidden[2]} {mm[hidden[2]]:,}/" in v.reason


def test_vth_dead_zone_sends_fewer_spikes(digits):
    x = np.load(MODELS / "digits_test_x.npy")[:64]
    cal = np.load(MODELS / "digits_calib_x.npy")
    net1 = _compile(MODELS / "digits_qcfs.onnx", cal, vth=1)
    r0 = ssd.run_sdnn(engine.prepare(digits), x)
    r1 = ssd.run_sdnn(engine.prepare(net1), x)
    assert sum(r1.spikes.values()) < sum(r0.spikes.values())
    assert exact_layers(net1) == {net1.input.name}


def test_maxpool_refused(tmp_path):
    m = netgen.conv_net(0, pool="max")
    with pytest.raises(UnsupportedError):
        _compile(m, netgen.random_inputs((2, 8, 8), 16), tmp_path=tmp_path)


def test_serialization_roundtrip(digits, tmp_path):
    from neurodeploy.ir import serialize
    for cls in (sd.DeltaEncoder, sd.SigmaDelta, sd.Sigma):      # known through the registered sdnn scheme
        assert serialize.known_types()[cls.__name__] is cls
    (tmp_path / "net").mkdir()
    serialize.save(digits, tmp_path / "net")
    back = serialize.load(tmp_path / "net")
    x = np.load(MODELS / "digits_test_x.npy")[:20]
    a = ssd.run_sdnn(engine.prepare(digits), x)
    b = ssd.run_sdnn(engine.prepare(back), x)
    assert torch.equal(a.output_state, b.output_state)


# --------------------------------------------------------------------------- NetX file
def test_netx_file_structure(digits, tmp_path):
    h5py = pytest.importorskip("h5py")
    from neurodeploy.schemes.sdnn.export import export_netx
    n = export_netx(digits, tmp_path / "d.net")
    with h5py.File(tmp_path / "d.net", "r") as h:
        types = [h[f"layer/{i}/type"][0].decode() for i in range(n)]
        # input, conv1, conv2 (pool folded: stride 2), flatten, readout dense (pool folded)
        assert types == ["input", "conv", "conv", "flatten", "dense"]
        assert list(h["layer/2/stride"][()]) == [2, 2] and h["layer/2/weight"].shape[2:] == (6, 6)
        assert "sigma_output" in h[f"layer/{n - 1}/neuron"] and "bias" not in h[f"layer/{n - 1}"]
        w = h[f"layer/{n - 1}/weight"][()]
        assert w.dtype.kind == "i" and np.all(w % 2 == 0) and w.min() >= -256 and w.max() <= 254
        assert h.attrs["neurodeploy_input_shift"] == digits.neuron_layers()[0].branches[0].weight_exp
    assert not list(tmp_path.glob("*.tmp"))


def test_netx_cli_entry(digits, tmp_path):
    pytest.importorskip("h5py")
    from neurodeploy.schemes.sdnn.export import cli_export
    line = cli_export(digits, tmp_path / "d.net", None)
    assert "NetX" in line and (tmp_path / "d.net").is_file()


def test_netx_refuses_residual_and_other_schemes(tmp_path):
    from neurodeploy.schemes.sdnn.export import export_netx
    net = _compile(netgen.residual_net(0), netgen.random_inputs((3, 8, 8), 32), tmp_path=tmp_path)
    with pytest.raises(NeurodeployError, match="residual"):
        export_netx(net, tmp_path / "r.net")
    assert not (tmp_path / "r.net").exists()
    net.scheme = "rate"
    with pytest.raises(NeurodeployError, match="sdnn"):
        export_netx(net, tmp_path / "r.net")


# --------------------------------------------------------------------------- NetX in Lava
@pytest.fixture(scope="module")
def nx(netx):
    """Our NetX export module, with lava-dl's NetX importable (conftest's `netx`)."""
    from neurodeploy.schemes.sdnn import export as netx_export
    return netx_export


def _check_bit_exact(nx, net, x, path):
    """The exported file run the standard way (a source on net.inp, the output from net.out,
    netx_host's encode/decode) equals our simulator, block by block."""
    from neurodeploy.backends import netx_host
    from neurodeploy.backends.netx_run import run_netx
    nx.export_netx(net, path)
    st: dict = {}
    r = ssd.run_sdnn(engine.prepare(net), x, states=st)
    n_steps = ssd.settle_steps(net) + nx.extra_delay(net)       # exactly when both have settled
    assert netx_host.read(path)["n_steps"] == n_steps
    blocks = nx.block_index(net)
    out = run_netx(net, path, x, n_steps, final_vars=("act",))
    sigma = out.sent[-1][:, -1].reshape(len(x), -1)              # net.out at the last step: the readout's sigma
    assert np.array_equal(sigma + net.output.bias.reshape(-1), r.output_state.numpy().reshape(len(x), -1))
    np.testing.assert_array_equal(netx_host.decode(path, sigma), r.output.numpy())
    for layer in net.neuron_layers():
        if not layer.is_readout:
            assert np.array_equal(out.final[blocks[layer.name]]["act"], st[layer.name]["act"].numpy()), layer.name
    # NetX's optimize_weight_bits round-trips our dense weights exactly
    dense_ours = [op.weight for ops in nx.netx_ops(net).values() for op in ops if type(op).__name__ == "Dense"]
    assert len(dense_ours) == len(out.dense)
    for (w, e), ours in zip(out.dense, dense_ours):
        assert e <= 0 and np.array_equal(w, np.asarray(ours) << -e), (e, np.abs(w).max())


@pytest.mark.lava
def test_netx_digits_bit_exact(nx, digits, tmp_path):
    x = np.load(MODELS / "digits_test_x.npy")[:2]
    _check_bit_exact(nx, digits, x, tmp_path / "d.net")


@pytest.mark.lava
def test_netx_random_dense_net_bit_exact(nx, tmp_path):
    """Three dense hidden layers (a transient-rounding case): still bit-exact with Lava."""
    net = _compile(netgen.dense_net(0), netgen.random_inputs((12,), 64, seed=3), tmp_path=tmp_path)
    _check_bit_exact(nx, net, netgen.random_inputs((12,), 2, seed=4), tmp_path / "n.net")


@pytest.mark.lava
def test_netx_relu_conv_net_bit_exact(nx, tmp_path):
    net = _compile(_relu_net(), netgen.random_inputs((2, 8, 8), 64, seed=3), tmp_path=tmp_path)
    _check_bit_exact(nx, net, netgen.random_inputs((2, 8, 8), 1, seed=4), tmp_path / "c.net")


@pytest.mark.lava
def test_netx_unfolded_pool_and_flat_input_bit_exact(nx, tmp_path):
    """A 2x2 pool on a 9x9 map cannot be folded into the next conv: it becomes its own NetX
    conv layer (one step later); and an image input flattened straight into a dense layer."""
    b = netgen.NetBuilder((2, 9, 9), 7)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.conv(x, 2, 4, scale=2.0), 15, 1.5)
    x = b.qcfs(b.conv(b.avgpool(x), 4, 6, scale=2.0), 15, 1.0)
    net = _compile(b.model(b.gemm(b.flatten(x), 6 * 4 * 4, 3), 3), None, tmp_path=tmp_path)
    assert nx.extra_delay(net) == 1
    _check_bit_exact(nx, net, netgen.random_inputs((2, 9, 9), 2, seed=4), tmp_path / "p.net")

    b = netgen.NetBuilder((1, 4, 4), 8)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.gemm(b.flatten(x), 16, 10, scale=2.0), 15, 1.5)
    net = _compile(b.model(b.gemm(x, 10, 3), 3), None, tmp_path=tmp_path)
    _check_bit_exact(nx, net, netgen.random_inputs((1, 4, 4), 2, seed=4), tmp_path / "f.net")


@pytest.mark.lava
def test_netx_big_biases_bit_exact(nx, tmp_path):
    """The coarsened scales of `_big_bias_net` (both biases at their field's edge) run in Lava bit for bit."""
    net = _compile(_big_bias_net(), None, tmp_path=tmp_path)
    _check_bit_exact(nx, net, netgen.random_inputs((2, 8, 8), 2, seed=4), tmp_path / "b.net")


@pytest.mark.lava
def test_netx_dead_zone_bit_exact(nx, tmp_path):
    """vth = 1: changes below 64 payload LSBs stay in the residue, in Lava as in our simulator."""
    net = _compile(MODELS / "digits_qcfs.onnx", np.load(MODELS / "digits_calib_x.npy"), vth=1)
    _check_bit_exact(nx, net, np.load(MODELS / "digits_test_x.npy")[:1], tmp_path / "v.net")
