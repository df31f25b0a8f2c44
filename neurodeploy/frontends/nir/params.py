"""NIR neuron parameters -> the discrete neuron of the conventions -> Loihi 2 CUBA LIF decays.

`map_neuron` turns one neuron node's continuous-time fields (tau / tau_mem / tau_syn, r,
v_leak, w_in, v_threshold, v_reset) with the time step and discretisation of the
`NirConventions` into the per-step model of `conventions.py`, then into Loihi's 12-bit
decays (shared/docs/loihi.md §C.2):

    dv = round(4096 (1 - beta))        v keeps v (4096 - dv) / 4096 each step (rounded toward 0)
    du = 4095 - round(4096 alpha)      u keeps u (4095 - du) / 4096 (Lava decays u by du + 1)

rounding half away from zero, each clamped to 0..4095 (beta = 0, no memory, needs dv = 4096:
dv = 4095 keeps v >> 12; noted).  The rounding is reported per layer: the exact beta / alpha,
Loihi's, and the time constant Loihi's decay stands for (tau_loihi = -dt / ln(decay)).

Gains fold into the layer's weights (`ops.NirNeuronAct.in_scale` = g / v_threshold, the
weights come out in threshold units); the leak drive (1 - beta) v_leak per step is a bias.
Loihi runs one du/dv per neuron group and fires on v > threshold, resetting to 0: per-neuron
time constants that round to different decays, v_reset != 0, and subtractive resets are
refused with the node's name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import UnsupportedError
from ...schemes.cuba import neurons as cb
from .conventions import RESET_HINT, NirConventions
from .reader import RawNode

SPIKING = ("LIF", "CubaLIF", "IF", "Threshold")
READOUTS = ("LI", "I")


@dataclass
class NeuronMapping:
    """One NIR neuron node as a discrete neuron and Loihi decays (module docstring)."""
    node: str
    kind: str                  # the NIR type
    spiking: bool
    beta: float                # exact voltage decay per step (1 = no leak)
    alpha: float               # exact current decay per step (0 = no current state)
    gain: np.ndarray           # input -> v per step (scalar or per channel), current gain included
    v_th: np.ndarray           # threshold (scalar or per channel); 1 for readouts
    leak_drive: np.ndarray     # (1 - beta) v_leak added to v per step
    dv: int
    du: int
    notes: list = field(default_factory=list)

    @property
    def beta_loihi(self) -> float:
        return 1.0 - self.dv / cb.DECAY_UNITY

    @property
    def alpha_loihi(self) -> float:
        return (cb.DECAY_UNITY - 1 - self.du) / cb.DECAY_UNITY

    def rounding(self, dt: float | None) -> dict:
        """The report row: exact and Loihi decays, and the time constants they stand for."""
        def tau(decay):
            return None if dt is None or not 0 < decay < 1 else -dt / math.log(decay)
        return {"node": self.node, "kind": self.kind, "beta": self.beta, "dv": self.dv,
                "beta_loihi": self.beta_loihi, "tau_mem_loihi": tau(self.beta_loihi),
                "alpha": self.alpha, "du": self.du, "alpha_loihi": self.alpha_loihi,
                "tau_syn_loihi": tau(self.alpha_loihi)}


def per_channel(a, shape: tuple, what: str, where: str) -> np.ndarray:
    """A parameter as a scalar (all equal) or per channel (axis 0 of `shape`); refused otherwise
    (Loihi holds thresholds and gains per neuron group, folded into per-channel weights)."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        raise UnsupportedError(f"empty {what}", where)
    flat = a.ravel()
    if np.all(flat == flat[0]):
        return np.float64(flat[0])
    if a.shape != tuple(shape):
        raise UnsupportedError(f"{what} of shape {a.shape} for neurons of shape {tuple(shape)}", where)
    per = a.reshape(shape[0], -1)
    if not np.all(per == per[:, :1]):
        raise UnsupportedError(f"{what} differs within a channel", where,
                               "use one value per channel (Loihi folds it into the channel's weights)")
    return per[:, 0].copy()


def _need_dt(conv: NirConventions, where: str) -> float:
    if conv.dt is None:
        raise UnsupportedError("NIR graphs carry no time step and this node's dynamics need one", where,
                               "pass --nir-dt (the dt the exporter assumed: snnTorch and SpikingJelly 1e-4, "
                               "Norse 1e-6, sinabs 1) or --nir-from LIBRARY")
    return float(conv.dt)


def _decay(tau, conv: NirConventions, what: str, where: str) -> np.ndarray:
    dt = _need_dt(conv, where)
    tau = np.asarray(tau, dtype=np.float64)
    if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
        raise UnsupportedError(f"{what} must be finite and positive", where)
    if conv.decay == "exp":
        return np.exp(-dt / tau)
    if np.any(tau < dt):
        raise UnsupportedError(f"{what} = {float(np.min(tau)):.3g} is shorter than the time step {dt:g} "
                               f"(forward Euler decay 1 - dt/tau < 0)", where,
                               "check --nir-dt: the exporter's dt (snnTorch 1e-4, Norse 1e-6, ...)")
    return 1.0 - dt / tau


def _uniform(values: np.ndarray, what: str, where: str) -> float:
    flat = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(flat == flat[0]):
        raise UnsupportedError(f"per-neuron {what} ({flat.min():.6g} .. {flat.max():.6g})", where,
                               "Loihi's CUBA LIF has one decay per neuron group: use one time constant per layer")
    return float(flat[0])


def _check_reset(node: RawNode, conv: NirConventions, where: str) -> None:
    if conv.reset is None:
        raise UnsupportedError("the reset is not stated", where, RESET_HINT)
    if conv.reset == "subtract":
        raise UnsupportedError("a subtractive reset: Loihi 2's CUBA LIF resets v to 0", where,
                               "retrain with reset to zero (snnTorch reset_mechanism='zero', sinabs MembraneReset())")
    v_reset = node.get("v_reset")
    if v_reset is not None and np.any(np.asarray(v_reset, dtype=np.float64) != 0):
        raise UnsupportedError("v_reset != 0: Loihi 2's CUBA LIF resets v to 0", where,
                               "shift the network's potentials so that v_reset = 0")


def map_neuron(node: RawNode, shape: tuple, conv: NirConventions, where: str) -> NeuronMapping:
    """The discrete neuron and Loihi decays of one NIR neuron node (module docstring)."""
    kind, name = node.type, node.name
    notes: list[str] = []
    alpha, v_leak = 0.0, np.float64(0.0)
    if kind in ("LIF", "LI"):
        beta = _uniform(_decay(node.array("tau", where), conv, "tau", where), "tau", where)
        r = node.array("r", where)
        gain = r * (1.0 - beta) if conv.input_gain == "ode" else r
        v_leak = node.array("v_leak", where)
    elif kind == "CubaLIF":
        beta = _uniform(_decay(node.array("tau_mem", where), conv, "tau_mem", where), "tau_mem", where)
        alpha = _uniform(_decay(node.array("tau_syn", where), conv, "tau_syn", where), "tau_syn", where)
        w_in = np.asarray(node.get("w_in", 1.0), dtype=np.float64)
        c_in = w_in * (1.0 - alpha) if conv.current_input == "ode" else w_in
        r = node.array("r", where)
        gain = c_in * (r * (1.0 - beta) if conv.input_gain == "ode" else r)
        v_leak = node.array("v_leak", where)
    elif kind in ("IF", "I"):
        beta = 1.0
        r = node.array("r", where)
        gain = r * _need_dt(conv, where) if conv.integrator_gain == "ode" else r
    elif kind == "Threshold":
        beta, gain = 0.0, np.float64(1.0)
    else:
        raise UnsupportedError(f"neuron type {kind} is not supported", where,
                               "supported neurons: LIF, CubaLIF, IF, Threshold; readouts LI, I")
    spiking = kind in SPIKING
    if spiking:
        _check_reset(node, conv, where)
        v_th = per_channel(node.array("threshold" if kind == "Threshold" else "v_threshold", where), shape,
                           "v_threshold", where)
        if np.any(np.asarray(v_th) <= 0):
            raise UnsupportedError("a threshold <= 0 (every step would spike)", where)
    else:
        v_th = np.float64(1.0)
    gain = per_channel(gain, shape, "input gain", where)
    leak_drive = per_channel(np.asarray((1.0 - beta) * v_leak, dtype=np.float64), shape, "v_leak", where)
    dv, n1 = cb.dv_for(beta, name)
    du, n2 = cb.du_for(alpha, name)
    return NeuronMapping(name, kind, spiking, beta, alpha, gain, v_th, leak_drive, dv, du, notes + n1 + n2)
