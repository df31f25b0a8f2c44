"""Neuron models of the `cuba` scheme: Loihi 2's stock CUBA LIF, bit for bit as Lava runs it.

All integers are in Lava's own units (lava-nc 0.10.0 `lava/proc/lif/models.py`,
`PyLifModelBitAcc`; see shared/docs/loihi.md §C.2):

* `a_in`  -- the synaptic input of one step: sum over branches of (W_mant . s_src(t-1)) <<
  weight_exp (every synapse layer delays by one step, as Lava's Dense/Conv send the value
  they accumulated in the previous step).  s_src is a binary spike, or for the input
  encoder a graded spike whose payload is the input code k.
* `u`, `v` -- 24-bit current and voltage, in units of 2^-6 of `a_in` (Loihi MSB-aligns the
  input and the threshold by 6 bits).
* bias   -- the layer's `bias_mant << bias_exp`, added to v every step, NOT shifted by 6.
  NetX always uses bias_exp = 6 (so bias_mant is in `a_in` units); the `cuba` scheme does too.

"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.fields import integer
from ...ir.neurons import Neuron, Readout
from ...limits import MAX_RUN_STEPS, MAX_TIMESTEPS

DECAY_SHIFT = 12          # du, dv are 12-bit fractions of 4096 (lif/models.py L104-105)
DECAY_UNITY = 1 << DECAY_SHIFT
DS_OFFSET = 1             # current decay uses du + 1 (L94): du = 4095 zeroes u every step
DM_OFFSET = 0             # voltage decay uses dv + 0 (L95)
UV_BITS = 24              # u, v are 24-bit (L100-101)
MAX_UV = 1 << (UV_BITS - 1)
ACT_SHIFT = 6             # a_in << 6 (L107, L155)
VTH_SHIFT = 6             # vth << 6 (L106, L268-274)
VTH_MAX = (1 << 17) - 1   # vth unsigned 17-bit
BIAS_MANT_MAX = (1 << 12) - 1   # bias_mant signed 13-bit
NETX_BIAS_EXP = 6         # netx hdf5.py: bias_exp = 6 for CUBA layers
A_IN_MAX = (1 << 17) - 1  # |a_in| above this makes u = a_in << 6 wrap (24-bit)


@dataclass
class CubaEncoder(Neuron):
    """Input encoder of the `cuba` scheme (host / spike injector).

    code k = clip(floor(x * in_scale + offset), 0, code_max) per input element, sent as a
    graded spike with payload k at every one of the run's n_steps steps (the float model
    feeds x as a constant current at every step).  `timesteps` is the T the float SNN was
    trained with and averages over; n_steps = T + depth (the pipeline fill of the 1-step
    synaptic delays, so that the readout receives all T steps of the last hidden layer).
    """
    code_max: int = integer(1, "state_max")
    n_steps: int = integer(1, MAX_RUN_STEPS)
    timesteps: int = integer(1, MAX_TIMESTEPS)

    @property
    def max_payload(self) -> int:
        """Largest graded payload it sends (sim.engine sizes exact float dtypes by it)."""
        return self.code_max


@dataclass
class CubaLIF(Neuron):
    """Loihi's stock current-based LIF (Lava `LIF`, `PyLifModelBitAcc`), one update per step.

    Per step, with the layer's effective bias b = bias_mant << bias_exp (Lava L110-122):

        u  = sign(u*(4096-du-1)) * (|u*(4096-du-1)| >> 12)    # decay, rounds toward 0 (L145-153)
        u  = u + (a_in << 6)                                  # MSB-aligned input (L155-157)
        u  = u - 2^24 if u > 2^23;  u + 2^24 if u <= -2^23    # 24-bit wrap, once (L161-171)
        v  = sign(v*(4096-dv)) * (|v*(4096-dv)| >> 12)        # decay, rounds toward 0 (L174-184)
        v  = clip(v + u + b, -(2^23-1), 2^23-1)               # saturates (L185-186)
        s  = v > (v_th_mant << 6)                             # strict (L268-278)
        v  = 0 where s                                        # reset to 0, u is kept (L188-192)

    du = 4095 makes u = a_in << 6 (no current state: the float LIF's input current); the
    float LIF's decay lambda is dv = round(4096 * (1 - lambda)).  Field names are Lava's;
    NetX: iDecay = du + 1, vDecay = dv, vThMant = v_th_mant.
    """
    du: int = integer(0, "decay_max")
    dv: int = integer(0, "decay_max")
    v_th_mant: int = integer(0, "v_th_mant_max")

    @property
    def decay(self) -> float:
        """The float decay lambda this dv stands for."""
        return 1.0 - self.dv / DECAY_UNITY


@dataclass
class CubaReadout(Readout):
    """Non-spiking readout of the `cuba` scheme: a stock Lava LIF that never reaches its threshold.

    Same arithmetic as `CubaLIF` (du = 4095, dv = 0: v integrates a_in << 6 + bias every
    step), v_th_mant = 131071 (the maximum) and weights/bias sized by the compiler so that
    |v| <= v_th_mant << 6 over the whole run.  The value reported is
    (v after the run's last step - v after step `window_start`) * output_scale with
    output_scale = 1 / (64 * D * T): the float model's mean over T of W s_t + b, summed over
    the T steps in which the last hidden layer's spikes answer the input (the host reads v
    twice; the first window_start = depth steps only carry the pipeline fill).
    """
    du: int = integer(0, "decay_max", default=DECAY_UNITY - 1)
    dv: int = integer(0, "decay_max", default=0)
    v_th_mant: int = integer(0, "v_th_mant_max", default=VTH_MAX)
    window_start: int = integer(0, MAX_RUN_STEPS, default=0)
