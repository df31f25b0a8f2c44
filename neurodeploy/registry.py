"""Which coding schemes exist, by name: the one door to a scheme.

A scheme is a package `neurodeploy/schemes/<name>/` whose `__init__.py` defines `SCHEME`, an
instance of `neurodeploy.schemes.base.Scheme` (the interface, documented there).  The built-in
schemes are listed in `BUILTIN` by name and imported on first use; `register(scheme)` adds one
at run time (a plugin, a test's toy scheme).  Adding a scheme is its folder plus one line here.

This module imports no scheme at import time and depends on nothing but `errors`, so every
layer may ask it: the serialiser for the neuron types, the PyTorch front end for the spiking
front ends, cli / api / reports for the scheme object.  Nothing outside a scheme's own package
compares scheme names or tests its neuron types: it asks the scheme (`get_scheme(net.scheme)`).
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

from .errors import NeurodeployError

# name -> the package whose SCHEME it is (the order is the order of `--scheme`'s choices)
BUILTIN: dict[str, str] = {
    "bitplane": "neurodeploy.schemes.bitplane",
    "rate": "neurodeploy.schemes.rate",
    "cuba": "neurodeploy.schemes.cuba",
    "sws": "neurodeploy.schemes.sws",
    "sdnn": "neurodeploy.schemes.sdnn",
    "reverb": "neurodeploy.schemes.reverb",
}

DEFAULT_SCHEME = "bitplane"     # what `compile` uses when no scheme is named (a NetX file: its own)

_loaded: dict = {}            # name -> Scheme, for the built-ins already imported and the registered ones
_registered: list[str] = []   # names registered at run time, in order


def register(scheme, replace: bool = False):
    """Make `scheme` (a `schemes.base.Scheme`) available under `scheme.name`; returns it.

    A name that is taken (built in or registered) is refused unless `replace`."""
    name = scheme.name
    if not name or not isinstance(name, str):
        raise ValueError(f"a scheme needs a name, got {name!r}")
    if not replace and (name in BUILTIN or name in _registered):
        raise ValueError(f"a scheme named '{name}' is already registered")
    _loaded[name] = scheme
    if name not in BUILTIN and name not in _registered:
        _registered.append(name)
    return scheme


def unregister(name: str) -> None:
    """Forget a scheme registered at run time (built-in schemes stay)."""
    if name in _registered:
        _registered.remove(name)
        _loaded.pop(name, None)


def scheme_names() -> list[str]:
    """Every scheme's name: the built-in ones, then those registered at run time."""
    return list(BUILTIN) + list(_registered)


def get_scheme(name: str):
    """The scheme called `name`; NeurodeployError (naming the available ones) for any other name."""
    scheme = _loaded.get(name)
    if scheme is None:
        if name not in BUILTIN:
            raise NeurodeployError(f"unknown scheme '{name}'", "--scheme",
                                   f"available schemes: {', '.join(sorted(scheme_names()))}")
        scheme = _loaded[name] = importlib.import_module(BUILTIN[name]).SCHEME
    return scheme


def all_schemes() -> list:
    """Every scheme object, in `scheme_names()` order (imports the built-in packages)."""
    return [get_scheme(n) for n in scheme_names()]


def neuron_types() -> dict[str, type]:
    """Class name -> class of every neuron model of every scheme (for `ir.serialize`)."""
    out: dict[str, type] = {}
    for scheme in all_schemes():
        for cls in scheme.neuron_types:
            other = out.setdefault(cls.__name__, cls)
            if other is not cls:
                raise ValueError(f"two neuron types named {cls.__name__} ({other.__module__}, {cls.__module__})")
    return out


class _Schemes(Mapping):
    """A read-only name -> scheme view of the registry (`neurodeploy.schemes.SCHEMES`)."""

    def __getitem__(self, name: str):
        if name not in scheme_names():
            raise KeyError(name)
        return get_scheme(name)

    def __iter__(self):
        return iter(scheme_names())

    def __len__(self) -> int:
        return len(scheme_names())

    def __contains__(self, name) -> bool:
        return name in scheme_names()


SCHEMES = _Schemes()
