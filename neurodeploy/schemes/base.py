"""The interface every coding scheme implements."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import float_graph as fg
from ..ir.spiking import SpikingGraph
from ..target import Target


@dataclass
class CompileOptions:
    calibration: np.ndarray | None = None   # samples shaped like the input (N, ...)
    timesteps: int | None = None            # scheme-specific; None = the scheme's exact choice
    input_bits: int = 8                     # width of the input quantiser when the model has none
    lossy: bool = False                     # allow fewer time steps than exactness needs
    reset: str = "subtract"                 # rate: "subtract" (soft) or "zero" (Loihi's stock LIF)
    percentile: float = 99.9                # rate: threshold balancing percentile of ReLU inputs
    coding_steps: int | None = None         # sws: Tc digits per value (None = --timesteps or 8)
    silent_steps: int | None = None         # sws: Ts silent steps per TSA layer (None = 2)
    beta: int = 2                           # sws: amplification factor β (2: a shift; 3: shift + add)
    full_threshold: bool = False            # sws ablation only: firing threshold θ instead of θ/2
    state_bound: str | None = None          # sws: how D is sized against the state width: "static" (worst
                                            # case, never overflows), "calibrated" (largest membrane over the
                                            # calibration samples x state_margin; out-of-distribution inputs
                                            # can overflow), None = calibrated when calibration samples are
                                            # given, else static
    state_margin: float = 4.0               # sws calibrated: headroom factor over the calibration peak
    chips: int = 1                          # chips available: compile fails when more cores are needed
    payload_bits: int = 16                  # reverb: width of a graded spike's payload (1..24 on Loihi 2);
                                            # 16 = lava-dl's SDNN default, keeps v (24 bits) room for fan-in
    nir: object | None = None               # NIR front end: how the graph's producer stepped it (a preset
                                            # name, a dict of fields or frontends.nir.NirConventions; None =
                                            # NIR's own reading, which needs dt): --nir-from, --nir-dt, ...


class Scheme:
    """A scheme turns a float graph into a spiking graph for a target."""

    name: str = ""
    passes: list[str] = []          # float-graph passes, in order (neurodeploy/passes)
    guarantee: str = ""             # what `verify` checks, in words
    exact: bool = True              # does the scheme promise equality with the quantised ANN?

    def compile(self, graph: fg.FloatGraph, target: Target, options: CompileOptions) -> SpikingGraph:
        raise NotImplementedError

    def guarantee_holds(self, graph: SpikingGraph, layer_mismatches: dict[str, int]) -> bool:
        raise NotImplementedError
