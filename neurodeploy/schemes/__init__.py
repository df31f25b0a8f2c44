"""Coding schemes: which passes run, which neurons the layers get, what the scheme guarantees."""
from __future__ import annotations

from ..errors import NeurodeployError
from .base import CompileOptions, Scheme
from .bitplane import Bitplane
from .cuba import Cuba
from .rate import Rate
from .reverb import Reverb
from .sdnn import Sdnn
from .sws import Sws

SCHEMES: dict[str, Scheme] = {s.name: s for s in (Bitplane(), Rate(), Cuba(), Sws(), Sdnn(), Reverb())}


def get_scheme(name: str) -> Scheme:
    if name not in SCHEMES:
        raise NeurodeployError(f"unknown scheme '{name}'", "--scheme",
                               f"available schemes: {', '.join(sorted(SCHEMES))}")
    return SCHEMES[name]
