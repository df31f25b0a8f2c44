"""Neurons of the `rate` scheme: the rate encoder and the integrate-and-fire neuron.

Plain dataclasses with integer fields (`ir.neurons.Neuron`); `kernel.py` implements their
arithmetic step by step and `lava/` as Lava processes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.fields import choice, integer
from ...ir.neurons import Neuron
from ...limits import MAX_RUN_STEPS, MAX_TIMESTEPS


@dataclass
class RateEncoder(Neuron):
    """Input encoder of the `rate` scheme (host / spike injector).

    code k = clip(floor(x * in_scale + offset), 0, code_max) with code_max = n_steps; an IF
    neuron with constant input k, threshold n_steps and initial potential n_steps // 2 then
    emits exactly k spikes, evenly spread, in steps 1..n_steps (v <- v + k; s = [v >= T];
    v <- v - s*T).
    """
    code_max: int = integer(1, MAX_TIMESTEPS)
    n_steps: int = integer(1, MAX_TIMESTEPS)

    def relation_problem(self, target, shape):
        if self.code_max != self.n_steps:
            return f"code_max {self.code_max} differs from n_steps {self.n_steps} (a rate code counts spikes)"
        return None


@dataclass
class RateIF(Neuron):
    """Integrate-and-fire neuron of the `rate` scheme, one update per time step.

    v starts at v_init (half a threshold, so that spike counts round like QCFS); every one
    of the run's bias_steps steps  v <- v + I(t) + bias  with the layer's per-step bias and
    I(t) = sum over branches of (W_mant * s_src(t-1)) << weight_exp (every synapse delays by
    one step, as on Loihi); v saturates at the state range; s = [v >= v_th_mant]; on a spike
    v <- v - v_th_mant (reset="subtract") or v <- 0 (reset="zero", Loihi's stock LIF).
    The quantised ANN it approximates: code = clip(floor((W.k + bias*bias_steps + v_init)
    / v_th_mant), 0, code_max), with code_max = T.
    """
    v_th_mant: int = integer(1, "v_th_mant_max")
    code_max: int = integer(1, MAX_TIMESTEPS)
    v_init: int = integer(0, "state_max", default=0)
    bias_steps: int = integer(1, MAX_RUN_STEPS, default=1)
    reset: str = choice("subtract", "zero", default="subtract")
    state_bits: int = integer(2, "state_bits", default=24)

    def total_bias(self, bias):
        """What the whole run adds to v besides the synaptic input."""
        return bias * self.bias_steps + self.v_init
