"""Options of the `bitplane` scheme."""
from __future__ import annotations

from dataclasses import dataclass

from ..base import CommonOptions, option


@dataclass
class BitplaneOptions(CommonOptions):
    lossy: bool = option(False, "allow --timesteps below what exactness needs (layers emit only their top bits, "
                                "rounded); verify then reports the mismatches and exits 1")
