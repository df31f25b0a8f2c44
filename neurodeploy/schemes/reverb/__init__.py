"""`reverb`: ReverB-SNNs, binary synapses and graded spikes (compile.py: the flow, fold.py: BN and α
folded off the synapses, float_model.py: the float SNN's ops, neurons.py: the integer neurons,
kernel.py: the simulator, lava/: its Lava processes, front.py: the PyTorch front end)."""
from .compile import SCHEME, Reverb

__all__ = ["SCHEME", "Reverb"]
