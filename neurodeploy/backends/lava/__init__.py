"""Lava backend: run a compiled `bitplane` network in Lava's bit-accurate CPU simulation.

    from neurodeploy.backends.lava import build, run_lava
    res = run_lava("out_dir_or_SpikingGraph", x)       # LavaResult: outputs, readout_state, planes
    net = build(graph, x); net.run(); state, planes = net.collect(); net.stop()

Lava (lava-nc 0.10.0) is optional and imported lazily: importing this package never
imports Lava; `ensure_lava()` installs the Python 3.11 compatibility hook (`compat.py`) and
raises `NeurodeployError` with an install hint when Lava is missing.  Mapping and
schedule: `mapping.py`; Lava processes and models: `processes.py`; graph building and
running: `network.py`.

Other schemes, one module each (import it explicitly; it imports Lava):
`rate_lava.run_lava` (rate / IF neurons) and `sws_lava.run_lava` (TSA neurons with ternary
graded spikes: per-layer codes, digits and the readout's V, bit-exact with `sim.sws`).
"""
from __future__ import annotations

from neurodeploy.backends.lava.compat import ensure_lava

__all__ = ["ensure_lava", "build", "run_lava", "plan_network", "LavaResult", "LavaNetwork"]


def build(compiled_dir_or_graph, x, fold: bool = True, record_planes: bool = True):
    """Connected Lava processes for a compiled network with the samples `x` queued (see network.build)."""
    from neurodeploy.schemes.bitplane.lava import build as _build
    return _build(compiled_dir_or_graph, x, fold=fold, record_planes=record_planes)


def run_lava(graph, x, fold: bool = True, record_planes: bool = True):
    """Run `x` (N, *input shape) through Lava; returns a `LavaResult` (see network.run_lava)."""
    from neurodeploy.schemes.bitplane.lava import run_lava as _run
    return _run(graph, x, fold=fold, record_planes=record_planes)


def plan_network(graph, fold: bool = True):
    """Synapse stages and time schedule, without Lava (see mapping.plan_network)."""
    from neurodeploy.backends.lava.mapping import load_graph, plan_network as _plan
    return _plan(load_graph(graph), fold=fold)


def __getattr__(name):
    if name in ("LavaResult", "LavaNetwork"):
        from neurodeploy.schemes.bitplane import lava as network
        return getattr(network, name)
    raise AttributeError(name)
