"""`bitplane`: error-free conversion of a QCFS-trained ANN (compile.py: the flow, kernel.py: the
simulator's neurons, lava.py: its Lava processes)."""
from .compile import SCHEME, Bitplane, steps_for_levels, truncate_timesteps

__all__ = ["SCHEME", "Bitplane", "steps_for_levels", "truncate_timesteps"]
