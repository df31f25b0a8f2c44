"""Neurons of the `reverb` scheme: binary (±1) synapses carrying graded (real-valued) spikes.

ReverB-SNN (Guo et al., ICML 2025; digest §4): a neuron integrates with decay τ, and when
its membrane U reaches V_th it emits U itself as a graded spike and resets to 0.  After the
re-parameterisation (α and BatchNorm folded away, `schemes.reverb.fold`) every synapse of a
binary layer is +1 or −1, so the synaptic work is additions and subtractions of payloads;
the channel scales that the folding removed from the synapses reappear as one multiply per
*emitted spike* (`out_mant`, `out_shift` below), the "fold into the previous layer's
activation" of the paper.

Plain dataclasses with integer fields (`ir.neurons.Neuron`); `kernel.py` implements this
arithmetic and the Lava process model in `lava/` must compute the very same integers.

Units.  A layer's membrane `v` is an integer in units of its input payload: a graded spike
with payload p on a synapse of mantissa w adds (w · p) << weight_exp to `a_in` (Lava's
Dense/Conv with num_message_bits > 0 compute exactly this).  Payloads are unsigned
integers of `payload_bits` bits (Loihi 2 graded spikes carry up to 24 bits).

Time.  All layers are layer-synchronous in the float model (layer l at step t sees layer
l−1's spikes of the same step t).  On the chip every synapse hop delays by one step, so a
layer at hop depth d runs its local steps t = 1..T at absolute steps d + t; before that it
is gated off (no decay, no bias, no firing) so that the fixed-point network computes the
float network's function, merely shifted in time.  `start_step` = d holds that gate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir.fields import int_array, integer
from ...ir.neurons import Neuron, Readout
from ...limits import MAX_RUN_STEPS, MAX_TIMESTEPS

DECAY_SHIFT = 12            # decay as a 12-bit fraction of 4096, as Loihi's dv
DECAY_UNITY = 1 << DECAY_SHIFT
STATE_BITS = 24             # membrane v is a signed 24-bit register
STATE_MAX = (1 << (STATE_BITS - 1)) - 1
MAX_PAYLOAD_BITS = 24       # Loihi 2 graded spikes carry at most 24 bits
OUT_MANT_MAX = (1 << 24) - 1   # the emission multiplier is unsigned 24-bit


def decay_mant_for(tau: float) -> int:
    """dv such that 1 − dv/4096 = τ (rounded); τ = 0.25 gives dv = 3072 exactly."""
    return int(round(DECAY_UNITY * (1.0 - float(tau))))


def decay_toward_zero(v: np.ndarray, dv: int) -> np.ndarray:
    """sign(v) · (|v| · (4096 − dv) >> 12): Loihi's decay, rounding toward zero (int64)."""
    v = np.asarray(v, dtype=np.int64)
    return np.sign(v) * ((np.abs(v) * (DECAY_UNITY - int(dv))) >> DECAY_SHIFT)


def neuron_field(a, shape: tuple) -> np.ndarray:
    """A per-neuron parameter (v_th_mant, out_mant) broadcast to the full layer shape, int64.

    The broadcasting rule of `ReverbNeuron`'s array fields, for a layer of shape `shape`
    ((C, H, W) or (F,)):

    * scalar ()             -> the same value for every neuron;
    * per channel (C,)      -> value c for every neuron of channel c (over H, W);
    * per neuron `shape`    -> one value per neuron (for (F,) layers the same as per channel).

    Anything else is a malformed IR (ValueError): a 1-D array must match the channel count,
    a multi-dimensional one the whole layer shape.
    """
    a = np.asarray(a, dtype=np.int64)
    shape = tuple(int(s) for s in shape)
    if a.ndim == 0 or a.shape == shape:
        return np.broadcast_to(a, shape)
    if a.ndim == 1 and len(shape) >= 1 and a.shape[0] == shape[0]:
        return np.broadcast_to(a.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    raise ValueError(f"a neuron parameter of shape {a.shape} fits neither the channels nor the layer shape {shape}")


def emit_payload(v: np.ndarray, out_mant: np.ndarray, out_shift: int, payload_max: int) -> np.ndarray:
    """Payload of a firing neuron with membrane v ≥ 0: clip(round_half_up(v · m / 2^shift), 0, max).

    `out_mant` is broadcast against v by the caller (`neuron_field`): per channel so that the
    channel scale κ_c of the folding (BN scale × the consumer's α × payload-unit change)
    costs one multiply per spike, or per neuron when the consumer's α varies within a channel
    (a BinaryLinear after a Flatten: α per input feature).
    """
    v = np.asarray(v, dtype=np.int64)
    prod = v * np.asarray(out_mant, dtype=np.int64)
    rounded = (prod + ((1 << out_shift) >> 1)) >> out_shift if out_shift > 0 else prod
    return np.clip(rounded, 0, payload_max)


@dataclass
class ReverbEncoder(Neuron):
    """Input encoder (host / spike injector): code k = clip(floor(x·in_scale + offset), 0, code_max)
    of every input element, sent as a graded spike with payload k at each of the T steps
    (a static input is a constant current in the float model).  Zero codes send nothing."""
    code_max: int = integer(1, "state_max")
    timesteps: int = integer(1, MAX_TIMESTEPS)

    @property
    def n_steps(self) -> int:
        return self.timesteps

    @property
    def max_payload(self) -> int:
        """Largest graded payload it sends (sim.engine sizes exact float dtypes by it)."""
        return self.code_max


@dataclass
class ReverbNeuron(Neuron):
    """Graded-spike neuron with hard reset, one update per local step t = 1..T.

    Per step, with a_in the synaptic input of this step and b = bias_mant << bias_exp::

        v  = sign(v)·(|v|·(4096 − dv) >> 12)          # leak τ = 1 − dv/4096, toward 0
        v  = clip(v + a_in + b, −(2^23−1), 2^23−1)     # 24-bit state, saturating
        f  = v ≥ v_th_mant                               # ≥ 0, broadcast by `neuron_field`
        p  = f ? clip((v·out_mant + 2^(out_shift−1)) >> out_shift, 0, 2^payload_bits − 1) : 0
        v  = 0 where f                                   # hard reset

    p is the graded spike (payload; 0 = no message).  In float terms the membrane is
    Ũ = v·in_unit (in_unit = the input payload's value) and the emitted value is
    p·out_unit, out_unit the payload unit of this layer's own output.

    v_th_mant and out_mant broadcast over the layer shape by the rule of `neuron_field`:
    scalar, per channel (C,) (over H, W of a (C, H, W) layer) or per neuron (the full layer
    shape (C, H, W) / (F,)).  The compiler writes (C,) whenever that suffices (thresholds
    always, since BatchNorm is per channel; out_mant unless the consumer's α varies within a
    channel, i.e. a binary dense layer after a Flatten), so per-channel artifacts stay as
    they were.  On Loihi 2 each neuron keeps its own out_mant register either way.

    Fields:
        dv: 12-bit leak (τ = 1 − dv/4096).
        v_th_mant: firing threshold in v units, ≤ 24-bit, never negative.
        out_mant: emission multiplier, unsigned, ≤ 24 bits.
        out_shift: right shift after the multiply (round half up), one per layer.
        payload_bits: width of the emitted payload.
        timesteps: T, the local steps this layer runs.
        start_step: absolute step after which the layer starts (its hop depth).
    """
    dv: int = integer(0, "decay_max")
    v_th_mant: np.ndarray = int_array(0, "state_max")
    out_mant: np.ndarray = int_array(0, OUT_MANT_MAX)
    out_shift: int = integer(0, 62)
    payload_bits: int = integer(1, MAX_PAYLOAD_BITS)
    timesteps: int = integer(1, MAX_TIMESTEPS)
    start_step: int = integer(0, MAX_RUN_STEPS, default=0)

    def relation_problem(self, target, shape):
        for name in ("v_th_mant", "out_mant"):
            try:
                neuron_field(getattr(self, name), shape)
            except ValueError as exc:
                return f"{name}: {exc}"
        return None

    @property
    def max_payload(self) -> int:
        """2^payload_bits − 1, the largest payload (sim.engine reads it on every payload-sending neuron)."""
        return (1 << int(self.payload_bits)) - 1

    @property
    def decay(self) -> float:
        return 1.0 - self.dv / DECAY_UNITY

    n_steps = property(lambda self: self.timesteps)


@dataclass
class ReverbReadout(Readout):
    """Non-spiking integrator: v += a_in + b at each of the T local steps (no leak, no reset).

    The reported value is v · output_scale after the last local step, output_scale =
    in_unit / T: the float model's mean over T of W·O_t + b.
    """
    timesteps: int = integer(1, MAX_TIMESTEPS, default=1)
    start_step: int = integer(0, MAX_RUN_STEPS, default=0)

    def total_bias(self, bias):
        """What the run adds besides the synaptic input: the bias at each of the T steps
        (unlike the base `Readout`, whose U starts at the bias once)."""
        return bias * int(self.timesteps)
