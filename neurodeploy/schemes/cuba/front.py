"""PyTorch front end for LIF networks (`neurodeploy.nn.LIF`, time-first models) -> `FloatGraph`.

A spiking model maps (T, N, ...) to (T, N, classes) and applies every stateless layer to
each step alike; what the compiler needs is that per-step network with every LIF as one
opaque activation.  `load_lif_model` builds it (a `SpikingSequential` becomes an
`nn.Sequential`; any other model keeps its structure) with each `LIF` replaced by a leaf
module that calls the custom op ``neurodeploy::lif`` (identity-shaped, never executed for
real values), exports it with `frontends.torch.export_module` on an (N, ...) example input,
and converts it with `frontends.torch.graph_from_program`.  The ``lif`` handler registered
below (through the front end's own `handler` registry, no edit of frontends/torch)
turns each call into a `LIFAct` node.

`LIFAct` subclasses `float_graph.QuantAct` with in_scale = 1/v_th, offset 0, levels 1,
out_step 1: `lowering.lower` then cuts the graph at every LIF exactly as at a quantised
activation, and the weights of the layer it feeds come out in units of that LIF's threshold
(spikes are 0/1).  The LIF's own parameters (decay, v_th, reset, strict) ride along.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...ir import float_graph as fg
from ...frontends import torch as tf
from ...frontends.per_step import per_step_copy

_RESETS = ("subtract", "zero")


@torch.library.custom_op("neurodeploy::lif", mutates_args=())
def _lif_op(x: torch.Tensor, decay: float, v_th: float, reset: int, strict: bool) -> torch.Tensor:
    """Stand-in for one LIF layer during export (the value is never used)."""
    return (x > v_th).to(x.dtype) if strict else (x >= v_th).to(x.dtype)


@_lif_op.register_fake
def _(x, decay, v_th, reset, strict):
    return torch.empty_like(x)


class LIFLeaf(nn.Module):
    """A LIF as an opaque per-step op (for tracing only)."""

    def __init__(self, lif):
        super().__init__()
        self.decay, self.v_th = float(lif.decay), float(lif.v_th)
        self.reset = _RESETS.index(lif.reset_mode)
        self.strict = bool(lif.strict)

    def forward(self, x):
        return torch.ops.neurodeploy.lif(x, self.decay, self.v_th, self.reset, self.strict)


@dataclass
class LIFAct(fg.QuantAct):
    """A LIF layer in the float graph: spikes s = [v > v_th] (strict) of v = decay*v + I.

    As a QuantAct (code = clip(floor(I / v_th), 0, 1), out_step 1) it is the cut point of
    `lowering.lower`; the compile schemes read decay / v_th / reset / strict.
    """
    decay: float = 0.0
    v_th: float = 1.0
    reset: str = "zero"
    strict: bool = True

    def cuba_decays(self, name: str) -> tuple[int, int, int, list]:
        """(du, dv, steps u accumulates, notes) of Loihi's CUBA LIF: no current state (du = 4095,
        u = a_in << 6 every step), dv from the decay (`neurons.dv_for`)."""
        from .neurons import DECAY_UNITY, dv_for
        dv, notes = dv_for(self.decay, name)
        return DECAY_UNITY - 1, dv, 1, notes


@tf.handler("lif")
def _lif_handler(node, ctx, a):
    x = ctx.tensor(ctx.resolve(a["x"]))
    v_th, decay = float(a["v_th"]), float(a["decay"])
    if not v_th > 0:
        raise ctx.unsupported(f"LIF threshold {v_th} is not positive")
    op = LIFAct(in_scale=np.asarray(1.0 / v_th), offset=np.asarray(0.0), levels=1, out_step=np.asarray(1.0),
                decay=decay, v_th=v_th, reset=_RESETS[int(a["reset"])], strict=bool(a["strict"]))
    return ctx.add(op, [x])


def claims(model) -> bool:
    """True when `model` holds a LIF neuron (`neurodeploy.nn.LIF`): a network for this front end."""
    from ...nn.lif import LIF
    return isinstance(model, nn.Module) and any(isinstance(m, LIF) for m in model.modules())


def per_step_model(model: nn.Module) -> nn.Module:
    """A copy of `model` that runs one time step on (N, ...) tensors, each LIF an opaque leaf."""
    from ...nn.lif import LIF
    return per_step_copy(model, lambda m: LIFLeaf(m) if isinstance(m, LIF) else None, "use neurodeploy.nn.LIF")


def load_lif_model(model: nn.Module, example_input, source: str = "") -> fg.FloatGraph:
    """A LIF network (time-first, `neurodeploy.nn.lif`) -> FloatGraph with `LIFAct` nodes.

    `example_input`: one step's input (N, C, H, W) or (N, F) (not the (T, N, ...) sequence).
    """
    source = source or f"{type(model).__name__} (LIF network)"
    x = torch.as_tensor(np.asarray(example_input, dtype=np.float32)) if not isinstance(example_input, torch.Tensor) \
        else example_input.detach().cpu().float()
    step = per_step_model(model)
    return tf.graph_from_program(tf.export_module(step, x, source), source)


def lif_params(graph: fg.FloatGraph) -> dict:
    """LIF node name -> its LIFAct."""
    return {n: graph.op(n) for n in graph.topo_order() if isinstance(graph.op(n), LIFAct)}


load_model = load_lif_model      # the name frontends.per_step's callers use
