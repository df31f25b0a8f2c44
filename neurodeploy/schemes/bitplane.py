"""`bitplane`: error-free ANN-to-SNN conversion (Datta et al.; digest §2).

A QCFS-trained ANN becomes an SNN whose every layer reproduces the quantised ANN's integer
codes exactly: each layer accumulates its input bit planes (MSB first, U <- 2U + I), adds
the shifted bias, then emits its own code MSB first over T = ceil(log2(Q+1)) steps with
thresholds D*2^(T-1), ..., D and subtractive reset.  The last layer is a non-spiking readout.
"""
from __future__ import annotations

import numpy as np

from ..errors import NeurodeployError
from ..ir import float_graph as fg
from ..ir import neurons as nrn
from ..ir.spiking import InputEncoder, Layer, SpikingGraph
from ..passes import run_passes
from ..passes.input_quant import insert_input_quantiser
from ..passes.lower import lower
from ..passes.quantize import quantise_layer
from ..target import Target
from .base import CompileOptions, Scheme


def steps_for_levels(levels: int) -> int:
    """T = ceil(log2(Q + 1)): bits needed for codes 0..Q."""
    return int(levels).bit_length()


class Bitplane(Scheme):
    name = "bitplane"
    passes = ["fold_bn", "fuse_quant_act", "drop_redundant_relu", "bias_shift"]
    guarantee = "every layer's decoded spikes equal the quantised ANN's integer codes (zero mismatches)"

    def compile(self, graph: fg.FloatGraph, target: Target, options: CompileOptions) -> SpikingGraph:
        graph = run_passes(graph, self.passes)
        graph = insert_input_quantiser(graph, options.calibration, options.input_bits)
        enc, real_layers = lower(graph)
        needed = max(steps_for_levels(l.quant.levels) for l in [enc] + [r for r in real_layers if r.quant])
        if options.timesteps is not None and options.timesteps != needed:
            if options.timesteps > needed:
                raise NeurodeployError(
                    f"--timesteps {options.timesteps} is more than the {needed} this model's quantisation "
                    "levels need", graph.source, f"omit --timesteps (bitplane uses T = {needed})")
            raise NeurodeployError(
                f"--timesteps {options.timesteps} is fewer than the {needed} steps the model's "
                f"quantisation levels need for an exact result", graph.source,
                f"omit --timesteps; fewer steps are not supported by the exact bitplane scheme")

        layers = [InputEncoder(enc.name, enc.shape, np.asarray(enc.quant.in_scale), np.asarray(enc.quant.offset),
                               np.asarray(enc.quant.out_step),
                               nrn.BitplaneEncoder(enc.quant.levels, steps_for_levels(enc.quant.levels)),
                               float_node=enc.float_node)]
        shapes = {enc.name: enc.shape}
        code_max = {enc.name: enc.quant.levels}
        quant_report = {}
        for rl in real_layers:
            q = quantise_layer(rl.name, rl.branches, rl.bias, rl.quant.levels if rl.quant else None,
                               shapes, code_max, target)
            if rl.quant is None:
                neuron = nrn.Readout(output_scale=1.0 / q.unit)
                value_step = np.asarray(1.0 / q.unit)
            else:
                neuron = nrn.BitplaneIF(v_th_mant=q.unit, code_max=rl.quant.levels,
                                        n_steps=steps_for_levels(rl.quant.levels))
                value_step = np.asarray(rl.quant.out_step)
                code_max[rl.name] = rl.quant.levels
            shapes[rl.name] = rl.shape
            layers.append(Layer(rl.name, rl.shape, q.branches, q.bias_mant, q.bias_exp, neuron,
                                value_step, rl.float_node))
            quant_report[rl.name] = {"weight_exp": q.weight_exp, "unit": q.unit, "state_bound": q.state_bound,
                                     "weight_rel_error": q.weight_rel_error, "bias_max_error": q.bias_max_error}
        steps = [layers[0].neuron.n_steps] + [l.neuron.n_steps for l in layers[1:] if not l.is_readout]
        meta = {"time_steps_per_layer": {l.name: l.neuron.n_steps for l in layers if not getattr(l, "is_readout", False)},
                "latency_steps": int(sum(steps)),
                "throughput_steps": int(max(steps)),
                "quantisation": quant_report}
        return SpikingGraph(self.name, target.name, layers, meta)

    def guarantee_holds(self, graph: SpikingGraph, layer_mismatches: dict[str, int]) -> bool:
        return all(v == 0 for v in layer_mismatches.values())
