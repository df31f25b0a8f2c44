"""`lowering.quantize.StateScreen`: a weight exponent / unit candidate is ruled out from the unrounded
weights only where rounding them could not fit the state bound either -- so quantise_at with the screen
gives exactly what it gives without it, on every candidate, while ruling most misfits out early."""
import numpy as np
import pytest

from neurodeploy.ir import synapses as syn
from neurodeploy.lowering.lower import RealBranch
from neurodeploy.lowering.quantize import StateScreen, bias_format, quantise_at, round_half_away
from neurodeploy.target import load_target


def branches(kind: str, rng) -> tuple[list, dict]:
    """Two branches into one layer of 6 outputs (a residual-like sum), real weights with exact zeros."""
    if kind == "dense":
        w1, w2 = rng.normal(size=(6, 40)), rng.normal(size=(6, 12)) * 3
        w1[rng.random(w1.shape) < 0.3] = 0.0
        return ([RealBranch("a", [syn.Dense(weight=w1)], np.float64(1.0), True),
                 RealBranch("b", [syn.Dense(weight=w2)], np.float64(1.0), True)], {"a": (40,), "b": (12,)})
    w1, w2 = rng.normal(size=(6, 4, 3, 3)), rng.normal(size=(6, 6, 1, 1))
    w1[rng.random(w1.shape) < 0.3] = 0.0
    pool = [syn.MaxPool(kernel=(2, 2), stride=(2, 2))] if kind == "maxpool_conv" else \
        [syn.SumPool(kernel=(2, 2), stride=(2, 2))]
    return ([RealBranch("a", pool + [syn.Conv(weight=w1, padding=(1, 1))], np.float64(1.0), True),
             RealBranch("b", [syn.Conv(weight=w2)], np.float64(1.0), True)], {"a": (4, 8, 8), "b": (6, 4, 4)})


def same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    (ba, ma, ea, ta), (bb, mb, eb, tb) = a, b
    return (ea, ta) == (eb, tb) and np.array_equal(ma, mb) and all(
        np.array_equal(syn.weighted_op(x.ops).weight, syn.weighted_op(y.ops).weight) for x, y in zip(ba, bb))


@pytest.mark.parametrize("kind", ["dense", "sumpool_conv", "maxpool_conv"])
def test_screen_never_rules_out_a_candidate_that_fits(kind):
    target = load_target("loihi2")
    rng = np.random.default_rng(7)
    real, shapes = branches(kind, rng)
    src_max = {"a": 15, "b": 7}
    bias = rng.normal(size=6)          # small: the state bound, not the bias format, limits the unit
    screen = StateScreen(real, shapes, src_max)
    ruled_out = fits = 0
    for exp in range(0, 8):
        # units from 1 to far beyond what fits: around the state maximum the screen's lower bound
        # and the rounded weights' exact bound are closest
        for unit in np.unique(np.geomspace(1, 1 << 22, 400).astype(int)):
            plain = quantise_at(real, bias, int(unit), exp, shapes, src_max, 15, target)
            screened = quantise_at(real, bias, int(unit), exp, shapes, src_max, 15, target, screen=screen)
            assert same(plain, screened), (unit, exp)
            fits += plain is not None
            mant, bias_exp = bias_format(round_half_away(bias * unit), target)
            ruled_out += mant is not None and screen.rules_out(int(unit), exp, np.abs(mant * float(1 << bias_exp)),
                                                               target.state_max)
    assert fits > 100 and ruled_out > 100, (fits, ruled_out)     # both sides of the boundary were tried


def test_screen_counts_the_rounding_down():
    """Weights that all round down (w·D/2^e = 0.49: mantissa 0) fit however many there are, although
    their unrounded bound D·Σ|w|·x_max is above the state maximum: the screen's lower bound subtracts
    half a mantissa step per weight, so it must not rule them out."""
    target = load_target("loihi2")
    unit, exp, n = 1000, 7, 9000
    w = np.full((2, n), 0.49 * (1 << exp) / unit)
    real = [RealBranch("a", [syn.Dense(weight=w)], np.float64(1.0), True)]
    screen = StateScreen(real, {"a": (n,)}, {"a": 15})
    assert float(np.max(unit * screen.b_w)) > target.state_max          # unrounded: does not fit
    got = quantise_at(real, np.zeros(2), unit, exp, {"a": (n,)}, {"a": 15}, 15, target, screen=screen)
    assert got is not None and not np.any(syn.weighted_op(got[0][0].ops).weight)


def test_scaled_mantissas_in_chunks_equal_the_whole_array(monkeypatch):
    """Rounding ROUND_CHUNK weights at a time gives the whole array's mantissas (ties, both signs, a
    shape that is no multiple of the chunk), and a NaN anywhere is still refused."""
    from neurodeploy.lowering import quantize
    rng = np.random.default_rng(3)
    w = np.concatenate([rng.normal(size=1000) * 7, np.arange(-20, 21) * 0.5]).reshape(3, 347)   # 1041 = 16 · 64 + 17
    whole = quantize.round_half_away(w * 3 / float(1 << 1))
    monkeypatch.setattr(quantize, "ROUND_CHUNK", 64)
    got = quantize.scaled_mantissas(w, 3, 1)
    assert got.dtype == np.int64 and got.shape == w.shape and np.array_equal(got, whole)
    w[2, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        quantize.scaled_mantissas(w, 3, 1)
