"""NIR front end: a NIR graph (snnTorch, Norse, sinabs, SpikingJelly ... exports) -> FloatGraph.

    reader.py       the file (h5py only) or an in-memory nir.NIRGraph -> RawGraph (plain data)
    shapes.py       every node's shape, filling the gaps exporters leave (scalar neurons, batch axes)
    conventions.py  dt, discretisation, reset, firing rule: the choices NIR leaves open (--nir-*)
    params.py       a neuron's continuous-time fields -> discrete neuron -> Loihi 2 du/dv, rounding reported
    build.py        one handler per node type -> float-graph ops (ops.py: the NIR neuron and readout ops)
    float_sim.py    the float reference of our reading (what `neurodeploy verify` compares with)
    report.py       the compile summary's NIR section

Its neurons are Loihi 2 CUBA LIFs with their decays fixed here, so the `cuba` scheme is the one
that compiles NIR graphs: it lists this module in `Scheme.model_front_ends()`, and the compile
step (`compiler.compile_model`, `neurodeploy.compile`) reaches it through that list with the
interface below (`claims`, `load`, `float_outputs`, `summary_lines`), which is what a scheme's
model front end provides.  The conventions are the cuba scheme's `--nir-*` options
(`schemes/cuba/options.py`; `OPTIONS` names them).
"""
from __future__ import annotations

from pathlib import Path

from .conventions import PRESETS, NirConventions, as_conventions, conventions, from_options
from .reader import RawGraph, read_graph, read_nir

__all__ = ["load_nir", "is_nir_graph", "NirConventions", "conventions", "as_conventions", "from_options",
           "PRESETS", "read_nir", "read_graph", "RawGraph", "claims", "load", "float_outputs", "summary_lines"]

DESCRIPTION = "NIR graph (.nir)"     # what this front end reads, for errors and --help
SUFFIXES = (".nir",)
OPTIONS = ("nir_from", "nir_dt", "nir_reset", "nir_decay", "nir_input_gain", "nir_integrator_gain",
           "nir_current_input", "nir_fire_on")        # the compile options this front end reads


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


# --- the model front end's interface (`schemes.base.Scheme.model_front_ends`) ---------------------
def claims(model) -> bool:
    """True for what this front end reads: a `.nir` path or an in-memory ``nir.NIRGraph``."""
    if isinstance(model, (str, Path)):
        return Path(model).suffix.lower() in SUFFIXES
    return is_nir_graph(model)


def load(model, options) -> tuple:
    """(FloatGraph, meta) of `model` read under the conventions the compile options name
    (`--nir-from` and the `--nir-*` overrides); meta = {"nir": the report the summary prints}."""
    graph, report = load_nir(model, from_options(options))
    return graph, {"nir": report}


def float_outputs(model, net, x, timesteps: int, batch_size: int):
    """The float SNN of the NIR graph `net` was compiled from (a .nir path or a nir.NIRGraph),
    stepped under the conventions it was compiled with (`float_sim`): float64 (N, outputs)."""
    import numpy as np

    from ...errors import NeurodeployError
    from ...sim.core import iter_batches
    from .float_sim import simulate
    if not net.meta.get("nir"):
        raise NeurodeployError("the network was not compiled from a NIR graph", "verify",
                               "pass the model the network was compiled from")
    raw = read_nir(model) if isinstance(model, (str, Path)) else read_graph(model)
    conv = as_conventions(net.meta["nir"]["conventions"])
    return np.concatenate([simulate(raw, conv, xb, timesteps) for _, xb in iter_batches(x, batch_size)])


def summary_lines(net) -> list[str]:
    """The compile summary's NIR section (none for a network not compiled from NIR)."""
    from .report import summary_lines as lines
    return lines(net.meta.get("nir"))
