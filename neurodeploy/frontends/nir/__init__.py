"""NIR front end: a NIR graph (snnTorch, Norse, sinabs, SpikingJelly ... exports) -> FloatGraph.

    reader.py       the file (h5py only) or an in-memory nir.NIRGraph -> RawGraph (plain data)
    shapes.py       every node's shape, filling the gaps exporters leave (scalar neurons, batch axes)
    conventions.py  dt, discretisation, reset, firing rule: the choices NIR leaves open (--nir-*)
    params.py       a neuron's continuous-time fields -> discrete neuron -> Loihi 2 du/dv, rounding reported
    build.py        one handler per node type -> float-graph ops (ops.py: the NIR neuron and readout ops)
    report.py       the compile summary's NIR section

`load_nir(path_or_graph, conventions)` returns the float graph and the report that
`compiler.compile_model` stores in the network's meta["nir"] (and its summary prints).
"""
from __future__ import annotations

from pathlib import Path

from .conventions import PRESETS, NirConventions, as_conventions, conventions
from .reader import RawGraph, read_graph, read_nir

__all__ = ["load_nir", "is_nir_graph", "NirConventions", "conventions", "as_conventions", "PRESETS", "read_nir", "read_graph", "RawGraph"]


def load_nir(model, conv: NirConventions | None = None):
    """(FloatGraph, report) of a NIR file path or an in-memory ``nir.NIRGraph``.

    `conv`: how the producer stepped the graph (`conventions("snntorch")`, ...); default NIR's
    own reading (`spec`), which needs a time step for leaky neurons."""
    from .build import build_float_graph
    raw = read_nir(model) if isinstance(model, (str, Path)) else read_graph(model)
    return build_float_graph(raw, (conv or conventions()).check())


def is_nir_graph(model) -> bool:
    """An in-memory ``nir.NIRGraph`` (checked without importing nir)."""
    return type(model).__name__ == "NIRGraph" and type(model).__module__.startswith("nir")
