"""Neurons of the `sws` scheme: stepwise weighted spikes and the TSA neuron (digest §3).

Plain dataclasses with integer fields (`ir.neurons.Neuron`); the integer arithmetic they
document is what `kernel.py` implements (and a Lava process model must).

Notation: β = `beta` (2: a left shift; 3 allowed), Tc = `coding_steps`, Ts = `silent_steps`,
D = `theta_mant` (the spike amplitude θ as an integer state unit), S = Σ_{τ=1..Tc} β^(Tc−τ)
= (β^Tc − 1)/(β − 1), the largest value Tc ternary digits can carry.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.fields import flag, integer
from ...ir.neurons import Neuron

# Tc and Ts are bounded so that beta^(Tc+Ts) stays far inside int64 (3^32 < 2^51).
MAX_CODING_STEPS = 32
MAX_SILENT_STEPS = 32


def digit_weight_sum(beta: int, coding_steps: int) -> int:
    """S = Σ_{τ=1..Tc} β^(Tc−τ) = (β^Tc − 1)/(β − 1)."""
    return (int(beta) ** int(coding_steps) - 1) // (int(beta) - 1)


def _code_fits_digits(neuron) -> str | None:
    """Tc digits carry at most S = (β^Tc − 1)/(β − 1)."""
    s = digit_weight_sum(neuron.beta, neuron.coding_steps)
    if neuron.code_max > s:
        return f"code_max {neuron.code_max} exceeds the {s} that {neuron.coding_steps} digits of base {neuron.beta} carry"
    return None


@dataclass
class TSAEncoder(Neuron):
    """Input encoder of `sws` (runs on the host / spike injector).

    code P = clip(floor(x * in_scale + offset), 0, code_max), code_max = S, then P is
    expanded *exactly* on the host into Tc digits a_τ, MSB first, with P = Σ a_τ β^(Tc−τ):
    β = 2: binary digits a_τ = (P >> (Tc − τ)) & 1;  β = 3: balanced ternary a_τ ∈ {−1,0,1}.
    The digits are sent as ternary spikes at steps 1..Tc.

    Why not the paper's encoder (a TSA neuron fed the constant current P/S for Tc steps,
    Ts = 0, Eq. 9): it is not exact; for Tc = 8, β = 2 it mis-encodes 63 of the 256 pixel
    values (144 -> 143, 160 -> 159, 200 -> 191; digest §3.7, checks/probe_sws_encoder.py)
    because it must decide the MSB before it has seen enough of the constant current.  The
    host expansion is exact, needs no silent period and no neuron updates.
    """
    code_max: int = integer(1, "state_max")
    beta: int = integer(2, 3, default=2)
    coding_steps: int = integer(1, MAX_CODING_STEPS, default=8)

    @property
    def n_steps(self) -> int:
        """Steps the encoder emits (reports)."""
        return self.coding_steps

    def relation_problem(self, target, shape):
        return _code_fits_digits(self)


@dataclass
class TSA(Neuron):
    """Ternary-spike amplifying neuron (Eqs. 3–7) in integer arithmetic.

    Local time t = 1 .. Tc + Ts.  Input digits of the source layers arrive at t = 1..Tc;
    z(t) = Σ_branches (W_mant · a_src(t)) << weight_exp + bias (the layer's integer bias is
    the *per-step* bias, Eq. 19) for t ≤ Tc, z(t) = 0 afterwards.  With u(0) = 0:

        m  = β·u + z(t)                                  # pre-spike potential
        h2 = β^Ts · D · (2 if full_threshold else 1)     # twice the threshold (integers only)
        a  = 0                                  if t ≤ Ts           (silent period)
           = +1  if 2m ≥ h2  and E + w_j ≤ code_max
           = −1  if 2m < −h2 and (not relu or E − w_j ≥ 0)
        u  = m − a · D · β^Ts                            # subtractive reset by θ·β^Ts
        E  = E + a · w_j                                 # j = t − Ts, w_j = β^(Tc−j)

    The emitted digit a (amplitude θ) is output digit j = t − Ts of this layer.  Decisions:
    the threshold θ/2 is compared as 2m against β^Ts·D so odd D stays exact; "≥" for +1 and
    strict "<" for −1 so that a final tie rounds half up (the result is then exactly
    floor(V/D + 1/2) whenever the neuron has not fallen behind, V = Σ β^(Tc−τ) z(τ));
    `relu`: a −1 spike is blocked when the running emitted total E would go below 0 (the
    paper gives no rule; digest §3.7: exact clip(round(V), 0, ·) in the probes); the +1 block
    at code_max is the matching upper clip (never active when code_max = S).
    The decoded value E = Σ a_j β^(Tc−j) is the layer's code; the quantised ANN it
    reproduces is  code = clip(floor((2·U + D) / (2·D)), 0, code_max)  with
    U = Σ W·codes_src + S·bias  (`reference_code`, `total_bias`).
    `full_threshold` (threshold θ instead of θ/2) exists only for the paper's ablation.
    """
    theta_mant: int = integer(1, "v_th_mant_max")
    code_max: int = integer(1, "state_max")
    beta: int = integer(2, 3, default=2)
    coding_steps: int = integer(1, MAX_CODING_STEPS, default=8)
    silent_steps: int = integer(0, MAX_SILENT_STEPS, default=1)
    relu: bool = flag(default=True)
    full_threshold: bool = flag(default=False)

    def relation_problem(self, target, shape):
        reset = self.beta ** self.silent_steps * self.theta_mant
        if reset > target.state_max:
            return (f"the reset theta_mant x beta^silent_steps = {reset} exceeds the target's "
                    f"{target.state_bits}-bit state")
        return _code_fits_digits(self)

    @property
    def steps(self) -> int:
        """Local steps of one frame: Tc + Ts."""
        return self.coding_steps + self.silent_steps

    n_steps = steps          # the name reports use for a layer's steps

    @property
    def v_th_mant(self) -> int:
        """The integer unit D (reports' "D" column); the firing threshold is β^Ts·D/2."""
        return self.theta_mant

    def total_bias(self, bias):
        """What the whole run adds to V = Σ β^(Tc−τ) z(τ) besides the synaptic input."""
        return bias * digit_weight_sum(self.beta, self.coding_steps)

    def reference_code(self, u):
        """Code of the quantised ANN for the integer pre-activation U (numpy int64)."""
        import numpy as np
        d = int(self.theta_mant)
        return np.clip(np.floor_divide(2 * np.asarray(u, dtype=np.int64) + d, 2 * d), 0, self.code_max)
