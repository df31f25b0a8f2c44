"""Coding schemes: which passes run, which neurons the layers get, what the scheme guarantees.

One package per scheme (`schemes/<name>/`), registered by name in `neurodeploy/registry.py`
and reached through `get_scheme(name)`; `base.py` is the interface every scheme implements.
"""
from __future__ import annotations

from ..registry import SCHEMES, get_scheme, register
from .base import CompileOptions, Scheme

__all__ = ["SCHEMES", "CompileOptions", "Scheme", "get_scheme", "register"]
