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

from ...ir.fields import choice, flag, integer
from ...ir.neurons import ChipPath, Neuron, Readout
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

    Networks imported from Lava-DL NetX files (`frontends.netx`) use three more fields:
    `code_min` < 0 for signed graded input; `sequence` = True when the input is a different
    frame per step, x shaped (N, n_steps, *shape) (spike trains: step t sends x[:, t-1]);
    `drive` = "bias" when the input enters as the bias of the layer it feeds instead of
    through a synapse (NetX's input layer with a CUBA neuron, which Lava-DL drives through
    its `bias_mant`): that layer adds k to its bias_mant from the first step on, and its
    branch from the encoder (ChannelScale of ones) carries no current.
    """
    chip_path = ChipPath(ChipPath.HOST, "graded input codes injected by the host at every step")
    code_max: int = integer(1, "state_max")
    n_steps: int = integer(1, MAX_RUN_STEPS)
    timesteps: int = integer(1, MAX_TIMESTEPS)
    code_min: int = integer("-state_max", 0, default=0)
    sequence: bool = flag(default=False)
    drive: str = choice("spikes", "bias", default="spikes")

    @property
    def max_payload(self) -> int:
        """Largest graded payload it sends (sim.engine sizes exact float dtypes by it)."""
        return max(self.code_max, -self.code_min)


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
    NetX: iDecay = du + 1, vDecay = dv, vThMant = v_th_mant (NetX files may hold iDecay 0,
    i.e. du = -1: u never decays, and vDecay 4096: v keeps nothing; Lava computes both).

    reset_interval > 0: Lava's `LIFReset` (NetX `Network(reset_interval=...)`): u and v are
    set to 0 before the update of every step t (Lava's time step, from 1) with
    t % reset_interval == reset_offset % reset_interval.
    """
    chip_path = ChipPath(ChipPath.STOCK, "CUBA LIF (Lava's lava.proc.lif LIF; a Lava-DL NetX 'CUBA' layer)")
    # -1 and 4096: a NetX file's iDecay 0 (u never decays) and vDecay 4096 (v keeps nothing), which
    # Lava computes; the cuba scheme's own compiler stays within 0..4095
    du: int = integer(-1, "decay_max")
    dv: int = integer(0, DECAY_UNITY)
    v_th_mant: int = integer(0, "v_th_mant_max")
    reset_interval: int = integer(0, MAX_RUN_STEPS, default=0)
    reset_offset: int = integer(0, None, default=0)

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

    Imported NetX networks end in whatever LIF the file holds: its du/dv/threshold (and
    reset, as `CubaLIF`) are kept, and `output` says what the host reads: "v" (as above) or
    "spikes" (the number of spikes it fires over the run, for networks whose output layer
    spikes).
    """
    chip_path = ChipPath(ChipPath.STOCK, "CUBA LIF that never fires (a Lava-DL NetX 'CUBA' output layer)")
    du: int = integer(-1, "decay_max", default=DECAY_UNITY - 1)       # -1, 4096: as CubaLIF
    dv: int = integer(0, DECAY_UNITY, default=0)
    v_th_mant: int = integer(0, "v_th_mant_max", default=VTH_MAX)
    window_start: int = integer(0, MAX_RUN_STEPS, default=0)
    reset_interval: int = integer(0, MAX_RUN_STEPS, default=0)
    reset_offset: int = integer(0, None, default=0)
    output: str = choice("v", "spikes", default="v")


def dv_for(decay: float, name: str) -> tuple[int, list]:
    """Loihi's 12-bit voltage decay for a float decay lambda: dv = round(4096 (1 - lambda)), half
    away from zero, clamped to 0..4095 (lambda = 0 needs 4096: dv = 4095 keeps v >> 12, noted)."""
    dv = int(_round_half_away(DECAY_UNITY * (1.0 - decay)))
    notes = []
    if dv > DECAY_UNITY - 1:   # decay 0 (no memory) needs dv = 4096, one more than 12 bits
        notes.append(f"{name}: decay {decay} -> dv 4095 (v keeps v >> 12 per step)")
    return min(max(dv, 0), DECAY_UNITY - 1), notes


def du_for(decay: float, name: str) -> tuple[int, list]:
    """Loihi's 12-bit current decay for a float current decay alpha: u keeps u (4095 - du) / 4096
    (Lava decays u by du + 1), so du = 4095 - round(4096 alpha), clamped to 0..4095 (alpha = 0:
    du = 4095, no current state; alpha = 1 needs du = -1: du = 0, noted)."""
    du = DECAY_UNITY - 1 - int(_round_half_away(DECAY_UNITY * decay))
    notes = []
    if du < 0:
        notes.append(f"{name}: current decay {decay} -> du 0 (u keeps 4095/4096 per step)")
    return min(max(du, 0), DECAY_UNITY - 1), notes


def _round_half_away(x: float) -> float:
    from ...lowering.quantize import round_half_away
    return float(round_half_away(x))
