"""`bitplane`: error-free ANN-to-SNN conversion (Datta et al.; digest §2).

A QCFS-trained ANN becomes an SNN whose every layer reproduces the quantised ANN's integer
codes exactly: each layer accumulates its input bit planes (MSB first, U <- 2U + I), adds
the shifted bias, then emits its own code MSB first over T = ceil(log2(Q+1)) steps with
thresholds D*2^(T-1), ..., D and subtractive reset.  The last layer is a non-spiking readout.
"""
from __future__ import annotations

import numpy as np

from ...errors import NeurodeployError
from ...ir import float_graph as fg
from ...ir import neurons as nrn
from .neurons import BitplaneEncoder, BitplaneIF
from ...ir.spiking import Branch, InputEncoder, Layer, SpikingGraph
from ...passes import run_passes
from ...lowering.grid import quantise_on_grid
from ...lowering.input_quant import input_quantiser
from ...lowering.lower import lower
from ...lowering.quantize import bias_format, quantise_layer, round_half_away
from ...target import Target


def steps_for_levels(levels: int) -> int:
    """T = ceil(log2(Q + 1)): bits needed for codes 0..Q."""
    return int(levels).bit_length()


def build(scheme, graph: fg.FloatGraph, target: Target, options) -> SpikingGraph:
    """The flow (the package's `Scheme.build`): float graph -> SpikingGraph for `target`."""
    graph = run_passes(graph, [*scheme.passes, input_quantiser(options.calibration, options.input_bits)])
    enc, real_layers = lower(graph)
    needed = max(steps_for_levels(l.quant.levels) for l in [enc] + [r for r in real_layers if r.quant])
    if options.timesteps is not None and options.timesteps != needed:
        if options.timesteps > needed:
            raise NeurodeployError(
                f"--timesteps {options.timesteps} is more than the {needed} this model's quantisation "
                "levels need", graph.source, f"omit --timesteps (bitplane uses T = {needed})")
        if options.timesteps < 1 or not options.lossy:
            raise NeurodeployError(
                f"--timesteps {options.timesteps} is fewer than the {needed} steps the model's "
                f"quantisation levels need for an exact result", graph.source,
                "omit --timesteps, or add --lossy to accept a result that is not error-free")

    layers = [enc.encoder(BitplaneEncoder(enc.quant.levels, steps_for_levels(enc.quant.levels)))]
    shapes = {enc.name: enc.shape}
    code_max = {enc.name: enc.quant.levels}
    quant_report = {}
    for rl in real_layers:
        # a quantised model's integer weights (Brevitas, QONNX, QDQ: integers times one step) stay
        # its integers, with one relative error <= 1/(2D) for the whole layer; otherwise the
        # generic quantiser rounds each weight to its mantissa
        levels = rl.quant.levels if rl.quant else None
        q = (quantise_on_grid(rl.name, rl.branches, rl.bias, levels, shapes, code_max, target)
             or quantise_layer(rl.name, rl.branches, rl.bias, levels, shapes, code_max, target))
        if rl.quant is None:
            neuron = nrn.Readout(output_scale=1.0 / q.unit)
            value_step = np.asarray(1.0 / q.unit)
        else:
            neuron = BitplaneIF(v_th_mant=q.unit, code_max=rl.quant.levels,
                                    n_steps=steps_for_levels(rl.quant.levels))
            value_step = np.asarray(rl.quant.out_step)
            code_max[rl.name] = rl.quant.levels
        shapes[rl.name] = rl.shape
        layers.append(Layer(rl.name, rl.shape, q.branches, q.bias_mant, q.bias_exp, neuron,
                            value_step, rl.float_node))
        quant_report[rl.name] = q.report()
    steps = [layers[0].neuron.n_steps] + [l.neuron.n_steps for l in layers[1:] if not l.is_readout]
    meta = {"time_steps_per_layer": {l.name: l.neuron.n_steps for l in layers if not getattr(l, "is_readout", False)},
            "latency_steps": int(sum(steps)),
            "throughput_steps": int(max(steps)),
            "quantisation": quant_report}
    if options.timesteps is not None and options.timesteps < needed:
        # the exact network stays in the artifact as the quantised ANN verify compares with
        meta["reference_layers"] = layers
        layers, dropped = truncate_timesteps(layers, options.timesteps, target)
        meta["lossy"] = {"timesteps": options.timesteps, "exact_timesteps": needed, "dropped_bits": dropped}
        steps = [min(s, options.timesteps) for s in steps]
        meta["time_steps_per_layer"] = {k: min(v, options.timesteps) for k, v in meta["time_steps_per_layer"].items()}
        meta["latency_steps"], meta["throughput_steps"] = int(sum(steps)), int(max(steps))
    return SpikingGraph(scheme.name, target.name, layers, meta)


def truncate_timesteps(layers: list, timesteps: int, target: Target) -> tuple[list, dict]:
    """Lossy variant: every layer emits only its top `timesteps` bits, rounded.

    A layer that needs T > timesteps bits drops d = T - timesteps LSBs: its threshold unit
    becomes D << d, its code range Q >> d, and D << (d - 1) is added to its bias so that the
    truncation rounds.  Consumers scale what they receive back by 2^d (weight_exp + d).  The
    result is not error-free; verify reports the mismatches against the exact network.
    """
    dropped: dict[str, int] = {}
    enc = layers[0]
    d = max(0, enc.neuron.n_steps - timesteps)
    dropped[enc.name] = d
    scale = float(1 << d)
    out = [InputEncoder(enc.name, enc.shape, np.asarray(enc.in_scale) / scale,
                        np.asarray(enc.offset) / scale + (0.5 if d else 0.0), np.asarray(enc.value_step) * scale,
                        BitplaneEncoder(enc.neuron.code_max >> d, enc.neuron.n_steps - d), enc.float_node,
                        enc.pad)]
    for layer in layers[1:]:
        # receivers scale what they get back up by 2^d through weight_exp; where that would
        # exceed the target's exponent range, the layer's own unit and bias shrink instead
        wanted = [b.weight_exp + dropped[b.source] for b in layer.branches]
        over = max(0, max(wanted) - target.weight_exp_max)
        if min(wanted) - over < max(0, target.weight_exp_min):
            raise NeurodeployError(f"--timesteps {timesteps} cannot be expressed with the target's weight "
                                   "exponents", f"layer '{layer.name}'", "use more time steps")
        branches = [Branch(b.source, b.ops, e - over) for b, e in zip(layer.branches, wanted)]
        bias = round_half_away(layer.bias / float(1 << over))
        neuron = layer.neuron
        if layer.is_readout:
            neuron = nrn.Readout(neuron.output_scale * float(1 << over))
        else:
            d = max(0, neuron.n_steps - timesteps)
            dropped[layer.name] = d
            unit = max(1, int(round_half_away(neuron.v_th_mant / float(1 << over)))) << d
            if unit > target.v_th_mant_max:
                raise NeurodeployError(f"threshold {unit} exceeds the target's {target.v_th_mant_bits}-bit "
                                       "threshold mantissa", f"layer '{layer.name}'", "use more time steps")
            bias = bias + (unit >> 1 if d else 0)
            neuron = BitplaneIF(unit, neuron.code_max >> d, neuron.n_steps - d)
        bias_mant, bias_exp = bias_format(bias, target)
        if bias_mant is None:
            raise NeurodeployError("bias does not fit the target's bias format after truncation",
                                   f"layer '{layer.name}'", "use more time steps")
        out.append(Layer(layer.name, layer.shape, branches, bias_mant, bias_exp, neuron,
                         np.asarray(layer.value_step) * float(1 << dropped.get(layer.name, 0)), layer.float_node))
    return out, dropped
