"""Save a trained model as a torch.export program (`.pt2`) for `neurodeploy compile model.pt2`.

    from neurodeploy.nn.program import export_program
    export_program(model, example_input, "model.pt2")

The model is exported in eval mode (its train/eval flags are restored afterwards), with a
dynamic batch dimension where the model allows one (otherwise for the example's batch size).
A trained SNN (LIF neurons, ReverB modules; time-first) is exported as its per-step network
with each neuron an opaque `neurodeploy::` custom op: pass one step's input (N, ...) as the
example, and compile the file with its scheme (`--scheme cuba` / `--scheme reverb`, with
`--timesteps` and `--calibration`).
"""
from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["export_program"]


def export_program(model: nn.Module, example_input: torch.Tensor, path: str | os.PathLike | None = None,
                   dynamic_batch: bool = True) -> "torch.export.ExportedProgram":
    """torch.export `model` (eval mode) on `example_input`; save it to `path` if given; return it."""
    from ..frontends.per_step import spiking_per_step
    step = spiking_per_step(model)
    model = model if step is None else step
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        ep = None
        if dynamic_batch:
            x = example_input
            if x.shape[0] < 2:      # a batch of 1 would be specialised; any batch >= 2 generalises
                x = x.expand(2, *x.shape[1:]).contiguous()
            try:
                ep = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
            except Exception:       # the model fixes its batch size (e.g. x.view(1, -1)): export as given
                ep = None
        if ep is None:
            ep = torch.export.export(model, (example_input,))
    finally:
        for m, t in modes:
            m.training = t
    if path is not None:
        torch.export.save(ep, os.fspath(path))
    return ep
