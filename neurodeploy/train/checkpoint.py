"""Training checkpoints: model, optimizer, scheduler, epoch, history and the run's configuration.

A checkpoint is written at the end of every epoch (atomically: a temporary
file renamed over the old one).  :func:`neurodeploy.train.fit` seeds every
epoch's randomness from ``(seed, epoch)``, so resuming from the checkpoint of
epoch ``k`` reproduces the uninterrupted run from epoch ``k + 1`` on.
"""

from __future__ import annotations

import os
import pickle

import torch
from torch import nn

from ..errors import NeurodeployError

__all__ = ["FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "write_model_card"]

FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    epoch: int, history: list, config: dict | None = None, scheduler=None) -> None:
    """Write ``path`` holding the state after ``epoch`` (1-based: the number of finished epochs)."""
    state = {
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": list(history),
        "config": dict(config or {}),
    }
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                    map_location="cpu") -> dict:
    """Read ``path``; load the states into the objects given; return the checkpoint dict."""
    # weights_only: a checkpoint holds tensors, numbers, strings and containers only, and loading
    # it must never run code a file carries (the restricted unpickler refuses anything else)
    try:
        state = torch.load(os.fspath(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise NeurodeployError(f"the checkpoint holds Python objects beyond tensors and plain data, which "
                               f"neurodeploy never loads ({str(exc).splitlines()[0][:120]})", os.fspath(path),
                               "write checkpoints with neurodeploy.train.save_checkpoint") from None
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {state.get('format_version')!r}, expected {FORMAT_VERSION}")
    if model is not None:
        model.load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    return state


def write_model_card(path: str, meta: dict, summary_keys: tuple) -> None:
    """Write a trained model's card `path` (JSON, sorted keys, indent 2: byte-stable across runs
    of the same training) atomically, and print the `summary_keys` entries for the console."""
    import json

    from ..fsutil import write_text_atomic
    write_text_atomic(path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: meta[k] for k in summary_keys}, indent=2))
