"""Fine-tune a trained ReLU network into a QCFS network that `bitplane` converts exactly.

The recipe (Bu et al., ICLR 2022; Datta et al.'s error-free conversion starts from such a
model): take a trained ReLU network, replace every `nn.ReLU` by a `QCFS` with Q levels whose
threshold λ is a high percentile of the activations it sees on calibration data
(`neurodeploy.nn.relu_to_qcfs`), then train the whole network (weights, BatchNorm and λ) for
a few epochs with a small learning rate and a cosine schedule.  The swap alone costs accuracy
(more for small Q); fine-tuning recovers it -- the papers report full accuracy back after
about 30 epochs on CIFAR/ImageNet, a few epochs suffice on small data sets.

    from neurodeploy.train.finetune import finetune_qcfs
    model = finetune_qcfs(relu_model, (x_train, y_train), epochs=10, lr=1e-3, levels=7)
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..nn.qcfs import QCFS, relu_to_qcfs

__all__ = ["finetune_qcfs", "accuracy"]


def _as_tensors(data) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(x, y) tensors when `data` is a pair of arrays/tensors; None for an iterable of batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(
            isinstance(d, (np.ndarray, torch.Tensor)) for d in data):
        x, y = (torch.as_tensor(d) for d in data)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} inputs but {len(y)} labels")
        return x.float() if not x.is_floating_point() else x, y.long()
    return None


def _batches(data, batch_size: int, shuffle: bool, generator: torch.Generator | None) -> Iterable:
    pair = _as_tensors(data)
    if pair is None:
        yield from data          # a DataLoader or any iterable of (x, y) batches
        return
    x, y = pair
    order = torch.randperm(len(x), generator=generator) if shuffle else torch.arange(len(x))
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]


@torch.no_grad()
def accuracy(model: nn.Module, data, batch_size: int = 512) -> float:
    """Top-1 accuracy of `model` (eval mode; its mode is restored) on (x, y) or batches of (x, y)."""
    was = model.training
    model.eval()
    dev = next(iter(model.parameters()), torch.empty(0)).device
    correct = total = 0
    try:
        for xb, yb in _batches(data, batch_size, False, None):
            out = model(torch.as_tensor(xb).to(dev))
            correct += int((out.argmax(1).cpu() == torch.as_tensor(yb).cpu()).sum())
            total += len(yb)
    finally:
        model.train(was)
    return correct / max(total, 1)


def _calibration(data, n: int = 512) -> torch.Tensor:
    """Up to n inputs: from a tensor/array of inputs, (x, y) arrays, or an iterable of batches."""
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return torch.as_tensor(data)[:n].float()
    pair = _as_tensors(data)
    if pair is not None:
        return pair[0][:n]
    xs, got = [], 0
    for batch in data:
        xb = batch[0] if isinstance(batch, (tuple, list)) else batch
        xs.append(torch.as_tensor(xb))
        got += len(xs[-1])
        if got >= n:
            break
    return torch.cat(xs)[:n]


def finetune_qcfs(model: nn.Module, train_data, epochs: int = 30, lr: float = 1e-3, *,
                  levels: int | None = None, calib_data=None, percentile: float = 99.9,
                  batch_size: int = 64, weight_decay: float = 5e-4, optimizer: str = "adam",
                  momentum: float = 0.9, seed: int = 0, device: str | torch.device | None = None,
                  loss_fn: Callable | None = None, val_data=None,
                  on_epoch: Callable[[dict], None] | None = None) -> nn.Module:
    """Swap ReLU -> QCFS (when `levels` is given) and fine-tune; returns `model` (in eval mode).

    model: a trained network; with `levels`, its `nn.ReLU` modules are replaced in place by
        `QCFS(levels)` with λ calibrated on `calib_data` (default: the first 512 training
        inputs) at the given `percentile`.  Without `levels` the model must already contain
        QCFS modules (e.g. swapped by `neurodeploy.nn.relu_to_qcfs`).
    train_data: (x, y) arrays/tensors, or an iterable of (x, y) batches (a DataLoader).
    epochs, lr: the fine-tuning length and the initial learning rate (cosine-annealed to 0
        over all steps).  optimizer: "adam" or "sgd" (with `momentum`, nesterov).
    weight_decay: applied to conv/linear weights only (not to biases, BatchNorm or λ).
    seed: shuffling order (for (x, y) data).  device: where to train (default: the model's).
    val_data: if given, its accuracy is reported to `on_epoch` after every epoch.
    on_epoch: called with {"epoch", "loss", "train_accuracy", "val_accuracy", "seconds"}.
    """
    if epochs < 0:
        raise ValueError("epochs must be >= 0")
    if device is not None:
        model.to(device)
    dev = next(iter(model.parameters()), torch.empty(0)).device
    if levels is not None:
        calib = _calibration(calib_data if calib_data is not None else train_data)
        relu_to_qcfs(model, levels, calib.to(dev), percentile=percentile)
    if not any(isinstance(m, QCFS) for m in model.modules()):
        raise ValueError("the model has no QCFS activation: pass levels=Q to replace its nn.ReLU modules "
                         "(functional F.relu calls cannot be replaced; use nn.ReLU modules)")
    decay, no_decay = [], []
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            wants = name == "weight" and isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
            (decay if wants else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    pair = _as_tensors(train_data)
    steps_per_epoch = (len(pair[0]) + batch_size - 1) // batch_size if pair is not None else len(train_data)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * steps_per_epoch))
    lossf = loss_fn or nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for ep in range(epochs):
        model.train()
        tot, correct, n = 0.0, 0, 0
        for xb, yb in _batches(train_data, batch_size, True, gen):
            xb, yb = torch.as_tensor(xb).to(dev), torch.as_tensor(yb).to(dev)
            out = model(xb)
            loss = lossf(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                for m in model.modules():     # keep thresholds positive
                    if isinstance(m, QCFS) and m.lam.requires_grad:
                        m.lam.clamp_(min=1e-3)
            tot += float(loss.detach()) * len(yb)
            correct += int((out.argmax(1) == yb).sum())
            n += len(yb)
        if on_epoch is not None:
            on_epoch({"epoch": ep + 1, "loss": tot / max(n, 1), "train_accuracy": correct / max(n, 1),
                      "val_accuracy": None if val_data is None else accuracy(model, val_data),
                      "seconds": time.perf_counter() - t0})
    model.eval()
    return model
