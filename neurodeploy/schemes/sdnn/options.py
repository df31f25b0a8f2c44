"""Options of the `sdnn` scheme."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import NeurodeployError
from ..base import CommonOptions, percentile_option


@dataclass
class SdnnOptions(CommonOptions):
    percentile: float = percentile_option()

    def __post_init__(self):
        if self.timesteps is not None:
            raise NeurodeployError("the sdnn scheme has no --timesteps: a network settles after its depth + 1 "
                                   "steps", "--timesteps", "omit --timesteps")
