"""What each field of the spiking IR may hold, declared on the dataclass field itself.

Every dataclass of the IR (layers, branches, synapse ops) and every scheme's neuron declares its
fields with the helpers below instead of a bare annotation:

    @dataclass
    class BitplaneIF(Neuron):
        v_th_mant: int = integer(1, "v_th_mant_max")     # 1 .. the target's threshold maximum
        n_steps: int = integer(1, MAX_TIMESTEPS)

A bound is an int, None (unbounded) or the name of a `target.Target` attribute ("state_max",
"-bias_mant_max" for its negative), resolved against the target the network was compiled for.
`ir.validate` reads these declarations to check a compiled network (on load, and at the end of
every compile), so a scheme's neurons are checked through their own types: no code outside a
scheme knows its fields.  A field declared without a default stays a required field.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING

import numpy as np

from ..limits import MAX_LAYER_NEURONS

CHECK = "ir_check"          # the metadata key of a field's declaration


def _resolve(bound, target):
    """An int bound, None, or a Target attribute name (with an optional leading '-')."""
    if bound is None or isinstance(bound, int):
        return bound
    sign, name = (-1, bound[1:]) if bound.startswith("-") else (1, bound)
    return sign * int(getattr(target, name))


def _span(lo, hi, target) -> str:
    """"1..131071 (the target's v_th_mant_max)" for the error message."""
    names = list(dict.fromkeys(b.lstrip("-") for b in (lo, hi) if isinstance(b, str)))
    rlo, rhi = _resolve(lo, target), _resolve(hi, target)
    text = f"{'' if rlo is None else rlo}..{'' if rhi is None else rhi}"
    if names:
        text += f" ({getattr(target, 'name', 'the target')}'s {', '.join(names)})"
    return text


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


class Check:
    """A field's declaration: `problem(value, target)` is None when the value is acceptable, else
    a few words saying what is wrong with it."""

    def problem(self, value, target) -> str | None:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Int(Check):
    lo: object = None
    hi: object = None

    def outside(self, low: int, high: int, target):
        """The first of low / high (the smallest and largest value held) outside the bounds, or None."""
        lo, hi = _resolve(self.lo, target), _resolve(self.hi, target)
        if lo is not None and low < lo:
            return low
        if hi is not None and high > hi:
            return high
        return None

    def problem(self, value, target):
        if not _is_int(value):
            return f"must be an integer, not {type(value).__name__}"
        if self.outside(value, value, target) is not None:
            return f"is out of range {_span(self.lo, self.hi, target)}"
        return None


@dataclasses.dataclass(frozen=True)
class IntArray(Int):
    """An integer array (any shape; its shape is the validator's to check against the layer)."""

    def problem(self, value, target):
        if not isinstance(value, np.ndarray):
            return f"must be an integer array, not {type(value).__name__}"
        if value.dtype.kind not in "iu":
            return f"must hold integers, not {value.dtype} values"
        if value.size == 0:
            return None
        bad = self.outside(int(value.min()), int(value.max()), target)
        if bad is not None:
            return f"holds {bad}, out of range {_span(self.lo, self.hi, target)}"
        return None


@dataclasses.dataclass(frozen=True)
class Real(Check):
    """A finite real number (or, with array=True, an array of them), optionally > 0 or >= 0."""
    positive: bool = False
    nonnegative: bool = False
    array: bool = False

    def problem(self, value, target):
        if self.array:
            if not isinstance(value, (np.ndarray, np.floating, float)) or np.asarray(value).dtype.kind not in "fiu":
                return f"must be a real-valued array, not {getattr(value, 'dtype', type(value).__name__)}"
            vals = np.asarray(value)
        else:
            if not _is_real(value):
                return f"must be a number, not {type(value).__name__}"
            vals = np.asarray(float(value))
        if not np.all(np.isfinite(vals)):
            return "must be finite (holds NaN or Inf)"
        if self.positive and vals.size and not np.all(vals > 0):
            return "must be positive"
        if self.nonnegative and vals.size and not np.all(vals >= 0):
            return "must not be negative"
        return None


@dataclasses.dataclass(frozen=True)
class Choice(Check):
    values: tuple = ()

    def problem(self, value, target):
        if not isinstance(value, str) or value not in self.values:
            return f"must be one of {', '.join(map(repr, self.values))}"
        return None


@dataclasses.dataclass(frozen=True)
class Flag(Check):
    def problem(self, value, target):
        return None if isinstance(value, (bool, np.bool_)) else f"must be true or false, not {type(value).__name__}"


@dataclasses.dataclass(frozen=True)
class Text(Check):
    """A name: a non-empty string (may_be_empty: any string) of at most 1000 characters."""
    may_be_empty: bool = False

    def problem(self, value, target):
        if not isinstance(value, str):
            return f"must be a string, not {type(value).__name__}"
        if (not value and not self.may_be_empty) or len(value) > 1000:
            return "must be a name of 1 to 1000 characters"
        return None


@dataclasses.dataclass(frozen=True)
class Shape(Check):
    """A layer's shape: (F,) or (C, H, W), every size >= 1, at most MAX_LAYER_NEURONS neurons."""

    def problem(self, value, target):
        if not isinstance(value, (tuple, list)) or len(value) not in (1, 3) or not all(_is_int(v) for v in value):
            return "must be a tuple of 1 or 3 integers"
        if min(value) < 1:
            return "must have every size >= 1"
        if math.prod(int(v) for v in value) > MAX_LAYER_NEURONS:
            return f"has more than {MAX_LAYER_NEURONS} neurons (the cap of one layer)"
        return None


@dataclasses.dataclass(frozen=True)
class Ints(Check):
    """n integers in lo..hi (kernel sizes, strides, paddings: n = 2; the input's pads: n = 4)."""
    n: int = 2
    lo: int = 0
    hi: int = 1 << 16

    def problem(self, value, target):
        if not isinstance(value, (tuple, list)) or len(value) != self.n or not all(_is_int(v) for v in value):
            return f"must be {self.n} integers"
        if min(value) < self.lo or max(value) > self.hi:
            return f"must hold integers in {self.lo}..{self.hi}"
        return None


@dataclasses.dataclass(frozen=True)
class Nested(Check):
    """Another IR object (a neuron, a list of branches or ops): the validator checks it itself."""
    kind: str = ""

    def problem(self, value, target):
        return None


def declared(check: Check, default=MISSING, default_factory=MISSING, doc: str = ""):
    """A dataclass field carrying its declaration (no default: a required field)."""
    meta = {CHECK: check, "doc": doc}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    if default is MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def integer(lo=None, hi=None, default=MISSING, doc: str = ""):
    return declared(Int(lo, hi), default, doc=doc)


def int_array(lo=None, hi=None, doc: str = ""):
    return declared(IntArray(lo, hi), doc=doc)


def real(positive: bool = False, nonnegative: bool = False, default=MISSING, doc: str = ""):
    return declared(Real(positive, nonnegative), default, doc=doc)


def real_array(positive: bool = False, nonnegative: bool = False, default_factory=MISSING, doc: str = ""):
    return declared(Real(positive, nonnegative, array=True), default_factory=default_factory, doc=doc)


def choice(*values, default=MISSING, doc: str = ""):
    return declared(Choice(tuple(values)), default, doc=doc)


def flag(default=MISSING, doc: str = ""):
    return declared(Flag(), default, doc=doc)


def text(default=MISSING, may_be_empty: bool = False, doc: str = ""):
    return declared(Text(may_be_empty), default, doc=doc)


def shape(doc: str = ""):
    return declared(Shape(), doc=doc)


def pair(lo: int = 0, default=MISSING, doc: str = ""):
    return declared(Ints(2, lo), default, doc=doc)


def ints(n: int, lo: int = 0, default=MISSING, doc: str = ""):
    return declared(Ints(n, lo), default, doc=doc)


def nested(kind: str, default=MISSING, doc: str = ""):
    return declared(Nested(kind), default, doc=doc)


def declaration(f: dataclasses.Field) -> Check | None:
    """The Check a dataclass field declares, or None."""
    return f.metadata.get(CHECK)


def undeclared_fields(cls) -> list[str]:
    """Fields of an IR dataclass that declare nothing (a neuron type must declare every field)."""
    return [f.name for f in dataclasses.fields(cls) if declaration(f) is None]


def field_problems(obj, target):
    """(field name, value, problem) of the first field of `obj` whose value its declaration refuses."""
    for f in dataclasses.fields(obj):
        check = declaration(f)
        if check is None:
            continue
        value = getattr(obj, f.name)
        problem = check.problem(value, target)
        if problem is not None:
            return f.name, value, problem
    return None
