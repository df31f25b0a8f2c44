"""Synapse calls split over groups of input channels (`sim.core._channel_groups`): a convolution whose
sums Σ|W|·x_max reach 2^24 runs as float32 calls on contiguous groups of its input channels, summed in
float64, instead of two full float32 calls on limbs.  Pinned here bit for bit against the engines that
never take that path (rate's lock-step int64 engine, bitplane's plane-by-plane engine and the integer
reference) on random networks with residual adds, average and max pools, at several T.

The compiled test networks are small (2..12 channels), so the groups' minimum width is lowered to one
channel for these tests (`MIN_GROUP_CHANNELS` only decides speed, never exactness), and the weight
mantissas are scaled by 2^k (bias, threshold and initial state with them: the same spikes) so that
the sums pass 2^24."""
import dataclasses

import numpy as np
import onnx
import pytest
import torch

import netgen
from neurodeploy.compiler import compile_model
from neurodeploy.ir import synapses as syn
from neurodeploy.schemes import CompileOptions
from neurodeploy.schemes.bitplane import kernel as bp
from neurodeploy.sim import core, engine
from neurodeploy.sim.reference import reference
from test_bitplane_engines import assert_identical
from test_bitplane_exact import NETS
from test_rate import assert_engines_identical


@pytest.fixture
def narrow_groups(monkeypatch):
    monkeypatch.setattr(core, "MIN_GROUP_CHANNELS", 1)


def scale_conv_layers(net, k: int, neuron=None, bias: bool = True):
    """Every hidden layer with a Conv branch: its weight mantissas times 2^k, its bias too (bias=True), its
    neuron replaced by neuron(n) (None: kept).  Larger sums (also used by tests/test_sdnn_engines.py and
    tests/test_cuba_engines.py)."""
    def branch(b):
        w = syn.weighted_op(b.ops)
        return dataclasses.replace(b, ops=[dataclasses.replace(op, weight=np.asarray(op.weight) << k) if op is w else op
                                           for op in b.ops])
    layers = []
    for layer in net.layers:
        if layer in net.neuron_layers() and not layer.is_readout \
                and any(isinstance(syn.weighted_op(b.ops), syn.Conv) for b in layer.branches):
            layer = dataclasses.replace(layer, branches=[branch(b) for b in layer.branches],
                                        bias_exp=layer.bias_exp + (k if bias else 0),
                                        neuron=neuron(layer.neuron) if neuron else layer.neuron)
        layers.append(layer)
    return dataclasses.replace(net, layers=layers)


def _scaled(net, k: int, rate: bool):
    """Every hidden layer with a Conv branch: its weight mantissas, bias and threshold (rate: v_init too, and a 63-bit
    state) times 2^k: larger sums, the same dynamics."""
    def neuron(n):
        n = dataclasses.replace(n, v_th_mant=n.v_th_mant << k)
        return dataclasses.replace(n, v_init=n.v_init << k, state_bits=63) if rate else n
    return scale_conv_layers(net, k, neuron)


def _grouped(plan: dict) -> list:
    """Layers whose plan splits a branch into channel groups."""
    return sorted(name for name, la in plan.items() if any(limb and limb[0] == "channels" for limb in la.limbs))


# 16-bit mantissas · 2^k: the sums over all input channels pass 2^24 (measured: residual 2^24.0..2^25.4,
# conv_bn_avgpool's 2x2 sum pool and 3x3 conv 2^24.3), over a few channels they do not
@pytest.mark.parametrize("kind, k", [("residual", 6), ("conv_bn_avgpool", 3)])
@pytest.mark.parametrize("timesteps", [5, 12])
def test_rate_channel_groups_equal_the_lock_step_engine(tmp_path, narrow_groups, kind, k, timesteps):
    """Residual adds (a grouped 3x3 branch beside an identity or 1x1 one) and a sum pool before the conv."""
    onnx.save(NETS[kind](2), tmp_path / "m.onnx")
    net = compile_model(tmp_path / "m.onnx", "cpu", "rate", CompileOptions(timesteps=timesteps))
    net = _scaled(net, k, rate=True)
    plan = assert_engines_identical(net, netgen.random_inputs(net.input.shape, 24, seed=timesteps))
    grouped = _grouped({name: p.arith for name, p in plan.items()})
    assert grouped, "no layer ran on channel groups"
    if kind == "residual":            # the residual add's 3x3 branch among them
        prep = engine.prepare(net)
        assert any(len(prep.branches[name]) == 2 for name in grouped)


@pytest.mark.parametrize("kind", ["conv_maxpool", "residual"])
def test_bitplane_channel_groups_equal_planes_and_reference(tmp_path, narrow_groups, kind):
    """Codes through a max pool (taken before the channels are split) and a residual add."""
    onnx.save(NETS[kind](3), tmp_path / "m.onnx")
    net = _scaled(compile_model(tmp_path / "m.onnx", "cpu", "bitplane"), 3, rate=False)
    plan = bp.code_plan(engine.prepare(net))
    grouped = _grouped(plan)
    assert grouped and all(plan[name].branch_dtypes[0] == torch.float32 for name in grouped)
    if kind == "conv_maxpool":
        prep = engine.prepare(net)
        assert any(pb.bitserial_maxpool is not None for name in grouped for pb in prep.branches[name])
    x = netgen.random_inputs(net.input.shape, 48, seed=5)
    r = assert_identical(net, x)
    codes, u = reference(net, x)
    for name, c in codes.items():
        assert np.array_equal(r.codes[name].numpy(), c), name
    assert np.array_equal(r.readout_state.numpy(), u)


def test_channel_groups_each_below_two_to_the_24(tmp_path, narrow_groups):
    """The proof per group: every group's own bound is below 2^24 and the groups cover the channels once."""
    onnx.save(NETS["residual"](2), tmp_path / "m.onnx")
    net = _scaled(compile_model(tmp_path / "m.onnx", "cpu", "rate", CompileOptions(timesteps=6)), 6, rate=True)
    prep = engine.prepare(net)
    shapes = {l.name: tuple(l.shape) for l in net.layers}
    seen = 0
    for layer in net.neuron_layers():
        for pb in prep.branches[layer.name]:
            if float(np.max(core.branch_bound(prep, pb, 1.0))) < core.FLOAT32_EXACT:
                continue                  # one float32 call is exact: no groups asked for
            got = core._channel_groups(prep, pb, 1.0)
            if got is None:
                continue
            seen += 1
            groups = got[1]
            assert len(groups) >= 2
            assert groups[0][0] == 0 and groups[-1][1] == shapes[pb.source][0]
            assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
            k = syn.weighted_op(pb.ops)
            for c0, c1 in groups:
                ops = [dataclasses.replace(op, weight=np.asarray(op.weight)[:, c0:c1]) if op is k else op
                       for op in pb.ops]
                bound = np.max(core.abs_bound(ops, (c1 - c0,) + shapes[pb.source][1:], 1.0))
                assert bound < core.FLOAT32_EXACT, (layer.name, c0, c1, bound)
    assert seen >= 2
