"""Lava backend: compatibility hook, exact mapping, and bit-exact spikes vs our simulator.

Every test is marked `lava`.  Tests that run Lava skip (with the reason) when lava-nc
cannot be imported; the mapping tests need only numpy/torch.  Lava runs each process in a
forked OS process, so every network here is small and runs a handful of samples.
"""
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import netgen
from neurodeploy.backends.lava.mapping import MaxPoolStage
from neurodeploy.compiler import compile_model
from neurodeploy.errors import NeurodeployError
from neurodeploy.ir import synapses as syn
from neurodeploy.ir.spiking import Branch
from neurodeploy.schemes.bitplane import kernel as bp
from neurodeploy.sim.engine import prepare, run_batch
from neurodeploy.ir.synapse_ops import apply_ops

pytestmark = pytest.mark.lava

from conftest import MODELS, ROOT  # noqa: E402


@pytest.fixture(scope="module")
def lava(lava):
    """The Lava back end module (conftest's `lava`: skipped only when lava-nc is not installed)."""
    import neurodeploy.backends.lava as backend
    return backend


# --------------------------------------------------------------------------- compat hook
def _run_py(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=str(ROOT), timeout=300)


def _var_model_path() -> Path | None:
    import importlib.util
    spec = importlib.util.find_spec("lava")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "magma" / "compiler" / "var_model.py"


def test_compat_hook_fixes_import_in_fresh_interpreter(lava):
    path = _var_model_path()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    needs_fix = "ByteEncoder = ByteEncoder()" in path.read_text()
    plain = _run_py("import lava.magma.core.process.process")
    if needs_fix and sys.version_info >= (3, 11):
        assert plain.returncode != 0
        assert "ValueError" in plain.stderr and "mutable default" in plain.stderr, plain.stderr
    hooked = _run_py("""
        import sys
        from neurodeploy.backends.lava.compat import ensure_lava, LavaCompatFinder, VAR_MODEL, PORTS
        v1 = ensure_lava(); v2 = ensure_lava()
        from lava.proc.lif.process import LIF
        import lava.magma.compiler.var_model as vm
        enc = vm.CoreEncoder()
        assert enc.x is not vm.CoreEncoder().x          # a fresh ByteEncoder per instance
        finders = [f for f in sys.meta_path if isinstance(f, LavaCompatFinder)]
        assert len(finders) == 1, finders
        import lava.magma.core.process.ports.ports
        print(v1, v2, finders[0].applied.get(VAR_MODEL), finders[0].applied.get(PORTS))
    """)
    assert hooked.returncode == 0, hooked.stderr
    version, again, applied, ports_applied = hooked.stdout.split()
    numpy_2_1 = tuple(int(v) for v in np.__version__.split(".")[:2]) >= (2, 1)
    assert ports_applied == str(numpy_2_1)              # ReshapePort newshape= -> shape=
    assert version == again != "unknown"
    assert applied == str(needs_fix)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before     # site-packages untouched


def test_compat_missing_lava_raises_neurodeploy_error():
    r = _run_py("""
        import sys
        sys.modules['lava'] = None                      # as if lava-nc were not installed
        from neurodeploy.backends.lava import ensure_lava
        from neurodeploy.errors import NeurodeployError
        try:
            ensure_lava()
        except NeurodeployError as e:
            print('OK', e.hint)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK") and "pip install lava-nc" in r.stdout


def test_compat_hook_leaves_fixed_source_alone():
    from neurodeploy.backends.lava import compat
    fixed = "from dataclasses import dataclass, field\n@dataclass\nclass A:\n    x: int = 0\n"
    assert compat._patch_var_model(fixed) is None
    src = ("from __future__ import annotations\nfrom dataclasses import dataclass\n"
           "@dataclass\nclass C:\n    x: ByteEncoder = ByteEncoder()\n")
    out = compat._patch_var_model(src)
    assert out.splitlines()[0] == "from __future__ import annotations"
    assert "x: ByteEncoder = _neurodeploy_field(default_factory=ByteEncoder)" in out


# --------------------------------------------------------------------------- mapping (no Lava)
def _full_basis(shape):
    n = int(np.prod(shape))
    return torch.eye(n, dtype=torch.float64).reshape((n,) + tuple(shape))


def _random_chain(rng):
    """A random foldable-or-not chain (pool / conv / channel scale) and a valid input shape."""
    while True:
        c, h = int(rng.integers(1, 4)), int(rng.integers(5, 10))
        k = int(rng.integers(1, 4))
        pool = syn.SumPool((k, k), (int(rng.integers(1, k + 1)),) * 2)
        groups = int(rng.choice([1, c]))
        c_out = groups * int(rng.integers(1, 3))
        conv = syn.Conv(rng.integers(-20, 21, (c_out, c // groups, 3, 3)), (int(rng.integers(1, 3)),) * 2,
                        (int(rng.integers(0, 2)),) * 2, (int(rng.integers(1, 3)),) * 2, groups)
        ops = [[pool, conv], [conv, pool], [pool, syn.ChannelScale(rng.integers(-9, 10, c))],
               [pool, pool, conv]][int(rng.integers(0, 4))]
        try:
            ref = apply_ops(ops, _full_basis((c, h, h))).numpy()
        except RuntimeError:                          # output smaller than one pixel: redraw
            continue
        return ops, (c, h, h), ref


@pytest.mark.parametrize("seed", range(40))
def test_folded_conv_equals_op_chain_on_every_input(seed):
    """Folding pools/scales into a kernel is exact (checked on a full basis) or refused."""
    from neurodeploy.backends.lava.mapping import ConvStage, map_branch
    ops, shape, ref = _random_chain(np.random.default_rng(seed))
    plan = map_branch(Branch("src", ops, 2), shape)
    conv_stages = [s for s in plan.stages if isinstance(s, ConvStage)]
    got = _full_basis(shape)
    for st in conv_stages:
        got = torch.nn.functional.conv2d(got, torch.as_tensor(st.weight, dtype=torch.float64), None,
                                         st.stride, st.padding, st.dilation, st.groups)
    assert got.shape == ref.shape
    assert np.array_equal(got.numpy(), ref)
    assert plan.latency == len(conv_stages) >= 1


def test_fold_respects_weight_format():
    """An overlapping sum-pool would sum weights past the 8-bit mantissa: relay instead."""
    from neurodeploy.backends.lava.mapping import ConvStage, DenseStage, map_branch
    w = np.full((4, 2 * 3 * 3), 100)
    ops = [syn.SumPool((3, 3), (2, 2)), syn.Flatten(), syn.Dense(w)]
    plan = map_branch(Branch("src", ops, 0), (2, 7, 7))
    assert [type(s) for s in plan.stages] == [ConvStage, DenseStage] and plan.latency == 2
    small = [syn.SumPool((2, 2), (2, 2)), syn.Flatten(), syn.Dense(np.full((4, 2 * 3 * 3), 100))]
    plan = map_branch(Branch("src", small, 0), (2, 6, 6))
    assert [type(s) for s in plan.stages] == [DenseStage] and plan.latency == 1


def test_trailing_flatten_keeps_a_conv_a_conv():
    from neurodeploy.backends.lava.mapping import ConvStage, DenseStage, map_branch
    conv = syn.Conv(np.ones((3, 2, 3, 3), dtype=np.int64), (1, 1), (1, 1))
    plan = map_branch(Branch("s", [syn.SumPool((2, 2), (2, 2)), conv, syn.Flatten()], 1), (2, 6, 6))
    assert [type(s) for s in plan.stages] == [ConvStage] and plan.stages[0].out_shape == (3, 3, 3)
    dense = syn.Dense(np.ones((4, 18), dtype=np.int64))
    plan = map_branch(Branch("s", [syn.SumPool((2, 2), (2, 2)), syn.Flatten(), dense], 1), (2, 6, 6))
    assert [type(s) for s in plan.stages] == [DenseStage] and plan.stages[0].weight.shape == (4, 72)


def test_dense_weights_survive_lava_bit_accurate_quantisation():
    """2*W with weight_exp-1 passes Lava's 8-bit clip and MIXED-mode LSB truncation unchanged."""
    from neurodeploy.backends.lava.mapping import DenseStage
    for e in (0, 1, 5, 7):
        w = np.arange(-127, 128).reshape(1, -1)
        lw, lexp = DenseStage(w, e, (255,), (1,)).lava_weights()
        clipped = np.clip(lw, -256, 255)
        truncated = (clipped >> 1) << 1                    # MIXED: 8 - 8 + 1 LSBs dropped
        assert np.array_equal(truncated, lw)
        s = np.ones(255, dtype=np.int64)
        acc = truncated.astype(np.int64) @ s
        out = acc << lexp if lexp > 0 else acc >> -lexp
        assert np.array_equal(out, (w @ s) << e)


def test_unmappable_branches_raise():
    from neurodeploy.backends.lava.mapping import map_branch
    conv = syn.Conv(np.ones((2, 2, 1, 1), dtype=np.int64))
    with pytest.raises(NeurodeployError, match="MaxPool"):
        map_branch(Branch("s", [conv, syn.MaxPool((2, 2), (2, 2))], 0), (2, 4, 4))
    with pytest.raises(NeurodeployError, match="weight_exp"):
        map_branch(Branch("s", [conv], -1), (2, 4, 4))
    with pytest.raises(NeurodeployError, match="weighted"):
        map_branch(Branch("s", [syn.SumPool((2, 2), (2, 2))], 0), (2, 4, 4))


# --------------------------------------------------------------------------- networks
def _dense(seed):
    b = netgen.NetBuilder((12,), seed)
    x = b.qcfs("input", 7, 1.0)                               # 3 input planes
    x = b.qcfs(b.gemm(x, 12, 16, scale=3.0), 8, 0.4)          # Q=8: 4 planes, small lambda -> clamps
    x = b.qcfs(b.gemm(x, 16, 10, scale=2.0), 3, 0.5)          # 2 planes
    x = b.qcfs(b.gemm(x, 10, 8, scale=2.0), 15, 1.0)          # 4 planes
    return b.model(b.gemm(x, 8, 4), 4)


def _conv(seed):
    b = netgen.NetBuilder((2, 6, 6), seed)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.conv(x, 2, 4, scale=2.0), 8, 0.5)
    x = b.qcfs(b.conv(x, 4, 6, stride=2, scale=2.0), 3, 1.0)   # 6x6 -> 3x3
    return b.model(b.gemm(b.flatten(x), 6 * 3 * 3, 5), 5)


def _conv_avgpool(seed):
    b = netgen.NetBuilder((1, 8, 8), seed)
    x = b.qcfs("input", 16, 1.0)
    x = b.qcfs(b.conv(x, 1, 4, bn=True, scale=2.0), 8, 0.6)
    x = b.avgpool(x)                                          # folded into the next conv
    x = b.qcfs(b.conv(x, 4, 6, bn=True, scale=2.0), 15, 1.0)
    x = b.qcfs(b.avgpool(b.conv(x, 6, 6, scale=2.0)), 5, 1.0)  # pool before the activation
    return b.model(b.gemm(b.flatten(b.avgpool(x)), 6, 3), 3)


def _overlap_pool(seed):
    b = netgen.NetBuilder((2, 9, 9), seed)
    x = b.qcfs("input", 7, 1.0)
    x = b.qcfs(b.conv(x, 2, 4, scale=2.0), 15, 1.0)
    x = b.node("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2])   # 9 -> 4, windows overlap
    x = b.qcfs(b.conv(x, 4, 4, scale=2.0), 8, 0.5)
    return b.model(b.gemm(b.flatten(x), 4 * 4 * 4, 3, scale=3.0), 3)


def _maxpool(seed):
    b = netgen.NetBuilder((2, 8, 8), seed)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.conv(x, 2, 4, scale=2.0), 15, 1.0)
    x = b.maxpool(x)
    x = b.qcfs(b.conv(x, 4, 4, scale=2.0), 3, 1.0)
    return b.model(b.gemm(b.flatten(x), 4 * 4 * 4, 3), 3)


def _maxpool_padded(seed, ceil_mode: bool):
    """ResNet's stem pool (3x3/2, padding 1) on 8x8, or a ceil_mode pool (3x3/2, pads (0, 1, 1, 0)
    -- asymmetric -- ending in a partial window) on 7x7: both give 4x4."""
    h = 7 if ceil_mode else 8
    b = netgen.NetBuilder((2, h, h), seed)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.conv(x, 2, 4, scale=2.0), 15, 1.0)
    pads = [0, 1, 1, 0] if ceil_mode else [1, 1, 1, 1]
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=pads, ceil_mode=int(ceil_mode))
    x = b.qcfs(b.conv(x, 4, 4, scale=2.0), 3, 1.0)
    return b.model(b.gemm(b.flatten(x), 4 * 4 * 4, 3), 3)


def _residual(seed, projection: bool):
    b = netgen.NetBuilder((2, 6, 6), seed)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.conv(x, 2, 4, bn=True, scale=2.0), 8, 1.0)          # 4 planes
    h = b.qcfs(b.conv(x, 4, 4, bn=True, scale=2.0), 3, 1.0)          # 2 planes: branches differ in T
    if projection:
        s = b.conv(x, 4, 6, k=1, stride=1, pad=0, bn=True)
        x = b.qcfs(b.add(b.conv(h, 4, 6, bn=True), s), 8, 1.0)
    else:
        x = b.qcfs(b.add(b.conv(h, 4, 4, bn=True), x), 8, 1.0)
    c = 6 if projection else 4
    return b.model(b.gemm(b.flatten(b.gap(x)), c, 3), 3)


def _concat(seed):
    """A Fire module: two expand convs with different plane counts, joined along channels, max
    pooled, read by one conv (a branch per part, each with its slice of input channels)."""
    b = netgen.NetBuilder((2, 8, 8), seed)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.conv(x, 2, 4, scale=2.0), 8, 1.0)
    e1 = b.qcfs(b.conv(x, 4, 3, k=1, pad=0, scale=2.0), 3, 1.0)     # 2 planes
    e3 = b.qcfs(b.conv(x, 4, 5, scale=2.0), 15, 1.0)                 # 4 planes
    x = b.qcfs(b.conv(b.maxpool(b.concat(e1, e3)), 8, 4, scale=2.0), 7, 1.0)
    return b.model(b.gemm(b.flatten(x), 4 * 4 * 4, 3), 3)


def _linear_bottleneck(seed):
    """Linear layers composed into their readers (passes.fold_linear_layers): a 3x3 conv + BN with no
    activation read by a 1x1 expand conv (one composed 3x3 branch) and summed with a linear 1x1
    projection into a residual stream, read by a 1x1 stride-2 conv (two composed branches)."""
    b = netgen.NetBuilder((2, 8, 8), seed)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.conv(x, 2, 4, scale=2.0), 8, 1.0)
    p1 = b.conv(x, 4, 4, bn=True)
    h = b.qcfs(b.conv(p1, 4, 6, k=1, pad=0, bn=True, scale=2.0), 7, 1.0)
    stream = b.add(p1, b.conv(h, 6, 4, k=1, pad=0, bn=True))
    y = b.qcfs(b.conv(stream, 4, 4, k=1, stride=2, pad=0, bn=True, scale=2.0), 7, 1.0)
    return b.model(b.gemm(b.flatten(y), 4 * 4 * 4, 3), 3)


NETS = {
    "dense": _dense,
    "conv": _conv,
    "conv_avgpool": _conv_avgpool,
    "overlapping_avgpool": _overlap_pool,
    "maxpool": _maxpool,
    "maxpool_padded": lambda s: _maxpool_padded(s, False),
    "maxpool_ceil_mode": lambda s: _maxpool_padded(s, True),
    "residual_identity": lambda s: _residual(s, False),
    "residual_conv1x1": lambda s: _residual(s, True),
    "concat": _concat,
    "linear_bottleneck": _linear_bottleneck,
}


def _compile(tmp_path, model):
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return compile_model(path, "loihi2", "bitplane")


def _assert_bit_exact(graph, x, res, sim):
    assert res.readout_state.dtype == np.int64 and res.outputs.dtype == np.float32
    assert np.array_equal(res.readout_state, sim.output_state.numpy())
    assert np.array_equal(res.outputs, sim.output.numpy())
    layers = [graph.input] + [l for l in graph.neuron_layers() if not l.is_readout]
    assert set(res.planes) == {l.name for l in layers}
    for layer in layers:
        want = bp.encode_planes(sim.codes[layer.name], layer.neuron.n_steps).numpy()
        got = res.planes[layer.name]
        assert got.dtype == np.uint8 and got.shape == want.shape, layer.name
        assert np.array_equal(got, want), f"spikes differ in {layer.name}"
        assert got.any(), f"{layer.name} never spikes: the test would prove nothing"


@pytest.mark.parametrize("kind", list(NETS))
def test_random_network_bit_exact(tmp_path, lava, kind):
    graph = _compile(tmp_path, NETS[kind](7))
    x = netgen.random_inputs(graph.input.shape, 4, seed=3)
    sim = run_batch(prepare(graph), x)
    folds = [True, False] if kind in ("conv_avgpool", "maxpool", "maxpool_padded", "residual_conv1x1", "concat") \
        else [True]
    for fold in folds:
        _assert_bit_exact(graph, x, lava.run_lava(graph, x, fold=fold), sim)
    if kind == "dense":     # Q=8 with a small lambda: the clamp at code_max must have mattered
        assert any(int(sim.codes[l.name].max()) == l.neuron.code_max for l in graph.neuron_layers()[:-1])
    if kind == "concat":    # the conv after the Concat reads both parts: one layer, two branches
        assert sorted(len(l.branches) for l in graph.neuron_layers()) == [1, 1, 1, 1, 2]
    if kind == "linear_bottleneck":     # the stride-2 conv reads the stream's two activation sources
        assert sorted(len(l.branches) for l in graph.neuron_layers()) == [1, 1, 1, 2]
    if kind.startswith("residual"):
        plan = lava.plan_network(graph)
        assert any(b.delay > 0 for lp in plan.layers.values() for b in lp.branches)
    if kind.startswith("maxpool_"):     # the pool's padding reaches the Lava process
        plan = lava.plan_network(graph)
        pads = [st.padding for lp in plan.layers.values() for b in lp.branches for st in b.stages
                if isinstance(st, MaxPoolStage)]
        # (top, bottom, left, right); ceil_mode's partial windows add one row and one column at the end
        assert pads == [(0, 2, 1, 1) if kind == "maxpool_ceil_mode" else (1, 1, 1, 1)], pads
    if kind == "overlapping_avgpool":   # the 3x3/2 pool cannot be folded into the padded conv
        plan = lava.plan_network(graph)
        assert max(b.latency for lp in plan.layers.values() for b in lp.branches) == 2


def test_build_api_and_digits_model(lava):
    graph = compile_model(MODELS / "digits_qcfs.onnx", "loihi2", "bitplane")
    x = np.load(MODELS / "digits_test_x.npy")[:3]
    net = lava.build(graph, x)
    assert net.injector is net.layers["input"] and set(net.layers) == {l.name for l in graph.layers}
    assert net.num_steps == 3 * net.plan.period
    try:
        net.run()
        state, planes = net.collect()
        final_u = np.asarray(net.readout.u_final.get()).reshape(-1)
    finally:
        net.stop()
    sim = run_batch(prepare(graph), x)
    assert np.array_equal(state, sim.output_state.numpy())
    assert np.array_equal(final_u, sim.output_state.numpy()[-1])      # the readout's own Var
    res = lava.run_lava(graph, x)
    _assert_bit_exact(graph, x, res, sim)
    labels = np.load(MODELS / "digits_test_y.npy")[:3]
    assert (res.outputs.argmax(1) == labels).mean() >= 2 / 3


def test_failing_process_model_raises_instead_of_hanging(tmp_path, lava, monkeypatch):
    """Lava deadlocks when a model raises mid-network; ours report through their `error` Var."""
    from neurodeploy.schemes.bitplane.lava import processes
    graph = _compile(tmp_path, _dense(2))
    x = netgen.random_inputs(graph.input.shape, 2, seed=5)

    def broken(self, a):
        raise RuntimeError("injected failure")
    monkeypatch.setattr(processes.PyBitplaneIFModelFixed, "_step", broken)   # inherited by Lava's forks
    with pytest.raises(NeurodeployError, match="failed: dense1"):
        lava.run_lava(graph, x)


def test_compiled_directory_and_input_shape_check(tmp_path, lava):
    from neurodeploy.compiler import save_artifact
    graph = _compile(tmp_path, _dense(1))
    out = save_artifact(graph, tmp_path / "out")
    x = netgen.random_inputs(graph.input.shape, 2, seed=4)
    res = lava.run_lava(out, x)
    assert np.array_equal(res.readout_state, run_batch(prepare(graph), x).output_state.numpy())
    with pytest.raises(NeurodeployError, match="shape"):
        lava.build(graph, x[:, :5])
