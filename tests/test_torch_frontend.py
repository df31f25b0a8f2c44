"""The PyTorch front end builds the same float graph as the ONNX front end, and the same SNN.

For each model: compile it from the nn.Module (torch.export) and from its ONNX export; the
spiking IR written by `serialize.save` must be byte-identical in params.npz and equal in the
`layers` JSON (but for `float_node`, the float-graph node a layer came from: module paths
here, ONNX node names there), and the raw float graphs must be equal op for op, parameter
for parameter (names aside).
"""
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurodeploy.compiler import compile_model
from neurodeploy.errors import NeurodeployError, UnsupportedError
from neurodeploy.frontends.onnx import load_onnx
from neurodeploy.frontends.torch import load_pt2, load_torch
from neurodeploy.ir import serialize
from neurodeploy.nn import QCFS, export_onnx
from neurodeploy.passes import select_as_conv

from conftest import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "models"))
import train_digits as td  # noqa: E402
import train_digits_resnet as tr  # noqa: E402



# --- models ------------------------------------------------------------------------------
def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights, BN statistics and λ (so that nothing is a trivial 0/1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                if m.affine:
                    m.weight.copy_(0.5 + torch.rand(c, generator=g))
                    m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
            elif isinstance(m, QCFS) and m.lam.requires_grad:
                m.lam.fill_(0.5 + float(torch.rand(1, generator=g)))
    return model.eval()


def digits_cnn():
    m = td.build_model()
    m.load_state_dict(torch.load(ROOT / "models" / "digits_qcfs.pt"))
    return m.eval(), (1, 1, 8, 8)


def digits_resnet():
    m = tr.build_model()
    m.load_state_dict(torch.load(ROOT / "models" / "digits_resnet_qcfs.pt"))
    return m.eval(), (1, 1, 8, 8)


def dense_bn1d():
    torch.manual_seed(1)
    m = nn.Sequential(QCFS(16, 1.0, trainable=False), nn.Linear(20, 32), nn.BatchNorm1d(32), QCFS(7),
                      nn.Linear(32, 16, bias=False), nn.BatchNorm1d(16, affine=False), QCFS(3),
                      nn.Linear(16, 5))
    return _randomise(m, 1), (1, 20)


def conv_relu_maxpool():
    """ReLU before a QCFS (dropped by a pass), MaxPool after a QCFS, a global pool + flatten."""
    torch.manual_seed(2)
    m = nn.Sequential(QCFS(8, 1.0, trainable=False),
                      nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), QCFS(15),
                      nn.MaxPool2d(2),
                      nn.Conv2d(6, 8, 3, stride=1, padding=1, groups=2), nn.BatchNorm2d(8), QCFS(7),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(8, 4))
    return _randomise(m, 2), (1, 2, 8, 8)


class _ViewHead(nn.Module):
    """Functional style: a reshape to (N, -1) and a residual join written with +."""

    def __init__(self, flat="reshape"):
        super().__init__()
        self.flat = flat
        self.q0 = QCFS(4, 1.0, trainable=False)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.act1 = QCFS(5)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = QCFS(5)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x):
        x = self.act1(self.conv1(self.q0(x)))
        x = self.act2(self.conv2(x) + x)
        x = self.pool(x)
        if self.flat == "view_size":
            x = x.view(x.size(0), -1)       # the ONNX export of this has Shape/Gather (unsupported there)
        elif self.flat == "flatten":
            x = torch.flatten(x, 1)
        else:
            x = x.reshape(-1, 4 * 3 * 3)
        return self.fc(x)


def functional_view(flat="reshape"):
    torch.manual_seed(3)
    return _randomise(_ViewHead(flat), 3), (1, 1, 6, 6)


class OptionA(nn.Module):
    """The CIFAR-ResNet "option A" shortcut: subsample by 2 and pad with zero channels."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)


def _selection_conv(cin: int, cout: int, pad: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for c in range(cin):
            conv.weight[pad + c, c, 0, 0] = 1.0
    conv.weight.requires_grad_(False)
    return conv


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, shortcut="A", levels=7):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = QCFS(levels)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = QCFS(levels)
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = OptionA((cout - cin) // 2)
        elif shortcut == "conv":      # the same function as option A, as an explicit 1x1 conv
            self.shortcut = _selection_conv(cin, cout, (cout - cin) // 2)
        else:                         # projection (option B)
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, shortcut="A", width=4, in_ch=3):
        super().__init__()
        self.quant = QCFS(15, 1.0, trainable=False)
        self.conv1 = nn.Conv2d(in_ch, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act = QCFS(7)
        self.layer1 = nn.Sequential(BasicBlock(width, width, 1, shortcut))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2, shortcut), BasicBlock(2 * width, 2 * width))
        self.layer3 = nn.Sequential(BasicBlock(2 * width, 4 * width, 2, shortcut))
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * width, 10)

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(self.quant(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def cifar_resnet(shortcut="A"):
    torch.manual_seed(4)
    return _randomise(CifarResNet(shortcut), 4), (1, 3, 8, 8)


MODELS = {"digits_cnn": digits_cnn, "digits_resnet": digits_resnet, "dense_bn1d": dense_bn1d,
          "conv_relu_maxpool": conv_relu_maxpool, "functional_view": functional_view,
          "cifar_resnet_projection": lambda: cifar_resnet("B")}


# --- comparison helpers ------------------------------------------------------------------
def graph_hash(graph) -> str:
    """A hash of the graph reachable from the output: ops, parameters (float64 bytes), wiring."""
    memo = {}

    def h(n):
        if n not in memo:
            op = graph.op(n)
            parts = [type(op).__name__]
            for f in dataclasses.fields(op):
                v = getattr(op, f.name)
                if isinstance(v, (np.ndarray, np.generic)):
                    a = np.asarray(v, dtype=np.float64)
                    parts.append(f"{f.name}={a.shape}:{a.tobytes().hex()}")
                else:
                    parts.append(f"{f.name}={v!r}")
            parts += [h(i) for i in graph.inputs(n)]
            memo[n] = hashlib.sha256("|".join(parts).encode()).hexdigest()
        return memo[n]
    return h(graph.output)


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != "float_node"}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def saved_ir(net, directory: Path):
    net.meta.pop("model", None)          # file name / hash differ by construction
    directory.mkdir()
    serialize.save(net, directory)
    layers = json.loads((directory / "ir.json").read_text())["layers"]
    return _strip(layers), (directory / "params.npz").read_bytes()


def compile_torch(model, shape, **kw):
    from neurodeploy import api
    return api.compile(model, torch.zeros(shape), **kw).graph


# --- equivalence ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_torch_and_onnx_front_ends_agree(tmp_path, kind):
    model, shape = MODELS[kind]()
    onnx_path = tmp_path / "m.onnx"
    export_onnx(model, torch.zeros(shape), onnx_path)
    g_torch, g_onnx = load_torch(model, torch.zeros(shape)), load_onnx(onnx_path)
    assert graph_hash(g_torch) == graph_hash(g_onnx)
    assert len(g_torch.g) == len(g_onnx.g)
    a = saved_ir(compile_torch(model, shape), tmp_path / "torch")
    b = saved_ir(compile_model(onnx_path), tmp_path / "onnx")
    assert a[0] == b[0]
    assert a[1] == b[1]


def test_bn_folded_onnx_export_compiles_like_torch(tmp_path):
    model, shape = digits_resnet()
    a = saved_ir(compile_torch(model, shape), tmp_path / "torch")
    b = saved_ir(compile_model(ROOT / "models" / "digits_resnet_qcfs_folded.onnx"), tmp_path / "folded")
    assert a == b


def test_option_a_shortcut_is_a_fixed_strided_1x1_conv(tmp_path):
    """x[:, :, ::2, ::2] + zero channel padding == a 1x1 stride-2 conv with a 0/1 weight: the front
    end reads Slice, Slice, Pad; the select_as_conv pass (run before every scheme) makes the conv."""
    model_a, shape = cifar_resnet("A")
    model_c, _ = cifar_resnet("conv")
    model_c.load_state_dict(model_a.state_dict(), strict=False)    # same weights, BN, λ
    x = torch.rand(16, *shape[1:])
    with torch.no_grad():
        assert torch.equal(model_a(x), model_c(x))
    raw = load_torch(model_a, torch.zeros(shape))
    assert [type(raw.op(n)).__name__ for n in raw.inputs("layer2.0.add")[1:]] == ["Pad"]
    g = select_as_conv(raw)
    sc = g.op("layer2.0.shortcut")
    assert type(sc).__name__ == "Conv" and sc.stride == (2, 2) and sc.weight.shape == (8, 4, 1, 1)
    assert set(np.unique(sc.weight)) == {0.0, 1.0} and not np.any(sc.bias)
    onnx_path = tmp_path / "c.onnx"
    export_onnx(model_c, torch.zeros(shape), onnx_path)
    assert graph_hash(g) == graph_hash(load_onnx(onnx_path))
    assert saved_ir(compile_torch(model_a, shape), tmp_path / "a") == \
        saved_ir(compile_model(onnx_path), tmp_path / "c")


@pytest.mark.parametrize("dynamo", [False, True])
def test_option_a_resnet_through_onnx_and_torch_export(tmp_path, dynamo):
    """The CIFAR option-A ResNet (strided slices + a zero channel pad) gives the same float graph
    through ONNX (TorchScript exporter) as through torch.export, and compiles to the same network;
    through the dynamo exporter (which folds BatchNorm into the convs in float32 and drops the
    multiplications by 1) it compiles and is exact."""
    from neurodeploy import api
    model, shape = cifar_resnet("A")
    path = tmp_path / "a.onnx"
    if dynamo:
        torch.onnx.export(model, (torch.zeros(shape),), path, dynamo=True, opset_version=18)
    else:
        export_onnx(model, torch.zeros(shape), path)
    g_onnx = load_onnx(path)
    assert sum(type(g_onnx.op(n)).__name__ == "Slice" for n in g_onnx.g) == 4
    assert sum(type(g_onnx.op(n)).__name__ == "Pad" for n in g_onnx.g) == 2
    if not dynamo:
        assert graph_hash(load_torch(model, torch.zeros(shape))) == graph_hash(g_onnx)
        assert saved_ir(compile_torch(model, shape), tmp_path / "torch") == \
            saved_ir(compile_model(path), tmp_path / "onnx")
    net = api.compile(path)
    x = np.random.default_rng(1).random((24,) + shape[1:]).astype(np.float32)
    r = api.verify(net, path, x, np.zeros(len(x), dtype=np.int64))
    assert r["guarantee_holds"] and all(l["conversion_mismatches"] == 0 for l in r["layers"])


def test_option_a_resnet_is_exact(tmp_path):
    from neurodeploy import api
    model, shape = cifar_resnet("A")
    net = api.compile(model, torch.zeros(shape))
    x = np.random.default_rng(0).random((48,) + shape[1:]).astype(np.float32)
    r = api.verify(net, model, x, np.zeros(len(x), dtype=np.int64), batch_size=24)
    assert r["guarantee_holds"]
    assert all(l["conversion_mismatches"] == 0 for l in r["layers"])
    assert r["agreement"]["snn_vs_quantised_ann"] == 1.0
    assert sum(l["spikes"] for l in r["layers"]) > 0


def test_channel_slice_and_one_sided_pad():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = QCFS(3, 1.0, trainable=False)
            self.fc = nn.Linear(5 * 2 * 2, 2)

        def forward(self, x):
            y = F.pad(self.q(x)[:, 1:4, ::2, ::2], (0, 0, 0, 0, 0, 2))
            return self.fc(y.flatten(1))
    g = select_as_conv(load_torch(M().eval(), torch.zeros(1, 6, 4, 4)))
    (conv,) = [g.op(n) for n in g.g if type(g.op(n)).__name__ == "Conv"]
    expect = np.zeros((5, 6, 1, 1))
    expect[0, 1] = expect[1, 2] = expect[2, 3] = 1
    assert np.array_equal(conv.weight, expect) and conv.stride == (2, 2)


def test_flatten_spellings_give_one_graph():
    hashes = set()
    for flat in ("reshape", "view_size", "flatten"):
        model, shape = functional_view(flat)
        g = load_torch(model, torch.zeros(shape))
        assert sum(type(g.op(n)).__name__ == "Flatten" for n in g.g) == 1
        hashes.add(graph_hash(g))
    assert len(hashes) == 1


class _PoolHead(nn.Module):
    def __init__(self, style):
        super().__init__()
        self.style = style
        self.q = QCFS(3, 1.0, trainable=False)
        self.conv = nn.Conv2d(2, 4, 3)
        self.act = QCFS(3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.act(self.conv(self.q(x)))
        if self.style == "adaptive":
            x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        elif self.style == "mean":
            x = x.mean((2, 3))
        else:
            x = x.mean((-1, -2), keepdim=True).squeeze((2, 3))
        return self.fc(x)


def test_global_pool_spellings_give_one_graph():
    hashes = set()
    for style in ("adaptive", "mean", "squeeze"):
        torch.manual_seed(5)
        g = load_torch(_PoolHead(style).eval(), torch.zeros(2, 2, 5, 5))
        assert [type(g.op(n)).__name__ for n in g.topo_order()][-3:] == ["GlobalAvgPool", "Flatten", "Dense"]
        hashes.add(graph_hash(g))
    assert len(hashes) == 1


# --- names, .pt2 --------------------------------------------------------------------------------
def test_node_names_are_module_paths():
    model, shape = digits_resnet()
    g = load_torch(model, torch.zeros(shape))
    for name in ("4.conv1", "4.bn1", "4.act1", "4.add", "5.shortcut.0", "5.shortcut.1", "6", "8"):
        assert name in g.g, (name, sorted(g.g))
    assert type(g.op("4.act1")).__name__ == "Scale"          # the last op of the QCFS chain
    assert g.output == "8" and "Linear" in g.origin["8"]
    model, shape = cifar_resnet("A")
    g = load_torch(model, torch.zeros(shape))
    assert {"layer2.0.conv1", "layer2.0.shortcut", "layer2.1.add", "fc"} <= set(g.g)


def test_pt2_file_compiles_like_the_module(tmp_path):
    from neurodeploy import api
    model, shape = digits_resnet()
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(shape),)), path)
    assert graph_hash(load_pt2(path)) == graph_hash(load_torch(model, torch.zeros(shape)))
    a = saved_ir(api.compile(path).graph, tmp_path / "pt2")
    b = saved_ir(compile_torch(model, shape), tmp_path / "mod")
    assert a == b


def test_pt2_decomposed_and_dynamic_batch(tmp_path):
    """Core-ATen programs (run_decompositions: convolution, addmm, _native_batch_norm_legit...)
    with a dynamic batch dimension give the same graph."""
    model, shape = digits_resnet()
    batch = torch.export.Dim("batch", min=1, max=1024)
    ep = torch.export.export(model, (torch.zeros(4, *shape[1:]),), dynamic_shapes=({0: batch},))
    path = tmp_path / "dec.pt2"
    torch.export.save(ep.run_decompositions(), path)
    assert graph_hash(load_pt2(path)) == graph_hash(load_torch(model, torch.zeros(shape)))


# --- errors ---------------------------------------------------------------------------------------
class _Gelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(QCFS(4, 1.0, trainable=False), nn.Conv2d(1, 2, 3), nn.GELU())
        self.fc = nn.Linear(2 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class _Sigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 1)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.conv(x))


@pytest.mark.parametrize("model, shape, needles", [
    (_Gelu(), (1, 1, 6, 6), ["module 'features.2' (GELU)", "unsupported op aten.gelu", "supported modules: Conv2d"]),
    (_Sigmoid(), (1, 4), ["top-level forward (_Sigmoid)", "test_torch_frontend.py:", "aten.sigmoid", "QCFS"]),
    (nn.Sequential(nn.ConvTranspose2d(1, 2, 3)), (1, 1, 4, 4), ["module '0' (ConvTranspose2d)",
                                                                "aten.conv_transpose2d"]),
    (nn.Sequential(nn.Conv1d(1, 2, 3)), (1, 1, 8), ["has shape [1, 1, 8]; expected (N, F) or (N, C, H, W)"]),
    (_Fn(lambda y: y.view(-1, 3)), (2, 2, 3, 3), ["moves values between samples"]),
    (_Fn(lambda y: y * y), (1, 2, 3, 3), ["mul of two computed tensors"]),
    (_Fn(lambda y: y.mean(1)), (1, 2, 3, 3), ["mean over dims [1]"]),
    (_Fn(lambda y: F.avg_pool2d(y, 2, ceil_mode=True)), (1, 2, 3, 3), ["ceil_mode"]),
    (_Fn(lambda y: F.silu(y)), (1, 2, 3, 3), ["aten.silu", "SiLU, a non-linearity"]),
    (_Fn(lambda y: F.hardswish(y)), (1, 2, 3, 3), ["aten.hardswish", "hard swish"]),
    (_Fn(lambda y: F.layer_norm(y, (3,))), (1, 2, 3, 3), ["layer normalisation"]),
    (_Fn(lambda y: y.permute(1, 0, 2, 3)), (2, 2, 3, 3), ["moves the batch dimension"]),
])
def test_unsupported_constructs_name_module_and_list(model, shape, needles):
    with pytest.raises(UnsupportedError) as info:
        load_torch(model.eval(), torch.zeros(shape))
    msg = str(info.value)
    assert len(msg.splitlines()) == 1
    for n in needles:
        assert n in msg, (n, msg)


@pytest.mark.parametrize("fn, op, needle", [
    (lambda y: y.view(y.shape[0], 4, -1), "Reshape", "Reshape cannot be lowered"),
    (lambda y: F.pad(y, (1, 1, 1, 1)), "Pad", "Pad cannot be lowered"),
    (lambda y: F.pad(y, (0, 0, 0, 0, 1, 1), value=1.0), "Pad", "Pad cannot be lowered"),
    (lambda y: y[:, :, 1:, ::2], "Slice", "Slice cannot be lowered"),
    (lambda y: F.max_pool2d(y, 2, dilation=2), "MaxPool", "dilated max pooling cannot be lowered"),
])
def test_layout_ops_are_read_then_refused_by_the_scheme(fn, op, needle):
    """The front end reads these (and proves them against the program); today's lowering cannot
    take them, so compiling stops naming the op, the node and the scheme."""
    from neurodeploy import api
    model = nn.Sequential(QCFS(3, 1.0, trainable=False), _Fn(fn), QCFS(3), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 2, 3, 3))
    g = load_torch(model.eval(), torch.zeros(1, 2, 3, 3))
    assert op in {type(g.op(n)).__name__ for n in g.g}
    with pytest.raises(UnsupportedError, match=r"scheme 'bitplane'") as info:
        api.compile(model, torch.zeros(1, 2, 3, 3))
    assert "node '1." in str(info.value) and needle in str(info.value) and len(str(info.value).splitlines()) == 1


def test_training_mode_program_and_untraceable_model(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    path = tmp_path / "train.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(2, 1, 5, 5),)), path)
    with pytest.raises(UnsupportedError, match=r"model\.eval\(\)"):
        load_pt2(path)
    # compiling a module puts it in eval mode for the export and restores its flags
    load_torch(model, torch.zeros(1, 1, 5, 5))
    assert model.training and model[1].training

    class Branchy(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x
    with pytest.raises(UnsupportedError, match="torch.export could not trace"):
        load_torch(Branchy(), torch.zeros(1, 4))


def test_user_errors_are_clear(tmp_path):
    model = nn.Sequential(QCFS(4, 1.0, trainable=False), nn.Linear(4, 2))
    with pytest.raises(NeurodeployError, match="example input"):
        load_torch(model, None)
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    with pytest.raises(NeurodeployError, match=r"parameter '1.weight' holds 1 NaN"):
        load_torch(model, torch.zeros(1, 4))
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a zip")
    with pytest.raises(NeurodeployError, match="not a readable .pt2"):
        load_pt2(bad)
    with pytest.raises(NeurodeployError, match="file not found"):
        load_pt2(tmp_path / "missing.pt2")


class _Zoo(nn.Module):
    """The newer ops in one network: padded max pooling, grouped conv, ReLU6, concat, channel
    shuffle, a global mean, a softmax output."""

    def __init__(self):
        super().__init__()
        self.q0 = QCFS(15, 1.0, trainable=False)
        self.conv1, self.act1 = nn.Conv2d(2, 8, 3, padding=1), QCFS(7)
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        self.conv2, self.relu6, self.act2 = nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.ReLU6(), QCFS(7)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.pool(self.act1(self.conv1(self.q0(x))))
        z = torch.cat([x, self.act2(self.relu6(self.conv2(x)))], 1)
        n, c, h, w = z.shape
        z = z.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)     # channel shuffle
        return torch.softmax(self.fc(z.mean((2, 3))), 1)


def test_new_ops_give_one_graph_through_both_front_ends(tmp_path):
    model = _randomise(_Zoo(), 6)
    shape = (1, 2, 8, 8)
    path = tmp_path / "zoo.onnx"
    export_onnx(model, torch.zeros(shape), path)
    g_torch, g_onnx = load_torch(model, torch.zeros(shape)), load_onnx(path)
    ops = sorted(type(g_torch.op(n)).__name__ for n in g_torch.g)
    for op in ("MaxPool", "Concat", "Reshape", "Transpose", "GlobalAvgPool", "Softmax", "Clip"):
        assert op in ops, (op, ops)
    assert graph_hash(g_torch) == graph_hash(g_onnx)
    # today's lowering takes the padded pool but not the concat: both paths refuse alike
    messages = []
    for source in (model, path):
        with pytest.raises(UnsupportedError, match="scheme 'bitplane'") as info:
            from neurodeploy import api
            api.compile(source, torch.zeros(shape))
        messages.append(str(info.value).split(": ", 2)[-1])
    assert messages[0] == messages[1]
