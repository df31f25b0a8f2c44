"""Lava-DL NetX import (`neurodeploy compile net.net`): the reader's checks, Lava-DL's own golden
outputs reproduced by our simulator, bit-exactness with netx run in Lava, and the round trip
export -> import -> export.

Data: the SLAYER-trained networks and goldens of lava-nc/lava-dl, copied unchanged into
`../shared/data/lava-dl/` (NEURODEPLOY_DATA overrides `<clone>/../shared/data`).  How each
golden was produced (read in lava-dl's tests, commit d825ac5):
  * gts/pilotnet_sdnn/output.npy: tests/.../test_hdf5.py::test_pilotnet_sdnn: netx.hdf5.Network
    in Loihi2SimCfg fixed_pt, input.npy sent to the input Delta's a_in every step, the Sigma
    readout's out port over len(net.layers) = 9 steps, asserted equal.
  * gts/pilotnet_sdnn/act0.npy, sigma1.npy, sigma2.npy: test_hdf5_nx.py (Loihi 2 hardware,
    skip_layers=1: act0 into net.inp): act0 is the Delta's output (input << 6 at step 1), sigma1/2
    the first two conv layers' sigma after each of 20 steps (asserted there only for a cropped
    "square" network; these full-size ones are what the same run gives).
  * gts/pilotnet_lif/*: test_hdf5_nx.py::test_pilotnet_lif (hardware): image.npy as the input
    layer's bias_mant, netx reset_interval=16, u of one layer after 15 steps asserted equal to
    gt[..., 14].  The files hold 24 steps; all 24 are reproduced by Lava fixed_pt (and by us)
    with reset_interval=17 (the second reset window starts one step later than 16 gives), and
    conv-1-v holds v before the reset of a spiking neuron as 128 (Lava and we hold 0 there).
  * tutorials/.../oxford: the tutorial only plots netx's output against slayer's
    (ground_truth.npy); it asserts nothing.  We assert ours == Lava and measure the agreement.
"""
from __future__ import annotations

import filecmp
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from neurodeploy.backends import netx_host
from neurodeploy.backends.netx_layers import NetxLayers, write_str
from neurodeploy.errors import NeurodeployError, UnsupportedError
from neurodeploy.frontends.netx import import_netx
from neurodeploy.frontends.netx.dense_weights import lava_dense_weights
from neurodeploy.frontends.netx.options import NetxOptions
from neurodeploy.registry import get_scheme
from neurodeploy.schemes.cuba import kernel as sim_cuba
from neurodeploy.schemes.sdnn import kernel as ssd
from neurodeploy.sim import engine
from conftest import DATA, MODELS, ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))


def write_netx(graph, path):
    """The scheme's NetX writer, as `neurodeploy export --format netx` calls it."""
    return get_scheme(graph.scheme).exporters["netx"](graph, path, None)


def _data() -> Path:
    base = Path(os.environ.get("NEURODEPLOY_DATA", DATA))
    if not (base / "lava-dl").is_dir():
        pytest.fail(f"{base / 'lava-dl'} is missing: put the shared data beside the clone or set NEURODEPLOY_DATA")
    return base / "lava-dl"


@pytest.fixture(scope="module")
def lavadl() -> Path:
    return _data()


def gts(lavadl) -> Path:
    return lavadl / "tests/lava/lib/dl/netx/gts"


def _lava_layout(a: np.ndarray) -> np.ndarray:
    """Ours (T, C, H, W) -> Lava's (W, H, C, T)."""
    return np.moveaxis(a, 0, -1).transpose(2, 1, 0, 3)


# --------------------------------------------------------------------------- small NetX files
def _cuba_neuron(g, vth=25, i_decay=4096, v_decay=1024):
    write_str(g, "neuron/type", "CUBA")
    g.create_dataset("neuron/iDecay", data=i_decay)
    g.create_dataset("neuron/vDecay", data=v_decay)
    g.create_dataset("neuron/vThMant", data=vth)


def _sdnn_neuron(g, vth=0, sigma=False):
    write_str(g, "neuron/type", "SDNN")
    g.create_dataset("neuron/vThMant", data=vth)
    if sigma:
        g.create_dataset("neuron/sigma_output", data=True)


def tiny_cuba(path, seed=0, input_neuron=False, mutate=None):
    """input (2, 9, 9) -> conv 4@3x3 (stride 2, padding 1) -> flatten -> dense 12 -> dense 3 (CUBA)."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as h:
        L = NetxLayers(h)
        g = L.input((2, 9, 9))
        if input_neuron:
            _cuba_neuron(g, vth=20, v_decay=512)
        g = L.conv((4, 5, 5), 2, (2, 2), (1, 1), (1, 1), 1, rng.integers(-40, 41, (4, 2, 3, 3)) * 2)
        g.create_dataset("bias", data=rng.integers(-8, 9, 4))
        _cuba_neuron(g, vth=30, i_decay=2048, v_decay=800)
        L.flatten(100)
        g = L.dense(rng.integers(-60, 61, (12, 100)) * 2)
        g.create_dataset("bias", data=rng.integers(-5, 10, 12))
        _cuba_neuron(g, vth=40, i_decay=1024, v_decay=300)
        g = L.dense(rng.integers(-100, 101, (3, 12)) * 2)
        _cuba_neuron(g, vth=50, i_decay=4096, v_decay=0)
        if mutate:
            mutate(h)


def tiny_sdnn(path, seed=0, mutate=None):
    """input (Delta) (2, 8, 8) -> conv 6@3x3 groups 2, dilation 2 -> flatten -> dense 10 -> Sigma 3."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as h:
        L = NetxLayers(h)
        _sdnn_neuron(L.input((2, 8, 8)), vth=1)
        g = L.conv((6, 4, 4), 2, (1, 1), (0, 0), (2, 2), 2, rng.integers(-60, 61, (6, 1, 3, 3)) * 2)
        g.create_dataset("bias", data=rng.integers(-4, 8, 6))
        _sdnn_neuron(g, vth=2)
        L.flatten(96)
        g = L.dense(rng.integers(-70, 71, (10, 96)) * 2)
        g.create_dataset("bias", data=rng.integers(-2, 6, 10))
        _sdnn_neuron(g, vth=0)
        _sdnn_neuron(L.dense(rng.integers(-100, 101, (3, 10)) * 2), sigma=True)
        if mutate:
            mutate(h)


def _set(key, value):
    def f(h):
        del h[key]
        h[key] = value
    return f


# --------------------------------------------------------------------------- the reader's checks
BAD_FILES = [
    ("non-integer weight", lambda h: _set("layer/3/weight", h["layer/3/weight"][()] + 0.5)(h),
     "layer/3 (dense): 'weight' holds the non-integer"),
    ("pooling layer", lambda h: _set("layer/2/type", np.array([b"pool"], dtype="S10"))(h),
     "layer/2 (pool): netx cannot build a 'pool' layer"),
    ("axonal delay", lambda h: h["layer/3"].create_dataset("delay", data=np.ones(12)),
     "layer/3 (dense): axonal delays are not supported"),
    ("resonate-and-fire neuron", lambda h: _set("layer/1/neuron/type", b"RF_IZ")(h),
     "resonate-and-fire neurons"),
    ("messageBits", lambda h: h["layer/1/neuron"].create_dataset("messageBits", data=8), "'messageBits' is set"),
    ("conv output shape", lambda h: _set("layer/1/shape", np.array([4, 6, 6]))(h),
     "layer/1 (conv): shape (4, 6, 6) does not match the convolution's output (4, 5, 5)"),
    ("decay out of range", lambda h: _set("layer/3/neuron/vDecay", 5000)(h), "'vDecay' = 5000 is outside 0..4096"),
    ("dense without flatten", lambda h: _set("layer/2/type", np.array([b"dense"], dtype="S10"))(h),
     "layer/2 (dense): missing dataset 'weight'"),
    ("conv bias per neuron", lambda h: _set("layer/1/bias", np.zeros((4, 5, 5)))(h),
     "bias has shape (4, 5, 5), expected one value per output channel"),
    ("layer keys with a gap", lambda h: h.move("layer/4", "layer/7"), "are not 0..4"),
    ("mixed neuron families", lambda h: (h["layer/4"].__delitem__("neuron"), _sdnn_neuron(h["layer/4"], sigma=True)),
     "mixes CUBA and SDNN"),
]


@pytest.mark.parametrize("what,mutate,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_refused_naming_file_and_layer(tmp_path, what, mutate, message):
    path = tmp_path / "bad.net"
    tiny_cuba(path, mutate=mutate)
    with pytest.raises(NeurodeployError) as err:
        import_netx(path, options=NetxOptions(timesteps=5))
    assert message in str(err.value) and str(path) in str(err.value), str(err.value)


def test_structural_refusals(tmp_path):
    p = tmp_path / "n.net"
    tiny_sdnn(p, mutate=lambda h: h["layer/4/neuron"].__delitem__("sigma_output"))
    with pytest.raises(UnsupportedError, match="not a Sigma readout"):
        import_netx(p)
    tiny_cuba(p, mutate=lambda h: h["layer"].__delitem__("0"))
    with pytest.raises(NeurodeployError, match="are not 0"):
        import_netx(p, options=NetxOptions(timesteps=3))
    tiny_cuba(p)
    with pytest.raises(NeurodeployError, match="pass --timesteps T"):
        import_netx(p)
    with pytest.raises(NeurodeployError, match="compiles to the cuba scheme, not sdnn"):
        import_netx(p, scheme="sdnn", options=NetxOptions(timesteps=3))
    (tmp_path / "x.net").write_text("not hdf5")
    with pytest.raises(NeurodeployError, match="not a readable HDF5 file"):
        import_netx(tmp_path / "x.net")


def test_cli_refuses_a_bad_file_in_one_line_without_output(tmp_path, capsys):
    from neurodeploy.cli import main
    p = tmp_path / "bad.net"
    tiny_cuba(p, mutate=_set("layer/1/neuron/iDecay", -1))
    assert main(["compile", str(p), "--timesteps", "4", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "layer/1 (conv) neuron: 'iDecay' = -1 is outside 0..4096" in err
    assert not (tmp_path / "out").exists()


def test_import_options_apply_to_netx_files_only(tmp_path, capsys):
    """A NetX file takes the import options (NetxOptions) and refuses a quantising scheme's; another
    model file refuses the NetX-only ones; --scheme names the file's own scheme or nothing."""
    from neurodeploy import api
    from neurodeploy.cli import main
    p = tmp_path / "c.net"
    tiny_cuba(p)
    cases = [(["compile", str(MODELS / "digits_qcfs.onnx"), "--reset-interval", "5"],
              "--reset-interval applies to Lava-DL NetX files (.net) only"),
             (["compile", str(p), "--timesteps", "4", "--calibration", str(MODELS / "digits_calib_x.npy")],
              "a NetX file is imported as it is: --calibration does not apply"),
             (["compile", str(p), "--timesteps", "4", "--scheme", "bitplane"],
              "compiles to the cuba scheme, not bitplane")]
    for argv, message in cases:
        assert main(argv + ["-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not (tmp_path / "out").exists()
    with pytest.raises(NeurodeployError, match="--lossy does not apply"):
        api.compile(str(p), timesteps=4, lossy=True)
    net = api.compile(str(p), timesteps=4, reset_interval=3, input_mode="constant")
    assert net.graph.scheme == "cuba" and net.graph.meta["netx"]["input"] == "constant"
    assert net.graph.neuron_layers()[0].neuron.reset_interval == 3
    assert main(["compile", str(p), "--timesteps", "4", "--scheme", "cuba", "-o", str(tmp_path / "out")]) == 0


# --------------------------------------------------------------------------- netx's dense weight packing
@pytest.fixture(scope="module")
def lava_netx(netx):
    """Our runner of NetX files in Lava (conftest's `netx`: lava-dl's netx importable; skipped only
    when lava-dl is not installed)."""
    from neurodeploy.backends.netx_run import run_netx
    return run_netx


@pytest.fixture(scope="module")
def lava_utils(lava_netx):
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights
    return optimize_weight_bits, clip_weights, truncate_weights, determine_sign_mode


@pytest.mark.lava
@pytest.mark.parametrize("lo,hi,step", [(-128, 127, 2), (0, 127, 2), (-128, -1, 2), (-64, 64, 8), (1, 200, 1),
                                        (-300, 300, 2), (-255, 0, 1), (3, 3, 1), (-256, -256, 1)])
def test_dense_weights_are_what_lavas_dense_computes_with(lava_utils, lo, hi, step):
    """Our emulation of optimize_weight_bits + Lava's clip/truncate/shift, against Lava's own functions:
    accepted weights give Lava's a_out for random graded inputs; refused ones are not linear in Lava."""
    optimize, clip, truncate, sign_mode = lava_utils
    rng = np.random.default_rng([abs(lo), abs(hi), step])
    w = rng.integers(lo // step, hi // step + 1, (9, 14)) * step
    w[0, 0] = lo                                                 # the extreme is there
    packed, bits, wexp, _ = optimize(w.copy())
    mode = sign_mode(packed)
    packed = truncate(clip(packed, mode, num_bits=8), mode, bits)
    s = rng.integers(-300, 300, (14, 40))
    lava = packed.astype(np.int64) @ s
    lava = lava << wexp if wexp > 0 else lava >> -wexp
    try:
        eff, _ = lava_dense_weights(w, "w")
    except UnsupportedError as err:                          # Lava's sums are then not W . s for any W
        assert np.any(packed % (1 << -wexp)) or (8 - bits + (mode.name == "MIXED")) < 0, str(err)
        return
    np.testing.assert_array_equal(eff @ s, lava)


# --------------------------------------------------------------------------- Lava-DL's goldens
def test_pilotnet_sdnn_goldens(lavadl):
    """test_pilotnet_sdnn's output over 9 steps, and the Delta's output and the first two
    layers' sigma over 20 steps (act0, sigma1, sigma2), from the imported IR, exactly."""
    g = gts(lavadl) / "pilotnet_sdnn"
    net = import_netx(g / "network.net")
    assert net.scheme == "sdnn" and ssd.settle_steps(net) == 9
    x = np.load(g / "input.npy")[..., 0].transpose(2, 1, 0)[None].astype(np.float32)
    prep = engine.prepare(net)
    outs, s1, s2 = [], [], []
    for t in range(1, 21):
        st: dict = {}
        r = ssd.run_sdnn(prep, x, n_steps=t, states=st)
        outs.append(int(r.output_state.reshape(-1)[0]))
        s1.append(st["conv1"]["sigma"][0].numpy())
        s2.append(st["conv2"]["sigma"][0].numpy())
    np.testing.assert_array_equal(np.array(outs[:9])[None], np.load(g / "output.npy"))
    np.testing.assert_array_equal(_lava_layout(np.stack(s1)), np.load(g / "sigma1.npy"))
    np.testing.assert_array_equal(_lava_layout(np.stack(s2)), np.load(g / "sigma2.npy"))
    trace: list = []
    ssd.run_sdnn(prep, x, n_steps=20, trace=trace)
    delta = torch.stack([s["input"] for s in trace], 1)[0].numpy() << net.neuron_layers()[0].branches[0].weight_exp
    np.testing.assert_array_equal(_lava_layout(delta), np.load(g / "act0.npy"))


def _pilotnet_lif(lavadl, steps: int, reset_interval: int):
    g = gts(lavadl) / "pilotnet_lif"
    net = import_netx(g / "network.net", options=NetxOptions(timesteps=steps, reset_interval=reset_interval))
    x = np.load(g / "image.npy").transpose(2, 1, 0)[None].astype(np.float32)
    us, vs = [], []
    tr = sim_cuba.simulate_steps(engine.prepare(net), x, trace=True,
                                 on_step=lambda t, u, v: (us.append(u["conv2"][0].numpy().copy()),
                                                        vs.append(v["conv2"][0].numpy().copy())))[3]
    return g, net, tr, _lava_layout(np.stack(us)), _lava_layout(np.stack(vs))


def test_pilotnet_lif_golden_as_lava_dl_asserts_it(lavadl):
    """test_pilotnet_lif: reset_interval=16, 15 steps, a layer's u after step 15 == gt[..., 14]
    (conv-1-u, the one whose golden is here), and the spikes up to then."""
    g, net, tr, u, v = _pilotnet_lif(lavadl, 15, 16)
    assert net.meta["netx"]["input"] == "bias" and net.output.neuron.output == "v"
    np.testing.assert_array_equal(u[..., 14], np.load(g / "conv-1-u.npy")[..., 14])
    for ours, gold in (("input0", "input"), ("conv1", "conv-0"), ("conv2", "conv-1")):
        np.testing.assert_array_equal(_lava_layout(tr.spikes[ours][0]), np.load(g / f"{gold}.npy")[..., :15])


@pytest.mark.slow
def test_pilotnet_lif_goldens_all_steps(lavadl):
    """All 24 steps of every pilotnet_lif golden (reset_interval=17, see the module docstring)."""
    g, net, tr, u, v = _pilotnet_lif(lavadl, 25, 17)
    for ours, gold in (("input0", "input"), ("conv1", "conv-0"), ("conv2", "conv-1")):
        np.testing.assert_array_equal(_lava_layout(tr.spikes[ours][0])[..., :24], np.load(g / f"{gold}.npy"))
    np.testing.assert_array_equal(u[..., :24], np.load(g / "conv-1-u.npy"))
    spiked = np.load(g / "conv-1.npy")
    gv = np.load(g / "conv-1-v.npy")
    np.testing.assert_array_equal(v[..., :24][~spiked], gv[~spiked])
    assert np.all(v[..., :24][spiked] == 0) and np.all(gv[spiked] == 128)   # reset to 0; the golden shows 128
    out_spikes = np.load(g / "fc-3-s.npy")                                # (1, 25): the readout never fires
    assert out_spikes.shape == (1, 25) and not out_spikes.any() and net.output.neuron.v_th_mant == 131071
    assert np.all(np.abs(tr.readout_v) < 131071 << 6)


# --------------------------------------------------------------------------- round trip
def _roundtrip(graph, tmp_path, name):
    a, b = tmp_path / f"{name}_a.net", tmp_path / f"{name}_b.net"
    write_netx(graph, a)
    back = import_netx(a)
    write_netx(back, b)
    assert filecmp.cmp(a, b, shallow=False), f"{name}: export -> import -> export is not byte-identical"
    return back, a


LAVA_DL_FILES = [("tests/lava/lib/dl/netx/gts/pilotnet_sdnn/network.net", {}),
                 ("tests/lava/lib/dl/netx/gts/pilotnet_lif/network.net", {"reset_interval": 16}),
                 ("tutorials/lava/lib/dl/netx/pilotnet_sdnn/network.net", {}),
                 ("tutorials/lava/lib/dl/netx/pilotnet_snn/network.net", {}),
                 ("tutorials/lava/lib/dl/netx/mnist/trained_mnist_network.net", {"timesteps": 8}),
                 ("tutorials/lava/lib/dl/netx/oxford/Trained/network.net", {"timesteps": 8})]


@pytest.mark.parametrize("rel,opts", LAVA_DL_FILES, ids=[Path(f).parent.name for f, _ in LAVA_DL_FILES])
def test_lava_dl_files_round_trip_byte_identical(lavadl, tmp_path, rel, opts):
    graph = import_netx(lavadl / rel, options=NetxOptions(**opts))
    back, _ = _roundtrip(graph, tmp_path, "f")
    assert [type(l.neuron) for l in back.layers] == [type(l.neuron) for l in graph.layers]


def test_own_networks_round_trip_byte_identical_and_simulate_alike(tmp_path):
    import test_sdnn as tsd
    models = MODELS
    digits = tsd._compile(models / "digits_qcfs.onnx", np.load(models / "digits_calib_x.npy"))
    x = np.load(models / "digits_test_x.npy")[:16]
    nets = {"sdnn_digits": digits,
            "sdnn_relu": tsd._compile(tsd._relu_net(), tsd.netgen.random_inputs((2, 8, 8), 64, seed=3),
                                      tmp_path=tmp_path)}
    for name, net in nets.items():
        back, _ = _roundtrip(net, tmp_path, name)
        xs = x if name == "sdnn_digits" else tsd.netgen.random_inputs((2, 8, 8), 8, seed=4)
        a = ssd.run_sdnn(engine.prepare(net), xs)
        b = ssd.run_sdnn(engine.prepare(back), xs)
        assert torch.equal(a.output_state, b.output_state) and torch.equal(a.output, b.output), name
    # an unfolded pool becomes a layer of its own: still byte-identical, one settle step later
    b = tsd.netgen.NetBuilder((2, 9, 9), 7)
    h = b.qcfs("input", 15, 1.0)
    h = b.qcfs(b.conv(h, 2, 4, scale=2.0), 15, 1.5)
    h = b.qcfs(b.conv(b.avgpool(h), 4, 6, scale=2.0), 15, 1.0)
    net = tsd._compile(b.model(b.gemm(b.flatten(h), 6 * 4 * 4, 3), 3), None, tmp_path=tmp_path)
    back, _ = _roundtrip(net, tmp_path, "pool")
    xs = tsd.netgen.random_inputs((2, 9, 9), 4, seed=4)
    assert torch.equal(ssd.run_sdnn(engine.prepare(net), xs).output_state,
                       ssd.run_sdnn(engine.prepare(back), xs).output_state)
    # an image flattened straight into a dense layer: netx holds the input flat, the file's
    # neurodeploy_input_shape gives the frame back (x stays (N, 1, 4, 4))
    b = tsd.netgen.NetBuilder((1, 4, 4), 8)
    h = b.qcfs("input", 15, 1.0)
    h = b.qcfs(b.gemm(b.flatten(h), 16, 10, scale=2.0), 15, 1.5)
    net = tsd._compile(b.model(b.gemm(h, 10, 3), 3), None, tmp_path=tmp_path)
    back, _ = _roundtrip(net, tmp_path, "flat")
    assert back.input.shape == (1, 4, 4)
    xs = tsd.netgen.random_inputs((1, 4, 4), 4, seed=4)
    assert torch.equal(ssd.run_sdnn(engine.prepare(net), xs).output_state,
                       ssd.run_sdnn(engine.prepare(back), xs).output_state)


def test_own_cuba_network_round_trip(tmp_path):
    import test_cuba as tc
    m = tc._random_net("conv", 3)
    x = tc._random_input("conv", 6, 4)
    from neurodeploy.schemes.cuba import compile_lif
    g = compile_lif(m, x, timesteps=5, calibration=tc._random_input("conv", 64, 5), input_bits=6)
    back, _ = _roundtrip(g, tmp_path, "cuba")
    np.testing.assert_array_equal(sim_cuba.simulate(back, x), sim_cuba.simulate(g, x))


# --------------------------------------------------------------------------- CLI and API
def test_cli_compile_simulate_report_compare_of_a_netx_file(lavadl, tmp_path, capsys):
    from neurodeploy import api
    from neurodeploy.cli import main
    f = gts(lavadl) / "pilotnet_sdnn/network.net"
    assert main(["compile", str(f), "-o", str(tmp_path / "pn")]) == 0
    summary = (tmp_path / "pn" / "summary.md").read_text()
    assert "imported from NetX (SDNN neurons" in summary and "x (N, 3, 33, 100)" in summary
    x = np.load(gts(lavadl) / "pilotnet_sdnn/input.npy")[..., 0].transpose(2, 1, 0)[None].astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["simulate", str(tmp_path / "pn"), "--input", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "y.npy")]) == 0
    assert np.load(tmp_path / "y.npy")[0, 0] == np.load(gts(lavadl) / "pilotnet_sdnn/output.npy")[0, -1]
    net = api.compile(str(f))
    assert net.graph.scheme == "sdnn" and api.simulate(net, x)[0, 0] == -31026
    # a CUBA file fed spike trains: (N, T, 784)
    m = lavadl / "tutorials/lava/lib/dl/netx/mnist/trained_mnist_network.net"
    spikes = (np.random.default_rng(0).random((3, 8, 784)) < 0.3).astype(np.float32)
    np.save(tmp_path / "s.npy", spikes)
    np.save(tmp_path / "l.npy", np.array([3, 1, 4]))
    assert main(["compile", str(m), "--timesteps", "8", "-o", str(tmp_path / "mn")]) == 0
    assert main(["report", str(tmp_path / "mn"), "--input", str(tmp_path / "s.npy"), "--labels",
                 str(tmp_path / "l.npy"), "-o", str(tmp_path / "r.md")]) == 0
    assert "| - | - |" in (tmp_path / "r.md").read_text()         # no float / quantised ANN
    assert main(["compare", str(m), "--timesteps", "8", "--input", str(tmp_path / "s.npy"), "--labels",
                 str(tmp_path / "l.npy"), "-o", str(tmp_path / "cmp")]) == 0
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| netx_cuba | cuba | timesteps=8 |" in md and "imports as the cuba network it holds, not as rate" in md
    capsys.readouterr()
    assert main(["simulate", str(tmp_path / "mn"), "--input", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "z.npy")]) == 2
    assert "does not match the model input (N, 8, 784)" in capsys.readouterr().err


def test_cli_export_prints_how_to_run_the_file(tmp_path, capsys):
    import test_sdnn as tsd
    from neurodeploy.cli import main
    from neurodeploy.compiler import save_artifact
    models = MODELS
    save_artifact(tsd._compile(models / "digits_qcfs.onnx", np.load(models / "digits_calib_x.npy")), tmp_path / "d")
    assert main(["export", str(tmp_path / "d"), "--format", "netx", "-o", str(tmp_path / "d.net")]) == 0
    err = capsys.readouterr().err
    assert "wrote" in err and "5 layers of sigma-delta neurons" in err and "{" not in err
    assert "netx.hdf5.Network(net_config=" in err and "input_message_bits=" in err and "<< " in err
    a = netx_host.read(tmp_path / "d.net")
    assert a["input_mode"] == "constant" and a["output"] == "sigma" and a["n_steps"] == 4


# --------------------------------------------------------------------------- bit-exact with netx in Lava
def _cuba_equal(run_netx, graph, path, x):
    ours = sim_cuba.trace(graph, x)
    lava = run_netx(graph, path, x, int(graph.input.neuron.n_steps))
    for i, layer in enumerate(graph.neuron_layers()):
        if layer.name in ours.spikes:
            np.testing.assert_array_equal(lava.sent[i], ours.spikes[layer.name], err_msg=layer.name)
    np.testing.assert_array_equal(lava.readout_v, ours.readout_v)
    return ours


def _sdnn_equal(run_netx, graph, path, x, first_block: int):
    n = ssd.settle_steps(graph) + 2
    trace: list = []
    r = ssd.run_sdnn(engine.prepare(graph), x, n_steps=n, trace=trace)
    lava = run_netx(graph, path, x, n)
    for i, layer in enumerate(graph.neuron_layers()[:-1]):
        ours = torch.stack([t[layer.name] for t in trace], 1).numpy()
        np.testing.assert_array_equal(lava.sent[first_block + i], ours, err_msg=layer.name)
    sigma = lava.sent[-1][:, -1].reshape(len(x), -1) + graph.output.bias.reshape(-1)
    np.testing.assert_array_equal(sigma, r.output_state.numpy().reshape(len(x), -1))


@pytest.mark.lava
def test_tiny_files_bit_exact_with_lava(lava_netx, tmp_path):
    """Conv with padding/stride/groups/dilation, flatten, dense, bias, both input-neuron kinds,
    a spiking CUBA output layer, LIFReset and graded sequence input: netx in Lava == us, step by step;
    and the standard-way re-export of each gives Lava the same."""
    rng = np.random.default_rng(1)
    p = tmp_path / "c.net"
    tiny_cuba(p, input_neuron=True)
    g = import_netx(p, options=NetxOptions(timesteps=12, reset_interval=5, reset_offset=2))
    x = rng.integers(-30, 120, (2, 2, 9, 9)).astype(np.float32)
    ours = _cuba_equal(lava_netx, g, p, x)
    assert ours.spikes["input0"].any() and ours.spikes["conv1"].any()
    back, a = _roundtrip(g, tmp_path, "c")
    _cuba_equal(lava_netx, back, a, x)

    tiny_cuba(p, seed=2)
    g = import_netx(p, options=NetxOptions(timesteps=10, input_message_bits=6))
    assert g.output.neuron.output == "spikes" and g.input.neuron.sequence
    x = rng.integers(-32, 32, (2, 10, 2, 9, 9)).astype(np.float32)
    _cuba_equal(lava_netx, g, p, x)
    back, a = _roundtrip(g, tmp_path, "s")
    _cuba_equal(lava_netx, back, a, x)

    p = tmp_path / "d.net"
    tiny_sdnn(p)
    g = import_netx(p)
    x = rng.integers(-20, 60, (2, 2, 8, 8)).astype(np.float32)
    _sdnn_equal(lava_netx, g, p, x, first_block=1)                 # block 0 is the input Delta
    from neurodeploy import api
    r = api.verify(api.CompiledNet(g), p, x[:1])                   # verify = this comparison, per layer
    assert r["guarantee_holds"] and r["layers"]["dense3"]["compared"] == 10 * ssd.settle_steps(g)
    back, a = _roundtrip(g, tmp_path, "d")
    _sdnn_equal(lava_netx, back, a, x, first_block=0)              # re-exported: net.inp, no Delta


@pytest.mark.lava
def test_mnist_tutorial_network_bit_exact_with_lava(lava_netx, lavadl):
    f = lavadl / "tutorials/lava/lib/dl/netx/mnist/trained_mnist_network.net"
    g = import_netx(f, options=NetxOptions(timesteps=16))
    x = (np.random.default_rng(0).random((2, 16, 784)) < 0.2).astype(np.float32)
    ours = _cuba_equal(lava_netx, g, f, x)
    assert ours.spikes["dense2"].sum() > 0                       # the class layer fires


@pytest.mark.lava
def test_verify_of_an_imported_network_runs_lava(lava_netx, lavadl, tmp_path, capsys):
    from neurodeploy.cli import main
    f = lavadl / "tutorials/lava/lib/dl/netx/oxford/Trained/network.net"
    assert main(["compile", str(f), "--timesteps", "40", "-o", str(tmp_path / "ox")]) == 0
    x = (np.random.default_rng(3).random((2, 40, 200)) < 0.1).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "ox"), "--model", str(f), "--input", str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out
    assert "| dense0 | 0 | 20480 |" in out and "| dense1 | 0 |" in out and "holds" in out
    other = lavadl / "tutorials/lava/lib/dl/netx/mnist/trained_mnist_network.net"
    assert main(["verify", str(tmp_path / "ox"), "--model", str(other), "--input", str(tmp_path / "x.npy")]) == 2


@pytest.mark.lava
@pytest.mark.slow
def test_pilotnet_sdnn_bit_exact_with_lava_both_files(lava_netx, lavadl, tmp_path):
    for rel in ("tests/lava/lib/dl/netx/gts/pilotnet_sdnn/network.net",
                "tutorials/lava/lib/dl/netx/pilotnet_sdnn/network.net"):
        f = lavadl / rel
        g = import_netx(f)
        shape = g.input.shape
        x = np.random.default_rng(5).integers(-60, 60, (1,) + tuple(shape)).astype(np.float32)
        if "gts" in rel:
            x = np.load(gts(lavadl) / "pilotnet_sdnn/input.npy")[..., 0].transpose(2, 1, 0)[None].astype(np.float32)
        _sdnn_equal(lava_netx, g, f, x, first_block=1)
        back, a = _roundtrip(g, tmp_path, "pn")
        _sdnn_equal(lava_netx, back, a, x, first_block=0)


@pytest.mark.lava
@pytest.mark.slow
def test_pilotnet_lif_bit_exact_with_lava(lava_netx, lavadl):
    f = gts(lavadl) / "pilotnet_lif/network.net"
    g = import_netx(f, options=NetxOptions(timesteps=24, reset_interval=17))
    x = np.load(gts(lavadl) / "pilotnet_lif/image.npy").transpose(2, 1, 0)[None].astype(np.float32)
    _cuba_equal(lava_netx, g, f, x)


@pytest.mark.lava
@pytest.mark.slow
def test_oxford_bit_exact_with_lava_and_its_agreement_with_slayer(lava_netx, lavadl):
    from lava.lib.dl import slayer
    d = lavadl / "tutorials/lava/lib/dl/netx/oxford"
    steps = 2000
    g = import_netx(d / "Trained/network.net", options=NetxOptions(timesteps=steps))
    x = slayer.io.read_np_spikes(str(d / "input.npy")).to_tensor(dim=(1, 200, steps)).squeeze().T[None]
    ours = _cuba_equal(lava_netx, g, d / "Trained/network.net", x.astype(np.float32))
    out = ours.spikes["dense1"][0] > 0
    ref = slayer.io.read_np_spikes(str(d / "ground_truth.npy")).to_tensor(dim=(1, 200, steps)).squeeze().T > 0
    both = int((out & ref).sum())
    print(f"oxford: slayer reference {int(ref.sum())} spikes, Lava/neurodeploy {int(out.sum())}, {both} coincide")
    # measured (integer simulation, lava-dl 0.6.0's event conversion): 10178 / 9565 / 7867
    assert (int(ref.sum()), int(out.sum()), both) == (10178, 9565, 7867)


@pytest.mark.lava
def test_exported_files_run_the_standard_way_with_the_example_script(lava_netx, tmp_path):
    """examples/run_netx_in_lava.py (what a Loihi 2 user starts from: netx.hdf5.Network, a source on
    net.inp, net.out / the last layer's v, netx_host encode/decode) gives `neurodeploy simulate`'s
    outputs bit for bit, for an sdnn and a cuba network compiled by neurodeploy."""
    import test_cuba as tc
    import test_sdnn as tsd
    sys.path.insert(0, str(ROOT / "examples"))
    import run_netx_in_lava as example
    from neurodeploy.schemes.cuba import compile_lif
    models = MODELS
    sdnn = tsd._compile(models / "digits_qcfs.onnx", np.load(models / "digits_calib_x.npy"))
    x = np.load(models / "digits_test_x.npy")[:2]
    write_netx(sdnn, tmp_path / "s.net")
    ours, _ = engine.simulate(sdnn, x)
    np.testing.assert_array_equal(example.run(str(tmp_path / "s.net"), x), ours)
    m = tc._random_net("conv", 3)
    xc = tc._random_input("conv", 2, 4)
    cuba = compile_lif(m, xc, timesteps=5, calibration=tc._random_input("conv", 64, 5), input_bits=6)
    write_netx(cuba, tmp_path / "c.net")
    np.testing.assert_array_equal(example.run(str(tmp_path / "c.net"), xc), sim_cuba.simulate(cuba, xc))


def test_example_script_refuses_bad_files_in_one_line(tmp_path):
    """The example is what users start from: a missing or non-NetX file, a NetX file without the host's
    attributes, and unreadable inputs are one line and exit 2 -- no traceback, and no output written."""
    import subprocess
    script = str(ROOT / "examples" / "run_netx_in_lava.py")
    not_h5 = tmp_path / "text.net"
    not_h5.write_text("not hdf5")
    plain = tmp_path / "plain.net"          # a valid NetX network, as slayer writes it: no neurodeploy_* attributes
    tiny_cuba(plain)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 64), dtype=np.float32))
    bad_x = tmp_path / "bad.npy"
    bad_x.write_bytes(b"nothing")
    sdnn = tmp_path / "s.net"
    import test_sdnn as tsd
    write_netx(tsd._compile(MODELS / "digits_qcfs.onnx", np.load(MODELS / "digits_calib_x.npy")), sdnn)
    cases = [([str(tmp_path / "missing.net"), str(x)], "file not found"),
             ([str(not_h5), str(x)], "not a readable HDF5 file"),
             ([str(plain), str(x)], "no neurodeploy_* attributes"),
             ([str(sdnn), str(bad_x)], str(bad_x)),
             ([str(sdnn), str(x), "-o", str(sdnn)], "-o")]
    for argv, words in cases:
        r = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (argv, r.stderr)
        assert "Traceback" not in r.stderr and words in r.stderr, (argv, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["bad.npy", "plain.net", "s.net", "text.net", "x.npy"]


def test_lava_netx_imports_in_a_fresh_python_through_neurodeploy_lava(netx):
    """On Python 3.11 `from lava.lib.dl import netx` fails by itself; `from neurodeploy.lava import
    netx` is the one line a user needs (the compat hook runs on import)."""
    import subprocess
    code = ("import sys\n"
            "try:\n    import lava.magma.core.process.process\n    plain = 'ok'\n"
            "except Exception as e:\n    plain = type(e).__name__\n"
            "from neurodeploy.lava import netx, LAVA_VERSION\n"
            "print(plain, LAVA_VERSION, netx.hdf5.Network.__name__)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    plain, version, name = done.stdout.split()[-3:]
    assert name == "Network" and version == "0.10.0"
    if sys.version_info >= (3, 11):
        assert plain == "ValueError"                # lava-nc 0.10.0 alone does not import here


def test_h5_files_are_netx_when_they_hold_a_layer_group(tmp_path):
    from neurodeploy import api
    from neurodeploy.frontends.netx import is_netx_path
    tiny_sdnn(tmp_path / "n.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h:
        h.create_dataset("model_weights", data=np.zeros(3))        # e.g. a Keras file
    assert is_netx_path(tmp_path / "n.h5") and not is_netx_path(tmp_path / "other.h5")
    assert api.compile(str(tmp_path / "n.h5")).graph.scheme == "sdnn"
    with pytest.raises(NeurodeployError, match="unsupported model format '.h5'"):
        api.compile(str(tmp_path / "other.h5"))
