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


def check_labels(y: np.ndarray, n: int, where: str, n_classes: int | None = None) -> np.ndarray:
    """One integer label per sample, each a class of the network: 0 <= label < n_classes."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise NeurodeployError(f"labels shaped {y.shape}, expected ({n},)", where,
                               "save one integer label per input sample")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.float64)
            if np.any(np.abs(y) > 2 ** 53):
                raise NeurodeployError("labels hold values too large to be classes", where, "save integer labels")
        else:
            raise NeurodeployError(f"labels of dtype {y.dtype} are not integers", where, "save integer labels")
    if n_classes is not None and len(y):
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= n_classes:
            bad = lo if lo < 0 else hi
            raise NeurodeployError(f"label {int(bad)} is not a class of this network (it has {n_classes} outputs: "
                                   f"0..{n_classes - 1})", where, "pass the labels of these samples")
    return y.astype(np.int64)


def check_calibration(x, where: str, chunk: int = 4096) -> np.ndarray:
    """Calibration samples: a real-valued array (N, ...) with N >= 1, finite, and not all one value
    (an all-zero set would give the input quantiser no range: its step would be made up).
    Their shape against the model's input is checked once the model is read
    (`compiler.check_calibration_shape`)."""
    if not isinstance(x, np.ndarray):
        raise NeurodeployError(f"calibration samples must be an array, not {type(x).__name__}", where,
                               "pass samples shaped like the model's input, batch first")
    if x.dtype.kind not in "fiu":
        raise NeurodeployError(f"calibration samples of dtype {x.dtype} are not real numbers", where,
                               "save float32 samples")
    if x.ndim < 2:
        raise NeurodeployError(f"calibration samples shaped {x.shape} lack the batch dimension", where,
                               "save an array shaped (N, *input shape)")
    if x.size == 0:
        raise NeurodeployError(f"calibration holds no samples (shape {x.shape})", where,
                               "pass at least one sample (a few hundred are typical)")
    lo = hi = None
    for start in range(0, len(x), chunk):
        part = np.asarray(x[start:start + chunk])
        if part.dtype.kind == "f" and not np.all(np.isfinite(part)):
            raise NeurodeployError("calibration samples hold NaN or Inf values", where, "clean the data")
        plo, phi = part.min(), part.max()
        lo = plo if lo is None else min(lo, plo)
        hi = phi if hi is None else max(hi, phi)
    if lo == hi:
        raise NeurodeployError(f"every calibration value is {lo}: the samples carry no range to calibrate", where,
                               "pass representative samples of the deployment data")
    return x
