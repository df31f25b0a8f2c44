"""LIF neuron, surrogate gradients, the neuron interface and the (T, N, ...) time convention."""

import itertools

import pytest
import torch
from torch import nn

from neurodeploy.nn.lif import LIF, SpikingNeuron, SpikingSequential, multistep, reset_net, set_mode
from neurodeploy.nn.surrogate import ATan, Rectangle, Sigmoid, heaviside

RESETS = list(itertools.product(["subtract", "zero"], [True, False]))  # (reset, detach_reset)


def record(neuron: SpikingNeuron, currents: torch.Tensor):
    """Run a record pass; return (spikes, rate, kappa)."""
    reset_net(neuron)
    neuron.mode = "record"
    s = neuron(currents)
    neuron.mode = "spike"
    return s, neuron.rate, neuron.kappa


def bptt_const_grad(neuron: SpikingNeuron, current: torch.Tensor, steps: int) -> torch.Tensor:
    """d mean_t(out_t) / d I for a current held constant over ``steps`` steps, by autograd (BPTT)."""
    i = current.clone().requires_grad_(True)
    reset_net(neuron)
    neuron.mode = "spike"
    neuron(i.unsqueeze(0).expand(steps, *i.shape)).mean(0).sum().backward()
    return i.grad


class AutoLIF(LIF):
    """LIF whose eligibility comes from the base class (forward-mode AD through step)."""

    rate_step = SpikingNeuron.rate_step
    init_eligibility = SpikingNeuron.init_eligibility


class GradedResetNeuron(SpikingNeuron):
    """A ReverB-like neuron written against the interface only: emits its membrane value when it
    reaches the threshold, then resets to 0."""

    def __init__(self, tau=0.25, v_th=0.25):
        super().__init__()
        self.tau, self.v_th, self.sg = tau, v_th, Sigmoid(4.0)

    def init_state(self, current):
        return (torch.zeros_like(current),)

    def step(self, state, current):
        v = self.tau * state[0] + current
        f = self.sg.spike(v - self.v_th)
        return v * f, (v * (1 - f.detach()),)


# ---- digest §5.9 unit vectors (lambda=0.2, theta=1, sigmoid alpha=4, T=4) ---------------------------------

def test_kappa_subthreshold_soft_reset():
    s, r, k = record(LIF(0.2, 1.0, "subtract"), torch.full((4, 1), 0.6, dtype=torch.float64))
    assert s.flatten().tolist() == [0, 0, 0, 0] and float(r) == 0.0
    assert float(k) == pytest.approx(0.848261, abs=1e-6)


def test_kappa_spiking_soft_reset():
    s, r, k = record(LIF(0.2, 1.0, "subtract"), torch.full((4, 1), 0.9, dtype=torch.float64))
    assert s.flatten().tolist() == [0, 1, 0, 1] and float(r) == 0.5
    assert float(k) == pytest.approx(1.137641, abs=1e-6)


def test_kappa_spiking_hard_reset():
    # the digest's hard-reset recurrence keeps the reset's gradient: detach_reset=False
    n = LIF(0.2, 1.0, "zero", detach_reset=False)
    i = torch.full((1,), 0.9, dtype=torch.float64)
    state, elig, vs, eps = n.init_state(i), n.init_eligibility(n.init_state(i)), [], []
    for _ in range(4):
        v_pre = 0.2 * state[0] + i
        eps.append(float(0.2 * elig[0] + 1))  # epsilon_t, before the reset
        vs.append(float(v_pre))
        _, state, elig, _ = n.rate_step(state, elig, i)
    assert vs == pytest.approx([0.9, 1.08, 0.9, 1.08], abs=1e-12)
    assert eps == pytest.approx([1, 1.0270, 0.7837, 1.0212], abs=1e-4)
    s, r, k = record(n, torch.full((4, 1), 0.9, dtype=torch.float64))
    assert s.flatten().tolist() == [0, 1, 0, 1]
    assert float(k) == pytest.approx(0.927723, abs=1e-6)


def test_soft_reset_trace():
    n = LIF(0.2, 1.0, "subtract")
    v, vs = (torch.zeros(1, dtype=torch.float64),), []
    for _ in range(4):
        _, v = n.step(v, torch.full((1,), 0.9, dtype=torch.float64))
        vs.append(float(v[0]))
    # post-reset values; pre-reset 0.9, 1.08, 0.916, 1.0832 (digest)
    assert vs == pytest.approx([0.9, 0.08, 0.916, 0.0832], abs=1e-12)


# ---- eligibility == BPTT derivative for constant input; closed form == forward AD ---------------------------

@pytest.mark.parametrize("reset,detach", RESETS)
@pytest.mark.parametrize("decay", [0.2, 0.5, 1.0])
def test_kappa_is_bptt_constant_input_derivative(reset, detach, decay):
    g = torch.Generator().manual_seed(1)
    i = torch.rand(200, generator=g, dtype=torch.float64) * 2.5 - 0.3
    for T in (1, 3, 6):
        n = LIF(decay, 1.0, reset, detach_reset=detach)
        _, _, k = record(n, i.unsqueeze(0).expand(T, -1))
        torch.testing.assert_close(k, bptt_const_grad(n, i, T), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reset,detach", RESETS)
@pytest.mark.parametrize("strict", [False, True])
def test_closed_form_matches_forward_ad(reset, detach, strict):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(7, 5, 30, generator=g, dtype=torch.float64) * 2.0 - 0.2  # time-varying currents
    a, b = LIF(0.3, 0.8, reset, strict=strict, detach_reset=detach), AutoLIF(0.3, 0.8, reset, strict=strict,
                                                                             detach_reset=detach)
    sa, ra, ka = record(a, x)
    sb, rb, kb = record(b, x)
    assert torch.equal(sa, sb) and torch.equal(ra, rb)
    torch.testing.assert_close(ka, kb, rtol=1e-12, atol=1e-12)


def test_custom_neuron_gets_eligibility_from_step():
    n = GradedResetNeuron()
    i = torch.linspace(-0.2, 0.6, 50, dtype=torch.float64)
    _, r, k = record(n, i.unsqueeze(0).expand(4, -1))
    torch.testing.assert_close(k, bptt_const_grad(n, i, 4), rtol=1e-10, atol=1e-12)
    # digest §4.6: currents 0.4, 0.5, 0.1, 0.2 -> outputs 0.4, 0.5, 0, 0
    s, _, _ = record(n, torch.tensor([[0.4], [0.5], [0.1], [0.2]], dtype=torch.float64))
    assert s.flatten().tolist() == pytest.approx([0.4, 0.5, 0.0, 0.0])


# ---- firing rule and resets ------------------------------------------------------------------------------------

def test_strict_threshold_and_resets():
    one = torch.ones(1, 1)
    assert LIF(0.5, 1.0)(one).item() == 1.0                 # v >= v_th fires (paper)
    assert LIF(0.5, 1.0, strict=True)(one).item() == 0.0    # v > v_th (Loihi)
    x = torch.full((3, 1), 1.5)
    n = LIF(1.0, 1.0, "subtract")
    state = n.init_state(x[0])
    _, state = n.step(state, x[0])
    assert state[0].item() == pytest.approx(0.5)
    n = LIF(1.0, 1.0, "zero")
    _, state = n.step(n.init_state(x[0]), x[0])
    assert state[0].item() == 0.0


def test_detach_reset_controls_gradient():
    x = torch.full((3, 1), 0.9, requires_grad=True)
    LIF(0.5, 1.0, "zero", detach_reset=True)(x).sum().backward()
    g1 = x.grad.clone()
    x.grad = None
    LIF(0.5, 1.0, "zero", detach_reset=False)(x).sum().backward()
    assert not torch.allclose(g1, x.grad)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        LIF(reset="soft")
    with pytest.raises(ValueError):
        LIF(decay=1.5)
    n = LIF()
    with pytest.raises(ValueError):
        n(torch.ones(3))
    with pytest.raises(RuntimeError):
        _ = n.kappa
    n.mode = "bogus"
    with pytest.raises(ValueError):
        n(torch.ones(2, 2))


# ---- surrogate -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sg", [Sigmoid(4.0), Sigmoid(2.5), ATan(2.0), Rectangle(0.5)])
def test_surrogate_backward_and_jvp(sg):
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    s = sg.spike(x)
    assert torch.equal(s, heaviside(x.detach()))
    s.sum().backward()
    torch.testing.assert_close(x.grad, sg.grad(x.detach()))
    _, t = torch.func.jvp(lambda z: sg.spike(z), (x.detach(),), (torch.ones_like(x),))
    torch.testing.assert_close(t, sg.grad(x.detach()))


def test_sigmoid_surrogate_is_sigmoid_derivative():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64, requires_grad=True)
    torch.sigmoid(4 * x).sum().backward()
    torch.testing.assert_close(Sigmoid(4.0).grad(x.detach()), x.grad)
    assert Sigmoid().alpha == 4.0 and LIF().surrogate == Sigmoid(4.0)


# ---- time convention -----------------------------------------------------------------------------------------

def small_net():
    torch.manual_seed(0)
    return SpikingSequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), LIF(), nn.AvgPool2d(2),
                             nn.Flatten(), nn.Linear(3 * 16, 4))


def test_time_first_shapes_and_stepwise_equivalence():
    net = small_net().eval()
    x = torch.rand(5, 2, 1, 8, 8) * 3
    with torch.no_grad():
        y = net(x)
        assert y.shape == (5, 2, 4)
        # same thing built by hand, step by step, with the neuron's state carried over
        conv, bn, lif, pool, flat, lin = net
        state, outs = lif.init_state(torch.zeros(2, 3, 8, 8)), []
        for t in range(5):
            s, state = lif.step(state, bn(conv(x[t])))
            outs.append(lin(flat(pool(s))))
        torch.testing.assert_close(y, torch.stack(outs))
        # stateful single-step calls == one multi-step call
        set_mode(net, "spike", stateful=True)
        reset_net(net)
        y2 = torch.cat([net(x[t:t + 1]) for t in range(5)])
        set_mode(net, "spike")
        torch.testing.assert_close(y, y2)
        # a fresh call starts from zero state
        torch.testing.assert_close(net(x), y)


def test_multistep_folds_time_into_batch():
    x = torch.rand(3, 2, 5)
    lin = nn.Linear(5, 4)
    torch.testing.assert_close(multistep(lin, x), torch.stack([lin(x[t]) for t in range(3)]))
