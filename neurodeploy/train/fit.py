"""``fit`` / ``predict`` / ``evaluate``: train and run spiking networks built from :mod:`neurodeploy.nn.lif`.

The network maps ``(T, N, ...)`` to ``(T, N, classes)`` (time first, see
:mod:`neurodeploy.nn.lif`); its output for a sample is the **mean over the T
steps** -- in :func:`predict`, in validation and in the training loss alike.
Static inputs ``(N, ...)`` are repeated over the T steps; a dataset that holds
sequences gives their time axis with ``input_time_dim``.

Methods (see :mod:`neurodeploy.train.rate_bp`): ``"bptt"``, ``"rate_M"``
(``"rate"``), ``"rate_S"``.

Reproducibility: before epoch ``e`` (0-based) the global torch RNG is seeded
with ``seed * 1_000_003 + e`` and the array shuffler gets its own generator
seeded the same way, so an epoch depends only on the state at its start; a run
resumed from a checkpoint therefore ends with the same weights as an
uninterrupted one (given deterministic kernels: CPU, or
``torch.use_deterministic_algorithms(True)``).
"""

from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from neurodeploy.nn.lif import check_time_first, neurons, reset_net, set_mode
from neurodeploy.progress import progress_bar

from .checkpoint import load_checkpoint, save_checkpoint
from .data import as_tensor, batches, is_pair, num_batches
from .rate_bp import SavedTensorMeter, canonical_method, time_major, train_step

__all__ = ["fit", "predict", "evaluate", "make_optimizer"]

MEMORY_WHAT = ("bytes of the distinct tensors autograd saved for the backward (parameters excluded) "
               "+ rate-BP records (neuron rates/eligibilities, BN statistics); max over iterations")


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(seed) * 1_000_003 + int(epoch)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def make_optimizer(model: nn.Module, optimizer, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """An optimizer from a name (``"adam"``, ``"adamw"``, ``"sgd"`` = SGD momentum 0.9), a callable
    ``params -> Optimizer`` or an existing ``Optimizer`` (returned as is).

    For names, ``weight_decay`` applies to weight tensors only (``dim > 1``), not to biases and BN
    parameters (as in Yu et al.'s configs).
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer):
        return optimizer(model.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() > 1], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    name = str(optimizer).lower()
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    raise ValueError(f"unknown optimizer {optimizer!r}; expected 'adam', 'adamw', 'sgd', a callable or an Optimizer")


@torch.no_grad()
def predict(model: nn.Module, x, timesteps: int, batch_size: int = 256, input_time_dim: int | None = None):
    """The network's output ``(N, classes)``: mean over ``timesteps`` steps, eval mode, no autograd.

    ``x``: ``(N, ...)`` static inputs (repeated over the steps), or sequences with their time axis at
    ``input_time_dim`` (in ``(N, ...)`` coordinates).  Returns a numpy array for numpy input, else a
    tensor on the model's device.  The model's train/eval mode is restored afterwards.
    """
    check_time_first(model)
    was_training = model.training
    model.eval()
    set_mode(model, "spike")
    dev = _device(model)
    xt = as_tensor(x)
    outs = []
    try:
        for i in range(0, len(xt), batch_size):
            xb = xt[i:i + batch_size].to(dev)
            reset_net(model)
            outs.append(model(time_major(xb, timesteps, input_time_dim)).mean(0))
    finally:
        reset_net(model)
        model.train(was_training)
    out = torch.cat(outs) if outs else torch.empty(0)
    return out.cpu().numpy() if isinstance(x, np.ndarray) else out


@torch.no_grad()
def evaluate(model: nn.Module, data, timesteps: int, loss_fn: Callable | None = None, batch_size: int = 256,
             input_time_dim: int | None = None) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of :func:`predict`'s outputs on ``data`` (DataLoader or ``(x, y)``)."""
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    dev = _device(model)
    tot, correct, n = 0.0, 0, 0
    for xb, yb in batches(data, batch_size):
        out = predict(model, xb.to(dev), timesteps, batch_size, input_time_dim)
        yb = yb.to(dev)
        tot += float(loss_fn(out, yb)) * len(yb)
        correct += int((out.argmax(1) == yb).sum())
        n += len(yb)
    return tot / max(n, 1), correct / max(n, 1)


def fit(model: nn.Module, train_data, epochs: int, timesteps: int, method: str = "bptt", lr: float = 1e-3,
        optimizer="adam", decay: float | None = None, val_data=None, checkpoint: str | os.PathLike | None = None,
        resume: bool = False, progress: bool = True, seed: int = 0, *, batch_size: int = 64,
        weight_decay: float = 0.0, schedule: str | None = "cosine", loss_fn: Callable | None = None,
        input_time_dim: int | None = None, measure_memory: bool = True) -> list[dict]:
    """Train ``model`` in place; return the history, one dict per epoch.

    Args:
        model: maps ``(T, N, ...)`` to ``(T, N, classes)`` (e.g. a ``SpikingSequential``).
        train_data: a DataLoader (or iterable of ``(x, y)`` batches) or an ``(x, y)`` pair of
            arrays/tensors, split into ``batch_size`` batches shuffled per epoch.
        epochs: total number of epochs (also when resuming).
        timesteps: T.
        method: ``"bptt"``, ``"rate"``/``"rate_M"`` or ``"rate_S"``.
        lr, optimizer, weight_decay: see :func:`make_optimizer`.
        decay: if given, sets ``decay`` on every neuron of the model that has one (LIF lambda).
        val_data: evaluated after each epoch with :func:`evaluate` (DataLoader or pair).
        checkpoint: path written after every epoch (model, optimizer, scheduler, epoch, history).
        resume: continue from ``checkpoint`` if it exists (same method/T/epochs/seed required).
        progress: tqdm bar (on a terminal) with loss and accuracy.
        seed: seeds each epoch (see the module docstring).
        schedule: ``"cosine"`` (per iteration, to 0 at the end) or ``None`` (constant lr).
        loss_fn: on ``(N, classes)`` outputs and targets; default cross-entropy.
        input_time_dim: axis of the time dimension in sequence data; ``None`` = static inputs.
        measure_memory: record ``peak_memory`` (see ``MEMORY_WHAT``); on CUDA also ``cuda_peak_memory``.

    History keys: ``epoch`` (1-based), ``loss``, ``accuracy`` (of the spiking outputs on the training
    batches, in training mode), ``time`` (s, training only), ``lr`` (at the epoch's end),
    ``peak_memory`` / ``peak_memory_what`` (if measured), ``cuda_peak_memory`` (on CUDA),
    ``val_loss`` / ``val_accuracy`` (with ``val_data``).
    """
    method = canonical_method(method)
    timesteps = int(timesteps)
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    if not neurons(model):
        raise ValueError("model has no SpikingNeuron modules")
    check_time_first(model)
    if decay is not None:
        for m in neurons(model):
            if hasattr(m, "decay"):
                m.decay = float(decay)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    dev = _device(model)
    opt = make_optimizer(model, optimizer, lr, weight_decay)
    nb = num_batches(train_data, batch_size)
    sched = None
    if schedule == "cosine":
        total = epochs * nb if nb else epochs
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    elif schedule is not None:
        raise ValueError(f"unknown schedule {schedule!r}; expected 'cosine' or None")
    per_iter = sched is not None and bool(nb)
    config = {"method": method, "timesteps": timesteps, "epochs": int(epochs), "seed": int(seed),
              "lr": float(lr), "decay": decay, "batch_size": batch_size if is_pair(train_data) else None,
              "schedule": schedule}

    history: list[dict] = []
    start = 0
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        state = load_checkpoint(checkpoint, model, opt, sched, map_location=dev)
        old = state.get("config", {})
        diff = {k: (old.get(k), v) for k, v in config.items() if k in old and old.get(k) != v}
        if diff:
            raise ValueError(f"cannot resume {checkpoint}: configuration differs {diff}")
        start, history = int(state["epoch"]), list(state["history"])

    meter = SavedTensorMeter(model) if measure_memory else None
    cuda = dev.type == "cuda"
    with progress_bar(total=epochs, desc=f"fit[{method}, T={timesteps}]", unit="epoch", enabled=progress) as bar:
        bar.update(start)
        for epoch in range(start, epochs):
            es = _epoch_seed(seed, epoch)
            torch.manual_seed(es)
            gen = torch.Generator().manual_seed(es)
            model.train()
            if cuda:
                torch.cuda.reset_peak_memory_stats(dev)
            tot, correct, n, peak = 0.0, 0, 0, 0
            t0 = time.perf_counter()
            for xb, yb in batches(train_data, batch_size, shuffle=True, generator=gen):
                xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                loss, out, held = train_step(model, time_major(xb, timesteps, input_time_dim), yb, loss_fn,
                                             method, meter)
                opt.step()
                if per_iter:
                    sched.step()
                if meter is not None:
                    peak = max(peak, meter.nbytes + held)
                k = len(yb)
                tot += float(loss) * k
                correct += int((out.argmax(1) == yb).sum())
                n += k
                bar.set_postfix(loss=f"{tot / n:.4f}", acc=f"{correct / n:.4f}", refresh=False)
            if cuda:
                torch.cuda.synchronize(dev)
            dt = time.perf_counter() - t0
            if sched is not None and not per_iter:
                sched.step()
            rec = {"epoch": epoch + 1, "loss": tot / max(n, 1), "accuracy": correct / max(n, 1), "time": dt,
                   "lr": opt.param_groups[0]["lr"]}
            if meter is not None:
                rec["peak_memory"] = int(peak)
                rec["peak_memory_what"] = MEMORY_WHAT
            if cuda:
                rec["cuda_peak_memory"] = int(torch.cuda.max_memory_allocated(dev))
            if val_data is not None:
                rec["val_loss"], rec["val_accuracy"] = evaluate(model, val_data, timesteps, loss_fn,
                                                                input_time_dim=input_time_dim)
            history.append(rec)
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, opt, epoch + 1, history, config, sched)
            post = {"loss": f"{rec['loss']:.4f}", "acc": f"{rec['accuracy']:.4f}"}
            if "val_accuracy" in rec:
                post["val_acc"] = f"{rec['val_accuracy']:.4f}"
            bar.set_postfix(post)
            bar.update(1)
    reset_net(model)
    return history
