"""The bitplane codes engine (U = W·code, the default) equals the planes engine (the chip's order of
work: every plane through the synapses, Horner sums, threshold-by-threshold emission) bit for bit:
every layer's spike planes, codes, spike counts, membrane U after accumulation, U left after the
emission, and the readout state."""
import dataclasses

import numpy as np
import onnx
import pytest
import torch

import netgen
from conftest import MODELS
from neurodeploy.compiler import compile_model
from neurodeploy.errors import NeurodeployError
from neurodeploy.schemes import CompileOptions
from neurodeploy.schemes.bitplane import kernel as bp
from neurodeploy.sim import engine
from neurodeploy.sim.reference import reference
from test_bitplane_exact import NETS


def both(net, x):
    codes = bp.run(engine.prepare(net), x, keep_states=True)
    planes = bp.run(engine.prepare(net, engine="planes"), x, keep_states=True)
    return codes, planes


def assert_identical(net, x):
    a, b = both(net, x)
    hidden = [l.name for l in net.neuron_layers() if not l.is_readout]
    assert sorted(a.planes) == sorted(b.planes) == sorted([net.input.name] + hidden)
    for name in b.planes:
        assert torch.equal(a.planes[name], b.planes[name]), name
        assert torch.equal(a.codes[name], b.codes[name]), name
    for name in hidden:
        assert torch.equal(a.membranes[name], b.membranes[name]), name
        assert torch.equal(a.residuals[name], b.residuals[name]), name
    assert a.spikes == b.spikes
    assert torch.equal(a.readout_state, b.readout_state)
    ra = engine.run_batch(engine.prepare(net), x)
    rb = engine.run_batch(engine.prepare(net, engine="planes"), x)
    assert torch.equal(ra.output, rb.output) and torch.equal(ra.output_state, rb.output_state)
    # the membranes must exercise the emission: some neurons below 0, some between, some clamped
    # above code_max·D
    layers = {l.name: l for l in net.layers}
    cap = torch.cat([(b.membranes[n] - layers[n].neuron.code_max * layers[n].neuron.v_th_mant).flatten()
                     for n in hidden])
    u = torch.cat([b.membranes[n].flatten() for n in hidden])
    assert (u < 0).any() and ((u > 0) & (cap < 0)).any() and (cap > 0).any()
    return a


@pytest.mark.parametrize("kind", sorted(NETS))
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("target", ["loihi2", "cpu"])
def test_random_networks_engines_identical(tmp_path, kind, seed, target):
    path = tmp_path / "m.onnx"
    onnx.save(NETS[kind](seed), path)
    net = compile_model(path, target, "bitplane")
    assert_identical(net, netgen.random_inputs(net.input.shape, 48, seed=seed + 20))


@pytest.mark.parametrize("stem", ["digits_qcfs", "digits_resnet_qcfs"])
def test_digits_networks_engines_identical(stem, digits):
    net = compile_model(MODELS / f"{stem}.onnx", "loihi2", "bitplane")
    x = np.load(MODELS / "digits_resnet_test_x.npy") if "resnet" in stem else digits[0]
    r = assert_identical(net, x)
    codes, u = reference(net, x)               # and both equal the integer reference
    for name, c in codes.items():
        assert np.array_equal(r.codes[name].numpy(), c), name
    assert np.array_equal(r.readout_state.numpy(), u)


@pytest.mark.parametrize("timesteps", [1, 2])
def test_lossy_networks_engines_identical(timesteps, digits):
    net = compile_model(MODELS / "digits_qcfs.onnx", "loihi2", "bitplane", CompileOptions(timesteps=timesteps, lossy=True))
    assert_identical(net, digits[0][:128])


def _with_weight_exp(net, layer_name: str, extra: int):
    """The network with one layer's weight exponents raised by `extra` (and its bias with them):
    larger sums than a compiler would emit, to drive the codes engine into wider arithmetic."""
    layers = []
    for layer in net.layers:
        if layer.name == layer_name:
            layer = dataclasses.replace(layer, branches=[dataclasses.replace(b, weight_exp=b.weight_exp + extra)
                                                         for b in layer.branches],
                                    bias_exp=layer.bias_exp + extra,
                                    neuron=dataclasses.replace(layer.neuron, v_th_mant=layer.neuron.v_th_mant << extra))
        layers.append(layer)
    return dataclasses.replace(net, layers=layers)


@pytest.mark.parametrize("extra, dtype", [(0, torch.float32), (7, torch.float64), (36, torch.int64)])
def test_exact_dtype_per_layer_from_static_bounds(extra, dtype, digits):
    """The codes engine sizes each layer's arithmetic by max |U| + D: conv2 of the digits network fits
    float32 as compiled (Σ|W|·15 is 2^17.2), needs float64 with its sums scaled by 2^7 (2^24.2) and
    int64 scaled by 2^36 (2^53.2), while its synapse call on the codes stays float32 (the scaling is
    applied afterwards); every variant stays bit-identical to the planes engine."""
    net = _with_weight_exp(compile_model(MODELS / "digits_qcfs.onnx", "loihi2", "bitplane"), "conv2", extra)
    plan = bp.code_plan(engine.prepare(net))
    assert plan["conv2"].dtype == dtype and plan["conv2"].branch_dtypes == [torch.float32]
    assert plan["conv2"].fused == (extra == 0)
    assert plan["conv1"].dtype == torch.float32 and plan["conv1"].fused
    assert_identical(net, digits[0][:96])


def test_unknown_engine_is_refused(digits):
    net = compile_model(MODELS / "digits_qcfs.onnx", "loihi2", "rate")
    with pytest.raises(NeurodeployError, match="no 'planes' engine"):
        engine.prepare(net, engine="planes")


def test_api_simulate_engine(digits):
    import neurodeploy as nd
    net = compile_model(MODELS / "digits_qcfs.onnx", "loihi2", "bitplane")
    x = digits[0][:64]
    assert np.array_equal(nd.simulate(net, x), nd.simulate(net, x, engine="planes"))


@pytest.mark.parametrize("engine_name", ["neurodeploy", "planes"])
def test_streaming_frees_each_source_after_its_last_reader(monkeypatch, engine_name):
    """A run that records no states holds a layer's codes / planes only until the last layer that reads
    them (on the residual network, a block's input is read twice: by its first conv and by the skip
    connection): what remains after each layer is exactly the sources that a later layer still reads,
    and the outputs equal those of the run that keeps every layer."""
    net = compile_model(MODELS / "digits_resnet_qcfs.onnx", "loihi2", "bitplane")
    x = np.load(MODELS / "digits_resnet_test_x.npy")[:32]
    layers = net.neuron_layers()
    readers = {}
    for i, layer in enumerate(layers):
        for b in layer.branches:
            readers.setdefault(b.source, set()).add(i)
    assert any(len(r) > 1 for r in readers.values()), "the network must have a source read by two layers"
    held = []
    real = bp.core.release_sources

    def spy(prep, layer, remaining, *stores):
        real(prep, layer, remaining, *stores)
        held.append((layer.name, set(stores[0])))
    monkeypatch.setattr(bp.core, "release_sources", spy)
    prep = engine.prepare(net, engine=engine_name)
    streamed = engine.run_batch(prep, x, record_codes=False)
    assert [name for name, _ in held] == [l.name for l in layers]
    for i, (name, keys) in enumerate(held):
        done = {net.input.name} | {l.name for l in layers[:i]}
        still_read = {s for s, r in readers.items() if s in done and max(r) > i}
        assert keys == still_read, (name, keys, still_read)      # the layer's own output is stored after
    kept = bp.run(prep, x, keep_states=True)            # no release: every layer's states kept
    assert len(held) == len(layers)                     # (keep_states took no release path)
    assert sorted(kept.planes) == sorted([net.input.name] + [l.name for l in layers[:-1]])
    assert torch.equal(streamed.output_state, kept.readout_state)
    assert torch.equal(streamed.output, engine.run_batch(engine.prepare(net, engine=engine_name), x).output)
