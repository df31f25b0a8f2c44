"""Lava back end: run a compiled network in Intel Lava's bit-accurate CPU simulation.

    from neurodeploy.backends.lava import build, run_lava
    res = run_lava("out_dir_or_SpikingGraph", x)       # the scheme's result (bitplane: outputs, planes)
    net = build(graph, x); net.run(); state, planes = net.collect(); net.stop()

Lava (lava-nc 0.10.0) is optional and imported lazily: importing this package never imports
Lava; `ensure_lava()` installs the Python 3.11 compatibility hook (`compat.py`) and raises
`NeurodeployError` with an install hint when Lava is missing.  What every scheme shares lives
here: synapse mapping and plan structures (`mapping.py`), shared processes and process-model
base (`processes.py`), running and reading back (`network.py`).  Each scheme's own neurons and
schedule are in its package (`schemes/<name>/lava/`, reached through `Scheme.lava()`); `build`,
`run_lava` and `plan_network` below pick the network's scheme.
"""
from __future__ import annotations

from neurodeploy.backends.lava.compat import ensure_lava

__all__ = ["ensure_lava", "build", "run_lava", "plan_network", "LavaNetwork"]


def _backend(graph_or_dir):
    """(the SpikingGraph, its scheme's Lava package)."""
    from neurodeploy.backends.lava.mapping import load_graph
    from neurodeploy.registry import get_scheme
    graph = load_graph(graph_or_dir)
    return graph, get_scheme(graph.scheme).lava()


def build(compiled_dir_or_graph, x, **kwargs):
    """Connected Lava processes for a compiled network with the samples `x` queued (its scheme's `build`)."""
    graph, lava = _backend(compiled_dir_or_graph)
    return lava.build(graph, x, **kwargs)


def run_lava(graph, x, **kwargs):
    """Run `x` (N, *input shape) through Lava; returns the scheme's result (its `run_lava`)."""
    graph, lava = _backend(graph)
    return lava.run_lava(graph, x, **kwargs)


def plan_network(graph, fold: bool = True):
    """Synapse stages and time schedule, without Lava (the scheme's `plan_network`: bitplane)."""
    graph, lava = _backend(graph)
    return lava.plan_network(graph, fold=fold)


def __getattr__(name):
    if name == "LavaNetwork":
        from neurodeploy.backends.lava.network import LavaNetwork
        return LavaNetwork
    raise AttributeError(name)
