"""The simulator's entry points: prepare a `SpikingGraph`, run batches through its scheme's kernel.

    prep = prepare(graph, "cpu"); r = run_batch(prep, x)       # r: sim.core.BatchResult
    outputs, spikes = simulate(graph, x, batch_size=256)
    prepare(graph, engine="planes")       # another of the scheme's kernels (Scheme.engines)

Each scheme's kernel is in its package (`schemes/<name>/kernel.py`), the core they share in
`sim/core.py`; this module only picks the kernel of the graph's scheme (through the registry)
and streams the batches.
"""
from __future__ import annotations

import numpy as np

from ..errors import NeurodeployError
from ..ir.spiking import SpikingGraph
from ..registry import get_scheme
from . import core
from .core import BatchResult, Prepared, PreparedBranch, input_codes, iter_batches

__all__ = ["BatchResult", "Prepared", "PreparedBranch", "input_codes", "iter_batches", "prepare", "run_batch",
           "simulate"]


def prepare(graph: SpikingGraph, device: str = "cpu", engine: str = "neurodeploy") -> Prepared:
    """`core.prepare` for one of the kernels of the graph's scheme (`Scheme.engines`; "neurodeploy" is
    every scheme's default); an engine the scheme does not have is refused, naming the ones it has."""
    check_engine(graph, engine)
    return core.prepare(graph, device, engine)


def check_engine(graph: SpikingGraph, engine: str) -> None:
    scheme = get_scheme(graph.scheme)
    if engine not in scheme.engines:
        raise NeurodeployError(f"the {scheme.name} scheme has no '{engine}' engine", "--engine",
                               f"use {' or '.join(scheme.engines)}")


def run_batch(prep: Prepared, x: np.ndarray, record_codes: bool = True) -> BatchResult:
    """Run one batch through the kernel of the graph's scheme; codes are the decoded value of each
    layer's spikes (bit planes -> code, rate -> spike count, ...).  Its synapse calls are exact integer
    sums, so they may use the CPU's fastest convolutions (`core.exact_sum_kernels`)."""
    with core.exact_sum_kernels():
        return get_scheme(prep.graph.scheme).run_batch(prep, x, record_codes)


def simulate(graph: SpikingGraph, x: np.ndarray, batch_size: int = 256, device: str = "cpu",
             progress: bool = False, engine: str = "neurodeploy", workers: int = 1,
             ray_address: str | None = None) -> tuple[np.ndarray, dict]:
    """Outputs (N, outputs) float32 and total spikes per layer, streaming in batches; workers > 1
    runs the batches as Ray tasks (`neurodeploy.workers`: the same bytes)."""
    from ..workers import check_workers, map_batches
    check_workers(workers, ray_address, device)
    check_engine(graph, engine)             # refused here, before any Ray start
    results = map_batches(_prepare_for_batches, _simulate_batch, (graph, device, engine), x, batch_size,
                          workers=workers, ray_address=ray_address, progress=progress, desc="simulate")
    totals: dict = {}
    for _, spikes in results:
        for k, v in spikes.items():
            totals[k] = totals.get(k, 0) + v
    return np.concatenate([out for out, _ in results], axis=0), totals


def _prepare_for_batches(context: tuple) -> Prepared:
    graph, device, engine = context
    return prepare(graph, device, engine)


def _simulate_batch(prep: Prepared, xb: np.ndarray) -> tuple[np.ndarray, dict]:
    """One batch's outputs and spikes per layer."""
    r = run_batch(prep, xb, record_codes=False)
    return r.output.cpu().numpy(), dict(r.spikes)
