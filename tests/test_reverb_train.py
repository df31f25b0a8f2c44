"""Training ReverB-SNN networks: the digest §4.6 float vectors, the straight-through and α
gradients, rate-based backprop's eligibility for the graded-spike neuron, and ``fit``."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from neurodeploy.nn.lif import SpikingSequential, reset_net
from neurodeploy.nn.reverb import BinaryConv2d, BinaryLinear, ReverBNeuron, binary_sign
from neurodeploy.train.data import digits
from neurodeploy.train.fit import evaluate, fit
from neurodeploy.train.rate_bp import rate_step, time_major, train_step

D = torch.float64


def run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A spike-mode forward of a (T, N, ...) tensor from a fresh state."""
    reset_net(module)
    return module(x)


def record(neuron: ReverBNeuron, currents: torch.Tensor):
    """A rate-BP record pass: (outputs, rate, kappa)."""
    reset_net(neuron)
    neuron.mode = "record"
    try:
        out = neuron(currents)
    finally:
        neuron.mode = "spike"
    return out, neuron.rate, neuron.kappa


# ---- digest §4.6 (tau = 0.25, V_th = 0.25, hard reset) ---------------------------------------------------

O_IN = torch.tensor([[1.2, 0.1, 0.0], [0.4, 0.0, 0.3], [0.2, 0.0, 0.0], [0.0, 0.0, 0.2]], dtype=D)
ALPHA = torch.tensor([0.5, 2.0, 1.0], dtype=D)


def digest_linear() -> BinaryLinear:
    lin = BinaryLinear(3, 1, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.3, -0.7, 0.1]], dtype=D))
        lin.alpha.copy_(ALPHA.view(1, 3))
    return lin


def test_neuron_trace_leaks_fires_with_its_value_and_resets():
    # U = 0.25 U + I: 0.1 -> 0.125 (leak) -> fires at 0.5 emitting 0.5 -> 0 (reset) -> 0.05
    n = ReverBNeuron(0.25, 0.25)
    out = run(n, torch.tensor([0.1, 0.1, 0.46875, 0.05], dtype=D).view(4, 1))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 0.0, 0.5, 0.0], dtype=D))
    # with V_th = 0 every non-negative membrane fires, so a positive constant input is passed through
    out0 = run(ReverBNeuron(0.25, 0.0), torch.full((3, 2), 0.3, dtype=D))
    torch.testing.assert_close(out0, torch.full((3, 2), 0.3, dtype=D))


def test_digest_binary_linear_with_alpha():
    lin = digest_linear()
    assert lin.binary_weight().tolist() == [[1.0, -1.0, 1.0]]
    i_train = run(SpikingSequential(lin), O_IN.view(4, 1, 3)).flatten()
    # the folded form: α moves onto the incoming spikes, synapses stay ±1
    i_folded = F.linear(O_IN * ALPHA, lin.binary_weight().detach()).flatten()
    want_i = torch.tensor([0.4, 0.5, 0.1, 0.2], dtype=D)
    torch.testing.assert_close(i_train, want_i)
    torch.testing.assert_close(i_folded, want_i)
    out = run(SpikingSequential(lin, ReverBNeuron(0.25, 0.25)), O_IN.view(4, 1, 3)).flatten()
    torch.testing.assert_close(out, torch.tensor([0.4, 0.5, 0.0, 0.0], dtype=D))


def test_digest_batchnorm_in_the_loop_and_its_fold():
    bn = nn.BatchNorm1d(1, eps=0.0).double().eval()
    with torch.no_grad():
        bn.weight.fill_(2.0)
        bn.bias.fill_(0.1)
        bn.running_mean.fill_(0.2)
        bn.running_var.fill_(0.25)  # sigma = 0.5 -> s = 4, c = -0.7
    j = torch.tensor([0.15, 0.3, -0.1, 0.25], dtype=D).view(4, 1, 1)
    net = SpikingSequential(bn, ReverBNeuron(0.25, 0.25))
    torch.testing.assert_close(run(SpikingSequential(bn), j).flatten(), torch.tensor([-0.1, 0.5, -1.1, 0.3], dtype=D))
    want = torch.tensor([0.0, 0.475, 0.0, 0.0], dtype=D)
    torch.testing.assert_close(run(net, j).flatten(), want)
    # the fold of §4.3: track U/s with threshold V_th/s = 0.0625 and bias c/s = -0.175, emit s·Ũ
    folded = 4.0 * run(ReverBNeuron(0.25, 0.0625), j - 0.175).flatten()
    torch.testing.assert_close(folded, want)


# ---- straight-through estimator and α gradient ---------------------------------------------------------------

def test_sign_forward_and_clipped_ste():
    w = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.5, 1.0, 2.0], dtype=D, requires_grad=True)
    b = binary_sign(w)
    assert b.tolist() == [-1, -1, -1, 1, 1, 1, 1]  # sign(0) = +1
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], dtype=D)
    b.backward(g)
    # d sign(W)/dW = 1{|W| <= 1}: passes the upstream gradient inside [-1, 1], blocks it outside
    assert w.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]


def test_binary_linear_gradients_analytic():
    torch.manual_seed(0)
    lin = BinaryLinear(5, 3).double()
    with torch.no_grad():
        lin.weight.mul_(4.0)  # push some latent weights past |W| = 1 so the clip matters
    assert (lin.weight.abs() > 1).any() and (lin.weight.abs() <= 1).any()
    x = torch.randn(7, 5, dtype=D)
    g = torch.randn(7, 3, dtype=D)
    (lin(x) * g).sum().backward()
    sw = torch.where(lin.weight >= 0, 1.0, -1.0).to(D).detach()
    # y_n,o = sum_i alpha_i sign(W_oi) x_n,i + b_o
    want_alpha = torch.einsum("no,oi,ni->i", g, sw, x).view(1, 5)
    want_w = (g.T @ x) * lin.alpha.detach() * (lin.weight.abs() <= 1).to(D)
    torch.testing.assert_close(lin.alpha.grad, want_alpha)
    torch.testing.assert_close(lin.weight.grad, want_w)
    torch.testing.assert_close(lin.bias.grad, g.sum(0))


@pytest.mark.parametrize("layer", ["linear", "conv"])
def test_alpha_gradient_matches_finite_differences(layer):
    """α enters linearly, so central differences are exact up to rounding; sign(W) is held fixed."""
    torch.manual_seed(1)
    if layer == "linear":
        mod, x = BinaryLinear(4, 3).double(), torch.randn(6, 4, dtype=D)
    else:
        mod, x = BinaryConv2d(3, 2, 3, padding=1).double(), torch.randn(2, 3, 5, 5, dtype=D)
    assert tuple(mod.alpha.shape) == ((1, 4) if layer == "linear" else (1, 3, 1, 1))
    alpha = mod.alpha.detach().clone().requires_grad_(True)

    def f(a):
        with torch.no_grad():
            mod.alpha.copy_(a)
        return mod(x).square().sum()

    def f_diff(a):  # the same function, differentiable in a (functional call with α replaced)
        return torch.func.functional_call(mod, {"alpha": a}, (x,)).square().sum()

    f_diff(alpha).backward()
    h = 1e-6
    fd = torch.zeros_like(alpha)
    for k in range(alpha.numel()):
        e = torch.zeros_like(alpha).view(-1)
        e[k] = h
        e = e.view_as(alpha)
        fd.view(-1)[k] = (f(alpha.detach() + e) - f(alpha.detach() - e)) / (2 * h)
    torch.testing.assert_close(alpha.grad, fd, rtol=1e-6, atol=1e-8)
    assert alpha.grad.abs().max() > 1e-3


# ---- rate-based backprop: eligibility of the graded-spike neuron ---------------------------------------------

def bptt_const_grad(neuron: ReverBNeuron, current: torch.Tensor, steps: int) -> torch.Tensor:
    """d mean_t(O_t) / d I for a current held constant, by autograd through the unrolled steps."""
    i = current.clone().requires_grad_(True)
    run(neuron, i.unsqueeze(0).expand(steps, *i.shape)).mean(0).sum().backward()
    return i.grad


def test_eligibility_hand_computed():
    # tau = 0.25, V_th = 0.25, I = 0.24 constant, T = 4:
    #   U = 0.24 (no spike), 0.30 (spike, emits 0.30), 0.24 (no), 0.30 (spike)
    #   dU/dI before the reset: 1, 1 + 0.25 = 1.25, 1 (reset cut the history), 1.25
    #   dO/dI = fired * dU/dI: 0, 1.25, 0, 1.25 -> kappa = 0.625; rate = 0.6 / 4 = 0.15
    n = ReverBNeuron(0.25, 0.25)
    out, rate, kappa = record(n, torch.full((4, 1), 0.24, dtype=D))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 0.3, 0.0, 0.3], dtype=D))
    assert float(rate) == pytest.approx(0.15, abs=1e-12)
    assert float(kappa) == pytest.approx(0.625, abs=1e-12)
    # V_th = 0 with a positive input: fires every step, each time from a reset membrane -> kappa = 1
    _, r0, k0 = record(ReverBNeuron(0.25, 0.0), torch.full((3, 1), 0.4, dtype=D))
    assert (float(r0), float(k0)) == pytest.approx((0.4, 1.0), abs=1e-12)
    # a neuron that never fires passes no gradient
    _, r1, k1 = record(ReverBNeuron(0.25, 0.0), torch.full((3, 1), -0.4, dtype=D))
    assert (float(r1), float(k1)) == (0.0, 0.0)


def test_eligibility_equals_bptt_for_constant_input():
    g = torch.Generator().manual_seed(3)
    cur = torch.rand(200, generator=g, dtype=D) * 1.2 - 0.4
    for tau, v_th in [(0.25, 0.0), (0.25, 0.25), (0.8, 0.5), (1.0, 0.3)]:
        n = ReverBNeuron(tau, v_th)
        _, _, kappa = record(n, cur.unsqueeze(0).expand(5, -1))
        torch.testing.assert_close(kappa, bptt_const_grad(n, cur, 5))


def test_rate_step_one_synapse_gradient():
    # I = w x = 1.2 * 0.2 = 0.24 -> kappa = 0.625 (above); loss = -0.5 * mean_t O
    lin = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        lin.weight.fill_(1.2)
    model = SpikingSequential(lin, ReverBNeuron(0.25, 0.25))
    x = torch.full((1, 1), 0.2, dtype=D, requires_grad=True)
    _, out, _ = rate_step(model, time_major(x, 4), None, lambda o, y: (-0.5 * o).sum())
    assert float(out) == pytest.approx(0.15, abs=1e-12)
    assert float(lin.weight.grad) == pytest.approx(-0.5 * 0.625 * 0.2, abs=1e-12)
    assert float(x.grad) == pytest.approx(-0.5 * 0.625 * 1.2, abs=1e-12)


# ---- fit on a tiny subset ------------------------------------------------------------------------------------

def tiny_reverb_net(seed: int, v_th: float = 0.25, dtype=torch.float32) -> SpikingSequential:
    """conv-BN-ReverB-pool-binaryconv-BN-ReverB-pool-binarylinear, narrower than the digits model.

    V_th = 0.25 by default so that the neurons have temporal dynamics (see the V_th = 0 test)."""
    torch.manual_seed(seed)
    return SpikingSequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), ReverBNeuron(0.25, v_th), nn.AvgPool2d(2),
        BinaryConv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), ReverBNeuron(0.25, v_th),
        nn.AvgPool2d(2), nn.Flatten(), BinaryLinear(32, 10),
    ).to(dtype)


@pytest.fixture(scope="module")
def subset():
    xtr, ytr, _, _ = digits(0)
    return xtr[:192], ytr[:192]


def grads(model, method, xs, y):
    model.zero_grad()
    train_step(model, xs, y, nn.CrossEntropyLoss(), method)
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_rate_gradient_is_exact_for_static_input_at_zero_threshold(subset):
    """With V_th = 0 and a constant input every neuron emits max(I, 0) at every step (a negative
    membrane never fires, a non-negative one fires from a reset membrane), so the network is a
    binary-weight ReLU CNN at every step and rate-based backprop's gradient *is* BPTT's."""
    xs = time_major(torch.from_numpy(subset[0][:32]).double(), 3)
    y = torch.from_numpy(subset[1][:32])
    model = tiny_reverb_net(0, v_th=0.0, dtype=D)
    gb, gr = grads(model, "bptt", xs, y), grads(model, "rate_M", xs, y)
    assert gb.abs().max() > 1e-3
    torch.testing.assert_close(gr, gb, rtol=1e-9, atol=1e-12)
    # with V_th > 0 the dynamics matter: the two gradients differ, but point the same way
    # (measured, seeds 0-2, T in {2, 3, 4, 8}: cosine >= 0.99998, max |difference| 7e-4..3e-3)
    model = tiny_reverb_net(0, v_th=0.25, dtype=D)
    gb, gr = grads(model, "bptt", xs, y), grads(model, "rate_M", xs, y)
    assert not torch.allclose(gr, gb, rtol=1e-6, atol=1e-9)
    assert float(torch.cosine_similarity(gb, gr, 0)) > 0.999


@pytest.mark.parametrize("method", ["bptt", "rate_M"])
def test_fit_reduces_loss(method, subset):
    # measured (seeds 0-2, both methods): loss 2.31 -> 0.64..0.90 and accuracy 0.1 -> 0.77..0.84
    model = tiny_reverb_net(0)
    loss0, acc0 = evaluate(model, subset, timesteps=4)
    hist = fit(model, subset, epochs=8, timesteps=4, method=method, lr=3e-2, progress=False, seed=0,
               batch_size=32, measure_memory=False)
    loss1, acc1 = evaluate(model, subset, timesteps=4)
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]
    assert loss1 < 0.5 * loss0, (loss0, loss1)
    assert acc1 > 0.6 > acc0, (acc0, acc1)
    # every trainable part learned: latent binary weights and α of every binary layer moved
    fresh = dict(tiny_reverb_net(0).named_parameters())
    for name, p in model.named_parameters():
        assert not torch.equal(p, fresh[name]), name


def test_fit_is_deterministic(subset):
    def once():
        m = tiny_reverb_net(1)
        fit(m, subset, epochs=1, timesteps=2, method="rate_M", lr=1e-2, progress=False, seed=5, batch_size=32,
            measure_memory=False)
        return torch.cat([p.detach().flatten() for p in m.parameters()])
    torch.testing.assert_close(once(), once(), rtol=0, atol=0)


# ---- argument checks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(v_th=-0.1), dict(tau=-0.01), dict(tau=1.5), dict(v_th=float("nan"))])
def test_neuron_rejects_bad_parameters(kw):
    with pytest.raises(ValueError):
        ReverBNeuron(**kw)


def test_neuron_accepts_the_interval_ends():
    assert ReverBNeuron(0.0, 0.0).tau == 0.0 and ReverBNeuron(1.0, 2.0).tau == 1.0


def test_binary_conv_rejects_groups():
    with pytest.raises(ValueError, match="groups"):
        BinaryConv2d(4, 4, 3, groups=2)


def test_alpha_init_is_mean_abs_per_input_channel():
    torch.manual_seed(2)
    conv = BinaryConv2d(3, 5, 3)
    want = conv.weight.detach().abs().mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    torch.testing.assert_close(conv.alpha.detach(), want)
    np.testing.assert_array_equal(conv.binary_weight().detach().abs().numpy(), 1.0)


# ---- the training script ------------------------------------------------------------------------------------

def test_training_script_writes_model_and_metadata(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "models" / "train_digits_reverb.py"
    spec = importlib.util.spec_from_file_location("train_digits_reverb", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    # main() pins the float code path as this session already is (conftest): nothing to restore
    meta = script.main(["--epochs", "1", "--timesteps", "1", "--binary-first", "--binary-last",
                        "--out", str(tmp_path)])
    assert json.loads((tmp_path / "digits_reverb.json").read_text())["test_accuracy"] == meta["test_accuracy"]
    assert meta["binary"]["layers"] == ["0", "4", "9"]  # first conv, hidden conv, read-out
    assert meta["binary"]["real_weights"] == 0 and meta["binary"]["binary_weights"] == 144 + 4608 + 1280
    model = script.build_model(binary_first=True, binary_last=True)
    model.load_state_dict(torch.load(tmp_path / "digits_reverb.pt"))
    # the read-out is a plain BinaryLinear: one trained α per flattened feature (1×128, the paper's
    # 1×F_in), varying within a channel of the (32, 2, 2) tensor; it did train (differs from its init)
    assert type(model[9]) is BinaryLinear and not nn.utils.parametrize.is_parametrized(model[9])
    alpha = model[9].alpha.detach()
    assert alpha.shape == (1, 128) and (alpha.view(32, 4).amax(1) > alpha.view(32, 4).amin(1)).all()
    torch.manual_seed(0)  # the script's initial model (seed 0)
    fresh = script.build_model(binary_first=True, binary_last=True)[9].alpha.detach()
    assert not torch.allclose(alpha, fresh)
    # and it compiles: α lands on the second ReverB layer as per-neuron emission multipliers
    import neurodeploy as nd
    xtr = digits(0)[0]
    net = nd.compile(model.eval(), xtr[:2], target="loihi2", scheme="reverb", timesteps=1, calibration=xtr[:64])
    assert np.asarray(net.graph.layers[2].neuron.out_mant).shape == (32, 4, 4)
    # above chance (0.1) after one epoch (measured 0.34)
    assert len(meta["history"]) == 1 and meta["test_accuracy"] > 0.2
    # the default keeps the first and last layers real-valued
    assert script.binary_layers(script.build_model()) == ["4"]
