"""Atomic output: write to a temporary file (or folder) beside the target, then rename.

A run that dies half-way (an error, Ctrl-C, SIGTERM) leaves the old output (or nothing), never a
half-written one, and no temporary file: the temporaries are removed in `finally` with the
signals held back (`signals.deferred`), and so is the swap of an output folder (old out, new in).
A failure of the file system itself (permission denied, disk full, a path under a file) is a
NeurodeployError naming the path.  What may be replaced at all is `outputs.py`'s job.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import NeurodeployError
from .signals import deferred


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (a large file is never read whole)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_mode(path: str | Path, directory: bool = False) -> None:
    """Give a temp file/dir (created 0600/0700) the mode a normal open()/mkdir() would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def cannot_write(path: str | Path, exc: OSError) -> NeurodeployError:
    """The one-line error for a failed write to `path`."""
    # numpy and h5py raise OSErrors without an errno when the file system takes less than they wrote
    why = exc.strerror or "the file system took only part of the data: disk full, or a file size limit"
    return NeurodeployError(f"cannot write ({why})", str(path), "free space or choose another location for the output")


def make_parents(path: Path) -> list[Path]:
    """Create path's missing parent folders; returns those it created (innermost last)."""
    missing = []
    parent = path.parent
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    created = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
    except OSError as exc:
        _remove_dirs(created)
        raise cannot_write(path, exc) from None
    return created


def _remove_dirs(created: list[Path]) -> None:
    for d in reversed(created):
        with contextlib.suppress(OSError):
            d.rmdir()


def _remove(path: str | Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            os.remove(path)


@contextlib.contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path in path's folder; on success it replaces `path`."""
    path = Path(path)
    created, tmp, done = make_parents(path), None, False
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        public_mode(tmp)
        os.replace(tmp, path)
        done = True
    except OSError as exc:
        raise cannot_write(path, exc) from None
    finally:
        with deferred():
            if tmp is not None:
                _remove(tmp)
            if not done:
                _remove_dirs(created)


@contextlib.contextmanager
def atomic_dir(path: str | Path, before_replace=None):
    """Yield a temporary folder beside `path`; on success it replaces `path` (absent or a folder).

    before_replace(tmp) runs last, just before the swap (e.g. to write a manifest, or to check
    once more that `path` may still be replaced)."""
    path = Path(path)
    created, tmp, done = make_parents(path), None, False
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        public_mode(tmp, directory=True)
        yield tmp
        if before_replace is not None:
            before_replace(tmp)
        with deferred():
            if os.path.lexists(path):
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
                os.replace(path, old / "previous")
                try:
                    os.replace(tmp, path)
                except OSError:
                    os.replace(old / "previous", path)      # put the old output back
                    _remove(old)
                    raise
                _remove(old)
            else:
                os.replace(tmp, path)
            done = True
    except OSError as exc:
        raise cannot_write(path, exc) from None
    finally:
        with deferred():
            if tmp is not None and not done:
                _remove(tmp)
            if not done:
                _remove_dirs(created)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_hdf5(path: str | Path):
    """An h5py.File built in memory, written to `path` atomically when the block ends without error.

    Why in memory: when the file system refuses a write half-way (disk full, a file size limit),
    HDF5 writing straight to disk takes the process down (a segfault in h5py's clean-up); here the
    only write to disk is ours, and its failure is a one-line error."""
    import io

    import h5py
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h:
        yield h
    write_bytes_atomic(path, buf.getvalue())
