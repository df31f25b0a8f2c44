"""The spiking IR: layers of neurons with integer parameters, connected by synapse branches.

`SpikingGraph.layers` is in topological order; `topology()` gives the networkx DiGraph
(source layer -> target layer).  The first layer is the input encoder, the last one the
readout.  Every number a chip needs is an integer field whose name carries its role
(`bias_mant`, `bias_exp`, `weight_exp`, `v_th_mant`); floats appear only where the host
converts (input scale, output scale, the real value of one code step for reports).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from .fields import int_array, integer, ints, nested, real_array, shape, text


IR_VERSION = 2          # 2: checksums of ir.json and params.npz; options recorded as used


@dataclass
class Branch:
    """Synapses from one source layer: ops applied in order, result << weight_exp.

    weight_exp >= 0 always: a right shift would round each plane's partial sum, which has no
    exact meaning for accumulate-over-planes schemes (the quantiser never emits one)."""
    source: str = text()
    ops: list = nested("synapse ops")
    weight_exp: int = integer(0, "weight_exp_max", default=0)


@dataclass
class InputEncoder:
    """Turns the float input into integer codes: clip(floor(x*in_scale + offset), 0, code_max).

    `pad` (top, bottom, left, right): the host zero-pads the float input's H and W by these before
    encoding -- the zero padding of a first convolution that reads signed inputs (see
    lowering.input_quant), whose zero is the code of 0.0, not code 0.  `shape` is the shape of the
    codes (padded); `input_shape` the shape of the samples a user passes."""
    name: str = text()
    shape: tuple = shape()
    in_scale: np.ndarray = real_array(positive=True)      # scalar or per channel (C,)
    offset: np.ndarray = real_array()                     # scalar or per channel
    value_step: np.ndarray = real_array(nonnegative=True)  # ANN value of one code step (scalar or per channel)
    neuron: object = nested("neuron")                     # the scheme's encoder (an ir.neurons.Neuron)
    float_node: str = text(default="", may_be_empty=True)
    pad: tuple = ints(4, 0, default=(0, 0, 0, 0))

    @property
    def input_shape(self) -> tuple:
        if not any(self.pad):
            return tuple(self.shape)
        c, h, w = self.shape
        top, bottom, left, right = self.pad
        return (c, h - top - bottom, w - left - right)


@dataclass
class Layer:
    """A neuron group fed by one or more branches, with a per-channel integer bias."""
    name: str = text()
    shape: tuple = shape()
    branches: list = nested("branches")
    bias_mant: np.ndarray = int_array("-bias_mant_max", "bias_mant_max")   # int64, per channel (C,) or feature (F,)
    bias_exp: int = integer(0, "bias_exp_max")
    neuron: object = nested("neuron")   # an ir.neurons.Neuron of the scheme, or a Readout
    value_step: np.ndarray = real_array(nonnegative=True, default_factory=lambda: np.zeros(()))  # ANN value per code step
    float_node: str = text(default="", may_be_empty=True)   # the float-graph node whose value this layer reproduces

    @property
    def bias(self) -> np.ndarray:
        """Effective integer bias (bias_mant << bias_exp)."""
        return np.asarray(self.bias_mant, dtype=np.int64) << int(self.bias_exp)

    @property
    def is_readout(self) -> bool:
        return self.neuron.is_readout


@dataclass
class SpikingGraph:
    scheme: str
    target: str
    layers: list                  # [InputEncoder, Layer, ..., Layer(readout)]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names):
            raise ValueError("duplicate layer names")
        known = set()
        for layer in self.layers:
            for b in getattr(layer, "branches", []):
                if b.source not in known:
                    raise ValueError(f"layer {layer.name}: source {b.source} is not an earlier layer")
            known.add(layer.name)

    @property
    def input(self) -> InputEncoder:
        return self.layers[0]

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    def layer(self, name: str):
        for l in self.layers:
            if l.name == name:
                return l
        raise KeyError(name)

    def topology(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for l in self.layers:
            g.add_node(l.name, kind=type(l.neuron).__name__, shape=l.shape)
            for b in getattr(l, "branches", []):
                g.add_edge(b.source, l.name)
        return g

    def neuron_layers(self) -> list:
        return [l for l in self.layers if isinstance(l, Layer)]
