"""The time schedule of a `bitplane` network on Lava (host-side planning, no Lava import).

Every synapse stage adds one step; a layer's accumulation window is chosen so that the last
(LSB) plane of every branch arrives in the same step (`backends.lava.mapping` has the details
and the synapse stages).  Absolute imports only: Lava re-executes this directory's modules.
"""
import numpy as np

from neurodeploy.backends.lava.mapping import LayerPlan, NetworkPlan, map_branch, target_mant_max
from neurodeploy.errors import NeurodeployError
from neurodeploy.ir.spiking import SpikingGraph
from neurodeploy.schemes.bitplane.neurons import BitplaneEncoder, BitplaneIF


def plan_network(graph: SpikingGraph, fold: bool = True, mant_max: int | None = None) -> NetworkPlan:
    """Stages for every branch and the local time schedule of one sample."""
    if graph.scheme != "bitplane":
        raise NeurodeployError(f"the Lava backend supports the bitplane scheme, not '{graph.scheme}'",
                               "neurodeploy.backends.lava")
    if mant_max is None:
        mant_max = target_mant_max(graph)
    enc = graph.input
    if not isinstance(enc.neuron, BitplaneEncoder):
        raise NeurodeployError(f"input encoder {type(enc.neuron).__name__} is not supported", enc.name)
    layers: dict[str, LayerPlan] = {
        enc.name: LayerPlan(enc.name, tuple(enc.shape), "input", enc.neuron.n_steps, [], 0, -1, 0)}
    shapes = {enc.name: tuple(enc.shape)}
    for layer in graph.neuron_layers():
        if isinstance(layer.neuron, BitplaneIF):
            kind, n = "if", layer.neuron.n_steps
        elif layer.is_readout:
            kind, n = "readout", 0
        else:
            raise NeurodeployError(f"neuron model {type(layer.neuron).__name__} has no Lava process", layer.name)
        plans = [map_branch(b, shapes[b.source], mant_max, fold) for b in layer.branches]
        if not plans:
            raise NeurodeployError("layer without inputs", layer.name)
        for p in plans:
            last = p.stages[-1]
            if tuple(last.out_shape) != tuple(layer.shape) and \
                    int(np.prod(last.out_shape)) != int(np.prod(layer.shape)):
                raise NeurodeployError(f"branch output {last.out_shape} does not match the layer shape {layer.shape}",
                                       layer.name)
        arrival = [layers[p.source].emit_start + layers[p.source].n_steps - 1 + p.latency for p in plans]
        acc_end = max(arrival)
        for p, a in zip(plans, arrival):
            p.delay = acc_end - a
        acc_start = acc_end - max(layers[p.source].n_steps for p in plans) + 1
        layers[layer.name] = LayerPlan(layer.name, tuple(layer.shape), kind, n, plans, acc_start, acc_end,
                                       acc_end + 1)
        shapes[layer.name] = tuple(layer.shape)
    busy = max(max(lp.acc_end, lp.emit_start + lp.n_steps - 1) for lp in layers.values())
    return NetworkPlan(graph, layers, busy + 1)
