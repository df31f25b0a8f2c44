"""Weight, bias and threshold quantisation to a target's integer formats."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TargetLimitError
from ..ir import synapses as syn
from ..ir.spiking import Branch
from ..ir.synapse_ops import abs_bound
from ..target import Target


# |values| at or beyond 2^62 saturate there: far outside every mantissa format, so each caller's
# range check refuses them.  Without it, casting 1e30 to int64 gives -2^63, and |-2^63| overflows
# to a *negative* number that passes a `<= mant_max` check.
ROUND_SATURATION = float(1 << 62)


def max_abs(a) -> float:
    """max |a| (0.0 when empty) from a's max and min: no |a| temporary (a VGG layer has 10^8 weights)."""
    a = np.asarray(a)
    return max(float(a.max()), -float(a.min())) if a.size else 0.0


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (deterministic, sign-symmetric); int64, saturating
    at ±2^62 (`ROUND_SATURATION`).  NaN is a bug upstream (inputs are validated): ValueError."""
    x = np.asarray(x, dtype=np.float64)
    # min and max propagate NaN and say whether saturation is needed, without a temporary each
    # (a VGG layer has 10^8 weights, rounded at each candidate exponent)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError("round_half_away: NaN (a non-finite value reached quantisation)")
    if lo < -ROUND_SATURATION or hi > ROUND_SATURATION:
        x = np.clip(x, -ROUND_SATURATION, ROUND_SATURATION)
    # = sign(x)·floor(|x| + 1/2): IEEE addition is sign-symmetric, so x ± 1/2 rounds like |x| + 1/2
    if x.ndim == 0:
        return np.trunc(x + np.copysign(0.5, x)).astype(np.int64)
    r = np.copysign(0.5, x)
    r += x
    return np.trunc(r, out=r).astype(np.int64)


# When a layer fits the state width only with a coarser threshold unit, accept at most this
# relative weight error (the full-precision path gives ~0.5% with 8-bit mantissas).
MAX_SHRUNK_WEIGHT_ERROR = 0.1


@dataclass
class QuantisedLayer:
    branches: list               # ir.spiking.Branch with integer weights
    bias_mant: np.ndarray
    bias_exp: int
    unit: int                    # integer U per code step (v_th_mant; the readout's 1/output_scale)
    weight_exp: int
    state_bound: int             # static worst-case |U|
    weight_rel_error: float      # ||W_real - W_int*2^e/unit|| / ||W_real||
    bias_max_error: float        # max |b_real - b_int/unit| in code steps

    def report(self) -> dict:
        """What the compile summary and meta["quantisation"] record for this layer."""
        return {"weight_exp": self.weight_exp, "unit": self.unit, "state_bound": self.state_bound,
                "weight_rel_error": self.weight_rel_error, "bias_max_error": self.bias_max_error}


def bias_format(bias_int: np.ndarray, target: Target):
    """Smallest bias_exp such that bias_int >> bias_exp fits the signed mantissa."""
    for exp in range(0, target.bias_exp_max + 1):
        mant = round_half_away(bias_int / float(1 << exp))
        if np.all(np.abs(mant) <= target.bias_mant_max):
            return mant, exp
    return None, None


ROUND_CHUNK = 1 << 22      # weights scaled and rounded at a time: 32 MiB float64 temporaries however large the layer


def scaled_mantissas(weight, unit: int, exp: int) -> np.ndarray:
    """round_half_away((w·D)/2^e) as int64, ROUND_CHUNK weights at a time: every step is elementwise, so
    the values are those of the whole array at once, without its weight-sized float64 temporaries (VGG-11
    at 224x224: 0.8 GiB each for its 102.8 M-weight classifier layer)."""
    w = np.asarray(weight)
    flat = w.reshape(-1)
    mant = np.empty(flat.shape, dtype=np.int64)
    for i in range(0, flat.size, ROUND_CHUNK):
        scaled = flat[i:i + ROUND_CHUNK] * unit
        scaled /= float(1 << exp)              # in place: (w·D)/2^e as before
        mant[i:i + ROUND_CHUNK] = round_half_away(scaled)
    return mant.reshape(w.shape)


# `StateScreen` rules a candidate out only where its lower bound exceeds the state maximum by more
# than this fraction of the terms it was computed from (float64 sums of at most ~10^8 terms of
# relative error 2^-53 each are off by far less: the screen never rules out a candidate that fits)
SCREEN_TOLERANCE = 1e-9


class StateScreen:
    """The static state bound of a layer's candidates (D, e), bracketed from its unrounded weights
    once per layer, so that a candidate that cannot fit is ruled out without rounding every weight.

    The rounded mantissa of a weight w is m = round(w·D/2^e), so |w|·D/2^e − 1/2 ≤ |m| (and m = 0
    where w = 0).  `abs_bound` is monotone, positively homogeneous and subadditive in |W| (sums and
    maxima of non-negative terms), hence per output abs_bound(|m|)·2^e ≥ D·B_w − 2^(e−1)·B_nz with
    B_w = abs_bound(|w|) and B_nz = abs_bound([w ≠ 0]).  Where that lower bound plus the bias
    already exceeds the state maximum, `quantise_at` would refuse the candidate: it is refused here
    at the cost of one pass over the outputs (VGG-11 at 224x224: its 102.8 M-weight classifier layer
    tried 5 candidates, each a rounding of every weight and a bound pass)."""

    def __init__(self, real_branches, src_shapes: dict, src_max: dict):
        self.b_w, self.b_nz = np.float64(0), np.float64(0)
        for b in real_branches:
            k = syn.weighted_op(b.ops)
            w = np.asarray(k.weight, dtype=np.float64)
            for attr, weight in (("b_w", w), ("b_nz", w != 0)):        # abs_bound converts the mask once
                ops = [type(op)(**{**op.__dict__, "weight": weight}) if op is k else op for op in b.ops]
                setattr(self, attr, getattr(self, attr) + abs_bound(ops, src_shapes[b.source], src_max[b.source],
                                                                     exact=False))

    def rules_out(self, unit: int, exp: int, bias_eff: np.ndarray, state_max: int) -> bool:
        """Does every rounding of the weights at (unit, exp) exceed state_max with this |bias| (per channel)?"""
        high, low = unit * self.b_w, float(1 << exp) / 2 * self.b_nz
        per_channel = bias_eff.reshape((-1,) + (1,) * (high.ndim - 1)) if high.ndim > 1 else bias_eff
        slack = SCREEN_TOLERANCE * (high + low + per_channel)
        return bool(np.max(high - low + per_channel - slack) > state_max)


def quantise_at(real_branches, bias_real, unit, exp, src_shapes, src_max, code_max, target, state_bound=None,
                screen: StateScreen | None = None):
    """Quantise at (unit D, weight exponent e); None where a format or the state bound does not fit.

    state_bound: None = the static worst case max_j(Σ|W_j|·src_max·2^e + |b_j|) (and code_max·D);
    otherwise a callable (branches, bias_mant, bias_exp, unit, exp) -> the bound (state units)
    to hold against the target's signed state maximum instead (`schemes.sws` calibrated bound).
    screen: the layer's `StateScreen` (static bound only): a candidate it rules out is refused before
    its weights are rounded (the same answer, sooner).
    """
    bias_mant, bias_exp = bias_format(round_half_away(bias_real * unit), target)
    if bias_mant is None:
        return None
    bias_eff = np.abs(bias_mant.astype(np.float64) * (1 << bias_exp))
    if screen is not None and state_bound is None and screen.rules_out(unit, exp, bias_eff, target.state_max):
        return None
    branches, bound = [], np.float64(0)
    for b in real_branches:
        ops = []
        for op in b.ops:
            if isinstance(op, syn.WEIGHTED):
                op = type(op)(**{**op.__dict__, "weight": scaled_mantissas(op.weight, unit, exp)})
            ops.append(op)
        branches.append(Branch(b.source, ops, exp))
        bound = bound + abs_bound(ops, src_shapes[b.source], src_max[b.source]) * float(1 << exp)
    if state_bound is not None:
        total = state_bound(branches, bias_mant, bias_exp, unit, exp)
        return None if total > target.state_max else (branches, bias_mant, bias_exp, int(total))
    shape = bound.shape
    per_channel = bias_eff.reshape((-1,) + (1,) * (len(shape) - 1)) if len(shape) > 1 else bias_eff
    total = float(np.max(bound + per_channel))
    if code_max is not None:
        total = max(total, float(code_max) * unit)
    if total > target.state_max:
        return None
    return branches, bias_mant, bias_exp, int(total)


def quantise_layer(name: str, real_branches: list, bias_real: np.ndarray, code_max: int | None,
                   src_shapes: dict, src_max: dict, target: Target, state_bound=None,
                   unit_cap: int | None = None, prefer_large_unit: bool = False) -> QuantisedLayer:
    """Pick the weight exponent e and integer unit D with the most precision that fits.

    Real weights w (in code steps of this layer) become w_mant = round(w * D / 2^e) with
    |w_mant| <= 2^(mant_bits-1) - 1; the bias becomes round(b * D) = bias_mant << bias_exp;
    D <= the threshold mantissa maximum; and the worst-case |U| must fit state_bits.  The
    largest e (hence largest D, finest steps) that satisfies all of them wins.
    state_bound: see `quantise_at` (None = static worst case); unit_cap: an upper limit on D (the
    caller's estimate of the largest unit its state bound allows; saves trying finer ones).
    prefer_large_unit: among equal weight steps take the larger D instead of the smaller
    exponent (a finer bias: `sws` spreads its bias over S = 255 steps, multiplying its
    rounding error by S).
    A result whose weights all round to 0 is refused (TargetLimitError naming the layer).
    """
    w_max = max((max_abs(syn.weighted_op(b.ops).weight) for b in real_branches), default=0.0)
    m_max = target.weight_mant_max
    exps = range(max(target.weight_exp_min, 0), target.weight_exp_max + 1)

    def unit_for(exp: int) -> int:
        cap = target.v_th_mant_max if unit_cap is None else min(target.v_th_mant_max, int(unit_cap))
        if w_max == 0:
            return cap
        return min(int(np.floor(m_max * (1 << exp) / w_max)), cap)

    # Finest weight step 2^e/D first; among equals the smaller exponent (smaller numbers), or the
    # larger one (larger D) with prefer_large_unit.
    tie = -1 if prefer_large_unit else 1
    candidates = sorted((((1 << e) / unit_for(e)) if unit_for(e) >= 1 else np.inf, tie * e) for e in exps)
    candidates = [(step, tie * e) for step, e in candidates]
    screen = StateScreen(real_branches, src_shapes, src_max) if state_bound is None else None
    for step, exp in candidates:
        if not np.isfinite(step):
            continue
        got = quantise_at(real_branches, bias_real, unit_for(exp), exp, src_shapes, src_max, code_max, target,
                          state_bound, screen)
        if got is not None:
            return _check_weights(name, layer_result(real_branches, bias_real, unit_for(exp), exp, got), w_max)
    # Nothing fits at full precision: shrink the unit at the smallest usable exponent.
    usable = [e for s, e in candidates if np.isfinite(s)]
    if usable:
        exp = min(usable)
        unit = unit_for(exp) * 3 // 4
        while unit >= 1:
            got = quantise_at(real_branches, bias_real, unit, exp, src_shapes, src_max, code_max, target, state_bound,
                              screen)
            if got is not None:
                result = layer_result(real_branches, bias_real, unit, exp, got)
                if result.weight_rel_error <= MAX_SHRUNK_WEIGHT_ERROR:
                    return result
                break            # it fits only by rounding the weights away: refuse below
            unit = unit * 3 // 4
    raise TargetLimitError(
        f"cannot represent this layer in {target.name}'s formats (weights up to {w_max:.3g} code steps, "
        f"{target.state_bits}-bit state, {target.bias_mant_bits}-bit bias mantissa)",
        f"layer '{name}'", "use fewer quantisation levels, smaller weights/biases, or --target cpu")


def _check_weights(name: str, q: QuantisedLayer, w_max: float) -> QuantisedLayer:
    """Refuse a quantisation in which every nonzero weight rounded to mantissa 0.

    The finest-step search can pick an exponent 2^e so large against D·w that all mantissas
    round(w·D/2^e) are 0 (relative weight error 1.0): the layer would compute its bias alone.
    The shrink path already bounds the error (MAX_SHRUNK_WEIGHT_ERROR); this is the same
    refusal for the full-precision path, where it used to pass silently.
    """
    if w_max > 0 and all(not np.any(syn.weighted_op(b.ops).weight) for b in q.branches):
        raise TargetLimitError(
            f"every weight of this layer rounds to 0 at weight exponent {q.weight_exp} and unit {q.unit} "
            f"(largest weight {w_max:.3g} code steps; relative weight error {q.weight_rel_error:.2f})",
            f"layer '{name}'", "rescale the layer (its weights are tiny against its activation step), "
            "or use a target with a smaller weight exponent")
    return q


def layer_result(real_branches, bias_real, unit, exp, got) -> QuantisedLayer:
    branches, bias_mant, bias_exp, bound = got
    w_err, b_err = _errors(real_branches, branches, bias_real, bias_mant, bias_exp, unit, exp)
    return QuantisedLayer(branches, bias_mant, bias_exp, unit, exp, bound, w_err, b_err)


def _errors(real_branches, branches, bias_real, bias_mant, bias_exp, unit, exp):
    num = den = 0.0
    for rb, qb in zip(real_branches, branches):
        w = syn.weighted_op(rb.ops).weight
        # (w - mant·2^e/D)², in one temporary (the same roundings as the expression written out)
        diff = syn.weighted_op(qb.ops).weight.astype(np.float64)
        diff *= float(1 << exp)
        diff /= unit
        np.subtract(w, diff, out=diff)
        num += float(np.sum(np.square(diff, out=diff)))
        # w² in diff's buffer where that is the array np.square(w) would make (float64, same shape and
        # order: the same sum): no third weight-sized array (it set VGG-11@224's compile peak)
        same = w.dtype == np.float64 and w.flags.c_contiguous and w.shape == diff.shape
        den += float(np.sum(np.square(w, out=diff if same else None)))
    b_err = float(np.max(np.abs(bias_real - bias_mant * float(1 << bias_exp) / unit))) if np.size(bias_real) else 0.0
    return (np.sqrt(num / den) if den else 0.0), b_err
