"""Options of the `rate` scheme."""
from __future__ import annotations

from dataclasses import dataclass

from ..base import CommonOptions, option, percentile_option


@dataclass
class RateOptions(CommonOptions):
    reset: str = option("subtract", "reset by subtracting the threshold (keeps the residue; a custom neuron on "
                                    "Loihi 2) or to zero (Loihi's stock LIF; loses the residue)",
                        type=str, choices=("subtract", "zero"))
    percentile: float = percentile_option()
