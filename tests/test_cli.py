"""The command line end to end, and what users see when they hand us something wrong."""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import netgen

from conftest import ROOT

MODEL = ROOT / "models" / "digits_qcfs.onnx"
X = ROOT / "models" / "digits_test_x.npy"
Y = ROOT / "models" / "digits_test_y.npy"


def run(*args, cwd=None, env=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "neurodeploy", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def assert_clean_error(res, *needles):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)


def test_compile_simulate_verify(tmp_path):
    out = tmp_path / "out"
    r = run("compile", MODEL, "--target", "loihi2", "--scheme", "bitplane", "-o", out)
    assert r.returncode == 0, r.stderr
    assert (out / "ir.json").is_file() and (out / "summary.md").is_file()
    r = run("simulate", out, "--input", X, "--output", tmp_path / "logits.npy")
    assert r.returncode == 0, r.stderr
    logits = np.load(tmp_path / "logits.npy")
    assert logits.dtype == np.float32 and logits.shape == (450, 10)
    assert np.mean(logits.argmax(1) == np.load(Y)) > 0.95
    r = run("verify", out, "--model", MODEL, "--input", X, "--labels", Y, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["guarantee_holds"] and all(l["conversion_mismatches"] == 0 for l in res["layers"])
    r = run("verify", out, "--model", MODEL, "--input", X, "--labels", Y)
    assert "EXACT" in r.stdout and "quantised ANN" in r.stdout


def test_simulate_engines_and_devices(tmp_path):
    """--engine planes writes the same bytes as the default engine; an engine the scheme lacks and a
    CUDA device on a machine without one (CUDA_VISIBLE_DEVICES hides any GPU) are one-line errors."""
    out = tmp_path / "net"
    assert run("compile", MODEL, "-o", out).returncode == 0
    for engine in ("neurodeploy", "planes"):
        r = run("simulate", out, "--input", X, "--output", tmp_path / f"{engine}.npy", "--engine", engine)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "neurodeploy.npy").read_bytes() == (tmp_path / "planes.npy").read_bytes()
    no_gpu = {"CUDA_VISIBLE_DEVICES": ""}
    r = run("simulate", out, "--input", X, "--output", tmp_path / "cuda.npy", "--device", "cuda", env=no_gpu)
    assert_clean_error(r, "--device cuda", "no CUDA device", "--device cpu")
    assert not (tmp_path / "cuda.npy").exists()
    r = run("verify", out, "--model", MODEL, "--input", X, "--labels", Y, "--device", "cuda", env=no_gpu)
    assert_clean_error(r, "--device cuda", "no CUDA device")
    assert_clean_error(run("simulate", out, "--input", X, "--output", tmp_path / "y.npy", "--device", "tpu"),
                       "--device tpu")
    rate = tmp_path / "rate"
    assert run("compile", MODEL, "--scheme", "rate", "--timesteps", "8", "-o", rate).returncode == 0
    r = run("simulate", rate, "--input", X, "--output", tmp_path / "r.npy", "--engine", "planes")
    assert_clean_error(r, "--engine", "no 'planes' engine", "neurodeploy")


def test_compile_is_byte_reproducible(tmp_path):
    for d in ("a", "b"):
        assert run("compile", MODEL, "-o", tmp_path / d).returncode == 0
    for f in ("ir.json", "params.npz", "summary.md"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    meta = json.loads((tmp_path / "a" / "ir.json").read_text())["meta"]["dict"]
    assert meta["neurodeploy_version"] and len(meta["model"]["dict"]["sha256"]) == 64


def test_help_explains_options():
    r = run("compile", "--help")
    assert r.returncode == 0
    for opt in ("--calibration", "--timesteps", "--target", "--scheme", "--input-bits"):
        assert opt in r.stdout


# The sub-commands that write a file or a directory (each takes -o/--output), and those that only print.
WRITERS = {"compile", "simulate", "report", "compare", "export"}
PRINTERS = {"verify"}


def _subcommands() -> dict:
    """name -> the argparse parser of each `neurodeploy` sub-command (the parser the command runs)."""
    from neurodeploy.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {**sub.choices, "neurodeploy": parser}


def test_every_option_of_every_command_has_help_text():
    """--help explains every flag and positional argument (none without help, none hidden), and
    every sub-command has a one-line help in `neurodeploy --help`."""
    commands = _subcommands()
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, p in commands.items()
               for a in p._actions if not (a.help or "").strip() or a.help == argparse.SUPPRESS]
    assert missing == []
    sub = next(a for a in commands["neurodeploy"]._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(c.dest for c in sub._choices_actions if (c.help or "").strip()) == sorted(WRITERS | PRINTERS)


def test_every_command_that_writes_takes_dash_o():
    commands = _subcommands()
    assert set(commands) - {"neurodeploy"} == WRITERS | PRINTERS, "classify the new sub-command above"
    for name in WRITERS:
        outputs = [a for a in commands[name]._actions if a.dest == "output"]
        assert len(outputs) == 1 and {"-o", "--output"} <= set(outputs[0].option_strings), name
    for name in PRINTERS:
        assert not [a for a in commands[name]._actions if a.dest == "output" or "-o" in a.option_strings], name


def test_simulate_dash_o_is_output(tmp_path):
    out = tmp_path / "net"
    assert run("compile", MODEL, "-o", out).returncode == 0
    assert run("simulate", out, "--input", X, "-o", tmp_path / "short.npy").returncode == 0
    assert run("simulate", out, "--input", X, "--output", tmp_path / "long.npy").returncode == 0
    assert (tmp_path / "short.npy").read_bytes() == (tmp_path / "long.npy").read_bytes()


def _unsupported_model(path):
    b = netgen.NetBuilder((4,), 0)
    x = b.qcfs("input", 7, 1.0)
    y = b.node("Sigmoid", [b.gemm(x, 4, 3)])
    m = b.model(y, 3)
    onnx.save(m, path)


def test_unsupported_op_names_op_node_and_list(tmp_path):
    _unsupported_model(tmp_path / "m.onnx")
    r = run("compile", tmp_path / "m.onnx", "-o", tmp_path / "out")
    assert_clean_error(r, "Sigmoid", "node 'sigmoid_", "supported ONNX ops:", "Conv", "Gemm")
    assert not (tmp_path / "out").exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


@pytest.mark.parametrize("content", [b"", b"not an onnx file at all \x00\x01\x02", None])
def test_malformed_onnx_files(tmp_path, content):
    path = tmp_path / "bad.onnx"
    if content is None:  # a truncated real model
        path.write_bytes(MODEL.read_bytes()[:2000])
    else:
        path.write_bytes(content)
    r = run("compile", path, "-o", tmp_path / "out")
    assert_clean_error(r, str(path))
    assert not (tmp_path / "out").exists()


def test_missing_model_file(tmp_path):
    assert_clean_error(run("compile", tmp_path / "nope.onnx", "-o", tmp_path / "out"), "file not found")


def test_nan_weight_is_named(tmp_path):
    m = onnx.load(MODEL)
    init = m.graph.initializer
    idx = next(i for i, t in enumerate(init) if len(t.dims) == 4)
    arr = onnx.numpy_helper.to_array(init[idx]).copy()
    arr.flat[3] = np.nan
    name = init[idx].name
    init[idx].CopyFrom(onnx.numpy_helper.from_array(arr, name))
    onnx.save(m, tmp_path / "nan.onnx")
    assert_clean_error(run("compile", tmp_path / "nan.onnx", "-o", tmp_path / "out"), "NaN", name)


def test_dynamic_input_dimension(tmp_path):
    m = onnx.load(MODEL)
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    onnx.save(m, tmp_path / "dyn.onnx")
    assert_clean_error(run("compile", tmp_path / "dyn.onnx", "-o", tmp_path / "out"), "dynamic dimension")


def test_wrong_timesteps_and_scheme(tmp_path):
    assert_clean_error(run("compile", MODEL, "--timesteps", "2", "-o", tmp_path / "o"), "--timesteps 2")
    assert_clean_error(run("compile", MODEL, "--scheme", "nope", "-o", tmp_path / "o"), "unknown scheme")
    assert_clean_error(run("compile", MODEL, "--target", "nope", "-o", tmp_path / "o"), "unknown target")
    assert not (tmp_path / "o").exists()


def test_bad_inputs_to_simulate(tmp_path):
    out = tmp_path / "out"
    assert run("compile", MODEL, "-o", out).returncode == 0
    np.save(tmp_path / "wrong.npy", np.zeros((3, 1, 7, 7), np.float32))
    assert_clean_error(run("simulate", out, "--input", tmp_path / "wrong.npy", "--output", tmp_path / "y.npy"),
                       "does not match the model input")
    np.save(tmp_path / "nan.npy", np.full((3, 1, 8, 8), np.nan, np.float32))
    assert_clean_error(run("simulate", out, "--input", tmp_path / "nan.npy", "--output", tmp_path / "y.npy"),
                       "NaN")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    assert_clean_error(run("simulate", out, "--input", tmp_path / "junk.npy", "--output", tmp_path / "y.npy"),
                       "junk.npy")
    assert_clean_error(run("simulate", tmp_path, "--input", X, "--output", tmp_path / "y.npy"),
                       "no compiled network")
    assert not (tmp_path / "y.npy").exists()


def test_output_directory_of_another_ir_version(tmp_path):
    out = tmp_path / "out"
    assert run("compile", MODEL, "-o", out).returncode == 0
    doc = json.loads((out / "ir.json").read_text())
    doc["ir_version"] = 999
    (out / "ir.json").write_text(json.dumps(doc))
    assert_clean_error(run("simulate", out, "--input", X, "--output", tmp_path / "y.npy"),
                       "IR version 999", "recompile")


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    assert_clean_error(run("compile", MODEL, "-o", foreign), "was not written by neurodeploy")
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_uncalibrated_float_input_needs_calibration(tmp_path):
    b = netgen.NetBuilder((6,), 0)
    x = b.qcfs(b.gemm("input", 6, 8), 7, 1.0)
    onnx.save(b.model(b.gemm(x, 8, 3), 3), tmp_path / "m.onnx")
    assert_clean_error(run("compile", tmp_path / "m.onnx", "-o", tmp_path / "o"), "--calibration")
    np.save(tmp_path / "cal.npy", netgen.random_inputs((6,), 32))
    r = run("compile", tmp_path / "m.onnx", "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    np.save(tmp_path / "y.npy", np.zeros(32, np.int64))
    r = run("verify", tmp_path / "o", "--model", tmp_path / "m.onnx", "--input", tmp_path / "cal.npy",
            "--labels", tmp_path / "y.npy")
    assert r.returncode == 0, r.stdout + r.stderr


def test_fewer_timesteps_only_with_lossy_and_verify_says_not_exact(tmp_path):
    assert_clean_error(run("compile", MODEL, "--timesteps", "3", "-o", tmp_path / "o"), "--lossy")
    r = run("compile", MODEL, "--timesteps", "3", "--lossy", "-o", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    r = run("verify", tmp_path / "o", "--model", MODEL, "--input", X, "--labels", Y)
    assert r.returncode == 1
    assert "NOT EXACT" in r.stdout and "not error-free" in r.stdout


@pytest.mark.lava
def test_simulate_engine_lava_equals_ours(tmp_path, lava):
    out = tmp_path / "out"
    assert run("compile", MODEL, "-o", out).returncode == 0
    np.save(tmp_path / "x.npy", np.load(X)[:2])
    r = run("simulate", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "lava.npy", "--engine", "lava")
    assert r.returncode == 0, r.stderr
    assert run("simulate", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "ours.npy").returncode == 0
    assert np.array_equal(np.load(tmp_path / "lava.npy"), np.load(tmp_path / "ours.npy"))


def test_network_larger_than_the_chip(tmp_path):
    spec = (ROOT / "targets" / "loihi2.toml").read_text()
    spec = spec.replace("cores_per_chip = 128", "cores_per_chip = 4").replace(
        "neurons_per_core = 8192", "neurons_per_core = 64")
    (tmp_path / "tiny.toml").write_text(spec)
    r = run("compile", MODEL, "--target", tmp_path / "tiny.toml", "-o", tmp_path / "o")
    assert_clean_error(r, "needs 13 cores", "conv1 8 cores", "--chips")
    assert not (tmp_path / "o").exists()
    assert run("compile", MODEL, "--target", tmp_path / "tiny.toml", "--chips", "4", "-o", tmp_path / "o").returncode == 0


def test_chips_auto_names_the_chips_the_network_needs(tmp_path):
    """--chips auto compiles what --chips 1 refuses and records ceil(13 cores / 4 per chip) = 4
    chips; the summary names them, the cores of every layer, and how sure each per-core limit is."""
    spec = (ROOT / "targets" / "loihi2.toml").read_text()
    spec = spec.replace("cores_per_chip = 128", "cores_per_chip = 4").replace(
        "neurons_per_core = 8192", "neurons_per_core = 64")
    (tmp_path / "tiny.toml").write_text(spec)
    r = run("compile", MODEL, "--target", tmp_path / "tiny.toml", "--chips", "auto", "-o", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    from neurodeploy import api
    meta = api.load(tmp_path / "o").graph.meta
    assert meta["allocation"]["chips"] == 4 and meta["allocation"]["chips_available"] == "auto"
    assert meta["allocation"]["total_cores"] == 13 and meta["options"]["chips"] == "auto"
    summary = (tmp_path / "o" / "summary.md").read_text()
    assert "- cores: 13 on 4 chip(s) of 4 cores -- upper bounds" in summary
    assert "; chips: as many as the network needs (--chips auto)" in summary
    assert "| conv1 | BitplaneIF | microcode | (8, 8, 8) | 512 | 8 |" in summary     # the layer's 8 cores
    assert "64 neurons per core (estimate:" in summary and "cores per chip (public:" in summary
    net = api.compile(MODEL, target=str(tmp_path / "tiny.toml"), chips="auto")
    assert net.graph.meta["allocation"]["chips"] == 4


def test_weights_too_wide_for_the_target(tmp_path):
    spec = (ROOT / "targets" / "loihi2.toml").read_text().replace("state_bits = 24", "state_bits = 8")
    (tmp_path / "narrow.toml").write_text(spec)
    assert_clean_error(run("compile", MODEL, "--target", tmp_path / "narrow.toml", "-o", tmp_path / "o"),
                       "cannot represent this layer", "layer 'conv1'")


def test_interrupted_compile_leaves_no_output(tmp_path, monkeypatch):
    """A compile that dies while writing leaves neither out/ nor a temp dir behind, and an
    existing out/ from an earlier compile stays intact."""
    from neurodeploy.compiler import compile_model, save_artifact
    from neurodeploy.ir import serialize

    net = compile_model(MODEL)
    real_npz = serialize._write_npz

    def dying_write(path, arrays):
        real_npz(path, dict(list(arrays.items())[:1]))       # half the parameters on disk...
        raise KeyboardInterrupt                              # ...then the user hits Ctrl-C

    monkeypatch.setattr(serialize, "_write_npz", dying_write)
    with pytest.raises(KeyboardInterrupt):
        save_artifact(net, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(serialize, "_write_npz", real_npz)
    save_artifact(net, tmp_path / "out")
    before = (tmp_path / "out" / "params.npz").read_bytes()
    monkeypatch.setattr(serialize, "_write_npz", dying_write)
    with pytest.raises(KeyboardInterrupt):
        save_artifact(net, tmp_path / "out")
    assert (tmp_path / "out" / "params.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.lava
def test_simulate_engine_lava_rate_network(tmp_path, lava):
    out = tmp_path / "out"
    r = run("compile", MODEL, "--scheme", "rate", "--timesteps", "8", "--reset", "zero", "-o", out)
    assert r.returncode == 0, r.stderr
    np.save(tmp_path / "x.npy", np.load(X)[:2])
    r = run("simulate", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "lava.npy", "--engine", "lava")
    assert r.returncode == 0, r.stderr
    assert run("simulate", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "ours.npy").returncode == 0
    assert np.array_equal(np.load(tmp_path / "lava.npy"), np.load(tmp_path / "ours.npy"))
