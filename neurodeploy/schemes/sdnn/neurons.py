"""Neuron models of the `sdnn` scheme: Lava's sigma-delta neurons with graded spikes.

The arithmetic is exactly that of lava-nc 0.10.0's fixed-point process models
(`lava/proc/sdn/models.py`) with the exponents NetX hard-codes (spike_exp = state_exp = 6,
`lava/lib/dl/netx/hdf5.py` L170-189).  All quantities are integers:

  payload p   graded spike value a layer sends (its "code" unit; 0 = no spike)
  a_in        synaptic input = sum over branches of W_int . p_src(t-1)   (one-step delay,
              Dense/Conv send last step's buffer; NetX's Dense weight_exp round trip is
              lossless for even weights, Conv weights are used raw).  A convolution's
              per-step output wraps to signed 24 bits (Lava Conv: signed_clamp(a_out, 24));
              a dense one does not wrap on Lava's CPU model.

No `from __future__ import annotations` here on purpose: these dataclasses may be executed
by code that inspects annotations at run time.
"""
from dataclasses import dataclass

from neurodeploy.ir.fields import integer
from neurodeploy.ir.neurons import Neuron, Readout

# Lava's spike_exp / state_exp shifts: NetX uses 6; wider ones leave the 24-bit registers.
MAX_EXP = 24
SIGMA_DELTA_BIAS_MAX = (1 << 15) - 1   # Lava's SigmaDelta bias is a signed 16-bit number
MAX_INPUT_SHIFT = 16                   # the host shifts input codes left by at most this (compile.py)


def _sdnn_formats(target, from_input: bool, bias_mant_max: int) -> dict:
    """The sdnn layers' integer formats (compile.py): weights 2 x a mantissa (NetX's even weights),
    the bias unshifted (bias_exp 0), and the first synapses' weight_exp the host's input shift."""
    out = {"weight_mant_max": 2 * target.weight_mant_max, "bias_mant_max": bias_mant_max, "bias_exp_max": 0}
    if from_input:
        out["weight_exp_max"] = MAX_INPUT_SHIFT
    return out


@dataclass
class DeltaEncoder(Neuron):
    """Host-side input encoder (the spike injector feeding the first synapses).

    code k = clip(floor(x * in_scale + offset), 0, code_max) per input element.  A static
    input is delta-encoded: the full code is sent once, as one graded payload at the first
    step, and nothing afterwards (payload 0).  This replaces NetX's input `Delta` neuron,
    whose `a_in` port NetX leaves unconnected (`blocks/process.py` L103-106).  Lava's own
    PyDeltaModelFixed would compute, per step:
        a = a_in << (spike_exp + state_exp)
        delta = a - act + residue
        s = delta if |delta| >= vth << (spike_exp + state_exp) else 0
        residue = delta - s ; act = a ; s_out = s >> state_exp
    i.e. with vth = 0 it sends (a_in << spike_exp), the code times 2^spike_exp.
    """
    code_max: int = integer(1, "state_max")

    @property
    def max_payload(self) -> int:
        """Largest graded payload it sends (sim.engine sizes exact float dtypes by it)."""
        return self.code_max


@dataclass
class SigmaDelta(Neuron):
    """Sigma-delta ReLU neuron (Lava PySigmaDeltaModelFixed, act_mode RELU, cum_error False).

    Per step, with K = spike_exp + state_exp (12 under NetX), B = bias << K (the layer's
    integer bias; `bias_mant << bias_exp` of the IR layer) and V = vth << K:
        sigma   <- sigma + a_in                       (no wrap on Lava's CPU model)
        act_new  = max(sigma + B, 0)
        delta    = act_new - act + residue
        s        = delta if |delta| >= V else 0       ('>=', lava sdn/models.py L95-98)
        residue  = delta - s ;  act <- act_new
        payload  = s >> state_exp                     (arithmetic shift: floor)
    All of sigma, act, residue start at 0.  A neuron therefore sends the changes of its
    ReLU activation; the sum of its payloads after the network has settled is its code.
    With vth = 0 every change is sent (residue stays 0) and, if every earlier partial
    activation of the neuron is a multiple of 2^state_exp, the code is exactly
    floor(max(sigma + B, 0) / 2^state_exp): the integer ReLU network that
    `sim.reference.reference` computes with divisor `v_th_mant` = 2^state_exp.
    """
    vth: int = integer(0, "v_th_mant_max")
    code_max: int = integer(1, "state_max")
    spike_exp: int = integer(0, MAX_EXP, default=6)
    state_exp: int = integer(0, MAX_EXP, default=6)

    # verify's float counterpart of this layer floors (ReLU, no rounding offset); a class
    # attribute, not a field, so it is not serialised
    float_code_offset = 0.0

    def formats(self, target, from_input=False):
        return _sdnn_formats(target, from_input, SIGMA_DELTA_BIAS_MAX)

    @property
    def max_payload(self) -> int:
        """Bound of a payload: one step's change of a ReLU activation in [0, 2*code_max] (+2)."""
        return 2 * self.code_max + 2

    @property
    def v_th_mant(self) -> int:
        """Divisor of the integer reference: code = floor(U / 2^state_exp) (not the delta
        threshold, which is `vth`)."""
        return 1 << self.state_exp

    def total_bias(self, bias):
        """What the settled activation adds to the synaptic sum: bias << (spike_exp+state_exp)."""
        return bias * (1 << (self.spike_exp + self.state_exp))


@dataclass
class Sigma(Readout):
    """Non-spiking readout (Lava PySigmaModelFixed):  sigma <- sigma + a_in,  s_out = sigma.

    Lava's Sigma has no bias, so the layer's integer bias is added on the host:
    output value = (sigma + bias) * output_scale, after the network has settled."""

    def formats(self, target, from_input=False):
        return _sdnn_formats(target, from_input, target.state_max)    # the host's addition
