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


@dataclass(frozen=True)
class ChipPath:
    """How Loihi 2 runs a neuron model (`Neuron.loihi2`, `Scheme.chip_path`).

    where  "stock": a Loihi 2 stock neuron model that public software reaches (Lava's processes,
           Lava-DL NetX); "microcode": a custom neuron program Loihi 2 would run as microcode,
           which no public software provides (neurodeploy runs it bit-exactly in Lava's CPU
           simulation only); "host": not on a neurocore (input encoders whose spikes the host
           injects, a readout summed on the host)
    model  the neuron model there, in words
    """
    where: str
    model: str

    STOCK = "stock"
    MICROCODE = "microcode"
    HOST = "host"


class Neuron:
    """Base of every IR neuron (encoders included).  Class attributes and methods only, no
    dataclass fields (a field of a subclass must not inherit a default from here)."""

    is_readout = False           # a non-spiking output layer (the simulator returns its state)
    max_payload = 1              # largest value one spike carries: 1 for binary/ternary spikes
                                 # (sim.core.prepare sizes exact float dtypes by it)
    float_code_offset = 0.5      # verify's float quantiser for this layer: 0.5 rounds, 0 floors
    # encoders only (`sim.core.input_codes`, `arrays.sample_shape`):
    code_min = 0                 # smallest input code: < 0 for signed graded input (imported NetX files)
    sequence = False             # True: x holds one frame per time step, shaped (N, n_steps, *shape)
    chip_path = None             # a ChipPath: how Loihi 2 runs this neuron model (`loihi2`)

    def loihi2(self) -> ChipPath:
        """How Loihi 2 runs this neuron (its class's `chip_path`; a neuron whose path depends on
        its fields overrides this).  Undeclared: a custom neuron program, to be safe."""
        return self.chip_path or ChipPath(ChipPath.MICROCODE, f"{type(self).__name__} (no stock Loihi 2 model declared)")

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
    chip_path = ChipPath(ChipPath.HOST, "integrator summed on the host from its synapses' output (a Lava RingBuffer "
                                        "sink), the bias added there")
