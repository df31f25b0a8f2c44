"""`cuba`: trained LIF SNNs on Loihi 2's stock CUBA LIF (compile.py: the flow and NetX export,
neurons.py: Lava's LIF arithmetic, kernel.py: the simulator and stock-Lava runs, front.py: the
PyTorch front end of LIF networks)."""
from .compile import SCHEME, Cuba, compile_lif

__all__ = ["SCHEME", "Cuba", "compile_lif"]
