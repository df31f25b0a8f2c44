"""`neurodeploy.api`: compile / simulate / verify / save from Python, for PyTorch and ONNX models."""
import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy import api as nd
from neurodeploy.compiler import compile_model
from neurodeploy.errors import NeurodeployError
from neurodeploy.ir import serialize
from neurodeploy.nn import QCFS
from neurodeploy.reports.verify import verify as verify_onnx
from neurodeploy.sim.engine import simulate as engine_simulate
from float32_bounds import argmax_is_certain, forward_bound

from conftest import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "models"))
import train_digits as td  # noqa: E402

X = np.load(ROOT / "models" / "digits_test_x.npy")
Y = np.load(ROOT / "models" / "digits_test_y.npy")
ONNX = ROOT / "models" / "digits_qcfs.onnx"


@pytest.fixture(scope="module")
def model():
    m = td.build_model()
    m.load_state_dict(torch.load(ROOT / "models" / "digits_qcfs.pt"))
    return m.eval()


@pytest.fixture(scope="module")
def net(model):
    return nd.compile(model, torch.from_numpy(X[:1]), target="loihi2", scheme="bitplane")


def test_compile_module_gives_compiled_net(net):
    assert isinstance(net, nd.CompiledNet)
    assert net.graph.scheme == "bitplane" and net.graph.target == "loihi2"
    assert net.input_shape == (1, 8, 8) and net.latency_steps == net.graph.meta["latency_steps"] > 0
    meta = net.graph.meta
    assert meta["model"]["file"] == "Sequential (torch.nn.Module)" and len(meta["model"]["sha256"]) == 64
    assert meta["options"]["scheme"] == "bitplane" and meta["neurodeploy_version"]
    s = net.summary()
    assert s.startswith("# Compiled network: Sequential (torch.nn.Module)") and "| readout |" in s
    assert "bitplane" in repr(net)
    # the float graph kept for reports is the PyTorch front end's, named by module paths
    assert "3" in net.float_graph.g and "10" in net.float_graph.g


def test_same_network_as_the_onnx_cli_path(net, tmp_path):
    other = compile_model(ONNX)
    # the same metadata as `neurodeploy compile` (all but the model's name and hash)
    assert set(net.graph.meta) == set(other.meta)
    assert net.graph.meta["options"] == other.meta["options"]
    assert {k: v for k, v in net.graph.meta.items() if k not in ("model", "quantisation")} == \
        {k: v for k, v in other.meta.items() if k not in ("model", "quantisation")}
    for g in (net.graph, other):
        g.meta.pop("model")
    d1, d2 = tmp_path / "a", tmp_path / "b"
    for d, g in ((d1, net.graph), (d2, other)):
        d.mkdir()
        serialize.save(g, d)
    assert (d1 / "params.npz").read_bytes() == (d2 / "params.npz").read_bytes()
    strip = lambda ls: [{k: v for k, v in l.items() if k != "float_node"} for l in ls]  # noqa: E731
    assert strip(json.loads((d1 / "ir.json").read_text())["layers"]) == \
        strip(json.loads((d2 / "ir.json").read_text())["layers"])


def test_simulate(net):
    out = nd.simulate(net, X[:100], batch_size=32)
    ref, _ = engine_simulate(net.graph, X[:100], 64)
    assert out.dtype == np.float32 and out.shape == (100, 10)
    assert np.array_equal(out, ref)
    assert np.array_equal(nd.simulate(net, torch.from_numpy(X[:100])), out)    # tensors accepted
    assert np.array_equal(nd.simulate(net.graph, X[:100]), out)
    with pytest.raises(NeurodeployError, match="does not match the model input"):
        nd.simulate(net, np.zeros((3, 1, 7, 7), np.float32))


def test_verify_against_the_module_is_exact_and_matches_onnx_verify(net, model):
    r = nd.verify(net, model, X, Y)
    assert r["guarantee_holds"] and r["error_free"]
    assert all(l["conversion_mismatches"] == 0 for l in r["layers"])
    assert r["samples"] == 450 and r["accuracy"]["snn"] == r["accuracy"]["quantised_ann"] > 0.95
    assert r["model"] == "Sequential (torch.nn.Module)"
    # the same dict as `neurodeploy verify` on the ONNX export (onnxruntime for the float model),
    # on the samples where two float32 implementations must agree: no QCFS input within float32
    # rounding of a level step (tests/float32_bounds.py; 389 of the 450), where every prediction
    # is certain and the logits lie within 2E of each other on any CPU (E <= 1.4e-4 here)
    bound = forward_bound(model, X)
    clean = (bound.ambiguous == 0).numpy()
    assert clean.sum() >= 300 and argmax_is_certain(bound)[clean].all()
    r, ro = nd.verify(net, model, X[clean], Y[clean]), verify_onnx(compile_model(ONNX), ONNX, X[clean], Y[clean])
    assert set(r) == set(ro)
    for key in ("accuracy", "agreement", "latency_steps", "guarantee", "samples", "scheme", "target"):
        assert r[key] == ro[key], key
    assert r["layers"] == ro["layers"]          # incl. per-layer quantisation mismatches
    assert r["quantisation_error"]["max_abs_logit_diff_float_vs_quantised"] == pytest.approx(
        ro["quantisation_error"]["max_abs_logit_diff_float_vs_quantised"], abs=2 * float(bound.e[clean].max()))
    assert model.training is False


def test_verify_restores_train_mode_and_accepts_tensors(net, model):
    model.train()
    try:
        r = nd.verify(net, model, torch.from_numpy(X[:64]), torch.from_numpy(Y[:64]), batch_size=16)
        assert model.training and all(m.training for m in model.modules())
    finally:
        model.eval()
    assert r["guarantee_holds"] and r["samples"] == 64


def test_verify_onnx_path_delegates_to_reports_verify(net):
    onnx_net = nd.compile(ONNX)
    r = nd.verify(onnx_net, ONNX, X[:64], Y[:64])
    assert r == verify_onnx(onnx_net.graph, ONNX, X[:64], Y[:64])


def test_pt2_path_compile_and_verify(model, tmp_path):
    path = tmp_path / "digits.pt2"
    torch.export.save(torch.export.export(model, (torch.from_numpy(X[:1]),)), path)
    net = nd.compile(path)
    assert net.graph.meta["model"]["file"] == "digits.pt2"
    r = nd.verify(net, path, X[:100], Y[:100])
    assert r["guarantee_holds"] and r["model"] == str(path)
    assert all(l["quantisation_mismatches"] is not None for l in r["layers"][1:-1])
    program = torch.export.load(path)
    r2 = nd.verify(nd.compile(program), program, X[:100], Y[:100])
    assert r2["layers"] == r["layers"] and r2["accuracy"] == r["accuracy"]
    # export_program: eval mode, dynamic batch; the same network
    from neurodeploy.nn.program import export_program
    model.train()
    dyn = export_program(model, torch.from_numpy(X[:1]), tmp_path / "dyn.pt2")
    assert model.training
    model.eval()
    assert dyn.module()(torch.from_numpy(X[:7])).shape == (7, 10)
    net_dyn = nd.compile(tmp_path / "dyn.pt2")
    assert np.array_equal(nd.simulate(net_dyn, X[:100]), nd.simulate(net, X[:100]))
    r3 = nd.verify(net_dyn, tmp_path / "dyn.pt2", X[:100], Y[:100])
    assert r3["layers"] == r["layers"]


def test_save_is_atomic_and_loadable(net, tmp_path):
    out = net.save(tmp_path / "out")
    assert {p.name for p in out.iterdir()} == {"ir.json", "params.npz", "summary.md", "neurodeploy-manifest.json"}
    assert (out / "summary.md").read_text() == net.summary()
    net.save(tmp_path / "out")                                  # replacing a previous output is fine
    again = nd.load(out)
    assert np.array_equal(nd.simulate(again, X[:20]), nd.simulate(net, X[:20]))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(NeurodeployError, match="not written by neurodeploy"):
        net.save(tmp_path / "other")
    assert (tmp_path / "other" / "keep.txt").read_text() == "x"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]    # no temp dirs left


def test_options_and_calibration():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), QCFS(7), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 10)).eval()
    with pytest.raises(NeurodeployError, match="no calibration data"):
        nd.compile(model, torch.zeros(1, 1, 8, 8))
    net = nd.compile(model, torch.zeros(1, 1, 8, 8), calibration=torch.from_numpy(X[:64]), input_bits=6)
    assert net.graph.meta["options"]["input_bits"] == 6 and net.graph.meta["options"]["calibration_samples"] == 64
    r = nd.verify(net, model, X[:64], Y[:64])
    assert r["guarantee_holds"]
    with pytest.raises(NeurodeployError, match="unknown option"):
        nd.compile(model, torch.zeros(1, 1, 8, 8), calibraton=X[:4])
    with pytest.raises(NeurodeployError, match="timesteps"):
        nd.compile(model, torch.zeros(1, 1, 8, 8), calibration=X[:64], timesteps=2)


def test_api_user_errors(model, tmp_path):
    with pytest.raises(NeurodeployError, match="example input"):
        nd.compile(model)
    with pytest.raises(NeurodeployError, match="unsupported model format '.h5'"):
        nd.compile(tmp_path / "m.h5")
    with pytest.raises(NeurodeployError, match="unknown scheme"):
        nd.compile(model, torch.zeros(1, 1, 8, 8), scheme="nope")
    with pytest.raises(NeurodeployError, match="cannot compile a dict"):
        nd.compile({"weights": 1})
    with pytest.raises(NeurodeployError, match="labels"):
        nd.verify(nd.compile(ONNX), ONNX, X[:10], Y[:9])


# --- the command line and the package's lazy API ------------------------------------------------
def test_cli_compiles_and_verifies_a_pt2_program(model, tmp_path):
    import os
    import subprocess
    from neurodeploy.nn.program import export_program
    pt2 = tmp_path / "digits.pt2"
    export_program(model, torch.from_numpy(X[:1]), pt2)
    np.save(tmp_path / "x.npy", X[:64])
    np.save(tmp_path / "y.npy", Y[:64])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "neurodeploy", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=600)
    r = cli("compile", pt2, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "ir.json").is_file()
    r = cli("verify", tmp_path / "out", "--model", pt2, "--input", tmp_path / "x.npy", "--labels",
            tmp_path / "y.npy", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["guarantee_holds"] and all(l["quantisation_mismatches"] is not None for l in res["layers"][1:-1])
    r = cli("compile", tmp_path / "x.npy", "-o", tmp_path / "bad")
    assert r.returncode == 2 and ".pt2" in r.stderr and "Traceback" not in r.stderr


def test_top_level_package_exposes_the_api():
    import neurodeploy
    assert hasattr(neurodeploy, "__getattr__")
    assert neurodeploy.compile is nd.compile and neurodeploy.simulate is nd.simulate
    assert neurodeploy.verify is nd.verify and neurodeploy.CompiledNet is nd.CompiledNet


def test_compile_routes_a_qat_module_through_its_qdq_export(tmp_path):
    """nd.compile(qat_module) goes through its QDQ export: the same integer network as the exported QDQ file."""
    from neurodeploy.ir.serialize import save
    from neurodeploy.nn import qat
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 10))
    q = qat.prepare_qat(model)
    x = torch.rand(32, 1, 8, 8)
    q.train()
    q(x)
    q.eval()
    direct = nd.compile(q, x, target="cpu", scheme="sws")
    via_file = nd.compile(qat.export_qat_onnx(q, x, tmp_path / "q.onnx"), target="cpu", scheme="sws")
    for name, net in (("a", direct), ("b", via_file)):
        (tmp_path / name).mkdir()
        save(net.graph, tmp_path / name)
    assert (tmp_path / "a" / "params.npz").read_bytes() == (tmp_path / "b" / "params.npz").read_bytes()
    assert np.array_equal(nd.simulate(direct, x.numpy()), nd.simulate(via_file, x.numpy()))


@pytest.mark.parametrize("scheme", ["reverb", "cuba"])
def test_trained_snn_as_pt2_compiles_from_the_command_line(tmp_path, scheme):
    """export_program saves a trained SNN's per-step network (neurons as neurodeploy custom ops);
    `neurodeploy compile model.pt2` in a fresh interpreter gives the bytes nd.compile gives."""
    import subprocess
    from neurodeploy.nn.program import export_program
    if scheme == "reverb":
        import train_digits_reverb as tm
        model, weights = tm.build_model(), "digits_reverb.pt"
    else:
        import train_digits_lif as tm
        model, weights = tm.build_model(), "digits_lif.pt"
    model.load_state_dict(torch.load(ROOT / "models" / weights, weights_only=True))
    model.eval()
    export_program(model, torch.from_numpy(X[:2]), tmp_path / "snn.pt2")
    np.save(tmp_path / "cal.npy", X[:200])
    cmd = [sys.executable, "-m", "neurodeploy", "compile", str(tmp_path / "snn.pt2"), "--scheme", scheme,
           "--timesteps", "4", "--calibration", str(tmp_path / "cal.npy"), "-o", str(tmp_path / "cli")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    direct = nd.compile(model, X[:2], scheme=scheme, timesteps=4, calibration=X[:200])
    direct.save(tmp_path / "api")
    assert (tmp_path / "cli" / "params.npz").read_bytes() == (tmp_path / "api" / "params.npz").read_bytes()
    y = nd.simulate(nd.load(tmp_path / "cli"), X[:50])
    assert np.array_equal(y, nd.simulate(direct, X[:50]))


def test_reverb_verifies_from_its_pt2_on_the_command_line(tmp_path):
    """`neurodeploy verify DIR --model snn.pt2` runs the float ReverB SNN from its per-step program
    (schemes.reverb.float_model over T steps): the same outputs as the nn.Module, the same report as nd.verify."""
    import subprocess
    import train_digits_reverb as tm
    from neurodeploy.nn.program import export_program
    from neurodeploy.reports.verify import float_snn_from_file
    from neurodeploy.train.fit import predict
    model = tm.build_model()
    model.load_state_dict(torch.load(ROOT / "models" / "digits_reverb.pt", weights_only=True))
    model.eval()
    export_program(model, torch.from_numpy(X[:2]), tmp_path / "snn.pt2")
    net = nd.compile(model, X[:2], scheme="reverb", timesteps=4, calibration=X[:200])
    net.save(tmp_path / "net")
    from_file = float_snn_from_file(tmp_path / "snn.pt2", net.graph, X[:100], 4, 64)
    np.testing.assert_allclose(from_file, predict(model, X[:100], 4), rtol=1e-4, atol=1e-5)
    np.save(tmp_path / "y.npy", Y)
    r = subprocess.run([sys.executable, "-m", "neurodeploy", "verify", str(tmp_path / "net"), "--model",
                        str(tmp_path / "snn.pt2"), "--input", str(ROOT / "models" / "digits_test_x.npy"),
                        "--labels", str(tmp_path / "y.npy"), "--json"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    want = nd.verify(net, model, X, Y)
    got = json.loads(r.stdout)
    assert got["accuracy"] == want["accuracy"] and got["agreement"] == want["agreement"]


def test_cuba_verify_from_a_file_says_to_use_python(tmp_path):
    from neurodeploy.reports.verify import float_snn_from_file
    import train_digits_lif as tl
    model = tl.build_model()
    model.load_state_dict(torch.load(ROOT / "models" / "digits_lif.pt", weights_only=True))
    net = nd.compile(model.eval(), X[:2], scheme="cuba", timesteps=4, calibration=X[:200])
    with pytest.raises(NeurodeployError, match="nn.Module"):
        float_snn_from_file(tmp_path / "lif.pt2", net.graph, X[:4], 4, 4)
