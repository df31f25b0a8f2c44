"""Options of the `reverb` scheme."""
from __future__ import annotations

from dataclasses import dataclass

from ..base import CommonOptions, option
from .neurons import MAX_PAYLOAD_BITS


@dataclass
class ReverbOptions(CommonOptions):
    payload_bits: int = option(16, "bits of a graded spike's payload, 1..24 (default 16, lava-dl's SDNN default: "
                                   "keeps the 24-bit state room for fan-in; Loihi 2 carries up to 24)", type=int,
                               range=(1, MAX_PAYLOAD_BITS), metavar="BITS")
