"""The float-graph ops the NIR front end emits beside the common ones.

`NirNeuronAct` is a spiking NIR neuron as a `schemes.cuba.front.LIFAct` (so `lowering.lower` cuts the
graph there and the `cuba` scheme compiles it as a CUBA LIF): in_scale = g / v_threshold
folds the input gain into the weights of the layer (they come out in threshold units), the
offset carries the leak drive, and Loihi's decays are already fixed by `params.map_neuron`.

`NirReadout` is the graph's output as a `float_graph.Scale` (lowering folds its factor, the
readout's input gain, into the weights) that tells the `cuba` scheme which readout to build:

    "mean"   the mean over the T steps of the value reaching the Output (an Affine's W s + b):
             an integrator read as v(R) - v(depth), divided by T (the scheme's default readout)
    "sum"    the sum over the T steps: an NIR Integrator ``I``'s state after T steps, or the spike
             count of a spiking last layer (the front end adds an identity synapse to it)
    "final"  a leaky integrator ``LI``: v after the run's last step, dv its decay (the pipeline's
             fill steps are in v too, decayed by beta^T)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...schemes.cuba import neurons as cb
from ...ir import float_graph as fg
from ...schemes.cuba.front import LIFAct

READOUT_MODES = ("mean", "sum", "final")


@dataclass
class NirNeuronAct(LIFAct):
    """A spiking NIR neuron node (LIF, CubaLIF, IF, Threshold) with its Loihi decays."""
    du: int = cb.DECAY_UNITY - 1
    dv: int = 0
    node: str = ""
    kind: str = "LIF"
    notes: list = field(default_factory=list)

    def cuba_decays(self, name: str) -> tuple[int, int, int, list]:
        """(du, dv, steps u sums input over = ceil(1 / (1 - alpha_loihi)), notes)."""
        u_steps = math.ceil(cb.DECAY_UNITY / (self.du + 1))
        return self.du, self.dv, u_steps, list(self.notes)


@dataclass
class NirReadout(fg.Scale):
    """The output of a NIR graph (module docstring); factor = the readout's input gain."""
    mode: str = "mean"
    dv: int = 0
    node: str = ""

    def cuba_readout(self, unit: int, t: int, depth: int) -> cb.CubaReadout:
        """The `cuba` readout neuron for threshold unit D = `unit`, T steps and pipeline depth."""
        per_unit = float(1 << cb.ACT_SHIFT) * unit
        if self.mode == "final":
            return cb.CubaReadout(dv=self.dv, output_scale=1.0 / per_unit, window_start=0)
        return cb.CubaReadout(output_scale=1.0 / (per_unit * (t if self.mode == "mean" else 1)), window_start=depth)
