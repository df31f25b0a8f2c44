"""The bitplane neuron against the error-free paper's worked example (digest §2.2, §2.6)."""
import numpy as np
import torch

from neurodeploy.ir import synapses as syn
from neurodeploy.schemes.bitplane.neurons import BitplaneIF
from neurodeploy.schemes.bitplane import kernel as bp

# theta = 7, T = 3 (Q = 7 codes 0..7), step Delta = theta / 2^T = 7/8.  We run the integer
# neuron with D = 8000 integer units per Delta, so real u maps to round(u / Delta * D).
DELTA, D, T = 7 / 8, 8000, 3
NEURON = BitplaneIF(v_th_mant=D, code_max=7, n_steps=T)


def to_units(u_real):
    return torch.as_tensor(np.round(np.asarray(u_real) / DELTA * D).astype(np.int64))


def trace(u_int):
    """Membrane before each emission step, like the paper's u(1), u(2), u(3)."""
    u = int(min(u_int, NEURON.code_max * D))
    out, spikes = [], []
    for j in range(T):
        out.append(u * DELTA / D)
        theta = D << (T - 1 - j)
        s = u >= theta
        u -= s * theta
        spikes.append(int(s))
    return out, spikes


def test_paper_example_spike_trains_without_shift():
    # the rebuttal's example: accumulated inputs 3.7 and 8.2 -> 1,0,0 and 1,1,1
    planes = bp.emit(to_units([3.7, 8.2]), NEURON)
    assert planes[0].tolist() == [1, 0, 0]
    assert planes[1].tolist() == [1, 1, 1]


def test_paper_example_membrane_traces():
    u, s = trace(to_units(3.7))
    assert s == [1, 0, 0] and np.allclose(u, [3.7, 0.2, 0.2], atol=1e-3)
    # the paper's unclamped trace is 8.2, 4.7, 2.95; ours clamps at Q*Delta = 6.125 first
    # (needed when Q < 2^T - 1), which changes the residue but not the spikes
    u, s = trace(to_units(8.2))
    assert s == [1, 1, 1] and np.allclose(u, [6.125, 2.625, 0.875], atol=1e-3)


def test_shifted_traces_from_the_digest_table():
    # with the bias shift Delta/2 = 0.4375: u(1), u(2), u(3) = 4.1375, 0.6375, 0.6375
    u, s = trace(to_units(3.7 + DELTA / 2))
    assert s == [1, 0, 0] and np.allclose(u, [4.1375, 0.6375, 0.6375], atol=1e-3)


def test_bias_shift_makes_snn_codes_equal_qcfs_codes():
    z = np.random.default_rng(0).uniform(-3, 10, 100_000)
    ann = np.clip(np.floor(z / DELTA + 0.5), 0, 7).astype(np.int64)
    with_shift = bp.decode_planes(bp.emit(to_units(np.floor((z + DELTA / 2) / DELTA * D) * DELTA / D), NEURON))
    without = bp.decode_planes(bp.emit(to_units(np.floor(z / DELTA * D) * DELTA / D), NEURON))
    assert int((with_shift.numpy() != ann).sum()) == 0
    # the digest measures 23 766 / 100 000 mismatches without the shift on this range
    assert 20_000 < int((without.numpy() != ann).sum()) < 27_000
    # the table's rows: 3.2 -> 011 without shift, 100 with; 0.6 -> 000 without, 001 with
    assert bp.emit(to_units([3.2]), NEURON)[0].tolist() == [0, 1, 1]
    assert bp.emit(to_units([3.2 + DELTA / 2]), NEURON)[0].tolist() == [1, 0, 0]
    assert bp.emit(to_units([0.6]), NEURON)[0].tolist() == [0, 0, 0]
    assert bp.emit(to_units([0.6 + DELTA / 2]), NEURON)[0].tolist() == [0, 0, 1]


def test_clamp_at_levels_that_are_not_a_power_of_two_minus_one():
    # Q = 8 needs T = 4 bits; codes above 8 must clamp to 8 (= 1000), not run to 15
    n = BitplaneIF(v_th_mant=5, code_max=8, n_steps=4)
    codes = bp.decode_planes(bp.emit(torch.tensor([0, 4, 39, 40, 44, 45, 75, 10_000, -7]), n))
    assert codes.tolist() == [0, 0, 7, 8, 8, 8, 8, 8, 0]


def test_horner_accumulation_equals_weighted_sum():
    rng = np.random.default_rng(1)
    planes = torch.as_tensor(rng.integers(0, 2, (5, 4, 7)))
    w = torch.as_tensor(rng.integers(-127, 128, (3, 7)))
    currents = planes @ w.T                      # (5, 4, 3): one current per plane
    codes = bp.decode_planes(planes)             # (5, 7)
    assert torch.equal(bp.horner(currents), codes @ w.T)


def test_bitserial_maxpool_equals_max_of_codes():
    rng = np.random.default_rng(2)
    codes = torch.as_tensor(rng.integers(0, 16, (3, 2, 4, 6)))
    planes = bp.encode_planes(codes, 4)
    pooled = bp.decode_planes(bp.bitserial_maxpool(planes, syn.MaxPool((2, 2), (2, 2))))
    assert torch.equal(pooled, torch.nn.functional.max_pool2d(codes.double(), 2).long())


def test_bitserial_maxpool_padded_equals_max_of_codes():
    """Zero (silent) padding, symmetric and ceil_mode-like asymmetric: the max of the real codes,
    as PyTorch's -inf padding gives it (codes >= 0, every window holds a real code)."""
    rng = np.random.default_rng(3)
    codes = torch.as_tensor(rng.integers(0, 16, (3, 2, 5, 7)))
    planes = bp.encode_planes(codes, 4)
    for mp, torch_kw in ((syn.MaxPool((3, 3), (2, 2), (1, 1, 1, 1)), {"padding": 1}),
                         (syn.MaxPool((3, 2), (2, 2), (1, 2, 0, 1)), {"padding": (1, 0), "ceil_mode": True})):
        pooled = bp.decode_planes(bp.bitserial_maxpool(planes, mp))
        want = torch.nn.functional.max_pool2d(codes.double(), mp.kernel, mp.stride, **torch_kw).long()
        assert torch.equal(pooled, want), mp
