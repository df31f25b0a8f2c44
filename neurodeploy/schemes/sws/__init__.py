"""`sws`: stepwise weighted spikes with TSA neurons (compile.py: the flow, neurons.py: the TSA
neuron, kernel.py: the simulator's neurons and schedule, lava/: its Lava processes)."""
from .compile import SCHEME, Sws

__all__ = ["SCHEME", "Sws"]
