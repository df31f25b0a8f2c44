"""The `sws` scheme (TSA neurons, ternary graded spikes) in Lava's fixed_pt CPU simulation:
bit-exact with our simulator `neurodeploy.schemes.sws.kernel` - every layer's digits and decoded codes,
and the readout's weighted potential V - on random QCFS nets and the digits models.

Lava runs every process in a forked OS process: the networks are small and run a few
samples each (the whole file takes well under a minute on two cores).
"""
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import netgen
from neurodeploy.compiler import compile_model
from neurodeploy.errors import NeurodeployError
from neurodeploy.schemes.sws import neurons as tsa_ir
from neurodeploy.schemes import CompileOptions
from neurodeploy.sim import engine
from neurodeploy.schemes.sws import kernel as sws

pytestmark = pytest.mark.lava

from conftest import MODELS, ROOT


@pytest.fixture(scope="module")
def sws_lava(lava):
    from neurodeploy.schemes.sws import lava as mod
    return mod


def _assert_exact(mod, net, x, fold=True, record_digits=True):
    """Lava vs schemes.sws.kernel: codes (the neurons' E), spike counts and - when recorded - the digits
    of every layer (input included), the readout's V and the outputs."""
    prep = engine.prepare(net)
    ours = sws.run_batch(prep, x)
    _, _, _, ours_digits = sws.run_digits(prep, x, record_codes=False, keep_digits=True)
    lava = mod.run_lava(net, x, fold=fold, record_digits=record_digits)
    assert set(lava.codes) == set(ours.codes) == set(ours_digits) == set(lava.spikes)
    for name, c in ours.codes.items():
        np.testing.assert_array_equal(lava.codes[name], c.numpy(), err_msg=f"codes of {name}")
        assert lava.spikes[name] == ours.spikes[name], name
        if record_digits or name == net.input.name:
            np.testing.assert_array_equal(lava.digits[name], ours_digits[name].numpy(), err_msg=f"digits of {name}")
            np.testing.assert_array_equal(mod.decode(lava.digits[name], mod.plan_sws(net).beta), lava.codes[name])
    assert set(lava.digits) == (set(ours_digits) if record_digits else {net.input.name})
    np.testing.assert_array_equal(lava.readout_state, ours.output_state.numpy().reshape(len(x), -1))
    np.testing.assert_array_equal(lava.outputs, ours.output.numpy())
    hidden = [l.name for l in net.neuron_layers() if not l.is_readout]
    assert all(lava.spikes[h] > 0 for h in hidden), "a silent layer tests nothing"
    assert lava.steps == (len(x) - 1) * lava.period + mod.plan_sws(net, fold).span
    return lava


def _compile(path, tc=8, ts=2, beta=2):
    return compile_model(path, "loihi2", "sws", CompileOptions(coding_steps=tc, silent_steps=ts, beta=beta))


# --------------------------------------------------------------------------- neuron arithmetic
@pytest.mark.parametrize("beta,tc", [(2, 6), (3, 4)])
@pytest.mark.parametrize("ts", [0, 1, 2, 3])
@pytest.mark.parametrize("relu,full,below_s", [(True, False, 0), (False, False, 0), (True, True, 5)])
def test_process_model_arithmetic_matches_simulator(sws_lava, beta, tc, ts, relu, full, below_s):
    """tsa_update (what PyTSAModelFixed runs each step) vs schemes.sws.kernel.tsa_run: digits and final u,
    stale state at t = 1 ignored, currents after Tc ignored, code_max < S blocks +1 spikes."""
    rng = np.random.default_rng(ts + 10 * beta)
    s = tsa_ir.digit_weight_sum(beta, tc)
    neuron = tsa_ir.TSA(theta_mant=7, code_max=s - below_s, beta=beta, coding_steps=tc, silent_steps=ts,
                        relu=relu, full_threshold=full)
    amp = max(40, 7 * beta ** ts)                   # currents of the threshold's order: ±1 digits both occur
    z = rng.integers(-amp, amp + 1, (300, tc))
    want, u_want = sws.tsa_run(torch.as_tensor(z), neuron)
    p = sws_lava.TSAParams(7, s - below_s, beta, tc, ts, relu, full, 24)
    u, e = np.full(300, 999, np.int64), np.full(300, 55, np.int64)
    got = []
    for t in range(1, tc + ts + 1):
        a, u, e = sws_lava.tsa_update(u, e, z[:, t - 1] if t <= tc else np.full(300, 12345), t, p)
        if t <= ts:
            assert not a.any()
        else:
            got.append(a)
    got = np.stack(got, axis=1)
    np.testing.assert_array_equal(got, want.numpy())
    np.testing.assert_array_equal(u, u_want.numpy())
    np.testing.assert_array_equal(e, sws.decode_digits(want, beta).numpy())
    assert (got == 1).any() and ((got == -1).any() or full)     # θ thresholds rarely overshoot


def test_local_step_and_amplify(sws_lava):
    assert [sws_lava.local_step(ts, 3, 4) for ts in range(1, 12)] == [0, 0, 0, 1, 2, 3, 4, 1, 2, 3, 4]
    u = np.array([-5, 0, 7], dtype=np.int64)
    np.testing.assert_array_equal(sws_lava.amplify(u, 2), 2 * u)
    np.testing.assert_array_equal(sws_lava.amplify(u, 3), 3 * u)


# --------------------------------------------------------------------------- schedule
def test_schedule_is_sim_schedule_plus_synapse_delays(sws_lava):
    """V is ready at the scheme's latency plus one step per synapse stage on the path (minus 1:
    0-based steps); frames enter every Tc + Ts steps; skip paths are delayed."""
    calib = np.load(MODELS / "digits_resnet_calib_x.npy")
    net = compile_model(MODELS / "digits_resnet_qcfs.onnx", "loihi2", "sws",
                        CompileOptions(calibration=calib, coding_steps=8, silent_steps=2))
    plan = sws_lava.plan_sws(net)
    sch = sws.schedule(net)
    assert plan.period == sch["throughput_steps"] == 10
    stages = {net.input.name: 0}
    for layer in net.neuron_layers():
        lp = plan.layers[layer.name]
        stages[layer.name] = max(stages[b.source] + b.latency for b in lp.branches)
        start = max(sch["offsets"][b.source] for b in lp.branches)        # sim: first input digit
        assert lp.first_step == start + stages[layer.name]
        for b in lp.branches:
            assert b.delay == sch["branch_delays"][layer.name][b.source] + \
                stages[layer.name] - stages[b.source] - b.latency
    assert plan.layers[net.output.name].emit_start == sch["latency_steps"] - 1 + stages[net.output.name]
    assert any(b.delay > 0 for lp in plan.layers.values() for b in lp.branches)


# --------------------------------------------------------------------------- bit-exact runs
def _random_net(kind: str, path: Path, seed: int = 0):
    if kind == "dense":
        onnx.save(netgen.dense_net(seed), path)
        return netgen.random_inputs((12,), 3, seed=seed + 7)
    if kind == "conv":
        onnx.save(netgen.conv_net(seed), path)
        return netgen.random_inputs((2, 8, 8), 3, seed=seed + 7)
    onnx.save(netgen.residual_net(seed), path)
    return netgen.random_inputs((3, 8, 8), 2, seed=seed + 7)


@pytest.mark.parametrize("kind,beta,tc,ts,fold", [
    ("dense", 2, 8, 0, True), ("dense", 2, 8, 1, True), ("dense", 2, 8, 2, True),
    ("conv", 2, 8, 2, True), ("conv", 2, 6, 1, False),          # unfolded: pooling through a GradedRelay
    ("residual", 2, 8, 1, True), ("residual", 2, 8, 2, True),
    ("dense", 3, 5, 1, True), ("conv", 3, 4, 2, True),           # balanced ternary input digits
])
def test_random_net_bit_exact_with_lava(sws_lava, tmp_path, kind, beta, tc, ts, fold):
    x = _random_net(kind, tmp_path / "m.onnx", seed=tc + ts)
    net = _compile(tmp_path / "m.onnx", tc, ts, beta)
    lava = _assert_exact(sws_lava, net, x, fold)
    if beta == 3:
        assert (lava.digits[net.input.name] == -1).any()
    if not fold:                                             # a GradedRelay between two synapse stages
        assert any(len(b.stages) > 1 for lp in sws_lava.plan_sws(net, fold=False).layers.values() for b in lp.branches)


def test_negative_spikes_travel_through_lava(sws_lava, tmp_path):
    """β = 2, Ts = 0: hidden layers emit −1 digits (a neuron correcting an early +1); Lava
    carries them as graded payloads and stays exact."""
    x = _random_net("dense", tmp_path / "m.onnx", seed=3)
    net = _compile(tmp_path / "m.onnx", 8, 0)
    lava = _assert_exact(sws_lava, net, x)
    hidden = [l.name for l in net.neuron_layers() if not l.is_readout]
    assert any((lava.digits[h] == -1).any() for h in hidden)


def test_full_threshold_ablation_bit_exact(sws_lava, tmp_path):
    """The paper's ablation (threshold θ instead of θ/2) reaches the process model through its Var."""
    x = _random_net("dense", tmp_path / "m.onnx", seed=5)
    net = compile_model(tmp_path / "m.onnx", "loihi2", "sws",
                        CompileOptions(coding_steps=8, silent_steps=1, full_threshold=True))
    assert all(l.neuron.full_threshold for l in net.neuron_layers() if not l.is_readout)
    _assert_exact(sws_lava, net, x, record_digits=False)


def test_digits_bit_exact_with_lava(sws_lava):
    calib = np.load(MODELS / "digits_calib_x.npy")
    net = compile_model(MODELS / "digits_qcfs.onnx", "loihi2", "sws",
                        CompileOptions(calibration=calib, coding_steps=8, silent_steps=2))
    x = np.load(MODELS / "digits_test_x.npy")[:3]
    _assert_exact(sws_lava, net, x)


def test_digits_resnet_bit_exact_with_lava(sws_lava):
    calib = np.load(MODELS / "digits_resnet_calib_x.npy")
    net = compile_model(MODELS / "digits_resnet_qcfs.onnx", "loihi2", "sws",
                        CompileOptions(calibration=calib, coding_steps=8, silent_steps=1))
    x = np.load(MODELS / "digits_resnet_test_x.npy")[:3]
    _assert_exact(sws_lava, net, x, record_digits=False)      # no spike sinks: codes from the neurons' E


# --------------------------------------------------------------------------- refusals, CLI
def test_refuses_other_schemes_and_wide_state(sws_lava, tmp_path):
    onnx.save(netgen.dense_net(0), tmp_path / "m.onnx")
    with pytest.raises(NeurodeployError, match="`sws` graphs only"):
        sws_lava.check_graph(compile_model(tmp_path / "m.onnx", "loihi2", "bitplane"))
    wide = compile_model(tmp_path / "m.onnx", "cpu", "sws", CompileOptions(coding_steps=8, silent_steps=1))
    with pytest.raises(NeurodeployError, match="int32"):
        sws_lava.check_graph(wide)


def test_model_error_is_reported_not_a_deadlock(sws_lava, tmp_path, monkeypatch):
    """An exception inside the TSA process model (Lava forks, so the patch reaches it) ends
    the run and surfaces as a NeurodeployError naming the layers."""
    x = _random_net("dense", tmp_path / "m.onnx")
    net = _compile(tmp_path / "m.onnx", 8, 1)

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(sws_lava, "tsa_update", broken)
    with pytest.raises(NeurodeployError, match="dense1"):
        sws_lava.run_lava(net, x[:1])


def test_cli_simulate_engine_lava_sws(sws_lava, tmp_path):
    import subprocess
    import os
    import sys

    def run(*args):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "neurodeploy", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=600)

    out = tmp_path / "out"
    r = run("compile", MODELS / "digits_qcfs.onnx", "--scheme", "sws", "--coding-steps", "8",
            "--silent-steps", "1", "--calibration", MODELS / "digits_calib_x.npy", "-o", out)
    assert r.returncode == 0, r.stderr
    np.save(tmp_path / "x.npy", np.load(MODELS / "digits_test_x.npy")[:2])
    r = run("simulate", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "lava.npy", "--engine", "lava")
    assert r.returncode == 0, r.stderr
    assert run("simulate", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "ours.npy").returncode == 0
    assert np.array_equal(np.load(tmp_path / "lava.npy"), np.load(tmp_path / "ours.npy"))


# --------------------------------------------------------------------------- state overflow
@pytest.mark.parametrize("bits", [10, 14])
def test_wrapping_arithmetic_matches_simulator(sws_lava, bits):
    """With a state register too narrow for the currents, tsa_update (Lava) and schemes.sws.kernel.tsa_run
    wrap identically: same digits, same final u, and the simulator flags the wrapped neurons."""
    rng = np.random.default_rng(bits)
    tc, ts = 6, 2
    neuron = tsa_ir.TSA(theta_mant=5, code_max=tsa_ir.digit_weight_sum(2, tc), beta=2, coding_steps=tc,
                        silent_steps=ts, relu=True)
    amp = np.where(np.arange(400) % 2 == 0, 2, 3000)[:, None]     # half the rows stay in range
    z = rng.integers(-amp, amp + 1, (400, tc))
    ov = []
    want, u_want = sws.tsa_run(torch.as_tensor(z), neuron, state_bits=bits, overflow=ov)
    p = sws_lava.TSAParams(5, neuron.code_max, 2, tc, ts, True, False, bits)
    u, e = np.zeros(400, np.int64), np.zeros(400, np.int64)
    got = []
    for t in range(1, tc + ts + 1):
        a, u, e = sws_lava.tsa_update(u, e, z[:, t - 1] if t <= tc else 0, t, p)
        if t > ts:
            got.append(a)
    np.testing.assert_array_equal(np.stack(got, axis=1), want.numpy())
    np.testing.assert_array_equal(u, u_want.numpy())
    assert 0 < int(ov[0].sum()) < 400                          # some neurons wrapped, some did not
    unwrapped, _ = sws.tsa_run(torch.as_tensor(z), neuron)
    assert not torch.equal(unwrapped, want)                     # the wrap changed digits: a real test


def test_state_overflow_is_bit_exact_with_lava(sws_lava, tmp_path):
    """A calibrated state bound from one tiny calibration sample and no margin: ordinary inputs
    overflow the 24-bit membranes.  The simulator reports the overflows and still equals Lava
    bit for bit (both wrap the register)."""
    onnx.save(netgen.dense_net(0), tmp_path / "m.onnx")
    x = netgen.random_inputs((12,), 64, seed=7)
    net = compile_model(tmp_path / "m.onnx", "loihi2", "sws",
                        CompileOptions(calibration=x[:1] * 0.1, state_bound="calibrated", state_margin=1.0,
                                   coding_steps=8, silent_steps=2))
    xs = x[:4]
    over = sws.state_overflows(net, xs)
    assert sum(over.values()) > 0, over
    _assert_exact(sws_lava, net, xs, record_digits=False)
