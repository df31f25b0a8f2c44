"""Where a command may write, and what it may replace there.

The rules (the README's "Safety" section states them for users):

- An output **folder** (`compile -o DIR`, `compare -o DIR`, `CompiledNet.save(DIR)`) is written
  whole and carries `neurodeploy-manifest.json`: the tool, its version, the command and every file
  we wrote with its size and sha256.  An existing DIR is replaced only when it is empty, or when
  its manifest is ours and it holds exactly the files the manifest lists, unchanged.  A folder
  without our manifest (another tool's project, the user's data), one holding a file the manifest
  does not list (the user's notes, results) or one whose file was edited after we wrote it is
  refused, and nothing in it is touched.
- An output **file** (`simulate --output`, `report -o`, `export -o`) replaces a regular file of
  that name (the user named it), never a folder, a device or a pipe.
- No output, file or folder, may be one of the command's inputs (paths resolved: symlinks and
  hard links count), nor a folder holding one.
- The place must be writable: a path under a file, a read-only or missing-permission folder is a
  one-line error before any work is done.
Every check here runs before the command's work (fail fast) and the folder rule once more right
before the swap (`fsutil.atomic_dir`).
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path

from . import __version__
from .errors import NeurodeployError
from .fsutil import atomic_dir, file_sha256

MANIFEST_FILE = "neurodeploy-manifest.json"
MANIFEST_FORMAT = "neurodeploy-output-manifest"
_SHOWN = 3                      # files named in a refusal; the rest are counted


# -- the manifest ---------------------------------------------------------------------------------

def _entries(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(regular files, folders, everything else: links, pipes, ...) under folder, as sorted POSIX
    paths relative to it; walked with a stack, links not followed."""
    files, folders, others = [], [], []
    stack = [folder]
    while stack:
        d = stack.pop()
        for entry in os.scandir(d):
            rel = Path(entry.path).relative_to(folder).as_posix()
            if entry.is_dir(follow_symlinks=False):
                folders.append(rel)
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                files.append(rel)
            else:
                others.append(rel)
    return sorted(files), sorted(folders), sorted(others)


def write_manifest(folder: Path, command: str) -> None:
    """List every file under `folder` (with size and sha256) in its manifest; deterministic bytes."""
    files, _, _ = _entries(folder)
    listed = {f: {"bytes": (folder / f).stat().st_size, "sha256": file_sha256(folder / f)}
              for f in files if f != MANIFEST_FILE}
    doc = {"format": MANIFEST_FORMAT, "tool": "neurodeploy", "version": __version__, "command": command,
           "files": listed}
    (folder / MANIFEST_FILE).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _read_manifest(folder: Path) -> dict | None:
    """The folder's manifest if it is one of ours, else None."""
    path = folder / MANIFEST_FILE
    if not path.is_file() or path.is_symlink():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not (isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT and doc.get("tool") == "neurodeploy"
            and isinstance(doc.get("files"), dict)):
        return None
    return doc


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def check_replaceable(folder: Path, flag: str = "-o") -> None:
    """Raise unless `folder` is empty or exactly an unchanged neurodeploy output (see the module doc)."""
    try:
        _check_replaceable(folder, flag)
    except OSError as exc:
        raise NeurodeployError(f"cannot read the directory ({exc.strerror})", str(folder),
                               f"choose another {flag} directory; nothing in it was touched") from None


def _check_replaceable(folder: Path, flag: str) -> None:
    files, folders, others = _entries(folder)
    if not files and not folders and not others:
        return
    doc = _read_manifest(folder)
    if doc is None:
        raise NeurodeployError(f"is not empty and was not written by neurodeploy (no {MANIFEST_FILE})",
                               str(folder), f"choose a new or empty {flag} directory; nothing in it was touched")
    listed = doc["files"]
    ours = {MANIFEST_FILE, *listed}
    holding = {p.as_posix() for f in listed for p in Path(f).parents if p != Path(".")}   # folders of our files
    foreign = [f for f in files if f not in ours] + [d for d in folders if d not in holding] + others
    if foreign:
        raise NeurodeployError(f"holds files neurodeploy did not write ({_some(foreign)})", str(folder),
                               f"move them out of it or choose another {flag} directory; nothing in it was touched")
    edited = []
    for f in files:
        if f == MANIFEST_FILE:
            continue
        rec = listed[f]
        if not isinstance(rec, dict) or (folder / f).stat().st_size != rec.get("bytes") \
                or file_sha256(folder / f) != rec.get("sha256"):
            edited.append(f)
    if edited:
        raise NeurodeployError(f"{_some(edited)} changed since neurodeploy wrote it", str(folder),
                               f"move the edited files out of it or choose another {flag} directory; "
                               "nothing in it was touched")


# -- inputs are never outputs ---------------------------------------------------------------------

def _real(path) -> Path:
    return Path(os.path.realpath(path))


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _check_not_input(out: Path, inputs, flag: str, folder: bool, shown) -> None:
    real_out = _real(out)
    for given in inputs:
        if given is None or not os.path.lexists(given):      # a name (--target loihi2), or a missing file
            continue
        real_in = _real(given)
        same = real_in == real_out or (os.path.exists(out) and os.path.exists(given)
                                       and os.path.samefile(out, given))
        if same or (folder and _within(real_in, real_out)) or (not folder and Path(given).is_dir()
                                                                   and _within(real_out, real_in)
                                                                   and os.path.lexists(out)):
            raise NeurodeployError(f"would overwrite an input of this command ({given})", f"{flag} {shown}",
                                   "write the output somewhere else")


# -- the place ------------------------------------------------------------------------------------

def _check_place(out: Path, flag: str, shown) -> None:
    """The nearest existing ancestor of `out` must be a directory we may write in."""
    anc = out.parent
    while not os.path.lexists(anc):
        anc = anc.parent
    if not anc.is_dir():
        raise NeurodeployError(f"is under {anc}, which is a file, not a directory", f"{flag} {shown}",
                               f"choose a path in a directory for {flag}")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise NeurodeployError(f"cannot write in {anc} (permission denied)", f"{flag} {shown}",
                               f"choose a writable location for {flag}")


def _path_errors(check):
    """A file-system error while checking a path (a name too long, a loop of links) is a one-line error."""
    @functools.wraps(check)
    def checked(path, inputs=(), flag: str = "-o") -> Path:
        try:
            return check(path, inputs, flag)
        except OSError as exc:
            raise NeurodeployError(f"cannot use this path ({exc.strerror or type(exc).__name__})", f"{flag} {path}",
                                   f"choose another {flag}") from None
    return checked


@_path_errors
def check_output_file(path: str | Path, inputs=(), flag: str = "-o") -> Path:
    """Check before any work that `path` may be written as one file; returns it (symlinks resolved,
    so that a link's target is written, not the link replaced)."""
    out = Path(path)
    if str(path) == "" or out.name in ("", ".", ".."):
        raise NeurodeployError("is not a file name", f"{flag} '{path}'", f"pass a file name to {flag}")
    if out.is_dir():
        raise NeurodeployError("is a directory", f"{flag} {out}", f"pass a file name to {flag}")
    if os.path.lexists(out):
        if not out.exists():
            raise NeurodeployError("is a link to nothing", f"{flag} {out}", f"remove the link or choose another {flag}")
        if not out.is_file():
            raise NeurodeployError("exists and is not a regular file (a device, pipe or socket)", f"{flag} {out}",
                                   f"choose a file name for {flag}")
    _check_not_input(out, inputs, flag, False, path)
    out = _real(out) if os.path.lexists(out) else out
    _check_place(out, flag, path)
    if out.exists() and not os.access(out, os.W_OK):
        raise NeurodeployError("is read-only", f"{flag} {path}", "make it writable or choose another file name")
    return out


@_path_errors
def check_output_dir(path: str | Path, inputs=(), flag: str = "-o") -> Path:
    """Check before any work that `path` may be written (or replaced) as an output directory; returns it."""
    out = Path(path)
    if str(path) == "":
        raise NeurodeployError("is not a directory name", f"{flag} ''", f"pass a directory name to {flag}")
    if os.path.lexists(out) and not out.exists():
        raise NeurodeployError("is a link to nothing", f"{flag} {out}", f"remove the link or choose another {flag}")
    out = _real(out)
    if out.exists() and not out.is_dir():
        raise NeurodeployError("exists and is not a directory", f"{flag} {path}",
                               f"choose a directory name for {flag}; the file was not touched")
    if out.parent == out:
        raise NeurodeployError("is the root directory", f"{flag} {path}", f"choose a directory name for {flag}")
    _check_not_input(out, inputs, flag, True, path)
    if _within(_real(os.getcwd()), out):
        raise NeurodeployError("is (or holds) the current directory, which replacing it would pull from under you",
                               f"{flag} {path}", f"name a new directory for {flag}, e.g. {flag} out")
    if out.exists():
        check_replaceable(out, flag)
    _check_place(out, flag, path)
    return out


@contextlib.contextmanager
def output_folder(path: str | Path, command: str, inputs=(), flag: str = "-o"):
    """Write an output folder: checked first (`check_output_dir`), built in a temporary folder beside
    it (yielded), given our manifest, checked once more (the run may have taken minutes and the user
    may have put a file there meanwhile) and swapped in atomically."""
    out = check_output_dir(path, inputs, flag)

    def finish(tmp: Path) -> None:
        write_manifest(tmp, command)
        if out.exists():
            check_replaceable(out, flag)

    with atomic_dir(out, before_replace=finish) as tmp:
        yield tmp
