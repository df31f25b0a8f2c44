"""The `reverb` simulator (neurodeploy/schemes/reverb/kernel.py): hand-checked integer traces of the
ReverbNeuron, and random reverb networks through nd.simulate against an independent
per-sample numpy loop written from the `neurodeploy.schemes.reverb.neurons` docstrings."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import neurodeploy as nd
import reverb_netgen
from neurodeploy.errors import NeurodeployError
from neurodeploy.schemes.reverb import neurons as rv
from neurodeploy.ir import serialize
from neurodeploy.ir import synapses as syn
from neurodeploy.sim import engine
from neurodeploy.schemes.reverb import costs as reverb_costs
from neurodeploy.schemes.reverb import kernel as rsim
from conftest import ROOT  # noqa: E402



# --------------------------------------------------------------------------- one neuron by hand

def test_subthreshold_leak_rounds_toward_zero():
    # dv = 3072: v <- v·1024 >> 12 in magnitude.  100 -> 25 -> 6 (6.25) -> 1 (1.5) - 7 = -6 -> -1 (-1.5)
    p, v = rsim.reference_neuron([100, 0, 0, -7, 0], dv=3072, v_th=1000)
    assert p == [0, 0, 0, 0, 0]
    assert v == [100, 25, 6, -6, -1]


def test_decay_helpers_agree():
    v = np.array([-8388607, -4097, -5, -1, 0, 1, 5, 4097, 8388607])
    for dv in (0, 1, 1024, 3072, 4095):
        np.testing.assert_array_equal(rsim.decay(torch.as_tensor(v), dv).numpy(), rv.decay_toward_zero(v, dv))


def test_firing_emits_scaled_rounded_value_and_resets():
    # no leak, threshold 10, emit (3v + 2) >> 2
    p, v = rsim.reference_neuron([12, 5, 6, 9], dv=0, v_th=10, out_mant=3, out_shift=2)
    assert p == [(36 + 2) >> 2, 0, (33 + 2) >> 2, 0] == [9, 0, 8, 0]
    assert v == [0, 5, 0, 9]
    # round half up: 10 / 4 = 2.5 -> 3
    p, _ = rsim.reference_neuron([10], dv=0, v_th=10, out_mant=1, out_shift=2)
    assert p == [3]


def test_threshold_is_inclusive_and_zero_threshold_sends_nothing_for_zero():
    p, v = rsim.reference_neuron([7, 0, -3], dv=0, v_th=7)
    assert p == [7, 0, 0] and v == [0, 0, -3]
    p, v = rsim.reference_neuron([0, -1, 4], dv=0, v_th=0)       # V_th = 0: v = 0 fires a zero payload
    assert p == [0, 0, 3] and v == [0, -1, 0]            # -1 + 4 = 3 (no leak)


def test_saturation_of_state_and_payload():
    big = 1 << 23
    p, v = rsim.reference_neuron([big, big, -3 * big, -big], dv=0, v_th=1 << 24)
    assert p == [0, 0, 0, 0]
    assert v == [big - 1, big - 1, -(big - 1), -(big - 1)]
    # payload clipped at 2^payload_bits - 1
    p, _ = rsim.reference_neuron([1000, 300], dv=0, v_th=0, out_mant=255, out_shift=0, payload_bits=8)
    assert p == [255, 255]
    p, _ = rsim.reference_neuron([1000], dv=0, v_th=0, out_mant=255, out_shift=0, payload_bits=16)
    assert p == [65535]
    # bias is added every step
    p, v = rsim.reference_neuron([0, 0, 0], dv=0, v_th=25, bias=10)
    assert p == [0, 0, 30] and v == [10, 20, 0]


def test_digest_vector_4_6_scaled_to_integers():
    # τ = 0.25 (dv = 3072), V_th = 0.25, I = [0.4, 0.5, 0.1, 0.2]: O = [0.4, 0.5, 0, 0], U_4 = 0.225
    p, v = rsim.reference_neuron([400, 500, 100, 200], dv=rv.decay_mant_for(0.25), v_th=250)
    assert rv.decay_mant_for(0.25) == 3072
    assert p == [400, 500, 0, 0]
    assert v == [0, 0, 100, 225]


def test_digest_bn_fold_vector_4_6():
    # folded neuron: threshold 0.0625, bias -0.175, emit 4·Ũ; J = [0.15, 0.3, -0.1, 0.25] -> O = [0, 0.475, 0, 0]
    s = 100000
    p, v = rsim.reference_neuron([15000, 30000, -10000, 25000], dv=3072, v_th=6250, out_mant=4,
                                 payload_bits=16, bias=-17500)
    assert p == [0, 47500, 0, 0]
    assert v == [-2500, 0, -27500, 625]              # Ũ_4 = 0.00625 = U_4 / s with U_4 = 0.025
    assert p[1] / s == pytest.approx(0.475)


def test_per_channel_threshold_and_out_mant():
    neuron = rv.ReverbNeuron(dv=0, v_th_mant=np.array([5, 50]), out_mant=np.array([1, 3]), out_shift=1,
                             payload_bits=8, timesteps=2)
    a = torch.tensor([[[[6]], [[60]]], [[[4]], [[4]]]]).reshape(1, 2, 2, 1, 1)    # (N, T, C, H, W)
    p, v = rsim.neuron_run(a, torch.tensor(0), neuron)
    # channel 0: 6 >= 5 -> (6 + 1) >> 1 = 3; then 4 < 5.  channel 1: 60 -> (180 + 1) >> 1 = 90; then 4
    assert p[0, :, 0, 0, 0].tolist() == [3, 0]
    assert p[0, :, 1, 0, 0].tolist() == [90, 0]
    assert v[0, :, 0, 0].tolist() == [4, 4]


def test_per_neuron_threshold_and_out_mant():
    # a (C, H, W) = (2, 1, 2) layer whose v_th_mant and out_mant are per neuron (schemes.reverb.neurons.neuron_field)
    neuron = rv.ReverbNeuron(dv=0, v_th_mant=np.array([[[5, 0]], [[50, 7]]]), out_mant=np.array([[[1, 3]], [[2, 5]]]),
                             out_shift=1, payload_bits=8, timesteps=1)
    a = torch.tensor([[[6, 4]], [[40, 7]]]).reshape(1, 1, 2, 1, 2)           # (N, T, C, H, W)
    p, v = rsim.neuron_run(a, torch.tensor(0), neuron)
    # (6·1 + 1) >> 1 = 3;  (4·3 + 1) >> 1 = 6;  40 < 50 keeps v = 40;  7 ≥ 7: (7·5 + 1) >> 1 = 18
    assert p[0, 0].tolist() == [[[3, 6]], [[0, 18]]]
    assert v[0].tolist() == [[[0, 0]], [[40, 0]]]
    # the per-channel form is the per-neuron form broadcast over H, W
    per_chan = rv.ReverbNeuron(dv=0, v_th_mant=np.array([5, 7]), out_mant=np.array([3, 5]), out_shift=1,
                               payload_bits=8, timesteps=1)
    per_neuron = rv.ReverbNeuron(dv=0, v_th_mant=rv.neuron_field(per_chan.v_th_mant, (2, 1, 2)),
                                 out_mant=rv.neuron_field(per_chan.out_mant, (2, 1, 2)), out_shift=1,
                                 payload_bits=8, timesteps=1)
    zero = torch.tensor(0)
    assert torch.equal(rsim.neuron_run(a, zero, per_chan)[0], rsim.neuron_run(a, zero, per_neuron)[0])


def test_neuron_field_broadcasting_rule():
    shape = (2, 3, 4)
    assert rv.neuron_field(7, shape).shape == shape and np.all(rv.neuron_field(7, shape) == 7)
    per_chan = rv.neuron_field(np.array([1, 2]), shape)
    assert np.array_equal(per_chan[:, 2, 3], [1, 2]) and np.all(per_chan[1] == 2)
    full = np.arange(24).reshape(shape)
    assert np.array_equal(rv.neuron_field(full, shape), full)
    assert np.array_equal(rv.neuron_field(np.array([4, 5, 6]), (3,)), [4, 5, 6])     # dense: per feature
    for bad in (np.zeros(3), np.zeros((2, 3)), np.zeros((2, 4, 3))):
        with pytest.raises(ValueError, match="neither"):
            rv.neuron_field(bad, shape)


def test_malformed_out_mant_is_refused_naming_the_layer():
    graph = reverb_netgen.random_graph(0, 2, 8)
    graph.layers[1].neuron.out_mant = np.ones(graph.layers[1].shape[0] + 1, dtype=np.int64)
    with pytest.raises(NeurodeployError, match="conv1.*out_mant"):
        nd.simulate(graph, reverb_netgen.random_inputs(graph, 2))


# --------------------------------------------------------------------------- independent reference

def _conv(x, w, pad):
    """Naive cross-correlation, stride 1: x (C, H, W), w (O, C, kh, kw), int64."""
    c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((c, h + 2 * pad, wd + 2 * pad), dtype=np.int64)
    xp[:, pad:pad + h, pad:pad + wd] = x
    out = np.zeros((o, h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1), dtype=np.int64)
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[:, i, j] = np.einsum("ocij,cij->o", w, xp[:, i:i + kh, j:j + kw])
    return out


def _pool(x, k, reduce):
    c, h, w = x.shape
    return reduce(x[:, :h // k * k, :w // k * k].reshape(c, h // k, k, w // k, k), axis=(2, 4))


def _apply(op, x):
    if isinstance(op, syn.Conv):
        assert tuple(op.stride) == (1, 1) and op.groups == 1 and op.padding[0] == op.padding[1]
        return _conv(x, np.asarray(op.weight, dtype=np.int64), op.padding[0])
    if isinstance(op, syn.SumPool):
        return _pool(x, op.kernel[0], np.sum)
    if isinstance(op, syn.MaxPool) and any(op.padding):     # 3x3/2 padded: a loop over windows
        top, bottom, left, right = op.padding
        xp = np.pad(x, ((0, 0), (top, bottom), (left, right)), constant_values=-1)   # payloads >= 0
        (kh, kw), (sh, sw) = op.kernel, op.stride
        oh, ow = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
        return np.array([[[xp[c, i * sh:i * sh + kh, j * sw:j * sw + kw].max() for j in range(ow)]
                          for i in range(oh)] for c in range(x.shape[0])])
    if isinstance(op, syn.MaxPool):
        return _pool(x, op.kernel[0], np.max)
    if isinstance(op, syn.Flatten):
        return x.reshape(-1)
    if isinstance(op, syn.Dense):
        return np.asarray(op.weight, dtype=np.int64) @ x
    raise TypeError(op)


def _chan(a, shape):
    a = np.asarray(a, dtype=np.int64)
    return a.reshape((-1,) + (1,) * (len(shape) - 1)) if a.ndim == 1 else a


def reference_forward(graph, x_one):
    """One sample, written from schemes/reverb/neurons.py: payload trains {layer: (T, *shape)} and readout v."""
    enc = graph.input
    t_steps = enc.neuron.timesteps
    code = np.clip(np.floor(x_one.astype(np.float64) * float(enc.in_scale) + float(enc.offset)),
                   0, enc.neuron.code_max).astype(np.int64)
    trains = {enc.name: [code] * t_steps}                      # the code at each of the T steps
    for layer in graph.neuron_layers():
        n = layer.neuron
        bias = _chan(layer.bias_mant, layer.shape) << layer.bias_exp
        v = np.zeros(layer.shape, dtype=np.int64)
        out = []
        for t in range(t_steps):
            a_in = np.zeros(layer.shape, dtype=np.int64)
            for b in layer.branches:
                s = trains[b.source][t]
                for op in b.ops:
                    s = _apply(op, s)
                s = s << b.weight_exp
                assert np.abs(s).max() < (1 << 23)             # the test graphs never reach Lava's conv wrap
                a_in += s.reshape(layer.shape)
            if isinstance(n, rv.ReverbReadout):
                v = v + a_in + bias
                continue
            v = np.sign(v) * ((np.abs(v) * (4096 - n.dv)) >> 12)
            v = np.clip(v + a_in + bias, -(2 ** 23 - 1), 2 ** 23 - 1)
            fired = v >= _chan(n.v_th_mant, layer.shape)
            p = np.clip((v * _chan(n.out_mant, layer.shape) + ((1 << n.out_shift) >> 1)) >> n.out_shift,
                        0, 2 ** n.payload_bits - 1)
            out.append(np.where(fired, p, 0))
            v = np.where(fired, 0, v)
        if isinstance(n, rv.ReverbReadout):
            return {k: np.stack(tr) for k, tr in trains.items()}, v
        trains[layer.name] = out
    raise AssertionError("no readout")


CASES = [(seed, t, bits, pool, real)
         for seed, t, bits, pool, real in [(0, 1, 8, "sum", False), (1, 2, 8, "max", False), (2, 4, 8, "sum", True),
                                           (3, 4, 16, "max", True), (4, 3, 16, "sum", False), (5, 4, 16, "max", False),
                                           (6, 3, 8, "max_padded", False), (7, 4, 16, "max_padded", True)]]


@pytest.mark.parametrize("seed,t,bits,pool,real", CASES)
def test_simulator_matches_independent_loop(seed, t, bits, pool, real):
    _check_against_loop(reverb_netgen.random_graph(seed, t, bits, pool, real), seed)


@pytest.mark.parametrize("seed,t,bits,pool", [(23, 4, 8, "sum"), (21, 3, 16, "max")])
def test_per_neuron_fields_match_independent_loop(seed, t, bits, pool):
    graph = reverb_netgen.random_graph(seed, t, bits, pool, per_neuron=True)
    conv1 = graph.layers[1]
    assert np.asarray(conv1.neuron.out_mant).shape == tuple(conv1.shape)
    # the per-neuron multipliers really vary within a channel
    assert all(np.ptp(m) > 0 for m in np.asarray(conv1.neuron.out_mant))
    run = _check_against_loop(graph, seed)
    assert int((run.trains["conv1"] != 0).sum()) > 0          # the per-neuron layer itself sent payloads


def _check_against_loop(graph, seed):
    """nd.simulate and schemes.reverb.kernel.run vs `reference_forward`, every layer's payload train and the readout."""
    assert reverb_netgen.max_branch_sum(graph) < 1 << 23
    x = reverb_netgen.random_inputs(graph, 6, seed)
    y = nd.simulate(graph, x, batch_size=4)                   # two batches
    run = rsim.run(rsim.prepare(graph), x)
    fired = 0
    for i in range(len(x)):
        trains, v = reference_forward(graph, x[i])
        for name, tr in trains.items():
            np.testing.assert_array_equal(run.trains[name][i].numpy(), tr, err_msg=f"sample {i}, layer {name}")
            if name != graph.input.name:
                fired += int((tr != 0).sum())
        np.testing.assert_array_equal(run.readout_state[i].numpy(), v)
        np.testing.assert_array_equal(y[i], (v.astype(np.float64) * graph.output.neuron.output_scale).astype(np.float32))
    assert fired > 0                                           # the hidden layers did send payloads
    return run


def test_start_step_does_not_change_the_simulation():
    g1 = reverb_netgen.random_graph(7, 4, 8, "sum")
    g2 = reverb_netgen.random_graph(7, 4, 8, "sum")
    for i, layer in enumerate(g2.neuron_layers()):
        layer.neuron.start_step = 10 * i + 5
    x = reverb_netgen.random_inputs(g1, 5, 7)
    np.testing.assert_array_equal(nd.simulate(g1, x), nd.simulate(g2, x))


def test_run_batch_codes_count_nonzero_payloads():
    graph = reverb_netgen.random_graph(8, 4, 8, "max")
    x = reverb_netgen.random_inputs(graph, 5, 8)
    prep = engine.prepare(graph)
    r = engine.run_batch(prep, x)
    run = rsim.run(prep, x)
    for name, tr in run.trains.items():
        np.testing.assert_array_equal(r.codes[name].numpy(), (tr.numpy() != 0).sum(axis=1))
        assert int(r.codes[name].sum()) == r.spikes[name]
    assert graph.output.name not in r.spikes
    # the encoder sends each nonzero code at every step
    k = engine.input_codes(graph.input, torch.as_tensor(x)).numpy()
    assert r.spikes[graph.input.name] == 4 * int((k != 0).sum())


def test_activity_counts_synaptic_ops():
    graph = reverb_netgen.random_graph(9, 2, 8, "sum", hidden=5, outputs=3)
    x = reverb_netgen.random_inputs(graph, 4, 9)
    act = reverb_costs.activity(graph, x, batch_size=3)
    run = rsim.run(rsim.prepare(graph), x)
    fc1 = run.trains["fc1"].numpy()
    # every fc1 payload reaches all 3 readout synapses (±1 weights, none zero)
    assert act.per_layer["fc1"]["synops"] == pytest.approx((fc1 != 0).sum() * 3 / len(x))
    # conv1 -> sum-pool 2x2 -> dense: each conv1 payload inside the pooled area reaches `hidden` synapses
    c1 = run.trains["conv1"].numpy()
    assert act.per_layer["conv1"]["synops"] == pytest.approx((c1 != 0).sum() * 5 / len(x))
    # input -> 3x3 pad-1 conv: fan-out = C_out x (kernel taps that land inside the output)
    code = run.trains["input"].numpy()
    h = graph.input.shape[1]
    taps = np.array([min(i + 1, h - 1) - max(i - 1, 0) + 1 for i in range(h)])
    fan = graph.layers[1].shape[0] * taps[:, None] * taps[None, :]
    expect = ((code != 0) * fan[None, None, None]).sum() / len(x)
    assert act.per_layer["input"]["synops"] == pytest.approx(expect)
    assert act.per_layer["readout"]["spikes"] == 0
    assert act.synaptic_ops == pytest.approx(sum(v["synops"] for v in act.per_layer.values()))


def test_refuses_mismatched_timesteps():
    graph = reverb_netgen.random_graph(0, 4, 8)
    graph.layers[2].neuron.timesteps = 3
    with pytest.raises(NeurodeployError, match="local steps"):
        nd.simulate(graph, reverb_netgen.random_inputs(graph, 2))


def test_cli_simulate_on_a_saved_reverb_network(tmp_path):
    graph = reverb_netgen.random_graph(11, 2, 16, "max", True)
    out = tmp_path / "net"
    out.mkdir()
    serialize.save(graph, out)
    x = reverb_netgen.random_inputs(graph, 3, 11)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "neurodeploy", "simulate", str(out), "--input", str(tmp_path / "x.npy"),
                          "--output", str(tmp_path / "y.npy")], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), nd.simulate(graph, x))


# --------------------------------------------------------------------------- engines

def assert_reverb_engines_identical(graph, x):
    """The default engine (layer inputs in one synapse call per chunk of steps, the neuron in place in
    float64) and the `steps` engine (neuron_run in int64): every payload train, final membrane,
    readout state, spike count and output."""
    a = rsim.run(engine.prepare(graph), x)
    b = rsim.run(engine.prepare(graph, engine="steps"), x)
    assert sorted(a.trains) == sorted(b.trains) and sorted(a.membranes) == sorted(b.membranes)
    for name in b.trains:
        assert torch.equal(a.trains[name], b.trains[name]), name
    for name in b.membranes:
        assert torch.equal(a.membranes[name], b.membranes[name]), name
    assert torch.equal(a.readout_state, b.readout_state)
    ra = engine.run_batch(engine.prepare(graph), x)
    rb = engine.run_batch(engine.prepare(graph, engine="steps"), x)
    assert torch.equal(ra.output, rb.output) and ra.spikes == rb.spikes
    for name in rb.codes:
        assert torch.equal(ra.codes[name], rb.codes[name]), name
    assert all(int((tr != 0).sum()) > 0 for tr in b.trains.values())
    return rsim.layer_plan(engine.prepare(graph))


@pytest.mark.parametrize("seed,t,bits,pool,real", CASES + [(7, 4, 24, "sum", True), (19, 2, 24, "max", False)])
def test_reverb_engines_identical_on_random_networks(seed, t, bits, pool, real):
    """Leaks dv over 0, 1024, 3072, 4095 and others, thresholds 0 and up, out_shift 0..11, per-channel
    and per-neuron fields, sum and max pooling, payloads of 8, 16 and 24 bits."""
    graph = reverb_netgen.random_graph(seed, t, bits, pool, real, per_neuron=bool(seed % 2))
    assert_reverb_engines_identical(graph, reverb_netgen.random_inputs(graph, 24, seed))


@pytest.mark.parametrize("layer", [1, 3])
def test_reverb_engines_identical_when_lava_wraps(layer):
    """Branch sums past 2^23 (weight_exp raised by 8): Lava's Conv wraps them to 24 bits, and so do both
    engines (conv1: its Conv branch; readout: a Dense branch does not wrap, so its sums run wide)."""
    graph = reverb_netgen.random_graph(6, 2, 16, "sum", True)
    graph.layers[layer].branches[0].weight_exp += 8
    assert reverb_netgen.max_branch_sum(graph) > 1 << 23
    plan = assert_reverb_engines_identical(graph, reverb_netgen.random_inputs(graph, 16, 6))
    assert any(plan["conv1"].wraps) == (layer == 1)


def test_reverb_engines_identical_with_split_inputs():
    """fc1 sums up to 128·4 16-bit payloads (2^25): the default engine runs its synapses in float32 on two
    limbs of the payloads (W·lo + 2^b·W·hi) instead of one float64 call, with the same integers."""
    graph = reverb_netgen.random_graph(0, 3, 16, "sum", False, in_shape=(2, 8, 8), c1=8)
    plan = assert_reverb_engines_identical(graph, reverb_netgen.random_inputs(graph, 24, 0))
    assert plan["fc1"].arith.limbs[0][0] == "input" and plan["fc1"].arith.branch_dtypes == [torch.float32]


def test_reverb_engines_identical_on_the_trained_digits_model(digits):
    sys.path.insert(0, str(ROOT / "models"))
    from train_digits_reverb import build_model
    import json
    model = build_model()
    model.load_state_dict(torch.load(ROOT / "models" / "digits_reverb.pt", weights_only=True))
    t = json.loads((ROOT / "models" / "digits_reverb.json").read_text())["timesteps"]
    x = digits[0]
    net = nd.compile(model.eval(), x[:2], scheme="reverb", timesteps=t, payload_bits=16, calibration=x)
    assert_reverb_engines_identical(net.graph, x[:128])
