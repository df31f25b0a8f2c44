"""`sdnn`: sigma-delta neurons with graded spikes (compile.py: the flow, neurons.py: Lava's
SigmaDelta / Sigma arithmetic, kernel.py: the simulator, export.py: NetX HDF5)."""
from .compile import SCHEME, Sdnn, exact_layers

__all__ = ["SCHEME", "Sdnn", "exact_layers"]
