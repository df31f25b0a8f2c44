"""Export trained (QCFS) PyTorch models to ONNX for the neurodeploy frontends.

Uses the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``):
it needs no extra package, writes byte-identical files for the same model, and
turns a :class:`~neurodeploy.nn.qcfs.QCFS` into the plain chain
``Div, Mul, Add, Floor, Div, Clip, Mul`` (scalar ``Constant`` nodes for
``Q``, ``0.5``, ``0``, ``1``; ``lam`` a 0-d initializer).  The dynamo exporter
needs ``onnxscript``, folds BatchNormalization by itself when optimising and
emits ``Cast``/``CastLike``/``Max``/``Min`` for QCFS when not.
"""

from __future__ import annotations

import copy
import inspect
import os
import warnings

import numpy as np
import onnx
import torch
from torch import nn

from ..ir import float_graph as fg

__all__ = ["export_onnx", "fold_batchnorm", "verify_onnx"]

DEFAULT_OPSET = 17

_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def _fold_pair(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold eval-mode ``bn`` (applied right after ``layer``) into ``layer`` in place."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    w = layer.weight
    out_ch = w.shape[0]
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and layer.transposed:
        raise ValueError("transposed convolutions are not folded")
    if bn.running_var.numel() != out_ch:
        raise ValueError(f"BatchNorm has {bn.running_var.numel()} features but the layer {out_ch} outputs")
    bias = layer.bias.double() if layer.bias is not None else torch.zeros(out_ch, dtype=torch.float64)
    ones, zeros = np.ones(out_ch), np.zeros(out_ch)
    stats = fg.BatchNorm(gamma=bn.weight.double().cpu().numpy() if bn.affine else ones,
                         beta=bn.bias.double().cpu().numpy() if bn.affine else zeros,
                         mean=bn.running_mean.double().cpu().numpy(), var=bn.running_var.double().cpu().numpy(),
                         eps=bn.eps)
    s, c = stats.scale_shift(bias.cpu().numpy())          # the float graph's BN folding formula
    scale = torch.from_numpy(s).to(w.device)
    new_w = w.double() * scale.reshape(-1, *([1] * (w.dim() - 1)))
    new_b = torch.from_numpy(c).to(w.device)
    layer.weight.copy_(new_w.to(w.dtype))
    if layer.bias is None:
        layer.bias = nn.Parameter(new_b.to(w.dtype).to(w.device))
    else:
        layer.bias.copy_(new_b.to(w.dtype))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode deep copy of ``model`` with BatchNorm folded away.

    Folds every BatchNorm that directly follows a Conv/Linear inside an
    ``nn.Sequential`` (the BN becomes ``nn.Identity``).  BatchNorms used from a
    custom ``forward`` are left in place; :func:`export_onnx` lets the exporter
    fuse those when they follow a Conv.
    """
    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            layer, bn = seq._modules[a], seq._modules[b]
            if isinstance(layer, _FOLDABLE) and isinstance(bn, _BN):
                _fold_pair(layer, bn)
                seq._modules[b] = nn.Identity()
    return model


def _inline_identity_initializers(m: onnx.ModelProto) -> None:
    """Undo the exporter's deduplication of equal-valued initializers.

    The TorchScript exporter stores equal initializers once and recreates the
    others with ``Identity`` nodes; give each its own initializer instead.
    """
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    keep = []
    for node in g.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            t = copy.deepcopy(inits[node.input[0]])
            t.name = node.output[0]
            g.initializer.append(t)
        else:
            keep.append(node)
    if len(keep) != len(g.node):
        del g.node[:]
        g.node.extend(keep)


def _name_fused_initializers(m: onnx.ModelProto) -> None:
    """Rename the exporter's ``onnx::Conv_123`` weights of fused Conv+BN after
    the Conv's module scope (node ``/4/conv1/Conv`` -> ``4.conv1.weight`` / ``.bias``)."""
    g = m.graph
    taken = {t.name for t in g.initializer} | {v.name for v in g.input} | {n for nd in g.node for n in nd.output}
    rename = {}
    for node in g.node:
        scope = node.name.strip("/").split("/")[:-1]
        if node.op_type not in ("Conv", "Gemm") or not scope:
            continue
        for old, suffix in zip(node.input[1:3], ("weight", "bias")):
            new = ".".join(scope) + "." + suffix
            if old.startswith("onnx::") and old not in rename and new not in taken:
                rename[old] = new
                taken.add(new)
    for t in g.initializer:
        t.name = rename.get(t.name, t.name)
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]


def export_onnx(model: nn.Module, example_input: torch.Tensor, path: str | os.PathLike,
                fold_bn: bool = False, *, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Export ``model`` (in eval mode) to ONNX at ``path`` and return the saved proto.

    One input ``"input"`` and one output ``"output"``, both with a dynamic batch
    dimension ``"batch"``; weights are stored inside the file.

    ``fold_bn=False`` keeps every BatchNorm as a ``BatchNormalization`` node
    (``training_mode=0``).  ``fold_bn=True`` folds them into the preceding
    Conv/Gemm weights and raises ``ValueError`` if any BatchNormalization is left
    (e.g. one that does not follow a Conv/Linear).

    ``model`` itself is not modified (a deep copy is exported).
    """
    if opset < 13:
        raise ValueError("opset must be >= 13")
    m = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    kwargs = dict(
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        opset_version=opset, do_constant_folding=True, export_params=True,
        # EVAL lets the exporter fuse Conv+BN; PRESERVE (model is in eval mode)
        # exports BatchNormalization(training_mode=0) nodes unchanged.
        training=torch.onnx.TrainingMode.EVAL if fold_bn else torch.onnx.TrainingMode.PRESERVE,
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    path = os.fspath(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*constant folding be turned off.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\..*")
        torch.onnx.export(m, (example_input,), path, **kwargs)
    proto = onnx.load(path)
    _inline_identity_initializers(proto)
    _name_fused_initializers(proto)
    if fold_bn:
        left = [n.name for n in proto.graph.node if n.op_type == "BatchNormalization"]
        if left:
            os.remove(path)
            raise ValueError(f"fold_bn=True but BatchNormalization nodes remain: {left}")
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    return proto


def verify_onnx(path: str | os.PathLike, model: nn.Module, x: torch.Tensor) -> float:
    """Max abs difference between onnxruntime on ``path`` and eval-mode ``model`` on ``x``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    got = sess.run(["output"], {"input": x.detach().cpu().numpy()})[0]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ref = model(x).detach().cpu().numpy()
    model.train(was_training)
    return float(np.max(np.abs(got - ref))) if ref.size else 0.0
