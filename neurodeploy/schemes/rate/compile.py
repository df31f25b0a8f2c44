"""`rate`: classic integrate-and-fire rate coding, the baseline every scheme is compared with.

Each activation becomes an IF neuron whose spike count over T steps approximates the
activation in units of λ/T (threshold balancing: λ from calibration data for ReLUs, the
trained λ for QCFS).  The initial potential holds the bias plus half a threshold, so counts
round like QCFS (Bu et al.).  Reset: "subtract" keeps the residue (a custom neuron on
Loihi 2); "zero" is Loihi's stock LIF, which loses the residue at every spike and so
undercounts strong inputs.  No exactness guarantee: spike timing makes counts deviate
from the quantised ANN; verify reports by how much.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ...errors import NeurodeployError
from ...ir import float_graph as fg
from ...ir import neurons as nrn
from .neurons import RateEncoder, RateIF
from ...ir.spiking import Layer, SpikingGraph
from ...passes import run_passes
from ...lowering.maxpool import refuse_max_pooling
from ...lowering.input_quant import input_quantiser
from ...lowering.pool_layer import lower_fitting_readout
from ...lowering.quantize import quantise_layer
from ...lowering.threshold_balance import balance_thresholds
from ...sim.core import depth
from ...target import Target

DEFAULT_TIMESTEPS = 32


def build(scheme, graph: fg.FloatGraph, target: Target, options) -> SpikingGraph:
    """The flow (the package's `Scheme.build`): float graph -> SpikingGraph for `target`."""
    t = DEFAULT_TIMESTEPS if options.timesteps is None else int(options.timesteps)   # >= 1: Scheme.options
    if options.reset not in ("subtract", "zero"):
        raise NeurodeployError(f"unknown reset '{options.reset}'", "--reset", "use subtract or zero")
    graph = run_passes(graph, [*scheme.passes, input_quantiser(options.calibration, options.input_bits),
                               balance_thresholds(options.calibration, t, options.percentile)])
    # A LIF's input enters its 24-bit state shifted left by act_shift (6 on Loihi: lif/models.py
    # L155), so our integer state has state_bits - act_shift bits.
    shift = int(target.raw.get("neuron", {}).get("lif_act_shift", 0))
    tgt = dataclasses.replace(target, state_bits=target.state_bits - shift)
    # the readout as the layer loop below quantises it (every source counts up to t)
    enc, real_layers, pool = lower_fitting_readout(graph, lambda rl, shapes: quantise_layer(
        rl.name, rl.branches, rl.bias, None, shapes, dict.fromkeys(shapes, t), tgt),
        lambda layers: refuse_max_pooling(graph, layers, "max pooling of spike trains is not the max of their "
                                          "rates", "use average pooling or the bitplane scheme"))
    layers = [enc.encoder(RateEncoder(t, t))]
    # Size the state for the whole sample, not one step: a neuron driven far below zero must
    # not saturate (a saturated state forgets how negative it was and then fires on later
    # positive input), so |v| <= |v_init| + sum |W| * T must fit, as for codes 0..T.
    shapes, count_max = {enc.name: enc.shape}, {enc.name: t}
    report = {}
    n_run = t + _hops(real_layers, enc.name)
    for rl in real_layers:
        if rl.quant is None:       # the readout adds its bias once
            q = quantise_layer(rl.name, rl.branches, rl.bias, None, shapes, count_max, tgt)
            neuron, step = nrn.Readout(output_scale=1.0 / q.unit), np.asarray(1.0 / q.unit)
        else:
            # the ANN bias is spread over the run's steps (a constant current, as Loihi's
            # bias); the rounding offset becomes the initial potential
            offset = float(np.max(rl.quant.offset))
            q = quantise_layer(rl.name, rl.branches, (rl.bias - offset) / n_run, t, shapes, count_max, tgt)
            neuron = RateIF(v_th_mant=q.unit, code_max=t, v_init=int(round(offset * q.unit)),
                                bias_steps=n_run, reset=options.reset, state_bits=tgt.state_bits)
            step = np.asarray(rl.quant.out_step)
        shapes[rl.name], count_max[rl.name] = rl.shape, t
        layers.append(Layer(rl.name, rl.shape, q.branches, q.bias_mant, q.bias_exp, neuron, step, rl.float_node))
        report[rl.name] = q.report()
    net = SpikingGraph(scheme.name, target.name, layers, {"quantisation": report})
    hops = depth(net)
    net.meta.update({"time_steps_per_layer": {l.name: t for l in layers if not getattr(l, "is_readout", False)},
                     "latency_steps": t + hops, "throughput_steps": t, "reset": options.reset,
                     "rate_timesteps": t})
    if pool is not None:
        net.meta["readout_pool_layer"] = pool
    return net


def _hops(real_layers, input_name: str) -> int:
    """Synapse hops from the input to the readout (layers are in topological order)."""
    hops = {input_name: 0}
    for rl in real_layers:
        hops[rl.name] = 1 + max(hops[b.source] for b in rl.branches)
    return hops[real_layers[-1].name]
