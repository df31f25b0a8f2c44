"""What every neuron model of the spiking IR offers the shared code, and the shared readout.

A scheme's neurons live in its package (`schemes/<name>/neurons.py`): plain dataclasses with
integer fields whose docstrings give the integer arithmetic that the scheme's simulator kernel
and its Lava process models implement.  Each subclasses `Neuron`, whose defaults below are what
the shared code (the simulator's core, the integer reference, verify, the reports) reads; and
each is listed in its scheme's `neuron_types`, which is how `ir.serialize` knows it.
`Readout` (a non-spiking output layer) is the one neuron every scheme may use as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fields import real


class Neuron:
    """Base of every IR neuron (encoders included).  Class attributes and methods only, no
    dataclass fields (a field of a subclass must not inherit a default from here)."""

    is_readout = False           # a non-spiking output layer (the simulator returns its state)
    max_payload = 1              # largest value one spike carries: 1 for binary/ternary spikes
                                 # (sim.core.prepare sizes exact float dtypes by it)
    float_code_offset = 0.5      # verify's float quantiser for this layer: 0.5 rounds, 0 floors

    def total_bias(self, bias):
        """What the whole run adds to the integer pre-activation U besides the synaptic input."""
        return bias

    def formats(self, target, from_input: bool = False) -> dict:
        """Bounds of this neuron's layer that differ from the target's generic formats, by the
        name `ir.fields` declarations use ("weight_mant_max", "weight_exp_max", "bias_mant_max",
        "bias_exp_max"); from_input: for a branch that reads the input encoder.  {} = the target's."""
        return {}

    def relation_problem(self, target, shape: tuple) -> str | None:
        """What is wrong with relations between this neuron's fields (and its layer's `shape`) that
        their declared ranges (`ir.fields`) cannot express; None when they hold.  `ir.validate`
        asks every neuron of a compiled network."""
        return None

    def reference_code(self, u):
        """The quantised ANN's code for the integer pre-activation U (`sim.reference`, numpy int64):
        clip(floor(U / v_th_mant), 0, code_max) unless the neuron rounds otherwise."""
        return np.clip(np.floor_divide(u, self.v_th_mant), 0, self.code_max)


@dataclass
class Readout(Neuron):
    """Non-spiking output layer: U starts at the bias and accumulates every input; the value
    reported is U * output_scale."""
    output_scale: float = real(positive=True)

    is_readout = True
