"""Options of the `cuba` scheme: the common ones (--timesteps is the T the LIF network was trained with)."""
from __future__ import annotations

from dataclasses import dataclass

from ..base import CommonOptions


@dataclass
class CubaOptions(CommonOptions):
    pass
