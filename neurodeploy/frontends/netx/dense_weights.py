"""The integer weights Lava's Dense synapse really uses for a NetX dense layer.

netx does not hand a dense layer's weights to Lava as they are in the file: it repacks them
with `netx.utils.optimize_weight_bits` and Lava's bit-accurate Dense then clips and truncates
them (loihi.md §C.1, §D.4).  For an integer weight matrix w:

  netx   if max > 254 and min < 0 (or min < -256 and max > 0): w = clip(w, -256, 254)
         sign mode: INHIBITORY (max < 0), EXCITATORY (min >= 0), else MIXED (signed = 1)
         scale = min(127/max, -128/min) | -256/min | 255/max;  sb = floor(log2(scale)) + signed
         n = the largest k <= 8 with every w divisible by 2^k, minus signed
         num_weight_bits = 8 - sb - n;  w' = w << sb;  weight_exp = -sb
  Lava   w' = clip(w', [-256, 255] MIXED | [0, 255] EXC | [-255, 0] INH)
         w' = (w' >> t) << t with t = 8 - num_weight_bits + signed   (INH: on -w')
         a_out = (w' . s) >> sb        (an arithmetic shift: floor)

The result is a linear synapse with integer weights W = w' >> sb exactly when every w' is a
multiple of 2^sb; that holds for the even weights in [-256, 254] slayer writes (then W = w),
and for anything else it is checked here: a layer whose repacked weights lose bits to the
floor shift is refused, since no integer weight matrix reproduces it.
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError


def lava_dense_weights(w: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """(W, notes): the integer weights a NetX dense layer computes with, and what changed."""
    w = np.asarray(w, dtype=np.int64)
    notes = []
    if w.size == 0 or not np.any(w):
        raise UnsupportedError("all dense weights are 0: netx's optimize_weight_bits cannot pack them "
                               "(log2 of an infinite scale)", where, "remove the layer")
    w_max, w_min = int(w.max()), int(w.min())
    if (w_max > 254 and w_min < 0) or (w_min < -256 and w_max > 0):
        notes.append(f"{where}: weights in [{w_min}, {w_max}] are clipped to [-256, 254] by netx")
        w = np.clip(w, -256, 254)
        w_max, w_min = int(w.max()), int(w.min())
    signed = 0
    if w_max < 0:
        mode, scale = "inhibitory", -256.0 / w_min
    elif w_min >= 0:
        mode, scale = "excitatory", 255.0 / w_max
    else:
        # mixed with max 0 (all <= 0, some 0): netx's 127 / 0 is inf, the negative side decides
        mode, signed, scale = "mixed", 1, min(127.0 / w_max if w_max else np.inf, -128.0 / w_min)
    sb = int(np.floor(np.log2(scale))) + signed
    if sb < 0:
        raise UnsupportedError(f"{mode} dense weights up to {max(abs(w_max), abs(w_min))} do not fit netx's 8-bit "
                               "packing (it would shift them right)", where, "scale the weights into [-256, 254]")
    n = 8
    while n > 0 and np.any(w % (1 << n)):
        n -= 1
    n -= signed
    num_weight_bits = 8 - sb - n
    packed = w << sb
    # Lava's Dense decides its own sign mode on the packed weights (max <= 0 is inhibitory, where
    # netx said mixed when the max is exactly 0) and truncates 8 - num_weight_bits + its mixed flag bits
    lava_mode = "excitatory" if packed.min() >= 0 else "inhibitory" if packed.max() <= 0 else "mixed"
    t = 8 - num_weight_bits + (lava_mode == "mixed")
    if t < 0:
        raise UnsupportedError(f"netx packs these {mode} dense weights with {num_weight_bits} weight bits and Lava's "
                               f"Dense, seeing them {lava_mode}, then shifts them by {t} bits, which zeroes them "
                               "(lava-dl 0.6.0 and lava-nc 0.10.0 disagree on the sign mode)", where,
                               "make the largest weight positive or all weights negative")
    lo, hi = {"mixed": (-256, 255), "excitatory": (0, 255), "inhibitory": (-255, 0)}[lava_mode]
    packed = np.clip(packed, lo, hi)
    packed = -((-packed >> t) << t) if lava_mode == "inhibitory" else (packed >> t) << t
    if np.any(packed % (1 << sb)):
        raise UnsupportedError("netx's weight packing loses bits of these dense weights (Lava floors each "
                               "sum after a right shift): no integer weights reproduce the layer", where,
                               "write even integer weights in [-256, 254], as slayer does")
    eff = packed >> sb
    if not np.array_equal(eff, w):
        notes.append(f"{where}: Lava's Dense clips/truncates {int(np.count_nonzero(eff != w))} weights")
    return eff, notes
