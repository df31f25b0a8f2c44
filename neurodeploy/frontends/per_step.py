"""Trained SNNs in PyTorch: which scheme's front end reads a model, and the per-step copy they share.

A spiking model (`neurodeploy.nn.lif` convention) maps (T, N, ...) to (T, N, classes) and
applies every stateless layer to each step alike; the compiler needs that per-step network
with each neuron (and, for ReverB, each binary layer) replaced by an opaque leaf module that
calls a custom op the front end's handler turns into a float-graph node.

A scheme with such a front end returns it from `Scheme.front_end()` (`schemes/cuba/front.py`:
LIF networks, `schemes/reverb/front.py`: ReverB networks): a module with `claims(model)`,
`per_step_model(model)` and `load_model(model, example_input)`; importing it registers its custom
ops and their float-graph handlers.  This module asks the registered schemes for them.
"""
from __future__ import annotations

import copy
from typing import Callable

from torch import nn

from ..errors import UnsupportedError


def spiking_front_ends() -> list:
    """The spiking front ends of every registered scheme (imported: their custom ops are registered)."""
    from ..registry import all_schemes
    return [fe for fe in (s.front_end() for s in all_schemes()) if fe is not None]


def spiking_front_end(model: nn.Module):
    """The front end of the scheme whose spiking modules `model` holds (LIF neurons: cuba; ReverB
    neurons and binary layers: reverb), or None for an ANN (which torch.export takes as it is)."""
    claims = [fe for fe in spiking_front_ends() if fe.claims(model)]
    if len(claims) > 1:
        raise UnsupportedError("the model mixes the spiking modules of several schemes' front ends ("
                               + ", ".join(fe.__name__ for fe in claims) + ")", type(model).__name__,
                               "use the neurons of one scheme: neurodeploy.nn.LIF (cuba) or the ReverB modules (reverb)")
    return claims[0] if claims else None


def spiking_per_step(model: nn.Module) -> nn.Module | None:
    """The per-step copy of a trained SNN (each neuron an opaque custom op), or None for an ANN."""
    front_end = spiking_front_end(model)
    return None if front_end is None else front_end.per_step_model(model)


def register_spiking_ops() -> None:
    """Register the spiking custom ops and their front-end handlers (reading a `.pt2` program
    saved from a per-step SNN needs them before torch.export.load)."""
    spiking_front_ends()


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
