"""Neurons of the `bitplane` scheme (error-free conversion): the bit-plane encoder and IF neuron.

Plain dataclasses with integer fields (`ir.neurons.Neuron`); `kernel.py` implements their
arithmetic on batches and `lava/` as Lava process models.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.fields import integer
from ...ir.neurons import Neuron
from ...limits import MAX_TIMESTEPS


def _code_fits_steps(neuron) -> str | None:
    """A code 0..code_max must be spelled in n_steps bits."""
    if neuron.code_max >= 1 << neuron.n_steps:
        return f"code_max {neuron.code_max} needs more than its n_steps = {neuron.n_steps} bit planes"
    return None


@dataclass
class BitplaneEncoder(Neuron):
    """Input encoder of the `bitplane` scheme (runs on the host / spike injector).

    code k = clip(floor(x * in_scale + offset), 0, code_max) per input element, emitted MSB
    first as n_steps binary spikes: s(t) = (k >> (n_steps - t)) & 1 for t = 1..n_steps.
    """
    code_max: int = integer(1, "state_max")
    n_steps: int = integer(1, MAX_TIMESTEPS)

    def relation_problem(self, target, shape):
        return _code_fits_steps(self)


@dataclass
class BitplaneIF(Neuron):
    """Accumulate-then-emit IF neuron of the `bitplane` scheme (error-free conversion).

    Accumulation (one step per incoming bit plane, MSB first):  U <- 2*U + I(t), where
    I(t) = sum over branches of (W_mant * s_src(t)) << weight_exp, so after the last plane
    U = sum_t 2^(T_src - t) * I(t) = W_mant . code_src << weight_exp.
    Then U <- min(U + (bias_mant << bias_exp), code_max * v_th_mant) and emission, MSB
    first, for j = 1..n_steps:  theta_j = v_th_mant << (n_steps - j);  s = [U >= theta_j];
    U <- U - s * theta_j.  The emitted bits spell clip(floor(U / v_th_mant), 0, code_max).
    """
    v_th_mant: int = integer(1, "v_th_mant_max")
    code_max: int = integer(1, "state_max")
    n_steps: int = integer(1, MAX_TIMESTEPS)

    def relation_problem(self, target, shape):
        if self.code_max * self.v_th_mant > target.state_max:
            return (f"code_max x v_th_mant = {self.code_max * self.v_th_mant} exceeds the target's "
                    f"{target.state_bits}-bit state (the clamp at Q.D must fit)")
        return _code_fits_steps(self)
