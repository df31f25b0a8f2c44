"""Options of the `sws` scheme (compile.py's docstring explains each in full)."""
from __future__ import annotations

from dataclasses import dataclass

from ..base import CommonOptions, option, percentile_option
from .neurons import MAX_CODING_STEPS, MAX_SILENT_STEPS


@dataclass
class SwsOptions(CommonOptions):
    percentile: float = percentile_option()
    coding_steps: int | None = option(None, "coding steps Tc (ternary digits per value, activations get 2^Tc-1 "
                                            "levels; default --timesteps or 8)", type=int, range=(1, MAX_CODING_STEPS),
                                     metavar="TC")
    silent_steps: int | None = option(None, "silent steps Ts of every TSA layer (default 2; latency Tc + "
                                            "Ts*layers)", type=int, range=(0, MAX_SILENT_STEPS), metavar="TS")
    beta: int = option(2, "amplification factor of the TSA neurons (2 = a shift, default; 3 = shift + add)",
                       type=int, choices=(2, 3))
    full_threshold: bool = option(False, "fire at the threshold θ instead of θ/2 (only for the paper's ablation)")
    state_bound: str | None = option(None, "size the threshold unit D against the target's state width from the "
                                           "worst case (static: no input can overflow, coarse D) or from the "
                                           "membrane peak over the --calibration samples (an evenly spaced "
                                           "sample of them on large networks) times --state-margin "
                                           "(calibrated: finer D, closer to the quantised model; inputs far "
                                           "outside the calibration data can overflow, which the simulator "
                                           "counts). Default: calibrated when --calibration is given, else static",
                                     type=str, choices=("static", "calibrated"))
    state_margin: float = option(4.0, "calibrated state bound: headroom factor over the calibration peak "
                                      "(default 4)", type=float, range=(1, None), metavar="FACTOR")
