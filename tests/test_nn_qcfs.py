"""QCFS activation, relu_to_qcfs and ONNX export (neurodeploy.nn)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from float32_bounds import forward_bound, residual_add
from neurodeploy.nn import QCFS, export_onnx, fold_batchnorm, relu_to_qcfs

QCFS_OPS = ["Div", "Mul", "Add", "Floor", "Div", "Clip", "Mul"]


def ref_qcfs(x: np.ndarray, lam: float, q: int) -> np.ndarray:
    """The QCFS formula in float32, in the authors' op order."""
    x = x.astype(np.float32)
    lam, qf, half = np.float32(lam), np.float32(q), np.float32(0.5)
    y = np.floor((x / lam) * qf + half) / qf
    return np.clip(y, np.float32(0), np.float32(1)) * lam


def run_ort(path, x: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["output"], {"input": x.numpy()})[0]


def ties(lam: float, q: int) -> torch.Tensor:
    """Inputs exactly halfway between two levels: x = (k + 1/2) * lam / q."""
    return (torch.arange(-3, q + 3, dtype=torch.float32) + 0.5) * (lam / q)


@pytest.mark.parametrize("q,lam", [(1, 1.0), (4, 2.0), (15, 2.5), (16, 1.0), (8, 0.3)])
def test_forward_matches_formula(q, lam):
    g = torch.Generator().manual_seed(q)
    x = torch.cat([(torch.rand(2000, generator=g) * 1.6 - 0.3) * lam, ties(lam, q)])
    m = QCFS(q, init_lambda=lam)
    assert m.levels == q and isinstance(m.levels, int)
    assert m.lam.shape == () and float(m.lam.detach()) == pytest.approx(lam)
    with torch.no_grad():
        y = m(x).numpy()
    np.testing.assert_array_equal(y, ref_qcfs(x.numpy(), lam, q))
    # y = k * Delta with an integer code k in 0..Q
    k = y / np.float32(lam / q)
    np.testing.assert_allclose(k, np.round(k), atol=1e-4)
    assert k.min() >= -1e-4 and k.max() <= q + 1e-4


def test_exact_ties_round_up():
    lam, q = 2.0, 4  # step 0.5: ties are exactly representable
    x = ties(lam, q)
    with torch.no_grad():
        y = QCFS(q, init_lambda=lam)(x)
    k = torch.arange(-3, q + 3) + 1  # floor(k + 1/2 + 1/2) = k + 1
    torch.testing.assert_close(y, k.clamp(0, q).float() * (lam / q), rtol=0, atol=0)


def test_input_quantiser_is_exact_on_digit_pixels():
    pixels = torch.arange(17, dtype=torch.float32)
    with torch.no_grad():
        y = QCFS(16, init_lambda=1.0, trainable=False)(pixels / 16)
    torch.testing.assert_close(y, pixels / 16, rtol=0, atol=0)


def test_gradients_straight_through():
    lam, q = 3.0, 5
    m = QCFS(q, init_lambda=lam)
    x = torch.tensor([-2.0, -0.1, 0.2, 0.7, 1.3, 2.2, 2.6, 2.9, 4.5, 9.0], requires_grad=True)
    y = m(x)
    y.sum().backward()
    code = (y.detach() / (lam / q)).round()
    # between the end levels d y/d x = lam * (q/lam) / q = 1: floor passes the gradient
    # through; at code 0 or Q torch.clamp blocks it (as in the authors' code)
    inside = (code > 0) & (code < q)
    assert int(inside.sum()) == 4
    assert torch.equal(x.grad, inside.float())
    assert m.lam.grad is not None and float(m.lam.grad) != 0.0
    # saturated (code Q) the output is lam itself: d y/d lam = 1
    m.lam.grad = None
    m(torch.tensor([10.0])).sum().backward()
    assert float(m.lam.grad) == pytest.approx(1.0)


def test_untrainable_lambda():
    m = QCFS(16, init_lambda=1.0, trainable=False)
    assert not m.lam.requires_grad
    assert "lam" in dict(m.named_parameters())


def _chain(graph: onnx.GraphProto):
    """(non-Constant op types, their nodes, constant values by output name)."""
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"}
    consts.update({t.name: numpy_helper.to_array(t) for t in graph.initializer})
    nodes = [n for n in graph.node if n.op_type != "Constant"]
    return [n.op_type for n in nodes], nodes, consts


def test_qcfs_onnx_op_sequence(tmp_path):
    q, lam = 15, 2.5
    path = tmp_path / "qcfs.onnx"
    export_onnx(nn.Sequential(QCFS(q, init_lambda=lam)), torch.rand(2, 1), path)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert {op.domain for op in model.opset_import} <= {"", "ai.onnx"}
    assert model.opset_import[0].version >= 13
    ops, nodes, consts = _chain(model.graph)
    assert ops == QCFS_OPS
    # a straight chain from "input" to "output"
    prev = "input"
    for n in nodes:
        assert n.input[0] == prev
        prev = n.output[0]
    assert prev == "output"
    # all other operands are scalar constants / initializers with the right values
    values = [[float(consts[i]) for i in n.input[1:]] for n in nodes]
    for n in nodes:
        for i in n.input[1:]:
            assert consts[i].shape == () and consts[i].dtype == np.float32
    assert values == [[lam], [q], [0.5], [], [q], [0.0, 1.0], [lam]]
    # onnxruntime reproduces the torch forward bit for bit (elementwise float32 ops)
    x = torch.cat([(torch.rand(4000, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.3) * lam,
                   ties(lam, q)]).reshape(-1, 1)
    np.testing.assert_array_equal(run_ort(path, x), ref_qcfs(x.numpy(), lam, q))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))) + x

    @staticmethod
    def bound(block, b, step):
        """float32_bounds handler: the same computation on (value, error bound) pairs."""
        return residual_add(step(nn.ReLU(), step(block.bn, step(block.conv, b))), b)


def _bn_model():
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        Block(4), nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Flatten(), nn.Linear(64, 6), nn.BatchNorm1d(6), nn.Linear(6, 3),
    )
    with torch.no_grad():
        for bn in m.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
                bn.weight.uniform_(0.5, 2)
                bn.bias.uniform_(-1, 1)
    return m.eval()


@pytest.mark.parametrize("fold_bn", [False, True])
def test_export_matches_onnxruntime(tmp_path, fold_bn):
    m = _bn_model()
    path = tmp_path / "m.onnx"
    export_onnx(m, torch.rand(1, 1, 8, 8), path, fold_bn=fold_bn)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    ops = [n.op_type for n in model.graph.node]
    assert "Identity" not in ops
    assert ops.count("BatchNormalization") == (0 if fold_bn else 4)
    for batch in (1, 7):
        x = torch.rand(batch, 1, 8, 8, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = m(x).numpy()
        # onnxruntime's kernels are chosen per CPU: both results lie within the float32 rounding
        # bound E of the float64 forward pass (tests/float32_bounds.py), so within 2E of each other
        # on any machine (E ~ 2e-4 here, the worst case over summation orders; measured ~1e-7)
        err = forward_bound(m, x, {Block: Block.bound}).e.numpy()
        assert np.all(np.abs(run_ort(path, x) - ref) <= 2 * err)
    assert m.training is False and isinstance(m[1], nn.BatchNorm2d)  # model untouched


def test_export_keeps_equal_initializers_separate(tmp_path):
    # a fresh BN has weight == running_var (ones) and bias == running_mean (zeros);
    # the exporter deduplicates those into Identity nodes, export_onnx undoes it
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), QCFS(4)).eval()
    path = tmp_path / "fresh.onnx"
    export_onnx(m, torch.rand(1, 1, 5, 5), path)
    g = onnx.load(path).graph
    inits = {t.name for t in g.initializer}
    assert "Identity" not in [n.op_type for n in g.node]
    (bn,) = [n for n in g.node if n.op_type == "BatchNormalization"]
    assert all(i in inits for i in bn.input[1:])
    x = torch.rand(3, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    # no QCFS input within float32 rounding of a level boundary (tests/float32_bounds.py): every
    # implementation picks the same levels and the same elementwise ops give the same bits
    assert int(forward_bound(m, x).ambiguous.sum()) == 0
    with torch.no_grad():
        np.testing.assert_array_equal(run_ort(path, x), m(x).numpy())


def test_fold_bn_raises_when_bn_cannot_be_folded(tmp_path):
    m = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 2, 3)).eval()  # BN before the conv
    with pytest.raises(ValueError, match="BatchNormalization"):
        export_onnx(m, torch.rand(1, 1, 5, 5), tmp_path / "x.onnx", fold_bn=True)
    assert not (tmp_path / "x.onnx").exists()


def test_export_is_byte_deterministic(tmp_path):
    m = nn.Sequential(QCFS(16, 1.0, False), _bn_model(), QCFS(4))
    for fold_bn in (False, True):
        a, b = tmp_path / f"a{fold_bn}.onnx", tmp_path / f"b{fold_bn}.onnx"
        export_onnx(m, torch.rand(2, 1, 8, 8), a, fold_bn=fold_bn)
        export_onnx(m, torch.rand(3, 1, 8, 8), b, fold_bn=fold_bn)
        assert a.read_bytes() == b.read_bytes()


def test_fold_batchnorm_in_torch():
    m = _bn_model()
    f = fold_batchnorm(m)
    assert not any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in f[:2].modules())
    assert isinstance(f[10], nn.Identity)  # Linear + BatchNorm1d
    assert isinstance(m[10], nn.BatchNorm1d)  # original untouched
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(f(x), m(x), rtol=1e-5, atol=1e-5)


def test_relu_to_qcfs():
    torch.manual_seed(0)
    shared = nn.ReLU()
    m = nn.Sequential(
        nn.Linear(10, 20), nn.ReLU(inplace=True),
        nn.Sequential(nn.Linear(20, 20), nn.ReLU()),
        nn.Linear(20, 20), shared, nn.Linear(20, 20), shared, nn.Linear(20, 3),
    )
    n_relu_modules = len({id(x) for x in m.modules() if isinstance(x, nn.ReLU)})
    calib = torch.randn(300, 10)
    # expected lam: percentile of each ReLU's input, recorded independently
    with torch.no_grad():
        h0 = m[0](calib)
        h1 = m[2][0](torch.relu(h0))
        h2 = m[3](torch.relu(h1))
        h3 = m[5](torch.relu(h2))
    expected = [np.percentile(h0.numpy(), 99.0), np.percentile(h1.numpy(), 99.0),
                np.percentile(np.concatenate([h2.numpy().ravel(), h3.numpy().ravel()]), 99.0)]

    loader = [(calib[:128], None), (calib[128:], None)]
    out = relu_to_qcfs(m, 7, loader, percentile=99.0)
    assert out is m
    assert not any(isinstance(x, nn.ReLU) for x in m.modules())
    qs = [m[1], m[2][1], m[4]]
    assert all(isinstance(q, QCFS) and q.levels == 7 and q.lam.requires_grad for q in qs)
    assert m[4] is m[6] and n_relu_modules == 3
    for q, lam in zip(qs, expected):
        assert float(q.lam.detach()) == pytest.approx(lam, rel=1e-5)
    # tensor input works as well
    m2 = nn.Sequential(nn.Linear(10, 4), nn.ReLU())
    relu_to_qcfs(m2, 3, calib)
    assert isinstance(m2[1], QCFS)


def test_relu_to_qcfs_bounded_relus_and_functional_refusal():
    """ReLU6 / Hardtanh(0, c) become QCFS with λ capped at the bound; a functional ReLU (which no
    module swap can reach) is refused by name instead of being left in place silently."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(10, 20), nn.ReLU6(), nn.Linear(20, 20), nn.Hardtanh(0.0, 0.5), nn.Linear(20, 3))
    calib = 10 * torch.randn(300, 10)
    with torch.no_grad():
        h0 = m[0](calib)
    relu_to_qcfs(m, 7, calib, percentile=99.0)
    assert isinstance(m[1], QCFS) and isinstance(m[3], QCFS)
    assert float(m[1].lam) == pytest.approx(min(6.0, float(np.percentile(h0.numpy(), 99.0))), rel=1e-5)
    assert float(m[3].lam) == pytest.approx(0.5)         # the calibration inputs exceed 0.5: capped

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(torch.nn.functional.relu(self.fc1(x)))
    f = Functional()
    with pytest.raises(ValueError, match=r"functional ReLU call.*top level.*test_nn_qcfs\.py:\d+.*nn\.ReLU"):
        relu_to_qcfs(f, 3, calib)
    assert isinstance(f.act, nn.ReLU)          # nothing half-replaced
    with pytest.raises(ValueError, match="no nn.ReLU"):
        relu_to_qcfs(nn.Sequential(nn.Linear(10, 2)), 3, calib)
