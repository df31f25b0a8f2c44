"""Reading the user's .npy inputs and labels, with clear errors."""
from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from .errors import NeurodeployError


def _read_header(f, where: str, hint: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of the .npy header at f's position (f left at the data); refuses object arrays
    and invalid shapes."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy format version {version}")
    if dtype.hasobject:
        raise NeurodeployError("holds Python objects (dtype=object), which would need unpickling", where,
                               f"{hint} as a numeric array")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise NeurodeployError(f"header declares an invalid shape {shape}", where, hint)
    return shape, dtype


def _check_data_size(shape: tuple, dtype: np.dtype, available: int, where: str, hint: str) -> None:
    data_bytes = math.prod(shape) * dtype.itemsize
    if available < data_bytes:
        raise NeurodeployError(f"header declares {shape} {dtype} ({data_bytes} bytes of data) but the file holds "
                               f"{max(available, 0)} (truncated or damaged)", where, hint)


_READ_ERRORS = (ValueError, OSError, EOFError, SyntaxError, TypeError, zipfile.BadZipFile)


def npy_header(path: Path, what: str) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) from a .npy file's header, checked against the file's size.

    A header is a promise about the bytes that follow; one that promises more than the file holds
    (truncated, or crafted to make numpy allocate terabytes) is refused here, before numpy
    allocates anything."""
    hint = f"save the {what} with numpy.save"
    try:
        size = path.stat().st_size
        if size == 0:
            raise NeurodeployError("is empty (0 bytes)", str(path), hint)
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise NeurodeployError("holds several arrays (.npz); expected one array", str(path), hint)
            f.seek(0)
            shape, dtype = _read_header(f, str(path), hint)
            offset = f.tell()
    except _READ_ERRORS as exc:
        raise NeurodeployError(f"not a readable .npy array ({type(exc).__name__})", str(path), hint) from None
    _check_data_size(shape, dtype, size - offset, str(path), hint)
    return shape, dtype, offset


def load_npz(path: Path, hint: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive we wrote (stored, not compressed), each member's header checked
    against the member's size and each member's size against the archive's, before anything is
    allocated: a damaged or crafted archive is refused (NeurodeployError), never read into
    terabytes."""
    arrays = {}
    try:
        archive_bytes = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                where = f"{path}: {info.filename}"
                if info.compress_type != zipfile.ZIP_STORED or info.file_size > archive_bytes \
                        or not info.filename.endswith(".npy"):
                    raise NeurodeployError("is not an array as neurodeploy stores it (compressed, oversized "
                                           "or not .npy)", where, hint)
                with zf.open(info) as f:
                    shape, dtype = _read_header(f, where, hint)
                    _check_data_size(shape, dtype, info.file_size - f.tell(), where, hint)
                    f.seek(0)                         # read_array reads the header again
                    arrays[info.filename[:-4]] = np.lib.format.read_array(f, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise NeurodeployError(f"not a readable .npz archive ({type(exc).__name__}: {exc})", str(path),
                               hint) from None
    return arrays


def load_npy(path: str | Path, what: str, mmap: bool = False) -> np.ndarray:
    """Load one array; with mmap the samples stay on disk and are read batch by batch.

    The header is checked against the file's size first (`npy_header`), so a file can never make
    neurodeploy allocate more memory than the file's own size."""
    path = Path(path)
    if path.is_dir():
        raise NeurodeployError("is a directory, not a .npy file", str(path), f"pass the {what} as a .npy file")
    if not path.exists():
        raise NeurodeployError("file not found", str(path), f"pass the {what} as a .npy file")
    if not path.is_file():
        raise NeurodeployError("is not a regular file (a device, pipe or socket)", str(path),
                               f"pass the {what} as a .npy file")
    shape, _, _ = npy_header(path, what)
    try:
        arr = np.load(path, allow_pickle=False,
                      mmap_mode="r" if mmap and math.prod(shape) else None)   # an empty array cannot be mapped
    except (ValueError, OSError, EOFError) as exc:
        raise NeurodeployError(f"not a readable .npy array ({type(exc).__name__})", str(path),
                               f"save the {what} with numpy.save") from None
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
