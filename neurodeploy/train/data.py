"""Training data helpers: batches from a DataLoader or an ``(x, y)`` pair, and the digits split.

:func:`batches` accepts either a ``torch.utils.data.DataLoader`` (or any
iterable of ``(x, y)`` batches, used as is) or a pair of arrays/tensors
``(x, y)`` that it splits into batches, shuffled with an explicit generator so
that a run is reproducible from its seed.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

__all__ = ["is_pair", "as_tensor", "batches", "num_batches", "num_samples", "digits"]


def is_pair(data) -> bool:
    """True for an ``(x, y)`` tuple/list of arrays or tensors (as opposed to a DataLoader)."""
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(a, (np.ndarray, torch.Tensor)) for a in data))


def as_tensor(a) -> torch.Tensor:
    """A torch tensor sharing memory with ``a`` where possible; float64 arrays become float32."""
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    return t.float() if t.dtype == torch.float64 else t


def num_samples(data) -> int | None:
    if is_pair(data):
        return len(data[0])
    ds = getattr(data, "dataset", None)
    try:
        return len(ds) if ds is not None else None
    except TypeError:
        return None


def num_batches(data, batch_size: int) -> int | None:
    if is_pair(data):
        return (len(data[0]) + batch_size - 1) // batch_size
    try:
        return len(data)
    except TypeError:
        return None


def batches(data, batch_size: int = 64, shuffle: bool = False,
            generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` tensor batches.

    For an ``(x, y)`` pair: consecutive slices of ``batch_size``, in the order of a
    ``torch.randperm(generator=generator)`` when ``shuffle``.  Anything else is
    iterated as is (a DataLoader shuffles with its own sampler).
    """
    if not is_pair(data):
        for b in data:
            x, y = b[0], b[1]
            yield as_tensor(x), as_tensor(y)
        return
    x, y = as_tensor(data[0]), as_tensor(data[1])
    if len(x) != len(y):
        raise ValueError(f"x and y have different lengths: {len(x)} vs {len(y)}")
    n = len(x)
    order = torch.randperm(n, generator=generator) if shuffle else None
    for i in range(0, n, batch_size):
        if order is None:
            yield x[i:i + batch_size], y[i:i + batch_size]
        else:
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]


def digits(seed: int = 0):
    """sklearn digits as float32 ``(N, 1, 8, 8)`` = pixel/16 and int64 labels, stratified 75/25 split
    with ``random_state=seed`` -- the split of ``models/train_digits.py``.

    Returns ``(x_train, y_train, x_test, y_test)`` numpy arrays.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / np.float32(16.0))[:, None, :, :]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    return (np.ascontiguousarray(xtr), np.ascontiguousarray(ytr),
            np.ascontiguousarray(xte), np.ascontiguousarray(yte))
