"""`rate`: integrate-and-fire rate coding (compile.py: the flow, kernel.py: the simulator's neurons,
lava.py: its Lava processes, export.py: NIR)."""
from .compile import SCHEME, Rate

__all__ = ["SCHEME", "Rate"]
