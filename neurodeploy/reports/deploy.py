"""Can this network go to a Loihi 2 chip with public software?  Per layer and for the network.

Each layer's answer comes from its scheme (`Scheme.chip_path`, by default the neuron's own
`Neuron.loihi2()`, an `ir.neurons.ChipPath`):

  stock      a Loihi 2 stock neuron model reachable through public software: Lava's processes
             (lava.proc.lif, lava.proc.sdn) and Lava-DL NetX (cuba, sdnn, rate with --reset zero)
  microcode  a custom neuron program that Loihi 2 would run as microcode, which no public software
             provides (bitplane, sws, reverb, rate with the subtractive reset): neurodeploy runs it
             bit-exactly in its simulator and in Lava's CPU simulation only
  host       not on a neurocore: input encoders whose spikes the host injects, a readout summed on
             the host

The network needs microcode when any layer does; otherwise it runs on stock neurons, by the route
its scheme names (`Scheme.loihi2_route`).
"""
from __future__ import annotations

from ..ir.neurons import ChipPath
from ..ir.spiking import SpikingGraph
from ..registry import all_schemes, get_scheme


def loihi2(net: SpikingGraph) -> dict:
    """{"stock_only", "layers": [{"layer", "neuron", "where", "model"}], "statement", "route"}."""
    scheme = get_scheme(net.scheme)
    layers = []
    for layer in net.layers:
        path = scheme.chip_path(layer)
        layers.append({"layer": layer.name, "neuron": type(layer.neuron).__name__, "where": path.where,
                       "model": path.model})
    custom = [r for r in layers if r["where"] == ChipPath.MICROCODE]
    stock = [r for r in layers if r["where"] == ChipPath.STOCK]
    if not custom:
        models = "; ".join(dict.fromkeys(r["model"] for r in stock))
        statement = (f"stock neurons only, public software suffices: every on-chip layer is a stock Loihi 2 neuron "
                     f"model ({models})."
                     + (f" Route: {scheme.loihi2_route}." if scheme.loihi2_route else ""))
    else:
        models = "; ".join(dict.fromkeys(r["model"] for r in custom))
        stock_schemes = [s.name + (f" ({s.stock_condition})" if s.stock_condition else "")
                         for s in all_schemes() if s.loihi2_route]
        hint = scheme.stock_hint or (f"the schemes {', '.join(stock_schemes)} use stock neurons only"
                                     if stock_schemes else "")
        statement = (f"needs custom microcode: {', '.join(r['layer'] for r in custom)} "
                     f"{'runs a custom neuron program' if len(custom) == 1 else 'run custom neuron programs'} "
                     f"({models}), which no public software provides; neurodeploy runs "
                     f"{'it' if len(custom) == 1 else 'them'} bit-exactly in its simulator and in Lava's CPU "
                     "simulation (`neurodeploy simulate --engine lava`, where the scheme has Lava processes) only."
                     + (f" For a stock-only network: {hint}." if hint else ""))
    return {"stock_only": not custom, "layers": layers, "statement": statement,
            "route": (scheme.loihi2_route or None) if not custom else None}
