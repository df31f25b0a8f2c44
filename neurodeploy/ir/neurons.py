"""Neuron models of the spiking IR: plain dataclasses with integer fields.

Each model documents the integer arithmetic that both the simulator (neurodeploy/sim) and
the Lava process models (neurodeploy/backends/lava) implement.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BitplaneEncoder:
    """Input encoder of the `bitplane` scheme (runs on the host / spike injector).

    code k = clip(floor(x * in_scale + offset), 0, code_max) per input element, emitted MSB
    first as n_steps binary spikes: s(t) = (k >> (n_steps - t)) & 1 for t = 1..n_steps.
    """
    code_max: int
    n_steps: int


@dataclass
class BitplaneIF:
    """Accumulate-then-emit IF neuron of the `bitplane` scheme (error-free conversion).

    Accumulation (one step per incoming bit plane, MSB first):  U <- 2*U + I(t), where
    I(t) = sum over branches of (W_mant * s_src(t)) << weight_exp, so after the last plane
    U = sum_t 2^(T_src - t) * I(t) = W_mant . code_src << weight_exp.
    Then U <- min(U + (bias_mant << bias_exp), code_max * v_th_mant) and emission, MSB
    first, for j = 1..n_steps:  theta_j = v_th_mant << (n_steps - j);  s = [U >= theta_j];
    U <- U - s * theta_j.  The emitted bits spell clip(floor(U / v_th_mant), 0, code_max).
    """
    v_th_mant: int
    code_max: int
    n_steps: int

    def total_bias(self, bias):
        """What the whole run adds to U besides the synaptic input."""
        return bias


@dataclass
class RateEncoder:
    """Input encoder of the `rate` scheme (host / spike injector).

    code k = clip(floor(x * in_scale + offset), 0, code_max) with code_max = n_steps; an IF
    neuron with constant input k, threshold n_steps and initial potential n_steps // 2 then
    emits exactly k spikes, evenly spread, in steps 1..n_steps (v <- v + k; s = [v >= T];
    v <- v - s*T).
    """
    code_max: int
    n_steps: int


@dataclass
class RateIF:
    """Integrate-and-fire neuron of the `rate` scheme, one update per time step.

    v starts at v_init (half a threshold, so that spike counts round like QCFS); every one
    of the run's bias_steps steps  v <- v + I(t) + bias  with the layer's per-step bias and
    I(t) = sum over branches of (W_mant * s_src(t-1)) << weight_exp (every synapse delays by
    one step, as on Loihi); v saturates at the state range; s = [v >= v_th_mant]; on a spike
    v <- v - v_th_mant (reset="subtract") or v <- 0 (reset="zero", Loihi's stock LIF).
    The quantised ANN it approximates: code = clip(floor((W.k + bias*bias_steps + v_init)
    / v_th_mant), 0, code_max), with code_max = T.
    """
    v_th_mant: int
    code_max: int
    v_init: int = 0
    bias_steps: int = 1
    reset: str = "subtract"
    state_bits: int = 24

    def total_bias(self, bias):
        """What the whole run adds to v besides the synaptic input."""
        return bias * self.bias_steps + self.v_init


@dataclass
class Readout:
    """Non-spiking output layer: U starts at the bias and accumulates every input; the value
    reported is U * output_scale."""
    output_scale: float

    def total_bias(self, bias):
        return bias


NEURON_TYPES = {c.__name__: c for c in (BitplaneEncoder, BitplaneIF, RateEncoder, RateIF, Readout)}
