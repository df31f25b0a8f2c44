"""Integer weights of a quantised (QDQ) layer: keep the model's own 8-bit integers.

A per-tensor QDQ weight in code units is W̃ = Ŵ·C_i/C_o = w_int·(s_w·C_i/C_o): integers times one
step.  `quantise_on_grid` quantises such a layer with those integers as its mantissas (the `sws`
scheme's QDQ path, paper Eqs. 15–19); `quantize.quantise_layer` is the generic quantiser.
"""
from __future__ import annotations

import numpy as np

from ..ir import synapses as syn
from .lower import RealBranch
from .quantize import layer_result, max_abs, quantise_at

GRID_TOLERANCE = 1e-3      # |w/m − n| allowed: BN folding leaves ~1e-7·|n| of float noise
MAX_GRID_INT = 255         # 8-bit weights (int8, or uint8 after a zero point)


def weight_grid(weight: np.ndarray) -> tuple[float, np.ndarray] | None:
    """(m, n) with weight = m·n, n integers |n| <= 255, the coarsest such grid; None if there is none.

    A per-tensor QDQ weight in code units is W̃ = Ŵ·C_i/C_o = w_int·(s_w·C_i/C_o) (times a pooling
    1/k², and up to the float noise of BN folding): one step m for the whole layer.  Per-channel
    weights (a step per output channel) have no common grid and return None.
    """
    w = np.asarray(weight, dtype=np.float64)
    w_max = max_abs(w)
    if w_max == 0.0:
        return None
    flat = w.reshape(-1)
    # A grid must fit every weight, so a candidate that misfits a few of them is out: try each on
    # ~256 weights spread over the tensor first (the same products, elementwise) and on all of
    # them only when those fit.  Float weights (no grid) then cost 255 small checks, not 255
    # passes over millions of weights (CIFAR ResNet-18: 6 s of its 7 s bitplane compile).
    few = flat[::max(1, flat.size // 256)]
    for n_max in range(1, MAX_GRID_INT + 1):       # the largest |n| is n_max: m = w_max / n_max
        r = few * (n_max / w_max)
        if np.max(np.abs(r - np.rint(r))) >= GRID_TOLERANCE:
            continue
        r = flat * (n_max / w_max)
        if np.max(np.abs(r - np.rint(r))) < GRID_TOLERANCE:
            return w_max / n_max, np.rint(w * (n_max / w_max))
    return None


def quantise_on_grid(name: str, real_branches: list, bias_real: np.ndarray, code_max: int,
                     src_shapes: dict, src_max: dict, target, state_bound=None, unit_cap: int | None = None):
    """`quantize.quantise_layer` for a layer whose weights are integers n times one step m.

    The generic quantiser rounds every weight to its mantissa (a relative error up to half a
    mantissa step per weight, which moves ~1% of 8-bit codes on a 16-bit target).  Here the
    mantissas are the model's own integers, w_mant = n·2^k, and the unit is D = round(2^(e+k)/m):
    every weight then carries the same relative error |2^(e+k)/(D·m) − 1| <= 1/(2D), and the
    largest D that fits the target (weight mantissa, threshold mantissa, bias format, state
    bound) is taken.  Returns None where the layer has several branches or no common grid, or
    where no candidate fits: the caller then uses the generic quantiser.  state_bound and
    unit_cap as in `quantise_layer` (a calibrated state bound instead of the static one; D <= unit_cap).
    """
    if len(real_branches) != 1:
        return None
    branch = real_branches[0]
    grid = weight_grid(syn.weighted_op(branch.ops).weight)
    if grid is None:
        return None
    m, n = grid
    n_max = float(np.max(np.abs(n)))
    candidates = []
    for e in range(max(target.weight_exp_min, 0), target.weight_exp_max + 1):
        for k in range(0, 32):
            if n_max * (1 << k) > target.weight_mant_max:
                break
            unit = int(round((1 << (e + k)) / m))
            if 1 <= unit <= min(target.v_th_mant_max, unit_cap or target.v_th_mant_max):
                candidates.append((unit, -e, k))
    for unit, neg_e, k in sorted(candidates, reverse=True):       # finest unit first
        e = -neg_e
        w_eff = n * float(1 << (e + k)) / unit                    # -> mantissas exactly n·2^k
        ops = [type(op)(**{**op.__dict__, "weight": w_eff}) if isinstance(op, syn.WEIGHTED) else op
               for op in branch.ops]
        got = quantise_at([RealBranch(branch.source, ops, branch.out_scale, True)], bias_real, unit, e,
                   src_shapes, src_max, code_max, target, state_bound)
        if got is not None:
            return layer_result(real_branches, bias_real, unit, e, got)
    return None
