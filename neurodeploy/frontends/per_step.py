"""The per-step copy of a time-first spiking model, shared by the LIF and ReverB front ends.

A spiking model (`neurodeploy.nn.lif` convention) maps (T, N, ...) to (T, N, classes) and
applies every stateless layer to each step alike; the compiler needs that per-step network
with each neuron (and, for ReverB, each binary layer) replaced by an opaque leaf module that
calls a custom op the front end's handler turns into a float-graph node.
"""
from __future__ import annotations

import copy
from typing import Callable

from torch import nn

from ..errors import UnsupportedError


def per_step_copy(model: nn.Module, leaf_for: Callable[[nn.Module], nn.Module | None], neuron_hint: str) -> nn.Module:
    """A float32 CPU eval-mode copy of `model` that runs one step on (N, ...) tensors.

    leaf_for(module) returns the leaf that replaces `module`, or None to keep (and recurse
    into) it; a `SpikingSequential` becomes an `nn.Sequential`; any other spiking neuron is
    refused, naming the module, with `neuron_hint` as what to do.
    """
    from ..nn.lif import SpikingNeuron, SpikingSequential

    m = copy.deepcopy(model).cpu().float().eval()

    def swap(parent):
        for name, child in parent.named_children():
            leaf = leaf_for(child)
            if leaf is not None:
                setattr(parent, name, leaf)
            elif isinstance(child, SpikingNeuron):
                raise UnsupportedError(f"spiking neuron {type(child).__name__} is not supported here",
                                       f"module '{name}'", neuron_hint)
            elif isinstance(child, SpikingSequential):
                seq = nn.Sequential(*child.children())
                swap(seq)
                setattr(parent, name, seq)
            else:
                swap(child)

    if isinstance(m, SpikingSequential):
        m = nn.Sequential(*m.children())
    swap(m)
    return m
