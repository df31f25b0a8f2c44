"""Reading the user's .npy inputs and labels, with clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import NeurodeployError


def load_npy(path: str | Path, what: str, mmap: bool = False) -> np.ndarray:
    """Load one array; with mmap the samples stay on disk and are read batch by batch."""
    path = Path(path)
    if not path.is_file():
        raise NeurodeployError("file not found", str(path), f"pass the {what} as a .npy file")
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as exc:
        raise NeurodeployError(f"not a readable .npy array ({type(exc).__name__})", str(path),
                               f"save the {what} with numpy.save") from None
    if not isinstance(arr, np.ndarray):
        raise NeurodeployError("holds several arrays (.npz); expected one array", str(path),
                               f"save the {what} with numpy.save")
    return arr


def sample_shape(graph) -> tuple:
    """The shape of one input sample: the encoder's shape, or (n_steps, *shape) when it takes a
    frame per step (an imported NetX network fed spike trains)."""
    enc = graph.input
    if enc.neuron.sequence:
        return (int(enc.neuron.n_steps),) + tuple(enc.input_shape)
    return tuple(enc.input_shape)


def check_inputs(x: np.ndarray, shape: tuple, where: str, chunk: int = 4096) -> np.ndarray:
    """Inputs must be real numbers shaped (N, *shape) with no NaN/Inf.

    Checked chunk by chunk so that a memory-mapped array is never loaded whole; returned
    as it is (the simulator converts each batch)."""
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise NeurodeployError(f"input dtype {x.dtype} is not numeric", where, "save float32 samples")
    if x.ndim == 1 + len(shape) - 0 and tuple(x.shape[1:]) == tuple(shape):
        pass
    elif tuple(x.shape) == tuple(shape):
        raise NeurodeployError(f"input shape {x.shape} lacks the batch dimension", where,
                               f"save an array shaped (N, {', '.join(map(str, shape))})")
    else:
        raise NeurodeployError(f"input shape {x.shape} does not match the model input (N, "
                               f"{', '.join(map(str, shape))})", where, "reshape the samples")
    if len(x) == 0:
        raise NeurodeployError("input holds no samples", where, "pass at least one sample")
    if np.issubdtype(x.dtype, np.floating):
        for start in range(0, len(x), chunk):
            if not np.all(np.isfinite(x[start:start + chunk])):
                raise NeurodeployError("input holds NaN or Inf values", where, "clean the data")
    return x


def check_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise NeurodeployError(f"labels shaped {y.shape}, expected ({n},)", where,
                               "save one integer label per input sample")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            return y.astype(np.int64)
        raise NeurodeployError(f"labels of dtype {y.dtype} are not integers", where, "save integer labels")
    return y.astype(np.int64)
