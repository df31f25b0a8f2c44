"""Make lava-nc 0.10.0 importable on Python >= 3.11 and NumPy >= 2.1 without touching site-packages.

lava-nc 0.10.0 declares ``Requires-Python <3.11`` and fails on 3.11 at import time:
``lava/magma/compiler/var_model.py`` gives three dataclasses fields ``x: ByteEncoder =
ByteEncoder()`` (a mutable default), which Python 3.11's ``dataclasses`` rejects with
``ValueError: mutable default ... use default_factory``.  Everything that imports
``lava.magma.core.process.process`` hits it (compiler/executable -> node -> var_model).

`ensure_lava()` installs a `sys.meta_path` finder that intercepts exactly the modules in
`PATCHES`, reads the installed source file, applies literal text replacements and
executes the patched code as that module.  The files on disk are never modified.  A patch
whose pattern is absent from the installed source (fixed upstream) is skipped; a module
with no applicable patch is left to the normal import system.

Patches:
  * ``lava.magma.compiler.var_model``: ``name: ByteEncoder = ByteEncoder()`` ->
    ``name: ByteEncoder = field(default_factory=ByteEncoder)`` (``field`` imported into
    the patched source under a private name).  Needed on Python >= 3.11.
  * ``lava.magma.core.process.ports.ports``: ``ReshapePort`` builds
    ``functools.partial(np.reshape, newshape=...)``; ``newshape`` is deprecated since
    NumPy 2.1 and removed in 2.4, so on NumPy >= 2.1 it becomes ``shape=...`` (same
    result).  Without it every reshaped/flattened connection warns on 2.1-2.3 and fails
    on 2.4.

  * ``lava.proc.conv.utils``: the fixed-point Conv model holds kernel size, stride, padding and
    dilation as int8 arrays, and ``conv_scipy`` adds them to the input's width/height; under
    NumPy >= 2's scalar promotion (NEP 50) a dimension above 127 (PilotNet's 200-wide input)
    raises ``OverflowError: Python integer 200 out of bounds for int8``.  The patch casts the
    four parameters to int64 at the top of ``conv_scipy`` (same values, no overflow).

  * ``lava.magma.runtime.message_infrastructure.multiprocessing``:
    ``mp.set_start_method('fork')`` -> ``(..., force=True)``, so that Lava can be imported after
    anything else in the process has fixed the multiprocessing context (e.g. training).

Lava's runtime starts its process models with ``multiprocessing`` in *fork* mode, so the
children inherit the already patched modules.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import threading

import numpy as np

from neurodeploy.errors import NeurodeployError

VAR_MODEL = "lava.magma.compiler.var_model"
PORTS = "lava.magma.core.process.ports.ports"

_FIELD_IMPORT = "from dataclasses import field as _neurodeploy_field\n"
_BYTE_ENCODER_DEFAULT = re.compile(r"(:\s*ByteEncoder\s*=\s*)ByteEncoder\(\)")


def _numpy_at_least(major: int, minor: int) -> bool:
    parts = np.__version__.split(".")
    return (int(parts[0]), int(re.match(r"\d+", parts[1]).group())) >= (major, minor)


def _patch_var_model(src: str) -> str | None:
    if not _BYTE_ENCODER_DEFAULT.search(src):
        return None                                    # already fixed upstream
    out = _BYTE_ENCODER_DEFAULT.sub(r"\1_neurodeploy_field(default_factory=ByteEncoder)", src)
    return _insert_after_future_imports(out, _FIELD_IMPORT)


def _patch_ports(src: str) -> str | None:
    old = "ft.partial(np.reshape, newshape="
    if old not in src or not _numpy_at_least(2, 1):
        return None
    return src.replace(old, "ft.partial(np.reshape, shape=")


def _patch_start_method(src: str) -> str | None:
    old = "mp.set_start_method('fork')"
    if old not in src:
        return None
    # Lava sets the start method at import; if anything in the process (a DataLoader, joblib,
    # an earlier multiprocessing call) has fixed the context already, that raises "context has
    # already been set" and Lava cannot be imported.  fork is Linux's default anyway.
    return src.replace(old, "mp.set_start_method('fork', force=True)")


def _patch_conv_utils(src: str) -> str | None:
    old = "    input_shape = input_.shape\n"
    if old not in src or not _numpy_at_least(2, 0):
        return None
    return src.replace(old, old + "    kernel_size, stride, padding, dilation = (np.asarray(a).astype(np.int64) for a in "
                                  "(kernel_size, stride, padding, dilation))\n", 1)


MP_INFRA = "lava.magma.runtime.message_infrastructure.multiprocessing"
CONV_UTILS = "lava.proc.conv.utils"
PATCHES = {VAR_MODEL: _patch_var_model, PORTS: _patch_ports, MP_INFRA: _patch_start_method,
           CONV_UTILS: _patch_conv_utils}


def _insert_after_future_imports(src: str, line: str) -> str:
    """Insert `line` after the last `from __future__ import` (which must stay first)."""
    lines = src.splitlines(keepends=True)
    at = 0
    for i, text in enumerate(lines):
        if text.startswith("from __future__ import"):
            at = i + 1
    return "".join(lines[:at] + [line] + lines[at:])


class _PatchedSourceLoader(importlib.abc.Loader):
    def __init__(self, origin: str, source: str):
        self.origin = origin
        self.source = source

    def create_module(self, spec):
        return None                                    # default module creation

    def exec_module(self, module) -> None:
        code = compile(self.source, self.origin, "exec", dont_inherit=True)
        exec(code, module.__dict__)

    def get_source(self, fullname: str) -> str:       # for tracebacks / inspect
        return self.source


class LavaCompatFinder(importlib.abc.MetaPathFinder):
    """Finds the modules in PATCHES and hands them to a loader running patched source."""

    applied: dict                                      # module -> True (patched) / False (not needed)

    def __init__(self):
        self.applied = {}

    def find_spec(self, fullname, path=None, target=None):
        patch = PATCHES.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return None
        with open(spec.origin, encoding="utf-8") as f:
            patched = patch(f.read())
        self.applied[fullname] = patched is not None
        if patched is None:
            return None                                # nothing to fix: normal import
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_PatchedSourceLoader(spec.origin, patched),
            submodule_search_locations=None)


_lock = threading.Lock()


def install_hook() -> LavaCompatFinder:
    """Put the finder first on sys.meta_path (once per interpreter) and return it."""
    with _lock:
        for f in sys.meta_path:
            if isinstance(f, LavaCompatFinder):
                return f
        finder = LavaCompatFinder()
        sys.meta_path.insert(0, finder)
        return finder


def lava_version() -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("lava-nc")
        except PackageNotFoundError:
            return None
    except ImportError:                               # pragma: no cover
        return None


def ensure_lava() -> str:
    """Install the compatibility hook (idempotent) and check that Lava imports.

    Returns the lava-nc version string.  Raises NeurodeployError if lava-nc is missing
    or still fails to import.
    """
    if importlib.util.find_spec("lava") is None or importlib.util.find_spec("lava.magma") is None:
        raise NeurodeployError(
            "lava-nc is not installed", "neurodeploy.backends.lava",
            "pip install lava-nc==0.10.0 --no-deps --ignore-requires-python "
            "(plus scipy, networkx, asteval) to use the Lava backend")
    install_hook()
    try:
        import lava.magma.core.process.process  # noqa: F401
    except Exception as exc:                          # noqa: BLE001 - any import failure is fatal here
        raise NeurodeployError(
            f"lava-nc is installed but cannot be imported ({type(exc).__name__}: {exc})",
            "neurodeploy.backends.lava", "install lava-nc 0.10.0 and its dependencies "
            "(scipy, networkx, asteval)") from exc
    return lava_version() or "unknown"
