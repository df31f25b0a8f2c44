"""QCFS activation (quantization-clip-floor-shift), Bu et al., ICLR 2022.

The forward pass follows the authors' code (putshua/SNN_conversion_QCFS,
``modules.py``, class ``MyFloor``) op for op::

    x = x / lam
    x = floor(x * Q + 0.5) / Q        # straight-through gradient for floor
    x = clamp(x, 0, 1)
    x = x * lam

that is ``y = lam * clamp(floor(x * Q / lam + 1/2) / Q, 0, 1)``, evaluated in
exactly this float32 order (``x / lam`` first, then ``* Q``; another
association can round differently next to a level boundary).

With step ``Delta = lam / Q`` the output is ``y = k * Delta`` with the integer
code ``k = clip(floor(x / Delta + 1/2), 0, Q)`` in ``{0, ..., Q}``: a ReLU
rounded to the nearest of ``Q + 1`` levels (ties round up) and saturating at
``lam``.  In a converted SNN, ``lam`` becomes the firing threshold and the
``+1/2`` the half-threshold initial membrane potential; for a constant input
``k`` is the number of spikes an IF neuron emits in ``Q`` time steps.

Gradients: floor is straight-through, so ``dy/dx = 1`` for ``0 < k < Q`` and
0 at ``k = 0`` or ``k = Q`` (``torch.clamp`` blocks it there, as in the
authors' code); ``lam`` gets gradient through both the ``/ lam`` and ``* lam``.

Exported to ONNX (see :func:`neurodeploy.nn.export.export_onnx`) a QCFS module
becomes exactly the elementwise chain ``Div, Mul, Add, Floor, Div, Clip, Mul``;
``lam`` is a scalar initializer and ``Q``, ``0.5``, ``0``, ``1`` are scalar
constants.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn

__all__ = ["QCFS", "relu_to_qcfs"]


class _FloorSTE(torch.autograd.Function):
    """``floor`` whose backward is the identity (straight-through estimator).

    The ONNX exporter inlines the forward, so only a ``Floor`` node is emitted.
    """

    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


class QCFS(nn.Module):
    """Quantization-clip-floor-shift activation.

    ``y = lam * clamp(floor(x * levels / lam + 0.5) / levels, 0, 1)``

    Args:
        levels: number of quantisation steps ``Q`` (output has ``Q + 1`` levels).
        init_lambda: initial value of the trainable upper bound ``lam``.
        trainable: whether ``lam`` receives gradients.

    Attributes:
        levels (int): ``Q``.
        lam (nn.Parameter): scalar (0-d) clipping bound / SNN threshold.
    """

    def __init__(self, levels: int, init_lambda: float = 8.0, trainable: bool = True):
        super().__init__()
        if int(levels) != levels or levels < 1:
            raise ValueError(f"levels must be a positive integer, got {levels!r}")
        self.levels = int(levels)
        self.lam = nn.Parameter(torch.tensor(float(init_lambda)), requires_grad=trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.levels
        x = x / self.lam
        x = _FloorSTE.apply(x * q + 0.5) / q
        x = torch.clamp(x, 0, 1)
        return x * self.lam

    def extra_repr(self) -> str:
        return f"levels={self.levels}, lam={float(self.lam.detach()):.6g}"


def _batches(data) -> Iterable[torch.Tensor]:
    if isinstance(data, torch.Tensor):
        yield data
        return
    for batch in data:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def _bound(m: nn.Module) -> float | None:
    """The upper bound of a bounded ReLU module (ReLU6: 6; Hardtanh(0, c): c); None for ReLU."""
    if isinstance(m, nn.ReLU6):
        return 6.0
    if isinstance(m, nn.Hardtanh):
        return float(m.max_val)
    return None


def _replaceable(m: nn.Module) -> bool:
    return isinstance(m, (nn.ReLU, nn.ReLU6)) or (isinstance(m, nn.Hardtanh) and float(m.min_val) == 0.0
                                                  and float(m.max_val) > 0.0)


_FUNCTIONAL_RELUS = {"relu", "relu_", "relu6", "relu6_", "hardtanh", "hardtanh_", "clamp", "clamp_", "clamp_min",
                     "clamp_min_", "clip", "clip_"}


def _functional_relus(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Where `model` calls a ReLU-like function outside a replaceable module (F.relu, torch.relu,
    x.relu(), F.relu6, torch.clamp(x, 0, ...)): "module path (class) at file.py:line" each."""
    import re
    import warnings
    from pathlib import Path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = torch.export.export(model, (example,))
    except Exception as exc:  # a model torch.export cannot trace: the check is not possible
        warnings.warn(f"relu_to_qcfs could not check for functional ReLUs (torch.export: {type(exc).__name__}); "
                      "only nn.ReLU / nn.ReLU6 / nn.Hardtanh(0, c) modules are replaced", stacklevel=3)
        return []
    mods = dict(model.named_modules(remove_duplicate=False))
    found = []
    for n in ep.graph.nodes:
        name = getattr(getattr(n.target, "overloadpacket", None), "__name__", "")
        if n.op != "call_function" or name not in _FUNCTIONAL_RELUS:
            continue
        if name.startswith(("clamp", "clip")):
            lo = n.args[1] if len(n.args) > 1 else n.kwargs.get("min")
            if lo != 0:
                continue
        stack = list((n.meta.get("nn_module_stack") or {}).values())
        path = stack[-1][0] if stack else ""
        if path in mods and _replaceable(mods[path]) or "QCFS" in str(stack[-1][1] if stack else ""):
            continue
        frames = re.findall(r'File "([^"]+)", line (\d+)', n.meta.get("stack_trace") or "")
        user = [f"{Path(f).name}:{line}" for f, line in frames if "/torch/" not in f]
        cls = type(mods[path]).__name__ if path in mods else type(model).__name__
        found.append(f"module '{path or '(top level)'}' ({cls}) at {user[-1] if user else '?'}: {name}")
    return found


@torch.no_grad()
def relu_to_qcfs(model: nn.Module, levels: int, calib_loader_or_tensor,
                 percentile: float = 99.9) -> nn.Module:
    """Replace every ReLU module of ``model`` (in place) by a :class:`QCFS`.

    Replaced: ``nn.ReLU``, and the bounded ReLUs ``nn.ReLU6`` and ``nn.Hardtanh(0, c)``, whose
    QCFS saturates at ``lam <= 6`` (or ``c``).  Each QCFS gets ``lam`` = the ``percentile``-th
    percentile of the inputs its ReLU saw on the calibration data (a tensor, or an iterable of
    tensors or ``(x, ...)`` tuples), measured with forward pre-hooks in eval mode (equivalently:
    of its outputs, where that is positive; ``lam`` is kept >= 1e-6), capped at the bound of a
    bounded ReLU.  A ReLU module called several times shares one QCFS.  Returns ``model``.

    Raises ``ValueError`` where the result would not be the QCFS network the caller expects: a
    ReLU written as a function (``F.relu``, ``torch.relu``, ``x.relu()``, ``F.relu6``,
    ``torch.clamp(x, 0)``; found by tracing the model with ``torch.export``), which no module
    swap can replace -- use ``nn.ReLU`` modules -- or a model without any ReLU module.
    """
    if isinstance(model, (nn.ReLU, nn.ReLU6, nn.Hardtanh)):
        raise ValueError("model is itself a ReLU; wrap it in a container")
    relus = [(name, m) for name, m in model.named_modules() if _replaceable(m)]  # unique
    first = next(iter(_batches(calib_loader_or_tensor)), None)
    if first is None:
        raise ValueError("no calibration data")
    was_training = model.training
    model.eval()
    try:
        functional = _functional_relus(model, first[:2])
    finally:
        model.train(was_training)
    if functional:
        raise ValueError(f"relu_to_qcfs cannot replace {len(functional)} functional ReLU call(s), e.g. "
                         f"{functional[0]}; write them as nn.ReLU (or nn.ReLU6) modules")
    if not relus:
        raise ValueError("the model has no nn.ReLU, nn.ReLU6 or nn.Hardtanh(0, c) module to replace")
    seen: dict[int, list[np.ndarray]] = {id(m): [] for _, m in relus}
    # pre-hooks with a copy, so that ReLU(inplace=True) cannot overwrite what we record
    hooks = [m.register_forward_pre_hook(lambda mod, inp: seen[id(mod)].append(
        inp[0].detach().float().cpu().numpy().ravel().copy())) for _, m in relus]
    device = next(model.parameters(), torch.empty(0)).device
    model.eval()
    try:
        for x in _batches(calib_loader_or_tensor):
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    replaced: dict[int, QCFS] = {}
    for name, m in list(model.named_modules(remove_duplicate=False)):
        if not _replaceable(m):
            continue
        if id(m) not in replaced:
            if not seen[id(m)]:
                raise RuntimeError(f"ReLU {name!r} was not called on the calibration data")
            lam = float(np.percentile(np.concatenate(seen[id(m)]), percentile))
            bound = _bound(m)
            if bound is not None:
                lam = min(lam, bound)
            replaced[id(m)] = QCFS(levels, init_lambda=max(lam, 1e-6)).to(device)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attr, replaced[id(m)])
    return model
